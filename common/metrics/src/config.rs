//! Whether and where a service exposes metrics, read from the environment so every service
//! accepts the same two variables.

use crate::ConfigError;

/// `ENABLE_METRICS`: `true`/`false`/`1`/`0`; unset means enabled.
pub const ENABLE_METRICS_VAR: &str = "ENABLE_METRICS";
/// `METRICS_PORT`: the port of the `/metrics` server; unset means the service's default.
pub const METRICS_PORT_VAR: &str = "METRICS_PORT";

/// Metrics exposition settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether to serve `/metrics` at all.
    pub enabled: bool,
    /// The port to serve it on.
    pub port: u16,
}

impl MetricsConfig {
    /// Reads `ENABLE_METRICS` and `METRICS_PORT`, using `default_port` when the port is unset.
    /// Empty values count as unset.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        let enabled = read_var(ENABLE_METRICS_VAR, |value| ConfigError::InvalidBool {
            var: ENABLE_METRICS_VAR,
            value,
        })?;
        let port = read_var(METRICS_PORT_VAR, |value| ConfigError::InvalidPort {
            var: METRICS_PORT_VAR,
            value,
        })?;
        Self::from_values(enabled.as_deref(), port.as_deref(), default_port)
    }

    /// Like [`MetricsConfig::from_env`], from given values instead of the process environment.
    pub fn from_values(
        enable_metrics: Option<&str>,
        metrics_port: Option<&str>,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let enabled = match non_empty(enable_metrics) {
            None => true,
            Some(value) => parse_bool(value).ok_or_else(|| ConfigError::InvalidBool {
                var: ENABLE_METRICS_VAR,
                value: value.to_owned(),
            })?,
        };
        let port = match non_empty(metrics_port) {
            None => default_port,
            Some(value) => value
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| ConfigError::InvalidPort {
                    var: METRICS_PORT_VAR,
                    value: value.to_owned(),
                })?,
        };
        Ok(Self { enabled, port })
    }
}

/// Reads a variable; a value that is not Unicode is reported through `invalid`.
fn read_var(
    name: &'static str,
    invalid: impl FnOnce(String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => {
            Err(invalid(raw.to_string_lossy().into_owned()))
        }
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parse_bool(value: &str) -> Option<bool> {
    if value == "1" || value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value == "0" || value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_unset_or_empty() {
        let expected = MetricsConfig {
            enabled: true,
            port: 9100,
        };
        assert_eq!(MetricsConfig::from_values(None, None, 9100), Ok(expected));
        assert_eq!(
            MetricsConfig::from_values(Some(""), Some("  "), 9100),
            Ok(expected)
        );
    }

    #[test]
    fn parses_flags_and_ports() {
        for (raw, enabled) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("0", false),
        ] {
            let config = MetricsConfig::from_values(Some(raw), Some("9200"), 9100).unwrap();
            assert_eq!(
                config,
                MetricsConfig {
                    enabled,
                    port: 9200
                }
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = MetricsConfig::from_values(Some("yes"), None, 9100).unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidBool {
                var: ENABLE_METRICS_VAR,
                value: "yes".into()
            }
        );
        assert!(err.to_string().contains("ENABLE_METRICS"));
        for port in ["0", "65536", "http", "-1"] {
            let err = MetricsConfig::from_values(None, Some(port), 9100).unwrap_err();
            assert_eq!(
                err,
                ConfigError::InvalidPort {
                    var: METRICS_PORT_VAR,
                    value: port.into()
                }
            );
            assert!(err.to_string().contains("METRICS_PORT"));
        }
    }
}
