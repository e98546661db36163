//! `picokafka-tokio`: the host transport of picokafka.
//!
//! It will drive the `picokafka` core over tokio TCP sockets: connect to every broker the core asks
//! for, move bytes, arm one timer at the core's `poll_timeout()`, and hold no protocol logic. Today
//! it only re-exports the core, built with hardware-accelerated CRC-32C.

pub use picokafka as core;
