//! Cancels reach the runner through its inbox, as the runner is the only writer of run state:
//! the first cancel of an active run ends it, a repeated one changes nothing, and `CancelRun`
//! waits a bounded time for the runner to apply it.

use std::time::{Duration, Instant};

use baton_proto::v1::{self, RunEventType, RunStatus, StepStatus};
use baton_queue::StreamStats;
use baton_testkit::{StackOptions, TestStack, status, step_status};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
/// How long `CancelRun` waits for the runner before it answers with the run as it is.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

const NAP: &str = "owner: t\nname: nap\nversion: 1\nsteps:\n\
                   - {id: nap, kind: sleep, input: {duration: 10m}}\n\
                   - {id: after, kind: noop, needs: [nap]}\n";

fn cancel(run_id: &str, reason: &str) -> v1::RunnerMessage {
    v1::RunnerMessage {
        message: Some(v1::runner_message::Message::CancelRun(
            v1::CancelRunCommand {
                run_id: run_id.to_owned(),
                reason: reason.to_owned(),
                requested_at: None,
            },
        )),
    }
}

/// Polls the queue's streams until `check` holds.
async fn wait_for_streams(
    stack: &TestStack,
    kinds: &[&str],
    what: &str,
    check: impl Fn(&[StreamStats]) -> bool,
) -> Vec<StreamStats> {
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = stack.queue.stats(&kinds).await.unwrap();
        if check(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WAIT:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stream `name`'s (length, pending), when listed.
fn stream(stats: &[StreamStats], name: &str) -> Option<(u64, u64)> {
    stats
        .iter()
        .find(|s| s.name == name)
        .map(|s| (s.length, s.pending))
}

async fn run_events(stack: &TestStack, run_id: &str) -> Vec<RunEventType> {
    let events = stack
        .store
        .list_events(run_id.parse().unwrap(), 0, 1_000)
        .await
        .unwrap();
    events.iter().map(|e| e.record.event_type).collect()
}

#[tokio::test]
async fn the_first_cancel_ends_the_run_and_repeats_change_nothing() {
    let stack = TestStack::start().await.unwrap();
    stack.register(NAP).await.unwrap();
    let run = stack.start_run("t/nap@1", json!({})).await.unwrap();
    stack
        .wait_for(&run.id, WAIT, |r| {
            r.steps
                .iter()
                .any(|s| s.step_id == "nap" && step_status(s) == StepStatus::Running)
        })
        .await
        .unwrap();

    // Two cancels in one go: whichever the runner applies first ends the run (two runner
    // pipelines may take them in separate batches); the other finds the run ended.
    stack
        .queue
        .send_to_runner(&[cancel(&run.id, "first"), cancel(&run.id, "second")])
        .await
        .unwrap();
    let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&ended), RunStatus::Cancelled);
    assert!(
        ["first", "second"].contains(&ended.error.as_str()),
        "{ended:?}"
    );
    assert!(
        ended
            .steps
            .iter()
            .all(|s| step_status(s) == StepStatus::Cancelled && s.error == ended.error),
        "every step ends with the one cancel that ended the run: {ended:?}"
    );
    // The cancel notice went out with the batch: the sleeping job stopped and was acknowledged,
    // and the runner took in its cancelled result.
    wait_for_streams(
        &stack,
        &["sleep"],
        "the sleep job and the inbox drain",
        |s| stream(s, "jobs:sleep") == Some((0, 0)) && stream(s, "runner") == Some((0, 0)),
    )
    .await;
    let events = run_events(&stack, &run.id).await;
    let cancelled = events
        .iter()
        .filter(|e| **e == RunEventType::RunCancelled)
        .count();
    assert_eq!(cancelled, 1, "{events:?}");

    // A cancel of the ended run changes nothing.
    let settled = stack.get_run(&run.id).await.unwrap();
    stack
        .queue
        .send_to_runner(&[cancel(&run.id, "third")])
        .await
        .unwrap();
    wait_for_streams(&stack, &[], "the inbox drains", |s| {
        stream(s, "runner") == Some((0, 0))
    })
    .await;
    let later = stack.get_run(&run.id).await.unwrap();
    assert_eq!(later.last_sequence, settled.last_sequence);
    assert_eq!(later.error, ended.error);
    assert_eq!(later.steps, settled.steps);
    assert!(
        stack.queue.dead_letters(10).await.unwrap().is_empty(),
        "a repeated cancel is not an error"
    );
    stack.stop().await;
}

#[tokio::test]
async fn cancel_run_waits_a_bounded_time_and_the_runner_applies_it_later() {
    // No runner yet, and no workers: nothing can apply the cancel, and a dispatched job would
    // stay in its stream. The sweep leaves the run alone, so the runner's first batch is all
    // there is.
    let options = StackOptions {
        runners: 0,
        builtin_workers: false,
        ..StackOptions::default()
    }
    .runner_env("BATON_SWEEP_GRACE", "1h");
    let mut stack = TestStack::start_with(options).await.unwrap();
    stack.register(NAP).await.unwrap();
    let run = stack.start_run("t/nap@1", json!({})).await.unwrap();

    let asked = Instant::now();
    let answered = stack
        .runs()
        .await
        .cancel_run(v1::CancelRunRequest {
            run_id: run.id.clone(),
            reason: " ".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let waited = asked.elapsed();
    // Returned as it is once the wait ran out: still queued, the command left in the inbox.
    assert_eq!(status(&answered), RunStatus::Queued, "{answered:?}");
    assert!(
        waited >= CANCEL_WAIT - Duration::from_millis(100) && waited < CANCEL_WAIT * 2,
        "CancelRun answered after {waited:?}"
    );
    let stats = stack.queue.stats(&["sleep".to_owned()]).await.unwrap();
    assert_eq!(stream(&stats, "runner"), Some((2, 0)), "{stats:?}");

    // A runner takes the start and the cancel in one batch: the run ends cancelled, with the
    // reason a blank one stands for, and no job goes out for it.
    let token = tokio_util::sync::CancellationToken::new();
    stack.spawn_runner("late", token.clone()).await.unwrap();
    let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&ended), RunStatus::Cancelled, "{ended:?}");
    assert_eq!(ended.error, "cancelled by request");
    assert!(
        ended
            .steps
            .iter()
            .all(|s| step_status(s) == StepStatus::Cancelled),
        "{ended:?}"
    );
    let stats = wait_for_streams(&stack, &["sleep"], "the inbox drains", |s| {
        stream(s, "runner") == Some((0, 0))
    })
    .await;
    assert_eq!(stream(&stats, "jobs:sleep"), Some((0, 0)), "{stats:?}");
    let events = run_events(&stack, &run.id).await;
    assert_eq!(
        events.last(),
        Some(&RunEventType::RunCancelled),
        "{events:?}"
    );

    // An ended run cannot be cancelled again.
    let again = stack
        .runs()
        .await
        .cancel_run(v1::CancelRunRequest {
            run_id: run.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(again.message().contains(&run.id), "{}", again.message());
    token.cancel();
    stack.stop().await;
}
