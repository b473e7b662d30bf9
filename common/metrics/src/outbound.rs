//! Requests Baton's workers make to the outside world (`http` steps): how many, how they ended,
//! how long they took, how much came back, and which destinations the SSRF guard refused.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::{MetricsError, OPERATION_BUCKETS};

/// Requests by `class` of their answer: `1xx` to `5xx`, or `none` when no answer came (timeout,
/// connection error).
pub const BATON_HTTP_REQUESTS_TOTAL: &str = "baton_http_requests_total";
/// Request duration in seconds, first byte sent to the answer's headers, by `class`.
pub const BATON_HTTP_REQUEST_DURATION_SECONDS: &str = "baton_http_request_duration_seconds";
/// Response body bytes read.
pub const BATON_HTTP_RESPONSE_BYTES_TOTAL: &str = "baton_http_response_bytes_total";
/// Requests the SSRF guard refused, by `reason` (`loopback`, `private`, `metadata`, ...).
pub const BATON_HTTP_BLOCKED_TOTAL: &str = "baton_http_blocked_total";

#[derive(Clone)]
pub(crate) struct OutboundMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes: IntCounter,
    blocked: IntCounterVec,
}

impl OutboundMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let requests = IntCounterVec::new(
            Opts::new(
                BATON_HTTP_REQUESTS_TOTAL,
                "Requests made by http steps, by the class of their answer (none: no answer)",
            ),
            &["class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                BATON_HTTP_REQUEST_DURATION_SECONDS,
                "Duration of http steps' requests until the answer's headers, in seconds",
            )
            .buckets(OPERATION_BUCKETS.to_vec()),
            &["class"],
        )?;
        let bytes = IntCounter::new(
            BATON_HTTP_RESPONSE_BYTES_TOTAL,
            "Response body bytes read by http steps",
        )?;
        let blocked = IntCounterVec::new(
            Opts::new(
                BATON_HTTP_BLOCKED_TOTAL,
                "Requests of http steps refused by the SSRF guard, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(blocked.clone()))?;
        Ok(Self {
            requests,
            duration,
            bytes,
            blocked,
        })
    }

    pub(crate) fn request(&self, class: &str, secs: f64) {
        self.requests.with_label_values(&[class]).inc();
        self.duration.with_label_values(&[class]).observe(secs);
    }

    pub(crate) fn response_bytes(&self, n: u64) {
        self.bytes.inc_by(n);
    }

    pub(crate) fn blocked(&self, reason: &str) {
        self.blocked.with_label_values(&[reason]).inc();
    }
}
