//! Counters and gauges of a producer: the base of health checks on every transport.

use super::connections::ConnState;
use crate::error::{ConnError, DeliveryError};
use crate::protocol::ErrorCode;

/// A snapshot of the producer's counters (since creation) and gauges (now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Metrics {
    /// Records accepted by `send`.
    pub records_sent: u64,
    pub records_delivered: u64,
    pub records_failed: u64,
    /// Batch sends beyond the first (each retry counts its batch once).
    pub batches_retried: u64,
    /// Encoded size of accepted records, before compression.
    pub record_bytes: u64,
    /// Bytes handed to the transport.
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub batches_created: u64,
    pub batches_delivered: u64,
    pub produce_requests: u64,
    pub metadata_requests: u64,
    pub connects: u64,
    pub disconnects: u64,
    /// Request round trips measured (responses matched to requests).
    pub responses: u64,
    pub request_latency_max_ms: u64,
    pub request_latency_sum_ms: u64,
    pub last_broker_error: Option<ErrorCode>,
    pub last_delivery_error: Option<DeliveryError>,
    pub last_connection_error: Option<ConnError>,
    // Gauges, filled in by `Producer::metrics`.
    pub batches_in_use: u32,
    pub batch_capacity: u32,
    pub requests_in_flight: u32,
    /// Records accepted and not yet reported.
    pub queued_records: u64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub fatal: Option<ErrorCode>,
}

/// What a connection slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnPhase {
    Unused,
    Idle,
    Connecting,
    Handshake,
    Ready,
    Backoff,
}

impl ConnPhase {
    pub(crate) fn of(state: ConnState) -> Self {
        match state {
            ConnState::Free => Self::Unused,
            ConnState::Idle => Self::Idle,
            ConnState::Connecting { .. } => Self::Connecting,
            ConnState::Handshake => Self::Handshake,
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
    pub host: &'a str,
    pub port: u16,
    pub state: ConnPhase,
    pub in_flight: u32,
}
