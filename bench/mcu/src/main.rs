//! picokafka's record encoding on a Cortex-M4F (QEMU `mps2-an386`), for instruction counts.
//!
//! Reads `RECORDS MODE [BATCH_SIZE]` from the semihosting command line (MODE: `none`, `lz4` or
//! `push`, see `codec_loop::Mode`; or `crc1` / `crc16`: `push`, then CRC-32C over each dropped
//! batch with the `crc` crate's byte-wise 1 KiB table (what core uses) or its slice-by-16 16 KiB
//! table, to price the CRC alone and the faster table), encodes RECORDS 100-byte records into batches with
//! `BatchBuilder` (portable CRC-32C: the `no_std` build), prints one line and exits through
//! semihosting. Booted with an instruction-counting TCG plugin, once with N and once with 2N
//! records: the difference divided by N is the instructions one record costs, boot and set-up
//! cancelled out (see `bench/scripts/mcu-insns`).
#![no_std]
#![no_main]

#[path = "../../src/codec_loop.rs"]
mod codec_loop;

use core::hint::black_box;

use codec_loop::{Mode, POOL, VALUE_LEN};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use picokafka::protocol::record_batch::Compression;

#[cfg(feature = "crc-experiments")]
const CRC1: crc::Crc<u32, crc::Table<1>> = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISCSI);
#[cfg(feature = "crc-experiments")]
const CRC16: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

#[cfg(feature = "crc-experiments")]
/// Slice-by-N tables of the reflected CRC-32C (polynomial 0x82F63B78), built at compile time.
const fn slice_tables<const N: usize>() -> [[u32; 256]; N] {
    let mut t = [[0u32; 256]; N];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < N {
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

#[cfg(feature = "crc-experiments")]
static T4: [[u32; 256]; 4] = slice_tables::<4>();
#[cfg(feature = "crc-experiments")]
static T8: [[u32; 256]; 8] = slice_tables::<8>();

#[cfg(feature = "crc-experiments")]
/// CRC-32C reading whole 32-bit words, N (4 or 8) bytes per step with N table lookups: the
/// portable CRC suggested for core (4 or 8 KiB of tables instead of 1 KiB).
fn crc32c_words<const N: usize>(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(N);
    for c in &mut chunks {
        let a = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        if N == 8 {
            let b = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            crc = T8[7][(a & 0xff) as usize]
                ^ T8[6][((a >> 8) & 0xff) as usize]
                ^ T8[5][((a >> 16) & 0xff) as usize]
                ^ T8[4][(a >> 24) as usize]
                ^ T8[3][(b & 0xff) as usize]
                ^ T8[2][((b >> 8) & 0xff) as usize]
                ^ T8[1][((b >> 16) & 0xff) as usize]
                ^ T8[0][(b >> 24) as usize];
        } else {
            crc = T4[3][(a & 0xff) as usize]
                ^ T4[2][((a >> 8) & 0xff) as usize]
                ^ T4[1][((a >> 16) & 0xff) as usize]
                ^ T4[0][(a >> 24) as usize];
        }
    }
    for &x in chunks.remainder() {
        crc = T4[0][((crc ^ u32::from(x)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Largest batch this program encodes into.
const MAX_BATCH: usize = 16 * 1024;

static mut BUF: [u8; MAX_BATCH] = [0; MAX_BATCH];
static mut SCRATCH: [u8; Compression::Lz4.scratch_len(MAX_BATCH)] =
    [0; Compression::Lz4.scratch_len(MAX_BATCH)];
static mut VALUES: [[u8; VALUE_LEN]; POOL] = [[0; VALUE_LEN]; POOL];

/// The semihosting command line (SYS_GET_CMDLINE), as text.
fn cmdline(buf: &mut [u8; 128]) -> &str {
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most block[1] bytes to block[0] (our buffer) and the
    // length back into block[1]; both outlive the call.
    let rc = unsafe {
        cortex_m_semihosting::syscall1(cortex_m_semihosting::nr::GET_CMDLINE, block.as_mut_ptr() as usize)
    };
    if rc != 0 {
        return "";
    }
    let n = block[1].min(buf.len());
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}

fn parse_u32(s: Option<&str>) -> Option<u32> {
    let s = s?;
    let mut n: u32 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(n)
}

#[entry]
fn main() -> ! {
    let mut line = [0u8; 128];
    let line = cmdline(&mut line);
    // argv[0] is the program name.
    let mut args = line.split_ascii_whitespace().skip(1);
    let records = parse_u32(args.next()).unwrap_or(1000);
    let mode_arg = args.next().unwrap_or("none");
    #[cfg(feature = "crc-experiments")]
    let crc_table = match mode_arg {
        "crc1" => Some(1),
        "crc16" => Some(16),
        "crc4w" => Some(4),
        "crc8w" => Some(8),
        _ => None,
    };
    #[cfg(not(feature = "crc-experiments"))]
    let crc_table: Option<u32> = None;
    let mode = if crc_table.is_some() {
        Mode::PushOnly
    } else {
        Mode::parse(mode_arg).unwrap_or(Mode::Finish(Compression::None))
    };
    let batch = parse_u32(args.next()).map_or(MAX_BATCH, |b| (b as usize).clamp(100, MAX_BATCH));
    // SAFETY: the only references to these statics, taken once, on the only thread.
    let (buf, scratch, values) = unsafe {
        (
            &mut (&mut *core::ptr::addr_of_mut!(BUF))[..batch],
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            &mut *core::ptr::addr_of_mut!(VALUES),
        )
    };
    codec_loop::pool(values);
    // The word-wise CRCs must agree with the crate's.
    #[cfg(feature = "crc-experiments")]
    for v in values.iter().take(4) {
        let want = CRC1.checksum(v);
        if crc32c_words::<4>(v) != want || crc32c_words::<8>(v) != want || CRC16.checksum(v) != want {
            hprintln!("CRC mismatch");
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    #[allow(unused_mut)]
    let mut out = codec_loop::encode(black_box(records), values, mode, buf, scratch);
    #[cfg(feature = "crc-experiments")]
    if let Some(table) = crc_table {
        // As many batch-sized CRCs as there were batches, over the last batch's bytes.
        for _ in 0..out.batches {
            out.crc_xor ^= match table {
                1 => CRC1.checksum(black_box(&buf[21..])),
                4 => crc32c_words::<4>(black_box(&buf[21..])),
                8 => crc32c_words::<8>(black_box(&buf[21..])),
                _ => CRC16.checksum(black_box(&buf[21..])),
            };
        }
    }
    hprintln!(
        "{{\"records\":{},\"mode\":\"{}\",\"batch_size\":{},\"batches\":{},\"raw_bytes\":{},\"batch_bytes\":{},\"crc_xor\":{}}}",
        records,
        if crc_table.is_some() { mode_arg } else { mode.name() },
        batch,
        out.batches,
        out.raw_bytes,
        out.batch_bytes,
        out.crc_xor
    );
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
