//! Dead letters on Redis for operators: paging through the capped `dead` stream, reading one
//! letter, and replaying it onto the stream it came from in one atomic step.

use baton_proto::v1;
use redis::{Script, streams::StreamRangeReply};

use super::{FIELD, RedisQueue, decode};
use crate::{QueueError, Replay, StreamName};

/// Removes the letter (KEYS[1], ARGV[1]) and appends its payload (ARGV[2]) to the stream it came
/// from (KEYS[2]) in one step; returns the new entry's id, or nil when the letter was already
/// gone (replayed or trimmed meanwhile), so a letter is replayed at most once.
pub(super) const REPLAY_LETTER: &str = r#"
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[2])
end
return false
"#;

pub(super) fn replay_script() -> Script {
    Script::new(REPLAY_LETTER)
}

/// Whether `id` has the form of a stream entry id (`<ms>` or `<ms>-<seq>`), so it can go into
/// a range without Redis refusing the whole command.
fn is_entry_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let number = |part: Option<&str>| part.is_some_and(|p| p.parse::<u64>().is_ok());
    let ms = parts.next();
    match parts.next() {
        Some(seq) => number(ms) && number(Some(seq)),
        None => number(ms),
    }
}

/// A dead-letter entry as listed: its id and the letter, or a stand-in that says why the entry
/// could not be read and carries its raw bytes.
fn listed(entry: redis::streams::StreamId) -> (String, v1::DeadLetter) {
    let delivery = decode::<v1::DeadLetter>(entry, 1);
    let letter = match delivery.message {
        Ok(letter) => letter,
        Err(e) => v1::DeadLetter {
            reason: format!("the dead letter cannot be read: {e}"),
            payload: delivery.payload,
            ..Default::default()
        },
    };
    (delivery.id, letter)
}

impl RedisQueue {
    pub(super) async fn list_dead(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, v1::DeadLetter)>, QueueError> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) if is_entry_id(id) => format!("({id}"),
            Some(_) => return Ok(Vec::new()),
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.dead())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply.ids.into_iter().map(listed).collect())
    }

    pub(super) async fn get_dead(&self, id: &str) -> Result<Option<v1::DeadLetter>, QueueError> {
        if !is_entry_id(id) {
            return Ok(None);
        }
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.dead())
            .arg(id)
            .arg(id)
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .find(|entry| entry.id == id)
            .map(|entry| listed(entry).1))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(dead_letter = %id))]
    pub(super) async fn replay_dead(&self, id: &str) -> Result<Replay, QueueError> {
        let Some(letter) = self.get_dead(id).await? else {
            return Ok(Replay::NotFound);
        };
        let stream = match StreamName::parse(&letter.stream) {
            Some(stream @ (StreamName::Runner | StreamName::Jobs(_))) => stream,
            _ => {
                return Ok(Replay::Unreplayable {
                    stream: letter.stream,
                });
            }
        };
        let entry_id: Option<String> = self
            .replay_letter
            .key(self.keys.dead())
            .key(self.keys.stream(&stream))
            .arg(id)
            .arg(letter.payload.as_slice())
            .arg(FIELD)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match entry_id {
            Some(entry_id) => Replay::Replayed { stream, entry_id },
            None => Replay::NotFound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_told_from_other_text() {
        for id in ["1700000000000-0", "1-2", "42"] {
            assert!(is_entry_id(id), "{id}");
        }
        for id in ["", "-", "1-", "-1", "1-2-3", "abc", "1-x", "+", "(1-0"] {
            assert!(!is_entry_id(id), "{id}");
        }
    }
}
