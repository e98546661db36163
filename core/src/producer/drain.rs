//! From batches to Produce requests: which batches are ready for a leader, sealing them, and
//! encoding the request straight from the batch buffers.

use super::{PidState, Producer};
use crate::protocol::header::{ApiKey, Request};
use crate::protocol::produce;
use crate::protocol::record_batch::{self, BatchBuilder, ProducerState};
use crate::protocol::Writer;
use crate::storage::{BatchSlot, BatchStatus, RequestKind, RequestTag, TopicSlot, NIL};
use crate::time::{Duration, Instant};

/// Request bytes beyond the batches: header, acks, timeout, per-topic and per-partition fields.
const REQUEST_OVERHEAD: usize = 64;
const PARTITION_OVERHEAD: usize = 16;

impl Producer<'_> {
    /// Collects the ready batches led by connection `i`'s broker into a Produce request.
    pub(crate) fn build_produce(&mut self, now: Instant, i: usize) -> Option<RequestKind> {
        if !matches!(self.idempotence.state, PidState::Off | PidState::Ready) {
            return None;
        }
        let node = self.conns[i].node_id;
        if node < 0 || self.partitions.is_empty() {
            return None;
        }
        let correlation_id = self.conns[i].correlation_id.wrapping_add(1) & i32::MAX;
        let tag = RequestTag { conn: i as u8, correlation_id };
        let linger = Duration::from_millis(u64::from(self.config.linger_ms));
        let mut size = REQUEST_OVERHEAD + self.config.client_id.len();
        let mut head = NIL;
        let n = self.partitions.len();
        let start = self.drain_cursor % n;
        for k in 0..n {
            let pi = (start + k) % n;
            if self.partitions[pi].is_free() || self.partitions[pi].leader != node {
                continue;
            }
            let Some(b) = self.sendable(now, pi, i, linger) else { continue };
            // Sealing never grows a batch (compression is kept only if it shrinks it), so the
            // unsealed length bounds the sealed one: check the size before taking sequences.
            let s = &self.batches[b];
            let len = if s.status == BatchStatus::Sealed { s.len } else { s.builder.len };
            let topic = usize::from(self.partitions[pi].topic);
            let extra = len + PARTITION_OVERHEAD + self.topics[topic].name.len();
            if head != NIL && size + extra > self.config.max_request_size {
                break;
            }
            if !self.seal(b) {
                continue;
            }
            size += extra;
            head = self.link_by_topic(head, b);
            let s = &mut self.batches[b];
            s.status = BatchStatus::InFlight;
            s.request = Some(tag);
            s.attempts += 1;
            s.sent = true;
            if s.attempts > 1 {
                self.metrics.batches_retried += 1;
            }
        }
        if head == NIL {
            return None;
        }
        self.drain_cursor = (start + 1) % n;
        Some(RequestKind::Produce { head, acks0: !self.config.acks.expects_response() })
    }

    /// The batch partition `pi` can send on connection `i` now, if any.
    fn sendable(&self, now: Instant, pi: usize, i: usize, linger: Duration) -> Option<usize> {
        self.candidate(pi, i, linger).filter(|&(_, at)| at <= now).map(|(b, _)| b)
    }

    /// The batch partition `pi` would send next on connection `i`, and from when: the first in
    /// its queue that is neither done nor in flight, once lingered (or full, flushed, closing)
    /// or due for retry. `None` while that batch must wait for an answer instead: an earlier
    /// batch in flight on another connection (order first), an unconfirmed sequence, or older
    /// batches to resolve before a move to a new producer id.
    pub(crate) fn candidate(&self, pi: usize, i: usize, linger: Duration) -> Option<(usize, Instant)> {
        let p = &self.partitions[pi];
        let idempotent = self.idempotence.state != PidState::Off;
        let mut b = p.head;
        let mut unresolved = false;
        while b != NIL {
            let s = &self.batches[usize::from(b)];
            let at = match s.status {
                BatchStatus::Done => {
                    b = s.next_in_partition;
                    continue;
                }
                BatchStatus::InFlight => {
                    if s.request.is_some_and(|r| usize::from(r.conn) != i) {
                        return None;
                    }
                    // Until the broker confirms the partition's sequence, one batch at a time.
                    if idempotent && !p.confirmed {
                        return None;
                    }
                    unresolved = true;
                    b = s.next_in_partition;
                    continue;
                }
                BatchStatus::Open | BatchStatus::Closed
                    if self.idempotence.state == PidState::Ready
                        && (p.producer_id, p.producer_epoch)
                            != (self.idempotence.producer_id, self.idempotence.epoch)
                        && (unresolved || self.has_unresolved(pi)) =>
                {
                    return None;
                }
                BatchStatus::Open if self.closing.is_none() => s.created + linger,
                BatchStatus::Open | BatchStatus::Closed => Instant::ZERO,
                BatchStatus::Sealed => s.retry_at,
                BatchStatus::Free => return None,
            };
            return Some((usize::from(b), at));
        }
        None
    }

    /// Whether partition `pi` has a batch sent and not yet acknowledged or failed.
    fn has_unresolved(&self, pi: usize) -> bool {
        let mut b = self.partitions[pi].head;
        while b != NIL {
            let s = &self.batches[usize::from(b)];
            if s.sent && s.status != BatchStatus::Done {
                return true;
            }
            b = s.next_in_partition;
        }
        false
    }

    /// Inserts batch `b` into the request list after the last batch of the same topic, so that
    /// the list is grouped by topic as the request's topic array needs.
    fn link_by_topic(&mut self, head: u16, b: usize) -> u16 {
        let topic = self.partitions[usize::from(self.batches[b].partition)].topic;
        self.batches[b].next_in_request = NIL;
        if head == NIL {
            return b as u16;
        }
        let mut at = head;
        let mut insert_after = NIL;
        let mut last = head;
        while at != NIL {
            if self.partitions[usize::from(self.batches[usize::from(at)].partition)].topic == topic {
                insert_after = at;
            }
            last = at;
            at = self.batches[usize::from(at)].next_in_request;
        }
        let after = if insert_after == NIL { last } else { insert_after };
        self.batches[b].next_in_request = self.batches[usize::from(after)].next_in_request;
        self.batches[usize::from(after)].next_in_request = b as u16;
        head
    }

    /// Completes a batch's bytes: compression, header, producer id, sequence, CRC. Sequence
    /// numbers are taken here, in send order, and kept for every retry.
    pub(crate) fn seal(&mut self, b: usize) -> bool {
        let s = &self.batches[b];
        if !matches!(s.status, BatchStatus::Open | BatchStatus::Closed) {
            return true;
        }
        let slot = usize::from(s.partition);
        let count = s.builder.record_count;
        let producer = if self.idempotence.state == PidState::Ready {
            let (id, epoch) = (self.idempotence.producer_id, self.idempotence.epoch);
            let p = &mut self.partitions[slot];
            if (p.producer_id, p.producer_epoch) != (id, epoch) {
                // `sendable` let this batch through only with nothing unresolved before it.
                p.producer_id = id;
                p.producer_epoch = epoch;
                p.next_sequence = 0;
                p.confirmed = false;
            }
            let base_sequence = p.next_sequence;
            p.next_sequence = next_sequence(base_sequence, count);
            ProducerState {
                producer_id: self.idempotence.producer_id,
                producer_epoch: self.idempotence.epoch,
                base_sequence,
                transactional: false,
            }
        } else {
            ProducerState::NONE
        };
        let start = b * self.buffer_size;
        let buf = &mut self.batch_memory[start..start + self.config.batch_size];
        let builder = BatchBuilder::resume(buf, s.builder);
        match builder.finish(self.config.compression, producer, self.scratch) {
            Ok(len) => {
                let compressed = self.batch_memory[start + 22] & 0x07 != 0;
                let s = &mut self.batches[b];
                s.len = len;
                s.compressed = compressed;
                s.base_sequence = producer.base_sequence;
                s.status = BatchStatus::Sealed;
                true
            }
            Err(e) => {
                // `Producer::new` checked the scratch size and the codec, so this is a bug here.
                error!("cannot seal batch: {}", e);
                self.finish_batch(
                    b,
                    super::Outcome::Failed(crate::error::DeliveryError::Broker(
                        crate::protocol::ErrorCode::UnknownServerError,
                    )),
                );
                false
            }
        }
    }

    /// Under a new producer id: partitions whose sequence broke renumber their sealed batches
    /// from zero, in queue order. The others keep theirs and move over lazily (see `sendable`).
    pub(crate) fn reset_sequences(&mut self) {
        let producer_id = self.idempotence.producer_id;
        let epoch = self.idempotence.epoch;
        for pi in 0..self.partitions.len() {
            if self.partitions[pi].is_free() || !self.partitions[pi].rewrite {
                continue;
            }
            let mut sequence = 0;
            let mut b = self.partitions[pi].head;
            while b != NIL {
                let s = &mut self.batches[usize::from(b)];
                if s.status == BatchStatus::Sealed {
                    s.base_sequence = sequence;
                    sequence = next_sequence(sequence, s.builder.record_count);
                    let start = usize::from(b) * self.buffer_size;
                    let bytes = &mut self.batch_memory[start..start + s.len];
                    record_batch::set_producer_state(
                        bytes,
                        ProducerState {
                            producer_id,
                            producer_epoch: epoch,
                            base_sequence: s.base_sequence,
                            transactional: false,
                        },
                    );
                }
                b = s.next_in_partition;
            }
            let p = &mut self.partitions[pi];
            p.next_sequence = sequence;
            p.producer_id = producer_id;
            p.producer_epoch = epoch;
            p.confirmed = false;
            p.rewrite = false;
        }
    }

    /// The Produce request over batch list `head`, for encoding.
    pub(crate) fn produce_body(&self, head: u16, _conn: usize, _correlation_id: i32) -> ProduceBody<'_> {
        ProduceBody {
            head,
            batches: self.batches,
            memory: self.batch_memory,
            buffer_size: self.buffer_size,
            partitions: self.partitions,
            topics: self.topics,
            acks: self.config.acks.as_i16(),
            timeout_ms: self.config.request_timeout_ms as i32,
            transactional_id: self.config.transactional_id.as_deref(),
        }
    }
}

/// Kafka's sequence numbers wrap from `i32::MAX` to 0.
fn next_sequence(base: i32, count: i32) -> i32 {
    // Both are non-negative, so the sum fits a u32 and wraps at most once.
    let sum = base as u32 + count as u32;
    (sum & i32::MAX as u32) as i32
}

/// A Produce request encoded straight from the batch list and buffers: no copy is assembled.
pub(crate) struct ProduceBody<'p> {
    head: u16,
    batches: &'p [BatchSlot],
    memory: &'p [u8],
    buffer_size: usize,
    partitions: &'p [crate::storage::PartitionSlot],
    topics: &'p [TopicSlot],
    acks: i16,
    timeout_ms: i32,
    transactional_id: Option<&'p str>,
}

impl ProduceBody<'_> {
    fn topic_of(&self, b: u16) -> u16 {
        self.partitions[usize::from(self.batches[usize::from(b)].partition)].topic
    }

    fn next(&self, b: u16) -> u16 {
        self.batches[usize::from(b)].next_in_request
    }
}

impl Request for ProduceBody<'_> {
    const API_KEY: ApiKey = ApiKey::Produce;
    const MIN_VERSION: i16 = produce::MIN_VERSION;
    const MAX_VERSION: i16 = produce::MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        // The list is grouped by topic: count the groups, then walk them.
        let mut topic_count = 0;
        let mut b = self.head;
        let mut prev = u16::MAX;
        while b != NIL {
            if self.topic_of(b) != prev {
                topic_count += 1;
                prev = self.topic_of(b);
            }
            b = self.next(b);
        }
        produce::encode_start(w, version, self.transactional_id, self.acks, self.timeout_ms, topic_count);
        let mut b = self.head;
        while b != NIL {
            let topic = self.topic_of(b);
            let mut n = 0;
            let mut c = b;
            while c != NIL && self.topic_of(c) == topic {
                n += 1;
                c = self.next(c);
            }
            produce::encode_topic(w, version, &self.topics[usize::from(topic)].name, n);
            while b != c {
                let s = &self.batches[usize::from(b)];
                let start = usize::from(b) * self.buffer_size;
                let partition = self.partitions[usize::from(s.partition)].partition;
                produce::encode_partition(w, version, partition, &self.memory[start..start + s.len]);
                b = self.next(b);
            }
            produce::encode_topic_end(w, version);
        }
        produce::encode_end(w, version);
    }
}
