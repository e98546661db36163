//! Puts memory.x and device.x where the linker (cortex-m-rt's link.x) finds them; with feature
//! `tls`, writes the CA the broker's chain must end in (`FIRMWARE_CA`, PEM or DER) to
//! `$OUT_DIR/ca.der` for src/secure.rs to embed.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for f in ["memory.x", "device.x"] {
        fs::copy(f, out.join(f)).expect("copy linker script");
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-env-changed=FIRMWARE_PEER_PORT");
    if env::var_os("CARGO_FEATURE_TLS").is_some() {
        ca(&out);
    }
    if env::var_os("CARGO_FEATURE_TLS").is_some() || env::var_os("CARGO_FEATURE_SASL").is_some() {
        for v in [
            "FIRMWARE_BROKER",
            "FIRMWARE_BROKER_ADDR",
            "FIRMWARE_SASL_USERNAME",
            "FIRMWARE_SASL_PASSWORD",
            "FIRMWARE_SASL_MECHANISM",
        ] {
            println!("cargo:rerun-if-env-changed={v}");
        }
    }
}

/// The CA certificate from `FIRMWARE_CA` (a file: DER, or PEM whose first CERTIFICATE block is
/// taken) as DER into `out/ca.der`. There is no default: a firmware that trusts a CA nobody
/// chose would be worse than none.
fn ca(out: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=FIRMWARE_CA");
    let Some(path) = env::var_os("FIRMWARE_CA") else {
        panic!("feature `tls`: set FIRMWARE_CA to the CA certificate (PEM or DER) the broker's chain must end in")
    };
    let path = PathBuf::from(path);
    println!("cargo:rerun-if-changed={}", path.display());
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("FIRMWARE_CA={}: {e}", path.display()));
    let der = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => pem_to_der(text)
            .unwrap_or_else(|| panic!("FIRMWARE_CA={}: not a PEM certificate", path.display())),
        _ => bytes,
    };
    // A DER certificate is a SEQUENCE (0x30) with a long-form length.
    assert!(der.len() > 64 && der[0] == 0x30, "FIRMWARE_CA={}: not a DER certificate", path.display());
    fs::write(out.join("ca.der"), der).expect("write ca.der");
}

/// The base64 body of the first `CERTIFICATE` block, decoded.
fn pem_to_der(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body = text.split("-----BEGIN CERTIFICATE-----").nth(1)?.split("-----END CERTIFICATE-----").next()?;
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}
