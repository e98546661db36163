//! `picokafka-embassy`: the microcontroller transport of picokafka.
//!
//! Drives the `picokafka` core over embassy-net `TcpSocket`s, `no_std` and without a heap, shaped
//! like embassy-net itself: caller-owned [`State`] and [`SocketBuffers`] (put them in a
//! `StaticCell`), a [`Runner`] whose `run()` never returns, and a cheap [`Handle`] the
//! application uses to send records — `send(..).await` (queued, waiting for room up to
//! `max_block`), `try_send` (queued or refused at once: fire and forget) or
//! `send_and_wait(..).await` (until its delivery report) — and to read delivery [`Report`]s.
//!
//! With feature `transactions`, the handle also runs transactions: `init_transactions`,
//! `begin_transaction`, `send_offsets_to_transaction`, `commit_transaction`,
//! `abort_transaction`, as the Java client names them.
//!
//! With feature `sasl`, `security.protocol=SASL_PLAINTEXT` also speaks SCRAM-SHA-256 and
//! SCRAM-SHA-512 (PLAIN needs no feature): the core runs the exchange; give the producer a
//! cryptographically secure RNG for its nonces with `Producer::set_crypto_rng` before
//! [`new`] — the board's TRNG on hardware, never a seeded PRNG. A refused password makes the
//! producer fatal: [`Handle::auth_error`] says why.
//!
//! The runner only moves bytes, opens and closes sockets, resolves names and keeps the core's one
//! timer. Every protocol decision is the core's.
//!
//! ```ignore
//! static STATE: StaticCell<State<'static, NoopRawMutex, 16>> = StaticCell::new();
//! static SOCKETS: StaticCell<SocketBuffers<1, 2048, 2048>> = StaticCell::new();
//! let producer = picokafka::Producer::new(config, RESOURCES.init(Resources::new()).storage(), now)?;
//! let (handle, mut runner) = picokafka_embassy::new(
//!     stack, producer, STATE.init(State::new()), SOCKETS.init(SocketBuffers::new()), Settings::default())?;
//! spawner.spawn(kafka_task(runner));          // async fn kafka_task(mut r: Runner<..>) -> ! { r.run().await }
//! handle.send(Record::new("telemetry").value(b"42")).await?;
//! ```

#![deny(missing_docs)]
#![no_std]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![forbid(unsafe_code)]

use core::cell::RefCell;

use embassy_futures::select::{select, select3, select_array};
use embassy_net::tcp::{State as TcpState, TcpSocket};
use embassy_net::{IpAddress, IpEndpoint, Ipv4Address, Stack};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Instant, Timer};
use heapless::String;
pub use picokafka;
use picokafka::storage::HOST_MAX;
use picokafka::{Accepted, ConnId, DeliveryError, Event, Metrics, Producer, Record, RecordToken, SendError};

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// The record, as `send` returned it.
    pub token: RecordToken,
    /// The partition it went to.
    pub partition: i32,
    /// Where it landed, or why it was not delivered.
    pub outcome: Result<Delivered, DeliveryError>,
}

/// Where a delivered record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Delivered {
    /// `-1` with acks=0.
    pub offset: i64,
    /// The broker's append time on LogAppendTime topics; otherwise the record keeps the
    /// CreateTime `send` returned.
    pub log_append_time: Option<i64>,
}

/// Transport settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long `Handle::send` waits for room or metadata before giving the error back.
    pub max_block: Duration,
    /// Whether delivery reports are queued for [`Handle::next_report`]. Without it they are only
    /// counted (in the core's metrics). The report of a [`Handle::send_and_wait`] goes to its
    /// caller either way, not to the queue. With it, read them from a task of their own (or often
    /// enough): a report that finds the queue full is dropped and counted in
    /// [`Handle::reports_dropped`], so that an application busy sending never stalls the producer.
    pub reports: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_block: Duration::from_secs(60), reports: true }
    }
}

/// A transactional operation that ended, and how.
#[cfg(feature = "transactions")]
type TxnEnd = (picokafka::TxnOp, Result<(), picokafka::TxnError>);

/// State shared by the [`Handle`] and the [`Runner`]. `M` is the mutex kind: `NoopRawMutex`
/// when both run on one executor, `CriticalSectionRawMutex` across executors or interrupts.
pub struct State<'d, M: RawMutex, const REPORTS: usize> {
    producer: Mutex<M, RefCell<Option<Producer<'d>>>>,
    /// Wakes the runner: records were sent, or a flush or close was asked.
    wake: Signal<M, ()>,
    /// Wakes a sender waiting for room: the runner made progress.
    progress: Signal<M, ()>,
    reports: Channel<M, Report, REPORTS>,
    reports_dropped: Mutex<M, core::cell::Cell<u32>>,
    /// `send_and_wait`: one caller at a time, the record it waits for, its report, and the
    /// signal that the report is in.
    waiter: embassy_sync::mutex::Mutex<M, ()>,
    awaited: Mutex<M, core::cell::Cell<Option<RecordToken>>>,
    awaited_report: Mutex<M, core::cell::Cell<Option<Report>>>,
    awaited_done: Signal<M, ()>,
    /// The last transactional operation that ended, and the signal that it did.
    #[cfg(feature = "transactions")]
    txn_result: Mutex<M, core::cell::Cell<Option<TxnEnd>>>,
    #[cfg(feature = "transactions")]
    txn_done: Signal<M, ()>,
}

impl<M: RawMutex, const REPORTS: usize> State<'_, M, REPORTS> {
    /// Empty state for a `static`.
    pub const fn new() -> Self {
        Self {
            producer: Mutex::new(RefCell::new(None)),
            wake: Signal::new(),
            progress: Signal::new(),
            reports: Channel::new(),
            reports_dropped: Mutex::new(core::cell::Cell::new(0)),
            waiter: embassy_sync::mutex::Mutex::new(()),
            awaited: Mutex::new(core::cell::Cell::new(None)),
            awaited_report: Mutex::new(core::cell::Cell::new(None)),
            awaited_done: Signal::new(),
            #[cfg(feature = "transactions")]
            txn_result: Mutex::new(core::cell::Cell::new(None)),
            #[cfg(feature = "transactions")]
            txn_done: Signal::new(),
        }
    }
}

impl<M: RawMutex, const REPORTS: usize> Default for State<'_, M, REPORTS> {
    fn default() -> Self {
        Self::new()
    }
}

/// Socket memory: `N` connections with `RX`/`TX`-byte buffers. `N` must be at least the
/// producer's connection slots.
pub struct SocketBuffers<const N: usize, const RX: usize, const TX: usize> {
    rx: [[u8; RX]; N],
    tx: [[u8; TX]; N],
}

impl<const N: usize, const RX: usize, const TX: usize> SocketBuffers<N, RX, TX> {
    /// Zeroed socket buffers for a `static`.
    pub const fn new() -> Self {
        Self { rx: [[0; RX]; N], tx: [[0; TX]; N] }
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for SocketBuffers<N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> picokafka::Instant {
    picokafka::Instant::from_millis(Instant::now().as_millis())
}

/// Creates the handle and the runner. The producer's connection slots map one to one onto the
/// sockets. Refuses `security.protocol=SSL` / `SASL_SSL`: this transport has no TLS yet, and a
/// producer that sent in the clear what was configured to be encrypted would be worse than none.
pub fn new<'d, M: RawMutex, const N: usize, const RX: usize, const TX: usize, const REPORTS: usize>(
    stack: Stack<'d>,
    producer: Producer<'d>,
    state: &'d State<'d, M, REPORTS>,
    buffers: &'d mut SocketBuffers<N, RX, TX>,
    settings: Settings,
) -> Result<(Handle<'d, M, REPORTS>, Runner<'d, M, N, REPORTS>), picokafka::ConfigError> {
    if producer.config().security_protocol.uses_tls() {
        return Err(picokafka::ConfigError::Unsupported {
            property: "security.protocol",
            why: "picokafka-embassy has no TLS yet (PLAINTEXT or SASL_PLAINTEXT)",
        });
    }
    let setup = Duration::from_millis(u64::from(producer.config().socket_connection_setup_timeout_ms));
    state.producer.lock(|p| *p.borrow_mut() = Some(producer));
    let mut sockets = heapless::Vec::new();
    for (rx, tx) in buffers.rx.iter_mut().zip(buffers.tx.iter_mut()) {
        let mut socket = TcpSocket::new(stack, rx, tx);
        socket.set_nagle_enabled(false);
        // `N` sockets for `N` buffers: the vector's capacity is exactly that.
        let _ = sockets.push(Slot { socket, conn: None, phase: Phase::Idle, blocked: false });
    }
    Ok((Handle { state, settings }, Runner { stack, state, sockets, settings, setup }))
}

/// The application's side.
pub struct Handle<'d, M: RawMutex, const REPORTS: usize> {
    state: &'d State<'d, M, REPORTS>,
    settings: Settings,
}

impl<M: RawMutex, const REPORTS: usize> Clone for Handle<'_, M, REPORTS> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M: RawMutex, const REPORTS: usize> Copy for Handle<'_, M, REPORTS> {}

impl<'d, M: RawMutex, const REPORTS: usize> Handle<'d, M, REPORTS> {
    fn with<R>(&self, f: impl FnOnce(&mut Producer<'d>) -> R) -> Option<R> {
        self.state.producer.lock(|p| p.borrow_mut().as_mut().map(f))
    }

    /// Copies a record into a batch buffer. While the buffers are full or the topic's metadata
    /// is on its way, waits for the runner to make progress, up to `max_block`; then hands the
    /// error back. One task at a time should wait here.
    pub async fn send<'r>(&self, record: Record<'r>) -> Result<Accepted, SendError<'r>> {
        self.send_then(record, |_| ()).await
    }

    /// Sends a record and waits for its delivery report: where it landed, or why it failed
    /// (the synchronous send). Refusals are `send`'s. Callers take turns: while one waits, the
    /// next one waits for it.
    pub async fn send_and_wait<'r>(&self, record: Record<'r>) -> Result<Report, SendError<'r>> {
        let _turn = self.state.waiter.lock().await;
        self.state.awaited_done.reset();
        // The token is marked inside the producer's lock, before the runner can see its report.
        let awaited = &self.state.awaited;
        self.send_then(record, |token| awaited.lock(|a| a.set(Some(token)))).await?;
        loop {
            self.state.awaited_done.wait().await;
            if let Some(report) = self.state.awaited_report.lock(core::cell::Cell::take) {
                return Ok(report);
            }
        }
    }

    /// `send`, calling `accepted` with the record's token under the producer's lock.
    async fn send_then<'r>(
        &self,
        record: Record<'r>,
        accepted: impl Fn(RecordToken),
    ) -> Result<Accepted, SendError<'r>> {
        let deadline = Instant::now() + self.settings.max_block;
        loop {
            let result = self
                .with(|p| {
                    let result = p.send(now(), record);
                    if let Ok(a) = &result {
                        accepted(a.token);
                    }
                    result
                })
                .unwrap_or(Err(SendError::Closed));
            self.state.wake.signal(());
            match result {
                Err(e) if e.is_retriable() => {
                    self.state.progress.reset();
                    if with_timeout(
                        deadline.saturating_duration_since(Instant::now()),
                        self.state.progress.wait(),
                    )
                    .await
                    .is_err()
                    {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// Copies a record into a batch buffer or fails at once (`QueueFull`, `MetadataPending`).
    pub fn try_send<'r>(&self, record: Record<'r>) -> Result<Accepted, SendError<'r>> {
        let result = self.with(|p| p.send(now(), record)).unwrap_or(Err(SendError::Closed));
        self.state.wake.signal(());
        result
    }

    /// The next delivery report, in send order within each partition.
    pub async fn next_report(&self) -> Report {
        self.state.reports.receive().await
    }

    /// The next delivery report, if one is waiting.
    pub fn try_report(&self) -> Option<Report> {
        self.state.reports.try_receive().ok()
    }

    /// Reports that found the report queue full (see [`Settings::reports`]).
    pub fn reports_dropped(&self) -> u32 {
        self.state.reports_dropped.lock(core::cell::Cell::get)
    }

    /// Sends every batch now, whatever `linger.ms` says.
    pub fn flush(&self) {
        self.with(|p| p.flush(now()));
        self.state.wake.signal(());
    }

    /// Stops accepting records; what is queued is sent, or reported failed after `timeout`.
    pub fn close(&self, timeout: Duration) {
        self.with(|p| p.close(now(), picokafka::Duration::from_millis(timeout.as_millis())));
        self.state.wake.signal(());
    }

    /// Records accepted and not yet reported.
    pub fn pending_records(&self) -> u64 {
        self.with(|p| p.pending_records()).unwrap_or(0)
    }

    /// The core's counters and gauges.
    pub fn metrics(&self) -> Metrics {
        self.with(|p| p.metrics()).unwrap_or_default()
    }

    /// Why SASL authentication failed, once it has (the producer is then fatal: records fail
    /// with `DeliveryError::Fatal`, sends are refused): `f` gets the mechanism, the user and the
    /// broker's words, borrowed from the producer, and its result comes back.
    pub fn auth_error<R>(&self, f: impl FnOnce(&picokafka::AuthError<'_>) -> R) -> Option<R> {
        self.with(|p| p.auth_error().map(|e| f(&e))).flatten()
    }

    /// Whether `close` has finished: every record reported, every connection closed.
    pub fn is_closed(&self) -> bool {
        self.with(|p| p.is_closed()).unwrap_or(true)
    }
}

/// Transactions: one operation at a time, each waited for up to its `timeout`. A timeout ends
/// the wait, not the operation ([`TxnError::Unfinished`](picokafka::TxnError::Unfinished)):
/// calling the same operation again goes on waiting, as in the Java client.
#[cfg(feature = "transactions")]
impl<'d, M: RawMutex, const REPORTS: usize> Handle<'d, M, REPORTS> {
    async fn txn_wait(
        &self,
        op: picokafka::TxnOp,
        timeout: Duration,
        start: impl FnOnce(&mut Producer<'d>) -> Result<(), picokafka::TxnError>,
    ) -> Result<(), picokafka::TxnError> {
        use picokafka::TxnError;
        self.state.txn_done.reset();
        self.state.txn_result.lock(|r| r.set(None));
        let started = self.with(start).unwrap_or(Err(TxnError::Closed));
        self.state.wake.signal(());
        started?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.state.txn_result.lock(core::cell::Cell::take) {
                Some((o, result)) if o == op => return result,
                _ => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if with_timeout(left, self.state.txn_done.wait()).await.is_err() {
                return Err(TxnError::Unfinished { op });
            }
        }
    }

    /// Registers `transactional.id` with its coordinator (fencing older producers with it) and
    /// gets this producer's epoch. Once, before the first transaction.
    pub async fn init_transactions(&self, timeout: Duration) -> Result<(), picokafka::TxnError> {
        self.txn_wait(picokafka::TxnOp::Init, timeout, |p| p.init_transactions(now())).await
    }

    /// Opens a transaction: records sent from now on belong to it.
    pub fn begin_transaction(&self) -> Result<(), picokafka::TxnError> {
        self.with(|p| p.begin_transaction()).unwrap_or(Err(picokafka::TxnError::Closed))
    }

    /// Commits the consumer's `offsets` with the open transaction.
    pub async fn send_offsets_to_transaction(
        &self,
        group: &picokafka::GroupMetadata<'_>,
        offsets: &[picokafka::TopicPartitionOffset<'_>],
        timeout: Duration,
    ) -> Result<(), picokafka::TxnError> {
        if offsets.is_empty() {
            return self.with(|p| p.send_offsets_to_transaction(now(), group, offsets)).unwrap_or(Ok(()));
        }
        let op = picokafka::TxnOp::SendOffsets;
        self.txn_wait(op, timeout, |p| p.send_offsets_to_transaction(now(), group, offsets)).await
    }

    /// Sends and acknowledges every record of the transaction, then commits it.
    pub async fn commit_transaction(&self, timeout: Duration) -> Result<(), picokafka::TxnError> {
        self.txn_wait(picokafka::TxnOp::Commit, timeout, |p| p.commit_transaction(now())).await
    }

    /// Aborts the open transaction: its unsent records fail with `DeliveryError::Aborted`.
    pub async fn abort_transaction(&self, timeout: Duration) -> Result<(), picokafka::TxnError> {
        self.txn_wait(picokafka::TxnOp::Abort, timeout, |p| p.abort_transaction(now())).await
    }
}

enum Phase {
    Idle,
    Connect { host: String<HOST_MAX>, port: u16 },
    Connected,
}

struct Slot<'d> {
    socket: TcpSocket<'d>,
    conn: Option<ConnId>,
    phase: Phase,
    /// The send buffer filled up while the core still had bytes: wait for room.
    blocked: bool,
}

/// Moves bytes between the producer and the sockets. Run it in its own task.
pub struct Runner<'d, M: RawMutex, const N: usize, const REPORTS: usize> {
    #[cfg_attr(not(feature = "dns"), allow(dead_code))]
    stack: Stack<'d>,
    state: &'d State<'d, M, REPORTS>,
    sockets: heapless::Vec<Slot<'d>, N>,
    settings: Settings,
    setup: Duration,
}

/// Bytes moved per socket read or write.
const CHUNK: usize = 512;

impl<'d, M: RawMutex, const N: usize, const REPORTS: usize> Runner<'d, M, N, REPORTS> {
    fn with<R>(&self, f: impl FnOnce(&mut Producer<'d>) -> R) -> Option<R> {
        self.state.producer.lock(|p| p.borrow_mut().as_mut().map(f))
    }

    /// Runs the producer's I/O forever.
    pub async fn run(&mut self) -> ! {
        let mut buf = [0u8; CHUNK];
        loop {
            self.pump_events();
            self.connect_pending().await;
            self.read_all(&mut buf).await;
            self.write_all(&mut buf).await;
            self.pump_events();
            self.state.progress.signal(());
            self.wait().await;
            self.with(|p| p.handle_timeout(now()));
        }
    }

    /// Takes events from the core: socket requests and delivery reports.
    fn pump_events(&mut self) {
        let sockets = &mut self.sockets;
        let state = self.state;
        let reports = self.settings.reports;
        state.producer.lock(|p| {
            let mut p = p.borrow_mut();
            let Some(p) = p.as_mut() else { return };
            while let Some(event) = p.poll_event() {
                let report = match event {
                    Event::Connect { conn, host, port } => {
                        if let Some(slot) = sockets.get_mut(conn.index()) {
                            slot.socket.abort();
                            slot.conn = Some(conn);
                            let mut h = String::new();
                            // Host names longer than the core keeps cannot occur.
                            let _ = h.push_str(host);
                            slot.phase = Phase::Connect { host: h, port };
                        }
                        continue;
                    }
                    Event::Close { conn } => {
                        if let Some(slot) = sockets.get_mut(conn.index()) {
                            if slot.conn == Some(conn) {
                                // Gracefully: bytes already handed over (acks=0 records the
                                // core reported delivered) still go out before the FIN. A later
                                // `Connect` on this slot aborts whatever is left.
                                slot.socket.close();
                                slot.conn = None;
                                slot.phase = Phase::Idle;
                            }
                        }
                        continue;
                    }
                    Event::Delivered { token, partition, offset, log_append_time } => {
                        Report { token, partition, outcome: Ok(Delivered { offset, log_append_time }) }
                    }
                    Event::Failed { token, partition, error } => {
                        Report { token, partition, outcome: Err(error) }
                    }
                    #[cfg(feature = "transactions")]
                    Event::Transaction { op, result } => {
                        state.txn_result.lock(|r| r.set(Some((op, result))));
                        state.txn_done.signal(());
                        continue;
                    }
                    // Events a newer core may add concern no socket and no report.
                    _ => continue,
                };
                if state.awaited.lock(|a| a.get() == Some(report.token)) {
                    state.awaited.lock(|a| a.set(None));
                    state.awaited_report.lock(|r| r.set(Some(report)));
                    state.awaited_done.signal(());
                } else if reports && state.reports.try_send(report).is_err() {
                    state.reports_dropped.lock(|d| d.set(d.get().wrapping_add(1)));
                }
            }
        });
    }

    /// Resolves and connects the sockets the core asked for, one after another.
    async fn connect_pending(&mut self) {
        for i in 0..self.sockets.len() {
            let Phase::Connect { host, port } = &self.sockets[i].phase else { continue };
            let (host, port) = (host.clone(), *port);
            let Some(conn) = self.sockets[i].conn else { continue };
            let ok = match self.resolve(&host).await {
                Some(addr) => {
                    let socket = &mut self.sockets[i].socket;
                    let endpoint = IpEndpoint::new(addr, port);
                    matches!(with_timeout(self.setup, socket.connect(endpoint)).await, Ok(Ok(())))
                }
                None => false,
            };
            let slot = &mut self.sockets[i];
            if slot.conn != Some(conn) {
                continue;
            }
            if ok {
                slot.phase = Phase::Connected;
                self.with(|p| p.handle_connected(now(), conn));
            } else {
                slot.socket.abort();
                slot.phase = Phase::Idle;
                slot.conn = None;
                self.with(|p| p.handle_disconnected(now(), conn));
            }
        }
    }

    /// The address of a broker: an IPv4 literal as is, a name through DNS (feature `dns`).
    async fn resolve(&self, host: &str) -> Option<IpAddress> {
        if let Ok(ip) = host.parse::<Ipv4Address>() {
            return Some(IpAddress::Ipv4(ip));
        }
        #[cfg(feature = "dns")]
        if let Ok(addrs) = self.stack.dns_query(host, embassy_net::dns::DnsQueryType::A).await {
            return addrs.first().copied();
        }
        None
    }

    /// Hands received bytes to the core; reports sockets the peer closed.
    async fn read_all(&mut self, buf: &mut [u8]) {
        for i in 0..self.sockets.len() {
            let slot = &mut self.sockets[i];
            let (Phase::Connected, Some(conn)) = (&slot.phase, slot.conn) else { continue };
            let mut lost = !matches!(slot.socket.state(), TcpState::Established) && !slot.socket.may_recv();
            while !lost && slot.socket.can_recv() {
                match slot.socket.read(buf).await {
                    Ok(0) | Err(_) => lost = true,
                    Ok(n) => {
                        let mut at = 0;
                        while at < n {
                            let used = self.state.producer.lock(|p| {
                                p.borrow_mut()
                                    .as_mut()
                                    .map_or(n, |p| p.handle_input(now(), conn, &buf[at..n]))
                            });
                            if used == 0 {
                                break;
                            }
                            at += used;
                        }
                    }
                }
            }
            if lost {
                slot.socket.abort();
                slot.phase = Phase::Idle;
                slot.conn = None;
                self.with(|p| p.handle_disconnected(now(), conn));
            }
        }
    }

    /// Writes what the core has for each socket, as far as its send buffer has room.
    async fn write_all(&mut self, buf: &mut [u8]) {
        for i in 0..self.sockets.len() {
            let slot = &mut self.sockets[i];
            let (Phase::Connected, Some(conn)) = (&slot.phase, slot.conn) else { continue };
            slot.blocked = false;
            loop {
                let free = slot.socket.send_capacity() - slot.socket.send_queue();
                if free == 0 {
                    slot.blocked = true;
                    break;
                }
                let room = free.min(buf.len());
                let len = self.state.producer.lock(|p| {
                    p.borrow_mut().as_mut().and_then(|p| p.poll_transmit_to(now(), conn, &mut buf[..room]))
                });
                let Some(len) = len else { break };
                // `len <= free`, so the socket takes it all without waiting.
                let mut at = 0;
                while at < len {
                    match slot.socket.write(&buf[at..len]).await {
                        Ok(n) if n > 0 => at += n,
                        _ => break,
                    }
                }
            }
        }
    }

    /// Sleeps until the core's timer, a socket event, or a wake from the handle.
    async fn wait(&mut self) {
        let deadline = self.with(|p| p.poll_timeout()).flatten();
        let timer = match deadline {
            Some(t) => Timer::at(Instant::from_millis(t.as_millis())),
            None => Timer::after(Duration::from_secs(3600)),
        };
        if self.sockets.iter().any(|s| matches!(s.phase, Phase::Connect { .. })) {
            return;
        }
        let sockets = &self.sockets;
        // One future type for every socket: readable, or writable again if it was full; never,
        // if it is not connected.
        let ready: [_; N] = core::array::from_fn(|i| async move {
            let Some(slot) = sockets.get(i) else { return core::future::pending::<()>().await };
            match (&slot.phase, slot.blocked) {
                (Phase::Connected, true) => {
                    select(slot.socket.wait_read_ready(), slot.socket.wait_write_ready()).await;
                }
                (Phase::Connected, false) => slot.socket.wait_read_ready().await,
                _ => core::future::pending::<()>().await,
            }
        });
        let sockets = select_array(ready);
        // Whichever comes first, the loop looks at everything again.
        let _ = select3(self.state.wake.wait(), timer, sockets).await;
    }
}

impl<M: RawMutex, const R: usize> core::fmt::Debug for State<'_, M, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl<const N: usize, const RX: usize, const TX: usize> core::fmt::Debug for SocketBuffers<N, RX, TX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SocketBuffers").field("sockets", &N).field("rx", &RX).field("tx", &TX).finish()
    }
}

impl<M: RawMutex, const R: usize> core::fmt::Debug for Handle<'_, M, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl<M: RawMutex, const N: usize, const R: usize> core::fmt::Debug for Runner<'_, M, N, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runner").field("sockets", &N).finish_non_exhaustive()
    }
}
