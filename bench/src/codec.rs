//! Instruction counts of the record encoding, which machine noise does not touch:
//!
//! - x86-64: `codec_bench` under callgrind (`valgrind --tool=callgrind`), instructions retired;
//! - Cortex-M4: `bench/mcu` booted in `qemu-system-arm -M mps2-an386` with the
//!   instruction-counting TCG plugin of `bench/mcu/plugin/insn.c`.
//!
//! Each runs once with N and once with 2N records; (count(2N) − count(N)) / N is the cost of
//! one record, start-up and set-up cancelled out.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct Row {
    pub mode: &'static str,
    pub batch_size: usize,
    pub insns_per_record: f64,
    /// Compressed ÷ raw bytes of the record sections (LZ4), or batch ÷ raw.
    pub size_ratio: f64,
    pub ns_per_record: Option<f64>,
}

fn json_field(line: &str, key: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(line.lines().rev().find(|l| l.starts_with('{'))?).ok()?;
    v.get(key)?.as_f64()
}

fn callgrind_count(
    codec_bench: &Path,
    records: u32,
    mode: &str,
    batch: usize,
) -> Result<(u64, String), String> {
    let out_file =
        std::env::temp_dir().join(format!("pkbench-callgrind-{}-{records}-{mode}", std::process::id()));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(codec_bench)
        .args([&records.to_string(), mode, &batch.to_string()])
        .output()
        .map_err(|e| format!("valgrind: {e} (is valgrind installed?)"))?;
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let collected = stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no 'Collected' line from callgrind: {stderr}"))?;
    Ok((collected, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn qemu_count(
    elf: &Path,
    plugin: &Path,
    records: u32,
    mode: &str,
    batch: usize,
) -> Result<(u64, String), String> {
    let count_file =
        std::env::temp_dir().join(format!("pkbench-qemu-{}-{records}-{mode}", std::process::id()));
    let out = Command::new("qemu-system-arm")
        .args(["-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"])
        .arg("-semihosting-config")
        .arg(format!("enable=on,target=native,arg=pkbench-mcu,arg={records},arg={mode},arg={batch}"))
        .arg("-plugin")
        .arg(format!("file={},out={}", plugin.display(), count_file.display()))
        .arg("-kernel")
        .arg(elf)
        .output()
        .map_err(|e| format!("qemu-system-arm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "qemu-system-arm exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(&count_file).map_err(|e| format!("{}: {e}", count_file.display()))?;
    let _ = std::fs::remove_file(&count_file);
    let n = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("plugin wrote {text:?}"))?;
    Ok((n, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Measures `modes` × `batches` with `count(records, mode, batch)`.
fn measure(
    n: u32,
    modes: &[&'static str],
    batches: &[usize],
    count: impl Fn(u32, &str, usize) -> Result<(u64, String), String>,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &batch_size in batches {
        for &mode in modes {
            let (a, _) = count(n, mode, batch_size)?;
            let (b, out) = count(2 * n, mode, batch_size)?;
            let raw = json_field(&out, "raw_bytes").unwrap_or(f64::NAN);
            let bytes = json_field(&out, "batch_bytes").unwrap_or(f64::NAN);
            rows.push(Row {
                mode,
                batch_size,
                insns_per_record: (b as f64 - a as f64) / f64::from(n),
                size_ratio: bytes / raw,
                ns_per_record: None,
            });
        }
    }
    Ok(rows)
}

const MODES: &[&str] = &["push", "none", "lz4"];

/// x86-64 instructions per record, and native nanoseconds per record for scale.
pub fn x86(codec_bench: &Path, n: u32) -> Result<Vec<Row>, String> {
    let mut rows = measure(n, MODES, &[16 << 10], |r, m, b| callgrind_count(codec_bench, r, m, b))?;
    for row in &mut rows {
        let out = Command::new(codec_bench)
            .args(["1000000", row.mode, &row.batch_size.to_string()])
            .output()
            .map_err(|e| format!("{}: {e}", codec_bench.display()))?;
        row.ns_per_record = json_field(&String::from_utf8_lossy(&out.stdout), "ns_per_record");
    }
    Ok(rows)
}

/// Cortex-M4 (Thumb-2) instructions per record; batches of 16 KiB and of the firmware's 2 KiB;
/// with `slice4_elf` (bench/mcu built with `--features crc-slice4`), the same with core's
/// slice-by-4 CRC-32C; with `compact_elf` (`--features compact-code`, as firmware/ builds it),
/// the same with the encoder's helpers out of line.
pub fn mcu(
    elf: &Path,
    slice4_elf: Option<&Path>,
    compact_elf: Option<&Path>,
    plugin: &Path,
    n: u32,
) -> Result<Vec<Row>, String> {
    let mut rows = measure(n, MODES, &[16 << 10, 2 << 10], |r, m, b| qemu_count(elf, plugin, r, m, b))?;
    let variants: [(Option<&Path>, [&'static str; 2]); 2] =
        [(slice4_elf, ["none (slice4)", "lz4 (slice4)"]), (compact_elf, ["none (compact)", "lz4 (compact)"])];
    for (variant_elf, [none, lz4]) in variants {
        let Some(variant_elf) = variant_elf else { continue };
        let mut extra = measure(n, &["none", "lz4"], &[16 << 10, 2 << 10], |r, m, b| {
            qemu_count(variant_elf, plugin, r, m, b)
        })?;
        for row in &mut extra {
            row.mode = if row.mode == "none" { none } else { lz4 };
        }
        rows.extend(extra);
    }
    Ok(rows)
}

fn describe(mode: &str) -> &'static str {
    match mode {
        "push" => "encode only (`BatchBuilder::push`, no header, no CRC)",
        "none" => "encode + header + CRC-32C (`push` + `finish`)",
        "lz4" => "encode + LZ4 + header + CRC-32C",
        "none (slice4)" => "encode + header + CRC-32C, core feature `crc-slice4` (4 KiB table)",
        "lz4 (slice4)" => "encode + LZ4 + header + CRC-32C, core feature `crc-slice4`",
        "none (compact)" => "encode + header + CRC-32C, core feature `compact-code` (the firmware's)",
        "lz4 (compact)" => "encode + LZ4 + header + CRC-32C, core feature `compact-code`",
        _ => "?",
    }
}

pub fn table(title: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n#### {title}\n");
    let ns = rows.iter().any(|r| r.ns_per_record.is_some());
    let _ = write!(out, "| what | batch | instructions / record | bytes sent ÷ record bytes |");
    let _ = writeln!(out, "{}", if ns { " ns / record (native) |" } else { "" });
    let _ = writeln!(out, "|---|---|---|---|{}", if ns { "---|" } else { "" });
    for r in rows {
        let _ = write!(
            out,
            "| {} | {} KiB | {:.0} | {:.3} |",
            describe(r.mode),
            r.batch_size >> 10,
            r.insns_per_record,
            r.size_ratio
        );
        match r.ns_per_record {
            Some(ns) => {
                let _ = writeln!(out, " {ns:.1} |");
            }
            None if ns => {
                let _ = writeln!(out, " – |");
            }
            None => {
                let _ = writeln!(out);
            }
        }
    }
    out
}
