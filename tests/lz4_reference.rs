//! LZ4 frames written by picokafka decode with the reference C implementation (liblz4, through
//! Python's `lz4.frame`), block by block identical to the input.

use std::io::Write;
use std::process::{Command, Stdio};

use picokafka::protocol::lz4;

fn frame(input: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; lz4::max_compressed_len(input.len())];
    let n = lz4::compress(input, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn liblz4_decodes_our_frames() {
    let mut x = 0x2545_f491u32;
    let mut noise = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    };
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"a".to_vec(),
        b"kafka ".repeat(30_000),                // several 64 KiB blocks, compressible
        (0..100_000).map(|_| noise()).collect(), // stored blocks
        (0..65_536).map(|i| (i % 251) as u8).collect(),
    ];
    // One frame per line, hex; the script prints the hex of each decompressed frame.
    let script = "import sys, lz4.frame\n\
        for line in sys.stdin:\n    \
        print(lz4.frame.decompress(bytes.fromhex(line.strip())).hex())\n";
    let mut child = Command::new(picokafka_tests::python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Feed stdin from a thread: the answers fill the stdout pipe while we still write.
    let mut stdin = child.stdin.take().unwrap();
    let frames: Vec<String> = inputs.iter().map(|input| hex(&frame(input))).collect();
    let writer = std::thread::spawn(move || {
        for f in frames {
            writeln!(stdin, "{f}").unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), inputs.len());
    for (line, input) in lines.iter().zip(&inputs) {
        assert_eq!(*line, hex(input), "liblz4 disagrees on a {}-byte input", input.len());
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
