//! `codec_bench RECORDS [none|lz4|push] [BATCH_SIZE]`: encodes RECORDS 100-byte records into
//! RecordBatch v2 batches of BATCH_SIZE bytes (default 16 KiB) with picokafka's `BatchBuilder`,
//! finishing each (header, CRC-32C, LZ4 if asked; `push`: records only, batches dropped
//! unfinished), and prints one JSON line.
//!
//! Run under callgrind with N and 2N records: the difference of the two instruction counts,
//! divided by N, is the cost of one record, with process start-up and set-up cancelled out
//! (`pkbench --codec` does exactly that). Without valgrind it also prints nanoseconds per record.

#[path = "../codec_loop.rs"]
mod codec_loop;

use std::hint::black_box;
use std::time::Instant;

use codec_loop::{Mode, VALUE_LEN};
use picokafka::protocol::record_batch::Compression;

fn main() {
    let mut args = std::env::args().skip(1);
    let records: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mode_arg = args.next().unwrap_or_else(|| "none".into());
    let Some(mode) = Mode::parse(&mode_arg) else {
        eprintln!("codec_bench: unknown mode {mode_arg:?} (none, lz4 or push)");
        std::process::exit(2);
    };
    let compression = match mode {
        Mode::Finish(c) => c,
        Mode::PushOnly => Compression::None,
    };
    let batch_size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16 * 1024);
    let mut values = Box::new([[0u8; VALUE_LEN]; codec_loop::POOL]);
    codec_loop::pool(&mut values);
    let mut buf = vec![0u8; batch_size];
    let mut scratch = vec![0u8; compression.scratch_len(batch_size).max(1)];
    let start = Instant::now();
    let out = codec_loop::encode(black_box(records), &values, mode, &mut buf, &mut scratch);
    let ns = start.elapsed().as_nanos() as f64 / f64::from(records.max(1));
    black_box(out);
    println!(
        "{{\"records\":{records},\"mode\":\"{}\",\"batch_size\":{batch_size},\"batches\":{},\"raw_bytes\":{},\"batch_bytes\":{},\"crc_xor\":{},\"ns_per_record\":{ns:.1}}}",
        mode.name(),
        out.batches,
        out.raw_bytes,
        out.batch_bytes,
        out.crc_xor
    );
}
