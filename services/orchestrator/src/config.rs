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
}

impl OrchestratorConfig {
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
        })
    }
}
