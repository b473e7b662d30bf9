//! How figures are written: thousands separators, fewer decimals as figures grow, marks, and
//! rows aligned in columns.

use std::fmt::Write as _;

/// Width of a row's label.
pub const LABEL: usize = 50;

/// 1 MB = 10^6 bytes, as the targets are stated.
pub fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// Thousands separators for large figures, fewer decimals as figures grow.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() >= 1_000.0 {
        let digits = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

pub fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

/// Text of the report, rows aligned in columns.
#[derive(Default)]
pub struct Text {
    pub out: String,
}

impl Text {
    pub fn heading(&mut self, title: &str) {
        let _ = writeln!(self.out, "\n{title}");
    }
    pub fn info(&mut self, label: &str, value: &str) {
        let _ = writeln!(self.out, "  {label:<12}{value}");
    }
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "  {text}");
    }
    /// A figure; with its target and mark when one applies.
    pub fn figure(&mut self, label: &str, value: f64, unit: &str, target: Option<(String, bool)>) {
        match target {
            Some((target, ok)) => {
                let _ = writeln!(
                    self.out,
                    "  {label:<LABEL$}{:>10} {unit:<8} target {target:<14}{}",
                    num(value),
                    mark(ok)
                );
            }
            None => {
                let _ = writeln!(self.out, "  {label:<LABEL$}{:>10} {unit}", num(value));
            }
        }
    }
    pub fn row(&mut self, label: &str, value: f64, unit: &str) {
        self.figure(label, value, unit, None);
    }
    /// A count, in the column of the figures but without decimals.
    pub fn count(&mut self, label: &str, n: u64, unit: &str) {
        let n = if n >= 1_000 {
            num(n as f64)
        } else {
            n.to_string()
        };
        let _ = writeln!(self.out, "  {label:<LABEL$}{n:>10} {unit}");
    }
    /// The text, without trailing blanks from padded cells.
    pub fn finish(self) -> String {
        self.out
            .lines()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(12345.6), "12,346");
        assert_eq!(num(2299.9), "2,300");
        assert_eq!(num(1000.0), "1,000");
        assert_eq!(num(1234567.0), "1,234,567");
        assert_eq!(num(812.34), "812.3");
        assert_eq!(num(12.345), "12.35");
        assert_eq!(num(0.8123), "0.812");
    }
}
