//! The generated Go, Python and TypeScript clients end to end: each language's own test suite
//! (`scripts/clients.sh test LANG`) runs against a fresh Baton on loopback, over gRPC, and for
//! TypeScript over gRPC-Web too, from Node and from Chromium. `make client-deps` installs the
//! toolchains and compiles the Go tests ahead, so the limits below are for running the suites.

use std::{path::PathBuf, process::Stdio, time::Duration};

use baton_orchestrator::AllowedOrigins;
use baton_testkit::{StackOptions, TestStack};
use tokio::{
    io::AsyncReadExt,
    signal::unix::{SignalKind, signal},
};

/// The browser test's page origin, the only one the orchestrator allows. The page server is
/// Chromium's proxy for it, so it names no port that could be taken by another test.
const PAGE_ORIGIN: &str = "http://page.baton.test";

/// How long one language's suite may run, a cold Go build included (about a minute here when
/// `make client-deps` has not compiled it ahead). It must stay below the limit nextest sets for
/// this binary, 300 s in `.config/nextest.toml`, so that this one is hit first and says so.
const SUITE_LIMIT: Duration = Duration::from_secs(270);

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Reads a child's pipe to its end in the background, so its output survives a timeout.
fn collect(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> tokio::task::JoinHandle<String> {
    let mut pipe = pipe.expect("piped");
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Sends `signal` to every process of the suite's group: the script, its test runner, and what
/// they spawn.
fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Stops what is left of the suite and returns its output: SIGTERM, so the script removes its
/// build directory, then SIGKILL once the output has closed or after a grace period.
async fn stop_group(
    pgid: u32,
    stdout: tokio::task::JoinHandle<String>,
    stderr: tokio::task::JoinHandle<String>,
) -> (String, String) {
    const GRACE: Duration = Duration::from_secs(10);
    let output = async { (stdout.await.unwrap(), stderr.await.unwrap()) };
    tokio::pin!(output);
    signal_group(pgid, "-TERM");
    let closed = tokio::time::timeout(GRACE, &mut output).await;
    signal_group(pgid, "-KILL");
    match closed {
        Ok(output) => output,
        Err(_) => tokio::time::timeout(GRACE, output)
            .await
            .unwrap_or_else(|_| {
                let lost = "(output lost: a process outside the group holds it open)".to_owned();
                (lost.clone(), lost)
            }),
    }
}

async fn client_tests_pass(language: &str) {
    let stack = TestStack::start_with(StackOptions {
        grpc_web_allowed_origins: AllowedOrigins::List(vec![PAGE_ORIGIN.to_owned()]),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("scripts/clients.sh")
        .args(["test", language])
        .current_dir(repository_root())
        .env("BATON_ADDR", stack.addr.to_string())
        .env("BATON_TOKEN", stack.token())
        .env("BATON_PAGE_ORIGIN", PAGE_ORIGIN)
        .env_remove("BATON_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A process group of its own, so that the suite's every process is stopped with it.
        .process_group(0)
        .kill_on_drop(true);
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut child = command.spawn().expect("bash");
    let pgid = child.id().expect("a running child");
    let (stdout, stderr) = (collect(child.stdout.take()), collect(child.stderr.take()));
    let outcome = tokio::select! {
        status = child.wait() => Ok(status.expect("bash")),
        _ = tokio::time::sleep(SUITE_LIMIT) => {
            Err(format!("ran past SUITE_LIMIT ({SUITE_LIMIT:?} in clients.rs)"))
        }
        // nextest's own limit (or Ctrl-C): it sends SIGTERM before it kills the test.
        _ = terminate.recv() => Err(
            "were stopped by SIGTERM: nextest's limit for this binary (300 s in \
             .config/nextest.toml) or an interrupted run"
                .to_owned(),
        ),
    };
    let (stdout, stderr) = stop_group(pgid, stdout, stderr).await;
    let status = outcome.unwrap_or_else(|limit| {
        panic!("{language} client tests {limit}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    });
    // Shown by nextest for a passing test too with `--success-output`.
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        status.success(),
        "{language} client tests failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn go_client_end_to_end() {
    client_tests_pass("go").await;
}

#[tokio::test]
async fn python_client_end_to_end() {
    client_tests_pass("python").await;
}

#[tokio::test]
async fn typescript_client_end_to_end_over_grpc_and_grpc_web() {
    client_tests_pass("typescript").await;
}

#[tokio::test]
async fn typescript_client_in_chromium_over_grpc_web_with_cors() {
    client_tests_pass("browser").await;
}
