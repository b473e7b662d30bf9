//! Standard gRPC health (`grpc.health.v1`) on every service: SERVING only while Postgres and
//! Redis answer, NOT_SERVING during an outage and while draining at shutdown.

use std::{net::SocketAddr, process::Stdio, sync::Arc, time::Duration};

use baton_metrics::Metrics;
use baton_queue::{Queue, RedisQueue, RedisQueueConfig};
use baton_store::{PgStore, Store};
use baton_testkit::{StackOptions, TestStack};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
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
        // A server that stopped answering without closing its port fails the call, not the test
        // run.
        .timeout(Duration::from_secs(5))
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

/// A TCP proxy in front of the test Postgres that the test can cut: while cut, it closes every
/// connection it carries and closes new ones as soon as they arrive, as a Postgres that went away
/// would look to the services.
struct PostgresProxy {
    addr: SocketAddr,
    open: watch::Sender<bool>,
}

impl PostgresProxy {
    async fn start() -> Self {
        let upstream = postgres_address(&baton_testkit::admin_database_url());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, _) = watch::channel(true);
        let state = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut open = state.subscribe();
                if !*open.borrow_and_update() {
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = open.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Self { addr, open }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }

    /// A store of `stack`'s database reached through this proxy.
    fn store(&self, stack: &TestStack) -> Arc<dyn Store> {
        let upstream = postgres_address(&stack.database_url);
        let url = stack
            .database_url
            .replacen(&upstream, &self.addr.to_string(), 1);
        assert_ne!(url, stack.database_url, "{upstream} is not in the URL");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy(&url)
            .unwrap();
        Arc::new(PgStore::from_pool(pool))
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn postgres_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    match host.contains(':') {
        true => host.to_owned(),
        false => format!("{host}:5432"),
    }
}

/// Starts the orchestrator on a fresh port with the given store and queue.
async fn orchestrator(
    stack: &TestStack,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
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
async fn postgres_going_away_makes_both_services_not_serving_until_it_returns() {
    let stack = TestStack::start().await.unwrap();
    let proxy = PostgresProxy::start().await;
    let token = CancellationToken::new();
    let queue = stack.queue.clone() as Arc<dyn Queue>;
    let orchestrator =
        orchestrator(&stack, proxy.store(&stack), queue.clone(), token.clone()).await;

    let health = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let runner = health.local_addr().unwrap();
    let config = stack.runner_config("runner-behind-a-proxy");
    let (runner_store, runner_token) = (proxy.store(&stack), token.clone());
    tokio::spawn(async move {
        let listeners = baton_workflow_runner::Listeners {
            health: Some(health),
            ..Default::default()
        };
        let metrics = Arc::new(Metrics::new().unwrap());
        let _ = baton_workflow_runner::serve(
            runner_store,
            queue,
            config,
            listeners,
            metrics,
            runner_token,
        )
        .await;
    });

    // NOT_SERVING is where health starts, so first see the checks pass through the proxy.
    until_status(orchestrator, "", ServingStatus::Serving).await;
    until_status(runner, RUNNER_SERVICE, ServingStatus::Serving).await;

    proxy.cut();
    until_status(orchestrator, "", ServingStatus::NotServing).await;
    until_status(
        orchestrator,
        "baton.v1.RunService",
        ServingStatus::NotServing,
    )
    .await;
    until_status(runner, "", ServingStatus::NotServing).await;
    until_status(runner, RUNNER_SERVICE, ServingStatus::NotServing).await;

    proxy.restore();
    until_status(orchestrator, "", ServingStatus::Serving).await;
    until_status(runner, RUNNER_SERVICE, ServingStatus::Serving).await;
    token.cancel();
    stack.stop().await;
}

/// A Redis server of this test's own, on a Unix socket in a directory of its own (no TCP port to
/// race other tests for), so it can be stopped and started again at the same address.
struct OwnRedis {
    process: tokio::process::Child,
}

impl OwnRedis {
    async fn start(socket: &std::path::Path) -> Self {
        let process = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (make deps installs it)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::UnixStream::connect(socket).await.is_err() {
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
    let dir = std::env::temp_dir().join(format!("baton-redis-{}", stack.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let redis = OwnRedis::start(&socket).await;
    let queue = RedisQueue::connect(RedisQueueConfig::new(
        format!("redis+unix://{}", socket.display()),
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
    let redis = OwnRedis::start(&socket).await;
    until_status(addr, "", ServingStatus::Serving).await;

    token.cancel();
    redis.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    stack.stop().await;
}

#[tokio::test]
async fn shutdown_reports_not_serving_while_draining() {
    // Long enough that the probes below happen inside it however slow the machine is.
    let drain = Duration::from_secs(10);
    let stack = TestStack::start_with(StackOptions {
        shutdown_drain: drain,
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

    let shutdown_at = tokio::time::Instant::now();
    stack.begin_shutdown();
    for (addr, stream) in &mut watches {
        // Watch may repeat a status; the stream must reach NOT_SERVING while still open.
        let reached = tokio::time::timeout(drain, async {
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
    // After the drain, and not before, the ports close.
    let deadline = shutdown_at + drain + Duration::from_secs(20);
    for addr in [stack.addr, runner] {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} still accepts connections after the drain"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            shutdown_at.elapsed() >= drain,
            "{addr} closed {:?} after shutdown, before the {drain:?} drain ended",
            shutdown_at.elapsed()
        );
    }
    stack.stop().await;
}
