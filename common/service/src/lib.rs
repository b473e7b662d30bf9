//! The start-up every Baton service binary does the same way: connect to Postgres (and migrate)
//! and Redis (workers: Redis alone), bind its ports, start the Prometheus registry and the pprof
//! endpoints, and build its gRPC server with the edge limits and reflection. Kept once here so the
//! service mains only say what differs.

mod bind;
pub mod edge;
mod reflection;

use std::{net::IpAddr, sync::Arc};

use baton_metrics::{Metrics, MetricsConfig};
use baton_queue::{RedisQueue, RedisQueueConfig};
use baton_runtime::{env::Env, redact_url};
use baton_store::PgStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use bind::{
    ADMIN_ADDR_VAR, BindAddrs, DEFAULT_ADMIN_ADDR, DEFAULT_GRPC_ADDR, GRPC_ADDR_VAR, bind,
    bind_admin, parse_listening,
};
pub use edge::GrpcEdge;
pub use reflection::reflection;

/// Why a service could not start; each names what it was trying to reach.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to Postgres at {url}: {source}")]
    Postgres {
        url: String,
        source: baton_store::StoreError,
    },
    #[error("cannot migrate the database: {0}")]
    Migrate(baton_store::StoreError),
    #[error("cannot connect to Redis at {url}: {source}")]
    Redis {
        url: String,
        source: baton_queue::QueueError,
    },
    #[error("cannot listen on {ip} port {port} ({variable} on {address_variable}): {source}")]
    Bind {
        ip: IpAddr,
        port: u16,
        variable: &'static str,
        address_variable: &'static str,
        source: std::io::Error,
    },
    /// A bad `ENABLE_METRICS`, `METRICS_PORT`, `ENABLE_PPROF`, `PPROF_PORT`, `BATON_GRPC_ADDR` or
    /// `BATON_ADMIN_ADDR`; names it.
    #[error(transparent)]
    Config(#[from] baton_runtime::env::ConfigError),
    #[error(transparent)]
    Metrics(#[from] baton_metrics::MetricsError),
}

/// Connects to Postgres, applies the migrations, and connects to Redis: what a service that
/// holds run state needs.
pub async fn connect(
    database_url: &str,
    max_connections: u32,
    redis_url: &str,
    redis_prefix: &str,
) -> Result<(Arc<PgStore>, Arc<RedisQueue>), StartError> {
    let store = connect_store(database_url, max_connections).await?;
    let queue = connect_queue(redis_url, redis_prefix).await?;
    Ok((store, queue))
}

/// Connects to Postgres and applies the migrations (safe from every replica at once).
pub async fn connect_store(
    database_url: &str,
    max_connections: u32,
) -> Result<Arc<PgStore>, StartError> {
    let store = PgStore::connect(database_url, max_connections)
        .await
        .map_err(|source| StartError::Postgres {
            url: redact_url(database_url),
            source,
        })?;
    store.migrate().await.map_err(StartError::Migrate)?;
    Ok(Arc::new(store))
}

/// Connects to Redis: all a worker service needs, since workers never touch the store.
pub async fn connect_queue(
    redis_url: &str,
    redis_prefix: &str,
) -> Result<Arc<RedisQueue>, StartError> {
    let queue = RedisQueue::connect(RedisQueueConfig::new(redis_url, redis_prefix))
        .await
        .map_err(|source| StartError::Redis {
            url: redact_url(redis_url),
            source,
        })?;
    Ok(Arc::new(queue))
}

/// The Prometheus registry and, when `ENABLE_METRICS` allows, its listener; and the pprof
/// endpoints when `ENABLE_PPROF` is on, served until `shutdown`. Both listen on the admin address
/// (`BATON_ADMIN_ADDR`, default loopback).
pub async fn observability(
    default_metrics_port: u16,
    default_pprof_port: u16,
    shutdown: &CancellationToken,
) -> Result<(Arc<Metrics>, Option<TcpListener>), StartError> {
    let env = Env::os();
    let addrs = BindAddrs::from_env(&env)?;
    let config = MetricsConfig::from_env(&env, default_metrics_port)?;
    let listener = match config.enabled {
        true => Some(addrs.admin(config.port, "METRICS_PORT").await?),
        false => None,
    };
    let pprof = baton_pprof::PprofConfig::from_env(&env, default_pprof_port)?;
    if pprof.enabled {
        let listener = addrs.admin(pprof.port, "PPROF_PORT").await?;
        tokio::spawn(baton_pprof::serve(listener, shutdown.clone()));
    }
    Ok((Arc::new(Metrics::new()?), listener))
}
