//! The local admin key of a `baton dev` database: kept in the credentials file under the dev
//! gRPC address, so the CLI on this machine authenticates with no step of its own, while `baton
//! dev` runs with authentication on as production does. Reused while it is still active in this
//! database; otherwise a new one is issued. The token is never printed or logged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use baton_auth::{
    IssueError, KeyToken, Role,
    credentials::{Credentials, CredentialsError, ServerCredentials, server_key},
};
use baton_store::{KeyStore, StoreError};

/// Who the local key is recorded as created by.
pub const CREATED_BY: &str = "baton dev";

/// The key `baton dev` keeps for its database.
#[derive(Clone, Debug)]
pub struct LocalKey {
    /// The key's public id.
    pub id: String,
    pub tenant: String,
    /// Whether the credentials file already held it (else it was issued just now).
    pub reused: bool,
    /// The credentials file it is saved in.
    pub credentials: PathBuf,
    /// The address it is saved under (`http://127.0.0.1:8002`).
    pub addr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    #[error(
        "no place to save the local admin key: set BATON_CREDENTIALS (or HOME), or run with \
         BATON_AUTH=disabled"
    )]
    NoCredentialsFile,
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot issue the local admin key")]
    Issue(#[from] IssueError),
    #[error("cannot read or record the local admin key in the database file")]
    Store(#[from] StoreError),
}

/// The address a client on this machine reaches a listener bound to `bound` at: loopback when
/// it is bound to every interface.
pub fn client_addr(bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    server_key(&SocketAddr::new(ip, bound.port()).to_string())
}

/// Makes sure `credentials` holds, for `addr`, the token of an active admin key of `tenant` in
/// `keys`: the one it holds when it is such a key, else a new one it then saves.
pub async fn ensure_local_key(
    keys: &dyn KeyStore,
    credentials: Option<&Path>,
    addr: &str,
    tenant: &str,
) -> Result<LocalKey, LocalKeyError> {
    let path = credentials.ok_or(LocalKeyError::NoCredentialsFile)?;
    let mut file = Credentials::load(path)?;
    let local = |id: String, reused: bool| LocalKey {
        id,
        tenant: tenant.to_owned(),
        reused,
        credentials: path.to_owned(),
        addr: server_key(addr),
    };
    if let Some(token) = file
        .token_for(addr)
        .and_then(|saved| KeyToken::parse(saved.token.trim()))
        && let Some(record) = keys.find_api_key(&token.id).await?
        && record.revoked_at_micros.is_none()
        && record.tenant == tenant
        && record.role == Role::Admin.as_str()
        && token.matches(&record.secret_hash)
    {
        return Ok(local(token.id, true));
    }
    let issued = baton_auth::issue(tenant, Role::Admin, "local admin", CREATED_BY, now_micros())?;
    let token = issued.token;
    keys.create_api_key(issued.record).await?;
    file.set(
        addr,
        ServerCredentials {
            token: token.expose(),
            tenant: tenant.to_owned(),
        },
    );
    file.save(path)?;
    Ok(local(token.id, false))
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_reach_every_interface_on_loopback() {
        assert_eq!(
            client_addr("0.0.0.0:8002".parse().unwrap()),
            "http://127.0.0.1:8002"
        );
        assert_eq!(client_addr("[::]:1".parse().unwrap()), "http://[::1]:1");
        assert_eq!(
            client_addr("10.0.0.5:8002".parse().unwrap()),
            "http://10.0.0.5:8002"
        );
    }
}
