//! Per-tenant limits at the edge: a token bucket on how fast a tenant may start runs, and a cap
//! on how many runs it may watch at once, so one tenant cannot starve the others. Each replica
//! counts its own calls.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use baton_runtime::env::{ConfigError, Env};

/// The limits, from the environment.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaConfig {
    /// `BATON_START_RATE` (default 1000, `off` for none): runs a tenant may start per second on
    /// one orchestrator, on average.
    pub start_rate: Option<f64>,
    /// `BATON_START_BURST` (default twice the rate): runs a tenant may start at once before the
    /// rate applies.
    pub start_burst: f64,
    /// `BATON_WATCH_STREAMS_PER_TENANT` (default 1000, `off` for none): `WatchRun` streams a
    /// tenant may hold open at once on one orchestrator.
    pub watch_streams: Option<usize>,
}

impl QuotaConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let off = |name: &str| {
            env.var(name)
                .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0"))
        };
        let start_rate = match off("BATON_START_RATE") {
            true => None,
            false => Some(env.parse_or("BATON_START_RATE", 1000.0_f64)?),
        };
        if let Some(rate) = start_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ConfigError {
                name: "BATON_START_RATE".into(),
                value: rate.to_string(),
                reason: "must be a positive number of runs per second, or `off`".into(),
            });
        }
        let start_burst = env.parse_or("BATON_START_BURST", start_rate.unwrap_or(1.0) * 2.0)?;
        if !(start_burst.is_finite() && start_burst >= 1.0) {
            return Err(ConfigError {
                name: "BATON_START_BURST".into(),
                value: start_burst.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        let watch_streams = match off("BATON_WATCH_STREAMS_PER_TENANT") {
            true => None,
            false => Some(env.parse_or("BATON_WATCH_STREAMS_PER_TENANT", 1000usize)?),
        };
        Ok(Self {
            start_rate,
            start_burst,
            watch_streams,
        })
    }

    /// No limits.
    pub fn unlimited() -> Self {
        Self {
            start_rate: None,
            start_burst: 1.0,
            watch_streams: None,
        }
    }
}

/// A call over a limit: which, and when to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    /// `start_rate` or `watch_streams`: the metric label.
    pub limit: &'static str,
    pub message: String,
    pub retry_after: Duration,
}

impl Limited {
    /// RESOURCE_EXHAUSTED with the wait in the message and as a `google.rpc.RetryInfo` detail,
    /// which gRPC clients and retry policies read.
    pub fn into_status(self) -> tonic::Status {
        use tonic_types::{ErrorDetails, StatusExt};
        tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            self.message,
            ErrorDetails::with_retry_info(Some(self.retry_after)),
        )
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The per-tenant limits of one service.
pub struct TenantQuotas {
    config: QuotaConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl TenantQuotas {
    pub fn new(config: QuotaConfig) -> Self {
        Self {
            config,
            buckets: Mutex::default(),
            streams: Arc::default(),
        }
    }

    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// Takes one start from `tenant`'s bucket, or says how long until one is there.
    pub fn start_run(&self, tenant: &str) -> Result<(), Limited> {
        let Some(rate) = self.config.start_rate else {
            return Ok(());
        };
        let burst = self.config.start_burst;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(tenant) {
            Some(b) => b,
            None => buckets.entry(tenant.to_owned()).or_insert(Bucket {
                tokens: burst,
                at: now,
            }),
        };
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let retry_after =
            Duration::from_secs_f64((1.0 - bucket.tokens) / rate).max(Duration::from_millis(1));
        Err(Limited {
            limit: "start_rate",
            message: format!(
                "tenant `{tenant}` is starting runs faster than {rate} per second \
                 (BATON_START_RATE, burst BATON_START_BURST {burst}); retry in {} ms",
                retry_after.as_millis().max(1)
            ),
            retry_after,
        })
    }

    /// Holds one of `tenant`'s watch streams until the permit drops.
    pub fn watch(&self, tenant: &str) -> Result<StreamPermit, Limited> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = streams.entry(tenant.to_owned()).or_default();
        if let Some(max) = self.config.watch_streams
            && *open >= max
        {
            return Err(Limited {
                limit: "watch_streams",
                message: format!(
                    "tenant `{tenant}` already watches {max} runs at once on this orchestrator \
                     (BATON_WATCH_STREAMS_PER_TENANT); close one, or retry later"
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *open += 1;
        Ok(StreamPermit {
            streams: self.streams.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

/// One open watch stream of a tenant; dropping it frees the slot.
pub struct StreamPermit {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    tenant: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = streams.get_mut(&self.tenant) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies_per_tenant() {
        let quotas = TenantQuotas::new(QuotaConfig {
            start_rate: Some(10.0),
            start_burst: 3.0,
            watch_streams: Some(2),
        });
        for _ in 0..3 {
            quotas.start_run("a").unwrap();
        }
        let limited = quotas.start_run("a").unwrap_err();
        assert_eq!(limited.limit, "start_rate");
        assert!(
            limited.retry_after > Duration::ZERO
                && limited.retry_after <= Duration::from_millis(100)
        );
        assert!(
            limited.message.contains("BATON_START_RATE"),
            "{}",
            limited.message
        );
        quotas.start_run("b").unwrap();
        let status = limited.into_status();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        use tonic_types::StatusExt;
        assert!(status.get_details_retry_info().is_some());
    }

    #[test]
    fn watch_permits_are_counted_and_freed() {
        let quotas = TenantQuotas::new(QuotaConfig {
            start_rate: None,
            start_burst: 1.0,
            watch_streams: Some(2),
        });
        let one = quotas.watch("a").unwrap();
        let _two = quotas.watch("a").unwrap();
        assert_eq!(quotas.watch("a").err().unwrap().limit, "watch_streams");
        let _other = quotas.watch("b").unwrap();
        drop(one);
        quotas.watch("a").unwrap();
    }

    #[test]
    fn config_defaults_and_off() {
        let c = QuotaConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(c.start_rate, Some(1000.0));
        assert_eq!(c.start_burst, 2000.0);
        assert_eq!(c.watch_streams, Some(1000));
        let c = QuotaConfig::from_env(&Env::from_pairs([
            ("BATON_START_RATE", "off"),
            ("BATON_WATCH_STREAMS_PER_TENANT", "off"),
        ]))
        .unwrap();
        assert_eq!(
            c,
            QuotaConfig {
                start_burst: 2.0,
                ..QuotaConfig::unlimited()
            }
        );
        let e = QuotaConfig::from_env(&Env::from_pairs([("BATON_START_RATE", "-1")])).unwrap_err();
        assert!(e.to_string().contains("BATON_START_RATE"));
    }
}
