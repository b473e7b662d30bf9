//! Taking work: each job and inbox message goes to one consumer at a time, stays pending until
//! it is acknowledged, and goes to another consumer, with its delivery count, once it was left
//! alone for the visibility timeout; a heartbeat keeps it where it is.

use std::time::{Duration, Instant};

use baton_proto::v1;
use baton_queue::BatchOutcome;
use prost::Message;

use super::{Queues, fixtures::*};

/// Short, so the checks are quick; every assertion about it is a lower bound.
const VISIBILITY: Duration = Duration::from_millis(300);

pub async fn jobs_are_delivered_once_in_order_until_reported(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let jobs = [job(1, "fetch", 1), job(2, "fetch", 1), job(1, "report", 3)];
    q.a.dispatch(&jobs, &[]).await.unwrap();

    let taken = take_jobs(q.b.as_ref(), "w1", 3).await;
    assert_eq!(messages(&taken), jobs, "in the order they were enqueued");
    for d in &taken {
        assert_eq!(d.deliveries, 1, "first delivery");
        assert_eq!(v1::Job::decode(d.payload.as_slice()).unwrap(), message(d));
    }
    // Taken by w1, so no one else gets them, from either handle.
    for q in [&q.a, &q.b] {
        let other = q.read_jobs(KIND, "w2", 10, Duration::from_millis(10)).await;
        assert!(other.unwrap().is_empty());
    }

    // Reporting two sends their results to the runner and acknowledges them; the third stays.
    let results: Vec<_> = jobs[..2].iter().map(result).collect();
    q.b.report(KIND, &results, &ids(&taken[..2])).await.unwrap();
    let inbox = take_runner(q.a.as_ref(), "runner-1", 2).await;
    assert_eq!(messages(&inbox), results);
    let pending =
        q.a.reclaim_jobs(KIND, "w2", Duration::ZERO, 10)
            .await
            .unwrap();
    assert_eq!(
        ids(&pending),
        ids(&taken[2..]),
        "only the unreported job is pending"
    );
}

pub async fn jobs_enqueued_before_any_worker_joined_are_delivered(q: Queues) {
    q.a.dispatch(&[job(1, "fetch", 1)], &[]).await.unwrap();
    q.a.send_to_runner(&[start(1)]).await.unwrap();
    let taken = take_jobs(q.b.as_ref(), "w1", 1).await;
    assert_eq!(messages(&taken), [job(1, "fetch", 1)]);
    let inbox = take_runner(q.b.as_ref(), "runner-1", 1).await;
    assert_eq!(messages(&inbox), [start(1)]);

    // Joining again delivers nothing twice.
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    q.b.join_kinds(&[KIND.to_owned()]).await.unwrap();
    q.a.dispatch(&[job(2, "fetch", 1)], &[]).await.unwrap();
    let taken = take_jobs(q.a.as_ref(), "w2", 1).await;
    assert_eq!(messages(&taken), [job(2, "fetch", 1)]);
}

pub async fn an_empty_read_waits_for_its_block_and_wakes_for_a_job(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let block = Duration::from_millis(200);
    let began = Instant::now();
    let none = q.a.read_jobs(KIND, "w1", 10, block).await.unwrap();
    assert!(none.is_empty());
    assert!(
        began.elapsed() >= block,
        "returned after {:?}",
        began.elapsed()
    );
    let began = Instant::now();
    let none = q.a.read_runner("runner-1", 10, block).await.unwrap();
    assert!(none.is_empty());
    assert!(
        began.elapsed() >= block,
        "returned after {:?}",
        began.elapsed()
    );

    let b = q.b.clone();
    let reader = tokio::spawn(async move { b.read_jobs(KIND, "w1", 10, PATIENCE).await });
    q.a.dispatch(&[job(1, "fetch", 1)], &[]).await.unwrap();
    let taken = reader.await.unwrap().unwrap();
    assert_eq!(
        messages(&taken),
        [job(1, "fetch", 1)],
        "the waiting read took it"
    );
}

pub async fn an_unacknowledged_job_is_reclaimed_after_the_visibility_timeout(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let jobs = [job(1, "fetch", 1), job(2, "fetch", 1)];
    q.a.dispatch(&jobs, &[]).await.unwrap();
    let before_read = Instant::now();
    let taken = take_jobs(q.a.as_ref(), "w1", 2).await;

    // w1 went away without a word; w2 finds its jobs once they were idle long enough.
    let mut claim_sent = Instant::now();
    let reclaimed = eventually("jobs reclaimed", || {
        claim_sent = Instant::now();
        let b = q.b.clone();
        async move {
            let got = b.reclaim_jobs(KIND, "w2", VISIBILITY, 10).await.unwrap();
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert!(
        before_read.elapsed() >= VISIBILITY,
        "reclaimed {:?} after the read, before the visibility timeout",
        before_read.elapsed()
    );
    assert_eq!(ids(&reclaimed), ids(&taken), "the same entries");
    assert_eq!(messages(&reclaimed), jobs);
    assert!(reclaimed.iter().all(|d| d.deliveries == 2), "{reclaimed:?}");

    // Now w2's: idle again from the claim, and counted again when w3 takes them over.
    let first_claim = claim_sent;
    let again = eventually("jobs reclaimed again", || {
        let a = q.a.clone();
        async move {
            let got = a.reclaim_jobs(KIND, "w3", VISIBILITY, 1).await.unwrap();
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert!(
        first_claim.elapsed() >= VISIBILITY,
        "a claim resets the idle time"
    );
    assert_eq!(ids(&again), ids(&taken[..1]), "at most `max`, oldest first");
    assert_eq!(again[0].deliveries, 3);

    q.a.report(KIND, &[], &ids(&taken)).await.unwrap();
    let left =
        q.b.reclaim_jobs(KIND, "w4", Duration::ZERO, 10)
            .await
            .unwrap();
    assert!(
        left.is_empty(),
        "acknowledged jobs are never reclaimed: {left:?}"
    );
}

/// A worker that was paused past the visibility timeout and comes back touching its job must
/// not take the job back from the worker that reclaimed it: its touches change nothing, so once
/// the new owner goes silent the job is reclaimed again on time.
pub async fn a_stale_touch_does_not_take_back_a_reclaimed_job(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let visibility = Duration::from_millis(500);
    q.a.dispatch(&[job(1, "fetch", 1)], &[]).await.unwrap();
    let taken = take_jobs(q.a.as_ref(), "w1", 1).await;
    let reclaimed = eventually("w2 reclaims the job w1 left", || {
        let b = q.b.clone();
        async move {
            let got = b.reclaim_jobs(KIND, "w2", visibility, 10).await.unwrap();
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    let reclaimed_at = Instant::now();
    assert_eq!(ids(&reclaimed), ids(&taken));

    // w1 wakes up and keeps touching the job; w2 has gone silent. w3 must get it once w2's
    // claim is a visibility timeout old, however often w1 touches.
    let again = loop {
        q.a.touch_jobs(KIND, "w1", &ids(&taken)).await.unwrap();
        let found = q.b.reclaim_jobs(KIND, "w3", visibility, 10).await.unwrap();
        if !found.is_empty() {
            break found;
        }
        assert!(
            reclaimed_at.elapsed() < 6 * visibility,
            "w1's stale touches kept the job from being reclaimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Idle times may be kept in whole milliseconds: allow for the rounding.
    assert!(
        reclaimed_at.elapsed() + Duration::from_millis(5) >= visibility,
        "reclaimed {:?} after w2's claim, before a timeout",
        reclaimed_at.elapsed()
    );
    assert_eq!(ids(&again), ids(&taken));
    assert_eq!(again[0].deliveries, 3, "w1, w2, then w3");
}

pub async fn a_touched_job_is_not_reclaimed_while_its_worker_runs_it(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let visibility = Duration::from_secs(1);
    q.a.dispatch(&[job(1, "fetch", 1)], &[]).await.unwrap();
    let before_read = Instant::now();
    let taken = take_jobs(q.a.as_ref(), "w1", 1).await;

    // w1 touches its job and w2 looks for abandoned ones, for three visibility timeouts. A
    // look that follows a touch within a fraction of the timeout must find nothing.
    let mut checked_past_timeout = 0;
    let mut lapsed = false;
    let mut last_touch = Instant::now();
    while before_read.elapsed() < 3 * visibility {
        last_touch = Instant::now();
        q.a.touch_jobs(KIND, "w1", &ids(&taken)).await.unwrap();
        let found = q.b.reclaim_jobs(KIND, "w2", visibility, 10).await.unwrap();
        let since_touch = last_touch.elapsed();
        if since_touch < visibility / 2 {
            assert!(
                found.is_empty(),
                "reclaimed {since_touch:?} after a touch: {found:?}"
            );
            if before_read.elapsed() > visibility {
                checked_past_timeout += 1;
            }
        } else {
            // The machine stalled for longer than the timeout: a reclaim was allowed.
            lapsed |= !found.is_empty();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        checked_past_timeout > 0,
        "never looked past the first timeout"
    );

    // Left alone, it is reclaimed; touches were not deliveries.
    let reclaimed = eventually("job reclaimed once left alone", || {
        let b = q.b.clone();
        async move {
            let got = b.reclaim_jobs(KIND, "w2", visibility, 10).await.unwrap();
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert!(last_touch.elapsed() >= visibility);
    assert_eq!(ids(&reclaimed), ids(&taken));
    if !lapsed {
        assert_eq!(reclaimed[0].deliveries, 2, "touches are not deliveries");
    }
}

pub async fn runner_messages_are_reclaimed_until_a_batch_acknowledges_them(q: Queues) {
    q.a.join_kinds(&[]).await.unwrap();
    let sent = [start(1), start(2)];
    q.a.send_to_runner(&sent).await.unwrap();
    let before_read = Instant::now();
    let taken = take_runner(q.a.as_ref(), "runner-1", 2).await;
    assert_eq!(messages(&taken), sent);
    assert!(taken.iter().all(|d| d.deliveries == 1));
    let elsewhere =
        q.b.read_runner("runner-2", 10, Duration::from_millis(10))
            .await;
    assert!(elsewhere.unwrap().is_empty(), "taken by runner-1");

    let reclaimed = eventually("inbox reclaimed", || {
        let b = q.b.clone();
        async move {
            let got = b.reclaim_runner("runner-2", VISIBILITY, 10).await.unwrap();
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert!(before_read.elapsed() >= VISIBILITY);
    assert_eq!(ids(&reclaimed), ids(&taken));
    assert_eq!(messages(&reclaimed), sent);
    assert!(reclaimed.iter().all(|d| d.deliveries == 2));

    let ack = |ids: Vec<String>| BatchOutcome {
        ack: ids,
        ..BatchOutcome::default()
    };
    q.b.complete_batch(ack(ids(&taken[..1]))).await.unwrap();
    assert_eq!(inbox_stats(q.a.as_ref()).await, (1, 1), "one left, pending");
    let left =
        q.a.reclaim_runner("runner-3", Duration::ZERO, 10)
            .await
            .unwrap();
    assert_eq!(ids(&left), ids(&taken[1..]), "the acknowledged one is gone");
    q.a.complete_batch(ack(ids(&taken[1..]))).await.unwrap();
    let left =
        q.b.reclaim_runner("runner-3", Duration::ZERO, 10)
            .await
            .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        inbox_stats(q.a.as_ref()).await,
        (0, 0),
        "nothing left, nothing pending"
    );
}

/// Length and pending count of the runner inbox.
async fn inbox_stats(q: &dyn baton_queue::Queue) -> (u64, u64) {
    let stats = q.stats(&[]).await.unwrap();
    let inbox = stats
        .iter()
        .find(|s| s.name == "runner")
        .expect("inbox stats");
    (inbox.length, inbox.pending)
}

pub async fn dead_letters_acknowledge_their_entry_and_are_read_oldest_first(q: Queues) {
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    assert!(q.a.dead_letters(10).await.unwrap().is_empty());
    q.a.dispatch(&[job(1, "fetch", 1), job(2, "fetch", 1)], &[])
        .await
        .unwrap();
    let jobs = take_jobs(q.a.as_ref(), "w1", 2).await;
    let first = letter(
        "jobs:work",
        &jobs[0].id,
        "no handler",
        jobs[0].payload.clone(),
    );
    q.a.dead_letter_job(KIND, first.clone()).await.unwrap();
    let pending =
        q.b.reclaim_jobs(KIND, "w2", Duration::ZERO, 10)
            .await
            .unwrap();
    assert_eq!(
        ids(&pending),
        ids(&jobs[1..]),
        "the dead job is acknowledged"
    );

    q.a.send_to_runner(&[start(1)]).await.unwrap();
    let inbox = take_runner(q.b.as_ref(), "runner-1", 1).await;
    let second = letter(
        "runner",
        &inbox[0].id,
        "unknown run",
        inbox[0].payload.clone(),
    );
    q.b.dead_letter_runner(second.clone()).await.unwrap();
    let pending =
        q.a.reclaim_runner("runner-2", Duration::ZERO, 10)
            .await
            .unwrap();
    assert!(pending.is_empty(), "the dead inbox entry is acknowledged");

    let exhausted: Vec<_> = (3..5)
        .map(|i| letter("jobs:work", "", &format!("attempts exhausted {i}"), vec![i]))
        .collect();
    q.a.complete_batch(BatchOutcome {
        dead_letters: exhausted.clone(),
        ..BatchOutcome::default()
    })
    .await
    .unwrap();

    let mut all = vec![first, second];
    all.extend(exhausted);
    assert_eq!(
        q.b.dead_letters(100).await.unwrap(),
        all,
        "every letter, oldest first"
    );
    assert_eq!(
        q.a.dead_letters(2).await.unwrap(),
        all[..2],
        "at most `max`"
    );
    let kept = v1::Job::decode(all[0].payload.as_slice()).unwrap();
    assert_eq!(
        kept,
        job(1, "fetch", 1),
        "the payload is the original message"
    );
}

pub async fn stats_count_backlog_and_pending_per_stream(q: Queues) {
    let kinds = [KIND.to_owned(), "idle".to_owned()];
    q.a.join_kinds(&kinds).await.unwrap();
    let stats = |q: std::sync::Arc<dyn baton_queue::Queue>, kinds: [String; 2]| async move {
        let stats = q.stats(&kinds).await.unwrap();
        stats
            .iter()
            .map(|s| (s.name.clone(), s.length, s.pending))
            .collect::<Vec<_>>()
    };
    let want = |runner: (u64, u64), work: (u64, u64), dead: u64| {
        vec![
            ("runner".to_owned(), runner.0, runner.1),
            ("jobs:work".to_owned(), work.0, work.1),
            ("jobs:idle".to_owned(), 0, 0),
            ("dead".to_owned(), dead, 0),
        ]
    };
    assert_eq!(
        stats(q.a.clone(), kinds.clone()).await,
        want((0, 0), (0, 0), 0)
    );

    let jobs = [job(1, "fetch", 1), job(2, "fetch", 1), job(3, "fetch", 1)];
    q.a.dispatch(&jobs, &[]).await.unwrap();
    let taken = take_first_jobs(q.b.as_ref(), "w1", 2).await;
    // Length is the backlog, taken or not; pending is what was taken and not acknowledged.
    assert_eq!(
        stats(q.b.clone(), kinds.clone()).await,
        want((0, 0), (3, 2), 0)
    );

    q.b.report(KIND, &[result(&jobs[0])], &ids(&taken[..1]))
        .await
        .unwrap();
    assert_eq!(
        stats(q.a.clone(), kinds.clone()).await,
        want((1, 0), (2, 1), 0)
    );

    take_runner(q.a.as_ref(), "runner-1", 1).await;
    let dead = letter(
        "jobs:work",
        &taken[1].id,
        "bad input",
        taken[1].payload.clone(),
    );
    q.b.dead_letter_job(KIND, dead).await.unwrap();
    assert_eq!(stats(q.a.clone(), kinds).await, want((1, 1), (1, 0), 1));
}
