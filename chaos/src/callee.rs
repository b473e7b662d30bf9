//! The outside API the chain's `http` step calls: an echo on loopback, in the suite's own
//! process, so it outlives every fault the services suffer. It counts what it answered, so the
//! report can say how often a step's request was made again (delivery is at least once).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context;
use axum::{Json, Router, extract::State, routing::post};
use serde_json::Value;
use tokio::task::JoinHandle;

/// The path the chain's `http` step posts to.
pub const ECHO_PATH: &str = "/echo";

/// The running echo API; stopped when dropped.
pub struct Callee {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    server: JoinHandle<()>,
}

impl Callee {
    /// Serves `POST /echo` on a free loopback port: the JSON body back, as it came.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the echo API on loopback")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route(ECHO_PATH, post(echo))
            .with_state(requests.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("baton-chaos: the echo API stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            requests,
            server,
        })
    }

    /// The URL the `http` step posts to.
    pub fn url(&self) -> String {
        format!("http://{}{ECHO_PATH}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn echo(State(requests): State<Arc<AtomicU64>>, Json(body): Json<Value>) -> Json<Value> {
    requests.fetch_add(1, Ordering::Relaxed);
    Json(body)
}
