//! Auth settings from the environment: every variable, its default, and why the default is the
//! safe one.

use std::{path::PathBuf, time::Duration};

use baton_runtime::env::{ConfigError, Env};

/// How a service authenticates its callers.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `BATON_AUTH` (`enabled`, the default, or `disabled`). Disabled makes every caller an
    /// admin of any tenant; it must be set explicitly and is announced in the log and `GetInfo`.
    pub enabled: bool,
    /// `BATON_SYSTEM_TENANT` (default `default`): the tenant whose admins manage the dead
    /// letters and provision keys for other tenants. A single-tenant deployment needs nothing
    /// else; a multi-tenant one gives its own operators a tenant of their own here.
    pub system_tenant: String,
    /// `BATON_AUTH_CACHE_TTL` (default 5s): how long a replica trusts an API key it looked up.
    /// A revocation takes effect at once on the replica that revoked it and within this on others.
    pub cache_ttl: Duration,
    /// `BATON_REFLECTION` (`authenticated`, the default, or `open`): whether gRPC server
    /// reflection needs a credential. Health checks never do.
    pub reflection_open: bool,
    /// JWTs, when `BATON_JWT_JWKS_FILE` or `BATON_JWT_PUBLIC_KEY_FILE` is set.
    pub jwt: Option<JwtConfig>,
}

/// Verifying JWTs from an identity provider: signature against the configured keys, then
/// `iss`, `aud`, `exp` (and `nbf` when present), then the tenant and role claims.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// `BATON_JWT_JWKS_FILE`: a JWKS document (`{"keys": [...]}`); a token's `kid` picks the key.
    /// Or `BATON_JWT_PUBLIC_KEY_FILE`: one PEM public key (RSA, EC P-256/P-384 or Ed25519).
    pub keys: JwtKeys,
    /// `BATON_JWT_ISSUER` (required): the `iss` every token must carry.
    pub issuer: String,
    /// `BATON_JWT_AUDIENCE` (required): the `aud` every token must carry.
    pub audience: String,
    /// `BATON_JWT_TENANT_CLAIM` (default `tenant`): the claim naming the caller's tenant; a
    /// token without it is refused.
    pub tenant_claim: String,
    /// `BATON_JWT_ROLE_CLAIM` (default `role`): the claim naming the caller's role (`admin`,
    /// `operator`, `viewer`); a token without it is a viewer.
    pub role_claim: String,
    /// `BATON_JWT_LEEWAY` (default 30s): clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

#[derive(Clone, Debug)]
pub enum JwtKeys {
    Jwks(PathBuf),
    PublicKey(PathBuf),
}

impl AuthConfig {
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let bad = |name: &str, value: String, reason: &str| ConfigError {
            name: name.to_owned(),
            value,
            reason: reason.to_owned(),
        };
        let enabled = match env.var("BATON_AUTH") {
            None => true,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "enabled" | "on" | "true" => true,
                "disabled" | "off" | "false" => false,
                _ => return Err(bad("BATON_AUTH", v, "expected `enabled` or `disabled`")),
            },
        };
        let system_tenant = env.string_or("BATON_SYSTEM_TENANT", "default");
        if !crate::valid_tenant(&system_tenant) {
            return Err(bad(
                "BATON_SYSTEM_TENANT",
                system_tenant,
                "must be 1 to 100 letters, digits, `-`, `_` or `.`",
            ));
        }
        let reflection_open = match env.var("BATON_REFLECTION") {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "authenticated" => false,
                "open" => true,
                _ => {
                    return Err(bad(
                        "BATON_REFLECTION",
                        v,
                        "expected `authenticated` or `open`",
                    ));
                }
            },
        };
        let keys = match (
            env.var("BATON_JWT_JWKS_FILE"),
            env.var("BATON_JWT_PUBLIC_KEY_FILE"),
        ) {
            (Some(_), Some(v)) => {
                return Err(bad(
                    "BATON_JWT_PUBLIC_KEY_FILE",
                    v,
                    "set either BATON_JWT_JWKS_FILE or BATON_JWT_PUBLIC_KEY_FILE, not both",
                ));
            }
            (Some(path), None) => Some(JwtKeys::Jwks(path.into())),
            (None, Some(path)) => Some(JwtKeys::PublicKey(path.into())),
            (None, None) => None,
        };
        let jwt = match keys {
            None => None,
            Some(keys) => {
                let required = |name: &str| {
                    env.var(name)
                        .filter(|v| !v.trim().is_empty())
                        .ok_or_else(|| {
                            bad(name, String::new(), "required when JWTs are configured")
                        })
                };
                Some(JwtConfig {
                    keys,
                    issuer: required("BATON_JWT_ISSUER")?,
                    audience: required("BATON_JWT_AUDIENCE")?,
                    tenant_claim: env.string_or("BATON_JWT_TENANT_CLAIM", "tenant"),
                    role_claim: env.string_or("BATON_JWT_ROLE_CLAIM", "role"),
                    leeway: env.duration_or("BATON_JWT_LEEWAY", Duration::from_secs(30))?,
                })
            }
        };
        Ok(Self {
            enabled,
            system_tenant,
            cache_ttl: env.duration_or("BATON_AUTH_CACHE_TTL", Self::DEFAULT_CACHE_TTL)?,
            reflection_open,
            jwt,
        })
    }

    /// How calls are authenticated, as `GetInfo` reports it.
    pub fn mode(&self) -> &'static str {
        match (self.enabled, self.jwt.is_some()) {
            (false, _) => "disabled",
            (true, false) => "api-keys",
            (true, true) => "api-keys+jwt",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_by_default_and_errors_name_the_variable() {
        let config = AuthConfig::from_env(&Env::from_pairs([])).unwrap();
        assert!(config.enabled);
        assert_eq!(config.mode(), "api-keys");
        assert_eq!(config.system_tenant, "default");
        assert!(!config.reflection_open);
        for (name, value) in [
            ("BATON_AUTH", "maybe"),
            ("BATON_SYSTEM_TENANT", "a b"),
            ("BATON_REFLECTION", "public"),
            ("BATON_AUTH_CACHE_TTL", "soon"),
            ("BATON_JWT_JWKS_FILE", "/x.json"),
        ] {
            let error = AuthConfig::from_env(&Env::from_pairs([(name, value)]))
                .unwrap_err()
                .to_string();
            let expected = if name == "BATON_JWT_JWKS_FILE" {
                "BATON_JWT_ISSUER"
            } else {
                name
            };
            assert!(error.contains(expected), "{name}: {error}");
        }
        let disabled =
            AuthConfig::from_env(&Env::from_pairs([("BATON_AUTH", "disabled")])).unwrap();
        assert_eq!(disabled.mode(), "disabled");
    }
}
