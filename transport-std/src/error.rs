//! Everything that can go wrong for a caller, and how the core's refusals map onto it.

use std::fmt;

use picokafka::{DeliveryError, SendError, SizeLimit};

/// Everything that can go wrong for a caller of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A property is unknown or invalid, settings contradict each other, a file they name cannot
    /// be used: which property, what kind of problem, and the message naming it.
    Config(ConfigError),
    /// The queue stayed full for `max.block.ms`.
    QueueFull,
    /// The topic's metadata did not arrive within `max.block.ms` (it may not exist).
    MetadataTimeout {
        /// The topic that never appeared.
        topic: String,
        /// How long the record waited: `max.block.ms`, or less when the producer's close deadline
        /// came first.
        waited_ms: u64,
        /// Why, as far as the producer knows: no broker reachable (naming the address and the
        /// socket's error), the OAUTHBEARER token callback's failure, the broker's error code
        /// for the topic.
        cause: Option<MetadataCause>,
    },
    /// The record can never be sent: it needs `size` bytes, `limit` allows `max`
    /// (`max.request.size`, or `buffer.memory`). A record larger than `batch.size` alone gets a
    /// batch of its own, as in the Java client.
    RecordTooLarge {
        /// Bytes it needs: in a Produce request of its own (`max.request.size`), or in a batch
        /// of its own (`buffer.memory`).
        size: usize,
        /// What `limit` allows.
        max: usize,
        /// The limit it exceeds.
        limit: SizeLimit,
    },
    /// The topic name is not one Kafka allows.
    InvalidTopic {
        /// The name refused.
        topic: String,
    },
    /// The record named partition `partition` of a topic with `count`.
    PartitionOutOfRange {
        /// The partition asked for.
        partition: i32,
        /// The topic's partition count.
        count: i32,
    },
    /// The broker refused the topic (authorization, invalid name, ...).
    Topic(picokafka::protocol::ErrorCode),
    /// A capacity knob (`picokafka.max.*`) is too small.
    Capacity(&'static str),
    /// The record was accepted but not delivered.
    Delivery(DeliveryError),
    /// The producer is closed.
    Closed,
    /// The producer failed for good.
    Fatal(picokafka::protocol::ErrorCode),
    /// A broker connection outside the producer ([`crate::BrokerConnection`]) failed: which
    /// broker, and why.
    Connection(ConnectionError),
    /// SASL authentication failed for good (wrong password, unknown user, a mechanism the
    /// broker does not enable, a broker whose SCRAM signature does not verify): the mechanism,
    /// the user and the broker's words; never the password.
    Authentication(Box<AuthenticationError>),
    /// No broker could be reached over TLS: the handshake failed (untrusted certificate, wrong
    /// name, ...), with which broker and why.
    Tls(TlsError),
    /// A transactional operation failed; [`Error::txn_requires_abort`] and [`Error::is_fatal`]
    /// say what to do next.
    Transaction(picokafka::TxnError),
    /// A transactional producer takes records only inside a transaction; it is in this state.
    NoTransaction(picokafka::TxnState),
    /// An operation did not end in the time given: which, and how long it was given.
    Timeout(TimeoutError),
    /// `Producer::new` was called outside a tokio runtime (use `BlockingProducer` there).
    NoRuntime,
}

impl Error {
    /// The open transaction cannot commit: abort it, then the producer goes on (rust-rdkafka's
    /// `txn_requires_abort`, Java's abortable errors).
    pub fn txn_requires_abort(&self) -> bool {
        matches!(self, Self::Transaction(e) if e.is_abortable())
    }

    /// The producer cannot go on (fenced by a newer producer with its `transactional.id`,
    /// unauthorized, SASL refused, ...): close it.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_) | Self::Authentication(_))
            || matches!(self, Self::Transaction(e) if e.is_fatal())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "configuration: {e}"),
            Self::QueueFull => f.write_str("queue full for max.block.ms"),
            Self::MetadataTimeout { topic, waited_ms, cause } => {
                write!(f, "topic {topic} not present in metadata after {waited_ms} ms")?;
                match cause {
                    Some(cause) => write!(f, ": {cause}"),
                    None => Ok(()),
                }
            }
            Self::RecordTooLarge { size, max, limit: SizeLimit::MaxRequestSize } => {
                write!(f, "record of {size} bytes (in a request of its own) exceeds max.request.size {max}")
            }
            Self::RecordTooLarge { size, max, limit: SizeLimit::BatchMemory } => {
                write!(f, "record of {size} bytes exceeds the producer's batch memory of {max} bytes (buffer.memory)")
            }
            Self::InvalidTopic { topic } => write!(f, "invalid topic name: {topic:?}"),
            Self::PartitionOutOfRange { partition, count } => {
                write!(f, "partition {partition} out of range (topic has {count})")
            }
            Self::Topic(code) => write!(f, "topic error: {code}"),
            Self::Capacity(what) => write!(f, "capacity exhausted: {what}"),
            Self::Delivery(e) => write!(f, "delivery failed: {e}"),
            Self::Closed => f.write_str("producer closed"),
            Self::Fatal(code) => write!(f, "producer failed: {code}"),
            Self::Tls(e) => write!(f, "{e}"),
            Self::Authentication(e) => write!(f, "{e}"),
            Self::Connection(e) => write!(f, "{e}"),
            Self::Transaction(e) => write!(f, "{e}"),
            Self::NoTransaction(state) => write!(
                f,
                "transactional producer takes records only in a transaction (begin_transaction); state {state:?}"
            ),
            Self::Timeout(e) => write!(f, "{e}"),
            Self::NoRuntime => f.write_str(
                "no tokio runtime: create the Producer inside one (#[tokio::main], Runtime::enter), \
                 or use BlockingProducer",
            ),
        }
    }
}

impl std::error::Error for Error {
    /// A failed delivery's cause is the core's [`DeliveryError`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Delivery(e) => Some(e),
            Self::Transaction(e) => Some(e),
            Self::Config(e) => Some(e),
            Self::Connection(e) => Some(e),
            Self::Authentication(e) => Some(&**e),
            Self::Tls(e) => Some(e),
            Self::Timeout(e) => Some(e),
            _ => None,
        }
    }
}

/// A record the producer did not take, handed back with why — as rust-rdkafka's
/// `(KafkaError, OwnedRecord)`: a full queue ([`Error::QueueFull`]), a closed or failed
/// producer, an invalid topic. `?` turns it into its [`Error`].
#[derive(Debug)]
pub struct Refused {
    /// Why it was refused.
    pub error: Error,
    /// The record, untouched: send it again later, elsewhere, or drop it knowingly.
    pub record: crate::OwnedRecord,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record for {} refused: {}", self.record.topic, self.error)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        r.error
    }
}

/// The core's refusal of a record; `MetadataPending` becomes a [`Error::MetadataTimeout`]
/// without a cause (the driver, which knows it, fills it in).
pub(crate) fn map_send_error(e: &SendError<'_>, topic: &str) -> Error {
    match *e {
        SendError::QueueFull(_) => Error::QueueFull,
        SendError::MetadataPending(_) => {
            Error::MetadataTimeout { topic: topic.to_string(), waited_ms: 0, cause: None }
        }
        SendError::RecordTooLarge { size, max, limit } => Error::RecordTooLarge { size, max, limit },
        SendError::InvalidTopic => Error::InvalidTopic { topic: topic.to_string() },
        SendError::PartitionOutOfRange { partition, count } => {
            Error::PartitionOutOfRange { partition, count }
        }
        SendError::Topic(code) => Error::Topic(code),
        SendError::Capacity(what) => Error::Capacity(what),
        SendError::Closed => Error::Closed,
        SendError::Fatal(code) => Error::Fatal(code),
        SendError::NoTransaction(state) => Error::NoTransaction(state),
    }
}

impl From<DeliveryError> for Error {
    fn from(e: DeliveryError) -> Self {
        Error::Delivery(e)
    }
}

/// Why a topic's metadata has not come, as far as the producer can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataCause {
    /// The OAUTHBEARER token callback failed, in its words: no connection can authenticate.
    Token(String),
    /// No broker connection is ready, and the last attempt to connect failed thus (naming the
    /// address and the socket's error).
    NoBrokerReachable(String),
    /// The brokers answer this error code for the topic.
    Topic(picokafka::protocol::ErrorCode),
    /// No broker connection is ready yet.
    NoConnectionReady,
}

impl fmt::Display for MetadataCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(why) => f.write_str(why),
            Self::NoBrokerReachable(why) => write!(f, "no broker reachable: {why}"),
            Self::Topic(code) => write!(f, "the brokers answer {code}"),
            Self::NoConnectionReady => f.write_str("no broker connection is ready"),
        }
    }
}

/// A broker connection outside the producer ([`crate::BrokerConnection`]) that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionError {
    /// The broker, as `host:port`.
    pub broker: String,
    /// What went wrong.
    pub cause: ConnectionCause,
}

impl ConnectionError {
    /// A failure of the connection to `broker` (`host:port`).
    pub fn new(broker: impl Into<String>, cause: ConnectionCause) -> Self {
        Self { broker: broker.into(), cause }
    }

    /// A socket error on the connection to `broker`.
    pub(crate) fn io(broker: &str, e: &std::io::Error) -> Self {
        Self::new(broker, ConnectionCause::Io { kind: e.kind(), message: e.to_string() })
    }
}

/// Why a [`ConnectionError`] happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionCause {
    /// The socket failed: its kind (refused, reset, unexpected end, ...) and the system's words.
    Io {
        /// The `std::io::Error`'s kind.
        kind: std::io::ErrorKind,
        /// The `std::io::Error`'s words.
        message: String,
    },
    /// The request could not be encoded (a field too long for its Kafka type).
    Encode(picokafka::protocol::EncodeError),
    /// The broker announced a response of `size` bytes, more than the client takes.
    ResponseTooLarge {
        /// The size prefix the broker sent.
        size: i32,
    },
    /// A response header that does not decode.
    Header(picokafka::protocol::DecodeError),
    /// A response body that does not decode: `what` names it ("response", "Metadata").
    Malformed {
        /// What did not decode.
        what: &'static str,
        /// How.
        error: picokafka::protocol::DecodeError,
    },
    /// The response's correlation id is not the request's.
    CorrelationId {
        /// The id the broker answered with.
        answered: i32,
        /// The request's.
        request: i32,
    },
    /// The broker answered ApiVersions with an error.
    ApiVersions(picokafka::protocol::ErrorCode),
    /// The broker does not speak `api` at `min_version` or above.
    MissingApi {
        /// The API's name.
        api: &'static str,
        /// The lowest version the client needs.
        min_version: i16,
    },
    /// No `api` answer within `waited_ms` (`request.timeout.ms`).
    NoAnswer {
        /// The API's name.
        api: &'static str,
        /// How long it was waited for.
        waited_ms: u64,
    },
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.broker)?;
        match &self.cause {
            ConnectionCause::Io { message, .. } => f.write_str(message),
            ConnectionCause::Encode(e) => write!(f, "{e}"),
            ConnectionCause::ResponseTooLarge { size } => write!(f, "response of {size} bytes refused"),
            ConnectionCause::Header(e) => write!(f, "{e}"),
            ConnectionCause::Malformed { what, error } => write!(f, "malformed {what}: {error}"),
            ConnectionCause::CorrelationId { answered, request } => {
                write!(f, "correlation id {answered} does not match request {request}")
            }
            ConnectionCause::ApiVersions(code) => write!(f, "ApiVersions: {code}"),
            ConnectionCause::MissingApi { api, min_version } => {
                write!(f, "broker lacks {api} v{min_version}+")
            }
            ConnectionCause::NoAnswer { api, waited_ms } => {
                write!(f, "no {api} answer in {waited_ms} ms (request.timeout.ms)")
            }
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            ConnectionCause::Encode(e) => Some(e),
            ConnectionCause::Header(e) | ConnectionCause::Malformed { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// A SASL authentication that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthenticationError {
    /// The broker, as `host:port`, when one connection outside the producer failed
    /// ([`crate::BrokerConnection`]); the producer's own failure names none.
    pub broker: Option<String>,
    /// What went wrong.
    pub cause: AuthenticationCause,
}

/// Why an [`AuthenticationError`] happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthenticationCause {
    /// The exchange failed as the core tells it ([`picokafka::producer::AuthError`]).
    Failed {
        /// The mechanism tried.
        mechanism: picokafka::Mechanism,
        /// The user (or OAUTHBEARER principal) it authenticated as.
        username: String,
        /// What went wrong.
        failure: picokafka::producer::AuthFailure,
        /// The broker's error message, if it sent one.
        broker_message: String,
        /// The mechanisms the broker enables, when it named them.
        enabled_mechanisms: String,
    },
    /// The exchange failed with this error code, without more said.
    Code(picokafka::protocol::ErrorCode),
    /// The broker does not speak SaslHandshake v1.
    NoSaslHandshake,
    /// OAUTHBEARER without a token to send.
    NoToken,
}

impl AuthenticationError {
    /// The core's account of a failed authentication, owned.
    pub(crate) fn from_core(broker: Option<String>, e: &picokafka::producer::AuthError<'_>) -> Self {
        let cause = AuthenticationCause::Failed {
            mechanism: e.mechanism,
            username: e.username.to_string(),
            failure: e.failure,
            broker_message: e.broker_message.to_string(),
            enabled_mechanisms: e.enabled_mechanisms.to_string(),
        };
        Self { broker, cause }
    }
}

impl fmt::Display for AuthenticationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(broker) = &self.broker {
            write!(f, "{broker}: ")?;
        }
        match &self.cause {
            AuthenticationCause::Failed {
                mechanism,
                username,
                failure,
                broker_message,
                enabled_mechanisms,
            } => {
                let e = picokafka::producer::AuthError {
                    mechanism: *mechanism,
                    username,
                    failure: *failure,
                    broker_message,
                    enabled_mechanisms,
                };
                write!(f, "{e}")
            }
            AuthenticationCause::Code(code) => write!(f, "SASL exchange failed: {code}"),
            AuthenticationCause::NoSaslHandshake => f.write_str("the broker does not speak SaslHandshake v1"),
            AuthenticationCause::NoToken => f.write_str("no OAUTHBEARER token to send"),
        }
    }
}

impl std::error::Error for AuthenticationError {}

/// A TLS handshake with a broker that failed: it will not heal by retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsError {
    /// The broker, as `host:port`.
    pub broker: String,
    /// What kind of failure.
    pub kind: TlsErrorKind,
    /// rustls's (or the socket's) words.
    pub message: String,
}

/// What kind of [`TlsError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The certificate is not valid for the broker's name.
    NotValidForName,
    /// The certificate is signed by no trusted issuer (`ssl.ca.location`).
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// The certificate was revoked.
    Revoked,
    /// The certificate is refused for another reason.
    InvalidCertificate,
    /// The broker sent an alert (say, it refused our client certificate).
    AlertReceived,
    /// The broker offers nothing the client accepts (versions, cipher suites).
    PeerIncompatible,
    /// Any other handshake failure.
    Handshake,
    /// The socket failed during the handshake.
    Io(std::io::ErrorKind),
}

impl TlsError {
    /// The failed handshake with `broker`, from the error tokio-rustls hands back.
    pub(crate) fn handshake(broker: &str, e: &std::io::Error) -> Self {
        use rustls::CertificateError as C;
        let rustls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let kind = match rustls {
            None => TlsErrorKind::Io(e.kind()),
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsErrorKind::NotValidForName,
                C::UnknownIssuer => TlsErrorKind::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => TlsErrorKind::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsErrorKind::NotValidYet,
                C::Revoked => TlsErrorKind::Revoked,
                _ => TlsErrorKind::InvalidCertificate,
            },
            Some(rustls::Error::AlertReceived(_)) => TlsErrorKind::AlertReceived,
            Some(rustls::Error::PeerIncompatible(_)) => TlsErrorKind::PeerIncompatible,
            Some(_) => TlsErrorKind::Handshake,
        };
        Self { broker: broker.to_string(), kind, message: e.to_string() }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake with {} failed: {}", self.broker, self.message)
    }
}

impl std::error::Error for TlsError {}

/// An operation that did not end in the time it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutError {
    /// Which.
    pub operation: TimedOperation,
    /// The time it was given.
    pub waited_ms: u64,
}

/// What a [`TimeoutError`] waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimedOperation {
    /// `flush`, with this many records still undelivered.
    Flush {
        /// Records accepted and not yet reported when it gave up.
        undelivered: u64,
    },
    /// The dead-letter producer's `flush`.
    DeadLetterFlush,
    /// A transactional operation: call it again to go on waiting.
    Transaction(picokafka::TxnOp),
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.waited_ms;
        match self.operation {
            TimedOperation::Flush { undelivered } => {
                write!(f, "flush: {undelivered} records still undelivered after {ms} ms")
            }
            TimedOperation::DeadLetterFlush => write!(f, "dead-letter flush: outcomes pending after {ms} ms"),
            TimedOperation::Transaction(op) => {
                write!(f, "{} did not end within {ms} ms; call it again to go on waiting", op.name())
            }
        }
    }
}

impl std::error::Error for TimeoutError {}

/// A configuration this crate cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The property at fault, as given (`ssl.keystore.location`, `queue.buffering.max.ms`),
    /// when one is.
    pub property: Option<String>,
    /// What kind of problem.
    pub kind: ConfigErrorKind,
    /// The core's own refusal, when it was the core's ([`std::error::Error::source`] too).
    pub core: Option<picokafka::ConfigError>,
    /// The account, naming the property, the value as given and where it was given.
    pub message: String,
}

/// What kind of [`ConfigError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// No such property (the message suggests the closest one).
    UnknownProperty,
    /// A value that does not parse or is out of range.
    InvalidValue,
    /// A property, or a value of it, that picokafka knows and does not implement.
    Unsupported,
    /// Settings that contradict each other, or that need one another.
    Conflict,
    /// More than the producer's tables or buffers can hold (`picokafka.max.*`).
    Capacity,
    /// A `.properties` text that does not parse.
    Syntax,
    /// A file the configuration names (properties, certificates, keys) cannot be read or holds
    /// nothing usable.
    File,
    /// rustls refused the TLS settings or the certificates and keys given.
    Tls,
    /// What the process could not provide: a runtime, a socket to listen on, a trust store.
    Environment,
    /// A call the producer was not made for (`send_with_opaque` without a delivery handler).
    Usage,
}

impl ConfigError {
    /// A configuration error of `kind` about `property`.
    pub fn new(kind: ConfigErrorKind, property: Option<&str>, message: String) -> Self {
        Self { property: property.map(str::to_string), kind, core: None, message }
    }

    /// The core's refusal `core`, of `property` as given if known, told as `message`.
    pub(crate) fn of_core(core: picokafka::ConfigError, property: Option<&str>, message: String) -> Self {
        use picokafka::ConfigError as Core;
        let (kind, named) = match core {
            Core::UnknownProperty => (ConfigErrorKind::UnknownProperty, None),
            Core::InvalidValue { property, .. } => (ConfigErrorKind::InvalidValue, Some(property)),
            Core::Conflict(_) => (ConfigErrorKind::Conflict, None),
            Core::Capacity(_) => (ConfigErrorKind::Capacity, None),
            Core::Unsupported { property, .. } => (ConfigErrorKind::Unsupported, Some(property)),
            _ => (ConfigErrorKind::InvalidValue, None),
        };
        let property = property.or(named).map(str::to_string);
        Self { property, kind, core: Some(core), message }
    }
}

/// An [`Error::Config`].
pub(crate) fn config_error(kind: ConfigErrorKind, property: Option<&str>, message: String) -> Error {
    Error::Config(ConfigError::new(kind, property, message))
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.core.as_ref().map(|e| e as _)
    }
}
