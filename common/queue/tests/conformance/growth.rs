//! What keeps the queue from growing without bound while losing nothing: dead letters are
//! capped, listed by id and replayed onto the stream they came from exactly once; the timers of
//! runs that ended are dropped unfired; consumers of replicas that are gone are removed, never
//! one that still holds pending entries.

use std::{sync::Arc, time::Duration};

use baton_proto::v1;
use baton_queue::{BatchOutcome, Queue, Replay, StreamName, TimerEntry};

use super::{Queues, fixtures::*};

/// The dead-letter cap of the queue [`dead_letters_are_capped_oldest_first`] is given.
pub const CAPPED_DEAD_LETTERS: u64 = 10;

/// Moves a fresh inbox message for `run` to the dead letters, as the runner does with poison.
async fn dead_runner_message(q: &dyn Queue, run: u32, reason: &str) -> v1::DeadLetter {
    q.send_to_runner(&[start(run)]).await.unwrap();
    let taken = take_runner(q, "runner-dead", 1).await;
    let dead = letter("runner", &taken[0].id, reason, taken[0].payload.clone());
    q.dead_letter_runner(dead.clone()).await.unwrap();
    dead
}

pub async fn dead_letters_are_listed_by_id_in_pages_and_read_one_by_one(q: Queues) {
    assert!(q.a.list_dead_letters(None, 10).await.unwrap().is_empty());
    let mut sent = Vec::new();
    for run in 1..=3 {
        sent.push(dead_runner_message(q.a.as_ref(), run, &format!("poison {run}")).await);
    }
    q.a.complete_batch(BatchOutcome {
        dead_letters: vec![letter("jobs:work", "", "attempts exhausted", vec![4])],
        ..BatchOutcome::default()
    })
    .await
    .unwrap();
    sent.push(letter("jobs:work", "", "attempts exhausted", vec![4]));

    let all = q.b.list_dead_letters(None, 100).await.unwrap();
    let letters: Vec<_> = all.iter().map(|(_, l)| l.clone()).collect();
    assert_eq!(letters, sent, "every letter, oldest first");
    let mut distinct: Vec<_> = all.iter().map(|(id, _)| id.clone()).collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each has an id of its own: {all:?}");

    // Pages of two, each after the last id of the one before, cover every letter once.
    let first = q.a.list_dead_letters(None, 2).await.unwrap();
    assert_eq!(first, all[..2]);
    let second = q.a.list_dead_letters(Some(&first[1].0), 2).await.unwrap();
    assert_eq!(second, all[2..]);
    let end = q.a.list_dead_letters(Some(&second[1].0), 2).await.unwrap();
    assert!(end.is_empty(), "nothing after the newest: {end:?}");

    for (id, letter) in &all {
        assert_eq!(
            q.b.get_dead_letter(id).await.unwrap().as_ref(),
            Some(letter)
        );
    }
    for unknown in ["", "nonsense", "0", "-1", "9999999999999-0", "1-2-3"] {
        assert_eq!(
            q.a.get_dead_letter(unknown).await.unwrap(),
            None,
            "{unknown:?}"
        );
        assert_eq!(
            q.a.replay_dead_letter(unknown).await.unwrap(),
            Replay::NotFound,
            "{unknown:?}"
        );
    }
    assert!(
        q.a.list_dead_letters(Some("nonsense"), 10)
            .await
            .unwrap()
            .is_empty(),
        "an id the queue never gave comes before nothing"
    );
    assert!(
        q.other
            .list_dead_letters(None, 10)
            .await
            .unwrap()
            .is_empty(),
        "another deployment's letters are its own"
    );
    let mine = &all[0].0;
    assert_eq!(q.other.get_dead_letter(mine).await.unwrap(), None);
}

pub async fn a_replayed_dead_letter_is_delivered_afresh_once(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    // An inbox message, dead after its deliveries ran out.
    let dead = dead_runner_message(q.a.as_ref(), 1, "unknown run").await;
    // And a job.
    q.a.dispatch(&[job(2, "fetch", 1)], &[]).await.unwrap();
    let taken = take_jobs(q.a.as_ref(), "w1", 1).await;
    q.a.dead_letter_job(
        KIND,
        letter(
            "jobs:work",
            &taken[0].id,
            "no handler",
            taken[0].payload.clone(),
        ),
    )
    .await
    .unwrap();
    let listed = q.a.list_dead_letters(None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].1, dead);

    let replayed = q.b.replay_dead_letter(&listed[0].0).await.unwrap();
    let Replay::Replayed { stream, entry_id } = replayed else {
        panic!("not replayed: {replayed:?}")
    };
    assert_eq!(stream, StreamName::Runner);
    let inbox = take_runner(q.a.as_ref(), "runner-1", 1).await;
    assert_eq!(messages(&inbox), [start(1)], "the original message");
    assert_eq!(inbox[0].id, entry_id, "as the entry replay named");
    assert_eq!(inbox[0].deliveries, 1, "delivered afresh");

    let replayed = q.a.replay_dead_letter(&listed[1].0).await.unwrap();
    assert!(
        matches!(&replayed, Replay::Replayed { stream, .. } if *stream == StreamName::jobs(KIND)),
        "{replayed:?}"
    );
    let jobs = take_jobs(q.b.as_ref(), "w2", 1).await;
    assert_eq!(messages(&jobs), [job(2, "fetch", 1)]);
    assert_eq!(jobs[0].deliveries, 1);

    assert!(
        q.a.list_dead_letters(None, 10).await.unwrap().is_empty(),
        "replayed letters leave the dead letters"
    );
    for (id, _) in &listed {
        assert_eq!(q.b.replay_dead_letter(id).await.unwrap(), Replay::NotFound);
        assert_eq!(q.b.get_dead_letter(id).await.unwrap(), None);
    }
    let stats = q.a.stats(&[KIND.to_owned()]).await.unwrap();
    let dead = stats.iter().find(|s| s.name == "dead").expect("dead stats");
    assert_eq!(dead.length, 0);
}

pub async fn concurrent_replays_of_one_letter_send_it_once(q: Queues) {
    dead_runner_message(q.a.as_ref(), 1, "unknown run").await;
    let id = q.a.list_dead_letters(None, 1).await.unwrap()[0].0.clone();
    let replays: Vec<_> = (0..8)
        .map(|i| {
            let queue = if i % 2 == 0 { q.a.clone() } else { q.b.clone() };
            let id = id.clone();
            tokio::spawn(async move { queue.replay_dead_letter(&id).await.unwrap() })
        })
        .collect();
    let mut sent = 0;
    for replay in replays {
        match replay.await.unwrap() {
            Replay::Replayed { .. } => sent += 1,
            Replay::NotFound => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, 1, "one replay sent it, the others found nothing");
    take_runner(q.b.as_ref(), "runner-1", 1).await;
}

pub async fn a_letter_naming_no_work_stream_is_kept_unreplayed(q: Queues) {
    let odd = ["", "dead", "events", "jobs:"];
    q.a.complete_batch(BatchOutcome {
        dead_letters: odd
            .iter()
            .map(|stream| letter(stream, "", "odd", vec![1]))
            .collect(),
        ..BatchOutcome::default()
    })
    .await
    .unwrap();
    let listed = q.a.list_dead_letters(None, 10).await.unwrap();
    assert_eq!(listed.len(), odd.len());
    for ((id, _), stream) in listed.iter().zip(odd) {
        assert_eq!(
            q.b.replay_dead_letter(id).await.unwrap(),
            Replay::Unreplayable {
                stream: stream.to_owned()
            }
        );
    }
    assert_eq!(
        q.a.list_dead_letters(None, 10).await.unwrap(),
        listed,
        "kept"
    );
    take_runner(q.a.as_ref(), "runner-1", 0).await;
}

/// Checks a queue opened with a dead-letter cap of [`CAPPED_DEAD_LETTERS`]. Redis trims whole
/// nodes of its stream (MAXLEN ~), so there the cap holds within a node's entries (100 by
/// default); the embedded queue trims exactly.
pub async fn dead_letters_are_capped_oldest_first(q: Arc<dyn Queue>) {
    let total: u8 = 250;
    let letters: Vec<_> = (0..total)
        .map(|i| letter("runner", "", &format!("letter {i}"), vec![i]))
        .collect();
    // Through both ways letters are written: a batch's, and one entry at a time.
    q.complete_batch(BatchOutcome {
        dead_letters: letters[..200].to_vec(),
        ..BatchOutcome::default()
    })
    .await
    .unwrap();
    for letter in &letters[200..] {
        q.dead_letter_runner(letter.clone()).await.unwrap();
    }
    let kept = q.list_dead_letters(None, 1_000).await.unwrap();
    let cap = usize::try_from(CAPPED_DEAD_LETTERS).unwrap();
    assert!(
        kept.len() >= cap && kept.len() <= cap + 100,
        "{} of {total} letters kept with a cap of {cap}",
        kept.len()
    );
    let reasons: Vec<_> = kept.iter().map(|(_, l)| l.reason.clone()).collect();
    let newest: Vec<_> = letters[letters.len() - kept.len()..]
        .iter()
        .map(|l| l.reason.clone())
        .collect();
    assert_eq!(reasons, newest, "the newest are kept, oldest first");
    let stats = q.stats(&[]).await.unwrap();
    let dead = stats.iter().find(|s| s.name == "dead").expect("dead stats");
    assert_eq!(dead.length, kept.len() as u64);
}

fn deadline(run: u32, due_ms: i64) -> TimerEntry {
    TimerEntry {
        due_ms,
        wake: v1::WakeRunCommand {
            run_id: format!("run-{run}"),
            reason: v1::WakeReason::RunDeadline as i32,
            due_at: Some(baton_proto::timestamp_from_micros(due_ms * 1_000)),
        },
    }
}

pub async fn a_dropped_timer_never_fires(q: Queues) {
    // Unix milliseconds in 2030, as the timer checks use.
    let base = 1_900_000_000_000;
    let (ended, running) = (deadline(1, base + 100), deadline(2, base + 200));
    q.a.dispatch(&[], &[ended.clone(), running]).await.unwrap();
    q.b.send_to_runner(&[start(7)]).await.unwrap();
    let inbox = take_runner(q.a.as_ref(), "runner-1", 1).await;
    q.b.complete_batch(BatchOutcome {
        ack: ids(&inbox),
        drop_timers: vec![ended, deadline(3, base + 300)],
        ..BatchOutcome::default()
    })
    .await
    .unwrap();

    let fired = q.a.fire_due_timers(base + 10_000, 100).await.unwrap();
    assert_eq!(fired.moved, 1, "only the timer left");
    let woke = take_runner(q.b.as_ref(), "runner-1", 1).await;
    assert_eq!(woken(&message(&woke[0])), "run-2");
    assert_eq!(fired.next_due_ms, None, "no timer is left");
    assert_eq!(
        q.a.fire_due_timers(base + 20_000, 100).await.unwrap().moved,
        0
    );
}

pub async fn removing_idle_consumers_never_drops_a_pending_entry(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    q.a.dispatch(&[job(1, "fetch", 1), job(2, "fetch", 1)], &[])
        .await
        .unwrap();
    // `w-gone` took a job and died with it; `w-done` reported its job and went quiet.
    let held = take_first_jobs(q.a.as_ref(), "w-gone", 1).await;
    let done = take_jobs(q.a.as_ref(), "w-done", 1).await;
    q.a.report(KIND, &[result(&message(&done[0]))], &ids(&done))
        .await
        .unwrap();
    let inbox = take_runner(q.b.as_ref(), "r-done", 1).await;
    q.b.complete_batch(BatchOutcome {
        ack: ids(&inbox),
        ..BatchOutcome::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let removed =
        q.b.remove_idle_consumers(Duration::from_millis(10))
            .await
            .unwrap();
    assert!(
        !removed.iter().any(|c| c.ends_with("/w-gone")),
        "a consumer holding a pending entry stays: {removed:?}"
    );
    for name in &removed {
        assert!(
            ["jobs:work/w-done", "runner/r-done"].contains(&name.as_str()),
            "only idle consumers without pending entries go: {removed:?}"
        );
    }
    let reclaimed =
        q.a.reclaim_jobs(KIND, "w-next", Duration::ZERO, 10)
            .await
            .unwrap();
    assert_eq!(
        ids(&reclaimed),
        ids(&held),
        "the pending job is still there"
    );
    assert!(
        q.a.remove_idle_consumers(Duration::from_secs(3_600))
            .await
            .unwrap()
            .is_empty(),
        "none has been idle an hour"
    );
    assert!(
        q.other
            .remove_idle_consumers(Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "another deployment's consumers are its own"
    );
}
