//! librdkafka through rust-rdkafka's `ThreadedProducer`: `send` copies the record into
//! librdkafka's queue, a polling thread runs the delivery callback (`dr_msg_cb`). The enqueue
//! time travels as the message's opaque.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::{Job, Tally};
use crate::settings::{Codec, Scenario};
use crate::workload::{self, ChildReport, Percentiles, Schedule, VALUE_LEN};

struct Context {
    base: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    error: Mutex<Option<String>>,
    latencies_us: Mutex<Vec<u32>>,
    /// Signalled on every report (sync scenario).
    done: (Mutex<u64>, Condvar),
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    /// Nanoseconds from `base` to the enqueue, plus one; 0 = not timed.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                if opaque != 0 {
                    let t = self.base + Duration::from_nanos(opaque as u64 - 1);
                    let us = workload::micros_since(t);
                    self.latencies_us.lock().unwrap_or_else(|p| p.into_inner()).push(us);
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
            }
        }
        let (n, cv) = &self.done;
        *n.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cv.notify_all();
    }
}

impl Context {
    fn opaque(&self, t: Instant) -> usize {
        t.duration_since(self.base).as_nanos() as usize + 1
    }
    /// Waits until `n` reports have come in, or `timeout`.
    fn wait_reports(&self, n: u64, timeout: Duration) {
        let (count, cv) = &self.done;
        let deadline = Instant::now() + timeout;
        let mut c = count.lock().unwrap_or_else(|p| p.into_inner());
        while *c < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            c = cv.wait_timeout(c, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

fn config(job: &Job) -> ClientConfig {
    let s = &job.settings;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", job.bootstrap.as_str())
        .set("client.id", "pkbench")
        .set("linger.ms", s.linger_ms.to_string())
        .set("batch.size", s.batch_size.to_string())
        // Let batch.size bound the batches, not the default 10,000-message cap.
        .set("batch.num.messages", "1000000")
        .set("message.max.bytes", s.max_request().to_string())
        .set("compression.codec", if s.compression == Codec::Lz4 { "lz4" } else { "none" })
        .set("acks", s.acks.property())
        .set("enable.idempotence", s.idempotence.to_string())
        .set("queue.buffering.max.kbytes", (s.memory_bytes / 1024).to_string())
        // The byte cap is the one that binds (the default also caps at 100,000 messages).
        .set("queue.buffering.max.messages", "2147483647")
        // The Java client's default, and picokafka's (librdkafka's own is 1,000,000).
        .set("max.in.flight.requests.per.connection", "5");
    c
}

pub fn run(job: &Job) -> ChildReport {
    let context = Context {
        base: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        error: Mutex::new(None),
        latencies_us: Mutex::new(Vec::new()),
        done: (Mutex::new(0), Condvar::new()),
    };
    let producer: ThreadedProducer<Context> = match config(job).create_with_context(context) {
        Ok(p) => p,
        Err(e) => return ChildReport { error: Some(e.to_string()), ..ChildReport::default() },
    };
    let ctx = producer.context();
    let topic = job.topic.as_str();
    let mut value = [0u8; VALUE_LEN];
    let mut tally = Tally::default();
    // Sends one record, waiting while the queue is full; `timed` records its latency.
    let send = |i: u64, value: &mut [u8; VALUE_LEN], timed: bool, tally: &mut Tally| {
        workload::value(i, value);
        loop {
            let opaque = if timed { ctx.opaque(Instant::now()) } else { 0 };
            let rec = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, opaque).payload(&value[..]);
            match producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    tally.fail(e);
                    return;
                }
            }
        }
    };
    // Warm-up: connections and metadata, outside the measured phase.
    for i in 0..super::WARMUP {
        send(u64::MAX - i, &mut value, false, &mut tally);
        ctx.wait_reports(i + 1, Duration::from_secs(30));
        if tally.failed + ctx.failed.load(Ordering::Relaxed) > 0 || ctx.acked.load(Ordering::Relaxed) <= i {
            let e =
                tally.error.clone().or_else(|| ctx.error.lock().unwrap_or_else(|p| p.into_inner()).clone());
            return ChildReport {
                error: Some(format!("warm-up: {}", e.unwrap_or("no report".into()))),
                ..ChildReport::default()
            };
        }
    }
    let cpu0 = workload::self_cpu_s();
    let start = Instant::now();
    let expected = super::WARMUP + job.records - tally.failed;
    match job.scenario {
        Scenario::Throughput => {
            for i in 0..job.records {
                send(i, &mut value, false, &mut tally);
            }
        }
        Scenario::Latency => {
            let schedule = Schedule { start, rate: job.rate };
            let mut i = 0;
            while i < job.records {
                let due = schedule.due_by(Instant::now()).min(job.records);
                while i < due {
                    send(i, &mut value, true, &mut tally);
                    i += 1;
                }
                if i < job.records {
                    std::thread::sleep(schedule.due(i).saturating_duration_since(Instant::now()));
                }
            }
        }
        Scenario::Sync => {
            for i in 0..job.records {
                send(i, &mut value, true, &mut tally);
                ctx.wait_reports(super::WARMUP + i + 1 - tally.failed, Duration::from_secs(30));
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(60));
    // The polling thread may still be running the last callbacks.
    ctx.wait_reports(expected, Duration::from_secs(30));
    let elapsed = start.elapsed();
    let phase_cpu_s = workload::self_cpu_s() - cpu0;
    let mut lat = std::mem::take(&mut *ctx.latencies_us.lock().unwrap_or_else(|p| p.into_inner()));
    let error = tally.error.clone().or_else(|| ctx.error.lock().unwrap_or_else(|p| p.into_inner()).clone());
    ChildReport {
        sent: super::WARMUP + job.records,
        acked: ctx.acked.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed) + tally.failed,
        error,
        elapsed_s: elapsed.as_secs_f64(),
        latency: Percentiles::of(&mut lat),
        phase_cpu_s,
        ..ChildReport::default()
    }
}
