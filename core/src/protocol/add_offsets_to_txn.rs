//! AddOffsetsToTxn (key 25): tells the transaction coordinator that a transaction will commit a
//! consumer group's offsets (with TxnOffsetCommit, to the group's coordinator), so that they are
//! committed or aborted with it.
//!
//! Versions 0–3: v2 lets the broker answer PRODUCER_FENCED, v3 is the first flexible version.

use super::codec::{DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// Lowest AddOffsetsToTxn version spoken.
pub const MIN_VERSION: i16 = 0;
/// Highest AddOffsetsToTxn version spoken.
pub const MAX_VERSION: i16 = 3;

const fn flexible(version: i16) -> bool {
    version >= 3
}

/// AddOffsetsToTxn request, v0–v3 (the same fields at every version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOffsetsToTxnRequest<'a> {
    /// `TransactionalId`: the `transactional.id`.
    pub transactional_id: &'a str,
    /// `ProducerId`: the producer id InitProducerId gave.
    pub producer_id: i64,
    /// `ProducerEpoch`: the epoch that goes with it.
    pub producer_epoch: i16,
    /// `GroupId`: the consumer group whose offsets the transaction will commit.
    pub group_id: &'a str,
}

impl Request for AddOffsetsToTxnRequest<'_> {
    const API_KEY: ApiKey = ApiKey::AddOffsetsToTxn;
    const MIN_VERSION: i16 = MIN_VERSION;
    const MAX_VERSION: i16 = MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flex = flexible(version);
        w.put_string(self.transactional_id, flex);
        w.put_i64(self.producer_id);
        w.put_i16(self.producer_epoch);
        w.put_string(self.group_id, flex);
        if flex {
            w.put_empty_tags();
        }
    }
}

/// AddOffsetsToTxn response, v0–v3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOffsetsToTxnResponse<'a> {
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `ErrorCode`: NONE, or why the group was not added (CONCURRENT_TRANSACTIONS,
    /// GROUP_AUTHORIZATION_FAILED, PRODUCER_FENCED, ...).
    pub error_code: ErrorCode,
    /// Tagged fields (v3+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> AddOffsetsToTxnResponse<'a> {
    /// Decodes a response body at `version` (0–3).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 25, version });
        }
        let mut r = Reader::new(body);
        let throttle_time_ms = r.get_i32()?;
        let error_code = ErrorCode::from(r.get_i16()?);
        let tags = if flexible(version) { r.get_tags()? } else { TaggedFields::default() };
        Ok(Self { throttle_time_ms, error_code, tags, trailing_bytes: r.remaining() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let req = AddOffsetsToTxnRequest {
            transactional_id: "t",
            producer_id: -1,
            producer_epoch: 0,
            group_id: "gg",
        };
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        req.encode(&mut w, 2);
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], b"\x00\x01t\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x02gg");
        let mut w = Writer::new(&mut buf);
        req.encode(&mut w, 3);
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], b"\x02t\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x03gg\x00");
    }

    #[test]
    fn response_v0_and_v3() {
        let r = AddOffsetsToTxnResponse::decode(b"\x00\x00\x00\x02\x00\x1e", 0).unwrap();
        assert_eq!((r.throttle_time_ms, r.error_code), (2, ErrorCode::GroupAuthorizationFailed));
        let r = AddOffsetsToTxnResponse::decode(b"\x00\x00\x00\x00\x00\x00\x01\x07\x01\xaa", 3).unwrap();
        assert_eq!(r.tags.get(7), Some(&[0xaa][..]));
        assert!(AddOffsetsToTxnResponse::decode(b"\x00\x00\x00\x00\x00\x00", 3).is_err());
        for v in [-1, 4] {
            assert!(matches!(
                AddOffsetsToTxnResponse::decode(b"\x00\x00\x00\x00\x00\x00\x00", v),
                Err(DecodeError::UnsupportedVersion { api_key: 25, .. })
            ));
        }
    }
}
