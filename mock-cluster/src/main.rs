//! `mock-cluster`: librdkafka's mock Kafka cluster (the harness librdkafka tests itself with) as
//! a process that tests drive over stdin.
//!
//! ```text
//! mock-cluster --brokers N [--topic NAME:PARTITIONS:REPLICATION]...
//! ```
//!
//! Starts N brokers (ids 1..=N) on free loopback ports, creates the topics (the mock has no
//! CreateTopics API), prints one line `BOOTSTRAP host:port,host:port,...` on stdout, then reads
//! one command per line on stdin and answers each with one line, `OK` or `ERR message`:
//!
//! ```text
//! create TOPIC PARTITIONS REPLICATION      create a topic
//! leader TOPIC PARTITION BROKER_ID         move a partition's leader (-1: no leader)
//! follower TOPIC PARTITION BROKER_ID       set a partition's preferred follower
//! down BROKER_ID | up BROKER_ID            disconnect a broker and refuse connections / undo
//! rtt BROKER_ID MS                         add MS of round-trip time to a broker's responses
//! error API_KEY CODE [COUNT]               the next COUNT (default 1) requests of API_KEY, on
//!                                          any broker, fail with CODE
//! broker-error BROKER_ID API_KEY CODE [COUNT] [RTT_MS]
//!                                          same, on one broker only, answered after RTT_MS
//!                                          (default 0)
//! clear-errors API_KEY                     drop the errors still queued by `error`
//! coordinator TYPE KEY BROKER_ID           make BROKER_ID the coordinator of a transactional
//!                                          id (TYPE `transaction`) or group (TYPE `group`)
//! track                                    record every request from now on (forgetting
//!                                          those recorded so far)
//! requests API_KEY [BROKER_ID]             answers `OK N`: how many requests of API_KEY (on
//!                                          BROKER_ID only, if given) were recorded since `track`
//! ping                                     just OK (a round trip)
//! quit                                     exit (EOF on stdin too)
//! ```
//!
//! BROKER_ID -1 means every broker for `down`, `up` and `rtt`. CODE is a Kafka error code
//! (`6` NOT_LEADER_OR_FOLLOWER, ...) or librdkafka's name for it (`NOT_LEADER_FOR_PARTITION`,
//! with or without the `RD_KAFKA_RESP_ERR_` prefix); `-195` (`_TRANSPORT`) makes the broker
//! drop the connection instead of answering. API_KEY is the Kafka API key number (0 Produce,
//! 1 Fetch, 3 Metadata, 18 ApiVersions, 22 InitProducerId, ...).
//!
//! Nothing else is printed on stdout; diagnostics go to stderr.

// The binary talks to librdkafka's mock API through `rdkafka-sys`: `rdkafka::mocking::MockCluster`
// hides its raw cluster pointer, yet the per-broker error stack
// (`rd_kafka_mock_broker_push_request_error_rtts`) and arbitrary API keys and error codes are
// only reachable through the C functions. Every `unsafe` block is a plain FFI call on the
// cluster pointer, which stays valid until `Drop`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io::{self, BufRead, Write};
use std::os::raw::c_int;
use std::process::ExitCode;

use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka_sys as rdsys;
use rdkafka_sys::types::{RDKafkaRespErr, RDKafkaType};

const USAGE: &str = "usage: mock-cluster --brokers N [--topic NAME:PARTITIONS:REPLICATION]...";

/// A mock cluster and the librdkafka handle that owns its thread.
struct Mock {
    cluster: *mut rdsys::rd_kafka_mock_cluster_t,
    // Dropped after `cluster` is destroyed (see `Drop`).
    _client: Client<DefaultClientContext>,
}

/// A librdkafka error code as an `ERR` message.
fn err_text(code: RDKafkaRespErr) -> String {
    // SAFETY: rd_kafka_err2name/err2str return static strings for any code.
    let (name, text) = unsafe {
        (CStr::from_ptr(rdsys::rd_kafka_err2name(code)), CStr::from_ptr(rdsys::rd_kafka_err2str(code)))
    };
    format!("{} ({})", name.to_string_lossy(), text.to_string_lossy())
}

fn check(code: RDKafkaRespErr) -> Result<(), String> {
    if code == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(err_text(code))
    }
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

impl Mock {
    fn new(brokers: i32) -> Result<Self, String> {
        let config = ClientConfig::new();
        let native = config.create_native_config().map_err(|e| e.to_string())?;
        let client = Client::new(&config, native, RDKafkaType::RD_KAFKA_PRODUCER, DefaultClientContext)
            .map_err(|e| e.to_string())?;
        // SAFETY: the handle is valid; it outlives the cluster (see `Drop`).
        let cluster = unsafe { rdsys::rd_kafka_mock_cluster_new(client.native_ptr(), brokers) };
        if cluster.is_null() {
            return Err("rd_kafka_mock_cluster_new failed".into());
        }
        Ok(Self { cluster, _client: client })
    }

    fn bootstrap(&self) -> String {
        // SAFETY: returns a string owned by the cluster, copied at once.
        unsafe { CStr::from_ptr(rdsys::rd_kafka_mock_cluster_bootstraps(self.cluster)) }
            .to_string_lossy()
            .into_owned()
    }

    fn create_topic(&self, topic: &str, partitions: i32, replication: i32) -> Result<(), String> {
        let topic = cstring(topic)?;
        // SAFETY: FFI call with a valid cluster and NUL-terminated name (copied by librdkafka).
        check(unsafe {
            rdsys::rd_kafka_mock_topic_create(self.cluster, topic.as_ptr(), partitions, replication)
        })
    }

    fn leader(&self, topic: &str, partition: i32, broker: i32) -> Result<(), String> {
        let topic = cstring(topic)?;
        // SAFETY: as above.
        check(unsafe {
            rdsys::rd_kafka_mock_partition_set_leader(self.cluster, topic.as_ptr(), partition, broker)
        })
    }

    fn follower(&self, topic: &str, partition: i32, broker: i32) -> Result<(), String> {
        let topic = cstring(topic)?;
        // SAFETY: as above.
        check(unsafe {
            rdsys::rd_kafka_mock_partition_set_follower(self.cluster, topic.as_ptr(), partition, broker)
        })
    }

    fn down(&self, broker: i32) -> Result<(), String> {
        // SAFETY: FFI call with a valid cluster.
        check(unsafe { rdsys::rd_kafka_mock_broker_set_down(self.cluster, broker) })
    }

    fn up(&self, broker: i32) -> Result<(), String> {
        // SAFETY: FFI call with a valid cluster.
        check(unsafe { rdsys::rd_kafka_mock_broker_set_up(self.cluster, broker) })
    }

    fn rtt(&self, broker: i32, ms: i32) -> Result<(), String> {
        // SAFETY: FFI call with a valid cluster.
        check(unsafe { rdsys::rd_kafka_mock_broker_set_rtt(self.cluster, broker, ms) })
    }

    fn push_errors(&self, api_key: i16, code: c_int, count: usize) {
        for _ in 0..count {
            // SAFETY: the variadic part is `cnt` (= 1) values of rd_kafka_resp_err_t, a C enum
            // passed as int.
            unsafe { rdsys::rd_kafka_mock_push_request_errors(self.cluster, api_key, 1, code) };
        }
    }

    fn push_broker_errors(
        &self,
        broker: i32,
        api_key: i16,
        code: c_int,
        count: usize,
        rtt_ms: c_int,
    ) -> Result<(), String> {
        for _ in 0..count {
            // SAFETY: the variadic part is `cnt` (= 1) pairs of (rd_kafka_resp_err_t, int rtt).
            check(unsafe {
                rdsys::rd_kafka_mock_broker_push_request_error_rtts(
                    self.cluster,
                    broker,
                    api_key,
                    1,
                    code,
                    rtt_ms,
                )
            })?;
        }
        Ok(())
    }

    fn clear_errors(&self, api_key: i16) {
        // SAFETY: FFI call with a valid cluster.
        unsafe { rdsys::rd_kafka_mock_clear_request_errors(self.cluster, api_key) }
    }

    fn coordinator(&self, key_type: &str, key: &str, broker: i32) -> Result<(), String> {
        let (key_type, key) = (cstring(key_type)?, cstring(key)?);
        // SAFETY: FFI call with a valid cluster and NUL-terminated strings (copied by librdkafka).
        check(unsafe {
            rdsys::rd_kafka_mock_coordinator_set(self.cluster, key_type.as_ptr(), key.as_ptr(), broker)
        })
    }

    fn track(&self) {
        // SAFETY: FFI calls with a valid cluster.
        unsafe {
            rdsys::rd_kafka_mock_clear_requests(self.cluster);
            rdsys::rd_kafka_mock_start_request_tracking(self.cluster);
        }
    }

    /// Requests of `api_key` recorded since `track`, on `broker` only if given.
    fn requests(&self, api_key: i16, broker: Option<i32>) -> usize {
        let mut n = 0;
        // SAFETY: librdkafka returns a copy of its list (`n` elements, or NULL when empty) that
        // we own; each element is read once, then the copy is freed with its elements.
        unsafe {
            let list = rdsys::rd_kafka_mock_get_requests(self.cluster, &mut n);
            if list.is_null() {
                return 0;
            }
            let count = (0..n)
                .map(|i| *list.add(i))
                .filter(|&r| {
                    rdsys::rd_kafka_mock_request_api_key(r) == api_key
                        && broker.is_none_or(|b| rdsys::rd_kafka_mock_request_id(r) == b)
                })
                .count();
            rdsys::rd_kafka_mock_request_destroy_array(list, n);
            count
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        // SAFETY: the cluster was created by us, is destroyed once, before its handle.
        unsafe { rdsys::rd_kafka_mock_cluster_destroy(self.cluster) }
    }
}

/// An error code: a number, or librdkafka's name (with or without `RD_KAFKA_RESP_ERR_`).
fn parse_code(s: &str) -> Result<c_int, String> {
    if let Ok(n) = s.parse::<c_int>() {
        return Ok(n);
    }
    let want = s.strip_prefix("RD_KAFKA_RESP_ERR_").unwrap_or(s);
    (-200..1000)
        .filter_map(|n| RDKafkaRespErr::try_from(n).ok())
        .find(|e| format!("{e:?}").strip_prefix("RD_KAFKA_RESP_ERR_") == Some(want))
        .map(|e| e as c_int)
        .ok_or_else(|| format!("unknown error code {s:?}"))
}

fn parse<T: std::str::FromStr>(what: &str, s: Option<&str>) -> Result<T, String> {
    let s = s.ok_or_else(|| format!("missing {what}"))?;
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}

fn parse_opt<T: std::str::FromStr>(what: &str, s: Option<&str>, default: T) -> Result<T, String> {
    s.map_or(Ok(default), |s| parse(what, Some(s)))
}

enum Reply {
    Ok,
    /// `OK` and a value.
    Value(usize),
    Quit,
}

fn execute(mock: &Mock, line: &str) -> Result<Reply, String> {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Err("empty command".into());
    };
    let mut next = || words.next();
    match cmd {
        "create" => {
            let topic: String = parse("topic", next())?;
            let partitions = parse("partition count", next())?;
            let replication = parse("replication factor", next())?;
            mock.create_topic(&topic, partitions, replication)?;
        }
        "leader" | "follower" => {
            let topic: String = parse("topic", next())?;
            let partition = parse("partition", next())?;
            let broker = parse("broker id", next())?;
            if cmd == "leader" {
                mock.leader(&topic, partition, broker)?;
            } else {
                mock.follower(&topic, partition, broker)?;
            }
        }
        "down" => mock.down(parse("broker id", next())?)?,
        "up" => mock.up(parse("broker id", next())?)?,
        "rtt" => {
            let broker = parse("broker id", next())?;
            mock.rtt(broker, parse("milliseconds", next())?)?;
        }
        "error" => {
            let api_key = parse("api key", next())?;
            let code = parse_code(next().ok_or("missing error code")?)?;
            let count = parse_opt("count", next(), 1)?;
            mock.push_errors(api_key, code, count);
        }
        "broker-error" => {
            let broker = parse("broker id", next())?;
            let api_key = parse("api key", next())?;
            let code = parse_code(next().ok_or("missing error code")?)?;
            let count = parse_opt("count", next(), 1)?;
            let rtt = parse_opt("rtt", next(), 0)?;
            mock.push_broker_errors(broker, api_key, code, count, rtt)?;
        }
        "clear-errors" => mock.clear_errors(parse("api key", next())?),
        "coordinator" => {
            let key_type: String = parse("coordinator type", next())?;
            let key: String = parse("key", next())?;
            mock.coordinator(&key_type, &key, parse("broker id", next())?)?;
        }
        "track" => mock.track(),
        "requests" => {
            let api_key = parse("api key", next())?;
            let broker = next().map(|b| parse("broker id", Some(b))).transpose()?;
            if let Some(extra) = next() {
                return Err(format!("unexpected argument {extra:?}"));
            }
            return Ok(Reply::Value(mock.requests(api_key, broker)));
        }
        "ping" => {}
        "quit" => return Ok(Reply::Quit),
        _ => return Err(format!("unknown command {cmd:?}")),
    }
    match next() {
        Some(extra) => Err(format!("unexpected argument {extra:?} (the command was run)")),
        None => Ok(Reply::Ok),
    }
}

struct Args {
    brokers: i32,
    topics: Vec<(String, i32, i32)>,
}

fn parse_args() -> Result<Args, String> {
    let mut brokers = None;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                let n: i32 = parse("--brokers", args.next().as_deref())?;
                if n < 1 {
                    return Err(format!("--brokers must be at least 1, not {n}"));
                }
                brokers = Some(n);
            }
            "--topic" => {
                let spec = args.next().ok_or("missing --topic value")?;
                let mut parts = spec.rsplitn(3, ':');
                let (Some(r), Some(p), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(format!("--topic {spec:?}: want NAME:PARTITIONS:REPLICATION"));
                };
                let p = parse(&format!("partition count in --topic {spec:?}"), Some(p))?;
                let r = parse(&format!("replication factor in --topic {spec:?}"), Some(r))?;
                topics.push((name.to_string(), p, r));
            }
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let brokers = brokers.ok_or("missing --brokers N")?;
    Ok(Args { brokers, topics })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("mock-cluster: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match Mock::new(args.brokers) {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("mock-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, partitions, replication) in &args.topics {
        if let Err(e) = mock.create_topic(name, *partitions, *replication) {
            eprintln!("mock-cluster: creating topic {name:?}: {e}");
            return ExitCode::FAILURE;
        }
    }

    let mut out = io::stdout().lock();
    if writeln!(out, "BOOTSTRAP {}", mock.bootstrap()).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = execute(&mock, &line);
        let written = match &reply {
            Ok(Reply::Ok) => writeln!(out, "OK"),
            Ok(Reply::Value(v)) => writeln!(out, "OK {v}"),
            Ok(Reply::Quit) => writeln!(out, "OK"),
            // One line, whatever the message holds.
            Err(e) => writeln!(out, "ERR {}", e.replace('\n', " ")),
        };
        if written.and_then(|()| out.flush()).is_err() || matches!(reply, Ok(Reply::Quit)) {
            break;
        }
    }
    ExitCode::SUCCESS
}
