//! The raw-signal document: `schema_version`, `generated_at`, `clk_tck`, and the sections
//! `stages`, `queue`, `agents` and `cost`.

use std::{collections::BTreeMap, future::Future, sync::Arc};

use baton_queue::QueueAdmin;
use baton_store::Store;
use serde_json::{Value, json};

/// Bumped when a field changes meaning or goes away; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;
/// Linux reports process CPU time in ticks of 1/100 s.
const CLK_TCK: u32 = 100;
/// A worker that has not beaten for this long is not listed.
const WORKER_STALE_MS: i64 = 15_000;
/// Most dead letters read to count them by kind.
const DEAD_LETTERS_SCANNED: usize = 10_000;
const RUN_STATUSES: [&str; 6] = [
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
];
const STEP_STATUSES: [&str; 8] = [
    "pending",
    "queued",
    "running",
    "retrying",
    "completed",
    "failed",
    "skipped",
    "cancelled",
];

/// Where the signal comes from.
#[derive(Clone)]
pub struct SignalSources {
    /// The service's name in `/health`.
    pub service: &'static str,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn QueueAdmin>,
    /// Step kinds whose queues are reported.
    pub kinds: Vec<String>,
}

/// A section, or `{"error": …}` when its source failed.
async fn section<F: Future<Output = Result<Value, String>>>(build: F) -> Value {
    match build.await {
        Ok(value) => value,
        Err(error) => json!({ "error": error }),
    }
}

/// The whole document.
pub async fn raw_signal(sources: &SignalSources) -> Value {
    let (stages, queue, agents) = futures::join!(
        section(stages(sources)),
        section(queue(sources)),
        section(agents(sources))
    );
    json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "service": sources.service,
        "clk_tck": CLK_TCK,
        "stages": stages,
        "queue": queue,
        "agents": agents,
        "cost": cost(),
    })
}

fn filled(known: &[&str], counts: &BTreeMap<String, i64>) -> Value {
    let mut out = serde_json::Map::new();
    for status in known {
        out.insert(
            (*status).to_owned(),
            json!(counts.get(*status).copied().unwrap_or(0)),
        );
    }
    for (status, n) in counts {
        out.entry(status.clone()).or_insert(json!(n));
    }
    Value::Object(out)
}

/// Active runs and their steps by state.
async fn stages(sources: &SignalSources) -> Result<Value, String> {
    let counts = sources
        .store
        .status_counts()
        .await
        .map_err(|e| e.to_string())?;
    let get = |s: &str| counts.runs.get(s).copied().unwrap_or(0);
    Ok(json!({
        "active_runs": { "queued": get("queued"), "running": get("running") },
        "active_steps": filled(&STEP_STATUSES, &counts.active_steps),
    }))
}

/// Queue lengths, retries and dead letters per kind, and run and step counts by status.
async fn queue(sources: &SignalSources) -> Result<Value, String> {
    let stats = sources
        .queue
        .stats(&sources.kinds)
        .await
        .map_err(|e| e.to_string())?;
    let counts = sources
        .store
        .status_counts()
        .await
        .map_err(|e| e.to_string())?;
    let dead = sources
        .queue
        .dead_letters(DEAD_LETTERS_SCANNED)
        .await
        .map_err(|e| e.to_string())?;
    let mut kinds = serde_json::Map::new();
    for kind in &sources.kinds {
        let name = baton_queue::StreamName::jobs(kind.as_str()).to_string();
        let stream = stats.iter().find(|s| s.name == name);
        let dead_here = dead.iter().filter(|d| d.stream == name).count();
        kinds.insert(
            kind.clone(),
            json!({
                "depth": stream.map_or(0, |s| s.length),
                "pending": stream.map_or(0, |s| s.pending),
                "retries": counts.retrying_by_kind.get(kind).copied().unwrap_or(0),
                "dead_letters": dead_here,
            }),
        );
    }
    let inbox = stats.iter().find(|s| s.name == "runner");
    let dead_total = stats
        .iter()
        .find(|s| s.name == "dead")
        .map_or(0, |s| s.length);
    Ok(json!({
        "kinds": kinds,
        "runner_inbox": { "depth": inbox.map_or(0, |s| s.length), "pending": inbox.map_or(0, |s| s.pending) },
        "dead_letters": dead_total,
        "runs": filled(&RUN_STATUSES, &counts.runs),
        "steps": filled(&STEP_STATUSES, &counts.steps),
    }))
}

/// Live workers, with the CPU time of their process where this machine can see it.
async fn agents(sources: &SignalSources) -> Result<Value, String> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let workers = sources
        .queue
        .live_workers(now_ms, WORKER_STALE_MS)
        .await
        .map_err(|e| e.to_string())?;
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok();
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let list: Vec<Value> = workers
        .iter()
        .map(|w| {
            let local = here.as_deref() == Some(w.hostname.as_str());
            json!({
                "id": w.id,
                "worker_id": w.worker_id,
                "kind": w.kind,
                "pid": w.pid,
                "hostname": w.hostname,
                "started_at": at(w.started_at_ms),
                "runtime_seconds": (now_ms - w.started_at_ms).max(0) / 1_000,
                "last_heartbeat": at(w.last_heartbeat_ms),
                "cpu_ticks": if local { cpu_ticks(w.pid) } else { None },
            })
        })
        .collect();
    Ok(json!({ "workers": list }))
}

/// utime + stime of a process from `/proc/<pid>/stat`; `None` where it is absent, dead or not
/// on Linux.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Token and cost totals by model. Only `agent` steps spend tokens; with none run yet, the
/// totals are zero.
fn cost() -> Value {
    json!({ "total_tokens": 0, "total_cost_usd": 0.0, "by_model": {} })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_source_fails_only_its_section() {
        let ok = section(async { Ok(json!({"n": 1})) }).await;
        let failed = section(async { Err("redis is down".to_owned()) }).await;
        assert_eq!(ok, json!({"n": 1}));
        assert_eq!(failed, json!({"error": "redis is down"}));
    }

    /// CPU time of the calling thread in nanoseconds, from the scheduler (not in ticks).
    fn thread_cpu_ns() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        stat.split_whitespace().next().unwrap().parse().unwrap()
    }

    #[test]
    fn cpu_ticks_follow_the_cpu_time_this_process_uses() {
        let pid = std::process::id();
        let started = std::time::Instant::now();
        let before = cpu_ticks(pid).expect("this process");
        let from = thread_cpu_ns();
        let mut x = 0u64;
        while thread_cpu_ns() - from < 300_000_000 {
            for i in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let used = cpu_ticks(pid).unwrap() - before;
        // At least this thread's 300 ms (30 ticks, less rounding); at most every core busy
        // for the whole time.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let most = started.elapsed().as_millis() as u64 / 10 * cores + 2;
        assert!((28..=most).contains(&used), "{used} ticks, at most {most}");
    }

    #[test]
    fn exited_or_missing_processes_have_no_cpu_ticks() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not yet reaped, the child stays a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if stat
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z')
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{stat}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(cpu_ticks(pid), None, "a zombie");
        child.wait().unwrap();
        assert_eq!(cpu_ticks(u32::MAX), None, "no such process");
    }

    #[test]
    fn counts_are_filled_for_every_status() {
        let counts = BTreeMap::from([("running".to_owned(), 2)]);
        let v = filled(&RUN_STATUSES, &counts);
        assert_eq!(v["running"], 2);
        assert_eq!(v["cancelled"], 0);
    }
}
