//! A transaction's way: `init_transactions` (FindCoordinator, InitProducerId with the
//! transactional id), `begin_transaction`, each new partition added (AddPartitionsToTxn) before
//! its batches go, consumer offsets added (AddOffsetsToTxn, then TxnOffsetCommit to the group's
//! coordinator), and `commit_transaction` / `abort_transaction` (every batch resolved, then
//! EndTxn). On a cluster whose `transaction.version` is 2 (KIP-890 part 2) the broker adds
//! partitions and offsets itself (Produce v12, TxnOffsetCommit v5) and EndTxn v5 hands out the
//! next epoch. Errors are told apart as the Java client does: retried (the coordinator loading,
//! moving, or busy with the previous transaction), abortable (the application aborts and goes
//! on), fatal (fenced, unauthorized).
// Without feature `transactions` nothing here is reached (see `Transactions::is_on`).
#![cfg_attr(not(feature = "transactions"), allow(dead_code))]

use heapless::String;

use super::batches::BatchStatus;
use super::connections::{ConnState, InFlight, RequestKind};
use super::transactions::{Membership, Progress, TxnError, TxnOp, TxnRequest, TxnState};
use super::txn_offsets::{GroupMetadata, TopicPartitionOffset};
use super::Producer;
use crate::error::DeliveryError;
use crate::protocol::add_offsets_to_txn::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use crate::protocol::add_partitions_to_txn::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use crate::protocol::end_txn::{EndTxnRequest, EndTxnResponse};
use crate::protocol::find_coordinator::{CoordinatorType, FindCoordinatorRequest, FindCoordinatorResponse};
use crate::protocol::header::encode_request;
use crate::protocol::txn_offset_commit::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use crate::protocol::{DecodeError, ErrorCode, Writer};
use crate::time::{Duration, Instant};

/// How a coordinator's error code is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Ask again after a backoff; `lost`: find the coordinator first.
    Retry {
        lost: bool,
    },
    /// The transaction cannot commit; the producer goes on once it is aborted.
    Abortable,
    Fatal,
}

fn classify(code: ErrorCode) -> Class {
    match code {
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => Class::Retry { lost: true },
        // CONCURRENT_TRANSACTIONS (the previous transaction still completing),
        // COORDINATOR_LOAD_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION, REQUEST_TIMED_OUT, ...
        code if code.is_retriable() => Class::Retry { lost: false },
        ErrorCode::TopicAuthorizationFailed
        | ErrorCode::GroupAuthorizationFailed
        | ErrorCode::TransactionAbortable
        | ErrorCode::UnknownMemberId
        | ErrorCode::IllegalGeneration
        // TxnOffsetCommit's: the consumer is no longer the group's member (the Java client's
        // CommitFailedException, abortable).
        | ErrorCode::GroupIdNotFound
        | ErrorCode::StaleMemberEpoch
        | ErrorCode::FencedInstanceId
        | ErrorCode::OperationNotAttempted => Class::Abortable,
        // PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        // INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING, UNSUPPORTED_VERSION, ...
        _ => Class::Fatal,
    }
}

impl<'a> Producer<'a> {
    /// Starts `init_transactions`: finds the transaction coordinator and gets a producer id and
    /// epoch for `transactional.id`, which fences any older producer with that id and completes
    /// (aborts) a transaction it left open. [`Event::Transaction`](super::Event::Transaction)
    /// with [`TxnOp::Init`] reports the end. Calling it again while it runs goes on with it.
    pub fn init_transactions(&mut self, now: Instant) -> Result<(), TxnError> {
        self.txn.init()?;
        if self.txn.state() == TxnState::Initializing && !self.idempotence.is_wanted() {
            self.idempotence.want_first();
        }
        self.schedule(now);
        Ok(())
    }

    /// Opens a transaction: records sent from now on belong to it. Local: the coordinator hears
    /// of it with its first partition.
    pub fn begin_transaction(&mut self) -> Result<(), TxnError> {
        self.txn.begin()
    }

    /// Adds the consumer's `offsets` (the next offset to read, per partition) to the open
    /// transaction, so that they are committed with it, atomically: consume-transform-produce.
    /// Reported by [`Event::Transaction`](super::Event::Transaction) with [`TxnOp::SendOffsets`].
    pub fn send_offsets_to_transaction(
        &mut self,
        now: Instant,
        group: &GroupMetadata<'_>,
        offsets: &[TopicPartitionOffset<'_>],
    ) -> Result<(), TxnError> {
        self.txn.may_send_offsets()?;
        if offsets.is_empty() {
            // Nothing to add, as the Java client: done at once.
            return Ok(());
        }
        self.txn.offsets.store(group, offsets).map_err(TxnError::Capacity)?;
        self.txn.offsets_queued();
        if self.txn.implicit_add() {
            // KIP-890 part 2: TxnOffsetCommit v5 adds the group; no AddOffsetsToTxn.
            self.txn.offsets.added();
            self.txn.joined(now);
        }
        self.schedule(now);
        Ok(())
    }

    /// Starts `commit_transaction`: every record of the transaction is sent (as by `flush`)
    /// and acknowledged, then the coordinator commits it. A record that failed fails the commit
    /// with [`TxnError::RecordFailed`]: abort then. Reported by
    /// [`Event::Transaction`](super::Event::Transaction) with [`TxnOp::Commit`]; calling it
    /// again while it runs goes on with it.
    pub fn commit_transaction(&mut self, now: Instant) -> Result<(), TxnError> {
        self.txn.commit()?;
        self.flush(now);
        Ok(())
    }

    /// Starts `abort_transaction`: records of the transaction not yet sent fail with
    /// [`DeliveryError::Aborted`], those in flight are waited for, then the coordinator aborts
    /// the transaction (read_committed consumers never see its records). Reported by
    /// [`Event::Transaction`](super::Event::Transaction) with [`TxnOp::Abort`].
    pub fn abort_transaction(&mut self, now: Instant) -> Result<(), TxnError> {
        self.txn.abort()?;
        self.abort_unsent();
        self.schedule(now);
        Ok(())
    }

    /// Where the transactional producer is ([`TxnState::Uninitialized`] without a
    /// `transactional.id`).
    pub fn transaction_state(&self) -> TxnState {
        self.txn.state()
    }

    /// Why the open transaction cannot commit, or why the producer cannot go on: a record sent
    /// in [`TxnState::AbortableError`] is refused, and this names the cause.
    pub fn transaction_error(&self) -> Option<TxnError> {
        self.txn.error()
    }

    /// Records of the aborting transaction that were never sent fail; partitions they alone
    /// were waiting to add to the transaction leave it.
    pub(super) fn abort_unsent(&mut self) {
        for b in self.batches.ids() {
            let s = &self.batches[b];
            let unsent = match s.status {
                BatchStatus::Open | BatchStatus::Closed => true,
                BatchStatus::Sealed => !s.sent,
                _ => false,
            };
            if unsent {
                self.fail_batch(b, DeliveryError::Aborted);
            }
        }
        for pi in 0..self.partitions.len() {
            if self.partitions[pi].txn == Membership::Pending {
                self.partitions[pi].txn = Membership::Outside;
            }
        }
        if self.txn.needs_bump() && self.txn.started_at().is_none() {
            self.idempotence.request_new_id();
        }
    }

    /// A record goes to partition slot `slot`: in a transaction, the partition joins it; under
    /// KIP-890 part 2 at once (its first Produce adds it), as the Java client marks it.
    pub(super) fn join_transaction(&mut self, now: Instant, slot: usize) {
        if self.txn.is_on() && self.partitions[slot].txn == Membership::Outside {
            if self.txn.implicit_add() {
                self.partitions[slot].txn = Membership::Added;
                self.txn.joined(now);
            } else {
                self.partitions[slot].txn = Membership::Pending;
            }
        }
    }

    /// Whether partition slot `pi`'s batches may be sent: outside transactions always; in one,
    /// once the coordinator added the partition.
    pub(super) fn txn_allows(&self, pi: usize) -> bool {
        !self.txn.is_on() || self.partitions[pi].txn == Membership::Added
    }

    fn txn_progress(&self) -> Progress {
        Progress {
            pending_partitions: self.partitions.iter().any(|p| p.txn == Membership::Pending),
            batches_resolved: self.batches.batch_count() == self.batches.done_count()
                && !self.batches.holding(),
            producer_id_wanted: self.idempotence.is_wanted(),
        }
    }

    /// After any change: ends a commit or abort the coordinator need not hear of.
    pub(super) fn txn_step(&mut self) {
        if !self.txn.is_on() {
            return;
        }
        let progress = self.txn_progress();
        let state = self.txn.state();
        self.txn.complete_locally(progress);
        if state != self.txn.state() && self.txn.state() == TxnState::Ready {
            self.leave_transaction();
        }
    }

    /// Every partition leaves the ended transaction.
    fn leave_transaction(&mut self) {
        for pi in 0..self.partitions.len() {
            self.partitions[pi].txn = Membership::Outside;
        }
    }

    /// The connection a coordinator request goes on: FindCoordinator on any ready one, the
    /// others on their coordinator's.
    fn txn_conn(&self, request: TxnRequest) -> Option<usize> {
        let node = match request {
            TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => return self.control_conn(),
            TxnRequest::CommitOffsets => self.txn.offsets.group_node()?,
            _ => self.txn.coordinator()?,
        };
        self.conns.of_node(node)
    }

    /// Whether a coordinator lookup waits for a connection (any broker will do).
    pub(super) fn txn_needs_control(&self, now: Instant) -> bool {
        self.txn.is_on()
            && matches!(
                self.txn.next_request(now, self.txn_progress()),
                Some(TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator)
            )
    }

    /// Whether broker `node` is a coordinator with work for it (its connection is opened).
    pub(super) fn txn_needs_node(&self, node: i32) -> bool {
        self.txn.uses_node(node) && self.txn.has_work(self.txn_progress())
    }

    /// When a coordinator request that waits for a backoff is due, if its connection can
    /// carry it then.
    pub(super) fn txn_deadline(&self) -> Option<Instant> {
        let at = self.txn.next_attempt()?;
        let request = self.txn.next_request(at, self.txn_progress())?;
        let i = self.txn_conn(request)?;
        (self.conns[i].state == ConnState::Ready && self.can_start(i)).then_some(at)
    }

    /// The coordinator request connection `i` should carry now, if any.
    pub(super) fn next_txn_request(&mut self, now: Instant, i: usize) -> Option<(RequestKind, i16)> {
        if !self.txn.is_on() {
            return None;
        }
        let request = self.txn.next_request(now, self.txn_progress())?;
        if self.txn_conn(request) != Some(i) {
            return None;
        }
        if request == TxnRequest::InitProducerId && self.any_produce_in_flight() {
            // An epoch bump waits for every Produce in flight to come back.
            return None;
        }
        let v = self.conns[i].versions;
        let (kind, version) = match request {
            TxnRequest::FindCoordinator => {
                (RequestKind::FindCoordinator { group: false }, v.txn.find_coordinator)
            }
            TxnRequest::FindGroupCoordinator => {
                (RequestKind::FindCoordinator { group: true }, v.txn.find_coordinator)
            }
            TxnRequest::InitProducerId => {
                let bump_current = v.init_producer_id >= 3;
                let (producer_id, epoch) = self.idempotence.start_request(bump_current);
                (RequestKind::InitProducerId { producer_id, epoch }, v.init_producer_id)
            }
            TxnRequest::AddPartitions => (RequestKind::AddPartitionsToTxn, v.txn.add_partitions),
            TxnRequest::AddOffsets => (RequestKind::AddOffsetsToTxn, v.txn.add_offsets),
            // The classic protocol must not use the versions that imply KIP-890 part 2.
            TxnRequest::CommitOffsets => {
                (RequestKind::TxnOffsetCommit, self.txn_version(v.txn.txn_offset_commit, 4))
            }
            TxnRequest::EndTxn { commit } => {
                (RequestKind::EndTxn { commit }, self.txn_version(v.txn.end_txn, 4))
            }
        };
        if version < 0 {
            warn!("{}:{} lacks a transaction API", self.conns[i].host.as_str(), self.conns[i].port);
            self.txn_fatal(ErrorCode::UnsupportedVersion);
            return None;
        }
        if request == TxnRequest::AddPartitions {
            for pi in 0..self.partitions.len() {
                if self.partitions[pi].txn == Membership::Pending {
                    self.partitions[pi].txn = Membership::Adding;
                }
            }
        }
        self.txn.sent(request);
        Some((kind, version))
    }

    /// `negotiated`, or at most `classic_max` unless the transaction protocol is KIP-890's.
    pub(super) fn txn_version(&self, negotiated: i16, classic_max: i16) -> i16 {
        if self.txn.is_on() && !self.txn.implicit_add() {
            negotiated.min(classic_max)
        } else {
            negotiated
        }
    }

    /// Encodes a coordinator request.
    pub(super) fn encode_txn(&self, w: &mut Writer<'_>, request: &InFlight, client_id: Option<&str>) {
        let transactional_id = self.config.transactional_id.as_deref().unwrap_or("");
        let (producer_id, producer_epoch) = self.idempotence.identity();
        let (id, v) = (request.correlation_id, request.version);
        let offsets = &self.txn.offsets;
        match request.kind {
            RequestKind::FindCoordinator { group } => {
                let body = if group {
                    FindCoordinatorRequest { key_type: CoordinatorType::Group, key: &offsets.group_id }
                } else {
                    FindCoordinatorRequest { key_type: CoordinatorType::Transaction, key: transactional_id }
                };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::AddPartitionsToTxn => {
                let adding = |pi: usize| self.partitions[pi].txn == Membership::Adding;
                let n = self.partitions.len();
                // Each topic once, at its first partition being added; partitions of a topic
                // are contiguous slots.
                let topics = (0..n)
                    .filter(move |&pi| {
                        adding(pi)
                            && (pi == 0
                                || self.partitions[pi - 1].topic != self.partitions[pi].topic
                                || !adding(pi - 1))
                    })
                    .map(move |pi| {
                        let topic = self.partitions[pi].topic;
                        let name = self.topics[usize::from(topic)].name.as_str();
                        let parts = (pi..n)
                            .take_while(move |&q| self.partitions[q].topic == topic)
                            .filter(move |&q| adding(q))
                            .map(move |q| self.partitions[q].partition);
                        (name, parts)
                    });
                let body =
                    AddPartitionsToTxnRequest { transactional_id, producer_id, producer_epoch, topics };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::AddOffsetsToTxn => {
                let body = AddOffsetsToTxnRequest {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    group_id: &offsets.group_id,
                };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::TxnOffsetCommit => {
                let body = TxnOffsetCommitRequest {
                    transactional_id,
                    group_id: &offsets.group_id,
                    producer_id,
                    producer_epoch,
                    generation_id: offsets.generation_id,
                    member_id: &offsets.member_id,
                    group_instance_id: offsets.group_instance_id.as_deref(),
                    topics: offsets.by_topic(),
                };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::EndTxn { commit } => {
                let body = EndTxnRequest { transactional_id, producer_id, producer_epoch, committed: commit };
                encode_request(w, v, id, client_id, &body);
            }
            _ => {}
        }
    }

    /// A coordinator request that will get no answer (its connection closed): ask again, after
    /// finding the coordinator again.
    pub(super) fn txn_request_lost(&mut self, now: Instant, kind: RequestKind) {
        match kind {
            // Whether the coordinator added them is unknown: ask again, also while aborting
            // (as the Java client does), so that the abort reaches a coordinator that did.
            RequestKind::AddPartitionsToTxn => self.readd_adding(Membership::Pending),
            RequestKind::TxnOffsetCommit => self.txn.offsets.coordinator_lost(),
            // The abort cancelled the offsets, so it is not asked again; whether the coordinator
            // added the group is unknown: the abort goes to it (EndTxn), rather than ending here
            // and leaving a transaction open there until it times out.
            RequestKind::AddOffsetsToTxn if self.txn.state() == TxnState::Aborting => self.txn.joined(now),
            _ => {}
        }
        let lost =
            !matches!(kind, RequestKind::FindCoordinator { group: true } | RequestKind::TxnOffsetCommit);
        self.txn_retry(now, lost);
    }

    /// Connection `i` was lost: if it was to a coordinator, find it again (after a backoff):
    /// a dead coordinator's successor is only found by asking again, as the Java client does.
    pub(super) fn txn_conn_lost(&mut self, now: Instant, i: usize) {
        let node = self.conns[i].node_id;
        if !self.txn.uses_node(node) {
            return;
        }
        if self.txn.offsets.group_node() == Some(node) {
            self.txn.offsets.coordinator_lost();
        }
        if self.txn.coordinator() == Some(node) && !self.txn.is_busy() {
            self.txn_retry(now, true);
        }
    }

    fn txn_retry(&mut self, now: Instant, lost_coordinator: bool) {
        let failures = self.txn.retry(lost_coordinator);
        let at = now + self.retry_backoff(failures);
        self.txn.retry_at(at);
    }

    /// Partitions in an AddPartitionsToTxn that did not add them become `retry`.
    fn readd_adding(&mut self, retry: Membership) {
        for pi in 0..self.partitions.len() {
            if self.partitions[pi].txn == Membership::Adding {
                self.partitions[pi].txn = retry;
            }
        }
    }

    /// What a partition the coordinator answered it did not add becomes: asked for again, or,
    /// once the transaction is aborting (its unsent records failed), out of it. Left pending,
    /// an abort that began while the AddPartitionsToTxn was in flight would wait for a
    /// partition nobody adds any more, forever (the simulation found it:
    /// CONCURRENT_TRANSACTIONS to that request).
    fn not_added(&self) -> Membership {
        if self.txn.state() == TxnState::Aborting {
            Membership::Outside
        } else {
            Membership::Pending
        }
    }

    /// The producer cannot go on: every record and the operation waited on fail.
    pub(super) fn txn_fatal(&mut self, code: ErrorCode) {
        self.note_broker_error(code);
        self.set_fatal(code);
    }

    fn txn_abortable(&mut self, code: ErrorCode) {
        self.note_broker_error(code);
        self.txn.answered();
        self.txn.abortable(TxnError::Abortable(code), false);
    }

    /// Handles a coordinator error the common way; `Abortable` and `Fatal` end the request.
    fn txn_error(&mut self, now: Instant, code: ErrorCode) {
        self.note_broker_error(code);
        match classify(code) {
            Class::Retry { lost } => self.txn_retry(now, lost),
            Class::Abortable => self.txn_abortable(code),
            Class::Fatal => self.txn_fatal(code),
        }
    }

    /// The broker's refusal of an old epoch, after the transaction has been open longer than
    /// `transaction.timeout.ms`, is the broker having aborted it, not a fence.
    fn timed_out(&self, now: Instant) -> bool {
        let timeout = Duration::from_millis(u64::from(self.config.transaction_timeout_ms));
        self.txn.started_at().is_some_and(|at| at + timeout <= now)
    }

    pub(super) fn on_find_coordinator(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
        group: bool,
    ) -> Result<(), DecodeError> {
        let resp = FindCoordinatorResponse::decode(body, version)?;
        let key = if group {
            self.txn.offsets.group_id.as_str()
        } else {
            self.config.transactional_id.as_deref().unwrap_or("")
        };
        let Some(c) = resp.coordinator(key) else {
            self.txn_retry(now, false);
            return Ok(());
        };
        if c.error_code != ErrorCode::NoError {
            debug!("FindCoordinator: {}", c.error_code);
            match classify(c.error_code) {
                // COORDINATOR_NOT_AVAILABLE while the coordinator's topic is created: ask again.
                Class::Retry { .. } => self.txn_retry(now, false),
                Class::Abortable if group => {
                    self.txn.offsets.cancel();
                    self.txn.answered();
                    self.txn.offsets_done(Err(TxnError::Abortable(c.error_code)));
                    self.txn.abortable(TxnError::Abortable(c.error_code), false);
                }
                _ => self.txn_fatal(c.error_code),
            }
            return Ok(());
        }
        let (Ok(host), Ok(port)) = (String::try_from(c.host), u16::try_from(c.port)) else {
            self.txn_retry(now, false);
            return Ok(());
        };
        if self.conns.of_node(c.node_id).is_none() {
            let Some(i) = self.reusable_conn_slot() else {
                warn!("no connection slot for coordinator {}", c.node_id);
                self.txn_retry(now, false);
                return Ok(());
            };
            self.conns.assign(i, c.node_id, host, port);
        }
        debug!("{} coordinator: broker {}", if group { "group" } else { "transaction" }, c.node_id);
        if group {
            self.txn.answered();
            self.txn.offsets.coordinator_found(c.node_id);
        } else {
            self.txn.coordinator_found(c.node_id);
        }
        Ok(())
    }

    /// InitProducerId's answer, for a transactional producer.
    pub(super) fn on_txn_init(&mut self, now: Instant, code: ErrorCode, ready: bool) {
        if !ready {
            debug!("InitProducerId: {}", code);
        }
        if ready {
            // The coordinator's ApiVersions says which protocol its cluster runs.
            let implicit =
                self.txn.coordinator().and_then(|node| self.conns.of_node(node)).is_some_and(|i| {
                    let v = self.conns[i].versions;
                    v.txn.implicit_add(v.produce)
                });
            self.txn.set_implicit_add(implicit);
            self.txn.answered();
            self.leave_transaction();
            self.txn.initialized();
            return;
        }
        match classify(code) {
            Class::Retry { lost } => self.txn_retry(now, lost),
            _ => self.txn_fatal(code),
        }
    }

    pub(super) fn on_add_partitions(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
    ) -> Result<(), DecodeError> {
        let resp = AddPartitionsToTxnResponse::decode(body, version)?;
        let mut worst = ErrorCode::NoError;
        let not_added = self.not_added();
        for (topic, partition, code) in resp.results() {
            let Some(pi) = self.partition_slot(topic, partition) else { continue };
            if self.partitions[pi].txn != Membership::Adding {
                continue;
            }
            self.partitions[pi].txn = match code {
                ErrorCode::NoError => Membership::Added,
                _ => not_added,
            };
            // OPERATION_NOT_ATTEMPTED only accompanies the error that stopped the others.
            if code != ErrorCode::NoError && code != ErrorCode::OperationNotAttempted {
                worst = code;
            }
        }
        // Partitions the answer left out were not added.
        self.readd_adding(not_added);
        if self.partitions.iter().any(|p| p.txn == Membership::Added) {
            self.txn.joined(now);
        }
        if worst == ErrorCode::NoError {
            self.txn.answered();
        } else {
            debug!("AddPartitionsToTxn: {}", worst);
            self.txn_error(now, worst);
        }
        Ok(())
    }

    /// The partition slot of `topic`'s `partition`.
    fn partition_slot(&self, topic: &str, partition: i32) -> Option<usize> {
        (0..self.partitions.len()).find(|&pi| {
            let p = &self.partitions[pi];
            !p.is_free()
                && p.partition == partition
                && self.topics[usize::from(p.topic)].name.as_str() == topic
        })
    }

    pub(super) fn on_add_offsets(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
    ) -> Result<(), DecodeError> {
        let resp = AddOffsetsToTxnResponse::decode(body, version)?;
        if resp.error_code == ErrorCode::NoError {
            self.txn.answered();
            self.txn.joined(now);
            self.txn.offsets.added();
        } else {
            self.txn_error(now, resp.error_code);
        }
        Ok(())
    }

    pub(super) fn on_txn_offset_commit(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
    ) -> Result<(), DecodeError> {
        let resp = TxnOffsetCommitResponse::decode(body, version)?;
        let worst = resp.results().map(|(_, _, code)| code).find(|c| *c != ErrorCode::NoError);
        match worst.map(|code| (code, classify(code))) {
            None => {
                self.txn.offsets.cancel();
                self.txn.offsets_done(Ok(()));
            }
            Some((code, Class::Retry { lost })) => {
                self.note_broker_error(code);
                if lost || code == ErrorCode::RequestTimedOut {
                    self.txn.offsets.coordinator_lost();
                }
                self.txn_retry(now, false);
            }
            Some((code, Class::Abortable)) => {
                self.txn.offsets.cancel();
                self.txn.offsets_done(Err(TxnError::Abortable(code)));
                self.txn_abortable(code);
            }
            Some((code, Class::Fatal)) => self.txn_fatal(code),
        }
        Ok(())
    }

    pub(super) fn on_end_txn(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
        commit: bool,
    ) -> Result<(), DecodeError> {
        let resp = EndTxnResponse::decode(body, version)?;
        let code = resp.error_code;
        if code != ErrorCode::NoError {
            debug!("EndTxn({}): {}", if commit { "commit" } else { "abort" }, code);
        }
        match code {
            ErrorCode::NoError => {
                if resp.producer_id >= 0 && resp.producer_epoch >= 0 {
                    // EndTxn v5: the epoch for the next transaction (or, when the epoch ran
                    // out, a new producer id); every partition's sequence starts over.
                    self.idempotence.adopt(resp.producer_id, resp.producer_epoch);
                }
                self.leave_transaction();
                let bump = self.txn.needs_bump() && !commit;
                self.txn.ended(commit);
                if bump {
                    self.idempotence.request_new_id();
                }
                info!("transaction {}", if commit { "committed" } else { "aborted" });
            }
            ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch | ErrorCode::InvalidTxnState
                if !commit =>
            {
                // Fenced, or the broker aborted the transaction itself (and bumped the epoch):
                // InitProducerId with the current epoch tells which.
                self.note_broker_error(code);
                self.leave_transaction();
                self.txn.abort_by_bump();
                self.idempotence.request_new_id();
            }
            ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch | ErrorCode::InvalidTxnState
                if self.timed_out(now) =>
            {
                self.note_broker_error(code);
                self.txn.answered();
                self.txn.abortable(TxnError::TimedOut, true);
            }
            code => self.txn_error(now, code),
        }
        Ok(())
    }

    /// A Produce error of a transaction's batch, handled as the Java client does. Whether it
    /// was handled here.
    pub(super) fn on_txn_produce_error(&mut self, now: Instant, b: super::BatchId, code: ErrorCode) -> bool {
        match code {
            ErrorCode::ProducerFenced
            | ErrorCode::TransactionalIdAuthorizationFailed
            | ErrorCode::ClusterAuthorizationFailed => {
                self.txn_fatal(code);
                true
            }
            ErrorCode::InvalidProducerEpoch
            | ErrorCode::InvalidTxnState
            | ErrorCode::TransactionAbortable
            | ErrorCode::UnknownProducerId
            | ErrorCode::InvalidProducerIdMapping
            | ErrorCode::OutOfOrderSequenceNumber => {
                if code == ErrorCode::OutOfOrderSequenceNumber && !self.first_unresolved(b) {
                    // Merely early: an earlier batch of the partition is unresolved.
                    self.retry_batch(now, b, code);
                    return true;
                }
                // The broker aborted the transaction (a timeout bumps the epoch) or lost the
                // partition's sequence: this transaction cannot commit; after the abort, a new
                // epoch.
                let error = if self.timed_out(now) && code == ErrorCode::InvalidProducerEpoch {
                    TxnError::TimedOut
                } else {
                    TxnError::Abortable(code)
                };
                self.txn.abortable(error, true);
                self.fail_batch(b, DeliveryError::Broker(code));
                true
            }
            _ => false,
        }
    }

    /// The close deadline passed with a commit or abort unfinished: it ends unknown.
    pub(super) fn txn_give_up(&mut self) {
        if self.txn.is_ending() || self.txn.state() == TxnState::Initializing {
            self.txn.closed();
        }
    }

    /// `close` with a transaction open aborts it, as the Java client does on shutdown.
    pub(super) fn txn_close(&mut self) {
        if self.txn.is_on() && self.txn.abort_on_close() {
            warn!("aborting the open transaction: the producer is closing");
            self.abort_unsent();
        }
    }

    /// The report of a transactional operation that ended.
    pub(super) fn poll_txn_event(&mut self) -> Option<super::Event<'static>> {
        let (op, result) = self.txn.take_report()?;
        if op == TxnOp::Abort || op == TxnOp::Commit {
            debug!("{} ended: {}", op.name(), result.is_ok());
        }
        Some(super::Event::Transaction { op, result })
    }
}

#[cfg(all(test, feature = "transactions"))]
mod tests {
    use super::*;

    #[test]
    fn coordinator_errors_are_classed_as_the_java_client_classes_them() {
        for (code, class) in [
            (ErrorCode::NotCoordinator, Class::Retry { lost: true }),
            (ErrorCode::CoordinatorNotAvailable, Class::Retry { lost: true }),
            (ErrorCode::ConcurrentTransactions, Class::Retry { lost: false }),
            (ErrorCode::CoordinatorLoadInProgress, Class::Retry { lost: false }),
            (ErrorCode::GroupAuthorizationFailed, Class::Abortable),
            (ErrorCode::TransactionAbortable, Class::Abortable),
            (ErrorCode::UnknownMemberId, Class::Abortable),
            (ErrorCode::IllegalGeneration, Class::Abortable),
            (ErrorCode::GroupIdNotFound, Class::Abortable),
            (ErrorCode::StaleMemberEpoch, Class::Abortable),
            (ErrorCode::FencedInstanceId, Class::Abortable),
            (ErrorCode::ProducerFenced, Class::Fatal),
            (ErrorCode::InvalidProducerEpoch, Class::Fatal),
            (ErrorCode::TransactionalIdAuthorizationFailed, Class::Fatal),
            (ErrorCode::UnsupportedForMessageFormat, Class::Fatal),
        ] {
            assert_eq!(classify(code), class, "{code:?}");
        }
    }
}
