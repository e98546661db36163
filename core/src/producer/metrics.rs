//! Counters and gauges of a producer: the base of health checks on every transport.

use super::connections::ConnState;
use crate::error::{ConnError, DeliveryError};
use crate::protocol::ErrorCode;

/// Upper bounds, in milliseconds, of the request round-trip buckets
/// ([`Metrics::request_latency_buckets`]): a histogram a monitoring system can aggregate.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

/// The bucket a round trip of `latency_ms` falls into, if any. The bounds are searched as
/// `u16`s, which they fit (checked at compile time): firmware flash 120 B smaller than with
/// the 80-byte `u64` table.
pub(crate) fn latency_bucket(latency_ms: u64) -> Option<usize> {
    const BOUNDS: [u16; LATENCY_BUCKETS_MS.len()] = {
        let mut b = [0u16; LATENCY_BUCKETS_MS.len()];
        let mut i = 0;
        while i < b.len() {
            assert!(LATENCY_BUCKETS_MS[i] <= u16::MAX as u64);
            b[i] = LATENCY_BUCKETS_MS[i] as u16;
            i += 1;
        }
        b
    };
    BOUNDS.iter().position(|&bound| latency_ms <= u64::from(bound))
}

/// A snapshot of the producer's counters (since creation) and gauges (now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Metrics {
    /// Records accepted by `send`.
    pub records_sent: u64,
    /// Records delivered: acknowledged by their leader (with acks=0, written to the transport).
    pub records_delivered: u64,
    /// Records that failed; `last_delivery_error` says why the last one did.
    pub records_failed: u64,
    /// Batch sends beyond the first (each retry counts its batch once).
    pub batches_retried: u64,
    /// Encoded size of accepted records, before compression.
    pub record_bytes: u64,
    /// Bytes handed to the transport.
    pub bytes_written: u64,
    /// Bytes passed to `handle_input` on open connections.
    pub bytes_read: u64,
    /// Batches opened.
    pub batches_created: u64,
    /// Batches split in two because a broker found them too large (`MESSAGE_TOO_LARGE`).
    pub batches_split: u64,
    /// Batches delivered (acknowledged, or with acks=0 written).
    pub batches_delivered: u64,
    /// Produce requests started, retries included.
    pub produce_requests: u64,
    /// Metadata requests started.
    pub metadata_requests: u64,
    /// Connections established (`handle_connected` for a connection being opened).
    pub connects: u64,
    /// Connections closed on an error or lost, failed connection attempts included;
    /// `last_connection_error` holds the last cause.
    pub disconnects: u64,
    /// Request round trips measured (responses matched to requests).
    pub responses: u64,
    /// Longest request round trip, in milliseconds.
    pub request_latency_max_ms: u64,
    /// Sum of the request round trips, in milliseconds: divided by `responses`, the mean.
    pub request_latency_sum_ms: u64,
    /// Round trips per bucket: `[i]` counts those longer than `LATENCY_BUCKETS_MS[i - 1]` and at
    /// most `LATENCY_BUCKETS_MS[i]` (not cumulative); longer than the last bound, only in
    /// `responses`.
    pub request_latency_buckets: [u64; LATENCY_BUCKETS_MS.len()],
    /// The last error code a broker answered with (Produce, Metadata or InitProducerId).
    pub last_broker_error: Option<ErrorCode>,
    /// The id of the broker that answered it, when known.
    pub last_broker_error_from: Option<i32>,
    /// The id of the broker that last refused a batch for good (`DeliveryError::Broker`).
    pub last_refused_by: Option<i32>,
    /// Why the last failed record failed.
    pub last_delivery_error: Option<DeliveryError>,
    /// Why the last connection closed on an error or was lost.
    pub last_connection_error: Option<ConnError>,
    // Gauges, filled in by `Producer::metrics`.
    /// Batch slots holding a batch now.
    pub batches_in_use: u32,
    /// Batch slots in all.
    pub batch_capacity: u32,
    /// Requests sent (or being written) and not yet answered, over every connection, now.
    pub requests_in_flight: u32,
    /// Records accepted and not yet reported.
    pub queued_records: u64,
    /// The current producer id, -1 without idempotence or before InitProducerId gave one.
    pub producer_id: i64,
    /// The current producer id's epoch, -1 likewise.
    pub producer_epoch: i16,
    /// SASL exchanges that authenticated a new connection.
    pub authentications: u64,
    /// SASL re-authentications of ready connections before their session ended (KIP-368).
    pub reauthentications: u64,
    /// The error that stopped the producer for good, if any: `send` now refuses every record.
    pub fatal: Option<ErrorCode>,
    /// Where the transactional producer is ([`TxnState::Uninitialized`](super::TxnState::Uninitialized) without one).
    pub transaction_state: super::TxnState,
    /// The transaction coordinator's broker id, once found.
    pub transaction_coordinator: Option<i32>,
    /// Transactions committed.
    pub transactions_committed: u64,
    /// Transactions aborted.
    pub transactions_aborted: u64,
}

/// What a connection slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConnPhase {
    /// No broker assigned to the slot.
    Unused,
    /// A known broker, no socket: connected when there is work for it.
    Idle,
    /// `Event::Connect` handed out; waiting for `handle_connected`.
    Connecting,
    /// Connected; the ApiVersions exchange is under way.
    Handshake,
    /// SASL: authenticating, or waiting for its turn to (also when re-authenticating).
    Authenticating,
    /// Versions negotiated (and authenticated, with SASL): requests flow.
    Ready,
    /// Closed or failed; waiting out `reconnect.backoff.ms` before it may reconnect.
    Backoff,
}

impl ConnPhase {
    pub(crate) fn of(state: ConnState) -> Self {
        match state {
            ConnState::Free => Self::Unused,
            ConnState::Idle => Self::Idle,
            ConnState::Connecting { .. } => Self::Connecting,
            ConnState::Handshake => Self::Handshake,
            ConnState::Authenticating => Self::Authenticating,
            ConnState::Ready => Self::Ready,
            ConnState::Backoff { .. } => Self::Backoff,
        }
    }
}

/// One connection slot, for health views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionState<'a> {
    /// Broker id; negative for a bootstrap address not yet matched to a broker.
    pub node_id: i32,
    /// The broker's host name or address.
    pub host: &'a str,
    /// The broker's port.
    pub port: u16,
    /// What the slot is doing.
    pub state: ConnPhase,
    /// Requests on this connection not yet answered.
    pub in_flight: u32,
}

impl super::Producer<'_> {
    /// A broker answered `code`: kept for health views, with the broker that said it.
    pub(super) fn note_broker_error(&mut self, code: ErrorCode) {
        self.metrics.last_broker_error = Some(code);
        self.metrics.last_broker_error_from = self.answering;
    }
}
