//! Without an OTLP endpoint `init` installs logging only: JSON lines on stdout and no
//! OpenTelemetry layer, so nothing is propagated. `init` sets process-global state once, so the
//! body runs in a child process of this test binary and the test reads what it printed.

use std::collections::HashMap;
use std::process::Command;

use baton_telemetry::{
    LogFormat, TelemetryConfig, TelemetryError, init_with, inject_context, set_parent, trace_id,
};

const TEST: &str = "logging_only_init_writes_json_and_propagates_nothing";
/// Set in the child, which runs the body instead of spawning again.
const CHILD: &str = "BATON_TELEMETRY_INIT_CHILD";
const REMOTE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn logging_only_init_writes_json_and_propagates_nothing() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "child ran the test: {stdout}");

    // libtest's own "test ... " may precede the first log line.
    let json: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find(r#"{"timestamp""#).map(|at| &l[at..]))
        .collect();
    let line = |message: &str| {
        json.iter()
            .find(|l| l.contains(&format!(r#""message":"{message}"#)))
            .unwrap_or_else(|| panic!("no JSON line {message:?} in:\n{stdout}"))
    };
    // An invalid LOG_LEVEL falls back to info, and says so.
    let warning = line("invalid LOG_LEVEL");
    assert!(warning.contains(r#""level":"WARN""#), "{warning}");
    assert!(warning.contains("falling back to info"), "{warning}");
    // Events are JSON with their fields and the current span.
    let event = line("logged as json");
    assert!(event.contains(r#""level":"INFO""#), "{event}");
    assert!(event.contains(r#""attempt":1"#), "{event}");
    assert!(
        event.contains(r#""span":{"step.id":"s1","name":"job"}"#),
        "{event}"
    );
    assert!(
        !stdout.contains("hidden at debug"),
        "debug is below the fallback level: {stdout}"
    );
    // A second init, and shutting down the guard it returns, leave logging in place.
    line("logged after a second init");
    assert!(!stdout.contains(REMOTE_TRACE), "{stdout}");
}

fn child() {
    let otlp = TelemetryConfig::new("worker").with_otlp_endpoint("http://127.0.0.1:1");
    assert!(matches!(
        init_with(otlp),
        Err(TelemetryError::NoTokioRuntime)
    ));

    let mut config = TelemetryConfig::new("worker");
    config.log_format = LogFormat::Json;
    config.log_filter = "not a level=at all".to_owned();
    let guard = init_with(config).expect("logging-only init");
    assert!(!guard.is_exporting());

    let span = tracing::info_span!("job", step.id = "s1");
    assert!(!span.is_disabled(), "spans are recorded at info");
    span.in_scope(|| {
        tracing::info!(attempt = 1, "logged as json");
        tracing::debug!("hidden at debug");
    });

    // A carrier from a traced service is not taken up: the span has no trace, and what it
    // would pass on is empty.
    let carrier = HashMap::from([(
        "traceparent".to_owned(),
        format!("00-{REMOTE_TRACE}-00f067aa0ba902b7-01"),
    )]);
    let remote = tracing::info_span!(parent: None, "remote");
    set_parent(&remote, &carrier);
    assert!(!remote.is_disabled());
    assert_eq!(trace_id(&remote), None);
    assert!(inject_context(&remote).is_empty());
    remote.in_scope(|| {
        let child = tracing::info_span!("child");
        assert_eq!(trace_id(&child), None);
        assert!(inject_context(&child).is_empty());
    });

    let second = init_with(TelemetryConfig::new("worker")).expect("second init");
    assert!(!second.is_exporting());
    second.shutdown();
    tracing::info!("logged after a second init");
    guard.shutdown();
}
