//! The report's layout on fake figures: one production and one embedded backend.

use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::stats::Summary;

fn summary(samples: &[f64]) -> Option<Summary> {
    Summary::of(samples)
}

fn chain(elapsed_s: f64) -> throughput::Outcome {
    throughput::Outcome {
        runs: 1000,
        steps_per_run: 10,
        concurrency: 64,
        completed_steps: 10_000,
        elapsed_s,
        submit_s: elapsed_s / 2.0,
        server_span_s: elapsed_s * 0.9,
        start_rpc_ms: summary(&[2.0, 3.0]),
        run_ids: Vec::new(),
    }
}

fn lone(p50_ms: f64) -> latency::Outcome {
    latency::Outcome {
        runs: 3,
        warmup: 1,
        steps_per_run: 10,
        latency_ms: summary(&[p50_ms - 1.0, p50_ms, p50_ms + 10.0]).unwrap(),
        start_rpc_ms: summary(&[1.0]),
        delivery_ms: summary(&[0.2]),
        server_start_ms: summary(&[0.5]),
        server_end_ms: summary(&[p50_ms - 2.0]),
        run_ids: Vec::new(),
    }
}

fn dispatch(ms: f64) -> DispatchSummary {
    DispatchSummary {
        enqueue_to_start: summary(&[ms, ms * 2.0]),
        end_to_next_start: summary(&[ms * 3.0]),
    }
}

/// 50 runs of 20 http steps in `elapsed_s`, the server answering `requests`; steps of 4–8 ms.
fn http(elapsed_s: f64, requests: u64) -> http_steps::Outcome {
    http_steps::Outcome {
        throughput: throughput::Outcome {
            runs: 50,
            steps_per_run: 22,
            concurrency: 64,
            completed_steps: 1_100,
            elapsed_s,
            submit_s: 0.1,
            server_span_s: elapsed_s / 2.0,
            start_rpc_ms: summary(&[2.0]),
            run_ids: Vec::new(),
        },
        branches: 20,
        requests,
        step_ms: summary(&[4.0, 5.0, 8.0]),
    }
}

fn service(name: &str, pid: u32) -> ServiceInfo {
    ServiceInfo {
        name: name.to_owned(),
        pid,
        build: None,
    }
}

/// MB (10^6 bytes) as kB.
fn kb(mb: f64) -> Option<u64> {
    Some((mb * 1e6 / 1024.0).round() as u64)
}

/// Production: 5,000 chain steps/s (target missed), 12 ms lone p50 (met), dispatch 0.5 ms,
/// 40 + 60 MB. Embedded: 2,500 steps/s, 30 ms lone p50, dispatch 20 ms, 70 MB.
fn production() -> BackendResults {
    BackendResults {
        backend: Backend::Production,
        versions: vec![
            Version::new("postgres_version", "PostgreSQL", Ok("16.4".into())),
            Version::new("redis_version", "Redis", Ok("7.2.4".into())),
        ],
        scratch: "database baton_bench_x, Redis prefix baton-bench-x".into(),
        services: vec![
            service("baton-orchestrator", 10),
            service("baton-workflow-runner", 11),
        ],
        chain: Some(chain(2.0)),
        chain_dispatch: Some(dispatch(0.5)),
        fanout: None,
        lone: Some(lone(12.0)),
        lone_dispatch: Some(dispatch(0.25)),
        http: None,
        history: None,
        memory: vec![
            MemoryRow {
                phase: "idle after start-up".into(),
                peak: false,
                kb: vec![kb(20.0), kb(30.0)],
            },
            MemoryRow {
                phase: "peak during chain throughput".into(),
                peak: true,
                kb: vec![kb(40.0), kb(60.0)],
            },
        ],
    }
}

fn embedded() -> BackendResults {
    BackendResults {
        backend: Backend::Embedded,
        versions: vec![Version::new(
            "sqlite_version",
            "SQLite",
            Ok("3.51.3".into()),
        )],
        scratch: "file /tmp/baton-bench-x-embedded/baton.db".into(),
        services: vec![service("baton dev", 12)],
        chain: Some(chain(4.0)),
        chain_dispatch: Some(dispatch(20.0)),
        fanout: None,
        lone: Some(lone(30.0)),
        lone_dispatch: Some(dispatch(10.0)),
        http: None,
        history: None,
        memory: vec![
            MemoryRow {
                phase: "idle after start-up".into(),
                peak: false,
                kb: vec![kb(25.0)],
            },
            MemoryRow {
                phase: "peak during chain throughput".into(),
                peak: true,
                kb: vec![kb(70.0)],
            },
        ],
    }
}

fn results(backends: Vec<BackendResults>) -> Results {
    Results {
        machine: crate::machine::Machine {
            nproc: 2,
            cpu_model: "Some CPU".into(),
            mem_total_kb: None,
        },
        bin_dir: PathBuf::from("/bin-dir"),
        log_dir: PathBuf::from("/log-dir"),
        memory_sample_ms: 50,
        backends,
    }
}

/// The text from the line starting with `from` up to (not including) the line starting with
/// `to`, or to the end.
fn between<'a>(text: &'a str, from: &str, to: Option<&str>) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("no `{from}` in\n{text}"));
    let rest = &text[start..];
    match to.and_then(|to| rest.find(to)) {
        Some(end) => &rest[..end],
        None => rest,
    }
}

/// A report line with a target: label, value, unit, target, mark in their columns.
fn checked_line(label: &str, value: &str, unit: &str, target: &str, mark: &str) -> String {
    format!("\n  {label:<50}{value:>10} {unit:<8} target {target:<14}{mark}\n")
}

/// A report line without a target.
fn plain_line(label: &str, value: &str, unit: &str) -> String {
    format!("\n  {label:<50}{value:>10} {unit}\n")
}

/// A side-by-side line: label, one column per backend, the ratio.
fn side_line(label: &str, first: &str, second: &str, ratio: &str) -> String {
    format!("\n  {label:<50}{first:>14}{second:>14}   {ratio}\n")
}

#[test]
fn sections_per_backend_then_side_by_side() {
    let text = results(vec![production(), embedded()]).text();
    let production_at = text.find("═══ production backend").unwrap();
    let embedded_at = text.find("═══ embedded backend").unwrap();
    let side_at = text.find("Side by side").unwrap();
    assert!(
        production_at < embedded_at && embedded_at < side_at,
        "{text}"
    );
    assert!(text.contains("backends    production, embedded (one after the other, each alone)"));
    assert!(text.contains(
        "═══ production backend: separate services on PostgreSQL 16.4, Redis 7.2.4 — figures \
         checked against Baton's targets"
    ));
    assert!(text.contains(
        "═══ embedded backend: baton dev, one process on SQLite 3.51.3 — for reference (no \
         target)"
    ));
}

#[test]
fn targets_apply_to_production_only() {
    let text = results(vec![production(), embedded()]).text();
    let production = between(
        &text,
        "═══ production backend",
        Some("═══ embedded backend"),
    );
    let embedded = between(&text, "═══ embedded backend", Some("Side by side"));

    assert!(
        production.contains(&checked_line("steps", "5,000", "steps/s", "≥ 10,000", "✗")),
        "{production}"
    );
    assert!(
        production.contains(&checked_line("p50", "12.00", "ms", "≤ 15 ms", "✓")),
        "{production}"
    );
    assert!(
        production.contains("Targets (production): "),
        "{production}"
    );
    assert!(production.contains("✗ chain throughput: 5,000 steps/s (target ≥ 10,000)"));
    assert!(production.contains("   < 100 MB"), "{production}");

    assert!(
        !embedded.contains('✓') && !embedded.contains('✗'),
        "{embedded}"
    );
    assert!(!embedded.contains("target "), "{embedded}");
    assert!(
        embedded.contains(&plain_line("steps", "2,500", "steps/s")),
        "{embedded}"
    );
    assert!(embedded.contains("Targets (embedded): none yet; these figures are for reference"));
    assert!(embedded.contains("baton dev"), "{embedded}");
    assert!(embedded.contains("70.0 MB"), "{embedded}");
}

#[test]
fn side_by_side_rows_and_ratio() {
    let text = results(vec![production(), embedded()]).text();
    let side = between(&text, "Side by side", None);
    assert!(
        side.contains("production      embedded   embedded ÷ production"),
        "{side}"
    );
    assert!(
        side.contains(&side_line(
            "chain throughput (steps/s)",
            "5,000",
            "2,500",
            "0.50×"
        )),
        "{side}"
    );
    assert!(side.contains("lone 10-step chain p50 (ms)"), "{side}");
    // 40 + 60 MB beside 70 MB, each process at its highest phase.
    assert!(
        side.contains(&side_line(
            "peak RSS, all processes together (MB)",
            "100.0",
            "70.00",
            "0.70×"
        )),
        "{side}"
    );
    // No fan-out ran on either: no row for it.
    assert!(!side.contains("fan-out"), "{side}");
}

#[test]
fn one_backend_has_no_side_by_side() {
    let text = results(vec![production()]).text();
    assert!(!text.contains("Side by side"), "{text}");
    assert!(!text.contains("embedded"), "{text}");
    let text = results(vec![embedded()]).text();
    assert!(!text.contains("Side by side") && !text.contains('✓') && !text.contains('✗'));
    assert!(text.contains("\n  backends    embedded\n"), "{text}");
    // Neither a target column nor a target on any figure.
    assert!(
        !text.contains("   target\n") && !text.contains("target ≤"),
        "{text}"
    );
}

#[test]
fn json_keeps_production_keys_and_adds_embedded() {
    let json = results(vec![production(), embedded()]).json();
    assert_eq!(
        json["backends"],
        serde_json::json!(["production", "embedded"])
    );
    // Production where it always was, each block naming its backend.
    assert_eq!(json["backend"], "production");
    assert_eq!(json["postgres_version"], "16.4");
    assert_eq!(json["redis_version"], "7.2.4");
    assert_eq!(json["chain"]["steps_per_s"], 5000.0);
    assert_eq!(json["chain"]["backend"], "production");
    assert_eq!(json["lone"]["latency_ms"]["p50"], 12.0);
    assert_eq!(
        json["dispatch"]["loaded"]["enqueue_to_start_ms"]["p50"],
        0.5
    );
    assert_eq!(json["dispatch"]["loaded"]["backend"], "production");
    let runner_mb = json["memory"][1]["mb"]["baton-workflow-runner"]
        .as_f64()
        .unwrap();
    assert!((runner_mb - 60.0).abs() < 0.01, "{runner_mb}");
    assert_eq!(json["memory"][1]["backend"], "production");
    assert!(json["fanout"].is_null());
    let targets = json["targets"].as_array().unwrap();
    assert!(!targets.is_empty());
    assert!(targets.iter().all(|t| t["backend"] == "production"));
    assert!(
        targets
            .iter()
            .any(|t| t["name"] == "chain throughput" && t["ok"] == false)
    );
    // Lone p50 12 ms and p99 about 22 ms: both met; no fan-out ran, so it has no check.
    assert!(targets.iter().any(|t| t["name"] == "lone 10-step chain p99"
        && t["ok"] == true
        && t["target"] == "≤ 25 ms"));
    assert!(targets.iter().all(|t| t["name"] != "fan-out throughput"));

    let embedded = &json["embedded"];
    assert_eq!(embedded["backend"], "embedded");
    assert_eq!(embedded["sqlite_version"], "3.51.3");
    assert_eq!(embedded["chain"]["steps_per_s"], 2500.0);
    assert_eq!(embedded["chain"]["backend"], "embedded");
    assert_eq!(embedded["lone"]["backend"], "embedded");
    let dev_mb = embedded["memory"][1]["mb"]["baton dev"].as_f64().unwrap();
    assert!((dev_mb - 70.0).abs() < 0.01, "{dev_mb}");
    assert_eq!(embedded["services"][0]["name"], "baton dev");
    assert!(embedded["targets"].is_null(), "no targets apply");
    assert!(embedded.get("postgres_version").is_none());
}

#[test]
fn json_of_embedded_alone() {
    let json = results(vec![embedded()]).json();
    assert_eq!(json["backends"], serde_json::json!(["embedded"]));
    for key in ["chain", "fanout", "lone", "dispatch", "http"] {
        assert_eq!(json[key], Value::Null, "{key}");
    }
    assert_eq!(json["targets"], serde_json::json!([]));
    assert_eq!(json["embedded"]["chain"]["steps_per_s"], 2500.0);
    let json = results(vec![production()]).json();
    assert!(json["embedded"].is_null());
}

/// Production with history: chain 5,000 → 4,500 steps/s (0.90×, met), lone p50 12 → 15 ms
/// (1.25×, missed).
fn production_with_history() -> BackendResults {
    let mut p = production();
    p.history = Some(History {
        runs: 100_000,
        after: Some(AfterHistory {
            fill_s: 12.5,
            upkeep_s: Some(4.0),
            steps_per_run: 10,
            attempts_per_run: 0,
            events_per_run: 32,
            chain: Some(throughput::Outcome {
                completed_steps: 9_000,
                ..chain(2.0)
            }),
            chain_dispatch: Some(dispatch(0.5)),
            fanout: None,
            lone: Some(lone(15.0)),
            lone_dispatch: Some(dispatch(0.25)),
        }),
    });
    p
}

#[test]
fn history_side_by_side_with_targets() {
    let text = results(vec![production_with_history()]).text();
    let history = between(&text, "History (production)", Some("Targets (production)"));
    assert!(
        history.contains(
            "the same scenarios after 100,000 finished runs inserted in 12.5 s (10 steps, 0 \
             attempts, 32 events each; the services' table upkeep saw them 4.0 s later; the \
             bench runs no VACUUM or ANALYZE)"
        ),
        "{history}"
    );
    assert!(
        history.contains("fresh after 100,000   after ÷ fresh"),
        "{history}"
    );
    assert!(
        history.contains(&side_line(
            "chain throughput (steps/s)",
            "5,000",
            "4,500",
            "0.90×"
        )),
        "{history}"
    );
    assert!(
        history.contains(&side_line(
            "lone 10-step chain p50 (ms)",
            "12.00",
            "15.00",
            "1.25×"
        )),
        "{history}"
    );
    assert!(
        history.contains(&checked_line(
            "chain throughput, after ÷ fresh",
            "0.900",
            "×",
            "≥ 0.8 ×",
            "✓"
        )),
        "{history}"
    );
    assert!(
        history.contains(&checked_line(
            "lone 10-step chain p50, after ÷ fresh",
            "1.250",
            "×",
            "≤ 1.2 ×",
            "✗"
        )),
        "{history}"
    );
    assert!(
        text.contains("✗ lone 10-step chain p50 after 100,000 runs of history ÷ fresh: 1.250 ×"),
        "{text}"
    );
}

#[test]
fn history_json_and_unfilled_backend() {
    let json = results(vec![production_with_history()]).json();
    let h = &json["history"];
    assert_eq!(h["runs"], 100_000);
    assert_eq!(h["filled"], true);
    assert_eq!(h["per_run"]["events"], 32);
    assert_eq!(h["fresh"]["chain throughput (steps/s)"], 5000.0);
    assert_eq!(h["after"]["chain throughput (steps/s)"], 4500.0);
    assert_eq!(h["after_over_fresh"]["lone 10-step chain p50 (ms)"], 1.25);
    let checks = h["targets"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert!(
        checks
            .iter()
            .any(|c| c["ok"] == false && c["target"] == "≤ 1.2 ×")
    );
    assert!(
        json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "chain throughput after 100,000 runs of history ÷ fresh")
    );
    assert!(results(vec![production()]).json()["history"].is_null());

    let mut e = embedded();
    e.history = Some(History {
        runs: 5,
        after: None,
    });
    let text = results(vec![e]).text();
    assert!(
        text.contains(
            "History (embedded): not filled; --history-runs 5 fills the production backend only"
        ),
        "{text}"
    );
    let mut e = embedded();
    e.history = Some(History {
        runs: 5,
        after: None,
    });
    assert_eq!(
        results(vec![e]).json()["embedded"]["history"]["filled"],
        false
    );
}

#[test]
fn history_ratio() {
    assert_eq!(super::history::ratio(Some(2.0), Some(3.0)), Some(1.5));
    assert_eq!(super::history::ratio(Some(0.0), Some(3.0)), None);
    assert_eq!(super::history::ratio(None, Some(3.0)), None);
}

#[test]
fn http_section_for_reference_on_both_backends() {
    let mut p = production();
    p.services.push(service("baton-http-worker", 13));
    for row in &mut p.memory {
        row.kb.push(kb(15.0));
    }
    p.http = Some(http(2.0, 1_003));
    let mut e = embedded();
    e.http = Some(http(4.0, 1_000));
    let text = results(vec![p, e]).text();

    let production = between(
        &text,
        "HTTP step throughput (production)",
        Some("Resident memory (production;"),
    );
    assert!(
        production.contains(
            "HTTP step throughput (production): 50 runs of start → 20 parallel http GETs → end, \
             64 StartRun calls in flight\n  (GETs to a loopback server in the bench; for \
             reference, no target)"
        ),
        "{production}"
    );
    // 1,000 http steps in 2 s; the server side span is half of it.
    assert!(
        production.contains(&plain_line("http steps", "500.0", "steps/s")),
        "{production}"
    );
    assert!(
        production.contains(&plain_line(
            "all steps (start, http, end)",
            "550.0",
            "steps/s"
        )),
        "{production}"
    );
    assert!(
        production.contains(&plain_line(
            "requests the loopback server answered",
            "1,003",
            "requests"
        )),
        "{production}"
    );
    assert!(
        production.contains("(3 more than one per http step: retries or duplicate deliveries)")
    );
    assert!(
        production.contains(&plain_line("http step started → ended, p50", "5.000", "ms")),
        "{production}"
    );
    assert!(
        production.contains(&plain_line("http step started → ended, p99", "8.000", "ms")),
        "{production}"
    );
    assert!(
        production.contains(&plain_line("server side: http steps", "1,000", "steps/s")),
        "{production}"
    );
    assert!(
        !production.contains('✓') && !production.contains('✗'),
        "{production}"
    );
    // The http-worker has its own memory column.
    let memory = between(
        &text,
        "Resident memory (production;",
        Some("Targets (production)"),
    );
    assert!(memory.contains("baton-http-worker"), "{memory}");
    assert!(memory.contains("15.0 MB"), "{memory}");

    let embedded = between(
        &text,
        "HTTP step throughput (embedded)",
        Some("Resident memory"),
    );
    assert!(embedded.contains("(one per http step)"), "{embedded}");
    assert!(
        embedded.contains(&plain_line("http steps", "250.0", "steps/s")),
        "{embedded}"
    );
    let side = between(&text, "Side by side", None);
    assert!(
        side.contains(&side_line(
            "http steps (steps/s)",
            "500.0",
            "250.0",
            "0.50×"
        )),
        "{side}"
    );
    assert!(
        side.contains(&side_line(
            "http step started → ended, p50 (ms)",
            "5.000",
            "5.000",
            "1.00×"
        )),
        "{side}"
    );
}

#[test]
fn http_json() {
    let mut p = production();
    p.http = Some(http(2.0, 1_003));
    let json = results(vec![p, embedded()]).json();
    let h = &json["http"];
    assert_eq!(h["backend"], "production");
    assert_eq!(h["runs"], 50);
    assert_eq!(h["branches"], 20);
    assert_eq!(h["http_steps"], 1_000);
    assert_eq!(h["http_steps_per_s"], 500.0);
    assert_eq!(h["server_http_steps_per_s"], 1_000.0);
    assert_eq!(h["requests_seen"], 1_003);
    assert_eq!(h["extra_requests"], 3);
    assert_eq!(h["http_step_ms"]["p50"], 5.0);
    assert_eq!(h["steps_per_s"], 550.0);
    assert!(json["embedded"]["http"].is_null());
    // No target for it.
    assert!(
        json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["name"].as_str().unwrap().starts_with("http"))
    );
}
