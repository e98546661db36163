//! The librdkafka mock cluster process (`mock-cluster/`, driven by `picokafka_tests::mock`)
//! works as a multi-broker Kafka for independent clients: confluent-kafka produces to it, our
//! usual consumer reads the records back, and the control commands answer and take effect.

use std::process::{Command, Stdio};

use picokafka_tests::mock::{api, MockCluster};
use picokafka_tests::{consume, python, Consumer};

/// Produces `values` with confluent-kafka (value i to partition i % partitions, key `k<i>`),
/// returns one `(partition, error code or 0)` per delivery report, in value order.
fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: usize,
    values: &[String],
    retries: u32,
) -> Vec<(i32, i32)> {
    const SCRIPT: &str = r#"
import json, sys
from confluent_kafka import Producer
bootstrap, topic, partitions, retries = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
values = json.loads(sys.stdin.read())
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": retries,
              "linger.ms": 5, "message.timeout.ms": 20000, "enable.idempotence": False,
              "log_level": 4})
reports = [None] * len(values)
def report(i):
    def cb(err, msg):
        reports[i] = [msg.partition(), err.code() if err else 0]
    return cb
for i, v in enumerate(values):
    p.produce(topic, key=b"k%d" % i, value=v.encode(), partition=i % partitions, on_delivery=report(i))
left = p.flush(30)
assert left == 0, f"{left} records not delivered"
print(json.dumps(reports))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT, bootstrap, topic, &partitions.to_string(), &retries.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run python");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(serde_json::to_string(values).expect("json").as_bytes()).expect("write values");
    }
    let out = child.wait_with_output().expect("python producer");
    assert!(out.status.success(), "python producer failed: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("producer prints JSON")
}

#[test]
fn mock_cluster_serves_produce_and_fetch_and_obeys_commands() {
    const TOPIC: &str = "mock-t";
    let mut mock = MockCluster::start(3, &[(TOPIC, 6, 3)]);
    let brokers: Vec<&str> = mock.bootstrap.split(',').collect();
    assert_eq!(brokers.len(), 3, "bootstrap {:?}", mock.bootstrap);
    for b in &brokers {
        let (host, port) = b.rsplit_once(':').expect("host:port");
        assert!(!host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0), "{b:?}");
    }

    // Spread the leaders over all three brokers, so produce and fetch touch each one.
    for p in 0..6 {
        mock.leader(TOPIC, p, p % 3 + 1);
    }
    mock.command("ping").expect("ping");

    // confluent-kafka produces to every partition, the independent consumer reads it all back.
    let values: Vec<String> = (0..12).map(|i| format!("value-{i}")).collect();
    let reports = produce(&mock.bootstrap, TOPIC, 6, &values, 2);
    assert_eq!(reports, (0..12).map(|i| (i % 6, 0)).collect::<Vec<_>>());
    let read = consume(&mock.bootstrap, &[TOPIC], 12, Consumer::Confluent);
    for r in &read {
        let i: usize = std::str::from_utf8(r.key.as_deref().expect("key")).expect("utf-8")[1..]
            .parse()
            .expect("key k<i>");
        assert_eq!(r.partition, (i % 6) as i32, "{r:?}");
        assert_eq!(r.value.as_deref(), Some(values[i].as_bytes()), "{r:?}");
        assert_eq!(r.offset, (i / 6) as i64, "{r:?}");
    }

    // Error injection: the next Produce fails with TOPIC_AUTHORIZATION_FAILED (29, not
    // retriable), the one after succeeds.
    mock.error(api::PRODUCE, 29, 1);
    let reports = produce(&mock.bootstrap, TOPIC, 1, &["denied".into()], 0);
    assert_eq!(reports, vec![(0, 29)]);
    let reports = produce(&mock.bootstrap, TOPIC, 1, &["accepted".into()], 0);
    assert_eq!(reports, vec![(0, 0)]);
    // A retriable error (NOT_LEADER_OR_FOLLOWER) is retried through.
    mock.error(api::PRODUCE, 6, 2);
    let reports = produce(&mock.bootstrap, TOPIC, 1, &["retried".into()], 5);
    assert_eq!(reports, vec![(0, 0)]);
    // Queued errors can be dropped; per-broker errors and names are accepted too.
    mock.error(api::PRODUCE, 29, 3);
    mock.clear_errors(api::PRODUCE);
    mock.broker_error(1, api::METADATA, 3, 1);
    mock.command("broker-error 2 0 NOT_LEADER_FOR_PARTITION 2 50").expect("named error code");
    mock.command("clear-errors 0").expect("clear");

    // Broker and topology commands answer OK.
    mock.down(2);
    mock.up(2);
    mock.down(-1);
    mock.up(-1);
    mock.rtt(3, 10);
    mock.rtt(-1, 0);
    mock.create("mock-u", 2, 1);
    mock.leader("mock-u", 1, 3);
    mock.command("follower mock-u 1 2").expect("follower");

    // Bad commands get ERR, and the cluster keeps answering.
    for bad in ["bogus", "", "leader mock-u x 1", "down", "error 0", "error 0 NO_SUCH_ERROR", "rtt 1 5 extra"]
    {
        let err = mock.command(bad).expect_err(bad);
        assert!(!err.is_empty(), "{bad:?}");
    }
    mock.command("ping").expect("alive after errors");
}

#[test]
fn mock_cluster_exits_on_eof_and_rejects_bad_args() {
    let bin = picokafka_tests::mock::binary();
    // EOF on stdin (a test that died) stops it.
    let out = Command::new(&bin)
        .args(["--brokers", "2", "--topic", "a:1:1"])
        .stdin(Stdio::null())
        .output()
        .expect("run mock-cluster");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.starts_with("BOOTSTRAP ") && stdout.lines().count() == 1, "{stdout:?}");

    for args in [
        &[][..],
        &["--brokers", "0"],
        &["--brokers", "x"],
        &["--brokers", "1", "--topic", "a:1"],
        &["--bogus"],
    ] {
        let out = Command::new(&bin).args(args).stdin(Stdio::null()).output().expect("run mock-cluster");
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: {out:?}");
    }
}
