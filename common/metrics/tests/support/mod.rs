//! Helpers shared by the integration tests: a plain HTTP/1.1 GET over loopback and lookups in a
//! parsed scrape.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use prometheus_parse::{LineInfo, Sample, SampleType, Scrape, Value};
use tokio::net::TcpStream;

/// A parsed HTTP response.
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// Sends `GET path` with `Connection: close` and reads the whole response.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut written = 0;
    while written < request.len() {
        stream.writable().await.expect("writable");
        match stream.try_write(&request.as_bytes()[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("write: {e}"),
        }
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        stream.readable().await.expect("readable");
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if let Some(length) = headers.get("content-length") {
        assert_eq!(body.len(), length.parse::<usize>().expect("content-length"));
    } else {
        assert!(
            !headers.contains_key("transfer-encoding"),
            "expected a sized body"
        );
    }
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Parses a text-format body.
pub fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition format")
}

/// The sample called `name` whose labels are exactly `labels` (`le` excluded for histograms).
pub fn sample<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let want: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && *s.labels == want)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// Whether any sample called `name` exists.
pub fn has(scrape: &Scrape, name: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == name)
}

/// The value of a counter, gauge or untyped sample.
pub fn scalar(sample: &Sample) -> f64 {
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{} is not a scalar: {other:?}", sample.metric),
    }
}

/// The cumulative count of the bucket with upper bound `le` (use `f64::INFINITY` for `+Inf`).
pub fn bucket(sample: &Sample, le: f64) -> f64 {
    match &sample.value {
        Value::Histogram(buckets) => {
            buckets
                .iter()
                .find(|b| b.less_than == le)
                .unwrap_or_else(|| panic!("{} has no bucket le={le}", sample.metric))
                .count
        }
        other => panic!("{} is not a histogram: {other:?}", sample.metric),
    }
}

/// One raw series line, as `prometheus-parse` tokenises it (before it folds histogram buckets).
pub struct RawSeries {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Every sample line of `body`, unfolded, so `_bucket` series can be checked by name.
pub fn raw_series(body: &str) -> Vec<RawSeries> {
    body.lines()
        .filter_map(|line| match LineInfo::parse(line) {
            LineInfo::Sample {
                metric_name,
                labels,
                value,
                ..
            } => Some(RawSeries {
                name: metric_name.to_owned(),
                labels: labels
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                    .collect(),
                value: match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().expect("numeric sample value"),
                },
            }),
            _ => None,
        })
        .collect()
}

/// The declared `# TYPE` of every family in `body` (histograms keyed by their base name).
pub fn types(body: &str) -> HashMap<String, SampleType> {
    body.lines()
        .filter_map(|line| match LineInfo::parse(line) {
            LineInfo::Type {
                metric_name,
                metric_alias,
                sample_type,
            } => Some((metric_alias.unwrap_or(metric_name), sample_type)),
            _ => None,
        })
        .collect()
}
