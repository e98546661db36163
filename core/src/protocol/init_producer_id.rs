//! InitProducerId (key 22): a producer id and epoch for idempotent and transactional producers.

use super::codec::{DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// InitProducerId request, v0–v5 (flexible from v2; v3 adds the current id and epoch so that a
/// producer can bump its epoch instead of getting a new id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerIdRequest<'a> {
    /// `TransactionalId`: the `transactional.id`, or null for a producer that is only idempotent.
    pub transactional_id: Option<&'a str>,
    /// `TransactionTimeoutMs`: how long the coordinator waits before aborting an idle
    /// transaction; meaningful only with a transactional id.
    pub transaction_timeout_ms: i32,
    /// `-1` to get a new id; the current id to bump its epoch (v3+).
    pub producer_id: i64,
    /// `ProducerEpoch`: `-1` to get a new id; the current epoch to bump it (v3+).
    pub producer_epoch: i16,
}

impl Request for InitProducerIdRequest<'_> {
    const API_KEY: ApiKey = ApiKey::InitProducerId;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flexible = version >= 2;
        w.put_nullable_string(self.transactional_id, flexible);
        w.put_i32(self.transaction_timeout_ms);
        if version >= 3 {
            w.put_i64(self.producer_id);
            w.put_i16(self.producer_epoch);
        }
        if flexible {
            w.put_empty_tags();
        }
    }
}

/// InitProducerId response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerIdResponse<'a> {
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `ErrorCode`: NONE, or why no producer id was given.
    pub error_code: ErrorCode,
    /// `ProducerId`: the producer id to stamp batches with.
    pub producer_id: i64,
    /// `ProducerEpoch`: the epoch that goes with it.
    pub producer_epoch: i16,
    /// Tagged fields (v2+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> InitProducerIdResponse<'a> {
    /// Decodes a response body at `version` (0–5).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(0..=5).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 22, version });
        }
        let mut r = Reader::new(body);
        let throttle_time_ms = r.get_i32()?;
        let error_code = ErrorCode::from(r.get_i16()?);
        let producer_id = r.get_i64()?;
        let producer_epoch = r.get_i16()?;
        let tags = if version >= 2 { r.get_tags()? } else { TaggedFields::default() };
        Ok(Self {
            throttle_time_ms,
            error_code,
            producer_id,
            producer_epoch,
            tags,
            trailing_bytes: r.remaining(),
        })
    }
}
