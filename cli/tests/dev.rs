//! `baton dev` as a newcomer runs it: the real binary on a fresh SQLite file, driven by the real
//! CLI. It serves the API, health, raw signal, Prometheus and pprof, runs the demo workflow, and
//! after a crash (SIGKILL) mid-run and a restart on the same file, the run completes.

use std::{path::PathBuf, time::Duration};

use baton_testkit::{ServiceProcess, http_get, wait_until_serving};

const BATON: &str = env!("CARGO_BIN_EXE_baton");
const PORTS: [&str; 6] = [
    "GRPC_PORT",
    "HTTP_PORT",
    "RUNNER_GRPC_PORT",
    "RUNNER_HTTP_PORT",
    "METRICS_PORT",
    "PPROF_PORT",
];

fn workspace_file(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

/// A fresh directory for the database file, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let id = format!("{:x}", std::process::id()) + &format!("{:?}", std::time::Instant::now());
        let id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let dir = std::env::temp_dir().join(format!("baton-dev-test-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_dev(db: &std::path::Path) -> ServiceProcess {
    let db = db.display().to_string();
    ServiceProcess::start_with_args(
        BATON,
        &["dev", "--db", &db, "--port", "0", "--free-side-ports"],
        || {
            Ok(vec![
                ("LOG_LEVEL".to_owned(), "info".to_owned()),
                // A job whose worker died is run again after this long.
                ("BATON_VISIBILITY_TIMEOUT".to_owned(), "1s".to_owned()),
                ("BATON_INBOX_VISIBILITY".to_owned(), "1s".to_owned()),
            ])
        },
        &PORTS,
    )
    .await
    .expect("baton dev starts")
}

/// Runs the CLI against `addr`; returns its exit code and output.
async fn cli(addr: std::net::SocketAddr, args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(BATON)
            .arg("--addr")
            .arg(format!("http://{addr}"))
            .args(args)
            .output(),
    )
    .await
    .expect("the CLI finished within 120 s")
    .expect("the CLI runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn baton_dev_serves_everything_and_runs_the_demo() {
    let dir = TempDir::new();
    let dev = start_dev(&dir.0.join("dev.db")).await;
    let grpc = dev.addr("GRPC_PORT");
    let within = Duration::from_secs(30);
    wait_until_serving(grpc, "", within).await.unwrap();
    wait_until_serving(grpc, "baton.v1.RunService", within)
        .await
        .unwrap();
    wait_until_serving(
        dev.addr("RUNNER_GRPC_PORT"),
        "baton.v1.WorkflowRunner",
        within,
    )
    .await
    .unwrap();

    let (code, out) = cli(
        grpc,
        &[
            "workflow",
            "apply",
            "-f",
            &workspace_file("examples/hello.yaml"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(
        grpc,
        &[
            "run",
            "start",
            "examples/hello@1",
            "--input",
            "name=Ada",
            "--input",
            "count=3",
            "--follow",
        ],
    )
    .await;
    assert_eq!(code, 0, "the demo run completes:\n{out}");
    assert!(out.contains("Hello, Ada!"), "{out}");

    let (status, _, body) = http_get(dev.addr("HTTP_PORT"), "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let signal: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(signal["schema_version"].is_number(), "{signal}");
    let (status, _, body) = http_get(dev.addr("METRICS_PORT"), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(
            "orchestration_runs_total{definition=\"examples/hello@1\",status=\"completed\"} 1"
        ),
        "Prometheus counts the run:\n{text}"
    );
    baton_testkit::assert_pprof_answers(&dev).await;

    let (status, output) = dev.terminate(Duration::from_secs(30)).await.unwrap();
    assert!(
        status.success(),
        "baton dev stops cleanly on SIGTERM: {status}\n{output}"
    );
}

#[tokio::test]
async fn a_run_survives_baton_dev_being_killed_and_restarted_on_its_file() {
    let dir = TempDir::new();
    let db = dir.0.join("dev.db");
    let workflow = dir.0.join("nap.yaml");
    std::fs::write(
        &workflow,
        "owner: t\nname: nap\nversion: 1\nsteps:\n  - id: nap\n    kind: sleep\n    input: { duration: 2s }\n  - id: after\n    kind: echo\n    needs: [nap]\n    input: { slept: \"{{ steps.nap.output.slept_ms }}\" }\n",
    )
    .unwrap();
    let dev = start_dev(&db).await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = cli(
        grpc,
        &["workflow", "apply", "-f", &workflow.display().to_string()],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(grpc, &["-o", "json", "run", "start", "t/nap@1"]).await;
    assert_eq!(code, 0, "{out}");
    let started: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let run_id = started["run"]["id"]
        .as_str()
        .or_else(|| started["id"].as_str())
        .unwrap_or_else(|| panic!("no run id in {started}"))
        .to_owned();

    // Killed while the sleep step runs: its job is taken but unfinished.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out) = cli(grpc, &["-o", "json", "run", "get", &run_id]).await;
        if out.contains("STEP_STATUS_RUNNING") || out.contains("\"running\"") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the step never ran: {out}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dev.kill().await.unwrap();

    let dev = start_dev(&db).await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = cli(grpc, &["run", "watch", &run_id, "--after-sequence", "0"]).await;
    assert_eq!(code, 0, "the run completes after the restart:\n{out}");
    let (_, out) = cli(grpc, &["-o", "json", "run", "get", &run_id]).await;
    assert!(
        out.contains("\"slept\""),
        "the dependent step ran on the sleep's output: {out}"
    );
    dev.terminate(Duration::from_secs(30)).await.unwrap();
}
