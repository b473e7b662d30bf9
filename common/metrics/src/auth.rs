//! The audit trail in figures: calls refused by the auth layer, calls turned away by a tenant's
//! limits, and API keys created and revoked. Labels carry reasons, never principals or secrets.

use prometheus::{IntCounterVec, Opts, Registry};

use crate::MetricsError;

/// Calls refused before their handler ran, by `reason` (`missing`, `malformed`, `unknown_key`,
/// `revoked`, `expired`, `invalid_token`, `forbidden`).
pub const BATON_AUTH_DENIED_TOTAL: &str = "baton_auth_denied_total";
/// Calls answered RESOURCE_EXHAUSTED by a per-tenant limit, by `limit` (`start_rate`,
/// `watch_streams`).
pub const BATON_REQUESTS_LIMITED_TOTAL: &str = "baton_requests_limited_total";
/// API keys created or revoked, by `action` (`created`, `revoked`).
pub const BATON_API_KEY_CHANGES_TOTAL: &str = "baton_api_key_changes_total";

/// The `reason` values of [`BATON_AUTH_DENIED_TOTAL`], present from the first scrape.
pub const DENY_REASONS: [&str; 7] = [
    "missing",
    "malformed",
    "unknown_key",
    "revoked",
    "expired",
    "invalid_token",
    "forbidden",
];

#[derive(Clone)]
pub(crate) struct AuthMetrics {
    denied: IntCounterVec,
    limited: IntCounterVec,
    key_changes: IntCounterVec,
}

impl AuthMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let denied = IntCounterVec::new(
            Opts::new(
                BATON_AUTH_DENIED_TOTAL,
                "Calls refused by authentication or authorization",
            ),
            &["reason"],
        )?;
        let limited = IntCounterVec::new(
            Opts::new(
                BATON_REQUESTS_LIMITED_TOTAL,
                "Calls refused by a per-tenant limit",
            ),
            &["limit"],
        )?;
        let key_changes = IntCounterVec::new(
            Opts::new(BATON_API_KEY_CHANGES_TOTAL, "API keys created or revoked"),
            &["action"],
        )?;
        registry.register(Box::new(denied.clone()))?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(key_changes.clone()))?;
        for reason in DENY_REASONS {
            denied.with_label_values(&[reason]);
        }
        for limit in ["start_rate", "watch_streams"] {
            limited.with_label_values(&[limit]);
        }
        for action in ["created", "revoked"] {
            key_changes.with_label_values(&[action]);
        }
        Ok(Self {
            denied,
            limited,
            key_changes,
        })
    }

    pub(crate) fn denied(&self, reason: &str) {
        self.denied.with_label_values(&[reason]).inc();
    }

    pub(crate) fn limited(&self, limit: &str) {
        self.limited.with_label_values(&[limit]).inc();
    }

    pub(crate) fn key_changed(&self, action: &str) {
        self.key_changes.with_label_values(&[action]).inc();
    }
}
