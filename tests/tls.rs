//! TLS (`security.protocol=SSL`) to Apache Kafka's own SSL listener, which requires mutual TLS:
//! the broker's certificate comes from the test CA `scripts/kafka-pki` made (ECDSA P-256), and the
//! broker refuses a client without a certificate of that CA. librdkafka (confluent-kafka) reads
//! the records back over TLS too.

use std::path::Path;
use std::time::Duration;

use picokafka_tests::Consumer;
use picokafka_tests::{consume_with, Kafka};
use picokafka_tokio::{ClientConfig, Error, OwnedRecord, Producer, TlsErrorKind};

/// `security.protocol=SSL` to `bootstrap`, trusting `ca`, with the test's client certificate.
fn config(kafka: &Kafka, bootstrap: &str, ca: &Path, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca.display().to_string())
        .set("ssl.certificate.location", kafka.client_cert.display().to_string())
        .set("ssl.key.location", kafka.client_key.display().to_string())
        .set("max.block.ms", "5000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produces_over_mutual_tls_and_librdkafka_reads_back_over_tls() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("secure", 3);
    let producer =
        Producer::new(&config(kafka, &kafka.ssl, &kafka.ca, &[("compression.type", "lz4")])).unwrap();
    let n = 2000;
    let mut pending = Vec::new();
    for i in 0..n {
        let record = OwnedRecord::new(topic.as_str()).key(format!("k{}", i % 13)).value(format!("tls-{i}"));
        pending.push(producer.enqueue(record).await.unwrap());
    }
    let mut offsets = Vec::new();
    for p in pending {
        let d = p.await.expect("delivered over TLS");
        offsets.push((d.partition, d.offset));
    }
    producer.close(Duration::from_secs(10)).await;

    let (ca, cert, key) = (
        kafka.ca.display().to_string(),
        kafka.client_cert.display().to_string(),
        kafka.client_key.display().to_string(),
    );
    let read = consume_with(
        &kafka.ssl,
        &[&topic],
        n,
        Consumer::Confluent,
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &ca),
            ("ssl.certificate.location", &cert),
            ("ssl.key.location", &key),
        ],
    );
    for rec in &read {
        let i: usize = std::str::from_utf8(&rec.value.clone().unwrap()[4..]).unwrap().parse().unwrap();
        assert_eq!((rec.partition, rec.offset), offsets[i], "record {i} read where it was reported");
    }
}

/// Without a client certificate Kafka's SSL listener (`ssl.client.auth=required`) refuses the
/// handshake: nothing is delivered and the caller gets an error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_a_client_without_a_certificate() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("no-client-cert", 1);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.ssl)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", kafka.ca.display().to_string())
        .set("max.block.ms", "3000");
    let producer = Producer::new(&c).unwrap();
    let err = producer.send(OwnedRecord::new(topic.as_str()).value("x")).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_) | Error::MetadataTimeout { .. }), "{err:?}");
    producer.close(Duration::from_secs(1)).await;
}

/// The name check (`ssl.endpoint.identification.algorithm`, `https` by default) and the chain
/// check, on a node of its own whose certificate names only `broker.test`: refused unless the
/// name check is off; a certificate from an untrusted CA is refused either way. Refused means a
/// clear error at `send`, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked() {
    let kafka = Kafka::start_with(&[("KAFKA_TLS_ONLY_NAMES", "broker.test")]);
    let topic = kafka.topic("checked", 1);

    let strict = Producer::new(&config(&kafka, &kafka.ssl, &kafka.ca, &[])).unwrap();
    let err = strict.send(OwnedRecord::new(topic.as_str()).value("x")).await.unwrap_err();
    match &err {
        Error::Tls(e) => {
            assert_eq!(e.kind, TlsErrorKind::NotValidForName, "{e}");
            assert!(e.to_string().contains("not valid for name"), "{e}");
        }
        other => panic!("a wrong name must not connect, with a clear error: {other:?}"),
    }
    let health = strict.health().await;
    assert!(health.last_error.as_deref().is_some_and(|e| e.contains("TLS handshake")), "{health:?}");
    strict.close(Duration::from_secs(1)).await;

    let lenient = Producer::new(&config(
        &kafka,
        &kafka.ssl,
        &kafka.ca,
        &[("ssl.endpoint.identification.algorithm", "none")],
    ))
    .unwrap();
    lenient.send(OwnedRecord::new(topic.as_str()).value("y")).await.expect("chain-only check passes");
    lenient.close(Duration::from_secs(5)).await;

    let untrusted = Producer::new(&config(
        &kafka,
        &kafka.ssl,
        &kafka.other_ca,
        &[("ssl.endpoint.identification.algorithm", "none")],
    ))
    .unwrap();
    let err = untrusted.send(OwnedRecord::new(topic.as_str()).value("z")).await.unwrap_err();
    match &err {
        Error::Tls(e) => {
            assert_eq!(e.kind, TlsErrorKind::UnknownIssuer, "{e}");
            assert!(e.to_string().contains("invalid peer certificate"), "{e}");
        }
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
    check(
        &[("security.protocol", "SSL"), ("ssl.enabled.protocols", "TLSv1.1,TLSv1.2")],
        "TLSv1.1 is not supported",
    );
    check(
        &[("security.protocol", "SSL"), ("ssl.enabled.protocols", "TLSv1.3"), ("ssl.protocol", "TLSv1.2")],
        "leave no TLS version",
    );
    // Java's stores: only PEM; no passwords.
    check(
        &[("security.protocol", "SSL"), ("ssl.truststore.location", "/etc/kafka/truststore.jks")],
        "ssl.truststore.location with ssl.truststore.type=JKS (Java's default) is not supported",
    );
    check(
        &[("security.protocol", "SSL"), ("ssl.keystore.type", "PKCS12"), ("ssl.keystore.location", "/k.p12")],
        "ssl.keystore.type=PKCS12",
    );
    check(
        &[
            ("security.protocol", "SSL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.key.password", "secret"),
        ],
        "ssl.key.password is not supported",
    );
}

/// The same mutual TLS, configured as a Java client is (KIP-651 PEM stores): the CAs in
/// `ssl.truststore.location`, the client's key and certificate in one `ssl.keystore.location`
/// file; and again with the PEM inline (`ssl.truststore.certificates`, `ssl.keystore.key`,
/// `ssl.keystore.certificate.chain`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_pem_stores_carry_mutual_tls() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("secure-java", 1);
    let key = std::fs::read_to_string(&kafka.client_key).unwrap();
    let cert = std::fs::read_to_string(&kafka.client_cert).unwrap();
    let ca = std::fs::read_to_string(&kafka.ca).unwrap();
    let dir = std::env::temp_dir().join(format!("pk-java-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keystore = dir.join("client-keystore.pem");
    std::fs::write(&keystore, format!("{key}\n{cert}")).unwrap();
    let keystore = keystore.display().to_string();
    let ca_file = kafka.ca.display().to_string();
    let file_props: Vec<(&str, &str)> = vec![
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &ca_file),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
    ];
    let inline_props: Vec<(&str, &str)> = vec![
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.certificates", &ca),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.key", &key),
        ("ssl.keystore.certificate.chain", &cert),
    ];
    let mut tls12_props = inline_props.clone();
    tls12_props.push(("ssl.enabled.protocols", "TLSv1.2"));
    for (i, props) in [file_props, inline_props, tls12_props].into_iter().enumerate() {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", kafka.ssl.as_str())
            .set("security.protocol", "SSL")
            .set("max.block.ms", "5000");
        for (k, v) in props {
            c.set(k, v);
        }
        let producer = Producer::new(&c).unwrap();
        let d = producer
            .send(OwnedRecord::new(topic.as_str()).value(format!("java-pem-{i}")))
            .await
            .expect("delivered over TLS with Java's PEM stores");
        assert_eq!(d.offset, i as i64);
        producer.close(Duration::from_secs(5)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
