//! The `http` step's input contract, written once: registration checks the parts a definition
//! spells out (method, URL, statuses, field names), the http-worker checks everything again
//! after templates rendered.

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

fn templated(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(items) => items.iter().any(templated),
        Value::Object(map) => map.values().any(templated),
        _ => false,
    }
}

/// What registration can check of an `http` step's input before any run: the field names, that
/// `url` is there, and the method, URL and statuses where they are written out rather than
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
        ] {
            let (f, reason) = check_http_input(&input).unwrap_err();
            assert_eq!(f, field, "{input}");
            assert!(reason.contains(want), "{input}: {reason}");
        }
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
