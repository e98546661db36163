//! picokafka producer firmware for QEMU `mps2-an386` (Cortex-M4, SMSC LAN9118): brings up
//! embassy-net (static 10.0.2.15/24 on QEMU's user network), then produces `RECORDS` keyed
//! records with headers to `TOPIC` on the broker at 10.0.2.100:PORT — LZ4, idempotent,
//! acks=all — waits until every one is acknowledged, prints the producer's counters and exits
//! with 0 via semihosting if all were delivered.
//!
//! Build-time settings: `FIRMWARE_PEER_PORT` (default 9092), `FIRMWARE_RECORDS` (default 10000),
//! `FIRMWARE_TOPIC` (default `firmware`).
//!
//! With feature `secure` it produces over SASL_SSL instead: TLS 1.3 to the broker known by
//! name (at a fixed address, or through DNS with feature `dns`), its chain verified against the
//! CA built in and its name checked, then SCRAM (src/secure.rs has the settings); it prints the
//! handshake's cost and stops at once, naming the cause, when TLS or SASL refuse it.
//!
//! Exit codes: 0 all delivered, 1 some failed, 2 timeout, 3 NIC init, 4 producer setup,
//! 5 TLS refused, 6 SASL refused, 101 panic/HardFault, 102 unexpected interrupt.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// This package (unlike the workspace, which denies `unsafe_code`) does MMIO and owns the
// vector table; every `unsafe` block carries a SAFETY note.

mod board;
mod console;
mod lan9118;
#[cfg(any(feature = "tls", feature = "sasl"))]
mod secure;
mod time_driver;

use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Instant, Timer};
use picokafka::storage::{BatchSlot, ConnSlot, PartitionSlot, TopicSlot};
use picokafka::{Config, Header, Record, Storage};
use picokafka_embassy::{Settings, SocketBuffers, State};
use static_cell::{ConstStaticCell, StaticCell};

use crate::console::{print, print_kv};
use crate::lan9118::{Lan9118, PacketBuffers};

const PEER_PORT: u16 = parse_u32(option_env!("FIRMWARE_PEER_PORT"), 9092) as u16;
const RECORDS: u32 = parse_u32(option_env!("FIRMWARE_RECORDS"), 10_000);
const TOPIC: &str = match option_env!("FIRMWARE_TOPIC") {
    Some(t) => t,
    None => "firmware",
};
/// Everything must be delivered within this.
const DEADLINE_SECS: u64 = 300;
/// Locally administered unicast MAC.
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x12, 0x34, 0x56];

/// The producer's memory: 4 batches of 2 KiB, LZ4 scratch, 1 broker connection with a 1 KiB
/// receive buffer, 1 topic, 4 partitions. Byte buffers are separate statics so that they stay
/// in `.bss` (zeroed at boot) instead of costing their size in flash as initialised data.
const BATCHES: usize = 4;
const BATCH_SIZE: usize = 2048;
const SCRATCH: usize = picokafka::Compression::Lz4.scratch_len(BATCH_SIZE);
const RX: usize = 1024;
type KafkaRunner = picokafka_embassy::Runner<'static, NoopRawMutex, 1, 1>;
#[cfg(any(feature = "tls", feature = "sasl"))]
type KafkaHandle = picokafka_embassy::Handle<'static, NoopRawMutex, 1>;

/// TLS record buffers (feature `tls`): a whole record of the largest size to decrypt into
/// (Kafka's JVM sends 16 KiB records and negotiates no smaller ones), and 1 KiB to encrypt
/// into: the transport encrypts at most 512 bytes per record, and the ClientHello fits.
#[cfg(feature = "tls")]
type TlsBuffers = picokafka_embassy::TlsBuffers<1, { picokafka_embassy::RECORD_MAX }, 1024>;

const fn parse_u32(s: Option<&str>, default: u32) -> u32 {
    let b = match s {
        Some(s) => s.as_bytes(),
        None => return default,
    };
    assert!(!b.is_empty() && b.len() <= 9, "not a number");
    let mut n: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "not a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = cortex_m::Peripherals::take().unwrap();
    time_driver::init(p.SYST);
    board::run_executor(|spawner| match main_task(spawner) {
        Ok(task) => spawner.spawn(task),
        Err(_) => console::exit(101),
    })
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lan9118<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn kafka_task(mut runner: KafkaRunner) -> ! {
    runner.run().await
}

/// Prints the longest computation without a break so far (see `board::LONGEST_POLL`): with
/// SASL, SCRAM's PBKDF2 (4096 HMAC rounds, one poll of the Kafka task). Under `-icount shift=0`
/// one microsecond is 1,000 instructions.
#[cfg(feature = "tls")]
fn longest_poll() {
    print_kv("longest poll us: ", board::longest_poll_cycles() / (board::SYSCLK_HZ / 1_000_000));
}

/// Waits for the first TLS handshake (feature `tls`) and prints its time and its busy time:
/// the time less the time asleep in WFI, from the producer's start (the name's lookup and the
/// TCP connect are in it: a few thousand instructions). Under `-icount shift=0` the busy time counts the
/// instructions the firmware executed (1 ns each), the network's and the broker's time left out.
/// Nothing else runs meanwhile: no record waits in `send`, so that the time measured is the
/// handshake's alone.
#[cfg(feature = "tls")]
async fn handshake(kafka: &KafkaHandle, since: (u64, u32)) -> Result<(), u32> {
    while kafka.tls_handshake_ms() == 0 {
        secure::refused(kafka)?;
        Timer::after(Duration::from_millis(1)).await;
    }
    let (t, idle) = (time_driver::cycles(), board::idle_cycles());
    let busy = (t - since.0).saturating_sub(u64::from(idle.wrapping_sub(since.1)));
    print_kv("tls handshake ms: ", kafka.tls_handshake_ms());
    print_kv("tls handshake busy us: ", (busy / u64::from(board::SYSCLK_HZ / 1_000_000)) as u32);
    Ok(())
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    let deadline = Duration::from_secs(DEADLINE_SECS);
    let code = match embassy_time::with_timeout(deadline, produce(spawner)).await {
        Ok(Ok(code)) => code,
        Ok(Err(code)) => code,
        Err(_) => {
            print("timeout\n");
            2
        }
    };
    print_kv("stack used: ", board::stack_used());
    print_kv("static ram: ", board::static_ram());
    console::exit(code)
}

/// Decimal digits of `n` into `buf`, returning them.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

async fn produce(spawner: Spawner) -> Result<u32, u32> {
    static BUFS: ConstStaticCell<PacketBuffers> = ConstStaticCell::new(PacketBuffers::new());
    static NET: StaticCell<StackResources<3>> = StaticCell::new();
    static BATCH_MEMORY: ConstStaticCell<[u8; BATCHES * BATCH_SIZE]> =
        ConstStaticCell::new([0; BATCHES * BATCH_SIZE]);
    static SCRATCH_MEMORY: ConstStaticCell<[u8; SCRATCH]> = ConstStaticCell::new([0; SCRATCH]);
    static RX_MEMORY: ConstStaticCell<[u8; RX]> = ConstStaticCell::new([0; RX]);
    // The slot tables are filled at run time: a const initialiser would put them in `.data`,
    // whose load image costs their size (1.4 KiB) in flash.
    // Connection and topic slots from `Default`, built by code: `EMPTY` is a flash image.
    static BATCH_SLOTS: StaticCell<[BatchSlot; BATCHES]> = StaticCell::new();
    static CONN_SLOTS: StaticCell<[ConnSlot; 1]> = StaticCell::new();
    static TOPIC_SLOTS: StaticCell<[TopicSlot; 1]> = StaticCell::new();
    static PARTITION_SLOTS: StaticCell<[PartitionSlot; 4]> = StaticCell::new();
    static STATE: StaticCell<State<'static, NoopRawMutex, 1>> = StaticCell::new();
    static SOCKETS: ConstStaticCell<SocketBuffers<1, 1024, 2048>> =
        ConstStaticCell::new(SocketBuffers::new());
    #[cfg(feature = "tls")]
    static TLS_BUFFERS: ConstStaticCell<TlsBuffers> = ConstStaticCell::new(TlsBuffers::new());

    let nic = Lan9118::new(MAC, BUFS.take()).map_err(|_| {
        print("lan9118 init failed\n");
        3u32
    })?;
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
        gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
        // QEMU's user network answers DNS at 10.0.2.3 (from the host's resolver).
        #[cfg(feature = "dns")]
        dns_servers: heapless::Vec::from_slice(&[Ipv4Address::new(10, 0, 2, 3)]).unwrap_or_default(),
        #[cfg(not(feature = "dns"))]
        dns_servers: heapless::Vec::new(),
    });
    let seed = u64::from(Lan9118::free_run()) << 32 | u64::from(cortex_m::peripheral::SYST::get_current());
    let (stack, runner) = embassy_net::new(nic, config, NET.init(StackResources::new()), seed);
    // (`.unwrap()` here would pull `SpawnError`'s Debug impl and core::fmt into flash.)
    spawner.spawn(net_task(runner).map_err(|_| 101u32)?);
    stack.wait_config_up().await;
    print("net up\n");

    // Fields set directly rather than through `Config::set`: its property parser is the
    // largest single function of the producer, and a firmware knows its settings at build time.
    let mut config = Config::default();
    let mut digits = [0u8; 10];
    let port = core::str::from_utf8(decimal(u32::from(PEER_PORT), &mut digits)).unwrap_or("9092");
    #[cfg(feature = "tls")]
    let _ = (config.bootstrap_servers.push_str(secure::BROKER), config.bootstrap_servers.push_str(":"));
    #[cfg(not(feature = "tls"))]
    let _ = config.bootstrap_servers.push_str("10.0.2.100:");
    let _ = config.bootstrap_servers.push_str(port);
    config.client_id.clear();
    let _ = config.client_id.push_str("mps2-an386");
    config.compression = picokafka::Compression::Lz4;
    config.acks = picokafka::Acks::All;
    config.enable_idempotence = true;
    config.linger_ms = 5;
    // A lost link is noticed in seconds, not the default 30.
    config.request_timeout_ms = 5_000;
    config.random_seed = 7;
    #[cfg(any(feature = "tls", feature = "sasl"))]
    secure::configure(&mut config)?;
    #[cfg(any(feature = "tls", feature = "sasl"))]
    let rngs = secure::rngs()?;
    let now = picokafka::Instant::from_millis(Instant::now().as_millis());
    let storage = Storage {
        batch_memory: BATCH_MEMORY.take(),
        batches: BATCH_SLOTS.init([BatchSlot::EMPTY; BATCHES]),
        scratch: SCRATCH_MEMORY.take(),
        rx_memory: RX_MEMORY.take(),
        conns: CONN_SLOTS.init(Default::default()),
        topics: TOPIC_SLOTS.init(Default::default()),
        partitions: PARTITION_SLOTS.init([PartitionSlot::EMPTY; 4]),
    };
    #[cfg_attr(not(feature = "sasl"), allow(unused_mut))]
    let mut producer = picokafka::Producer::new(config, storage, now).map_err(|_| {
        print("producer does not fit its resources\n");
        4u32
    })?;
    #[cfg(feature = "sasl")]
    producer.set_crypto_rng(rngs.sasl);
    let settings = Settings {
        reports: false,
        #[cfg(feature = "tls")]
        hosts: secure::HOSTS,
        ..Settings::default()
    };
    #[cfg(feature = "tls")]
    let made = picokafka_embassy::new_tls(
        stack,
        producer,
        STATE.init(State::new()),
        SOCKETS.take(),
        TLS_BUFFERS.take(),
        picokafka_embassy::Tls { ca: secure::CA, rng: rngs.tls },
        settings,
    );
    #[cfg(not(feature = "tls"))]
    let made = picokafka_embassy::new(stack, producer, STATE.init(State::new()), SOCKETS.take(), settings);
    let (kafka, runner) = made.map_err(|_| {
        print("configuration needs what this transport lacks (TLS)\n");
        4u32
    })?;
    #[cfg(feature = "tls")]
    let since = (time_driver::cycles(), board::idle_cycles());
    spawner.spawn(kafka_task(runner).map_err(|_| 101u32)?);

    // The secure firmware waits for its first handshake before it sends (see `handshake`):
    // record 0 is offered once, which sets off the metadata request, and is sent by the loop
    // below unless it was taken.
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut first = 0;
    #[cfg(feature = "tls")]
    {
        let headers =
            [Header { key: "seq", value: Some(b"0") }, Header { key: "board", value: Some(b"mps2-an386") }];
        let record = Record::new(TOPIC).key(b"device-0").value(b"{\"reading\":0}").headers(&headers);
        if kafka.try_send(record).is_ok() {
            first = 1;
        }
        handshake(&kafka, since).await?;
    }

    let started = Instant::now();
    let mut refused = 0;
    for i in first..RECORDS {
        let mut key = [0u8; 16];
        key[..7].copy_from_slice(b"device-");
        let mut d = [0u8; 10];
        let id = decimal(i % 16, &mut d);
        key[7..7 + id.len()].copy_from_slice(id);
        let key = &key[..7 + id.len()];
        let mut s = [0u8; 10];
        let seq = decimal(i, &mut s);
        let value = [b"{\"reading\":".as_slice(), seq, b"}"];
        let mut v = [0u8; 32];
        let mut n = 0;
        for part in value {
            v[n..n + part.len()].copy_from_slice(part);
            n += part.len();
        }
        let headers =
            [Header { key: "seq", value: Some(seq) }, Header { key: "board", value: Some(b"mps2-an386") }];
        let record = Record::new(TOPIC).key(key).value(&v[..n]).headers(&headers);
        if kafka.send(record).await.is_err() {
            // A refusal by TLS or SASL fails every `send` at once: the firmware stops, naming it.
            #[cfg(any(feature = "tls", feature = "sasl"))]
            secure::refused(&kafka)?;
            refused += 1;
        }
        if (i + 1) % 10_000 == 0 {
            print_kv("sent so far: ", i + 1);
            print_kv("  at ms: ", started.elapsed().as_millis() as u32);
        }
    }
    print_kv("all sent at ms: ", started.elapsed().as_millis() as u32);
    kafka.close(Duration::from_secs(60));
    while !kafka.is_closed() {
        Timer::after(Duration::from_millis(20)).await;
    }
    #[cfg(any(feature = "tls", feature = "sasl"))]
    secure::refused(&kafka)?;
    #[cfg(feature = "tls")]
    longest_poll();
    let m = kafka.metrics();
    print_kv("records sent: ", m.records_sent as u32);
    print_kv("records delivered: ", m.records_delivered as u32);
    print_kv("records failed: ", m.records_failed as u32 + refused);
    print_kv("batches: ", m.batches_created as u32);
    print_kv("retries: ", m.batches_retried as u32);
    print_kv("connects: ", m.connects as u32);
    print_kv("disconnects: ", m.disconnects as u32);
    print_kv("bytes written: ", m.bytes_written as u32);
    print_kv("elapsed ms: ", started.elapsed().as_millis() as u32);
    // Time the CPU slept in WFI over the whole run (the link's cut and the broker's pauses
    // included): a transport that busy-waits would show none.
    #[cfg(feature = "tls")]
    print_kv("asleep ms: ", board::idle_cycles() / (board::SYSCLK_HZ / 1_000));
    Ok(if m.records_delivered == u64::from(RECORDS) && refused == 0 { 0 } else { 1 })
}
