//! Which address each port listens on. The gRPC port is the public, authenticated surface and
//! binds every interface by default; the admin surfaces (Prometheus, pprof, `/health` and the
//! raw-signal JSON) carry no authentication, so they bind loopback unless the operator opens them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

/// The setting and the address of a `listening` line of a service's JSON log (`LOG_FORMAT=json`),
/// as [`bind`], [`bind_admin`] and `baton dev` write it; `None` for any other line. A process
/// started on port 0 tells whoever started it its port this way.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &entry["fields"];
    if fields["message"] != "listening" {
        return None;
    }
    let addr = fields["addr"].as_str()?.parse().ok()?;
    Some((fields["variable"].as_str()?.to_owned(), addr))
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The lines a JSON-format subscriber writes, as a service's log file receives them.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_listening_line_of_a_port_0_bind_names_its_variable_and_bound_address() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        tracing::info!(variable = "GRPC_PORT", "not listening yet");
        let listener = BindAddrs::default().admin(0, "METRICS_PORT").await.unwrap();
        let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let found: Vec<_> = log.lines().filter_map(parse_listening).collect();
        assert_eq!(
            found,
            [("METRICS_PORT".to_owned(), listener.local_addr().unwrap())],
            "{log}"
        );
        assert_ne!(found[0].1.port(), 0);
        for other in ["", "listening", "{\"fields\":{\"message\":\"listening\"}}"] {
            assert_eq!(parse_listening(other), None, "{other}");
        }
    }
}
