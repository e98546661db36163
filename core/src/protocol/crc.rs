//! CRC-32C (Castagnoli), the checksum of RecordBatch v2.
//!
//! On hosts (`std` feature) the `crc32c` crate uses the CPU's CRC instructions. It needs `std`,
//! so `no_std` builds use the `crc` crate's byte-wise table (1 KiB of flash), which a
//! microcontroller can afford. Both are tested against the same vectors.

/// Portable CRC-32C, available in every build.
pub const PORTABLE: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// CRC-32C of `data`, hardware-accelerated where the build allows.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(feature = "std")]
    {
        ::crc32c::crc32c(data)
    }
    #[cfg(not(feature = "std"))]
    {
        PORTABLE.checksum(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(data: &[u8]) -> u32 {
        let portable = PORTABLE.checksum(data);
        assert_eq!(crc32c(data), portable);
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
        fn hardware_equals_portable(data: std::vec::Vec<u8>) {
            both(&data);
        }
    }
}
