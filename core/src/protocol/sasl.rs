//! SaslHandshake (key 17) and SaslAuthenticate (key 36): choosing a SASL mechanism, then
//! carrying its messages as opaque bytes inside Kafka frames (KIP-43, KIP-152).

use super::codec::{Array, DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// SaslHandshake request, v1: the mechanism the client wants. (v0 would switch the connection
/// to raw, unframed SASL tokens; this crate always frames them in SaslAuthenticate.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslHandshakeRequest<'a> {
    /// `Mechanism`: `PLAIN`, `SCRAM-SHA-256`, `OAUTHBEARER`, ...
    pub mechanism: &'a str,
}

impl Request for SaslHandshakeRequest<'_> {
    const API_KEY: ApiKey = ApiKey::SaslHandshake;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 1;

    fn encode(&self, w: &mut Writer<'_>, _version: i16) {
        w.put_string(self.mechanism, false);
    }
}

/// SaslHandshake response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslHandshakeResponse<'a> {
    /// `ErrorCode`: NONE, or UNSUPPORTED_SASL_MECHANISM.
    pub error_code: ErrorCode,
    /// `Mechanisms`: the mechanisms this listener enables.
    pub mechanisms: Array<'a, &'a str>,
}

impl<'a> SaslHandshakeResponse<'a> {
    /// Decodes a response body at `version` (0–1).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(0..=1).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 17, version });
        }
        let mut r = Reader::new(body);
        let error_code = ErrorCode::from(r.get_i16()?);
        let mechanisms = Array::decode(&mut r, version, false, 2, |r, _| r.get_string(false))?;
        Ok(Self { error_code, mechanisms })
    }
}

/// SaslAuthenticate request, v0–v2 (flexible from v2): one message of the mechanism's exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslAuthenticateRequest<'a> {
    /// `AuthBytes`: the message, in pieces the encoder writes one after the other (so that a
    /// message built from parts needs no buffer of its own).
    pub auth_bytes: &'a [&'a [u8]],
}

impl Request for SaslAuthenticateRequest<'_> {
    const API_KEY: ApiKey = ApiKey::SaslAuthenticate;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flexible = version >= 2;
        let len: usize = self.auth_bytes.iter().map(|p| p.len()).sum();
        if flexible {
            w.put_uvarint(len as u32 + 1);
        } else {
            w.put_i32(len as i32);
        }
        for part in self.auth_bytes {
            w.put_slice(part);
        }
        if flexible {
            w.put_empty_tags();
        }
    }
}

/// SaslAuthenticate response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslAuthenticateResponse<'a> {
    /// `ErrorCode`: NONE, or SASL_AUTHENTICATION_FAILED and the like.
    pub error_code: ErrorCode,
    /// `ErrorMessage`: the broker's words on a failure.
    pub error_message: Option<&'a str>,
    /// `AuthBytes`: the server's message.
    pub auth_bytes: &'a [u8],
    /// `SessionLifetimeMs` (v1+): when the session ends (KIP-368); 0 if it does not.
    pub session_lifetime_ms: i64,
    /// Tagged fields (v2+), undecoded.
    pub tags: TaggedFields<'a>,
}

impl<'a> SaslAuthenticateResponse<'a> {
    /// Decodes a response body at `version` (0–2).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(0..=2).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 36, version });
        }
        let flexible = version >= 2;
        let mut r = Reader::new(body);
        let error_code = ErrorCode::from(r.get_i16()?);
        let error_message = r.get_nullable_string(flexible)?;
        let auth_bytes = r.get_nullable_bytes(flexible)?.unwrap_or_default();
        let session_lifetime_ms = if version >= 1 { r.get_i64()? } else { 0 };
        let tags = if flexible { r.get_tags()? } else { TaggedFields::default() };
        Ok(Self { error_code, error_message, auth_bytes, session_lifetime_ms, tags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trip() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        SaslHandshakeRequest { mechanism: "PLAIN" }.encode(&mut w, 1);
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], b"\x00\x05PLAIN");

        let body = b"\x00\x21\x00\x00\x00\x02\x00\x05PLAIN\x00\x0dSCRAM-SHA-256";
        let resp = SaslHandshakeResponse::decode(body, 1).unwrap();
        assert_eq!(resp.error_code, ErrorCode::UnsupportedSaslMechanism);
        let names: heapless::Vec<&str, 4> = resp.mechanisms.iter().collect();
        assert_eq!(names.as_slice(), ["PLAIN", "SCRAM-SHA-256"]);
    }

    #[test]
    fn authenticate_round_trip() {
        let mut buf = [0u8; 32];
        for (version, expect) in [(1, &b"\x00\x00\x00\x05ab\x00cd"[..]), (2, b"\x06ab\x00cd\x00")] {
            let mut w = Writer::new(&mut buf);
            SaslAuthenticateRequest { auth_bytes: &[b"ab", b"\0cd"] }.encode(&mut w, version);
            let n = w.finish().unwrap();
            assert_eq!(&buf[..n], expect);
        }
        let body = b"\x00\x00\x00\x03ok\x00\x00\x00\x00\x00\x00\x0b\xb8\x00";
        let resp = SaslAuthenticateResponse::decode(body, 2).unwrap();
        assert_eq!((resp.error_message, resp.auth_bytes, resp.session_lifetime_ms), (None, &b"ok"[..], 3000));
        let body = b"\x00\x3a\x00\x03bad\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00";
        let resp = SaslAuthenticateResponse::decode(body, 1).unwrap();
        assert_eq!(resp.error_code, ErrorCode::SaslAuthenticationFailed);
        assert_eq!(resp.error_message, Some("bad"));
    }
}
