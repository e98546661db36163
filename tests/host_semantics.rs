//! What a user of the Java client or librdkafka expects of the host producer when things go
//! wrong, tried as they would hit it: a broker nobody listens on, a producer made outside a
//! runtime, a flush that cannot finish, a queue that is full. No broker is needed: every case
//! here is about what the producer says and gives back.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use picokafka_tests::cli;
use picokafka_tokio::{ClientConfig, Error, OwnedRecord, Producer, TimedOperation};

/// A loopback port nobody listens on: connecting to it is refused at once.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn unreachable(max_block_ms: u64) -> (ClientConfig, u16) {
    let port = closed_port();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", format!("127.0.0.1:{port}")).set("max.block.ms", max_block_ms.to_string());
    (c, port)
}

#[test]
fn the_cli_names_an_unreachable_broker_within_max_block_ms() {
    let port = closed_port();
    // Built before the clock starts: a build is no part of the wait measured.
    let bin = cli();
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["produce", "-b", &format!("127.0.0.1:{port}"), "-t", "t", "-X", "max.block.ms=3000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    child.stdin.take().unwrap().write_all(b"one\ntwo\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("took {took:?}\n{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 records sent, 0 delivered, 2 failed"), "{stderr}");
    // The record's error names the wait, the address and the socket's error.
    assert!(stderr.contains("not present in metadata after 3000 ms: no broker reachable"), "{stderr}");
    assert!(stderr.contains(&format!("connect to 127.0.0.1:{port} failed: Connection refused")), "{stderr}");
    assert!(!stderr.contains("producer closed"), "the cause, not the close, is reported: {stderr}");
    // max.block.ms, not the 30 s close timeout, bounds the wait (with room for a slow machine).
    assert!(took < Duration::from_secs(20), "waited {took:?} with max.block.ms=3000");
}

#[test]
fn a_producer_made_outside_a_runtime_is_an_error_not_a_panic() {
    let (config, _) = unreachable(1000);
    let err = Producer::new(&config).unwrap_err();
    assert_eq!(err, Error::NoRuntime);
    assert!(err.to_string().contains("BlockingProducer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_with_a_timeout_returns_and_says_what_is_left() {
    let (config, _) = unreachable(60_000);
    let producer = Producer::new(&config).unwrap();
    let delivery = producer.enqueue(OwnedRecord::new("t").value("x")).await.unwrap();
    let started = Instant::now();
    let err = producer.flush(Duration::from_millis(500)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "flush returned at its timeout");
    let Error::Timeout(timeout) = &err else { panic!("{err:?}") };
    assert_eq!((timeout.operation, timeout.waited_ms), (TimedOperation::Flush { undelivered: 1 }, 500));
    assert_eq!(err.to_string(), "flush: 1 records still undelivered after 500 ms");
    // The record is still queued, and still gets its one report when the producer closes.
    producer.close(Duration::from_millis(100)).await;
    assert!(delivery.await.is_err());
    let health = producer.health().await;
    assert!(!health.is_healthy(), "{health:?}");
    assert!(
        health.last_error.is_some_and(|e| e.contains("Connection refused")),
        "after close, the last error stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_hands_the_record_back() {
    let (config, _) = unreachable(30_000);
    let producer = Producer::new(&config).unwrap();
    // Nothing leaves (no metadata ever comes), so the queue in front of the core fills.
    let big = vec![7u8; 100_000];
    let mut refused = None;
    let mut futures = Vec::new();
    for i in 0..100u32 {
        let record = OwnedRecord::new("t").key(i.to_be_bytes()).value(big.clone());
        match producer.try_enqueue(record) {
            Ok(f) => futures.push(f),
            Err(r) => {
                refused = Some((i, r));
                break;
            }
        }
    }
    let (i, r) = refused.expect("a full queue refuses");
    assert_eq!(r.error, Error::QueueFull);
    // One bound, whether the producer's task has looked at the records yet or not: 1 MiB of
    // records (100,068 bytes each as the queue weighs them) waiting for the core.
    assert_eq!(i, 10, "ten 100 KB records fill the 1 MiB queue");
    assert_eq!(r.record.key.as_deref(), Some(&i.to_be_bytes()[..]), "the very record comes back");
    assert_eq!(r.record.value.as_deref(), Some(&big[..]));
    producer.close(Duration::from_millis(100)).await;
    // Closed: every queueing call refuses with why, and hands the record back.
    let r = producer.enqueue(OwnedRecord::new("t").value("late")).await.unwrap_err();
    assert_eq!((r.error, r.record.value.as_deref()), (Error::Closed, Some(&b"late"[..])));
    let r = producer.send_with_callback(r.record, |_| panic!("not queued, not reported")).await.unwrap_err();
    assert_eq!(r.error, Error::Closed);
    let r = producer.send_and_forget(r.record).await.unwrap_err();
    assert_eq!((r.error, r.record.value.as_deref()), (Error::Closed, Some(&b"late"[..])));
    // An invalid topic name: handed back before anything is queued.
    let r = producer.try_enqueue(OwnedRecord::new("no/such").value("v")).unwrap_err();
    assert_eq!(r.error, Error::InvalidTopic { topic: "no/such".into() });
    for f in futures {
        assert!(f.await.is_err(), "every queued record still gets its report");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_is_named() {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", "no-such-broker.invalid:9092")
        .set("socket.connection.setup.timeout.ms", "2000")
        .set("max.block.ms", "5000");
    let producer = Producer::new(&config).unwrap();
    let err = producer.send(OwnedRecord::new("t").value("x")).await.unwrap_err();
    // Unresolvable, or (a resolver that does not answer) timed out: either way named.
    let text = err.to_string();
    assert!(text.contains("no broker reachable: connect to no-such-broker.invalid:9092"), "{text}");
    producer.close(Duration::from_millis(100)).await;
}
