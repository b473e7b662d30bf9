//! Opt-in configuration for the pprof listener.
//!
//! Profiling endpoints expose internals and cost CPU, so they are off unless
//! `ENABLE_PPROF` says otherwise, and they get their own port (`PPROF_PORT`)
//! so they never share a public listener.

use baton_runtime::env::{ConfigError, Env};

/// Environment variable that enables the pprof listener.
pub const ENABLE_PPROF_VAR: &str = "ENABLE_PPROF";
/// Environment variable that sets the pprof listener's port (0: any free port, which is logged).
pub const PPROF_PORT_VAR: &str = "PPROF_PORT";

/// Whether, and on which port, a service serves pprof endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PprofConfig {
    pub enabled: bool,
    pub port: u16,
}

impl PprofConfig {
    /// Reads `ENABLE_PPROF` (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; default false) and
    /// `PPROF_PORT` (default `default_port`) from `env`. Blank values count as unset; a bad
    /// value is an error naming its variable.
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: env.bool_or(ENABLE_PPROF_VAR, false)?,
            port: env.parse_or(PPROF_PORT_VAR, default_port)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)], default_port: u16) -> Result<PprofConfig, ConfigError> {
        PprofConfig::from_env(&Env::from_pairs(pairs.iter().copied()), default_port)
    }

    #[test]
    fn defaults_to_disabled_on_default_port() {
        let cfg = read(&[], 6060).unwrap();
        assert_eq!(
            cfg,
            PprofConfig {
                enabled: false,
                port: 6060
            }
        );
        let cfg = read(&[(ENABLE_PPROF_VAR, " "), (PPROF_PORT_VAR, "")], 6061).unwrap();
        assert_eq!(cfg.port, 6061);
        assert!(!cfg.enabled);
    }

    #[test]
    fn parses_values() {
        let cfg = read(
            &[(ENABLE_PPROF_VAR, "TRUE"), (PPROF_PORT_VAR, "7070")],
            6060,
        )
        .unwrap();
        assert_eq!(
            cfg,
            PprofConfig {
                enabled: true,
                port: 7070
            }
        );
        assert!(read(&[(ENABLE_PPROF_VAR, "1")], 1).unwrap().enabled);
        assert!(!read(&[(ENABLE_PPROF_VAR, "off")], 1).unwrap().enabled);
    }

    #[test]
    fn port_zero_means_any_free_port() {
        assert_eq!(read(&[(PPROF_PORT_VAR, "0")], 6060).unwrap().port, 0);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = read(&[(ENABLE_PPROF_VAR, "maybe")], 6060).unwrap_err();
        assert_eq!(err.name, ENABLE_PPROF_VAR);
        assert!(err.to_string().contains("ENABLE_PPROF"), "{err}");
        for bad in ["65536", "http", "-1"] {
            let err = read(&[(PPROF_PORT_VAR, bad)], 6060).unwrap_err();
            assert_eq!(
                (err.name.as_str(), err.value.as_str()),
                (PPROF_PORT_VAR, bad)
            );
            assert!(err.to_string().contains("PPROF_PORT"), "{err}");
        }
    }
}
