//! Prometheus metrics after real runs: the orchestrator's and runner's `/metrics` are scraped
//! over HTTP and parsed as the exposition format, and the counts match what the runs did.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use baton_proto::v1::{self, RunStatus};
use baton_testkit::{TestStack, status};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `promtool check metrics` on an exposition: names, types and help text follow Prometheus'
/// conventions. promtool comes with Debian's `prometheus` package (scripts/deps.sh installs it).
fn promtool_check(exposition: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed: apt-get install prometheus (scripts/deps.sh does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics:\n{report}");
}

/// Scrapes `addr`, checks the exposition with promtool and parses it.
async fn scrape(addr: SocketAddr) -> Scrape {
    let body = fetch(addr).await;
    promtool_check(&body);
    parse(&body)
}

/// Scrapes `addr` until `check` accepts what it reads, or panics with its last complaint: the
/// runner records a batch's metrics just after the commit that tests wait for.
async fn scrape_until(addr: SocketAddr, check: impl Fn(&Scrape) -> Result<(), String>) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = fetch(addr).await;
        let scrape = parse(&body);
        match check(&scrape) {
            Ok(()) => {
                promtool_check(&body);
                return scrape;
            }
            Err(complaint) => assert!(
                tokio::time::Instant::now() < deadline,
                "{addr}: {complaint}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The body of `GET /metrics`, after checking the status and content type.
async fn fetch(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

fn find<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn number(sample: Option<&Sample>) -> f64 {
    match sample.map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(Value::Histogram(buckets)) => buckets.last().map_or(0.0, |b| b.count),
        other => panic!("no numeric sample: {other:?}"),
    }
}

/// The value of the first sample of `name` with `labels`, if there is one.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
    match find(scrape, name, labels) {
        Some(sample) => Ok(number(Some(sample))),
        None => Err(format!("no {name}{labels:?}")),
    }
}

/// `Err` saying what differs unless `got` is `want`.
fn expect(what: &str, got: f64, want: f64) -> Result<(), String> {
    match got == want {
        true => Ok(()),
        false => Err(format!("{what}: {got}, expected {want}")),
    }
}

#[tokio::test]
async fn orchestration_and_grpc_metrics_count_real_runs() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    stack
        .register("owner: t\nname: nap\nversion: 1\nsteps:\n  - {id: nap, kind: sleep, input: {duration: 30s}}\n")
        .await
        .unwrap();
    for name in ["Ada", "Bo"] {
        let run = stack
            .start_run("examples/hello@1", json!({"name": name, "count": 2}))
            .await
            .unwrap();
        let run = stack
            .wait_for_end(&run.id, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(status(&run), RunStatus::Completed);
    }
    let nap = stack.start_run("t/nap@1", json!({})).await.unwrap();
    stack
        .wait_for(&nap.id, Duration::from_secs(20), |r| !r.steps.is_empty())
        .await
        .unwrap();
    stack
        .runs()
        .await
        .cancel_run(v1::CancelRunRequest {
            run_id: nap.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();

    let def = ("definition", "examples/hello@1");
    let runner = scrape_until(stack.runner_metrics[0], |runner| {
        let runs = |s: &str| value(runner, "orchestration_runs_total", &[def, ("status", s)]);
        let steps = |step: &str, s: &str| {
            value(
                runner,
                "orchestration_step_duration_seconds_count",
                &[def, ("step", step), ("status", s)],
            )
        };
        expect("runs started", runs("started")?, 2.0)?;
        expect("runs completed", runs("completed")?, 2.0)?;
        // The runner applies the cancel, so it counts the cancelled run.
        let nap = [("definition", "t/nap@1"), ("status", "aborted")];
        expect(
            "runs aborted",
            value(runner, "orchestration_runs_total", &nap)?,
            1.0,
        )?;
        // One failed attempt per run.
        expect("left failed", steps("left", "failed")?, 2.0)?;
        expect("left completed", steps("left", "completed")?, 2.0)?;
        expect("right completed", steps("right", "completed")?, 2.0)?;
        let queued = value(
            runner,
            "orchestration_step_queue_seconds_count",
            &[def, ("step", "greet")],
        )?;
        expect("greet queued", queued, 2.0)?;
        let run_time = value(
            runner,
            "orchestration_run_duration_seconds_count",
            &[def, ("status", "completed")],
        )?;
        expect("run durations", run_time, 2.0)
    })
    .await;
    let right_time = number(find(
        &runner,
        "orchestration_step_duration_seconds_sum",
        &[def, ("step", "right"), ("status", "completed")],
    ));
    assert!(right_time >= 0.4, "two 200 ms sleeps took {right_time} s");
    assert!(
        find(
            &runner,
            "baton_postgres_operation_seconds_count",
            &[("operation", "lock_runs")]
        )
        .is_some()
    );

    let orchestrator = scrape(stack.orchestrator_metrics).await;
    let handled = |method: &str, code: &str| {
        number(find(
            &orchestrator,
            "grpc_server_handled_total",
            &[
                ("grpc_service", "baton.v1.RunService"),
                ("grpc_method", method),
                ("grpc_code", code),
            ],
        ))
    };
    assert_eq!(handled("StartRun", "OK"), 3.0);
    assert_eq!(handled("CancelRun", "OK"), 1.0);
    // Only the runner, the writer of run state, counts runs.
    assert!(
        find(
            &orchestrator,
            "orchestration_runs_total",
            &[("definition", "t/nap@1"), ("status", "aborted")],
        )
        .is_none()
    );
    assert!(
        find(
            &orchestrator,
            "baton_queue_depth",
            &[("queue", "jobs:sleep")]
        )
        .is_some()
    );
    let labels: HashMap<&str, usize> = orchestrator
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("process_"))
        .map(|s| (s.metric.as_str(), 1))
        .collect();
    assert!(
        labels.contains_key("process_resident_memory_bytes"),
        "{labels:?}"
    );
    stack.stop().await;
}
