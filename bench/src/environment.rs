//! Everything the bench creates outside itself (a database and a Redis key prefix for the
//! production backend, a SQLite file for the embedded one, the service processes, a log
//! directory) and its removal. [`Environment`] is a guard: dropping it stops the services and
//! removes the data on every exit path, errors and panics included, unless `--keep` asked to leave
//! them for inspection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;

use crate::services::{self, Service};

/// How long removing the database and Redis keys may take at the end.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The production backend's scratch space: a database and a Redis key prefix of the bench's own.
pub struct ProductionScratch {
    pub admin_url: String,
    pub database: String,
    /// URL of the bench database, for the services and the bench's own queries.
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
}

pub struct Environment {
    /// The random part of every name the bench creates.
    id: String,
    /// Where the services' output goes; kept at the end.
    pub log_dir: PathBuf,
    /// Spawned services; stopped (in reverse order) on drop.
    pub services: Vec<Service>,
    production: Option<ProductionScratch>,
    /// The directory of the embedded backend's SQLite file (and its WAL), removed at the end.
    embedded_dir: Option<PathBuf>,
    keep: bool,
}

impl Environment {
    /// Picks the names (`baton_bench_<random>`, `baton-bench-<random>`) and creates the log
    /// directory; the backends' data is created when a backend asks for it.
    pub fn create(keep: bool) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let log_dir = std::env::temp_dir().join(format!("baton-bench-{id}"));
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        Ok(Self {
            id,
            log_dir,
            services: Vec::new(),
            production: None,
            embedded_dir: None,
            keep,
        })
    }

    /// Creates the fresh database `baton_bench_<random>` through the admin URL and picks the
    /// Redis prefix `baton-bench-<random>`.
    pub async fn production(
        &mut self,
        admin_url: &str,
        redis_url: &str,
    ) -> anyhow::Result<&ProductionScratch> {
        let database = format!("baton_bench_{}", self.id);
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .context("cannot reach PostgreSQL through DATABASE_URL (the admin URL)")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {database}"))?;
        let _ = conn.close().await;
        Ok(self.production.insert(ProductionScratch {
            admin_url: admin_url.to_owned(),
            database_url: with_database(admin_url, &database),
            database,
            redis_url: redis_url.to_owned(),
            redis_prefix: format!("baton-bench-{}", self.id),
        }))
    }

    /// The path of a fresh SQLite file for the embedded backend (not created: `baton dev`
    /// creates it), in a directory of its own that goes at the end.
    pub fn embedded_db(&mut self) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("baton-bench-{}-embedded", self.id));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("baton.db");
        self.embedded_dir = Some(dir);
        Ok(path)
    }

    /// Stops every running service (newest first), so the next backend has the machine alone.
    pub fn stop_services(&mut self) {
        for mut service in self.services.drain(..).rev() {
            service.stop();
        }
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
            let grpc = match s.port(services::GRPC_PORT) {
                Some(port) => format!("gRPC on 127.0.0.1:{port}"),
                None => "gRPC port not logged".to_owned(),
            };
            eprintln!(
                "  {:<16} pid {}, {grpc}, log {}",
                s.name,
                s.pid(),
                s.log.display()
            );
        }
        if let Some(p) = &self.production {
            eprintln!("  database         {}", redact(&p.database_url));
            eprintln!("  redis prefix     {}", p.redis_prefix);
        }
        if let Some(dir) = &self.embedded_dir {
            eprintln!("  embedded file    {}", dir.join("baton.db").display());
        }
        eprintln!("to remove them:");
        if !pids.is_empty() {
            eprintln!("  kill {}", pids.join(" "));
        }
        if let Some(p) = &self.production {
            eprintln!(
                "  psql '{}' -c 'DROP DATABASE {} WITH (FORCE)'",
                redact(&p.admin_url),
                p.database
            );
            eprintln!(
                "  redis-cli -u '{}' --scan --pattern '{}:*' | xargs -r redis-cli -u '{}' DEL",
                redact(&p.redis_url),
                p.redis_prefix,
                redact(&p.redis_url)
            );
        }
        if let Some(dir) = &self.embedded_dir {
            eprintln!("  rm -r '{}'", dir.display());
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        if self.keep {
            self.keep_notice();
            return;
        }
        self.stop_services();
        if let Some(dir) = &self.embedded_dir {
            remove_embedded(dir);
        }
        let Some(p) = &self.production else { return };
        // Drop may run inside the async runtime, where blocking on a future is not allowed: do the
        // async clean-up on a thread of its own with its own small runtime.
        let (admin, database) = (p.admin_url.clone(), p.database.clone());
        let (redis_url, prefix) = (p.redis_url.clone(), p.redis_prefix.clone());
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

fn remove_embedded(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("warning: cannot remove {}: {e}", dir.display());
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
    fn the_embedded_file_goes_with_the_guard_and_the_logs_stay() {
        let mut env = Environment::create(false).unwrap();
        let log_dir = env.log_dir.clone();
        let db = env.embedded_db().unwrap();
        let dir = db.parent().unwrap().to_path_buf();
        assert_ne!(dir, log_dir);
        std::fs::write(&db, b"data").unwrap();
        std::fs::write(dir.join("baton.db-wal"), b"wal").unwrap();
        drop(env);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(log_dir.is_dir());
        std::fs::remove_dir_all(log_dir).unwrap();
    }

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
