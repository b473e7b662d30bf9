//! End-to-end: spans from two "services" joined through a job-envelope carrier are
//! exported over OTLP/gRPC to an in-process collector as one trace.
//! One test per file: `init` installs process-global state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_telemetry::{TelemetryConfig, init_with, inject_context, set_parent, trace_id};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Stores every export request it receives.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.received
            .lock()
            .expect("collector lock")
            .push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(|v: &AnyValue| match &v.value {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_joined_through_carrier_reach_collector_as_one_trace() {
    let collector = Collector::default();
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = incoming.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            }),
    );

    let mut config =
        TelemetryConfig::new("orchestrator").with_otlp_endpoint(format!("http://{addr}"));
    config.log_filter = "info".to_owned();
    if let Some(otlp) = config.otlp.as_mut() {
        otlp.resource_attributes
            .push(("deployment.environment".to_owned(), "test".to_owned()));
    }
    let guard = init_with(config).expect("init telemetry");
    assert!(guard.is_exporting());

    // A second init (as other tests in a process would do) must not fail.
    let second = init_with(TelemetryConfig::new("other")).expect("second init");
    assert!(!second.is_exporting());
    second.shutdown();

    // Service A: the orchestrator schedules a step and puts its context in the envelope.
    let a = tracing::info_span!(
        "orchestrator",
        run.id = "run-42",
        workflow.definition = "nightly-etl",
        tenant = "acme",
    );
    let envelope: HashMap<String, String> = a.in_scope(|| inject_context(&a));
    assert!(envelope.contains_key("traceparent"), "{envelope:?}");
    let a_trace = trace_id(&a).expect("A has a trace id");

    // Service B: a worker picks up the job (no local parent) and continues the trace.
    let b = tracing::info_span!(
        parent: None,
        "worker",
        step.id = "extract",
        step.kind = "http",
        attempt = 2_i64,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    set_parent(&b, &envelope);
    b.in_scope(|| {
        tracing::info!("running step");
        b.record("otel.status_code", "ERROR");
        b.record("otel.status_description", "upstream returned 503");
    });
    assert_eq!(trace_id(&b).as_deref(), Some(a_trace.as_str()));
    drop(b);
    drop(a);

    guard.shutdown();

    let requests = collector.received.lock().expect("lock").clone();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;

    let resource_spans: Vec<_> = requests.iter().flat_map(|r| &r.resource_spans).collect();
    assert!(!resource_spans.is_empty(), "collector received nothing");
    let resource = resource_spans[0].resource.as_ref().expect("resource");
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("baton-orchestrator")
    );
    assert_eq!(
        string_attr(&resource.attributes, "service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        string_attr(&resource.attributes, "deployment.environment").as_deref(),
        Some("test")
    );

    let spans: Vec<&Span> = resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    let find = |name: &str| {
        *spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "span {name} not exported; got {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let span_a = find("orchestrator");
    let span_b = find("worker");

    assert_eq!(hex(&span_a.trace_id), a_trace);
    assert_eq!(span_a.trace_id, span_b.trace_id, "same trace");
    assert_eq!(span_b.parent_span_id, span_a.span_id, "B is a child of A");
    assert!(span_a.parent_span_id.is_empty(), "A is a root span");

    assert_eq!(
        string_attr(&span_a.attributes, "run.id").as_deref(),
        Some("run-42")
    );
    assert_eq!(
        string_attr(&span_a.attributes, "workflow.definition").as_deref(),
        Some("nightly-etl")
    );
    assert_eq!(
        string_attr(&span_a.attributes, "tenant").as_deref(),
        Some("acme")
    );
    assert_eq!(
        string_attr(&span_b.attributes, "step.id").as_deref(),
        Some("extract")
    );
    assert_eq!(
        string_attr(&span_b.attributes, "step.kind").as_deref(),
        Some("http")
    );
    assert_eq!(
        string_attr(&span_b.attributes, "attempt").as_deref(),
        Some("2")
    );

    let status = span_b.status.as_ref().expect("B has a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "upstream returned 503");
    assert!(
        span_a
            .status
            .as_ref()
            .is_none_or(|s| s.code != StatusCode::Error as i32),
        "A is not an error"
    );
}
