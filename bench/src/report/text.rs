//! The text report: the machine, then one section per backend in the order they ran (the
//! production figures with targets and marks, the embedded ones and the http steps' plain, for
//! reference), then the backends side by side when more than one ran.

use std::fmt::Write as _;

use super::format::{LABEL, Text, mark, mb, num};
use super::targets::{
    CHAIN_STEPS_PER_S, DISPATCH_P50_MS, DISPATCH_P99_MS, FANOUT_STEPS_PER_S, LONE_P50_MS,
    LONE_P99_MS, RSS_MB,
};
use super::{BackendResults, Results, compare};
use crate::backend::Backend;
use crate::throughput;

impl Results {
    pub fn text(&self) -> String {
        let mut t = Text::default();
        let _ = writeln!(t.out, "Baton benchmark");
        t.info("machine", &self.machine.describe());
        t.info("binaries", &self.bin_dir.display().to_string());
        t.info("logs", &self.log_dir.display().to_string());
        let order: Vec<&str> = self.backends.iter().map(|b| b.backend.name()).collect();
        let backends = if order.len() > 1 {
            format!("{} (one after the other, each alone)", order.join(", "))
        } else {
            order.join(", ")
        };
        t.info("backends", &backends);
        for b in &self.backends {
            b.section(&mut t, self.memory_sample_ms);
        }
        if self.backends.len() > 1 {
            compare::table(&mut t, &self.backends);
        }
        t.finish()
    }
}

impl BackendResults {
    fn section(&self, t: &mut Text, memory_sample_ms: u64) {
        let (what, how) = match self.backend {
            Backend::Production => (
                "separate services",
                "figures checked against Baton's targets",
            ),
            Backend::Embedded => ("baton dev, one process", "for reference (no target)"),
        };
        let _ = writeln!(
            t.out,
            "\n═══ {} backend: {what} on {} — {how}",
            self.backend,
            self.versions_text()
        );
        for s in &self.services {
            let build = s
                .build
                .as_deref()
                .map(|b| format!(" {b}"))
                .unwrap_or_default();
            t.info("service", &format!("{}{build}, pid {}", s.name, s.pid));
        }
        t.info("scratch", &self.scratch);

        if let Some(c) = &self.chain {
            self.throughput(t, "Chain throughput", "step noop chain", c, true);
        }
        if let Some(f) = &self.fanout {
            self.throughput(t, "Fan-out throughput", "step fan-out/fan-in", f, false);
        }
        self.lone(t);
        self.dispatch(t);
        self.http(t);
        self.memory(t, memory_sample_ms);
        self.history_text(t);
        self.verdict(t);
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
            "{title} ({}): {} runs of a {}-{what}, {} StartRun calls in flight",
            self.backend, o.runs, o.steps_per_run, o.concurrency
        ));
        t.row(
            "elapsed, first StartRun sent → all runs ended",
            o.elapsed_s,
            "s",
        );
        t.row("runs", o.runs_per_s(), "runs/s");
        let goal = if chain {
            CHAIN_STEPS_PER_S
        } else {
            FANOUT_STEPS_PER_S
        };
        let target = self.target(goal, o.steps_per_s());
        t.figure("steps", o.steps_per_s(), "steps/s", target);
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

    fn lone(&self, t: &mut Text) {
        let Some(l) = &self.lone else { return };
        t.heading(&format!(
            "Lone chain latency ({}): {} runs of a {}-step noop chain one at a time, after {} \
             warm-up runs\n  (client: StartRun sent → the run's end event received on WatchRun)",
            self.backend, l.runs, l.steps_per_run, l.warmup
        ));
        let s = &l.latency_ms;
        t.figure("p50", s.p50, "ms", self.target(LONE_P50_MS, s.p50));
        t.row("p90", s.p90, "ms");
        t.figure("p99", s.p99, "ms", self.target(LONE_P99_MS, s.p99));
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

    fn dispatch(&self, t: &mut Text) {
        if self.chain_dispatch.is_none() && self.lone_dispatch.is_none() {
            return;
        }
        t.heading(&format!(
            "Dispatch latency of the chain steps ({}), from step_runs timestamps",
            self.backend
        ));
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
                    t.line(&format!("{what}, {which}: no samples"));
                    continue;
                };
                t.line(&format!("{what}, {which}, {} samples", s.count));
                t.figure("    p50", s.p50, "ms", self.target(DISPATCH_P50_MS, s.p50));
                t.figure("    p99", s.p99, "ms", self.target(DISPATCH_P99_MS, s.p99));
                t.row("    max", s.max, "ms");
            }
        }
    }

    fn http(&self, t: &mut Text) {
        let Some(h) = &self.http else { return };
        let o = &h.throughput;
        t.heading(&format!(
            "HTTP step throughput ({}): {} runs of start → {} parallel http GETs → end, {} \
             StartRun calls in flight\n  (GETs to a loopback server in the bench; for reference, \
             no target)",
            self.backend, o.runs, h.branches, o.concurrency
        ));
        t.row(
            "elapsed, first StartRun sent → all runs ended",
            o.elapsed_s,
            "s",
        );
        t.row("runs", o.runs_per_s(), "runs/s");
        t.row("http steps", h.http_steps_per_s(), "steps/s");
        t.row("all steps (start, http, end)", o.steps_per_s(), "steps/s");
        t.count("http steps completed", h.http_steps() as u64, "steps");
        t.count(
            "requests the loopback server answered",
            h.requests,
            "requests",
        );
        match h.extra_requests() {
            0 => t.line("(one per http step)"),
            extra => t.line(&format!(
                "({extra} more than one per http step: retries or duplicate deliveries)"
            )),
        }
        if let Some(s) = &h.step_ms {
            t.row("http step started → ended, p50", s.p50, "ms");
            t.row("http step started → ended, p99", s.p99, "ms");
            t.row("http step started → ended, max", s.max, "ms");
        }
        if let Some(s) = &o.start_rpc_ms {
            t.row("StartRun call p50", s.p50, "ms");
        }
        t.row(
            "server side: max(ended_at) − min(created_at)",
            o.server_span_s,
            "s",
        );
        t.row("server side: runs", o.server_runs_per_s(), "runs/s");
        t.row(
            "server side: http steps",
            h.server_http_steps_per_s(),
            "steps/s",
        );
    }

    fn memory(&self, t: &mut Text, memory_sample_ms: u64) {
        if self.memory.is_empty() {
            return;
        }
        t.heading(&format!(
            "Resident memory ({}; VmRSS from /proc/<pid>/status every {memory_sample_ms} ms; \
             1 MB = 10^6 bytes)",
            self.backend
        ));
        let _ = write!(t.out, "  {:<LABEL$}", "");
        for s in &self.services {
            let _ = write!(t.out, "{:>24}", s.name);
        }
        let target_header = if self.backend.has_targets() {
            "   target"
        } else {
            ""
        };
        let _ = writeln!(t.out, "{target_header}");
        for row in &self.memory {
            let checked = self.memory_checked(row);
            let _ = write!(t.out, "  {:<LABEL$}", row.phase);
            for kb in &row.kb {
                let cell = match kb {
                    Some(kb) if checked => {
                        format!("{:.1} MB {}", mb(*kb), mark(RSS_MB.met(mb(*kb))))
                    }
                    Some(kb) => format!("{:.1} MB  ", mb(*kb)),
                    None => "n/a  ".to_owned(),
                };
                let _ = write!(t.out, "{cell:>24}");
            }
            let target = if checked {
                format!("   {}", RSS_MB.describe())
            } else {
                String::new()
            };
            let _ = writeln!(t.out, "{target}");
        }
    }

    fn verdict(&self, t: &mut Text) {
        if !self.backend.has_targets() {
            t.heading(&format!(
                "Targets ({}): none yet; these figures are for reference",
                self.backend
            ));
            return;
        }
        let checks = self.checks();
        let met = checks.iter().filter(|c| c.ok).count();
        t.heading(&format!(
            "Targets ({}): {met} of {} met",
            self.backend,
            checks.len()
        ));
        for c in checks.iter().filter(|c| !c.ok) {
            t.line(&format!(
                "✗ {}: {} {} (target {})",
                c.name,
                num(c.value),
                c.unit,
                c.target
            ));
        }
    }
}
