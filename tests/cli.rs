//! The `picokafka` command-line tool against Apache Kafka: lines on stdin become keyed, LZ4
//! records with a header, on the partition the Java client would choose, read back by
//! confluent-kafka; `metadata` shows the topic with its partitions and leader.

use std::io::Write as _;
use std::process::{Command, Stdio};

use picokafka::partitioner::partition_for_key;
use picokafka_tests::{cli, consume, Broker, Consumer, Kafka};

#[test]
fn cli_produces_lines_to_kafka_and_metadata_shows_the_topic() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli", 3);
    let n = 10_000;
    let mut child = Command::new(cli())
        .args(["produce", "-b", &kafka.bootstrap(), "-t", &topic, "-K", ":", "-H", "src=cli", "-z", "lz4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!("device-{}:{{\"reading\":{i}}}\n", i % 16));
    }
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.is_empty(), "data only on stdout, and none asked for: {stdout}");
    assert!(stderr.contains(&format!("{n} records sent, {n} delivered, 0 failed")), "{stderr}");

    let got = consume(&kafka.bootstrap(), &[&topic], n, Consumer::Confluent);
    let mut last = [-1i64; 3];
    for rec in &got {
        let key = String::from_utf8(rec.key.clone().unwrap()).unwrap();
        let value = String::from_utf8(rec.value.clone().unwrap()).unwrap();
        let i: i64 = value.trim_start_matches("{\"reading\":").trim_end_matches('}').parse().unwrap();
        assert_eq!(key, format!("device-{}", i % 16));
        assert_eq!(rec.headers, vec![("src".to_string(), Some(b"cli".to_vec()))]);
        assert_eq!(rec.partition, partition_for_key(key.as_bytes(), 3), "murmur2 placement");
        assert!(i > last[rec.partition as usize], "line order kept within a partition");
        last[rec.partition as usize] = i;
    }

    let out =
        Command::new(cli()).args(["metadata", "-b", &kafka.bootstrap(), "-t", &topic]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&topic) && text.matches("partition").count() >= 3, "{text}");
}
