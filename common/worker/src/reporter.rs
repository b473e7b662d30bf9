//! Reports from many concurrent jobs leave in batches: one pipeline carries every start and
//! result ready at that moment, plus the acknowledgements of the finished jobs. A start whose
//! result is in the same batch is dropped, since the result carries the start time.

use std::{collections::HashSet, sync::Arc, time::Duration};

use baton_proto::v1::{self, runner_message::Message};
use baton_queue::JobStream;
use tokio::sync::mpsc;

/// Most reports sent in one round trip.
const MAX_BATCH: usize = 512;

/// One report: a message for the runner, and the job entry to acknowledge with it (results, and
/// parked jobs, whose start may have left already and which then send only the acknowledgement).
pub(crate) struct Report {
    pub message: Option<v1::RunnerMessage>,
    pub ack: Option<String>,
}

/// Sends reports until every sender is gone, then drains what is left.
pub(crate) async fn run_reporter(
    queue: Arc<dyn JobStream>,
    kind: String,
    mut rx: mpsc::Receiver<Report>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (messages, acks) = coalesce(std::mem::take(&mut batch));
        let mut delay = Duration::from_millis(50);
        // Reports are not dropped on a Redis error: unacknowledged jobs would be run again, so
        // keep trying until Redis answers.
        while let Err(e) = queue.report(&kind, &messages, &acks).await {
            tracing::warn!(kind, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot send reports");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

fn key(run_id: &str, step_id: &str, attempt: u32) -> (String, String, u32) {
    (run_id.to_owned(), step_id.to_owned(), attempt)
}

fn coalesce(reports: Vec<Report>) -> (Vec<v1::RunnerMessage>, Vec<String>) {
    let finished: HashSet<_> = reports
        .iter()
        .filter_map(|r| match r.message.as_ref()?.message.as_ref()? {
            Message::JobResult(res) => Some(key(&res.run_id, &res.step_id, res.attempt)),
            _ => None,
        })
        .collect();
    let mut messages = Vec::with_capacity(reports.len());
    let mut acks = Vec::new();
    for report in reports {
        acks.extend(report.ack);
        match report.message {
            Some(v1::RunnerMessage {
                message: Some(Message::JobStarted(s)),
            }) if finished.contains(&key(&s.run_id, &s.step_id, s.attempt)) => {}
            Some(message) => messages.push(message),
            None => {}
        }
    }
    (messages, acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(step: &str) -> Report {
        Report {
            message: Some(v1::RunnerMessage {
                message: Some(Message::JobStarted(v1::JobStarted {
                    run_id: "r".into(),
                    step_id: step.into(),
                    attempt: 1,
                    ..Default::default()
                })),
            }),
            ack: None,
        }
    }

    fn finished(step: &str) -> Report {
        Report {
            message: Some(v1::RunnerMessage {
                message: Some(Message::JobResult(v1::JobResult {
                    run_id: "r".into(),
                    step_id: step.into(),
                    attempt: 1,
                    ..Default::default()
                })),
            }),
            ack: Some(format!("id-{step}")),
        }
    }

    #[test]
    fn start_with_result_in_same_batch_is_dropped() {
        let (messages, acks) = coalesce(vec![started("a"), started("b"), finished("a")]);
        assert_eq!(messages.len(), 2);
        assert!(
            matches!(messages[0].message, Some(Message::JobStarted(ref s)) if s.step_id == "b")
        );
        assert_eq!(acks, vec!["id-a".to_owned()]);
    }

    #[test]
    fn a_parked_jobs_start_stays_and_a_bare_acknowledgement_is_kept() {
        let parked = Report {
            ack: Some("id-p".into()),
            ..started("p")
        };
        let late = Report {
            message: None,
            ack: Some("id-q".into()),
        };
        let (messages, acks) = coalesce(vec![parked, late]);
        assert_eq!(messages.len(), 1);
        assert!(
            matches!(messages[0].message, Some(Message::JobStarted(ref s)) if s.step_id == "p")
        );
        assert_eq!(acks, vec!["id-p".to_owned(), "id-q".to_owned()]);
    }
}
