//! The codec against real brokers: plain TCP to Apache Kafka and to Tansu, ApiVersions →
//! Metadata → Produce of an LZ4-compressed batch with keys and headers; then independent
//! consumers (confluent-kafka with CRC checks, kafka-python) read the records back and they must
//! be identical. And a check that the reference broker really is Apache Kafka, so the suite can
//! never fall back to a stand-in unnoticed.

use std::io::{Read, Write};
use std::net::TcpStream;

use kafka_protocol::messages::ApiVersionsResponse as KpApiVersionsResponse;
use kafka_protocol::protocol::Decodable;
use picokafka::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use picokafka::protocol::metadata::{MetadataRequest, MetadataResponse};
use picokafka::protocol::produce::{PartitionData, ProduceRequest, ProduceResponse, TopicData};
use picokafka::protocol::record_batch::{BatchBuilder, Compression, Header, ProducerState};
use picokafka::protocol::{encode_request, ApiKey, ErrorCode, Reader, Request, ResponseHeader, Writer};
use picokafka_tests::{consume, consume_with, Broker, Consumer, Kafka, Tansu};

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    /// Sends `body` at `version` and returns the response body (after its header).
    fn call<R: Request>(&mut self, version: i16, body: &R) -> Vec<u8> {
        self.correlation_id += 1;
        let mut buf = vec![0u8; 1 << 20];
        let mut w = Writer::new(&mut buf);
        encode_request(&mut w, version, self.correlation_id, Some("picokafka-test"), body);
        let n = w.finish().expect("request fits");
        self.stream.write_all(&buf[..n]).unwrap();

        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        let mut r = Reader::new(&frame);
        let header = ResponseHeader::decode(&mut r, R::API_KEY, version).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        r.rest().to_vec()
    }
}

fn connect(bootstrap: &str) -> Conn {
    Conn { stream: TcpStream::connect(bootstrap).unwrap(), correlation_id: 0 }
}

/// The reference broker is Apache Kafka 4.x: its ApiVersions v3 answer finalizes the
/// `metadata.version` feature (a KRaft cluster's; Tansu and librdkafka's mock send none) and
/// offers KRaft's own APIs (DescribeQuorum, AddRaftVoter). Prints what answered, for CI's log.
#[test]
fn the_reference_broker_is_apache_kafka() {
    let kafka = Kafka::shared();
    let mut conn = connect(&kafka.bootstrap());
    let body = conn
        .call(3, &ApiVersionsRequest { client_software_name: "picokafka", client_software_version: "0.1" });
    // A second codec reads the answer, tagged fields included.
    let resp = KpApiVersionsResponse::decode(&mut bytes::Bytes::from(body), 3).expect("ApiVersions v3");
    assert_eq!(resp.error_code, 0);
    let feature = resp
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "metadata.version")
        .expect("Apache Kafka finalizes metadata.version; this broker does not: not Apache Kafka");
    let key = |k: i16| resp.api_keys.iter().find(|a| a.api_key == k);
    assert!(key(55).is_some() && key(80).is_some(), "no DescribeQuorum/AddRaftVoter: not a KRaft Kafka");
    let produce = key(0).expect("Produce");
    assert!(
        produce.max_version >= 12,
        "Kafka 4 offers Produce v12 and newer, this broker v{}",
        produce.max_version
    );
    let version = std::fs::read_to_string(kafka.dir.join("server.log"))
        .ok()
        .and_then(|log| {
            log.lines().find_map(|l| {
                l.split("Kafka version: ")
                    .nth(1)
                    .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    println!(
        "reference broker: Apache Kafka {version} at {}: metadata.version level {}, Produce v{}-v{}, {} APIs",
        kafka.bootstrap(),
        feature.max_version_level,
        produce.min_version,
        produce.max_version,
        resp.api_keys.len()
    );
    assert!(version.starts_with("4."), "Apache Kafka 4.x expected, the broker's log says {version}");
}

/// The test broker runs transactions (transaction state log RF 1, min ISR 1): confluent-kafka's
/// transactional producer commits one and aborts one; a `read_committed` consumer sees only the
/// committed records, a `read_uncommitted` one both.
#[test]
fn the_test_broker_runs_transactions() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("txn-probe", 1);
    let status = std::process::Command::new(picokafka_tests::python())
        .arg(picokafka_tests::root().join("tests/py/txn_probe.py"))
        .args([&kafka.bootstrap(), &topic, "10", "5"])
        .status()
        .unwrap();
    assert!(status.success(), "the transactional probe failed: {status}");
    let committed = consume_with(
        &kafka.bootstrap(),
        &[&topic],
        10,
        Consumer::Confluent,
        &[("isolation.level", "read_committed")],
    );
    assert!(committed.iter().all(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"committed-"))));
    let all = consume_with(
        &kafka.bootstrap(),
        &[&topic],
        15,
        Consumer::Confluent,
        &[("isolation.level", "read_uncommitted")],
    );
    assert_eq!(
        all.iter().filter(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"aborted-"))).count(),
        5
    );
}

#[test]
fn produce_lz4_batch_to_kafka_and_read_back() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("wire", 3);
    produce_lz4_batch_and_read_back(kafka, &topic);
}

#[test]
fn produce_lz4_batch_to_tansu_and_read_back() {
    let tansu = Tansu::start();
    tansu.create_topic("wire", 3);
    produce_lz4_batch_and_read_back(&tansu, "wire");
}

fn produce_lz4_batch_and_read_back(broker: &dyn Broker, topic: &str) {
    let mut conn = connect(&broker.bootstrap());

    // ApiVersions at our highest version; negotiate the others from the answer.
    let body = conn
        .call(4, &ApiVersionsRequest { client_software_name: "picokafka", client_software_version: "0.1" });
    let versions = ApiVersionsResponse::decode(&body, 4).unwrap();
    assert_eq!(versions.error_code, ErrorCode::NoError);
    let metadata_v = versions.negotiate(ApiKey::Metadata, 1, 12).expect("Metadata supported");
    let produce_v = versions.negotiate(ApiKey::Produce, 3, 11).expect("Produce supported");

    let topics = [topic];
    let body = conn.call(
        metadata_v,
        &MetadataRequest { topics: Some(topics.iter().copied()), allow_auto_topic_creation: false },
    );
    let metadata = MetadataResponse::decode(&body, metadata_v).unwrap();
    let meta = metadata.topic(topic).expect("topic in metadata");
    assert_eq!(meta.error_code, ErrorCode::NoError);
    assert_eq!(meta.partitions.len(), 3);
    let leader = meta.partitions.iter().find(|p| p.partition_index == 1).unwrap().leader_id;
    let broker_meta = metadata.broker(leader).expect("leader is a known broker");
    assert_eq!(format!("{}:{}", broker_meta.host, broker_meta.port), broker.bootstrap(), "{}", broker.name());

    // 200 records with keys, headers (one null-valued) and distinct timestamps, LZ4-compressed.
    let mut buf = vec![0u8; 64 * 1024];
    let mut batch = BatchBuilder::new(&mut buf).unwrap();
    let base_ts = 1_700_000_000_000i64;
    let mut sent = Vec::new();
    for i in 0..200 {
        let key = format!("key-{i}");
        let value = format!("{{\"n\":{i},\"text\":\"the same words compress well\"}}");
        let trace = format!("t{i}");
        let headers =
            [Header { key: "trace", value: Some(trace.as_bytes()) }, Header { key: "empty", value: None }];
        batch.push(base_ts + i * 7, Some(key.as_bytes()), Some(value.as_bytes()), &headers).unwrap();
        sent.push((key, value, trace, base_ts + i * 7));
    }
    let mut scratch = vec![0u8; Compression::Lz4.scratch_len(batch.len())];
    let uncompressed = batch.len();
    let n = batch.finish(Compression::Lz4, ProducerState::NONE, &mut scratch).unwrap();
    assert!(n < uncompressed / 2, "LZ4 must shrink this batch: {n} vs {uncompressed}");

    let partitions = [PartitionData { index: 1, records: &buf[..n] }];
    let data = [TopicData { name: topic, partitions: &partitions }];
    // Apache Kafka names a new partition's leader in Metadata a moment before that broker
    // takes the leadership: the first Produce can meet NOT_LEADER_OR_FOLLOWER. It is
    // retriable, so retry it as a producer would (the batch is not written then).
    let mut attempts = 0;
    let (error_code, base_offset) = loop {
        let body = conn.call(
            produce_v,
            &ProduceRequest { transactional_id: None, acks: -1, timeout_ms: 5000, topics: &data },
        );
        let resp = ProduceResponse::decode(&body, produce_v).unwrap();
        let t = resp.responses.iter().next().unwrap();
        assert_eq!(t.name, topic);
        let p = t.partitions.iter().next().unwrap();
        assert_eq!(p.index, 1);
        attempts += 1;
        if !p.error_code.is_retriable() || attempts == 50 {
            break (p.error_code, p.base_offset);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!((error_code, base_offset), (ErrorCode::NoError, 0), "{}", broker.name());

    for consumer in [Consumer::Confluent, Consumer::KafkaPython] {
        let got = consume(&broker.bootstrap(), &[topic], sent.len(), consumer);
        for (i, (rec, (key, value, trace, ts))) in got.iter().zip(&sent).enumerate() {
            assert_eq!((rec.partition, rec.offset), (1, i as i64), "{consumer:?}");
            assert_eq!(rec.key.as_deref(), Some(key.as_bytes()), "{consumer:?}");
            assert_eq!(rec.value.as_deref(), Some(value.as_bytes()), "{consumer:?}");
            assert_eq!(rec.timestamp, *ts, "{consumer:?}");
            assert_eq!(
                rec.headers,
                vec![("trace".to_string(), Some(trace.as_bytes().to_vec())), ("empty".to_string(), None)],
                "{consumer:?}"
            );
        }
    }
}
