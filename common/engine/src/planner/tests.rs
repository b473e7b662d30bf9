use std::collections::{HashMap, VecDeque};

use baton_workflow::{DefinitionFormat, compile, parse_definition};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::{EventRecord, StepState};

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
        lease: job.lease,
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
        apply_job_result(&mut run, &wf, &EngineConfig::default(), &res, now, &mut fx);
        // A duplicate changes nothing.
        let events = run.new_events.len();
        apply_job_result(
            &mut run,
            &wf,
            &EngineConfig::default(),
            &res,
            now,
            &mut Effects::default(),
        );
        assert_eq!(run.new_events.len(), events);
        for timer in &fx.timers {
            let mut wake = Effects::default();
            wake_run(
                &mut run,
                &wf,
                &EngineConfig::default(),
                timer.due_at,
                &mut wake,
            );
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
            &EngineConfig::default(),
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
        &EngineConfig::default(),
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
    wake_run(
        &mut run,
        &wf,
        &EngineConfig::default(),
        500_000,
        &mut Effects::default(),
    );
    assert_eq!(run.status, RunStatus::Running);
    wake_run(
        &mut run,
        &wf,
        &EngineConfig::default(),
        1_000_000,
        &mut Effects::default(),
    );
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
                wake_run(&mut run, &wf, &EngineConfig::default(), t.due_at.max(now), &mut fx);
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
            apply_job_result(&mut run, &wf, &EngineConfig::default(), &result(&job, outcome, Json::Null), now, &mut fx);
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

// What a run says about itself: the events the store keeps and fan-out publishes, and the flags
// that tell the store what to write.

/// A run as the store hands it back after writing it: nothing left to write.
fn loaded(run: &mut RunState) {
    run.dirty = false;
    run.steps_created = false;
    run.new_events.clear();
    run.new_attempts.clear();
    for step in &mut run.steps {
        step.dirty = false;
    }
}

fn event(
    sequence: i64,
    event_type: Ev,
    step: Option<(&str, u32)>,
    time: i64,
    message: Option<&str>,
    output: Option<Json>,
) -> EventRecord {
    EventRecord {
        sequence,
        event_type,
        step_id: step.map(|(id, _)| id.to_owned()),
        attempt: step.map_or(0, |(_, attempt)| attempt),
        time,
        message: message.map(str::to_owned),
        output,
    }
}

fn started(job: &v1::Job, worker: &str, at: i64) -> v1::JobStarted {
    v1::JobStarted {
        run_id: job.run_id.clone(),
        step_id: job.step_id.clone(),
        attempt: job.attempt,
        worker_id: worker.into(),
        started_at: Some(baton_proto::timestamp_from_micros(at)),
        lease: job.lease,
        delivery: 1,
        parked: false,
    }
}

fn step<'a>(run: &'a RunState, id: &str) -> &'a StepState {
    run.steps.iter().find(|s| s.step_id == id).unwrap()
}

const CHAIN: &str = "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: noop, needs: [a]}\n";

#[test]
fn a_run_tells_its_story_in_numbered_events() {
    let wf = workflow(CHAIN);
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 10, &mut fx);
    let a = fx.jobs.remove(0);
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &started(&a, "w1", 20),
        25,
        &mut Effects::default(),
    );
    let done_a = v1::JobResult {
        output_json: r#"{"x":1}"#.into(),
        started_at: Some(baton_proto::timestamp_from_micros(20)),
        finished_at: Some(baton_proto::timestamp_from_micros(30)),
        ..result(&a, v1::JobOutcome::Succeeded, Json::Null)
    };
    let mut fx = Effects::default();
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &done_a,
        35,
        &mut fx,
    );
    // `b` reports its end without a JobStarted seen first: its start is recorded before its end.
    let b = fx.jobs.remove(0);
    let done_b = v1::JobResult {
        output_json: String::new(),
        finished_at: Some(baton_proto::timestamp_from_micros(40)),
        ..result(&b, v1::JobOutcome::Succeeded, Json::Null)
    };
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &done_b,
        45,
        &mut Effects::default(),
    );

    assert_eq!(
        run.new_events,
        vec![
            event(2, Ev::RunStarted, None, 10, None, None),
            event(3, Ev::StepQueued, Some(("a", 1)), 10, None, None),
            event(4, Ev::StepStarted, Some(("a", 1)), 20, None, None),
            event(
                5,
                Ev::StepCompleted,
                Some(("a", 1)),
                30,
                None,
                Some(json!({"x": 1}))
            ),
            event(6, Ev::StepQueued, Some(("b", 1)), 35, None, None),
            event(7, Ev::StepStarted, Some(("b", 1)), 40, None, None),
            event(
                8,
                Ev::StepCompleted,
                Some(("b", 1)),
                40,
                None,
                Some(Json::Null)
            ),
            event(9, Ev::RunCompleted, None, 45, None, None),
        ]
    );
    assert_eq!(run.last_sequence, 9);
    assert_eq!(step(&run, "b").started_at, Some(40));
}

#[test]
fn a_job_started_marks_its_attempt_running_once() {
    let wf = workflow(CHAIN);
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let a = fx.jobs.remove(0);
    loaded(&mut run);

    // Not the current attempt: a leftover from an earlier one.
    let stale = v1::JobStarted {
        attempt: 7,
        ..started(&a, "w1", 5)
    };
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &stale,
        6,
        &mut Effects::default(),
    );
    assert!(!run.is_changed(), "{:?}", run.new_events);

    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &started(&a, "w1", 5),
        6,
        &mut Effects::default(),
    );
    let s = step(&run, "a");
    assert_eq!(s.status, StepStatus::Running);
    assert_eq!(s.started_at, Some(5));
    assert_eq!(s.worker_id.as_deref(), Some("w1"));
    assert!(s.dirty);
    assert_eq!(
        run.new_events,
        vec![event(4, Ev::StepStarted, Some(("a", 1)), 5, None, None)]
    );

    loaded(&mut run);
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &started(&a, "w2", 9),
        10,
        &mut Effects::default(),
    );
    assert!(
        !run.is_changed(),
        "a second JobStarted changed {:?}",
        run.new_events
    );
    assert_eq!(step(&run, "a").worker_id.as_deref(), Some("w1"));
}

#[test]
fn a_job_started_without_a_worker_or_a_time_records_none_and_now() {
    let wf = workflow(CHAIN);
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let a = fx.jobs.remove(0);
    let msg = v1::JobStarted {
        worker_id: String::new(),
        started_at: None,
        ..started(&a, "", 0)
    };
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &msg,
        42,
        &mut Effects::default(),
    );
    assert_eq!(step(&run, "a").worker_id, None);
    assert_eq!(step(&run, "a").started_at, Some(42));
}

#[test]
fn the_worker_that_finishes_an_attempt_is_the_one_recorded() {
    let wf = workflow(CHAIN);
    for (finisher, recorded) in [("w2", "w2"), ("", "w1")] {
        let mut run = new_run(json!({}));
        let mut fx = Effects::default();
        start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
        let a = fx.jobs.remove(0);
        apply_job_started(
            &mut run,
            &EngineConfig::default(),
            &started(&a, "w1", 1),
            1,
            &mut Effects::default(),
        );
        let res = v1::JobResult {
            worker_id: finisher.into(),
            ..result(&a, v1::JobOutcome::Succeeded, Json::Null)
        };
        apply_job_result(
            &mut run,
            &wf,
            &EngineConfig::default(),
            &res,
            2,
            &mut Effects::default(),
        );
        assert_eq!(
            step(&run, "a").worker_id.as_deref(),
            Some(recorded),
            "finished by `{finisher}`"
        );
    }
}

#[test]
fn retries_wait_longer_after_each_failure_and_keep_each_attempt() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop, retry: {max_attempts: 3, initial: 1s, max: 1m, multiplier: 2, jitter: 0}}\n",
    );
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let mut job = fx.jobs.remove(0);
    const S: i64 = 1_000_000;

    for (attempt, failed_at, delay) in [(1, 10 * S, S), (2, 20 * S, 2 * S)] {
        assert_eq!(job.attempt, attempt);
        let mut fx = Effects::default();
        apply_job_result(
            &mut run,
            &wf,
            &EngineConfig::default(),
            &result(&job, v1::JobOutcome::Failed, Json::Null),
            failed_at,
            &mut fx,
        );
        let due = failed_at + delay;
        let a = step(&run, "a");
        assert_eq!(a.status, StepStatus::Retrying);
        assert_eq!(a.next_attempt_at, Some(due));
        assert_eq!(
            fx.timers,
            vec![Timer {
                run_id: run.id,
                due_at: due,
                reason: v1::WakeReason::RetryDue,
            }]
        );
        assert!(fx.exhausted.is_empty());
        let last = run.new_events.last().unwrap();
        assert_eq!(last.event_type, Ev::StepRetrying);
        assert_eq!(
            last.message.as_deref(),
            Some(format!("boom; attempt {} of 3 in {}ms", attempt + 1, delay / 1_000).as_str())
        );
        assert_eq!(
            run.new_attempts.last(),
            Some(&AttemptRecord {
                step_id: "a".into(),
                attempt,
                status: StepStatus::Failed,
                error: Some("boom".into()),
                worker_id: Some("w".into()),
                queued_at: a.queued_at,
                started_at: Some(failed_at),
                ended_at: failed_at,
                usage: None,
            })
        );
        assert_eq!(run.new_attempts.len(), attempt as usize);

        let mut early = Effects::default();
        wake_run(&mut run, &wf, &EngineConfig::default(), due - 1, &mut early);
        assert!(
            early.jobs.is_empty(),
            "attempt {} dispatched early",
            attempt + 1
        );
        let mut wake = Effects::default();
        wake_run(&mut run, &wf, &EngineConfig::default(), due, &mut wake);
        job = wake.jobs.remove(0);
    }

    let last = result(&job, v1::JobOutcome::Failed, Json::Null);
    let mut fx = Effects::default();
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &last,
        30 * S,
        &mut fx,
    );
    assert_eq!(step(&run, "a").status, StepStatus::Failed);
    assert!(fx.timers.is_empty());
    assert_eq!(fx.exhausted, vec![last]);
    // The last attempt stays on the step's own row; only replaced attempts go to the history.
    assert_eq!(run.new_attempts.len(), 2);
    assert_eq!(run.status, RunStatus::Failed);
}

/// Longer than `i64::MAX` microseconds, the engine's clock range.
const FOREVER: &str = "300000years";
const YEAR: i64 = 365 * 24 * 3_600 * 1_000_000;

#[test]
fn a_retry_delay_too_long_to_count_is_never_due() {
    let wf = workflow(&format!(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {{id: a, kind: noop, retry: {{max_attempts: 2, initial: {FOREVER}, max: {FOREVER}, jitter: 0}}}}\n"
    ));
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let mut fx2 = Effects::default();
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &result(&fx.jobs[0], v1::JobOutcome::Failed, Json::Null),
        1_000,
        &mut fx2,
    );
    let due = step(&run, "a").next_attempt_at.unwrap();
    assert!(due > 1_000 + 1_000 * YEAR, "retry due at {due}");
    assert_eq!(fx2.timers[0].due_at, due);
    let mut wake = Effects::default();
    wake_run(
        &mut run,
        &wf,
        &EngineConfig::default(),
        1_000 + YEAR,
        &mut wake,
    );
    assert!(wake.jobs.is_empty());
}

#[test]
fn a_run_timeout_too_long_to_count_never_comes_due() {
    let wf = workflow(&format!(
        "owner: t\nname: w\nversion: 1\nexecution: {{timeout: {FOREVER}}}\nsteps:\n  - {{id: a, kind: noop}}\n"
    ));
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 1_000, &mut fx);
    let deadline = run.deadline.unwrap();
    assert!(deadline > 1_000 + 1_000 * YEAR, "deadline {deadline}");
    assert_eq!(fx.timers[0].due_at, deadline);
    wake_run(
        &mut run,
        &wf,
        &EngineConfig::default(),
        1_000 + YEAR,
        &mut Effects::default(),
    );
    assert_eq!(run.status, RunStatus::Running);
}

#[test]
fn a_timed_out_run_cancels_its_running_steps_and_says_so() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nexecution: {timeout: 1s}\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: noop, needs: [a]}\n  - {id: c, kind: noop, needs: [b]}\n",
    );
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let mut fx2 = Effects::default();
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &result(&fx.jobs[0], v1::JobOutcome::Succeeded, Json::Null),
        100,
        &mut fx2,
    );
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &started(&fx2.jobs[0], "w1", 200),
        200,
        &mut Effects::default(),
    );
    loaded(&mut run);

    let mut fx = Effects::default();
    wake_run(&mut run, &wf, &EngineConfig::default(), 1_000_000, &mut fx);
    let reason = "run exceeded its timeout";
    assert_eq!(run.status, RunStatus::TimedOut);
    assert_eq!(run.error.as_deref(), Some(reason));
    assert_eq!(run.ended_at, Some(1_000_000));
    assert_eq!(step(&run, "a").status, StepStatus::Completed);
    for id in ["b", "c"] {
        let s = step(&run, id);
        assert_eq!(s.status, StepStatus::Cancelled, "{id}");
        assert_eq!(s.error.as_deref(), Some(reason), "{id}");
        assert_eq!(s.ended_at, Some(1_000_000), "{id}");
    }
    let t = 1_000_000;
    assert_eq!(
        run.new_events,
        vec![
            event(8, Ev::StepCancelled, Some(("b", 1)), t, Some(reason), None),
            event(9, Ev::StepCancelled, Some(("c", 0)), t, Some(reason), None),
            event(10, Ev::RunTimedOut, None, t, Some(reason), None),
        ]
    );
    assert_eq!(fx.cancelled_runs, vec![(run.id, reason.to_owned())]);
}

#[test]
fn an_aborted_run_ends_with_the_event_for_its_status() {
    let wf = workflow(CHAIN);
    for (status, expected) in [
        (RunStatus::Cancelled, Ev::RunCancelled),
        (RunStatus::Failed, Ev::RunFailed),
        (RunStatus::TimedOut, Ev::RunTimedOut),
    ] {
        let mut run = new_run(json!({}));
        start_run(
            &mut run,
            &wf,
            &EngineConfig::default(),
            0,
            &mut Effects::default(),
        );
        assert!(abort_run(
            &mut run,
            status,
            "why",
            5,
            &mut Effects::default()
        ));
        assert_eq!(run.status, status);
        let last = run.new_events.last().unwrap();
        assert_eq!(
            (
                last.event_type,
                last.message.as_deref(),
                last.step_id.as_deref()
            ),
            (expected, Some("why"), None),
            "{status}"
        );
    }
}

#[test]
fn a_tolerated_failure_lets_the_run_complete() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: c, kind: fail, continue_on_failure: true}\n  - {id: d, kind: noop, needs: [c]}\n",
    );
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let mut fx2 = Effects::default();
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &result(&fx.jobs[0], v1::JobOutcome::Failed, Json::Null),
        1,
        &mut fx2,
    );
    assert_eq!(status_of(&run, "c"), StepStatus::Failed);
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &result(&fx2.jobs[0], v1::JobOutcome::Succeeded, json!({"ok": true})),
        2,
        &mut Effects::default(),
    );
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(run.error, None);
    assert_eq!(run.output, Some(json!({"d": {"ok": true}})));
    assert_eq!(run.new_events.last().unwrap().event_type, Ev::RunCompleted);
}

#[test]
fn a_duplicate_message_leaves_nothing_to_write() {
    let wf = workflow(CHAIN);
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let a = fx.jobs.remove(0);
    let msg = started(&a, "w1", 1);
    let res = result(&a, v1::JobOutcome::Succeeded, Json::Null);
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &msg,
        1,
        &mut Effects::default(),
    );
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &res,
        2,
        &mut Effects::default(),
    );
    loaded(&mut run);
    assert!(!run.is_changed());

    let mut fx = Effects::default();
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &msg,
        3,
        &mut Effects::default(),
    );
    apply_job_result(&mut run, &wf, &EngineConfig::default(), &res, 3, &mut fx);
    assert!(!run.is_changed(), "{:?}", run.new_events);
    assert!(fx.jobs.is_empty() && fx.timers.is_empty());
}

#[test]
fn each_kind_of_change_is_written() {
    let wf = workflow(CHAIN);
    let mut base = new_run(json!({}));
    start_run(
        &mut base,
        &wf,
        &EngineConfig::default(),
        0,
        &mut Effects::default(),
    );
    loaded(&mut base);

    let mut run = base.clone();
    run.dirty = true;
    assert!(run.is_changed(), "a run-level change");

    let mut run = base.clone();
    run.push_event(Ev::StepQueued, Some(0), 1, None, None);
    assert!(run.is_changed(), "an event");

    let mut run = base.clone();
    run.steps[1].dirty = true;
    assert!(run.is_changed(), "a step change");
}

#[test]
fn a_run_outputs_what_its_completed_final_steps_output() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nexecution: {concurrency: {maxParallel: 3}}\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: noop, needs: [a]}\n  - {id: c, kind: noop, when: 'inputs.go'}\n",
    );
    let mut run = new_run(json!({"go": false}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    assert_eq!(status_of(&run, "c"), StepStatus::Skipped);
    let mut fx2 = Effects::default();
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &result(&fx.jobs[0], v1::JobOutcome::Succeeded, json!("from a")),
        1,
        &mut fx2,
    );
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &result(&fx2.jobs[0], v1::JobOutcome::Succeeded, json!("from b")),
        2,
        &mut Effects::default(),
    );
    assert_eq!(run.status, RunStatus::Completed);
    // `a` fed `b`, and `c` never ran: only `b` is the run's result.
    assert_eq!(run.output, Some(json!({"b": "from b"})));
}

const RETRIED_ECHO: &str = "owner: t\nname: w\nversion: 1\nexecution: {concurrency: {maxParallel: 2}}\nsteps:\n  - {id: a, kind: echo, retry: {max_attempts: 3, initial: 1s}}\n  - {id: b, kind: noop, needs: [a]}\n";

/// Starts a run of `yaml` and returns it with its first job.
fn started_run(yaml: &str, inputs: Json) -> (CompiledWorkflow, RunState, v1::Job) {
    let wf = workflow(yaml);
    let mut run = new_run(inputs);
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    let job = fx.jobs.remove(0);
    (wf, run, job)
}

#[test]
fn an_output_holding_a_nul_fails_its_step_for_good() {
    for (output_json, path) in [
        (r#"{"text":"a\u0000b"}"#, "$.text"),
        (
            r#"{"list":[1,{"k\u0000":2}]}"#,
            "the key of $.list[1].k\\u0000",
        ),
        // Not JSON (a raw NUL may not stand in a JSON string): kept as one string, which holds it.
        ("raw \0 text", "$"),
    ] {
        let (wf, mut run, job) = started_run(RETRIED_ECHO, json!({}));
        let res = v1::JobResult {
            output_json: output_json.into(),
            ..result(&job, v1::JobOutcome::Succeeded, Json::Null)
        };
        assert!(res.retryable);
        let mut fx = Effects::default();
        apply_job_result(&mut run, &wf, &EngineConfig::default(), &res, 5, &mut fx);
        let error = format!("step output cannot be stored: {path} holds a NUL character (U+0000)");
        let a = step(&run, "a");
        assert_eq!(a.status, StepStatus::Failed, "{output_json}");
        assert_eq!(a.error.as_deref(), Some(error.as_str()));
        assert_eq!(a.output, None);
        assert_eq!(a.attempt, 1, "a permanent failure is not retried");
        assert!(fx.timers.is_empty() && fx.jobs.is_empty());
        assert_eq!(
            fx.exhausted,
            vec![v1::JobResult {
                error: error.clone(),
                ..res.clone()
            }]
        );
        assert_eq!(status_of(&run, "b"), StepStatus::Skipped);
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(
            run.error,
            Some(format!("step `a` failed: {error}")),
            "{output_json}"
        );
        let types: Vec<_> = run.new_events.iter().map(|e| e.event_type).collect();
        assert!(!types.contains(&Ev::StepCompleted), "{types:?}");
        assert_eq!(types.last(), Some(&Ev::RunFailed));
        let failed = run
            .new_events
            .iter()
            .find(|e| e.event_type == Ev::StepFailed)
            .unwrap();
        assert_eq!(failed.message.as_deref(), Some(error.as_str()));
        assert!(
            run.new_events.iter().all(|e| e.output.is_none()),
            "no event carries the output"
        );
    }
}

#[test]
fn an_output_without_a_nul_completes_its_step() {
    let (wf, mut run, job) = started_run(RETRIED_ECHO, json!({}));
    let res = v1::JobResult {
        output_json: r#"{"text":"a\\u0000b \ufffd"}"#.into(),
        ..result(&job, v1::JobOutcome::Succeeded, Json::Null)
    };
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &res,
        5,
        &mut Effects::default(),
    );
    let a = step(&run, "a");
    assert_eq!(a.status, StepStatus::Completed);
    assert_eq!(a.output, Some(json!({"text": "a\\u0000b \u{FFFD}"})));
}

#[test]
fn an_error_holding_nuls_is_stored_with_replacement_characters() {
    let (wf, mut run, job) = started_run(RETRIED_ECHO, json!({}));
    let res = v1::JobResult {
        error: "bad\0byte\0".into(),
        ..result(&job, v1::JobOutcome::Failed, Json::Null)
    };
    let mut fx = Effects::default();
    apply_job_result(&mut run, &wf, &EngineConfig::default(), &res, 5, &mut fx);
    let a = step(&run, "a");
    assert_eq!(
        a.status,
        StepStatus::Retrying,
        "the error's own retry rule holds"
    );
    assert_eq!(a.error.as_deref(), Some("bad\u{FFFD}byte\u{FFFD}"));
    let retrying = run.new_events.last().unwrap();
    assert!(
        retrying
            .message
            .as_deref()
            .unwrap()
            .starts_with("bad\u{FFFD}byte\u{FFFD}; attempt 2 of 3"),
        "{retrying:?}"
    );
    assert_eq!(
        run.new_attempts[0].error.as_deref(),
        Some("bad\u{FFFD}byte\u{FFFD}")
    );

    // The last attempt's error reaches the dead letter clean too.
    let mut wake = Effects::default();
    let due = a.next_attempt_at.unwrap();
    wake_run(&mut run, &wf, &EngineConfig::default(), due, &mut wake);
    let job = wake.jobs.remove(0);
    let last = v1::JobResult {
        error: "x\0".into(),
        retryable: false,
        ..result(&job, v1::JobOutcome::Failed, Json::Null)
    };
    let mut fx = Effects::default();
    apply_job_result(&mut run, &wf, &EngineConfig::default(), &last, 6, &mut fx);
    assert_eq!(step(&run, "a").status, StepStatus::Failed);
    assert_eq!(fx.exhausted[0].error, "x\u{FFFD}");
    assert_eq!(run.error.as_deref(), Some("step `a` failed: x\u{FFFD}"));
}

#[test]
fn an_attempt_without_an_error_says_how_it_ended() {
    for (outcome, error) in [
        (v1::JobOutcome::TimedOut, "attempt timed out"),
        (v1::JobOutcome::Failed, "attempt failed"),
    ] {
        let (wf, mut run, job) = started_run(RETRIED_ECHO, json!({}));
        let res = v1::JobResult {
            error: String::new(),
            retryable: false,
            ..result(&job, outcome, Json::Null)
        };
        let mut fx = Effects::default();
        apply_job_result(&mut run, &wf, &EngineConfig::default(), &res, 5, &mut fx);
        assert_eq!(step(&run, "a").error.as_deref(), Some(error));
        assert_eq!(fx.exhausted[0].error, error);
    }
}

#[test]
fn an_input_rendered_with_a_nul_fails_its_step_without_a_job() {
    let wf = workflow(
        "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: echo, input: {msg: {text: '{{ inputs.v }}'}}}\n  - {id: b, kind: noop, needs: [a]}\n",
    );
    let mut run = new_run(json!({"v": "x\u{0}y"}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &EngineConfig::default(), 0, &mut fx);
    assert!(fx.jobs.is_empty());
    let a = step(&run, "a");
    assert_eq!(a.status, StepStatus::Failed);
    assert_eq!(a.attempt, 0, "no attempt was used");
    assert_eq!(
        a.error.as_deref(),
        Some("step input cannot be used: input.msg.text holds a NUL character (U+0000)")
    );
    assert_eq!(run.status, RunStatus::Failed);
}

#[test]
fn worker_ids_and_cancel_reasons_are_stored_without_nuls() {
    let (wf, mut run, job) = started_run(RETRIED_ECHO, json!({}));
    apply_job_started(
        &mut run,
        &EngineConfig::default(),
        &started(&job, "w\u{0}1", 1),
        1,
        &mut Effects::default(),
    );
    assert_eq!(step(&run, "a").worker_id.as_deref(), Some("w\u{FFFD}1"));
    let res = v1::JobResult {
        worker_id: "w\u{0}2".into(),
        ..result(&job, v1::JobOutcome::Failed, Json::Null)
    };
    apply_job_result(
        &mut run,
        &wf,
        &EngineConfig::default(),
        &res,
        2,
        &mut Effects::default(),
    );
    assert_eq!(step(&run, "a").worker_id.as_deref(), Some("w\u{FFFD}2"));
    assert_eq!(run.new_attempts[0].worker_id.as_deref(), Some("w\u{FFFD}2"));

    let mut fx = Effects::default();
    assert!(abort_run(
        &mut run,
        RunStatus::Cancelled,
        "stop\0now",
        3,
        &mut fx
    ));
    let clean = "stop\u{FFFD}now";
    assert_eq!(run.error.as_deref(), Some(clean));
    assert_eq!(step(&run, "a").error.as_deref(), Some(clean));
    assert!(
        run.new_events
            .iter()
            .filter_map(|e| e.message.as_deref())
            .all(|m| !m.contains('\0'))
    );
    assert_eq!(fx.cancelled_runs, vec![(run.id, clean.to_owned())]);
}

// Leases: every dispatch carries a fencing token, and only reports that carry it back, from
// the latest delivery of its job, change the step.

const RETRYING: &str = "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop, retry: {max_attempts: 2, initial: 1ms}}\n";

fn redispatch(job: &v1::Job) -> v1::RedispatchStepCommand {
    v1::RedispatchStepCommand {
        run_id: job.run_id.clone(),
        step_id: job.step_id.clone(),
        attempt: job.attempt,
        lease: job.lease,
    }
}

#[test]
fn each_dispatch_holds_a_new_lease_that_its_job_carries() {
    let wf = workflow(RETRYING);
    let cfg = EngineConfig::default();
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    let first = fx.jobs.remove(0);
    assert_eq!((first.attempt, first.lease), (1, 1));
    assert_eq!(step(&run, "a").lease, 1);
    assert_eq!(step(&run, "a").lease_ttl, cfg.lease_ttl);

    let failed = result(&first, v1::JobOutcome::Failed, Json::Null);
    apply_job_result(&mut run, &wf, &cfg, &failed, 10, &mut fx);
    assert_eq!(step(&run, "a").status, StepStatus::Retrying);
    let due = fx.timers.last().unwrap().due_at;
    wake_run(&mut run, &wf, &cfg, due, &mut fx);
    let second = fx.jobs.remove(0);
    assert_eq!((second.attempt, second.lease), (2, 2));
}

#[test]
fn a_report_of_a_stale_lease_changes_nothing_and_is_counted() {
    let wf = workflow(CHAIN);
    let cfg = EngineConfig::default();
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    let a = fx.jobs.remove(0);
    loaded(&mut run);

    let mut fx = Effects::default();
    let old = v1::Job {
        lease: 0,
        ..a.clone()
    };
    apply_job_started(&mut run, &cfg, &started(&old, "w1", 5), 6, &mut fx);
    apply_job_result(
        &mut run,
        &wf,
        &cfg,
        &result(&old, v1::JobOutcome::Succeeded, json!({})),
        7,
        &mut fx,
    );
    assert!(!run.is_changed(), "{:?}", run.new_events);
    assert_eq!(
        fx.fenced,
        Fenced {
            started: 1,
            results: 1
        }
    );
    assert!(fx.jobs.is_empty());

    apply_job_result(
        &mut run,
        &wf,
        &cfg,
        &result(&a, v1::JobOutcome::Succeeded, json!({})),
        8,
        &mut fx,
    );
    assert_eq!(step(&run, "a").status, StepStatus::Completed);
    assert_eq!(
        fx.fenced,
        Fenced {
            started: 1,
            results: 1
        }
    );
}

#[test]
fn a_later_delivery_takes_the_attempt_over_and_fences_off_the_earlier_one() {
    let wf = workflow(CHAIN);
    let cfg = EngineConfig::default();
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    let a = fx.jobs.remove(0);
    apply_job_started(&mut run, &cfg, &started(&a, "w1", 5), 5, &mut fx);
    loaded(&mut run);

    // w1 stopped answering; w2 reclaimed the job (its second delivery) and says so.
    let reclaimed = v1::JobStarted {
        delivery: 2,
        ..started(&a, "w2", 40)
    };
    apply_job_started(&mut run, &cfg, &reclaimed, 41, &mut fx);
    let s = step(&run, "a");
    assert_eq!(s.status, StepStatus::Running);
    assert_eq!((s.worker_id.as_deref(), s.lease_holder), (Some("w2"), 2));
    assert_eq!(run.new_events.len(), 1);
    assert_eq!(run.new_events[0].event_type, Ev::StepStarted);
    assert!(
        run.new_events[0]
            .message
            .as_deref()
            .unwrap()
            .contains("taken over by worker `w2` from `w1`"),
        "{:?}",
        run.new_events[0].message
    );
    loaded(&mut run);

    // w1 wakes up and reports: fenced off, whatever it says.
    let late = v1::JobResult {
        delivery: 1,
        worker_id: "w1".into(),
        ..result(&a, v1::JobOutcome::Succeeded, json!({"from": "w1"}))
    };
    let mut fx = Effects::default();
    apply_job_result(&mut run, &wf, &cfg, &late, 50, &mut fx);
    assert!(!run.is_changed());
    assert_eq!(fx.fenced.results, 1);

    let current = v1::JobResult {
        delivery: 2,
        worker_id: "w2".into(),
        ..result(&a, v1::JobOutcome::Succeeded, json!({"from": "w2"}))
    };
    apply_job_result(&mut run, &wf, &cfg, &current, 60, &mut fx);
    let s = step(&run, "a");
    assert_eq!(s.status, StepStatus::Completed);
    assert_eq!(s.output, Some(json!({"from": "w2"})));
}

#[test]
fn a_lost_job_is_dispatched_again_under_a_new_lease_once() {
    let wf = workflow(CHAIN);
    let cfg = EngineConfig::default();
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    let lost = fx.jobs.remove(0);
    apply_job_started(&mut run, &cfg, &started(&lost, "w1", 5), 5, &mut fx);
    loaded(&mut run);

    let mut fx = Effects::default();
    redispatch_step(&mut run, &wf, &cfg, &redispatch(&lost), 100, &mut fx);
    assert_eq!(fx.redispatched, 1);
    let again = fx.jobs.remove(0);
    assert_eq!(
        (again.attempt, again.lease),
        (1, 2),
        "same attempt, new lease"
    );
    assert_eq!(again.step_id, "a");
    let s = step(&run, "a");
    assert_eq!(
        (s.status, s.lease, s.lease_holder),
        (StepStatus::Queued, 2, 0)
    );
    assert_eq!(s.worker_id, None);
    assert_eq!(run.new_events.len(), 1);
    assert_eq!(run.new_events[0].event_type, Ev::StepQueued);
    assert_eq!(
        run.new_events[0].message.as_deref(),
        Some("dispatched again: its job was lost")
    );
    loaded(&mut run);

    // The same command again, or the lost job's late result: nothing changes.
    let mut fx = Effects::default();
    redispatch_step(&mut run, &wf, &cfg, &redispatch(&lost), 110, &mut fx);
    let late = result(&lost, v1::JobOutcome::Succeeded, json!({}));
    apply_job_result(&mut run, &wf, &cfg, &late, 120, &mut fx);
    assert!(!run.is_changed(), "{:?}", run.new_events);
    assert_eq!((fx.redispatched, fx.fenced.results), (0, 1));
    assert!(fx.jobs.is_empty());

    // The new job's result ends the step; a command for it afterwards changes nothing.
    let done = result(&again, v1::JobOutcome::Succeeded, json!({}));
    apply_job_result(&mut run, &wf, &cfg, &done, 130, &mut fx);
    assert_eq!(step(&run, "a").status, StepStatus::Completed);
    loaded(&mut run);
    redispatch_step(&mut run, &wf, &cfg, &redispatch(&again), 140, &mut fx);
    assert!(!run.is_changed());
}

#[test]
fn a_parked_step_gives_up_its_lease_so_nobody_looks_for_its_job() {
    let wf = workflow(CHAIN);
    let cfg = EngineConfig::default();
    let mut run = new_run(json!({}));
    let mut fx = Effects::default();
    start_run(&mut run, &wf, &cfg, 0, &mut fx);
    let a = fx.jobs.remove(0);
    apply_job_started(&mut run, &cfg, &started(&a, "w1", 5), 5, &mut fx);
    assert_eq!(step(&run, "a").lease_ttl, cfg.lease_ttl);
    loaded(&mut run);

    let parked = v1::JobStarted {
        parked: true,
        ..started(&a, "w1", 5)
    };
    apply_job_started(&mut run, &cfg, &parked, 6, &mut fx);
    let s = step(&run, "a");
    assert_eq!((s.status, s.lease_ttl), (StepStatus::Running, 0));
    assert!(s.dirty, "the lease's end must be written");
    assert_eq!(run.new_events.len(), 1, "each step change is an event");
    loaded(&mut run);
    apply_job_started(&mut run, &cfg, &parked, 7, &mut fx);
    assert!(!run.is_changed(), "parked twice is parked once");

    // Its result, carrying the lease, still lands.
    apply_job_result(
        &mut run,
        &wf,
        &cfg,
        &result(&a, v1::JobOutcome::Succeeded, json!({})),
        9,
        &mut fx,
    );
    assert_eq!(step(&run, "a").status, StepStatus::Completed);
}
