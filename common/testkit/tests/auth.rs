//! Authentication and tenancy through the real API. Every RPC the server lists by reflection
//! (streaming ones included) is called with each kind of bad credential, with each role, and
//! with another tenant's ids; so a new RPC that forgets the check fails here.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use baton_auth::{Access, Role, methods::METHODS};
use baton_proto::v1::{self, RunStatus};
use baton_testkit::{StackOptions, TestStack, authed, status};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use prost::Message as _;
use serde_json::json;
use tonic::{Code, Status, metadata::MetadataValue, transport::Channel};

const WAIT: Duration = Duration::from_secs(20);
const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "baton";

fn test_key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/keys")
        .join(name)
}

/// A stack that takes API keys and JWTs signed by the test Ed25519 key.
async fn stack_with_jwt(options: StackOptions) -> TestStack {
    let options = options
        .orchestrator_env(
            "BATON_JWT_PUBLIC_KEY_FILE",
            test_key("ed25519.pub.pem").to_str().unwrap(),
        )
        .orchestrator_env("BATON_JWT_ISSUER", ISSUER)
        .orchestrator_env("BATON_JWT_AUDIENCE", AUDIENCE);
    TestStack::start_with(options).await.unwrap()
}

fn jwt(signing_key: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 600,
        "tenant": "default", "role": "admin",
    });
    edit(&mut claims);
    let key = EncodingKey::from_ed_pem(&std::fs::read(test_key(signing_key)).unwrap()).unwrap();
    encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap()
}

/// One RPC as reflection describes it.
#[derive(Debug, Clone)]
struct Method {
    path: String,
    server_streaming: bool,
    client_streaming: bool,
}

/// Every method of every service the server lists, from its reflection (v1) answers.
async fn reflected_methods(channel: baton_testkit::Authed) -> Vec<Method> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(channel);
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(vec![ask(MessageRequest::ListServices(
            String::new(),
        ))]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let mut methods = Vec::new();
    for service in list.service.iter().map(|s| s.name.clone()) {
        let mut replies = client
            .server_reflection_info(tokio_stream::iter(vec![ask(
                MessageRequest::FileContainingSymbol(service.clone()),
            )]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("no descriptors for {service}")
        };
        for bytes in &files.file_descriptor_proto {
            let file =
                baton_proto::prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            for s in &file.service {
                if format!("{}.{}", file.package(), s.name()) != service {
                    continue;
                }
                for m in &s.method {
                    methods.push(Method {
                        path: format!("/{service}/{}", m.name()),
                        server_streaming: m.server_streaming(),
                        client_streaming: m.client_streaming(),
                    });
                }
            }
        }
    }
    methods.sort_by(|a, b| a.path.cmp(&b.path));
    methods.dedup_by(|a, b| a.path == b.path);
    methods
}

fn with_header<T>(header: Option<&str>, mut request: tonic::Request<T>) -> tonic::Request<T> {
    if let Some(value) = header {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(value).expect("a header value"),
        );
    }
    request.set_timeout(Duration::from_secs(5));
    request
}

/// Calls `method` with an empty request and `authorization` set to `header` (none when `None`);
/// the code it ends with (OK for a stream that ends cleanly or a call that succeeds).
async fn call(channel: &Channel, header: Option<&str>, method: &Method) -> Code {
    // `()` is the empty message: every request field at its default.
    type Empty = ();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path: tonic::codegen::http::uri::PathAndQuery = method.path.parse().unwrap();
    let codec = tonic_prost::ProstCodec::<Empty, Empty>::default();
    let ended = |r: Result<(), Status>| r.map_or_else(|s| s.code(), |_| Code::Ok);
    match (method.client_streaming, method.server_streaming) {
        (false, false) => ended(
            grpc.unary(with_header(header, tonic::Request::new(())), path, codec)
                .await
                .map(drop),
        ),
        (false, true) => {
            let answer = grpc
                .server_streaming(with_header(header, tonic::Request::new(())), path, codec)
                .await;
            match answer {
                Err(status) => status.code(),
                Ok(response) => ended(response.into_inner().message().await.map(drop)),
            }
        }
        (true, _) => {
            let requests = tokio_stream::iter(vec![()]);
            let answer = grpc
                .streaming(
                    with_header(header, tonic::Request::new(requests)),
                    path,
                    codec,
                )
                .await;
            match answer {
                Err(status) => status.code(),
                Ok(response) => ended(response.into_inner().message().await.map(drop)),
            }
        }
    }
}

fn is_health(path: &str) -> bool {
    path.starts_with(baton_auth::methods::HEALTH_PREFIX)
}

fn is_reflection(path: &str) -> bool {
    baton_auth::methods::REFLECTION_PREFIXES
        .iter()
        .any(|p| path.starts_with(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_bad_credentials_and_checks_roles() {
    let stack = stack_with_jwt(StackOptions::default()).await;
    let mut methods = reflected_methods(stack.authed().await).await;
    // v1 lists itself; v1alpha is served beside it with the same descriptors.
    methods.push(Method {
        path: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo".into(),
        server_streaming: true,
        client_streaming: true,
    });
    let paths: BTreeSet<&str> = methods.iter().map(|m| m.path.as_str()).collect();
    // Both reflection versions are served, and every Baton RPC has an explicit entry.
    for expected in [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.health.v1.Health/Watch",
        "/baton.v1.RunService/WatchRun",
        "/baton.v1.AuthService/CreateApiKey",
    ] {
        assert!(
            paths.contains(expected),
            "{expected} not reflected: {paths:?}"
        );
    }
    for m in &methods {
        if !is_health(&m.path) && !is_reflection(&m.path) {
            assert!(
                METHODS.iter().any(|(path, _)| *path == m.path),
                "{} has no entry in baton_auth::methods::METHODS",
                m.path
            );
        }
    }

    let channel = stack.channel().await;
    let admin = stack.token().to_owned();
    let key_id = admin.split('_').nth(1).unwrap().to_owned();
    let wrong_secret = format!("bk_{key_id}_{}", "0".repeat(64));
    let unknown = baton_auth::KeyToken::generate().unwrap().expose();
    let revoked = stack.key("default", Role::Admin).await.unwrap();
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    v1::auth_service_client::AuthServiceClient::new(stack.authed().await)
        .revoke_api_key(v1::RevokeApiKeyRequest { id: revoked_id })
        .await
        .unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("Bearer alone", Some("Bearer".into())),
        ("Bearer and a space", Some("Bearer ".into())),
        ("Bearer and spaces", Some("Bearer    ".into())),
        ("Basic", Some("Basic dXNlcjpwYXNz".into())),
        ("garbage", Some(bearer("garbage"))),
        ("short key", Some(bearer("bk_abc_def"))),
        ("unknown key", Some(bearer(&unknown))),
        ("wrong secret", Some(bearer(&wrong_secret))),
        ("revoked key", Some(bearer(&revoked))),
        (
            "expired JWT",
            Some(bearer(&jwt("ed25519.pem", |c| {
                c["exp"] = json!(jsonwebtoken::get_current_timestamp() as i64 - 120)
            }))),
        ),
        (
            "JWT of another key",
            Some(bearer(&jwt("other.pem", |_| {}))),
        ),
        (
            "JWT for another audience",
            Some(bearer(&jwt("ed25519.pem", |c| c["aud"] = json!("other")))),
        ),
    ];
    for m in &methods {
        if is_health(&m.path) {
            assert_eq!(call(&channel, None, m).await, Code::Ok, "{}", m.path);
            continue;
        }
        for (what, header) in &bad {
            assert_eq!(
                call(&channel, header.as_deref(), m).await,
                Code::Unauthenticated,
                "{} with {what}",
                m.path
            );
        }
    }

    // Each role reaches what it may and is PERMISSION_DENIED the rest; a valid JWT counts as
    // a credential like a key.
    let viewer = stack.key("default", Role::Viewer).await.unwrap();
    let operator = stack.key("default", Role::Operator).await.unwrap();
    let other_admin = stack.key("acme", Role::Admin).await.unwrap();
    let jwt_viewer = jwt("ed25519.pem", |c| c["role"] = json!("viewer"));
    let callers = [
        ("viewer", viewer.as_str(), Role::Viewer, false),
        ("JWT viewer", jwt_viewer.as_str(), Role::Viewer, false),
        ("operator", operator.as_str(), Role::Operator, false),
        ("admin of acme", other_admin.as_str(), Role::Admin, false),
        ("system admin", admin.as_str(), Role::Admin, true),
    ];
    for m in methods.iter().filter(|m| !is_health(&m.path)) {
        let access = baton_auth::methods::access_of(&m.path, false);
        for (who, token, role, system) in callers {
            let allowed = match access {
                Access::Open | Access::Authenticated => true,
                Access::Role(needed) => role >= needed,
                Access::System => system,
            };
            let code = call(&channel, Some(&bearer(token)), m).await;
            if allowed {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{who} on {}: {code:?}",
                    m.path
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{who} on {}", m.path);
            }
        }
    }

    // Every refusal is counted by reason.
    let (_, _, body) = baton_testkit::http_get(stack.orchestrator_metrics, "/metrics")
        .await
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    for reason in [
        "missing",
        "malformed",
        "unknown_key",
        "revoked",
        "expired",
        "invalid_token",
        "forbidden",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("baton_auth_denied_total{{reason=\"{reason}\"}}")))
            .unwrap_or_else(|| panic!("no baton_auth_denied_total for {reason}"));
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count > 0.0, "{line}");
    }
    stack.stop().await;
}

const WORKFLOW_A: &str =
    "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: from_a, kind: echo, input: {who: a}}\n";
const WORKFLOW_B: &str =
    "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: from_b, kind: echo, input: {who: b}}\n";
const LONG: &str = "owner: a\nname: long\nversion: 1\nsteps:\n  - {id: slow, kind: sleep, input: {duration: 4s}}\n";
const ONLY_A: &str = "owner: a\nname: only\nversion: 1\nsteps:\n  - {id: slow, kind: sleep, input: {duration: 300ms}}\n";

struct Tenant {
    workflows: v1::workflow_service_client::WorkflowServiceClient<baton_testkit::Authed>,
    runs: v1::run_service_client::RunServiceClient<baton_testkit::Authed>,
    keys: v1::auth_service_client::AuthServiceClient<baton_testkit::Authed>,
}

async fn tenant(stack: &TestStack, name: &str) -> (Tenant, String) {
    let token = stack.key(name, Role::Admin).await.unwrap();
    let channel = authed(stack.channel().await, &token);
    (
        Tenant {
            workflows: v1::workflow_service_client::WorkflowServiceClient::new(channel.clone()),
            runs: v1::run_service_client::RunServiceClient::new(channel.clone()),
            keys: v1::auth_service_client::AuthServiceClient::new(channel),
        },
        token,
    )
}

impl Tenant {
    async fn register(&mut self, definition: &str) -> v1::Workflow {
        self.workflows
            .register_workflow(v1::RegisterWorkflowRequest {
                definition: definition.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .workflow
            .unwrap()
    }

    async fn start(&mut self, workflow_ref: &str) -> Result<v1::Run, Status> {
        Ok(self
            .runs
            .start_run(v1::StartRunRequest {
                workflow_ref: workflow_ref.into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .run
            .unwrap())
    }

    async fn get(&mut self, id: &str) -> Result<v1::Run, Status> {
        Ok(self
            .runs
            .get_run(v1::GetRunRequest { run_id: id.into() })
            .await?
            .into_inner()
            .run
            .unwrap())
    }

    async fn wait_for_end(&mut self, id: &str) -> v1::Run {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let run = self.get(id).await.unwrap();
            if run.ended_at.is_some() {
                return run;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} did not end");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The message of a NOT_FOUND for `id`, with the id replaced, so a run of another tenant can be
/// compared with one that does not exist.
fn shape(status: &Status, id: &str) -> (Code, String) {
    (status.code(), status.message().replace(id, "<id>"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_each_others_runs_workflows_keys_or_watches() {
    let stack = TestStack::start().await.unwrap();
    let (mut a, a_token) = tenant(&stack, "acme").await;
    let (mut b, _) = tenant(&stack, "globex").await;

    // Each tenant has its own `t/w@1`; the same name with other content is no conflict.
    let wa = a.register(WORKFLOW_A).await;
    let wb = b.register(WORKFLOW_B).await;
    assert_ne!(wa.digest, wb.digest);
    a.register(ONLY_A).await;

    let run_a = a.start("t/w@1").await.unwrap();
    let run_b = b.start("t/w@1").await.unwrap();
    assert_eq!(run_a.tenant, "acme");
    assert_eq!(run_b.tenant, "globex");
    // Each run ran its own tenant's definition.
    let done_a = a.wait_for_end(&run_a.id).await;
    let done_b = b.wait_for_end(&run_b.id).await;
    assert_eq!(status(&done_a), RunStatus::Completed, "{done_a:?}");
    assert_eq!(status(&done_b), RunStatus::Completed, "{done_b:?}");
    assert_eq!(done_a.steps[0].step_id, "from_a");
    assert_eq!(done_b.steps[0].step_id, "from_b");

    // B cannot tell A's run from one that does not exist, by any call that takes its id.
    let missing = uuid::Uuid::now_v7().to_string();
    let foreign = b.get(&run_a.id).await.unwrap_err();
    let absent = b.get(&missing).await.unwrap_err();
    assert_eq!(shape(&foreign, &run_a.id), shape(&absent, &missing));
    assert_eq!(foreign.code(), Code::NotFound);
    let cancel = b
        .runs
        .cancel_run(v1::CancelRunRequest {
            run_id: run_a.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::NotFound, "{cancel:?}");
    let watch = b
        .runs
        .watch_run(v1::WatchRunRequest {
            run_id: run_a.id.clone(),
            after_sequence: 0,
        })
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(watch.code(), Code::NotFound, "{watch:?}");
    let start = b.start("a/only@1").await.unwrap_err();
    assert_eq!(start.code(), Code::NotFound, "{start:?}");
    let get_workflow = b
        .workflows
        .get_workflow(v1::GetWorkflowRequest {
            workflow_ref: "a/only@1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(get_workflow.code(), Code::NotFound);
    let own = b
        .workflows
        .get_workflow(v1::GetWorkflowRequest {
            workflow_ref: "t/w@1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .workflow
        .unwrap();
    assert_eq!(own.digest, wb.digest);

    // Lists hold the caller's tenant only, and naming another tenant is refused.
    let listed = b
        .runs
        .list_runs(v1::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [run_b.id.as_str()]
    );
    let named = b
        .runs
        .list_runs(v1::ListRunsRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(named.code(), Code::PermissionDenied, "{named:?}");
    assert!(named.message().contains("globex"), "{named:?}");
    let workflows = b
        .workflows
        .list_workflows(v1::ListWorkflowsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .workflows;
    assert_eq!(workflows.len(), 1, "{workflows:?}");
    let start_elsewhere = b
        .runs
        .start_run(v1::StartRunRequest {
            workflow_ref: "t/w@1".into(),
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(start_elsewhere.code(), Code::PermissionDenied);

    // Keys: B sees and revokes only its own; A's key keeps working.
    let a_key_id = a_token.split('_').nth(1).unwrap().to_owned();
    let revoke = b
        .keys
        .revoke_api_key(v1::RevokeApiKeyRequest {
            id: a_key_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(revoke.code(), Code::NotFound, "{revoke:?}");
    let keys = b
        .keys
        .list_api_keys(v1::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(keys.iter().all(|k| k.tenant == "globex"), "{keys:?}");
    let create = b
        .keys
        .create_api_key(v1::CreateApiKeyRequest {
            tenant: "acme".into(),
            role: v1::Role::Admin as i32,
            name: "takeover".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(create.code(), Code::PermissionDenied, "{create:?}");
    a.get(&run_a.id).await.unwrap();

    // A watches its own run while B's watch of it was refused.
    let slow = a.start("a/only@1").await.unwrap();
    let mut events = a
        .runs
        .watch_run(v1::WatchRunRequest {
            run_id: slow.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(item) = tokio::time::timeout(WAIT, events.message())
        .await
        .unwrap()
        .unwrap()
    {
        let event = item.event.unwrap();
        assert_eq!(event.run_id, slow.id);
        last = Some(event.r#type);
    }
    assert_eq!(last, Some(v1::RunEventType::RunCompleted as i32));

    // The system tenant's admin provisions keys for any tenant; a new key works at once.
    let provisioned = v1::auth_service_client::AuthServiceClient::new(stack.authed().await)
        .create_api_key(v1::CreateApiKeyRequest {
            tenant: "acme".into(),
            role: v1::Role::Viewer as i32,
            name: "dashboards".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let key = provisioned.key.unwrap();
    assert_eq!(
        (key.tenant.as_str(), key.role),
        ("acme", v1::Role::Viewer as i32)
    );
    let mut viewer = v1::run_service_client::RunServiceClient::new(authed(
        stack.channel().await,
        &provisioned.token,
    ));
    viewer
        .get_run(v1::GetRunRequest {
            run_id: run_a.id.clone(),
        })
        .await
        .unwrap();
    let denied = viewer
        .start_run(v1::StartRunRequest {
            workflow_ref: "t/w@1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("operator"), "{denied:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_limits_is_told_when_to_retry_and_others_are_not_held_back() {
    use tonic_types::StatusExt;
    let stack = TestStack::start_with(
        StackOptions::default()
            .orchestrator_env("BATON_START_RATE", "2")
            .orchestrator_env("BATON_START_BURST", "3")
            .orchestrator_env("BATON_WATCH_STREAMS_PER_TENANT", "1"),
    )
    .await
    .unwrap();
    let (mut a, _) = tenant(&stack, "acme").await;
    let (mut b, _) = tenant(&stack, "globex").await;
    a.register(ONLY_A).await;
    a.register(LONG).await;
    b.register(WORKFLOW_B).await;
    let long = a.start("a/long@1").await.unwrap();
    let mut started = Vec::new();
    for _ in 0..2 {
        started.push(a.start("a/only@1").await.unwrap());
    }
    let limited = a.start("a/only@1").await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(
        limited.message().contains("BATON_START_RATE"),
        "{limited:?}"
    );
    let retry = limited
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a RetryInfo detail");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(500),
        "{retry:?}"
    );
    b.start("t/w@1")
        .await
        .expect("another tenant is not limited");
    tokio::time::sleep(retry).await;
    a.start("a/only@1")
        .await
        .expect("allowed again after the hint");

    // One watch stream per tenant: a second is refused until the first ends.
    let watch = |id: String| v1::WatchRunRequest {
        run_id: id,
        after_sequence: 0,
    };
    let mut first = a
        .runs
        .watch_run(watch(long.id.clone()))
        .await
        .unwrap()
        .into_inner();
    let second = a
        .runs
        .watch_run(watch(started[0].id.clone()))
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(second.code(), Code::ResourceExhausted, "{second:?}");
    assert!(
        second.message().contains("BATON_WATCH_STREAMS_PER_TENANT"),
        "{second:?}"
    );
    while tokio::time::timeout(WAIT, first.message())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match a.runs.watch_run(watch(started[0].id.clone())).await {
            Ok(_) => break,
            Err(e) if e.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot never freed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    stack.stop().await;
}

/// Baton RPCs that name no tenant's id: lists and creations act in the caller's tenant, and the
/// dead letters belong to the platform (system tenant only, checked by the role matrix above).
const NAMES_NO_ID: [&str; 9] = [
    "/baton.v1.WorkflowService/RegisterWorkflow",
    "/baton.v1.WorkflowService/ListWorkflows",
    "/baton.v1.RunService/ListRuns",
    "/baton.v1.InfoService/GetInfo",
    "/baton.v1.AuthService/CreateApiKey",
    "/baton.v1.AuthService/ListApiKeys",
    "/baton.v1.AdminService/ListDeadLetters",
    "/baton.v1.AdminService/GetDeadLetter",
    "/baton.v1.AdminService/ReplayDeadLetter",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_that_names_an_id_answers_not_found_for_another_tenants() {
    let stack = TestStack::start().await.unwrap();
    let (mut a, a_token) = tenant(&stack, "acme").await;
    let (mut b, _) = tenant(&stack, "globex").await;
    a.register(LONG).await;
    let run = a.start("a/long@1").await.unwrap();
    let a_key = a_token.split('_').nth(1).unwrap().to_owned();
    let methods = reflected_methods(stack.authed().await).await;
    let mut checked = Vec::new();
    for m in methods.iter().filter(|m| m.path.starts_with("/baton.v1.")) {
        if NAMES_NO_ID.contains(&m.path.as_str()) {
            continue;
        }
        let method = m.path.rsplit('/').next().unwrap();
        // Tenant B names tenant A's resource.
        let refused: Status = match method {
            "GetWorkflow" => b
                .workflows
                .get_workflow(v1::GetWorkflowRequest {
                    workflow_ref: "a/long@1".into(),
                    ..Default::default()
                })
                .await
                .map(drop)
                .unwrap_err(),
            "StartRun" => b.start("a/long@1").await.map(drop).unwrap_err(),
            "GetRun" => b.get(&run.id).await.map(drop).unwrap_err(),
            "CancelRun" => b
                .runs
                .cancel_run(v1::CancelRunRequest {
                    run_id: run.id.clone(),
                    reason: "not yours".into(),
                })
                .await
                .map(drop)
                .unwrap_err(),
            "WatchRun" => b
                .runs
                .watch_run(v1::WatchRunRequest {
                    run_id: run.id.clone(),
                    after_sequence: 0,
                })
                .await
                .map(drop)
                .unwrap_err(),
            "RevokeApiKey" => b
                .keys
                .revoke_api_key(v1::RevokeApiKeyRequest { id: a_key.clone() })
                .await
                .map(drop)
                .unwrap_err(),
            other => panic!(
                "{other} is new: add a case here with another tenant's id, or list it in \
                 NAMES_NO_ID if it names none"
            ),
        };
        assert_eq!(refused.code(), Code::NotFound, "{}: {refused:?}", m.path);
        checked.push(method);
    }
    assert_eq!(checked.len(), 6, "{checked:?}");
    // Nothing B tried changed A's run or key.
    let still = a.get(&run.id).await.unwrap();
    assert_ne!(status(&still), RunStatus::Cancelled);
    a.runs
        .list_runs(v1::ListRunsRequest::default())
        .await
        .expect("A's key still works");
    stack.stop().await;
}
