//! `picokafka`: produce records from bytes (standard input or files), or show a cluster's
//! metadata. Flags follow kcat's `-P` and `-L` where they can.
//!
//! ```text
//! picokafka produce [-b HOST:PORT] -t TOPIC [-D DELIM] [-K DELIM] [-k KEY] [-H NAME=VALUE]...
//!                   [-p PARTITION] [-z CODEC] [--acks 0|1|all] [--no-idempotence]
//!                   [-X property=value]... [-F FILE.properties] [-c N] [-T] [-J] [-Z] [-q] [-v]...
//!                   [--transactional-id ID [--transaction-records N]] [-l] [FILE]...
//! picokafka metadata [-b HOST:PORT] [-t TOPIC]... [-X property=value]... [-F FILE.properties] [-J]
//! ```

#![deny(missing_docs)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use picokafka_tokio::{ClientConfig, DeadLetterOutcome, DeadLetterQueue, OwnedRecord, Producer};

mod input;
mod metadata;
mod report;
mod transactions;

#[derive(Parser)]
#[command(name = "picokafka", version, about = "A Kafka producer that also runs on microcontrollers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Quiet: no summary, no progress, the log at errors only.
    #[arg(short = 'q', long = "quiet", global = true)]
    quiet: bool,
    /// More log: -v info, -vv debug, -vvv trace (default: warnings, or RUST_LOG).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Produce one record per delimited piece of standard input, or one per FILE.
    Produce(Box<ProduceArgs>),
    /// Print brokers, topics, partitions and leaders.
    Metadata {
        /// Bootstrap servers, HOST:PORT[,HOST:PORT...] (else bootstrap.servers of -F or -X).
        #[arg(short = 'b', long = "brokers")]
        brokers: Option<String>,
        /// Only these topics (default: all).
        #[arg(short = 't', long = "topic")]
        topics: Vec<String>,
        /// A client property, property=value (repeatable): security.protocol, ssl.*, sasl.*.
        #[arg(short = 'X')]
        properties: Vec<String>,
        /// A .properties file of client properties.
        #[arg(short = 'F')]
        config_file: Option<String>,
        /// JSON on one line: brokers, topics, partitions and leaders.
        #[arg(short = 'J', long = "json")]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ProduceArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...] (else bootstrap.servers of -F or -X).
    #[arg(short = 'b', long = "brokers")]
    brokers: Option<String>,
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// The record delimiter: bytes, with escapes \n \r \t \0 \\ \xNN.
    #[arg(short = 'D', long = "delimiter", default_value = "\\n")]
    delimiter: String,
    /// Split each record at the first DELIM (escapes as -D) into key and value.
    #[arg(short = 'K', long = "key-delimiter")]
    key_delimiter: Option<String>,
    /// The key of every record (one split by -K keeps its own).
    #[arg(short = 'k', long = "key")]
    key: Option<String>,
    /// FILEs are split at the delimiter, as standard input is (else each is one record).
    #[arg(short = 'l', requires = "files")]
    split_files: bool,
    /// Echo each record produced to stdout, as read (tee).
    #[arg(short = 'T', long = "tee")]
    tee: bool,
    /// Stop after N records.
    #[arg(short = 'c', long = "count")]
    count: Option<u64>,
    /// A JSON delivery report per record on stdout: record, topic, partition, offset, ts, key,
    /// size, or error.
    #[arg(short = 'J', long = "json")]
    json: bool,
    /// A header on every record, NAME=VALUE (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Send every record to this partition (-1: the partitioner chooses, as without -p).
    #[arg(short = 'p', long = "partition", allow_negative_numbers = true)]
    partition: Option<i32>,
    /// Compression: none, lz4, gzip, snappy or zstd.
    #[arg(short = 'z', long = "compression")]
    compression: Option<String>,
    #[arg(long = "acks")]
    acks: Option<String>,
    #[arg(long = "no-idempotence")]
    no_idempotence: bool,
    /// A producer property, property=value (repeatable).
    #[arg(short = 'X')]
    properties: Vec<String>,
    /// A .properties file of producer properties.
    #[arg(short = 'F')]
    config_file: Option<String>,
    /// Write the input in transactions under this transactional.id: committed every
    /// --transaction-records records and at the end of input; SIGINT/SIGTERM aborts the open one.
    /// A transactional.id from -X or -F does the same.
    #[arg(long = "transactional-id")]
    transactional_id: Option<String>,
    /// Records per transaction, with a transactional.id (default 1000 with --transactional-id;
    /// with -X/-F's, as kcat: one transaction for the whole input).
    #[arg(long = "transaction-records")]
    transaction_records: Option<u64>,
    /// Send empty values as null (tombstones); empty records are skipped either way, as kcat.
    #[arg(short = 'Z', long = "null-empty")]
    null_empty: bool,
    /// Serve Prometheus metrics (/metrics) and a health check (/health) on HOST:PORT while
    /// producing.
    #[arg(long = "metrics-addr")]
    metrics_addr: Option<String>,
    /// Records that fail for good (too large for the topic, unauthorized, timed out) are
    /// produced to this topic instead, with headers naming the topic, partition, error and
    /// attempts; the run then succeeds if every record was delivered or dead-lettered.
    #[arg(long = "dead-letter-topic")]
    dead_letter_topic: Option<String>,
    /// Send each FILE whole as one record (with -l: split at the delimiter) instead of
    /// reading standard input.
    files: Vec<String>,
}

// One thread runs the input loop, the producer's task and its sockets: a record is allocated and
// freed on the same thread and no task wakes another across cores (1 M records, A/B: ~20 % less
// CPU at the same throughput; BENCHMARKS.md). Standard input is still read on tokio's blocking
// pool, and -J/-T write from a thread of their own.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // -q / -v override RUST_LOG; without them RUST_LOG filters, warnings by default. The
    // configuration's warnings are printed by `print_warnings`, once, not logged again.
    let filter = match (cli.quiet, cli.verbose) {
        (true, _) => tracing_subscriber::EnvFilter::new("error"),
        (false, 0) => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,picokafka_tokio::config=error")),
        (false, 1) => tracing_subscriber::EnvFilter::new("info"),
        (false, 2) => tracing_subscriber::EnvFilter::new("debug"),
        (false, _) => tracing_subscriber::EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match cli.command {
        Command::Produce(args) => produce(args, cli.quiet).await,
        Command::Metadata { brokers, topics, properties, config_file, json } => {
            let config = match client_config(
                brokers.as_deref().unwrap_or_default(),
                config_file.as_deref(),
                &properties,
            )
            .and_then(|c| bootstrap(&c).map(|b| (b, c)))
            {
                Ok(c) => {
                    print_warnings(&c.1);
                    c
                }
                Err(e) => {
                    eprintln!("picokafka: {e}");
                    return ExitCode::from(2);
                }
            };
            match metadata::print(&config.0, &topics, &config.1, json).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("picokafka: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The environment variables that set properties: `PICOKAFKA_PROP_LINGER_MS=20` is `linger.ms`.
/// A prefix of their own: the project's other variables (`PICOKAFKA_CACHE`, ...) are not properties.
const ENV_PREFIX: &str = "PICOKAFKA_PROP_";

/// Properties from `-F`, the environment (`PICOKAFKA_PROP_*`), then `-X`, over `bootstrap.servers`.
fn client_config(brokers: &str, file: Option<&str>, properties: &[String]) -> Result<ClientConfig, String> {
    let mut config = match file {
        Some(path) => ClientConfig::from_properties_file(path).map_err(|e| e.to_string())?,
        None => ClientConfig::new(),
    };
    config.merge_env(ENV_PREFIX);
    if !brokers.is_empty() {
        // Empty: no -b; -F, the environment or -X may set it (`bootstrap` checks).
        config.set("bootstrap.servers", brokers);
    }
    for p in properties {
        let (k, v) = p.split_once('=').ok_or_else(|| format!("-X {p}: expected property=value"))?;
        config.set(k, v);
    }
    Ok(config)
}

/// Says once, on stderr, which settings given are not used (Java classes, librdkafka's debug).
fn print_warnings(config: &ClientConfig) {
    for w in config.warnings() {
        eprintln!("picokafka: warning: {w}");
    }
}

/// `bootstrap.servers`, from `-b`, `-F` or `-X`: one of them must set it.
fn bootstrap(config: &ClientConfig) -> Result<String, String> {
    match config.get("bootstrap.servers").map(str::trim) {
        Some(b) if !b.is_empty() => Ok(b.to_string()),
        _ => Err("no bootstrap servers: give -b HOST:PORT, or bootstrap.servers in -F FILE or -X".into()),
    }
}

fn build_config(args: &ProduceArgs) -> Result<ClientConfig, String> {
    let mut config =
        client_config(args.brokers.as_deref().unwrap_or_default(), args.config_file.as_deref(), &[])?;
    if let Some(z) = &args.compression {
        config.set("compression.type", z);
    }
    if let Some(acks) = &args.acks {
        config.set("acks", acks);
    }
    if args.no_idempotence {
        config.set("enable.idempotence", "false");
    }
    if let Some(id) = &args.transactional_id {
        config.set("transactional.id", id);
    }
    for p in &args.properties {
        let (k, v) = p.split_once('=').ok_or_else(|| format!("-X {p}: expected property=value"))?;
        config.set(k, v);
    }
    bootstrap(&config)?;
    print_warnings(&config);
    Ok(config)
}

/// `produce`'s `batch.size` and `buffer.memory` where neither `-X`, `-F` nor the environment
/// sets them. Batches are fixed buffers, one open per partition: big ones where records go to
/// one partition at a time (`-p`, unkeyed records, which stick to a partition per batch) or to
/// a few, else the library's 16 KiB, with room for two per partition. Asking the topic's
/// partition count costs one Metadata request before the producer starts (at most 2 s;
/// unanswered, the small batches and the library's 32 MiB of them).
async fn default_batching(config: &mut ClientConfig, args: &ProduceArgs, keyed: bool) {
    let mut spread_over = 1;
    if config.get("batch.size").is_none() {
        if keyed && args.partition.is_none_or(|p| p < 0) {
            let bootstrap = config.get("bootstrap.servers").unwrap_or_default().to_string();
            let count = metadata::partition_count(&bootstrap, &args.topic, config, Duration::from_secs(2));
            spread_over = count.await.unwrap_or(usize::MAX);
        }
        let batch = if spread_over <= BIG_BATCHES_UP_TO { BIG_BATCH_SIZE } else { SMALL_BATCH_SIZE };
        config.set("batch.size", batch.to_string());
    }
    if config.get("buffer.memory").is_none() {
        config.set("buffer.memory", default_buffer_memory(config, spread_over).to_string());
    }
}

/// The CLI's `batch.size` when none is given and records go to one partition at a time:
/// 256 KiB, not the library's (and Java's) 16 KiB. A kcat user's batches are librdkafka's, up to
/// 1,000,000 bytes; the CLI reads records faster than a broker takes them, so its batches are
/// always full, and 16 KiB ones cap it at the broker's requests per second: 1,000,000 100-byte
/// records into one partition took 3.7 s against kcat's 0.8 s. 256 KiB was the fastest of
/// 64 KiB to 1 MiB on Apache Kafka (0.55-0.66 s; 1 MiB 0.96 s: a partition's next request waits
/// for a whole batch to fill); BENCHMARKS.md, issue 18.
const BIG_BATCH_SIZE: usize = 256 * 1024;

/// ... up to this many partitions. 1,000,000 keyed records into 6 partitions of a 3-node
/// cluster (replication 3, acks=all): 16 KiB batches 10.5 s, 64 KiB 4.5 s, 256 KiB 2.2 s
/// (kcat 4.8 s).
const BIG_BATCHES_UP_TO: usize = 8;

/// ... and when keyed records spread over more: each needs a buffer of its own, and 16 buffers
/// of 256 KiB for 100 partitions took 385 s for 1,000,000 records (a record for a partition
/// without one waits out the others' linger) where 256 of 16 KiB took 6.9 s (kcat 5.6 s; the one
/// broker was the bottleneck).
const SMALL_BATCH_SIZE: usize = 16 * 1024;

/// The CLI's `buffer.memory` when none is given: 4 MiB, at least 4 batches, two of the largest
/// requests and two batches per partition (small batches), at most the library's 32 MiB.
/// Standard input is read faster than a broker takes it, so the buffer stays full for the whole
/// run: past a few batches per partition in flight, a bigger one only adds to the peak RSS (with
/// 256 KiB batches, 8 MiB made a 29 MiB process, 4 MiB a 22 MiB one, in the same wall time;
/// BENCHMARKS.md, issue 18).
fn default_buffer_memory(config: &ClientConfig, partitions: usize) -> usize {
    let bytes = |key: &str, default: usize| {
        config.get(key).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(default)
    };
    let (batch, request) = (bytes("batch.size", SMALL_BATCH_SIZE), bytes("max.request.size", 1 << 20));
    let per_partition = batch.saturating_mul(2).saturating_mul(partitions);
    (4usize << 20)
        .max(batch.saturating_mul(4))
        .max(request.saturating_mul(2))
        .max(per_partition)
        .min(32 << 20)
}

#[derive(Default)]
struct Tally {
    delivered: AtomicU64,
    failed: AtomicU64,
    /// Of the failed, those in the dead-letter topic.
    dead_lettered: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    /// A delivery report; `dead`: the failed record is in the dead-letter topic.
    fn count(&self, r: &Result<picokafka_tokio::Delivery, picokafka_tokio::Error>, dead: bool) {
        match r {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                self.error(e.to_string());
                if dead {
                    self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    fn error(&self, e: String) {
        let mut first = self.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(e);
    }
}

/// What the flags make of each record read.
struct Shape {
    delimiter: Vec<u8>,
    key_delimiter: Option<memchr::memmem::Finder<'static>>,
    key: Option<bytes::Bytes>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    partition: Option<i32>,
}

impl Shape {
    fn new(args: &ProduceArgs) -> Result<Self, String> {
        let delimiter = input::unescape(&args.delimiter).map_err(|e| format!("-D: {e}"))?;
        let key_delimiter = match &args.key_delimiter {
            Some(k) => Some(input::unescape(k).map_err(|e| format!("-K: {e}"))?),
            None => None,
        };
        let headers = args
            .headers
            .iter()
            .map(|h| h.split_once('=').map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec()))))
            .collect::<Option<_>>()
            .ok_or("-H expects NAME=VALUE")?;
        let partition = match args.partition {
            Some(-1) | None => None,
            Some(p) if p < 0 => return Err(format!("-p {p}: a partition is 0 or more (-1: any)")),
            Some(p) => Some(p),
        };
        Ok(Self {
            partition,
            delimiter,
            key_delimiter: key_delimiter.map(|k| memchr::memmem::Finder::new(&k).into_owned()),
            key: args.key.as_ref().map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
            headers,
        })
    }
}

async fn produce(args: Box<ProduceArgs>, quiet: bool) -> ExitCode {
    let (mut config, shape) = match build_config(&args).and_then(|c| Ok((c, Shape::new(&args)?))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("picokafka: {e}");
            return ExitCode::from(2);
        }
    };
    default_batching(&mut config, &args, shape.key_delimiter.is_some() || shape.key.is_some()).await;
    let mut records = match input::Records::open(&args.files, shape.delimiter.clone(), args.split_files) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("picokafka: {e}");
            return ExitCode::from(2);
        }
    };
    let tally = Arc::new(Tally::default());
    // Without -J or a dead-letter topic a record's report is only counted: one handler for the
    // whole producer, the record's number as its opaque value (no boxed callback per record).
    let counted_only = !args.json && args.dead_letter_topic.is_none();
    let built = if counted_only {
        let t = tally.clone();
        Producer::with_delivery_handler(&config, move |_, r| t.count(&r, false))
    } else {
        Producer::new(&config)
    };
    let producer = match built {
        Ok(p) => p,
        Err(e) => {
            eprintln!("picokafka: {e}");
            return ExitCode::from(2);
        }
    };
    let dead_letters = match &args.dead_letter_topic {
        Some(t) => match DeadLetterQueue::new(&producer, t, 64 << 20) {
            Ok(q) => Some(q),
            Err(e) => {
                eprintln!("picokafka: --dead-letter-topic: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let _metrics = match &args.metrics_addr {
        Some(addr) => match picokafka_tokio::MetricsServer::bind(addr.as_str(), producer.clone()).await {
            Ok(server) => {
                eprintln!("picokafka: metrics on http://{}/metrics", server.local_addr());
                Some(server)
            }
            Err(e) => {
                eprintln!("picokafka: --metrics-addr {addr}: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let every = match (&args.transactional_id, args.transaction_records) {
        (_, Some(n)) => n,
        (Some(_), None) => 1000,
        (None, None) => u64::MAX,
    };
    let mut txn = match config.get("transactional.id") {
        Some(_) => match transactions::Transactions::start(&producer, every).await {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("picokafka: init_transactions: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let stdout = (args.tee || args.json).then(report::Stdout::start);
    let mut txn_error = None;
    let mut input_error = None;
    let topic: Arc<str> = args.topic.as_str().into();
    let started = Instant::now();
    let progress = !quiet && std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let (mut sent, mut bytes, mut refused) = (0u64, 0u64, 0u64);
    let mut read = 0u64;
    let mut interrupted = false;
    // Both listeners exist for the whole run: a signal that arrives while no listener exists is
    // dropped by tokio.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();

    while args.count.is_none_or(|c| read < c) {
        // A record already read is taken without a select: the signals are looked at whenever
        // more input must be read (tokio keeps a signal that came in meanwhile).
        let next = match records.next_buffered() {
            Some(record) => Ok(Some(record)),
            None => tokio::select! {
            next = records.next() => next,
            _ = async { match sigint.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                interrupted = true;
                break;
            }
            _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                interrupted = true;
                break;
            }
            },
        };
        let record = match next {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                input_error = Some(e);
                break;
            }
        };
        let (key, value) = match record {
            input::Record::Split(raw) => {
                if raw.is_empty() {
                    continue;
                }
                if let Some(s) = stdout.as_ref().filter(|_| args.tee) {
                    s.send(report::Out::Echo([&raw[..], records.delimiter()].concat()));
                }
                input::key_value(raw, shape.key_delimiter.as_ref(), shape.key.as_ref())
            }
            input::Record::Whole(value) => {
                if let Some(s) = stdout.as_ref().filter(|_| args.tee) {
                    s.send(report::Out::Echo(value.to_vec()));
                }
                (shape.key.clone(), value)
            }
        };
        let n = read;
        read += 1;
        let size = value.len();
        bytes += (size + key.as_ref().map_or(0, bytes::Bytes::len)) as u64;
        let mut record = OwnedRecord::new(topic.clone());
        record.value = (!(args.null_empty && value.is_empty())).then_some(value);
        let reported_key = if args.json { key.clone() } else { None };
        record.key = key;
        record.partition = shape.partition;
        if !shape.headers.is_empty() {
            record.headers = shape.headers.clone();
        }
        let result = if counted_only {
            producer.send_with_opaque(record, n).await
        } else {
            let t = tally.clone();
            let reports = stdout.as_ref().filter(|_| args.json).map(report::Stdout::sender);
            let (report_topic, partition) = (topic.clone(), shape.partition);
            let tell = move |r: Result<picokafka_tokio::Delivery, picokafka_tokio::Error>, dead: bool| {
                t.count(&r, dead);
                if let Some(tx) = reports {
                    let _ = tx.send(report::report(n, report_topic, partition, reported_key, size, &r));
                }
            };
            match &dead_letters {
                None => producer.send_with_callback(record, move |r| tell(r, false)).await,
                Some(dlq) => {
                    dlq.send_with_callback(record, move |outcome| match outcome {
                        DeadLetterOutcome::Delivered(d) => tell(Ok(d), false),
                        DeadLetterOutcome::DeadLettered { error, .. } => tell(Err(error), true),
                        DeadLetterOutcome::Failed { error, .. } => tell(Err(error), false),
                    })
                    .await
                }
            }
        };
        match result {
            Ok(()) => {
                sent += 1;
                if let Some(t) = txn.as_mut() {
                    if let Err(e) = t.sent(&producer).await {
                        txn_error = Some(e);
                        break;
                    }
                }
            }
            Err(refusal) => {
                refused += 1;
                tally.error(refusal.error.to_string());
                if let Some(s) = stdout.as_ref().filter(|_| args.json) {
                    let key = refusal.record.key.clone();
                    let failed = Err(refusal.error);
                    s.send(report::report(n, topic.clone(), shape.partition, key, size, &failed));
                }
            }
        }
        if progress && last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            let rate = sent as f64 / started.elapsed().as_secs_f64();
            eprint!(
                "\r{sent} sent, {} delivered, {rate:.0} records/s   ",
                tally.delivered.load(Ordering::Relaxed)
            );
        }
    }
    if let Some(e) = &input_error {
        eprintln!("picokafka: {e}");
    }
    if let Some(t) = txn.as_mut().filter(|_| txn_error.is_none()) {
        let open = t.open();
        let ended = if interrupted {
            eprintln!("\npicokafka: interrupted; aborting the open transaction ({open} records)");
            t.abort(&producer).await
        } else {
            t.commit(&producer).await
        };
        if let Err(e) = ended {
            txn_error = Some(e);
        }
    } else if interrupted {
        eprintln!("\npicokafka: interrupted; flushing what was sent");
    }
    if let Some(e) = &txn_error {
        eprintln!("picokafka: transaction failed: {e}");
    }
    if let Some(dlq) = &dead_letters {
        // The copies go out before the producer closes.
        if let Err(e) = dlq.flush(Duration::from_secs(30)).await {
            eprintln!("picokafka: {e}");
        }
    }
    producer.close(Duration::from_secs(30)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed) + refused;
    let dead_lettered = tally.dead_lettered.load(Ordering::Relaxed);
    if progress {
        eprintln!();
    }
    if !quiet {
        eprintln!(
            "{sent} records sent, {delivered} delivered, {failed} failed, {bytes} bytes in {elapsed:.2} s ({:.0} records/s, {:.2} MB/s)",
            delivered as f64 / elapsed.max(1e-9),
            bytes as f64 / elapsed.max(1e-9) / 1e6
        );
        if let Some(dlq) = &args.dead_letter_topic {
            eprintln!("{dead_lettered} of the failed records dead-lettered to {dlq}");
        }
        if let Some(t) = &txn {
            eprintln!(
                "transactions: {} committed ({} records), {} aborted ({} records), {} records in none",
                t.committed_txns,
                t.committed_records,
                t.aborted_txns,
                t.aborted_records,
                t.open()
            );
        }
    }
    let first_error = tally.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if let Some(e) = &first_error {
        eprintln!("picokafka: first error: {e}");
        // A record's error may not say why the producer could not deliver (a delivery timeout
        // while no broker was reachable): the producer's last error does.
        if let Some(last) = producer.health().await.last_error.filter(|l| !e.contains(l.as_str())) {
            eprintln!("picokafka: last error: {last}");
        }
    }
    // The producer is closed: every callback has run, and its report is queued.
    drop(dead_letters);
    drop(producer);
    if let Some(s) = stdout {
        s.finish();
    }
    let txn_clean =
        txn.as_ref().is_none_or(|t| t.aborted_records == 0 && t.open() == 0 && txn_error.is_none());
    // A record in the dead-letter topic is accounted for: only the others fail the run.
    let lost = failed - dead_lettered;
    let code = if lost > 0 || delivered + dead_lettered != sent || !txn_clean || input_error.is_some() {
        1
    } else {
        0
    };
    // Exit now: a read of stdin may still be blocked on a runtime thread (an interrupted run with
    // the pipe still open), and the runtime would wait for it at shutdown.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}
