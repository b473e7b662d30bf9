//! Worker settings from the environment, each variable documented where it is read: the
//! runtime's knobs ([`WorkerConfig`]) and what a worker service adds ([`WorkerServiceConfig`]).

use std::time::Duration;

use baton_runtime::env::{ConfigError, Env};

/// `BATON_WORKER_ID`: the consumer name in the job streams' groups.
pub const WORKER_ID_VAR: &str = "BATON_WORKER_ID";
/// `BATON_WORKER_CONCURRENCY`: most jobs of one kind running at once.
pub const CONCURRENCY_VAR: &str = "BATON_WORKER_CONCURRENCY";
/// `BATON_VISIBILITY_TIMEOUT`: how long a silent worker's job waits before it is reclaimed.
pub const VISIBILITY_TIMEOUT_VAR: &str = "BATON_VISIBILITY_TIMEOUT";
/// `BATON_MAX_DELIVERIES`: deliveries after which a job goes to the dead letters.
pub const MAX_DELIVERIES_VAR: &str = "BATON_MAX_DELIVERIES";
/// `BATON_WORKER_POLL`: how long one read waits for jobs.
pub const POLL_VAR: &str = "BATON_WORKER_POLL";
/// `BATON_WORKER_SHUTDOWN_GRACE`: how long shutdown waits for running jobs.
pub const SHUTDOWN_GRACE_VAR: &str = "BATON_WORKER_SHUTDOWN_GRACE";
/// `BATON_MAX_STEP_OUTPUT_BYTES`: the largest output a step may report. The runner reads the
/// same variable and fails a larger output too, so a worker configured above it gains nothing.
pub const MAX_STEP_OUTPUT_BYTES_VAR: &str = "BATON_MAX_STEP_OUTPUT_BYTES";

/// 256 jobs of a kind at once: built-ins and HTTP calls mostly wait, so a process holds many.
const DEFAULT_CONCURRENCY: usize = 256;
/// 30 s: heartbeats come at most every 5 s, so only a worker silent for six of them loses a job.
const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// 5 deliveries: a job that crashed its worker this often is more likely the cause than a victim.
const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// 1 s: short enough that shutdown is noticed promptly, long enough to cost Redis nothing idle.
const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// 10 s: under Kubernetes' default 30 s termination grace, with room for the reports to leave.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// 1 MiB: the runner's default limit, so a larger output fails here instead of crossing Redis.
const DEFAULT_MAX_STEP_OUTPUT_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The consumer name in the job streams' groups; unique per process.
    pub worker_id: String,
    /// Most jobs of one kind running at once.
    pub concurrency: usize,
    /// A job unacknowledged this long is taken over by another worker.
    pub visibility_timeout: Duration,
    /// A job delivered more often than this goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// How long one read waits for jobs.
    pub poll_block: Duration,
    /// How long shutdown waits for running jobs before leaving them to be reclaimed.
    pub shutdown_grace: Duration,
    /// The most bytes of JSON a step's output may be: a larger one fails its attempt for good
    /// here, and is never sent.
    pub max_output_bytes: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", std::process::id()),
            concurrency: DEFAULT_CONCURRENCY,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            poll_block: DEFAULT_POLL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_output_bytes: DEFAULT_MAX_STEP_OUTPUT_BYTES,
        }
    }
}

impl WorkerConfig {
    /// Reads the worker's settings. The default worker id is `worker-<HOSTNAME>-<pid>`
    /// (`worker-<pid>` without `HOSTNAME`): in containers every process is pid 1, and two
    /// workers under one consumer name would share their pending jobs.
    ///
    /// | variable | default | |
    /// | --- | --- | --- |
    /// | `BATON_WORKER_ID` | `worker-<HOSTNAME>-<pid>` | consumer name, unique per process |
    /// | `BATON_WORKER_CONCURRENCY` | 256 | most jobs of one kind at once (at least 1) |
    /// | `BATON_VISIBILITY_TIMEOUT` | 30s | a silent worker's job is run elsewhere after this |
    /// | `BATON_MAX_DELIVERIES` | 5 | a job delivered more often is dead-lettered (at least 1) |
    /// | `BATON_WORKER_POLL` | 1s | longest wait of one read (above zero: zero blocks forever) |
    /// | `BATON_WORKER_SHUTDOWN_GRACE` | 10s | shutdown's wait for running jobs |
    /// | `BATON_MAX_STEP_OUTPUT_BYTES` | 1048576 (1 MiB) | a larger output fails its step, unsent (at least 1) |
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let default_id = match env.var("HOSTNAME") {
            Some(host) => format!("worker-{}-{}", host.trim(), std::process::id()),
            None => format!("worker-{}", std::process::id()),
        };
        Self::from_env_with_default_id(env, &default_id)
    }

    /// [`WorkerConfig::from_env`] for a process that names its workers after itself, such as
    /// the runner's built-in workers (`<runner consumer>-worker`).
    pub fn from_env_with_default_id(env: &Env, default_id: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            worker_id: env.string_or(WORKER_ID_VAR, default_id).trim().to_owned(),
            concurrency: at_least_one(env, CONCURRENCY_VAR, DEFAULT_CONCURRENCY)?,
            visibility_timeout: above_zero(
                env,
                VISIBILITY_TIMEOUT_VAR,
                DEFAULT_VISIBILITY_TIMEOUT,
            )?,
            max_deliveries: at_least_one(env, MAX_DELIVERIES_VAR, DEFAULT_MAX_DELIVERIES)?,
            poll_block: above_zero(env, POLL_VAR, DEFAULT_POLL)?,
            shutdown_grace: env.duration_or(SHUTDOWN_GRACE_VAR, DEFAULT_SHUTDOWN_GRACE)?,
            max_output_bytes: at_least_one(
                env,
                MAX_STEP_OUTPUT_BYTES_VAR,
                DEFAULT_MAX_STEP_OUTPUT_BYTES,
            )?,
        })
    }
}

/// A count where 0 would stop the worker (no slot to read into, every job dead-lettered, every
/// output refused).
fn at_least_one<T>(env: &Env, name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialEq + From<u8>,
    T::Err: std::fmt::Display,
{
    let value = env.parse_or(name, default)?;
    if value == T::from(0) {
        return Err(ConfigError {
            name: name.to_owned(),
            value: env.var(name).unwrap_or_default(),
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(value)
}

/// A duration where zero would be wrong: every job reclaimed at once, or a read that never ends.
fn above_zero(env: &Env, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let value = env.duration_or(name, default)?;
    if value.is_zero() {
        return Err(ConfigError {
            name: name.to_owned(),
            value: env.var(name).unwrap_or_default(),
            reason: "must be above zero".to_owned(),
        });
    }
    Ok(value)
}

/// What a worker service reads besides [`WorkerConfig`]: where the queue is, and its health port.
#[derive(Clone)]
pub struct WorkerServiceConfig {
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub redis_url: String,
    /// `BATON_REDIS_PREFIX` (default `baton`): every key lives under it.
    pub redis_prefix: String,
    /// `GRPC_PORT` (default: the service's own, from the ports table): gRPC health for probes.
    pub grpc_port: u16,
    /// `SHUTDOWN_DRAIN_DELAY` (default 0s): after SIGTERM, how long the health port stays open
    /// reporting NOT_SERVING before it closes (set it above the readiness probe's period).
    pub shutdown_drain: Duration,
    /// The runtime's settings; see [`WorkerConfig::from_env`].
    pub worker: WorkerConfig,
}

impl std::fmt::Debug for WorkerServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerServiceConfig")
            .field("redis_url", &baton_runtime::redact_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("grpc_port", &self.grpc_port)
            .field("shutdown_drain", &self.shutdown_drain)
            .field("worker", &self.worker)
            .finish()
    }
}

impl WorkerServiceConfig {
    /// Reads a worker service's settings; `default_grpc_port` is the service's port in the ports
    /// table (http-worker 8004, hitl-worker 8005, agent-runner 8007).
    pub fn from_env(env: &Env, default_grpc_port: u16) -> Result<Self, ConfigError> {
        Ok(Self {
            redis_url: env.string_or("REDIS_URL", "redis://127.0.0.1:6379"),
            redis_prefix: env.string_or("BATON_REDIS_PREFIX", "baton"),
            grpc_port: env.parse_or("GRPC_PORT", default_grpc_port)?,
            shutdown_drain: env.duration_or("SHUTDOWN_DRAIN_DELAY", Duration::ZERO)?,
            worker: WorkerConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_variables() {
        let config = WorkerConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(config.worker_id, format!("worker-{}", std::process::id()));
        assert_eq!(config.concurrency, 256);
        assert_eq!(config.visibility_timeout, Duration::from_secs(30));
        assert_eq!(config.max_deliveries, 5);
        assert_eq!(config.poll_block, Duration::from_secs(1));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.max_output_bytes, 1_048_576);
        // The code default and the environment's defaults agree, but for the id's host.
        let code = WorkerConfig::default();
        assert_eq!(
            (
                code.concurrency,
                code.visibility_timeout,
                code.max_deliveries,
                code.poll_block,
                code.shutdown_grace,
                code.max_output_bytes
            ),
            (
                config.concurrency,
                config.visibility_timeout,
                config.max_deliveries,
                config.poll_block,
                config.shutdown_grace,
                config.max_output_bytes
            )
        );
    }

    #[test]
    fn every_variable_is_read() {
        let env = Env::from_pairs([
            ("BATON_WORKER_ID", " http-7 "),
            ("BATON_WORKER_CONCURRENCY", "12"),
            ("BATON_VISIBILITY_TIMEOUT", "45s"),
            ("BATON_MAX_DELIVERIES", "3"),
            ("BATON_WORKER_POLL", "250ms"),
            ("BATON_WORKER_SHUTDOWN_GRACE", "0s"),
            ("BATON_MAX_STEP_OUTPUT_BYTES", "4096"),
        ]);
        let config = WorkerConfig::from_env(&env).unwrap();
        assert_eq!(config.worker_id, "http-7");
        assert_eq!(config.concurrency, 12);
        assert_eq!(config.visibility_timeout, Duration::from_secs(45));
        assert_eq!(config.max_deliveries, 3);
        assert_eq!(config.poll_block, Duration::from_millis(250));
        assert_eq!(config.shutdown_grace, Duration::ZERO);
        assert_eq!(config.max_output_bytes, 4096);
    }

    #[test]
    fn the_default_id_names_the_host_and_a_process_may_name_its_own() {
        let env = Env::from_pairs([("HOSTNAME", "pod-a")]);
        let pid = std::process::id();
        assert_eq!(
            WorkerConfig::from_env(&env).unwrap().worker_id,
            format!("worker-pod-a-{pid}")
        );
        let named = WorkerConfig::from_env_with_default_id(&env, "runner-1-worker").unwrap();
        assert_eq!(named.worker_id, "runner-1-worker");
        let set = Env::from_pairs([("BATON_WORKER_ID", "mine")]);
        let named = WorkerConfig::from_env_with_default_id(&set, "runner-1-worker").unwrap();
        assert_eq!(named.worker_id, "mine");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("BATON_WORKER_CONCURRENCY", "many"),
            ("BATON_WORKER_CONCURRENCY", "-1"),
            ("BATON_WORKER_CONCURRENCY", "0"),
            ("BATON_VISIBILITY_TIMEOUT", "soon"),
            ("BATON_VISIBILITY_TIMEOUT", "0s"),
            ("BATON_MAX_DELIVERIES", "0"),
            ("BATON_MAX_DELIVERIES", "5.5"),
            ("BATON_WORKER_POLL", "0ms"),
            ("BATON_WORKER_POLL", "1 fortnight"),
            ("BATON_WORKER_SHUTDOWN_GRACE", "10"),
            ("BATON_MAX_STEP_OUTPUT_BYTES", "0"),
            ("BATON_MAX_STEP_OUTPUT_BYTES", "1MiB"),
        ] {
            let err = WorkerConfig::from_env(&Env::from_pairs([(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{value}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn a_service_reads_the_queue_its_port_and_the_workers_settings() {
        let defaults = WorkerServiceConfig::from_env(&Env::from_pairs([]), 8004).unwrap();
        assert_eq!(defaults.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(defaults.redis_prefix, "baton");
        assert_eq!(defaults.grpc_port, 8004);
        assert_eq!(defaults.shutdown_drain, Duration::ZERO);

        let env = Env::from_pairs([
            ("REDIS_URL", "redis://:hunter2@cache:6379"),
            ("BATON_REDIS_PREFIX", "staging"),
            ("GRPC_PORT", "0"),
            ("SHUTDOWN_DRAIN_DELAY", "5s"),
            ("BATON_WORKER_CONCURRENCY", "8"),
        ]);
        let config = WorkerServiceConfig::from_env(&env, 8004).unwrap();
        assert_eq!(config.redis_prefix, "staging");
        assert_eq!(config.grpc_port, 0);
        assert_eq!(config.shutdown_drain, Duration::from_secs(5));
        assert_eq!(config.worker.concurrency, 8);
        assert!(
            !format!("{config:?}").contains("hunter2"),
            "the password is not printed: {config:?}"
        );

        let bad = Env::from_pairs([("GRPC_PORT", "80000")]);
        let err = WorkerServiceConfig::from_env(&bad, 8004).unwrap_err();
        assert_eq!(err.name, "GRPC_PORT");
        let bad = Env::from_pairs([("BATON_MAX_DELIVERIES", "none")]);
        let err = WorkerServiceConfig::from_env(&bad, 8004).unwrap_err();
        assert_eq!(err.name, "BATON_MAX_DELIVERIES");
    }
}
