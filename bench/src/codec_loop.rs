//! The encode loop the codec figures measure, shared by `codec_bench` (x86, callgrind) and
//! `bench/mcu` (Cortex-M4, QEMU instruction count): `records` 100-byte records pushed into
//! batches of `buf.len()` bytes with `BatchBuilder`, each batch finished (header, CRC-32C, and
//! LZ4 if asked). `no_std`, no allocation.

use picokafka::protocol::record_batch::{BatchBuilder, Compression, ProducerState, PushError};

/// Every record's value is this long; records have no key and no headers.
pub const VALUE_LEN: usize = 100;

/// The value of record `i`: a JSON reading padded to 100 bytes. Fields change from record to
/// record the way a sensor's do, so LZ4 finds what it finds in real telemetry, not a run of
/// zeros. Written digit by digit from a template (a few dozen instructions), so that making
/// records costs every client little and the same.
pub fn value(i: u64, out: &mut [u8; VALUE_LEN]) {
    const TEMPLATE: &[u8; VALUE_LEN] =
        b"{\"device\":\"sensor-0000\",\"seq\":\"0000000000\",\"temp\":00.00,\"hum\":00,\"status\":\"ok\",\"fw\":\"1.4.2\"        }";
    /// Writes the low `to - from` decimal digits of `n` into `out[from..to]`.
    fn digits(out: &mut [u8], from: usize, to: usize, mut n: u64) {
        for d in out[from..to].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    out.copy_from_slice(TEMPLATE);
    digits(out, 18, 22, i % 4096);
    digits(out, 31, 41, i);
    let temp = 1800 + i.wrapping_mul(2_654_435_761) % 700;
    digits(out, 50, 52, temp / 100);
    digits(out, 53, 55, temp % 100);
    digits(out, 62, 64, 30 + i.wrapping_mul(7919) % 60);
}

/// Distinct values the records cycle through: more than a 16 KiB batch holds (~145), so no
/// value repeats inside a batch (LZ4 sees real telemetry, not copies), and made before the loop,
/// so only encoding is counted. A power of two: picking one costs an AND.
pub const POOL: usize = 256;

/// The pool of values `encode` cycles through.
pub fn pool(values: &mut [[u8; VALUE_LEN]; POOL]) {
    for (i, v) in values.iter_mut().enumerate() {
        value(i as u64 * 7_919, v);
    }
}

/// What an encode run produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoded {
    pub batches: u32,
    /// Bytes of the records before compression (record sections of all batches).
    pub raw_bytes: u64,
    /// Bytes of the finished batches, headers included.
    pub batch_bytes: u64,
    /// XOR of the batches' CRCs, so that no work can be optimised away.
    pub crc_xor: u32,
}

/// What `encode` does with a full batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Drops it: record encoding alone, no header, no CRC.
    PushOnly,
    /// Finishes it: header, CRC-32C, and compression if asked.
    Finish(Compression),
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "push" => Some(Self::PushOnly),
            "none" => Some(Self::Finish(Compression::None)),
            "lz4" => Some(Self::Finish(Compression::Lz4)),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::PushOnly => "push",
            Self::Finish(Compression::Lz4) => "lz4",
            Self::Finish(_) => "none",
        }
    }
}

/// Encodes `records` records (values from `pool`) into batches of `buf.len()` bytes.
pub fn encode(
    records: u32,
    values: &[[u8; VALUE_LEN]; POOL],
    mode: Mode,
    buf: &mut [u8],
    scratch: &mut [u8],
) -> Encoded {
    const TS0: i64 = 1_700_000_000_000;
    let mut out = Encoded::default();
    let mut i = 0u32;
    while i < records {
        let mut b = match BatchBuilder::new(buf) {
            Ok(b) => b,
            Err(_) => return out,
        };
        while i < records {
            let v = &values[i as usize & (POOL - 1)];
            match b.push(TS0 + i64::from(i / 100), None, Some(v), &[]) {
                Ok(()) => i += 1,
                Err(PushError::Full { .. }) if !b.is_empty() => break,
                Err(_) => return out,
            }
        }
        out.raw_bytes += (b.len() - picokafka::protocol::record_batch::HEADER_LEN) as u64;
        let Mode::Finish(compression) = mode else {
            out.batches += 1;
            out.batch_bytes += b.len() as u64;
            continue;
        };
        let Ok(len) = b.finish(compression, ProducerState::NONE, scratch) else { return out };
        out.batches += 1;
        out.batch_bytes += len as u64;
        out.crc_xor ^= u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]);
    }
    out
}
