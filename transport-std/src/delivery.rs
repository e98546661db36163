//! What a caller gets back for a record: where it landed, or why not — through a future, a
//! callback, or the producer-wide handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::Error;

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic it was written to.
    pub topic: Arc<str>,
    /// The partition it was written to.
    pub partition: i32,
    /// `-1` with acks=0.
    pub offset: i64,
    /// CreateTime, or the broker's append time for LogAppendTime topics (ms since the Unix epoch).
    pub timestamp: i64,
}

/// The producer-wide delivery report handler, librdkafka's `dr_msg_cb`: called on the
/// producer's task with the opaque value given to [`Producer::send_with_opaque`](crate::Producer::send_with_opaque) and the
/// record's outcome. It must not block.
pub type DeliveryHandler = Arc<dyn Fn(u64, Result<Delivery, Error>) + Send + Sync>;

/// Where a record's outcome goes.
pub(crate) enum Reply {
    None,
    Future(oneshot::Sender<Result<Delivery, Error>>),
    Callback(Box<dyn FnOnce(Result<Delivery, Error>) + Send>),
    /// To the producer's [`DeliveryHandler`]: no allocation per record.
    Opaque(u64),
    /// A failure with what the core knows of it (for the dead-letter helper).
    Detailed(Box<dyn FnOnce(Result<Delivery, Failure>) + Send>),
}

/// A record's failure, with the partition it was meant for (-1 if none was chosen) and how many
/// times its batch was sent.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub error: Error,
    pub partition: i32,
    pub attempts: u32,
}

impl Reply {
    pub(crate) fn resolve(self, result: Result<Delivery, Error>, handler: Option<&DeliveryHandler>) {
        match self {
            Self::Detailed(f) => f(result.map_err(|error| Failure { error, partition: -1, attempts: 0 })),
            Self::None => {}
            Self::Future(tx) => {
                let _ = tx.send(result);
            }
            Self::Callback(f) => f(result),
            Self::Opaque(opaque) => {
                if let Some(handler) = handler {
                    handler(opaque, result);
                }
            }
        }
    }
}

impl Reply {
    /// A failure the core reported, with its partition and attempts.
    pub(crate) fn fail(self, failure: Failure, handler: Option<&DeliveryHandler>) {
        match self {
            Self::Detailed(f) => f(Err(failure)),
            other => other.resolve(Err(failure.error), handler),
        }
    }
}

/// The outcome of one record, to await.
#[derive(Debug)]
pub struct DeliveryFuture {
    pub(crate) rx: oneshot::Receiver<Result<Delivery, Error>>,
}

impl Future for DeliveryFuture {
    type Output = Result<Delivery, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}
