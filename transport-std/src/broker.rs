//! One connection to one broker, outside the producer, for one-shot queries (the CLI's
//! `metadata` command): TCP, TLS and SASL exactly as the producer's connections have them —
//! the same properties, the same TLS settings, the core's own SASL exchange — then plain
//! request/response calls.

use picokafka::producer::{SaslClient, SaslProgress, SaslRequest};
use picokafka::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use picokafka::protocol::sasl::SaslAuthenticateRequest;
use picokafka::protocol::{encode_request, ApiKey, ErrorCode, Reader, Request, ResponseHeader, Writer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::ClientConfig;
use crate::error::{
    AuthenticationCause, AuthenticationError, ConnectionCause, ConnectionError, Error, TlsError,
};

/// Largest answer accepted: a large cluster's whole metadata.
const MAX_RESPONSE: usize = 64 << 20;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connected, authenticated broker connection.
pub struct BrokerConnection {
    stream: Box<dyn Stream>,
    peer: String,
    client_id: String,
    correlation_id: i32,
    /// The broker's ApiVersions answer (body), and the version it was decoded at.
    versions: (Vec<u8>, i16),
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl BrokerConnection {
    /// Connects to `host:port` with `config`'s `security.protocol`, `ssl.*` and `sasl.*`
    /// settings (and `client.id`), and exchanges ApiVersions (and SASL).
    pub async fn connect(config: &ClientConfig, host: &str, port: u16) -> Result<Self, Error> {
        let mut config = config.clone();
        if config.get("bootstrap.servers").is_none() {
            config.set("bootstrap.servers", format!("{host}:{port}"));
        }
        let settings = config.settings()?;
        let peer = format!("{host}:{port}");
        let io = |e: std::io::Error| Error::Connection(ConnectionError::io(&peer, &e));
        let tcp = crate::socket::connect(host, port, settings.socket_buffers).await.map_err(io)?;
        let stream: Box<dyn Stream> = match &settings.tls {
            Some(tls) => Box::new(
                tls.connect(host, tcp).await.map_err(|e| Error::Tls(TlsError::handshake(&peer, &e)))?,
            ),
            None => Box::new(tcp),
        };
        let client_id = settings.core.client_id.to_string();
        let mut c = Self { stream, peer, client_id, correlation_id: 0, versions: (Vec::new(), 0) };
        c.api_versions().await?;
        if let Some(mut sasl) = SaslClient::new(&settings.core) {
            c.authenticate(&mut sasl).await?;
        }
        Ok(c)
    }

    /// The highest version of `key` both sides speak within `min..=max`.
    pub fn negotiate(&self, key: ApiKey, min: i16, max: i16) -> Option<i16> {
        ApiVersionsResponse::decode(&self.versions.0, self.versions.1).ok()?.negotiate(key, min, max)
    }

    /// Sends `body` at `version` and returns the response body (after its header).
    pub async fn call<R: Request>(&mut self, version: i16, body: &R) -> Result<Vec<u8>, Error> {
        self.correlation_id += 1;
        let id = self.correlation_id;
        let client_id = Some(self.client_id.as_str());
        let mut w = Writer::counting();
        let len = encode_request(&mut w, version, id, client_id, body);
        let mut buf = vec![0u8; len];
        let mut w = Writer::new(&mut buf);
        encode_request(&mut w, version, id, client_id, body);
        w.finish().map_err(|e| self.failed(ConnectionCause::Encode(e)))?;
        let peer = self.peer.clone();
        let io = |e: std::io::Error| Error::Connection(ConnectionError::io(&peer, &e));
        self.stream.write_all(&buf).await.map_err(io)?;
        let size = self.stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE)
            .ok_or_else(|| self.failed(ConnectionCause::ResponseTooLarge { size }))?;
        let mut frame = vec![0u8; size];
        self.stream.read_exact(&mut frame).await.map_err(io)?;
        let mut r = Reader::new(&frame);
        let header = ResponseHeader::decode(&mut r, R::API_KEY, version)
            .map_err(|e| self.failed(ConnectionCause::Header(e)))?;
        if header.correlation_id != id {
            return Err(
                self.failed(ConnectionCause::CorrelationId { answered: header.correlation_id, request: id })
            );
        }
        Ok(r.rest().to_vec())
    }

    async fn api_versions(&mut self) -> Result<(), Error> {
        let hello = ApiVersionsRequest {
            client_software_name: "picokafka",
            client_software_version: env!("CARGO_PKG_VERSION"),
        };
        let mut version = 4;
        loop {
            let body = self.call(version, &hello).await?;
            let resp = ApiVersionsResponse::decode(&body, version).map_err(|e| self.malformed(e))?;
            match resp.error_code {
                // KIP-511: ask again at the highest version the broker lists.
                ErrorCode::UnsupportedVersion if version > 0 => {
                    version = resp.range(ApiKey::ApiVersions).map_or(0, |r| r.max_version).min(version - 1);
                }
                ErrorCode::NoError => {
                    self.versions = (body, version);
                    return Ok(());
                }
                code => return Err(self.failed(ConnectionCause::ApiVersions(code))),
            }
        }
    }

    async fn authenticate(&mut self, sasl: &mut SaslClient) -> Result<(), Error> {
        let version = self
            .negotiate(ApiKey::SaslAuthenticate, 0, 2)
            .filter(|_| self.negotiate(ApiKey::SaslHandshake, 1, 1).is_some())
            .ok_or_else(|| self.refused(AuthenticationCause::NoSaslHandshake))?;
        let unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        loop {
            let progress = match sasl.next_request() {
                None => return Err(self.refused(AuthenticationCause::NoToken)),
                Some(SaslRequest::Handshake(request)) => {
                    let body = self.call(1, &request).await?;
                    sasl.on_handshake(&body, 1, &mut rand_core::OsRng, unix_s)
                        .map_err(|e| self.malformed(e))?
                }
                Some(SaslRequest::Authenticate(pieces)) => {
                    let body = self.call(version, &SaslAuthenticateRequest { auth_bytes: &pieces }).await?;
                    sasl.on_authenticate(&body, version).map_err(|e| self.malformed(e))?
                }
            };
            match progress {
                SaslProgress::Continue => {}
                SaslProgress::Authenticated { .. } => return Ok(()),
                SaslProgress::Failed(code) => {
                    return Err(Error::Authentication(Box::new(match sasl.error() {
                        Some(e) => AuthenticationError::from_core(Some(self.peer.clone()), &e),
                        None => AuthenticationError {
                            broker: Some(self.peer.clone()),
                            cause: AuthenticationCause::Code(code),
                        },
                    })))
                }
            }
        }
    }

    fn malformed(&self, e: picokafka::protocol::DecodeError) -> Error {
        self.failed(ConnectionCause::Malformed { what: "response", error: e })
    }

    fn failed(&self, cause: ConnectionCause) -> Error {
        Error::Connection(ConnectionError::new(self.peer.clone(), cause))
    }

    fn refused(&self, cause: AuthenticationCause) -> Error {
        Error::Authentication(Box::new(AuthenticationError { broker: Some(self.peer.clone()), cause }))
    }
}
