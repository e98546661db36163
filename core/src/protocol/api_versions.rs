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
    /// The body's tagged fields (v3+: supported and finalized features, ...), undecoded.
    pub tags: TaggedFields<'a>,
}

/// One feature level the cluster has finalized (KIP-584).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalizedFeature<'a> {
    /// `Name`: the feature, e.g. `transaction.version`.
    pub name: &'a str,
    /// `MaxVersionLevel`: the level in force.
    pub max_version_level: i16,
    /// `MinVersionLevel`: the lowest level still finalized.
    pub min_version_level: i16,
}

/// The tag of `FinalizedFeatures` in the v3+ response.
const FINALIZED_FEATURES_TAG: u32 = 2;

fn decode_feature<'a>(r: &mut Reader<'a>, _version: i16) -> Result<FinalizedFeature<'a>, DecodeError> {
    let name = r.get_string(true)?;
    let max_version_level = r.get_i16()?;
    let min_version_level = r.get_i16()?;
    r.get_tags()?;
    Ok(FinalizedFeature { name, max_version_level, min_version_level })
}

/// The finalized features of a v3+ body's tags, validated.
fn decode_features<'a>(tags: &TaggedFields<'a>) -> Result<Array<'a, FinalizedFeature<'a>>, DecodeError> {
    let data = tags.get(FINALIZED_FEATURES_TAG).unwrap_or(&[1]); // absent: an empty compact array
    let mut r = Reader::new(data);
    // Name (1+), two levels, tags: at least 6 bytes each.
    let features = Array::decode(&mut r, 3, true, 6, decode_feature)?;
    r.expect_end()?;
    Ok(features)
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

    /// `FinalizedFeatures` (tag 2, v3+): the cluster-wide feature levels in force (KIP-584),
    /// such as `transaction.version`; empty when the broker sends none. Decoded on demand, so
    /// that a producer that needs no feature (firmware without transactions) carries no code
    /// for them.
    pub fn finalized_features(&self) -> Result<Array<'a, FinalizedFeature<'a>>, DecodeError> {
        decode_features(&self.tags)
    }

    /// The level in force of the finalized feature `name`, 0 when the broker lists none (a
    /// feature not finalized is at level 0, as the Java client reads it).
    pub fn feature_level(&self, name: &str) -> Result<i16, DecodeError> {
        Ok(self.finalized_features()?.iter().find(|f| f.name == name).map_or(0, |f| f.max_version_level))
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
    fn finalized_features_are_read_from_tag_2() {
        // v3 body: no error, one key (Produce 3..12), throttle 0, then two tags: 1
        // (FinalizedFeaturesEpoch = 7) and 2 (FinalizedFeatures: transaction.version 2..0,
        // group.version 1..1).
        let mut body = std::vec![0, 0, 2, 0, 0, 0, 3, 0, 12, 0, 0, 0, 0, 0, 2];
        body.extend_from_slice(&[1, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        let mut features = std::vec![3];
        for (name, max, min) in [("transaction.version", 2u8, 0u8), ("group.version", 1, 1)] {
            features.push(name.len() as u8 + 1);
            features.extend_from_slice(name.as_bytes());
            features.extend_from_slice(&[0, max, 0, min, 0]);
        }
        body.push(2);
        body.push(features.len() as u8);
        body.extend_from_slice(&features);
        let resp = ApiVersionsResponse::decode(&body, 3).unwrap();
        assert_eq!(resp.parsed_version, 3);
        assert_eq!(resp.feature_level("transaction.version"), Ok(2));
        assert_eq!(resp.feature_level("group.version"), Ok(1));
        assert_eq!(resp.feature_level("share.version"), Ok(0));
        assert_eq!(resp.finalized_features().unwrap().len(), 2);
        // A features tag that does not parse is an error, not "no features".
        let bad = [0, 0, 2, 0, 0, 0, 3, 0, 12, 0, 0, 0, 0, 0, 1, 2, 2, 3, 0xff];
        let resp = ApiVersionsResponse::decode(&bad, 3).unwrap();
        assert!(resp.feature_level("transaction.version").is_err());
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
