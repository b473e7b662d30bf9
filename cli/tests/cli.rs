//! End-to-end tests of the `baton` binary against an in-process fake orchestrator: the real gRPC
//! contracts, canned answers. They check what users see: lines, JSON and exit codes.

use std::collections::HashMap;
use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};

use baton_proto::prost_types;
use baton_proto::v1::run_service_server::{RunService, RunServiceServer};
use baton_proto::v1::workflow_service_server::{WorkflowService, WorkflowServiceServer};
use baton_proto::v1::*;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

const T0: i64 = 1_700_000_000_000_000;

fn at(ms: i64) -> Option<prost_types::Timestamp> {
    Some(baton_proto::timestamp_from_micros(T0 + ms * 1_000))
}

#[derive(Default)]
struct Fake {
    registered: Mutex<Vec<RegisterWorkflowRequest>>,
    started: Mutex<Vec<StartRunRequest>>,
    runs: HashMap<String, (Run, Vec<RunEvent>)>,
}

fn step(id: &str, kind: &str, status: StepStatus, attempt: u32, start: i64, end: i64) -> StepRun {
    StepRun {
        step_id: id.into(),
        kind: kind.into(),
        status: status as i32,
        attempt,
        started_at: at(start),
        ended_at: at(end),
        ..StepRun::default()
    }
}

fn event(
    run: &str,
    seq: i64,
    kind: RunEventType,
    step: &str,
    attempt: u32,
    ms: i64,
    message: &str,
) -> RunEvent {
    RunEvent {
        run_id: run.into(),
        sequence: seq,
        r#type: kind as i32,
        step_id: step.into(),
        attempt,
        time: at(ms),
        message: message.into(),
        workflow_ref: "examples/hello@1".into(),
        tenant: "default".into(),
        ..RunEvent::default()
    }
}

fn fake() -> Fake {
    use RunEventType as T;
    let mut runs = HashMap::new();
    let ok = Run {
        id: "ok-run".into(),
        workflow_ref: "examples/hello@1".into(),
        tenant: "default".into(),
        status: RunStatus::Completed as i32,
        inputs_json: r#"{"name":"Ada"}"#.into(),
        output_json: r#"{"greet":{"message":"Hello, Ada"}}"#.into(),
        created_at: at(0),
        started_at: at(0),
        ended_at: at(412),
        steps: vec![step("greet", "echo", StepStatus::Completed, 1, 10, 13)],
        last_sequence: 6,
        ..Run::default()
    };
    let mut done = event("ok-run", 5, T::StepCompleted, "greet", 1, 13, "");
    done.output_json = r#"{"message":"Hello, Ada"}"#.into();
    let ok_events = vec![
        event("ok-run", 1, T::RunQueued, "", 0, 0, ""),
        event("ok-run", 2, T::RunStarted, "", 0, 0, ""),
        event("ok-run", 3, T::StepQueued, "greet", 1, 5, ""),
        event("ok-run", 4, T::StepStarted, "greet", 1, 10, ""),
        done,
        event("ok-run", 6, T::RunCompleted, "", 0, 412, ""),
    ];
    runs.insert("ok-run".to_owned(), (ok, ok_events));
    let bad = Run {
        id: "bad-run".into(),
        workflow_ref: "examples/hello@1".into(),
        tenant: "default".into(),
        status: RunStatus::Failed as i32,
        error: "step left failed: flaky".into(),
        created_at: at(0),
        started_at: at(0),
        ended_at: at(300),
        steps: vec![step("left", "fail", StepStatus::Failed, 2, 200, 210)],
        ..Run::default()
    };
    let bad_events = vec![
        event("bad-run", 1, T::RunStarted, "", 0, 0, ""),
        event("bad-run", 2, T::StepStarted, "left", 1, 10, ""),
        event(
            "bad-run",
            3,
            T::StepRetrying,
            "left",
            1,
            12,
            "flaky; attempt 2 of 3 in 100ms",
        ),
        event("bad-run", 4, T::StepStarted, "left", 2, 200, ""),
        event("bad-run", 5, T::StepFailed, "left", 2, 210, "flaky"),
        event(
            "bad-run",
            6,
            T::RunFailed,
            "",
            0,
            300,
            "step left failed: flaky",
        ),
    ];
    runs.insert("bad-run".to_owned(), (bad, bad_events));
    Fake {
        runs,
        ..Fake::default()
    }
}

#[derive(Clone)]
struct Server(Arc<Fake>);

fn workflow(version: u32) -> Workflow {
    Workflow {
        owner: "examples".into(),
        name: "hello".into(),
        version,
        workflow_ref: format!("examples/hello@{version}"),
        definition_json: r#"{"steps":[]}"#.into(),
        digest: "abcd1234ef567890".into(),
        steps: vec![
            WorkflowStep {
                id: "greet".into(),
                kind: "echo".into(),
                needs: vec![],
            },
            WorkflowStep {
                id: "join".into(),
                kind: "echo".into(),
                needs: vec!["greet".into(), "left".into()],
            },
        ],
        created_at: at(0),
    }
}

#[tonic::async_trait]
impl WorkflowService for Server {
    async fn register_workflow(
        &self,
        request: Request<RegisterWorkflowRequest>,
    ) -> Result<Response<RegisterWorkflowResponse>, Status> {
        let mut registered = self.0.registered.lock().unwrap();
        registered.push(request.into_inner());
        let created = registered.len() == 1;
        Ok(Response::new(RegisterWorkflowResponse {
            workflow: Some(workflow(1)),
            created,
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<GetWorkflowRequest>,
    ) -> Result<Response<GetWorkflowResponse>, Status> {
        match request.into_inner().workflow_ref.as_str() {
            "examples/hello" | "examples/hello@1" => Ok(Response::new(GetWorkflowResponse {
                workflow: Some(workflow(1)),
            })),
            other => Err(Status::not_found(format!("workflow {other} not found"))),
        }
    }

    async fn list_workflows(
        &self,
        request: Request<ListWorkflowsRequest>,
    ) -> Result<Response<ListWorkflowsResponse>, Status> {
        let request = request.into_inner();
        let all: Vec<Workflow> = (1..=3).rev().map(workflow).collect();
        let page_size = if request.page_size == 0 {
            100
        } else {
            request.page_size as usize
        };
        let from: usize = request.page_token.parse().unwrap_or(0);
        let to = (from + page_size).min(all.len());
        let next_page_token = if to < all.len() {
            to.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ListWorkflowsResponse {
            workflows: all[from..to].to_vec(),
            next_page_token,
        }))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<WatchRunResponse, Status>> + Send>>;

impl Server {
    fn run(&self, id: &str) -> Result<&(Run, Vec<RunEvent>), Status> {
        self.0
            .runs
            .get(id)
            .ok_or_else(|| Status::not_found(format!("run {id} not found")))
    }
}

#[tonic::async_trait]
impl RunService for Server {
    async fn start_run(
        &self,
        request: Request<StartRunRequest>,
    ) -> Result<Response<StartRunResponse>, Status> {
        let request = request.into_inner();
        let created = request.idempotency_key.is_empty();
        self.0.started.lock().unwrap().push(request);
        let mut run = self.run("ok-run")?.0.clone();
        run.status = RunStatus::Queued as i32;
        Ok(Response::new(StartRunResponse {
            run: Some(run),
            created,
        }))
    }

    async fn get_run(
        &self,
        request: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let run = self.run(&request.into_inner().run_id)?.0.clone();
        Ok(Response::new(GetRunResponse { run: Some(run) }))
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let request = request.into_inner();
        let all: Vec<Run> = (0..250)
            .map(|i| Run {
                id: format!("run-{i:03}"),
                status: RunStatus::Completed as i32,
                ..Run::default()
            })
            .collect();
        let page_size = if request.page_size == 0 {
            100
        } else {
            request.page_size as usize
        };
        let from: usize = request.page_token.parse().unwrap_or(0);
        let to = (from + page_size).min(all.len());
        let next_page_token = if to < all.len() {
            to.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ListRunsResponse {
            runs: all[from..to].to_vec(),
            next_page_token,
        }))
    }

    async fn cancel_run(
        &self,
        request: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        let mut run = self.run(&request.into_inner().run_id)?.0.clone();
        run.status = RunStatus::Cancelled as i32;
        Ok(Response::new(CancelRunResponse { run: Some(run) }))
    }

    type WatchRunStream = EventStream;

    async fn watch_run(
        &self,
        request: Request<WatchRunRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.into_inner();
        let events: Vec<_> = self
            .run(&request.run_id)?
            .1
            .iter()
            .filter(|e| e.sequence > request.after_sequence)
            .map(|e| {
                Ok(WatchRunResponse {
                    event: Some(e.clone()),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(events))))
    }
}

async fn serve() -> (String, Arc<Fake>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(fake());
    let server = Server(state.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(WorkflowServiceServer::new(server.clone()))
            .add_service(RunServiceServer::new(server))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, state)
}

async fn baton(addr: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    command
        .arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("BATON_ADDR")
        .env("TZ", "UTC");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_registers_then_reports_unchanged() {
    let (addr, state) = serve().await;
    let dir = std::env::temp_dir().join(format!("baton-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hello.yml");
    std::fs::write(
        &file,
        "owner: examples\nname: hello\nversion: 1\nsteps: []\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let first = baton(&addr, &["workflow", "apply", "-f", file]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(
        stdout(&first),
        "registered examples/hello@1 (digest abcd1234…)\n"
    );
    let second = baton(&addr, &["workflow", "apply", "-f", file]).await;
    assert_eq!(stdout(&second), "unchanged examples/hello@1\n");

    let registered = state.registered.lock().unwrap();
    assert_eq!(registered[0].format, DefinitionFormat::Yaml as i32);
    assert!(registered[0].definition.contains("name: hello"));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn workflow_list_follows_pages_and_get_shows_steps() {
    let (addr, _) = serve().await;
    let list = baton(&addr, &["workflow", "list", "--page-size", "2"]).await;
    let text = stdout(&list);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(text.starts_with("REF"), "{text}");
    for version in 1..=3 {
        assert!(
            text.contains(&format!("examples/hello@{version}  2")),
            "{text}"
        );
    }
    let json = baton(
        &addr,
        &["workflow", "list", "--page-size", "2", "-o", "json"],
    )
    .await;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 3);

    let get = baton(&addr, &["workflow", "get", "examples/hello"]).await;
    let text = stdout(&get);
    assert!(text.contains("join   echo  greet, left"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn start_follow_prints_events_and_exits_zero() {
    let (addr, state) = serve().await;
    let output = baton(
        &addr,
        &[
            "run",
            "start",
            "examples/hello@1",
            "--input",
            "name=Ada",
            "--input",
            "count=3",
            "-i",
            "x=[1,2]",
            "--follow",
        ],
    )
    .await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", stderr(&output));
    assert!(text.starts_with("started run ok-run\n"), "{text}");
    assert!(
        text.contains("  22:13:20.010  greet  started (attempt 1)\n"),
        "{text}"
    );
    assert!(
        text.contains(r#"greet  completed in 3ms → {"message":"Hello, Ada"}"#),
        "{text}"
    );
    assert!(text.contains("run    completed in 412ms\n"), "{text}");
    assert!(text.contains("\nrun ok-run completed in 412ms\n"), "{text}");

    let started = state.started.lock().unwrap();
    let inputs: serde_json::Value = serde_json::from_str(&started[0].inputs_json).unwrap();
    assert_eq!(
        inputs,
        serde_json::json!({"name": "Ada", "count": 3, "x": [1, 2]})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_with_idempotency_key_reports_existing_run() {
    let (addr, state) = serve().await;
    let output = baton(
        &addr,
        &[
            "run",
            "start",
            "examples/hello@1",
            "--idempotency-key",
            "k1",
            "--tenant",
            "t1",
        ],
    )
    .await;
    assert_eq!(stdout(&output), "existing run ok-run (idempotency key)\n");
    let started = state.started.lock().unwrap();
    assert_eq!(
        (
            started[0].idempotency_key.as_str(),
            started[0].tenant.as_str()
        ),
        ("k1", "t1")
    );
    assert_eq!(started[0].inputs_json, "{}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_of_a_failed_run_exits_one() {
    let (addr, _) = serve().await;
    let output = baton(&addr, &["run", "watch", "bad-run"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("left  retrying: flaky; attempt 2 of 3 in 100ms\n"),
        "{text}"
    );
    assert!(text.contains("left  failed after 10ms: flaky\n"), "{text}");
    assert!(
        text.ends_with("run bad-run failed after 300ms: step left failed: flaky\n"),
        "{text}"
    );

    let after = baton(&addr, &["run", "watch", "bad-run", "--after-sequence", "4"]).await;
    let text = stdout(&after);
    assert!(!text.contains("retrying"), "{text}");
    assert!(
        text.contains("left  failed after 10ms: flaky\n"),
        "seeded from GetRun: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_json_is_one_object_per_line() {
    let (addr, _) = serve().await;
    let output = baton(&addr, &["run", "watch", "ok-run", "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[4]["type"], "step_completed");
    assert_eq!(lines[4]["duration_ms"], 3);
    assert_eq!(
        lines[4]["output"],
        serde_json::json!({"message": "Hello, Ada"})
    );
    assert_eq!(lines[4]["time"], "2023-11-14T22:13:20.013Z");
    assert_eq!(lines[6]["status"], "completed");
    assert_eq!(lines[6]["output"]["greet"]["message"], "Hello, Ada");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_list_and_cancel() {
    let (addr, _) = serve().await;
    let get = baton(&addr, &["run", "get", "bad-run"]).await;
    let text = stdout(&get);
    assert!(text.contains("status    failed\n"), "{text}");
    assert!(
        text.contains("error     step left failed: flaky\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "STEP  KIND  STATUS  ATTEMPT  DURATION  ERROR/OUTPUT\nleft  fail  failed  2        10ms"
        ),
        "{text}"
    );

    let json = baton(&addr, &["run", "get", "ok-run", "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["inputs"], serde_json::json!({"name": "Ada"}));
    assert_eq!(value["steps"][0]["status"], "completed");

    let list = baton(&addr, &["run", "list", "--limit", "150"]).await;
    assert_eq!(stdout(&list).lines().count(), 151);
    let all = baton(&addr, &["run", "list", "--limit", "0", "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 250);

    let cancel = baton(&addr, &["run", "cancel", "ok-run", "--reason", "test"]).await;
    assert_eq!(stdout(&cancel), "run ok-run is cancelled\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_exit_two() {
    let (addr, _) = serve().await;
    let missing = baton(&addr, &["run", "get", "nope"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(stderr(&missing), "error: NotFound: run nope not found\n");

    let bad_input = baton(
        &addr,
        &["run", "start", "examples/hello@1", "--input", "count"],
    )
    .await;
    assert_eq!(bad_input.status.code(), Some(2));
    assert!(
        stderr(&bad_input).contains("expected KEY=VALUE"),
        "{}",
        stderr(&bad_input)
    );

    // Nothing listens on a port that was just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let down = baton(&closed, &["run", "get", "x"]).await;
    assert_eq!(down.status.code(), Some(2));
    let err = stderr(&down);
    assert!(err.starts_with("error: Unavailable"), "{err}");
    assert!(
        err.contains(&format!("is the orchestrator running at {closed}?")),
        "{err}"
    );
}
