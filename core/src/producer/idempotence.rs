//! Idempotence: the producer id and epoch, and each partition's sequence numbers.
//!
//! The producer-wide half ([`Idempotence`]) asks for a producer id (InitProducerId), and for a
//! new one when a partition's sequence broke. The per-partition half ([`PartitionSequence`],
//! kept in each partition slot) numbers batches in send order under one producer identity and
//! moves to a new identity only when nothing it sent is unresolved, so that a batch a broker may
//! already hold is never renumbered (which would write it twice).

use crate::protocol::record_batch::ProducerState;
use crate::protocol::ErrorCode;
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidState {
    /// Not idempotent.
    Off,
    /// Transactional: no producer id until `init_transactions`.
    Held,
    /// Needs an InitProducerId (first one, or an epoch bump).
    Wanted,
    Requesting,
    Ready,
}

/// What an InitProducerId answer means for the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitAnswer {
    /// Not the answer to a request of ours (one given up on): nothing changes.
    Ignored,
    /// A new producer identity: partitions whose sequence broke renumber under it.
    Ready,
    /// Ask again after a backoff for this many failures ([`Idempotence::retry_at`]).
    Retry { failures: u32 },
    /// The producer cannot go on.
    Fatal(ErrorCode),
}

/// The producer id and epoch, and the InitProducerId request's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Idempotence {
    state: PidState,
    producer_id: i64,
    epoch: i16,
    /// Earliest time to ask again after a failed InitProducerId.
    next_attempt: Instant,
    failures: u32,
    /// Batches are marked transactional.
    transactional: bool,
}

impl Idempotence {
    pub(crate) fn new(enabled: bool, transactional: bool, now: Instant) -> Self {
        let state = match (enabled, transactional) {
            (_, true) => PidState::Held,
            (true, false) => PidState::Wanted,
            (false, false) => PidState::Off,
        };
        Self { state, producer_id: -1, epoch: -1, next_attempt: now, failures: 0, transactional }
    }

    /// `init_transactions`: ask for the first producer id.
    pub(crate) fn want_first(&mut self) {
        if self.state == PidState::Held {
            self.state = PidState::Wanted;
        }
    }

    /// Whether batches are part of transactions.
    pub(crate) fn is_transactional(&self) -> bool {
        self.transactional
    }

    pub(crate) fn is_on(&self) -> bool {
        self.state != PidState::Off
    }

    /// Produce requests may go: idempotence is off, or a producer id is in hand.
    pub(crate) fn allows_produce(&self) -> bool {
        matches!(self.state, PidState::Off | PidState::Ready)
    }

    /// An InitProducerId is needed (now or after its backoff).
    pub(crate) fn is_wanted(&self) -> bool {
        self.state == PidState::Wanted
    }

    /// When the next InitProducerId may go.
    pub(crate) fn next_attempt(&self) -> Instant {
        self.next_attempt
    }

    /// The producer id and epoch (-1, -1 before the first).
    pub(crate) fn identity(&self) -> (i64, i16) {
        (self.producer_id, self.epoch)
    }

    /// An InitProducerId goes out: the producer id and epoch to ask with. Without a
    /// transactional id, or before InitProducerId v3, a fresh id (-1, -1): Kafka hands one out
    /// anyway (a bump of the current one is a transactional feature), and brokers such as
    /// librdkafka's mock refuse the current id with INVALID_PRODUCER_ID_MAPPING.
    pub(crate) fn start_request(&mut self, bump_current: bool) -> (i64, i16) {
        self.state = PidState::Requesting;
        if bump_current {
            (self.producer_id, self.epoch)
        } else {
            (-1, -1)
        }
    }

    /// The broker answered our InitProducerId.
    pub(crate) fn on_answer(&mut self, code: ErrorCode, producer_id: i64, epoch: i16) -> InitAnswer {
        if self.state != PidState::Requesting {
            return InitAnswer::Ignored;
        }
        match code {
            ErrorCode::NoError => {
                info!("producer id {} epoch {}", producer_id, epoch);
                self.producer_id = producer_id;
                self.epoch = epoch;
                self.state = PidState::Ready;
                self.failures = 0;
                InitAnswer::Ready
            }
            code if code.is_retriable() => {
                self.failures += 1;
                self.state = PidState::Wanted;
                InitAnswer::Retry { failures: self.failures }
            }
            code => InitAnswer::Fatal(code),
        }
    }

    /// The InitProducerId in flight will get no answer (its connection closed): the number of
    /// failures to back off for, if one was in flight.
    pub(crate) fn on_request_lost(&mut self) -> Option<u32> {
        if self.state != PidState::Requesting {
            return None;
        }
        self.state = PidState::Wanted;
        self.failures += 1;
        Some(self.failures)
    }

    /// The next InitProducerId waits until `at`.
    pub(crate) fn retry_at(&mut self, at: Instant) {
        self.next_attempt = at;
    }

    /// The coordinator moved the producer to `producer_id` and `epoch` itself (EndTxn v5,
    /// KIP-890 part 2): batches from now on go under it, each partition's sequences from 0.
    pub(crate) fn adopt(&mut self, producer_id: i64, epoch: i16) {
        if self.state == PidState::Ready && (producer_id, epoch) != self.identity() {
            info!("producer id {} epoch {} (from EndTxn)", producer_id, epoch);
            self.producer_id = producer_id;
            self.epoch = epoch;
        }
    }

    /// A partition's sequence broke: ask for a new producer id (once the current one is in
    /// hand; one being asked for already serves).
    pub(crate) fn request_new_id(&mut self) {
        if self.state == PidState::Ready {
            self.state = PidState::Wanted;
        }
    }

    /// The producer state for the next batch of a partition, `count` records: its identity and
    /// base sequence, taken in send order and kept for every retry. Without idempotence, none.
    pub(crate) fn stamp(&self, partition: &mut PartitionSequence, count: i32) -> ProducerState {
        if self.state != PidState::Ready {
            return ProducerState::NONE;
        }
        if !partition.belongs_to(self.identity()) {
            // The batch was let through only with nothing of the partition unresolved.
            partition.producer_id = self.producer_id;
            partition.producer_epoch = self.epoch;
            partition.next_sequence = 0;
            partition.confirmed = false;
        }
        let base_sequence = partition.next_sequence;
        partition.next_sequence = next_sequence(base_sequence, count);
        ProducerState {
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            base_sequence,
            transactional: self.transactional,
        }
    }

    /// Whether a partition's queued batch must wait before it may be sent: the producer has a
    /// new identity and the partition still has batches under the old one unresolved.
    pub(crate) fn must_resolve_first(&self, partition: &PartitionSequence) -> bool {
        self.state == PidState::Ready && !partition.belongs_to(self.identity())
    }
}

/// One partition's sequence numbers and the producer identity they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionSequence {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    /// Sequence of the next batch's first record.
    pub(crate) next_sequence: i32,
    /// Whether the broker has acknowledged a batch under that identity. Until it has, a batch
    /// waits for the one before it: a broker that has no state for the producer accepts any
    /// first sequence, so a later batch could otherwise be written before a retried earlier one.
    pub(crate) confirmed: bool,
    /// The broker refused this partition's sequence (a gap): its unacknowledged batches are
    /// renumbered under the next producer id.
    pub(crate) rewrite: bool,
}

impl PartitionSequence {
    pub(crate) const EMPTY: Self =
        Self { producer_id: -1, producer_epoch: -1, next_sequence: 0, confirmed: false, rewrite: false };

    fn belongs_to(&self, (producer_id, epoch): (i64, i16)) -> bool {
        (self.producer_id, self.producer_epoch) == (producer_id, epoch)
    }

    /// Starts over under `identity` from sequence `next` (the sequences of the batches it
    /// renumbered are below it).
    pub(crate) fn restart(&mut self, (producer_id, producer_epoch): (i64, i16), next: i32) {
        *self = Self { producer_id, producer_epoch, next_sequence: next, confirmed: false, rewrite: false };
    }
}

/// Kafka's sequence numbers wrap from `i32::MAX` to 0.
pub(crate) fn next_sequence(base: i32, count: i32) -> i32 {
    // Both are non-negative, so the sum fits a u32 and wraps at most once.
    let sum = base as u32 + count as u32;
    (sum & i32::MAX as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(id: i64, epoch: i16) -> Idempotence {
        let mut idem = Idempotence::new(true, false, Instant::ZERO);
        assert_eq!(idem.start_request(false), (-1, -1));
        assert_eq!(idem.on_answer(ErrorCode::NoError, id, epoch), InitAnswer::Ready);
        idem
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(next_sequence(5, 3), 8);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
    }

    #[test]
    fn batches_are_numbered_in_send_order_under_one_identity() {
        let idem = ready(7, 0);
        let mut p = PartitionSequence::EMPTY;
        let a = idem.stamp(&mut p, 10);
        let b = idem.stamp(&mut p, 5);
        assert_eq!((a.producer_id, a.producer_epoch, a.base_sequence), (7, 0, 0));
        assert_eq!(b.base_sequence, 10);
        assert_eq!(p.next_sequence, 15);
        assert!(!idem.must_resolve_first(&p));
    }

    #[test]
    fn a_new_identity_starts_a_partition_over_only_when_it_is_stamped() {
        let mut idem = ready(7, 0);
        let mut p = PartitionSequence::EMPTY;
        idem.stamp(&mut p, 4);
        p.confirmed = true;
        idem.request_new_id();
        assert!(idem.is_wanted() && !idem.allows_produce());
        assert_eq!(idem.start_request(false), (-1, -1));
        assert_eq!(idem.on_answer(ErrorCode::NoError, 8, 0), InitAnswer::Ready);
        assert!(idem.must_resolve_first(&p), "old batches resolve before the move");
        let s = idem.stamp(&mut p, 2);
        assert_eq!((s.producer_id, s.base_sequence), (8, 0));
        assert!(!p.confirmed, "the new identity is not confirmed yet");
    }

    #[test]
    fn retriable_answers_back_off_fatal_ones_stop() {
        let mut idem = Idempotence::new(true, false, Instant::ZERO);
        idem.start_request(false);
        assert_eq!(
            idem.on_answer(ErrorCode::CoordinatorNotAvailable, -1, -1),
            InitAnswer::Retry { failures: 1 }
        );
        assert!(idem.is_wanted());
        idem.start_request(false);
        assert_eq!(idem.on_request_lost(), Some(2));
        assert_eq!(idem.on_request_lost(), None, "nothing in flight any more");
        idem.start_request(false);
        let fatal = ErrorCode::ClusterAuthorizationFailed;
        assert_eq!(idem.on_answer(fatal, -1, -1), InitAnswer::Fatal(fatal));
    }

    #[test]
    fn without_idempotence_batches_carry_no_producer_state() {
        let idem = Idempotence::new(false, false, Instant::ZERO);
        let mut p = PartitionSequence::EMPTY;
        assert_eq!(idem.stamp(&mut p, 3), ProducerState::NONE);
        assert!(idem.allows_produce() && !idem.is_on());
    }
}
