//! Caller-owned memory: everything the producer keeps lives in slices handed to it at creation.
//!
//! [`Resources`] holds fixed arrays sized by const generics, for a `static` on a microcontroller;
//! [`Storage`] is the set of slices the producer borrows, which a host can also build from `Vec`s
//! (a host's batch memory is too large for a stack-built array). Slot types are public so that
//! storage can be declared, but their contents are private to the core.

use heapless::String;

use crate::producer::batches::BatchId;
pub use crate::producer::batches::BatchSlot;
pub use crate::producer::connections::ConnSlot;
use crate::producer::idempotence::PartitionSequence;
use crate::time::Instant;

/// "No slot" in the `u16` links between topic and partition slots.
pub(crate) const NIL: u16 = u16::MAX;
/// Longest broker host name kept.
pub const HOST_MAX: usize = 128;
/// Longest topic name Kafka allows.
pub const TOPIC_MAX: usize = 249;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicState {
    Free,
    /// Named by a `send`; no metadata yet.
    Pending,
    /// The broker answered with an error for it.
    Error(crate::protocol::ErrorCode),
    /// Partitions `first..first + count` of the partition table.
    Known {
        first: u16,
        count: u16,
    },
}

/// One topic's bookkeeping.
#[derive(Debug, Clone)]
pub struct TopicSlot {
    pub(crate) name: String<TOPIC_MAX>,
    pub(crate) state: TopicState,
    pub(crate) last_used: Instant,
    /// Batch that null-key records currently stick to.
    pub(crate) sticky_batch: Option<BatchId>,
    pub(crate) sticky_partition: i32,
}

impl TopicSlot {
    pub const EMPTY: Self = Self {
        name: String::new(),
        state: TopicState::Free,
        last_used: Instant::ZERO,
        sticky_batch: None,
        sticky_partition: -1,
    };
}

impl Default for TopicSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// One partition's bookkeeping: its leader, its queue of batches, its sequence numbers.
#[derive(Debug, Clone)]
pub struct PartitionSlot {
    pub(crate) topic: u16,
    pub(crate) partition: i32,
    /// Leader broker id, -1 when there is none.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    /// Batches in send order.
    pub(crate) head: Option<BatchId>,
    pub(crate) tail: Option<BatchId>,
    /// Its sequence numbers (idempotence).
    pub(crate) seq: PartitionSequence,
    /// Token namespace: tokens are `uid << 32 | counter`.
    pub(crate) uid: u32,
    pub(crate) next_token: u32,
}

impl PartitionSlot {
    pub const EMPTY: Self = Self {
        topic: NIL,
        partition: -1,
        leader: -1,
        leader_epoch: -1,
        head: None,
        tail: None,
        seq: PartitionSequence::EMPTY,
        uid: 0,
        next_token: 0,
    };

    pub(crate) fn is_free(&self) -> bool {
        self.topic == NIL
    }
}

impl Default for PartitionSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// The slices a producer borrows. Build it from [`Resources`], or from host allocations.
#[derive(Debug)]
pub struct Storage<'a> {
    /// Batch buffers, split evenly between the `batches` slots.
    pub batch_memory: &'a mut [u8],
    pub batches: &'a mut [BatchSlot],
    /// Compression workspace: `Compression::scratch_len(batch.size)` bytes when compressing.
    pub scratch: &'a mut [u8],
    /// Receive buffers, split evenly between the `conns` slots; each bounds a response's size.
    pub rx_memory: &'a mut [u8],
    pub conns: &'a mut [ConnSlot],
    /// At most 64 topics.
    pub topics: &'a mut [TopicSlot],
    pub partitions: &'a mut [PartitionSlot],
}

/// Fixed storage for a producer: `B` batch buffers of `S` bytes, `X` bytes of compression
/// scratch, `C` connections with `R`-byte receive buffers, `T` topics, `P` partitions.
///
/// ```
/// use picokafka::Resources;
/// // 8 batches of 4 KiB, LZ4 scratch, 2 brokers with 4 KiB receive buffers, 2 topics,
/// // 8 partitions: about 45 KiB, all of it here.
/// static mut R: Resources<8, 4096, 4560, 2, 4096, 2, 8> = Resources::new();
/// ```
#[derive(Debug)]
pub struct Resources<
    const B: usize,
    const S: usize,
    const X: usize,
    const C: usize,
    const R: usize,
    const T: usize,
    const P: usize,
> {
    batch_memory: [[u8; S]; B],
    batches: [BatchSlot; B],
    scratch: [u8; X],
    rx: [[u8; R]; C],
    conns: [ConnSlot; C],
    topics: [TopicSlot; T],
    partitions: [PartitionSlot; P],
}

impl<
        const B: usize,
        const S: usize,
        const X: usize,
        const C: usize,
        const R: usize,
        const T: usize,
        const P: usize,
    > Resources<B, S, X, C, R, T, P>
{
    pub const fn new() -> Self {
        Self {
            batch_memory: [[0; S]; B],
            batches: [BatchSlot::EMPTY; B],
            scratch: [0; X],
            rx: [[0; R]; C],
            conns: [ConnSlot::EMPTY; C],
            topics: [TopicSlot::EMPTY; T],
            partitions: [PartitionSlot::EMPTY; P],
        }
    }

    /// The slices a producer borrows.
    pub fn storage(&mut self) -> Storage<'_> {
        Storage {
            batch_memory: self.batch_memory.as_flattened_mut(),
            batches: &mut self.batches,
            scratch: &mut self.scratch,
            rx_memory: self.rx.as_flattened_mut(),
            conns: &mut self.conns,
            topics: &mut self.topics,
            partitions: &mut self.partitions,
        }
    }
}

impl<
        const B: usize,
        const S: usize,
        const X: usize,
        const C: usize,
        const R: usize,
        const T: usize,
        const P: usize,
    > Default for Resources<B, S, X, C, R, T, P>
{
    fn default() -> Self {
        Self::new()
    }
}
