//! Orchestrator configuration from the environment. Every variable, its default and why.

use baton_runtime::env::{ConfigError, Env};

#[derive(Clone, Debug)]
pub struct OrchestratorConfig {
    /// `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/baton`).
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` (default 20): API calls are short, so a small pool serves many.
    pub database_max_connections: u32,
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub redis_url: String,
    /// `BATON_REDIS_PREFIX` (default `baton`); must match the runner's.
    pub redis_prefix: String,
    /// `GRPC_PORT` (default 8002): the public API, health and reflection.
    pub grpc_port: u16,
    /// `HTTP_PORT` (default 8081): `/health` and the raw-signal JSON `/metrics`.
    pub http_port: u16,
    /// `BATON_EXTRA_KINDS` (comma-separated, default none): step kinds served by workers outside
    /// the runner, accepted at registration besides the built-ins.
    pub extra_kinds: Vec<String>,
    /// `GRPC_WEB_ALLOWED_ORIGINS` (default none): browser origins allowed to call the API over
    /// gRPC-Web (CORS), comma-separated (`https://app.example.com,http://localhost:5173`), or
    /// `*` for any. gRPC-Web itself is always accepted on the gRPC port; without an allowed
    /// origin only same-origin pages and non-browser clients can use it.
    pub grpc_web_allowed_origins: AllowedOrigins,
    /// `SHUTDOWN_DRAIN_DELAY` (default 0s): after SIGTERM, how long the API keeps answering while
    /// health reports NOT_SERVING, before the port closes (set it above the readiness probe's
    /// period so balancers stop routing here first).
    pub shutdown_drain: std::time::Duration,
    /// `BATON_MAX_INPUTS_BYTES` (default 1 MiB): the largest `inputs_json` StartRun accepts.
    /// Inputs are stored with the run and read by every step, so a bound keeps one call from
    /// filling the database or a batch; gRPC's own 4 MiB message limit applies above it.
    pub max_inputs_bytes: usize,
    /// How callers authenticate (`BATON_AUTH`, `BATON_JWT_*`, `BATON_SYSTEM_TENANT`,
    /// `BATON_AUTH_CACHE_TTL`, `BATON_REFLECTION`): see [`baton_auth::AuthConfig`].
    pub auth: baton_auth::AuthConfig,
    /// Per-tenant limits (`BATON_START_RATE`, `BATON_START_BURST`,
    /// `BATON_WATCH_STREAMS_PER_TENANT`): see [`baton_auth::QuotaConfig`].
    pub quotas: baton_auth::QuotaConfig,
    /// gRPC edge limits (`BATON_GRPC_MAX_MESSAGE_BYTES`, `BATON_GRPC_MAX_CONCURRENT_STREAMS`,
    /// `BATON_GRPC_CONCURRENCY_PER_CONNECTION`, `BATON_GRPC_REQUEST_TIMEOUT`, keepalive): see
    /// [`baton_service::GrpcEdge`].
    pub edge: baton_service::GrpcEdge,
}

/// Which browser origins may call the API over gRPC-Web.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// No cross-origin calls.
    #[default]
    None,
    /// Any origin (`*`): for development.
    Any,
    /// Exactly these origins (`scheme://host[:port]`).
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses the `GRPC_WEB_ALLOWED_ORIGINS` form: empty, `*`, or comma-separated origins.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Self::None);
        }
        if value == "*" {
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("origin {origin:?} must start with http:// or https://"))?;
            if rest.is_empty() || rest.contains('/') {
                return Err(format!(
                    "origin {origin:?} must be scheme://host[:port] with no path"
                ));
            }
            if origin.parse::<tonic::codegen::http::HeaderValue>().is_err() {
                return Err(format!("origin {origin:?} is not a valid header value"));
            }
            origins.push(origin.to_owned());
        }
        Ok(Self::List(origins))
    }
}

impl OrchestratorConfig {
    /// The default of `BATON_MAX_INPUTS_BYTES`.
    pub const DEFAULT_MAX_INPUTS_BYTES: usize = 1024 * 1024;

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: env.string_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baton"),
            database_max_connections: env.parse_or("DATABASE_MAX_CONNECTIONS", 20)?,
            redis_url: env.string_or("REDIS_URL", "redis://127.0.0.1:6379"),
            redis_prefix: env.string_or("BATON_REDIS_PREFIX", "baton"),
            grpc_port: env.parse_or("GRPC_PORT", 8002)?,
            http_port: env.parse_or("HTTP_PORT", 8081)?,
            extra_kinds: env
                .var("BATON_EXTRA_KINDS")
                .map(|v| {
                    v.split(',')
                        .map(|k| k.trim().to_owned())
                        .filter(|k| !k.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            grpc_web_allowed_origins: match env.var("GRPC_WEB_ALLOWED_ORIGINS") {
                None => AllowedOrigins::None,
                Some(value) => AllowedOrigins::parse(&value).map_err(|reason| ConfigError {
                    name: "GRPC_WEB_ALLOWED_ORIGINS".to_owned(),
                    value,
                    reason,
                })?,
            },
            shutdown_drain: env.duration_or("SHUTDOWN_DRAIN_DELAY", std::time::Duration::ZERO)?,
            max_inputs_bytes: env
                .parse_or("BATON_MAX_INPUTS_BYTES", Self::DEFAULT_MAX_INPUTS_BYTES)?,
            auth: baton_auth::AuthConfig::from_env(env)?,
            quotas: baton_auth::QuotaConfig::from_env(env)?,
            edge: baton_service::GrpcEdge::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins_parse() {
        assert_eq!(AllowedOrigins::parse("").unwrap(), AllowedOrigins::None);
        assert_eq!(AllowedOrigins::parse(" * ").unwrap(), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse("https://app.example.com, http://localhost:5173").unwrap(),
            AllowedOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:5173".into()
            ])
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
            "https://",
        ] {
            let error = AllowedOrigins::parse(bad).unwrap_err();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn a_bad_origin_names_the_variable() {
        let env = Env::from_pairs([("GRPC_WEB_ALLOWED_ORIGINS", "example.com")]);
        let error = OrchestratorConfig::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("GRPC_WEB_ALLOWED_ORIGINS"), "{error}");
        let env = Env::from_pairs([("SHUTDOWN_DRAIN_DELAY", "soon")]);
        let error = OrchestratorConfig::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("SHUTDOWN_DRAIN_DELAY"), "{error}");
        let env = Env::from_pairs([("BATON_MAX_INPUTS_BYTES", "1MiB")]);
        let error = OrchestratorConfig::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("BATON_MAX_INPUTS_BYTES"), "{error}");
    }
}
