//! `AdminService` through a real gRPC client against an in-process Baton: dead letters are
//! listed in pages with their payloads decoded, read one by one, and replayed onto the stream
//! they came from, where the runner applies them; unknown ids, bad requests and a queue that is
//! down answer with the code and a message that says what to do.

use std::{process::Stdio, sync::Arc, time::Duration};

use baton_proto::v1::{self, RunStatus, admin_service_client::AdminServiceClient};
use baton_queue::{BatchOutcome, Queue, RedisQueue, RedisQueueConfig};
use baton_testkit::{BackendKind, StackOptions, TestStack, status};
use prost::Message as _;
use serde_json::Value;
use tonic::{Code, transport::Channel};

const WAIT: Duration = Duration::from_secs(30);

const ECHO: &str =
    "owner: t\nname: echo\nversion: 1\nsteps:\n  - {id: say, kind: echo, input: {n: 1}}\n";

/// A stack without runners (so an inbox message stays where a test puts it) whose runners, once
/// started, never sweep up a queued run on their own: only a replayed start message starts it.
async fn stack_without_runners() -> TestStack {
    TestStack::start_with(
        StackOptions {
            runners: 0,
            ..Default::default()
        }
        .runner_env("BATON_SWEEP_GRACE", "1h"),
    )
    .await
    .unwrap()
}

async fn admin(stack: &TestStack) -> AdminServiceClient<baton_testkit::Authed> {
    AdminServiceClient::new(stack.authed().await)
}

/// Starts a run and moves its start message from the runner inbox to the dead letters, as the
/// runner does with a message it cannot apply.
async fn dead_start(stack: &TestStack, queue: &dyn Queue) -> v1::Run {
    let run = stack
        .start_run("t/echo@1", serde_json::json!({}))
        .await
        .unwrap();
    let taken = queue
        .read_runner("test-runner", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the run's start message");
    queue
        .dead_letter_runner(v1::DeadLetter {
            stream: "runner".into(),
            entry_id: taken[0].id.clone(),
            reason: "delivered 6 times (more than BATON_MAX_DELIVERIES, 5)".into(),
            payload: taken[0].payload.clone(),
            dead_at: Some(baton_proto::timestamp_from_micros(1_700_000_000_000_000)),
        })
        .await
        .unwrap();
    run
}

#[tokio::test]
async fn dead_letters_are_listed_read_and_replayed_through_the_api() {
    let mut stack = stack_without_runners().await;
    stack.register(ECHO).await.unwrap();
    let queue = stack.queue.clone();
    let run = dead_start(&stack, queue.as_ref()).await;
    let job = v1::Job {
        run_id: run.id.clone(),
        step_id: "say".into(),
        kind: "echo".into(),
        attempt: 1,
        input_json: r#"{"n":1}"#.into(),
        ..Default::default()
    };
    queue
        .complete_batch(BatchOutcome {
            dead_letters: vec![
                v1::DeadLetter {
                    stream: "jobs:echo".into(),
                    reason: "no handler".into(),
                    payload: job.encode_to_vec(),
                    ..Default::default()
                },
                v1::DeadLetter {
                    stream: "jobs:echo".into(),
                    reason: "step `say` failed on its last attempt (1): boom".into(),
                    payload: v1::JobResult {
                        run_id: run.id.clone(),
                        step_id: "say".into(),
                        attempt: 1,
                        outcome: v1::JobOutcome::Failed as i32,
                        error: "boom".into(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                    ..Default::default()
                },
                v1::DeadLetter {
                    stream: "events".into(),
                    reason: "not a work stream".into(),
                    payload: vec![1, 2, 3],
                    ..Default::default()
                },
            ],
            ..BatchOutcome::default()
        })
        .await
        .unwrap();
    let mut client = admin(&stack).await;

    // Pages of two, oldest first.
    let first = client
        .list_dead_letters(v1::ListDeadLettersRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.dead_letters.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let rest = client
        .list_dead_letters(v1::ListDeadLettersRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.dead_letters.len(), 2);
    assert!(rest.next_page_token.is_empty(), "the last page");
    let all = client
        .list_dead_letters(v1::ListDeadLettersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.dead_letters.len(), 4);
    assert!(all.next_page_token.is_empty());

    let start = &first.dead_letters[0];
    assert_eq!(start.stream, "runner");
    assert!(!start.entry_id.is_empty());
    assert!(start.reason.contains("BATON_MAX_DELIVERIES"));
    assert_eq!(
        start.dead_at,
        Some(baton_proto::timestamp_from_micros(1_700_000_000_000_000))
    );
    assert_eq!(start.payload_type, "baton.v1.RunnerMessage");
    let decoded: Value = serde_json::from_str(&start.payload_json).unwrap();
    assert_eq!(decoded["start_run"]["run_id"], run.id.as_str(), "{decoded}");
    let v1::RunnerMessage {
        message: Some(v1::runner_message::Message::StartRun(command)),
    } = v1::RunnerMessage::decode(start.payload.as_slice()).unwrap()
    else {
        panic!("the raw payload is the start message")
    };
    assert_eq!(command.run_id, run.id);

    let job_letter = &first.dead_letters[1];
    assert_eq!(job_letter.stream, "jobs:echo");
    assert_eq!(job_letter.payload_type, "baton.v1.Job");
    let decoded: Value = serde_json::from_str(&job_letter.payload_json).unwrap();
    assert_eq!(decoded["step_id"], "say");
    assert_eq!(decoded["input_json"], r#"{"n":1}"#);
    let result = &rest.dead_letters[0];
    assert_eq!(result.payload_type, "baton.v1.JobResult");
    let decoded: Value = serde_json::from_str(&result.payload_json).unwrap();
    assert_eq!(decoded["outcome"], "JOB_OUTCOME_FAILED");
    let odd = &rest.dead_letters[1];
    assert_eq!(
        (odd.payload_type.as_str(), odd.payload_json.as_str()),
        ("", "")
    );
    assert_eq!(odd.payload, [1, 2, 3]);

    let got = client
        .get_dead_letter(v1::GetDeadLetterRequest {
            id: start.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letter
        .unwrap();
    assert_eq!(&got, start);

    // The run waits: its start message is a dead letter, and nothing else starts it.
    let runner = tokio_util::sync::CancellationToken::new();
    stack
        .spawn_runner("runner-0", runner.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&stack.get_run(&run.id).await.unwrap()),
        RunStatus::Queued
    );

    let replayed = client
        .replay_dead_letter(v1::ReplayDeadLetterRequest {
            id: start.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.stream, "runner");
    assert!(!replayed.entry_id.is_empty());
    assert_eq!(replayed.dead_letter.as_ref(), Some(start));
    let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&ended), RunStatus::Completed, "{ended:?}");

    // Replayed once: the letter is gone.
    for code in [
        client
            .replay_dead_letter(v1::ReplayDeadLetterRequest {
                id: start.id.clone(),
            })
            .await
            .unwrap_err(),
        client
            .get_dead_letter(v1::GetDeadLetterRequest {
                id: start.id.clone(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(code.code(), Code::NotFound, "{code:?}");
        assert!(code.message().contains(&start.id), "{}", code.message());
    }
    let unreplayable = client
        .replay_dead_letter(v1::ReplayDeadLetterRequest { id: odd.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(unreplayable.code(), Code::FailedPrecondition);
    assert!(
        unreplayable.message().contains("`events`"),
        "{}",
        unreplayable.message()
    );
    let over = client
        .replay_dead_letter(v1::ReplayDeadLetterRequest {
            id: result.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition);
    assert!(
        over.message().contains("last failed attempt"),
        "{}",
        over.message()
    );
    let left = client
        .list_dead_letters(v1::ListDeadLettersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = left.dead_letters.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        [job_letter.id.as_str(), result.id.as_str(), odd.id.as_str()]
    );
    runner.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn bad_requests_and_unknown_ids_are_refused_with_what_to_do() {
    let stack = stack_without_runners().await;
    let mut client = admin(&stack).await;
    let unknown = client
        .get_dead_letter(v1::GetDeadLetterRequest {
            id: "1700000000000-0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown
            .message()
            .contains("dead letter 1700000000000-0 does not exist"),
        "{}",
        unknown.message()
    );
    let nonsense = client
        .replay_dead_letter(v1::ReplayDeadLetterRequest {
            id: "not-an-id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(nonsense.code(), Code::NotFound);
    for missing in [
        client
            .get_dead_letter(v1::GetDeadLetterRequest::default())
            .await
            .unwrap_err(),
        client
            .replay_dead_letter(v1::ReplayDeadLetterRequest { id: " ".into() })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(missing.code(), Code::InvalidArgument);
        assert!(missing.message().starts_with("id: required"), "{missing:?}");
    }
    let negative = client
        .list_dead_letters(v1::ListDeadLettersRequest {
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    assert!(negative.message().starts_with("page_size"), "{negative:?}");
    let empty = client
        .list_dead_letters(v1::ListDeadLettersRequest {
            page_size: 5000,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.dead_letters.is_empty() && empty.next_page_token.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_admin_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let stack = stack_without_runners().await;
    let requests = vec![
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("baton.v1.AdminService".into()),
    ]
    .into_iter()
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    })
    .collect::<Vec<_>>();
    let mut replies = ServerReflectionClient::new(stack.authed().await)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        services.iter().any(|s| s == "baton.v1.AdminService"),
        "{services:?}"
    );
    let Some(MessageResponse::FileDescriptorResponse(found)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no descriptor for AdminService")
    };
    let methods: Vec<String> = found
        .file_descriptor_proto
        .iter()
        .map(|b| baton_proto::prost_types::FileDescriptorProto::decode(b.as_slice()).unwrap())
        .flat_map(|f| f.service)
        .filter(|s| s.name() == "AdminService")
        .flat_map(|s| s.method)
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(
        methods,
        ["ListDeadLetters", "GetDeadLetter", "ReplayDeadLetter"]
    );
    stack.stop().await;
}

/// A Redis server of this test's own on a Unix socket, so it can be stopped under the API.
async fn own_redis(socket: &std::path::Path) -> tokio::process::Child {
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(socket)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server on PATH (make deps installs it)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::UnixStream::connect(socket).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

#[tokio::test]
async fn a_queue_that_is_down_is_unavailable_without_its_detail() {
    let stack = stack_without_runners().await;
    if stack.kind != BackendKind::Production {
        // The embedded queue is the file the store is in: it is never down on its own.
        stack.stop().await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("baton-admin-redis-{}", stack.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let mut redis = own_redis(&socket).await;
    let queue = RedisQueue::connect(RedisQueueConfig::new(
        format!("redis+unix://{}", socket.display()),
        &stack.prefix,
    ))
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config =
        baton_orchestrator::OrchestratorConfig::from_env(&baton_runtime::env::Env::from_pairs([]))
            .unwrap();
    config.database_url = stack.database_url.clone();
    config.redis_prefix = stack.prefix.clone();
    let token = tokio_util::sync::CancellationToken::new();
    let (store, served_token) = (stack.store.clone(), token.clone());
    tokio::spawn(async move {
        let listeners = baton_orchestrator::Listeners {
            grpc: listener,
            http: None,
            metrics: None,
        };
        let metrics = Arc::new(baton_metrics::Metrics::new().unwrap());
        let _ = baton_orchestrator::serve(
            store,
            Arc::new(queue),
            config,
            listeners,
            metrics,
            served_token,
        )
        .await;
    });
    baton_testkit::wait_until_serving(addr, "", WAIT)
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = AdminServiceClient::new(baton_testkit::authed(channel, stack.token()));
    client
        .list_dead_letters(v1::ListDeadLettersRequest::default())
        .await
        .expect("answers while the queue is up");

    redis.kill().await.unwrap();
    let calls = [
        client
            .list_dead_letters(v1::ListDeadLettersRequest::default())
            .await
            .unwrap_err(),
        client
            .get_dead_letter(v1::GetDeadLetterRequest { id: "1-0".into() })
            .await
            .unwrap_err(),
        client
            .replay_dead_letter(v1::ReplayDeadLetterRequest { id: "1-0".into() })
            .await
            .unwrap_err(),
    ];
    for status in calls {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "the queue is unavailable; try again");
    }
    token.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    stack.stop().await;
}
