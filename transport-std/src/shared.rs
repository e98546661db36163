//! The state the producer handles and the producer's task share: the staging area records wait
//! in until the task takes them, and the wake-ups between the two sides.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::delivery::{DeliveryHandler, Reply};
use crate::record::OwnedRecord;

/// A record waiting for the producer's task to take it.
pub(crate) struct Staged {
    pub record: OwnedRecord,
    pub reply: Reply,
    pub enqueued: std::time::Instant,
}

#[derive(Default)]
pub(crate) struct Staging {
    pub records: Vec<Staged>,
    pub bytes: usize,
    pub closed: bool,
    /// Set by the task once the core failed for good: records are refused at once with it.
    pub fatal: Option<crate::error::Error>,
}

/// State shared by the handles and the task.
pub(crate) struct Shared {
    pub staging: Mutex<Staging>,
    /// Wakes the task: records staged.
    pub wake: Notify,
    /// Wakes senders: room in the staging area.
    pub space: Notify,
    pub cap_bytes: usize,
    /// `queue.buffering.max.messages`: the most records staged, queued or in flight, i.e.
    /// accepted and not yet reported.
    pub max_records: Option<usize>,
    /// Records accepted and not yet reported (kept only with `max_records`).
    pub queued: AtomicUsize,
    pub max_block: Duration,
    pub handler: Option<DeliveryHandler>,
    /// The task's last state, kept when it ends (after `close`), for `metrics()` and `health()`.
    pub last_words: Mutex<Option<crate::driver::Snapshot>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Staging> {
        // A panic while holding this lock cannot leave `Staging` inconsistent (plain pushes).
        self.staging.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reports a record's outcome; with `queue.buffering.max.messages`, its place in the queue
    /// is free again.
    pub(crate) fn report(&self, reply: Reply, result: Result<crate::Delivery, crate::Error>) {
        reply.resolve(result, self.handler.as_ref());
        self.place_freed();
    }

    /// Reports a failure the core named with its partition and attempts.
    pub(crate) fn report_failure(&self, reply: Reply, failure: crate::delivery::Failure) {
        reply.fail(failure, self.handler.as_ref());
        self.place_freed();
    }

    fn place_freed(&self) {
        if self.max_records.is_some() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.space.notify_waiters();
        }
    }

    /// Takes a place in the queue for one record: `false` when `queue.buffering.max.messages`
    /// are already queued.
    pub(crate) fn take_place(&self) -> bool {
        match self.max_records {
            None => true,
            Some(max) => self
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
                .is_ok(),
        }
    }
}
