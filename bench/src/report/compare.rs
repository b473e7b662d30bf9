//! The backends side by side: the headline figures of every backend in one table, with the
//! ratio of the second to the first when two ran, so a reader sees what the embedded backend
//! costs without reading two sections against each other.

use std::fmt::Write as _;

use super::BackendResults;
use super::format::{LABEL, Text, mb, num};

/// A headline figure: its label (with unit) and how to read it from a backend's results.
struct Row {
    label: &'static str,
    value: fn(&BackendResults) -> Option<f64>,
}

const ROWS: &[Row] = &[
    Row {
        label: "chain throughput (steps/s)",
        value: |b| b.chain.as_ref().map(|c| c.steps_per_s()),
    },
    Row {
        label: "chain throughput, server side (steps/s)",
        value: |b| b.chain.as_ref().map(|c| c.server_steps_per_s()),
    },
    Row {
        label: "chain StartRun call p50, loaded (ms)",
        value: |b| b.chain.as_ref()?.start_rpc_ms.as_ref().map(|s| s.p50),
    },
    Row {
        label: "fan-out throughput (steps/s)",
        value: |b| b.fanout.as_ref().map(|f| f.steps_per_s()),
    },
    Row {
        label: "lone 10-step chain p50 (ms)",
        value: |b| b.lone.as_ref().map(|l| l.latency_ms.p50),
    },
    Row {
        label: "lone 10-step chain p99 (ms)",
        value: |b| b.lone.as_ref().map(|l| l.latency_ms.p99),
    },
    Row {
        label: "job enqueued → started, loaded, p50 (ms)",
        value: |b| {
            b.chain_dispatch
                .as_ref()?
                .enqueue_to_start
                .as_ref()
                .map(|s| s.p50)
        },
    },
    Row {
        label: "job enqueued → started, loaded, p99 (ms)",
        value: |b| {
            b.chain_dispatch
                .as_ref()?
                .enqueue_to_start
                .as_ref()
                .map(|s| s.p99)
        },
    },
    Row {
        label: "step end → dependent start, loaded, p50 (ms)",
        value: |b| {
            b.chain_dispatch
                .as_ref()?
                .end_to_next_start
                .as_ref()
                .map(|s| s.p50)
        },
    },
    Row {
        label: "step end → dependent start, lone, p50 (ms)",
        value: |b| {
            b.lone_dispatch
                .as_ref()?
                .end_to_next_start
                .as_ref()
                .map(|s| s.p50)
        },
    },
    Row {
        label: "http steps (steps/s)",
        value: |b| b.http.as_ref().map(|h| h.http_steps_per_s()),
    },
    Row {
        label: "http step started → ended, p50 (ms)",
        value: |b| b.http.as_ref()?.step_ms.as_ref().map(|s| s.p50),
    },
    Row {
        label: "http step started → ended, p99 (ms)",
        value: |b| b.http.as_ref()?.step_ms.as_ref().map(|s| s.p99),
    },
    Row {
        label: "peak RSS, all processes together (MB)",
        value: peak_mb,
    },
];

/// The sum over the processes of each one's highest reading in any phase, MB.
fn peak_mb(b: &BackendResults) -> Option<f64> {
    let per_process = (0..b.services.len()).map(|i| {
        b.memory
            .iter()
            .filter_map(|row| row.kb.get(i).copied().flatten())
            .max()
    });
    per_process
        .collect::<Option<Vec<u64>>>()
        .map(|kb| mb(kb.iter().sum()))
}

/// Width of a backend's column.
const COLUMN: usize = 14;

/// Appends the side-by-side table of `backends` (in the order they ran).
pub fn table(t: &mut Text, backends: &[BackendResults]) {
    let names: Vec<&str> = backends.iter().map(|b| b.backend.name()).collect();
    t.heading(&format!(
        "Side by side: the same scenarios on the same machine (targets: {}; the others are for \
         reference)",
        backends
            .iter()
            .filter(|b| b.backend.has_targets())
            .map(|b| b.backend.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let ratio = (names.len() == 2).then(|| format!("{} ÷ {}", names[1], names[0]));
    let _ = write!(t.out, "  {:<LABEL$}", "");
    for name in &names {
        let _ = write!(t.out, "{name:>COLUMN$}");
    }
    if let Some(ratio) = &ratio {
        let _ = write!(t.out, "   {ratio}");
    }
    let _ = writeln!(t.out);
    for row in ROWS {
        let values: Vec<Option<f64>> = backends.iter().map(row.value).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(t.out, "  {:<LABEL$}", row.label);
        for v in &values {
            let cell = v.map_or_else(|| "n/a".to_owned(), num);
            let _ = write!(t.out, "{cell:>COLUMN$}");
        }
        if ratio.is_some()
            && let [Some(first), Some(second)] = values[..]
            && first != 0.0
        {
            let _ = write!(t.out, "   {:.2}×", second / first);
        }
        let _ = writeln!(t.out);
    }
}
