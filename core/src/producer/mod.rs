//! The producer: a sans-IO state machine that decides what to send, where, when, and what
//! happened to every record.
//!
//! # Driving it
//!
//! The transport owns sockets and a clock; the producer owns every decision. After any call that
//! changes state (`send`, `flush`, `close`, `handle_*`), the transport drains the producer:
//!
//! 1. `poll_event()` until `None`: open (`Connect`) or close (`Close`) sockets, hand delivery
//!    reports (`Delivered`, `Failed`) to the application;
//! 2. `poll_transmit(now, buf)` until `None`: write `buf[..len]` to that connection's socket;
//! 3. if step 2 wrote anything, back to 1 (with acks=0, records are delivered once written);
//! 4. arm one timer at `poll_timeout()` and call `handle_timeout(now)` when it fires.
//!
//! Bytes read from a socket go to `handle_input`; a socket that opens or fails goes to
//! `handle_connected` / `handle_disconnected`.
//!
//! ```
//! use picokafka::{Config, Event, Instant, Producer, Record, Resources};
//!
//! let mut resources: Box<Resources<4, 1024, 1200, 2, 2048, 2, 4>> = Box::new(Resources::new());
//! let config = Config::new("127.0.0.1:9092").unwrap();
//! let now = Instant::from_millis(0);
//! let mut producer = Producer::new(config, resources.storage(), now).unwrap();
//!
//! // A first send names a topic whose partitions are unknown: the producer asks for metadata
//! // and hands the record back.
//! let record = Record::new("events").value(b"hello");
//! assert!(producer.send(now, record).is_err());
//!
//! // The transport's loop, once:
//! let mut buf = [0u8; 1024];
//! while let Some(event) = producer.poll_event() {
//!     match event {
//!         Event::Connect { conn, host, port, .. } => { /* open a socket to host:port for `conn` */ }
//!         Event::Close { conn } => { /* close it */ }
//!         Event::Delivered { token, partition, offset, .. } => { /* report */ }
//!         Event::Failed { token, error, .. } => { /* report */ }
//!         _ => { /* events a later version adds */ }
//!     }
//! }
//! while let Some(t) = producer.poll_transmit(now, &mut buf) {
//!     /* write &buf[..t.len] to t.conn */
//! }
//! let wake_at = producer.poll_timeout();
//! # let _ = wake_at;
//! ```

// The owners: each holds its state and its transitions, and imports nothing from this file.
pub(crate) mod authentication;
pub(crate) mod batches;
pub(crate) mod connections;
mod event;
pub(crate) mod idempotence;
mod metadata;
mod metrics;
pub(crate) mod topics;
pub(crate) mod transactions;
pub(crate) mod txn_offsets;
// The paths between them, as `impl Producer` blocks: a record's way, in order.
mod accumulator;
pub mod bootstrap;
mod cluster;
mod handshake;
mod outcomes;
mod requests;
mod timers;
mod transacting;
mod transport;

use heapless::String;

use self::authentication::Authentication;
pub use self::authentication::{AuthError, AuthFailure, TOKEN_MAX};
#[cfg(feature = "sasl")]
pub use self::authentication::{SaslClient, SaslProgress, SaslRequest};
use self::batches::{BatchId, BatchStatus, BatchTable, Outcome};
pub use self::connections::ConnId;
use self::connections::{ConnState, ConnTable};
pub use self::event::{Event, Transmit};
use self::idempotence::Idempotence;
use self::metadata::MetadataState;
pub use self::metrics::{ConnPhase, ConnectionState, Metrics, LATENCY_BUCKETS_MS};
use self::topics::{PartitionTable, TopicState, TopicTable};
use self::transactions::Transactions;
pub use self::transactions::{TxnError, TxnOp, TxnState};
pub use self::txn_offsets::{GroupMetadata, TopicPartitionOffset, GROUP_ID_MAX, OFFSETS_MAX};
use crate::config::{Acks, Config, ConfigError};
use crate::error::SendError;
use crate::partitioner::Partitioner;
use crate::protocol::record_batch;
use crate::protocol::ErrorCode;
use crate::rand::Rng;
use crate::record::{Accepted, Record};
use crate::storage::Storage;
use crate::time::{Duration, Instant};

/// Delivery reports of one batch being handed out record by record.
#[derive(Debug, Clone, Copy)]
struct ReportCursor {
    batch: BatchId,
    next: i32,
}

/// The producer. See the module docs for how to drive it.
pub struct Producer<'a> {
    config: Config,
    rng: Rng,
    batches: BatchTable<'a>,
    conns: ConnTable<'a>,
    topics: TopicTable<'a>,
    partitions: PartitionTable<'a>,
    partitioner: Option<&'a mut (dyn Partitioner + Send)>,
    metadata: MetadataState,
    idempotence: Idempotence,
    txn: Transactions,
    auth: Authentication,
    /// The transport's CSPRNG, for SCRAM nonces (never the seeded `rng`).
    #[cfg(feature = "sasl")]
    csprng: Option<&'a mut (dyn rand_core::CryptoRngCore + Send)>,
    /// Close deadline, once `close` was called.
    closing: Option<Instant>,
    fatal: Option<ErrorCode>,
    report: Option<ReportCursor>,
    /// Offset from `Instant` to Unix time, for record timestamps.
    unix_offset_ms: i64,
    /// Where the next drain starts, so that no partition starves.
    drain_cursor: usize,
    metrics: Metrics,
    /// The broker whose response is being read, for `Metrics::last_broker_error_from`.
    answering: Option<i32>,
    /// The timer table behind `poll_timeout`, brought up to date there (unused with
    /// compact-code, which rescans: see `timers`).
    #[cfg_attr(feature = "compact-code", allow(dead_code))]
    clock: core::cell::Cell<timers::Clock>,
}

impl core::fmt::Debug for Producer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer").field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

impl<'a> Producer<'a> {
    /// Creates a producer over `storage`, checking the configuration and that the storage can
    /// hold what it asks for.
    pub fn new(mut config: Config, storage: Storage<'a>, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let Storage { batch_memory, batches, scratch, rx_memory, conns, topics, partitions } = storage;
        if batches.is_empty() || batches.len() >= usize::from(u16::MAX) {
            return Err(ConfigError::Capacity("between 1 and 65534 batch slots are needed"));
        }
        let buffer_size = batch_memory.len() / batches.len();
        if config.batch_size > buffer_size {
            config.batch_size = buffer_size;
        }
        if config.batch_size < record_batch::HEADER_LEN + 8 {
            return Err(ConfigError::Capacity("batch buffers are smaller than a batch header and a record"));
        }
        if config.batch_size > config.max_request_size {
            return Err(ConfigError::Conflict("batch.size exceeds max.request.size"));
        }
        if !config.compression.is_available() {
            return Err(ConfigError::Conflict(
                "compression.type: this build has none and lz4 (gzip, snappy, zstd: picokafka features)",
            ));
        }
        let scratch_needed = config.compression.scratch_len(config.batch_size);
        if scratch.len() < scratch_needed {
            return Err(ConfigError::Capacity(
                "compression scratch smaller than Compression::scratch_len(batch.size)",
            ));
        }
        if conns.is_empty() || conns.len() > 255 {
            return Err(ConfigError::Capacity("between 1 and 255 connection slots are needed"));
        }
        let rx_size = rx_memory.len() / conns.len();
        if rx_size < 512 {
            return Err(ConfigError::Capacity("receive buffers need at least 512 bytes per connection"));
        }
        if topics.is_empty() || topics.len() > 64 {
            return Err(ConfigError::Capacity("between 1 and 64 topic slots are needed"));
        }
        if partitions.is_empty() || partitions.len() >= usize::from(topics::NIL) {
            return Err(ConfigError::Capacity("between 1 and 65534 partition slots are needed"));
        }
        let bootstrap_count = bootstrap::parse(&config.bootstrap_servers).count();
        if bootstrap_count > conns.len() {
            return Err(ConfigError::Capacity("more bootstrap servers than connection slots"));
        }
        let mut conns = ConnTable::new(conns, rx_memory);
        for (i, entry) in bootstrap::parse(&config.bootstrap_servers).enumerate() {
            // Validated when the property was set; a `Config` built by hand is checked here.
            let (host, port) = entry.map_err(|_| ConfigError::InvalidValue {
                property: "bootstrap.servers",
                expected: "host:port[,host:port...]",
            })?;
            let host = String::try_from(host).map_err(|_| ConfigError::Capacity("host name too long"))?;
            conns.assign(i, -1 - i as i32, host, port);
        }
        let transactional = config.transactional_id.is_some();
        let idempotence = Idempotence::new(config.enable_idempotence, transactional, now);
        let txn = Transactions::new(transactional, now);
        let auth = Authentication::new(&config.sasl, config.security_protocol.uses_sasl());
        let rng = Rng::new(config.random_seed);
        let batches = BatchTable::new(batches, batch_memory, scratch, config.batch_size);
        Ok(Self {
            config,
            rng,
            batches,
            conns,
            topics: TopicTable::new(topics),
            partitions: PartitionTable::new(partitions),
            partitioner: None,
            metadata: MetadataState::new(now),
            idempotence,
            txn,
            auth,
            #[cfg(feature = "sasl")]
            csprng: None,
            closing: None,
            fatal: None,
            report: None,
            unix_offset_ms: 0,
            drain_cursor: 0,
            metrics: Metrics::default(),
            answering: None,
            clock: timers::Clock::new(),
        })
    }

    /// Uses `partitioner` for records without an explicit partition.
    pub fn set_partitioner(&mut self, partitioner: &'a mut (dyn Partitioner + Send)) {
        self.partitioner = Some(partitioner);
    }

    /// Gives the producer the transport's cryptographically secure random source, for SCRAM's
    /// nonces (getrandom on hosts, the board's RNG on microcontrollers). SCRAM fails without one.
    #[cfg(feature = "sasl")]
    pub fn set_crypto_rng(&mut self, rng: &'a mut (dyn rand_core::CryptoRngCore + Send)) {
        self.csprng = Some(rng);
    }

    /// Sets the OAUTHBEARER token (`sasl.mechanism=OAUTHBEARER` without an unsecured JWT): new
    /// connections and re-authentications send the newest one. Refused if longer than
    /// [`TOKEN_MAX`].
    pub fn set_oauthbearer_token(&mut self, token: &str) -> Result<(), AuthFailure> {
        self.auth.set_token(token)
    }

    /// Why SASL authentication failed, once it has: the producer is then fatal
    /// ([`Metrics::fatal`]), and this says with which mechanism, as whom, and the broker's words.
    pub fn auth_error(&self) -> Option<AuthError<'_>> {
        self.auth.error(&self.config.sasl)
    }

    /// Tells the producer that `now` is `unix_ms` milliseconds since the Unix epoch, so that
    /// records without a timestamp get a real CreateTime. Without it they are stamped with `now`.
    pub fn set_unix_time(&mut self, now: Instant, unix_ms: i64) {
        self.unix_offset_ms = unix_ms - now.as_millis() as i64;
    }

    /// The configuration in use: validated, with `batch_size` capped to a batch buffer's size.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Copies `record` into a batch buffer. Never blocks; a refused record is untouched.
    pub fn send<'r>(&mut self, now: Instant, record: Record<'r>) -> Result<Accepted, SendError<'r>> {
        self.accept(now, record)
    }

    /// The topic slot for `name`, added if new. A slot is never reclaimed while a Metadata
    /// request naming topics by slot is being written.
    fn topic_slot(&mut self, now: Instant, name: &str) -> Result<usize, SendError<'static>> {
        if let Some(t) = self.topics.find(now, name) {
            return Ok(t);
        }
        // A name is checked when its slot is made, not per record.
        if !crate::record::is_valid_topic_name(name) {
            return Err(SendError::InvalidTopic);
        }
        let writing_metadata = self.conns.iter().any(|c| {
            c.tx.is_some_and(|o| matches!(o.request.kind, connections::RequestKind::Metadata { .. }))
        });
        let idle = Duration::from_millis(u64::from(self.config.metadata_max_idle_ms));
        self.topics
            .add(now, name, &mut self.partitions, !writing_metadata, idle)
            .ok_or(SendError::Capacity("topic slots"))
    }

    /// `batch.num.messages`: partition slot `slot`'s open batch, once it holds that many
    /// records, takes no more; it is sendable at once and the next record opens a new batch.
    fn close_batch_at_record_limit(&mut self, slot: usize) {
        let max = self.config.batch_num_messages;
        if max == 0 {
            return;
        }
        if let Some(tail) = self.partitions[slot].tail {
            let s = &mut self.batches[tail];
            if s.status == BatchStatus::Open && s.builder.record_count as u32 >= max {
                s.status = BatchStatus::Closed;
            }
        }
    }

    /// Makes every batch sendable now, whatever `linger.ms` says.
    pub fn flush(&mut self, now: Instant) {
        for b in self.batches.ids() {
            if self.batches[b].status == BatchStatus::Open {
                self.batches[b].status = BatchStatus::Closed;
            }
        }
        self.schedule(now);
    }

    /// Stops accepting records and sends what is queued. Records not delivered by
    /// `now + timeout` are reported failed with [`DeliveryError::Closed`](crate::DeliveryError::Closed); then every connection
    /// is closed and [`Producer::is_closed`] turns true. A transaction still open is aborted
    /// (its unsent records fail with [`DeliveryError::Aborted`](crate::DeliveryError::Aborted)),
    /// as the Java client does, so that read_committed consumers are not held up.
    pub fn close(&mut self, now: Instant, timeout: Duration) {
        self.txn_close();
        self.flush(now);
        let deadline = now + timeout;
        self.closing = Some(self.closing.map_or(deadline, |d| d.min(deadline)));
        self.schedule(now);
    }

    /// The error that stopped the producer for good, if one did: `send` refuses every record.
    pub fn fatal_error(&self) -> Option<ErrorCode> {
        self.fatal
    }

    /// The error code the last Metadata answer gave for topic `name`, while the producer knows
    /// the topic but not its partitions (say, UNKNOWN_TOPIC_OR_PARTITION): why its records wait.
    pub fn topic_error(&self, name: &str) -> Option<ErrorCode> {
        self.topics.iter().find(|t| t.state != TopicState::Free && t.name == name).and_then(|t| {
            match t.state {
                TopicState::Error(code) => Some(code),
                _ => None,
            }
        })
    }

    /// Records accepted and not yet reported delivered or failed.
    pub fn pending_records(&self) -> u64 {
        self.metrics.records_sent - self.metrics.records_delivered - self.metrics.records_failed
    }

    /// Closed, every record reported and every connection closed.
    pub fn is_closed(&self) -> bool {
        self.closing.is_some()
            && self.batches.all_free()
            && !self.txn.is_ending()
            && self.conns.iter().all(|c| {
                c.close_pending.is_none()
                    && matches!(c.state, ConnState::Free | ConnState::Idle | ConnState::Backoff { .. })
            })
    }

    /// Counters and gauges, readable at any time.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics;
        m.batches_in_use = self.batches.in_use() as u32;
        m.batch_capacity = self.batches.len() as u32;
        m.requests_in_flight = self.conns.iter().map(|c| c.in_flight.len() as u32).sum();
        m.queued_records = self.pending_records();
        (m.producer_id, m.producer_epoch) = self.idempotence.identity();
        m.fatal = self.fatal;
        m.transaction_state = self.txn.state();
        m.transaction_coordinator = self.txn.coordinator();
        m.transactions_committed = self.txn.committed;
        m.transactions_aborted = self.txn.aborted;
        m
    }

    /// The state of connection slot `index`, for health views: `None` past the table's end.
    pub fn connection(&self, index: usize) -> Option<ConnectionState<'_>> {
        let c = self.conns.iter().nth(index)?;
        Some(ConnectionState {
            node_id: c.node_id,
            host: &c.host,
            port: c.port,
            state: metrics::ConnPhase::of(c.state),
            in_flight: c.in_flight.len() as u32,
        })
    }

    fn want_metadata(&mut self) {
        self.metadata.want();
    }

    /// The time a connection attempt gets after `failures` failed ones in a row: as in the Java
    /// client, `socket.connection.setup.timeout.ms` doubled for each, ±20%, at most
    /// `socket.connection.setup.timeout.max.ms`; the first attempt gets it exactly (Java
    /// jitters that one too).
    fn setup_timeout(&mut self, failures: u32) -> Duration {
        let max = self.config.socket_connection_setup_timeout_max_ms;
        let base = self.config.socket_connection_setup_timeout_ms.min(max);
        match failures {
            0 => Duration::from_millis(u64::from(base)),
            _ => backoff(&mut self.rng, base, max, failures.saturating_add(1)),
        }
    }

    fn retry_backoff(&mut self, attempts: u32) -> Duration {
        backoff(&mut self.rng, self.config.retry_backoff_ms, self.config.retry_backoff_max_ms, attempts)
    }

    /// When the transport should call `handle_timeout` next. Only deadlines the producer can
    /// act on count: a batch done lingering whose leader is not connected waits for the
    /// connection, not for a timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let at = self.next_deadline();
        #[cfg(all(debug_assertions, not(feature = "compact-code")))]
        assert_eq!(at, self.deadline_by_rescan(), "the timer table's minimum is the full rescan's");
        at
    }

    /// Acts on every deadline that has passed: linger, retries, timeouts, refreshes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.on_timeout(now);
    }
}

/// Exponential backoff with ±20% seeded jitter, as the Java client computes it.
pub(crate) fn backoff(rng: &mut Rng, base_ms: u32, max_ms: u32, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(31);
    let raw = u64::from(base_ms).saturating_mul(1u64 << exp).min(u64::from(max_ms));
    let jitter = raw / 5;
    let low = raw - jitter;
    let span = (2 * jitter).min(u64::from(u32::MAX));
    let pick = if span == 0 { 0 } else { u64::from(rng.below(span as u32 + 1)) };
    Duration::from_millis((low + pick).min(u64::from(max_ms)).max(if base_ms > 0 { 1 } else { 0 }))
}

impl Acks {
    pub(crate) fn expects_response(self) -> bool {
        self != Acks::None
    }
}
