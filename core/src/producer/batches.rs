//! The batch table: fixed batch buffers and their bookkeeping, owned in one place.
//!
//! A batch lives in one slot from its first record until its last delivery report. Slots are
//! named by [`BatchId`]. A record larger than `batch.size` gets a batch of its own over a run of
//! consecutive slots (the memory is contiguous): the first holds the batch and its `extent`,
//! the others are [`BatchStatus::Part`] of it, and all are freed together. Such runs are looked
//! for from the top of the table, ordinary batches take the lowest free slot, so that the two
//! fragment each other less. Batches a partition's batches form a chain in creation order
//! (`next_in_partition`) and a Produce request's batches another (`next_in_request`), both
//! walked with [`BatchTable::partition_chain`] / [`BatchTable::request_chain`] or, where the
//! walk changes the batches it passes, with the `next_in_*` links read before each change.

use core::cell::Cell;
use core::num::NonZeroU16;
use core::ops::{Index, IndexMut};

use crate::error::DeliveryError;
#[cfg(feature = "split-batches")]
use crate::protocol::record_batch::{self, EncodedRecords, HEADER_LEN};
use crate::protocol::record_batch::{BatchBuilder, BatchState, Codec, Compression, ProducerState, PushError};
#[cfg(feature = "split-batches")]
use crate::protocol::DecodeError;
use crate::protocol::ErrorCode;
use crate::time::Instant;

use super::timers::Touched;

/// A batch slot. `u16::MAX - 1` slots at most (checked in `Producer::new`). Kept as index + 1
/// so that `Option<BatchId>`, the chains' links, is as small as the id (no tag word, no extra
/// code for it on a microcontroller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchId(NonZeroU16);

impl BatchId {
    fn new(index: usize) -> Self {
        // `index < u16::MAX - 1`: the table is at most that long.
        Self(NonZeroU16::MIN.saturating_add(index as u16))
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.0.get() - 1)
    }

    #[cfg(test)]
    pub(crate) fn for_test(index: u16) -> Self {
        Self::new(usize::from(index))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchStatus {
    Free,
    /// Accepting records.
    Open,
    /// Full, or flushed: no more records, not yet sealed.
    Closed,
    /// Header, CRC and (if any) compression done; bytes final; waiting to be sent.
    Sealed,
    /// Part of a request in flight.
    InFlight,
    /// Acknowledged or failed; its delivery reports are pending.
    Done,
    /// Taken by the batch of an earlier slot that spans several: not a batch itself.
    Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered { base_offset: i64, log_append_time: i64 },
    Failed(DeliveryError),
}

/// Which request a batch is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTag {
    pub conn: u8,
    pub correlation_id: i32,
}

/// One batch buffer's bookkeeping. Public so that storage can be declared; its contents are
/// the core's.
#[derive(Debug, Clone)]
pub struct BatchSlot {
    pub(crate) status: BatchStatus,
    /// The partition slot it belongs to.
    pub(crate) partition: u16,
    pub(crate) builder: BatchState,
    /// Sealed length in bytes.
    pub(crate) len: usize,
    pub(crate) first_token: u64,
    pub(crate) created: Instant,
    pub(crate) attempts: u32,
    pub(crate) retry_at: Instant,
    /// Sequence of the first record, once assigned (idempotence); -1 before.
    pub(crate) base_sequence: i32,
    pub(crate) request: Option<RequestTag>,
    pub(crate) next_in_partition: Option<BatchId>,
    pub(crate) next_in_request: Option<BatchId>,
    pub(crate) outcome: Outcome,
    pub(crate) last_error: Option<ErrorCode>,
    /// Whether its bytes ever reached a broker (a failure then leaves a sequence gap).
    pub(crate) sent: bool,
    /// Records after the sealed ones in its buffer (the second half of a batch split without a
    /// free slot, `hold_half`): sent as a batch of their own once this one is reported.
    pub(crate) held: i32,
    /// Where the held records end (they start at `builder.len`).
    #[cfg(feature = "split-batches")]
    pub(crate) held_end: u32,
    /// The held records fail with this, whatever becomes of the sealed ones (`close`'s deadline,
    /// a fatal error).
    pub(crate) held_error: Option<DeliveryError>,
    /// 0 for an ordinary batch (one slot, `batch.size`); else the slots (whole buffers) taken by
    /// a batch sized to one record larger than `batch.size`.
    pub(crate) extent: u16,
}

impl BatchSlot {
    /// An unused slot, to declare storage with (`[BatchSlot::EMPTY; N]`).
    pub const EMPTY: Self = Self {
        status: BatchStatus::Free,
        partition: u16::MAX,
        builder: BatchState::empty(),
        len: 0,
        first_token: 0,
        created: Instant::ZERO,
        attempts: 0,
        retry_at: Instant::ZERO,
        base_sequence: -1,
        request: None,
        next_in_partition: None,
        next_in_request: None,
        outcome: Outcome::Failed(DeliveryError::Closed),
        last_error: None,
        sent: false,
        held: 0,
        #[cfg(feature = "split-batches")]
        held_end: 0,
        held_error: None,
        extent: 0,
    };

    /// Neither done nor in flight: waiting to be sent (or to be sent again).
    pub(crate) fn is_queued(&self) -> bool {
        matches!(self.status, BatchStatus::Open | BatchStatus::Closed | BatchStatus::Sealed)
    }
}

impl Default for BatchSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// The batch slots, their buffers (`memory` split evenly, `batch_size` of each used) and the
/// compression workspace.
pub(crate) struct BatchTable<'a> {
    slots: &'a mut [BatchSlot],
    memory: &'a mut [u8],
    buffer_size: usize,
    batch_size: usize,
    scratch: &'a mut [u8],
    /// Batches done whose reports have not all been handed out.
    done: usize,
    /// Slots not free: counted, as every turn of a transport's loop asks.
    used: usize,
    /// Batches (a batch over several slots counts once).
    live: usize,
    /// Batches holding records (`held`).
    holding: usize,
    /// The partitions whose batches changed since the timer table last looked (see `timers`).
    touched: Cell<Touched>,
}

impl<'a> BatchTable<'a> {
    /// Clears every slot. `batch_size` must fit a buffer (`memory.len() / slots.len()`).
    pub(crate) fn new(
        slots: &'a mut [BatchSlot],
        memory: &'a mut [u8],
        scratch: &'a mut [u8],
        batch_size: usize,
    ) -> Self {
        for slot in slots.iter_mut() {
            *slot = BatchSlot::EMPTY;
        }
        let buffer_size = memory.len() / slots.len();
        Self {
            slots,
            memory,
            buffer_size,
            batch_size,
            scratch,
            done: 0,
            used: 0,
            live: 0,
            holding: 0,
            touched: Cell::new(Touched::ALL),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The partitions whose batches changed since the last call.
    #[cfg_attr(feature = "compact-code", allow(dead_code))] // read by the timer table only
    pub(crate) fn take_touched(&self) -> Touched {
        self.touched.take()
    }

    /// Batch `b`'s partition's chain changes.
    fn touch(&mut self, b: BatchId) {
        let partition = self.slots[b.index()].partition;
        self.touched.get_mut().add(partition);
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = BatchId> {
        (0..self.slots.len()).map(BatchId::new)
    }

    /// Slots taken.
    pub(crate) fn in_use(&self) -> usize {
        self.used
    }

    /// Batches in the table, done or not.
    pub(crate) fn batch_count(&self) -> usize {
        self.live
    }

    /// Whether a batch holds records to send after it (`hold_half`).
    pub(crate) fn holding(&self) -> bool {
        self.holding > 0
    }

    /// The bytes of every buffer together: no batch can be larger.
    pub(crate) fn memory_len(&self) -> usize {
        self.buffer_size * self.slots.len()
    }

    /// Where batch `b`'s buffer starts, and how many bytes it may fill.
    fn region(&self, b: BatchId) -> (usize, usize) {
        let extent = usize::from(self.slots[b.index()].extent);
        let len = if extent == 0 { self.batch_size } else { extent * self.buffer_size };
        (b.index() * self.buffer_size, len)
    }

    pub(crate) fn all_free(&self) -> bool {
        self.used == 0
    }

    /// Batches done whose reports are not all handed out yet.
    pub(crate) fn done_count(&self) -> usize {
        self.done
    }

    /// Opens a free slot for partition slot `partition`: `None` when every slot is taken.
    pub(crate) fn open(&mut self, partition: u16, now: Instant, first_token: u64) -> Option<BatchId> {
        let i = self.slots.iter().position(|s| s.status == BatchStatus::Free)?;
        Some(self.occupy(i, 1, 0, partition, now, first_token))
    }

    /// Opens slot `i` for a batch over `span` slots (`extent`: see [`BatchSlot::extent`]), the
    /// ones after it marked as its parts.
    fn occupy(
        &mut self,
        i: usize,
        span: usize,
        extent: u16,
        partition: u16,
        now: Instant,
        first_token: u64,
    ) -> BatchId {
        self.touched.get_mut().add(partition);
        self.slots[i] = BatchSlot {
            status: BatchStatus::Open,
            partition,
            builder: BatchState::empty(),
            created: now,
            first_token,
            extent,
            ..BatchSlot::EMPTY
        };
        for s in &mut self.slots[i + 1..i + span] {
            s.status = BatchStatus::Part;
        }
        self.used += span;
        self.live += 1;
        BatchId::new(i)
    }

    /// Opens a batch for one record of `bytes` bytes (header included), larger than
    /// `batch.size`, over the highest run of free slots long enough: `None` when there is none.
    pub(crate) fn open_extent(
        &mut self,
        partition: u16,
        now: Instant,
        first_token: u64,
        bytes: usize,
    ) -> Option<BatchId> {
        let span = bytes.div_ceil(self.buffer_size).max(1);
        let mut run = 0;
        let mut at = None;
        for i in (0..self.slots.len()).rev() {
            if self.slots[i].status != BatchStatus::Free {
                run = 0;
                continue;
            }
            run += 1;
            if run == span {
                at = Some(i);
                break;
            }
        }
        // `span <= slots.len() < u16::MAX`.
        Some(self.occupy(at?, span, span as u16, partition, now, first_token))
    }

    /// Appends a record to open batch `b`'s buffer.
    pub(crate) fn push(
        &mut self,
        b: BatchId,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[crate::protocol::record_batch::Header<'_>],
    ) -> Result<(), PushError> {
        self.touch(b);
        let (start, len) = self.region(b);
        let buf = &mut self.memory[start..start + len];
        let mut builder = BatchBuilder::resume(buf, self.slots[b.index()].builder);
        builder.push(timestamp, key, value, headers)?;
        self.slots[b.index()].builder = builder.state();
        Ok(())
    }

    /// Finishes batch `b`'s bytes (compression, header, producer state, CRC) and marks it
    /// sealed; the error of the codec otherwise. A batch larger than the scratch can compress
    /// (one record larger than `batch.size` on a microcontroller) goes uncompressed.
    pub(crate) fn seal(
        &mut self,
        b: BatchId,
        compression: impl Into<Codec>,
        producer: ProducerState,
    ) -> Result<(), crate::protocol::record_batch::FinishError> {
        self.touch(b);
        let (start, cap) = self.region(b);
        let buf = &mut self.memory[start..start + cap];
        let builder = BatchBuilder::resume(buf, self.slots[b.index()].builder);
        let len = builder.finish(compression, producer, self.scratch)?;
        let s = &mut self.slots[b.index()];
        s.len = len;
        s.base_sequence = producer.base_sequence;
        s.status = BatchStatus::Sealed;
        Ok(())
    }

    /// The final bytes of sealed batch `b`.
    pub(crate) fn sealed_bytes(&self, b: BatchId) -> &[u8] {
        let start = b.index() * self.buffer_size;
        &self.memory[start..start + self.slots[b.index()].len]
    }

    /// The final bytes of sealed batch `b`, to rewrite its producer state.
    pub(crate) fn sealed_bytes_mut(&mut self, b: BatchId) -> &mut [u8] {
        self.touch(b);
        let start = b.index() * self.buffer_size;
        &mut self.memory[start..start + self.slots[b.index()].len]
    }

    /// Marks `b` done with `outcome`: `false` (and no change) if it already was, or is free.
    pub(crate) fn finish(&mut self, b: BatchId, outcome: Outcome) -> bool {
        self.touch(b);
        let s = &mut self.slots[b.index()];
        if matches!(s.status, BatchStatus::Done | BatchStatus::Free | BatchStatus::Part) {
            return false;
        }
        s.status = BatchStatus::Done;
        s.outcome = outcome;
        s.request = None;
        self.done += 1;
        true
    }

    /// Every report of done batch `b` was handed out: its slots are free again.
    pub(crate) fn release(&mut self, b: BatchId) {
        self.touch(b);
        debug_assert_eq!(self.slots[b.index()].held, 0, "held records are unheld first");
        let span = usize::from(self.slots[b.index()].extent).max(1);
        for s in &mut self.slots[b.index()..b.index() + span] {
            *s = BatchSlot::EMPTY;
        }
        self.done -= 1;
        self.used -= span;
        self.live -= 1;
    }

    /// Splits sealed batch `b`, of two records or more, in two: the first half of its records
    /// stays in `b`, the rest moves to the lowest free slot, placed after `b` in the partition's
    /// chain with its tokens and sequence numbers following `b`'s (so that later batches keep
    /// theirs). Both are sealed again with `compression`. `Ok(None)` when no slot is free
    /// (nothing changed); an error if `b`'s bytes do not read back (a bug here).
    #[cfg(feature = "split-batches")]
    pub(crate) fn split(
        &mut self,
        b: BatchId,
        compression: Compression,
    ) -> Result<Option<BatchId>, DecodeError> {
        self.touch(b);
        let Some(j) = self.slots.iter().position(|s| s.status == BatchStatus::Free) else {
            return Ok(None);
        };
        debug_assert_eq!(self.slots[b.index()].held, 0, "a batch holding records splits in place");
        // Split in place, then move the held half to the free slot.
        self.hold_half(b, compression)?;
        self.holding -= 1;
        let (start, cap) = self.region(b);
        let second_start = j * self.buffer_size;
        let (low, high) = self.memory.split_at_mut(start.max(second_start));
        let (mine, theirs) = if start < second_start {
            (&low[start..start + cap], &mut high[..self.batch_size])
        } else {
            (&high[..cap], &mut low[second_start..second_start + self.batch_size])
        };
        let s = &mut self.slots[b.index()];
        let (first, base_timestamp) = (s.builder.record_count, s.builder.base_timestamp);
        let held = &mine[s.builder.len..s.held_end as usize];
        (s.held, s.held_end) = (0, 0);
        let (producer, _) = record_batch::sealed_state(mine);
        let mut tail = BatchBuilder::resume(theirs, BatchState::empty());
        for record in EncodedRecords::new(held) {
            let record = record?;
            let timestamp = base_timestamp.wrapping_add(record.timestamp_delta);
            // The half of a batch that fit `batch.size` fits a buffer.
            tail.push_encoded(timestamp, record.fields).map_err(|_| DecodeError::InvalidLength)?;
        }
        let tail = tail.state();
        let b2 = BatchId::new(j);
        let s = &self.slots[b.index()];
        let counter = (s.first_token as u32).wrapping_add(first as u32);
        self.slots[j] = BatchSlot {
            status: BatchStatus::Closed,
            partition: s.partition,
            builder: tail,
            first_token: (s.first_token & !0xffff_ffff) | u64::from(counter),
            created: s.created,
            next_in_partition: s.next_in_partition,
            last_error: s.last_error,
            sent: s.sent,
            ..BatchSlot::EMPTY
        };
        self.slots[b.index()].next_in_partition = Some(b2);
        self.used += 1;
        self.live += 1;
        let base_sequence = if producer.base_sequence < 0 {
            -1
        } else {
            super::idempotence::next_sequence(producer.base_sequence, first)
        };
        // `Producer::new` checked the codec; a scratch too small means no compression.
        let sealed = self.seal(b2, compression, ProducerState { base_sequence, ..producer });
        debug_assert!(sealed.is_ok());
        Ok(Some(b2))
    }

    /// Splits sealed batch `b`, of two records or more, in two without a second slot: the first
    /// half of its records is sealed alone, the rest held in its buffer, behind them, until
    /// they are reported (`unhold`). Its tokens and sequence numbers are unchanged.
    #[cfg(feature = "split-batches")]
    pub(crate) fn hold_half(&mut self, b: BatchId, compression: Compression) -> Result<(), DecodeError> {
        self.touch(b);
        let (start, cap) = self.region(b);
        let buf = &mut self.memory[start..start + cap];
        let s = &mut self.slots[b.index()];
        let end = s.builder.len;
        let (producer, codec) = record_batch::sealed_state(buf);
        if codec != Some(Compression::None) {
            // Decompressed back in place, before the records it holds, if any.
            let codec = codec.ok_or(DecodeError::Compression)?;
            let n = record_batch::decompress_own(codec, &buf[HEADER_LEN..s.len], self.scratch)?;
            if HEADER_LEN + n != end {
                return Err(DecodeError::InvalidLength);
            }
            buf[HEADER_LEN..end].copy_from_slice(&self.scratch[..n]);
        }
        let base = s.builder.base_timestamp;
        let first = s.builder.record_count / 2;
        let mut head = BatchState { base_timestamp: base, max_timestamp: base, ..BatchState::empty() };
        for record in EncodedRecords::new(&buf[HEADER_LEN..end]).take(first as usize) {
            let record = record?;
            head.len += record.size;
            head.record_count += 1;
            head.max_timestamp = head.max_timestamp.max(base.wrapping_add(record.timestamp_delta));
        }
        if s.held == 0 {
            s.held_end = end as u32;
            self.holding += 1;
        }
        s.held += s.builder.record_count - first;
        s.builder = head;
        s.status = BatchStatus::Closed;
        s.request = None;
        s.attempts = 0;
        let sealed = self.seal(b, compression, producer);
        debug_assert!(sealed.is_ok());
        Ok(())
    }

    /// Done batch `b`'s reports are all handed out: if it holds records, they become the batch
    /// in its slot, sealed and ready to send (`Some(None)`), or, if `b` failed, failed the same
    /// way, their reports next (`Some(Some(error))`). `None` if it held none.
    #[cfg(feature = "split-batches")]
    pub(crate) fn unhold(&mut self, b: BatchId, compression: Compression) -> Option<Option<DeliveryError>> {
        self.touch(b);
        let s = &self.slots[b.index()];
        if s.held == 0 {
            return None;
        }
        let (sent, held) = (s.builder.record_count, s.held);
        let counter = (s.first_token as u32).wrapping_add(sent as u32);
        let first_token = (s.first_token & !0xffff_ffff) | u64::from(counter);
        let (start, cap) = self.region(b);
        let buf = &mut self.memory[start..start + cap];
        let (producer, _) = record_batch::sealed_state(buf);
        let failed = match s.outcome {
            Outcome::Failed(e) => Some(e),
            Outcome::Delivered { .. } => s.held_error,
        };
        let moved = match failed {
            Some(_) => None,
            None => record_batch::compact_records(
                buf,
                s.builder.len,
                s.held_end as usize,
                s.builder.base_timestamp,
            ),
        };
        self.holding -= 1;
        let s = &mut self.slots[b.index()];
        s.first_token = first_token;
        (s.held, s.held_end, s.held_error) = (0, 0, None);
        let Some(state) = moved.filter(|m| m.record_count == held) else {
            // Failed with the sealed ones, or (timestamps running far backwards) not movable.
            s.builder.record_count = held;
            let error = failed.unwrap_or(DeliveryError::Broker(ErrorCode::MessageTooLarge));
            s.outcome = Outcome::Failed(error);
            return Some(Some(error));
        };
        s.builder = state;
        s.status = BatchStatus::Closed;
        s.outcome = BatchSlot::EMPTY.outcome;
        s.attempts = 0;
        s.retry_at = Instant::ZERO;
        self.done -= 1;
        let base_sequence = if producer.base_sequence < 0 {
            -1
        } else {
            super::idempotence::next_sequence(producer.base_sequence, sent)
        };
        let sealed = self.seal(b, compression, ProducerState { base_sequence, ..producer });
        debug_assert!(sealed.is_ok());
        Some(None)
    }

    /// Only a split holds records: without one, none are ever held.
    #[cfg(not(feature = "split-batches"))]
    pub(crate) fn unhold(&mut self, _: BatchId, _: Compression) -> Option<Option<DeliveryError>> {
        None
    }

    /// The batches of a partition's chain, from `head`, in creation order.
    pub(crate) fn partition_chain(&self, head: Option<BatchId>) -> Chain<'_, 'a> {
        Chain { table: self, next: head, by_request: false }
    }

    /// The batches of a request, from `head`, grouped by topic.
    pub(crate) fn request_chain(&self, head: Option<BatchId>) -> Chain<'_, 'a> {
        Chain { table: self, next: head, by_request: true }
    }
}

impl Index<BatchId> for BatchTable<'_> {
    type Output = BatchSlot;
    fn index(&self, b: BatchId) -> &BatchSlot {
        &self.slots[b.index()]
    }
}

impl IndexMut<BatchId> for BatchTable<'_> {
    fn index_mut(&mut self, b: BatchId) -> &mut BatchSlot {
        self.touch(b);
        &mut self.slots[b.index()]
    }
}

/// A walk along one of the batch chains.
pub(crate) struct Chain<'t, 'a> {
    table: &'t BatchTable<'a>,
    next: Option<BatchId>,
    by_request: bool,
}

impl<'t> Iterator for Chain<'t, '_> {
    type Item = (BatchId, &'t BatchSlot);
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.next?;
        let s = &self.table.slots[b.index()];
        self.next = if self.by_request { s.next_in_request } else { s.next_in_partition };
        Some((b, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::RecordBatch;

    fn table<'a>(slots: &'a mut [BatchSlot], memory: &'a mut [u8], scratch: &'a mut [u8]) -> BatchTable<'a> {
        BatchTable::new(slots, memory, scratch, 256)
    }

    #[test]
    fn open_push_seal_finish_release() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 2], [0u8; 512], [0u8; 512]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let a = t.open(0, Instant::from_millis(5), 7).unwrap();
        let b = t.open(0, Instant::from_millis(6), 9).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.open(0, Instant::ZERO, 0), None, "two slots only");
        t.push(a, 1, Some(b"k"), Some(b"v"), &[]).unwrap();
        assert_eq!(t[a].builder.record_count, 1);
        t.seal(a, Compression::None, ProducerState::NONE).unwrap();
        assert_eq!(t[a].status, BatchStatus::Sealed);
        assert_eq!(t.sealed_bytes(a).len(), t[a].len);
        assert!(t.finish(a, Outcome::Failed(DeliveryError::Closed)));
        assert!(!t.finish(a, Outcome::Failed(DeliveryError::Closed)), "done once");
        assert_eq!((t.done_count(), t.in_use()), (1, 2));
        t.release(a);
        assert_eq!((t.done_count(), t.in_use()), (0, 1));
        assert!(t.open(0, Instant::ZERO, 0).is_some(), "a released slot is reused");
    }

    #[test]
    fn a_record_too_large_for_the_buffer_is_refused() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 1], [0u8; 256], [0u8; 256]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let a = t.open(0, Instant::ZERO, 0).unwrap();
        assert!(t.push(a, 1, None, Some(&[0u8; 300]), &[]).is_err());
        assert_eq!(t[a].builder.record_count, 0, "nothing half-written counts");
    }

    #[test]
    fn a_large_record_takes_a_run_of_slots_from_the_top() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 4], [0u8; 1024], [0u8; 0]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        assert_eq!(t.memory_len(), 1024);
        let big = t.open_extent(0, Instant::ZERO, 40, 600).unwrap();
        assert_eq!((big.index(), t[big].extent), (1, 3), "three buffers, the highest ones");
        assert!((2..4).all(|i| t[BatchId::for_test(i)].status == BatchStatus::Part));
        assert_eq!((t.in_use(), t.batch_count()), (3, 1));
        t.push(big, 9, None, Some(&[7u8; 550]), &[]).unwrap();
        t.seal(big, Compression::Lz4, ProducerState::NONE).unwrap();
        let (batch, _) = RecordBatch::decode(t.sealed_bytes(big)).unwrap();
        assert_eq!(batch.compression(), Some(Compression::None), "no scratch for it: uncompressed");
        assert_eq!(batch.records().unwrap().iter().next().unwrap().value, Some(&[7u8; 550][..]));
        let small = t.open(0, Instant::ZERO, 41).unwrap();
        assert_eq!(small.index(), 0, "ordinary batches take the lowest free slot");
        assert_eq!(t.open(0, Instant::ZERO, 0), None);
        assert_eq!(t.open_extent(0, Instant::ZERO, 0, 300), None);
        // A part is no batch: it cannot be finished.
        assert!(!t.finish(BatchId::for_test(2), Outcome::Failed(DeliveryError::Closed)));
        assert!(t.finish(big, Outcome::Failed(DeliveryError::Closed)));
        t.release(big);
        assert_eq!((t.in_use(), t.batch_count(), t.done_count()), (1, 1, 0));
        assert!((1..4).all(|i| t[BatchId::for_test(i)].status == BatchStatus::Free), "all freed together");
        assert_eq!(t.open_extent(0, Instant::ZERO, 0, 700).map(BatchId::index), Some(1));
    }

    #[test]
    fn fragmented_free_slots_are_no_room_for_a_large_record() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 4], [0u8; 1024], [0u8; 0]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let ids: [BatchId; 3] = core::array::from_fn(|_| t.open(0, Instant::ZERO, 0).unwrap());
        t.finish(ids[1], Outcome::Failed(DeliveryError::Closed));
        t.release(ids[1]);
        // Slots 1 and 3 are free, but not side by side.
        assert_eq!(t.open_extent(0, Instant::ZERO, 0, 400), None);
        assert_eq!(t.open_extent(0, Instant::ZERO, 0, 200).map(BatchId::index), Some(3), "from the top");
        assert_eq!(t.open(0, Instant::ZERO, 0).map(BatchId::index), Some(1));
    }

    #[cfg(feature = "split-batches")]
    fn sealed_with(
        t: &mut BatchTable<'_>,
        values: &[&[u8]],
        compression: Compression,
        producer: ProducerState,
    ) -> BatchId {
        let b = t.open(3, Instant::from_millis(5), (9 << 32) | 0xffff_fffe).unwrap();
        for (i, v) in values.iter().enumerate() {
            let headers = [crate::protocol::record_batch::Header { key: "h", value: Some(b"x") }];
            t.push(b, 1000 + 10 * i as i64, Some(b"key"), Some(v), &headers).unwrap();
        }
        t.seal(b, compression, producer).unwrap();
        t[b].status = BatchStatus::InFlight;
        t[b].attempts = 1;
        b
    }

    #[cfg(feature = "split-batches")]
    fn read_back(t: &BatchTable<'_>, b: BatchId) -> (ProducerState, std::vec::Vec<(i64, std::vec::Vec<u8>)>) {
        let (batch, rest) = RecordBatch::decode(t.sealed_bytes(b)).unwrap();
        assert!(rest.is_empty());
        assert_eq!(batch.record_count, t[b].builder.record_count);
        let mut out = std::vec![0u8; 4096];
        let records = batch.decompress_records(&mut out).unwrap();
        let got = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                assert_eq!((r.offset_delta, r.key), (i as i32, Some(&b"key"[..])));
                assert_eq!(r.headers.iter().next().map(|h| (h.key, h.value)), Some(("h", Some(&b"x"[..]))));
                (batch.base_timestamp + r.timestamp_delta, r.value.unwrap().to_vec())
            })
            .collect();
        (batch.producer_state(), got)
    }

    #[cfg(feature = "split-batches")]
    #[test]
    fn a_split_batch_keeps_its_records_tokens_and_sequences_in_order() {
        for compression in [Compression::None, Compression::Lz4] {
            let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 3], [0u8; 1536], [0u8; 1024]);
            let mut t = BatchTable::new(&mut slots, &mut memory, &mut scratch, 512);
            let values: [&[u8]; 5] = [&[b'a'; 60], &[b'b'; 60], &[b'c'; 60], &[b'd'; 60], &[b'e'; 60]];
            let producer =
                ProducerState { producer_id: 7, producer_epoch: 2, base_sequence: 10, transactional: true };
            let b = sealed_with(&mut t, &values, compression, producer);
            let after = t.open(3, Instant::ZERO, 0).unwrap();
            t[b].next_in_partition = Some(after);
            let was = RecordBatch::decode(t.sealed_bytes(b)).unwrap().0.compression();
            assert_eq!(was, Some(compression), "lz4 shrinks these");
            let second = t.split(b, compression).unwrap().unwrap();
            let chain: std::vec::Vec<BatchId> = t.partition_chain(Some(b)).map(|(id, _)| id).collect();
            assert_eq!(chain, [b, second, after], "the halves keep their place, in order");
            assert_eq!((t[b].builder.record_count, t[second].builder.record_count), (2, 3));
            assert_eq!((t[b].status, t[second].status), (BatchStatus::Sealed, BatchStatus::Sealed));
            assert_eq!((t[b].attempts, t[b].request, t[second].partition), (0, None, 3));
            // Tokens stay contiguous (the counter wraps within its 32 bits).
            assert_eq!((t[b].first_token, t[second].first_token), ((9 << 32) | 0xffff_fffe, 9 << 32));
            assert_eq!((t[b].base_sequence, t[second].base_sequence), (10, 12));
            assert_eq!((t.in_use(), t.batch_count()), (3, 3));
            let (p1, r1) = read_back(&t, b);
            let (p2, r2) = read_back(&t, second);
            assert_eq!(p1, producer);
            assert_eq!(p2, ProducerState { base_sequence: 12, ..producer });
            let all: std::vec::Vec<(i64, std::vec::Vec<u8>)> = r1.into_iter().chain(r2).collect();
            let want: std::vec::Vec<(i64, std::vec::Vec<u8>)> =
                values.iter().enumerate().map(|(i, v)| (1000 + 10 * i as i64, v.to_vec())).collect();
            assert_eq!(all, want, "{compression:?}: every record once, in order, same timestamps");
            let again = RecordBatch::decode(t.sealed_bytes(second)).unwrap().0.compression();
            assert_eq!(again, Some(compression), "re-compressed");
        }
    }

    #[cfg(feature = "split-batches")]
    #[test]
    fn a_split_without_a_free_slot_changes_nothing() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 1], [0u8; 512], [0u8; 0]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let b = sealed_with(&mut t, &[b"one", b"two"], Compression::None, ProducerState::NONE);
        let before = t.sealed_bytes(b).to_vec();
        assert_eq!(t.split(b, Compression::None), Ok(None));
        assert_eq!(t.sealed_bytes(b), &before[..]);
        assert_eq!((t[b].builder.record_count, t[b].status), (2, BatchStatus::InFlight));
        // Non-idempotent halves carry no sequence.
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 2], [0u8; 512], [0u8; 0]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let b = sealed_with(&mut t, &[b"one", b"two", b"three"], Compression::None, ProducerState::NONE);
        let second = t.split(b, Compression::None).unwrap().unwrap();
        assert_eq!((t[b].base_sequence, t[second].base_sequence), (-1, -1));
        assert_eq!(read_back(&t, b).1, [(1000, b"one".to_vec())]);
        assert_eq!(read_back(&t, second).1, [(1010, b"two".to_vec()), (1020, b"three".to_vec())]);
    }

    #[cfg(feature = "split-batches")]
    #[test]
    fn a_split_in_place_sends_the_first_half_then_the_held_rest() {
        for compression in [Compression::None, Compression::Lz4] {
            let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 1], [0u8; 1024], [0u8; 1024]);
            let mut t = BatchTable::new(&mut slots, &mut memory, &mut scratch, 1024);
            let values: std::vec::Vec<std::vec::Vec<u8>> =
                (0..7u8).map(|i| std::vec![b'a' + i; 60]).collect();
            let refs: std::vec::Vec<&[u8]> = values.iter().map(std::vec::Vec::as_slice).collect();
            let producer =
                ProducerState { producer_id: 7, producer_epoch: 2, base_sequence: 10, transactional: false };
            let b = sealed_with(&mut t, &refs, compression, producer);
            assert_eq!(t.split(b, compression), Ok(None), "no free slot");
            t.hold_half(b, compression).unwrap();
            // And again, as a broker refusing the first half would: 1 sealed, 6 held.
            t.hold_half(b, compression).unwrap();
            assert_eq!((t[b].builder.record_count, t[b].held, t.holding()), (1, 6, true));
            let (p, got) = read_back(&t, b);
            assert_eq!((p, got), (producer, std::vec![(1000, values[0].clone())]));
            // Each round: the sealed part is acknowledged, the held records become the batch;
            // split in place again while there are two or more.
            let mut next = 1;
            while t[b].held > 0 {
                assert!(t.finish(b, Outcome::Delivered { base_offset: 0, log_append_time: -1 }));
                assert_eq!(t.unhold(b, compression), Some(None));
                assert_eq!(t[b].status, BatchStatus::Sealed);
                let counter = 0xffff_fffe_u32.wrapping_add(next as u32);
                assert_eq!(t[b].first_token, (9 << 32) | u64::from(counter), "tokens follow on");
                let (p, got) = read_back(&t, b);
                assert_eq!(
                    p,
                    ProducerState { base_sequence: 10 + next as i32, ..producer },
                    "{compression:?}"
                );
                let want: std::vec::Vec<(i64, std::vec::Vec<u8>)> =
                    (next..7).map(|i| (1000 + 10 * i as i64, values[i].clone())).collect();
                assert_eq!(got, want, "{compression:?}: the held records, in order, timestamps kept");
                let count = got.len();
                if count > 1 {
                    t.hold_half(b, compression).unwrap();
                }
                next += count / 2;
            }
            next += 1;
            assert_eq!((next, t.holding(), t.done_count()), (7, false, 0));
        }
    }

    #[cfg(feature = "split-batches")]
    #[test]
    fn held_records_fail_with_the_batch_before_them() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 1], [0u8; 512], [0u8; 0]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let b = sealed_with(&mut t, &[b"one", b"two", b"three"], Compression::None, ProducerState::NONE);
        t.hold_half(b, Compression::None).unwrap();
        assert!(t.finish(b, Outcome::Failed(DeliveryError::Closed)));
        assert_eq!(t.unhold(b, Compression::None), Some(Some(DeliveryError::Closed)));
        assert_eq!(
            (t[b].status, t[b].builder.record_count, t[b].first_token),
            (BatchStatus::Done, 2, 9 << 32 | 0xffff_ffff)
        );
        assert_eq!(t.unhold(b, Compression::None), None);
        t.release(b);
        assert!(t.all_free());
    }

    #[test]
    fn chains_follow_their_own_links() {
        let (mut slots, mut memory, mut scratch) = ([BatchSlot::EMPTY; 3], [0u8; 768], [0u8; 256]);
        let mut t = table(&mut slots, &mut memory, &mut scratch);
        let ids: [BatchId; 3] = core::array::from_fn(|_| t.open(0, Instant::ZERO, 0).unwrap());
        t[ids[0]].next_in_partition = Some(ids[1]);
        t[ids[1]].next_in_partition = Some(ids[2]);
        t[ids[2]].next_in_request = Some(ids[0]);
        let partition: heapless::Vec<BatchId, 3> = t.partition_chain(Some(ids[0])).map(|(b, _)| b).collect();
        assert_eq!(partition.as_slice(), &ids);
        let request: heapless::Vec<BatchId, 3> = t.request_chain(Some(ids[2])).map(|(b, _)| b).collect();
        assert_eq!(request.as_slice(), &[ids[2], ids[0]]);
        assert_eq!(t.partition_chain(None).count(), 0);
    }
}
