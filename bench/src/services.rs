//! The service processes under test: the real release binaries, spawned as children with their
//! output in log files, so the bench measures what a deployment runs (and each process's memory)
//! rather than an in-process imitation.

use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a service gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to start one service process.
pub struct Launch<'a> {
    /// For logs and errors; also the log file's name.
    pub name: &'static str,
    pub binary: &'a Path,
    pub args: Vec<OsString>,
    /// The port the service's gRPC server listens on.
    pub port: u16,
    /// Set on top of the inherited environment.
    pub env: Vec<(&'static str, String)>,
    /// Removed from the inherited environment, so the service cannot use them by accident.
    pub unset: &'static [&'static str],
}

/// A spawned service.
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub log: PathBuf,
    child: Child,
    stopped: bool,
}

impl Service {
    /// Starts `launch.binary` with the inherited environment (less `unset`) plus `env`, pprof off,
    /// its stdout and stderr going to `log_dir/<name>.log`.
    pub fn spawn(launch: &Launch<'_>, log_dir: &Path) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{}.log", launch.name));
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = Command::new(launch.binary);
        for variable in launch.unset {
            command.env_remove(variable);
        }
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("ENABLE_PPROF", "false")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.binary.display()))?;
        Ok(Self {
            name: launch.name,
            port: launch.port,
            log,
            child,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails if the process has ended (the caller shows the log).
    pub fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.exited() {
            bail!("{} exited unexpectedly ({status})", self.name);
        }
        Ok(())
    }

    /// The last `lines` lines of the service's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        if tail.is_empty() {
            "  (empty)".to_owned()
        } else {
            tail.iter().map(|l| format!("  | {l}\n")).collect()
        }
    }

    /// Stops the process: SIGTERM (with the `kill` command), then SIGKILL after a grace period.
    /// Blocks; safe to call more than once.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not stop within {STOP_GRACE:?} of SIGTERM; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` distinct free loopback ports (held together while choosing, so they differ).
pub fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find a free loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Waits until something accepts TCP connections on the loopback port, while the service runs.
pub async fn wait_port(service: &mut Service, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        service.ensure_alive()?;
        if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, service.port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {} within {timeout:?}",
                service.name,
                service.port
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The path of a service binary in `dir`, with a hint when it is missing.
pub fn binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; build the release binaries first (`cargo build --release --bins`) \
             or pass --bin-dir",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_differ() {
        let ports = free_ports(3).unwrap();
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    }

    #[test]
    fn a_service_sees_its_env_and_not_the_unset_variables() {
        let dir = std::env::temp_dir().join(format!("baton-bench-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Cargo sets this for the test process; the service must not see it.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let launch = Launch {
            name: "printer",
            binary: Path::new("/bin/sh"),
            args: vec![
                "-c".into(),
                "echo \"A=$BENCH_A DIR=${CARGO_MANIFEST_DIR-unset}\"".into(),
            ],
            port: 1,
            env: vec![("BENCH_A", "1".to_owned())],
            unset: &["CARGO_MANIFEST_DIR"],
        };
        let mut service = Service::spawn(&launch, &dir).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while service.exited().is_none() {
            assert!(Instant::now() < deadline, "the shell did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = std::fs::read_to_string(&service.log).unwrap();
        assert_eq!(log, "A=1 DIR=unset\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stop_ends_a_child_with_sigterm() {
        use std::os::unix::process::ExitStatusExt as _;

        let dir = std::env::temp_dir().join(format!("baton-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let launch = Launch {
            name: "sleeper",
            binary: Path::new("sleep"),
            args: vec!["30".into()],
            port: 1,
            env: Vec::new(),
            unset: &[],
        };
        let mut service = Service::spawn(&launch, &dir).unwrap();
        assert!(service.ensure_alive().is_ok());
        service.stop();
        // Ended by the SIGTERM, not by the SIGKILL that follows the grace period.
        let status = service.exited().expect("stopped");
        assert_eq!(status.signal(), Some(15), "{status}");
        assert!(service.ensure_alive().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
