//! gzip, snappy and zstd (the host codecs): decompressing anything into a bounded buffer never
//! panics and never writes past it; compressing anything that fits round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picokafka::protocol::host_codecs;
use picokafka::protocol::record_batch::Compression;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else { return };
    let codec = match selector % 3 {
        0 => Compression::Gzip,
        1 => Compression::Snappy,
        _ => Compression::Zstd,
    };
    let mut out = vec![0u8; 4096];
    let _ = host_codecs::decompress(codec, data, &mut out);
    // The default level, the fastest, the smallest, and one past what gzip takes.
    let level = [None, Some(1), Some(9), Some(19)][usize::from(selector / 3) % 4];
    let mut packed = vec![0u8; host_codecs::scratch_len(codec, data.len()) + 64];
    if let Some(n) = host_codecs::compress(codec, level, data, &mut packed) {
        let mut back = vec![0u8; data.len()];
        assert_eq!(host_codecs::decompress(codec, &packed[..n], &mut back), Ok(data.len()));
        assert_eq!(back, data);
    }
});
