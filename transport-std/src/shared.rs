//! The state the producer handles and the producer's task share: the one queue records wait in
//! until the core takes them, and the wake-ups between the two sides.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::delivery::{DeliveryHandler, Reply};
use crate::record::OwnedRecord;

/// A record waiting for the core to take it.
pub(crate) struct Queued {
    pub record: OwnedRecord,
    pub reply: Reply,
    pub enqueued: std::time::Instant,
    /// The mark it was queued under: a flush or a commit waits for the records marked at or
    /// before the mark it took.
    pub mark: u64,
}

/// The queue in front of the core: records sent and not yet taken by the core, in order.
#[derive(Default)]
pub(crate) struct Queue {
    pub records: VecDeque<Queued>,
    /// The weight of the records queued, and of those the task is handing to the core right
    /// now: what `cap_bytes` bounds.
    pub bytes: usize,
    /// The mark new records get; each flush and each commit or abort moves it on.
    pub mark: u64,
    pub closed: bool,
    /// Set by the task once the core failed for good: records are refused at once with it.
    pub fatal: Option<crate::error::Error>,
    /// The last topic a record was queued for, its name checked: the next record with the
    /// same `Arc` needs no check.
    pub valid_topic: Option<std::sync::Arc<str>>,
}

/// State shared by the handles and the task.
pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    /// Wakes the task: records queued.
    pub wake: Notify,
    /// Wakes senders: room in the queue.
    pub space: Notify,
    /// The most bytes of records the queue holds (`Queue::bytes`).
    pub cap_bytes: usize,
    /// `queue.buffering.max.messages`: the most records queued, in the core or in flight, i.e.
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
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent (plain pushes
        // and pops).
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the current mark: records queued so far carry it or an earlier one, later ones a
    /// later one. A flush or a commit takes it before it asks the task, so it covers exactly
    /// the records sent before it.
    pub(crate) fn mark(&self) -> u64 {
        let mut queue = self.lock();
        queue.mark += 1;
        queue.mark - 1
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
