//! Helpers shared by the cross-crate tests: the real peers they run against.
//!
//! Every peer is installed and started by the scripts in `scripts/`, so a test works on a fresh
//! machine: Apache Kafka (the reference broker), Tansu (a second, non-JVM broker) and independent
//! consumers (confluent-kafka with CRC checks, kafka-python) reading back what we produced.

pub mod kafka;
pub mod sim;

pub use kafka::Kafka;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn script(name: &str) -> PathBuf {
    root().join("scripts").join(name)
}

/// A real broker a test produces to: Apache Kafka or Tansu.
pub trait Broker {
    /// `host:port` of its plaintext listener.
    fn bootstrap(&self) -> String;
    /// Creates `name` with `partitions` partitions (brokers here never create topics on use).
    fn create_topic(&self, name: &str, partitions: u32);
    /// "Apache Kafka" or "Tansu", for messages.
    fn name(&self) -> &'static str;
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stderr(Stdio::inherit()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A Tansu broker on a free loopback port, stopped (by its PID) when dropped.
#[derive(Debug)]
pub struct Tansu {
    pub port: u16,
    pid: u32,
}

impl Tansu {
    pub fn start() -> Self {
        Self::start_advertising(None)
    }

    /// A broker that advertises `advertise` (host:port) as its address, e.g. a proxy's.
    pub fn start_advertising(advertise: Option<&str>) -> Self {
        let mut cmd = Command::new(script("tansu-start"));
        if let Some(a) = advertise {
            cmd.env("TANSU_ADVERTISE", a);
        }
        let line = run(&mut cmd);
        let mut it = line.split_whitespace();
        let port = it.next().and_then(|p| p.parse().ok()).expect("tansu-start prints PORT PID");
        let pid = it.next().and_then(|p| p.parse().ok()).expect("tansu-start prints PORT PID");
        Self { port, pid }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        run(Command::new(script("tansu-topic"))
            .arg(name)
            .arg(partitions.to_string())
            .arg(self.port.to_string()));
    }
}

impl Broker for Tansu {
    fn bootstrap(&self) -> String {
        Tansu::bootstrap(self)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        Tansu::create_topic(self, name, partitions)
    }

    fn name(&self) -> &'static str {
        "Tansu"
    }
}

impl Tansu {
    /// Kills the broker at once (SIGKILL) and waits until its port refuses connections.
    pub fn kill(self) {
        let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("broker {} still accepts connections", self.pid);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// Creates a topic on the Tansu broker listening on `port`.
pub fn create_topic_at(port: u16, name: &str, partitions: u32) {
    run(Command::new(script("tansu-topic")).arg(name).arg(partitions.to_string()).arg(port.to_string()));
}

/// The Python interpreter of the test venv (consumers installed), set up on first use.
pub fn python() -> PathBuf {
    PathBuf::from(run(&mut Command::new(script("py-setup"))).trim())
}

/// Which independent consumer reads the records back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// confluent-kafka (librdkafka) with `check.crcs=true`.
    Confluent,
    KafkaPython,
}

/// A record as an independent consumer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: i64,
}

fn b64(v: &serde_json::Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s).expect("base64"))
}

/// Reads exactly `expect` records of `topics` from the beginning with an independent consumer;
/// panics if it reads fewer or more, or reports a corrupt batch. Sorted by topic, partition,
/// offset.
pub fn consume(bootstrap: &str, topics: &[&str], expect: usize, consumer: Consumer) -> Vec<Consumed> {
    consume_with(bootstrap, topics, expect, consumer, &[])
}

/// [`consume`] with extra confluent-kafka settings (`security.protocol=SSL`, ...).
pub fn consume_with(
    bootstrap: &str,
    topics: &[&str],
    expect: usize,
    consumer: Consumer,
    properties: &[(&str, &str)],
) -> Vec<Consumed> {
    let (ok, records) = read_back(bootstrap, topics, expect, consumer, properties);
    assert!(ok && records.len() == expect, "read {} records, expected {expect}", records.len());
    records
}

/// Reads at least `min` records (duplicates allowed, as without idempotence) of `topics`.
pub fn consume_at_least(bootstrap: &str, topics: &[&str], min: usize, consumer: Consumer) -> Vec<Consumed> {
    let (_, records) = read_back(bootstrap, topics, min, consumer, &[]);
    assert!(records.len() >= min, "read {} records, expected at least {min}", records.len());
    records
}

/// Runs consume.py; whether it read exactly `expect`, and what it read.
fn read_back(
    bootstrap: &str,
    topics: &[&str],
    expect: usize,
    consumer: Consumer,
    properties: &[(&str, &str)],
) -> (bool, Vec<Consumed>) {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/py/consume.py")).args(["--bootstrap", bootstrap]);
    for t in topics {
        cmd.args(["--topic", t]);
    }
    cmd.args(["--expect", &expect.to_string(), "--timeout", "120"]);
    cmd.args(["--client", if consumer == Consumer::Confluent { "confluent" } else { "kafka-python" }]);
    for (k, v) in properties {
        cmd.args(["--property", &format!("{k}={v}")]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    // 0: exactly `expect`; 1: fewer or more (the records read are printed either way);
    // anything else: the consumer failed (a corrupt batch, say).
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "{cmd:?} failed: {}", out.status);
    let records = String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("consume.py prints JSON");
            Consumed {
                topic: v["topic"].as_str().expect("topic").to_string(),
                partition: v["partition"].as_i64().expect("partition") as i32,
                offset: v["offset"].as_i64().expect("offset"),
                key: b64(&v["key"]),
                value: b64(&v["value"]),
                headers: v["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .map(|h| (h[0].as_str().expect("header name").to_string(), b64(&h[1])))
                    .collect(),
                timestamp: v["timestamp"].as_i64().expect("timestamp"),
            }
        })
        .collect();
    (code == Some(0), records)
}

/// The `picokafka` binary (debug profile), built once per test process.
pub fn cli() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built_binary("picokafka-cli", "picokafka", false)).clone()
}

/// Builds `package` (`--release` if asked) and returns its binary `bin` from the target
/// directory (`CARGO_TARGET_DIR`, else `<workspace>/target`). `env!("CARGO_BIN_EXE_…")` only
/// sees binaries of this package, hence the build.
pub fn built_binary(package: &str, bin: &str, release: bool) -> PathBuf {
    let root = root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(&root)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package} failed: {status}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"));
    let profile = if release { "release" } else { "debug" };
    let path = target.join(profile).join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "{} missing after cargo build", path.display());
    path
}

/// librdkafka's mock cluster as a child process (several brokers, fault injection).
pub mod mock;
