//! The HTTP port: `/health` and the raw-signal JSON, after a real run.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use baton_proto::v1::RunStatus;
use baton_signal::{SignalConfig, SignalSources};
use baton_testkit::{TestStack, status};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

#[tokio::test]
async fn health_and_raw_signal_describe_the_system() {
    let stack = TestStack::start().await.unwrap();
    let (code, body) = get(stack.orchestrator_http, "/health").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"service": "orchestrator", "status": "ok"})
    );

    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    let run = stack
        .start_run("examples/hello@1", json!({"name": "Ada", "count": 2}))
        .await
        .unwrap();
    let run = stack
        .wait_for_end(&run.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(status(&run), RunStatus::Completed);

    // Each kind's worker announces itself with its first heartbeat; the run needed only three
    // of the four kinds, so wait for the fourth rather than assume it has spoken by now.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let doc = loop {
        let (code, body) = get(stack.orchestrator_http, "/metrics").await;
        assert_eq!(code, 200, "{body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        let kinds: Vec<&str> = doc["agents"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["kind"].as_str().unwrap())
            .collect();
        if ["noop", "echo", "sleep", "fail"]
            .iter()
            .all(|kind| kinds.contains(kind))
        {
            break doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every built-in kind's worker is listed: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["clk_tck"], 100);
    assert!(doc["generated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(doc["queue"]["runs"]["completed"], 1);
    assert_eq!(doc["queue"]["runs"]["cancelled"], 0);
    assert_eq!(doc["queue"]["steps"]["completed"], 4);
    assert_eq!(doc["stages"]["active_runs"]["running"], 0);
    assert_eq!(doc["queue"]["kinds"]["fail"]["depth"], 0);
    let workers = doc["agents"]["workers"].as_array().unwrap();
    // The built-in workers run in this very process, so their CPU time is readable.
    assert!(
        workers.iter().all(|w| w["cpu_ticks"].is_u64()),
        "{workers:?}"
    );
    assert_eq!(doc["cost"]["total_tokens"], 0);

    // Turned off, the raw signal answers 404 and health still answers.
    let sources = SignalSources {
        service: "orchestrator",
        store: stack.store.clone(),
        queue: stack.queue.clone() as Arc<dyn baton_queue::QueueAdmin>,
        kinds: vec!["noop".into()],
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let router = baton_signal::router(
        sources,
        SignalConfig {
            raw_signal_enabled: false,
        },
    );
    tokio::spawn(baton_signal::serve(listener, router, token.clone()));
    assert_eq!(get(addr, "/metrics").await.0, 404);
    assert_eq!(get(addr, "/health").await.0, 200);
    token.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn an_unreachable_database_fails_health_and_only_its_sections() {
    let stack = TestStack::start().await.unwrap();
    // A store whose Postgres does not answer (nothing listens on port 1), beside a working Redis.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let sources = SignalSources {
        service: "orchestrator",
        store: Arc::new(baton_store::PgStore::from_pool(pool)),
        queue: stack.queue.clone() as Arc<dyn baton_queue::QueueAdmin>,
        kinds: vec!["noop".into()],
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let router = baton_signal::router(
        sources,
        SignalConfig {
            raw_signal_enabled: true,
        },
    );
    tokio::spawn(baton_signal::serve(listener, router, token.clone()));

    let (code, body) = get(addr, "/health").await;
    assert_eq!(code, 503);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unavailable");
    assert!(
        health["postgres"].is_string() && health.get("redis").is_none(),
        "{health}"
    );

    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["stages"]["error"].is_string(), "{doc}");
    assert!(doc["queue"]["error"].is_string(), "{doc}");
    assert!(
        doc["agents"]["workers"].is_array(),
        "Redis still answers: {doc}"
    );
    assert_eq!(doc["schema_version"], 1);
    token.cancel();
    stack.stop().await;
}
