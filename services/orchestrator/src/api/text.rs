//! Text that reaches the store must be storable everywhere: PostgreSQL's TEXT and JSONB cannot
//! hold U+0000, and one such value would fail every run recorded in the same batch. Requests that
//! carry it are refused here, naming the field and, inside JSON, the path.

use std::fmt::Write as _;

use serde_json::Value;

use crate::error::ApiError;

/// What every refusal of a NUL character ends with.
const NUL_RULE: &str = "text fields accept any Unicode except U+0000";

/// Refuses `value` of the request field `field` if it holds U+0000.
pub(crate) fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::InvalidArgument(format!(
            "{field}: holds a NUL character (U+0000); {NUL_RULE}"
        )));
    }
    Ok(())
}

/// Refuses the JSON `value` of the request field `field` if a key or a string at any depth holds
/// U+0000; the error names the first such place as a JSON path (`$.user.name`).
pub(crate) fn check_json(field: &str, value: &Value) -> Result<(), ApiError> {
    let mut path = String::from("$");
    match find_nul(value, &mut path) {
        None => Ok(()),
        Some(Place::Value) => Err(ApiError::InvalidArgument(format!(
            "{field}: {path} holds a NUL character (U+0000); {NUL_RULE}"
        ))),
        Some(Place::Key) => Err(ApiError::InvalidArgument(format!(
            "{field}: the key of {path} holds a NUL character (U+0000); {NUL_RULE}"
        ))),
    }
}

/// Where a NUL was found: in the string at the path, or in the last key of the path.
#[derive(Debug, PartialEq)]
enum Place {
    Value,
    Key,
}

/// Depth-first search; on a find, `path` is left pointing at it.
fn find_nul(value: &Value, path: &mut String) -> Option<Place> {
    match value {
        Value::String(s) => s.contains('\0').then_some(Place::Value),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            let _ = write!(path, "[{i}]");
            let found = find_nul(item, path);
            if found.is_none() {
                path.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            push_key(path, key);
            if key.contains('\0') {
                return Some(Place::Key);
            }
            let found = find_nul(item, path);
            if found.is_none() {
                path.truncate(len);
            }
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// `.name` for identifier-like keys, `["any key"]` (JSON-escaped, so a NUL shows as `\u0000`)
/// for the rest.
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
        let _ = write!(path, "[{quoted}]");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(result: Result<(), ApiError>) -> String {
        match result {
            Err(ApiError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn clean_json_passes() {
        let value = json!({"user": {"name": "Ada", "tags": ["a", 1, null, true]}, "n": 2.5});
        check_json("inputs_json", &value).unwrap();
        check_text("tenant", "acme").unwrap();
    }

    #[test]
    fn a_nul_string_is_named_by_its_path() {
        let value = json!({"ok": "x", "user": {"name": "A\u{0}da"}});
        assert_eq!(
            message(check_json("inputs_json", &value)),
            "inputs_json: $.user.name holds a NUL character (U+0000); \
             text fields accept any Unicode except U+0000"
        );
        let value = json!({"items": [{"a": 1}, {"b": ["x", "\u{0}"]}]});
        let m = message(check_json("inputs_json", &value));
        assert!(m.starts_with("inputs_json: $.items[1].b[1] holds"), "{m}");
    }

    #[test]
    fn a_nul_key_is_named_and_escaped() {
        let value = json!({"user": {"na\u{0}me": "Ada"}});
        let m = message(check_json("inputs_json", &value));
        assert!(
            m.starts_with(r#"inputs_json: the key of $.user["na\u0000me"] holds"#),
            "{m}"
        );
        let value = json!({"a b": {"c-d": "\u{0}"}});
        let m = message(check_json("definition", &value));
        assert!(m.starts_with(r#"definition: $["a b"]["c-d"] holds"#), "{m}");
    }

    #[test]
    fn a_nul_in_plain_text_names_the_field() {
        assert_eq!(
            message(check_text("idempotency_key", "k\u{0}")),
            "idempotency_key: holds a NUL character (U+0000); \
             text fields accept any Unicode except U+0000"
        );
    }
}
