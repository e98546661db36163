//! Producer configuration, under Kafka's own property names and defaults (the Java client's).

use core::fmt;
use core::str::FromStr;

use heapless::String;

use crate::protocol::record_batch::{Codec, Compression};

/// Longest `bootstrap.servers` value kept.
pub const BOOTSTRAP_MAX: usize = 256;
/// Longest `client.id` kept.
pub const CLIENT_ID_MAX: usize = 64;
/// Longest `transactional.id` kept.
pub const TRANSACTIONAL_ID_MAX: usize = 128;

/// Every property [`Config::set`] takes but the `sasl.*` ones ([`SASL_PROPERTIES`]), for tools
/// that check names before setting them or suggest the nearest one for a typo. Unused, it costs
/// firmware no flash.
pub const PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "acks",
    "enable.idempotence",
    "linger.ms",
    "batch.size",
    "batch.num.messages",
    "max.request.size",
    "compression.type",
    "compression.codec",
    "compression.level",
    "compression.gzip.level",
    "compression.zstd.level",
    "compression.lz4.level",
    "retries",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "message.timeout.ms",
    "metadata.max.age.ms",
    "metadata.max.idle.ms",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "socket.connection.setup.timeout.ms",
    "socket.connection.setup.timeout.max.ms",
    "connections.max.idle.ms",
    "allow.auto.create.topics",
    "transactional.id",
    "transaction.timeout.ms",
    "random.seed",
    "security.protocol",
];

/// The `sasl.*` properties [`Config::set`] takes besides [`PROPERTIES`].
pub const SASL_PROPERTIES: &[&str] = &crate::sasl::PROPERTIES;

/// `acks`: how many replicas must have the records before the leader answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Acks {
    /// `acks=0`: fire and forget; no offsets come back.
    None,
    /// `acks=1`: the leader has written them.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has them.
    All,
}

impl Acks {
    /// The value of the Produce request's `acks` field: 0, 1 or -1.
    pub const fn as_i16(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }
}

/// A configuration problem, named by the property it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// Not a property this producer knows.
    UnknownProperty,
    /// The value does not parse or is out of range for `property`.
    InvalidValue {
        /// The property's Kafka name (`linger.ms`, ...).
        property: &'static str,
        /// What the property accepts.
        expected: &'static str,
    },
    /// Two settings contradict each other.
    Conflict(&'static str),
    /// The resources given to the producer cannot hold what the configuration asks for.
    Capacity(&'static str),
    /// A property this producer knows but does not implement yet: accepting it would promise
    /// what it does not do.
    Unsupported {
        /// The property's Kafka name.
        property: &'static str,
        /// What a user would get instead.
        why: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownProperty => f.write_str("unknown property"),
            Self::InvalidValue { property, expected } => {
                write!(f, "invalid value for {property}: expected {expected}")
            }
            Self::Conflict(why) => write!(f, "conflicting settings: {why}"),
            Self::Capacity(why) => write!(f, "resources too small: {why}"),
            Self::Unsupported { property, why } => write!(f, "{property} is not supported yet: {why}"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// Without feature `transactions` (firmware that leaves it out to save flash), a
/// `transactional.id` is refused: its records would be written outside any transaction.
#[cfg(not(feature = "transactions"))]
const TRANSACTIONS_UNSUPPORTED: ConfigError = ConfigError::Unsupported {
    property: "transactional.id",
    why: "this build has no transactions (picokafka feature `transactions`)",
};

/// Producer settings. Field names follow Kafka's properties (`linger.ms` is `linger_ms`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String<BOOTSTRAP_MAX>,
    /// `client.id`: names this producer in every request header, for brokers' logs and quotas.
    pub client_id: String<CLIENT_ID_MAX>,
    /// `acks`: how many replicas must have a batch before its leader answers.
    pub acks: Acks,
    /// `enable.idempotence`: a producer id and per-partition sequence numbers, so that retries
    /// neither duplicate nor reorder records. Left at its default, [`Config::validate`] turns it
    /// off when `acks` or `retries` do not allow it.
    pub enable_idempotence: bool,
    /// `linger.ms`: how long a batch waits for more records before it is sent.
    pub linger_ms: u32,
    /// `batch.size`: most bytes in one batch, header included; at most the size of a batch
    /// buffer. A target, as in the Java client: a record larger than it gets a batch of its own
    /// over several buffers.
    pub batch_size: usize,
    /// `batch.num.messages` (librdkafka's): the most records in one batch; 0 (the default, as
    /// in the Java client) only `batch_size` limits a batch.
    pub batch_num_messages: u32,
    /// `max.request.size`: the most bytes one Produce request carries; at least `batch_size`.
    pub max_request_size: usize,
    /// `compression.type`: the codec batches are compressed with; a batch that does not shrink is
    /// sent uncompressed.
    pub compression: Compression,
    /// `compression.gzip.level` (Java, 1–9) / `compression.zstd.level` (Java, up to 22) /
    /// `compression.level` (librdkafka's, for the codec in use; -1 is its default): the level
    /// batches are compressed at; `None`, the codec's default (gzip 6, zstd 3). Set per codec,
    /// the codec's own wins. LZ4 and snappy have no levels here.
    pub compression_gzip_level: Option<i32>,
    /// See [`compression_gzip_level`](Self::compression_gzip_level).
    pub compression_zstd_level: Option<i32>,
    /// See [`compression_gzip_level`](Self::compression_gzip_level).
    pub compression_level: Option<i32>,
    /// `retries`: how many times a batch is sent again after retriable errors before it fails.
    pub retries: u32,
    /// `retry.backoff.ms`: the wait before retrying a request, doubled for each further attempt
    /// (with ±20% jitter); also the least time from a Metadata answer to the next request.
    pub retry_backoff_ms: u32,
    /// `retry.backoff.max.ms`: the longest retry backoff.
    pub retry_backoff_max_ms: u32,
    /// `request.timeout.ms`: how long a response may take; past it the connection is closed and
    /// its batches are retried. Also the Produce request's `timeout_ms`.
    pub request_timeout_ms: u32,
    /// `delivery.timeout.ms`: how long after its batch was created a record may wait for its
    /// acknowledgement before it fails with
    /// [`DeliveryError::Timeout`](crate::DeliveryError::Timeout).
    pub delivery_timeout_ms: u32,
    /// `metadata.max.age.ms`: how old metadata may grow before it is refreshed anyway.
    pub metadata_max_age_ms: u32,
    /// How long a topic nobody produces to stays in metadata requests.
    pub metadata_max_idle_ms: u32,
    /// `max.in.flight.requests.per.connection`: how many requests (1 to 5) one connection may
    /// have awaiting an answer.
    pub max_in_flight_requests_per_connection: u8,
    /// `reconnect.backoff.ms`: the wait before reconnecting to a broker, doubled for each
    /// consecutive failure (with ±20% jitter).
    pub reconnect_backoff_ms: u32,
    /// `reconnect.backoff.max.ms`: the longest reconnect backoff.
    pub reconnect_backoff_max_ms: u32,
    /// `socket.connection.setup.timeout.ms`: how long a connection may take to open before the
    /// attempt is given up; doubled for each failure in a row (±20%), up to
    /// `socket.connection.setup.timeout.max.ms`, as in the Java client.
    pub socket_connection_setup_timeout_ms: u32,
    /// `socket.connection.setup.timeout.max.ms`: the longest a connection attempt is given.
    pub socket_connection_setup_timeout_max_ms: u32,
    /// `connections.max.idle.ms`: a connection with nothing in flight and no request started or
    /// answered for this long is closed (and opened again when there is work for its broker);
    /// 0 (or `-1`, Java's way) never closes one.
    pub connections_max_idle_ms: u32,
    /// `allow.auto.create.topics`: lets brokers configured for it create the topics Metadata
    /// requests ask about that do not exist yet.
    pub allow_auto_create_topics: bool,
    /// `transactional.id`: makes the producer transactional (`init_transactions`, then
    /// `begin_transaction` / `commit_transaction` around its records). Needs idempotence; refused
    /// in builds without feature `transactions`.
    pub transactional_id: Option<String<TRANSACTIONAL_ID_MAX>>,
    /// `transaction.timeout.ms`: sent in InitProducerId; how long the transaction coordinator lets
    /// a transaction stay idle before it aborts it.
    pub transaction_timeout_ms: u32,
    /// `security.protocol`: TLS is the transport's to add; SASL is the core's.
    pub security_protocol: crate::sasl::SecurityProtocol,
    /// `sasl.*`: the mechanism and credentials, with `security.protocol=SASL_*`.
    pub sasl: crate::sasl::SaslConfig,
    /// Seed of the producer's PRNG (sticky partitions, backoff jitter): same seed, same bytes.
    pub random_seed: u64,
    /// Whether `enable.idempotence` was set explicitly (Java then refuses conflicts instead of
    /// quietly turning idempotence off).
    idempotence_explicit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            client_id: copy_str("picokafka"),
            acks: Acks::All,
            enable_idempotence: true,
            linger_ms: 5,
            batch_size: 16 * 1024,
            batch_num_messages: 0,
            max_request_size: 1024 * 1024,
            compression: Compression::None,
            compression_gzip_level: None,
            compression_zstd_level: None,
            compression_level: None,
            retries: i32::MAX as u32,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1000,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            metadata_max_age_ms: 300_000,
            metadata_max_idle_ms: 300_000,
            max_in_flight_requests_per_connection: 5,
            reconnect_backoff_ms: 50,
            reconnect_backoff_max_ms: 1000,
            socket_connection_setup_timeout_ms: 10_000,
            socket_connection_setup_timeout_max_ms: 30_000,
            connections_max_idle_ms: 540_000,
            allow_auto_create_topics: true,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            security_protocol: crate::sasl::SecurityProtocol::Plaintext,
            sasl: crate::sasl::SaslConfig::default(),
            random_seed: 0x5eed,
            idempotence_explicit: false,
        }
    }
}

fn copy_str<const N: usize>(s: &str) -> String<N> {
    let mut out = String::new();
    // Callers pass constants shorter than N.
    let _ = out.push_str(s);
    out
}

pub(crate) fn parse<T: FromStr>(
    value: &str,
    property: &'static str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::InvalidValue { property, expected })
}

pub(crate) fn parse_bool(value: &str, property: &'static str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ConfigError::InvalidValue { property, expected: "true or false" }),
    }
}

/// LZ4 is lz4_flex's block compressor, which has one speed: a level would be ignored.
const LZ4_LEVEL: ConfigError = ConfigError::Unsupported {
    property: "compression.lz4.level",
    why: "LZ4 here is lz4_flex's fast compressor, which has no levels (the default, 9, is taken)",
};

fn level(
    value: &str,
    property: &'static str,
    range: core::ops::RangeInclusive<i32>,
    expected: &'static str,
) -> Result<i32, ConfigError> {
    let v: i32 = parse(value, property, expected)?;
    if !range.contains(&v) {
        return Err(ConfigError::InvalidValue { property, expected });
    }
    Ok(v)
}

fn bounded<const N: usize>(value: &str, property: &'static str) -> Result<String<N>, ConfigError> {
    let mut s = String::new();
    s.push_str(value.trim())
        .map_err(|_| ConfigError::InvalidValue { property, expected: "a shorter value" })?;
    Ok(s)
}

impl Config {
    /// A configuration with Kafka's defaults and the given bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        c.set("bootstrap.servers", bootstrap_servers)?;
        Ok(c)
    }

    /// Sets a property by its Kafka name (`linger.ms`, `acks`, ...).
    pub fn set(&mut self, property: &str, value: &str) -> Result<(), ConfigError> {
        const MS: &str = "milliseconds (0 to 2147483647)";
        let ms = |p: &'static str| -> Result<u32, ConfigError> {
            let v: u32 = parse(value, p, MS)?;
            if v > i32::MAX as u32 {
                return Err(ConfigError::InvalidValue { property: p, expected: MS });
            }
            Ok(v)
        };
        match property {
            "bootstrap.servers" => {
                let v = bounded(value, "bootstrap.servers")?;
                if crate::producer::bootstrap::parse(&v).next().is_none()
                    || crate::producer::bootstrap::parse(&v).any(|a| a.is_err())
                {
                    return Err(ConfigError::InvalidValue {
                        property: "bootstrap.servers",
                        expected: if v.contains("://") {
                            "host:port[,host:port...], each optionally after PLAINTEXT://, SSL://, SASL_PLAINTEXT:// or SASL_SSL://"
                        } else {
                            "host:port[,host:port...]"
                        },
                    });
                }
                self.bootstrap_servers = v;
            }
            "client.id" => self.client_id = bounded(value, "client.id")?,
            "acks" => {
                self.acks = match value.trim() {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => {
                        return Err(ConfigError::InvalidValue {
                            property: "acks",
                            expected: "0, 1, all or -1",
                        })
                    }
                }
            }
            "enable.idempotence" => {
                self.enable_idempotence = parse_bool(value, "enable.idempotence")?;
                self.idempotence_explicit = true;
            }
            "linger.ms" => self.linger_ms = ms("linger.ms")?,
            "batch.size" => {
                self.batch_size = parse(value, "batch.size", "bytes (at least 100)")?;
                if self.batch_size < 100 {
                    return Err(ConfigError::InvalidValue {
                        property: "batch.size",
                        expected: "bytes (at least 100)",
                    });
                }
            }
            "batch.num.messages" => {
                const RECORDS: &str = "records (1 to 1000000)";
                let v: u32 = parse(value, "batch.num.messages", RECORDS)?;
                if !(1..=1_000_000).contains(&v) {
                    return Err(ConfigError::InvalidValue {
                        property: "batch.num.messages",
                        expected: RECORDS,
                    });
                }
                self.batch_num_messages = v;
            }
            "max.request.size" => {
                self.max_request_size = parse(value, "max.request.size", "bytes (at least 1024)")?;
                if self.max_request_size < 1024 {
                    return Err(ConfigError::InvalidValue {
                        property: "max.request.size",
                        expected: "bytes (at least 1024)",
                    });
                }
            }
            "compression.type" | "compression.codec" => {
                self.compression = match value.trim() {
                    "none" => Compression::None,
                    "lz4" => Compression::Lz4,
                    "gzip" => Compression::Gzip,
                    "snappy" => Compression::Snappy,
                    "zstd" => Compression::Zstd,
                    _ => {
                        return Err(ConfigError::InvalidValue {
                            property: "compression.type",
                            expected: "none, lz4, gzip, snappy or zstd",
                        })
                    }
                }
            }
            "compression.gzip.level" => {
                self.compression_gzip_level = Some(level(value, "compression.gzip.level", 1..=9, "1 to 9")?)
            }
            "compression.zstd.level" => {
                self.compression_zstd_level =
                    Some(level(value, "compression.zstd.level", -131_072..=22, "-131072 to 22")?)
            }
            "compression.level" => {
                let v = level(value, "compression.level", -1..=22, "-1 (the codec's default) to 22")?;
                self.compression_level = (v != -1).then_some(v);
            }
            "compression.lz4.level" => {
                if level(value, "compression.lz4.level", 1..=17, "1 to 17")? != 9 {
                    return Err(LZ4_LEVEL);
                }
            }
            "retries" => self.retries = parse(value, "retries", "a count (0 to 2147483647)")?,
            "retry.backoff.ms" => self.retry_backoff_ms = ms("retry.backoff.ms")?,
            "retry.backoff.max.ms" => self.retry_backoff_max_ms = ms("retry.backoff.max.ms")?,
            "request.timeout.ms" => self.request_timeout_ms = ms("request.timeout.ms")?,
            "delivery.timeout.ms" | "message.timeout.ms" => {
                self.delivery_timeout_ms = ms("delivery.timeout.ms")?
            }
            "metadata.max.age.ms" => self.metadata_max_age_ms = ms("metadata.max.age.ms")?,
            "metadata.max.idle.ms" => self.metadata_max_idle_ms = ms("metadata.max.idle.ms")?,
            "max.in.flight.requests.per.connection" | "max.in.flight" => {
                let v: u8 = parse(value, "max.in.flight.requests.per.connection", "1 to 5")?;
                if !(1..=5).contains(&v) {
                    return Err(ConfigError::InvalidValue {
                        property: "max.in.flight.requests.per.connection",
                        expected: "1 to 5",
                    });
                }
                self.max_in_flight_requests_per_connection = v;
            }
            "reconnect.backoff.ms" => self.reconnect_backoff_ms = ms("reconnect.backoff.ms")?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max_ms = ms("reconnect.backoff.max.ms")?,
            "socket.connection.setup.timeout.ms" => {
                self.socket_connection_setup_timeout_ms = ms("socket.connection.setup.timeout.ms")?
            }
            "socket.connection.setup.timeout.max.ms" => {
                self.socket_connection_setup_timeout_max_ms = ms("socket.connection.setup.timeout.max.ms")?
            }
            "connections.max.idle.ms" => {
                self.connections_max_idle_ms =
                    if value.trim() == "-1" { 0 } else { ms("connections.max.idle.ms")? }
            }
            "allow.auto.create.topics" => {
                self.allow_auto_create_topics = parse_bool(value, "allow.auto.create.topics")?
            }
            #[cfg(not(feature = "transactions"))]
            "transactional.id" => return Err(TRANSACTIONS_UNSUPPORTED),
            #[cfg(feature = "transactions")]
            "transactional.id" => {
                self.transactional_id = if value.is_empty() {
                    None
                } else {
                    Some(String::try_from(value).map_err(|_| ConfigError::InvalidValue {
                        property: "transactional.id",
                        expected: "at most 128 bytes",
                    })?)
                }
            }
            "transaction.timeout.ms" => self.transaction_timeout_ms = ms("transaction.timeout.ms")?,
            "random.seed" => self.random_seed = parse(value, "random.seed", "an unsigned 64-bit integer")?,
            "security.protocol" => self.security_protocol = crate::sasl::set_protocol(value)?,
            _ => {
                if !self.sasl.set(property, value)? {
                    return Err(ConfigError::UnknownProperty);
                }
            }
        }
        Ok(())
    }

    /// `connections.max.idle.ms` as a duration; `None`: never.
    pub(crate) fn connections_max_idle(&self) -> Option<crate::time::Duration> {
        (self.connections_max_idle_ms > 0)
            .then(|| crate::time::Duration::from_millis(u64::from(self.connections_max_idle_ms)))
    }

    /// The codec batches are compressed with, at the level set for it.
    pub fn codec(&self) -> Codec {
        let level = match self.compression {
            Compression::Gzip => self.compression_gzip_level.or(self.compression_level),
            Compression::Zstd => self.compression_zstd_level.or(self.compression_level),
            _ => None,
        };
        Codec { compression: self.compression, level }
    }

    /// Checks the settings against each other, as the Java client does, and settles idempotence:
    /// left at its default, it is turned off by settings it cannot work with; set explicitly, a
    /// conflict is an error.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ConfigError::InvalidValue {
                property: "bootstrap.servers",
                expected: "host:port[,host:port...]",
            });
        }
        #[cfg(not(feature = "transactions"))]
        if self.transactional_id.is_some() {
            return Err(TRANSACTIONS_UNSUPPORTED);
        }
        if self.transactional_id.is_some() && !self.enable_idempotence {
            return Err(ConfigError::Conflict("transactional.id requires enable.idempotence=true"));
        }
        let incompatible = if self.acks != Acks::All {
            Some("enable.idempotence requires acks=all")
        } else if self.retries == 0 {
            Some("enable.idempotence requires retries > 0")
        } else {
            None
        };
        if let (true, Some(why)) = (self.enable_idempotence, incompatible) {
            if self.idempotence_explicit || self.transactional_id.is_some() {
                return Err(ConfigError::Conflict(why));
            }
            self.enable_idempotence = false;
        }
        if u64::from(self.delivery_timeout_ms)
            < u64::from(self.linger_ms) + u64::from(self.request_timeout_ms)
        {
            return Err(ConfigError::Conflict(
                "delivery.timeout.ms must be at least linger.ms + request.timeout.ms",
            ));
        }
        match (self.compression, self.compression_level) {
            (Compression::Lz4, Some(l)) if l != 0 => {
                return Err(ConfigError::Unsupported {
                    property: "compression.level",
                    why: "LZ4 here is lz4_flex's fast compressor, which has no levels",
                })
            }
            (Compression::Snappy, Some(l)) if l != 0 => {
                return Err(ConfigError::InvalidValue {
                    property: "compression.level",
                    expected: "-1 or 0 for snappy",
                })
            }
            (Compression::Gzip, Some(l)) if l > 9 && self.compression_gzip_level.is_none() => {
                return Err(ConfigError::InvalidValue {
                    property: "compression.level",
                    expected: "-1 to 9 for gzip",
                })
            }
            _ => {}
        }
        self.sasl.validate(self.security_protocol)?;
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            self.retry_backoff_max_ms = self.retry_backoff_ms;
        }
        if self.reconnect_backoff_max_ms < self.reconnect_backoff_ms {
            self.reconnect_backoff_max_ms = self.reconnect_backoff_ms;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_and_defaults() {
        let mut c = Config::new("a:9092,b:9093").unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.enable_idempotence);
        c.set("linger.ms", "20").unwrap();
        c.set("compression.type", "lz4").unwrap();
        assert_eq!((c.linger_ms, c.compression), (20, Compression::Lz4));
        assert_eq!(
            c.set("linger.ms", "soon"),
            Err(ConfigError::InvalidValue {
                property: "linger.ms",
                expected: "milliseconds (0 to 2147483647)"
            })
        );
        assert_eq!(c.set("no.such.thing", "1"), Err(ConfigError::UnknownProperty));
        // Without transactions in the build, not silently ignored: refused, naming the property.
        #[cfg(not(feature = "transactions"))]
        {
            let err = c.set("transactional.id", "tx-1").unwrap_err();
            assert!(matches!(err, ConfigError::Unsupported { property: "transactional.id", .. }));
            let mut text = heapless::String::<160>::new();
            core::fmt::write(&mut text, format_args!("{err}")).unwrap();
            assert!(text.starts_with("transactional.id is not supported yet"), "{text}");
        }
        #[cfg(feature = "transactions")]
        {
            c.set("transactional.id", "tx-1").unwrap();
            assert_eq!(c.transactional_id.as_deref(), Some("tx-1"));
            c.set("transactional.id", "").unwrap();
        }
        assert!(c.set("bootstrap.servers", "nohostport").is_err());
        assert!(c.set("bootstrap.servers", "h:99999").is_err());
        c.validate().unwrap();
    }

    #[test]
    fn every_listed_property_is_known() {
        for p in PROPERTIES.iter().chain(SASL_PROPERTIES) {
            let mut c = Config::default();
            assert_ne!(c.set(p, "x"), Err(ConfigError::UnknownProperty), "{p}");
        }
    }

    #[test]
    fn bootstrap_schemes_as_java_reads_them() {
        let mut c = Config::default();
        c.set("bootstrap.servers", "PLAINTEXT://a:1,SASL_SSL://b:2").unwrap();
        let err = c.set("bootstrap.servers", "http://a:1").unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidValue { property: "bootstrap.servers", expected } if expected.contains("SASL_SSL://"))
        );
    }

    #[test]
    fn compression_levels() {
        let mut c = Config::new("a:1").unwrap();
        c.set("compression.type", "gzip").unwrap();
        c.set("compression.level", "4").unwrap();
        assert_eq!(c.codec(), Codec { compression: Compression::Gzip, level: Some(4) });
        c.set("compression.gzip.level", "9").unwrap();
        c.set("compression.zstd.level", "19").unwrap();
        assert_eq!(c.codec().level, Some(9), "the codec's own level wins");
        c.set("compression.type", "zstd").unwrap();
        assert_eq!(c.codec().level, Some(19));
        c.validate().unwrap();
        assert!(c.set("compression.gzip.level", "10").is_err());
        c.set("compression.lz4.level", "9").unwrap();
        assert_eq!(c.set("compression.lz4.level", "12"), Err(LZ4_LEVEL));
        let mut c = Config::new("a:1").unwrap();
        c.set("compression.type", "lz4").unwrap();
        c.set("compression.level", "-1").unwrap();
        c.validate().unwrap();
        assert_eq!(c.codec(), Codec::from(Compression::Lz4));
        c.set("compression.level", "5").unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::Unsupported { property: "compression.level", .. })));
    }

    #[test]
    fn idempotence_gives_way_unless_explicit() {
        let mut c = Config::new("a:1").unwrap();
        c.set("acks", "1").unwrap();
        c.validate().unwrap();
        assert!(!c.enable_idempotence);

        let mut c = Config::new("a:1").unwrap();
        c.set("acks", "1").unwrap();
        c.set("enable.idempotence", "true").unwrap();
        assert_eq!(c.validate(), Err(ConfigError::Conflict("enable.idempotence requires acks=all")));
    }

    #[test]
    fn delivery_timeout_must_cover_linger_and_request() {
        let mut c = Config::new("a:1").unwrap();
        c.set("delivery.timeout.ms", "1000").unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::Conflict(_))));
    }
}
