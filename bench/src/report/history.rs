//! The history figures: the same scenarios on a fresh database and after `--history-runs`
//! finished runs were inserted, side by side with their ratio, and the "flat in history" targets
//! (lone-chain p50 and chain throughput within 20 % of the fresh database's).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::format::{LABEL, Text, num};
use super::targets::{Goal, HISTORY_CHAIN_RATIO, HISTORY_LONE_RATIO};
use super::{AfterHistory, BackendResults, History};
use crate::{latency, throughput};

/// Width of a column of the table.
const COLUMN: usize = 14;

/// A compared figure: label (with unit) and how to read it from one pass's figures.
struct Row {
    label: &'static str,
    value: fn(&Pass<'_>) -> Option<f64>,
}

/// The figures of one pass, fresh or after the history.
struct Pass<'a> {
    chain: Option<&'a throughput::Outcome>,
    fanout: Option<&'a throughput::Outcome>,
    lone: Option<&'a latency::Outcome>,
    loaded_enqueue_p50: Option<f64>,
    lone_step_p50: Option<f64>,
}

const ROWS: &[Row] = &[
    Row {
        label: "chain throughput (steps/s)",
        value: |p| p.chain.map(throughput::Outcome::steps_per_s),
    },
    Row {
        label: "chain throughput, server side (steps/s)",
        value: |p| p.chain.map(throughput::Outcome::server_steps_per_s),
    },
    Row {
        label: "chain StartRun call p50, loaded (ms)",
        value: |p| p.chain?.start_rpc_ms.as_ref().map(|s| s.p50),
    },
    Row {
        label: "fan-out throughput (steps/s)",
        value: |p| p.fanout.map(throughput::Outcome::steps_per_s),
    },
    Row {
        label: "lone 10-step chain p50 (ms)",
        value: |p| p.lone.map(|l| l.latency_ms.p50),
    },
    Row {
        label: "lone 10-step chain p99 (ms)",
        value: |p| p.lone.map(|l| l.latency_ms.p99),
    },
    Row {
        label: "job enqueued → started, loaded, p50 (ms)",
        value: |p| p.loaded_enqueue_p50,
    },
    Row {
        label: "step end → dependent start, lone, p50 (ms)",
        value: |p| p.lone_step_p50,
    },
];

/// `after ÷ fresh`, when both are there and fresh is not zero.
pub fn ratio(fresh: Option<f64>, after: Option<f64>) -> Option<f64> {
    match (fresh, after) {
        (Some(f), Some(a)) if f != 0.0 => Some(a / f),
        _ => None,
    }
}

impl BackendResults {
    fn fresh_pass(&self) -> Pass<'_> {
        Pass {
            chain: self.chain.as_ref(),
            fanout: self.fanout.as_ref(),
            lone: self.lone.as_ref(),
            loaded_enqueue_p50: self
                .chain_dispatch
                .as_ref()
                .and_then(|d| d.enqueue_to_start.as_ref())
                .map(|s| s.p50),
            lone_step_p50: self
                .lone_dispatch
                .as_ref()
                .and_then(|d| d.end_to_next_start.as_ref())
                .map(|s| s.p50),
        }
    }

    /// The "flat in history" checks: (name, after ÷ fresh, goal), for the figures both passes
    /// have.
    pub fn history_checks(&self) -> Vec<(String, f64, Goal)> {
        let Some(History {
            runs,
            after: Some(after),
        }) = &self.history
        else {
            return Vec::new();
        };
        let (fresh, later) = (self.fresh_pass(), after.pass());
        let mut checks = Vec::new();
        let runs = count(*runs);
        if let Some(r) = ratio((ROWS[0].value)(&fresh), (ROWS[0].value)(&later)) {
            checks.push((
                format!("chain throughput after {runs} runs of history ÷ fresh"),
                r,
                HISTORY_CHAIN_RATIO,
            ));
        }
        if let Some(r) = ratio((ROWS[4].value)(&fresh), (ROWS[4].value)(&later)) {
            checks.push((
                format!("lone 10-step chain p50 after {runs} runs of history ÷ fresh"),
                r,
                HISTORY_LONE_RATIO,
            ));
        }
        checks
    }

    /// The history section of the text report.
    pub fn history_text(&self, t: &mut Text) {
        let Some(h) = &self.history else { return };
        let runs = count(h.runs);
        let Some(after) = &h.after else {
            t.heading(&format!(
                "History ({}): not filled; --history-runs {runs} fills the production backend only",
                self.backend
            ));
            return;
        };
        let upkeep = match after.upkeep_s {
            Some(s) => format!("the services' table upkeep saw them {s:.1} s later"),
            None => "the services' table upkeep did not see them in time".to_owned(),
        };
        t.heading(&format!(
            "History ({}): the same scenarios after {runs} finished runs inserted in {:.1} s \
             ({} steps, {} attempts, {} events each; {upkeep}; the bench runs no VACUUM or \
             ANALYZE)",
            self.backend,
            after.fill_s,
            after.steps_per_run,
            after.attempts_per_run,
            after.events_per_run
        ));
        let after_label = format!("after {runs}");
        let _ = writeln!(
            t.out,
            "  {:<LABEL$}{:>COLUMN$}{after_label:>COLUMN$}   after ÷ fresh",
            "", "fresh"
        );
        let (fresh, later) = (self.fresh_pass(), after.pass());
        for row in ROWS {
            let (f, a) = ((row.value)(&fresh), (row.value)(&later));
            if f.is_none() && a.is_none() {
                continue;
            }
            let cell = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), num);
            let _ = write!(
                t.out,
                "  {:<LABEL$}{:>COLUMN$}{:>COLUMN$}",
                row.label,
                cell(f),
                cell(a)
            );
            if let Some(r) = ratio(f, a) {
                let _ = write!(t.out, "   {r:.2}×");
            }
            let _ = writeln!(t.out);
        }
        for (name, value, goal) in self.history_checks() {
            let target = self.target(goal, value);
            t.figure(&short(&name), value, "×", target);
        }
    }

    /// The history figures as JSON: `null` when `--history-runs` was off.
    pub fn history_json(&self) -> Value {
        let Some(h) = &self.history else {
            return Value::Null;
        };
        let backend = self.backend.name();
        let Some(after) = &h.after else {
            return json!({ "backend": backend, "runs": h.runs, "filled": false });
        };
        let (fresh, later) = (self.fresh_pass(), after.pass());
        let figures = |p: &Pass<'_>| -> Value {
            ROWS.iter()
                .map(|row| (row.label.to_owned(), json!((row.value)(p))))
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        let ratios: serde_json::Map<String, Value> = ROWS
            .iter()
            .map(|row| {
                let r = ratio((row.value)(&fresh), (row.value)(&later));
                (row.label.to_owned(), json!(r))
            })
            .collect();
        let checks: Vec<Value> = self
            .history_checks()
            .into_iter()
            .map(|(name, value, goal)| {
                json!({ "backend": backend, "name": name, "value": value, "unit": "×",
                        "target": goal.describe(), "ok": goal.met(value) })
            })
            .collect();
        json!({
            "backend": backend,
            "runs": h.runs,
            "filled": true,
            "fill_s": after.fill_s,
            "upkeep_s": after.upkeep_s,
            "per_run": {
                "steps": after.steps_per_run,
                "attempts": after.attempts_per_run,
                "events": after.events_per_run,
            },
            "fresh": figures(&fresh),
            "after": figures(&later),
            "after_over_fresh": ratios,
            "targets": checks,
        })
    }
}

/// A count of runs, with thousands separators.
fn count(n: u64) -> String {
    if n >= 1_000 {
        num(n as f64)
    } else {
        n.to_string()
    }
}

/// The check's name without its `after N runs of history` part, for a row under the table
/// that already says it.
fn short(name: &str) -> String {
    match name.split_once(" after ") {
        Some((what, _)) => format!("{what}, after ÷ fresh"),
        None => name.to_owned(),
    }
}

impl AfterHistory {
    fn pass(&self) -> Pass<'_> {
        Pass {
            chain: self.chain.as_ref(),
            fanout: self.fanout.as_ref(),
            lone: self.lone.as_ref(),
            loaded_enqueue_p50: self
                .chain_dispatch
                .as_ref()
                .and_then(|d| d.enqueue_to_start.as_ref())
                .map(|s| s.p50),
            lone_step_p50: self
                .lone_dispatch
                .as_ref()
                .and_then(|d| d.end_to_next_start.as_ref())
                .map(|s| s.p50),
        }
    }
}
