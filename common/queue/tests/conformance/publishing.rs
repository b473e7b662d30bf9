//! What goes out to many readers: run events in order after a cursor, cancel notices to every
//! subscriber, worker heartbeats; and a queue of another deployment sees none of it.

use std::time::{Duration, Instant};

use baton_proto::v1;
use baton_queue::{BatchOutcome, EventCursor, Queue, WorkerHeartbeat};
use tokio_stream::StreamExt;

use super::{Queues, fixtures::*};

fn events(events: Vec<v1::RunEvent>) -> BatchOutcome {
    BatchOutcome {
        events,
        ..BatchOutcome::default()
    }
}

pub async fn events_are_read_after_a_cursor_in_order(q: Queues) {
    let first: Vec<_> = (1..=5).map(|s| event(1, s)).collect();
    q.a.complete_batch(events(first.clone())).await.unwrap();
    let second = vec![event(2, 1), event(1, 6)];
    q.b.complete_batch(events(second.clone())).await.unwrap();
    let all: Vec<_> = first.into_iter().chain(second).collect();

    let read =
        q.a.read_events(&EventCursor::start(), 100, Duration::from_millis(10))
            .await
            .unwrap();
    let seen: Vec<_> = read.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(seen, all, "in the order they were published");

    let (cursor, _) = &read[2];
    let after =
        q.b.read_events(cursor, 100, Duration::from_millis(10))
            .await
            .unwrap();
    let after: Vec<_> = after.into_iter().map(|(_, e)| e).collect();
    assert_eq!(after, all[3..], "only what came after the cursor");

    let mut cursor = EventCursor::start();
    let mut paged = Vec::new();
    loop {
        let batch =
            q.b.read_events(&cursor, 2, Duration::from_millis(10))
                .await
                .unwrap();
        assert!(batch.len() <= 2, "at most `max`");
        let Some((last, _)) = batch.last() else { break };
        cursor = last.clone();
        paged.extend(batch.into_iter().map(|(_, e)| e));
    }
    assert_eq!(paged, all, "two at a time");

    let block = Duration::from_millis(100);
    let began = Instant::now();
    assert!(
        q.a.read_events(&cursor, 10, block)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(began.elapsed() >= block, "waited for new events");
}

pub async fn reading_only_new_events_skips_the_ones_before(q: Queues) {
    let sequences = |read: &[(EventCursor, v1::RunEvent)]| -> Vec<i64> {
        read.iter().map(|(_, e)| e.sequence).collect()
    };
    // The tail of an empty log is before everything published later.
    let empty = q.b.tail().await.unwrap();
    q.a.complete_batch(events((1..=3).map(|s| event(1, s)).collect()))
        .await
        .unwrap();
    let read =
        q.b.read_events(&empty, 100, Duration::from_millis(10))
            .await
            .unwrap();
    assert_eq!(sequences(&read), [1, 2, 3], "read from an empty log's tail");

    let tail = q.b.tail().await.unwrap();
    let quiet = q.a.read_events(&tail, 100, Duration::from_millis(10)).await;
    assert!(quiet.unwrap().is_empty(), "nothing after the tail");

    // A reader waiting at the tail wakes for what is published through the other handle, and
    // hears nothing from before.
    let b = q.b.clone();
    let waiting = tail.clone();
    let reader = tokio::spawn(async move { b.read_events(&waiting, 100, PATIENCE).await });
    let published = [event(2, 100), event(2, 101)];
    q.a.complete_batch(events(published.to_vec()))
        .await
        .unwrap();
    let heard = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("the waiting reader woke")
        .unwrap()
        .unwrap();
    let mut heard_sequences = sequences(&heard);
    assert!(!heard_sequences.is_empty());
    let (last, _) = heard.last().expect("checked non-empty");
    let rest =
        q.b.read_events(last, 100, Duration::from_millis(10))
            .await
            .unwrap();
    heard_sequences.extend(sequences(&rest));
    assert_eq!(
        heard_sequences,
        [100, 101],
        "only events published after the tail, in order"
    );
}

pub async fn cancel_notices_reach_every_subscriber_in_order(q: Queues) {
    let mut first = q.a.subscribe_cancels().await.unwrap();
    let mut second = q.b.subscribe_cancels().await.unwrap();
    let notice = |i: u32| v1::CancelNotice {
        run_id: format!("run-{i}"),
        reason: "cancelled by its owner".into(),
    };
    // Another deployment's notice goes first: a subscriber that heard it would get it first.
    q.other.publish_cancel(&notice(0)).await.unwrap();
    q.a.publish_cancel(&notice(1)).await.unwrap();
    q.b.complete_batch(BatchOutcome {
        cancels: vec![notice(2), notice(3)],
        ..BatchOutcome::default()
    })
    .await
    .unwrap();

    for subscriber in [&mut first, &mut second] {
        let mut heard = Vec::new();
        for _ in 0..3 {
            let next = tokio::time::timeout(PATIENCE, subscriber.next()).await;
            heard.push(next.expect("a notice in time").expect("the stream goes on"));
        }
        assert_eq!(heard, [notice(1), notice(2), notice(3)]);
    }
}

pub async fn worker_heartbeats_are_live_until_they_go_stale(q: Queues) {
    let now = 1_900_000_000_000;
    let beat = |worker: &str, pid: u32, last: i64| WorkerHeartbeat {
        id: format!("{worker}:{KIND}"),
        worker_id: worker.to_owned(),
        kind: KIND.to_owned(),
        pid,
        hostname: "host-1".into(),
        started_at_ms: now - 60_000,
        last_heartbeat_ms: last,
    };
    q.a.worker_heartbeat(&beat("w1", 1, now - 3_000))
        .await
        .unwrap();
    q.b.worker_heartbeat(&beat("w2", 2, now - 3_001))
        .await
        .unwrap();
    q.a.worker_heartbeat(&beat("a0", 3, now)).await.unwrap();

    let live = q.b.live_workers(now, 3_000).await.unwrap();
    assert_eq!(
        live,
        [beat("a0", 3, now), beat("w1", 1, now - 3_000)],
        "by id, at most 3 s old"
    );
    // The stale one was removed, not only left out.
    let ids = |hs: Vec<WorkerHeartbeat>| hs.into_iter().map(|h| h.id).collect::<Vec<_>>();
    let live = q.a.live_workers(now - 10_000, 1_000_000).await.unwrap();
    assert_eq!(ids(live), ["a0:work", "w1:work"]);

    // A later beat replaces the earlier.
    q.b.worker_heartbeat(&beat("w1", 11, now + 2_000))
        .await
        .unwrap();
    let live = q.a.live_workers(now + 2_000, 3_000).await.unwrap();
    assert_eq!(live, [beat("a0", 3, now), beat("w1", 11, now + 2_000)]);
    assert!(
        q.a.live_workers(now + 10_000, 3_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(q.b.live_workers(now, 1_000_000).await.unwrap().is_empty());
}

pub async fn queues_of_other_deployments_share_nothing(q: Queues) {
    let o = q.other.as_ref();
    o.join_kinds(&[KIND.to_owned()]).await.unwrap();
    q.a.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let wake = baton_queue::TimerEntry {
        due_ms: 1,
        wake: v1::WakeRunCommand {
            run_id: "run-9".into(),
            ..Default::default()
        },
    };
    o.dispatch(&[job(9, "fetch", 1)], &[wake]).await.unwrap();
    o.send_to_runner(&[start(9)]).await.unwrap();
    o.complete_batch(BatchOutcome {
        events: vec![event(9, 1)],
        dead_letters: vec![letter("runner", "", "no reason", vec![9])],
        ..BatchOutcome::default()
    })
    .await
    .unwrap();
    o.worker_heartbeat(&WorkerHeartbeat {
        id: "w9:work".into(),
        worker_id: "w9".into(),
        kind: KIND.to_owned(),
        pid: 9,
        hostname: "host-9".into(),
        started_at_ms: 1,
        last_heartbeat_ms: 1,
    })
    .await
    .unwrap();

    take_jobs(q.a.as_ref(), "w1", 0).await;
    assert_eq!(
        q.a.fire_due_timers(i64::MAX / 2, 10).await.unwrap().moved,
        0
    );
    take_runner(q.a.as_ref(), "runner-1", 0).await;
    let seen =
        q.a.read_events(&EventCursor::start(), 10, Duration::from_millis(10))
            .await;
    assert!(seen.unwrap().is_empty());
    assert!(q.a.dead_letters(10).await.unwrap().is_empty());
    assert!(q.a.live_workers(1, 1_000).await.unwrap().is_empty());
    let stats = q.a.stats(&[KIND.to_owned()]).await.unwrap();
    assert!(
        stats.iter().all(|s| s.length == 0 && s.pending == 0),
        "{stats:?}"
    );

    // The other deployment still has all of it.
    assert_eq!(messages(&take_jobs(o, "w1", 1).await), [job(9, "fetch", 1)]);
    assert_eq!(messages(&take_runner(o, "runner-1", 1).await), [start(9)]);
    assert_eq!(o.dead_letters(10).await.unwrap().len(), 1);
}

/// A run event the log holds but cannot decode (written by a broken or newer publisher) is
/// skipped: readers get the events around it in order, and a read with only such entries after
/// its cursor waits out its block instead of failing or spinning. `inject` appends one
/// undecodable entry to the event log, the way only the backend itself can.
pub async fn undecodable_events_are_skipped<F, Fut>(q: std::sync::Arc<dyn Queue>, inject: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let publish = |sequence| BatchOutcome {
        events: vec![event(1, sequence)],
        ..BatchOutcome::default()
    };
    q.complete_batch(publish(1)).await.unwrap();
    inject().await;
    q.complete_batch(publish(2)).await.unwrap();
    let read = q
        .read_events(&EventCursor::start(), 10, Duration::from_millis(10))
        .await
        .unwrap();
    let sequences: Vec<i64> = read.iter().map(|(_, e)| e.sequence).collect();
    assert_eq!(sequences, [1, 2], "the undecodable event is left out");

    // Only an undecodable entry after the cursor: the read waits its block and returns nothing.
    let cursor = read.last().unwrap().0.clone();
    inject().await;
    let block = Duration::from_millis(300);
    let began = Instant::now();
    let nothing = q.read_events(&cursor, 10, block).await.unwrap();
    assert!(nothing.is_empty(), "{nothing:?}");
    assert!(
        began.elapsed() + Duration::from_millis(5) >= block,
        "returned after {:?}, before its block",
        began.elapsed()
    );
    // And the next event after it is read as usual.
    q.complete_batch(publish(3)).await.unwrap();
    let next = q.read_events(&cursor, 10, PATIENCE).await.unwrap();
    let sequences: Vec<i64> = next.iter().map(|(_, e)| e.sequence).collect();
    assert_eq!(sequences, [3]);
}
