//! LZ4 frames: decompressing anything never panics; compressing anything round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picokafka::protocol::lz4;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u8; 4 * data.len() + 64];
    let _ = lz4::decompress(data, &mut out);

    let mut frame = vec![0u8; lz4::max_compressed_len(data.len())];
    let n = lz4::compress(data, &mut frame).expect("max_compressed_len is enough");
    let mut back = vec![0u8; data.len()];
    assert_eq!(lz4::decompress(&frame[..n], &mut back), Ok(data.len()));
    assert_eq!(back, data);
});
