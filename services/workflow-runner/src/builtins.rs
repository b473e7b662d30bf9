//! The built-in step kinds, executed by a worker pool inside the runner through the same queues
//! as every other kind: `noop`, `echo`, `sleep` and `fail`.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use baton_proto::v1;
use baton_worker::{StepExecutor, StepFailure, StepOutput, WorkerPool};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Does nothing; its output is `null`.
pub struct Noop;
/// Outputs its rendered input.
pub struct Echo;
/// Waits `input.duration`.
pub struct Sleep;
/// Fails with `input.message`; with `input.times: N`, only the first N attempts fail.
pub struct Fail;

#[async_trait]
impl StepExecutor for Noop {
    async fn execute(
        &self,
        _: &v1::Job,
        _: Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        Ok(Value::Null.into())
    }
}

#[async_trait]
impl StepExecutor for Echo {
    async fn execute(
        &self,
        _: &v1::Job,
        input: Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        Ok(input.into())
    }
}

#[async_trait]
impl StepExecutor for Sleep {
    async fn execute(
        &self,
        _: &v1::Job,
        input: Value,
        cancel: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        let text = input
            .get("duration")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                StepFailure::permanent("input.duration: must be a duration such as `200ms`")
            })?;
        let duration: Duration = humantime::parse_duration(text).map_err(|e| {
            StepFailure::permanent(format!("input.duration: `{text}` is not a duration ({e})"))
        })?;
        tokio::select! {
            _ = tokio::time::sleep(duration) => Ok(json!({ "slept_ms": duration.as_millis() as u64 }).into()),
            _ = cancel.cancelled() => Err(StepFailure::permanent("cancelled")),
        }
    }
}

#[async_trait]
impl StepExecutor for Fail {
    async fn execute(
        &self,
        job: &v1::Job,
        input: Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        let message = input
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("step failed");
        match input.get("times") {
            None => Err(StepFailure::retryable(message)),
            Some(times) => {
                let times = times
                    .as_u64()
                    .ok_or_else(|| StepFailure::permanent("input.times: must be a whole number"))?;
                if u64::from(job.attempt) <= times {
                    Err(StepFailure::retryable(message))
                } else {
                    Ok(json!({ "attempt": job.attempt, "failed_attempts": times }).into())
                }
            }
        }
    }
}

/// Registers every built-in kind on a pool.
pub fn with_builtins(pool: WorkerPool) -> WorkerPool {
    pool.with_executor("noop", Arc::new(Noop))
        .with_executor("echo", Arc::new(Echo))
        .with_executor("sleep", Arc::new(Sleep))
        .with_executor("fail", Arc::new(Fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(attempt: u32) -> v1::Job {
        v1::Job {
            attempt,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn fail_times_then_succeeds() {
        let input = json!({"message": "flaky", "times": 2});
        for attempt in 1..=2 {
            let err = Fail
                .execute(&job(attempt), input.clone(), CancellationToken::new())
                .await
                .unwrap_err();
            assert!(err.retryable && err.message == "flaky");
        }
        let out = Fail
            .execute(&job(3), input, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            out,
            StepOutput::Done(json!({"attempt": 3, "failed_attempts": 2}))
        );
        let err = Fail
            .execute(&job(9), json!({}), CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.retryable && err.message == "step failed", "{err:?}");
        let err = Fail
            .execute(&job(1), json!({"times": "two"}), CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            !err.retryable && err.message.contains("input.times"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn sleep_stops_with_a_permanent_cancel_error_when_cancelled() {
        let token = CancellationToken::new();
        let job = job(1);
        let mut sleeping =
            std::pin::pin!(Sleep.execute(&job, json!({"duration": "1h"}), token.clone()));
        // Started and waiting on its hour before the cancel arrives.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(sleeping.as_mut().poll(&mut cx).is_pending());
        token.cancel();
        // Only the cancel can end an hour's sleep within the bound.
        let err = tokio::time::timeout(Duration::from_secs(60), sleeping)
            .await
            .expect("the cancelled sleep ended")
            .unwrap_err();
        assert_eq!(err.message, "cancelled");
        assert!(!err.retryable, "a cancelled step is not retried");
    }

    #[tokio::test]
    async fn sleep_waits_its_duration() {
        let started = tokio::time::Instant::now();
        let out = Sleep
            .execute(
                &job(1),
                json!({"duration": "20ms"}),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(out, StepOutput::Done(json!({"slept_ms": 20})));
    }

    #[tokio::test]
    async fn sleep_rejects_a_missing_or_bad_duration() {
        for input in [
            json!({}),
            json!({"duration": "soon"}),
            json!({"duration": 5}),
        ] {
            let err = Sleep
                .execute(&job(1), input.clone(), CancellationToken::new())
                .await
                .unwrap_err();
            assert!(err.message.contains("input.duration"), "{input}: {err:?}");
            assert!(!err.retryable, "{input}");
        }
    }
}
