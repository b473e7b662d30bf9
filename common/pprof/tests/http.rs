//! End-to-end tests of the pprof endpoints over real HTTP on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baton_pprof::{CPU_PROFILE_IDLE, CPU_PROFILE_IN_PROGRESS};
use pprof::protos::{Message, Profile};
use support::{Server, get, maybe_gunzip};

/// CPU profiling is process-wide, so tests that start profiles run one at a time.
static CPU_PROFILE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[inline(never)]
fn baton_pprof_busy_loop(stop: &AtomicBool) -> u64 {
    let mut acc: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..10_000u64 {
            acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    acc
}

/// Runs the busy loop on its own thread until the returned guard is dropped.
struct Busy {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Busy {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("busy-loop".into())
            .spawn(move || baton_pprof_busy_loop(&flag))
            .unwrap();
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_profile_has_samples_and_symbols() {
    let _lock = CPU_PROFILE_LOCK.lock().await;
    let server = Server::start().await;
    let busy = Busy::start();

    let started = Instant::now();
    let resp = get(server.addr, "/debug/pprof/profile?seconds=1").await;
    let elapsed = started.elapsed();
    drop(busy);

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "returned after {elapsed:?}"
    );
    assert!(resp.body.starts_with(&[0x1f, 0x8b]), "body is gzipped");

    let profile = Profile::decode(maybe_gunzip(&resp.body).as_slice()).expect("valid pprof");
    assert!(!profile.sample.is_empty(), "profile has samples");
    assert_eq!(profile.period, 1_000_000_000 / 99, "sampled at 99 Hz");
    assert!(
        profile.duration_nanos >= 1_000_000_000,
        "covers the requested second: {} ns",
        profile.duration_nanos
    );
    assert!(
        profile
            .string_table
            .iter()
            .any(|s| s.contains("baton_pprof_busy_loop")),
        "busy function symbolized; strings: {:?}",
        &profile.string_table[..profile.string_table.len().min(40)]
    );
    // How many samples a loaded machine lets the busy thread earn varies, but
    // the busy thread is the one burning this process's CPU, so most samples
    // must be charged to it.
    let names = |sample: &pprof::protos::Sample| -> Vec<&str> {
        sample
            .location_id
            .iter()
            .filter_map(|id| profile.location.iter().find(|l| l.id == *id))
            .flat_map(|l| &l.line)
            .filter_map(|line| profile.function.iter().find(|f| f.id == line.function_id))
            .map(|f| profile.string_table[f.name as usize].as_str())
            .collect()
    };
    let total: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    let busy: i64 = profile
        .sample
        .iter()
        .filter(|s| names(s).iter().any(|n| n.contains("baton_pprof_busy_loop")))
        .map(|s| s.value[0])
        .sum();
    assert!(
        busy * 2 > total,
        "{busy} of {total} samples in the busy loop"
    );
    // Flat time is charged to the interrupted code, not the profiler's
    // own signal handler / unwinder frames.
    let leaf_names: Vec<&str> = profile
        .sample
        .iter()
        .filter_map(|s| s.location_id.first())
        .filter_map(|id| profile.location.iter().find(|l| l.id == *id))
        .filter_map(|l| l.line.first())
        .filter_map(|line| profile.function.iter().find(|f| f.id == line.function_id))
        .map(|f| profile.string_table[f.name as usize].as_str())
        .collect();
    assert!(!leaf_names.is_empty());
    assert!(
        leaf_names
            .iter()
            .all(|n| !n.contains("perf_signal_handler") && !n.contains("trace_unsynchronized")),
        "profiler frames left at the leaf: {leaf_names:?}"
    );
    let sample_type = &profile.string_table[profile.sample_type[0].ty as usize];
    assert!(!sample_type.is_empty());

    server.stop().await;
}

#[tokio::test]
async fn bad_seconds_are_rejected() {
    let server = Server::start().await;
    for query in ["seconds=0", "seconds=abc", "seconds=301", "seconds=-1"] {
        let resp = get(server.addr, &format!("/debug/pprof/profile?{query}")).await;
        assert_eq!(resp.status, 400, "{query}: {}", resp.text());
        assert!(resp.text().contains("seconds"), "{query}: {}", resp.text());
    }
    server.stop().await;
}

/// Polls the index page until it reports `state` (a CPU profile in progress or
/// idle). Requests are ordered by this state, not by how long they have run.
async fn wait_for_cpu_profile(addr: std::net::SocketAddr, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let index = get(addr, "/debug/pprof/").await;
        if index.text().contains(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "index never reported {state:?}: {}",
            index.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_profiles_get_429_until_the_first_ends() {
    let _lock = CPU_PROFILE_LOCK.lock().await;
    let server = Server::start().await;
    let addr = server.addr;
    wait_for_cpu_profile(addr, CPU_PROFILE_IDLE).await;
    // Long enough that only the client going away can end it within the test.
    let first = tokio::spawn(async move { get(addr, "/debug/pprof/profile?seconds=300").await });
    wait_for_cpu_profile(addr, CPU_PROFILE_IN_PROGRESS).await;

    let second = get(addr, "/debug/pprof/profile?seconds=1").await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert!(second.text().contains("already"), "{}", second.text());

    // A client that gives up releases the slot for the next profile.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    wait_for_cpu_profile(addr, CPU_PROFILE_IDLE).await;
    let third = get(addr, "/debug/pprof/profile?seconds=1").await;
    assert_eq!(third.status, 200, "{}", third.text());
    // ...and a profile that ran to the end releases it too.
    wait_for_cpu_profile(addr, CPU_PROFILE_IDLE).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_aborts_running_profile() {
    let _lock = CPU_PROFILE_LOCK.lock().await;
    let server = Server::start().await;
    let addr = server.addr;
    let req = tokio::spawn(async move { get(addr, "/debug/pprof/profile?seconds=300").await });
    wait_for_cpu_profile(addr, CPU_PROFILE_IN_PROGRESS).await;
    // Without the abort the answer would come after 300 s; nextest would stop
    // the test long before, so a generous bound only gives a clearer failure.
    let stopped = tokio::time::timeout(Duration::from_secs(60), async {
        server.stop().await;
        req.await.unwrap()
    })
    .await;
    let resp = stopped.expect("shutdown did not end the 300 s profile");
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(resp.text().contains("shutting down"), "{}", resp.text());
}

#[tokio::test]
async fn index_lists_endpoints_and_an_idle_profiler() {
    let _lock = CPU_PROFILE_LOCK.lock().await;
    let server = Server::start().await;
    for path in ["/debug/pprof/", "/debug/pprof"] {
        let resp = get(server.addr, path).await;
        assert_eq!(resp.status, 200);
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let text = resp.text();
        for endpoint in ["profile", "heap", "threads", "cmdline"] {
            assert!(
                text.contains(&format!("/debug/pprof/{endpoint}")),
                "{endpoint} missing: {text}"
            );
        }
        assert!(text.contains(CPU_PROFILE_IDLE), "{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn threads_view_lists_threads() {
    let server = Server::start().await;
    let resp = get(server.addr, "/debug/pprof/threads").await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    let count: usize = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("threads: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no thread count: {text}"));
    assert!(count >= 1);
    assert!(
        text.lines().count() > 2,
        "header plus at least one thread: {text}"
    );
    let pid = std::process::id().to_string();
    assert!(
        text.lines()
            .skip(2)
            .any(|l| l.split_whitespace().next() == Some(pid.as_str())),
        "main thread (tid == pid) listed: {text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn cmdline_is_nul_separated_args() {
    let server = Server::start().await;
    let resp = get(server.addr, "/debug/pprof/cmdline").await;
    assert_eq!(resp.status, 200);
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(resp.text(), args.join("\0"));
    server.stop().await;
}
