//! The one rule every backend's text obeys: text Baton stores holds no NUL (U+0000). PostgreSQL's
//! TEXT and JSONB cannot hold it, so a NUL that reached a write would fail the whole batch it rode
//! in; the engine keeps it out before anything is written.

use std::{borrow::Cow, fmt};

use serde_json::Value as Json;

const NUL: char = '\0';

/// Where a JSON value holds a NUL: the path of the string, or of the member whose key, holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NulAt {
    /// `$.a[2].b`, from the root name the caller gave; a NUL within a key reads `\u0000`.
    pub path: String,
    /// The NUL is in the member's key, not in its value.
    pub in_key: bool,
}

impl fmt::Display for NulAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.in_key { "the key of " } else { "" };
        write!(f, "{place}{} holds a NUL character (U+0000)", self.path)
    }
}

/// The first NUL in `value`'s keys and strings, depth first, with paths starting at `root`.
/// Looks only at strings, so a value without any costs one pass over its text.
pub(crate) fn find_nul(value: &Json, root: &str) -> Option<NulAt> {
    let mut path = root.to_owned();
    find_in(value, &mut path)
}

fn find_in(value: &Json, path: &mut String) -> Option<NulAt> {
    let found = |path: &String, in_key| {
        Some(NulAt {
            path: path.clone(),
            in_key,
        })
    };
    match value {
        Json::String(text) if text.contains(NUL) => found(path, false),
        Json::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let hit = find_in(item, path);
            path.truncate(len);
            hit
        }),
        Json::Object(members) => members.iter().find_map(|(key, member)| {
            let len = path.len();
            path.push('.');
            path.push_str(&key.replace(NUL, "\\u0000"));
            let hit = if key.contains(NUL) {
                found(path, true)
            } else {
                find_in(member, path)
            };
            path.truncate(len);
            hit
        }),
        _ => None,
    }
}

/// `text` with each NUL replaced by U+FFFD, the replacement character; borrowed when it has none.
pub(crate) fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains(NUL) {
        Cow::Owned(text.replace(NUL, "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn at(path: &str, in_key: bool) -> Option<NulAt> {
        Some(NulAt {
            path: path.into(),
            in_key,
        })
    }

    #[test]
    fn a_nul_is_found_where_it_is() {
        assert_eq!(
            find_nul(&json!({"text": "a\u{0}b"}), "$"),
            at("$.text", false)
        );
        assert_eq!(find_nul(&json!("\u{0}"), "$"), at("$", false));
        assert_eq!(
            find_nul(&json!({"a": [1, "ok", {"b": "x\u{0}"}]}), "input"),
            at("input.a[2].b", false)
        );
        assert_eq!(
            find_nul(&json!({"ok": 1, "k\u{0}y": "fine"}), "$"),
            at("$.k\\u0000y", true)
        );
        assert_eq!(
            find_nul(&json!({"a": {"n\u{0}": 1}}), "$"),
            at("$.a.n\\u0000", true)
        );
    }

    #[test]
    fn the_path_names_only_the_member_that_holds_it() {
        // Siblings searched before the hit leave nothing of their own paths behind.
        assert_eq!(
            find_nul(&json!([["a", "b"], {"c": 1, "d": "e"}, "\u{0}"]), "$"),
            at("$[2]", false)
        );
        assert_eq!(
            find_nul(&json!({"a": {"b": "c"}, "d": ["\u{0}"]}), "$"),
            at("$.d[0]", false)
        );
    }

    #[test]
    fn values_without_a_nul_pass() {
        for value in [
            json!(null),
            json!(true),
            json!(0),
            json!(""),
            json!("\\u0000 is only its escape"),
            json!({"a": ["b", {"c": 1.5}], "\u{FFFD}": "\u{FFFD}"}),
        ] {
            assert_eq!(find_nul(&value, "$"), None, "{value}");
        }
    }

    #[test]
    fn the_message_says_what_holds_it() {
        assert_eq!(
            at("$.text", false).unwrap().to_string(),
            "$.text holds a NUL character (U+0000)"
        );
        assert_eq!(
            at("$.k\\u0000", true).unwrap().to_string(),
            "the key of $.k\\u0000 holds a NUL character (U+0000)"
        );
    }

    #[test]
    fn text_loses_its_nuls_and_keeps_the_rest() {
        assert_eq!(without_nul("a\u{0}b\u{0}"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(without_nul("clean"), Cow::Borrowed("clean")));
    }

    fn json_value() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            "[a\u{0}\u{FFFD}\\\\]{0,4}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::btree_map("[b\u{0}]{0,3}", inner, 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// A NUL is reported exactly when the value's text holds one, and the value's JSON text
        /// (where a NUL is always escaped) holds that escape exactly then too.
        #[test]
        fn a_nul_is_reported_exactly_when_there_is_one(value in json_value()) {
            let holds = value.to_string().contains("\\u0000");
            prop_assert_eq!(find_nul(&value, "$").is_some(), holds, "{}", value);
        }

        #[test]
        fn text_without_nul_holds_none_and_keeps_its_length_in_chars(text in "[a\u{0}\u{FFFD}é]{0,12}") {
            let clean = without_nul(&text);
            prop_assert!(!clean.contains('\0'));
            prop_assert_eq!(clean.chars().count(), text.chars().count());
            prop_assert_eq!(clean == text, !text.contains('\0'));
        }
    }
}
