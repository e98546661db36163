//! picokafka: a Kafka producer core that runs anywhere, down to a microcontroller.
//!
//! `no_std`, no allocation, no clock, no sockets. The [`Producer`] is a sans-IO state machine:
//! records go in with [`Producer::send`], bytes come out of [`Producer::poll_transmit`], bytes
//! from brokers go in with [`Producer::handle_input`], and what happened to each record comes out
//! of [`Producer::poll_event`]. Transports (tokio on hosts, embassy-net on microcontrollers) only
//! move bytes and keep time. The Kafka wire codec it is built on is in [`protocol`].
//!
//! # What is public, and why
//! A producer's user needs the crate root: [`Producer`], [`Config`], [`Record`], the events and
//! errors, [`Storage`] / [`Resources`]. [`protocol`] is public too, for two kinds of users: its
//! [`ErrorCode`](protocol::ErrorCode) and [`ApiKey`](protocol::ApiKey) appear in this crate's
//! errors and metrics, and its codec (request and response messages, record batches, LZ4 frames,
//! CRC-32C) serves those who speak Kafka without the state machine — the raw-wire example, the
//! second-codec and golden-vector tests, the fuzz targets. The state machine's own tables (batch,
//! connection, topic and partition slots) are public only as types to declare storage with;
//! their contents are private.
//!
//! # Panic policy
//! A panic is a bug in this crate. Nothing a broker sends and nothing a caller passes may cause
//! one: decoders return [`protocol::DecodeError`], `send` returns [`SendError`], broken
//! connections are closed with a [`ConnError`].
#![no_std]
#![deny(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![forbid(unsafe_code)]

// Tests, and the host-only codecs (features gzip, snappy, zstd imply `std`).
#[cfg(any(test, feature = "std"))]
extern crate std;

#[macro_use]
mod fmt;

pub mod config;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod protocol;
mod rand;
pub mod record;
pub mod sasl;
pub mod storage;
pub mod time;

pub use config::{Acks, Config, ConfigError};
pub use error::{ConnError, DeliveryError, SendError, SizeLimit};
pub use partitioner::Partitioner;
pub use producer::{
    AuthError, AuthFailure, ConnId, Event, GroupMetadata, Metrics, Producer, TopicPartitionOffset, Transmit,
    TxnError, TxnOp, TxnState,
};
pub use protocol::record_batch::{Compression, Header};
pub use record::{Accepted, Record, RecordToken};
pub use sasl::{Mechanism, SaslConfig, SecurityProtocol};
pub use storage::{Resources, Storage};
pub use time::{Duration, Instant};
