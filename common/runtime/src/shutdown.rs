//! Graceful shutdown: the first SIGTERM or SIGINT cancels a token that every task watches; a
//! second one exits at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A token cancelled at the first signal; the second signal exits the process.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down; a second signal exits at once");
        child.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}

/// Resolves `drain` after `shutdown` fires: a gRPC server given this as its shutdown signal keeps
/// answering (health reports NOT_SERVING meanwhile) so load balancers and Kubernetes readiness
/// probes see the service leave before its port closes.
pub async fn drained(shutdown: CancellationToken, drain: Duration) {
    shutdown.cancelled().await;
    if !drain.is_zero() {
        tracing::info!(
            ?drain,
            "draining: reporting NOT_SERVING before closing the port"
        );
        tokio::time::sleep(drain).await;
    }
}
