//! `picokafka-embassy`: the microcontroller transport of picokafka.
//!
//! It will drive the `picokafka` core over embassy-net `TcpSocket`s, `no_std` and without a heap,
//! shaped like embassy-net itself: resources in a `StaticCell`, a `Runner` whose `run()` never
//! returns, and a cheap handle to send records. Today it only re-exports the core.
#![no_std]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

pub use picokafka as core;
