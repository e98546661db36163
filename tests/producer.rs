//! The whole producer (core + tokio transport) against real brokers — Apache Kafka (the shared
//! reference node) and, where a second broker adds something, Tansu — read back by consumers
//! nobody here wrote.

use std::time::Duration;

use picokafka::partitioner::partition_for_key;
use picokafka_tests::{consume, Broker, Consumer, Kafka, Tansu};
use picokafka_tokio::{ClientConfig, Error, MetadataCause, OwnedRecord, Producer};

fn config(broker: &dyn Broker, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap());
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// Sends `n` keyed records with headers to `topic`, awaits every delivery, and checks what an
/// independent consumer reads back: same keys, values, headers, timestamps; keyed records on
/// the partition the Java client would choose; per-partition order equal to send order. Returns
/// the producer's metrics.
async fn produce_and_verify(
    broker: &dyn Broker,
    topic: &str,
    partitions: i32,
    n: usize,
    extra: &[(&str, &str)],
) -> picokafka_tokio::Metrics {
    let producer = Producer::new(&config(broker, extra)).unwrap();
    let mut futures = Vec::new();
    for i in 0..n {
        let record = OwnedRecord::new(topic)
            .key(format!("key-{}", i % 37))
            .value(format!("value-{i}"))
            .header("seq", Some(i.to_string()))
            .timestamp(1_700_000_000_000 + i as i64);
        futures.push(producer.enqueue(record).await.unwrap());
    }
    let mut offsets = Vec::new();
    for f in futures {
        let d = f.await.unwrap();
        offsets.push((d.partition, d.offset));
    }
    let metrics = producer.metrics().await;
    producer.close(Duration::from_secs(10)).await;
    let acks0 = extra.contains(&("acks", "0"));

    let got = consume(&broker.bootstrap(), &[topic], n, Consumer::Confluent);
    let mut last_seq = vec![-1i64; partitions as usize];
    for rec in &got {
        let seq: usize = String::from_utf8(rec.headers[0].1.clone().unwrap()).unwrap().parse().unwrap();
        let key = format!("key-{}", seq % 37);
        assert_eq!(rec.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(rec.value.as_deref(), Some(format!("value-{seq}").as_bytes()));
        assert_eq!(rec.timestamp, 1_700_000_000_000 + seq as i64);
        assert_eq!(rec.partition, partition_for_key(key.as_bytes(), partitions), "murmur2 placement");
        if !acks0 {
            assert_eq!((rec.partition, rec.offset), offsets[seq], "reported offset");
        }
        assert!(seq as i64 > last_seq[rec.partition as usize], "send order kept within a partition");
        last_seq[rec.partition as usize] = seq as i64;
    }
    metrics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_lz4_acks_all() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("idem", 3);
    produce_and_verify(kafka, &topic, 3, 5000, &[("compression.type", "lz4")]).await;
}

/// The same on Tansu: a second broker implementation, with its own idempotence quirks
/// (DUPLICATE_SEQUENCE_NUMBER for identical resends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_lz4_acks_all_on_tansu() {
    let broker = Tansu::start();
    broker.create_topic("idem", 3);
    produce_and_verify(&broker, "idem", 3, 5000, &[("compression.type", "lz4")]).await;
}

/// The producer-wide delivery handler (librdkafka's `dr_msg_cb`): every record sent with an
/// opaque value is reported exactly once, with the offset a foreign consumer then reads it at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_handler_reports_every_opaque_once() {
    use std::sync::{Arc, Mutex};
    let broker = Kafka::shared();
    let topic = broker.topic("handler", 3);
    let n = 3000usize;
    type Report = (u64, Result<(i32, i64), String>);
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    let sink = reports.clone();
    let handler = move |opaque: u64, r: Result<picokafka_tokio::Delivery, Error>| {
        sink.lock().unwrap().push((opaque, r.map(|d| (d.partition, d.offset)).map_err(|e| e.to_string())));
    };
    let producer = Producer::with_delivery_handler(&config(broker, &[("linger.ms", "2")]), handler).unwrap();
    for i in 0..n {
        let record = OwnedRecord::new(topic.as_str()).key(format!("k{}", i % 11)).value(format!("v{i}"));
        producer.send_with_opaque(record, 1_000_000 + i as u64).await.unwrap();
    }
    producer.flush(Duration::from_secs(120)).await.expect("flush");
    let mut got = std::mem::take(&mut *reports.lock().unwrap());
    got.sort_by_key(|(o, _)| *o);
    assert_eq!(got.len(), n, "one report per record");
    for (i, (opaque, r)) in got.iter().enumerate() {
        assert_eq!(*opaque, 1_000_000 + i as u64, "each opaque exactly once");
        assert!(r.is_ok(), "record {i}: {r:?}");
    }
    producer.close(Duration::from_secs(10)).await;

    let read = consume(&broker.bootstrap(), &[&topic], n, Consumer::Confluent);
    for rec in &read {
        let i: usize = std::str::from_utf8(&rec.value.clone().unwrap()[1..]).unwrap().parse().unwrap();
        assert_eq!(got[i].1, Ok((rec.partition, rec.offset)), "reported where it was read");
    }

    // Without a handler, an opaque send is refused, not silently unreported.
    let plain = Producer::new(&config(broker, &[])).unwrap();
    let refused = plain.send_with_opaque(OwnedRecord::new(topic.as_str()).value("x"), 1).await.unwrap_err();
    assert!(matches!(refused.error, Error::Config(_)), "{refused:?}");
    assert_eq!(refused.record.value.as_deref(), Some(&b"x"[..]), "the record is handed back");
    plain.close(Duration::from_secs(5)).await;
}

/// A custom partitioner: it routes records by the number in their value, defers to the default
/// rules where it answers `None`, and an out-of-range answer fails only that record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_partitioner_places_records() {
    struct ByValue;
    impl picokafka_tokio::Partitioner for ByValue {
        fn partition(
            &mut self,
            topic: &str,
            key: Option<&[u8]>,
            value: Option<&[u8]>,
            count: i32,
        ) -> Option<i32> {
            assert!(topic.starts_with("routed-"), "{topic}");
            let n: i32 = std::str::from_utf8(value?).ok()?.parse().ok()?;
            // Keyed records with n >= 1000 go to the default (murmur2) placement.
            if key.is_some() && n >= 1000 {
                return None;
            }
            Some(if n == -1 { count } else { n % count })
        }
    }
    let broker = Kafka::shared();
    let topic = broker.topic("routed", 4);
    let producer = Producer::builder(&config(broker, &[])).partitioner(ByValue).build().unwrap();
    let mut expected = Vec::new();
    for n in 0..200 {
        let d = producer.send(OwnedRecord::new(topic.as_str()).value(n.to_string())).await.unwrap();
        assert_eq!(d.partition, n % 4);
        expected.push((n.to_string(), n % 4));
    }
    for n in 1000..1050 {
        let key = format!("key-{n}");
        let d = producer
            .send(OwnedRecord::new(topic.as_str()).key(key.clone()).value(n.to_string()))
            .await
            .unwrap();
        assert_eq!(d.partition, partition_for_key(key.as_bytes(), 4), "None falls back to murmur2");
        expected.push((n.to_string(), d.partition));
    }
    let err = producer.send(OwnedRecord::new(topic.as_str()).value("-1")).await.unwrap_err();
    assert_eq!(err, Error::PartitionOutOfRange { partition: 4, count: 4 });
    producer.close(Duration::from_secs(10)).await;

    let read = consume(&broker.bootstrap(), &[&topic], expected.len(), Consumer::Confluent);
    let mut got: Vec<(String, i32)> =
        read.iter().map(|r| (String::from_utf8(r.value.clone().unwrap()).unwrap(), r.partition)).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

/// The blocking facade, from plain synchronous code: send (sync), enqueue + wait (async), opaque
/// sends to a delivery handler, a custom partitioner; every record read back where reported.
#[test]
fn blocking_producer_from_synchronous_code() {
    use picokafka_tokio::BlockingProducer;
    use std::sync::{Arc, Mutex};
    struct LastByte;
    impl picokafka_tokio::Partitioner for LastByte {
        fn partition(&mut self, _: &str, _: Option<&[u8]>, value: Option<&[u8]>, count: i32) -> Option<i32> {
            value?.last().map(|b| i32::from(*b) % count)
        }
    }
    let broker = Kafka::shared();
    let topic = broker.topic("blocking", 3);
    let reports: Arc<Mutex<Vec<(u64, i32, i64)>>> = Arc::default();
    let sink = reports.clone();
    let producer = BlockingProducer::build_with(&config(broker, &[]), |b| {
        b.partitioner(LastByte).delivery_handler(move |opaque, r| {
            let d = r.expect("delivered");
            sink.lock().unwrap().push((opaque, d.partition, d.offset));
        })
    })
    .unwrap();
    let mut placed = Vec::new();
    for i in 0..30u8 {
        let value = vec![b'v', i];
        let d = producer.send(OwnedRecord::new(topic.as_str()).value(value.clone())).unwrap();
        assert_eq!(d.partition, i32::from(i) % 3, "the partitioner chose");
        placed.push((value, d.partition, d.offset));
    }
    let pending = producer.enqueue(OwnedRecord::new(topic.as_str()).value(vec![b'w', 1])).unwrap();
    let d = producer.wait(pending).unwrap();
    placed.push((vec![b'w', 1], d.partition, d.offset));
    for i in 0..20u8 {
        producer
            .send_with_opaque(OwnedRecord::new(topic.as_str()).value(vec![b'o', i]), u64::from(i))
            .unwrap();
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let mut got = std::mem::take(&mut *reports.lock().unwrap());
    got.sort_unstable();
    assert_eq!(got.len(), 20, "every opaque send reported by flush's return");
    for (i, p, o) in got {
        placed.push((vec![b'o', i as u8], p, o));
    }
    producer.close(Duration::from_secs(10));

    let read = consume(&broker.bootstrap(), &[&topic], placed.len(), Consumer::KafkaPython);
    let mut read: Vec<(Vec<u8>, i32, i64)> =
        read.into_iter().map(|r| (r.value.unwrap(), r.partition, r.offset)).collect();
    read.sort();
    placed.sort();
    assert_eq!(read, placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_one_uncompressed_no_idempotence() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("plain", 4);
    // Without idempotence, a retried batch (a new topic's partitions answer NOT_LEADER for a
    // moment) may land after a later one of its partition, as with the Java client: order holds
    // only with one request in flight, which the test checks.
    let props =
        [("acks", "1"), ("enable.idempotence", "false"), ("max.in.flight.requests.per.connection", "1")];
    produce_and_verify(kafka, &topic, 4, 2000, &props).await;
}

/// gzip, snappy and zstd batches: the foreign consumer (librdkafka, CRC checks on) decompresses
/// and reads back every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_codecs_gzip_snappy_zstd() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("plain-for-size", 2);
    let plain = produce_and_verify(kafka, &topic, 2, 1500, &[("linger.ms", "5")]).await;
    for codec in ["gzip", "snappy", "zstd"] {
        let topic = kafka.topic(codec, 2);
        let m =
            produce_and_verify(kafka, &topic, 2, 1500, &[("compression.type", codec), ("linger.ms", "5")])
                .await;
        // The batches really went compressed: far fewer bytes on the wire than uncompressed.
        assert!(
            m.bytes_written * 4 < plain.bytes_written * 3,
            "{codec}: {} bytes written, {} uncompressed",
            m.bytes_written,
            plain.bytes_written
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero() {
    // Apache Kafka sends nothing back for acks=0; Tansu answers anyway: both must work.
    let kafka = Kafka::shared();
    let topic = kafka.topic("zero", 2);
    produce_and_verify(kafka, &topic, 2, 1000, &[("acks", "0"), ("enable.idempotence", "false")]).await;
    let tansu = Tansu::start();
    tansu.create_topic("zero", 2);
    produce_and_verify(&tansu, "zero", 2, 1000, &[("acks", "0"), ("enable.idempotence", "false")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_fails_after_max_block() {
    let broker = Kafka::shared();
    let producer =
        Producer::new(&config(broker, &[("allow.auto.create.topics", "false"), ("max.block.ms", "1500")]))
            .unwrap();
    let started = std::time::Instant::now();
    let topic = format!("nope-{}", std::process::id());
    let err = producer.send(OwnedRecord::new(topic.as_str()).value("x")).await.unwrap_err();
    let cause = Some(MetadataCause::Topic(picokafka::protocol::ErrorCode::UnknownTopicOrPartition));
    assert_eq!(err, Error::MetadataTimeout { topic: topic.clone(), waited_ms: 1500, cause });
    assert_eq!(
        err.to_string(),
        format!(
            "topic {topic} not present in metadata after 1500 ms: \
             the brokers answer UNKNOWN_TOPIC_OR_PARTITION (3)"
        )
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));

    // The brokers still say the topic does not exist: the next record is refused at once, with
    // the same cause, rather than after another max.block.ms (librdkafka fails a topic it knows
    // does not exist the same way).
    let started = std::time::Instant::now();
    let err = producer.send(OwnedRecord::new(topic.as_str()).value("y")).await.unwrap_err();
    let Error::MetadataTimeout { cause: Some(MetadataCause::Topic(code)), waited_ms, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*code, picokafka::protocol::ErrorCode::UnknownTopicOrPartition);
    assert!(
        *waited_ms < 1000 && started.elapsed() < Duration::from_millis(1000),
        "{err}: {:?}",
        started.elapsed()
    );

    // Once the topic exists, its records go through again, as soon as the producer's metadata
    // says so (it keeps asking while records for the topic come).
    broker.create_topic_with(&topic, 1, &[]);
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        match producer.send(OwnedRecord::new(topic.as_str()).value("z")).await {
            Ok(delivery) => {
                assert_eq!(delivery.offset, 0);
                break;
            }
            Err(e) => outcomes.push(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(outcomes.len() < 50, "never delivered once the topic existed: {outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_bootstrap_is_a_clear_error() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", format!("127.0.0.1:{port}")).set("max.block.ms", "1000");
    let producer = Producer::new(&c).unwrap();
    let err = producer.send(OwnedRecord::new("t").value("x")).await.unwrap_err();
    let Error::MetadataTimeout { topic, waited_ms: 1000, cause: Some(cause) } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(topic, "t");
    // The cause names the address and the socket's error, not just "disconnected".
    let refused = format!("no broker reachable: connect to 127.0.0.1:{port} failed: Connection refused");
    assert!(matches!(cause, MetadataCause::NoBrokerReachable(_)), "{cause:?}");
    assert!(cause.to_string().starts_with(&refused), "{cause}");
    let health = producer.health().await;
    assert!(!health.is_healthy());
    assert_eq!(health.brokers_ready, 0);
    let last = health.last_error.unwrap_or_default();
    assert!(last.starts_with(&format!("connect to 127.0.0.1:{port} failed: Connection refused")), "{last}");

    // Still nobody there: the next records are refused at once with the same cause, not after
    // another max.block.ms each (a queueful of them would otherwise wait it out in turn).
    let started = std::time::Instant::now();
    for value in ["y", "z"] {
        let err = producer.send(OwnedRecord::new("t").value(value)).await.unwrap_err();
        let Error::MetadataTimeout { cause: Some(MetadataCause::NoBrokerReachable(_)), waited_ms, .. } = &err
        else {
            panic!("{err:?}")
        };
        assert!(*waited_ms < 500, "{err}");
    }
    assert!(started.elapsed() < Duration::from_millis(800), "{:?}", started.elapsed());
    producer.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_the_broker_is_down_reports_every_record() {
    // Tansu: killing the shared Kafka node would take it from every other test; the 3-node
    // cluster's fault matrix kills Kafka brokers.
    let broker = Tansu::start();
    broker.create_topic("down", 1);
    let producer = Producer::new(&config(&broker, &[("linger.ms", "0")])).unwrap();
    for i in 0..100 {
        producer.send(OwnedRecord::new("down").value(format!("before-{i}"))).await.unwrap();
    }
    broker.kill();
    let mut pending = Vec::new();
    for i in 0..50 {
        pending.push(producer.enqueue(OwnedRecord::new("down").value(format!("after-{i}"))).await.unwrap());
    }
    let started = std::time::Instant::now();
    producer.close(Duration::from_secs(2)).await;
    assert!(started.elapsed() < Duration::from_secs(10), "close keeps its deadline");
    let mut failed = 0;
    for f in pending {
        match f.await {
            Err(Error::Delivery(picokafka::DeliveryError::Closed)) => failed += 1,
            other => panic!("expected a Closed report, got {other:?}"),
        }
    }
    assert_eq!(failed, 50, "every record reported, none vanished");
}

/// A transactional producer takes records only inside a transaction: one sent before
/// `init_transactions` / `begin_transaction` is refused at once, naming the state, not written
/// outside any transaction; transactional calls on a producer without `transactional.id` are
/// refused too.
#[test]
fn records_outside_a_transaction_are_refused_not_written() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:9").set("transactional.id", "orders-1");
        let producer = Producer::new(&c).unwrap();
        let err = producer.send(OwnedRecord::new("orders").value("v")).await.unwrap_err();
        assert!(matches!(err, Error::NoTransaction(picokafka::TxnState::Uninitialized)), "{err:?}");
        assert!(err.to_string().contains("only in a transaction"), "{err}");
        let err = producer.begin_transaction().await.unwrap_err();
        assert!(err.to_string().contains("begin_transaction is not allowed"), "{err}");
        let mut plain = ClientConfig::new();
        plain.set("bootstrap.servers", "127.0.0.1:9");
        let producer = Producer::new(&plain).unwrap();
        let err = producer.begin_transaction().await.unwrap_err();
        assert_eq!(err, Error::Transaction(picokafka::TxnError::NotTransactional));
    });
}
