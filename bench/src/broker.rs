//! The brokers: a fresh Tansu (through `scripts/tansu-start` and `scripts/tansu-topic`), a
//! fresh librdkafka mock cluster (the workspace's `mock-cluster` binary) or a fresh Apache Kafka
//! node (`scripts/kafka-start`, `scripts/kafka-topic`) for every run, and the check that the log
//! holds exactly the records a client says were acknowledged.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::proc;
use crate::settings::Broker;

/// A broker started for one run, with its topic created.
pub struct Running {
    pub bootstrap: String,
    pid: u32,
    mock: Option<(Child, ChildStdin)>,
    /// A Kafka node's directory and the script that stops it (and removes the directory).
    kafka: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("bootstrap", &self.bootstrap).field("pid", &self.pid).finish()
    }
}

/// Where the harness finds the workspace's scripts and binaries.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root (holds `scripts/`).
    pub root: PathBuf,
    /// The `mock-cluster` binary.
    pub mock_cluster: PathBuf,
    /// Where Tansu's logs and Kafka's directories go.
    pub log_dir: PathBuf,
}

impl Paths {
    pub fn discover(log_dir: PathBuf) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin_dir = exe.parent().ok_or("no directory for the executable")?.to_path_buf();
        let root = match std::env::var_os("PKBENCH_ROOT") {
            Some(r) => PathBuf::from(r),
            None => bin_dir
                .ancestors()
                .find(|d| d.join("scripts/tansu-start").is_file())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")),
        };
        let mock_cluster = bin_dir.join("mock-cluster");
        Ok(Self { root, mock_cluster, log_dir })
    }

    /// Builds `mock-cluster` if it is not next to this binary.
    pub fn ensure_mock_cluster(&self) -> Result<(), String> {
        if self.mock_cluster.is_file() {
            return Ok(());
        }
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--quiet", "--release", "-p", "mock-cluster"])
            .current_dir(&self.root)
            .status()
            .map_err(|e| format!("cargo build -p mock-cluster: {e}"))?;
        if !status.success() || !self.mock_cluster.is_file() {
            return Err(format!(
                "cargo build -p mock-cluster failed ({status}); expected {:?}",
                self.mock_cluster
            ));
        }
        Ok(())
    }
}

impl Running {
    /// Starts a fresh broker and creates `topic` with `partitions` partitions (replication 1).
    pub fn start(broker: Broker, paths: &Paths, topic: &str, partitions: i32) -> Result<Self, String> {
        match broker {
            Broker::Tansu => Self::tansu(paths, topic, partitions),
            Broker::Mock => Self::mock(paths, topic, partitions),
            Broker::Kafka => Self::kafka(paths, topic, partitions),
        }
    }

    fn kafka(paths: &Paths, topic: &str, partitions: i32) -> Result<Self, String> {
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = paths.log_dir.join(format!("kafka-{n}"));
        std::fs::create_dir_all(&paths.log_dir).map_err(|e| e.to_string())?;
        let out = Command::new(paths.root.join("scripts/kafka-start"))
            .env("KAFKA_DIR", &dir)
            // The node goes with this process if it dies before stopping it.
            .env("KAFKA_WATCH_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("scripts/kafka-start: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fact = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
        let (Some(bootstrap), Some(pid)) =
            (fact("KAFKA_PLAINTEXT="), fact("KAFKA_PID=").and_then(|p| p.parse().ok()))
        else {
            return Err(format!(
                "scripts/kafka-start printed {text:?} ({}); its log: {}",
                out.status,
                dir.join("server.log").display()
            ));
        };
        let running =
            Self { bootstrap, pid, mock: None, kafka: Some((dir, paths.root.join("scripts/kafka-stop"))) };
        let status = Command::new(paths.root.join("scripts/kafka-topic"))
            .args([topic, &partitions.to_string(), &running.bootstrap, "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("scripts/kafka-topic: {e}"))?;
        if !status.success() {
            let bootstrap = running.bootstrap.clone();
            running.stop();
            return Err(format!("scripts/kafka-topic {topic} {partitions} {bootstrap} failed ({status})"));
        }
        Ok(running)
    }

    fn tansu(paths: &Paths, topic: &str, partitions: i32) -> Result<Self, String> {
        std::fs::create_dir_all(&paths.log_dir).map_err(|e| e.to_string())?;
        let out = Command::new(paths.root.join("scripts/tansu-start"))
            .env("TANSU_LOG_DIR", &paths.log_dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("scripts/tansu-start: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        let (Some(port), Some(pid)) = (words.next(), words.next().and_then(|p| p.parse().ok())) else {
            return Err(format!("scripts/tansu-start printed {text:?} ({})", out.status));
        };
        let running = Self { bootstrap: format!("127.0.0.1:{port}"), pid, mock: None, kafka: None };
        let status = Command::new(paths.root.join("scripts/tansu-topic"))
            .args([topic, &partitions.to_string(), port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("scripts/tansu-topic: {e}"))?;
        if !status.success() {
            running.stop();
            return Err(format!("scripts/tansu-topic {topic} {partitions} {port} failed ({status})"));
        }
        Ok(running)
    }

    fn mock(paths: &Paths, topic: &str, partitions: i32) -> Result<Self, String> {
        let mut child = Command::new(&paths.mock_cluster)
            .args(["--brokers", "1", "--topic", &format!("{topic}:{partitions}:1")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{:?}: {e}", paths.mock_cluster))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let Some(bootstrap) = proc::read_line_with(&mut stdout, "BOOTSTRAP ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("mock-cluster did not print BOOTSTRAP".into());
        };
        let pid = child.id();
        Ok(Self { bootstrap, pid, mock: Some((child, stdin)), kafka: None })
    }

    /// CPU seconds the broker has used so far.
    pub fn cpu_s(&self) -> f64 {
        proc::proc_cpu_s(self.pid).unwrap_or(f64::NAN)
    }

    /// The broker's peak RSS so far, bytes.
    pub fn peak_rss(&self) -> u64 {
        proc::proc_peak_rss(self.pid).unwrap_or(0)
    }

    pub fn stop(self) {
        if let Some((dir, kafka_stop)) = &self.kafka {
            // By its PID, SIGKILL after 20 s; the directory goes too unless the logs are kept.
            let keep = std::env::var_os("PKBENCH_KEEP_LOGS").is_some();
            let _ = Command::new(kafka_stop)
                .arg(dir)
                .env("KAFKA_KEEP", if keep { "1" } else { "0" })
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status();
            return;
        }
        match self.mock {
            Some((mut child, mut stdin)) => {
                let _ = writeln!(stdin, "quit").and_then(|()| stdin.flush());
                drop(stdin);
                for _ in 0..250 {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            None => proc::terminate(self.pid, Duration::from_secs(5)),
        }
    }
}

/// The number of records in `topic`'s log: the sum over its partitions of the offset after the
/// last record. On a fresh topic it equals the number of records the broker has appended.
///
/// Asked of the broker by librdkafka's consumer. ListOffsets alone is not enough: Tansu's
/// memory storage answers ListOffsets(latest) with the *base offset of the last batch* + 1
/// instead of the offset after its last record. So the consumer also reads each partition from
/// that reported high-water mark − 1 to its end (at most the last batch, CRC-checked) and takes
/// the offset after the last record it gets; on a broker that answers correctly the two agree.
pub fn log_end(bootstrap: &str, topic: &str) -> Result<i64, String> {
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "pkbench-verify")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| e.to_string())?;
    let t = metadata.topics().iter().find(|t| t.name() == topic).ok_or("topic not in metadata")?;
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in t.partitions() {
        let (_low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).map_err(|e| e.to_string())?;
        ends.insert(p.id(), high);
        if high > 0 {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Offset(high - 1))
                .map_err(|e| e.to_string())?;
        }
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut idle_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let end = ends.entry(m.partition()).or_insert(0);
                *end = (*end).max(m.offset() + 1);
                seen.insert(m.partition());
                idle_since = std::time::Instant::now();
            }
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
            None => {
                let idle = idle_since.elapsed();
                let all = seen.len() == assignment.count();
                if (all && idle > Duration::from_millis(500)) || idle > Duration::from_secs(3) {
                    break;
                }
            }
        }
    }
    Ok(ends.values().sum())
}
