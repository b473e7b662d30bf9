//! The planner under its limits: a step over one fails, alone, with the limit named, and the
//! limits it is given (not the defaults) are the ones that apply.

use baton_workflow::{DefinitionFormat, TemplateLimits, compile, parse_definition};
use serde_json::json;

use super::*;
use crate::{Limits, StepState};

fn workflow(yaml: &str) -> CompiledWorkflow {
    compile(parse_definition(yaml, DefinitionFormat::Yaml).unwrap(), &[]).unwrap()
}

fn new_run(inputs: Json) -> RunState {
    RunState {
        id: uuid::Uuid::new_v4(),
        tenant: "default".into(),
        workflow_ref: "t/w@1".into(),
        status: RunStatus::Queued,
        inputs,
        output: None,
        error: None,
        idempotency_key: None,
        max_parallel: 0,
        deadline: None,
        created_at: 0,
        started_at: None,
        ended_at: None,
        last_sequence: 1,
        trace_context: Default::default(),
        steps: Vec::new(),
        dirty: false,
        steps_created: false,
        new_events: Vec::new(),
        new_attempts: Vec::new(),
    }
}

fn config(limits: Limits) -> EngineConfig {
    EngineConfig {
        limits,
        ..EngineConfig::default()
    }
}

fn step<'a>(run: &'a RunState, id: &str) -> &'a StepState {
    run.steps.iter().find(|s| s.step_id == id).unwrap()
}

/// The messages of the run's step-failed events.
fn failures(run: &RunState) -> Vec<String> {
    run.new_events
        .iter()
        .filter(|e| e.event_type == Ev::StepFailed)
        .map(|e| e.message.clone().unwrap_or_default())
        .collect()
}

/// `a` echoes `input`, `b` needs it, and `side` runs beside them.
fn echo_then_noop(input: &str) -> String {
    format!(
        "owner: t\nname: w\nversion: 1\nexecution: {{concurrency: {{maxParallel: 2}}}}\nsteps:\n  \
         - {{id: a, kind: echo, retry: {{max_attempts: 3}}, input: {input}}}\n  \
         - {{id: b, kind: noop, needs: [a]}}\n  \
         - {{id: side, kind: noop}}\n"
    )
}

/// Starts a run and asserts that `a` failed at dispatch, alone, with `error`.
fn assert_fails_at_dispatch(cfg: &EngineConfig, yaml: &str, inputs: Json, error: &str) {
    let wf = workflow(yaml);
    let mut run = new_run(inputs);
    let mut fx = Effects::default();
    start_run(&mut run, &wf, cfg, 0, &mut fx);
    let a = step(&run, "a");
    assert_eq!(a.status, StepStatus::Failed, "{:?}", run.new_events);
    assert_eq!(a.error.as_deref(), Some(error));
    assert_eq!(a.attempt, 0, "no attempt was used");
    assert_eq!(failures(&run), vec![error.to_owned()]);
    assert_eq!(step(&run, "b").status, StepStatus::Skipped);
    let sent: Vec<_> = fx.jobs.iter().map(|j| j.step_id.as_str()).collect();
    assert_eq!(sent, vec!["side"], "only the neighbour is dispatched");
}

#[test]
fn a_template_over_its_output_limit_fails_its_step_without_a_job() {
    assert_fails_at_dispatch(
        &EngineConfig::default(),
        &echo_then_noop("{text: \"{{ 'x' * 100000000 }}\"}"),
        json!({}),
        "input.text: template output exceeds 1048576 bytes (BATON_MAX_TEMPLATE_OUTPUT_BYTES)",
    );
}

#[test]
fn a_template_over_its_fuel_fails_its_step_without_a_job() {
    let cfg = config(Limits {
        template: TemplateLimits {
            fuel: 1_000,
            ..TemplateLimits::default()
        },
        ..Limits::default()
    });
    assert_fails_at_dispatch(
        &cfg,
        &echo_then_noop(
            "{text: \"{% for i in inputs.items %}{% for j in inputs.items %}.{% endfor %}{% endfor %}\"}",
        ),
        json!({"items": (0..100).collect::<Vec<_>>()}),
        "input.text: template evaluation exceeded its fuel of 1000 (BATON_TEMPLATE_FUEL)",
    );
}

#[test]
fn a_condition_runs_on_the_configured_fuel() {
    let yaml = "owner: t\nname: w\nversion: 1\nsteps:\n  \
                - {id: a, kind: noop, when: 'inputs.n + inputs.n + inputs.n + inputs.n > 1'}\n  \
                - {id: b, kind: noop, needs: [a]}\n";
    let tiny = config(Limits {
        template: TemplateLimits {
            fuel: 3,
            ..TemplateLimits::default()
        },
        ..Limits::default()
    });
    let wf = workflow(yaml);
    let mut run = new_run(json!({"n": 1}));
    start_run(&mut run, &wf, &tiny, 0, &mut Effects::default());
    assert_eq!(
        step(&run, "a").error.as_deref(),
        Some("when: template evaluation exceeded its fuel of 3 (BATON_TEMPLATE_FUEL)")
    );
    assert_eq!(step(&run, "b").status, StepStatus::Skipped);

    let mut run = new_run(json!({"n": 1}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    assert_eq!(step(&run, "a").status, StepStatus::Queued);
}

#[test]
fn a_rendered_input_over_its_limit_fails_its_step_without_a_job() {
    let cfg = config(Limits {
        max_step_input_bytes: 100,
        ..Limits::default()
    });
    // Each template is small; together, with the run's input, the step's input is not.
    assert_fails_at_dispatch(
        &cfg,
        &echo_then_noop("{x: '{{ inputs.text }}', y: '{{ inputs.text }}'}"),
        json!({"text": "z".repeat(45)}),
        "step input exceeds 100 bytes (BATON_MAX_STEP_INPUT_BYTES)",
    );
    // At the limit, it is sent.
    let wf = workflow(&echo_then_noop("{x: '{{ inputs.text }}'}"));
    let text = "z".repeat(100 - r#"{"x":""}"#.len());
    let mut run = new_run(json!({ "text": text }));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    assert_eq!(step(&run, "a").status, StepStatus::Queued);
    assert_eq!(fx.jobs[0].input_json.len(), 100);
}

#[test]
fn the_configured_limits_apply_not_the_defaults() {
    // 2 MiB of text is over the default limits and within these.
    let roomy = config(Limits {
        max_step_input_bytes: 4 << 20,
        max_step_output_bytes: 4 << 20,
        template: TemplateLimits {
            max_output_bytes: 4 << 20,
            ..TemplateLimits::default()
        },
    });
    let wf = workflow(&echo_then_noop("{text: \"{{ 'x' * 2097152 }}\"}"));
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &roomy, 0, &mut fx);
    assert_eq!(step(&run, "a").status, StepStatus::Queued);
    let job = fx.jobs.iter().find(|j| j.step_id == "a").unwrap().clone();

    // Sent again after its job was lost, it renders under the same limits.
    let redispatch = v1::RedispatchStepCommand {
        run_id: job.run_id.clone(),
        step_id: "a".into(),
        attempt: job.attempt,
        lease: job.lease,
    };
    let mut fx = Effects::default();
    redispatch_step(&mut run, &wf, &roomy, &redispatch, 1, &mut fx);
    assert_eq!(fx.jobs.len(), 1, "{:?}", run.new_events);

    let job = fx.jobs.remove(0);
    let done = v1::JobResult {
        outcome: v1::JobOutcome::Succeeded as i32,
        output_json: job.input_json.clone(),
        ..result_for(&job)
    };
    apply_job_result(&mut run, &wf, &roomy, &done, 2, &mut Effects::default());
    assert_eq!(step(&run, "a").status, StepStatus::Completed);
}

/// A result of `job` that succeeded with `output_json`.
fn succeeded(output_json: &'static str) -> impl Fn(&v1::Job) -> v1::JobResult {
    move |job| v1::JobResult {
        outcome: v1::JobOutcome::Succeeded as i32,
        output_json: output_json.to_owned(),
        ..result_for(job)
    }
}

fn result_for(job: &v1::Job) -> v1::JobResult {
    v1::JobResult {
        run_id: job.run_id.clone(),
        step_id: job.step_id.clone(),
        attempt: job.attempt,
        worker_id: "w".into(),
        lease: job.lease,
        ..Default::default()
    }
}

/// Starts a run of `a` (retried up to 3 attempts) and applies `result` to its first attempt.
fn apply_to_first_attempt(
    cfg: &EngineConfig,
    result: impl Fn(&v1::Job) -> v1::JobResult,
) -> RunState {
    let wf = workflow(&echo_then_noop("{text: hi}"));
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, cfg, 0, &mut fx);
    let job = fx.jobs.iter().find(|j| j.step_id == "a").unwrap();
    apply_job_result(&mut run, &wf, cfg, &result(job), 5, &mut Effects::default());
    run
}

#[test]
fn an_output_over_its_limit_fails_its_attempt_for_good() {
    let cfg = config(Limits {
        max_step_output_bytes: 10,
        ..Limits::default()
    });
    let run = apply_to_first_attempt(&cfg, succeeded(r#"{"t":"abcd"}"#));
    let error = "step output exceeds 10 bytes (BATON_MAX_STEP_OUTPUT_BYTES): it is 12 bytes";
    let a = step(&run, "a");
    assert_eq!(
        a.status,
        StepStatus::Failed,
        "not retried: {:?}",
        run.new_events
    );
    assert_eq!(a.attempt, 1);
    assert_eq!(a.error.as_deref(), Some(error));
    assert_eq!(a.output, None);
    assert_eq!(failures(&run), vec![error.to_owned()]);
    assert_eq!(step(&run, "b").status, StepStatus::Skipped);

    let run = apply_to_first_attempt(&cfg, succeeded(r#"{"t":"ab"}"#));
    assert_eq!(step(&run, "a").status, StepStatus::Completed);
    assert_eq!(step(&run, "a").output, Some(json!({"t": "ab"})));
}

#[test]
fn an_error_over_the_output_limit_is_cut_and_the_attempt_keeps_its_retry() {
    let cfg = config(Limits {
        max_step_output_bytes: 8,
        ..Limits::default()
    });
    let run = apply_to_first_attempt(&cfg, |job| v1::JobResult {
        outcome: v1::JobOutcome::Failed as i32,
        error: "connection refused".into(),
        retryable: true,
        ..result_for(job)
    });
    let a = step(&run, "a");
    assert_eq!(a.status, StepStatus::Retrying);
    assert_eq!(
        a.error.as_deref(),
        Some("connecti… (cut from 18 bytes to 8, BATON_MAX_STEP_OUTPUT_BYTES)")
    );
}
