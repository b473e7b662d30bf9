//! `baton`: the command line for the Baton orchestrator. This file only wires things together:
//! it parses the arguments, runs the chosen command and turns its outcome into an exit code.

mod args;
mod client;
mod commands;
mod inputs;
mod json;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = client::normalize_addr(&cli.addr);
    match commands::dispatch(cli).await {
        Ok(code) => code,
        Err(err) => client::report_error(&err, &addr),
    }
}
