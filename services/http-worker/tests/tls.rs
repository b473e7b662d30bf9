//! `https` steps: TLS with an authority from `HTTP_WORKER_CA_FILE` beside the system's roots,
//! and HTTP/2 when the server offers it (ALPN). The server is the test's own, on loopback, with
//! a certificate it made.

use std::{convert::Infallible, sync::Arc, time::Duration};

use baton_http_worker::HttpWorkerConfig;
use baton_proto::v1::RunStatus;
use baton_runtime::env::Env;
use baton_testkit::{StackOptions, TestStack, output, status, step};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// An HTTP/2-only TLS server answering with the protocol version it saw; returns its port and
/// the PEM of its self-signed certificate.
async fn h2_server() -> (u16, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = made.cert.pem();
    let cert = made.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                    let body = format!(r#"{{"version": "{:?}"}}"#, request.version());
                    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, cert_pem)
}

#[tokio::test]
async fn https_with_a_private_authority_speaks_http2_when_offered() {
    let (port, cert_pem) = h2_server().await;
    let dir = std::env::temp_dir().join(format!("baton-http-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    let ca_text = ca.display().to_string();

    let stack = TestStack::start_with(StackOptions {
        extra_kinds: vec!["http".to_owned()],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let config = HttpWorkerConfig::from_env(&Env::from_pairs([
        ("HTTP_WORKER_ALLOW", "localhost"),
        ("HTTP_WORKER_CA_FILE", ca_text.as_str()),
    ]))
    .unwrap();
    let (queue, token) = (stack.queue.clone(), stop.clone());
    let metrics = Arc::new(baton_metrics::Metrics::new().unwrap());
    tokio::spawn(async move {
        baton_http_worker::serve(queue, config, Default::default(), metrics, token)
            .await
            .unwrap();
    });
    stack
        .register(&format!(
            "owner: t\nname: tls\nversion: 1\nsteps:\n  - {{id: call, kind: http, input: {{url: 'https://localhost:{port}/'}}}}\n"
        ))
        .await
        .unwrap();
    let run = stack.start_run("t/tls@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    assert_eq!(
        output(step(&run, "call"))["body"],
        json!({"version": "HTTP/2.0"})
    );
    stop.cancel();
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreadable_ca_file_is_named_at_start() {
    let config = HttpWorkerConfig::from_env(&Env::from_pairs([(
        "HTTP_WORKER_CA_FILE",
        "/nonexistent/ca.pem",
    )]))
    .unwrap();
    let metrics = Arc::new(baton_metrics::Metrics::new().unwrap());
    let dir = std::env::temp_dir().join(format!("baton-http-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let queue: Arc<dyn baton_queue::Queue> = Arc::new(
        baton_queue::SqliteQueue::open(dir.join("queue.db"))
            .await
            .unwrap(),
    );
    let e = baton_http_worker::pool(queue, &config, metrics)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("HTTP_WORKER_CA_FILE: cannot read /nonexistent/ca.pem"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
