//! The producer's clock: the one deadline the transport arms (`poll_timeout`), and what
//! happens when it passes — linger, retry backoff, request and connection-setup timeouts,
//! `delivery.timeout.ms`, metadata age, InitProducerId backoff, connections unused for
//! `connections.max.idle.ms`, the close deadline.

use super::connections::ConnState;
use super::Producer;
use crate::error::DeliveryError;
use crate::time::{Duration, Instant};

impl Producer<'_> {
    /// The earliest deadline the producer can act on. Only deadlines it can act on count: a
    /// batch done lingering whose leader is not connected waits for the connection, not for a
    /// timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let mut t = Instant::NEVER;
        let linger = Duration::from_millis(u64::from(self.config.linger_ms));
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        let request = Duration::from_millis(u64::from(self.config.request_timeout_ms));
        let setup = Duration::from_millis(u64::from(self.config.socket_connection_setup_timeout_ms));
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
                ConnState::Connecting { since } => t = t.min(since + setup),
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
        let setup = Duration::from_millis(u64::from(self.config.socket_connection_setup_timeout_ms));
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let timed_out =
                c.in_flight.iter().find(|f| f.is_awaited()).is_some_and(|f| f.sent_at + request <= now);
            match c.state {
                ConnState::Connecting { since } if since + setup <= now => {
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
