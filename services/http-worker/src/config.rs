//! The http-worker's configuration from the environment: the worker runtime's settings, plus
//! what bounds the requests steps may make.

use baton_runtime::env::{ConfigError, Env};
use baton_worker::WorkerServiceConfig;

use crate::{guard::Guard, request::Caps, secrets::Secrets};

/// gRPC health port unless `GRPC_PORT` says otherwise.
pub const DEFAULT_GRPC_PORT: u16 = 8004;

#[derive(Debug, Clone)]
pub struct HttpWorkerConfig {
    /// Redis, health port, drain and the runtime's settings ([`WorkerServiceConfig::from_env`]).
    /// `HTTP_WORKER_CONCURRENCY` (default 256), when set, is the runtime's concurrency: requests
    /// in flight at once.
    pub service: WorkerServiceConfig,
    /// `HTTP_WORKER_ALLOW` (default none): host names, addresses and blocks (`10.0.0.0/8`) the
    /// SSRF guard lets through although they are not public. `HTTP_WORKER_SSRF_GUARD=off` turns
    /// the guard off altogether (never do that where steps come from people you do not trust).
    pub guard: Guard,
    /// `HTTP_WORKER_MAX_RESPONSE_BYTES` (default 10485760, 10 MiB): the most a step's
    /// `max_response_bytes` may be. `HTTP_WORKER_MAX_REDIRECTS` (default 10): the most its
    /// `follow_redirects` may be.
    pub caps: Caps,
    /// Where `{{ secrets.NAME }}` comes from: `BATON_SECRET_<NAME>` in this process's
    /// environment, else the file `NAME` in `HTTP_WORKER_SECRETS_DIR` (default none).
    pub secrets: Secrets,
    /// `HTTP_WORKER_CA_FILE` (default none): a PEM file of certificate authorities trusted
    /// beside the system's roots, for internal APIs signed by a private CA.
    pub ca_file: Option<std::path::PathBuf>,
}

impl HttpWorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut service = WorkerServiceConfig::from_env(env, DEFAULT_GRPC_PORT)?;
        if let Some(concurrency) = env.parse::<usize>("HTTP_WORKER_CONCURRENCY")? {
            if concurrency == 0 {
                return Err(error(env, "HTTP_WORKER_CONCURRENCY", "must be at least 1"));
            }
            service.worker.concurrency = concurrency;
        }
        let guard = if env.bool_or("HTTP_WORKER_SSRF_GUARD", true)? {
            Guard::parse(&env.string_or("HTTP_WORKER_ALLOW", ""))
                .map_err(|reason| error(env, "HTTP_WORKER_ALLOW", &reason))?
        } else {
            Guard::off()
        };
        let caps = Caps {
            max_response_bytes: env.parse_or("HTTP_WORKER_MAX_RESPONSE_BYTES", 10 * 1024 * 1024)?,
            max_redirects: env.parse_or("HTTP_WORKER_MAX_REDIRECTS", 10)?,
        };
        if caps.max_response_bytes == 0 {
            return Err(error(
                env,
                "HTTP_WORKER_MAX_RESPONSE_BYTES",
                "must be at least 1",
            ));
        }
        let secrets = Secrets {
            dir: env
                .var("HTTP_WORKER_SECRETS_DIR")
                .filter(|d| !d.trim().is_empty())
                .map(Into::into),
        };
        Ok(Self {
            service,
            guard,
            caps,
            secrets,
            ca_file: env
                .var("HTTP_WORKER_CA_FILE")
                .filter(|f| !f.trim().is_empty())
                .map(Into::into),
        })
    }
}

fn error(env: &Env, name: &str, reason: &str) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        value: env.var(name).unwrap_or_default(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_guard_on_with_nothing_allowed() {
        let config = HttpWorkerConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(config.guard, Guard::default());
        assert_eq!(config.caps.max_response_bytes, 10 * 1024 * 1024);
        assert_eq!(config.caps.max_redirects, 10);
        assert_eq!(config.service.grpc_port, DEFAULT_GRPC_PORT);
        assert_eq!(config.service.worker.concurrency, 256);
    }

    #[test]
    fn settings_are_read_and_bad_ones_named() {
        let env = Env::from_pairs([
            ("HTTP_WORKER_ALLOW", "127.0.0.1,api.internal"),
            ("HTTP_WORKER_CONCURRENCY", "32"),
            ("HTTP_WORKER_MAX_RESPONSE_BYTES", "2048"),
        ]);
        let config = HttpWorkerConfig::from_env(&env).unwrap();
        assert!(config.guard.host_allowed("api.internal"));
        assert_eq!(config.service.worker.concurrency, 32);
        assert_eq!(config.caps.max_response_bytes, 2048);
        let off = Env::from_pairs([("HTTP_WORKER_SSRF_GUARD", "off")]);
        assert_eq!(
            HttpWorkerConfig::from_env(&off).unwrap().guard,
            Guard::off()
        );
        for (name, value) in [
            ("HTTP_WORKER_ALLOW", "10.0.0.0/99"),
            ("HTTP_WORKER_CONCURRENCY", "0"),
            ("HTTP_WORKER_MAX_RESPONSE_BYTES", "lots"),
        ] {
            let e = HttpWorkerConfig::from_env(&Env::from_pairs([(name, value)])).unwrap_err();
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }
}
