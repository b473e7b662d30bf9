//! The bench's API key. The services run with authentication on, as in production: for the
//! production backend the bench issues an admin key into the fresh database before the
//! orchestrator starts (it refuses to start without one); `baton dev` issues its own and saves it
//! in the credentials file the bench points it at.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use baton_auth::{Role, credentials::Credentials};
use baton_store::KeyStore;

/// The tenant the bench works in: the default system tenant, as a single-tenant deployment has.
const TENANT: &str = "default";

/// Migrates the database at `database_url` and stores a new admin key in it; returns its token.
pub async fn issue_postgres(database_url: &str) -> anyhow::Result<String> {
    let store = baton_store::PgStore::connect(database_url, 1)
        .await
        .context("cannot connect to the bench database to issue its API key")?;
    store
        .migrate()
        .await
        .context("cannot migrate the bench database")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
    let issued = baton_auth::issue(
        TENANT,
        Role::Admin,
        "bench",
        "bootstrap",
        i64::try_from(now)?,
    )?;
    store
        .create_api_key(issued.record)
        .await
        .context("cannot store the bench's API key")?;
    store.pool().close().await;
    Ok(issued.token.expose())
}

/// Waits until the credentials file at `path` holds a token for the API on loopback `port`, for
/// at most `timeout`; `alive` is checked between looks (it fails when `baton dev` has exited).
pub async fn from_credentials(
    path: &Path,
    port: u16,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + timeout;
    loop {
        alive()?;
        // `baton dev` replaces the file atomically, so a read never sees half of it.
        let credentials = Credentials::load(path)?;
        if let Some(saved) = credentials.token_for(&addr) {
            return Ok(saved.token.clone());
        }
        if Instant::now() > deadline {
            bail!(
                "baton dev saved no key for {addr} in {} within {timeout:?}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use baton_auth::credentials::ServerCredentials;

    use super::*;

    #[tokio::test]
    async fn the_token_is_read_once_the_file_holds_one_for_the_port() {
        let dir = std::env::temp_dir().join(format!("baton-bench-key-{}", std::process::id()));
        let path = dir.join("credentials.json");
        let mut credentials = Credentials::default();
        credentials.set(
            "127.0.0.1:1",
            ServerCredentials {
                token: "bk_other".into(),
                tenant: TENANT.into(),
            },
        );
        credentials.save(&path).unwrap();
        let writer = {
            let (path, mut credentials) = (path.clone(), credentials.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                credentials.set(
                    "http://127.0.0.1:4321",
                    ServerCredentials {
                        token: "bk_mine".into(),
                        tenant: TENANT.into(),
                    },
                );
                credentials.save(&path).unwrap();
            })
        };
        let token = from_credentials(&path, 4321, Duration::from_secs(10), || Ok(()))
            .await
            .unwrap();
        assert_eq!(token, "bk_mine");
        writer.await.unwrap();
        let error = from_credentials(&path, 9, Duration::from_millis(100), || Ok(()))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("127.0.0.1:9"), "{error}");
        let stopped = from_credentials(&path, 9, Duration::from_secs(10), || {
            bail!("baton dev exited")
        })
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(stopped, "baton dev exited");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
