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
