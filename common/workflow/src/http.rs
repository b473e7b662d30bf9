//! The `http` step's input contract, written once: registration checks every part a definition
//! spells out rather than templates, the http-worker checks everything again after templates
//! rendered, with the same functions.

use std::time::Duration;

use serde_json::Value;
use url::Url;

/// The fields an `http` step's input may have.
pub const HTTP_FIELDS: &[&str] = &[
    "method",
    "url",
    "headers",
    "query",
    "body",
    "timeout",
    "expect_status",
    "max_response_bytes",
    "follow_redirects",
];

/// The methods an `http` step may use.
pub const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// `text` as one of [`HTTP_METHODS`], in any case.
pub fn parse_method(text: &str) -> Result<&'static str, String> {
    let upper = text.trim().to_ascii_uppercase();
    HTTP_METHODS
        .iter()
        .find(|m| **m == upper)
        .copied()
        .ok_or_else(|| format!("`{text}` is not one of {}", HTTP_METHODS.join(", ")))
}

/// Parses an absolute `http` or `https` URL with a host and no credentials. Hosts written as
/// decimal, octal or hex numbers (`http://2130706433/`, `http://0x7f.1/`) come out as the IPv4
/// address they stand for, so what judges the address sees the address, not its spelling.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme `{}` is not allowed; only http and https",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err(format!("`{text}` names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed; send them in a header".to_owned());
    }
    Ok(url)
}

/// The statuses that count as success: single codes and inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSpec {
    ranges: Vec<(u16, u16)>,
    text: String,
}

impl Default for StatusSpec {
    fn default() -> Self {
        Self {
            ranges: vec![(200, 299)],
            text: "2xx".to_owned(),
        }
    }
}

impl StatusSpec {
    /// Parses `200`, `"2xx"`, `"200-204"`, or a list of those.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let items: Vec<&Value> = match value {
            Value::Array(items) if !items.is_empty() => items.iter().collect(),
            Value::Array(_) => return Err("must list at least one status".to_owned()),
            one => vec![one],
        };
        let mut ranges = Vec::new();
        let mut texts = Vec::new();
        for item in items {
            let text = match item {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_owned(),
                other => return Err(format!("`{other}` is not a status, class or range")),
            };
            ranges.push(parse_status(&text)?);
            texts.push(text);
        }
        Ok(Self {
            ranges,
            text: texts.join(", "),
        })
    }

    pub fn matches(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

impl std::fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_status(text: &str) -> Result<(u16, u16), String> {
    let code = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| format!("`{text}` is not a status, class (`2xx`) or range (`200-204`)"))
    };
    let lower = text.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let digit = class
            .parse::<u16>()
            .ok()
            .filter(|d| (1..=5).contains(d) && class.len() == 1)
            .ok_or_else(|| format!("`{text}` is not a status class (`1xx` to `5xx`)"))?;
        return Ok((digit * 100, digit * 100 + 99));
    }
    match lower.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (code(lo.trim())?, code(hi.trim())?);
            if lo > hi {
                return Err(format!("`{text}`: the range runs backwards"));
            }
            Ok((lo, hi))
        }
        None => code(&lower).map(|c| (c, c)),
    }
}

/// `timeout`: a duration above zero, such as `10s` or `1m 30s`.
pub fn parse_timeout(value: &Value) -> Result<Duration, String> {
    value
        .as_str()
        .and_then(|t| humantime::parse_duration(t.trim()).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{}` is not a duration such as `10s`", plain(value)))
}

/// `max_response_bytes`: a whole number above zero (the worker bounds it by its own cap).
pub fn parse_max_response_bytes(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{value}` is not a positive whole number"))
}

/// What `follow_redirects` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// `true`: the worker's default number.
    Default,
    /// `false` (0) or a number.
    AtMost(u32),
}

/// `follow_redirects`: `true`, `false`, or how many redirects to follow at most.
pub fn parse_follow_redirects(value: &Value) -> Result<Redirects, String> {
    match value {
        Value::Bool(true) => Ok(Redirects::Default),
        Value::Bool(false) => Ok(Redirects::AtMost(0)),
        n => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Redirects::AtMost)
            .ok_or_else(|| format!("`{n}` is not a whole number or true/false")),
    }
}

/// `headers` and `query`: an object of names to strings (numbers and booleans are written out).
/// The error is the key path below the field (`.name`, or empty for the whole), and why.
pub fn string_map(value: &Value) -> Result<Vec<(String, String)>, (String, String)> {
    let Value::Object(map) = value else {
        return Err((
            String::new(),
            "must be an object of names to values".to_owned(),
        ));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err((
                format!(".{k}"),
                "must be a string, number or boolean".to_owned(),
            )),
        })
        .collect()
}

/// Whether `name` can be a header's name: an HTTP token (RFC 9110 section 5.6.2).
pub fn check_header_name(name: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err("not a valid header name".to_owned());
    }
    Ok(())
}

/// Whether `value` can be a header's value: no control characters but tab (so no line breaks).
pub fn check_header_value(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c != '\t' && (c.is_control())) {
        return Err(
            "holds characters a header value cannot (a line break or control character)".to_owned(),
        );
    }
    Ok(())
}

/// A string as itself, anything else as JSON, for messages.
fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn templated(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(items) => items.iter().any(templated),
        Value::Object(map) => map.values().any(templated),
        _ => false,
    }
}

/// What registration can check of an `http` step's input before any run: the field names, that
/// `url` is there, and every field, header and query parameter written out rather than
/// templated. Errors are `(field, reason)`.
pub fn check_http_input(input: &Value) -> Result<(), (String, String)> {
    let Value::Object(fields) = input else {
        return Err((
            "input".to_owned(),
            "an http step's input must be a mapping with at least `url`".to_owned(),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !HTTP_FIELDS.contains(&k.as_str())) {
        return Err((
            format!("input.{unknown}"),
            format!(
                "unknown field; an http step takes {}",
                HTTP_FIELDS.join(", ")
            ),
        ));
    }
    let literal = |key: &str| fields.get(key).filter(|v| !templated(v));
    if !fields.contains_key("url") {
        return Err(("input.url".to_owned(), "is required for `http`".to_owned()));
    }
    if let Some(url) = literal("url") {
        let text = url
            .as_str()
            .ok_or_else(|| ("input.url".to_owned(), "must be a string".to_owned()))?;
        parse_url(text).map_err(|e| ("input.url".to_owned(), e))?;
    }
    if let Some(method) = literal("method") {
        let text = method
            .as_str()
            .ok_or_else(|| ("input.method".to_owned(), "must be a string".to_owned()))?;
        parse_method(text).map_err(|e| ("input.method".to_owned(), e))?;
    }
    if let Some(spec) = literal("expect_status") {
        StatusSpec::parse(spec).map_err(|e| ("input.expect_status".to_owned(), e))?;
    }
    if let Some(timeout) = literal("timeout") {
        parse_timeout(timeout).map_err(|e| ("input.timeout".to_owned(), e))?;
    }
    if let Some(n) = literal("max_response_bytes") {
        parse_max_response_bytes(n).map_err(|e| ("input.max_response_bytes".to_owned(), e))?;
    }
    if let Some(n) = literal("follow_redirects") {
        parse_follow_redirects(n).map_err(|e| ("input.follow_redirects".to_owned(), e))?;
    }
    for field in ["headers", "query"] {
        let Some(value) = fields.get(field) else {
            continue;
        };
        // A whole map from a template is the worker's to check; a written-out one is checked
        // entry by entry, leaving templated entries to the worker.
        if matches!(value, Value::String(_)) && templated(value) {
            continue;
        }
        let Value::Object(map) = value else {
            return Err((
                format!("input.{field}"),
                "must be an object of names to values".to_owned(),
            ));
        };
        for (name, entry) in map {
            let at = format!("input.{field}.{name}");
            if field == "headers" {
                check_header_name(name).map_err(|e| (at.clone(), e))?;
            }
            if templated(entry) {
                continue;
            }
            let text = match entry {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => entry.to_string(),
                _ => return Err((at, "must be a string, number or boolean".to_owned())),
            };
            if field == "headers" {
                check_header_value(&text).map_err(|e| (at, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn written_out_parts_are_checked_and_templated_ones_left_for_the_worker() {
        assert_eq!(
            check_http_input(&json!({"url": "https://a.example/x"})),
            Ok(())
        );
        assert_eq!(
            check_http_input(
                &json!({"url": "{{ inputs.url }}", "method": "{{ inputs.m }}", "expect_status": ["{{ inputs.s }}"]})
            ),
            Ok(())
        );
        for (input, field, want) in [
            (json!("x"), "input", "must be a mapping"),
            (json!({}), "input.url", "is required"),
            (
                json!({"url": "ftp://a.example/"}),
                "input.url",
                "only http and https",
            ),
            (json!({"url": 3}), "input.url", "must be a string"),
            (
                json!({"url": "https://a.example", "method": "BREW"}),
                "input.method",
                "not one of",
            ),
            (
                json!({"url": "https://a.example", "expect_status": "6xx"}),
                "input.expect_status",
                "6xx",
            ),
            (
                json!({"url": "https://a.example", "retries": 3}),
                "input.retries",
                "unknown field",
            ),
            (
                json!({"url": "https://a.example", "timeout": "5 parsecs"}),
                "input.timeout",
                "not a duration",
            ),
            (
                json!({"url": "https://a.example", "timeout": "0s"}),
                "input.timeout",
                "not a duration",
            ),
            (
                json!({"url": "https://a.example", "max_response_bytes": -1}),
                "input.max_response_bytes",
                "positive whole number",
            ),
            (
                json!({"url": "https://a.example", "follow_redirects": "yes"}),
                "input.follow_redirects",
                "true/false",
            ),
            (
                json!({"url": "https://a.example", "headers": {"bad name": "x"}}),
                "input.headers.bad name",
                "not a valid header name",
            ),
            (
                json!({"url": "https://a.example", "headers": {"x-a": "one\ntwo"}}),
                "input.headers.x-a",
                "line break",
            ),
            (
                json!({"url": "https://a.example", "headers": ["x"]}),
                "input.headers",
                "object of names",
            ),
            (
                json!({"url": "https://a.example", "query": {"q": {"deep": 1}}}),
                "input.query.q",
                "string, number or boolean",
            ),
        ] {
            let (f, reason) = check_http_input(&input).unwrap_err();
            assert_eq!(f, field, "{input}");
            assert!(reason.contains(want), "{input}: {reason}");
        }
    }

    #[test]
    fn templated_parts_are_left_for_the_worker_and_good_literals_pass() {
        let input = json!({
            "url": "https://a.example/{{ inputs.path }}",
            "headers": {"authorization": "Bearer {{ secrets.TOKEN }}", "x-n": 3, "x-ok": true},
            "query": "{{ inputs.query }}",
            "timeout": "1m 30s",
            "max_response_bytes": 2048,
            "follow_redirects": false,
        });
        assert_eq!(check_http_input(&input), Ok(()));
        assert_eq!(
            check_http_input(&json!({"url": "https://a", "headers": "{{ inputs.h }}"})),
            Ok(())
        );
        assert_eq!(parse_timeout(&json!("1m 30s")), Ok(Duration::from_secs(90)));
        assert_eq!(parse_follow_redirects(&json!(true)), Ok(Redirects::Default));
        assert_eq!(
            parse_follow_redirects(&json!(false)),
            Ok(Redirects::AtMost(0))
        );
        assert_eq!(parse_follow_redirects(&json!(7)), Ok(Redirects::AtMost(7)));
        assert!(check_header_name("X-Request-Id").is_ok());
        assert!(check_header_name("").is_err());
        assert!(check_header_value("tab\tand ünïcode").is_ok());
        assert!(check_header_value("nul\u{0}").is_err());
    }

    #[test]
    fn statuses_match_codes_classes_and_ranges() {
        let spec = StatusSpec::parse(&json!([200, "3xx", "404-405"])).unwrap();
        for ok in [200, 301, 399, 404, 405] {
            assert!(spec.matches(ok), "{ok}");
        }
        for bad in [201, 400, 406, 500] {
            assert!(!spec.matches(bad), "{bad}");
        }
        assert_eq!(spec.to_string(), "200, 3xx, 404-405");
        assert!(
            StatusSpec::parse(&json!("300-200"))
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            StatusSpec::parse(&json!([]))
                .unwrap_err()
                .contains("at least one")
        );
        assert_eq!(parse_method("post"), Ok("POST"));
    }
}
