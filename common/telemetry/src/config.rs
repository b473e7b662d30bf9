//! Telemetry configuration, read through [`Env`] from the standard `LOG_*` / `OTEL_*`
//! variables or built directly. Unlike other settings, a bad value here is a warning logged
//! at init, not a start-up error: logging must come up to report every other problem, and the
//! OpenTelemetry specification asks for invalid `OTEL_*` values to be logged and ignored.

use std::time::Duration;

use baton_runtime::env::Env;
use opentelemetry_sdk::trace::Sampler;

/// Default filter when `LOG_LEVEL` is unset or invalid.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// How log lines are rendered on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable multi-line output (default).
    #[default]
    Pretty,
    /// One JSON object per line, with structured fields and the current span.
    Json,
}

impl LogFormat {
    /// Parses `LOG_FORMAT`; `None` for unknown values.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "pretty" | "" => Some(Self::Pretty),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Trace sampler, mirroring the `OTEL_TRACES_SAMPLER` values of the OpenTelemetry spec.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with a ratio in `[0, 1]`.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (default).
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with a ratio in `[0, 1]`.
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    /// Parses `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    ///
    /// Unknown samplers fall back to the default and invalid ratios to `1.0`; each
    /// fallback is reported as a warning string (logged once the subscriber exists).
    pub fn parse(sampler: Option<&str>, arg: Option<&str>) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut ratio = || match arg.map(str::trim) {
            None | Some("") => 1.0,
            Some(raw) => match raw.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    warnings.push(format!(
                        "invalid OTEL_TRACES_SAMPLER_ARG {raw:?} (expected a ratio in [0, 1]); using 1.0"
                    ));
                    1.0
                }
            },
        };
        let parsed = match sampler.map(|s| s.trim().to_ascii_lowercase()) {
            None => Self::default(),
            Some(s) => match s.as_str() {
                "" | "parentbased_always_on" => Self::ParentBasedAlwaysOn,
                "always_on" => Self::AlwaysOn,
                "always_off" => Self::AlwaysOff,
                "traceidratio" => Self::TraceIdRatio(ratio()),
                "parentbased_always_off" => Self::ParentBasedAlwaysOff,
                "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(ratio()),
                other => {
                    warnings.push(format!(
                        "unknown OTEL_TRACES_SAMPLER {other:?}; using parentbased_always_on"
                    ));
                    Self::default()
                }
            },
        };
        (parsed, warnings)
    }

    /// The SDK sampler this configuration describes.
    pub fn to_sampler(self) -> Sampler {
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

/// OTLP export settings; present only when an endpoint is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// gRPC endpoint of the collector, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// `service.name` resource attribute.
    pub service_name: String,
    /// Extra resource attributes (in addition to `OTEL_RESOURCE_ATTRIBUTES`, which
    /// the SDK's environment detector always reads).
    pub resource_attributes: Vec<(String, String)>,
    /// Trace sampler.
    pub sampler: SamplerConfig,
    /// Per-export timeout of the exporter.
    pub export_timeout: Duration,
}

/// Everything [`crate::init_with`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Short service name, e.g. `orchestrator`.
    pub service: String,
    /// `EnvFilter` directive (`LOG_LEVEL`); validated at init.
    pub log_filter: String,
    /// Output format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// OTLP export, or `None` for no OpenTelemetry layer at all.
    pub otlp: Option<OtlpConfig>,
    /// Bounded wait for flushing spans on shutdown.
    pub shutdown_timeout: Duration,
    /// Problems found while reading the configuration, logged after init.
    pub warnings: Vec<String>,
}

impl TelemetryConfig {
    /// Defaults for `service`: info level, pretty logs, no OTLP export.
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            log_filter: DEFAULT_LOG_LEVEL.to_owned(),
            log_format: LogFormat::Pretty,
            otlp: None,
            shutdown_timeout: Duration::from_secs(5),
            warnings: Vec::new(),
        }
    }

    /// Reads `LOG_LEVEL`, `LOG_FORMAT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG` from `env`; empty values count as unset. Values that do not
    /// parse fall back to their defaults with a warning naming the variable.
    pub fn from_env(service: &str, env: &Env) -> Self {
        let get = |key: &str| env.var(key);
        let mut config = Self::new(service);

        if let Some(level) = get("LOG_LEVEL") {
            config.log_filter = level.trim().to_owned();
        }
        if let Some(format) = get("LOG_FORMAT") {
            match LogFormat::parse(&format) {
                Some(f) => config.log_format = f,
                None => config.warnings.push(format!(
                    "unknown LOG_FORMAT {format:?} (expected pretty or json); using pretty"
                )),
            }
        }

        let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"));
        if let Some(endpoint) = endpoint {
            let (sampler, warnings) = SamplerConfig::parse(
                get("OTEL_TRACES_SAMPLER").as_deref(),
                get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            );
            config.warnings.extend(warnings);
            config.otlp = Some(OtlpConfig {
                endpoint: endpoint.trim().to_owned(),
                service_name: get("OTEL_SERVICE_NAME")
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|| default_service_name(service)),
                resource_attributes: Vec::new(),
                sampler,
                export_timeout: Duration::from_secs(10),
            });
        }
        config
    }

    /// Enables OTLP export to `endpoint` with default settings.
    pub fn with_otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp = Some(OtlpConfig {
            endpoint: endpoint.into(),
            service_name: default_service_name(&self.service),
            resource_attributes: Vec::new(),
            sampler: SamplerConfig::default(),
            export_timeout: Duration::from_secs(10),
        });
        self
    }
}

/// `baton-<service>`, the `service.name` used when `OTEL_SERVICE_NAME` is unset.
pub fn default_service_name(service: &str) -> String {
    format!("baton-{service}")
}

/// Parses `k=v,k2=v2` (the `OTEL_RESOURCE_ATTRIBUTES` syntax), skipping malformed
/// pairs. Values are taken verbatim; the SDK's detector handles the env var itself,
/// this is for callers that hold such a string from elsewhere.
pub fn parse_resource_attributes(raw: &str) -> Vec<(String, String)> {
    raw.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), v.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> TelemetryConfig {
        TelemetryConfig::from_env("orchestrator", &Env::from_pairs(vars.iter().copied()))
    }

    #[test]
    fn defaults_without_env() {
        let c = config(&[]);
        assert_eq!(c.log_filter, "info");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.otlp.is_none());
        assert!(c.warnings.is_empty());
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
    }

    #[test]
    fn log_settings() {
        let c = config(&[("LOG_LEVEL", "debug"), ("LOG_FORMAT", "JSON")]);
        assert_eq!(c.log_filter, "debug");
        assert_eq!(c.log_format, LogFormat::Json);

        let c = config(&[("LOG_FORMAT", "xml")]);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn otlp_endpoint_and_service_name() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        let otlp = c.otlp.expect("otlp enabled");
        assert_eq!(otlp.endpoint, "http://collector:4317");
        assert_eq!(otlp.service_name, "baton-orchestrator");
        assert_eq!(otlp.sampler, SamplerConfig::ParentBasedAlwaysOn);

        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_SERVICE_NAME", "custom"),
        ]);
        let otlp = c.otlp.expect("otlp enabled");
        assert_eq!(otlp.endpoint, "http://traces:4317");
        assert_eq!(otlp.service_name, "custom");

        assert!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")])
                .otlp
                .is_none()
        );
    }

    #[test]
    fn sampler_parsing() {
        let p = |s: Option<&str>, a: Option<&str>| SamplerConfig::parse(s, a);
        assert_eq!(p(None, None).0, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(p(Some("always_on"), None).0, SamplerConfig::AlwaysOn);
        assert_eq!(p(Some("ALWAYS_OFF"), None).0, SamplerConfig::AlwaysOff);
        assert_eq!(
            p(Some("traceidratio"), Some("0.25")).0,
            SamplerConfig::TraceIdRatio(0.25)
        );
        assert_eq!(
            p(Some("traceidratio"), None).0,
            SamplerConfig::TraceIdRatio(1.0)
        );
        assert_eq!(
            p(Some("parentbased_always_off"), None).0,
            SamplerConfig::ParentBasedAlwaysOff
        );
        assert_eq!(
            p(Some("parentbased_traceidratio"), Some("0.5")).0,
            SamplerConfig::ParentBasedTraceIdRatio(0.5)
        );

        let (s, w) = p(Some("traceidratio"), Some("2"));
        assert_eq!(s, SamplerConfig::TraceIdRatio(1.0));
        assert_eq!(w.len(), 1);
        let (s, w) = p(Some("jaeger_remote"), None);
        assert_eq!(s, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(w.len(), 1);

        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ]);
        assert_eq!(
            c.otlp.expect("otlp").sampler,
            SamplerConfig::ParentBasedTraceIdRatio(0.1)
        );
    }

    #[test]
    fn bad_values_warn_naming_the_variable() {
        let c = config(&[
            ("LOG_FORMAT", "xml"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "often"),
        ]);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(
            c.otlp.expect("otlp").sampler,
            SamplerConfig::TraceIdRatio(1.0)
        );
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("LOG_FORMAT") && c.warnings[0].contains("xml"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[1].contains("OTEL_TRACES_SAMPLER_ARG") && c.warnings[1].contains("often"),
            "{:?}",
            c.warnings
        );

        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ]);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("OTEL_TRACES_SAMPLER") && c.warnings[0].contains("sometimes"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn resource_attribute_parsing() {
        assert_eq!(
            parse_resource_attributes("deployment.environment=prod, team = core,bad,=x"),
            vec![
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "core".to_owned()),
            ]
        );
        assert!(parse_resource_attributes("").is_empty());
    }
}
