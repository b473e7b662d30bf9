//! `/debug/pprof/threads` and `/debug/pprof/cmdline`: process introspection.
//!
//! Rust has no goroutine dump; the closest useful view is the OS thread list
//! from `/proc/self/task/*/stat` (name, state and CPU time per thread), which
//! shows stuck or spinning runtime/blocking threads at a glance.

use std::fmt::Write as _;

use axum::http::header;
use axum::response::IntoResponse;

use crate::error::PprofError;

/// One line of `/proc/<pid>/task/<tid>/stat`, reduced to what we show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThreadStat {
    pub tid: u32,
    pub name: String,
    pub state: char,
    /// utime + stime, in clock ticks (USER_HZ, normally 100 per second).
    pub cpu_ticks: u64,
}

/// Parses a `stat` line: `tid (comm) state ppid ... utime stime ...`.
/// `comm` may contain spaces and parentheses, so split at the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<ThreadStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let tid = line.get(..open)?.trim().parse().ok()?;
    let name = line.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime/stime are fields 14/15.
    let state = rest.first()?.chars().next()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(ThreadStat {
        tid,
        name,
        state,
        cpu_ticks: utime + stime,
    })
}

/// Reads every thread of this process; threads that exit mid-scan are skipped.
pub(crate) fn read_threads() -> Result<Vec<ThreadStat>, PprofError> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Ok(entry) = entry else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(parsed) = parse_stat(stat.trim_end()) {
            threads.push(parsed);
        }
    }
    threads.sort_by_key(|t| t.tid);
    Ok(threads)
}

pub(crate) fn render_threads(threads: &[ThreadStat]) -> String {
    let mut out = format!(
        "threads: {}\n{:>8} {:<5} {:>10}  name\n",
        threads.len(),
        "tid",
        "state",
        "cpu_ticks"
    );
    for t in threads {
        let _ = writeln!(
            out,
            "{:>8} {:<5} {:>10}  {}",
            t.tid, t.state, t.cpu_ticks, t.name
        );
    }
    out
}

pub(crate) async fn threads() -> Result<impl IntoResponse, PprofError> {
    let threads = tokio::task::spawn_blocking(read_threads)
        .await
        .map_err(|e| PprofError::Profiler(format!("thread scan task failed: {e}")))??;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        render_threads(&threads),
    ))
}

/// Like Go's handler: the arguments joined by NUL bytes.
pub(crate) async fn cmdline() -> impl IntoResponse {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        args.join("\0"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_name() {
        let line =
            "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194368 10 0 0 0 7 5 0 0 20 0 8 0 100 0 0";
        let t = parse_stat(line).unwrap();
        assert_eq!(t.tid, 4242);
        assert_eq!(t.name, "tokio (rt) 1");
        assert_eq!(t.state, 'S');
        assert_eq!(t.cpu_ticks, 12);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_stat("nonsense"), None);
        assert_eq!(parse_stat("12 (x) R 1 2"), None);
    }

    #[test]
    fn reads_own_threads() {
        let threads = read_threads().unwrap();
        let pid = std::process::id();
        assert!(
            threads.iter().any(|t| t.tid == pid),
            "main thread (tid == pid) listed: {threads:?}"
        );
        let text = render_threads(&threads);
        assert!(
            text.starts_with(&format!("threads: {}\n", threads.len())),
            "{text}"
        );
        for thread in &threads {
            let tid = thread.tid.to_string();
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().next() == Some(tid.as_str())),
                "{tid} missing: {text}"
            );
        }
    }
}
