//! `/debug/pprof/profile`: sampled CPU profiles in pprof format.
//!
//! Mirrors Go's `net/http/pprof` handler: sample for `seconds` (default 30),
//! then answer with a gzipped `perftools.profiles.Profile` protobuf that
//! `go tool pprof` reads directly. The sampler is process-wide (SIGPROF), so
//! only one profile may run at a time; a concurrent request gets `429`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use pprof::protos::Message;
use tokio_util::sync::CancellationToken;

use crate::error::PprofError;

/// Sampling frequency in Hz; 99 (not 100) avoids lock-step with timers.
pub const SAMPLE_FREQUENCY_HZ: i32 = 99;
/// Profile duration when `seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 30;
/// Smallest accepted `seconds`.
pub const MIN_SECONDS: u64 = 1;
/// Largest accepted `seconds`.
pub const MAX_SECONDS: u64 = 300;

/// Libraries whose frames must not be unwound from the signal handler
/// (unwinding through them can deadlock or crash), as pprof-rs recommends.
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// Set while a CPU profile is being collected anywhere in the process.
static PROFILE_RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether a CPU profile is being collected, as the index page reports it.
pub(crate) fn profile_in_progress() -> bool {
    PROFILE_RUNNING.load(Ordering::Acquire)
}

/// Shared handler state: the token that aborts in-flight profiles.
#[derive(Clone)]
pub(crate) struct CpuState {
    shutdown: CancellationToken,
}

impl CpuState {
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown }
    }
}

/// Parses the `seconds` query value, Go-style: absent means the default.
pub(crate) fn parse_seconds(raw: Option<&str>) -> Result<u64, PprofError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_SECONDS);
    };
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (MIN_SECONDS..=MAX_SECONDS).contains(s))
        .ok_or_else(|| PprofError::InvalidSeconds {
            value: raw.to_owned(),
            min: MIN_SECONDS,
            max: MAX_SECONDS,
        })
}

/// Releases the process-wide "profile running" flag when dropped, including
/// when the request is abandoned mid-profile.
struct RunningFlag;

impl RunningFlag {
    fn acquire() -> Result<Self, PprofError> {
        PROFILE_RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Self)
            .map_err(|_| PprofError::ProfileInProgress)
    }
}

impl Drop for RunningFlag {
    fn drop(&mut self) {
        PROFILE_RUNNING.store(false, Ordering::Release);
    }
}

pub(crate) async fn profile(
    State(state): State<CpuState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PprofError> {
    let seconds = parse_seconds(params.get("seconds").map(String::as_str))?;
    let flag = RunningFlag::acquire()?;
    let body = collect(seconds, &state.shutdown).await?;
    drop(flag);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// Samples for `seconds` and returns the gzipped pprof protobuf.
async fn collect(seconds: u64, shutdown: &CancellationToken) -> Result<Vec<u8>, PprofError> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(SAMPLE_FREQUENCY_HZ)
        .blocklist(BLOCKLIST)
        .build()
        .map_err(|e| PprofError::Profiler(e.to_string()))?;
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        () = shutdown.cancelled() => return Err(PprofError::ShuttingDown),
    }
    // Symbolization and compression are CPU-bound; keep them off the runtime.
    tokio::task::spawn_blocking(move || encode(&guard))
        .await
        .map_err(|e| PprofError::Profiler(format!("profile encoder task failed: {e}")))?
}

fn encode(guard: &pprof::ProfilerGuard<'_>) -> Result<Vec<u8>, PprofError> {
    let mut report = guard
        .report()
        .build()
        .map_err(|e| PprofError::Profiler(e.to_string()))?;
    strip_profiler_frames(&mut report);
    let profile = report
        .pprof()
        .map_err(|e| PprofError::Profiler(e.to_string()))?;
    let raw = profile.encode_to_vec();
    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::default());
    gz.write_all(&raw)?;
    Ok(gz.finish()?)
}

/// Drops the profiler's own frames (unwinder, SIGPROF handler, signal
/// trampoline) from the leaf end of every stack, so `flat` time is charged
/// to the interrupted function instead of `backtrace::trace_unsynchronized`.
fn strip_profiler_frames(report: &mut pprof::Report) {
    let data = std::mem::take(&mut report.data);
    for (mut frames, count) in data {
        trim_leaf_frames(&mut frames.frames, |symbol| symbol.name());
        *report.data.entry(frames).or_insert(0) += count;
    }
}

/// Symbol-name fragments of frames that belong to the sampler itself.
const PROFILER_FRAME_MARKERS: &[&str] = &[
    "backtrace::backtrace::",
    "pprof::backtrace::",
    "pprof::profiler::",
    "perf_signal_handler",
    "__restore_rt",
];

/// `stack` is leaf-first; each entry holds the (inlined) symbols of a frame.
/// Removes the run of sampler frames at the leaf end, keeping at least one.
fn trim_leaf_frames<T>(stack: &mut Vec<Vec<T>>, name: impl Fn(&T) -> String) {
    let is_profiler_frame = |frame: &Vec<T>| {
        frame.iter().any(|symbol| {
            let name = name(symbol);
            PROFILER_FRAME_MARKERS.iter().any(|m| name.contains(m))
        })
    };
    let leading = stack.iter().take_while(|f| is_profiler_frame(f)).count();
    if leading < stack.len() {
        stack.drain(..leading);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_profiler_frames() {
        let frame = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut stack = vec![
            frame(&["backtrace::backtrace::trace_unsynchronized"]),
            frame(&["<pprof::backtrace::backtrace_rs::Trace as pprof::backtrace::Trace>::trace"]),
            frame(&["pprof::profiler::perf_signal_handler"]),
            frame(&["__restore_rt"]),
            frame(&["app::busy", "app::inlined"]),
            frame(&["main"]),
        ];
        trim_leaf_frames(&mut stack, Clone::clone);
        assert_eq!(
            stack,
            vec![frame(&["app::busy", "app::inlined"]), frame(&["main"])]
        );

        let untouched = vec![frame(&["app::busy"]), frame(&["main"])];
        let mut stack = untouched.clone();
        trim_leaf_frames(&mut stack, Clone::clone);
        assert_eq!(stack, untouched);
    }

    #[test]
    fn seconds_parsing() {
        assert_eq!(parse_seconds(None).unwrap(), DEFAULT_SECONDS);
        assert_eq!(parse_seconds(Some("1")).unwrap(), 1);
        assert_eq!(parse_seconds(Some("300")).unwrap(), 300);
        for bad in ["0", "301", "abc", "", "-5", "1.5"] {
            let err = parse_seconds(Some(bad)).unwrap_err();
            assert!(matches!(err, PprofError::InvalidSeconds { .. }), "{bad}");
            assert!(err.to_string().contains("seconds"));
        }
    }
}
