//! The SASL exchange of the producer's connections: which connection is authenticating, how
//! far it got, the mechanism's state, and why authentication failed for good.
//!
//! One exchange runs at a time, so that one set of buffers (SCRAM's messages, the OAUTHBEARER
//! token) serves every connection; the others wait in `Authenticating` until it is their turn.
//! An exchange is a handful of round trips, so connections to a cluster still come up in
//! milliseconds.
// Without feature `sasl` the exchange is never started (see `Authentication::is_on`).
#![cfg_attr(not(feature = "sasl"), allow(dead_code))]

use heapless::{String, Vec};

use super::connections::RequestKind;
use crate::protocol::ErrorCode;
#[cfg(feature = "sasl")]
use crate::sasl::scram::{Scram, ScramError, ScramHash, NONCE_BYTES};
use crate::sasl::{Mechanism, SaslConfig};
#[cfg(feature = "sasl")]
use crate::time::Duration;
use crate::time::Instant;

/// Longest OAUTHBEARER token kept (JWTs from identity providers run to a few KiB); firmware
/// builds keep less, and builds without feature `sasl` none.
pub const TOKEN_MAX: usize = if !cfg!(feature = "sasl") {
    0
} else if cfg!(feature = "std") {
    8192
} else {
    1024
};
/// The broker's error message and its list of mechanisms, as far as they are kept.
const MESSAGE_MAX: usize = if cfg!(feature = "sasl") { 256 } else { 0 };
const ENABLED_MAX: usize = if cfg!(feature = "sasl") { 128 } else { 0 };

/// Why authentication failed for good (the producer stops: retrying with the same credentials
/// would only fill the broker's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AuthFailure {
    /// The broker refused the credentials (SASL_AUTHENTICATION_FAILED): its message says why.
    Refused,
    /// The broker's listener does not enable the mechanism; the ones it does are listed.
    MechanismNotEnabled,
    /// The broker does not speak SaslHandshake v1 / SaslAuthenticate.
    UnsupportedBroker,
    /// The SCRAM exchange went wrong on our side of it (a server signature that does not
    /// verify, a malformed server message, ...).
    #[cfg(feature = "sasl")]
    Scram(ScramError),
    /// SCRAM needs a nonce from a CSPRNG, and the transport gave the producer none.
    NoRandomSource,
    /// The OAUTHBEARER token is longer than the producer keeps.
    TokenTooLong,
}

/// A failed authentication, as the producer reports it: the mechanism, the user, and the
/// broker's own words. Never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError<'a> {
    /// The mechanism tried.
    pub mechanism: Mechanism,
    /// The user (or OAUTHBEARER principal) it authenticated as.
    pub username: &'a str,
    /// What went wrong.
    pub failure: AuthFailure,
    /// The broker's error message, if it sent one.
    pub broker_message: &'a str,
    /// The mechanisms the broker enables, when it named them.
    pub enabled_mechanisms: &'a str,
}

impl core::fmt::Display for AuthError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SASL {} authentication as {:?} failed: ", self.mechanism, self.username)?;
        match self.failure {
            AuthFailure::Refused => f.write_str("the broker refused the credentials")?,
            AuthFailure::MechanismNotEnabled => write!(
                f,
                "the broker does not enable {} (it enables: {})",
                self.mechanism, self.enabled_mechanisms
            )?,
            AuthFailure::UnsupportedBroker => f.write_str("the broker does not support SaslHandshake v1")?,
            #[cfg(feature = "sasl")]
            AuthFailure::Scram(e) => write!(f, "{e}")?,
            AuthFailure::NoRandomSource => {
                f.write_str("no random source for the SCRAM nonce (set_crypto_rng)")?
            }
            AuthFailure::TokenTooLong => write!(f, "the OAUTHBEARER token exceeds {TOKEN_MAX} bytes")?,
        }
        if !self.broker_message.is_empty() {
            write!(f, " ({})", self.broker_message)?;
        }
        Ok(())
    }
}

/// Fills a buffer from the transport's CSPRNG.
pub(crate) type FillRandom<'r> = &'r mut dyn FnMut(&mut [u8]);

/// How far the running exchange got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// SaslHandshake next (or in flight).
    Handshake,
    /// The first SaslAuthenticate next.
    First,
    /// SCRAM's client-final next.
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    Final,
    /// OAUTHBEARER: the server sent an error challenge; the client acknowledges with `\x01`
    /// and the broker then fails the exchange with its message (RFC 7628 §3.2.3).
    ErrorAck,
}

/// What an answer means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthStep {
    /// Another request of the exchange follows.
    Continue,
    /// Authenticated; the broker ends the session after `lifetime_ms` (0: never).
    Done { lifetime_ms: i64, reauthenticated: bool },
    /// The connection is confused (ILLEGAL_SASL_STATE, ...): close it and try again later.
    Retry(ErrorCode),
    /// Authentication failed for good.
    Fatal(ErrorCode),
}

/// The producer's SASL state.
pub(crate) struct Authentication {
    mechanism: Option<Mechanism>,
    /// The connection whose exchange is under way (slot and generation), and whether it is a
    /// re-authentication (KIP-368) of a connection that was ready.
    active: Option<(usize, u8, bool)>,
    step: Step,
    #[cfg(feature = "sasl")]
    scram: Option<Scram>,
    /// The OAUTHBEARER token: the application's, or an unsecured JWT made here.
    token: Vec<u8, TOKEN_MAX>,
    /// When an unsecured JWT made here must be made again.
    token_renew_at: Option<Instant>,
    failure: Option<AuthFailure>,
    broker_message: String<MESSAGE_MAX>,
    enabled: String<ENABLED_MAX>,
}

impl Authentication {
    pub(crate) fn new(config: &SaslConfig, sasl_on: bool) -> Self {
        Self {
            mechanism: if sasl_on { config.mechanism } else { None },
            active: None,
            step: Step::Handshake,
            #[cfg(feature = "sasl")]
            scram: None,
            token: Vec::new(),
            token_renew_at: None,
            failure: None,
            broker_message: String::new(),
            enabled: String::new(),
        }
    }

    /// Whether connections authenticate before they are ready (never without feature `sasl`:
    /// `Config::validate` refuses SASL there, and the constant lets the handshake code go).
    pub(crate) fn is_on(&self) -> bool {
        cfg!(feature = "sasl") && self.mechanism.is_some()
    }

    /// The mechanism's name, for SaslHandshake.
    pub(crate) fn mechanism_name(&self) -> &'static str {
        self.mechanism.map_or("", Mechanism::name)
    }

    /// The failure that stopped the producer, if authentication did.
    pub(crate) fn error<'c>(&'c self, config: &'c SaslConfig) -> Option<AuthError<'c>> {
        let failure = self.failure?;
        let username = match self.mechanism {
            Some(Mechanism::OAuthBearer) => config.principal.as_str(),
            _ => config.username.as_str(),
        };
        Some(AuthError {
            mechanism: self.mechanism?,
            username,
            failure,
            broker_message: &self.broker_message,
            enabled_mechanisms: &self.enabled,
        })
    }

    /// Replaces the OAUTHBEARER token; the next exchange (a new connection, a
    /// re-authentication) sends it.
    pub(crate) fn set_token(&mut self, token: &str) -> Result<(), AuthFailure> {
        self.token.clear();
        self.token_renew_at = None;
        self.token.extend_from_slice(token.as_bytes()).map_err(|_| AuthFailure::TokenTooLong)
    }

    /// The next request of connection `i`'s exchange, if it may run now: the exchange is
    /// free or already this connection's. `reauth`: the connection was ready.
    /// An OAUTHBEARER exchange waits for the application's token (`unsecure_jwt`: one is made here).
    pub(crate) fn next_request(
        &mut self,
        i: usize,
        generation: u8,
        reauth: bool,
        unsecure_jwt: bool,
    ) -> Option<RequestKind> {
        if self.mechanism == Some(Mechanism::OAuthBearer) && !unsecure_jwt && self.token.is_empty() {
            return None;
        }
        match self.active {
            Some((a, g, _)) if (a, g) == (i, generation) => {}
            Some(_) => return None,
            None => {
                self.active = Some((i, generation, reauth));
                self.step = Step::Handshake;
            }
        }
        Some(match self.step {
            Step::Handshake => RequestKind::SaslHandshake,
            _ => RequestKind::SaslAuthenticate,
        })
    }

    /// Connection `i` went away (or its exchange request was lost): the exchange is free for
    /// the next one.
    pub(crate) fn release(&mut self, i: usize) {
        if self.active.is_some_and(|(a, _, _)| a == i) {
            self.active = None;
            #[cfg(feature = "sasl")]
            {
                self.scram = None;
            }
        }
    }

    /// The SaslHandshake answer. `rng` fills SCRAM's nonce; `unix_s` dates an unsecured JWT.
    pub(crate) fn on_handshake<'m>(
        &mut self,
        config: &SaslConfig,
        error: ErrorCode,
        mut mechanisms: impl Iterator<Item = &'m str>,
        rng: Option<FillRandom<'_>>,
        now: Instant,
        unix_s: i64,
    ) -> AuthStep {
        match error {
            ErrorCode::NoError => {}
            ErrorCode::UnsupportedSaslMechanism => {
                self.enabled.clear();
                if let Some(first) = mechanisms.next() {
                    let _ = self.enabled.push_str(first);
                    for m in mechanisms {
                        let _ = self.enabled.push_str(", ").and_then(|_| self.enabled.push_str(m));
                    }
                }
                return self.fail(AuthFailure::MechanismNotEnabled, error);
            }
            other => return AuthStep::Retry(other),
        }
        let _ = (config, &rng, now, unix_s);
        match self.mechanism {
            #[cfg(feature = "sasl")]
            Some(m @ (Mechanism::ScramSha256 | Mechanism::ScramSha512)) => {
                let Some(fill) = rng else {
                    return self.fail(AuthFailure::NoRandomSource, ErrorCode::SaslAuthenticationFailed);
                };
                let mut nonce = [0u8; NONCE_BYTES];
                fill(&mut nonce);
                let hash = if m == Mechanism::ScramSha256 { ScramHash::Sha256 } else { ScramHash::Sha512 };
                match Scram::new(hash, &config.username, &nonce) {
                    Ok(s) => self.scram = Some(s),
                    Err(e) => return self.fail(AuthFailure::Scram(e), ErrorCode::SaslAuthenticationFailed),
                }
            }
            #[cfg(feature = "sasl")]
            Some(Mechanism::OAuthBearer)
                if config.unsecure_jwt
                    && (self.token.is_empty() || self.token_renew_at.is_some_and(|at| now >= at)) =>
            {
                let life = config.token_lifetime_s;
                if crate::sasl::unsecured_jwt(&config.principal, unix_s, life, &mut self.token).is_err() {
                    return self.fail(AuthFailure::TokenTooLong, ErrorCode::SaslAuthenticationFailed);
                }
                // Made again at 80 % of its life, as librdkafka refreshes tokens.
                self.token_renew_at = Some(now + Duration::from_millis(u64::from(life) * 800));
            }
            _ => {}
        }
        self.step = Step::First;
        AuthStep::Continue
    }

    /// The message the next SaslAuthenticate carries, in pieces.
    pub(crate) fn message<'c>(&'c self, config: &'c SaslConfig) -> [&'c [u8]; 5] {
        const E: &[u8] = b"";
        match (self.mechanism, self.step) {
            // RFC 4616: authzid NUL authcid NUL passwd, with no authzid.
            (Some(Mechanism::Plain), _) => {
                [E, b"\0", config.username.as_bytes(), b"\0", config.password.expose().as_bytes()]
            }
            #[cfg(feature = "sasl")]
            (Some(Mechanism::ScramSha256 | Mechanism::ScramSha512), Step::First) => match &self.scram {
                Some(s) => {
                    let [gs2, bare] = s.client_first();
                    [gs2, bare, E, E, E]
                }
                None => [E; 5],
            },
            #[cfg(feature = "sasl")]
            (Some(Mechanism::ScramSha256 | Mechanism::ScramSha512), _) => {
                [self.scram.as_ref().map_or(E, Scram::client_final), E, E, E, E]
            }
            (Some(Mechanism::OAuthBearer), Step::ErrorAck) => [b"\x01", E, E, E, E],
            // RFC 7628 §3.1: GS2 header, `auth=Bearer <token>`, no extensions.
            (Some(Mechanism::OAuthBearer), _) => [b"n,,\x01auth=Bearer ", &self.token, b"\x01\x01", E, E],
            _ => [E; 5],
        }
    }

    /// A SaslAuthenticate answer.
    pub(crate) fn on_authenticate(
        &mut self,
        config: &SaslConfig,
        error: ErrorCode,
        message: Option<&str>,
        server: &[u8],
        lifetime_ms: i64,
    ) -> AuthStep {
        if error != ErrorCode::NoError {
            self.broker_message.clear();
            if let Some(m) = message {
                // Cut at a character boundary if the broker says more than we keep.
                for c in m.chars() {
                    if self.broker_message.push(c).is_err() {
                        break;
                    }
                }
            }
            return match error {
                ErrorCode::SaslAuthenticationFailed => self.fail(AuthFailure::Refused, error),
                ErrorCode::UnsupportedSaslMechanism => self.fail(AuthFailure::MechanismNotEnabled, error),
                other => AuthStep::Retry(other),
            };
        }
        let _ = config;
        match (self.mechanism, self.step) {
            #[cfg(feature = "sasl")]
            (Some(Mechanism::ScramSha256 | Mechanism::ScramSha512), Step::First) => {
                let Some(s) = self.scram.as_mut() else {
                    return AuthStep::Retry(ErrorCode::IllegalSaslState);
                };
                if let Err(e) = s.on_server_first(server, config.password.expose()) {
                    return self.fail(AuthFailure::Scram(e), ErrorCode::SaslAuthenticationFailed);
                }
                self.step = Step::Final;
                AuthStep::Continue
            }
            #[cfg(feature = "sasl")]
            (Some(Mechanism::ScramSha256 | Mechanism::ScramSha512), _) => {
                let verified = self.scram.as_ref().map(|s| s.on_server_final(server));
                match verified {
                    Some(Ok(())) => self.done(lifetime_ms),
                    Some(Err(e)) => self.fail(AuthFailure::Scram(e), ErrorCode::SaslAuthenticationFailed),
                    None => AuthStep::Retry(ErrorCode::IllegalSaslState),
                }
            }
            (Some(Mechanism::OAuthBearer), Step::First) if !server.is_empty() => {
                // An error challenge (JSON): keep it as the broker's message and acknowledge.
                self.broker_message.clear();
                for &b in server.iter().take(self.broker_message.capacity()) {
                    let _ = self.broker_message.push(if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '?'
                    });
                }
                self.step = Step::ErrorAck;
                AuthStep::Continue
            }
            _ => self.done(lifetime_ms),
        }
    }

    fn done(&mut self, lifetime_ms: i64) -> AuthStep {
        let reauthenticated = self.active.is_some_and(|(_, _, r)| r);
        self.active = None;
        #[cfg(feature = "sasl")]
        {
            self.scram = None;
        }
        AuthStep::Done { lifetime_ms, reauthenticated }
    }

    /// The broker cannot authenticate at all.
    pub(crate) fn fail_unsupported(&mut self) {
        let _ = self.fail(AuthFailure::UnsupportedBroker, ErrorCode::UnsupportedVersion);
    }

    fn fail(&mut self, failure: AuthFailure, code: ErrorCode) -> AuthStep {
        self.failure = Some(failure);
        self.active = None;
        AuthStep::Fatal(code)
    }
}

/// One SASL exchange on one connection, for tools that speak Kafka without the producer (a
/// command-line `metadata` query, say): the producer's own exchange, driven by hand. After
/// ApiVersions, send what [`SaslClient::next_request`] says and feed each answer back until it
/// reports the connection authenticated or failed.
#[cfg(feature = "sasl")]
pub struct SaslClient {
    auth: Authentication,
    config: SaslConfig,
    done: bool,
}

/// The next request of a [`SaslClient`]'s exchange.
#[cfg(feature = "sasl")]
#[derive(Debug)]
pub enum SaslRequest<'a> {
    /// SaslHandshake v1.
    Handshake(crate::protocol::sasl::SaslHandshakeRequest<'static>),
    /// SaslAuthenticate with this message, in pieces: send
    /// `SaslAuthenticateRequest { auth_bytes: &pieces }`.
    Authenticate([&'a [u8]; 5]),
}

/// Where a [`SaslClient`]'s exchange stands after an answer.
#[cfg(feature = "sasl")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslProgress {
    /// Send the next request.
    Continue,
    /// Authenticated; the broker ends the session after this long (0: never).
    Authenticated {
        /// `SessionLifetimeMs`.
        session_lifetime_ms: i64,
    },
    /// Failed: [`SaslClient::error`] says why when it is for good.
    Failed(ErrorCode),
}

#[cfg(feature = "sasl")]
impl core::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SaslClient").field("mechanism", &self.auth.mechanism).finish_non_exhaustive()
    }
}

#[cfg(feature = "sasl")]
impl SaslClient {
    /// An exchange with `config`'s SASL settings; `None` if `security.protocol` has no SASL.
    pub fn new(config: &crate::Config) -> Option<Self> {
        let auth = Authentication::new(&config.sasl, config.security_protocol.uses_sasl());
        auth.is_on().then(|| Self { auth, config: config.sasl.clone(), done: false })
    }

    /// Sets the OAUTHBEARER token to send.
    pub fn set_oauthbearer_token(&mut self, token: &str) -> Result<(), AuthFailure> {
        self.auth.set_token(token)
    }

    /// The next request to send: `None` once authenticated or failed (or, with OAUTHBEARER,
    /// while there is no token).
    pub fn next_request(&mut self) -> Option<SaslRequest<'_>> {
        if self.auth.failure.is_some() || self.done {
            return None;
        }
        match self.auth.next_request(0, 0, false, self.config.unsecure_jwt)? {
            RequestKind::SaslHandshake => {
                Some(SaslRequest::Handshake(crate::protocol::sasl::SaslHandshakeRequest {
                    mechanism: self.auth.mechanism_name(),
                }))
            }
            _ => Some(SaslRequest::Authenticate(self.auth.message(&self.config))),
        }
    }

    /// The SaslHandshake answer. `rng` is a CSPRNG (SCRAM's nonce); `unix_s` the time, for an
    /// unsecured JWT.
    pub fn on_handshake(
        &mut self,
        body: &[u8],
        version: i16,
        rng: &mut dyn rand_core::CryptoRngCore,
        unix_s: i64,
    ) -> Result<SaslProgress, crate::protocol::DecodeError> {
        let resp = crate::protocol::sasl::SaslHandshakeResponse::decode(body, version)?;
        let mut fill = |buf: &mut [u8]| rng.fill_bytes(buf);
        let step = self.auth.on_handshake(
            &self.config,
            resp.error_code,
            resp.mechanisms.iter(),
            Some(&mut fill),
            Instant::ZERO,
            unix_s,
        );
        Ok(self.progress(step))
    }

    /// A SaslAuthenticate answer.
    pub fn on_authenticate(
        &mut self,
        body: &[u8],
        version: i16,
    ) -> Result<SaslProgress, crate::protocol::DecodeError> {
        let r = crate::protocol::sasl::SaslAuthenticateResponse::decode(body, version)?;
        let step = self.auth.on_authenticate(
            &self.config,
            r.error_code,
            r.error_message,
            r.auth_bytes,
            r.session_lifetime_ms,
        );
        Ok(self.progress(step))
    }

    /// Why the exchange failed for good, with the mechanism, the user and the broker's words.
    pub fn error(&self) -> Option<AuthError<'_>> {
        self.auth.error(&self.config)
    }

    fn progress(&mut self, step: AuthStep) -> SaslProgress {
        match step {
            AuthStep::Continue => SaslProgress::Continue,
            AuthStep::Done { lifetime_ms, .. } => {
                self.done = true;
                SaslProgress::Authenticated { session_lifetime_ms: lifetime_ms }
            }
            AuthStep::Retry(code) | AuthStep::Fatal(code) => {
                self.done = true;
                SaslProgress::Failed(code)
            }
        }
    }
}
