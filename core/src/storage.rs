//! Caller-owned memory: everything the producer keeps lives in slices handed to it at creation.
//!
//! [`Resources`] holds fixed arrays sized by const generics, for a `static` on a microcontroller;
//! [`Storage`] is the set of slices the producer borrows, which a host can also build from `Vec`s
//! (a host's batch memory is too large for a stack-built array). Slot types are public so that
//! storage can be declared, but their contents are private to the core.

pub use crate::producer::batches::BatchSlot;
pub use crate::producer::connections::{ConnSlot, HOST_MAX};
pub use crate::producer::topics::{PartitionSlot, TopicSlot, TOPIC_MAX};

/// The slices a producer borrows. Build it from [`Resources`], or from host allocations.
#[derive(Debug)]
pub struct Storage<'a> {
    /// Batch buffers, split evenly between the `batches` slots. A record larger than
    /// `batch.size` takes a run of consecutive buffers; none can be larger than all of them.
    pub batch_memory: &'a mut [u8],
    /// Batch bookkeeping, one slot per batch buffer (1 to 65534 slots).
    pub batches: &'a mut [BatchSlot],
    /// Compression workspace: `Compression::scratch_len(batch.size)` bytes when compressing. A
    /// batch larger than it can compress (one large record) goes uncompressed.
    pub scratch: &'a mut [u8],
    /// Receive buffers, split evenly between the `conns` slots; each bounds a response's size.
    pub rx_memory: &'a mut [u8],
    /// Broker connections (1 to 255 slots), at least one per bootstrap server.
    pub conns: &'a mut [ConnSlot],
    /// At most 64 topics.
    pub topics: &'a mut [TopicSlot],
    /// Partitions of every topic in use (1 to 65534 slots).
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
    /// Empty storage; `const`, so that it can initialize a `static`.
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
