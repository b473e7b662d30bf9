//! What every run event stream promises, written once against the store and queue traits so
//! each backend pair runs the same checks. A backend's test file invokes [`events_suite!`] with a
//! function that opens a [`Backend`] on a fresh store and queue and runs one check with it.

pub mod driver;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_events::{EventsConfig, EventsError, RunEvents};
use baton_proto::v1::{self, RunEventType};
use baton_queue::{EventCursor, EventLog, QueueError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use driver::Backend;
use driver::*;

/// A quiet poll the checks never wait out: what arrives within [`SOON`] came live (or from a
/// store read a live event prompted).
fn live_only() -> EventsConfig {
    EventsConfig {
        quiet_poll: Duration::from_secs(3_600),
        ..EventsConfig::default()
    }
}

fn is_end(event: &v1::RunEvent) -> bool {
    matches!(
        RunEventType::try_from(event.r#type),
        Ok(RunEventType::RunCompleted
            | RunEventType::RunFailed
            | RunEventType::RunCancelled
            | RunEventType::RunTimedOut)
    )
}

pub async fn replay_then_live_has_no_gap_or_duplicate(b: Backend) {
    const STEPS: usize = 12;
    let (events, _stop) = b.events(live_only());
    let wf = b.fan_out("seam", STEPS).await;
    let run = b.create_run(&wf, "acme").await;
    // Before the watch: queued, started, every step queued.
    b.start(run, &wf).await;

    // During the watch, and after it began: two publishers take turns with the run, as two
    // runner replicas do, so live events can also arrive out of order.
    let (watching_tx, watching_rx) = tokio::sync::watch::channel(false);
    let publishers: Vec<_> = (0..2)
        .map(|half| {
            let (b, wf, mut watching) = (b.clone(), wf.clone(), watching_rx.clone());
            tokio::spawn(async move {
                let mine: Vec<usize> = (half..STEPS).step_by(2).collect();
                let (during, after) = mine.split_at(2);
                b.finish(run, &wf, during.iter().copied()).await;
                watching
                    .wait_for(|w| *w)
                    .await
                    .expect("the check is watching");
                b.finish(run, &wf, after.iter().copied()).await;
            })
        })
        .collect();
    let stream = events.watch(run, 0).await.expect("watch");
    watching_tx.send_replace(true);
    let seen = collect(stream, "the run's events").await;
    for p in publishers {
        p.await.expect("publisher");
    }

    let stored = b.stored(run).await;
    assert_eq!(
        sequences(&seen),
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "each event once, in order"
    );
    assert_eq!(
        essence(&seen),
        essence(&stored),
        "the events are the store's"
    );
    assert_eq!(
        stored.len(),
        2 + 3 * STEPS + 1,
        "queued, started, 3 per step, completed"
    );
    assert!(is_end(seen.last().unwrap()), "ends with the run's end");
    assert!(
        seen.iter()
            .all(|e| e.tenant == "acme" && e.workflow_ref == "events/seam@1"),
        "labelled with the run's tenant and workflow: {seen:?}"
    );
    assert_eq!(events.watchers(), 0, "an ended stream watches nothing");
}

pub async fn a_watcher_sees_only_its_own_run(b: Backend) {
    const STEPS: usize = 6;
    let (events, _stop) = b.events(live_only());
    let wf = b.fan_out("pair", STEPS).await;
    let runs = [b.create_run(&wf, "t1").await, b.create_run(&wf, "t2").await];
    let mut streams = Vec::new();
    for run in runs {
        streams.push(events.watch(run, 0).await.expect("watch"));
    }
    assert_eq!(events.watchers(), 2);
    let watchers: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(collect(s, "a run's events")))
        .collect();
    // Interleaved, so each run's events sit among the other's in the log.
    for run in runs {
        b.start(run, &wf).await;
    }
    for i in 0..STEPS {
        for run in runs {
            b.finish(run, &wf, [i]).await;
        }
    }
    for (run, watcher) in runs.into_iter().zip(watchers) {
        let seen = watcher.await.expect("watcher");
        let stored = b.stored(run).await;
        assert!(
            seen.iter().all(|e| e.run_id == run.to_string()),
            "run {run}'s watcher saw another run's events: {seen:?}"
        );
        assert_eq!(essence(&seen), essence(&stored));
    }
}

pub async fn a_lost_live_event_comes_from_the_store_while_other_runs_are_busy(b: Backend) {
    let quiet_poll = Duration::from_millis(500);
    let (events, _stop) = b.events(EventsConfig {
        quiet_poll,
        ..EventsConfig::default()
    });
    let wf = b.fan_out("lost", 2).await;
    let run = b.create_run(&wf, "t").await;
    b.start(run, &wf).await;
    let mut stream = Box::pin(events.watch(run, 0).await.expect("watch"));
    let before = b.stored(run).await.len();
    for _ in 0..before {
        next(&mut stream, "the replay")
            .await
            .expect("an event")
            .expect("no error");
    }

    // Another run publishes without pause for as long as the check lasts.
    let busy = Uuid::new_v4();
    let noise = {
        let b = b.clone();
        tokio::spawn(async move {
            for sequence in 1.. {
                b.publish(vec![v1::RunEvent {
                    run_id: busy.to_string(),
                    sequence,
                    r#type: RunEventType::StepQueued as i32,
                    ..Default::default()
                }])
                .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // The run's end is committed, and its publish lost.
    let end = b.cancel(run, false).await;
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    while let Some(item) = next(&mut stream, "the lost end").await {
        rest.push(item.expect("no error"));
    }
    let waited = started.elapsed();
    noise.abort();
    assert_eq!(
        essence(&rest),
        essence(&end),
        "the end, read from the store"
    );
    assert!(
        waited < quiet_poll * 10,
        "the lost end took {waited:?} with a quiet poll of {quiet_poll:?}"
    );
}

pub async fn a_watch_resumes_after_a_sequence(b: Backend) {
    let (events, _stop) = b.events(live_only());
    let wf = b.fan_out("resume", 3).await;
    let run = b.create_run(&wf, "t").await;
    b.start(run, &wf).await;
    b.finish(run, &wf, [0]).await;

    // While the run goes on: the rest of the replay, then live.
    let stream = events.watch(run, 3).await.expect("watch");
    let watcher = tokio::spawn(collect(stream, "the run after sequence 3"));
    b.finish(run, &wf, [1, 2]).await;
    let seen = watcher.await.expect("watcher");
    let stored = b.stored(run).await;
    assert_eq!(essence(&seen), essence(&stored[3..]));

    // After the end: exactly the rest, or nothing.
    let last = stored.len() as i64;
    let rest = collect(
        events.watch(run, last - 2).await.expect("watch"),
        "the tail",
    )
    .await;
    assert_eq!(sequences(&rest), vec![last - 1, last]);
    for after in [last, last + 10] {
        let none = collect(events.watch(run, after).await.expect("watch"), "nothing").await;
        assert!(none.is_empty(), "after {after} of {last}: {none:?}");
    }
    let all = collect(events.watch(run, -1).await.expect("watch"), "everything").await;
    assert_eq!(
        essence(&all),
        essence(&stored),
        "a negative sequence means from the start"
    );
}

pub async fn an_unknown_run_is_not_found(b: Backend) {
    let (events, _stop) = b.events(EventsConfig::default());
    let id = Uuid::new_v4();
    match events.watch(id, 0).await {
        Err(EventsError::NotFound(missing)) => assert_eq!(missing, id),
        Err(e) => panic!("expected NotFound, got {e}"),
        Ok(_) => panic!("a watch of an unknown run started"),
    }
    assert_eq!(
        events.watchers(),
        0,
        "nothing is watched for an unknown run"
    );
}

pub async fn the_stream_ends_after_the_end_event(b: Backend) {
    let (events, _stop) = b.events(live_only());
    let wf = b.fan_out("end", 1).await;
    let run = b.create_run(&wf, "t").await;
    b.start(run, &wf).await;
    let mut stream = Box::pin(events.watch(run, 0).await.expect("watch"));
    for _ in 0..b.stored(run).await.len() {
        next(&mut stream, "the replay")
            .await
            .expect("an event")
            .expect("no error");
    }
    // The step's cancel, then the run's end, in one batch.
    let end = b.cancel(run, true).await;
    assert!(is_end(end.last().unwrap()), "{end:?}");
    for want in &end {
        let got = next(&mut stream, "the cancel")
            .await
            .expect("an event")
            .expect("no error");
        assert_eq!(essence(&[got]), essence(std::slice::from_ref(want)));
    }
    assert!(
        next(&mut stream, "the stream to end").await.is_none(),
        "nothing after the end"
    );
    assert_eq!(events.watchers(), 0, "an ended stream watches nothing");
}

pub async fn a_watcher_that_falls_behind_catches_up_without_holding_up_others(b: Backend) {
    const BUFFER: usize = 4;
    let (events, _stop) = b.events(EventsConfig {
        buffer: BUFFER,
        ..live_only()
    });
    let many = b.fan_out("lag", 10).await;
    // Never more than the buffer in one batch, so its watcher keeps up.
    let few = b.fan_out("brisk", 1).await;
    let (slow, brisk) = (
        b.create_run(&many, "t").await,
        b.create_run(&few, "t").await,
    );
    let slow_stream = events.watch(slow, 0).await.expect("watch");
    let brisk_stream = events.watch(brisk, 0).await.expect("watch");
    let brisk_watcher = tokio::spawn(collect(brisk_stream, "the brisk run"));
    assert_eq!(events.watchers(), 2);

    // The slow watcher reads nothing while its run publishes many times its buffer.
    b.start(slow, &many).await;
    b.finish(slow, &many, 0..10).await;
    eventually("the slow watcher is dropped for lagging", || {
        let n = events.watchers();
        async move { n == 1 }
    })
    .await;
    b.start(brisk, &few).await;
    b.finish(brisk, &few, [0]).await;
    let seen = brisk_watcher.await.expect("brisk watcher");
    assert_eq!(
        essence(&seen),
        essence(&b.stored(brisk).await),
        "followed while the other lagged"
    );

    let seen = collect(slow_stream, "the slow run").await;
    assert_eq!(
        essence(&seen),
        essence(&b.stored(slow).await),
        "caught up from the store"
    );
}

pub async fn a_dropped_watch_is_forgotten_and_a_later_one_follows_live(b: Backend) {
    let (events, _stop) = b.events(live_only());
    let wf = b.fan_out("again", 2).await;
    let run = b.create_run(&wf, "t").await;
    let first = events.watch(run, 0).await.expect("watch");
    assert_eq!(events.watchers(), 1);
    drop(first);
    assert_eq!(events.watchers(), 0, "a dropped stream is no longer fed");

    // Published while nobody watches: the next watcher replays it, then follows live.
    b.start(run, &wf).await;
    let stream = events.watch(run, 0).await.expect("watch");
    let watcher = tokio::spawn(collect(stream, "the run"));
    b.finish(run, &wf, 0..2).await;
    let seen = watcher.await.expect("watcher");
    assert_eq!(essence(&seen), essence(&b.stored(run).await));
}

pub async fn shutdown_ends_every_stream_with_shutting_down(b: Backend) {
    let (events, stop) = b.events(live_only());
    let wf = b.fan_out("stop", 1).await;
    let run = b.create_run(&wf, "t").await;
    let mut stream = Box::pin(events.watch(run, 0).await.expect("watch"));
    next(&mut stream, "the first event")
        .await
        .expect("an event")
        .expect("no error");
    stop.cancel();
    match next(&mut stream, "the shutdown").await {
        Some(Err(EventsError::ShuttingDown)) => {}
        other => panic!("expected ShuttingDown, got {other:?}"),
    }
    assert!(next(&mut stream, "the stream to end").await.is_none());
    assert!(matches!(
        events.watch(run, 0).await.map(|_| ()),
        Err(EventsError::ShuttingDown)
    ));
}

/// The event log, except that its first `tail` waits until the check lets it go, so the check
/// can publish while the reader is finding the end of the log.
struct HeldTail {
    log: Arc<dyn EventLog>,
    held: Mutex<Option<mpsc::Sender<oneshot::Sender<()>>>>,
}

#[async_trait::async_trait]
impl EventLog for HeldTail {
    async fn read_events(
        &self,
        after: &EventCursor,
        max: usize,
        block: Duration,
    ) -> Result<Vec<(EventCursor, v1::RunEvent)>, QueueError> {
        self.log.read_events(after, max, block).await
    }

    async fn tail(&self) -> Result<EventCursor, QueueError> {
        let held = self.held.lock().unwrap().take();
        if let Some(held) = held {
            let (go, wait) = oneshot::channel();
            held.send(go).await.expect("the check waits for the tail");
            wait.await.expect("the check lets the tail go");
        }
        self.log.tail().await
    }
}

pub async fn a_first_watcher_replays_only_once_the_reader_found_the_log_end(b: Backend) {
    let (held_tx, mut held) = mpsc::channel(1);
    let log = HeldTail {
        log: b.queue.clone(),
        held: Mutex::new(Some(held_tx)),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let events = RunEvents::start_with(b.store.clone(), Arc::new(log), stop, live_only());
    let wf = b.fan_out("position", 1).await;
    let run = b.create_run(&wf, "t").await;
    b.start(run, &wf).await;

    let watcher = tokio::spawn(async move {
        let stream = events.watch(run, 0).await.expect("watch");
        collect(stream, "the run").await
    });
    let go = tokio::time::timeout(SOON, held.recv())
        .await
        .expect("the reader looks for the log's end")
        .expect("a tail call");
    // The run ends while the reader is positioning: its end is before the position found, so
    // only a store read after positioning can deliver it.
    b.cancel(run, true).await;
    go.send(()).expect("the reader waits");
    let seen = watcher.await.expect("watcher");
    assert_eq!(essence(&seen), essence(&b.stored(run).await));
}

/// One `#[tokio::test]` per check, each run by `$harness`: an `async fn(check)` that opens a
/// [`Backend`] on a fresh store and queue, awaits `check(backend)` and cleans up.
macro_rules! events_suite {
    ($harness:path) => {
        events_suite!(@checks $harness;
            replay_then_live_has_no_gap_or_duplicate,
            a_watcher_sees_only_its_own_run,
            a_lost_live_event_comes_from_the_store_while_other_runs_are_busy,
            a_watch_resumes_after_a_sequence,
            an_unknown_run_is_not_found,
            the_stream_ends_after_the_end_event,
            a_watcher_that_falls_behind_catches_up_without_holding_up_others,
            a_dropped_watch_is_forgotten_and_a_later_one_follows_live,
            shutdown_ends_every_stream_with_shutting_down,
            a_first_watcher_replays_only_once_the_reader_found_the_log_end,
        );
    };
    (@checks $harness:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $harness($crate::suite::$check).await;
            }
        )*
    };
}
