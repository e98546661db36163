//! `picokafka`: produce records from lines of text, or show a cluster's metadata. Flags follow
//! kcat where they can.
//!
//! ```text
//! picokafka produce -b HOST:PORT -t TOPIC [-K DELIM] [-H NAME=VALUE]... [-p PARTITION]
//!                   [-z CODEC] [--acks 0|1|all] [--no-idempotence] [-X property=value]...
//!                   [-F FILE.properties] [--transactional-id ID [--transaction-records N]]
//!                   [FILE]
//! picokafka metadata -b HOST:PORT [-t TOPIC]... [-X property=value]... [-F FILE.properties]
//! ```

#![deny(missing_docs)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};
use tokio::io::{AsyncBufReadExt, BufReader};

mod metadata;
mod transactions;

#[derive(Parser)]
#[command(name = "picokafka", version, about = "A Kafka producer that also runs on microcontrollers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce one record per input line.
    Produce(ProduceArgs),
    /// Print brokers, topics, partitions and leaders.
    Metadata {
        /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
        #[arg(short = 'b', long = "brokers")]
        brokers: String,
        /// Only these topics (default: all).
        #[arg(short = 't', long = "topic")]
        topics: Vec<String>,
        /// A client property, property=value (repeatable): security.protocol, ssl.*, sasl.*.
        #[arg(short = 'X')]
        properties: Vec<String>,
        /// A .properties file of client properties.
        #[arg(short = 'F')]
        config_file: Option<String>,
    },
}

#[derive(clap::Args)]
struct ProduceArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(short = 'b', long = "brokers")]
    brokers: String,
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Split each line at the first DELIM into key and value.
    #[arg(short = 'K', long = "key-delimiter")]
    key_delimiter: Option<String>,
    /// A header on every record, NAME=VALUE (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Send every record to this partition.
    #[arg(short = 'p', long = "partition")]
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
    #[arg(long = "transactional-id")]
    transactional_id: Option<String>,
    /// Records per transaction (with --transactional-id).
    #[arg(long = "transaction-records", default_value_t = 1000, requires = "transactional_id")]
    transaction_records: u64,
    /// Serve Prometheus metrics (/metrics) and a health check (/health) on HOST:PORT while
    /// producing.
    #[arg(long = "metrics-addr")]
    metrics_addr: Option<String>,
    /// Read lines from this file instead of standard input.
    file: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // The configuration's warnings are printed by `print_warnings`, once, not logged again.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,picokafka_tokio::config=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Produce(args) => produce(args).await,
        Command::Metadata { brokers, topics, properties, config_file } => {
            let config = match client_config(&brokers, config_file.as_deref(), &properties) {
                Ok(c) => {
                    print_warnings(&c);
                    c
                }
                Err(e) => {
                    eprintln!("picokafka: {e}");
                    return ExitCode::from(2);
                }
            };
            match metadata::print(&brokers, &topics, &config).await {
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
    config.set("bootstrap.servers", brokers);
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

fn build_config(args: &ProduceArgs) -> Result<ClientConfig, String> {
    let mut config = client_config(&args.brokers, args.config_file.as_deref(), &[])?;
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
    print_warnings(&config);
    Ok(config)
}

#[derive(Default)]
struct Tally {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

async fn produce(args: ProduceArgs) -> ExitCode {
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("picokafka: {e}");
            return ExitCode::from(2);
        }
    };
    let headers: Vec<(String, Option<Vec<u8>>)> = match args
        .headers
        .iter()
        .map(|h| h.split_once('=').map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec()))))
        .collect::<Option<_>>()
    {
        Some(h) => h,
        None => {
            eprintln!("picokafka: -H expects NAME=VALUE");
            return ExitCode::from(2);
        }
    };
    let producer = match Producer::new(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("picokafka: {e}");
            return ExitCode::from(2);
        }
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
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => match tokio::fs::File::open(path).await {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("picokafka: cannot open {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => Box::new(tokio::io::stdin()),
    };
    let mut txn = match &args.transactional_id {
        Some(_) => match transactions::Transactions::start(&producer, args.transaction_records).await {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("picokafka: init_transactions: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut txn_error = None;
    let mut lines = BufReader::with_capacity(1 << 16, input).lines();
    let tally = Arc::new(Tally::default());
    let topic: Arc<str> = args.topic.as_str().into();
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let (mut sent, mut bytes, mut refused) = (0u64, 0u64, 0u64);
    let mut interrupted = false;
    // Both listeners exist for the whole run: a signal that arrives while no listener exists is
    // dropped by tokio.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();

    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = async { match sigint.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                interrupted = true;
                break;
            }
            _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                interrupted = true;
                break;
            }
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                eprintln!("picokafka: reading input: {e}");
                break;
            }
        };
        let (key, value) = match &args.key_delimiter {
            Some(d) => match line.split_once(d.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        bytes += (value.len() + key.as_ref().map_or(0, String::len)) as u64;
        let mut record = OwnedRecord::new(topic.clone()).value(value);
        record.key = key.map(String::into_bytes);
        record.partition = args.partition;
        record.headers = headers.clone();
        let t = tally.clone();
        let result = producer
            .send_with_callback(record, move |r| match r {
                Ok(_) => {
                    t.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    t.failed.fetch_add(1, Ordering::Relaxed);
                    let mut first = t.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    first.get_or_insert_with(|| e.to_string());
                }
            })
            .await;
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
            Err(e) => {
                refused += 1;
                let mut first = tally.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| e.to_string());
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
    producer.close(Duration::from_secs(30)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed) + refused;
    if progress {
        eprintln!();
    }
    println!(
        "{sent} records sent, {delivered} delivered, {failed} failed, {bytes} bytes in {elapsed:.2} s ({:.0} records/s, {:.2} MB/s)",
        delivered as f64 / elapsed.max(1e-9),
        bytes as f64 / elapsed.max(1e-9) / 1e6
    );
    if let Some(t) = &txn {
        println!(
            "transactions: {} committed ({} records), {} aborted ({} records), {} records in none",
            t.committed_txns,
            t.committed_records,
            t.aborted_txns,
            t.aborted_records,
            t.open()
        );
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
    let txn_clean =
        txn.as_ref().is_none_or(|t| t.aborted_records == 0 && t.open() == 0 && txn_error.is_none());
    let code = if failed > 0 || delivered != sent || !txn_clean { 1 } else { 0 };
    // Exit now: a read of stdin may still be blocked on a runtime thread (an interrupted run with
    // the pipe still open), and the runtime would wait for it at shutdown.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}
