//! The Prometheus endpoint as an operator meets it: a real Prometheus server (Debian's
//! `prometheus`, installed by `scripts/test`) scrapes a producer writing to Apache Kafka, and the
//! test asks Prometheus' HTTP API for what it stored; `/health` answers 200 while the producer
//! is healthy, and 503 naming the cause when no broker can be reached.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use picokafka_tests::{Broker, Kafka};
use picokafka_tokio::{ClientConfig, MetricsServer, OwnedRecord, Producer};

/// A plain HTTP/1.0 GET: status code and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    try_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

fn try_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus server scraping `target` every second, stopped when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pk-prometheus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: picokafka\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (scripts/test installs Debian's package)");
        Prometheus { child, addr, _dir: tempdir::Dir(dir) }
    }

    /// The value of an instant query's first sample, once Prometheus has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let q: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        // Until Prometheus listens, there is nothing to ask.
        let (status, body) = try_get(&self.addr, &format!("/api/v1/query?query={q}")).ok()?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits up to a minute for `promql` to give `want`.
    fn wait_for(&self, promql: &str, want: impl Fn(f64) -> bool) -> f64 {
        let started = Instant::now();
        loop {
            let got = self.query(promql);
            if let Some(v) = got.filter(|&v| want(v)) {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{promql}: {got:?} after 60 s");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_producing_producer() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("prom", 2);
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.bootstrap());
    let producer = Producer::new(&config).unwrap();
    let server = MetricsServer::bind("127.0.0.1:0", producer.clone()).await.unwrap();
    let target = server.local_addr().to_string();

    const N: u64 = 1000;
    for i in 0..N {
        producer.send_and_forget(OwnedRecord::new(topic.as_str()).value(format!("v{i}"))).await.unwrap();
    }
    producer.flush(Duration::from_secs(60)).await.unwrap();
    let (status, body) = tokio::task::spawn_blocking({
        let t = target.clone();
        move || get(&t, "/health")
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("healthy: "), "{body}");

    let prom = tokio::task::spawn_blocking(move || {
        let prom = Prometheus::start(&target);
        let delivered = prom.wait_for("picokafka_records_delivered_total", |v| v == N as f64);
        let responses = prom.wait_for("picokafka_request_latency_seconds_count", |v| v > 0.0);
        let ready = prom.wait_for("sum(picokafka_broker_connection_state{state=\"ready\"})", |v| v >= 1.0);
        let healthy = prom.wait_for("picokafka_healthy", |v| v == 1.0);
        let median = prom.wait_for(
            "histogram_quantile(0.5, sum by (le) (picokafka_request_latency_seconds_bucket))",
            |v| v.is_finite() && v > 0.0,
        );
        let up = prom.wait_for("up{job=\"picokafka\"}", |v| v == 1.0);
        eprintln!(
            "prometheus stored: delivered {delivered}, responses {responses}, ready brokers {ready}, \
             healthy {healthy}, median request {median:.4} s, up {up}"
        );
        prom
    })
    .await
    .unwrap();
    drop(prom);
    drop(server);
    producer.close(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_with_the_cause_when_no_broker_answers() {
    let port = free_port();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", format!("127.0.0.1:{port}")).set("max.block.ms", "1000");
    let producer = Producer::new(&config).unwrap();
    let server = MetricsServer::bind("127.0.0.1:0", producer.clone()).await.unwrap();
    let _ = producer.send(OwnedRecord::new("t").value("x")).await;
    let target = server.local_addr().to_string();
    let (status, body) = tokio::task::spawn_blocking(move || get(&target, "/health")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("connect to 127.0.0.1:{port} failed: Connection refused")), "{body}");
    producer.close(Duration::from_millis(100)).await;
}

#[test]
fn the_cli_serves_metrics_while_it_produces() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("prom-cli", 1);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(picokafka_tests::cli())
        .args(["produce", "-b", &kafka.bootstrap(), "-t", &topic, "--metrics-addr", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..100 {
        writeln!(stdin, "line {i}").unwrap();
    }
    stdin.flush().unwrap();
    // Input still open: the producer is running, and its endpoint answers.
    let started = Instant::now();
    loop {
        let scraped = try_get(&addr, "/metrics").ok();
        if scraped
            .as_ref()
            .is_some_and(|(_, body)| body.lines().any(|l| l == "picokafka_records_delivered_total 100"))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{scraped:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&addr, "/health").0, 200);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
