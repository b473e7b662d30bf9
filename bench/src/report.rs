//! The results of a bench run and their presentation: an aligned text report with each figure's
//! unit and, where Baton has a target, the target and a ✓/✗ mark; and the same figures as JSON
//! for tracking over time.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::db::Dispatch;
use crate::machine::Machine;
use crate::stats::{Summary, json_or_null};
use crate::{latency, throughput};

/// Steps per second the chain throughput should reach.
const TARGET_CHAIN_STEPS_PER_S: f64 = 10_000.0;
/// Dispatch delay targets, ms.
const TARGET_DISPATCH_P50_MS: f64 = 1.0;
const TARGET_DISPATCH_P99_MS: f64 = 5.0;
/// Lone 10-step chain p50 target, ms.
const TARGET_LONE_P50_MS: f64 = 15.0;
/// Resident memory limit per service, MB (10^6 bytes).
const TARGET_RSS_MB: f64 = 100.0;

pub struct ServiceInfo {
    pub name: String,
    pub pid: u32,
    /// `version (git revision)` from GetInfo, when the service has InfoService.
    pub build: Option<String>,
}

/// Dispatch delays summarised.
pub struct DispatchSummary {
    pub enqueue_to_start: Option<Summary>,
    pub end_to_next_start: Option<Summary>,
}

impl DispatchSummary {
    pub fn of(d: &Dispatch) -> Self {
        Self {
            enqueue_to_start: Summary::of(&d.enqueue_to_start),
            end_to_next_start: Summary::of(&d.end_to_next_start),
        }
    }
    fn to_json(&self) -> Value {
        json!({
            "enqueue_to_start_ms": json_or_null(self.enqueue_to_start.as_ref()),
            "step_end_to_dependent_start_ms": json_or_null(self.end_to_next_start.as_ref()),
        })
    }
}

/// One memory figure per service (orchestrator, workflow-runner), in kB.
pub struct MemoryRow {
    pub phase: String,
    /// Whether the target applies (peaks; not idle figures).
    pub peak: bool,
    pub kb: Vec<Option<u64>>,
}

pub struct Results {
    pub machine: Machine,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub database: String,
    pub redis_prefix: String,
    pub postgres_version: String,
    pub redis_version: String,
    pub services: Vec<ServiceInfo>,
    pub chain: Option<throughput::Outcome>,
    pub chain_dispatch: Option<DispatchSummary>,
    pub fanout: Option<throughput::Outcome>,
    pub lone: Option<latency::Outcome>,
    pub lone_dispatch: Option<DispatchSummary>,
    pub memory_sample_ms: u64,
    pub memory: Vec<MemoryRow>,
}

/// A figure checked against a target.
struct Check {
    name: String,
    value: f64,
    unit: &'static str,
    target: String,
    ok: bool,
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// Thousands separators for large figures, fewer decimals as figures grow.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() >= 1_000.0 {
        let digits = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

const LABEL: usize = 50;

/// Text of the report, rows aligned in columns.
struct Text {
    out: String,
}

impl Text {
    fn heading(&mut self, title: &str) {
        let _ = writeln!(self.out, "\n{title}");
    }
    fn info(&mut self, label: &str, value: &str) {
        let _ = writeln!(self.out, "  {label:<12}{value}");
    }
    fn row(&mut self, label: &str, value: f64, unit: &str) {
        let _ = writeln!(self.out, "  {label:<LABEL$}{:>10} {unit}", num(value));
    }
    fn checked(&mut self, label: &str, value: f64, unit: &str, target: &str, ok: bool) {
        let _ = writeln!(
            self.out,
            "  {label:<LABEL$}{:>10} {unit:<8} target {target:<14}{}",
            num(value),
            mark(ok)
        );
    }
}

impl Results {
    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        if let Some(c) = &self.chain {
            let v = c.steps_per_s();
            checks.push(Check {
                name: "chain throughput".into(),
                value: v,
                unit: "steps/s",
                target: format!("≥ {}", num(TARGET_CHAIN_STEPS_PER_S)),
                ok: v >= TARGET_CHAIN_STEPS_PER_S,
            });
        }
        for (which, d) in [
            ("loaded", &self.chain_dispatch),
            ("lone", &self.lone_dispatch),
        ] {
            let Some(d) = d else { continue };
            for (what, s) in [
                ("enqueued → started", &d.enqueue_to_start),
                ("step end → dependent start", &d.end_to_next_start),
            ] {
                let Some(s) = s else { continue };
                for (p, v, t) in [
                    ("p50", s.p50, TARGET_DISPATCH_P50_MS),
                    ("p99", s.p99, TARGET_DISPATCH_P99_MS),
                ] {
                    checks.push(Check {
                        name: format!("dispatch {what}, {which}, {p}"),
                        value: v,
                        unit: "ms",
                        target: format!("≤ {t} ms"),
                        ok: v <= t,
                    });
                }
            }
        }
        if let Some(l) = &self.lone {
            checks.push(Check {
                name: "lone 10-step chain p50".into(),
                value: l.latency_ms.p50,
                unit: "ms",
                target: format!("≤ {TARGET_LONE_P50_MS} ms"),
                ok: l.latency_ms.p50 <= TARGET_LONE_P50_MS,
            });
        }
        for row in self.memory.iter().filter(|r| r.peak) {
            for (service, kb) in self.services.iter().zip(&row.kb) {
                let Some(kb) = kb else { continue };
                checks.push(Check {
                    name: format!("{} RSS, {}", service.name, row.phase),
                    value: mb(*kb),
                    unit: "MB",
                    target: format!("< {TARGET_RSS_MB} MB"),
                    ok: mb(*kb) < TARGET_RSS_MB,
                });
            }
        }
        checks
    }

    pub fn text(&self) -> String {
        let mut t = Text { out: String::new() };
        let _ = writeln!(t.out, "Baton benchmark");
        t.info("machine", &self.machine.describe());
        for s in &self.services {
            let build = s
                .build
                .as_deref()
                .map(|b| format!(" {b}"))
                .unwrap_or_default();
            t.info("service", &format!("{}{build}, pid {}", s.name, s.pid));
        }
        t.info("binaries", &self.bin_dir.display().to_string());
        t.info(
            "backends",
            &format!(
                "PostgreSQL {}, Redis {}",
                self.postgres_version, self.redis_version
            ),
        );
        t.info(
            "scratch",
            &format!(
                "database {}, Redis prefix {}",
                self.database, self.redis_prefix
            ),
        );
        t.info("logs", &self.log_dir.display().to_string());

        if let Some(c) = &self.chain {
            self.throughput(&mut t, "Chain throughput", "step noop chain", c, true);
        }
        if let Some(f) = &self.fanout {
            self.throughput(
                &mut t,
                "Fan-out throughput",
                "step fan-out/fan-in",
                f,
                false,
            );
        }
        if let Some(l) = &self.lone {
            t.heading(&format!(
                "Lone chain latency: {} runs of a {}-step noop chain one at a time, after {} warm-up \
                 runs\n  (client: StartRun sent → the run's end event received on WatchRun)",
                l.runs, l.steps_per_run, l.warmup
            ));
            let s = &l.latency_ms;
            t.checked(
                "p50",
                s.p50,
                "ms",
                &format!("≤ {TARGET_LONE_P50_MS} ms"),
                s.p50 <= TARGET_LONE_P50_MS,
            );
            t.row("p90", s.p90, "ms");
            t.row("p99", s.p99, "ms");
            t.row("max", s.max, "ms");
            t.row("mean", s.mean, "ms");
            if let Some(s) = &l.start_rpc_ms {
                t.row("of which StartRun call, p50", s.p50, "ms");
            }
            if let Some(s) = &l.delivery_ms {
                t.row("end event time → received on WatchRun, p50", s.p50, "ms");
                t.row("end event time → received on WatchRun, p99", s.p99, "ms");
            }
            if let Some(s) = &l.server_end_ms {
                t.row("server side: created_at → ended_at, p50", s.p50, "ms");
                t.row("server side: created_at → ended_at, p99", s.p99, "ms");
            }
            if let Some(s) = &l.server_start_ms {
                t.row("server side: created_at → started_at, p50", s.p50, "ms");
            }
        }
        if self.chain_dispatch.is_some() || self.lone_dispatch.is_some() {
            t.heading("Dispatch latency of the chain steps, from step_runs timestamps");
            for (which, d) in [
                ("loaded (chain throughput runs)", &self.chain_dispatch),
                ("lone (latency runs)", &self.lone_dispatch),
            ] {
                let Some(d) = d else { continue };
                for (what, s) in [
                    ("job enqueued → started", &d.enqueue_to_start),
                    ("step end → dependent start", &d.end_to_next_start),
                ] {
                    let Some(s) = s else {
                        let _ = writeln!(t.out, "  {what}, {which}: no samples");
                        continue;
                    };
                    let _ = writeln!(t.out, "  {what}, {which}, {} samples", s.count);
                    let p50_ok = s.p50 <= TARGET_DISPATCH_P50_MS;
                    let p99_ok = s.p99 <= TARGET_DISPATCH_P99_MS;
                    t.checked(
                        "    p50",
                        s.p50,
                        "ms",
                        &format!("≤ {TARGET_DISPATCH_P50_MS} ms"),
                        p50_ok,
                    );
                    t.checked(
                        "    p99",
                        s.p99,
                        "ms",
                        &format!("≤ {TARGET_DISPATCH_P99_MS} ms"),
                        p99_ok,
                    );
                    t.row("    max", s.max, "ms");
                }
            }
        }
        if !self.memory.is_empty() {
            t.heading(&format!(
                "Resident memory (VmRSS from /proc/<pid>/status every {} ms; 1 MB = 10^6 bytes)",
                self.memory_sample_ms
            ));
            let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
            let _ = write!(t.out, "  {:<LABEL$}", "");
            for name in &names {
                let _ = write!(t.out, "{name:>24}");
            }
            let _ = writeln!(t.out, "   target");
            for row in &self.memory {
                let _ = write!(t.out, "  {:<LABEL$}", row.phase);
                for kb in &row.kb {
                    let cell = match kb {
                        Some(kb) if row.peak => {
                            format!("{:.1} MB {}", mb(*kb), mark(mb(*kb) < TARGET_RSS_MB))
                        }
                        Some(kb) => format!("{:.1} MB  ", mb(*kb)),
                        None => "n/a  ".to_owned(),
                    };
                    let _ = write!(t.out, "{cell:>24}");
                }
                let target = if row.peak {
                    format!("   < {TARGET_RSS_MB} MB")
                } else {
                    String::new()
                };
                let _ = writeln!(t.out, "{target}");
            }
        }

        let checks = self.checks();
        let met = checks.iter().filter(|c| c.ok).count();
        t.heading(&format!("Targets: {met} of {} met", checks.len()));
        for c in checks.iter().filter(|c| !c.ok) {
            let _ = writeln!(
                t.out,
                "  ✗ {}: {} {} (target {})",
                c.name,
                num(c.value),
                c.unit,
                c.target
            );
        }
        // No trailing blanks from padded cells.
        t.out
            .lines()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect()
    }

    fn throughput(
        &self,
        t: &mut Text,
        title: &str,
        what: &str,
        o: &throughput::Outcome,
        chain: bool,
    ) {
        t.heading(&format!(
            "{title}: {} runs of a {}-{what}, {} StartRun calls in flight",
            o.runs, o.steps_per_run, o.concurrency
        ));
        t.row(
            "elapsed, first StartRun sent → all runs ended",
            o.elapsed_s,
            "s",
        );
        t.row("runs", o.runs_per_s(), "runs/s");
        if chain {
            let ok = o.steps_per_s() >= TARGET_CHAIN_STEPS_PER_S;
            t.checked(
                "steps",
                o.steps_per_s(),
                "steps/s",
                &format!("≥ {}", num(TARGET_CHAIN_STEPS_PER_S)),
                ok,
            );
        } else {
            t.row("steps", o.steps_per_s(), "steps/s");
        }
        t.row("steps completed", o.completed_steps as f64, "steps");
        t.row("all StartRun calls returned after", o.submit_s, "s");
        if let Some(s) = &o.start_rpc_ms {
            t.row("StartRun call p50", s.p50, "ms");
            t.row("StartRun call p99", s.p99, "ms");
        }
        t.row(
            "server side: max(ended_at) − min(created_at)",
            o.server_span_s,
            "s",
        );
        t.row("server side: runs", o.server_runs_per_s(), "runs/s");
        t.row("server side: steps", o.server_steps_per_s(), "steps/s");
    }

    pub fn json(&self) -> Value {
        let throughput = |o: &throughput::Outcome| {
            json!({
                "runs": o.runs,
                "steps_per_run": o.steps_per_run,
                "concurrency": o.concurrency,
                "completed_steps": o.completed_steps,
                "elapsed_s": o.elapsed_s,
                "runs_per_s": o.runs_per_s(),
                "steps_per_s": o.steps_per_s(),
                "submit_s": o.submit_s,
                "start_rpc_ms": json_or_null(o.start_rpc_ms.as_ref()),
                "server_span_s": o.server_span_s,
                "server_runs_per_s": o.server_runs_per_s(),
                "server_steps_per_s": o.server_steps_per_s(),
            })
        };
        let memory: Vec<Value> = self
            .memory
            .iter()
            .map(|row| {
                let per_service: serde_json::Map<String, Value> = self
                    .services
                    .iter()
                    .zip(&row.kb)
                    .map(|(s, kb)| (s.name.clone(), json!(kb.map(mb))))
                    .collect();
                json!({ "phase": row.phase, "peak": row.peak, "mb": per_service })
            })
            .collect();
        let checks: Vec<Value> = self
            .checks()
            .iter()
            .map(|c| json!({ "name": c.name, "value": c.value, "unit": c.unit, "target": c.target, "ok": c.ok }))
            .collect();
        json!({
            "machine": self.machine.to_json(),
            "postgres_version": self.postgres_version,
            "redis_version": self.redis_version,
            "services": self.services.iter().map(|s| json!({ "name": s.name, "build": s.build })).collect::<Vec<_>>(),
            "chain": self.chain.as_ref().map(throughput),
            "fanout": self.fanout.as_ref().map(throughput),
            "lone": self.lone.as_ref().map(|l| json!({
                "runs": l.runs,
                "warmup_runs": l.warmup,
                "steps_per_run": l.steps_per_run,
                "latency_ms": l.latency_ms.to_json(),
                "start_rpc_ms": json_or_null(l.start_rpc_ms.as_ref()),
                "end_event_delivery_ms": json_or_null(l.delivery_ms.as_ref()),
                "server_created_to_started_ms": json_or_null(l.server_start_ms.as_ref()),
                "server_created_to_ended_ms": json_or_null(l.server_end_ms.as_ref()),
            })),
            "dispatch": {
                "loaded": self.chain_dispatch.as_ref().map(DispatchSummary::to_json),
                "lone": self.lone_dispatch.as_ref().map(DispatchSummary::to_json),
            },
            "memory_sample_ms": self.memory_sample_ms,
            "memory": memory,
            "targets": checks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(12345.6), "12,346");
        assert_eq!(num(2299.9), "2,300");
        assert_eq!(num(1000.0), "1,000");
        assert_eq!(num(1234567.0), "1,234,567");
        assert_eq!(num(812.34), "812.3");
        assert_eq!(num(12.345), "12.35");
        assert_eq!(num(0.8123), "0.812");
    }
}
