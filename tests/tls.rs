//! TLS (`security.protocol=SSL`) to a real broker behind a TLS endpoint nobody here wrote:
//! socat's OpenSSL listener in front of Tansu (Tansu advertises socat's address), with
//! certificates from a throwaway CA. librdkafka (confluent-kafka) reads the records back over
//! TLS too.
//!
//! Needs `socat` (scripts/test installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use picokafka_tests::{consume_with, Consumer, Tansu};
use picokafka_tokio::{ClientConfig, Error, OwnedRecord, Producer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA and a server certificate it signed, as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The server certificate names only `names` (DNS names or IP addresses).
    fn new(tag: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("picokafka-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, format!("picokafka test CA {tag}"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        server.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// socat terminating TLS on `port` and forwarding to the broker.
struct TlsEndpoint(Child);

impl TlsEndpoint {
    fn start(port: u16, pki: &Pki, broker_port: u16) -> Self {
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                pki.path("server.pem"),
                pki.path("server.key")
            ))
            .arg(format!("TCP:127.0.0.1:{broker_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is needed for the TLS tests (scripts/test installs it)");
        // Dropped (killed and reaped) if it never listens.
        let endpoint = Self(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return endpoint;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("socat did not listen on {port}");
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A broker reachable only over TLS at the returned address.
fn tls_broker(pki: &Pki) -> (Tansu, TlsEndpoint, String) {
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let broker = Tansu::start_advertising(Some(&bootstrap));
    let endpoint = TlsEndpoint::start(port, pki, broker.port);
    (broker, endpoint, bootstrap)
}

fn config(bootstrap: &str, ca: &Path, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca.display().to_string())
        .set("max.block.ms", "5000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produces_over_tls_and_librdkafka_reads_back_over_tls() {
    let pki = Pki::new("ok", &["localhost", "127.0.0.1"]);
    let (broker, _endpoint, bootstrap) = tls_broker(&pki);
    broker.create_topic("secure", 3);
    let producer =
        Producer::new(&config(&bootstrap, &pki.dir.join("ca.pem"), &[("compression.type", "lz4")])).unwrap();
    let n = 2000;
    let mut pending = Vec::new();
    for i in 0..n {
        let record = OwnedRecord::new("secure").key(format!("k{}", i % 13)).value(format!("tls-{i}"));
        pending.push(producer.enqueue(record).await.unwrap());
    }
    let mut offsets = Vec::new();
    for p in pending {
        let d = p.await.expect("delivered over TLS");
        offsets.push((d.partition, d.offset));
    }
    producer.close(Duration::from_secs(10)).await;

    let ca = pki.path("ca.pem");
    let read = consume_with(
        &bootstrap,
        &["secure"],
        n,
        Consumer::Confluent,
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
    );
    for rec in &read {
        let i: usize = std::str::from_utf8(&rec.value.clone().unwrap()[4..]).unwrap().parse().unwrap();
        assert_eq!((rec.partition, rec.offset), offsets[i], "record {i} read where it was reported");
    }
}

/// The name check (`ssl.endpoint.identification.algorithm`, `https` by default) and the chain
/// check: a certificate for another name is refused unless the name check is off; a certificate
/// from an untrusted CA is refused either way. Refused means a clear error at `send`, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked() {
    let pki = Pki::new("name", &["broker.test"]);
    let (broker, _endpoint, bootstrap) = tls_broker(&pki);
    broker.create_topic("checked", 1);
    let ca = pki.dir.join("ca.pem");

    let strict = Producer::new(&config(&bootstrap, &ca, &[])).unwrap();
    let err = strict.send(OwnedRecord::new("checked").value("x")).await.unwrap_err();
    match &err {
        Error::Tls(m) => assert!(m.contains("not valid for name"), "{m}"),
        other => panic!("a wrong name must not connect, with a clear error: {other:?}"),
    }
    let health = strict.health().await;
    assert!(health.last_error.as_deref().is_some_and(|e| e.contains("TLS handshake")), "{health:?}");
    strict.close(Duration::from_secs(1)).await;

    let lenient =
        Producer::new(&config(&bootstrap, &ca, &[("ssl.endpoint.identification.algorithm", "none")]))
            .unwrap();
    lenient.send(OwnedRecord::new("checked").value("y")).await.expect("chain-only check passes");
    lenient.close(Duration::from_secs(5)).await;

    let other = Pki::new("other", &["127.0.0.1"]);
    let untrusted = Producer::new(&config(
        &bootstrap,
        &other.dir.join("ca.pem"),
        &[("ssl.endpoint.identification.algorithm", "none")],
    ))
    .unwrap();
    let err = untrusted.send(OwnedRecord::new("checked").value("z")).await.unwrap_err();
    match &err {
        Error::Tls(m) => assert!(m.contains("invalid peer certificate"), "{m}"),
        other => panic!("an untrusted CA must not connect, with a clear error: {other:?}"),
    }
    untrusted.close(Duration::from_secs(1)).await;
}

#[test]
fn bad_tls_settings_are_errors_that_name_the_property() {
    let check = |props: &[(&str, &str)], needle: &str| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:9");
        for (k, v) in props {
            c.set(*k, *v);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        let err = Producer::new(&c).unwrap_err().to_string();
        assert!(err.contains(needle), "{props:?}: {err}");
    };
    check(&[("security.protocol", "TLS1.3")], "security.protocol");
    check(&[("security.protocol", "SASL_SSL")], "SASL");
    check(&[("security.protocol", "SSL"), ("ssl.ca.location", "/nonexistent/ca.pem")], "ssl.ca.location");
    check(&[("security.protocol", "SSL"), ("ssl.ca.pem", "not a certificate")], "ssl.ca.pem");
    check(
        &[("security.protocol", "SSL"), ("ssl.ca.pem", ""), ("ssl.endpoint.identification.algorithm", "dns")],
        "ssl.",
    );
    check(
        &[("security.protocol", "SSL"), ("ssl.certificate.location", "/nonexistent/c.pem")],
        "ssl.key.location",
    );
}
