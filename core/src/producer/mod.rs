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
//!         Event::Connect { conn, host, port } => { /* open a socket to host:port for `conn` */ }
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
pub(crate) mod batches;
pub(crate) mod connections;
mod event;
pub(crate) mod idempotence;
mod metadata;
mod metrics;
pub(crate) mod topics;
// The paths between them, as `impl Producer` blocks: a record's way, in order.
mod accumulator;
pub mod bootstrap;
mod cluster;
mod outcomes;
mod requests;
mod transport;

use heapless::String;

use self::batches::{BatchId, BatchStatus, BatchTable, Outcome};
pub use self::connections::ConnId;
use self::connections::{ConnState, ConnTable};
pub use self::event::{Event, Transmit};
use self::idempotence::Idempotence;
use self::metadata::MetadataState;
pub use self::metrics::{ConnPhase, ConnectionState, Metrics};
use self::topics::{PartitionTable, TopicState, TopicTable};
use crate::config::{Acks, Config, ConfigError};
use crate::error::{DeliveryError, SendError};
use crate::partitioner::Partitioner;
use crate::protocol::record_batch::{self, BatchBuilder};
use crate::protocol::ErrorCode;
use crate::rand::Rng;
use crate::record::{is_valid_topic_name, Accepted, Record};
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
    /// Close deadline, once `close` was called.
    closing: Option<Instant>,
    fatal: Option<ErrorCode>,
    report: Option<ReportCursor>,
    /// Offset from `Instant` to Unix time, for record timestamps.
    unix_offset_ms: i64,
    /// Where the next drain starts, so that no partition starves.
    drain_cursor: usize,
    metrics: Metrics,
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
        let idempotence = Idempotence::new(config.enable_idempotence, now);
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
            closing: None,
            fatal: None,
            report: None,
            unix_offset_ms: 0,
            drain_cursor: 0,
            metrics: Metrics::default(),
        })
    }

    /// Uses `partitioner` for records without an explicit partition.
    pub fn set_partitioner(&mut self, partitioner: &'a mut (dyn Partitioner + Send)) {
        self.partitioner = Some(partitioner);
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
        if let Some(code) = self.fatal {
            return Err(SendError::Fatal(code));
        }
        if self.closing.is_some() {
            return Err(SendError::Closed);
        }
        if !is_valid_topic_name(record.topic) {
            return Err(SendError::InvalidTopic);
        }
        let headers_ok = record.headers.len() <= i32::MAX as usize;
        let timestamp = record.timestamp.unwrap_or(now.as_millis() as i64 + self.unix_offset_ms);
        // Size on an empty batch: the least room this record can ever need.
        let size = record_batch::HEADER_LEN
            + BatchBuilder::new(&mut [0u8; record_batch::HEADER_LEN])
                .map(|b| b.record_size(timestamp, record.key, record.value, record.headers))
                .unwrap_or(usize::MAX);
        if !headers_ok || size > self.config.batch_size {
            return Err(SendError::RecordTooLarge { size, max: self.config.batch_size });
        }
        let topic = self.topic_slot(now, record.topic).ok_or(SendError::Capacity("topic slots"))?;
        let (first, count) = match self.topics[topic].state {
            TopicState::Known { first, count } => (first, count),
            TopicState::Error(code) if !code.is_retriable() && code != ErrorCode::UnknownTopicOrPartition => {
                return Err(SendError::Topic(code));
            }
            _ => {
                // Unless the request in flight already asks about this topic.
                if !self.metadata.asking_about(topic) {
                    self.want_metadata();
                }
                self.schedule(now);
                return Err(SendError::MetadataPending(record));
            }
        };
        let count_i32 = i32::from(count);
        let partition = self.choose_partition(topic, &record, count_i32)?;
        let slot = usize::from(first) + partition as usize;
        let token = self.append(now, topic, slot, &record, timestamp)?;
        self.metrics.records_sent += 1;
        self.metrics.record_bytes += size as u64 - record_batch::HEADER_LEN as u64;
        Ok(Accepted { token, partition, timestamp })
    }

    /// The topic slot for `name`, added if new. A slot is never reclaimed while a Metadata
    /// request naming topics by slot is being written.
    fn topic_slot(&mut self, now: Instant, name: &str) -> Option<usize> {
        if let Some(t) = self.topics.find(now, name) {
            return Some(t);
        }
        let writing_metadata = self.conns.iter().any(|c| {
            c.tx.is_some_and(|o| matches!(o.request.kind, connections::RequestKind::Metadata { .. }))
        });
        let idle = Duration::from_millis(u64::from(self.config.metadata_max_idle_ms));
        self.topics.add(now, name, &mut self.partitions, !writing_metadata, idle)
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
    /// `now + timeout` are reported failed with [`DeliveryError::Closed`]; then every connection
    /// is closed and [`Producer::is_closed`] turns true.
    pub fn close(&mut self, now: Instant, timeout: Duration) {
        self.flush(now);
        let deadline = now + timeout;
        self.closing = Some(self.closing.map_or(deadline, |d| d.min(deadline)));
        self.schedule(now);
    }

    /// Records accepted and not yet reported delivered or failed.
    pub fn pending_records(&self) -> u64 {
        self.metrics.records_sent - self.metrics.records_delivered - self.metrics.records_failed
    }

    /// Closed, every record reported and every connection closed.
    pub fn is_closed(&self) -> bool {
        self.closing.is_some()
            && self.batches.all_free()
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

    fn retry_backoff(&mut self, attempts: u32) -> Duration {
        backoff(&mut self.rng, self.config.retry_backoff_ms, self.config.retry_backoff_max_ms, attempts)
    }

    /// When the transport should call `handle_timeout` next. Only deadlines the producer can
    /// act on count: a batch done lingering whose leader is not connected waits for the
    /// connection, not for a timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = Instant::NEVER;
        let linger = Duration::from_millis(u64::from(self.config.linger_ms));
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        let request = Duration::from_millis(u64::from(self.config.request_timeout_ms));
        let setup = Duration::from_millis(u64::from(self.config.socket_connection_setup_timeout_ms));
        // The oldest batch not in flight, per partition: a partition's batches are chained in
        // creation order, so it is the first such one in its chain (past the few in flight or
        // awaiting reports). Walking chains instead of every batch slot matters: this runs on
        // every turn of a transport's loop, and a host producer has thousands of slots.
        for p in self.partitions.iter() {
            if let Some((_, s)) = self.batches.partition_chain(p.head).find(|(_, s)| s.is_queued()) {
                t = t.min(s.created + delivery);
            }
        }
        for c in self.conns.iter() {
            match c.state {
                ConnState::Connecting { since } => t = t.min(since + setup),
                ConnState::Backoff { until } => t = t.min(until),
                _ => {}
            }
            if let Some(f) = c.in_flight.iter().find(|f| f.is_awaited()) {
                t = t.min(f.sent_at + request);
            }
        }
        let control = self.control_conn().is_some_and(|i| self.can_start(i));
        let max_age = Duration::from_millis(u64::from(self.config.metadata_max_age_ms));
        t = t.min(self.metadata.expires(max_age));
        if let Some(at) = self.metadata.next_request().filter(|_| control) {
            t = t.min(at);
        }
        if self.idempotence.is_wanted() && control && !self.any_produce_in_flight() {
            t = t.min(self.idempotence.next_attempt());
        }
        if self.idempotence.allows_produce() {
            for pi in 0..self.partitions.len() {
                let p = &self.partitions[pi];
                if p.is_free() || p.head.is_none() || p.leader < 0 {
                    continue;
                }
                let Some(i) = self.conns.of_node(p.leader) else { continue };
                if self.conns[i].state == ConnState::Ready && self.can_start(i) {
                    if let Some((_, at)) = self.candidate(pi, i, linger) {
                        t = t.min(at);
                    }
                }
            }
        }
        if let Some(d) = self.closing {
            t = t.min(d);
        }
        (t != Instant::NEVER).then_some(t)
    }

    /// Acts on every deadline that has passed: linger, retries, timeouts, refreshes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let request = Duration::from_millis(u64::from(self.config.request_timeout_ms));
        let setup = Duration::from_millis(u64::from(self.config.socket_connection_setup_timeout_ms));
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let timed_out =
                c.in_flight.iter().find(|f| f.is_awaited()).is_some_and(|f| f.sent_at + request <= now);
            match c.state {
                ConnState::Connecting { since } if since + setup <= now => {
                    self.close_conn(now, i, crate::error::ConnError::ConnectTimeout)
                }
                ConnState::Backoff { until } if until <= now => self.conns[i].state = ConnState::Idle,
                _ if timed_out => self.close_conn(now, i, crate::error::ConnError::RequestTimeout),
                _ => {}
            }
        }
        let max_age = Duration::from_millis(u64::from(self.config.metadata_max_age_ms));
        if self.metadata.expires(max_age) <= now {
            self.want_metadata();
        }
        self.expire_batches(now);
        if let Some(deadline) = self.closing {
            if deadline <= now {
                self.abandon_all(DeliveryError::Closed);
            }
        }
        self.schedule(now);
    }

    /// Fails batches whose `delivery.timeout.ms` has passed and that are not in flight (an
    /// in-flight batch waits for its answer or its request's timeout, which comes first).
    fn expire_batches(&mut self, now: Instant) {
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        for b in self.batches.ids() {
            let s = &self.batches[b];
            if s.is_queued() && s.created + delivery <= now {
                let last = s.last_error;
                self.fail_batch(b, DeliveryError::Timeout { last });
            }
        }
    }

    /// Fails every batch not yet done (close deadline, fatal error).
    fn abandon_all(&mut self, error: DeliveryError) {
        for b in self.batches.ids() {
            if !matches!(self.batches[b].status, BatchStatus::Free | BatchStatus::Done) {
                self.batches[b].request = None;
                self.fail_batch(b, error);
            }
        }
    }

    /// Records the outcome of a batch; its reports are handed out in partition order.
    fn finish_batch(&mut self, b: BatchId, outcome: Outcome) {
        if !self.batches.finish(b, outcome) {
            return;
        }
        let records = u64::from(self.batches[b].builder.record_count.max(0) as u32);
        match outcome {
            Outcome::Delivered { .. } => {
                self.metrics.batches_delivered += 1;
                self.metrics.records_delivered += records;
            }
            Outcome::Failed(e) => {
                self.metrics.records_failed += records;
                self.metrics.last_delivery_error = Some(e);
            }
        }
    }

    /// Fails a batch. A failed batch that reached a broker may or may not be in the log (a
    /// timeout after a lost answer); if it is not, the broker answers the partition's next batch
    /// with OUT_OF_ORDER_SEQUENCE_NUMBER, and only then does the partition start over under a new
    /// producer id. Guessing earlier could write a batch twice.
    fn fail_batch(&mut self, b: BatchId, error: DeliveryError) {
        self.finish_batch(b, Outcome::Failed(error));
    }

    /// Asks for a new producer id because partition `slot`'s sequence broke; its batches not yet
    /// acknowledged are renumbered under the new id. Other partitions move over lazily.
    fn request_epoch_bump(&mut self, slot: usize) {
        self.partitions[slot].seq.rewrite = true;
        self.idempotence.request_new_id();
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
