//! The batch table: fixed batch buffers and their bookkeeping, owned in one place.
//!
//! A batch lives in one slot from its first record until its last delivery report. Slots are
//! named by [`BatchId`]; a partition's batches form a chain in creation order
//! (`next_in_partition`) and a Produce request's batches another (`next_in_request`), both
//! walked with [`BatchTable::partition_chain`] / [`BatchTable::request_chain`] or, where the
//! walk changes the batches it passes, with the `next_in_*` links read before each change.

use core::num::NonZeroU16;
use core::ops::{Index, IndexMut};

use crate::error::DeliveryError;
use crate::protocol::record_batch::{BatchBuilder, BatchState, Codec, ProducerState, PushError};
use crate::protocol::ErrorCode;
use crate::time::Instant;

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
        Self { slots, memory, buffer_size, batch_size, scratch, done: 0, used: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = BatchId> {
        (0..self.slots.len()).map(BatchId::new)
    }

    pub(crate) fn in_use(&self) -> usize {
        self.used
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
        self.slots[i] = BatchSlot {
            status: BatchStatus::Open,
            partition,
            builder: BatchState::empty(),
            created: now,
            first_token,
            ..BatchSlot::EMPTY
        };
        self.used += 1;
        Some(BatchId::new(i))
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
        let start = b.index() * self.buffer_size;
        let buf = &mut self.memory[start..start + self.batch_size];
        let mut builder = BatchBuilder::resume(buf, self.slots[b.index()].builder);
        builder.push(timestamp, key, value, headers)?;
        self.slots[b.index()].builder = builder.state();
        Ok(())
    }

    /// Finishes batch `b`'s bytes (compression, header, producer state, CRC) and marks it
    /// sealed; the error of the codec otherwise.
    pub(crate) fn seal(
        &mut self,
        b: BatchId,
        compression: impl Into<Codec>,
        producer: ProducerState,
    ) -> Result<(), crate::protocol::record_batch::FinishError> {
        let start = b.index() * self.buffer_size;
        let buf = &mut self.memory[start..start + self.batch_size];
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
        let start = b.index() * self.buffer_size;
        &mut self.memory[start..start + self.slots[b.index()].len]
    }

    /// Marks `b` done with `outcome`: `false` (and no change) if it already was, or is free.
    pub(crate) fn finish(&mut self, b: BatchId, outcome: Outcome) -> bool {
        let s = &mut self.slots[b.index()];
        if s.status == BatchStatus::Done || s.status == BatchStatus::Free {
            return false;
        }
        s.status = BatchStatus::Done;
        s.outcome = outcome;
        s.request = None;
        self.done += 1;
        true
    }

    /// Every report of done batch `b` was handed out: its slot is free again.
    pub(crate) fn release(&mut self, b: BatchId) {
        self.slots[b.index()] = BatchSlot::EMPTY;
        self.done -= 1;
        self.used -= 1;
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
    use crate::protocol::record_batch::Compression;

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
