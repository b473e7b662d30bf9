//! Facts about the machine a worker runs on, gathered once per worker process.

use baton_proto::v1;
use baton_runtime::env::Env;

/// The hostname, when the kernel does not tell it.
const HOSTNAME_VAR: &str = "HOSTNAME";
/// Set by Kubernetes in every container of a pod.
const KUBERNETES_SERVICE_HOST_VAR: &str = "KUBERNETES_SERVICE_HOST";

/// This process and its machine, as far as the platform tells.
pub fn host_facts(worker_id: &str) -> v1::WorkerHost {
    let env = Env::os();
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let hostname = read("/proc/sys/kernel/hostname").trim().to_owned();
    let hostname = if hostname.is_empty() {
        env.string_or(HOSTNAME_VAR, "")
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
        container_runtime: container_runtime(&env).to_owned(),
        pid: i64::from(std::process::id()),
    }
}

fn container_runtime(env: &Env) -> &'static str {
    container_runtime_from(
        env.var(KUBERNETES_SERVICE_HOST_VAR).is_some(),
        &std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default(),
        std::path::Path::new("/.dockerenv").exists(),
    )
}

/// The container runtime told by the Kubernetes service variable, the init process's cgroups
/// and Docker's marker file, in that order.
fn container_runtime_from(
    kubernetes_env: bool,
    init_cgroup: &str,
    dockerenv: bool,
) -> &'static str {
    if kubernetes_env || init_cgroup.contains("kubepods") {
        "kubernetes"
    } else if dockerenv || init_cgroup.contains("docker") {
        "docker"
    } else {
        "none"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::process::Command;

    use super::*;

    /// What a tool of the platform prints, trimmed; the test needs the tool.
    fn tool(program: &str, args: &[&str]) -> String {
        let output = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} is needed to check host facts: {e}"));
        assert!(output.status.success(), "{program} {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The facts, checked against what the system's own tools report (Linux, as CI runs).
    #[test]
    fn facts_match_what_the_system_reports() {
        let host = host_facts("w1");
        assert_eq!(host.worker_id, "w1");
        assert_eq!(host.os, "linux");
        assert_eq!(host.arch, std::env::consts::ARCH);
        assert_eq!(host.pid, i64::from(std::process::id()));
        assert_eq!(host.hostname, tool("uname", &["-n"]));
        assert!(
            host.runtime_version
                .contains(&format!("baton-worker {}", env!("CARGO_PKG_VERSION"))),
            "{}",
            host.runtime_version
        );

        // Logical cores are the ones this process may use, at most every online one.
        let online: u32 = tool("nproc", &[]).parse().unwrap();
        assert!(
            (1..=online).contains(&host.logical_cores),
            "{} logical of {online}",
            host.logical_cores
        );
        // Physical cores are the distinct (socket, core) pairs the kernel lists.
        let cores: HashSet<String> = tool("lscpu", &["-p=SOCKET,CORE"])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        assert_eq!(host.physical_cores as usize, cores.len(), "{cores:?}");

        let pages: f64 = tool("getconf", &["_PHYS_PAGES"]).parse().unwrap();
        let page_size: f64 = tool("getconf", &["PAGESIZE"]).parse().unwrap();
        let total_mb = pages * page_size / (1024.0 * 1024.0);
        assert!(
            (host.total_memory_mb - total_mb).abs() <= 1.0,
            "{} MB reported, {total_mb} MB in the system",
            host.total_memory_mb
        );

        let expected = container_runtime_from(
            Env::os().var(KUBERNETES_SERVICE_HOST_VAR).is_some(),
            &std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default(),
            std::path::Path::new("/.dockerenv").exists(),
        );
        assert_eq!(host.container_runtime, expected);
    }

    #[test]
    fn kubernetes_is_told_by_its_service_variable() {
        let in_pod = Env::from_pairs([(KUBERNETES_SERVICE_HOST_VAR, "10.96.0.1")]);
        assert_eq!(container_runtime(&in_pod), "kubernetes");
        // Outside a pod the answer rests on the cgroups and Docker's marker alone.
        let outside = Env::from_pairs([]);
        let expected = container_runtime_from(
            false,
            &std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default(),
            std::path::Path::new("/.dockerenv").exists(),
        );
        assert_eq!(container_runtime(&outside), expected);
    }

    #[test]
    fn container_runtime_from_its_signs() {
        let k8s_cgroup = "0::/kubepods/besteffort/pod1/abc";
        let docker_cgroup = "12:memory:/docker/0123abcd";
        assert_eq!(container_runtime_from(true, "0::/", false), "kubernetes");
        assert_eq!(
            container_runtime_from(false, k8s_cgroup, true),
            "kubernetes"
        );
        assert_eq!(
            container_runtime_from(false, docker_cgroup, false),
            "docker"
        );
        assert_eq!(container_runtime_from(false, "0::/", true), "docker");
        assert_eq!(
            container_runtime_from(false, "0::/init.scope", false),
            "none"
        );
    }
}
