//! How much one template may produce and how long it may run, so a definition cannot make a
//! runner build a huge value or loop for minutes. The variables are read where a service reads
//! its configuration; errors name the variable that raises the limit.

use std::io;

use serde::Serialize;

/// Raises [`TemplateLimits::max_output_bytes`].
pub const TEMPLATE_OUTPUT_BYTES_VAR: &str = "BATON_MAX_TEMPLATE_OUTPUT_BYTES";
/// Raises [`TemplateLimits::fuel`].
pub const TEMPLATE_FUEL_VAR: &str = "BATON_TEMPLATE_FUEL";

/// Bounds on one template: each templated string of a step's input, and each `when` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Most bytes one template may produce: the text of a rendered string, or the JSON text of a
    /// string that is exactly one `{{ expr }}`. Text is cut off as it is written, so a loop
    /// stops at the limit rather than after it.
    pub max_output_bytes: usize,
    /// Most template instructions one template may run (minijinja's fuel, about one per
    /// operation, lookup, call and loop iteration).
    pub fuel: u64,
}

impl TemplateLimits {
    /// 1 MiB: as large as a step's whole input may be by default.
    pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 20;
    /// 100,000 instructions: a few milliseconds of work, far above what a template that builds a
    /// step's input needs (a loop over 1,000 items with a few filters each uses about 10,000).
    pub const DEFAULT_FUEL: u64 = 100_000;
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            max_output_bytes: Self::DEFAULT_MAX_OUTPUT_BYTES,
            fuel: Self::DEFAULT_FUEL,
        }
    }
}

/// Whether `value`'s JSON text (as `serde_json` writes it, compact) is at most `max_bytes` long.
/// Counts without keeping the text and stops as soon as it is over, so a huge value costs only
/// the first `max_bytes` of its text.
pub fn json_size_within(value: &impl Serialize, max_bytes: usize) -> bool {
    let mut counter = Capped::counting(max_bytes);
    serde_json::to_writer(&mut counter, value).is_ok() && !counter.over
}

/// A writer that takes at most `limit` bytes and fails the write that would go past it.
pub(crate) struct Capped {
    pub(crate) text: Vec<u8>,
    limit: usize,
    written: usize,
    keep: bool,
    /// A write was refused because it went past the limit.
    pub(crate) over: bool,
}

impl Capped {
    /// Keeps what is written, up to `limit` bytes.
    pub(crate) fn keeping(limit: usize) -> Self {
        Self {
            text: Vec::new(),
            limit,
            written: 0,
            keep: true,
            over: false,
        }
    }

    fn counting(limit: usize) -> Self {
        Self {
            keep: false,
            ..Self::keeping(limit)
        }
    }
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.limit - self.written {
            self.over = true;
            return Err(io::Error::other("over the output limit"));
        }
        self.written += buf.len();
        if self.keep {
            self.text.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_size_is_compared_with_the_compact_text() {
        let value = json!({"a": [1, "two"]});
        let len = value.to_string().len();
        assert!(json_size_within(&value, len));
        assert!(!json_size_within(&value, len - 1));
        assert!(json_size_within(&json!(null), 4));
        assert!(!json_size_within(&json!("x".repeat(10)), 11));
    }

    #[test]
    fn a_capped_writer_keeps_up_to_its_limit_and_refuses_past_it() {
        use std::io::Write as _;
        let mut capped = Capped::keeping(5);
        capped.write_all(b"abc").unwrap();
        capped.write_all(b"de").unwrap();
        assert!(!capped.over);
        assert!(capped.write_all(b"f").is_err());
        assert!(capped.over);
        assert_eq!(capped.text, b"abcde");
    }

    #[test]
    fn the_defaults_are_documented_values() {
        let limits = TemplateLimits::default();
        assert_eq!(limits.max_output_bytes, 1_048_576);
        assert_eq!(limits.fuel, 100_000);
    }
}
