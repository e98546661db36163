//! The brokers' side of transactions (KIP-98) for the simulated cluster: a transaction
//! coordinator and a group coordinator, as Apache Kafka's `TransactionCoordinator`,
//! `TransactionMetadata` and `GroupCoordinator` (its transactional offsets) answer them, plus
//! the partition leaders' part: transaction markers and KIP-890 part 1's verification of
//! transactional Produce.
//!
//! Off by default ([`SimCluster::enable_transactions`]); once on, FindCoordinator v0–v5,
//! AddPartitionsToTxn v0–v3, AddOffsetsToTxn v0–v3, TxnOffsetCommit v0–v3 and EndTxn v0–v4 are
//! advertised and answered:
//!
//! - **FindCoordinator**: key type 1 (transactional id) names the transaction coordinator, key
//!   type 0 (v0: always) the group coordinator; each is one configurable broker
//!   ([`Coordinators`]). A down coordinator is `COORDINATOR_NOT_AVAILABLE`. v4+ answers every
//!   key of `coordinator_keys`.
//! - **Coordinator requests sent to another broker** get `NOT_COORDINATOR`: moving the
//!   coordinator ([`SimCluster::move_coordinator`]) is how a client is made to look it up again.
//! - **InitProducerId** with a transactional id (also without transactions enabled, on any
//!   broker, as before): the same producer id, the epoch bumped, which fences the older epoch.
//!   An open transaction of the old epoch is aborted first, with a bumped epoch, and the call
//!   answered `CONCURRENT_TRANSACTIONS` (Kafka's `prepareFenceProducerEpoch`): the retry gets
//!   the next epoch. v3+ with an expected id/epoch: the current epoch bumps; the previous one
//!   (a retry, or the epoch the coordinator bumped itself on a timeout) gets the current; a new
//!   producer forgets the previous one, so a zombie cannot come back; anything else is fenced.
//! - **AddPartitionsToTxn**: per partition; an unknown partition is
//!   `UNKNOWN_TOPIC_OR_PARTITION` and an injected per-partition error
//!   ([`SimCluster::inject_partition_error`]) its code, the other partitions then
//!   `OPERATION_NOT_ATTEMPTED` and nothing is added, as Kafka does.
//! - **AddOffsetsToTxn** adds the group; **TxnOffsetCommit** (to the group coordinator) keeps the
//!   offsets pending: the group sees them only when the transaction commits
//!   ([`SimCluster::committed_offsets`]).
//! - **EndTxn** commits or aborts: every partition of the transaction gets a control marker (an
//!   offset in its log, as in Kafka) and the transaction's records turn committed or aborted.
//!   Retrying the end that was done succeeds; the other end is `INVALID_TXN_STATE`, as is ending
//!   no transaction. After an end (and a fence) the next [`Coordinators::concurrent_after_end`]
//!   requests of the id are `CONCURRENT_TRANSACTIONS`, as while Kafka writes the markers.
//! - **Checks of every coordinator request**, in Kafka's order: unknown transactional id or
//!   another producer id ⇒ `INVALID_PRODUCER_ID_MAPPING`; an older epoch ⇒ `PRODUCER_FENCED`
//!   (`INVALID_PRODUCER_EPOCH` before the versions of KIP-588: InitProducerId v4,
//!   AddPartitionsToTxn/AddOffsetsToTxn/EndTxn v2, TxnOffsetCommit v3).
//! - **Timeouts** (off unless [`Coordinators::abort_timed_out`]): a transaction open longer than
//!   the timeout its InitProducerId gave is aborted with a bumped epoch when next looked at.
//! - **Produce** of a transactional batch: an older epoch than the coordinator's is
//!   `INVALID_PRODUCER_EPOCH`; a partition that is not in the producer's open transaction is
//!   `INVALID_TXN_STATE` (KIP-890 part 1: the leader verifies with the coordinator).
//!
//! Each stored record carries its transaction state ([`TxnMark`]), so that a test can compute
//! what a `read_committed` consumer sees ([`SimCluster::read_committed`]: committed and
//! non-transactional records below the last stable offset).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use super::cluster::{api_key, decode_body, encode_response, error_code as ec, FaultKind, SimCluster};
use super::cluster::{port_of, HOST};

/// Where a stored record is in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnMark {
    /// Not a transactional batch's record.
    None,
    /// Its transaction has not ended: a `read_committed` consumer stops before it.
    Open,
    Committed,
    Aborted,
}

/// A transaction's phase at the coordinator (`TransactionState`, without the prepare phases:
/// markers are written at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Empty,
    Ongoing,
    CompleteCommit,
    CompleteAbort,
}

/// A transactional id's state at the coordinator (`TransactionMetadata`).
#[derive(Debug, Clone)]
pub struct TxnEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// The epoch before the last bump, while a retry of it (or the producer whose transaction
    /// timed out) may still come; forgotten when a new producer initializes.
    pub last_epoch: Option<i16>,
    pub phase: Phase,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    /// When the open transaction started (ms), and its timeout.
    pub started_ms: u64,
    pub timeout_ms: i32,
    /// Requests still to be answered `CONCURRENT_TRANSACTIONS` (markers being written).
    pub busy: u32,
}

/// How a transaction ended, in order: what the coordinator decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The epoch the markers were written with.
    pub epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<(String, i32)>,
    /// Why: `"EndTxn"`, `"fenced"` (a new producer's InitProducerId) or `"timeout"`.
    pub why: &'static str,
}

/// The coordinators' settings and state.
#[derive(Debug, Clone, Default)]
pub struct Coordinators {
    pub enabled: bool,
    /// The transaction coordinator of every transactional id.
    pub transaction: i32,
    /// The group coordinator of every group.
    pub group: i32,
    /// Abort transactions open longer than their timeout.
    pub abort_timed_out: bool,
    /// After a transaction ends, this many coordinator requests of its id are answered
    /// `CONCURRENT_TRANSACTIONS`.
    pub concurrent_after_end: u32,
    pub(crate) ids: BTreeMap<String, TxnEntry>,
    /// (topic, partition) ⇒ (error code, requests left) for AddPartitionsToTxn.
    partition_faults: Vec<(String, i32, i16, u32)>,
    /// Group ⇒ offsets committed.
    committed: BTreeMap<String, BTreeMap<(String, i32), i64>>,
    /// (group, producer id) ⇒ offsets of its open transaction.
    pending: BTreeMap<(String, i64), BTreeMap<(String, i32), i64>>,
    /// Every transaction that ended.
    pub ended: Vec<Ended>,
}

/// The epoch error of a request version: `PRODUCER_FENCED` from the version KIP-588 added.
fn fenced_code(fenced_from: i16, version: i16) -> i16 {
    if version >= fenced_from {
        ec::PRODUCER_FENCED
    } else {
        ec::INVALID_PRODUCER_EPOCH
    }
}

impl SimCluster {
    /// Turns the coordinators on, both on broker `coordinator`: FindCoordinator, the
    /// transaction APIs and Produce verification. See [`super::txn`].
    pub fn enable_transactions(&mut self, coordinator: i32) {
        assert!(self.broker_ids().contains(&coordinator), "no broker {coordinator}");
        self.versions.insert(api_key::FIND_COORDINATOR, (0, 5));
        self.versions.insert(api_key::ADD_PARTITIONS_TO_TXN, (0, 3));
        self.versions.insert(api_key::ADD_OFFSETS_TO_TXN, (0, 3));
        self.versions.insert(api_key::TXN_OFFSET_COMMIT, (0, 3));
        self.versions.insert(api_key::END_TXN, (0, 4));
        self.txn.enabled = true;
        self.txn.transaction = coordinator;
        self.txn.group = coordinator;
    }

    /// The coordinators' settings and state.
    pub fn coordinators(&self) -> &Coordinators {
        &self.txn
    }

    pub fn coordinators_mut(&mut self) -> &mut Coordinators {
        &mut self.txn
    }

    /// The transaction coordinator moves to `broker` (the group coordinator stays): requests
    /// still sent to the old one get `NOT_COORDINATOR`.
    pub fn move_coordinator(&mut self, broker: i32) {
        assert!(self.broker_ids().contains(&broker), "no broker {broker}");
        self.txn.transaction = broker;
    }

    /// The next `count` AddPartitionsToTxn requests naming `topic`-`partition` get `code` for
    /// it (and `OPERATION_NOT_ATTEMPTED` for the others).
    pub fn inject_partition_error(&mut self, topic: &str, partition: i32, code: i16, count: u32) {
        self.txn.partition_faults.push((topic.to_string(), partition, code, count));
    }

    /// A transactional id's state at the coordinator.
    pub fn transaction(&self, transactional_id: &str) -> Option<&TxnEntry> {
        self.txn.ids.get(transactional_id)
    }

    /// Offsets the group has committed (transactional offsets count once their transaction
    /// committed).
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<(String, i32), i64> {
        self.txn.committed.get(group).cloned().unwrap_or_default()
    }

    /// Offsets of open transactions for `group`, by producer id.
    pub fn pending_offsets(&self, group: &str) -> BTreeMap<i64, BTreeMap<(String, i32), i64>> {
        self.txn
            .pending
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, pid), o)| (*pid, o.clone()))
            .collect()
    }

    /// Offsets of the control markers in a partition's log.
    pub fn markers(&self, topic: &str, partition: i32) -> Vec<(i64, i64, bool)> {
        self.partition(topic, partition).map_or_else(Vec::new, |p| p.markers.clone())
    }

    /// The last stable offset: the first offset of an open transaction, else the log end.
    pub fn last_stable_offset(&self, topic: &str, partition: i32) -> i64 {
        let Some(p) = self.partition(topic, partition) else { return 0 };
        p.records.iter().find(|r| r.txn == TxnMark::Open).map_or(p.next_offset, |r| r.offset)
    }

    /// What a `read_committed` consumer reads of a partition now: records below the last stable
    /// offset that are not transactional or whose transaction committed.
    pub fn read_committed(&self, topic: &str, partition: i32) -> Vec<&super::StoredRecord> {
        let lso = self.last_stable_offset(topic, partition);
        self.log(topic, partition)
            .iter()
            .filter(|r| r.offset < lso && matches!(r.txn, TxnMark::None | TxnMark::Committed))
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Coordinator state
    // -----------------------------------------------------------------------------------------

    /// Ends `tid`'s open transaction: markers on its partitions (with `epoch`), offsets
    /// published or dropped.
    fn end_transaction(&mut self, tid: &str, commit: bool, epoch: i16, why: &'static str) {
        let entry = self.txn.ids.get_mut(tid).expect("ending a known transaction");
        let pid = entry.producer_id;
        let partitions = std::mem::take(&mut entry.partitions);
        let groups = std::mem::take(&mut entry.groups);
        entry.phase = if commit { Phase::CompleteCommit } else { Phase::CompleteAbort };
        entry.busy = self.txn.concurrent_after_end;
        for (topic, index) in &partitions {
            let Some(p) = self.partition_mut(topic, *index) else { continue };
            let mark = if commit { TxnMark::Committed } else { TxnMark::Aborted };
            for r in p.records.iter_mut().filter(|r| r.producer_id == pid && r.txn == TxnMark::Open) {
                r.txn = mark;
            }
            let offset = p.next_offset;
            p.next_offset += 1;
            p.markers.push((offset, pid, commit));
            // The marker carries the epoch: the partition's producer state moves to it, which
            // fences older epochs at the leader.
            if let Some(state) = p.producers.get_mut(&pid) {
                if state.epoch < epoch {
                    state.epoch = epoch;
                    state.batches.clear();
                }
            }
        }
        for g in groups {
            if let Some(offsets) = self.txn.pending.remove(&(g.clone(), pid)) {
                if commit {
                    self.txn.committed.entry(g).or_default().extend(offsets);
                }
            }
        }
        self.txn.ended.push(Ended {
            transactional_id: tid.to_string(),
            producer_id: pid,
            epoch,
            commit,
            partitions,
            why,
        });
    }

    /// Aborts `tid`'s transaction if it timed out (with a bumped epoch, as Kafka's
    /// `abortTimedOutTransactions`).
    fn expire(&mut self, tid: &str) {
        let now = self.now_ms;
        let Some(e) = self.txn.ids.get_mut(tid) else { return };
        if !self.txn.abort_timed_out
            || e.phase != Phase::Ongoing
            || now < e.started_ms + e.timeout_ms.max(0) as u64
        {
            return;
        }
        e.last_epoch = Some(e.epoch);
        e.epoch += 1;
        let epoch = e.epoch;
        self.end_transaction(tid, false, epoch, "timeout");
    }

    /// The coordinator's checks of a request naming `tid`, producer id and epoch.
    fn check_producer(&mut self, tid: &str, pid: i64, epoch: i16, fenced: i16) -> Result<(), i16> {
        self.expire(tid);
        let Some(e) = self.txn.ids.get_mut(tid) else { return Err(ec::INVALID_PRODUCER_ID_MAPPING) };
        if e.producer_id != pid {
            return Err(ec::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch < e.epoch {
            return Err(fenced);
        }
        if epoch > e.epoch {
            return Err(ec::INVALID_PRODUCER_EPOCH);
        }
        if e.busy > 0 {
            e.busy -= 1;
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        Ok(())
    }

    fn start_if_idle(&mut self, tid: &str) {
        let now = self.now_ms;
        let e = self.txn.ids.get_mut(tid).expect("checked");
        if e.phase != Phase::Ongoing {
            e.phase = Phase::Ongoing;
            e.started_ms = now;
        }
    }

    fn injected(&mut self, api: i16, broker: i32) -> (Option<i16>, bool) {
        match self.take_fault(api, broker) {
            Some(FaultKind::Error(code)) => (Some(code), false),
            Some(FaultKind::Disconnect) => (None, true),
            None => (None, false),
        }
    }

    fn answer(
        lost: bool,
        what: &str,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &impl kafka_protocol::protocol::Encodable,
    ) -> Result<Option<Vec<u8>>, String> {
        if lost {
            return Err(format!("injected disconnect after {what}"));
        }
        Ok(Some(encode_response(api, version, correlation_id, body)))
    }

    // -----------------------------------------------------------------------------------------
    // InitProducerId
    // -----------------------------------------------------------------------------------------

    /// InitProducerId with transactional id `tid`: the producer id and epoch, or an error code.
    /// `expected`: (producer id, epoch) of a v3+ request that names them.
    pub(crate) fn txn_init_producer_id(
        &mut self,
        broker: i32,
        version: i16,
        tid: &str,
        expected: Option<(i64, i16)>,
        timeout_ms: i32,
    ) -> Result<(i64, i16), i16> {
        if self.txn.enabled && broker != self.txn.transaction {
            return Err(ec::NOT_COORDINATOR);
        }
        let fenced = fenced_code(4, version);
        self.expire(tid);
        let Some(e) = self.txn.ids.get(tid).cloned() else {
            let id = self.new_producer_id();
            self.txn.ids.insert(
                tid.to_string(),
                TxnEntry {
                    producer_id: id,
                    epoch: 0,
                    last_epoch: None,
                    phase: Phase::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    started_ms: 0,
                    timeout_ms,
                    busy: 0,
                },
            );
            return Ok((id, 0));
        };
        if e.busy > 0 {
            self.txn.ids.get_mut(tid).expect("known").busy -= 1;
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        // TransactionCoordinator.handleInitProducerId: which epoch the caller may continue.
        let retry = match expected {
            None => false,
            Some((xid, _)) if xid != e.producer_id => return Err(fenced),
            Some((_, xepoch)) if xepoch == e.epoch => false,
            Some((_, xepoch)) if e.last_epoch == Some(xepoch) => true,
            Some(_) => return Err(fenced),
        };
        if retry {
            return Ok((e.producer_id, e.epoch));
        }
        if e.phase == Phase::Ongoing {
            // Fence the open transaction's producer: abort it with a bumped epoch, and let the
            // caller retry while the markers are written.
            let entry = self.txn.ids.get_mut(tid).expect("known");
            entry.epoch += 1;
            entry.last_epoch = None;
            let epoch = entry.epoch;
            self.end_transaction(tid, false, epoch, "fenced");
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        let entry = self.txn.ids.get_mut(tid).expect("known");
        entry.timeout_ms = timeout_ms;
        if entry.epoch >= i16::MAX - 1 {
            let id = self.new_producer_id();
            let entry = self.txn.ids.get_mut(tid).expect("known");
            entry.producer_id = id;
            entry.epoch = 0;
            entry.last_epoch = None;
            return Ok((id, 0));
        }
        entry.last_epoch = expected.map(|(_, epoch)| epoch);
        entry.epoch += 1;
        entry.phase = Phase::Empty;
        Ok((entry.producer_id, entry.epoch))
    }

    // -----------------------------------------------------------------------------------------
    // FindCoordinator
    // -----------------------------------------------------------------------------------------

    pub(crate) fn find_coordinator(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: FindCoordinatorRequest = decode_body(frame, version, "FindCoordinator")?;
        let (injected, lost) = self.injected(api_key::FIND_COORDINATOR, broker);
        let key_type = if version == 0 { 0 } else { req.key_type };
        let answer = |c: &Self, key: &StrBytes| -> Coordinator {
            let node = match key_type {
                0 => Some(c.txn.group),
                1 => Some(c.txn.transaction),
                _ => None,
            };
            let base = Coordinator::default().with_key(key.clone());
            match (injected, node) {
                (Some(code), _) => base.with_error_code(code).with_node_id((-1).into()).with_port(-1),
                (None, None) => {
                    base.with_error_code(ec::INVALID_REQUEST).with_node_id((-1).into()).with_port(-1)
                }
                (None, Some(n)) if !c.is_up(n) => base
                    .with_error_code(ec::COORDINATOR_NOT_AVAILABLE)
                    .with_node_id((-1).into())
                    .with_port(-1),
                (None, Some(n)) => base
                    .with_node_id(n.into())
                    .with_host(StrBytes::from_static_str(HOST))
                    .with_port(i32::from(port_of(n))),
            }
        };
        let body = if version >= 4 {
            let coordinators = req.coordinator_keys.iter().map(|k| answer(self, k)).collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            let c = answer(self, &req.key);
            FindCoordinatorResponse::default()
                .with_error_code(c.error_code)
                .with_error_message(None)
                .with_node_id(c.node_id)
                .with_host(c.host)
                .with_port(c.port)
        };
        Self::answer(lost, "FindCoordinator", ApiKey::FindCoordinator, version, correlation_id, &body)
    }

    // -----------------------------------------------------------------------------------------
    // AddPartitionsToTxn, AddOffsetsToTxn
    // -----------------------------------------------------------------------------------------

    pub(crate) fn add_partitions_to_txn(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: AddPartitionsToTxnRequest = decode_body(frame, version, "AddPartitionsToTxn")?;
        let (injected, lost) = self.injected(api_key::ADD_PARTITIONS_TO_TXN, broker);
        let tid = req.v3_and_below_transactional_id.0.to_string();
        let asked: Vec<(String, i32)> = req
            .v3_and_below_topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.name.0.to_string(), p)))
            .collect();
        // One code for all, or per partition.
        let all: Option<i16> = match injected {
            Some(code) => Some(code),
            None if broker != self.txn.transaction => Some(ec::NOT_COORDINATOR),
            None => self
                .check_producer(
                    &tid,
                    req.v3_and_below_producer_id.0,
                    req.v3_and_below_producer_epoch,
                    fenced_code(2, version),
                )
                .err(),
        };
        let mut codes: Vec<i16> = match all {
            Some(code) => vec![code; asked.len()],
            None => {
                let mut codes: Vec<i16> = asked
                    .iter()
                    .map(|(t, p)| {
                        if self.partition(t, *p).is_some() {
                            ec::NONE
                        } else {
                            ec::UNKNOWN_TOPIC_OR_PARTITION
                        }
                    })
                    .collect();
                for (i, (t, p)) in asked.iter().enumerate() {
                    if let Some(f) =
                        self.txn.partition_faults.iter_mut().find(|f| f.0 == *t && f.1 == *p && f.3 > 0)
                    {
                        f.3 -= 1;
                        codes[i] = f.2;
                    }
                }
                self.txn.partition_faults.retain(|f| f.3 > 0);
                codes
            }
        };
        if all.is_none() {
            if codes.iter().any(|&c| c != ec::NONE) {
                for c in &mut codes {
                    if *c == ec::NONE {
                        *c = ec::OPERATION_NOT_ATTEMPTED;
                    }
                }
            } else {
                self.start_if_idle(&tid);
                let e = self.txn.ids.get_mut(&tid).expect("checked");
                e.partitions.extend(asked.iter().cloned());
            }
        }
        let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
        for ((t, p), code) in asked.iter().zip(codes) {
            by_topic.entry(t.clone()).or_default().push(
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(*p)
                    .with_partition_error_code(code),
            );
        }
        let results = by_topic
            .into_iter()
            .map(|(t, r)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(super::cluster::topic_name(&t))
                    .with_results_by_partition(r)
            })
            .collect();
        let body = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
        Self::answer(lost, "AddPartitionsToTxn", ApiKey::AddPartitionsToTxn, version, correlation_id, &body)
    }

    pub(crate) fn add_offsets_to_txn(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: AddOffsetsToTxnRequest = decode_body(frame, version, "AddOffsetsToTxn")?;
        let (injected, lost) = self.injected(api_key::ADD_OFFSETS_TO_TXN, broker);
        let tid = req.transactional_id.0.to_string();
        let result = match injected {
            Some(code) => Err(code),
            None if broker != self.txn.transaction => Err(ec::NOT_COORDINATOR),
            None => self.check_producer(&tid, req.producer_id.0, req.producer_epoch, fenced_code(2, version)),
        };
        let code = match result {
            Ok(()) => {
                self.start_if_idle(&tid);
                let e = self.txn.ids.get_mut(&tid).expect("checked");
                e.groups.insert(req.group_id.0.to_string());
                ec::NONE
            }
            Err(code) => code,
        };
        let body = AddOffsetsToTxnResponse::default().with_error_code(code);
        Self::answer(lost, "AddOffsetsToTxn", ApiKey::AddOffsetsToTxn, version, correlation_id, &body)
    }

    // -----------------------------------------------------------------------------------------
    // TxnOffsetCommit
    // -----------------------------------------------------------------------------------------

    pub(crate) fn txn_offset_commit(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: TxnOffsetCommitRequest = decode_body(frame, version, "TxnOffsetCommit")?;
        let (injected, lost) = self.injected(api_key::TXN_OFFSET_COMMIT, broker);
        let tid = req.transactional_id.0.to_string();
        let group = req.group_id.0.to_string();
        let pid = req.producer_id.0;
        let result = match injected {
            Some(code) => Err(code),
            None if broker != self.txn.group => Err(ec::NOT_COORDINATOR),
            None => {
                self.expire(&tid);
                match self.txn.ids.get(&tid) {
                    None => Err(ec::INVALID_PRODUCER_ID_MAPPING),
                    Some(e) if e.producer_id != pid => Err(ec::INVALID_PRODUCER_ID_MAPPING),
                    Some(e) if req.producer_epoch < e.epoch => Err(fenced_code(3, version)),
                    // The group was not added to the open transaction (KIP-890's check).
                    Some(e) if e.phase != Phase::Ongoing || !e.groups.contains(&group) => {
                        Err(ec::INVALID_TXN_STATE)
                    }
                    Some(_) => Ok(()),
                }
            }
        };
        if result.is_ok() {
            let pending = self.txn.pending.entry((group.clone(), pid)).or_default();
            for t in &req.topics {
                for p in &t.partitions {
                    pending.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        let code = result.err().unwrap_or(ec::NONE);
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
            })
            .collect();
        let body = TxnOffsetCommitResponse::default().with_topics(topics);
        Self::answer(lost, "TxnOffsetCommit", ApiKey::TxnOffsetCommit, version, correlation_id, &body)
    }

    // -----------------------------------------------------------------------------------------
    // EndTxn
    // -----------------------------------------------------------------------------------------

    pub(crate) fn end_txn(
        &mut self,
        broker: i32,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<Option<Vec<u8>>, String> {
        let req: EndTxnRequest = decode_body(frame, version, "EndTxn")?;
        let (injected, lost) = self.injected(api_key::END_TXN, broker);
        let tid = req.transactional_id.0.to_string();
        let commit = req.committed;
        let result = match injected {
            Some(code) => Err(code),
            None if broker != self.txn.transaction => Err(ec::NOT_COORDINATOR),
            None => self.check_producer(&tid, req.producer_id.0, req.producer_epoch, fenced_code(2, version)),
        };
        let code = match result {
            Err(code) => code,
            Ok(()) => {
                let e = &self.txn.ids[&tid];
                match (e.phase, commit) {
                    (Phase::Ongoing, _) => {
                        let epoch = e.epoch;
                        self.end_transaction(&tid, commit, epoch, "EndTxn");
                        ec::NONE
                    }
                    // A retry of the end that was done.
                    (Phase::CompleteCommit, true) | (Phase::CompleteAbort, false) => ec::NONE,
                    _ => ec::INVALID_TXN_STATE,
                }
            }
        };
        let body = EndTxnResponse::default().with_error_code(code);
        Self::answer(lost, "EndTxn", ApiKey::EndTxn, version, correlation_id, &body)
    }

    // -----------------------------------------------------------------------------------------
    // Produce
    // -----------------------------------------------------------------------------------------

    /// KIP-890 part 1: the leader asks the coordinator whether producer `pid`'s transaction
    /// holds `topic`-`partition` before appending a transactional batch.
    pub(crate) fn verify_transactional(
        &mut self,
        topic: &str,
        partition: i32,
        pid: i64,
        epoch: i16,
    ) -> Result<(), i16> {
        let Some(tid) = self.txn.ids.iter().find(|(_, e)| e.producer_id == pid).map(|(t, _)| t.clone())
        else {
            return Err(ec::INVALID_TXN_STATE);
        };
        self.expire(&tid);
        let e = &self.txn.ids[&tid];
        if epoch < e.epoch {
            return Err(ec::INVALID_PRODUCER_EPOCH);
        }
        if epoch > e.epoch
            || e.phase != Phase::Ongoing
            || !e.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(ec::INVALID_TXN_STATE);
        }
        Ok(())
    }
}
