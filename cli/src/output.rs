//! Text rendering shared by the commands: aligned tables, durations, times and shortened values.
//! Printing goes through [`outln!`] so a closed pipe (`baton run list | head`) ends the program
//! quietly instead of panicking.

use std::fmt::Write as _;

use baton_proto::prost_types::Timestamp;
use chrono::{DateTime, Local, SecondsFormat, Utc};

/// `println!` that returns an `io::Result` instead of panicking when stdout is gone.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;

/// Prints a JSON value: pretty for single results, one line each for streams.
pub fn print_json(value: &serde_json::Value, compact: bool) -> std::io::Result<()> {
    if compact {
        outln!("{value}")
    } else {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        outln!("{text}")
    }
}

/// A table of left-aligned columns separated by two spaces.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table; every line ends with a newline.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> std::io::Result<()> {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(self.render().as_bytes())
    }
}

/// Formats a duration given in microseconds: `<1ms`, `412ms`, `1.23s`, `12.3s`, `2m05s`, `1h02m`.
pub fn format_duration(micros: i64) -> String {
    if micros <= 0 {
        return "0ms".to_owned();
    }
    if micros < 1_000 {
        return "<1ms".to_owned();
    }
    let ms = micros / 1_000;
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    // Truncated rather than rounded, so a value never reads as the next unit (`60.0s`).
    if ms < 10_000 {
        return format!("{}.{:02}s", ms / 1_000, (ms % 1_000) / 10);
    }
    if ms < 60_000 {
        return format!("{}.{}s", ms / 1_000, (ms % 1_000) / 100);
    }
    let total_secs = ms / 1_000;
    if total_secs < 3_600 {
        return format!("{}m{:02}s", total_secs / 60, total_secs % 60);
    }
    let total_mins = total_secs / 60;
    if total_mins < 24 * 60 {
        return format!("{}h{:02}m", total_mins / 60, total_mins % 60);
    }
    format!("{}d{:02}h", total_mins / (24 * 60), (total_mins / 60) % 24)
}

/// The time between two optional timestamps, in microseconds, when both are set and in order.
pub fn span_micros(start: Option<&Timestamp>, end: Option<&Timestamp>) -> Option<i64> {
    let start = baton_proto::timestamp_to_micros(start?);
    let end = baton_proto::timestamp_to_micros(end?);
    (end >= start).then_some(end - start)
}

/// [`span_micros`] formatted, or `-`.
pub fn span_text(start: Option<&Timestamp>, end: Option<&Timestamp>) -> String {
    span_micros(start, end).map_or_else(|| "-".to_owned(), format_duration)
}

fn to_utc(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// A timestamp as RFC 3339 in UTC, for JSON output.
pub fn rfc3339(ts: Option<&Timestamp>) -> Option<String> {
    to_utc(ts?).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// A timestamp in local time to the second, or `-`.
pub fn local_time(ts: Option<&Timestamp>) -> String {
    ts.and_then(to_utc)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// A timestamp in local time of day to the millisecond, for event lines.
pub fn clock_time(ts: Option<&Timestamp>) -> String {
    ts.and_then(to_utc)
        .map(|t| t.with_timezone(&Local).format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "--:--:--.---".to_owned())
}

/// Puts a value on one line and cuts it to at most `max` characters, ending in `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A protobuf enum name without its prefix, in lower case: `RUN_STATUS_TIMED_OUT` → `timed_out`.
pub fn enum_label(full_name: &str, prefix: &str) -> String {
    full_name
        .strip_prefix(prefix)
        .unwrap_or(full_name)
        .to_ascii_lowercase()
}

/// A label for an enum value the client does not know.
pub fn unknown_label(value: i32) -> String {
    format!("unknown({value})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(format_duration(-5), "0ms");
        assert_eq!(format_duration(0), "0ms");
        assert_eq!(format_duration(999), "<1ms");
        assert_eq!(format_duration(3_000), "3ms");
        assert_eq!(format_duration(412_999), "412ms");
        assert_eq!(format_duration(999_999), "999ms");
        assert_eq!(format_duration(1_000_000), "1.00s");
        assert_eq!(format_duration(1_234_000), "1.23s");
        assert_eq!(format_duration(12_345_000), "12.3s");
        assert_eq!(format_duration(9_999_000), "9.99s");
        assert_eq!(format_duration(59_999_000), "59.9s");
        assert_eq!(format_duration(60_000_000), "1m00s");
        assert_eq!(format_duration(125_000_000), "2m05s");
        assert_eq!(format_duration(3_720_000_000), "1h02m");
        assert_eq!(format_duration(90_000_000_000), "1d01h");
    }

    #[test]
    fn spans() {
        let at = |micros| baton_proto::timestamp_from_micros(micros);
        assert_eq!(span_micros(Some(&at(1_000)), Some(&at(4_000))), Some(3_000));
        assert_eq!(span_micros(Some(&at(4_000)), Some(&at(1_000))), None);
        assert_eq!(span_micros(None, Some(&at(1))), None);
        assert_eq!(span_text(Some(&at(0)), Some(&at(412_000))), "412ms");
        assert_eq!(span_text(Some(&at(0)), None), "-");
    }

    #[test]
    fn timestamps_as_rfc3339() {
        let ts = baton_proto::timestamp_from_micros(1_700_000_000_123_000);
        assert_eq!(rfc3339(Some(&ts)).unwrap(), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(None), None);
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("a\n  b", 10), "a b");
        assert_eq!(shorten("abcdefghij", 5), "abcd…");
        assert_eq!(shorten("ééééé", 5), "ééééé");
    }

    #[test]
    fn enum_labels() {
        assert_eq!(
            enum_label("RUN_STATUS_TIMED_OUT", "RUN_STATUS_"),
            "timed_out"
        );
        assert_eq!(
            enum_label("RUN_EVENT_TYPE_STEP_COMPLETED", "RUN_EVENT_TYPE_"),
            "step_completed"
        );
    }

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["ID", "STATUS", "NOTE"]);
        table.row(vec!["a".into(), "completed".into(), String::new()]);
        table.row(vec!["long-id".into(), "failed".into(), "boom".into()]);
        assert_eq!(
            table.render(),
            "ID       STATUS     NOTE\na        completed\nlong-id  failed     boom\n"
        );
    }
}
