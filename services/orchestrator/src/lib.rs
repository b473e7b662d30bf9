//! The orchestrator: Baton's public gRPC API (workflows, runs, info, admin), with gRPC health and
//! server reflection on the same port. `main.rs` only reads configuration and calls [`serve`].

mod api;
mod config;
mod convert;
mod error;
mod starter;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use baton_metrics::{GrpcMetricsLayer, GrpcType, Metrics};
use baton_proto::v1::{
    admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer,
    info_service_server::InfoServiceServer, run_service_server::RunServiceServer,
    workflow_service_server::WorkflowServiceServer,
};
use baton_queue::{Queue, QueueAdmin, QueueError};
use baton_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api::Api;
pub use config::{AllowedOrigins, OrchestratorConfig};
pub use error::ApiError;

/// The gRPC services the orchestrator serves, as health service names.
pub const SERVICES: [&str; 5] = [
    "baton.v1.WorkflowService",
    "baton.v1.RunService",
    "baton.v1.InfoService",
    "baton.v1.AdminService",
    "baton.v1.AuthService",
];

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection set-up failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Config(#[from] baton_runtime::env::ConfigError),
    #[error("cannot set up JWT verification: {0}")]
    Jwt(#[from] baton_auth::JwtSetupError),
    /// Authentication is on, yet nothing could ever pass it.
    #[error(
        "no API key exists and no JWT is configured, so no call could be authenticated. Create \
         the first key with `baton auth key create --role admin --database-url <DATABASE_URL>`, \
         or configure BATON_JWT_JWKS_FILE or BATON_JWT_PUBLIC_KEY_FILE; or, for development only, \
         set BATON_AUTH=disabled"
    )]
    NoCredentials,
    #[error("cannot read the API keys: {0}")]
    Keys(baton_store::StoreError),
}

/// Where the orchestrator listens; bound by the caller, so tests can use port 0.
pub struct Listeners {
    /// The gRPC API, health and reflection.
    pub grpc: TcpListener,
    /// `/health` and the raw-signal JSON, when served.
    pub http: Option<TcpListener>,
    /// Prometheus `/metrics`, when served.
    pub metrics: Option<TcpListener>,
}

/// Serves the API until `shutdown`, then drains in-flight calls.
pub async fn serve(
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    config: OrchestratorConfig,
    listeners: Listeners,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let Listeners {
        grpc: listener,
        http: http_listener,
        metrics: metrics_listener,
    } = listeners;
    if let Some(listener) = metrics_listener {
        tokio::spawn(baton_metrics::serve(
            listener,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(listener) = http_listener {
        let sources = baton_signal::SignalSources {
            service: "orchestrator",
            store: store.clone(),
            queue: queue.clone(),
            kinds: known_kinds(&config.extra_kinds),
        };
        let router = baton_signal::router(
            sources,
            baton_signal::SignalConfig::from_env(&baton_runtime::env::Env::os())?,
        );
        tokio::spawn(baton_signal::serve(listener, router, shutdown.clone()));
    }
    tokio::spawn(report_queues(
        queue.clone(),
        config.extra_kinds.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let auth = Arc::new(baton_auth::Authenticator::new(
        config.auth.clone(),
        store.clone(),
    )?);
    check_credentials(&auth).await?;
    let events = baton_events::RunEvents::start(store.clone(), queue.clone(), shutdown.clone());
    let config_quotas = config.quotas.clone();
    let api = Arc::new(Api {
        store: store.clone(),
        queue: queue.clone(),
        config,
        events,
        started: Instant::now(),
        versions: Default::default(),
        starter: starter::RunStarter::spawn(store.clone(), queue.clone()),
        auth: auth.clone(),
        quotas: baton_auth::TenantQuotas::new(config_quotas),
        metrics: metrics.clone(),
    });

    let (reporter, health) = tonic_health::server::health_reporter();
    baton_runtime::spawn_health_checks(
        reporter,
        SERVICES.iter().map(|s| (*s).to_owned()).collect(),
        Arc::new(move || {
            let store = store.clone();
            let queue = queue.clone();
            Box::pin(async move {
                store.ping().await.map_err(|e| e.to_string())?;
                queue.ping().await.map_err(|e| e.to_string())
            })
        }),
        Duration::from_secs(2),
        shutdown.clone(),
    )
    .await;
    // v1 and v1alpha: tools and libraries that speak only v1alpha (Python's grpcio-reflection,
    // older grpcurl) would get UNIMPLEMENTED from v1 alone.
    let (reflection, reflection_v1alpha) = baton_service::reflection(&[
        baton_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ])?;
    let edge = api.config.edge.clone();
    let limit = edge.max_message_bytes();
    // Every service decodes and encodes at most `BATON_GRPC_MAX_MESSAGE_BYTES`.
    macro_rules! limited {
        ($service:expr) => {
            $service
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit)
        };
    }

    let cors = cors_layer(&api.config.grpc_web_allowed_origins);
    let drained = baton_runtime::drained(shutdown.clone(), api.config.shutdown_drain);
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, grpc_web_origins = ?api.config.grpc_web_allowed_origins, "orchestrator listening");
    // TCP_NODELAY: small gRPC frames (stream events, short replies) must not wait for Nagle.
    let incoming = edge.incoming(listener);
    // HTTP/1.1 beside HTTP/2 so browsers' gRPC-Web calls (translated by GrpcWebLayer) reach the
    // same services; CORS answers their preflights.
    edge.server()
        .accept_http1(true)
        .trace_fn(baton_telemetry::grpc_server_span)
        .layer(cors)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(
            GrpcMetricsLayer::new(metrics.clone())
                .with_method_type("/baton.v1.RunService/WatchRun", GrpcType::ServerStream)
                .with_method_type("/grpc.health.v1.Health/Watch", GrpcType::ServerStream),
        )
        // Inside the metrics layer, so its DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED answers are
        // counted; outside authentication, so the request timeout covers it.
        .layer(edge.layer())
        // Inside the metrics layer, so refused calls are counted with their codes too.
        .layer(baton_auth::AuthLayer::new(auth, metrics))
        .add_service(limited!(health))
        .add_service(limited!(reflection))
        .add_service(limited!(reflection_v1alpha))
        .add_service(limited!(AuthServiceServer::from_arc(api.clone())))
        .add_service(limited!(WorkflowServiceServer::from_arc(api.clone())))
        .add_service(limited!(RunServiceServer::from_arc(api.clone())))
        .add_service(limited!(AdminServiceServer::from_arc(api.clone())))
        .add_service(limited!(InfoServiceServer::from_arc(api)))
        .serve_with_incoming_shutdown(incoming, drained)
        .await?;
    tracing::info!("orchestrator stopped");
    Ok(())
}

/// Refuses to serve when authentication is on but no call could pass it, and says loudly when it
/// is off.
async fn check_credentials(auth: &baton_auth::Authenticator) -> Result<(), ServeError> {
    let config = auth.config();
    if !config.enabled {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (BATON_AUTH=disabled): every caller that reaches this port \
             is an admin of every tenant. Use this for development only."
        );
        return Ok(());
    }
    if config.jwt.is_none() {
        let keys = auth
            .keys()
            .count_active_api_keys()
            .await
            .map_err(ServeError::Keys)?;
        if keys == 0 {
            return Err(ServeError::NoCredentials);
        }
    }
    tracing::info!(auth = config.mode(), system_tenant = %config.system_tenant, "authentication on");
    Ok(())
}

/// CORS for gRPC-Web: the headers browsers must be allowed to send and to read for gRPC.
fn cors_layer(origins: &AllowedOrigins) -> tower_http::cors::CorsLayer {
    use tonic::codegen::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow_origin = match origins {
        AllowedOrigins::None => AllowOrigin::list(Vec::<HeaderValue>::new()),
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    let names = |names: &[&'static str]| {
        names
            .iter()
            .map(|name| HeaderName::from_static(name))
            .collect::<Vec<_>>()
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(names(&[
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "authorization",
            "traceparent",
            "tracestate",
        ]))
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
        ]))
        .max_age(Duration::from_secs(24 * 60 * 60))
}

/// How often queue lengths are read for the gauges.
const QUEUE_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Keeps the queue depth, pending and dead-letter gauges current.
async fn report_queues(
    queue: Arc<dyn QueueAdmin>,
    extra_kinds: Vec<String>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut kinds: Vec<String> = baton_workflow::BUILTIN_KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    kinds.extend(extra_kinds);
    loop {
        match queue.stats(&kinds).await {
            Ok(stats) => {
                for s in stats {
                    if s.name == "dead" {
                        metrics.set_dead_letters(s.length);
                    } else {
                        metrics.set_queue(&s.name, s.length, s.pending);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read queue lengths"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(QUEUE_REPORT_EVERY) => {}
        }
    }
}

/// The built-in kinds and the ones external workers serve.
fn known_kinds(extra: &[String]) -> Vec<String> {
    baton_workflow::BUILTIN_KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .chain(extra.iter().cloned())
        .collect()
}
