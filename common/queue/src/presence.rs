//! Whether a dispatched job still exists anywhere in the queue: on its kind's stream (waiting, or
//! held by a worker) or as a report about it in the runner inbox. The reconciler asks before it
//! dispatches a step again, so a job that is merely slow is never run twice. Written once for
//! every backend: each hands over its streams' raw entries.

use std::collections::HashMap;

use baton_proto::v1::{self, runner_message::Message};
use prost::Message as _;

/// One dispatch of a step: what a job and every report about it carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobKey {
    pub run_id: String,
    pub step_id: String,
    /// The dispatch's fencing token (`Job.lease`).
    pub lease: u64,
}

/// What a scanned stream holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Entries {
    /// Jobs of one kind.
    Jobs,
    /// The runner inbox, whose job reports count.
    Inbox,
}

/// The keys asked about, and which were seen so far.
pub(crate) struct Presence<'a> {
    index: HashMap<&'a JobKey, usize>,
    found: Vec<bool>,
    missing: usize,
}

impl<'a> Presence<'a> {
    pub(crate) fn new(keys: &'a [JobKey]) -> Self {
        let index: HashMap<&JobKey, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        Self {
            missing: index.len(),
            index,
            found: vec![false; keys.len()],
        }
    }

    /// Whether every key was seen, so reading further can stop.
    pub(crate) fn complete(&self) -> bool {
        self.missing == 0
    }

    /// Looks at an entry of a stream that holds `entries`.
    pub(crate) fn entry(&mut self, entries: Entries, payload: &[u8]) {
        match entries {
            Entries::Jobs => self.job_entry(payload),
            Entries::Inbox => self.inbox_entry(payload),
        }
    }

    /// Looks at an entry of a job stream.
    pub(crate) fn job_entry(&mut self, payload: &[u8]) {
        if let Ok(job) = v1::Job::decode(payload) {
            self.see(job.run_id, job.step_id, job.lease);
        }
    }

    /// Looks at an entry of the runner inbox.
    pub(crate) fn inbox_entry(&mut self, payload: &[u8]) {
        let Ok(v1::RunnerMessage {
            message: Some(message),
        }) = v1::RunnerMessage::decode(payload)
        else {
            return;
        };
        match message {
            Message::JobStarted(m) => self.see(m.run_id, m.step_id, m.lease),
            Message::JobResult(m) => self.see(m.run_id, m.step_id, m.lease),
            _ => {}
        }
    }

    fn see(&mut self, run_id: String, step_id: String, lease: u64) {
        let key = JobKey {
            run_id,
            step_id,
            lease,
        };
        // Every key maps to the first position it was asked at; later copies of a key are
        // filled in by `into_found`.
        if let Some(&i) = self.index.get(&key)
            && !self.found[i]
        {
            self.found[i] = true;
            self.missing -= 1;
        }
    }

    /// Per asked key, in order, whether it was seen.
    pub(crate) fn into_found(self, keys: &[JobKey]) -> Vec<bool> {
        keys.iter().map(|k| self.found[self.index[k]]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(run: &str, lease: u64) -> JobKey {
        JobKey {
            run_id: run.into(),
            step_id: "a".into(),
            lease,
        }
    }

    #[test]
    fn a_job_or_a_report_of_the_same_lease_counts_and_others_do_not() {
        let keys = vec![key("r1", 1), key("r2", 1), key("r3", 2), key("r1", 1)];
        let mut presence = Presence::new(&keys);
        presence.job_entry(
            &v1::Job {
                run_id: "r1".into(),
                step_id: "a".into(),
                lease: 1,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let report = v1::RunnerMessage {
            message: Some(Message::JobResult(v1::JobResult {
                run_id: "r3".into(),
                step_id: "a".into(),
                lease: 2,
                ..Default::default()
            })),
        };
        presence.inbox_entry(&report.encode_to_vec());
        // Another lease of r2, and garbage.
        presence.job_entry(
            &v1::Job {
                run_id: "r2".into(),
                step_id: "a".into(),
                lease: 7,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        presence.job_entry(b"\xff\xff not a job");
        assert!(!presence.complete());
        assert_eq!(presence.into_found(&keys), vec![true, false, true, true]);
    }
}
