//! JWTs from an identity provider a team already runs: verified against keys read once at
//! start-up, so a bad key file stops the service instead of failing every call.

use std::collections::HashMap;

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind, jwk::JwkSet,
};

use crate::{DenyReason, JwtConfig, Principal, Role, config::JwtKeys, token::valid_tenant};

/// Why the JWT configuration cannot be used; names the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("cannot read {variable} `{path}`: {source}")]
    Read {
        variable: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{variable} `{path}`: {reason}")]
    Invalid {
        variable: &'static str,
        path: String,
        reason: String,
    },
}

struct VerifyingKey {
    key: DecodingKey,
    validation: Validation,
}

/// Verifies bearer JWTs and turns their claims into a [`Principal`].
pub struct JwtVerifier {
    /// By `kid`; a key without one is under "".
    keys: HashMap<String, VerifyingKey>,
    tenant_claim: String,
    role_claim: String,
    system_tenant: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn validation(config: &JwtConfig, family: jsonwebtoken::AlgorithmFamily) -> Validation {
    let mut v = Validation::new_for_family(family);
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&[&config.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_nbf = true;
    v.leeway = config.leeway.as_secs();
    v
}

impl JwtVerifier {
    /// Reads the keys the configuration names.
    pub fn load(config: &JwtConfig, system_tenant: &str) -> Result<Self, JwtSetupError> {
        let (variable, path) = match &config.keys {
            JwtKeys::Jwks(p) => ("BATON_JWT_JWKS_FILE", p),
            JwtKeys::PublicKey(p) => ("BATON_JWT_PUBLIC_KEY_FILE", p),
        };
        let shown = path.display().to_string();
        let invalid = |reason: String| JwtSetupError::Invalid {
            variable,
            path: shown.clone(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| JwtSetupError::Read {
            variable,
            path: shown.clone(),
            source,
        })?;
        let mut keys = HashMap::new();
        match &config.keys {
            JwtKeys::Jwks(_) => {
                let set: JwkSet = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("not a JWKS document: {e}")))?;
                for jwk in &set.keys {
                    let key = DecodingKey::from_jwk(jwk)
                        .map_err(|e| invalid(format!("a key cannot be used: {e}")))?;
                    let mut validation = validation(config, key.family());
                    if let Some(alg) = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| Algorithm::try_from(a).ok())
                    {
                        validation.algorithms = vec![alg];
                    }
                    let kid = jwk.common.key_id.clone().unwrap_or_default();
                    keys.insert(kid, VerifyingKey { key, validation });
                }
                if keys.is_empty() {
                    return Err(invalid("holds no keys".to_owned()));
                }
            }
            JwtKeys::PublicKey(_) => {
                let key = DecodingKey::from_rsa_pem(&bytes)
                    .or_else(|_| DecodingKey::from_ec_pem(&bytes))
                    .or_else(|_| DecodingKey::from_ed_pem(&bytes))
                    .map_err(|_| invalid("not a PEM public key (RSA, EC or Ed25519)".to_owned()))?;
                let validation = validation(config, key.family());
                keys.insert(String::new(), VerifyingKey { key, validation });
            }
        }
        Ok(Self {
            keys,
            tenant_claim: config.tenant_claim.clone(),
            role_claim: config.role_claim.clone(),
            system_tenant: system_tenant.to_owned(),
        })
    }

    /// The principal a valid token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, DenyReason> {
        let header = decode_header(token).map_err(|_| DenyReason::Malformed)?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(DenyReason::InvalidToken);
        }
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => self.keys.get(""),
        }
        .ok_or(DenyReason::InvalidToken)?;
        let data =
            decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &key.validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                        DenyReason::Expired
                    }
                    ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) => {
                        DenyReason::Malformed
                    }
                    _ => DenyReason::InvalidToken,
                })?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(DenyReason::InvalidToken)?;
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(|v| v.as_str())
            .filter(|t| valid_tenant(t))
            .ok_or(DenyReason::InvalidToken)?;
        let role = match claims.get(&self.role_claim) {
            None => Role::Viewer,
            Some(v) => v
                .as_str()
                .and_then(|r| r.parse().ok())
                .ok_or(DenyReason::InvalidToken)?,
        };
        Ok(Principal {
            subject: format!("jwt:{subject}"),
            tenant: Some(tenant.to_owned()),
            role,
            system: role == Role::Admin && tenant == self.system_tenant,
        })
    }
}
