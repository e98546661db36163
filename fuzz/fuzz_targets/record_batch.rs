//! The record batch decoder, and the records inside (decompressed if LZ4): never a panic.
//! The CRC is recomputed over the input first, so the fuzzer reaches the record parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picokafka::protocol::crc::crc32c;
use picokafka::protocol::record_batch::RecordBatch;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() >= 21 {
        let crc = crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    let mut input = &bytes[..];
    while let Ok((batch, rest)) = RecordBatch::decode(input) {
        let mut out = vec![0u8; 64 * 1024];
        if let Ok(records) = batch.decompress_records(&mut out) {
            for r in records {
                for h in r.headers {
                    let _ = (h.key, h.value);
                }
            }
        }
        if rest.len() >= input.len() {
            break;
        }
        input = rest;
    }
});
