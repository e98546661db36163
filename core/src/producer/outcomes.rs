//! What happened to each batch: Produce answers, retries, and the delivery reports handed out
//! record by record, in send order within each partition.

use super::batches::{BatchId, BatchStatus, Outcome, RequestTag};
use super::{Event, Producer, ReportCursor};
use crate::error::DeliveryError;
use crate::protocol::produce::ProduceResponse;
use crate::protocol::{DecodeError, ErrorCode};
use crate::record::RecordToken;
use crate::time::{Duration, Instant};

impl Producer<'_> {
    pub(crate) fn on_produce_response(
        &mut self,
        now: Instant,
        conn: usize,
        body: &[u8],
        version: i16,
        head: BatchId,
        correlation_id: i32,
    ) -> Result<(), DecodeError> {
        let resp = ProduceResponse::decode(body, version)?;
        let tag = RequestTag { conn: conn as u8, correlation_id };
        for t in resp.responses.iter() {
            for pr in t.partitions.iter() {
                let Some(b) = self.find_in_request(head, tag, t.name, pr.index) else { continue };
                self.on_partition_result(now, b, pr.error_code, pr.base_offset, pr.log_append_time_ms);
                if let Some(hint) = pr.current_leader.filter(|l| l.leader_id >= 0) {
                    // KIP-951: the broker names the new leader; follow it before Metadata does.
                    let slot = usize::from(self.batches[b].partition);
                    let p = &mut self.partitions[slot];
                    if hint.leader_epoch > p.leader_epoch
                        && self.conns.iter().any(|c| c.node_id == hint.leader_id)
                    {
                        p.leader = hint.leader_id;
                        p.leader_epoch = hint.leader_epoch;
                    }
                }
            }
        }
        // A batch the answer did not mention was not written: send it again.
        let mut next = Some(head);
        while let Some(b) = next {
            next = self.batches[b].next_in_request;
            if self.batches[b].request == Some(tag) {
                self.retry_batch(now, b, ErrorCode::UnknownServerError);
            }
        }
        self.schedule(now);
        Ok(())
    }

    fn find_in_request(
        &self,
        head: BatchId,
        tag: RequestTag,
        topic: &str,
        partition: i32,
    ) -> Option<BatchId> {
        self.batches.request_chain(Some(head)).map(|(b, _)| b).find(|&b| {
            let s = &self.batches[b];
            // The request's tag first: the batches of a request still in flight may have been
            // failed and released meanwhile (a transactional producer fenced by a coordinator
            // request), and a released slot names no partition (the simulation found the
            // index panic this avoided).
            if s.request != Some(tag) {
                return false;
            }
            let p = &self.partitions[usize::from(s.partition)];
            p.partition == partition && self.topics[usize::from(p.topic)].name.as_str() == topic
        })
    }

    /// One partition's answer, handled as the Java client does.
    fn on_partition_result(
        &mut self,
        now: Instant,
        b: BatchId,
        code: ErrorCode,
        base_offset: i64,
        log_append_time: i64,
    ) {
        let idempotent = self.idempotence.is_on();
        if !code.is_ok() {
            self.note_broker_error(code);
            if self.txn.is_on() && self.on_txn_produce_error(now, b, code) {
                return;
            }
        }
        match code {
            // A duplicate is a batch the log already has (Tansu says so; Kafka answers success).
            ErrorCode::NoError | ErrorCode::DuplicateSequenceNumber => {
                let slot = usize::from(self.batches[b].partition);
                self.partitions[slot].seq.confirmed = true;
                self.finish_batch(b, Outcome::Delivered { base_offset, log_append_time });
            }
            ErrorCode::OutOfOrderSequenceNumber if idempotent => {
                // If an earlier batch of the partition is unresolved, this one is merely early:
                // retry it after that one. If it is the first unresolved batch, the broker lost
                // sequence state: start a new epoch.
                if self.first_unresolved(b) {
                    self.request_epoch_bump(usize::from(self.batches[b].partition));
                }
                self.retry_batch(now, b, code);
            }
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerEpoch if idempotent => {
                self.request_epoch_bump(usize::from(self.batches[b].partition));
                self.retry_batch(now, b, code);
            }
            code if code.is_retriable() => {
                if code.invalidates_metadata() {
                    self.want_metadata();
                }
                self.retry_batch(now, b, code);
            }
            // Too large for the broker (`max.message.bytes`): as the Java client does, the batch
            // is split in two and the halves sent again; only a record too large on its own
            // fails. The broker wrote none of it, so the halves keep its sequence numbers.
            #[cfg(feature = "split-batches")]
            ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge
                if self.batches[b].builder.record_count > 1 =>
            {
                self.batches[b].last_error = Some(code);
                self.split_batch(now, b);
            }
            code => self.refuse_batch(b, code),
        }
    }

    /// The broker refused batch `b` with `code`, for good: its sequence numbers are not in the
    /// log, so the partition's later batches must be renumbered under a new producer id.
    fn refuse_batch(&mut self, b: BatchId, code: ErrorCode) {
        self.metrics.last_refused_by = self.answering;
        let slot = usize::from(self.batches[b].partition);
        let renumber = self.idempotence.is_on() && self.batches[b].base_sequence >= 0;
        // The batch fails first: in a transaction, the record's error is the one the commit
        // fails with (as in the Java client), not the epoch bump's OUT_OF_ORDER_SEQUENCE_NUMBER
        // that follows from it (the simulation found it).
        self.fail_batch(b, DeliveryError::Broker(code));
        if renumber {
            self.request_epoch_bump(slot);
        }
    }

    /// Splits batch `b`, which a broker found too large, in two, sealed anew and ready to
    /// send now: into a second slot if one is free (both can be in flight), else in place (the
    /// second half waits in `b`'s buffer until the first is reported). A batch already holding
    /// records splits in place, so that they stay behind it.
    #[cfg(feature = "split-batches")]
    pub(crate) fn split_batch(&mut self, now: Instant, b: BatchId) {
        let code = self.batches[b].last_error.unwrap_or(ErrorCode::MessageTooLarge);
        let compression = self.config.compression;
        let into_slot = if self.batches[b].held == 0 { self.batches.split(b, compression) } else { Ok(None) };
        let split = match into_slot {
            Ok(Some(second)) => {
                let slot = usize::from(self.batches[b].partition);
                if self.partitions[slot].tail == Some(b) {
                    self.partitions[slot].tail = Some(second);
                }
                self.batches[second].retry_at = now;
                self.metrics.batches_created += 1;
                Ok(())
            }
            Ok(None) => self.batches.hold_half(b, compression),
            Err(e) => Err(e),
        };
        match split {
            Ok(()) => {
                self.batches[b].retry_at = now;
                self.metrics.batches_split += 1;
            }
            Err(e) => {
                // Its own sealed bytes did not read back: a bug here.
                error!("cannot split batch: {}", e);
                self.refuse_batch(b, code);
            }
        }
    }

    /// Whether `b` is the first batch of its partition not yet acknowledged.
    pub(super) fn first_unresolved(&self, b: BatchId) -> bool {
        let head = self.partitions[usize::from(self.batches[b].partition)].head;
        let unresolved = |s: &super::batches::BatchSlot| s.status != BatchStatus::Done || s.held > 0;
        self.batches.partition_chain(head).find(|(_, s)| unresolved(s)).map(|(at, _)| at) == Some(b)
    }

    /// Puts a batch back to be sent again after a backoff, unless its retries or its delivery
    /// time are used up.
    pub(crate) fn retry_batch(&mut self, now: Instant, b: BatchId, code: ErrorCode) {
        let delivery = Duration::from_millis(u64::from(self.config.delivery_timeout_ms));
        let s = &mut self.batches[b];
        s.request = None;
        s.last_error = Some(code);
        let attempts = s.attempts;
        if attempts > self.config.retries {
            self.fail_batch(b, DeliveryError::Broker(code));
        } else if s.created + delivery <= now {
            self.fail_batch(b, DeliveryError::Timeout { last: Some(code) });
        } else {
            s.status = BatchStatus::Sealed;
            let wait = self.retry_backoff(attempts);
            self.batches[b].retry_at = now + wait;
        }
    }

    /// acks=0: a batch counts as delivered once its bytes are handed to the transport.
    pub(crate) fn complete_unacknowledged(&mut self, head: BatchId, correlation_id: i32, conn: usize) {
        let tag = RequestTag { conn: conn as u8, correlation_id };
        let mut next = Some(head);
        while let Some(b) = next {
            next = self.batches[b].next_in_request;
            if self.batches[b].request == Some(tag) {
                self.finish_batch(b, Outcome::Delivered { base_offset: -1, log_append_time: -1 });
            }
        }
    }

    /// The next event: connections first, then delivery reports.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if self.conns.has_event() {
            return self.poll_conn_event();
        }
        if let Some(report) = self.next_report() {
            return Some(report);
        }
        // A transaction's end after the reports of its records.
        if let Some(report) = self.poll_txn_event() {
            return Some(report);
        }
        // The last report of a closing producer lets its connections close.
        self.poll_conn_event()
    }

    /// Hands out the next record's report. Batches report in their partition's queue order, so
    /// reports within a partition come in send order.
    fn next_report(&mut self) -> Option<Event<'static>> {
        loop {
            let cursor = match self.report {
                Some(c) => c,
                None => {
                    if self.batches.done_count() == 0 {
                        return None;
                    }
                    let batch = self
                        .partitions
                        .iter()
                        .find_map(|p| p.head.filter(|&b| self.batches[b].status == BatchStatus::Done))?;
                    ReportCursor { batch, next: 0 }
                }
            };
            let b = cursor.batch;
            let s = &self.batches[b];
            if cursor.next < s.builder.record_count {
                let partition = self.partitions[usize::from(s.partition)].partition;
                let counter = (s.first_token as u32).wrapping_add(cursor.next as u32);
                let token = RecordToken((s.first_token & !0xffff_ffff) | u64::from(counter));
                let event = match s.outcome {
                    Outcome::Delivered { base_offset, log_append_time } => {
                        let offset = if base_offset >= 0 { base_offset + i64::from(cursor.next) } else { -1 };
                        let log_append_time = (log_append_time >= 0).then_some(log_append_time);
                        Event::Delivered { token, partition, offset, log_append_time }
                    }
                    Outcome::Failed(error) => Event::Failed { token, partition, error, attempts: s.attempts },
                };
                self.report = Some(ReportCursor { next: cursor.next + 1, ..cursor });
                return Some(event);
            }
            // Every record reported: the buffer is free again, or holds the next batch.
            self.report = None;
            let slot = usize::from(s.partition);
            let next = s.next_in_partition;
            match self.batches.unhold(b, self.config.compression) {
                Some(None) => continue,
                Some(Some(error)) => {
                    self.count_failed(u64::from(self.batches[b].builder.record_count as u32), error);
                    continue;
                }
                None => {}
            }
            let p = &mut self.partitions[slot];
            p.head = next;
            if p.tail == Some(b) {
                p.tail = None;
            }
            self.batches.release(b);
            if self.closing.is_some() && self.batches.done_count() == 0 {
                // The last report of a closing producer: its connections can go now.
                self.close_when_done();
            }
        }
    }
}

impl Producer<'_> {
    /// Fails every batch not yet done (close deadline, fatal error).
    pub(super) fn abandon_all(&mut self, error: DeliveryError) {
        for b in self.batches.ids() {
            let s = &mut self.batches[b];
            // Records held behind a batch fail with it, whatever it got.
            if s.held > 0 {
                s.held_error = Some(error);
            }
            if !matches!(s.status, BatchStatus::Free | BatchStatus::Done | BatchStatus::Part) {
                s.request = None;
                self.fail_batch(b, error);
            }
        }
    }

    /// Records the outcome of a batch; its reports are handed out in partition order.
    pub(super) fn finish_batch(&mut self, b: BatchId, outcome: Outcome) {
        if !self.batches.finish(b, outcome) {
            return;
        }
        let records = u64::from(self.batches[b].builder.record_count.max(0) as u32);
        match outcome {
            Outcome::Delivered { .. } => {
                self.metrics.batches_delivered += 1;
                self.metrics.records_delivered += records;
            }
            Outcome::Failed(e) => self.count_failed(records, e),
        }
    }

    fn count_failed(&mut self, records: u64, e: DeliveryError) {
        self.metrics.records_failed += records;
        self.metrics.last_delivery_error = Some(e);
        // A transaction with a failed record cannot commit.
        self.txn.record_failed(e);
    }

    /// Fails a batch. A failed batch that reached a broker may or may not be in the log (a
    /// timeout after a lost answer); if it is not, the broker answers the partition's next batch
    /// with OUT_OF_ORDER_SEQUENCE_NUMBER, and only then does the partition start over under a new
    /// producer id. Guessing earlier could write a batch twice.
    pub(super) fn fail_batch(&mut self, b: BatchId, error: DeliveryError) {
        self.finish_batch(b, Outcome::Failed(error));
    }

    /// Asks for a new producer id because partition `slot`'s sequence broke; its batches not yet
    /// acknowledged are renumbered under the new id. Other partitions move over lazily.
    pub(super) fn request_epoch_bump(&mut self, slot: usize) {
        self.partitions[slot].seq.rewrite = true;
        if self.txn.is_on() {
            // Not mid-transaction (an InitProducerId would abort it at the coordinator): the
            // transaction cannot commit, and the epoch is bumped once it is aborted.
            self.txn.abortable(super::TxnError::Abortable(ErrorCode::OutOfOrderSequenceNumber), true);
        } else {
            self.idempotence.request_new_id();
        }
    }
}
