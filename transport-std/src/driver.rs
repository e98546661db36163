//! The producer's task: owns the core and its memory, feeds it records, moves bytes between it
//! and the sockets, keeps its one timer. No protocol decisions are made here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use picokafka::storage::{BatchSlot, ConnSlot, PartitionSlot, TopicSlot};
use picokafka::{
    Compression, ConnId, DeliveryError, Event, GroupMetadata, Header, Instant, Metrics, Producer as Core,
    Record, SendError, Storage, TopicPartitionOffset, TxnError, TxnOp, TxnState,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::delivery::Delivery;
use crate::error::{
    config_error, map_send_error, AuthenticationError, ConfigError, ConfigErrorKind, Error, MetadataCause,
};
use crate::outstanding::{MarkCounts, Outstanding, Outstandings};
use crate::shared::{Queued, Shared};
use crate::socket::{self, BufPool, Io, Socket, WRITE_TIMEOUT};
use crate::transaction::TxnCmd;

/// Bytes `poll_transmit` may write per call.
const WRITE_CHUNK: usize = 64 * 1024;

/// Requests from the handles.
pub(crate) enum Cmd {
    /// Answered once every record queued at or before the mark has its outcome.
    Flush(u64, oneshot::Sender<()>),
    Close(Duration, oneshot::Sender<()>),
    /// Metrics, with (ready, known) connection counts and the last TLS handshake failure.
    Metrics(oneshot::Sender<Snapshot>),
    /// A new OAUTHBEARER token, for the next SASL exchanges.
    OAuthToken(String, oneshot::Sender<Result<(), Error>>),
    /// The application's token source failed: why.
    OAuthTokenFailure(String),
    /// A transactional operation; answered when it ends.
    Txn(TxnCmd, oneshot::Sender<Result<(), Error>>),
}

/// Records fed to the core per loop turn, so sockets and timers are not starved.
const FEED_PER_TURN: usize = 65_536;

/// Records offered to the core under one hold of the queue's lock.
const TAKE_PER_LOCK: usize = 64;

/// What the core made of a record offered to it.
enum Offer {
    Taken {
        token: picokafka::RecordToken,
        timestamp: i64,
    },
    /// Not now (no room, no metadata): it stays at the queue's front.
    Wait,
    /// Never: the caller gets this.
    Refused(Error),
}

struct Driver<'a> {
    core: Core<'a>,
    shared: Arc<Shared>,
    start: tokio::time::Instant,
    io_tx: mpsc::UnboundedSender<Io>,
    sockets: HashMap<ConnId, Socket>,
    /// When the record at the queue's front, which the core could not take yet, was queued:
    /// `max.block.ms` runs from then.
    blocked: Option<std::time::Instant>,
    outstanding: Outstandings,
    /// Records in the core, not yet reported, per mark (`Queued::mark`).
    per_mark: MarkCounts,
    /// Flushes, with the mark each waits for.
    flush_waiters: Vec<(u64, oneshot::Sender<()>)>,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// Close deadline, once closing.
    closing: Option<Instant>,
    /// Whether the core was told to close (after the records it had not taken went in).
    core_closed: bool,
    max_block: Duration,
    tx_buf: Vec<u8>,
    out: HashMap<ConnId, Vec<u8>>,
    bufs: Arc<BufPool>,
    /// How each connection is opened: setup timeout, TLS, socket buffer sizes.
    dial: socket::Dial,
    /// The last connection's TLS handshake failure, until a connection succeeds.
    tls_error: Option<crate::error::TlsError>,
    /// The last failure to connect (refused, unresolvable, timed out), naming the address,
    /// until a connection succeeds: why records wait, in their errors and in `health()`.
    conn_error: Option<String>,
    /// Why the last OAUTHBEARER token refresh failed, until one succeeds.
    token_error: Option<String>,
    /// Writers of closed sockets still writing what they were given.
    closing_writers: Vec<JoinHandle<()>>,
    /// Callers waiting for a transactional operation to end.
    txn_waiters: Vec<(TxnOp, oneshot::Sender<Result<(), Error>>)>,
    /// A commit waiting for the records queued at or before this mark to enter the core.
    commit_mark: Option<u64>,
    /// Topics whose records waited `max.block.ms` for metadata while the brokers answered an
    /// error for them (UNKNOWN_TOPIC_OR_PARTITION, say) or while no broker could be reached:
    /// later records for them are refused at once while that lasts, as librdkafka fails a topic
    /// it knows does not exist. Without this each queueful of records would wait `max.block.ms`
    /// anew: a mistyped topic, or a broker address nobody listens on, with a million records on
    /// stdin took hours to fail.
    absent: HashSet<Arc<str>>,
}

/// The producer's state, for `metrics()` and `health()`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    pub metrics: Metrics,
    /// Connections ready, and known.
    pub ready: usize,
    pub known: usize,
    /// The last TLS handshake failure, until a connection succeeds.
    pub tls_error: Option<String>,
    /// The last failure to connect, until a connection succeeds.
    pub conn_error: Option<String>,
    /// Records taken from the handles that the core has not accepted yet (waiting for
    /// metadata or room).
    pub waiting: u64,
    /// Every connection slot in use.
    pub brokers: Vec<crate::producer::BrokerState>,
    /// Why SASL authentication failed for good.
    pub auth_error: Option<String>,
}

pub(crate) async fn run(
    settings: Settings,
    shared: Arc<Shared>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut partitioner: Option<Box<dyn picokafka::Partitioner + Send>>,
) {
    let batch_size = settings.core.batch_size;
    let mut batch_memory = vec![0u8; settings.batch_buffers * batch_size];
    let mut batches = vec![BatchSlot::EMPTY; settings.batch_buffers];
    // Compression of a batch sized to one large record needs room up to max.request.size.
    let largest = if settings.core.compression == Compression::None {
        batch_size
    } else {
        settings.core.max_request_size.max(batch_size)
    };
    let scratch_len = settings.core.compression.scratch_len(largest).max(batch_size);
    let mut scratch = vec![0u8; scratch_len];
    let mut rx_memory = vec![0u8; settings.max_brokers * settings.response_max_bytes];
    let mut conns = vec![ConnSlot::EMPTY; settings.max_brokers];
    let mut topics = vec![TopicSlot::EMPTY; settings.max_topics];
    let mut partitions = vec![PartitionSlot::EMPTY; settings.max_partitions];
    // SCRAM nonces come from the OS; it outlives the core that borrows it.
    let mut os_rng = rand_core::OsRng;
    let storage = Storage {
        batch_memory: &mut batch_memory,
        batches: &mut batches,
        scratch: &mut scratch,
        rx_memory: &mut rx_memory,
        conns: &mut conns,
        topics: &mut topics,
        partitions: &mut partitions,
    };
    let start = tokio::time::Instant::now();
    let mut core = match Core::new(settings.core.clone(), storage, Instant::from_millis(0)) {
        Ok(core) => core,
        Err(e) => {
            error!("cannot start producer: {e}");
            fail_everything(&shared, &mut cmds, Error::Config(ConfigError::of_core(e, None, e.to_string())))
                .await;
            return;
        }
    };
    if let Some(p) = partitioner.as_mut() {
        core.set_partitioner(p.as_mut());
    }
    core.set_crypto_rng(&mut os_rng);
    let (io_tx, mut io_rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        core,
        shared,
        start,
        io_tx,
        sockets: HashMap::new(),
        blocked: None,
        outstanding: Outstandings::default(),
        per_mark: MarkCounts::default(),
        flush_waiters: Vec::new(),
        close_waiters: Vec::new(),
        closing: None,
        core_closed: false,
        max_block: settings.max_block,
        tx_buf: vec![0u8; WRITE_CHUNK],
        out: HashMap::new(),
        bufs: Arc::default(),
        dial: socket::Dial { tls: settings.tls.clone(), buffers: settings.socket_buffers },
        tls_error: None,
        conn_error: None,
        token_error: None,
        closing_writers: Vec::new(),
        txn_waiters: Vec::new(),
        commit_mark: None,
        absent: HashSet::new(),
    };
    let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    d.core.set_unix_time(Instant::from_millis(0), unix_ms);

    let sleep = tokio::time::sleep_until(start);
    tokio::pin!(sleep);
    loop {
        // Reports free batch buffers, which lets a record waiting for room in: go round until
        // neither side moves, or it would wait for an unrelated wake-up.
        loop {
            d.feed();
            d.progress_close();
            let reported = d.drain();
            d.note_fatal();
            if !reported || d.blocked.is_none() {
                break;
            }
        }
        d.answer_flushes();
        // Once the core is closed, the queue is empty and stays so (it is closed too).
        if d.core_closed && d.core.is_closed() {
            break;
        }
        let wake = d.next_wake();
        sleep.as_mut().reset(wake);
        tokio::select! {
            biased;
            Some(io) = io_rx.recv() => {
                d.on_io(io);
                while let Ok(io) = io_rx.try_recv() {
                    d.on_io(io);
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(cmd) => d.on_cmd(cmd),
                // Every handle is gone: close with the delivery timeout as the deadline.
                None if d.closing.is_none() => d.start_close(Duration::from_millis(u64::from(
                    settings.core.delivery_timeout_ms,
                ))),
                None => {}
            },
            _ = d.shared.wake.notified() => {}
            _ = &mut sleep => {
                let now = d.now();
                d.core.handle_timeout(now);
            }
        }
    }
    // What `metrics()` and `health()` answer from now on: the producer's last state.
    *d.shared.last_words.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(d.snapshot());
    // Bytes handed to sockets reach the wire before `close` returns.
    for w in d.closing_writers.drain(..) {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, w).await;
    }
    for w in d.close_waiters.drain(..) {
        let _ = w.send(());
    }
    for (_, w) in d.flush_waiters.drain(..) {
        let _ = w.send(());
    }
}

/// The core could not start: answer every record and request with the error.
async fn fail_everything(shared: &Shared, cmds: &mut mpsc::UnboundedReceiver<Cmd>, error: Error) {
    loop {
        let queued = {
            let mut queue = shared.lock();
            queue.bytes = 0;
            std::mem::take(&mut queue.records)
        };
        for q in queued {
            shared.report(q.reply, Err(error.clone()));
        }
        shared.space.notify_waiters();
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Flush(_, tx) | Cmd::Close(_, tx)) => { let _ = tx.send(()); }
                Some(Cmd::Metrics(tx)) => { let _ = tx.send(Snapshot::default()); }
                Some(Cmd::OAuthToken(_, tx) | Cmd::Txn(_, tx)) => { let _ = tx.send(Err(error.clone())); }
                Some(Cmd::OAuthTokenFailure(_)) => {}
                None => return,
            },
            _ = shared.wake.notified() => {}
        }
    }
}

impl Driver<'_> {
    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.start + Duration::from_millis(t.as_millis().min(u64::MAX / 4))
    }

    /// The earliest of the core's timer and the `max.block.ms` of the oldest waiting record.
    fn next_wake(&self) -> tokio::time::Instant {
        let core = self.core.poll_timeout().map(|t| self.to_tokio(t));
        let blocked = match self.closing {
            Some(deadline) if !self.core_closed => Some(self.to_tokio(deadline)),
            _ => self.blocked.map(|queued| tokio::time::Instant::from_std(queued + self.max_block)),
        };
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        [core, blocked].into_iter().flatten().min().unwrap_or(far)
    }

    /// Moves queued records into the core, in order, until it refuses one for lack of room or
    /// metadata (that one stays at the queue's front) or the queue is empty.
    fn feed(&mut self) {
        let now = self.now();
        self.blocked = None;
        let shared = self.shared.clone();
        // Refused records are reported once the lock is released: a report runs the
        // application's callback, which may send.
        let mut refused = Vec::new();
        let mut fed = 0;
        loop {
            // A commit's records only, while a commit waits for them.
            let limit = self.commit_mark.unwrap_or(u64::MAX);
            let mut queue = shared.lock();
            let (mut offered, mut freed, mut stopped) = (0, 0, false);
            // The core borrows each record where it waits; only what it took leaves the queue.
            // Senders wait for the lock at most `TAKE_PER_LOCK` offers long.
            while offered < TAKE_PER_LOCK {
                let Some(q) = queue.records.front().filter(|q| q.mark <= limit) else { break };
                if fed >= FEED_PER_TURN {
                    self.shared.wake.notify_one();
                    stopped = true;
                    break;
                }
                let taken = match self.offer(now, q) {
                    Offer::Wait => {
                        self.blocked = Some(q.enqueued);
                        stopped = true;
                        break;
                    }
                    Offer::Taken { token, timestamp } => Ok((token, timestamp)),
                    Offer::Refused(error) => Err(error),
                };
                let Some(q) = queue.records.pop_front() else { break };
                freed += q.record.weight();
                match taken {
                    Ok((token, timestamp)) => {
                        let o = Outstanding { reply: q.reply, timestamp, mark: q.mark as u32, n: 0 };
                        self.outstanding.push(token, &q.record.topic, o);
                        self.per_mark.add(q.mark);
                    }
                    Err(error) => refused.push((q.reply, error)),
                }
                offered += 1;
                fed += 1;
            }
            queue.bytes -= freed;
            drop(queue);
            for (reply, error) in refused.drain(..) {
                shared.report(reply, Err(error));
            }
            if freed > 0 {
                shared.space.notify_waiters();
            }
            if stopped {
                return;
            }
            if offered == 0 {
                if self.commit_mark.take().is_some() {
                    // Every record sent before the commit is in: commit, before later ones go in.
                    self.start_txn(TxnOp::Commit);
                    continue;
                }
                return;
            }
        }
    }

    /// Offers one record to the core.
    fn offer(&mut self, now: Instant, q: &Queued) -> Offer {
        let r = &q.record;
        let (retriable, metadata, mut error) = {
            let headers: Vec<Header<'_>> =
                r.headers.iter().map(|(k, v)| Header { key: k, value: v.as_deref() }).collect();
            let record = Record {
                topic: &r.topic,
                partition: r.partition,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &headers,
                timestamp: r.timestamp,
            };
            match self.core.send(now, record) {
                Ok(accepted) => {
                    if !self.absent.is_empty() {
                        self.absent.remove(&r.topic);
                    }
                    return Offer::Taken { token: accepted.token, timestamp: accepted.timestamp };
                }
                Err(e) => (
                    e.is_retriable(),
                    matches!(e, SendError::MetadataPending(_)),
                    self.send_error(&e, &r.topic),
                ),
            }
        };
        if retriable {
            // Wait for room up to max.block.ms, or while closing, up to the close deadline; for
            // metadata, never longer than max.block.ms (Java's "not present in metadata after
            // max.block.ms"), closing or not.
            // The brokers answer an error for the topic, or none can be reached (every attempt
            // refused or timed out, not one still under way); known absent if so already when
            // an earlier record of it waited out max.block.ms.
            let answered = matches!(
                &error,
                Error::MetadataTimeout {
                    cause: Some(MetadataCause::Topic(_) | MetadataCause::NoBrokerReachable(_)),
                    ..
                }
            );
            let absent = answered && !self.absent.is_empty() && self.absent.contains(&r.topic);
            let waited = q.enqueued.elapsed();
            let blocked = absent || waited >= self.max_block;
            let waiting = match self.closing {
                Some(deadline) => now < deadline && !(metadata && blocked),
                None => !blocked,
            };
            if waiting {
                return Offer::Wait;
            }
            error = match error {
                // The close deadline came before max.block.ms, or the topic is known absent: say
                // how long it was.
                Error::MetadataTimeout { topic, cause, .. } if waited < self.max_block => {
                    Error::MetadataTimeout { topic, waited_ms: waited.as_millis() as u64, cause }
                }
                _ if self.closing.is_some() && !metadata => Error::Closed,
                error => error,
            };
            if answered && !absent {
                self.absent.insert(r.topic.clone());
            }
        }
        Offer::Refused(error)
    }

    /// What a refused record's caller is told: the core's refusal, with its cause where the
    /// transport knows it.
    fn send_error(&self, e: &SendError<'_>, topic: &str) -> Error {
        let auth = self.auth_failure();
        match (e, &self.tls_error) {
            // Waiting for metadata no broker will send: say why.
            (SendError::MetadataPending(_), Some(tls)) => Error::Tls(tls.clone()),
            (SendError::Fatal(_), _) if auth.is_some() => auth.unwrap_or(Error::Closed),
            (SendError::Fatal(code), _) => self.fatal_cause(*code),
            // The transaction cannot commit: the record is refused with why, as the Java
            // client throws the abortable error itself.
            (SendError::NoTransaction(TxnState::AbortableError), _) => {
                self.core.transaction_error().map_or_else(|| map_send_error(e, topic), Error::Transaction)
            }
            (SendError::MetadataPending(_), None) => Error::MetadataTimeout {
                topic: topic.to_string(),
                waited_ms: self.max_block.as_millis() as u64,
                cause: self.metadata_cause(topic),
            },
            _ => map_send_error(e, topic),
        }
    }

    /// Takes every queued record out of the queue while `take` says so, from the front.
    fn take_queued(&mut self, take: impl Fn(&Queued) -> bool) -> Vec<Queued> {
        let mut queue = self.shared.lock();
        let mut taken = Vec::new();
        while queue.records.front().is_some_and(&take) {
            taken.extend(queue.records.pop_front());
        }
        queue.bytes -= taken.iter().map(|q| q.record.weight()).sum::<usize>();
        drop(queue);
        if !taken.is_empty() {
            self.blocked = None;
            self.shared.space.notify_waiters();
        }
        taken
    }

    /// Why a topic's metadata has not come, as far as the producer can tell: no broker
    /// reachable (with the socket's error), or what the brokers answer for the topic.
    fn metadata_cause(&self, topic: &str) -> Option<MetadataCause> {
        if let Some(e) = &self.token_error {
            return Some(MetadataCause::Token(e.clone()));
        }
        let ready = (0..)
            .map_while(|i| self.core.connection(i))
            .any(|c| c.state == picokafka::producer::ConnPhase::Ready);
        if let (false, Some(e)) = (ready, &self.conn_error) {
            return Some(MetadataCause::NoBrokerReachable(e.clone()));
        }
        if let Some(code) = self.core.topic_error(topic) {
            return Some(MetadataCause::Topic(code));
        }
        if !ready {
            return Some(MetadataCause::NoConnectionReady);
        }
        None
    }

    /// A refused SASL login, as the error a caller gets.
    fn auth_failure(&self) -> Option<Error> {
        self.core
            .auth_error()
            .map(|a| Error::Authentication(Box::new(AuthenticationError::from_core(None, &a))))
    }

    /// Once the core has failed for good, new records are refused where they are queued, at
    /// once, with the cause (an authentication error names it), instead of each waiting to be
    /// refused by the core.
    fn note_fatal(&mut self) {
        let Some(code) = self.core.fatal_error() else { return };
        let mut queue = self.shared.lock();
        if queue.fatal.is_none() {
            queue.fatal = Some(self.auth_failure().unwrap_or_else(|| self.fatal_cause(code)));
        }
    }

    /// A fatal error as callers see it: a transactional producer's names the fence.
    fn fatal_cause(&self, code: picokafka::protocol::ErrorCode) -> Error {
        if self.core.transaction_state() == TxnState::FatalError {
            Error::Transaction(TxnError::Fatal(code))
        } else {
            Error::Fatal(code)
        }
    }

    fn on_txn(&mut self, cmd: TxnCmd, tx: oneshot::Sender<Result<(), Error>>) {
        let now = self.now();
        let op = cmd.op();
        match cmd {
            TxnCmd::Begin => {
                let _ = tx.send(self.core.begin_transaction().map_err(Error::Transaction));
            }
            TxnCmd::Init => {
                self.txn_waiters.push((op, tx));
                self.start_txn(op);
            }
            TxnCmd::SendOffsets { group, offsets } => {
                let list: Vec<TopicPartitionOffset<'_>> = offsets
                    .iter()
                    .map(|(topic, partition, offset)| TopicPartitionOffset {
                        topic,
                        partition: *partition,
                        offset: *offset,
                    })
                    .collect();
                let group = GroupMetadata {
                    group_id: &group.group_id,
                    generation_id: group.generation_id,
                    member_id: &group.member_id,
                    group_instance_id: group.group_instance_id.as_deref(),
                };
                match self.core.send_offsets_to_transaction(now, &group, &list) {
                    // No offsets: nothing to wait for.
                    Ok(()) if list.is_empty() => {
                        let _ = tx.send(Ok(()));
                    }
                    Ok(()) => self.txn_waiters.push((op, tx)),
                    Err(e) => {
                        let _ = tx.send(Err(Error::Transaction(e)));
                    }
                }
            }
            TxnCmd::Commit { mark } => {
                self.txn_waiters.push((op, tx));
                // Records sent before the commit belong to the transaction: `feed` starts the
                // commit once they are in the core, before later ones go in.
                self.commit_mark = Some(self.commit_mark.map_or(mark, |m| m.max(mark)));
                self.core.flush(now);
                self.feed();
            }
            TxnCmd::Abort { mark } => {
                self.txn_waiters.push((op, tx));
                // Records sent before the abort and not yet in the core are aborted with it.
                for q in self.take_queued(|q| q.mark <= mark) {
                    self.shared.report(q.reply, Err(Error::Delivery(DeliveryError::Aborted)));
                }
                if self.commit_mark.take().is_some() {
                    let state = TxnState::Aborting;
                    self.end_txn_waiters(
                        TxnOp::Commit,
                        Err(TxnError::InvalidState { op: TxnOp::Commit, state }),
                    );
                }
                self.start_txn(op);
            }
        }
    }

    /// Starts `op` in the core; a refusal answers its waiters at once.
    fn start_txn(&mut self, op: TxnOp) {
        let now = self.now();
        let started = match op {
            TxnOp::Init => self.core.init_transactions(now),
            TxnOp::Commit => self.core.commit_transaction(now),
            TxnOp::Abort => self.core.abort_transaction(now),
            TxnOp::Begin | TxnOp::SendOffsets => Ok(()),
        };
        if let Err(e) = started {
            self.end_txn_waiters(op, Err(e));
        }
    }

    fn end_txn_waiters(&mut self, op: TxnOp, result: Result<(), TxnError>) {
        let (done, waiting) = std::mem::take(&mut self.txn_waiters).into_iter().partition(|(o, _)| *o == op);
        self.txn_waiters = waiting;
        for (_, tx) in done {
            let _ = tx.send(result.map_err(Error::Transaction));
        }
    }

    /// Hands events and bytes between the core and the sockets until neither has more. Whether
    /// any delivery report was handed out (which frees batch buffers).
    fn drain(&mut self) -> bool {
        let mut reported = false;
        loop {
            let mut progressed = false;
            while let Some(event) = self.core.poll_event() {
                progressed = true;
                match event {
                    Event::Connect { conn, host, port, timeout } => {
                        let host = host.to_string();
                        self.connect(conn, host, port, Duration::from_millis(timeout.as_millis()));
                    }
                    Event::Close { conn } => {
                        if let Some(write) = self.sockets.remove(&conn).and_then(Socket::close) {
                            self.closing_writers.retain(|w| !w.is_finished());
                            self.closing_writers.push(write);
                        }
                        self.out.remove(&conn);
                    }
                    Event::Delivered { token, partition, offset, log_append_time } => {
                        reported = true;
                        if let Some((topic, o)) = self.outstanding.take(token) {
                            let timestamp = log_append_time.unwrap_or(o.timestamp);
                            self.shared.report(o.reply, Ok(Delivery { topic, partition, offset, timestamp }));
                            self.per_mark.done(o.mark);
                        }
                    }
                    Event::Failed { token, partition, error, attempts } => {
                        reported = true;
                        if let Some((_, o)) = self.outstanding.take(token) {
                            let error = match (error, self.auth_failure()) {
                                (DeliveryError::Fatal(_), Some(auth)) => auth,
                                _ => Error::Delivery(error),
                            };
                            let failure = crate::delivery::Failure { error, partition, attempts };
                            self.shared.report_failure(o.reply, failure);
                            self.per_mark.done(o.mark);
                        }
                    }
                    Event::Transaction { op, result } => self.end_txn_waiters(op, result),
                    // Events a newer core may add concern no socket and no report.
                    _ => {}
                }
            }
            let now = self.now();
            while let Some(t) = self.core.poll_transmit(now, &mut self.tx_buf) {
                progressed = true;
                let bufs = &self.bufs;
                self.out
                    .entry(t.conn)
                    .or_insert_with(|| bufs.take())
                    .extend_from_slice(&self.tx_buf[..t.len]);
            }
            for (conn, bytes) in self.out.drain() {
                let sent = match self.sockets.get(&conn) {
                    Some(Socket::Open { writer: Some(writer), .. }) => writer.send(bytes).is_ok(),
                    _ => false,
                };
                if !sent {
                    self.core.handle_disconnected(now, conn);
                }
            }
            if !progressed {
                return reported;
            }
        }
    }

    /// Opens `conn`'s socket, within the time the core gave the attempt.
    fn connect(&mut self, conn: ConnId, host: String, port: u16, setup: Duration) {
        let task = socket::open(conn, host, port, setup, self.dial.clone(), &self.io_tx, &self.bufs);
        self.sockets.insert(conn, Socket::Connecting(task));
    }

    fn on_io(&mut self, io: Io) {
        let now = self.now();
        match io {
            Io::Connected { conn, writer, read, write } => {
                self.tls_error = None;
                self.conn_error = None;
                let socket = Socket::Open { writer: Some(writer), read, write: Some(write) };
                if let Some(slot) = self.sockets.get_mut(&conn) {
                    *slot = socket;
                    self.core.handle_connected(now, conn);
                }
            }
            Io::Failed { conn, cause, tls_error } => {
                self.tls_error = tls_error;
                self.conn_error = Some(cause);
                if self.sockets.remove(&conn).is_some() {
                    self.core.handle_disconnected(now, conn);
                }
            }
            Io::Disconnected { conn } => {
                if self.sockets.remove(&conn).is_some() {
                    self.core.handle_disconnected(now, conn);
                }
            }
            Io::Input { conn, data } => {
                let mut at = 0;
                while at < data.len() && self.sockets.contains_key(&conn) {
                    let n = self.core.handle_input(now, conn, &data[at..]);
                    if n == 0 {
                        break;
                    }
                    at += n;
                }
                self.bufs.give(data);
            }
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Txn(cmd, tx) => self.on_txn(cmd, tx),
            Cmd::OAuthTokenFailure(why) => {
                self.token_error = Some(format!("OAUTHBEARER token refresh failed: {why}"));
            }
            Cmd::OAuthToken(token, tx) => {
                let result = self.core.set_oauthbearer_token(&token).map_err(|_| {
                    config_error(
                        ConfigErrorKind::Capacity,
                        None,
                        format!(
                            "OAUTHBEARER token of {} bytes exceeds {} bytes",
                            token.len(),
                            picokafka::producer::TOKEN_MAX
                        ),
                    )
                });
                if result.is_ok() {
                    self.token_error = None;
                }
                // A producer waiting for a token may now authenticate.
                self.core.handle_timeout(self.now());
                let _ = tx.send(result);
            }
            Cmd::Flush(mark, tx) => {
                self.feed();
                let now = self.now();
                self.core.flush(now);
                self.flush_waiters.push((mark, tx));
            }
            Cmd::Close(timeout, tx) => {
                self.close_waiters.push(tx);
                if self.closing.is_none() {
                    self.start_close(timeout);
                }
            }
            Cmd::Metrics(tx) => {
                let _ = tx.send(self.snapshot());
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let m = self.core.metrics();
        let mut ready = 0;
        let mut known = 0;
        let mut brokers = Vec::new();
        for i in 0.. {
            let Some(c) = self.core.connection(i) else { break };
            if c.state == picokafka::producer::ConnPhase::Unused {
                continue;
            }
            known += 1;
            ready += usize::from(c.state == picokafka::producer::ConnPhase::Ready);
            brokers.push(crate::producer::BrokerState {
                node_id: c.node_id,
                address: format!("{}:{}", c.host, c.port),
                state: c.state,
                in_flight: c.in_flight,
            });
        }
        let auth_error = self.core.auth_error().map(|a| a.to_string());
        let tls_error = self.tls_error.as_ref().map(ToString::to_string);
        // A failing token source says more than the connection it leaves unauthenticated.
        let conn_error = self.token_error.clone().or_else(|| self.conn_error.clone());
        let waiting = self.shared.lock().records.len() as u64;
        Snapshot { metrics: m, ready, known, tls_error, conn_error, waiting, auth_error, brokers }
    }

    /// Stops new records; those already queued still go in until `timeout` passes.
    fn start_close(&mut self, timeout: Duration) {
        self.shared.lock().closed = true;
        let now = self.now();
        self.closing = Some(now + picokafka::Duration::from_millis(timeout.as_millis() as u64));
        self.core.flush(now);
    }

    /// Once every queued record is in the core (or the deadline passed), closes the core, which
    /// reports what it cannot deliver in time.
    fn progress_close(&mut self) {
        let Some(deadline) = self.closing else { return };
        if self.core_closed {
            return;
        }
        let now = self.now();
        if !self.shared.lock().records.is_empty() && now < deadline {
            self.core.flush(now);
            return;
        }
        for q in self.take_queued(|_| true) {
            self.shared.report(q.reply, Err(Error::Closed));
        }
        self.core.close(now, deadline.saturating_since(now));
        self.core_closed = true;
    }

    fn answer_flushes(&mut self) {
        if self.flush_waiters.is_empty() {
            return;
        }
        // The oldest mark with a record still waiting, in the queue or in the core: the queue
        // is in mark order.
        let queued = self.shared.lock().records.front().map(|q| q.mark);
        let oldest = [queued, self.per_mark.oldest()].into_iter().flatten().min();
        self.flush_waiters.retain_mut(|(mark, _)| oldest.is_some_and(|o| o <= *mark));
        // `retain_mut` dropped the satisfied senders, which resolves their receivers.
    }
}
