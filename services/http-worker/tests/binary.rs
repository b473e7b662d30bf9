//! The `baton-http-worker` binary as operators start it: Redis only, gRPC health and Prometheus
//! metrics, the `http` steps of a stack whose orchestrator lists the kind, and a clean exit on
//! SIGTERM.

use std::time::Duration;

use axum::{Router, routing::get};
use baton_proto::v1::RunStatus;
use baton_testkit::{
    ServiceProcess, StackOptions, TestBackend, TestStack, http_get, output, status, step,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_binary_needs_only_redis_serves_health_and_runs_http_steps() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let app = Router::new().route("/hello", get(|| async { "hi there" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let backend = TestBackend::create().await.unwrap();
    let worker = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-http-worker"),
        || {
            let mut env = backend.service_env()?;
            env.retain(|(name, _)| !name.starts_with("DATABASE_"));
            env.push(("BATON_WORKER_ID".into(), "http-1".into()));
            env.push(("HTTP_WORKER_ALLOW".into(), "127.0.0.1".into()));
            Ok(env)
        },
        &["GRPC_PORT", "METRICS_PORT"],
    )
    .await
    .unwrap();
    for service in ["", baton_http_worker::HEALTH_SERVICE] {
        baton_testkit::wait_until_serving(worker.addr("GRPC_PORT"), service, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", worker.output()));
    }
    let (code, _, body) = http_get(worker.addr("METRICS_PORT"), "/metrics")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("process_resident_memory_bytes"));

    let stack = TestStack::start_on(
        backend,
        StackOptions {
            extra_kinds: vec!["http".to_owned()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    stack
        .register(&format!(
            "owner: t\nname: hello\nversion: 1\nsteps:\n  - {{id: get, kind: http, input: {{url: 'http://{api}/hello'}}}}\n"
        ))
        .await
        .unwrap();
    let run = stack.start_run("t/hello@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    let get = step(&run, "get");
    assert_eq!(output(get)["body"], "hi there");
    assert_eq!(get.attempts[0].worker_id, "http-1");

    // A private address is refused, and counted by reason.
    stack
        .register("owner: t\nname: private\nversion: 1\nsteps:\n  - {id: get, kind: http, input: {url: 'http://10.0.0.1/'}}\n")
        .await
        .unwrap();
    let run = stack.start_run("t/private@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Failed);
    let (_, _, body) = http_get(worker.addr("METRICS_PORT"), "/metrics")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    for line in [
        "baton_http_requests_total{class=\"2xx\"} 1",
        "baton_http_response_bytes_total 8",
        "baton_http_blocked_total{reason=\"private\"} 1",
        "baton_http_request_duration_seconds_count{class=\"2xx\"} 1",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }

    let (exit, printed) = worker.terminate(WAIT).await.unwrap();
    assert!(exit.success(), "{exit}\n{printed}");
    stack.stop().await;
}
