//! FindCoordinator (key 10): which broker coordinates a consumer group or a transactional id.
//!
//! Versions 1–5: v1 adds the key type, v3 is the first flexible version, v4 asks about a list of
//! keys (`CoordinatorKeys`, KIP-699) and answers with a list of coordinators, v5 lets the broker
//! answer TRANSACTION_ABORTABLE (KIP-890). v0 (group coordinators only, deprecated) and v6 (share
//! groups, KIP-932) are not spoken.

use super::codec::{Array, DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// Lowest FindCoordinator version spoken: v1, the first with a key type.
pub const MIN_VERSION: i16 = 1;
/// Highest FindCoordinator version spoken.
pub const MAX_VERSION: i16 = 5;

const fn flexible(version: i16) -> bool {
    version >= 3
}

/// What a coordinator key names (`KeyType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CoordinatorType {
    /// 0: a consumer group id; its group coordinator takes TxnOffsetCommit.
    Group,
    /// 1: a transactional id; its transaction coordinator takes AddPartitionsToTxn,
    /// AddOffsetsToTxn and EndTxn.
    Transaction,
}

impl CoordinatorType {
    /// The `KeyType` byte on the wire.
    pub const fn code(self) -> i8 {
        match self {
            Self::Group => 0,
            Self::Transaction => 1,
        }
    }
}

/// FindCoordinator request, v1–v5: one key. (v4+ can batch several keys; a producer asks about
/// one at a time, as the Java producer does, and sends it as a one-element `CoordinatorKeys`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindCoordinatorRequest<'a> {
    /// `KeyType`: whether `key` is a group id or a transactional id.
    pub key_type: CoordinatorType,
    /// `Key` (v1–v3), or the one element of `CoordinatorKeys` (v4+): the group id or the
    /// transactional id.
    pub key: &'a str,
}

impl Request for FindCoordinatorRequest<'_> {
    const API_KEY: ApiKey = ApiKey::FindCoordinator;
    const MIN_VERSION: i16 = MIN_VERSION;
    const MAX_VERSION: i16 = MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flex = flexible(version);
        if version <= 3 {
            w.put_string(self.key, flex);
        }
        w.put_i8(self.key_type.code());
        if version >= 4 {
            w.put_array_len(Some(1), true);
            w.put_string(self.key, true);
        }
        if flex {
            w.put_empty_tags();
        }
    }
}

/// One coordinator in a FindCoordinator response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coordinator<'a> {
    /// `Key` (v4+): the key this answers; `None` before v4, where the response answers the
    /// request's only key and does not repeat it.
    pub key: Option<&'a str>,
    /// `NodeId`: the coordinator's broker id (-1 with an error).
    pub node_id: i32,
    /// `Host`: the coordinator's host name.
    pub host: &'a str,
    /// `Port`: the coordinator's port.
    pub port: i32,
    /// `ErrorCode`: NONE, or why there is no coordinator (COORDINATOR_NOT_AVAILABLE,
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, ...).
    pub error_code: ErrorCode,
    /// `ErrorMessage`: the broker's words on an error, if it gives any.
    pub error_message: Option<&'a str>,
}

/// v1–v3: the one result, at the top level of the response.
fn decode_top_level<'a>(r: &mut Reader<'a>, version: i16) -> Result<Coordinator<'a>, DecodeError> {
    let flex = flexible(version);
    let error_code = ErrorCode::from(r.get_i16()?);
    let error_message = r.get_nullable_string(flex)?;
    let node_id = r.get_i32()?;
    // `Host` is not nullable, yet librdkafka's mock cluster sends null with an error: read it
    // as "" then, or the error (COORDINATOR_NOT_AVAILABLE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    // ...) would be lost in a malformed-response disconnect.
    let host = match r.get_nullable_string(flex)? {
        Some(host) => host,
        None if error_code != ErrorCode::NoError => "",
        None => return Err(DecodeError::InvalidLength),
    };
    let port = r.get_i32()?;
    Ok(Coordinator { key: None, node_id, host, port, error_code, error_message })
}

/// v4+: an element of `Coordinators`.
fn decode_coordinator<'a>(r: &mut Reader<'a>, _version: i16) -> Result<Coordinator<'a>, DecodeError> {
    let key = r.get_string(true)?;
    let node_id = r.get_i32()?;
    let host = r.get_string(true)?;
    let port = r.get_i32()?;
    let error_code = ErrorCode::from(r.get_i16()?);
    let error_message = r.get_nullable_string(true)?;
    r.get_tags()?;
    Ok(Coordinator { key: Some(key), node_id, host, port, error_code, error_message })
}

/// FindCoordinator response, v1–v5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindCoordinatorResponse<'a> {
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `Coordinators` (v4+), or before v4 the one result the response holds at its top level
    /// (`ErrorCode`, `ErrorMessage`, `NodeId`, `Host`, `Port`) as a one-element array.
    pub coordinators: Array<'a, Coordinator<'a>>,
    /// Tagged fields (v3+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> FindCoordinatorResponse<'a> {
    /// Decodes a response body at `version` (1–5).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 10, version });
        }
        let flex = flexible(version);
        let mut r = Reader::new(body);
        let throttle_time_ms = r.get_i32()?;
        let coordinators = if version >= 4 {
            // Smallest coordinator: two empty strings, a null message, ids, error, no tags.
            Array::decode(&mut r, version, true, 14, decode_coordinator)?
        } else {
            Array::decode_elements(&mut r, 1, version, decode_top_level)?
        };
        let tags = if flex { r.get_tags()? } else { TaggedFields::default() };
        Ok(Self { throttle_time_ms, coordinators, tags, trailing_bytes: r.remaining() })
    }

    /// The coordinator for `key`: the entry that names it (v4+), or the one result (v1–v3).
    pub fn coordinator(&self, key: &str) -> Option<Coordinator<'a>> {
        self.coordinators.iter().find(|c| c.key.is_none_or(|k| k == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(req: &FindCoordinatorRequest<'_>, version: i16, buf: &mut [u8]) -> usize {
        let mut w = Writer::new(buf);
        req.encode(&mut w, version);
        let n = w.finish().unwrap();
        assert_eq!(req.encoded_len(version), n);
        n
    }

    #[test]
    fn request_bytes_at_each_shape() {
        let req = FindCoordinatorRequest { key_type: CoordinatorType::Transaction, key: "tx" };
        let mut buf = [0u8; 16];
        for v in 1..=2 {
            let n = encode(&req, v, &mut buf);
            assert_eq!(&buf[..n], b"\x00\x02tx\x01");
        }
        let n = encode(&req, 3, &mut buf);
        assert_eq!(&buf[..n], b"\x03tx\x01\x00");
        for v in 4..=5 {
            let n = encode(&req, v, &mut buf);
            assert_eq!(&buf[..n], b"\x01\x02\x03tx\x00");
        }
        let group = FindCoordinatorRequest { key_type: CoordinatorType::Group, key: "g" };
        let n = encode(&group, 1, &mut buf);
        assert_eq!(&buf[..n], b"\x00\x01g\x00");
    }

    #[test]
    fn response_v1_and_v3_hold_one_result() {
        // throttle 5, NONE, null message, node 2, "h", port 9092.
        let v1 = b"\x00\x00\x00\x05\x00\x00\xff\xff\x00\x00\x00\x02\x00\x01h\x00\x00\x23\x84";
        let r = FindCoordinatorResponse::decode(v1, 1).unwrap();
        assert_eq!(r.throttle_time_ms, 5);
        assert_eq!(r.coordinators.len(), 1);
        let c = r.coordinator("anything").unwrap();
        assert_eq!((c.key, c.node_id, c.host, c.port), (None, 2, "h", 9092));
        assert_eq!((c.error_code, c.error_message), (ErrorCode::NoError, None));
        assert_eq!(r.trailing_bytes, 0);

        // COORDINATOR_NOT_AVAILABLE with a message; compact strings and tags.
        let v3 = b"\x00\x00\x00\x00\x00\x0f\x03no\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00";
        let r = FindCoordinatorResponse::decode(v3, 3).unwrap();
        let c = r.coordinator("tx").unwrap();
        assert_eq!(c.error_code, ErrorCode::CoordinatorNotAvailable);
        assert_eq!((c.error_message, c.node_id, c.host, c.port), (Some("no"), -1, "", 0));
        assert!(FindCoordinatorResponse::decode(&v3[..v3.len() - 1], 3).is_err());
    }

    #[test]
    fn an_error_with_a_null_host_keeps_its_code() {
        // librdkafka's mock cluster: TRANSACTIONAL_ID_AUTHORIZATION_FAILED, message, node -1,
        // null host, port -1; v1 (int16 -1 length) and v3 (compact 0).
        let v1 = b"\x00\x00\x00\x00\x00\x35\x00\x01x\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
        let c = FindCoordinatorResponse::decode(v1, 1).unwrap().coordinator("tx").unwrap();
        assert_eq!((c.error_code, c.host, c.port), (ErrorCode::TransactionalIdAuthorizationFailed, "", -1));
        let v3 = b"\x00\x00\x00\x00\x00\x35\x02x\xff\xff\xff\xff\x00\xff\xff\xff\xff\x00";
        let c = FindCoordinatorResponse::decode(v3, 3).unwrap().coordinator("tx").unwrap();
        assert_eq!((c.error_code, c.host), (ErrorCode::TransactionalIdAuthorizationFailed, ""));
        // Without an error, a coordinator needs a host.
        let ok = b"\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\x00\xff\xff\xff\xff\x00";
        assert_eq!(FindCoordinatorResponse::decode(ok, 3), Err(DecodeError::InvalidLength));
    }

    #[test]
    fn response_v4_lists_coordinators_by_key() {
        let body = b"\x00\x00\x00\x00\x03\
            \x02a\x00\x00\x00\x01\x02h\x00\x00\x00\x09\x00\x00\x00\x00\
            \x03tx\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00\x0f\x03no\x00\
            \x00";
        let r = FindCoordinatorResponse::decode(body, 4).unwrap();
        assert_eq!(r.coordinators.len(), 2);
        let a = r.coordinator("a").unwrap();
        assert_eq!(
            (a.key, a.node_id, a.host, a.port, a.error_code),
            (Some("a"), 1, "h", 9, ErrorCode::NoError)
        );
        let tx = r.coordinator("tx").unwrap();
        assert_eq!((tx.error_code, tx.error_message), (ErrorCode::CoordinatorNotAvailable, Some("no")));
        assert_eq!(r.coordinator("b"), None);
        // A count the body cannot hold is refused before any element is read.
        let hostile = b"\x00\x00\x00\x00\xff\xff\xff\xff\x07\x00";
        assert_eq!(FindCoordinatorResponse::decode(hostile, 5), Err(DecodeError::InvalidLength));
    }

    #[test]
    fn unsupported_versions() {
        for v in [0, 6, -1] {
            assert!(matches!(
                FindCoordinatorResponse::decode(&[0; 32], v),
                Err(DecodeError::UnsupportedVersion { api_key: 10, .. })
            ));
        }
    }
}
