//! Heap endpoint tests. jemalloc reads its config once at process start, so
//! the "profiling on" case re-runs this test binary with
//! `_RJEM_MALLOC_CONF=prof:true,...` set (no `unsafe` `malloc_conf` needed).

mod support;

use support::{Server, get};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONF_VAR: &str = "_RJEM_MALLOC_CONF";

fn profiling_requested() -> bool {
    std::env::var(CONF_VAR).is_ok_and(|v| v.contains("prof:true"))
}

#[tokio::test]
async fn heap_answers_501_when_profiling_is_off() {
    if profiling_requested() {
        return;
    }
    let server = Server::start().await;
    let resp = get(server.addr, "/debug/pprof/heap").await;
    assert_eq!(resp.status, 501, "{}", resp.text());
    let text = resp.text();
    assert!(text.contains("heap profiling is not enabled"), "{text}");
    assert!(text.contains("prof:true"), "hint names the setting: {text}");
    server.stop().await;
}

/// Needs jemalloc built with profiling, i.e. the `heap` feature.
#[cfg(feature = "heap")]
mod profiling_on {
    use super::*;
    use pprof::protos::{Message, Profile};
    use support::maybe_gunzip;

    const CHILD_MARKER: &str = "BATON_PPROF_HEAP_CHILD";

    #[test]
    fn heap_profile_with_profiling_on() {
        if std::env::var_os(CHILD_MARKER).is_some() {
            return heap_profile_child();
        }
        let exe = std::env::current_exe().unwrap();
        let output = std::process::Command::new(exe)
            .args([
                "--exact",
                "profiling_on::heap_profile_with_profiling_on",
                "--nocapture",
            ])
            .env(CONF_VAR, "prof:true,prof_active:true,lg_prof_sample:10")
            .env(CHILD_MARKER, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(stdout.contains("1 passed"), "child ran the test: {stdout}");
    }

    fn heap_profile_child() {
        assert!(profiling_requested());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Keep some sampled allocations live while the profile is taken.
            let hoard: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 64 * 1024]).collect();
            let server = Server::start().await;
            let resp = get(server.addr, "/debug/pprof/heap").await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(
                resp.header("content-type"),
                Some("application/octet-stream")
            );
            let profile =
                Profile::decode(maybe_gunzip(&resp.body).as_slice()).expect("valid pprof");
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
}
