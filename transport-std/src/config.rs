//! Configuration from Kafka's own property names: set one by one, read from a `.properties` file,
//! or taken from the environment. Java's and librdkafka's names for the same setting are both
//! taken; settings of theirs that mean nothing here are accepted with a warning; unknown or
//! invalid properties are errors that name them (and where they came from).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use picokafka::{Config, ConfigError};

use crate::error::Error;
use crate::error::{config_error, ConfigErrorKind};

/// Properties only the host transport reads; everything else goes to the core.
const HOST_PROPERTIES: &[&str] = &[
    "max.block.ms",
    "buffer.memory",
    "queue.buffering.max.messages",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "client.dns.lookup",
    "socket.keepalive.enable",
    "broker.address.family",
    "partitioner",
    "picokafka.max.partitions",
    "picokafka.max.topics",
    "picokafka.max.brokers",
    "picokafka.response.max.bytes",
];

/// Other names for the same settings, mostly librdkafka's: (name given, property it sets).
/// `queue.buffering.max.kbytes` is in KiB, `buffer.memory` in bytes; librdkafka's socket buffer
/// sizes say "OS default" with 0, Java's with -1.
const ALIASES: &[(&str, &str)] = &[
    ("metadata.broker.list", "bootstrap.servers"),
    ("queue.buffering.max.ms", "linger.ms"),
    ("message.max.bytes", "max.request.size"),
    ("message.send.max.retries", "retries"),
    ("request.required.acks", "acks"),
    ("topic.metadata.refresh.interval.ms", "metadata.max.age.ms"),
    ("queue.buffering.max.kbytes", "buffer.memory"),
    ("socket.send.buffer.bytes", "send.buffer.bytes"),
    ("socket.receive.buffer.bytes", "receive.buffer.bytes"),
    ("sasl.mechanisms", "sasl.mechanism"),
    ("compression.codec", "compression.type"),
    ("message.timeout.ms", "delivery.timeout.ms"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
];

/// Java client settings that name JVM classes or JVM-side machinery: nothing here reads them.
const JAVA_ONLY: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "interceptor.classes",
    "partitioner.class",
    "metric.reporters",
    "auto.include.jmx.reporter",
    "security.providers",
    "enable.metrics.push",
    "config.providers",
];

/// librdkafka settings about its own machinery (logging, debugging, its version probing), with
/// no meaning here: picokafka always asks ApiVersions and always disables Nagle.
const LIBRDKAFKA_ONLY: &[&str] = &[
    "api.version.request",
    "api.version.request.timeout.ms",
    "api.version.fallback.ms",
    "broker.version.fallback",
    "log_level",
    "log.queue",
    "log.thread.name",
    "log.connection.close",
    "debug",
    "enable.random.seed",
    "socket.nagle.disable",
    "internal.termination.signal",
    "statistics.interval.ms",
];

/// Java client settings picokafka takes only at the value that says what it does:
/// (property, that value, what picokafka does).
const FIXED: &[(&str, &str, &str)] = &[
    ("partitioner.ignore.keys", "false", "keyed records go to murmur2(key) % partitions, as in Java"),
    (
        "partitioner.adaptive.partitioning.enable",
        "false",
        "the sticky partition of records without a key is chosen uniformly among partitions with a leader, not weighed by queue sizes",
    ),
    ("partitioner.availability.timeout.ms", "0", "partitions are not skipped for slow leaders"),
    // librdkafka's.
    ("enable.ssl.certificate.verification", "true", "broker certificates are always verified"),
];

/// Why a setting is ignored, if it is one nothing here reads.
fn ignored(key: &str) -> Option<&'static str> {
    if JAVA_ONLY.contains(&key) || key.starts_with("metrics.") {
        Some("a Java client setting")
    } else if LIBRDKAFKA_ONLY.contains(&key) {
        Some("a librdkafka setting")
    } else {
        None
    }
}

/// The name `key` is read under (its canonical name for an alias).
fn canonical(key: &str) -> &str {
    ALIASES.iter().find(|(alias, _)| *alias == key).map_or(key, |(_, name)| name)
}

/// Every name this configuration takes, for suggestions.
fn known_names() -> impl Iterator<Item = &'static str> {
    picokafka::config::PROPERTIES
        .iter()
        .chain(picokafka::config::SASL_PROPERTIES)
        .chain(HOST_PROPERTIES)
        .chain(crate::tls::PROPERTIES)
        .copied()
        .chain(ALIASES.iter().map(|(a, _)| *a))
        .chain(FIXED.iter().map(|(p, _, _)| *p))
        .chain(JAVA_ONLY.iter().copied())
        .chain(LIBRDKAFKA_ONLY.iter().copied())
}

/// The known name nearest to `key`, if one is near enough to be a typo of it.
fn suggestion(key: &str) -> Option<&'static str> {
    known_names()
        .map(|name| (strsim::damerau_levenshtein(key, name), name))
        .filter(|(d, name)| *d <= 3 && *d * 3 <= name.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Properties whose values are secrets: never printed, in `Debug` or in errors.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "sasl.jaas.config",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
];

/// A property's value as it may be shown.
fn shown<'v>(key: &str, value: &'v str) -> &'v str {
    if SECRET_PROPERTIES.contains(&canonical(key)) {
        "<redacted>"
    } else {
        value
    }
}

/// One property as it was given.
#[derive(Clone)]
struct Entry {
    /// The name it was given under (an alias, perhaps).
    given: String,
    value: String,
    /// Where it came from, for errors: `FILE line N`, `environment variable NAME`.
    origin: Option<String>,
}

impl Entry {
    /// ` (in FILE line N)` or nothing.
    fn where_given(&self) -> String {
        self.origin.as_ref().map(|o| format!(" (in {o})")).unwrap_or_default()
    }
}

/// Producer properties, by Kafka name (`bootstrap.servers`, `linger.ms`, `acks`, ...). An alias
/// (`queue.buffering.max.ms`) sets the property it names (`linger.ms`): the one set last wins.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// By canonical name.
    props: BTreeMap<String, Entry>,
}

/// Shows every property, secrets (`sasl.password`, `sasl.jaas.config`, ...) as `<redacted>`.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.props.iter().map(|(k, e)| (k, shown(k, &e.value)))).finish()
    }
}

/// `client.dns.lookup`: how a broker's name becomes addresses to connect to.
const DNS_LOOKUP_DEFAULT: &str = "use_all_dns_ips";

/// The settings a producer is built from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub core: Config,
    /// How long `send` waits for room (a full queue) or for a topic's metadata.
    pub max_block: Duration,
    pub batch_buffers: usize,
    /// `queue.buffering.max.messages`: the most records accepted and not yet reported.
    pub max_queued_records: Option<usize>,
    pub max_partitions: usize,
    pub max_topics: usize,
    pub max_brokers: usize,
    pub response_max_bytes: usize,
    /// `security.protocol=SSL`: how to wrap each broker socket.
    pub tls: Option<crate::tls::Tls>,
    /// `send.buffer.bytes` / `receive.buffer.bytes` (`SO_SNDBUF` / `SO_RCVBUF`); `None`: the OS's.
    pub socket_buffers: crate::socket::Buffers,
}

impl ClientConfig {
    /// An empty configuration: every property at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a property (surrounding whitespace of the name dropped). Checked when the producer
    /// is created.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.insert(key.into(), value.into(), None);
        self
    }

    fn insert(&mut self, key: String, value: String, origin: Option<String>) {
        let given = key.trim().to_string();
        let name = canonical(&given).to_string();
        let value = match given.as_str() {
            // KiB to bytes; a value that does not parse is reported as given.
            "queue.buffering.max.kbytes" => match value.trim().parse::<u64>() {
                Ok(kib) => kib.saturating_mul(1024).to_string(),
                Err(_) => value,
            },
            "socket.send.buffer.bytes" | "socket.receive.buffer.bytes" if value.trim() == "0" => "-1".into(),
            // -1: no periodic refresh (metadata is still refreshed on errors and disconnects).
            "topic.metadata.refresh.interval.ms" if value.trim() == "-1" => i32::MAX.to_string(),
            _ => value,
        };
        self.props.insert(name, Entry { given, value, origin });
    }

    /// The value set for property `key` (or an alias of it), if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(canonical(key)).map(|e| e.value.as_str())
    }

    /// The settings given that picokafka does not use (Java client classes such as
    /// `key.serializer`, librdkafka's `debug`, ...): accepted, so that a configuration written
    /// for those clients works, and listed here to be shown to the user. Each is also logged
    /// (`log::warn!`) when a producer is made.
    pub fn warnings(&self) -> Vec<String> {
        self.props
            .values()
            .filter_map(|e| {
                ignored(&e.given).map(|what| {
                    format!("{} is not used by picokafka ({what}); ignored{}", e.given, e.where_given())
                })
            })
            .collect()
    }

    /// Reads a `.properties` file as Java's `Properties.load` reads it (UTF-8): the key ends at
    /// the first unescaped `=`, `:` or whitespace; `\` escapes (`\t`, `\n`, `\uXXXX`, `\=`,
    /// `\:`, `\ `, ...); a `\` at the end of a line continues it; `#` and `!` start comments.
    /// Errors name the file and the line.
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(ConfigErrorKind::File, None, format!("cannot read {}: {e}", path.display()))
        })?;
        let mut c = Self::new();
        c.merge_properties_from(&text, &path.display().to_string())?;
        Ok(c)
    }

    /// Adds the properties in `text` (`.properties` syntax, as
    /// [`from_properties_file`](Self::from_properties_file) reads it).
    pub fn merge_properties(&mut self, text: &str) -> Result<&mut Self, Error> {
        self.merge_properties_from(text, "properties")
    }

    fn merge_properties_from(&mut self, text: &str, source: &str) -> Result<&mut Self, Error> {
        let lines = java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8);
        for line in lines {
            let line = line.map_err(|e| {
                let at = e.line_number().map(|n| format!(" line {n}")).unwrap_or_default();
                config_error(
                    ConfigErrorKind::Syntax,
                    None,
                    format!("{source}{at}: {}", e.to_string().split(" (line_number").next().unwrap_or("")),
                )
            })?;
            let n = line.line_number();
            if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
                self.insert(key, value, Some(format!("{source} line {n}")));
            }
        }
        Ok(self)
    }

    /// Adds properties from environment variables named `PREFIX` + the property in upper case
    /// with dots as underscores: with prefix `PICOKAFKA_PROP_` (the command-line tool's),
    /// `PICOKAFKA_PROP_LINGER_MS=20` sets `linger.ms`. Give a prefix of its own, one no other
    /// variable starts with: every variable under it is a property, and an unknown one is an
    /// error that names the variable.
    pub fn merge_env(&mut self, prefix: &str) -> &mut Self {
        for (name, value) in std::env::vars() {
            if let Some(rest) = name.strip_prefix(prefix) {
                if !rest.is_empty() {
                    let key = rest.to_ascii_lowercase().replace('_', ".");
                    self.insert(key, value, Some(format!("environment variable {name}")));
                }
            }
        }
        self
    }

    pub(crate) fn settings(&self) -> Result<Settings, Error> {
        let mut core = Config::default();
        for (key, e) in &self.props {
            if let Some(what) = ignored(&e.given) {
                warn!("{} is not used by picokafka ({what}); ignored{}", e.given, e.where_given());
                continue;
            }
            if let Some((_, only, does)) = FIXED.iter().find(|(p, _, _)| p == key) {
                if !e.value.trim().eq_ignore_ascii_case(only) {
                    return Err(config_error(
                        ConfigErrorKind::Unsupported,
                        Some(&e.given),
                        format!(
                            "{key}={} is not supported: only {only} ({does}){}",
                            e.value.trim(),
                            e.where_given()
                        ),
                    ));
                }
                continue;
            }
            // `security.protocol` is both the core's (SASL) and the TLS module's.
            let tls_only = crate::tls::PROPERTIES.contains(&key.as_str()) && key != "security.protocol";
            if HOST_PROPERTIES.contains(&key.as_str()) || tls_only {
                continue;
            }
            core.set(key, &e.value).map_err(|err| match err {
                ConfigError::UnknownProperty => {
                    let hint =
                        suggestion(&e.given).map(|s| format!(" (did you mean {s}?)")).unwrap_or_default();
                    config_error(
                        ConfigErrorKind::UnknownProperty,
                        Some(&e.given),
                        format!("unknown property: {}{hint}{}", e.given, e.where_given()),
                    )
                }
                err => Error::Config(crate::error::ConfigError::of_core(
                    err,
                    Some(&e.given),
                    format!("{err} (got {}={}){}", e.given, shown(key, &e.value), e.where_given()),
                )),
            })?;
        }
        core.validate()
            .map_err(|e| Error::Config(crate::error::ConfigError::of_core(e, None, e.to_string())))?;
        let invalid = |key: &str, expected: &str| -> Error {
            let e = &self.props[key];
            config_error(
                ConfigErrorKind::InvalidValue,
                Some(&e.given),
                format!(
                    "invalid value for {key}: expected {expected} (got {}={}){}",
                    e.given,
                    e.value,
                    e.where_given()
                ),
            )
        };
        let number = |key: &str, default: usize| -> Result<usize, Error> {
            match self.props.get(key) {
                None => Ok(default),
                Some(e) => e.value.trim().parse().map_err(|_| invalid(key, "a non-negative integer")),
            }
        };
        // Java's `-1` (and librdkafka's `0`, turned into `-1` when set): the OS's size.
        let socket_buffer = |key: &str, default: u32| -> Result<Option<u32>, Error> {
            let v: i64 = match self.props.get(key) {
                None => return Ok(Some(default)),
                Some(e) => {
                    e.value.trim().parse().map_err(|_| invalid(key, "bytes, or -1 for the OS default"))?
                }
            };
            match v {
                -1 => Ok(None),
                1..=0x7fff_ffff => Ok(Some(v as u32)),
                _ => Err(invalid(key, "bytes, or -1 for the OS default")),
            }
        };
        match self.get("client.dns.lookup").map(str::trim) {
            None | Some(DNS_LOOKUP_DEFAULT) => {}
            Some("resolve_canonical_bootstrap_servers_only") => {
                return Err(config_error(ConfigErrorKind::Unsupported, Some("client.dns.lookup"), format!(
                    "client.dns.lookup=resolve_canonical_bootstrap_servers_only is not supported: bootstrap names are not expanded to their canonical names; use use_all_dns_ips{}",
                    self.props["client.dns.lookup"].where_given()
                )))
            }
            Some(_) => return Err(invalid("client.dns.lookup", "use_all_dns_ips")),
        }
        let buffer_memory = number("buffer.memory", 32 * 1024 * 1024)?;
        let batch_buffers = (buffer_memory / core.batch_size).clamp(2, 65_000);
        // 0, as in librdkafka: no limit.
        let max_queued_records = Some(number("queue.buffering.max.messages", 0)?).filter(|&n| n > 0);
        // librdkafka's `partitioner`: its Java-compatible one is what picokafka does; the others
        // (CRC32 of the key, random) would place records where Java's would not.
        match self.get("partitioner").map(str::trim) {
            None | Some("murmur2_random") => {}
            Some(other) => {
                return Err(config_error(ConfigErrorKind::Unsupported, Some("partitioner"), format!(
                    "partitioner={other} is not supported: picokafka partitions as the Java client does (librdkafka's murmur2_random){}",
                    self.props["partitioner"].where_given()
                )))
            }
        }
        let settings = Settings {
            max_block: Duration::from_millis(number("max.block.ms", 60_000)? as u64),
            batch_buffers,
            max_queued_records,
            max_partitions: number("picokafka.max.partitions", 4096)?.clamp(1, 65_000),
            max_topics: number("picokafka.max.topics", 64)?.clamp(1, 64),
            max_brokers: number("picokafka.max.brokers", 32)?.clamp(1, 255),
            response_max_bytes: number("picokafka.response.max.bytes", 1024 * 1024)?.max(4096),
            tls: crate::tls::Tls::from_properties(|k| self.get(k))?,
            socket_buffers: crate::socket::Buffers {
                send: socket_buffer("send.buffer.bytes", 128 * 1024)?,
                receive: socket_buffer("receive.buffer.bytes", 32 * 1024)?,
                keepalive: match self.get("socket.keepalive.enable").map(str::trim) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => return Err(invalid("socket.keepalive.enable", "true or false")),
                },
                family: match self.get("broker.address.family").map(str::trim) {
                    None | Some("any") => crate::socket::Family::Any,
                    Some("v4") => crate::socket::Family::V4,
                    Some("v6") => crate::socket::Family::V6,
                    Some(_) => return Err(invalid("broker.address.family", "any, v4 or v6")),
                },
            },
            core,
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.merge_properties(text).unwrap();
        c
    }

    #[test]
    fn properties_syntax() {
        let c = parsed(
            "# comment\n! also\nbootstrap.servers = a:1,\\\n   b:2\nlinger.ms: 7\nacks all\n\nclient.id=x=y\n",
        );
        assert_eq!(c.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(c.get("linger.ms"), Some("7"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("client.id"), Some("x=y"));
        let s = c.settings().unwrap();
        assert_eq!(s.core.linger_ms, 7);
    }

    /// What `java.util.Properties.load` gives for the same lines (checked against Java 17).
    #[test]
    fn properties_read_as_java_reads_them() {
        let c = parsed(concat!(
            "client.id app:1\n",         // the key ends at whitespace; the value keeps its ':'
            "  a\\:b  =  c d  \n",       // escaped ':' in a key; whitespace around '=' skipped
            "e\\=f:g\n",                 // escaped '=' in a key; ':' separates
            "tab=x\\ty\\n\\u00e9\\\\\n", // \t, \n, \u00e9, \\ in a value
            "sp\\ ace=1\n",              // escaped space in a key
            "cont = one, \\\n    two, \\\n  three\n", // continuations drop the next line's indent
            "# not = a property \\\n",
            "after=comment\n", // a comment does not continue
            "! bang\n",
            "empty\n",
            "odd=a\\\\\n", // an escaped backslash at the end does not continue
            "next=1\n",
        ));
        assert_eq!(c.get("client.id"), Some("app:1"));
        assert_eq!(c.get("a:b"), Some("c d  "));
        assert_eq!(c.get("e=f"), Some("g"));
        assert_eq!(c.get("tab"), Some("x\ty\n\u{e9}\\"));
        assert_eq!(c.get("sp ace"), Some("1"));
        assert_eq!(c.get("cont"), Some("one, two, three"));
        assert_eq!(c.get("after"), Some("comment"));
        assert_eq!(c.get("# not"), None);
        assert_eq!(c.get("empty"), Some(""));
        assert_eq!(c.get("odd"), Some("a\\"));
        assert_eq!(c.get("next"), Some("1"));
    }

    #[test]
    fn bad_escapes_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("pk-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("producer.properties");
        std::fs::write(&path, "linger.ms=5\nclient.id=\\u12\n").unwrap();
        let err = ClientConfig::from_properties_file(&path).unwrap_err().to_string();
        assert!(err.contains("producer.properties line 2") && err.contains("\\uxxxx"), "{err}");
        std::fs::write(&path, "linger.ms=5\n\nlingr.ms=5\n").unwrap();
        let c = ClientConfig::from_properties_file(&path).unwrap();
        let err = c.settings().unwrap_err().to_string();
        assert!(err.contains("lingr.ms (did you mean linger.ms?)") && err.contains("line 3"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_property() {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("lingr.ms", "5");
        assert_eq!(
            c.settings().unwrap_err().to_string(),
            "configuration: unknown property: lingr.ms (did you mean linger.ms?)"
        );
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("no.such.thing.at.all", "5");
        assert_eq!(
            c.settings().unwrap_err().to_string(),
            "configuration: unknown property: no.such.thing.at.all"
        );
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("acks", "most");
        assert!(c.settings().unwrap_err().to_string().contains("acks"));
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("max.block.ms", "soon");
        assert!(c.settings().unwrap_err().to_string().contains("max.block.ms"));
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("queue.buffering.max.ms", "soon");
        let err = c.settings().unwrap_err().to_string();
        assert!(err.contains("linger.ms") && err.contains("queue.buffering.max.ms=soon"), "{err}");
    }

    #[test]
    fn errors_say_which_property_and_what_kind_of_problem() {
        use crate::error::{ConfigError, ConfigErrorKind};
        let kind_of = |props: &[(&str, &str)]| {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", "a:1");
            for (k, v) in props {
                c.set(*k, *v);
            }
            match c.settings().map(|_| ()).unwrap_err() {
                Error::Config(ConfigError { property, kind, core, .. }) => (property, kind, core.is_some()),
                other => panic!("{other:?}"),
            }
        };
        let named = |p: &str| Some(p.to_string());
        assert_eq!(
            kind_of(&[("lingr.ms", "5")]),
            (named("lingr.ms"), ConfigErrorKind::UnknownProperty, false)
        );
        assert_eq!(kind_of(&[("acks", "most")]), (named("acks"), ConfigErrorKind::InvalidValue, true));
        assert_eq!(
            kind_of(&[("queue.buffering.max.ms", "soon")]),
            (named("queue.buffering.max.ms"), ConfigErrorKind::InvalidValue, true),
            "the property as given, not the core's name for it"
        );
        assert_eq!(
            kind_of(&[("partitioner", "random")]),
            (named("partitioner"), ConfigErrorKind::Unsupported, false)
        );
        let mut c = ClientConfig::new();
        let err = c.merge_properties("a = \\u12").map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::Config(ConfigError { kind: ConfigErrorKind::Syntax, .. })), "{err:?}");
    }

    #[test]
    fn librdkafka_names_set_the_same_settings() {
        let mut c = ClientConfig::new();
        c.set("metadata.broker.list", "PLAINTEXT://a:1")
            .set("queue.buffering.max.ms", "20")
            .set("message.max.bytes", "2000000")
            .set("message.send.max.retries", "7")
            .set("request.required.acks", "1")
            .set("topic.metadata.refresh.interval.ms", "60000")
            .set("queue.buffering.max.kbytes", "1024")
            .set("compression.codec", "gzip")
            .set("socket.send.buffer.bytes", "0")
            .set("queue.buffering.max.messages", "1000")
            .set("socket.keepalive.enable", "true")
            .set("broker.address.family", "v4");
        assert_eq!(c.get("buffer.memory"), Some("1048576"));
        let s = c.settings().unwrap();
        assert_eq!(s.core.bootstrap_servers.as_str(), "PLAINTEXT://a:1");
        assert_eq!((s.core.linger_ms, s.core.max_request_size, s.core.retries), (20, 2_000_000, 7));
        assert_eq!(s.core.acks, picokafka::Acks::Leader);
        assert_eq!(s.core.metadata_max_age_ms, 60_000);
        assert_eq!(s.core.compression, picokafka::protocol::record_batch::Compression::Gzip);
        assert_eq!(s.batch_buffers, 1024 * 1024 / s.core.batch_size);
        assert_eq!(s.max_queued_records, Some(1000));
        assert_eq!((s.socket_buffers.send, s.socket_buffers.receive), (None, Some(32 * 1024)));
        assert!(s.socket_buffers.keepalive && s.socket_buffers.family == crate::socket::Family::V4);
        c.set("queue.buffering.max.messages", "0").set("topic.metadata.refresh.interval.ms", "-1");
        let s = c.settings().unwrap();
        assert_eq!((s.max_queued_records, s.core.metadata_max_age_ms), (None, i32::MAX as u32));
        // The name set last wins, whichever it is.
        c.set("linger.ms", "3");
        assert_eq!(c.settings().unwrap().core.linger_ms, 3);
    }

    #[test]
    fn foreign_client_settings_warn_and_unimplemented_values_are_refused() {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1")
            .set("key.serializer", "org.apache.kafka.common.serialization.StringSerializer")
            .set("metrics.num.samples", "2")
            .set("debug", "all");
        c.settings().unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().any(|w| w.starts_with("key.serializer is not used by picokafka")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("debug") && w.contains("librdkafka")), "{w:?}");

        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1")
            .set("client.dns.lookup", "resolve_canonical_bootstrap_servers_only");
        assert!(c.settings().unwrap_err().to_string().contains("not supported"));
        c.set("client.dns.lookup", "use_all_dns_ips");
        c.settings().unwrap();
        c.set("partitioner.ignore.keys", "false").set("partitioner.adaptive.partitioning.enable", "false");
        c.settings().unwrap();
        c.set("partitioner.adaptive.partitioning.enable", "true");
        let err = c.settings().unwrap_err().to_string();
        assert!(
            err.contains("partitioner.adaptive.partitioning.enable=true is not supported: only false"),
            "{err}"
        );
        c.set("partitioner.adaptive.partitioning.enable", "false");
        c.set("partitioner", "murmur2_random");
        c.settings().unwrap();
        c.set("partitioner", "consistent_random");
        let err = c.settings().unwrap_err().to_string();
        assert!(err.contains("partitioner=consistent_random is not supported"), "{err}");
    }

    #[test]
    fn environment_properties_have_their_own_prefix() {
        // A variable name no other test uses; set before any thread of this test reads it.
        std::env::set_var("PKTEST_CONFIG_PROP_LINGER_MS", "11");
        std::env::set_var("PKTEST_CONFIG_CACHE", "/tmp/x");
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").merge_env("PKTEST_CONFIG_PROP_");
        assert_eq!(c.settings().unwrap().core.linger_ms, 11);
        std::env::set_var("PKTEST_CONFIG_PROP_LINGR_MS", "11");
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").merge_env("PKTEST_CONFIG_PROP_");
        let err = c.settings().unwrap_err().to_string();
        assert!(err.contains("environment variable PKTEST_CONFIG_PROP_LINGR_MS"), "{err}");
        std::env::remove_var("PKTEST_CONFIG_PROP_LINGR_MS");
    }
}
