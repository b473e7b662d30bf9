//! A description of the machine the figures come from (CPU count and model, memory), because
//! throughput and latency figures mean little without it.

use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Machine {
    /// CPUs this process may run on (what `nproc` prints).
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// `MemTotal` from /proc/meminfo, in kB.
    pub mem_total_kb: Option<u64>,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".to_owned()),
            mem_total_kb: field(&meminfo, "MemTotal").and_then(|v| parse_kb(&v)),
        }
    }

    /// `2 CPUs (nproc), Intel(R) Xeon(R) …, 23.5 GiB RAM`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} CPUs (nproc), {}", self.nproc, self.cpu_model);
        if let Some(kb) = self.mem_total_kb {
            text.push_str(&format!(", {:.1} GiB RAM", kb as f64 / (1024.0 * 1024.0)));
        }
        text
    }

    pub fn to_json(&self) -> Value {
        json!({ "nproc": self.nproc, "cpu_model": self.cpu_model, "mem_total_kb": self.mem_total_kb })
    }
}

/// The value of the first `key: value` line of a /proc file with this key.
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// `12345 kB` → 12345.
pub fn parse_kb(value: &str) -> Option<u64> {
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2.20GHz\nVmRSS:\t   1234 kB\n";
        assert_eq!(
            field(text, "model name").as_deref(),
            Some("Some CPU @ 2.20GHz")
        );
        assert_eq!(field(text, "VmRSS").and_then(|v| parse_kb(&v)), Some(1234));
        assert_eq!(field(text, "VmHWM"), None);
    }
}
