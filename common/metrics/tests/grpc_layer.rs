//! Runs a real tonic server (`baton.v1.InfoService`) wrapped by the metrics layer over loopback
//! and checks the `grpc_server_*` series it records.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use baton_metrics::{GrpcMetricsLayer, GrpcType, Metrics};
use baton_proto::v1::info_service_client::InfoServiceClient;
use baton_proto::v1::info_service_server::{InfoService, InfoServiceServer};
use baton_proto::v1::{GetInfoRequest, GetInfoResponse};
use support::{bucket, parse, sample, scalar};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const SERVICE: &str = "baton.v1.InfoService";

/// Answers normally, or fails with `NOT_FOUND` when the request carries `x-fail`.
struct Info;

#[tonic::async_trait]
impl InfoService for Info {
    async fn get_info(
        &self,
        request: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        if request.metadata().contains_key("x-fail") {
            return Err(Status::not_found("no such build"));
        }
        Ok(Response::new(GetInfoResponse {
            service: "test".into(),
            version: "0.0.0".into(),
            git_revision: "none".into(),
            uptime_seconds: 1,
            ..Default::default()
        }))
    }
}

async fn start(
    layer: GrpcMetricsLayer,
) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(layer.layer(InfoServiceServer::new(Info)))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), token.cancelled_owned())
            .await
            .expect("grpc server");
    });
    (addr, shutdown, task)
}

#[tokio::test]
async fn records_started_handled_and_latency_per_code() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (addr, shutdown, task) = start(GrpcMetricsLayer::new(Arc::clone(&metrics))).await;

    let mut client = InfoServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    for _ in 0..3 {
        client.get_info(GetInfoRequest {}).await.expect("get_info");
    }
    let mut failing = Request::new(GetInfoRequest {});
    failing
        .metadata_mut()
        .insert("x-fail", "1".parse().expect("metadata value"));
    let status = client.get_info(failing).await.expect_err("not found");
    assert_eq!(status.code(), tonic::Code::NotFound);

    let scrape = parse(&metrics.encode());
    let method = [
        ("grpc_type", "unary"),
        ("grpc_service", SERVICE),
        ("grpc_method", "GetInfo"),
    ];
    assert_eq!(
        scalar(sample(&scrape, "grpc_server_started_total", &method)),
        4.0
    );
    let handled = |code| {
        let mut labels = method.to_vec();
        labels.push(("grpc_code", code));
        scalar(sample(&scrape, "grpc_server_handled_total", &labels))
    };
    assert_eq!(handled("OK"), 3.0);
    assert_eq!(handled("NotFound"), 1.0);
    assert_eq!(
        scalar(sample(
            &scrape,
            "grpc_server_handling_seconds_count",
            &method
        )),
        4.0
    );
    assert_eq!(
        bucket(
            sample(&scrape, "grpc_server_handling_seconds", &method),
            f64::INFINITY
        ),
        4.0
    );

    shutdown.cancel();
    task.await.expect("server task");
}

#[tokio::test]
async fn declared_method_types_are_used() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let layer = GrpcMetricsLayer::new(Arc::clone(&metrics))
        .with_method_type("/baton.v1.InfoService/GetInfo", GrpcType::ServerStream);
    let (addr, shutdown, task) = start(layer).await;
    let mut client = InfoServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    client.get_info(GetInfoRequest {}).await.expect("get_info");

    let scrape = parse(&metrics.encode());
    let labels = [
        ("grpc_type", "server_stream"),
        ("grpc_service", SERVICE),
        ("grpc_method", "GetInfo"),
        ("grpc_code", "OK"),
    ];
    assert_eq!(
        scalar(sample(&scrape, "grpc_server_handled_total", &labels)),
        1.0
    );

    shutdown.cancel();
    task.await.expect("server task");
}
