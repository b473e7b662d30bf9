//! `baton-bench`: measures a real Baton deployment on each backend. For production it spawns the
//! release `baton-orchestrator` and `baton-workflow-runner` binaries (and `baton-http-worker`
//! for the http scenario) against a fresh database and Redis prefix; for embedded, the release
//! `baton dev` on a fresh SQLite file. It drives each through the public gRPC API and prints
//! throughput, latency, dispatch delays and memory, the production figures next to Baton's
//! targets and the embedded ones beside them for reference. Run it with `make bench`.

mod api;
mod args;
mod backend;
mod db;
mod environment;
mod history;
mod http_steps;
mod key;
mod latency;
mod loopback;
mod machine;
mod memory;
mod platform;
mod report;
mod scenarios;
mod services;
mod stats;
mod throughput;
mod workflows;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Parser;

use crate::args::Args;
use crate::environment::Environment;
use crate::machine::Machine;
use crate::report::Results;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no parent directory")?
            .to_path_buf(),
    };
    // Every binary up front, so a missing one fails before any backend has run.
    for backend in args.backend.backends() {
        for name in backend.binaries(args.scenario.http()) {
            services::binary(&bin_dir, name)?;
        }
    }
    let mut env = Environment::create(args.keep)?;
    let mut results = Results {
        machine: Machine::detect(),
        bin_dir,
        log_dir: env.log_dir.clone(),
        memory_sample_ms: scenarios::MEMORY_SAMPLE.as_millis() as u64,
        backends: Vec::new(),
    };
    let outcome = tokio::select! {
        r = run(&args, &mut env, &mut results) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Err(e) = outcome {
        if !env.services.is_empty() {
            eprintln!("{}", env.log_tails(30));
        }
        eprintln!("service logs are in {}", env.log_dir.display());
        if !results.backends.is_empty() {
            eprintln!("figures of the backends that finished:");
            print!("{}", results.text());
        }
        drop(env);
        return Err(e);
    }
    print!("{}", results.text());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results.json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("figures written to {}", path.display());
    }
    drop(env);
    Ok(())
}

/// Each chosen backend in turn, alone on the machine: start it, run the scenarios, stop it.
async fn run(args: &Args, env: &mut Environment, results: &mut Results) -> anyhow::Result<()> {
    let backends = args.backend.backends();
    for (i, backend) in backends.iter().copied().enumerate() {
        let bin_dir: PathBuf = results.bin_dir.clone();
        let platform = platform::start(backend, args, env, &bin_dir)
            .await
            .with_context(|| format!("{backend} backend"))?;
        let figures = scenarios::run(args, &platform, env)
            .await
            .with_context(|| format!("{backend} backend"))?;
        platform.db.close().await;
        results.backends.push(figures);
        // The last backend's services stay up for `--keep`; the guard stops them otherwise.
        if i + 1 < backends.len() {
            env.stop_services();
        }
    }
    Ok(())
}
