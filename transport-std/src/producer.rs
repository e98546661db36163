//! The application's side: the producer handle, its builder, its health view.

// A refused record comes back by value in `Refused`, as rust-rdkafka's `(KafkaError,
// OwnedRecord)`: boxing it would cost an allocation exactly when the caller is told to slow down.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use picokafka::{Metrics, Partitioner};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::ClientConfig;
use crate::delivery::{Delivery, DeliveryFuture, DeliveryHandler, Reply};
use crate::driver::{self, Cmd};
use crate::error::{config_error, ConfigErrorKind};
use crate::error::{Error, Refused};
use crate::record::OwnedRecord;
use crate::shared::{Queue, Queued, Shared};

/// What became of an attempt to queue a record: taken, or handed back with why.
enum Queuing {
    Done,
    /// No room: the record comes back, with its reply to try again.
    Full(OwnedRecord, Reply),
    /// Refused for good (closed, failed producer): the record comes back.
    Refused(Refused),
}

/// A producer's health at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Connections ready to carry requests.
    pub brokers_ready: usize,
    /// Connection slots assigned to a broker or bootstrap address.
    pub brokers_known: usize,
    /// Records accepted and not yet reported, whether in a batch or still waiting for their
    /// topic's metadata or for room.
    pub queued_records: u64,
    /// The most recent error worth a look: a TLS handshake, a broker error code, a lost connection.
    pub last_error: Option<String>,
    /// Why the producer stopped for good, if it did.
    pub fatal: Option<String>,
    /// Every broker (or bootstrap address) the producer has a connection slot for.
    pub brokers: Vec<BrokerState>,
}

/// One broker connection, for health views and the per-broker metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerState {
    /// Broker id; negative for a bootstrap address not yet matched to a broker.
    pub node_id: i32,
    /// `host:port`.
    pub address: String,
    /// What the connection is doing.
    pub state: picokafka::producer::ConnPhase,
    /// Requests awaiting an answer on it.
    pub in_flight: u32,
}

impl Health {
    /// Ready to deliver: a broker connection is up and nothing is fatally wrong.
    pub fn is_healthy(&self) -> bool {
        self.fatal.is_none() && self.brokers_ready > 0
    }
}

/// Builds a [`Producer`]; see [`Producer::builder`].
pub struct ProducerBuilder<'c> {
    config: &'c ClientConfig,
    handler: Option<DeliveryHandler>,
    partitioner: Option<Box<dyn Partitioner + Send>>,
    token_refresh: Option<crate::oauth::TokenRefresh>,
}

impl std::fmt::Debug for ProducerBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder").finish_non_exhaustive()
    }
}

impl ProducerBuilder<'_> {
    /// Reports of records sent with [`Producer::send_with_opaque`] go to `handler`.
    pub fn delivery_handler(
        mut self,
        handler: impl Fn(u64, Result<Delivery, Error>) + Send + Sync + 'static,
    ) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Records without an explicit partition go where `partitioner` says (it runs on the
    /// producer's task, once per record); where it answers `None`, the default rules apply:
    /// murmur2 of the key as the Java client, sticky for records without a key. A partition
    /// out of range fails that record with [`Error::PartitionOutOfRange`].
    pub fn partitioner(mut self, partitioner: impl Partitioner + Send + 'static) -> Self {
        self.partitioner = Some(Box::new(partitioner));
        self
    }

    /// With `sasl.mechanism=OAUTHBEARER`, tokens come from `refresh` (librdkafka's
    /// `oauthbearer_token_refresh_cb`): it is given `sasl.oauthbearer.config` and called when
    /// the producer starts, then at 80 % of each token's lifetime; an `Err` is reported in
    /// [`Producer::health`] and in the errors of records that wait to authenticate, and asked
    /// again 10 s later. Without the mechanism it is never called.
    pub fn oauthbearer_token_refresh<F, Fut>(mut self, refresh: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<crate::OAuthBearerToken, String>> + Send + 'static,
    {
        self.token_refresh = Some(Arc::new(move |config| Box::pin(refresh(config))));
        self
    }

    /// Starts the producer on the current tokio runtime.
    pub fn build(self) -> Result<Producer, Error> {
        let producer = Producer::start(self.config, self.handler, self.partitioner)?;
        let oauthbearer = ["sasl.mechanism", "sasl.mechanisms"]
            .iter()
            .any(|k| self.config.get(k).is_some_and(|m| m.trim().eq_ignore_ascii_case("OAUTHBEARER")));
        if let (Some(refresh), true) = (self.token_refresh, oauthbearer) {
            let config = self.config.get("sasl.oauthbearer.config").unwrap_or_default().to_string();
            tokio::spawn(crate::oauth::refresh(producer.cmd.downgrade(), config, refresh));
        }
        Ok(producer)
    }
}

/// An asynchronous Kafka producer. Cheap to clone; all clones feed one background task.
#[derive(Clone)]
pub struct Producer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cmd: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Starts a producer on the current tokio runtime.
    pub fn new(config: &ClientConfig) -> Result<Self, Error> {
        Self::start(config, None, None)
    }

    /// Starts a producer whose records sent with [`send_with_opaque`](Self::send_with_opaque)
    /// report to `handler`, like librdkafka's delivery report callback: the cheapest way to
    /// stream records, with no per-record future or boxed closure.
    pub fn with_delivery_handler(
        config: &ClientConfig,
        handler: impl Fn(u64, Result<Delivery, Error>) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        Self::builder(config).delivery_handler(handler).build()
    }

    /// A producer with more than a configuration: a delivery handler, a custom partitioner.
    pub fn builder(config: &ClientConfig) -> ProducerBuilder<'_> {
        ProducerBuilder { config, handler: None, partitioner: None, token_refresh: None }
    }

    fn start(
        config: &ClientConfig,
        handler: Option<DeliveryHandler>,
        partitioner: Option<Box<dyn Partitioner + Send>>,
    ) -> Result<Self, Error> {
        // tokio::spawn would panic outside a runtime; say so instead.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let settings = config.settings()?;
        let brokers = picokafka::producer::bootstrap::parse(&settings.core.bootstrap_servers).count();
        if brokers > settings.max_brokers {
            return Err(config_error(
                ConfigErrorKind::Capacity,
                Some("picokafka.max.brokers"),
                format!(
                    "bootstrap.servers lists {brokers} addresses but picokafka.max.brokers is {}",
                    settings.max_brokers
                ),
            ));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            space: Notify::new(),
            // A batch's worth (at least 1 MiB) of records waiting for the core, whose own
            // buffers hold the rest: 4 batches' worth only added to the peak RSS (the CLI,
            // 1 MiB batches: 40 -> 32 MiB at the same CPU and wall time).
            cap_bytes: settings.core.batch_size.max(1 << 20),
            max_records: settings.max_queued_records,
            queued: Default::default(),
            max_block: settings.max_block,
            handler,
            last_words: Mutex::new(None),
        });
        let (cmd, cmds) = mpsc::unbounded_channel();
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!("producer", client_id = %settings.core.client_id);
        let task = driver::run(settings, shared.clone(), cmds, partitioner);
        // Every event of the producer's task, the core's included, in its span.
        #[cfg(feature = "tracing")]
        let task = tracing::Instrument::instrument(task, span);
        runtime.spawn(task);
        Ok(Self { shared, cmd })
    }

    /// Sends a record and waits until it is delivered (or fails). A record refused before it is
    /// queued is not handed back here; [`enqueue`](Self::enqueue) and the other queueing calls
    /// return it in their [`Refused`].
    pub async fn send(&self, record: OwnedRecord) -> Result<Delivery, Error> {
        self.enqueue(record).await?.await
    }

    /// Queues a record, waiting up to `max.block.ms` for room; the returned future resolves
    /// when it is delivered. A record not queued comes back in the [`Refused`].
    pub async fn enqueue(&self, record: OwnedRecord) -> Result<DeliveryFuture, Refused> {
        let (tx, rx) = oneshot::channel();
        self.queue(record, Reply::Future(tx), true).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Queues a record without waiting: a full queue hands it back at once
    /// ([`Error::QueueFull`]).
    pub fn try_enqueue(&self, record: OwnedRecord) -> Result<DeliveryFuture, Refused> {
        let (tx, rx) = oneshot::channel();
        let weight = record.weight();
        match self.try_queue(record, Reply::Future(tx), weight) {
            Queuing::Done => Ok(DeliveryFuture { rx }),
            Queuing::Full(record, _) => Err(Refused { error: Error::QueueFull, record }),
            Queuing::Refused(r) => Err(r),
        }
    }

    /// Queues a record; `callback` runs on the producer's task with the outcome. A record not
    /// queued comes back in the [`Refused`] and the callback is not called.
    pub async fn send_with_callback(
        &self,
        record: OwnedRecord,
        callback: impl FnOnce(Result<Delivery, Error>) + Send + 'static,
    ) -> Result<(), Refused> {
        self.queue(record, Reply::Callback(Box::new(callback)), true).await
    }

    /// Queues a record whose outcome goes to the producer's delivery handler with `opaque`
    /// (see [`with_delivery_handler`](Self::with_delivery_handler)); without one, refused.
    pub async fn send_with_opaque(&self, record: OwnedRecord, opaque: u64) -> Result<(), Refused> {
        if self.shared.handler.is_none() {
            let error = config_error(
                ConfigErrorKind::Usage,
                None,
                "send_with_opaque needs a producer made with Producer::with_delivery_handler".into(),
            );
            return Err(Refused { error, record });
        }
        self.queue(record, Reply::Opaque(opaque), true).await
    }

    /// Queues a record and forgets it: no report (pair it with `acks=0` for fire-and-forget).
    /// A record not queued still comes back.
    pub async fn send_and_forget(&self, record: OwnedRecord) -> Result<(), Refused> {
        self.queue(record, Reply::None, true).await
    }

    /// Queues a record whose failure is reported with its partition and attempts.
    pub(crate) async fn send_detailed(
        &self,
        record: OwnedRecord,
        report: impl FnOnce(Result<Delivery, crate::delivery::Failure>) + Send + 'static,
    ) -> Result<(), Refused> {
        self.queue(record, Reply::Detailed(Box::new(report)), true).await
    }

    /// `max.block.ms`.
    pub(crate) fn max_block(&self) -> Duration {
        self.shared.max_block
    }

    async fn queue(&self, record: OwnedRecord, reply: Reply, wait: bool) -> Result<(), Refused> {
        let weight = record.weight();
        // Read the clock only when the queue is full: most records never wait.
        let mut deadline = None;
        let (mut record, mut reply) = (record, reply);
        // Most records find room: only a full queue makes a waiter.
        match self.try_queue(record, reply, weight) {
            Queuing::Done => return Ok(()),
            Queuing::Full(r, back) if wait => (record, reply) = (r, back),
            Queuing::Full(record, _) => return Err(Refused { error: Error::QueueFull, record }),
            Queuing::Refused(r) => return Err(r),
        }
        loop {
            // Registered before the queue is looked at again, so that room made in between
            // is not missed.
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_queue(record, reply, weight) {
                Queuing::Done => return Ok(()),
                Queuing::Full(r, back) => (record, reply) = (r, back),
                Queuing::Refused(r) => return Err(r),
            }
            let deadline =
                *deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.shared.max_block);
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Refused { error: Error::QueueFull, record });
            }
        }
    }

    fn try_queue(&self, record: OwnedRecord, reply: Reply, weight: usize) -> Queuing {
        let mut queue = self.shared.lock();
        // A topic name is checked once, not per record, while records keep coming for it.
        if !queue.valid_topic.as_ref().is_some_and(|t| Arc::ptr_eq(t, &record.topic)) {
            if !picokafka::record::is_valid_topic_name(&record.topic) {
                let error = Error::InvalidTopic { topic: record.topic.to_string() };
                return Queuing::Refused(Refused { error, record });
            }
            queue.valid_topic = Some(record.topic.clone());
        }
        if let Some(e) = &queue.fatal {
            return Queuing::Refused(Refused { error: e.clone(), record });
        }
        if queue.closed {
            return Queuing::Refused(Refused { error: Error::Closed, record });
        }
        // A record heavier than the whole cap still goes in, alone.
        if queue.bytes + weight > self.shared.cap_bytes && queue.bytes > 0 {
            return Queuing::Full(record, reply);
        }
        if !self.shared.take_place() {
            return Queuing::Full(record, reply);
        }
        queue.bytes += weight;
        let mark = queue.mark;
        // The task empties the queue whenever it runs, unless the core is full (then reports
        // wake it): only a record that finds the queue empty needs to wake it.
        let wake = queue.records.is_empty();
        queue.records.push_back(Queued { record, reply, enqueued: std::time::Instant::now(), mark });
        drop(queue);
        if wake {
            self.shared.wake.notify_one();
        }
        Queuing::Done
    }

    /// Sets the OAUTHBEARER token (`sasl.mechanism=OAUTHBEARER` without an unsecured JWT), as
    /// librdkafka's `rd_kafka_oauthbearer_set_token`: connections opened from now on, and
    /// re-authentications before a session ends, send it. Call it again before the token
    /// expires; Kafka ends a session no later than its token's expiry.
    pub async fn set_oauthbearer_token(&self, token: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::OAuthToken(token.to_string(), tx)).map_err(|_| Error::Closed)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Sends every queued record now and waits up to `timeout` until all records queued before
    /// this call are delivered or failed (rust-rdkafka's `flush(timeout)`). Past `timeout`,
    /// [`Error::Timeout`] says how many records are still undelivered; they stay queued and
    /// will be reported as usual.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Flush(self.shared.mark(), tx)).is_err() {
            return Ok(());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let queued = self.health().await.queued_records;
                Err(Error::Timeout(crate::TimeoutError {
                    operation: crate::TimedOperation::Flush { undelivered: queued },
                    waited_ms: timeout.as_millis() as u64,
                }))
            }
        }
    }

    /// Stops accepting records, sends what is queued, and waits up to `timeout` for it; records
    /// still undelivered then are reported failed. Every record gets exactly one outcome.
    pub async fn close(&self, timeout: Duration) {
        self.shared.lock().closed = true;
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Close(timeout, tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The producer's state now or, once it has closed, as it was when it ended.
    async fn snapshot(&self) -> Option<crate::driver::Snapshot> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::Metrics(tx));
        match rx.await {
            Ok(s) => Some(s),
            Err(_) => {
                self.shared.last_words.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
            }
        }
    }

    /// The core's counters and gauges; after `close`, their final values.
    pub async fn metrics(&self) -> Metrics {
        self.snapshot().await.map(|s| s.metrics).unwrap_or_default()
    }

    /// Connection and error state, for health checks. After `close` it is unhealthy, and
    /// `last_error` still says what went wrong last.
    pub async fn health(&self) -> Health {
        let snapshot = self.snapshot().await;
        let stopped = self.cmd.is_closed();
        let Some(crate::driver::Snapshot {
            metrics: m,
            ready,
            known,
            tls_error,
            conn_error,
            waiting,
            auth_error,
            brokers,
        }) = snapshot
        else {
            return Health {
                brokers_ready: 0,
                brokers_known: 0,
                queued_records: 0,
                last_error: None,
                fatal: Some("producer task stopped".into()),
                brokers: Vec::new(),
            };
        };
        // A broker's error code names the broker that answered it, and its address.
        let named = |node: Option<i32>| {
            node.map_or(String::new(), |node| match brokers.iter().find(|b| b.node_id == node) {
                Some(b) => format!(" from broker {node} at {}", b.address),
                None => format!(" from broker {node}"),
            })
        };
        let (from, refused_by) = (named(m.last_broker_error_from), named(m.last_refused_by));
        let (ready, known, brokers) = if stopped { (0, 0, Vec::new()) } else { (ready, known, brokers) };
        // The most telling first: a TLS or SASL refusal, then a connection that cannot be made
        // (with its address), then what the brokers said.
        let delivery_error = m.last_delivery_error.map(|e| match e {
            picokafka::DeliveryError::Broker(_) => format!("{e}{refused_by}"),
            e => e.to_string(),
        });
        let last_error = tls_error
            .or(auth_error.clone())
            .or(conn_error)
            .or(delivery_error)
            .or(m.last_broker_error.map(|e| format!("{e}{from}")))
            .or(m.last_connection_error.map(|e| e.to_string()));
        Health {
            brokers_ready: ready,
            brokers_known: known,
            queued_records: m.queued_records + waiting,
            last_error,
            fatal: m
                .fatal
                .map(|e| auth_error.unwrap_or_else(|| e.to_string()))
                .or_else(|| stopped.then(|| "producer closed".into())),
            brokers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `queue.buffering.max.messages`: records accepted and not yet reported are bounded; the
    /// next is refused with `QueueFull`, as a full `buffer.memory` refuses it.
    #[tokio::test]
    async fn queued_records_are_bounded() {
        let mut config = ClientConfig::new();
        // Nothing listens on port 1: no record is ever reported before the test ends.
        config.set("bootstrap.servers", "127.0.0.1:1").set("queue.buffering.max.messages", "3");
        let producer = Producer::new(&config).unwrap();
        let record = || OwnedRecord::new("t").value("v");
        let _held: Vec<_> = (0..3).map(|_| producer.try_enqueue(record()).unwrap()).collect();
        assert!(matches!(producer.try_enqueue(record()), Err(Refused { error: Error::QueueFull, .. })));

        // Without the setting, the same records are taken.
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        let producer = Producer::new(&config).unwrap();
        let _held: Vec<_> = (0..4).map(|_| producer.try_enqueue(record()).unwrap()).collect();
    }
}
