//! The client side of SCRAM (RFC 5802) with SHA-256 or SHA-512 (RFC 7677), as Kafka speaks it:
//! client-first, server-first, client-final with the proof, and the server's signature checked,
//! so that a server that does not know the password cannot pass for the broker.
//!
//! No heap: the messages the client must send again or sign later are kept in fixed buffers,
//! and AuthMessage is fed to HMAC in pieces instead of being assembled.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use heapless::{String, Vec};
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, FixedOutput, KeyInit, Output, Update};
use hmac::SimpleHmac;

/// Random bytes in a client nonce (32 characters once in base64, as the Java client's).
pub const NONCE_BYTES: usize = 24;
/// Longest user name kept, escaped (`=` and `,` take three bytes each).
const FIRST_MAX: usize = 300;
/// Longest client-final message: `c=biws,r=` + the whole nonce + `,p=` + a SHA-512 proof.
const FINAL_MAX: usize = 320;
/// Iterations Kafka allows for a SCRAM credential (`ScramMechanism`: 4096 to 16384). More would
/// let a rogue server make the client hash for minutes.
const ITERATIONS: core::ops::RangeInclusive<u32> = 4096..=16384;

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

/// Why a SCRAM exchange failed on the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ScramError {
    /// The user name does not fit the client's buffer.
    UsernameTooLong,
    /// A server message that is not SCRAM: which part is wrong.
    Malformed(&'static str),
    /// The server's nonce does not extend ours (a replayed or foreign exchange).
    NonceMismatch,
    /// The server asked for an iteration count outside Kafka's 4096..=16384.
    Iterations(u32),
    /// The server's nonce or salt is longer than the client keeps.
    TooLong,
    /// The server refused the proof (`e=` in server-final).
    Refused,
    /// The server's signature is wrong: it does not know the password.
    ServerSignature,
}

impl core::fmt::Display for ScramError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UsernameTooLong => f.write_str("user name too long"),
            Self::Malformed(what) => write!(f, "malformed server message ({what})"),
            Self::NonceMismatch => f.write_str("server nonce does not extend the client's"),
            Self::Iterations(n) => write!(f, "server asked for {n} iterations (Kafka allows 4096 to 16384)"),
            Self::TooLong => f.write_str("server nonce or salt too long"),
            Self::Refused => f.write_str("server refused the proof"),
            Self::ServerSignature => {
                f.write_str("server signature does not verify: the broker does not know the password")
            }
        }
    }
}

/// One SCRAM exchange.
#[derive(Clone)]
pub struct Scram {
    hash: ScramHash,
    /// `n=<user>,r=<client nonce>`: sent in client-first and signed in AuthMessage.
    first_bare: String<FIRST_MAX>,
    /// `c=biws,r=<nonce>,p=<proof>`, once server-first has been answered.
    client_final: Vec<u8, FINAL_MAX>,
    server_signature: Vec<u8, 64>,
    /// Length of the client nonce at the end of `first_bare`.
    nonce_len: usize,
}

impl core::fmt::Debug for Scram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scram").field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl Scram {
    /// Starts an exchange as `username` with a client nonce from the caller's CSPRNG.
    pub fn new(hash: ScramHash, username: &str, nonce: &[u8; NONCE_BYTES]) -> Result<Self, ScramError> {
        let mut encoded = [0u8; NONCE_BYTES * 4 / 3];
        // 24 bytes are exactly 32 base64 characters, no padding (and base64 has no `,`).
        let n = B64.encode_slice(nonce, &mut encoded).map_err(|_| ScramError::TooLong)?;
        Self::with_nonce(hash, username, core::str::from_utf8(&encoded[..n]).unwrap_or_default())
    }

    /// Starts an exchange with a nonce already in printable form (the RFCs' vectors use theirs).
    fn with_nonce(hash: ScramHash, username: &str, nonce: &str) -> Result<Self, ScramError> {
        let mut first_bare = String::new();
        let too_long = |_| ScramError::UsernameTooLong;
        first_bare.push_str("n=").map_err(too_long)?;
        for c in username.chars() {
            match c {
                '=' => first_bare.push_str("=3D"),
                ',' => first_bare.push_str("=2C"),
                c => first_bare.push(c),
            }
            .map_err(too_long)?;
        }
        first_bare.push_str(",r=").map_err(too_long)?;
        first_bare.push_str(nonce).map_err(too_long)?;
        let nonce_len = nonce.len();
        Ok(Self { hash, first_bare, client_final: Vec::new(), server_signature: Vec::new(), nonce_len })
    }

    /// client-first, in the two pieces it is sent as: the GS2 header (no channel binding, no
    /// authorization id) and client-first-bare.
    pub fn client_first(&self) -> [&[u8]; 2] {
        [b"n,,", self.first_bare.as_bytes()]
    }

    /// Answers server-first (`r=<nonce>,s=<salt>,i=<iterations>`) with the proof of `password`;
    /// the answer is then [`Scram::client_final`].
    pub fn on_server_first(&mut self, server_first: &[u8], password: &str) -> Result<(), ScramError> {
        let msg = core::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut fields = msg.split(',');
        if msg.starts_with("m=") {
            return Err(ScramError::Malformed("mandatory extension"));
        }
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed("r="))?;
        let salt = fields.next().and_then(|f| f.strip_prefix("s=")).ok_or(ScramError::Malformed("s="))?;
        let iterations =
            fields.next().and_then(|f| f.strip_prefix("i=")).ok_or(ScramError::Malformed("i="))?;
        let client_nonce = &self.first_bare[self.first_bare.len() - self.nonce_len..];
        if !nonce.starts_with(client_nonce) || nonce.len() == client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let iterations: u32 = iterations.parse().map_err(|_| ScramError::Malformed("i="))?;
        if !ITERATIONS.contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let mut salt_bytes = [0u8; 128];
        let salt_len = B64.decode_slice(salt, &mut salt_bytes).map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => ScramError::TooLong,
            base64::DecodeSliceError::DecodeError(_) => ScramError::Malformed("salt is not base64"),
        })?;

        self.client_final.clear();
        let push =
            |v: &mut Vec<u8, FINAL_MAX>, s: &[u8]| v.extend_from_slice(s).map_err(|_| ScramError::TooLong);
        // `biws` is base64 of the GS2 header `n,,`.
        push(&mut self.client_final, b"c=biws,r=")?;
        push(&mut self.client_final, nonce.as_bytes())?;
        let without_proof = self.client_final.len();
        let auth_message: [&[u8]; 5] =
            [self.first_bare.as_bytes(), b",", server_first, b",", &self.client_final[..without_proof]];
        let mut proof = [0u8; 64];
        let mut signature = [0u8; 64];
        let len = match self.hash {
            ScramHash::Sha256 => prove::<sha2::Sha256>(
                password,
                &salt_bytes[..salt_len],
                iterations,
                &auth_message,
                &mut proof,
                &mut signature,
            ),
            ScramHash::Sha512 => prove::<sha2::Sha512>(
                password,
                &salt_bytes[..salt_len],
                iterations,
                &auth_message,
                &mut proof,
                &mut signature,
            ),
        };
        self.server_signature.clear();
        push_sig(&mut self.server_signature, &signature[..len])?;
        push(&mut self.client_final, b",p=")?;
        let mut encoded = [0u8; 88];
        let n = B64.encode_slice(&proof[..len], &mut encoded).map_err(|_| ScramError::TooLong)?;
        push(&mut self.client_final, &encoded[..n])?;
        Ok(())
    }

    /// client-final, with the proof. Empty until server-first was answered.
    pub fn client_final(&self) -> &[u8] {
        &self.client_final
    }

    /// Checks server-final (`v=<signature>`): only a server that knows the password can sign.
    pub fn on_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        if server_final.starts_with(b"e=") {
            return Err(ScramError::Refused);
        }
        let sig = server_final.strip_prefix(b"v=").ok_or(ScramError::Malformed("v="))?;
        let end = sig.iter().position(|&b| b == b',').unwrap_or(sig.len());
        let mut decoded = [0u8; 64];
        let n = B64.decode_slice(&sig[..end], &mut decoded).map_err(|_| ScramError::ServerSignature)?;
        if self.server_signature.is_empty() || decoded[..n] != self.server_signature[..] {
            return Err(ScramError::ServerSignature);
        }
        Ok(())
    }
}

fn push_sig(v: &mut Vec<u8, 64>, s: &[u8]) -> Result<(), ScramError> {
    v.extend_from_slice(s).map_err(|_| ScramError::TooLong)
}

/// SaltedPassword, ClientProof and ServerSignature (RFC 5802 §3); returns the hash's length.
fn prove<D: Digest + BlockSizeUser + Clone + Sync>(
    password: &str,
    salt: &[u8],
    iterations: u32,
    auth_message: &[&[u8]],
    proof: &mut [u8; 64],
    server_signature: &mut [u8; 64],
) -> usize {
    let len = <D as Digest>::output_size();
    let mut salted = [0u8; 64];
    // Only an output longer than the hash is refused; `len` is the hash's.
    let _ = pbkdf2::pbkdf2::<SimpleHmac<D>>(password.as_bytes(), salt, iterations, &mut salted[..len]);
    let salted = &salted[..len];
    let client_key = hmac::<D>(salted, &[b"Client Key"]);
    let stored_key = D::digest(&client_key);
    let client_signature = hmac::<D>(&stored_key, auth_message);
    for (i, p) in proof[..len].iter_mut().enumerate() {
        *p = client_key[i] ^ client_signature[i];
    }
    let server_key = hmac::<D>(salted, &[b"Server Key"]);
    server_signature[..len].copy_from_slice(&hmac::<D>(&server_key, auth_message));
    len
}

fn hmac<D: Digest + BlockSizeUser + Clone>(key: &[u8], message: &[&[u8]]) -> Output<D> {
    // HMAC takes keys of any length (longer ones are hashed first): this cannot fail.
    let mut mac = <SimpleHmac<D> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in message {
        Update::update(&mut mac, part);
    }
    let out = FixedOutput::finalize_fixed(mac);
    let mut o = Output::<D>::default();
    o.copy_from_slice(&out);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce_of(text: &str) -> [u8; NONCE_BYTES] {
        let mut n = [0u8; NONCE_BYTES];
        assert_eq!(B64.decode_slice(text, &mut n).unwrap(), NONCE_BYTES);
        n
    }

    /// RFC 7677 §3: SCRAM-SHA-256, user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c = Scram::with_nonce(ScramHash::Sha256, "user", "rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(c.client_first(), [&b"n,,"[..], b"n=user,r=rOprNGfwEbeRWgbNEkqO"]);
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        c.on_server_first(server_first, "pencil").unwrap();
        assert_eq!(
            c.client_final(),
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.on_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert_eq!(
            c.on_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5="),
            Err(ScramError::ServerSignature)
        );
    }

    /// RFC 5802 §5 is SCRAM-SHA-1, which Kafka does not offer: its vector checks the same
    /// arithmetic (`prove` is generic over the hash) with SHA-1.
    #[test]
    fn rfc5802_sha1_vector() {
        let bare = "n=user,r=fyko+d2lbbFgONRv9qkxdawL";
        let server_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        let without_proof = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let mut salt = [0u8; 32];
        let n = B64.decode_slice("QSXCR+Q6sek8bf92", &mut salt).unwrap();
        let am: [&[u8]; 5] = [bare.as_bytes(), b",", server_first.as_bytes(), b",", without_proof.as_bytes()];
        let (mut proof, mut sig) = ([0u8; 64], [0u8; 64]);
        let len = prove::<sha1::Sha1>("pencil", &salt[..n], 4096, &am, &mut proof, &mut sig);
        let mut out = [0u8; 64];
        let k = B64.encode_slice(&proof[..len], &mut out).unwrap();
        assert_eq!(&out[..k], b"v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
        let k = B64.encode_slice(&sig[..len], &mut out).unwrap();
        assert_eq!(&out[..k], b"rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    /// The whole client against a server simulated with the same arithmetic, including a server
    /// that does not know the password.
    #[test]
    fn full_exchange_and_a_server_that_does_not_know_the_password() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let nonce = nonce_of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
            let mut c = Scram::new(hash, "al=ce,x", &nonce).unwrap();
            let [gs2, bare] = c.client_first();
            assert_eq!(gs2, b"n,,");
            assert_eq!(bare, b"n=al=3Dce=2Cx,r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
            let server_first = b"r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXserver,s=c2FsdHNhbHQ=,i=4096";
            c.on_server_first(server_first, "secret").unwrap();
            let fin = core::str::from_utf8(c.client_final()).unwrap();
            assert!(fin.starts_with("c=biws,r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXserver,p="), "{fin}");
            // The server's view: the same signature over the same AuthMessage.
            let mut v: std::vec::Vec<u8> = b"v=".to_vec();
            let mut enc = [0u8; 88];
            let n = B64.encode_slice(&c.server_signature, &mut enc).unwrap();
            v.extend_from_slice(&enc[..n]);
            c.on_server_final(&v).unwrap();
            // A server that derived its keys from another password signs differently.
            let mut other = Scram::new(hash, "al=ce,x", &nonce).unwrap();
            other.on_server_first(server_first, "not-the-secret").unwrap();
            assert_eq!(other.on_server_final(&v), Err(ScramError::ServerSignature));
            assert_eq!(c.on_server_final(b"e=invalid-proof"), Err(ScramError::Refused));
        }
    }

    #[test]
    fn hostile_server_first_messages() {
        let nonce = nonce_of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
        let mut c = Scram::new(ScramHash::Sha256, "u", &nonce).unwrap();
        let cases: [(&[u8], ScramError); 6] = [
            (b"r=someoneelse,s=c2FsdA==,i=4096", ScramError::NonceMismatch),
            (b"r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYX,s=c2FsdA==,i=4096", ScramError::NonceMismatch),
            (
                b"r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXs,s=c2FsdA==,i=100000000",
                ScramError::Iterations(100_000_000),
            ),
            (
                b"r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXs,s=***,i=4096",
                ScramError::Malformed("salt is not base64"),
            ),
            (b"m=ext,r=x", ScramError::Malformed("mandatory extension")),
            (b"\xff", ScramError::Malformed("not UTF-8")),
        ];
        for (msg, err) in cases {
            assert_eq!(c.on_server_first(msg, "p"), Err(err));
        }
        // Before server-first, no server-final can verify.
        assert_eq!(c.on_server_final(b"v=AAAA"), Err(ScramError::ServerSignature));
    }
}
