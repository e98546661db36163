//! Puts memory.x and device.x where the linker (cortex-m-rt's link.x) finds them.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for f in ["memory.x", "device.x"] {
        fs::copy(f, out.join(f)).expect("copy linker script");
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-env-changed=FIRMWARE_PEER_PORT");
}
