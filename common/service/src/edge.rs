//! The limits of a service's gRPC port, set explicitly instead of left to tonic's defaults (which
//! allow unlimited streams per connection and replies of any size): how large a message may be,
//! how many streams and handlers one connection may hold, how long a call may take to answer,
//! and how dead peers are noticed. Every gRPC server of Baton is built from one [`GrpcEdge`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use baton_runtime::env::{ConfigError, Env};
use tokio::net::TcpListener;
use tonic::{
    Code, Status,
    codegen::{Body, Bytes, Service, StdError, http},
    transport::{Server, server::TcpIncoming},
};

/// Largest message, request or reply, in bytes.
pub const MAX_MESSAGE_BYTES_VAR: &str = "BATON_GRPC_MAX_MESSAGE_BYTES";
/// Most streams (calls in progress, watches included) one HTTP/2 connection may hold open.
pub const MAX_CONCURRENT_STREAMS_VAR: &str = "BATON_GRPC_MAX_CONCURRENT_STREAMS";
/// Most calls of one connection whose handler is working at once.
pub const CONCURRENCY_PER_CONNECTION_VAR: &str = "BATON_GRPC_CONCURRENCY_PER_CONNECTION";
/// Longest a call may take to answer (see [`GrpcEdge::request_timeout`]).
pub const REQUEST_TIMEOUT_VAR: &str = "BATON_GRPC_REQUEST_TIMEOUT";
/// How long a connection may be silent before the server pings it; `0s` sends no pings.
pub const KEEPALIVE_INTERVAL_VAR: &str = "BATON_GRPC_KEEPALIVE_INTERVAL";
/// How long the server waits for a ping's answer before it closes the connection.
pub const KEEPALIVE_TIMEOUT_VAR: &str = "BATON_GRPC_KEEPALIVE_TIMEOUT";

/// 4 MiB, what gRPC clients accept by default: a larger reply would fail at most clients anyway,
/// and Baton's own inputs and outputs are capped at 1 MiB each.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// 200, hyper's usual figure; tonic would otherwise allow any number, and each open `WatchRun`
/// holds a buffer on the server.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 200;
/// 64: enough for a client multiplexing many calls on one connection, few enough that one
/// connection cannot take every database connection; more calls wait their turn.
pub const DEFAULT_CONCURRENCY_PER_CONNECTION: usize = 64;
/// 30 s: every unary call of Baton answers well within it (CancelRun waits at most 10 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// 30 s: below the idle timeouts of common load balancers and NATs (60 s and more), so a quiet
/// `WatchRun` is neither cut by them nor kept by a peer that is gone.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// 20 s, hyper's figure.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The limits of a gRPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcEdge {
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    concurrency_per_connection: usize,
    request_timeout: Duration,
    keepalive_interval: Option<Duration>,
    keepalive_timeout: Duration,
}

impl Default for GrpcEdge {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            concurrency_per_connection: DEFAULT_CONCURRENCY_PER_CONNECTION,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
        }
    }
}

impl GrpcEdge {
    /// Reads the `BATON_GRPC_*` limits (defaults above). Sizes and counts are positive integers,
    /// times are written like `500ms` or `30s`; a bad or zero value is an error naming its
    /// variable, except `BATON_GRPC_KEEPALIVE_INTERVAL=0s`, which turns pings off.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let keepalive_interval =
            env.duration_or(KEEPALIVE_INTERVAL_VAR, DEFAULT_KEEPALIVE_INTERVAL)?;
        Ok(Self {
            max_message_bytes: positive(
                env,
                MAX_MESSAGE_BYTES_VAR,
                env.parse_or(MAX_MESSAGE_BYTES_VAR, DEFAULT_MAX_MESSAGE_BYTES)?,
            )?,
            max_concurrent_streams: positive(
                env,
                MAX_CONCURRENT_STREAMS_VAR,
                env.parse_or(MAX_CONCURRENT_STREAMS_VAR, DEFAULT_MAX_CONCURRENT_STREAMS)?,
            )?,
            concurrency_per_connection: positive(
                env,
                CONCURRENCY_PER_CONNECTION_VAR,
                env.parse_or(
                    CONCURRENCY_PER_CONNECTION_VAR,
                    DEFAULT_CONCURRENCY_PER_CONNECTION,
                )?,
            )?,
            request_timeout: positive(
                env,
                REQUEST_TIMEOUT_VAR,
                env.duration_or(REQUEST_TIMEOUT_VAR, DEFAULT_REQUEST_TIMEOUT)?,
            )?,
            keepalive_interval: (!keepalive_interval.is_zero()).then_some(keepalive_interval),
            keepalive_timeout: positive(
                env,
                KEEPALIVE_TIMEOUT_VAR,
                env.duration_or(KEEPALIVE_TIMEOUT_VAR, DEFAULT_KEEPALIVE_TIMEOUT)?,
            )?,
        })
    }

    /// A server builder with the connection limits applied: at most `max_concurrent_streams`
    /// streams per HTTP/2 connection, at most `concurrency_per_connection` handlers working at
    /// once per connection (more calls wait, they are not refused), HTTP/2 keepalive pings, and
    /// TCP_NODELAY. Add [`GrpcEdge::layer`] to it, and give every service
    /// [`GrpcEdge::max_message_bytes`].
    pub fn server(&self) -> Server {
        Server::builder()
            .max_concurrent_streams(self.max_concurrent_streams)
            .concurrency_limit_per_connection(self.concurrency_per_connection)
            .http2_keepalive_interval(self.keepalive_interval)
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
            .tcp_nodelay(true)
    }

    /// The request timeout and the message-size answer, as a layer. Add it after CORS, gRPC-Web
    /// and the metrics layer (tonic nests each layer inside the ones before), so they see what it
    /// answers; a layer added after it, such as authentication, runs within its timeout.
    pub fn layer(&self) -> EdgeLayer {
        EdgeLayer {
            request_timeout: self.request_timeout,
        }
    }

    /// The connections of `listener`, with TCP_NODELAY: small gRPC frames (stream events, short
    /// replies) must not wait for Nagle. ([`Server::tcp_nodelay`] only covers ports tonic binds.)
    pub fn incoming(&self, listener: TcpListener) -> TcpIncoming {
        TcpIncoming::from(listener).with_nodelay(Some(true))
    }

    /// Largest message in bytes: give it to every generated service server as
    /// `max_decoding_message_size` and `max_encoding_message_size`. A larger request is answered
    /// `RESOURCE_EXHAUSTED` (by [`EdgeLayer`]); a larger reply is not sent and the call fails
    /// with tonic's `OUT_OF_RANGE`, both naming the size and the limit.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Most streams one HTTP/2 connection may hold open.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// Most handlers of one connection working at once.
    pub fn concurrency_per_connection(&self) -> usize {
        self.concurrency_per_connection
    }

    /// How long a connection may be silent before it is pinged; `None` sends no pings.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.keepalive_interval
    }

    /// How long a ping may go unanswered before the connection is closed.
    pub fn keepalive_timeout(&self) -> Duration {
        self.keepalive_timeout
    }

    /// Longest a call may take until its answer starts: all of a unary call, and for a streaming
    /// call (`WatchRun`, health `Watch`) only the handler's work before the stream is returned,
    /// never the stream itself, which may flow for hours. A call over it is stopped and answered
    /// `DEADLINE_EXCEEDED` naming `BATON_GRPC_REQUEST_TIMEOUT`.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// `value` unless it is zero, which no limit of the edge can mean.
fn positive<T: Default + PartialEq>(env: &Env, name: &str, value: T) -> Result<T, ConfigError> {
    if value != T::default() {
        return Ok(value);
    }
    Err(ConfigError {
        name: name.to_owned(),
        value: env.var(name).unwrap_or_default(),
        reason: "must be more than zero".into(),
    })
}

/// Bounds each call by the request timeout and answers an oversized request with
/// `RESOURCE_EXHAUSTED`; see [`GrpcEdge::layer`].
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    request_timeout: Duration,
}

impl<S> tower_layer::Layer<S> for EdgeLayer {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// The service [`EdgeLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct EdgeService<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for EdgeService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let timeout = self.request_timeout;
        // The future ends when the response head is ready: a stream's body is not under it.
        let answer = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => Ok(oversized_request(response)),
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the server stopped this call after {timeout:?} without an answer \
                     ({REQUEST_TIMEOUT_VAR})"
                ))
                .into_http()),
            }
        })
    }
}

/// What tonic says when a request message is over `max_decoding_message_size`.
const DECODE_LIMIT_MESSAGE: &str = "Error, decoded message length too large: ";

/// tonic answers a request over the size limit `OUT_OF_RANGE`; gRPC's status codes say
/// `RESOURCE_EXHAUSTED`, which is what other servers send and clients expect.
fn oversized_request<B>(response: http::Response<B>) -> http::Response<tonic::body::Body>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError>,
{
    let out_of_range = response
        .headers()
        .get("grpc-status")
        .and_then(|code| code.to_str().ok()?.parse::<i32>().ok())
        == Some(Code::OutOfRange as i32);
    if out_of_range
        && let Some(status) = Status::from_header_map(response.headers())
        && let Some(sizes) = status.message().strip_prefix(DECODE_LIMIT_MESSAGE)
    {
        return Status::resource_exhausted(format!(
            "request message too large: {sizes} ({MAX_MESSAGE_BYTES_VAR})"
        ))
        .into_http();
    }
    response.map(tonic::body::Body::new)
}
