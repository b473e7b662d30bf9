//! `baton dev` as a newcomer runs it: the real binary on a fresh SQLite file, driven by the real
//! CLI. It serves the API, health, raw signal, Prometheus and pprof, runs the demo workflow, and
//! after a crash (SIGKILL) mid-run and a restart on the same file, the run completes. With
//! authentication on, it keeps a local admin key in the credentials file (in the test's own
//! directory), which the CLI finds with no token given; the token is never printed.

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

impl TempDir {
    /// The credentials file `baton dev` and the CLI share in this test.
    fn credentials(&self) -> PathBuf {
        self.0.join("config").join("credentials.json")
    }
}

/// `baton dev` on `db` with the gRPC API on `port` (0: a free one), its credentials file in
/// `dir`, and `env` added.
async fn start_dev_with(
    dir: &TempDir,
    db: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
) -> ServiceProcess {
    let db = db.display().to_string();
    let port = port.to_string();
    let credentials = dir.credentials().display().to_string();
    ServiceProcess::start_with_args(
        BATON,
        &["dev", "--db", &db, "--port", &port, "--free-side-ports"],
        || {
            let mut vars = vec![
                ("LOG_LEVEL".to_owned(), "info".to_owned()),
                ("BATON_CREDENTIALS".to_owned(), credentials.clone()),
                // A job whose worker died is run again after this long.
                ("BATON_VISIBILITY_TIMEOUT".to_owned(), "1s".to_owned()),
                ("BATON_INBOX_VISIBILITY".to_owned(), "1s".to_owned()),
            ];
            vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            Ok(vars)
        },
        &PORTS,
    )
    .await
    .expect("baton dev starts")
}

async fn start_dev(dir: &TempDir, db: &std::path::Path) -> ServiceProcess {
    start_dev_with(dir, db, 0, &[]).await
}

/// Runs the CLI against `addr` with no token given, so it uses the one `baton dev` saved in
/// the test's credentials file; returns its exit code and output.
async fn cli(dir: &TempDir, addr: std::net::SocketAddr, args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(BATON)
            .env_remove("BATON_TOKEN")
            .env_remove("BATON_ADDR")
            .env("BATON_CREDENTIALS", dir.credentials())
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

/// The token the credentials file holds for `addr`.
fn saved_token(dir: &TempDir, addr: std::net::SocketAddr) -> String {
    let file = baton_auth::credentials::Credentials::load(&dir.credentials()).unwrap();
    file.token_for(&addr.to_string())
        .unwrap_or_else(|| panic!("no token saved for {addr}: {file:?}"))
        .token
        .clone()
}

#[tokio::test]
async fn baton_dev_serves_everything_and_runs_the_demo() {
    let dir = TempDir::new();
    let dev = start_dev(&dir, &dir.0.join("dev.db")).await;
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
        &dir,
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
        &dir,
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
    let dev = start_dev(&dir, &db).await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = cli(
        &dir,
        grpc,
        &["workflow", "apply", "-f", &workflow.display().to_string()],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&dir, grpc, &["-o", "json", "run", "start", "t/nap@1"]).await;
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
        let (_, out) = cli(&dir, grpc, &["-o", "json", "run", "get", &run_id]).await;
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

    let dev = start_dev(&dir, &db).await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = cli(
        &dir,
        grpc,
        &["run", "watch", &run_id, "--after-sequence", "0"],
    )
    .await;
    assert_eq!(code, 0, "the run completes after the restart:\n{out}");
    let (_, out) = cli(&dir, grpc, &["-o", "json", "run", "get", &run_id]).await;
    assert!(
        out.contains("\"slept\""),
        "the dependent step ran on the sleep's output: {out}"
    );
    dev.terminate(Duration::from_secs(30)).await.unwrap();
}

/// Waits until `dev` has printed `needle`, and returns everything it printed.
async fn printed(dev: &ServiceProcess, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let output = dev.output();
        if output.contains(needle) {
            return output;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "baton dev did not print {needle:?}:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn baton_dev_keeps_a_local_admin_key_the_cli_finds_and_never_prints_it() {
    let dir = TempDir::new();
    let db = dir.0.join("dev.db");
    let dev = start_dev(&dir, &db).await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let token = saved_token(&dir, grpc);
    let id = baton_auth::KeyToken::parse(&token).expect("an API key").id;
    let secret = token.rsplit('_').next().unwrap().to_owned();
    let output = printed(&dev, "Other clients:").await;
    assert!(
        output.contains(&format!(
            "Local admin key {id} (tenant default, new) saved in {} for http://{grpc}.",
            dir.credentials().display()
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "Other clients: export BATON_TOKEN=$(baton --addr http://{grpc} auth token)"
        )),
        "{output}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.credentials())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the credentials file is its owner's alone"
        );
    }

    // The CLI, given no token, finds the saved one and runs the demo workflow.
    let (code, out) = cli(
        &dir,
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
        &dir,
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
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Hello, Ada!"), "{out}");
    let (code, out) = cli(&dir, grpc, &["auth", "whoami"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("principal  key:{id}\n")), "{out}");
    assert!(
        out.contains("tenant     default\nrole       admin\n"),
        "{out}"
    );
    assert!(out.contains("auth       api-keys\n"), "{out}");
    assert!(
        !out.contains(&secret),
        "whoami never shows the token:\n{out}"
    );
    let (code, out) = cli(&dir, grpc, &["auth", "token"]).await;
    assert_eq!((code, out), (0, format!("{token}\n")));

    let (status, output) = dev.terminate(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status}\n{output}");
    assert!(
        !output.contains(&secret),
        "baton dev printed its token:\n{output}"
    );

    // Started again on the same file and address, it keeps the key it made.
    let dev = start_dev_with(&dir, &db, grpc.port(), &[]).await;
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let output = printed(&dev, "Other clients:").await;
    assert!(
        output.contains(&format!("Local admin key {id} (tenant default, reused)")),
        "{output}"
    );
    assert_eq!(saved_token(&dir, grpc), token);
    let (code, out) = cli(&dir, grpc, &["-o", "json", "auth", "key", "list", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    let keys: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let ids: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()], "no second key: {out}");
    assert_eq!(keys[0]["created_by"], "baton dev", "{out}");
    assert!(!out.contains(&secret), "{out}");
    let (status, output) = dev.terminate(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status}\n{output}");
    assert!(
        !output.contains(&secret),
        "baton dev printed its token:\n{output}"
    );
}

#[tokio::test]
async fn baton_dev_with_auth_disabled_says_so_and_saves_no_key() {
    let dir = TempDir::new();
    let dev = start_dev_with(
        &dir,
        &dir.0.join("dev.db"),
        0,
        &[("BATON_AUTH", "disabled")],
    )
    .await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "", Duration::from_secs(30))
        .await
        .unwrap();
    let output = printed(&dev, "WARNING: authentication is DISABLED").await;
    assert!(!output.contains("Local admin key"), "{output}");
    assert!(!dir.credentials().exists(), "no key is saved");
    let (code, out) = cli(&dir, grpc, &["info"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\nauth      disabled\n"), "{out}");
    assert!(
        out.contains(&format!(
            "WARNING: authentication is DISABLED at http://{grpc} (BATON_AUTH=disabled)"
        )),
        "{out}"
    );
    let (code, out) = cli(&dir, grpc, &["run", "list"]).await;
    assert_eq!(code, 0, "no token is needed: {out}");
    dev.terminate(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn baton_dev_runs_http_steps_behind_the_ssrf_guard() {
    let dir = TempDir::new();
    // Loopback allowed, so the example can call `baton dev`'s own health endpoint.
    let dev = start_dev_with(
        &dir,
        &dir.0.join("dev.db"),
        0,
        &[("HTTP_WORKER_ALLOW", "127.0.0.1")],
    )
    .await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "baton.v1.RunService", Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = cli(
        &dir,
        grpc,
        &[
            "workflow",
            "apply",
            "-f",
            &workspace_file("examples/http.yaml"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let url = format!("url=http://{}/health", dev.addr("HTTP_PORT"));
    let (code, out) = cli(
        &dir,
        grpc,
        &[
            "run",
            "start",
            "examples/http@1",
            "--input",
            &url,
            "--follow",
        ],
    )
    .await;
    assert_eq!(code, 0, "the http example completes:\n{out}");
    assert!(out.contains("took_ms"), "{out}");
    dev.terminate(Duration::from_secs(30)).await.unwrap();

    // The guard is on by default: the same call to loopback is refused, and says why.
    let dir = TempDir::new();
    let dev = start_dev(&dir, &dir.0.join("dev.db")).await;
    let grpc = dev.addr("GRPC_PORT");
    wait_until_serving(grpc, "baton.v1.RunService", Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = cli(
        &dir,
        grpc,
        &[
            "workflow",
            "apply",
            "-f",
            &workspace_file("examples/http.yaml"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let url = format!("url=http://{}/health", dev.addr("HTTP_PORT"));
    let (code, out) = cli(
        &dir,
        grpc,
        &[
            "run",
            "start",
            "examples/http@1",
            "--input",
            &url,
            "--follow",
        ],
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("blocked: 127.0.0.1 is a loopback address"),
        "{out}"
    );
    dev.terminate(Duration::from_secs(30)).await.unwrap();
}
