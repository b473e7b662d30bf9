//! What every Baton service does the same way: read configuration from the environment, report
//! gRPC health, and stop gracefully on SIGTERM or SIGINT. Logging and traces: `baton-telemetry`.

pub mod args;
pub mod env;
mod health;
mod shutdown;

pub use health::spawn_health_checks;
pub use shutdown::{drained, shutdown_token, wait_for_signal};

/// The build's version, for `GetInfo` and logs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the build came from, when the build saw one (`BATON_GIT_REVISION`).
pub fn git_revision() -> &'static str {
    option_env!("BATON_GIT_REVISION").unwrap_or("unknown")
}

/// A connection URL with its password hidden, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return url.to_owned();
    };
    if at < scheme {
        return url.to_owned();
    }
    match url[scheme + 3..at].split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
