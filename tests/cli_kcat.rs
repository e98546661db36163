//! `picokafka produce` as a kcat user drives it, against Apache Kafka, every record read back by
//! confluent-kafka (librdkafka, which nobody here wrote):
//!
//! - 300,000 random bytes (newlines and invalid UTF-8 among them) with `-D` a byte they lack:
//!   one record, byte-exact.
//! - Binary records split on `\x00`, keys split off at `-K '\x01'`, with `-J`: every report
//!   line parses, and its partition and offset hold the record it numbers.
//! - FILEs sent whole with `-k`; `-l FILE` split at the delimiter, stopped by `-c`, echoed by
//!   `-T`, no summary with `-q`.
//! - A missing FILE fails the run before anything is sent, naming it; an unreadable one (a
//!   directory) fails it with a non-zero exit, naming it.
//! - Empty records skipped and `-Z` empty values sent null, as kcat does; `-p -1` the
//!   partitioner's choice; `-X transactional.id=..` one transaction for the whole input, as kcat.
//! - `bootstrap.servers` from `-F` alone (no `-b`) for `produce` and `metadata -J` (replica and
//!   in-sync replica ids listed as kcat lists them); neither is a clear error.
//! - `metadata` against a broker that accepts and never answers gives up after
//!   `request.timeout.ms`, naming it.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use picokafka_tests::{cli, consume, consume_with, Consumer, Kafka};

/// A record's key and value as read back.
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Runs `picokafka` with `args`, `input` on its stdin.
fn run(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(cli())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Written from a thread: the CLI may fill its stdout pipe before it has read all input.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for picokafka");
    writer.join().expect("stdin writer");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a successful run and returns its stdout.
fn success(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out.stdout.clone()
}

/// A seeded xorshift64*: reproducible "random" bytes.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// A file in the temp directory for this test process, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("picokafka-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn random_bytes_with_an_absent_delimiter_are_one_record_byte_exact() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-binary", 1);
    // Every byte but 0x00, newlines and invalid UTF-8 included.
    let data: Vec<u8> = random_bytes(300_000, 17).into_iter().map(|b| b.max(1)).collect();
    assert!(data.contains(&b'\n') && std::str::from_utf8(&data).is_err());
    // batch.size: the producer here still refuses a record larger than a batch (librdkafka
    // gives one a batch of its own); the broker's 1 MiB limit holds either way.
    let args = ["produce", "-b", &kafka.plaintext, "-t", &topic, "-D", "\\x00", "-X", "batch.size=1000000"];
    let out = run(&args, &data);
    let stdout = success(&out);
    assert!(stdout.is_empty(), "no data asked for on stdout: {}", text(&stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 records sent, 1 delivered, 0 failed, 300000 bytes"), "{stderr}");

    let got = consume(&kafka.plaintext, &[&topic], 1, Consumer::Confluent);
    assert_eq!(got[0].key, None);
    assert!(got[0].value.as_deref() == Some(&data[..]), "the record read back differs from the input");
}

#[test]
fn binary_records_split_on_nul_with_json_reports_matching_the_log() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-nul", 3);
    let n = 300;
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            // Keys and values of any byte but the two delimiters: \n, \xff, invalid UTF-8.
            let key = [format!("k{}", i % 7).as_bytes(), &[0xff, b'\n']].concat();
            let value: Vec<u8> = random_bytes(i % 50, i as u64 + 1).into_iter().map(|b| b.max(2)).collect();
            (key, value)
        })
        .collect();
    let mut input = Vec::new();
    for (k, v) in &records {
        input.extend_from_slice(k);
        input.push(1);
        input.extend_from_slice(v);
        input.push(0);
    }
    let args = ["produce", "-b", &kafka.plaintext, "-t", &topic, "-D", "\\x00", "-K", "\\x01", "-J"];
    let out = run(&args, &input);
    let stdout = text(&success(&out));

    // One JSON line per record, each naming its record's number in the input.
    let mut at = std::collections::HashMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["topic"], topic.as_str(), "{line}");
        assert!(v.get("error").is_none(), "{line}");
        let record = v["record"].as_u64().expect("record") as usize;
        let (key, value) = &records[record];
        // The keys are not UTF-8: base64 in the report.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(v["key_base64"], b64.as_str(), "{line}");
        assert_eq!(v["size"].as_u64(), Some(value.len() as u64), "{line}");
        assert!(v["ts"].as_i64().is_some_and(|ts| ts > 1_600_000_000_000), "{line}");
        let place = (v["partition"].as_i64().expect("partition"), v["offset"].as_i64().expect("offset"));
        assert!(at.insert(place, record).is_none(), "two reports for {place:?}");
    }
    assert_eq!(at.len(), n, "one report per record:\n{stdout}");

    let got = consume(&kafka.plaintext, &[&topic], n, Consumer::Confluent);
    for r in &got {
        let record = at[&(i64::from(r.partition), r.offset)];
        let (key, value) = &records[record];
        assert_eq!(r.key.as_ref(), Some(key), "record {record} at {}:{}", r.partition, r.offset);
        assert_eq!(r.value.as_ref(), Some(value), "record {record} at {}:{}", r.partition, r.offset);
    }
}

#[test]
fn files_whole_with_a_fixed_key_then_a_file_split_counted_and_echoed() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-files", 1);
    let a = TempFile::new("a.bin", b"first file\nwith two lines\n");
    let b = TempFile::new("b.bin", &[0xff, 0, b'\n', 0xfe]);
    let out = run(&["produce", "-b", &kafka.plaintext, "-t", &topic, "-k", "fixed", a.path(), b.path()], b"");
    success(&out);

    let lines = TempFile::new("lines.txt", b"one\ntwo\nthree\nfour\nfive\n");
    let args = ["produce", "-b", &kafka.plaintext, "-t", &topic, "-l", "-c", "3", "-T", "-q", lines.path()];
    let out = run(&args, b"");
    assert_eq!(text(&success(&out)), "one\ntwo\nthree\n", "-T echoes what was produced, -c stops at 3");
    assert!(out.stderr.is_empty(), "-q: no summary: {}", text(&out.stderr));

    let got = consume(&kafka.plaintext, &[&topic], 5, Consumer::Confluent);
    let pairs: Vec<(Option<&[u8]>, &[u8])> =
        got.iter().map(|r| (r.key.as_deref(), r.value.as_deref().unwrap_or_default())).collect();
    assert_eq!(
        pairs,
        [
            (Some(&b"fixed"[..]), &b"first file\nwith two lines\n"[..]),
            (Some(&b"fixed"[..]), &[0xff, 0, b'\n', 0xfe][..]),
            (None, &b"one"[..]),
            (None, &b"two"[..]),
            (None, &b"three"[..]),
        ]
    );
}

#[test]
fn an_input_file_that_cannot_be_read_fails_the_run_naming_it() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-missing", 1);
    let present = TempFile::new("present.txt", b"present\n");
    let missing = std::env::temp_dir().join(format!("picokafka-cli-{}-missing", std::process::id()));
    let missing = missing.to_str().unwrap();
    let out = run(&["produce", "-b", &kafka.plaintext, "-t", &topic, present.path(), missing], b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(missing) && stderr.contains("No such file"), "{stderr}");

    // A directory opens but does not read: the files before it go out, the run fails.
    let dir = std::env::temp_dir();
    let out =
        run(&["produce", "-b", &kafka.plaintext, "-t", &topic, present.path(), dir.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("reading {}", dir.display())), "{stderr}");
    // Nothing of the first run, the present file of the second.
    let got = consume(&kafka.plaintext, &[&topic], 1, Consumer::Confluent);
    assert_eq!(got[0].value.as_deref(), Some(&b"present\n"[..]));
}

#[test]
fn bootstrap_servers_from_a_properties_file_without_b() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-props", 2);
    let props =
        TempFile::new("client.properties", format!("bootstrap.servers={}\n", kafka.plaintext).as_bytes());
    let out = run(&["produce", "-F", props.path(), "-t", &topic, "-K", ":"], b"a:1\nb:2\nc:3\n");
    success(&out);
    let got = consume(&kafka.plaintext, &[&topic], 3, Consumer::Confluent);
    let mut keys: Vec<Vec<u8>> = got.into_iter().filter_map(|r| r.key).collect();
    keys.sort();
    assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);

    let out = run(&["metadata", "-F", props.path(), "-t", &topic, "-J"], b"");
    let stdout = text(&success(&out));
    let m: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let brokers = m["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{m}");
    let broker_id = brokers[0]["id"].as_i64().expect("broker id");
    assert_eq!(m["controllerid"].as_i64(), Some(broker_id), "{m}");
    let topics = m["topics"].as_array().expect("topics");
    assert_eq!(topics.len(), 1, "{m}");
    assert_eq!(topics[0]["topic"], topic.as_str());
    let partitions = topics[0]["partitions"].as_array().expect("partitions");
    let mut ids: Vec<i64> = partitions.iter().map(|p| p["partition"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [0, 1], "{m}");
    assert!(partitions.iter().all(|p| p["leader"].as_i64() == Some(broker_id)), "{m}");
    // kcat's lists of replica and in-sync replica ids: the one broker in both.
    let one = serde_json::json!([{ "id": broker_id }]);
    assert!(partitions.iter().all(|p| p["replicas"] == one && p["isrs"] == one), "{m}");

    // Neither -b, -F nor -X names a broker: said so, before any connection.
    for cmd in [&["produce", "-t", &topic][..], &["metadata"][..]] {
        let out = Command::new(cli()).args(cmd).env_remove("PICOKAFKA_BOOTSTRAP_SERVERS").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        assert!(text(&out.stderr).contains("no bootstrap servers: give -b"), "{}", text(&out.stderr));
    }
}

#[test]
fn empty_records_are_skipped_z_sends_null_and_x_transactional_id_is_one_transaction() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("cli-empty", 1);
    let out =
        run(&["produce", "-b", &kafka.plaintext, "-t", &topic, "-K", ":", "-Z", "-p", "-1"], b"a:\n\nv\n");
    success(&out);
    assert!(text(&out.stderr).contains("2 records sent, 2 delivered"), "{}", text(&out.stderr));

    let id = format!("cli-kcat-{}", std::process::id());
    let txn = format!("transactional.id={id}");
    let out = run(&["produce", "-b", &kafka.plaintext, "-t", &topic, "-X", &txn], b"x\ny\nz\n");
    success(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("transactions: 1 committed (3 records), 0 aborted"), "{stderr}");

    let got = consume_with(
        &kafka.plaintext,
        &[&topic],
        5,
        Consumer::Confluent,
        &[("isolation.level", "read_committed")],
    );
    let pairs: Vec<KeyValue<'_>> = got.iter().map(|r| (r.key.as_deref(), r.value.as_deref())).collect();
    assert_eq!(
        pairs,
        [
            (Some(&b"a"[..]), None),
            (None, Some(&b"v"[..])),
            (None, Some(&b"x"[..])),
            (None, Some(&b"y"[..])),
            (None, Some(&b"z"[..])),
        ]
    );
}

#[test]
fn metadata_gives_up_on_a_silent_broker_after_request_timeout_ms() {
    // Accepts the connection and never answers (a hung broker, a black-holing middlebox).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hold = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(std::time::Duration::from_secs(10));
        drop(conn);
    });
    let bin = cli();
    let started = std::time::Instant::now();
    let out =
        Command::new(bin).args(["metadata", "-b", &addr, "-X", "request.timeout.ms=1500"]).output().unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{addr}: no Metadata answer in 1500 ms (request.timeout.ms)")),
        "{stderr}"
    );
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
    drop(hold);
}
