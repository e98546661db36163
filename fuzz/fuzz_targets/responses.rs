//! Every response decoder at every version: any bytes give a value or an error, never a panic.
//! The first byte picks the API and version, the rest is the body (after the response header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use picokafka::protocol::api_versions::ApiVersionsResponse;
use picokafka::protocol::header::{ApiKey, ResponseHeader};
use picokafka::protocol::init_producer_id::InitProducerIdResponse;
use picokafka::protocol::metadata::MetadataResponse;
use picokafka::protocol::produce::ProduceResponse;
use picokafka::protocol::Reader;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let version = i16::from(selector & 0x0f);
    match selector >> 4 {
        0 => {
            if let Ok(r) = ApiVersionsResponse::decode(body, version) {
                for range in r.api_keys {
                    let _ = r.negotiate(range.api_key, 0, 12);
                }
            }
        }
        1 => {
            if let Ok(m) = MetadataResponse::decode(body, version) {
                for t in m.topics {
                    for p in t.partitions {
                        let _ = m.broker(p.leader_id);
                    }
                }
            }
        }
        2 => {
            let _ = InitProducerIdResponse::decode(body, version);
        }
        3 => {
            if let Ok(r) = ProduceResponse::decode(body, version) {
                for t in r.responses {
                    for p in t.partitions {
                        for e in p.record_errors {
                            let _ = e.message;
                        }
                    }
                }
                for n in r.node_endpoints {
                    let _ = n.host;
                }
            }
        }
        _ => {
            let key = ApiKey::from(i16::from(selector & 0x30) >> 4);
            let _ = ResponseHeader::decode(&mut Reader::new(body), key, version);
        }
    }
});
