//! Facts about the machine a worker runs on, gathered once per worker process.

use baton_proto::v1;

/// This process and its machine, as far as the platform tells.
pub fn host_facts(worker_id: &str) -> v1::WorkerHost {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let hostname = read("/proc/sys/kernel/hostname").trim().to_owned();
    let hostname = if hostname.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_default()
    } else {
        hostname
    };
    let cpuinfo = read("/proc/cpuinfo");
    let mut cores = std::collections::HashSet::new();
    let (mut physical, mut core) = (String::new(), String::new());
    for line in cpuinfo.lines() {
        if let Some(v) = line.strip_prefix("physical id") {
            physical = v.trim_start_matches([' ', '\t', ':']).to_owned();
        } else if let Some(v) = line.strip_prefix("core id") {
            core = v.trim_start_matches([' ', '\t', ':']).to_owned();
        } else if line.trim().is_empty() && !core.is_empty() {
            cores.insert((physical.clone(), core.clone()));
        }
    }
    let logical = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
    let total_memory_mb = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0).round());
    v1::WorkerHost {
        worker_id: worker_id.to_owned(),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        hostname,
        physical_cores: if cores.is_empty() {
            logical
        } else {
            cores.len() as u32
        },
        logical_cores: logical,
        total_memory_mb,
        runtime_version: format!("baton-worker {} (Rust, tokio)", env!("CARGO_PKG_VERSION")),
        container_runtime: container_runtime().to_owned(),
        pid: i64::from(std::process::id()),
    }
}

fn container_runtime() -> &'static str {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return "kubernetes";
    }
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    if cgroup.contains("kubepods") {
        "kubernetes"
    } else if std::path::Path::new("/.dockerenv").exists() || cgroup.contains("docker") {
        "docker"
    } else {
        "none"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn facts_describe_this_machine() {
        let host = super::host_facts("w1");
        assert_eq!(host.worker_id, "w1");
        assert_eq!(host.os, std::env::consts::OS);
        assert!(host.logical_cores >= 1);
        assert!(host.physical_cores >= 1 && host.physical_cores <= host.logical_cores);
        assert!(["docker", "kubernetes", "none"].contains(&host.container_runtime.as_str()));
    }
}
