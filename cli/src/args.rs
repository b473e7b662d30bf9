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
    /// Show which build of the orchestrator answers.
    Info,
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
}

#[derive(Debug, Args)]
pub struct WorkflowListArgs {
    /// Only workflows of this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Workflows fetched per request (1 to 1000).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
}

#[derive(Debug, Args)]
pub struct WorkflowGetArgs {
    /// `owner/name@version`, or `owner/name` for the latest version.
    #[arg(value_name = "REF")]
    pub workflow_ref: String,
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
    /// The tenant; the orchestrator uses `default` when unset.
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
    /// The tenant; the orchestrator uses `default` when unset.
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
    use clap::CommandFactory;

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
