//! The producer state machine fed arbitrary broker bytes, interleaved with sends, timeouts and
//! disconnects: never a panic, never more than its resources, and every accepted record ends in
//! exactly one report.
//!
//! The input is a list of operations `[op, len, bytes...]`: bytes from a broker, time passing,
//! a record sent, a connection lost.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use picokafka::{Config, ConnId, Event, Instant, Producer, Record, Resources};

fuzz_target!(|data: &[u8]| {
    let mut resources = Box::new(Resources::<4, 1024, 1200, 2, 2048, 2, 8>::new());
    let mut config = Config::new("broker:9092").expect("valid bootstrap");
    config.set("linger.ms", "0").expect("valid");
    config.set("compression.type", "lz4").expect("valid");
    let mut now = Instant::from_millis(0);
    let mut p = Producer::new(config, resources.storage(), now).expect("fits");
    let mut open: Vec<ConnId> = Vec::new();
    let mut pending: HashSet<u64> = HashSet::new();
    let mut out = [0u8; 300];
    let mut at = 0;
    let mut step = 0u32;
    while at + 2 <= data.len() {
        let (op, len) = (data[at], usize::from(data[at + 1]));
        let bytes = &data[at + 2..(at + 2 + len).min(data.len())];
        at += 2 + len;
        step += 1;
        while let Some(e) = p.poll_event() {
            match e {
                Event::Connect { conn, .. } => open.push(conn),
                Event::Close { conn } => open.retain(|c| *c != conn),
                Event::Delivered { token, .. } | Event::Failed { token, .. } => {
                    assert!(pending.remove(&token.as_u64()), "one report per record");
                }
                _ => {}
            }
        }
        for &c in &open {
            p.handle_connected(now, c);
        }
        while p.poll_transmit(now, &mut out).is_some() {}
        let conn = open.get(usize::from(op >> 4) % open.len().max(1)).copied();
        match op & 3 {
            0 => {
                if let Some(c) = conn {
                    p.handle_input(now, c, bytes);
                }
            }
            1 => {
                now = now + picokafka::Duration::from_millis(len as u64 * 50);
                p.handle_timeout(now);
            }
            2 => {
                let key = step.to_be_bytes();
                let record = Record::new("fuzz").key(&key).value(bytes);
                if let Ok(accepted) = p.send(now, record) {
                    assert!(pending.insert(accepted.token.as_u64()), "tokens are unique");
                }
            }
            _ => {
                if let Some(c) = conn {
                    p.handle_disconnected(now, c);
                }
            }
        }
        let m = p.metrics();
        assert!(m.batches_in_use <= m.batch_capacity);
    }
    // Closing reports every record that is left.
    p.close(now, picokafka::Duration::from_millis(0));
    now = now + picokafka::Duration::from_millis(1);
    p.handle_timeout(now);
    while let Some(e) = p.poll_event() {
        if let Event::Delivered { token, .. } | Event::Failed { token, .. } = e {
            assert!(pending.remove(&token.as_u64()), "one report per record");
        }
    }
    assert!(pending.is_empty(), "every record reported: {} left", pending.len());
});
