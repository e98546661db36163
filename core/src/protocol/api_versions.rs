//! ApiVersions (key 18): which versions of each API a broker speaks.

use super::codec::{Array, DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// ApiVersions request, v0–v4 (v0–v2 have an empty body; v3 adds the client software name and
/// version; v4 is v3 with a fixed broker-side bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionsRequest<'a> {
    /// `ClientSoftwareName` (v3+): the client library's name (KIP-511).
    pub client_software_name: &'a str,
    /// `ClientSoftwareVersion` (v3+): the client library's version.
    pub client_software_version: &'a str,
}

impl Request for ApiVersionsRequest<'_> {
    const API_KEY: ApiKey = ApiKey::ApiVersions;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        if version >= 3 {
            w.put_string(self.client_software_name, true);
            w.put_string(self.client_software_version, true);
            w.put_empty_tags();
        }
    }
}

/// Versions the broker supports for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ApiVersionRange {
    /// `ApiKey`: the API the range is for.
    pub api_key: ApiKey,
    /// `MinVersion`: the lowest version the broker supports, inclusive.
    pub min_version: i16,
    /// `MaxVersion`: the highest version the broker supports, inclusive.
    pub max_version: i16,
}

fn decode_range(r: &mut Reader<'_>, version: i16) -> Result<ApiVersionRange, DecodeError> {
    let api_key = ApiKey::from(r.get_i16()?);
    let min_version = r.get_i16()?;
    let max_version = r.get_i16()?;
    if version >= 3 {
        r.get_tags()?;
    }
    Ok(ApiVersionRange { api_key, min_version, max_version })
}

/// ApiVersions response.
#[derive(Debug, Clone, Copy)]
pub struct ApiVersionsResponse<'a> {
    /// The version the body was actually parsed at: a broker that does not support the version
    /// we asked for answers `UNSUPPORTED_VERSION` with a v0 body, as Kafka's KIP-511 prescribes.
    pub parsed_version: i16,
    /// `ErrorCode`: the top-level error; UNSUPPORTED_VERSION if the broker cannot answer at the
    /// version asked.
    pub error_code: ErrorCode,
    /// `ApiKeys`: the APIs the broker supports, with their version ranges.
    pub api_keys: Array<'a, ApiVersionRange>,
    /// `ThrottleTimeMs` (v1+): how long the broker throttled the request for a quota violation,
    /// 0 if it did not.
    pub throttle_time_ms: i32,
    /// The body's tagged fields (v3+: supported and finalized features), undecoded.
    pub tags: TaggedFields<'a>,
}

impl<'a> ApiVersionsResponse<'a> {
    /// Decodes a body sent in answer to a request at `version`, falling back to v0 the way the
    /// Java client does when the body does not parse at `version`. A body whose error is
    /// `UNSUPPORTED_VERSION` is tried as v0 first, since that is what brokers send.
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(0..=ApiVersionsRequest::MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 18, version });
        }
        let unsupported = Reader::new(body).get_i16()? == i16::from(ErrorCode::UnsupportedVersion);
        if unsupported {
            // Some brokers (librdkafka's mock) answer in a shape of their own; all a client needs
            // from this answer is "ask again, lower": without a readable version list, v0.
            return Self::decode_at(body, 0).or_else(|_| Self::decode_at(body, version)).or_else(|_| {
                Ok(Self {
                    parsed_version: 0,
                    error_code: ErrorCode::UnsupportedVersion,
                    api_keys: Array::decode_elements(&mut Reader::new(&[]), 0, 0, decode_range)?,
                    throttle_time_ms: 0,
                    tags: TaggedFields::default(),
                })
            });
        }
        Self::decode_at(body, version).or_else(|_| Self::decode_at(body, 0))
    }

    fn decode_at(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        let flexible = version >= 3;
        let mut r = Reader::new(body);
        let error_code = ErrorCode::from(r.get_i16()?);
        let api_keys = Array::decode(&mut r, version, flexible, 6, decode_range)?;
        let throttle_time_ms = if version >= 1 { r.get_i32()? } else { 0 };
        let tags = if flexible { r.get_tags()? } else { TaggedFields::default() };
        r.expect_end()?;
        Ok(Self { parsed_version: version, error_code, api_keys, throttle_time_ms, tags })
    }

    /// The broker's version range for `key`, if it supports it at all.
    pub fn range(&self, key: ApiKey) -> Option<ApiVersionRange> {
        self.api_keys.iter().find(|r| r.api_key == key)
    }

    /// The highest version both the broker and `[our_min, our_max]` support.
    pub fn negotiate(&self, key: ApiKey, our_min: i16, our_max: i16) -> Option<i16> {
        let r = self.range(key)?;
        let v = r.max_version.min(our_max);
        (v >= r.min_version.max(our_min)).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_fallback_on_unsupported_version() {
        // error 35, one key (18: 0..2), v0 shape: no throttle, classic array.
        let body = [0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 2];
        let resp = ApiVersionsResponse::decode(&body, 3).unwrap();
        assert_eq!(resp.parsed_version, 0);
        assert_eq!(resp.error_code, ErrorCode::UnsupportedVersion);
        assert_eq!(resp.negotiate(ApiKey::ApiVersions, 0, 4), Some(2));
        assert_eq!(resp.negotiate(ApiKey::Produce, 3, 11), None);
    }

    #[test]
    fn unreadable_unsupported_version_answer_still_says_ask_lower() {
        // librdkafka's mock cluster answering a v4 request: error 35, then a layout of its own.
        let body = [0x00, 0x23, 0x01, 0x00, 0x12, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00];
        let resp = ApiVersionsResponse::decode(&body, 4).unwrap();
        assert_eq!(resp.error_code, ErrorCode::UnsupportedVersion);
        assert_eq!(resp.range(ApiKey::ApiVersions), None);
    }

    #[test]
    fn negotiation_picks_highest_common() {
        // v3 body: no error, keys Produce 0..12 and Metadata 0..8, throttle 0, no tags.
        let body = [0, 0, 3, 0, 0, 0, 0, 0, 12, 0, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0];
        let resp = ApiVersionsResponse::decode(&body, 3).unwrap();
        assert_eq!(resp.parsed_version, 3);
        assert_eq!(resp.negotiate(ApiKey::Produce, 3, 11), Some(11));
        assert_eq!(resp.negotiate(ApiKey::Metadata, 9, 12), None);
        assert_eq!(resp.negotiate(ApiKey::Metadata, 1, 12), Some(8));
    }
}
