//! Server-side span for tonic's `Server::builder().trace_fn(...)`, continuing the
//! caller's trace from the request's `traceparent` header.

use tonic::codegen::http::Request;

use crate::propagation::set_parent_from_headers;

/// An `info_span!("grpc", ...)` for an incoming request, named after its path and
/// parented to the remote context in its headers (if any).
///
/// ```no_run
/// # async fn serve() -> Result<(), tonic::transport::Error> {
/// tonic::transport::Server::builder()
///     .trace_fn(baton_telemetry::grpc_server_span)
/// #   ;
/// # Ok(()) }
/// ```
pub fn grpc_server_span(request: &Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = split_path(path);
    let span = tracing::info_span!(
        "grpc",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    set_parent_from_headers(&span, request.headers());
    span
}

/// Splits `/pkg.Service/Method` into `("pkg.Service", "Method")`.
fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tonic::metadata::MetadataMap;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::propagation::{inject_into_metadata, trace_id};

    #[test]
    fn path_splitting() {
        assert_eq!(
            split_path("/baton.v1.Orchestrator/StartRun"),
            ("baton.v1.Orchestrator", "StartRun")
        );
        assert_eq!(split_path("/weird"), ("weird", ""));
    }

    #[test]
    fn server_span_continues_client_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let client = tracing::info_span!("client");
            let mut metadata = MetadataMap::new();
            inject_into_metadata(&client, &mut metadata);

            let mut request = Request::builder()
                .uri("http://localhost/baton.v1.Orchestrator/StartRun")
                .body(())
                .expect("request");
            *request.headers_mut() = metadata.into_headers();

            let server = grpc_server_span(&request);
            assert!(trace_id(&client).is_some());
            assert_eq!(trace_id(&server), trace_id(&client));
        });
    }
}
