//! The embassy transport on a host: embassy-net's TCP/IP stack over a TAP device, producing to a
//! broker on the other side of the TAP. The same code path as the firmware, minus the hardware:
//! fast to iterate on, and run by the tests inside a network namespace (`scripts/embassy-tap`).
//!
//! `embassy_tap TAP BROKER:PORT TOPIC COUNT [DNS_SERVER [TRANSACTIONAL_ID]]` — the stack takes
//! 192.168.69.2/24; the TAP's host side is expected at 192.168.69.1. `BROKER` is an IPv4 address,
//! or a name resolved through embassy-net's DNS client at `DNS_SERVER` (as are the names the
//! broker advertises).
//!
//! With `TRANSACTIONAL_ID` the COUNT records go in four transactions instead (the handle's
//! transactional calls, as firmware would make them): committed, aborted once written,
//! committed, and committed with consumer offsets sent to it; the lines `txn committed: ..` and
//! `txn aborted: ..` name each one's records for the script to check with `read_committed`.

use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Instant, Timer};
use picokafka::{Config, GroupMetadata, Header, Record, Resources, SendError, TopicPartitionOffset};
use picokafka_embassy::{Handle, Report, Runner, Settings, SocketBuffers, State, TlsBuffers, RECORD_MAX};
use static_cell::StaticCell;

type Kafka = Runner<'static, NoopRawMutex, 2, 16>;
type KafkaHandle = Handle<'static, NoopRawMutex, 16>;

/// Records sent one at a time with `send_and_wait` after the main run.
const SYNC: u32 = 20;
/// Records sent at once after those: more than the batch buffers (8 × 4 KiB) hold.
const BURST: u32 = 2000;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn kafka_task(mut runner: Kafka) -> ! {
    runner.run().await
}

static NET: StaticCell<StackResources<4>> = StaticCell::new();
static RESOURCES: StaticCell<Resources<8, 4096, 4600, 2, 4096, 1, 8>> = StaticCell::new();
static STATE: StaticCell<State<'static, NoopRawMutex, 16>> = StaticCell::new();
static SOCKETS: StaticCell<SocketBuffers<2, 4096, 4096>> = StaticCell::new();
static RNG: StaticCell<rand_core::OsRng> = StaticCell::new();
static TLS_RNG: StaticCell<rand_core::OsRng> = StaticCell::new();
static TLS_BUFFERS: StaticCell<TlsBuffers<2, RECORD_MAX, 4096>> = StaticCell::new();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // `KEY=VALUE` arguments are producer properties (security.protocol, sasl.*); the rest are
    // positional.
    let (props, args): (Vec<String>, Vec<String>) = std::env::args().partition(|a| a.contains('='));
    let (tap, broker, topic, count, dns, txn_id) = match &args[..] {
        [_, tap, broker, topic, count] => (tap, broker, topic, count, None, None),
        [_, tap, broker, topic, count, dns] => (tap, broker, topic, count, Some(dns), None),
        [_, tap, broker, topic, count, dns, id] => (tap, broker, topic, count, Some(dns), Some(id)),
        _ => {
            eprintln!("usage: embassy_tap TAP BROKER:PORT TOPIC COUNT [DNS_SERVER [TRANSACTIONAL_ID]] [KEY=VALUE..]");
            std::process::exit(2);
        }
    };
    let count: u32 = count.parse().expect("COUNT is a number");
    let topic: &'static str = Box::leak(topic.clone().into_boxed_str());

    let device = TunTapDevice::new(tap).expect("open the TAP device (run as root, in the namespace)");
    let net = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(192, 168, 69, 2), 24),
        gateway: Some(Ipv4Address::new(192, 168, 69, 1)),
        dns_servers: dns
            .map(|d| d.parse::<Ipv4Address>().expect("DNS_SERVER is an IPv4 address"))
            .into_iter()
            .collect(),
    });
    let (stack, net_runner) = embassy_net::new(device, net, NET.init(StackResources::new()), 0x5eed);
    spawner.spawn(net_task(net_runner).expect("net task"));
    stack.wait_config_up().await;

    let mut config = Config::new(broker).expect("bootstrap address");
    for (k, v) in
        [("compression.type", "lz4"), ("linger.ms", "10"), ("acks", "all"), ("enable.idempotence", "true")]
    {
        config.set(k, v).expect("valid property");
    }
    if let Some(id) = txn_id {
        config.set("transactional.id", id).expect("valid transactional.id");
    }
    let props: &'static [String] = props.leak();
    // `ssl.ca.location` is the transport's (the CA the broker's chain must end in), not the core's.
    let mut ca = None;
    for (k, v) in props.iter().filter_map(|p| p.split_once('=')) {
        if k == "ssl.ca.location" {
            ca = Some(read_ca(v));
            continue;
        }
        if let Err(e) = config.set(k, v) {
            eprintln!("embassy_tap: {k}: {e}");
            std::process::exit(2);
        }
    }
    let now = picokafka::Instant::from_millis(Instant::now().as_millis());
    let mut producer = picokafka::Producer::new(config, RESOURCES.init(Resources::new()).storage(), now)
        .expect("producer fits its resources");
    // SCRAM's nonces: the host's CSPRNG (getrandom) here; firmware gives its board's TRNG.
    producer.set_crypto_rng(RNG.init(rand_core::OsRng));
    let settings = Settings { reports: false, ..Settings::default() };
    let (state, sockets) = (STATE.init(State::new()), SOCKETS.init(SocketBuffers::new()));
    let made = if producer.config().security_protocol.uses_tls() {
        let Some(ca) = ca else {
            eprintln!(
                "embassy_tap: TLS needs ssl.ca.location=CA.pem (the CA the broker's chain must end in)"
            );
            std::process::exit(2);
        };
        // The handshake's randomness: the host's CSPRNG (getrandom) here; firmware gives its
        // board's TRNG.
        let tls = picokafka_embassy::Tls { ca: ca.leak(), rng: TLS_RNG.init(rand_core::OsRng) };
        picokafka_embassy::new_tls(
            stack,
            producer,
            state,
            sockets,
            TLS_BUFFERS.init(TlsBuffers::new()),
            tls,
            settings,
        )
    } else {
        picokafka_embassy::new(stack, producer, state, sockets, settings)
    };
    let (kafka, runner) = made.unwrap_or_else(|e| {
        eprintln!("embassy_tap: {e}");
        std::process::exit(2);
    });
    spawner.spawn(kafka_task(runner).expect("kafka task"));
    if txn_id.is_some() {
        std::process::exit(if transactions(kafka, topic, count).await { 0 } else { 1 });
    }

    let started = Instant::now();
    let mut refused = 0u32;
    for i in 0..count {
        let key = format!("device-{}", i % 8);
        let value = format!("{{\"seq\":{i},\"reading\":{}}}", i % 100);
        let seq = i.to_string();
        let headers = [Header { key: "seq", value: Some(seq.as_bytes()) }];
        let record = Record::new(topic).key(key.as_bytes()).value(value.as_bytes()).headers(&headers);
        if let Err(e) = kafka.send(record).await {
            eprintln!("record {i} refused: {e}");
            give_up_if_fatal(kafka);
            refused += 1;
        }
    }

    // Synchronous sends: each waits for its own delivery report; the script checks that a
    // consumer finds every one at the partition and offset its report named.
    let mut synced = Vec::new();
    for i in count..count + SYNC {
        let key = format!("device-{}", i % 8);
        let value = format!("{{\"seq\":{i},\"sync\":true}}");
        let seq = i.to_string();
        let headers = [Header { key: "seq", value: Some(seq.as_bytes()) }];
        let record = Record::new(topic).key(key.as_bytes()).value(value.as_bytes()).headers(&headers);
        match kafka.send_and_wait(record).await {
            Ok(Report { partition, outcome: Ok(d), .. }) => {
                synced.push(format!("{i}@{partition}:{}", d.offset))
            }
            Ok(Report { outcome: Err(e), .. }) => {
                eprintln!("sync record {i} failed: {e}");
                refused += 1;
            }
            Err(e) => {
                eprintln!("sync record {i} refused: {e}");
                refused += 1;
            }
        }
    }
    println!("sync delivered: {}", synced.join(","));

    // Bounded memory: a burst handed over without yielding to the runner (which would send)
    // fills the batch buffers, and each record that does not fit is refused with `QueueFull`,
    // never dropped in silence. Every accepted one must arrive; the script checks which.
    let mut accepted = Vec::new();
    let mut queue_full = 0u32;
    for i in count + SYNC..count + SYNC + BURST {
        let key = format!("device-{}", i % 8);
        let value = format!("{{\"seq\":{i},\"burst\":true}}");
        let seq = i.to_string();
        let headers = [Header { key: "seq", value: Some(seq.as_bytes()) }];
        let record = Record::new(topic).key(key.as_bytes()).value(value.as_bytes()).headers(&headers);
        match kafka.try_send(record) {
            Ok(_) => accepted.push(i.to_string()),
            Err(SendError::QueueFull(_)) => queue_full += 1,
            Err(e) => {
                eprintln!("burst record {i} refused: {e}");
                refused += 1;
            }
        }
    }
    println!("burst of {BURST}: {} accepted, {queue_full} refused with QueueFull", accepted.len());
    println!("burst accepted: {}", accepted.join(","));

    // Reports are only counted here: the core's metrics say what became of every record.
    kafka.close(Duration::from_secs(30));
    while !kafka.is_closed() {
        Timer::after(Duration::from_millis(10)).await;
    }
    let m = kafka.metrics();
    let (delivered, failed) = (m.records_delivered as u32, m.records_failed as u32 + refused);
    let expected = count + synced.len() as u32 + accepted.len() as u32;
    let secs = started.elapsed().as_millis() as f64 / 1000.0;
    println!("embassy-net over TAP: {delivered} delivered, {failed} failed of {expected} in {secs:.2} s");
    if kafka.tls_handshake_ms() > 0 {
        println!("TLS 1.3 handshake (the last one): {} ms", kafka.tls_handshake_ms());
    }
    std::process::exit(if delivered == expected && failed == 0 && queue_full > 0 { 0 } else { 1 });
}

/// Ends the run with the reason, once the producer has failed for good (a refused login): the
/// records it still holds can never be delivered.
fn give_up_if_fatal(kafka: KafkaHandle) {
    if let Some(why) = kafka.auth_error(|e| e.to_string()) {
        eprintln!("embassy_tap: {why}");
        std::process::exit(1);
    }
    if let Some(why) = kafka.tls_error() {
        eprintln!("embassy_tap: {why}");
        std::process::exit(1);
    }
}

/// The CA certificate at `path`, PEM or DER, as DER.
fn read_ca(path: &str) -> Vec<u8> {
    use base64::Engine as _;
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("embassy_tap: ssl.ca.location {path}: {e}");
        std::process::exit(2);
    });
    let Ok(text) = std::str::from_utf8(&bytes) else { return bytes };
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_else(|e| {
        eprintln!("embassy_tap: ssl.ca.location {path}: not a PEM certificate: {e}");
        std::process::exit(2);
    })
}

/// Sends record `i` (keyed, its number in a `seq` header) with `send(..).await`.
async fn send_numbered(kafka: KafkaHandle, topic: &str, i: u32) -> bool {
    let key = format!("device-{}", i % 8);
    let value = format!("{{\"seq\":{i},\"txn\":true}}");
    let seq = i.to_string();
    let headers = [Header { key: "seq", value: Some(seq.as_bytes()) }];
    let record = Record::new(topic).key(key.as_bytes()).value(value.as_bytes()).headers(&headers);
    match kafka.send(record).await {
        Ok(_) => true,
        Err(e) => {
            eprintln!("record {i} refused: {e}");
            false
        }
    }
}

/// `count` records in four transactions: committed, aborted (once written, so that the abort
/// has something to hide), committed, committed with offsets of a made-up input topic. Whether
/// every call did what it should.
async fn transactions(kafka: KafkaHandle, topic: &'static str, count: u32) -> bool {
    let t = Duration::from_secs(30);
    let started = Instant::now();
    if let Err(e) = kafka.init_transactions(t).await {
        eprintln!("init_transactions: {e}");
        return false;
    }
    let quarter = count / 4;
    let mut ok = true;
    for n in 0..4u32 {
        let (first, last) = (n * quarter, if n == 3 { count } else { (n + 1) * quarter });
        if let Err(e) = kafka.begin_transaction() {
            eprintln!("begin_transaction: {e}");
            return false;
        }
        for i in first..last {
            ok &= send_numbered(kafka, topic, i).await;
        }
        let result = match n {
            1 => {
                // Written first: every record so far answered (or the wait given up).
                kafka.flush();
                let deadline = Instant::now() + t;
                while Instant::now() < deadline && {
                    let m = kafka.metrics();
                    m.records_delivered + m.records_failed < u64::from(last)
                } {
                    Timer::after(Duration::from_millis(5)).await;
                }
                kafka.abort_transaction(t).await
            }
            3 => {
                let group = GroupMetadata::new("embassy-tap-group");
                let offsets = [TopicPartitionOffset { topic: "embassy-tap-input", partition: 0, offset: 42 }];
                match kafka.send_offsets_to_transaction(&group, &offsets, t).await {
                    Ok(()) => kafka.commit_transaction(t).await,
                    Err(e) => Err(e),
                }
            }
            _ => kafka.commit_transaction(t).await,
        };
        let what = if n == 1 { "aborted" } else { "committed" };
        match result {
            Ok(()) => println!("txn {what}: {first}..{last}"),
            Err(e) => {
                eprintln!("transaction {n} ({what}): {e}");
                ok = false;
            }
        }
    }
    kafka.close(Duration::from_secs(30));
    while !kafka.is_closed() {
        Timer::after(Duration::from_millis(10)).await;
    }
    let m = kafka.metrics();
    let secs = started.elapsed().as_millis() as f64 / 1000.0;
    println!(
        "embassy-net over TAP, transactional: {} committed, {} aborted, {} records delivered in {secs:.2} s",
        m.transactions_committed, m.transactions_aborted, m.records_delivered
    );
    ok && (m.transactions_committed, m.transactions_aborted) == (3, 1)
}
