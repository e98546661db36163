//! The fault matrix: librdkafka's mock cluster (3 brokers, replication 3, 6 partitions with
//! leaders on every broker), a stream of 100,000 keyed records through the public tokio API, a
//! fault in the middle of it, and an independent consumer (confluent-kafka, CRC checks) reading
//! everything back.
//!
//! With idempotence on: nothing lost, nothing duplicated, per-partition order = send order.
//! With idempotence off and acks=all: nothing lost. A fault that never heals: every record it
//! strands is reported failed once `delivery.timeout.ms` passes, none silently.
//!
//! One limit of the mock: it checks producer sequences only for transactional producers
//! (`rd_kafka_mock_validate_records` in librdkafka's rdkafka_mock.c returns early without a
//! transactional id), so it neither deduplicates nor rejects a gap for an idempotent producer.
//! Kafka does both, and the idempotent producer's ordering across pipelined requests rests on it.
//! The idempotent rows here therefore keep one request in flight per connection; pipelined
//! idempotence (five in flight) is proven against brokers that check sequences: Tansu
//! (`tcp_faults.rs`, `tansu_producer.rs`) and the simulated cluster (`sim_producer.rs`).
//!
//! `cargo test -p picokafka-tests --test fault_matrix -- --nocapture` prints the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picokafka_tests::mock::{api, MockCluster};
use picokafka_tests::{consume_at_least, Consumer};
use picokafka_tokio::{ClientConfig, Error, OwnedRecord, Producer};

const TOPIC: &str = "matrix";
const PARTITIONS: i32 = 6;
const RECORDS: u64 = 100_000;
const CHUNKS: u64 = 20;

/// Kafka error codes the faults inject.
mod code {
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NETWORK_EXCEPTION: i16 = 13;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
}

/// A fault: what is done to the cluster mid-stream, and how it heals.
#[derive(Clone, Copy)]
enum Fault {
    LeaderDownThenUp,
    LeaderMoved,
    ProduceError(i16, &'static str),
    InitProducerIdFailsFirst,
    SlowBroker,
    /// Leader down, then NOT_LEADER_OR_FOLLOWER answers on the way back, then a leader move.
    Combined,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::LeaderDownThenUp => "leader broker down, then up".into(),
            Fault::LeaderMoved => "partition leaders moved".into(),
            Fault::ProduceError(_, name) => format!("Produce answered {name}"),
            Fault::InitProducerIdFailsFirst => "InitProducerId fails at first".into(),
            Fault::SlowBroker => "slow broker trips request.timeout.ms".into(),
            Fault::Combined => "down + NOT_LEADER + leader moves".into(),
        }
    }

    fn before(self, c: &mut MockCluster) {
        if let Fault::InitProducerIdFailsFirst = self {
            c.error(api::INIT_PRODUCER_ID, code::COORDINATOR_NOT_AVAILABLE, 3);
        }
    }

    fn start(self, c: &mut MockCluster) {
        match self {
            Fault::LeaderDownThenUp => c.down(1),
            Fault::LeaderMoved => {
                for p in 0..PARTITIONS {
                    c.leader(TOPIC, p, (p + 1) % 3 + 1);
                }
            }
            Fault::ProduceError(code, _) => c.error(api::PRODUCE, code, 4),
            Fault::InitProducerIdFailsFirst => {}
            Fault::SlowBroker => c.rtt(2, 1500),
            Fault::Combined => {
                c.down(2);
                c.error(api::PRODUCE, code::NOT_LEADER_OR_FOLLOWER, 3);
            }
        }
    }

    fn heal(self, c: &mut MockCluster) {
        match self {
            Fault::LeaderDownThenUp => c.up(1),
            Fault::SlowBroker => c.rtt(2, 0),
            Fault::Combined => {
                c.up(2);
                c.leader(TOPIC, 1, 3);
            }
            _ => {}
        }
    }
}

/// What one run saw.
#[derive(Default)]
struct Row {
    sent: u64,
    delivered: u64,
    failed: u64,
    read_back: usize,
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
    timeouts: u64,
    errors: std::collections::BTreeMap<String, u64>,
}

type Outcomes = Arc<Mutex<HashMap<u64, Result<(i32, i64), Error>>>>;

fn start_cluster() -> MockCluster {
    let mut c = MockCluster::start(3, &[(TOPIC, PARTITIONS, 3)]);
    for p in 0..PARTITIONS {
        c.leader(TOPIC, p, p % 3 + 1);
    }
    c
}

fn producer(c: &MockCluster, idempotent: bool, extra: &[(&str, &str)]) -> Producer {
    let mut config = ClientConfig::new();
    // See the module docs: the mock does not check an idempotent producer's sequences.
    let in_flight = if idempotent { "1" } else { "5" };
    config
        .set("bootstrap.servers", &c.bootstrap)
        .set("max.in.flight.requests.per.connection", in_flight)
        .set("enable.idempotence", idempotent.to_string())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("request.timeout.ms", "1000")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "200")
        .set("delivery.timeout.ms", "60000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    Producer::new(&config).expect("valid configuration")
}

/// Streams the records in chunks, with `fault` started at 30% and healed at 60% (if `heals`).
async fn stream(c: &mut MockCluster, p: &Producer, fault: Fault, heals: bool) -> Outcomes {
    let outcomes: Outcomes = Arc::default();
    for chunk in 0..CHUNKS {
        if chunk == CHUNKS * 3 / 10 {
            fault.start(c);
        }
        if heals && chunk == CHUNKS * 6 / 10 {
            fault.heal(c);
        }
        for i in chunk * RECORDS / CHUNKS..(chunk + 1) * RECORDS / CHUNKS {
            let record = OwnedRecord::new(TOPIC).key(format!("key-{}", i % 1000)).value(format!("{i:08}"));
            let o = outcomes.clone();
            p.send_with_callback(record, move |r| {
                let r = r.map(|d| (d.partition, d.offset));
                o.lock().unwrap().insert(i, r);
            })
            .await
            .expect("queued");
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    p.flush(Duration::from_secs(120)).await.expect("flush");
    outcomes
}

/// Reads the topic back and checks it against what the producer reported.
fn verify(c: &mut MockCluster, outcomes: &Outcomes, idempotent: bool) -> Row {
    let outcomes = outcomes.lock().unwrap();
    let mut row = Row { sent: RECORDS, ..Row::default() };
    for r in outcomes.values() {
        match r {
            Ok(_) => row.delivered += 1,
            Err(Error::Delivery(picokafka::DeliveryError::Timeout { .. })) => {
                row.failed += 1;
                row.timeouts += 1;
            }
            Err(e) => {
                row.failed += 1;
                *row.errors.entry(e.to_string()).or_default() += 1;
            }
        }
    }
    for b in 1..=3 {
        c.up(b);
    }
    let records = consume_at_least(&c.bootstrap, &[TOPIC], row.delivered as usize, Consumer::Confluent);
    row.read_back = records.len();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut last: HashMap<i32, u64> = HashMap::new();
    for rec in &records {
        let id: u64 = String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).parse().expect("id");
        *seen.entry(id).or_default() += 1;
        // Records of one key go to one partition in send order; ids grow with send order.
        if let Some(&prev) = last.get(&rec.partition) {
            if id < prev && seen[&id] == 1 {
                if row.out_of_order < 5 && std::env::var_os("FAULT_MATRIX_ONLY").is_some() {
                    eprintln!(
                        "out of order: partition {} offset {} id {id} after {prev}",
                        rec.partition, rec.offset
                    );
                }
                row.out_of_order += 1;
            }
        }
        last.insert(rec.partition, id.max(last.get(&rec.partition).copied().unwrap_or(0)));
    }
    row.duplicates = seen.values().map(|n| n - 1).sum();
    row.lost = outcomes.iter().filter(|(id, r)| r.is_ok() && !seen.contains_key(id)).count();
    let _ = idempotent;
    row
}

fn print_row(name: &str, mode: &str, r: &Row) {
    println!(
        "| {name:<38} | {mode:<9} | {:>7} | {:>9} | {:>6} | {:>9} | {:>4} | {:>10} | {:>12} |",
        r.sent, r.delivered, r.failed, r.read_back, r.lost, r.duplicates, r.out_of_order
    );
}

fn header() {
    println!(
        "| {:<38} | {:<9} | {:>7} | {:>9} | {:>6} | {:>9} | {:>4} | {:>10} | {:>12} |",
        "fault", "mode", "sent", "delivered", "failed", "read back", "lost", "duplicates", "out-of-order"
    );
    println!("|{}|", ["-"; 9].map(|_| "----------").join("|"));
}

const FAULTS: [Fault; 11] = [
    Fault::LeaderDownThenUp,
    Fault::LeaderMoved,
    Fault::ProduceError(code::NOT_LEADER_OR_FOLLOWER, "NOT_LEADER_OR_FOLLOWER"),
    Fault::ProduceError(code::REQUEST_TIMED_OUT, "REQUEST_TIMED_OUT"),
    Fault::ProduceError(code::NOT_ENOUGH_REPLICAS, "NOT_ENOUGH_REPLICAS"),
    Fault::ProduceError(code::NOT_ENOUGH_REPLICAS_AFTER_APPEND, "NOT_ENOUGH_REPLICAS_AFTER_APPEND"),
    Fault::ProduceError(code::NETWORK_EXCEPTION, "NETWORK_EXCEPTION"),
    Fault::ProduceError(code::OUT_OF_ORDER_SEQUENCE_NUMBER, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
    Fault::ProduceError(code::UNKNOWN_PRODUCER_ID, "UNKNOWN_PRODUCER_ID"),
    Fault::InitProducerIdFailsFirst,
    Fault::SlowBroker,
];

async fn run_matrix(idempotent: bool) -> Vec<String> {
    let mode = if idempotent { "idempotent" } else { "acks=all" };
    let mut problems = Vec::new();
    let mut faults = FAULTS.to_vec();
    faults.push(Fault::Combined);
    // FAULT_MATRIX_ONLY=<index> runs one row (for debugging).
    if let Some(i) = std::env::var("FAULT_MATRIX_ONLY").ok().and_then(|v| v.parse::<usize>().ok()) {
        faults = vec![faults[i]];
    }
    for fault in faults {
        let t0 = std::time::Instant::now();
        if !idempotent
            && matches!(fault, Fault::ProduceError(c, _) if c == code::OUT_OF_ORDER_SEQUENCE_NUMBER || c == code::UNKNOWN_PRODUCER_ID)
        {
            continue; // idempotence errors: only an idempotent producer is sent them
        }
        let mut c = start_cluster();
        fault.before(&mut c);
        let p = producer(&c, idempotent, &[]);
        let outcomes = stream(&mut c, &p, fault, true).await;
        p.close(Duration::from_secs(60)).await;
        let t_stream = t0.elapsed();
        let row = verify(&mut c, &outcomes, idempotent);
        print_row(&fault.name(), mode, &row);
        eprintln!("  ({:.1?} producing, {:.1?} in all) {:?}", t_stream, t0.elapsed(), row.errors);
        let name = fault.name();
        if outcomes.lock().unwrap().len() as u64 != RECORDS {
            problems.push(format!(
                "{name} ({mode}): {} of {RECORDS} records reported",
                outcomes.lock().unwrap().len()
            ));
        }
        if row.lost > 0 || row.failed > 0 {
            problems.push(format!("{name} ({mode}): {} lost, {} failed", row.lost, row.failed));
        }
        if idempotent && (row.duplicates > 0 || row.out_of_order > 0) {
            problems.push(format!(
                "{name} ({mode}): {} duplicates, {} out of order",
                row.duplicates, row.out_of_order
            ));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    header();
    let mut problems = run_matrix(true).await;
    problems.extend(run_matrix(false).await);

    // A fault that never heals: broker 1 stays down, its partitions have no leader to move to.
    let mut c = start_cluster();
    let p = producer(&c, true, &[("delivery.timeout.ms", "4000"), ("linger.ms", "0")]);
    let started = std::time::Instant::now();
    let outcomes = stream(&mut c, &p, Fault::LeaderDownThenUp, false).await;
    p.close(Duration::from_secs(30)).await;
    let elapsed = started.elapsed();
    let row = verify(&mut c, &outcomes, true);
    print_row("leader broker down for good", "idempotent", &row);
    println!("(delivery.timeout.ms=4000: stranded records reported failed, closed after {elapsed:.1?})");
    if outcomes.lock().unwrap().len() as u64 != RECORDS {
        problems
            .push(format!("never heals: {} of {RECORDS} records reported", outcomes.lock().unwrap().len()));
    }
    if row.timeouts == 0 || row.timeouts != row.failed {
        problems.push(format!("never heals: {} failed, {} of them timed out", row.failed, row.timeouts));
    }
    if row.lost > 0 || row.duplicates > 0 {
        problems.push(format!("never heals: {} lost, {} duplicates", row.lost, row.duplicates));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
