//! Which address each port listens on. The gRPC port is the public, authenticated surface and
//! binds every interface by default; the admin surfaces (Prometheus, pprof, `/health` and the
//! raw-signal JSON) carry no authentication, so they bind loopback unless the operator opens them.

use std::net::{IpAddr, Ipv4Addr};

use baton_runtime::env::{ConfigError, Env};
use tokio::net::TcpListener;

use crate::StartError;

/// The address the gRPC port (`GRPC_PORT`) binds: every interface unless set.
pub const GRPC_ADDR_VAR: &str = "BATON_GRPC_ADDR";
/// The address the admin ports (`HTTP_PORT`, `METRICS_PORT`, `PPROF_PORT`) bind: loopback unless
/// set; `0.0.0.0` lets a scraper on another host in.
pub const ADMIN_ADDR_VAR: &str = "BATON_ADMIN_ADDR";

/// Every interface: clients of the API reach it from other hosts.
pub const DEFAULT_GRPC_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Loopback: metrics, profiles and the raw signal say a lot about a process and ask no
/// credentials, so only the host itself sees them until an operator decides otherwise.
pub const DEFAULT_ADMIN_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The two bind addresses of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddrs {
    /// Where the gRPC port listens ([`GRPC_ADDR_VAR`]).
    pub grpc: IpAddr,
    /// Where the admin ports listen ([`ADMIN_ADDR_VAR`]).
    pub admin: IpAddr,
}

impl Default for BindAddrs {
    fn default() -> Self {
        Self {
            grpc: DEFAULT_GRPC_ADDR,
            admin: DEFAULT_ADMIN_ADDR,
        }
    }
}

impl BindAddrs {
    /// Reads `BATON_GRPC_ADDR` (default `0.0.0.0`) and `BATON_ADMIN_ADDR` (default `127.0.0.1`):
    /// IPv4 or IPv6 addresses, not host names; a bad value is an error naming its variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            grpc: ip_or(env, GRPC_ADDR_VAR, DEFAULT_GRPC_ADDR)?,
            admin: ip_or(env, ADMIN_ADDR_VAR, DEFAULT_ADMIN_ADDR)?,
        })
    }

    /// Listens on `port` of the gRPC address.
    pub async fn grpc(&self, port: u16, variable: &'static str) -> Result<TcpListener, StartError> {
        listen(self.grpc, GRPC_ADDR_VAR, port, variable).await
    }

    /// Listens on `port` of the admin address.
    pub async fn admin(
        &self,
        port: u16,
        variable: &'static str,
    ) -> Result<TcpListener, StartError> {
        listen(self.admin, ADMIN_ADDR_VAR, port, variable).await
    }
}

/// Listens on `port` of the gRPC address (`BATON_GRPC_ADDR`, default every interface); `variable`
/// names the port's setting in errors and in the log line that says which address was bound (the
/// one to connect to when `port` is 0). For the admin ports use [`bind_admin`].
pub async fn bind(port: u16, variable: &'static str) -> Result<TcpListener, StartError> {
    BindAddrs::from_env(&Env::os())?.grpc(port, variable).await
}

/// Listens on `port` of the admin address (`BATON_ADMIN_ADDR`, default loopback): for
/// `HTTP_PORT`, `METRICS_PORT` and `PPROF_PORT`.
pub async fn bind_admin(port: u16, variable: &'static str) -> Result<TcpListener, StartError> {
    BindAddrs::from_env(&Env::os())?.admin(port, variable).await
}

async fn listen(
    ip: IpAddr,
    address_variable: &'static str,
    port: u16,
    variable: &'static str,
) -> Result<TcpListener, StartError> {
    let listener = TcpListener::bind((ip, port))
        .await
        .map_err(|source| StartError::Bind {
            ip,
            port,
            variable,
            address_variable,
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(variable, %addr, address_variable, "listening");
    }
    Ok(listener)
}

fn ip_or(env: &Env, name: &str, default: IpAddr) -> Result<IpAddr, ConfigError> {
    match env.var(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError {
            name: name.to_owned(),
            value,
            reason: "expected an IP address such as 127.0.0.1, 0.0.0.0 or :: (no host name, \
                     no port)"
                .into(),
        }),
    }
}
