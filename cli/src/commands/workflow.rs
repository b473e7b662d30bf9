//! `baton workflow apply|list|get`: registering definitions and reading them back.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use baton_proto::v1::{
    DefinitionFormat, GetWorkflowRequest, ListWorkflowsRequest, RegisterWorkflowRequest, Workflow,
};
use serde_json::json;

use super::Ctx;
use crate::args::{WorkflowApplyArgs, WorkflowGetArgs, WorkflowListArgs};
use crate::json;
use crate::output::{Table, local_time, outln, print_json};

pub async fn apply(ctx: &Ctx, args: WorkflowApplyArgs) -> anyhow::Result<ExitCode> {
    let (definition, format) = read_definition(&args.file)?;
    let response = ctx
        .workflows()
        .register_workflow(RegisterWorkflowRequest {
            definition,
            format: format as i32,
            tenant: args.tenant.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let workflow = response
        .workflow
        .context("the orchestrator returned no workflow")?;
    if ctx.json() {
        print_json(
            &json!({ "created": response.created, "workflow": json::workflow(&workflow) }),
            false,
        )?;
    } else if response.created {
        outln!(
            "registered {} (digest {})",
            workflow.workflow_ref,
            short_digest(&workflow.digest)
        )?;
    } else {
        outln!("unchanged {}", workflow.workflow_ref)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(ctx: &Ctx, args: WorkflowListArgs) -> anyhow::Result<ExitCode> {
    let mut client = ctx.workflows();
    let mut workflows: Vec<Workflow> = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListWorkflowsRequest {
            page_size: args.page_size.unwrap_or(0),
            page_token: page_token.clone(),
            owner: args.owner.clone().unwrap_or_default(),
            tenant: args.tenant.clone().unwrap_or_default(),
        };
        let page = client.list_workflows(request).await?.into_inner();
        workflows.extend(page.workflows);
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == page_token {
            bail!("the orchestrator returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
    if ctx.json() {
        print_json(&workflows.iter().map(json::workflow).collect(), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    if workflows.is_empty() {
        outln!("no workflows")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["REF", "STEPS", "CREATED"]);
    for wf in &workflows {
        table.row(vec![
            wf.workflow_ref.clone(),
            wf.steps.len().to_string(),
            local_time(wf.created_at.as_ref()),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn get(ctx: &Ctx, args: WorkflowGetArgs) -> anyhow::Result<ExitCode> {
    let response = ctx
        .workflows()
        .get_workflow(GetWorkflowRequest {
            workflow_ref: args.workflow_ref,
            tenant: args.tenant.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let wf = response
        .workflow
        .context("the orchestrator returned no workflow")?;
    if ctx.json() {
        print_json(&json::workflow(&wf), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("workflow  {}", wf.workflow_ref)?;
    outln!("digest    {}", wf.digest)?;
    outln!("created   {}", local_time(wf.created_at.as_ref()))?;
    outln!()?;
    let mut table = Table::new(&["STEP", "KIND", "NEEDS"]);
    for step in &wf.steps {
        let needs = if step.needs.is_empty() {
            "-".to_owned()
        } else {
            step.needs.join(", ")
        };
        table.row(vec![step.id.clone(), step.kind.clone(), needs]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a definition and picks its format from the file extension; `-` reads standard input.
fn read_definition(path: &Path) -> anyhow::Result<(String, DefinitionFormat)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the definition from standard input")?;
        return Ok((text, DefinitionFormat::Unspecified));
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read definition file {}", path.display()))?;
    Ok((text, format_for(path)))
}

fn format_for(path: &Path) -> DefinitionFormat {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => DefinitionFormat::Json,
        Some("yaml" | "yml") => DefinitionFormat::Yaml,
        _ => DefinitionFormat::Unspecified,
    }
}

fn short_digest(digest: &str) -> String {
    match digest.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &digest[..end]),
        None => digest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extension() {
        assert_eq!(
            format_for(Path::new("a/hello.json")),
            DefinitionFormat::Json
        );
        assert_eq!(format_for(Path::new("hello.YAML")), DefinitionFormat::Yaml);
        assert_eq!(format_for(Path::new("hello.yml")), DefinitionFormat::Yaml);
        assert_eq!(
            format_for(Path::new("hello.txt")),
            DefinitionFormat::Unspecified
        );
        assert_eq!(
            format_for(Path::new("hello")),
            DefinitionFormat::Unspecified
        );
    }

    #[test]
    fn digests_are_shortened() {
        assert_eq!(short_digest("abcd1234ef567890"), "abcd1234…");
        assert_eq!(short_digest("abcd"), "abcd");
    }
}
