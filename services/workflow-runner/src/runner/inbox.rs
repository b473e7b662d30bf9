//! Sorting an inbox batch into the messages to apply, grouped by run; the entries delivered so
//! often that they must prove themselves alone; and the entries no state of any run could make
//! apply (empty, undecodable, naming no run), which go to the dead-letter stream instead of
//! holding the inbox back.

use std::collections::HashMap;

use baton_proto::v1::{self, runner_message::Message};
use baton_queue::{Delivery, StreamName};
use uuid::Uuid;

/// An inbox entry to apply; acknowledged once the batch that applies it commits.
pub(super) struct InboxEntry {
    /// The entry's id in the inbox stream; `None` for the start of a queued run that admission
    /// took from the store.
    pub(super) id: Option<String>,
    pub(super) run_id: Uuid,
    pub(super) message: Message,
    /// How many times the inbox delivered it, this time included.
    pub(super) deliveries: u32,
    /// The raw payload, should it go to the dead letters.
    pub(super) payload: Vec<u8>,
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
    /// Delivered more than `max_deliveries` times: each is applied alone, and goes to the dead
    /// letters only if it fails on its own content. An outage redelivers every message it holds
    /// up, so a count alone cannot tell poison from bad luck.
    pub(super) suspects: Vec<InboxEntry>,
    pub(super) rejected: Vec<Rejected>,
}

impl SortedBatch {
    /// Sorts `batch`. An entry delivered more than `max_deliveries` times is a suspect, so one
    /// that keeps failing its batch is tried alone after a few tries.
    pub(super) fn sort(batch: Vec<Delivery<v1::RunnerMessage>>, max_deliveries: u32) -> Self {
        let mut sorted = Self {
            by_run: HashMap::new(),
            suspects: Vec::new(),
            rejected: Vec::new(),
        };
        for delivery in batch {
            match accept(delivery) {
                Ok(entry) if entry.deliveries > max_deliveries => sorted.suspects.push(entry),
                Ok(entry) => sorted.by_run.entry(entry.run_id).or_default().push(entry),
                Err(rejected) => sorted.rejected.push(rejected),
            }
        }
        sorted
    }
}

fn accept(delivery: Delivery<v1::RunnerMessage>) -> Result<InboxEntry, Rejected> {
    let Delivery {
        id,
        message,
        payload,
        deliveries,
    } = delivery;
    let reason = match message {
        Ok(v1::RunnerMessage {
            message: Some(message),
        }) => {
            let named = run_id_of(&message);
            match named.parse() {
                Ok(run_id) => {
                    return Ok(InboxEntry {
                        id: Some(id),
                        run_id,
                        message,
                        deliveries,
                        payload,
                    });
                }
                Err(_) => format!("`{named}` is not a run id"),
            }
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
        Message::RedispatchStep(m) => &m.run_id,
    }
}
