//! rskafka: one `BatchProducer` (with a `RecordAggregator` of `batch.size` bytes) per
//! partition, records spread over them like a sticky partitioner (a batch's worth to one
//! partition, then the next). Its `produce` future resolves on acknowledgement, so the harness
//! keeps those futures in flight in a `FuturesUnordered`, bounded by the memory cap (rskafka has
//! no queue bound of its own). rskafka always sends acks=all and has no idempotence.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{BatchProducer, BatchProducerBuilder};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

use super::{runtime, Job, Tally};
use crate::settings::{Codec, Scenario};
use crate::workload::{self, micros_since, ChildReport, Percentiles, Schedule, VALUE_LEN};

fn record(i: u64) -> Record {
    let mut v = [0u8; VALUE_LEN];
    workload::value(i, &mut v);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Record {
        key: None,
        value: Some(v.to_vec()),
        headers: BTreeMap::new(),
        timestamp: DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default(),
    }
}

pub fn run(job: &Job) -> ChildReport {
    runtime(job.workers).block_on(run_async(job))
}

async fn setup(job: &Job) -> Result<Vec<BatchProducer<RecordAggregator>>, String> {
    let brokers = job.bootstrap.split(',').map(str::to_string).collect();
    let client = ClientBuilder::new(brokers).client_id("pkbench").build().await.map_err(|e| e.to_string())?;
    let s = &job.settings;
    let compression = match s.compression {
        Codec::None => Compression::NoCompression,
        Codec::Lz4 => Compression::Lz4,
    };
    let mut producers = Vec::new();
    for p in 0..job.partitions {
        let pc = client
            .partition_client(job.topic.as_str(), p, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| e.to_string())?;
        producers.push(
            BatchProducerBuilder::new(Arc::new(pc))
                .with_linger(Duration::from_millis(u64::from(s.linger_ms)))
                .with_compression(compression)
                .build(RecordAggregator::new(s.batch_size)),
        );
    }
    Ok(producers)
}

async fn run_async(job: &Job) -> ChildReport {
    let producers = match setup(job).await {
        Ok(p) => p,
        Err(e) => return ChildReport { error: Some(e), ..ChildReport::default() },
    };
    let mut tally = Tally::default();
    for i in 0..super::WARMUP {
        if let Err(e) = producers[0].produce(record(u64::MAX - i)).await {
            return ChildReport { error: Some(format!("warm-up: {e}")), ..ChildReport::default() };
        }
        tally.ok();
    }
    // A batch's worth of records per partition in turn.
    let per_batch = (job.settings.batch_size / record(0).approximate_size()).max(1) as u64;
    let partitions = producers.len() as u64;
    let produce = |i: u64, timed: bool| {
        let p = &producers[((i / per_batch) % partitions) as usize];
        let rec = record(i);
        let t = timed.then(Instant::now);
        async move { (t, p.produce(rec).await) }
    };
    // Bytes of records in flight are bounded by the memory cap.
    let cap = (job.settings.memory_bytes / VALUE_LEN).max(1);
    let mut inflight = FuturesUnordered::new();
    let cpu0 = workload::self_cpu_s();
    let start = Instant::now();
    let done = |(t, r): (Option<Instant>, Result<_, _>), tally: &mut Tally| match r {
        Ok(_) => {
            tally.ok();
            if let Some(t) = t {
                tally.latencies_us.push(micros_since(t));
            }
        }
        Err(e) => tally.fail(e),
    };
    match job.scenario {
        Scenario::Throughput => {
            let mut i = 0;
            while i < job.records || !inflight.is_empty() {
                while i < job.records && inflight.len() < cap {
                    inflight.push(produce(i, false));
                    i += 1;
                }
                if let Some(r) = inflight.next().await {
                    done(r, &mut tally);
                }
            }
        }
        Scenario::Latency => {
            let schedule = Schedule { start, rate: job.rate };
            let mut i = 0;
            while i < job.records || !inflight.is_empty() {
                let due = schedule.due_by(Instant::now()).min(job.records);
                while i < due {
                    inflight.push(produce(i, true));
                    i += 1;
                }
                let next_due = tokio::time::Instant::from_std(schedule.due(i));
                tokio::select! {
                    Some(r) = inflight.next(), if !inflight.is_empty() => done(r, &mut tally),
                    () = tokio::time::sleep_until(next_due), if i < job.records => {}
                }
            }
        }
        Scenario::Sync => {
            for i in 0..job.records {
                let r = produce(i, true).await;
                done(r, &mut tally);
            }
        }
    }
    let elapsed = start.elapsed();
    let phase_cpu_s = workload::self_cpu_s() - cpu0;
    ChildReport {
        sent: super::WARMUP + job.records,
        acked: tally.acked,
        failed: tally.failed,
        error: tally.error,
        elapsed_s: elapsed.as_secs_f64(),
        latency: Percentiles::of(&mut tally.latencies_us),
        phase_cpu_s,
        ..ChildReport::default()
    }
}
