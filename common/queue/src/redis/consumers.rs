//! Removing the consumers of replicas that are gone. Every runner and worker process joins its
//! groups under a name of its own, so without this each restart would leave one more consumer in
//! every group for good.

use std::time::Duration;

use redis::Script;

use super::{
    RedisQueue,
    keys::{RUNNER_GROUP, WORKER_GROUP},
};
use crate::{QueueError, StreamName};

/// Removes from group ARGV[1] of stream KEYS[1] each consumer idle for more than ARGV[2] ms
/// that has no pending entry, and returns their names. One script, so no consumer can take an
/// entry between the look and the removal (XGROUP DELCONSUMER drops a consumer's pending
/// entries). A stream or group that does not exist has no consumers to remove.
const REMOVE_IDLE: &str = r#"
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers['err'] then
  return {}
end
local min_idle = tonumber(ARGV[2])
local removed = {}
for _, consumer in ipairs(consumers) do
  local fields = {}
  for i = 1, #consumer, 2 do
    fields[consumer[i]] = consumer[i + 1]
  end
  if tonumber(fields['pending']) == 0 and tonumber(fields['idle']) > min_idle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    table.insert(removed, fields['name'])
  end
end
return removed
"#;

pub(super) fn remove_idle_script() -> Script {
    Script::new(REMOVE_IDLE)
}

/// `text` with the characters a SCAN pattern gives meaning to escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisQueue {
    /// The job streams that exist under this queue's prefix, as stream names.
    async fn job_streams(&self) -> Result<Vec<StreamName>, QueueError> {
        let prefix = format!("{}:", self.keys.prefix());
        let pattern = format!("{}jobs:*", glob_escape(&prefix));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut streams = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .arg("TYPE")
                .arg("stream")
                .query_async(&mut conn)
                .await?;
            streams.extend(
                keys.iter()
                    .filter_map(|key| key.strip_prefix(&prefix))
                    .filter_map(StreamName::parse),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        streams.sort();
        streams.dedup();
        Ok(streams)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn remove_idle(&self, min_idle: Duration) -> Result<Vec<String>, QueueError> {
        let mut groups = vec![(StreamName::Runner, RUNNER_GROUP)];
        groups.extend(
            self.job_streams()
                .await?
                .into_iter()
                .map(|stream| (stream, WORKER_GROUP)),
        );
        let idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let mut removed = Vec::new();
        for (stream, group) in groups {
            let names: Vec<String> = self
                .remove_idle
                .key(self.keys.stream(&stream))
                .arg(group)
                .arg(idle_ms)
                .invoke_async(&mut self.conn.clone())
                .await?;
            removed.extend(names.into_iter().map(|name| format!("{stream}/{name}")));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_escape("baton:"), "baton:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
