//! What an http step exports as traces: its spans join the run's trace, the callee gets that
//! trace's `traceparent`, and no exported span holds a secret the step used. One test per file:
//! telemetry set-up is process-global.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, http::HeaderMap, routing::get};
use baton_http_worker::HttpWorkerConfig;
use baton_proto::v1::RunStatus;
use baton_runtime::env::Env;
use baton_telemetry::{TelemetryConfig, init_with};
use baton_testkit::{StackOptions, TestStack, output, status, step};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

const SECRET: &str = "pat-93b1e2-traces-never-see-this";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_spans_join_the_run_and_hold_no_secret() {
    let collector = Collector::default();
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming),
    );
    let telemetry =
        init_with(TelemetryConfig::new("http-worker").with_otlp_endpoint(format!("http://{addr}")))
            .unwrap();

    // The callee answers with the traceparent it got; `/fail/...` fails with the path in it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/trace",
        get(|headers: HeaderMap| async move {
            headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned()
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("baton-http-spans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("TOKEN"), SECRET).unwrap();
    let dir_text = dir.display().to_string();
    let stack = TestStack::start_with(StackOptions {
        extra_kinds: vec!["http".to_owned()],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let config = HttpWorkerConfig::from_env(&Env::from_pairs([
        ("HTTP_WORKER_ALLOW", "127.0.0.1"),
        ("HTTP_WORKER_SECRETS_DIR", dir_text.as_str()),
    ]))
    .unwrap();
    let stop = CancellationToken::new();
    let (queue, token) = (stack.queue.clone(), stop.clone());
    let metrics = Arc::new(baton_metrics::Metrics::new().unwrap());
    let worker = tokio::spawn(async move {
        baton_http_worker::serve(queue, config, Default::default(), metrics, token)
            .await
            .unwrap();
    });
    stack
        .register(&format!(
            "owner: t\nname: traced\nversion: 1\nsteps:\n\
             - {{id: call, kind: http, input: {{url: 'http://{api}/trace', headers: {{authorization: 'Bearer {{{{ secrets.TOKEN }}}}'}}}}}}\n\
             - {{id: leak, kind: http, needs: [call], input: {{url: 'http://{api}/missing/{{{{ secrets.TOKEN }}}}'}}}}\n"
        ))
        .await
        .unwrap();
    let run = stack.start_run("t/traced@1", json!({})).await.unwrap();
    let run = stack
        .wait_for_end(&run.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        status(&run),
        RunStatus::Failed,
        "the second step gets a 404"
    );
    let parent = output(step(&run, "call"))["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(step(&run, "leak").error.contains("/missing/***"), "{run:?}");
    stop.cancel();
    let _ = worker.await;
    stack.stop().await;
    telemetry.shutdown();

    let spans = collector.spans.lock().unwrap().clone();
    assert!(!spans.is_empty(), "spans were exported");
    let dump = format!("{spans:?}");
    assert!(!dump.contains(SECRET), "an exported span holds the secret");
    assert!(
        dump.contains("/missing/***"),
        "the failed attempt's span carries its (redacted) error"
    );
    // The callee's parent is a span of this run's trace.
    let trace_id = parent.split('-').nth(1).unwrap_or_default().to_owned();
    assert_eq!(
        trace_id.len(),
        32,
        "a W3C traceparent reached the callee: {parent}"
    );
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    assert!(
        in_trace.iter().any(|s| s.name == "runner.apply"),
        "the request is part of the run's trace: {:?}",
        in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(in_trace.iter().any(|s| s.name == "http.request"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
