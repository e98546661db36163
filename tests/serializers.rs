//! Serializers, checked by deserializers nobody here wrote: records produced to Apache Kafka with
//! picokafka's serializers, read back by confluent-kafka, and their keys and values decoded by
//! confluent-kafka's String/Integer/DoubleDeserializer, Python's json and fastavro (after the
//! Schema Registry header).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use picokafka_tests::{consume, python, root, Broker, Consumer, Kafka};
use picokafka_tokio::serialize::{Avro, BigEndian, Json, SchemaRegistry, Serializer, Str};
use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};
use serde::Serialize;

const SCHEMA: &str = r#"{"type": "record", "name": "Reading", "namespace": "picokafka.test",
  "fields": [{"name": "device", "type": "string"}, {"name": "seq", "type": "long"},
             {"name": "temp", "type": "double"}, {"name": "note", "type": ["null", "string"]}]}"#;

#[derive(Serialize)]
struct Reading {
    device: String,
    seq: i64,
    temp: f64,
    note: Option<String>,
}

fn reading(i: i64) -> Reading {
    Reading {
        device: format!("sensor-{}", i % 5),
        seq: i,
        temp: 20.0 + i as f64 / 4.0,
        note: (i % 3 == 0).then(|| format!("n{i}")),
    }
}

/// Decodes `(format, payload)` pairs with tests/py/deserialize.py; one JSON value each.
fn decode(items: &[(String, Vec<u8>)]) -> Vec<serde_json::Value> {
    let mut child = Command::new(python())
        .arg(root().join("tests/py/deserialize.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("deserialize.py");
    let mut input = String::new();
    for (format, bytes) in items {
        input.push_str(&format!("{format} {}\n", base64::engine::general_purpose::STANDARD.encode(bytes)));
    }
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "deserialize.py failed");
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_deserializers_read_what_our_serializers_wrote() {
    let broker = Kafka::shared();
    let [ints, doubles, json, avro_topic] = ["ints", "doubles", "json", "avro"].map(|t| broker.topic(t, 1));
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap()).set("linger.ms", "2");
    let producer = Producer::new(&config).unwrap();
    let avro = SchemaRegistry::new(42, Avro::new(SCHEMA).unwrap());
    let n = 50i64;
    for i in 0..n {
        let key = Str.serialize(&format!("k{i}")).unwrap();
        let records = [
            OwnedRecord::new(ints.as_str())
                .key(key.clone())
                .value(BigEndian.serialize(&(i as i32 * -7919)).unwrap()),
            OwnedRecord::new(doubles.as_str())
                .key(key.clone())
                .value(BigEndian.serialize(&(i as f64 * 0.125)).unwrap()),
            OwnedRecord::new(json.as_str()).key(key.clone()).value(Json.serialize(&reading(i)).unwrap()),
            OwnedRecord::new(avro_topic.as_str()).key(key).value(avro.serialize(&reading(i)).unwrap()),
        ];
        for r in records {
            producer.send(r).await.unwrap();
        }
    }
    producer.close(Duration::from_secs(10)).await;

    let schema_file = std::env::temp_dir().join(format!("picokafka-reading-{}.avsc", std::process::id()));
    std::fs::write(&schema_file, SCHEMA).unwrap();
    let read = consume(
        &broker.bootstrap(),
        &[&ints, &doubles, &json, &avro_topic],
        4 * n as usize,
        Consumer::Confluent,
    );
    let mut items = Vec::new();
    for r in &read {
        items.push(("string".to_string(), r.key.clone().unwrap()));
        let format = match r.topic.split('-').next().unwrap_or_default() {
            "ints" => "int".to_string(),
            "doubles" => "double".to_string(),
            "json" => "json".to_string(),
            _ => format!("avro:{}:42", schema_file.display()),
        };
        items.push((format, r.value.clone().unwrap()));
    }
    let decoded = decode(&items);
    let _ = std::fs::remove_file(&schema_file);
    for (r, pair) in read.iter().zip(decoded.chunks(2)) {
        let i = r.offset;
        assert_eq!(pair[0], serde_json::json!(format!("k{i}")), "{} key", r.topic);
        let want = match r.topic.split('-').next().unwrap_or_default() {
            "ints" => serde_json::json!(i as i32 * -7919),
            "doubles" => serde_json::json!(i as f64 * 0.125),
            _ => serde_json::to_value(reading(i)).unwrap(),
        };
        assert_eq!(pair[1], want, "{} record {i}", r.topic);
    }
}
