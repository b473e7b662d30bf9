//! The service processes under test: the real release binaries, spawned as children with their
//! output in log files, so the bench measures what a deployment runs (and each process's memory)
//! rather than an in-process imitation. Each binds port 0 and the bench reads the ports it got
//! from the `listening` lines of its log, so no port chosen ahead can be taken meanwhile.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
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
    /// Set on top of the inherited environment.
    pub env: Vec<(&'static str, String)>,
    /// Removed from the inherited environment, so the service cannot use them by accident.
    pub unset: &'static [&'static str],
}

/// The setting naming the port of a service's gRPC server, as its `listening` line names it.
pub const GRPC_PORT: &str = "GRPC_PORT";

/// The JSON log format (whose `listening` lines tell the bound ports) and a `LOG_LEVEL` that keeps
/// those lines at any `level`: `baton_service::bind` logs them for the separate services,
/// `baton_dev` for `baton dev`, and neither logs anything else at info.
pub fn log_env(level: &str) -> [(&'static str, String); 2] {
    [
        ("LOG_FORMAT", "json".to_owned()),
        (
            "LOG_LEVEL",
            format!("{level},baton_service::bind=info,baton_dev=info"),
        ),
    ]
}

/// A spawned service.
pub struct Service {
    pub name: &'static str,
    pub log: PathBuf,
    /// What the service said it listens on, by setting (`GRPC_PORT`, ...), once
    /// [`Service::wait_listening`] has read it.
    addrs: HashMap<String, SocketAddr>,
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
            log,
            addrs: HashMap::new(),
            child,
            stopped: false,
        })
    }

    /// The port the service said it listens on for `variable`, if it has said so yet.
    pub fn port(&self, variable: &str) -> Option<u16> {
        self.addrs.get(variable).map(SocketAddr::port)
    }

    /// The gRPC port it listens on; fails if it has not said so.
    pub fn grpc_port(&self) -> anyhow::Result<u16> {
        self.port(GRPC_PORT)
            .with_context(|| format!("{} has not logged its {GRPC_PORT}", self.name))
    }

    /// Waits, while the process runs and for at most `timeout`, until its log has a `listening`
    /// line for each of `variables`; returns then, having recorded every address logged so far.
    pub async fn wait_listening(
        &mut self,
        variables: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            // A line being written fails to parse and is read whole on the next look.
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            self.addrs
                .extend(text.lines().filter_map(baton_service::parse_listening));
            if variables.iter().all(|v| self.addrs.contains_key(*v)) {
                return Ok(());
            }
            self.ensure_alive()?;
            if Instant::now() > deadline {
                let missing: Vec<&str> = variables
                    .iter()
                    .copied()
                    .filter(|v| !self.addrs.contains_key(*v))
                    .collect();
                // The caller shows the log's tail, as for every start-up failure.
                bail!(
                    "{} logged no `listening` line for {} within {timeout:?} (its log: {})",
                    self.name,
                    missing.join(", "),
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    #[tokio::test]
    async fn the_ports_are_read_from_the_listening_lines_of_the_log() {
        let dir = std::env::temp_dir().join(format!("baton-bench-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // What `LOG_FORMAT=json` writes, one line at a time, among other lines.
        let line = |variable: &str, addr: &str| {
            format!(
                r#"{{"level":"INFO","fields":{{"message":"listening","variable":"{variable}","addr":"{addr}"}},"target":"baton_service::bind"}}"#
            )
        };
        let script = format!(
            "echo starting; sleep 0.2; echo '{}'; sleep 0.2; echo '{}'; sleep 30",
            line("METRICS_PORT", "127.0.0.1:41001"),
            line("GRPC_PORT", "0.0.0.0:41002"),
        );
        let launch = Launch {
            name: "announcer",
            binary: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            unset: &[],
        };
        let mut service = Service::spawn(&launch, &dir).unwrap();
        assert!(service.grpc_port().is_err());
        service
            .wait_listening(&[GRPC_PORT], Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(service.grpc_port().unwrap(), 41002);
        assert_eq!(service.port("METRICS_PORT"), Some(41001));
        let error = service
            .wait_listening(&["HTTP_PORT"], Duration::from_millis(100))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("announcer") && error.contains("HTTP_PORT"),
            "{error}"
        );
        service.stop();
        let error = service
            .wait_listening(&["HTTP_PORT"], Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("exited"), "{error}");
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
