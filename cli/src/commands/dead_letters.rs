//! `baton dead-letters list|show|replay`: the messages the queue set aside because they failed on
//! their own content, for operators to read and, once the cause is fixed, send back.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use baton_proto::v1::{
    DeadLetterEntry, GetDeadLetterRequest, ListDeadLettersRequest, ReplayDeadLetterRequest,
    admin_service_client::AdminServiceClient,
};
use serde_json::{Value, json};

use super::Ctx;
use crate::args::{DeadLetterIdArgs, DeadLettersListArgs};
use crate::client::Conn;
use crate::json::embedded;
use crate::output::{Table, local_time, outln, print_json, rfc3339, shorten};

/// How many characters of a reason the list shows.
const REASON_WIDTH: usize = 60;
/// Most letters fetched per request.
const MAX_PAGE: usize = 1_000;
/// Bytes of an undecoded payload `show` prints.
const RAW_SHOWN: usize = 64;

fn client(ctx: &Ctx) -> AdminServiceClient<Conn> {
    AdminServiceClient::new(ctx.conn())
}

pub async fn list(ctx: &Ctx, args: DeadLettersListArgs) -> anyhow::Result<ExitCode> {
    let limit = (args.limit > 0).then_some(args.limit);
    let page_size = limit.map_or(MAX_PAGE, |l| l.min(MAX_PAGE));
    let mut admin = client(ctx);
    let mut letters: Vec<DeadLetterEntry> = Vec::new();
    let mut page_token = String::new();
    let mut more = false;
    loop {
        let page = admin
            .list_dead_letters(ListDeadLettersRequest {
                page_size: i32::try_from(page_size).unwrap_or(i32::MAX),
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        letters.extend(page.dead_letters);
        if let Some(limit) = limit
            && letters.len() >= limit
        {
            more = letters.len() > limit || !page.next_page_token.is_empty();
            letters.truncate(limit);
            break;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == page_token {
            bail!("the orchestrator returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
    if ctx.json() || args.json {
        print_json(&letters.iter().map(letter_json).collect(), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    if letters.is_empty() {
        outln!("no dead letters")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["ID", "STREAM", "DEAD AT", "MESSAGE", "REASON"]);
    for letter in &letters {
        table.row(vec![
            letter.id.clone(),
            or_dash(&letter.stream),
            local_time(letter.dead_at.as_ref()),
            summary(letter),
            shorten(&letter.reason, REASON_WIDTH),
        ]);
    }
    table.print()?;
    if more {
        eprintln!(
            "(showing the oldest {} dead letters; use --limit to see more, 0 for all)",
            letters.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(ctx: &Ctx, args: DeadLetterIdArgs) -> anyhow::Result<ExitCode> {
    let letter = client(ctx)
        .get_dead_letter(GetDeadLetterRequest { id: args.id })
        .await?
        .into_inner()
        .dead_letter
        .context("the orchestrator returned no dead letter")?;
    if ctx.json() || args.json {
        print_json(&letter_json(&letter), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("id        {}", letter.id)?;
    outln!("stream    {}", or_dash(&letter.stream))?;
    outln!("entry     {}", or_dash(&letter.entry_id))?;
    outln!("dead at   {}", local_time(letter.dead_at.as_ref()))?;
    outln!("reason    {}", letter.reason)?;
    if letter.payload_type.is_empty() {
        outln!(
            "payload   {} bytes that are no message of its stream: {}{}",
            letter.payload.len(),
            hex(&letter.payload[..letter.payload.len().min(RAW_SHOWN)]),
            if letter.payload.len() > RAW_SHOWN {
                "…"
            } else {
                ""
            }
        )?;
    } else {
        outln!(
            "payload   {} ({} bytes)",
            letter.payload_type,
            letter.payload.len()
        )?;
        let decoded = embedded(&letter.payload_json);
        let text = serde_json::to_string_pretty(&decoded).unwrap_or(letter.payload_json);
        for line in text.lines() {
            outln!("  {line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(ctx: &Ctx, args: DeadLetterIdArgs) -> anyhow::Result<ExitCode> {
    let replayed = client(ctx)
        .replay_dead_letter(ReplayDeadLetterRequest { id: args.id })
        .await?
        .into_inner();
    let letter = replayed
        .dead_letter
        .context("the orchestrator returned no dead letter")?;
    if ctx.json() || args.json {
        print_json(
            &json!({
                "replayed": letter_json(&letter),
                "stream": replayed.stream,
                "entry_id": replayed.entry_id,
            }),
            false,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "replayed dead letter {} ({}) to {} as entry {}",
        letter.id,
        summary(&letter),
        replayed.stream,
        replayed.entry_id
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The `--json` shape of a letter: the payload decoded as a value (or `null`), its size, and the
/// raw bytes in hex when they decode as no message of the stream.
fn letter_json(letter: &DeadLetterEntry) -> Value {
    let decoded = !letter.payload_type.is_empty();
    json!({
        "id": letter.id,
        "stream": letter.stream,
        "entry_id": letter.entry_id,
        "reason": letter.reason,
        "dead_at": rfc3339(letter.dead_at.as_ref()),
        "payload_type": (decoded).then_some(&letter.payload_type),
        "payload": if decoded { embedded(&letter.payload_json) } else { Value::Null },
        "payload_bytes": letter.payload.len(),
        "payload_hex": (!decoded).then(|| hex(&letter.payload)),
    })
}

/// What a letter holds, in a few words: `start_run 6f1c…`, `job fetch#2 of 6f1c…`.
fn summary(letter: &DeadLetterEntry) -> String {
    let payload = embedded(&letter.payload_json);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    match letter.payload_type.as_str() {
        "baton.v1.RunnerMessage" => match payload.as_object().and_then(|m| m.iter().next()) {
            Some((kind, body)) => {
                let step = text(body, "step_id");
                let run = text(body, "run_id");
                match step.as_str() {
                    "" => format!("{kind} of run {run}"),
                    step => format!("{kind} {step} of run {run}"),
                }
            }
            None => "empty runner message".to_owned(),
        },
        "baton.v1.Job" => format!(
            "job {}#{} of run {}",
            text(&payload, "step_id"),
            payload.get("attempt").and_then(Value::as_u64).unwrap_or(0),
            text(&payload, "run_id")
        ),
        "baton.v1.JobResult" => format!(
            "result of {}#{} of run {}",
            text(&payload, "step_id"),
            payload.get("attempt").and_then(Value::as_u64).unwrap_or(0),
            text(&payload, "run_id")
        ),
        _ => format!("{} undecoded bytes", letter.payload.len()),
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(payload_type: &str, payload_json: &str) -> DeadLetterEntry {
        DeadLetterEntry {
            id: "1-0".into(),
            stream: "runner".into(),
            payload_type: payload_type.into(),
            payload_json: payload_json.into(),
            payload: vec![0xab, 0x01],
            ..Default::default()
        }
    }

    #[test]
    fn summaries_name_the_message_and_its_run() {
        let start = letter("baton.v1.RunnerMessage", r#"{"start_run":{"run_id":"r1"}}"#);
        assert_eq!(summary(&start), "start_run of run r1");
        let result = letter(
            "baton.v1.RunnerMessage",
            r#"{"job_result":{"run_id":"r1","step_id":"fetch","attempt":2}}"#,
        );
        assert_eq!(summary(&result), "job_result fetch of run r1");
        let job = letter(
            "baton.v1.Job",
            r#"{"run_id":"r1","step_id":"fetch","attempt":2}"#,
        );
        assert_eq!(summary(&job), "job fetch#2 of run r1");
        assert_eq!(summary(&letter("", "")), "2 undecoded bytes");
    }

    #[test]
    fn json_has_the_payload_as_a_value_or_its_bytes() {
        let decoded = letter_json(&letter(
            "baton.v1.RunnerMessage",
            r#"{"start_run":{"run_id":"r1"}}"#,
        ));
        assert_eq!(decoded["payload"]["start_run"]["run_id"], "r1");
        assert_eq!(decoded["payload_hex"], Value::Null);
        let raw = letter_json(&letter("", ""));
        assert_eq!(raw["payload"], Value::Null);
        assert_eq!(raw["payload_type"], Value::Null);
        assert_eq!(raw["payload_hex"], "ab01");
        assert_eq!(raw["payload_bytes"], 2);
    }
}
