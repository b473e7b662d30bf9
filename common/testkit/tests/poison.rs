//! One bad value must not hurt anyone else: text the store cannot hold (U+0000) and oversized
//! inputs are refused at the API, naming the field, while the calls batched with them succeed.

use std::time::Duration;

use baton_proto::v1::{self, RunStatus};
use baton_testkit::{TestStack, output, status, step};
use serde_json::json;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

const ECHO: &str = "owner: t\nname: echo\nversion: 1\nsteps:\n  - {id: say, kind: echo, input: {user: '{{ inputs.user }}'}}\n";

/// What every refusal of a NUL character says.
const NUL_RULE: &str =
    "holds a NUL character (U+0000); text fields accept any Unicode except U+0000";

fn start_request(inputs_json: &str) -> v1::StartRunRequest {
    v1::StartRunRequest {
        workflow_ref: "t/echo@1".into(),
        inputs_json: inputs_json.into(),
        ..Default::default()
    }
}

/// Asserts INVALID_ARGUMENT with a message starting with `prefix` and naming the NUL rule.
fn assert_refused_nul(status: &tonic::Status, prefix: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(prefix) && status.message().ends_with(NUL_RULE),
        "expected `{prefix}…{NUL_RULE}`, got `{}`",
        status.message()
    );
}

async fn runs_stored(stack: &TestStack) -> usize {
    let page = stack
        .runs()
        .await
        .list_runs(v1::ListRunsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_page_token.is_empty(), "one page holds them all");
    page.runs.len()
}

#[tokio::test]
async fn a_nul_in_inputs_is_refused_naming_its_path() {
    let stack = TestStack::start().await.unwrap();
    stack.register(ECHO).await.unwrap();
    let mut runs = stack.runs().await;
    let cases = [
        (
            r#"{"user": {"name": "A\u0000da"}}"#,
            "inputs_json: $.user.name ",
        ),
        (
            r#"{"user": {"tags": ["ok", {"deep": ["x", "\u0000"]}]}}"#,
            "inputs_json: $.user.tags[1].deep[1] ",
        ),
        (
            r#"{"user": {"na\u0000me": "Ada"}}"#,
            r#"inputs_json: the key of $.user["na\u0000me"] "#,
        ),
    ];
    for (inputs, prefix) in cases {
        let refused = runs.start_run(start_request(inputs)).await.unwrap_err();
        assert_refused_nul(&refused, prefix);
    }
    assert_eq!(runs_stored(&stack).await, 0, "no refused run is stored");
    stack.stop().await;
}

#[tokio::test]
async fn a_poisoned_start_among_concurrent_ones_fails_alone() {
    const STARTS: usize = 20;
    const POISONED: usize = 7;
    let stack = TestStack::start().await.unwrap();
    stack.register(ECHO).await.unwrap();
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..STARTS {
        let mut runs = stack.runs().await;
        let inputs = if i == POISONED {
            json!({"user": {"name": "bad\u{0}", "i": i}})
        } else {
            json!({"user": {"name": format!("user-{i}"), "i": i}})
        };
        starts.spawn(async move { (i, runs.start_run(start_request(&inputs.to_string())).await) });
    }
    let mut started = Vec::new();
    while let Some(joined) = starts.join_next().await {
        let (i, answer) = joined.unwrap();
        match answer {
            Ok(response) if i != POISONED => {
                let response = response.into_inner();
                assert!(response.created);
                started.push((i, response.run.unwrap().id));
            }
            Err(refused) if i == POISONED => {
                assert_refused_nul(&refused, "inputs_json: $.user.name ")
            }
            other => panic!("start {i}: unexpected answer {other:?}"),
        }
    }
    assert_eq!(started.len(), STARTS - 1);
    for (i, id) in started {
        let run = stack.wait_for_end(&id, WAIT).await.unwrap();
        assert_eq!(status(&run), RunStatus::Completed, "run {i}: {}", run.error);
        assert_eq!(
            output(step(&run, "say")),
            json!({"user": {"name": format!("user-{i}"), "i": i}})
        );
    }
    assert_eq!(runs_stored(&stack).await, STARTS - 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_nul_in_a_text_field_is_refused_naming_it() {
    let stack = TestStack::start().await.unwrap();
    stack.register(ECHO).await.unwrap();
    let mut runs = stack.runs().await;
    let refused = runs
        .start_run(v1::StartRunRequest {
            idempotency_key: "key-\u{0}".into(),
            ..start_request("{}")
        })
        .await
        .unwrap_err();
    assert_refused_nul(&refused, "idempotency_key: ");
    let refused = runs
        .start_run(v1::StartRunRequest {
            tenant: "acme\u{0}".into(),
            ..start_request("{}")
        })
        .await
        .unwrap_err();
    assert_refused_nul(&refused, "tenant: ");
    let refused = runs
        .start_run(v1::StartRunRequest {
            workflow_ref: "t/echo\u{0}@1".into(),
            ..start_request("{}")
        })
        .await
        .unwrap_err();
    assert_refused_nul(&refused, "workflow_ref: ");
    assert_eq!(runs_stored(&stack).await, 0);

    let run = stack
        .start_run("t/echo@1", json!({"user": "Ada"}))
        .await
        .unwrap();
    let refused = runs
        .cancel_run(v1::CancelRunRequest {
            run_id: run.id.clone(),
            reason: "because\u{0}".into(),
        })
        .await
        .unwrap_err();
    assert_refused_nul(&refused, "reason: ");
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    stack.stop().await;
}

#[tokio::test]
async fn a_nul_in_a_definition_is_refused_naming_where() {
    let stack = TestStack::start().await.unwrap();
    let cases = [
        // A JSON escape inside a step's input.
        (
            r#"{"owner": "t", "name": "nul", "version": 1, "steps": [{"id": "say", "kind": "echo", "input": {"text": "a\u0000b"}}]}"#,
            "definition: step `say`: $.input.text ",
        ),
        // A YAML escape in the description.
        (
            "owner: t\nname: nul\nversion: 1\ndescription: \"bad\\0\"\nsteps:\n  - {id: say, kind: echo}\n",
            "definition: $.description ",
        ),
        // The character itself, in the raw text.
        (
            "owner: t\nname: nul\nversion: 1\ndescription: bad\u{0}\nsteps:\n  - {id: say, kind: echo}\n",
            "definition: ",
        ),
    ];
    for (definition, prefix) in cases {
        let refused = stack.register(definition).await.unwrap_err();
        assert_refused_nul(&refused, prefix);
    }
    let stored = stack
        .workflows()
        .await
        .list_workflows(v1::ListWorkflowsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(stored.workflows.is_empty(), "{:?}", stored.workflows);
    stack.stop().await;
}

#[tokio::test]
async fn oversized_inputs_are_refused_naming_the_limit() {
    let stack = TestStack::start().await.unwrap();
    stack.register(ECHO).await.unwrap();
    let limit = baton_orchestrator::OrchestratorConfig::DEFAULT_MAX_INPUTS_BYTES;
    let inputs = json!({"user": "x".repeat(limit)}).to_string();
    let refused = stack
        .runs()
        .await
        .start_run(start_request(&inputs))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let expected = format!(
        "inputs_json: {} bytes is over the limit of {limit} bytes (BATON_MAX_INPUTS_BYTES)",
        inputs.len()
    );
    assert_eq!(refused.message(), expected);
    assert_eq!(runs_stored(&stack).await, 0);
    stack.stop().await;
}

/// Makes the store itself refuse to record a run whose inputs hold `"poison": "yes"`, as a value
/// the database cannot take would, whatever the API let through.
async fn refuse_poisoned_runs(stack: &TestStack, db_path: &std::path::Path) {
    match stack.kind {
        baton_testkit::BackendKind::Production => {
            let pool = stack.pg().pool();
            sqlx::query(
                "CREATE FUNCTION refuse_run() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'this run cannot be stored'; END $$",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_run BEFORE INSERT ON runs FOR EACH ROW \
                 WHEN (NEW.inputs->>'poison' = 'yes') EXECUTE FUNCTION refuse_run()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        baton_testkit::BackendKind::Embedded => {
            let pool = baton_sqlite::open(db_path, 1).await.unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_run BEFORE INSERT ON runs \
                 WHEN json_extract(NEW.inputs, '$.poison') = 'yes' \
                 BEGIN SELECT RAISE(ABORT, 'this run cannot be stored'); END",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    }
}

#[tokio::test]
async fn a_start_the_database_refuses_fails_alone_and_hides_the_database_text() {
    const STARTS: usize = 20;
    const POISONED: usize = 11;
    let backend = baton_testkit::TestBackend::from_env().await.unwrap();
    let db_path = backend.db_path.clone();
    let stack = TestStack::start_on(backend, Default::default())
        .await
        .unwrap();
    stack.register(ECHO).await.unwrap();
    refuse_poisoned_runs(&stack, &db_path).await;
    // Started together, so the orchestrator records them in one batch.
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..STARTS {
        let mut runs = stack.runs().await;
        let inputs = match i {
            POISONED => json!({"user": "bad", "poison": "yes"}),
            _ => json!({"user": format!("user-{i}")}),
        };
        starts.spawn(async move { (i, runs.start_run(start_request(&inputs.to_string())).await) });
    }
    let mut started = Vec::new();
    while let Some(joined) = starts.join_next().await {
        let (i, answer) = joined.unwrap();
        match answer {
            Ok(response) if i != POISONED => started.push(response.into_inner().run.unwrap().id),
            Err(refused) if i == POISONED => {
                assert_eq!(refused.code(), Code::Internal, "{refused:?}");
                assert!(
                    !refused.message().contains("cannot be stored"),
                    "the database's own words stay in the log: {refused:?}"
                );
            }
            other => panic!("start {i}: unexpected answer {other:?}"),
        }
    }
    assert_eq!(started.len(), STARTS - 1);
    for id in started {
        let run = stack.wait_for_end(&id, WAIT).await.unwrap();
        assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    }
    assert_eq!(runs_stored(&stack).await, STARTS - 1);
    stack.stop().await;
}
