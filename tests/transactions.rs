//! Transactions against Apache Kafka 4.4, the one broker here that hides aborted records from
//! `read_committed` consumers; every read-back is confluent-kafka's (librdkafka), which nobody
//! here wrote.
//!
//! - Committed, aborted, committed: `read_committed` reads exactly the committed records, in
//!   send order per partition, across 2 topics × 3 partitions (a transaction's records all or
//!   none); `read_uncommitted` also reads the aborted ones (the abort really wrote data).
//! - The CLI killed with SIGKILL mid-transaction, its records written: none ever become
//!   visible; a new producer with the same id fences the old epoch and goes on (and the stuck
//!   transaction no longer holds `read_committed` back).
//! - Zombie fencing: two producers with one `transactional.id`; the older's next transaction
//!   fails fatally (fenced), none of its later records become visible.
//! - `transaction.timeout.ms` passed: the broker aborts; the commit says so (abortable), the
//!   abort recovers the producer and the next transaction commits.
//! - Both protocols: the shared broker runs Kafka 4.4's default, `transaction.version` 2
//!   (KIP-890 part 2: partitions and offsets added by Produce v12 and TxnOffsetCommit v5, the
//!   epoch bumped by every EndTxn v5); a broker of its own at `transaction.version` 1 gets the
//!   classic protocol, committed/aborted, zombie and timeout cases alike.
//! - Offsets sent to the transaction reach the group exactly when it commits, never when it
//!   aborts.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use picokafka_tests::{cli, consume_with, python, root, Consumed, Consumer, Kafka};
use picokafka_tokio::{
    ClientConfig, ConsumerGroupMetadata, DeliveryError, DeliveryFuture, Error, OwnedRecord, Producer,
};

const T: Duration = Duration::from_secs(30);

fn config(kafka: &Kafka, id: &str, extra: &[(&str, &str)]) -> ClientConfig {
    // RUST_LOG=picokafka=debug: the producers' logs with the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.plaintext).set("transactional.id", id).set("linger.ms", "5");
    for &(k, v) in extra {
        c.set(k, v);
    }
    c
}

fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Reads `topics` back with `isolation.level`, expecting exactly `expect` records.
fn read(kafka: &Kafka, topics: &[&str], expect: usize, isolation: &str) -> Vec<Consumed> {
    consume_with(&kafka.plaintext, topics, expect, Consumer::Confluent, &[("isolation.level", isolation)])
}

/// Values read, per (topic, partition), in offset order.
fn by_partition(records: &[Consumed]) -> BTreeMap<(String, i32), Vec<String>> {
    let mut m: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
    for r in records {
        let value = String::from_utf8(r.value.clone().unwrap_or_default()).unwrap();
        m.entry((r.topic.clone(), r.partition)).or_default().push(value);
    }
    m
}

/// Sends `n` records of transaction `txn` over `topics` × 3 partitions; values name them.
async fn send_all(p: &Producer, topics: &[&str], txn: &str, n: usize) -> Vec<DeliveryFuture> {
    let mut futures = Vec::new();
    for i in 0..n {
        let topic = topics[i % topics.len()];
        let record = OwnedRecord::new(topic).partition((i % 3) as i32).value(format!("{txn}-{i}"));
        futures.push(p.enqueue(record).await.unwrap());
    }
    futures
}

/// One transaction of `n` records over `topics`, committed, every record delivered.
async fn commit_one(p: &Producer, topics: &[&str], txn: &str, n: usize) {
    p.begin_transaction().await.unwrap();
    let futures = send_all(p, topics, txn, n).await;
    p.commit_transaction(T).await.unwrap();
    for f in futures {
        f.await.unwrap_or_else(|e| panic!("{txn}: {e}"));
    }
}

/// What a committed transaction's values look like per partition, in send order.
fn expected(topics: &[&str], txns: &[(&str, usize)]) -> BTreeMap<(String, i32), Vec<String>> {
    let mut m: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
    for (txn, n) in txns {
        for i in 0..*n {
            let key = (String::from(topics[i % topics.len()]), (i % 3) as i32);
            m.entry(key).or_default().push(format!("{txn}-{i}"));
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_committed_transactions_only_across_topics_and_partitions() {
    let kafka = Kafka::shared();
    // Kafka 4.4 formats its clusters with transaction.version 2.
    assert_eq!(kafka.transaction_version, 2);
    committed_aborted_committed(kafka).await;
}

/// The classic protocol (a cluster at transaction.version 1, as every Kafka 3.x one):
/// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn v4, one epoch for every transaction; a zombie
/// is fenced at its commit; a transaction the broker timed out fences its producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_cluster_gets_the_classic_protocol() {
    let kafka = Kafka::start_with(&[("KAFKA_TRANSACTION_VERSION", "1")]);
    assert_eq!(kafka.transaction_version, 1);
    tokio::join!(committed_aborted_committed(&kafka), zombie(&kafka), timeout(&kafka));
}

/// Committed, aborted, committed, across 2 topics × 3 partitions; under KIP-890 part 2 each
/// EndTxn moves the producer to the next epoch, under the classic protocol none does.
async fn committed_aborted_committed(kafka: &Kafka) {
    let (a, b) = (kafka.topic("txn-a", 3), kafka.topic("txn-b", 3));
    let topics = [a.as_str(), b.as_str()];
    let p = Producer::new(&config(kafka, &unique("rc"), &[])).unwrap();
    p.init_transactions(T).await.unwrap();
    let first_epoch = p.metrics().await.producer_epoch;
    for (i, (txn, n, commit)) in
        [("one", 300, true), ("two", 200, false), ("three", 300, true)].into_iter().enumerate()
    {
        p.begin_transaction().await.unwrap();
        let futures = send_all(&p, &topics, txn, n).await;
        if commit {
            p.commit_transaction(T).await.unwrap();
        } else {
            // Written first, so that the abort has something to hide.
            p.flush(Duration::from_secs(120)).await.expect("flush");
            p.abort_transaction(T).await.unwrap();
        }
        for f in futures {
            let delivered = f.await.unwrap_or_else(|e| panic!("{txn}: {e}"));
            assert!(delivered.offset >= 0);
        }
        let bumps = if kafka.transaction_version >= 2 { i as i16 + 1 } else { 0 };
        assert_eq!(p.metrics().await.producer_epoch, first_epoch + bumps, "after {txn}");
    }
    let m = p.metrics().await;
    assert_eq!((m.transactions_committed, m.transactions_aborted), (2, 1));
    p.close(T).await;

    let committed = read(kafka, &topics, 600, "read_committed");
    assert_eq!(by_partition(&committed), expected(&topics, &[("one", 300), ("three", 300)]));
    let all = read(kafka, &topics, 800, "read_uncommitted");
    assert_eq!(by_partition(&all), expected(&topics, &[("one", 300), ("two", 200), ("three", 300)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_fails_the_unsent_records_and_the_producer_goes_on() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("txn-unsent", 3);
    // Records linger long enough that the abort finds them unsent.
    let p = Producer::new(&config(kafka, &unique("unsent"), &[("linger.ms", "10000")])).unwrap();
    p.init_transactions(T).await.unwrap();
    p.begin_transaction().await.unwrap();
    let futures = send_all(&p, &[&topic], "lost", 50).await;
    p.abort_transaction(T).await.unwrap();
    for f in futures {
        assert_eq!(f.await.unwrap_err(), Error::Delivery(DeliveryError::Aborted));
    }
    let refused = p.send(OwnedRecord::new(topic.as_str()).value("between")).await.unwrap_err();
    assert!(matches!(refused, Error::NoTransaction(_)), "{refused:?}");
    commit_one(&p, &[&topic], "kept", 30).await;
    p.close(T).await;
    let read = read(kafka, &[&topic], 30, "read_committed");
    assert_eq!(by_partition(&read), expected(&[&topic], &[("kept", 30)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_killed_mid_transaction_leaves_nothing_visible_and_a_new_one_fences_it() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("txn-kill", 3);
    let id = unique("kill");
    // The CLI commits its first 100 lines, then sits in its second transaction with 50 lines
    // written (acks=all) when it is killed.
    let mut child = Command::new(cli())
        .args(["produce", "-b", &kafka.plaintext, "-t", &topic, "--transactional-id", &id])
        .args(["--transaction-records", "100", "-X", "linger.ms=0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write as _;
    for i in 0..150 {
        writeln!(stdin, "first-{i}").unwrap();
    }
    stdin.flush().unwrap();
    // Until the open transaction's records are in the log: read_uncommitted sees them (a
    // watermark query would not: librdkafka answers read_committed's last stable offset).
    read(kafka, &[&topic], 150, "read_uncommitted");
    child.kill().unwrap(); // SIGKILL: no abort, no close
    child.wait().unwrap();

    let p = Producer::new(&config(kafka, &id, &[])).unwrap();
    // Fences the dead producer's epoch and aborts its open transaction.
    p.init_transactions(T).await.unwrap();
    commit_one(&p, &[&topic], "second", 30).await;
    p.close(T).await;
    // read_committed gets past the killed transaction (it was aborted, not left open) and
    // sees only the committed ones.
    let committed = read(kafka, &[&topic], 130, "read_committed");
    let values: Vec<String> = by_partition(&committed).into_values().flatten().collect();
    assert!(values
        .iter()
        .all(|v| !v.starts_with("first-") || v["first-".len()..].parse::<u32>().unwrap() < 100));
    assert_eq!(values.iter().filter(|v| v.starts_with("first-")).count(), 100);
    assert_eq!(values.iter().filter(|v| v.starts_with("second-")).count(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_is_fenced_by_the_newer_producer_and_none_of_its_later_records_show() {
    zombie(Kafka::shared()).await;
}

async fn zombie(kafka: &Kafka) {
    let topic = kafka.topic("txn-zombie", 3);
    let id = unique("zombie");
    let old = Producer::new(&config(kafka, &id, &[])).unwrap();
    old.init_transactions(T).await.unwrap();
    commit_one(&old, &[&topic], "old", 20).await;

    let new = Producer::new(&config(kafka, &id, &[])).unwrap();
    new.init_transactions(T).await.unwrap();

    // The zombie's next transaction: its records are refused by the broker (fenced epoch).
    // With the classic protocol the coordinator says so to AddPartitionsToTxn, and the commit
    // fails fatally; under KIP-890 part 2 the partition leader refuses the batches with
    // INVALID_PRODUCER_EPOCH (abortable, as in the Java client) and the coordinator's fence
    // comes with the abort.
    old.begin_transaction().await.unwrap();
    let futures = send_all(&old, &[&topic], "zombie", 20).await;
    let err = old.commit_transaction(T).await.unwrap_err();
    let err = if kafka.transaction_version >= 2 {
        assert!(err.txn_requires_abort(), "{err:?}");
        old.abort_transaction(T).await.unwrap_err()
    } else {
        err
    };
    assert!(err.is_fatal(), "{err:?}");
    assert!(err.to_string().contains("fenced"), "{err}");
    for f in futures {
        assert!(f.await.is_err(), "a fenced producer's record must not be delivered");
    }
    let refused = old.send(OwnedRecord::new(topic.as_str()).value("after")).await.unwrap_err();
    assert!(refused.is_fatal(), "{refused:?}");
    old.close(T).await;

    commit_one(&new, &[&topic], "new", 20).await;
    new.close(T).await;
    let read = read(kafka, &[&topic], 40, "read_committed");
    assert_eq!(by_partition(&read), expected(&[&topic], &[("old", 20), ("new", 20)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_by_the_broker_and_the_producer_recovers() {
    timeout(Kafka::shared()).await;
}

/// The broker aborts a transaction open past `transaction.timeout.ms`; the commit says so.
/// Under KIP-890 part 2 the abort recovers the producer; a classic coordinator has fenced it
/// (as the Java client then finds too): the abort says so, and a new producer goes on.
async fn timeout(kafka: &Kafka) {
    let topic = kafka.topic("txn-timeout", 3);
    let id = unique("timeout");
    let p = Producer::new(&config(kafka, &id, &[("transaction.timeout.ms", "2000")])).unwrap();
    p.init_transactions(T).await.unwrap();
    p.begin_transaction().await.unwrap();
    let futures = send_all(&p, &[&topic], "late", 10).await;
    p.flush(Duration::from_secs(120)).await.expect("flush");
    for f in futures {
        f.await.unwrap();
    }
    // Kafka looks for timed-out transactions every
    // transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s by default).
    tokio::time::sleep(Duration::from_secs(13)).await;
    let err = p.commit_transaction(T).await.unwrap_err();
    assert!(err.txn_requires_abort(), "{err:?}");
    assert!(err.to_string().contains("transaction.timeout.ms"), "{err}");
    if kafka.transaction_version >= 2 {
        p.abort_transaction(T).await.unwrap();
        commit_one(&p, &[&topic], "next", 10).await;
    } else {
        let err = p.abort_transaction(T).await.unwrap_err();
        assert!(err.is_fatal() && err.to_string().contains("fenced"), "{err:?}");
        let next = Producer::new(&config(kafka, &id, &[])).unwrap();
        next.init_transactions(T).await.unwrap();
        commit_one(&next, &[&topic], "next", 10).await;
        next.close(T).await;
    }
    p.close(T).await;
    let read = read(kafka, &[&topic], 10, "read_committed");
    assert_eq!(by_partition(&read), expected(&[&topic], &[("next", 10)]));
}

/// The group's committed offsets of `topic`'s partitions 0..3, as the coordinator answers a
/// consumer that asks for stable offsets.
fn group_offsets(kafka: &Kafka, group: &str, topic: &str) -> Vec<i64> {
    let out = Command::new(python())
        .arg(root().join("tests/py/admin.py"))
        .args(["group-offsets", group, topic, "3", &kafka.plaintext])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_reach_the_group_exactly_when_it_commits() {
    let kafka = Kafka::shared();
    let (input, output) = (kafka.topic("txn-in", 3), kafka.topic("txn-out", 3));
    let group = ConsumerGroupMetadata::new(unique("group"));
    let p = Producer::new(&config(kafka, &unique("offsets"), &[])).unwrap();
    p.init_transactions(T).await.unwrap();
    const NONE: i64 = -1001;

    // Aborted: the group never sees these offsets.
    p.begin_transaction().await.unwrap();
    send_all(&p, &[&output], "aborted", 6).await;
    let offsets = [(input.as_str(), 0, 5), (input.as_str(), 1, 7)];
    p.send_offsets_to_transaction(&offsets, &group, T).await.unwrap();
    p.abort_transaction(T).await.unwrap();
    assert_eq!(group_offsets(kafka, &group.group_id, &input), [NONE, NONE, NONE]);

    // Committed: they appear with it.
    p.begin_transaction().await.unwrap();
    send_all(&p, &[&output], "committed", 6).await;
    let offsets = [(input.as_str(), 0, 10), (input.as_str(), 2, 3)];
    p.send_offsets_to_transaction(&offsets, &group, T).await.unwrap();
    p.commit_transaction(T).await.unwrap();
    assert_eq!(group_offsets(kafka, &group.group_id, &input), [10, NONE, 3]);
    p.close(T).await;
    let read = read(kafka, &[&output], 6, "read_committed");
    assert_eq!(by_partition(&read), expected(&[&output], &[("committed", 6)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_aborts_its_open_transaction_on_sigint_and_counts_it() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("txn-sigint", 3);
    let id = unique("sigint");
    let cli_produce = |n: &str| {
        let mut cmd = Command::new(cli());
        cmd.args(["produce", "-b", &kafka.plaintext, "-t", &topic, "--transactional-id", &id])
            .args(["--transaction-records", n, "-X", "linger.ms=0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let mut child = cli_produce("1000").spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write as _;
    for i in 0..40 {
        writeln!(stdin, "interrupted-{i}").unwrap();
    }
    stdin.flush().unwrap();
    // Written (read_uncommitted sees them), in a transaction still open.
    read(kafka, &[&topic], 40, "read_uncommitted");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("interrupted; aborting the open transaction (40 records)"), "{stderr}");
    assert!(stderr.contains("transactions: 0 committed (0 records), 1 aborted (40 records)"), "{stderr}");

    // The same id again commits 25 lines, in transactions of 10, the last at the end of input.
    let mut child = cli_produce("10").spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..25 {
        writeln!(stdin, "committed-{i}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("transactions: 3 committed (25 records), 0 aborted (0 records)"), "{stderr}");
    let committed = read(kafka, &[&topic], 25, "read_committed");
    assert!(committed.iter().all(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"committed-"))));
}
