//! Opt-in configuration for the pprof listener.
//!
//! Profiling endpoints expose internals and cost CPU, so they are off unless
//! `ENABLE_PPROF` says otherwise, and they get their own port (`PPROF_PORT`)
//! so they never share a public listener.

/// Environment variable that enables the pprof listener.
pub const ENABLE_PPROF_VAR: &str = "ENABLE_PPROF";
/// Environment variable that sets the pprof listener's port.
pub const PPROF_PORT_VAR: &str = "PPROF_PORT";

/// Whether, and on which port, a service serves pprof endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PprofConfig {
    pub enabled: bool,
    pub port: u16,
}

/// An invalid pprof setting; the message names the environment variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid {var}={value:?}: expected true/false, 1/0, yes/no or on/off")]
    InvalidBool { var: &'static str, value: String },
    #[error("invalid {var}={value:?}: expected a port number 1-65535")]
    InvalidPort { var: &'static str, value: String },
}

impl PprofConfig {
    /// Builds a config from raw values (as read from the environment).
    /// Missing or blank values fall back to disabled / `default_port`.
    pub fn from_values(
        enabled: Option<&str>,
        port: Option<&str>,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let enabled = match enabled.map(str::trim).filter(|v| !v.is_empty()) {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| ConfigError::InvalidBool {
                var: ENABLE_PPROF_VAR,
                value: v.to_owned(),
            })?,
        };
        let port = match port.map(str::trim).filter(|v| !v.is_empty()) {
            None => default_port,
            Some(v) => v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                ConfigError::InvalidPort {
                    var: PPROF_PORT_VAR,
                    value: v.to_owned(),
                }
            })?,
        };
        Ok(Self { enabled, port })
    }

    /// Reads `ENABLE_PPROF` (default false) and `PPROF_PORT` (default
    /// `default_port`) from the process environment.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        let enabled = std::env::var(ENABLE_PPROF_VAR).ok();
        let port = std::env::var(PPROF_PORT_VAR).ok();
        Self::from_values(enabled.as_deref(), port.as_deref(), default_port)
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_disabled_on_default_port() {
        let cfg = PprofConfig::from_values(None, None, 6060).unwrap();
        assert_eq!(
            cfg,
            PprofConfig {
                enabled: false,
                port: 6060
            }
        );
        let cfg = PprofConfig::from_values(Some(" "), Some(""), 6061).unwrap();
        assert_eq!(cfg.port, 6061);
        assert!(!cfg.enabled);
    }

    #[test]
    fn parses_values() {
        let cfg = PprofConfig::from_values(Some("TRUE"), Some("7070"), 6060).unwrap();
        assert_eq!(
            cfg,
            PprofConfig {
                enabled: true,
                port: 7070
            }
        );
        assert!(
            PprofConfig::from_values(Some("1"), None, 1)
                .unwrap()
                .enabled
        );
        assert!(
            !PprofConfig::from_values(Some("off"), None, 1)
                .unwrap()
                .enabled
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let err = PprofConfig::from_values(Some("maybe"), None, 6060).unwrap_err();
        assert!(err.to_string().contains("ENABLE_PPROF"), "{err}");
        for bad in ["0", "65536", "http", "-1"] {
            let err = PprofConfig::from_values(None, Some(bad), 6060).unwrap_err();
            assert!(err.to_string().contains("PPROF_PORT"), "{err}");
        }
    }
}
