//! Transactions on the producer handle, in the shape the Java client and rust-rdkafka users
//! know: `init_transactions(timeout)`, `begin_transaction()`, `send_offsets_to_transaction(..)`,
//! `commit_transaction(timeout)`, `abort_transaction(timeout)`.
//!
//! A timeout ends the wait, not the operation: as in both, calling the same operation again
//! goes on waiting for it.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::driver::Cmd;
use crate::error::Error;
use crate::producer::Producer;

/// A transactional operation for the producer's task.
#[derive(Debug, Clone)]
pub(crate) enum TxnCmd {
    Init,
    Begin,
    /// Records queued at or before `mark` belong to the transaction: they enter the core first.
    Commit {
        mark: u64,
    },
    /// Records queued at or before `mark` and not yet in the core are aborted with it.
    Abort {
        mark: u64,
    },
    SendOffsets {
        group: ConsumerGroupMetadata,
        offsets: Vec<(String, i32, i64)>,
    },
}

impl TxnCmd {
    pub(crate) fn op(&self) -> picokafka::TxnOp {
        match self {
            Self::Init => picokafka::TxnOp::Init,
            Self::Begin => picokafka::TxnOp::Begin,
            Self::Commit { .. } => picokafka::TxnOp::Commit,
            Self::Abort { .. } => picokafka::TxnOp::Abort,
            Self::SendOffsets { .. } => picokafka::TxnOp::SendOffsets,
        }
    }
}

/// A consumer group's identity, for [`Producer::send_offsets_to_transaction`]: what the
/// consumer's `group_metadata()` gives (rust-rdkafka's `ConsumerGroupMetadata`, Java's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The consumer's generation; -1 when unknown (the coordinator then checks no member).
    pub generation_id: i32,
    /// The consumer's member id; empty when unknown.
    pub member_id: String,
    /// `group.instance.id`, for static members.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Only the group id: the coordinator checks no member generation.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

impl Producer {
    async fn txn(&self, cmd: TxnCmd, timeout: Option<Duration>) -> Result<(), Error> {
        let op = cmd.op();
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::Txn(cmd, tx)).map_err(|_| Error::Closed)?;
        let answer = match timeout {
            Some(t) => tokio::time::timeout(t, rx).await.map_err(|_| {
                Error::Timeout(crate::TimeoutError {
                    operation: crate::TimedOperation::Transaction(op),
                    waited_ms: t.as_millis() as u64,
                })
            })?,
            None => rx.await,
        };
        answer.unwrap_or(Err(Error::Closed))
    }

    /// Registers `transactional.id` with its coordinator: fences older producers with the same
    /// id, completes (aborts) a transaction one left open, and gets this producer's epoch. Call
    /// once, before the first transaction.
    pub async fn init_transactions(&self, timeout: Duration) -> Result<(), Error> {
        self.txn(TxnCmd::Init, Some(timeout)).await
    }

    /// Opens a transaction: records sent from now until the commit or abort belong to it.
    pub async fn begin_transaction(&self) -> Result<(), Error> {
        self.txn(TxnCmd::Begin, None).await
    }

    /// Commits the consumer's offsets (`(topic, partition, next offset to read)`) with the open
    /// transaction: consume-transform-produce exactly once. The group sees them exactly when the
    /// transaction commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(&str, i32, i64)],
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), Error> {
        let offsets = offsets.iter().map(|&(t, p, o)| (t.to_string(), p, o)).collect();
        self.txn(TxnCmd::SendOffsets { group: group.clone(), offsets }, Some(timeout)).await
    }

    /// Sends every record of the transaction, waits for each to be acknowledged, then commits
    /// it. If a record failed, the commit fails with an error whose
    /// [`txn_requires_abort`](Error::txn_requires_abort) is true: abort, and go on.
    pub async fn commit_transaction(&self, timeout: Duration) -> Result<(), Error> {
        self.txn(TxnCmd::Commit { mark: self.shared.mark() }, Some(timeout)).await
    }

    /// Aborts the open transaction: its records not yet sent fail with
    /// [`DeliveryError::Aborted`](picokafka::DeliveryError::Aborted), and read_committed
    /// consumers never see any of them.
    pub async fn abort_transaction(&self, timeout: Duration) -> Result<(), Error> {
        self.txn(TxnCmd::Abort { mark: self.shared.mark() }, Some(timeout)).await
    }
}
