//! From batches to Produce requests: which batches are ready for a leader, sealing them, and
//! encoding the request straight from the batch buffers.

use super::batches::{BatchId, BatchStatus, BatchTable, RequestTag};
use super::connections::RequestKind;
use super::idempotence::next_sequence;
use super::topics::{PartitionTable, TopicTable};
use super::Producer;
use crate::protocol::header::{ApiKey, Request};
use crate::protocol::produce;
use crate::protocol::record_batch::{self, ProducerState};
use crate::protocol::Writer;
use crate::time::{Duration, Instant};

/// Request bytes beyond the batches: header, acks, timeout, per-topic and per-partition fields.
const REQUEST_OVERHEAD: usize = 64;
const PARTITION_OVERHEAD: usize = 16;

impl Producer<'_> {
    /// Collects the ready batches led by connection `i`'s broker into a Produce request.
    pub(crate) fn build_produce(&mut self, now: Instant, i: usize) -> Option<RequestKind> {
        if !self.idempotence.allows_produce() {
            return None;
        }
        let node = self.conns[i].node_id;
        if node < 0 || self.partitions.len() == 0 {
            return None;
        }
        let correlation_id = self.conns.next_correlation_id(i);
        let tag = RequestTag { conn: i as u8, correlation_id };
        let linger = Duration::from_millis(u64::from(self.config.linger_ms));
        let mut size = REQUEST_OVERHEAD + self.config.client_id.len() + self.transactional_id_len();
        let mut head = None;
        let n = self.partitions.len();
        let led = |p: &super::topics::PartitionSlot| !p.is_free() && p.leader == node;
        // As the Java client drains a broker: once one of its batches is ready, the first batch
        // of every partition it leads goes along, lingered or not (a retry still waits for its
        // backoff). One request instead of several, and partitions whose batches fell out of
        // step (one full while another lingers) are back in step after one round trip, instead
        // of taking turns with small batches while records wait for their buffers.
        // Only slots below `high` were ever used; visited from the cursor on, wrapping round,
        // as if every slot were.
        let high = self.partitions.high();
        if !(0..high).any(|pi| led(&self.partitions[pi]) && self.sendable(now, pi, i, linger).is_some()) {
            return None;
        }
        let start = self.drain_cursor % n;
        for pi in (start.min(high)..high).chain(0..start.min(high)) {
            if !led(&self.partitions[pi]) {
                continue;
            }
            let Some(b) = self
                .candidate(pi, i, linger)
                .filter(|&(b, at)| at <= now || self.batches[b].status == BatchStatus::Open)
                .map(|(b, _)| b)
            else {
                continue;
            };
            // Sealing never grows a batch (compression is kept only if it shrinks it), so the
            // unsealed length bounds the sealed one: check the size before taking sequences.
            let s = &self.batches[b];
            let len = if s.status == BatchStatus::Sealed { s.len } else { s.builder.len };
            let topic = usize::from(self.partitions[pi].topic);
            let extra = len + PARTITION_OVERHEAD + self.topics[topic].name.len();
            if head.is_some() && size + extra > self.config.max_request_size {
                break;
            }
            if !self.seal(b) {
                continue;
            }
            size += extra;
            head = Some(self.link_by_topic(head, b));
            let s = &mut self.batches[b];
            s.status = BatchStatus::InFlight;
            s.request = Some(tag);
            s.attempts += 1;
            s.sent = true;
            if s.attempts > 1 {
                self.metrics.batches_retried += 1;
            }
        }
        let head = head?;
        self.drain_cursor = (start + 1) % n;
        Some(RequestKind::Produce { head, acks0: !self.config.acks.expects_response() })
    }

    /// Bytes of a Produce request around a batch for `topic`, when it is the only one: what
    /// `max.request.size` leaves a record is that much less.
    pub(crate) fn request_overhead(&self, topic: &str) -> usize {
        REQUEST_OVERHEAD
            + self.config.client_id.len()
            + self.transactional_id_len()
            + PARTITION_OVERHEAD
            + topic.len()
    }

    fn transactional_id_len(&self) -> usize {
        self.config.transactional_id.as_deref().map_or(0, str::len)
    }

    /// The batch partition `pi` can send on connection `i` now, if any.
    fn sendable(&self, now: Instant, pi: usize, i: usize, linger: Duration) -> Option<BatchId> {
        self.candidate(pi, i, linger).filter(|&(_, at)| at <= now).map(|(b, _)| b)
    }

    /// The batch partition `pi` would send next on connection `i`, and from when: the first in
    /// its queue that is neither done nor in flight, once lingered (or full, flushed, closing)
    /// or due for retry. `None` while that batch must wait for an answer instead: an earlier
    /// batch in flight on another connection (order first), an unconfirmed sequence, or older
    /// batches to resolve before a move to a new producer id.
    pub(crate) fn candidate(&self, pi: usize, i: usize, linger: Duration) -> Option<(BatchId, Instant)> {
        let p = &self.partitions[pi];
        if !self.txn_allows(pi) {
            // Waits for AddPartitionsToTxn.
            return None;
        }
        let idempotent = self.idempotence.is_on();
        let mut unresolved = false;
        for (b, s) in self.batches.partition_chain(p.head) {
            let at = match s.status {
                // Its held records go next, once its reports are handed out.
                BatchStatus::Done if s.held > 0 => return None,
                BatchStatus::Done => continue,
                BatchStatus::InFlight => {
                    if s.request.is_some_and(|r| usize::from(r.conn) != i) {
                        return None;
                    }
                    // Until the broker confirms the partition's sequence, one batch at a time.
                    if idempotent && !p.seq.confirmed {
                        return None;
                    }
                    unresolved = true;
                    continue;
                }
                BatchStatus::Open | BatchStatus::Closed
                    if self.idempotence.must_resolve_first(&p.seq)
                        && (unresolved || self.has_unresolved(pi)) =>
                {
                    return None;
                }
                BatchStatus::Open if self.closing.is_none() => s.created + linger,
                BatchStatus::Open | BatchStatus::Closed => Instant::ZERO,
                BatchStatus::Sealed => s.retry_at,
                BatchStatus::Free | BatchStatus::Part => return None,
            };
            return Some((b, at));
        }
        None
    }

    /// Whether partition `pi` has a batch sent and not yet acknowledged or failed.
    fn has_unresolved(&self, pi: usize) -> bool {
        self.batches
            .partition_chain(self.partitions[pi].head)
            .any(|(_, s)| s.sent && (s.status != BatchStatus::Done || s.held > 0))
    }

    /// Inserts batch `b` into the request list after the last batch of the same topic, so that
    /// the list is grouped by topic as the request's topic array needs.
    fn link_by_topic(&mut self, head: Option<BatchId>, b: BatchId) -> BatchId {
        let topic = self.partitions[usize::from(self.batches[b].partition)].topic;
        self.batches[b].next_in_request = None;
        let Some(head) = head else { return b };
        let topic_of = |s: &super::batches::BatchSlot| self.partitions[usize::from(s.partition)].topic;
        let mut insert_after = None;
        let mut last = head;
        for (at, s) in self.batches.request_chain(Some(head)) {
            if topic_of(s) == topic {
                insert_after = Some(at);
            }
            last = at;
        }
        let after = insert_after.unwrap_or(last);
        self.batches[b].next_in_request = self.batches[after].next_in_request;
        self.batches[after].next_in_request = Some(b);
        head
    }

    /// Completes a batch's bytes: compression, header, producer id, sequence, CRC. Sequence
    /// numbers are taken here, in send order, and kept for every retry.
    pub(crate) fn seal(&mut self, b: BatchId) -> bool {
        let s = &self.batches[b];
        if !matches!(s.status, BatchStatus::Open | BatchStatus::Closed) {
            return true;
        }
        let slot = usize::from(s.partition);
        let count = s.builder.record_count;
        let producer = self.idempotence.stamp(&mut self.partitions[slot].seq, count);
        match self.batches.seal(b, self.config.codec(), producer) {
            Ok(()) => true,
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
        let identity = self.idempotence.identity();
        let (producer_id, producer_epoch) = identity;
        let transactional = self.idempotence.is_transactional();
        for pi in 0..self.partitions.len() {
            if self.partitions[pi].is_free() || !self.partitions[pi].seq.rewrite {
                continue;
            }
            let mut sequence = 0;
            let mut next = self.partitions[pi].head;
            while let Some(b) = next {
                let s = &mut self.batches[b];
                next = s.next_in_partition;
                if s.status == BatchStatus::Sealed {
                    let base_sequence = sequence;
                    s.base_sequence = base_sequence;
                    // Its held records follow it (`hold_half`).
                    sequence = next_sequence(sequence, s.builder.record_count);
                    sequence = next_sequence(sequence, s.held);
                    let state = ProducerState { producer_id, producer_epoch, base_sequence, transactional };
                    record_batch::set_producer_state(self.batches.sealed_bytes_mut(b), state);
                }
            }
            self.partitions[pi].seq.restart(identity, sequence);
        }
    }

    /// The Produce request over batch list `head`, for encoding.
    pub(crate) fn produce_body(&self, head: BatchId) -> ProduceBody<'_> {
        ProduceBody {
            head,
            batches: &self.batches,
            partitions: &self.partitions,
            topics: &self.topics,
            acks: self.config.acks.as_i16(),
            timeout_ms: self.config.request_timeout_ms as i32,
            transactional_id: self.config.transactional_id.as_deref(),
        }
    }
}

/// A Produce request encoded straight from the batch list and buffers: no copy is assembled.
pub(crate) struct ProduceBody<'p> {
    head: BatchId,
    batches: &'p BatchTable<'p>,
    partitions: &'p PartitionTable<'p>,
    topics: &'p TopicTable<'p>,
    acks: i16,
    timeout_ms: i32,
    transactional_id: Option<&'p str>,
}

impl ProduceBody<'_> {
    fn topic_of(&self, b: BatchId) -> u16 {
        self.partitions[usize::from(self.batches[b].partition)].topic
    }
}

impl Request for ProduceBody<'_> {
    const API_KEY: ApiKey = ApiKey::Produce;
    const MIN_VERSION: i16 = produce::MIN_VERSION;
    const MAX_VERSION: i16 = produce::MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        // The list is grouped by topic: count the groups, then walk them.
        let next = |b: BatchId| self.batches[b].next_in_request;
        let mut topic_count = 0;
        let mut prev = None;
        let mut at = Some(self.head);
        while let Some(b) = at {
            if Some(self.topic_of(b)) != prev {
                topic_count += 1;
                prev = Some(self.topic_of(b));
            }
            at = next(b);
        }
        produce::encode_start(w, version, self.transactional_id, self.acks, self.timeout_ms, topic_count);
        let mut at = Some(self.head);
        while let Some(first) = at {
            let topic = self.topic_of(first);
            let mut n = 0;
            let mut end = at;
            while let Some(c) = end.filter(|&c| self.topic_of(c) == topic) {
                n += 1;
                end = next(c);
            }
            produce::encode_topic(w, version, &self.topics[usize::from(topic)].name, n);
            while at != end {
                let Some(b) = at else { break };
                let partition = self.partitions[usize::from(self.batches[b].partition)].partition;
                produce::encode_partition(w, version, partition, self.batches.sealed_bytes(b));
                at = next(b);
            }
            produce::encode_topic_end(w, version);
        }
        produce::encode_end(w, version);
    }
}
