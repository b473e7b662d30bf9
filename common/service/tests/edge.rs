//! Real gRPC servers built from `GrpcEdge` on 127.0.0.1, called by real tonic clients: both
//! reflection versions answer, a request over the message limit is `RESOURCE_EXHAUSTED`, a stream
//! outlives the request timeout while a slow unary call is cut, a metrics layer before the edge
//! counts those answers, and the limits' variables parse.

use std::{net::SocketAddr, time::Duration};

use baton_runtime::env::Env;
use baton_service::{
    GrpcEdge,
    edge::{
        CONCURRENCY_PER_CONNECTION_VAR, EdgeLayer, KEEPALIVE_INTERVAL_VAR, KEEPALIVE_TIMEOUT_VAR,
        MAX_CONCURRENT_STREAMS_VAR, MAX_MESSAGE_BYTES_VAR, REQUEST_TIMEOUT_VAR,
    },
};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{
    Code, Request, Response, Status,
    transport::{Channel, server::Router},
};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};
use tonic_reflection::pb::{v1, v1alpha};
use tower_layer::{Identity, Stack};

type EdgeRouter = Router<Stack<EdgeLayer, Identity>>;

/// A server on a loopback port, stopped when dropped.
struct Running {
    addr: SocketAddr,
    _stop: DropGuard,
}

impl Running {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }
}

async fn start(edge: &GrpcEdge, router: EdgeRouter) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let stop = CancellationToken::new();
    let incoming = edge.incoming(listener);
    tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()));
    Running {
        addr,
        _stop: stop.drop_guard(),
    }
}

fn edge(pairs: &[(&str, &str)]) -> GrpcEdge {
    GrpcEdge::from_env(&Env::from_pairs(pairs.iter().copied())).expect("edge")
}

/// The real tonic-health service and both reflection versions, as a service binary serves them.
async fn start_health_and_reflection(
    edge: &GrpcEdge,
) -> (Running, tonic_health::server::HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let (reflection_v1, reflection_v1alpha) =
        baton_service::reflection(&[tonic_health::pb::FILE_DESCRIPTOR_SET]).expect("reflection");
    let limit = edge.max_message_bytes();
    let router = edge
        .server()
        .layer(edge.layer())
        .add_service(
            health
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            reflection_v1
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            reflection_v1alpha
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        );
    (start(edge, router).await, reporter)
}

const EXPECTED_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[tokio::test]
async fn reflection_lists_the_services_over_v1_and_v1alpha() {
    let edge = GrpcEdge::default();
    let (server, _reporter) = start_health_and_reflection(&edge).await;

    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("v1 answer")
        .expect("one answer");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1 answered {answer:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, EXPECTED_SERVICES);

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("v1alpha answer")
        .expect("one answer");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha answered {answer:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, EXPECTED_SERVICES);
}

#[tokio::test]
async fn a_request_over_the_message_limit_is_resource_exhausted() {
    let edge = GrpcEdge::default();
    assert_eq!(edge.max_message_bytes(), 4 * 1024 * 1024);
    let (server, _reporter) = start_health_and_reflection(&edge).await;
    let mut client = HealthClient::new(server.channel().await);

    let check = |bytes: usize| HealthCheckRequest {
        service: "x".repeat(bytes),
    };
    // Under the limit: answered by the service (an unknown service name).
    let under = client.check(check(1024 * 1024)).await.unwrap_err();
    assert_eq!(under.code(), Code::NotFound, "{under:?}");

    let over = client
        .check(check(edge.max_message_bytes() + 1024))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(
        over.message().contains(MAX_MESSAGE_BYTES_VAR)
            && over
                .message()
                .contains(&edge.max_message_bytes().to_string()),
        "{over:?}"
    );

    // The connection is still good after the refusal.
    let under = client.check(check(10)).await.unwrap_err();
    assert_eq!(under.code(), Code::NotFound, "{under:?}");
}

#[tokio::test]
async fn the_message_limit_is_configurable_and_bounds_replies_too() {
    let edge = edge(&[(MAX_MESSAGE_BYTES_VAR, "1024")]);
    let (server, _reporter) = start_health_and_reflection(&edge).await;

    let mut health = HealthClient::new(server.channel().await);
    let over = health
        .check(HealthCheckRequest {
            service: "x".repeat(2048),
        })
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(
        over.message().contains("the limit is: 1024 bytes"),
        "{over:?}"
    );

    // The reflection service's own descriptor is larger than 1 KiB: the reply is not sent.
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "grpc.reflection.v1.ServerReflection".into(),
            ),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = answers.message().await.unwrap_err();
    assert_eq!(reply.code(), Code::OutOfRange, "{reply:?}");
    assert!(
        reply.message().contains("the limit is: 1024 bytes"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_stream_outlives_the_request_timeout() {
    let timeout = Duration::from_millis(300);
    let edge = edge(&[(REQUEST_TIMEOUT_VAR, "300ms")]);
    assert_eq!(edge.request_timeout(), timeout);
    let (server, reporter) = start_health_and_reflection(&edge).await;
    reporter
        .set_service_status("watched", tonic_health::ServingStatus::Serving)
        .await;

    let mut client = HealthClient::new(server.channel().await);
    let started = Instant::now();
    let mut watch = client
        .watch(HealthCheckRequest {
            service: "watched".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("first").expect("first status");
    assert_eq!(first.status(), ServingStatus::Serving);

    // Flip the status for four request timeouts; every change must still arrive.
    let flips = tokio::spawn(async move {
        for i in 0..12 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let status = match i % 2 {
                0 => tonic_health::ServingStatus::NotServing,
                _ => tonic_health::ServingStatus::Serving,
            };
            reporter.set_service_status("watched", status).await;
        }
        reporter
    });
    let mut last_at = started.elapsed();
    let mut received = 0;
    while received < 12 {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("the stream went quiet")
            .unwrap_or_else(|e| panic!("stream ended after {:?}: {e:?}", started.elapsed()))
            .expect("stream ended");
        received += 1;
        last_at = started.elapsed();
        let expected = match received % 2 {
            1 => ServingStatus::NotServing,
            _ => ServingStatus::Serving,
        };
        assert_eq!(next.status(), expected, "change {received}");
    }
    assert!(
        last_at > timeout * 3,
        "the last change came at {last_at:?}, not well past the {timeout:?} timeout"
    );
    let _reporter = flips.await.expect("flips");
}

/// A health service whose `Check` takes as many milliseconds as its service name says.
struct Slow;

#[tonic::async_trait]
impl Health for Slow {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let millis = request.get_ref().service.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(tokio_stream::empty()))
    }
}

#[tokio::test]
async fn a_unary_call_slower_than_the_request_timeout_is_cut() {
    let timeout = Duration::from_millis(300);
    let edge = edge(&[(REQUEST_TIMEOUT_VAR, "300ms")]);
    let router = edge
        .server()
        .layer(edge.layer())
        .add_service(HealthServer::new(Slow));
    let server = start(&edge, router).await;
    let mut client = HealthClient::new(server.channel().await);

    let fast = client
        .check(HealthCheckRequest {
            service: "50".into(),
        })
        .await
        .expect("a fast call is answered");
    assert_eq!(fast.get_ref().status(), ServingStatus::Serving);

    let started = Instant::now();
    let cut = client
        .check(HealthCheckRequest {
            service: "5000".into(),
        })
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(cut.code(), Code::DeadlineExceeded, "{cut:?}");
    assert!(cut.message().contains(REQUEST_TIMEOUT_VAR), "{cut:?}");
    assert!(
        took >= timeout && took < Duration::from_secs(3),
        "cut after {took:?}"
    );
}

#[test]
fn limits_have_documented_defaults_and_read_their_variables() {
    let defaults = edge(&[]);
    assert_eq!(defaults, GrpcEdge::default());
    assert_eq!(defaults.max_message_bytes(), 4 * 1024 * 1024);
    assert_eq!(defaults.max_concurrent_streams(), 200);
    assert_eq!(defaults.concurrency_per_connection(), 64);
    assert_eq!(defaults.request_timeout(), Duration::from_secs(30));
    assert_eq!(defaults.keepalive_interval(), Some(Duration::from_secs(30)));
    assert_eq!(defaults.keepalive_timeout(), Duration::from_secs(20));

    let set = edge(&[
        (MAX_MESSAGE_BYTES_VAR, "1048576"),
        (MAX_CONCURRENT_STREAMS_VAR, "50"),
        (CONCURRENCY_PER_CONNECTION_VAR, " 8 "),
        (REQUEST_TIMEOUT_VAR, "2m"),
        (KEEPALIVE_INTERVAL_VAR, "10s"),
        (KEEPALIVE_TIMEOUT_VAR, "5s"),
    ]);
    assert_eq!(set.max_message_bytes(), 1024 * 1024);
    assert_eq!(set.max_concurrent_streams(), 50);
    assert_eq!(set.concurrency_per_connection(), 8);
    assert_eq!(set.request_timeout(), Duration::from_secs(120));
    assert_eq!(set.keepalive_interval(), Some(Duration::from_secs(10)));
    assert_eq!(set.keepalive_timeout(), Duration::from_secs(5));

    assert_eq!(
        edge(&[(KEEPALIVE_INTERVAL_VAR, "0s")]).keepalive_interval(),
        None
    );
}

#[test]
fn bad_limits_are_errors_naming_the_variable() {
    let cases = [
        (MAX_MESSAGE_BYTES_VAR, "4MiB"),
        (MAX_MESSAGE_BYTES_VAR, "-1"),
        (MAX_MESSAGE_BYTES_VAR, "0"),
        (MAX_CONCURRENT_STREAMS_VAR, "many"),
        (MAX_CONCURRENT_STREAMS_VAR, "4294967296"),
        (MAX_CONCURRENT_STREAMS_VAR, "0"),
        (CONCURRENCY_PER_CONNECTION_VAR, "1.5"),
        (CONCURRENCY_PER_CONNECTION_VAR, "0"),
        (REQUEST_TIMEOUT_VAR, "30"),
        (REQUEST_TIMEOUT_VAR, "soon"),
        (REQUEST_TIMEOUT_VAR, "0s"),
        (KEEPALIVE_INTERVAL_VAR, "often"),
        (KEEPALIVE_TIMEOUT_VAR, "0s"),
        (KEEPALIVE_TIMEOUT_VAR, "x"),
    ];
    for (name, value) in cases {
        let err = GrpcEdge::from_env(&Env::from_pairs([(name, value)])).unwrap_err();
        assert_eq!((err.name.as_str(), err.value.as_str()), (name, value));
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[tokio::test]
async fn the_metrics_layer_before_the_edge_counts_its_answers() {
    let metrics = std::sync::Arc::new(baton_metrics::Metrics::new().expect("metrics"));
    let edge = edge(&[
        (REQUEST_TIMEOUT_VAR, "300ms"),
        (MAX_MESSAGE_BYTES_VAR, "1024"),
    ]);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let stop = CancellationToken::new();
    let limit = edge.max_message_bytes();
    tokio::spawn(
        edge.server()
            .layer(baton_metrics::GrpcMetricsLayer::new(metrics.clone()))
            .layer(edge.layer())
            .add_service(
                HealthServer::new(Slow)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
            .serve_with_incoming_shutdown(edge.incoming(listener), stop.clone().cancelled_owned()),
    );
    let server = Running {
        addr,
        _stop: stop.drop_guard(),
    };
    let mut client = HealthClient::new(server.channel().await);

    let cut = client
        .check(HealthCheckRequest {
            service: "5000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(cut.code(), Code::DeadlineExceeded, "{cut:?}");
    let over = client
        .check(HealthCheckRequest {
            service: "x".repeat(2048),
        })
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");

    let text = metrics.encode();
    for code in ["DeadlineExceeded", "ResourceExhausted"] {
        let counted = text.lines().any(|line| {
            line.starts_with("grpc_server_handled_total")
                && line.contains(&format!("grpc_code=\"{code}\""))
                && line.ends_with(" 1")
        });
        assert!(counted, "no {code} counted:\n{text}");
    }
}
