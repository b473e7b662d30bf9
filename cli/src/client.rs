//! The connection to the orchestrator and the translation of its failures into messages and exit
//! codes. gRPC errors print as `error: <code>: <message>` and exit with 2, like bad usage.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use baton_auth::Bearer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::token::Token;

/// A connection that sends the caller's token on every call.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Exit code for errors: bad usage, an unreachable orchestrator, a rejected request.
pub const EXIT_ERROR: u8 = 2;

/// Adds `http://` to an address given as `host:port`.
pub fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// A channel that connects on first use, so an unreachable orchestrator surfaces as a gRPC
/// `Unavailable` status from the first call, like any other server error.
pub fn channel(addr: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(addr.to_owned())
        .with_context(|| format!("invalid orchestrator address `{addr}`"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// What the hints after an error may mention: the address and the token sent to it.
pub struct Hints<'a> {
    pub addr: &'a str,
    pub token: Option<&'a Token>,
}

/// Prints an error to stderr and returns the exit code for it.
pub fn report_error(err: &anyhow::Error, hints: &Hints<'_>) -> ExitCode {
    // A closed stdout (`baton run list | head`) is not worth a message.
    let broken_pipe = err
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    match err.chain().find_map(|e| e.downcast_ref::<tonic::Status>()) {
        Some(status) => {
            eprintln!("error: {}", status_line(status));
            for hint in hint(status.code(), hints) {
                eprintln!("hint: {hint}");
            }
        }
        None => eprintln!("error: {err:#}"),
    }
    ExitCode::from(EXIT_ERROR)
}

/// `<code>: <message>`, with the causes of a transport failure when the message leaves them out.
fn status_line(status: &tonic::Status) -> String {
    let mut line = format!("{:?}", status.code());
    let mut message = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        source = cause.source();
    }
    if !message.is_empty() {
        line.push_str(": ");
        line.push_str(&message);
    }
    line
}

/// How to get past a failure of this kind.
pub const LOGIN_HINT: &str = "pass --token, set BATON_TOKEN, or run `baton auth login`";

fn hint(code: tonic::Code, hints: &Hints<'_>) -> Vec<String> {
    let addr = hints.addr;
    let sent = hints
        .token
        .map_or_else(|| "the token".to_owned(), Token::describe);
    match code {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => vec![format!(
            "is the orchestrator running at {addr}? (set --addr or BATON_ADDR)"
        )],
        tonic::Code::Unimplemented => vec![format!("does {addr} serve the Baton API?")],
        tonic::Code::Unauthenticated => {
            let why = hints
                .token
                .and_then(|t| t.why_missing(addr))
                .unwrap_or_else(|| format!("{addr} did not accept {sent}"));
            vec![why, LOGIN_HINT.to_owned()]
        }
        tonic::Code::PermissionDenied => vec![format!(
            "{sent} may not do this at {addr}: `baton auth whoami` shows its tenant and role; \
             an admin of the tenant can create a key that may (`baton auth key create --role ...`)"
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(normalize_addr("127.0.0.1:8002"), "http://127.0.0.1:8002");
        assert_eq!(normalize_addr("http://h:1"), "http://h:1");
        assert_eq!(normalize_addr(" https://h:1 "), "https://h:1");
    }

    #[test]
    fn status_lines() {
        let status = tonic::Status::not_found("run r1 not found");
        assert_eq!(status_line(&status), "NotFound: run r1 not found");
        assert_eq!(
            status_line(&tonic::Status::invalid_argument("")),
            "InvalidArgument"
        );
    }
}
