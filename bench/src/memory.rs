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
        let mut peaks = Peaks {
            kb: vec![None; pids.len()],
            samples: 0,
        };
        // The first reading is taken before returning, so a phase starts measured.
        sample(&pids, &mut peaks);
        let task = tokio::spawn(async move {
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
    use std::time::Instant;

    use super::*;

    const MIB_KB: u64 = 1024;

    /// The tests measure this process's memory, so they take turns when they share one.
    static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Allocates and writes `mb` MiB, so every page is resident.
    fn touched(mb: usize) -> Vec<u8> {
        std::hint::black_box(vec![1u8; mb * 1024 * 1024])
    }

    /// Waits until this process's RSS is below `kb` (glibc unmaps a freed allocation this large).
    fn wait_rss_below(kb: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = rss_kb(std::process::id()).unwrap();
            if now < kb {
                return now;
            }
            assert!(Instant::now() < deadline, "RSS stayed at {now} kB");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn rss_and_hwm_follow_a_touched_allocation() {
        let _turn = MEMORY.blocking_lock();
        let pid = std::process::id();
        let before = rss_kb(pid).unwrap();
        let held = touched(64);
        let during = rss_kb(pid).unwrap();
        let grew = during.saturating_sub(before);
        assert!(
            (56 * MIB_KB..256 * MIB_KB).contains(&grew),
            "RSS grew {grew} kB for 64 MiB"
        );
        drop(held);
        let after = wait_rss_below(during - 32 * MIB_KB);
        let hwm = hwm_kb(pid).unwrap();
        // The kernel sums its RSS counters approximately, so allow a few MiB either way.
        assert!(
            hwm >= during - 4 * MIB_KB,
            "VmHWM {hwm} kB below the {during} kB seen"
        );
        assert!(
            hwm > after + 24 * MIB_KB,
            "VmHWM {hwm} kB not above RSS {after} kB after freeing"
        );
        assert_eq!(rss_kb(u32::MAX), None);
        assert_eq!(hwm_kb(u32::MAX), None);
    }

    #[tokio::test]
    async fn sampler_keeps_the_peak_after_memory_is_freed() {
        let _turn = MEMORY.lock().await;
        let pid = std::process::id();
        let held = touched(64);
        let during = rss_kb(pid).unwrap();
        let sampler = Sampler::start(vec![pid, u32::MAX], Duration::from_millis(5));
        drop(held);
        let after = wait_rss_below(during - 32 * MIB_KB);
        let peaks = sampler.stop().await;
        // The reading at start and the one at stop, at least.
        assert!(peaks.samples >= 2, "{peaks:?}");
        let peak = peaks.kb[0].unwrap();
        assert!(
            peak >= during - 8 * MIB_KB,
            "peak {peak} kB, {during} kB held at start"
        );
        assert!(
            peak > after + 24 * MIB_KB,
            "peak {peak} kB, {after} kB at the end"
        );
        assert_eq!(peaks.kb[1], None, "a missing process has no reading");
    }
}
