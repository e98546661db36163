//! Unsigned LEB128 varints and their zigzag-signed forms, as Kafka uses them (protobuf's scheme).

use super::codec::DecodeError;

/// Longest encoding of a 32-bit varint, in bytes.
pub const MAX_LEN32: usize = 5;
/// Longest encoding of a 64-bit varint, in bytes.
pub const MAX_LEN64: usize = 10;

/// Zigzag encoding (0, -1, 1, -2, ... to 0, 1, 2, 3, ...), which keeps small negative
/// values short as varints.
pub const fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}
/// Undoes [`zigzag32`].
pub const fn unzigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}
/// Zigzag encoding of an `i64`, as for [`zigzag32`].
pub const fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
/// Undoes [`zigzag64`].
pub const fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encoded length of an unsigned varint.
#[cfg_attr(not(feature = "compact-code"), inline(always))]
#[cfg_attr(feature = "compact-code", inline(never))]
pub const fn len_u64(v: u64) -> usize {
    // Lengths, deltas and counts are nearly always one or two bytes: compare first.
    if v < 1 << 7 {
        1
    } else if v < 1 << 14 {
        2
    } else {
        // Seven payload bits per byte.
        let bits = 64 - v.leading_zeros() as usize;
        bits.div_ceil(7)
    }
}
/// Encoded length of an unsigned 32-bit varint.
#[inline(always)]
pub const fn len_u32(v: u32) -> usize {
    len_u64(v as u64)
}
/// Encoded length of a zigzag varint.
#[inline(always)]
pub const fn len_i32(v: i32) -> usize {
    len_u32(zigzag32(v))
}
/// Encoded length of a zigzag varlong.
#[inline(always)]
pub const fn len_i64(v: i64) -> usize {
    len_u64(zigzag64(v))
}

/// Writes `v` at the start of `out` (at least [`MAX_LEN64`] bytes or `len_u64(v)`), returns the
/// length.
pub fn encode_u64(mut v: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}
/// Writes `v` at the start of `out` (at least [`MAX_LEN32`] bytes or `len_u32(v)`), returns
/// the length.
pub fn encode_u32(v: u32, out: &mut [u8]) -> usize {
    encode_u64(u64::from(v), out)
}

/// Reads an unsigned varint of at most `max_len` bytes; returns the value and its length.
fn decode(buf: &[u8], max_len: usize) -> Result<(u64, usize), DecodeError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().take(max_len).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    if buf.len() < max_len {
        Err(DecodeError::Truncated)
    } else {
        Err(DecodeError::InvalidVarint)
    }
}

/// Reads an unsigned varint of at most 5 bytes that fits a `u32`; returns it and its length.
pub fn decode_u32(buf: &[u8]) -> Result<(u32, usize), DecodeError> {
    let (v, n) = decode(buf, MAX_LEN32)?;
    let v = u32::try_from(v).map_err(|_| DecodeError::InvalidVarint)?;
    Ok((v, n))
}
/// Reads an unsigned varint of at most 10 bytes; returns it and its length.
pub fn decode_u64(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    decode(buf, MAX_LEN64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        // Vectors from the protobuf encoding guide and Kafka's ByteUtilsTest.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (150, &[0xac, 0x02]),
            (i32::MAX as i64, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN as i64, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(v, bytes) in cases {
            let mut out = [0u8; MAX_LEN64];
            let n = encode_u64(zigzag64(v), &mut out);
            assert_eq!(&out[..n], bytes, "{v}");
            assert_eq!(len_i64(v), bytes.len());
            let (d, m) = decode_u64(bytes).unwrap();
            assert_eq!((unzigzag64(d), m), (v, n));
            if let Ok(v32) = i32::try_from(v) {
                assert_eq!(len_i32(v32), bytes.len());
                let (d, _) = decode_u32(bytes).unwrap();
                assert_eq!(unzigzag32(d), v32);
            }
        }
    }

    #[test]
    fn overlong_and_truncated() {
        assert_eq!(decode_u32(&[0x80, 0x80]), Err(DecodeError::Truncated));
        assert_eq!(decode_u32(&[0x80; 6]), Err(DecodeError::InvalidVarint));
        // Five bytes whose value exceeds u32.
        assert_eq!(decode_u32(&[0xff, 0xff, 0xff, 0xff, 0x7f]), Err(DecodeError::InvalidVarint));
        assert_eq!(decode_u64(&[0x80; 11]), Err(DecodeError::InvalidVarint));
    }

    proptest::proptest! {
        #[test]
        fn roundtrip_i32(v: i32) {
            let mut out = [0u8; MAX_LEN64];
            let n = encode_u32(zigzag32(v), &mut out);
            proptest::prop_assert_eq!(n, len_i32(v));
            let (d, m) = decode_u32(&out[..n]).unwrap();
            proptest::prop_assert_eq!((unzigzag32(d), m), (v, n));
        }

        #[test]
        fn roundtrip_i64(v: i64) {
            let mut out = [0u8; MAX_LEN64];
            let n = encode_u64(zigzag64(v), &mut out);
            proptest::prop_assert_eq!(n, len_i64(v));
            let (d, m) = decode_u64(&out[..n]).unwrap();
            proptest::prop_assert_eq!((unzigzag64(d), m), (v, n));
        }

        #[test]
        fn decode_never_panics(bytes: std::vec::Vec<u8>) {
            let _ = decode_u32(&bytes);
            let _ = decode_u64(&bytes);
        }
    }
}
