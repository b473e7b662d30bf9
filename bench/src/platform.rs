//! Starting the platform under test on a backend: the processes, the API client, the bench's
//! reader of the backend's database, and what the report says about them. Everything after
//! start-up (the scenarios, the figures) is the same for every backend.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::api::Api;
use crate::args::Args;
use crate::backend::Backend;
use crate::db::Db;
use crate::environment::{self, Environment};
use crate::key;
use crate::report::{ServiceInfo, Version};
use crate::services::{self, Launch, Service};

/// How long a service may take to become ready (and, before that, to say on which ports).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

const ORCHESTRATOR: &str = "orchestrator";
const RUNNER: &str = "workflow-runner";
const HTTP_WORKER: &str = "http-worker";
/// The embedded platform's one process (and its log file's name).
const DEV: &str = "baton-dev";

/// Variables of the bench's own environment that `baton dev` must not see: it uses neither
/// PostgreSQL nor Redis, and the bench makes sure of it.
const PRODUCTION_ONLY: &[&str] = &["DATABASE_URL", "REDIS_URL", "BATON_REDIS_PREFIX"];

/// The orchestrator's per-tenant StartRun rate limit, off on both backends: the bench is one
/// tenant starting runs as fast as the engine takes them, and it measures the engine, not the
/// limit. WatchRun streams keep their default cap: the bench watches one run at a time.
const NO_START_LIMIT: (&str, &str) = ("BATON_START_RATE", "off");

/// The http scenario's steps call a server on loopback, which the http-worker's SSRF guard
/// refuses unless it is allowed; on both backends, and only when that scenario runs.
const ALLOW_LOOPBACK: (&str, &str) = ("HTTP_WORKER_ALLOW", "127.0.0.1");
/// What makes the separate orchestrator accept `http` steps (`baton dev` always does).
const HTTP_KIND: (&str, &str) = ("BATON_EXTRA_KINDS", "http");
/// The http-worker uses Redis only; the bench's own `DATABASE_URL` (the admin URL) is not for it.
const HTTP_WORKER_UNSET: &[&str] = &["DATABASE_URL"];

/// A started platform, ready for the scenarios.
pub struct Platform {
    pub backend: Backend,
    pub api: Api,
    pub db: Db,
    /// The processes whose memory is measured, in the order of `services`.
    pub pids: Vec<u32>,
    pub services: Vec<ServiceInfo>,
    /// What holds the data, with versions (PostgreSQL and Redis, or SQLite).
    pub versions: Vec<Version>,
    /// The scratch data of this bench run, e.g. `file /tmp/.../baton.db`.
    pub scratch: String,
}

/// Starts the platform on `backend`; its processes go into `env.services`, where the guard
/// stops them on every exit path.
pub async fn start(
    backend: Backend,
    args: &Args,
    env: &mut Environment,
    bin_dir: &Path,
) -> anyhow::Result<Platform> {
    match backend {
        Backend::Production => production(args, env, bin_dir).await,
        Backend::Embedded => embedded(args, env, bin_dir).await,
    }
}

/// `baton-orchestrator` and `baton-workflow-runner` on a fresh database and Redis prefix, and
/// `baton-http-worker` beside them for the http scenario.
async fn production(
    args: &Args,
    env: &mut Environment,
    bin_dir: &Path,
) -> anyhow::Result<Platform> {
    let orchestrator_bin = services::binary(bin_dir, "baton-orchestrator")?;
    let runner_bin = services::binary(bin_dir, "baton-workflow-runner")?;
    let http_worker_bin = args
        .scenario
        .http()
        .then(|| services::binary(bin_dir, "baton-http-worker"))
        .transpose()?;
    let scratch = env.production(&args.database_url, &args.redis_url).await?;
    let (database, database_url) = (scratch.database.clone(), scratch.database_url.clone());
    let (redis_url, redis_prefix) = (scratch.redis_url.clone(), scratch.redis_prefix.clone());
    eprintln!(
        "baton-bench (production): database {database}, Redis prefix {redis_prefix}, service \
         logs in {}",
        env.log_dir.display()
    );
    // Every port 0: the system picks free ones, so a bench never collides with a running
    // `make dev` or another bench, and the log says which.
    let service_env = || -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", redis_url.clone()),
            ("BATON_REDIS_PREFIX", redis_prefix.clone()),
            ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
            (services::GRPC_PORT, "0".to_owned()),
            ("HTTP_PORT", "0".to_owned()),
            ("METRICS_PORT", "0".to_owned()),
        ];
        vars.extend(services::log_env(&args.service_log_level));
        vars
    };

    // The key first (it migrates the fresh database), so the orchestrator finds one; then the
    // orchestrator, before the runner.
    let token = key::issue_postgres(&database_url).await?;
    eprintln!("starting {}", orchestrator_bin.display());
    let mut orchestrator_env = service_env();
    orchestrator_env.push((NO_START_LIMIT.0, NO_START_LIMIT.1.to_owned()));
    if http_worker_bin.is_some() {
        orchestrator_env.push((HTTP_KIND.0, HTTP_KIND.1.to_owned()));
    }
    let orchestrator = Service::spawn(
        &Launch {
            name: ORCHESTRATOR,
            binary: &orchestrator_bin,
            args: Vec::new(),
            env: orchestrator_env,
            unset: &[],
        },
        &env.log_dir,
    )?;
    let port = listen(env, orchestrator).await?;
    eprintln!("  gRPC on 127.0.0.1:{port}");
    let api = Api::new(port, &token)?;
    let info = api
        .wait_ready(READY_TIMEOUT, || alive(&mut env.services))
        .await
        .context("the orchestrator did not become ready")?;
    eprintln!("starting {}", runner_bin.display());
    let runner = Service::spawn(
        &Launch {
            name: RUNNER,
            binary: &runner_bin,
            args: Vec::new(),
            env: service_env(),
            unset: &[],
        },
        &env.log_dir,
    )?;
    // It binds its health port once it is connected to PostgreSQL and Redis.
    let port = listen(env, runner).await?;
    eprintln!("  health on 127.0.0.1:{port}");
    if let Some(binary) = &http_worker_bin {
        eprintln!("starting {}", binary.display());
        // Redis and its own ports only: it reads no database and serves no HTTP port.
        let mut http_worker_env = vec![
            ("REDIS_URL", redis_url.clone()),
            ("BATON_REDIS_PREFIX", redis_prefix.clone()),
            (services::GRPC_PORT, "0".to_owned()),
            ("METRICS_PORT", "0".to_owned()),
            (ALLOW_LOOPBACK.0, ALLOW_LOOPBACK.1.to_owned()),
        ];
        http_worker_env.extend(services::log_env(&args.service_log_level));
        let http_worker = Service::spawn(
            &Launch {
                name: HTTP_WORKER,
                binary,
                args: Vec::new(),
                env: http_worker_env,
                unset: HTTP_WORKER_UNSET,
            },
            &env.log_dir,
        )?;
        // Like the runner, it binds its health port once it is connected to Redis.
        let port = listen(env, http_worker).await?;
        eprintln!("  health on 127.0.0.1:{port}");
    }
    let pids: Vec<u32> = env.services.iter().map(Service::pid).collect();

    let db = Db::postgres(&database_url).await?;
    let versions = vec![
        Version::new("postgres_version", "PostgreSQL", db.server_version().await),
        Version::new(
            "redis_version",
            "Redis",
            environment::redis_version(&redis_url).await,
        ),
    ];
    // In the order they were started, as `pids` is.
    let services = env
        .services
        .iter()
        .map(|service| ServiceInfo {
            name: format!("baton-{}", service.name),
            pid: service.pid(),
            build: (service.name == ORCHESTRATOR)
                .then(|| format!("{} ({})", info.version, info.git_revision)),
        })
        .collect();
    Ok(Platform {
        backend: Backend::Production,
        api,
        db,
        services,
        pids,
        versions,
        scratch: format!("database {database}, Redis prefix {redis_prefix}"),
    })
}

/// `baton dev` on a fresh SQLite file: the orchestrator, the runner, the built-in workers and the
/// http-worker's pool in one process.
async fn embedded(args: &Args, env: &mut Environment, bin_dir: &Path) -> anyhow::Result<Platform> {
    let binary = services::binary(bin_dir, "baton")?;
    let path = env.embedded_db()?;
    // Beside the database, so `baton dev` saves its local admin key there and never in the
    // user's own credentials file.
    let credentials = path.with_file_name("credentials.json");
    eprintln!(
        "baton-bench (embedded): file {}, logs in {}",
        path.display(),
        env.log_dir.display()
    );
    eprintln!("starting {} dev", binary.display());
    let mut dev_env = vec![
        (NO_START_LIMIT.0, NO_START_LIMIT.1.to_owned()),
        ("BATON_CREDENTIALS", credentials.display().to_string()),
    ];
    if args.scenario.http() {
        dev_env.push((ALLOW_LOOPBACK.0, ALLOW_LOOPBACK.1.to_owned()));
    }
    dev_env.extend(services::log_env(&args.service_log_level));
    let dev = Service::spawn(
        &Launch {
            name: DEV,
            binary: &binary,
            args: dev_args(&path),
            env: dev_env,
            unset: PRODUCTION_ONLY,
        },
        &env.log_dir,
    )?;
    let port = listen(env, dev).await?;
    eprintln!("  gRPC on 127.0.0.1:{port}");
    let token = key::from_credentials(&credentials, port, READY_TIMEOUT, || {
        alive(&mut env.services)
    })
    .await
    .context("baton dev did not save its local admin key")?;
    let api = Api::new(port, &token)?;
    // The file is created and migrated before the API listens, so it is there once this answers.
    let info = api
        .wait_ready(READY_TIMEOUT, || alive(&mut env.services))
        .await
        .context("baton dev did not become ready")?;
    let pids: Vec<u32> = env.services.iter().map(Service::pid).collect();
    let db = Db::sqlite(&path).await?;
    // The SQLite the bench links is the same build as baton's (one lockfile, bundled).
    let versions = vec![Version::new(
        "sqlite_version",
        "SQLite",
        db.server_version().await,
    )];
    Ok(Platform {
        backend: Backend::Embedded,
        api,
        db,
        services: vec![ServiceInfo {
            name: "baton dev".to_owned(),
            pid: pids[0],
            build: Some(format!("{} ({})", info.version, info.git_revision)),
        }],
        pids,
        versions,
        scratch: format!("file {}", path.display()),
    })
}

/// `baton dev --db <path> --port 0 --free-side-ports`: every port on a free one, which its log
/// tells.
pub fn dev_args(db: &Path) -> Vec<OsString> {
    vec![
        "dev".into(),
        "--db".into(),
        db.into(),
        "--port".into(),
        "0".into(),
        "--free-side-ports".into(),
    ]
}

/// Puts `service` under the guard of `env` and returns the gRPC port its log says it bound.
async fn listen(env: &mut Environment, service: Service) -> anyhow::Result<u16> {
    env.services.push(service);
    let service = env
        .services
        .last_mut()
        .context("a service was just pushed")?;
    service
        .wait_listening(&[services::GRPC_PORT], READY_TIMEOUT)
        .await?;
    service.grpc_port()
}

/// Fails if a service process has exited.
pub fn alive(services: &mut [Service]) -> anyhow::Result<()> {
    services.iter_mut().try_for_each(Service::ensure_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_command_line() {
        let args = dev_args(Path::new("/tmp/x/baton.db"));
        assert_eq!(
            args,
            [
                "dev",
                "--db",
                "/tmp/x/baton.db",
                "--port",
                "0",
                "--free-side-ports"
            ]
        );
    }
}
