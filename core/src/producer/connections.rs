//! The connection table: one slot per broker connection, each with its receive buffer, its
//! state (idle, connecting, handshake, ready, backoff), the requests it has in flight and the one
//! being written. It frames bytes in (size-prefixed responses, bounded by the buffer) and hands
//! out the `Connect` and `Close` events the transport acts on.

use core::cell::Cell;
use core::ops::{Index, IndexMut};

use heapless::String;

use super::batches::BatchId;
use crate::time::{Duration, Instant};

/// Longest broker host name kept.
pub const HOST_MAX: usize = 128;

/// A connection, as the producer names it to the transport. Opaque; stale ids (of connections
/// the producer has since closed) are ignored by every `handle_*` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnId(u16);

impl ConnId {
    pub(crate) fn new(index: usize, generation: u8) -> Self {
        // Connection tables hold at most 255 slots (checked in `Producer::new`).
        Self(((index as u16) << 8) | u16::from(generation))
    }
    /// The connection's slot in the producer's table: stable for the life of the connection,
    /// so a transport can keep one socket per slot.
    pub fn index(self) -> usize {
        usize::from(self.0 >> 8)
    }
    pub(crate) fn generation(self) -> u8 {
        self.0 as u8
    }
    /// A number the transport can use as a key.
    pub fn as_u16(self) -> u16 {
        self.0
    }
}

/// Requests one connection tracks at once: `max.in.flight` Produce requests, plus room for
/// Metadata/InitProducerId and for acks=0 Produce requests whose (optional) answers are pending.
pub(crate) const CONN_QUEUE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// No broker assigned.
    Free,
    /// Known broker, no socket; connects when there is work.
    Idle,
    /// `Connect` asked of the transport at `since`.
    Connecting {
        since: Instant,
    },
    /// Connected; ApiVersions exchange under way.
    Handshake,
    /// SASL: waiting for its turn at the exchange, or in it; also a ready connection
    /// re-authenticating (KIP-368).
    Authenticating,
    Ready,
    /// Lost; may reconnect at `until`.
    Backoff {
        until: Instant,
    },
}

/// What a request is, to decode its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    ApiVersions,
    Metadata {
        topics: u64,
    },
    InitProducerId {
        producer_id: i64,
        epoch: i16,
    },
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    SaslHandshake,
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    SaslAuthenticate,
    /// For the transactional id, or (`group`) for the offsets' consumer group.
    #[cfg_attr(not(feature = "transactions"), allow(dead_code))]
    FindCoordinator {
        group: bool,
    },
    /// The partitions whose membership is `Adding`.
    #[cfg_attr(not(feature = "transactions"), allow(dead_code))]
    AddPartitionsToTxn,
    #[cfg_attr(not(feature = "transactions"), allow(dead_code))]
    AddOffsetsToTxn,
    #[cfg_attr(not(feature = "transactions"), allow(dead_code))]
    TxnOffsetCommit,
    #[cfg_attr(not(feature = "transactions"), allow(dead_code))]
    EndTxn {
        commit: bool,
    },
    /// Batches linked through `next_in_request` from `head`.
    Produce {
        head: BatchId,
        acks0: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub correlation_id: i32,
    pub kind: RequestKind,
    pub version: i16,
    pub sent_at: Instant,
    /// acks=0 Produce: real Kafka sends no answer, Tansu and the mock do.
    pub optional: bool,
}

/// A request being written to the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub request: InFlight,
    pub written: usize,
    pub total: usize,
}

/// Versions negotiated with one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Versions {
    pub produce: i16,
    pub metadata: i16,
    pub init_producer_id: i16,
    pub sasl_authenticate: i16,
    /// Transactions' APIs, -1 where the broker lacks them (asked only of transactional
    /// producers).
    pub txn: TxnVersions,
}

/// The versions of the transaction APIs negotiated with one broker, -1 where it lacks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnVersions {
    pub find_coordinator: i16,
    pub add_partitions: i16,
    pub add_offsets: i16,
    pub txn_offset_commit: i16,
    pub end_txn: i16,
    /// The cluster's finalized `transaction.version` as this broker reports it (KIP-584): 2
    /// and up means KIP-890 part 2 (partitions and offsets added implicitly, the epoch bumped
    /// by every EndTxn).
    pub transaction_version: i16,
}

impl TxnVersions {
    pub(crate) const NONE: Self = Self {
        find_coordinator: -1,
        add_partitions: -1,
        add_offsets: -1,
        txn_offset_commit: -1,
        end_txn: -1,
        transaction_version: 0,
    };

    /// Whether this broker speaks KIP-890 part 2 for us: the cluster finalized
    /// `transaction.version` 2 and the broker has the versions that carry it.
    pub(crate) fn implicit_add(&self, produce: i16) -> bool {
        self.transaction_version >= 2 && self.end_txn >= 5 && self.txn_offset_commit >= 5 && produce >= 12
    }
}

impl Default for TxnVersions {
    fn default() -> Self {
        Self::NONE
    }
}

/// One broker connection's bookkeeping.
#[derive(Debug, Clone)]
pub struct ConnSlot {
    pub(crate) state: ConnState,
    pub(crate) generation: u8,
    /// Broker id; bootstrap entries use `-1 - index`, as the Java client does.
    pub(crate) node_id: i32,
    pub(crate) host: String<HOST_MAX>,
    pub(crate) port: u16,
    pub(crate) versions: Versions,
    /// ApiVersions version to ask with (lowered when a broker says it is unsupported).
    pub(crate) api_versions_version: i16,
    pub(crate) correlation_id: i32,
    pub(crate) in_flight: heapless::Deque<InFlight, CONN_QUEUE>,
    pub(crate) tx: Option<Outgoing>,
    pub(crate) rx_len: usize,
    /// Consecutive failed attempts, for exponential reconnect backoff.
    pub(crate) failures: u32,
    /// How long the attempt being made may take (`socket.connection.setup.timeout.ms`, grown
    /// with `failures`): set when it starts.
    pub(crate) setup_timeout: Duration,
    pub(crate) connect_pending: bool,
    /// A `Close` event owed to the transport, for this (old) connection id.
    pub(crate) close_pending: Option<ConnId>,
    /// When to re-authenticate, before the broker's SASL session ends (KIP-368).
    pub(crate) reauth_at: Option<Instant>,
    /// When a request was last started or answered here: `connections.max.idle.ms` counts
    /// from it.
    pub(crate) last_used: Instant,
}

impl ConnSlot {
    /// An unused slot, to declare storage with (`[ConnSlot::EMPTY; N]`).
    pub const EMPTY: Self = Self::empty();

    /// `EMPTY`, built by code where it is not a constant: the constant is a 544-byte image in
    /// flash, copied from at each use (the firmware is 396 B smaller without it).
    const fn empty() -> Self {
        Self {
            state: ConnState::Free,
            generation: 0,
            node_id: -1,
            host: String::new(),
            port: 0,
            versions: Versions {
                produce: 0,
                metadata: 0,
                init_producer_id: 0,
                sasl_authenticate: 0,
                txn: TxnVersions::NONE,
            },
            api_versions_version: 0,
            correlation_id: 0,
            in_flight: heapless::Deque::new(),
            tx: None,
            rx_len: 0,
            failures: 0,
            setup_timeout: Duration::ZERO,
            connect_pending: false,
            close_pending: None,
            reauth_at: None,
            last_used: Instant::ZERO,
        }
    }
}

impl Default for ConnSlot {
    fn default() -> Self {
        Self::empty()
    }
}

impl ConnState {
    /// A socket exists or is being opened.
    pub(crate) fn is_open(self) -> bool {
        matches!(
            self,
            ConnState::Connecting { .. }
                | ConnState::Handshake
                | ConnState::Authenticating
                | ConnState::Ready
        )
    }
}

impl InFlight {
    /// A request whose answer is awaited (acks=0 Produce requests may get none).
    pub(crate) fn is_awaited(&self) -> bool {
        !self.optional
    }
}

/// What the receive buffer of a connection holds next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Not a whole frame yet.
    Incomplete,
    /// A size prefix beyond what the buffer can hold: a broker bug or an attack.
    TooLarge { size: i32, max: usize },
    /// A whole frame: its body is `rx[start + 4..start + end]`.
    Complete { end: usize },
}

/// Every connection slot and the receive memory, split evenly between them.
pub(crate) struct ConnTable<'a> {
    slots: &'a mut [ConnSlot],
    rx: &'a mut [u8],
    rx_size: usize,
    /// A slot's state, requests, use or broker may have changed since the timer table last
    /// looked (see `timers`): set by every change but to receive buffers and pending events.
    changed: Cell<bool>,
    /// A `Close` or `Connect` may be owed: set wherever one is, cleared once a look finds
    /// none. `has_event` is asked once per event the transport polls (one per record
    /// reported): without it, every report scanned every slot (32 on hosts).
    events: Cell<bool>,
    /// Bumped whenever a slot's broker changes, so that the timer table knows which
    /// connection leads what.
    nodes: u32,
}

/// Where a `Connect` goes and how long it may take: host, port, setup timeout.
pub(crate) type Dial<'s> = (&'s str, u16, Duration);

impl<'a> ConnTable<'a> {
    /// Clears every slot. `slots` is not empty (checked in `Producer::new`).
    pub(crate) fn new(slots: &'a mut [ConnSlot], rx: &'a mut [u8]) -> Self {
        for slot in slots.iter_mut() {
            *slot = ConnSlot::empty();
        }
        let rx_size = rx.len() / slots.len();
        Self { slots, rx, rx_size, changed: Cell::new(true), events: Cell::new(false), nodes: 0 }
    }

    /// Whether anything the timer table reads changed since the last call.
    #[cfg_attr(feature = "compact-code", allow(dead_code))] // read by the timer table only
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.replace(false)
    }

    fn change(&mut self) {
        // compact-code builds rescan instead of keeping a timer table (see `timers`).
        if cfg!(feature = "compact-code") {
            return;
        }
        *self.changed.get_mut() = true;
    }

    /// How many times a slot's broker changed.
    #[cfg_attr(feature = "compact-code", allow(dead_code))] // read by the timer table only
    pub(crate) fn nodes_changed(&self) -> u32 {
        self.nodes
    }

    /// Slot `i` is broker `node`'s connection.
    pub(crate) fn set_node(&mut self, i: usize, node: i32) {
        self.change();
        self.nodes = self.nodes.wrapping_add(1);
        self.slots[i].node_id = node;
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn iter(&self) -> core::slice::Iter<'_, ConnSlot> {
        self.slots.iter()
    }

    /// Slot `i` as the transport knows it now.
    pub(crate) fn id(&self, i: usize) -> ConnId {
        ConnId::new(i, self.slots[i].generation)
    }

    /// The slot of a live connection id, `None` for stale ids.
    pub(crate) fn live(&self, conn: ConnId) -> Option<usize> {
        let c = self.slots.get(conn.index())?;
        (c.generation == conn.generation() && c.state != ConnState::Free).then_some(conn.index())
    }

    /// The slot of broker `node`'s connection.
    pub(crate) fn of_node(&self, node: i32) -> Option<usize> {
        self.slots.iter().position(|c| c.node_id == node)
    }

    /// Takes bytes of `data` into slot `i`'s receive buffer: how many fitted.
    pub(crate) fn receive(&mut self, i: usize, data: &[u8]) -> usize {
        let rx_len = self.slots[i].rx_len;
        let take = (self.rx_size - rx_len).min(data.len());
        let start = i * self.rx_size;
        self.rx[start + rx_len..start + rx_len + take].copy_from_slice(&data[..take]);
        self.slots[i].rx_len += take;
        take
    }

    /// What slot `i`'s receive buffer holds next.
    pub(crate) fn next_frame(&self, i: usize) -> Frame {
        let rx_len = self.slots[i].rx_len;
        if rx_len < 4 {
            return Frame::Incomplete;
        }
        let start = i * self.rx_size;
        let size =
            i32::from_be_bytes([self.rx[start], self.rx[start + 1], self.rx[start + 2], self.rx[start + 3]]);
        let max = self.rx_size - 4;
        if size < 0 || size as usize > max {
            return Frame::TooLarge { size, max };
        }
        let end = 4 + size as usize;
        if rx_len < end {
            return Frame::Incomplete;
        }
        Frame::Complete { end }
    }

    /// The receive memory, lent out so that a frame can be read while the producer changes;
    /// give it back with [`ConnTable::return_rx`] before the next call here.
    pub(crate) fn lend_rx(&mut self) -> &'a mut [u8] {
        core::mem::take(&mut self.rx)
    }

    pub(crate) fn return_rx(&mut self, rx: &'a mut [u8]) {
        self.rx = rx;
    }

    /// The body of slot `i`'s complete frame ending at `end`, in lent-out receive memory.
    pub(crate) fn frame_in<'r>(&self, rx: &'r [u8], i: usize, end: usize) -> &'r [u8] {
        let start = i * self.rx_size;
        &rx[start + 4..start + end]
    }

    /// Drops slot `i`'s frame ending at `end` from its receive buffer.
    pub(crate) fn consume(&mut self, i: usize, end: usize) {
        let start = i * self.rx_size;
        let rx_len = self.slots[i].rx_len;
        self.rx.copy_within(start + end..start + rx_len, start);
        self.slots[i].rx_len = rx_len - end;
    }

    /// The request an answer with `correlation_id` belongs to, taken off slot `i`'s queue.
    /// Answers come in request order; acks=0 requests before it were answered by a real Kafka
    /// broker with silence, by Tansu or the mock with a response: they are dropped either way.
    /// `None` if no request of ours has that id (the connection is confused).
    pub(crate) fn take_answered(&mut self, i: usize, correlation_id: i32, now: Instant) -> Option<InFlight> {
        self.change();
        self.slots[i].last_used = now;
        let queue = &mut self.slots[i].in_flight;
        loop {
            match queue.front().copied() {
                Some(f) if f.correlation_id == correlation_id => {
                    queue.pop_front();
                    return Some(f);
                }
                Some(f) if f.optional => {
                    queue.pop_front();
                }
                _ => return None,
            }
        }
    }

    /// Queues a request on slot `i` under its next correlation id, and starts writing it
    /// (`total` bytes).
    pub(crate) fn start(&mut self, i: usize, kind: RequestKind, version: i16, now: Instant) -> InFlight {
        self.change();
        let c = &mut self.slots[i];
        c.correlation_id = next_correlation_id(c.correlation_id);
        c.last_used = now;
        let optional = matches!(kind, RequestKind::Produce { acks0: true, .. });
        let request = InFlight { correlation_id: c.correlation_id, kind, version, sent_at: now, optional };
        if c.in_flight.len() == CONN_QUEUE {
            // Only optional entries can be in the way (busy < max in flight <= 5 < CONN_QUEUE).
            c.in_flight.pop_front();
        }
        // Room was made just above.
        let _ = c.in_flight.push_back(request);
        request
    }

    /// The correlation id slot `i`'s next request will have.
    pub(crate) fn next_correlation_id(&self, i: usize) -> i32 {
        next_correlation_id(self.slots[i].correlation_id)
    }

    /// Requests on slot `i` whose answers are awaited.
    pub(crate) fn awaited(&self, i: usize) -> usize {
        self.slots[i].in_flight.iter().filter(|f| f.is_awaited()).count()
    }

    /// Whether slot `i` may start another request: nothing being written, fewer than
    /// `max_in_flight` answers awaited.
    pub(crate) fn can_start(&self, i: usize, max_in_flight: u8) -> bool {
        self.slots[i].tx.is_none() && self.awaited(i) < usize::from(max_in_flight)
    }

    /// The ready connection with the fewest requests in flight: where Metadata and
    /// InitProducerId go.
    pub(crate) fn control(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].state == ConnState::Ready && self.slots[i].tx.is_none())
            .min_by_key(|&i| self.awaited(i))
    }

    pub(crate) fn any_open(&self) -> bool {
        self.slots.iter().any(|c| c.state.is_open())
    }

    pub(crate) fn any_produce_in_flight(&self) -> bool {
        self.slots
            .iter()
            .any(|c| c.in_flight.iter().any(|f| matches!(f.kind, RequestKind::Produce { acks0: false, .. })))
    }

    /// Slot `i`'s socket opened: the ApiVersions handshake starts (at `api_versions_max`
    /// unless the broker asked for a lower version). `false` if it was not being opened.
    pub(crate) fn connected(&mut self, i: usize, api_versions_max: i16) -> bool {
        self.change();
        let c = &mut self.slots[i];
        if !matches!(c.state, ConnState::Connecting { .. }) {
            return false;
        }
        c.state = ConnState::Handshake;
        if c.api_versions_version <= 0 {
            c.api_versions_version = api_versions_max;
        }
        true
    }

    /// Asks the transport to open idle slot `i`, giving the attempt `setup_timeout`.
    pub(crate) fn connect(&mut self, i: usize, now: Instant, setup_timeout: Duration) {
        self.change();
        let c = &mut self.slots[i];
        c.setup_timeout = setup_timeout;
        c.state = ConnState::Connecting { since: now };
        c.connect_pending = true;
        self.events.set(true);
    }

    /// Slot `i` is lost: a `Close` is owed if the transport had a socket for it, its id is
    /// retired, its buffers emptied. Returns the number of failures in a row, for the backoff;
    /// the caller then takes its requests ([`ConnTable::pop_request`]) and sets the backoff.
    pub(crate) fn lose(&mut self, i: usize) -> u32 {
        self.change();
        let c = &mut self.slots[i];
        if c.state.is_open() {
            c.close_pending = Some(ConnId::new(i, c.generation));
            self.events.set(true);
        }
        c.generation = c.generation.wrapping_add(1);
        c.tx = None;
        c.rx_len = 0;
        c.connect_pending = false;
        c.reauth_at = None;
        c.failures += 1;
        c.failures
    }

    pub(crate) fn pop_request(&mut self, i: usize) -> Option<InFlight> {
        self.change();
        self.slots[i].in_flight.pop_front()
    }

    /// After `close`, with every record reported: every open slot is closed at once, nothing
    /// of theirs is retried.
    pub(crate) fn close_all(&mut self) {
        self.change();
        self.events.set(true);
        for (i, c) in self.slots.iter_mut().enumerate() {
            if c.state.is_open() {
                c.close_pending = Some(ConnId::new(i, c.generation));
                c.generation = c.generation.wrapping_add(1);
                c.state = ConnState::Idle;
                c.in_flight.clear();
                c.tx = None;
                c.rx_len = 0;
                c.connect_pending = false;
            }
        }
    }

    /// Whether ready slot `i` has been unused (no request started or answered, none in flight)
    /// since `idle` before `now`; `None` while it is in use.
    pub(crate) fn idle_until(&self, i: usize, idle: crate::time::Duration) -> Option<Instant> {
        let c = &self.slots[i];
        // acks=0 requests Kafka never answers do not keep a connection in use.
        (c.state == ConnState::Ready && self.awaited(i) == 0 && c.tx.is_none()).then(|| c.last_used + idle)
    }

    /// Closes ready slot `i`, unused for `connections.max.idle.ms`: a `Close` is owed, its id
    /// retired; it is idle again, to be reopened when there is work for its broker. Not a
    /// failure: no backoff.
    pub(crate) fn close_idle(&mut self, i: usize) {
        self.change();
        self.events.set(true);
        let c = &mut self.slots[i];
        c.close_pending = Some(ConnId::new(i, c.generation));
        c.generation = c.generation.wrapping_add(1);
        c.state = ConnState::Idle;
        c.rx_len = 0;
        c.connect_pending = false;
        c.reauth_at = None;
    }

    /// A `Close` or `Connect` is owed to the transport.
    pub(crate) fn has_event(&self) -> bool {
        let any =
            self.events.get() && self.slots.iter().any(|c| c.close_pending.is_some() || c.connect_pending);
        self.events.set(any);
        any
    }

    /// The next `Close`, else the next `Connect`, as `(conn, Some((host, port, setup timeout)))`
    /// for a connect.
    pub(crate) fn poll_event(&mut self) -> Option<(ConnId, Option<Dial<'_>>)> {
        if let Some(c) = self.slots.iter_mut().find(|c| c.close_pending.is_some()) {
            return c.close_pending.take().map(|conn| (conn, None));
        }
        let i = self.slots.iter().position(|c| c.connect_pending)?;
        let c = &mut self.slots[i];
        c.connect_pending = false;
        Some((ConnId::new(i, c.generation), Some((c.host.as_str(), c.port, c.setup_timeout))))
    }

    /// Gives slot `i` to broker `node` at `host:port`, as a fresh idle connection.
    pub(crate) fn assign(&mut self, i: usize, node: i32, host: String<HOST_MAX>, port: u16) {
        self.change();
        self.nodes = self.nodes.wrapping_add(1);
        let c = &mut self.slots[i];
        let generation = c.generation.wrapping_add(1);
        *c = ConnSlot { state: ConnState::Idle, generation, node_id: node, host, port, ..ConnSlot::empty() };
    }
}

impl Index<usize> for ConnTable<'_> {
    type Output = ConnSlot;
    fn index(&self, i: usize) -> &ConnSlot {
        &self.slots[i]
    }
}

impl IndexMut<usize> for ConnTable<'_> {
    fn index_mut(&mut self, i: usize) -> &mut ConnSlot {
        self.change();
        &mut self.slots[i]
    }
}

/// Correlation ids count up from 1 and stay positive.
fn next_correlation_id(current: i32) -> i32 {
    current.wrapping_add(1) & i32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table<'a>(slots: &'a mut [ConnSlot], rx: &'a mut [u8]) -> ConnTable<'a> {
        ConnTable::new(slots, rx)
    }

    #[test]
    fn frames_are_cut_at_their_size_prefix() {
        let (mut slots, mut rx) = ([ConnSlot::EMPTY, ConnSlot::EMPTY], [0u8; 64]);
        let mut t = table(&mut slots, &mut rx);
        assert_eq!(t.receive(1, &[0, 0, 0, 3, b'a']), 5);
        assert_eq!(t.next_frame(1), Frame::Incomplete);
        t.receive(1, &[b'b', b'c', 0, 0]);
        assert_eq!(t.next_frame(1), Frame::Complete { end: 7 });
        let rx = t.lend_rx();
        assert_eq!(t.frame_in(rx, 1, 7), b"abc");
        t.return_rx(rx);
        t.consume(1, 7);
        assert_eq!(t[1].rx_len, 2, "the next frame's first bytes stay");
        assert_eq!(t.next_frame(0), Frame::Incomplete, "slots do not share buffers");
    }

    #[test]
    fn a_hostile_size_prefix_is_refused_not_buffered() {
        let (mut slots, mut rx) = ([ConnSlot::EMPTY], [0u8; 32]);
        let mut t = table(&mut slots, &mut rx);
        t.receive(0, &[0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(t.next_frame(0), Frame::TooLarge { size: i32::MAX, max: 28 });
        assert_eq!(t.receive(0, &[0u8; 64]), 28, "the buffer bounds what is taken");
    }

    #[test]
    fn answers_match_requests_in_order_skipping_unanswered_acks0() {
        let (mut slots, mut rx) = ([ConnSlot::EMPTY], [0u8; 32]);
        let mut t = table(&mut slots, &mut rx);
        let head = BatchId::for_test(0);
        let a = t.start(0, RequestKind::Produce { head, acks0: true }, 9, Instant::ZERO);
        let b = t.start(0, RequestKind::ApiVersions, 3, Instant::ZERO);
        assert_eq!((a.correlation_id, b.correlation_id), (1, 2));
        assert_eq!(t.awaited(0), 1, "acks=0 answers are not awaited");
        assert_eq!(t.take_answered(0, 2, Instant::ZERO), Some(b));
        assert_eq!(t.take_answered(0, 2, Instant::ZERO), None, "answered once");
    }

    #[test]
    fn a_lost_connection_retires_its_id_and_owes_a_close() {
        let (mut slots, mut rx) = ([ConnSlot::EMPTY], [0u8; 32]);
        let mut t = table(&mut slots, &mut rx);
        t.assign(0, 3, String::try_from("b").unwrap(), 9092);
        t.connect(0, Instant::ZERO, Duration::from_millis(10_000));
        let (conn, target) = t.poll_event().unwrap();
        assert_eq!(target, Some(("b", 9092, Duration::from_millis(10_000))));
        assert!(t.connected(0, 4));
        assert_eq!(t.lose(0), 1);
        assert_eq!(t.live(conn), None, "stale ids are ignored");
        assert_eq!(t.poll_event(), Some((conn, None)), "a Close for the old id");
        assert!(!t.has_event());
    }
}
