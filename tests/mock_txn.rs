//! Transactions of the tokio `Producer` against librdkafka's mock cluster, which implements the
//! transaction and group coordinators (a fresh 3-broker cluster per test, topics `txn-a` with 4
//! partitions and `txn-b` with 3, leaders on every broker), read back by confluent-kafka. The
//! mock records every request (`MockCluster::track`), so each test also counts what reached
//! it: an injected error that no request met would prove nothing.
//!
//! - The flow: `init_transactions`, then transactions over both topics that commit, abort after
//!   their records were written, abort while AddPartitionsToTxn is still in flight (no record
//!   written), and empty ones of each kind (ended without the coordinator). Reports, metrics
//!   (`transactions_committed` / `_aborted`) and the coordinator requests match; every record
//!   the producer reported delivered is read back at its offset, and nothing else.
//! - COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS and
//!   CONCURRENT_TRANSACTIONS injected into FindCoordinator, InitProducerId, AddPartitionsToTxn,
//!   AddOffsetsToTxn, TxnOffsetCommit and EndTxn are retried, and every transaction commits.
//! - The coordinators moving (the mock's own NOT_COORDINATOR, nothing injected): requests
//!   follow them.
//! - PRODUCER_FENCED and TRANSACTIONAL_ID_AUTHORIZATION_FAILED are fatal wherever they come
//!   from: the operation fails with `is_fatal()`, and the producer refuses records, operations
//!   and the transaction's records.
//! - Abortable errors (TOPIC_AUTHORIZATION_FAILED on AddPartitionsToTxn,
//!   GROUP_AUTHORIZATION_FAILED on AddOffsetsToTxn and TxnOffsetCommit): the commit fails with
//!   `txn_requires_abort()`, the abort succeeds, and the next transaction commits.
//! - `send_offsets_to_transaction`: AddOffsetsToTxn to the transaction coordinator, then
//!   TxnOffsetCommit to the group's coordinator, then EndTxn.
//! - EndTxn(abort) refused with PRODUCER_FENCED: InitProducerId with the current epoch
//!   (KIP-360) tells a broker-side abort from a fence; the mock bumps the epoch, the abort
//!   succeeds, and the next transaction commits with epoch 1.
//!
//! What the mock does for transactions (librdkafka 2.12, `rdkafka_mock_handlers.c`), and so what
//! these tests can and cannot prove:
//! - It checks the producer id and epoch of AddPartitionsToTxn, AddOffsetsToTxn,
//!   TxnOffsetCommit and EndTxn, and the coordinator each is sent to (NOT_COORDINATOR
//!   otherwise); it checks a transactional producer's sequence numbers per partition.
//! - It keeps no transaction state: EndTxn writes no commit or abort marker, a Produce to a
//!   partition never added to the transaction is accepted, and Fetch reports the log end as
//!   the last stable offset with no aborted transactions. So a `read_committed` consumer reads
//!   an aborted transaction's records, as `read_uncommitted` does (asserted below: both read
//!   the same), and a partition's offsets run on without the gap a marker leaves on Kafka.
//!   Visibility is proven on Apache Kafka, not here.
//! - TxnOffsetCommit is answered but stores nothing: the group sees no offset. (This, and
//!   that a Produce to a partition never added is accepted, is read from its source, not
//!   asserted here.)
//! - InitProducerId for a transactional id already in use hands out a new producer id and
//!   leaves the old one valid: the mock does not fence (asserted below), so fencing is
//!   injected here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use picokafka::protocol::ErrorCode;
use picokafka::{DeliveryError, TxnError, TxnState};
use picokafka_tests::mock::{api, MockCluster};
use picokafka_tests::{consume_with, Consumed, Consumer};
use picokafka_tokio::{
    ClientConfig, ConsumerGroupMetadata, Delivery, DeliveryFuture, Error, OwnedRecord, Producer,
};

const BROKERS: u32 = 3;
/// (name, partitions)
const TOPICS: [(&str, i32); 2] = [("txn-a", 4), ("txn-b", 3)];
const TXN_ID: &str = "mock-txn";
const GROUP: &str = "mock-txn-group";
/// For every transactional operation: a healthy local mock needs milliseconds.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The retriable coordinator errors.
const RETRIABLE: [ErrorCode; 4] = [
    ErrorCode::CoordinatorNotAvailable,
    ErrorCode::NotCoordinator,
    ErrorCode::CoordinatorLoadInProgress,
    ErrorCode::ConcurrentTransactions,
];

/// A fresh mock with both topics (replication 3), partition `p` of the `t`-th topic led by
/// broker `(p + t) % 3 + 1`, recording requests.
fn cluster() -> MockCluster {
    let spec: Vec<(&str, i32, i32)> = TOPICS.iter().map(|&(t, n)| (t, n, 3)).collect();
    let mut mock = MockCluster::start(BROKERS, &spec);
    for (t, &(topic, partitions)) in TOPICS.iter().enumerate() {
        for p in 0..partitions {
            mock.leader(topic, p, (p + t as i32) % 3 + 1);
        }
    }
    mock.track();
    mock
}

/// A transactional producer with short retry backoffs (retries are what these tests cause).
fn producer(mock: &MockCluster) -> Producer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &mock.bootstrap)
        .set("transactional.id", TXN_ID)
        .set("max.block.ms", "10000")
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "50");
    Producer::new(&c).expect("producer")
}

/// Record `i` of the transaction tagged `tag`: over both topics and all their partitions.
fn record(tag: &str, i: usize) -> OwnedRecord {
    let (topic, partitions) = TOPICS[i % TOPICS.len()];
    OwnedRecord::new(topic)
        .key(format!("{tag}-k{i}"))
        .value(format!("{tag} record {i}"))
        .partition((i / TOPICS.len()) as i32 % partitions)
}

/// Records sent in the open transaction, their reports still to come.
struct Sent(Vec<(OwnedRecord, DeliveryFuture)>);

impl Sent {
    async fn records(producer: &Producer, records: impl IntoIterator<Item = OwnedRecord>) -> Self {
        let mut sent = Vec::new();
        for r in records {
            let f = producer.enqueue(r.clone()).await.unwrap_or_else(|e| panic!("enqueue {r:?}: {e}"));
            sent.push((r, f));
        }
        Self(sent)
    }

    async fn spread(producer: &Producer, tag: &str, n: usize) -> Self {
        Self::records(producer, (0..n).map(|i| record(tag, i))).await
    }

    /// Every record delivered.
    async fn delivered(self) -> Vec<(OwnedRecord, Delivery)> {
        let mut out = Vec::new();
        for (r, f) in self.0 {
            let d = f.await.unwrap_or_else(|e| panic!("{r:?} not delivered: {e}"));
            out.push((r, d));
        }
        out
    }

    /// Every report, for records of an aborted transaction: delivered (written before the
    /// abort), failed with `Aborted`, or (sent after the transaction could no longer commit)
    /// refused with the abortable error; nothing else. The delivered ones, and how many failed.
    async fn delivered_or_aborted(self) -> (Vec<(OwnedRecord, Delivery)>, usize) {
        let (mut delivered, mut aborted) = (Vec::new(), 0);
        for (r, f) in self.0 {
            match f.await {
                Ok(d) => delivered.push((r, d)),
                Err(Error::Delivery(DeliveryError::Aborted)) => aborted += 1,
                Err(e) if e.txn_requires_abort() => aborted += 1,
                Err(e) => panic!("{r:?}: {e:?}, expected delivered or aborted"),
            }
        }
        (delivered, aborted)
    }

    /// Every report an error for which `is_fatal()` holds.
    async fn all_fatal(self) {
        for (r, f) in self.0 {
            match f.await {
                Err(e) if e.is_fatal() || matches!(e, Error::Delivery(DeliveryError::Fatal(_))) => {}
                other => panic!("{r:?}: {other:?}, expected a fatal error"),
            }
        }
    }
}

/// Begins a transaction of `n` records spread over both topics and commits it.
async fn commit_one(producer: &Producer, tag: &str, n: usize) -> Vec<(OwnedRecord, Delivery)> {
    producer.begin_transaction().await.expect("begin");
    let sent = Sent::spread(producer, tag, n).await;
    producer.commit_transaction(TIMEOUT).await.unwrap_or_else(|e| panic!("commit {tag}: {e}"));
    sent.delivered().await
}

/// Reads `delivered.len()` records back with confluent-kafka at `isolation`, and checks they
/// are exactly the delivered records, each at the offset its report gave.
fn read_back(mock: &MockCluster, delivered: &[(OwnedRecord, Delivery)], isolation: &str) -> Vec<Consumed> {
    let topics: Vec<&str> = TOPICS.iter().map(|t| t.0).collect();
    let got = consume_with(
        &mock.bootstrap,
        &topics,
        delivered.len(),
        Consumer::Confluent,
        &[("isolation.level", isolation)],
    );
    let mut want: BTreeMap<(String, i32, i64), &OwnedRecord> = BTreeMap::new();
    for (r, d) in delivered {
        assert_eq!(Some(d.partition), r.partition, "explicit partition: {r:?}");
        assert!(want.insert((d.topic.to_string(), d.partition, d.offset), r).is_none(), "{d:?} twice");
    }
    for c in &got {
        let r = want
            .get(&(c.topic.clone(), c.partition, c.offset))
            .unwrap_or_else(|| panic!("{isolation}: read {c:?}, which no report named"));
        assert_eq!(
            (c.key.as_deref(), c.value.as_deref()),
            (r.key.as_deref(), r.value.as_deref()),
            "{isolation}: {}[{}]@{}",
            c.topic,
            c.partition,
            c.offset
        );
    }
    got
}

async fn metrics_check(producer: &Producer, committed: u64, aborted: u64) {
    let m = producer.metrics().await;
    assert_eq!(m.transactions_committed, committed, "{m:?}");
    assert_eq!(m.transactions_aborted, aborted, "{m:?}");
    assert_eq!(m.transaction_state, TxnState::Ready, "{m:?}");
    assert_eq!(m.fatal, None, "{m:?}");
}

// ---------------------------------------------------------------------------------------------
// 1: the flow
// ---------------------------------------------------------------------------------------------

/// Transactions that commit, abort after their records were written, abort while their
/// partitions are still being added, and empty ones; then both isolation levels read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_and_aborts_over_two_topics() {
    let started = Instant::now();
    let mut mock = cluster();
    // A known coordinator, to delay its AddPartitionsToTxn answer below.
    mock.coordinator("transaction", TXN_ID, 2);
    let producer = producer(&mock);
    producer.init_transactions(TIMEOUT).await.expect("init_transactions");
    let m = producer.metrics().await;
    assert!(m.producer_id >= 0 && m.producer_epoch == 0, "{m:?}");

    let mut delivered = Vec::new();
    delivered.extend(commit_one(&producer, "t0", 300).await);

    // Aborted after every record was written: the mock keeps them (no abort marker).
    producer.begin_transaction().await.unwrap();
    let sent = Sent::spread(&producer, "t1", 200).await;
    producer.flush(Duration::from_secs(120)).await.expect("flush");
    let written = sent.delivered().await;
    producer.abort_transaction(TIMEOUT).await.expect("abort t1");
    delivered.extend(written);

    delivered.extend(commit_one(&producer, "t2", 300).await);

    // Aborted while AddPartitionsToTxn is in flight (its answer held back 400 ms): no batch
    // may go before it, so every record fails with Aborted, and EndTxn(abort) still ends the
    // transaction the coordinator now knows.
    mock.broker_error_rtt(2, api::ADD_PARTITIONS_TO_TXN, 0, 1, 400);
    producer.begin_transaction().await.unwrap();
    let sent = Sent::spread(&producer, "t3", 100).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    producer.abort_transaction(TIMEOUT).await.expect("abort t3");
    let (written, aborted) = sent.delivered_or_aborted().await;
    assert_eq!((written.len(), aborted), (0, 100), "nothing of t3 was sent");

    // Empty transactions end without the coordinator.
    let before = mock.requests(api::END_TXN, None);
    producer.begin_transaction().await.unwrap();
    producer.commit_transaction(TIMEOUT).await.expect("empty commit");
    producer.begin_transaction().await.unwrap();
    producer.abort_transaction(TIMEOUT).await.expect("empty abort");
    assert_eq!(mock.requests(api::END_TXN, None), before, "no EndTxn for empty transactions");

    delivered.extend(commit_one(&producer, "t6", 300).await);

    metrics_check(&producer, 4, 3).await;
    let m = producer.metrics().await;
    assert_eq!(m.records_failed, 100, "t3's records: {m:?}");
    assert_eq!(m.producer_epoch, 0, "no epoch bump: {m:?}");
    // One lookup, one producer id; EndTxn for t0, t1, t2, t3, t6, all at the coordinator.
    assert_eq!(mock.requests(api::FIND_COORDINATOR, None), 1);
    assert_eq!(mock.requests(api::INIT_PRODUCER_ID, Some(2)), 1);
    assert_eq!(mock.requests(api::END_TXN, Some(2)), 5);
    assert_eq!(mock.requests(api::END_TXN, None), 5);
    assert!(mock.requests(api::ADD_PARTITIONS_TO_TXN, Some(2)) >= 5);
    producer.close(TIMEOUT).await;
    let produced = started.elapsed();

    // 300 + 200 + 300 + 300 records, t1's aborted ones included: the mock does not filter.
    assert_eq!(delivered.len(), 1100);
    let committed = read_back(&mock, &delivered, "read_committed");
    let uncommitted = read_back(&mock, &delivered, "read_uncommitted");
    assert_eq!(committed, uncommitted, "the mock hides nothing from read_committed");
    // No marker takes an offset: every partition's offsets run 0, 1, 2, ...
    let mut per_partition: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
    for c in &committed {
        per_partition.entry((c.topic.clone(), c.partition)).or_default().push(c.offset);
    }
    assert_eq!(per_partition.len(), 7, "every partition of both topics");
    for (tp, offsets) in per_partition {
        let n = offsets.len() as i64;
        assert_eq!(offsets, (0..n).collect::<Vec<_>>(), "{tp:?}");
    }
    eprintln!("produced in {produced:?}, read back in {:?}", started.elapsed() - produced);
}

// ---------------------------------------------------------------------------------------------
// 2: retriable coordinator errors
// ---------------------------------------------------------------------------------------------

/// Every retriable error in front of `api_key`'s requests; every transaction commits. At
/// FindCoordinator and InitProducerId (sent by `init_transactions`) the four are stacked, one
/// each; at the others each transaction meets one of them twice. Each transaction writes to
/// one partition (another one each time), so that it needs exactly one AddPartitionsToTxn
/// answered with success.
async fn retried(api_key: i16) {
    let mut mock = cluster();
    let producer = producer(&mock);
    let at_init = matches!(api_key, api::FIND_COORDINATOR | api::INIT_PRODUCER_ID);
    if at_init {
        for code in RETRIABLE {
            mock.error(api_key, code.into(), 1);
        }
    }
    producer.init_transactions(TIMEOUT).await.expect("init_transactions through the errors");
    if at_init {
        assert_eq!(mock.requests(api_key, None), 5, "four refused, one answered");
    }
    let offsets = matches!(api_key, api::ADD_OFFSETS_TO_TXN | api::TXN_OFFSET_COMMIT);
    let group = ConsumerGroupMetadata::new(GROUP);
    let mut delivered = Vec::new();
    for (k, code) in RETRIABLE.into_iter().enumerate() {
        let before = mock.requests(api_key, None);
        if !at_init {
            mock.error(api_key, code.into(), 2);
        }
        producer.begin_transaction().await.unwrap();
        let (topic, partitions) = TOPICS[k % TOPICS.len()];
        let p = k as i32 % partitions;
        let records = (0..50).map(|i| {
            OwnedRecord::new(topic).key(format!("{k}-{i}")).value(format!("after {code} {i}")).partition(p)
        });
        let sent = Sent::records(&producer, records).await;
        if offsets {
            producer
                .send_offsets_to_transaction(&[(topic, p, 100 + k as i64)], &group, TIMEOUT)
                .await
                .unwrap_or_else(|e| panic!("send_offsets through {code}: {e}"));
        }
        producer.commit_transaction(TIMEOUT).await.unwrap_or_else(|e| panic!("commit through {code}: {e}"));
        delivered.extend(sent.delivered().await);
        if !at_init {
            assert_eq!(mock.requests(api_key, None) - before, 3, "{code}: two refused, one answered");
        }
    }
    metrics_check(&producer, 4, 0).await;
    let m = producer.metrics().await;
    // Each error was an answer, none a connection dropped over a malformed one.
    assert_eq!(m.disconnects, 0, "{m:?}");
    // Lookups: the transaction coordinator's; the group's, once per send_offsets; and one
    // again after each NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE (at init one each, else two
    // each), of the coordinator that answered it. At FindCoordinator itself: 4 refused, 1 more.
    let lookups = match api_key {
        api::FIND_COORDINATOR => 5,
        api::INIT_PRODUCER_ID => 1 + 2,
        api::ADD_OFFSETS_TO_TXN | api::TXN_OFFSET_COMMIT => 1 + 4 + 4,
        _ => 1 + 4,
    };
    assert_eq!(mock.requests(api::FIND_COORDINATOR, None), lookups, "api {api_key}");
    let inits = if api_key == api::INIT_PRODUCER_ID { 5 } else { 1 };
    assert_eq!(mock.requests(api::INIT_PRODUCER_ID, None), inits, "no epoch bump, api {api_key}");
    producer.close(TIMEOUT).await;
    read_back(&mock, &delivered, "read_uncommitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_errors_are_retried() {
    retried(api::FIND_COORDINATOR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id_errors_are_retried() {
    retried(api::INIT_PRODUCER_ID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_errors_are_retried() {
    retried(api::ADD_PARTITIONS_TO_TXN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_offsets_errors_are_retried() {
    retried(api::ADD_OFFSETS_TO_TXN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_errors_are_retried() {
    retried(api::TXN_OFFSET_COMMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_errors_are_retried() {
    retried(api::END_TXN).await;
}

// ---------------------------------------------------------------------------------------------
// 3: coordinators moving, and send_offsets_to_transaction
// ---------------------------------------------------------------------------------------------

/// Offsets go to the transaction with AddOffsetsToTxn at the transaction coordinator and
/// TxnOffsetCommit at the group's; when either coordinator moves (the mock then answers the
/// old one's requests with NOT_COORDINATOR itself), the requests follow it. A transaction of
/// offsets alone ends with EndTxn too; an empty offset list sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_moving_coordinators() {
    let mut mock = cluster();
    mock.coordinator("transaction", TXN_ID, 2);
    mock.coordinator("group", GROUP, 3);
    let producer = producer(&mock);
    producer.init_transactions(TIMEOUT).await.expect("init_transactions");
    let group = ConsumerGroupMetadata::new(GROUP);
    let offsets = [("txn-a", 0, 42), ("txn-a", 3, 7), ("txn-b", 1, 1000)];
    let mut delivered = Vec::new();

    // Records and offsets.
    producer.begin_transaction().await.unwrap();
    let sent = Sent::spread(&producer, "o1", 100).await;
    producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT).await.expect("send_offsets");
    producer.commit_transaction(TIMEOUT).await.expect("commit o1");
    delivered.extend(sent.delivered().await);
    assert_eq!(mock.requests(api::ADD_OFFSETS_TO_TXN, Some(2)), 1);
    assert_eq!(mock.requests(api::TXN_OFFSET_COMMIT, Some(3)), 1);
    assert_eq!(mock.requests(api::TXN_OFFSET_COMMIT, None), 1);
    assert_eq!(mock.requests(api::END_TXN, Some(2)), 1);

    // The group's coordinator moves to broker 1.
    mock.coordinator("group", GROUP, 1);
    producer.begin_transaction().await.unwrap();
    let sent = Sent::spread(&producer, "o2", 100).await;
    producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT).await.expect("send_offsets o2");
    producer.commit_transaction(TIMEOUT).await.expect("commit o2");
    delivered.extend(sent.delivered().await);
    assert_eq!(mock.requests(api::TXN_OFFSET_COMMIT, Some(1)), 1, "the new group coordinator");
    assert_eq!(mock.requests(api::END_TXN, Some(2)), 2);

    // The transaction coordinator moves to broker 3; a transaction of offsets alone.
    mock.coordinator("transaction", TXN_ID, 3);
    producer.begin_transaction().await.unwrap();
    producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT).await.expect("send_offsets o3");
    producer.commit_transaction(TIMEOUT).await.expect("commit o3");
    assert_eq!(mock.requests(api::ADD_OFFSETS_TO_TXN, Some(3)), 1, "the new transaction coordinator");
    assert_eq!(mock.requests(api::END_TXN, Some(3)), 1, "offsets alone end with EndTxn");
    assert_eq!(mock.requests(api::INIT_PRODUCER_ID, None), 1, "no new producer id");

    // No offsets: nothing to send; records only.
    let before = mock.requests(api::ADD_OFFSETS_TO_TXN, None);
    producer.begin_transaction().await.unwrap();
    let sent = Sent::spread(&producer, "o4", 100).await;
    producer.send_offsets_to_transaction(&[], &group, TIMEOUT).await.expect("no offsets");
    producer.commit_transaction(TIMEOUT).await.expect("commit o4");
    delivered.extend(sent.delivered().await);
    assert_eq!(mock.requests(api::ADD_OFFSETS_TO_TXN, None), before);
    assert_eq!(mock.requests(api::END_TXN, Some(3)), 2);

    metrics_check(&producer, 4, 0).await;
    producer.close(TIMEOUT).await;
    read_back(&mock, &delivered, "read_uncommitted");
}

// ---------------------------------------------------------------------------------------------
// 4: fatal errors
// ---------------------------------------------------------------------------------------------

/// Where the fatal error is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `init_transactions` fails.
    Init,
    /// `send_offsets_to_transaction` fails.
    Offsets,
    /// `commit_transaction` fails.
    Commit,
    /// `abort_transaction` fails.
    Abort,
}

/// The producer failed for good with `code`: every operation and record is refused.
async fn refuses_everything(producer: &Producer, code: ErrorCode, what: &str) {
    let fatal = Error::Transaction(TxnError::Fatal(code));
    let err = producer.send(record("after", 0)).await.unwrap_err();
    assert!(err.is_fatal(), "{what}: a record after the fatal error: {err:?}");
    assert_eq!(err, fatal, "{what}");
    for (op, result) in [
        ("begin", producer.begin_transaction().await),
        ("commit", producer.commit_transaction(TIMEOUT).await),
        ("abort", producer.abort_transaction(TIMEOUT).await),
    ] {
        let err = result.expect_err(op);
        assert!(err.is_fatal() && !err.txn_requires_abort(), "{what}: {op}: {err:?}");
    }
    let m = producer.metrics().await;
    assert_eq!(m.fatal, Some(code), "{what}: {m:?}");
    assert_eq!(m.transaction_state, TxnState::FatalError, "{what}: {m:?}");
}

/// PRODUCER_FENCED and TRANSACTIONAL_ID_AUTHORIZATION_FAILED from each coordinator request:
/// the operation that meets it fails with `is_fatal()`, then the producer refuses everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_and_unauthorized_are_fatal() {
    use ErrorCode::{ProducerFenced as Fenced, TransactionalIdAuthorizationFailed as Unauthorized};
    let cases = [
        (api::FIND_COORDINATOR, Unauthorized, Stage::Init),
        (api::INIT_PRODUCER_ID, Unauthorized, Stage::Init),
        (api::INIT_PRODUCER_ID, Fenced, Stage::Init),
        (api::ADD_PARTITIONS_TO_TXN, Fenced, Stage::Commit),
        (api::ADD_PARTITIONS_TO_TXN, Unauthorized, Stage::Commit),
        (api::ADD_OFFSETS_TO_TXN, Fenced, Stage::Offsets),
        (api::ADD_OFFSETS_TO_TXN, Unauthorized, Stage::Offsets),
        (api::TXN_OFFSET_COMMIT, Fenced, Stage::Offsets),
        (api::END_TXN, Fenced, Stage::Commit),
        (api::END_TXN, Unauthorized, Stage::Commit),
        (api::END_TXN, Unauthorized, Stage::Abort),
    ];
    for (api_key, code, stage) in cases {
        let what = format!("{code} on api {api_key} at {stage:?}");
        let mut mock = cluster();
        let producer = producer(&mock);
        let fatal = Error::Transaction(TxnError::Fatal(code));
        if stage == Stage::Init {
            mock.error(api_key, code.into(), 1);
            let err = producer.init_transactions(TIMEOUT).await.expect_err(&what);
            assert!(err.is_fatal(), "{what}: {err:?}");
            assert_eq!(err, fatal, "{what}");
            refuses_everything(&producer, code, &what).await;
            continue;
        }
        producer.init_transactions(TIMEOUT).await.expect("init_transactions");
        mock.error(api_key, code.into(), 1);
        producer.begin_transaction().await.unwrap();
        let sent = Sent::spread(&producer, "doomed", 40).await;
        let failed = match stage {
            Stage::Offsets => {
                producer
                    .send_offsets_to_transaction(
                        &[("txn-a", 0, 1)],
                        &ConsumerGroupMetadata::new(GROUP),
                        TIMEOUT,
                    )
                    .await
            }
            Stage::Commit => producer.commit_transaction(TIMEOUT).await,
            Stage::Abort => {
                producer.flush(Duration::from_secs(120)).await.expect("flush");
                producer.abort_transaction(TIMEOUT).await
            }
            Stage::Init => unreachable!(),
        };
        let err = failed.expect_err(&what);
        assert!(err.is_fatal() && !err.txn_requires_abort(), "{what}: {err:?}");
        assert_eq!(err, fatal, "{what}");
        if api_key == api::ADD_PARTITIONS_TO_TXN {
            // No partition was added, so no record was sent.
            sent.all_fatal().await;
        } else {
            // Records sent before the error are delivered; the others fail for good.
            for (r, f) in sent.0 {
                match f.await {
                    Ok(_) => {}
                    Err(e) if e.is_fatal() || matches!(e, Error::Delivery(DeliveryError::Fatal(_))) => {}
                    Err(e) => panic!("{what}: {r:?}: {e:?}"),
                }
            }
        }
        refuses_everything(&producer, code, &what).await;
        producer.close(TIMEOUT).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 5: abortable errors
// ---------------------------------------------------------------------------------------------

/// A transaction the broker refuses part of (TOPIC_AUTHORIZATION_FAILED on AddPartitionsToTxn,
/// GROUP_AUTHORIZATION_FAILED on AddOffsetsToTxn and on TxnOffsetCommit) cannot commit: the
/// commit fails with `txn_requires_abort()`, the abort succeeds, and the next one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abortable_errors_abort_and_the_producer_goes_on() {
    let mut mock = cluster();
    let producer = producer(&mock);
    producer.init_transactions(TIMEOUT).await.expect("init_transactions");
    let group = ConsumerGroupMetadata::new(GROUP);
    let cases = [
        (api::ADD_PARTITIONS_TO_TXN, ErrorCode::TopicAuthorizationFailed),
        (api::ADD_OFFSETS_TO_TXN, ErrorCode::GroupAuthorizationFailed),
        (api::TXN_OFFSET_COMMIT, ErrorCode::GroupAuthorizationFailed),
    ];
    let mut delivered = Vec::new();
    for (k, (api_key, code)) in cases.into_iter().enumerate() {
        let what = format!("{code} on api {api_key}");
        mock.error(api_key, code.into(), 1);
        producer.begin_transaction().await.unwrap();
        let sent = Sent::spread(&producer, &format!("refused{k}"), 60).await;
        if api_key != api::ADD_PARTITIONS_TO_TXN {
            let err = producer
                .send_offsets_to_transaction(&[("txn-b", 2, 5)], &group, TIMEOUT)
                .await
                .expect_err(&what);
            assert!(err.txn_requires_abort() && !err.is_fatal(), "{what}: send_offsets: {err:?}");
            assert_eq!(err, Error::Transaction(TxnError::Abortable(code)), "{what}");
        }
        let err = producer.commit_transaction(TIMEOUT).await.expect_err(&what);
        assert!(err.txn_requires_abort() && !err.is_fatal(), "{what}: commit: {err:?}");
        assert_eq!(err, Error::Transaction(TxnError::Abortable(code)), "{what}");
        producer.abort_transaction(TIMEOUT).await.unwrap_or_else(|e| panic!("{what}: abort: {e}"));
        let (written, aborted) = sent.delivered_or_aborted().await;
        if api_key == api::ADD_PARTITIONS_TO_TXN {
            assert_eq!((written.len(), aborted), (0, 60), "{what}: no partition added, nothing sent");
        }
        // The mock keeps what was written before the abort (no marker hides it).
        delivered.extend(written);
        delivered.extend(commit_one(&producer, &format!("after{k}"), 60).await);
        metrics_check(&producer, k as u64 + 1, k as u64 + 1).await;
    }
    let m = producer.metrics().await;
    assert_eq!(m.producer_epoch, 0, "an abortable error needs no new epoch: {m:?}");
    producer.close(TIMEOUT).await;
    read_back(&mock, &delivered, "read_uncommitted");
}

/// EndTxn(abort) refused with PRODUCER_FENCED may be the broker having aborted the transaction
/// itself and bumped the epoch: the producer asks InitProducerId with its current epoch (KIP-360)
/// to tell. The mock, which fenced nobody, bumps it: the abort succeeds, and the next
/// transaction commits with the new epoch, which the mock checks on every request and batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_abort_is_told_from_a_fence_by_an_epoch_bump() {
    let mut mock = cluster();
    let producer = producer(&mock);
    producer.init_transactions(TIMEOUT).await.expect("init_transactions");
    let id = producer.metrics().await.producer_id;
    producer.begin_transaction().await.unwrap();
    let sent = Sent::spread(&producer, "b0", 50).await;
    producer.flush(Duration::from_secs(120)).await.expect("flush");
    let mut delivered = sent.delivered().await;
    mock.error(api::END_TXN, ErrorCode::ProducerFenced.into(), 1);
    producer.abort_transaction(TIMEOUT).await.expect("abort, after the bump");
    let m = producer.metrics().await;
    assert_eq!((m.producer_id, m.producer_epoch), (id, 1), "{m:?}");
    assert_eq!(mock.requests(api::INIT_PRODUCER_ID, None), 2, "the bump");
    delivered.extend(commit_one(&producer, "b1", 50).await);
    metrics_check(&producer, 1, 1).await;
    producer.close(TIMEOUT).await;
    read_back(&mock, &delivered, "read_uncommitted");
}

/// Why fencing is injected above: the mock does not fence. A second producer with the same
/// `transactional.id` gets a new producer id from InitProducerId, and the first one, which
/// Kafka would answer PRODUCER_FENCED, still commits. (Fencing is proven on Apache Kafka.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_does_not_fence_an_older_producer() {
    let mock = cluster();
    let first = producer(&mock);
    first.init_transactions(TIMEOUT).await.expect("first init");
    let second = producer(&mock);
    second.init_transactions(TIMEOUT).await.expect("second init");
    let (a, b) = (first.metrics().await, second.metrics().await);
    assert_ne!(a.producer_id, b.producer_id, "a new id, not a bumped epoch: {a:?} {b:?}");
    let delivered = commit_one(&first, "old", 20).await;
    assert_eq!(delivered.len(), 20);
    metrics_check(&first, 1, 0).await;
    first.close(TIMEOUT).await;
    second.close(TIMEOUT).await;
}
