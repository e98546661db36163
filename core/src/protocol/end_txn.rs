//! EndTxn (key 26): commits or aborts a transaction at its coordinator.
//!
//! Versions 0–5: v2 lets the broker answer PRODUCER_FENCED, v3 is the first flexible version,
//! v4 lets it answer TRANSACTION_ABORTABLE, and v5 (KIP-890 part 2: the epoch is bumped at the
//! end of every transaction) adds the producer id and the new epoch to the response.

use super::codec::{DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// Lowest EndTxn version spoken.
pub const MIN_VERSION: i16 = 0;
/// Highest EndTxn version spoken.
pub const MAX_VERSION: i16 = 5;

const fn flexible(version: i16) -> bool {
    version >= 3
}

/// EndTxn request, v0–v5 (the same fields at every version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnRequest<'a> {
    /// `TransactionalId`: the `transactional.id` whose transaction ends.
    pub transactional_id: &'a str,
    /// `ProducerId`: the producer id InitProducerId gave.
    pub producer_id: i64,
    /// `ProducerEpoch`: the producer's current epoch.
    pub producer_epoch: i16,
    /// `Committed`: true to commit the transaction, false to abort it.
    pub committed: bool,
}

impl Request for EndTxnRequest<'_> {
    const API_KEY: ApiKey = ApiKey::EndTxn;
    const MIN_VERSION: i16 = MIN_VERSION;
    const MAX_VERSION: i16 = MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flex = flexible(version);
        w.put_string(self.transactional_id, flex);
        w.put_i64(self.producer_id);
        w.put_i16(self.producer_epoch);
        w.put_bool(self.committed);
        if flex {
            w.put_empty_tags();
        }
    }
}

/// EndTxn response, v0–v5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnResponse<'a> {
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `ErrorCode`: NONE, or why the transaction did not end (CONCURRENT_TRANSACTIONS,
    /// INVALID_TXN_STATE, PRODUCER_FENCED, ...).
    pub error_code: ErrorCode,
    /// `ProducerId` (v5+): the producer id to use from now on; -1 before v5.
    pub producer_id: i64,
    /// `ProducerEpoch` (v5+): the epoch to use from now on (the coordinator bumps it at the end
    /// of each transaction); -1 before v5.
    pub producer_epoch: i16,
    /// Tagged fields (v3+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> EndTxnResponse<'a> {
    /// Decodes a response body at `version` (0–5).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 26, version });
        }
        let mut r = Reader::new(body);
        let throttle_time_ms = r.get_i32()?;
        let error_code = ErrorCode::from(r.get_i16()?);
        let (producer_id, producer_epoch) =
            if version >= 5 { (r.get_i64()?, r.get_i16()?) } else { (-1, -1) };
        let tags = if flexible(version) { r.get_tags()? } else { TaggedFields::default() };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let req = EndTxnRequest { transactional_id: "t", producer_id: 9, producer_epoch: 2, committed: true };
        let mut buf = [0u8; 32];
        for (v, want) in [
            (0, &b"\x00\x01t\x00\x00\x00\x00\x00\x00\x00\x09\x00\x02\x01"[..]),
            (2, b"\x00\x01t\x00\x00\x00\x00\x00\x00\x00\x09\x00\x02\x01"),
            (3, b"\x02t\x00\x00\x00\x00\x00\x00\x00\x09\x00\x02\x01\x00"),
            (5, b"\x02t\x00\x00\x00\x00\x00\x00\x00\x09\x00\x02\x01\x00"),
        ] {
            let mut w = Writer::new(&mut buf);
            req.encode(&mut w, v);
            let n = w.finish().unwrap();
            assert_eq!(&buf[..n], want, "v{v}");
        }
        let mut w = Writer::new(&mut buf);
        EndTxnRequest { committed: false, ..req }.encode(&mut w, 1);
        let n = w.finish().unwrap();
        assert_eq!(buf[n - 1], 0);
    }

    #[test]
    fn response_v0_v3_v5() {
        let r = EndTxnResponse::decode(b"\x00\x00\x00\x07\x00\x33", 0).unwrap();
        assert_eq!((r.throttle_time_ms, r.error_code), (7, ErrorCode::ConcurrentTransactions));
        assert_eq!((r.producer_id, r.producer_epoch), (-1, -1));
        let r = EndTxnResponse::decode(b"\x00\x00\x00\x00\x00\x00\x00", 4).unwrap();
        assert_eq!((r.error_code, r.trailing_bytes), (ErrorCode::NoError, 0));
        let v5 = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09\x00\x03\x00";
        let r = EndTxnResponse::decode(v5, 5).unwrap();
        assert_eq!((r.producer_id, r.producer_epoch), (9, 3));
        for cut in 0..v5.len() {
            assert!(EndTxnResponse::decode(&v5[..cut], 5).is_err());
        }
        assert!(matches!(
            EndTxnResponse::decode(v5, 6),
            Err(DecodeError::UnsupportedVersion { api_key: 26, version: 6 })
        ));
    }
}
