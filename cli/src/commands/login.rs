//! `baton auth login|logout|whoami|token`: the token this CLI sends to `--addr`, kept in the
//! credentials file by address, checked against the orchestrator before it is saved, and handed
//! to other clients on request (`export BATON_TOKEN=$(baton auth token)`).

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use baton_auth::credentials::{Credentials, ServerCredentials, server_key};
use serde_json::json;

use super::{Ctx, info};
use crate::client::LOGIN_HINT;
use crate::json::role_label;
use crate::output::{outln, print_json};
use crate::token::{Source, Token, credentials_path};

/// Reads the token to log in with: `--token`/`BATON_TOKEN`, else standard input (a line typed
/// at a terminal, or everything piped in).
fn token_to_save(ctx: &Ctx) -> anyhow::Result<Token> {
    if matches!(ctx.token.source, Source::Flag | Source::Env) {
        return Ok(ctx.token.clone());
    }
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("Token for {} (input is shown): ", ctx.addr);
        stdin
            .read_line(&mut text)
            .context("cannot read the token from the terminal")?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
    }
    let token = Token::from_stdin(&text);
    if token.expose().is_none() {
        bail!(
            "no token to log in with: pass --token, set BATON_TOKEN, or give it on standard input"
        );
    }
    Ok(token)
}

pub async fn login(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let token = token_to_save(ctx)?;
    let checked = ctx.with_token(token.clone())?;
    let info = match info::fetch(&checked).await {
        Ok(info) => info,
        Err(err) => {
            if let Some(status) = err.downcast_ref::<tonic::Status>()
                && status.code() == tonic::Code::Unauthenticated
            {
                bail!(
                    "{} did not accept {}: {}; nothing was saved",
                    ctx.addr,
                    token.describe(),
                    status.message()
                );
            }
            return Err(err);
        }
    };
    info::warn_if_disabled(&ctx.addr, &info);
    let path = credentials_path()?;
    let mut credentials = Credentials::load(&path)?;
    credentials.set(
        &ctx.addr,
        ServerCredentials {
            token: token.expose().unwrap_or_default().to_owned(),
            tenant: info.tenant.clone(),
        },
    );
    credentials.save(&path)?;
    if ctx.json() {
        print_json(
            &json!({
                "addr": server_key(&ctx.addr),
                "principal": info.principal,
                "tenant": info.tenant,
                "role": role_label(info.role),
                "credentials_file": path.display().to_string(),
            }),
            false,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "logged in to {} as {}; the token is saved in {}",
        ctx.addr,
        info::caller(&info),
        path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn logout(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let path = credentials_path()?;
    let mut credentials = Credentials::load(&path)?;
    let removed = credentials.servers.remove(&server_key(&ctx.addr)).is_some();
    if removed {
        credentials.save(&path)?;
        outln!("removed the token for {} from {}", ctx.addr, path.display())?;
    } else {
        outln!("{} holds no token for {}", path.display(), ctx.addr)?;
    }
    if matches!(ctx.token.source, Source::Flag | Source::Env) {
        eprintln!(
            "note: the CLI still sends {} until it is no longer given",
            ctx.token.describe()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn source_label(source: &Source) -> &'static str {
    match source {
        Source::Flag => "--token",
        Source::Env => "BATON_TOKEN",
        Source::File(_) => "credentials file",
        Source::Stdin => "standard input",
        Source::Missing { .. } => "none",
    }
}

pub async fn whoami(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let info = info::fetch(ctx).await?;
    info::warn_if_disabled(&ctx.addr, &info);
    let file = match &ctx.token.source {
        Source::File(path) => Some(path.display().to_string()),
        _ => None,
    };
    if ctx.json() {
        print_json(
            &json!({
                "addr": server_key(&ctx.addr),
                "principal": info.principal,
                "tenant": info.tenant,
                "role": role_label(info.role),
                "auth_mode": info.auth_mode,
                "token_source": source_label(&ctx.token.source),
                "credentials_file": file,
                "key_id": ctx.token.key_id(),
            }),
            false,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let or_dash = |text: &str| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.to_owned()
        }
    };
    outln!("principal  {}", or_dash(&info.principal))?;
    outln!("tenant     {}", or_dash(&info.tenant))?;
    outln!(
        "role       {}",
        if info.role == 0 {
            "-".to_owned()
        } else {
            role_label(info.role)
        }
    )?;
    outln!("auth       {}", or_dash(&info.auth_mode))?;
    outln!("server     {}", ctx.addr)?;
    outln!("token      {}", ctx.token.describe())?;
    Ok(ExitCode::SUCCESS)
}

pub fn token(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let Some(token) = ctx.token.expose() else {
        let why = ctx
            .token
            .why_missing(&ctx.addr)
            .unwrap_or_else(|| "no token".to_owned());
        bail!("{why}; {LOGIN_HINT}");
    };
    if ctx.json() {
        print_json(
            &json!({
                "addr": server_key(&ctx.addr),
                "token": token,
                "source": source_label(&ctx.token.source),
            }),
            false,
        )?;
    } else {
        outln!("{token}")?;
    }
    Ok(ExitCode::SUCCESS)
}
