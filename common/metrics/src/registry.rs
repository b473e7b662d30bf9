//! The one [`Metrics`] handle a service creates at start-up and shares (`Arc<Metrics>`) with its
//! engine, stores, queue consumers and gRPC layer.

use prometheus::{Encoder, Registry, TextEncoder};

use crate::MetricsError;
use crate::auth::AuthMetrics;
use crate::grpc::GrpcServerMetrics;
use crate::infra::InfraMetrics;
use crate::orchestration::{OrchestrationMetrics, RunOutcome};
use crate::outbound::OutboundMetrics;
use crate::recovery::RecoveryMetrics;
use crate::retention::RetentionMetrics;

/// Every Baton metric, registered in a private [`Registry`].
///
/// Recording methods never fail: label values are free-form strings and the families are
/// created once in [`Metrics::new`].
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    orchestration: OrchestrationMetrics,
    infra: InfraMetrics,
    retention: RetentionMetrics,
    recovery: RecoveryMetrics,
    auth: AuthMetrics,
    outbound: OutboundMetrics,
    pub(crate) grpc: GrpcServerMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates a registry holding the orchestration, gRPC, queue, store and (on Linux) process
    /// metrics.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let orchestration = OrchestrationMetrics::register(&registry)?;
        let infra = InfraMetrics::register(&registry)?;
        let retention = RetentionMetrics::register(&registry)?;
        let recovery = RecoveryMetrics::register(&registry)?;
        let auth = AuthMetrics::register(&registry)?;
        let outbound = OutboundMetrics::register(&registry)?;
        let grpc = GrpcServerMetrics::register(&registry)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            orchestration,
            infra,
            retention,
            recovery,
            auth,
            outbound,
            grpc,
        })
    }

    /// Counts a call refused by the auth layer, by reason (`baton_auth_denied_total`).
    pub fn auth_denied(&self, reason: &str) {
        self.auth.denied(reason);
    }

    /// Counts a call refused by a per-tenant limit (`baton_requests_limited_total`).
    pub fn request_limited(&self, limit: &str) {
        self.auth.limited(limit);
    }

    /// Counts an API key `created` or `revoked` (`baton_api_key_changes_total`).
    pub fn api_key_changed(&self, action: &str) {
        self.auth.key_changed(action);
    }

    /// Counts a run of `definition` (`owner/name@version`) as `started`.
    pub fn run_started(&self, definition: &str) {
        self.orchestration.run_started(definition);
    }

    /// Counts a finished run and observes its start-to-end duration. Cancelled and timed-out
    /// runs are recorded with status `aborted`.
    pub fn run_ended(&self, definition: &str, status: RunOutcome, duration_secs: f64) {
        self.orchestration
            .run_ended(definition, status, duration_secs);
    }

    /// Observes how long a step ran, with status `completed` or `failed`.
    pub fn step_ended(&self, definition: &str, step: &str, succeeded: bool, duration_secs: f64) {
        self.orchestration
            .step_ended(definition, step, succeeded, duration_secs);
    }

    /// Counts run starts held back by admission control (`baton_run_starts_held_total`).
    pub fn run_starts_held(&self, n: u64) {
        self.orchestration.starts_held(n);
    }

    /// Observes how long a step waited between being queued and starting to run.
    pub fn step_queued_for(&self, definition: &str, step: &str, secs: f64) {
        self.orchestration.step_queued_for(definition, step, secs);
    }

    /// Sets the depth and pending (delivered, unacknowledged) gauges of `queue`.
    pub fn set_queue(&self, queue: &str, depth: u64, pending: u64) {
        self.infra.set_queue(queue, depth, pending);
    }

    /// Sets the number of dead-lettered messages.
    pub fn set_dead_letters(&self, n: u64) {
        self.infra.set_dead_letters(n);
    }

    /// Observes the latency of one Postgres operation (e.g. `insert_run`).
    pub fn observe_postgres(&self, op: &str, secs: f64) {
        self.infra.observe_postgres(op, secs);
    }

    /// Observes the latency of one Redis operation (e.g. `xadd`).
    pub fn observe_redis(&self, op: &str, secs: f64) {
        self.infra.observe_redis(op, secs);
    }

    /// Counts steps dispatched again because their job was lost.
    pub fn steps_redispatched(&self, n: u64) {
        self.recovery.steps_redispatched(n);
    }

    /// Counts reports turned away for a stale lease; `report` is `started`, `result` or
    /// `heartbeat`.
    pub fn reports_fenced(&self, report: &str, n: u64) {
        self.recovery.reports_fenced(report, n);
    }

    /// Counts expired leases extended because their job was still in the queue.
    pub fn leases_renewed(&self, n: u64) {
        self.recovery.leases_renewed(n);
    }

    /// Counts an http step's request that got an answer of `class` (`2xx`, ...) or none
    /// (`none`), and observes how long it took.
    pub fn http_request(&self, class: &str, secs: f64) {
        self.outbound.request(class, secs);
    }

    /// Counts response body bytes an http step read.
    pub fn http_response_bytes(&self, n: u64) {
        self.outbound.response_bytes(n);
    }

    /// Counts a request the SSRF guard refused, by `reason`.
    pub fn http_blocked(&self, reason: &str) {
        self.outbound.blocked(reason);
    }

    /// Counts finished runs deleted by retention.
    pub fn runs_deleted(&self, n: u64) {
        self.retention.runs_deleted(n);
    }

    /// Counts idle consumers removed from the queue's groups.
    pub fn consumers_removed(&self, n: u64) {
        self.retention.consumers_removed(n);
    }

    /// Counts upkeep done on a table; `action` is `analyze` or `vacuum`.
    pub fn db_maintenance(&self, table: &str, action: &str) {
        self.retention.db_maintenance(table, action);
    }

    /// Renders every metric in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(%error, "encoding metrics failed; the scrape is incomplete");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The underlying registry, for registering service-specific metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
