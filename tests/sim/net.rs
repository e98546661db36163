//! The network, clock and application of the deterministic simulation: a harness that drives a
//! real `picokafka::Producer` against a [`SimCluster`].
//!
//! [`Sim`] is the transport the producer's module docs describe, with everything a real one
//! leaves to chance made explicit and seeded:
//!
//! - **Virtual time.** Nothing happens between events: when nothing is due, the clock jumps to
//!   the earliest of the producer's `poll_timeout()`, the next network delivery, the next
//!   scheduled fault and the next application send, and `handle_timeout` is called when the
//!   producer's deadline is reached (never before).
//! - **A seeded network** ([`NetConfig`]): connection setup and one-way latencies drawn per
//!   chunk (ordered per direction, like TCP), `poll_transmit` into buffers of random size (partial
//!   writes), responses handed to `handle_input` in random chunks, and per-delivery chances to
//!   reset a connection or cut it mid-frame (a prefix arrives, then the reset). When the producer
//!   closes a connection, bytes it already wrote may still reach the broker.
//! - **Scheduled faults** ([`Fault`]): brokers down/up (connections reset, connects refused),
//!   black holes (bytes vanish, connects hang), leader moves, error codes and lost responses
//!   injected into the cluster, connection resets.
//! - **An application** that sends [`RecordSpec`]s at given times, retrying `QueueFull` and
//!   `MetadataPending` as a blocking `send` would until its `max_block` passes, and a
//!   [`Ledger`] of what happened to each record (every record carries a `sim.id` header, so the
//!   broker's log can be matched back to sends).
//! - **Records of the run**: a transcript of notable steps (connects, every request and
//!   response decoded with `kafka-protocol`, faults, sends, delivery reports), a hash of every
//!   byte the producer wrote (with its time and connection), and the protocol violations the
//!   harness saw (events for unknown tokens, writes to connections that are not open, a stuck
//!   timer, more batches in use than exist, ...).
//!
//! - **SASL**: with `security.protocol=SASL_*` the producer is given [`SimCsprng`], a seeded
//!   stand-in for the CSPRNG its SCRAM nonces come from, and the cluster is told the time before
//!   every delivery (its SASL sessions end by it).
//!
//! [`Sim::verify`] then checks the ledger against the cluster's logs; see [`Expect`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnResponse;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::sasl_authenticate_response::SaslAuthenticateResponse;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use kafka_protocol::messages::sasl_handshake_response::SaslHandshakeResponse;
use kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use picokafka::protocol::ErrorCode;
use picokafka::storage::{BatchSlot, ConnSlot, PartitionSlot, TopicSlot};
use picokafka::{
    Accepted, Acks, Compression, Config, ConfigError, ConnId, DeliveryError, Event, Header, Instant,
    Producer, Record, RecordToken, SendError, Storage, TxnError, TxnOp,
};

use super::cluster::{api_key, SimCluster, StoredRecord};

/// Header every simulated record carries: its id in the [`Ledger`], in decimal.
pub const ID_HEADER: &str = "sim.id";

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, seeded, and independent of the producer's own PRNG.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6a09_e667_f3bc_c908)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `p / 1000`.
    pub fn per_mille(&mut self, p: u32) -> bool {
        p > 0 && self.below(1000) < u64::from(p)
    }
}

/// The random source a SASL producer gets for SCRAM nonces (`Producer::set_crypto_rng`).
///
/// NOT cryptographically secure: SplitMix64 from a seed, wearing rand_core's `CryptoRng` marker.
/// That is fine here and only here: in a simulation the nonce must differ per exchange and repeat
/// per seed (so runs replay byte for byte); nothing is secret and no attacker listens. A real
/// transport hands over the OS's CSPRNG (the tokio one does: getrandom).
#[derive(Debug, Clone)]
pub struct SimCsprng(SimRng);

impl SimCsprng {
    pub fn new(seed: u64) -> Self {
        Self(SimRng::new(seed ^ 0x5a51_c0de_5a51_c0de))
    }
}

impl rand_core::RngCore for SimCsprng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let n = chunk.len();
            chunk.copy_from_slice(&self.0.next_u64().to_le_bytes()[..n]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Simulation only: see the type's documentation.
impl rand_core::CryptoRng for SimCsprng {}

// ---------------------------------------------------------------------------------------------
// Network configuration and faults
// ---------------------------------------------------------------------------------------------

/// How the simulated network behaves. Every choice is drawn from `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    pub seed: u64,
    /// One-way latency of each chunk, milliseconds (inclusive range).
    pub latency_ms: (u64, u64),
    /// Time from `Connect` to `handle_connected` (or refusal), milliseconds.
    pub connect_ms: (u64, u64),
    /// Size of the buffer handed to each `poll_transmit` (inclusive range).
    pub write_chunk: (usize, usize),
    /// Size of the pieces a response is handed to `handle_input` in (inclusive range).
    pub read_chunk: (usize, usize),
    /// Per delivered chunk: the connection is reset before it arrives.
    pub drop_per_mille: u32,
    /// Per delivered chunk: a random prefix arrives, then the connection is reset.
    pub cut_per_mille: u32,
    /// When the producer closes a connection, the bytes it wrote still reach the broker.
    pub flush_on_close_per_mille: u32,
}

impl NetConfig {
    /// No loss: latencies of a few milliseconds, random partial writes and reads.
    pub const fn calm(seed: u64) -> Self {
        Self {
            seed,
            latency_ms: (1, 5),
            connect_ms: (1, 10),
            write_chunk: (1, 4096),
            read_chunk: (1, 4096),
            drop_per_mille: 0,
            cut_per_mille: 0,
            flush_on_close_per_mille: 500,
        }
    }

    /// Whole requests and responses, fixed latency: for readable transcripts.
    pub const fn simple(seed: u64) -> Self {
        Self {
            seed,
            latency_ms: (2, 2),
            connect_ms: (2, 2),
            write_chunk: (65536, 65536),
            read_chunk: (65536, 65536),
            drop_per_mille: 0,
            cut_per_mille: 0,
            flush_on_close_per_mille: 0,
        }
    }

    /// Lossy: connections reset or cut now and then.
    pub const fn lossy(seed: u64, drop_per_mille: u32, cut_per_mille: u32) -> Self {
        Self { drop_per_mille, cut_per_mille, ..Self::calm(seed) }
    }
}

/// Something that happens to the cluster or the network at a scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The broker stops: its connections are reset, connects to it are refused, Metadata leaves
    /// it out and the partitions it leads have no leader.
    BrokerDown(i32),
    BrokerUp(i32),
    /// Bytes to and from the broker vanish (connections stay "open"); connects to it hang.
    Blackhole(i32),
    /// Ends a black hole. Connections that were in it stay dead.
    Heal(i32),
    /// The broker becomes the partition's leader (the leader epoch is bumped).
    MoveLeader {
        topic: String,
        partition: i32,
        to: i32,
    },
    /// The next `count` requests with `api_key` (to `broker`, or any) get `code`.
    InjectError {
        api_key: i16,
        broker: Option<i32>,
        code: i16,
        count: u32,
    },
    /// The next `count` requests with `api_key` are processed, then the broker closes the
    /// connection instead of answering.
    InjectDisconnect {
        api_key: i16,
        broker: Option<i32>,
        count: u32,
    },
    /// Every connection to the broker (or to any broker) is reset.
    ResetConnections(Option<i32>),
    /// The next non-empty answer of `broker` (or any broker) is replaced by hostile bytes.
    Hostile {
        broker: Option<i32>,
        kind: Hostile,
    },
}

/// Bytes a broker should never send, as a hostile or broken one might.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// A frame whose length prefix claims 2 GiB.
    HugeLength,
    /// The first half of the answer, and then nothing more on that connection (the broker
    /// stalls mid-frame).
    Truncated,
    /// The answer with a correlation id no request has.
    WrongCorrelationId,
    /// A well-formed frame whose body answers another API (an ApiVersions v0 body).
    ForeignApi,
    /// The answer followed by bytes that are not a frame.
    GarbageAfter,
}

impl Hostile {
    /// The hostile version of `reply` (one or more whole frames).
    pub fn apply(self, reply: &[u8]) -> Vec<u8> {
        match self {
            Hostile::HugeLength => {
                let mut b = vec![0x7f, 0xff, 0xff, 0xff];
                b.extend_from_slice(&reply[4..reply.len().min(64)]);
                b
            }
            Hostile::Truncated => reply[..reply.len() / 2].to_vec(),
            Hostile::WrongCorrelationId => {
                let mut b = reply.to_vec();
                let id = i32::from_be_bytes([b[4], b[5], b[6], b[7]]).wrapping_add(1000);
                b[4..8].copy_from_slice(&id.to_be_bytes());
                b
            }
            Hostile::ForeignApi => {
                // Correlation id kept; body: error 0, no API keys, no throttle (ApiVersions v0).
                let mut b = 12i32.to_be_bytes().to_vec();
                b.extend_from_slice(&reply[4..8]);
                b.extend_from_slice(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]);
                b
            }
            Hostile::GarbageAfter => {
                let mut b = reply.to_vec();
                b.extend_from_slice(b"\x00\x00\x00\x10not a kafka frame at all");
                b
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/// The capacities of a producer's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub batches: usize,
    /// Bytes per batch buffer.
    pub batch_size: usize,
    pub scratch: usize,
    pub conns: usize,
    /// Receive buffer bytes per connection.
    pub rx_size: usize,
    pub topics: usize,
    pub partitions: usize,
}

impl Capacity {
    /// Room for a few topics on a few brokers; scratch for LZ4 of a whole batch buffer.
    pub fn small(batches: usize, batch_size: usize) -> Self {
        Self {
            batches,
            batch_size,
            scratch: Compression::Lz4.scratch_len(batch_size).max(batch_size),
            conns: 6,
            rx_size: 8192,
            topics: 4,
            partitions: 32,
        }
    }
}

/// Host-allocated storage for a producer (the `Vec` form of `Resources`).
#[derive(Debug)]
pub struct Memory {
    batch_memory: Vec<u8>,
    batches: Vec<BatchSlot>,
    scratch: Vec<u8>,
    rx: Vec<u8>,
    conns: Vec<ConnSlot>,
    topics: Vec<TopicSlot>,
    partitions: Vec<PartitionSlot>,
}

impl Memory {
    pub fn new(c: Capacity) -> Self {
        Self {
            batch_memory: vec![0; c.batches * c.batch_size],
            batches: vec![BatchSlot::EMPTY; c.batches],
            scratch: vec![0; c.scratch],
            rx: vec![0; c.conns * c.rx_size],
            conns: vec![ConnSlot::EMPTY; c.conns],
            topics: vec![TopicSlot::EMPTY; c.topics],
            partitions: vec![PartitionSlot::EMPTY; c.partitions],
        }
    }

    pub fn storage(&mut self) -> Storage<'_> {
        Storage {
            batch_memory: &mut self.batch_memory,
            batches: &mut self.batches,
            scratch: &mut self.scratch,
            rx_memory: &mut self.rx,
            conns: &mut self.conns,
            topics: &mut self.topics,
            partitions: &mut self.partitions,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records and the ledger
// ---------------------------------------------------------------------------------------------

/// A record the application sends (owned; the harness adds the [`ID_HEADER`] header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl RecordSpec {
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn header(mut self, key: &str, value: Option<&[u8]>) -> Self {
        self.headers.push((key.to_string(), value.map(<[u8]>::to_vec)));
        self
    }
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Why `send` refused a record (a `SendError` without the record it hands back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    QueueFull,
    MetadataPending,
    RecordTooLarge { size: usize, max: usize, limit: picokafka::SizeLimit },
    InvalidTopic,
    PartitionOutOfRange { partition: i32, count: i32 },
    Topic(ErrorCode),
    Capacity(&'static str),
    Closed,
    Fatal(ErrorCode),
    NoTransaction(picokafka::TxnState),
}

impl Refusal {
    fn of(e: &SendError<'_>) -> Self {
        match *e {
            SendError::QueueFull(_) => Self::QueueFull,
            SendError::MetadataPending(_) => Self::MetadataPending,
            SendError::RecordTooLarge { size, max, limit } => Self::RecordTooLarge { size, max, limit },
            SendError::InvalidTopic => Self::InvalidTopic,
            SendError::PartitionOutOfRange { partition, count } => {
                Self::PartitionOutOfRange { partition, count }
            }
            SendError::Topic(code) => Self::Topic(code),
            SendError::Capacity(what) => Self::Capacity(what),
            SendError::Closed => Self::Closed,
            SendError::Fatal(code) => Self::Fatal(code),
            SendError::NoTransaction(state) => Self::NoTransaction(state),
        }
    }

    pub fn is_retriable(self) -> bool {
        matches!(self, Self::QueueFull | Self::MetadataPending)
    }
}

/// A delivery report, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `log_append_time` as the producer reported it (`None`: the record's CreateTime).
    Delivered {
        partition: i32,
        offset: i64,
        log_append_time: Option<i64>,
    },
    Failed {
        partition: i32,
        error: DeliveryError,
    },
}

/// What happened to one record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    pub spec: RecordSpec,
    /// When the application wanted to send it.
    pub due: Instant,
    /// When `send` accepted it, what it said, and the record's place in acceptance order.
    pub accepted: Option<(Instant, Accepted, u64)>,
    /// Why it was given up on without being accepted (the last refusal after retries).
    pub refused: Option<Refusal>,
    /// Refusals seen, repeats of the same one counted once (including retriable ones that
    /// were retried).
    pub refusals: Vec<Refusal>,
    /// The terminal event and when it came.
    pub outcome: Option<(Instant, Outcome)>,
}

/// Every record the application tried to send, by id.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub entries: Vec<Entry>,
    /// Tokens accepted and not yet reported.
    pending: BTreeMap<u64, u64>,
    accepted_count: u64,
}

impl Ledger {
    pub fn get(&self, id: u64) -> &Entry {
        &self.entries[id as usize]
    }
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
    pub fn delivered(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| matches!(e.outcome, Some((_, Outcome::Delivered { .. }))))
    }
    pub fn failed(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| matches!(e.outcome, Some((_, Outcome::Failed { .. }))))
    }
    pub fn refused(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.refused.is_some())
    }
    /// Delivery errors, counted by kind.
    pub fn failure_summary(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.failed() {
            if let Some((_, Outcome::Failed { error, .. })) = e.outcome {
                *out.entry(format!("{error:?}")).or_default() += 1;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientSide {
    Connecting,
    Open,
    /// The producer closed it or was told it is gone.
    Gone,
}

/// One simulated TCP connection, named `c{id}` in the transcript.
#[derive(Debug)]
struct Link {
    id: u64,
    conn: ConnId,
    broker: Option<i32>,
    client: ClientSide,
    /// The broker side still reads bytes.
    broker_open: bool,
    /// Swallowed by a black hole.
    dead: bool,
    /// The broker stopped answering on this connection (mid-frame).
    stalled: bool,
    last_to_broker: Instant,
    last_to_client: Instant,
    /// Request bytes the broker received, reassembled for the transcript.
    rx: Vec<u8>,
    /// Correlation id ⇒ (api key, version) of requests seen on this link.
    asked: BTreeMap<i32, (i16, i16)>,
}

#[derive(Debug)]
enum Action {
    ConnectDone(u64),
    ToBroker(u64, Vec<u8>),
    ToClient(u64, Vec<u8>),
    /// The broker closed or reset the connection: the client learns it now.
    ClientFin(u64),
    /// The broker notices the client's close after the bytes before it.
    BrokerFin(u64),
    Fault(Fault),
}

#[derive(Debug)]
struct Planned {
    id: u64,
    at: Instant,
    /// First refusal, for `max_block`.
    blocked_since: Option<Instant>,
}

/// A delivery report event, copied out of the producer's borrow.
#[derive(Debug, Clone, Copy)]
enum OwnedEvent {
    Connect { conn: ConnId, broker: Option<i32>, port: u16 },
    Close { conn: ConnId },
    Delivered { token: RecordToken, partition: i32, offset: i64, log_append_time: Option<i64> },
    Failed { token: RecordToken, partition: i32, error: DeliveryError },
    Transaction { op: TxnOp, result: Result<(), TxnError> },
}

/// Counters of the run (not the producer's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub transmits: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub connects: u64,
    pub resets: u64,
    pub cuts: u64,
    pub timer_fires: u64,
    /// `handle_timeout` calls after which `poll_timeout()` still said "now" with nothing else
    /// due: a transport would spin.
    pub stuck_timer: u64,
    /// Times events were created by a `poll_transmit` call that wrote nothing (after the
    /// transport drained `poll_event`): a transport following the documented loop misses them
    /// until its timer fires.
    pub late_events: u64,
    /// `Close` events for connections the transport had already reported lost (a benign race a
    /// real transport ignores).
    pub close_after_loss: u64,
    pub max_batches_in_use: u32,
    pub iterations: u64,
}

/// The deterministic simulation. See the module docs.
pub struct Sim<'m> {
    pub producer: Producer<'m>,
    pub cluster: SimCluster,
    pub now: Instant,
    pub net: NetConfig,
    pub ledger: Ledger,
    pub stats: SimStats,
    /// The application gives up on a record refused with `QueueFull`/`MetadataPending` for
    /// this long (Kafka's `max.block.ms`).
    pub max_block_ms: u64,
    /// Harness-detected violations of the producer's contract.
    pub violations: Vec<String>,
    /// Every `Event::Transaction`, with when it came.
    pub txn_events: Vec<(Instant, TxnOp, Result<(), TxnError>)>,
    /// Follow the module docs' loop to the letter, like the tokio driver: events are polled
    /// before transmits only, so events a `poll_transmit` creates wait for the next wake-up
    /// (default: polled at once and counted in [`SimStats::late_events`]).
    pub strict_loop: bool,
    rng: SimRng,
    links: BTreeMap<u64, Link>,
    by_conn: BTreeMap<ConnId, u64>,
    /// Connection ids reported lost to the producer and not reused since.
    lost: BTreeSet<ConnId>,
    next_link: u64,
    agenda: BTreeMap<(Instant, u64), Action>,
    seq: u64,
    workload: VecDeque<Planned>,
    blackholed: BTreeSet<i32>,
    /// Hostile answers waiting to replace a broker's next answer.
    hostile: Vec<(Option<i32>, Hostile)>,
    transcript: Vec<(Instant, String)>,
    /// The past deadline the timer was last stuck at.
    stuck_deadline: Option<Instant>,
    hash: u64,
    trace: bool,
    max_in_flight: usize,
    acks0: bool,
    write_buf: Vec<u8>,
}

impl std::fmt::Debug for Sim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("now", &self.now).field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// `host:port` list of every broker of the cluster.
pub fn bootstrap_of(cluster: &SimCluster) -> String {
    cluster.bootstrap().iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(",")
}

/// FNV-1a, 64 bit: a hash that stays the same across Rust releases (golden files keep it).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn code_name(code: i16) -> String {
    if code == 0 {
        "NONE".to_string()
    } else {
        format!("{}({code})", ErrorCode::from(code).name())
    }
}

fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}").trim_end_matches("Key").to_string(),
        Err(_) => format!("api{key}"),
    }
}

impl<'m> Sim<'m> {
    /// A producer over `storage` at time 0 with `config` (its `random_seed` is kept), against
    /// `cluster`, through a network behaving as `net` says.
    pub fn new(
        config: Config,
        storage: Storage<'m>,
        cluster: SimCluster,
        net: NetConfig,
    ) -> Result<Self, ConfigError> {
        let now = Instant::ZERO;
        let max_in_flight = usize::from(config.max_in_flight_requests_per_connection);
        let acks0 = config.acks == Acks::None;
        let sasl = config.security_protocol.uses_sasl();
        let mut producer = Producer::new(config, storage, now)?;
        if sasl {
            // The producer borrows its random source for as long as its storage; a simulation's
            // is a few bytes, leaked so that `Sim` needs no second owner.
            producer.set_crypto_rng(Box::leak(Box::new(SimCsprng::new(net.seed))));
        }
        Ok(Self {
            producer,
            cluster,
            now,
            net,
            ledger: Ledger::default(),
            stats: SimStats::default(),
            max_block_ms: 60_000,
            violations: Vec::new(),
            txn_events: Vec::new(),
            strict_loop: false,
            rng: SimRng::new(net.seed),
            links: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            lost: BTreeSet::new(),
            next_link: 1,
            agenda: BTreeMap::new(),
            seq: 0,
            workload: VecDeque::new(),
            blackholed: BTreeSet::new(),
            hostile: Vec::new(),
            transcript: Vec::new(),
            stuck_deadline: None,
            hash: FNV_OFFSET,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            max_in_flight,
            acks0,
            write_buf: vec![0; net.write_chunk.1.max(1)],
        })
    }

    // -----------------------------------------------------------------------------------------
    // Records of the run
    // -----------------------------------------------------------------------------------------

    fn note(&mut self, line: String) {
        if self.trace {
            eprintln!("[{:>7}ms] {line}", self.now.as_millis());
        }
        self.transcript.push((self.now, line));
    }

    fn violation(&mut self, what: String) {
        self.note(format!("VIOLATION: {what}"));
        self.violations.push(format!("t={}ms: {what}", self.now.as_millis()));
    }

    /// The transcript lines, without times.
    pub fn transcript(&self) -> Vec<String> {
        self.transcript.iter().map(|(_, l)| l.clone()).collect()
    }

    /// The transcript with times, one line each.
    pub fn transcript_text(&self) -> String {
        let mut s = String::new();
        for (t, l) in &self.transcript {
            let _ = writeln!(s, "[{:>7}ms] {l}", t.as_millis());
        }
        s
    }

    /// Transcript lines (with times) containing `needle`.
    pub fn transcript_matching(&self, needle: &str) -> Vec<(u64, String)> {
        self.transcript
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .map(|(t, l)| (t.as_millis(), l.clone()))
            .collect()
    }

    /// Connections the producer has open or is opening, as the network sees them.
    pub fn open_connections(&self) -> usize {
        self.by_conn.len()
    }

    /// Numbers this simulation's connections from `base` on (the cluster keys its connection
    /// state by them): two simulations that take turns with one cluster need apart ranges.
    pub fn set_link_base(&mut self, base: u64) {
        self.next_link = self.next_link.max(base);
    }

    /// Runs a transactional operation: `start` calls the producer's API (its `Err` is
    /// returned at once), then the simulation runs until the operation's
    /// `Event::Transaction` comes (`Err(TxnError::Closed)` standing for "none by
    /// `deadline_ms`", with a violation noted). `begin_transaction` and an empty
    /// `send_offsets_to_transaction` end without an event: `Ok` at once.
    pub fn transact(
        &mut self,
        op: TxnOp,
        deadline_ms: u64,
        start: impl FnOnce(&mut Producer<'m>, Instant) -> Result<(), TxnError>,
    ) -> Result<(), TxnError> {
        let seen = self.txn_events.len();
        self.note(format!("{}()", op.name()));
        let now = self.now;
        if let Err(e) = start(&mut self.producer, now) {
            self.note(format!("{}() refused: {e:?}", op.name()));
            return Err(e);
        }
        if op == TxnOp::Begin {
            return Ok(());
        }
        let found = |s: &Sim<'m>| s.txn_events[seen..].iter().any(|(_, o, _)| *o == op);
        if !self.run_until(Instant::from_millis(deadline_ms), found) {
            if op == TxnOp::SendOffsets {
                // An empty list of offsets ends at once, without an event.
                return Ok(());
            }
            self.violation(format!("{} never ended", op.name()));
            return Err(TxnError::Closed);
        }
        let (_, _, result) = *self.txn_events[seen..].iter().find(|(_, o, _)| *o == op).expect("found");
        result
    }

    /// Hash of every byte the producer wrote, with when and on which connection.
    pub fn bytes_hash(&self) -> u64 {
        self.hash
    }

    // -----------------------------------------------------------------------------------------
    // The application
    // -----------------------------------------------------------------------------------------

    fn new_entry(&mut self, spec: RecordSpec, due: Instant) -> u64 {
        let id = self.ledger.entries.len() as u64;
        self.ledger.entries.push(Entry {
            id,
            spec,
            due,
            accepted: None,
            refused: None,
            refusals: Vec::new(),
            outcome: None,
        });
        id
    }

    /// Sends a record now, once: the id it has in the ledger, or why it was refused (then it
    /// counts as refused in the ledger). Drive the simulation afterwards.
    pub fn send(&mut self, spec: RecordSpec) -> Result<u64, Refusal> {
        let id = self.new_entry(spec, self.now);
        match self.try_send(id) {
            Ok(()) => Ok(id),
            Err(r) => {
                self.ledger.entries[id as usize].refused = Some(r);
                Err(r)
            }
        }
    }

    /// The application sends `spec` at `at` (retrying `QueueFull`/`MetadataPending` until
    /// `max_block_ms`). Records are sent in the order enqueued. Returns its ledger id.
    pub fn enqueue(&mut self, at: Instant, spec: RecordSpec) -> u64 {
        let id = self.new_entry(spec, at);
        self.workload.push_back(Planned { id, at, blocked_since: None });
        id
    }

    /// Whether the application has records left to send.
    pub fn workload_pending(&self) -> usize {
        self.workload.len()
    }

    fn try_send(&mut self, id: u64) -> Result<(), Refusal> {
        let spec = self.ledger.entries[id as usize].spec.clone();
        let id_value = id.to_string().into_bytes();
        let mut headers: Vec<Header<'_>> =
            spec.headers.iter().map(|(k, v)| Header { key: k, value: v.as_deref() }).collect();
        headers.push(Header { key: ID_HEADER, value: Some(&id_value) });
        let record = Record {
            topic: &spec.topic,
            partition: spec.partition,
            key: spec.key.as_deref(),
            value: spec.value.as_deref(),
            headers: &headers,
            timestamp: spec.timestamp,
        };
        match self.producer.send(self.now, record) {
            Ok(accepted) => {
                let order = self.ledger.accepted_count;
                self.ledger.accepted_count += 1;
                if let Some(other) = self.ledger.pending.insert(accepted.token.as_u64(), id) {
                    self.violation(format!(
                        "send r{id}: token {:#x} is still pending for r{other}",
                        accepted.token.as_u64()
                    ));
                }
                self.ledger.entries[id as usize].accepted = Some((self.now, accepted, order));
                self.note(format!("send r{id} -> {}-{}", spec.topic, accepted.partition));
                Ok(())
            }
            Err(e) => {
                let handed_back = match e {
                    SendError::QueueFull(r) | SendError::MetadataPending(r) => Some(r),
                    _ => None,
                };
                if handed_back.is_some_and(|r| r != record) {
                    self.violation(format!("send r{id}: the refused record handed back is not the one sent"));
                }
                let r = Refusal::of(&e);
                let refusals = &mut self.ledger.entries[id as usize].refusals;
                if refusals.last() != Some(&r) {
                    refusals.push(r);
                    self.note(format!("send r{id} refused: {r:?}"));
                }
                Err(r)
            }
        }
    }

    /// Sends what is due, in order. Whether anything left the queue.
    fn run_workload(&mut self) -> bool {
        let mut progressed = false;
        while let Some(front) = self.workload.front() {
            if front.at > self.now {
                break;
            }
            let id = front.id;
            match self.try_send(id) {
                Ok(()) => {}
                Err(r) if r.is_retriable() => {
                    let since = *self.workload[0].blocked_since.get_or_insert(self.now);
                    if self.now.as_millis() < since.as_millis() + self.max_block_ms {
                        break;
                    }
                    self.note(format!("send r{id} given up after {}ms: {r:?}", self.max_block_ms));
                    self.ledger.entries[id as usize].refused = Some(r);
                }
                Err(r) => self.ledger.entries[id as usize].refused = Some(r),
            }
            self.workload.pop_front();
            progressed = true;
        }
        progressed
    }

    fn workload_next(&self) -> Option<Instant> {
        let front = self.workload.front()?;
        Some(match front.blocked_since {
            None => front.at,
            Some(since) => Instant::from_millis(since.as_millis() + self.max_block_ms),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Scheduling
    // -----------------------------------------------------------------------------------------

    fn at(&mut self, t: Instant, action: Action) {
        self.seq += 1;
        self.agenda.insert((t, self.seq), action);
    }

    /// Schedules a fault at `t` (ms of virtual time).
    pub fn schedule(&mut self, t_ms: u64, fault: Fault) {
        self.at(Instant::from_millis(t_ms), Action::Fault(fault));
    }

    fn latency(&mut self) -> u64 {
        self.rng.range(self.net.latency_ms.0, self.net.latency_ms.1)
    }

    fn queue_to_broker(&mut self, link: u64, data: Vec<u8>) {
        let lat = self.latency();
        let Some(l) = self.links.get_mut(&link) else { return };
        let t = l.last_to_broker.max(Instant::from_millis(self.now.as_millis() + lat));
        l.last_to_broker = t;
        self.at(t, Action::ToBroker(link, data));
    }

    fn queue_to_client(&mut self, link: u64, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let n = (self.rng.range(self.net.read_chunk.0 as u64, self.net.read_chunk.1 as u64) as usize)
                .clamp(1, rest.len());
            let lat = self.latency();
            let Some(l) = self.links.get_mut(&link) else { return };
            let t = l.last_to_client.max(Instant::from_millis(self.now.as_millis() + lat));
            l.last_to_client = t;
            self.at(t, Action::ToClient(link, rest[..n].to_vec()));
            rest = &rest[n..];
        }
    }

    /// The client learns of a close after what the broker sent before it.
    fn fin_to_client(&mut self, link: u64) {
        let lat = self.latency();
        let Some(l) = self.links.get_mut(&link) else { return };
        let t = l.last_to_client.max(Instant::from_millis(self.now.as_millis() + lat));
        l.last_to_client = t;
        self.at(t, Action::ClientFin(link));
    }

    // -----------------------------------------------------------------------------------------
    // Driving the producer
    // -----------------------------------------------------------------------------------------

    /// Runs until `done` holds (true) or virtual time would pass `deadline` (false; the clock
    /// then stands at `deadline`).
    ///
    /// Each round: drain the producer and send what the application has due; perform one due
    /// network action or fault; else fire the producer's timer if its deadline has come; else
    /// jump to the earliest future deadline. A timer still in the past after two
    /// `handle_timeout` calls at the same instant is counted in [`SimStats::stuck_timer`] (a
    /// real transport would spin) and time moves on by a millisecond.
    pub fn run_until(&mut self, deadline: Instant, mut done: impl FnMut(&Sim<'m>) -> bool) -> bool {
        let mut fired_at_now = 0u32;
        let mut rounds_at_now = 0u64;
        let mut stuck = false;
        loop {
            self.stats.iterations += 1;
            rounds_at_now += 1;
            if rounds_at_now > 1_000_000 {
                self.violation("a million rounds without time moving: livelock".to_string());
                return false;
            }
            self.pump();
            if done(self) {
                return true;
            }
            if let Some((&(t, seq), _)) = self.agenda.first_key_value() {
                if t <= self.now {
                    let action = self.agenda.remove(&(t, seq)).expect("just seen");
                    self.perform(action);
                    continue;
                }
            }
            let timer = self.producer.poll_timeout();
            if timer.is_some_and(|t| t <= self.now) {
                if fired_at_now < 2 {
                    fired_at_now += 1;
                    self.stats.timer_fires += 1;
                    self.producer.handle_timeout(self.now);
                    continue;
                }
                if !stuck {
                    stuck = true;
                    self.stats.stuck_timer += 1;
                    // One line per deadline that stays in the past.
                    if self.stuck_deadline != timer {
                        self.stuck_deadline = timer;
                        let m = self.producer.metrics();
                        let phases: Vec<String> = (0..)
                            .map_while(|i| self.producer.connection(i))
                            .map(|c| format!("{}:{:?}", c.node_id, c.state))
                            .collect();
                        self.note(format!(
                            "timer stuck: poll_timeout() = {}ms after handle_timeout({}ms) \
                             (requests in flight {}, batches in use {}, connections {})",
                            timer.map_or(0, Instant::as_millis),
                            self.now.as_millis(),
                            m.requests_in_flight,
                            m.batches_in_use,
                            phases.join(" ")
                        ));
                    }
                }
            }
            let next = [
                timer.filter(|&t| t > self.now),
                self.agenda.first_key_value().map(|(&(t, _), _)| t),
                self.workload_next().filter(|&t| t > self.now),
                stuck.then(|| Instant::from_millis(self.now.as_millis() + 1)),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                // Nothing will ever happen again.
                return false;
            };
            if next > deadline {
                self.now = self.now.max(deadline);
                return false;
            }
            if next > self.now {
                self.now = next;
                fired_at_now = 0;
                rounds_at_now = 0;
                stuck = false;
            }
        }
    }

    /// Runs for `ms` milliseconds of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        let deadline = Instant::from_millis(self.now.as_millis() + ms);
        self.run_until(deadline, |_| false);
    }

    /// Runs until the application has sent everything and every accepted record is reported;
    /// whether that happened by `deadline_ms`.
    pub fn run_to_completion(&mut self, deadline_ms: u64) -> bool {
        self.run_until(Instant::from_millis(deadline_ms), |s| {
            s.workload.is_empty() && s.ledger.pending.is_empty()
        })
    }

    /// `close(timeout)` and run until the producer says it is closed; whether it did by
    /// `deadline_ms`.
    pub fn close(&mut self, timeout_ms: u64, deadline_ms: u64) -> bool {
        self.note(format!("close({timeout_ms}ms)"));
        self.producer.close(self.now, picokafka::Duration::from_millis(timeout_ms));
        self.run_until(Instant::from_millis(deadline_ms), |s| {
            s.producer.is_closed() && s.ledger.pending.is_empty()
        })
    }

    /// Drains the producer (events, then transmits) and sends what the application has due,
    /// until nothing changes.
    fn pump(&mut self) {
        for round in 0.. {
            let mut progressed = self.run_workload();
            progressed |= self.drain_events();
            let transmitted = self.drain_transmits();
            progressed |= transmitted;
            if !transmitted && !self.strict_loop && self.drain_events() {
                // A `poll_transmit` that wrote nothing created events: the documented loop
                // (events, then transmits, then the timer) would not see them before the timer.
                self.stats.late_events += 1;
                if self.stats.late_events == 1 {
                    self.note("events appeared during a poll_transmit that wrote nothing".to_string());
                }
                progressed = true;
            }
            self.check_gauges();
            if !progressed {
                return;
            }
            if round > 100_000 {
                self.violation("the producer keeps producing events or bytes without end".to_string());
                return;
            }
        }
    }

    fn check_gauges(&mut self) {
        let m = self.producer.metrics();
        self.stats.max_batches_in_use = self.stats.max_batches_in_use.max(m.batches_in_use);
        if m.batches_in_use > m.batch_capacity {
            self.violation(format!("{} batches in use, capacity {}", m.batches_in_use, m.batch_capacity));
        }
        if !self.acks0 {
            for i in 0.. {
                let Some(c) = self.producer.connection(i) else { break };
                if c.in_flight as usize > self.max_in_flight {
                    let (n, max) = (c.in_flight, self.max_in_flight);
                    self.violation(format!("connection slot {i}: {n} requests in flight, max {max}"));
                }
            }
        }
    }

    fn next_event(&mut self) -> Option<OwnedEvent> {
        let cluster = &self.cluster;
        Some(match self.producer.poll_event()? {
            Event::Connect { conn, host, port, .. } => {
                OwnedEvent::Connect { conn, broker: cluster.broker_at(host, port), port }
            }
            Event::Close { conn } => OwnedEvent::Close { conn },
            Event::Delivered { token, partition, offset, log_append_time } => {
                OwnedEvent::Delivered { token, partition, offset, log_append_time }
            }
            Event::Failed { token, partition, error, .. } => OwnedEvent::Failed { token, partition, error },
            Event::Transaction { op, result } => OwnedEvent::Transaction { op, result },
            other => panic!("the simulation does not model event {other:?} yet"),
        })
    }

    fn drain_events(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.next_event() {
            any = true;
            match event {
                OwnedEvent::Connect { conn, broker, port } => self.on_connect(conn, broker, port),
                OwnedEvent::Close { conn } => self.on_close(conn),
                OwnedEvent::Delivered { token, partition, offset, log_append_time } => {
                    self.on_report(token, Outcome::Delivered { partition, offset, log_append_time })
                }
                OwnedEvent::Failed { token, partition, error } => {
                    self.on_report(token, Outcome::Failed { partition, error })
                }
                OwnedEvent::Transaction { op, result } => {
                    self.note(format!("transaction {}: {result:?}", op.name()));
                    self.txn_events.push((self.now, op, result));
                }
            }
        }
        any
    }

    fn on_report(&mut self, token: RecordToken, outcome: Outcome) {
        let Some(id) = self.ledger.pending.remove(&token.as_u64()) else {
            self.violation(format!(
                "report {outcome:?} for token {:#x}, which is not pending",
                token.as_u64()
            ));
            return;
        };
        let e = &mut self.ledger.entries[id as usize];
        let accepted_partition = e.accepted.map(|(_, a, _)| a.partition);
        let topic = e.spec.topic.clone();
        e.outcome = Some((self.now, outcome));
        let (partition, line) = match outcome {
            Outcome::Delivered { partition, offset, .. } => {
                (partition, format!("delivered r{id} {topic}-{partition}@{offset}"))
            }
            Outcome::Failed { partition, error } => {
                (partition, format!("failed r{id} {topic}-{partition}: {error:?}"))
            }
        };
        self.note(line);
        if accepted_partition != Some(partition) {
            self.violation(format!(
                "r{id} accepted for partition {accepted_partition:?}, reported for {partition}"
            ));
        }
    }

    fn on_connect(&mut self, conn: ConnId, broker: Option<i32>, port: u16) {
        self.stats.connects += 1;
        if let Some(&old) = self.by_conn.get(&conn) {
            self.violation(format!("Connect for {conn:?}, which is still open as c{old}"));
            self.reset(old, "replaced");
        }
        let id = self.next_link;
        self.next_link += 1;
        self.links.insert(
            id,
            Link {
                id,
                conn,
                broker,
                client: ClientSide::Connecting,
                broker_open: false,
                dead: false,
                stalled: false,
                last_to_broker: self.now,
                last_to_client: self.now,
                rx: Vec::new(),
                asked: BTreeMap::new(),
            },
        );
        self.by_conn.insert(conn, id);
        self.lost.remove(&conn);
        let target = broker.map_or_else(|| format!("port {port} (no broker)"), |b| format!("b{b}"));
        self.note(format!("connect c{id} -> {target}"));
        let wait = self.rng.range(self.net.connect_ms.0, self.net.connect_ms.1);
        self.at(Instant::from_millis(self.now.as_millis() + wait), Action::ConnectDone(id));
    }

    fn on_close(&mut self, conn: ConnId) {
        let Some(id) = self.by_conn.remove(&conn) else {
            if self.lost.remove(&conn) {
                self.stats.close_after_loss += 1;
                self.note(format!("Close for {conn:?}, reported lost already: ignored"));
            } else {
                self.violation(format!("Close for {conn:?}, which is not open"));
            }
            return;
        };
        let flush = self.rng.per_mille(self.net.flush_on_close_per_mille);
        let l = self.links.get_mut(&id).expect("linked");
        l.client = ClientSide::Gone;
        let pending_bytes = l.last_to_broker > self.now;
        let (t, broker_open) = (l.last_to_broker, l.broker_open);
        self.note(format!("close c{id}"));
        if flush && pending_bytes && broker_open {
            self.at(t, Action::BrokerFin(id));
        } else {
            self.broker_forget(id);
        }
    }

    fn broker_forget(&mut self, id: u64) {
        if let Some(l) = self.links.get_mut(&id) {
            if l.broker_open {
                l.broker_open = false;
                self.cluster.on_close(id);
            }
        }
        self.gc(id);
    }

    /// Drops a link nobody uses any more.
    fn gc(&mut self, id: u64) {
        if self.links.get(&id).is_some_and(|l| l.client == ClientSide::Gone && !l.broker_open) {
            self.links.remove(&id);
        }
    }

    /// Resets a link at once: both sides learn now.
    fn reset(&mut self, id: u64, why: &str) {
        let Some(l) = self.links.get_mut(&id) else { return };
        self.stats.resets += 1;
        let conn = l.conn;
        let client_alive = l.client != ClientSide::Gone;
        l.client = ClientSide::Gone;
        self.note(format!("reset c{id} ({why})"));
        self.broker_forget(id);
        if client_alive {
            self.by_conn.remove(&conn);
            self.lost.insert(conn);
            self.producer.handle_disconnected(self.now, conn);
        }
        self.gc(id);
    }

    fn drain_transmits(&mut self) -> bool {
        let mut any = false;
        loop {
            let n = self.rng.range(self.net.write_chunk.0 as u64, self.net.write_chunk.1 as u64) as usize;
            let n = n.clamp(1, self.write_buf.len());
            let mut buf = std::mem::take(&mut self.write_buf);
            let t = self.producer.poll_transmit(self.now, &mut buf[..n]);
            let Some(t) = t else {
                self.write_buf = buf;
                return any;
            };
            any = true;
            self.stats.transmits += 1;
            if t.len > n {
                self.violation(format!("poll_transmit wrote {} bytes into a {n}-byte buffer", t.len));
            }
            let data = buf[..t.len.min(n)].to_vec();
            self.write_buf = buf;
            if data.is_empty() {
                self.violation(format!("poll_transmit returned an empty transmit on {:?}", t.conn));
                return any;
            }
            self.stats.bytes_out += data.len() as u64;
            let Some(&id) = self.by_conn.get(&t.conn) else {
                self.violation(format!("{} bytes written to {:?}, which is not open", data.len(), t.conn));
                continue;
            };
            if self.links[&id].client != ClientSide::Open {
                self.violation(format!("{} bytes written to c{id} before it connected", data.len()));
                continue;
            }
            self.hash = fnv(self.hash, &self.now.as_millis().to_le_bytes());
            self.hash = fnv(self.hash, &id.to_le_bytes());
            self.hash = fnv(self.hash, &data);
            self.queue_to_broker(id, data);
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::ConnectDone(id) => self.connect_done(id),
            Action::ToBroker(id, data) => self.deliver_to_broker(id, data),
            Action::ToClient(id, data) => self.deliver_to_client(id, data),
            Action::ClientFin(id) => {
                let Some(l) = self.links.get_mut(&id) else { return };
                if l.client == ClientSide::Gone || l.dead {
                    return;
                }
                l.client = ClientSide::Gone;
                let conn = l.conn;
                self.by_conn.remove(&conn);
                self.lost.insert(conn);
                self.note(format!("c{id} closed by the broker"));
                self.producer.handle_disconnected(self.now, conn);
                self.gc(id);
            }
            Action::BrokerFin(id) => self.broker_forget(id),
            Action::Fault(f) => self.fault(f),
        }
    }

    fn connect_done(&mut self, id: u64) {
        let Some(l) = self.links.get(&id) else { return };
        if l.client != ClientSide::Connecting {
            return;
        }
        let conn = l.conn;
        match l.broker {
            Some(b) if self.blackholed.contains(&b) => {
                // The SYN vanished: the producer's setup timeout has to notice.
                self.links.get_mut(&id).expect("linked").dead = true;
                self.note(format!("connect c{id} hangs (b{b} is in a black hole)"));
            }
            Some(b) if self.cluster.is_up(b) => {
                let l = self.links.get_mut(&id).expect("linked");
                l.client = ClientSide::Open;
                l.broker_open = true;
                self.note(format!("connected c{id} b{b}"));
                self.producer.handle_connected(self.now, conn);
            }
            broker => {
                let l = self.links.get_mut(&id).expect("linked");
                l.client = ClientSide::Gone;
                self.by_conn.remove(&conn);
                self.lost.insert(conn);
                let why = broker.map_or("no broker there".to_string(), |b| format!("b{b} is down"));
                self.note(format!("connect c{id} refused ({why})"));
                self.producer.handle_disconnected(self.now, conn);
                self.gc(id);
            }
        }
    }

    fn deliver_to_broker(&mut self, id: u64, mut data: Vec<u8>) {
        let Some(l) = self.links.get(&id) else { return };
        if !l.broker_open || l.dead {
            return;
        }
        let Some(broker) = l.broker else { return };
        if l.stalled {
            return;
        }
        if self.blackholed.contains(&broker) {
            self.links.get_mut(&id).expect("linked").dead = true;
            return;
        }
        let client_alive = l.client != ClientSide::Gone;
        let mut cut = false;
        if client_alive {
            if self.rng.per_mille(self.net.drop_per_mille) {
                self.reset(id, "network drop on the way to the broker");
                return;
            }
            if self.rng.per_mille(self.net.cut_per_mille) {
                let keep = self.rng.below(data.len() as u64) as usize;
                self.note(format!("cut c{id}: {keep} of {} bytes reach b{broker}", data.len()));
                self.stats.cuts += 1;
                data.truncate(keep);
                cut = true;
            }
        }
        self.log_requests(id, broker, &data);
        self.cluster.set_time(self.now.as_millis());
        let mut reply = self.cluster.on_bytes_reply(id, broker, &data);
        if !reply.bytes.is_empty() {
            if let Some(i) = self.hostile.iter().position(|(b, _)| b.is_none_or(|b| b == broker)) {
                let (_, kind) = self.hostile.remove(i);
                self.note(format!("b{broker} answers c{id} with hostile bytes: {kind:?}"));
                reply.bytes = kind.apply(&reply.bytes);
                if kind == Hostile::Truncated {
                    // What follows the cut never comes: queue the prefix, then go silent.
                    let client_alive = self.links.get(&id).is_some_and(|l| l.client != ClientSide::Gone);
                    if client_alive {
                        self.queue_to_client(id, &reply.bytes);
                    }
                    if let Some(l) = self.links.get_mut(&id) {
                        l.stalled = true;
                    }
                    return;
                }
            }
        }
        if cut {
            self.reset(id, "frame cut");
            return;
        }
        let client_alive = self.links.get(&id).is_some_and(|l| l.client != ClientSide::Gone);
        if client_alive {
            self.log_responses(id, broker, &reply.bytes);
            self.queue_to_client(id, &reply.bytes);
        }
        if let Some(why) = reply.close {
            self.note(format!("b{broker} closes c{id}: {why}"));
            if let Some(l) = self.links.get_mut(&id) {
                l.broker_open = false;
            }
            if client_alive {
                self.fin_to_client(id);
            } else {
                self.gc(id);
            }
        }
    }

    fn deliver_to_client(&mut self, id: u64, mut data: Vec<u8>) {
        let Some(l) = self.links.get(&id) else { return };
        if l.client != ClientSide::Open || l.dead {
            return;
        }
        let conn = l.conn;
        if l.broker.is_some_and(|b| self.blackholed.contains(&b)) {
            self.links.get_mut(&id).expect("linked").dead = true;
            return;
        }
        if self.rng.per_mille(self.net.drop_per_mille) {
            self.reset(id, "network drop on the way to the client");
            return;
        }
        let mut cut = false;
        if self.rng.per_mille(self.net.cut_per_mille) {
            let keep = self.rng.below(data.len() as u64) as usize;
            self.note(format!("cut c{id}: {keep} of {} bytes reach the producer", data.len()));
            self.stats.cuts += 1;
            data.truncate(keep);
            cut = true;
        }
        self.stats.bytes_in += data.len() as u64;
        let mut offered = &data[..];
        let mut tries = 0;
        while !offered.is_empty() {
            let n = self.producer.handle_input(self.now, conn, offered);
            if n > offered.len() {
                self.violation(format!("handle_input consumed {n} of {} bytes", offered.len()));
                break;
            }
            offered = &offered[n..];
            if n == 0 {
                tries += 1;
                // The receive buffer is full; drain the producer and offer the rest again.
                self.pump();
                if tries > 3 {
                    self.violation(format!("handle_input on c{id} takes nothing of {} bytes", offered.len()));
                    break;
                }
            }
            if self.links.get(&id).is_none_or(|l| l.client != ClientSide::Open) {
                break;
            }
        }
        if cut {
            self.reset(id, "frame cut");
        }
    }

    fn fault(&mut self, f: Fault) {
        self.note(format!("fault: {f:?}"));
        match f {
            Fault::BrokerDown(b) => {
                self.cluster.set_broker_up(b, false);
                let ids: Vec<u64> =
                    self.links.values().filter(|l| l.broker == Some(b)).map(|l| l.id).collect();
                for id in ids {
                    let l = self.links.get_mut(&id).expect("listed");
                    l.broker_open = false;
                    if l.client == ClientSide::Open && !l.dead {
                        self.fin_to_client(id);
                    }
                }
            }
            Fault::BrokerUp(b) => self.cluster.set_broker_up(b, true),
            Fault::Blackhole(b) => {
                self.blackholed.insert(b);
                for l in self.links.values_mut().filter(|l| l.broker == Some(b)) {
                    l.dead = true;
                }
            }
            Fault::Heal(b) => {
                self.blackholed.remove(&b);
            }
            Fault::MoveLeader { topic, partition, to } => {
                if self.cluster.partition_count(&topic).is_some_and(|n| partition < n)
                    && self.cluster.broker_ids().contains(&to)
                {
                    self.cluster.move_leader(&topic, partition, to);
                }
            }
            Fault::InjectError { api_key, broker, code, count } => {
                self.cluster.inject_error(api_key, broker, code, count)
            }
            Fault::InjectDisconnect { api_key, broker, count } => {
                self.cluster.inject_disconnect(api_key, broker, count)
            }
            Fault::Hostile { broker, kind } => self.hostile.push((broker, kind)),
            Fault::ResetConnections(broker) => {
                let ids: Vec<u64> = self
                    .links
                    .values()
                    .filter(|l| broker.is_none_or(|b| l.broker == Some(b)) && l.client != ClientSide::Gone)
                    .map(|l| l.id)
                    .collect();
                for id in ids {
                    self.reset(id, "scheduled reset");
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Transcript: requests and responses decoded by kafka-protocol
    // -----------------------------------------------------------------------------------------

    fn log_requests(&mut self, id: u64, broker: i32, data: &[u8]) {
        let Some(l) = self.links.get_mut(&id) else { return };
        l.rx.extend_from_slice(data);
        let mut lines = Vec::new();
        loop {
            let l = self.links.get_mut(&id).expect("linked");
            if l.rx.len() < 4 {
                break;
            }
            let size = i32::from_be_bytes([l.rx[0], l.rx[1], l.rx[2], l.rx[3]]);
            if size < 4 {
                lines.push(format!("c{id} -> b{broker} malformed frame (size {size})"));
                l.rx.clear();
                break;
            }
            let size = size as usize;
            if l.rx.len() < 4 + size {
                break;
            }
            let frame: Vec<u8> = l.rx.drain(..4 + size).skip(4).collect();
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let mut bytes = Bytes::from(frame);
            let Ok(api) = ApiKey::try_from(key) else {
                lines.push(format!("c{id} -> b{broker} unknown api key {key}"));
                continue;
            };
            let Ok(header) = RequestHeader::decode(&mut bytes, api.request_header_version(version)) else {
                lines.push(format!("c{id} -> b{broker} {} v{version}: bad header", api_name(key)));
                continue;
            };
            l.asked.insert(header.correlation_id, (key, version));
            let detail = describe_request(key, version, bytes);
            lines.push(format!(
                "c{id} -> b{broker} {} v{version} #{}{detail}",
                api_name(key),
                header.correlation_id
            ));
        }
        for line in lines {
            self.note(line);
        }
    }

    fn log_responses(&mut self, id: u64, broker: i32, mut data: &[u8]) {
        let mut lines = Vec::new();
        while data.len() >= 4 {
            let size = i32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            if size < 4 || 4 + size > data.len() {
                lines.push(format!("b{broker} -> c{id} {} bytes that are not whole frames", data.len()));
                break;
            }
            let frame = &data[4..4 + size];
            data = &data[4 + size..];
            let cid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let Some(&(key, version)) = self.links.get(&id).and_then(|l| l.asked.get(&cid)) else {
                lines.push(format!("b{broker} -> c{id} response #{cid} to no request"));
                continue;
            };
            let detail = describe_response(key, version, Bytes::copy_from_slice(frame));
            lines.push(format!("b{broker} -> c{id} {} #{cid}: {detail}", api_name(key)));
        }
        for line in lines {
            self.note(line);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Checking the outcome
    // -----------------------------------------------------------------------------------------

    /// Every record in the cluster that carries an [`ID_HEADER`]: id ⇒ (topic, partition, record).
    pub fn appearances(&self) -> BTreeMap<u64, Vec<(String, i32, StoredRecord)>> {
        let mut out: BTreeMap<u64, Vec<(String, i32, StoredRecord)>> = BTreeMap::new();
        for topic in self.cluster.topics() {
            for p in 0..self.cluster.partition_count(&topic).unwrap_or(0) {
                for r in self.cluster.log(&topic, p) {
                    if let Some(id) = record_id(r) {
                        out.entry(id).or_default().push((topic.clone(), p, r.clone()));
                    }
                }
            }
        }
        out
    }

    /// Checks the run against `expect`; every problem found, as text (empty: all good).
    pub fn verify(&self, expect: Expect) -> Vec<String> {
        let mut problems: Vec<String> = self.violations.clone();
        if expect.no_stuck_timer && self.stats.stuck_timer > 0 {
            problems.push(format!(
                "the producer's timer was stuck in the past {} time(s) (poll_timeout() <= now after \
                 handle_timeout(now))",
                self.stats.stuck_timer
            ));
        }
        if expect.no_late_events && self.stats.late_events > 0 {
            problems.push(format!(
                "events were created {} time(s) by a poll_transmit that wrote nothing (the documented \
                 loop misses them until the timer fires)",
                self.stats.late_events
            ));
        }
        if !self.workload.is_empty() {
            problems.push(format!("{} records never sent by the application", self.workload.len()));
        }
        let appearances = self.appearances();
        for e in &self.ledger.entries {
            let seen: &[(String, i32, StoredRecord)] = appearances.get(&e.id).map_or(&[], |v| v.as_slice());
            let id = e.id;
            match (&e.accepted, &e.refused) {
                (Some(_), Some(r)) => problems.push(format!("r{id} both accepted and refused ({r:?})")),
                (None, None) if self.workload.iter().all(|p| p.id != id) => {
                    problems.push(format!("r{id} neither accepted nor refused"))
                }
                (None, _) if !seen.is_empty() => {
                    problems.push(format!("r{id} was refused but is in the log {} time(s)", seen.len()))
                }
                _ => {}
            }
            let Some((_, accepted, _)) = e.accepted else { continue };
            for (topic, p, _) in seen {
                if *topic != e.spec.topic || *p != accepted.partition {
                    problems.push(format!(
                        "r{id} accepted for {}-{} is in the log of {topic}-{p}",
                        e.spec.topic, accepted.partition
                    ));
                }
            }
            for (_, _, r) in seen {
                if let Some(diff) = content_diff(e, &accepted, r) {
                    problems.push(format!("r{id} in the log differs from what was sent: {diff}"));
                }
            }
            if let (Some(want), Some(p)) = (e.spec.partition, Some(accepted.partition)) {
                if want != p {
                    problems.push(format!("r{id} asked for partition {want}, got {p}"));
                }
            }
            if let (None, Some(key), Some(n)) =
                (e.spec.partition, e.spec.key.as_deref(), self.cluster.partition_count(&e.spec.topic))
            {
                let java = picokafka::partitioner::partition_for_key(key, n);
                if java != accepted.partition {
                    problems.push(format!(
                        "r{id}: key hashes to {java} (murmur2), went to {}",
                        accepted.partition
                    ));
                }
            }
            match e.outcome {
                None => problems.push(format!(
                    "r{id} accepted at {}ms but never reported",
                    e.accepted.unwrap().0.as_millis()
                )),
                Some((_, Outcome::Delivered { partition, offset, log_append_time })) => {
                    // The simulated topics use CreateTime: the record's own timestamp stands.
                    if let Some(t) = log_append_time {
                        problems.push(format!(
                            "r{id} delivered with a log append time {t} on a CreateTime topic"
                        ));
                    }
                    if expect.acks0 {
                        if offset != -1 {
                            problems.push(format!("r{id}: acks=0 delivery with offset {offset}"));
                        }
                        if seen.len() > 1 {
                            problems.push(format!("r{id}: acks=0 record written {} times", seen.len()));
                        }
                    } else {
                        if seen.is_empty() {
                            problems.push(format!(
                                "r{id} reported delivered at {partition}@{offset} but is not in the log"
                            ));
                        } else if offset == -1 && expect.duplicate_offsets_unknown {
                            // Answered DUPLICATE_SEQUENCE_NUMBER: in the log, offset unknown.
                        } else if !seen.iter().any(|(_, p, r)| *p == partition && r.offset == offset) {
                            let at: Vec<_> = seen.iter().map(|(_, p, r)| copy_at(*p, r)).collect();
                            problems.push(format!(
                                "r{id} reported delivered at {partition}@{offset}, the log has it at {at:?}"
                            ));
                        }
                        if expect.idempotent && seen.len() > 1 {
                            let at: Vec<_> = seen.iter().map(|(_, p, r)| copy_at(*p, r)).collect();
                            problems.push(format!(
                                "r{id} delivered and written {} times with idempotence: {at:?}",
                                seen.len()
                            ));
                        }
                    }
                }
                Some((_, Outcome::Failed { error, .. })) => {
                    if expect.idempotent && seen.len() > 1 {
                        let at: Vec<_> = seen.iter().map(|(_, p, r)| copy_at(*p, r)).collect();
                        problems.push(format!(
                            "r{id} failed ({error:?}) yet written {} times with idempotence: {at:?}",
                            seen.len()
                        ));
                    }
                    if expect.failed_not_written && !seen.is_empty() {
                        problems.push(format!("r{id} failed ({error:?}) yet is in the log"));
                    }
                }
            }
        }
        if expect.all_delivered {
            for e in &self.ledger.entries {
                if !matches!(e.outcome, Some((_, Outcome::Delivered { .. }))) {
                    problems.push(format!(
                        "r{} not delivered: accepted {:?}, refused {:?}, outcome {:?}",
                        e.id,
                        e.accepted.map(|a| a.1),
                        e.refused,
                        e.outcome.map(|o| o.1)
                    ));
                }
            }
        }
        if expect.ordered {
            problems.extend(self.order_problems(expect.idempotent));
        }
        let m = self.producer.metrics();
        if self.ledger.pending.is_empty() && self.workload.is_empty() && m.queued_records != 0 {
            problems
                .push(format!("every record reported, but the producer counts {} queued", m.queued_records));
        }
        let sent = self.ledger.entries.iter().filter(|e| e.accepted.is_some()).count() as u64;
        if m.records_sent != sent {
            problems.push(format!(
                "metrics count {} records sent, the application had {sent} accepted",
                m.records_sent
            ));
        }
        problems
    }

    /// Per partition, the log's records (first copies; all copies with idempotence) in
    /// acceptance order.
    fn order_problems(&self, strict: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for topic in self.cluster.topics() {
            for p in 0..self.cluster.partition_count(&topic).unwrap_or(0) {
                let mut last: Option<(u64, u64)> = None;
                let mut seen = BTreeSet::new();
                for r in self.cluster.log(&topic, p) {
                    let Some(id) = record_id(r) else { continue };
                    let Some(e) = self.ledger.entries.get(id as usize) else { continue };
                    let Some((_, _, order)) = e.accepted else { continue };
                    if !seen.insert(id) && !strict {
                        continue;
                    }
                    if let Some((prev_id, prev_order)) = last {
                        if order <= prev_order {
                            problems.push(format!(
                                "{topic}-{p}: r{id} (accepted #{order}) at offset {} after r{prev_id} (accepted #{prev_order})",
                                r.offset
                            ));
                        }
                    }
                    last = Some((id, order));
                }
            }
        }
        problems
    }
}

/// What [`Sim::verify`] checks beyond the always-checked: each accepted record reported exactly
/// once (and nothing else reported), refused records absent from the log, records stored as sent
/// (key, value, headers, timestamp) in the partition `send` named, keyed records placed by
/// murmur2, delivered timestamps equal to accepted ones, delivered offsets pointing at the
/// record (acks ≥ 1), no harness-detected violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect {
    /// Idempotence on: a delivered record is in the log exactly once, a failed one at most once.
    pub idempotent: bool,
    /// acks=0: delivered records carry offset -1 and are in the log at most once.
    pub acks0: bool,
    /// Per partition, the log holds records in acceptance order (with duplicates, their first
    /// copies).
    pub ordered: bool,
    /// Every record was accepted and delivered.
    pub all_delivered: bool,
    /// Failed records are not in the log (no fault could have written them).
    pub failed_not_written: bool,
    /// `poll_timeout()` never stays in the past after `handle_timeout`.
    pub no_stuck_timer: bool,
    /// No event is created by a `poll_transmit` call that writes nothing.
    pub no_late_events: bool,
    /// A broker may answer a resend with `DUPLICATE_SEQUENCE_NUMBER` (Tansu), which carries no
    /// offset: such a delivery may report offset -1 (as the Java client does) if the record is
    /// in the log.
    pub duplicate_offsets_unknown: bool,
}

impl Expect {
    /// What a producer configured by `config` guarantees.
    pub fn for_config(config: &Config) -> Self {
        let idempotent = config.enable_idempotence;
        Self {
            idempotent,
            acks0: config.acks == Acks::None,
            ordered: idempotent || config.max_in_flight_requests_per_connection == 1,
            all_delivered: false,
            failed_not_written: false,
            no_stuck_timer: true,
            no_late_events: true,
            duplicate_offsets_unknown: false,
        }
    }
}

/// `partition@offset (pid P eE seq S)` of a stored copy.
fn copy_at(partition: i32, r: &StoredRecord) -> String {
    format!("{partition}@{} (pid {} e{} seq {})", r.offset, r.producer_id, r.producer_epoch, r.sequence)
}

/// The ledger id a stored record carries.
pub fn record_id(r: &StoredRecord) -> Option<u64> {
    r.headers
        .iter()
        .find(|(k, _)| k == ID_HEADER)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
}

fn content_diff(e: &Entry, accepted: &Accepted, r: &StoredRecord) -> Option<String> {
    if r.key != e.spec.key {
        return Some(format!("key {:?} != {:?}", r.key, e.spec.key));
    }
    if r.value != e.spec.value {
        return Some(format!(
            "value of {:?} bytes != {:?} bytes",
            r.value.as_ref().map(Vec::len),
            e.spec.value.as_ref().map(Vec::len)
        ));
    }
    let mut want = e.spec.headers.clone();
    want.push((ID_HEADER.to_string(), Some(e.id.to_string().into_bytes())));
    if r.headers != want {
        return Some(format!("headers {:?} != {want:?}", r.headers));
    }
    if r.timestamp != accepted.timestamp {
        return Some(format!("timestamp {} != {}", r.timestamp, accepted.timestamp));
    }
    if let Some(ts) = e.spec.timestamp {
        if ts != accepted.timestamp {
            return Some(format!("accepted timestamp {} != the record's {ts}", accepted.timestamp));
        }
    }
    None
}

/// Fields of a v2 record batch header (offsets from the batch start).
fn batch_summary(records: &[u8]) -> String {
    if records.len() < 61 {
        return format!("{} bytes", records.len());
    }
    let pid = i64::from_be_bytes(records[43..51].try_into().expect("8 bytes"));
    let epoch = i16::from_be_bytes([records[51], records[52]]);
    let seq = i32::from_be_bytes(records[53..57].try_into().expect("4 bytes"));
    let count = i32::from_be_bytes(records[57..61].try_into().expect("4 bytes"));
    if pid < 0 {
        format!("{count} rec")
    } else {
        format!("{count} rec pid {pid} e{epoch} seq {seq}")
    }
}

fn describe_request(key: i16, version: i16, mut body: Bytes) -> String {
    match key {
        api_key::METADATA => match MetadataRequest::decode(&mut body, version) {
            Ok(r) => {
                let topics: Vec<String> = r
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| t.name.as_ref().map_or("?".to_string(), |n| n.0.to_string()))
                    .collect();
                format!(" {topics:?}")
            }
            Err(_) => " (undecodable)".to_string(),
        },
        api_key::INIT_PRODUCER_ID => match InitProducerIdRequest::decode(&mut body, version) {
            Ok(r) => format!(" (pid {} e{})", r.producer_id.0, r.producer_epoch),
            Err(_) => " (undecodable)".to_string(),
        },
        api_key::PRODUCE => match ProduceRequest::decode(&mut body, version) {
            Ok(r) => {
                let mut parts = Vec::new();
                for t in &r.topic_data {
                    for p in &t.partition_data {
                        let batch = p.records.as_deref().map_or("null".to_string(), batch_summary);
                        parts.push(format!("{}-{}: {batch}", t.name.0.as_str(), p.index));
                    }
                }
                format!(" acks={} [{}]", r.acks, parts.join("; "))
            }
            Err(_) => " (undecodable)".to_string(),
        },
        api_key::SASL_HANDSHAKE => match SaslHandshakeRequest::decode(&mut body, version) {
            Ok(r) => format!(" {}", r.mechanism.as_str()),
            Err(_) => " (undecodable)".to_string(),
        },
        // The message may hold a password (PLAIN): its size only.
        api_key::SASL_AUTHENTICATE => format!(" ({} bytes)", body.len()),
        api_key::ADD_PARTITIONS_TO_TXN => match AddPartitionsToTxnRequest::decode(&mut body, version) {
            Ok(r) => {
                let parts: Vec<String> = r
                    .v3_and_below_topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.name.0.as_str())))
                    .collect();
                format!(
                    " (pid {} e{}) {parts:?}",
                    r.v3_and_below_producer_id.0, r.v3_and_below_producer_epoch
                )
            }
            Err(_) => " (undecodable)".to_string(),
        },
        api_key::END_TXN => match EndTxnRequest::decode(&mut body, version) {
            Ok(r) => format!(
                " {} (pid {} e{})",
                if r.committed { "commit" } else { "abort" },
                r.producer_id.0,
                r.producer_epoch
            ),
            Err(_) => " (undecodable)".to_string(),
        },
        _ => String::new(),
    }
}

fn describe_response(key: i16, version: i16, mut frame: Bytes) -> String {
    let Ok(api) = ApiKey::try_from(key) else { return "?".to_string() };
    if ResponseHeader::decode(&mut frame, api.response_header_version(version)).is_err() {
        return "bad header".to_string();
    }
    match key {
        api_key::API_VERSIONS => {
            let decoded = ApiVersionsResponse::decode(&mut frame.clone(), version)
                .or_else(|_| ApiVersionsResponse::decode(&mut frame, 0));
            match decoded {
                Ok(r) => code_name(r.error_code),
                Err(_) => "undecodable".to_string(),
            }
        }
        api_key::METADATA => match MetadataResponse::decode(&mut frame, version) {
            Ok(r) => {
                let brokers: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
                let topics: Vec<String> = r
                    .topics
                    .iter()
                    .map(|t| {
                        let name = t.name.as_ref().map_or("?".to_string(), |n| n.0.to_string());
                        let parts: Vec<String> = t
                            .partitions
                            .iter()
                            .map(|p| {
                                if p.error_code == 0 {
                                    format!("{}:b{}", p.partition_index, p.leader_id.0)
                                } else {
                                    format!("{}:{}", p.partition_index, code_name(p.error_code))
                                }
                            })
                            .collect();
                        format!("{name} {} [{}]", code_name(t.error_code), parts.join(" "))
                    })
                    .collect();
                format!("brokers {brokers:?}; {}", topics.join("; "))
            }
            Err(_) => "undecodable".to_string(),
        },
        api_key::INIT_PRODUCER_ID => match InitProducerIdResponse::decode(&mut frame, version) {
            Ok(r) if r.error_code == 0 => format!("pid {} e{}", r.producer_id.0, r.producer_epoch),
            Ok(r) => code_name(r.error_code),
            Err(_) => "undecodable".to_string(),
        },
        api_key::PRODUCE => match ProduceResponse::decode(&mut frame, version) {
            Ok(r) => {
                let mut parts = Vec::new();
                for t in &r.responses {
                    for p in &t.partition_responses {
                        if p.error_code == 0 {
                            parts.push(format!("{}-{} NONE @{}", t.name.0.as_str(), p.index, p.base_offset));
                        } else {
                            parts.push(format!(
                                "{}-{} {}",
                                t.name.0.as_str(),
                                p.index,
                                code_name(p.error_code)
                            ));
                        }
                    }
                }
                parts.join("; ")
            }
            Err(_) => "undecodable".to_string(),
        },
        api_key::SASL_HANDSHAKE => match SaslHandshakeResponse::decode(&mut frame, version) {
            Ok(r) => {
                let m: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
                format!("{} {m:?}", code_name(r.error_code))
            }
            Err(_) => "undecodable".to_string(),
        },
        api_key::SASL_AUTHENTICATE => match SaslAuthenticateResponse::decode(&mut frame, version) {
            Ok(r) => {
                let mut s = code_name(r.error_code);
                if let Some(m) = &r.error_message {
                    let _ = write!(s, " {:?}", m.as_str());
                }
                let _ = write!(s, " ({} bytes", r.auth_bytes.len());
                if r.session_lifetime_ms > 0 {
                    let _ = write!(s, ", session {}ms", r.session_lifetime_ms);
                }
                s.push(')');
                s
            }
            Err(_) => "undecodable".to_string(),
        },
        api_key::FIND_COORDINATOR => match FindCoordinatorResponse::decode(&mut frame, version) {
            Ok(r) if version >= 4 => r
                .coordinators
                .iter()
                .map(
                    |c| if c.error_code == 0 { format!("b{}", c.node_id.0) } else { code_name(c.error_code) },
                )
                .collect::<Vec<_>>()
                .join(" "),
            Ok(r) if r.error_code == 0 => format!("b{}", r.node_id.0),
            Ok(r) => code_name(r.error_code),
            Err(_) => "undecodable".to_string(),
        },
        api_key::ADD_PARTITIONS_TO_TXN => match AddPartitionsToTxnResponse::decode(&mut frame, version) {
            Ok(r) => r
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| {
                    t.results_by_partition.iter().map(move |p| {
                        format!(
                            "{}-{} {}",
                            t.name.0.as_str(),
                            p.partition_index,
                            code_name(p.partition_error_code)
                        )
                    })
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(_) => "undecodable".to_string(),
        },
        api_key::ADD_OFFSETS_TO_TXN => match AddOffsetsToTxnResponse::decode(&mut frame, version) {
            Ok(r) => code_name(r.error_code),
            Err(_) => "undecodable".to_string(),
        },
        api_key::TXN_OFFSET_COMMIT => match TxnOffsetCommitResponse::decode(&mut frame, version) {
            Ok(r) => {
                let codes: BTreeSet<String> = r
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| code_name(p.error_code)))
                    .collect();
                codes.into_iter().collect::<Vec<_>>().join(" ")
            }
            Err(_) => "undecodable".to_string(),
        },
        api_key::END_TXN => match EndTxnResponse::decode(&mut frame, version) {
            Ok(r) => code_name(r.error_code),
            Err(_) => "undecodable".to_string(),
        },
        _ => String::new(),
    }
}
