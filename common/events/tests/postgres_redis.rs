//! The run event suite on the production backends: [`PgStore`] on a database of its own per
//! check, created from `DATABASE_URL` and dropped after, and [`RedisQueue`] on `REDIS_URL` under
//! a key prefix of its own, removed after.

#[macro_use]
mod suite;

use std::{future::Future, sync::Arc, time::Duration};

use baton_queue::{RedisQueue, RedisQueueConfig};
use baton_store::PgStore;
use sqlx::Connection;

use suite::Backend;

events_suite!(with_postgres_and_redis);

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let path = base.find("://").map_or(0, |i| i + 3);
    let base = match base[path..].find('/') {
        Some(i) => &base[..path + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

async fn with_postgres_and_redis<F, Fut>(check: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let id = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("baton_test_{}", &id[..16]);
    let prefix = format!("baton-test-{}", &id[..16]);
    let mut admin = sqlx::PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| panic!("cannot reach Postgres (set DATABASE_URL): {e}"));
    // Databases are copied from a template, which refuses while another session copies it.
    let create = format!("CREATE DATABASE {database}");
    let mut tries = 0;
    while let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create.as_str()))
        .execute(&mut admin)
        .await
    {
        tries += 1;
        let busy = e.to_string().contains("is being accessed by other users");
        assert!(busy && tries < 50, "cannot create {database}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = PgStore::connect(&with_database(&admin_url(), &database), 8)
        .await
        .expect("connect to the check's database");
    store.migrate().await.expect("migrations apply");
    let pool = store.pool().clone();
    let queue = RedisQueue::connect(RedisQueueConfig::new(redis_url(), prefix.clone()))
        .await
        .unwrap_or_else(|e| panic!("cannot reach Redis (set REDIS_URL): {e}"));

    let outcome = tokio::spawn(check(Backend {
        store: Arc::new(store),
        queue: Arc::new(queue),
    }))
    .await;

    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
    let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .expect("drop the check's database");
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
