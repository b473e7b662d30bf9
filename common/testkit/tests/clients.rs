//! The generated Go, Python and TypeScript clients end to end: each language's own test suite
//! (`scripts/clients.sh test LANG`) runs against a fresh Baton on loopback, over gRPC, and for
//! TypeScript over gRPC-Web too, from Node and from Chromium. `make client-deps` installs the
//! toolchains.

use std::{path::PathBuf, process::Stdio, time::Duration};

use baton_orchestrator::AllowedOrigins;
use baton_testkit::{StackOptions, TestStack};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

async fn client_tests_pass(language: &str) {
    // The browser test serves its page here; only that origin may call over gRPC-Web.
    let page_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .unwrap()
        .port();
    let stack = TestStack::start_with(StackOptions {
        grpc_web_allowed_origins: AllowedOrigins::List(vec![format!(
            "http://127.0.0.1:{page_port}"
        )]),
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
        .env("BATON_PAGE_PORT", page_port.to_string())
        .env_remove("BATON_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // Generous: the first Go build compiles gRPC from source.
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .unwrap_or_else(|_| panic!("{language} client tests ran past 10 minutes"))
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{language} client tests failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
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
