//! librdkafka's mock cluster (`mock-cluster/`) as a child process: several brokers on real
//! loopback ports, with leader moves, broker down/up, RTT and per-API error injection driven
//! over the child's stdin (protocol in `mock-cluster/src/main.rs`).
//!
//! ```no_run
//! let mut mock = picokafka_tests::mock::MockCluster::start(3, &[("t", 6, 3)]);
//! mock.leader("t", 0, 2);
//! mock.error(0 /* Produce */, 6 /* NOT_LEADER_OR_FOLLOWER */, 2);
//! let bootstrap = mock.bootstrap.clone(); // "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Kafka API keys, for [`MockCluster::error`].
pub mod api {
    pub const PRODUCE: i16 = 0;
    pub const FETCH: i16 = 1;
    pub const METADATA: i16 = 3;
    pub const API_VERSIONS: i16 = 18;
    pub const FIND_COORDINATOR: i16 = 10;
    pub const INIT_PRODUCER_ID: i16 = 22;
    pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
    pub const ADD_OFFSETS_TO_TXN: i16 = 25;
    pub const END_TXN: i16 = 26;
    pub const TXN_OFFSET_COMMIT: i16 = 28;
}

/// The `mock-cluster` binary, built (release) once per test process.
///
/// `env!("CARGO_BIN_EXE_…")` only sees binaries of this package, so this runs
/// `cargo build -p mock-cluster --release` and takes the binary from the target directory
/// (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::built_binary("mock-cluster", "mock-cluster", true)).clone()
}

/// A running `mock-cluster`: brokers 1..=N. Dropping it stops the process.
#[derive(Debug)]
pub struct MockCluster {
    /// `host:port,host:port,...` of all brokers.
    pub bootstrap: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl MockCluster {
    /// Starts `brokers` brokers and creates `topics` as (name, partitions, replication factor).
    pub fn start(brokers: u32, topics: &[(&str, i32, i32)]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(["--brokers", &brokers.to_string()]);
        for (name, partitions, replication) in topics {
            cmd.args(["--topic", &format!("{name}:{partitions}:{replication}")]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let Some(bootstrap) = line.trim_end().strip_prefix("BOOTSTRAP ").map(str::to_string) else {
            let _ = child.kill();
            let status = child.wait();
            panic!("{cmd:?} printed {line:?} ({read:?}), not BOOTSTRAP ...; exit: {status:?}");
        };
        Self { bootstrap, child, stdin, stdout }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line and waits for its answer: `Ok` for `OK`, `Err(message)` for
    /// `ERR message` (or if the process is gone).
    pub fn command(&mut self, line: &str) -> Result<(), String> {
        match self.ask(line)?.as_str() {
            "" => Ok(()),
            value => Err(format!("unexpected answer OK {value:?} to {line:?}")),
        }
    }

    /// Like [`Self::command`], for a command that answers `OK value`: the value (empty for a
    /// plain `OK`).
    pub fn ask(&mut self, line: &str) -> Result<String, String> {
        assert!(!line.contains('\n'), "one command per call: {line:?}");
        let stdin = self.stdin.as_mut().ok_or("mock-cluster stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing {line:?} to mock-cluster: {e}"))?;
        let mut answer = String::new();
        match self.stdout.read_line(&mut answer) {
            Ok(0) => return Err(format!("mock-cluster exited before answering {line:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("reading mock-cluster's answer to {line:?}: {e}")),
        }
        match answer.trim_end() {
            "OK" => Ok(String::new()),
            a => match a.strip_prefix("OK ") {
                Some(value) => Ok(value.to_string()),
                None => Err(a.strip_prefix("ERR ").unwrap_or(a).to_string()),
            },
        }
    }

    fn must(&mut self, line: &str) {
        if let Err(e) = self.command(line) {
            panic!("mock-cluster: {line:?}: {e}");
        }
    }

    /// Creates a topic. Panics on `ERR`, like the other shortcuts.
    pub fn create(&mut self, topic: &str, partitions: i32, replication: i32) {
        self.must(&format!("create {topic} {partitions} {replication}"));
    }

    /// Moves the leader of `topic`/`partition` to `broker` (-1: no leader).
    pub fn leader(&mut self, topic: &str, partition: i32, broker: i32) {
        self.must(&format!("leader {topic} {partition} {broker}"));
    }

    /// Disconnects `broker` (-1: all) and refuses new connections. No leader moves.
    pub fn down(&mut self, broker: i32) {
        self.must(&format!("down {broker}"));
    }

    /// Lets `broker` (-1: all) accept connections again.
    pub fn up(&mut self, broker: i32) {
        self.must(&format!("up {broker}"));
    }

    /// Delays every response of `broker` (-1: all) by `ms` milliseconds.
    pub fn rtt(&mut self, broker: i32, ms: u32) {
        self.must(&format!("rtt {broker} {ms}"));
    }

    /// The next `count` requests of `api_key` (see [`api`]), on any broker, fail with the Kafka
    /// error `code` (-195, librdkafka's `_TRANSPORT`: the broker drops the connection instead).
    pub fn error(&mut self, api_key: i16, code: i16, count: u32) {
        self.must(&format!("error {api_key} {code} {count}"));
    }

    /// Like [`Self::error`], on `broker` only.
    pub fn broker_error(&mut self, broker: i32, api_key: i16, code: i16, count: u32) {
        self.must(&format!("broker-error {broker} {api_key} {code} {count}"));
    }

    /// Like [`Self::broker_error`], each answer held back `rtt_ms`; code 0 only delays. Once
    /// `broker` has such a stack for `api_key`, even used up, [`Self::error`]'s stack for that
    /// key no longer applies to it (librdkafka looks at the broker's first).
    pub fn broker_error_rtt(&mut self, broker: i32, api_key: i16, code: i16, count: u32, rtt_ms: u32) {
        self.must(&format!("broker-error {broker} {api_key} {code} {count} {rtt_ms}"));
    }

    /// Drops the errors [`Self::error`] queued for `api_key` and not used yet.
    pub fn clear_errors(&mut self, api_key: i16) {
        self.must(&format!("clear-errors {api_key}"));
    }

    /// Makes `broker` the coordinator of `key`: a transactional id (`key_type` "transaction")
    /// or a group id ("group"). Requests the old one gets for it then fail with NOT_COORDINATOR.
    pub fn coordinator(&mut self, key_type: &str, key: &str, broker: i32) {
        self.must(&format!("coordinator {key_type} {key} {broker}"));
    }

    /// Records every request from now on, for [`Self::requests`]; forgets those recorded.
    pub fn track(&mut self) {
        self.must("track");
    }

    /// How many requests of `api_key` reached the cluster (`broker` only, if given) since
    /// [`Self::track`]; injected errors answer requests that count here too.
    pub fn requests(&mut self, api_key: i16, broker: Option<i32>) -> usize {
        let line = match broker {
            Some(b) => format!("requests {api_key} {b}"),
            None => format!("requests {api_key}"),
        };
        match self.ask(&line) {
            Ok(n) => n.parse().unwrap_or_else(|_| panic!("mock-cluster: {line:?} answered {n:?}")),
            Err(e) => panic!("mock-cluster: {line:?}: {e}"),
        }
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit").and_then(|()| stdin.flush());
            // Dropping stdin closes it: EOF stops the child even if `quit` was not read.
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        // Child::kill signals this child's own pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
