//! `WatchRun`: replay from any sequence, then live events until the run ends, in order and without
//! gaps.

use std::time::Duration;

use baton_proto::v1::{self, RunEventType};
use baton_testkit::TestStack;
use serde_json::json;
use tokio_stream::StreamExt;

async fn collect(stack: &TestStack, run_id: &str, after: i64) -> Vec<v1::RunEvent> {
    let mut stream = stack
        .runs()
        .await
        .watch_run(v1::WatchRunRequest {
            run_id: run_id.into(),
            after_sequence: after,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("watch stalled")
    {
        events.push(item.unwrap().event.unwrap());
    }
    events
}

#[tokio::test]
async fn watch_follows_live_then_replays_from_any_sequence() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    let run = stack
        .start_run("examples/hello@1", json!({"name": "Ada", "count": 2}))
        .await
        .unwrap();
    let live = collect(&stack, &run.id, 0).await;
    let sequences: Vec<i64> = live.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=live.len() as i64).collect::<Vec<_>>());
    let types: Vec<RunEventType> = live
        .iter()
        .map(|e| RunEventType::try_from(e.r#type).unwrap())
        .collect();
    assert_eq!(types.first(), Some(&RunEventType::RunQueued));
    assert_eq!(types.last(), Some(&RunEventType::RunCompleted));
    assert!(types.contains(&RunEventType::StepRetrying));
    let greet_done = live
        .iter()
        .find(|e| e.step_id == "greet" && e.r#type == RunEventType::StepCompleted as i32)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&greet_done.output_json).unwrap()["message"],
        "Hello, Ada"
    );

    // After the end: a replay from the middle gives exactly the rest.
    let rest = collect(&stack, &run.id, 5).await;
    assert!(
        rest.iter()
            .chain(&live)
            .all(|e| e.tenant == "default" && e.workflow_ref == "examples/hello@1")
    );
    assert_eq!(rest.first().unwrap().sequence, 6);
    assert_eq!(rest.len(), live.len() - 5);
    assert_eq!(
        rest.last().unwrap().sequence,
        stack.get_run(&run.id).await.unwrap().last_sequence
    );

    let missing = stack
        .runs()
        .await
        .watch_run(v1::WatchRunRequest {
            run_id: uuid::Uuid::new_v4().to_string(),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    stack.stop().await;
}
