//! What a run is: the broker, the client, the scenario and the producer settings every client is
//! given in the same form. The default set and the full matrix.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The producers compared.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// picokafka over its tokio transport (`picokafka_tokio::Producer`).
    Picokafka,
    /// rust-rdkafka's `ThreadedProducer` over librdkafka 2.12.1.
    Rdkafka,
    /// rskafka's `BatchProducer`, one per partition.
    Rskafka,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Self::Picokafka => "picokafka",
            Self::Rdkafka => "rdkafka",
            Self::Rskafka => "rskafka",
        }
    }

    /// Whether the client can run with these settings at all. rskafka always asks for
    /// `acks=all` (its `PartitionClient::produce` hard-codes `-1`) and has no idempotence.
    pub fn supports(self, s: &Settings) -> bool {
        match self {
            Self::Rskafka => s.acks == Acks::All && !s.idempotence,
            _ => true,
        }
    }
}

/// The brokers run against.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Broker {
    /// Tansu (memory storage), restarted for every run.
    Tansu,
    /// librdkafka's mock cluster (one broker), a fresh one for every run.
    Mock,
    /// Apache Kafka 4.4 (one KRaft node, logs on disk), a fresh one for every run.
    Kafka,
}

impl Broker {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tansu => "tansu",
            Self::Mock => "mock",
            Self::Kafka => "kafka",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Closed loop: enqueue as fast as the client accepts, until every record is acknowledged.
    Throughput,
    /// Open loop at a fixed rate; enqueue-to-ack latency of every record.
    Latency,
    /// One record at a time: send, wait for its acknowledgement, send the next.
    Sync,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::Latency => "latency",
            Self::Sync => "sync",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Lz4,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    #[value(name = "1")]
    #[serde(rename = "1")]
    One,
    All,
}

impl Acks {
    pub fn property(self) -> &'static str {
        match self {
            Self::One => "1",
            Self::All => "all",
        }
    }
}

/// The producer settings, aligned across clients (see each client for the property names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Settings {
    pub linger_ms: u32,
    pub batch_size: usize,
    pub compression: Codec,
    pub acks: Acks,
    pub idempotence: bool,
    /// The memory cap given to each client for records waiting to be acknowledged: picokafka's
    /// `buffer.memory`, librdkafka's `queue.buffering.max.kbytes`, rskafka's bound on the bytes
    /// of records the harness keeps in flight (it has no cap of its own).
    pub memory_bytes: usize,
}

/// 32 MiB, the Java client's `buffer.memory` default.
pub const MEMORY_CAP: usize = 32 << 20;

impl Settings {
    pub fn new(linger_ms: u32, batch_size: usize, compression: Codec, acks: Acks, idempotence: bool) -> Self {
        Self { linger_ms, batch_size, compression, acks, idempotence, memory_bytes: MEMORY_CAP }
    }

    /// `max.request.size` / `message.max.bytes`: the default 1 MiB, or room for one full batch.
    pub fn max_request(&self) -> usize {
        (1 << 20).max(self.batch_size + (64 << 10))
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let batch = if self.batch_size >= 1 << 20 {
            format!("{}MiB", self.batch_size >> 20)
        } else {
            format!("{}KiB", self.batch_size >> 10)
        };
        let codec = match self.compression {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
        };
        write!(f, "linger {}ms, batch {batch}, {codec}, acks={}", self.linger_ms, self.acks.property())?;
        if self.idempotence {
            f.write_str(", idempotent")?;
        }
        Ok(())
    }
}

/// One cell of the plan: run every client on it, `rounds` times, interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Case {
    pub broker: Broker,
    pub scenario: Scenario,
    pub settings: Settings,
}

const KIB16: usize = 16 << 10;
const MIB1: usize = 1 << 20;

/// Every combination of the aligned settings: linger 0/5 ms × batch 16 KiB/1 MiB × none/LZ4 ×
/// acks 1/all, and idempotence on where acks=all allows it.
pub fn matrix() -> Vec<Settings> {
    let mut all = Vec::new();
    for linger in [0, 5] {
        for batch in [KIB16, MIB1] {
            for codec in [Codec::None, Codec::Lz4] {
                for (acks, idem) in [(Acks::One, false), (Acks::All, false), (Acks::All, true)] {
                    all.push(Settings::new(linger, batch, codec, acks, idem));
                }
            }
        }
    }
    all
}

/// The full plan: the matrix for every scenario on every broker.
pub fn full_plan(brokers: &[Broker], scenarios: &[Scenario]) -> Vec<Case> {
    let mut plan = Vec::new();
    for &broker in brokers {
        for &scenario in scenarios {
            for settings in matrix() {
                plan.push(Case { broker, scenario, settings });
            }
        }
    }
    plan
}

/// The default set: a representative subset that runs in about ten minutes on two cores.
pub fn default_plan(brokers: &[Broker], scenarios: &[Scenario]) -> Vec<Case> {
    use Acks::{All, One};
    use Codec::{Lz4, None};
    let s = Settings::new;
    let mut plan = Vec::new();
    let mut add = |broker, scenario, settings| {
        if brokers.contains(&broker) && scenarios.contains(&scenario) {
            plan.push(Case { broker, scenario, settings });
        }
    };
    // Throughput: large batches with lingering (the broker is the bottleneck), small LZ4
    // batches with acks=1, and the safe default (idempotent, acks=all) without lingering.
    add(Broker::Tansu, Scenario::Throughput, s(5, MIB1, None, All, false));
    add(Broker::Tansu, Scenario::Throughput, s(5, KIB16, Lz4, One, false));
    add(Broker::Tansu, Scenario::Throughput, s(0, KIB16, None, All, true));
    add(Broker::Mock, Scenario::Throughput, s(5, MIB1, None, All, false));
    // The same three on Apache Kafka, which writes its log to disk as users' brokers do.
    add(Broker::Kafka, Scenario::Throughput, s(5, MIB1, None, All, false));
    add(Broker::Kafka, Scenario::Throughput, s(5, KIB16, Lz4, One, false));
    add(Broker::Kafka, Scenario::Throughput, s(0, KIB16, None, All, true));
    // Latency at a fixed rate: no lingering, then 5 ms lingering with LZ4.
    add(Broker::Tansu, Scenario::Latency, s(0, KIB16, None, All, false));
    add(Broker::Tansu, Scenario::Latency, s(5, KIB16, Lz4, All, false));
    add(Broker::Mock, Scenario::Latency, s(0, KIB16, None, All, false));
    // One record at a time.
    add(Broker::Tansu, Scenario::Sync, s(0, KIB16, None, All, false));
    add(Broker::Mock, Scenario::Sync, s(0, KIB16, None, All, false));
    plan
}
