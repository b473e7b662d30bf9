//! Process plumbing the faults need: children in process groups of their own (so a kill takes
//! every process a server forked), signals sent with the `kill` command (the workspace forbids
//! `unsafe`, and with it libc), free ports, and finding a service's pid by a marker variable.

use std::{
    fs::File,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A loopback port nothing listens on at this moment.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether the suite runs with effective uid 0 (CI does).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            uids.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Spawns `command` as the leader of a new process group, its output going to `log`.
pub fn spawn_group(command: &mut Command, log: File) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt as _;
    let err = log.try_clone()?;
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
}

/// Sends `signal` (`KILL`, `STOP`, ...) to `target`: a pid, or `-<pgid>` for a process group.
/// Returns whether `kill` succeeded.
pub fn signal(target: &str, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits up to `within` for `child` to exit; whether it did.
pub async fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Signals `child`'s whole process group and waits for the child to exit.
pub async fn kill_group(child: &mut Child, sig: &str, within: Duration) {
    signal(&format!("-{}", child.id()), sig);
    if !wait_exit(child, within).await {
        signal(&format!("-{}", child.id()), "KILL");
        let _ = child.wait();
    }
}

/// [`kill_group`] for `Drop`, where nothing can be awaited.
pub fn kill_group_blocking(child: &mut Child, sig: &str, within: Duration) {
    signal(&format!("-{}", child.id()), sig);
    let deadline = std::time::Instant::now() + within;
    while matches!(child.try_wait(), Ok(None)) {
        if std::time::Instant::now() > deadline {
            signal(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid of this process's child whose environment holds `marker` (`NAME=value`).
/// [`baton_testkit::ServiceProcess`] does not expose its child's pid, and SIGSTOP needs it.
pub fn child_pid_with(marker: &str) -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces, so split after its `)`.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            if ppid != me {
                return None;
            }
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
                .then_some(pid)
        })
}
