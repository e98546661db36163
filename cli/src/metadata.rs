//! `picokafka metadata`: one connection to a bootstrap broker (TLS and SASL as configured, through
//! `picokafka_tokio::BrokerConnection`), then Metadata for all topics (or the ones named),
//! printed as a table. A one-shot query needs no producer.

use picokafka::protocol::metadata::{MetadataRequest, MetadataResponse};
use picokafka::protocol::ApiKey;
use picokafka_tokio::{BrokerConnection, ClientConfig};

pub async fn print(bootstrap: &str, topics: &[String], config: &ClientConfig) -> Result<(), String> {
    let mut last_error = String::from("no bootstrap server");
    for entry in picokafka::producer::bootstrap::parse(bootstrap) {
        let (host, port) = entry.map_err(|_| format!("bad bootstrap address in {bootstrap}"))?;
        match query(host, port, topics, config).await {
            Ok(()) => return Ok(()),
            // A refused authentication will not go better at the next broker.
            Err(e @ picokafka_tokio::Error::Authentication(_) | e @ picokafka_tokio::Error::Config(_)) => {
                return Err(e.to_string())
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(last_error)
}

async fn query(
    host: &str,
    port: u16,
    topics: &[String],
    config: &ClientConfig,
) -> Result<(), picokafka_tokio::Error> {
    let mut broker = BrokerConnection::connect(config, host, port).await?;
    let v = broker.negotiate(ApiKey::Metadata, 1, 12).ok_or_else(|| {
        picokafka_tokio::Error::Connection(format!("{host}:{port}: broker lacks Metadata v1+"))
    })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let request = MetadataRequest {
        topics: (!names.is_empty()).then(|| names.iter().copied()),
        allow_auto_topic_creation: false,
    };
    let body = broker.call(v, &request).await?;
    let m = MetadataResponse::decode(&body, v)
        .map_err(|e| picokafka_tokio::Error::Connection(format!("{host}:{port}: malformed Metadata: {e}")))?;
    println!("cluster {} (controller {})", m.cluster_id.unwrap_or("-"), m.controller_id);
    println!("{} brokers:", m.brokers.len());
    for b in m.brokers.iter() {
        println!(
            "  broker {} at {}:{}{}",
            b.node_id,
            b.host,
            b.port,
            b.rack.map(|r| format!(" rack {r}")).unwrap_or_default()
        );
    }
    println!("{} topics:", m.topics.len());
    for t in m.topics.iter() {
        let name = t.name.unwrap_or("?");
        if !t.error_code.is_ok() {
            println!("  topic \"{name}\": {}", t.error_code);
            continue;
        }
        println!("  topic \"{name}\" with {} partitions:", t.partitions.len());
        for p in t.partitions.iter() {
            let err = if p.error_code.is_ok() { String::new() } else { format!(", {}", p.error_code) };
            println!(
                "    partition {}, leader {}, epoch {}, replicas {}, isrs {}{err}",
                p.partition_index, p.leader_id, p.leader_epoch, p.replica_count, p.isr_count
            );
        }
    }
    Ok(())
}
