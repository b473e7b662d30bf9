//! Waking blocking reads without spinning: writes through a handle notify its waiting readers after
//! they commit, and a waiting reader also looks again every poll interval, for writes made through
//! another handle on the same file.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    sync::{Notify, futures::Notified},
    time::Instant,
};

/// One wake-up per stream with readers, one for the event log and one for cancel notices.
#[derive(Default)]
pub(super) struct Wakers {
    streams: Mutex<HashMap<String, Arc<Notify>>>,
    pub events: Arc<Notify>,
    pub cancels: Arc<Notify>,
}

impl Wakers {
    /// The wake-up of readers of `stream`.
    pub fn stream(&self, stream: &str) -> Arc<Notify> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        match streams.get(stream) {
            Some(notify) => notify.clone(),
            None => streams.entry(stream.to_owned()).or_default().clone(),
        }
    }

    /// Wakes the readers waiting on `stream`, if any.
    pub fn wake_stream(&self, stream: &str) {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = streams.get(stream) {
            notify.notify_waiters();
        }
    }
}

/// Why a pause ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woken {
    /// A write through this handle: something is most likely there.
    Notified,
    /// The poll interval passed: look whether another handle wrote.
    Poll,
    /// The read's time is up.
    Deadline,
}

/// When a read that may wait `block` gives up.
pub(super) fn deadline(block: Duration) -> Instant {
    let now = Instant::now();
    // A year stands in for "forever" where the clock cannot add `block`.
    now.checked_add(block)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Waits for `notified` (enabled before the reader last looked, so no write is missed), for
/// `poll`, or until `deadline`, whichever comes first.
pub(super) async fn pause(
    notified: Pin<&mut Notified<'_>>,
    poll: Duration,
    deadline: Instant,
) -> Woken {
    let now = Instant::now();
    if now >= deadline {
        return Woken::Deadline;
    }
    let nap = deadline - now;
    tokio::select! {
        () = notified => Woken::Notified,
        () = tokio::time::sleep(poll.min(nap)) => {
            if poll >= nap { Woken::Deadline } else { Woken::Poll }
        }
    }
}
