//! Everything that can go wrong for a caller, and how the core's refusals map onto it.

use std::fmt;

use picokafka::{DeliveryError, SendError, SizeLimit};

/// Everything that can go wrong for a caller of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A property is unknown or invalid; the message names it.
    Config(String),
    /// The queue stayed full for `max.block.ms`.
    QueueFull,
    /// The topic's metadata did not arrive within `max.block.ms` (it may not exist).
    MetadataTimeout {
        /// The topic that never appeared.
        topic: String,
        /// How long the record waited: `max.block.ms`, or less when the producer's close deadline
        /// came first.
        waited_ms: u64,
        /// Why, as far as the producer knows: no broker reachable (naming the address and the
        /// socket's error), a TLS or SASL failure, the broker's error code for the topic.
        cause: Option<String>,
    },
    /// The record can never be sent: it needs `size` bytes, `limit` allows `max`
    /// (`max.request.size`, or `buffer.memory`). A record larger than `batch.size` alone gets a
    /// batch of its own, as in the Java client.
    RecordTooLarge {
        /// Bytes it needs: in a Produce request of its own (`max.request.size`), or in a batch
        /// of its own (`buffer.memory`).
        size: usize,
        /// What `limit` allows.
        max: usize,
        /// The limit it exceeds.
        limit: SizeLimit,
    },
    /// The topic name is not one Kafka allows.
    InvalidTopic {
        /// The name refused.
        topic: String,
    },
    /// The record named partition `partition` of a topic with `count`.
    PartitionOutOfRange {
        /// The partition asked for.
        partition: i32,
        /// The topic's partition count.
        count: i32,
    },
    /// The broker refused the topic (authorization, invalid name, ...).
    Topic(picokafka::protocol::ErrorCode),
    /// A capacity knob (`picokafka.max.*`) is too small.
    Capacity(&'static str),
    /// The record was accepted but not delivered.
    Delivery(DeliveryError),
    /// The producer is closed.
    Closed,
    /// The producer failed for good.
    Fatal(picokafka::protocol::ErrorCode),
    /// A broker connection outside the producer ([`crate::BrokerConnection`]) failed: the
    /// message names the broker and the cause.
    Connection(String),
    /// SASL authentication failed for good (wrong password, unknown user, a mechanism the
    /// broker does not enable, a broker whose SCRAM signature does not verify). The message
    /// names the mechanism, the user and the broker's words; never the password.
    Authentication(String),
    /// No broker could be reached over TLS: the handshake failed (untrusted certificate, wrong
    /// name, ...). The message says which broker and why.
    Tls(String),
    /// A transactional operation failed; [`Error::txn_requires_abort`] and [`Error::is_fatal`]
    /// say what to do next.
    Transaction(picokafka::TxnError),
    /// A transactional producer takes records only inside a transaction; it is in this state.
    NoTransaction(picokafka::TxnState),
    /// An operation did not end in the time given; the message names it.
    Timeout(String),
    /// `Producer::new` was called outside a tokio runtime (use `BlockingProducer` there).
    NoRuntime,
}

impl Error {
    /// The open transaction cannot commit: abort it, then the producer goes on (rust-rdkafka's
    /// `txn_requires_abort`, Java's abortable errors).
    pub fn txn_requires_abort(&self) -> bool {
        matches!(self, Self::Transaction(e) if e.is_abortable())
    }

    /// The producer cannot go on (fenced by a newer producer with its `transactional.id`,
    /// unauthorized, SASL refused, ...): close it.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_) | Self::Authentication(_))
            || matches!(self, Self::Transaction(e) if e.is_fatal())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration: {m}"),
            Self::QueueFull => f.write_str("queue full for max.block.ms"),
            Self::MetadataTimeout { topic, waited_ms, cause } => {
                write!(f, "topic {topic} not present in metadata after {waited_ms} ms")?;
                match cause {
                    Some(cause) => write!(f, ": {cause}"),
                    None => Ok(()),
                }
            }
            Self::RecordTooLarge { size, max, limit: SizeLimit::MaxRequestSize } => {
                write!(f, "record of {size} bytes (in a request of its own) exceeds max.request.size {max}")
            }
            Self::RecordTooLarge { size, max, limit: SizeLimit::BatchMemory } => {
                write!(f, "record of {size} bytes exceeds the producer's batch memory of {max} bytes (buffer.memory)")
            }
            Self::InvalidTopic { topic } => write!(f, "invalid topic name: {topic:?}"),
            Self::PartitionOutOfRange { partition, count } => {
                write!(f, "partition {partition} out of range (topic has {count})")
            }
            Self::Topic(code) => write!(f, "topic error: {code}"),
            Self::Capacity(what) => write!(f, "capacity exhausted: {what}"),
            Self::Delivery(e) => write!(f, "delivery failed: {e}"),
            Self::Closed => f.write_str("producer closed"),
            Self::Fatal(code) => write!(f, "producer failed: {code}"),
            Self::Tls(m) => f.write_str(m),
            Self::Authentication(m) => f.write_str(m),
            Self::Connection(m) => f.write_str(m),
            Self::Transaction(e) => write!(f, "{e}"),
            Self::NoTransaction(state) => write!(
                f,
                "transactional producer takes records only in a transaction (begin_transaction); state {state:?}"
            ),
            Self::Timeout(m) => f.write_str(m),
            Self::NoRuntime => f.write_str(
                "no tokio runtime: create the Producer inside one (#[tokio::main], Runtime::enter), \
                 or use BlockingProducer",
            ),
        }
    }
}

impl std::error::Error for Error {
    /// A failed delivery's cause is the core's [`DeliveryError`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Delivery(e) => Some(e),
            Self::Transaction(e) => Some(e),
            _ => None,
        }
    }
}

/// A record the producer did not take, handed back with why — as rust-rdkafka's
/// `(KafkaError, OwnedRecord)`: a full queue ([`Error::QueueFull`]), a closed or failed
/// producer, an invalid topic. `?` turns it into its [`Error`].
#[derive(Debug)]
pub struct Refused {
    /// Why it was refused.
    pub error: Error,
    /// The record, untouched: send it again later, elsewhere, or drop it knowingly.
    pub record: crate::OwnedRecord,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record for {} refused: {}", self.record.topic, self.error)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        r.error
    }
}

/// The core's refusal of a record; `MetadataPending` becomes a [`Error::MetadataTimeout`]
/// without a cause (the driver, which knows it, fills it in).
pub(crate) fn map_send_error(e: &SendError<'_>, topic: &str) -> Error {
    match *e {
        SendError::QueueFull(_) => Error::QueueFull,
        SendError::MetadataPending(_) => {
            Error::MetadataTimeout { topic: topic.to_string(), waited_ms: 0, cause: None }
        }
        SendError::RecordTooLarge { size, max, limit } => Error::RecordTooLarge { size, max, limit },
        SendError::InvalidTopic => Error::InvalidTopic { topic: topic.to_string() },
        SendError::PartitionOutOfRange { partition, count } => {
            Error::PartitionOutOfRange { partition, count }
        }
        SendError::Topic(code) => Error::Topic(code),
        SendError::Capacity(what) => Error::Capacity(what),
        SendError::Closed => Error::Closed,
        SendError::Fatal(code) => Error::Fatal(code),
        SendError::NoTransaction(state) => Error::NoTransaction(state),
    }
}

impl From<DeliveryError> for Error {
    fn from(e: DeliveryError) -> Self {
        Error::Delivery(e)
    }
}
