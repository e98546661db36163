//! gzip, snappy and zstd: the codecs for hosts, each behind its own feature (`gzip`, `snappy`,
//! `zstd`; each implies `std`). LZ4 is in [`super::lz4`] and works everywhere.
//!
//! Formats are what Kafka clients write: gzip is a gzip member (RFC 1952, as Java's
//! `GZIPOutputStream`), snappy is a raw snappy block (as librdkafka writes it; Kafka's Java
//! consumer and librdkafka read both that and Java's xerial framing), zstd is one zstd frame.
//!
//! Both directions work on caller-provided slices, like the rest of the codec: compressing stops
//! (returns `None`) when the output would not fit, and decompressing never writes past `out`.

use super::codec::DecodeError;
use super::record_batch::Compression;

/// Whether this build can compress and decompress with `codec`.
pub const fn available(codec: Compression) -> bool {
    match codec {
        Compression::None | Compression::Lz4 => true,
        Compression::Gzip => cfg!(feature = "gzip"),
        Compression::Snappy => cfg!(feature = "snappy"),
        Compression::Zstd => cfg!(feature = "zstd"),
    }
}

/// Scratch space that compressing `input_len` bytes needs. gzip and zstd stop when the output
/// grows past the input (the batch then goes uncompressed); snappy needs room for its worst case
/// (`snap::raw::max_compress_len`, which is not `const`: 32 + n + n/6, checked in the tests).
pub const fn scratch_len(codec: Compression, input_len: usize) -> usize {
    match codec {
        Compression::Gzip | Compression::Zstd => input_len,
        Compression::Snappy => 32 + input_len + input_len / 6,
        Compression::None | Compression::Lz4 => 0,
    }
}

/// Compresses `input` into `out` with a host codec at `level` (`None`: the codec's default, gzip
/// 6 and zstd 3; gzip takes 0–9, zstd up to 22); `None` if the result does not fit in `out` or
/// the codec is not in this build.
pub fn compress(codec: Compression, level: Option<i32>, input: &[u8], out: &mut [u8]) -> Option<usize> {
    match codec {
        #[cfg(feature = "gzip")]
        Compression::Gzip => {
            use std::io::Write;
            let level = match level {
                Some(l @ 0..=9) => flate2::Compression::new(l as u32),
                _ => flate2::Compression::default(),
            };
            let mut w = flate2::write::GzEncoder::new(&mut out[..], level);
            // A full `out` is a `WriteZero` error: the output would not fit.
            w.write_all(input).ok()?;
            let rest = w.finish().ok()?.len();
            Some(out.len() - rest)
        }
        #[cfg(feature = "snappy")]
        Compression::Snappy => snap::raw::Encoder::new().compress(input, out).ok(),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            // One compression context per thread and level, kept: a new one per batch (what
            // `zstd::bulk::compress_to_buffer` makes) is allocated and its tables cleared each
            // time. Level 3 is zstd's (and the Java client's) default.
            std::thread_local! {
                static ZSTD: core::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
                    const { core::cell::RefCell::new(None) };
            }
            let level = level.unwrap_or(3);
            ZSTD.with_borrow_mut(|kept| {
                if kept.as_ref().is_none_or(|(l, _)| *l != level) {
                    *kept = Some((level, zstd::bulk::Compressor::new(level).ok()?));
                }
                kept.as_mut()?.1.compress_to_buffer(input, out).ok()
            })
        }
        _ => {
            let _ = (level, input, out);
            None
        }
    }
}

/// Decompresses `input` into `out` with a host codec; returns the decompressed length.
pub fn decompress(codec: Compression, input: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    match codec {
        #[cfg(feature = "gzip")]
        Compression::Gzip => {
            use std::io::Read;
            let mut r = flate2::read::GzDecoder::new(input);
            let mut n = 0;
            loop {
                if n == out.len() {
                    // Full: the data is larger than `out` unless the stream ends here.
                    let mut probe = [0u8; 1];
                    return match r.read(&mut probe) {
                        Ok(0) => Ok(n),
                        Ok(_) => Err(DecodeError::BufferTooSmall { required: n + 1 }),
                        Err(_) => Err(DecodeError::Compression),
                    };
                }
                match r.read(&mut out[n..]) {
                    Ok(0) => return Ok(n),
                    Ok(k) => n += k,
                    Err(_) => return Err(DecodeError::Compression),
                }
            }
        }
        #[cfg(feature = "snappy")]
        Compression::Snappy => {
            let required = snap::raw::decompress_len(input).map_err(|_| DecodeError::Compression)?;
            if required > out.len() {
                return Err(DecodeError::BufferTooSmall { required });
            }
            snap::raw::Decoder::new().decompress(input, out).map_err(|_| DecodeError::Compression)
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(input) {
                if size > out.len() as u64 {
                    return Err(DecodeError::BufferTooSmall {
                        required: usize::try_from(size).unwrap_or(usize::MAX),
                    });
                }
            }
            zstd::bulk::decompress_to_buffer(input, out).map_err(|_| DecodeError::Compression)
        }
        _ => {
            let _ = (input, out);
            Err(DecodeError::Compression)
        }
    }
}

#[cfg(all(test, feature = "gzip", feature = "snappy", feature = "zstd"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    const HOST: [Compression; 3] = [Compression::Gzip, Compression::Snappy, Compression::Zstd];

    #[test]
    fn snappy_scratch_covers_the_worst_case() {
        for n in [0, 1, 100, 16 << 10, 1 << 20] {
            assert!(scratch_len(Compression::Snappy, n) >= snap::raw::max_compress_len(n), "{n}");
        }
    }

    #[test]
    fn other_implementations_read_ours() {
        use std::io::Read;
        let data: std::vec::Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut out = vec![0u8; data.len() * 2];
        let n = compress(Compression::Gzip, None, &data, &mut out).unwrap();
        let mut back = std::vec::Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..n]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let n = compress(Compression::Snappy, None, &data, &mut out).unwrap();
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&out[..n]).unwrap(), data);
        let n = compress(Compression::Zstd, None, &data, &mut out).unwrap();
        assert_eq!(zstd::stream::decode_all(&out[..n]).unwrap(), data);
    }

    #[test]
    fn output_that_does_not_fit_is_none_and_input_that_does_not_fit_is_an_error() {
        let data: std::vec::Vec<u8> =
            (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for codec in HOST {
            let mut tiny = [0u8; 16];
            assert_eq!(compress(codec, None, &data, &mut tiny), None, "{codec:?}");
            let mut out = vec![0u8; scratch_len(codec, data.len()) + 64];
            let n = compress(codec, None, &data, &mut out).unwrap();
            let mut small = vec![0u8; data.len() - 1];
            assert!(
                matches!(decompress(codec, &out[..n], &mut small), Err(DecodeError::BufferTooSmall { .. })),
                "{codec:?}"
            );
        }
    }

    /// The level reaches the encoder: each level's output decodes to the input, and a higher
    /// level gives a smaller one for text that rewards effort.
    #[test]
    fn levels_change_the_output() {
        use std::io::Read;
        let data: std::vec::Vec<u8> = (0..20_000u32)
            .flat_map(|i| {
                std::format!("{{\"sensor\":{},\"reading\":{}}}", i % 97, (i * 7919) % 1013).into_bytes()
            })
            .collect();
        let mut out = vec![0u8; data.len()];
        let mut size = |codec, level| {
            let n = compress(codec, level, &data, &mut out).unwrap();
            let mut back = std::vec::Vec::new();
            match codec {
                Compression::Gzip => {
                    flate2::read::MultiGzDecoder::new(&out[..n]).read_to_end(&mut back).unwrap();
                }
                _ => back = zstd::stream::decode_all(&out[..n]).unwrap(),
            }
            assert_eq!(back, data, "{codec:?} {level:?}");
            n
        };
        let (gzip_1, gzip_default, gzip_9) = (
            size(Compression::Gzip, Some(1)),
            size(Compression::Gzip, None),
            size(Compression::Gzip, Some(9)),
        );
        assert!(gzip_1 > gzip_default && gzip_default >= gzip_9, "{gzip_1} {gzip_default} {gzip_9}");
        let (zstd_1, zstd_default, zstd_19) = (
            size(Compression::Zstd, Some(1)),
            size(Compression::Zstd, None),
            size(Compression::Zstd, Some(19)),
        );
        assert!(zstd_1 > zstd_19 && zstd_default > zstd_19, "{zstd_1} {zstd_default} {zstd_19}");
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..3000), repeat in 1usize..4) {
            let data: std::vec::Vec<u8> = data.iter().copied().cycle().take(data.len() * repeat).collect();
            for codec in HOST {
                let mut out = vec![0u8; scratch_len(codec, data.len()) + 64];
                if let Some(n) = compress(codec, None, &data, &mut out) {
                    let mut back = vec![0u8; data.len()];
                    prop_assert_eq!(decompress(codec, &out[..n], &mut back), Ok(data.len()));
                    prop_assert_eq!(&back, &data);
                }
            }
        }

        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = [0u8; 512];
            for codec in HOST {
                let _ = decompress(codec, &input, &mut out);
            }
        }
    }
}
