//! The client side of a run, in its own process: one producer, one scenario, one JSON line.

mod pico;
mod rdk;
mod rsk;

/// Records each client sends one at a time before the measured phase: connections and metadata
/// are set up outside it. The high-water mark check counts them.
pub const WARMUP: u64 = 10;

use crate::settings::{Client, Scenario, Settings};
use crate::workload::ChildReport;

/// Everything a client process is told.
#[derive(Debug, Clone)]
pub struct Job {
    pub client: Client,
    pub scenario: Scenario,
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    /// Records to send.
    pub records: u64,
    /// Records per second (latency scenario).
    pub rate: u64,
    pub settings: Settings,
    /// Tokio worker threads for the Rust clients; 0 = a current-thread runtime.
    pub workers: usize,
}

/// Runs the job and returns the report the parent reads.
pub fn run(job: &Job) -> ChildReport {
    match job.client {
        Client::Picokafka => pico::run(job),
        Client::Rdkafka => rdk::run(job),
        Client::Rskafka => rsk::run(job),
    }
}

/// The tokio runtime the Rust clients run on.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut b = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.enable_all().build().expect("tokio runtime")
}

/// Counts outcomes and keeps the first error.
#[derive(Debug, Default)]
struct Tally {
    acked: u64,
    failed: u64,
    error: Option<String>,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn ok(&mut self) {
        self.acked += 1;
    }
    fn fail(&mut self, e: impl std::fmt::Display) {
        self.failed += 1;
        if self.error.is_none() {
            self.error = Some(e.to_string());
        }
    }
}
