//! SASL: the mechanisms a connection can authenticate with, their configuration under Kafka's
//! property names, and (feature `sasl`) the client side of each exchange.
//!
//! The exchange runs right after ApiVersions on every connection, before any other request
//! (SaslHandshake v1, then SaslAuthenticate messages; the producer's `authentication` owner
//! drives it). Credentials live in [`SaslConfig`], whose `Debug` never shows the password.

use core::fmt;

use heapless::String;

use crate::config::ConfigError;
#[cfg(feature = "sasl")]
pub mod scram;

/// Longest SASL user name (or OAUTHBEARER principal) kept (none without feature `sasl`, so
/// firmware without it pays no RAM for credentials).
pub const USERNAME_MAX: usize = if cfg!(feature = "sasl") { 128 } else { 0 };
/// Longest SASL password kept (none without feature `sasl`).
pub const PASSWORD_MAX: usize = if cfg!(feature = "sasl") { 128 } else { 0 };

/// The properties [`SaslConfig`] reads.
pub(crate) const PROPERTIES: [&str; 7] = [
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
    "enable.sasl.oauthbearer.unsecure.jwt",
    "sasl.oauthbearer.config",
];

/// `security.protocol`: how a connection is carried and authenticated. TLS is the transport's
/// (the core only moves plaintext frames); SASL is the core's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SecurityProtocol {
    /// `PLAINTEXT`.
    #[default]
    Plaintext,
    /// `SSL`: TLS, no SASL.
    Ssl,
    /// `SASL_PLAINTEXT`: SASL over plain TCP.
    SaslPlaintext,
    /// `SASL_SSL`: SASL inside TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections authenticate with SASL.
    pub const fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
    /// Whether the transport must wrap connections in TLS.
    pub const fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
    fn parse(value: &str) -> Result<Self, ConfigError> {
        let v = value.trim();
        Ok(if v.eq_ignore_ascii_case("plaintext") {
            Self::Plaintext
        } else if v.eq_ignore_ascii_case("ssl") {
            Self::Ssl
        } else if v.eq_ignore_ascii_case("sasl_plaintext") {
            Self::SaslPlaintext
        } else if v.eq_ignore_ascii_case("sasl_ssl") {
            Self::SaslSsl
        } else {
            return Err(ConfigError::InvalidValue {
                property: "security.protocol",
                expected: "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            });
        })
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616): the password itself, so only over TLS outside a test bed.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628, KIP-255): a token the application supplies.
    OAuthBearer,
}

impl Mechanism {
    /// The mechanism's name, as SaslHandshake carries it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
    fn parse(value: &str) -> Result<Self, ConfigError> {
        let v = value.trim();
        [Self::Plain, Self::ScramSha256, Self::ScramSha512, Self::OAuthBearer]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(v))
            .ok_or(ConfigError::InvalidValue {
                property: "sasl.mechanism",
                expected: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (GSSAPI is not supported)",
            })
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A password: kept, never shown (`Debug` prints `<redacted>`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String<PASSWORD_MAX>);

impl Secret {
    /// A password set directly (what `sasl.password` sets): for applications that know their
    /// credentials at build time and leave [`Config::set`](crate::Config::set)'s parser out of
    /// their flash. Refused if longer than the core keeps.
    pub fn new(password: &str) -> Result<Self, ConfigError> {
        Ok(Self(bounded_raw(password, "sasl.password")?))
    }
    /// The password itself, for the mechanism that sends or hashes it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether no password was set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<none>" } else { "<redacted>" })
    }
}

/// SASL settings, by librdkafka's and Java's property names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslConfig {
    /// `sasl.mechanism` (librdkafka: `sasl.mechanisms`). Required with SASL: Kafka's default,
    /// GSSAPI, is not supported.
    pub mechanism: Option<Mechanism>,
    /// `sasl.username`, or `username` in `sasl.jaas.config`.
    pub username: String<USERNAME_MAX>,
    /// `sasl.password`, or `password` in `sasl.jaas.config`.
    pub password: Secret,
    /// `enable.sasl.oauthbearer.unsecure.jwt`: OAUTHBEARER with an unsigned token the producer
    /// makes itself (test beds; brokers with Kafka's unsecured validator).
    pub unsecure_jwt: bool,
    /// `principal` in `sasl.oauthbearer.config` (or `unsecuredLoginStringClaim_sub` in Java's
    /// `OAuthBearerLoginModule`): the unsecured token's `sub`.
    pub principal: String<USERNAME_MAX>,
    /// `lifeSeconds` in `sasl.oauthbearer.config`: the unsecured token's lifetime (default 3600).
    pub token_lifetime_s: u32,
    /// `sasl.oauthbearer.config` has keys the unsecured token does not take: they are the
    /// application's token source's (a host transport's refresh callback gets the whole value),
    /// and refused with `enable.sasl.oauthbearer.unsecure.jwt`, where nothing would read them.
    pub oauthbearer_config_foreign: bool,
}

impl SaslConfig {
    /// Sets a `sasl.*` property; `Ok(false)` if `property` is not one.
    pub(crate) fn set(&mut self, property: &str, value: &str) -> Result<bool, ConfigError> {
        if !cfg!(feature = "sasl") {
            // Known, and refused by name: the parsers below stay out of builds without SASL.
            return match PROPERTIES.iter().find(|p| **p == property) {
                Some(p) => Err(ConfigError::Unsupported {
                    property: p,
                    why: "this build of picokafka has no SASL (core feature `sasl`)",
                }),
                None => Ok(false),
            };
        }
        match property {
            "sasl.mechanism" | "sasl.mechanisms" => self.mechanism = Some(Mechanism::parse(value)?),
            "sasl.username" => self.username = bounded(value, "sasl.username")?,
            "sasl.password" => self.password = Secret(bounded_raw(value, "sasl.password")?),
            "sasl.jaas.config" => self.set_jaas(value)?,
            "enable.sasl.oauthbearer.unsecure.jwt" => {
                self.unsecure_jwt = crate::config::parse_bool(value, "enable.sasl.oauthbearer.unsecure.jwt")?
            }
            "sasl.oauthbearer.config" => self.set_oauthbearer_config(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Java's `sasl.jaas.config`: `<LoginModule> required key="value" ...;`.
    fn set_jaas(&mut self, value: &str) -> Result<(), ConfigError> {
        const BAD: ConfigError = ConfigError::InvalidValue {
            property: "sasl.jaas.config",
            expected: "<LoginModule class> required username=\"..\" password=\"..\";",
        };
        let text = value.trim().strip_suffix(';').ok_or(BAD)?.trim();
        let (module, rest) = text.split_once(char::is_whitespace).ok_or(BAD)?;
        let rest = rest.trim_start();
        let rest = rest.strip_prefix("required").ok_or(BAD)?;
        let oauth = match module {
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            | "org.apache.kafka.common.security.scram.ScramLoginModule" => false,
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule" => true,
            _ => {
                return Err(ConfigError::Unsupported {
                    property: "sasl.jaas.config",
                    why: "login modules: PlainLoginModule, ScramLoginModule, OAuthBearerLoginModule",
                })
            }
        };
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=').ok_or(BAD)?;
            let after = after.trim_start();
            let (val, next) = if let Some(quoted) = after.strip_prefix('"') {
                quoted.split_once('"').ok_or(BAD)?
            } else {
                after.split_once(char::is_whitespace).unwrap_or((after, ""))
            };
            match (oauth, key.trim()) {
                (false, "username") => self.username = bounded(val, "sasl.jaas.config")?,
                (false, "password") => self.password = Secret(bounded_raw(val, "sasl.jaas.config")?),
                (true, "unsecuredLoginStringClaim_sub") => {
                    self.principal = bounded(val, "sasl.jaas.config")?;
                    self.unsecure_jwt = true;
                }
                _ => {
                    return Err(ConfigError::Unsupported {
                        property: "sasl.jaas.config",
                        why: "options: username and password (Plain, Scram), unsecuredLoginStringClaim_sub (OAuthBearer)",
                    })
                }
            }
            rest = next.trim_start();
        }
        Ok(())
    }

    /// librdkafka's `sasl.oauthbearer.config` for unsecured tokens: `principal=.. [lifeSeconds=..]`.
    fn set_oauthbearer_config(&mut self, value: &str) -> Result<(), ConfigError> {
        for pair in value.split_whitespace() {
            match pair.split_once('=') {
                Some(("principal", v)) => self.principal = bounded(v, "sasl.oauthbearer.config")?,
                Some(("lifeSeconds", v)) => {
                    self.token_lifetime_s =
                        crate::config::parse(v, "sasl.oauthbearer.config", "lifeSeconds=<seconds>")?
                }
                _ => self.oauthbearer_config_foreign = true,
            }
        }
        Ok(())
    }

    /// Whether any SASL property was set (they mean nothing without a SASL protocol).
    fn is_set(&self) -> bool {
        self.mechanism.is_some()
            || !self.username.is_empty()
            || !self.password.is_empty()
            || self.unsecure_jwt
            || !self.principal.is_empty()
    }

    /// Checks the settings against `security.protocol`.
    pub(crate) fn validate(&mut self, protocol: SecurityProtocol) -> Result<(), ConfigError> {
        if !protocol.uses_sasl() {
            if self.is_set() {
                return Err(ConfigError::Conflict(
                    "sasl.* properties need security.protocol=SASL_PLAINTEXT or SASL_SSL",
                ));
            }
            return Ok(());
        }
        if cfg!(not(feature = "sasl")) {
            return Err(ConfigError::Unsupported {
                property: "security.protocol",
                why: "this build of picokafka has no SASL (core feature `sasl`)",
            });
        }
        if self.token_lifetime_s == 0 {
            self.token_lifetime_s = 3600;
        }
        match self.mechanism {
            None => Err(ConfigError::InvalidValue {
                property: "sasl.mechanism",
                expected: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (required with SASL)",
            }),
            Some(Mechanism::OAuthBearer) if self.unsecure_jwt && self.oauthbearer_config_foreign => {
                Err(ConfigError::Unsupported {
                    property: "sasl.oauthbearer.config",
                    why: "an unsecured JWT takes the keys principal and lifeSeconds only",
                })
            }
            Some(Mechanism::OAuthBearer) if self.unsecure_jwt && self.principal.is_empty() => {
                Err(ConfigError::InvalidValue {
                    property: "sasl.oauthbearer.config",
                    expected: "principal=<name> (required for an unsecured JWT)",
                })
            }
            Some(Mechanism::OAuthBearer) => Ok(()),
            Some(_) if self.username.is_empty() || self.password.is_empty() => {
                Err(ConfigError::InvalidValue {
                    property: "sasl.username",
                    expected: "a user name and sasl.password (or sasl.jaas.config)",
                })
            }
            Some(_) => Ok(()),
        }
    }
}

/// Writes an unsecured JWT (RFC 7519 §6: `alg` none, no signature) for `principal`, issued at
/// `unix_s` and valid for `lifetime_s`: what librdkafka's `enable.sasl.oauthbearer.unsecure.jwt`
/// makes and Kafka's unsecured validator accepts.
#[cfg(feature = "sasl")]
pub(crate) fn unsecured_jwt<const N: usize>(
    principal: &str,
    unix_s: i64,
    lifetime_s: u32,
    out: &mut heapless::Vec<u8, N>,
) -> Result<(), ()> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use core::fmt::Write;

    let mut claims: String<{ USERNAME_MAX * 2 + 64 }> = String::new();
    claims.push_str("{\"sub\":\"").map_err(drop)?;
    for c in principal.chars() {
        if c == '"' || c == '\\' {
            claims.push('\\').map_err(drop)?;
        }
        claims.push(c).map_err(drop)?;
    }
    write!(claims, "\",\"iat\":{},\"exp\":{}}}", unix_s, unix_s + i64::from(lifetime_s)).map_err(drop)?;
    // `{"alg":"none"}` in base64url.
    out.clear();
    out.extend_from_slice(b"eyJhbGciOiJub25lIn0.").map_err(drop)?;
    let start = out.len();
    let len = base64::encoded_len(claims.len(), false).ok_or(())?;
    out.resize(start + len, 0).map_err(drop)?;
    URL_SAFE_NO_PAD.encode_slice(claims.as_bytes(), &mut out[start..]).map_err(drop)?;
    out.push(b'.').map_err(drop)
}

pub(crate) fn set_protocol(value: &str) -> Result<SecurityProtocol, ConfigError> {
    SecurityProtocol::parse(value)
}

fn bounded(value: &str, property: &'static str) -> Result<String<USERNAME_MAX>, ConfigError> {
    bounded_raw(value.trim(), property)
}

/// Passwords are kept as given: spaces may be part of them.
fn bounded_raw<const N: usize>(value: &str, property: &'static str) -> Result<String<N>, ConfigError> {
    let mut s = String::new();
    s.push_str(value).map_err(|_| ConfigError::InvalidValue { property, expected: "a shorter value" })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sasl")]
    #[test]
    fn secret_set_directly() {
        assert_eq!(Secret::new("alice-secret").unwrap().expose(), "alice-secret");
        let long = [b'x'; PASSWORD_MAX + 1];
        let long = core::str::from_utf8(&long).unwrap();
        assert!(matches!(
            Secret::new(long),
            Err(ConfigError::InvalidValue { property: "sasl.password", .. })
        ));
    }

    #[cfg(feature = "sasl")]
    #[test]
    fn unsecured_jwt_claims() {
        use base64::Engine;
        let mut out: heapless::Vec<u8, 256> = heapless::Vec::new();
        unsecured_jwt("al\"ice", 1_700_000_000, 3600, &mut out).unwrap();
        let text = core::str::from_utf8(&out).unwrap();
        let mut parts = text.split('.');
        assert_eq!(parts.next(), Some("eyJhbGciOiJub25lIn0"));
        let mut claims = [0u8; 128];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(parts.next().unwrap(), &mut claims)
            .unwrap();
        assert_eq!(
            core::str::from_utf8(&claims[..n]).unwrap(),
            r#"{"sub":"al\"ice","iat":1700000000,"exp":1700003600}"#
        );
        assert_eq!(parts.next(), Some(""), "no signature");
    }

    #[cfg(not(feature = "sasl"))]
    #[test]
    fn without_the_feature_sasl_properties_are_refused_by_name() {
        let err = SaslConfig::default().set("sasl.username", "alice").unwrap_err();
        assert!(matches!(err, ConfigError::Unsupported { property: "sasl.username", .. }), "{err:?}");
        assert_eq!(SaslConfig::default().set("linger.ms", "1"), Ok(false));
    }

    #[cfg(feature = "sasl")]
    #[test]
    fn jaas_config_forms() {
        let mut c = SaslConfig::default();
        c.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="a b=c";"#,
        )
        .unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("alice", "a b=c"));
        let mut c = SaslConfig::default();
        c.set(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"bob\";",
        )
        .unwrap();
        assert!(c.unsecure_jwt);
        assert_eq!(c.principal.as_str(), "bob");
        for bad in [
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"x\"",
            "com.sun.security.auth.module.Krb5LoginModule required;",
            "org.apache.kafka.common.security.scram.ScramLoginModule required tokenauth=\"true\";",
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"x;",
        ] {
            assert!(SaslConfig::default().set("sasl.jaas.config", bad).is_err(), "{bad}");
        }
    }

    #[cfg(feature = "sasl")]
    #[test]
    fn validation_and_secrecy() {
        let mut c = SaslConfig::default();
        c.set("sasl.mechanisms", "scram-sha-512").unwrap();
        c.set("sasl.username", "alice").unwrap();
        assert!(c.clone().validate(SecurityProtocol::Plaintext).is_err(), "sasl.* without SASL");
        assert!(c.clone().validate(SecurityProtocol::SaslSsl).is_err(), "no password");
        c.set("sasl.password", "hunter2").unwrap();
        let debug = std::format!("{c:?}");
        assert!(!debug.contains("hunter2") && debug.contains("<redacted>"), "{debug}");
        let r = c.validate(SecurityProtocol::SaslPlaintext);
        assert_eq!(r.is_ok(), cfg!(feature = "sasl"), "{r:?}");
        assert!(SaslConfig::default().set("sasl.mechanism", "GSSAPI").is_err());
        // Keys an unsecured JWT does not take are the application's token source's; with the
        // unsecured JWT, where nothing reads them, refused.
        let mut o = SaslConfig::default();
        o.set("sasl.mechanism", "OAUTHBEARER").unwrap();
        let set = o.set("sasl.oauthbearer.config", "principal=a scope=b");
        assert_eq!(set.is_ok(), cfg!(feature = "sasl"));
        if cfg!(feature = "sasl") {
            assert!(o.clone().validate(SecurityProtocol::SaslPlaintext).is_ok());
            o.set("enable.sasl.oauthbearer.unsecure.jwt", "true").unwrap();
            assert!(matches!(
                o.validate(SecurityProtocol::SaslPlaintext),
                Err(ConfigError::Unsupported { property: "sasl.oauthbearer.config", .. })
            ));
        }
    }
}
