//! The public API's contract: each bad input gets the right status and a message naming the field
//! or step, identity and idempotency rules hold, lists page, and health and reflection answer.

use std::time::Duration;

use baton_proto::v1::{self, RunStatus};
use baton_testkit::{Role, TestStack, authed, status};
use serde_json::json;
use tonic::Code;

const HEAD: &str = "owner: t\nname: w\nversion: 1\nsteps:\n";

async fn register_err(stack: &TestStack, text: &str) -> tonic::Status {
    stack
        .register(text)
        .await
        .expect_err("registration should fail")
}

#[tokio::test]
async fn each_validation_error_names_its_field_or_step() {
    let stack = TestStack::start().await.unwrap();
    let cases = [
        (
            format!(
                "{HEAD}  - {{id: a, kind: noop, needs: [c]}}\n  - {{id: b, kind: noop, needs: [a]}}\n  - {{id: c, kind: noop, needs: [b]}}\n"
            ),
            "steps form a cycle: a -> b -> c -> a",
        ),
        (
            format!("{HEAD}  - {{id: a, kind: noop, needs: [ghost]}}\n"),
            "step `a`: needs: unknown step `ghost`",
        ),
        (
            format!("{HEAD}  - {{id: a, kind: noop}}\n  - {{id: a, kind: echo}}\n"),
            "duplicate step id `a`",
        ),
        (
            format!("{HEAD}  - {{id: a, kind: teleport}}\n"),
            "step `a`: kind: unknown kind `teleport`",
        ),
        (
            format!("{HEAD}  - {{id: a, kind: echo, input: {{x: '{{{{ inputs.x | }}}}'}}}}\n"),
            "step `a`: input.x:",
        ),
        (
            format!("{HEAD}  - {{id: a, kind: noop, when: 'inputs.n >>> 2'}}\n"),
            "step `a`: when:",
        ),
        (
            format!(
                "{HEAD}  - {{id: a, kind: noop}}\n  - {{id: b, kind: echo, input: {{x: '{{{{ steps.a.output }}}}'}}}}\n"
            ),
            "step `b`: input.x: refers to `steps.a`",
        ),
        (
            "owner: t\nname: w\nversion: 1\nsteps: []\n".to_owned(),
            "steps: a workflow needs at least one step",
        ),
        (
            "owner: t\nname: w\nsteps: []\n".to_owned(),
            "missing field `version`",
        ),
        ("{ not yaml: [".to_owned(), "cannot parse definition"),
    ];
    for (text, expected) in cases {
        let err = register_err(&stack, &text).await;
        assert_eq!(err.code(), Code::InvalidArgument, "{text}");
        assert!(
            err.message().contains(expected),
            "expected `{expected}` in `{}`",
            err.message()
        );
    }
    // Limits: more than 1,000 steps, more than 1 MiB.
    let mut many = String::from(HEAD);
    for i in 0..1_001 {
        many.push_str(&format!("  - {{id: s{i}, kind: noop}}\n"));
    }
    let err = register_err(&stack, &many).await;
    assert!(
        err.message().contains("1001 steps; the limit is 1000"),
        "{}",
        err.message()
    );
    let huge = format!(
        "{HEAD}  - {{id: a, kind: noop}}\n# {}\n",
        "x".repeat(1024 * 1024)
    );
    let err = register_err(&stack, &huge).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("the limit is 1048576 bytes"),
        "{}",
        err.message()
    );
    // Nothing was stored by any of them.
    let list = stack
        .workflows()
        .await
        .list_workflows(v1::ListWorkflowsRequest::default())
        .await
        .unwrap();
    assert!(list.into_inner().workflows.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn re_registering_is_a_no_op_or_a_conflict() {
    let stack = TestStack::start().await.unwrap();
    let text = format!("{HEAD}  - {{id: a, kind: noop}}\n");
    let mut client = stack.workflows().await;
    let register = |definition: String| v1::RegisterWorkflowRequest {
        definition,
        format: 0,
        ..Default::default()
    };
    let first = client
        .register_workflow(register(text.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    // Same content, other formatting: still the same definition.
    let reformatted = format!("# a comment\n{HEAD}  - id: a\n    kind: noop\n");
    let again = client
        .register_workflow(register(reformatted))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.workflow.unwrap().digest,
        first.workflow.unwrap().digest
    );
    let changed = client
        .register_workflow(register(format!("{HEAD}  - {{id: b, kind: noop}}\n")))
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::AlreadyExists);
    assert!(
        changed
            .message()
            .contains("t/w@1 is already registered with different content"),
        "{}",
        changed.message()
    );
    // JSON works too, and `owner/name` without a version finds the latest.
    let json_def =
        json!({"owner": "t", "name": "w", "version": 2, "steps": [{"id": "a", "kind": "noop"}]});
    let v2 = client
        .register_workflow(v1::RegisterWorkflowRequest {
            definition: json_def.to_string(),
            format: v1::DefinitionFormat::Json as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v2.created);
    let latest = client
        .get_workflow(v1::GetWorkflowRequest {
            workflow_ref: "t/w".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .workflow
        .unwrap();
    assert_eq!(latest.version, 2);
    let missing = client
        .get_workflow(v1::GetWorkflowRequest {
            workflow_ref: "t/w@9".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_ref = client
        .get_workflow(v1::GetWorkflowRequest {
            workflow_ref: "nonsense".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_ref.code(), Code::InvalidArgument);
    assert!(
        bad_ref.message().starts_with("workflow_ref:"),
        "{}",
        bad_ref.message()
    );
    stack.stop().await;
}

#[tokio::test]
async fn start_run_rejects_bad_input_and_is_idempotent() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(&format!("{HEAD}  - {{id: a, kind: noop}}\n"))
        .await
        .unwrap();
    stack
        .register("owner: t\nname: other\nversion: 1\nsteps:\n  - {id: a, kind: noop}\n")
        .await
        .unwrap();
    let mut runs = stack.runs().await;
    let start = |workflow_ref: &str, inputs: &str, key: &str| v1::StartRunRequest {
        workflow_ref: workflow_ref.into(),
        inputs_json: inputs.into(),
        idempotency_key: key.into(),
        tenant: String::new(),
    };
    let unknown = runs.start_run(start("t/nope@1", "", "")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("t/nope@1"));
    let bad_json = runs
        .start_run(start("t/w@1", "{nope", ""))
        .await
        .unwrap_err();
    assert_eq!(bad_json.code(), Code::InvalidArgument);
    assert!(
        bad_json.message().starts_with("inputs_json:"),
        "{}",
        bad_json.message()
    );
    let not_object = runs.start_run(start("t/w@1", "[1]", "")).await.unwrap_err();
    assert!(not_object.message().contains("must be a JSON object"));
    let bad_tenant = runs
        .start_run(v1::StartRunRequest {
            tenant: "no spaces".into(),
            ..start("t/w@1", "", "")
        })
        .await
        .unwrap_err();
    assert!(bad_tenant.message().starts_with("tenant:"));

    let first = runs
        .start_run(start("t/w@1", r#"{"x": 1}"#, "key-1"))
        .await
        .unwrap()
        .into_inner();
    let second = runs
        .start_run(start("t/w@1", r#"{"x": 2}"#, "key-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created && !second.created);
    assert_eq!(
        first.run.as_ref().unwrap().id,
        second.run.as_ref().unwrap().id
    );
    let clash = runs
        .start_run(start("t/other@1", "", "key-1"))
        .await
        .unwrap_err();
    assert_eq!(clash.code(), Code::AlreadyExists);
    // Another tenant has its own idempotency keys (and its own workflows).
    let acme = authed(
        stack.channel().await,
        &stack.key("acme", Role::Operator).await.unwrap(),
    );
    v1::workflow_service_client::WorkflowServiceClient::new(acme.clone())
        .register_workflow(v1::RegisterWorkflowRequest {
            definition: format!("{HEAD}  - {{id: a, kind: noop}}\n"),
            ..Default::default()
        })
        .await
        .unwrap();
    let elsewhere = v1::run_service_client::RunServiceClient::new(acme)
        .start_run(start("t/w@1", "", "key-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(elsewhere.created);
    let run = stack
        .wait_for_end(&first.run.unwrap().id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status(&run), RunStatus::Completed);
    assert_eq!(run.inputs_json, r#"{"x":1}"#);

    let bad_id = runs
        .get_run(v1::GetRunRequest {
            run_id: "42".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    assert!(bad_id.message().starts_with("run_id:"));
    let missing = runs
        .get_run(v1::GetRunRequest {
            run_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    stack.stop().await;
}

#[tokio::test]
async fn lists_page_and_filter_by_tenant() {
    let stack = TestStack::start().await.unwrap();
    for v in 1..=3 {
        stack
            .register(&format!(
                "owner: t\nname: w\nversion: {v}\nsteps:\n  - {{id: a, kind: noop}}\n"
            ))
            .await
            .unwrap();
    }
    let mut runs = stack.runs().await;
    let acme_channel = authed(
        stack.channel().await,
        &stack.key("acme", Role::Operator).await.unwrap(),
    );
    v1::workflow_service_client::WorkflowServiceClient::new(acme_channel.clone())
        .register_workflow(v1::RegisterWorkflowRequest {
            definition: "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop}\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut acme_runs = v1::run_service_client::RunServiceClient::new(acme_channel);
    let mut ids = Vec::new();
    for i in 0..5 {
        let client = if i < 3 { &mut runs } else { &mut acme_runs };
        let run = client
            .start_run(v1::StartRunRequest {
                workflow_ref: "t/w@1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        ids.push(run.id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = runs
            .list_runs(v1::ListRunsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.runs.len() <= 2);
        seen.extend(page.runs.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // Newest first, only the default tenant's.
    let mut expected: Vec<String> = ids[..3].to_vec();
    expected.reverse();
    assert_eq!(seen, expected);
    let acme = acme_runs
        .list_runs(v1::ListRunsRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acme.runs.len(), 2);
    let bad = runs
        .list_runs(v1::ListRunsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let page = stack
        .workflows()
        .await
        .list_workflows(v1::ListWorkflowsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.workflows.iter().map(|w| w.version).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let rest = stack
        .workflows()
        .await
        .list_workflows(v1::ListWorkflowsRequest {
            page_size: 2,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rest.workflows.iter().map(|w| w.version).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(rest.next_page_token.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn health_info_and_reflection_answer() {
    let stack = TestStack::start().await.unwrap();
    let channel = stack.authed().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for service in ["", "baton.v1.RunService", "baton.v1.WorkflowService"] {
        loop {
            let reply = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status);
            if reply.as_ref().ok()
                == Some(&(tonic_health::pb::health_check_response::ServingStatus::Serving as i32))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service:?} never became SERVING: {reply:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let info = v1::info_service_client::InfoServiceClient::new(channel.clone())
        .get_info(v1::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.service, "orchestrator");
    assert!(!info.version.is_empty());

    // Server reflection lists every service and describes Baton's from its own descriptors.
    let (services, files) = reflect(channel, "baton.v1.RunService").await;
    for expected in [
        "baton.v1.WorkflowService",
        "baton.v1.RunService",
        "baton.v1.InfoService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} not listed: {services:?}"
        );
    }
    let run_service = files
        .iter()
        .filter(|f| f.package() == "baton.v1")
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "RunService")
        .unwrap_or_else(|| {
            let names: Vec<&str> = files.iter().map(|f| f.name()).collect();
            panic!("no RunService in the descriptors returned: {names:?}")
        });
    let methods: Vec<&str> = run_service.method.iter().map(|m| m.name()).collect();
    for method in ["StartRun", "GetRun", "ListRuns", "CancelRun", "WatchRun"] {
        assert!(methods.contains(&method), "{method} not in {methods:?}");
    }
    stack.stop().await;
}

/// Asks the server reflection service (`grpc.reflection.v1`) for its services, then for the
/// file descriptors that define `symbol`.
async fn reflect(
    channel: baton_testkit::Authed,
    symbol: &str,
) -> (
    Vec<String>,
    Vec<baton_proto::prost_types::FileDescriptorProto>,
) {
    use prost::Message as _;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = |message: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = vec![
        request(MessageRequest::ListServices(String::new())),
        request(MessageRequest::FileContainingSymbol(symbol.to_owned())),
    ];
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        replies
            .message()
            .await
            .unwrap()
            .expect("a reflection reply")
            .message_response
            .expect("a reflection answer")
    };
    let services = match next().await {
        MessageResponse::ListServicesResponse(list) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("list_services answered {other:?}"),
    };
    let files = match next().await {
        MessageResponse::FileDescriptorResponse(found) => found
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                baton_proto::prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap()
            })
            .collect(),
        other => panic!("file_containing_symbol({symbol}) answered {other:?}"),
    };
    (services, files)
}

#[tokio::test]
async fn concurrent_starts_with_one_key_make_one_run() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(&format!("{HEAD}  - {{id: a, kind: noop}}\n"))
        .await
        .unwrap();
    let calls = (0..20).map(|i| {
        let endpoint = stack.endpoint();
        let token = stack.token().to_owned();
        async move {
            let channel = tonic::transport::Channel::from_shared(endpoint)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = v1::run_service_client::RunServiceClient::new(baton_testkit::authed(
                channel, &token,
            ));
            let key = if i % 2 == 0 { "shared" } else { "" };
            client
                .start_run(v1::StartRunRequest {
                    workflow_ref: "t/w@1".into(),
                    idempotency_key: key.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    });
    let replies = futures::future::join_all(calls).await;
    let shared: Vec<_> = replies.iter().step_by(2).collect();
    assert_eq!(shared.iter().filter(|r| r.created).count(), 1);
    let id = &shared[0].run.as_ref().unwrap().id;
    assert!(shared.iter().all(|r| &r.run.as_ref().unwrap().id == id));
    let unkeyed: std::collections::HashSet<_> = replies
        .iter()
        .skip(1)
        .step_by(2)
        .map(|r| r.run.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(unkeyed.len(), 10);
    for r in &replies {
        let run = stack
            .wait_for_end(&r.run.as_ref().unwrap().id, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(status(&run), RunStatus::Completed);
    }
    stack.stop().await;
}
