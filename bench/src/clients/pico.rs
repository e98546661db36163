//! picokafka through its tokio transport: `Producer::send_with_opaque` for the streaming
//! scenarios (reports go to the producer's delivery handler, like librdkafka's `dr_msg_cb`;
//! the opaque value is the record's enqueue time for the latency runs), `send(..).await` for one
//! record at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picokafka_tokio::{ClientConfig, Delivery, Error, OwnedRecord, Producer};

use super::{runtime, Job, Tally};
use crate::settings::{Codec, Scenario};
use crate::workload::{self, micros_since, ChildReport, Percentiles, Schedule, VALUE_LEN};

/// Delivery reports, shared with the callbacks (they run on the producer's task).
#[derive(Default)]
struct Reports {
    acked: AtomicU64,
    failed: AtomicU64,
    error: Mutex<Option<String>>,
    latencies_us: Mutex<Vec<u32>>,
}

impl Reports {
    fn record(&self, result: &Result<Delivery, Error>, enqueued: Option<Instant>) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = enqueued {
                    let us = micros_since(t);
                    self.latencies_us.lock().unwrap_or_else(|p| p.into_inner()).push(us);
                }
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
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
        .set("max.request.size", s.max_request().to_string())
        .set("compression.type", if s.compression == Codec::Lz4 { "lz4" } else { "none" })
        .set("acks", s.acks.property())
        .set("enable.idempotence", s.idempotence.to_string())
        .set("buffer.memory", s.memory_bytes.to_string())
        .set("allow.auto.create.topics", "false")
        .set("max.block.ms", "10000");
    c
}

fn record(topic: &Arc<str>, i: u64) -> OwnedRecord {
    let mut v = [0u8; VALUE_LEN];
    workload::value(i, &mut v);
    OwnedRecord::new(topic.clone()).value(v.to_vec())
}

pub fn run(job: &Job) -> ChildReport {
    runtime(job.workers).block_on(run_async(job))
}

async fn run_async(job: &Job) -> ChildReport {
    let reports = Arc::new(Reports::default());
    let sink = reports.clone();
    let origin = Instant::now();
    let latency = job.scenario == Scenario::Latency;
    // Opaque: microseconds from `origin` to the record's enqueue (latency runs), else unused.
    let handler = move |opaque: u64, res: Result<Delivery, Error>| {
        let enqueued = latency.then(|| origin + Duration::from_micros(opaque));
        sink.record(&res, enqueued);
    };
    let producer = match Producer::with_delivery_handler(&config(job), handler) {
        Ok(p) => p,
        Err(e) => return ChildReport { error: Some(e.to_string()), ..ChildReport::default() },
    };
    let topic: Arc<str> = job.topic.as_str().into();
    let mut tally = Tally::default();
    // Warm-up: connections and metadata, outside the measured phase.
    for i in 0..super::WARMUP {
        if let Err(e) = producer.send(record(&topic, u64::MAX - i)).await {
            return ChildReport { error: Some(format!("warm-up: {e}")), ..ChildReport::default() };
        }
        tally.ok();
    }
    let warm = tally.acked;
    let cpu0 = workload::self_cpu_s();
    let start = Instant::now();
    match job.scenario {
        Scenario::Throughput => {
            for i in 0..job.records {
                if let Err(e) = producer.send_with_opaque(record(&topic, i), i).await {
                    reports.record(&Err(e.error), None);
                }
            }
            producer.flush(Duration::from_secs(120)).await.expect("flush");
        }
        Scenario::Latency => {
            let schedule = Schedule { start, rate: job.rate };
            let mut i = 0;
            while i < job.records {
                let due = schedule.due_by(Instant::now()).min(job.records);
                while i < due {
                    let rec = record(&topic, i);
                    let t = origin.elapsed().as_micros() as u64;
                    if let Err(e) = producer.send_with_opaque(rec, t).await {
                        reports.record(&Err(e.error), None);
                    }
                    i += 1;
                }
                if i < job.records {
                    tokio::time::sleep_until(schedule.due(i).into()).await;
                }
            }
            producer.flush(Duration::from_secs(120)).await.expect("flush");
        }
        Scenario::Sync => {
            for i in 0..job.records {
                let t = Instant::now();
                let res = producer.send(record(&topic, i)).await;
                reports.record(&res, Some(t));
            }
        }
    }
    let elapsed = start.elapsed();
    let phase_cpu_s = workload::self_cpu_s() - cpu0;
    let m = producer.metrics().await;
    let per = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let client_stats = serde_json::json!({
        "records_per_batch": per(m.records_sent, m.batches_created),
        "batches_per_request": per(m.batches_delivered, m.produce_requests),
        "produce_requests": m.produce_requests,
        "request_latency_avg_ms": per(m.request_latency_sum_ms, m.responses),
        "request_latency_max_ms": m.request_latency_max_ms,
        "bytes_written": m.bytes_written,
    });
    producer.close(Duration::from_secs(30)).await;
    let acked = reports.acked.load(Ordering::Relaxed);
    let failed = reports.failed.load(Ordering::Relaxed);
    let error = tally.error.or_else(|| reports.error.lock().unwrap_or_else(|p| p.into_inner()).take());
    let mut lat = std::mem::take(&mut *reports.latencies_us.lock().unwrap_or_else(|p| p.into_inner()));
    ChildReport {
        sent: job.records + super::WARMUP,
        acked: acked + warm,
        failed: failed + tally.failed,
        error,
        elapsed_s: elapsed.as_secs_f64(),
        latency: Percentiles::of(&mut lat),
        phase_cpu_s,
        vm_hwm: 0,
        client_stats: Some(client_stats),
    }
}
