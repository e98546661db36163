//! Results: one JSON line per run, and the Markdown tables made from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::settings::{Case, Client, Scenario};
use crate::workload::{ChildReport, VALUE_LEN};

/// One client's run on one case, as measured by the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub case: Case,
    pub client: Client,
    pub round: u32,
    /// Records in the measured phase (the warm-up records are not counted here).
    pub records: u64,
    pub rate: u64,
    pub child: ChildReport,
    /// CPU (user + sys) of the client process over its whole life, from wait4.
    pub cpu_s: f64,
    /// Peak RSS of the client process, bytes: its own VmHWM at exit.
    pub max_rss: u64,
    /// wait4's ru_maxrss, bytes: includes the parent's RSS at spawn (Linux keeps the larger).
    #[serde(default)]
    pub wait4_max_rss: u64,
    pub wall_s: f64,
    /// CPU the broker used while the client ran.
    pub broker_cpu_s: f64,
    /// The broker's peak RSS at the end of the run, bytes.
    pub broker_rss: u64,
    /// Sum of the partitions' high-water marks after the run.
    pub hwm: i64,
    /// The machine's 1-minute load average when the run started (others' work shows here).
    #[serde(default)]
    pub load1: f64,
    /// Why the run does not count, if it does not.
    pub problem: Option<String>,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.child.elapsed_s
    }
    pub fn mb_per_s(&self) -> f64 {
        self.records_per_s() * VALUE_LEN as f64 / 1e6
    }
    pub fn cpu_per_million(&self) -> f64 {
        self.cpu_s / self.records as f64 * 1e6
    }
    pub fn broker_cpu_per_million(&self) -> f64 {
        self.broker_cpu_s / self.records as f64 * 1e6
    }
    /// The broker's CPU use during the run, in % of one core (100 % = one core busy).
    pub fn broker_busy_pct(&self) -> f64 {
        self.broker_cpu_s / self.child.elapsed_s * 100.0
    }
    pub fn rss_mib(&self) -> f64 {
        self.max_rss as f64 / (1 << 20) as f64
    }
    fn latency(&self, pick: fn(&crate::workload::Percentiles) -> f64) -> f64 {
        self.child.latency.as_ref().map_or(f64::NAN, |p| pick(p) / 1000.0)
    }
    pub fn p50_ms(&self) -> f64 {
        self.latency(|p| p.p50_us)
    }
    pub fn p99_ms(&self) -> f64 {
        self.latency(|p| p.p99_us)
    }
    pub fn p999_ms(&self) -> f64 {
        self.latency(|p| p.p999_us)
    }
}

/// A metric of a run, with how it is printed and which way is better.
#[derive(Clone, Copy)]
struct Metric {
    title: &'static str,
    get: fn(&Run) -> f64,
    digits: usize,
}

const RATE: Metric = Metric { title: "records/s", get: Run::records_per_s, digits: 0 };
const MBS: Metric = Metric { title: "MB/s", get: Run::mb_per_s, digits: 1 };
const CPU: Metric = Metric { title: "CPU s / M records", get: Run::cpu_per_million, digits: 2 };
const RSS: Metric = Metric { title: "peak RSS MiB", get: Run::rss_mib, digits: 1 };
const P50: Metric = Metric { title: "p50 ms", get: Run::p50_ms, digits: 2 };
const P99: Metric = Metric { title: "p99 ms", get: Run::p99_ms, digits: 2 };
const P999: Metric = Metric { title: "p99.9 ms", get: Run::p999_ms, digits: 2 };
const BROKER: Metric = Metric { title: "broker CPU s / M", get: Run::broker_cpu_per_million, digits: 2 };
const BUSY: Metric = Metric { title: "broker CPU %", get: Run::broker_busy_pct, digits: 0 };

fn metrics(s: Scenario) -> &'static [Metric] {
    match s {
        Scenario::Throughput => &[RATE, MBS, CPU, RSS, BROKER, BUSY],
        Scenario::Latency | Scenario::Sync => &[RATE, P50, P99, P999, CPU, RSS],
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median (min–max) of `values`.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let n = v.len();
        Self { median: median(&mut v), min, max, n }
    }
}

fn num(x: f64, digits: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if digits == 0 {
        let n = x.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else {
        format!("{x:.digits$}")
    }
}

fn spread_cell(s: Spread, digits: usize, ratio: bool) -> String {
    if s.n == 0 {
        return "–".into();
    }
    let x = if ratio { "×" } else { "" };
    if s.n == 1 {
        return format!("{}{x}", num(s.median, digits));
    }
    format!("{}{x} ({}–{})", num(s.median, digits), num(s.min, digits), num(s.max, digits))
}

/// Runs grouped by case, clients in a fixed order.
pub type Grouped<'a> = BTreeMap<Case, BTreeMap<Client, Vec<&'a Run>>>;

pub fn group(runs: &[Run]) -> Grouped<'_> {
    let mut g: Grouped<'_> = BTreeMap::new();
    for r in runs {
        g.entry(r.case).or_default().entry(r.client).or_default().push(r);
    }
    g
}

/// Ratios ours ÷ theirs of `m`, paired by round.
fn paired(ours: &[&Run], theirs: &[&Run], m: Metric) -> Vec<f64> {
    let mut out = Vec::new();
    for o in ours.iter().filter(|r| r.ok()) {
        if let Some(t) = theirs.iter().find(|t| t.round == o.round && t.ok()) {
            out.push((m.get)(o) / (m.get)(t));
        }
    }
    out
}

/// The Markdown tables of every case.
pub fn tables(runs: &[Run]) -> String {
    let mut out = String::new();
    for (case, by_client) in group(runs) {
        let any = by_client.values().flatten().next().expect("a group has runs");
        let rounds = by_client.values().map(Vec::len).max().unwrap_or(0);
        let extra = match case.scenario {
            Scenario::Latency => format!(" at {} records/s", num(any.rate as f64, 0)),
            _ => String::new(),
        };
        let loads: Vec<f64> = by_client.values().flatten().map(|r| r.load1).collect();
        let _ = writeln!(
            out,
            "\n#### {} · {} · {} — {} records{extra}, {rounds} round(s), load average {}\n",
            case.broker.name(),
            case.scenario.name(),
            case.settings,
            num(any.records as f64, 0),
            spread_cell(Spread::of(&loads), 1, false),
        );
        let ms = metrics(case.scenario);
        let _ = write!(out, "| client |");
        for m in ms {
            let _ = write!(out, " {} |", m.title);
        }
        let _ = writeln!(out, " verified |");
        let _ = writeln!(out, "|---|{}---|", "---|".repeat(ms.len()));
        for (client, rs) in &by_client {
            let good: Vec<&Run> = rs.iter().copied().filter(|r| r.ok()).collect();
            let _ = write!(out, "| {} |", client.name());
            for m in ms {
                let vals: Vec<f64> = good.iter().map(|r| (m.get)(r)).collect();
                let _ = write!(out, " {} |", spread_cell(Spread::of(&vals), m.digits, false));
            }
            let bad: Vec<String> = rs.iter().filter_map(|r| r.problem.clone()).collect();
            if bad.is_empty() {
                let _ = writeln!(out, " {}/{} |", good.len(), rs.len());
            } else {
                let _ = writeln!(out, " {}/{}: {} |", good.len(), rs.len(), bad.join("; ").replace('|', "/"));
            }
        }
        if let Some(ours) = by_client.get(&Client::Picokafka) {
            for (client, theirs) in &by_client {
                if *client == Client::Picokafka {
                    continue;
                }
                let _ = write!(out, "| picokafka ÷ {} |", client.name());
                for m in ms {
                    let r = paired(ours, theirs, *m);
                    let _ = write!(out, " {} |", spread_cell(Spread::of(&r), 2, true));
                }
                let _ = writeln!(out, " |");
            }
        }
    }
    out
}

/// The targets, checked against every case they apply to.
pub fn targets(runs: &[Run]) -> String {
    struct Target {
        what: &'static str,
        scenario: Scenario,
        peer: Client,
        metric: Metric,
        /// The ratio must be at most (true) or at least (false) this.
        at_most: bool,
        bound: f64,
    }
    let targets = [
        Target {
            what: "CPU s per M records ≤ 0.25× librdkafka",
            scenario: Scenario::Throughput,
            peer: Client::Rdkafka,
            metric: CPU,
            at_most: true,
            bound: 0.25,
        },
        Target {
            what: "CPU s per M records ≤ 0.25× librdkafka (open loop)",
            scenario: Scenario::Latency,
            peer: Client::Rdkafka,
            metric: CPU,
            at_most: true,
            bound: 0.25,
        },
        Target {
            what: "throughput ≥ 1.0× librdkafka",
            scenario: Scenario::Throughput,
            peer: Client::Rdkafka,
            metric: RATE,
            at_most: false,
            bound: 1.0,
        },
        Target {
            what: "p99 latency ≤ 1.0× librdkafka",
            scenario: Scenario::Latency,
            peer: Client::Rdkafka,
            metric: P99,
            at_most: true,
            bound: 1.0,
        },
        Target {
            what: "p99 latency ≤ 1.0× librdkafka (one at a time)",
            scenario: Scenario::Sync,
            peer: Client::Rdkafka,
            metric: P99,
            at_most: true,
            bound: 1.0,
        },
        Target {
            what: "peak RSS ≤ 0.5× librdkafka",
            scenario: Scenario::Throughput,
            peer: Client::Rdkafka,
            metric: RSS,
            at_most: true,
            bound: 0.5,
        },
        Target {
            what: "throughput ≥ 2× rskafka",
            scenario: Scenario::Throughput,
            peer: Client::Rskafka,
            metric: RATE,
            at_most: false,
            bound: 2.0,
        },
    ];
    let mut out = String::new();
    let _ = writeln!(out, "| target | broker · settings | picokafka ÷ peer, median (min–max) | met |");
    let _ = writeln!(out, "|---|---|---|---|");
    let g = group(runs);
    for t in &targets {
        for (case, by_client) in &g {
            if case.scenario != t.scenario {
                continue;
            }
            let (Some(ours), Some(theirs)) = (by_client.get(&Client::Picokafka), by_client.get(&t.peer))
            else {
                continue;
            };
            let s = Spread::of(&paired(ours, theirs, t.metric));
            if s.n == 0 {
                continue;
            }
            let met = if t.at_most { s.median <= t.bound } else { s.median >= t.bound };
            let _ = writeln!(
                out,
                "| {} | {} · {} | {} | {} |",
                t.what,
                case.broker.name(),
                case.settings,
                spread_cell(s, 2, true),
                if met { "yes" } else { "**no**" }
            );
        }
    }
    out
}

/// Reads runs from JSON lines.
pub fn read(text: &str) -> Result<Vec<Run>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
        .collect()
}
