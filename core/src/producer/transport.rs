//! The transport's side of the producer: sockets opened and lost, bytes in (framed, matched to
//! their requests, dispatched to the owner that waits for them) and bytes out (the next request
//! on each connection, started and written piece by piece).

use super::batches::RequestTag;
use super::connections::{ConnState, Frame, InFlight, Outgoing, RequestKind};
use super::idempotence::InitAnswer;
use super::{ConnId, Event, Producer, Transmit};
use crate::error::ConnError;
use crate::protocol::api_versions::ApiVersionsRequest;
use crate::protocol::header::{encode_request, ApiKey, ResponseHeader};
use crate::protocol::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use crate::protocol::metadata::MetadataRequest;
#[cfg(feature = "sasl")]
use crate::protocol::sasl::{SaslAuthenticateRequest, SaslHandshakeRequest};
use crate::protocol::{ErrorCode, Reader, Writer};
use crate::time::{Duration, Instant};

/// ApiVersions version we ask with first.
const API_VERSIONS_MAX: i16 = 4;

impl<'a> Producer<'a> {
    /// The transport established the connection the producer asked for.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let Some(i) = self.conns.live(conn) else { return };
        if !self.conns.connected(i, API_VERSIONS_MAX) {
            return;
        }
        debug!("connected to {}:{}", self.conns[i].host.as_str(), self.conns[i].port);
        self.metrics.connects += 1;
        self.schedule(now);
    }

    /// The connection failed or was closed by the peer.
    pub fn handle_disconnected(&mut self, now: Instant, conn: ConnId) {
        let Some(i) = self.conns.live(conn) else { return };
        if self.conns[i].state.is_open() {
            self.close_conn(now, i, ConnError::Disconnected);
            // The transport knows already; no `Close` is owed.
            self.conns[i].close_pending = None;
        }
        self.schedule(now);
    }

    /// Bytes received on `conn`. Returns how many were consumed: all of them, unless the
    /// connection's receive buffer is full, in which case the transport offers the rest again.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> usize {
        let Some(i) = self.conns.live(conn) else { return data.len() };
        if !matches!(self.conns[i].state, ConnState::Handshake | ConnState::Authenticating | ConnState::Ready)
        {
            return data.len();
        }
        self.metrics.bytes_read += data.len() as u64;
        let generation = self.conns[i].generation;
        let mut consumed = 0;
        loop {
            let take = self.conns.receive(i, &data[consumed..]);
            consumed += take;
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
            let end = match self.conns.next_frame(i) {
                Frame::Incomplete => return true,
                Frame::TooLarge { size, max } => {
                    self.close_conn(now, i, ConnError::FrameTooLarge { size: i64::from(size), max });
                    return false;
                }
                Frame::Complete { end } => end,
            };
            // Lend the receive memory out so the frame can be read while `self` changes.
            let rx = self.conns.lend_rx();
            let frame = self.conns.frame_in(rx, i, end);
            self.process_frame(now, i, frame);
            self.conns.return_rx(rx);
            if self.conns[i].generation != generation {
                return false;
            }
            self.conns.consume(i, end);
        }
    }

    /// One response frame (without its size prefix).
    fn process_frame(&mut self, now: Instant, i: usize, frame: &[u8]) {
        let Ok(correlation_id) = Reader::new(frame).get_i32() else {
            return self.close_conn(now, i, ConnError::Malformed(crate::protocol::DecodeError::Truncated));
        };
        let Some(request) = self.conns.take_answered(i, correlation_id, now) else {
            return self.close_conn(now, i, ConnError::UnexpectedCorrelationId(correlation_id));
        };
        let latency = now.saturating_since(request.sent_at).as_millis();
        self.metrics.responses += 1;
        self.metrics.request_latency_sum_ms += latency;
        self.metrics.request_latency_max_ms = self.metrics.request_latency_max_ms.max(latency);
        if let Some(b) = super::metrics::latency_bucket(latency) {
            self.metrics.request_latency_buckets[b] += 1;
        }
        let api_key = request_api_key(request.kind);
        self.answering = Some(self.conns[i].node_id).filter(|&n| n >= 0);
        let mut r = Reader::new(frame);
        let result = ResponseHeader::decode(&mut r, api_key, request.version).and_then(|_| {
            let body = r.rest();
            match request.kind {
                RequestKind::ApiVersions => self.on_api_versions(now, i, body, request.version),
                RequestKind::Metadata { topics } => self.on_metadata(now, i, body, request.version, topics),
                RequestKind::InitProducerId { .. } => self.on_init_producer_id(now, body, request.version),
                #[cfg(feature = "transactions")]
                RequestKind::FindCoordinator { group } => {
                    self.on_find_coordinator(now, body, request.version, group)
                }
                #[cfg(feature = "transactions")]
                RequestKind::AddPartitionsToTxn => self.on_add_partitions(now, body, request.version),
                #[cfg(feature = "transactions")]
                RequestKind::AddOffsetsToTxn => self.on_add_offsets(now, body, request.version),
                #[cfg(feature = "transactions")]
                RequestKind::TxnOffsetCommit => self.on_txn_offset_commit(now, body, request.version),
                #[cfg(feature = "transactions")]
                RequestKind::EndTxn { commit } => self.on_end_txn(now, body, request.version, commit),
                // Never sent without feature `transactions`.
                #[cfg(not(feature = "transactions"))]
                RequestKind::FindCoordinator { .. }
                | RequestKind::AddPartitionsToTxn
                | RequestKind::AddOffsetsToTxn
                | RequestKind::TxnOffsetCommit
                | RequestKind::EndTxn { .. } => Ok(()),
                #[cfg(feature = "sasl")]
                RequestKind::SaslHandshake => self.on_sasl_handshake(now, i, body, request.version),
                #[cfg(feature = "sasl")]
                RequestKind::SaslAuthenticate => self.on_sasl_authenticate(now, i, body, request.version),
                // Never sent without feature `sasl`.
                #[cfg(not(feature = "sasl"))]
                RequestKind::SaslHandshake | RequestKind::SaslAuthenticate => Ok(()),
                RequestKind::Produce { acks0: true, .. } => Ok(()),
                RequestKind::Produce { head, acks0: false } => {
                    self.on_produce_response(now, i, body, request.version, head, correlation_id)
                }
            }
        });
        self.answering = None;
        if let Err(e) = result {
            warn!("malformed response from {}:{}: {}", self.conns[i].host.as_str(), self.conns[i].port, e);
            self.fail_request(now, i, request);
            self.close_conn(now, i, ConnError::Malformed(e));
        }
    }

    fn on_init_producer_id(
        &mut self,
        now: Instant,
        body: &[u8],
        version: i16,
    ) -> Result<(), crate::protocol::DecodeError> {
        let resp = InitProducerIdResponse::decode(body, version)?;
        let answer = self.idempotence.on_answer(resp.error_code, resp.producer_id, resp.producer_epoch);
        if self.txn.is_on() && answer != InitAnswer::Ignored {
            // The coordinator's answer: CONCURRENT_TRANSACTIONS while it completes the previous
            // producer's transaction, NOT_COORDINATOR when it moved, PRODUCER_FENCED, ...
            let ready = answer == InitAnswer::Ready;
            if ready {
                self.reset_sequences();
            }
            self.on_txn_init(now, resp.error_code, ready);
            return Ok(());
        }
        match answer {
            InitAnswer::Ignored => {}
            InitAnswer::Ready => self.reset_sequences(),
            InitAnswer::Retry { failures } => {
                let at = now + self.retry_backoff(failures);
                self.idempotence.retry_at(at);
                self.note_broker_error(resp.error_code);
            }
            InitAnswer::Fatal(code) => {
                self.note_broker_error(code);
                self.set_fatal(code);
            }
        }
        Ok(())
    }

    /// Gives up on everything: the producer can no longer deliver (fenced, unauthorized, ...).
    pub(crate) fn set_fatal(&mut self, code: ErrorCode) {
        error!("fatal producer error: {}", code);
        self.fatal = Some(code);
        self.txn.fatal(code);
        self.abandon_all(crate::error::DeliveryError::Fatal(code));
    }

    /// Closes connection `i`: its requests are failed (batches go back to be retried) and it
    /// may reconnect after a backoff.
    pub(crate) fn close_conn(&mut self, now: Instant, i: usize, why: ConnError) {
        debug!("closing {}:{}: {}", self.conns[i].host.as_str(), self.conns[i].port, why);
        self.metrics.disconnects += 1;
        self.metrics.last_connection_error = Some(why);
        let failures = self.conns.lose(i);
        self.auth.release(i);
        while let Some(request) = self.conns.pop_request(i) {
            self.fail_request(now, i, request);
        }
        self.txn_conn_lost(now, i);
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
            RequestKind::SaslHandshake | RequestKind::SaslAuthenticate => self.auth.release(i),
            RequestKind::Metadata { .. } => {
                self.metadata.lost();
            }
            RequestKind::InitProducerId { .. } => {
                if let Some(failures) = self.idempotence.on_request_lost() {
                    let at = now + self.retry_backoff(failures);
                    self.idempotence.retry_at(at);
                    if self.txn.is_on() {
                        self.txn_request_lost(now, request.kind);
                    }
                }
            }
            RequestKind::FindCoordinator { .. }
            | RequestKind::AddPartitionsToTxn
            | RequestKind::AddOffsetsToTxn
            | RequestKind::TxnOffsetCommit
            | RequestKind::EndTxn { .. } => self.txn_request_lost(now, request.kind),
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
        self.txn_step();
        let anyone_up = self.conns.any_open();
        let control_wanted = self.metadata.is_wanted()
            || (self.idempotence.is_wanted() && !self.txn.is_on())
            || self.txn_needs_control(now);
        let mut need_control = control_wanted && !anyone_up && self.closing.is_none();
        if self.fatal.is_some() {
            // A fatal producer sends nothing more: no connection is worth opening.
            return self.close_when_done();
        }
        // Prefer brokers we know over bootstrap addresses.
        for pass in 0..2 {
            for i in 0..self.conns.len() {
                let c = &self.conns[i];
                if c.state != ConnState::Idle {
                    continue;
                }
                let leads = c.node_id >= 0 && (self.leads_work(c.node_id) || self.txn_needs_node(c.node_id));
                let control = need_control && (pass == 1 || c.node_id >= 0);
                if leads || control {
                    if control {
                        need_control = false;
                    }
                    let setup = self.setup_timeout(self.conns[i].failures);
                    self.conns.connect(i, now, setup);
                }
            }
        }
        self.close_when_done();
    }

    /// After `close`, once every record is reported, hands out `Close` for every connection.
    pub(crate) fn close_when_done(&mut self) {
        if self.closing.is_none() || !self.batches.all_free() || self.txn.is_ending() {
            return;
        }
        self.conns.close_all();
        self.metadata.abandon();
    }

    /// Whether broker `node` leads a partition with batches waiting.
    fn leads_work(&self, node: i32) -> bool {
        self.partitions.leads_work(node)
    }

    /// Connection events: `Close` first, then `Connect`.
    pub(crate) fn poll_conn_event(&mut self) -> Option<Event<'_>> {
        Some(match self.conns.poll_event()? {
            (conn, None) => Event::Close { conn },
            (conn, Some((host, port, timeout))) => Event::Connect { conn, host, port, timeout },
        })
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
        let i = self.conns.live(conn)?;
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
        self.conns.control()
    }

    /// Whether connection `i` may start another request (below `max.in.flight`).
    pub(crate) fn can_start(&self, i: usize) -> bool {
        self.conns.can_start(i, self.config.max_in_flight_requests_per_connection)
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
            #[cfg(feature = "sasl")]
            ConnState::Authenticating => match self.next_auth_request(now, i) {
                Some(request) => request,
                None => return,
            },
            #[cfg(feature = "sasl")]
            ConnState::Ready if c.reauth_at.is_some_and(|at| now >= at) => {
                match self.next_auth_request(now, i) {
                    Some(request) => request,
                    None => return,
                }
            }
            ConnState::Ready => {
                let produce_in_flight = self.any_produce_in_flight();
                let versions = c.versions;
                if control && self.metadata.due(now) {
                    let topics = self.metadata_topics(now);
                    self.metadata.start(topics);
                    self.metrics.metadata_requests += 1;
                    (RequestKind::Metadata { topics }, versions.metadata)
                } else if let Some(request) = self.next_txn_request(now, i) {
                    request
                } else if control
                    && !self.txn.is_on()
                    && self.idempotence.is_wanted()
                    && now >= self.idempotence.next_attempt()
                    && !produce_in_flight
                    && self.closing.is_none_or(|_| !self.batches.all_free())
                {
                    // An epoch bump waits for every Produce in flight to come back. Without a
                    // transactional id, a fresh id (see `Idempotence::start_request`).
                    let (producer_id, epoch) = self.idempotence.start_request(false);
                    (RequestKind::InitProducerId { producer_id, epoch }, versions.init_producer_id)
                } else if let Some(kind) = self.build_produce(now, i) {
                    self.metrics.produce_requests += 1;
                    // Produce v12 adds the partition to a transaction by itself (KIP-890).
                    (kind, self.txn_version(self.conns[i].versions.produce, 11))
                } else {
                    return;
                }
            }
            _ => return,
        };
        let request = self.conns.start(i, kind, version, now);
        let mut counter = Writer::counting();
        self.encode(&mut counter, &request);
        self.conns[i].tx = Some(Outgoing { request, written: 0, total: counter.position() });
    }

    pub(crate) fn any_produce_in_flight(&self) -> bool {
        self.conns.any_produce_in_flight()
    }

    /// Topics to ask about: every topic in use, as a bit per topic slot.
    fn metadata_topics(&self, now: Instant) -> u64 {
        let idle = Duration::from_millis(u64::from(self.config.metadata_max_idle_ms));
        self.topics.in_use(now, idle, &self.partitions)
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
        let conn = self.conns.id(i);
        let c = &mut self.conns[i];
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
            #[cfg(feature = "sasl")]
            RequestKind::SaslHandshake => {
                let body = SaslHandshakeRequest { mechanism: self.auth.mechanism_name() };
                encode_request(w, v, id, client_id, &body);
            }
            #[cfg(feature = "sasl")]
            RequestKind::SaslAuthenticate => {
                let parts = self.auth.message(&self.config.sasl);
                let body = SaslAuthenticateRequest { auth_bytes: &parts };
                encode_request(w, v, id, client_id, &body);
            }
            #[cfg(not(feature = "sasl"))]
            RequestKind::SaslHandshake | RequestKind::SaslAuthenticate => {}
            RequestKind::FindCoordinator { .. }
            | RequestKind::AddPartitionsToTxn
            | RequestKind::AddOffsetsToTxn
            | RequestKind::TxnOffsetCommit
            | RequestKind::EndTxn { .. } => {
                #[cfg(feature = "transactions")]
                self.encode_txn(w, request, client_id);
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
        RequestKind::SaslHandshake => ApiKey::SaslHandshake,
        RequestKind::SaslAuthenticate => ApiKey::SaslAuthenticate,
        RequestKind::FindCoordinator { .. } => ApiKey::FindCoordinator,
        RequestKind::AddPartitionsToTxn => ApiKey::AddPartitionsToTxn,
        RequestKind::AddOffsetsToTxn => ApiKey::AddOffsetsToTxn,
        RequestKind::TxnOffsetCommit => ApiKey::TxnOffsetCommit,
        RequestKind::EndTxn { .. } => ApiKey::EndTxn,
    }
}
