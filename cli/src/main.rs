//! `baton`: the command line for the Baton orchestrator. This file only wires things together:
//! it parses the arguments, finds the token to send, runs the chosen command and turns its
//! outcome into an exit code.

mod args;
mod client;
mod commands;
mod inputs;
mod json;
mod output;
mod token;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

use crate::args::Cli;
use crate::token::Token;

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let addr = client::normalize_addr(&cli.addr);
    let from_env = matches.value_source("token") == Some(ValueSource::EnvVariable);
    let token = Token::resolve(cli.token.as_deref(), from_env, &addr);
    let hint_token = token.as_ref().ok().cloned();
    match commands::dispatch(cli, addr.clone(), token).await {
        Ok(code) => code,
        Err(err) => client::report_error(
            &err,
            &client::Hints {
                addr: &addr,
                token: hint_token.as_ref(),
            },
        ),
    }
}
