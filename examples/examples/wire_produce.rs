//! Produces records to a broker with nothing but the codec and a blocking TCP socket: ApiVersions,
//! then one LZ4-compressed batch per partition in a single Produce request.
//!
//! `cargo run -p picokafka-examples --example wire_produce -- 127.0.0.1:9092 TOPIC COUNT`
//!
//! Leader lookup, retries and idempotence belong to the producer state machine; this example only
//! shows the bytes.

use std::io::{Read, Write};
use std::net::TcpStream;

use picokafka::protocol::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use picokafka::protocol::produce::{PartitionData, ProduceRequest, ProduceResponse, TopicData};
use picokafka::protocol::record_batch::{BatchBuilder, Compression, Header, ProducerState};
use picokafka::protocol::{encode_request, ApiKey, Reader, Request, ResponseHeader, Writer};

fn call<R: Request>(stream: &mut TcpStream, version: i16, id: i32, body: &R) -> Vec<u8> {
    let mut buf = vec![0u8; 4 << 20];
    let mut w = Writer::new(&mut buf);
    encode_request(&mut w, version, id, Some("wire_produce"), body);
    let n = w.finish().expect("request fits in 4 MiB");
    stream.write_all(&buf[..n]).expect("send");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut frame = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut frame).expect("response");
    let mut r = Reader::new(&frame);
    ResponseHeader::decode(&mut r, R::API_KEY, version).expect("response header");
    r.rest().to_vec()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, count] = &args[..] else {
        eprintln!("usage: wire_produce HOST:PORT TOPIC COUNT");
        std::process::exit(2);
    };
    let count: i64 = count.parse().expect("COUNT is a number");
    let mut stream = TcpStream::connect(bootstrap.as_str()).expect("connect");

    let body = call(
        &mut stream,
        4,
        1,
        &ApiVersionsRequest { client_software_name: "picokafka", client_software_version: "0.1" },
    );
    let versions = ApiVersionsResponse::decode(&body, 4).expect("ApiVersions");
    let produce_v = versions.negotiate(ApiKey::Produce, 3, 11).expect("broker speaks Produce v3+");

    let mut buf = vec![0u8; 1 << 20];
    let mut batch = BatchBuilder::new(&mut buf).expect("buffer holds a header");
    for i in 0..count {
        let key = format!("key-{i}");
        let value = format!("record {i} from picokafka");
        let headers = [Header { key: "source", value: Some(b"wire_produce") }];
        batch
            .push(1_700_000_000_000 + i, Some(key.as_bytes()), Some(value.as_bytes()), &headers)
            .expect("batch has room");
    }
    let mut scratch = vec![0u8; Compression::Lz4.scratch_len(batch.len())];
    let n = batch.finish(Compression::Lz4, ProducerState::NONE, &mut scratch).expect("batch completes");

    let partitions = [PartitionData { index: 0, records: &buf[..n] }];
    let topics = [TopicData { name: topic, partitions: &partitions }];
    let body = call(
        &mut stream,
        produce_v,
        2,
        &ProduceRequest { transactional_id: None, acks: -1, timeout_ms: 5000, topics: &topics },
    );
    let resp = ProduceResponse::decode(&body, produce_v).expect("Produce response");
    for t in resp.responses {
        for p in t.partitions {
            println!(
                "{}[{}]: {} records, base offset {}, {}",
                t.name, p.index, count, p.base_offset, p.error_code
            );
        }
    }
}
