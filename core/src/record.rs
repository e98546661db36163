//! What a caller sends: a record, borrowed for the duration of `send`.

pub use crate::protocol::record_batch::Header;

/// A record to produce. `send` copies it into a batch buffer; nothing is kept borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The topic to produce to.
    pub topic: &'a str,
    /// Explicit partition; `None` lets the partitioner choose (murmur2 of the key, or sticky).
    pub partition: Option<i32>,
    /// The key, `None` for null; the default partitioner hashes it to choose the partition.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for null (a tombstone, on a compacted topic).
    pub value: Option<&'a [u8]>,
    /// Record headers, written in this order.
    pub headers: &'a [Header<'a>],
    /// CreateTime in milliseconds since the Unix epoch; `None` takes the producer's wall clock.
    pub timestamp: Option<i64>,
}

impl<'a> Record<'a> {
    /// A record with neither key nor value yet.
    pub const fn new(topic: &'a str) -> Self {
        Self { topic, partition: None, key: None, value: None, headers: &[], timestamp: None }
    }
    /// Sets the key.
    pub const fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }
    /// Sets the value.
    pub const fn value(mut self, value: &'a [u8]) -> Self {
        self.value = Some(value);
        self
    }
    /// Sends the record to `partition`, whatever the partitioner would choose.
    pub const fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Sets the headers.
    pub const fn headers(mut self, headers: &'a [Header<'a>]) -> Self {
        self.headers = headers;
        self
    }
    /// Sets the CreateTime, in milliseconds since the Unix epoch.
    pub const fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Identifies an accepted record in its delivery report. Unique among records not yet reported;
/// its layout is the core's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecordToken(pub(crate) u64);

impl RecordToken {
    /// The token as a number, for maps keyed by record.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The report queue the record is in: every record of one partition has the same queue,
    /// never shared with another topic-partition while any of its records is unreported.
    pub const fn queue(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The record's place in its queue: reports of one queue come in send order, and the
    /// place grows by one per record (wrapping), so a transport can keep a FIFO per queue.
    pub const fn place(self) -> u32 {
        self.0 as u32
    }
}

/// What `send` tells about an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Accepted {
    /// Names the record in its delivery report.
    pub token: RecordToken,
    /// The partition the record went to.
    pub partition: i32,
    /// The record's CreateTime as written into the batch.
    pub timestamp: i64,
}

/// Kafka's rule for topic names: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
