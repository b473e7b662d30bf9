//! Whether and where a service exposes metrics, read from the environment so every service
//! accepts the same two variables.

use baton_runtime::env::{ConfigError, Env};

/// `ENABLE_METRICS`: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); unset means enabled.
pub const ENABLE_METRICS_VAR: &str = "ENABLE_METRICS";
/// `METRICS_PORT`: the port of the `/metrics` server; unset means the service's default, 0 any
/// free port (the bound address is logged).
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
    /// Reads `ENABLE_METRICS` and `METRICS_PORT` from `env`, using `default_port` when the port
    /// is unset. Empty values count as unset; a bad value is an error naming its variable.
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: env.bool_or(ENABLE_METRICS_VAR, true)?,
            port: env.parse_or(METRICS_PORT_VAR, default_port)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<MetricsConfig, ConfigError> {
        MetricsConfig::from_env(&Env::from_pairs(pairs.iter().copied()), 9100)
    }

    #[test]
    fn defaults_when_unset_or_empty() {
        let expected = MetricsConfig {
            enabled: true,
            port: 9100,
        };
        assert_eq!(read(&[]).unwrap(), expected);
        assert_eq!(
            read(&[(ENABLE_METRICS_VAR, ""), (METRICS_PORT_VAR, "  ")]).unwrap(),
            expected
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
            let config = read(&[(ENABLE_METRICS_VAR, raw), (METRICS_PORT_VAR, "9200")]).unwrap();
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
    fn port_zero_means_any_free_port() {
        assert_eq!(read(&[(METRICS_PORT_VAR, "0")]).unwrap().port, 0);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = read(&[(ENABLE_METRICS_VAR, "maybe")]).unwrap_err();
        assert_eq!(
            (err.name.as_str(), err.value.as_str()),
            (ENABLE_METRICS_VAR, "maybe")
        );
        assert!(err.to_string().contains("ENABLE_METRICS"), "{err}");
        for port in ["65536", "http", "-1"] {
            let err = read(&[(METRICS_PORT_VAR, port)]).unwrap_err();
            assert_eq!(
                (err.name.as_str(), err.value.as_str()),
                (METRICS_PORT_VAR, port)
            );
            assert!(err.to_string().contains("METRICS_PORT"), "{err}");
        }
    }
}
