//! Apache Kafka 4.4 as the reference broker: one KRaft node with PLAINTEXT, SASL_PLAINTEXT,
//! SSL (mutual TLS) and SASL_SSL listeners, started by `scripts/kafka-start`.
//!
//! Starting a JVM broker takes seconds and half a gigabyte, so the tests share one:
//! `scripts/test` starts it before the suite and names its facts file in `PK_TEST_KAFKA`; a
//! test binary run on its own starts one for itself, which stops when the test process ends
//! (kafka-start's `KAFKA_WATCH_PID`). Tests sharing a broker create their topics with a unique
//! name ([`Kafka::topic`]). A test that needs a broker configured its own way starts one with
//! [`Kafka::start_with`], stopped when dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::{python, root, run, script, Broker};

/// One Apache Kafka node, as `scripts/kafka-start` described it.
#[derive(Debug)]
pub struct Kafka {
    /// `host:port` of each listener.
    pub plaintext: String,
    pub sasl_plaintext: String,
    pub ssl: String,
    pub sasl_ssl: String,
    /// The PROXIED listener's own address, when started with `KAFKA_PROXY_PORT`.
    pub proxied: Option<String>,
    /// The test CA (PEM) that signed the broker's certificate, an unrelated CA, and a client
    /// certificate and key the SSL listener accepts.
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub dir: PathBuf,
    pub pid: u32,
    /// The cluster's finalized `transaction.version`: 2 and up is KIP-890 part 2.
    pub transaction_version: i16,
    /// Stopped by `Drop` (a node of this test's own, not the shared one).
    owned: bool,
}

/// The users seeded into every node (PLAIN in the JAAS config, SCRAM in the metadata log):
/// `admin` is a super user.
pub const USERS: [(&str, &str); 3] =
    [("admin", "admin-secret"), ("alice", "alice-secret"), ("bob", "bob-secret")];

impl Kafka {
    /// The broker the whole test run shares.
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Kafka> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var_os("PK_TEST_KAFKA") {
            Some(env_file) => Self::from_env_file(&PathBuf::from(env_file), false),
            None => Self::launch(&[("KAFKA_WATCH_PID", &std::process::id().to_string())], false),
        })
    }

    /// A node of this test's own, with kafka-start's environment `env` (`KAFKA_BROKER_PROPS`,
    /// `KAFKA_PROXY_PORT`, `KAFKA_TLS_ONLY_NAMES`, ...); stopped when dropped.
    pub fn start_with(env: &[(&str, &str)]) -> Kafka {
        let pid = std::process::id().to_string();
        let mut env = env.to_vec();
        env.push(("KAFKA_WATCH_PID", &pid));
        Self::launch(&env, true)
    }

    fn launch(env: &[(&str, &str)], owned: bool) -> Kafka {
        let mut cmd = Command::new(script("kafka-start"));
        cmd.envs(env.iter().copied());
        let out = run(&mut cmd);
        let dir = parse(&out).get("KAFKA_DIR").cloned().expect("kafka-start prints KAFKA_DIR");
        Self::from_env_file(&PathBuf::from(dir).join("broker.env"), owned)
    }

    fn from_env_file(path: &PathBuf, owned: bool) -> Kafka {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("Kafka facts {}: {e}", path.display()));
        let facts = parse(&text);
        let get = |k: &str| facts.get(k).cloned().unwrap_or_else(|| panic!("{} lacks {k}", path.display()));
        Kafka {
            plaintext: get("KAFKA_PLAINTEXT"),
            sasl_plaintext: get("KAFKA_SASL_PLAINTEXT"),
            ssl: get("KAFKA_SSL"),
            sasl_ssl: get("KAFKA_SASL_SSL"),
            proxied: facts.get("KAFKA_PROXIED").filter(|p| !p.is_empty()).cloned(),
            ca: get("KAFKA_CA").into(),
            other_ca: get("KAFKA_OTHER_CA").into(),
            client_cert: get("KAFKA_CLIENT_CERT").into(),
            client_key: get("KAFKA_CLIENT_KEY").into(),
            dir: get("KAFKA_DIR").into(),
            pid: get("KAFKA_PID").parse().expect("KAFKA_PID is a number"),
            transaction_version: get("KAFKA_TRANSACTION_VERSION").parse().expect("a feature level"),
            owned,
        }
    }

    /// Creates a topic named `prefix` plus a suffix unique to this test process, and returns
    /// its name: tests sharing one broker never meet each other's topics.
    pub fn topic(&self, prefix: &str, partitions: u32) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.create_topic(&name, partitions);
        name
    }

    /// Creates `name` with topic-level `configs` (`max.message.bytes=..`), replication factor 1.
    pub fn create_topic_with(&self, name: &str, partitions: u32, configs: &[(&str, &str)]) {
        let mut cmd = Command::new(script("kafka-topic"));
        cmd.args([name, &partitions.to_string(), &self.plaintext, "1"]);
        cmd.args(configs.iter().map(|(k, v)| format!("{k}={v}")));
        run(&mut cmd);
    }

    /// The admin client settings of the super user `admin` on the SASL_PLAINTEXT listener.
    fn admin_login(&self) -> [&'static str; 4] {
        [
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanism=PLAIN",
            "sasl.username=admin",
            "sasl.password=admin-secret",
        ]
    }

    /// Allows `principal` (`User:alice`) the comma-separated `operations` (`WRITE,DESCRIBE`) on
    /// topic `topic`, as `admin` over SASL, and returns once the broker's authorizer has them.
    /// While the broker's `allow.everyone.if.no.acl.found=true` holds, a topic with an ACL for
    /// one principal is closed to every other (super users aside).
    pub fn allow(&self, principal: &str, topic: &str, operations: &str) {
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/py/admin.py"))
            .args(["add-acl", &self.sasl_plaintext, principal, topic, operations])
            .args(self.admin_login());
        run(&mut cmd);
    }

    /// Deletes `user`'s `SCRAM-SHA-256` or `SCRAM-SHA-512` credential (a revoked login), as
    /// `admin` over SASL; returns once the broker no longer describes it.
    pub fn delete_scram(&self, user: &str, mechanism: &str) {
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/py/admin.py"))
            .args(["delete-scram", &self.sasl_plaintext, user, mechanism])
            .args(self.admin_login());
        run(&mut cmd);
    }

    /// How many lines of the broker's log contain `needle` (e.g. `"Failed authentication with"`,
    /// which Kafka logs at INFO for every failed SASL authentication).
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_count_all(&[needle])
    }

    /// How many lines of the broker's log contain every one of `needles`.
    pub fn log_count_all(&self, needles: &[&str]) -> usize {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        log.lines().filter(|l| needles.iter().all(|n| l.contains(n))).count()
    }

    /// The last `lines` lines of the broker's log, for a failing test's message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Broker for Kafka {
    fn bootstrap(&self) -> String {
        self.plaintext.clone()
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        self.create_topic_with(name, partitions, &[]);
    }

    fn name(&self) -> &'static str {
        "Apache Kafka"
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new(script("kafka-stop")).arg(&self.dir).status();
        }
    }
}

fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
