//! Transactions (KIP-98): the owner of a transactional producer's state, in the Java client's
//! terms (uninitialized, initializing, ready, in transaction, committing, aborting, abortable
//! error, fatal error), of its transaction coordinator, and of which coordinator request is due.
//!
//! One coordinator request is in flight at a time, as in the Java client: InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit (to the group's coordinator) and EndTxn
//! depend on each other's outcome, and the coordinator answers CONCURRENT_TRANSACTIONS to
//! overlapping ones anyway. Produce requests to partitions already in the transaction go on
//! meanwhile. Which partitions are in the transaction is kept in each partition slot
//! ([`Membership`]); the consumer offsets of `send_offsets_to_transaction` in [`Offsets`].

use crate::error::DeliveryError;
use crate::protocol::ErrorCode;
use crate::time::Instant;

pub(crate) use super::txn_offsets::{OffsetStep, Offsets};

/// Where a transactional producer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TxnState {
    /// No `transactional.id`, or `init_transactions` not called yet.
    #[default]
    Uninitialized,
    /// `init_transactions` under way: coordinator lookup, InitProducerId.
    Initializing,
    /// A producer id and epoch in hand; no transaction open.
    Ready,
    /// `begin_transaction` was called: records may be sent.
    InTransaction,
    /// `commit_transaction` under way: records being delivered, then EndTxn.
    Committing,
    /// `abort_transaction` under way.
    Aborting,
    /// The transaction cannot commit (a record failed, the broker refused a partition or the
    /// transaction timed out): abort it, and the producer goes on.
    AbortableError,
    /// The producer cannot go on: fenced by a newer instance, unauthorized, ...
    FatalError,
}

/// A transactional operation of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TxnOp {
    /// `init_transactions`.
    Init,
    /// `begin_transaction`.
    Begin,
    /// `send_offsets_to_transaction`.
    SendOffsets,
    /// `commit_transaction`.
    Commit,
    /// `abort_transaction`.
    Abort,
}

impl TxnOp {
    /// The operation's name, as the Java client spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Init => "init_transactions",
            Self::Begin => "begin_transaction",
            Self::SendOffsets => "send_offsets_to_transaction",
            Self::Commit => "commit_transaction",
            Self::Abort => "abort_transaction",
        }
    }
}

/// Why a transactional operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TxnError {
    /// No `transactional.id` is configured.
    NotTransactional,
    /// `op` cannot be done in `state` (begin twice, commit without begin, ...); nothing changed.
    InvalidState {
        /// The operation asked for.
        op: TxnOp,
        /// The producer's state when it was asked.
        state: TxnState,
    },
    /// `op` waits for another operation to end first.
    Busy {
        /// The operation still under way.
        op: TxnOp,
    },
    /// A record of the transaction was not delivered: abort the transaction, then go on.
    RecordFailed(DeliveryError),
    /// The broker refused part of the transaction (a partition, a topic's authorization, the
    /// group's offsets): abort it, then go on.
    Abortable(ErrorCode),
    /// The broker aborted the transaction itself: it was open longer than
    /// `transaction.timeout.ms`. Abort it here too, then go on.
    TimedOut,
    /// The producer cannot go on: fenced by a newer producer with the same `transactional.id`
    /// (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), not authorized, ... Close it.
    Fatal(ErrorCode),
    /// The offsets do not fit the producer's table; `what` says which limit.
    Capacity(&'static str),
    /// A transport's wait for `op` ended before `op` did: call it again to go on waiting.
    Unfinished {
        /// The operation still under way.
        op: TxnOp,
    },
    /// The producer's close deadline passed before the operation ended: whether the
    /// coordinator completed it is unknown (a new producer with the same id finds out).
    Closed,
}

impl TxnError {
    /// Whether the transaction can be aborted and the producer go on (Java's abortable errors).
    pub fn is_abortable(&self) -> bool {
        matches!(self, Self::RecordFailed(_) | Self::Abortable(_) | Self::TimedOut)
    }

    /// Whether the producer cannot go on.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }
}

impl core::fmt::Display for TxnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotTransactional => f.write_str("the producer has no transactional.id"),
            Self::InvalidState { op, state } => {
                write!(f, "{} is not allowed in state {:?}", op.name(), state)
            }
            Self::Busy { op } => write!(f, "{} is still under way", op.name()),
            Self::RecordFailed(e) => {
                write!(f, "a record of the transaction failed ({e}): abort the transaction")
            }
            Self::Abortable(code) => write!(f, "the transaction cannot commit ({code}): abort it"),
            Self::TimedOut => f.write_str(
                "the broker aborted the transaction: it was open longer than transaction.timeout.ms",
            ),
            Self::Fatal(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch) => f.write_str(
                "fenced: a newer producer with the same transactional.id took over (PRODUCER_FENCED)",
            ),
            Self::Fatal(code) => write!(f, "transactional producer failed: {code}"),
            Self::Capacity(what) => write!(f, "capacity exhausted: {what}"),
            Self::Closed => f.write_str("the producer closed before the transaction ended"),
            Self::Unfinished { op } => {
                write!(f, "{} did not end in the time given; call it again to go on waiting", op.name())
            }
        }
    }
}

impl core::error::Error for TxnError {}

/// Whether a partition is part of the open transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    Outside,
    /// Has records for the transaction; AddPartitionsToTxn not sent yet.
    Pending,
    /// In the AddPartitionsToTxn in flight.
    Adding,
    /// The coordinator added it: its batches may go.
    Added,
}

/// The transaction coordinator, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Ask FindCoordinator (again).
    Unknown,
    Asking,
    Known(i32),
}

/// A coordinator request, as [`Transactions::next_request`] picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnRequest {
    /// FindCoordinator for the transactional id, on any ready connection.
    FindCoordinator,
    /// On the transaction coordinator's connection:
    InitProducerId,
    AddPartitions,
    AddOffsets,
    EndTxn {
        commit: bool,
    },
    /// FindCoordinator for the group, on any ready connection.
    FindGroupCoordinator,
    /// TxnOffsetCommit, on the group coordinator's connection.
    CommitOffsets,
}

/// What the producer knows that the owner needs to pick the next request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    /// Partitions wait for AddPartitionsToTxn.
    pub pending_partitions: bool,
    /// Every batch of the transaction is delivered or failed.
    pub batches_resolved: bool,
    /// The producer id is being asked for (first one, or an epoch bump).
    pub producer_id_wanted: bool,
}

/// A transactional producer's state.
#[derive(Debug)]
pub(crate) struct Transactions {
    on: bool,
    state: TxnState,
    /// The operation the application waits on; its end is reported by an event.
    waiting: Option<TxnOp>,
    report: Option<(TxnOp, Result<(), TxnError>)>,
    coordinator: Lookup,
    /// A coordinator request is in flight (only one ever is).
    busy: bool,
    /// After a failed coordinator request: not before this.
    retry_at: Instant,
    failures: u32,
    /// The coordinator knows of the open transaction (a partition or offsets were added), so
    /// EndTxn must end it; since when, to tell a broker-side timeout from a fence.
    started: Option<Instant>,
    /// Why the transaction cannot commit.
    error: Option<TxnError>,
    /// After the abort, bump the epoch with InitProducerId (a sequence broke, or the broker
    /// aborted the transaction and bumped the epoch itself).
    bump: bool,
    /// KIP-890 part 2 (the cluster's `transaction.version` is 2): a partition joins the
    /// transaction with its first batch (Produce v12) and offsets with TxnOffsetCommit v5, with
    /// no AddPartitionsToTxn or AddOffsetsToTxn; every EndTxn (v5) bumps the epoch, so an abort
    /// needs no bump of its own. Chosen with each producer id (see `set_implicit_add`).
    implicit_add: bool,
    pub(crate) offsets: Offsets,
    pub(crate) committed: u64,
    pub(crate) aborted: u64,
}

impl Transactions {
    pub(crate) fn new(on: bool, now: Instant) -> Self {
        Self {
            on: cfg!(feature = "transactions") && on,
            state: TxnState::Uninitialized,
            waiting: None,
            report: None,
            coordinator: Lookup::Unknown,
            busy: false,
            retry_at: now,
            failures: 0,
            started: None,
            error: None,
            bump: false,
            implicit_add: false,
            offsets: Offsets::new(),
            committed: 0,
            aborted: 0,
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        cfg!(feature = "transactions") && self.on
    }

    pub(crate) fn state(&self) -> TxnState {
        self.state
    }

    /// The abortable or fatal error the producer is in, if it is in one.
    pub(crate) fn error(&self) -> Option<TxnError> {
        matches!(self.state, TxnState::AbortableError | TxnState::FatalError).then_some(self.error).flatten()
    }

    /// Records may be sent: a transaction is open.
    pub(crate) fn accepts_records(&self) -> bool {
        self.state == TxnState::InTransaction
    }

    /// Whether `node` is a coordinator this producer talks to (its connection slot is kept).
    pub(crate) fn uses_node(&self, node: i32) -> bool {
        self.is_on() && (self.coordinator == Lookup::Known(node) || self.offsets.group_node() == Some(node))
    }

    /// Whether the transaction protocol is KIP-890 part 2's.
    pub(crate) fn implicit_add(&self) -> bool {
        self.implicit_add
    }

    /// Picks the protocol with a new producer id or epoch, never in a transaction: the Java
    /// client too switches only where the epoch changes anyway, so a cluster upgraded to
    /// `transaction.version` 2 is used from the next InitProducerId on.
    pub(crate) fn set_implicit_add(&mut self, on: bool) {
        if on != self.implicit_add {
            info!("transaction protocol: {}", if on { "KIP-890 (transaction.version 2)" } else { "classic" });
        }
        self.implicit_add = on;
    }

    /// The transaction coordinator's broker id, once known.
    pub(crate) fn coordinator(&self) -> Option<i32> {
        match self.coordinator {
            Lookup::Known(node) => Some(node),
            _ => None,
        }
    }

    /// The end of an operation, for the event that reports it.
    pub(crate) fn take_report(&mut self) -> Option<(TxnOp, Result<(), TxnError>)> {
        self.report.take()
    }

    fn finish(&mut self, op: TxnOp, result: Result<(), TxnError>) {
        if self.waiting == Some(op) {
            self.waiting = None;
        }
        self.report = Some((op, result));
    }

    /// `init_transactions`: starts it, or goes on with one under way.
    pub(crate) fn init(&mut self) -> Result<(), TxnError> {
        self.check(TxnOp::Init)?;
        match self.state {
            TxnState::Uninitialized => {
                self.state = TxnState::Initializing;
                self.waiting = Some(TxnOp::Init);
                Ok(())
            }
            TxnState::Initializing => Ok(()),
            state => Err(TxnError::InvalidState { op: TxnOp::Init, state }),
        }
    }

    /// `begin_transaction`: local only, as in every client; the coordinator hears of the
    /// transaction with its first partition.
    pub(crate) fn begin(&mut self) -> Result<(), TxnError> {
        self.check(TxnOp::Begin)?;
        if self.state != TxnState::Ready {
            return Err(TxnError::InvalidState { op: TxnOp::Begin, state: self.state });
        }
        self.state = TxnState::InTransaction;
        self.error = None;
        Ok(())
    }

    /// `commit_transaction`: starts it, or goes on with one under way. A transaction that
    /// cannot commit says why, and stays to be aborted.
    pub(crate) fn commit(&mut self) -> Result<(), TxnError> {
        self.check(TxnOp::Commit)?;
        match self.state {
            TxnState::InTransaction if self.offsets.busy() => Err(TxnError::Busy { op: TxnOp::SendOffsets }),
            TxnState::InTransaction => {
                self.state = TxnState::Committing;
                self.waiting = Some(TxnOp::Commit);
                Ok(())
            }
            TxnState::Committing => Ok(()),
            TxnState::AbortableError => {
                Err(self.error.unwrap_or(TxnError::Abortable(ErrorCode::UnknownServerError)))
            }
            state => Err(TxnError::InvalidState { op: TxnOp::Commit, state }),
        }
    }

    /// `abort_transaction`: starts it (also after an abortable error, or a commit that failed
    /// halfway), or goes on with one under way.
    pub(crate) fn abort(&mut self) -> Result<(), TxnError> {
        self.check(TxnOp::Abort)?;
        match self.state {
            TxnState::InTransaction | TxnState::AbortableError => {
                self.state = TxnState::Aborting;
                self.waiting = Some(TxnOp::Abort);
                self.offsets.cancel();
                Ok(())
            }
            TxnState::Aborting => Ok(()),
            state => Err(TxnError::InvalidState { op: TxnOp::Abort, state }),
        }
    }

    /// `send_offsets_to_transaction` may start.
    pub(crate) fn may_send_offsets(&self) -> Result<(), TxnError> {
        self.check(TxnOp::SendOffsets)?;
        if self.state != TxnState::InTransaction {
            return Err(TxnError::InvalidState { op: TxnOp::SendOffsets, state: self.state });
        }
        if self.offsets.busy() {
            return Err(TxnError::Busy { op: TxnOp::SendOffsets });
        }
        Ok(())
    }

    /// Offsets were stored: AddOffsetsToTxn goes next.
    pub(crate) fn offsets_queued(&mut self) {
        self.waiting = Some(TxnOp::SendOffsets);
    }

    fn check(&self, op: TxnOp) -> Result<(), TxnError> {
        if !self.is_on() {
            return Err(TxnError::NotTransactional);
        }
        if let (TxnState::FatalError, Some(e)) = (self.state, self.error) {
            return Err(e);
        }
        match self.waiting {
            Some(w) if w != op => Err(TxnError::Busy { op: w }),
            _ => Ok(()),
        }
    }

    /// The next coordinator request, if one is due at `now`.
    pub(crate) fn next_request(&self, now: Instant, p: Progress) -> Option<TxnRequest> {
        if !self.is_on() || self.busy || now < self.retry_at {
            return None;
        }
        let needs_coordinator = match self.state {
            TxnState::Initializing => p.producer_id_wanted,
            TxnState::InTransaction => p.pending_partitions || self.offsets.step() == OffsetStep::AddToTxn,
            TxnState::Committing => p.pending_partitions || p.batches_resolved,
            TxnState::Aborting => {
                p.pending_partitions || p.batches_resolved && (self.started.is_some() || p.producer_id_wanted)
            }
            _ => false,
        };
        if needs_coordinator && self.coordinator == Lookup::Unknown {
            return Some(TxnRequest::FindCoordinator);
        }
        if self.coordinator == Lookup::Asking {
            return None;
        }
        match self.state {
            TxnState::Initializing if p.producer_id_wanted => Some(TxnRequest::InitProducerId),
            // Aborting: only partitions whose AddPartitionsToTxn was lost are pending; whether
            // the coordinator added them is unknown, so they are asked for again and the abort
            // then goes to the coordinator.
            TxnState::InTransaction | TxnState::Committing | TxnState::Aborting if p.pending_partitions => {
                Some(TxnRequest::AddPartitions)
            }
            TxnState::InTransaction => match self.offsets.step() {
                OffsetStep::AddToTxn => Some(TxnRequest::AddOffsets),
                OffsetStep::FindCoordinator => Some(TxnRequest::FindGroupCoordinator),
                OffsetStep::Commit => Some(TxnRequest::CommitOffsets),
                OffsetStep::Idle => None,
            },
            TxnState::Committing if p.batches_resolved && self.started.is_some() => {
                Some(TxnRequest::EndTxn { commit: true })
            }
            TxnState::Aborting if p.batches_resolved && self.started.is_some() => {
                Some(TxnRequest::EndTxn { commit: false })
            }
            TxnState::Aborting if p.batches_resolved && p.producer_id_wanted => {
                Some(TxnRequest::InitProducerId)
            }
            _ => None,
        }
    }

    /// Whether a coordinator request is or will be due (without waiting for the application).
    pub(crate) fn has_work(&self, p: Progress) -> bool {
        match self.state {
            TxnState::Initializing | TxnState::Committing | TxnState::Aborting => true,
            TxnState::InTransaction => p.pending_partitions || self.offsets.busy(),
            _ => false,
        }
    }

    /// A commit or abort with nothing for the coordinator to end (no partition, no offsets):
    /// done at once, as the Java client does. Also ends an abort whose epoch bump is done.
    pub(crate) fn complete_locally(&mut self, p: Progress) {
        if !p.batches_resolved || self.started.is_some() || self.busy || p.pending_partitions {
            return;
        }
        match self.state {
            TxnState::Committing => {
                self.state = TxnState::Ready;
                self.committed += 1;
                self.finish(TxnOp::Commit, Ok(()));
            }
            TxnState::Aborting if !p.producer_id_wanted && !self.bump => {
                self.state = TxnState::Ready;
                self.aborted += 1;
                self.finish(TxnOp::Abort, Ok(()));
            }
            _ => {}
        }
    }

    /// A coordinator request goes out.
    pub(crate) fn sent(&mut self, request: TxnRequest) {
        self.busy = true;
        if request == TxnRequest::FindCoordinator {
            self.coordinator = Lookup::Asking;
        }
    }

    /// The coordinator request in flight got an answer that asks to try again after a
    /// backoff for this many failures; with `lost_coordinator`, after finding it again.
    pub(crate) fn retry(&mut self, lost_coordinator: bool) -> u32 {
        self.busy = false;
        self.failures += 1;
        if lost_coordinator || self.coordinator == Lookup::Asking {
            self.coordinator = Lookup::Unknown;
        }
        self.failures
    }

    /// A coordinator request is in flight.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }

    /// Wait before the next coordinator request.
    pub(crate) fn retry_at(&mut self, at: Instant) {
        self.retry_at = at;
    }

    /// The coordinator request in flight succeeded.
    pub(crate) fn answered(&mut self) {
        self.busy = false;
        self.failures = 0;
    }

    /// FindCoordinator named the transaction coordinator.
    pub(crate) fn coordinator_found(&mut self, node: i32) {
        self.answered();
        self.coordinator = Lookup::Known(node);
    }

    /// InitProducerId answered with a producer id and epoch.
    pub(crate) fn initialized(&mut self) {
        self.bump = false;
        match self.state {
            TxnState::Initializing => {
                self.state = TxnState::Ready;
                self.finish(TxnOp::Init, Ok(()));
            }
            TxnState::Aborting => {
                // The epoch bump that ends an abort.
                self.started = None;
                self.state = TxnState::Ready;
                self.aborted += 1;
                self.finish(TxnOp::Abort, Ok(()));
            }
            _ => {}
        }
    }

    /// AddPartitionsToTxn or AddOffsetsToTxn succeeded: the coordinator knows the transaction.
    pub(crate) fn joined(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// Since when the coordinator knows the open transaction.
    pub(crate) fn started_at(&self) -> Option<Instant> {
        self.started
    }

    /// EndTxn succeeded.
    pub(crate) fn ended(&mut self, commit: bool) {
        self.answered();
        self.started = None;
        if commit {
            self.state = TxnState::Ready;
            self.committed += 1;
            self.finish(TxnOp::Commit, Ok(()));
        } else if !self.bump {
            self.state = TxnState::Ready;
            self.aborted += 1;
            self.finish(TxnOp::Abort, Ok(()));
        }
        // Else the abort ends with the epoch bump (InitProducerId, see `initialized`).
    }

    /// EndTxn(abort) was refused with a fenced epoch, but the broker may merely have aborted
    /// the transaction itself and bumped the epoch (a timeout): InitProducerId with the current
    /// epoch tells the two apart (KIP-360, KIP-588); if it is a fence, that answer is fatal.
    pub(crate) fn abort_by_bump(&mut self) {
        self.answered();
        self.started = None;
        self.bump = true;
    }

    /// The epoch must be bumped once the transaction is aborted.
    pub(crate) fn needs_bump(&self) -> bool {
        self.bump
    }

    /// The transaction cannot commit: a record failed, or the broker refused part of it. A
    /// commit under way fails with `error` (the transaction stays, to be aborted).
    pub(crate) fn abortable(&mut self, error: TxnError, bump: bool) {
        // Under KIP-890 part 2 the EndTxn that aborts bumps the epoch itself.
        self.bump |= bump && !self.implicit_add;
        if matches!(self.state, TxnState::FatalError | TxnState::Aborting) {
            return;
        }
        if self.error.is_none() {
            self.error = Some(error);
        }
        let error = self.error.unwrap_or(error);
        if let Some(op @ (TxnOp::Commit | TxnOp::SendOffsets)) = self.waiting {
            self.finish(op, Err(error));
        }
        if matches!(self.state, TxnState::InTransaction | TxnState::Committing) {
            self.state = TxnState::AbortableError;
            self.offsets.cancel();
        }
    }

    /// A record of the transaction failed.
    pub(crate) fn record_failed(&mut self, error: DeliveryError) {
        if matches!(self.state, TxnState::InTransaction | TxnState::Committing | TxnState::AbortableError) {
            self.abortable(TxnError::RecordFailed(error), false);
        }
    }

    /// The producer cannot go on: the operation waited on fails with it.
    pub(crate) fn fatal(&mut self, code: ErrorCode) {
        if !self.is_on() || self.state == TxnState::FatalError {
            return;
        }
        let error = TxnError::Fatal(code);
        self.state = TxnState::FatalError;
        self.error = Some(error);
        self.busy = false;
        self.offsets.cancel();
        if let Some(op) = self.waiting.take() {
            self.report = Some((op, Err(error)));
        }
    }

    /// The application's operation ends with the offsets committed to the transaction.
    pub(crate) fn offsets_done(&mut self, result: Result<(), TxnError>) {
        self.answered();
        self.finish(TxnOp::SendOffsets, result);
    }

    /// `close` with a transaction open: abort it, so that read_committed consumers are not
    /// held back until `transaction.timeout.ms`.
    pub(crate) fn abort_on_close(&mut self) -> bool {
        if matches!(self.state, TxnState::InTransaction | TxnState::AbortableError) && self.waiting.is_none()
        {
            self.state = TxnState::Aborting;
            self.offsets.cancel();
            true
        } else {
            false
        }
    }

    /// The close deadline passed: the operation waited on ends, unknown.
    pub(crate) fn closed(&mut self) {
        self.state = TxnState::FatalError;
        self.error = Some(TxnError::Closed);
        self.busy = false;
        if let Some(op) = self.waiting.take() {
            self.report = Some((op, Err(TxnError::Closed)));
        }
    }

    /// A commit or abort is under way: closing connections waits for it.
    pub(crate) fn is_ending(&self) -> bool {
        self.is_on() && matches!(self.state, TxnState::Committing | TxnState::Aborting)
    }

    /// Whether a coordinator request waits only for time to pass.
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        (self.is_on() && !self.busy && self.failures > 0).then_some(self.retry_at)
    }
}

#[cfg(all(test, feature = "transactions"))]
mod tests {
    use super::*;

    const IDLE: Progress =
        Progress { pending_partitions: false, batches_resolved: true, producer_id_wanted: false };

    fn ready() -> Transactions {
        let mut t = Transactions::new(true, Instant::ZERO);
        t.init().unwrap();
        let init = Progress { producer_id_wanted: true, ..IDLE };
        assert_eq!(t.next_request(Instant::ZERO, init), Some(TxnRequest::FindCoordinator));
        t.sent(TxnRequest::FindCoordinator);
        t.coordinator_found(3);
        assert_eq!(t.next_request(Instant::ZERO, init), Some(TxnRequest::InitProducerId));
        t.sent(TxnRequest::InitProducerId);
        t.answered();
        t.initialized();
        assert_eq!(t.take_report(), Some((TxnOp::Init, Ok(()))));
        t
    }

    #[test]
    fn operations_in_the_wrong_state_are_refused_and_change_nothing() {
        let mut t = Transactions::new(true, Instant::ZERO);
        let e = t.begin().unwrap_err();
        assert_eq!(e, TxnError::InvalidState { op: TxnOp::Begin, state: TxnState::Uninitialized });
        let mut t = ready();
        assert!(t.commit().is_err());
        t.begin().unwrap();
        assert!(matches!(t.begin(), Err(TxnError::InvalidState { .. })));
        assert_eq!(Transactions::new(false, Instant::ZERO).init(), Err(TxnError::NotTransactional));
    }

    #[test]
    fn a_commit_waits_for_partitions_and_batches_then_ends_with_end_txn() {
        let mut t = ready();
        t.begin().unwrap();
        let pending =
            Progress { pending_partitions: true, batches_resolved: false, producer_id_wanted: false };
        assert_eq!(t.next_request(Instant::ZERO, pending), Some(TxnRequest::AddPartitions));
        t.sent(TxnRequest::AddPartitions);
        assert_eq!(t.next_request(Instant::ZERO, pending), None, "one coordinator request at a time");
        t.answered();
        t.joined(Instant::ZERO);
        t.commit().unwrap();
        let sending = Progress { batches_resolved: false, ..IDLE };
        assert_eq!(t.next_request(Instant::ZERO, sending), None, "batches first");
        assert_eq!(t.next_request(Instant::ZERO, IDLE), Some(TxnRequest::EndTxn { commit: true }));
        t.sent(TxnRequest::EndTxn { commit: true });
        t.ended(true);
        assert_eq!(t.state(), TxnState::Ready);
        assert_eq!(t.take_report(), Some((TxnOp::Commit, Ok(()))));
    }

    #[test]
    fn an_empty_transaction_commits_without_the_coordinator() {
        let mut t = ready();
        t.begin().unwrap();
        t.commit().unwrap();
        assert_eq!(t.next_request(Instant::ZERO, IDLE), None);
        t.complete_locally(IDLE);
        assert_eq!(t.take_report(), Some((TxnOp::Commit, Ok(()))));
    }

    #[test]
    fn a_failed_record_fails_the_commit_and_the_abort_goes_on() {
        let mut t = ready();
        t.begin().unwrap();
        t.joined(Instant::ZERO);
        t.commit().unwrap();
        t.record_failed(DeliveryError::Broker(ErrorCode::MessageTooLarge));
        let (op, result) = t.take_report().unwrap();
        assert_eq!(op, TxnOp::Commit);
        assert!(result.unwrap_err().is_abortable());
        assert_eq!(t.state(), TxnState::AbortableError);
        assert!(t.commit().is_err(), "it stays uncommittable");
        t.abort().unwrap();
        assert_eq!(t.next_request(Instant::ZERO, IDLE), Some(TxnRequest::EndTxn { commit: false }));
    }

    #[test]
    fn a_lost_coordinator_is_looked_up_again_and_fatal_errors_stick() {
        let mut t = ready();
        t.begin().unwrap();
        let pending = Progress { pending_partitions: true, ..IDLE };
        t.sent(TxnRequest::AddPartitions);
        assert_eq!(t.retry(true), 1);
        assert_eq!(t.next_request(Instant::ZERO, pending), Some(TxnRequest::FindCoordinator));
        t.fatal(ErrorCode::ProducerFenced);
        assert_eq!(t.state(), TxnState::FatalError);
        assert_eq!(t.commit(), Err(TxnError::Fatal(ErrorCode::ProducerFenced)));
    }
}
