//! What a job cost. Reading `/proc` for every job would cost more than a `noop` step, so one task
//! samples the process every 100 ms and jobs read the samples around their start and end. The
//! memory, CPU and thread figures are therefore the worker process's, shared by the jobs it runs
//! at the same time.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use baton_proto::v1;

/// How often the process is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Samples kept: a minute's worth, enough for the peak of any job shorter than that.
const KEEP: usize = 600;
/// Linux reports CPU time in clock ticks of 1/100 s on every architecture Baton runs on.
const CLK_TCK: f64 = 100.0;

/// One reading of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub seq: u64,
    pub at: Option<Instant>,
    pub rss_mb: f64,
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
    pub threads: u32,
}

/// Samples of this process, newest last.
#[derive(Clone, Default)]
pub struct ProcessSampler {
    samples: Arc<Mutex<VecDeque<Sample>>>,
}

impl ProcessSampler {
    /// Starts sampling until the returned sampler and its clones are dropped.
    pub fn start() -> Self {
        let sampler = Self::default();
        sampler.sample_now();
        let weak = Arc::downgrade(&sampler.samples);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let Some(samples) = weak.upgrade() else {
                    return;
                };
                ProcessSampler { samples }.sample_now();
            }
        });
        sampler
    }

    fn sample_now(&self) {
        let (rss_mb, cpu_seconds, threads) = read_process().unwrap_or_default();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let seq = samples.back().map_or(0, |s| s.seq + 1);
        samples.push_back(Sample {
            seq,
            at: Some(Instant::now()),
            rss_mb,
            cpu_seconds,
            threads,
        });
        while samples.len() > KEEP {
            samples.pop_front();
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Sample {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .back()
            .copied()
            .unwrap_or_default()
    }

    /// The usage of a job that started when `start` was the newest sample and ran for `wall`.
    pub fn usage_since(&self, start: Sample, wall: Duration) -> Usage {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let end = samples.back().copied().unwrap_or(start);
        let peak = samples
            .iter()
            .filter(|s| s.seq >= start.seq)
            .map(|s| s.rss_mb)
            .fold(start.rss_mb.max(end.rss_mb), f64::max);
        // CPU over the samples the job spans; a job shorter than one interval gets the rate of
        // the latest interval.
        let (from, to) = if end.seq > start.seq {
            (start, end)
        } else {
            let previous = samples.iter().rev().nth(1).copied().unwrap_or(end);
            (previous, end)
        };
        let elapsed = match (from.at, to.at) {
            (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
            _ => wall.as_secs_f64(),
        };
        let cpu_percent = if elapsed > 0.0 {
            ((to.cpu_seconds - from.cpu_seconds) / elapsed * 100.0).max(0.0)
        } else {
            0.0
        };
        Usage {
            memory_start_mb: start.rss_mb,
            memory_peak_mb: peak,
            memory_end_mb: end.rss_mb,
            cpu_percent,
            thread_count: end.threads,
        }
    }
}

/// The process-wide part of a job's usage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub memory_start_mb: f64,
    pub memory_peak_mb: f64,
    pub memory_end_mb: f64,
    pub cpu_percent: f64,
    pub thread_count: u32,
}

impl Usage {
    /// The wire form, with the job's own times.
    pub fn to_proto(self, queue_ms: i64, execution_ms: i64) -> v1::ResourceUsage {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        v1::ResourceUsage {
            queue_time_ms: queue_ms.max(0),
            execution_time_ms: execution_ms.max(0),
            total_duration_ms: (queue_ms.max(0) + execution_ms.max(0)),
            memory_start_mb: round(self.memory_start_mb),
            memory_peak_mb: round(self.memory_peak_mb),
            memory_end_mb: round(self.memory_end_mb),
            cpu_percent: round(self.cpu_percent),
            thread_count: self.thread_count,
        }
    }
}

/// Resident memory (MB), CPU seconds and threads of this process, from `/proc` (Linux only).
fn read_process() -> Option<(f64, f64, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rss_mb = field("VmRSS:").unwrap_or(0.0) / 1024.0;
    let threads = field("Threads:").unwrap_or(0.0) as u32;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let cpu_seconds = (ticks(11) + ticks(12)) / CLK_TCK;
    Some((rss_mb, cpu_seconds, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1024 * 1024;

    /// Lets the sampler task run until it has taken a sample after `after`.
    async fn next_sample(sampler: &ProcessSampler, after: Sample) -> Sample {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let latest = sampler.latest();
            if latest.seq > after.seq {
                return latest;
            }
            assert!(Instant::now() < deadline, "no sample after {after:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Allocates and writes `mb` MiB, so every page is resident.
    fn touched(mb: usize) -> Vec<u8> {
        std::hint::black_box(vec![1u8; mb * MB])
    }

    #[tokio::test]
    async fn peak_memory_covers_an_allocation_freed_before_the_end() {
        let sampler = ProcessSampler::start();
        let start = next_sample(&sampler, sampler.latest()).await;
        let held = touched(64);
        let during = next_sample(&sampler, sampler.latest()).await;
        drop(held);
        // glibc returns an allocation this large to the system when it is freed.
        let end = loop {
            let sample = next_sample(&sampler, sampler.latest()).await;
            if sample.rss_mb < during.rss_mb - 32.0 {
                break sample;
            }
        };
        let usage = sampler.usage_since(start, Duration::from_secs(1));
        let grew = usage.memory_peak_mb - usage.memory_start_mb;
        assert!((56.0..256.0).contains(&grew), "grew {grew} MB: {usage:?}");
        assert_eq!(usage.memory_start_mb, start.rss_mb);
        assert_eq!(usage.memory_end_mb, end.rss_mb);
        assert!(usage.memory_peak_mb >= during.rss_mb, "{usage:?}");
        assert!(
            usage.memory_end_mb < usage.memory_peak_mb - 32.0,
            "{usage:?}"
        );
    }

    #[tokio::test]
    async fn thread_count_includes_threads_started_during_the_job() {
        const EXTRA: u32 = 16;
        let sampler = ProcessSampler::start();
        let start = sampler.latest();
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let parked = Arc::new(Mutex::new(parked));
        let threads: Vec<_> = (0..EXTRA)
            .map(|_| {
                let parked = Arc::clone(&parked);
                std::thread::spawn(move || {
                    let _ = parked.lock().map(|rx| rx.recv());
                })
            })
            .collect();
        next_sample(&sampler, sampler.latest()).await;
        let usage = sampler.usage_since(start, Duration::from_secs(1));
        drop(release);
        for thread in threads {
            thread.join().unwrap();
        }
        // The test's own thread and the extra ones; a wrong field would be far off.
        assert!(
            (EXTRA + 1..EXTRA + 64).contains(&usage.thread_count),
            "{usage:?}"
        );
    }

    #[tokio::test]
    async fn cpu_percent_of_a_busy_process() {
        let sampler = ProcessSampler::start();
        let start = sampler.latest();
        // Burn CPU on this thread across at least two samples and one clock tick of CPU time.
        let mut x = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let latest = sampler.latest();
            if latest.seq >= start.seq + 2 && latest.cpu_seconds > start.cpu_seconds {
                break;
            }
            assert!(Instant::now() < deadline, "CPU time never advanced");
            for i in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            tokio::task::yield_now().await;
        }
        let usage = sampler.usage_since(start, Duration::from_secs(1));
        // Positive, and no more than every core of the machine fully busy, with room for CPU
        // time being counted in 10 ms clock ticks over windows of 100 ms or more.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(usage.cpu_percent > 0.0, "{usage:?}");
        assert!(usage.cpu_percent <= cores * 150.0, "{usage:?}");
    }

    #[test]
    fn wire_form_rounds_and_clamps() {
        let usage = Usage {
            memory_start_mb: 10.004,
            memory_peak_mb: 12.345,
            memory_end_mb: 11.0,
            cpu_percent: 33.333,
            thread_count: 7,
        };
        let wire = usage.to_proto(3, 250);
        assert_eq!(
            (
                wire.queue_time_ms,
                wire.execution_time_ms,
                wire.total_duration_ms
            ),
            (3, 250, 253)
        );
        assert_eq!(wire.memory_start_mb, 10.0);
        assert_eq!(wire.memory_peak_mb, 12.35);
        assert_eq!(wire.memory_end_mb, 11.0);
        assert_eq!(wire.cpu_percent, 33.33);
        assert_eq!(wire.thread_count, 7);
        let clock_skew = usage.to_proto(-5, 40);
        assert_eq!(
            (clock_skew.queue_time_ms, clock_skew.total_duration_ms),
            (0, 40)
        );
    }
}
