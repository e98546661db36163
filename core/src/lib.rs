//! picokafka: a Kafka producer core that runs anywhere, down to a microcontroller.
//!
//! `no_std`, no allocation, no clock, no sockets. Today this crate holds the Kafka wire codec the
//! producer needs ([`protocol`]): request encoders and response decoders for ApiVersions,
//! Metadata, InitProducerId and Produce, RecordBatch v2 with CRC-32C, and LZ4 frames.
//!
//! # Panic policy
//! A panic is a bug in this crate. Nothing a broker sends and nothing a caller passes may cause
//! one: decoders return [`protocol::DecodeError`], encoders [`protocol::EncodeError`].
#![no_std]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod protocol;
