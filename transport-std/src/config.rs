//! Configuration from Kafka's own property names: set one by one, read from a `.properties` file,
//! or taken from the environment. Unknown or invalid properties are errors that name them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use picokafka::{Config, ConfigError};

use crate::error::Error;

/// Properties only the host transport reads; everything else goes to the core.
const HOST_PROPERTIES: &[&str] = &[
    "max.block.ms",
    "buffer.memory",
    "picokafka.max.partitions",
    "picokafka.max.topics",
    "picokafka.max.brokers",
    "picokafka.response.max.bytes",
];

/// Producer properties, by Kafka name (`bootstrap.servers`, `linger.ms`, `acks`, ...).
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    props: BTreeMap<String, String>,
}

/// The settings a producer is built from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub core: Config,
    /// How long `send` waits for room (a full queue) or for a topic's metadata.
    pub max_block: Duration,
    pub batch_buffers: usize,
    pub max_partitions: usize,
    pub max_topics: usize,
    pub max_brokers: usize,
    pub response_max_bytes: usize,
    /// `security.protocol=SSL`: how to wrap each broker socket.
    pub tls: Option<crate::tls::Tls>,
}

impl ClientConfig {
    /// An empty configuration: every property at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a property. Checked when the producer is created.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.props.insert(key.into(), value.into());
        self
    }

    /// The value set for property `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// Reads a Java `.properties` file: `key=value`, `key: value` or `key value` lines, `#` and
    /// `!` comments, `\` line continuations.
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut c = Self::new();
        c.merge_properties(&text);
        Ok(c)
    }

    /// Adds the properties in `text` (`.properties` syntax).
    pub fn merge_properties(&mut self, text: &str) -> &mut Self {
        let mut logical = String::new();
        for line in text.lines() {
            let line = line.trim_start();
            if logical.is_empty() && (line.starts_with('#') || line.starts_with('!') || line.is_empty()) {
                continue;
            }
            if let Some(continued) = line.strip_suffix('\\') {
                logical.push_str(continued);
                continue;
            }
            logical.push_str(line);
            let entry = std::mem::take(&mut logical);
            let split = entry.find(['=', ':']).or_else(|| entry.find(char::is_whitespace));
            let (key, value) = match split {
                Some(at) => (&entry[..at], &entry[at + 1..]),
                None => (entry.as_str(), ""),
            };
            self.set(key.trim(), value.trim());
        }
        self
    }

    /// Adds properties from environment variables named `PREFIX` + the property in upper case
    /// with dots as underscores: `PICOKAFKA_LINGER_MS=20` sets `linger.ms`.
    pub fn merge_env(&mut self, prefix: &str) -> &mut Self {
        for (name, value) in std::env::vars() {
            if let Some(rest) = name.strip_prefix(prefix) {
                if !rest.is_empty() {
                    self.set(rest.to_ascii_lowercase().replace('_', "."), value);
                }
            }
        }
        self
    }

    pub(crate) fn settings(&self) -> Result<Settings, Error> {
        let mut core = Config::default();
        for (key, value) in &self.props {
            // `security.protocol` is both the core's (SASL) and the TLS module's.
            let tls_only = crate::tls::PROPERTIES.contains(&key.as_str()) && key != "security.protocol";
            if HOST_PROPERTIES.contains(&key.as_str()) || tls_only {
                continue;
            }
            core.set(key, value).map_err(|e| match e {
                ConfigError::UnknownProperty => Error::Config(format!("unknown property: {key}")),
                e => Error::Config(format!("{e} (got {key}={value})")),
            })?;
        }
        core.validate().map_err(|e| Error::Config(e.to_string()))?;
        let number = |key: &str, default: usize| -> Result<usize, Error> {
            match self.props.get(key) {
                None => Ok(default),
                Some(v) => {
                    v.trim().parse().map_err(|_| Error::Config(format!("invalid value for {key}: {v}")))
                }
            }
        };
        let buffer_memory = number("buffer.memory", 32 * 1024 * 1024)?;
        let batch_buffers = (buffer_memory / core.batch_size).clamp(2, 65_000);
        let settings = Settings {
            max_block: Duration::from_millis(number("max.block.ms", 60_000)? as u64),
            batch_buffers,
            max_partitions: number("picokafka.max.partitions", 4096)?.clamp(1, 65_000),
            max_topics: number("picokafka.max.topics", 64)?.clamp(1, 64),
            max_brokers: number("picokafka.max.brokers", 32)?.clamp(1, 255),
            response_max_bytes: number("picokafka.response.max.bytes", 1024 * 1024)?.max(4096),
            tls: crate::tls::Tls::from_properties(|k| self.get(k))?,
            core,
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_syntax() {
        let mut c = ClientConfig::new();
        c.merge_properties(
            "# comment\n! also\nbootstrap.servers = a:1,\\\n   b:2\nlinger.ms: 7\nacks all\n\nclient.id=x=y\n",
        );
        assert_eq!(c.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(c.get("linger.ms"), Some("7"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("client.id"), Some("x=y"));
        let s = c.settings().unwrap();
        assert_eq!(s.core.linger_ms, 7);
    }

    #[test]
    fn errors_name_the_property() {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("lingr.ms", "5");
        assert_eq!(c.settings().unwrap_err().to_string(), "configuration: unknown property: lingr.ms");
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("acks", "most");
        assert!(c.settings().unwrap_err().to_string().contains("acks"));
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "a:1").set("max.block.ms", "soon");
        assert!(c.settings().unwrap_err().to_string().contains("max.block.ms"));
    }
}
