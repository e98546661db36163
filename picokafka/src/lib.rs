//! `picokafka-core` under the workspace's short name: `cargo build -p picokafka` builds the
//! core, for a host or for `thumbv7em-none-eabihf`. Crates depend on `picokafka-core` itself
//! (imported as `picokafka`); this one only re-exports it.
#![no_std]

pub use picokafka::*;
