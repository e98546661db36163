//! What the producer tells the transport and the application.

use super::connections::ConnId;
use super::transactions::{TxnError, TxnOp};
use crate::error::DeliveryError;
use crate::record::RecordToken;
use crate::time::Duration;

/// Bytes for the transport to write: `buf[..len]` on connection `conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transmit {
    /// The connection to write to.
    pub conn: ConnId,
    /// How many bytes to write, from the start of the buffer given to `poll_transmit`.
    pub len: usize,
}

/// What the producer asks of the transport, or tells the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Open a TCP connection to `host:port` and report it with `handle_connected` (or
    /// `handle_disconnected` if it fails).
    Connect {
        /// The id to report the connection under, and to write its bytes to.
        conn: ConnId,
        /// The broker's host name or address, from `bootstrap.servers` or from Metadata.
        host: &'a str,
        /// The broker's port.
        port: u16,
        /// How long the attempt may take, TCP connect and TLS handshake together
        /// (`socket.connection.setup.timeout.ms`, grown for each failure in a row up to
        /// `socket.connection.setup.timeout.max.ms`): the producer gives up on it then.
        timeout: Duration,
    },
    /// Close this connection; the producer has forgotten it.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
    /// The record is in the log: at `offset` of `partition` (`-1` with acks=0, and when a broker
    /// answers a resent batch with DUPLICATE_SEQUENCE_NUMBER without its offset). Its timestamp
    /// is the broker's append time for LogAppendTime topics, else the record's own CreateTime,
    /// which `send` returned in [`Accepted::timestamp`](crate::record::Accepted::timestamp).
    Delivered {
        /// The token `send` returned for the record.
        token: RecordToken,
        /// The partition the record was written to.
        partition: i32,
        /// The record's offset in the partition, `-1` when unknown (see above).
        offset: i64,
        /// The broker's append time, in milliseconds since the Unix epoch, for a topic with
        /// `message.timestamp.type=LogAppendTime`; `None` otherwise.
        log_append_time: Option<i64>,
    },
    /// A transactional operation (`init_transactions`, `send_offsets_to_transaction`,
    /// `commit_transaction`, `abort_transaction`) ended. Comes after the reports of the
    /// transaction's records.
    Transaction {
        /// The operation that ended.
        op: TxnOp,
        /// How: done, or why not.
        result: Result<(), TxnError>,
    },
    /// The record will not be delivered.
    Failed {
        /// The token `send` returned for the record.
        token: RecordToken,
        /// The partition the record was meant for.
        partition: i32,
        /// Why it was not delivered.
        error: DeliveryError,
        /// How many times its batch was sent (0: never, e.g. it timed out waiting for a leader).
        attempts: u32,
    },
}
