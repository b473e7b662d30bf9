//! The commands behind `baton …`, one module per noun. [`Ctx`] carries what every command needs:
//! the orchestrator connection (which sends the caller's token) and the chosen output format.

mod dead_letters;
mod dev;
mod follow;
mod info;
mod keys;
mod login;
mod run;
mod workflow;

use std::process::ExitCode;

use anyhow::Context as _;
use baton_proto::v1::{
    GetRunRequest, Run, run_service_client::RunServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use tonic::transport::Channel;

use crate::args::{
    AuthCommand, Cli, Command, DeadLettersCommand, KeyCommand, OutputFormat, RunCommand,
    WorkflowCommand,
};
use crate::client::{self, Conn};
use crate::token::Token;

/// What every command needs.
pub struct Ctx {
    output: OutputFormat,
    /// The orchestrator's address, normalized (`http://host:port`).
    addr: String,
    channel: Channel,
    /// What the CLI sends as `authorization: Bearer ...`, and where it came from.
    token: Token,
    bearer: baton_auth::Bearer,
}

impl Ctx {
    fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// The same connection with another token.
    fn with_token(&self, token: Token) -> anyhow::Result<Self> {
        Ok(Self {
            output: self.output,
            addr: self.addr.clone(),
            channel: self.channel.clone(),
            bearer: token.bearer()?,
            token,
        })
    }

    /// The connection, sending the token on every call.
    fn conn(&self) -> Conn {
        Conn::new(self.channel.clone(), self.bearer.clone())
    }

    fn workflows(&self) -> WorkflowServiceClient<Conn> {
        WorkflowServiceClient::new(self.conn())
    }

    fn runs(&self) -> RunServiceClient<Conn> {
        RunServiceClient::new(self.conn())
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

/// Runs the command chosen on the command line and returns the process's exit code. `token` is
/// what `--token`, `BATON_TOKEN` or the credentials file gave for `addr`; its failure (an
/// unreadable credentials file) matters only to the commands that send one.
pub async fn dispatch(
    cli: Cli,
    addr: String,
    token: anyhow::Result<Token>,
) -> anyhow::Result<ExitCode> {
    if let Command::Dev(args) = cli.command {
        return dev::dev(args).await;
    }
    if let Command::Auth(AuthCommand::Key(KeyCommand::Create(args))) = &cli.command
        && (args.database_url.is_some() || args.db.is_some())
    {
        return keys::create_in_store(cli.output, &addr, args).await;
    }
    let token = token?;
    let ctx = Ctx {
        output: cli.output,
        channel: client::channel(&addr)?,
        bearer: token.bearer()?,
        token,
        addr,
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
        Command::Auth(AuthCommand::Key(KeyCommand::Create(args))) => keys::create(&ctx, args).await,
        Command::Auth(AuthCommand::Key(KeyCommand::List(args))) => keys::list(&ctx, args).await,
        Command::Auth(AuthCommand::Key(KeyCommand::Revoke(args))) => keys::revoke(&ctx, args).await,
        Command::Auth(AuthCommand::Login) => login::login(&ctx).await,
        Command::Auth(AuthCommand::Logout) => login::logout(&ctx),
        Command::Auth(AuthCommand::Whoami) => login::whoami(&ctx).await,
        Command::Auth(AuthCommand::Token) => login::token(&ctx),
        Command::Dev(_) => unreachable!("handled before connecting"),
    }
}
