//! The figures as JSON. The production backend's figures keep the keys they had before there
//! were two backends, at the top level, so older readers still work; the embedded backend's are
//! the same keys in an `embedded` object. Every block of figures names its backend.

use serde_json::{Map, Value, json};

use super::format::mb;
use super::{BackendResults, DispatchSummary, Results};
use crate::backend::Backend;
use crate::stats::json_or_null;
use crate::throughput;

impl Results {
    pub fn json(&self) -> Value {
        let mut top = Map::new();
        top.insert("machine".into(), self.machine.to_json());
        top.insert("memory_sample_ms".into(), json!(self.memory_sample_ms));
        let names: Vec<&str> = self.backends.iter().map(|b| b.backend.name()).collect();
        top.insert("backends".into(), json!(names));
        match self.backend(Backend::Production) {
            Some(production) => top.extend(production.json()),
            // Not run: the production keys say so as a skipped scenario always has.
            None => {
                for key in ["chain", "fanout", "lone", "dispatch", "http"] {
                    top.insert(key.into(), Value::Null);
                }
                top.insert("memory".into(), json!([]));
                top.insert("targets".into(), json!([]));
            }
        }
        top.insert(
            "embedded".into(),
            self.backend(Backend::Embedded)
                .map_or(Value::Null, |b| Value::Object(b.json())),
        );
        Value::Object(top)
    }

    fn backend(&self, backend: Backend) -> Option<&BackendResults> {
        self.backends.iter().find(|b| b.backend == backend)
    }
}

impl BackendResults {
    fn json(&self) -> Map<String, Value> {
        let backend = self.backend.name();
        let throughput = |o: &throughput::Outcome| {
            json!({
                "backend": backend,
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
                let per_service: Map<String, Value> = self
                    .services
                    .iter()
                    .zip(&row.kb)
                    .map(|(s, kb)| (s.name.clone(), json!(kb.map(mb))))
                    .collect();
                json!({ "backend": backend, "phase": row.phase, "peak": row.peak, "mb": per_service })
            })
            .collect();
        // `null` on a backend without targets: none apply (an empty list would say none were
        // measured).
        let targets = if self.backend.has_targets() {
            let checks: Vec<Value> = self
                .checks()
                .iter()
                .map(|c| {
                    json!({ "backend": backend, "name": c.name, "value": c.value, "unit": c.unit,
                            "target": c.target, "ok": c.ok })
                })
                .collect();
            json!(checks)
        } else {
            Value::Null
        };
        let dispatch = |d: &DispatchSummary| {
            let mut out = Map::new();
            out.insert("backend".into(), json!(backend));
            for (key, _, s) in d.delays() {
                out.insert(key.into(), json_or_null(s));
            }
            Value::Object(out)
        };
        let mut dispatches = Map::new();
        for (key, _, d) in self.dispatches() {
            dispatches.insert(key.into(), d.map_or(Value::Null, dispatch));
        }
        let mut out = Map::new();
        out.insert("backend".into(), json!(backend));
        for v in &self.versions {
            out.insert(v.key.into(), json!(v.version));
        }
        out.insert(
            "services".into(),
            self.services
                .iter()
                .map(|s| json!({ "name": s.name, "build": s.build }))
                .collect(),
        );
        out.insert("chain".into(), json!(self.chain.as_ref().map(throughput)));
        out.insert("fanout".into(), json!(self.fanout.as_ref().map(throughput)));
        out.insert(
            "lone".into(),
            json!(self.lone.as_ref().map(|l| json!({
                "backend": backend,
                "runs": l.runs,
                "warmup_runs": l.warmup,
                "steps_per_run": l.steps_per_run,
                "latency_ms": l.latency_ms.to_json(),
                "start_rpc_ms": json_or_null(l.start_rpc_ms.as_ref()),
                "end_event_delivery_ms": json_or_null(l.delivery_ms.as_ref()),
                "server_created_to_started_ms": json_or_null(l.server_start_ms.as_ref()),
                "server_created_to_ended_ms": json_or_null(l.server_end_ms.as_ref()),
            }))),
        );
        out.insert(
            "http".into(),
            json!(self.http.as_ref().map(|h| {
                // The throughput figures of its runs, and the http steps' own.
                let mut figures = throughput(&h.throughput);
                figures["branches"] = json!(h.branches);
                figures["http_steps"] = json!(h.http_steps());
                figures["http_steps_per_s"] = json!(h.http_steps_per_s());
                figures["server_http_steps_per_s"] = json!(h.server_http_steps_per_s());
                figures["requests_seen"] = json!(h.requests);
                figures["extra_requests"] = json!(h.extra_requests());
                figures["http_step_ms"] = json_or_null(h.step_ms.as_ref());
                figures
            })),
        );
        out.insert("dispatch".into(), Value::Object(dispatches));
        out.insert("memory".into(), json!(memory));
        out.insert("targets".into(), targets);
        out.insert("history".into(), self.history_json());
        out
    }
}
