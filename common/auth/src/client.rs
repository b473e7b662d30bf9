//! The client side: an interceptor that sends a bearer token on every call, for the CLI, the
//! benchmark and tests. The header is marked sensitive so transports never print it.

use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
};

/// Adds `authorization: Bearer <token>` to each call; with no token, sends none.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(***)"
        } else {
            "Bearer(none)"
        })
    }
}

/// A token that cannot travel in a header (control characters or non-ASCII).
#[derive(Debug, thiserror::Error)]
#[error("the token holds characters a header cannot carry")]
pub struct InvalidToken;

impl Bearer {
    pub fn new(token: &str) -> Result<Self, InvalidToken> {
        let token = token.trim();
        if token.is_empty() {
            return Ok(Self(None));
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| InvalidToken)?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }

    pub fn none() -> Self {
        Self(None)
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
