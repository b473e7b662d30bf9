//! The command line grammar, declared with clap's derive API. Kept apart from the commands so the
//! whole surface of `baton` can be read in one place.

use std::path::PathBuf;

use baton_proto::v1::RunStatus;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::inputs::parse_input;

/// Command line for the Baton workflow orchestrator.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about, propagate_version = true)]
pub struct Cli {
    /// Address of the orchestrator's gRPC API.
    #[arg(
        long,
        global = true,
        env = "BATON_ADDR",
        default_value = "http://127.0.0.1:8002"
    )]
    pub addr: String,
    /// The API key or JWT to send as `authorization: Bearer <token>`. Without it (and without
    /// BATON_TOKEN), the token saved for `--addr` in the credentials file (`baton auth login`,
    /// `baton dev`): BATON_CREDENTIALS, else ~/.config/baton/credentials.json.
    #[arg(
        long,
        global = true,
        env = "BATON_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text and tables.
    Text,
    /// Machine-readable JSON (one object per line for streams).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register and inspect workflow definitions.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Start, inspect, cancel and follow runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// List, inspect and replay dead letters: messages set aside because they failed on their
    /// own content.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// Show which build of the orchestrator answers, and how it authenticates callers.
    Info,
    /// API keys, and the token this CLI sends: create, list and revoke keys; log in and out;
    /// show who you are to the orchestrator.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Run all of Baton in this process on one SQLite file (nothing else to install), until
    /// Ctrl-C: the same gRPC API, health, metrics and pprof as the separate services.
    Dev(DevArgs),
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead letters, oldest first.
    List(DeadLettersListArgs),
    /// Show one dead letter with its payload decoded.
    Show(DeadLetterIdArgs),
    /// Send a dead letter back to the stream it came from, once, and remove it.
    Replay(DeadLetterIdArgs),
}

#[derive(Debug, Args)]
pub struct DeadLettersListArgs {
    /// Show at most this many letters; 0 shows them all.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON (the same as `--output json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeadLetterIdArgs {
    /// The dead letter's id, as `baton dead-letters list` shows it.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print JSON (the same as `--output json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Create, list and revoke API keys (an admin's job).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check a token against `--addr` and save it in the credentials file for that address.
    /// The token is `--token` or BATON_TOKEN, else read from standard input.
    Login,
    /// Remove the token saved for `--addr` from the credentials file.
    Logout,
    /// Show who the orchestrator takes you for: principal, tenant, role and its auth mode.
    Whoami,
    /// Print the token the CLI would send to `--addr`, so other clients can use it:
    /// `export BATON_TOKEN=$(baton auth token)`.
    Token,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print its token, the only time it is shown.
    Create(KeyCreateArgs),
    /// List a tenant's API keys, newest first (never their tokens).
    List(KeyListArgs),
    /// Revoke an API key: calls made with it fail from then on.
    Revoke(KeyRevokeArgs),
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// What the key may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The key's tenant: yours unless set (another needs an admin of the system tenant).
    /// With --database-url or --db, the system tenant (BATON_SYSTEM_TENANT, else `default`).
    #[arg(long)]
    pub tenant: Option<String>,
    /// What the key is for, e.g. `ci deploys`.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Write the key straight into this PostgreSQL database instead of asking the orchestrator:
    /// how the first key is made, before any exists. The schema is migrated first.
    #[arg(long, value_name = "URL", conflicts_with = "db")]
    pub database_url: Option<String>,
    /// Write the key straight into this `baton dev` database file.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// The tenant whose keys to list: yours unless set (another needs an admin of the system
    /// tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Revoked keys too.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key's id, as `baton auth key list` shows it.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// A role as written on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Also manages the tenant's API keys (and, in the system tenant, the dead letters).
    Admin,
    /// Also registers workflows, starts and cancels runs, answers approvals.
    Operator,
    /// Reads runs, workflows and their events.
    Viewer,
}

impl From<RoleArg> for baton_auth::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Self::Admin,
            RoleArg::Operator => Self::Operator,
            RoleArg::Viewer => Self::Viewer,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Register a workflow definition from a YAML or JSON file.
    Apply(WorkflowApplyArgs),
    /// List registered workflows.
    List(WorkflowListArgs),
    /// Show one workflow.
    Get(WorkflowGetArgs),
}

#[derive(Debug, Args)]
pub struct WorkflowApplyArgs {
    /// The definition file (`.yaml`, `.yml` or `.json`); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// The tenant; only with auth disabled may it differ from yours (`default` when unset).
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkflowListArgs {
    /// Only workflows of this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Workflows fetched per request (1 to 1000).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
    /// The tenant; only with auth disabled may it differ from yours (`default` when unset).
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkflowGetArgs {
    /// `owner/name@version`, or `owner/name` for the latest version.
    #[arg(value_name = "REF")]
    pub workflow_ref: String,
    /// The tenant; only with auth disabled may it differ from yours (`default` when unset).
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Start a run of a registered workflow.
    Start(RunStartArgs),
    /// Show a run with its steps.
    Get(RunIdArgs),
    /// List runs, newest first.
    List(RunListArgs),
    /// Cancel a run.
    Cancel(RunCancelArgs),
    /// Follow a run's events until it ends; exits 0 only when it completed.
    Watch(RunWatchArgs),
}

#[derive(Debug, Args)]
pub struct RunStartArgs {
    /// `owner/name@version`, or `owner/name` for the latest version.
    #[arg(value_name = "WORKFLOW")]
    pub workflow_ref: String,
    /// An input as KEY=VALUE; VALUE is parsed as JSON when it can be, else taken as a string.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE", value_parser = parse_input)]
    pub inputs: Vec<(String, serde_json::Value)>,
    /// A JSON or YAML file holding an object of inputs; `--input` overrides its keys.
    #[arg(long, value_name = "FILE")]
    pub inputs_file: Option<PathBuf>,
    /// Starting again with the same key (per tenant) returns the first run.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// The tenant; only with auth disabled may it differ from yours (`default` when unset).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Follow the run like `baton run watch`; exits 0 only when it completed.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct RunIdArgs {
    /// The run id.
    #[arg(value_name = "ID")]
    pub run_id: String,
}

#[derive(Debug, Args)]
pub struct RunListArgs {
    /// The tenant; only with auth disabled may it differ from yours (`default` when unset).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only runs of this workflow (`owner/name@version`).
    #[arg(long = "workflow", value_name = "REF")]
    pub workflow_ref: Option<String>,
    /// Only runs in this status.
    #[arg(long, value_enum)]
    pub status: Option<RunStatusArg>,
    /// Runs fetched per request (1 to 1000).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
    /// Show at most this many runs; 0 shows them all.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct RunCancelArgs {
    /// The run id.
    #[arg(value_name = "ID")]
    pub run_id: String,
    /// Why the run is cancelled; recorded on the run and its steps.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunWatchArgs {
    /// The run id.
    #[arg(value_name = "ID")]
    pub run_id: String,
    /// Only show events with a sequence number greater than this; 0 replays them all.
    #[arg(long, default_value_t = 0)]
    pub after_sequence: i64,
}

/// A run status as written on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunStatusArg {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    #[value(name = "timed_out", alias = "timed-out")]
    TimedOut,
}

impl From<RunStatusArg> for RunStatus {
    fn from(status: RunStatusArg) -> Self {
        match status {
            RunStatusArg::Queued => RunStatus::Queued,
            RunStatusArg::Running => RunStatus::Running,
            RunStatusArg::Completed => RunStatus::Completed,
            RunStatusArg::Failed => RunStatus::Failed,
            RunStatusArg::Cancelled => RunStatus::Cancelled,
            RunStatusArg::TimedOut => RunStatus::TimedOut,
        }
    }
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The SQLite file that holds every workflow, run and queued job (created when missing).
    #[arg(long, value_name = "FILE", default_value = baton_dev::DEFAULT_DB)]
    pub db: PathBuf,
    /// The address every port binds (loopback by default: nothing is reachable from elsewhere).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// The gRPC API's port (the orchestrator's; 0 picks a free one).
    #[arg(long, default_value_t = 8002)]
    pub port: u16,
    /// Put every other port (HTTP, runner health, Prometheus, pprof) on a free one instead of
    /// the services' usual ports, so it runs beside other Baton processes.
    #[arg(long)]
    pub free_side_ports: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_run_start() {
        let cli = Cli::try_parse_from([
            "baton",
            "run",
            "start",
            "examples/hello@1",
            "--input",
            "name=Ada",
            "-i",
            "count=3",
            "--follow",
        ])
        .unwrap();
        let Command::Run(RunCommand::Start(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.workflow_ref, "examples/hello@1");
        assert_eq!(args.inputs.len(), 2);
        assert_eq!(args.inputs[1], ("count".to_owned(), serde_json::json!(3)));
        assert!(args.follow);
    }

    #[test]
    fn rejects_input_without_equals() {
        let err =
            Cli::try_parse_from(["baton", "run", "start", "a/b@1", "--input", "oops"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }

    #[test]
    fn global_options_after_subcommand() {
        let cli = Cli::try_parse_from([
            "baton",
            "run",
            "get",
            "r1",
            "--output",
            "json",
            "--addr",
            "http://x:1",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.addr, "http://x:1");
    }

    #[test]
    fn parses_dead_letters() {
        let cli = Cli::try_parse_from(["baton", "dead-letters", "list", "--limit", "5", "--json"])
            .unwrap();
        let Command::DeadLetters(DeadLettersCommand::List(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!((args.limit, args.json), (5, true));
        let cli = Cli::try_parse_from(["baton", "dead-letters", "replay", "17-0"]).unwrap();
        let Command::DeadLetters(DeadLettersCommand::Replay(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!((args.id.as_str(), args.json), ("17-0", false));
        assert!(Cli::try_parse_from(["baton", "dead-letters", "show"]).is_err());
    }

    #[test]
    fn parses_auth_commands_and_a_global_token() {
        let matches = Cli::command()
            .try_get_matches_from([
                "baton", "auth", "key", "create", "--role", "viewer", "--tenant", "acme",
                "--token", "bk_x",
            ])
            .unwrap();
        // The source tells `--token` from BATON_TOKEN in messages.
        assert_eq!(
            matches.value_source("token"),
            Some(clap::parser::ValueSource::CommandLine)
        );
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(cli.token.as_deref(), Some("bk_x"));
        let Command::Auth(AuthCommand::Key(KeyCommand::Create(args))) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.role, RoleArg::Viewer);
        assert_eq!(args.tenant.as_deref(), Some("acme"));
        assert!(
            Cli::try_parse_from([
                "baton",
                "auth",
                "key",
                "create",
                "--role",
                "admin",
                "--db",
                "a.db",
                "--database-url",
                "postgres://x",
            ])
            .is_err(),
            "--db and --database-url exclude each other"
        );
        assert!(Cli::try_parse_from(["baton", "auth", "key", "create"]).is_err());
        let cli = Cli::try_parse_from(["baton", "auth", "key", "list", "--all"]).unwrap();
        let Command::Auth(AuthCommand::Key(KeyCommand::List(args))) = cli.command else {
            panic!("wrong command")
        };
        assert!(args.all);
        let cli = Cli::try_parse_from(["baton", "auth", "key", "revoke", "0123"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Auth(AuthCommand::Key(KeyCommand::Revoke(KeyRevokeArgs { id }))) if id == "0123"
        ));
    }

    #[test]
    fn help_never_shows_the_token_from_the_environment() {
        let command = Cli::command();
        let token = command
            .get_arguments()
            .find(|a| a.get_id() == "token")
            .unwrap();
        assert_eq!(token.get_env(), Some(std::ffi::OsStr::new("BATON_TOKEN")));
        assert!(token.is_hide_env_values_set());
    }

    #[test]
    fn status_accepts_both_spellings() {
        for spelling in ["timed_out", "timed-out"] {
            let cli = Cli::try_parse_from(["baton", "run", "list", "--status", spelling]).unwrap();
            let Command::Run(RunCommand::List(args)) = cli.command else {
                panic!("wrong command")
            };
            assert_eq!(args.status, Some(RunStatusArg::TimedOut));
        }
    }
}
