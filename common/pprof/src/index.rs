//! `/debug/pprof/`: an HTML index of the profiling endpoints.
//!
//! Gives operators (and `curl`) a discoverable entry point, like Go's
//! `net/http/pprof` index page, and says whether a CPU profile is being
//! collected (only one may run at a time).

use axum::response::Html;

use crate::cpu::profile_in_progress;

/// The index line while a CPU profile is being collected.
pub const CPU_PROFILE_IN_PROGRESS: &str = "CPU profile: in progress";
/// The index line while no CPU profile is being collected.
pub const CPU_PROFILE_IDLE: &str = "CPU profile: idle";

/// `(path relative to /debug/pprof/, description)` for every endpoint.
pub(crate) const ENDPOINTS: &[(&str, &str)] = &[
    (
        "profile?seconds=30",
        "CPU profile (gzipped pprof protobuf). `seconds` is 1-300, default 30. One at a time.",
    ),
    (
        "heap",
        "jemalloc heap profile (gzipped pprof protobuf); 501 when heap profiling is not enabled.",
    ),
    (
        "threads",
        "Threads of this process: tid, name, state, CPU ticks (utime+stime).",
    ),
    ("cmdline", "Command line of this process, NUL-separated."),
];

pub(crate) async fn index() -> Html<String> {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><title>/debug/pprof/</title></head><body>\n\
         <h1>/debug/pprof/</h1>\n\
         <p>Use with <code>go tool pprof http://HOST:PORT/debug/pprof/profile?seconds=30</code>.</p>\n<ul>\n",
    );
    for (path, description) in ENDPOINTS {
        page.push_str(&format!(
            "<li><a href=\"/debug/pprof/{path}\">/debug/pprof/{path}</a> &mdash; {}</li>\n",
            escape(description)
        ));
    }
    page.push_str("</ul>\n");
    let cpu = if profile_in_progress() {
        CPU_PROFILE_IN_PROGRESS
    } else {
        CPU_PROFILE_IDLE
    };
    page.push_str(&format!("<p>{cpu}</p>\n</body></html>\n"));
    Html(page)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
