//! Dead letters: a record that fails for good (refused by the broker — too large, unauthorized,
//! invalid —, timed out, its topic gone) is produced to a dead-letter topic instead of being
//! lost, with headers naming where it was going and why it did not get there. The pattern of
//! Kafka Connect's `errors.deadletterqueue.topic.name`, for a producer.
//!
//! Keeping a copy of each record until its outcome is known costs memory: the copies are
//! bounded (`max_bytes`), and `send` waits for room up to `max.block.ms` like the producer's
//! own queue, then hands the record back with [`Error::QueueFull`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::delivery::{Delivery, Failure};
use crate::error::{Error, Refused};
use crate::producer::Producer;
use crate::record::OwnedRecord;

/// Header: the topic the record was sent to.
pub const HEADER_TOPIC: &str = "picokafka.dlq.topic";
/// Header: the partition it was meant for (`-1` if none was chosen yet).
pub const HEADER_PARTITION: &str = "picokafka.dlq.partition";
/// Header: why it failed, as [`Error`]'s message.
pub const HEADER_ERROR: &str = "picokafka.dlq.error";
/// Header: how many times its batch was sent.
pub const HEADER_ATTEMPTS: &str = "picokafka.dlq.attempts";

/// What became of a record sent through a [`DeadLetterQueue`].
#[derive(Debug)]
pub enum DeadLetterOutcome {
    /// Delivered where it was sent.
    Delivered(Delivery),
    /// Failed there, and is in the dead-letter topic now.
    DeadLettered {
        /// Why it failed.
        error: Error,
        /// Where its copy landed.
        dead_letter: Delivery,
    },
    /// Failed, and could not be dead-lettered either (the copy failed too, or the failure
    /// leaves no producer to write it: closed, fenced, unauthenticated, an aborted transaction).
    Failed {
        /// Why it failed.
        error: Error,
        /// Why the copy did not land, if one was sent.
        dead_letter_error: Option<Error>,
    },
}

/// Counts of a [`DeadLetterQueue`]'s outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadLetterStats {
    /// Records delivered where they were sent.
    pub delivered: u64,
    /// Records in the dead-letter topic.
    pub dead_lettered: u64,
    /// Records neither delivered nor dead-lettered.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counts {
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    failed: AtomicU64,
}

/// Sends records through a producer and dead-letters those that fail for good.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    producer: Producer,
    topic: Arc<str>,
    /// Bytes of record copies that may be kept; a permit per byte.
    room: Arc<Semaphore>,
    capacity: u32,
    counts: Arc<Counts>,
}

impl DeadLetterQueue {
    /// Dead-letters `producer`'s failed records to `topic`, keeping at most `max_bytes` of
    /// copies while their outcomes are pending.
    pub fn new(producer: &Producer, topic: &str, max_bytes: usize) -> Result<Self, Error> {
        if !picokafka::record::is_valid_topic_name(topic) {
            return Err(Error::InvalidTopic { topic: topic.into() });
        }
        let capacity = max_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        Ok(Self {
            producer: producer.clone(),
            topic: topic.into(),
            room: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            counts: Arc::default(),
        })
    }

    /// Sends `record`; if it fails for good, its copy goes to the dead-letter topic.
    pub async fn send(&self, record: OwnedRecord) -> Result<(), Refused> {
        self.send_with_callback(record, |_| {}).await
    }

    /// Sends `record`; `callback` gets its outcome once known (after the copy's, when it was
    /// dead-lettered). A record not queued comes back in the [`Refused`].
    pub async fn send_with_callback(
        &self,
        record: OwnedRecord,
        callback: impl FnOnce(DeadLetterOutcome) + Send + 'static,
    ) -> Result<(), Refused> {
        // A copy larger than the whole budget takes all of it.
        let weight = u32::try_from(record.weight()).unwrap_or(u32::MAX).min(self.capacity);
        let permit = match tokio::time::timeout(
            self.producer.max_block(),
            self.room.clone().acquire_many_owned(weight),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            _ => return Err(Refused { error: Error::QueueFull, record }),
        };
        let copy = record.clone();
        let (producer, topic, counts) = (self.producer.clone(), self.topic.clone(), self.counts.clone());
        self.producer
            .send_detailed(record, move |result| match result {
                Ok(delivery) => {
                    counts.delivered.fetch_add(1, Ordering::Relaxed);
                    callback(DeadLetterOutcome::Delivered(delivery));
                    drop(permit);
                }
                Err(failure) if !can_dead_letter(&failure.error) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    callback(DeadLetterOutcome::Failed { error: failure.error, dead_letter_error: None });
                    drop(permit);
                }
                Err(failure) => {
                    // This runs on the producer's task: the copy is queued from a task of its own.
                    let letter = dead_letter(copy, &topic, &failure);
                    tokio::spawn(async move {
                        let landed = match producer.enqueue(letter).await {
                            Ok(delivery) => delivery.await,
                            Err(refused) => Err(refused.error),
                        };
                        let error = failure.error;
                        match landed {
                            Ok(dead_letter) => {
                                counts.dead_lettered.fetch_add(1, Ordering::Relaxed);
                                callback(DeadLetterOutcome::DeadLettered { error, dead_letter });
                            }
                            Err(e) => {
                                log_lost(&error, &e);
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                                callback(DeadLetterOutcome::Failed { error, dead_letter_error: Some(e) });
                            }
                        }
                        // Last: `flush` returns once every permit is back, outcome told.
                        drop(permit);
                    });
                }
            })
            .await
    }

    /// Waits up to `timeout` until every record sent through it has its outcome, dead letters
    /// included (the producer's `flush` does not wait for copies queued after it was called).
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let all = async {
            self.producer.flush(timeout).await?;
            // Every copy is back once all permits are.
            let all = self.room.acquire_many(self.capacity).await;
            drop(all);
            Ok(())
        };
        let late = crate::TimeoutError {
            operation: crate::TimedOperation::DeadLetterFlush,
            waited_ms: timeout.as_millis() as u64,
        };
        tokio::time::timeout(timeout, all).await.unwrap_or(Err(Error::Timeout(late)))
    }

    /// Outcomes so far.
    pub fn stats(&self) -> DeadLetterStats {
        DeadLetterStats {
            delivered: self.counts.delivered.load(Ordering::Relaxed),
            dead_lettered: self.counts.dead_lettered.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
        }
    }
}

/// Whether a copy could still be written: not when the producer itself is done for.
fn can_dead_letter(error: &Error) -> bool {
    use picokafka::DeliveryError as D;
    !matches!(
        error,
        Error::Closed
            | Error::Fatal(_)
            | Error::Authentication(_)
            | Error::Transaction(_)
            | Error::Delivery(D::Closed | D::Fatal(_) | D::Aborted)
    ) && !error.is_fatal()
}

/// The copy: the same key, value, headers and timestamp, to the dead-letter topic, with headers
/// saying where it was going and why it did not get there.
fn dead_letter(mut record: OwnedRecord, topic: &Arc<str>, failure: &Failure) -> OwnedRecord {
    let original = std::mem::replace(&mut record.topic, topic.clone());
    record.partition = None;
    record.headers.push((HEADER_TOPIC.into(), Some(original.as_bytes().to_vec())));
    record.headers.push((HEADER_PARTITION.into(), Some(failure.partition.to_string().into_bytes())));
    record.headers.push((HEADER_ERROR.into(), Some(failure.error.to_string().into_bytes())));
    record.headers.push((HEADER_ATTEMPTS.into(), Some(failure.attempts.to_string().into_bytes())));
    record
}

fn log_lost(error: &Error, dead_letter_error: &Error) {
    warn!("record lost: it failed ({error}) and so did its dead letter ({dead_letter_error})");
}
