//! One attempt of a job: decode its input, run the executor under the step's timeout and the
//! run's cancel, and turn a panic or an output over the limit into a failure, so the kind's loop
//! only reports what happened. A panic is retryable (the step's retry policy decides), as it may
//! come from a passing condition; an output over the limit is not, as it would come again.

use std::{panic::AssertUnwindSafe, time::Duration};

use baton_proto::v1;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use crate::{MAX_STEP_OUTPUT_BYTES_VAR, StepExecutor, StepFailure, StepOutput};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttemptOutcome {
    Succeeded {
        output: serde_json::Value,
    },
    Failed {
        error: String,
        retryable: bool,
        retry_after: Option<Duration>,
    },
    /// The step's `timeout_ms` passed; the executor was stopped.
    TimedOut {
        limit: Duration,
    },
    /// The executor failed after the run was cancelled.
    Cancelled {
        error: String,
    },
    /// The executor parked the step; its result arrives later (see [`StepExecutor`]).
    Parked {
        reason: String,
    },
}

impl AttemptOutcome {
    /// Writes the outcome, output, error and retry flag of the attempt's result. A parked
    /// attempt has no result yet: it writes nothing and returns false.
    pub(crate) fn write_result(self, result: &mut v1::JobResult) -> bool {
        let outcome = match self {
            Self::Succeeded { output } => {
                result.output_json = output.to_string();
                v1::JobOutcome::Succeeded
            }
            Self::Failed {
                error,
                retryable,
                retry_after,
            } => {
                result.error = error;
                result.retryable = retryable;
                result.retry_after_ms = retry_after
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    .unwrap_or(0);
                v1::JobOutcome::Failed
            }
            Self::TimedOut { limit } => {
                result.error = format!("step timed out after {}", humanize(limit));
                result.retryable = true;
                v1::JobOutcome::TimedOut
            }
            Self::Cancelled { error } => {
                result.error = error;
                v1::JobOutcome::Cancelled
            }
            Self::Parked { .. } => return false,
        };
        result.outcome = outcome as i32;
        true
    }
}

/// Runs one attempt of `job` in the calling task: the job's own task is its only one, and
/// dropping the attempt (timeout, shutdown) drops the executor's future. An output whose JSON is
/// over `max_output_bytes` fails the attempt for good.
pub(crate) async fn run(
    executor: &dyn StepExecutor,
    job: &v1::Job,
    cancel: CancellationToken,
    max_output_bytes: usize,
) -> AttemptOutcome {
    let input = match job.input_json.as_str() {
        "" => serde_json::Value::Null,
        text => match serde_json::from_str(text) {
            Ok(input) => input,
            Err(e) => {
                return AttemptOutcome::Failed {
                    error: format!("input is not JSON: {e}"),
                    retryable: false,
                    retry_after: None,
                };
            }
        },
    };
    // A panicking executor fails its attempt, not the worker: the call is inside the caught
    // future, so a panic before the executor's own future exists is caught too.
    let execution = AssertUnwindSafe(async { executor.execute(job, input, cancel.clone()).await })
        .catch_unwind();
    let finished = match (job.timeout_ms > 0).then(|| Duration::from_millis(job.timeout_ms)) {
        Some(limit) => match tokio::time::timeout(limit, execution).await {
            Ok(finished) => finished,
            Err(_) => return AttemptOutcome::TimedOut { limit },
        },
        None => execution.await,
    };
    match finished {
        Ok(Ok(StepOutput::Done(output))) => match json_len(&output) {
            len if len > max_output_bytes => AttemptOutcome::Failed {
                error: format!(
                    "step output exceeds {max_output_bytes} bytes ({MAX_STEP_OUTPUT_BYTES_VAR}): it is {len} bytes"
                ),
                retryable: false,
                retry_after: None,
            },
            _ => AttemptOutcome::Succeeded { output },
        },
        Ok(Ok(StepOutput::Parked { reason })) => AttemptOutcome::Parked { reason },
        Ok(Err(StepFailure { message, .. })) if cancel.is_cancelled() => {
            AttemptOutcome::Cancelled { error: message }
        }
        Ok(Err(StepFailure {
            message,
            retryable,
            retry_after,
        })) => AttemptOutcome::Failed {
            error: message,
            retryable,
            retry_after,
        },
        Err(panic) => AttemptOutcome::Failed {
            error: format!("step executor panicked: {}", panic_message(panic.as_ref())),
            retryable: true,
            retry_after: None,
        },
    }
}

/// The length of `value`'s JSON text as the result carries it, counted without writing it.
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1_000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::{Value, json};

    use super::*;

    /// Does what its input says: `done`, `fail`, `park`, `panic`, or `wait` until cancelled.
    struct Scripted;

    #[async_trait]
    impl StepExecutor for Scripted {
        async fn execute(
            &self,
            _: &v1::Job,
            input: Value,
            cancel: CancellationToken,
        ) -> Result<StepOutput, StepFailure> {
            match input["do"].as_str() {
                Some("done") => Ok(json!({"echo": input}).into()),
                Some("fail") => Err(StepFailure::permanent("bad input")),
                Some("park") => Ok(StepOutput::parked("awaiting a decision")),
                Some("panic") => panic!("the executor broke"),
                Some("wait") => {
                    cancel.cancelled().await;
                    Err(StepFailure::retryable("stopped"))
                }
                _ => std::future::pending().await,
            }
        }
    }

    fn job(input: &str, timeout_ms: u64) -> v1::Job {
        v1::Job {
            input_json: input.to_owned(),
            timeout_ms,
            ..Default::default()
        }
    }

    /// No output limit a test's output comes near.
    const ROOMY: usize = 1 << 20;

    async fn attempt(input: &str) -> AttemptOutcome {
        run(&Scripted, &job(input, 0), CancellationToken::new(), ROOMY).await
    }

    #[tokio::test]
    async fn each_ending_has_its_outcome() {
        assert_eq!(
            attempt(r#"{"do": "done"}"#).await,
            AttemptOutcome::Succeeded {
                output: json!({"echo": {"do": "done"}})
            }
        );
        assert_eq!(
            attempt(r#"{"do": "fail"}"#).await,
            AttemptOutcome::Failed {
                error: "bad input".into(),
                retryable: false,
                retry_after: None
            }
        );
        assert_eq!(
            attempt(r#"{"do": "park"}"#).await,
            AttemptOutcome::Parked {
                reason: "awaiting a decision".into()
            }
        );
        assert_eq!(
            attempt("{not json").await,
            AttemptOutcome::Failed {
                error: "input is not JSON: key must be a string at line 1 column 2".into(),
                retryable: false,
                retry_after: None
            }
        );
    }

    #[tokio::test]
    async fn a_panic_fails_the_attempt_and_may_be_retried() {
        assert_eq!(
            attempt(r#"{"do": "panic"}"#).await,
            AttemptOutcome::Failed {
                error: "step executor panicked: the executor broke".into(),
                retryable: true,
                retry_after: None
            }
        );
    }

    /// Panics in `execute` itself, before making the future an `async fn` would return.
    struct PanicsOnCall;

    impl StepExecutor for PanicsOnCall {
        fn execute<'a, 'b, 'f>(
            &'a self,
            _: &'b v1::Job,
            _: Value,
            _: CancellationToken,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<StepOutput, StepFailure>> + Send + 'f>,
        >
        where
            'a: 'f,
            'b: 'f,
            Self: 'f,
        {
            panic!("{} broke on the call", String::from("the executor"))
        }
    }

    #[tokio::test]
    async fn a_panic_on_the_call_itself_fails_the_attempt_too() {
        let outcome = run(
            &PanicsOnCall,
            &job("{}", 0),
            CancellationToken::new(),
            ROOMY,
        )
        .await;
        assert_eq!(
            outcome,
            AttemptOutcome::Failed {
                error: "step executor panicked: the executor broke on the call".into(),
                retryable: true,
                retry_after: None
            }
        );
    }

    #[tokio::test]
    async fn an_output_over_the_limit_fails_for_good_and_is_not_sent() {
        // `{"echo":{"do":"done"}}` is 22 bytes of JSON.
        let input = r#"{"do": "done"}"#;
        let at_limit = run(&Scripted, &job(input, 0), CancellationToken::new(), 22).await;
        assert_eq!(
            at_limit,
            AttemptOutcome::Succeeded {
                output: json!({"echo": {"do": "done"}})
            }
        );
        let over = run(&Scripted, &job(input, 0), CancellationToken::new(), 21).await;
        assert_eq!(
            over,
            AttemptOutcome::Failed {
                error: "step output exceeds 21 bytes (BATON_MAX_STEP_OUTPUT_BYTES): it is 22 bytes"
                    .into(),
                retryable: false,
                retry_after: None
            }
        );
        let mut result = v1::JobResult::default();
        assert!(over.write_result(&mut result));
        assert_eq!(result.output_json, "", "the output is not sent");
        assert_eq!(result.outcome, v1::JobOutcome::Failed as i32);
        assert!(!result.retryable);
        let escaped = json!({"é": "a\"b\u{0}"});
        assert_eq!(json_len(&escaped), escaped.to_string().len());
    }

    #[tokio::test]
    async fn the_timeout_stops_the_executor() {
        let outcome = run(&Scripted, &job("{}", 30), CancellationToken::new(), ROOMY).await;
        assert_eq!(
            outcome,
            AttemptOutcome::TimedOut {
                limit: Duration::from_millis(30)
            }
        );
        let mut result = v1::JobResult::default();
        assert!(outcome.write_result(&mut result));
        assert_eq!(result.outcome, v1::JobOutcome::TimedOut as i32);
        assert_eq!(result.error, "step timed out after 30ms");
        assert!(result.retryable);
    }

    #[tokio::test]
    async fn a_failure_after_the_cancel_is_cancelled_and_not_retried() {
        let cancel = CancellationToken::new();
        let job = job(r#"{"do": "wait"}"#, 0);
        let attempt = run(&Scripted, &job, cancel.clone(), ROOMY);
        tokio::pin!(attempt);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(attempt.as_mut().poll(&mut cx).is_pending());
        cancel.cancel();
        let outcome = attempt.await;
        assert_eq!(
            outcome,
            AttemptOutcome::Cancelled {
                error: "stopped".into()
            }
        );
        let mut result = v1::JobResult::default();
        assert!(outcome.write_result(&mut result));
        assert_eq!(result.outcome, v1::JobOutcome::Cancelled as i32);
        assert!(!result.retryable);
    }

    #[test]
    fn results_carry_the_outcome_and_a_parked_attempt_has_none() {
        let mut result = v1::JobResult::default();
        assert!(
            AttemptOutcome::Succeeded {
                output: json!({"a": 1}),
            }
            .write_result(&mut result)
        );
        assert_eq!(result.outcome, v1::JobOutcome::Succeeded as i32);
        assert_eq!(result.output_json, r#"{"a":1}"#);
        let mut result = v1::JobResult::default();
        assert!(
            AttemptOutcome::Failed {
                error: "boom".into(),
                retryable: true,
                retry_after: Some(Duration::from_millis(1_500)),
            }
            .write_result(&mut result)
        );
        assert_eq!(
            (result.outcome, result.error.as_str(), result.retryable),
            (v1::JobOutcome::Failed as i32, "boom", true)
        );
        assert_eq!(result.retry_after_ms, 1_500);
        let mut result = v1::JobResult::default();
        let parked = AttemptOutcome::Parked {
            reason: "later".into(),
        };
        assert!(!parked.write_result(&mut result));
        assert_eq!(result, v1::JobResult::default());
        assert_eq!(humanize(Duration::from_millis(2500)), "2.5s");
    }
}
