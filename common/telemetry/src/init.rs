//! Installs the global tracing subscriber (filter, fmt output, optional OTLP export)
//! and owns the tracer provider so spans are flushed at shutdown.

use std::time::Duration;

use baton_runtime::env::Env;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{DEFAULT_LOG_LEVEL, LogFormat, OtlpConfig, TelemetryConfig};
use crate::error::TelemetryError;

/// Instrumentation scope name of the spans Baton services produce.
const TRACER_NAME: &str = "baton";

/// Installs Baton's tracing set-up for `service`, configured from the environment.
///
/// See [`TelemetryConfig::from_env`] for the variables read.
pub fn init(service: &str) -> Result<TelemetryGuard, TelemetryError> {
    init_with(TelemetryConfig::from_env(service, &Env::os()))
}

/// Installs Baton's tracing set-up from an explicit configuration.
///
/// Always sets the global text-map propagator to W3C TraceContext. If a global
/// subscriber is already installed, returns a guard that does nothing.
/// With OTLP enabled this must run inside a Tokio runtime.
pub fn init_with(config: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    if tracing::dispatcher::has_been_set() {
        return Ok(TelemetryGuard::noop());
    }

    let (filter, filter_warning) = build_filter(&config.log_filter);
    let provider = config.otlp.as_ref().map(build_provider).transpose()?;

    let registry = tracing_subscriber::registry().with(filter);
    // `try_init` also bridges the `log` crate; it fails if either global was
    // taken concurrently. The provider is kept either way: shutting down an
    // unused provider is harmless.
    let installed = match &provider {
        Some(provider) => registry
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer(TRACER_NAME))
                    .with_filter(filter_fn(|meta| !is_exporter_internal(meta.target()))),
            )
            .with(fmt_layer(config.log_format))
            .try_init(),
        None => registry.with(fmt_layer(config.log_format)).try_init(),
    };
    if let Err(err) = installed {
        tracing::debug!(target: "baton_telemetry", error = %err, "global subscriber not (fully) installed");
    }

    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    for warning in filter_warning.iter().chain(&config.warnings) {
        tracing::warn!(target: "baton_telemetry", "{warning}");
    }
    tracing::debug!(
        target: "baton_telemetry",
        service = %config.service,
        otlp = provider.is_some(),
        "telemetry initialised"
    );

    Ok(TelemetryGuard {
        provider,
        timeout: config.shutdown_timeout,
    })
}

/// Builds the `EnvFilter` for a `LOG_LEVEL` value (a level or a full directive).
///
/// Invalid values fall back to `info`; the second element is the warning to log.
pub(crate) fn build_filter(raw: &str) -> (EnvFilter, Option<String>) {
    let raw = raw.trim();
    let raw = if raw.is_empty() {
        DEFAULT_LOG_LEVEL
    } else {
        raw
    };
    match EnvFilter::try_new(raw) {
        Ok(filter) => (filter, None),
        Err(err) => (
            EnvFilter::new(DEFAULT_LOG_LEVEL),
            Some(format!(
                "invalid LOG_LEVEL {raw:?} ({err}); falling back to {DEFAULT_LOG_LEVEL}"
            )),
        ),
    }
}

/// Targets whose spans must not become OpenTelemetry spans: the exporter's own
/// transport stack would otherwise trace its exports (a feedback loop at debug level).
const EXPORTER_INTERNAL_TARGETS: &[&str] = &["h2", "hyper", "hyper_util", "tonic", "tower"];

fn is_exporter_internal(target: &str) -> bool {
    // `opentelemetry`, `opentelemetry_sdk`, `opentelemetry-otlp`, ...
    target.starts_with("opentelemetry")
        || EXPORTER_INTERNAL_TARGETS.iter().any(|prefix| {
            target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// The stdout layer for `format`, boxed so both subscriber stacks can share it.
fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().pretty().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

/// OTLP/gRPC exporter behind a batch span processor, with Baton's resource and sampler.
fn build_provider(otlp: &OtlpConfig) -> Result<SdkTracerProvider, TelemetryError> {
    // The tonic channel spawns its connection tasks on the current runtime.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoTokioRuntime);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(otlp.export_timeout)
        .build()?;

    // `Resource::builder()` includes the SDK's env detector (`OTEL_RESOURCE_ATTRIBUTES`).
    let resource = Resource::builder()
        .with_attributes(
            otlp.resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(otlp.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();

    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(otlp.sampler.to_sampler())
        .with_resource(resource)
        .build())
}

/// Keeps the tracer provider alive; flushes and shuts it down on [`shutdown`](Self::shutdown) or drop.
#[must_use = "dropping the guard shuts telemetry down immediately"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    timeout: Duration,
}

impl TelemetryGuard {
    /// A guard that owns nothing (OTLP disabled or subscriber already installed).
    fn noop() -> Self {
        Self {
            provider: None,
            timeout: Duration::ZERO,
        }
    }

    /// Whether this guard owns a tracer provider (i.e. OTLP export is active).
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes pending spans and shuts the tracer provider down, waiting at most
    /// the configured timeout (5 s by default).
    ///
    /// Blocks the calling thread; inside a multi-thread Tokio runtime it uses
    /// `block_in_place` so the exporter's connection tasks keep running. On a
    /// current-thread runtime call it after the runtime's work is done (e.g. from
    /// `main` after `block_on`), or spans may be lost once the timeout expires.
    pub fn shutdown(mut self) {
        self.shutdown_inner();
    }

    fn shutdown_inner(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let timeout = self.timeout;
        let run = move || {
            // Shutting down the batch processor exports whatever is still queued.
            if let Err(err) = provider.shutdown_with_timeout(timeout) {
                eprintln!("baton-telemetry: tracer provider shutdown failed: {err}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run);
            }
            _ => run(),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_levels_and_directives() {
        for raw in [
            "debug",
            "info",
            "warn",
            "error",
            "",
            "baton=debug,tower=warn",
        ] {
            let (_, warning) = build_filter(raw);
            assert!(warning.is_none(), "{raw:?} should be accepted");
        }
        let (filter, warning) = build_filter("baton=loud,=");
        assert!(warning.expect("warning").contains("falling back to info"));
        assert_eq!(filter.to_string(), "info");
    }

    #[test]
    fn exporter_internals_are_not_traced() {
        assert!(is_exporter_internal("h2::proto::connection"));
        assert!(is_exporter_internal("tonic"));
        assert!(is_exporter_internal("opentelemetry_sdk"));
        assert!(is_exporter_internal("opentelemetry-otlp"));
        assert!(!is_exporter_internal("baton_orchestrator::grpc"));
        assert!(!is_exporter_internal("hyperion"));
    }

    /// Records the names of the spans it is given, and whether it was shut down.
    #[derive(Clone, Debug, Default)]
    struct Recorder {
        names: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        shut_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Recorder {
        fn names(&self) -> Vec<String> {
            self.names.lock().expect("recorder").clone()
        }

        fn was_shut_down(&self) -> bool {
            self.shut_down.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl opentelemetry_sdk::trace::SpanExporter for Recorder {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            let names = batch.into_iter().map(|span| span.name.into_owned());
            self.names.lock().expect("recorder").extend(names);
            Ok(())
        }

        fn shutdown_with_timeout(
            &self,
            _timeout: Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.shut_down
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    fn provider(recorder: &Recorder) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_batch_exporter(recorder.clone())
            .build()
    }

    #[test]
    fn shutdown_exports_the_spans_still_queued() {
        use opentelemetry::trace::{Span as _, Tracer as _};

        let recorder = Recorder::default();
        let provider = provider(&recorder);
        let guard = TelemetryGuard {
            provider: Some(provider.clone()),
            timeout: Duration::from_secs(30),
        };
        assert!(guard.is_exporting());
        provider.tracer("test").start("queued").end();
        guard.shutdown();
        assert_eq!(recorder.names(), ["queued"]);
        assert!(recorder.was_shut_down());
    }

    /// The guard of a second `init` owns nothing: shutting it down leaves the first one's
    /// provider, installed globally, exporting.
    #[test]
    fn noop_guard_shutdown_leaves_the_installed_provider_exporting() {
        use opentelemetry::trace::{Span as _, Tracer as _};

        let recorder = Recorder::default();
        let installed = provider(&recorder);
        opentelemetry::global::set_tracer_provider(installed.clone());

        let guard = TelemetryGuard::noop();
        assert!(!guard.is_exporting());
        guard.shutdown();

        opentelemetry::global::tracer("test").start("after").end();
        installed.force_flush().expect("flush");
        assert_eq!(recorder.names(), ["after"]);
        assert!(!recorder.was_shut_down());
        installed.shutdown().expect("shutdown");
    }
}
