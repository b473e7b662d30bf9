//! The runners' repair counters, read from their Prometheus endpoints. A replica's counters die
//! with it, so each replica is read just before it is killed and at the end, and the reads add up.

use std::net::SocketAddr;

/// Steps the reconciler dispatched again because their job or lease was lost.
pub const REDISPATCHED: &str = "baton_steps_redispatched_total";
/// Results, heartbeats and start reports of a stale lease, which changed nothing.
pub const FENCED: &str = "baton_fenced_reports_total";

/// Sums of the repair counters; `None` while no scrape exposed the metric.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RepairCounters {
    pub redispatched: Option<f64>,
    pub fenced: Option<f64>,
}

impl RepairCounters {
    pub fn add(&mut self, other: RepairCounters) {
        self.redispatched = add(self.redispatched, other.redispatched);
        self.fenced = add(self.fenced, other.fenced);
    }

    /// Reads one runner's `/metrics`.
    pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Self> {
        let (code, head, body) = baton_testkit::http_get(addr, "/metrics").await?;
        anyhow::ensure!(code == 200, "GET http://{addr}/metrics: {head}");
        Ok(Self::parse(&String::from_utf8_lossy(&body)))
    }

    /// Sums every sample of each counter, whatever its labels, in the text format.
    pub fn parse(text: &str) -> Self {
        let mut counters = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            match name {
                REDISPATCHED => counters.redispatched = add(counters.redispatched, Some(value)),
                FENCED => counters.fenced = add(counters.fenced, Some(value)),
                _ => {}
            }
        }
        counters
    }
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_labelled_samples_and_tells_absent_from_zero() {
        let text = "# HELP baton_fenced_reports_total x\n# TYPE baton_fenced_reports_total counter\n\
                    baton_fenced_reports_total{kind=\"result\"} 2\n\
                    baton_fenced_reports_total{kind=\"heartbeat\"} 3\n\
                    baton_steps_redispatched_totalx 9\n";
        let parsed = RepairCounters::parse(text);
        assert_eq!(parsed.fenced, Some(5.0));
        assert_eq!(parsed.redispatched, None);
        let mut sum = parsed;
        sum.add(RepairCounters {
            redispatched: Some(0.0),
            fenced: None,
        });
        assert_eq!(sum.redispatched, Some(0.0));
        assert_eq!(sum.fenced, Some(5.0));
    }
}
