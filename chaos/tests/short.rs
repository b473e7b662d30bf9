//! The short version of the fault suite, one test per scenario, inside `make test`: each starts
//! its own Redis and PostgreSQL and the real service binaries, injects its fault under load, and
//! fails with the report's violations. The scenarios take turns (a lock here, and
//! `threads-required` in .config/nextest.toml), since their timings assume a machine not shared
//! with other tests.

use std::{path::PathBuf, sync::Mutex};

use baton_chaos::{Profile, Scenario, services::ServiceBinaries};

/// One scenario at a time within this binary (`cargo test` runs tests on parallel threads).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The directory this test binary was built in (`target/<profile>`), where the service binaries
/// are built too.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("deps/");
    deps.parent().expect("the profile directory").to_owned()
}

/// Builds the service binaries (a no-op when they are fresh), so the suite never runs stale ones.
fn service_binaries() -> ServiceBinaries {
    static BUILT: Mutex<Option<ServiceBinaries>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(binaries) = built.as_ref() {
        return binaries.clone();
    }
    let dir = build_dir();
    let target = dir.parent().expect("the target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--bins"])
        .args(["-p", "baton-orchestrator", "-p", "baton-workflow-runner"])
        .arg("--target-dir")
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build the service binaries");
    let binaries = ServiceBinaries::in_dir(&dir).expect("the service binaries");
    *built = Some(binaries.clone());
    binaries
}

fn short(scenario: Scenario) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = service_binaries();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let logs = baton_chaos::default_logs_dir();
    let reports = runtime.block_on(baton_chaos::run_suite(
        &[scenario],
        Profile::short(),
        &binaries,
        &logs,
        false,
    ));
    let text = baton_chaos::report::render(&reports);
    println!("{text}");
    assert!(
        reports.iter().all(|r| r.passed()),
        "{} violated checks:\n{text}",
        scenario.name()
    );
}

#[test]
fn runner_kill() {
    short(Scenario::RunnerKill);
}

#[test]
fn orchestrator_kill() {
    short(Scenario::OrchestratorKill);
}

#[test]
fn redis_restart_empty() {
    short(Scenario::RedisRestartEmpty);
}

#[test]
fn postgres_stop() {
    short(Scenario::PostgresStop);
}

#[test]
fn worker_pause() {
    short(Scenario::WorkerPause);
}

#[test]
fn duplicates() {
    short(Scenario::Duplicates);
}

#[test]
fn poison() {
    short(Scenario::Poison);
}
