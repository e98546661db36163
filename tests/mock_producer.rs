//! The whole producer (core + tokio transport, and the `picokafka` CLI) against librdkafka's
//! 3-broker mock cluster (`picokafka_tests::mock`, a fresh one per test), read back by a
//! consumer nobody here wrote: confluent-kafka with `check.crcs=true`. (kafka-python 3.0.12
//! cannot bootstrap from this mock, whose ApiVersions answer to a v3+ request is malformed, so
//! it is not used here.)
//!
//! - A table of configurations (acks 0/1/all, idempotence on/off, LZ4/none, one to three
//!   topics), each against a cluster whose partition leaders are spread over all three
//!   brokers: every record read back equals what was sent (key, value, headers, timestamp), on
//!   the partition the Java client would choose for its key (explicit partitions win, keyless
//!   records spread over several partitions across flushes), in send order per partition, at
//!   the offset the delivery report gave. The mock refuses a Produce sent to a broker that does
//!   not lead the partition, so no retried batch plus connections to all three brokers shows
//!   each batch went to its leader.
//! - Leaders moving mid-stream: every record arrives exactly once, in order.
//! - Two batch buffers only: records waiting for room keep flowing as batches complete.
//! - The CLI through an outage of two brokers, and of all three, mid-stream; through SIGINT
//!   with the input pipe still open, and SIGINT while lines still stream in: what it reports
//!   delivered is exactly what the consumer reads back, without duplicates.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read as _, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use picokafka::partitioner::partition_for_key;
use picokafka_tests::mock::MockCluster;
use picokafka_tests::{cli, consume, python, root, Consumed, Consumer};
use picokafka_tokio::{ClientConfig, Delivery, OwnedRecord, Producer};

const BROKERS: u32 = 3;
/// CreateTime of records with an explicit timestamp: `TS0 + index`.
const TS0: i64 = 1_700_000_000_000;
/// The LogAppendTime librdkafka's mock puts in every successful Produce response (it never
/// uses it for the stored records, which keep their CreateTime).
const MOCK_LOG_APPEND_TIME: i64 = 1234;

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

/// A fresh 3-broker mock cluster with `topics` (replication 3), partition `p` of the `t`-th
/// topic led by broker `(p + t) % 3 + 1`: leaders on every broker.
fn cluster(topics: &[(&str, i32)]) -> MockCluster {
    let spec: Vec<(&str, i32, i32)> = topics.iter().map(|&(t, n)| (t, n, 3)).collect();
    let mut mock = MockCluster::start(BROKERS, &spec);
    for (t, &(topic, partitions)) in topics.iter().enumerate() {
        for p in 0..partitions {
            mock.leader(topic, p, (p + t as i32) % 3 + 1);
        }
    }
    mock
}

/// Longest a record may wait for metadata or room (default 60 s): a healthy local cluster needs
/// milliseconds, and a producer that cannot talk to it at all fails the test sooner.
const MAX_BLOCK_MS: &str = "10000";

fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("max.block.ms", MAX_BLOCK_MS);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

// ---------------------------------------------------------------------------------------------
// 1 + 2: the table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Case {
    acks: &'static str,
    idempotence: bool,
    compression: &'static str,
    /// (name, partitions)
    topics: &'static [(&'static str, i32)],
}

/// Flushes per run; records per topic per round.
const ROUNDS: usize = 4;
const PER_ROUND: usize = 600;

/// Record `i` of `topic`: a mix of shapes, chosen by `i % 8`.
///
/// 0, 4: no key (sticky partitioner), no timestamp (stamped at send), one header;
/// 1: key and explicit partition (which wins); 2: keyed tombstone or empty value, no headers;
/// 3: binary key, value and header, a null header value, a repeated header name;
/// 5, 6, 7: plain keyed records with a header.
fn record(topic: &str, partitions: i32, i: usize) -> OwnedRecord {
    let r = OwnedRecord::new(topic);
    let ts = TS0 + i as i64;
    match i % 8 {
        0 | 4 => {
            r.value(format!("{topic} keyless {i} {}", "u".repeat(i % 97))).header("i", Some(i.to_string()))
        }
        1 => r
            .key(format!("x{i}"))
            .value(format!("{topic} explicit {i}"))
            .partition((i / 8) as i32 % partitions)
            .header("i", Some(i.to_string()))
            .timestamp(ts),
        2 => {
            let r = r.key(format!("tomb-{}", i % 29)).timestamp(ts);
            if i % 16 == 2 {
                r.value(Vec::new())
            } else {
                r
            }
        }
        3 => {
            let bin: Vec<u8> = (0..=255u8).cycle().skip(i % 256).take(i % 300 + 1).collect();
            r.key([0u8, 0xff, (i % 251) as u8, (i >> 8) as u8])
                .value(bin.clone())
                .header("bin", Some(bin))
                .header("null", None::<Vec<u8>>)
                .header("dup", Some("a"))
                .header("dup", Some("b"))
                .timestamp(ts)
        }
        _ => r
            .key(format!("key-{}", i % 37))
            .value(format!("{topic} value {i} {}", "v".repeat(i % 50)))
            .header("seq", Some(i.to_string()))
            .timestamp(ts),
    }
}

fn describe(r: &Consumed) -> String {
    let s = |v: &Option<Vec<u8>>| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    format!(
        "{}[{}]@{} key={:?} value={:?} ts={} headers={}",
        r.topic,
        r.partition,
        r.offset,
        s(&r.key),
        s(&r.value),
        r.timestamp,
        r.headers.len()
    )
}

/// Produces `ROUNDS` rounds of records to every topic of `case` (interleaved, a flush after each
/// round), then has confluent-kafka read everything back and compares it record by record.
async fn produce_and_read_back(case: Case) {
    let started = Instant::now();
    let mock = cluster(case.topics);
    let mut props = vec![("acks", case.acks), ("compression.type", case.compression)];
    props.push(("enable.idempotence", if case.idempotence { "true" } else { "false" }));
    let producer = Producer::new(&config(&mock.bootstrap, &props)).expect("producer");

    let before = unix_ms();
    let mut sent = Vec::new();
    for round in 0..ROUNDS {
        let mut futures = Vec::new();
        for i in round * PER_ROUND..(round + 1) * PER_ROUND {
            for &(topic, partitions) in case.topics {
                let r = record(topic, partitions, i);
                futures.push((r.clone(), producer.enqueue(r).await.expect("enqueue")));
            }
        }
        producer.flush(Duration::from_secs(120)).await.expect("flush");
        for (r, f) in futures {
            let d = f.await.unwrap_or_else(|e| panic!("{case:?}: {r:?} not delivered: {e}"));
            sent.push((r, d));
        }
    }
    let after = unix_ms();

    // Every batch went to its partition's leader: the mock answers a Produce sent anywhere else
    // with NOT_LEADER_OR_FOLLOWER, which would have been retried. And all three brokers served.
    let health = producer.health().await;
    let metrics = producer.metrics().await;
    assert_eq!(metrics.batches_retried, 0, "{case:?}: no batch needed a retry: {metrics:?}");
    assert_eq!(metrics.records_failed, 0, "{case:?}: {metrics:?}");
    assert!(health.brokers_ready >= BROKERS as usize, "{case:?}: connected to every leader: {health:?}");
    producer.close(Duration::from_secs(10)).await;
    let produced = started.elapsed();

    // What the consumer must read, per partition in send order.
    let mut expected: BTreeMap<(String, i32), Vec<(&OwnedRecord, &Delivery)>> = BTreeMap::new();
    let mut keyless_partitions: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for (r, d) in &sent {
        let partitions = case.topics.iter().find(|t| *t.0 == *r.topic).expect("topic").1;
        match (r.partition, &r.key) {
            (Some(p), _) => assert_eq!(d.partition, p, "explicit partition wins: {r:?}"),
            (None, Some(k)) => {
                assert_eq!(d.partition, partition_for_key(k, partitions), "murmur2 placement: {r:?}")
            }
            (None, None) => {
                keyless_partitions.entry(&r.topic).or_default().insert(d.partition);
            }
        }
        assert!((0..partitions).contains(&d.partition), "{r:?} -> {d:?}");
        expected.entry((r.topic.to_string(), d.partition)).or_default().push((r, d));
    }
    for (topic, parts) in &keyless_partitions {
        assert!(parts.len() >= 2, "{case:?}: keyless records of {topic} stuck to {parts:?}");
    }

    let topics: Vec<&str> = case.topics.iter().map(|t| t.0).collect();
    let got = consume(&mock.bootstrap, &topics, sent.len(), Consumer::Confluent);
    let mut read: BTreeMap<(String, i32), Vec<&Consumed>> = BTreeMap::new();
    for c in &got {
        read.entry((c.topic.clone(), c.partition)).or_default().push(c);
    }
    assert_eq!(
        read.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{case:?}: partitions with records"
    );
    for (tp, want) in &expected {
        let have = &read[tp];
        assert_eq!(have.len(), want.len(), "{case:?}: records in {tp:?}");
        for (n, (c, (r, d))) in have.iter().zip(want).enumerate() {
            let what = format!("{case:?}: {tp:?} record #{n}: read {} sent {r:?}", describe(c));
            assert_eq!(c.offset, n as i64, "{what}: offsets are dense from 0");
            assert_eq!(c.key.as_deref(), r.key.as_deref(), "{what}: key");
            assert_eq!(c.value.as_deref(), r.value.as_deref(), "{what}: value");
            assert_eq!(c.headers, r.headers, "{what}: headers");
            match r.timestamp {
                Some(ts) => assert_eq!(c.timestamp, ts, "{what}: timestamp"),
                None => {
                    assert!((before - 1000..=after + 1000).contains(&c.timestamp), "{what}: send-time stamp")
                }
            }
            if case.acks == "0" {
                assert_eq!(d.offset, -1, "{what}: acks=0 reports no offset");
                assert_eq!(d.timestamp, c.timestamp, "{what}: reported timestamp");
            } else {
                assert_eq!(d.offset, c.offset, "{what}: reported offset");
                // The broker's LogAppendTime wins when it sends one, as in the Java client.
                assert_eq!(d.timestamp, MOCK_LOG_APPEND_TIME, "{what}: reported timestamp");
            }
        }
    }
    eprintln!(
        "{case:?}: {} records, keyless on {keyless_partitions:?}, brokers ready {}; produced in {:.2?}, \
         total {:.2?}",
        sent.len(),
        health.brokers_ready,
        produced,
        started.elapsed()
    );
}

macro_rules! cases {
    ($($name:ident: $case:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            produce_and_read_back($case).await;
        }
    )*};
}

cases! {
    acks_all_idempotent_lz4_two_topics: Case {
        acks: "all", idempotence: true, compression: "lz4",
        topics: &[("alpha", 6), ("beta", 3)],
    };
    acks_all_idempotent_uncompressed: Case {
        acks: "all", idempotence: true, compression: "none",
        topics: &[("gamma", 4)],
    };
    acks_one_lz4_two_topics: Case {
        acks: "1", idempotence: false, compression: "lz4",
        topics: &[("delta", 5), ("epsilon", 3)],
    };
    acks_one_uncompressed: Case {
        acks: "1", idempotence: false, compression: "none",
        topics: &[("zeta", 6)],
    };
    acks_zero_lz4_two_topics: Case {
        acks: "0", idempotence: false, compression: "lz4",
        topics: &[("eta", 3), ("theta", 6)],
    };
    acks_zero_uncompressed_three_topics: Case {
        acks: "0", idempotence: false, compression: "none",
        topics: &[("iota", 2), ("kappa", 3), ("lambda", 7)],
    };
}

// ---------------------------------------------------------------------------------------------
// 2: leaders moving mid-stream
// ---------------------------------------------------------------------------------------------

/// Moves partition leaders while records stream in: with idempotence every record arrives
/// exactly once, and in send order per partition.
///
/// Each partition moves twice (to each of the other two brokers), one move every 50 ms, so no
/// broker ever leads a partition again after losing it. That matters because librdkafka's mock
/// checks idempotent sequence numbers only for transactional producers: when two requests for a
/// partition are pipelined to a broker that regains (or gains) leadership between them, the
/// first is refused with NOT_LEADER_OR_FOLLOWER and the second is written despite the gap,
/// where Kafka would answer OUT_OF_ORDER_SEQUENCE_NUMBER. The Java client, which also keeps up
/// to five requests in flight and relies on that check, would reorder there just the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_move_mid_stream_exactly_once_in_order() {
    const TOPIC: &str = "moving";
    const PARTITIONS: i32 = 6;
    const N: usize = 12_000;
    let started = Instant::now();
    let mut mock = cluster(&[(TOPIC, PARTITIONS)]);
    let bootstrap = mock.bootstrap.clone();
    let producer = Producer::new(&config(&bootstrap, &[("compression.type", "lz4")])).expect("producer");

    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut futures = Vec::with_capacity(N);
            for i in 0..N {
                let record = OwnedRecord::new(TOPIC)
                    .key(format!("key-{}", i % 41))
                    .value(format!("value-{i:06}"))
                    .timestamp(TS0 + i as i64);
                futures.push(producer.enqueue(record).await.expect("enqueue"));
                if i % 200 == 199 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            futures
        })
    };
    let mover = tokio::task::spawn_blocking(move || {
        // `cluster` put partition p on broker p % 3 + 1.
        for step in 1..=2 {
            for p in 0..PARTITIONS {
                std::thread::sleep(Duration::from_millis(50));
                mock.leader(TOPIC, p, (p + step) % 3 + 1);
            }
        }
        mock
    });
    let futures = sender.await.expect("sender task");
    let mock = mover.await.expect("mover task");
    for (i, f) in futures.into_iter().enumerate() {
        f.await.unwrap_or_else(|e| panic!("record {i} not delivered: {e}"));
    }
    let metrics = producer.metrics().await;
    producer.close(Duration::from_secs(10)).await;
    assert!(metrics.batches_retried > 0, "the moves hit batches in flight: {metrics:?}");

    let got = consume(&mock.bootstrap, &[TOPIC], N, Consumer::Confluent);
    let mut seen = HashSet::new();
    let mut last = vec![-1i64; PARTITIONS as usize];
    for c in &got {
        let value = String::from_utf8(c.value.clone().expect("value")).expect("utf-8");
        let i: usize = value.strip_prefix("value-").and_then(|v| v.parse().ok()).expect("value-N");
        assert!(seen.insert(i), "record {i} written twice: {}", describe(c));
        let key = format!("key-{}", i % 41);
        assert_eq!(c.key.as_deref(), Some(key.as_bytes()), "{}", describe(c));
        assert_eq!(c.partition, partition_for_key(key.as_bytes(), PARTITIONS), "{}", describe(c));
        assert_eq!(c.timestamp, TS0 + i as i64, "{}", describe(c));
        assert!(
            i as i64 > last[c.partition as usize],
            "record {i} after {} in its partition",
            last[c.partition as usize]
        );
        last[c.partition as usize] = i as i64;
    }
    assert_eq!(seen.len(), N);
    eprintln!(
        "leader moves: {N} records, {} batches retried, {} metadata requests, {:.2?}",
        metrics.batches_retried,
        metrics.metadata_requests,
        started.elapsed()
    );
}

/// With only two batch buffers (`buffer.memory` = 2 × `batch.size`), records wait in the host
/// transport for room in the core while batches are in flight. Whenever delivered batches free
/// room, the waiting records must go in at once: not sit until some unrelated wake-up, nor fail
/// with QueueFull when `max.block.ms` runs out while the producer is idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_waiting_for_batch_buffers_keep_flowing() {
    const TOPIC: &str = "few-buffers";
    // Records alternate between two partitions: both buffers fill up together (~600 records
    // each) and go out together, so at this RTT two buffers carry ~50,000 records/s and nothing
    // has a reason to wait anywhere near max.block.ms.
    const PARTITIONS: i32 = 2;
    const N: usize = 20_000;
    let started = Instant::now();
    let mut mock = cluster(&[(TOPIC, PARTITIONS)]);
    // Both on one broker: both batches travel in one request, and one response frees both.
    mock.leader(TOPIC, 1, 1);
    mock.rtt(-1, 20);
    let props = [("buffer.memory", "32768")];
    let producer = Producer::new(&config(&mock.bootstrap, &props)).expect("producer");
    let mut futures = Vec::with_capacity(N);
    for i in 0..N {
        let record = OwnedRecord::new(TOPIC).partition(i as i32 % PARTITIONS).value(format!("value-{i:06}"));
        futures.push(producer.enqueue(record).await.unwrap_or_else(|e| panic!("enqueue {i}: {e}")));
    }
    let enqueued = started.elapsed();
    let mut failed = Vec::new();
    for (i, f) in futures.into_iter().enumerate() {
        if let Err(e) = f.await {
            failed.push((i, e));
        }
    }
    let metrics = producer.metrics().await;
    producer.close(Duration::from_secs(10)).await;
    let done = started.elapsed();
    eprintln!("few buffers: {N} records enqueued in {enqueued:.2?}, all reported at {done:.2?}; {metrics:?}");
    assert!(
        failed.is_empty(),
        "{} of {N} records failed although every broker was up, first {:?}; {metrics:?}",
        failed.len(),
        failed.first()
    );
    assert!(done < Duration::from_secs(8), "{N} records took {done:.2?}");
    let got = consume(&mock.bootstrap, &[TOPIC], N, Consumer::Confluent);
    let mut last = vec![-1i64; PARTITIONS as usize];
    for c in &got {
        let value = String::from_utf8(c.value.clone().expect("value")).expect("utf-8");
        let i: i64 = value.strip_prefix("value-").and_then(|v| v.parse().ok()).expect("value-N");
        assert!(i > last[c.partition as usize], "{}", describe(c));
        last[c.partition as usize] = i;
    }
}

/// `flush` waits for every record queued before it, also those still queued behind records
/// that wait for metadata (a slow cluster: 300 ms per request, so the whole stream is queued
/// before the topic is known). It returned early once: those were left out of its count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_records_queued_while_metadata_is_pending() {
    use std::sync::{Arc, Mutex};
    const TOPIC: &str = "slow-metadata";
    const N: u64 = 3000;
    let mut mock = cluster(&[(TOPIC, 3)]);
    mock.rtt(-1, 300);
    let reports: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink = reports.clone();
    let producer = Producer::with_delivery_handler(&config(&mock.bootstrap, &[]), move |opaque, result| {
        assert!(result.is_ok(), "record {opaque}: {result:?}");
        sink.lock().unwrap().push(opaque);
    })
    .expect("producer");
    for i in 0..N {
        producer.send_with_opaque(OwnedRecord::new(TOPIC).value(format!("v{i}")), i).await.expect("queued");
    }
    producer.flush(Duration::from_secs(120)).await.expect("flush");
    let mut got = std::mem::take(&mut *reports.lock().unwrap());
    got.sort_unstable();
    let missing = (0..N).filter(|i| got.binary_search(i).is_err()).count();
    assert!(
        got.len() as u64 == N && missing == 0,
        "flush returned with {} reports of {N} ({missing} records unreported)",
        got.len()
    );
    producer.close(Duration::from_secs(10)).await;
}

// ---------------------------------------------------------------------------------------------
// 3 + 4: the CLI
// ---------------------------------------------------------------------------------------------

/// `picokafka produce` with piped stdin, stdout and stderr.
fn spawn_cli(bootstrap: &str, topic: &str, extra: &[&str]) -> Child {
    Command::new(cli())
        .args(["produce", "-b", bootstrap, "-t", topic, "-K", ":", "-H", "src=cli"])
        .args(["-X", &format!("max.block.ms={MAX_BLOCK_MS}")])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka")
}

/// Line `i` the CLI is fed: key `k<i % 97>`, value `v<i>` padded.
fn cli_line(i: usize) -> String {
    format!("k{}:v{i:06}-{}\n", i % 97, "p".repeat(i % 40))
}

#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    sent: u64,
    delivered: u64,
    failed: u64,
}

/// Waits for the CLI (stdin already handed off or closed) up to `timeout`, killing it after, and
/// parses its summary line `N records sent, D delivered, F failed, ...` (on stderr).
fn finish(mut child: Child, timeout: Duration) -> Finished {
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "picokafka (pid {pid}) still running after {timeout:?}; killed.\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let summary = stderr.lines().find(|l| l.contains(" records sent, ")).unwrap_or_else(|| {
        panic!("no summary line on stderr ({status}); stdout:\n{stdout}\nstderr:\n{stderr}")
    });
    let mut numbers = summary.split(", ").map(|part| {
        part.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("summary {summary:?}: {part:?}"))
    });
    let (sent, delivered, failed) =
        (numbers.next().expect("sent"), numbers.next().expect("delivered"), numbers.next().expect("failed"));
    Finished { status, stdout, stderr, sent, delivered, failed }
}

/// Reads back `f.delivered` records (exactly: `consume` fails on more or fewer) and checks
/// each line arrived at most once, intact, where murmur2 puts its key, in order per partition.
fn verify_cli_read_back(bootstrap: &str, topic: &str, partitions: i32, f: &Finished, lines: usize) {
    let got = consume(bootstrap, &[topic], f.delivered as usize, Consumer::Confluent);
    let mut seen = HashSet::new();
    let mut last = vec![-1i64; partitions as usize];
    for c in &got {
        let key = String::from_utf8(c.key.clone().expect("key")).expect("utf-8");
        let value = String::from_utf8(c.value.clone().expect("value")).expect("utf-8");
        let i: usize = value[1..7].parse().unwrap_or_else(|_| panic!("value {value:?}"));
        assert!(i < lines, "{}", describe(c));
        assert!(seen.insert(i), "line {i} written twice: {}", describe(c));
        assert_eq!(format!("{key}:{value}\n"), cli_line(i), "{}", describe(c));
        assert_eq!(c.headers, vec![("src".to_string(), Some(b"cli".to_vec()))], "{}", describe(c));
        assert_eq!(c.partition, partition_for_key(key.as_bytes(), partitions), "{}", describe(c));
        assert!(
            i as i64 > last[c.partition as usize],
            "line {i} after {} in its partition",
            last[c.partition as usize]
        );
        last[c.partition as usize] = i as i64;
    }
}

fn check_exit(f: &Finished) {
    let all_delivered = f.failed == 0 && f.delivered == f.sent;
    assert_eq!(f.status.success(), all_delivered, "exit status matches the summary: {f:?}");
}

/// 20,000 lines fed over ~4 s; from ~1 s to ~3 s brokers `down` are down (no leader moves, so
/// their partitions have no reachable leader). The CLI must deliver everything exactly once.
fn cli_through_outage(topic: &str, down: &[i32], compression: &str) {
    const LINES: usize = 20_000;
    const PARTITIONS: i32 = 6;
    const CHUNK: usize = 250;
    let started = Instant::now();
    let mut mock = cluster(&[(topic, PARTITIONS)]);
    let bootstrap = mock.bootstrap.clone();
    let mut child = spawn_cli(&bootstrap, topic, &["-z", compression, "--acks", "all"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for chunk in 0..LINES / CHUNK {
            let text: String = (chunk * CHUNK..(chunk + 1) * CHUNK).map(cli_line).collect();
            stdin.write_all(text.as_bytes()).expect("feed picokafka");
            stdin.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Dropping stdin is the end of input.
    });
    std::thread::sleep(Duration::from_millis(1000));
    for &b in down {
        mock.down(b);
    }
    let down_at = started.elapsed();
    std::thread::sleep(Duration::from_millis(2000));
    for &b in down {
        mock.up(b);
    }
    let up_at = started.elapsed();
    let fed_during = !writer.is_finished();
    writer.join().expect("writer");
    let fed_at = started.elapsed();
    assert!(fed_during, "the outage was over before the input was: the test feeds too fast");
    let f = finish(child, Duration::from_secs(60));
    let finished_at = started.elapsed();
    eprintln!(
        "CLI outage {down:?} {compression}: down {down_at:.2?}, up {up_at:.2?}, input done {fed_at:.2?}, \
         exit {finished_at:.2?}: {}\n{}",
        f.stdout.trim(),
        f.stderr.trim()
    );
    check_exit(&f);
    assert_eq!(f.sent, LINES as u64, "every line read: {f:?}");
    verify_cli_read_back(&bootstrap, topic, PARTITIONS, &f, LINES);
    // A 2 s outage is far inside delivery.timeout.ms (120 s): nothing may be lost.
    assert_eq!((f.delivered, f.failed), (LINES as u64, 0), "all delivered: {f:?}");
    assert!(f.status.success(), "{f:?}");
}

#[test]
fn cli_survives_two_leader_brokers_down_mid_stream() {
    cli_through_outage("cli-two-down", &[1, 2], "lz4");
}

#[test]
fn cli_survives_whole_cluster_down_mid_stream() {
    cli_through_outage("cli-all-down", &[-1], "none");
}

/// How many records `topic` holds now, by a foreign consumer polling for a moment.
fn records_in(bootstrap: &str, topic: &str) -> usize {
    let out = Command::new(python())
        .arg(root().join("tests/py/consume.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic, "--expect", "0", "--grace", "0.5"])
        .stderr(Stdio::null())
        .output()
        .expect("run consume.py");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn sigint(pid: u32) {
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -INT {pid}: {status}");
}

/// Issue 6: 5,000 lines through a pipe that stays open; once records are in the log, SIGINT.
/// The CLI flushes, prints its summary and exits; what it reports delivered is what is there.
#[test]
fn cli_sigint_flushes_and_reports() {
    const TOPIC: &str = "cli-sigint";
    const PARTITIONS: i32 = 3;
    const LINES: usize = 5_000;
    let started = Instant::now();
    let mock = cluster(&[(TOPIC, PARTITIONS)]);
    let mut child = spawn_cli(&mock.bootstrap, TOPIC, &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    let text: String = (0..LINES).map(cli_line).collect();
    stdin.write_all(text.as_bytes()).expect("feed picokafka");
    stdin.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut present = 0;
    while present == 0 {
        assert!(Instant::now() < deadline, "nothing delivered within 20 s");
        present = records_in(&mock.bootstrap, TOPIC);
    }
    assert!(child.try_wait().expect("try_wait").is_none(), "picokafka exited while stdin is open");
    sigint(child.id());
    let interrupted_at = started.elapsed();
    // Everything is delivered already: flushing is immediate, so 15 s is plenty.
    let f = finish(child, Duration::from_secs(15));
    drop(stdin);
    eprintln!(
        "CLI SIGINT: {present} records in the log, SIGINT at {interrupted_at:.2?}, exit {:.2?}: {}",
        started.elapsed(),
        f.stderr.trim()
    );
    assert!(f.stderr.contains("interrupted"), "{f:?}");
    check_exit(&f);
    assert!(f.delivered >= present as u64, "{f:?}");
    assert!(f.sent <= LINES as u64, "{f:?}");
    verify_cli_read_back(&mock.bootstrap, TOPIC, PARTITIONS, &f, LINES);
    assert_eq!((f.sent, f.delivered, f.failed), (LINES as u64, LINES as u64, 0), "{f:?}");
}

/// SIGINT while lines still stream in (a writer that never pauses for long) and batches are
/// in flight (brokers answer after 200 ms): the CLI must stop reading, flush and exit promptly.
#[test]
fn cli_sigint_while_streaming() {
    const TOPIC: &str = "cli-sigint-busy";
    const PARTITIONS: i32 = 3;
    const LINES: usize = 60_000;
    let started = Instant::now();
    let mut mock = cluster(&[(TOPIC, PARTITIONS)]);
    mock.rtt(-1, 200);
    let mut child = spawn_cli(&mock.bootstrap, TOPIC, &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        for chunk in 0..LINES / 100 {
            let text: String = (chunk * 100..(chunk + 1) * 100).map(cli_line).collect();
            // Fails with EPIPE once the CLI has exited.
            if stdin.write_all(text.as_bytes()).and_then(|()| stdin.flush()).is_err() {
                return;
            }
            // At most 20,000 lines/s: the input lasts at least 3 s.
            if stop_rx.recv_timeout(Duration::from_millis(5)).is_ok() {
                return;
            }
        }
        // Dropping stdin ends the input: a CLI that ignored SIGINT finishes here.
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!writer.is_finished(), "input still streaming at SIGINT");
    sigint(child.id());
    let interrupted_at = started.elapsed();
    let f = finish(child, Duration::from_secs(40));
    let exited_at = started.elapsed();
    let _ = stop_tx.send(());
    writer.join().expect("writer");
    eprintln!(
        "CLI SIGINT while streaming: SIGINT at {interrupted_at:.2?}, exit {exited_at:.2?}: {}",
        f.stderr.trim()
    );
    assert!(f.stderr.contains("interrupted"), "SIGINT noticed: {f:?}");
    assert!(f.sent < LINES as u64, "stopped reading at SIGINT: {f:?}");
    assert!(exited_at - interrupted_at < Duration::from_secs(15), "prompt exit: {f:?}");
    check_exit(&f);
    verify_cli_read_back(&mock.bootstrap, TOPIC, PARTITIONS, &f, LINES);
    assert_eq!((f.delivered, f.failed), (f.sent, 0), "{f:?}");
}
