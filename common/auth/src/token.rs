//! API key tokens: `bk_<id>_<secret>`. The id is public (it names the key in lists, logs and
//! audits); the secret is 256 random bits, shown once and stored only as its SHA-256, which is
//! enough for a secret of that entropy and costs nothing per call.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Role;

const PREFIX: &str = "bk_";
/// Hex digits of the id (64 bits) and of the secret (256 bits).
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 64;

/// A parsed bearer token of the API-key form. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyToken {
    pub id: String,
    secret: String,
}

impl fmt::Debug for KeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyToken")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

impl KeyToken {
    /// Whether `token` has the API-key shape (`bk_...`), so a JWT is never looked up as a key.
    pub fn looks_like(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// Parses `bk_<16 hex>_<64 hex>`; `None` for anything else.
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        (hex(id, ID_LEN) && hex(secret, SECRET_LEN)).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A new token from the operating system's random source.
    pub fn generate() -> Result<Self, RandomUnavailable> {
        let mut id = [0u8; ID_LEN / 2];
        let mut secret = [0u8; SECRET_LEN / 2];
        getrandom::fill(&mut id).map_err(|e| RandomUnavailable(e.to_string()))?;
        getrandom::fill(&mut secret).map_err(|e| RandomUnavailable(e.to_string()))?;
        Ok(Self {
            id: hex(&id),
            secret: hex(&secret),
        })
    }

    /// The stored form of the secret: hex SHA-256.
    pub fn secret_hash(&self) -> String {
        hash_secret(&self.secret)
    }

    /// Whether this token's secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &str) -> bool {
        constant_time_eq(self.secret_hash().as_bytes(), stored.as_bytes())
    }

    /// The whole bearer token. Handle with care: this is the secret.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }
}

/// The operating system could not give random bytes for a new key.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a key: the system's random source failed: {0}")]
pub struct RandomUnavailable(String);

fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key about to be stored, and the token to hand its creator once.
pub struct IssuedKey {
    pub record: baton_store::NewApiKey,
    pub token: KeyToken,
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.token.id)
            .field("tenant", &self.record.tenant)
            .finish_non_exhaustive()
    }
}

/// Longest key name accepted.
pub const MAX_KEY_NAME: usize = 200;

/// Why a key cannot be issued as asked.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("tenant: must be 1 to 100 letters, digits, `-`, `_` or `.`")]
    Tenant,
    #[error("name: longer than {MAX_KEY_NAME} characters, or holds control characters")]
    Name,
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
}

/// Whether `tenant` is a valid tenant name: 1 to 100 of `[A-Za-z0-9._-]`.
pub fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 100
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A new key of `tenant` with `role`, named `name`, made by `created_by`.
pub fn issue(
    tenant: &str,
    role: Role,
    name: &str,
    created_by: &str,
    now_micros: i64,
) -> Result<IssuedKey, IssueError> {
    if !valid_tenant(tenant) {
        return Err(IssueError::Tenant);
    }
    let name = name.trim();
    if name.chars().count() > MAX_KEY_NAME || name.chars().any(char::is_control) {
        return Err(IssueError::Name);
    }
    let token = KeyToken::generate()?;
    Ok(IssuedKey {
        record: baton_store::NewApiKey {
            id: token.id.clone(),
            tenant: tenant.to_owned(),
            role: role.as_str().to_owned(),
            name: name.to_owned(),
            secret_hash: token.secret_hash(),
            created_by: created_by.to_owned(),
            created_at_micros: now_micros,
        },
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_and_matches_only_its_hash() {
        let token = KeyToken::generate().unwrap();
        let text = token.expose();
        assert!(KeyToken::looks_like(&text));
        let parsed = KeyToken::parse(&text).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash()));
        let other = KeyToken::generate().unwrap();
        assert_ne!(other.id, token.id);
        assert!(!other.matches(&token.secret_hash()));
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let good = KeyToken::generate().unwrap().expose();
        for bad in [
            "",
            "bk_",
            "bk__",
            &good[..good.len() - 1],
            &format!("{good}0"),
            &good.to_uppercase(),
            &good.replacen("bk_", "xx_", 1),
            &good.replacen('_', "-", 2),
        ] {
            assert!(KeyToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn issue_checks_tenant_and_name() {
        assert!(matches!(
            issue("a b", Role::Admin, "", "bootstrap", 0),
            Err(IssueError::Tenant)
        ));
        assert!(matches!(
            issue("acme", Role::Admin, &"x".repeat(201), "bootstrap", 0),
            Err(IssueError::Name)
        ));
        let issued = issue("acme", Role::Viewer, " ci ", "key:1", 5).unwrap();
        assert_eq!(issued.record.name, "ci");
        assert_eq!(issued.record.role, "viewer");
        assert_eq!(issued.record.secret_hash, issued.token.secret_hash());
        assert!(!issued.record.secret_hash.contains(&issued.token.secret));
    }
}
