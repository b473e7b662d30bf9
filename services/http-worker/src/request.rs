//! An `http` step's input, read from its rendered JSON into a request to make: every field
//! checked, each error naming the field, before anything leaves the worker.

use std::{collections::BTreeMap, time::Duration};

use baton_workflow::http::{
    HTTP_FIELDS, Redirects, check_header_name, check_header_value, parse_follow_redirects,
    parse_max_response_bytes, parse_method, parse_timeout, string_map,
};
pub use baton_workflow::http::{StatusSpec, parse_url};
use serde_json::Value;
use url::Url;

/// Redirects followed unless the step says otherwise.
pub const DEFAULT_REDIRECTS: u32 = 5;
/// The longest a request may take unless the step says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read unless the step says otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// One request, as the step asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub method: reqwest::Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
    pub timeout: Duration,
    pub expect: StatusSpec,
    pub max_response_bytes: u64,
    pub follow_redirects: u32,
}

/// A request body: JSON for an object, array, number or boolean; text for a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Text(String),
}

/// Why a step's input cannot be sent, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input.{field}: {reason}")]
pub struct InputError {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InputError {
    InputError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The most a step may raise `max_response_bytes` to, and the worker's other bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_response_bytes: u64,
    pub max_redirects: u32,
}

impl HttpCall {
    /// Reads a rendered input. `caps` bound what a step may ask for.
    pub fn from_input(input: &Value, caps: Caps) -> Result<Self, InputError> {
        let Value::Object(fields) = input else {
            return Err(invalid(
                "",
                "an http step's input must be an object with at least `url`",
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| !HTTP_FIELDS.contains(&k.as_str())) {
            return Err(invalid(
                unknown.clone(),
                format!(
                    "unknown field; an http step takes {}",
                    HTTP_FIELDS.join(", ")
                ),
            ));
        }
        let method = match fields.get("method") {
            None | Some(Value::Null) => reqwest::Method::GET,
            Some(Value::String(m)) => parse_method(m)
                .map_err(|r| invalid("method", r))?
                .parse()
                .expect("a standard method"),
            Some(other) => return Err(invalid("method", format!("`{other}` is not a string"))),
        };
        let mut url = match fields.get("url") {
            Some(Value::String(u)) => parse_url(u).map_err(|r| invalid("url", r))?,
            Some(other) => return Err(invalid("url", format!("`{other}` is not a string"))),
            None => return Err(invalid("url", "required")),
        };
        if let Some(query) = fields.get("query") {
            let pairs = string_map(query).map_err(|(at, r)| invalid(format!("query{at}"), r))?;
            let mut serializer = url.query_pairs_mut();
            for (name, value) in pairs {
                serializer.append_pair(&name, &value);
            }
        }
        let headers = match fields.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => {
                let map =
                    string_map(value).map_err(|(at, r)| invalid(format!("headers{at}"), r))?;
                let mut headers = Vec::new();
                for (name, value) in map {
                    let at = || format!("headers.{name}");
                    check_header_name(&name).map_err(|r| invalid(at(), r))?;
                    check_header_value(&value).map_err(|r| invalid(at(), r))?;
                    // What reqwest accepts is what is sent; the checks above say why it would not.
                    reqwest::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| invalid(at(), "not a valid header name"))?;
                    reqwest::header::HeaderValue::from_str(&value)
                        .map_err(|_| invalid(at(), "holds characters a header value cannot"))?;
                    headers.push((name, value));
                }
                headers
            }
        };
        let body = match fields.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(Body::Text(text.clone())),
            Some(json) => Some(Body::Json(json.clone())),
        };
        let timeout = match fields.get("timeout") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT,
            Some(t) => parse_timeout(t).map_err(|r| invalid("timeout", r))?,
        };
        let expect = match fields.get("expect_status") {
            None | Some(Value::Null) => StatusSpec::default(),
            Some(spec) => StatusSpec::parse(spec).map_err(|r| invalid("expect_status", r))?,
        };
        let max_response_bytes = match fields.get("max_response_bytes") {
            None | Some(Value::Null) => DEFAULT_MAX_RESPONSE_BYTES.min(caps.max_response_bytes),
            Some(n) => {
                let n =
                    parse_max_response_bytes(n).map_err(|r| invalid("max_response_bytes", r))?;
                if n > caps.max_response_bytes {
                    return Err(invalid(
                        "max_response_bytes",
                        format!(
                            "{n} is over this worker's cap of {} (HTTP_WORKER_MAX_RESPONSE_BYTES)",
                            caps.max_response_bytes
                        ),
                    ));
                }
                n
            }
        };
        let asked = match fields.get("follow_redirects") {
            None | Some(Value::Null) => Redirects::Default,
            Some(n) => parse_follow_redirects(n).map_err(|r| invalid("follow_redirects", r))?,
        };
        let follow_redirects = match asked {
            Redirects::Default => DEFAULT_REDIRECTS.min(caps.max_redirects),
            Redirects::AtMost(n) if n > caps.max_redirects => {
                return Err(invalid(
                    "follow_redirects",
                    format!("{n} is over this worker's cap of {}", caps.max_redirects),
                ));
            }
            Redirects::AtMost(n) => n,
        };
        Ok(Self {
            method,
            url,
            headers,
            body,
            timeout,
            expect,
            max_response_bytes,
            follow_redirects,
        })
    }
}

/// The headers of a response as an object; repeated headers are joined with `, `.
pub fn headers_json(headers: &reqwest::header::HeaderMap) -> Value {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    serde_json::to_value(map).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CAPS: Caps = Caps {
        max_response_bytes: 8 * 1024 * 1024,
        max_redirects: 10,
    };

    fn call(input: Value) -> Result<HttpCall, InputError> {
        HttpCall::from_input(&input, CAPS)
    }

    #[test]
    fn a_url_alone_is_a_get_with_the_defaults() {
        let c = call(json!({"url": "https://api.example.com/v1/items"})).unwrap();
        assert_eq!(c.method, reqwest::Method::GET);
        assert_eq!(c.url.as_str(), "https://api.example.com/v1/items");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.expect, StatusSpec::default());
        assert_eq!(c.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        assert_eq!(c.follow_redirects, DEFAULT_REDIRECTS);
        assert_eq!(c.body, None);
    }

    #[test]
    fn every_field_is_read() {
        let c = call(json!({
            "method": "post",
            "url": "http://api.example.com/search?x=1",
            "query": {"q": "a b", "page": 2},
            "headers": {"X-Trace": "t1", "Accept": "application/json"},
            "body": {"n": 1},
            "timeout": "2s",
            "expect_status": [200, "3xx", "404-405"],
            "max_response_bytes": 1000,
            "follow_redirects": false,
        }))
        .unwrap();
        assert_eq!(c.method, reqwest::Method::POST);
        assert_eq!(
            c.url.as_str(),
            "http://api.example.com/search?x=1&page=2&q=a+b"
        );
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.body, Some(Body::Json(json!({"n": 1}))));
        assert_eq!(c.timeout, Duration::from_secs(2));
        for ok in [200, 301, 399, 404, 405] {
            assert!(c.expect.matches(ok), "{ok}");
        }
        for bad in [201, 400, 406, 500] {
            assert!(!c.expect.matches(bad), "{bad}");
        }
        assert_eq!(c.expect.to_string(), "200, 3xx, 404-405");
        assert_eq!(c.max_response_bytes, 1000);
        assert_eq!(c.follow_redirects, 0);
        let text = call(json!({"url": "http://a.example/", "body": "plain"})).unwrap();
        assert_eq!(text.body, Some(Body::Text("plain".into())));
    }

    #[test]
    fn bad_input_names_the_field() {
        for (input, field, want) in [
            (json!("http://x"), "", "must be an object"),
            (json!({}), "url", "required"),
            (
                json!({"url": "ftp://x.example/"}),
                "url",
                "only http and https",
            ),
            (
                json!({"url": "file:///etc/passwd"}),
                "url",
                "only http and https",
            ),
            (json!({"url": "not a url"}), "url", "is not a URL"),
            (
                json!({"url": "http://u:p@x.example/"}),
                "url",
                "credentials",
            ),
            (
                json!({"url": "http://x.example", "method": "BREW"}),
                "method",
                "not one of",
            ),
            (
                json!({"url": "http://x.example", "expect_status": "2xxx"}),
                "expect_status",
                "2xxx",
            ),
            (
                json!({"url": "http://x.example", "expect_status": "600"}),
                "expect_status",
                "600",
            ),
            (
                json!({"url": "http://x.example", "expect_status": "300-200"}),
                "expect_status",
                "backwards",
            ),
            (
                json!({"url": "http://x.example", "expect_status": []}),
                "expect_status",
                "at least one",
            ),
            (
                json!({"url": "http://x.example", "timeout": "soon"}),
                "timeout",
                "soon",
            ),
            (
                json!({"url": "http://x.example", "max_response_bytes": 0}),
                "max_response_bytes",
                "positive",
            ),
            (
                json!({"url": "http://x.example", "max_response_bytes": 9_000_000}),
                "max_response_bytes",
                "cap",
            ),
            (
                json!({"url": "http://x.example", "follow_redirects": 11}),
                "follow_redirects",
                "cap",
            ),
            (
                json!({"url": "http://x.example", "headers": {"bad name": "v"}}),
                "headers.bad name",
                "header name",
            ),
            (
                json!({"url": "http://x.example", "headers": {"a": "x\ny"}}),
                "headers.a",
                "header value",
            ),
            (
                json!({"url": "http://x.example", "headers": {"a": {"b": 1}}}),
                "headers.a",
                "must be a string",
            ),
            (
                json!({"url": "http://x.example", "query": [1]}),
                "query",
                "must be an object",
            ),
            (
                json!({"url": "http://x.example", "colour": "red"}),
                "colour",
                "unknown field",
            ),
        ] {
            let e = call(input.clone()).unwrap_err();
            assert_eq!(e.field, field, "{input}: {e}");
            assert!(e.to_string().contains(want), "{input}: {e}");
        }
    }

    #[test]
    fn numeric_host_spellings_become_the_address() {
        for spelling in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
        ] {
            let url = parse_url(spelling).unwrap();
            assert_eq!(
                url.host(),
                Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST)),
                "{spelling}"
            );
        }
        let v6 = parse_url("http://[::ffff:7f00:1]/").unwrap();
        assert!(matches!(v6.host(), Some(url::Host::Ipv6(_))));
    }
}
