//! The HTTP server the http scenario's steps call, on loopback in the bench's own process, so the
//! figures are the http-worker's and the engine's rather than a network's or a remote API's. It
//! counts the requests it answers, so retries and duplicate deliveries show.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long the server may take to close its connections when stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running loopback server; dropping it without [`Loopback::stop`] aborts it.
pub struct Loopback {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Loopback {
    /// Binds 127.0.0.1 on a free port and serves `GET /item/{n}` → `{"item": n, "ok": true}`.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot bind the loopback HTTP server")?;
        let addr = listener
            .local_addr()
            .context("the loopback HTTP server has no address")?;
        let requests = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/item/{n}", get(item))
            .with_state(requests.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            requests,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for an item answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops taking connections and waits, for a while, until the open ones are closed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(STOP_TIMEOUT, &mut self.task)
            .await
            .with_context(|| {
                format!("the loopback HTTP server did not stop within {STOP_TIMEOUT:?}")
            })?
            .context("the loopback HTTP server panicked")?
            .context("the loopback HTTP server failed")
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn item(State(requests): State<Arc<AtomicU64>>, Path(n): Path<u64>) -> Json<Value> {
    requests.fetch_add(1, Ordering::Relaxed);
    Json(json!({ "item": n, "ok": true }))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// One HTTP/1.1 request on a fresh connection; the whole response as text.
    async fn get(addr: &str, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        let addr = addr.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn answers_items_and_counts_them() {
        let server = Loopback::start().await.unwrap();
        let url = server.base_url();
        let addr = url.strip_prefix("http://").unwrap().to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "{url}");

        let response = get(&addr, "/item/7").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("application/json"), "{response}");
        assert!(response.ends_with(r#"{"item":7,"ok":true}"#), "{response}");
        get(&addr, "/item/8").await;
        // Neither another path nor a bad item is counted.
        assert!(get(&addr, "/other").await.starts_with("HTTP/1.1 404"));
        assert!(get(&addr, "/item/x").await.starts_with("HTTP/1.1 400"));
        assert_eq!(server.requests(), 2);

        server.stop().await.unwrap();
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    }
}
