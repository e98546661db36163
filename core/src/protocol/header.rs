//! API keys, the flexible-version rules, request and response headers, and request framing.

use super::codec::{DecodeError, EncodeError, Reader, TaggedFields, Writer};

macro_rules! api_keys {
    ($($name:ident = $code:literal, flexible from $flex:expr;)*) => {
        /// A Kafka API key. Keys this crate does not speak round-trip through `Unknown`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum ApiKey {
            $(
                #[doc = concat!("The ", stringify!($name), " API, key ", stringify!($code), ".")]
                $name,
            )*
            /// A key this crate does not know, with its number.
            Unknown(i16),
        }

        impl From<i16> for ApiKey {
            fn from(v: i16) -> Self {
                match v {
                    $($code => Self::$name,)*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<ApiKey> for i16 {
            fn from(k: ApiKey) -> i16 {
                match k {
                    $(ApiKey::$name => $code,)*
                    ApiKey::Unknown(v) => v,
                }
            }
        }

        impl ApiKey {
            /// The first version of this API that uses compact encodings and tagged fields.
            pub const fn first_flexible_version(self) -> Option<i16> {
                match self {
                    $(Self::$name => $flex,)*
                    Self::Unknown(_) => None,
                }
            }
        }
    };
}

api_keys! {
    Produce = 0, flexible from Some(9);
    Metadata = 3, flexible from Some(9);
    FindCoordinator = 10, flexible from Some(3);
    SaslHandshake = 17, flexible from None;
    ApiVersions = 18, flexible from Some(3);
    InitProducerId = 22, flexible from Some(2);
    AddPartitionsToTxn = 24, flexible from Some(3);
    AddOffsetsToTxn = 25, flexible from Some(3);
    EndTxn = 26, flexible from Some(3);
    TxnOffsetCommit = 28, flexible from Some(3);
    SaslAuthenticate = 36, flexible from Some(2);
}

impl ApiKey {
    /// Whether `version` of this API is flexible (compact encodings, tagged fields).
    pub const fn is_flexible(self, version: i16) -> bool {
        match self.first_flexible_version() {
            Some(first) => version >= first,
            None => false,
        }
    }

    /// Request header version: 2 for flexible requests, else 1.
    pub const fn request_header_version(self, version: i16) -> i16 {
        if self.is_flexible(version) {
            2
        } else {
            1
        }
    }

    /// Response header version: 1 for flexible responses, else 0 — except ApiVersions, whose
    /// response header stays v0 at every version so that a client can always read it.
    pub const fn response_header_version(self, version: i16) -> i16 {
        match self {
            Self::ApiVersions => 0,
            _ if self.is_flexible(version) => 1,
            _ => 0,
        }
    }
}

/// A request body: encodes itself at an explicit version.
pub trait Request {
    /// The API this request belongs to.
    const API_KEY: ApiKey;
    /// Lowest version this crate encodes.
    const MIN_VERSION: i16;
    /// Highest version this crate encodes.
    const MAX_VERSION: i16;

    /// Writes the body at `version`, which the caller has checked is in range.
    fn encode(&self, w: &mut Writer<'_>, version: i16);

    /// Length of the body at `version`.
    fn encoded_len(&self, version: i16) -> usize {
        let mut w = Writer::counting();
        self.encode(&mut w, version);
        w.position()
    }
}

/// Request header v1 (v2 adds an empty tagged-field section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    /// `RequestApiKey`: the API of the request.
    pub api_key: ApiKey,
    /// `RequestApiVersion`: the version the body is encoded at.
    pub api_version: i16,
    /// `CorrelationId`: echoed in the response, which it matches to this request.
    pub correlation_id: i32,
    /// `ClientId`: the `client.id`, for the broker's logs and quotas.
    pub client_id: Option<&'a str>,
}

impl RequestHeader<'_> {
    /// Writes the header: v1, or v2 (with tagged fields) at a flexible version of the API.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.put_i16(self.api_key.into());
        w.put_i16(self.api_version);
        w.put_i32(self.correlation_id);
        // The client id keeps its classic i16 length even in header v2, so that any broker can
        // read the header of a request whose version it does not know.
        w.put_nullable_string(self.client_id, false);
        if self.api_key.request_header_version(self.api_version) >= 2 {
            w.put_empty_tags();
        }
    }
}

impl<'a> RequestHeader<'a> {
    /// Decodes a request header (used by tests and tools that act as a broker).
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let api_key = ApiKey::from(r.get_i16()?);
        let api_version = r.get_i16()?;
        let correlation_id = r.get_i32()?;
        let client_id = r.get_nullable_string(false)?;
        if api_key.request_header_version(api_version) >= 2 {
            r.get_tags()?;
        }
        Ok(Self { api_key, api_version, correlation_id, client_id })
    }
}

/// Writes a whole request frame: the `i32` size prefix, the header, the body.
///
/// Returns the frame's length; a too-small `w` is reported as
/// [`EncodeError::BufferTooSmall`] with the size the frame needs.
pub fn encode_request<R: Request>(
    w: &mut Writer<'_>,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &R,
) -> usize {
    if !(R::MIN_VERSION..=R::MAX_VERSION).contains(&version) {
        w.fail(EncodeError::UnsupportedVersion { api_key: R::API_KEY.into(), version });
        return 0;
    }
    let header = RequestHeader { api_key: R::API_KEY, api_version: version, correlation_id, client_id };
    encode_frame(w, &header, &|w: &mut Writer<'_>| body.encode(w, version))
}

/// `encode_request`'s work, once for all request types (the body behind a `dyn`: a copy per
/// type, each writing its body twice, cost firmware 124 B more flash).
fn encode_frame(w: &mut Writer<'_>, header: &RequestHeader<'_>, body: &dyn Fn(&mut Writer<'_>)) -> usize {
    let mut counter = Writer::counting();
    header.encode(&mut counter);
    body(&mut counter);
    let size = counter.position();
    let Ok(size_prefix) = i32::try_from(size) else {
        w.fail(EncodeError::TooLong);
        return 0;
    };
    w.put_i32(size_prefix);
    header.encode(w);
    body(w);
    size + 4
}

/// A response header: the correlation id, and tagged fields in v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader<'a> {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
    /// Tagged fields (header v1), undecoded; empty in header v0.
    pub tags: TaggedFields<'a>,
}

impl<'a> ResponseHeader<'a> {
    /// Decodes the header of a response to `api_key` at `version`.
    pub fn decode(r: &mut Reader<'a>, api_key: ApiKey, version: i16) -> Result<Self, DecodeError> {
        let correlation_id = r.get_i32()?;
        let tags = if api_key.response_header_version(version) >= 1 {
            r.get_tags()?
        } else {
            TaggedFields::default()
        };
        Ok(Self { correlation_id, tags })
    }

    /// Encodes a response header (for tests and tools acting as a broker).
    pub fn encode(w: &mut Writer<'_>, correlation_id: i32, api_key: ApiKey, version: i16) {
        w.put_i32(correlation_id);
        if api_key.response_header_version(version) >= 1 {
            w.put_empty_tags();
        }
    }
}

/// Reads the correlation id at the start of a response frame body, whatever its API.
pub fn peek_correlation_id(frame: &[u8]) -> Result<i32, DecodeError> {
    Reader::new(frame).get_i32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_versions_follow_flexible_rules() {
        assert_eq!(ApiKey::Produce.request_header_version(8), 1);
        assert_eq!(ApiKey::Produce.request_header_version(9), 2);
        assert_eq!(ApiKey::Produce.response_header_version(9), 1);
        assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
        assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
        assert_eq!(ApiKey::InitProducerId.response_header_version(2), 1);
        // The transaction APIs: all flexible from v3.
        for (key, code) in [
            (ApiKey::FindCoordinator, 10),
            (ApiKey::AddPartitionsToTxn, 24),
            (ApiKey::AddOffsetsToTxn, 25),
            (ApiKey::EndTxn, 26),
            (ApiKey::TxnOffsetCommit, 28),
        ] {
            assert_eq!(ApiKey::from(code), key);
            assert_eq!(i16::from(key), code);
            assert_eq!((key.request_header_version(2), key.request_header_version(3)), (1, 2));
            assert_eq!((key.response_header_version(2), key.response_header_version(3)), (0, 1));
        }
        assert_eq!(ApiKey::from(1234), ApiKey::Unknown(1234));
        assert_eq!(i16::from(ApiKey::from(1234)), 1234);
    }

    #[test]
    fn request_header_v2_bytes() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        RequestHeader {
            api_key: ApiKey::Metadata,
            api_version: 12,
            correlation_id: 7,
            client_id: Some("pk"),
        }
        .encode(&mut w);
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], &[0, 3, 0, 12, 0, 0, 0, 7, 0, 2, b'p', b'k', 0]);
        let h = RequestHeader::decode(&mut Reader::new(&buf[..n])).unwrap();
        assert_eq!(h.client_id, Some("pk"));
    }
}
