//! Baton's targets, and the figures of a backend checked against them. Only the production
//! backend has targets; the embedded backend's figures are for reference until it gets its own.

use super::format::{mb, num};
use super::{BackendResults, MemoryRow};

/// What a figure must be to meet its target.
#[derive(Clone, Copy, Debug)]
pub struct Goal {
    op: Op,
    value: f64,
    /// Written after the value (`ms`, `MB`), or nothing.
    unit: &'static str,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    AtLeast,
    AtMost,
    Below,
}

/// Steps per second the chain throughput should reach.
pub const CHAIN_STEPS_PER_S: Goal = Goal {
    op: Op::AtLeast,
    value: 10_000.0,
    unit: "",
};
/// Steps per second the 100-way fan-out throughput should reach.
pub const FANOUT_STEPS_PER_S: Goal = Goal {
    op: Op::AtLeast,
    value: 10_000.0,
    unit: "",
};
/// Dispatch delay targets.
pub const DISPATCH_P50_MS: Goal = Goal {
    op: Op::AtMost,
    value: 1.0,
    unit: "ms",
};
pub const DISPATCH_P99_MS: Goal = Goal {
    op: Op::AtMost,
    value: 5.0,
    unit: "ms",
};
/// Lone 10-step chain p50 target.
pub const LONE_P50_MS: Goal = Goal {
    op: Op::AtMost,
    value: 15.0,
    unit: "ms",
};
/// Lone 10-step chain p99 target.
pub const LONE_P99_MS: Goal = Goal {
    op: Op::AtMost,
    value: 25.0,
    unit: "ms",
};
/// After `--history-runs` finished runs, chain throughput at least 80 % of the fresh database's.
pub const HISTORY_CHAIN_RATIO: Goal = Goal {
    op: Op::AtLeast,
    value: 0.8,
    unit: "×",
};
/// After `--history-runs` finished runs, the lone-chain p50 at most 120 % of the fresh one's.
pub const HISTORY_LONE_RATIO: Goal = Goal {
    op: Op::AtMost,
    value: 1.2,
    unit: "×",
};
/// Resident memory limit per service, MB (10^6 bytes).
pub const RSS_MB: Goal = Goal {
    op: Op::Below,
    value: 100.0,
    unit: "MB",
};

impl Goal {
    pub fn met(self, value: f64) -> bool {
        match self.op {
            Op::AtLeast => value >= self.value,
            Op::AtMost => value <= self.value,
            Op::Below => value < self.value,
        }
    }

    /// `≥ 10,000`, `≤ 1 ms`, `< 100 MB`.
    pub fn describe(self) -> String {
        let op = match self.op {
            Op::AtLeast => "≥",
            Op::AtMost => "≤",
            Op::Below => "<",
        };
        let value = if self.value >= 1_000.0 {
            num(self.value)
        } else {
            self.value.to_string()
        };
        format!("{op} {value} {}", self.unit).trim_end().to_owned()
    }
}

/// A figure checked against a target.
pub struct Check {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: String,
    pub ok: bool,
}

impl BackendResults {
    /// The target and whether `value` meets it, on a backend with targets; `None` otherwise.
    pub fn target(&self, goal: Goal, value: f64) -> Option<(String, bool)> {
        self.backend
            .has_targets()
            .then(|| (goal.describe(), goal.met(value)))
    }

    /// Whether a memory row's figures are checked against the RSS target.
    pub fn memory_checked(&self, row: &MemoryRow) -> bool {
        row.peak && self.backend.has_targets()
    }

    /// Every figure that has a target, checked; none on a backend without targets.
    pub fn checks(&self) -> Vec<Check> {
        if !self.backend.has_targets() {
            return Vec::new();
        }
        let mut checks = Vec::new();
        let mut check = |name: String, value: f64, unit: &'static str, goal: Goal| {
            checks.push(Check {
                name,
                value,
                unit,
                target: goal.describe(),
                ok: goal.met(value),
            });
        };
        if let Some(c) = &self.chain {
            check(
                "chain throughput".into(),
                c.steps_per_s(),
                "steps/s",
                CHAIN_STEPS_PER_S,
            );
        }
        if let Some(f) = &self.fanout {
            check(
                "fan-out throughput".into(),
                f.steps_per_s(),
                "steps/s",
                FANOUT_STEPS_PER_S,
            );
        }
        for (_, which, d) in self.dispatches() {
            let Some(d) = d else { continue };
            for (_, what, s) in d.delays() {
                let Some(s) = s else { continue };
                for (p, v, goal) in [
                    ("p50", s.p50, DISPATCH_P50_MS),
                    ("p99", s.p99, DISPATCH_P99_MS),
                ] {
                    check(format!("dispatch {what}, {which}, {p}"), v, "ms", goal);
                }
            }
        }
        if let Some(l) = &self.lone {
            check(
                "lone 10-step chain p50".into(),
                l.latency_ms.p50,
                "ms",
                LONE_P50_MS,
            );
            check(
                "lone 10-step chain p99".into(),
                l.latency_ms.p99,
                "ms",
                LONE_P99_MS,
            );
        }
        for (name, value, goal) in self.history_checks() {
            check(name, value, "×", goal);
        }
        for row in self.memory.iter().filter(|r| r.peak) {
            for (service, kb) in self.services.iter().zip(&row.kb) {
                let Some(kb) = kb else { continue };
                check(
                    format!("{} RSS, {}", service.name, row.phase),
                    mb(*kb),
                    "MB",
                    RSS_MB,
                );
            }
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_read_as_before() {
        assert_eq!(CHAIN_STEPS_PER_S.describe(), "≥ 10,000");
        assert_eq!(DISPATCH_P50_MS.describe(), "≤ 1 ms");
        assert_eq!(LONE_P50_MS.describe(), "≤ 15 ms");
        assert_eq!(LONE_P99_MS.describe(), "≤ 25 ms");
        assert_eq!(FANOUT_STEPS_PER_S.describe(), "≥ 10,000");
        assert_eq!(RSS_MB.describe(), "< 100 MB");
        assert_eq!(HISTORY_CHAIN_RATIO.describe(), "≥ 0.8 ×");
        assert_eq!(HISTORY_LONE_RATIO.describe(), "≤ 1.2 ×");
        assert!(HISTORY_LONE_RATIO.met(1.2) && !HISTORY_LONE_RATIO.met(1.21));
        assert!(HISTORY_CHAIN_RATIO.met(0.8) && !HISTORY_CHAIN_RATIO.met(0.79));
        assert!(RSS_MB.met(99.9) && !RSS_MB.met(100.0));
        assert!(DISPATCH_P99_MS.met(5.0) && !DISPATCH_P99_MS.met(5.01));
        assert!(CHAIN_STEPS_PER_S.met(10_000.0) && !CHAIN_STEPS_PER_S.met(9_999.0));
    }
}
