//! `pkbench`: picokafka beside librdkafka (rdkafka) and rskafka, on the same broker, with the
//! same settings, each client in its own process. See BENCHMARKS.md.
//!
//! ```text
//! pkbench [--full] [--rounds 3] [--records 2000000] [--brokers tansu,mock,kafka] ...   # the parent
//! pkbench --report results.jsonl                                                # tables again
//! pkbench --client picokafka --scenario throughput --bootstrap ... --topic ...  # one client
//! ```
//!
//! The parent starts a fresh broker and topic per run, re-executes itself as the client with
//! `--client`, reaps it with `wait4` (CPU user + sys of that process alone), reads the JSON line
//! it prints (with its own peak RSS), and checks the topic's end offsets against the records
//! acknowledged. `--codec` and `--mcu-elf` measure instructions per record instead.

mod broker;
mod clients;
mod codec;
#[allow(dead_code)] // `encode` is for codec_bench and bench/mcu; the clients use `value`.
mod codec_loop;
mod proc;
mod report;
mod settings;
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::broker::{Paths, Running};
use crate::report::Run;
use crate::settings::{Acks, Broker, Case, Client, Codec, Scenario, Settings};

#[derive(Debug, Parser)]
#[command(name = "pkbench", about = "picokafka beside librdkafka and rskafka")]
struct Args {
    /// Run the full matrix (linger × batch × compression × acks × idempotence) instead of the
    /// default subset.
    #[arg(long)]
    full: bool,
    /// Rounds; each round runs every case once per client, client order rotating.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Records per throughput run (100-byte values).
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Records per latency run.
    #[arg(long, default_value_t = 100_000)]
    latency_records: u64,
    /// Rate of the open-loop latency runs, records/s.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Records per one-at-a-time run.
    #[arg(long, default_value_t = 2_000)]
    sync_records: u64,
    /// Partitions of each run's topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Tokio worker threads for the Rust clients (0: a current-thread runtime).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    #[arg(long, value_delimiter = ',', default_values = ["tansu", "mock", "kafka"])]
    brokers: Vec<Broker>,
    #[arg(long, value_delimiter = ',', default_values = ["throughput", "latency", "sync"])]
    scenarios: Vec<Scenario>,
    #[arg(long, value_delimiter = ',', default_values = ["picokafka", "rdkafka", "rskafka"])]
    clients: Vec<Client>,
    /// Where results go: one JSON line per run (default target/bench/results-<time>.jsonl).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the tables of an earlier results file and exit.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Instead of the network runs: x86-64 instructions per record of the encoding, under
    /// callgrind (needs valgrind; runs `codec_bench` from this binary's directory).
    #[arg(long)]
    codec: bool,
    /// Instead of the network runs: Cortex-M4 instructions per record, booting this
    /// `bench/mcu` ELF in qemu-system-arm with `--qemu-plugin`.
    #[arg(long)]
    mcu_elf: Option<PathBuf>,
    /// `bench/mcu` built with `--features crc-slice4`: adds rows with core's slice-by-4 CRC.
    #[arg(long)]
    mcu_slice4_elf: Option<PathBuf>,
    /// `bench/mcu` built with `--features compact-code`: adds rows with the firmware's encoder.
    #[arg(long)]
    mcu_compact_elf: Option<PathBuf>,
    /// The instruction-counting QEMU plugin (built from bench/mcu/plugin/insn.c).
    #[arg(long)]
    qemu_plugin: Option<PathBuf>,
    /// Records of the N-record codec run (the other runs 2N).
    #[arg(long, default_value_t = 20_000)]
    codec_records: u32,
    /// Seconds a client run may take before it is killed (default: 60 + 1 s per 10,000 records).
    #[arg(long)]
    timeout: Option<u64>,

    // Client mode: run one client and print one JSON line.
    /// Run as a client (the parent re-executes itself with this).
    #[arg(long)]
    client: Option<Client>,
    #[arg(long, default_value = "throughput")]
    scenario: Scenario,
    #[arg(long, default_value = "")]
    bootstrap: String,
    #[arg(long, default_value = "")]
    topic: String,
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    #[arg(long, default_value_t = 16384)]
    batch_size: usize,
    #[arg(long, default_value = "none")]
    compression: Codec,
    #[arg(long, default_value = "all")]
    acks: Acks,
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    idempotence: bool,
    #[arg(long, default_value_t = settings::MEMORY_CAP)]
    memory_bytes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(client) = args.client {
        return client_mode(&args, client);
    }
    if let Some(path) = &args.report {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        return match report::read(&text) {
            Ok(runs) => {
                print_tables(&runs);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    if args.codec || args.mcu_elf.is_some() {
        return codec_mode(&args);
    }
    match parent(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pkbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `PKBENCH_LOG=debug` (or another level) prints the clients' `log` records on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        eprintln!("[{:?} {} {}] {}", std::time::SystemTime::now(), r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

fn codec_mode(args: &Args) -> ExitCode {
    let mut ok = true;
    if args.codec {
        let exe = std::env::current_exe().expect("own executable");
        let codec_bench = exe.with_file_name("codec_bench");
        match codec::x86(&codec_bench, args.codec_records) {
            Ok(rows) => println!("{}", codec::table("x86-64 (callgrind)", &rows)),
            Err(e) => {
                eprintln!("pkbench --codec: {e}");
                ok = false;
            }
        }
    }
    if let Some(elf) = &args.mcu_elf {
        let Some(plugin) = &args.qemu_plugin else {
            eprintln!("pkbench --mcu-elf needs --qemu-plugin");
            return ExitCode::FAILURE;
        };
        let n = args.codec_records.min(10_000);
        match codec::mcu(elf, args.mcu_slice4_elf.as_deref(), args.mcu_compact_elf.as_deref(), plugin, n) {
            Ok(rows) => {
                println!("{}", codec::table("Cortex-M4 / Thumb-2 (QEMU mps2-an386, TCG plugin)", &rows))
            }
            Err(e) => {
                eprintln!("pkbench --mcu-elf: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn client_mode(args: &Args, client: Client) -> ExitCode {
    if let Some(level) = std::env::var("PKBENCH_LOG").ok().and_then(|l| l.parse().ok()) {
        static LOG: StderrLog = StderrLog;
        if log::set_logger(&LOG).is_ok() {
            log::set_max_level(level);
        }
    }
    let settings = Settings {
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        compression: args.compression,
        acks: args.acks,
        idempotence: args.idempotence,
        memory_bytes: args.memory_bytes,
    };
    let job = clients::Job {
        client,
        scenario: args.scenario,
        bootstrap: args.bootstrap.clone(),
        topic: args.topic.clone(),
        partitions: args.partitions,
        records: match args.scenario {
            Scenario::Throughput => args.records,
            Scenario::Latency => args.latency_records,
            Scenario::Sync => args.sync_records,
        },
        rate: args.rate,
        settings,
        workers: args.workers,
    };
    let mut report = clients::run(&job);
    report.vm_hwm = proc::proc_peak_rss(std::process::id()).unwrap_or(0);
    let line = serde_json::to_string(&report).expect("a report serializes");
    println!("{line}");
    ExitCode::SUCCESS
}

fn print_tables(runs: &[Run]) {
    println!("{}", report::tables(runs));
    println!("\n#### Targets\n");
    println!("{}", report::targets(runs));
}

fn parent(args: &Args) -> Result<bool, String> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let paths = Paths::discover(std::env::temp_dir().join(format!("pkbench-{stamp}")))?;
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| paths.root.join("target/bench").join(format!("results-{stamp}.jsonl")));
    if let Some(dir) = out_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut out = std::fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let plan = if args.full {
        settings::full_plan(&args.brokers, &args.scenarios)
    } else {
        settings::default_plan(&args.brokers, &args.scenarios)
    };
    if plan.iter().any(|c| c.broker == Broker::Mock) {
        paths.ensure_mock_cluster()?;
    }
    let runs_total: usize =
        plan.iter().map(|c| args.clients.iter().filter(|cl| cl.supports(&c.settings)).count()).sum::<usize>()
            * args.rounds as usize;
    eprintln!(
        "pkbench: {} cases, {} rounds, {runs_total} runs; results in {}",
        plan.len(),
        args.rounds,
        out_path.display()
    );
    let started = Instant::now();
    let mut runs = Vec::new();
    let mut n = 0;
    // Round-major: every case is measured once per round, so slow drift of the machine spreads
    // over all of them; within a case the client order rotates from round to round.
    for round in 0..args.rounds {
        for (ci, case) in plan.iter().enumerate() {
            let mut order: Vec<Client> =
                args.clients.iter().copied().filter(|c| c.supports(&case.settings)).collect();
            if !order.is_empty() {
                let k = (round as usize + ci) % order.len();
                order.rotate_left(k);
            }
            for client in order {
                n += 1;
                let run = one_run(args, &paths, *case, client, round, n);
                eprintln!(
                    "[{n}/{runs_total} {:>4.0}s] {} {} {} · {}: {}",
                    started.elapsed().as_secs_f64(),
                    case.broker.name(),
                    case.scenario.name(),
                    case.settings,
                    client.name(),
                    summary(&run)
                );
                let line = serde_json::to_string(&run).expect("a run serializes");
                let _ = writeln!(out, "{line}");
                runs.push(run);
            }
        }
    }
    // Tansu's logs, one per run: kept only if a run failed (or PKBENCH_KEEP_LOGS is set).
    if runs.iter().all(Run::ok) && std::env::var_os("PKBENCH_KEEP_LOGS").is_none() {
        let _ = std::fs::remove_dir_all(&paths.log_dir);
    } else {
        eprintln!("pkbench: broker logs in {}", paths.log_dir.display());
    }
    println!("{}", machine());
    print_tables(&runs);
    eprintln!(
        "pkbench: {} runs in {:.0}s; results in {}",
        runs.len(),
        started.elapsed().as_secs_f64(),
        out_path.display()
    );
    Ok(runs.iter().all(Run::ok))
}

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn summary(r: &Run) -> String {
    let mut s = format!(
        "{:.0} rec/s, CPU {:.2} s/M, RSS {:.1} MiB, load {:.1}",
        r.records_per_s(),
        r.cpu_per_million(),
        r.rss_mib(),
        r.load1
    );
    if let Some(p) = &r.child.latency {
        s +=
            &format!(", p50 {:.2} p99 {:.2} p99.9 {:.2} ms", p.p50_us / 1e3, p.p99_us / 1e3, p.p999_us / 1e3);
    }
    if let Some(p) = &r.problem {
        s += &format!(" — PROBLEM: {p}");
    }
    s
}

/// The machine, for the report.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cores} cores, {cpu}")
}

fn one_run(args: &Args, paths: &Paths, case: Case, client: Client, round: u32, n: usize) -> Run {
    let records = match case.scenario {
        Scenario::Throughput => args.records,
        Scenario::Latency => args.latency_records,
        Scenario::Sync => args.sync_records,
    };
    let mut run = Run {
        case,
        client,
        round,
        records,
        rate: args.rate,
        child: Default::default(),
        cpu_s: f64::NAN,
        max_rss: 0,
        wait4_max_rss: 0,
        wall_s: f64::NAN,
        broker_cpu_s: f64::NAN,
        broker_rss: 0,
        hwm: -1,
        load1: load_average(),
        problem: None,
    };
    let topic = format!("bench-{}-{n}", std::process::id());
    let broker = match Running::start(case.broker, paths, &topic, args.partitions) {
        Ok(b) => b,
        Err(e) => {
            run.problem = Some(format!("broker: {e}"));
            return run;
        }
    };
    let s = case.settings;
    let exe = std::env::current_exe().expect("own executable");
    let mut cmd = Command::new(exe);
    cmd.args(["--client", client.name(), "--scenario", case.scenario.name()])
        .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
        .args(["--partitions", &args.partitions.to_string()])
        .args(["--records", &args.records.to_string()])
        .args(["--latency-records", &args.latency_records.to_string()])
        .args(["--sync-records", &args.sync_records.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--workers", &args.workers.to_string()])
        .args(["--linger-ms", &s.linger_ms.to_string(), "--batch-size", &s.batch_size.to_string()])
        .args(["--compression", if s.compression == Codec::Lz4 { "lz4" } else { "none" }])
        .args(["--acks", s.acks.property(), "--idempotence", &s.idempotence.to_string()])
        .args(["--memory-bytes", &s.memory_bytes.to_string()]);
    let cpu0 = broker.cpu_s();
    let timeout = args.timeout.unwrap_or(60 + records / 10_000);
    let finished = proc::run_measured(cmd, Duration::from_secs(timeout));
    run.broker_cpu_s = broker.cpu_s() - cpu0;
    run.broker_rss = broker.peak_rss();
    match finished {
        Err(e) => run.problem = Some(format!("client: {e}")),
        Ok(f) => {
            run.cpu_s = f.usage.cpu_s();
            run.max_rss = f.usage.max_rss;
            run.wait4_max_rss = f.usage.max_rss;
            run.wall_s = f.wall.as_secs_f64();
            let line = f.stdout.lines().rev().find(|l| l.starts_with('{'));
            match line.map(serde_json::from_str::<workload::ChildReport>) {
                Some(Ok(report)) => {
                    if report.vm_hwm > 0 {
                        run.max_rss = report.vm_hwm;
                    }
                    run.child = report;
                }
                Some(Err(e)) => run.problem = Some(format!("client output: {e}")),
                None => {
                    run.problem = Some(format!(
                        "client printed no report (exit {:?}{})",
                        f.code,
                        if f.timed_out { ", timed out" } else { "" }
                    ))
                }
            }
        }
    }
    if run.problem.is_none() {
        run.hwm = broker::log_end(&broker.bootstrap, &topic).unwrap_or(-1);
        let c = &run.child;
        run.problem = if let Some(e) = &c.error {
            Some(if c.sent == 0 { e.clone() } else { format!("{} of {} failed: {e}", c.failed, c.sent) })
        } else if c.acked != c.sent {
            Some(format!("{} of {} acknowledged", c.acked, c.sent))
        } else if run.hwm != c.acked as i64 {
            Some(format!("high-water mark {} ≠ {} records acknowledged", run.hwm, c.acked))
        } else {
            None
        };
    }
    broker.stop();
    run
}
