use std::collections::{HashMap, VecDeque};

use baton_workflow::{DefinitionFormat, compile, parse_definition};
use proptest::prelude::*;
use serde_json::json;

use super::*;

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

fn result(job: &v1::Job, outcome: v1::JobOutcome, output: Json) -> v1::JobResult {
    v1::JobResult {
        run_id: job.run_id.clone(),
        step_id: job.step_id.clone(),
        attempt: job.attempt,
        outcome: outcome as i32,
        output_json: output.to_string(),
        error: if outcome == v1::JobOutcome::Succeeded {
            String::new()
        } else {
            "boom".into()
        },
        retryable: true,
        worker_id: "w".into(),
        ..Default::default()
    }
}

fn status_of(run: &RunState, id: &str) -> StepStatus {
    run.steps.iter().find(|s| s.step_id == id).unwrap().status
}

const HELLO: &str = include_str!("../../../../examples/hello.yaml");

#[test]
fn hello_runs_to_completion_with_one_retry() {
    let wf = workflow(HELLO);
    let mut run = new_run(json!({"name": "Ada", "count": 3}));
    let cfg = EngineConfig::default();
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    assert_eq!(run.max_parallel, 4);
    let mut queue: VecDeque<v1::Job> = fx.jobs.drain(..).collect();
    assert_eq!(queue.len(), 1);
    let mut now = 0;
    let mut fail_budget: HashMap<String, u32> = HashMap::from([("left".into(), 1)]);
    while let Some(job) = queue.pop_front() {
        now += 1_000;
        let input: Json = serde_json::from_str(&job.input_json).unwrap_or(Json::Null);
        let budget = fail_budget.entry(job.step_id.clone()).or_default();
        let res = if *budget > 0 {
            *budget -= 1;
            result(&job, v1::JobOutcome::Failed, Json::Null)
        } else {
            result(&job, v1::JobOutcome::Succeeded, input)
        };
        let mut fx = Effects::default();
        apply_job_result(&mut run, &wf, &res, now, &mut fx);
        // A duplicate changes nothing.
        let events = run.new_events.len();
        apply_job_result(&mut run, &wf, &res, now, &mut Effects::default());
        assert_eq!(run.new_events.len(), events);
        for timer in &fx.timers {
            let mut wake = Effects::default();
            wake_run(&mut run, &wf, timer.due_at, &mut wake);
            queue.extend(wake.jobs);
        }
        queue.extend(fx.jobs);
    }
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let join = run.steps.iter().find(|s| s.step_id == "join").unwrap();
    assert_eq!(
        join.output,
        Some(json!({"total": 3, "text": "Hello, Ada!"}))
    );
    assert_eq!(
        run.steps
            .iter()
            .find(|s| s.step_id == "left")
            .unwrap()
            .attempt,
        2
    );
    let seqs: Vec<i64> = run.new_events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (2..2 + seqs.len() as i64).collect::<Vec<_>>());
}

#[test]
fn false_condition_skips() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop, when: 'inputs.go'}\n  - {id: b, kind: noop, needs: [a]}\n",
    );
    let mut run = new_run(json!({"go": false}));
    start_run(
        &mut run,
        &wf,
        &EngineConfig::default(),
        0,
        &mut Effects::default(),
    );
    assert_eq!(status_of(&run, "a"), StepStatus::Skipped);
    assert_eq!(status_of(&run, "b"), StepStatus::Skipped);
    assert_eq!(run.status, RunStatus::Completed);
}

#[test]
fn failure_skips_dependents_but_not_with_continue_on_failure() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nexecution: {concurrency: {maxParallel: 5}}\nsteps:\n  - {id: a, kind: fail}\n  - {id: b, kind: noop, needs: [a]}\n  - {id: c, kind: fail, continue_on_failure: true}\n  - {id: d, kind: noop, needs: [c]}\n",
    );
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    assert_eq!(fx.jobs.len(), 2);
    for job in fx.jobs.clone() {
        let mut fx2 = Effects::default();
        apply_job_result(
            &mut run,
            &wf,
            &result(&job, v1::JobOutcome::Failed, Json::Null),
            1,
            &mut fx2,
        );
        fx.jobs.extend(fx2.jobs);
    }
    assert_eq!(status_of(&run, "b"), StepStatus::Skipped);
    assert_eq!(status_of(&run, "d"), StepStatus::Queued);
    let d = fx.jobs.last().unwrap().clone();
    apply_job_result(
        &mut run,
        &wf,
        &result(&d, v1::JobOutcome::Succeeded, Json::Null),
        2,
        &mut Effects::default(),
    );
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.as_deref().unwrap().contains("step `a`"));
}

#[test]
fn abort_cancels_unfinished_steps_once() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: noop, needs: [a]}\n",
    );
    let mut run = new_run(json!({}));
    start_run(
        &mut run,
        &wf,
        &EngineConfig::default(),
        0,
        &mut Effects::default(),
    );
    let mut fx = Effects::default();
    assert!(abort_run(
        &mut run,
        RunStatus::Cancelled,
        "by user",
        5,
        &mut fx
    ));
    assert!(!abort_run(
        &mut run,
        RunStatus::Cancelled,
        "again",
        6,
        &mut fx
    ));
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.steps.iter().all(|s| s.status == StepStatus::Cancelled));
    assert_eq!(fx.cancelled_runs.len(), 1);
}

#[test]
fn deadline_times_the_run_out() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nexecution: {timeout: 1s}\nsteps:\n  - {id: a, kind: noop}\n",
    );
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    assert_eq!(fx.timers[0].due_at, 1_000_000);
    wake_run(&mut run, &wf, 500_000, &mut Effects::default());
    assert_eq!(run.status, RunStatus::Running);
    wake_run(&mut run, &wf, 1_000_000, &mut Effects::default());
    assert_eq!(run.status, RunStatus::TimedOut);
}

#[test]
fn bad_template_fails_the_step_not_the_runner() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: echo, input: {x: '{{ inputs.missing.x }}'}}\n",
    );
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    assert!(fx.jobs.is_empty());
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.steps[0].error.as_deref().unwrap().contains("input.x"));
}

/// A random DAG: step `i` may need any earlier step.
fn dag_strategy() -> impl Strategy<Value = (Vec<Vec<usize>>, u32, Vec<u8>)> {
    (1usize..25).prop_flat_map(|n| {
        let needs = (0..n)
            .map(|i| proptest::collection::vec(0..i.max(1), 0..=i.min(3)))
            .collect::<Vec<_>>();
        (needs, 1u32..6, proptest::collection::vec(any::<u8>(), 64))
    })
}

fn dag_yaml(needs: &[Vec<usize>], max_parallel: u32) -> String {
    let mut yaml = format!(
        "owner: t\nname: p\nversion: 1\nexecution: {{concurrency: {{maxParallel: {max_parallel}}}}}\nsteps:\n"
    );
    for (i, n) in needs.iter().enumerate() {
        let n: Vec<String> = n
            .iter()
            .filter(|&&j| j < i)
            .map(|j| format!("s{j}"))
            .collect();
        let retry = if i % 3 == 0 {
            ", retry: {max_attempts: 2, initial: 1ms, max: 1ms}"
        } else {
            ""
        };
        let cof = if i % 5 == 4 {
            ", continue_on_failure: true"
        } else {
            ""
        };
        yaml.push_str(&format!(
            "  - {{id: s{i}, kind: noop, needs: [{}]{retry}{cof}}}\n",
            n.join(", ")
        ));
    }
    yaml
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the DAG and outcomes: never more than `maxParallel` in flight, a step starts only
    /// after all it needs has ended, attempts stay within the policy, and the run ends with every
    /// step ended.
    #[test]
    fn planner_invariants((needs, max_parallel, coins) in dag_strategy()) {
        let wf = workflow(&dag_yaml(&needs, max_parallel));
        let mut run = new_run(json!({}));
        let mut fx = Effects::default();
        start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
        let mut queue: VecDeque<v1::Job> = fx.jobs.into();
        let mut timers: Vec<Timer> = fx.timers;
        let mut coin = coins.iter().cycle();
        let mut now = 0;
        let mut dispatched: HashMap<String, u32> = HashMap::new();
        for _ in 0..10_000 {
            let in_flight = run.steps.iter().filter(|s| s.status.is_in_flight()).count() as u32;
            prop_assert!(in_flight <= max_parallel);
            now += 1_000;
            let job = if let Some(job) = queue.pop_front() {
                job
            } else if let Some(t) = timers.pop() {
                let mut fx = Effects::default();
                wake_run(&mut run, &wf, t.due_at.max(now), &mut fx);
                queue.extend(fx.jobs);
                timers.extend(fx.timers);
                continue;
            } else {
                break;
            };
            let i = wf.step_index(&job.step_id).unwrap();
            for &j in &wf.needs[i] {
                prop_assert!(run.steps[j].status.is_terminal());
            }
            *dispatched.entry(job.step_id.clone()).or_default() += 1;
            let outcome = if coin.next().unwrap() % 4 == 0 { v1::JobOutcome::Failed } else { v1::JobOutcome::Succeeded };
            let mut fx = Effects::default();
            apply_job_result(&mut run, &wf, &result(&job, outcome, Json::Null), now, &mut fx);
            queue.extend(fx.jobs);
            timers.extend(fx.timers);
        }
        prop_assert!(run.status.is_terminal());
        prop_assert!(run.steps.iter().all(|s| s.status.is_terminal()));
        for (id, n) in dispatched {
            let max = wf.steps()[wf.step_index(&id).unwrap()].retry.as_ref().map_or(1, |r| r.max_attempts);
            prop_assert!(n <= max, "{} dispatched {} times", id, n);
        }
        for (i, s) in run.steps.iter().enumerate() {
            if s.status == StepStatus::Skipped {
                prop_assert!(wf.needs[i].iter().any(|&j| run.steps[j].status != StepStatus::Completed));
            }
        }
    }
}
