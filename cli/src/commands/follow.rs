//! Following a run to its end, for `baton run watch` and `baton run start --follow`: prints the
//! run's events as they arrive, then a summary, and exits 0 only when the run completed. Step
//! durations are measured between a step's `started` event and its end event, so they are what
//! the orchestrator recorded.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use baton_proto::v1::{
    GetWorkflowRequest, Run, RunEvent, RunEventType, RunStatus, WatchRunRequest,
};

use super::Ctx;
use crate::json::{self, event_type_label, run_status_label};
use crate::output::{clock_time, format_duration, outln, print_json, shorten, span_micros};

/// Exit code for a run that ended other than completed.
const EXIT_RUN_NOT_COMPLETED: u8 = 1;
/// How many times in a row the stream may end without news while the run is still active.
const MAX_IDLE_RECONNECTS: u32 = 5;
/// How many characters of a step's output an event line shows.
const OUTPUT_WIDTH: usize = 60;

/// Prints the run's events after `after_sequence` until the run ends, then its summary.
pub async fn follow_run(ctx: &Ctx, run_id: &str, after_sequence: i64) -> anyhow::Result<ExitCode> {
    let initial = ctx.fetch_run(run_id).await?;
    let mut tracker = Tracker::new(&initial);
    if initial.steps.is_empty() && !ctx.json() {
        // A queued run has no steps yet (always so right after `start --follow`): size the
        // subject column from the workflow instead, so the first lines line up with the rest.
        // Only cosmetic, so a failure here is no reason to stop.
        let request = GetWorkflowRequest {
            workflow_ref: initial.workflow_ref.clone(),
            tenant: initial.tenant.clone(),
        };
        if let Ok(response) = ctx.workflows().get_workflow(request).await
            && let Some(workflow) = response.into_inner().workflow
        {
            tracker.widen(workflow.steps.iter().map(|s| s.id.as_str()));
        }
    }
    let mut after = after_sequence.max(0);
    let mut idle = 0;
    let run = loop {
        let request = WatchRunRequest {
            run_id: run_id.to_owned(),
            after_sequence: after,
        };
        let mut stream = ctx.runs().watch_run(request).await?.into_inner();
        let mut progressed = false;
        while let Some(message) = stream.message().await? {
            let Some(event) = message.event else { continue };
            // After a reconnect the server may replay what was already shown.
            if event.sequence <= after {
                continue;
            }
            after = event.sequence;
            progressed = true;
            let line = tracker.observe(&event);
            if ctx.json() {
                print_json(&json::event(&event, line.duration), true)?;
            } else {
                outln!(
                    "  {}  {:<width$}  {}",
                    line.time,
                    line.subject,
                    line.text,
                    width = tracker.width
                )?;
            }
        }
        // The stream ends when the run does; make sure, and pick it up again if it ended early.
        let run = ctx.fetch_run(run_id).await?;
        if is_terminal(run.status()) {
            break run;
        }
        idle = if progressed { 0 } else { idle + 1 };
        if idle >= MAX_IDLE_RECONNECTS {
            bail!(
                "the event stream of run {run_id} keeps ending while the run is {}",
                run_status_label(run.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(idle + 1))).await;
    };
    if ctx.json() {
        print_json(&json::run(&run, true), true)?;
    } else {
        outln!()?;
        outln!("{}", summary(&run))?;
        if run.status() == RunStatus::Completed && !run.output_json.trim().is_empty() {
            outln!("output: {}", json::embedded(&run.output_json))?;
        }
    }
    Ok(if run.status() == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUN_NOT_COMPLETED)
    })
}

fn is_terminal(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut
    )
}

/// `run <id> completed in 412ms`, or `run <id> failed after 1.20s: <error>`.
fn summary(run: &Run) -> String {
    let status = run_status_label(run.status).replace('_', " ");
    let start = run.started_at.as_ref().or(run.created_at.as_ref());
    let took = span_micros(start, run.ended_at.as_ref()).map(format_duration);
    let mut line = format!("run {} {status}", run.id);
    if let Some(took) = took {
        let word = if run.status() == RunStatus::Completed {
            "in"
        } else {
            "after"
        };
        line.push_str(&format!(" {word} {took}"));
    }
    if !run.error.is_empty() {
        line.push_str(": ");
        line.push_str(&run.error);
    }
    line
}

/// One event, ready to print.
#[derive(Debug, PartialEq)]
struct EventLine {
    time: String,
    /// The step id, or `run` for run-level events.
    subject: String,
    text: String,
    /// For end events: microseconds since the matching start event.
    duration: Option<i64>,
}

/// Remembers start times so end events can say how long things took.
struct Tracker {
    /// Width of the subject column: the longest step id.
    width: usize,
    run_started: Option<i64>,
    /// Step id → (attempt, start time in microseconds).
    step_started: HashMap<String, (u32, i64)>,
}

impl Tracker {
    /// Seeds the start times from the run as it was before watching, for when early events are
    /// not replayed (`--after-sequence`); replayed start events replace them.
    fn new(run: &Run) -> Self {
        let width = run
            .steps
            .iter()
            .map(|s| s.step_id.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        let run_started = run
            .started_at
            .as_ref()
            .map(baton_proto::timestamp_to_micros);
        let step_started = run
            .steps
            .iter()
            .filter_map(|s| {
                let started = s
                    .started_at
                    .as_ref()
                    .map(baton_proto::timestamp_to_micros)?;
                Some((s.step_id.clone(), (s.attempt, started)))
            })
            .collect();
        Self {
            width,
            run_started,
            step_started,
        }
    }

    /// Makes the subject column wide enough for these step ids.
    fn widen<'a>(&mut self, step_ids: impl IntoIterator<Item = &'a str>) {
        for id in step_ids {
            self.width = self.width.max(id.chars().count());
        }
    }

    fn observe(&mut self, event: &RunEvent) -> EventLine {
        use RunEventType as T;
        let at = event.time.as_ref().map(baton_proto::timestamp_to_micros);
        let kind = RunEventType::try_from(event.r#type).unwrap_or(T::Unspecified);
        let since = |start: Option<i64>| match (start, at) {
            (Some(start), Some(at)) if at >= start => Some(at - start),
            _ => None,
        };
        let step_start = self
            .step_started
            .get(&event.step_id)
            .filter(|(attempt, _)| *attempt == event.attempt)
            .map(|(_, started)| *started);
        let message = event.message.as_str();
        let (text, duration) = match kind {
            T::RunQueued => ("queued".to_owned(), None),
            T::RunStarted => {
                self.run_started = at.or(self.run_started);
                ("started".to_owned(), None)
            }
            T::RunCompleted => {
                let d = since(self.run_started);
                (ended("completed", "in", d, ""), d)
            }
            T::RunFailed => {
                let d = since(self.run_started);
                (ended("failed", "after", d, message), d)
            }
            T::RunCancelled => {
                let d = since(self.run_started);
                (ended("cancelled", "after", d, message), d)
            }
            T::RunTimedOut => {
                let d = since(self.run_started);
                (ended("timed out", "after", d, message), d)
            }
            T::StepQueued => (with_attempt("queued", event.attempt), None),
            T::StepStarted => {
                if let Some(at) = at {
                    self.step_started
                        .insert(event.step_id.clone(), (event.attempt, at));
                }
                (with_attempt("started", event.attempt), None)
            }
            T::StepCompleted => {
                let d = since(step_start);
                let mut text = ended("completed", "in", d, "");
                let output = json::embedded(&event.output_json);
                if !output.is_null() {
                    text.push_str(" → ");
                    text.push_str(&shorten(&output.to_string(), OUTPUT_WIDTH));
                }
                (text, d)
            }
            T::StepFailed => {
                let d = since(step_start);
                (ended("failed", "after", d, message), d)
            }
            T::StepRetrying => (with_message("retrying", message), since(step_start)),
            T::StepSkipped => (with_message("skipped", message), None),
            T::StepCancelled => (with_message("cancelled", message), None),
            T::Unspecified => (with_message(&event_type_label(event.r#type), message), None),
        };
        let subject = if event.step_id.is_empty() {
            "run".to_owned()
        } else {
            event.step_id.clone()
        };
        self.width = self.width.max(subject.chars().count());
        EventLine {
            time: clock_time(event.time.as_ref()),
            subject,
            text,
            duration,
        }
    }
}

/// `completed in 3ms`, `failed after 2ms: boom`, `failed: boom`.
fn ended(what: &str, word: &str, duration: Option<i64>, message: &str) -> String {
    let mut text = what.to_owned();
    if let Some(d) = duration {
        text.push_str(&format!(" {word} {}", format_duration(d)));
    }
    with_message(&text, message)
}

fn with_message(what: &str, message: &str) -> String {
    if message.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {message}")
    }
}

fn with_attempt(what: &str, attempt: u32) -> String {
    if attempt == 0 {
        what.to_owned()
    } else {
        format!("{what} (attempt {attempt})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::v1::StepRun;

    fn event(kind: RunEventType, step: &str, attempt: u32, ms: i64, message: &str) -> RunEvent {
        RunEvent {
            run_id: "r1".into(),
            r#type: kind as i32,
            step_id: step.into(),
            attempt,
            time: Some(baton_proto::timestamp_from_micros(
                1_700_000_000_000_000 + ms * 1_000,
            )),
            message: message.into(),
            ..RunEvent::default()
        }
    }

    fn empty_run() -> Run {
        let step = |id: &str| StepRun {
            step_id: id.into(),
            ..StepRun::default()
        };
        Run {
            id: "r1".into(),
            steps: vec![step("greet"), step("left")],
            ..Run::default()
        }
    }

    #[test]
    fn describes_a_run() {
        use RunEventType as T;
        let mut tracker = Tracker::new(&empty_run());
        assert_eq!(tracker.width, 5);
        let mut text = |e: RunEvent| tracker.observe(&e).text;
        assert_eq!(text(event(T::RunStarted, "", 0, 0, "")), "started");
        assert_eq!(
            text(event(T::StepStarted, "greet", 1, 10, "")),
            "started (attempt 1)"
        );
        let mut done = event(T::StepCompleted, "greet", 1, 13, "");
        done.output_json = r#"{"count":3}"#.into();
        assert_eq!(text(done), r#"completed in 3ms → {"count":3}"#);
        assert_eq!(
            text(event(T::StepStarted, "left", 1, 20, "")),
            "started (attempt 1)"
        );
        assert_eq!(
            text(event(
                T::StepRetrying,
                "left",
                1,
                25,
                "flaky; attempt 2 of 3 in 100ms"
            )),
            "retrying: flaky; attempt 2 of 3 in 100ms"
        );
        assert_eq!(
            text(event(T::StepStarted, "left", 2, 130, "")),
            "started (attempt 2)"
        );
        assert_eq!(
            text(event(T::StepFailed, "left", 2, 140, "boom")),
            "failed after 10ms: boom"
        );
        assert_eq!(
            text(event(T::StepSkipped, "join", 0, 141, "condition false")),
            "skipped: condition false"
        );
        assert_eq!(
            text(event(T::RunFailed, "", 0, 412, "step left failed")),
            "failed after 412ms: step left failed"
        );
    }

    #[test]
    fn width_from_workflow_steps() {
        let mut tracker = Tracker::new(&Run::default());
        assert_eq!(tracker.width, 3);
        tracker.widen(["greet", "a"]);
        assert_eq!(tracker.width, 5);
        tracker.widen(["ab"]);
        assert_eq!(tracker.width, 5);
    }

    #[test]
    fn durations_need_a_matching_start() {
        use RunEventType as T;
        let mut tracker = Tracker::new(&empty_run());
        let line = tracker.observe(&event(T::StepCompleted, "greet", 1, 5, ""));
        assert_eq!((line.text.as_str(), line.duration), ("completed", None));
        tracker.observe(&event(T::StepStarted, "greet", 1, 10, ""));
        let line = tracker.observe(&event(T::StepCompleted, "greet", 2, 15, ""));
        assert_eq!(
            line.duration, None,
            "a different attempt's start does not count"
        );
    }

    #[test]
    fn start_times_are_seeded_from_the_run() {
        use RunEventType as T;
        let mut run = empty_run();
        run.started_at = Some(baton_proto::timestamp_from_micros(1_700_000_000_000_000));
        run.steps[0].attempt = 1;
        run.steps[0].started_at = run.started_at;
        let mut tracker = Tracker::new(&run);
        let line = tracker.observe(&event(T::StepCompleted, "greet", 1, 3, ""));
        assert_eq!(
            (line.text.as_str(), line.duration),
            ("completed in 3ms", Some(3_000))
        );
        let line = tracker.observe(&event(T::RunCompleted, "", 0, 412, ""));
        assert_eq!(
            (line.subject.as_str(), line.text.as_str()),
            ("run", "completed in 412ms")
        );
    }

    #[test]
    fn summaries() {
        let mut run = empty_run();
        run.status = RunStatus::TimedOut as i32;
        run.started_at = Some(baton_proto::timestamp_from_micros(0));
        run.ended_at = Some(baton_proto::timestamp_from_micros(1_500_000));
        run.error = "run exceeded its timeout".into();
        assert_eq!(
            summary(&run),
            "run r1 timed out after 1.50s: run exceeded its timeout"
        );
        run.status = RunStatus::Completed as i32;
        run.error.clear();
        assert_eq!(summary(&run), "run r1 completed in 1.50s");
    }
}
