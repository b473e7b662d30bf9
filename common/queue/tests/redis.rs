//! The queue conformance suite against [`RedisQueue`] on `REDIS_URL`: each check gets key
//! prefixes of its own, removed after, so checks run in parallel on one shared Redis.

#[macro_use]
mod conformance;

use std::{
    future::Future,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use baton_queue::{RedisQueue, RedisQueueConfig};

use conformance::Queues;

queue_conformance!(with_redis);

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn connect(prefix: &str) -> Arc<RedisQueue> {
    let queue = RedisQueue::connect(RedisQueueConfig::new(redis_url(), prefix))
        .await
        .unwrap_or_else(|e| panic!("cannot reach Redis (set REDIS_URL): {e}"));
    Arc::new(queue)
}

/// Opens two queues on one fresh prefix and one on another, runs `check`, and removes every key
/// under both prefixes whether the check passed or not.
async fn with_redis<F, Fut>(check: F)
where
    F: FnOnce(Queues) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // One process per test, so the pid and the clock make the prefix unique.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("baton-test-{:x}-{nanos:x}", std::process::id());
    let other = format!("{prefix}-other");
    let queues = Queues {
        a: connect(&prefix).await,
        b: connect(&prefix).await,
        other: connect(&other).await,
    };

    let outcome = tokio::spawn(check(queues)).await;

    let client = redis::Client::open(redis_url()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reach Redis to clean up");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("list the check's keys");
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .expect("remove the check's keys");
    }
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("check did not finish: {e}"),
    }
}

#[tokio::test]
async fn an_undecodable_event_is_skipped() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("baton-test-{:x}-{nanos:x}-undecodable", std::process::id());
    let queue = connect(&prefix).await;
    let events = queue.keys().events();
    let client = redis::Client::open(redis_url()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reach Redis");
    let (injector, events_key) = (conn.clone(), events.clone());
    let inject = move || {
        let (mut conn, events) = (injector.clone(), events_key.clone());
        async move {
            // A length-delimited field that claims more bytes than follow.
            let _: String = redis::cmd("XADD")
                .arg(&events)
                .arg("*")
                .arg("d")
                .arg(vec![0x0a_u8, 0x05, 0x01])
                .query_async(&mut conn)
                .await
                .expect("append a raw entry");
        }
    };
    let outcome = tokio::spawn(conformance::undecodable_events_are_skipped(
        queue.clone(),
        inject,
    ))
    .await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("list the test's keys");
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .expect("remove the test's keys");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Opens a queue on a fresh prefix with `config` changed by `configure`, runs `check` with it and
/// a raw connection, and removes the prefix's keys whether the check passed or not.
async fn with_configured<F, Fut>(configure: impl FnOnce(&mut RedisQueueConfig), check: F)
where
    F: FnOnce(Arc<RedisQueue>, redis::aio::MultiplexedConnection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("baton-test-{:x}-{nanos:x}-configured", std::process::id());
    let mut config = RedisQueueConfig::new(redis_url(), &prefix);
    configure(&mut config);
    let queue = Arc::new(RedisQueue::connect(config).await.expect("reach Redis"));
    let client = redis::Client::open(redis_url()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reach Redis");
    let outcome = tokio::spawn(check(queue, conn.clone())).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("list the test's keys");
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .expect("remove the test's keys");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn dead_letters_are_capped_oldest_first() {
    with_configured(
        |config| config.dead_letters_max_len = conformance::CAPPED_DEAD_LETTERS,
        |queue, _| conformance::dead_letters_are_capped_oldest_first(queue),
    )
    .await;
}

/// The consumers of each group on `stream`, with their pending counts.
async fn consumers(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Vec<(String, u64)> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(group)
        .query_async(conn)
        .await
        .expect("XINFO CONSUMERS");
    let mut out: Vec<_> = reply
        .consumers
        .into_iter()
        .map(|c| (c.name, c.pending as u64))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn idle_consumers_without_pending_entries_leave_their_groups() {
    use baton_queue::{BatchOutcome, JobStream, QueueAdmin, RunnerInbox};
    use conformance::fixtures::*;
    use std::time::Duration;

    with_configured(
        |_| {},
        |queue, mut conn| async move {
            let kinds = [KIND.to_owned(), "other".to_owned()];
            queue.join_kinds(&kinds).await.unwrap();
            queue
                .dispatch(&[job(1, "fetch", 1), job(2, "fetch", 1)], &[])
                .await
                .unwrap();
            let held = take_first_jobs(queue.as_ref(), "w-gone", 1).await;
            let done = take_jobs(queue.as_ref(), "w-done", 1).await;
            queue
                .report(KIND, &[result(&message(&done[0]))], &ids(&done))
                .await
                .unwrap();
            let inbox = take_runner(queue.as_ref(), "r-done", 1).await;
            queue
                .complete_batch(BatchOutcome {
                    ack: ids(&inbox),
                    ..BatchOutcome::default()
                })
                .await
                .unwrap();
            // A worker of another kind that finished its job.
            let other = baton_proto::v1::Job {
                kind: "other".into(),
                ..job(3, "fetch", 1)
            };
            queue.dispatch(&[other], &[]).await.unwrap();
            let taken = queue
                .read_jobs("other", "w-other", 1, PATIENCE)
                .await
                .unwrap();
            queue.report("other", &[], &ids(&taken)).await.unwrap();
            // Redis counts idle time from its clock of the moment, coarse by tens of
            // milliseconds: the gaps are far wider.
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            // A replica still at work: it took and finished a message a moment ago.
            queue.send_to_runner(&[start(9)]).await.unwrap();
            let live = take_runner(queue.as_ref(), "r-live", 1).await;
            queue
                .complete_batch(BatchOutcome {
                    ack: ids(&live),
                    ..BatchOutcome::default()
                })
                .await
                .unwrap();

            let mut removed = queue
                .remove_idle_consumers(Duration::from_millis(750))
                .await
                .unwrap();
            removed.sort();
            assert_eq!(
                removed,
                ["jobs:other/w-other", "jobs:work/w-done", "runner/r-done"]
            );
            let keys = queue.keys();
            assert_eq!(
                consumers(&mut conn, &keys.jobs(KIND), "workers").await,
                [("w-gone".to_owned(), 1)],
                "the consumer holding a job stays, with its job"
            );
            assert_eq!(
                consumers(&mut conn, &keys.runner(), "runners").await,
                [("r-live".to_owned(), 0)]
            );
            assert!(
                consumers(&mut conn, &keys.jobs("other"), "workers")
                    .await
                    .is_empty()
            );
            let reclaimed = queue
                .reclaim_jobs(KIND, "w-next", Duration::ZERO, 10)
                .await
                .unwrap();
            assert_eq!(ids(&reclaimed), ids(&held));
        },
    )
    .await;
}
