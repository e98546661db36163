//! Golden vectors: byte-exact frames per API and version, kept in `tests/golden/*.hex`.
//!
//! The expected bytes come from an independent codec — the `kafka-protocol` crate encoding the
//! same logical message — never from picokafka's own encoder. The one exception is the LZ4 record
//! batch: LZ4 leaves the compressor free to choose its matches and frame options, so
//! kafka-protocol (C liblz4, with a content checksum) and picokafka (`lz4_flex`, no checksums)
//! legitimately produce different bytes for the same records. `record_batch_lz4_000.hex` therefore
//! holds picokafka's bytes, and they are accepted only after kafka-protocol's `RecordBatchDecoder`
//! has read the expected records back from them — when blessing and on every run.
//!
//! Every request file is a whole frame (`i32` size, request header, body) with correlation id
//! [`CORRELATION_ID`] and client id [`CLIENT_ID`]; picokafka must encode exactly those bytes.
//! Every response file is a whole frame (`i32` size, response header, body) as a broker sends it;
//! picokafka must decode it into the expected fields. A test also checks that every file still
//! equals kafka-protocol's encoding, so a file edited by hand (or a kafka-protocol upgrade that
//! changes its output) is caught rather than trusted.
//!
//! Regenerate the files (after changing the logical messages below) with
//!
//! ```text
//! PICOKAFKA_BLESS=1 cargo test -p picokafka-tests --test golden -- --ignored bless
//! ```
//!
//! Files are lowercase hex, 64 characters a line; readers ignore whitespace.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    self as kp, api_versions_response as kav, metadata_request as kmreq, metadata_response as kmres,
    produce_request as kpreq, produce_response as kpres,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use picokafka::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use picokafka::protocol::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use picokafka::protocol::metadata::{MetadataRequest, MetadataResponse};
use picokafka::protocol::produce::{PartitionData, ProduceRequest, ProduceResponse, TopicData};
use picokafka::protocol::record_batch::{
    BatchBuilder, Compression, Header, ProducerState, RecordBatch, HEADER_LEN,
};
use picokafka::protocol::{encode_request, ApiKey, Reader, Request, ResponseHeader, Writer};

const CORRELATION_ID: i32 = 0x0102_0304;
const CLIENT_ID: &str = "picokafka";

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

// ---------------------------------------------------------------------------------------------
// Hex files
// ---------------------------------------------------------------------------------------------

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + bytes.len() / 32 + 1);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 32 == 0 {
            out.push('\n');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out.push('\n');
    out
}

fn from_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(16).unwrap_or_else(|| panic!("not a hex digit: {c:?}")) as u8)
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

fn read_vector(name: &str) -> Vec<u8> {
    let path = golden_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; bless with PICOKAFKA_BLESS=1 cargo test -p picokafka-tests --test golden -- --ignored bless", path.display())
    });
    from_hex(&text)
}

/// Where two byte strings first differ, for readable failures.
fn diff(expected: &[u8], actual: &[u8]) -> String {
    let at =
        expected.iter().zip(actual).position(|(a, b)| a != b).unwrap_or(expected.len().min(actual.len()));
    let window = |b: &[u8]| to_hex(&b[at.saturating_sub(8).min(b.len())..(at + 16).min(b.len())]);
    format!(
        "lengths {} vs {}, first difference at byte {at}: expected …{} actual …{}",
        expected.len(),
        actual.len(),
        window(expected).trim(),
        window(actual).trim()
    )
}

// ---------------------------------------------------------------------------------------------
// The vectors
// ---------------------------------------------------------------------------------------------

/// What picokafka must do with a file.
enum Check {
    /// Encode exactly these bytes (picokafka's encoding of the same logical message).
    Encode(Vec<u8>),
    /// Decode the file and find the expected fields (the closure panics otherwise).
    Decode(DecodeCheck),
}

type DecodeCheck = Box<dyn Fn(&[u8])>;

struct Vector {
    /// File stem: `<api>_<request|response>_v<version>_<nnn>`, or `record_batch[_lz4]_<nnn>`.
    name: String,
    /// The independent encoding: what the file must hold.
    reference: Vec<u8>,
    check: Check,
}

impl core::fmt::Debug for Vector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vector").field("name", &self.name).finish_non_exhaustive()
    }
}

fn vectors() -> Vec<Vector> {
    let mut v = record_batch_vectors();
    v.extend(api_versions_vectors());
    v.extend(metadata_vectors());
    v.extend(init_producer_id_vectors());
    v.extend(produce_vectors());
    v
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// kafka-protocol's `Uuid` (not re-exported) from raw bytes.
fn uuid<U: TryFrom<Vec<u8>>>(bytes: [u8; 16]) -> U
where
    U::Error: core::fmt::Debug,
{
    U::try_from(bytes.to_vec()).expect("16 bytes make a uuid")
}

fn kp_key(key: ApiKey) -> kp::ApiKey {
    kp::ApiKey::try_from(i16::from(key)).expect("known key")
}

fn kp_encode<T: Encodable>(msg: &T, version: i16, out: &mut BytesMut) {
    msg.encode(out, version).unwrap_or_else(|e| panic!("kafka-protocol cannot encode v{version}: {e:#}"));
}

fn with_size_prefix(body: BytesMut) -> Vec<u8> {
    let mut frame = i32::try_from(body.len()).expect("small").to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A request frame as kafka-protocol writes it.
fn kp_request<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let api = kp_key(key);
    let header = kp::RequestHeader::default()
        .with_request_api_key(i16::from(key))
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(s(CLIENT_ID)));
    let mut buf = BytesMut::new();
    kp_encode(&header, api.request_header_version(version), &mut buf);
    kp_encode(body, version, &mut buf);
    with_size_prefix(buf)
}

/// A response frame as kafka-protocol (acting as a broker) writes it.
fn kp_response<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let header = kp::ResponseHeader::default().with_correlation_id(CORRELATION_ID);
    let mut buf = BytesMut::new();
    kp_encode(&header, kp_key(key).response_header_version(version), &mut buf);
    kp_encode(body, version, &mut buf);
    with_size_prefix(buf)
}

/// A request frame as picokafka writes it.
fn our_request<R: Request>(version: i16, body: &R) -> Vec<u8> {
    let mut counter = Writer::counting();
    let len = encode_request(&mut counter, version, CORRELATION_ID, Some(CLIENT_ID), body);
    assert_eq!(counter.finish(), Ok(len));
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    encode_request(&mut w, version, CORRELATION_ID, Some(CLIENT_ID), body);
    assert_eq!(w.finish(), Ok(len));
    buf
}

/// Our side of a response frame: checks the size prefix and header, returns the body.
fn our_response_body(frame: &[u8], key: ApiKey, version: i16) -> &[u8] {
    let mut r = Reader::new(frame);
    let size = r.get_i32().expect("size prefix");
    assert_eq!(usize::try_from(size).ok(), Some(r.remaining()), "size prefix");
    let header = ResponseHeader::decode(&mut r, key, version).expect("response header");
    assert_eq!(header.correlation_id, CORRELATION_ID);
    assert_eq!(header.tags.iter().count(), 0);
    r.rest()
}

fn name(api: &str, dir: &str, version: i16, n: u32) -> String {
    format!("{api}_{dir}_v{version}_{n:03}")
}

// --- record batches --------------------------------------------------------------------------

type GoldenRecord =
    (i64, Option<&'static [u8]>, Option<&'static [u8]>, &'static [(&'static str, Option<&'static [u8]>)]);

/// Non-decreasing timestamps: both encoders then pick the same base timestamp.
const RECORDS: [GoldenRecord; 3] = [
    (
        1_700_000_000_000,
        Some(b"key-0"),
        Some(b"hello kafka, hello kafka, hello kafka, hello kafka, hello kafka, hello kafka"),
        &[("trace-id", Some(b"abc123")), ("null-header", None)],
    ),
    (1_700_000_000_007, None, Some(b"second record, second record, second record, second record"), &[]),
    (1_700_000_000_007, Some(b""), None, &[("\u{43a}\u{43b}\u{44e}\u{447}", Some(b""))]),
];

const PRODUCER: ProducerState =
    ProducerState { producer_id: 4242, producer_epoch: 3, base_sequence: 17, transactional: false };

fn our_batch(compression: Compression) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let mut b = BatchBuilder::new(&mut buf).expect("room");
    for (ts, key, value, headers) in RECORDS {
        let headers: Vec<Header<'_>> = headers.iter().map(|&(key, value)| Header { key, value }).collect();
        b.push(ts, key, value, &headers).expect("room");
    }
    let mut scratch = vec![0u8; compression.scratch_len(b.len() - HEADER_LEN)];
    let n = b.finish(compression, PRODUCER, &mut scratch).expect("finish");
    buf.truncate(n);
    buf
}

fn kp_records() -> Vec<KpRecord> {
    RECORDS
        .iter()
        .enumerate()
        .map(|(i, (ts, key, value, headers))| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: PRODUCER.producer_id,
            producer_epoch: PRODUCER.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: PRODUCER.base_sequence + i as i32,
            timestamp: *ts,
            key: key.map(Bytes::from_static),
            value: value.map(Bytes::from_static),
            headers: headers.iter().map(|(k, v)| (s(k), v.map(Bytes::from_static))).collect(),
        })
        .collect()
}

/// kafka-protocol's encoding of the golden records.
fn kp_plain_batch() -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &kp_records(),
        &RecordEncodeOptions { version: 2, compression: KpCompression::None },
    )
    .expect("encode");
    buf.to_vec()
}

/// Our LZ4 batch, accepted as a reference only once kafka-protocol reads the golden records
/// back from it.
fn verified_lz4_batch() -> Vec<u8> {
    let batch = our_batch(Compression::Lz4);
    assert_kp_reads_golden_records(&batch, KpCompression::Lz4);
    batch
}

fn assert_kp_reads_golden_records(batch: &[u8], compression: KpCompression) {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap_or_else(|e| panic!("kafka-protocol: {e:#}"));
    assert!(buf.is_empty());
    assert_eq!(set.compression, compression);
    assert_eq!(set.records, kp_records(), "kafka-protocol reads the golden records");
}

/// picokafka's decoder reads the golden records from `batch`.
fn assert_we_read_golden_records(batch: &[u8], compression: Compression) {
    let (b, rest) = RecordBatch::decode(batch).expect("our decoder");
    assert!(rest.is_empty());
    assert_eq!(b.compression(), Some(compression));
    assert_eq!(
        (b.base_offset, b.partition_leader_epoch, b.last_offset_delta, b.record_count),
        (0, -1, RECORDS.len() as i32 - 1, RECORDS.len() as i32)
    );
    assert_eq!((b.producer_id, b.producer_epoch, b.base_sequence), (4242, 3, 17));
    assert_eq!((b.base_timestamp, b.max_timestamp), (RECORDS[0].0, RECORDS[2].0));
    let mut out = vec![0u8; 1024];
    let records = b.decompress_records(&mut out).expect("records");
    assert_eq!(records.len(), RECORDS.len());
    for (i, (got, (ts, key, value, headers))) in records.iter().zip(RECORDS).enumerate() {
        assert_eq!(got.offset_delta, i as i32);
        assert_eq!(b.base_timestamp + got.timestamp_delta, ts);
        assert_eq!((got.key, got.value), (key, value));
        let got_headers: Vec<(&str, Option<&[u8]>)> = got.headers.iter().map(|h| (h.key, h.value)).collect();
        assert_eq!(got_headers, headers);
    }
}

fn record_batch_vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "record_batch_000".into(),
            reference: kp_plain_batch(),
            check: Check::Encode(our_batch(Compression::None)),
        },
        Vector {
            name: "record_batch_lz4_000".into(),
            // Ours, verified by kafka-protocol: see the module docs.
            reference: verified_lz4_batch(),
            check: Check::Encode(our_batch(Compression::Lz4)),
        },
    ]
}

// --- ApiVersions -------------------------------------------------------------------------------

const SOFTWARE_NAME: &str = "picokafka";
const SOFTWARE_VERSION: &str = "0.1.0";

/// (api key, min, max) as a broker might list them.
const BROKER_APIS: [(i16, i16, i16); 5] = [(0, 3, 11), (3, 1, 12), (18, 0, 4), (22, 0, 5), (26, 0, 4)];

fn kp_api_versions_response(version: i16) -> kp::ApiVersionsResponse {
    let msg = kp::ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(
            BROKER_APIS
                .iter()
                .map(|&(k, min, max)| {
                    kav::ApiVersion::default().with_api_key(k).with_min_version(min).with_max_version(max)
                })
                .collect(),
        )
        .with_throttle_time_ms(7);
    if version < 3 {
        return msg;
    }
    msg.with_supported_features(vec![kav::SupportedFeatureKey::default()
        .with_name(s("metadata.version"))
        .with_min_version(1)
        .with_max_version(20)])
        .with_finalized_features_epoch(42)
        .with_finalized_features(vec![kav::FinalizedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_max_version_level(20)
            .with_min_version_level(20)])
}

fn api_versions_vectors() -> Vec<Vector> {
    let mut out = vec![];
    for v in 0..=4 {
        let kp_req = if v >= 3 {
            kp::ApiVersionsRequest::default()
                .with_client_software_name(s(SOFTWARE_NAME))
                .with_client_software_version(s(SOFTWARE_VERSION))
        } else {
            kp::ApiVersionsRequest::default()
        };
        let ours = ApiVersionsRequest {
            client_software_name: SOFTWARE_NAME,
            client_software_version: SOFTWARE_VERSION,
        };
        out.push(Vector {
            name: name("api_versions", "request", v, 0),
            reference: kp_request(ApiKey::ApiVersions, v, &kp_req),
            check: Check::Encode(our_request(v, &ours)),
        });
        out.push(Vector {
            name: name("api_versions", "response", v, 0),
            reference: kp_response(ApiKey::ApiVersions, v, &kp_api_versions_response(v)),
            check: Check::Decode(Box::new(move |frame| {
                let got = ApiVersionsResponse::decode(our_response_body(frame, ApiKey::ApiVersions, v), v)
                    .expect("decode");
                assert_eq!(got.parsed_version, v);
                assert_eq!(i16::from(got.error_code), 0);
                let keys: Vec<_> = got
                    .api_keys
                    .iter()
                    .map(|r| (i16::from(r.api_key), r.min_version, r.max_version))
                    .collect();
                assert_eq!(keys, BROKER_APIS);
                assert_eq!(got.throttle_time_ms, if v >= 1 { 7 } else { 0 });
                let tags: Vec<(u32, Vec<u8>)> = got.tags.iter().map(|(t, d)| (t, d.to_vec())).collect();
                if v >= 3 {
                    assert_eq!(tags.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 1, 2]);
                    assert_eq!(tags[1].1, 42i64.to_be_bytes());
                } else {
                    assert!(tags.is_empty());
                }
                assert_eq!(got.negotiate(ApiKey::Produce, 3, 11), Some(11));
                assert_eq!(got.negotiate(ApiKey::Metadata, 1, 12), Some(12));
                assert_eq!(got.negotiate(ApiKey::InitProducerId, 0, 5), Some(5));
            })),
        });
    }
    // A broker that does not speak the version asked for answers UNSUPPORTED_VERSION (35) with a
    // v0 body (KIP-511): the file is a v0 frame, decoded as the answer to a v4 (and v3) request.
    let fallback = kp::ApiVersionsResponse::default().with_error_code(35).with_api_keys(
        [(18, 0, 2), (0, 3, 9)]
            .iter()
            .map(|&(k, min, max)| {
                kav::ApiVersion::default().with_api_key(k).with_min_version(min).with_max_version(max)
            })
            .collect(),
    );
    out.push(Vector {
        name: name("api_versions", "response", 0, 1),
        reference: kp_response(ApiKey::ApiVersions, 0, &fallback),
        check: Check::Decode(Box::new(|frame| {
            for asked in [4, 3] {
                let got =
                    ApiVersionsResponse::decode(our_response_body(frame, ApiKey::ApiVersions, asked), asked)
                        .expect("v0 fallback");
                assert_eq!(got.parsed_version, 0);
                assert_eq!(i16::from(got.error_code), 35);
                assert_eq!(got.negotiate(ApiKey::ApiVersions, 0, 4), Some(2));
                assert_eq!(got.negotiate(ApiKey::Produce, 3, 11), Some(9));
            }
        })),
    });
    out
}

// --- Metadata ----------------------------------------------------------------------------------

const TOPICS: [&str; 2] = ["events", "metrics"];

const BROKERS: [(i32, &str, i32, Option<&str>); 2] =
    [(1, "broker-1.local", 9092, Some("rack-a")), (2, "broker-2.local", 9093, None)];
const CLUSTER_ID: &str = "pk-cluster-0001";
const TOPIC_ID: [u8; 16] = *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff";
/// (error, index, leader, leader epoch, replicas, isr, offline)
type GoldenPartition = (i16, i32, i32, i32, &'static [i32], &'static [i32], &'static [i32]);
const PARTITIONS: [GoldenPartition; 3] = [
    (0, 0, 1, 5, &[1, 2], &[1, 2], &[]),
    (0, 1, 2, 7, &[2, 1], &[2], &[1]),
    (5, 2, -1, 3, &[1, 2], &[], &[1, 2]),
];

fn kp_metadata_response(version: i16) -> kp::MetadataResponse {
    let ids = |b: &[i32]| b.iter().map(|&i| kp::BrokerId(i)).collect::<Vec<_>>();
    kp::MetadataResponse::default()
        .with_throttle_time_ms(11)
        .with_brokers(
            BROKERS
                .iter()
                .map(|&(id, host, port, rack)| {
                    kmres::MetadataResponseBroker::default()
                        .with_node_id(kp::BrokerId(id))
                        .with_host(s(host))
                        .with_port(port)
                        .with_rack(rack.map(s))
                })
                .collect(),
        )
        .with_cluster_id(Some(s(CLUSTER_ID)))
        .with_controller_id(kp::BrokerId(2))
        .with_topics(vec![
            kmres::MetadataResponseTopic::default()
                .with_error_code(0)
                .with_name(Some(kp::TopicName(s("events"))))
                .with_topic_id(uuid(TOPIC_ID))
                .with_is_internal(false)
                .with_partitions(
                    PARTITIONS
                        .iter()
                        .map(|&(error, index, leader, epoch, replicas, isr, offline)| {
                            kmres::MetadataResponsePartition::default()
                                .with_error_code(error)
                                .with_partition_index(index)
                                .with_leader_id(kp::BrokerId(leader))
                                .with_leader_epoch(epoch)
                                .with_replica_nodes(ids(replicas))
                                .with_isr_nodes(ids(isr))
                                .with_offline_replicas(ids(offline))
                        })
                        .collect(),
                )
                .with_topic_authorized_operations(if version >= 8 { 0x0df8 } else { i32::MIN }),
            kmres::MetadataResponseTopic::default()
                .with_error_code(3)
                .with_name(Some(kp::TopicName(s("metrics"))))
                .with_is_internal(false)
                .with_topic_authorized_operations(if version >= 8 { 0 } else { i32::MIN }),
        ])
        .with_cluster_authorized_operations(if (8..=10).contains(&version) { 0x0ff0 } else { i32::MIN })
}

fn check_metadata_response(frame: &[u8], v: i16) {
    let got = MetadataResponse::decode(our_response_body(frame, ApiKey::Metadata, v), v).expect("decode");
    assert_eq!(got.throttle_time_ms, if v >= 3 { 11 } else { 0 });
    let brokers: Vec<(i32, &str, i32, Option<&str>)> =
        got.brokers.iter().map(|b| (b.node_id, b.host, b.port, b.rack)).collect();
    assert_eq!(brokers, BROKERS);
    assert_eq!(got.cluster_id, (v >= 2).then_some(CLUSTER_ID));
    assert_eq!(got.controller_id, 2);
    let topics: Vec<_> = got.topics.iter().collect();
    assert_eq!(topics.len(), 2);
    let events = &topics[0];
    assert_eq!((i16::from(events.error_code), events.name, events.is_internal), (0, Some("events"), false));
    assert_eq!(events.topic_id, if v >= 10 { TOPIC_ID } else { [0; 16] });
    type Ids = Vec<i32>;
    let partitions: Vec<(i16, i32, i32, i32, Ids, Ids, Ids)> = events
        .partitions
        .iter()
        .map(|p| {
            (
                i16::from(p.error_code),
                p.partition_index,
                p.leader_id,
                p.leader_epoch,
                p.replicas.iter().collect(),
                p.isr.iter().collect(),
                p.offline_replicas.iter().collect(),
            )
        })
        .collect();
    // Offline replicas exist from v5 on.
    let want: Vec<(i16, i32, i32, i32, Ids, Ids, Ids)> = PARTITIONS
        .iter()
        .map(|&(e, i, l, epoch, r, isr, offline)| {
            let epoch = if v >= 7 { epoch } else { -1 };
            let offline = if v >= 5 { offline.to_vec() } else { vec![] };
            (e, i, l, epoch, r.to_vec(), isr.to_vec(), offline)
        })
        .collect();
    assert_eq!(partitions, want);
    let metrics = &topics[1];
    assert_eq!(
        (i16::from(metrics.error_code), metrics.name, metrics.partitions.len()),
        (3, Some("metrics"), 0)
    );
    assert_eq!(got.topic("metrics").map(|t| t.topic_id), Some([0; 16]));
    assert_eq!(got.broker(2).map(|b| b.port), Some(9093));
}

fn metadata_vectors() -> Vec<Vector> {
    let mut out = vec![];
    for v in 1..=12 {
        // Named topics; auto-creation off (before v4 the field does not exist and brokers always
        // auto-create, which kafka-protocol expresses as `true`).
        let kp_req = kp::MetadataRequest::default()
            .with_topics(Some(
                TOPICS
                    .iter()
                    .map(|t| kmreq::MetadataRequestTopic::default().with_name(Some(kp::TopicName(s(t)))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(v < 4);
        let ours = MetadataRequest { topics: Some(TOPICS.iter().copied()), allow_auto_topic_creation: false };
        out.push(Vector {
            name: name("metadata", "request", v, 0),
            reference: kp_request(ApiKey::Metadata, v, &kp_req),
            check: Check::Encode(our_request(v, &ours)),
        });
        // All topics.
        let kp_all = kp::MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(true);
        let ours_all =
            MetadataRequest::<core::iter::Empty<&str>> { topics: None, allow_auto_topic_creation: true };
        out.push(Vector {
            name: name("metadata", "request", v, 1),
            reference: kp_request(ApiKey::Metadata, v, &kp_all),
            check: Check::Encode(our_request(v, &ours_all)),
        });
        out.push(Vector {
            name: name("metadata", "response", v, 0),
            reference: kp_response(ApiKey::Metadata, v, &kp_metadata_response(v)),
            check: Check::Decode(Box::new(move |frame| check_metadata_response(frame, v))),
        });
    }
    out
}

// --- InitProducerId ----------------------------------------------------------------------------

fn init_producer_id_vectors() -> Vec<Vector> {
    let mut out = vec![];
    for v in 0..=5 {
        // An idempotent producer asking for a new id.
        let kp_new = kp::InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kp::ProducerId(-1))
            .with_producer_epoch(-1);
        let ours_new = InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        out.push(Vector {
            name: name("init_producer_id", "request", v, 0),
            reference: kp_request(ApiKey::InitProducerId, v, &kp_new),
            check: Check::Encode(our_request(v, &ours_new)),
        });
        // A transactional producer bumping its epoch (the id and epoch exist from v3).
        let (pid, epoch) = if v >= 3 { (1234, 5) } else { (-1, -1) };
        let kp_txn = kp::InitProducerIdRequest::default()
            .with_transactional_id(Some(kp::TransactionalId(s("txn-1"))))
            .with_transaction_timeout_ms(15_000)
            .with_producer_id(kp::ProducerId(pid))
            .with_producer_epoch(epoch);
        let ours_txn = InitProducerIdRequest {
            transactional_id: Some("txn-1"),
            transaction_timeout_ms: 15_000,
            producer_id: 1234,
            producer_epoch: 5,
        };
        out.push(Vector {
            name: name("init_producer_id", "request", v, 1),
            reference: kp_request(ApiKey::InitProducerId, v, &kp_txn),
            check: Check::Encode(our_request(v, &ours_txn)),
        });
        let kp_resp = kp::InitProducerIdResponse::default()
            .with_throttle_time_ms(3)
            .with_error_code(0)
            .with_producer_id(kp::ProducerId(4242))
            .with_producer_epoch(3);
        out.push(Vector {
            name: name("init_producer_id", "response", v, 0),
            reference: kp_response(ApiKey::InitProducerId, v, &kp_resp),
            check: Check::Decode(Box::new(move |frame| {
                let got =
                    InitProducerIdResponse::decode(our_response_body(frame, ApiKey::InitProducerId, v), v)
                        .expect("decode");
                assert_eq!(
                    (got.throttle_time_ms, i16::from(got.error_code), got.producer_id, got.producer_epoch),
                    (3, 0, 4242, 3)
                );
                assert_eq!(got.tags.iter().count(), 0);
            })),
        });
    }
    out
}

// --- Produce -----------------------------------------------------------------------------------

/// events/0: the plain batch, events/2: the LZ4 batch, metrics/1: the plain batch.
fn kp_produce_request(plain: &[u8], lz4: &[u8]) -> kp::ProduceRequest {
    let part = |index: i32, records: &[u8]| {
        kpreq::PartitionProduceData::default()
            .with_index(index)
            .with_records(Some(Bytes::copy_from_slice(records)))
    };
    kp::ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            kpreq::TopicProduceData::default()
                .with_name(kp::TopicName(s("events")))
                .with_partition_data(vec![part(0, plain), part(2, lz4)]),
            kpreq::TopicProduceData::default()
                .with_name(kp::TopicName(s("metrics")))
                .with_partition_data(vec![part(1, plain)]),
        ])
}

fn our_produce_request(version: i16) -> Vec<u8> {
    let plain = our_batch(Compression::None);
    let lz4 = our_batch(Compression::Lz4);
    let events = [PartitionData { index: 0, records: &plain }, PartitionData { index: 2, records: &lz4 }];
    let metrics = [PartitionData { index: 1, records: &plain }];
    let topics = [
        TopicData { name: "events", partitions: &events },
        TopicData { name: "metrics", partitions: &metrics },
    ];
    our_request(
        version,
        &ProduceRequest { transactional_id: None, acks: -1, timeout_ms: 30_000, topics: &topics },
    )
}

/// (index, error, base offset, log append time, log start offset, record errors, error message,
/// current leader)
type GoldenPartitionResponse = (
    i32,
    i16,
    i64,
    i64,
    i64,
    &'static [(i32, Option<&'static str>)],
    Option<&'static str>,
    Option<(i32, i32)>,
);
const PRODUCE_RESULTS: [GoldenPartitionResponse; 3] = [
    (0, 0, 100, -1, 0, &[], None, None),
    (1, 87, -1, -1, -1, &[(0, Some("bad record")), (2, None)], Some("records rejected"), None),
    (2, 6, -1, -1, -1, &[], None, Some((3, 9))),
];
const ENDPOINTS: [(i32, &str, i32, Option<&str>); 1] = [(3, "broker-3.local", 9094, Some("rack-c"))];

fn kp_produce_response(v: i16) -> kp::ProduceResponse {
    let partitions = PRODUCE_RESULTS
        .iter()
        .map(|&(index, error, base, append, start, record_errors, message, leader)| {
            let mut p = kpres::PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(error)
                .with_base_offset(base)
                .with_log_append_time_ms(append)
                .with_log_start_offset(start);
            if v >= 8 {
                p = p
                    .with_record_errors(
                        record_errors
                            .iter()
                            .map(|&(i, m)| {
                                kpres::BatchIndexAndErrorMessage::default()
                                    .with_batch_index(i)
                                    .with_batch_index_error_message(m.map(s))
                            })
                            .collect(),
                    )
                    .with_error_message(message.map(s));
            }
            if let (true, Some((id, epoch))) = (v >= 10, leader) {
                p = p.with_current_leader(
                    kpres::LeaderIdAndEpoch::default()
                        .with_leader_id(kp::BrokerId(id))
                        .with_leader_epoch(epoch),
                );
            }
            p
        })
        .collect();
    let endpoints = if v >= 10 {
        ENDPOINTS
            .iter()
            .map(|&(id, host, port, rack)| {
                kpres::NodeEndpoint::default()
                    .with_node_id(kp::BrokerId(id))
                    .with_host(s(host))
                    .with_port(port)
                    .with_rack(rack.map(s))
            })
            .collect()
    } else {
        vec![]
    };
    kp::ProduceResponse::default()
        .with_responses(vec![
            kpres::TopicProduceResponse::default()
                .with_name(kp::TopicName(s("events")))
                .with_partition_responses(partitions),
            kpres::TopicProduceResponse::default().with_name(kp::TopicName(s("metrics"))),
        ])
        .with_throttle_time_ms(0)
        .with_node_endpoints(endpoints)
}

fn check_produce_response(frame: &[u8], v: i16) {
    let got = ProduceResponse::decode(our_response_body(frame, ApiKey::Produce, v), v).expect("decode");
    assert_eq!(got.throttle_time_ms, 0);
    let topics: Vec<_> = got.responses.iter().collect();
    assert_eq!(topics.iter().map(|t| t.name).collect::<Vec<_>>(), ["events", "metrics"]);
    assert!(topics[1].partitions.is_empty());
    let partitions: Vec<_> = topics[0].partitions.iter().collect();
    assert_eq!(partitions.len(), PRODUCE_RESULTS.len());
    for (p, &(index, error, base, append, start, record_errors, message, leader)) in
        partitions.iter().zip(&PRODUCE_RESULTS)
    {
        assert_eq!(
            (p.index, i16::from(p.error_code), p.base_offset, p.log_append_time_ms),
            (index, error, base, append)
        );
        assert_eq!(p.log_start_offset, if v >= 5 { start } else { -1 });
        let errors: Vec<(i32, Option<&str>)> =
            p.record_errors.iter().map(|e| (e.batch_index, e.message)).collect();
        if v >= 8 {
            assert_eq!(errors, record_errors);
            assert_eq!(p.error_message, message);
        } else {
            assert!(errors.is_empty());
            assert_eq!(p.error_message, None);
        }
        let want_leader = leader.filter(|_| v >= 10);
        assert_eq!(p.current_leader.map(|l| (l.leader_id, l.leader_epoch)), want_leader);
    }
    let endpoints: Vec<(i32, &str, i32, Option<&str>)> =
        got.node_endpoints.iter().map(|e| (e.node_id, e.host, e.port, e.rack)).collect();
    assert_eq!(endpoints, if v >= 10 { ENDPOINTS.to_vec() } else { vec![] });
}

fn produce_vectors() -> Vec<Vector> {
    let plain = kp_plain_batch();
    let lz4 = verified_lz4_batch();
    let mut out = vec![];
    for v in 3..=11 {
        out.push(Vector {
            name: name("produce", "request", v, 0),
            reference: kp_request(ApiKey::Produce, v, &kp_produce_request(&plain, &lz4)),
            check: Check::Encode(our_produce_request(v)),
        });
        out.push(Vector {
            name: name("produce", "response", v, 0),
            reference: kp_response(ApiKey::Produce, v, &kp_produce_response(v)),
            check: Check::Decode(Box::new(move |frame| check_produce_response(frame, v))),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Runs the checks of every vector whose name starts with `prefix`; reports all failures at once.
fn run(prefix: &str) {
    let mut failures = vec![];
    let mut count = 0;
    for vector in vectors().into_iter().filter(|v| v.name.starts_with(prefix)) {
        count += 1;
        let file = read_vector(&vector.name);
        match &vector.check {
            Check::Encode(ours) => {
                if *ours != file {
                    failures.push(format!(
                        "{}: picokafka encodes differently: {}",
                        vector.name,
                        diff(&file, ours)
                    ));
                }
            }
            Check::Decode(check) => {
                let outcome = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| check(&file)));
                if outcome.is_err() {
                    failures
                        .push(format!("{}: picokafka decodes it wrongly (see the panic above)", vector.name));
                }
            }
        }
    }
    assert!(count > 0, "no vectors named {prefix}*");
    assert!(failures.is_empty(), "{} of {count} vectors failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn record_batches() {
    run("record_batch");
    // Beyond the bytes: both decoders read the golden records from both files.
    let plain = read_vector("record_batch_000");
    let lz4 = read_vector("record_batch_lz4_000");
    assert_kp_reads_golden_records(&plain, KpCompression::None);
    assert_kp_reads_golden_records(&lz4, KpCompression::Lz4);
    assert_we_read_golden_records(&plain, Compression::None);
    assert_we_read_golden_records(&lz4, Compression::Lz4);
}

#[test]
fn api_versions() {
    run("api_versions_");
}

#[test]
fn metadata() {
    run("metadata_");
}

#[test]
fn init_producer_id() {
    run("init_producer_id_");
}

#[test]
fn produce() {
    run("produce_");
}

#[test]
fn files_are_the_independent_encodings_and_nothing_else() {
    let vectors = vectors();
    let mut stale = vec![];
    for v in &vectors {
        let file = read_vector(&v.name);
        if file != v.reference {
            stale.push(format!("{}: {}", v.name, diff(&v.reference, &file)));
        }
        let text = std::fs::read_to_string(golden_dir().join(format!("{}.hex", v.name))).expect("read");
        assert!(
            text.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c.is_whitespace()),
            "{}: lowercase hex only",
            v.name
        );
    }
    assert!(
        stale.is_empty(),
        "files differ from kafka-protocol's encoding (re-bless?):\n{}",
        stale.join("\n")
    );

    let expected: BTreeSet<String> = vectors.iter().map(|v| format!("{}.hex", v.name)).collect();
    assert_eq!(expected.len(), vectors.len(), "vector names are unique");
    let present: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hex"))
        .collect();
    let stray: Vec<_> = present.difference(&expected).collect();
    assert!(stray.is_empty(), "files no vector describes: {stray:?}");
    // One vector per API, direction and version at least.
    for (api, versions) in
        [("api_versions", 0..=4), ("metadata", 1..=12), ("init_producer_id", 0..=5), ("produce", 3..=11)]
    {
        for v in versions {
            for dir in ["request", "response"] {
                let n = format!("{}.hex", name(api, dir, v, 0));
                assert!(expected.contains(&n), "{n} missing");
            }
        }
    }
}

/// Writes every file from kafka-protocol's encodings (and the verified LZ4 batch).
#[test]
#[ignore = "writes tests/golden/*.hex: PICOKAFKA_BLESS=1 cargo test -p picokafka-tests --test golden -- --ignored bless"]
fn bless() {
    assert_eq!(
        std::env::var("PICOKAFKA_BLESS").as_deref(),
        Ok("1"),
        "set PICOKAFKA_BLESS=1 to overwrite the golden files"
    );
    let dir = golden_dir();
    std::fs::create_dir_all(&dir).expect("create tests/golden");
    for entry in std::fs::read_dir(&dir).expect("read tests/golden") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "hex") {
            std::fs::remove_file(&path).expect("remove old vector");
        }
    }
    for v in vectors() {
        std::fs::write(dir.join(format!("{}.hex", v.name)), to_hex(&v.reference)).expect("write vector");
    }
}
