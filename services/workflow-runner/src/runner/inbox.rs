//! Sorting an inbox batch into the messages to apply, grouped by run, and the entries no state of
//! any run could make apply (empty, undecodable, naming no run, delivered too often), which go to
//! the dead-letter stream instead of holding the inbox back.

use std::collections::HashMap;

use baton_proto::v1::{self, runner_message::Message};
use baton_queue::{Delivery, StreamName};
use uuid::Uuid;

/// An inbox entry to apply; acknowledged once the batch that applies it commits.
pub(super) struct InboxEntry {
    /// The entry's id in the inbox stream.
    pub(super) id: String,
    pub(super) run_id: Uuid,
    pub(super) message: Message,
}

/// The entries to apply by run, each run's in the order they were read.
pub(super) type RunMessages = HashMap<Uuid, Vec<InboxEntry>>;

/// An entry that cannot be applied, and why.
pub(super) struct Rejected {
    pub(super) id: String,
    pub(super) reason: String,
    pub(super) payload: Vec<u8>,
}

impl Rejected {
    pub(super) fn into_dead_letter(self) -> v1::DeadLetter {
        super::dead_letter(&StreamName::Runner, self.id, self.reason, self.payload)
    }
}

/// An inbox batch, sorted.
pub(super) struct SortedBatch {
    pub(super) by_run: RunMessages,
    pub(super) rejected: Vec<Rejected>,
}

impl SortedBatch {
    /// Sorts `batch`. An entry delivered more than `max_deliveries` times is rejected, so one that
    /// keeps failing its batch is set aside after a few tries.
    pub(super) fn sort(batch: Vec<Delivery<v1::RunnerMessage>>, max_deliveries: u32) -> Self {
        let mut sorted = Self {
            by_run: HashMap::new(),
            rejected: Vec::new(),
        };
        for delivery in batch {
            match accept(delivery, max_deliveries) {
                Ok(entry) => sorted.by_run.entry(entry.run_id).or_default().push(entry),
                Err(rejected) => sorted.rejected.push(rejected),
            }
        }
        sorted
    }
}

fn accept(
    delivery: Delivery<v1::RunnerMessage>,
    max_deliveries: u32,
) -> Result<InboxEntry, Rejected> {
    let Delivery {
        id,
        message,
        payload,
        deliveries,
    } = delivery;
    let reason = match message {
        Ok(v1::RunnerMessage {
            message: Some(message),
        }) if deliveries <= max_deliveries => {
            let named = run_id_of(&message);
            match named.parse() {
                Ok(run_id) => {
                    return Ok(InboxEntry {
                        id,
                        run_id,
                        message,
                    });
                }
                Err(_) => format!("`{named}` is not a run id"),
            }
        }
        Ok(v1::RunnerMessage { message: Some(_) }) => {
            format!("runner message failed {} times", deliveries - 1)
        }
        Ok(v1::RunnerMessage { message: None }) => "runner message is empty".to_owned(),
        Err(reason) => reason,
    };
    Err(Rejected {
        id,
        reason,
        payload,
    })
}

fn run_id_of(message: &Message) -> &str {
    match message {
        Message::StartRun(m) => &m.run_id,
        Message::JobStarted(m) => &m.run_id,
        Message::JobResult(m) => &m.run_id,
        Message::WakeRun(m) => &m.run_id,
        Message::CancelRun(m) => &m.run_id,
    }
}
