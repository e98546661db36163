//! What the producer tells the transport and the application.

use super::connections::ConnId;
use crate::error::DeliveryError;
use crate::record::RecordToken;

/// Bytes for the transport to write: `buf[..len]` on connection `conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transmit {
    pub conn: ConnId,
    pub len: usize,
}

/// What the producer asks of the transport, or tells the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Open a TCP connection to `host:port` and report it with `handle_connected` (or
    /// `handle_disconnected` if it fails).
    Connect { conn: ConnId, host: &'a str, port: u16 },
    /// Close this connection; the producer has forgotten it.
    Close { conn: ConnId },
    /// The record is in the log: at `offset` of `partition` (`-1` with acks=0, and when a broker
    /// answers a resent batch with DUPLICATE_SEQUENCE_NUMBER without its offset). Its timestamp
    /// is the broker's append time for LogAppendTime topics, else the record's own CreateTime,
    /// which `send` returned in [`Accepted::timestamp`](crate::record::Accepted::timestamp).
    Delivered { token: RecordToken, partition: i32, offset: i64, log_append_time: Option<i64> },
    /// The record will not be delivered.
    Failed { token: RecordToken, partition: i32, error: DeliveryError },
}
