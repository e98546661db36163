//! The fault matrix with real faults: a three-node Apache Kafka 4.4 cluster (KRaft, every node
//! broker and controller, `scripts/kafka-cluster`), a topic of 6 partitions with replication
//! factor 3 and `min.insync.replicas=2`, a stream of keyed records through the public tokio API,
//! and in the middle of it a node killed, frozen, shut down, restarted or cut off the network.
//! An independent consumer (confluent-kafka, CRC checks) reads everything back.
//!
//! Faults, each started once a fifth of the records has been reported (the producer's
//! progress, not a clock) and held while the stream goes on; the last 30% of the records are
//! sent only after the cluster is whole again, so every run also proves the producer recovers:
//!   (a) the leader of partition 0 killed (SIGKILL), restarted once the producer made progress
//!       without it;
//!   (b) the leader of partition 0 frozen (SIGSTOP) for longer than `request.timeout.ms`;
//!   (c) two of the three nodes shut down: no quorum, no ISR of two; acks=all must wait (or
//!       fail), never report success for a record that is then not on the log;
//!   (d) the active controller (the Raft leader) killed, restarted after progress;
//!   (e) a rolling restart of all three nodes (controlled shutdowns), progress between them;
//!   (f) the leader of partition 0 isolated from the other nodes and the client (packets
//!       dropped, no RST), healed after it was fenced and the producer made progress.
//! Each in two modes: idempotent (the default) and acks=all with `enable.idempotence=false`.
//!
//! Counted per row: sent, delivered, failed, read back, lost (reported delivered, not on the
//! log: the worst defect), duplicates, out of order (a record behind a later one of its
//! partition), and "misplaced" (delivered, but the reported offset holds another record).
//! Asserted: every record has exactly one report, nothing lost or misplaced; with idempotence
//! also no duplicates and per-partition order = send order.
//!
//! Between faults every node is back and the cluster healthy (every partition's whole replica
//! set in sync, preferred leaders elected). One fresh cluster per run of this binary.
//!
//! Not part of `cargo test --workspace` (ignored: three JVM brokers, minutes). Run it with
//! `scripts/cluster-faults`, or
//! `cargo test -p picokafka-tests --test cluster_faults -- --ignored --nocapture`.
//! Env: `CLUSTER_FAULT_RECORDS` (records per run, default 100000), `CLUSTER_FAULT_ONLY` (a
//! comma-separated subset of the fault letters, e.g. `a,f`), `CLUSTER_FAULT_MODES`
//! (`idempotent`, `acks=all` or both, the default).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picokafka_tests::{consume_at_least, python, root, Consumer};
use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};

const NODES: i32 = 3;
const PARTITIONS: u32 = 6;
/// The producer's `request.timeout.ms`; the freeze lasts longer.
const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Kafka's `broker.session.timeout.ms` (default): after this a silent broker is fenced.
const SESSION_TIMEOUT_MS: u64 = 9_000;

// --- the cluster -------------------------------------------------------------------------------

/// The three-node cluster of `scripts/kafka-cluster`, taken down when dropped.
struct Cluster {
    dir: PathBuf,
    bootstrap: String,
    /// Keep the nodes' logs after the run (set when a row fails).
    keep: AtomicBool,
}

fn script(name: &str) -> PathBuf {
    root().join("scripts").join(name)
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stderr(Stdio::inherit()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Cluster {
    fn start() -> Cluster {
        let t0 = Instant::now();
        let mut cmd = Command::new(script("kafka-cluster"));
        // The nodes stop when this test process ends, however it ends.
        cmd.args(["start", "3"]).env("KAFKA_WATCH_PID", std::process::id().to_string());
        cmd.env_remove("KAFKA_CLUSTER_DIR");
        let out = output(&mut cmd).expect("kafka-cluster start");
        let get = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_else(|| panic!("kafka-cluster start prints {key}"))
                .to_string()
        };
        let cluster = Cluster {
            dir: get("KAFKA_CLUSTER_DIR").into(),
            bootstrap: get("KAFKA_BOOTSTRAP"),
            keep: false.into(),
        };
        eprintln!(
            "cluster of {NODES} up in {:.1?}: {} ({})",
            t0.elapsed(),
            cluster.bootstrap,
            cluster.dir.display()
        );
        cluster
    }

    /// `scripts/kafka-cluster CMD DIR ARGS...`.
    fn ctl(&self, cmd: &str, args: &[String]) -> Result<String, String> {
        output(Command::new(script("kafka-cluster")).arg(cmd).arg(&self.dir).args(args))
    }

    fn on(&self, cmd: &str, ids: &[i32]) -> Result<(), String> {
        self.ctl(cmd, &ids.iter().map(i32::to_string).collect::<Vec<_>>()).map(drop)
    }

    fn controller(&self) -> Result<i32, String> {
        let out = self.ctl("controller", &[])?;
        out.trim().parse().map_err(|_| format!("kafka-cluster controller printed {out:?}"))
    }

    fn healthy(&self) -> Result<(), String> {
        self.ctl("healthy", &["240".into()]).map(drop)
    }

    fn admin(&self, args: &[&str]) -> Result<String, String> {
        output(Command::new(python()).arg(root().join("tests/py/admin.py")).args(args))
    }

    /// The leader of every partition of `topic`, in partition order.
    fn leaders(&self, topic: &str) -> Result<Vec<i32>, String> {
        let out = self.admin(&["leaders", topic, &self.bootstrap])?;
        out.lines()
            .map(|l| l.trim().parse().map_err(|_| format!("admin.py leaders printed {out:?}")))
            .collect()
    }

    fn create_topic(&self, name: &str) {
        output(Command::new(script("kafka-topic")).args([
            name,
            &PARTITIONS.to_string(),
            &self.bootstrap,
            "3",
            "min.insync.replicas=2",
        ]))
        .expect("topic created");
    }

    /// Records on the log of every partition of `topic` (high watermark minus log start).
    fn records_on_log(&self, topic: &str) -> Result<u64, String> {
        let out = self.admin(&["end-offsets", topic, &self.bootstrap])?;
        out.lines()
            .find_map(|l| l.strip_prefix("total "))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("admin.py end-offsets printed {out:?}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut cmd = Command::new(script("kafka-cluster"));
        cmd.arg("down").arg(&self.dir);
        if self.keep.load(Ordering::SeqCst) {
            cmd.env("KAFKA_KEEP", "1");
        }
        let _ = cmd.status();
    }
}

// --- the faults --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    LeaderKilled,
    LeaderFrozen,
    TwoDown,
    ControllerKilled,
    RollingRestart,
    Isolated,
}

const FAULTS: [Fault; 6] = [
    Fault::LeaderKilled,
    Fault::LeaderFrozen,
    Fault::TwoDown,
    Fault::ControllerKilled,
    Fault::RollingRestart,
    Fault::Isolated,
];

impl Fault {
    fn letter(self) -> char {
        (b'a' + FAULTS.iter().position(|f| *f == self).expect("listed") as u8) as char
    }

    /// While the fault is on, the sender pauses this long after every n/200 records: records
    /// flow for about 80 pauses (a rolling restart takes the longest).
    fn pace(self) -> Duration {
        Duration::from_millis(if self == Fault::RollingRestart { 400 } else { 100 })
    }

    fn name(self) -> &'static str {
        match self {
            Fault::LeaderKilled => "leader SIGKILL, restart",
            Fault::LeaderFrozen => "leader SIGSTOP > request.timeout",
            Fault::TwoDown => "2 of 3 nodes down, back",
            Fault::ControllerKilled => "active controller SIGKILL, restart",
            Fault::RollingRestart => "rolling restart of all 3",
            Fault::Isolated => "leader isolated, healed",
        }
    }
}

/// What the stream has done so far, shared by the sender, the callbacks and the fault thread.
#[derive(Default)]
struct Progress {
    /// Records accepted by `send`.
    sent: AtomicU64,
    /// Records with a report (delivered or failed).
    reported: AtomicU64,
    /// Records delivered, by partition.
    delivered: [AtomicU64; PARTITIONS as usize],
    /// 0 at first, ARMED once the victim is known, DURING the fault, HEALED once the cluster
    /// is whole and healthy again.
    phase: AtomicU8,
}

const ARMED: u8 = 1;
const DURING: u8 = 2;
const HEALED: u8 = 3;

impl Progress {
    fn reported(&self) -> u64 {
        self.reported.load(Ordering::SeqCst)
    }

    fn delivered_on(&self, partition: u32) -> u64 {
        self.delivered[partition as usize].load(Ordering::SeqCst)
    }

    /// Everything sent so far has its report: nothing in flight, no progress left to make.
    fn caught_up(&self) -> bool {
        self.reported() >= self.sent.load(Ordering::SeqCst)
    }

    /// Waits until `done` (at least `min`, at most `max`); what happened, for the log.
    fn hold(&self, done: impl Fn(&Self) -> bool, min: Duration, max: Duration) -> String {
        let t0 = Instant::now();
        while t0.elapsed() < max && (t0.elapsed() < min || !done(self)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let why = if done(self) { "progress" } else { "time" };
        format!("held {:.1?} ({why}: {} reported)", t0.elapsed(), self.reported())
    }

    fn delivered_on_all(&self, partitions: &[u32]) -> u64 {
        partitions.iter().map(|&p| self.delivered_on(p)).sum()
    }

    /// Waits until the partitions the victim led have `more` records delivered beyond what
    /// they had now (the producer found their new leader, or the old one back), or until
    /// every record sent so far is reported (nothing left to prove), but at least `min`.
    fn hold_partitions(&self, partitions: &[u32], more: u64, min: Duration) -> String {
        let base = self.delivered_on_all(partitions);
        let held = self.hold(
            |p| p.delivered_on_all(partitions) >= base + more || p.caught_up(),
            min,
            Duration::from_secs(90),
        );
        format!("{held}, {} more on partitions {partitions:?}", self.delivered_on_all(partitions) - base)
    }
}

/// Runs `fault` against the cluster once a fifth of `n` records is reported; a log of what
/// it did. Ends with the cluster whole and healthy (then phase = HEALED).
fn inject(fault: Fault, c: &Cluster, topic: &str, p: &Progress, n: u64) -> Result<String, String> {
    // The victim is found first, so the fault strikes the moment the trigger is reached, while
    // records are in flight. After `healthy` every node leads the partitions it prefers.
    let leaders = c.leaders(topic)?;
    let victims: Vec<i32> = match fault {
        Fault::LeaderKilled | Fault::LeaderFrozen | Fault::Isolated => vec![leaders[0]],
        Fault::TwoDown => (1..=NODES).filter(|&id| id != leaders[0]).collect(),
        Fault::ControllerKilled => vec![c.controller()?],
        Fault::RollingRestart => (1..=NODES).collect(),
    };
    // The partitions the victim leads: the producer's progress on them proves it moved on.
    let led: Vec<u32> = (0..PARTITIONS).filter(|&p| leaders[p as usize] == victims[0]).collect();
    p.phase.store(ARMED, Ordering::SeqCst);
    let t0 = Instant::now();
    while p.reported() < n / 5 {
        if t0.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "only {} of {n} records reported after 10 min, no fault started",
                p.reported()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut log = format!("at {} reported ({} sent): ", p.reported(), p.sent.load(Ordering::SeqCst));
    let started = Instant::now();
    let more = (n / 100).max(1);
    match fault {
        Fault::LeaderKilled => {
            let leader = victims[0];
            c.on("kill", &[leader])?;
            p.phase.store(DURING, Ordering::SeqCst);
            let held = p.hold_partitions(&led, more, Duration::from_secs(3));
            c.on("restart", &[leader])?;
            log += &format!("killed node {leader}, {held}, restarted");
        }
        Fault::LeaderFrozen => {
            let leader = victims[0];
            c.on("stop", &[leader])?;
            p.phase.store(DURING, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(REQUEST_TIMEOUT_MS + 3_000));
            c.on("resume", &[leader])?;
            log += &format!("froze node {leader} for {:.1?}, resumed", started.elapsed());
        }
        Fault::TwoDown => {
            // One after the other, each a controlled shutdown: the first leaves ISRs of two,
            // the second leaves the survivor without a quorum and without min.insync.replicas.
            p.phase.store(DURING, Ordering::SeqCst);
            c.on("term", &victims[..1])?;
            c.on("term", &victims[1..])?;
            let (took, mark) = (started.elapsed(), p.reported());
            std::thread::sleep(Duration::from_secs(15));
            log += &format!(
                "shut down nodes {victims:?} (in {took:.1?}), {} reported in the next 15 s, ",
                p.reported() - mark
            );
            c.on("restart", &victims)?;
            log += "restarted both";
        }
        Fault::ControllerKilled => {
            let controller = victims[0];
            c.on("kill", &[controller])?;
            p.phase.store(DURING, Ordering::SeqCst);
            let held = p.hold_partitions(&led, more, Duration::from_secs(3));
            let next = c.controller()?;
            c.on("restart", &[controller])?;
            log += &format!("killed controller {controller} (next: {next}), {held}, restarted");
        }
        Fault::RollingRestart => {
            p.phase.store(DURING, Ordering::SeqCst);
            for &id in &victims {
                let t = Instant::now();
                c.on("restart", &[id])?;
                c.healthy()?;
                let mark = p.reported();
                let held = p.hold(
                    |p| p.reported() >= mark + more || p.caught_up(),
                    Duration::ZERO,
                    Duration::from_secs(30),
                );
                log += &format!("node {id} restarted in {:.1?}, {held}; ", t.elapsed());
            }
        }
        Fault::Isolated => {
            let leader = victims[0];
            c.ctl("isolate", &[leader.to_string()])?;
            p.phase.store(DURING, Ordering::SeqCst);
            // Past the broker session, so the controller fences it and leaders move.
            let held = p.hold_partitions(&led, more, Duration::from_millis(SESSION_TIMEOUT_MS + 3_000));
            c.ctl("heal", &[leader.to_string()])?;
            log += &format!("isolated node {leader}, {held}, healed");
        }
    }
    c.healthy()?;
    log += &format!(" (fault {:.1?}, healthy again)", started.elapsed());
    Ok(log)
}

// --- one run -----------------------------------------------------------------------------------

/// A record's reports: how many, and the last one.
#[derive(Default, Clone)]
struct Slot {
    reports: u32,
    outcome: Option<Result<(i32, i64), String>>,
}

#[derive(Default)]
struct Row {
    sent: u64,
    delivered: u64,
    failed: u64,
    read_back: usize,
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
    misplaced: usize,
    /// Records without a report, and with more than one.
    unreported: u64,
    reported_twice: u64,
    errors: BTreeMap<String, u64>,
}

fn producer(bootstrap: &str, idempotent: bool) -> Producer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", idempotent.to_string())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("request.timeout.ms", REQUEST_TIMEOUT_MS.to_string());
    Producer::new(&config).expect("valid configuration")
}

/// Waits for the cluster to be healthy, then creates the run's topic.
async fn healthy_with_topic(c: &Arc<Cluster>, topic: &str) {
    let (c, topic) = (c.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        c.healthy().expect("cluster healthy before the run");
        c.create_topic(&topic);
    })
    .await
    .unwrap();
}

async fn run(c: &Arc<Cluster>, fault: Fault, idempotent: bool, n: u64, run_no: usize) -> (Row, String) {
    let mode = if idempotent { "idem" } else { "all" };
    let topic = format!("cf-{}-{mode}-{run_no}", fault.letter());
    healthy_with_topic(c, &topic).await;
    let progress = Arc::new(Progress::default());
    let slots: Arc<Mutex<Vec<Slot>>> = Arc::new(Mutex::new(vec![Slot::default(); n as usize]));
    let faults = {
        let (c, topic, progress) = (c.clone(), topic.clone(), progress.clone());
        std::thread::spawn(move || {
            let r = inject(fault, &c, &topic, &progress, n);
            progress.phase.store(HEALED, Ordering::SeqCst);
            r
        })
    };

    // The fault's victim is known before the first record: it strikes the moment its trigger
    // is reached.
    while progress.phase.load(Ordering::SeqCst) < ARMED {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let p = producer(&c.bootstrap, idempotent);
    // The broker errors the producer meets (the core keeps the last one: sampled).
    let seen_errors: Arc<Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    let sampler = {
        let (p, seen) = (p.clone(), seen_errors.clone());
        tokio::spawn(async move {
            loop {
                if let Some(e) = p.metrics().await.last_broker_error {
                    seen.lock().unwrap().insert(e.to_string());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut refused = BTreeMap::<String, u64>::new();
    // The shape of the stream: full speed to 30% (the fault strikes at 20% reported, with the
    // records after it in flight); then, once the fault is on, a steady n/200 per pause to 70%
    // (8 s of new records for every partition while the cluster is broken, 32 s for the rolling
    // restart); the rest at full speed once the cluster is whole again (the producer recovered).
    let paced = (n / 200).max(1);
    for i in 0..n {
        if i == n * 3 / 10 {
            while progress.phase.load(Ordering::SeqCst) < DURING {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if i == n * 7 / 10 {
            while progress.phase.load(Ordering::SeqCst) != HEALED {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if (n * 3 / 10..n * 7 / 10).contains(&i)
            && (i - n * 3 / 10).is_multiple_of(paced)
            && progress.phase.load(Ordering::SeqCst) == DURING
        {
            tokio::time::sleep(fault.pace()).await;
        }
        let record =
            OwnedRecord::new(topic.as_str()).key(format!("key-{}", i % 1000)).value(format!("{i:08}"));
        let (slots2, progress2) = (slots.clone(), progress.clone());
        let sent = p
            .send_with_callback(record, move |r| {
                let mut slots = slots2.lock().unwrap();
                let slot = &mut slots[i as usize];
                slot.reports += 1;
                if let Ok(d) = &r {
                    progress2.delivered[d.partition as usize % PARTITIONS as usize]
                        .fetch_add(1, Ordering::SeqCst);
                }
                slot.outcome = Some(r.map(|d| (d.partition, d.offset)).map_err(|e| e.to_string()));
                drop(slots);
                progress2.reported.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        progress.sent.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = sent {
            // Refused at the door: that is its one report.
            *refused.entry(format!("send refused: {e}")).or_default() += 1;
            let mut slots = slots.lock().unwrap();
            slots[i as usize].reports += 1;
            slots[i as usize].outcome = Some(Err(format!("send refused: {e}")));
            progress.reported.fetch_add(1, Ordering::SeqCst);
        }
    }
    let t_sent = t0.elapsed();
    // Well past delivery.timeout.ms (120 s): by then every record has a report.
    if p.flush(Duration::from_secs(300)).await.is_err() {
        eprintln!("flush() did not return within 300 s: {:?}", p.metrics().await);
    }
    let metrics = p.metrics().await;
    sampler.abort();
    // What is still undelivered now is reported failed by close.
    p.close(Duration::from_secs(30)).await;
    let t_closed = t0.elapsed();
    let fault_log = tokio::task::spawn_blocking(move || faults.join().expect("fault thread"))
        .await
        .unwrap()
        .unwrap_or_else(|e| format!("FAULT FAILED: {e}"));

    let slots = slots.lock().unwrap().clone();
    let mut row = Row { sent: n, errors: refused, ..Row::default() };
    for s in &slots {
        match (&s.outcome, s.reports) {
            (None, _) => row.unreported += 1,
            (Some(Ok(_)), 1) => row.delivered += 1,
            (Some(Err(e)), 1) => {
                row.failed += 1;
                if !e.starts_with("send refused") {
                    *row.errors.entry(e.clone()).or_default() += 1;
                }
            }
            (Some(_), _) => row.reported_twice += 1,
        }
    }

    // Read back everything on the log (an exact count: no transactions, no compaction).
    let (c2, topic2) = (c.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || {
        c2.healthy().expect("cluster healthy after the run");
        let on_log = c2.records_on_log(&topic2).expect("end offsets");
        consume_at_least(&c2.bootstrap, &[&topic2], on_log as usize, Consumer::Confluent)
    })
    .await
    .unwrap();
    row.read_back = records.len();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut at: HashMap<(i32, i64), u64> = HashMap::new();
    let mut last: HashMap<i32, u64> = HashMap::new();
    for rec in &records {
        let id: u64 = String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).parse().expect("id");
        let count = seen.entry(id).or_default();
        *count += 1;
        at.insert((rec.partition, rec.offset), id);
        // Ids grow with send order, so within a partition the first copies must grow too.
        let prev = last.entry(rec.partition).or_insert(0);
        if id < *prev && *count == 1 {
            if row.out_of_order < 3 {
                eprintln!(
                    "  out of order: {topic}[{}] offset {} id {id} after {prev}",
                    rec.partition, rec.offset
                );
            }
            row.out_of_order += 1;
        }
        *prev = (*prev).max(id);
    }
    row.duplicates = seen.values().map(|k| k - 1).sum();
    for (id, s) in slots.iter().enumerate() {
        if let Some(Ok((partition, offset))) = s.outcome {
            let id = id as u64;
            if !seen.contains_key(&id) {
                if row.lost < 3 {
                    eprintln!("  lost: id {id}, reported at {topic}[{partition}] offset {offset}");
                }
                row.lost += 1;
            } else if offset >= 0 && at.get(&(partition, offset)) != Some(&id) {
                if row.misplaced < 3 {
                    eprintln!(
                        "  misplaced: id {id} reported at {topic}[{partition}] offset {offset}, which holds {:?}",
                        at.get(&(partition, offset))
                    );
                }
                row.misplaced += 1;
            }
        }
    }
    let detail = format!(
        "{fault_log}; sent in {t_sent:.1?}, all reported in {t_closed:.1?}; {} batches retried, \
         {} connects, {} disconnects; broker errors met {:?}; failures {:?}",
        metrics.batches_retried,
        metrics.connects,
        metrics.disconnects,
        seen_errors.lock().unwrap(),
        row.errors
    );
    (row, detail)
}

// --- the table ---------------------------------------------------------------------------------

fn header() -> String {
    format!(
        "| {:<38} | {:<10} | {:>7} | {:>9} | {:>6} | {:>9} | {:>4} | {:>10} | {:>12} | {:>9} |\n|{}|",
        "fault",
        "mode",
        "sent",
        "delivered",
        "failed",
        "read back",
        "lost",
        "duplicates",
        "out of order",
        "misplaced",
        [40, 12, 9, 11, 8, 11, 6, 12, 14, 11].map(|w| "-".repeat(w)).join("|")
    )
}

fn line(fault: Fault, mode: &str, r: &Row) -> String {
    format!(
        "| {:<38} | {mode:<10} | {:>7} | {:>9} | {:>6} | {:>9} | {:>4} | {:>10} | {:>12} | {:>9} |",
        format!("({}) {}", fault.letter(), fault.name()),
        r.sent,
        r.delivered,
        r.failed,
        r.read_back,
        r.lost,
        r.duplicates,
        r.out_of_order,
        r.misplaced
    )
}

/// Problems of a row: the assertions, as messages.
fn problems(fault: Fault, idempotent: bool, r: &Row) -> Vec<String> {
    let mode = if idempotent { "idempotent" } else { "acks=all" };
    let name = format!("({}) {} [{mode}]", fault.letter(), fault.name());
    let mut out = Vec::new();
    if r.unreported > 0 || r.reported_twice > 0 || r.delivered + r.failed != r.sent {
        out.push(format!(
            "{name}: {} delivered + {} failed of {} sent ({} without a report, {} with more than one)",
            r.delivered, r.failed, r.sent, r.unreported, r.reported_twice
        ));
    }
    if r.lost > 0 {
        out.push(format!("{name}: {} records reported delivered are not on the log", r.lost));
    }
    if r.misplaced > 0 {
        out.push(format!("{name}: {} records are not at the offset their report named", r.misplaced));
    }
    if idempotent && (r.duplicates > 0 || r.out_of_order > 0) {
        out.push(format!("{name}: {} duplicates, {} out of order", r.duplicates, r.out_of_order));
    }
    out
}

/// Transactions per run of (t), records per transaction, and the transaction whose commit meets
/// the kill.
const TXNS: usize = 24;
const TXN_RECORDS: usize = 300;
const TXN_KILLED: usize = 8;

/// (t): a transactional producer commits `TXNS` transactions over the 6 partitions; while the
/// commit of transaction `TXN_KILLED` is in flight its transaction coordinator is killed
/// (SIGKILL), and restarted once that commit has ended. Each transaction must be all or
/// nothing for a read_committed consumer (confluent-kafka): a commit reported done, all of its
/// records; a failed one (then aborted), none.
async fn transactions_through_coordinator_kill(c: &Arc<Cluster>) -> Result<String, String> {
    let topic = "cf-t-txn".to_string();
    healthy_with_topic(c, &topic).await;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &c.bootstrap)
        .set("transactional.id", "cf-t")
        .set("linger.ms", "5")
        .set("request.timeout.ms", REQUEST_TIMEOUT_MS.to_string());
    let p = Producer::new(&config).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(120);
    p.init_transactions(timeout).await.map_err(|e| format!("init_transactions: {e}"))?;
    let mut committed = Vec::new();
    let mut log = String::new();
    for t in 0..TXNS {
        p.begin_transaction().await.map_err(|e| format!("begin {t}: {e}"))?;
        for i in 0..TXN_RECORDS {
            let record = OwnedRecord::new(topic.as_str()).key(format!("{t}-{i}")).value(format!("t{t}-{i}"));
            p.send_and_forget(record).await.map_err(|e| format!("send {t}: {e}"))?;
        }
        let victim = if t == TXN_KILLED { p.metrics().await.transaction_coordinator } else { None };
        let commit = p.commit_transaction(timeout);
        let result = match victim {
            Some(node) => {
                let c2 = c.clone();
                let kill = tokio::task::spawn_blocking(move || c2.on("kill", &[node]));
                let result = commit.await;
                kill.await.unwrap()?;
                let c2 = c.clone();
                tokio::task::spawn_blocking(move || c2.on("restart", &[node])).await.unwrap()?;
                log += &format!("coordinator node {node} killed during commit {t}: {result:?}, restarted; ");
                result
            }
            None => commit.await,
        };
        match result {
            Ok(()) => committed.push(t),
            Err(e) if e.txn_requires_abort() => {
                log += &format!("commit {t} failed ({e}), aborted; ");
                p.abort_transaction(timeout).await.map_err(|e| format!("abort {t}: {e}"))?;
            }
            Err(e) => return Err(format!("commit {t}: {e}")),
        }
    }
    let m = p.metrics().await;
    p.close(timeout).await;
    let expect = committed.len() * TXN_RECORDS;
    let bootstrap = c.bootstrap.clone();
    let topic2 = topic.clone();
    let read = tokio::task::spawn_blocking(move || {
        picokafka_tests::consume_with(
            &bootstrap,
            &[&topic2],
            expect,
            Consumer::Confluent,
            &[("isolation.level", "read_committed")],
        )
    })
    .await
    .map_err(|e| format!("read back: {e}"))?;
    let mut per_txn: BTreeMap<usize, usize> = BTreeMap::new();
    for r in &read {
        let v = String::from_utf8(r.value.clone().unwrap_or_default()).unwrap_or_default();
        let t: usize = v[1..v.find('-').unwrap_or(1)].parse().unwrap_or(usize::MAX);
        *per_txn.entry(t).or_default() += 1;
    }
    let want: BTreeMap<usize, usize> = committed.iter().map(|&t| (t, TXN_RECORDS)).collect();
    if per_txn != want {
        return Err(format!("read_committed per transaction {per_txn:?}, committed {committed:?}; {log}"));
    }
    log += &format!(
        "{} of {TXNS} committed ({} records read back, each transaction whole), {} aborted",
        m.transactions_committed, expect, m.transactions_aborted
    );
    Ok(log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a 3-node Apache Kafka cluster and runs for many minutes: scripts/cluster-faults"]
async fn cluster_fault_matrix() {
    let n: u64 =
        std::env::var("CLUSTER_FAULT_RECORDS").ok().map_or(100_000, |v| v.parse().expect("a number"));
    let only = std::env::var("CLUSTER_FAULT_ONLY").unwrap_or_default();
    let faults: Vec<Fault> = FAULTS
        .into_iter()
        .filter(|f| only.is_empty() || only.split(',').any(|o| o.trim() == f.letter().to_string()))
        .collect();
    let modes: Vec<bool> = match std::env::var("CLUSTER_FAULT_MODES").as_deref() {
        Ok("idempotent") => vec![true],
        Ok("acks=all") => vec![false],
        _ => vec![true, false],
    };
    let t0 = Instant::now();
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    println!("{n} records per run, {PARTITIONS} partitions, RF 3, min.insync.replicas=2\n{}", header());
    let mut table = Vec::new();
    let mut all_problems = Vec::new();
    for (i, &fault) in faults.iter().enumerate() {
        for &idempotent in &modes {
            let mode = if idempotent { "idempotent" } else { "acks=all" };
            let t = Instant::now();
            let (row, detail) = run(&cluster, fault, idempotent, n, i).await;
            let l = line(fault, mode, &row);
            println!("{l}");
            println!("  ({:.1?}) {detail}", t.elapsed());
            table.push(l);
            let p = problems(fault, idempotent, &row);
            if !p.is_empty() || detail.contains("FAULT FAILED") {
                cluster.keep.store(true, Ordering::SeqCst);
            }
            if detail.contains("FAULT FAILED") {
                all_problems.push(format!("({}) [{mode}]: {detail}", fault.letter()));
            }
            all_problems.extend(p);
        }
    }
    if only.is_empty() || only.split(',').any(|o| o.trim() == "t") {
        let t = Instant::now();
        match transactions_through_coordinator_kill(&cluster).await {
            Ok(detail) => println!(
                "(t) transactions, coordinator killed during a commit ({:.1?}): {detail}",
                t.elapsed()
            ),
            Err(problem) => {
                println!("(t) transactions: {problem}");
                cluster.keep.store(true, Ordering::SeqCst);
                all_problems.push(format!("(t) {problem}"));
            }
        }
    }
    println!("\n{n} records per run; the whole matrix took {:.1?}\n{}", t0.elapsed(), header());
    for l in &table {
        println!("{l}");
    }
    if !all_problems.is_empty() {
        println!("logs kept in {}", cluster.dir.display());
    }
    assert!(all_problems.is_empty(), "{all_problems:#?}");
}
