//! Transactions in the deterministic simulation: a real transactional `picokafka::Producer`
//! against the simulated cluster's transaction and group coordinators
//! (`picokafka_tests::sim::txn`), through the seeded network.
//!
//! - Scenario tests: commit makes the records visible to `read_committed`, abort hides them, an
//!   empty transaction commits without the coordinator, records outside a transaction are
//!   refused, a failed record fails the commit with an abortable error and the abort then goes
//!   on, a partition the coordinator refuses, the coordinator moving (`NOT_COORDINATOR`),
//!   `CONCURRENT_TRANSACTIONS`, a transaction the coordinator aborted on its timeout, zombie
//!   fencing (two producers with one `transactional.id`), and consumer offsets committed with
//!   the transaction only.
//! - Property tests: random sequences of transactions over two topics under the faults the
//!   simulation injects (connection drops and cuts, lost responses, retriable broker errors,
//!   coordinator moves): each transaction's records are visible to `read_committed` all or
//!   none, exactly once, in send order per partition; and with a second producer taking the
//!   transactional id over at a random point, none of the first one's later records commits.
//!
//! `PROPTEST_CASES` / `SIM_PROPTEST_SEED` explore further; `SIM_TRACE=1` prints transcripts.

use std::collections::BTreeMap;

use picokafka::protocol::ErrorCode;
use picokafka::{
    Config, DeliveryError, GroupMetadata, Instant, TopicPartitionOffset, TxnError, TxnOp, TxnState,
};
use picokafka_tests::sim::cluster::{api_key, error_code as ec, SimCluster};
use picokafka_tests::sim::net::{
    bootstrap_of, record_id, Capacity, Fault, Memory, NetConfig, Outcome, RecordSpec, Refusal, Sim,
};
use picokafka_tests::sim::TxnMark;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const TID: &str = "tx-sim";
/// Deadline for one transactional operation, relative to now.
const OP_MS: u64 = 120_000;

/// Brokers `0..brokers`, each topic's partition `p` led by broker `p % brokers`, transactions on
/// with broker `coordinator` the coordinator.
fn cluster(brokers: i32, topics: &[(&str, i32)], coordinator: i32) -> SimCluster {
    let ids: Vec<i32> = (0..brokers).collect();
    let mut c = SimCluster::new(&ids);
    for (name, partitions) in topics {
        c.create_topic(name, *partitions, &ids);
    }
    c.enable_transactions(coordinator);
    c
}

fn config(cluster: &SimCluster, props: &[(&str, &str)]) -> Config {
    let mut c = Config::new(&bootstrap_of(cluster)).expect("bootstrap list");
    c.set("transactional.id", TID).expect("transactions on");
    c.set("linger.ms", "2").expect("linger");
    for (k, v) in props {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    c
}

fn memory() -> Memory {
    Memory::new(Capacity::small(8, 1024))
}

fn deadline(sim: &Sim<'_>) -> u64 {
    sim.now.as_millis() + OP_MS
}

fn init(sim: &mut Sim<'_>) -> Result<(), TxnError> {
    let d = deadline(sim);
    sim.transact(TxnOp::Init, d, |p, now| p.init_transactions(now))
}

fn begin(sim: &mut Sim<'_>) {
    let d = deadline(sim);
    sim.transact(TxnOp::Begin, d, |p, _| p.begin_transaction()).expect("begin");
}

fn commit(sim: &mut Sim<'_>) -> Result<(), TxnError> {
    let d = deadline(sim);
    sim.transact(TxnOp::Commit, d, |p, now| p.commit_transaction(now))
}

fn abort(sim: &mut Sim<'_>) -> Result<(), TxnError> {
    let d = deadline(sim);
    sim.transact(TxnOp::Abort, d, |p, now| p.abort_transaction(now))
}

/// Sends `spec` now, retrying `MetadataPending`/`QueueFull` while the simulation runs (a
/// blocking `send`); the ledger id.
fn send(sim: &mut Sim<'_>, spec: RecordSpec) -> Result<u64, Refusal> {
    let id = sim.enqueue(sim.now, spec);
    let d = deadline(sim);
    sim.run_until(Instant::from_millis(d), |s| s.workload_pending() == 0);
    let e = sim.ledger.get(id);
    match (e.accepted, e.refused) {
        (Some(_), _) => Ok(id),
        (None, Some(r)) => Err(r),
        (None, None) => panic!("r{id} neither accepted nor refused"),
    }
}

fn rec(topic: &str, partition: i32, value: &str) -> RecordSpec {
    RecordSpec::new(topic).partition(partition).value(value)
}

/// Ledger ids a `read_committed` consumer of `topic`-`partition` reads, in log order.
fn visible(cluster: &SimCluster, topic: &str, partition: i32) -> Vec<u64> {
    cluster.read_committed(topic, partition).into_iter().filter_map(record_id).collect()
}

/// The values a `read_committed` consumer reads, over every partition of every topic.
fn committed_values(cluster: &SimCluster) -> Vec<String> {
    let mut out = Vec::new();
    for t in cluster.topics() {
        for p in 0..cluster.partition_count(&t).unwrap_or(0) {
            for r in cluster.read_committed(&t, p) {
                out.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
            }
        }
    }
    out
}

/// Every visible ledger id, over every partition of every topic.
fn all_visible(cluster: &SimCluster) -> Vec<u64> {
    let mut out = Vec::new();
    for t in cluster.topics() {
        for p in 0..cluster.partition_count(&t).unwrap_or(0) {
            out.extend(visible(cluster, &t, p));
        }
    }
    out
}

#[track_caller]
fn assert_steps(sim: &Sim<'_>, expected: &[&str]) {
    let lines = sim.transcript();
    let mut at = 0;
    for want in expected {
        match lines[at..].iter().position(|l| l.contains(want)) {
            Some(i) => at += i + 1,
            None => {
                panic!("transcript lacks {want:?} (after step {at}); transcript:\n{}", sim.transcript_text())
            }
        }
    }
}

#[track_caller]
fn assert_no_violations(sim: &Sim<'_>) {
    assert!(sim.violations.is_empty(), "violations: {:?}\n{}", sim.violations, sim.transcript_text());
}

/// Lets a second simulation take its turn with the one cluster: the cluster moves to `to`,
/// whose clock catches up with `from`'s.
fn hand_over(from: &mut Sim<'_>, to: &mut Sim<'_>) {
    std::mem::swap(&mut from.cluster, &mut to.cluster);
    let t = from.now.max(to.now);
    to.run_until(t, |_| false);
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[test]
fn api_versions_advertise_the_transaction_apis() {
    let mut c = SimCluster::new(&[0]);
    assert_eq!(c.api_versions(api_key::FIND_COORDINATOR), None, "off by default");
    c.enable_transactions(0);
    assert_eq!(c.api_versions(api_key::FIND_COORDINATOR), Some((0, 5)));
    assert_eq!(c.api_versions(api_key::ADD_PARTITIONS_TO_TXN), Some((0, 3)));
    assert_eq!(c.api_versions(api_key::ADD_OFFSETS_TO_TXN), Some((0, 3)));
    assert_eq!(c.api_versions(api_key::TXN_OFFSET_COMMIT), Some((0, 3)));
    assert_eq!(c.api_versions(api_key::END_TXN), Some((0, 4)));
    assert_eq!(c.api_versions(api_key::INIT_PRODUCER_ID), Some((0, 5)));
}

/// A transaction's batch too large for the broker is split and its halves sent, still
/// transactional and in the transaction: the commit makes every record visible once, in order.
#[test]
fn a_batch_split_on_message_too_large_stays_in_its_transaction() {
    let mut c = cluster(1, &[("a", 1)], 0);
    c.max_message_bytes = 400;
    let config = config(&c, &[("linger.ms", "50")]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(3)).unwrap();
    init(&mut sim).expect("init");
    begin(&mut sim);
    let ids: Vec<u64> = (0..30)
        .map(|i| send(&mut sim, rec("a", 0, &format!("{i:02}{}", "v".repeat(60)))).expect("accepted"))
        .collect();
    commit(&mut sim).expect("commit");
    assert!(sim.producer.metrics().batches_split >= 2, "{:?}", sim.producer.metrics());
    assert_eq!(visible(&sim.cluster, "a", 0), ids, "every record once, in order");
    assert!(sim.cluster.batches("a", 0).iter().all(|b| b.transactional && b.record_count > 0));
    assert_eq!(sim.cluster.markers("a", 0).len(), 1, "one commit marker");
    assert_no_violations(&sim);
}

#[test]
fn commit_makes_the_records_visible_to_read_committed() {
    let c = cluster(3, &[("a", 3), ("b", 2)], 2);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(1)).unwrap();
    init(&mut sim).expect("init");
    assert_eq!(sim.producer.transaction_state(), TxnState::Ready);
    begin(&mut sim);
    let mut ids = Vec::new();
    for i in 0..6 {
        let (t, p) = if i % 2 == 0 { ("a", i % 3) } else { ("b", i % 2) };
        ids.push(send(&mut sim, rec(t, p, &format!("v{i}"))).expect("accepted"));
    }
    sim.run_for(200);
    // Written, not yet visible: the transaction is open, the last stable offset holds back.
    for (t, p) in [("a", 0), ("b", 1)] {
        assert!(!sim.cluster.log(t, p).is_empty());
        assert!(visible(&sim.cluster, t, p).is_empty(), "{t}-{p} visible before the commit");
        assert!(sim.cluster.log(t, p).iter().all(|r| r.txn == TxnMark::Open && r.transactional));
    }
    commit(&mut sim).expect("commit");
    assert_eq!(sim.producer.transaction_state(), TxnState::Ready);
    let mut seen = all_visible(&sim.cluster);
    seen.sort_unstable();
    assert_eq!(seen, ids, "every record once");
    for id in &ids {
        assert!(matches!(sim.ledger.get(*id).outcome, Some((_, Outcome::Delivered { .. }))));
    }
    assert_eq!(sim.cluster.markers("a", 0).len(), 1, "one commit marker");
    assert!(sim.cluster.markers("a", 0)[0].2);
    assert_steps(
        &sim,
        &[
            "FindCoordinator",
            "FindCoordinator #",
            "-> b2 InitProducerId",
            "pid 1000 e0",
            "-> b2 AddPartitionsToTxn",
            "Produce",
            "-> b2 EndTxn v4 #7 commit (pid 1000 e0)",
            "transaction commit_transaction: Ok(())",
        ],
    );
    assert_no_violations(&sim);
}

#[test]
fn abort_hides_the_records_and_the_next_transaction_commits() {
    let c = cluster(2, &[("a", 2)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::calm(2)).unwrap();
    init(&mut sim).expect("init");
    begin(&mut sim);
    let aborted: Vec<u64> = (0..4).map(|i| send(&mut sim, rec("a", i % 2, "gone")).unwrap()).collect();
    sim.run_to_completion(sim.now.as_millis() + 10_000);
    abort(&mut sim).expect("abort");
    assert!(all_visible(&sim.cluster).is_empty());
    for p in 0..2 {
        assert!(sim.cluster.log("a", p).iter().all(|r| r.txn == TxnMark::Aborted));
    }
    for id in &aborted {
        assert!(matches!(sim.ledger.get(*id).outcome, Some((_, Outcome::Delivered { .. }))), "written");
    }
    begin(&mut sim);
    let kept: Vec<u64> = (0..4).map(|i| send(&mut sim, rec("a", i % 2, "kept")).unwrap()).collect();
    commit(&mut sim).expect("commit");
    let mut seen = all_visible(&sim.cluster);
    seen.sort_unstable();
    assert_eq!(seen, kept);
    assert_eq!(sim.cluster.coordinators().ended.iter().map(|e| e.commit).collect::<Vec<_>>(), [false, true]);
    assert_no_violations(&sim);
}

#[test]
fn an_empty_transaction_commits_and_aborts_without_the_coordinator() {
    let c = cluster(1, &[("a", 1)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(3)).unwrap();
    init(&mut sim).expect("init");
    begin(&mut sim);
    commit(&mut sim).expect("empty commit");
    begin(&mut sim);
    abort(&mut sim).expect("empty abort");
    for api in [api_key::ADD_PARTITIONS_TO_TXN, api_key::END_TXN, api_key::ADD_OFFSETS_TO_TXN] {
        assert_eq!(sim.cluster.request_count(0, api), 0, "api {api}");
    }
    assert!(sim.cluster.coordinators().ended.is_empty());
    assert_no_violations(&sim);
}

#[test]
fn records_outside_a_transaction_are_refused() {
    let c = cluster(1, &[("a", 1)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(4)).unwrap();
    assert_eq!(send(&mut sim, rec("a", 0, "x")), Err(Refusal::NoTransaction(TxnState::Uninitialized)));
    init(&mut sim).expect("init");
    assert_eq!(send(&mut sim, rec("a", 0, "x")), Err(Refusal::NoTransaction(TxnState::Ready)));
    begin(&mut sim);
    send(&mut sim, rec("a", 0, "in")).expect("in the transaction");
    commit(&mut sim).expect("commit");
    assert_eq!(send(&mut sim, rec("a", 0, "x")), Err(Refusal::NoTransaction(TxnState::Ready)));
    assert_eq!(sim.cluster.log("a", 0).len(), 1);
    // Nothing but the one record, ever: the broker would refuse a transactional batch for a
    // partition outside the transaction anyway (sim_cluster's coordinator tests).
    assert_no_violations(&sim);
}

#[test]
fn a_failed_record_fails_the_commit_with_an_abortable_error_and_the_abort_goes_on() {
    let c = cluster(2, &[("a", 2)], 1);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(5)).unwrap();
    init(&mut sim).expect("init");
    begin(&mut sim);
    sim.cluster.inject_error(api_key::PRODUCE, Some(0), ec::MESSAGE_TOO_LARGE, 1);
    let bad = send(&mut sim, rec("a", 0, "too large")).unwrap();
    let good = send(&mut sim, rec("a", 1, "fine")).unwrap();
    let err = commit(&mut sim).unwrap_err();
    assert!(err.is_abortable(), "{err:?}");
    assert_eq!(err, TxnError::RecordFailed(DeliveryError::Broker(ErrorCode::MessageTooLarge)));
    assert_eq!(sim.producer.transaction_state(), TxnState::AbortableError);
    assert!(matches!(sim.ledger.get(bad).outcome, Some((_, Outcome::Failed { .. }))));
    assert_eq!(commit(&mut sim).unwrap_err(), err, "it stays uncommittable");
    abort(&mut sim).expect("abort");
    assert!(all_visible(&sim.cluster).is_empty(), "the good record is aborted with the bad one");
    assert!(sim.cluster.log("a", 1).iter().all(|r| r.txn == TxnMark::Aborted));
    let _ = good;
    begin(&mut sim);
    let next = send(&mut sim, rec("a", 0, "next")).unwrap();
    commit(&mut sim).expect("the producer goes on");
    assert_eq!(all_visible(&sim.cluster), [next]);
    assert_no_violations(&sim);
}

#[test]
fn a_partition_the_coordinator_refuses_makes_the_transaction_abortable() {
    let c = cluster(1, &[("a", 2)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(6)).unwrap();
    init(&mut sim).expect("init");
    sim.cluster.inject_partition_error("a", 1, ec::TOPIC_AUTHORIZATION_FAILED, 1);
    begin(&mut sim);
    send(&mut sim, rec("a", 0, "x")).unwrap();
    send(&mut sim, rec("a", 1, "y")).unwrap();
    let err = commit(&mut sim).unwrap_err();
    assert_eq!(err, TxnError::Abortable(ErrorCode::TopicAuthorizationFailed));
    abort(&mut sim).expect("abort");
    assert!(all_visible(&sim.cluster).is_empty());
    assert_steps(&sim, &["AddPartitionsToTxn #", "a-1 TOPIC_AUTHORIZATION_FAILED", "EndTxn v4 #9 abort"]);
    begin(&mut sim);
    let ok = send(&mut sim, rec("a", 1, "z")).unwrap();
    commit(&mut sim).expect("commit");
    assert_eq!(all_visible(&sim.cluster), [ok]);
    assert_no_violations(&sim);
}

#[test]
fn a_moved_coordinator_is_looked_up_again() {
    let c = cluster(3, &[("a", 3)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(7)).unwrap();
    init(&mut sim).expect("init");
    sim.cluster.move_coordinator(1);
    begin(&mut sim);
    let a = send(&mut sim, rec("a", 0, "x")).unwrap();
    sim.run_for(500);
    // And again before the commit.
    sim.cluster.move_coordinator(2);
    let b = send(&mut sim, rec("a", 2, "y")).unwrap();
    commit(&mut sim).expect("commit");
    let mut seen = all_visible(&sim.cluster);
    seen.sort_unstable();
    assert_eq!(seen, [a, b]);
    assert_steps(
        &sim,
        &[
            "-> b0 AddPartitionsToTxn",
            "NOT_COORDINATOR",
            "FindCoordinator #",
            "-> b1 AddPartitionsToTxn",
            "NOT_COORDINATOR",
            "FindCoordinator #",
            "-> b2 AddPartitionsToTxn",
            "-> b2 EndTxn",
        ],
    );
    assert_no_violations(&sim);
}

#[test]
fn concurrent_transactions_is_retried() {
    let c = cluster(2, &[("a", 2)], 1);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(8)).unwrap();
    init(&mut sim).expect("init");
    // While the previous transaction's markers are written, as Kafka answers.
    sim.cluster.coordinators_mut().concurrent_after_end = 2;
    let mut committed = Vec::new();
    for round in 0..3 {
        begin(&mut sim);
        committed.push(send(&mut sim, rec("a", round % 2, "x")).unwrap());
        if round == 2 {
            sim.cluster.inject_error(api_key::END_TXN, None, ec::CONCURRENT_TRANSACTIONS, 2);
        }
        commit(&mut sim).expect("commit");
    }
    let mut seen = all_visible(&sim.cluster);
    seen.sort_unstable();
    assert_eq!(seen, committed);
    let concurrent = sim.transcript_matching("CONCURRENT_TRANSACTIONS").len();
    assert!(concurrent >= 6, "{concurrent} CONCURRENT_TRANSACTIONS answers");
    assert_no_violations(&sim);
}

#[test]
fn a_transaction_the_coordinator_aborted_on_its_timeout_is_reported_and_the_producer_goes_on() {
    let c = cluster(1, &[("a", 1)], 0);
    let config = config(&c, &[("transaction.timeout.ms", "1000")]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(9)).unwrap();
    sim.cluster.coordinators_mut().abort_timed_out = true;
    init(&mut sim).expect("init");
    begin(&mut sim);
    send(&mut sim, rec("a", 0, "late")).unwrap();
    sim.run_for(2000);
    let err = commit(&mut sim).unwrap_err();
    assert_eq!(err, TxnError::TimedOut);
    abort(&mut sim).expect("abort after the timeout");
    assert!(all_visible(&sim.cluster).is_empty());
    begin(&mut sim);
    let ok = send(&mut sim, rec("a", 0, "in time")).unwrap();
    commit(&mut sim).expect("the next one commits");
    assert_eq!(all_visible(&sim.cluster), [ok]);
    let ended: Vec<_> = sim.cluster.coordinators().ended.iter().map(|e| (e.commit, e.why, e.epoch)).collect();
    assert_eq!(ended, [(false, "timeout", 1), (true, "EndTxn", 1)]);
    assert_no_violations(&sim);
}

#[test]
fn zombie_fencing_two_producers_with_one_transactional_id() {
    let c = cluster(2, &[("a", 2)], 1);
    let config_a = config(&c, &[]);
    let config_b = config(&c, &[("random.seed", "77")]);
    let (mut mem_a, mut mem_b) = (memory(), memory());
    let mut a = Sim::new(config_a, mem_a.storage(), c, NetConfig::calm(10)).unwrap();
    let mut b = Sim::new(config_b, mem_b.storage(), SimCluster::new(&[0]), NetConfig::calm(11)).unwrap();
    b.set_link_base(1_000_000);

    init(&mut a).expect("a init");
    begin(&mut a);
    let a1 = send(&mut a, rec("a", 0, "a1")).unwrap();
    a.run_to_completion(a.now.as_millis() + 5000);

    hand_over(&mut a, &mut b);
    // b's InitProducerId fences a: a's open transaction is aborted, then b gets a new epoch.
    init(&mut b).expect("b init");
    assert_eq!(b.cluster.coordinators().ended.len(), 1);
    assert_eq!(b.cluster.coordinators().ended[0].why, "fenced");
    assert!(b.transcript_matching("CONCURRENT_TRANSACTIONS").len() == 1);
    begin(&mut b);
    let b1 = send(&mut b, rec("a", 1, "b1")).unwrap();

    hand_over(&mut b, &mut a);
    // The zombie goes on: a record (refused by the leader or not), then its commit.
    let a2 = send(&mut a, rec("a", 1, "a2")).unwrap();
    let err = commit(&mut a).unwrap_err();
    assert!(
        matches!(err, TxnError::Fatal(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)),
        "{err:?}"
    );
    assert_eq!(a.producer.transaction_state(), TxnState::FatalError);
    assert!(err.is_fatal());
    assert_eq!(abort(&mut a).unwrap_err(), err, "fatal sticks");

    hand_over(&mut a, &mut b);
    commit(&mut b).expect("b commits");
    // The two simulations number their records apart only by ledger: compare values.
    let _ = (a1, a2, b1);
    assert_eq!(committed_values(&b.cluster), ["b1"], "none of the zombie's records");
    assert!(b.cluster.log("a", 0).iter().all(|r| r.txn == TxnMark::Aborted), "a1 aborted by the fence");
    assert_no_violations(&a);
    assert_no_violations(&b);
}

#[test]
fn zombie_commit_without_new_records_is_fenced() {
    let c = cluster(1, &[("a", 1)], 0);
    let config_a = config(&c, &[]);
    let config_b = config(&c, &[("random.seed", "78")]);
    let (mut mem_a, mut mem_b) = (memory(), memory());
    let mut a = Sim::new(config_a, mem_a.storage(), c, NetConfig::simple(12)).unwrap();
    let mut b = Sim::new(config_b, mem_b.storage(), SimCluster::new(&[0]), NetConfig::simple(13)).unwrap();
    b.set_link_base(1_000_000);
    init(&mut a).expect("a init");
    begin(&mut a);
    send(&mut a, rec("a", 0, "a1")).unwrap();
    a.run_to_completion(a.now.as_millis() + 5000);
    hand_over(&mut a, &mut b);
    init(&mut b).expect("b init");
    hand_over(&mut b, &mut a);
    let err = commit(&mut a).unwrap_err();
    assert_eq!(err, TxnError::Fatal(ErrorCode::ProducerFenced));
    assert!(a.cluster.read_committed("a", 0).is_empty());
    assert!(a.cluster.log("a", 0).iter().all(|r| r.txn == TxnMark::Aborted));
}

#[test]
fn offsets_are_committed_with_the_transaction_only() {
    let c = cluster(2, &[("a", 1), ("in", 2)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(14)).unwrap();
    sim.cluster.coordinators_mut().group = 1;
    init(&mut sim).expect("init");
    let group = GroupMetadata::new("g1");
    let offsets = |o: i64| {
        [
            TopicPartitionOffset { topic: "in", partition: 0, offset: o },
            TopicPartitionOffset { topic: "in", partition: 1, offset: o + 1 },
        ]
    };

    begin(&mut sim);
    send(&mut sim, rec("a", 0, "x")).unwrap();
    let d = deadline(&sim);
    let o = offsets(42);
    sim.transact(TxnOp::SendOffsets, d, |p, now| p.send_offsets_to_transaction(now, &group, &o))
        .expect("offsets");
    assert!(sim.cluster.committed_offsets("g1").is_empty(), "not before the commit");
    assert_eq!(sim.cluster.pending_offsets("g1").len(), 1);
    abort(&mut sim).expect("abort");
    assert!(sim.cluster.committed_offsets("g1").is_empty(), "aborted with the transaction");
    assert!(sim.cluster.pending_offsets("g1").is_empty());

    begin(&mut sim);
    send(&mut sim, rec("a", 0, "y")).unwrap();
    let d = deadline(&sim);
    let o = offsets(50);
    sim.transact(TxnOp::SendOffsets, d, |p, now| p.send_offsets_to_transaction(now, &group, &o))
        .expect("offsets");
    commit(&mut sim).expect("commit");
    let want: BTreeMap<(String, i32), i64> =
        [(("in".to_string(), 0), 50), (("in".to_string(), 1), 51)].into();
    assert_eq!(sim.cluster.committed_offsets("g1"), want);
    assert_steps(
        &sim,
        &["-> b0 AddOffsetsToTxn", "AddOffsetsToTxn #", "-> b1 TxnOffsetCommit", "TxnOffsetCommit #"],
    );
    assert_no_violations(&sim);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

const TOPICS: [(&str, i32); 2] = [("t0", 3), ("t1", 2)];
const GROUP: &str = "g-sim";

/// One transaction of a workload: its records (topic index, partition), whether the
/// application commits it, and whether it adds consumer offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TxnSpec {
    records: Vec<(usize, u8)>,
    commit: bool,
    offsets: bool,
}

/// Faults the simulation injects during a run. `Abortable` ones make the transaction they hit
/// uncommittable (the application then aborts it); the others heal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TxnFault {
    Reset {
        broker: Option<i32>,
        at: u64,
    },
    Lose {
        api: i16,
        count: u32,
        at: u64,
    },
    Error {
        api: i16,
        code: i16,
        count: u32,
        at: u64,
    },
    MoveCoordinator {
        to: i32,
        at: u64,
    },
    Down {
        broker: i32,
        at: u64,
        for_ms: u64,
    },
    /// AddPartitionsToTxn refuses a partition / Produce refuses a batch: abortable.
    RefusePartition {
        topic: usize,
        partition: u8,
        at: u64,
    },
    RefuseBatch {
        at: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TxnScenario {
    seed: u64,
    coordinator: i32,
    group_coordinator: i32,
    max_in_flight: u8,
    linger: u32,
    drop_per_mille: u32,
    cut_per_mille: u32,
    concurrent_after_end: u32,
    txns: Vec<TxnSpec>,
    faults: Vec<TxnFault>,
    /// Fencing: after this many transactions of the first producer, plus this many records of
    /// the next one, a second producer with the same id initializes and runs `fencer_txns`.
    fence_at: Option<(usize, usize)>,
    fencer_txns: Vec<TxnSpec>,
}

/// How one transaction ended, by the producer's reports.
#[derive(Debug, Clone)]
struct TxnRun {
    who: char,
    index: usize,
    /// Values accepted by `send`, with their partition, in send order.
    values: Vec<(String, String, i32)>,
    committed: bool,
    /// Fatal error, if the producer died in it.
    fatal: Option<TxnError>,
    offsets: Option<i64>,
}

const BROKERS: i32 = 3;

impl TxnScenario {
    fn config(&self, cluster: &SimCluster, seed: u64) -> Config {
        config(
            cluster,
            &[
                ("max.in.flight.requests.per.connection", &self.max_in_flight.to_string()),
                ("linger.ms", &self.linger.to_string()),
                ("request.timeout.ms", "3000"),
                ("socket.connection.setup.timeout.ms", "2000"),
                ("random.seed", &seed.to_string()),
            ],
        )
    }

    fn net(&self, seed: u64) -> NetConfig {
        NetConfig::lossy(seed, self.drop_per_mille, self.cut_per_mille)
    }

    fn cluster(&self) -> SimCluster {
        let mut c = cluster(BROKERS, &TOPICS, self.coordinator);
        c.coordinators_mut().group = self.group_coordinator;
        c.coordinators_mut().concurrent_after_end = self.concurrent_after_end;
        // As in sim_producer: brokers that take only small batches (splits under faults).
        if let Some(max) = std::env::var("SIM_MAX_MESSAGE_BYTES").ok().and_then(|v| v.parse().ok()) {
            c.max_message_bytes = max;
        }
        c
    }

    fn schedule(&self, sim: &mut Sim<'_>) {
        for f in &self.faults {
            match *f {
                TxnFault::Reset { broker, at } => sim.schedule(at, Fault::ResetConnections(broker)),
                TxnFault::Lose { api, count, at } => {
                    sim.schedule(at, Fault::InjectDisconnect { api_key: api, broker: None, count })
                }
                TxnFault::Error { api, code, count, at } => {
                    sim.schedule(at, Fault::InjectError { api_key: api, broker: None, code, count })
                }
                TxnFault::Down { broker, at, for_ms } => {
                    sim.schedule(at, Fault::BrokerDown(broker));
                    sim.schedule(at + for_ms, Fault::BrokerUp(broker));
                }
                // Not network faults: applied by `run_txns` when their time has come.
                TxnFault::MoveCoordinator { .. }
                | TxnFault::RefusePartition { .. }
                | TxnFault::RefuseBatch { .. } => {}
            }
        }
    }

    /// Cluster-side faults whose time has come (the harness has no `Fault` for them).
    fn apply_due(&self, sim: &mut Sim<'_>, done: &mut Vec<bool>) {
        done.resize(self.faults.len(), false);
        for (i, f) in self.faults.iter().enumerate() {
            let at = match *f {
                TxnFault::MoveCoordinator { at, .. }
                | TxnFault::RefusePartition { at, .. }
                | TxnFault::RefuseBatch { at } => at,
                _ => continue,
            };
            if done[i] || sim.now.as_millis() < at {
                continue;
            }
            done[i] = true;
            match *f {
                TxnFault::MoveCoordinator { to, .. } => sim.cluster.move_coordinator(to),
                TxnFault::RefusePartition { topic, partition, .. } => {
                    let (t, n) = TOPICS[topic];
                    sim.cluster.inject_partition_error(
                        t,
                        i32::from(partition) % n,
                        ec::TOPIC_AUTHORIZATION_FAILED,
                        1,
                    );
                }
                TxnFault::RefuseBatch { .. } => {
                    sim.cluster.inject_error(api_key::PRODUCE, None, ec::MESSAGE_TOO_LARGE, 1)
                }
                _ => {}
            }
        }
    }
}

/// Runs `txns` on `sim` as producer `who`; stops early at a fatal error, or (`stop_after`)
/// after that many records of transaction `stop_after.0` were sent, leaving it open. Returns
/// how each transaction ended (the open one last, not committed).
fn run_txns(
    s: &TxnScenario,
    sim: &mut Sim<'_>,
    (who, first_index): (char, usize),
    txns: &[TxnSpec],
    stop_after: Option<(usize, usize)>,
    faults_done: &mut Vec<bool>,
    problems: &mut Vec<String>,
) -> Vec<TxnRun> {
    let mut runs = Vec::new();
    for (index, t) in txns.iter().enumerate() {
        let index = index + first_index;
        s.apply_due(sim, faults_done);
        begin(sim);
        let mut run = TxnRun { who, index, values: Vec::new(), committed: false, fatal: None, offsets: None };
        for (k, &(topic, partition)) in t.records.iter().enumerate() {
            if stop_after == Some((index, k)) {
                runs.push(run);
                return runs;
            }
            s.apply_due(sim, faults_done);
            let (name, n) = TOPICS[topic % TOPICS.len()];
            let p = i32::from(partition) % n;
            let value = format!("{who}{index}-{k}");
            match send(sim, rec(name, p, &value)) {
                Ok(_) => run.values.push((value, name.to_string(), p)),
                Err(Refusal::NoTransaction(TxnState::AbortableError)) => break,
                Err(Refusal::Fatal(code)) => {
                    run.fatal = Some(TxnError::Fatal(code));
                    runs.push(run);
                    return runs;
                }
                Err(r) => problems.push(format!("{who}{index}: {value} refused: {r:?}")),
            }
        }
        if stop_after.is_some_and(|(i, k)| i == index && k >= t.records.len()) {
            runs.push(run);
            return runs;
        }
        s.apply_due(sim, faults_done);
        let mut outcome = Ok(());
        if t.offsets && sim.producer.transaction_state() == TxnState::InTransaction {
            let offset = (index as i64 + 1) * 10;
            let o = [TopicPartitionOffset { topic: "input", partition: 0, offset }];
            let d = deadline(sim);
            outcome = sim.transact(TxnOp::SendOffsets, d, |p, now| {
                p.send_offsets_to_transaction(now, &GroupMetadata::new(GROUP), &o)
            });
            if outcome.is_ok() {
                run.offsets = Some(offset);
            }
        }
        if t.commit && outcome.is_ok() {
            outcome = commit(sim);
            run.committed = outcome.is_ok();
        } else if outcome.is_ok() {
            outcome = Err(TxnError::InvalidState { op: TxnOp::Abort, state: TxnState::InTransaction });
        }
        match outcome {
            Ok(()) => {}
            Err(e) if e.is_fatal() || e == TxnError::Closed => {
                run.fatal = Some(e);
                runs.push(run);
                return runs;
            }
            Err(_) => match abort(sim) {
                Ok(()) => {}
                Err(e) => {
                    if !e.is_fatal() {
                        problems.push(format!("{who}{index}: abort failed: {e:?}"));
                    }
                    run.fatal = Some(e);
                    runs.push(run);
                    return runs;
                }
            },
        }
        if run.committed {
            for (v, _, _) in &run.values {
                let e = sim.ledger.entries.iter().find(|e| e.spec.value.as_deref() == Some(v.as_bytes()));
                if !e.is_some_and(|e| matches!(e.outcome, Some((_, Outcome::Delivered { .. })))) {
                    problems.push(format!("{who}{index} committed, but {v} was not reported delivered"));
                }
            }
        }
        runs.push(run);
    }
    runs
}

/// Atomicity: per partition, what `read_committed` reads is exactly the committed
/// transactions' records, each once, in send order; nothing of an aborted or unfinished one.
fn check_visibility(cluster: &SimCluster, runs: &[TxnRun], problems: &mut Vec<String>) {
    // Value ⇒ (transaction, committed, place in send order).
    let mut owner: BTreeMap<&str, (String, bool, usize)> = BTreeMap::new();
    let mut order = 0;
    for r in runs {
        for (v, _, _) in &r.values {
            owner.insert(v, (format!("{}{}", r.who, r.index), r.committed, order));
            order += 1;
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (t, n) in TOPICS {
        for p in 0..n {
            let mut last: Option<(usize, String)> = None;
            for rec in cluster.read_committed(t, p) {
                let v = String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).into_owned();
                *seen.entry(v.clone()).or_default() += 1;
                match owner.get(v.as_str()) {
                    None => problems.push(format!("{t}-{p}@{}: {v} visible, sent by nobody", rec.offset)),
                    Some((txn, false, _)) => problems
                        .push(format!("{t}-{p}@{}: {v} of {txn}, not committed, is visible", rec.offset)),
                    Some((_, true, at)) => {
                        if let Some((before, prev)) = &last {
                            if *at <= *before {
                                problems.push(format!("{t}-{p}: {v} after {prev}, against send order"));
                            }
                        }
                        last = Some((*at, v.clone()));
                    }
                }
            }
        }
    }
    for r in runs.iter().filter(|r| r.committed) {
        for (v, t, p) in &r.values {
            match seen.get(v.as_str()).copied().unwrap_or(0) {
                1 => {}
                n => {
                    problems.push(format!("{}{}: committed {v} ({t}-{p}) visible {n} times", r.who, r.index))
                }
            }
        }
    }
}

fn check_offsets(cluster: &SimCluster, runs: &[TxnRun], problems: &mut Vec<String>) {
    let want = runs.iter().filter(|r| r.committed).filter_map(|r| r.offsets).next_back();
    let got = cluster.committed_offsets(GROUP).get(&("input".to_string(), 0)).copied();
    if want != got {
        problems.push(format!("group offsets {got:?}, the last committed transaction's were {want:?}"));
    }
}

fn report(s: &TxnScenario, sims: &[&Sim<'_>], problems: Vec<String>) -> Result<(), TestCaseError> {
    let mut problems = problems;
    for sim in sims {
        problems.extend(sim.violations.iter().cloned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut tail = String::new();
    for sim in sims {
        let t = sim.transcript_text();
        let lines: Vec<&str> = t.lines().collect();
        tail.push_str(&lines[lines.len().saturating_sub(100)..].join("\n"));
        tail.push_str("\n-----\n");
    }
    Err(TestCaseError::fail(format!(
        "{} problem(s) in seed {}:\n  {}\n--- transcripts (last 100 lines each) ---\n{tail}\n{s:?}",
        problems.len(),
        s.seed,
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ")
    )))
}

impl TxnScenario {
    /// One producer runs every transaction under the faults.
    fn run_atomicity(&self) -> Result<(), TestCaseError> {
        let mut mem = memory();
        let c = self.cluster();
        let config = self.config(&c, self.seed);
        let mut sim = Sim::new(config, mem.storage(), c, self.net(self.seed)).expect("valid config");
        self.schedule(&mut sim);
        let mut problems = Vec::new();
        let mut done = Vec::new();
        if let Err(e) = init(&mut sim) {
            problems.push(format!("init failed: {e:?}"));
            return report(self, &[&sim], problems);
        }
        let runs = run_txns(self, &mut sim, ('A', 0), &self.txns, None, &mut done, &mut problems);
        for r in &runs {
            if let Some(e) = r.fatal {
                problems.push(format!("A{}: fatal {e:?} with faults that heal", r.index));
            }
        }
        sim.run_for(1000);
        if std::env::var_os("SIM_STATS").is_some() {
            let committed = runs.iter().filter(|r| r.committed && !r.values.is_empty()).count();
            let visible: usize = TOPICS
                .iter()
                .map(|(t, n)| (0..*n).map(|p| sim.cluster.read_committed(t, p).len()).sum::<usize>())
                .sum();
            eprintln!(
                "seed {}: {} transactions, {committed} committed with records, {visible} records visible, {} aborted at the coordinator",
                self.seed,
                runs.len(),
                sim.cluster.coordinators().ended.iter().filter(|e| !e.commit).count()
            );
        }
        check_visibility(&sim.cluster, &runs, &mut problems);
        check_offsets(&sim.cluster, &runs, &mut problems);
        for (t, n) in TOPICS {
            for p in 0..n {
                if sim.cluster.log(t, p).iter().any(|r| r.txn == TxnMark::Open) {
                    problems.push(format!("{t}-{p}: a transaction is left open"));
                }
            }
        }
        report(self, &[&sim], problems)
    }

    /// A zombie: producer A runs, producer B with the same id takes over mid-way; A goes on.
    ///
    /// Broker outages are left out: the simulations take turns with the cluster, and a
    /// broker's return scheduled in one would wait for its turn while the other runs.
    fn run_fencing(&self) -> Result<(), TestCaseError> {
        let mut this = self.clone();
        this.faults.retain(|f| !matches!(f, TxnFault::Down { .. }));
        this.fencing()
    }

    fn fencing(&self) -> Result<(), TestCaseError> {
        let (mut mem_a, mut mem_b) = (memory(), memory());
        let c = self.cluster();
        let config_a = self.config(&c, self.seed);
        let config_b = self.config(&c, self.seed ^ 0xb);
        let mut a = Sim::new(config_a, mem_a.storage(), c, self.net(self.seed)).expect("valid config");
        let mut b = Sim::new(config_b, mem_b.storage(), SimCluster::new(&[0]), self.net(self.seed ^ 0xb))
            .expect("valid config");
        b.set_link_base(1_000_000);
        self.schedule(&mut a);
        let mut problems = Vec::new();
        let mut done = Vec::new();
        if let Err(e) = init(&mut a) {
            problems.push(format!("A init failed: {e:?}"));
            return report(self, &[&a, &b], problems);
        }
        let (at_txn, at_record) = self.fence_at.unwrap_or((0, 0));
        let at_txn = at_txn.min(self.txns.len().saturating_sub(1));
        let mut runs =
            run_txns(self, &mut a, ('A', 0), &self.txns, Some((at_txn, at_record)), &mut done, &mut problems);
        let zombie_open = runs.last().map(|r| r.index);
        hand_over(&mut a, &mut b);
        if let Err(e) = init(&mut b) {
            problems.push(format!("B init failed: {e:?}"));
            return report(self, &[&a, &b], problems);
        }
        let b_runs = run_txns(self, &mut b, ('B', 0), &self.fencer_txns, None, &mut done, &mut problems);
        hand_over(&mut b, &mut a);
        // The zombie finishes its open transaction and tries the rest.
        let mut rest: Vec<TxnSpec> = Vec::new();
        if let Some(i) = zombie_open {
            let t = &self.txns[i];
            rest.push(TxnSpec { records: t.records[at_record.min(t.records.len())..].to_vec(), ..t.clone() });
        }
        rest.extend(self.txns[zombie_open.map_or(0, |i| i + 1)..].iter().cloned());
        // Its open transaction continues (no begin: it is open); the later ones start anew.
        let zombie = continue_open(self, &mut a, &rest, zombie_open.unwrap_or(0), &mut done, &mut problems);
        // What the zombie did after the fence: its open transaction's records and later ones.
        let open = runs.pop().expect("the open transaction");
        let mut after = zombie;
        if let Some(first) = after.first_mut() {
            let mut values = open.values.clone();
            values.append(&mut first.values);
            first.values = values;
        }
        for r in &after {
            if r.committed && !r.values.is_empty() {
                problems.push(format!(
                    "zombie A{} committed {} record(s) after the fence",
                    r.index,
                    r.values.len()
                ));
            }
        }
        let fatal = after.iter().find_map(|r| r.fatal);
        // A zombie that never reached the coordinator or a leader again (its records failed
        // unsent, its abort ended locally) need not learn of the fence; one that did must.
        let delivered_after = after.iter().flat_map(|r| &r.values).any(|(v, _, _)| {
            a.ledger.entries.iter().any(|e| {
                e.spec.value.as_deref() == Some(v.as_bytes())
                    && matches!(e.outcome, Some((_, Outcome::Delivered { .. })))
            })
        });
        match fatal {
            Some(TxnError::Fatal(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)) => {}
            None if !delivered_after && after.iter().all(|r| r.offsets.is_none()) => {}
            other => problems.push(format!("the zombie ended with {other:?}, not fenced")),
        }
        hand_over(&mut a, &mut b);
        b.run_for(1000);
        let mut all: Vec<TxnRun> = runs;
        all.extend(after.into_iter().map(|mut r| {
            r.committed = false;
            r
        }));
        all.extend(b_runs.iter().cloned());
        check_visibility(&b.cluster, &all, &mut problems);
        for r in &b_runs {
            if let Some(e) = r.fatal {
                problems.push(format!("B{}: fatal {e:?}", r.index));
            }
        }
        report(self, &[&a, &b], problems)
    }
}

/// Goes on with the open transaction (`rest[0]`'s records, then its end), then `rest[1..]`.
fn continue_open(
    s: &TxnScenario,
    sim: &mut Sim<'_>,
    rest: &[TxnSpec],
    index: usize,
    done: &mut Vec<bool>,
    problems: &mut Vec<String>,
) -> Vec<TxnRun> {
    let Some((first, later)) = rest.split_first() else { return Vec::new() };
    let mut run =
        TxnRun { who: 'A', index, values: Vec::new(), committed: false, fatal: None, offsets: None };
    for (k, &(topic, partition)) in first.records.iter().enumerate() {
        let (name, n) = TOPICS[topic % TOPICS.len()];
        let p = i32::from(partition) % n;
        let value = format!("Az{k}");
        match send(sim, rec(name, p, &value)) {
            Ok(_) => run.values.push((value, name.to_string(), p)),
            Err(_) => break,
        }
    }
    let outcome = if first.commit { commit(sim) } else { abort(sim) };
    match outcome {
        Ok(()) => run.committed = first.commit,
        Err(e) if e.is_fatal() => {
            run.fatal = Some(e);
            return vec![run];
        }
        Err(_) => {
            if let Err(e) = abort(sim) {
                run.fatal = Some(e);
                return vec![run];
            }
        }
    }
    let mut runs = vec![run];
    if sim.producer.transaction_state() == TxnState::Ready {
        runs.extend(run_txns(s, sim, ('A', index + 1), later, None, done, problems));
    }
    runs
}

fn txn_spec() -> impl Strategy<Value = TxnSpec> {
    (
        proptest::collection::vec((0usize..2, 0u8..3), 0..=6),
        proptest::bool::weighted(0.7),
        proptest::bool::weighted(0.25),
    )
        .prop_map(|(records, commit, offsets)| TxnSpec { records, commit, offsets })
}

const COORDINATOR_APIS: [i16; 6] = [
    api_key::FIND_COORDINATOR,
    api_key::INIT_PRODUCER_ID,
    api_key::ADD_PARTITIONS_TO_TXN,
    api_key::ADD_OFFSETS_TO_TXN,
    api_key::TXN_OFFSET_COMMIT,
    api_key::END_TXN,
];

fn txn_fault(horizon: u64) -> impl Strategy<Value = TxnFault> {
    let at = 0..horizon;
    let lose_apis: Vec<i16> = [&[api_key::PRODUCE, api_key::PRODUCE][..], &COORDINATOR_APIS[..]].concat();
    prop_oneof![
        2 => (proptest::option::of(0..BROKERS), at.clone()).prop_map(|(broker, at)| TxnFault::Reset { broker, at }),
        4 => (proptest::sample::select(lose_apis), 1u32..3, at.clone()).prop_map(|(api, count, at)| TxnFault::Lose { api, count, at }),
        3 => (proptest::sample::select(COORDINATOR_APIS.to_vec()),
              proptest::sample::select(vec![ec::COORDINATOR_NOT_AVAILABLE, ec::NOT_COORDINATOR, ec::CONCURRENT_TRANSACTIONS, ec::COORDINATOR_LOAD_IN_PROGRESS]),
              1u32..3, at.clone())
            .prop_map(|(api, code, count, at)| TxnFault::Error { api, code, count, at }),
        2 => (proptest::sample::select(vec![ec::NOT_LEADER_OR_FOLLOWER, ec::REQUEST_TIMED_OUT, 19i16, ec::LEADER_NOT_AVAILABLE]), 1u32..3, at.clone())
            .prop_map(|(code, count, at)| TxnFault::Error { api: api_key::PRODUCE, code, count, at }),
        1 => (0..BROKERS, at.clone()).prop_map(|(to, at)| TxnFault::MoveCoordinator { to, at }),
        1 => (0..BROKERS, at.clone(), 100u64..1500).prop_map(|(broker, at, for_ms)| TxnFault::Down { broker, at, for_ms }),
        1 => (0usize..2, 0u8..3, at.clone()).prop_map(|(topic, partition, at)| TxnFault::RefusePartition { topic, partition, at }),
        1 => at.prop_map(|at| TxnFault::RefuseBatch { at }),
    ]
}

prop_compose! {
    fn txn_scenario(max_txns: usize, max_faults: usize)(
        seed in any::<u64>(),
        coordinator in 0..BROKERS,
        group_coordinator in 0..BROKERS,
        max_in_flight in 1u8..=5,
        linger in 0u32..=10,
        drop_per_mille in 0u32..=10,
        cut_per_mille in 0u32..=10,
        concurrent_after_end in 0u32..=2,
        txns in proptest::collection::vec(txn_spec(), 1..=max_txns),
        faults in proptest::collection::vec(txn_fault(3000), 0..=max_faults),
        fence_at in proptest::option::of((0usize..4, 0usize..4)),
        fencer_txns in proptest::collection::vec(txn_spec(), 1..=2),
    ) -> TxnScenario {
        TxnScenario {
            seed, coordinator, group_coordinator, max_in_flight, linger, drop_per_mille, cut_per_mille,
            concurrent_after_end, txns, faults, fence_at, fencer_txns,
        }
    }
}

/// `n` cases from a fixed seed (as `sim_producer`'s): `PROPTEST_CASES` and `SIM_PROPTEST_SEED`
/// explore further.
fn cases(n: u32) -> ProptestConfig {
    use proptest::test_runner::RngSeed;
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    ProptestConfig {
        cases: env("PROPTEST_CASES").map_or(n, |v: u64| v as u32),
        failure_persistence: None,
        max_shrink_iters: 1000,
        max_shrink_time: 10_000,
        rng_seed: RngSeed::Fixed(env("SIM_PROPTEST_SEED").unwrap_or(0x7a5_cafe)),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// Random transactions over two topics under random faults: what `read_committed` reads
    /// is exactly the committed transactions' records, each once, in send order per
    /// partition; nothing of an aborted one; no transaction left open; the group's offsets are
    /// the last committed transaction's.
    #[test]
    fn prop_transactions_are_atomic_under_faults(s in txn_scenario(6, 6)) {
        s.run_atomicity()?;
    }

    /// A second producer with the same transactional id takes over at a random point: the
    /// first one (a zombie) is fenced, with PRODUCER_FENCED or INVALID_PRODUCER_EPOCH, as soon
    /// as it touches the transaction again; none of its records after the fence commits; what
    /// it and the new one committed is visible, atomically.
    #[test]
    fn prop_zombies_are_fenced_under_faults(s in txn_scenario(4, 4)) {
        s.run_fencing()?;
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal repros of what the property tests found
// ---------------------------------------------------------------------------------------------

#[test]
fn an_abort_answered_concurrent_transactions_is_retried() {
    let c = cluster(1, &[("a", 1)], 0);
    let config = config(&c, &[]);
    let mut mem = memory();
    let mut sim = Sim::new(config, mem.storage(), c, NetConfig::simple(15)).unwrap();
    sim.cluster.coordinators_mut().concurrent_after_end = 1;
    init(&mut sim).expect("init");
    for _ in 0..2 {
        begin(&mut sim);
        send(&mut sim, rec("a", 0, "x")).unwrap();
        abort(&mut sim).expect("abort");
    }
    assert!(all_visible(&sim.cluster).is_empty());
    assert_no_violations(&sim);
}

#[test]
fn a_zombie_whose_batches_are_refused_in_one_produce_request_does_not_panic() {
    let spec = TxnSpec { records: vec![(1, 2), (0, 0), (1, 2)], commit: false, offsets: false };
    let s = TxnScenario {
        seed: 4094361008134420920,
        coordinator: 0,
        group_coordinator: 0,
        max_in_flight: 2,
        linger: 0,
        drop_per_mille: 0,
        cut_per_mille: 0,
        concurrent_after_end: 0,
        txns: vec![spec.clone()],
        faults: vec![],
        fence_at: Some((0, 3)),
        fencer_txns: vec![TxnSpec { records: vec![], ..spec }],
    };
    s.run_fencing().unwrap();
}

#[test]
fn offsets_of_an_aborted_transaction_are_not_committed_by_the_next_one() {
    // The AddOffsetsToTxn answer and a record's failure arrive together: the group
    // FindCoordinator goes out, the offsets are cancelled, then its answer comes.
    let spec = TxnSpec { records: vec![(1, 0), (0, 0)], commit: false, offsets: false };
    let s = TxnScenario {
        seed: 1474210034435128606,
        coordinator: 0,
        group_coordinator: 0,
        max_in_flight: 2,
        linger: 0,
        drop_per_mille: 0,
        cut_per_mille: 0,
        concurrent_after_end: 2,
        txns: vec![spec],
        faults: vec![TxnFault::RefuseBatch { at: 128 }],
        fence_at: Some((0, 1)),
        fencer_txns: vec![
            TxnSpec { records: vec![(0, 0)], commit: false, offsets: true },
            TxnSpec { records: vec![(1, 0)], commit: false, offsets: false },
        ],
    };
    s.run_fencing().unwrap();
}
