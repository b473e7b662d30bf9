//! Credentials → [`Principal`]: API keys looked up in the store (and trusted for a few seconds),
//! JWTs verified locally. Nothing here ever logs or returns a secret.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use baton_store::{ApiKeyRecord, KeyStore};
use tonic::codegen::http::HeaderMap;

use crate::{AuthConfig, KeyToken, Principal, Role, jwt::JwtVerifier};

/// Why a call was refused: the `reason` label of `baton_auth_denied_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// No `authorization` header.
    Missing,
    /// Not `Bearer <token>`, an empty token, or a token of no known shape.
    Malformed,
    /// An API key id no key has (or a wrong secret for it).
    UnknownKey,
    /// A revoked API key.
    Revoked,
    /// An expired (or not yet valid) JWT.
    Expired,
    /// A JWT whose signature, issuer, audience or claims do not check out; or JWTs not configured.
    InvalidToken,
    /// Authenticated, but the role is not enough for the call.
    Forbidden,
}

impl DenyReason {
    pub const ALL: [DenyReason; 7] = [
        Self::Missing,
        Self::Malformed,
        Self::UnknownKey,
        Self::Revoked,
        Self::Expired,
        Self::InvalidToken,
        Self::Forbidden,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::InvalidToken => "invalid_token",
            Self::Forbidden => "forbidden",
        }
    }

    /// What the caller is told: enough to fix their set-up, nothing about which keys exist.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "missing credentials: send `authorization: Bearer <token>` (an API key from \
                 `baton auth key create`, or a JWT)"
            }
            Self::Malformed => "malformed credentials: expected `authorization: Bearer <token>`",
            Self::UnknownKey | Self::Revoked => "invalid API key: unknown or revoked",
            Self::Expired => "expired token",
            Self::InvalidToken => "invalid token",
            Self::Forbidden => "permission denied",
        }
    }
}

/// A refusal that is not the caller's fault: the key store could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot check the credentials now: {0}")]
pub struct AuthUnavailable(pub String);

/// The outcome of authenticating one call that did not produce a principal.
#[derive(Debug)]
pub enum AuthFailure {
    /// The caller is refused, with the key id when one was presented (never the secret).
    Denied {
        reason: DenyReason,
        key_id: Option<String>,
    },
    Unavailable(AuthUnavailable),
}

/// Most cached key look-ups; the cache is emptied when full (keys are few; ids are random).
const CACHE_LIMIT: usize = 10_000;

struct Cached {
    key: Option<ApiKeyRecord>,
    at: Instant,
}

/// Authenticates calls for one service.
pub struct Authenticator {
    config: AuthConfig,
    keys: Arc<dyn KeyStore>,
    jwt: Option<JwtVerifier>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.config.mode())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the JWT keys, when configured.
    pub fn new(
        config: AuthConfig,
        keys: Arc<dyn KeyStore>,
    ) -> Result<Self, crate::jwt::JwtSetupError> {
        let jwt = match (&config.jwt, config.enabled) {
            (Some(jwt), true) => Some(JwtVerifier::load(jwt, &config.system_tenant)?),
            _ => None,
        };
        Ok(Self {
            config,
            keys,
            jwt,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// The principal of a call's metadata, or why there is none. With auth disabled, every call
    /// is [`Principal::anonymous`].
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        if !self.config.enabled {
            return Ok(Principal::anonymous());
        }
        let denied = |reason| AuthFailure::Denied {
            reason,
            key_id: None,
        };
        let header = headers
            .get("authorization")
            .ok_or(denied(DenyReason::Missing))?;
        let header = header.to_str().map_err(|_| denied(DenyReason::Malformed))?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(denied(DenyReason::Malformed))?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(denied(DenyReason::Malformed));
        }
        if KeyToken::looks_like(token) {
            let key = KeyToken::parse(token).ok_or(denied(DenyReason::Malformed))?;
            return self.api_key(&key).await;
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.verify(token).map_err(denied),
            Some(_) => Err(denied(DenyReason::Malformed)),
            None => Err(denied(if token.matches('.').count() == 2 {
                DenyReason::InvalidToken
            } else {
                DenyReason::Malformed
            })),
        }
    }

    async fn api_key(&self, token: &KeyToken) -> Result<Principal, AuthFailure> {
        let denied = |reason| AuthFailure::Denied {
            reason,
            key_id: Some(token.id.clone()),
        };
        let record = match self.cached(&token.id) {
            Some(record) => record,
            None => {
                let found = self
                    .keys
                    .find_api_key(&token.id)
                    .await
                    .map_err(|e| AuthFailure::Unavailable(AuthUnavailable(e.to_string())))?;
                self.remember(&token.id, found.clone());
                found
            }
        };
        let record = record.ok_or(denied(DenyReason::UnknownKey))?;
        if !token.matches(&record.secret_hash) {
            return Err(denied(DenyReason::UnknownKey));
        }
        if record.revoked_at_micros.is_some() {
            return Err(denied(DenyReason::Revoked));
        }
        let role: Role = record
            .role
            .parse()
            .map_err(|_| denied(DenyReason::InvalidToken))?;
        Ok(Principal {
            subject: format!("key:{}", record.id),
            system: role == Role::Admin && record.tenant == self.config.system_tenant,
            tenant: Some(record.tenant),
            role,
        })
    }

    fn cached(&self, id: &str) -> Option<Option<ApiKeyRecord>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(id)
            .filter(|c| c.at.elapsed() < self.config.cache_ttl)
            .map(|c| c.key.clone())
    }

    fn remember(&self, id: &str, key: Option<ApiKeyRecord>) {
        if self.config.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            id.to_owned(),
            Cached {
                key,
                at: Instant::now(),
            },
        );
    }

    /// Forgets what this replica knew of key `id` (after it was created or revoked here), so
    /// the change applies to the next call at once.
    pub fn forget(&self, id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}
