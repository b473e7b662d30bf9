//! Standard gRPC health (`grpc.health.v1`) on every service: SERVING only while Postgres and
//! Redis answer, NOT_SERVING during an outage and while draining at shutdown.

use std::{net::SocketAddr, process::Stdio, sync::Arc, time::Duration};

use baton_metrics::Metrics;
use baton_queue::{JobQueue, RedisQueue, RedisQueueConfig};
use baton_store::{PgStore, Store};
use baton_testkit::{StackOptions, TestStack};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const RUNNER_SERVICE: &str = baton_workflow_runner::HEALTH_SERVICE;

fn client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    HealthClient::new(channel)
}

async fn check(addr: SocketAddr, service: &str) -> Result<ServingStatus, tonic::Status> {
    let reply = client(addr)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(reply.status).expect("known status"))
}

/// Polls `Check` until it reports `want` (health checks run every 2 s).
async fn until_status(addr: SocketAddr, service: &str, want: ServingStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = check(addr, service).await;
        if got.as_ref().ok() == Some(&want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} {service:?}: wanted {want:?}, still {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Postgres store nothing answers for (nothing listens on port 1).
fn unreachable_store() -> Arc<dyn Store> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    Arc::new(PgStore::from_pool(pool))
}

/// Starts the orchestrator on a fresh port with the given store and queue.
async fn orchestrator(
    stack: &TestStack,
    store: Arc<dyn Store>,
    queue: Arc<dyn JobQueue>,
    token: CancellationToken,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config =
        baton_orchestrator::OrchestratorConfig::from_env(&baton_runtime::env::Env::from_pairs([]))
            .unwrap();
    config.database_url = stack.database_url.clone();
    config.redis_prefix = stack.prefix.clone();
    tokio::spawn(async move {
        let listeners = baton_orchestrator::Listeners {
            grpc: listener,
            http: None,
            metrics: None,
        };
        let metrics = Arc::new(Metrics::new().unwrap());
        let _ = baton_orchestrator::serve(store, queue, config, listeners, metrics, token).await;
    });
    addr
}

#[tokio::test]
async fn every_service_answers_health_checks() {
    let stack = TestStack::start().await.unwrap();
    for service in [
        "",
        "baton.v1.WorkflowService",
        "baton.v1.RunService",
        "baton.v1.InfoService",
    ] {
        until_status(stack.addr, service, ServingStatus::Serving).await;
    }
    let runner = stack.runner_health[0];
    for service in ["", RUNNER_SERVICE] {
        until_status(runner, service, ServingStatus::Serving).await;
    }
    for addr in [stack.addr, runner] {
        let unknown = check(addr, "baton.v1.NoSuchService").await.unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{addr}: {unknown:?}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_unreachable_postgres_makes_both_services_not_serving() {
    let stack = TestStack::start().await.unwrap();
    let token = CancellationToken::new();
    let queue = stack.queue.clone() as Arc<dyn JobQueue>;
    let orchestrator =
        orchestrator(&stack, unreachable_store(), queue.clone(), token.clone()).await;

    let health = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let runner = health.local_addr().unwrap();
    let config = stack.runner_config("runner-without-postgres");
    let runner_token = token.clone();
    tokio::spawn(async move {
        let listeners = baton_workflow_runner::Listeners {
            health: Some(health),
            ..Default::default()
        };
        let metrics = Arc::new(Metrics::new().unwrap());
        let _ = baton_workflow_runner::serve(
            unreachable_store(),
            queue,
            config,
            listeners,
            metrics,
            runner_token,
        )
        .await;
    });

    until_status(orchestrator, "", ServingStatus::NotServing).await;
    until_status(
        orchestrator,
        "baton.v1.RunService",
        ServingStatus::NotServing,
    )
    .await;
    until_status(runner, "", ServingStatus::NotServing).await;
    until_status(runner, RUNNER_SERVICE, ServingStatus::NotServing).await;
    token.cancel();
    stack.stop().await;
}

/// A Redis server of this test's own, so it can be stopped and started again.
struct OwnRedis {
    process: tokio::process::Child,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let process = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (make deps installs it)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { process }
    }

    async fn stop(mut self) {
        self.process.kill().await.unwrap();
    }
}

#[tokio::test]
async fn redis_going_away_and_coming_back_flips_health() {
    let stack = TestStack::start().await.unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let redis = OwnRedis::start(port).await;
    let queue = RedisQueue::connect(RedisQueueConfig::new(
        format!("redis://127.0.0.1:{port}"),
        &stack.prefix,
    ))
    .await
    .unwrap();
    let token = CancellationToken::new();
    let store = stack.store.clone() as Arc<dyn Store>;
    let addr = orchestrator(&stack, store, Arc::new(queue), token.clone()).await;

    until_status(addr, "", ServingStatus::Serving).await;
    redis.stop().await;
    until_status(addr, "", ServingStatus::NotServing).await;
    until_status(addr, "baton.v1.WorkflowService", ServingStatus::NotServing).await;
    let redis = OwnRedis::start(port).await;
    until_status(addr, "", ServingStatus::Serving).await;

    token.cancel();
    redis.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn shutdown_reports_not_serving_while_draining() {
    let stack = TestStack::start_with(StackOptions {
        shutdown_drain: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let runner = stack.runner_health[0];
    let mut watches = Vec::new();
    for (addr, service) in [(stack.addr, ""), (runner, RUNNER_SERVICE)] {
        until_status(addr, service, ServingStatus::Serving).await;
        let mut stream = client(addr)
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32, "{addr}");
        watches.push((addr, stream));
    }

    stack.begin_shutdown();
    for (addr, stream) in &mut watches {
        // Watch may repeat a status; the stream must reach NOT_SERVING while still open.
        let reached = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(update) = stream.message().await.unwrap() {
                if update.status == ServingStatus::NotServing as i32 {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or_else(|_| panic!("{addr}: Watch never said NOT_SERVING after shutdown"));
        assert!(reached, "{addr}: Watch ended without NOT_SERVING");
    }
    // While draining, new probes still connect and are told NOT_SERVING.
    assert_eq!(
        check(stack.addr, "").await.unwrap(),
        ServingStatus::NotServing
    );
    assert_eq!(check(runner, "").await.unwrap(), ServingStatus::NotServing);
    drop(watches);
    // After the drain the ports close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for addr in [stack.addr, runner] {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} still accepts connections after the drain"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stack.stop().await;
}
