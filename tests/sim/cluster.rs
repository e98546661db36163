//! A simulated Kafka cluster: the broker side of the deterministic simulation.
//!
//! Sans-IO like the producer it tests: the harness moves bytes. It feeds what a client wrote on a
//! connection to [`SimCluster::on_bytes`] and delivers the returned bytes (complete, size-prefixed
//! response frames) back to the client; an `Err` means "the broker closes this connection". No
//! threads, no clocks, no randomness: the same calls give the same bytes.
//!
//! Wire handling is done by the `kafka-protocol` crate (generated from Kafka's JSON schemas by
//! other people), never by picokafka's codec. Record batches are decoded by its
//! `RecordBatchDecoder`, which verifies the CRC-32C and decompresses LZ4 (through the reference
//! liblz4, the crate's default `lz4` feature), gzip, snappy and zstd.
//!
//! What it implements, following Apache Kafka's broker (`KafkaApis`, `UnifiedLog`,
//! `LogValidator`, `ProducerAppendInfo`, `ProducerStateEntry`, `TransactionCoordinator`):
//!
//! - **ApiVersions** v0–v4. A version above the broker's maximum is answered, as Kafka does
//!   (KIP-511), with `UNSUPPORTED_VERSION` in a v0 body that lists only ApiVersions' own range.
//!   v3+ requests with an invalid client software name/version get `INVALID_REQUEST`.
//! - **Metadata** v1–v12 (v13 too if enabled): live brokers, requested topics (null ⇒ all), topic
//!   ids (v10+, lookups by id too), leader + leader epoch, replicas = isr = `[leader]`. A partition
//!   whose leader is down gets `LEADER_NOT_AVAILABLE`, leader -1 and the leader in
//!   `offline_replicas`. Unknown topic ⇒ `UNKNOWN_TOPIC_OR_PARTITION`, or with
//!   [`SimCluster::auto_create`] (and `allow_auto_topic_creation`) the topic is created and this
//!   response says `LEADER_NOT_AVAILABLE` with no partitions, as Kafka does.
//! - **InitProducerId** v0–v5: producer ids 1000, 1001, ...; without a transactional id every call
//!   gets a new id with epoch 0 (Kafka: "blindly accept ... return a new producerId"); with a
//!   transactional id the same id comes back with the epoch bumped, and a v3+ caller whose
//!   expected id/epoch does not match is fenced (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`
//!   before v4); an open transaction is aborted first (see [`super::txn`]).
//! - **Produce** v3–v11 (v12/v13 if enabled): per partition, in Kafka's order of checks: injected
//!   error; invalid `acks` ⇒ `INVALID_REQUIRED_ACKS`; unknown topic/partition; not exactly one
//!   magic-2 batch ⇒ `INVALID_RECORD`; not the leader ⇒ `NOT_LEADER_OR_FOLLOWER` (v10+: with
//!   `CurrentLeader` and `NodeEndpoints`); base offset ≠ 0 ⇒ `INVALID_RECORD`; batch larger than
//!   [`SimCluster::max_message_bytes`] ⇒ `MESSAGE_TOO_LARGE`; CRC or decoding failure ⇒
//!   `CORRUPT_MESSAGE`; count/offset-delta mismatch, control batch, producer id without sequence
//!   ⇒ `INVALID_RECORD`; then idempotence exactly like Kafka's producer state: per (partition,
//!   producer id) the epoch and the last 5 batches; a batch equal (same epoch, first and last
//!   sequence) to a cached one is a duplicate and answered with success and the original base
//!   offset; an older epoch ⇒ `INVALID_PRODUCER_EPOCH`; a newer epoch must start at sequence 0 and
//!   the same epoch must continue at last + 1 (wrapping after `i32::MAX`), else
//!   `OUT_OF_ORDER_SEQUENCE_NUMBER`; an unknown producer id is accepted at any sequence (Kafka
//!   ≥ 2.5). acks=0: no response; if a partition failed the connection is closed instead, as
//!   Kafka does.
//! - **SASL** (off by default; [`SimCluster::enable_sasl`]): SaslHandshake v1 and SaslAuthenticate
//!   v0–v2 with PLAIN and SCRAM-SHA-256/512 against a user table, and every other request
//!   refused (the connection closed) until the connection has authenticated; sessions that end
//!   and re-authentication (KIP-368). See [`super::sasl`].
//! - **Transactions** (off by default; [`SimCluster::enable_transactions`]): FindCoordinator v0–v5,
//!   AddPartitionsToTxn v0–v3, AddOffsetsToTxn v0–v3, TxnOffsetCommit v0–v3, EndTxn v0–v4, the
//!   transactional InitProducerId (which also works without them, on any broker), control
//!   markers, each record's transaction state for `read_committed`, and KIP-890 part 1's check of
//!   transactional Produce. See [`super::txn`].
//! - Anything else (other api keys, versions outside the advertised range, malformed frames or
//!   bodies, trailing bytes after a body, a frame above 100 MiB) closes the connection.
//!
//! Stricter than Kafka on purpose (it is a test oracle): trailing bytes after a request body,
//! trailing bytes after the partition's batch, and per-record offset deltas that are not
//! 0, 1, 2, ... are rejected. Record header keys come from kafka-protocol's decoder, which keeps
//! them in a map: a repeated header key is stored once (last value, first position).

use std::collections::{BTreeMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use kafka_protocol::messages::sasl_authenticate_response::SaslAuthenticateResponse;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use kafka_protocol::messages::sasl_handshake_response::SaslHandshakeResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use super::sasl::{self, AuthRecord, ConnSasl, Exchange, SaslServer, ScramHash, ScramServer, Session};
use super::txn::{Coordinators, TxnMark};

/// Kafka error codes the simulated brokers answer with.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const INVALID_RECORD: i16 = 87;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
}

/// The api keys the simulated brokers implement.
pub mod api_key {
    pub const PRODUCE: i16 = 0;
    pub const METADATA: i16 = 3;
    pub const SASL_HANDSHAKE: i16 = 17;
    pub const API_VERSIONS: i16 = 18;
    pub const FIND_COORDINATOR: i16 = 10;
    pub const INIT_PRODUCER_ID: i16 = 22;
    pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
    pub const ADD_OFFSETS_TO_TXN: i16 = 25;
    pub const END_TXN: i16 = 26;
    pub const TXN_OFFSET_COMMIT: i16 = 28;
    pub const SASL_AUTHENTICATE: i16 = 36;
}

use error_code as ec;

/// Host every simulated broker listens on.
pub const HOST: &str = "127.0.0.1";
/// Broker `id` listens on port `BASE_PORT + id`.
pub const BASE_PORT: u16 = 9000;
/// Kafka's default `socket.request.max.bytes`: a larger size prefix closes the connection.
pub const MAX_REQUEST_SIZE: usize = 100 * 1024 * 1024;
/// Kafka's default `message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// The first producer id InitProducerId hands out.
pub const FIRST_PRODUCER_ID: i64 = 1000;
/// How many batches per producer and partition Kafka remembers for duplicate detection.
pub const BATCHES_TO_RETAIN: usize = 5;

/// Size of a v2 record batch header (`RECORD_BATCH_OVERHEAD`); the length field counts from
/// byte 12 on.
const BATCH_OVERHEAD: usize = 61;
const LOG_OVERHEAD: usize = 12;

/// Deviations from Apache Kafka seen in other brokers, off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Answer Produce with acks=0 (Tansu and librdkafka's mock do; Kafka sends nothing).
    pub respond_to_acks0: bool,
    /// librdkafka's mock: ApiVersions goes up to v2 only, and a higher version is answered with
    /// `UNSUPPORTED_VERSION` in a v0 body listing every api (Kafka lists only ApiVersions).
    pub api_versions_v0_fallback: bool,
    /// Tansu: a duplicate batch is answered with `DUPLICATE_SEQUENCE_NUMBER` (Kafka: success with
    /// the original base offset).
    pub duplicate_as_error: bool,
    /// Kafka before 2.5: an unknown producer id whose first batch does not start at sequence 0
    /// gets `UNKNOWN_PRODUCER_ID` (newer Kafka accepts it).
    pub unknown_producer_id: bool,
    /// InitProducerId without a transactional id but with (v3+) a producer id and epoch this
    /// cluster issued bumps the epoch of that id instead of allocating a new id.
    pub init_producer_id_bumps_epoch: bool,
}

/// One record as written to a partition's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The record's (create) timestamp.
    pub timestamp: i64,
    /// -1 for a non-idempotent producer.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 for a non-idempotent producer.
    pub sequence: i32,
    pub transactional: bool,
    /// Where the record's transaction is (see [`super::txn`]).
    pub txn: TxnMark,
}

/// One batch as written to a partition's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub record_count: i32,
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    /// The batch exactly as the client sent it (base offset 0, client's CRC).
    pub bytes: Vec<u8>,
}

/// One request a broker parsed the header of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    pub conn: u64,
    pub broker: i32,
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// What a broker does after reading bytes: send `bytes`, then close the connection if `close`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub close: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// Answer with this error code instead of processing.
    Error(i16),
    /// Process the request, then close the connection without answering.
    Disconnect,
}

#[derive(Debug, Clone)]
struct Fault {
    api_key: i16,
    broker: Option<i32>,
    kind: FaultKind,
    remaining: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    pub(crate) batches: VecDeque<BatchMeta>,
}

#[derive(Debug, Clone)]
pub(crate) struct Partition {
    leader: i32,
    leader_epoch: i32,
    pub(crate) records: Vec<StoredRecord>,
    batches: Vec<StoredBatch>,
    pub(crate) next_offset: i64,
    pub(crate) producers: BTreeMap<i64, ProducerEntry>,
    /// Control markers: (offset, producer id, commit).
    pub(crate) markers: Vec<(i64, i64, bool)>,
}

#[derive(Debug, Clone)]
struct Topic {
    id: [u8; 16],
    partitions: Vec<Partition>,
}

#[derive(Debug, Clone)]
struct Conn {
    broker: i32,
    buf: Vec<u8>,
    sasl: ConnSasl,
}

/// A SASL exchange that ended: with the server's last message, or refused with (the message the
/// client gets, the reason the broker logs).
struct Ended {
    mechanism: String,
    user: String,
    result: Result<Vec<u8>, (String, String)>,
}

impl Ended {
    fn refused(mechanism: String, user: String, message: String, why: String) -> Self {
        Self { mechanism, user, result: Err((message, why)) }
    }
}

/// The outcome of the idempotence checks for one batch.
enum SeqCheck {
    Append,
    Duplicate(i64),
    Error(i16),
}

/// A simulated Kafka cluster. See the module documentation for what it implements.
#[derive(Debug, Clone)]
pub struct SimCluster {
    pub quirks: Quirks,
    /// Metadata auto-creates unknown topics with this many partitions (leaders round-robin over
    /// the live brokers). `None` (the default): `UNKNOWN_TOPIC_OR_PARTITION`.
    pub auto_create: Option<i32>,
    /// Largest batch accepted (Kafka's `message.max.bytes`).
    pub max_message_bytes: usize,
    pub cluster_id: String,
    /// Broker id ⇒ up.
    brokers: BTreeMap<i32, bool>,
    /// Api key ⇒ (min, max) version advertised and accepted.
    pub(crate) versions: BTreeMap<i16, (i16, i16)>,
    topics: BTreeMap<String, Topic>,
    topics_created: u64,
    next_producer_id: i64,
    /// The transaction and group coordinators.
    pub(crate) txn: Coordinators,
    conns: BTreeMap<u64, Conn>,
    faults: Vec<Fault>,
    counts: BTreeMap<(i32, i16), u32>,
    requests: Vec<RequestInfo>,
    /// SASL on every broker's listener, if enabled.
    sasl: Option<SaslServer>,
    /// The time the harness last gave (milliseconds): SASL sessions and transactions end by it.
    pub(crate) now_ms: u64,
    /// Set by a handler that answers and then closes the connection.
    close_after: Option<String>,
}

impl SimCluster {
    /// A cluster of live brokers with these ids (each in `0..=56535`), no topics.
    pub fn new(broker_ids: &[i32]) -> Self {
        assert!(!broker_ids.is_empty(), "a cluster needs a broker");
        let mut brokers = BTreeMap::new();
        for &id in broker_ids {
            assert!((0..=i32::from(u16::MAX - BASE_PORT)).contains(&id), "broker id {id} out of range");
            assert!(brokers.insert(id, true).is_none(), "broker id {id} given twice");
        }
        let versions = BTreeMap::from([
            (api_key::PRODUCE, (3, 11)),
            (api_key::METADATA, (1, 12)),
            (api_key::API_VERSIONS, (0, 4)),
            (api_key::INIT_PRODUCER_ID, (0, 5)),
        ]);
        Self {
            quirks: Quirks::default(),
            auto_create: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            cluster_id: "sim-cluster".to_string(),
            brokers,
            versions,
            topics: BTreeMap::new(),
            topics_created: 0,
            next_producer_id: FIRST_PRODUCER_ID,
            txn: Coordinators::default(),
            conns: BTreeMap::new(),
            faults: Vec::new(),
            counts: BTreeMap::new(),
            requests: Vec::new(),
            sasl: None,
            now_ms: 0,
            close_after: None,
        }
    }

    /// Requires SASL on every broker: connections must authenticate (ApiVersions, then
    /// SaslHandshake and SaslAuthenticate) before any other request, as on a `SASL_PLAINTEXT`
    /// listener. SaslHandshake v0–1 and SaslAuthenticate v0–2 are advertised from now on.
    pub fn enable_sasl(&mut self, server: SaslServer) {
        self.versions.insert(api_key::SASL_HANDSHAKE, (0, 1));
        self.versions.insert(api_key::SASL_AUTHENTICATE, (0, 2));
        self.sasl = Some(server);
    }

    /// The SASL listener, if enabled: its users, settings and log.
    pub fn sasl(&self) -> Option<&SaslServer> {
        self.sasl.as_ref()
    }

    /// The SASL listener, to change users or settings between steps of a run.
    pub fn sasl_mut(&mut self) -> Option<&mut SaslServer> {
        self.sasl.as_mut()
    }

    /// The current time, in milliseconds: only SASL sessions look at it (the harness sets it
    /// before every delivery).
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Where broker `id` listens.
    pub fn addr(&self, id: i32) -> (String, u16) {
        assert!(self.brokers.contains_key(&id), "no broker {id}");
        (HOST.to_string(), port_of(id))
    }

    /// Which broker listens at `host:port`, if any (up or down).
    pub fn broker_at(&self, host: &str, port: u16) -> Option<i32> {
        if host != HOST || port < BASE_PORT {
            return None;
        }
        let id = i32::from(port - BASE_PORT);
        self.brokers.contains_key(&id).then_some(id)
    }

    /// `host:port` of every broker, for a bootstrap list.
    pub fn bootstrap(&self) -> Vec<(String, u16)> {
        self.brokers.keys().map(|&id| (HOST.to_string(), port_of(id))).collect()
    }

    /// All broker ids, ascending.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    pub fn is_up(&self, id: i32) -> bool {
        self.brokers.get(&id).copied().unwrap_or(false)
    }

    /// A down broker refuses bytes (`on_bytes` fails: the harness closes or refuses the
    /// connection), drops its connections' state and is left out of Metadata; partitions it
    /// leads report `LEADER_NOT_AVAILABLE`. Leadership never moves by itself: use
    /// [`Self::move_leader`].
    pub fn set_broker_up(&mut self, id: i32, up: bool) {
        let state = self.brokers.get_mut(&id).unwrap_or_else(|| panic!("no broker {id}"));
        *state = up;
        if !up {
            self.conns.retain(|_, c| c.broker != id);
        }
    }

    /// Advertise and accept `range` (min, max) for `api_key`, or (`None`) not implement it at
    /// all, like an older broker. ApiVersions must stay. Versions are limited to what
    /// kafka-protocol can encode.
    pub fn set_api_versions(&mut self, api_key: i16, range: Option<(i16, i16)>) {
        let key = ApiKey::try_from(api_key).unwrap_or_else(|_| panic!("unknown api key {api_key}"));
        let txn_api = matches!(
            key,
            ApiKey::FindCoordinator
                | ApiKey::AddPartitionsToTxn
                | ApiKey::AddOffsetsToTxn
                | ApiKey::TxnOffsetCommit
                | ApiKey::EndTxn
        );
        assert!(
            matches!(key, ApiKey::Produce | ApiKey::Metadata | ApiKey::ApiVersions | ApiKey::InitProducerId)
                || (txn_api && self.txn.enabled),
            "the simulated broker does not implement {key:?}"
        );
        match range {
            None => {
                assert!(key != ApiKey::ApiVersions, "ApiVersions cannot be removed");
                self.versions.remove(&api_key);
            }
            Some((min, max)) => {
                let limit = match key {
                    ApiKey::Produce => (3, 13),
                    ApiKey::Metadata => (0, 13),
                    ApiKey::ApiVersions => (0, 4),
                    ApiKey::SaslHandshake => (0, 1),
                    ApiKey::SaslAuthenticate => (0, 2),
                    ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::TxnOffsetCommit => (0, 3),
                    ApiKey::EndTxn => (0, 4),
                    _ => (0, 5),
                };
                assert!(limit.0 <= min && min <= max && max <= limit.1, "{key:?} {min}..={max} unsupported");
                self.versions.insert(api_key, (min, max));
            }
        }
    }

    /// The (min, max) versions advertised for `api_key`.
    pub fn api_versions(&self, api_key: i16) -> Option<(i16, i16)> {
        self.versions.get(&api_key).copied()
    }

    /// Creates a topic; the leader of partition `p` is `leaders[p % leaders.len()]`, leader
    /// epoch 0.
    pub fn create_topic(&mut self, name: &str, partitions: i32, leaders: &[i32]) {
        assert!(partitions > 0, "a topic needs a partition");
        assert!(!leaders.is_empty(), "a topic needs leaders");
        for l in leaders {
            assert!(self.brokers.contains_key(l), "leader {l} is not a broker");
        }
        assert!(!self.topics.contains_key(name), "topic {name} exists");
        self.topics_created += 1;
        let id =
            (0x5117_c1a5_7e00_4000_8000_0000_0000_0000u128 | u128::from(self.topics_created)).to_be_bytes();
        let partitions = (0..partitions as usize)
            .map(|p| Partition {
                leader: leaders[p % leaders.len()],
                leader_epoch: 0,
                records: Vec::new(),
                batches: Vec::new(),
                next_offset: 0,
                producers: BTreeMap::new(),
                markers: Vec::new(),
            })
            .collect();
        self.topics.insert(name.to_string(), Topic { id, partitions });
    }

    /// Topic names, ascending.
    pub fn topics(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    /// Number of partitions of `topic`.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|t| t.partitions.len() as i32)
    }

    /// The topic id Metadata v10+ reports.
    pub fn topic_id(&self, topic: &str) -> Option<[u8; 16]> {
        self.topics.get(topic).map(|t| t.id)
    }

    /// (leader, leader epoch) of a partition.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        self.partition(topic, partition).map(|p| (p.leader, p.leader_epoch))
    }

    /// Makes `new_leader` the leader and bumps the leader epoch (even if the leader is
    /// unchanged, like a re-election).
    pub fn move_leader(&mut self, topic: &str, partition: i32, new_leader: i32) {
        assert!(self.brokers.contains_key(&new_leader), "no broker {new_leader}");
        let p = self.partition_mut(topic, partition).unwrap_or_else(|| panic!("no {topic}-{partition}"));
        p.leader = new_leader;
        p.leader_epoch += 1;
    }

    /// Feeds bytes a client sent on connection `conn` (a key the caller chooses) to broker
    /// `broker`; returns what the broker sends back: zero or more complete response frames, each
    /// with its i32 size prefix, in request order. Partial frames are kept until the rest comes.
    /// `Err`: the broker closes the connection (its state is dropped); responses to earlier
    /// requests in the same bytes are dropped too, as if lost with the connection (see
    /// [`Self::on_bytes_reply`] to get them).
    pub fn on_bytes(&mut self, conn: u64, broker: i32, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let reply = self.on_bytes_reply(conn, broker, bytes);
        match reply.close {
            None => Ok(reply.bytes),
            Some(why) => Err(why),
        }
    }

    /// Like [`Self::on_bytes`], but keeps the responses the broker sends before it closes the
    /// connection.
    pub fn on_bytes_reply(&mut self, conn: u64, broker: i32, bytes: &[u8]) -> Reply {
        let mut out = Vec::new();
        match self.feed(conn, broker, bytes, &mut out) {
            Ok(()) => Reply { bytes: out, close: None },
            Err(why) => {
                self.conns.remove(&conn);
                Reply { bytes: out, close: Some(why) }
            }
        }
    }

    /// The client or the harness closed the connection: forget its partial input.
    pub fn on_close(&mut self, conn: u64) {
        self.conns.remove(&conn);
    }

    /// The next `count` requests with `api_key` (to `broker`, or to any broker) are answered
    /// with `error_code` and otherwise ignored (nothing appended): Produce at partition level
    /// for every partition, Metadata at topic level for every topic (no partitions),
    /// InitProducerId and ApiVersions at top level (ApiVersions with 35 gets the v0 fallback
    /// body), SaslHandshake and SaslAuthenticate at top level and then the connection is closed.
    /// Faults apply in the order injected.
    pub fn inject_error(&mut self, api_key: i16, broker: Option<i32>, error_code: i16, count: u32) {
        self.faults.push(Fault { api_key, broker, kind: FaultKind::Error(error_code), remaining: count });
    }

    /// The next `count` requests with `api_key` (to `broker`, or to any broker) are processed
    /// (records appended, ids allocated) but the broker then closes the connection instead of
    /// answering: the response is lost.
    pub fn inject_disconnect(&mut self, api_key: i16, broker: Option<i32>, count: u32) {
        self.faults.push(Fault { api_key, broker, kind: FaultKind::Disconnect, remaining: count });
    }

    /// The records of a partition, in offset order (empty if there is no such partition).
    pub fn log(&self, topic: &str, partition: i32) -> &[StoredRecord] {
        self.partition(topic, partition).map_or(&[], |p| &p.records)
    }

    /// The batches of a partition, in offset order (empty if there is no such partition).
    pub fn batches(&self, topic: &str, partition: i32) -> &[StoredBatch] {
        self.partition(topic, partition).map_or(&[], |p| &p.batches)
    }

    /// The broker's idempotence state for a producer on a partition: (epoch, last sequence).
    pub fn producer_state(&self, topic: &str, partition: i32, producer_id: i64) -> Option<(i16, i32)> {
        let entry = self.partition(topic, partition)?.producers.get(&producer_id)?;
        Some((entry.epoch, entry.batches.back().map_or(-1, |b| b.last_seq)))
    }

    /// How many requests (whose header parsed) each (broker, api key) saw.
    pub fn request_counts(&self) -> &BTreeMap<(i32, i16), u32> {
        &self.counts
    }

    /// How many requests with `api_key` broker `broker` saw.
    pub fn request_count(&self, broker: i32, api_key: i16) -> u32 {
        self.counts.get(&(broker, api_key)).copied().unwrap_or(0)
    }

    /// Every request whose header parsed, in arrival order.
    pub fn requests(&self) -> &[RequestInfo] {
        &self.requests
    }

    // -----------------------------------------------------------------------------------------
    // Framing and dispatch
    // -----------------------------------------------------------------------------------------

    fn feed(&mut self, conn: u64, broker: i32, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self.brokers.get(&broker) {
            None => return Err(format!("no broker {broker}")),
            Some(false) => return Err(format!("broker {broker} is down")),
            Some(true) => {}
        }
        let state =
            self.conns.entry(conn).or_insert(Conn { broker, buf: Vec::new(), sasl: ConnSasl::default() });
        if state.broker != broker {
            return Err(format!("connection {conn} belongs to broker {}, not {broker}", state.broker));
        }
        let mut buf = std::mem::take(&mut state.buf);
        buf.extend_from_slice(bytes);
        let mut pos = 0;
        while buf.len() - pos >= 4 {
            let size = i32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
            if size < 0 || size as usize > MAX_REQUEST_SIZE {
                return Err(format!("invalid request size {size}"));
            }
            let size = size as usize;
            if buf.len() - pos - 4 < size {
                break;
            }
            let frame = Bytes::copy_from_slice(&buf[pos + 4..pos + 4 + size]);
            pos += 4 + size;
            if let Some(response) = self.handle_frame(conn, broker, frame)? {
                out.extend_from_slice(&response);
            }
            if let Some(why) = self.close_after.take() {
                return Err(why);
            }
        }
        buf.drain(..pos);
        if let Some(state) = self.conns.get_mut(&conn) {
            state.buf = buf;
        }
        Ok(())
    }

    /// One request frame (without its size prefix) ⇒ its response frame, none (acks=0), or
    /// `Err` to close the connection.
    fn handle_frame(&mut self, conn: u64, broker: i32, mut frame: Bytes) -> Result<Option<Vec<u8>>, String> {
        if frame.len() < 4 {
            return Err(format!("request of {} bytes has no header", frame.len()));
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let sasl_on = self.sasl.is_some();
        let api = match ApiKey::try_from(key) {
            Ok(api @ (ApiKey::Produce | ApiKey::Metadata | ApiKey::ApiVersions | ApiKey::InitProducerId)) => {
                api
            }
            Ok(api @ (ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)) if sasl_on => api,
            Ok(
                api @ (ApiKey::FindCoordinator
                | ApiKey::AddPartitionsToTxn
                | ApiKey::AddOffsetsToTxn
                | ApiKey::TxnOffsetCommit
                | ApiKey::EndTxn),
            ) if self.txn.enabled => api,
            _ => return Err(format!("api key {key} is not implemented")),
        };
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
            .map_err(|e| format!("malformed {api:?} v{version} request header: {e:#}"))?;
        let correlation_id = header.correlation_id;
        *self.counts.entry((broker, key)).or_default() += 1;
        self.requests.push(RequestInfo { conn, broker, api_key: key, api_version: version, correlation_id });
        if sasl_on {
            self.sasl_gate(conn, api)?;
        }
        if api == ApiKey::ApiVersions {
            let response = self.handle_api_versions(broker, version, correlation_id, frame)?;
            if sasl_on && self.close_after.is_none() {
                if let (Some(bytes), Some(c)) = (&response, self.conns.get_mut(&conn)) {
                    // Kafka moves on to SaslHandshake only after an ApiVersions it answered
                    // without error (a client may ask again after UNSUPPORTED_VERSION).
                    c.sasl.versions_done |= response_error_code(bytes) == Some(ec::NONE);
                }
            }
            return Ok(response);
        }
        let (min, max) =
            self.versions.get(&key).copied().ok_or_else(|| format!("{api:?} is not supported"))?;
        if version < min || version > max {
            return Err(format!("{api:?} v{version} is outside the supported {min}..={max}"));
        }
        match api {
            ApiKey::Produce => self.produce(broker, version, correlation_id, frame),
            ApiKey::Metadata => self.metadata(broker, version, correlation_id, frame),
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
                self.sasl_request(conn, broker, api, version, correlation_id, frame)
            }
            ApiKey::FindCoordinator => self.find_coordinator(broker, version, correlation_id, frame),
            ApiKey::AddPartitionsToTxn => self.add_partitions_to_txn(broker, version, correlation_id, frame),
            ApiKey::AddOffsetsToTxn => self.add_offsets_to_txn(broker, version, correlation_id, frame),
            ApiKey::TxnOffsetCommit => self.txn_offset_commit(broker, version, correlation_id, frame),
            ApiKey::EndTxn => self.end_txn(broker, version, correlation_id, frame),
            _ => self.init_producer_id(broker, version, correlation_id, frame),
        }
    }

    // -----------------------------------------------------------------------------------------
    // SASL
    // -----------------------------------------------------------------------------------------

    /// Whether a request may be read on this connection (Kafka's `SaslServerAuthenticator`
    /// states and expired sessions); `Err` closes it.
    fn sasl_gate(&mut self, conn: u64, api: ApiKey) -> Result<(), String> {
        let now = self.now_ms;
        let Some(c) = self.conns.get(&conn) else { return Ok(()) };
        let s = &c.sasl;
        let sasl_api = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        if let Some(session) = &s.session {
            if s.exchange.is_none() && !sasl_api {
                if session.expires_at_ms.is_some_and(|at| now >= at) {
                    return Err(format!(
                        "{api:?} on a SASL session that expired at {}ms (now {now}ms): closing",
                        session.expires_at_ms.unwrap_or_default()
                    ));
                }
                return Ok(());
            }
        }
        match api {
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Ok(()),
            ApiKey::ApiVersions if s.session.is_none() && s.exchange.is_none() && !s.versions_done => Ok(()),
            ApiKey::ApiVersions => {
                Err("Unexpected ApiVersions request during SASL authentication".to_string())
            }
            _ if s.exchange.is_some() => {
                Err(format!("Unexpected Kafka request of type {api:?} during SASL authentication"))
            }
            _ => Err(format!("Unexpected Kafka request of type {api:?} during SASL handshake")),
        }
    }

    fn sasl_record(
        &mut self,
        conn: u64,
        broker: i32,
        mechanism: &str,
        user: &str,
        reauth: bool,
        outcome: Result<(), String>,
    ) {
        let at_ms = self.now_ms;
        if let Some(server) = self.sasl.as_mut() {
            server.record(AuthRecord {
                at_ms,
                conn,
                broker,
                mechanism: mechanism.to_string(),
                user: user.to_string(),
                reauth,
                outcome,
            });
        }
    }

    /// SaslHandshake or SaslAuthenticate, with injected faults: an error code is answered (with
    /// the enabled mechanisms, or the message "injected") and the connection closed, as Kafka
    /// closes after a failed exchange; a disconnect processes the request and loses the answer.
    fn sasl_request(
        &mut self,
        conn: u64,
        broker: i32,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let key = api as i16;
        match self.take_fault(key, broker) {
            Some(FaultKind::Error(code)) => {
                self.close_after = Some(format!("injected {api:?} error {code}: closing"));
                let response = if api == ApiKey::SaslHandshake {
                    let server = self.sasl.as_ref().expect("SASL is on");
                    let enabled =
                        server.mechanisms.iter().map(|m| StrBytes::from_string(m.clone())).collect();
                    let body =
                        SaslHandshakeResponse::default().with_error_code(code).with_mechanisms(enabled);
                    encode_response(api, version, correlation_id, &body)
                } else {
                    let body = SaslAuthenticateResponse::default()
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_static_str("injected")));
                    encode_response(api, version, correlation_id, &body)
                };
                Ok(Some(response))
            }
            fault => {
                let response = if api == ApiKey::SaslHandshake {
                    self.sasl_handshake(conn, broker, version, correlation_id, frame)
                } else {
                    self.sasl_authenticate(conn, broker, version, correlation_id, frame)
                }?;
                if fault == Some(FaultKind::Disconnect) {
                    self.close_after = None;
                    return Err(format!("injected disconnect after {api:?}"));
                }
                Ok(response)
            }
        }
    }

    fn sasl_handshake(
        &mut self,
        conn: u64,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: SaslHandshakeRequest = decode_body(frame, version, "SaslHandshake")?;
        if version == 0 {
            return Err("SaslHandshake v0 (unframed SASL tokens) is not simulated".to_string());
        }
        let server = self.sasl.as_ref().expect("SASL is on");
        let c = self.conns.get(&conn).expect("the connection is being read");
        if c.sasl.exchange.is_some() {
            return Err("Unexpected SaslHandshake request during SASL authentication".to_string());
        }
        let mechanism = req.mechanism.to_string();
        let enabled: Vec<StrBytes> =
            server.mechanisms.iter().map(|m| StrBytes::from_string(m.clone())).collect();
        let body = SaslHandshakeResponse::default().with_mechanisms(enabled);
        let reauth = c.sasl.session.is_some();
        if !server.enables(&mechanism) {
            let list = server.mechanisms.join(", ");
            self.sasl_record(
                conn,
                broker,
                &mechanism,
                "",
                reauth,
                Err(format!("mechanism not enabled (enabled: {list})")),
            );
            self.close_after = Some(format!("SASL mechanism {mechanism} is not enabled: closing"));
            let body = body.with_error_code(ec::UNSUPPORTED_SASL_MECHANISM);
            return Ok(Some(encode_response(ApiKey::SaslHandshake, version, correlation_id, &body)));
        }
        let refuse = c.sasl.session.as_ref().filter(|s| s.mechanism != mechanism).map(|s| {
            format!(
                "SASL mechanism '{mechanism}' requested by client is not supported for re-authentication of mechanism '{}'",
                s.mechanism
            )
        });
        let c = self.conns.get_mut(&conn).expect("the connection is being read");
        c.sasl.exchange = Some(Exchange::Handshaken { mechanism, refuse });
        Ok(Some(encode_response(ApiKey::SaslHandshake, version, correlation_id, &body)))
    }

    fn sasl_authenticate(
        &mut self,
        conn: u64,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: SaslAuthenticateRequest = decode_body(frame, version, "SaslAuthenticate")?;
        let now = self.now_ms;
        let c = self.conns.get_mut(&conn).expect("the connection is being read");
        let Some(exchange) = c.sasl.exchange.take() else {
            return Err("Unexpected Kafka request of type SaslAuthenticate during SASL handshake".to_string());
        };
        let session = c.sasl.session.clone();
        let reauth = session.is_some();
        let server = self.sasl.as_mut().expect("SASL is on");
        let ended: Ended = match exchange {
            Exchange::Handshaken { mechanism, refuse: Some(message) } => {
                Ended::refused(mechanism, String::new(), message.clone(), message)
            }
            Exchange::Handshaken { mechanism, refuse: None } if mechanism == sasl::PLAIN => {
                match sasl::plain(&req.auth_bytes, server.users()) {
                    Ok(user) => Ended { mechanism, user, result: Ok(Vec::new()) },
                    Err((message, why)) => {
                        let text = String::from_utf8_lossy(&req.auth_bytes);
                        let user = text.split('\0').nth(1).unwrap_or_default().to_string();
                        Ended::refused(mechanism, user, message, why)
                    }
                }
            }
            Exchange::Handshaken { mechanism, refuse: None } => {
                let hash = ScramHash::of(&mechanism).expect("only PLAIN and SCRAM are enabled");
                let nonce = server.next_nonce(conn);
                let users = server.users();
                let lookup = |u: &str| users.get(u).and_then(|u| u.scram.get(&hash)).cloned();
                match ScramServer::client_first(hash, &req.auth_bytes, lookup, &nonce) {
                    Ok((scram, server_first)) => {
                        let c = self.conns.get_mut(&conn).expect("the connection is being read");
                        c.sasl.exchange = Some(Exchange::Scram(Box::new(scram)));
                        let body = SaslAuthenticateResponse::default()
                            .with_error_message(None)
                            .with_auth_bytes(Bytes::from(server_first));
                        return Ok(Some(encode_response(
                            ApiKey::SaslAuthenticate,
                            version,
                            correlation_id,
                            &body,
                        )));
                    }
                    Err(why) => {
                        let message = sasl::failed_message(&mechanism);
                        Ended::refused(mechanism, scram_user(&req.auth_bytes), message, why)
                    }
                }
            }
            Exchange::Scram(scram) => {
                let mechanism = scram.hash.mechanism().to_string();
                let credential =
                    server.users().get(&scram.user).and_then(|u| u.scram.get(&scram.hash)).cloned();
                let impostor = credential.and_then(|c| server.impostor_key(scram.hash, &c));
                let result = scram
                    .client_final(&req.auth_bytes, impostor.as_deref())
                    .map_err(|why| (sasl::failed_message(&mechanism), why));
                Ended { mechanism, user: scram.user.clone(), result }
            }
        };
        // KIP-368: a re-authentication keeps the principal.
        let ended = match (&session, ended) {
            (Some(s), e) if e.result.is_ok() && s.user != e.user => {
                let message = format!(
                    "Cannot change principals during re-authentication from User:{}: User:{}",
                    s.user, e.user
                );
                Ended::refused(e.mechanism, e.user, message.clone(), message)
            }
            (_, e) => e,
        };
        let Ended { mechanism, user, result } = ended;
        match result {
            Ok(server_message) => {
                let lifetime = server.session_lifetime_ms.max(0);
                self.sasl_record(conn, broker, &mechanism, &user, reauth, Ok(()));
                let c = self.conns.get_mut(&conn).expect("the connection is being read");
                c.sasl.session = Some(Session {
                    mechanism,
                    user,
                    expires_at_ms: (lifetime > 0).then(|| now + lifetime as u64),
                });
                let body = SaslAuthenticateResponse::default()
                    .with_error_message(None)
                    .with_auth_bytes(Bytes::from(server_message))
                    .with_session_lifetime_ms(lifetime);
                Ok(Some(encode_response(ApiKey::SaslAuthenticate, version, correlation_id, &body)))
            }
            Err((message, why)) => {
                self.sasl_record(conn, broker, &mechanism, &user, reauth, Err(why.clone()));
                self.close_after = Some(format!("SASL authentication failed ({why}): closing"));
                let body = SaslAuthenticateResponse::default()
                    .with_error_code(ec::SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(StrBytes::from_string(message)));
                Ok(Some(encode_response(ApiKey::SaslAuthenticate, version, correlation_id, &body)))
            }
        }
    }

    pub(crate) fn take_fault(&mut self, api_key: i16, broker: i32) -> Option<FaultKind> {
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.api_key == api_key && f.remaining > 0 && f.broker.is_none_or(|b| b == broker))?;
        fault.remaining -= 1;
        let kind = fault.kind;
        self.faults.retain(|f| f.remaining > 0);
        Some(kind)
    }

    // -----------------------------------------------------------------------------------------
    // ApiVersions
    // -----------------------------------------------------------------------------------------

    fn handle_api_versions(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let (min, mut max) = self.versions[&api_key::API_VERSIONS];
        if self.quirks.api_versions_v0_fallback {
            max = max.min(2);
        }
        if version < min || version > max {
            // The body is not parsed: the client may speak a version we do not know.
            return Ok(Some(self.unsupported_api_versions(correlation_id)));
        }
        let req: ApiVersionsRequest = decode_body(frame, version, "ApiVersions")?;
        let fault = self.take_fault(api_key::API_VERSIONS, broker);
        let mut body = ApiVersionsResponse::default();
        match fault {
            Some(FaultKind::Error(ec::UNSUPPORTED_VERSION)) => {
                return Ok(Some(self.unsupported_api_versions(correlation_id)));
            }
            Some(FaultKind::Error(code)) => body.error_code = code,
            _ if version >= 3
                && !(valid_software_id(&req.client_software_name)
                    && valid_software_id(&req.client_software_version)) =>
            {
                body.error_code = ec::INVALID_REQUEST;
            }
            _ => body.api_keys = self.api_version_list(max),
        }
        let response = encode_response(ApiKey::ApiVersions, version, correlation_id, &body);
        match fault {
            Some(FaultKind::Disconnect) => Err("injected disconnect after ApiVersions".to_string()),
            _ => Ok(Some(response)),
        }
    }

    /// Kafka (KIP-511): `UNSUPPORTED_VERSION` in a v0 body listing ApiVersions' range; the
    /// mock quirk lists everything.
    fn unsupported_api_versions(&self, correlation_id: i32) -> Vec<u8> {
        let (min, mut max) = self.versions[&api_key::API_VERSIONS];
        let api_keys = if self.quirks.api_versions_v0_fallback {
            max = max.min(2);
            self.api_version_list(max)
        } else {
            vec![ApiVersion::default()
                .with_api_key(api_key::API_VERSIONS)
                .with_min_version(min)
                .with_max_version(max)]
        };
        let body =
            ApiVersionsResponse::default().with_error_code(ec::UNSUPPORTED_VERSION).with_api_keys(api_keys);
        encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
    }

    fn api_version_list(&self, api_versions_max: i16) -> Vec<ApiVersion> {
        self.versions
            .iter()
            .map(|(&key, &(min, max))| {
                let max = if key == api_key::API_VERSIONS { api_versions_max } else { max };
                ApiVersion::default().with_api_key(key).with_min_version(min).with_max_version(max)
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Metadata
    // -----------------------------------------------------------------------------------------

    fn metadata(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: MetadataRequest = decode_body(frame, version, "Metadata")?;
        let fault = self.take_fault(api_key::METADATA, broker);
        let injected = match fault {
            Some(FaultKind::Error(code)) => Some(code),
            _ => None,
        };
        let allow_auto_create = version < 4 || req.allow_auto_topic_creation;

        let mut topics = Vec::new();
        let all = match &req.topics {
            None => true,
            Some(list) => version == 0 && list.is_empty(),
        };
        if all {
            for name in self.topics.keys().cloned().collect::<Vec<_>>() {
                topics.push(self.topic_metadata(&name, injected));
            }
        } else {
            let mut seen = Vec::new();
            for t in req.topics.iter().flatten() {
                match &t.name {
                    Some(name) => {
                        let name = name.0.to_string();
                        if seen.contains(&name) {
                            continue;
                        }
                        seen.push(name.clone());
                        if self.topics.contains_key(&name) || injected.is_some() {
                            topics.push(self.topic_metadata(&name, injected));
                        } else if let (Some(partitions), true) = (self.auto_create, allow_auto_create) {
                            let leaders: Vec<i32> =
                                self.brokers.iter().filter(|(_, &up)| up).map(|(&id, _)| id).collect();
                            self.create_topic(&name, partitions, &leaders);
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(ec::LEADER_NOT_AVAILABLE)
                                    .with_name(Some(topic_name(&name))),
                            );
                        } else {
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION)
                                    .with_name(Some(topic_name(&name))),
                            );
                        }
                    }
                    None => {
                        let id = *t.topic_id.as_bytes();
                        match self.topics.iter().find(|(_, topic)| topic.id == id).map(|(n, _)| n.clone()) {
                            Some(name) => topics.push(self.topic_metadata(&name, injected)),
                            None => topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(injected.unwrap_or(ec::UNKNOWN_TOPIC_ID))
                                    .with_name(None)
                                    .with_topic_id(t.topic_id),
                            ),
                        }
                    }
                }
            }
        }

        let brokers: Vec<MetadataResponseBroker> = self
            .brokers
            .iter()
            .filter(|(_, &up)| up)
            .map(|(&id, _)| {
                MetadataResponseBroker::default()
                    .with_node_id(id.into())
                    .with_host(StrBytes::from_static_str(HOST))
                    .with_port(i32::from(port_of(id)))
            })
            .collect();
        let controller = self.brokers.iter().find(|(_, &up)| up).map_or(-1, |(&id, _)| id);
        let body = MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(StrBytes::from_string(self.cluster_id.clone())))
            .with_controller_id(controller.into())
            .with_topics(topics);
        let response = encode_response(ApiKey::Metadata, version, correlation_id, &body);
        match fault {
            Some(FaultKind::Disconnect) => Err("injected disconnect after Metadata".to_string()),
            _ => Ok(Some(response)),
        }
    }

    fn topic_metadata(&self, name: &str, injected: Option<i16>) -> MetadataResponseTopic {
        let base = MetadataResponseTopic::default().with_name(Some(topic_name(name)));
        if let Some(code) = injected {
            let base = base.with_error_code(code);
            return match self.topics.get(name) {
                Some(topic) => base.with_topic_id(kp_uuid(topic.id)),
                None => base,
            };
        }
        let Some(topic) = self.topics.get(name) else {
            return base.with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION);
        };
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let replicas = vec![p.leader.into()];
                let part = MetadataResponsePartition::default()
                    .with_partition_index(index as i32)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(replicas.clone())
                    .with_isr_nodes(replicas.clone());
                if self.is_up(p.leader) {
                    part.with_leader_id(p.leader.into())
                } else {
                    part.with_error_code(ec::LEADER_NOT_AVAILABLE)
                        .with_leader_id((-1).into())
                        .with_offline_replicas(replicas)
                }
            })
            .collect();
        base.with_topic_id(kp_uuid(topic.id)).with_partitions(partitions)
    }

    // -----------------------------------------------------------------------------------------
    // InitProducerId
    // -----------------------------------------------------------------------------------------

    fn init_producer_id(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: InitProducerIdRequest = decode_body(frame, version, "InitProducerId")?;
        let fault = self.take_fault(api_key::INIT_PRODUCER_ID, broker);
        let expected =
            (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        let result: Result<(i64, i16), i16> = match (fault, &req.transactional_id) {
            (Some(FaultKind::Error(code)), _) => Err(code),
            (_, None) => match expected {
                Some((id, epoch))
                    if self.quirks.init_producer_id_bumps_epoch
                        && (FIRST_PRODUCER_ID..self.next_producer_id).contains(&id)
                        && (0..i16::MAX - 1).contains(&epoch) =>
                {
                    Ok((id, epoch + 1))
                }
                _ => Ok((self.new_producer_id(), 0)),
            },
            (_, Some(tid)) if tid.0.is_empty() => Err(ec::INVALID_REQUEST),
            (_, Some(tid)) => {
                let tid = tid.0.to_string();
                self.txn_init_producer_id(broker, version, &tid, expected, req.transaction_timeout_ms)
            }
        };
        let body = match result {
            Ok((id, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(id.into()).with_producer_epoch(epoch)
            }
            Err(code) => InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        };
        let response = encode_response(ApiKey::InitProducerId, version, correlation_id, &body);
        match fault {
            Some(FaultKind::Disconnect) => Err("injected disconnect after InitProducerId".to_string()),
            _ => Ok(Some(response)),
        }
    }

    pub(crate) fn new_producer_id(&mut self) -> i64 {
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        id
    }

    // -----------------------------------------------------------------------------------------
    // Produce
    // -----------------------------------------------------------------------------------------

    fn produce(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: ProduceRequest = decode_body(frame, version, "Produce")?;
        let fault = self.take_fault(api_key::PRODUCE, broker);
        let injected = match fault {
            Some(FaultKind::Error(code)) => Some(code),
            _ => None,
        };
        let mut responses = Vec::new();
        let mut endpoints: BTreeMap<i32, NodeEndpoint> = BTreeMap::new();
        let mut failures = Vec::new();
        for t in &req.topic_data {
            let name: Option<String> = if version >= 13 {
                let id = *t.topic_id.as_bytes();
                self.topics.iter().find(|(_, topic)| topic.id == id).map(|(n, _)| n.clone())
            } else {
                Some(t.name.0.to_string())
            };
            let mut partition_responses = Vec::new();
            for p in &t.partition_data {
                let result = match injected {
                    Some(code) => Err(code),
                    None => self.produce_partition(broker, req.acks, name.as_deref(), p.index, &p.records),
                };
                let response = match result {
                    Ok(base_offset) => PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(0),
                    Err(code) => {
                        failures.push(format!("{}-{}: {code}", name.as_deref().unwrap_or("?"), p.index));
                        let mut response = PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1);
                        if code == ec::NOT_LEADER_OR_FOLLOWER && version >= 10 {
                            if let Some((leader, epoch)) =
                                name.as_deref().and_then(|n| self.leader(n, p.index))
                            {
                                let live = self.is_up(leader);
                                response.current_leader = LeaderIdAndEpoch::default()
                                    .with_leader_id(if live { leader } else { -1 }.into())
                                    .with_leader_epoch(epoch);
                                if live {
                                    endpoints.insert(
                                        leader,
                                        NodeEndpoint::default()
                                            .with_node_id(leader.into())
                                            .with_host(StrBytes::from_static_str(HOST))
                                            .with_port(i32::from(port_of(leader))),
                                    );
                                }
                            }
                        }
                        response
                    }
                };
                partition_responses.push(response);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partition_responses(partition_responses),
            );
        }
        if fault == Some(FaultKind::Disconnect) {
            return Err("injected disconnect after Produce".to_string());
        }
        if req.acks == 0 && !self.quirks.respond_to_acks0 {
            if failures.is_empty() {
                return Ok(None);
            }
            // Kafka closes the connection so that the client notices and refreshes metadata.
            return Err(format!("acks=0 produce failed ({}): closing", failures.join(", ")));
        }
        let body = ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(endpoints.into_values().collect());
        Ok(Some(encode_response(ApiKey::Produce, version, correlation_id, &body)))
    }

    /// Validates and appends one partition's batch; the base offset or an error code.
    fn produce_partition(
        &mut self,
        broker: i32,
        acks: i16,
        topic: Option<&str>,
        index: i32,
        records: &Option<Bytes>,
    ) -> Result<i64, i16> {
        if !matches!(acks, -1..=1) {
            return Err(ec::INVALID_REQUIRED_ACKS);
        }
        let Some(topic) = topic else {
            return Err(ec::UNKNOWN_TOPIC_ID);
        };
        let Some(leader) = self.leader(topic, index).map(|(leader, _)| leader) else {
            return Err(ec::UNKNOWN_TOPIC_OR_PARTITION);
        };
        // ProduceRequest.validateRecords: exactly one batch, magic 2. (Stricter than Kafka:
        // trailing bytes after the batch are rejected too.)
        let raw = records.as_ref().ok_or(ec::INVALID_RECORD)?;
        if raw.len() < LOG_OVERHEAD {
            return Err(ec::INVALID_RECORD);
        }
        let batch_len = i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
        if batch_len < (BATCH_OVERHEAD - LOG_OVERHEAD) as i32 {
            return Err(ec::CORRUPT_MESSAGE);
        }
        let total = LOG_OVERHEAD + batch_len as usize;
        if raw.len() < total || raw.len() > total {
            return Err(ec::INVALID_RECORD);
        }
        if raw[16] != 2 {
            return Err(ec::INVALID_RECORD);
        }
        if leader != broker {
            return Err(ec::NOT_LEADER_OR_FOLLOWER);
        }
        // UnifiedLog.analyzeAndValidateRecords.
        let base_offset = i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes"));
        if base_offset != 0 {
            return Err(ec::INVALID_RECORD);
        }
        if total > self.max_message_bytes {
            return Err(ec::MESSAGE_TOO_LARGE);
        }
        let set = RecordBatchDecoder::decode(&mut raw.clone()).map_err(|_| ec::CORRUPT_MESSAGE)?;
        let info = RecordBatchDecoder::decode_batch_info(&mut raw.clone())
            .ok()
            .and_then(|infos| infos.into_iter().next())
            .ok_or(ec::CORRUPT_MESSAGE)?;
        // LogValidator.validateBatch.
        let last_offset_delta = i32::from_be_bytes([raw[23], raw[24], raw[25], raw[26]]);
        let count = info.record_count;
        if count <= 0
            || i64::from(last_offset_delta) + 1 != i64::from(count)
            || set.records.len() != count as usize
        {
            return Err(ec::INVALID_RECORD);
        }
        if info.control {
            return Err(ec::INVALID_RECORD);
        }
        let pid = info.producer_id;
        let epoch = info.producer_epoch;
        let first_seq = info.base_sequence;
        if pid >= 0 && first_seq < 0 {
            return Err(ec::INVALID_RECORD);
        }
        if set.records.iter().enumerate().any(|(i, r)| r.offset != i as i64) {
            return Err(ec::INVALID_RECORD);
        }
        let last_seq = increment_sequence(first_seq, last_offset_delta);
        if info.transactional && self.txn.enabled {
            self.verify_transactional(topic, index, pid, epoch)?;
        }

        let quirks = self.quirks;
        let part = self.partition_mut(topic, index).expect("partition exists");
        if pid >= 0 {
            match check_sequence(quirks, part.producers.get(&pid), epoch, first_seq, last_seq) {
                SeqCheck::Append => {}
                SeqCheck::Duplicate(offset) if !quirks.duplicate_as_error => return Ok(offset),
                SeqCheck::Duplicate(_) => return Err(ec::DUPLICATE_SEQUENCE_NUMBER),
                SeqCheck::Error(code) => return Err(code),
            }
        }

        let base = part.next_offset;
        for (i, r) in set.records.iter().enumerate() {
            part.records.push(StoredRecord {
                offset: base + i as i64,
                key: r.key.as_ref().map(|b| b.to_vec()),
                value: r.value.as_ref().map(|b| b.to_vec()),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_ref().map(|b| b.to_vec())))
                    .collect(),
                timestamp: r.timestamp,
                producer_id: pid,
                producer_epoch: epoch,
                sequence: if pid >= 0 { increment_sequence(first_seq, i as i32) } else { -1 },
                transactional: info.transactional,
                txn: if info.transactional { TxnMark::Open } else { TxnMark::None },
            });
        }
        part.batches.push(StoredBatch {
            base_offset: base,
            record_count: count,
            compression: info.compression,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            transactional: info.transactional,
            bytes: raw.to_vec(),
        });
        part.next_offset += i64::from(count);
        if pid >= 0 {
            let entry =
                part.producers.entry(pid).or_insert(ProducerEntry { epoch, batches: VecDeque::new() });
            if entry.epoch != epoch {
                entry.epoch = epoch;
                entry.batches.clear();
            }
            if entry.batches.len() == BATCHES_TO_RETAIN {
                entry.batches.pop_front();
            }
            entry.batches.push_back(BatchMeta { first_seq, last_seq, first_offset: base });
        }
        Ok(base)
    }

    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Option<&Partition> {
        usize::try_from(partition).ok().and_then(|p| self.topics.get(topic)?.partitions.get(p))
    }

    pub(crate) fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        usize::try_from(partition).ok().and_then(|p| self.topics.get_mut(topic)?.partitions.get_mut(p))
    }
}

/// Kafka's duplicate detection and sequence validation for one batch of a producer
/// (`ProducerStateEntry.findDuplicateBatch`, `ProducerAppendInfo.checkProducerEpoch`,
/// `checkSequence`).
fn check_sequence(
    quirks: Quirks,
    entry: Option<&ProducerEntry>,
    epoch: i16,
    first_seq: i32,
    last_seq: i32,
) -> SeqCheck {
    let Some(entry) = entry else {
        // No state for this producer: Kafka accepts any sequence (KIP-360); before 2.5 it
        // answered UNKNOWN_PRODUCER_ID unless the sequence was 0.
        if quirks.unknown_producer_id && first_seq != 0 {
            return SeqCheck::Error(ec::UNKNOWN_PRODUCER_ID);
        }
        return SeqCheck::Append;
    };
    if entry.epoch == epoch {
        if let Some(dup) = entry.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq) {
            return SeqCheck::Duplicate(dup.first_offset);
        }
    }
    if epoch < entry.epoch {
        return SeqCheck::Error(ec::INVALID_PRODUCER_EPOCH);
    }
    if epoch != entry.epoch {
        return if first_seq == 0 {
            SeqCheck::Append
        } else {
            SeqCheck::Error(ec::OUT_OF_ORDER_SEQUENCE_NUMBER)
        };
    }
    match entry.batches.back() {
        Some(last) if !in_sequence(last.last_seq, first_seq) => {
            SeqCheck::Error(ec::OUT_OF_ORDER_SEQUENCE_NUMBER)
        }
        _ => SeqCheck::Append,
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

pub(crate) fn port_of(id: i32) -> u16 {
    BASE_PORT + id as u16
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// kafka-protocol's `Uuid` (from the `uuid` crate, which it does not re-export) from raw bytes.
fn kp_uuid<U: TryFrom<Vec<u8>>>(bytes: [u8; 16]) -> U
where
    U::Error: std::fmt::Debug,
{
    U::try_from(bytes.to_vec()).expect("16 bytes make a uuid")
}

/// Kafka's `SOFTWARE_NAME_VERSION_PATTERN`: `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_id(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && edge(b[0])
        && edge(b[b.len() - 1])
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// The error code at the start of a response frame's body (after a v0 response header), for
/// ApiVersions.
fn response_error_code(frame: &[u8]) -> Option<i16> {
    frame.get(8..10).map(|b| i16::from_be_bytes([b[0], b[1]]))
}

/// The user a SCRAM client-first names, for the log (`n=<user>` after the GS2 header).
fn scram_user(client_first: &[u8]) -> String {
    let text = String::from_utf8_lossy(client_first);
    text.split(',')
        .find_map(|f| f.strip_prefix("n="))
        .unwrap_or_default()
        .replace("=2C", ",")
        .replace("=3D", "=")
}

/// Decodes a request body; the whole frame must be consumed.
pub(crate) fn decode_body<T: Decodable>(mut frame: Bytes, version: i16, what: &str) -> Result<T, String> {
    let body =
        T::decode(&mut frame, version).map_err(|e| format!("malformed {what} v{version} body: {e:#}"))?;
    if !frame.is_empty() {
        return Err(format!("{} trailing bytes after the {what} v{version} body", frame.len()));
    }
    Ok(body)
}

/// A size-prefixed response frame. Encoding our own responses cannot fail unless the simulator
/// has a bug, which panics.
pub(crate) fn encode_response<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))
        .unwrap_or_else(|e| panic!("sim bug: {api:?} v{version} response header: {e:#}"));
    body.encode(&mut buf, version).unwrap_or_else(|e| panic!("sim bug: {api:?} v{version} response: {e:#}"));
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}
