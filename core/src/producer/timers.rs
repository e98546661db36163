//! The producer's clock: the one deadline the transport arms (`poll_timeout`), and what
//! happens when it passes — linger, retry backoff, request and connection-setup timeouts,
//! `delivery.timeout.ms`, metadata age, InitProducerId backoff, connections unused for
//! `connections.max.idle.ms`, the close deadline.
//!
//! `poll_timeout` is the minimum of a [`TimerTable`]: one entry per [`Timer`], as in
//! quinn-proto. Each entry is brought up to date from what changed since the last call, not by
//! rescanning every partition and connection:
//!
//! - the partition-wide entries ([`Timer::ReadyBatch`], [`Timer::DeliveryExpiry`]) are a
//!   minimum over partitions that remembers which partition holds it. The batch and partition
//!   tables note the partitions they changed ([`Touched`]); only those are looked at again, and
//!   only if the partition holding the minimum moved later is the entry recomputed by a scan.
//!   A change to what every partition's readiness depends on (a connection becoming usable or
//!   not, the producer id, a transaction starting, `close`) recomputes `ReadyBatch` by a scan;
//! - the connection entries are recomputed, by a walk of the connection slots (at most 255),
//!   when the connection table says it changed;
//! - the rest (metadata, transactions, InitProducerId, close) are a few fields each, and are
//!   recomputed every time.
//!
//! Debug builds check every `poll_timeout` against a full rescan (`deadline_by_rescan`), which
//! is also what builds with `compact-code` (microcontrollers) use instead of the table.

// compact-code builds rescan and leave the table unused (see `next_deadline`).
#![cfg_attr(feature = "compact-code", allow(dead_code))]

use core::cell::Cell;

use super::connections::ConnState;
use super::idempotence::Idempotence;
use super::Producer;
use crate::error::DeliveryError;
use crate::time::{Duration, Instant};

/// The producer's deadlines, one [`TimerTable`] entry each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The earliest a batch can be sent: lingered, full, flushed, or due for retry, on a
    /// connection that can take a request.
    ReadyBatch,
    /// The oldest batch not in flight reaches `delivery.timeout.ms`.
    DeliveryExpiry,
    /// A connection being opened reaches its setup timeout (`socket.connection.setup.timeout.ms`,
    /// grown for each failure in a row up to `socket.connection.setup.timeout.max.ms`).
    ConnSetup,
    /// A connection's reconnect backoff ends.
    Backoff,
    /// The oldest awaited request reaches `request.timeout.ms`.
    RequestTimeout,
    /// A connection is due to re-authenticate (KIP-368).
    Reauth,
    /// A connection unused for `connections.max.idle.ms`.
    IdleClose,
    /// Metadata reaches `metadata.max.age.ms`.
    MetadataAge,
    /// A wanted Metadata request's backoff ends.
    MetadataRetry,
    /// A coordinator request's backoff ends.
    Txn,
    /// An InitProducerId's backoff ends.
    InitPid,
    /// The close deadline.
    Close,
}

impl Timer {
    pub(crate) const COUNT: usize = 12;
    const ALL: [Timer; Timer::COUNT] = [
        Timer::ReadyBatch,
        Timer::DeliveryExpiry,
        Timer::ConnSetup,
        Timer::Backoff,
        Timer::RequestTimeout,
        Timer::Reauth,
        Timer::IdleClose,
        Timer::MetadataAge,
        Timer::MetadataRetry,
        Timer::Txn,
        Timer::InitPid,
        Timer::Close,
    ];

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// No slot holds the entry.
const NOBODY: u16 = u16::MAX;

/// One deadline per [`Timer`], and for a minimum over slots, the slot holding it. An entry is
/// dirty when it must be recomputed before it can be read again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimerTable {
    at: [Instant; Timer::COUNT],
    owner: [u16; Timer::COUNT],
    dirty: u16,
}

impl TimerTable {
    /// Every entry dirty.
    pub(crate) const fn new() -> Self {
        Self {
            at: [Instant::NEVER; Timer::COUNT],
            owner: [NOBODY; Timer::COUNT],
            dirty: (1 << Timer::COUNT) - 1,
        }
    }

    /// Sets entry `t` (`None`: no deadline), held by no slot in particular.
    pub(crate) fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.set_held(t, at.map(|at| (at, NOBODY)));
    }

    /// Sets entry `t` to a minimum over slots: the deadline and the slot holding it.
    pub(crate) fn set_held(&mut self, t: Timer, at: Option<(Instant, u16)>) {
        let (at, owner) = at.unwrap_or((Instant::NEVER, NOBODY));
        self.at[t as usize] = at;
        self.owner[t as usize] = owner;
        self.dirty &= !t.bit();
    }

    /// Slot `slot`'s deadline for minimum `t` is now `at`; every other slot's is unchanged.
    /// Exact without a scan unless `slot` held the minimum and moved later: then `t` turns
    /// dirty.
    pub(crate) fn offer(&mut self, t: Timer, slot: u16, at: Option<Instant>) {
        if self.is_dirty(t) {
            return;
        }
        let (i, at) = (t as usize, at.unwrap_or(Instant::NEVER));
        if at <= self.at[i] {
            // Every other slot's is at least the old minimum, so at least `at`.
            self.at[i] = at;
            self.owner[i] = if at == Instant::NEVER { NOBODY } else { slot };
        } else if self.owner[i] == slot {
            self.mark(t);
        }
        // Otherwise the slot holding the minimum still holds it.
    }

    /// Entry `t` must be recomputed.
    pub(crate) fn mark(&mut self, t: Timer) {
        self.dirty |= t.bit();
    }

    pub(crate) fn is_dirty(&self, t: Timer) -> bool {
        self.dirty & t.bit() != 0
    }

    #[cfg(test)]
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        let at = self.at[t as usize];
        (at != Instant::NEVER).then_some(at)
    }

    /// The earliest deadline: the minimum of the entries, none of them dirty.
    pub(crate) fn next(&self) -> Option<Instant> {
        debug_assert_eq!(self.dirty, 0, "dirty timer entries are recomputed before they are read");
        let at = Timer::ALL.iter().map(|&t| self.at[t as usize]).min().unwrap_or(Instant::NEVER);
        (at != Instant::NEVER).then_some(at)
    }
}

/// The slots a table changed since it was last asked: a few by number, or many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    /// How many of `slots` are used; [`Touched::MANY`] once more than fit.
    n: u8,
    slots: [u16; 4],
}

impl Touched {
    const MANY: u8 = u8::MAX;
    /// Every slot may have changed.
    pub(crate) const ALL: Self = Self { n: Self::MANY, slots: [0; 4] };

    pub(crate) fn add(&mut self, slot: u16) {
        // compact-code builds rescan instead (see `next_deadline`): nothing to note.
        if cfg!(feature = "compact-code") || self.n == Self::MANY || self.slots().contains(&slot) {
            return;
        }
        if usize::from(self.n) == self.slots.len() {
            self.n = Self::MANY;
        } else {
            self.slots[usize::from(self.n)] = slot;
            self.n += 1;
        }
    }

    pub(crate) fn is_many(&self) -> bool {
        self.n == Self::MANY
    }

    /// The slots changed (empty when many did: see [`Touched::is_many`]).
    pub(crate) fn slots(&self) -> &[u16] {
        if self.is_many() {
            &[]
        } else {
            &self.slots[..usize::from(self.n)]
        }
    }

    pub(crate) fn merge(mut self, other: Touched) -> Touched {
        if other.is_many() {
            return other;
        }
        for &slot in other.slots() {
            self.add(slot);
        }
        self
    }
}

/// What every partition's readiness depends on beyond its own batches: when it changes,
/// [`Timer::ReadyBatch`] is recomputed by a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ReadyGate {
    /// Connections ready and below `max.in.flight`, a bit per slot.
    usable: [u64; 4],
    /// [`ConnTable::nodes_changed`](super::connections::ConnTable::nodes_changed).
    nodes: u32,
    idempotence: Idempotence,
    transactional: bool,
    closing: bool,
}

/// The table and what it was last computed from; kept in a `Cell` so that `poll_timeout`
/// (`&self`) can bring it up to date.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    table: TimerTable,
    gate: Option<ReadyGate>,
    usable: [u64; 4],
    /// A ready connection can carry Metadata or InitProducerId now.
    control: bool,
    produce_in_flight: bool,
}

impl Clock {
    pub(crate) const fn new() -> Cell<Self> {
        Cell::new(Self {
            table: TimerTable::new(),
            gate: None,
            usable: [0; 4],
            control: false,
            produce_in_flight: false,
        })
    }
}

impl Producer<'_> {
    /// The earliest deadline the producer can act on: the minimum of the timer table, its
    /// entries first brought up to date with what changed since the last call. Only deadlines
    /// it can act on count: a batch done lingering whose leader is not connected waits for the
    /// connection, not for a timer.
    #[cfg(not(feature = "compact-code"))]
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let mut clock = self.clock.get();
        self.refresh(&mut clock);
        self.clock.set(clock);
        clock.table.next()
    }

    /// compact-code builds (microcontrollers) rescan: with a handful of partitions and one or
    /// two connections that is a few dozen comparisons, while keeping the table current costs
    /// 2.3 KB of Cortex-M4 flash (its bookkeeping in every owner's changes).
    #[cfg(feature = "compact-code")]
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadline_by_rescan()
    }

    fn refresh(&self, c: &mut Clock) {
        if self.conns.take_changed() {
            self.refresh_connections(c);
        }
        let t = &mut c.table;
        let max_age = Duration::from_millis(u64::from(self.config.metadata_max_age_ms));
        t.set(Timer::MetadataAge, Some(self.metadata.expires(max_age)));
        t.set(Timer::MetadataRetry, self.metadata.next_request().filter(|_| c.control));
        // Without a backoff under way, a field read; with one, a walk of the partitions.
        t.set(Timer::Txn, self.txn_deadline());
        let init = self.idempotence.is_wanted() && c.control && !c.produce_in_flight && !self.txn.is_on();
        t.set(Timer::InitPid, init.then(|| self.idempotence.next_attempt()));
        t.set(Timer::Close, self.closing);

        let touched = self.batches.take_touched().merge(self.partitions.take_touched());
        if touched.is_many() {
            t.mark(Timer::DeliveryExpiry);
            t.mark(Timer::ReadyBatch);
        }
        let gate = ReadyGate {
            usable: c.usable,
            nodes: self.conns.nodes_changed(),
            idempotence: self.idempotence,
            transactional: self.txn.is_on(),
            closing: self.closing.is_some(),
        };
        if c.gate != Some(gate) {
            c.gate = Some(gate);
            t.mark(Timer::ReadyBatch);
        }
        // The partitions changed, one by one (a no-op on a dirty entry), then a scan if the
        // entry is, or turned, dirty.
        // (A free batch slot names no partition: `topics::NIL`.)
        for &pi in touched.slots().iter().filter(|&&pi| usize::from(pi) < self.partitions.len()) {
            t.offer(Timer::DeliveryExpiry, pi, self.expiry_of(usize::from(pi)));
            t.offer(Timer::ReadyBatch, pi, self.ready_at(usize::from(pi)));
        }
        if t.is_dirty(Timer::DeliveryExpiry) {
            let at = (0..self.partitions.len()).filter_map(|pi| Some((self.expiry_of(pi)?, pi as u16))).min();
            t.set_held(Timer::DeliveryExpiry, at);
        }
        if t.is_dirty(Timer::ReadyBatch) {
            let at = (0..self.partitions.len()).filter_map(|pi| Some((self.ready_at(pi)?, pi as u16))).min();
            t.set_held(Timer::ReadyBatch, at);
        }
    }

    /// The connection entries, and what the others need to know of the connections.
    fn refresh_connections(&self, c: &mut Clock) {
        let request = Duration::from_millis(u64::from(self.config.request_timeout_ms));
        let idle = self.config.connections_max_idle();
        let (mut connect, mut backoff, mut reauth, mut answer, mut unused) =
            (Instant::NEVER, Instant::NEVER, Instant::NEVER, Instant::NEVER, Instant::NEVER);
        c.usable = [0; 4];
        for (i, conn) in self.conns.iter().enumerate() {
            match conn.state {
                ConnState::Connecting { since } => connect = connect.min(since + conn.setup_timeout),
                ConnState::Backoff { until } => backoff = backoff.min(until),
                _ => {}
            }
            // A connection due to re-authenticate with requests in flight waits for their
            // answers, not for a timer.
            if let Some(at) =
                conn.reauth_at.filter(|_| conn.state == ConnState::Ready && conn.in_flight.is_empty())
            {
                reauth = reauth.min(at);
            }
            if let Some(f) = conn.in_flight.iter().find(|f| f.is_awaited()) {
                answer = answer.min(f.sent_at + request);
            }
            if let Some(at) = idle.and_then(|idle| self.conns.idle_until(i, idle)) {
                unused = unused.min(at);
            }
            if conn.state == ConnState::Ready && self.can_start(i) {
                c.usable[i / 64] |= 1 << (i % 64);
            }
        }
        let never = |at: Instant| (at != Instant::NEVER).then_some(at);
        let t = &mut c.table;
        t.set(Timer::ConnSetup, never(connect));
        t.set(Timer::Backoff, never(backoff));
        t.set(Timer::Reauth, never(reauth));
        t.set(Timer::RequestTimeout, never(answer));
        t.set(Timer::IdleClose, never(unused));
        c.control = self.control_conn().is_some_and(|i| self.can_start(i));
        c.produce_in_flight = self.any_produce_in_flight();
    }

    /// When partition slot `pi`'s oldest batch not in flight reaches `delivery.timeout.ms`. A
    /// partition's batches are chained in creation order, so it is the first such one in its
    /// chain (past the few in flight or awaiting reports).
    fn expiry_of(&self, pi: usize) -> Option<Instant> {
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        let (_, s) = self.batches.partition_chain(self.partitions[pi].head).find(|(_, s)| s.is_queued())?;
        Some(s.created + delivery)
    }

    /// When partition slot `pi` has a batch its leader's connection can take, if that
    /// connection is ready and can start a request.
    fn ready_at(&self, pi: usize) -> Option<Instant> {
        let p = &self.partitions[pi];
        if !self.idempotence.allows_produce() || p.is_free() || p.head.is_none() || p.leader < 0 {
            return None;
        }
        let i = self.conns.of_node(p.leader)?;
        if self.conns[i].state != ConnState::Ready || !self.can_start(i) {
            return None;
        }
        let linger = Duration::from_millis(u64::from(self.config.linger_ms));
        self.candidate(pi, i, linger).map(|(_, at)| at)
    }

    /// The earliest deadline by a rescan of every partition and connection: what
    /// [`Producer::next_deadline`] computed before the table, kept as the table's oracle (debug
    /// builds check every `poll_timeout` against it; tests measure both).
    #[cfg(any(test, debug_assertions, feature = "compact-code"))]
    pub(super) fn deadline_by_rescan(&self) -> Option<Instant> {
        let mut t = Instant::NEVER;
        let linger = Duration::from_millis(u64::from(self.config.linger_ms));
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        let request = Duration::from_millis(u64::from(self.config.request_timeout_ms));
        // The oldest batch not in flight, per partition: a partition's batches are chained in
        // creation order, so it is the first such one in its chain (past the few in flight or
        // awaiting reports). Walking chains instead of every batch slot matters: this runs on
        // every turn of a transport's loop, and a host producer has thousands of slots.
        for p in self.partitions.iter() {
            if let Some((_, s)) = self.batches.partition_chain(p.head).find(|(_, s)| s.is_queued()) {
                t = t.min(s.created + delivery);
            }
        }
        for c in self.conns.iter() {
            match c.state {
                ConnState::Connecting { since } => t = t.min(since + c.setup_timeout),
                ConnState::Backoff { until } => t = t.min(until),
                _ => {}
            }
            // A connection due to re-authenticate with requests in flight waits for their
            // answers, not for a timer.
            if let Some(at) = c.reauth_at.filter(|_| c.state == ConnState::Ready && c.in_flight.is_empty()) {
                t = t.min(at);
            }
            if let Some(f) = c.in_flight.iter().find(|f| f.is_awaited()) {
                t = t.min(f.sent_at + request);
            }
        }
        if let Some(idle) = self.config.connections_max_idle() {
            for i in 0..self.conns.len() {
                if let Some(at) = self.conns.idle_until(i, idle) {
                    t = t.min(at);
                }
            }
        }
        let control = self.control_conn().is_some_and(|i| self.can_start(i));
        let max_age = Duration::from_millis(u64::from(self.config.metadata_max_age_ms));
        t = t.min(self.metadata.expires(max_age));
        if let Some(at) = self.metadata.next_request().filter(|_| control) {
            t = t.min(at);
        }
        if let Some(at) = self.txn_deadline() {
            t = t.min(at);
        }
        if self.idempotence.is_wanted() && control && !self.any_produce_in_flight() && !self.txn.is_on() {
            t = t.min(self.idempotence.next_attempt());
        }
        if self.idempotence.allows_produce() {
            for pi in 0..self.partitions.len() {
                let p = &self.partitions[pi];
                if p.is_free() || p.head.is_none() || p.leader < 0 {
                    continue;
                }
                let Some(i) = self.conns.of_node(p.leader) else { continue };
                if self.conns[i].state == ConnState::Ready && self.can_start(i) {
                    if let Some((_, at)) = self.candidate(pi, i, linger) {
                        t = t.min(at);
                    }
                }
            }
        }
        if let Some(d) = self.closing {
            t = t.min(d);
        }
        (t != Instant::NEVER).then_some(t)
    }

    /// Acts on every deadline that has passed.
    pub(super) fn on_timeout(&mut self, now: Instant) {
        let request = Duration::from_millis(u64::from(self.config.request_timeout_ms));
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let timed_out =
                c.in_flight.iter().find(|f| f.is_awaited()).is_some_and(|f| f.sent_at + request <= now);
            match c.state {
                ConnState::Connecting { since } if since + c.setup_timeout <= now => {
                    self.close_conn(now, i, crate::error::ConnError::ConnectTimeout)
                }
                ConnState::Backoff { until } if until <= now => self.conns[i].state = ConnState::Idle,
                _ if timed_out => self.close_conn(now, i, crate::error::ConnError::RequestTimeout),
                _ => {}
            }
        }
        if let Some(idle) = self.config.connections_max_idle() {
            for i in 0..self.conns.len() {
                if self.conns.idle_until(i, idle).is_some_and(|at| at <= now) {
                    debug!(
                        "closing {}:{}: unused for connections.max.idle.ms",
                        self.conns[i].host.as_str(),
                        self.conns[i].port
                    );
                    self.conns.close_idle(i);
                }
            }
        }
        let max_age = Duration::from_millis(u64::from(self.config.metadata_max_age_ms));
        if self.metadata.expires(max_age) <= now {
            self.want_metadata();
        }
        self.expire_batches(now);
        if let Some(deadline) = self.closing {
            if deadline <= now {
                self.abandon_all(DeliveryError::Closed);
                self.txn_give_up();
            }
        }
        self.schedule(now);
    }

    /// Fails batches whose `delivery.timeout.ms` has passed and that are not in flight (an
    /// in-flight batch waits for its answer or its request's timeout, which comes first).
    fn expire_batches(&mut self, now: Instant) {
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        for b in self.batches.ids() {
            let s = &self.batches[b];
            if s.is_queued() && s.created + delivery <= now {
                let last = s.last_error;
                self.fail_batch(b, DeliveryError::Timeout { last });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::boxed::Box;
    use std::vec;

    use super::*;
    use crate::producer::topics::TopicState;
    use crate::storage::Storage;
    use crate::{Config, Record};

    fn at(ms: u64) -> Option<Instant> {
        Some(Instant::from_millis(ms))
    }

    #[test]
    fn the_table_is_the_minimum_of_its_entries_once_none_is_dirty() {
        let mut t = TimerTable::new();
        assert!(Timer::ALL.iter().all(|&e| t.is_dirty(e)), "a new table is computed first");
        for e in Timer::ALL {
            t.set(e, None);
        }
        assert_eq!(t.next(), None);
        t.set(Timer::Backoff, at(30));
        t.set(Timer::Close, at(20));
        t.set(Timer::MetadataAge, at(40));
        assert_eq!(t.next(), at(20));
        t.set(Timer::Close, None);
        assert_eq!((t.next(), t.get(Timer::Close)), (at(30), None));
        t.mark(Timer::Txn);
        assert!(t.is_dirty(Timer::Txn) && !t.is_dirty(Timer::Backoff));
    }

    #[test]
    fn a_slot_offering_its_deadline_keeps_the_minimum_exact_or_turns_it_dirty() {
        let mut t = TimerTable::new();
        // Slots 1, 2, 3 at 50, 70, 90: 50, held by slot 1.
        t.set_held(Timer::ReadyBatch, Some((Instant::from_millis(50), 1)));
        t.offer(Timer::ReadyBatch, 3, at(40));
        assert_eq!(t.get(Timer::ReadyBatch), at(40), "earlier than the minimum: the new minimum");
        t.offer(Timer::ReadyBatch, 2, at(80));
        assert_eq!(t.get(Timer::ReadyBatch), at(40), "another slot moving later changes nothing");
        t.offer(Timer::ReadyBatch, 3, at(40));
        assert!(!t.is_dirty(Timer::ReadyBatch), "the holder unchanged");
        t.offer(Timer::ReadyBatch, 3, None);
        assert!(t.is_dirty(Timer::ReadyBatch), "the holder moved later: only a scan can tell");
        t.offer(Timer::ReadyBatch, 1, at(10));
        assert!(t.is_dirty(Timer::ReadyBatch), "a dirty entry waits for its scan");
        t.set_held(Timer::ReadyBatch, None);
        t.offer(Timer::ReadyBatch, 2, at(5));
        assert_eq!(t.get(Timer::ReadyBatch), at(5), "from none at all");
    }

    #[test]
    #[cfg(not(feature = "compact-code"))] // which notes nothing
    fn touched_slots_are_listed_until_too_many_are() {
        let mut a = Touched::default();
        assert_eq!((a.slots(), a.is_many()), (&[][..], false));
        a.add(7);
        a.add(7);
        a.add(3);
        assert_eq!(a.slots(), &[7, 3]);
        let mut b = Touched::default();
        b.add(1);
        b.add(3);
        let ab = a.merge(b);
        assert_eq!(ab.slots(), &[7, 3, 1]);
        let mut full = ab;
        full.add(9);
        assert_eq!(full.slots(), &[7, 3, 1, 9]);
        full.add(10);
        assert!(full.is_many() && full.slots().is_empty());
        assert!(ab.merge(Touched::ALL).is_many() && Touched::ALL.merge(b).is_many());
    }

    /// A broker that never accepts: each attempt gets `socket.connection.setup.timeout.ms`
    /// doubled for each failure before it, ±20%, and never more than the max (Java's
    /// ClusterConnectionStates).
    #[test]
    fn connection_setup_timeouts_grow_to_the_max() {
        let mut memory = [0u8; 4096];
        let mut batches = [super::super::batches::BatchSlot::EMPTY; 2];
        let mut rx = [0u8; 1024];
        let mut conns = [super::super::connections::ConnSlot::EMPTY];
        let mut topics = [super::super::topics::TopicSlot::EMPTY];
        let mut partitions = [super::super::topics::PartitionSlot::EMPTY; 1];
        let s = storage(&mut memory, &mut batches, &mut rx, &mut conns, &mut topics, &mut partitions);
        let mut config = Config::new("127.0.0.1:9092").unwrap();
        config.set("socket.connection.setup.timeout.ms", "1000").unwrap();
        config.set("socket.connection.setup.timeout.max.ms", "5000").unwrap();
        let mut p = Producer::new(config, s, Instant::ZERO).unwrap();
        let mut now = Instant::ZERO;
        // A record for a topic nobody knows yet: metadata wanted, a connection opened for it.
        assert!(p.send(now, Record::new("t").value(b"v")).is_err());
        let mut given = std::vec::Vec::new();
        for _ in 0..200 {
            if given.len() == 6 {
                break;
            }
            while let Some(event) = p.poll_event() {
                if matches!(event, crate::producer::Event::Connect { .. }) {
                    // Nothing else is due before the attempt's end.
                    let end = p.poll_timeout().unwrap();
                    given.push((end.as_millis() - now.as_millis()) as u32);
                }
            }
            now = p.poll_timeout().expect("a deadline");
            p.handle_timeout(now);
        }
        assert_eq!(given.len(), 6, "{given:?} by {now:?}");
        assert_eq!(given[0], 1000, "{given:?}");
        assert!((1600..=2400).contains(&given[1]), "{given:?}");
        assert!((3200..=4800).contains(&given[2]), "{given:?}");
        assert!(given[3..].iter().all(|&t| (4000..=5000).contains(&t)), "{given:?}");
    }

    /// A producer whose 1,000 partitions are led by one ready connection, each with an open
    /// batch lingering: no broker, the tables set by hand.
    fn lingering(storage: Storage<'_>, partitions: u16) -> Producer<'_> {
        let mut config = Config::new("127.0.0.1:9092").unwrap();
        (config.enable_idempotence, config.linger_ms) = (false, 60_000);
        let now = Instant::ZERO;
        let mut p = Producer::new(config, storage, now).unwrap();
        let idle = Duration::from_millis(u64::MAX / 4);
        let t = p.topics.add(now, "t", &mut p.partitions, true, idle).unwrap();
        let first = p.partitions.allocate(t, partitions, None, &mut |_, _| {}).unwrap();
        p.topics[t].state = TopicState::Known { first, count: partitions };
        for pi in 0..usize::from(partitions) {
            p.partitions[pi].leader = 1;
        }
        p.conns.assign(0, 1, heapless::String::try_from("b1").unwrap(), 9092);
        p.conns[0].state = ConnState::Ready;
        for k in 0..i32::from(partitions) {
            p.send(Instant::from_millis(k as u64), Record::new("t").partition(k).value(b"v")).unwrap();
        }
        p
    }

    fn storage<'a>(
        memory: &'a mut [u8],
        batches: &'a mut [super::super::batches::BatchSlot],
        rx: &'a mut [u8],
        conns: &'a mut [super::super::connections::ConnSlot],
        topics: &'a mut [super::super::topics::TopicSlot],
        partitions: &'a mut [super::super::topics::PartitionSlot],
    ) -> Storage<'a> {
        Storage { batch_memory: memory, batches, scratch: &mut [], rx_memory: rx, conns, topics, partitions }
    }

    /// What `poll_timeout` costs with 1,000 partitions, each with a lingering batch, after a
    /// `send` (the per-record path) and with nothing changed, by the table and by the rescan it
    /// replaced. Prints figures, asserts only that both agree:
    /// `cargo test -p picokafka-core --release --lib poll_timeout_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement: run it in release"]
    fn poll_timeout_cost_with_1000_partitions() {
        const N: u16 = 1000;
        let (slots, buffer) = (usize::from(N) + 100, 512);
        let mut memory = vec![0u8; slots * buffer];
        let mut batches = vec![super::super::batches::BatchSlot::EMPTY; slots];
        let mut rx = vec![0u8; 2 * 1024];
        let mut conns =
            [super::super::connections::ConnSlot::EMPTY, super::super::connections::ConnSlot::EMPTY];
        let mut topics = [super::super::topics::TopicSlot::EMPTY];
        let mut partitions = vec![super::super::topics::PartitionSlot::EMPTY; usize::from(N)];
        let s = storage(&mut memory, &mut batches, &mut rx, &mut conns, &mut topics, &mut partitions);
        let mut p = Box::new(lingering(s, N));
        let rounds = 20 * u32::from(N);
        let (mut table, mut rescan) = (core::time::Duration::ZERO, core::time::Duration::ZERO);
        let mut idle = (core::time::Duration::ZERO, core::time::Duration::ZERO);
        for k in 0..rounds {
            let record = Record::new("t").partition((k % u32::from(N)) as i32).value(b"v");
            p.send(Instant::from_millis(u64::from(N)), record).unwrap();
            let t0 = std::time::Instant::now();
            let a = p.next_deadline();
            let t1 = std::time::Instant::now();
            let b = p.deadline_by_rescan();
            let t2 = std::time::Instant::now();
            let c = p.next_deadline();
            let t3 = std::time::Instant::now();
            assert_eq!((a, c), (b, b));
            table += t1 - t0;
            rescan += t2 - t1;
            idle.0 += t3 - t2;
            let t4 = std::time::Instant::now();
            core::hint::black_box(p.deadline_by_rescan());
            idle.1 += std::time::Instant::now() - t4;
        }
        let per = |d: core::time::Duration| d.as_nanos() as f64 / f64::from(rounds);
        std::println!(
            "poll_timeout, {N} partitions, {rounds} rounds: after a send {:.0} ns (table) vs {:.0} ns \
             (rescan); nothing changed {:.0} ns (table) vs {:.0} ns (rescan)",
            per(table),
            per(rescan),
            per(idle.0),
            per(idle.1),
        );
    }
}
