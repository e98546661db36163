//! `picokafka-tokio`: the host transport of picokafka.
//!
//! A thin driver of the `picokafka` core over tokio TCP: it opens the connections the core asks
//! for, moves bytes, keeps one timer at the core's `poll_timeout()`, and holds no protocol logic.
//! On top sits a producer API in the spirit of rust-rdkafka's `FutureProducer`:
//!
//! ```no_run
//! # async fn run() -> Result<(), picokafka_tokio::Error> {
//! use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};
//!
//! let mut config = ClientConfig::new();
//! config.set("bootstrap.servers", "127.0.0.1:9092").set("linger.ms", "5");
//! let producer = Producer::new(&config)?;
//! let delivery = producer.send(OwnedRecord::new("events").key("k").value("v")).await?;
//! println!("partition {} offset {}", delivery.partition, delivery.offset);
//! producer.close(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod blocking;
mod config;
mod driver;
mod producer;
pub mod serialize;
mod tls;

use std::fmt;
use std::sync::Arc;

pub use blocking::BlockingProducer;
pub use config::ClientConfig;
pub use picokafka;
pub use picokafka::Partitioner;
pub use picokafka::{DeliveryError, Metrics};
pub use producer::{DeliveryFuture, DeliveryHandler, Health, OwnedRecord, Producer, ProducerBuilder};

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: Arc<str>,
    pub partition: i32,
    /// `-1` with acks=0.
    pub offset: i64,
    pub timestamp: i64,
}

/// Everything that can go wrong for a caller of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A property is unknown or invalid; the message names it.
    Config(String),
    /// The queue stayed full for `max.block.ms`.
    QueueFull,
    /// The topic's metadata did not arrive within `max.block.ms` (it may not exist).
    MetadataTimeout {
        topic: String,
    },
    RecordTooLarge {
        size: usize,
        max: usize,
    },
    InvalidTopic {
        topic: String,
    },
    PartitionOutOfRange {
        partition: i32,
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
    /// No broker could be reached over TLS: the handshake failed (untrusted certificate, wrong
    /// name, ...). The message says which broker and why.
    Tls(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration: {m}"),
            Self::QueueFull => f.write_str("queue full for max.block.ms"),
            Self::MetadataTimeout { topic } => {
                write!(f, "topic {topic} not present in metadata after max.block.ms")
            }
            Self::RecordTooLarge { size, max } => {
                write!(f, "record of {size} bytes exceeds batch.size {max}")
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
        }
    }
}

impl std::error::Error for Error {}
