//! Everything the bench creates outside itself (a database, a Redis key prefix, the service
//! processes, a log directory) and its removal. [`Environment`] is a guard: dropping it stops
//! the services and removes the database and keys on every exit path, errors and panics included,
//! unless `--keep` asked to leave them for inspection.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;

use crate::services::Service;

/// How long removing the database and Redis keys may take at the end.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Environment {
    pub admin_url: String,
    pub database: String,
    /// URL of the bench database, for the services and the bench's own queries.
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Where the services' output goes; kept at the end.
    pub log_dir: PathBuf,
    /// Spawned services; stopped (in reverse order) on drop.
    pub services: Vec<Service>,
    keep: bool,
}

impl Environment {
    /// Creates a fresh database `baton_bench_<random>` and picks the Redis prefix
    /// `baton-bench-<random>` and a log directory.
    pub async fn create(admin_url: &str, redis_url: &str, keep: bool) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let id = &id[..12];
        let database = format!("baton_bench_{id}");
        let log_dir = std::env::temp_dir().join(format!("baton-bench-{id}"));
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .context("cannot reach PostgreSQL through DATABASE_URL (the admin URL)")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {database}"))?;
        let _ = conn.close().await;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            database_url: with_database(admin_url, &database),
            database,
            redis_url: redis_url.to_owned(),
            redis_prefix: format!("baton-bench-{id}"),
            log_dir,
            services: Vec::new(),
            keep,
        })
    }

    pub fn service(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.name == name)
    }

    /// The last lines of every service's log, for error reports.
    pub fn log_tails(&self, lines: usize) -> String {
        self.services
            .iter()
            .map(|s| {
                format!(
                    "end of {} ({}):\n{}",
                    s.name,
                    s.log.display(),
                    s.log_tail(lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn keep_notice(&self) {
        let pids: Vec<String> = self.services.iter().map(|s| s.pid().to_string()).collect();
        eprintln!("--keep: left in place for inspection:");
        for s in &self.services {
            eprintln!(
                "  {:<16} pid {}, gRPC on 127.0.0.1:{}, log {}",
                s.name,
                s.pid(),
                s.port,
                s.log.display()
            );
        }
        eprintln!("  database         {}", redact(&self.database_url));
        eprintln!("  redis prefix     {}", self.redis_prefix);
        eprintln!("to remove them:");
        if !pids.is_empty() {
            eprintln!("  kill {}", pids.join(" "));
        }
        eprintln!(
            "  psql '{}' -c 'DROP DATABASE {} WITH (FORCE)'",
            redact(&self.admin_url),
            self.database
        );
        eprintln!(
            "  redis-cli -u '{}' --scan --pattern '{}:*' | xargs -r redis-cli -u '{}' DEL",
            redact(&self.redis_url),
            self.redis_prefix,
            redact(&self.redis_url)
        );
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        if self.keep {
            self.keep_notice();
            return;
        }
        for service in self.services.iter_mut().rev() {
            service.stop();
        }
        // Drop may run inside the async runtime, where blocking on a future is not allowed: do the
        // async clean-up on a thread of its own with its own small runtime.
        let (admin, database) = (self.admin_url.clone(), self.database.clone());
        let (redis_url, prefix) = (self.redis_url.clone(), self.redis_prefix.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let db = tokio::time::timeout(CLEANUP_TIMEOUT, drop_database(&admin, &database))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {CLEANUP_TIMEOUT:?}")))
                    .with_context(|| format!("cannot drop database {database}"));
                let keys = tokio::time::timeout(CLEANUP_TIMEOUT, delete_keys(&redis_url, &prefix))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {CLEANUP_TIMEOUT:?}")))
                    .with_context(|| format!("cannot delete Redis keys {prefix}:*"));
                db.and(keys)
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: clean-up incomplete: {e:#}"),
            Err(_) => eprintln!("warning: clean-up panicked"),
        }
    }
}

/// `redis_version` from `INFO server`.
pub async fn redis_version(redis_url: &str) -> anyhow::Result<String> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    Ok(crate::machine::field(&info, "redis_version")
        .unwrap_or_else(|| "(unknown version)".to_owned()))
}

async fn drop_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(())
}

async fn delete_keys(redis_url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        let () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

/// A URL without its password, for printing.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The admin URL with its database replaced: `postgres://u@h:5432/postgres?x=y` →
/// `postgres://u@h:5432/<database>?x=y`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn database_in_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "b"),
            "postgres://h:5432/b"
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "b"),
            "postgres://h/b?sslmode=disable"
        );
    }
}
