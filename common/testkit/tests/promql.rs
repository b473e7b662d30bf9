//! The docs' example PromQL, evaluated by a real Prometheus server (Debian's `prometheus`
//! package, which scripts/deps.sh installs) that scrapes the services while runs go on.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use baton_testkit::TestStack;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const P95_RUN_DURATION: &str = "histogram_quantile(0.95, sum by (le, definition) (rate(orchestration_run_duration_seconds_bucket[5m])))";
const MEAN_STEP_TIME: &str = "rate(orchestration_step_duration_seconds_sum[5m]) / rate(orchestration_step_duration_seconds_count[5m])";
const QUEUED_OVER_5S: &str = "orchestration_step_queue_seconds_count - ignoring(le) orchestration_step_queue_seconds_bucket{le=\"5\"}";

async fn query(addr: SocketAddr, promql: &str) -> Vec<Value> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let request = format!(
        "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let doc: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    doc["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Reads Prometheus' log until it says where it listens, then keeps draining it.
async fn listening_address(log: tokio::process::ChildStderr) -> SocketAddr {
    let mut lines = BufReader::new(log).lines();
    let find = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("msg=\"Listening on\"")
                && let Some(addr) = line.split("address=").nth(1)
            {
                return addr.trim().parse::<SocketAddr>().unwrap();
            }
        }
        panic!("prometheus exited before it listened");
    };
    let addr = tokio::time::timeout(Duration::from_secs(30), find)
        .await
        .expect("prometheus did not say where it listens within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addr
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_promql_evaluates_over_real_series() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("baton-promql-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: baton\n    static_configs:\n      - targets: ['{}', '{}']\n",
        stack.orchestrator_metrics, stack.runner_metrics[0]
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    // Port 0: Prometheus logs the address it was given.
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect(
            "the prometheus server is needed: apt-get install prometheus (scripts/deps.sh does)",
        );
    let web = listening_address(prometheus.stderr.take().unwrap()).await;

    // Runs keep going while Prometheus scrapes, so rates have something to measure.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let results = loop {
        let run = stack
            .start_run("examples/hello@1", json!({"name": "Ada", "count": 2}))
            .await
            .unwrap();
        stack
            .wait_for_end(&run.id, Duration::from_secs(20))
            .await
            .unwrap();
        let results = (
            query(web, P95_RUN_DURATION).await,
            query(web, MEAN_STEP_TIME).await,
            query(web, QUEUED_OVER_5S).await,
        );
        let ready = results.0.iter().any(|s| value(s).is_finite())
            && results.1.iter().any(|s| value(s).is_finite());
        if ready && !results.2.is_empty() {
            break results;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "PromQL never produced values: {results:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (p95, mean, queued) = results;
    let p95 = p95
        .iter()
        .find(|s| s["metric"]["definition"] == "examples/hello@1")
        .expect("p95 for hello");
    // A hello run sleeps 200 ms and retries once after about 100 ms.
    assert!(value(p95) > 0.2 && value(p95) < 60.0, "{p95}");
    assert!(
        mean.iter()
            .filter(|s| value(s).is_finite())
            .all(|s| value(s) >= 0.0 && value(s) < 5.0),
        "{mean:?}"
    );
    assert!(
        queued.iter().all(|s| value(s) == 0.0),
        "no step waited 5 s: {queued:?}"
    );

    let _ = prometheus.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    stack.stop().await;
}
