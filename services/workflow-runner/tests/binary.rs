//! The real `baton-workflow-runner` binary, started as operators start it: it connects to a
//! fresh database and migrates it, binds its ports, runs a workflow's steps with its built-in
//! workers, serves gRPC health, `/health`, Prometheus `/metrics` and pprof, and exits cleanly on
//! SIGTERM. An in-process orchestrator on the same database and Redis prefix takes the API calls.

use std::time::Duration;

use baton_proto::v1::RunStatus;
use baton_testkit::{ServiceProcess, StackOptions, TestBackend, TestStack, http_get, status};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const LISTENERS: [&str; 4] = ["GRPC_PORT", "HTTP_PORT", "METRICS_PORT", "PPROF_PORT"];
const CONSUMER: &str = "runner-binary";

#[tokio::test]
async fn the_binary_migrates_runs_the_steps_and_exits_cleanly_on_sigterm() {
    let backend = TestBackend::create().await.unwrap();
    let service = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-workflow-runner"),
        || {
            let mut env = backend.service_env()?;
            env.push(("BATON_CONSUMER_NAME".into(), CONSUMER.into()));
            Ok(env)
        },
        &LISTENERS,
    )
    .await
    .unwrap();
    let health = service.addr("GRPC_PORT");
    baton_testkit::wait_until_serving(health, baton_workflow_runner::HEALTH_SERVICE, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", service.output()));
    assert!(
        backend.applied_migrations().await.unwrap() > 0,
        "the binary did not migrate the database"
    );
    // No in-process runner: the binary is the only one.
    let stack = TestStack::start_on(
        backend,
        StackOptions {
            runners: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    let run = stack
        .start_run("examples/hello@1", json!({"name": "Ada", "count": 2}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{run:?}");
    let worker = format!("{CONSUMER}-worker");
    for step in &run.steps {
        assert!(
            step.attempts.iter().all(|a| a.worker_id == worker),
            "{} ran elsewhere: {:?}",
            step.step_id,
            step.attempts
        );
    }

    let (code, _, body) = http_get(service.addr("HTTP_PORT"), "/health")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        json!({"service": "workflow-runner", "status": "ok"})
    );
    // The run's end is counted just after the commit that ended it, so look until it is there.
    let completed =
        r#"orchestration_runs_total{definition="examples/hello@1",status="completed"} 1"#;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, head, body) = http_get(service.addr("METRICS_PORT"), "/metrics")
            .await
            .unwrap();
        assert_eq!(code, 200, "{head}");
        let exposition = String::from_utf8(body).unwrap();
        if exposition.lines().any(|line| line == completed) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{completed}` in:\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    baton_testkit::assert_pprof_answers(&service).await;

    let (status, output) = service.terminate(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status}:\n{output}");
    assert!(output.contains("workflow-runner stopped"), "{output}");
    stack.stop().await;
}
