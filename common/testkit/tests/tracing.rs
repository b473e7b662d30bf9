//! One trace per run: a real run's spans, from the orchestrator's StartRun through the runner to
//! the workers, reach an in-process OTLP collector as one tree with the attributes operators
//! search by. One test per file: telemetry set-up is process-global.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_proto::v1::RunStatus;
use baton_telemetry::{TelemetryConfig, init_with};
use baton_testkit::{TestStack, status};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value},
    trace::v1::{Span, status::StatusCode},
};
use serde_json::json;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let kv: &KeyValue = span.attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_trace_across_services() {
    let collector = Collector::default();
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming),
    );
    let config = TelemetryConfig::new("testkit").with_otlp_endpoint(format!("http://{addr}"));
    let telemetry = init_with(config).unwrap();

    let stack = TestStack::start().await.unwrap();
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
    stack.stop().await;
    telemetry.shutdown();

    let spans = collector.spans.lock().unwrap().clone();
    let start = spans
        .iter()
        .find(|s| attr(s, "rpc.method").as_deref() == Some("StartRun"))
        .expect("the StartRun span");
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == start.trace_id)
        .collect();
    let by_id: HashMap<&[u8], &Span> = trace.iter().map(|s| (s.span_id.as_slice(), *s)).collect();

    // The runner's work on the run hangs off StartRun, and every job hangs off the runner.
    let applies: Vec<&&Span> = trace.iter().filter(|s| s.name == "runner.apply").collect();
    assert!(!applies.is_empty(), "no runner spans in the run's trace");
    for apply in &applies {
        assert_eq!(attr(apply, "run.id").as_deref(), Some(run.id.as_str()));
        assert_eq!(
            attr(apply, "workflow.definition").as_deref(),
            Some("examples/hello@1")
        );
        assert_eq!(attr(apply, "tenant").as_deref(), Some("default"));
    }
    let jobs: Vec<&&Span> = trace
        .iter()
        .filter(|s| attr(s, "step.id").is_some())
        .collect();
    let steps: std::collections::HashSet<String> =
        jobs.iter().filter_map(|s| attr(s, "step.id")).collect();
    for expected in ["greet", "left", "right", "join"] {
        assert!(
            steps.contains(expected),
            "no span for step {expected}: {steps:?}"
        );
    }
    for job in &jobs {
        let parent = by_id
            .get(job.parent_span_id.as_slice())
            .expect("a job's parent is in the trace");
        assert_eq!(parent.name, "runner.apply");
        assert!(attr(job, "step.kind").is_some() && attr(job, "attempt").is_some());
        assert_eq!(attr(job, "run.id").as_deref(), Some(run.id.as_str()));
    }
    // The failed first attempt of `left` is marked as an error with its message.
    let failed = jobs
        .iter()
        .find(|s| {
            attr(s, "step.id").as_deref() == Some("left")
                && attr(s, "attempt").as_deref() == Some("1")
        })
        .expect("left's first attempt");
    let status = failed.status.as_ref().expect("a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "flaky");
}
