//! `baton info`: which build of the orchestrator answers at `--addr`, how it authenticates
//! callers and who it takes this caller for; a quick connectivity check.

use std::process::ExitCode;

use baton_proto::v1::{GetInfoRequest, GetInfoResponse, info_service_client::InfoServiceClient};

use super::Ctx;
use crate::json;
use crate::output::{format_duration, outln, print_json};

/// The auth mode of an orchestrator that lets every caller in.
pub const DISABLED: &str = "disabled";

/// GetInfo, unwrapped.
pub(super) async fn fetch(ctx: &Ctx) -> anyhow::Result<GetInfoResponse> {
    Ok(InfoServiceClient::new(ctx.conn())
        .get_info(GetInfoRequest {})
        .await?
        .into_inner())
}

/// Says on stderr, so no script reading stdout misses it on a terminal, that `addr` lets anyone in.
pub(super) fn warn_if_disabled(addr: &str, info: &GetInfoResponse) {
    if info.auth_mode == DISABLED {
        eprintln!(
            "WARNING: authentication is DISABLED at {addr} (BATON_AUTH=disabled): every caller, \
             with or without a token, is an admin of every tenant. For development only."
        );
    }
}

/// `key:0123… (tenant default, role admin)`, or `anonymous`.
pub(super) fn caller(info: &GetInfoResponse) -> String {
    let principal = if info.principal.is_empty() {
        "-"
    } else {
        &info.principal
    };
    let mut parts = Vec::new();
    if !info.tenant.is_empty() {
        parts.push(format!("tenant {}", info.tenant));
    }
    if info.role != 0 {
        parts.push(format!("role {}", json::role_label(info.role)));
    }
    if parts.is_empty() {
        principal.to_owned()
    } else {
        format!("{principal} ({})", parts.join(", "))
    }
}

pub async fn info(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let info = fetch(ctx).await?;
    warn_if_disabled(&ctx.addr, &info);
    if ctx.json() {
        print_json(&json::info(&info), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("service   {}", info.service)?;
    outln!("version   {}", info.version)?;
    outln!(
        "revision  {}",
        if info.git_revision.is_empty() {
            "-"
        } else {
            &info.git_revision
        }
    )?;
    outln!(
        "uptime    {}",
        format_duration(info.uptime_seconds.saturating_mul(1_000_000))
    )?;
    outln!(
        "auth      {}",
        if info.auth_mode.is_empty() {
            "-"
        } else {
            &info.auth_mode
        }
    )?;
    outln!("caller    {}", caller(&info))?;
    Ok(ExitCode::SUCCESS)
}
