//! Errors a caller sees: when a record is refused at `send`, and when an accepted record fails.

use core::fmt;

use crate::protocol::ErrorCode;
use crate::record::Record;

/// Why `send` refused a record. Nothing was queued; variants that may clear up hand the record
/// back so the caller can try again.
///
/// Exhaustive on purpose, unlike the other error enums: a transport maps each refusal to an
/// error of its own that hands the record back or names the cause, so a new refusal must be a
/// compile error there, not a catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError<'r> {
    /// Every batch buffer is in use. Retry once deliveries have freed one (or give up).
    QueueFull(Record<'r>),
    /// The topic's partitions are not known yet; a Metadata request is on its way.
    MetadataPending(Record<'r>),
    /// The record can never be sent: it needs `size` bytes, `limit` allows `max`. (A record
    /// larger than `batch.size` alone is not refused: it gets a batch of its own.)
    RecordTooLarge {
        /// Bytes the record needs: with [`SizeLimit::MaxRequestSize`], a Produce request
        /// carrying it alone; with [`SizeLimit::BatchMemory`], a batch of its own, header
        /// included. `usize::MAX` when a field is longer than Kafka allows.
        size: usize,
        /// What `limit` allows: `max.request.size`, or the bytes of all batch buffers.
        max: usize,
        /// The limit the record exceeds.
        limit: SizeLimit,
    },
    /// Not a legal Kafka topic name.
    InvalidTopic,
    /// The topic has `count` partitions; `partition` is not one of them.
    PartitionOutOfRange {
        /// The partition asked for, by the record or by the partitioner.
        partition: i32,
        /// The topic's partition count.
        count: i32,
    },
    /// The broker reported an error for the topic that retrying will not fix
    /// (`TOPIC_AUTHORIZATION_FAILED`, `INVALID_TOPIC_EXCEPTION`, ...). A topic that does not exist
    /// (yet) stays [`SendError::MetadataPending`], as the Java client keeps waiting for it: the
    /// transport bounds that wait (`max.block.ms`).
    Topic(ErrorCode),
    /// The producer's tables are full: `what` says which resource to enlarge.
    Capacity(&'static str),
    /// `close` was called.
    Closed,
    /// The producer hit a fatal error (fenced by a newer instance, say) and accepts nothing more.
    Fatal(ErrorCode),
    /// A transactional producer takes records only inside a transaction (after
    /// `begin_transaction`, before `commit_transaction` / `abort_transaction`); it is in this
    /// state.
    NoTransaction(crate::producer::TxnState),
}

/// The limit a record refused as [`SendError::RecordTooLarge`] exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SizeLimit {
    /// `max.request.size`: a Produce request with the record alone would be larger.
    MaxRequestSize,
    /// The producer's batch memory (`buffer.memory` on hosts, the batch buffers of
    /// `Resources`): the record does not fit all of it together.
    BatchMemory,
}

impl SendError<'_> {
    /// Whether trying the same record again later can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::QueueFull(_) | Self::MetadataPending(_))
    }
}

impl fmt::Display for SendError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueueFull(_) => f.write_str("queue full: every batch buffer is in use"),
            Self::MetadataPending(r) => write!(f, "metadata for topic {} is not available yet", r.topic),
            Self::RecordTooLarge { size, max, limit: SizeLimit::MaxRequestSize } => {
                write!(f, "record of {size} bytes (in a request of its own) exceeds max.request.size {max}")
            }
            Self::RecordTooLarge { size, max, limit: SizeLimit::BatchMemory } => {
                write!(f, "record of {size} bytes exceeds the producer's batch memory of {max} bytes")
            }
            Self::InvalidTopic => f.write_str("invalid topic name"),
            Self::PartitionOutOfRange { partition, count } => {
                write!(f, "partition {partition} out of range: the topic has {count} partitions")
            }
            Self::Topic(code) => write!(f, "topic error: {code}"),
            Self::Capacity(what) => write!(f, "capacity exhausted: {what}"),
            Self::Closed => f.write_str("producer is closed"),
            Self::Fatal(code) => write!(f, "producer failed fatally: {code}"),
            Self::NoTransaction(state) => {
                write!(f, "transactional producer takes records only in a transaction (state {state:?})")
            }
        }
    }
}

impl core::error::Error for SendError<'_> {}

/// Why an accepted record was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DeliveryError {
    /// The broker answered with a non-retriable error, or retries ran out on a retriable one.
    Broker(ErrorCode),
    /// `delivery.timeout.ms` passed before the record was acknowledged. `last` is the last error
    /// seen while trying, if any.
    Timeout {
        /// The last error seen while trying, if any.
        last: Option<ErrorCode>,
    },
    /// The record's topic or partition vanished from the cluster.
    UnknownTopicOrPartition,
    /// The producer was closed, and its close deadline passed before this record was delivered.
    Closed,
    /// The producer hit a fatal error (e.g. fenced) and gave up on every record.
    Fatal(ErrorCode),
    /// The record's transaction was aborted before it was sent.
    Aborted,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broker(code) => write!(f, "broker error: {code}"),
            Self::Timeout { last: Some(code) } => {
                write!(f, "delivery timed out (last error: {code})")
            }
            Self::Timeout { last: None } => f.write_str("delivery timed out"),
            Self::UnknownTopicOrPartition => f.write_str("unknown topic or partition"),
            Self::Closed => f.write_str("producer closed before delivery"),
            Self::Fatal(code) => write!(f, "producer failed fatally: {code}"),
            Self::Aborted => f.write_str("transaction aborted"),
        }
    }
}

impl core::error::Error for DeliveryError {}

/// Why a connection was closed by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConnError {
    /// A response frame longer than the receive buffer, or a negative length.
    FrameTooLarge {
        /// The frame's length prefix, as the broker sent it.
        size: i64,
        /// The longest frame the receive buffer holds: its size less the 4-byte prefix.
        max: usize,
    },
    /// A response whose correlation id matches no request in flight.
    UnexpectedCorrelationId(i32),
    /// A response that does not decode.
    Malformed(crate::protocol::DecodeError),
    /// No response within `request.timeout.ms`.
    RequestTimeout,
    /// The connection was not established within `socket.connection.setup.timeout.ms`.
    ConnectTimeout,
    /// The broker does not speak the versions we need (Produce v3+).
    UnsupportedBroker,
    /// The transport reported the connection gone.
    Disconnected,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { size, max } => {
                write!(f, "response frame of {size} bytes exceeds the {max}-byte receive buffer")
            }
            Self::UnexpectedCorrelationId(id) => write!(f, "response with unexpected correlation id {id}"),
            Self::Malformed(e) => write!(f, "malformed response: {e}"),
            Self::RequestTimeout => f.write_str("request timed out"),
            Self::ConnectTimeout => f.write_str("connection setup timed out"),
            Self::UnsupportedBroker => f.write_str("broker does not support Produce v3 or later"),
            Self::Disconnected => f.write_str("disconnected"),
        }
    }
}

impl core::error::Error for ConnError {}
