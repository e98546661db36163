//! A blocking facade for code without an async runtime: the producer runs on its own small
//! tokio runtime; calls block the caller's thread.

// A refused record comes back by value in `Refused`, as rust-rdkafka's `(KafkaError,
// OwnedRecord)`: boxing it would cost an allocation exactly when the caller is told to slow down.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use picokafka::Metrics;

use crate::config::ClientConfig;
use crate::delivery::{Delivery, DeliveryFuture};
use crate::error::{config_error, ConfigErrorKind};
use crate::error::{Error, Refused};
use crate::producer::{Producer, ProducerBuilder};
use crate::record::OwnedRecord;

/// A producer for synchronous code.
#[derive(Debug)]
pub struct BlockingProducer {
    runtime: tokio::runtime::Runtime,
    producer: Producer,
}

impl BlockingProducer {
    /// Starts a producer on a runtime of its own.
    pub fn new(config: &ClientConfig) -> Result<Self, Error> {
        Self::build_with(config, |b| b)
    }

    /// Like [`Producer::with_delivery_handler`]: the handler runs on the producer's thread.
    pub fn with_delivery_handler(
        config: &ClientConfig,
        handler: impl Fn(u64, Result<Delivery, Error>) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        Self::build_with(config, |b| b.delivery_handler(handler))
    }

    /// Like [`Producer::builder`]: `customize` adds a delivery handler, a partitioner, ...
    pub fn build_with(
        config: &ClientConfig,
        customize: impl FnOnce(ProducerBuilder<'_>) -> ProducerBuilder<'_>,
    ) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("picokafka")
            .enable_all()
            .build()
            .map_err(|e| {
                config_error(
                    ConfigErrorKind::Environment,
                    None,
                    format!("cannot start the producer's runtime: {e}"),
                )
            })?;
        let producer = {
            let _guard = runtime.enter();
            customize(Producer::builder(config)).build()?
        };
        Ok(Self { runtime, producer })
    }

    /// Sends and waits for the outcome.
    pub fn send(&self, record: OwnedRecord) -> Result<Delivery, Error> {
        self.runtime.block_on(self.producer.send(record))
    }

    /// Queues (waiting up to `max.block.ms` for room); wait on the result with [`Self::wait`].
    pub fn enqueue(&self, record: OwnedRecord) -> Result<DeliveryFuture, Refused> {
        self.runtime.block_on(self.producer.enqueue(record))
    }

    /// Queues with a callback, run on the producer's thread.
    pub fn send_with_callback(
        &self,
        record: OwnedRecord,
        callback: impl FnOnce(Result<Delivery, Error>) + Send + 'static,
    ) -> Result<(), Refused> {
        self.runtime.block_on(self.producer.send_with_callback(record, callback))
    }

    /// Queues a record whose outcome goes to the delivery handler with `opaque`.
    pub fn send_with_opaque(&self, record: OwnedRecord, opaque: u64) -> Result<(), Refused> {
        self.runtime.block_on(self.producer.send_with_opaque(record, opaque))
    }

    /// Blocks until the record behind `delivery` is reported.
    pub fn wait(&self, delivery: DeliveryFuture) -> Result<Delivery, Error> {
        self.runtime.block_on(delivery)
    }

    /// Blocks until every record sent before the call is reported, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.runtime.block_on(self.producer.flush(timeout))
    }

    /// Stops accepting records and blocks until each queued one is reported, or `timeout` passes.
    pub fn close(&self, timeout: Duration) {
        self.runtime.block_on(self.producer.close(timeout));
    }

    /// The core's counters and gauges.
    pub fn metrics(&self) -> Metrics {
        self.runtime.block_on(self.producer.metrics())
    }

    /// The async producer inside, for code that has both worlds.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}
