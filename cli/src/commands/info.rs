//! `baton info`: which build of the orchestrator answers at `--addr`; a quick connectivity check.

use std::process::ExitCode;

use baton_proto::v1::{GetInfoRequest, info_service_client::InfoServiceClient};

use super::Ctx;
use crate::json;
use crate::output::{format_duration, outln, print_json};

pub async fn info(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let info = InfoServiceClient::new(ctx.channel.clone())
        .get_info(GetInfoRequest {})
        .await?
        .into_inner();
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
    Ok(ExitCode::SUCCESS)
}
