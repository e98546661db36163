//! Records larger than `batch.size`, and batches larger than a topic's `max.message.bytes`, on
//! Apache Kafka, as users meet them: `batch.size` is a target, a larger record gets a batch of
//! its own (up to `max.request.size`, within `buffer.memory`), and a broker's MESSAGE_TOO_LARGE
//! splits a batch until its halves fit (the Java client's `splitAndReenqueue`). Read back by
//! confluent-kafka with CRC checks.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use picokafka_tests::{cli, consume, Broker, Consumer, Kafka};
use picokafka_tokio::{ClientConfig, Error, OwnedRecord, Producer, SizeLimit};

/// `n` bytes of printable noise from `seed`: neither LZ4 nor the broker can shrink them much.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 90) as u8
        })
        .collect()
}

fn config(kafka: &Kafka, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.bootstrap());
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

#[test]
fn cli_sends_a_record_larger_than_batch_size_and_refuses_one_over_max_request_size() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("large-cli", 1);
    // The line: `python3 -c 'print("k:" + "x"*100000)'`, with a value that shows any
    // byte out of place. 100,073 bytes in a batch, batch.size 16,384 (the library's and Java's
    // default; the CLI's own is 256 KiB).
    let value = noise(1, 100_000);
    let mut input = b"k:".to_vec();
    input.extend_from_slice(&value);
    input.push(b'\n');
    let run = |input: &[u8]| {
        let mut child = Command::new(cli())
            .args(["produce", "-b", &kafka.bootstrap(), "-t", &topic, "-K", ":", "-X", "batch.size=16384"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn picokafka");
        child.stdin.take().expect("stdin").write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stdout, stderr) = run(&input);
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(stderr.contains("1 records sent, 1 delivered, 0 failed"), "{stderr}");
    let got = consume(&kafka.bootstrap(), &[&topic], 1, Consumer::Confluent);
    assert_eq!(got[0].key.as_deref(), Some(&b"k"[..]));
    assert!(got[0].value.as_deref() == Some(&value[..]), "the value read back is the value sent");

    // 2 MB: more than max.request.size (1 MiB), refused with the limit named.
    let mut input = b"k:".to_vec();
    input.extend_from_slice(&noise(2, 2_000_000));
    input.push(b'\n');
    let (status, stdout, stderr) = run(&input);
    assert!(!status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(" 0 delivered, 1 failed"), "{stderr}");
    assert!(stderr.contains("exceeds max.request.size 1048576"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_up_to_max_request_size_whatever_batch_size_and_buffer_memory_bound_them() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("large-api", 1);
    let producer = Producer::new(&config(kafka, &[("compression.type", "lz4")])).unwrap();
    // Just under max.request.size, compressed (LZ4 scratch sized for it) and not.
    let big = noise(3, 1_000_000);
    let mut squeezable = noise(4, 1000).repeat(900);
    squeezable.truncate(900_000);
    for v in [&big, &squeezable] {
        producer.send(OwnedRecord::new(topic.as_str()).value(v.clone())).await.unwrap();
    }
    let err = producer.send(OwnedRecord::new(topic.as_str()).value(noise(5, 1_048_576))).await.unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { limit: SizeLimit::MaxRequestSize, max: 1_048_576, .. }),
        "{err}"
    );
    producer.close(Duration::from_secs(10)).await;
    let got = consume(&kafka.bootstrap(), &[&topic], 2, Consumer::Confluent);
    assert!(got[0].value.as_deref() == Some(&big[..]) && got[1].value.as_deref() == Some(&squeezable[..]));

    // buffer.memory is the other bound: 64 KiB of batch memory holds no 100 kB record.
    let small = Producer::new(&config(kafka, &[("buffer.memory", "65536")])).unwrap();
    let err = small.send(OwnedRecord::new(topic.as_str()).value(noise(6, 100_000))).await.unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { limit: SizeLimit::BatchMemory, max: 65_536, .. }), "{err}");
    assert!(err.to_string().contains("batch memory of 65536 bytes (buffer.memory)"), "{err}");
    small.close(Duration::from_secs(5)).await;
}

/// 200 records of 100 bytes with linger.ms=50 fill batches of ~16 KB that a topic with
/// `max.message.bytes=2000` refuses: split and resent, every record arrives once, in order. A
/// 5000-byte record alone cannot be split: it fails with MESSAGE_TOO_LARGE.
async fn split_on_message_too_large(compression: &str, value: impl Fn(usize) -> Vec<u8>) {
    let kafka = Kafka::shared();
    let topic = format!("large-split-{compression}-{}", std::process::id());
    kafka.create_topic_with(&topic, 1, &[("max.message.bytes", "2000")]);
    let producer =
        Producer::new(&config(kafka, &[("linger.ms", "50"), ("compression.type", compression)])).unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        let record = OwnedRecord::new(topic.as_str()).value(value(i)).header("seq", Some(i.to_string()));
        pending.push(producer.enqueue(record).await.unwrap());
    }
    for p in pending {
        p.await.unwrap();
    }
    let err = producer.send(OwnedRecord::new(topic.as_str()).value(noise(7, 5000))).await.unwrap_err();
    assert!(err.to_string().contains("MESSAGE_TOO_LARGE"), "{err}");
    let metrics = producer.metrics().await;
    assert!(metrics.batches_split >= 3, "{compression}: {metrics:?}");
    producer.close(Duration::from_secs(10)).await;
    let got = consume(&kafka.bootstrap(), &[&topic], 200, Consumer::Confluent);
    for (i, rec) in got.iter().enumerate() {
        assert_eq!(
            rec.headers[0].1.as_deref(),
            Some(i.to_string().as_bytes()),
            "{compression}: in order, once"
        );
        assert!(rec.value.as_deref() == Some(&value(i)[..]), "{compression}: record {i} intact");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_too_large_splits_the_batch() {
    split_on_message_too_large("none", |i| noise(i as u64, 100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_too_large_splits_an_lz4_batch() {
    // Half noise, half repetition: LZ4 halves a batch, which stays far above 2000 bytes.
    split_on_message_too_large("lz4", |i| {
        let mut v = noise(i as u64, 50);
        v.extend_from_slice(&[b'r'; 50]);
        v
    })
    .await;
}

/// The split inside a transaction: the halves stay transactional and in it; read_committed
/// reads every record once, in order, after the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_s_batch_split_on_message_too_large_commits_whole() {
    let kafka = Kafka::shared();
    let topic = format!("large-split-txn-{}", std::process::id());
    kafka.create_topic_with(&topic, 1, &[("max.message.bytes", "2000")]);
    let id = format!("large-txn-{}", std::process::id());
    let t = Duration::from_secs(30);
    let producer = Producer::new(&config(kafka, &[("transactional.id", &id), ("linger.ms", "50")])).unwrap();
    producer.init_transactions(t).await.unwrap();
    producer.begin_transaction().await.unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        let record = OwnedRecord::new(topic.as_str()).value(noise(i, 100)).header("seq", Some(i.to_string()));
        pending.push(producer.enqueue(record).await.unwrap());
    }
    producer.commit_transaction(t).await.unwrap();
    for p in pending {
        p.await.unwrap();
    }
    assert!(producer.metrics().await.batches_split >= 3);
    producer.close(Duration::from_secs(10)).await;
    let got = picokafka_tests::consume_with(
        &kafka.bootstrap(),
        &[&topic],
        200,
        Consumer::Confluent,
        &[("isolation.level", "read_committed")],
    );
    for (i, rec) in got.iter().enumerate() {
        assert_eq!(rec.headers[0].1.as_deref(), Some(i.to_string().as_bytes()), "in order, once");
        assert!(rec.value.as_deref() == Some(&noise(i as u64, 100)[..]));
    }
}
