//! Dead-letter payloads for people to read: the protobuf bytes decoded against Baton's own
//! descriptor set (the one reflection serves), so every field of every queue message shows,
//! including ones added after this code was written. Decoding is strict about wire types, which
//! is how a job is told from the result of its last attempt on the same stream.

use std::{collections::HashMap, sync::OnceLock};

use baton_proto::prost::Message as _;
use baton_proto::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};
use serde_json::{Map, Value};

/// The inbox message type of the `runner` stream.
pub(super) const RUNNER_MESSAGE: &str = "baton.v1.RunnerMessage";
/// What a job stream carries.
pub(super) const JOB: &str = "baton.v1.Job";
/// What the runner dead-letters on a job stream when a job's last attempt failed.
pub(super) const JOB_RESULT: &str = "baton.v1.JobResult";

/// Nesting beyond this is not a message of ours.
const MAX_DEPTH: usize = 32;

/// The message and enum types of the descriptor set, by full name (without the leading dot).
struct Types {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, EnumDescriptorProto>,
}

fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| {
        let mut types = Types {
            messages: HashMap::new(),
            enums: HashMap::new(),
        };
        // Built in, so it decodes; an empty set would only leave payloads undecoded.
        let set = FileDescriptorSet::decode(baton_proto::FILE_DESCRIPTOR_SET).unwrap_or_default();
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for message in file.message_type {
                types.add_message(&package, message);
            }
            for e in file.enum_type {
                types.add_enum(&package, e);
            }
        }
        types
    })
}

impl Types {
    fn add_message(&mut self, scope: &str, message: DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            self.add_message(&name, nested.clone());
        }
        for e in &message.enum_type {
            self.add_enum(&name, e.clone());
        }
        self.messages.insert(name, message);
    }

    fn add_enum(&mut self, scope: &str, e: EnumDescriptorProto) {
        self.enums.insert(format!("{scope}.{}", e.name()), e);
    }
}

/// The message types a payload taken from `stream` may be, most likely first.
pub(super) fn candidates(stream: &str) -> &'static [&'static str] {
    match baton_queue::StreamName::parse(stream) {
        Some(baton_queue::StreamName::Runner) => &[RUNNER_MESSAGE],
        Some(baton_queue::StreamName::Jobs(_)) => &[JOB, JOB_RESULT],
        _ => &[],
    }
}

/// The first of `candidates` that `payload` decodes as, and the payload rendered as JSON text.
/// No payload decodes as nothing: every message Baton sends sets a field.
pub(super) fn decode_any(
    payload: &[u8],
    candidates: &[&'static str],
) -> Option<(&'static str, String)> {
    if payload.is_empty() {
        return None;
    }
    candidates.iter().find_map(|name| {
        render(name, payload)
            .ok()
            .map(|json| (*name, json.to_string()))
    })
}

/// `bytes` decoded as the message type `name` (full name, e.g. `baton.v1.Job`).
pub(super) fn render(name: &str, bytes: &[u8]) -> Result<Value, String> {
    message(types(), name, bytes, 0).map(Value::Object)
}

fn message(
    types: &Types,
    name: &str,
    mut bytes: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".into());
    }
    let descriptor = types
        .messages
        .get(name)
        .ok_or_else(|| format!("no message type {name}"))?;
    let by_number: HashMap<i32, &FieldDescriptorProto> =
        descriptor.field.iter().map(|f| (f.number(), f)).collect();
    let mut out = Map::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (number, wire) = (key >> 3, key & 7);
        let number = i32::try_from(number).map_err(|_| "field number out of range")?;
        let Some(field) = by_number.get(&number) else {
            skip(&mut bytes, wire)?;
            continue;
        };
        let repeated = field.label() == Label::Repeated;
        let values = if wire == 2 && is_packable(field.r#type()) && repeated {
            let mut packed = take(&mut bytes)?;
            let mut values = Vec::new();
            while !packed.is_empty() {
                values.push(scalar(
                    types,
                    field,
                    &mut packed,
                    packed_wire(field.r#type()),
                )?);
            }
            values
        } else {
            vec![value(types, field, &mut bytes, wire, depth)?]
        };
        let key = field.name().to_owned();
        if let Some(entry) = map_entry(types, field) {
            let slot = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
            for v in values {
                let (k, v) = entry(v);
                if let Value::Object(map) = slot {
                    map.insert(k, v);
                }
            }
        } else if repeated {
            let slot = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = slot {
                list.extend(values);
            }
        } else if let Some(v) = values.into_iter().last() {
            out.insert(key, v);
        }
    }
    Ok(out)
}

/// For a map field, how to turn one decoded entry into a key and a value.
fn map_entry(types: &Types, field: &FieldDescriptorProto) -> Option<fn(Value) -> (String, Value)> {
    if field.r#type() != Type::Message {
        return None;
    }
    let entry = types
        .messages
        .get(field.type_name().trim_start_matches('.'))?;
    let is_map = entry.options.as_ref().is_some_and(|o| o.map_entry());
    is_map.then_some(|v: Value| {
        let mut v = match v {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let key = match v.remove("key") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        (key, v.remove("value").unwrap_or(Value::Null))
    })
}

fn value(
    types: &Types,
    field: &FieldDescriptorProto,
    bytes: &mut &[u8],
    wire: u64,
    depth: usize,
) -> Result<Value, String> {
    match field.r#type() {
        Type::Message | Type::Group => {
            expect_wire(field, wire, 2)?;
            let inner = take(bytes)?;
            let name = field.type_name().trim_start_matches('.');
            if name == "google.protobuf.Timestamp" {
                return timestamp(inner);
            }
            message(types, name, inner, depth + 1).map(Value::Object)
        }
        Type::String => {
            expect_wire(field, wire, 2)?;
            let text = std::str::from_utf8(take(bytes)?).map_err(|_| "a string is not UTF-8")?;
            Ok(Value::String(text.to_owned()))
        }
        Type::Bytes => {
            expect_wire(field, wire, 2)?;
            Ok(Value::String(base64(take(bytes)?)))
        }
        other => {
            expect_wire(field, wire, packed_wire(other))?;
            scalar(types, field, bytes, wire)
        }
    }
}

fn scalar(
    types: &Types,
    field: &FieldDescriptorProto,
    bytes: &mut &[u8],
    wire: u64,
) -> Result<Value, String> {
    let raw = match wire {
        0 => varint(bytes)?,
        1 => u64::from_le_bytes(fixed::<8>(bytes)?),
        5 => u64::from(u32::from_le_bytes(fixed::<4>(bytes)?)),
        _ => return Err(format!("field `{}` has wire type {wire}", field.name())),
    };
    Ok(match field.r#type() {
        Type::Bool => Value::Bool(raw != 0),
        Type::Uint64 | Type::Fixed64 => Value::from(raw),
        Type::Uint32 | Type::Fixed32 => Value::from(raw as u32),
        Type::Int64 | Type::Sfixed64 => Value::from(raw as i64),
        Type::Int32 | Type::Sfixed32 => Value::from(raw as i32),
        Type::Sint64 => Value::from(((raw >> 1) as i64) ^ -((raw & 1) as i64)),
        Type::Sint32 => Value::from((((raw >> 1) as i64) ^ -((raw & 1) as i64)) as i32),
        Type::Double => {
            serde_json::Number::from_f64(f64::from_bits(raw)).map_or(Value::Null, Value::Number)
        }
        Type::Float => serde_json::Number::from_f64(f64::from(f32::from_bits(raw as u32)))
            .map_or(Value::Null, Value::Number),
        Type::Enum => {
            let number = raw as i32;
            types
                .enums
                .get(field.type_name().trim_start_matches('.'))
                .and_then(|e| e.value.iter().find(|v| v.number() == number))
                .map_or_else(
                    || Value::from(number),
                    |v| Value::String(v.name().to_owned()),
                )
        }
        _ => return Err(format!("field `{}` is not a scalar", field.name())),
    })
}

fn is_packable(t: Type) -> bool {
    !matches!(t, Type::String | Type::Bytes | Type::Message | Type::Group)
}

/// The wire type a scalar of type `t` is written with.
fn packed_wire(t: Type) -> u64 {
    match t {
        Type::Double | Type::Fixed64 | Type::Sfixed64 => 1,
        Type::Float | Type::Fixed32 | Type::Sfixed32 => 5,
        Type::String | Type::Bytes | Type::Message | Type::Group => 2,
        _ => 0,
    }
}

fn expect_wire(field: &FieldDescriptorProto, wire: u64, expected: u64) -> Result<(), String> {
    if wire == expected {
        Ok(())
    } else {
        Err(format!(
            "field `{}` has wire type {wire}, not {expected}",
            field.name()
        ))
    }
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("a varint is cut short")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint is too long".into())
}

fn fixed<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], String> {
    let (head, rest) = bytes
        .split_at_checked(N)
        .ok_or("a fixed-size value is cut short")?;
    *bytes = rest;
    Ok(head.try_into().unwrap_or([0; N]))
}

/// A length-delimited value.
fn take<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = usize::try_from(varint(bytes)?).map_err(|_| "a length is out of range")?;
    let (head, rest) = bytes
        .split_at_checked(len)
        .ok_or("a length-delimited value is cut short")?;
    *bytes = rest;
    Ok(head)
}

fn skip(bytes: &mut &[u8], wire: u64) -> Result<(), String> {
    match wire {
        0 => varint(bytes).map(drop),
        1 => fixed::<8>(bytes).map(drop),
        2 => take(bytes).map(drop),
        5 => fixed::<4>(bytes).map(drop),
        _ => Err(format!("wire type {wire} is not one Baton writes")),
    }
}

/// A `google.protobuf.Timestamp` as RFC 3339 in UTC.
fn timestamp(mut bytes: &[u8]) -> Result<Value, String> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        match (key >> 3, key & 7) {
            (1, 0) => seconds = varint(&mut bytes)? as i64,
            (2, 0) => nanos = i64::from(varint(&mut bytes)? as i32),
            (_, wire) => skip(&mut bytes, wire)?,
        }
    }
    Ok(Value::String(rfc3339(seconds, nanos)))
}

/// Unix seconds and nanoseconds as `YYYY-MM-DDTHH:MM:SS[.fff…]Z` (the proleptic Gregorian
/// calendar, days from the epoch turned into a civil date).
fn rfc3339(seconds: i64, nanos: i64) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use baton_proto::v1::{self, runner_message::Message};
    use serde_json::json;

    use super::*;

    #[test]
    fn an_inbox_message_shows_every_field_it_sets_by_name() {
        let start = v1::RunnerMessage {
            message: Some(Message::StartRun(v1::StartRunCommand {
                run_id: "r-1".into(),
                trace_context: [("traceparent".to_owned(), "00-ab-cd-01".to_owned())].into(),
            })),
        };
        assert_eq!(
            render(RUNNER_MESSAGE, &start.encode_to_vec()).unwrap(),
            json!({ "start_run": { "run_id": "r-1", "trace_context": { "traceparent": "00-ab-cd-01" } } })
        );
        let wake = v1::RunnerMessage {
            message: Some(Message::WakeRun(v1::WakeRunCommand {
                run_id: "r-2".into(),
                reason: v1::WakeReason::RunDeadline as i32,
                due_at: Some(baton_proto::timestamp_from_micros(1_700_000_000_123_000)),
            })),
        };
        assert_eq!(
            render(RUNNER_MESSAGE, &wake.encode_to_vec()).unwrap(),
            json!({ "wake_run": {
                "run_id": "r-2",
                "reason": "WAKE_REASON_RUN_DEADLINE",
                "due_at": "2023-11-14T22:13:20.123Z",
            } })
        );
    }

    #[test]
    fn a_job_and_its_failed_result_are_told_apart() {
        let job = v1::Job {
            run_id: "r-1".into(),
            step_id: "fetch".into(),
            kind: "http".into(),
            attempt: 3,
            input_json: r#"{"url":"x"}"#.into(),
            timeout_ms: 5_000,
            ..Default::default()
        };
        let result = v1::JobResult {
            run_id: "r-1".into(),
            step_id: "fetch".into(),
            attempt: 3,
            outcome: v1::JobOutcome::Failed as i32,
            error: "refused".into(),
            ..Default::default()
        };
        let stream = candidates("jobs:http");
        let (name, text) = decode_any(&job.encode_to_vec(), stream).unwrap();
        assert_eq!(name, JOB);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["kind"], "http");
        assert_eq!(json["timeout_ms"], 5_000);
        let (name, text) = decode_any(&result.encode_to_vec(), stream).unwrap();
        assert_eq!(name, JOB_RESULT);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["outcome"], "JOB_OUTCOME_FAILED");
        assert_eq!(json["error"], "refused");
    }

    #[test]
    fn bytes_that_are_no_message_of_the_stream_decode_as_none() {
        assert_eq!(decode_any(&[0x0a, 0x05, 0x01], candidates("runner")), None);
        assert_eq!(decode_any(&[0xff], candidates("jobs:http")), None);
        assert_eq!(decode_any(b"anything", candidates("")), None);
        assert_eq!(decode_any(b"anything", candidates("dead")), None);
        assert_eq!(decode_any(b"", candidates("runner")), None);
    }

    #[test]
    fn times_and_bytes_read_as_people_write_them() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, 5_000_000), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }
}
