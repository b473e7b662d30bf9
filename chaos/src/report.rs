//! The suite's output: one table row of counts per scenario, then for each scenario what the
//! fault did, how StartRun answered, and every violated check with the runs it concerns.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use crate::{
    ScenarioReport,
    counters::{FENCED, REDISPATCHED},
};

/// Violations of one check shown in full; the rest are counted (all are in the logs directory).
const SHOWN_PER_CHECK: usize = 10;

/// The whole report as text.
pub fn render(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    let header = [
        "scenario",
        "result",
        "runs",
        "acked",
        "kills",
        "re-dispatched",
        "fenced",
        "dead letters",
        "settled",
        "took",
    ];
    let rows: Vec<[String; 10]> = reports
        .iter()
        .map(|r| {
            [
                r.scenario.name().to_owned(),
                if r.passed() { "pass" } else { "FAIL" }.to_owned(),
                r.runs.to_string(),
                r.acknowledged.to_string(),
                format!(
                    "{} ({}r+{}o+{}h)",
                    r.kills.total(),
                    r.kills.runner,
                    r.kills.orchestrator,
                    r.kills.http_worker
                ),
                count(r.repair.redispatched),
                count(r.repair.fenced),
                r.dead_letters
                    .map_or_else(|| "?".to_owned(), |d| d.to_string()),
                r.settled.map_or_else(|| "no".to_owned(), seconds),
                seconds(r.took),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header.map(str::to_owned)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let absent: Vec<&str> = [
        (
            REDISPATCHED,
            reports.iter().all(|r| r.repair.redispatched.is_none()),
        ),
        (FENCED, reports.iter().all(|r| r.repair.fenced.is_none())),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !absent.is_empty() && !reports.is_empty() {
        let _ = writeln!(
            out,
            "0*: no runner exposes {} (shown as 0)",
            absent.join(" or ")
        );
    }
    for report in reports {
        let _ = writeln!(out);
        details(&mut out, report);
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.scenario.name())
        .collect();
    let _ = writeln!(out);
    if failed.is_empty() {
        let _ = writeln!(out, "all {} scenarios passed", reports.len());
    } else {
        let _ = writeln!(
            out,
            "{} of {} scenarios failed: {}",
            failed.len(),
            reports.len(),
            failed.join(", ")
        );
    }
    out
}

/// A scenario's notes, StartRun answers, run states and violations.
fn details(out: &mut String, report: &ScenarioReport) {
    let _ = writeln!(
        out,
        "{} ({})",
        report.scenario.name(),
        if report.passed() { "pass" } else { "FAIL" }
    );
    for note in &report.notes {
        let _ = writeln!(out, "  - {note}");
    }
    let _ = writeln!(out, "  StartRun answers: {}", counts(&report.answers));
    let _ = writeln!(out, "  runs by state: {}", counts(&report.by_status));
    let mut by_check: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for violation in &report.violations {
        by_check
            .entry(violation.check)
            .or_default()
            .push(violation.to_string());
    }
    for (check, found) in &by_check {
        let _ = writeln!(out, "  VIOLATED {check}: {}", found.len());
        for line in found.iter().take(SHOWN_PER_CHECK) {
            let _ = writeln!(out, "    {line}");
        }
        if found.len() > SHOWN_PER_CHECK {
            let _ = writeln!(
                out,
                "    ... {} more in {}",
                found.len() - SHOWN_PER_CHECK,
                report.logs.join("violations.txt").display()
            );
        }
    }
    if !report.passed() || report.logs.exists() {
        let _ = writeln!(out, "  service logs: {}", report.logs.display());
    }
}

/// Every violation of a scenario, one a line, for its logs directory.
pub fn violations_file(report: &ScenarioReport) -> String {
    report.violations.iter().map(|v| format!("{v}\n")).collect()
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn count(value: Option<f64>) -> String {
    value.map_or_else(|| "0*".to_owned(), |v| format!("{v:.0}"))
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
