//! The broker side of SASL for the simulated cluster: PLAIN and SCRAM-SHA-256/512 as Apache
//! Kafka's `SaslServerAuthenticator`, `PlainSaslServer` and `ScramSaslServer` answer them.
//!
//! Written here from RFC 5802 / RFC 7677 and Kafka's sources, independently of picokafka's client
//! (`picokafka::sasl::scram`), so that a mistake in the client's arithmetic cannot hide behind the
//! same mistake in the broker. The server keeps what Kafka keeps for a SCRAM user
//! ([`ScramCredential`]: salt, iterations, StoredKey, ServerKey), never the password, and checks
//! the client's proof against StoredKey.
//!
//! What a connection may send, as Kafka decides it:
//!
//! - first ApiVersions (again while the answer is an error, as after `UNSUPPORTED_VERSION`),
//!   then SaslHandshake v1 (v0's unframed tokens are not simulated), then SaslAuthenticate
//!   messages until the exchange ends; anything else before that closes the connection
//!   ("Unexpected Kafka request of type ... during SASL handshake");
//! - a mechanism the listener does not enable: `UNSUPPORTED_SASL_MECHANISM` with the enabled
//!   ones, then the connection is closed;
//! - wrong credentials, an unknown user, a malformed message or a bad proof:
//!   `SASL_AUTHENTICATION_FAILED` with Kafka's message, then the connection is closed;
//! - once authenticated, every request flows. With a session lifetime
//!   (`connections.max.reauth.ms`), SaslAuthenticate v1+ says how long the session lasts, and
//!   a request other than SaslHandshake after it ended closes the connection (Kafka's
//!   "expired session"); a SaslHandshake on an authenticated connection starts a
//!   re-authentication (KIP-368) with the same mechanism and principal, which starts a new
//!   session.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Mechanism names, as SaslHandshake carries them.
pub const PLAIN: &str = "PLAIN";
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_512: &str = "SCRAM-SHA-512";

/// Kafka's `ScramMechanism` default (and minimum) iteration count.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    /// The hash of mechanism `name`, if it is a SCRAM one.
    pub fn of(name: &str) -> Option<Self> {
        match name {
            SCRAM_SHA_256 => Some(Self::Sha256),
            SCRAM_SHA_512 => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn mechanism(self) -> &'static str {
        match self {
            Self::Sha256 => SCRAM_SHA_256,
            Self::Sha512 => SCRAM_SHA_512,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's `Hi()`: PBKDF2 with HMAC of this hash, one block.
    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out
            }
            Self::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
                out
            }
        }
    }

    /// ServerKey for `password`: what a broker that derived its keys from it signs with.
    pub fn server_key(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let salted = self.salted_password(password, salt, iterations);
        self.hmac(&salted, &[b"Server Key"])
    }
}

/// What Kafka stores for a SCRAM user (`ScramCredential`): the password itself is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// H(ClientKey): checks the client's proof.
    pub stored_key: Vec<u8>,
    /// Signs server-final.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Kafka's `ScramFormatter.generateCredential`.
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = hash.salted_password(password, salt, iterations);
        let client_key = hash.hmac(&salted, &[b"Client Key"]);
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(&salted, &[b"Server Key"]),
        }
    }
}

/// Why a SCRAM step failed: what the broker logs (Kafka answers every one of them with the same
/// public message, see [`failed_message`]).
pub type Reject = String;

/// Kafka's message for a SaslException in the exchange (`SaslServerAuthenticator`).
pub fn failed_message(mechanism: &str) -> String {
    format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")
}

/// A SCRAM exchange after client-first: the server's half of RFC 5802 §3.
#[derive(Debug, Clone)]
pub struct ScramServer {
    pub hash: ScramHash,
    /// The user, with `=2C` / `=3D` decoded.
    pub user: String,
    credential: ScramCredential,
    /// The GS2 header client-first started with (`n,,` or `n,a=<user>,`).
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce.
    nonce: String,
}

/// `ScramFormatter.username`: decodes a saslname.
fn decode_saslname(name: &str) -> Result<String, Reject> {
    let user = name.replace("=2C", ",");
    if user.replace("=3D", "").contains('=') {
        return Err(format!("invalid saslname {name:?}"));
    }
    Ok(user.replace("=3D", "="))
}

fn printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

impl ScramServer {
    /// Reads client-first (`n,[a=<authzid>],n=<user>,r=<nonce>[,<extensions>]`), looks the user
    /// up, and answers server-first (`r=<nonce+server nonce>,s=<salt>,i=<iterations>`).
    pub fn client_first(
        hash: ScramHash,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<(Self, Vec<u8>), Reject> {
        let text = std::str::from_utf8(message).map_err(|_| "client-first is not UTF-8".to_string())?;
        // GS2 header: channel binding flag `n` (Kafka supports none), optional authzid.
        let rest =
            text.strip_prefix("n,").ok_or_else(|| format!("client-first {text:?}: no `n,` GS2 flag"))?;
        let (authzid, bare) =
            rest.split_once(',').ok_or_else(|| format!("client-first {text:?}: no GS2 header end"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(a.strip_prefix("a=").ok_or_else(|| format!("client-first {text:?}: bad authzid"))?),
        };
        let gs2_header = text[..text.len() - bare.len()].to_string();
        let mut fields = bare.split(',');
        let mut field = fields.next().unwrap_or_default();
        if field.starts_with("m=") {
            return Err("client-first has a mandatory extension".to_string());
        }
        let name = field.strip_prefix("n=").ok_or_else(|| format!("client-first {bare:?}: no n="))?;
        field = fields.next().unwrap_or_default();
        let client_nonce = field.strip_prefix("r=").ok_or_else(|| format!("client-first {bare:?}: no r="))?;
        if !printable_nonce(client_nonce) {
            return Err(format!("client-first {bare:?}: bad nonce"));
        }
        // Extensions (`tokenauth=true`, ...) are `key=value`; none changes anything here.
        for ext in fields {
            if !ext.contains('=') {
                return Err(format!("client-first {bare:?}: bad extension {ext:?}"));
            }
        }
        let user = decode_saslname(name)?;
        if user.is_empty() {
            return Err("client-first: empty user name".to_string());
        }
        if let Some(a) = authzid {
            if decode_saslname(a)? != user {
                return Err(format!("authorization id {a:?} is not the user {user:?}"));
            }
        }
        let credential = lookup(&user).ok_or_else(|| format!("unknown user {user:?}"))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first =
            format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        let reply = server_first.clone().into_bytes();
        Ok((
            Self {
                hash,
                user,
                credential,
                gs2_header,
                client_first_bare: bare.to_string(),
                server_first,
                nonce,
            },
            reply,
        ))
    }

    /// Reads client-final (`c=<b64 GS2 header>,r=<nonce>,p=<proof>`), checks the proof against
    /// StoredKey and answers server-final (`v=<ServerSignature>`), signed with `server_key`
    /// (`None`: the credential's own; another one plays a broker that does not know the
    /// password).
    pub fn client_final(&self, message: &[u8], server_key: Option<&[u8]>) -> Result<Vec<u8>, Reject> {
        let text = std::str::from_utf8(message).map_err(|_| "client-final is not UTF-8".to_string())?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or_else(|| format!("client-final {text:?}: no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| format!("client-final {text:?}: no c="))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| format!("client-final {text:?}: no r="))?;
        let binding =
            B64.decode(binding).map_err(|_| format!("channel binding {binding:?} is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(format!("channel binding {binding:?} is not the GS2 header {:?}", self.gs2_header));
        }
        if nonce != self.nonce {
            return Err(format!("nonce {nonce:?} is not the exchange's {:?}", self.nonce));
        }
        let proof = B64.decode(proof).map_err(|_| format!("proof {proof:?} is not base64"))?;
        let auth_message: [&[u8]; 5] = [
            self.client_first_bare.as_bytes(),
            b",",
            self.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = self.hash.hmac(&self.credential.stored_key, &auth_message);
        if proof.len() != client_signature.len() {
            return Err(format!("proof of {} bytes, the hash has {}", proof.len(), client_signature.len()));
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if self.hash.digest(&client_key) != self.credential.stored_key {
            return Err(format!("invalid proof for user {:?}", self.user));
        }
        let key = server_key.unwrap_or(&self.credential.server_key);
        let signature = self.hash.hmac(key, &auth_message);
        Ok(format!("v={}", B64.encode(signature)).into_bytes())
    }
}

/// Kafka's `PlainSaslServer`: `authzid NUL user NUL password`. The user, or the public message
/// and the reason.
pub fn plain(message: &[u8], users: &BTreeMap<String, User>) -> Result<String, (String, Reject)> {
    let text = String::from_utf8_lossy(message);
    let tokens: Vec<&str> = text.split('\0').collect();
    if tokens.len() != 3 {
        return Err((failed_message(PLAIN), format!("expected 3 tokens, got {}", tokens.len())));
    }
    let (authzid, user, password) = (tokens[0], tokens[1], tokens[2]);
    if user.is_empty() {
        return Err(("Authentication failed: username not specified".to_string(), "no user".to_string()));
    }
    if password.is_empty() {
        return Err(("Authentication failed: password not specified".to_string(), "no password".to_string()));
    }
    match users.get(user) {
        Some(u) if u.password == password => {}
        known => {
            let why = if known.is_some() { "wrong password" } else { "unknown user" };
            return Err((
                "Authentication failed: Invalid username or password".to_string(),
                format!("{why} for {user:?}"),
            ));
        }
    }
    if !authzid.is_empty() && authzid != user {
        return Err((
            "Authentication failed: Client requested an authorization id that is different from username"
                .to_string(),
            format!("authzid {authzid:?} for user {user:?}"),
        ));
    }
    Ok(user.to_string())
}

/// A user the brokers know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// For PLAIN (Kafka's JAAS `user_<name>="<password>"`).
    pub password: String,
    /// For SCRAM (Kafka's `kafka-configs --add-config SCRAM-SHA-256=[...]`).
    pub scram: BTreeMap<ScramHash, ScramCredential>,
}

/// One authentication the brokers saw to its end (or to the closing of its connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRecord {
    pub at_ms: u64,
    pub conn: u64,
    pub broker: i32,
    pub mechanism: String,
    /// Empty when the exchange ended before the client named one.
    pub user: String,
    /// A re-authentication of an authenticated connection (KIP-368).
    pub reauth: bool,
    /// `Err`: why the broker refused (its own reason, more than it tells the client).
    pub outcome: Result<(), String>,
}

/// SASL on the simulated brokers' listener (`SASL_PLAINTEXT`): mechanisms, users, sessions.
#[derive(Debug, Clone)]
pub struct SaslServer {
    /// `sasl.enabled.mechanisms`, listed in this order.
    pub mechanisms: Vec<String>,
    /// `connections.max.reauth.ms`: sessions last this long (0: for ever, and SaslAuthenticate
    /// says 0).
    pub session_lifetime_ms: i64,
    /// A broker that derived its ServerKey from this password instead of the user's: it accepts
    /// the proof (its StoredKey is right) but signs server-final wrongly, as one that never
    /// knew the password could only.
    pub impostor_password: Option<String>,
    /// Iterations for credentials added from now on (Kafka: 4096 to 16384).
    pub iterations: u32,
    users: BTreeMap<String, User>,
    log: Vec<AuthRecord>,
    nonces: u64,
}

impl SaslServer {
    /// A listener enabling `mechanisms` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), no users.
    pub fn new(mechanisms: &[&str]) -> Self {
        for m in mechanisms {
            assert!(*m == PLAIN || ScramHash::of(m).is_some(), "the simulation does not implement {m}");
        }
        Self {
            mechanisms: mechanisms.iter().map(|m| m.to_string()).collect(),
            session_lifetime_ms: 0,
            impostor_password: None,
            iterations: DEFAULT_ITERATIONS,
            users: BTreeMap::new(),
            log: Vec::new(),
            nonces: 0,
        }
    }

    /// Adds (or replaces) a user: the password for PLAIN and SCRAM credentials for both hashes,
    /// each with its own salt (fixed per user and hash, so runs repeat).
    pub fn add_user(&mut self, user: &str, password: &str) {
        let mut scram = BTreeMap::new();
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let mut salt = Vec::new();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for round in 0..2u8 {
                for b in user.bytes().chain(hash.mechanism().bytes()).chain([round]) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                }
                salt.extend_from_slice(&h.to_be_bytes());
            }
            scram.insert(hash, ScramCredential::derive(hash, password, &salt, self.iterations));
        }
        self.users.insert(user.to_string(), User { password: password.to_string(), scram });
    }

    /// Forgets a user: its next authentication fails.
    pub fn remove_user(&mut self, user: &str) {
        self.users.remove(user);
    }

    pub fn users(&self) -> &BTreeMap<String, User> {
        &self.users
    }

    /// Every authentication that ended, in order.
    pub fn log(&self) -> &[AuthRecord] {
        &self.log
    }

    pub(crate) fn record(&mut self, record: AuthRecord) {
        self.log.push(record);
    }

    pub(crate) fn enables(&self, mechanism: &str) -> bool {
        self.mechanisms.iter().any(|m| m == mechanism)
    }

    /// A server nonce: printable, no `,`, different for every exchange, the same in every run.
    pub(crate) fn next_nonce(&mut self, conn: u64) -> String {
        self.nonces += 1;
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in self.nonces.to_le_bytes().into_iter().chain(conn.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut bytes = h.to_be_bytes().to_vec();
        bytes.extend_from_slice(&h.rotate_left(29).to_be_bytes());
        bytes.extend_from_slice(&self.nonces.to_be_bytes());
        B64.encode(bytes)
    }

    /// The ServerKey an impostor signs with for `credential`, if this is one.
    pub(crate) fn impostor_key(&self, hash: ScramHash, credential: &ScramCredential) -> Option<Vec<u8>> {
        self.impostor_password.as_deref().map(|p| hash.server_key(p, &credential.salt, credential.iterations))
    }
}

/// Where a connection is in SASL.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnSasl {
    /// An ApiVersions was answered without error: the next request must be SaslHandshake.
    pub versions_done: bool,
    pub session: Option<Session>,
    pub exchange: Option<Exchange>,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub mechanism: String,
    pub user: String,
    /// When the session ends (cluster time), if it does.
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) enum Exchange {
    /// SaslHandshake accepted `mechanism`; the first SaslAuthenticate comes next. `refuse`: a
    /// re-authentication that changes mechanism fails with this message (Kafka's
    /// `REAUTH_BAD_MECHANISM`).
    Handshaken { mechanism: String, refuse: Option<String> },
    /// SCRAM: server-first sent, client-final comes next.
    Scram(Box<ScramServer>),
}
