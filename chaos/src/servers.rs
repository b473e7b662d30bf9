//! The suite's own Redis and PostgreSQL: fresh server processes on free loopback ports with their
//! data in a temporary directory, so killing, emptying or stopping them never touches a shared
//! server. Dropping [`Servers`] stops both and removes the directory, on every exit path.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

use crate::process;

/// How long a server may take to answer after it was started.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a stopping server gets before its process group is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);
/// The OS user PostgreSQL runs as when the suite runs as root (initdb refuses root).
const POSTGRES_USER: &str = "postgres";

/// A Redis and a PostgreSQL of the suite's own, under one temporary directory.
pub struct Servers {
    pub redis: RedisServer,
    pub postgres: PostgresServer,
    root: PathBuf,
}

impl Servers {
    /// Creates the directory, starts Redis, and initialises and starts PostgreSQL.
    pub async fn start() -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let root = std::env::temp_dir().join(format!("baton-chaos-{}", &id[..12]));
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        // Dropped on an early return, so a failed start removes what it made.
        let mut redis = RedisServer::new(&root)?;
        let mut postgres = PostgresServer::new(&root)?;
        let started = async {
            redis.start().await?;
            postgres.init().await?;
            postgres.start().await
        }
        .await;
        let servers = Self {
            redis,
            postgres,
            root,
        };
        started?;
        Ok(servers)
    }

    /// Where the servers' data and logs live.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.postgres.shutdown();
        self.redis.shutdown();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A `redis-server` with persistence off, on a fixed loopback port for its whole life, so a
/// restart comes back where the services expect it.
pub struct RedisServer {
    pub port: u16,
    root: PathBuf,
    /// Bumped on each start: every start gets an empty data directory of its own.
    generation: u32,
    child: Option<Child>,
}

impl RedisServer {
    fn new(root: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            port: process::free_port()?,
            root: root.to_owned(),
            generation: 0,
            child: None,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts an empty server and waits until it answers PING.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "redis-server is already running");
        self.generation += 1;
        let dir = self.root.join(format!("redis-{}", self.generation));
        std::fs::create_dir_all(&dir)?;
        let log = File::create(self.root.join(format!("redis-{}.log", self.generation)))?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--daemonize", "no"]);
        let child = process::spawn_group(&mut command, log)
            .context("cannot start redis-server (install it: make deps)")?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if self.ping().await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "redis-server exited during start-up ({status}); see {}",
                    self.log_path().display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "redis-server did not answer on port {} within {READY_WITHIN:?}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.root.join(format!("redis-{}.log", self.generation))
    }

    /// `kill -9` of the server, as a crash would; everything it held is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("redis-server is not running")?;
        process::kill_group(&mut child, "KILL", STOP_WITHIN).await;
        Ok(())
    }

    /// Kills the server and starts a new one on the same port. It is empty: it starts in a
    /// fresh directory with persistence off (its key count proves nothing, since the services
    /// write again as soon as it answers), and its `run_id` shows it is another process.
    pub async fn restart_empty(&mut self) -> anyhow::Result<()> {
        let before = self.run_id().await?;
        self.kill().await?;
        self.start().await?;
        let after = self.run_id().await?;
        anyhow::ensure!(before != after, "Redis was not replaced (run_id {after})");
        Ok(())
    }

    /// The server's `run_id`, which is new for every start.
    async fn run_id(&self) -> anyhow::Result<String> {
        let mut conn = redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        info.lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
            .context("INFO server has no run_id")
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_group_blocking(&mut child, "KILL", STOP_WITHIN);
        }
    }
}

/// A PostgreSQL cluster initialised by `initdb` in the temporary directory, its `postgres`
/// process listening on a loopback port and its unix socket in that directory.
pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    /// `postgres` when the suite runs as root: initdb and postgres refuse to run as root.
    run_as: Option<&'static str>,
    starts: u32,
    child: Option<Child>,
}

impl PostgresServer {
    fn new(root: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            port: process::free_port()?,
            bin: postgres_bin_dir()?,
            dir: root.join("postgres"),
            run_as: process::is_root().then_some(POSTGRES_USER),
            starts: 0,
            child: None,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The URL of the server's `postgres` database, for creating databases.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A command running `program` from the server's bin directory, as the postgres user when
    /// the suite runs as root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        // A directory the postgres user may enter, whatever the suite's own is.
        command.current_dir(&self.dir);
        command
    }

    /// `initdb` with trust authentication for the `postgres` role.
    async fn init(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.data())?;
        if let Some(user) = self.run_as {
            let chown = Command::new("chown")
                .args(["-R", &format!("{user}:")])
                .arg(&self.dir)
                .status()
                .context("cannot run chown")?;
            anyhow::ensure!(chown.success(), "chown of {} failed", self.dir.display());
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(self.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        let output = tokio::process::Command::from(initdb)
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run initdb (install PostgreSQL: make deps)")?;
        if !output.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("postgres-{}.log", self.starts))
    }

    /// Starts the server (after a hard stop, it recovers from its WAL first) and waits until it
    /// accepts connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "postgres is already running");
        self.starts += 1;
        let log = File::create(self.log_path())?;
        let mut command = self.command("postgres");
        // fsync off: the faults kill processes, not the machine, so the OS keeps every write.
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "max_connections=200"]);
        let child = process::spawn_group(&mut command, log).context("cannot start postgres")?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            let connected =
                <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url()).await;
            if let Ok(conn) = connected {
                let _ = sqlx::Connection::close(conn).await;
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "postgres exited during start-up ({status}):\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!("postgres did not accept connections within {READY_WITHIN:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The postmaster's pid, from `postmaster.pid` (the first process under `runuser`).
    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the server hard, as `pg_ctl stop -m immediate` does (SIGQUIT to the postmaster:
    /// every backend ends at once, nothing is checkpointed, the next start recovers).
    pub async fn stop_immediate(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("postgres is not running")?;
        if let Some(pid) = self.postmaster_pid() {
            process::signal(&pid.to_string(), "QUIT");
        }
        if !process::wait_exit(&mut child, STOP_WITHIN).await {
            process::kill_group(&mut child, "KILL", STOP_WITHIN).await;
        }
        Ok(())
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let _ = sqlx::Connection::close(conn).await;
        Ok(self.url(name))
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = self.postmaster_pid() {
                process::signal(&pid.to_string(), "QUIT");
            }
            process::kill_group_blocking(&mut child, "KILL", STOP_WITHIN);
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `postgres` and `initdb`, else the
/// directory of `initdb` on `PATH`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("postgres").is_file() && dir.join("initdb").is_file();
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_server(dir))
        .context(
            "no PostgreSQL server found (under /usr/lib/postgresql/*/bin or on PATH); \
             install it with `make deps`",
        )
}
