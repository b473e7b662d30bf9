//! The commands behind `baton …`, one module per noun. [`Ctx`] carries what every command needs:
//! the orchestrator connection and the chosen output format.

mod dead_letters;
mod dev;
mod follow;
mod info;
mod run;
mod workflow;

use std::process::ExitCode;

use anyhow::Context as _;
use baton_proto::v1::{
    GetRunRequest, Run, run_service_client::RunServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use tonic::transport::Channel;

use crate::args::{Cli, Command, DeadLettersCommand, OutputFormat, RunCommand, WorkflowCommand};
use crate::client;

/// What every command needs.
pub struct Ctx {
    output: OutputFormat,
    channel: Channel,
}

impl Ctx {
    fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    fn workflows(&self) -> WorkflowServiceClient<Channel> {
        WorkflowServiceClient::new(self.channel.clone())
    }

    fn runs(&self) -> RunServiceClient<Channel> {
        RunServiceClient::new(self.channel.clone())
    }

    /// GetRun, unwrapped.
    async fn fetch_run(&self, run_id: &str) -> anyhow::Result<Run> {
        let request = GetRunRequest {
            run_id: run_id.to_owned(),
        };
        let response = self.runs().get_run(request).await?.into_inner();
        response.run.context("the orchestrator returned no run")
    }
}

/// Runs the command chosen on the command line and returns the process's exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Dev(args) = cli.command {
        return dev::dev(args).await;
    }
    let addr = client::normalize_addr(&cli.addr);
    let ctx = Ctx {
        output: cli.output,
        channel: client::channel(&addr)?,
    };
    match cli.command {
        Command::Workflow(WorkflowCommand::Apply(args)) => workflow::apply(&ctx, args).await,
        Command::Workflow(WorkflowCommand::List(args)) => workflow::list(&ctx, args).await,
        Command::Workflow(WorkflowCommand::Get(args)) => workflow::get(&ctx, args).await,
        Command::Run(RunCommand::Start(args)) => run::start(&ctx, args).await,
        Command::Run(RunCommand::Get(args)) => run::get(&ctx, args).await,
        Command::Run(RunCommand::List(args)) => run::list(&ctx, args).await,
        Command::Run(RunCommand::Cancel(args)) => run::cancel(&ctx, args).await,
        Command::Run(RunCommand::Watch(args)) => {
            follow::follow_run(&ctx, &args.run_id, args.after_sequence).await
        }
        Command::DeadLetters(DeadLettersCommand::List(args)) => {
            dead_letters::list(&ctx, args).await
        }
        Command::DeadLetters(DeadLettersCommand::Show(args)) => {
            dead_letters::show(&ctx, args).await
        }
        Command::DeadLetters(DeadLettersCommand::Replay(args)) => {
            dead_letters::replay(&ctx, args).await
        }
        Command::Info => info::info(&ctx).await,
        Command::Dev(_) => unreachable!("handled before connecting"),
    }
}
