//! A second codec checks ours.
//!
//! The `kafka-protocol` crate (generated from Kafka's own JSON message schemas, written by other
//! people) is the referee, for every API and version picokafka speaks:
//!
//! - requests picokafka encodes are decoded by kafka-protocol — size prefix, request header at the
//!   header version kafka-protocol derives, body — and every field is compared;
//! - responses kafka-protocol encodes (it has the broker side too) are decoded by picokafka, and
//!   every field picokafka exposes is compared;
//! - record batches built by picokafka's `BatchBuilder` are read by kafka-protocol's
//!   `RecordBatchDecoder` (whose LZ4 path is the C reference liblz4, through the `lz4` crate), and
//!   batches kafka-protocol encodes (uncompressed and LZ4) are read by picokafka;
//! - every picokafka decoder is total: arbitrary bytes, truncations and mutations of valid
//!   encodings give `Ok` or `Err`, never a panic.
//!
//! Proptest case counts are kept small so that the whole file runs in a few seconds.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    self as kp, add_partitions_to_txn_response as kaptres, api_versions_response as kav,
    find_coordinator_response as kfcres, metadata_response as kmres, produce_response as kpres,
    txn_offset_commit_response as ktocres,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use picokafka::protocol::add_offsets_to_txn::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use picokafka::protocol::add_partitions_to_txn::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use picokafka::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use picokafka::protocol::crc::crc32c;
use picokafka::protocol::end_txn::{EndTxnRequest, EndTxnResponse};
use picokafka::protocol::find_coordinator::{
    Coordinator, CoordinatorType, FindCoordinatorRequest, FindCoordinatorResponse,
};
use picokafka::protocol::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use picokafka::protocol::metadata::{MetadataRequest, MetadataResponse};
use picokafka::protocol::produce::{PartitionData, ProduceRequest, ProduceResponse, TopicData};
use picokafka::protocol::record_batch::{
    BatchBuilder, Compression, Header, ProducerState, RecordBatch, HEADER_LEN,
};
use picokafka::protocol::txn_offset_commit::{
    PartitionOffset, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use picokafka::protocol::{
    encode_request, ApiKey, DecodeError, ErrorCode, Reader, Request, ResponseHeader, Writer,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn topic_name(v: &str) -> kp::TopicName {
    kp::TopicName(s(v))
}

/// kafka-protocol's `Uuid` (from the `uuid` crate, which it does not re-export) from raw bytes.
fn uuid<U: TryFrom<Vec<u8>>>(bytes: [u8; 16]) -> U
where
    U::Error: core::fmt::Debug,
{
    U::try_from(bytes.to_vec()).expect("16 bytes make a uuid")
}

/// kafka-protocol's API key for one of ours.
fn kp_key(key: ApiKey) -> kp::ApiKey {
    kp::ApiKey::try_from(i16::from(key)).expect("kafka-protocol knows every key we speak")
}

/// A whole request frame as picokafka writes it. Also checks that measuring, writing at once and
/// writing through a sliding window all agree (a producer emits requests in pieces).
fn frame<R: Request>(version: i16, correlation_id: i32, client_id: Option<&str>, body: &R) -> Vec<u8> {
    let mut counter = Writer::counting();
    let len = encode_request(&mut counter, version, correlation_id, client_id, body);
    assert_eq!(counter.finish(), Ok(len));
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    assert_eq!(encode_request(&mut w, version, correlation_id, client_id, body), len);
    assert_eq!(w.finish(), Ok(len));
    // Too small a buffer is reported with the size required.
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        let mut w = Writer::new(&mut short);
        encode_request(&mut w, version, correlation_id, client_id, body);
        assert_eq!(w.finish(), Err(picokafka::protocol::EncodeError::BufferTooSmall { required: len }));
    }
    const WINDOW: usize = 97;
    for skip in (0..len).step_by(WINDOW) {
        let mut part = [0u8; WINDOW];
        let mut w = Writer::window(&mut part, skip);
        encode_request(&mut w, version, correlation_id, client_id, body);
        let filled = w.filled();
        assert_eq!(&part[..filled], &buf[skip..(skip + WINDOW).min(len)], "window at {skip}");
    }
    buf
}

/// Checks a request frame's size prefix and header with kafka-protocol; returns the body.
fn request_body(
    frame: &[u8],
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Bytes {
    let (size, rest) = frame.split_at(4);
    let size = i32::from_be_bytes(size.try_into().expect("four bytes"));
    assert_eq!(usize::try_from(size).ok(), Some(rest.len()), "size prefix counts the rest of the frame");

    let api = kp_key(key);
    let header_version = api.request_header_version(version);
    assert_eq!(key.request_header_version(version), header_version, "{key:?} v{version} header");
    let mut buf = Bytes::copy_from_slice(rest);
    let header =
        kp::RequestHeader::decode(&mut buf, header_version).expect("kafka-protocol reads our header");
    assert_eq!(header.request_api_key, i16::from(key));
    assert_eq!(header.request_api_version, version);
    assert_eq!(header.correlation_id, correlation_id);
    assert_eq!(header.client_id.as_deref(), client_id);
    assert!(header.unknown_tagged_fields.is_empty());
    // kafka-protocol's own dispatch (api key + version -> header version) agrees.
    let mut again = Bytes::copy_from_slice(rest);
    let header2 = kafka_protocol::protocol::decode_request_header_from_buffer(&mut again).expect("header");
    assert_eq!(header2, header);
    assert_eq!(again, buf);
    buf
}

/// Decodes a whole body with kafka-protocol; nothing may be left over.
fn kp_decode<T: Decodable>(mut body: Bytes, version: i16) -> T {
    let msg = T::decode(&mut body, version)
        .unwrap_or_else(|e| panic!("kafka-protocol rejects our v{version} body: {e:#}"));
    assert!(body.is_empty(), "{} bytes left after kafka-protocol's v{version} decode", body.len());
    msg
}

fn kp_encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("kafka-protocol cannot encode v{version}: {e:#}"));
    assert_eq!(buf.len(), msg.compute_size(version).expect("size"));
    buf.to_vec()
}

/// Adds unknown tagged fields (a short one and one whose size needs a two-byte varint) to a
/// kafka-protocol struct when `$on`; they are encoded at flexible versions only.
macro_rules! unknown_tags {
    ($on:expr, $x:expr) => {{
        let x = $x;
        if $on {
            x.with_unknown_tagged_field(5, Bytes::from_static(b"five"))
                .with_unknown_tagged_field(200, Bytes::from(vec![0xab; 130]))
        } else {
            x
        }
    }};
}

/// A response frame body as a broker sends it (header at kafka-protocol's header version, body).
fn kp_response<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let header = kp::ResponseHeader::default().with_correlation_id(correlation_id);
    let mut out = kp_encode(&header, kp_key(key).response_header_version(version));
    out.extend(kp_encode(body, version));
    out
}

/// Our side of a response frame: reads the header, returns the body.
fn our_body(frame: &[u8], key: ApiKey, version: i16, correlation_id: i32) -> &[u8] {
    assert_eq!(key.response_header_version(version), kp_key(key).response_header_version(version));
    let mut r = Reader::new(frame);
    let header = ResponseHeader::decode(&mut r, key, version).expect("our response header decoder");
    assert_eq!(header.correlation_id, correlation_id);
    assert_eq!(header.tags.iter().count(), 0);
    r.rest()
}

// ---------------------------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------------------------

/// A record as a test describes it.
#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Keys are unique: kafka-protocol keeps headers in a map.
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Builds one batch with picokafka's `BatchBuilder`.
fn build_batch(records: &[Rec], compression: Compression, producer: ProducerState) -> Vec<u8> {
    build_batch_at(records, compression.into(), producer)
}

/// [`build_batch`] at a compression level.
fn build_batch_at(
    records: &[Rec],
    codec: picokafka::protocol::record_batch::Codec,
    producer: ProducerState,
) -> Vec<u8> {
    let compression = codec.compression;
    let payload: usize = records
        .iter()
        .map(|r| {
            32 + r.key.as_ref().map_or(0, Vec::len)
                + r.value.as_ref().map_or(0, Vec::len)
                + r.headers.iter().map(|(k, v)| 10 + k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>()
        })
        .sum();
    let mut buf = vec![0u8; HEADER_LEN + payload];
    let mut b = BatchBuilder::new(&mut buf).expect("room for the header");
    for r in records {
        let headers: Vec<Header<'_>> =
            r.headers.iter().map(|(k, v)| Header { key: k, value: v.as_deref() }).collect();
        let before = b.len();
        let size = b.record_size(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers).expect("room for the record");
        assert_eq!(b.len() - before, size, "record_size predicts push");
    }
    let mut scratch = vec![0u8; compression.scratch_len(b.len() - HEADER_LEN)];
    let n = b.finish(codec, producer, &mut scratch).expect("finish");
    buf.truncate(n);
    buf
}

/// The same records encoded by kafka-protocol.
fn kp_batch(records: &[Rec], producer: ProducerState, compression: KpCompression) -> Vec<u8> {
    let kp_records: Vec<KpRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| KpRecord {
            transactional: producer.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r.headers.iter().map(|(k, v)| (s(k), v.clone().map(Bytes::from))).collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &kp_records, &RecordEncodeOptions { version: 2, compression })
        .expect("kafka-protocol encodes the batch");
    buf.to_vec()
}

/// Reads `batch` (one batch) with kafka-protocol and compares it with `records`.
/// Returns the compression kafka-protocol saw.
fn check_batch_with_kp(batch: &[u8], records: &[Rec], producer: ProducerState) -> KpCompression {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap_or_else(|e| panic!("kafka-protocol: {e:#}"));
    assert!(buf.is_empty(), "one batch, nothing after it");
    assert_eq!(set.version, 2);
    assert_eq!(set.records.len(), records.len());
    for (i, (got, want)) in set.records.iter().zip(records).enumerate() {
        assert_eq!(got.offset, i as i64, "offset of record {i}");
        assert_eq!(got.timestamp, want.timestamp, "timestamp of record {i}");
        assert_eq!(got.timestamp_type, TimestampType::Creation);
        assert_eq!(got.key.as_deref(), want.key.as_deref(), "key of record {i}");
        assert_eq!(got.value.as_deref(), want.value.as_deref(), "value of record {i}");
        let headers: Vec<(String, Option<Vec<u8>>)> =
            got.headers.iter().map(|(k, v)| (k.to_string(), v.as_ref().map(|b| b.to_vec()))).collect();
        assert_eq!(headers, want.headers, "headers of record {i}");
        assert_eq!(got.producer_id, producer.producer_id);
        assert_eq!(got.producer_epoch, producer.producer_epoch);
        assert_eq!(got.sequence, producer.base_sequence.wrapping_add(i as i32));
        assert_eq!(got.transactional, producer.transactional);
        assert!(!got.control);
        assert_eq!(got.partition_leader_epoch, -1);
    }
    let info = RecordBatchDecoder::decode_batch_info(&mut Bytes::copy_from_slice(batch)).expect("batch info");
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].record_count as usize, records.len());
    assert_eq!(info[0].min_offset, 0);
    assert_eq!(info[0].base_sequence, producer.base_sequence);
    set.compression
}

/// Reads `batch` with picokafka's decoder and compares it with `records`.
fn check_batch_with_ours(batch: &[u8], records: &[Rec], producer: ProducerState) -> Compression {
    let (b, rest) = RecordBatch::decode(batch).expect("our decoder reads the batch");
    assert!(rest.is_empty());
    assert_eq!(b.base_offset, 0);
    assert_eq!(b.partition_leader_epoch, -1);
    assert_eq!(b.record_count as usize, records.len());
    assert_eq!(b.last_offset_delta, records.len() as i32 - 1);
    assert_eq!(b.producer_id, producer.producer_id);
    assert_eq!(b.producer_epoch, producer.producer_epoch);
    assert_eq!(b.base_sequence, producer.base_sequence);
    assert_eq!(b.is_transactional(), producer.transactional);
    assert!(!b.is_control());
    assert!(!b.is_log_append_time());
    if let Some(max) = records.iter().map(|r| r.timestamp).max() {
        assert_eq!(b.max_timestamp, max);
    }
    let compression = b.compression().expect("known codec");
    let mut out = vec![0u8; 4 * batch.len() + 1024 + records.iter().map(rec_payload).sum::<usize>()];
    let decoded = b.decompress_records(&mut out).expect("records decompress and decode");
    if compression == Compression::None {
        assert_eq!(b.records().expect("uncompressed records"), decoded);
    } else {
        assert_eq!(b.records().err(), Some(DecodeError::Compression));
    }
    assert_eq!(decoded.len(), records.len());
    for (i, (got, want)) in decoded.iter().zip(records).enumerate() {
        assert_eq!(got.attributes, 0);
        assert_eq!(got.offset_delta, i as i32);
        assert_eq!(b.base_timestamp.wrapping_add(got.timestamp_delta), want.timestamp);
        assert_eq!(got.key, want.key.as_deref());
        assert_eq!(got.value, want.value.as_deref());
        let headers: Vec<(String, Option<Vec<u8>>)> =
            got.headers.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect();
        assert_eq!(headers, want.headers);
    }
    compression
}

fn rec_payload(r: &Rec) -> usize {
    r.key.as_ref().map_or(0, Vec::len)
        + r.value.as_ref().map_or(0, Vec::len)
        + r.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>()
        + 32
}

fn kp_compression(c: Compression) -> KpCompression {
    match c {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

fn sample_records() -> Vec<Rec> {
    let text =
        |n: usize| b"picokafka says hello to kafka; ".iter().copied().cycle().take(n).collect::<Vec<u8>>();
    vec![
        Rec {
            timestamp: 1_700_000_000_000,
            key: Some(b"key-0".to_vec()),
            value: Some(text(300)),
            headers: vec![("trace".into(), Some(b"abc".to_vec())), ("empty".into(), None)],
        },
        Rec { timestamp: 1_700_000_000_005, key: None, value: Some(text(120)), headers: vec![] },
        // Out of order timestamps: base is the first record's, deltas may be negative.
        Rec { timestamp: 1_699_999_999_990, key: Some(vec![]), value: None, headers: vec![] },
        Rec {
            timestamp: 1_700_000_000_100,
            key: Some(vec![0, 1, 2, 255]),
            value: Some(vec![]),
            headers: vec![("ключ".into(), Some(vec![])), ("k2".into(), Some(text(40)))],
        },
    ]
}

const IDEMPOTENT: ProducerState =
    ProducerState { producer_id: 4242, producer_epoch: 3, base_sequence: 17, transactional: false };
const TRANSACTIONAL: ProducerState = ProducerState {
    producer_id: i64::MAX - 1,
    producer_epoch: 0,
    base_sequence: i32::MAX - 1,
    transactional: true,
};

#[test]
fn our_batches_read_by_kafka_protocol() {
    let records = sample_records();
    for producer in [ProducerState::NONE, IDEMPOTENT, TRANSACTIONAL] {
        let plain = build_batch(&records, Compression::None, producer);
        assert_eq!(check_batch_with_kp(&plain, &records, producer), KpCompression::None);
        assert_eq!(check_batch_with_ours(&plain, &records, producer), Compression::None);

        for codec in [Compression::Lz4, Compression::Gzip, Compression::Snappy, Compression::Zstd] {
            let packed = build_batch(&records, codec, producer);
            assert!(packed.len() < plain.len(), "{codec:?}: these records compress");
            assert_eq!(check_batch_with_kp(&packed, &records, producer), kp_compression(codec));
            assert_eq!(check_batch_with_ours(&packed, &records, producer), codec);
        }
    }
    // A large batch spans several 64 KiB LZ4 blocks.
    let big: Vec<Rec> = (0..40)
        .map(|i| Rec {
            timestamp: 1_700_000_000_000 + i,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value {i} ").repeat(500).into_bytes()),
            headers: vec![],
        })
        .collect();
    let lz4 = build_batch(&big, Compression::Lz4, IDEMPOTENT);
    assert_eq!(check_batch_with_kp(&lz4, &big, IDEMPOTENT), KpCompression::Lz4);
    assert_eq!(check_batch_with_ours(&lz4, &big, IDEMPOTENT), Compression::Lz4);
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Zstd] {
        let packed = build_batch(&big, codec, IDEMPOTENT);
        assert_eq!(check_batch_with_kp(&packed, &big, IDEMPOTENT), kp_compression(codec));
    }
}

/// `compression.gzip.level` / `compression.zstd.level` reach the encoder: batches at a low and a
/// high level differ in size, and kafka-protocol (flate2's and zstd's decoders behind it) reads
/// the same records back from both.
#[test]
fn compression_levels_change_the_batch_and_both_decode() {
    use picokafka::protocol::record_batch::Codec;
    let records: Vec<Rec> = (0..200)
        .map(|i| Rec {
            timestamp: 1_700_000_000_000 + i,
            key: Some(format!("device-{}", i % 13).into_bytes()),
            value: Some(
                format!("{{\"reading\":{},\"unit\":\"celsius\",\"site\":{}}}", (i * 7919) % 1013, i % 7)
                    .into_bytes(),
            ),
            headers: vec![],
        })
        .collect();
    for (compression, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, 1, 19)] {
        let fast = build_batch_at(&records, Codec { compression, level: Some(low) }, IDEMPOTENT);
        let small = build_batch_at(&records, Codec { compression, level: Some(high) }, IDEMPOTENT);
        assert!(
            small.len() < fast.len(),
            "{compression:?}: level {high} {} B, level {low} {} B",
            small.len(),
            fast.len()
        );
        for batch in [&fast, &small] {
            assert_eq!(check_batch_with_kp(batch, &records, IDEMPOTENT), kp_compression(compression));
        }
    }
}

#[test]
fn lz4_frames_with_stored_and_compressed_blocks() {
    // Incompressible data fills whole 64 KiB blocks that are stored raw (high bit of the block
    // size set); compressible data after it still makes the whole batch shrink.
    let mut x = 0x9e37_79b9u32;
    let noise: Vec<u8> = (0..70_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let records = vec![
        Rec { timestamp: 1, key: None, value: Some(noise), headers: vec![] },
        Rec { timestamp: 2, key: None, value: Some(b"kafka ".repeat(40_000)), headers: vec![] },
    ];
    let plain = build_batch(&records, Compression::None, IDEMPOTENT);
    let lz4 = build_batch(&records, Compression::Lz4, IDEMPOTENT);
    assert!(lz4.len() < plain.len());
    assert_eq!(check_batch_with_kp(&lz4, &records, IDEMPOTENT), KpCompression::Lz4);
    assert_eq!(check_batch_with_ours(&lz4, &records, IDEMPOTENT), Compression::Lz4);
    let theirs = kp_batch(&records, IDEMPOTENT, KpCompression::Lz4);
    assert_eq!(check_batch_with_ours(&theirs, &records, IDEMPOTENT), Compression::Lz4);

    // A too-small output buffer is reported; growing it to the size asked for makes progress
    // until the records fit (the frame does not carry the total size, so `required` can only be
    // a lower bound).
    for batch in [&lz4, &theirs, &plain] {
        let (b, _) = RecordBatch::decode(batch).expect("batch");
        let total = plain.len() - HEADER_LEN;
        let mut size = 0;
        let mut rounds = 0;
        loop {
            let mut out = vec![0u8; size];
            match b.decompress_records(&mut out) {
                Ok(records) => {
                    assert_eq!(records.len(), 2);
                    break;
                }
                Err(DecodeError::BufferTooSmall { required }) => {
                    assert!(required > size && required <= total, "required {required} after {size}");
                    size = required;
                }
                Err(e) => panic!("{e}"),
            }
            rounds += 1;
            assert!(rounds < 100);
        }
        assert_eq!(size, total, "the last size asked for is the exact size");
    }
}

#[test]
fn kafka_protocol_batches_read_by_us() {
    let records = sample_records();
    for producer in [ProducerState::NONE, IDEMPOTENT, TRANSACTIONAL] {
        for codec in [Compression::None, Compression::Lz4] {
            let batch = kp_batch(&records, producer, kp_compression(codec));
            assert_eq!(check_batch_with_ours(&batch, &records, producer), codec);
        }
    }
}

#[test]
fn uncompressed_batch_is_byte_identical_to_kafka_protocol() {
    // With non-decreasing timestamps both encoders pick the same base timestamp, and nothing else
    // in an uncompressed batch is left to choice.
    let mut records = sample_records();
    records.sort_by_key(|r| r.timestamp);
    for producer in [ProducerState::NONE, IDEMPOTENT, TRANSACTIONAL] {
        assert_eq!(
            build_batch(&records, Compression::None, producer),
            kp_batch(&records, producer, KpCompression::None)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Requests we encode, kafka-protocol decodes
// ---------------------------------------------------------------------------------------------

fn check_api_versions_request(name: &str, version_str: &str, correlation_id: i32, client_id: Option<&str>) {
    let req = ApiVersionsRequest { client_software_name: name, client_software_version: version_str };
    for v in 0..=4 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::ApiVersions, v, correlation_id, client_id);
        let got: kp::ApiVersionsRequest = kp_decode(body, v);
        if v >= 3 {
            assert_eq!(got.client_software_name.as_str(), name);
            assert_eq!(got.client_software_version.as_str(), version_str);
        } else {
            assert_eq!(got, kp::ApiVersionsRequest::default());
        }
    }
}

#[test]
fn api_versions_request_v0_to_v4() {
    check_api_versions_request("picokafka", "0.1.0", 1, Some("picokafka"));
    check_api_versions_request("", "", i32::MIN, None);
    check_api_versions_request("client-ü", "1.2.3-rc.1+build", -1, Some(""));
}

fn check_metadata_request(
    topics: Option<&[&str]>,
    allow: bool,
    correlation_id: i32,
    client_id: Option<&str>,
) {
    for v in 1..=12 {
        let f = match topics {
            Some(names) => frame(
                v,
                correlation_id,
                client_id,
                &MetadataRequest { topics: Some(names.iter().copied()), allow_auto_topic_creation: allow },
            ),
            None => frame(
                v,
                correlation_id,
                client_id,
                &MetadataRequest::<core::iter::Empty<&str>> {
                    topics: None,
                    allow_auto_topic_creation: allow,
                },
            ),
        };
        let body = request_body(&f, ApiKey::Metadata, v, correlation_id, client_id);
        let got: kp::MetadataRequest = kp_decode(body, v);
        match (topics, &got.topics) {
            (None, None) => {}
            (Some(want), Some(got)) => {
                let names: Vec<Option<&str>> =
                    got.iter().map(|t| t.name.as_deref().map(|n| n.as_str())).collect();
                let want: Vec<Option<&str>> = want.iter().map(|n| Some(*n)).collect();
                assert_eq!(names, want, "v{v}");
                for t in got {
                    assert!(t.topic_id.is_nil(), "v{v}: we address topics by name");
                    assert!(t.unknown_tagged_fields.is_empty());
                }
            }
            (want, got) => panic!("v{v}: topics {want:?} encoded as {got:?}"),
        }
        // Before v4 there is no field: brokers always auto-create (kafka-protocol's default true).
        assert_eq!(got.allow_auto_topic_creation, if v >= 4 { allow } else { true }, "v{v}");
        assert!(!got.include_cluster_authorized_operations);
        assert!(!got.include_topic_authorized_operations);
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

#[test]
fn metadata_request_v1_to_v12() {
    check_metadata_request(Some(&["events", "metrics"]), false, 7, Some("picokafka"));
    check_metadata_request(Some(&["events"]), true, 7, None);
    check_metadata_request(Some(&[]), true, 0, Some("x"));
    check_metadata_request(None, true, 9, Some("picokafka"));
    check_metadata_request(None, false, -5, None);
}

fn check_init_producer_id_request(
    req: InitProducerIdRequest<'_>,
    correlation_id: i32,
    client_id: Option<&str>,
) {
    for v in 0..=5 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::InitProducerId, v, correlation_id, client_id);
        let got: kp::InitProducerIdRequest = kp_decode(body, v);
        assert_eq!(got.transactional_id.as_deref().map(|t| t.as_str()), req.transactional_id, "v{v}");
        assert_eq!(got.transaction_timeout_ms, req.transaction_timeout_ms);
        let (pid, epoch) = if v >= 3 { (req.producer_id, req.producer_epoch) } else { (-1, -1) };
        assert_eq!(*got.producer_id, pid, "v{v}");
        assert_eq!(got.producer_epoch, epoch, "v{v}");
        assert!(!got.enable_2_pc);
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

#[test]
fn init_producer_id_request_v0_to_v5() {
    let fresh = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: 60_000,
        producer_id: -1,
        producer_epoch: -1,
    };
    check_init_producer_id_request(fresh, 3, Some("picokafka"));
    let bump = InitProducerIdRequest {
        transactional_id: Some("txn-1"),
        transaction_timeout_ms: i32::MAX,
        producer_id: 1234,
        producer_epoch: 5,
    };
    check_init_producer_id_request(bump, 4, None);
    let empty = InitProducerIdRequest { transactional_id: Some(""), ..bump };
    check_init_producer_id_request(empty, i32::MAX, Some(""));
}

/// A Produce request's content as a test describes it.
#[derive(Debug, Clone)]
struct ProduceCase {
    transactional_id: Option<String>,
    acks: i16,
    timeout_ms: i32,
    topics: Vec<(String, Vec<PartitionCase>)>,
}

/// (partition, records, compression, producer)
type PartitionCase = (i32, Vec<Rec>, Compression, ProducerState);

/// Encodes `case` with picokafka at every version and checks kafka-protocol reads it back,
/// records included.
fn check_produce_request(case: &ProduceCase, correlation_id: i32, client_id: Option<&str>) {
    let batches: Vec<Vec<Vec<u8>>> = case
        .topics
        .iter()
        .map(|(_, parts)| parts.iter().map(|(_, recs, c, p)| build_batch(recs, *c, *p)).collect())
        .collect();
    let partitions: Vec<Vec<PartitionData<'_>>> = case
        .topics
        .iter()
        .zip(&batches)
        .map(|((_, parts), bs)| {
            parts.iter().zip(bs).map(|((index, ..), b)| PartitionData { index: *index, records: b }).collect()
        })
        .collect();
    let topics: Vec<TopicData<'_>> = case
        .topics
        .iter()
        .zip(&partitions)
        .map(|((name, _), ps)| TopicData { name, partitions: ps })
        .collect();
    let req = ProduceRequest {
        transactional_id: case.transactional_id.as_deref(),
        acks: case.acks,
        timeout_ms: case.timeout_ms,
        topics: &topics,
    };
    for v in 3..=12 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::Produce, v, correlation_id, client_id);
        let got: kp::ProduceRequest = kp_decode(body, v);
        assert_eq!(got.transactional_id.as_deref().map(|t| t.as_str()), case.transactional_id.as_deref());
        assert_eq!(got.acks, case.acks);
        assert_eq!(got.timeout_ms, case.timeout_ms);
        assert_eq!(got.topic_data.len(), case.topics.len());
        assert!(got.unknown_tagged_fields.is_empty());
        for ((gt, (name, parts)), bs) in got.topic_data.iter().zip(&case.topics).zip(&batches) {
            assert_eq!(gt.name.as_str(), name, "v{v}");
            assert!(gt.topic_id.is_nil());
            assert_eq!(gt.partition_data.len(), parts.len());
            for ((gp, (index, recs, _, producer)), b) in gt.partition_data.iter().zip(parts).zip(bs) {
                assert_eq!(gp.index, *index);
                let records = gp.records.as_ref().expect("records present");
                assert_eq!(records.as_ref(), b.as_slice(), "v{v}: record bytes travel unchanged");
                // Check the records themselves once, not once per version.
                if v == 3 {
                    check_batch_with_kp(records, recs, *producer);
                }
            }
        }
    }
}

#[test]
fn produce_request_v3_to_v12() {
    let records = sample_records();
    let case = ProduceCase {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topics: vec![
            (
                "events".into(),
                vec![
                    (0, records.clone(), Compression::None, IDEMPOTENT),
                    (2, records.clone(), Compression::Lz4, IDEMPOTENT),
                ],
            ),
            ("metrics".into(), vec![(1, records[1..].to_vec(), Compression::Lz4, ProducerState::NONE)]),
            ("empty-topic".into(), vec![]),
        ],
    };
    check_produce_request(&case, 11, Some("picokafka"));
    let txn = ProduceCase {
        transactional_id: Some("txn-1".into()),
        acks: 1,
        timeout_ms: 0,
        topics: vec![("t".into(), vec![(i32::MAX, records, Compression::None, TRANSACTIONAL)])],
    };
    check_produce_request(&txn, -3, None);
    let none = ProduceCase { transactional_id: None, acks: 0, timeout_ms: 1, topics: vec![] };
    check_produce_request(&none, 0, Some(""));
}

fn check_find_coordinator_request(
    key_type: CoordinatorType,
    key: &str,
    correlation_id: i32,
    client_id: Option<&str>,
) {
    let req = FindCoordinatorRequest { key_type, key };
    for v in 1..=5 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::FindCoordinator, v, correlation_id, client_id);
        let got: kp::FindCoordinatorRequest = kp_decode(body, v);
        assert_eq!(got.key_type, key_type.code(), "v{v}");
        if v <= 3 {
            assert_eq!(got.key.as_str(), key, "v{v}");
            assert!(got.coordinator_keys.is_empty(), "v{v}");
        } else {
            assert_eq!(got.key.as_str(), "", "v{v}: no Key field from v4");
            let keys: Vec<&str> = got.coordinator_keys.iter().map(|k| k.as_str()).collect();
            assert_eq!(keys, [key], "v{v}");
        }
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

#[test]
fn find_coordinator_request_v1_to_v5() {
    assert_eq!((CoordinatorType::Group.code(), CoordinatorType::Transaction.code()), (0, 1));
    check_find_coordinator_request(CoordinatorType::Transaction, "txn-1", 1, Some("picokafka"));
    check_find_coordinator_request(CoordinatorType::Group, "group-ü", -1, None);
    check_find_coordinator_request(CoordinatorType::Transaction, "", i32::MAX, Some(""));
}

/// Topics and their partitions, as a test describes them.
type TxnTopics = Vec<(String, Vec<i32>)>;

fn check_add_partitions_to_txn_request(
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topics: &[(String, Vec<i32>)],
    correlation_id: i32,
    client_id: Option<&str>,
) {
    let req = AddPartitionsToTxnRequest {
        transactional_id,
        producer_id,
        producer_epoch,
        topics: topics.iter().map(|(t, p)| (t.as_str(), p.iter().copied())),
    };
    for v in 0..=3 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::AddPartitionsToTxn, v, correlation_id, client_id);
        let got: kp::AddPartitionsToTxnRequest = kp_decode(body, v);
        assert_eq!(got.v3_and_below_transactional_id.as_str(), transactional_id, "v{v}");
        assert_eq!(*got.v3_and_below_producer_id, producer_id);
        assert_eq!(got.v3_and_below_producer_epoch, producer_epoch);
        let got_topics: TxnTopics = got
            .v3_and_below_topics
            .iter()
            .map(|t| {
                assert!(t.unknown_tagged_fields.is_empty());
                (t.name.as_str().to_owned(), t.partitions.clone())
            })
            .collect();
        assert_eq!(got_topics, topics, "v{v}");
        assert!(got.transactions.is_empty(), "v{v}: the v4+ batch is the brokers'");
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

#[test]
fn add_partitions_to_txn_request_v0_to_v3() {
    let topics: TxnTopics =
        vec![("events".into(), vec![0, 2, 5]), ("metrics".into(), vec![i32::MAX]), ("none".into(), vec![])];
    check_add_partitions_to_txn_request("txn-1", 4242, 3, &topics, 12, Some("picokafka"));
    check_add_partitions_to_txn_request("", -1, -1, &[], -1, None);
    check_add_partitions_to_txn_request("tx-ü", i64::MAX, i16::MAX, &topics[..1], 0, Some(""));
    // From a table the caller keeps (topic slot, partition), grouped by topic without a copy.
    let names = ["a", "b", "c"];
    let pending = [(2usize, 7i32), (0, 1), (2, 3)];
    let req =
        AddPartitionsToTxnRequest {
            transactional_id: "t",
            producer_id: 1,
            producer_epoch: 0,
            topics: names.iter().enumerate().filter(|(slot, _)| pending.iter().any(|(s, _)| s == slot)).map(
                |(slot, name)| (*name, pending.iter().filter(move |(s, _)| *s == slot).map(|(_, p)| *p)),
            ),
        };
    for v in 0..=3 {
        let f = frame(v, 1, None, &req);
        let got: kp::AddPartitionsToTxnRequest =
            kp_decode(request_body(&f, ApiKey::AddPartitionsToTxn, v, 1, None), v);
        let got: Vec<(&str, &[i32])> =
            got.v3_and_below_topics.iter().map(|t| (t.name.as_str(), t.partitions.as_slice())).collect();
        assert_eq!(got, [("a", &[1][..]), ("c", &[7, 3][..])], "v{v}");
    }
}

fn check_end_txn_request(req: EndTxnRequest<'_>, correlation_id: i32, client_id: Option<&str>) {
    for v in 0..=5 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::EndTxn, v, correlation_id, client_id);
        let got: kp::EndTxnRequest = kp_decode(body, v);
        assert_eq!(got.transactional_id.as_str(), req.transactional_id, "v{v}");
        assert_eq!(*got.producer_id, req.producer_id);
        assert_eq!(got.producer_epoch, req.producer_epoch);
        assert_eq!(got.committed, req.committed, "v{v}");
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

#[test]
fn end_txn_request_v0_to_v5() {
    let commit =
        EndTxnRequest { transactional_id: "txn-1", producer_id: 4242, producer_epoch: 3, committed: true };
    check_end_txn_request(commit, 5, Some("picokafka"));
    check_end_txn_request(EndTxnRequest { committed: false, ..commit }, -5, None);
    check_end_txn_request(
        EndTxnRequest {
            transactional_id: "",
            producer_id: i64::MIN,
            producer_epoch: i16::MIN,
            committed: true,
        },
        i32::MIN,
        Some(""),
    );
}

fn check_add_offsets_to_txn_request(
    req: AddOffsetsToTxnRequest<'_>,
    correlation_id: i32,
    client_id: Option<&str>,
) {
    for v in 0..=3 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::AddOffsetsToTxn, v, correlation_id, client_id);
        let got: kp::AddOffsetsToTxnRequest = kp_decode(body, v);
        assert_eq!(got.transactional_id.as_str(), req.transactional_id, "v{v}");
        assert_eq!(*got.producer_id, req.producer_id);
        assert_eq!(got.producer_epoch, req.producer_epoch);
        assert_eq!(got.group_id.as_str(), req.group_id, "v{v}");
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

#[test]
fn add_offsets_to_txn_request_v0_to_v3() {
    let req = AddOffsetsToTxnRequest {
        transactional_id: "txn-1",
        producer_id: 4242,
        producer_epoch: 3,
        group_id: "g",
    };
    check_add_offsets_to_txn_request(req, 8, Some("picokafka"));
    check_add_offsets_to_txn_request(
        AddOffsetsToTxnRequest { transactional_id: "", producer_id: -1, producer_epoch: -1, group_id: "" },
        0,
        None,
    );
}

/// A TxnOffsetCommit request's content as a test describes it.
#[derive(Debug, Clone)]
struct CommitCase {
    transactional_id: String,
    group_id: String,
    producer_id: i64,
    producer_epoch: i16,
    generation_id: i32,
    member_id: String,
    group_instance_id: Option<String>,
    topics: Vec<(String, Vec<CommitPartition>)>,
}

/// (partition, offset, leader epoch, metadata)
type CommitPartition = (i32, i64, i32, Option<String>);

fn check_txn_offset_commit_request(case: &CommitCase, correlation_id: i32, client_id: Option<&str>) {
    let offsets: Vec<Vec<PartitionOffset<'_>>> = case
        .topics
        .iter()
        .map(|(_, parts)| {
            parts
                .iter()
                .map(|(index, offset, epoch, metadata)| PartitionOffset {
                    partition_index: *index,
                    committed_offset: *offset,
                    committed_leader_epoch: *epoch,
                    committed_metadata: metadata.as_deref(),
                })
                .collect()
        })
        .collect();
    let req = TxnOffsetCommitRequest {
        transactional_id: &case.transactional_id,
        group_id: &case.group_id,
        producer_id: case.producer_id,
        producer_epoch: case.producer_epoch,
        generation_id: case.generation_id,
        member_id: &case.member_id,
        group_instance_id: case.group_instance_id.as_deref(),
        topics: case.topics.iter().zip(&offsets).map(|((t, _), ps)| (t.as_str(), ps.iter().copied())),
    };
    for v in 0..=5 {
        let f = frame(v, correlation_id, client_id, &req);
        let body = request_body(&f, ApiKey::TxnOffsetCommit, v, correlation_id, client_id);
        let got: kp::TxnOffsetCommitRequest = kp_decode(body, v);
        assert_eq!(got.transactional_id.as_str(), case.transactional_id, "v{v}");
        assert_eq!(got.group_id.as_str(), case.group_id);
        assert_eq!(*got.producer_id, case.producer_id);
        assert_eq!(got.producer_epoch, case.producer_epoch);
        if v >= 3 {
            assert_eq!(got.generation_id, case.generation_id, "v{v}");
            assert_eq!(got.member_id.as_str(), case.member_id, "v{v}");
            assert_eq!(got.group_instance_id.as_deref(), case.group_instance_id.as_deref());
        } else {
            // Not on the wire: kafka-protocol's defaults.
            assert_eq!(got.generation_id, -1, "v{v}");
            assert_eq!(got.member_id.as_str(), "", "v{v}");
            assert_eq!(got.group_instance_id, None, "v{v}");
        }
        assert_eq!(got.topics.len(), case.topics.len());
        for (gt, (name, parts)) in got.topics.iter().zip(&case.topics) {
            assert_eq!(gt.name.as_str(), name, "v{v}");
            assert!(gt.unknown_tagged_fields.is_empty());
            let got_parts: Vec<CommitPartition> = gt
                .partitions
                .iter()
                .map(|p| {
                    assert!(p.unknown_tagged_fields.is_empty());
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata.as_ref().map(|m| m.as_str().to_owned()),
                    )
                })
                .collect();
            let want: Vec<CommitPartition> =
                parts.iter().map(|(i, o, e, m)| (*i, *o, if v >= 2 { *e } else { -1 }, m.clone())).collect();
            assert_eq!(got_parts, want, "v{v}");
        }
        assert!(got.unknown_tagged_fields.is_empty());
    }
}

fn sample_commit() -> CommitCase {
    CommitCase {
        transactional_id: "txn-1".into(),
        group_id: "readers".into(),
        producer_id: 4242,
        producer_epoch: 3,
        generation_id: 17,
        member_id: "consumer-1-5c0ffee".into(),
        group_instance_id: Some("reader-a".into()),
        topics: vec![
            (
                "events".into(),
                vec![
                    (0, 100, 5, None),
                    (3, 0, -1, Some(String::new())),
                    (7, i64::MAX, i32::MAX, Some("m".into())),
                ],
            ),
            ("empty".into(), vec![]),
        ],
    }
}

#[test]
fn txn_offset_commit_request_v0_to_v5() {
    check_txn_offset_commit_request(&sample_commit(), 3, Some("picokafka"));
    let anonymous = CommitCase {
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![],
        ..sample_commit()
    };
    check_txn_offset_commit_request(&anonymous, -1, None);
}

// ---------------------------------------------------------------------------------------------
// Responses kafka-protocol encodes, we decode
// ---------------------------------------------------------------------------------------------

fn kp_api_versions(error_code: i16, keys: &[(i16, i16, i16)], throttle: i32) -> kp::ApiVersionsResponse {
    kp::ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            keys.iter()
                .map(|&(k, min, max)| {
                    kav::ApiVersion::default().with_api_key(k).with_min_version(min).with_max_version(max)
                })
                .collect(),
        )
        .with_throttle_time_ms(throttle)
}

/// Decodes `msg` encoded at `version` with ours and compares.
fn check_api_versions_response(msg: &kp::ApiVersionsResponse, version: i16) {
    let f = kp_response(ApiKey::ApiVersions, version, 77, msg);
    let body = our_body(&f, ApiKey::ApiVersions, version, 77);
    let got = ApiVersionsResponse::decode(body, version).expect("our ApiVersions decoder");
    assert_eq!(got.parsed_version, version);
    assert_eq!(i16::from(got.error_code), msg.error_code);
    let keys: Vec<(i16, i16, i16)> =
        got.api_keys.iter().map(|r| (i16::from(r.api_key), r.min_version, r.max_version)).collect();
    let want: Vec<(i16, i16, i16)> =
        msg.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
    assert_eq!(keys, want, "v{version}");
    assert_eq!(got.throttle_time_ms, if version >= 1 { msg.throttle_time_ms } else { 0 });
    let tags: Vec<u32> = got.tags.iter().map(|(t, _)| t).collect();
    let mut want_tags = vec![];
    if version >= 3 {
        if !msg.supported_features.is_empty() {
            want_tags.push(0);
        }
        if msg.finalized_features_epoch != -1 {
            want_tags.push(1);
            assert_eq!(got.tags.get(1), Some(&msg.finalized_features_epoch.to_be_bytes()[..]));
        }
        if !msg.finalized_features.is_empty() {
            want_tags.push(2);
        }
        if msg.zk_migration_ready {
            want_tags.push(3);
            assert_eq!(got.tags.get(3), Some(&[1u8][..]));
        }
        for (tag, data) in &msg.unknown_tagged_fields {
            want_tags.push(*tag as u32);
            assert_eq!(got.tags.get(*tag as u32), Some(&data[..]));
        }
    }
    assert_eq!(tags, want_tags, "v{version}: tagged fields are kept");
}

const OUR_KEYS: [(i16, i16, i16); 4] = [(0, 3, 11), (3, 1, 12), (18, 0, 4), (22, 0, 5)];

#[test]
fn api_versions_response_v0_to_v4() {
    for v in 0..=4 {
        check_api_versions_response(&kp_api_versions(0, &OUR_KEYS, 5), v);
        check_api_versions_response(&kp_api_versions(0, &[], 0), v);
        check_api_versions_response(&kp_api_versions(-1, &[(1234, -3, i16::MAX)], i32::MAX), v);
        let full = kp_api_versions(0, &OUR_KEYS, 0)
            .with_supported_features(vec![kav::SupportedFeatureKey::default()
                .with_name(s("metadata.version"))
                .with_min_version(1)
                .with_max_version(20)])
            .with_finalized_features_epoch(42)
            .with_finalized_features(vec![kav::FinalizedFeatureKey::default()
                .with_name(s("metadata.version"))
                .with_max_version_level(20)
                .with_min_version_level(20)])
            .with_zk_migration_ready(true)
            .with_unknown_tagged_field(9, Bytes::from_static(b"future"));
        if v >= 3 {
            check_api_versions_response(&full, v);
            let f = kp_response(ApiKey::ApiVersions, v, 1, &full);
            let got =
                ApiVersionsResponse::decode(our_body(&f, ApiKey::ApiVersions, v, 1), v).expect("decode");
            assert_eq!(got.tags.get(9), Some(&b"future"[..]));
            assert_eq!(got.negotiate(ApiKey::Produce, 3, 11), Some(11));
            assert_eq!(got.negotiate(ApiKey::Metadata, 1, 12), Some(12));
            assert_eq!(got.negotiate(ApiKey::InitProducerId, 0, 5), Some(5));
            assert_eq!(got.negotiate(ApiKey::EndTxn, 0, 5), None);
        }
    }
}

#[test]
fn api_versions_response_v0_fallback_on_unsupported_version() {
    // A broker that does not speak the version we asked for answers UNSUPPORTED_VERSION (35) with
    // a v0 body listing what it does speak (KIP-511); the Java client then reads it as v0.
    let msg = kp_api_versions(35, &[(18, 0, 2), (0, 3, 9), (3, 1, 9)], 0);
    let body = kp_encode(&msg, 0);
    for asked in 0..=4 {
        let got = ApiVersionsResponse::decode(&body, asked).expect("v0 fallback");
        assert_eq!(got.parsed_version, 0, "asked v{asked}");
        assert_eq!(got.error_code, ErrorCode::UnsupportedVersion);
        assert_eq!(got.api_keys.len(), 3);
        assert_eq!(got.negotiate(ApiKey::ApiVersions, 0, 4), Some(2));
        assert_eq!(got.negotiate(ApiKey::Produce, 3, 11), Some(9));
        assert_eq!(got.negotiate(ApiKey::Metadata, 10, 12), None);
    }
}

/// A Metadata response's content, independent of either codec.
#[derive(Debug, Clone)]
struct MetaCase {
    throttle: i32,
    brokers: Vec<(i32, String, i32, Option<String>)>,
    cluster_id: Option<String>,
    controller: i32,
    topics: Vec<MetaTopic>,
    cluster_ops: i32,
    /// Unknown tagged fields at every level (seen at v9+).
    unknown_tags: bool,
}

#[derive(Debug, Clone)]
struct MetaTopic {
    error: i16,
    name: Option<String>,
    id: [u8; 16],
    internal: bool,
    partitions: Vec<MetaPartition>,
    ops: i32,
}

#[derive(Debug, Clone)]
struct MetaPartition {
    error: i16,
    index: i32,
    leader: i32,
    epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline: Vec<i32>,
}

fn brokers(ids: &[i32]) -> Vec<kp::BrokerId> {
    ids.iter().map(|&i| kp::BrokerId(i)).collect()
}

/// The kafka-protocol message for `case` at `version` (fields a version lacks are left default,
/// as kafka-protocol refuses to encode them otherwise).
fn kp_metadata(case: &MetaCase, version: i16) -> kp::MetadataResponse {
    let on = case.unknown_tags;
    let msg = kp::MetadataResponse::default()
        .with_throttle_time_ms(case.throttle)
        .with_brokers(
            case.brokers
                .iter()
                .map(|(id, host, port, rack)| {
                    unknown_tags!(
                        on,
                        kmres::MetadataResponseBroker::default()
                            .with_node_id(kp::BrokerId(*id))
                            .with_host(s(host))
                            .with_port(*port)
                            .with_rack(rack.as_deref().map(s))
                    )
                })
                .collect(),
        )
        .with_cluster_id(case.cluster_id.as_deref().map(s))
        .with_controller_id(kp::BrokerId(case.controller))
        .with_topics(
            case.topics
                .iter()
                .map(|t| {
                    let topic = kmres::MetadataResponseTopic::default()
                        .with_error_code(t.error)
                        .with_name(t.name.as_deref().map(topic_name))
                        .with_topic_id(uuid(t.id))
                        .with_is_internal(t.internal)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    unknown_tags!(
                                        on,
                                        kmres::MetadataResponsePartition::default()
                                            .with_error_code(p.error)
                                            .with_partition_index(p.index)
                                            .with_leader_id(kp::BrokerId(p.leader))
                                            .with_leader_epoch(p.epoch)
                                            .with_replica_nodes(brokers(&p.replicas))
                                            .with_isr_nodes(brokers(&p.isr))
                                            .with_offline_replicas(brokers(&p.offline))
                                    )
                                })
                                .collect(),
                        )
                        .with_topic_authorized_operations(if version >= 8 { t.ops } else { i32::MIN });
                    unknown_tags!(on, topic)
                })
                .collect(),
        )
        .with_cluster_authorized_operations(if (8..=10).contains(&version) {
            case.cluster_ops
        } else {
            i32::MIN
        });
    unknown_tags!(on, msg)
}

/// Decodes `body` (a Metadata response at `version` for `case`) with ours and compares.
fn check_metadata_body(body: &[u8], case: &MetaCase, version: i16) {
    let got = MetadataResponse::decode(body, version).expect("our Metadata decoder");
    let v = version;
    assert_eq!(got.throttle_time_ms, if v >= 3 { case.throttle } else { 0 }, "v{v}");
    let brokers: Vec<(i32, String, i32, Option<String>)> = got
        .brokers
        .iter()
        .map(|b| (b.node_id, b.host.to_owned(), b.port, b.rack.map(str::to_owned)))
        .collect();
    assert_eq!(brokers, case.brokers, "v{v}");
    for (id, host, ..) in &case.brokers {
        assert_eq!(got.broker(*id).map(|b| b.host), Some(host.as_str()));
    }
    assert_eq!(got.cluster_id, if v >= 2 { case.cluster_id.as_deref() } else { None }, "v{v}");
    assert_eq!(got.controller_id, case.controller);
    assert_eq!(got.topics.len(), case.topics.len());
    for (gt, wt) in got.topics.iter().zip(&case.topics) {
        assert_eq!(i16::from(gt.error_code), wt.error);
        assert_eq!(gt.name, wt.name.as_deref(), "v{v}");
        assert_eq!(gt.topic_id, if v >= 10 { wt.id } else { [0; 16] }, "v{v}");
        assert_eq!(gt.is_internal, wt.internal);
        assert_eq!(gt.partitions.len(), wt.partitions.len());
        for (gp, wp) in gt.partitions.iter().zip(&wt.partitions) {
            assert_eq!(i16::from(gp.error_code), wp.error);
            assert_eq!(gp.partition_index, wp.index);
            assert_eq!(gp.leader_id, wp.leader);
            assert_eq!(gp.leader_epoch, if v >= 7 { wp.epoch } else { -1 }, "v{v}");
            assert_eq!(gp.replicas.iter().collect::<Vec<_>>(), wp.replicas, "v{v}");
            assert_eq!(gp.isr.iter().collect::<Vec<_>>(), wp.isr, "v{v}");
        }
    }
    if let Some(first) = case.topics.iter().find_map(|t| t.name.as_deref()) {
        assert!(got.topic(first).is_some());
    }
    let tags: Vec<u32> = got.tags.iter().map(|(t, _)| t).collect();
    let want: &[u32] = if case.unknown_tags && v >= 9 { &[5, 200] } else { &[] };
    assert_eq!(tags, want, "v{v}: unknown tagged fields are kept");
}

fn check_metadata_response(case: &MetaCase, version: i16) {
    let msg = kp_metadata(case, version);
    let f = kp_response(ApiKey::Metadata, version, 0x0102_0304, &msg);
    check_metadata_body(our_body(&f, ApiKey::Metadata, version, 0x0102_0304), case, version);
}

fn sample_metadata() -> MetaCase {
    MetaCase {
        throttle: 11,
        brokers: vec![
            (1, "broker-1.local".into(), 9092, Some("rack-a".into())),
            (2, "broker-2.local".into(), 9093, None),
            (-7, String::new(), i32::MAX, Some(String::new())),
        ],
        cluster_id: Some("pk-cluster".into()),
        controller: 1,
        topics: vec![
            MetaTopic {
                error: 0,
                name: Some("events".into()),
                id: *b"0123456789abcdef",
                internal: false,
                partitions: vec![
                    MetaPartition {
                        error: 0,
                        index: 0,
                        leader: 1,
                        epoch: 5,
                        replicas: vec![1, 2],
                        isr: vec![1, 2],
                        offline: vec![],
                    },
                    MetaPartition {
                        error: 9,
                        index: 1,
                        leader: 2,
                        epoch: 7,
                        replicas: vec![2, 1, 3],
                        isr: vec![2],
                        offline: vec![1, 3],
                    },
                ],
                ops: 0x0df8,
            },
            MetaTopic {
                error: 3,
                name: Some("missing".into()),
                id: [0; 16],
                internal: true,
                partitions: vec![],
                ops: i32::MIN,
            },
        ],
        cluster_ops: 0x0ff0,
        unknown_tags: true,
    }
}

#[test]
fn metadata_response_v1_to_v12() {
    let case = sample_metadata();
    for v in 1..=12 {
        check_metadata_response(&case, v);
        let empty = MetaCase {
            throttle: 0,
            brokers: vec![],
            cluster_id: None,
            controller: -1,
            topics: vec![],
            cluster_ops: i32::MIN,
            unknown_tags: false,
        };
        check_metadata_response(&empty, v);
    }
    // v12 allows a null topic name (answers to requests by topic id).
    let mut by_id = sample_metadata();
    by_id.topics[0].name = None;
    check_metadata_response(&by_id, 12);
}

#[derive(Debug, Clone)]
struct ProduceResp {
    topics: Vec<(String, Vec<ProducePart>)>,
    throttle: i32,
    endpoints: Vec<(i32, String, i32, Option<String>)>,
    /// Unknown tagged fields at every level (seen at v9+).
    unknown_tags: bool,
}

#[derive(Debug, Clone)]
struct ProducePart {
    index: i32,
    error: i16,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    record_errors: Vec<(i32, Option<String>)>,
    error_message: Option<String>,
    leader: Option<(i32, i32)>,
}

fn kp_produce_response(case: &ProduceResp, version: i16) -> kp::ProduceResponse {
    let v = version;
    let on = case.unknown_tags;
    let msg = kp::ProduceResponse::default()
        .with_responses(
            case.topics
                .iter()
                .map(|(name, parts)| {
                    let topic = kpres::TopicProduceResponse::default()
                        .with_name(topic_name(name))
                        .with_partition_responses(
                            parts
                                .iter()
                                .map(|p| {
                                    let mut r = kpres::PartitionProduceResponse::default()
                                        .with_index(p.index)
                                        .with_error_code(p.error)
                                        .with_base_offset(p.base_offset)
                                        .with_log_append_time_ms(p.log_append_time)
                                        .with_log_start_offset(p.log_start_offset);
                                    if v >= 8 {
                                        r = r
                                            .with_record_errors(
                                                p.record_errors
                                                    .iter()
                                                    .map(|(i, m)| {
                                                        unknown_tags!(
                                                            on,
                                                            kpres::BatchIndexAndErrorMessage::default()
                                                                .with_batch_index(*i)
                                                                .with_batch_index_error_message(
                                                                    m.as_deref().map(s)
                                                                )
                                                        )
                                                    })
                                                    .collect(),
                                            )
                                            .with_error_message(p.error_message.as_deref().map(s));
                                    }
                                    if let (true, Some((id, epoch))) = (v >= 10, p.leader) {
                                        r = r.with_current_leader(unknown_tags!(
                                            on,
                                            kpres::LeaderIdAndEpoch::default()
                                                .with_leader_id(kp::BrokerId(id))
                                                .with_leader_epoch(epoch)
                                        ));
                                    }
                                    unknown_tags!(on, r)
                                })
                                .collect(),
                        );
                    unknown_tags!(on, topic)
                })
                .collect(),
        )
        .with_throttle_time_ms(case.throttle)
        .with_node_endpoints(if v >= 10 {
            case.endpoints
                .iter()
                .map(|(id, host, port, rack)| {
                    unknown_tags!(
                        on,
                        kpres::NodeEndpoint::default()
                            .with_node_id(kp::BrokerId(*id))
                            .with_host(s(host))
                            .with_port(*port)
                            .with_rack(rack.as_deref().map(s))
                    )
                })
                .collect()
        } else {
            vec![]
        });
    unknown_tags!(on, msg)
}

fn check_produce_body(body: &[u8], case: &ProduceResp, version: i16) {
    let v = version;
    let got = ProduceResponse::decode(body, v).expect("our Produce decoder");
    assert_eq!(got.throttle_time_ms, case.throttle);
    assert_eq!(got.responses.len(), case.topics.len());
    for (gt, (name, parts)) in got.responses.iter().zip(&case.topics) {
        assert_eq!(gt.name, name);
        assert_eq!(gt.partitions.len(), parts.len());
        for (gp, wp) in gt.partitions.iter().zip(parts) {
            assert_eq!(gp.index, wp.index);
            assert_eq!(i16::from(gp.error_code), wp.error);
            assert_eq!(gp.base_offset, wp.base_offset);
            assert_eq!(gp.log_append_time_ms, wp.log_append_time);
            assert_eq!(gp.log_start_offset, if v >= 5 { wp.log_start_offset } else { -1 }, "v{v}");
            let errors: Vec<(i32, Option<String>)> =
                gp.record_errors.iter().map(|e| (e.batch_index, e.message.map(str::to_owned))).collect();
            if v >= 8 {
                assert_eq!(errors, wp.record_errors, "v{v}");
                assert_eq!(gp.error_message, wp.error_message.as_deref(), "v{v}");
            } else {
                assert!(errors.is_empty());
                assert_eq!(gp.error_message, None);
            }
            // kafka-protocol leaves the tag out when it holds the default (-1, -1).
            let leader = wp.leader.filter(|l| v >= 10 && *l != (-1, -1));
            assert_eq!(gp.current_leader.map(|l| (l.leader_id, l.leader_epoch)), leader, "v{v}");
        }
    }
    let endpoints: Vec<(i32, String, i32, Option<String>)> = got
        .node_endpoints
        .iter()
        .map(|e| (e.node_id, e.host.to_owned(), e.port, e.rack.map(str::to_owned)))
        .collect();
    if v >= 10 {
        assert_eq!(endpoints, case.endpoints, "v{v}");
    } else {
        assert!(endpoints.is_empty());
    }
}

fn check_produce_response(case: &ProduceResp, version: i16) {
    let msg = kp_produce_response(case, version);
    let f = kp_response(ApiKey::Produce, version, 5, &msg);
    check_produce_body(our_body(&f, ApiKey::Produce, version, 5), case, version);
}

fn sample_produce_response() -> ProduceResp {
    ProduceResp {
        topics: vec![
            (
                "events".into(),
                vec![
                    ProducePart {
                        index: 0,
                        error: 0,
                        base_offset: 100,
                        log_append_time: -1,
                        log_start_offset: 0,
                        record_errors: vec![],
                        error_message: None,
                        leader: None,
                    },
                    ProducePart {
                        index: 1,
                        error: 87,
                        base_offset: -1,
                        log_append_time: -1,
                        log_start_offset: -1,
                        record_errors: vec![(0, Some("bad record".into())), (3, None)],
                        error_message: Some("one or more records have been rejected".into()),
                        leader: None,
                    },
                    ProducePart {
                        index: 2,
                        error: 6,
                        base_offset: -1,
                        log_append_time: 1_700_000_000_000,
                        log_start_offset: 42,
                        record_errors: vec![],
                        error_message: None,
                        leader: Some((3, 9)),
                    },
                ],
            ),
            ("metrics".into(), vec![]),
        ],
        throttle: 250,
        endpoints: vec![
            (3, "broker-3.local".into(), 9094, Some("rack-c".into())),
            (4, "broker-4.local".into(), 9095, None),
        ],
        unknown_tags: true,
    }
}

#[test]
fn produce_response_v3_to_v12() {
    let case = sample_produce_response();
    for v in 3..=12 {
        check_produce_response(&case, v);
        check_produce_response(
            &ProduceResp { topics: vec![], throttle: 0, endpoints: vec![], unknown_tags: false },
            v,
        );
    }
}

#[derive(Debug, Clone, Copy)]
struct InitResp {
    throttle: i32,
    error: i16,
    producer_id: i64,
    epoch: i16,
}

fn check_init_producer_id_response(case: InitResp, version: i16) {
    let msg = kp::InitProducerIdResponse::default()
        .with_throttle_time_ms(case.throttle)
        .with_error_code(case.error)
        .with_producer_id(kp::ProducerId(case.producer_id))
        .with_producer_epoch(case.epoch);
    let f = kp_response(ApiKey::InitProducerId, version, 9, &msg);
    let got = InitProducerIdResponse::decode(our_body(&f, ApiKey::InitProducerId, version, 9), version)
        .expect("our InitProducerId decoder");
    assert_eq!(got.throttle_time_ms, case.throttle);
    assert_eq!(i16::from(got.error_code), case.error);
    assert_eq!(got.producer_id, case.producer_id);
    assert_eq!(got.producer_epoch, case.epoch);
    assert_eq!(got.tags.iter().count(), 0);
}

#[test]
fn init_producer_id_response_v0_to_v5() {
    for v in 0..=5 {
        check_init_producer_id_response(InitResp { throttle: 0, error: 0, producer_id: 1234, epoch: 5 }, v);
        check_init_producer_id_response(InitResp { throttle: 10, error: 47, producer_id: -1, epoch: -1 }, v);
        check_init_producer_id_response(
            InitResp { throttle: i32::MIN, error: i16::MIN, producer_id: i64::MAX, epoch: i16::MAX },
            v,
        );
    }
}

/// A FindCoordinator response's content. Before v4 the response holds one result and no key:
/// the first coordinator's (kafka-protocol's defaults if there is none).
#[derive(Debug, Clone)]
struct CoordCase {
    throttle: i32,
    /// (key, node id, host, port, error, message)
    coordinators: Vec<CoordEntry>,
    /// Unknown tagged fields at every level (seen at v3+).
    unknown_tags: bool,
}

type CoordEntry = (String, i32, String, i32, i16, Option<String>);

fn kp_find_coordinator(case: &CoordCase, version: i16) -> kp::FindCoordinatorResponse {
    let on = case.unknown_tags;
    let mut msg = kp::FindCoordinatorResponse::default().with_throttle_time_ms(case.throttle);
    if version >= 4 {
        msg = msg.with_coordinators(
            case.coordinators
                .iter()
                .map(|(key, node, host, port, error, message)| {
                    unknown_tags!(
                        on,
                        kfcres::Coordinator::default()
                            .with_key(s(key))
                            .with_node_id(kp::BrokerId(*node))
                            .with_host(s(host))
                            .with_port(*port)
                            .with_error_code(*error)
                            .with_error_message(message.as_deref().map(s))
                    )
                })
                .collect(),
        );
    } else {
        let (_, node, host, port, error, message) = case.coordinators.first().cloned().unwrap_or_default();
        msg = msg
            .with_error_code(error)
            .with_error_message(message.as_deref().map(s))
            .with_node_id(kp::BrokerId(node))
            .with_host(s(&host))
            .with_port(port);
    }
    unknown_tags!(on, msg)
}

fn check_find_coordinator_response(case: &CoordCase, version: i16) {
    let v = version;
    let msg = kp_find_coordinator(case, v);
    let f = kp_response(ApiKey::FindCoordinator, v, 21, &msg);
    let got = FindCoordinatorResponse::decode(our_body(&f, ApiKey::FindCoordinator, v, 21), v)
        .expect("our FindCoordinator decoder");
    assert_eq!(got.throttle_time_ms, case.throttle);
    type Got = (Option<String>, i32, String, i32, i16, Option<String>);
    let as_got = |c: Coordinator<'_>| -> Got {
        (
            c.key.map(str::to_owned),
            c.node_id,
            c.host.to_owned(),
            c.port,
            i16::from(c.error_code),
            c.error_message.map(str::to_owned),
        )
    };
    let coordinators: Vec<Got> = got.coordinators.iter().map(as_got).collect();
    if v >= 4 {
        let want: Vec<Got> = case
            .coordinators
            .iter()
            .map(|(k, n, h, p, e, m)| (Some(k.clone()), *n, h.clone(), *p, *e, m.clone()))
            .collect();
        assert_eq!(coordinators, want, "v{v}");
        for (key, ..) in &case.coordinators {
            let first = want.iter().find(|c| c.0.as_deref() == Some(key.as_str())).cloned();
            assert_eq!(got.coordinator(key).map(as_got), first, "v{v}");
        }
        assert_eq!(got.coordinator("no such key \u{0}"), None);
    } else {
        let (_, n, h, p, e, m) = case.coordinators.first().cloned().unwrap_or_default();
        assert_eq!(coordinators, [(None, n, h, p, e, m)], "v{v}");
        assert_eq!(got.coordinator("whatever was asked").map(as_got), coordinators.first().cloned());
    }
    let tags: Vec<u32> = got.tags.iter().map(|(t, _)| t).collect();
    let want: &[u32] = if case.unknown_tags && v >= 3 { &[5, 200] } else { &[] };
    assert_eq!(tags, want, "v{v}: unknown tagged fields are kept");
    assert_eq!(got.trailing_bytes, 0);
}

fn sample_find_coordinator() -> CoordCase {
    CoordCase {
        throttle: 7,
        coordinators: vec![
            ("txn-1".into(), 2, "broker-2.local".into(), 9093, 0, None),
            ("txn-2".into(), -1, String::new(), -1, 15, Some("The coordinator is not available.".into())),
            ("".into(), 3, "broker-3.local".into(), 9094, 0, Some(String::new())),
        ],
        unknown_tags: true,
    }
}

#[test]
fn find_coordinator_response_v1_to_v5() {
    for v in 1..=5 {
        check_find_coordinator_response(&sample_find_coordinator(), v);
        let mut failed = sample_find_coordinator();
        failed.coordinators.swap(0, 1);
        failed.unknown_tags = false;
        check_find_coordinator_response(&failed, v);
        check_find_coordinator_response(
            &CoordCase { throttle: 0, coordinators: vec![], unknown_tags: false },
            v,
        );
    }
}

/// Per-topic, per-partition error codes: the shape of the AddPartitionsToTxn (v0–v3) and
/// TxnOffsetCommit responses.
#[derive(Debug, Clone)]
struct TopicErrors {
    throttle: i32,
    /// (topic, [(partition, error)])
    topics: Vec<(String, Vec<(i32, i16)>)>,
    /// Unknown tagged fields at every level (seen at v3+).
    unknown_tags: bool,
}

fn kp_add_partitions_to_txn(case: &TopicErrors) -> kp::AddPartitionsToTxnResponse {
    let on = case.unknown_tags;
    let msg = kp::AddPartitionsToTxnResponse::default()
        .with_throttle_time_ms(case.throttle)
        .with_results_by_topic_v3_and_below(
            case.topics
                .iter()
                .map(|(name, parts)| {
                    unknown_tags!(
                        on,
                        kaptres::AddPartitionsToTxnTopicResult::default()
                            .with_name(topic_name(name))
                            .with_results_by_partition(
                                parts
                                    .iter()
                                    .map(|(index, error)| {
                                        unknown_tags!(
                                            on,
                                            kaptres::AddPartitionsToTxnPartitionResult::default()
                                                .with_partition_index(*index)
                                                .with_partition_error_code(*error)
                                        )
                                    })
                                    .collect()
                            )
                    )
                })
                .collect(),
        );
    unknown_tags!(on, msg)
}

fn kp_txn_offset_commit(case: &TopicErrors) -> kp::TxnOffsetCommitResponse {
    let on = case.unknown_tags;
    let msg = kp::TxnOffsetCommitResponse::default().with_throttle_time_ms(case.throttle).with_topics(
        case.topics
            .iter()
            .map(|(name, parts)| {
                unknown_tags!(
                    on,
                    ktocres::TxnOffsetCommitResponseTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(index, error)| {
                                    unknown_tags!(
                                        on,
                                        ktocres::TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(*index)
                                            .with_error_code(*error)
                                    )
                                })
                                .collect()
                        )
                )
            })
            .collect(),
    );
    unknown_tags!(on, msg)
}

/// Compares what our decoder saw with `case`: nested, flattened by `results`, and the tags.
fn check_topic_errors(
    case: &TopicErrors,
    version: i16,
    throttle: i32,
    nested: Vec<(String, Vec<(i32, i16)>)>,
    flat: Vec<(String, i32, i16)>,
    tags: Vec<u32>,
) {
    let v = version;
    assert_eq!(throttle, case.throttle);
    assert_eq!(nested, case.topics, "v{v}");
    let want: Vec<(String, i32, i16)> =
        case.topics.iter().flat_map(|(t, ps)| ps.iter().map(move |(p, e)| (t.clone(), *p, *e))).collect();
    assert_eq!(flat, want, "v{v}");
    let want_tags: &[u32] = if case.unknown_tags && v >= 3 { &[5, 200] } else { &[] };
    assert_eq!(tags, want_tags, "v{v}: unknown tagged fields are kept");
}

fn check_add_partitions_to_txn_response(case: &TopicErrors, version: i16) {
    let f = kp_response(ApiKey::AddPartitionsToTxn, version, 24, &kp_add_partitions_to_txn(case));
    let got =
        AddPartitionsToTxnResponse::decode(our_body(&f, ApiKey::AddPartitionsToTxn, version, 24), version)
            .expect("our AddPartitionsToTxn decoder");
    assert_eq!(got.trailing_bytes, 0);
    check_topic_errors(
        case,
        version,
        got.throttle_time_ms,
        got.topics
            .iter()
            .map(|t| {
                (
                    t.name.to_owned(),
                    t.partitions.iter().map(|p| (p.partition_index, i16::from(p.error_code))).collect(),
                )
            })
            .collect(),
        got.results().map(|(t, p, e)| (t.to_owned(), p, i16::from(e))).collect(),
        got.tags.iter().map(|(t, _)| t).collect(),
    );
}

fn check_txn_offset_commit_response(case: &TopicErrors, version: i16) {
    let f = kp_response(ApiKey::TxnOffsetCommit, version, 28, &kp_txn_offset_commit(case));
    let got = TxnOffsetCommitResponse::decode(our_body(&f, ApiKey::TxnOffsetCommit, version, 28), version)
        .expect("our TxnOffsetCommit decoder");
    assert_eq!(got.trailing_bytes, 0);
    check_topic_errors(
        case,
        version,
        got.throttle_time_ms,
        got.topics
            .iter()
            .map(|t| {
                (
                    t.name.to_owned(),
                    t.partitions.iter().map(|p| (p.partition_index, i16::from(p.error_code))).collect(),
                )
            })
            .collect(),
        got.results().map(|(t, p, e)| (t.to_owned(), p, i16::from(e))).collect(),
        got.tags.iter().map(|(t, _)| t).collect(),
    );
}

fn sample_topic_errors() -> TopicErrors {
    TopicErrors {
        throttle: 30,
        topics: vec![
            ("events".into(), vec![(0, 0), (1, 51), (2, 55)]),
            ("metrics".into(), vec![(i32::MAX, -1)]),
            ("empty".into(), vec![]),
        ],
        unknown_tags: true,
    }
}

#[test]
fn add_partitions_to_txn_response_v0_to_v3() {
    for v in 0..=3 {
        check_add_partitions_to_txn_response(&sample_topic_errors(), v);
        check_add_partitions_to_txn_response(
            &TopicErrors { throttle: 0, topics: vec![], unknown_tags: false },
            v,
        );
    }
}

#[test]
fn txn_offset_commit_response_v0_to_v5() {
    for v in 0..=5 {
        check_txn_offset_commit_response(&sample_topic_errors(), v);
        check_txn_offset_commit_response(
            &TopicErrors { throttle: 0, topics: vec![], unknown_tags: false },
            v,
        );
    }
}

#[derive(Debug, Clone, Copy)]
struct EndResp {
    throttle: i32,
    error: i16,
    producer_id: i64,
    epoch: i16,
    unknown_tags: bool,
}

fn check_end_txn_response(case: EndResp, version: i16) {
    // kafka-protocol leaves the v5 fields out below v5 (they are ignorable).
    let msg = unknown_tags!(
        case.unknown_tags,
        kp::EndTxnResponse::default()
            .with_throttle_time_ms(case.throttle)
            .with_error_code(case.error)
            .with_producer_id(kp::ProducerId(case.producer_id))
            .with_producer_epoch(case.epoch)
    );
    let f = kp_response(ApiKey::EndTxn, version, 26, &msg);
    let got = EndTxnResponse::decode(our_body(&f, ApiKey::EndTxn, version, 26), version)
        .expect("our EndTxn decoder");
    assert_eq!(got.throttle_time_ms, case.throttle);
    assert_eq!(i16::from(got.error_code), case.error);
    let (pid, epoch) = if version >= 5 { (case.producer_id, case.epoch) } else { (-1, -1) };
    assert_eq!((got.producer_id, got.producer_epoch), (pid, epoch), "v{version}");
    let tags: Vec<u32> = got.tags.iter().map(|(t, _)| t).collect();
    let want: &[u32] = if case.unknown_tags && version >= 3 { &[5, 200] } else { &[] };
    assert_eq!(tags, want, "v{version}");
    assert_eq!(got.trailing_bytes, 0);
}

#[test]
fn end_txn_response_v0_to_v5() {
    for v in 0..=5 {
        check_end_txn_response(
            EndResp { throttle: 0, error: 0, producer_id: 4242, epoch: 4, unknown_tags: false },
            v,
        );
        check_end_txn_response(
            EndResp { throttle: 10, error: 51, producer_id: -1, epoch: -1, unknown_tags: true },
            v,
        );
        check_end_txn_response(
            EndResp {
                throttle: i32::MIN,
                error: i16::MIN,
                producer_id: i64::MAX,
                epoch: i16::MAX,
                unknown_tags: true,
            },
            v,
        );
    }
}

fn check_add_offsets_to_txn_response(throttle: i32, error: i16, unknown_tags: bool, version: i16) {
    let msg = unknown_tags!(
        unknown_tags,
        kp::AddOffsetsToTxnResponse::default().with_throttle_time_ms(throttle).with_error_code(error)
    );
    let f = kp_response(ApiKey::AddOffsetsToTxn, version, 25, &msg);
    let got = AddOffsetsToTxnResponse::decode(our_body(&f, ApiKey::AddOffsetsToTxn, version, 25), version)
        .expect("our AddOffsetsToTxn decoder");
    assert_eq!(got.throttle_time_ms, throttle);
    assert_eq!(i16::from(got.error_code), error);
    let tags: Vec<u32> = got.tags.iter().map(|(t, _)| t).collect();
    let want: &[u32] = if unknown_tags && version >= 3 { &[5, 200] } else { &[] };
    assert_eq!(tags, want, "v{version}");
    assert_eq!(got.trailing_bytes, 0);
}

#[test]
fn add_offsets_to_txn_response_v0_to_v3() {
    for v in 0..=3 {
        check_add_offsets_to_txn_response(0, 0, false, v);
        check_add_offsets_to_txn_response(5, 30, true, v);
        check_add_offsets_to_txn_response(i32::MAX, i16::MIN, true, v);
    }
}

#[test]
fn long_fields_take_multibyte_lengths() {
    // Counts and lengths past 127 (two-byte varints in flexible versions) and past 16383 (three).
    let long = |c: char, n: usize| core::iter::repeat_n(c, n).collect::<String>();
    check_api_versions_request(&long('n', 300), &long('v', 20_000), 1, Some(&long('c', 400)));
    let names: Vec<String> = (0..200).map(|i| format!("{i}{}", long('t', 246))).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    check_metadata_request(Some(&refs), true, 2, None);
    let txn = long('x', 5000);
    check_init_producer_id_request(
        InitProducerIdRequest {
            transactional_id: Some(&txn),
            transaction_timeout_ms: 1,
            producer_id: 2,
            producer_epoch: 3,
        },
        3,
        None,
    );

    let big: Vec<Rec> = (0..8)
        .map(|i| Rec {
            timestamp: 1_700_000_000_000 + i,
            key: Some(vec![i as u8; 200]),
            value: Some((0..6000).map(|j| (j * 7 + i as usize) as u8).collect()),
            headers: vec![(long('h', 300), Some(vec![1; 300]))],
        })
        .collect();
    let small = vec![Rec { timestamp: 5, key: None, value: Some(b"v".to_vec()), headers: vec![] }];
    let mut partitions: Vec<PartitionCase> =
        (0..130).map(|i| (i, small.clone(), Compression::None, ProducerState::NONE)).collect();
    partitions.push((130, big.clone(), Compression::None, IDEMPOTENT));
    partitions.push((131, big, Compression::Lz4, IDEMPOTENT));
    let case = ProduceCase {
        transactional_id: Some(long('t', 249)),
        acks: -1,
        timeout_ms: 5,
        topics: vec![(long('p', 249), partitions)],
    };
    check_produce_request(&case, 4, Some("picokafka"));

    let mut meta = sample_metadata();
    meta.brokers.push((9, long('b', 300), 1, Some(long('r', 200))));
    meta.cluster_id = Some(long('c', 1000));
    meta.topics[0].partitions = (0..200)
        .map(|i| MetaPartition {
            error: 0,
            index: i,
            leader: i,
            epoch: i,
            replicas: (0..130).collect(),
            isr: (0..129).collect(),
            offline: (0..128).collect(),
        })
        .collect();
    for v in 1..=12 {
        check_metadata_response(&meta, v);
    }

    // The transaction messages.
    check_find_coordinator_request(CoordinatorType::Transaction, &txn, 5, None);
    check_end_txn_request(
        EndTxnRequest { transactional_id: &txn, producer_id: 1, producer_epoch: 2, committed: true },
        6,
        Some(&long('c', 200)),
    );
    check_add_offsets_to_txn_request(
        AddOffsetsToTxnRequest {
            transactional_id: &txn,
            producer_id: 1,
            producer_epoch: 2,
            group_id: &long('g', 300),
        },
        7,
        None,
    );
    let many: Vec<(String, Vec<i32>)> = (0..150)
        .map(|i| (format!("{i}{}", long('t', 200)), if i == 0 { (0..200).collect() } else { vec![i] }))
        .collect();
    check_add_partitions_to_txn_request(&txn, 1, 2, &many, 8, None);
    let mut commit = sample_commit();
    commit.transactional_id = long('x', 300);
    commit.group_id = long('g', 20_000);
    commit.member_id = long('m', 300);
    commit.group_instance_id = Some(long('i', 200));
    commit.topics[0].1 = (0..130)
        .map(|i| {
            (i, i64::from(i) << 33, i, if i == 0 { Some(long('d', 20_000)) } else { Some(long('d', 130)) })
        })
        .collect();
    commit.topics.extend((0..130).map(|i| (format!("{i}"), vec![])));
    check_txn_offset_commit_request(&commit, 9, None);

    let mut coord = sample_find_coordinator();
    coord.coordinators[0].2 = long('h', 300);
    coord.coordinators[1].5 = Some(long('m', 20_000));
    coord.coordinators.extend((0..130).map(|i| (long('k', i), i as i32, long('h', 130), 1, 0, None)));
    for v in 1..=5 {
        check_find_coordinator_response(&coord, v);
    }
    let mut errors = sample_topic_errors();
    errors.topics[0].1 = (0..200).map(|i| (i, (i % 120) as i16)).collect();
    errors.topics.extend((0..130).map(|i| (long('t', 130 + i), vec![(i as i32, 0)])));
    for v in 0..=3 {
        check_add_partitions_to_txn_response(&errors, v);
        check_txn_offset_commit_response(&errors, v);
    }

    let mut produce = sample_produce_response();
    produce.topics[0].1[1].record_errors = (0..150).map(|i| (i, Some(long('e', i as usize)))).collect();
    produce.topics[0].1[1].error_message = Some(long('m', 20_000));
    produce.endpoints.push((5, long('h', 300), 1, Some(long('r', 300))));
    for v in 3..=11 {
        check_produce_response(&produce, v);
    }
}

// ---------------------------------------------------------------------------------------------
// Headers and the flexible-version table
// ---------------------------------------------------------------------------------------------

#[test]
fn header_versions_agree_for_every_key_we_know() {
    let keys = [
        ApiKey::Produce,
        ApiKey::Metadata,
        ApiKey::FindCoordinator,
        ApiKey::SaslHandshake,
        ApiKey::ApiVersions,
        ApiKey::InitProducerId,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::TxnOffsetCommit,
        ApiKey::SaslAuthenticate,
    ];
    for key in keys {
        let api = kp_key(key);
        let range = api.valid_versions();
        for v in range.min..=range.max {
            assert_eq!(key.request_header_version(v), api.request_header_version(v), "{key:?} v{v} request");
            assert_eq!(
                key.response_header_version(v),
                api.response_header_version(v),
                "{key:?} v{v} response"
            );
        }
    }
}

#[test]
fn response_header_v0_and_v1() {
    for (key, version) in [
        (ApiKey::ApiVersions, 4),
        (ApiKey::Produce, 8),
        (ApiKey::Produce, 9),
        (ApiKey::Metadata, 8),
        (ApiKey::Metadata, 12),
        (ApiKey::InitProducerId, 1),
        (ApiKey::InitProducerId, 2),
        (ApiKey::FindCoordinator, 2),
        (ApiKey::FindCoordinator, 5),
        (ApiKey::AddPartitionsToTxn, 2),
        (ApiKey::AddPartitionsToTxn, 3),
        (ApiKey::AddOffsetsToTxn, 2),
        (ApiKey::AddOffsetsToTxn, 3),
        (ApiKey::EndTxn, 2),
        (ApiKey::EndTxn, 5),
        (ApiKey::TxnOffsetCommit, 2),
        (ApiKey::TxnOffsetCommit, 3),
    ] {
        let header_version = kp_key(key).response_header_version(version);
        for correlation_id in [0, 1, -1, i32::MAX, i32::MIN] {
            let mut h = kp::ResponseHeader::default().with_correlation_id(correlation_id);
            if header_version >= 1 {
                h = h
                    .with_unknown_tagged_field(0, Bytes::from_static(b"x"))
                    .with_unknown_tagged_field(300, Bytes::new());
            }
            let mut bytes = kp_encode(&h, header_version);
            bytes.extend_from_slice(b"body");
            let mut r = Reader::new(&bytes);
            let got = ResponseHeader::decode(&mut r, key, version).expect("our response header decoder");
            assert_eq!(got.correlation_id, correlation_id);
            assert_eq!(r.rest(), b"body", "{key:?} v{version}: header v{header_version} consumed exactly");
            let tags: Vec<(u32, Vec<u8>)> = got.tags.iter().map(|(t, d)| (t, d.to_vec())).collect();
            let want: Vec<(u32, Vec<u8>)> =
                h.unknown_tagged_fields.iter().map(|(t, d)| (*t as u32, d.to_vec())).collect();
            assert_eq!(tags, want);
            assert_eq!(picokafka::protocol::header::peek_correlation_id(&bytes), Ok(correlation_id));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests: arbitrary content, both directions
// ---------------------------------------------------------------------------------------------

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn arb_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![arb_bytes(64), "(kafka |pico |[a-z]{1,3} ){0,40}".prop_map(String::into_bytes)]
}

fn arb_rec() -> impl Strategy<Value = Rec> {
    (
        0i64..1 << 42,
        prop::option::of(arb_bytes(16)),
        prop::option::of(arb_value()),
        prop::collection::vec(("[a-z]{0,5}", prop::option::of(arb_bytes(8))), 0..3),
    )
        .prop_map(|(timestamp, key, value, headers)| Rec {
            timestamp,
            key,
            value,
            // A letters-then-digits key is unique per index.
            headers: headers.into_iter().enumerate().map(|(i, (k, v))| (format!("{k}{i}"), v)).collect(),
        })
}

fn arb_producer() -> impl Strategy<Value = ProducerState> {
    prop_oneof![
        Just(ProducerState::NONE),
        (0i64..i64::MAX, 0i16..i16::MAX, 0i32..i32::MAX, any::<bool>()).prop_map(
            |(producer_id, producer_epoch, base_sequence, transactional)| ProducerState {
                producer_id,
                producer_epoch,
                base_sequence,
                transactional,
            }
        ),
    ]
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::None), Just(Compression::Lz4)]
}

const TOPIC: &str = "[a-zA-Z0-9._-]{1,24}";

fn arb_produce_case() -> impl Strategy<Value = ProduceCase> {
    (
        prop::option::of("\\PC{0,12}"),
        prop_oneof![Just(-1i16), Just(0), Just(1)],
        any::<i32>(),
        prop::collection::vec(
            (
                TOPIC,
                prop::collection::vec(
                    (any::<i32>(), prop::collection::vec(arb_rec(), 1..5), arb_compression(), arb_producer()),
                    0..3,
                ),
            ),
            0..3,
        ),
    )
        .prop_map(|(transactional_id, acks, timeout_ms, topics)| ProduceCase {
            transactional_id,
            acks,
            timeout_ms,
            topics,
        })
}

fn arb_endpoint() -> impl Strategy<Value = (i32, String, i32, Option<String>)> {
    (any::<i32>(), "\\PC{0,16}", any::<i32>(), prop::option::of("\\PC{0,6}"))
}

fn arb_meta_case() -> impl Strategy<Value = MetaCase> {
    let partition = (
        any::<i16>(),
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
        prop::collection::vec(any::<i32>(), 0..5),
        prop::collection::vec(any::<i32>(), 0..5),
        prop::collection::vec(any::<i32>(), 0..3),
    )
        .prop_map(|(error, index, leader, epoch, replicas, isr, offline)| MetaPartition {
            error,
            index,
            leader,
            epoch,
            replicas,
            isr,
            offline,
        });
    let topic = (
        any::<i16>(),
        TOPIC,
        any::<[u8; 16]>(),
        any::<bool>(),
        prop::collection::vec(partition, 0..4),
        any::<i32>(),
    )
        .prop_map(|(error, name, id, internal, partitions, ops)| MetaTopic {
            error,
            name: Some(name),
            id,
            internal,
            partitions,
            ops,
        });
    (
        any::<i32>(),
        prop::collection::vec(arb_endpoint(), 0..4),
        prop::option::of("\\PC{0,22}"),
        any::<i32>(),
        prop::collection::vec(topic, 0..4),
        any::<i32>(),
        any::<bool>(),
    )
        .prop_map(|(throttle, brokers, cluster_id, controller, topics, cluster_ops, unknown_tags)| {
            MetaCase { throttle, brokers, cluster_id, controller, topics, cluster_ops, unknown_tags }
        })
}

fn arb_commit_case() -> impl Strategy<Value = CommitCase> {
    let partition = (any::<i32>(), any::<i64>(), any::<i32>(), prop::option::of("\\PC{0,12}"));
    (
        ("\\PC{0,12}", "\\PC{0,12}", any::<i64>(), any::<i16>()),
        (any::<i32>(), "\\PC{0,12}", prop::option::of("\\PC{0,8}")),
        prop::collection::vec((TOPIC, prop::collection::vec(partition, 0..4)), 0..3),
    )
        .prop_map(
            |(
                (transactional_id, group_id, producer_id, producer_epoch),
                (generation_id, member_id, group_instance_id),
                topics,
            )| CommitCase {
                transactional_id,
                group_id,
                producer_id,
                producer_epoch,
                generation_id,
                member_id,
                group_instance_id,
                topics,
            },
        )
}

fn arb_coord_case() -> impl Strategy<Value = CoordCase> {
    let entry = (
        "\\PC{0,12}",
        any::<i32>(),
        "\\PC{0,16}",
        any::<i32>(),
        any::<i16>(),
        prop::option::of("\\PC{0,20}"),
    );
    (any::<i32>(), prop::collection::vec(entry, 0..4), any::<bool>())
        .prop_map(|(throttle, coordinators, unknown_tags)| CoordCase { throttle, coordinators, unknown_tags })
}

fn arb_topic_errors() -> impl Strategy<Value = TopicErrors> {
    (
        any::<i32>(),
        prop::collection::vec((TOPIC, prop::collection::vec(any::<(i32, i16)>(), 0..5)), 0..4),
        any::<bool>(),
    )
        .prop_map(|(throttle, topics, unknown_tags)| TopicErrors { throttle, topics, unknown_tags })
}

fn arb_produce_resp() -> impl Strategy<Value = ProduceResp> {
    let part = (
        (any::<i32>(), any::<i16>(), any::<i64>(), any::<i64>(), any::<i64>()),
        prop::collection::vec((any::<i32>(), prop::option::of("\\PC{0,12}")), 0..3),
        prop::option::of("\\PC{0,20}"),
        prop::option::of((any::<i32>(), any::<i32>())),
    )
        .prop_map(
            |(
                (index, error, base_offset, log_append_time, log_start_offset),
                record_errors,
                error_message,
                leader,
            )| {
                ProducePart {
                    index,
                    error,
                    base_offset,
                    log_append_time,
                    log_start_offset,
                    record_errors,
                    error_message,
                    leader,
                }
            },
        );
    (
        prop::collection::vec((TOPIC, prop::collection::vec(part, 0..4)), 0..3),
        any::<i32>(),
        prop::collection::vec(arb_endpoint(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(topics, throttle, endpoints, unknown_tags)| ProduceResp {
            topics,
            throttle,
            endpoints,
            unknown_tags,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prop_produce_request(case in arb_produce_case(), correlation_id: i32) {
        check_produce_request(&case, correlation_id, Some("picokafka"));
    }

    #[test]
    fn prop_batches_both_ways(
        records in prop::collection::vec(arb_rec(), 1..12),
        codec in arb_compression(),
        producer in arb_producer(),
    ) {
        let ours = build_batch(&records, codec, producer);
        let seen = check_batch_with_kp(&ours, &records, producer);
        // LZ4 is kept only when it shrinks the records.
        prop_assert_eq!(check_batch_with_ours(&ours, &records, producer), if seen == KpCompression::Lz4 { Compression::Lz4 } else { Compression::None });
        prop_assert!(codec == Compression::Lz4 || seen == KpCompression::None);
        let theirs = kp_batch(&records, producer, kp_compression(codec));
        prop_assert_eq!(check_batch_with_ours(&theirs, &records, producer), codec);
    }

    #[test]
    fn prop_metadata_request(
        topics in prop::option::of(prop::collection::vec("\\PC{0,20}", 0..5)),
        allow: bool,
        correlation_id: i32,
        client_id in prop::option::of("\\PC{0,10}"),
    ) {
        let names: Option<Vec<&str>> = topics.as_ref().map(|t| t.iter().map(String::as_str).collect());
        check_metadata_request(names.as_deref(), allow, correlation_id, client_id.as_deref());
    }

    #[test]
    fn prop_api_versions_and_init_producer_id_requests(
        name in "\\PC{0,16}",
        version in "\\PC{0,16}",
        txn in prop::option::of("\\PC{0,16}"),
        timeout: i32,
        pid: i64,
        epoch: i16,
        correlation_id: i32,
    ) {
        check_api_versions_request(&name, &version, correlation_id, Some("c"));
        let req = InitProducerIdRequest {
            transactional_id: txn.as_deref(),
            transaction_timeout_ms: timeout,
            producer_id: pid,
            producer_epoch: epoch,
        };
        check_init_producer_id_request(req, correlation_id, None);
    }

    #[test]
    fn prop_txn_requests(
        txn in "\\PC{0,16}",
        group in "\\PC{0,16}",
        (producer_id, producer_epoch, committed, group_key) in any::<(i64, i16, bool, bool)>(),
        topics in prop::collection::vec((TOPIC, prop::collection::vec(any::<i32>(), 0..5)), 0..4),
        commit in arb_commit_case(),
        correlation_id: i32,
        client_id in prop::option::of("\\PC{0,10}"),
    ) {
        let client_id = client_id.as_deref();
        let key_type = if group_key { CoordinatorType::Group } else { CoordinatorType::Transaction };
        check_find_coordinator_request(key_type, &txn, correlation_id, client_id);
        check_add_partitions_to_txn_request(&txn, producer_id, producer_epoch, &topics, correlation_id, client_id);
        let end = EndTxnRequest { transactional_id: &txn, producer_id, producer_epoch, committed };
        check_end_txn_request(end, correlation_id, client_id);
        let add = AddOffsetsToTxnRequest { transactional_id: &txn, producer_id, producer_epoch, group_id: &group };
        check_add_offsets_to_txn_request(add, correlation_id, client_id);
        check_txn_offset_commit_request(&commit, correlation_id, client_id);
    }

    #[test]
    fn prop_txn_responses(
        coord in arb_coord_case(),
        errors in arb_topic_errors(),
        (throttle, error, producer_id, epoch, unknown_tags) in any::<(i32, i16, i64, i16, bool)>(),
        version in 0i16..=5,
    ) {
        if version >= 1 {
            check_find_coordinator_response(&coord, version);
        }
        if version <= 3 {
            check_add_partitions_to_txn_response(&errors, version);
            check_txn_offset_commit_response(&errors, version);
            check_add_offsets_to_txn_response(throttle, error, unknown_tags, version);
        }
        check_end_txn_response(EndResp { throttle, error, producer_id, epoch, unknown_tags }, version);
    }

    #[test]
    fn prop_metadata_response(case in arb_meta_case(), version in 1i16..=12) {
        check_metadata_response(&case, version);
    }

    #[test]
    fn prop_produce_response(case in arb_produce_resp(), version in 3i16..=11) {
        check_produce_response(&case, version);
    }

    #[test]
    fn prop_api_versions_response(
        error in any::<i16>().prop_filter("35 selects the v0 fallback", |e| *e != 35),
        keys in prop::collection::vec(any::<(i16, i16, i16)>(), 0..20),
        throttle: i32,
        epoch in prop_oneof![Just(-1i64), any::<i64>()],
        zk: bool,
        version in 0i16..=4,
    ) {
        let msg = kp_api_versions(error, &keys, throttle).with_finalized_features_epoch(epoch).with_zk_migration_ready(zk);
        check_api_versions_response(&msg, version);
    }

    #[test]
    fn prop_init_producer_id_response(throttle: i32, error: i16, producer_id: i64, epoch: i16, version in 0i16..=5) {
        check_init_producer_id_response(InitResp { throttle, error, producer_id, epoch }, version);
    }
}

// ---------------------------------------------------------------------------------------------
// Totality: no input makes a decoder panic
// ---------------------------------------------------------------------------------------------

/// Feeds `bytes` to every response decoder at `version`, and walks whatever they accept
/// (formatting walks every lazily decoded array).
fn exercise_responses(bytes: &[u8], version: i16) {
    if let Ok(r) = ApiVersionsResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
        let _ = r.negotiate(ApiKey::Produce, 3, 11);
        let _ = r.tags.iter().count();
    }
    if let Ok(r) = MetadataResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
        let _ = r.topic("events");
        let _ = r.broker(1);
    }
    if let Ok(r) = InitProducerIdResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
    }
    if let Ok(r) = ProduceResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
        for t in r.responses {
            for p in t.partitions {
                let _ = p.record_errors.iter().count();
            }
        }
    }
    if let Ok(r) = FindCoordinatorResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
        let _ = r.coordinator("txn-1");
        let _ = r.tags.iter().count();
    }
    if let Ok(r) = AddPartitionsToTxnResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
        let _ = r.results().count();
    }
    if let Ok(r) = AddOffsetsToTxnResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
    }
    if let Ok(r) = EndTxnResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
    }
    if let Ok(r) = TxnOffsetCommitResponse::decode(bytes, version) {
        let _ = format!("{r:?}");
        let _ = r.results().count();
    }
    for key in [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::InitProducerId,
        ApiKey::Produce,
        ApiKey::FindCoordinator,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::TxnOffsetCommit,
    ] {
        let mut r = Reader::new(bytes);
        if let Ok(h) = ResponseHeader::decode(&mut r, key, version) {
            let _ = h.tags.iter().count();
        }
    }
}

/// Feeds `bytes` to the record batch decoder and everything behind it.
fn exercise_batch(bytes: &[u8], out_len: usize) {
    let mut input = bytes;
    // A frame may hold several batches; a decoder must make progress or stop.
    for _ in 0..4 {
        let Ok((batch, rest)) = RecordBatch::decode(input) else { return };
        assert!(rest.len() < input.len());
        let _ = format!("{batch:?}");
        if let Ok(records) = batch.records() {
            let _ = format!("{records:?}");
        }
        let mut out = vec![0u8; out_len];
        if let Ok(records) = batch.decompress_records(&mut out) {
            for r in records {
                let _ = r.headers.iter().count();
            }
        }
        input = rest;
    }
}

/// Overwrites the CRC of a (possibly mutated) batch so that the decoder looks past it.
fn fix_crc(batch: &mut [u8]) {
    if batch.len() >= 21 {
        let crc = crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Valid encodings of every response, at `version` where the API has it, from kafka-protocol.
fn valid_responses(version: i16) -> Vec<(ApiKey, Vec<u8>)> {
    let mut out = vec![];
    if (0..=4).contains(&version) {
        out.push((ApiKey::ApiVersions, kp_encode(&kp_api_versions(0, &OUR_KEYS, 3), version)));
    }
    if (1..=12).contains(&version) {
        out.push((ApiKey::Metadata, kp_encode(&kp_metadata(&sample_metadata(), version), version)));
    }
    if (0..=5).contains(&version) {
        let msg =
            kp::InitProducerIdResponse::default().with_producer_id(kp::ProducerId(7)).with_producer_epoch(1);
        out.push((ApiKey::InitProducerId, kp_encode(&msg, version)));
    }
    if (3..=11).contains(&version) {
        out.push((
            ApiKey::Produce,
            kp_encode(&kp_produce_response(&sample_produce_response(), version), version),
        ));
    }
    if (1..=5).contains(&version) {
        let msg = kp_find_coordinator(&sample_find_coordinator(), version);
        out.push((ApiKey::FindCoordinator, kp_encode(&msg, version)));
    }
    if (0..=3).contains(&version) {
        let msg = kp_add_partitions_to_txn(&sample_topic_errors());
        out.push((ApiKey::AddPartitionsToTxn, kp_encode(&msg, version)));
        let msg = kp::AddOffsetsToTxnResponse::default().with_throttle_time_ms(1).with_error_code(51);
        out.push((ApiKey::AddOffsetsToTxn, kp_encode(&msg, version)));
        let msg = kp_txn_offset_commit(&sample_topic_errors());
        out.push((ApiKey::TxnOffsetCommit, kp_encode(&msg, version)));
    }
    if (0..=5).contains(&version) {
        let msg = kp::EndTxnResponse::default().with_producer_id(kp::ProducerId(7)).with_producer_epoch(2);
        out.push((ApiKey::EndTxn, kp_encode(&msg, version)));
    }
    out
}

fn decode_at(key: ApiKey, bytes: &[u8], version: i16) -> Result<(), DecodeError> {
    match key {
        ApiKey::ApiVersions => ApiVersionsResponse::decode(bytes, version).map(drop),
        ApiKey::Metadata => MetadataResponse::decode(bytes, version).map(drop),
        ApiKey::InitProducerId => InitProducerIdResponse::decode(bytes, version).map(drop),
        ApiKey::Produce => ProduceResponse::decode(bytes, version).map(drop),
        ApiKey::FindCoordinator => FindCoordinatorResponse::decode(bytes, version).map(drop),
        ApiKey::AddPartitionsToTxn => AddPartitionsToTxnResponse::decode(bytes, version).map(drop),
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnResponse::decode(bytes, version).map(drop),
        ApiKey::EndTxn => EndTxnResponse::decode(bytes, version).map(drop),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitResponse::decode(bytes, version).map(drop),
        other => unreachable!("{other:?}"),
    }
}

#[test]
fn every_strict_prefix_of_a_valid_response_is_an_error() {
    // Each decoder reads deterministically and must consume its whole input, so a strict prefix
    // of a valid body cannot decode. (ApiVersions is left out: its v0 fallback re-reads the body,
    // and that is allowed to succeed on a prefix.)
    for version in 0..=12 {
        for (key, bytes) in valid_responses(version) {
            assert_eq!(decode_at(key, &bytes, version), Ok(()), "{key:?} v{version}");
            for cut in 0..bytes.len() {
                exercise_responses(&bytes[..cut], version);
                if key != ApiKey::ApiVersions {
                    assert!(
                        decode_at(key, &bytes[..cut], version).is_err(),
                        "{key:?} v{version} prefix {cut}"
                    );
                }
            }
            // Trailing bytes are tolerated (and counted), as the Java client and librdkafka
            // tolerate them: librdkafka's mock cluster sends a Metadata field v11 dropped.
            let mut long = bytes.clone();
            long.push(0);
            if key != ApiKey::ApiVersions {
                assert_eq!(decode_at(key, &long, version), Ok(()), "{key:?} v{version}");
            }
        }
    }
}

#[test]
fn every_strict_prefix_of_a_batch_is_an_error() {
    let records = sample_records();
    for codec in [Compression::None, Compression::Lz4] {
        let batch = build_batch(&records, codec, IDEMPOTENT);
        for cut in 0..batch.len() {
            assert!(RecordBatch::decode(&batch[..cut]).is_err(), "{codec:?} prefix {cut}");
        }
        // A truncated records section under a fixed-up length and CRC decodes as a header but
        // its records do not.
        for cut in HEADER_LEN..batch.len() {
            let mut short = batch[..cut].to_vec();
            short[8..12].copy_from_slice(&((cut - 12) as i32).to_be_bytes());
            fix_crc(&mut short);
            let (b, _) = RecordBatch::decode(&short).expect("header still valid");
            let mut out = vec![0u8; 4096];
            assert!(b.decompress_records(&mut out).is_err(), "{codec:?} records cut at {cut}");
        }
    }
}

#[test]
fn unsupported_versions_are_errors() {
    let bytes = [0u8; 64];
    for v in [-1, i16::MIN, 5, i16::MAX] {
        assert!(
            matches!(ApiVersionsResponse::decode(&bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
            "v{v}"
        );
    }
    for v in [-1, i16::MIN, 6, i16::MAX] {
        assert!(
            matches!(InitProducerIdResponse::decode(&bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
            "v{v}"
        );
    }
    for v in [0, 13, -1] {
        assert!(
            matches!(MetadataResponse::decode(&bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
            "v{v}"
        );
    }
    for v in [2, 13, -1] {
        assert!(
            matches!(ProduceResponse::decode(&bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
            "v{v}"
        );
    }
    for v in [0, 6, -1, i16::MIN] {
        assert!(
            matches!(FindCoordinatorResponse::decode(&bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
            "v{v}"
        );
    }
    // AddPartitionsToTxn v4+ are the brokers' (batches of transactions), never a client's.
    for v in [-1, 4, 5, i16::MAX] {
        for key in [ApiKey::AddPartitionsToTxn, ApiKey::AddOffsetsToTxn] {
            assert!(
                matches!(decode_at(key, &bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
                "{key:?} v{v}"
            );
        }
    }
    for v in [-1, 6, i16::MAX] {
        assert!(
            matches!(EndTxnResponse::decode(&bytes, v), Err(DecodeError::UnsupportedVersion { .. })),
            "v{v}"
        );
    }
    // Encoders refuse versions they do not have.
    fn refused<R: Request>(body: &R, version: i16) {
        let mut w = Writer::counting();
        assert_eq!(encode_request(&mut w, version, 0, None, body), 0);
        assert_eq!(
            w.finish(),
            Err(picokafka::protocol::EncodeError::UnsupportedVersion { api_key: R::API_KEY.into(), version }),
            "{:?} v{version}",
            R::API_KEY
        );
    }
    refused(&ApiVersionsRequest { client_software_name: "a", client_software_version: "b" }, 5);
    let find = FindCoordinatorRequest { key_type: CoordinatorType::Transaction, key: "t" };
    refused(&find, 0);
    refused(&find, 6);
    let partitions: [(&str, &[i32]); 0] = [];
    let add = AddPartitionsToTxnRequest {
        transactional_id: "t",
        producer_id: 1,
        producer_epoch: 0,
        topics: partitions.iter().map(|(t, p)| (*t, p.iter().copied())),
    };
    refused(&add, 4);
    refused(&add, -1);
    refused(
        &AddOffsetsToTxnRequest { transactional_id: "t", producer_id: 1, producer_epoch: 0, group_id: "g" },
        4,
    );
    refused(&EndTxnRequest { transactional_id: "t", producer_id: 1, producer_epoch: 0, committed: true }, 6);
    let offsets: [(&str, &[PartitionOffset<'_>]); 0] = [];
    let commit = TxnOffsetCommitRequest {
        transactional_id: "t",
        group_id: "g",
        producer_id: 1,
        producer_epoch: 0,
        generation_id: -1,
        member_id: "",
        group_instance_id: None,
        topics: offsets.iter().map(|(t, p)| (*t, p.iter().copied())),
    };
    refused(&commit, 6);
    for v in [-1, 6, i16::MAX] {
        assert!(
            matches!(
                decode_at(ApiKey::TxnOffsetCommit, &bytes, v),
                Err(DecodeError::UnsupportedVersion { .. })
            ),
            "TxnOffsetCommit v{v}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn decoders_are_total_on_arbitrary_bytes(bytes in arb_bytes(300), version in -1i16..=13) {
        exercise_responses(&bytes, version);
        exercise_batch(&bytes, 512);
    }

    #[test]
    fn decoders_are_total_on_mutated_responses(
        version in 0i16..=12,
        which: Index,
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        cut: Index,
        insert in prop::option::of((any::<Index>(), arb_bytes(6))),
    ) {
        let all = valid_responses(version);
        let (_, mut bytes) = which.get(&all).clone();
        for (at, xor) in edits {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        if let Some((at, extra)) = insert {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, extra);
        }
        for v in [version - 1, version, version + 1] {
            exercise_responses(&bytes, v);
            exercise_responses(&bytes[..cut.index(bytes.len() + 1)], v);
        }
    }

    #[test]
    fn decoders_are_total_on_mutated_batches(
        records in prop::collection::vec(arb_rec(), 1..5),
        codec in arb_compression(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        fix: bool,
        out_len in 0usize..2048,
        cut: Index,
    ) {
        let mut batch = build_batch(&records, codec, ProducerState::NONE);
        // Mutate past the CRC (attributes, header fields, records) and, usually, fix the CRC so
        // that the decoder looks at the mutated contents.
        for (at, xor) in edits {
            let i = 17 + at.index(batch.len() - 17);
            batch[i] ^= xor;
        }
        if fix {
            fix_crc(&mut batch);
        }
        exercise_batch(&batch, out_len);
        exercise_batch(&batch[..cut.index(batch.len() + 1)], out_len);
        // Two batches back to back.
        let mut two = batch.clone();
        two.extend_from_slice(&batch);
        exercise_batch(&two, out_len);
    }
}
