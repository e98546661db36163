//! `picokafka metadata`: one connection to a bootstrap broker (TLS and SASL as configured, through
//! `picokafka_tokio::BrokerConnection`), then Metadata for all topics (or the ones named),
//! printed as a table or (`-J`) as one line of JSON. A one-shot query needs no producer; it
//! gives up after `request.timeout.ms` (30 s unless set) per bootstrap broker.

use picokafka::protocol::metadata::{MetadataRequest, MetadataResponse};
use picokafka::protocol::ApiKey;
use picokafka_tokio::{BrokerConnection, ClientConfig, ConnectionCause, ConnectionError};
use serde_json::json;

pub async fn print(
    bootstrap: &str,
    topics: &[String],
    config: &ClientConfig,
    json: bool,
) -> Result<(), String> {
    let timeout_ms = match config.get("request.timeout.ms") {
        Some(t) => t.trim().parse().map_err(|_| format!("request.timeout.ms={t}: not a number"))?,
        None => 30_000,
    };
    let mut last_error = String::from("no bootstrap server");
    for entry in picokafka::producer::bootstrap::parse(bootstrap) {
        let (host, port) = entry.map_err(|_| format!("bad bootstrap address in {bootstrap}"))?;
        let timeout = std::time::Duration::from_millis(timeout_ms);
        let answer = tokio::time::timeout(timeout, query(host, port, topics, config, json)).await;
        let answer = answer.unwrap_or_else(|_| {
            Err(picokafka_tokio::Error::Connection(ConnectionError::new(
                format!("{host}:{port}"),
                ConnectionCause::NoAnswer { api: "Metadata", waited_ms: timeout_ms },
            )))
        });
        match answer {
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
    json: bool,
) -> Result<(), picokafka_tokio::Error> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (body, v) = ask(host, port, &names, config).await?;
    let m = MetadataResponse::decode(&body, v).map_err(|e| {
        let cause = ConnectionCause::Malformed { what: "Metadata", error: e };
        picokafka_tokio::Error::Connection(ConnectionError::new(format!("{host}:{port}"), cause))
    })?;
    if json {
        println!("{}", to_json(&m, &format!("{host}:{port}")));
        return Ok(());
    }
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
            // kcat's line: `partition 0, leader 1, replicas: 1,2,3, isrs: 1,2`.
            println!(
                "    partition {}, leader {}, epoch {}, replicas: {}, isrs: {}{err}",
                p.partition_index,
                p.leader_id,
                p.leader_epoch,
                ids(p.replicas),
                ids(p.isr)
            );
        }
    }
    Ok(())
}

/// One Metadata exchange with `host:port`, for `topics` (all when empty): the answer's body and
/// the version it is in.
async fn ask(
    host: &str,
    port: u16,
    topics: &[&str],
    config: &ClientConfig,
) -> Result<(Vec<u8>, i16), picokafka_tokio::Error> {
    let mut broker = BrokerConnection::connect(config, host, port).await?;
    let v = broker.negotiate(ApiKey::Metadata, 1, 12).ok_or_else(|| {
        picokafka_tokio::Error::Connection(ConnectionError::new(
            format!("{host}:{port}"),
            ConnectionCause::MissingApi { api: "Metadata", min_version: 1 },
        ))
    })?;
    let request = MetadataRequest {
        topics: (!topics.is_empty()).then(|| topics.iter().copied()),
        allow_auto_topic_creation: false,
    };
    Ok((broker.call(v, &request).await?, v))
}

/// Broker ids as kcat lists them: `1,2,3`.
fn ids(list: picokafka::protocol::codec::Array<'_, i32>) -> String {
    list.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

/// kcat's `-L -J` layout (`controllerid`, `brokers` with `id` and `name`, `topics` with `topic`
/// and `partitions` with `partition`, `leader`, and `replicas` / `isrs` as lists of `{"id": N}`),
/// with what Metadata adds (`leader_epoch`, `offline_replicas`, broker `host`, `port`, `rack`).
fn to_json(m: &MetadataResponse<'_>, from: &str) -> serde_json::Value {
    let brokers: Vec<_> = m
        .brokers
        .iter()
        .map(|b| {
            json!({
                "id": b.node_id,
                "name": format!("{}:{}", b.host, b.port),
                "host": b.host,
                "port": b.port,
                "rack": b.rack,
            })
        })
        .collect();
    let topics: Vec<_> = m
        .topics
        .iter()
        .map(|t| {
            let mut topic = json!({ "topic": t.name, "internal": t.is_internal });
            if !t.error_code.is_ok() {
                topic["error"] = t.error_code.to_string().into();
            }
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = json!({
                        "partition": p.partition_index,
                        "leader": p.leader_id,
                        "leader_epoch": p.leader_epoch,
                        "replicas": p.replicas.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
                        "isrs": p.isr.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
                        "offline_replicas": p.offline_replicas.iter().collect::<Vec<_>>(),
                    });
                    if !p.error_code.is_ok() {
                        partition["error"] = p.error_code.to_string().into();
                    }
                    partition
                })
                .collect();
            topic["partitions"] = partitions.into();
            topic
        })
        .collect();
    json!({
        "originating_broker": from,
        "cluster_id": m.cluster_id,
        "controllerid": m.controller_id,
        "brokers": brokers,
        "topics": topics,
    })
}

/// How many partitions `topic` has, asked of the first bootstrap broker that answers within
/// `timeout`; `None` if none does, or the topic is not there. For `produce`'s default batch
/// size: a question, not a requirement, so nothing here is an error.
pub async fn partition_count(
    bootstrap: &str,
    topic: &str,
    config: &ClientConfig,
    timeout: std::time::Duration,
) -> Option<usize> {
    let ask = async {
        for entry in picokafka::producer::bootstrap::parse(bootstrap) {
            let Ok((host, port)) = entry else { continue };
            let Ok((body, v)) = ask(host, port, &[topic], config).await else { continue };
            let Ok(m) = MetadataResponse::decode(&body, v) else { continue };
            return m
                .topics
                .iter()
                .find(|t| t.name == Some(topic) && t.error_code.is_ok())
                .map(|t| t.partitions.len());
        }
        None
    };
    tokio::time::timeout(timeout, ask).await.ok().flatten()
}
