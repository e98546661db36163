//! `produce --transactional-id`: the input is written in transactions of N records, each
//! committed once its records are acknowledged; an interrupted run aborts the open one.

use std::time::Duration;

use picokafka_tokio::{Error, Producer};

/// How long init, commit and abort may take before the run gives up.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Transactions of a run, and what became of their records.
#[derive(Debug, Default)]
pub struct Transactions {
    /// Records per transaction.
    every: u64,
    /// Records sent in the open transaction.
    open: u64,
    pub committed_txns: u64,
    pub committed_records: u64,
    pub aborted_txns: u64,
    pub aborted_records: u64,
}

impl Transactions {
    /// Registers the transactional id and opens the first transaction.
    pub async fn start(producer: &Producer, every: u64) -> Result<Self, Error> {
        producer.init_transactions(TIMEOUT).await?;
        producer.begin_transaction().await?;
        Ok(Self { every: every.max(1), ..Self::default() })
    }

    /// A record was sent in the open transaction: commit it once it holds N, and open the next.
    pub async fn sent(&mut self, producer: &Producer) -> Result<(), Error> {
        self.open += 1;
        if self.open < self.every {
            return Ok(());
        }
        self.commit(producer).await?;
        producer.begin_transaction().await
    }

    /// Commits the open transaction; one that cannot commit (a record failed) is aborted and
    /// the run goes on. An error is fatal for the run.
    pub async fn commit(&mut self, producer: &Producer) -> Result<(), Error> {
        let n = std::mem::take(&mut self.open);
        match producer.commit_transaction(TIMEOUT).await {
            Ok(()) => {
                self.committed_txns += 1;
                self.committed_records += n;
                Ok(())
            }
            Err(e) if e.txn_requires_abort() => {
                eprintln!("picokafka: transaction of {n} records cannot commit ({e}); aborting it");
                self.open = n;
                self.abort(producer).await
            }
            Err(e) => {
                self.open = n;
                Err(e)
            }
        }
    }

    /// Aborts the open transaction.
    pub async fn abort(&mut self, producer: &Producer) -> Result<(), Error> {
        let n = std::mem::take(&mut self.open);
        producer.abort_transaction(TIMEOUT).await?;
        self.aborted_txns += 1;
        self.aborted_records += n;
        Ok(())
    }

    /// Records of the transaction still open (not committed, not aborted).
    pub fn open(&self) -> u64 {
        self.open
    }
}
