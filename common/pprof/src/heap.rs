//! `/debug/pprof/heap`: jemalloc heap profiles in pprof format.
//!
//! Baton services allocate through jemalloc (`tikv-jemallocator`), whose
//! sampling heap profiler can be dumped and converted to pprof by
//! `jemalloc_pprof`. This needs jemalloc built with profiling support (the
//! `heap` cargo feature) *and* profiling switched on when the process starts
//! (`prof:true` in jemalloc's config); otherwise the endpoint answers `501`
//! explaining what is missing. The profile is not symbolized here:
//! `go tool pprof` symbolizes it against the service binary.

use axum::response::Response;

use crate::error::PprofError;

/// How to switch heap profiling on at process start, without code changes.
pub const HEAP_PROFILING_HINT: &str = "start the process with \
     _RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19 \
     (jemalloc must be the global allocator, built with its `profiling` feature)";

#[cfg(feature = "heap")]
pub(crate) async fn heap() -> Result<Response, PprofError> {
    use axum::http::header;
    use axum::response::IntoResponse;

    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return Err(PprofError::HeapProfilingDisabled(format!(
            "jemalloc heap profiling is off (opt.prof=false); {HEAP_PROFILING_HINT}"
        )));
    };
    let mut ctl = ctl.clone().lock_owned().await;
    if !ctl.activated() {
        return Err(PprofError::HeapProfilingDisabled(format!(
            "jemalloc heap profiling is inactive (prof_active=false); {HEAP_PROFILING_HINT}"
        )));
    }
    // Dumping writes and parses a temporary file: blocking work.
    let body = tokio::task::spawn_blocking(move || ctl.dump_pprof())
        .await
        .map_err(|e| PprofError::Profiler(format!("heap dump task failed: {e}")))?
        .map_err(|e| PprofError::Profiler(format!("jemalloc heap dump failed: {e:#}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"heap\""),
        ],
        body,
    )
        .into_response())
}

#[cfg(not(feature = "heap"))]
pub(crate) async fn heap() -> Result<Response, PprofError> {
    Err(PprofError::HeapProfilingDisabled(format!(
        "this build has no heap profiling (it costs latency even when idle); build the service with `--features heap-profiling` (as `make dev` does) and {HEAP_PROFILING_HINT}"
    )))
}
