//! gRPC health: a service reports SERVING only while its dependencies answer, and NOT_SERVING
//! once it begins shutting down, so load balancers and Kubernetes probes stop sending it work.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

/// A dependency check: `Err` with a reason when the dependency does not answer.
pub type HealthCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Every `interval`, runs `check` and sets each of `services` (and the overall `""` service)
/// to SERVING or NOT_SERVING; sets NOT_SERVING when `shutdown` fires. Everything reports
/// NOT_SERVING until the first check passes (the reporter starts `""` as SERVING), so call this
/// before serving.
pub async fn spawn_health_checks(
    reporter: HealthReporter,
    services: Vec<String>,
    check: HealthCheck,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    set_all(&reporter, &services, ServingStatus::NotServing).await;
    tokio::spawn(async move {
        let mut last = Some(ServingStatus::NotServing);
        loop {
            let status = match check().await {
                Ok(()) => ServingStatus::Serving,
                Err(reason) => {
                    if last != Some(ServingStatus::NotServing) {
                        tracing::warn!(%reason, "dependency check failed; reporting NOT_SERVING");
                    }
                    ServingStatus::NotServing
                }
            };
            if last != Some(status) {
                set_all(&reporter, &services, status).await;
                last = Some(status);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        set_all(&reporter, &services, ServingStatus::NotServing).await;
    })
}

async fn set_all(reporter: &HealthReporter, services: &[String], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in services {
        reporter.set_service_status(service, status).await;
    }
}
