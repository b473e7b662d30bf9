//! How resource usage and worker host facts are stored: JSON objects with the proto's field
//! names, the same in every backend, so a value written by one reads back in full.

use baton_proto::v1;

use crate::WorkerHost;

/// Resource usage as stored.
pub(crate) fn usage_to_json(u: &v1::ResourceUsage) -> serde_json::Value {
    serde_json::json!({
        "queue_time_ms": u.queue_time_ms,
        "execution_time_ms": u.execution_time_ms,
        "total_duration_ms": u.total_duration_ms,
        "memory_start_mb": u.memory_start_mb,
        "memory_peak_mb": u.memory_peak_mb,
        "memory_end_mb": u.memory_end_mb,
        "cpu_percent": u.cpu_percent,
        "thread_count": u.thread_count,
    })
}

pub(crate) fn usage_from_json(v: &serde_json::Value) -> v1::ResourceUsage {
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    let float = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    v1::ResourceUsage {
        queue_time_ms: int("queue_time_ms"),
        execution_time_ms: int("execution_time_ms"),
        total_duration_ms: int("total_duration_ms"),
        memory_start_mb: float("memory_start_mb"),
        memory_peak_mb: float("memory_peak_mb"),
        memory_end_mb: float("memory_end_mb"),
        cpu_percent: float("cpu_percent"),
        thread_count: u32::try_from(int("thread_count")).unwrap_or(0),
    }
}

/// Host facts as stored.
pub(crate) fn host_to_json(h: &WorkerHost) -> serde_json::Value {
    serde_json::json!({
        "worker_id": h.worker_id,
        "os": h.os,
        "arch": h.arch,
        "hostname": h.hostname,
        "physical_cores": h.physical_cores,
        "logical_cores": h.logical_cores,
        "total_memory_mb": h.total_memory_mb,
        "runtime_version": h.runtime_version,
        "container_runtime": h.container_runtime,
        "pid": h.pid,
    })
}

pub(crate) fn host_from_json(v: &serde_json::Value) -> WorkerHost {
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    WorkerHost {
        worker_id: text("worker_id"),
        os: text("os"),
        arch: text("arch"),
        hostname: text("hostname"),
        physical_cores: u32::try_from(int("physical_cores")).unwrap_or(0),
        logical_cores: u32::try_from(int("logical_cores")).unwrap_or(0),
        total_memory_mb: v
            .get("total_memory_mb")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        runtime_version: text("runtime_version"),
        container_runtime: text("container_runtime"),
        pid: int("pid"),
    }
}

/// A JSON value as text; `None` (SQL NULL) stays apart from `Some(null)` (the text `null`).
pub(crate) fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(serde_json::Value::to_string)
}
