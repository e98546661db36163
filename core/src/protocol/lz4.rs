//! The LZ4 frame format, as Kafka uses it for `compression.type=lz4`.
//!
//! `lz4_flex` has a frame encoder, but it needs `std`; this module writes the frame around
//! `lz4_flex::block` so that it works without `std` or a heap. Kafka (Java) reads only frames
//! with independent blocks, so that is all we write: FLG = version 01 + block independence,
//! BD = 64 KiB maximum block size, no content size, no checksums but the header's. A block that
//! does not shrink is stored raw (high bit of its size set).

use xxhash_rust::xxh32::xxh32;

use super::codec::DecodeError;

const MAGIC: u32 = 0x184D_2204;
/// Version 01, independent blocks.
const FLG: u8 = 0b0110_0000;
/// Maximum block size code 4: 64 KiB.
const BD: u8 = 4 << 4;
/// The frame's maximum block size (what `BD` declares).
pub const BLOCK_SIZE: usize = 64 * 1024;
/// Input per block: one byte short of what `lz4_flex` compresses with 16-bit table entries
/// (`len < u16::MAX`), so that only that variant of its compressor is linked. Blocks smaller
/// than the frame's maximum are valid LZ4 (and only a batch over 64 KiB has more than one).
const CHUNK: usize = u16::MAX as usize - 1;
const STORED: u32 = 0x8000_0000;
const HEADER_LEN: usize = 7;

/// Room [`compress`] needs for `input_len` bytes of input.
///
/// The frame itself is at most header + input + 4 bytes per block + end mark, because a block
/// that does not shrink is stored raw. But `lz4_flex` only compresses into a slot of its own
/// worst-case size, so the largest block needs that much extra room while it is tried.
pub const fn max_compressed_len(input_len: usize) -> usize {
    let largest_block = if input_len < CHUNK { input_len } else { CHUNK };
    let slack = lz4_flex::block::get_maximum_output_size(largest_block) - largest_block;
    HEADER_LEN + input_len + 4 * input_len.div_ceil(CHUNK) + 4 + slack
}

/// The frame header checksum: the second byte of xxh32 over the frame descriptor.
fn header_checksum(descriptor: &[u8]) -> u8 {
    (xxh32(descriptor, 0) >> 8) as u8
}

/// Compresses `input` into an LZ4 frame in `out`. Fails only when `out` is shorter than
/// [`max_compressed_len`] and the data does not fit; the error says how much is required.
pub fn compress(input: &[u8], out: &mut [u8]) -> Result<usize, usize> {
    let required = max_compressed_len(input.len());
    let mut pos = 0;
    let put = |out: &mut [u8], bytes: &[u8], pos: &mut usize| -> Result<(), usize> {
        let end = *pos + bytes.len();
        out.get_mut(*pos..end).ok_or(required)?.copy_from_slice(bytes);
        *pos = end;
        Ok(())
    };
    put(out, &MAGIC.to_le_bytes(), &mut pos)?;
    put(out, &[FLG, BD, header_checksum(&[FLG, BD])], &mut pos)?;
    for block in input.chunks(CHUNK) {
        let data_start = pos + 4;
        let slot = lz4_flex::block::get_maximum_output_size(block.len());
        let compressed = match out.get_mut(data_start..data_start + slot) {
            Some(dst) => lz4_flex::block::compress_into(block, dst).ok(),
            None => return Err(required),
        };
        match compressed {
            Some(n) if n < block.len() => {
                // `n < CHUNK`, so it fits the 31 bits of a block size.
                put(out, &(n as u32).to_le_bytes(), &mut pos)?;
                pos += n;
            }
            _ => {
                put(out, &(block.len() as u32 | STORED).to_le_bytes(), &mut pos)?;
                put(out, block, &mut pos)?;
            }
        }
    }
    put(out, &0u32.to_le_bytes(), &mut pos)?;
    Ok(pos)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError::Truncated);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_u32_le(input: &mut &[u8]) -> Result<u32, DecodeError> {
    let b = take(input, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decompresses one LZ4 frame from `input` into `out`; returns the decompressed length.
///
/// Accepts what other writers produce (content size, block and content checksums, any block size)
/// but not dependent blocks or dictionaries, which Kafka does not allow either.
pub fn decompress(mut input: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let input = &mut input;
    if take_u32_le(input)? != MAGIC {
        return Err(DecodeError::Compression);
    }
    let descriptor_start = *input;
    let flg = take(input, 1)?[0];
    let bd = take(input, 1)?[0];
    let independent = flg & 0x20 != 0;
    let block_checksums = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let dictionary = flg & 0x01 != 0;
    if flg >> 6 != 0b01 || !independent || dictionary || flg & 0x02 != 0 || bd & 0x8f != 0 {
        return Err(DecodeError::Compression);
    }
    let max_block = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(DecodeError::Compression),
    };
    if content_size {
        take(input, 8)?;
    }
    let descriptor_len = descriptor_start.len() - input.len();
    if take(input, 1)?[0] != header_checksum(&descriptor_start[..descriptor_len]) {
        return Err(DecodeError::Compression);
    }
    let written = blocks(input, out, block_checksums, max_block)?;
    if content_checksum && take_u32_le(input)? != xxh32(&out[..written], 0) {
        return Err(DecodeError::Compression);
    }
    Ok(written)
}

/// Decompresses a frame [`compress`] wrote (the header it writes, no checksums but the
/// header's): less code than [`decompress`], for a producer reading back its own batches.
pub fn decompress_own(input: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..].copy_from_slice(&[FLG, BD, header_checksum(&[FLG, BD])]);
    match input.split_at_checked(HEADER_LEN) {
        Some((h, mut rest)) if h == header => blocks(&mut rest, out, false, BLOCK_SIZE),
        _ => Err(DecodeError::Compression),
    }
}

/// The blocks of a frame, up to its end mark, decompressed into `out`: their length.
fn blocks(
    input: &mut &[u8],
    out: &mut [u8],
    block_checksums: bool,
    max_block: usize,
) -> Result<usize, DecodeError> {
    let mut written = 0;
    loop {
        let size = take_u32_le(input)?;
        if size == 0 {
            break;
        }
        let len = (size & !STORED) as usize;
        if len > max_block {
            return Err(DecodeError::Compression);
        }
        let data = take(input, len)?;
        if block_checksums && take_u32_le(input)? != xxh32(data, 0) {
            return Err(DecodeError::Compression);
        }
        let dst = &mut out[written..];
        if size & STORED != 0 {
            dst.get_mut(..len)
                .ok_or(DecodeError::BufferTooSmall { required: written + len })?
                .copy_from_slice(data);
            written += len;
        } else {
            written += lz4_flex::block::decompress_into(data, dst).map_err(|e| match e {
                lz4_flex::block::DecompressError::OutputTooSmall { expected, .. } => {
                    DecodeError::BufferTooSmall { required: written + expected }
                }
                _ => DecodeError::Compression,
            })?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn frame(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; max_compressed_len(input.len())];
        let n = compress(input, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn reference_decode(frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut lz4_flex::frame::FrameDecoder::new(frame), &mut out).unwrap();
        out
    }

    #[test]
    fn empty_input_is_header_and_end_mark() {
        assert_eq!(frame(b""), [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0]);
    }

    #[test]
    fn own_frames_read_back_with_the_short_reader_and_foreign_ones_do_not() {
        let mut data: Vec<u8> = b"kafka ".iter().copied().cycle().take(150_000).collect();
        data.extend((0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let f = frame(&data);
        let mut back = vec![0u8; data.len()];
        assert_eq!(decompress_own(&f, &mut back), Ok(data.len()));
        assert_eq!(back, data);
        assert_eq!(decompress_own(&f, &mut back[..1000]).map_err(|_| ()), Err(()), "too small");
        // A frame with a content checksum (another writer's) is for the full reader.
        let mut foreign = f.clone();
        foreign[4] |= 0x04;
        foreign[6] = header_checksum(&foreign[4..6]);
        assert_eq!(decompress_own(&foreign, &mut back), Err(DecodeError::Compression));
        assert_eq!(decompress_own(&f[..5], &mut back), Err(DecodeError::Compression));
    }

    #[test]
    fn compressible_and_incompressible_blocks() {
        let text: Vec<u8> = b"kafka ".iter().copied().cycle().take(200_000).collect();
        let f = frame(&text);
        assert!(f.len() < 2_000, "{}", f.len());
        assert_eq!(reference_decode(&f), text);
        let mut back = vec![0u8; text.len()];
        assert_eq!(decompress(&f, &mut back), Ok(text.len()));
        assert_eq!(back, text);

        // Pseudo-random bytes do not compress: every block is stored.
        let mut x = 0x9e37_79b9u32;
        let noise: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let f = frame(&noise);
        assert_eq!(f.len(), 7 + noise.len() + 2 * 4 + 4);
        assert_eq!(reference_decode(&f), noise);
    }

    #[test]
    fn reads_frames_written_by_lz4_flex() {
        let text: Vec<u8> = b"0123456789".iter().copied().cycle().take(100_000).collect();
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
            lz4_flex::frame::FrameInfo::new()
                .block_checksums(true)
                .content_checksum(true)
                .content_size(Some(text.len() as u64)),
            Vec::new(),
        );
        std::io::Write::write_all(&mut enc, &text).unwrap();
        let f = enc.finish().unwrap();
        let mut back = vec![0u8; text.len()];
        assert_eq!(decompress(&f, &mut back), Ok(text.len()));
        assert_eq!(back, text);
    }

    #[test]
    fn small_output_is_reported() {
        let f = frame(&[7u8; 1000]);
        let mut back = [0u8; 10];
        assert!(matches!(decompress(&f, &mut back), Err(DecodeError::BufferTooSmall { .. })));
        let mut small = [0u8; 12];
        assert_eq!(compress(&[7u8; 1000], &mut small), Err(max_compressed_len(1000)));
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(data: Vec<u8>) {
            let f = frame(&data);
            proptest::prop_assert_eq!(reference_decode(&f), data.clone());
            let mut back = vec![0u8; data.len()];
            proptest::prop_assert_eq!(decompress(&f, &mut back), Ok(data.len()));
            proptest::prop_assert_eq!(back, data);
        }

        #[test]
        fn decompress_never_panics(data: Vec<u8>, cap in 0usize..4096) {
            let mut out = vec![0u8; cap];
            let _ = decompress(&data, &mut out);
        }
    }
}
