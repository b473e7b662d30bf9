//! The store conformance suite against [`PgStore`]: each check gets a database of its own,
//! created from `DATABASE_URL` (a database the user may create databases from) and dropped
//! after, so checks run in parallel and every one starts empty.

#[macro_use]
mod conformance;

use std::{future::Future, sync::Arc, time::Duration};

use baton_store::PgStore;
use sqlx::Connection;

use conformance::Handles;

#[path = "postgres/maintenance.rs"]
mod maintenance;

store_conformance!(with_postgres);

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
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

async fn admin() -> sqlx::PgConnection {
    let url = admin_url();
    sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Postgres (set DATABASE_URL): {e}"))
}

/// Creates a database of its own; returns its name and URL.
async fn create_database(conn: &mut sqlx::PgConnection) -> (String, String) {
    let database = format!("baton_test_{}", uuid::Uuid::new_v4().simple());
    let create = format!("CREATE DATABASE {database}");
    // Databases are copied from a template, which refuses while another session copies it.
    let mut tries = 0;
    while let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create.as_str()))
        .execute(&mut *conn)
        .await
    {
        tries += 1;
        let busy = e.to_string().contains("is being accessed by other users");
        assert!(busy && tries < 50, "cannot create {database}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = with_database(&admin_url(), &database);
    (database, url)
}

async fn drop_database(conn: &mut sqlx::PgConnection, database: &str) {
    let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(conn)
        .await
        .expect("drop the check's database");
}

/// Creates a fresh database with Baton's schema, opens two stores on it, runs `check`, and
/// drops the database whether the check passed or not.
async fn with_postgres<F, Fut>(check: F)
where
    F: FnOnce(Handles) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conn = admin().await;
    let (database, url) = create_database(&mut conn).await;
    let a = PgStore::connect(&url, 4).await.expect("connect");
    a.migrate().await.expect("migrations apply");
    let b = PgStore::connect(&url, 4).await.expect("connect");
    let pools = [a.pool().clone(), b.pool().clone()];

    let outcome = tokio::spawn(check(Handles {
        a: Arc::new(a),
        b: Arc::new(b),
    }))
    .await;

    for pool in pools {
        let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
    }
    drop_database(&mut conn, &database).await;
    resume(outcome);
}

fn resume(outcome: Result<(), tokio::task::JoinError>) {
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("check did not finish: {e}"),
    }
}

/// A database migrated as a release before tenants left it (migrations 1 to 3), holding a
/// workflow, then migrated by this build.
#[tokio::test]
async fn a_workflow_stored_before_tenants_is_the_default_tenants() {
    let mut conn = admin().await;
    let (database, url) = create_database(&mut conn).await;
    let store = PgStore::connect(&url, 2).await.expect("connect");
    let pool = store.pool().clone();
    let outcome = tokio::spawn(async move {
        let all = sqlx::migrate!("./migrations/postgres");
        let before_tenants = sqlx::migrate::Migrator {
            migrations: all
                .migrations
                .iter()
                .filter(|m| m.version < 4)
                .cloned()
                .collect::<Vec<_>>()
                .into(),
            ..sqlx::migrate!("./migrations/postgres")
        };
        before_tenants
            .run(store.pool())
            .await
            .expect("migrations 1 to 3");
        let wf = conformance::fixtures::pipeline("acme", "etl", 1);
        let stored = conformance::fixtures::new_workflow(&wf);
        sqlx::query(
            "INSERT INTO workflows (owner, name, version, digest, definition) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&stored.owner)
        .bind(&stored.name)
        .bind(stored.version as i32)
        .bind(&stored.digest)
        .bind(&stored.definition)
        .execute(store.pool())
        .await
        .expect("a workflow of the old schema");
        // A run of another tenant, made when workflows had no tenant, keeps its definition.
        sqlx::query(
            "INSERT INTO runs (id, tenant, workflow_ref, status, inputs, created_at) \
             VALUES ($1, 'globex', 'acme/etl@1', 'running', '{}', now())",
        )
        .bind(uuid::Uuid::now_v7())
        .execute(store.pool())
        .await
        .expect("a run of the old schema");
        store.migrate().await.expect("this build's migrations");
        conformance::a_workflow_stored_before_tenants_is_the_default_tenants(&store, &wf).await;
        conformance::a_tenant_with_runs_of_a_workflow_keeps_it(&store, &wf, "globex").await;
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
    drop_database(&mut conn, &database).await;
    resume(outcome);
}
