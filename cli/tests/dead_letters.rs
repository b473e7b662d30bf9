//! `baton dead-letters list|show|replay` through the built binary against a real Baton (in
//! process, on the backend `BATON_TEST_BACKEND` names): a run's start message that went to the
//! dead letters is listed, shown decoded, and replayed, after which the runner starts the run and
//! it completes; unknown ids fail with the id named.

use std::process::Stdio;
use std::time::Duration;

use baton_proto::v1::{self, RunStatus};
use baton_testkit::{StackOptions, TestStack, status};
use serde_json::Value;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

const ECHO: &str =
    "owner: t\nname: echo\nversion: 1\nsteps:\n  - {id: say, kind: echo, input: {n: 1}}\n";

/// What one `baton` invocation did.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `baton --addr <stack> <args…>`, killed if it outlives [`COMMAND_TIMEOUT`].
async fn baton(stack: &TestStack, args: &[&str]) -> Out {
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    command
        .env_remove("BATON_ADDR")
        .env("BATON_TOKEN", stack.token())
        .env(
            "BATON_CREDENTIALS",
            std::env::temp_dir().join("baton-cli-tests-no-such-dir/credentials.json"),
        )
        .env("TZ", "UTC")
        .arg("--addr")
        .arg(stack.endpoint())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("baton {args:?} did not finish within {COMMAND_TIMEOUT:?}"))
        .expect("baton runs");
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_start_message_is_listed_shown_and_replayed_and_its_run_completes() {
    // No runner yet, so the start message stays on the inbox for the test to take; the runner
    // started later never sweeps the queued run up on its own (an hour's grace).
    let mut stack = TestStack::start_with(
        StackOptions {
            runners: 0,
            ..Default::default()
        }
        .runner_env("BATON_SWEEP_GRACE", "1h"),
    )
    .await
    .expect("a Baton stack (is Postgres at DATABASE_URL and Redis at REDIS_URL?)");
    stack.register(ECHO).await.unwrap();
    let run = stack
        .start_run("t/echo@1", serde_json::json!({}))
        .await
        .unwrap();
    let taken = stack
        .queue
        .read_runner("test-runner", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the run's start message");
    stack
        .queue
        .dead_letter_runner(v1::DeadLetter {
            stream: "runner".into(),
            entry_id: taken[0].id.clone(),
            reason: "delivered 6 times (more than BATON_MAX_DELIVERIES, 5)".into(),
            payload: taken[0].payload.clone(),
            dead_at: Some(baton_proto::timestamp_from_micros(1_700_000_000_000_000)),
        })
        .await
        .unwrap();

    let listed = baton(&stack, &["dead-letters", "list", "--json"]).await;
    assert_eq!(listed.code, Some(0), "{listed}");
    let letters: Value = serde_json::from_str(&listed.stdout).unwrap();
    let letters = letters.as_array().expect("a JSON array");
    assert_eq!(letters.len(), 1, "{listed}");
    let id = letters[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(letters[0]["stream"], "runner");
    assert_eq!(letters[0]["dead_at"], "2023-11-14T22:13:20Z");
    assert_eq!(letters[0]["payload_type"], "baton.v1.RunnerMessage");
    assert_eq!(
        letters[0]["payload"]["start_run"]["run_id"],
        run.id.as_str()
    );

    let table = baton(&stack, &["dead-letters", "list"]).await;
    assert_eq!(table.code, Some(0), "{table}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one letter:\n{table}");
    for column in ["ID", "STREAM", "DEAD AT", "MESSAGE", "REASON"] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(lines[1].starts_with(&id), "{table}");
    assert!(
        lines[1].contains(&format!("start_run of run {}", run.id)),
        "{table}"
    );
    assert!(lines[1].contains("BATON_MAX_DELIVERIES"), "{table}");

    let shown = baton(&stack, &["dead-letters", "show", &id]).await;
    assert_eq!(shown.code, Some(0), "{shown}");
    assert!(shown.stdout.contains(&format!("id        {id}")), "{shown}");
    assert!(shown.stdout.contains("stream    runner"), "{shown}");
    assert!(
        shown.stdout.contains("payload   baton.v1.RunnerMessage"),
        "{shown}"
    );
    assert!(
        shown
            .stdout
            .contains(&format!("\"run_id\": \"{}\"", run.id)),
        "{shown}"
    );

    let runner = CancellationToken::new();
    stack
        .spawn_runner("runner-0", runner.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        status(&stack.get_run(&run.id).await.unwrap()),
        RunStatus::Queued,
        "nothing starts the run while its start message is a dead letter"
    );

    let replayed = baton(&stack, &["dead-letters", "replay", &id]).await;
    assert_eq!(replayed.code, Some(0), "{replayed}");
    let expected = format!(
        "replayed dead letter {id} (start_run of run {}) to runner as entry ",
        run.id
    );
    assert!(replayed.stdout.starts_with(&expected), "{replayed}");
    let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&ended), RunStatus::Completed, "{ended:?}");

    let empty = baton(&stack, &["dead-letters", "list"]).await;
    assert_eq!(
        (empty.code, empty.stdout.as_str()),
        (Some(0), "no dead letters\n"),
        "{empty}"
    );
    for args in [
        ["dead-letters", "replay", id.as_str()],
        ["dead-letters", "show", id.as_str()],
    ] {
        let gone = baton(&stack, &args).await;
        assert_eq!(gone.code, Some(2), "{gone}");
        assert!(
            gone.stderr
                .starts_with(&format!("error: NotFound: dead letter {id} does not exist")),
            "{gone}"
        );
    }
    runner.cancel();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_is_required_and_a_closed_port_is_named() {
    let missing = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["dead-letters", "show"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("<ID>"));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let down = Command::new(env!("CARGO_BIN_EXE_baton"))
        .env_remove("BATON_ADDR")
        .args(["--addr", &addr, "dead-letters", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.starts_with("error: Unavailable"), "{stderr}");
    assert!(
        stderr.contains("is the orchestrator running at"),
        "{stderr}"
    );
}
