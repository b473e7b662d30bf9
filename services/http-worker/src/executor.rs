//! Runs one `http` step attempt: the request, its redirects (each destination judged by the
//! guard again), a body read no further than its limit, and an output or a failure that says
//! which went wrong, so the step's `retry` applies to what retrying can fix.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use baton_proto::v1;
use baton_worker::{StepExecutor, StepFailure, StepOutput};
use reqwest::{
    StatusCode,
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use crate::{
    guard::{Blocked, Guard},
    request::{Body, Caps, HttpCall, headers_json, parse_url},
    secrets::{Redactor, Secrets},
};

/// The `http` kind's executor: one connection pool for every step this worker runs.
pub struct HttpExecutor {
    client: reqwest::Client,
    guard: Arc<Guard>,
    caps: Caps,
    secrets: Secrets,
    metrics: Arc<baton_metrics::Metrics>,
}

impl HttpExecutor {
    pub fn new(
        guard: Guard,
        caps: Caps,
        secrets: Secrets,
        metrics: Arc<baton_metrics::Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let guard = Arc::new(guard);
        let client = Self::client(&guard, Vec::new())?;
        Ok(Self {
            client,
            guard,
            caps,
            secrets,
            metrics,
        })
    }

    /// Trusts `roots` beside the system's.
    pub fn with_roots(mut self, roots: Vec<reqwest::Certificate>) -> Result<Self, reqwest::Error> {
        if !roots.is_empty() {
            self.client = Self::client(&self.guard, roots)?;
        }
        Ok(self)
    }

    fn client(
        guard: &Arc<Guard>,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder();
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        builder
            .dns_resolver(Arc::new(GuardedResolver {
                guard: guard.clone(),
            }))
            // Redirects are followed here, one hop at a time, so each is judged and counted.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on the worker's behalf to addresses the guard never saw.
            .no_proxy()
            .user_agent(concat!("baton-http-worker/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// Refuses a URL whose host is an address the guard does not allow; names go through the
    /// resolver, which judges what they resolve to.
    fn check_literal(&self, url: &Url) -> Result<(), Blocked> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.guard.check(&ip.to_string(), ip)
    }
}

/// Resolves names and keeps only the addresses the guard allows: the connection is made to
/// one of those, so nothing can change between the check and the connect.
struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match guard.check(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(blocked) => {
                        refused.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            if allowed.is_empty()
                && let Some(blocked) = refused
            {
                return Err(Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[async_trait]
impl StepExecutor for HttpExecutor {
    async fn execute(
        &self,
        job: &v1::Job,
        input: Value,
        cancel: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        let resolved = self
            .secrets
            .resolve(&input, &job.secret_nonce)
            .map_err(|e| StepFailure::permanent(e.to_string()))?;
        let redactor = resolved.values;
        let call = HttpCall::from_input(&resolved.input, self.caps)
            .map_err(|e| StepFailure::permanent(redactor.text(&e.to_string())))?;
        // This attempt's span when traces are exported, else the step's own context as the
        // runner sent it: either way the callee's spans join the run's trace.
        let mut trace_headers = baton_telemetry::inject_context(&tracing::Span::current());
        if trace_headers.is_empty() {
            trace_headers = job
                .trace_context
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "traceparent" | "tracestate"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        let done = tokio::select! {
            done = self.call(call, &trace_headers, &redactor) => done,
            _ = cancel.cancelled() => Err(StepFailure::permanent("cancelled")),
        };
        // What the step reports never holds a secret it used: not an echo of it in the
        // response, not a URL with one in it in an error.
        match done {
            Ok(StepOutput::Done(mut output)) => {
                redactor.json(&mut output);
                Ok(StepOutput::Done(output))
            }
            Err(mut failure) => {
                failure.message = redactor.text(&failure.message);
                Err(failure)
            }
            parked => parked,
        }
    }
}

impl HttpExecutor {
    #[tracing::instrument(name = "http.request", skip_all, fields(http.method = %call.method, url.host = redactor.text(call.url.host_str().unwrap_or_default()), http.status))]
    async fn call(
        &self,
        call: HttpCall,
        trace_headers: &std::collections::HashMap<String, String>,
        redactor: &Redactor,
    ) -> Result<StepOutput, StepFailure> {
        let began = Instant::now();
        let mut url = call.url.clone();
        let mut method = call.method.clone();
        let mut body = call.body.clone();
        let mut redirects = 0;
        loop {
            self.check_literal(&url).map_err(|b| {
                self.metrics.http_blocked(b.label());
                StepFailure::permanent(b.to_string())
            })?;
            let left = call.timeout.saturating_sub(began.elapsed());
            if left.is_zero() {
                return Err(timed_out(&method, &url, call.timeout));
            }
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .timeout(left);
            for (name, value) in trace_headers {
                request = request.header(name, value);
            }
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
            request = match &body {
                Some(Body::Json(json)) => request.json(json),
                Some(Body::Text(text)) if !has_header(&call, "content-type") => request
                    .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(text.clone()),
                Some(Body::Text(text)) => request.body(text.clone()),
                None => request,
            };
            let sent = Instant::now();
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    let failure = send_failure(e, &method, &url, call.timeout);
                    match failure.blocked {
                        Some(label) => self.metrics.http_blocked(label),
                        None => self
                            .metrics
                            .http_request("none", sent.elapsed().as_secs_f64()),
                    }
                    return Err(failure.failure);
                }
            };
            let status = response.status();
            let class = match status.as_u16() / 100 {
                1 => "1xx",
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                _ => "5xx",
            };
            self.metrics
                .http_request(class, sent.elapsed().as_secs_f64());
            if status.is_redirection() && call.follow_redirects > 0 {
                let Some(next) = location(&response, &url) else {
                    return Err(StepFailure::permanent(format!(
                        "{method} {} answered {status} without a usable Location",
                        shown(&url)
                    )));
                };
                redirects += 1;
                if redirects > call.follow_redirects {
                    return Err(StepFailure::permanent(format!(
                        "{method} {}: stopped after {} redirects (follow_redirects)",
                        shown(&call.url),
                        call.follow_redirects
                    )));
                }
                let next = parse_url(next.as_str()).map_err(|reason| {
                    StepFailure::permanent(format!("redirect to {}: {reason}", shown(&next)))
                })?;
                if status == StatusCode::SEE_OTHER
                    || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
                {
                    method = reqwest::Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            tracing::Span::current().record("http.status", status.as_u16());
            return self.finish(response, &call, &method, &url, began).await;
        }
    }

    async fn finish(
        &self,
        mut response: reqwest::Response,
        call: &HttpCall,
        method: &reqwest::Method,
        url: &Url,
        began: Instant,
    ) -> Result<StepOutput, StepFailure> {
        let status = response.status();
        let headers = response.headers().clone();
        if !call.expect.matches(status.as_u16()) {
            let mut message = format!(
                "{method} {} answered {status}, expected {}",
                shown(url),
                call.expect
            );
            let asked = retry_after(&headers).filter(|_| matches!(status.as_u16(), 429 | 503));
            if let Some(wait) = asked {
                message.push_str(&format!(" (Retry-After: {}s)", wait.as_secs()));
                return Err(StepFailure::retryable(message).with_retry_after(wait));
            }
            return Err(StepFailure::retryable(message));
        }
        let limit = call.max_response_bytes;
        let too_big = || {
            StepFailure::permanent(format!(
                "{method} {}: the response body is over the {limit}-byte limit (max_response_bytes)",
                shown(url)
            ))
        };
        if headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > limit)
        {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| send_failure(e, method, url, call.timeout).failure)?;
            let Some(chunk) = chunk else { break };
            self.metrics.http_response_bytes(chunk.len() as u64);
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        let body = if is_json {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        } else if bytes.is_empty() {
            Value::Null
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        Ok(json!({
            "status": status.as_u16(),
            "headers": headers_json(&headers),
            "body": body,
            "duration_ms": began.elapsed().as_millis() as u64,
        })
        .into())
    }
}

fn has_header(call: &HttpCall, name: &str) -> bool {
    call.headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn location(response: &reqwest::Response, base: &Url) -> Option<Url> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    base.join(value).ok()
}

/// `Retry-After` as seconds or as an HTTP date (how long from now; a date past is no wait).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

fn retry_after_at(
    headers: &reqwest::header::HeaderMap,
    now: std::time::SystemTime,
) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A URL as errors show it: without its query, which may carry values that are not the
/// worker's to repeat.
fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn timed_out(method: &reqwest::Method, url: &Url, timeout: Duration) -> StepFailure {
    StepFailure::retryable(format!(
        "{method} {}: timed out after {}",
        shown(url),
        humantime::format_duration(timeout)
    ))
}

/// Why a request got no answer, and the guard's label when it was the guard.
struct SendFailure {
    failure: StepFailure,
    blocked: Option<&'static str>,
}

/// A request that got no answer: refused by the guard, timed out, or could not connect.
fn send_failure(
    error: reqwest::Error,
    method: &reqwest::Method,
    url: &Url,
    timeout: Duration,
) -> SendFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return SendFailure {
                failure: StepFailure::permanent(blocked.to_string()),
                blocked: Some(blocked.label()),
            };
        }
        source = e.source();
    }
    let failure = |failure| SendFailure {
        failure,
        blocked: None,
    };
    if error.is_timeout() {
        return failure(timed_out(method, url, timeout));
    }
    let mut root: &dyn std::error::Error = &error;
    while let Some(next) = root.source() {
        root = next;
    }
    let what = if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    failure(StepFailure::retryable(format!(
        "{method} {}: {what}: {root}",
        shown(url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(RETRY_AFTER, value.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 00:00:00 GMT").unwrap();
        assert_eq!(
            retry_after_at(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_at(&headers("Wed, 02 Dec 2026 00:01:30 GMT"), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after_at(&headers("Tue, 01 Dec 2026 23:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date past"
        );
        assert_eq!(retry_after_at(&headers("soon"), now), None);
        assert_eq!(
            retry_after_at(&reqwest::header::HeaderMap::new(), now),
            None
        );
    }
}
