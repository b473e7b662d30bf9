//! Step rows change on every move of their run, so those updates must be HOT (they change no
//! indexed column): each then adds no index entry, and the page drops the old version without a
//! VACUUM, which is what keeps a server without autovacuum fast as history grows.

use std::time::Duration;

use baton_engine::now_micros;
use baton_store::{PgStore, Store};
use sqlx::{Connection, PgConnection};

use super::{admin, conformance::fixtures::*, create_database, drop_database, resume};

#[tokio::test]
async fn step_updates_touch_no_index_but_the_retry_timers() {
    let mut admin = admin().await;
    let (database, url) = create_database(&mut admin).await;
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            let store = PgStore::connect(&url, 2).await.expect("connect");
            store.migrate().await.expect("migrations apply");
            let wf = pipeline("acme", "etl", 1);
            store
                .put_workflow(new_workflow_in("t", &wf))
                .await
                .expect("workflow");
            let t0 = now_micros();
            let id = create(&store, new_run("t", "acme/etl@1", t0)).await.id;
            for mv in pipeline_to_completion(id, t0) {
                change(&store, id, |r, fx| mv.apply(r, &wf, fx)).await;
            }
            // Sessions report their counts to the server's statistics when they end.
            store.pool().close().await;

            let mut conn = PgConnection::connect(&url).await.expect("connect");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let (updates, hot) = loop {
                let counts: (i64, i64) = sqlx::query_as(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
                     WHERE relname = 'step_runs'",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                if counts.0 > 0 || tokio::time::Instant::now() > deadline {
                    break counts;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert!(updates >= 5, "the moves updated the steps: {updates}");
            // Two updates change `next_attempt_at`, which the retry index holds: the failed
            // attempt's retry timer is set, then cleared when the step is dispatched again.
            assert!(
                hot >= updates - 2,
                "{hot} of {updates} step updates were HOT"
            );
        }
    })
    .await;
    drop_database(&mut admin, &database).await;
    resume(outcome);
}
