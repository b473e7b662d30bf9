//! `baton run start|get|list|cancel`: starting runs and reading their state. Following a run's
//! events lives in the `follow` module, which `start --follow` hands over to.

use std::process::ExitCode;

use anyhow::{Context, bail};
use baton_proto::v1::{
    CancelRunRequest, ListRunsRequest, ResourceUsage, Run, RunStatus, StartRunRequest, StepAttempt,
    StepRun,
};
use serde_json::{Map, Value, json};

use super::{Ctx, follow};
use crate::args::{RunCancelArgs, RunIdArgs, RunListArgs, RunStartArgs};
use crate::inputs::{merge_inputs, read_inputs_file};
use crate::json::{self, embedded, run_status_label, step_status_label};
use crate::output::{Table, local_time, outln, print_json, shorten, span_text};

/// How many characters of a step's error or output the step table shows.
const CELL_WIDTH: usize = 60;

pub async fn start(ctx: &Ctx, args: RunStartArgs) -> anyhow::Result<ExitCode> {
    let base = match &args.inputs_file {
        Some(path) => read_inputs_file(path)?,
        None => Map::new(),
    };
    let inputs = merge_inputs(base, &args.inputs);
    let request = StartRunRequest {
        workflow_ref: args.workflow_ref,
        inputs_json: Value::Object(inputs).to_string(),
        idempotency_key: args.idempotency_key.unwrap_or_default(),
        tenant: args.tenant.unwrap_or_default(),
    };
    let response = ctx.runs().start_run(request).await?.into_inner();
    let run = response.run.context("the orchestrator returned no run")?;
    if ctx.json() {
        // When following, every line of output is one JSON object.
        print_json(
            &json!({ "created": response.created, "run": json::run(&run, true) }),
            args.follow,
        )?;
    } else if response.created {
        outln!("started run {}", run.id)?;
    } else {
        outln!("existing run {} (idempotency key)", run.id)?;
    }
    if args.follow {
        return follow::follow_run(ctx, &run.id, 0).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn get(ctx: &Ctx, args: RunIdArgs) -> anyhow::Result<ExitCode> {
    let run = ctx.fetch_run(&args.run_id).await?;
    if ctx.json() {
        print_json(&json::run(&run, true), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_run_text(&run)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn list(ctx: &Ctx, args: RunListArgs) -> anyhow::Result<ExitCode> {
    let limit = (args.limit > 0).then_some(args.limit);
    let mut page_size = args.page_size.unwrap_or(0);
    if let Some(limit) = limit {
        // Do not fetch a page much larger than what will be shown.
        let wanted = i32::try_from(limit).unwrap_or(i32::MAX).min(1000);
        page_size = if page_size == 0 {
            wanted.min(100)
        } else {
            page_size.min(wanted)
        };
    }
    let mut client = ctx.runs();
    let mut runs: Vec<Run> = Vec::new();
    let mut page_token = String::new();
    let mut more = false;
    loop {
        let request = ListRunsRequest {
            tenant: args.tenant.clone().unwrap_or_default(),
            page_size,
            page_token: page_token.clone(),
            workflow_ref: args.workflow_ref.clone().unwrap_or_default(),
            status: args.status.map_or(RunStatus::Unspecified, RunStatus::from) as i32,
        };
        let page = client.list_runs(request).await?.into_inner();
        runs.extend(page.runs);
        if let Some(limit) = limit
            && runs.len() >= limit
        {
            more = runs.len() > limit || !page.next_page_token.is_empty();
            runs.truncate(limit);
            break;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == page_token {
            bail!("the orchestrator returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
    if ctx.json() {
        print_json(&runs.iter().map(|r| json::run(r, false)).collect(), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        outln!("no runs")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["ID", "WORKFLOW", "STATUS", "CREATED", "DURATION"]);
    for run in &runs {
        table.row(vec![
            run.id.clone(),
            run.workflow_ref.clone(),
            run_status_label(run.status),
            local_time(run.created_at.as_ref()),
            span_text(run.started_at.as_ref(), run.ended_at.as_ref()),
        ]);
    }
    table.print()?;
    if more {
        eprintln!(
            "(showing the first {} runs; use --limit to see more)",
            runs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(ctx: &Ctx, args: RunCancelArgs) -> anyhow::Result<ExitCode> {
    let request = CancelRunRequest {
        run_id: args.run_id,
        reason: args.reason.unwrap_or_default(),
    };
    let response = ctx.runs().cancel_run(request).await?.into_inner();
    let run = response.run.context("the orchestrator returned no run")?;
    if ctx.json() {
        print_json(&json::run(&run, true), false)?;
    } else {
        outln!("run {} is {}", run.id, run_status_label(run.status))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's header and its step table.
fn print_run_text(run: &Run) -> std::io::Result<()> {
    outln!("run       {}", run.id)?;
    outln!("workflow  {}", run.workflow_ref)?;
    outln!("tenant    {}", run.tenant)?;
    outln!("status    {}", run_status_label(run.status))?;
    if !run.idempotency_key.is_empty() {
        outln!("key       {}", run.idempotency_key)?;
    }
    outln!("created   {}", local_time(run.created_at.as_ref()))?;
    outln!("started   {}", local_time(run.started_at.as_ref()))?;
    outln!("ended     {}", local_time(run.ended_at.as_ref()))?;
    outln!(
        "duration  {}",
        span_text(run.started_at.as_ref(), run.ended_at.as_ref())
    )?;
    if !run.error.is_empty() {
        outln!("error     {}", run.error)?;
    }
    outln!("inputs    {}", compact_json(&run.inputs_json))?;
    if !run.output_json.is_empty() {
        outln!("output    {}", compact_json(&run.output_json))?;
    }
    if run.steps.is_empty() {
        return Ok(());
    }
    outln!()?;
    let mut table = Table::new(&[
        "STEP",
        "KIND",
        "STATUS",
        "ATTEMPT",
        "DURATION",
        "ERROR/OUTPUT",
    ]);
    for step in &run.steps {
        table.row(vec![
            step.step_id.clone(),
            step.kind.clone(),
            step_status_label(step.status),
            if step.attempt == 0 {
                "-".to_owned()
            } else {
                step.attempt.to_string()
            },
            span_text(step.started_at.as_ref(), step.ended_at.as_ref()),
            step_detail(step),
        ]);
    }
    table.print()?;
    print_attempts(run)
}

/// Each finished attempt with what it cost, and the workers that ran them.
fn print_attempts(run: &Run) -> std::io::Result<()> {
    let with_usage: Vec<(&StepRun, &StepAttempt, &ResourceUsage)> = run
        .steps
        .iter()
        .flat_map(|s| s.attempts.iter().map(move |a| (s, a)))
        .filter_map(|(s, a)| a.usage.as_ref().map(|u| (s, a, u)))
        .collect();
    if with_usage.is_empty() {
        return Ok(());
    }
    outln!()?;
    let mut table = Table::new(&[
        "STEP",
        "ATTEMPT",
        "STATUS",
        "QUEUE",
        "EXEC",
        "TOTAL",
        "MEM START/PEAK/END MB",
        "CPU%",
        "THREADS",
        "WORKER",
    ]);
    for (step, attempt, u) in with_usage {
        table.row(vec![
            step.step_id.clone(),
            attempt.attempt.to_string(),
            step_status_label(attempt.status),
            format!("{}ms", u.queue_time_ms),
            format!("{}ms", u.execution_time_ms),
            format!("{}ms", u.total_duration_ms),
            format!(
                "{:.1}/{:.1}/{:.1}",
                u.memory_start_mb, u.memory_peak_mb, u.memory_end_mb
            ),
            format!("{:.1}", u.cpu_percent),
            u.thread_count.to_string(),
            attempt.worker_id.clone(),
        ]);
    }
    table.print()?;
    for w in &run.workers {
        outln!(
            "worker {}: {} {}/{} on {}, {} physical / {} logical cores, {:.0} MB, container {}, pid {}",
            w.worker_id,
            w.runtime_version,
            w.os,
            w.arch,
            w.hostname,
            w.physical_cores,
            w.logical_cores,
            w.total_memory_mb,
            w.container_runtime,
            w.pid
        )?;
    }
    Ok(())
}

/// The error of a step, else its output, on one short line.
fn step_detail(step: &StepRun) -> String {
    if !step.error.is_empty() {
        return shorten(&step.error, CELL_WIDTH);
    }
    if step.output_json.is_empty() {
        return String::new();
    }
    shorten(&compact_json(&step.output_json), CELL_WIDTH)
}

/// Embedded JSON re-serialised on one line; `{}` when empty.
fn compact_json(text: &str) -> String {
    match embedded(text) {
        Value::Null if text.trim().is_empty() => "{}".to_owned(),
        value => value.to_string(),
    }
}
