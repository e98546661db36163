//! TLS 1.3 under the Kafka bytes (feature `tls`), with `embedded-tls` — a `no_std`, heap-free
//! TLS 1.3 client kept by the drogue-iot/embassy community, the one embassy-net users reach for.
//!
//! What its verifier (`rustpki`, `embedded_tls::pki::CertVerifier`) checks, and what it does not:
//! - every certificate of the chain the broker sends, from the one the given CA signed down to
//!   the broker's, carries a valid signature of the one above it (ECDSA P-256 / SHA-256 here;
//!   P-384, Ed25519 and RSA are further embedded-tls features, RSA needing a heap), and the
//!   broker proves it holds the leaf's key (CertificateVerify);
//! - the broker's name (the host the core connects to, as the metadata names it) matches the
//!   leaf's subjectAltName DNS names (the CN without SANs), RFC 6125 style;
//! - it does not check validity dates (a board has no wall clock: `NoClock`), basicConstraints,
//!   key usage or name constraints, and it does not match IP addresses: give brokers names.
//!
//! Anything else fails the handshake. There is no mode that accepts any certificate.
//! Cipher suite TLS_AES_128_GCM_SHA256, key exchange secp256r1: what every TLS 1.3 server has.

use core::cell::RefCell;

use embassy_net::tcp::{TcpReader, TcpWriter};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{with_deadline, Instant};
use embedded_io_async::Write as _;
use embedded_tls::pki::CertVerifier;
use embedded_tls::{
    Aes128GcmSha256, Certificate, CryptoProvider, NoClock, TlsConfig, TlsConnection, TlsContext, TlsError,
    TLS_RECORD_OVERHEAD,
};
use picokafka::ConnId;
use rand_core::{CryptoRng, CryptoRngCore, RngCore};

use crate::{now, Ctx, Ended, Lane, CHUNK};

/// The broker's certificate chain as kept during the handshake, at most this many bytes.
const CHAIN_MAX: usize = 4096;

/// Bytes a TLS 1.3 record adds to what it carries: header, content type, AEAD tag.
const RECORD_EXPANSION: usize = 5 + 1 + 16;

/// What TLS needs from the application: the CA the brokers' chains must end in, and a
/// cryptographically secure random source for the key exchange (the board's TRNG).
pub struct Tls<'d> {
    /// The CA certificate, DER (not PEM: `openssl x509 -outform der`).
    pub ca: &'d [u8],
    /// The handshake's randomness: a hardware TRNG on boards, getrandom on hosts; never a
    /// seeded PRNG.
    pub rng: &'d mut (dyn CryptoRngCore + Send),
}

impl core::fmt::Debug for Tls<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tls").field("ca_len", &self.ca.len()).finish_non_exhaustive()
    }
}

/// TLS record memory for `N` connections: `READ` bytes to decrypt a record into (a TLS 1.3
/// server may send records of 16,640 bytes — Kafka's JVM does, and does not negotiate smaller
/// ones — so use [`RECORD_MAX`]) and `WRITE` bytes to encrypt into (at least 1 KiB; 4 KiB
/// carries a produce request in a few records). Put it in a `StaticCell`.
pub struct TlsBuffers<const N: usize, const READ: usize, const WRITE: usize> {
    pub(crate) read: [[u8; READ]; N],
    pub(crate) write: [[u8; WRITE]; N],
}

/// The largest TLS 1.3 record: the read buffer size that takes any server's.
pub const RECORD_MAX: usize = 16_640;

impl<const N: usize, const READ: usize, const WRITE: usize> TlsBuffers<N, READ, WRITE> {
    /// Zeroed record buffers for a `static`.
    pub const fn new() -> Self {
        Self { read: [[0; READ]; N], write: [[0; WRITE]; N] }
    }
}

impl<const N: usize, const READ: usize, const WRITE: usize> Default for TlsBuffers<N, READ, WRITE> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const READ: usize, const WRITE: usize> core::fmt::Debug for TlsBuffers<N, READ, WRITE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsBuffers").field("sockets", &N).field("read", &READ).field("write", &WRITE).finish()
    }
}

/// Why the last TLS handshake or session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TlsFailure {
    /// The chain does not end in the CA given, a signature is wrong, or the certificate names
    /// another host.
    Untrusted,
    /// The broker ended the handshake with this TLS alert (its description code).
    Alert(u8),
    /// The handshake did not finish within `socket.connection.setup.timeout.ms`.
    Timeout,
    /// The broker speaks no TLS 1.3, or what it sent could not be parsed or did not fit.
    Protocol,
    /// The connection failed under TLS.
    Io,
}

impl core::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Untrusted => f.write_str(
                "TLS: the broker's certificate is not trusted (its chain does not end in the CA given, \
                 or it names another host)",
            ),
            Self::Alert(code) => write!(f, "TLS: the broker aborted the handshake (alert {code})"),
            Self::Timeout => f.write_str("TLS: the handshake timed out"),
            Self::Protocol => {
                f.write_str("TLS: the broker's handshake could not be understood (TLS 1.3 only)")
            }
            Self::Io => f.write_str("TLS: the connection failed"),
        }
    }
}

impl core::error::Error for TlsFailure {}

impl TlsFailure {
    /// Whether the broker (or its certificate) was refused, rather than the link failing:
    /// trying again will not help until the configuration changes.
    pub fn is_refusal(self) -> bool {
        matches!(self, Self::Untrusted | Self::Alert(_) | Self::Protocol)
    }

    fn of(e: TlsError) -> Self {
        match e {
            TlsError::InvalidCertificate | TlsError::InvalidSignature | TlsError::InvalidSignatureScheme => {
                Self::Untrusted
            }
            TlsError::HandshakeAborted(_, d) | TlsError::AbortHandshake(_, d) => Self::Alert(d as u8),
            TlsError::Io(_) | TlsError::IoError | TlsError::ConnectionClosed => Self::Io,
            _ => Self::Protocol,
        }
    }
}

/// The runner's TLS part: the CA and the random source, shared by the sockets' drivers.
pub(crate) struct Shared<'d> {
    ca: &'d [u8],
    rng: RefCell<&'d mut (dyn CryptoRngCore + Send)>,
}

impl<'d> Shared<'d> {
    pub(crate) fn new(tls: Tls<'d>) -> Self {
        Self { ca: tls.ca, rng: RefCell::new(tls.rng) }
    }
}

/// The application's random source, borrowed for each call (no call awaits).
struct Rng<'r, 'd>(&'r RefCell<&'d mut (dyn CryptoRngCore + Send)>);

impl RngCore for Rng<'_, '_> {
    fn next_u32(&mut self) -> u32 {
        self.0.borrow_mut().next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.borrow_mut().next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.borrow_mut().fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.borrow_mut().try_fill_bytes(dest)
    }
}
impl CryptoRng for Rng<'_, '_> {}

struct Provider<'r, 'd> {
    rng: &'r RefCell<&'d mut (dyn CryptoRngCore + Send)>,
    verifier: CertVerifier<'r, Aes128GcmSha256, NoClock, CHAIN_MAX>,
}

impl CryptoProvider for Provider<'_, '_> {
    type CipherSuite = Aes128GcmSha256;
    // No client certificate: the default signer is never asked.
    type Signature = &'static [u8];

    fn rng(&mut self) -> impl CryptoRngCore {
        Rng(self.rng)
    }

    fn verifier(&mut self) -> Result<&mut impl embedded_tls::TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }
}

/// The TCP socket under TLS: its two halves, each used by one side of the session at a time
/// (the handshake uses them in turn, then the reader only reads and the writer only writes).
pub(crate) struct Wire<'s> {
    rd: RefCell<TcpReader<'s>>,
    wr: RefCell<TcpWriter<'s>>,
}

impl<'s> Wire<'s> {
    pub(crate) fn new(rd: TcpReader<'s>, wr: TcpWriter<'s>) -> Self {
        Self { rd: RefCell::new(rd), wr: RefCell::new(wr) }
    }
}

/// What embedded-tls reads and writes through: a shared borrow of the [`Wire`], so that its
/// reader and writer halves can each hold one.
#[derive(Clone, Copy)]
pub(crate) struct WireRef<'w, 's>(&'w Wire<'s>);

impl embedded_io_async::ErrorType for WireRef<'_, '_> {
    type Error = embassy_net::tcp::Error;
}

// The borrows are held across the socket's awaits on purpose: only the TLS reader borrows `rd`
// and only the TLS writer `wr`, so neither is ever borrowed twice.
#[allow(clippy::await_holding_refcell_ref)]
impl embedded_io_async::Read for WireRef<'_, '_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.rd.borrow_mut().read(buf).await
    }
}

#[allow(clippy::await_holding_refcell_ref)]
impl embedded_io_async::Write for WireRef<'_, '_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.wr.borrow_mut().write(buf).await
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.wr.borrow_mut().flush().await
    }
}

/// A TLS session on a connected socket: the handshake, then the Kafka bytes both ways, until
/// the core asks for something else or the connection ends. A failed handshake is kept for
/// [`Handle::tls_error`](crate::Handle::tls_error).
#[allow(clippy::too_many_arguments, clippy::await_holding_refcell_ref)]
pub(crate) async fn session<'d, M: RawMutex, const REPORTS: usize>(
    ctx: &Ctx<'_, 'd, M, REPORTS>,
    lane: &Lane,
    conn: ConnId,
    host: &str,
    // The connection attempt's deadline, which the handshake must meet as the TCP connect did.
    deadline: Instant,
    shared: &Shared<'d>,
    wire: &Wire<'_>,
    read: &mut [u8],
    write: &mut [u8],
) -> Ended {
    let room_max = write.len().saturating_sub(TLS_RECORD_OVERHEAD).clamp(1, CHUNK);
    let mut tls: TlsConnection<'_, WireRef<'_, '_>, Aes128GcmSha256> =
        TlsConnection::new(WireRef(wire), read, write);
    let config = TlsConfig::new().with_server_name(host);
    let provider = Provider { rng: &shared.rng, verifier: CertVerifier::new(Certificate::X509(shared.ca)) };
    let started = embassy_time::Instant::now();
    let opened = match with_deadline(deadline, tls.open(TlsContext::new(&config, provider))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(TlsFailure::of(e)),
        Err(_) => Err(TlsFailure::Timeout),
    };
    if let Err(failure) = opened {
        ctx.state.tls_error.lock(|e| e.set(Some(failure)));
        return Ended::Lost;
    }
    if lane.request.borrow().is_some() {
        // The core moved on during the handshake: it knows nothing of this connection.
        return Ended::Asked;
    }
    ctx.state.tls_error.lock(|e| e.set(None));
    ctx.state.tls_handshake_ms.lock(|t| t.set(started.elapsed().as_millis() as u32));
    ctx.with(|p| p.handle_connected(now(), conn));
    ctx.kick.signal(());
    let (mut reader, mut writer) = tls.split();
    // The core reads the decrypted bytes where they are, in the record buffer.
    let rx = async {
        loop {
            match reader.read_buffered().await {
                Ok(mut plain) => ctx.feed(lane, conn, plain.pop_all()),
                Err(_) => return Ended::Lost,
            }
        }
    };
    let tx = async {
        let mut buf = [0u8; CHUNK];
        loop {
            let mut blocked = false;
            let mut wrote_any = false;
            loop {
                // Room for a whole record in the socket's send buffer: the flush never waits.
                let free = wire.wr.borrow().send_capacity() - wire.wr.borrow().send_queue();
                if free <= RECORD_EXPANSION {
                    blocked = true;
                    break;
                }
                let room = (free - RECORD_EXPANSION).min(room_max);
                let Some(len) = ctx.with(|p| p.poll_transmit_to(now(), conn, &mut buf[..room])).flatten()
                else {
                    break;
                };
                let mut at = 0;
                while at < len {
                    match writer.write(&buf[at..len]).await {
                        Ok(n) if n > 0 => at += n,
                        _ => return Ended::Lost,
                    }
                }
                if writer.flush().await.is_err() {
                    return Ended::Lost;
                }
                wrote_any = true;
            }
            // Only news makes a turn of the loop (see the plain session's writer).
            if wrote_any {
                ctx.kick.signal(());
            }
            if blocked {
                // Borrowed only while waiting for room: nothing writes meanwhile.
                let wr = wire.wr.borrow();
                embassy_futures::select::select(lane.wake.wait(), wr.wait_write_ready()).await;
            } else {
                lane.wake.wait().await;
            }
            if lane.request.borrow().is_some() {
                return Ended::Asked;
            }
        }
    };
    match embassy_futures::select::select(rx, tx).await {
        embassy_futures::select::Either::First(e) | embassy_futures::select::Either::Second(e) => e,
    }
}
