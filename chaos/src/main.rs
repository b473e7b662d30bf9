//! `baton-chaos`: runs Baton's fault-injection scenarios against the real service binaries and
//! prints what each found; exits non-zero when any check was violated.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use baton_chaos::{Profile, Scenario, services::ServiceBinaries};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Fault injection against Baton's service binaries, audited from the database")]
struct Args {
    /// A scenario (runner-kill, orchestrator-kill, redis-restart-empty, postgres-stop,
    /// worker-pause, duplicates, poison) or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Load StartRuns per scenario (default: 1000, or 150 with --short).
    #[arg(long)]
    runs: Option<usize>,
    /// StartRuns begun per second.
    #[arg(long)]
    rate: Option<f64>,
    /// The short version run inside `make test`: fewer runs and kills, a 5 s PostgreSQL outage.
    #[arg(long)]
    short: bool,
    /// Where baton-orchestrator and baton-workflow-runner are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the services' output goes (default: a fresh directory under the temp dir).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Keep the logs of passing scenarios too.
    #[arg(long)]
    keep_logs: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let scenarios = match args.scenario.as_str() {
        "all" => Scenario::ALL.to_vec(),
        name => vec![Scenario::parse(name).with_context(|| {
            let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            format!(
                "unknown scenario {name:?}; known: {} or all",
                known.join(", ")
            )
        })?],
    };
    let mut profile = if args.short {
        Profile::short()
    } else {
        Profile::full()
    };
    profile.runs = args.runs.unwrap_or(profile.runs);
    profile.rate = args.rate.unwrap_or(profile.rate);
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no directory")?
            .to_owned(),
    };
    let binaries = ServiceBinaries::in_dir(&bin_dir)?;
    let logs = args.logs.unwrap_or_else(baton_chaos::default_logs_dir);
    let reports =
        baton_chaos::run_suite(&scenarios, profile, &binaries, &logs, args.keep_logs).await;
    print!("{}", baton_chaos::report::render(&reports));
    Ok(if reports.iter().all(|r| r.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
