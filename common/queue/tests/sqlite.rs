//! The queue conformance suite against [`SqliteQueue`], and what only the embedded queue promises:
//! it keeps everything across a restart, trims to its caps, shares its file with the store, and
//! wakes its own waiting readers at once. Each check gets a fresh temporary directory, removed
//! after; `a` and `b` are two handles on one file (two processes of one deployment, sharing
//! nothing in memory) and `other` a handle on another file (another deployment).

#[macro_use]
mod conformance;

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use baton_proto::v1;
use baton_queue::{
    BatchOutcome, CancelNotices, EventCursor, EventLog, JobStream, QueueAdmin, RunnerInbox,
    SqliteQueue, SqliteQueueConfig, TimerEntry, Timers, WorkerHeartbeat,
};
use tokio_stream::StreamExt;

use conformance::{Queues, fixtures::*};

queue_conformance!(with_sqlite);

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "baton-queue-{:x}-{nanos:x}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(path: &Path) -> SqliteQueue {
    SqliteQueue::open(path)
        .await
        .unwrap_or_else(|e| panic!("open the queue at {}: {e}", path.display()))
}

/// Opens two handles on one fresh file and one on another, runs `check`, and removes both files
/// whether the check passed or not.
async fn with_sqlite<F, Fut>(check: F)
where
    F: FnOnce(Queues) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TempDir::new();
    let path = dir.file("baton.db");
    let queues = Queues {
        a: Arc::new(open(&path).await),
        b: Arc::new(open(&path).await),
        other: Arc::new(open(&dir.file("other.db")).await),
    };
    let outcome = tokio::spawn(check(queues)).await;
    drop(dir);
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("check did not finish: {e}"),
    }
}

fn wake(run: u32, due_ms: i64) -> TimerEntry {
    TimerEntry {
        due_ms,
        wake: v1::WakeRunCommand {
            run_id: format!("run-{run}"),
            reason: v1::WakeReason::RetryDue as i32,
            due_at: None,
        },
    }
}

fn heartbeat(worker: &str, last_heartbeat_ms: i64) -> WorkerHeartbeat {
    WorkerHeartbeat {
        id: format!("{worker}:{KIND}"),
        worker_id: worker.to_owned(),
        kind: KIND.to_owned(),
        pid: 7,
        hostname: "host-1".into(),
        started_at_ms: 1,
        last_heartbeat_ms,
    }
}

#[tokio::test]
async fn a_restarted_queue_keeps_everything_it_acknowledged_as_sent() {
    let dir = TempDir::new();
    let path = dir.file("baton.db");
    let before = open(&path).await;
    let jobs = [job(1, "fetch", 1), job(2, "fetch", 1)];
    before
        .dispatch(&jobs, &[wake(5, 1_000), wake(6, 9_000)])
        .await
        .unwrap();
    let taken = take_first_jobs(&before, "w1", 1).await;
    before.send_to_runner(&[start(1)]).await.unwrap();
    before
        .complete_batch(BatchOutcome {
            events: vec![event(1, 1), event(1, 2)],
            dead_letters: vec![letter("runner", "", "unknown run", vec![1])],
            ..BatchOutcome::default()
        })
        .await
        .unwrap();
    before
        .worker_heartbeat(&heartbeat("w1", 500))
        .await
        .unwrap();
    before.pool().close().await;
    drop(before);

    let after = open(&path).await;
    // The taken job is still pending (and counted), the other still waits.
    let pending = after
        .reclaim_jobs(KIND, "w2", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(ids(&pending), ids(&taken));
    assert_eq!(pending[0].deliveries, 2);
    assert_eq!(messages(&take_jobs(&after, "w2", 1).await), jobs[1..]);
    assert_eq!(messages(&take_runner(&after, "r1", 1).await), [start(1)]);
    let fired = after.fire_due_timers(1_000, 10).await.unwrap();
    assert_eq!((fired.moved, fired.next_due_ms), (1, Some(9_000)));
    assert_eq!(
        woken(&message(&take_runner(&after, "r1", 1).await[0])),
        "run-5"
    );
    let events = after
        .read_events(&EventCursor::start(), 10, Duration::ZERO)
        .await
        .unwrap();
    let sequences: Vec<i64> = events.iter().map(|(_, e)| e.sequence).collect();
    assert_eq!(sequences, [1, 2]);
    assert_eq!(after.dead_letters(10).await.unwrap().len(), 1);
    assert_eq!(
        after.live_workers(500, 0).await.unwrap(),
        [heartbeat("w1", 500)]
    );
    // A new entry's id is not one handed out before the restart.
    after.dispatch(&[job(3, "fetch", 1)], &[]).await.unwrap();
    let newest = take_jobs(&after, "w2", 1).await;
    assert!(!ids(&pending).contains(&newest[0].id), "{newest:?}");
}

#[tokio::test]
async fn events_and_dead_letters_are_trimmed_oldest_first_to_their_caps() {
    let dir = TempDir::new();
    let queue = open(&dir.file("baton.db"))
        .await
        .with_config(SqliteQueueConfig {
            events_kept: 3,
            dead_letters_kept: 2,
            ..SqliteQueueConfig::default()
        });
    let cursor_before = queue.tail().await.unwrap();
    for batch in [
        vec![event(1, 1), event(1, 2)],
        vec![event(1, 3), event(1, 4)],
    ] {
        queue
            .complete_batch(BatchOutcome {
                events: batch,
                ..BatchOutcome::default()
            })
            .await
            .unwrap();
    }
    queue
        .complete_batch(BatchOutcome {
            events: vec![event(1, 5)],
            dead_letters: (1..=3)
                .map(|i| letter("runner", "", &format!("letter {i}"), vec![i]))
                .collect(),
            ..BatchOutcome::default()
        })
        .await
        .unwrap();

    let sequences = |read: Vec<(EventCursor, v1::RunEvent)>| -> Vec<i64> {
        read.into_iter().map(|(_, e)| e.sequence).collect()
    };
    let kept = queue
        .read_events(&EventCursor::start(), 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sequences(kept), [3, 4, 5], "the oldest kept is the start");
    let behind = queue
        .read_events(&cursor_before, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        sequences(behind),
        [3, 4, 5],
        "a reader far behind skips to the oldest kept"
    );
    let tail = queue.tail().await.unwrap();
    assert!(
        queue
            .read_events(&tail, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );

    let reasons: Vec<String> = queue
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect();
    assert_eq!(reasons, ["letter 2", "letter 3"]);
    let stats = queue.stats(&[]).await.unwrap();
    let dead = stats.iter().find(|s| s.name == "dead").expect("dead stats");
    assert_eq!(dead.length, 2);
}

#[tokio::test]
async fn the_queue_shares_its_file_with_the_store_migrations() {
    use sqlx::{
        SqlSafeStr,
        migrate::{Migration, MigrationType, Migrator},
    };

    let dir = TempDir::new();
    let path = dir.file("baton.db");
    // The store's migrations (1..999) run before and after the queue's, each ignoring the other.
    let mut store = Migrator::with_migrations(vec![Migration::new(
        1,
        "store".into(),
        MigrationType::Simple,
        "CREATE TABLE store_runs (id TEXT PRIMARY KEY)".into_sql_str(),
        false,
    )]);
    store.set_ignore_missing(true);
    let pool = baton_sqlite::open(&path, 2).await.unwrap();
    store.run(&pool).await.unwrap();
    let queue = SqliteQueue::from_pool(pool.clone()).await.unwrap();
    store.run(&pool).await.unwrap();
    queue.send_to_runner(&[start(1)]).await.unwrap();
    pool.close().await;

    let reopened = open(&path).await;
    assert_eq!(messages(&take_runner(&reopened, "r1", 1).await), [start(1)]);
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'store_runs'",
    )
    .fetch_one(reopened.pool())
    .await
    .unwrap();
    assert_eq!(tables, 1, "the store's table is left alone");
}

#[tokio::test]
async fn writes_wake_the_same_handles_waiting_readers_at_once() {
    let dir = TempDir::new();
    // A poll far beyond the check's patience: only the in-process wake-up can wake the readers.
    let slow_poll = PATIENCE * 10;
    let queue = Arc::new(
        open(&dir.file("baton.db"))
            .await
            .with_config(SqliteQueueConfig {
                poll_interval: slow_poll,
                ..SqliteQueueConfig::default()
            }),
    );
    let mut cancels = queue.subscribe_cancels().await.unwrap();
    let tail = queue.tail().await.unwrap();
    let readers = {
        let (jobs, runner, events) = (queue.clone(), queue.clone(), queue.clone());
        (
            tokio::spawn(async move { jobs.read_jobs(KIND, "w1", 10, slow_poll).await }),
            tokio::spawn(async move { runner.read_runner("r1", 10, slow_poll).await }),
            tokio::spawn(async move { events.read_events(&tail, 10, slow_poll).await }),
        )
    };
    // Each reader looks once on starting, then waits. The pause only lets them get there: were
    // one still starting, it would find the writes on its first look and the check would pass
    // without testing the wake-up, never fail wrongly.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let began = Instant::now();
    queue.dispatch(&[job(1, "fetch", 1)], &[]).await.unwrap();
    queue.report(KIND, &[start(2)], &[]).await.unwrap();
    queue
        .complete_batch(BatchOutcome {
            events: vec![event(1, 1)],
            cancels: vec![v1::CancelNotice {
                run_id: "run-1".into(),
                reason: "cancelled".into(),
            }],
            ..BatchOutcome::default()
        })
        .await
        .unwrap();
    let (jobs, runner, events) = readers;
    let jobs = tokio::time::timeout(PATIENCE, jobs)
        .await
        .expect("the job reader woke");
    assert_eq!(messages(&jobs.unwrap().unwrap()), [job(1, "fetch", 1)]);
    let runner = tokio::time::timeout(PATIENCE, runner)
        .await
        .expect("the inbox reader woke");
    assert_eq!(messages(&runner.unwrap().unwrap()), [start(2)]);
    let events = tokio::time::timeout(PATIENCE, events)
        .await
        .expect("the event reader woke");
    assert_eq!(events.unwrap().unwrap().len(), 1);
    let notice = tokio::time::timeout(PATIENCE, cancels.next())
        .await
        .expect("the cancel subscriber woke");
    assert_eq!(notice.unwrap().run_id, "run-1");
    assert!(began.elapsed() < slow_poll, "woken, not polled");
}

/// CPU time this process used so far (user and system), from `/proc/self/stat`.
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a command name in parentheses")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 a second on
    // Linux as built for every platform Baton runs on).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn waiting_readers_do_not_spin() {
    let dir = TempDir::new();
    let queue = Arc::new(open(&dir.file("baton.db")).await);
    let mut cancels = queue.subscribe_cancels().await.unwrap();
    let tail = queue.tail().await.unwrap();
    let wait = Duration::from_secs(2);
    let cpu_before = cpu_time();
    let began = Instant::now();
    let (jobs, runner, events) = (queue.clone(), queue.clone(), queue.clone());
    let (jobs, runner, events, cancel) = tokio::join!(
        async move { jobs.read_jobs(KIND, "w1", 10, wait).await },
        async move { runner.read_runner("r1", 10, wait).await },
        async move { events.read_events(&tail, 10, wait).await },
        tokio::time::timeout(wait, cancels.next()),
    );
    assert!(jobs.unwrap().is_empty() && runner.unwrap().is_empty() && events.unwrap().is_empty());
    assert!(cancel.is_err(), "no notice was published");
    assert!(began.elapsed() >= wait);
    let used = cpu_time().saturating_sub(cpu_before);
    assert!(
        used < wait / 4,
        "four readers waiting {wait:?} used {used:?} of CPU"
    );
}

#[tokio::test]
async fn an_in_memory_queue_serves_one_handle() {
    let queue = SqliteQueue::open(":memory:").await.unwrap();
    queue.dispatch(&[job(1, "fetch", 1)], &[]).await.unwrap();
    let taken = take_jobs(&queue, "w1", 1).await;
    queue
        .report(KIND, &[result(&job(1, "fetch", 1))], &ids(&taken))
        .await
        .unwrap();
    assert_eq!(
        messages(&take_runner(&queue, "r1", 1).await),
        [result(&job(1, "fetch", 1))]
    );
    let stats = queue.stats(&[KIND.to_owned()]).await.unwrap();
    assert!(
        stats.iter().all(|s| s.length == 0 || s.name == "runner"),
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_undecodable_event_is_skipped() {
    let dir = TempDir::new();
    let path = dir.file("baton.db");
    let queue = Arc::new(open(&path).await);
    let pool = queue.pool().clone();
    let inject = move || {
        let pool = pool.clone();
        async move {
            // A length-delimited field that claims more bytes than follow.
            sqlx::query("INSERT INTO queue_events (payload) VALUES (?1)")
                .bind(vec![0x0a_u8, 0x05, 0x01])
                .execute(&pool)
                .await
                .expect("append a raw entry");
        }
    };
    conformance::undecodable_events_are_skipped(queue, inject).await;
}

#[tokio::test]
async fn dead_letters_are_capped_oldest_first() {
    let dir = TempDir::new();
    let queue = open(&dir.file("baton.db"))
        .await
        .with_config(SqliteQueueConfig {
            dead_letters_kept: conformance::CAPPED_DEAD_LETTERS,
            ..SqliteQueueConfig::default()
        });
    conformance::dead_letters_are_capped_oldest_first(Arc::new(queue)).await;
}
