//! The real `baton-orchestrator` binary, started as operators start it: it connects to a fresh
//! database and migrates it, binds its ports, serves the API, `/health`, Prometheus `/metrics`
//! and pprof, and exits cleanly on SIGTERM. An in-process runner on the same database and Redis
//! prefix runs the steps.

use std::time::Duration;

use baton_proto::v1::{self, RunStatus, run_service_client::RunServiceClient};
use baton_testkit::{ServiceProcess, StackOptions, TestBackend, TestStack, http_get};
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(30);
const LISTENERS: [&str; 4] = ["GRPC_PORT", "HTTP_PORT", "METRICS_PORT", "PPROF_PORT"];

#[tokio::test]
async fn the_binary_migrates_serves_a_run_and_exits_cleanly_on_sigterm() {
    let backend = TestBackend::create().await.unwrap();
    let token = backend
        .issue_key("default", baton_testkit::Role::Admin)
        .await
        .unwrap();
    let service = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-orchestrator"),
        || backend.service_env(),
        &LISTENERS,
    )
    .await
    .unwrap();
    let grpc = service.addr("GRPC_PORT");
    baton_testkit::wait_until_serving(grpc, "baton.v1.RunService", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", service.output()));
    assert!(
        backend.applied_migrations().await.unwrap() > 0,
        "the binary did not migrate the database"
    );
    let stack = TestStack::start_on(backend, StackOptions::default())
        .await
        .unwrap();

    // A run end to end through the binary's API: registered, started, watched to its end.
    let channel = baton_testkit::authed(
        Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect_lazy(),
        &token,
    );
    v1::workflow_service_client::WorkflowServiceClient::new(channel.clone())
        .register_workflow(v1::RegisterWorkflowRequest {
            definition: include_str!("../../../examples/hello.yaml").to_owned(),
            format: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut runs = RunServiceClient::new(channel);
    let run = runs
        .start_run(v1::StartRunRequest {
            workflow_ref: "examples/hello@1".into(),
            inputs_json: r#"{"name": "Ada", "count": 2}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let mut watch = runs
        .watch_run(v1::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(item) = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("the watch stalled")
        .unwrap()
    {
        last = item.event;
    }
    let last = last.expect("events");
    assert_eq!(
        last.r#type,
        v1::RunEventType::RunCompleted as i32,
        "{last:?}"
    );
    let run = runs
        .get_run(v1::GetRunRequest { run_id: run.id })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed as i32, "{run:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.output_json).unwrap(),
        serde_json::json!({"join": {"total": 2, "text": "Hello, Ada!"}})
    );

    let (code, _, body) = http_get(service.addr("HTTP_PORT"), "/health")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"service": "orchestrator", "status": "ok"})
    );
    let (code, head, body) = http_get(service.addr("METRICS_PORT"), "/metrics")
        .await
        .unwrap();
    assert_eq!(code, 200, "{head}");
    let exposition = String::from_utf8(body).unwrap();
    assert!(
        exposition.lines().any(|line| {
            line.starts_with("grpc_server_handled_total{")
                && line.contains(r#"grpc_method="StartRun""#)
                && line.contains(r#"grpc_code="OK""#)
                && line.ends_with(" 1")
        }),
        "the StartRun call is not counted:\n{exposition}"
    );
    baton_testkit::assert_pprof_answers(&service).await;

    let (status, output) = service.terminate(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status}:\n{output}");
    assert!(output.contains("orchestrator stopped"), "{output}");
    stack.stop().await;
}

/// Secure by default: with no API key and no JWT configured, the binary refuses to start and says
/// how to make the first key; with `BATON_AUTH=disabled` set explicitly it starts and says loudly
/// that nothing is checked.
#[tokio::test]
async fn the_binary_refuses_to_start_with_no_credentials_unless_auth_is_disabled() {
    let backend = TestBackend::create().await.unwrap();
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_baton-orchestrator"))
            .envs(backend.service_env().unwrap())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the orchestrator neither started nor exited")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("baton auth key create"), "{text}");
    assert!(text.contains("BATON_AUTH=disabled"), "{text}");

    let service = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-orchestrator"),
        || {
            let mut env = backend.service_env()?;
            env.push(("BATON_AUTH".into(), "disabled".into()));
            Ok(env)
        },
        &LISTENERS,
    )
    .await
    .unwrap();
    let grpc = service.addr("GRPC_PORT");
    baton_testkit::wait_until_serving(grpc, "baton.v1.RunService", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", service.output()));
    let info = v1::info_service_client::InfoServiceClient::new(
        Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect_lazy(),
    )
    .get_info(v1::GetInfoRequest {})
    .await
    .unwrap()
    .into_inner();
    assert_eq!(info.auth_mode, "disabled");
    assert_eq!(info.principal, "anonymous");
    assert!(
        service.output().contains("AUTHENTICATION IS DISABLED"),
        "{}",
        service.output()
    );
    service.terminate(WAIT).await.unwrap();
    backend.remove().await;
}
