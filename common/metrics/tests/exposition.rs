//! Records orchestration and infrastructure metrics, scrapes `/metrics` over real loopback HTTP
//! and checks the parsed exposition.

mod support;

use std::sync::Arc;

use baton_metrics::{DURATION_BUCKETS, Metrics, RunOutcome, serve};
use prometheus_parse::SampleType;
use support::{bucket, has, http_get, parse, raw_series, sample, scalar, types};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const BUILD: &str = "acme/build@3";
const DEPLOY: &str = "acme/deploy@1";

struct Server {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(metrics: Arc<Metrics>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, metrics, shutdown.clone()));
    Server {
        addr,
        shutdown,
        task,
    }
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("server task")
            .expect("server result");
    }
}

fn record(metrics: &Metrics) {
    for _ in 0..4 {
        metrics.run_started(BUILD);
    }
    metrics.run_started(DEPLOY);
    metrics.run_ended(BUILD, RunOutcome::Completed, 1.5);
    metrics.run_ended(BUILD, RunOutcome::Completed, 40.0);
    metrics.run_ended(BUILD, RunOutcome::Failed, 0.002);
    metrics.run_ended(BUILD, RunOutcome::Cancelled, 3.0);
    metrics.run_ended(DEPLOY, RunOutcome::TimedOut, 3600.0);

    metrics.step_ended(BUILD, "compile", true, 0.75);
    metrics.step_ended(BUILD, "compile", true, 0.25);
    metrics.step_ended(BUILD, "test", false, 12.0);

    metrics.step_queued_for(BUILD, "compile", 0.1);
    metrics.step_queued_for(BUILD, "compile", 4.0);
    metrics.step_queued_for(BUILD, "compile", 9.0);

    metrics.set_queue("steps", 12, 3);
    metrics.set_queue("steps", 7, 2);
    metrics.set_queue("runs", 1, 0);
    metrics.set_dead_letters(5);
    metrics.observe_postgres("insert_run", 0.004);
    metrics.observe_redis("xadd", 0.0003);
    metrics.observe_redis("xadd", 0.0007);
}

#[tokio::test]
async fn serves_recorded_metrics_in_text_format() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    record(&metrics);
    let server = start(Arc::clone(&metrics)).await;

    let response = http_get(server.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4")
    );
    let scrape = parse(&response.body);

    // Runs: started and every end status, cancelled and timed out as `aborted`.
    let runs = |definition, status| {
        scalar(sample(
            &scrape,
            "orchestration_runs_total",
            &[("definition", definition), ("status", status)],
        ))
    };
    assert_eq!(runs(BUILD, "started"), 4.0);
    assert_eq!(runs(DEPLOY, "started"), 1.0);
    assert_eq!(runs(BUILD, "completed"), 2.0);
    assert_eq!(runs(BUILD, "failed"), 1.0);
    assert_eq!(runs(BUILD, "aborted"), 1.0);
    assert_eq!(runs(DEPLOY, "aborted"), 1.0);
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.labels.get("status") == Some("cancelled")
                || s.labels.get("status") == Some("timed_out"))
    );

    // Run duration: buckets (p95 by definition), sum and count.
    let completed = [("definition", BUILD), ("status", "completed")];
    let run_buckets = sample(&scrape, "orchestration_run_duration_seconds", &completed);
    assert_eq!(bucket(run_buckets, 1.0), 0.0);
    assert_eq!(bucket(run_buckets, 2.5), 1.0);
    assert_eq!(bucket(run_buckets, 60.0), 2.0);
    assert_eq!(bucket(run_buckets, f64::INFINITY), 2.0);
    for le in DURATION_BUCKETS {
        bucket(run_buckets, *le);
    }
    assert_eq!(
        scalar(sample(
            &scrape,
            "orchestration_run_duration_seconds_sum",
            &completed
        )),
        41.5
    );
    assert_eq!(
        scalar(sample(
            &scrape,
            "orchestration_run_duration_seconds_count",
            &completed
        )),
        2.0
    );
    let deploy_aborted = sample(
        &scrape,
        "orchestration_run_duration_seconds",
        &[("definition", DEPLOY), ("status", "aborted")],
    );
    assert_eq!(bucket(deploy_aborted, 1800.0), 0.0);
    assert_eq!(bucket(deploy_aborted, 3600.0), 1.0);
    let failed = sample(
        &scrape,
        "orchestration_run_duration_seconds",
        &[("definition", BUILD), ("status", "failed")],
    );
    assert_eq!(bucket(failed, 0.001), 0.0);
    assert_eq!(bucket(failed, 0.0025), 1.0);

    // Step duration: mean step time uses _sum / _count.
    let compiled = [
        ("definition", BUILD),
        ("step", "compile"),
        ("status", "completed"),
    ];
    assert_eq!(
        scalar(sample(
            &scrape,
            "orchestration_step_duration_seconds_sum",
            &compiled
        )),
        1.0
    );
    assert_eq!(
        scalar(sample(
            &scrape,
            "orchestration_step_duration_seconds_count",
            &compiled
        )),
        2.0
    );
    let test_failed = [
        ("definition", BUILD),
        ("step", "test"),
        ("status", "failed"),
    ];
    assert_eq!(
        scalar(sample(
            &scrape,
            "orchestration_step_duration_seconds_count",
            &test_failed
        )),
        1.0
    );
    assert_eq!(
        bucket(
            sample(&scrape, "orchestration_step_duration_seconds", &test_failed),
            10.0
        ),
        0.0
    );

    // Queue time: count - bucket{le="5"} = steps that waited over 5 s.
    let queued = [("definition", BUILD), ("step", "compile")];
    let queue_count = scalar(sample(
        &scrape,
        "orchestration_step_queue_seconds_count",
        &queued,
    ));
    let under_5s = bucket(
        sample(&scrape, "orchestration_step_queue_seconds", &queued),
        5.0,
    );
    assert_eq!(queue_count, 3.0);
    assert_eq!(queue_count - under_5s, 1.0);
    assert_eq!(
        scalar(sample(
            &scrape,
            "orchestration_step_queue_seconds_sum",
            &queued
        )),
        13.1
    );

    // Queue gauges keep the latest value.
    assert_eq!(
        scalar(sample(&scrape, "baton_queue_depth", &[("queue", "steps")])),
        7.0
    );
    assert_eq!(
        scalar(sample(
            &scrape,
            "baton_queue_pending",
            &[("queue", "steps")]
        )),
        2.0
    );
    assert_eq!(
        scalar(sample(&scrape, "baton_queue_depth", &[("queue", "runs")])),
        1.0
    );
    assert_eq!(scalar(sample(&scrape, "baton_dead_letters", &[])), 5.0);

    // Store latency.
    let xadd = [("operation", "xadd")];
    assert_eq!(
        scalar(sample(
            &scrape,
            "baton_redis_operation_seconds_count",
            &xadd
        )),
        2.0
    );
    assert_eq!(
        bucket(
            sample(&scrape, "baton_redis_operation_seconds", &xadd),
            0.0005
        ),
        1.0
    );
    assert_eq!(
        scalar(sample(
            &scrape,
            "baton_postgres_operation_seconds_count",
            &[("operation", "insert_run")]
        )),
        1.0
    );

    // Process metrics (Linux only).
    if cfg!(target_os = "linux") {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
            "process_threads",
        ] {
            assert!(has(&scrape, name), "missing {name}");
        }
    }

    // Families are typed as the PromQL in the docs expects.
    let declared = types(&response.body);
    for (name, ty) in [
        ("orchestration_runs_total", SampleType::Counter),
        ("orchestration_run_duration_seconds", SampleType::Histogram),
        ("orchestration_step_duration_seconds", SampleType::Histogram),
        ("orchestration_step_queue_seconds", SampleType::Histogram),
        ("baton_queue_depth", SampleType::Gauge),
        ("baton_queue_pending", SampleType::Gauge),
        ("baton_dead_letters", SampleType::Gauge),
        ("baton_postgres_operation_seconds", SampleType::Histogram),
        ("baton_redis_operation_seconds", SampleType::Histogram),
    ] {
        assert_eq!(declared.get(name), Some(&ty), "type of {name}");
    }

    server.stop().await;
}

#[tokio::test]
async fn raw_series_for_documented_promql_exist() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    record(&metrics);
    let server = start(Arc::clone(&metrics)).await;
    let body = http_get(server.addr, "/metrics").await.body;
    // prometheus-parse folds `_bucket` lines into one histogram sample, so look at the raw
    // series the PromQL selects.
    let series = raw_series(&body);
    let find = |name: &str, labels: &[(&str, &str)]| {
        series
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
            .value
    };
    // histogram_quantile(0.95, sum by (le, definition) (rate(..._bucket[5m])))
    let inf = find(
        "orchestration_run_duration_seconds_bucket",
        &[
            ("definition", BUILD),
            ("status", "completed"),
            ("le", "+Inf"),
        ],
    );
    assert_eq!(inf, 2.0);
    let buckets = series
        .iter()
        .filter(|s| {
            s.name == "orchestration_run_duration_seconds_bucket"
                && s.labels.get("definition").map(String::as_str) == Some(BUILD)
                && s.labels.get("status").map(String::as_str) == Some("completed")
        })
        .count();
    assert_eq!(buckets, DURATION_BUCKETS.len() + 1);
    // rate(..._sum[5m]) / rate(..._count[5m])
    let step = [
        ("definition", BUILD),
        ("step", "compile"),
        ("status", "completed"),
    ];
    assert_eq!(find("orchestration_step_duration_seconds_sum", &step), 1.0);
    assert_eq!(
        find("orchestration_step_duration_seconds_count", &step),
        2.0
    );
    // ..._count - ..._bucket{le="5"}
    let count = find(
        "orchestration_step_queue_seconds_count",
        &[("definition", BUILD), ("step", "compile")],
    );
    let le5 = find(
        "orchestration_step_queue_seconds_bucket",
        &[("definition", BUILD), ("step", "compile"), ("le", "5")],
    );
    assert_eq!(count - le5, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let server = start(metrics).await;
    assert_eq!(http_get(server.addr, "/").await.status, 404);
    assert_eq!(http_get(server.addr, "/metrics/extra").await.status, 404);
    assert_eq!(http_get(server.addr, "/health").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn scrapes_see_new_values_and_shutdown_stops_the_server() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let server = start(Arc::clone(&metrics)).await;
    let before = parse(&http_get(server.addr, "/metrics").await.body);
    assert!(!has(&before, "orchestration_runs_total"));
    metrics.run_started(BUILD);
    let after = parse(&http_get(server.addr, "/metrics").await.body);
    assert_eq!(
        scalar(sample(
            &after,
            "orchestration_runs_total",
            &[("definition", BUILD), ("status", "started")]
        )),
        1.0
    );
    let addr = server.addr;
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn two_registries_are_independent() {
    let a = Metrics::new().expect("first");
    let b = Metrics::new().expect("second");
    a.run_started(BUILD);
    a.run_started(BUILD);
    b.run_started(DEPLOY);
    let started = |metrics: &Metrics, definition| {
        parse(&metrics.encode())
            .samples
            .into_iter()
            .find(|s| {
                s.metric == "orchestration_runs_total"
                    && s.labels.get("definition") == Some(definition)
                    && s.labels.get("status") == Some("started")
            })
            .map(|s| scalar(&s))
    };
    assert_eq!(started(&a, BUILD), Some(2.0));
    assert_eq!(started(&a, DEPLOY), None);
    assert_eq!(started(&b, DEPLOY), Some(1.0));
    assert_eq!(started(&b, BUILD), None);

    // A service's own metric lands in its registry only.
    let own = prometheus::IntCounter::new("service_own_total", "help").expect("counter");
    a.registry()
        .register(Box::new(own.clone()))
        .expect("register on a");
    own.inc();
    assert!(a.encode().contains("service_own_total 1"));
    assert!(!b.encode().contains("service_own_total"));
}
