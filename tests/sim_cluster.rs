//! The simulated cluster (`picokafka_tests::sim::cluster`) driven by requests that kafka-protocol
//! builds and responses that kafka-protocol decodes: no picokafka code on either side, so these
//! tests check the simulator against Kafka's protocol, not against our own codec.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, ProduceResponse};
use kafka_protocol::messages::{ApiKey, BrokerId, RequestHeader, ResponseHeader, TopicName, TransactionalId};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use picokafka_tests::sim::cluster::{api_key, error_code as ec, SimCluster};

// ---------------------------------------------------------------------------------------------
// Helpers: kafka-protocol on the client side
// ---------------------------------------------------------------------------------------------

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A size-prefixed request frame.
fn frame<R: Request>(version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let key = ApiKey::try_from(R::KEY).expect("known key");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("sim-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, key.request_header_version(version)).expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// Splits bytes into complete response frames (without size prefixes); nothing may be left.
fn split(mut bytes: &[u8]) -> Vec<Bytes> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "partial size prefix");
        let len = i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert!(bytes.len() >= 4 + len, "partial frame");
        frames.push(Bytes::copy_from_slice(&bytes[4..4 + len]));
        bytes = &bytes[4 + len..];
    }
    frames
}

/// Decodes a response frame at `version` (header version derived by kafka-protocol); the whole
/// frame must be consumed.
fn decode<R: Request>(version: i16, mut frame: Bytes) -> (i32, R::Response) {
    let key = ApiKey::try_from(R::KEY).expect("known key");
    let header =
        ResponseHeader::decode(&mut frame, key.response_header_version(version)).expect("response header");
    let body = R::Response::decode(&mut frame, version).expect("response body");
    assert!(frame.is_empty(), "{} trailing bytes in the response", frame.len());
    (header.correlation_id, body)
}

/// One request, one response, same correlation id.
fn call<R: Request>(sim: &mut SimCluster, conn: u64, broker: i32, version: i16, body: &R) -> R::Response {
    let out = sim.on_bytes(conn, broker, &frame(version, 4242, body)).expect("connection stays open");
    let frames = split(&out);
    assert_eq!(frames.len(), 1, "one response");
    let (cid, response) = decode::<R>(version, frames[0].clone());
    assert_eq!(cid, 4242);
    response
}

fn api_versions_req(version: i16) -> ApiVersionsRequest {
    let req = ApiVersionsRequest::default();
    if version >= 3 {
        req.with_client_software_name(s("picokafka-sim")).with_client_software_version(s("0.1.0"))
    } else {
        req
    }
}

fn metadata_req(topics: Option<&[&str]>) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))).collect()
        }))
        .with_allow_auto_topic_creation(true)
}

fn init_pid_req() -> InitProducerIdRequest {
    InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000)
}

/// A v2 record batch by kafka-protocol's encoder: `n` records with sequences from `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize, compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol's encoder starts a new batch unless offset - sequence is constant: a
            // non-idempotent batch (base sequence -1) gets -1, 0, 1, ...
            sequence: if pid >= 0 { seq + i as i32 } else { i as i32 - 1 },
            timestamp: 1_700_000_000_000 + i as i64,
            key: if i % 3 == 2 { None } else { Some(Bytes::from(format!("key-{seq}-{i}"))) },
            value: Some(Bytes::from(format!("value-{seq}-{i}-").repeat(1 + i % 4))),
            headers: if i % 2 == 0 {
                [(s("h"), Some(Bytes::from(format!("{i}")))), (s("none"), None)].into_iter().collect()
            } else {
                Default::default()
            },
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
        .expect("batch encodes");
    buf.freeze()
}

fn produce_req(acks: i16, parts: &[(&str, i32, Bytes)]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (topic, partition, records) in parts {
        let data = PartitionProduceData::default().with_index(*partition).with_records(Some(records.clone()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(topics)
}

/// The only partition response of a single-partition Produce response.
fn only(resp: &ProduceResponse) -> &PartitionProduceResponse {
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].partition_responses.len(), 1);
    &resp.responses[0].partition_responses[0]
}

/// Produces one batch to `topic`-`partition` through `broker` (on connection `broker`) at
/// `version`.
fn produce_one(
    sim: &mut SimCluster,
    broker: i32,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let resp = call(sim, broker as u64, broker, version, &produce_req(-1, &[(topic, partition, records)]));
    only(&resp).clone()
}

fn cluster() -> SimCluster {
    let mut sim = SimCluster::new(&[1, 2, 3]);
    sim.create_topic("events", 3, &[1, 2, 3]);
    sim
}

// ---------------------------------------------------------------------------------------------
// Addresses, framing, connection handling
// ---------------------------------------------------------------------------------------------

#[test]
fn addresses_map_both_ways() {
    let sim = SimCluster::new(&[0, 7]);
    assert_eq!(sim.addr(7), ("127.0.0.1".to_string(), 9007));
    assert_eq!(sim.broker_at("127.0.0.1", 9000), Some(0));
    assert_eq!(sim.broker_at("127.0.0.1", 9007), Some(7));
    assert_eq!(sim.broker_at("127.0.0.1", 9001), None);
    assert_eq!(sim.broker_at("localhost", 9007), None);
    assert_eq!(sim.bootstrap(), vec![("127.0.0.1".to_string(), 9000), ("127.0.0.1".to_string(), 9007)]);
}

#[test]
fn bytes_one_at_a_time_and_pipelined_requests_answer_in_order() {
    let mut sim = cluster();
    let mut wire = frame(3, 1, &api_versions_req(3));
    wire.extend(frame(12, 2, &metadata_req(Some(&["events"]))));
    wire.extend(frame(4, 3, &init_pid_req()));

    // Byte by byte: nothing until a frame is complete, then exactly its response.
    let mut one = SimCluster::new(&[1]);
    let mut out = Vec::new();
    for b in &wire {
        out.extend(one.on_bytes(9, 1, std::slice::from_ref(b)).expect("open"));
    }
    assert_eq!(split(&out).len(), 3);

    // All at once: three responses in request order.
    let out = sim.on_bytes(5, 1, &wire).expect("open");
    let frames = split(&out);
    assert_eq!(frames.len(), 3);
    assert_eq!(decode::<ApiVersionsRequest>(3, frames[0].clone()).0, 1);
    let (cid, md) = decode::<MetadataRequest>(12, frames[1].clone());
    assert_eq!(cid, 2);
    assert_eq!(md.topics.len(), 1);
    let (cid, pid) = decode::<InitProducerIdRequest>(4, frames[2].clone());
    assert_eq!(cid, 3);
    assert_eq!(pid.producer_id.0, 1000);
    assert_eq!(sim.request_count(1, api_key::API_VERSIONS), 1);
    assert_eq!(sim.request_count(1, api_key::METADATA), 1);
    assert_eq!(sim.request_count(1, api_key::INIT_PRODUCER_ID), 1);
    assert_eq!(sim.request_count(2, api_key::METADATA), 0);
    let cids: Vec<i32> = sim.requests().iter().map(|r| r.correlation_id).collect();
    assert_eq!(cids, vec![1, 2, 3]);
}

#[test]
fn malformed_input_closes_the_connection() {
    let mut sim = cluster();
    // Negative and absurd sizes.
    assert!(sim.on_bytes(1, 1, &(-1i32).to_be_bytes()).is_err());
    assert!(sim.on_bytes(2, 1, &(200i32 << 20).to_be_bytes()).is_err());
    // An api key the simulator does not implement (Fetch).
    let mut fetch = vec![0, 0, 0, 10, 0, 1, 0, 4, 0, 0, 0, 1, 0xff, 0xff];
    fetch[3] = (fetch.len() - 4) as u8;
    assert!(sim.on_bytes(3, 1, &fetch).is_err());
    // Produce below v3 and above the advertised maximum.
    let req = produce_req(-1, &[("events", 0, batch(-1, -1, 0, 1, Compression::None))]);
    let mut v2 = frame(3, 1, &req);
    v2[7] = 2;
    assert!(sim.on_bytes(4, 1, &v2).is_err());
    assert!(sim.on_bytes(5, 1, &frame(12, 1, &req)).is_err());
    // Trailing bytes after a body.
    let mut md = frame(12, 1, &metadata_req(None));
    md.push(0);
    let len = (md.len() - 4) as i32;
    md[..4].copy_from_slice(&len.to_be_bytes());
    assert!(sim.on_bytes(6, 1, &md).is_err());
    // A body cut short.
    let md = frame(1, 1, &metadata_req(Some(&["events"])));
    let mut short = md[..md.len() - 2].to_vec();
    let len = (short.len() - 4) as i32;
    short[..4].copy_from_slice(&len.to_be_bytes());
    assert!(sim.on_bytes(7, 1, &short).is_err());
    // A connection used for another broker.
    sim.on_bytes(8, 1, &[]).expect("open");
    assert!(sim.on_bytes(8, 2, &frame(1, 1, &metadata_req(None))).is_err());
    // The closed connection's key can be reused for a fresh connection.
    assert!(sim.on_bytes(1, 1, &frame(1, 1, &metadata_req(None))).is_ok());
}

#[test]
fn responses_before_a_close_are_kept_by_on_bytes_reply() {
    let mut sim = cluster();
    let mut wire = frame(1, 1, &metadata_req(None));
    wire.extend((-5i32).to_be_bytes());
    let reply = sim.on_bytes_reply(1, 1, &wire);
    assert!(reply.close.is_some());
    assert_eq!(split(&reply.bytes).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// ApiVersions
// ---------------------------------------------------------------------------------------------

fn ranges(resp: &ApiVersionsResponse) -> Vec<(i16, i16, i16)> {
    resp.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect()
}

#[test]
fn api_versions_every_version_lists_the_ranges() {
    let mut sim = cluster();
    for v in 0..=4 {
        let resp = call(&mut sim, 1, 1, v, &api_versions_req(v));
        assert_eq!(resp.error_code, ec::NONE, "v{v}");
        assert_eq!(ranges(&resp), vec![(0, 3, 11), (3, 1, 12), (18, 0, 4), (22, 0, 5)], "v{v}");
    }
    // An older broker: no InitProducerId, Produce up to v7.
    sim.set_api_versions(api_key::INIT_PRODUCER_ID, None);
    sim.set_api_versions(api_key::PRODUCE, Some((3, 7)));
    let resp = call(&mut sim, 1, 1, 3, &api_versions_req(3));
    assert_eq!(ranges(&resp), vec![(0, 3, 7), (3, 1, 12), (18, 0, 4)]);
    assert!(sim.on_bytes(2, 1, &frame(0, 1, &init_pid_req())).is_err());
}

#[test]
fn api_versions_v3_response_header_is_v0() {
    let mut sim = cluster();
    let out = sim.on_bytes(1, 1, &frame(3, 77, &api_versions_req(3))).expect("open");
    // Size, correlation id, then directly the error code (no tagged-field byte in the header).
    assert_eq!(&out[4..8], &77i32.to_be_bytes());
    assert_eq!(&out[8..10], &0i16.to_be_bytes());
}

#[test]
fn api_versions_above_the_maximum_gets_kafkas_unsupported_version_answer() {
    let mut sim = cluster();
    sim.set_api_versions(api_key::API_VERSIONS, Some((0, 2)));
    let out = sim.on_bytes(1, 1, &frame(3, 9, &api_versions_req(3))).expect("open");
    // Always a v0 body with a v0 header.
    let (cid, resp) = decode::<ApiVersionsRequest>(0, split(&out)[0].clone());
    assert_eq!(cid, 9);
    assert_eq!(resp.error_code, ec::UNSUPPORTED_VERSION);
    assert_eq!(ranges(&resp), vec![(18, 0, 2)]);

    // A version kafka-protocol has never heard of: the body is not parsed at all.
    let mut sim = cluster();
    let mut v9 = frame(4, 10, &api_versions_req(4));
    v9[7] = 9;
    let (_, resp) =
        decode::<ApiVersionsRequest>(0, split(&sim.on_bytes(1, 1, &v9).expect("open"))[0].clone());
    assert_eq!(resp.error_code, ec::UNSUPPORTED_VERSION);
    assert_eq!(ranges(&resp), vec![(18, 0, 4)]);
}

#[test]
fn api_versions_v0_fallback_quirk_like_librdkafkas_mock() {
    let mut sim = cluster();
    sim.quirks.api_versions_v0_fallback = true;
    let out = sim.on_bytes(1, 1, &frame(3, 5, &api_versions_req(3))).expect("open");
    let (cid, resp) = decode::<ApiVersionsRequest>(0, split(&out)[0].clone());
    assert_eq!(cid, 5);
    assert_eq!(resp.error_code, ec::UNSUPPORTED_VERSION);
    assert_eq!(ranges(&resp), vec![(0, 3, 11), (3, 1, 12), (18, 0, 2), (22, 0, 5)]);
    // Retrying at the listed maximum works.
    let resp = call(&mut sim, 1, 1, 2, &api_versions_req(2));
    assert_eq!(resp.error_code, ec::NONE);
    assert_eq!(ranges(&resp), vec![(0, 3, 11), (3, 1, 12), (18, 0, 2), (22, 0, 5)]);
}

#[test]
fn api_versions_v3_checks_the_client_software_name() {
    let mut sim = cluster();
    let bad =
        ApiVersionsRequest::default().with_client_software_name(s("")).with_client_software_version(s("1"));
    let resp = call(&mut sim, 1, 1, 3, &bad);
    assert_eq!(resp.error_code, ec::INVALID_REQUEST);
    assert!(resp.api_keys.is_empty());
    let bad = ApiVersionsRequest::default()
        .with_client_software_name(s("pico kafka"))
        .with_client_software_version(s("1.0-"));
    assert_eq!(call(&mut sim, 1, 1, 4, &bad).error_code, ec::INVALID_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

fn leaders(resp: &MetadataResponse, topic: &str) -> Vec<(i32, i16, i32, i32)> {
    let t =
        resp.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)).expect("topic");
    t.partitions.iter().map(|p| (p.partition_index, p.error_code, p.leader_id.0, p.leader_epoch)).collect()
}

#[test]
fn metadata_lists_brokers_topics_and_leaders_at_every_version() {
    let mut sim = cluster();
    sim.create_topic("other", 1, &[2]);
    for v in 1..=12 {
        let resp = call(&mut sim, 1, 2, v, &metadata_req(Some(&["events"])));
        let brokers: Vec<(i32, String, i32)> =
            resp.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
        assert_eq!(
            brokers,
            vec![(1, "127.0.0.1".into(), 9001), (2, "127.0.0.1".into(), 9002), (3, "127.0.0.1".into(), 9003)],
            "v{v}"
        );
        assert_eq!(resp.controller_id.0, 1, "v{v}");
        assert_eq!(resp.topics.len(), 1, "v{v}");
        let t = &resp.topics[0];
        assert_eq!(t.error_code, ec::NONE);
        // Leader epochs exist from v7 on.
        let epoch = if v >= 7 { 0 } else { -1 };
        assert_eq!(
            leaders(&resp, "events"),
            vec![(0, 0, 1, epoch), (1, 0, 2, epoch), (2, 0, 3, epoch)],
            "v{v}"
        );
        for p in &t.partitions {
            assert_eq!(p.replica_nodes, vec![p.leader_id]);
            assert_eq!(p.isr_nodes, vec![p.leader_id]);
        }
        if v >= 2 {
            assert_eq!(resp.cluster_id.as_deref(), Some("sim-cluster"));
        }
        if v >= 10 {
            assert_eq!(*t.topic_id.as_bytes(), sim.topic_id("events").unwrap());
        }
    }
    // Null topics ⇒ all, sorted by name.
    let resp = call(&mut sim, 1, 2, 12, &metadata_req(None));
    let names: Vec<String> = resp.topics.iter().map(|t| t.name.as_ref().unwrap().0.to_string()).collect();
    assert_eq!(names, vec!["events", "other"]);
    // Empty list ⇒ none.
    assert!(call(&mut sim, 1, 2, 12, &metadata_req(Some(&[]))).topics.is_empty());
}

#[test]
fn metadata_by_topic_id() {
    let mut sim = cluster();
    let id = sim.topic_id("events").unwrap();
    let by_id = |bytes: [u8; 16]| {
        let topic = MetadataRequestTopic::default().with_name(None).with_topic_id(kp_uuid(bytes));
        MetadataRequest::default().with_topics(Some(vec![topic]))
    };
    let resp = call(&mut sim, 1, 1, 12, &by_id(id));
    assert_eq!(resp.topics[0].name.as_ref().unwrap().0.as_str(), "events");
    assert_eq!(resp.topics[0].partitions.len(), 3);
    let resp = call(&mut sim, 1, 1, 12, &by_id([9; 16]));
    assert_eq!(resp.topics[0].error_code, ec::UNKNOWN_TOPIC_ID);
}

/// A kafka-protocol `Uuid` (the type, from the `uuid` crate, is not re-exported).
fn kp_uuid<U: TryFrom<Vec<u8>>>(bytes: [u8; 16]) -> U
where
    U::Error: std::fmt::Debug,
{
    U::try_from(bytes.to_vec()).unwrap()
}

#[test]
fn metadata_unknown_topic_and_auto_create() {
    let mut sim = cluster();
    let resp = call(&mut sim, 1, 1, 12, &metadata_req(Some(&["nope"])));
    assert_eq!(resp.topics[0].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(resp.topics[0].partitions.is_empty());

    sim.auto_create = Some(2);
    // The client may forbid it (v4+).
    let no_auto = metadata_req(Some(&["nope"])).with_allow_auto_topic_creation(false);
    assert_eq!(call(&mut sim, 1, 1, 12, &no_auto).topics[0].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
    // Kafka answers the creating request with LEADER_NOT_AVAILABLE, the next one with the topic.
    let resp = call(&mut sim, 1, 1, 12, &metadata_req(Some(&["nope"])));
    assert_eq!(resp.topics[0].error_code, ec::LEADER_NOT_AVAILABLE);
    assert!(resp.topics[0].partitions.is_empty());
    let resp = call(&mut sim, 1, 1, 12, &metadata_req(Some(&["nope"])));
    assert_eq!(leaders(&resp, "nope"), vec![(0, 0, 1, 0), (1, 0, 2, 0)]);
    assert_eq!(sim.partition_count("nope"), Some(2));
}

#[test]
fn metadata_follows_leader_moves_and_down_brokers() {
    let mut sim = cluster();
    sim.move_leader("events", 0, 2);
    assert_eq!(sim.leader("events", 0), Some((2, 1)));
    sim.set_broker_up(3, false);
    let resp = call(&mut sim, 1, 1, 9, &metadata_req(Some(&["events"])));
    let ids: Vec<i32> = resp.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        leaders(&resp, "events"),
        vec![(0, 0, 2, 1), (1, 0, 2, 0), (2, ec::LEADER_NOT_AVAILABLE, -1, 0)]
    );
    let p2 = &resp.topics[0].partitions[2];
    assert_eq!(p2.offline_replicas, vec![BrokerId(3)]);
    // The down broker refuses connections.
    assert!(sim.on_bytes(2, 3, &frame(9, 1, &metadata_req(None))).is_err());
    // Back up, a new leader election brings the partition back.
    sim.set_broker_up(3, true);
    sim.move_leader("events", 2, 3);
    let resp = call(&mut sim, 1, 1, 9, &metadata_req(Some(&["events"])));
    assert_eq!(leaders(&resp, "events")[2], (2, 0, 3, 1));
}

// ---------------------------------------------------------------------------------------------
// InitProducerId
// ---------------------------------------------------------------------------------------------

#[test]
fn init_producer_id_allocates_ids_like_kafka() {
    let mut sim = cluster();
    for (i, v) in (0..=5).enumerate() {
        let resp = call(&mut sim, 1, 1, v, &init_pid_req());
        assert_eq!(resp.error_code, ec::NONE);
        assert_eq!((resp.producer_id.0, resp.producer_epoch), (1000 + i as i64, 0), "v{v}");
    }
    // Without a transactional id Kafka hands out a new id even to a producer naming its own.
    let again = init_pid_req().with_producer_id(1000.into()).with_producer_epoch(0);
    let resp = call(&mut sim, 2, 2, 4, &again);
    assert_eq!((resp.producer_id.0, resp.producer_epoch), (1006, 0));
    // The quirk bumps the epoch of the named id instead.
    sim.quirks.init_producer_id_bumps_epoch = true;
    let resp = call(&mut sim, 2, 2, 4, &again);
    assert_eq!((resp.producer_id.0, resp.producer_epoch), (1000, 1));
}

#[test]
fn init_producer_id_with_transactional_id_bumps_and_fences() {
    let mut sim = cluster();
    let txn = init_pid_req().with_transactional_id(Some(TransactionalId(s("tx-1"))));
    let first = call(&mut sim, 1, 1, 4, &txn);
    assert_eq!((first.producer_id.0, first.producer_epoch), (1000, 0));
    let second = call(&mut sim, 1, 1, 4, &txn);
    assert_eq!((second.producer_id.0, second.producer_epoch), (1000, 1));
    let ok = txn.clone().with_producer_id(1000.into()).with_producer_epoch(1);
    let third = call(&mut sim, 1, 1, 4, &ok);
    assert_eq!((third.producer_id.0, third.producer_epoch), (1000, 2));
    // A zombie with an old epoch is fenced (PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before).
    let zombie = txn.clone().with_producer_id(1000.into()).with_producer_epoch(0);
    let resp = call(&mut sim, 1, 1, 4, &zombie);
    assert_eq!((resp.error_code, resp.producer_id.0, resp.producer_epoch), (ec::PRODUCER_FENCED, -1, -1));
    assert_eq!(call(&mut sim, 1, 1, 3, &zombie).error_code, ec::INVALID_PRODUCER_EPOCH);
}

// ---------------------------------------------------------------------------------------------
// Produce
// ---------------------------------------------------------------------------------------------

#[test]
fn produce_appends_records_with_offsets_at_every_version() {
    let mut sim = cluster();
    let mut next = 0;
    for v in 3..=11 {
        let b = batch(-1, -1, 0, 3, Compression::None);
        let r = produce_one(&mut sim, 1, v, "events", 0, b);
        assert_eq!(r.error_code, ec::NONE, "v{v}");
        assert_eq!(r.base_offset, next, "v{v}");
        assert_eq!(r.log_append_time_ms, -1);
        if v >= 5 {
            assert_eq!(r.log_start_offset, 0);
        }
        next += 3;
    }
    let log = sim.log("events", 0);
    assert_eq!(log.len(), 27);
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!((r.producer_id, r.sequence), (-1, -1));
    }
    let r = &log[3];
    assert_eq!(r.key.as_deref(), Some(&b"key-0-0"[..]));
    assert_eq!(r.value.as_deref(), Some(&b"value-0-0-"[..]));
    assert_eq!(r.timestamp, 1_700_000_000_000);
    assert_eq!(r.headers, vec![("h".to_string(), Some(b"0".to_vec())), ("none".to_string(), None)]);
    assert_eq!(log[5].key, None);
    assert!(log[4].headers.is_empty());
    assert_eq!(sim.batches("events", 0).len(), 9);
    assert_eq!(sim.request_count(1, api_key::PRODUCE), 9);
}

#[test]
fn produce_decodes_lz4_and_other_codecs() {
    let mut sim = cluster();
    for (i, c) in
        [Compression::Lz4, Compression::Gzip, Compression::Snappy, Compression::Zstd].into_iter().enumerate()
    {
        let r = produce_one(&mut sim, 2, 9, "events", 1, batch(1000, 0, 10 * i as i32, 10, c));
        assert_eq!(r.error_code, ec::NONE, "{c:?}");
        assert_eq!(r.base_offset, 10 * i as i64);
        assert_eq!(sim.batches("events", 1)[i].compression, c);
    }
    let log = sim.log("events", 1);
    assert_eq!(log.len(), 40);
    assert_eq!(log[13].value.as_deref(), Some(&b"value-10-3-value-10-3-value-10-3-value-10-3-"[..]));
    assert_eq!((log[13].producer_id, log[13].producer_epoch, log[13].sequence), (1000, 0, 13));
}

#[test]
fn produce_multi_partition_request_answers_each_partition() {
    let mut sim = cluster();
    sim.create_topic("solo", 1, &[1]);
    let req = produce_req(
        -1,
        &[
            ("events", 0, batch(-1, -1, 0, 2, Compression::None)),
            ("events", 1, batch(-1, -1, 0, 2, Compression::None)),
            ("solo", 0, batch(-1, -1, 0, 1, Compression::None)),
            ("solo", 5, batch(-1, -1, 0, 1, Compression::None)),
            ("ghost", 0, batch(-1, -1, 0, 1, Compression::None)),
        ],
    );
    let resp = call(&mut sim, 1, 1, 9, &req);
    let got: Vec<(String, i32, i16, i64)> = resp
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses.iter().map(|p| (t.name.0.to_string(), p.index, p.error_code, p.base_offset))
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("events".into(), 0, ec::NONE, 0),
            ("events".into(), 1, ec::NOT_LEADER_OR_FOLLOWER, -1),
            ("solo".into(), 0, ec::NONE, 0),
            ("solo".into(), 5, ec::UNKNOWN_TOPIC_OR_PARTITION, -1),
            ("ghost".into(), 0, ec::UNKNOWN_TOPIC_OR_PARTITION, -1),
        ]
    );
    // v9: no CurrentLeader or NodeEndpoints.
    assert!(resp.node_endpoints.is_empty());
    assert_eq!(resp.responses[0].partition_responses[1].current_leader.leader_id.0, -1);
}

#[test]
fn produce_not_leader_v10_names_the_current_leader() {
    let mut sim = cluster();
    sim.move_leader("events", 1, 3);
    let r =
        call(&mut sim, 1, 2, 10, &produce_req(-1, &[("events", 1, batch(-1, -1, 0, 1, Compression::None))]));
    let p = only(&r);
    assert_eq!(p.error_code, ec::NOT_LEADER_OR_FOLLOWER);
    assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (3, 1));
    let eps: Vec<(i32, String, i32)> =
        r.node_endpoints.iter().map(|n| (n.node_id.0, n.host.to_string(), n.port)).collect();
    assert_eq!(eps, vec![(3, "127.0.0.1".into(), 9003)]);
    assert!(sim.log("events", 1).is_empty());
    // The leader takes it.
    let r = produce_one(&mut sim, 3, 11, "events", 1, batch(-1, -1, 0, 1, Compression::None));
    assert_eq!(r.error_code, ec::NONE);
}

#[test]
fn produce_v13_addresses_topics_by_id() {
    let mut sim = cluster();
    sim.set_api_versions(api_key::PRODUCE, Some((3, 13)));
    sim.set_api_versions(api_key::METADATA, Some((1, 13)));
    let id = sim.topic_id("events").unwrap();
    let resp = call(&mut sim, 1, 1, 13, &metadata_req(Some(&["events"])));
    assert_eq!(*resp.topics[0].topic_id.as_bytes(), id);
    let mut req = produce_req(-1, &[("events", 0, batch(-1, -1, 0, 2, Compression::None))]);
    req.topic_data[0].topic_id = kp_uuid(id);
    let resp = call(&mut sim, 1, 1, 13, &req);
    assert_eq!(*resp.responses[0].topic_id.as_bytes(), id);
    assert_eq!((only(&resp).error_code, only(&resp).base_offset), (ec::NONE, 0));
    req.topic_data[0].topic_id = kp_uuid([7; 16]);
    assert_eq!(only(&call(&mut sim, 1, 1, 13, &req)).error_code, ec::UNKNOWN_TOPIC_ID);
    assert_eq!(sim.log("events", 0).len(), 2);
}

#[test]
fn produce_rejects_corrupt_and_invalid_batches() {
    let mut sim = cluster();
    let good = batch(1000, 0, 0, 3, Compression::None);
    // A flipped bit in the records fails the CRC.
    let mut bad = good.to_vec();
    let last = bad.len() - 2;
    bad[last] ^= 0x40;
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, bad.into()).error_code, ec::CORRUPT_MESSAGE);
    // A corrupt LZ4 frame behind a valid CRC.
    let lz = batch(-1, -1, 0, 5, Compression::Lz4).to_vec();
    assert_eq!(crc32c::crc32c(&lz[21..]), u32::from_be_bytes(lz[17..21].try_into().unwrap()), "CRC span");
    let mut broken = lz.clone();
    for b in &mut broken[61 + 7..] {
        *b = 0xAB;
    }
    let crc = crc32c::crc32c(&broken[21..]);
    broken[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, broken.into()).error_code, ec::CORRUPT_MESSAGE);
    // Two batches in one partition.
    let mut two = good.to_vec();
    two.extend_from_slice(&batch(1000, 0, 3, 1, Compression::None));
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, two.into()).error_code, ec::INVALID_RECORD);
    // Empty records, a truncated batch, magic 1.
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, Bytes::new()).error_code, ec::INVALID_RECORD);
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, good.slice(..40)).error_code, ec::INVALID_RECORD);
    let mut magic1 = good.to_vec();
    magic1[16] = 1;
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, magic1.into()).error_code, ec::INVALID_RECORD);
    // Too large for message.max.bytes.
    sim.max_message_bytes = 64;
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, good.clone()).error_code, ec::MESSAGE_TOO_LARGE);
    sim.max_message_bytes = 1 << 20;
    // Invalid acks.
    let r = call(&mut sim, 1, 1, 9, &produce_req(2, &[("events", 0, good.clone())]));
    assert_eq!(only(&r).error_code, ec::INVALID_REQUIRED_ACKS);
    assert!(sim.log("events", 0).is_empty());
    // And the good batch still goes in at offset 0 (nothing above touched the producer state).
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, good).base_offset, 0);
}

#[test]
fn idempotent_duplicate_is_written_once_and_answered_with_the_original_offset() {
    let mut sim = cluster();
    let b0 = batch(1000, 0, 0, 4, Compression::Lz4);
    let b1 = batch(1000, 0, 4, 2, Compression::None);
    assert_eq!(produce_one(&mut sim, 1, 11, "events", 0, b0.clone()).base_offset, 0);
    assert_eq!(produce_one(&mut sim, 1, 11, "events", 0, b1.clone()).base_offset, 4);
    // Resends of either (any of the last five) are duplicates: success, original offset.
    let r = produce_one(&mut sim, 1, 11, "events", 0, b0.clone());
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 0));
    let r = produce_one(&mut sim, 1, 11, "events", 0, b1.clone());
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 4));
    assert_eq!(sim.log("events", 0).len(), 6);
    assert_eq!(sim.producer_state("events", 0, 1000), Some((0, 5)));
    // Tansu's answer instead.
    sim.quirks.duplicate_as_error = true;
    assert_eq!(produce_one(&mut sim, 1, 11, "events", 0, b1).error_code, ec::DUPLICATE_SEQUENCE_NUMBER);
    assert_eq!(sim.log("events", 0).len(), 6);
}

#[test]
fn idempotent_dedup_remembers_only_five_batches() {
    let mut sim = cluster();
    let batches: Vec<Bytes> = (0..6).map(|i| batch(1000, 0, 2 * i, 2, Compression::None)).collect();
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, b.clone()).base_offset, 2 * i as i64);
    }
    // The second batch is still cached; the first has been forgotten: out of order.
    assert_eq!(produce_one(&mut sim, 1, 9, "events", 0, batches[1].clone()).base_offset, 2);
    assert_eq!(
        produce_one(&mut sim, 1, 9, "events", 0, batches[0].clone()).error_code,
        ec::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(sim.log("events", 0).len(), 12);
}

#[test]
fn idempotent_sequence_gaps_and_epochs() {
    let mut sim = cluster();
    let p = |sim: &mut SimCluster, epoch: i16, seq: i32, n: usize| {
        produce_one(sim, 1, 11, "events", 0, batch(1000, epoch, seq, n, Compression::None)).error_code
    };
    assert_eq!(p(&mut sim, 0, 0, 3), ec::NONE);
    // A gap.
    assert_eq!(p(&mut sim, 0, 4, 1), ec::OUT_OF_ORDER_SEQUENCE_NUMBER);
    // Overlapping but not identical to a cached batch.
    assert_eq!(p(&mut sim, 0, 1, 2), ec::OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(p(&mut sim, 0, 3, 1), ec::NONE);
    // A new epoch must start at 0.
    assert_eq!(p(&mut sim, 1, 4, 1), ec::OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(p(&mut sim, 1, 0, 2), ec::NONE);
    // The old epoch is now stale.
    assert_eq!(p(&mut sim, 0, 4, 1), ec::INVALID_PRODUCER_EPOCH);
    assert_eq!(p(&mut sim, 1, 2, 1), ec::NONE);
    assert_eq!(sim.producer_state("events", 0, 1000), Some((1, 2)));
    let seqs: Vec<(i16, i32)> = sim.log("events", 0).iter().map(|r| (r.producer_epoch, r.sequence)).collect();
    assert_eq!(seqs, vec![(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)]);
    // State is per partition: the same producer starts fresh elsewhere.
    let r = produce_one(&mut sim, 2, 11, "events", 1, batch(1000, 1, 0, 1, Compression::None));
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 0));
}

#[test]
fn unknown_producer_any_sequence_or_unknown_producer_id_quirk() {
    let mut sim = cluster();
    // Kafka ≥ 2.5 accepts an unknown producer at any sequence.
    let r = produce_one(&mut sim, 1, 9, "events", 0, batch(2000, 3, 17, 2, Compression::None));
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 0));
    assert_eq!(sim.producer_state("events", 0, 2000), Some((3, 18)));
    sim.quirks.unknown_producer_id = true;
    let r = produce_one(&mut sim, 1, 9, "events", 0, batch(2001, 0, 5, 1, Compression::None));
    assert_eq!(r.error_code, ec::UNKNOWN_PRODUCER_ID);
    let r = produce_one(&mut sim, 1, 9, "events", 0, batch(2001, 0, 0, 1, Compression::None));
    assert_eq!(r.error_code, ec::NONE);
}

#[test]
fn sequences_wrap_after_i32_max() {
    let mut sim = cluster();
    let r = produce_one(&mut sim, 1, 9, "events", 0, batch(1000, 0, i32::MAX - 1, 1, Compression::None));
    assert_eq!(r.error_code, ec::NONE);
    // kafka-protocol's encoder wraps to i32::MIN, so build the wrapping batch from a last
    // sequence of i32::MAX: one record at MAX, then the next batch starts at 0.
    let r = produce_one(&mut sim, 1, 9, "events", 0, batch(1000, 0, i32::MAX, 1, Compression::None));
    assert_eq!(r.error_code, ec::NONE);
    let r = produce_one(&mut sim, 1, 9, "events", 0, batch(1000, 0, 0, 2, Compression::None));
    assert_eq!(r.error_code, ec::NONE);
    assert_eq!(sim.producer_state("events", 0, 1000), Some((0, 1)));
}

#[test]
fn acks_zero_gets_no_response_unless_the_quirk_is_on() {
    let mut sim = cluster();
    let req = produce_req(0, &[("events", 0, batch(-1, -1, 0, 2, Compression::None))]);
    let out = sim.on_bytes(1, 1, &frame(9, 1, &req)).expect("open");
    assert!(out.is_empty());
    assert_eq!(sim.log("events", 0).len(), 2);
    // Pipelined behind it, the next request is answered normally.
    let mut wire = frame(9, 2, &req);
    wire.extend(frame(12, 3, &metadata_req(None)));
    let frames = split(&sim.on_bytes(1, 1, &wire).expect("open"));
    assert_eq!(frames.len(), 1);
    assert_eq!(decode::<MetadataRequest>(12, frames[0].clone()).0, 3);

    // A failed acks=0 produce closes the connection (Kafka's way of telling the client).
    let to_follower = produce_req(0, &[("events", 1, batch(-1, -1, 0, 1, Compression::None))]);
    assert!(sim.on_bytes(2, 1, &frame(9, 4, &to_follower)).is_err());

    // Tansu / the mock answer anyway, errors included.
    sim.quirks.respond_to_acks0 = true;
    let resp = call(&mut sim, 3, 1, 9, &req);
    assert_eq!((only(&resp).error_code, only(&resp).base_offset), (ec::NONE, 4));
    let resp = call(&mut sim, 3, 1, 9, &to_follower);
    assert_eq!(only(&resp).error_code, ec::NOT_LEADER_OR_FOLLOWER);
}

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

#[test]
fn injected_produce_errors_hit_every_partition_then_run_out() {
    let mut sim = cluster();
    sim.create_topic("solo", 1, &[1]);
    sim.inject_error(api_key::PRODUCE, Some(1), ec::NOT_LEADER_OR_FOLLOWER, 2);
    let req = |seq| {
        produce_req(
            -1,
            &[
                ("events", 0, batch(1000, 0, seq, 1, Compression::None)),
                ("solo", 0, batch(1000, 0, seq, 1, Compression::None)),
            ],
        )
    };
    for _ in 0..2 {
        let resp = call(&mut sim, 1, 1, 9, &req(0));
        let codes: Vec<i16> =
            resp.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)).collect();
        assert_eq!(codes, vec![ec::NOT_LEADER_OR_FOLLOWER; 2]);
    }
    assert!(sim.log("events", 0).is_empty());
    // Used up: the retry goes through (sequence 0 still, nothing was written).
    let resp = call(&mut sim, 1, 1, 9, &req(0));
    assert!(resp.responses.iter().all(|t| t.partition_responses.iter().all(|p| p.error_code == ec::NONE)));
    // Broker-scoped: other brokers are unaffected.
    sim.inject_error(api_key::PRODUCE, Some(3), ec::CORRUPT_MESSAGE, 1);
    assert_eq!(
        produce_one(&mut sim, 2, 9, "events", 1, batch(-1, -1, 0, 1, Compression::None)).error_code,
        ec::NONE
    );
    assert_eq!(
        produce_one(&mut sim, 3, 9, "events", 2, batch(-1, -1, 0, 1, Compression::None)).error_code,
        ec::CORRUPT_MESSAGE
    );
    assert_eq!(
        produce_one(&mut sim, 3, 9, "events", 2, batch(-1, -1, 0, 1, Compression::None)).error_code,
        ec::NONE
    );
}

#[test]
fn injected_metadata_and_init_producer_id_and_api_versions_errors() {
    let mut sim = cluster();
    sim.inject_error(api_key::METADATA, None, ec::LEADER_NOT_AVAILABLE, 1);
    let resp = call(&mut sim, 1, 2, 12, &metadata_req(Some(&["events"])));
    assert_eq!(resp.topics[0].error_code, ec::LEADER_NOT_AVAILABLE);
    assert!(resp.topics[0].partitions.is_empty());
    assert_eq!(resp.brokers.len(), 3);
    assert_eq!(call(&mut sim, 1, 2, 12, &metadata_req(Some(&["events"]))).topics[0].partitions.len(), 3);

    sim.inject_error(api_key::INIT_PRODUCER_ID, None, 15 /* COORDINATOR_NOT_AVAILABLE */, 1);
    let resp = call(&mut sim, 1, 2, 4, &init_pid_req());
    assert_eq!((resp.error_code, resp.producer_id.0, resp.producer_epoch), (15, -1, -1));
    let resp = call(&mut sim, 1, 2, 4, &init_pid_req());
    assert_eq!((resp.error_code, resp.producer_id.0), (ec::NONE, 1000));

    sim.inject_error(api_key::API_VERSIONS, Some(2), ec::UNSUPPORTED_VERSION, 1);
    let out = sim.on_bytes(1, 2, &frame(3, 1, &api_versions_req(3))).expect("open");
    let (_, resp) = decode::<ApiVersionsRequest>(0, split(&out)[0].clone());
    assert_eq!(resp.error_code, ec::UNSUPPORTED_VERSION);
    assert_eq!(call(&mut sim, 1, 2, 3, &api_versions_req(3)).error_code, ec::NONE);
}

#[test]
fn injected_disconnect_loses_the_response_but_not_the_write() {
    let mut sim = cluster();
    sim.inject_disconnect(api_key::PRODUCE, None, 1);
    let b = batch(1000, 0, 0, 3, Compression::None);
    let req = produce_req(-1, &[("events", 0, b.clone())]);
    assert!(sim.on_bytes(1, 1, &frame(9, 1, &req)).is_err());
    assert_eq!(sim.log("events", 0).len(), 3);
    sim.on_close(1);
    // The producer retries on a new connection: a duplicate, answered with the first offset.
    let r = produce_one(&mut sim, 1, 9, "events", 0, b);
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 0));
    assert_eq!(sim.log("events", 0).len(), 3);
}

#[test]
fn same_inputs_same_bytes() {
    let run = || {
        let mut sim = cluster();
        sim.auto_create = Some(2);
        let mut out = Vec::new();
        let mut wire = frame(4, 1, &api_versions_req(4));
        wire.extend(frame(12, 2, &metadata_req(None)));
        wire.extend(frame(12, 3, &metadata_req(Some(&["b", "a", "events"]))));
        wire.extend(frame(5, 4, &init_pid_req()));
        wire.extend(frame(11, 5, &produce_req(-1, &[("events", 0, batch(1000, 0, 0, 5, Compression::Lz4))])));
        out.extend(sim.on_bytes(1, 1, &wire).expect("open"));
        out.extend(sim.on_bytes(2, 2, &frame(12, 6, &metadata_req(None))).expect("open"));
        out
    };
    assert_eq!(run(), run());
}

// ---------------------------------------------------------------------------------------------
// SASL: the server side against RFC vectors and a client built here from kafka-protocol
// ---------------------------------------------------------------------------------------------

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kafka_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use picokafka_tests::sim::sasl::{self, SaslServer, ScramCredential, ScramHash, ScramServer};

/// RFC 7677 §3 (SCRAM-SHA-256, user "user", password "pencil"), and the same exchange with
/// SHA-512, whose values come from Python's hashlib/hmac (no RFC has a SHA-512 vector): the
/// server answers server-first and signs server-final exactly so, and refuses a changed proof.
#[test]
fn scram_server_matches_rfc_7677_and_a_sha512_vector() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let cases = [
        (
            ScramHash::Sha256,
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
        (
            ScramHash::Sha512,
            "gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
            "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==",
        ),
    ];
    for (hash, proof, server_final) in cases {
        let credential = ScramCredential::derive(hash, "pencil", &salt, 4096);
        let lookup = |u: &str| (u == "user").then(|| credential.clone());
        let (server, first) = ScramServer::client_first(
            hash,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            lookup,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(std::str::from_utf8(&first).unwrap(), server_first);
        let good = format!("{without_proof},p={proof}");
        assert_eq!(
            std::str::from_utf8(&server.client_final(good.as_bytes(), None).unwrap()).unwrap(),
            server_final
        );
        // One bit of the proof changed, the nonce changed, the channel binding changed.
        let mut bad = B64.decode(proof).unwrap();
        bad[0] ^= 1;
        let bad = format!("{without_proof},p={}", B64.encode(bad));
        assert!(server.client_final(bad.as_bytes(), None).unwrap_err().contains("invalid proof"));
        let other_nonce = good.replace("k0,p=", "k1,p=");
        assert!(server.client_final(other_nonce.as_bytes(), None).unwrap_err().contains("nonce"));
        let other_binding = good.replace("c=biws", "c=eSws");
        assert!(server.client_final(other_binding.as_bytes(), None).unwrap_err().contains("binding"));
        // A server that derived its ServerKey from another password signs differently.
        let impostor = hash.server_key("crayon", &salt, 4096);
        let forged = server.client_final(good.as_bytes(), Some(&impostor)).unwrap();
        assert_ne!(std::str::from_utf8(&forged).unwrap(), server_final);
    }
    // Unknown users, malformed client-first messages, saslname escapes.
    let c = ScramCredential::derive(ScramHash::Sha256, "p", b"salt", 4096);
    let first = |msg: &[u8]| {
        ScramServer::client_first(ScramHash::Sha256, msg, |u| (u == "a,b=c").then(|| c.clone()), "S")
            .map(|(s, _)| s.user)
    };
    assert_eq!(first(b"n,,n=a=2Cb=3Dc,r=x").unwrap(), "a,b=c");
    assert_eq!(first(b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=x").unwrap(), "a,b=c");
    assert!(first(b"n,,n=bob,r=x").unwrap_err().contains("unknown user"));
    for bad in [&b"y,,n=a=2Cb=3Dc,r=x"[..], b"p=tls,,n=u,r=x", b"n,,r=x", b"n,,n=a=2Cb=3Dc", b"n,,n=a=b,r=x"]
    {
        assert!(first(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert!(first(b"n,a=other,n=a=2Cb=3Dc,r=x").unwrap_err().contains("authorization id"));
}

/// What a SCRAM client computes from server-first (RFC 5802 §3), written out here from the
/// `hmac`/`sha2`/`pbkdf2` crates for the wire tests below.
fn scram_client_final(client_first_bare: &str, server_first: &str, password: &str) -> (String, String) {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let mac = |key: &[u8], data: &[u8]| {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = mac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let server_signature = mac(&mac(&salted, b"Server Key"), auth_message.as_bytes());
    (format!("{without_proof},p={}", B64.encode(proof)), format!("v={}", B64.encode(server_signature)))
}

fn sasl_cluster(lifetime_ms: i64) -> SimCluster {
    let mut sim = cluster();
    let mut server = SaslServer::new(&[sasl::SCRAM_SHA_256, sasl::PLAIN]);
    server.add_user("alice", "alice-secret");
    server.session_lifetime_ms = lifetime_ms;
    sim.enable_sasl(server);
    sim
}

fn handshake_req(mechanism: &str) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(s(mechanism))
}

fn authenticate_req(bytes: &[u8]) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes))
}

/// The one response of a request after which the broker closes the connection.
fn call_and_close<R: Request>(
    sim: &mut SimCluster,
    conn: u64,
    version: i16,
    body: &R,
) -> (R::Response, String) {
    let reply = sim.on_bytes_reply(conn, 1, &frame(version, 77, body));
    let frames = split(&reply.bytes);
    assert_eq!(frames.len(), 1, "one response before the close");
    (decode::<R>(version, frames[0].clone()).1, reply.close.expect("the broker closes the connection"))
}

#[test]
fn sasl_off_by_default_and_advertised_when_on() {
    let mut sim = cluster();
    assert!(ranges(&call(&mut sim, 1, 1, 3, &api_versions_req(3))).iter().all(|r| r.0 != 17 && r.0 != 36));
    assert!(
        sim.on_bytes(2, 1, &frame(1, 1, &handshake_req("PLAIN"))).is_err(),
        "not implemented without SASL"
    );
    let mut sim = sasl_cluster(0);
    let r = ranges(&call(&mut sim, 1, 1, 3, &api_versions_req(3)));
    assert!(r.contains(&(17, 0, 1)) && r.contains(&(36, 0, 2)), "{r:?}");
}

#[test]
fn sasl_refuses_every_other_request_before_authentication() {
    let mut sim = sasl_cluster(0);
    // Metadata first, Produce after ApiVersions, InitProducerId after the handshake, a second
    // ApiVersions after a good one, SaslAuthenticate without a handshake: each closes.
    assert!(sim
        .on_bytes(1, 1, &frame(12, 1, &metadata_req(None)))
        .unwrap_err()
        .contains("during SASL handshake"));
    call(&mut sim, 2, 1, 3, &api_versions_req(3));
    let req = produce_req(-1, &[("events", 0, batch(-1, -1, 0, 1, Compression::None))]);
    assert!(sim.on_bytes(2, 1, &frame(9, 2, &req)).is_err());
    assert!(sim.log("events", 0).is_empty());
    call(&mut sim, 3, 1, 3, &api_versions_req(3));
    call(&mut sim, 3, 1, 1, &handshake_req("PLAIN"));
    assert!(sim
        .on_bytes(3, 1, &frame(4, 3, &init_pid_req()))
        .unwrap_err()
        .contains("during SASL authentication"));
    call(&mut sim, 4, 1, 3, &api_versions_req(3));
    assert!(sim.on_bytes(4, 1, &frame(3, 2, &api_versions_req(3))).is_err());
    assert!(sim.on_bytes(5, 1, &frame(2, 1, &authenticate_req(b"\0alice\0alice-secret"))).is_err());
    // SaslHandshake v0 (unframed tokens) is not simulated.
    assert!(sim.on_bytes(6, 1, &frame(0, 1, &handshake_req("PLAIN"))).is_err());
    // An ApiVersions answered UNSUPPORTED_VERSION may be asked again.
    sim.inject_error(api_key::API_VERSIONS, None, ec::UNSUPPORTED_VERSION, 1);
    sim.on_bytes(7, 1, &frame(3, 1, &api_versions_req(3))).expect("open");
    assert_eq!(call(&mut sim, 7, 1, 3, &api_versions_req(3)).error_code, ec::NONE);
    assert_eq!(call(&mut sim, 7, 1, 1, &handshake_req("PLAIN")).error_code, ec::NONE);
}

#[test]
fn sasl_plain_authenticates_and_refuses_bad_credentials_with_kafkas_words() {
    let mut sim = sasl_cluster(0);
    call(&mut sim, 1, 1, 3, &api_versions_req(3));
    let hs = call(&mut sim, 1, 1, 1, &handshake_req("PLAIN"));
    assert_eq!(hs.error_code, ec::NONE);
    assert_eq!(hs.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>(), ["SCRAM-SHA-256", "PLAIN"]);
    for version in [0, 1, 2] {
        let conn = 10 + version as u64;
        call(&mut sim, conn, 1, 1, &handshake_req("PLAIN"));
        let auth = call(&mut sim, conn, 1, version, &authenticate_req(b"\0alice\0alice-secret"));
        assert_eq!(
            (auth.error_code, auth.error_message.as_ref(), auth.session_lifetime_ms),
            (ec::NONE, None, 0)
        );
        assert_eq!(
            call(&mut sim, conn, 1, 12, &metadata_req(None)).topics.len(),
            1,
            "authenticated: requests flow"
        );
    }
    let auth = call(&mut sim, 1, 1, 2, &authenticate_req(b"alice\0alice\0alice-secret"));
    assert_eq!(auth.error_code, ec::NONE, "an authzid equal to the user is accepted");
    let refused = [
        (&b"\0alice\0wrong"[..], "Authentication failed: Invalid username or password"),
        (b"\0mallory\0alice-secret", "Authentication failed: Invalid username or password"),
        (b"\0alice\0", "Authentication failed: password not specified"),
        (b"\0\0x", "Authentication failed: username not specified"),
        (b"bob\0alice\0alice-secret", "Authentication failed: Client requested an authorization id that is different from username"),
        (b"alice-secret", "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"),
    ];
    for (i, (message, words)) in refused.into_iter().enumerate() {
        let conn = 20 + i as u64;
        call(&mut sim, conn, 1, 1, &handshake_req("PLAIN"));
        let (auth, why) = call_and_close(&mut sim, conn, 2, &authenticate_req(message));
        assert_eq!(auth.error_code, ec::SASL_AUTHENTICATION_FAILED);
        assert_eq!(auth.error_message.as_ref().map(|m| m.as_str()), Some(words));
        assert!(why.contains("SASL authentication failed"), "{why}");
    }
    let log = sim.sasl().unwrap().log();
    assert_eq!(log.iter().filter(|r| r.outcome.is_ok()).count(), 4);
    assert_eq!(log.iter().filter(|r| r.outcome.is_err()).count(), 6);
    assert_eq!(log[4].outcome, Err("wrong password for \"alice\"".to_string()));
}

#[test]
fn sasl_unsupported_mechanism_lists_the_enabled_ones_and_closes() {
    let mut sim = sasl_cluster(0);
    let (hs, _) = call_and_close(&mut sim, 1, 1, &handshake_req("SCRAM-SHA-512"));
    assert_eq!(hs.error_code, ec::UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(hs.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>(), ["SCRAM-SHA-256", "PLAIN"]);
    assert_eq!(sim.sasl().unwrap().log()[0].mechanism, "SCRAM-SHA-512");
}

#[test]
fn sasl_scram_exchange_on_the_wire_sessions_and_reauthentication() {
    let mut sim = sasl_cluster(10_000);
    sim.set_time(1000);
    call(&mut sim, 1, 1, 3, &api_versions_req(3));
    assert_eq!(call(&mut sim, 1, 1, 1, &handshake_req("SCRAM-SHA-256")).error_code, ec::NONE);
    let bare = "n=alice,r=clientnonce123";
    let first = call(&mut sim, 1, 1, 2, &authenticate_req(format!("n,,{bare}").as_bytes()));
    assert_eq!((first.error_code, first.session_lifetime_ms), (ec::NONE, 0));
    let server_first = std::str::from_utf8(&first.auth_bytes).unwrap().to_string();
    assert!(
        server_first.starts_with("r=clientnonce123") && server_first.ends_with(",i=4096"),
        "{server_first}"
    );
    let (client_final, server_final) = scram_client_final(bare, &server_first, "alice-secret");
    let last = call(&mut sim, 1, 1, 2, &authenticate_req(client_final.as_bytes()));
    assert_eq!(last.error_code, ec::NONE);
    assert_eq!(
        std::str::from_utf8(&last.auth_bytes).unwrap(),
        server_final,
        "server-final signs the exchange"
    );
    assert_eq!(last.session_lifetime_ms, 10_000);
    call(&mut sim, 1, 1, 12, &metadata_req(None));

    // KIP-368: a handshake on the authenticated connection re-authenticates; a new session.
    sim.set_time(9000);
    call(&mut sim, 1, 1, 1, &handshake_req("SCRAM-SHA-256"));
    let first = call(&mut sim, 1, 1, 2, &authenticate_req(format!("n,,{bare}").as_bytes()));
    let server_first2 = std::str::from_utf8(&first.auth_bytes).unwrap().to_string();
    assert_ne!(server_first2, server_first, "every exchange gets a new server nonce");
    let (client_final, _) = scram_client_final(bare, &server_first2, "alice-secret");
    assert_eq!(call(&mut sim, 1, 1, 2, &authenticate_req(client_final.as_bytes())).error_code, ec::NONE);
    sim.set_time(18_999);
    call(&mut sim, 1, 1, 12, &metadata_req(None));
    // The session ends: the next request other than SaslHandshake closes the connection.
    sim.set_time(19_000);
    assert!(sim.on_bytes(1, 1, &frame(12, 9, &metadata_req(None))).unwrap_err().contains("expired"));
    let log = sim.sasl().unwrap().log();
    assert_eq!(
        log.iter().map(|r| (r.reauth, r.outcome.is_ok(), r.at_ms)).collect::<Vec<_>>(),
        [(false, true, 1000), (true, true, 9000)]
    );

    // A wrong password fails at client-final with Kafka's message; an unknown user at
    // client-first with the same one.
    for (conn, user) in [(2, "alice"), (3, "mallory")] {
        call(&mut sim, conn, 1, 1, &handshake_req("SCRAM-SHA-256"));
        let bare = format!("n={user},r=abc");
        let msg = format!("n,,{bare}");
        let (auth, _) = if user == "alice" {
            let first = call(&mut sim, conn, 1, 1, &authenticate_req(msg.as_bytes()));
            let (client_final, _) = scram_client_final(
                &bare,
                std::str::from_utf8(&first.auth_bytes).unwrap(),
                "not-alice-secret",
            );
            call_and_close(&mut sim, conn, 1, &authenticate_req(client_final.as_bytes()))
        } else {
            call_and_close(&mut sim, conn, 1, &authenticate_req(msg.as_bytes()))
        };
        assert_eq!(auth.error_code, ec::SASL_AUTHENTICATION_FAILED);
        assert_eq!(
            auth.error_message.as_ref().map(|m| m.as_str()),
            Some("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256")
        );
    }

    // Re-authentication may change neither the principal nor the mechanism.
    let mut server = SaslServer::new(&[sasl::PLAIN, sasl::SCRAM_SHA_256]);
    server.add_user("alice", "a");
    server.add_user("bob", "b");
    let mut sim = cluster();
    sim.enable_sasl(server);
    call(&mut sim, 1, 1, 1, &handshake_req("PLAIN"));
    call(&mut sim, 1, 1, 2, &authenticate_req(b"\0alice\0a"));
    call(&mut sim, 1, 1, 1, &handshake_req("PLAIN"));
    let (auth, _) = call_and_close(&mut sim, 1, 2, &authenticate_req(b"\0bob\0b"));
    assert_eq!(
        auth.error_message.as_ref().map(|m| m.as_str()),
        Some("Cannot change principals during re-authentication from User:alice: User:bob")
    );
    call(&mut sim, 2, 1, 1, &handshake_req("PLAIN"));
    call(&mut sim, 2, 1, 2, &authenticate_req(b"\0alice\0a"));
    assert_eq!(call(&mut sim, 2, 1, 1, &handshake_req("SCRAM-SHA-256")).error_code, ec::NONE);
    let (auth, _) = call_and_close(&mut sim, 2, 2, &authenticate_req(b"n,,n=alice,r=x"));
    assert_eq!(auth.error_code, ec::SASL_AUTHENTICATION_FAILED);
    assert!(auth.error_message.unwrap().as_str().contains("not supported for re-authentication"));
}

#[test]
fn sasl_injected_faults_answer_then_close_or_lose_the_answer() {
    let mut sim = sasl_cluster(0);
    sim.inject_error(api_key::SASL_AUTHENTICATE, None, ec::ILLEGAL_SASL_STATE, 1);
    call(&mut sim, 1, 1, 1, &handshake_req("PLAIN"));
    let (auth, _) = call_and_close(&mut sim, 1, 2, &authenticate_req(b"\0alice\0alice-secret"));
    assert_eq!(auth.error_code, ec::ILLEGAL_SASL_STATE);
    sim.inject_disconnect(api_key::SASL_HANDSHAKE, None, 1);
    let reply = sim.on_bytes_reply(2, 1, &frame(1, 1, &handshake_req("PLAIN")));
    assert!(reply.bytes.is_empty() && reply.close.is_some());
    call(&mut sim, 3, 1, 1, &handshake_req("PLAIN"));
    assert_eq!(call(&mut sim, 3, 1, 2, &authenticate_req(b"\0alice\0alice-secret")).error_code, ec::NONE);
}

// ---------------------------------------------------------------------------------------------
// Transactions: the coordinators (sim::txn)
// ---------------------------------------------------------------------------------------------

/// A transactional batch (the attribute bit set) of `n` records from sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("txn-{epoch}-{seq}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .expect("batch encodes");
    buf.freeze()
}

#[test]
fn coordinator_wire_find_add_produce_verify_end_and_fence() {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
    };
    use kafka_protocol::messages::end_txn_request::EndTxnRequest;
    use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
    use picokafka_tests::sim::TxnMark;

    let mut sim = cluster();
    sim.enable_transactions(2);
    // FindCoordinator: v1 (one key, top-level answer) and v4 (a list), both key types.
    for (v, key_type) in [(1i16, 1i8), (3, 0), (4, 1), (5, 0)] {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_key_type(key_type).with_coordinator_keys(vec![s("tx-w")])
        } else {
            FindCoordinatorRequest::default().with_key_type(key_type).with_key(s("tx-w"))
        };
        let resp = call(&mut sim, 1, 1, v, &req);
        let (code, node) = if v >= 4 {
            (resp.coordinators[0].error_code, resp.coordinators[0].node_id.0)
        } else {
            (resp.error_code, resp.node_id.0)
        };
        assert_eq!((code, node), (ec::NONE, 2), "v{v} key type {key_type}");
    }
    let init = init_pid_req().with_transactional_id(Some(TransactionalId(s("tx-w"))));
    assert_eq!(call(&mut sim, 1, 1, 4, &init).error_code, ec::NOT_COORDINATOR);
    let first = call(&mut sim, 2, 2, 4, &init);
    assert_eq!((first.producer_id.0, first.producer_epoch), (1000, 0));

    // Produce before the partition is in the transaction: refused (KIP-890 part 1).
    let r = produce_one(&mut sim, 1, 9, "events", 0, txn_batch(1000, 0, 0, 2));
    assert_eq!(r.error_code, ec::INVALID_TXN_STATE);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx-w")))
        .with_v3_and_below_producer_id(1000.into())
        .with_v3_and_below_producer_epoch(0)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s("events")))
            .with_partitions(vec![0, 9])]);
    // An unknown partition: nothing is added, the other is not attempted.
    let resp = call(&mut sim, 2, 2, 3, &add);
    let codes: Vec<i16> = resp.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, [ec::OPERATION_NOT_ATTEMPTED, ec::UNKNOWN_TOPIC_OR_PARTITION]);
    let add = add.with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
        .with_name(TopicName(s("events")))
        .with_partitions(vec![0])]);
    let resp = call(&mut sim, 2, 2, 3, &add);
    assert_eq!(resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, ec::NONE);
    let r = produce_one(&mut sim, 1, 9, "events", 0, txn_batch(1000, 0, 0, 2));
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 0));
    assert!(sim.read_committed("events", 0).is_empty(), "open: held back");
    assert_eq!(sim.last_stable_offset("events", 0), 0);

    // A new producer fences the open transaction: aborted with a bumped epoch, retry later.
    assert_eq!(call(&mut sim, 2, 2, 4, &init).error_code, ec::CONCURRENT_TRANSACTIONS);
    let second = call(&mut sim, 2, 2, 4, &init);
    assert_eq!((second.producer_id.0, second.producer_epoch), (1000, 2));
    assert!(sim.log("events", 0).iter().all(|r| r.txn == TxnMark::Aborted));
    assert_eq!(sim.markers("events", 0), [(2, 1000, false)], "the marker takes an offset");
    // The zombie: its batch, its end.
    let r = produce_one(&mut sim, 1, 9, "events", 0, txn_batch(1000, 0, 2, 1));
    assert_eq!(r.error_code, ec::INVALID_PRODUCER_EPOCH);
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("tx-w")))
        .with_producer_id(1000.into())
        .with_producer_epoch(0)
        .with_committed(true);
    assert_eq!(call(&mut sim, 2, 2, 2, &end).error_code, ec::PRODUCER_FENCED);
    assert_eq!(call(&mut sim, 2, 2, 1, &end).error_code, ec::INVALID_PRODUCER_EPOCH);

    // The new producer commits: visible to read_committed; a retried end succeeds.
    let add = add.with_v3_and_below_producer_epoch(2);
    call(&mut sim, 2, 2, 3, &add);
    let r = produce_one(&mut sim, 1, 9, "events", 0, txn_batch(1000, 2, 0, 3));
    assert_eq!((r.error_code, r.base_offset), (ec::NONE, 3));
    let end = end.with_producer_epoch(2);
    assert_eq!(call(&mut sim, 2, 2, 3, &end).error_code, ec::NONE);
    assert_eq!(call(&mut sim, 2, 2, 3, &end).error_code, ec::NONE, "a retry of the commit");
    assert_eq!(call(&mut sim, 2, 2, 3, &end.clone().with_committed(false)).error_code, ec::INVALID_TXN_STATE);
    let visible: Vec<i64> = sim.read_committed("events", 0).iter().map(|r| r.offset).collect();
    assert_eq!(visible, [3, 4, 5]);
    assert_eq!(sim.last_stable_offset("events", 0), 7);
    // After the commit the partition is out of the transaction again.
    let r = produce_one(&mut sim, 1, 9, "events", 0, txn_batch(1000, 2, 3, 1));
    assert_eq!(r.error_code, ec::INVALID_TXN_STATE);
}
