//! A canary API key, created, used, revoked and then sent in malformed forms to the real binary
//! with debug logs and span export on, must never appear in its logs, exported spans, error
//! messages or metrics: secrets are checked, never recorded.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_proto::v1;
use baton_testkit::{Role, ServiceProcess, TestBackend, authed, http_get};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::{Request, Response, Status, transport::Channel};

const WAIT: Duration = Duration::from_secs(30);
const LISTENERS: [&str; 4] = ["GRPC_PORT", "HTTP_PORT", "METRICS_PORT", "PPROF_PORT"];

/// Keeps every exported span, as its protobuf debug text (names, attributes, events, status).
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let text = format!("{:?}", request.into_inner());
        self.spans.lock().unwrap().push(text);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_key_never_appears_in_logs_spans_errors_or_metrics() {
    let collector = Collector::default();
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let otlp = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming),
    );
    let backend = TestBackend::create().await.unwrap();
    let admin = backend.issue_key("default", Role::Admin).await.unwrap();
    let service = ServiceProcess::start(
        env!("CARGO_BIN_EXE_baton-orchestrator"),
        || {
            let mut env = backend.service_env()?;
            env.retain(|(k, _)| k != "LOG_LEVEL");
            env.extend([
                ("LOG_LEVEL".into(), "debug".into()),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    format!("http://{otlp}"),
                ),
                ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
            ]);
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
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect_lazy();

    let created = v1::auth_service_client::AuthServiceClient::new(authed(channel.clone(), &admin))
        .create_api_key(v1::CreateApiKeyRequest {
            role: v1::Role::Operator as i32,
            name: "canary".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let canary = created.token;
    let key = created.key.unwrap();
    let secret = canary.rsplit('_').next().unwrap().to_owned();
    assert_eq!(secret.len(), 64);

    // Used as it should be, then revoked, then sent in every wrong way.
    let mut errors = Vec::new();
    let mut info =
        v1::info_service_client::InfoServiceClient::new(authed(channel.clone(), &canary));
    let whoami = info
        .get_info(v1::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(whoami.principal, format!("key:{}", key.id));
    v1::run_service_client::RunServiceClient::new(authed(channel.clone(), &canary))
        .list_runs(v1::ListRunsRequest::default())
        .await
        .unwrap();
    v1::auth_service_client::AuthServiceClient::new(authed(channel.clone(), &admin))
        .revoke_api_key(v1::RevokeApiKeyRequest { id: key.id.clone() })
        .await
        .unwrap();
    for header in [
        format!("Bearer {canary}"),
        format!("Bearer {canary}x"),
        format!("Bearer {secret}"),
        format!("Basic {canary}"),
        format!("Bearer bk_{}_{secret}", "f".repeat(16)),
        canary.clone(),
    ] {
        let mut request = Request::new(v1::GetInfoRequest {});
        request
            .metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let status = info.get_info(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header}");
        errors.push(format!("{status:?}"));
    }
    // An operator key may not manage keys: the refusal names the key by id only.
    let denied = v1::auth_service_client::AuthServiceClient::new(authed(
        channel.clone(),
        &backend.issue_key("default", Role::Operator).await.unwrap(),
    ))
    .list_api_keys(v1::ListApiKeysRequest::default())
    .await
    .unwrap_err();
    errors.push(format!("{denied:?}"));

    let (_, _, metrics) = http_get(service.addr("METRICS_PORT"), "/metrics")
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let (_, _, signal) = http_get(service.addr("HTTP_PORT"), "/metrics")
        .await
        .unwrap();
    let signal = String::from_utf8_lossy(&signal).into_owned();
    assert!(metrics.contains("baton_auth_denied_total"), "{metrics}");
    let (_, logs) = service.terminate(WAIT).await.unwrap();
    let spans = collector.spans.lock().unwrap().join("\n");
    assert!(
        spans.contains("GetInfo"),
        "no spans were exported, so the check would prove nothing"
    );
    assert!(logs.contains("call denied"), "{logs}");
    assert!(
        logs.contains(&key.id),
        "the audit log names the key by its id"
    );
    for (place, text) in [
        ("logs", logs.as_str()),
        ("spans", spans.as_str()),
        ("errors", &errors.join("\n")),
        ("metrics", metrics.as_str()),
        ("raw signal", signal.as_str()),
    ] {
        assert!(
            !text.contains(&secret),
            "the canary's secret is in the {place}"
        );
    }
    backend.remove().await;
}
