//! Direct access to the suite's Redis streams, by Baton's own key names: the faults copy and
//! poison entries, and the audit reads what work Redis still holds to say why a run is stuck.

use std::collections::{HashMap, HashSet};

use baton_proto::v1;
use baton_queue::RedisKeys;
use prost::Message as _;
use redis::aio::MultiplexedConnection;

/// The step kinds the suite's workflows use; each has a job stream.
pub const KINDS: &[&str] = &["noop", "echo", "sleep", "fail", "http"];

/// The stream entry field that holds a message's protobuf bytes.
const FIELD: &str = "d";

/// One stream entry: its id and its field-value pairs.
pub type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// A connection to the suite's Redis under the scenario's prefix.
pub struct Streams {
    url: String,
    pub keys: RedisKeys,
}

impl Streams {
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            keys: RedisKeys::new(prefix),
        }
    }

    pub async fn connect(&self) -> anyhow::Result<MultiplexedConnection> {
        Ok(redis::Client::open(self.url.as_str())?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// The work streams: the runner inbox and each kind's jobs.
    pub fn work_streams(&self) -> Vec<String> {
        std::iter::once(self.keys.runner())
            .chain(KINDS.iter().map(|kind| self.keys.jobs(kind)))
            .collect()
    }

    /// Up to `count` entries of `stream`, oldest first.
    pub async fn range(&self, stream: &str, count: usize) -> anyhow::Result<Vec<Entry>> {
        let mut conn = self.connect().await?;
        let raw: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(id, flat)| {
                let pairs = flat
                    .chunks_exact(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                (id, pairs)
            })
            .collect())
    }

    /// Appends an entry with these field-value pairs; returns its id.
    pub async fn append(
        &self,
        stream: &str,
        pairs: &[(Vec<u8>, Vec<u8>)],
    ) -> anyhow::Result<String> {
        let mut conn = self.connect().await?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*");
        for (field, value) in pairs {
            cmd.arg(field.as_slice()).arg(value.as_slice());
        }
        Ok(cmd.query_async(&mut conn).await?)
    }

    /// Appends a message payload in Baton's field.
    pub async fn append_payload(&self, stream: &str, payload: &[u8]) -> anyhow::Result<String> {
        self.append(stream, &[(FIELD.as_bytes().to_vec(), payload.to_vec())])
            .await
    }

    pub async fn len(&self, stream: &str) -> anyhow::Result<u64> {
        let mut conn = self.connect().await?;
        Ok(redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut conn)
            .await?)
    }

    /// Entries in the dead-letter stream.
    pub async fn dead_letters(&self) -> anyhow::Result<u64> {
        self.len(&self.keys.dead()).await
    }

    /// The dead letters by source stream and reason, most frequent first.
    pub async fn dead_letter_reasons(&self) -> anyhow::Result<Vec<(usize, String)>> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, pairs) in self.range(&self.keys.dead(), 100_000).await? {
            let text = match payload(&pairs).map(v1::DeadLetter::decode) {
                Some(Ok(dead)) => format!("{}: {}", dead.stream, dead.reason),
                _ => "(an entry that is not a DeadLetter)".to_owned(),
            };
            *counts.entry(text).or_default() += 1;
        }
        let mut reasons: Vec<(usize, String)> = counts.into_iter().map(|(t, n)| (n, t)).collect();
        reasons.sort_by(|a, b| b.cmp(a));
        Ok(reasons)
    }

    /// What work Redis holds right now, by run.
    pub async fn snapshot(&self) -> anyhow::Result<WorkSnapshot> {
        let mut snapshot = WorkSnapshot::default();
        for kind in KINDS {
            let stream = self.keys.jobs(kind);
            for (_, pairs) in self.range(&stream, 100_000).await? {
                if let Some(job) = payload(&pairs).and_then(|p| v1::Job::decode(p).ok()) {
                    snapshot
                        .jobs
                        .insert((job.run_id, job.step_id, job.attempt), stream.clone());
                }
            }
        }
        for (_, pairs) in self.range(&self.keys.runner(), 100_000).await? {
            let message = payload(&pairs).and_then(|p| v1::RunnerMessage::decode(p).ok());
            if let Some(run_id) = message.and_then(|m| inbox_run(&m)) {
                snapshot.inbox_runs.insert(run_id);
            }
        }
        let mut conn = self.connect().await?;
        let timers: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(self.keys.timers())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        for member in timers {
            if let Ok(wake) = v1::WakeRunCommand::decode(member.as_slice()) {
                snapshot.timer_runs.insert(wake.run_id);
            }
        }
        Ok(snapshot)
    }
}

fn payload(pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<&[u8]> {
    pairs
        .iter()
        .find(|(field, _)| field == FIELD.as_bytes())
        .map(|(_, value)| value.as_slice())
}

/// The run a runner inbox message is about.
fn inbox_run(message: &v1::RunnerMessage) -> Option<String> {
    use v1::runner_message::Message;
    Some(match message.message.as_ref()? {
        Message::StartRun(m) => m.run_id.clone(),
        Message::JobStarted(m) => m.run_id.clone(),
        Message::JobResult(m) => m.run_id.clone(),
        Message::WakeRun(m) => m.run_id.clone(),
        Message::CancelRun(m) => m.run_id.clone(),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Work Redis holds: jobs by (run, step, attempt) with their stream, and the runs the runner
/// inbox and the timers mention.
#[derive(Debug, Default)]
pub struct WorkSnapshot {
    pub jobs: HashMap<(String, String, u32), String>,
    pub inbox_runs: HashSet<String>,
    pub timer_runs: HashSet<String>,
}
