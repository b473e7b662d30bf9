//! pprof-compatible profiling endpoints for Baton services.
//!
//! Services expose these on a separate, opt-in port (see [`PprofConfig`]) so
//! that `go tool pprof http://host:port/debug/pprof/profile?seconds=30` works
//! against a running process without rebuilding it.
//!
//! Routes (all `GET`):
//! - `/debug/pprof/` — index of the endpoints below, and whether a CPU profile
//!   is being collected ([`CPU_PROFILE_IN_PROGRESS`] / [`CPU_PROFILE_IDLE`]).
//! - `/debug/pprof/profile?seconds=N` — CPU profile (gzipped pprof protobuf).
//! - `/debug/pprof/heap` — jemalloc heap profile (gzipped pprof protobuf),
//!   or `501` when heap profiling is not enabled.
//! - `/debug/pprof/threads` — text listing of the process's threads.
//! - `/debug/pprof/cmdline` — the process command line, NUL-separated.

mod config;
mod cpu;
mod error;
mod heap;
mod index;
mod procinfo;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{ENABLE_PPROF_VAR, PPROF_PORT_VAR, PprofConfig};
pub use error::PprofError;
pub use index::{CPU_PROFILE_IDLE, CPU_PROFILE_IN_PROGRESS};

/// Path prefix shared by all endpoints.
pub const BASE_PATH: &str = "/debug/pprof";

/// Builds the pprof router. In-flight CPU profiles run to completion.
pub fn router() -> Router {
    router_with_shutdown(CancellationToken::new())
}

/// Builds the router; a cancelled `shutdown` aborts in-flight CPU profiles so
/// graceful shutdown is not held up for up to 300 seconds.
fn router_with_shutdown(shutdown: CancellationToken) -> Router {
    let state = cpu::CpuState::new(shutdown);
    Router::new()
        .route("/debug/pprof", get(index::index))
        .route("/debug/pprof/", get(index::index))
        .route("/debug/pprof/profile", get(cpu::profile))
        .route("/debug/pprof/heap", get(heap::heap))
        .route("/debug/pprof/threads", get(procinfo::threads))
        .route("/debug/pprof/cmdline", get(procinfo::cmdline))
        .with_state(state)
}

/// Serves the pprof endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "pprof endpoints listening");
    }
    let app = router_with_shutdown(shutdown.child_token());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
