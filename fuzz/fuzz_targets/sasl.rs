//! SASL from a hostile broker: the SaslHandshake and SaslAuthenticate response decoders at every
//! version, and the SCRAM client's parsing of server-first and server-final. Any bytes give a
//! value or an error, never a panic; a server-final made without the password never verifies;
//! a user name of any bytes is escaped so that it cannot end client-first's `n=` field.
//!
//! The first byte picks what is fuzzed (low two bits) and how (the bits above); the rest is the
//! input. For SCRAM the input is server-first, a `\n`, then server-final; bit 3 prefixes
//! server-first with `r=<the client's nonce>` so that the fuzzer reaches the salt, the iteration
//! count and the proof without having to guess the nonce.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picokafka::protocol::sasl::{SaslAuthenticateResponse, SaslHandshakeResponse};
use picokafka::sasl::scram::{Scram, ScramHash, NONCE_BYTES};

/// The client nonce every exchange here uses: 24 zero bytes, `A` × 32 in base64.
const NONCE: [u8; NONCE_BYTES] = [0; NONCE_BYTES];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else { return };
    let how = selector >> 2;
    match selector & 3 {
        0 => {
            if let Ok(r) = SaslHandshakeResponse::decode(input, i16::from(how & 1)) {
                for m in r.mechanisms.iter() {
                    let _ = m.len();
                }
            }
        }
        1 => {
            if let Ok(r) = SaslAuthenticateResponse::decode(input, i16::from(how % 3)) {
                assert!(r.auth_bytes.len() <= input.len());
                let _ = r.error_message.map(str::len);
            }
        }
        2 => {
            let hash = if how & 1 == 0 { ScramHash::Sha256 } else { ScramHash::Sha512 };
            let mut c = Scram::new(hash, "user", &NONCE).expect("a short user name fits");
            let split = input.iter().position(|&b| b == b'\n').unwrap_or(input.len());
            let (first, last) = (&input[..split], input.get(split + 1..).unwrap_or_default());
            let mut server_first = Vec::new();
            if how & 2 != 0 {
                server_first.extend_from_slice(b"r=");
                server_first.extend_from_slice(&c.client_first()[1][b"n=user,r=".len()..]);
            }
            server_first.extend_from_slice(first);
            if c.on_server_first(&server_first, "pencil").is_ok() {
                assert!(c.client_final().starts_with(b"c=biws,r="));
                // Signing needs ServerKey, which needs the password: nothing the fuzzer makes
                // verifies (an `e=` is a refusal, anything else a bad signature or message).
                assert!(c.on_server_final(last).is_err());
            } else {
                assert!(c.on_server_final(last).is_err(), "server-final verified without server-first");
            }
        }
        _ => {
            let name = String::from_utf8_lossy(input);
            if let Ok(c) = Scram::new(ScramHash::Sha256, &name, &NONCE) {
                let [gs2, bare] = c.client_first();
                assert_eq!(gs2, b"n,,");
                let user = bare.strip_prefix(b"n=").expect("client-first-bare starts with n=");
                let end = user.len() - b",r=".len() - 32;
                assert_eq!(&user[end..end + 3], b",r=");
                let user = &user[..end];
                assert!(!user.contains(&b','), "an unescaped ',' in {:?}", String::from_utf8_lossy(bare));
                for (i, _) in user.iter().enumerate().filter(|(_, &b)| b == b'=') {
                    let escape = user.get(i + 1..i + 3);
                    assert!(matches!(escape, Some(b"2C" | b"3D")), "a bare '=' in {:?}", String::from_utf8_lossy(bare));
                }
            }
        }
    }
});
