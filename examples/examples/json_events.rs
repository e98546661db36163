//! Sends keyed JSON records with headers and prints where each one landed.
//!
//! `cargo run -p picokafka-examples --example json_events -- 127.0.0.1:9092 events 10`

use std::time::Duration;

use picokafka_tokio::serialize::{Json, Serializer, Str};
use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let bootstrap = args.get(1).map_or("127.0.0.1:9092", String::as_str);
    let topic = args.get(2).map_or("events", String::as_str);
    let count: u32 = args.get(3).map_or(Ok(10), |n| n.parse())?;

    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("compression.type", "lz4").set("linger.ms", "10");
    let producer = Producer::new(&config)?;

    let mut pending = Vec::new();
    for i in 0..count {
        let device = format!("sensor-{}", i % 4);
        let reading =
            serde_json::json!({ "device": device, "seq": i, "celsius": 20.0 + f64::from(i % 7) / 2.0 });
        let record = OwnedRecord::new(topic)
            .key(Str.serialize(&device)?)
            .value(Json.serialize(&reading)?)
            .header("content-type", Some("application/json"))
            .header("source", Some("json_events"));
        pending.push((device, producer.enqueue(record).await?));
    }
    for (device, delivery) in pending {
        match delivery.await {
            Ok(d) => {
                println!("{device}: {}[{}] offset {} at {}", d.topic, d.partition, d.offset, d.timestamp)
            }
            Err(e) => println!("{device}: failed: {e}"),
        }
    }
    producer.close(Duration::from_secs(10)).await;
    Ok(())
}
