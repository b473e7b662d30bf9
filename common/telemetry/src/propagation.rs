//! W3C `traceparent`/`tracestate` propagation, so one trace spans gRPC calls and
//! Redis job envelopes (`map<string,string> trace_context`).
//!
//! The helpers always use the W3C TraceContext format (the wire contract between
//! Baton services), independent of the global propagator. They only carry
//! context when the OpenTelemetry layer is installed (OTLP export enabled);
//! otherwise injection yields an empty map and extraction is a no-op.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::codegen::http::HeaderMap;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Serialises `span`'s trace context into a carrier map (`traceparent`, and
/// `tracestate` when non-empty). Empty if the span has no valid context.
pub fn inject_context(span: &tracing::Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    }
    carrier
}

/// Makes the context in `carrier` the parent of `span`.
///
/// Must be called before `span` is first entered (or its context read). No-op
/// when the carrier is empty or holds no valid `traceparent`.
pub fn set_parent(span: &tracing::Span, carrier: &HashMap<String, String>) {
    set_parent_from(span, &MapExtractor(carrier));
}

/// Like [`set_parent`], reading `traceparent`/`tracestate` from HTTP/gRPC headers.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &HeaderMap) {
    set_parent_from(span, &HeaderExtractor(headers));
}

/// Writes `span`'s trace context into outgoing gRPC request metadata.
pub fn inject_into_metadata(span: &tracing::Span, metadata: &mut MetadataMap) {
    for (key, value) in inject_context(span) {
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) else {
            continue;
        };
        metadata.insert(key, value);
    }
}

/// Hex trace id of `span`, if it has a valid OpenTelemetry context.
///
/// Reading the id starts the OpenTelemetry span, so call [`set_parent`] first.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

fn set_parent_from(span: &tracing::Span, extractor: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(extractor);
    if !parent.span().span_context().is_valid() {
        return;
    }
    if let Err(err) = span.set_parent(parent) {
        tracing::debug!(target: "baton_telemetry", error = %err, "could not set remote parent");
    }
}

/// Read access to a `HashMap` carrier with case-insensitive keys, as W3C requires.
struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        })
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Runs `f` under a thread-local subscriber with an OpenTelemetry layer (no exporter).
    fn with_otel<R>(f: impl FnOnce() -> R) -> R {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn inject_extract_round_trip() {
        with_otel(|| {
            let a = tracing::info_span!("orchestrator");
            let carrier = inject_context(&a);
            let traceparent = carrier.get("traceparent").expect("traceparent injected");
            let a_trace = trace_id(&a).expect("valid trace id");
            assert_eq!(a_trace.len(), 32);
            assert!(traceparent.starts_with(&format!("00-{a_trace}-")));

            let b = tracing::info_span!(parent: None, "worker");
            set_parent(&b, &carrier);
            assert_eq!(trace_id(&b), Some(a_trace.clone()));
            // B's own traceparent carries B's span id but A's trace id.
            let b_carrier = inject_context(&b);
            assert_ne!(b_carrier.get("traceparent"), carrier.get("traceparent"));
            assert!(b_carrier["traceparent"].contains(&a_trace));
        });
    }

    #[test]
    fn headers_and_metadata_round_trip() {
        with_otel(|| {
            let client = tracing::info_span!("client");
            let mut metadata = MetadataMap::new();
            inject_into_metadata(&client, &mut metadata);
            assert!(metadata.get("traceparent").is_some());

            let headers = metadata.into_headers();
            let server = tracing::info_span!(parent: None, "server");
            set_parent_from_headers(&server, &headers);
            assert_eq!(trace_id(&server), trace_id(&client));
        });
    }

    #[test]
    fn empty_or_invalid_carrier_keeps_the_local_parent() {
        with_otel(|| {
            let outer = tracing::info_span!("outer");
            let span = tracing::info_span!(parent: &outer, "inner");
            set_parent(&span, &HashMap::new());
            let mut bad = HashMap::new();
            bad.insert("traceparent".to_owned(), "not-a-traceparent".to_owned());
            set_parent(&span, &bad);
            let outer_trace = trace_id(&outer).expect("outer has a trace");
            assert_eq!(trace_id(&span), Some(outer_trace));

            let root = tracing::info_span!(parent: None, "root");
            set_parent(&root, &bad);
            assert!(trace_id(&root).is_some(), "a root still gets its own trace");
        });
    }

    #[test]
    fn uppercase_carrier_keys_are_accepted() {
        with_otel(|| {
            let a = tracing::info_span!("a");
            let carrier: HashMap<String, String> = inject_context(&a)
                .into_iter()
                .map(|(k, v)| (k.to_uppercase(), v))
                .collect();
            let b = tracing::info_span!(parent: None, "b");
            set_parent(&b, &carrier);
            assert_eq!(trace_id(&b), trace_id(&a));
        });
    }

    #[test]
    fn without_otel_layer_nothing_is_propagated() {
        const REMOTE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let carrier = HashMap::from([(
            "traceparent".to_owned(),
            format!("00-{REMOTE_TRACE}-00f067aa0ba902b7-01"),
        )]);
        // A subscriber that records spans, as a service logging without OTLP has.
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let span = tracing::info_span!(parent: None, "plain");
            assert!(!span.is_disabled());
            set_parent(&span, &carrier);
            assert_eq!(trace_id(&span), None, "the carrier's trace is not taken up");
            assert!(inject_context(&span).is_empty());
            span.in_scope(|| {
                let child = tracing::info_span!("child");
                assert_eq!(trace_id(&child), None);
                let passed_on = inject_context(&child);
                assert!(passed_on.is_empty(), "{passed_on:?}");
            });
        });
    }
}
