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

#![deny(missing_docs)]

// Before every module: the macros they log with.
#[macro_use]
mod logging;

// The application's side.
mod blocking;
mod broker;
mod config;
pub mod dead_letter;
mod delivery;
mod error;
mod producer;
mod record;
pub mod serialize;
// Between the handles and the task: the queue in front of the core.
mod shared;
// The producer's task: one loop, the sockets it drives, the records it waits on.
mod driver;
mod oauth;
mod outstanding;
#[cfg(feature = "prometheus")]
mod prometheus;
mod socket;
mod tls;
mod transaction;

pub use blocking::BlockingProducer;
pub use broker::BrokerConnection;
pub use bytes::Bytes;
pub use config::ClientConfig;
pub use dead_letter::{DeadLetterOutcome, DeadLetterQueue, DeadLetterStats};
pub use delivery::{Delivery, DeliveryFuture, DeliveryHandler};
pub use error::{
    AuthenticationCause, AuthenticationError, ConfigError, ConfigErrorKind, ConnectionCause, ConnectionError,
    Error, MetadataCause, Refused, TimedOperation, TimeoutError, TlsError, TlsErrorKind,
};
pub use oauth::OAuthBearerToken;
pub use picokafka;
pub use picokafka::Partitioner;
pub use picokafka::{DeliveryError, Metrics, SizeLimit};
pub use producer::{BrokerState, Health, Producer, ProducerBuilder};
#[cfg(feature = "prometheus")]
pub use prometheus::MetricsServer;
pub use record::{IntoBytes, OwnedRecord};
pub use transaction::ConsumerGroupMetadata;
