//! picokafka's record encoding on a Cortex-M4F (QEMU `mps2-an386`), for instruction counts.
//!
//! Reads `RECORDS MODE [BATCH_SIZE]` from the semihosting command line (MODE: `none`, `lz4` or
//! `push`, see `codec_loop::Mode`), encodes RECORDS 100-byte records into batches with
//! `BatchBuilder` (portable CRC-32C: the `no_std` build; with the feature `crc-slice4`, core's
//! slice-by-4 table), prints one line and exits through semihosting. Booted with an instruction-counting TCG plugin, once with N and once with 2N
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
    let mode = Mode::parse(mode_arg).unwrap_or(Mode::Finish(Compression::None));
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
    let out = codec_loop::encode(black_box(records), values, mode, buf, scratch);
    hprintln!(
        "{{\"records\":{},\"mode\":\"{}\",\"batch_size\":{},\"batches\":{},\"raw_bytes\":{},\"batch_bytes\":{},\"crc_xor\":{}}}",
        records,
        mode.name(),
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
