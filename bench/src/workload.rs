//! What every client sends and what it reports back: the records, the pacing of the open loop,
//! latency percentiles, the JSON line a client process prints.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::codec_loop::{value, VALUE_LEN};

/// What a client process reports, as one JSON line on stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChildReport {
    /// Records handed to the client.
    pub sent: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Records that failed.
    pub failed: u64,
    /// First error seen, if any.
    pub error: Option<String>,
    /// From the first send to the last acknowledgement.
    pub elapsed_s: f64,
    /// Enqueue-to-ack latency (latency and sync scenarios), microseconds.
    pub latency: Option<Percentiles>,
    /// CPU (user + sys) the process used in the measured phase alone, from getrusage(SELF).
    pub phase_cpu_s: f64,
    /// The process's own peak RSS (`VmHWM` of /proc/self/status) at the end, bytes. Unlike
    /// wait4's ru_maxrss it does not include the parent's RSS, which Linux carries over into a
    /// child spawned with vfork/posix_spawn.
    #[serde(default)]
    pub vm_hwm: u64,
    /// The client's own counters, where it has them (picokafka's `Metrics`), for diagnosis.
    #[serde(default)]
    pub client_stats: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (microseconds); sorts them.
    pub fn of(samples: &mut [u32]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            f64::from(samples[rank - 1])
        };
        Some(Self { p50_us: at(0.50), p99_us: at(0.99), p999_us: at(0.999), max_us: at(1.0) })
    }
}

/// Microseconds from `then` to now, saturating.
pub fn micros_since(then: Instant) -> u32 {
    then.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

/// The open loop's schedule: record `i` is due at `start + i / rate`. Latency is measured from
/// the due time, not from when the client got round to it, so a client that falls behind pays
/// for it (no coordinated omission).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub rate: u64,
}

impl Schedule {
    pub fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / self.rate.max(1))
    }

    /// How many records are due by now.
    pub fn due_by(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.start).as_nanos();
        (ns * u128::from(self.rate) / 1_000_000_000) as u64 + 1
    }
}

/// CPU seconds (user + sys) this process has used so far.
pub fn self_cpu_s() -> f64 {
    let r = crate::proc::rusage_self();
    r.cpu_s()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_100_bytes_of_json() {
        for i in [0, 1, 12345, u64::from(u32::MAX), 9_999_999_999] {
            let mut v = [0; VALUE_LEN];
            value(i, &mut v);
            let text = std::str::from_utf8(&v).unwrap();
            let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(parsed["status"], "ok", "{text}");
        }
    }

    #[test]
    fn percentiles_by_rank() {
        let mut s: Vec<u32> = (1..=1000).rev().collect();
        let p = Percentiles::of(&mut s).unwrap();
        assert_eq!((p.p50_us, p.p99_us, p.p999_us, p.max_us), (500.0, 990.0, 999.0, 1000.0));
    }
}
