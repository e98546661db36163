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

/// Runs `picokafka ARGS` with `input` on stdin and `env` added; (exit code, stdout, stderr).
fn run_cli(args: &[&str], env: &[(&str, &str)], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(cli())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A producer.properties written for the Java client and librdkafka, as a user brings it: Java's
/// serializer classes, `client.id app:1` (whitespace separates, the `:` is the value's), a
/// `\uXXXX` escape, a continuation, librdkafka's names; the bootstrap address with its
/// `PLAINTEXT://`; and PICOKAFKA_CACHE in the environment, as the project's scripts set it.
#[test]
fn cli_takes_a_java_and_librdkafka_properties_file() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-props", 1);
    let dir = std::env::temp_dir().join(format!("pk-cli-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("producer.properties");
    std::fs::write(
        &file,
        concat!(
            "# producer.properties, as the Java client reads it\n",
            "key.serializer=org.apache.kafka.common.serialization.StringSerializer\n",
            "value.serializer = org.apache.kafka.common.serialization.StringSerializer\n",
            "client.id app:1\n",
            "linger.ms=1\\u0030\n",
            "retries=21474\\\n",
            "        83647\n",
            "! librdkafka's names\n",
            "queue.buffering.max.kbytes: 65536\n",
            "message.max.bytes=1000000\n",
            "topic.metadata.refresh.interval.ms=60000\n",
            "queue.buffering.max.messages=100\n",
            "batch.num.messages=50\n",
            "socket.send.buffer.bytes=0\n",
            "compression.codec=zstd\n",
            "compression.zstd.level=19\n",
        ),
    )
    .unwrap();
    let n = 1000;
    let input: String = (0..n).map(|i| format!("line-{i}\n")).collect();
    let bootstrap = format!("PLAINTEXT://{}", kafka.bootstrap());
    let file_arg = file.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(
        &["produce", "-b", &bootstrap, "-t", &topic, "-F", file_arg],
        &[("PICOKAFKA_CACHE", "/tmp/x"), ("PICOKAFKA_BLESS", "1"), ("PICOKAFKA_PROP_ACKS", "all")],
        &input,
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("{n} records sent, {n} delivered, 0 failed")), "{stderr}");
    for key in ["key.serializer", "value.serializer"] {
        let warning = format!("picokafka: warning: {key} is not used by picokafka");
        assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    }
    let got = consume(&kafka.bootstrap(), &[&topic], n, Consumer::Confluent);
    let values: Vec<String> =
        got.iter().map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()).collect();
    assert_eq!(values, (0..n).map(|i| format!("line-{i}")).collect::<Vec<_>>());

    let (code, stdout, stderr) =
        run_cli(&["metadata", "-b", &bootstrap, "-t", &topic], &[("PICOKAFKA_CACHE", "/tmp/x")], "");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&topic), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Mistakes are refused before anything is sent, with exit code 2 and the name to fix: a typo
/// (with the nearest name), where it was written (the file's line, the variable), a scheme
/// Kafka does not have. No broker needed.
#[test]
fn cli_refuses_unknown_properties_naming_them() {
    fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["produce", "-b", "127.0.0.1:1", "-t", "t"];
        a.extend_from_slice(extra);
        a
    }
    let (code, _, stderr) = run_cli(&args(&["-X", "lingr.ms=5"]), &[], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown property: lingr.ms (did you mean linger.ms?)"), "{stderr}");

    let (code, _, stderr) = run_cli(&args(&[]), &[("PICOKAFKA_PROP_LINGR_MS", "5")], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("lingr.ms (did you mean linger.ms?) (in environment variable PICOKAFKA_PROP_LINGR_MS)"),
        "{stderr}"
    );

    let dir = std::env::temp_dir().join(format!("pk-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.properties");
    std::fs::write(&file, "linger.ms=5\n# fine\nbatch.sise=16384\n").unwrap();
    let (code, _, stderr) = run_cli(&args(&["-F", file.to_str().unwrap()]), &[], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("batch.sise (did you mean batch.size?)") && stderr.contains("bad.properties line 3"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let (code, _, stderr) = run_cli(&["produce", "-b", "http://127.0.0.1:9092", "-t", "t"], &[], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("bootstrap.servers") && stderr.contains("http://127.0.0.1:9092"), "{stderr}");
}
