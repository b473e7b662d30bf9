//! Resident memory of the service processes, read from /proc/<pid>/status. The bench spawns the
//! services as separate processes precisely so that each one's memory can be measured on its own.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::machine::{field, parse_kb};

/// `VmRSS` (resident now) of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// `VmHWM` (highest resident size over the process's life), in kB.
pub fn hwm_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM")
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field(&status, key).and_then(|v| parse_kb(&v))
}

/// Samples the RSS of some processes at a fixed interval in the background and keeps the peak.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Peaks>,
}

/// The peak RSS seen for each process (in the order given), and how many samples were taken.
#[derive(Clone, Debug)]
pub struct Peaks {
    pub kb: Vec<Option<u64>>,
    pub samples: usize,
}

impl Sampler {
    pub fn start(pids: Vec<u32>, interval: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peaks = Peaks {
                kb: vec![None; pids.len()],
                samples: 0,
            };
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                sample(&pids, &mut peaks);
            }
            // One last sample, so a very short phase still has one.
            sample(&pids, &mut peaks);
            peaks
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Peaks {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(Peaks {
            kb: Vec::new(),
            samples: 0,
        })
    }
}

fn sample(pids: &[u32], peaks: &mut Peaks) {
    for (pid, peak) in pids.iter().zip(peaks.kb.iter_mut()) {
        if let Some(kb) = rss_kb(*pid) {
            *peak = Some(peak.map_or(kb, |p| p.max(kb)));
        }
    }
    peaks.samples += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_status() {
        let pid = std::process::id();
        assert!(rss_kb(pid).unwrap() > 0);
        assert!(hwm_kb(pid).unwrap() >= rss_kb(pid).unwrap() / 2);
    }

    #[tokio::test]
    async fn sampler_keeps_peak() {
        let sampler = Sampler::start(vec![std::process::id(), u32::MAX], Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let peaks = sampler.stop().await;
        assert!(peaks.samples >= 2);
        assert!(peaks.kb[0].unwrap() > 0);
        assert_eq!(peaks.kb[1], None);
    }
}
