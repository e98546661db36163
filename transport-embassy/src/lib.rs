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
//! With feature `tls`, [`new_tls`] runs TLS 1.3 (embedded-tls) on every broker connection
//! (`security.protocol=SSL` or `SASL_SSL`): each broker's certificate chain must end in the CA
//! the application gives ([`Tls::ca`], DER) and name the host connected to; there is no mode
//! that accepts any certificate. The handshake's randomness is the application's
//! ([`Tls::rng`]: the board's TRNG), the record buffers are caller-owned ([`TlsBuffers`],
//! 16,640 + a few KiB per socket). A refused handshake is kept in [`Handle::tls_error`] and
//! `send` then hands its error back at once instead of waiting `max_block`.
//!
//! With feature `hosts`, [`Settings::hosts`] resolves broker names to fixed addresses before
//! DNS: the connection goes to the address, and TLS still checks the name.
//!
//! Each socket has its driver: it connects when the core asks, then reads into the core and
//! writes what the core has — each in its own future, so that a TLS read waiting for a whole
//! record never holds up a write.
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

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::{Tls, TlsBuffers, TlsFailure, RECORD_MAX};

use embassy_futures::join::{join, join_array};
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpAddress, IpEndpoint, Ipv4Address, Stack};
use embassy_sync::blocking_mutex::raw::{NoopRawMutex, RawMutex};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{with_deadline, with_timeout, Duration, Instant, Timer};
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
    /// Feature `hosts`: broker names and their addresses, like `/etc/hosts`, looked up before
    /// DNS (ASCII case ignored). The name stays the one connected to: TLS checks it in the
    /// broker's certificate. Default: none.
    #[cfg(feature = "hosts")]
    pub hosts: &'static [(&'static str, Ipv4Address)],
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_block: Duration::from_secs(60),
            reports: true,
            #[cfg(feature = "hosts")]
            hosts: &[],
        }
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
    /// Why the last TLS handshake failed (cleared by the next that succeeds), and how long the
    /// last successful one took.
    #[cfg(feature = "tls")]
    tls_error: Mutex<M, core::cell::Cell<Option<TlsFailure>>>,
    #[cfg(feature = "tls")]
    tls_handshake_ms: Mutex<M, core::cell::Cell<u32>>,
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
            #[cfg(feature = "tls")]
            tls_error: Mutex::new(core::cell::Cell::new(None)),
            #[cfg(feature = "tls")]
            tls_handshake_ms: Mutex::new(core::cell::Cell::new(0)),
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
/// sockets. Refuses `security.protocol=SSL` / `SASL_SSL`, which need `new_tls` (feature
/// `tls`): a producer that sent in the clear what was configured to be encrypted would be worse
/// than none.
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
            why: "TLS needs picokafka-embassy's feature `tls` and `new_tls` (with the CA)",
        });
    }
    Ok(build(stack, producer, state, buffers, settings))
}

/// [`new`] with TLS 1.3 on every connection (`security.protocol=SSL` or `SASL_SSL`): each
/// broker's certificate chain must end in `tls.ca` and name the host connected to (see the
/// verification notes of [`Tls`]); `tls_buffers` holds each socket's TLS records.
#[cfg(feature = "tls")]
#[allow(clippy::type_complexity)]
pub fn new_tls<
    'd,
    M: RawMutex,
    const N: usize,
    const RX: usize,
    const TX: usize,
    const REPORTS: usize,
    const READ: usize,
    const WRITE: usize,
>(
    stack: Stack<'d>,
    producer: Producer<'d>,
    state: &'d State<'d, M, REPORTS>,
    buffers: &'d mut SocketBuffers<N, RX, TX>,
    tls_buffers: &'d mut TlsBuffers<N, READ, WRITE>,
    tls: Tls<'d>,
    settings: Settings,
) -> Result<(Handle<'d, M, REPORTS>, Runner<'d, M, N, REPORTS>), picokafka::ConfigError> {
    if !producer.config().security_protocol.uses_tls() {
        return Err(picokafka::ConfigError::Unsupported {
            property: "security.protocol",
            why: "new_tls runs TLS: set SSL or SASL_SSL (or use new for PLAINTEXT / SASL_PLAINTEXT)",
        });
    }
    let (handle, mut runner) = build(stack, producer, state, buffers, settings);
    for (slot, (read, write)) in
        runner.sockets.iter_mut().zip(tls_buffers.read.iter_mut().zip(tls_buffers.write.iter_mut()))
    {
        slot.tls = Some((read, write));
    }
    runner.tls = Some(tls::Shared::new(tls));
    Ok((handle, runner))
}

// Out of line: inlined into the caller, the producer was stored into the state field by
// field (108 B more firmware flash).
#[inline(never)]
fn build<'d, M: RawMutex, const N: usize, const RX: usize, const TX: usize, const REPORTS: usize>(
    stack: Stack<'d>,
    producer: Producer<'d>,
    state: &'d State<'d, M, REPORTS>,
    buffers: &'d mut SocketBuffers<N, RX, TX>,
    settings: Settings,
) -> (Handle<'d, M, REPORTS>, Runner<'d, M, N, REPORTS>) {
    state.producer.lock(|p| *p.borrow_mut() = Some(producer));
    let mut sockets = heapless::Vec::new();
    for (rx, tx) in buffers.rx.iter_mut().zip(buffers.tx.iter_mut()) {
        let mut socket = TcpSocket::new(stack, rx, tx);
        socket.set_nagle_enabled(false);
        // `N` sockets for `N` buffers: the vector's capacity is exactly that.
        let _ = sockets.push(Slot {
            socket,
            #[cfg(feature = "tls")]
            tls: None,
        });
    }
    let runner = Runner {
        stack,
        state,
        sockets,
        settings,
        #[cfg(feature = "tls")]
        tls: None,
    };
    (Handle { state, settings }, runner)
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
                // A broker TLS refuses will not become trusted by waiting: the error back now,
                // the reason in `tls_error`. (A timeout or a broken connection may pass.)
                #[cfg(feature = "tls")]
                Err(e) if e.is_retriable() && self.tls_error().is_some_and(TlsFailure::is_refusal) => {
                    return Err(e)
                }
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

    /// Why the last TLS handshake failed (an untrusted or misnamed certificate, an alert, a
    /// timeout), until one succeeds. Meanwhile, after a refusal (not a timeout or a lost
    /// connection), `send` hands its error back at once instead of waiting.
    #[cfg(feature = "tls")]
    pub fn tls_error(&self) -> Option<TlsFailure> {
        self.state.tls_error.lock(core::cell::Cell::get)
    }

    /// How long the last successful TLS handshake took, in milliseconds (0 before one).
    #[cfg(feature = "tls")]
    pub fn tls_handshake_ms(&self) -> u32 {
        self.state.tls_handshake_ms.lock(core::cell::Cell::get)
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

/// What the core asked of one socket, for that socket's driver.
enum Request {
    /// `setup`: the time the core gives this attempt (`socket.connection.setup.timeout.ms`,
    /// growing to its `.max.ms` over failed attempts), TCP and TLS handshake together.
    Connect {
        conn: ConnId,
        host: String<HOST_MAX>,
        port: u16,
        setup: Duration,
    },
    Close {
        conn: ConnId,
    },
}

/// One socket's mailbox: the newest request, and the signal that wakes its driver (a request,
/// or bytes the core may have for it).
struct Lane {
    request: RefCell<Option<Request>>,
    wake: Signal<NoopRawMutex, ()>,
}

struct Slot<'d> {
    socket: TcpSocket<'d>,
    /// The TLS record buffers of this socket (read, write), with feature `tls`.
    #[cfg(feature = "tls")]
    tls: Option<(&'d mut [u8], &'d mut [u8])>,
}

/// Moves bytes between the producer and the sockets. Run it in its own task.
pub struct Runner<'d, M: RawMutex, const N: usize, const REPORTS: usize> {
    #[cfg_attr(not(feature = "dns"), allow(dead_code))]
    stack: Stack<'d>,
    state: &'d State<'d, M, REPORTS>,
    sockets: heapless::Vec<Slot<'d>, N>,
    settings: Settings,
    #[cfg(feature = "tls")]
    tls: Option<tls::Shared<'d>>,
}

/// Bytes encrypted per TLS record written (feature `tls`).
#[cfg(feature = "tls")]
const CHUNK: usize = 512;

/// What the drivers share with the runner's own loop.
struct Ctx<'r, 'd, M: RawMutex, const REPORTS: usize> {
    #[cfg_attr(not(feature = "dns"), allow(dead_code))]
    stack: Stack<'d>,
    state: &'d State<'d, M, REPORTS>,
    /// Wakes the runner's loop: a driver fed the core or changed a connection's state.
    kick: &'r Signal<NoopRawMutex, ()>,
    #[cfg(feature = "tls")]
    tls: Option<&'r tls::Shared<'d>>,
    #[cfg(feature = "hosts")]
    hosts: &'static [(&'static str, Ipv4Address)],
}

impl<'d, M: RawMutex, const REPORTS: usize> Ctx<'_, 'd, M, REPORTS> {
    fn with<R>(&self, f: impl FnOnce(&mut Producer<'d>) -> R) -> Option<R> {
        self.state.producer.lock(|p| p.borrow_mut().as_mut().map(f))
    }

    /// The address of a broker: an IPv4 literal as is, a name from `Settings::hosts` (feature
    /// `hosts`) or through DNS (feature `dns`).
    async fn resolve(&self, host: &str) -> Option<IpAddress> {
        if let Some(ip) = parse_ipv4(host) {
            return Some(IpAddress::Ipv4(ip));
        }
        #[cfg(feature = "hosts")]
        if let Some((_, ip)) = self.hosts.iter().find(|(name, _)| name.eq_ignore_ascii_case(host)) {
            return Some(IpAddress::Ipv4(*ip));
        }
        #[cfg(feature = "dns")]
        if let Ok(addrs) = self.stack.dns_query(host, embassy_net::dns::DnsQueryType::A).await {
            return addrs.first().copied();
        }
        None
    }

    /// Drives one socket forever: connects it when the core asks, then moves its bytes until
    /// the connection ends, and again.
    async fn drive(&self, slot: &mut Slot<'d>, lane: &Lane) -> ! {
        loop {
            let (conn, host, port, deadline) = loop {
                match lane.request.borrow_mut().take() {
                    Some(Request::Connect { conn, host, port, setup }) => {
                        break (conn, host, port, Instant::now() + setup)
                    }
                    // Nothing open to close.
                    Some(Request::Close { .. }) | None => {}
                }
                lane.wake.wait().await;
            };
            slot.socket.abort();
            let ok = match self.resolve(&host).await {
                Some(addr) => {
                    let endpoint = IpEndpoint::new(addr, port);
                    matches!(with_deadline(deadline, slot.socket.connect(endpoint)).await, Ok(Ok(())))
                }
                None => false,
            };
            if lane.request.borrow().is_some() {
                // The core moved on while this one connected: it knows nothing of it.
                slot.socket.abort();
                continue;
            }
            if !ok {
                self.lost(slot, conn);
                continue;
            }
            #[cfg(feature = "tls")]
            let ended = match (self.tls, slot.tls.as_mut()) {
                (Some(shared), Some((read, write))) => {
                    let (rd, wr) = slot.socket.split();
                    let wire = tls::Wire::new(rd, wr);
                    tls::session(self, lane, conn, &host, deadline, shared, &wire, read, write).await
                }
                _ => self.session(lane, conn, &mut slot.socket).await,
            };
            #[cfg(not(feature = "tls"))]
            let ended = self.session(lane, conn, &mut slot.socket).await;
            match ended {
                Ended::Asked => match &*lane.request.borrow() {
                    // Gracefully: bytes already handed over (acks=0 records the core reported
                    // delivered) still go out before the FIN. A later `Connect` on this slot
                    // aborts whatever is left.
                    Some(Request::Close { conn: c }) if *c == conn => slot.socket.close(),
                    // Aborted when the loop takes it.
                    Some(Request::Connect { .. }) => {}
                    // A stale close: this connection goes too, and the core hears of it.
                    _ => self.lost(slot, conn),
                },
                // A loss the core already asked for (it closed or moved on) is no news to it.
                Ended::Lost if lane.request.borrow().is_some() => slot.socket.abort(),
                Ended::Lost => self.lost(slot, conn),
            }
        }
    }

    /// A connection failed or was lost: the core hears of it.
    fn lost(&self, slot: &mut Slot<'d>, conn: ConnId) {
        slot.socket.abort();
        self.with(|p| p.handle_disconnected(now(), conn));
        self.kick.signal(());
    }

    /// A connected plain TCP socket, until the core asks for something else or it is lost.
    async fn session(&self, lane: &Lane, conn: ConnId, socket: &mut TcpSocket<'d>) -> Ended {
        self.with(|p| p.handle_connected(now(), conn));
        self.kick.signal(());
        let (mut rd, mut wr) = socket.split();
        // Both ways without a buffer of ours: the core reads from the socket's receive buffer
        // and writes into its send buffer (each time a contiguous part of the socket's ring).
        let reader = async {
            loop {
                let fed = rd.read_with(|bytes| {
                    self.feed(lane, conn, bytes);
                    (bytes.len(), ())
                });
                if fed.await.is_err() {
                    return Ended::Lost;
                }
            }
        };
        let writer = async {
            loop {
                let mut blocked = false;
                let mut wrote_any = false;
                loop {
                    if wr.send_capacity() == wr.send_queue() {
                        blocked = true;
                        break;
                    }
                    // The socket has room, so this does not wait.
                    let wrote = wr.write_with(|room| {
                        let len = self.with(|p| p.poll_transmit_to(now(), conn, room)).flatten().unwrap_or(0);
                        (len, len > 0)
                    });
                    match wrote.await {
                        Ok(true) => wrote_any = true,
                        Ok(false) => break,
                        Err(_) => return Ended::Lost,
                    }
                }
                // A request started has a timeout the loop must arm. Nothing written is no
                // news: a kick then would start a turn that wakes this writer again, and the
                // two would keep each other (and the executor) awake.
                if wrote_any {
                    self.kick.signal(());
                }
                if blocked {
                    select(lane.wake.wait(), wr.wait_write_ready()).await;
                } else {
                    lane.wake.wait().await;
                }
                if lane.request.borrow().is_some() {
                    return Ended::Asked;
                }
            }
        };
        match select(reader, writer).await {
            Either::First(e) | Either::Second(e) => e,
        }
    }

    /// Hands received bytes to the core; the driver's writer may have an answer to send.
    fn feed(&self, lane: &Lane, conn: ConnId, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            let used = self.with(|p| p.handle_input(now(), conn, &bytes[at..])).unwrap_or(bytes.len());
            if used == 0 {
                break;
            }
            at += used;
        }
        lane.wake.signal(());
        self.kick.signal(());
    }
}

/// An IPv4 literal as `core`'s `Ipv4Addr::from_str` reads one: four dot-separated decimal
/// octets of one to three digits, none with a leading zero. (`str::parse` costs 728 B of
/// firmware flash.)
fn parse_ipv4(host: &str) -> Option<Ipv4Address> {
    let mut octets = [0u8; 4];
    let mut parts = host.as_bytes().split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut value = 0u16;
        for &digit in part {
            if !digit.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u16::from(digit - b'0');
        }
        *octet = u8::try_from(value).ok()?;
    }
    match parts.next() {
        Some(_) => None,
        None => Some(Ipv4Address::from(octets)),
    }
}

/// How a connection's session ended.
enum Ended {
    /// The core asked to close it or to connect elsewhere.
    Asked,
    /// The peer closed it, it failed, or TLS refused it: the core must hear of it.
    Lost,
}

impl<'d, M: RawMutex, const N: usize, const REPORTS: usize> Runner<'d, M, N, REPORTS> {
    /// Runs the producer's I/O forever: one driver per socket, and the loop that takes the
    /// core's events and keeps its timer.
    pub async fn run(&mut self) -> ! {
        let kick = Signal::<NoopRawMutex, ()>::new();
        let lanes: [Lane; N] =
            core::array::from_fn(|_| Lane { request: RefCell::new(None), wake: Signal::new() });
        let ctx = Ctx {
            stack: self.stack,
            state: self.state,
            kick: &kick,
            #[cfg(feature = "tls")]
            tls: self.tls.as_ref(),
            #[cfg(feature = "hosts")]
            hosts: self.settings.hosts,
        };
        let (ctx, lanes) = (&ctx, &lanes);
        let mut slots = self.sockets.iter_mut();
        let mut index = 0;
        let drivers: [_; N] = core::array::from_fn(|_| {
            let (slot, lane) = (slots.next(), &lanes[index]);
            index += 1;
            async move {
                match slot {
                    Some(slot) => ctx.drive(slot, lane).await,
                    None => core::future::pending::<()>().await,
                }
            }
        });
        let state = self.state;
        let reports = self.settings.reports;
        let main = async {
            let mut progress = true;
            loop {
                // Senders waiting for room or metadata try again after a turn that may have
                // made some: one that reports came out of, or that socket activity or a timer
                // started. A turn only an API call's wake-up started (a sender that found no
                // room signals one) changes nothing they wait for; waking them for it would
                // have them and this loop wake each other forever, and the executor never
                // sleep.
                if pump_events(state, lanes, reports) || progress {
                    state.progress.signal(());
                }
                let deadline = ctx.with(|p| p.poll_timeout()).flatten();
                let timer = match deadline {
                    Some(t) => Timer::at(Instant::from_millis(t.as_millis())),
                    None => Timer::after(Duration::from_secs(3600)),
                };
                // Whichever comes first, the loop looks at everything again.
                progress =
                    !matches!(select3(state.wake.wait(), timer, kick.wait()).await, Either3::First(()));
                ctx.with(|p| p.handle_timeout(now()));
                for lane in lanes {
                    lane.wake.signal(());
                }
            }
        };
        join(main, join_array(drivers)).await;
        loop {
            core::future::pending::<()>().await;
        }
    }
}

/// Takes events from the core: socket requests for the drivers, delivery reports. Whether
/// there were any.
fn pump_events<M: RawMutex, const REPORTS: usize>(
    state: &State<'_, M, REPORTS>,
    lanes: &[Lane],
    reports: bool,
) -> bool {
    state.producer.lock(|p| {
        let mut p = p.borrow_mut();
        let Some(p) = p.as_mut() else { return false };
        let mut any = false;
        while let Some(event) = p.poll_event() {
            any = true;
            let report = match event {
                Event::Connect { conn, host, port, timeout } => {
                    if let Some(lane) = lanes.get(conn.index()) {
                        let mut h = String::new();
                        // Host names longer than the core keeps cannot occur.
                        let _ = h.push_str(host);
                        let setup = Duration::from_millis(timeout.as_millis());
                        *lane.request.borrow_mut() = Some(Request::Connect { conn, host: h, port, setup });
                        lane.wake.signal(());
                    }
                    continue;
                }
                Event::Close { conn } => {
                    if let Some(lane) = lanes.get(conn.index()) {
                        *lane.request.borrow_mut() = Some(Request::Close { conn });
                        lane.wake.signal(());
                    }
                    continue;
                }
                Event::Delivered { token, partition, offset, log_append_time } => {
                    Report { token, partition, outcome: Ok(Delivered { offset, log_append_time }) }
                }
                Event::Failed { token, partition, error, .. } => {
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
        any
    })
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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    /// `parse_ipv4` takes what `core`'s parser takes, and nothing else.
    #[test]
    fn ipv4_literals_as_core_reads_them() {
        let named = [
            "10.0.2.100",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3.300",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1234.1.1.1",
            "0001.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            ".1.2.3.4",
            "1..2.3",
            "+1.2.3.4",
            "1.2.3.-4",
            "",
            " 1.2.3.4",
            "1.2.3.4 ",
            "\u{661}.2.3.4",
            "broker.test",
            "::1",
        ];
        for s in named {
            assert_eq!(super::parse_ipv4(s), s.parse().ok(), "{s:?}");
        }
        // Every string of up to 7 of these characters.
        let alphabet = ['0', '1', '2', '5', '9', '.', 'x'];
        let mut s = String::new();
        fn walk(s: &mut String, alphabet: &[char], depth: usize) {
            assert_eq!(super::parse_ipv4(s), s.parse().ok(), "{s:?}");
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                s.push(c);
                walk(s, alphabet, depth - 1);
                s.pop();
            }
        }
        walk(&mut s, &alphabet, 7);
    }
}
