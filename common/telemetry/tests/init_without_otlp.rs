//! Without an OTLP endpoint `init` installs logging only: no OpenTelemetry layer,
//! so nothing is propagated. Also checks that OTLP outside a Tokio runtime is an
//! error rather than a panic. One test per file: `init` sets global state.

use std::collections::HashMap;

use baton_telemetry::{
    LogFormat, TelemetryConfig, TelemetryError, init_with, inject_context, set_parent, trace_id,
};

#[test]
fn logging_only_init_and_runtime_check() {
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
    span.in_scope(|| tracing::info!(attempt = 1, "logged as json"));
    assert!(inject_context(&span).is_empty());
    assert!(trace_id(&span).is_none());
    set_parent(&span, &HashMap::new());

    // Calling init again must not fail.
    init_with(TelemetryConfig::new("worker"))
        .expect("second init")
        .shutdown();
    guard.shutdown();
}
