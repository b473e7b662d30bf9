//! Timers: a wake-up reaches the runner inbox once, when it is due and not before, however many
//! runners fire timers at the same moment.

use std::collections::BTreeSet;

use baton_proto::v1;
use baton_queue::{FiredTimers, TimerEntry};

use super::{Queues, fixtures::*};

/// Unix milliseconds in 2030: timers are due by the clock the caller passes, not the queue's.
const BASE_MS: i64 = 1_900_000_000_000;

fn timer(run: u32, due_ms: i64) -> TimerEntry {
    TimerEntry {
        due_ms,
        wake: v1::WakeRunCommand {
            run_id: format!("run-{run}"),
            reason: v1::WakeReason::RetryDue as i32,
            due_at: Some(baton_proto::timestamp_from_micros(due_ms * 1_000)),
        },
    }
}

fn fired(moved: usize, next_due_ms: Option<i64>) -> FiredTimers {
    FiredTimers { moved, next_due_ms }
}

pub async fn timers_fire_once_and_only_when_due(q: Queues) {
    q.a.join_kinds(&[]).await.unwrap();
    let timers = [
        timer(3, BASE_MS + 300),
        timer(1, BASE_MS + 100),
        timer(2, BASE_MS + 200),
    ];
    q.a.dispatch(&[], &timers).await.unwrap();

    assert_eq!(
        q.b.fire_due_timers(BASE_MS + 99, 100).await.unwrap(),
        fired(0, Some(BASE_MS + 100)),
        "nothing is due yet"
    );
    take_runner(q.a.as_ref(), "runner-1", 0).await;

    assert_eq!(
        q.b.fire_due_timers(BASE_MS + 200, 100).await.unwrap(),
        fired(2, Some(BASE_MS + 300)),
        "due at or before now"
    );
    let inbox = take_runner(q.a.as_ref(), "runner-1", 2).await;
    let wakes: Vec<_> = messages(&inbox);
    assert_eq!(
        wakes.iter().map(woken).collect::<Vec<_>>(),
        ["run-1", "run-2"]
    );
    let v1::runner_message::Message::WakeRun(wake) = wakes[0].message.clone().unwrap() else {
        unreachable!("checked by `woken`")
    };
    assert_eq!(wake, timers[1].wake, "the wake-up as it was set");

    assert_eq!(
        q.a.fire_due_timers(BASE_MS + 200, 100).await.unwrap(),
        fired(0, Some(BASE_MS + 300)),
        "fired timers are gone"
    );
    take_runner(q.a.as_ref(), "runner-1", 0).await;
    assert_eq!(
        q.a.fire_due_timers(BASE_MS + 10_000, 100).await.unwrap(),
        fired(1, None)
    );
    let inbox = take_runner(q.b.as_ref(), "runner-1", 1).await;
    assert_eq!(woken(&message(&inbox[0])), "run-3");
    assert_eq!(
        q.b.fire_due_timers(BASE_MS + 10_000, 100).await.unwrap(),
        fired(0, None)
    );

    // At most `max` at a time, earliest first; two wake-ups of one run are both kept.
    let timers: Vec<_> = (0..5)
        .map(|i| timer(10 + i, BASE_MS + 1_000 + i64::from(i)))
        .chain([timer(10, BASE_MS + 900)])
        .collect();
    q.a.dispatch(&[], &timers).await.unwrap();
    let now = BASE_MS + 2_000;
    assert_eq!(
        q.b.fire_due_timers(now, 2).await.unwrap(),
        fired(2, Some(BASE_MS + 1_001))
    );
    assert_eq!(
        q.b.fire_due_timers(now, 2).await.unwrap(),
        fired(2, Some(BASE_MS + 1_003))
    );
    assert_eq!(q.b.fire_due_timers(now, 2).await.unwrap(), fired(2, None));
    let inbox = take_runner(q.a.as_ref(), "runner-1", 6).await;
    let runs: Vec<String> = messages(&inbox).iter().map(woken).collect();
    assert_eq!(
        runs,
        ["run-10", "run-10", "run-11", "run-12", "run-13", "run-14"]
    );

    // The same wake-up set twice (a retried dispatch) is one timer: it fires once.
    let again = timer(20, BASE_MS + 3_000);
    q.a.dispatch(&[], std::slice::from_ref(&again))
        .await
        .unwrap();
    q.b.dispatch(&[], &[again]).await.unwrap();
    assert_eq!(
        q.a.fire_due_timers(BASE_MS + 3_000, 100).await.unwrap(),
        fired(1, None)
    );
    let inbox = take_runner(q.b.as_ref(), "runner-1", 1).await;
    assert_eq!(woken(&message(&inbox[0])), "run-20");
}

pub async fn concurrent_firing_moves_each_timer_once(q: Queues) {
    const TIMERS: u32 = 60;
    q.a.join_kinds(&[]).await.unwrap();
    let timers: Vec<_> = (0..TIMERS)
        .map(|i| timer(i, BASE_MS + i64::from(i)))
        .collect();
    q.a.dispatch(&[], &timers).await.unwrap();

    let firing: Vec<_> = (0..8)
        .map(|i| {
            let queue = if i % 2 == 0 { q.a.clone() } else { q.b.clone() };
            tokio::spawn(async move {
                let mut moved = 0;
                loop {
                    let f = queue.fire_due_timers(BASE_MS + 1_000, 3).await.unwrap();
                    moved += f.moved;
                    if f.moved == 0 && f.next_due_ms.is_none() {
                        return moved;
                    }
                }
            })
        })
        .collect();
    let mut moved = 0;
    for task in firing {
        moved += task.await.unwrap();
    }
    assert_eq!(moved, TIMERS as usize, "each timer counted as moved once");

    let inbox = take_runner(q.b.as_ref(), "runner-1", TIMERS as usize).await;
    let runs: BTreeSet<String> = messages(&inbox).iter().map(woken).collect();
    assert_eq!(
        runs.len(),
        TIMERS as usize,
        "each timer reached the inbox once"
    );
}
