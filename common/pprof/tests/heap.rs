//! Heap endpoint tests. jemalloc reads its config once at process start, so
//! each case re-runs this test binary as a child with `_RJEM_MALLOC_CONF` set
//! or removed (no `unsafe` `malloc_conf` needed): the precondition holds by
//! construction whatever the environment of the suite.

mod support;

use support::{Server, get};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONF_VAR: &str = "_RJEM_MALLOC_CONF";
/// Set in the child, which runs the test body instead of spawning again.
const CHILD_MARKER: &str = "BATON_PPROF_HEAP_CHILD";

fn profiling_requested() -> bool {
    std::env::var(CONF_VAR).is_ok_and(|v| v.contains("prof:true"))
}

fn in_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

/// Runs the test `name` of this binary in a child whose jemalloc config is
/// `conf` (`None`: no config at all), and fails unless it ran and passed.
fn run_in_child(name: &str, conf: Option<&str>) {
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new(exe);
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1");
    match conf {
        Some(conf) => command.env(CONF_VAR, conf),
        None => command.env_remove(CONF_VAR),
    };
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "child ran the test: {stdout}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn heap_answers_501_when_profiling_is_off() {
    if !in_child() {
        return run_in_child("heap_answers_501_when_profiling_is_off", None);
    }
    assert!(!profiling_requested());
    runtime().block_on(async {
        let server = Server::start().await;
        let resp = get(server.addr, "/debug/pprof/heap").await;
        assert_eq!(resp.status, 501, "{}", resp.text());
        let text = resp.text();
        assert!(text.contains("heap profiling is not enabled"), "{text}");
        assert!(text.contains("prof:true"), "hint names the setting: {text}");
        server.stop().await;
    });
}

/// Without the `heap` feature there is no profiler to test; the runner lists
/// this as skipped rather than passing it.
#[cfg(not(feature = "heap"))]
#[test]
#[ignore = "needs the `heap` feature (jemalloc built with profiling), on by default"]
fn heap_profile_with_profiling_on() {}

/// Needs jemalloc built with profiling, i.e. the `heap` feature.
#[cfg(feature = "heap")]
#[test]
fn heap_profile_with_profiling_on() {
    use pprof::protos::{Message, Profile};
    use support::maybe_gunzip;

    if !in_child() {
        return run_in_child(
            "heap_profile_with_profiling_on",
            Some("prof:true,prof_active:true,lg_prof_sample:10"),
        );
    }
    assert!(profiling_requested());
    runtime().block_on(async {
        // Keep some sampled allocations live while the profile is taken.
        let hoard: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 64 * 1024]).collect();
        let server = Server::start().await;
        let resp = get(server.addr, "/debug/pprof/heap").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.header("content-type"),
            Some("application/octet-stream")
        );
        let profile = Profile::decode(maybe_gunzip(&resp.body).as_slice()).expect("valid pprof");
        assert!(!profile.sample.is_empty(), "heap profile has samples");
        assert!(
            profile.string_table.iter().any(|s| s == "inuse_space"),
            "{:?}",
            profile.string_table
        );
        let bytes: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
        assert!(bytes >= 1 << 20, "in-use bytes {bytes}");
        std::hint::black_box(&hoard);
        server.stop().await;
    });
}
