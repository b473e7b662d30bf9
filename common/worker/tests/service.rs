//! The example worker service (`examples/echo_worker.rs`), started as operators start a worker:
//! with Redis and no database, it serves gRPC health and Prometheus metrics, takes a runner's
//! `echo` steps, and exits cleanly on SIGTERM.

use std::{path::PathBuf, time::Duration};

use baton_proto::v1::RunStatus;
use baton_testkit::{
    ServiceProcess, StackOptions, TestBackend, TestStack, http_get, output, status, step,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const HEALTH_SERVICE: &str = "baton.examples.EchoWorker";
const WORKER: &str = "echo-example";

/// The example's binary, which cargo builds beside this test's (`target/<profile>/examples`).
fn example_binary() -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let binary: PathBuf = profile_dir.join("examples").join("echo_worker");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p baton-worker --examples`",
        binary.display()
    );
    binary.display().to_string()
}

#[tokio::test]
async fn the_example_worker_needs_only_redis_serves_health_and_runs_steps() {
    let backend = TestBackend::create().await.unwrap();
    let worker = ServiceProcess::start(
        &example_binary(),
        || {
            let mut env = backend.service_env()?;
            // Only the queue: the process gets no other variable (see ServiceProcess::start).
            env.retain(|(name, _)| !name.starts_with("DATABASE_"));
            env.push(("BATON_WORKER_ID".into(), WORKER.into()));
            Ok(env)
        },
        &["GRPC_PORT", "METRICS_PORT"],
    )
    .await
    .unwrap();
    let health = worker.addr("GRPC_PORT");
    for service in ["", HEALTH_SERVICE] {
        baton_testkit::wait_until_serving(health, service, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", worker.output()));
    }
    let (code, head, body) = http_get(worker.addr("METRICS_PORT"), "/metrics")
        .await
        .unwrap();
    assert_eq!(code, 200, "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("process_resident_memory_bytes"),
        "Prometheus text from the worker"
    );

    // A stack without built-in workers: the example is the only `echo` worker.
    let stack = TestStack::start_on(
        backend,
        StackOptions {
            builtin_workers: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    stack
        .register("owner: t\nname: echoed\nversion: 1\nsteps:\n  - {id: say, kind: echo, input: {text: \"{{ inputs.text }}\"}}\n")
        .await
        .unwrap();
    let run = stack
        .start_run("t/echoed@1", json!({"text": "hello"}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    let say = step(&run, "say");
    assert_eq!(output(say), json!({"text": "hello"}));
    assert_eq!(say.attempts[0].worker_id, WORKER);

    // A clean exit: serve returned once the pool had drained, and main returned Ok.
    let (exit, printed) = worker.terminate(WAIT).await.unwrap();
    assert!(exit.success(), "{exit}\n{printed}");
    stack.stop().await;
}
