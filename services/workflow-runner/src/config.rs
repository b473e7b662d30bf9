//! Runner configuration from the environment. Every variable, its default and why.

use std::time::Duration;

use baton_runtime::env::{ConfigError, Env};
use baton_worker::WorkerConfig;

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` (default 10): batches hold one connection each.
    pub database_max_connections: u32,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `BATON_REDIS_PREFIX` (default `baton`): every key lives under it.
    pub redis_prefix: String,
    /// `GRPC_PORT` (default 8003): gRPC health for probes.
    pub grpc_port: u16,
    /// `HTTP_PORT` (default 8082): `/health` and the raw-signal JSON `/metrics`.
    pub http_port: u16,
    /// This replica's consumer name: `BATON_CONSUMER_NAME`, default `runner-<host>-<pid>`.
    pub consumer: String,
    /// `maxParallel` for definitions without one: `ORCHESTRATION_MAX_CONCURRENCY` if set, else
    /// `ORCHESTRATION_DEFAULT_MAX_PARALLEL`, else 1 (sequential, the safe choice).
    pub default_max_parallel: u32,
    /// `BATON_RUNNER_BATCH` (default 512): most inbox messages applied in one transaction.
    pub batch_size: usize,
    /// `BATON_RUNNER_PIPELINES` (default 4): inbox batches applied at once by this replica, so
    /// reading and deciding overlap with the previous batch's commit.
    pub pipelines: usize,
    /// `BATON_INBOX_VISIBILITY` (default 15s): inbox messages a runner took and did not finish
    /// are taken over after this long.
    pub inbox_visibility: Duration,
    /// `BATON_TIMER_POLL` (default 1s): the longest the timer loop sleeps. It wakes when the
    /// earliest timer is due, or at once when this replica sets one, so timers fire on time
    /// without polling Redis all the time.
    pub timer_poll: Duration,
    /// `BATON_SWEEP_INTERVAL` (default 5s): how often lost wake-ups are looked for in Postgres.
    pub sweep_interval: Duration,
    /// `BATON_SWEEP_GRACE` (default 10s): how overdue a run must be before the sweeper wakes it.
    pub sweep_grace: Duration,
    /// `BATON_LEASE_TTL` (default 30s): how long a dispatched step's lease lives in the store,
    /// by the database's clock, before the reconciler asks the queue whether its job still
    /// exists. It is renewed while the job waits or runs, so it bounds how long a lost job (Redis
    /// restarted empty, a stream deleted) goes unnoticed, not how long a step may run.
    pub lease_ttl: Duration,
    /// `BATON_RECONCILE_INTERVAL` (default 5s): how often expired leases are looked for.
    pub reconcile_interval: Duration,
    /// `BATON_RETENTION` (default 30d): finished runs (completed, failed, cancelled, timed out)
    /// that ended longer ago are deleted with their steps and events, so the store does not grow
    /// without bound. `0` or `off` keeps every run for good.
    pub retention: Option<Duration>,
    /// `BATON_RETENTION_INTERVAL` (default 60s): how often this replica deletes expired runs and
    /// idle consumers. Every replica does; they never delete the same run twice.
    pub retention_interval: Duration,
    /// `BATON_RETENTION_BATCH` (default 500): most runs deleted in one transaction. Batches
    /// follow each other with a pause at least as long as the batch took, so retention never
    /// takes more than half the database's time from the runs being applied.
    pub retention_batch: i64,
    /// `BATON_CONSUMER_IDLE_REMOVE` (default 1h): consumers idle this long that hold no pending
    /// entry (those of replicas that are gone) leave the inbox's and job streams' groups.
    /// Longer than any pause a live replica makes between reads; `0` or `off` keeps them.
    pub consumer_idle_remove: Option<Duration>,
    /// `BATON_DB_MAINTENANCE_INTERVAL` (default 2s): how often the runner checks whether
    /// Baton's tables need `ANALYZE` or `VACUUM` that the database server is not doing (Postgres
    /// with `autovacuum` off) and does it, by the server's autovacuum thresholds and pace, one
    /// replica at a time. A check is one read of `pg_stat_user_tables`. Tables autovacuum looks
    /// after are left to it. `0` or `off`: never.
    pub db_maintenance_interval: Option<Duration>,
    /// `BATON_MAX_RUNNING_RUNS` (default 10000): most runs running at once across the replicas
    /// sharing the store. A burst beyond it waits as `queued`, durably in the store, and starts
    /// oldest first as running runs end, so the runs already going keep their pace instead of
    /// every run slowing down together. The default only guards against floods (jobs waiting
    /// so long their leases expire); a lower bound shortens each started run's step-to-step wait
    /// at a cost in throughput. A soft bound: replicas count between store readings, so it can
    /// be passed by a batch per replica. `0` or `off`: no bound.
    pub max_running_runs: Option<u64>,
    /// `BATON_BUILTIN_WORKERS` (default true): run the built-in kinds' workers in this process.
    pub builtin_workers: bool,
    /// The built-in workers' settings, read as every worker service reads them
    /// ([`WorkerConfig::from_env`]: `BATON_WORKER_CONCURRENCY`, `BATON_VISIBILITY_TIMEOUT`, ...);
    /// their consumer name defaults to `<consumer>-worker`.
    pub worker: WorkerConfig,
    /// `BATON_MAX_DELIVERIES` (default 5): an inbox message delivered more often goes to dead
    /// letters (the built-in workers apply the same limit to jobs).
    pub max_deliveries: u32,
    /// `SHUTDOWN_DRAIN_DELAY` (default 0s): after SIGTERM, how long the health port stays open
    /// reporting NOT_SERVING before it closes (set it above the readiness probe's period).
    pub shutdown_drain: Duration,
    /// Step input and output sizes and template limits ([`baton_engine::Limits::from_env`]:
    /// `BATON_MAX_STEP_INPUT_BYTES`, `BATON_MAX_STEP_OUTPUT_BYTES`, each 1 MiB,
    /// `BATON_MAX_TEMPLATE_OUTPUT_BYTES` 1 MiB, `BATON_TEMPLATE_FUEL` 100000).
    pub limits: baton_engine::Limits,
}

impl RunnerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let host = env.string_or("HOSTNAME", "local");
        let default_max_parallel = match env.parse::<u32>("ORCHESTRATION_MAX_CONCURRENCY")? {
            Some(n) => n,
            None => env.parse_or("ORCHESTRATION_DEFAULT_MAX_PARALLEL", 1)?,
        }
        .max(1);
        let consumer = env.string_or(
            "BATON_CONSUMER_NAME",
            &format!("runner-{host}-{}", std::process::id()),
        );
        Ok(Self {
            database_url: env.string_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baton"),
            database_max_connections: env.parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            redis_url: env.string_or("REDIS_URL", "redis://127.0.0.1:6379"),
            redis_prefix: env.string_or("BATON_REDIS_PREFIX", "baton"),
            grpc_port: env.parse_or("GRPC_PORT", 8003)?,
            http_port: env.parse_or("HTTP_PORT", 8082)?,
            consumer: consumer.clone(),
            default_max_parallel,
            batch_size: env.parse_or("BATON_RUNNER_BATCH", 512)?,
            pipelines: env.parse_or("BATON_RUNNER_PIPELINES", 4)?,
            inbox_visibility: env.duration_or("BATON_INBOX_VISIBILITY", Duration::from_secs(15))?,
            timer_poll: env.duration_or("BATON_TIMER_POLL", Duration::from_secs(1))?,
            sweep_interval: env.duration_or("BATON_SWEEP_INTERVAL", Duration::from_secs(5))?,
            sweep_grace: env.duration_or("BATON_SWEEP_GRACE", Duration::from_secs(10))?,
            lease_ttl: above_zero(env, "BATON_LEASE_TTL", Duration::from_secs(30))?,
            reconcile_interval: above_zero(
                env,
                "BATON_RECONCILE_INTERVAL",
                Duration::from_secs(5),
            )?,
            retention: duration_or_off(env, "BATON_RETENTION", Duration::from_secs(30 * 86_400))?,
            retention_interval: env
                .duration_or("BATON_RETENTION_INTERVAL", Duration::from_secs(60))?
                .max(Duration::from_millis(10)),
            retention_batch: env.parse_or("BATON_RETENTION_BATCH", 500_i64)?.max(1),
            consumer_idle_remove: duration_or_off(
                env,
                "BATON_CONSUMER_IDLE_REMOVE",
                Duration::from_secs(3_600),
            )?,
            db_maintenance_interval: duration_or_off(
                env,
                "BATON_DB_MAINTENANCE_INTERVAL",
                Duration::from_secs(2),
            )?,
            max_running_runs: count_or_off(env, "BATON_MAX_RUNNING_RUNS", 10_000)?,
            builtin_workers: env.bool_or("BATON_BUILTIN_WORKERS", true)?,
            worker: WorkerConfig::from_env_with_default_id(env, &format!("{consumer}-worker"))?,
            max_deliveries: env.parse_or("BATON_MAX_DELIVERIES", 5)?,
            shutdown_drain: env.duration_or("SHUTDOWN_DRAIN_DELAY", Duration::ZERO)?,
            limits: baton_engine::Limits::from_env(env)?,
        })
    }
}

/// A duration that must be more than zero: leases and the reconciler cannot be turned off, or a
/// job Redis lost would never be found.
fn above_zero(env: &Env, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let value = env.duration_or(name, default)?;
    if value.is_zero() {
        return Err(ConfigError {
            name: name.to_owned(),
            value: env.var(name).unwrap_or_default(),
            reason: "must be more than zero".to_owned(),
        });
    }
    Ok(value)
}

/// A count, `default` when unset, or `None` for `0` or `off`.
fn count_or_off(env: &Env, name: &str, default: u64) -> Result<Option<u64>, ConfigError> {
    if env
        .var(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("off"))
    {
        return Ok(None);
    }
    Ok(Some(env.parse_or(name, default)?).filter(|n| *n > 0))
}

/// A duration like `30d` or `90s`, `default` when unset, or `None` for `0` or `off`.
fn duration_or_off(
    env: &Env,
    name: &str,
    default: Duration,
) -> Result<Option<Duration>, ConfigError> {
    if env
        .var(name)
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "off"))
    {
        return Ok(None);
    }
    Ok(Some(env.duration_or(name, default)?).filter(|d| !d.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_defaults_and_off() {
        let defaults = RunnerConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(defaults.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(defaults.retention_interval, Duration::from_secs(60));
        assert_eq!(defaults.retention_batch, 500);
        assert_eq!(
            defaults.consumer_idle_remove,
            Some(Duration::from_secs(3_600))
        );
        let set = Env::from_pairs([
            ("BATON_RETENTION", "7d"),
            ("BATON_RETENTION_BATCH", "50"),
            ("BATON_CONSUMER_IDLE_REMOVE", "off"),
        ]);
        let set = RunnerConfig::from_env(&set).unwrap();
        assert_eq!(set.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(set.retention_batch, 50);
        assert_eq!(set.consumer_idle_remove, None);
        for off in ["0", "off", "OFF", "0s"] {
            let env = Env::from_pairs([("BATON_RETENTION", off)]);
            assert_eq!(
                RunnerConfig::from_env(&env).unwrap().retention,
                None,
                "{off}"
            );
        }
        let bad = Env::from_pairs([("BATON_RETENTION", "a month")]);
        assert!(
            RunnerConfig::from_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("BATON_RETENTION")
        );
    }

    #[test]
    fn db_maintenance_every_two_seconds_unless_off() {
        let defaults = RunnerConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(
            defaults.db_maintenance_interval,
            Some(Duration::from_secs(2))
        );
        let set = Env::from_pairs([("BATON_DB_MAINTENANCE_INTERVAL", "30s")]);
        assert_eq!(
            RunnerConfig::from_env(&set)
                .unwrap()
                .db_maintenance_interval,
            Some(Duration::from_secs(30))
        );
        let off = Env::from_pairs([("BATON_DB_MAINTENANCE_INTERVAL", "off")]);
        assert_eq!(
            RunnerConfig::from_env(&off)
                .unwrap()
                .db_maintenance_interval,
            None
        );
    }

    #[test]
    fn running_runs_bounded_at_ten_thousand_unless_off() {
        let read = |pairs: &[(&'static str, &'static str)]| {
            RunnerConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
        };
        assert_eq!(read(&[]).unwrap().max_running_runs, Some(10_000));
        let set = read(&[("BATON_MAX_RUNNING_RUNS", "64")]).unwrap();
        assert_eq!(set.max_running_runs, Some(64));
        for off in ["0", "off", "OFF"] {
            let off_pairs = [("BATON_MAX_RUNNING_RUNS", off)];
            assert_eq!(read(&off_pairs).unwrap().max_running_runs, None, "{off}");
        }
        let bad = read(&[("BATON_MAX_RUNNING_RUNS", "many")]).unwrap_err();
        assert!(bad.to_string().contains("BATON_MAX_RUNNING_RUNS"), "{bad}");
    }

    #[test]
    fn max_parallel_precedence() {
        let both = Env::from_pairs([
            ("ORCHESTRATION_MAX_CONCURRENCY", "7"),
            ("ORCHESTRATION_DEFAULT_MAX_PARALLEL", "3"),
        ]);
        assert_eq!(
            RunnerConfig::from_env(&both).unwrap().default_max_parallel,
            7
        );
        let default_only = Env::from_pairs([("ORCHESTRATION_DEFAULT_MAX_PARALLEL", "3")]);
        assert_eq!(
            RunnerConfig::from_env(&default_only)
                .unwrap()
                .default_max_parallel,
            3
        );
        assert_eq!(
            RunnerConfig::from_env(&Env::from_pairs([]))
                .unwrap()
                .default_max_parallel,
            1
        );
        let no_lease = Env::from_pairs([("BATON_LEASE_TTL", "0s")]);
        let error = RunnerConfig::from_env(&no_lease).unwrap_err().to_string();
        assert!(
            error.contains("BATON_LEASE_TTL") && error.contains("more than zero"),
            "{error}"
        );
        let bad = Env::from_pairs([("ORCHESTRATION_MAX_CONCURRENCY", "many")]);
        assert!(
            RunnerConfig::from_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("ORCHESTRATION_MAX_CONCURRENCY")
        );
    }
}
