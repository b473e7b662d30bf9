//! The short version of the fault suite, one test per scenario, inside `make test`: each starts
//! its own Redis and PostgreSQL and the real service binaries, injects its fault under load, and
//! fails with the report's violations. The scenarios take turns (a lock here, and
//! `threads-required` in .config/nextest.toml), since their timings assume a machine not shared
//! with other tests.

use std::{path::PathBuf, sync::Mutex};

use baton_chaos::{Profile, Scenario, services::ServiceBinaries};

/// One scenario at a time within this binary (`cargo test` runs tests on parallel threads).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The service binaries, from the directory this test binary was built in (`target/<profile>`).
/// A workspace test run (`make test`) builds them with the services' own tests; a run of this
/// package alone needs them built first: `cargo build --workspace --bins`.
fn service_binaries() -> ServiceBinaries {
    let exe = std::env::current_exe().expect("the test's path");
    let dir: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_owned();
    ServiceBinaries::in_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{e:#}\n(a test run of this package alone needs `cargo build --workspace --bins` first)"
        )
    })
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
