//! End-to-end tests of the `baton` binary against a real Baton: each test starts its own
//! orchestrator and workflow-runner in process (`baton-testkit`, over a fresh Postgres database
//! and Redis key prefix) and runs the built binary against it. They check what users see: lines,
//! JSON and exit codes.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use baton_proto::v1::{RunStatus, StepStatus};
use baton_testkit::{TestStack, status, step, step_status};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

/// Longest any one `baton` invocation may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a run may take to reach a state the test waits for.
const WAIT: Duration = Duration::from_secs(20);

const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.yaml");

/// What one `baton` invocation did.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    /// Asserts the exit code and returns self for more checks.
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Every stdout line parsed as JSON.
    #[track_caller]
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("line `{line}` is not JSON ({e}):\n{self}"))
            })
            .collect()
    }

    /// The run id of `started run <id>` / `existing run <id> …`, the first line of `run start`.
    #[track_caller]
    fn run_id(&self) -> String {
        let first = self.stdout.lines().next().unwrap_or_default();
        let id = first
            .strip_prefix("started run ")
            .or_else(|| first.strip_prefix("existing run "))
            .and_then(|rest| rest.split_whitespace().next());
        id.unwrap_or_else(|| panic!("no run id:\n{self}"))
            .to_owned()
    }
}

/// Runs the built `baton` binary: `stdin` is fed to it, and it is killed when it outlives
/// [`COMMAND_TIMEOUT`]. `BATON_ADDR` is cleared unless the caller sets it again.
async fn exec(mut command: Command, stdin: Option<&str>) -> Out {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the baton binary starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("a stdin pipe");
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("baton did not finish within {COMMAND_TIMEOUT:?}"))
        .expect("baton runs");
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `baton` binary sending `token` (as `BATON_TOKEN`), with no credentials file of its own:
/// `BATON_CREDENTIALS` names one that does not exist, so the user's never counts.
fn baton_command(token: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    command
        .env_remove("BATON_ADDR")
        .env_remove("BATON_TOKEN")
        .env(
            "BATON_CREDENTIALS",
            std::env::temp_dir().join("baton-cli-tests-no-such-dir/credentials.json"),
        )
        .env("TZ", "UTC");
    if let Some(token) = token {
        command.env("BATON_TOKEN", token);
    }
    command
}

/// `baton --addr <addr> <args…>` sending `token`.
async fn baton_at(addr: &str, token: Option<&str>, args: &[&str]) -> Out {
    let mut command = baton_command(token);
    command.arg("--addr").arg(addr).args(args);
    exec(command, None).await
}

/// A real Baton, a scratch directory, and the `baton` binary pointed at both.
struct Env {
    stack: TestStack,
    dir: PathBuf,
}

impl Env {
    async fn start() -> Self {
        let stack = TestStack::start()
            .await
            .expect("a Baton stack (is Postgres at DATABASE_URL and Redis at REDIS_URL?)");
        let dir = std::env::temp_dir().join(format!("baton-cli-{}", stack.prefix));
        std::fs::create_dir_all(&dir).unwrap();
        Self { stack, dir }
    }

    async fn baton(&self, args: &[&str]) -> Out {
        baton_at(&self.stack.endpoint(), Some(self.stack.token()), args).await
    }

    /// `baton` sending `token` instead of the stack's admin key.
    async fn baton_as(&self, token: &str, args: &[&str]) -> Out {
        baton_at(&self.stack.endpoint(), Some(token), args).await
    }

    /// A new key of `tenant` with the operator role.
    async fn operator_of(&self, tenant: &str) -> String {
        self.stack
            .key(tenant, baton_testkit::Role::Operator)
            .await
            .expect("a key in the store")
    }

    /// Writes a scratch file and returns its path as text.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    async fn register(&self, yaml: &str) {
        self.stack.register(yaml).await.expect("a valid definition");
    }

    async fn register_hello(&self) {
        self.register(&std::fs::read_to_string(HELLO).unwrap())
            .await;
    }

    async fn stop(self) {
        std::fs::remove_dir_all(&self.dir).ok();
        self.stack.stop().await;
    }
}

fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The event lines of a followed run for one subject (a step id or `run`), without their time.
fn event_texts(stdout: &str, subject: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| {
            // `  HH:MM:SS.mmm  <subject padded>  <text>`
            let rest = line.strip_prefix("  ")?;
            let (time, rest) = rest.split_once("  ")?;
            if time.len() != 12 || !time.contains(':') {
                return None;
            }
            let (who, text) = rest.split_once(' ')?;
            (who == subject).then(|| text.trim_start().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn workflow_apply_registers_once_and_rejects_conflicts_and_cycles() {
    let env = Env::start().await;

    let first = env.baton(&["workflow", "apply", "-f", HELLO]).await;
    first.expect_code(0);
    let digest = first
        .stdout
        .strip_prefix("registered examples/hello@1 (digest ")
        .and_then(|rest| rest.strip_suffix("…)\n"))
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(digest.len(), 8, "{first}");
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{first}");

    let again = env.baton(&["workflow", "apply", "-f", HELLO]).await;
    again.expect_code(0);
    assert_eq!(again.stdout, "unchanged examples/hello@1\n", "{again}");

    // The same definition from standard input, as JSON output.
    let text = std::fs::read_to_string(HELLO).unwrap();
    let mut command = baton_command(Some(env.stack.token()));
    command.args([
        "--addr",
        &env.stack.endpoint(),
        "workflow",
        "apply",
        "-f",
        "-",
        "-o",
        "json",
    ]);
    let piped = exec(command, Some(&text)).await;
    piped.expect_code(0);
    let value = piped.json();
    assert_eq!(value["created"], false, "{piped}");
    assert_eq!(value["workflow"]["workflow_ref"], "examples/hello@1");
    assert!(
        value["workflow"]["digest"]
            .as_str()
            .unwrap()
            .starts_with(digest),
        "{piped}"
    );

    // Same version, different content.
    let changed = env.file("hello-changed.yaml", &text.replace("200ms", "300ms"));
    let conflict = env.baton(&["workflow", "apply", "-f", &changed]).await;
    conflict.expect_code(2);
    assert_eq!(conflict.stdout, "", "{conflict}");
    assert!(
        conflict.stderr.starts_with(
            "error: AlreadyExists: examples/hello@1 is already registered with different content"
        ),
        "{conflict}"
    );

    let cycle = env.file(
        "cycle.yml",
        "owner: t\nname: cycle\nversion: 1\nsteps:\n  - {id: a, kind: noop, needs: [b]}\n  - {id: b, kind: noop, needs: [a]}\n",
    );
    let invalid = env.baton(&["workflow", "apply", "-f", &cycle]).await;
    invalid.expect_code(2);
    assert!(
        invalid
            .stderr
            .starts_with("error: InvalidArgument: steps form a cycle: "),
        "{invalid}"
    );
    assert!(
        invalid.stderr.contains("a -> b -> a") || invalid.stderr.contains("b -> a -> b"),
        "{invalid}"
    );

    let missing = env
        .baton(&["workflow", "apply", "-f", "/nonexistent/flow.yaml"])
        .await;
    missing.expect_code(2);
    assert!(
        missing
            .stderr
            .starts_with("error: cannot read definition file /nonexistent/flow.yaml"),
        "{missing}"
    );

    // Nothing but the first apply registered anything.
    let list = env.baton(&["workflow", "list", "-o", "json"]).await;
    let workflows = list.json();
    let refs: Vec<&str> = workflows
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workflow_ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["examples/hello@1"], "{list}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workflow_list_and_get() {
    let env = Env::start().await;
    let empty = env.baton(&["workflow", "list"]).await;
    empty.expect_code(0);
    assert_eq!(empty.stdout, "no workflows\n", "{empty}");

    env.register_hello().await;
    let text = std::fs::read_to_string(HELLO).unwrap();
    env.register(&text.replace("version: 1", "version: 2"))
        .await;
    env.register("owner: other\nname: tiny\nversion: 7\nsteps:\n  - {id: only, kind: noop}\n")
        .await;

    // Pages of one, followed to the end.
    let list = env.baton(&["workflow", "list", "--page-size", "1"]).await;
    list.expect_code(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{list}");
    assert!(
        lines[0].starts_with("REF               STEPS  CREATED"),
        "{list}"
    );
    for (workflow_ref, steps) in [
        ("examples/hello@1", 4),
        ("examples/hello@2", 4),
        ("other/tiny@7", 1),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{workflow_ref:<16}  {steps:<5}  "))),
            "{workflow_ref}: {list}"
        );
    }

    let json = env
        .baton(&["workflow", "list", "--page-size", "2", "--output", "json"])
        .await;
    json.expect_code(0);
    let all = json.json();
    let mut refs: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workflow_ref"].as_str().unwrap())
        .collect();
    refs.sort_unstable();
    assert_eq!(
        refs,
        ["examples/hello@1", "examples/hello@2", "other/tiny@7"],
        "{json}"
    );

    let owned = env
        .baton(&["workflow", "list", "--owner", "other", "-o", "json"])
        .await;
    assert_eq!(owned.json().as_array().unwrap().len(), 1, "{owned}");

    let get = env.baton(&["workflow", "get", "examples/hello@1"]).await;
    get.expect_code(0);
    assert!(
        get.stdout
            .starts_with("workflow  examples/hello@1\ndigest    "),
        "{get}"
    );
    assert!(
        get.stdout.ends_with(
            "\nSTEP   KIND   NEEDS\ngreet  echo   -\nleft   fail   greet\nright  sleep  greet\njoin   echo   left, right\n"
        ),
        "{get}"
    );

    let get = env
        .baton(&["workflow", "get", "examples/hello@1", "--output", "json"])
        .await;
    get.expect_code(0);
    let wf = get.json();
    assert_eq!(wf["workflow_ref"], "examples/hello@1");
    assert_eq!(
        (
            wf["owner"].as_str(),
            wf["name"].as_str(),
            wf["version"].as_u64()
        ),
        (Some("examples"), Some("hello"), Some(1))
    );
    assert_eq!(wf["digest"].as_str().map(str::len), Some(64), "{get}");
    assert_eq!(
        wf["steps"],
        json!([
            {"id": "greet", "kind": "echo", "needs": []},
            {"id": "left", "kind": "fail", "needs": ["greet"]},
            {"id": "right", "kind": "sleep", "needs": ["greet"]},
            {"id": "join", "kind": "echo", "needs": ["left", "right"]},
        ])
    );
    assert_eq!(
        wf["definition"]["steps"][3]["when"], "inputs.count > 1",
        "{get}"
    );

    // Without a version: the latest.
    let latest = env
        .baton(&["workflow", "get", "examples/hello", "-o", "json"])
        .await;
    assert_eq!(
        latest.json()["workflow_ref"],
        "examples/hello@2",
        "{latest}"
    );

    let unknown = env.baton(&["workflow", "get", "examples/nope@1"]).await;
    unknown.expect_code(2);
    assert_eq!(
        unknown.stderr, "error: NotFound: workflow examples/nope@1 is not registered\n",
        "{unknown}"
    );
    let bad = env.baton(&["workflow", "get", "nope"]).await;
    bad.expect_code(2);
    assert!(
        bad.stderr.starts_with(
            "error: InvalidArgument: workflow_ref: `nope` is not a workflow reference"
        ),
        "{bad}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_follow_runs_hello_to_completion() {
    let env = Env::start().await;
    env.register_hello().await;
    let out = env
        .baton(&[
            "run",
            "start",
            "examples/hello@1",
            "--input",
            "name=Ada",
            "--input",
            "count=3",
            "--follow",
        ])
        .await;
    out.expect_code(0);
    let id = out.run_id();
    assert!(is_uuid(&id), "{out}");
    let text = &out.stdout;

    let greet = event_texts(text, "greet");
    assert!(greet.iter().any(|t| t == "started (attempt 1)"), "{out}");
    assert!(
        greet.iter().any(|t| t.starts_with("completed in ")
            && t.ends_with(r#" → {"count":3,"message":"Hello, Ada"}"#)),
        "{out}"
    );
    let left = event_texts(text, "left");
    assert!(
        left.iter()
            .any(|t| t.starts_with("retrying: flaky; attempt 2 of 3 in ")),
        "{out}"
    );
    assert!(left.iter().any(|t| t == "started (attempt 2)"), "{out}");
    assert!(left.iter().any(|t| t.starts_with("completed in ")), "{out}");
    let right = event_texts(text, "right");
    assert!(
        right
            .iter()
            .any(|t| t.starts_with("completed in ") && t.ends_with(r#" → {"slept_ms":200}"#)),
        "{out}"
    );
    let join = event_texts(text, "join");
    assert!(
        join.iter().any(|t| t.starts_with("completed in ")
            && t.ends_with(r#" → {"text":"Hello, Ada!","total":3}"#)),
        "{out}"
    );
    let run = event_texts(text, "run");
    assert_eq!(run.first().map(String::as_str), Some("queued"), "{out}");
    assert!(run.iter().any(|t| t == "started"), "{out}");
    assert!(run.last().unwrap().starts_with("completed in "), "{out}");
    // `  HH:MM:SS.mmm  <subject>  <text>`: the subject column is as wide as the longest step id
    // from the first line on, although the run had no steps yet when it was started.
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(events.len() >= 15, "{out}");
    for line in events {
        assert!(
            line.get(21..23) == Some("  ") && !line[23..].starts_with(' '),
            "misaligned `{line}`:\n{out}"
        );
    }
    assert!(text.contains("  run    queued\n"), "{out}");

    assert!(
        text.contains(&format!("\n\nrun {id} completed in ")),
        "{out}"
    );
    assert!(
        text.ends_with("output: {\"join\":{\"text\":\"Hello, Ada!\",\"total\":3}}\n"),
        "{out}"
    );

    let run = env.stack.get_run(&id).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed);
    assert_eq!(step(&run, "left").attempt, 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_follow_json_is_one_object_per_line() {
    let env = Env::start().await;
    env.register_hello().await;
    let out = env
        .baton(&[
            "run",
            "start",
            "examples/hello@1",
            "-i",
            "name=Ada",
            "-i",
            "count=3",
            "--follow",
            "--output",
            "json",
        ])
        .await;
    out.expect_code(0);
    let lines = out.json_lines();
    assert!(lines.len() > 3, "{out}");
    let started = &lines[0];
    assert_eq!(started["created"], true, "{out}");
    let id = started["run"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        started["run"]["inputs"],
        json!({"name": "Ada", "count": 3}),
        "{out}"
    );

    let events = &lines[1..lines.len() - 1];
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    // All of them, in order and without gaps.
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(sequences, expected, "{out}");
    assert!(events.iter().all(|e| e["run_id"] == id.as_str()), "{out}");
    let of = |kind: &str, step: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| {
                e["type"] == kind
                    && (e["step_id"] == step || (step.is_empty() && e["step_id"].is_null()))
            })
            .collect()
    };
    let retrying = of("step_retrying", "left");
    assert_eq!(retrying.len(), 1, "{out}");
    assert_eq!(retrying[0]["attempt"], 1);
    assert!(
        retrying[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("flaky; attempt 2 of 3"),
        "{out}"
    );
    let join = of("step_completed", "join");
    assert_eq!(join.len(), 1, "{out}");
    assert_eq!(
        join[0]["output"],
        json!({"total": 3, "text": "Hello, Ada!"})
    );
    assert!(join[0]["duration_ms"].is_u64(), "{out}");
    assert_eq!(of("run_completed", "").len(), 1, "{out}");

    let run = lines.last().unwrap();
    assert_eq!(run["id"], id.as_str(), "{out}");
    assert_eq!(run["status"], "completed", "{out}");
    assert_eq!(run["last_sequence"], events.len(), "{out}");
    assert_eq!(
        run["output"],
        json!({"join": {"total": 3, "text": "Hello, Ada!"}})
    );
    let steps: Vec<(&str, &str)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step_id"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("greet", "completed"),
            ("left", "completed"),
            ("right", "completed"),
            ("join", "completed")
        ]
    );
    let left = &run["steps"][1];
    assert_eq!(left["attempt"], 2);
    let attempts: Vec<&str> = left["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, ["failed", "completed"], "{out}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inputs_file_is_merged_with_inputs() {
    let env = Env::start().await;
    env.register_hello().await;
    let file = env.file(
        "inputs.yaml",
        "name: Bo\ncount: 1\ntags: [a, b]\nnested: {deep: true}\n",
    );
    let out = env
        .baton(&[
            "run",
            "start",
            "examples/hello@1",
            "--inputs-file",
            &file,
            "--input",
            "count=3",
            "--input",
            "name=Ada",
        ])
        .await;
    out.expect_code(0);
    let id = out.run_id();
    assert_eq!(out.stdout, format!("started run {id}\n"), "{out}");

    let get = env.baton(&["run", "get", &id, "--output", "json"]).await;
    get.expect_code(0);
    let run = get.json();
    assert_eq!(
        run["inputs"],
        json!({"name": "Ada", "count": 3, "tags": ["a", "b"], "nested": {"deep": true}}),
        "{get}"
    );
    assert!(run["inputs"]["count"].is_u64(), "{get}");
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["tenant"], "default");
    assert_eq!(run["workflow_ref"], "examples/hello@1");

    // The typed count reaches the steps: `join` runs only when it is above 1.
    let run = env.stack.wait_for_end(&id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    assert_eq!(step_status(step(&run, "join")), StepStatus::Completed);

    let text = env.baton(&["run", "get", &id]).await;
    text.expect_code(0);
    assert!(
        text.stdout.starts_with(&format!(
            "run       {id}\nworkflow  examples/hello@1\ntenant    default\nstatus    completed\n"
        )),
        "{text}"
    );
    assert!(
        text.stdout.contains(
            r#"inputs    {"count":3,"name":"Ada","nested":{"deep":true},"tags":["a","b"]}"#
        ),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("\nSTEP   KIND   STATUS     ATTEMPT  DURATION  ERROR/OUTPUT\n"),
        "{text}"
    );
    assert!(
        text.stdout.contains(r#"left   fail   completed  2  "#),
        "{text}"
    );

    let bad = env.file("list.json", "[1, 2]");
    let rejected = env
        .baton(&["run", "start", "examples/hello@1", "--inputs-file", &bad])
        .await;
    rejected.expect_code(2);
    assert!(
        rejected
            .stderr
            .contains("expected an object of inputs, found a list"),
        "{rejected}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_run_followed_exits_one() {
    let env = Env::start().await;
    env.register(
        "owner: t\nname: broken\nversion: 1\nsteps:\n  - {id: bad, kind: fail, input: {message: boom}}\n  - {id: after, kind: noop, needs: [bad]}\n",
    )
    .await;
    let out = env.baton(&["run", "start", "t/broken@1", "--follow"]).await;
    out.expect_code(1);
    let id = out.run_id();
    let bad = event_texts(&out.stdout, "bad");
    assert!(
        bad.iter()
            .any(|t| t.starts_with("failed after ") && t.ends_with(": boom")),
        "{out}"
    );
    assert!(!bad.iter().any(|t| t.starts_with("retrying")), "{out}");
    let after = event_texts(&out.stdout, "after");
    assert!(after.iter().all(|t| !t.starts_with("started")), "{out}");
    assert!(
        out.stdout.contains(&format!("\n\nrun {id} failed after ")),
        "{out}"
    );
    assert!(out.stdout.ends_with(": step `bad` failed: boom\n"), "{out}");
    assert!(!out.stdout.contains("output:"), "{out}");

    // Watching it again replays the same story and exits 1 again.
    let watch = env.baton(&["run", "watch", &id, "-o", "json"]).await;
    watch.expect_code(1);
    let lines = watch.json_lines();
    assert_eq!(lines.last().unwrap()["status"], "failed", "{watch}");
    assert_eq!(
        lines.last().unwrap()["error"],
        "step `bad` failed: boom",
        "{watch}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_returns_the_first_run() {
    let env = Env::start().await;
    env.register_hello().await;
    let args = [
        "run",
        "start",
        "examples/hello@1",
        "-i",
        "name=Ada",
        "--idempotency-key",
        "order-42",
    ];
    let first = env.baton(&args).await;
    first.expect_code(0);
    let id = first.run_id();
    assert_eq!(first.stdout, format!("started run {id}\n"), "{first}");

    let second = env.baton(&args).await;
    second.expect_code(0);
    assert_eq!(
        second.stdout,
        format!("existing run {id} (idempotency key)\n"),
        "{second}"
    );

    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let third = env.baton(&json_args).await;
    third.expect_code(0);
    let value = third.json();
    assert_eq!(value["created"], false, "{third}");
    assert_eq!(value["run"]["id"], id.as_str(), "{third}");
    assert_eq!(value["run"]["idempotency_key"], "order-42", "{third}");

    // The key is per tenant.
    let acme = env.operator_of("acme").await;
    env.baton_as(&acme, &["workflow", "apply", "-f", HELLO])
        .await
        .expect_code(0);
    let other = env.baton_as(&acme, &args).await;
    other.expect_code(0);
    assert_ne!(other.run_id(), id, "{other}");
    assert!(other.stdout.starts_with("started run "), "{other}");

    let get = env.baton(&["run", "get", &id]).await;
    assert!(get.stdout.contains("\nkey       order-42\n"), "{get}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_list_and_get_errors() {
    let env = Env::start().await;
    let empty = env.baton(&["run", "list"]).await;
    empty.expect_code(0);
    assert_eq!(empty.stdout, "no runs\n", "{empty}");

    env.register_hello().await;
    env.register("owner: t\nname: quick\nversion: 1\nsteps:\n  - {id: only, kind: noop}\n")
        .await;
    let hello = env
        .stack
        .start_run("examples/hello@1", json!({"name": "Ada", "count": 1}))
        .await
        .unwrap();
    let quick = env.stack.start_run("t/quick@1", json!({})).await.unwrap();
    for id in [&hello.id, &quick.id] {
        let run = env.stack.wait_for_end(id, WAIT).await.unwrap();
        assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    }

    let list = env.baton(&["run", "list"]).await;
    list.expect_code(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("ID  ")
            && lines[0].contains("  WORKFLOW  ")
            && lines[0].ends_with("  DURATION"),
        "{list}"
    );
    // Newest first.
    assert!(
        lines[1].starts_with(&format!("{}  t/quick@1  ", quick.id)),
        "{list}"
    );
    assert!(
        lines[2].starts_with(&format!("{}  examples/hello@1  completed  ", hello.id)),
        "{list}"
    );

    let json = env
        .baton(&[
            "run",
            "list",
            "-o",
            "json",
            "--page-size",
            "1",
            "--limit",
            "0",
        ])
        .await;
    json.expect_code(0);
    let runs = json.json();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [quick.id.as_str(), hello.id.as_str()], "{json}");
    assert!(runs[0].get("steps").is_none(), "{json}");

    let limited = env.baton(&["run", "list", "--limit", "1"]).await;
    limited.expect_code(0);
    assert_eq!(limited.stdout.lines().count(), 2, "{limited}");
    assert_eq!(
        limited.stderr, "(showing the first 1 runs; use --limit to see more)\n",
        "{limited}"
    );

    let filtered = env
        .baton(&[
            "run",
            "list",
            "--workflow",
            "t/quick@1",
            "--status",
            "completed",
            "-o",
            "json",
        ])
        .await;
    let runs = filtered.json();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{filtered}");
    assert_eq!(runs[0]["id"], quick.id.as_str());
    let none = env.baton(&["run", "list", "--status", "failed"]).await;
    assert_eq!(none.stdout, "no runs\n", "{none}");
    let acme = env.operator_of("acme").await;
    let other_tenant = env.baton_as(&acme, &["run", "list"]).await;
    assert_eq!(other_tenant.stdout, "no runs\n", "{other_tenant}");
    let foreign = env.baton(&["run", "list", "--tenant", "acme"]).await;
    foreign.expect_code(2);
    assert!(
        foreign.stderr.starts_with("error: PermissionDenied"),
        "another tenant than the key's: {foreign}"
    );

    let unknown = "0190b4c8-0000-7000-8000-000000000000";
    let missing = env.baton(&["run", "get", unknown]).await;
    missing.expect_code(2);
    assert_eq!(missing.stdout, "", "{missing}");
    assert_eq!(
        missing.stderr,
        format!("error: NotFound: run {unknown} does not exist\n"),
        "{missing}"
    );

    let malformed = env.baton(&["run", "get", "not-a-run"]).await;
    malformed.expect_code(2);
    assert_eq!(
        malformed.stderr, "error: InvalidArgument: run_id: `not-a-run` is not a run id (a UUID)\n",
        "{malformed}"
    );

    let watch_missing = env.baton(&["run", "watch", unknown]).await;
    watch_missing.expect_code(2);
    assert!(
        watch_missing.stderr.starts_with("error: NotFound: "),
        "{watch_missing}"
    );

    let unregistered = env.baton(&["run", "start", "t/nope@1"]).await;
    unregistered.expect_code(2);
    assert_eq!(
        unregistered.stderr, "error: NotFound: workflow t/nope@1 is not registered\n",
        "{unregistered}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_ends_a_sleeping_run_and_watch_exits_one() {
    let env = Env::start().await;
    env.register("owner: t\nname: slow\nversion: 1\nsteps:\n  - {id: nap, kind: sleep, input: {duration: 10m}}\n  - {id: after, kind: noop, needs: [nap]}\n")
        .await;
    let started = env.baton(&["run", "start", "t/slow@1"]).await;
    started.expect_code(0);
    let id = started.run_id();
    env.stack
        .wait_for(&id, WAIT, |run| {
            run.steps
                .iter()
                .any(|s| s.step_id == "nap" && step_status(s) == StepStatus::Running)
        })
        .await
        .unwrap();

    let cancel = env
        .baton(&["run", "cancel", &id, "--reason", "test is over"])
        .await;
    cancel.expect_code(0);
    assert_eq!(
        cancel.stdout,
        format!("run {id} is cancelled\n"),
        "{cancel}"
    );

    // The run has ended, so watch replays it and exits, long before the ten-minute sleep would
    // have ended (exec fails a command that outlives COMMAND_TIMEOUT).
    let watch = env.baton(&["run", "watch", &id]).await;
    watch.expect_code(1);
    assert!(
        event_texts(&watch.stdout, "nap")
            .iter()
            .any(|t| t == "cancelled: test is over"),
        "{watch}"
    );
    assert!(
        event_texts(&watch.stdout, "run")
            .last()
            .unwrap()
            .ends_with(": test is over"),
        "{watch}"
    );
    assert!(watch.stdout.ends_with(": test is over\n"), "{watch}");
    assert!(
        watch
            .stdout
            .contains(&format!("\n\nrun {id} cancelled after ")),
        "{watch}"
    );

    let again = env.baton(&["run", "cancel", &id]).await;
    again.expect_code(2);
    assert!(
        again.stderr.starts_with(&format!(
            "error: FailedPrecondition: run {id} already ended"
        )),
        "{again}"
    );

    let run = env.stack.get_run(&id).await.unwrap();
    assert_eq!(status(&run), RunStatus::Cancelled);
    assert_eq!(run.error, "test is over");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn addr_from_env_and_info() {
    let env = Env::start().await;
    let mut command = baton_command(Some(env.stack.token()));
    command
        .env("BATON_ADDR", env.stack.addr.to_string())
        .arg("info");
    let info = exec(command, None).await;
    info.expect_code(0);
    assert!(
        info.stdout
            .starts_with("service   orchestrator\nversion   "),
        "{info}"
    );
    assert!(info.stdout.contains("\nuptime    "), "{info}");
    assert!(info.stdout.contains("\nauth      api-keys\n"), "{info}");
    assert!(
        info.stdout.contains("\ncaller    key:")
            && info.stdout.contains("(tenant default, role admin)"),
        "{info}"
    );
    assert!(!info.stderr.contains("WARNING"), "{info}");

    let json = env.baton(&["info", "-o", "json"]).await;
    assert_eq!(json.json()["service"], "orchestrator", "{json}");
    assert_eq!(json.json()["auth_mode"], "api-keys", "{json}");
    assert_eq!(json.json()["role"], "admin", "{json}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_unavailable_with_a_hint() {
    // A socket bound but never listening holds its port, so connections to it are refused and
    // no other test can start listening there meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = format!("http://{}", socket.local_addr().unwrap());
    let down = baton_at(&closed, None, &["run", "list"]).await;
    down.expect_code(2);
    assert_eq!(down.stdout, "", "{down}");
    assert!(down.stderr.starts_with("error: Unavailable"), "{down}");
    assert!(
        down.stderr.ends_with(&format!(
            "hint: is the orchestrator running at {closed}? (set --addr or BATON_ADDR)\n"
        )),
        "{down}"
    );

    let bad_usage = baton_at(
        &closed,
        None,
        &["run", "start", "a/b@1", "--input", "count"],
    )
    .await;
    bad_usage.expect_code(2);
    assert!(
        bad_usage.stderr.contains("expected KEY=VALUE"),
        "{bad_usage}"
    );
}
