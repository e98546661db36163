//! The secure firmware's parts (features `tls`, `sasl`; `secure` is both): SASL_SSL to the broker.
//!
//! Build-time settings (each read by `option_env!`; build.rs reruns when one changes):
//! - `FIRMWARE_CA`: the CA certificate (PEM or DER file) the broker's chain must end in;
//!   required with `tls`, embedded as DER. There is no way to accept any certificate.
//! - `FIRMWARE_BROKER`: the broker's host name (default `broker.test`), the bootstrap server.
//!   The TLS check matches it (and the names the broker advertises) against the certificate's
//!   DNS names, never an IP address (embedded-tls matches DNS names only): a device knows its
//!   broker by name, as a certificate does.
//! - `FIRMWARE_BROKER_ADDR`: the address of that name (default 10.0.2.100, where QEMU's user
//!   network forwards the guest), the transport's fixed hosts table: connected to by address,
//!   checked by name — what a device does whose broker has a fixed address (a plant's on-site
//!   broker), and what fits the flash budget. With feature `dns` the name goes through DNS
//!   instead (the stack's server is 10.0.2.3, QEMU's relay to the host's resolver), as a device
//!   reaching a cloud service must: 5 KB of flash more.
//! - `FIRMWARE_SASL_MECHANISM`: `SCRAM-SHA-512` (default) or `SCRAM-SHA-256`;
//!   `FIRMWARE_SASL_USERNAME`, `FIRMWARE_SASL_PASSWORD` (default `alice` / `alice-secret`, the
//!   test bed's user). A credential in flash is what a test bed affords; a product keeps it in
//!   provisioned storage, ideally in a secure element.

use aes::cipher::{BlockEncrypt, KeyInit};
#[cfg(feature = "sasl")]
use picokafka::sasl::Mechanism;
use rand_core::{CryptoRng, RngCore};
use static_cell::StaticCell;

use crate::console::print;
use crate::KafkaHandle;

/// The CA (DER) from `FIRMWARE_CA`, converted by build.rs.
#[cfg(feature = "tls")]
pub const CA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ca.der"));

/// The broker's name: bootstrap server and TLS server name.
#[cfg(feature = "tls")]
pub const BROKER: &str = match option_env!("FIRMWARE_BROKER") {
    Some(b) => b,
    None => "broker.test",
};

/// The broker's address, from `FIRMWARE_BROKER_ADDR` (dotted quad).
#[cfg(feature = "tls")]
pub const BROKER_ADDR: embassy_net::Ipv4Address = match option_env!("FIRMWARE_BROKER_ADDR") {
    Some(a) => ipv4(a.as_bytes()),
    None => embassy_net::Ipv4Address::new(10, 0, 2, 100),
};

#[cfg(feature = "tls")]
const fn ipv4(s: &[u8]) -> embassy_net::Ipv4Address {
    let mut octets = [0u8; 4];
    let (mut i, mut n, mut digits) = (0, 0usize, 0);
    while i <= s.len() {
        if i == s.len() || s[i] == b'.' {
            assert!(digits > 0 && n < 4, "FIRMWARE_BROKER_ADDR: not an IPv4 address");
            n += 1;
            digits = 0;
        } else {
            assert!(s[i].is_ascii_digit() && digits < 3, "FIRMWARE_BROKER_ADDR: not an IPv4 address");
            let v = octets[n] as u32 * 10 + (s[i] - b'0') as u32;
            assert!(v <= 255, "FIRMWARE_BROKER_ADDR: not an IPv4 address");
            octets[n] = v as u8;
            digits += 1;
        }
        i += 1;
    }
    assert!(n == 4, "FIRMWARE_BROKER_ADDR: not an IPv4 address");
    embassy_net::Ipv4Address::new(octets[0], octets[1], octets[2], octets[3])
}

/// The transport's hosts table: the broker's name at its fixed address (none with `dns`).
#[cfg(feature = "tls")]
pub const HOSTS: &[(&str, embassy_net::Ipv4Address)] =
    if cfg!(feature = "dns") { &[] } else { &[(BROKER, BROKER_ADDR)] };

#[cfg(feature = "sasl")]
const MECHANISM: Mechanism = match option_env!("FIRMWARE_SASL_MECHANISM") {
    None => Mechanism::ScramSha512,
    Some(m) if eq(m, "SCRAM-SHA-512") => Mechanism::ScramSha512,
    Some(m) if eq(m, "SCRAM-SHA-256") => Mechanism::ScramSha256,
    Some(_) => panic!("FIRMWARE_SASL_MECHANISM: SCRAM-SHA-512 or SCRAM-SHA-256"),
};
#[cfg(feature = "sasl")]
const USERNAME: &str = match option_env!("FIRMWARE_SASL_USERNAME") {
    Some(u) => u,
    None => "alice",
};
#[cfg(feature = "sasl")]
const PASSWORD: &str = match option_env!("FIRMWARE_SASL_PASSWORD") {
    Some(p) => p,
    None => "alice-secret",
};

#[cfg(feature = "sasl")]
const fn eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Sets the security protocol and the SASL login (fields set directly, as the rest of the
/// firmware's configuration: `Config::set`'s parser stays out of flash).
pub fn configure(config: &mut picokafka::Config) -> Result<(), u32> {
    use picokafka::SecurityProtocol;
    config.security_protocol = match (cfg!(feature = "tls"), cfg!(feature = "sasl")) {
        (true, true) => SecurityProtocol::SaslSsl,
        (true, false) => SecurityProtocol::Ssl,
        _ => SecurityProtocol::SaslPlaintext,
    };
    #[cfg(feature = "sasl")]
    {
        config.sasl.mechanism = Some(MECHANISM);
        config.sasl.username.clear();
        let user = config.sasl.username.push_str(USERNAME);
        let password = picokafka::sasl::Secret::new(PASSWORD);
        match (user, password) {
            (Ok(()), Ok(p)) => config.sasl.password = p,
            _ => {
                print("SASL username or password longer than the producer keeps\n");
                return Err(4);
            }
        }
    }
    Ok(())
}

// ---- randomness ------------------------------------------------------------------------------

/// TLS's key exchange and SCRAM's nonces need unpredictable bytes. QEMU's mps2-an386 has no
/// TRNG (the AN386 FPGA image has none; QEMU models none), so this test firmware seeds a CSPRNG
/// with 32 bytes of the host's `/dev/urandom`, read through ARM semihosting (SYS_OPEN /
/// SYS_READ: QEMU opens the file on the host). Never a fixed seed, nor one from the clock or a
/// counter: those are guessable, and a guessed ECDHE key or nonce is a broken session. A real
/// board seeds from its TRNG (STM32 RNG, nRF RNG, ESP32 RNG, RP2040 ROSC with conditioning) —
/// semihosting only exists under a debugger or an emulator — and a device that cannot get
/// entropy must refuse to connect, as this one does.
fn host_seed() -> Option<[u8; 32]> {
    const PATH: &[u8] = b"/dev/urandom\0";
    let mut seed = [0u8; 32];
    // SAFETY: SYS_OPEN reads the NUL-terminated path (length without the NUL) and returns a
    // handle or -1; SYS_READ writes at most `seed.len()` bytes into `seed` and returns the
    // number of bytes *not* read; SYS_CLOSE takes the handle. The buffers outlive the calls.
    unsafe {
        let fd = cortex_m_semihosting::syscall!(
            OPEN,
            PATH.as_ptr(),
            cortex_m_semihosting::nr::open::R_BINARY,
            PATH.len() - 1
        );
        if fd as isize == -1 {
            return None;
        }
        let left = cortex_m_semihosting::syscall!(READ, fd, seed.as_mut_ptr(), seed.len());
        cortex_m_semihosting::syscall!(CLOSE, fd);
        if left != 0 {
            return None;
        }
    }
    // All zeroes: no host answered for real.
    (seed != [0; 32]).then_some(seed)
}

/// CTR_DRBG with AES-128 (NIST SP 800-90A, section 10.2.1, without a derivation function: the
/// seed is full-entropy), on the AES that TLS links anyway: a CSPRNG in a few hundred bytes of
/// flash where rand_chacha's ChaCha20 takes 2.6 KB. No reseeding: a session of this firmware
/// draws far fewer than the 2^48 requests the standard allows per seed. Checked on a host (this
/// code, `aes` 0.8) against NIST CAVP's CTR_DRBG vector [AES-128 no df], PredictionResistance
/// False, COUNT 0: EntropyInput ce50f33d..b249a5fc, two 64-byte requests, the second
/// 6545c052..1f784e5a.
pub struct CtrDrbg {
    key: [u8; 16],
    v: [u8; 16],
}

impl CtrDrbg {
    /// Instantiate: key and V zero, then updated with the 32-byte seed.
    fn new(seed: &[u8; 32]) -> Self {
        let mut d = Self { key: [0; 16], v: [0; 16] };
        d.update(seed);
        d
    }

    /// V + 1, the whole block as one big-endian counter.
    fn next_block(&mut self, aes: &aes::Aes128) -> [u8; 16] {
        for b in self.v.iter_mut().rev() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
        let mut block = self.v.into();
        aes.encrypt_block(&mut block);
        block.into()
    }

    /// CTR_DRBG_Update: (key, V) = the next two blocks, XOR `provided`.
    fn update(&mut self, provided: &[u8; 32]) {
        let aes = aes::Aes128::new(&self.key.into());
        let (a, b) = (self.next_block(&aes), self.next_block(&aes));
        for i in 0..16 {
            self.key[i] = a[i] ^ provided[i];
            self.v[i] = b[i] ^ provided[16 + i];
        }
    }
}

impl RngCore for CtrDrbg {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    /// CTR_DRBG_Generate: blocks of E(key, V + 1), ..., then the key and V move on (backtracking
    /// resistance: the output cannot be recomputed from the state left behind).
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let aes = aes::Aes128::new(&self.key.into());
        for chunk in dest.chunks_mut(16) {
            let block = self.next_block(&aes);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        self.update(&[0; 32]);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for CtrDrbg {}

/// Two generators from one host seed: TLS's (owned by the transport) and SCRAM's (the core's).
pub struct Rngs {
    #[cfg(feature = "tls")]
    pub tls: &'static mut CtrDrbg,
    #[cfg(feature = "sasl")]
    pub sasl: &'static mut CtrDrbg,
}

/// Seeds the generators, once; `Err` if the host gave no entropy.
pub fn rngs() -> Result<Rngs, u32> {
    static TLS: StaticCell<CtrDrbg> = StaticCell::new();
    static SASL: StaticCell<CtrDrbg> = StaticCell::new();
    let Some(seed) = host_seed() else {
        print("no entropy: could not read the host's /dev/urandom through semihosting\n");
        return Err(4);
    };
    let mut root = CtrDrbg::new(&seed);
    #[cfg_attr(not(all(feature = "tls", feature = "sasl")), allow(unused_mut))]
    let mut child = || {
        let mut s = [0u8; 32];
        root.fill_bytes(&mut s);
        CtrDrbg::new(&s)
    };
    #[cfg(not(feature = "tls"))]
    let _ = &TLS;
    #[cfg(not(feature = "sasl"))]
    let _ = &SASL;
    Ok(Rngs {
        #[cfg(feature = "tls")]
        tls: TLS.init(child()),
        #[cfg(feature = "sasl")]
        sasl: SASL.init(child()),
    })
}

// ---- refusals --------------------------------------------------------------------------------

/// Whether the broker (TLS) or its SASL refused us, printing why (and, with `tls`, the longest
/// computation so far: SCRAM's with SASL): trying again cannot help, so the firmware stops.
/// `Err(5)`: TLS refused; `Err(6)`: SASL refused.
pub fn refused(kafka: &KafkaHandle) -> Result<(), u32> {
    let r = refusal(kafka);
    #[cfg(feature = "tls")]
    if r.is_err() {
        crate::longest_poll();
    }
    r
}

fn refusal(kafka: &KafkaHandle) -> Result<(), u32> {
    #[cfg(feature = "tls")]
    if let Some(e) = kafka.tls_error().filter(|e| e.is_refusal()) {
        use picokafka_embassy::TlsFailure;
        print("stopping: TLS refused: ");
        match e {
            TlsFailure::Untrusted => print(
                "the broker's certificate is not trusted (its chain does not end in the CA built in, \
                 or it does not name the broker)\n",
            ),
            TlsFailure::Alert(code) => {
                crate::console::print_kv("the broker aborted the handshake, TLS alert ", u32::from(code))
            }
            _ => print("the broker speaks no TLS 1.3 the firmware understands\n"),
        }
        return Err(5);
    }
    #[cfg(feature = "sasl")]
    {
        let mut code: Result<(), u32> = Ok(());
        kafka.auth_error(|e| {
            use picokafka::AuthFailure;
            print("stopping: SASL ");
            print(match e.mechanism {
                Mechanism::ScramSha256 => "SCRAM-SHA-256",
                Mechanism::ScramSha512 => "SCRAM-SHA-512",
                _ => "",
            });
            print(" authentication as \"");
            print(e.username);
            print("\" failed: ");
            print(match e.failure {
                AuthFailure::Refused => "the broker refused the credentials",
                AuthFailure::MechanismNotEnabled => "the broker does not enable this mechanism",
                AuthFailure::UnsupportedBroker => "the broker does not support SaslHandshake v1",
                AuthFailure::NoRandomSource => "no random source for the SCRAM nonce",
                _ => "the SCRAM exchange failed",
            });
            if !e.broker_message.is_empty() {
                print(" (broker: ");
                print(e.broker_message);
                print(")");
            }
            print("\n");
            code = Err(6);
        });
        code?;
    }
    #[cfg(not(any(feature = "tls", feature = "sasl")))]
    let _ = kafka;
    Ok(())
}
