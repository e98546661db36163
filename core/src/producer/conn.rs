//! Connections: opening and losing them, framing bytes in and out, matching answers to requests.

use super::batches::RequestTag;
use super::idempotence::InitAnswer;
use super::{ConnId, Event, Producer, Transmit};
use crate::error::ConnError;
use crate::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use crate::protocol::header::{encode_request, ApiKey, ResponseHeader};
use crate::protocol::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use crate::protocol::metadata::MetadataRequest;
use crate::protocol::{ErrorCode, Reader, Writer};
use crate::storage::{ConnState, InFlight, Outgoing, RequestKind, Versions, CONN_QUEUE};
use crate::time::{Duration, Instant};

/// ApiVersions version we ask with first.
const API_VERSIONS_MAX: i16 = 4;

impl Producer<'_> {
    /// The slot of a live connection id, `None` for stale ids.
    fn live(&self, conn: ConnId) -> Option<usize> {
        let c = self.conns.get(conn.index())?;
        (c.generation == conn.generation() && !matches!(c.state, ConnState::Free)).then_some(conn.index())
    }

    /// The transport established the connection the producer asked for.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let Some(i) = self.live(conn) else { return };
        let c = &mut self.conns[i];
        if !matches!(c.state, ConnState::Connecting { .. }) {
            return;
        }
        debug!("connected to {}:{}", c.host.as_str(), c.port);
        c.state = ConnState::Handshake;
        if c.api_versions_version <= 0 {
            c.api_versions_version = API_VERSIONS_MAX;
        }
        self.metrics.connects += 1;
        self.schedule(now);
    }

    /// The connection failed or was closed by the peer.
    pub fn handle_disconnected(&mut self, now: Instant, conn: ConnId) {
        let Some(i) = self.live(conn) else { return };
        if matches!(
            self.conns[i].state,
            ConnState::Connecting { .. } | ConnState::Handshake | ConnState::Ready
        ) {
            self.close_conn(now, i, ConnError::Disconnected);
            // The transport knows already; no `Close` is owed.
            self.conns[i].close_pending = None;
        }
        self.schedule(now);
    }

    /// Bytes received on `conn`. Returns how many were consumed: all of them, unless the
    /// connection's receive buffer is full, in which case the transport offers the rest again.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> usize {
        let Some(i) = self.live(conn) else { return data.len() };
        if !matches!(self.conns[i].state, ConnState::Handshake | ConnState::Ready) {
            return data.len();
        }
        self.metrics.bytes_read += data.len() as u64;
        let generation = self.conns[i].generation;
        let mut consumed = 0;
        loop {
            let rx_len = self.conns[i].rx_len;
            let take = (self.rx_size - rx_len).min(data.len() - consumed);
            let start = i * self.rx_size;
            self.rx_memory[start + rx_len..start + rx_len + take]
                .copy_from_slice(&data[consumed..consumed + take]);
            consumed += take;
            self.conns[i].rx_len += take;
            if !self.process_frames(now, i) || self.conns[i].generation != generation {
                // The connection was closed: what remains is meaningless.
                self.schedule(now);
                return data.len();
            }
            if consumed == data.len() || take == 0 {
                break;
            }
        }
        self.schedule(now);
        consumed
    }

    /// Handles every complete frame in connection `i`'s receive buffer. `false` if the
    /// connection was closed.
    fn process_frames(&mut self, now: Instant, i: usize) -> bool {
        let generation = self.conns[i].generation;
        loop {
            let rx_len = self.conns[i].rx_len;
            if rx_len < 4 {
                return true;
            }
            let start = i * self.rx_size;
            let size_bytes = &self.rx_memory[start..start + 4];
            let size = i32::from_be_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]]);
            if size < 0 || size as usize > self.rx_size - 4 {
                let max = self.rx_size - 4;
                self.close_conn(now, i, ConnError::FrameTooLarge { size: i64::from(size), max });
                return false;
            }
            let end = 4 + size as usize;
            if rx_len < end {
                return true;
            }
            // Lend the receive memory out so the frame can be read while `self` changes.
            let rx = core::mem::take(&mut self.rx_memory);
            self.process_frame(now, i, &rx[start + 4..start + end]);
            self.rx_memory = rx;
            if self.conns[i].generation != generation {
                return false;
            }
            self.rx_memory.copy_within(start + end..start + rx_len, start);
            self.conns[i].rx_len = rx_len - end;
        }
    }

    /// One response frame (without its size prefix).
    fn process_frame(&mut self, now: Instant, i: usize, frame: &[u8]) {
        let Ok(correlation_id) = Reader::new(frame).get_i32() else {
            return self.close_conn(now, i, ConnError::Malformed(crate::protocol::DecodeError::Truncated));
        };
        // Answers come in request order. An acks=0 request at the front was answered by a real
        // Kafka broker with silence, by Tansu or the mock with a response: drop it either way.
        let request = loop {
            match self.conns[i].in_flight.front().copied() {
                Some(f) if f.correlation_id == correlation_id => {
                    self.conns[i].in_flight.pop_front();
                    break f;
                }
                Some(f) if f.optional => {
                    self.conns[i].in_flight.pop_front();
                }
                _ => return self.close_conn(now, i, ConnError::UnexpectedCorrelationId(correlation_id)),
            }
        };
        let latency = now.saturating_since(request.sent_at).as_millis();
        self.metrics.responses += 1;
        self.metrics.request_latency_sum_ms += latency;
        self.metrics.request_latency_max_ms = self.metrics.request_latency_max_ms.max(latency);
        let api_key = request_api_key(request.kind);
        let mut r = Reader::new(frame);
        let result = ResponseHeader::decode(&mut r, api_key, request.version).and_then(|_| {
            let body = r.rest();
            match request.kind {
                RequestKind::ApiVersions => self.on_api_versions(now, i, body, request.version),
                RequestKind::Metadata { topics } => self.on_metadata(now, i, body, request.version, topics),
                RequestKind::InitProducerId { .. } => self.on_init_producer_id(now, body, request.version),
                RequestKind::Produce { acks0: true, .. } => Ok(()),
                RequestKind::Produce { head, acks0: false } => {
                    self.on_produce_response(now, i, body, request.version, head, correlation_id)
                }
            }
        });
        if let Err(e) = result {
            warn!("malformed response from {}:{}: {}", self.conns[i].host.as_str(), self.conns[i].port, e);
            self.fail_request(now, i, request);
            self.close_conn(now, i, ConnError::Malformed(e));
        }
    }

    fn on_api_versions(
        &mut self,
        now: Instant,
        i: usize,
        body: &[u8],
        version: i16,
    ) -> Result<(), crate::protocol::DecodeError> {
        let resp = ApiVersionsResponse::decode(body, version)?;
        let c = &mut self.conns[i];
        if resp.error_code == ErrorCode::UnsupportedVersion {
            // Ask again at the highest version the broker lists (KIP-511), as the Java client does.
            let theirs = resp.range(ApiKey::ApiVersions).map_or(0, |r| r.max_version);
            if theirs < version {
                c.api_versions_version = theirs.max(0);
                return Ok(());
            }
        }
        let produce = resp.negotiate(ApiKey::Produce, 3, 11);
        let metadata = resp.negotiate(ApiKey::Metadata, 1, 12);
        let init = resp.negotiate(ApiKey::InitProducerId, 0, 5);
        let idempotent = self.idempotence.is_on();
        match (resp.error_code, produce, metadata, init) {
            (ErrorCode::NoError, Some(produce), Some(metadata), init) if init.is_some() || !idempotent => {
                c.versions = Versions { produce, metadata, init_producer_id: init.unwrap_or(0) };
                c.state = ConnState::Ready;
                c.failures = 0;
                debug!("{}:{} ready: Produce v{}, Metadata v{}", c.host.as_str(), c.port, produce, metadata);
            }
            _ => {
                warn!("{}:{} lacks the API versions a producer needs", c.host.as_str(), c.port);
                self.close_conn(now, i, ConnError::UnsupportedBroker);
            }
        }
        Ok(())
    }

    fn on_init_producer_id(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
    ) -> Result<(), crate::protocol::DecodeError> {
        let resp = InitProducerIdResponse::decode(body, version)?;
        match self.idempotence.on_answer(resp.error_code, resp.producer_id, resp.producer_epoch) {
            InitAnswer::Ignored => {}
            InitAnswer::Ready => self.reset_sequences(),
            InitAnswer::Retry { failures } => {
                let at = now + self.retry_backoff(failures);
                self.idempotence.retry_at(at);
                self.metrics.last_broker_error = Some(resp.error_code);
            }
            InitAnswer::Fatal(code) => {
                self.metrics.last_broker_error = Some(code);
                self.set_fatal(code);
            }
        }
        Ok(())
    }

    /// Gives up on everything: the producer can no longer deliver (fenced, unauthorized, ...).
    pub(crate) fn set_fatal(&mut self, code: ErrorCode) {
        error!("fatal producer error: {}", code);
        self.fatal = Some(code);
        self.abandon_all(crate::error::DeliveryError::Fatal(code));
    }

    /// Closes connection `i`: its requests are failed (batches go back to be retried) and it
    /// may reconnect after a backoff.
    pub(crate) fn close_conn(&mut self, now: Instant, i: usize, why: ConnError) {
        let c = &mut self.conns[i];
        debug!("closing {}:{}: {}", c.host.as_str(), c.port, why);
        self.metrics.disconnects += 1;
        self.metrics.last_connection_error = Some(why);
        if matches!(c.state, ConnState::Connecting { .. } | ConnState::Handshake | ConnState::Ready) {
            c.close_pending = Some(ConnId::new(i, c.generation));
        }
        c.generation = c.generation.wrapping_add(1);
        c.tx = None;
        c.rx_len = 0;
        c.connect_pending = false;
        c.failures += 1;
        let failures = c.failures;
        while let Some(request) = self.conns[i].in_flight.pop_front() {
            self.fail_request(now, i, request);
        }
        let wait = super::backoff(
            &mut self.rng,
            self.config.reconnect_backoff_ms,
            self.config.reconnect_backoff_max_ms,
            failures,
        );
        self.conns[i].state = ConnState::Backoff { until: now + wait };
        // Leadership may have moved with the broker.
        self.want_metadata();
    }

    /// A request that will get no answer: undo what it was waiting for.
    fn fail_request(&mut self, now: Instant, i: usize, request: InFlight) {
        match request.kind {
            RequestKind::ApiVersions => {}
            RequestKind::Metadata { .. } => {
                self.metadata.in_flight = false;
                self.metadata.wanted = true;
            }
            RequestKind::InitProducerId { .. } => {
                if let Some(failures) = self.idempotence.on_request_lost() {
                    let at = now + self.retry_backoff(failures);
                    self.idempotence.retry_at(at);
                }
            }
            RequestKind::Produce { head, .. } => {
                let tag = RequestTag { conn: i as u8, correlation_id: request.correlation_id };
                let mut next = Some(head);
                while let Some(b) = next {
                    next = self.batches[b].next_in_request;
                    if self.batches[b].request == Some(tag) {
                        self.retry_batch(now, b, ErrorCode::NetworkException);
                    }
                }
            }
        }
    }

    /// Asks for connections that have work and hands out `Close` for idle ones after `close`.
    pub(crate) fn schedule(&mut self, now: Instant) {
        let anyone_up = self.conns.iter().any(|c| {
            matches!(c.state, ConnState::Connecting { .. } | ConnState::Handshake | ConnState::Ready)
        });
        let control_wanted = self.metadata.wanted || self.idempotence.is_wanted();
        let mut need_control = control_wanted && !anyone_up && self.closing.is_none();
        // Prefer brokers we know over bootstrap addresses.
        for pass in 0..2 {
            for i in 0..self.conns.len() {
                let c = &self.conns[i];
                if c.state != ConnState::Idle {
                    continue;
                }
                let leads = c.node_id >= 0 && self.leads_work(c.node_id);
                let control = need_control && (pass == 1 || c.node_id >= 0);
                if leads || control {
                    if control {
                        need_control = false;
                    }
                    let c = &mut self.conns[i];
                    c.state = ConnState::Connecting { since: now };
                    c.connect_pending = true;
                }
            }
        }
        self.close_when_done();
    }

    /// After `close`, once every record is reported, hands out `Close` for every connection.
    pub(crate) fn close_when_done(&mut self) {
        if self.closing.is_none() || !self.batches.all_free() {
            return;
        }
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if matches!(c.state, ConnState::Connecting { .. } | ConnState::Handshake | ConnState::Ready) {
                c.close_pending = Some(ConnId::new(i, c.generation));
                c.generation = c.generation.wrapping_add(1);
                c.state = ConnState::Idle;
                c.in_flight.clear();
                c.tx = None;
                c.rx_len = 0;
                c.connect_pending = false;
            }
        }
        self.metadata.in_flight = false;
    }

    /// Whether broker `node` leads a partition with batches waiting.
    fn leads_work(&self, node: i32) -> bool {
        self.partitions.iter().any(|p| p.leader == node && p.head.is_some())
    }

    /// Connection events: `Close` first, then `Connect`.
    pub(crate) fn poll_conn_event(&mut self) -> Option<Event<'_>> {
        if let Some(c) = self.conns.iter_mut().find(|c| c.close_pending.is_some()) {
            return c.close_pending.take().map(|conn| Event::Close { conn });
        }
        let i = self.conns.iter().position(|c| c.connect_pending)?;
        let c = &mut self.conns[i];
        c.connect_pending = false;
        Some(Event::Connect { conn: ConnId::new(i, c.generation), host: &c.host, port: c.port })
    }

    /// The next bytes to send: part or all of a request on one connection.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if buf.is_empty() {
            return None;
        }
        self.schedule(now);
        let control = self.control_conn();
        for i in 0..self.conns.len() {
            if self.conns[i].tx.is_none() {
                self.start_request(now, i, control == Some(i));
            }
            if self.conns[i].tx.is_some() {
                return Some(self.write(i, buf));
            }
        }
        None
    }

    /// Like [`Producer::poll_transmit`], for one connection only: for transports whose sockets
    /// each have their own send buffer (pass at most its free space as `buf`).
    pub fn poll_transmit_to(&mut self, now: Instant, conn: ConnId, buf: &mut [u8]) -> Option<usize> {
        let i = self.live(conn)?;
        if buf.is_empty() {
            return None;
        }
        self.schedule(now);
        if self.conns[i].tx.is_none() {
            let control = self.control_conn();
            self.start_request(now, i, control == Some(i));
        }
        self.conns[i].tx?;
        Some(self.write(i, buf).len)
    }

    /// The ready connection with the fewest requests in flight: where Metadata and
    /// InitProducerId go.
    pub(crate) fn control_conn(&self) -> Option<usize> {
        (0..self.conns.len())
            .filter(|&i| self.conns[i].state == ConnState::Ready && self.conns[i].tx.is_none())
            .min_by_key(|&i| self.conns[i].in_flight.iter().filter(|f| !f.optional).count())
    }

    /// Whether connection `i` may start another request (below `max.in.flight`).
    pub(crate) fn can_start(&self, i: usize) -> bool {
        let c = &self.conns[i];
        c.tx.is_none()
            && c.in_flight.iter().filter(|f| !f.optional).count()
                < usize::from(self.config.max_in_flight_requests_per_connection)
    }

    /// Starts the next request on connection `i`, if it has one to send.
    fn start_request(&mut self, now: Instant, i: usize, control: bool) {
        if !self.can_start(i) {
            return;
        }
        let c = &self.conns[i];
        let (kind, version) = match c.state {
            ConnState::Handshake if c.in_flight.is_empty() => {
                (RequestKind::ApiVersions, c.api_versions_version)
            }
            ConnState::Ready => {
                let produce_in_flight = self.any_produce_in_flight();
                if control
                    && self.metadata.wanted
                    && !self.metadata.in_flight
                    && now >= self.metadata.not_before
                {
                    let topics = self.metadata_topics(now);
                    self.metadata.in_flight = true;
                    self.metadata.wanted = false;
                    self.metadata.asked = topics;
                    self.metrics.metadata_requests += 1;
                    (RequestKind::Metadata { topics }, c.versions.metadata)
                } else if control
                    && self.idempotence.is_wanted()
                    && now >= self.idempotence.next_attempt()
                    && !produce_in_flight
                    && self.closing.is_none_or(|_| !self.batches.all_free())
                {
                    // An epoch bump waits for every Produce in flight to come back.
                    let transactional = self.config.transactional_id.is_some();
                    let bump_current = transactional && c.versions.init_producer_id >= 3;
                    let (producer_id, epoch) = self.idempotence.start_request(bump_current);
                    (RequestKind::InitProducerId { producer_id, epoch }, c.versions.init_producer_id)
                } else if let Some(kind) = self.build_produce(now, i) {
                    self.metrics.produce_requests += 1;
                    (kind, self.conns[i].versions.produce)
                } else {
                    return;
                }
            }
            _ => return,
        };
        let c = &mut self.conns[i];
        c.correlation_id = c.correlation_id.wrapping_add(1) & i32::MAX;
        let optional = matches!(kind, RequestKind::Produce { acks0: true, .. });
        let request = InFlight { correlation_id: c.correlation_id, kind, version, sent_at: now, optional };
        if c.in_flight.len() == CONN_QUEUE {
            // Only optional entries can be in the way (busy < max in flight <= 5 < CONN_QUEUE).
            c.in_flight.pop_front();
        }
        // Room was made just above.
        let _ = c.in_flight.push_back(request);
        let mut counter = Writer::counting();
        self.encode(&mut counter, &request);
        self.conns[i].tx = Some(Outgoing { request, written: 0, total: counter.position() });
    }

    pub(crate) fn any_produce_in_flight(&self) -> bool {
        self.conns
            .iter()
            .any(|c| c.in_flight.iter().any(|f| matches!(f.kind, RequestKind::Produce { acks0: false, .. })))
    }

    /// Topics to ask about: every topic in use, as a bit per topic slot.
    fn metadata_topics(&self, now: Instant) -> u64 {
        let idle = Duration::from_millis(u64::from(self.config.metadata_max_idle_ms));
        let mut mask = 0u64;
        for (t, slot) in self.topics.iter().enumerate() {
            let in_use = now.saturating_since(slot.last_used) < idle || self.topic_has_batches(t);
            if slot.state != crate::storage::TopicState::Free && in_use {
                mask |= 1 << t;
            }
        }
        mask
    }

    /// Writes the next part of connection `i`'s current request into `buf`.
    fn write(&mut self, i: usize, buf: &mut [u8]) -> Transmit {
        // `poll_transmit` only calls this with a request under way.
        let Some(out) = self.conns[i].tx else { return Transmit { conn: ConnId::new(i, 0), len: 0 } };
        let mut w = Writer::window(buf, out.written);
        self.encode(&mut w, &out.request);
        let len = w.filled();
        self.metrics.bytes_written += len as u64;
        let written = out.written + len;
        let c = &mut self.conns[i];
        let conn = ConnId::new(i, c.generation);
        if written >= out.total {
            c.tx = None;
            if let RequestKind::Produce { head, acks0: true } = out.request.kind {
                self.complete_unacknowledged(head, out.request.correlation_id, i);
            }
        } else {
            c.tx = Some(Outgoing { written, ..out });
        }
        Transmit { conn, len }
    }

    /// Encodes a whole request frame (all of it or, with a window writer, a part).
    fn encode(&self, w: &mut Writer<'_>, request: &InFlight) {
        let client_id = Some(self.config.client_id.as_str());
        let id = request.correlation_id;
        let v = request.version;
        match request.kind {
            RequestKind::ApiVersions => {
                let body = ApiVersionsRequest {
                    client_software_name: "picokafka",
                    client_software_version: env!("CARGO_PKG_VERSION"),
                };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::Metadata { topics } => {
                let names = self
                    .topics
                    .iter()
                    .enumerate()
                    .filter(move |(t, _)| topics & (1 << t) != 0)
                    .map(|(_, slot)| slot.name.as_str());
                let body = MetadataRequest {
                    topics: Some(names),
                    allow_auto_topic_creation: self.config.allow_auto_create_topics,
                };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::InitProducerId { producer_id, epoch } => {
                let body = InitProducerIdRequest {
                    transactional_id: self.config.transactional_id.as_deref(),
                    transaction_timeout_ms: self.config.transaction_timeout_ms as i32,
                    producer_id,
                    producer_epoch: epoch,
                };
                encode_request(w, v, id, client_id, &body);
            }
            RequestKind::Produce { head, .. } => {
                let body = self.produce_body(head);
                encode_request(w, v, id, client_id, &body);
            }
        }
    }
}

fn request_api_key(kind: RequestKind) -> ApiKey {
    match kind {
        RequestKind::ApiVersions => ApiKey::ApiVersions,
        RequestKind::Metadata { .. } => ApiKey::Metadata,
        RequestKind::InitProducerId { .. } => ApiKey::InitProducerId,
        RequestKind::Produce { .. } => ApiKey::Produce,
    }
}
