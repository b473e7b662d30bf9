//! gRPC server metrics in the go-grpc-prometheus shape, recorded by a wrapper around a tonic
//! service so handlers need no instrumentation of their own.
//!
//! The wrapper looks only at the request URI (`/package.Service/Method`) and the response head:
//!
//! * `grpc_server_started_total` is counted when a request arrives;
//! * `grpc_server_handled_total` and `grpc_server_handling_seconds` are recorded when the
//!   response head is ready. `grpc_code` comes from the `grpc-status` header, which tonic sets on
//!   error and other trailers-only responses.
//!
//! Simplification: a successful response sends `grpc-status` in the trailers, which the wrapper
//! does not read. With no status header it counts `OK` at response start (or maps the HTTP status
//! when it is not 200), so a server stream that fails *after* its first message is still counted
//! `OK`, and handling time for streams is time to first response head, not to the end of the
//! stream. A request dropped before its response head (client went away) is counted `Canceled`.
//!
//! The URI does not say whether a method streams, so `grpc_type` is `unary` unless the method was
//! declared with [`GrpcMetricsLayer::with_method_type`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

use crate::{Metrics, MetricsError};

/// Counter `grpc_server_started_total{grpc_type,grpc_service,grpc_method}`.
pub const GRPC_SERVER_STARTED_TOTAL: &str = "grpc_server_started_total";
/// Counter `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}`.
pub const GRPC_SERVER_HANDLED_TOTAL: &str = "grpc_server_handled_total";
/// Histogram `grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}` with the
/// Prometheus default buckets (5 ms to 10 s), as go-grpc-prometheus uses.
pub const GRPC_SERVER_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";

const UNKNOWN: &str = "unknown";

/// The gRPC server metric families.
#[derive(Clone)]
pub(crate) struct GrpcServerMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    handling: HistogramVec,
}

impl GrpcServerMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let started = IntCounterVec::new(
            Opts::new(
                GRPC_SERVER_STARTED_TOTAL,
                "Total number of RPCs started on the server.",
            ),
            &["grpc_type", "grpc_service", "grpc_method"],
        )?;
        let handled = IntCounterVec::new(
            Opts::new(
                GRPC_SERVER_HANDLED_TOTAL,
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let handling = HistogramVec::new(
            HistogramOpts::new(
                GRPC_SERVER_HANDLING_SECONDS,
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            ),
            &["grpc_type", "grpc_service", "grpc_method"],
        )?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(handled.clone()))?;
        registry.register(Box::new(handling.clone()))?;
        Ok(Self {
            started,
            handled,
            handling,
        })
    }
}

/// The kind of RPC, as the `grpc_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GrpcType {
    /// One request, one response.
    #[default]
    Unary,
    /// A request stream, one response.
    ClientStream,
    /// One request, a response stream.
    ServerStream,
    /// Streams both ways.
    BidiStream,
}

impl GrpcType {
    /// The `grpc_type` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

/// Wraps tonic services in [`GrpcMetricsService`], recording the `grpc_server_*` metrics.
///
/// It does not implement `tower::Layer` yet (the crate has no direct `tower-layer` dependency),
/// so `Server::builder().layer(..)` does not accept it; wrap each service instead:
///
/// ```no_run
/// # use std::sync::Arc;
/// # use baton_metrics::{GrpcMetricsLayer, Metrics};
/// # fn wire<S>(metrics: Arc<Metrics>, svc: S) -> baton_metrics::GrpcMetricsService<S> {
/// let layer = GrpcMetricsLayer::new(metrics);
/// // Server::builder().add_service(layer.layer(InfoServiceServer::new(info)))
/// layer.layer(svc)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
    method_types: Arc<HashMap<String, GrpcType>>,
}

impl GrpcMetricsLayer {
    /// A layer recording into `metrics`; every method counts as `unary` until declared otherwise.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            method_types: Arc::new(HashMap::new()),
        }
    }

    /// Declares the type of one method, by its path (`/baton.v1.RunService/WatchRun`).
    pub fn with_method_type(mut self, path: impl Into<String>, grpc_type: GrpcType) -> Self {
        Arc::make_mut(&mut self.method_types).insert(path.into(), grpc_type);
        self
    }

    /// Wraps `inner`, as `tower::Layer::layer` would. Wrap a generated server and pass it to
    /// `Server::builder().add_service(..)`: the wrapper keeps the inner service's name.
    pub fn layer<S>(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            grpc: self.metrics.grpc.clone(),
            method_types: Arc::clone(&self.method_types),
        }
    }
}

/// A tonic service (or router) that records gRPC server metrics around `S`.
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    grpc: GrpcServerMetrics,
    method_types: Arc<HashMap<String, GrpcType>>,
}

impl<S> std::fmt::Debug for GrpcMetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetricsService").finish_non_exhaustive()
    }
}

impl<S: NamedService> NamedService for GrpcMetricsService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GrpcMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let path = req.uri().path();
        let (service, method) = split_path(path);
        let grpc_type = self
            .method_types
            .get(path)
            .copied()
            .unwrap_or_default()
            .label();
        let labels = [grpc_type.to_owned(), service.to_owned(), method.to_owned()];
        self.grpc.started.with_label_values(&labels).inc();
        let record = Record {
            grpc: self.grpc.clone(),
            labels,
            start: Instant::now(),
        };
        GrpcMetricsFuture {
            inner: Box::pin(self.inner.call(req)),
            record: Some(record),
        }
    }
}

/// The future of [`GrpcMetricsService`]: the inner response, recorded when it is ready.
pub struct GrpcMetricsFuture<F> {
    inner: Pin<Box<F>>,
    record: Option<Record>,
}

impl<F> std::fmt::Debug for GrpcMetricsFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetricsFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcMetricsFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match this.inner.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        if let Some(record) = this.record.take() {
            let code = match &result {
                Ok(response) => response_code(response),
                // The transport failed before a status existed.
                Err(_) => code_name(tonic::Code::Unknown),
            };
            record.finish(code);
        }
        Poll::Ready(result)
    }
}

impl<F> Drop for GrpcMetricsFuture<F> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.finish(code_name(tonic::Code::Cancelled));
        }
    }
}

/// What is needed to record one RPC's end.
struct Record {
    grpc: GrpcServerMetrics,
    labels: [String; 3],
    start: Instant,
}

impl Record {
    fn finish(self, code: &str) {
        let [grpc_type, service, method] = &self.labels;
        self.grpc
            .handled
            .with_label_values(&[grpc_type.as_str(), service, method, code])
            .inc();
        self.grpc
            .handling
            .with_label_values(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// Splits `/package.Service/Method` into service and method; anything else is `unknown`.
fn split_path(path: &str) -> (&str, &str) {
    path.strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .filter(|(service, method)| {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        })
        .unwrap_or((UNKNOWN, UNKNOWN))
}

/// The go-grpc-prometheus code name of a response: its `grpc-status` header, or `OK` for a
/// 200 without one (status in trailers), or the gRPC mapping of a non-200 HTTP status.
fn response_code<B>(response: &http::Response<B>) -> &'static str {
    if let Some(value) = response.headers().get("grpc-status") {
        let code = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .map_or(tonic::Code::Unknown, tonic::Code::from_i32);
        return code_name(code);
    }
    let code = match response.status().as_u16() {
        200 => tonic::Code::Ok,
        400 => tonic::Code::Internal,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::Unimplemented,
        429 | 502..=504 => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    };
    code_name(code)
}

/// Go's `codes.Code.String()` names, which go-grpc-prometheus dashboards expect.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsLayer::layer(self, inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            split_path("/baton.v1.InfoService/GetInfo"),
            ("baton.v1.InfoService", "GetInfo")
        );
        assert_eq!(split_path("/metrics"), (UNKNOWN, UNKNOWN));
        assert_eq!(split_path("/a/b/c"), (UNKNOWN, UNKNOWN));
        assert_eq!(split_path(""), (UNKNOWN, UNKNOWN));
    }

    #[test]
    fn reads_codes_from_headers_and_http_status() {
        let with_status = http::Response::builder()
            .header("grpc-status", "5")
            .body(())
            .unwrap();
        assert_eq!(response_code(&with_status), "NotFound");
        let ok = http::Response::builder().body(()).unwrap();
        assert_eq!(response_code(&ok), "OK");
        let unavailable = http::Response::builder().status(503).body(()).unwrap();
        assert_eq!(response_code(&unavailable), "Unavailable");
        let garbage = http::Response::builder()
            .header("grpc-status", "x")
            .body(())
            .unwrap();
        assert_eq!(response_code(&garbage), "Unknown");
    }

    /// Answers every call with `response`, or never when `response` is `None`.
    struct Fixed(Option<http::Response<()>>);

    impl Service<http::Request<()>> for Fixed {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: http::Request<()>) -> Self::Future {
            match self.0.take() {
                Some(response) => Box::pin(std::future::ready(Ok(response))),
                None => Box::pin(std::future::pending()),
            }
        }
    }

    fn handled(metrics: &Metrics, code: &str) -> u64 {
        metrics
            .grpc
            .handled
            .with_label_values(&["unary", "pkg.Svc", "Do", code])
            .get()
    }

    fn request() -> http::Request<()> {
        http::Request::builder()
            .uri("http://localhost/pkg.Svc/Do")
            .body(())
            .unwrap()
    }

    #[test]
    fn records_status_header_when_the_response_is_ready() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let response = http::Response::builder()
            .header("grpc-status", "14")
            .body(())
            .unwrap();
        let mut service = GrpcMetricsLayer::new(Arc::clone(&metrics)).layer(Fixed(Some(response)));
        let mut future = service.call(request());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut future).poll(&mut cx).is_ready());
        drop(future);
        assert_eq!(handled(&metrics, "Unavailable"), 1);
        assert_eq!(handled(&metrics, "Canceled"), 0);
        let started = metrics
            .grpc
            .started
            .with_label_values(&["unary", "pkg.Svc", "Do"])
            .get();
        assert_eq!(started, 1);
    }

    #[test]
    fn a_dropped_call_counts_as_canceled() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let mut service = GrpcMetricsLayer::new(Arc::clone(&metrics)).layer(Fixed(None));
        let mut future = service.call(request());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert_eq!(handled(&metrics, "Canceled"), 0);
        drop(future);
        assert_eq!(handled(&metrics, "Canceled"), 1);
    }
}
