//! `http` steps end to end: a stack on the backend `BATON_TEST_BACKEND` names, the http-worker
//! in process on the stack's queue, and HTTP servers of the test's own on loopback.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use baton_http_worker::HttpWorkerConfig;
use baton_proto::v1::RunStatus;
use baton_runtime::env::Env;
use baton_testkit::{StackOptions, TestStack, output, status, step};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
struct Seen {
    failing: Arc<AtomicUsize>,
    busy_at: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

/// The API the steps call.
async fn api() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/items/{n}",
            post(
                |Path(n): Path<u32>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    let token = headers
                        .get("x-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    (
                        StatusCode::CREATED,
                        Json(json!({"id": format!("item-{n}"), "got": body, "token": token})),
                    )
                },
            ),
        )
        .route(
            "/echo",
            post(|headers: HeaderMap, Json(body): Json<Value>| async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                Json(json!({"authorization": auth, "body": body}))
            }),
        )
        .route(
            "/failing",
            get(|State(seen): State<Seen>| async move {
                seen.failing.fetch_add(1, Ordering::SeqCst);
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/hop/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    return "arrived".into_response();
                }
                redirect(&format!("/hop/{}", n - 1))
            }),
        )
        .route(
            "/to-metadata",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/big",
            get(|| async {
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024]));
                // Streamed without a length, so only the reading can find it too big.
                axum::body::Body::from_stream(tokio_stream::iter(chunks))
            }),
        )
        .route(
            "/busy",
            get(|State(seen): State<Seen>| async move {
                seen.busy_at.lock().unwrap().push(std::time::Instant::now());
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    "busy",
                )
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// A stack whose `http` steps go to an http-worker in process, with `env` as its settings.
async fn stack_with_worker(env: &[(&str, &str)]) -> (TestStack, CancellationToken) {
    let stack = TestStack::start_with(StackOptions {
        extra_kinds: vec!["http".to_owned()],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let config = HttpWorkerConfig::from_env(&Env::from_pairs(env.iter().copied())).unwrap();
    let stop = CancellationToken::new();
    let (queue, token) = (stack.queue.clone(), stop.clone());
    let metrics = Arc::new(baton_metrics::Metrics::new().unwrap());
    tokio::spawn(async move {
        let listeners = baton_worker::WorkerListeners::default();
        baton_http_worker::serve(queue, config, listeners, metrics, token)
            .await
            .unwrap();
    });
    (stack, stop)
}

/// Registers a one-step workflow calling `input`, runs it, and returns the ended run.
async fn run_one(stack: &TestStack, name: &str, input: Value, retry: &str) -> baton_proto::v1::Run {
    let definition = json!({
        "owner": "t", "name": name, "version": 1,
        "steps": [{"id": "call", "kind": "http", "input": input}],
    });
    let mut definition = definition.to_string();
    if !retry.is_empty() {
        definition = definition.replace("\"kind\":\"http\"", &format!("\"kind\":\"http\",{retry}"));
    }
    stack.register(&definition).await.unwrap();
    let run = stack
        .start_run(&format!("t/{name}@1"), json!({}))
        .await
        .unwrap();
    stack.wait_for_end(&run.id, WAIT).await.unwrap()
}

fn error_of(run: &baton_proto::v1::Run) -> String {
    step(run, "call").error.clone()
}

#[tokio::test]
async fn an_http_step_templated_from_an_earlier_step_feeds_the_next() {
    let (api, _) = api().await;
    let (stack, stop) = stack_with_worker(&[("HTTP_WORKER_ALLOW", "127.0.0.1")]).await;
    let definition = format!(
        "owner: t\nname: mixed\nversion: 1\nsteps:\n\
         - {{id: seed, kind: echo, input: {{name: '{{{{ inputs.name }}}}', n: 7}}}}\n\
         - id: call\n  kind: http\n  needs: [seed]\n  input:\n    method: POST\n    url: 'http://{api}/items/{{{{ steps.seed.output.n }}}}'\n    headers: {{x-token: 'tok-{{{{ inputs.name }}}}'}}\n    body: {{name: '{{{{ steps.seed.output.name }}}}', n: '{{{{ steps.seed.output.n }}}}'}}\n    expect_status: 201\n\
         - {{id: shape, kind: echo, needs: [call], input: {{id: '{{{{ steps.call.output.body.id }}}}', status: '{{{{ steps.call.output.status }}}}'}}}}\n"
    );
    stack.register(&definition).await.unwrap();
    let run = stack
        .start_run("t/mixed@1", json!({"name": "ada"}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{run:?}");
    let call = output(step(&run, "call"));
    assert_eq!(call["status"], 201);
    assert_eq!(
        call["body"],
        json!({"id": "item-7", "got": {"name": "ada", "n": 7}, "token": "tok-ada"})
    );
    assert_eq!(call["headers"]["content-type"], "application/json");
    assert!(call["duration_ms"].is_u64(), "{call}");
    assert_eq!(
        output(step(&run, "shape")),
        json!({"id": "item-7", "status": 201})
    );
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn each_failure_says_what_went_wrong_and_retries_apply() {
    let (api, seen) = api().await;
    let (stack, stop) = stack_with_worker(&[("HTTP_WORKER_ALLOW", "127.0.0.1")]).await;

    let retry = r#""retry":{"max_attempts":2,"initial":"10ms"}"#;
    let run = run_one(
        &stack,
        "failing",
        json!({"url": format!("http://{api}/failing")}),
        retry,
    )
    .await;
    assert_eq!(status(&run), RunStatus::Failed);
    assert!(
        error_of(&run).contains("answered 500 Internal Server Error, expected 2xx"),
        "{}",
        error_of(&run)
    );
    assert_eq!(seen.failing.load(Ordering::SeqCst), 2, "retried once");

    let run = run_one(
        &stack,
        "slow",
        json!({"url": format!("http://{api}/slow"), "timeout": "200ms"}),
        "",
    )
    .await;
    assert!(
        error_of(&run).contains("timed out after 200ms"),
        "{}",
        error_of(&run)
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap();
    drop(closed);
    let run = run_one(
        &stack,
        "refused",
        json!({"url": format!("http://{nobody}/")}),
        "",
    )
    .await;
    assert!(
        error_of(&run).contains("cannot connect"),
        "{}",
        error_of(&run)
    );

    // A 503 with Retry-After: the next attempt waits at least that long, though the step's
    // own backoff is 10 ms.
    let run = run_one(
        &stack,
        "busy",
        json!({"url": format!("http://{api}/busy")}),
        retry,
    )
    .await;
    let busy_at = seen.busy_at.lock().unwrap().clone();
    assert_eq!(busy_at.len(), 2, "retried once");
    let waited = busy_at[1] - busy_at[0];
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(
        error_of(&run).contains("503 Service Unavailable")
            && error_of(&run).contains("Retry-After: 1s"),
        "{}",
        error_of(&run)
    );

    let run = run_one(
        &stack,
        "big",
        json!({"url": format!("http://{api}/big"), "max_response_bytes": 10_000}),
        "",
    )
    .await;
    assert!(
        error_of(&run).contains("over the 10000-byte limit"),
        "{}",
        error_of(&run)
    );
    let run = run_one(
        &stack,
        "big-ok",
        json!({"url": format!("http://{api}/big")}),
        "",
    )
    .await;
    assert_eq!(
        status(&run),
        RunStatus::Completed,
        "64 KiB is under the default limit"
    );

    let run = run_one(
        &stack,
        "bad-input",
        json!({"url": format!("http://{api}/hop/0"), "method": "{{ 'BREW' }}"}),
        r#""retry":{"max_attempts":3,"initial":"10ms"}"#,
    )
    .await;
    assert!(
        error_of(&run).contains("input.method"),
        "{}",
        error_of(&run)
    );
    assert_eq!(step(&run, "call").attempt, 1, "bad input is not retried");
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit_and_judged_each_hop() {
    let (api, _) = api().await;
    let (stack, stop) = stack_with_worker(&[("HTTP_WORKER_ALLOW", "127.0.0.1")]).await;
    let run = run_one(
        &stack,
        "hops",
        json!({"url": format!("http://{api}/hop/3")}),
        "",
    )
    .await;
    assert_eq!(status(&run), RunStatus::Completed, "{run:?}");
    assert_eq!(output(step(&run, "call"))["body"], "arrived");

    let run = run_one(
        &stack,
        "too-many",
        json!({"url": format!("http://{api}/hop/3"), "follow_redirects": 2}),
        "",
    )
    .await;
    assert!(
        error_of(&run).contains("stopped after 2 redirects"),
        "{}",
        error_of(&run)
    );

    let run = run_one(
        &stack,
        "unfollowed",
        json!({"url": format!("http://{api}/hop/1"), "follow_redirects": false, "expect_status": "3xx"}),
        "",
    )
    .await;
    assert_eq!(output(step(&run, "call"))["status"], 302);

    let run = run_one(
        &stack,
        "metadata",
        json!({"url": format!("http://{api}/to-metadata")}),
        "",
    )
    .await;
    assert!(
        error_of(&run).contains("blocked: 169.254.169.254 is a cloud metadata address"),
        "{}",
        error_of(&run)
    );
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn the_guard_refuses_every_spelling_of_a_non_public_address() {
    let (api, _) = api().await;
    let port = api.port();
    // No allow list: loopback is as refused as any private address.
    let (stack, stop) = stack_with_worker(&[]).await;
    for (n, url) in [
        format!("http://127.0.0.1:{port}/hop/0"),
        format!("http://localhost:{port}/hop/0"),
        format!("http://2130706433:{port}/hop/0"),
        format!("http://0x7f.1:{port}/hop/0"),
        format!("http://0177.0.0.1:{port}/hop/0"),
        format!("http://[::1]:{port}/hop/0"),
        format!("http://[::ffff:127.0.0.1]:{port}/hop/0"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let run = run_one(&stack, &format!("blocked-{n}"), json!({ "url": url }), "").await;
        assert_eq!(status(&run), RunStatus::Failed, "{url}");
        let error = error_of(&run);
        assert!(error.starts_with("blocked: "), "{url}: {error}");
        assert!(error.contains("HTTP_WORKER_ALLOW"), "{url}: {error}");
    }
    // A scheme written out is refused at registration, naming the step and field...
    let refused = stack
        .register(
            &json!({"owner": "t", "name": "scheme", "version": 1,
                "steps": [{"id": "call", "kind": "http", "input": {"url": "file:///etc/passwd"}}]})
            .to_string(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("step `call`: input.url: the scheme `file` is not allowed"),
        "{refused:?}"
    );
    // ...and one that arrives through a template, when the step runs.
    let definition = json!({"owner": "t", "name": "scheme-late", "version": 1,
        "steps": [{"id": "call", "kind": "http", "input": {"url": "{{ inputs.url }}"}}]});
    stack.register(&definition.to_string()).await.unwrap();
    let run = stack
        .start_run("t/scheme-late@1", json!({"url": "file:///etc/passwd"}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert!(
        error_of(&run).contains("input.url: the scheme `file` is not allowed"),
        "{}",
        error_of(&run)
    );
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn secrets_reach_the_request_and_nothing_the_run_reports() {
    const SECRET: &str = "tok-5f0e1c9a-do-not-leak";
    let (api, _) = api().await;
    let dir = std::env::temp_dir().join(format!("baton-http-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("API_TOKEN"), format!("{SECRET}\n")).unwrap();
    let dir_text = dir.display().to_string();
    let (stack, stop) = stack_with_worker(&[
        ("HTTP_WORKER_ALLOW", "127.0.0.1"),
        ("HTTP_WORKER_SECRETS_DIR", dir_text.as_str()),
    ])
    .await;
    let definition = format!(
        "owner: t\nname: secret\nversion: 1\nsteps:\n\
         - id: call\n  kind: http\n  input:\n    method: POST\n    url: 'http://{api}/echo'\n    headers: {{authorization: 'Bearer {{{{ secrets.API_TOKEN }}}}'}}\n    body: {{token: '{{{{ secrets.API_TOKEN }}}}', note: '{{{{ inputs.note }}}}'}}\n\
         - {{id: after, kind: echo, needs: [call], input: {{seen: '{{{{ steps.call.output.body }}}}'}}}}\n"
    );
    stack.register(&definition).await.unwrap();
    // A run input that looks like a placeholder asks for nothing.
    let run = stack
        .start_run("t/secret@1", json!({"note": "{{ secrets.API_TOKEN }}"}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{run:?}");
    let echoed = output(step(&run, "call"));
    // The server got the value; the run holds only `***`.
    assert_eq!(echoed["body"]["authorization"], "Bearer ***");
    assert_eq!(echoed["body"]["body"]["token"], "***");
    assert_eq!(echoed["body"]["body"]["note"], "{{ secrets.API_TOKEN }}");
    let state = format!("{run:?}");
    assert!(!state.contains(SECRET), "run state: {state}");
    let events = stack
        .store
        .list_events(run.id.parse().unwrap(), 0, 1_000)
        .await
        .unwrap();
    let events = format!("{events:?}");
    assert!(!events.contains(SECRET), "events: {events}");
    assert!(
        events.contains("***"),
        "the output event holds the redacted echo"
    );

    // An unknown secret fails the step naming it.
    let run = run_one(
        &stack,
        "unknown-secret",
        json!({"url": format!("http://{api}/echo"), "headers": {"x-key": "{{ secrets.NOT_THERE }}"}}),
        "",
    )
    .await;
    assert_eq!(status(&run), RunStatus::Failed);
    assert!(
        error_of(&run).contains("input.headers.x-key: unknown secret `NOT_THERE`"),
        "{}",
        error_of(&run)
    );
    // A secret in a URL that fails is redacted in the error too.
    let run = run_one(
        &stack,
        "secret-in-url",
        json!({"url": format!("http://{api}/status/{{{{ secrets.API_TOKEN }}}}"), "method": "GET"}),
        "",
    )
    .await;
    assert_eq!(status(&run), RunStatus::Failed);
    assert!(!format!("{run:?}").contains(SECRET), "{run:?}");
    assert!(error_of(&run).contains("/status/***"), "{}", error_of(&run));
    stop.cancel();
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Set when the callee's handler is dropped before it answered: hyper drops it when the client
/// closes the connection.
struct Abandoned(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn cancelling_a_run_abandons_its_request_in_flight() {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = Router::new().route(
        "/hang",
        get({
            let (arrived, abandoned) = (arrived.clone(), abandoned.clone());
            move || async move {
                let guard = Abandoned(abandoned);
                arrived.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
                std::mem::forget(guard);
                "too late"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (stack, stop) = stack_with_worker(&[("HTTP_WORKER_ALLOW", "127.0.0.1")]).await;
    let definition = json!({
        "owner": "t", "name": "hang", "version": 1,
        "steps": [{"id": "call", "kind": "http",
                   "input": {"url": format!("http://{addr}/hang"), "timeout": "5m"}}],
    });
    stack.register(&definition.to_string()).await.unwrap();
    let run = stack.start_run("t/hang@1", json!({})).await.unwrap();
    tokio::time::timeout(WAIT, arrived.notified())
        .await
        .expect("the request reached the callee");

    let asked = std::time::Instant::now();
    stack
        .runs()
        .await
        .cancel_run(baton_proto::v1::CancelRunRequest {
            run_id: run.id.clone(),
            reason: "no longer needed".into(),
        })
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Cancelled, "{run:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !abandoned.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker still holds the request 10 s after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the cancel took {:?} to reach the request",
        asked.elapsed()
    );
    stop.cancel();
    stack.stop().await;
}
