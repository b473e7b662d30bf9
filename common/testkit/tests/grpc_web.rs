//! gRPC-Web on the orchestrator's gRPC port, as a browser sends it: HTTP/1.1, framed bodies with
//! trailers in the body, and CORS preflights answered only for the configured origins.

use std::{collections::HashMap, net::SocketAddr};

use baton_orchestrator::AllowedOrigins;
use baton_proto::v1;
use baton_testkit::{StackOptions, TestStack};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALLOWED: &str = "http://app.baton.test:5173";

struct HttpReply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One HTTP/1.1 request on a fresh connection; the reply read to its end.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// A gRPC-Web unary call: the messages and the trailers from the reply body.
async fn grpc_web_call(
    addr: SocketAddr,
    method: &str,
    request: &impl Message,
    origin: Option<&str>,
    token: Option<&str>,
) -> (HttpReply, Vec<Vec<u8>>, HashMap<String, String>) {
    let message = request.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let mut headers = vec![
        ("Content-Type", "application/grpc-web+proto"),
        ("X-Grpc-Web", "1"),
        ("Accept", "application/grpc-web+proto"),
    ];
    if let Some(origin) = origin {
        headers.push(("Origin", origin));
    }
    let bearer = token.map(|t| format!("Bearer {t}"));
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let reply = http(addr, "POST", method, &headers, &body).await;
    let (mut messages, mut trailers) = (Vec::new(), HashMap::new());
    let mut rest = reply.body.as_slice();
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let frame = &rest[5..5 + len];
        if flag & 0x80 != 0 {
            for line in std::str::from_utf8(frame).unwrap().split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    trailers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
        } else {
            messages.push(frame.to_vec());
        }
        rest = &rest[5 + len..];
    }
    (reply, messages, trailers)
}

/// A stack whose orchestrator allows gRPC-Web calls from [`ALLOWED`] only.
async fn stack_allowing_one_origin() -> TestStack {
    TestStack::start_with(StackOptions {
        grpc_web_allowed_origins: AllowedOrigins::List(vec![ALLOWED.to_owned()]),
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn unary_calls_and_errors_work_over_grpc_web() {
    let stack = stack_allowing_one_origin().await;

    let (reply, messages, trailers) = grpc_web_call(
        stack.addr,
        "/baton.v1.InfoService/GetInfo",
        &v1::GetInfoRequest {},
        Some(ALLOWED),
        Some(stack.token()),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"].starts_with("application/grpc-web"),
        "{:?}",
        reply.headers
    );
    assert_eq!(
        trailers.get("grpc-status").map(String::as_str),
        Some("0"),
        "{trailers:?}"
    );
    let info = v1::GetInfoResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(info.service, "orchestrator");
    // A browser may read the gRPC status only if CORS exposes it.
    assert_eq!(reply.headers["access-control-allow-origin"], ALLOWED);
    let exposed = reply.headers["access-control-expose-headers"].to_ascii_lowercase();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );

    let (reply, messages, trailers) = grpc_web_call(
        stack.addr,
        "/baton.v1.WorkflowService/GetWorkflow",
        &v1::GetWorkflowRequest {
            workflow_ref: "nobody/missing@1".into(),
            ..Default::default()
        },
        None,
        Some(stack.token()),
    )
    .await;
    // The status travels in the headers when there is no message ("trailers-only").
    let status = trailers
        .get("grpc-status")
        .or_else(|| reply.headers.get("grpc-status"))
        .cloned();
    let message = trailers
        .get("grpc-message")
        .or_else(|| reply.headers.get("grpc-message"))
        .cloned()
        .unwrap_or_default();
    assert!(messages.is_empty());
    assert_eq!(
        status.as_deref(),
        Some("5"),
        "NOT_FOUND expected: {trailers:?} {:?}",
        reply.headers
    );
    assert!(
        message.contains("nobody%2Fmissing") || message.contains("nobody/missing"),
        "{message}"
    );
    stack.stop().await;
}

/// The status of a gRPC-Web reply, from its trailers or (trailers-only) its headers.
fn grpc_status(reply: &HttpReply, trailers: &HashMap<String, String>) -> Option<String> {
    trailers
        .get("grpc-status")
        .or_else(|| reply.headers.get("grpc-status"))
        .cloned()
}

#[tokio::test]
async fn a_browser_origin_needs_a_key_like_any_caller() {
    let stack = stack_allowing_one_origin().await;
    for (what, token) in [
        ("no key", None),
        (
            "an unknown key",
            Some("bk_0123456789abcdef_".to_owned() + &"0".repeat(64)),
        ),
    ] {
        let (reply, messages, trailers) = grpc_web_call(
            stack.addr,
            "/baton.v1.RunService/ListRuns",
            &v1::ListRunsRequest::default(),
            Some(ALLOWED),
            token.as_deref(),
        )
        .await;
        assert!(messages.is_empty(), "{what}");
        assert_eq!(
            grpc_status(&reply, &trailers).as_deref(),
            Some("16"),
            "{what}: UNAUTHENTICATED expected: {trailers:?} {:?}",
            reply.headers
        );
        // The page can read why: CORS still answers for the allowed origin.
        assert_eq!(
            reply.headers["access-control-allow-origin"], ALLOWED,
            "{what}"
        );
    }
    let (reply, messages, trailers) = grpc_web_call(
        stack.addr,
        "/baton.v1.RunService/ListRuns",
        &v1::ListRunsRequest::default(),
        Some(ALLOWED),
        Some(stack.token()),
    )
    .await;
    assert_eq!(
        grpc_status(&reply, &trailers).as_deref(),
        Some("0"),
        "{trailers:?}"
    );
    v1::ListRunsResponse::decode(messages[0].as_slice()).unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn cors_preflight_answers_only_allowed_origins() {
    let stack = stack_allowing_one_origin().await;
    let preflight = |origin: &'static str| {
        let addr = stack.addr;
        async move {
            http(
                addr,
                "OPTIONS",
                "/baton.v1.RunService/StartRun",
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    (
                        "Access-Control-Request-Headers",
                        "content-type,x-grpc-web,x-user-agent,authorization",
                    ),
                ],
                b"",
            )
            .await
        }
    };
    let allowed = preflight(ALLOWED).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], ALLOWED);
    let headers = allowed.headers["access-control-allow-headers"].to_ascii_lowercase();
    for needed in [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "authorization",
    ] {
        assert!(headers.contains(needed), "{needed} not allowed: {headers}");
    }
    assert!(allowed.headers["access-control-allow-methods"].contains("POST"));

    let other = preflight("http://elsewhere.test").await;
    assert!(
        !other.headers.contains_key("access-control-allow-origin"),
        "an origin not configured must not be allowed: {:?}",
        other.headers
    );
    stack.stop().await;
}
