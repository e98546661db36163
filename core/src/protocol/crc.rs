//! CRC-32C (Castagnoli), the checksum of RecordBatch v2.
//!
//! On hosts (`std` feature) the `crc32c` crate uses the CPU's CRC instructions. It needs `std`,
//! so `no_std` builds use the `crc` crate's byte-wise table (1 KiB of flash), which a
//! microcontroller can afford; or, with the `crc-slice4` feature, a word-wise slice-by-4 table
//! (4 KiB of flash) that costs about a third fewer instructions per byte on a Cortex-M4; or,
//! with `compact-code` (and not `crc-slice4`), a nibble-wise 64-byte table: the firmware is
//! 976 B smaller, a 100-byte record costs 222 more Cortex-M4 instructions uncompressed, 81 with
//! LZ4 (2 KiB batches). All are tested against the same vectors.

/// Portable CRC-32C, available in every build.
pub const PORTABLE: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// CRC-32C of `data`, hardware-accelerated where the build allows.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(feature = "std")]
    {
        ::crc32c::crc32c(data)
    }
    #[cfg(all(not(feature = "std"), feature = "crc-slice4"))]
    {
        slice4::checksum(data)
    }
    #[cfg(all(not(feature = "std"), not(feature = "crc-slice4"), feature = "compact-code"))]
    {
        nibble::checksum(data)
    }
    #[cfg(all(not(feature = "std"), not(feature = "crc-slice4"), not(feature = "compact-code")))]
    {
        PORTABLE.checksum(data)
    }
}

/// The CRC-32C of the low `bits` bits of `c`, one bit at a time: what the tables below hold.
#[cfg(any(test, all(not(feature = "std"), any(feature = "crc-slice4", feature = "compact-code"))))]
const fn bitwise(mut c: u32, bits: u32) -> u32 {
    /// The reflected CRC-32C polynomial.
    const POLY: u32 = 0x82F6_3B78;
    let mut k = 0;
    while k < bits {
        c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        k += 1;
    }
    c
}

/// Nibble-wise CRC-32C (`compact-code` builds): two lookups per byte in a 64-byte table
/// instead of one in the 1 KiB byte-wise table (976 B less firmware flash).
#[cfg(any(test, all(feature = "compact-code", not(feature = "crc-slice4"), not(feature = "std"))))]
mod nibble {
    /// `TABLE[n]`: the CRC of the four bits `n`.
    static TABLE: [u32; 16] = table();

    const fn table() -> [u32; 16] {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            t[i] = super::bitwise(i as u32, 4);
            i += 1;
        }
        t
    }

    pub fn checksum(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            crc = (crc >> 4) ^ TABLE[(crc & 15) as usize];
            crc = (crc >> 4) ^ TABLE[(crc & 15) as usize];
        }
        !crc
    }
}

/// Slice-by-4 CRC-32C: four table lookups per 32-bit word instead of one per byte.
///
/// Hand-written because no `no_std` crate offers it: `crc` has only the byte-wise table and a
/// slice-by-16 one (16 KiB of flash, and measured no faster than this on a Cortex-M4 at
/// opt-level `s`), and `crc32c` needs `std`. The tables are built at compile time from the
/// polynomial, so there is no table to get wrong by hand.
#[cfg(any(test, all(feature = "crc-slice4", not(feature = "std"))))]
mod slice4 {
    /// `TABLES[0]` is the byte-wise table; `TABLES[k][b]` is the CRC of byte `b` followed by
    /// `k` zero bytes.
    static TABLES: [[u32; 256]; 4] = tables();

    const fn tables() -> [[u32; 256]; 4] {
        let mut t = [[0u32; 256]; 4];
        let mut i = 0;
        while i < 256 {
            t[0][i] = super::bitwise(i as u32, 8);
            i += 1;
        }
        let mut s = 1;
        while s < 4 {
            let mut i = 0;
            while i < 256 {
                let prev = t[s - 1][i];
                t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                i += 1;
            }
            s += 1;
        }
        t
    }

    pub fn checksum(data: &[u8]) -> u32 {
        let t = &TABLES;
        let mut crc = !0u32;
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            let a = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ crc;
            crc = t[3][(a & 0xff) as usize]
                ^ t[2][((a >> 8) & 0xff) as usize]
                ^ t[1][((a >> 16) & 0xff) as usize]
                ^ t[0][(a >> 24) as usize];
        }
        for &b in words.remainder() {
            crc = t[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(data: &[u8]) -> u32 {
        let portable = PORTABLE.checksum(data);
        assert_eq!(crc32c(data), portable);
        assert_eq!(slice4::checksum(data), portable);
        assert_eq!(nibble::checksum(data), portable);
        portable
    }

    #[test]
    fn vectors() {
        // The check value of CRC-32C, and RFC 3720 (iSCSI) appendix B.4 vectors.
        assert_eq!(both(b"123456789"), 0xE306_9283);
        assert_eq!(both(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(both(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(both(&ascending), 0x46DD_794E);
        assert_eq!(both(b""), 0);
    }

    proptest::proptest! {
        #[test]
        fn every_implementation_agrees(data: std::vec::Vec<u8>, skip in 0usize..4) {
            // Unaligned starts too: the slice-by-4 loop reads words at any offset.
            both(data.get(skip..).unwrap_or(&[]));
        }
    }
}
