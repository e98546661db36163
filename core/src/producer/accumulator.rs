//! The accumulator: a sent record's way into a batch — its partition (explicit, custom,
//! murmur2 for keys, sticky for null keys), the partition's open batch or a new one, and the
//! token its delivery report will carry.

use super::batches::{BatchId, BatchStatus};
use super::topics::{PartitionTable, TopicState};
use super::Producer;
use crate::error::{SendError, SizeLimit};
use crate::partitioner;
use crate::protocol::record_batch::{self, BatchBuilder, PushError};
use crate::protocol::ErrorCode;
use crate::record::{Accepted, Record, RecordToken};
use crate::time::Instant;

impl Producer<'_> {
    /// `send`'s work: the record checked, its topic found (or metadata asked for), its
    /// partition chosen, its bytes appended.
    pub(super) fn accept<'r>(&mut self, now: Instant, record: Record<'r>) -> Result<Accepted, SendError<'r>> {
        if let Some(code) = self.fatal {
            return Err(SendError::Fatal(code));
        }
        if self.closing.is_some() {
            return Err(SendError::Closed);
        }
        if self.txn.is_on() && !self.txn.accepts_records() {
            return Err(SendError::NoTransaction(self.txn.state()));
        }
        let headers_ok = record.headers.len() <= i32::MAX as usize;
        let timestamp = record.timestamp.unwrap_or(now.as_millis() as i64 + self.unix_offset_ms);
        // Size on an empty batch: the least room this record can ever need.
        let size = record_batch::HEADER_LEN
            + BatchBuilder::new(&mut [0u8; record_batch::HEADER_LEN])
                .map(|b| b.record_size(timestamp, record.key, record.value, record.headers))
                .unwrap_or(usize::MAX);
        // As in the Java client, `batch.size` is a target: a larger record gets a batch of its
        // own. What it can never exceed is a request, or all the batch memory.
        let size = if headers_ok { size } else { usize::MAX };
        let alone = size.saturating_add(self.request_overhead(record.topic));
        if alone > self.config.max_request_size {
            return Err(too_large(alone, self.config.max_request_size, SizeLimit::MaxRequestSize));
        }
        if size > self.batches.memory_len() {
            return Err(too_large(size, self.batches.memory_len(), SizeLimit::BatchMemory));
        }
        let topic = self.topic_slot(now, record.topic)?;
        let (first, count) = match self.topics[topic].state {
            TopicState::Known { first, count } => (first, count),
            TopicState::Error(code) if !code.is_retriable() && code != ErrorCode::UnknownTopicOrPartition => {
                return Err(SendError::Topic(code));
            }
            _ => {
                // Unless the request in flight already asks about this topic.
                if !self.metadata.asking_about(topic) {
                    self.want_metadata();
                }
                self.schedule(now);
                return Err(SendError::MetadataPending(record));
            }
        };
        let count_i32 = i32::from(count);
        let partition = self.choose_partition(topic, &record, count_i32)?;
        let slot = usize::from(first) + partition as usize;
        self.close_batch_at_record_limit(slot);
        let token = self.append(now, topic, slot, &record, timestamp, size)?;
        self.join_transaction(now, slot);
        self.metrics.records_sent += 1;
        self.metrics.record_bytes += size as u64 - record_batch::HEADER_LEN as u64;
        Ok(Accepted { token, partition, timestamp })
    }

    pub(super) fn choose_partition(
        &mut self,
        topic: usize,
        record: &Record<'_>,
        count: i32,
    ) -> Result<i32, SendError<'static>> {
        let chosen = match record.partition {
            Some(p) => Some(p),
            None => match self.partitioner.as_mut() {
                Some(custom) => custom.partition(record.topic, record.key, record.value, count),
                None => None,
            },
        };
        match (chosen, record.key) {
            (Some(p), _) if !(0..count).contains(&p) => {
                Err(SendError::PartitionOutOfRange { partition: p, count })
            }
            (Some(p), _) => Ok(p),
            // One partition: the hash could only pick it (the CLI's and many topics' case).
            (None, Some(_)) if count == 1 => Ok(0),
            (None, Some(key)) => Ok(partitioner::partition_for_key(key, count)),
            (None, None) => Ok(self.sticky_partition(topic, count)),
        }
    }

    /// The partition null-key records of `topic` go to: the current sticky one until the batch
    /// they fill is closed, then another, chosen at random among partitions with a leader.
    fn sticky_partition(&mut self, topic: usize, count: i32) -> i32 {
        let t = &self.topics[topic];
        let TopicState::Known { first, .. } = t.state else { return 0 };
        let current = t.sticky_partition;
        if (0..count).contains(&current) {
            let slot = usize::from(first) + current as usize;
            let keep = t.sticky_batch.is_none_or(|b| {
                let b = &self.batches[b];
                b.status == BatchStatus::Open && usize::from(b.partition) == slot
            });
            if keep {
                return current;
            }
        }
        // Prefer a partition with a leader, and a different one from last time.
        let eligible = |p: i32, partitions: &PartitionTable<'_>| {
            partitions[usize::from(first) + p as usize].leader >= 0 && (p != current || count == 1)
        };
        let available = (0..count).filter(|&p| eligible(p, &self.partitions)).count() as u32;
        let pick = if available == 0 {
            self.rng.below(count as u32) as i32
        } else {
            let n = self.rng.below(available) as usize;
            (0..count).filter(|&p| eligible(p, &self.partitions)).nth(n).unwrap_or(0)
        };
        let t = &mut self.topics[topic];
        t.sticky_partition = pick;
        t.sticky_batch = None;
        pick
    }

    /// Appends to the partition's open batch, opening a new one if needed. A record of `size`
    /// bytes (in an empty batch) larger than `batch.size` gets a batch of its own, closed after
    /// it, over as many slots as it needs.
    pub(super) fn append<'r>(
        &mut self,
        now: Instant,
        topic: usize,
        slot: usize,
        record: &Record<'r>,
        timestamp: i64,
        size: usize,
    ) -> Result<RecordToken, SendError<'r>> {
        let tail = self.partitions[slot].tail.filter(|&b| self.batches[b].status == BatchStatus::Open);
        if let Some(tail) = tail {
            match self.push(tail, record, timestamp) {
                Ok(()) => return Ok(self.issue_token(topic, slot, tail)),
                Err(PushError::Full { .. }) => self.batches[tail].status = BatchStatus::Closed,
                Err(PushError::TooLarge) => return Err(field_too_large(self.config.max_request_size)),
            }
        }
        let p = &mut self.partitions[slot];
        let first_token = (u64::from(p.uid) << 32) | u64::from(p.next_token);
        let oversized = size > self.config.batch_size;
        let b = if oversized {
            self.batches.open_extent(slot as u16, now, first_token, size)
        } else {
            self.batches.open(slot as u16, now, first_token)
        };
        // No room now (for a large record: no run of free slots long enough) is not an error.
        let Some(b) = b else {
            return Err(SendError::QueueFull(*record));
        };
        match p.tail {
            None => p.head = Some(b),
            Some(tail) => self.batches[tail].next_in_partition = Some(b),
        }
        p.tail = Some(b);
        self.metrics.batches_created += 1;
        // A new batch may need its leader's connection opened.
        self.schedule(now);
        match self.push(b, record, timestamp) {
            Ok(()) => {
                if oversized {
                    // Nothing else joins a batch sized to one record.
                    self.batches[b].status = BatchStatus::Closed;
                }
                Ok(self.issue_token(topic, slot, b))
            }
            // `send` checked the record fits an empty batch; should that ever be wrong, the
            // empty batch stays open and the record is refused.
            Err(_) => Err(field_too_large(self.config.max_request_size)),
        }
    }

    fn push(&mut self, b: BatchId, record: &Record<'_>, timestamp: i64) -> Result<(), PushError> {
        self.batches.push(b, timestamp, record.key, record.value, record.headers)
    }

    fn issue_token(&mut self, topic: usize, slot: usize, batch: BatchId) -> RecordToken {
        let p = &mut self.partitions[slot];
        let token = RecordToken((u64::from(p.uid) << 32) | u64::from(p.next_token));
        p.next_token = p.next_token.wrapping_add(1);
        let t = &mut self.topics[topic];
        if t.sticky_partition == p.partition {
            t.sticky_batch = Some(batch);
        }
        token
    }
}

fn too_large(size: usize, max: usize, limit: SizeLimit) -> SendError<'static> {
    SendError::RecordTooLarge { size, max, limit }
}

/// A key, value or header longer than Kafka allows: no request can carry it.
fn field_too_large(max_request_size: usize) -> SendError<'static> {
    too_large(usize::MAX, max_request_size, SizeLimit::MaxRequestSize)
}
