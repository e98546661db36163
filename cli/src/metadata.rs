//! `picokafka metadata`: one connection to a bootstrap broker, ApiVersions, then Metadata for all
//! topics (or the ones named), printed as a table. It uses the codec directly: a one-shot query
//! needs no producer.

use picokafka::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use picokafka::protocol::metadata::{MetadataRequest, MetadataResponse};
use picokafka::protocol::{encode_request, ApiKey, ErrorCode, Reader, Request, ResponseHeader, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted: a cluster's whole metadata.
const MAX_RESPONSE: usize = 64 << 20;

async fn call<R: Request>(
    stream: &mut TcpStream,
    version: i16,
    id: i32,
    body: &R,
) -> Result<Vec<u8>, String> {
    let mut w = Writer::counting();
    let len = encode_request(&mut w, version, id, Some("picokafka-cli"), body);
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    encode_request(&mut w, version, id, Some("picokafka-cli"), body);
    w.finish().map_err(|e| e.to_string())?;
    stream.write_all(&buf).await.map_err(|e| e.to_string())?;
    let size = stream.read_i32().await.map_err(|e| e.to_string())?;
    let size = usize::try_from(size).ok().filter(|&s| s <= MAX_RESPONSE).ok_or("response too large")?;
    let mut frame = vec![0u8; size];
    stream.read_exact(&mut frame).await.map_err(|e| e.to_string())?;
    let mut r = Reader::new(&frame);
    let header = ResponseHeader::decode(&mut r, R::API_KEY, version).map_err(|e| e.to_string())?;
    if header.correlation_id != id {
        return Err(format!("correlation id {} does not match request {id}", header.correlation_id));
    }
    Ok(r.rest().to_vec())
}

pub async fn print(bootstrap: &str, topics: &[String]) -> Result<(), String> {
    let mut last_error = String::from("no bootstrap server");
    for entry in picokafka::producer::bootstrap::parse(bootstrap) {
        let (host, port) = entry.map_err(|_| format!("bad bootstrap address in {bootstrap}"))?;
        match query(host, port, topics).await {
            Ok(()) => return Ok(()),
            Err(e) => last_error = format!("{host}:{port}: {e}"),
        }
    }
    Err(last_error)
}

async fn query(host: &str, port: u16, topics: &[String]) -> Result<(), String> {
    let mut stream = TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
    let hello = ApiVersionsRequest { client_software_name: "picokafka-cli", client_software_version: "0.1" };
    let mut version = 4;
    let versions = loop {
        let body = call(&mut stream, version, 1, &hello).await?;
        let resp = ApiVersionsResponse::decode(&body, version).map_err(|e| e.to_string())?;
        match resp.error_code {
            ErrorCode::UnsupportedVersion if version > 0 => {
                version = resp.range(ApiKey::ApiVersions).map_or(0, |r| r.max_version).min(version - 1);
            }
            ErrorCode::NoError => break body,
            code => return Err(format!("ApiVersions: {code}")),
        }
    };
    let resp = ApiVersionsResponse::decode(&versions, version).map_err(|e| e.to_string())?;
    let v = resp.negotiate(ApiKey::Metadata, 1, 12).ok_or("broker lacks Metadata v1+")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let request = MetadataRequest {
        topics: (!names.is_empty()).then(|| names.iter().copied()),
        allow_auto_topic_creation: false,
    };
    let body = call(&mut stream, v, 2, &request).await?;
    let m = MetadataResponse::decode(&body, v).map_err(|e| e.to_string())?;
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
