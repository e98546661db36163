//! The dead-letter helper on Apache Kafka: records a topic refuses for good (larger than its
//! `max.message.bytes`) land in the dead-letter topic, read back by confluent-kafka with the
//! headers that say where they were going, why they failed and how often they were sent; the
//! records the topic takes are delivered as usual.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use picokafka_tests::{consume, Broker, Consumer, Kafka};
use picokafka_tokio::dead_letter::{HEADER_ATTEMPTS, HEADER_ERROR, HEADER_PARTITION, HEADER_TOPIC};
use picokafka_tokio::{
    ClientConfig, DeadLetterOutcome, DeadLetterQueue, DeadLetterStats, OwnedRecord, Producer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_refused_for_good_land_in_the_dead_letter_topic() {
    let kafka = Kafka::shared();
    let topic = format!("small-{}", std::process::id());
    kafka.create_topic_with(&topic, 1, &[("max.message.bytes", "2000")]);
    let dlq = kafka.topic("small-dlq", 1);
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.bootstrap());
    let producer = Producer::new(&config).unwrap();
    let queue = DeadLetterQueue::new(&producer, &dlq, 16 << 20).unwrap();
    let outcomes: Arc<Mutex<Vec<DeadLetterOutcome>>> = Arc::default();

    for i in 0..5u8 {
        let o = outcomes.clone();
        let record = OwnedRecord::new(topic.as_str()).key(vec![b'k', i]).value(vec![i; 100]);
        queue.send_with_callback(record, move |r| o.lock().unwrap().push(r)).await.unwrap();
    }
    queue.flush(Duration::from_secs(60)).await.unwrap();
    for i in 0..3u8 {
        let o = outcomes.clone();
        let record = OwnedRecord::new(topic.as_str())
            .key(vec![b'b', i])
            .value(vec![i; 5000])
            .header("app", Some("kept"))
            .partition(0);
        queue.send_with_callback(record, move |r| o.lock().unwrap().push(r)).await.unwrap();
    }
    queue.flush(Duration::from_secs(60)).await.unwrap();
    assert_eq!(queue.stats(), DeadLetterStats { delivered: 5, dead_lettered: 3, failed: 0 });
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let dead: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            DeadLetterOutcome::DeadLettered { error, dead_letter } => {
                Some((error.to_string(), dead_letter.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(dead.len(), 3, "{outcomes:?}");
    assert!(dead.iter().all(|(e, d)| e.contains("MESSAGE_TOO_LARGE") && *d.topic == *dlq), "{dead:?}");
    producer.close(Duration::from_secs(10)).await;

    let got = consume(&kafka.bootstrap(), &[&dlq], 3, Consumer::Confluent);
    assert_eq!(got.len(), 3);
    for rec in &got {
        let key = rec.key.clone().unwrap();
        assert_eq!(key[0], b'b', "only the refused records are dead letters");
        assert_eq!(rec.value.as_deref(), Some(&vec![key[1]; 5000][..]), "the value unchanged");
        let header = |name: &str| {
            rec.headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
                .map(|v| String::from_utf8(v).unwrap())
                .unwrap_or_else(|| panic!("no header {name} in {:?}", rec.headers))
        };
        assert_eq!(header("app"), "kept", "the record's own headers are kept");
        assert_eq!(header(HEADER_TOPIC), topic);
        assert_eq!(header(HEADER_PARTITION), "0");
        assert!(header(HEADER_ERROR).contains("MESSAGE_TOO_LARGE"), "{}", header(HEADER_ERROR));
        let attempts: u32 = header(HEADER_ATTEMPTS).parse().unwrap();
        assert!(attempts >= 1, "sent at least once before the broker refused it");
    }
    let delivered = consume(&kafka.bootstrap(), &[&topic], 5, Consumer::Confluent);
    assert!(delivered.iter().all(|r| r.key.as_ref().unwrap()[0] == b'k'));
}

/// The copies kept while outcomes are pending are bounded: past `max_bytes`, `send` waits up to
/// `max.block.ms` and then hands the record back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copies_kept_are_bounded() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", format!("127.0.0.1:{port}")).set("max.block.ms", "500");
    let producer = Producer::new(&config).unwrap();
    let queue = DeadLetterQueue::new(&producer, "dlq", 500).unwrap();
    queue.send(OwnedRecord::new("t").value(vec![1u8; 300])).await.unwrap();
    let refused = queue.send(OwnedRecord::new("t").value(vec![2u8; 300])).await.unwrap_err();
    assert_eq!(refused.error, picokafka_tokio::Error::QueueFull);
    assert_eq!(refused.record.value.as_deref(), Some(&[2u8; 300][..]), "handed back");
    // The first one failed (no broker) and so did its copy: counted, not silently gone.
    queue.flush(Duration::from_secs(10)).await.unwrap();
    assert_eq!(queue.stats(), DeadLetterStats { delivered: 0, dead_lettered: 0, failed: 1 });
    producer.close(Duration::from_millis(100)).await;
}

/// The CLI's `--dead-letter-topic`: the one line too large for the topic lands in the
/// dead-letter topic, the others where they were sent, and the run succeeds.
#[test]
fn the_cli_dead_letters_what_the_topic_refuses() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let kafka = Kafka::shared();
    let topic = format!("small-cli-{}", std::process::id());
    kafka.create_topic_with(&topic, 1, &[("max.message.bytes", "2000")]);
    let dlq = kafka.topic("small-cli-dlq", 1);
    let mut child = Command::new(picokafka_tests::cli())
        .args(["produce", "-b", &kafka.bootstrap(), "-t", &topic, "--dead-letter-topic", &dlq])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    let big = "x".repeat(5000);
    let input = format!("one\ntwo\n{big}\nthree\n");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("4 records sent, 3 delivered, 1 failed"), "{stderr}");
    assert!(stderr.contains(&format!("1 of the failed records dead-lettered to {dlq}")), "{stderr}");
    // The broker's error code is named with the broker that answered it.
    let last = stderr.lines().find(|l| l.starts_with("picokafka: last error: ")).unwrap_or_default();
    assert!(last.contains("MESSAGE_TOO_LARGE (10) from broker "), "{stderr}");
    assert!(last.ends_with(&format!(" at {}", kafka.bootstrap())), "{stderr}");
    let got = consume(&kafka.bootstrap(), &[&dlq], 1, Consumer::Confluent);
    assert_eq!(got[0].value.as_deref(), Some(big.as_bytes()));
    let error = got[0].headers.iter().find(|(k, _)| k == HEADER_ERROR).and_then(|(_, v)| v.clone()).unwrap();
    assert!(String::from_utf8(error).unwrap().contains("MESSAGE_TOO_LARGE"));
    assert_eq!(consume(&kafka.bootstrap(), &[&topic], 3, Consumer::Confluent).len(), 3);
}
