//! The `baton-http-worker` binary as operators start it: Redis only, gRPC health and Prometheus
//! metrics, the `http` steps of a stack whose orchestrator lists the kind, and a clean exit on
//! SIGTERM.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use baton_proto::v1::RunStatus;
use baton_testkit::{
    ServiceProcess, StackOptions, TestBackend, TestStack, http_get, output, status, step,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "sk-live-7d1e0c5b-never-shown";

#[tokio::test]
async fn the_binary_needs_only_redis_serves_health_and_runs_http_steps() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hi there" }))
        .route(
            "/trace",
            get(|headers: axum::http::HeaderMap| async move {
                let parent = headers.get("traceparent").and_then(|v| v.to_str().ok());
                parent.unwrap_or("none").to_owned()
            }),
        )
        .route(
            "/whoami",
            get(|headers: axum::http::HeaderMap| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                format!("you sent {}", auth.unwrap_or("nothing"))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let backend = TestBackend::create().await.unwrap();
    let worker = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-http-worker"),
        || {
            let mut env = backend.service_env()?;
            env.retain(|(name, _)| !name.starts_with("DATABASE_"));
            env.push(("BATON_WORKER_ID".into(), "http-1".into()));
            env.push(("HTTP_WORKER_ALLOW".into(), "127.0.0.1".into()));
            env.push(("BATON_SECRET_API_TOKEN".into(), SECRET.into()));
            // Everything the worker says, to search for the secret after.
            env.push(("LOG_LEVEL".into(), "debug".into()));
            // Tracing on (to a collector that is not there): attempts have spans to propagate.
            env.push((
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                "http://127.0.0.1:9".into(),
            ));
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

    // A secret from the worker's environment reaches the callee, and neither the run nor the
    // worker's own log shows it.
    stack
        .register(&format!(
            "owner: t\nname: whoami\nversion: 1\nsteps:\n  - {{id: get, kind: http, input: {{url: 'http://{api}/whoami', headers: {{authorization: 'Bearer {{{{ secrets.API_TOKEN }}}}'}}}}}}\n"
        ))
        .await
        .unwrap();
    let run = stack.start_run("t/whoami@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    assert_eq!(output(step(&run, "get"))["body"], "you sent Bearer ***");
    assert!(!format!("{run:?}").contains(SECRET));

    // The request carries the attempt's W3C trace context.
    stack
        .register(&format!(
            "owner: t\nname: traced\nversion: 1\nsteps:\n  - {{id: get, kind: http, input: {{url: 'http://{api}/trace'}}}}\n"
        ))
        .await
        .unwrap();
    let run = stack.start_run("t/traced@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    let parent = output(step(&run, "get"))["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let fields: Vec<&str> = parent.split('-').collect();
    assert!(
        fields.len() == 4 && fields[0] == "00" && fields[1].len() == 32 && fields[2].len() == 16,
        "a W3C traceparent reached the callee: {parent}"
    );

    let (exit, printed) = worker.terminate(WAIT).await.unwrap();
    assert!(
        !printed.contains(SECRET),
        "the worker's log shows the secret:\n{printed}"
    );
    assert!(
        printed.contains("DEBUG") || printed.contains("debug"),
        "debug logging was on:\n{printed}"
    );
    assert!(exit.success(), "{exit}\n{printed}");
    stack.stop().await;
}

/// A worker killed (SIGKILL) while its request is in flight loses nothing: the job is taken over
/// by another worker once its claim lapses, the request is made again, and the run completes.
#[tokio::test]
async fn a_worker_killed_mid_request_is_replaced_and_the_run_completes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = Router::new().route(
        "/slow-once",
        get(move || {
            let seen = seen.clone();
            async move {
                // The first call hangs until its worker is gone; later ones answer at once.
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                }
                "done"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let backend = TestBackend::create().await.unwrap();
    let worker_env = |id: &str| {
        let mut env = backend.service_env().unwrap();
        env.retain(|(name, _)| !name.starts_with("DATABASE_"));
        env.push(("BATON_WORKER_ID".into(), id.into()));
        env.push(("HTTP_WORKER_ALLOW".into(), "127.0.0.1".into()));
        // A silent worker's job is taken over after this long.
        env.push(("BATON_VISIBILITY_TIMEOUT".into(), "2s".into()));
        env
    };
    let (first_env, second_env) = (worker_env("http-first"), worker_env("http-second"));
    let first = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-http-worker"),
        move || Ok(first_env.clone()),
        &["GRPC_PORT"],
    )
    .await
    .unwrap();
    baton_testkit::wait_until_serving(first.addr("GRPC_PORT"), "", WAIT)
        .await
        .unwrap();
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
            "owner: t\nname: slow\nversion: 1\nsteps:\n  - {{id: get, kind: http, input: {{url: 'http://{api}/slow-once', timeout: 60s}}}}\n"
        ))
        .await
        .unwrap();
    let run = stack.start_run("t/slow@1", json!({})).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first request never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await.unwrap();

    let second = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-http-worker"),
        move || Ok(second_env.clone()),
        &["GRPC_PORT"],
    )
    .await
    .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    let get = step(&run, "get");
    assert_eq!(output(get)["body"], "done");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the request was made again, once"
    );
    assert_eq!(
        get.attempts.last().map(|a| a.worker_id.as_str()),
        Some("http-second")
    );
    second.terminate(WAIT).await.unwrap();
    stack.stop().await;
}

#[test]
fn the_binary_answers_help_and_version_and_refuses_arguments() {
    let binary = env!("CARGO_BIN_EXE_baton-http-worker");
    let run = |args: &[&str]| {
        std::process::Command::new(binary)
            .args(args)
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .output()
            .expect("the binary runs")
    };
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{help:?}");
    assert!(text.starts_with("baton-http-worker "), "{text}");
    assert!(text.contains("HTTP_WORKER_ALLOW"), "{text}");
    assert!(text.contains("GRPC_PORT"), "{text}");

    let version = run(&["--version"]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("baton-http-worker {}\n", env!("CARGO_PKG_VERSION"))
    );

    let refused = run(&["--allow", "10.0.0.1"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("\"--allow\""), "{text}");
    assert!(refused.stdout.is_empty());
}
