//! Run inputs from the command line: `--input KEY=VALUE` pairs and an optional `--inputs-file`,
//! merged into the JSON object that `StartRun` expects. Values are typed by trying JSON first, so
//! `count=3` is a number while `name=Ada` stays a string.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// Parses one `KEY=VALUE` argument. The value is JSON when it parses as JSON, else a string.
pub fn parse_input(arg: &str) -> Result<(String, Value), String> {
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got `{arg}` (no `=`)"));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("expected KEY=VALUE, got `{arg}` (empty key)"));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

/// Reads an inputs file: JSON when it ends in `.json`, else YAML. It must hold an object.
pub fn read_inputs_file(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read inputs file {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    parse_inputs_text(&text, is_json)
        .with_context(|| format!("invalid inputs file {}", path.display()))
}

/// Parses the text of an inputs file into an object.
pub fn parse_inputs_text(text: &str, is_json: bool) -> anyhow::Result<Map<String, Value>> {
    let value: Value = if is_json {
        serde_json::from_str(text)?
    } else {
        serde_yaml_ng::from_str(text)?
    };
    match value {
        Value::Object(map) => Ok(map),
        // An empty YAML document means no inputs.
        Value::Null => Ok(Map::new()),
        other => bail!("expected an object of inputs, found {}", kind_of(&other)),
    }
}

/// Merges `--input` pairs over the file's inputs; a later pair wins over an earlier one.
pub fn merge_inputs(base: Map<String, Value>, pairs: &[(String, Value)]) -> Map<String, Value> {
    let mut inputs = base;
    for (key, value) in pairs {
        inputs.insert(key.clone(), value.clone());
    }
    inputs
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(arg: &str) -> Value {
        parse_input(arg).unwrap().1
    }

    #[test]
    fn numbers_bools_and_lists_are_json() {
        assert_eq!(
            parse_input("count=3").unwrap(),
            ("count".to_owned(), json!(3))
        );
        assert_eq!(value("ratio=0.5"), json!(0.5));
        assert_eq!(value("flag=true"), json!(true));
        assert_eq!(value("x=[1,2]"), json!([1, 2]));
        assert_eq!(value(r#"o={"a":1}"#), json!({"a": 1}));
        assert_eq!(value("n=null"), Value::Null);
    }

    #[test]
    fn other_values_are_strings() {
        assert_eq!(
            parse_input("name=Ada").unwrap(),
            ("name".to_owned(), json!("Ada"))
        );
        assert_eq!(value("empty="), json!(""));
        assert_eq!(value("eq=a=b"), json!("a=b"));
        assert_eq!(value("x=[1,2"), json!("[1,2"));
        assert_eq!(value(r#"quoted="3""#), json!("3"));
    }

    #[test]
    fn missing_equals_or_key_is_an_error() {
        let err = parse_input("count").unwrap_err();
        assert!(err.contains("KEY=VALUE"), "{err}");
        assert!(parse_input("=3").is_err());
    }

    #[test]
    fn inputs_file_json_and_yaml() {
        let from_json = parse_inputs_text(r#"{"name": "Ada", "count": 1}"#, true).unwrap();
        assert_eq!(Value::Object(from_json), json!({"name": "Ada", "count": 1}));
        let from_yaml = parse_inputs_text("name: Ada\ncount: 1\ntags: [a, b]\n", false).unwrap();
        assert_eq!(
            Value::Object(from_yaml),
            json!({"name": "Ada", "count": 1, "tags": ["a", "b"]})
        );
        assert!(parse_inputs_text("", false).unwrap().is_empty());
        let err = parse_inputs_text("[1, 2]", true).unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
    }

    #[test]
    fn inputs_override_the_file() {
        let file = parse_inputs_text("name: Ada\ncount: 1\n", false).unwrap();
        let pairs = vec![
            parse_input("count=3").unwrap(),
            parse_input("extra=yes").unwrap(),
        ];
        let merged = merge_inputs(file, &pairs);
        assert_eq!(
            Value::Object(merged),
            json!({"name": "Ada", "count": 3, "extra": "yes"})
        );
    }

    #[test]
    fn later_inputs_win() {
        let pairs = vec![parse_input("a=1").unwrap(), parse_input("a=2").unwrap()];
        assert_eq!(
            Value::Object(merge_inputs(Map::new(), &pairs)),
            json!({"a": 2})
        );
    }
}
