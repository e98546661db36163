//! A TCP fault proxy between picokafka and a real broker (Apache Kafka, through a listener that
//! advertises the proxy, and Tansu, advertising the proxy's address: every connection
//! goes through it). The proxy cuts connections after a number of bytes,
//! stalls them past `request.timeout.ms`, and resets them in the middle of a frame. Through all
//! of it: with idempotence every record arrives exactly once and in order; without it none is
//! lost. An independent consumer (confluent-kafka, CRC checks) does the counting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picokafka_tests::{consume_at_least, Broker, Consumer, Kafka, Tansu};
use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the connection it accepts `n`-th (0-based).
#[derive(Debug, Clone, Copy)]
enum Plan {
    Forward,
    /// Cut both directions after this many bytes from the client.
    CutAfter(u64),
    /// After this many bytes from the client, forward nothing for `ms`.
    StallAfter(u64, u64),
    /// After this many bytes from the broker (mid-frame), reset with a RST.
    ResetAfterResponseBytes(u64),
}

#[derive(Default)]
struct Counters {
    /// Plans apply once armed (after the test's own setup connections).
    armed: std::sync::atomic::AtomicBool,
    connections: AtomicUsize,
    cuts: AtomicUsize,
    stalls: AtomicUsize,
    resets: AtomicUsize,
}

/// Runs the proxy on `listener` in front of `upstream`; connections get `plans` in order, then
/// `Forward`.
fn proxy(
    listener: TcpListener,
    upstream: u16,
    plans: Vec<Plan>,
    counters: Arc<Counters>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let plan = if counters.armed.load(Ordering::SeqCst) {
                let n = counters.connections.fetch_add(1, Ordering::SeqCst);
                plans.get(n).copied().unwrap_or(Plan::Forward)
            } else {
                Plan::Forward
            };
            let counters = counters.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                pipe(client, server, plan, &counters).await;
            });
        }
    })
}

async fn pipe(client: TcpStream, server: TcpStream, plan: Plan, counters: &Counters) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut sent = 0u64;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut chunk = &buf[..n];
            match plan {
                Plan::CutAfter(limit) if sent + n as u64 >= limit => {
                    let keep = (limit - sent) as usize;
                    let _ = sw.write_all(&chunk[..keep]).await;
                    counters.cuts.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Plan::StallAfter(limit, ms) if sent < limit && sent + n as u64 >= limit => {
                    let keep = (limit - sent) as usize;
                    let _ = sw.write_all(&chunk[..keep]).await;
                    counters.stalls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    chunk = &chunk[keep..];
                }
                _ => {}
            }
            sent += n as u64;
            if sw.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut received = 0u64;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Plan::ResetAfterResponseBytes(limit) = plan {
                if received + n as u64 >= limit {
                    let keep = (limit - received) as usize;
                    let _ = cw.write_all(&buf[..keep]).await;
                    counters.resets.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            received += n as u64;
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever direction ends first ends the connection: both halves are dropped. A reset: the
    // socket is dropped with unread data or linger 0, which the peer sees as a broken stream.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

struct Outcome {
    sent: u64,
    delivered: u64,
    failed: u64,
    read_back: usize,
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
}

/// A broker of the run's own that advertises the proxy at `proxy_port`, and the port the proxy
/// forwards to.
fn broker_behind(kind: &str, proxy_port: u16) -> (Arc<dyn Broker + Send + Sync>, u16) {
    let advertised = format!("127.0.0.1:{proxy_port}");
    if kind == "Tansu" {
        let tansu = Tansu::start_advertising(Some(&advertised));
        let port = tansu.port;
        return (Arc::new(tansu), port);
    }
    // Kafka's PROXIED listener advertises the proxy; its own port is where the proxy forwards.
    let kafka = Kafka::start_with(&[("KAFKA_PROXY_PORT", &proxy_port.to_string())]);
    let upstream =
        kafka.proxied.as_deref().and_then(|a| a.rsplit(':').next()?.parse().ok()).expect("PROXIED");
    (Arc::new(kafka), upstream)
}

async fn run(kind: &'static str, idempotent: bool) -> (Outcome, Arc<Counters>) {
    // The broker advertises the proxy, so metadata sends the producer back through it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (broker, upstream) = tokio::task::spawn_blocking(move || broker_behind(kind, port)).await.unwrap();
    let counters = Arc::new(Counters::default());
    let plans = vec![
        Plan::CutAfter(3_000),
        Plan::StallAfter(40_000, 2_500),
        Plan::ResetAfterResponseBytes(700),
        Plan::CutAfter(150_000),
        Plan::ResetAfterResponseBytes(20_000),
    ];
    let _proxy = proxy(listener, upstream, plans, counters.clone());
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.create_topic("faults", 3)).await.unwrap();
    counters.armed.store(true, Ordering::SeqCst);

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("enable.idempotence", idempotent.to_string())
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set("request.timeout.ms", "1000")
        .set("retry.backoff.ms", "20");
    let producer = Producer::new(&config).unwrap();
    let records = 50_000u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let ok: Arc<Mutex<Vec<u64>>> = Arc::default();
    for i in 0..records {
        let record = OwnedRecord::new("faults").key(format!("k{}", i % 100)).value(format!("{i:08}"));
        let (d, f, ok) = (delivered.clone(), failed.clone(), ok.clone());
        producer
            .send_with_callback(record, move |r| match r {
                Ok(_) => {
                    d.fetch_add(1, Ordering::SeqCst);
                    ok.lock().unwrap().push(i);
                }
                Err(_) => {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            })
            .await
            .unwrap();
        if i % 5_000 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    producer.close(Duration::from_secs(60)).await;
    let delivered = delivered.load(Ordering::SeqCst);
    // Read back past the proxy, straight from the broker.
    let bootstrap = broker.bootstrap();
    let read = tokio::task::spawn_blocking(move || {
        consume_at_least(&bootstrap, &["faults"], delivered as usize, Consumer::Confluent)
    })
    .await
    .unwrap();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut last: HashMap<i32, u64> = HashMap::new();
    let mut out_of_order = 0;
    for rec in &read {
        let id: u64 = String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).parse().unwrap();
        let count = seen.entry(id).or_default();
        *count += 1;
        let prev = last.entry(rec.partition).or_insert(0);
        if id < *prev && *count == 1 {
            out_of_order += 1;
        }
        *prev = (*prev).max(id);
    }
    let lost = ok.lock().unwrap().iter().filter(|id| !seen.contains_key(id)).count();
    let outcome = Outcome {
        sent: records,
        delivered,
        failed: failed.load(Ordering::SeqCst),
        read_back: read.len(),
        lost,
        duplicates: seen.values().map(|n| n - 1).sum(),
        out_of_order,
    };
    (outcome, counters)
}

fn report(kind: &str, mode: &str, o: &Outcome, c: &Counters) {
    println!(
        "| {kind:<12} | {mode:<11} | {:>6} | {:>9} | {:>6} | {:>9} | {:>4} | {:>10} | {:>12} | {} connections, {} cuts, {} stalls, {} resets |",
        o.sent,
        o.delivered,
        o.failed,
        o.read_back,
        o.lost,
        o.duplicates,
        o.out_of_order,
        c.connections.load(Ordering::SeqCst),
        c.cuts.load(Ordering::SeqCst),
        c.stalls.load(Ordering::SeqCst),
        c.resets.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_stalls_and_resets_lose_nothing() {
    println!(
        "| broker       | mode        |   sent | delivered | failed | read back | lost | duplicates | out-of-order | proxy |"
    );
    for kind in ["Apache Kafka", "Tansu"] {
        let (o, c) = run(kind, true).await;
        report(kind, "idempotent", &o, &c);
        assert!(
            c.cuts.load(Ordering::SeqCst) >= 1 && c.resets.load(Ordering::SeqCst) >= 1,
            "the faults happened"
        );
        assert_eq!((o.delivered, o.failed, o.lost), (o.sent, 0, 0), "{kind}");
        assert_eq!((o.duplicates, o.out_of_order), (0, 0), "{kind}");

        let (o, c) = run(kind, false).await;
        report(kind, "acks=all", &o, &c);
        assert_eq!((o.delivered, o.failed, o.lost), (o.sent, 0, 0), "{kind}");
    }
}
