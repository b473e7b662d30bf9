//! Command-line flags. They exist so that a quick run (`--chain-runs 100 --scenario chain`), an
//! inspection run (`--keep --service-log-level info`) and a run on one backend
//! (`--backend embedded`) need no code change.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::backend::Backend;

/// Benchmarks a real Baton deployment: spawns the release `baton-orchestrator` and
/// `baton-workflow-runner` binaries (and `baton-http-worker` for the http scenario) against a
/// fresh database and Redis prefix (production), and `baton dev` on a fresh SQLite file
/// (embedded), drives each over gRPC and reports throughput, latency, dispatch delays and
/// resident memory, backend beside backend.
#[derive(Parser, Debug, Clone)]
#[command(name = "baton-bench", version)]
pub struct Args {
    /// Which backends to measure; `both` runs production first, then embedded, one at a time.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    pub backend: Backends,
    /// Runs of the 10-step noop chain in the throughput scenario.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub chain_runs: u32,
    /// Runs of the 102-step fan-out/fan-in in the throughput scenario.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub fanout_runs: u32,
    /// Measured runs of the lone-chain latency scenario, started one at a time.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub lone_runs: u32,
    /// Runs of `start` → 20 parallel `http` GETs → `end` in the http scenario, against a loopback
    /// server in the bench.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_runs: u32,
    /// Unmeasured runs before the lone-chain latency scenario.
    #[arg(long, default_value_t = 20)]
    pub warmup_runs: u32,
    /// After the scenarios, insert this many finished 10-step chain runs straight into the
    /// production database and run the chain, fan-out and lone scenarios again, reported beside
    /// the fresh figures; 0 = off. The bench runs no VACUUM or ANALYZE: it waits for the
    /// services' own table upkeep to see the new rows first. The embedded backend is not filled.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub history_runs: u32,
    /// How long to wait after the history fill for the services' table upkeep (or autovacuum)
    /// to analyze the hot tables before measuring anyway.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub history_upkeep_timeout_secs: u64,
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// StartRun calls in flight at once in the throughput scenarios.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Leave the last backend's services running and every backend's data (database, Redis keys,
    /// SQLite file) in place for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// `LOG_LEVEL` of the spawned services (their output goes to files in the log directory).
    #[arg(long, default_value = "warn", value_name = "LEVEL")]
    pub service_log_level: String,
    /// Longest a scenario may take before the bench gives up, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout_secs: u64,
    /// Admin URL of PostgreSQL; the bench creates and drops its own database through it
    /// (production backend only).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Redis URL; the bench uses a fresh key prefix and deletes its keys at the end (production
    /// backend only).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Directory holding the service binaries; default: the directory of this executable.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// The backends `--backend` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backends {
    /// PostgreSQL and Redis, with the separate services; checked against the targets.
    Production,
    /// `baton dev` on one SQLite file; for reference, no targets.
    Embedded,
    /// Production, then embedded, reported side by side.
    Both,
}

impl Backends {
    /// The backends to measure, in the order they run.
    pub fn backends(self) -> Vec<Backend> {
        match self {
            Self::Production => vec![Backend::Production],
            Self::Embedded => vec![Backend::Embedded],
            Self::Both => vec![Backend::Production, Backend::Embedded],
        }
    }
}

/// The scenarios `--scenario` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Chain throughput, fan-out throughput, lone-chain latency, then http steps.
    All,
    /// Chain throughput (with its dispatch latency and memory figures).
    Chain,
    /// Fan-out throughput.
    Fanout,
    /// Lone-chain latency (with its dispatch latency figures).
    Lone,
    /// `http` steps through the http-worker against a loopback server in the bench.
    Http,
}

impl Scenario {
    pub fn chain(self) -> bool {
        matches!(self, Self::All | Self::Chain)
    }
    pub fn fanout(self) -> bool {
        matches!(self, Self::All | Self::Fanout)
    }
    pub fn lone(self) -> bool {
        matches!(self, Self::All | Self::Lone)
    }
    pub fn http(self) -> bool {
        matches!(self, Self::All | Self::Http)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(["baton-bench"]).unwrap();
        assert_eq!(
            (args.chain_runs, args.fanout_runs, args.lone_runs),
            (1000, 20, 200)
        );
        assert_eq!(args.http_runs, 50);
        assert_eq!(args.concurrency, 64);
        assert_eq!(args.history_runs, 0);
        let args = Args::try_parse_from(["baton-bench", "--history-runs", "100000"]).unwrap();
        assert_eq!(args.history_runs, 100_000);
        assert_eq!(args.scenario, Scenario::All);
        assert_eq!(args.backend, Backends::Both);
        assert_eq!(
            args.backend.backends(),
            [Backend::Production, Backend::Embedded]
        );
        assert!(Args::try_parse_from(["baton-bench", "--concurrency", "0"]).is_err());
        assert!(Args::try_parse_from(["baton-bench", "--http-runs", "0"]).is_err());
    }

    #[test]
    fn http_scenario_alone_and_in_all() {
        let scenario = |value: &str| {
            Args::try_parse_from(["baton-bench", "--scenario", value])
                .unwrap()
                .scenario
        };
        let http = scenario("http");
        assert!(http.http() && !http.chain() && !http.fanout() && !http.lone());
        assert!(scenario("all").http());
        assert!(!scenario("lone").http());
    }

    #[test]
    fn backend_flag() {
        let parse = |value: &str| {
            Args::try_parse_from(["baton-bench", "--backend", value]).map(|a| a.backend.backends())
        };
        assert_eq!(parse("embedded").unwrap(), [Backend::Embedded]);
        assert_eq!(parse("production").unwrap(), [Backend::Production]);
        assert_eq!(
            parse("both").unwrap(),
            [Backend::Production, Backend::Embedded]
        );
        let err = parse("sqlite").unwrap_err().to_string();
        assert!(err.contains("production, embedded, both"), "{err}");
    }
}
