//! SASL against Apache Kafka 4.4: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (Kafka's
//! unsecured JWT validator, `sub` is the principal) over SASL_PLAINTEXT and SASL_SSL, each read
//! back by confluent-kafka authenticating with the very same settings; Java's
//! `sasl.jaas.config`; wrong passwords, unknown users and a mechanism the listener does not
//! enable, each a prompt `Error::Authentication` that says why, after a handful of attempts in
//! the broker's log (not a reconnect storm), from the library and from the CLI; ACLs (alice
//! may write one topic and not two others: a quick TOPIC_AUTHORIZATION_FAILED, the allowed
//! topic unharmed); re-authentication (KIP-368) every 3 s while streaming, nothing lost; and a
//! SCRAM credential revoked mid-stream, which fails the affected records with an
//! authentication error instead of retrying them until `delivery.timeout.ms`.
//!
//! Most tests share the suite's broker (`Kafka::shared`). One second node, shared by the tests
//! that need it, has `connections.max.reauth.ms=3000`, only PLAIN and SCRAM-SHA-256 on its
//! SASL_PLAINTEXT listener (its SASL_SSL listener keeps all four), and its SASL authenticator
//! logged at DEBUG (`KAFKA_LOG_SASL=1`) so that re-authentications are counted on the broker's
//! side too.
//!
//! Failed authentications are counted in a broker's log by listener (the line's channel id
//! starts with the listener's address) and Kafka's reason: tests that fail to authenticate on
//! purpose at the same time differ in one or the other (`bad_credentials_...` runs its cases one
//! after another), and on the second node the disabled mechanism's refusals and the
//! revocation's differ in their text.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use picokafka::partitioner::partition_for_key;
use picokafka::protocol::ErrorCode;
use picokafka_tests::{cli, consume_at_least, consume_with, Consumer, Kafka};
use picokafka_tokio::{ClientConfig, DeliveryError, DeliveryFuture, Error, OwnedRecord, Producer};

/// What Kafka logs (INFO, `org.apache.kafka.common.network.Selector`) for every failed SASL
/// authentication: `Failed authentication with /127.0.0.1 (channelId=...) (<why>)`.
const FAILED_AUTH: &str = "Failed authentication with";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    SaslPlaintext,
    SaslSsl,
}

impl Listener {
    fn protocol(self) -> &'static str {
        match self {
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
    fn address(self, kafka: &Kafka) -> &str {
        match self {
            Self::SaslPlaintext => &kafka.sasl_plaintext,
            Self::SaslSsl => &kafka.sasl_ssl,
        }
    }
}

/// The client settings for `user` (password `password`) with `mechanism` on `listener`: the
/// same for picokafka and for the confluent-kafka consumer that reads back. SASL_SSL trusts the
/// test CA; its listener does not ask for a client certificate (only the SSL listener does).
/// OAUTHBEARER makes an unsecured JWT whose `sub` is `user` (librdkafka's names).
/// `mechanism_key` is `sasl.mechanism`, or librdkafka's alias `sasl.mechanisms`.
fn login(
    kafka: &Kafka,
    listener: Listener,
    mechanism_key: &'static str,
    mechanism: &'static str,
    user: &str,
    password: &str,
) -> Vec<(&'static str, String)> {
    let mut p = vec![("security.protocol", listener.protocol().to_string())];
    if listener == Listener::SaslSsl {
        p.push(("ssl.ca.location", kafka.ca.display().to_string()));
    }
    p.push((mechanism_key, mechanism.to_string()));
    if mechanism == "OAUTHBEARER" {
        p.push(("enable.sasl.oauthbearer.unsecure.jwt", "true".to_string()));
        p.push(("sasl.oauthbearer.config", format!("principal={user}")));
    } else {
        p.push(("sasl.username", user.to_string()));
        p.push(("sasl.password", password.to_string()));
    }
    p
}

fn alice(kafka: &Kafka, listener: Listener, mechanism: &'static str) -> Vec<(&'static str, String)> {
    login(kafka, listener, "sasl.mechanism", mechanism, "alice", "alice-secret")
}

fn config(bootstrap: &str, props: &[(&'static str, String)], extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in props {
        c.set(*k, v.as_str());
    }
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

fn borrowed<'a>(props: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    props.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The second node: re-authentication every 3 s, SASL_PLAINTEXT without SCRAM-SHA-512 or
/// OAUTHBEARER, the SASL authenticator at DEBUG. Started on first use, stopped when the test
/// process ends (kafka-start's KAFKA_WATCH_PID).
fn second_node() -> &'static Kafka {
    static NODE: OnceLock<Kafka> = OnceLock::new();
    NODE.get_or_init(|| {
        Kafka::start_with(&[
            (
                "KAFKA_BROKER_PROPS",
                "connections.max.reauth.ms=3000\n\
                 listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            ),
            ("KAFKA_LOG_SASL", "1"),
        ])
    })
}

/// Whether `e` is an authentication failure as the delivery report of an affected record may
/// carry it.
fn is_auth_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::Authentication(_) | Error::Delivery(DeliveryError::Fatal(ErrorCode::SaslAuthenticationFailed))
    )
}

// ---------------------------------------------------------------------------------------------
// (a) every mechanism over both SASL listeners, read back with the same credentials

/// Produces 1000 keyed records as alice with `mechanism` over `listener`, checks every report,
/// then reads them back with confluent-kafka logged in the same way: count, keys, values,
/// murmur2 placement, reported offsets.
async fn produce_and_read_back(listener: Listener, mechanism: &'static str, mechanism_key: &'static str) {
    let kafka = Kafka::shared();
    let topic = kafka.topic(&format!("sasl-{}-{}", listener.protocol(), mechanism).to_lowercase(), 3);
    let props = login(kafka, listener, mechanism_key, mechanism, "alice", "alice-secret");
    let producer = Producer::new(&config(
        listener.address(kafka),
        &props,
        &[("compression.type", "lz4"), ("max.block.ms", "20000")],
    ))
    .unwrap_or_else(|e| panic!("{mechanism} over {listener:?}: {e}"));
    let n = 1000;
    let mut pending = Vec::new();
    for i in 0..n {
        let record = OwnedRecord::new(topic.as_str()).key(format!("key-{}", i % 17)).value(format!("v-{i}"));
        match producer.enqueue(record).await {
            Ok(f) => pending.push(f),
            Err(e) => panic!(
                "{mechanism} over {listener:?}: record {i} refused: {e:?}; health {:?}",
                producer.health().await
            ),
        }
    }
    let mut offsets = Vec::new();
    for (i, f) in pending.into_iter().enumerate() {
        let d = f.await.unwrap_or_else(|e| panic!("{mechanism} over {listener:?}: record {i}: {e:?}"));
        offsets.push((d.partition, d.offset));
    }
    let metrics = producer.metrics().await;
    producer.close(Duration::from_secs(10)).await;
    assert!(metrics.authentications >= 1, "{mechanism} over {listener:?}: {metrics:?}");
    assert_eq!(metrics.records_delivered, n as u64, "{metrics:?}");

    let read = consume_with(listener.address(kafka), &[&topic], n, Consumer::Confluent, &borrowed(&props));
    let mut seen = BTreeSet::new();
    for rec in &read {
        let value = String::from_utf8(rec.value.clone().expect("a value")).unwrap();
        let i: usize = value.strip_prefix("v-").and_then(|s| s.parse().ok()).expect("v-N");
        let key = format!("key-{}", i % 17);
        assert_eq!(rec.key.as_deref(), Some(key.as_bytes()), "record {i}");
        assert_eq!(rec.partition, partition_for_key(key.as_bytes(), 3), "record {i}: murmur2 placement");
        assert_eq!((rec.partition, rec.offset), offsets[i], "record {i} read where it was reported");
        assert!(seen.insert(i), "record {i} read twice");
    }
    assert_eq!(seen.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_over_sasl_plaintext() {
    produce_and_read_back(Listener::SaslPlaintext, "PLAIN", "sasl.mechanism").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_256_over_sasl_plaintext() {
    produce_and_read_back(Listener::SaslPlaintext, "SCRAM-SHA-256", "sasl.mechanism").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_over_sasl_plaintext() {
    produce_and_read_back(Listener::SaslPlaintext, "SCRAM-SHA-512", "sasl.mechanism").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_over_sasl_plaintext() {
    produce_and_read_back(Listener::SaslPlaintext, "OAUTHBEARER", "sasl.mechanism").await;
}

/// Over SASL_SSL the mechanism is set by librdkafka's name, `sasl.mechanisms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_over_sasl_ssl() {
    produce_and_read_back(Listener::SaslSsl, "PLAIN", "sasl.mechanisms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_256_over_sasl_ssl() {
    produce_and_read_back(Listener::SaslSsl, "SCRAM-SHA-256", "sasl.mechanisms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_over_sasl_ssl() {
    produce_and_read_back(Listener::SaslSsl, "SCRAM-SHA-512", "sasl.mechanisms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_over_sasl_ssl() {
    produce_and_read_back(Listener::SaslSsl, "OAUTHBEARER", "sasl.mechanisms").await;
}

// ---------------------------------------------------------------------------------------------
// (b) Java's sasl.jaas.config

/// The credentials from Java's `sasl.jaas.config` alone (no `sasl.username`/`sasl.password`):
/// ScramLoginModule, PlainLoginModule, and OAuthBearerLoginModule's unsecured
/// `unsecuredLoginStringClaim_sub`; librdkafka reads each back as alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaas_config_gives_the_credentials() {
    let kafka = Kafka::shared();
    let cases: [(&str, &str); 3] = [
        (
            "SCRAM-SHA-512",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";"#,
        ),
        (
            "PLAIN",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";"#,
        ),
        (
            "OAUTHBEARER",
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice";"#,
        ),
    ];
    for (mechanism, jaas) in cases {
        let topic = kafka.topic(&format!("jaas-{mechanism}").to_lowercase(), 1);
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &kafka.sasl_ssl)
            .set("security.protocol", "SASL_SSL")
            .set("ssl.ca.location", kafka.ca.display().to_string())
            .set("sasl.mechanism", mechanism)
            .set("sasl.jaas.config", jaas)
            .set("max.block.ms", "20000");
        let producer = Producer::new(&c).unwrap_or_else(|e| panic!("{mechanism} from {jaas}: {e}"));
        for i in 0..50 {
            let r = OwnedRecord::new(topic.as_str()).key("k").value(format!("jaas-{i}"));
            producer.send(r).await.unwrap_or_else(|e| panic!("{mechanism} from sasl.jaas.config: {e:?}"));
        }
        producer.close(Duration::from_secs(5)).await;
        let read = consume_with(
            &kafka.sasl_ssl,
            &[&topic],
            50,
            Consumer::Confluent,
            &borrowed(&alice(kafka, Listener::SaslSsl, mechanism)),
        );
        let values: Vec<_> = read.iter().map(|r| r.value.clone().unwrap()).collect();
        let want: Vec<_> = (0..50).map(|i| format!("jaas-{i}").into_bytes()).collect();
        assert_eq!(values, want, "{mechanism}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) refusals: prompt, clear, a handful of attempts

/// One refused login: `send` fails with `Error::Authentication` within a few seconds (well
/// before `max.block.ms`), with a message naming each of `needles` and never `password`; later
/// sends fail at once; `flush` returns; the broker logged between 1 and 3 failed authentications
/// (counted after a further 3 s with the producer still open: no reconnect storm) on
/// `bootstrap`'s listener with `log_reason` (Kafka's words, in the line's last parentheses), so
/// tests failing on other listeners or for other reasons meanwhile do not count. Returns the
/// message.
async fn refused(
    kafka: &Kafka,
    case: &str,
    bootstrap: &str,
    props: &[(&'static str, String)],
    password: &str,
    log_reason: &str,
    needles: &[&str],
) -> String {
    let topic = kafka.topic("refused", 1);
    let channel = format!("channelId={bootstrap}-");
    let log_needles = [FAILED_AUTH, channel.as_str(), log_reason];
    let before = kafka.log_count_all(&log_needles);
    let producer = Producer::new(&config(
        bootstrap,
        props,
        &[("max.block.ms", "30000"), ("delivery.timeout.ms", "60000")],
    ))
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let start = Instant::now();
    let err = producer.send(OwnedRecord::new(topic.as_str()).value("x")).await.expect_err(case);
    let took = start.elapsed();
    let health = producer.health().await;
    let message = match &err {
        Error::Authentication(m) => m.to_string(),
        other => panic!("{case}: expected Error::Authentication, got {other:?} after {took:?}; {health:?}"),
    };
    assert!(took < Duration::from_secs(5), "{case}: the refusal took {took:?}");
    for needle in needles {
        assert!(message.contains(needle), "{case}: {message:?} does not name {needle:?}");
    }
    assert!(!password.is_empty() && !message.contains(password), "{case}: the message shows the password");
    let display = err.to_string();
    assert!(!display.contains(password), "{case}: Display shows the password: {display}");
    assert!(!format!("{err:?}").contains(password), "{case}: Debug shows the password");
    assert!(!health.is_healthy(), "{case}: {health:?}");
    for text in [health.last_error.as_deref(), health.fatal.as_deref()].into_iter().flatten() {
        assert!(!text.contains(password), "{case}: health shows the password: {health:?}");
    }

    // Once refused, the producer does not make the caller wait again.
    let again = Instant::now();
    let second = producer.send(OwnedRecord::new(topic.as_str()).value("y")).await.expect_err(case);
    assert!(is_auth_failure(&second), "{case}: a later send: {second:?}");
    assert!(again.elapsed() < Duration::from_secs(1), "{case}: a later send took {:?}", again.elapsed());
    producer
        .flush(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{case}: flush hangs after a refused login: {e}"));

    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = kafka.log_count_all(&log_needles) - before;
    let metrics = producer.metrics().await;
    producer.close(Duration::from_secs(1)).await;
    assert!(
        (1..=3).contains(&attempts),
        "{case}: {attempts} failed authentications in the broker's log in {:?} (a handful expected): {}",
        start.elapsed(),
        kafka.log_tail(10)
    );
    eprintln!("{case}: {message} ({attempts} attempts, {took:?}); {metrics:?}");
    message
}

/// Wrong passwords and an unknown user, one case after another on the shared broker (so each
/// case's count of failed authentications in its log is its own), then the same through the
/// CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_fail_fast_with_a_clear_error() {
    let kafka = Kafka::shared();
    let cli = cli(); // built before anything is timed
    let wrong = "not-alices-password-93";
    refused(
        kafka,
        "SCRAM-SHA-256, wrong password",
        &kafka.sasl_plaintext,
        &login(kafka, Listener::SaslPlaintext, "sasl.mechanism", "SCRAM-SHA-256", "alice", wrong),
        wrong,
        // Kafka: "Authentication failed during authentication due to invalid credentials with
        // SASL mechanism SCRAM-SHA-256"
        "invalid credentials with SASL mechanism SCRAM-SHA-256",
        &["SCRAM-SHA-256", "alice", "invalid credentials"],
    )
    .await;
    refused(
        kafka,
        "PLAIN over SASL_SSL, wrong password",
        &kafka.sasl_ssl,
        &login(kafka, Listener::SaslSsl, "sasl.mechanism", "PLAIN", "alice", wrong),
        wrong,
        // Kafka: "Authentication failed: Invalid username or password"
        "Invalid username or password",
        &["PLAIN", "alice", "Invalid username or password"],
    )
    .await;
    refused(
        kafka,
        "SCRAM-SHA-512, unknown user",
        &kafka.sasl_plaintext,
        &login(
            kafka,
            Listener::SaslPlaintext,
            "sasl.mechanism",
            "SCRAM-SHA-512",
            "mallory",
            "mallory-secret",
        ),
        "mallory-secret",
        "invalid credentials with SASL mechanism SCRAM-SHA-512",
        &["SCRAM-SHA-512", "mallory", "invalid credentials"],
    )
    .await;

    // The CLI: a non-zero exit and the reason on stderr, promptly, for every line of input.
    let topic = kafka.topic("refused-cli", 1);
    let channel = format!("channelId={}-", kafka.sasl_plaintext);
    let cli_needles =
        [FAILED_AUTH, channel.as_str(), "invalid credentials with SASL mechanism SCRAM-SHA-256"];
    let before = kafka.log_count_all(&cli_needles);
    let start = Instant::now();
    let mut child = Command::new(&cli)
        .args(["produce", "-b", &kafka.sasl_plaintext, "-t", &topic])
        .args(["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-256"])
        .args(["-X", "sasl.username=alice", "-X", &format!("sasl.password={wrong}")])
        .args(["-X", "max.block.ms=30000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    let input: String = (0..100).map(|i| format!("line-{i}\n")).collect();
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the CLI succeeded with a wrong password: {stdout}{stderr}");
    assert!(took < Duration::from_secs(10), "the CLI took {took:?}: {stdout}{stderr}");
    assert!(stderr.contains(", 0 delivered, "), "{stderr}");
    for needle in ["SCRAM-SHA-256", "alice", "invalid credentials"] {
        assert!(stderr.contains(needle), "the CLI's stderr does not name {needle:?}: {stderr}");
    }
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "the CLI shows the password: {stdout}{stderr}"
    );
    let attempts = kafka.log_count_all(&cli_needles) - before;
    assert!((1..=3).contains(&attempts), "the CLI made {attempts} failed authentications");
}

/// The CLI over SASL_SSL: `produce` with the login in a `-F` properties file (read back by
/// librdkafka), `metadata` with `-X` showing the topic, and `metadata` with a wrong password
/// failing with the reason (not the password).
#[test]
fn cli_produces_and_shows_metadata_over_sasl() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("sasl-cli", 2);
    let props = alice(kafka, Listener::SaslSsl, "SCRAM-SHA-512");
    let file = std::env::temp_dir().join(format!("picokafka-sasl-{}.properties", std::process::id()));
    let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let mut child = Command::new(cli())
        .args(["produce", "-b", &kafka.sasl_ssl, "-t", &topic, "-K", ":", "-F"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picokafka");
    let n = 500;
    let input: String = (0..n).map(|i| format!("k{}:cli-{i}\n", i % 5)).collect();
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&file);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains(&format!("{n} records sent, {n} delivered, 0 failed")), "{stderr}");
    let read = consume_with(&kafka.sasl_ssl, &[&topic], n, Consumer::Confluent, &borrowed(&props));
    let values: BTreeSet<Vec<u8>> = read.into_iter().filter_map(|r| r.value).collect();
    assert_eq!(values.len(), n);

    let metadata = |password: &str| {
        let mut cmd = Command::new(cli());
        cmd.args(["metadata", "-b", &kafka.sasl_ssl, "-t", &topic]);
        for (k, v) in &props {
            let v = if *k == "sasl.password" { password } else { v.as_str() };
            cmd.arg("-X").arg(format!("{k}={v}"));
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = metadata("alice-secret");
    assert!(ok && stdout.contains(&topic) && stdout.matches("partition").count() >= 2, "{stdout}{stderr}");
    let start = Instant::now();
    let (ok, stdout, stderr) = metadata("not-alices-password-93");
    assert!(!ok, "metadata with a wrong password succeeded: {stdout}");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    for needle in ["SCRAM-SHA-512", "alice", "invalid credentials"] {
        assert!(stderr.contains(needle), "metadata's stderr does not name {needle:?}: {stderr}");
    }
    assert!(!stderr.contains("not-alices-password-93") && !stdout.contains("not-alices-password-93"));
}

/// A mechanism the listener does not enable (the second node's SASL_PLAINTEXT has only PLAIN
/// and SCRAM-SHA-256): an authentication error that names the mechanism asked for and the ones
/// the broker offers, promptly, after a handful of attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_the_broker_does_not_enable_is_refused_with_the_ones_it_does() {
    let kafka = second_node();
    for mechanism in ["SCRAM-SHA-512", "OAUTHBEARER"] {
        let message = refused(
            kafka,
            &format!("{mechanism} not enabled"),
            &kafka.sasl_plaintext,
            &alice(kafka, Listener::SaslPlaintext, mechanism),
            "alice-secret",
            // Kafka: "Failed authentication with ... (Unsupported SASL mechanism SCRAM-SHA-512)"
            &format!("Unsupported SASL mechanism {mechanism}"),
            &[mechanism, "PLAIN", "SCRAM-SHA-256"],
        )
        .await;
        assert!(
            !message.contains("SCRAM-SHA-512") || mechanism == "SCRAM-SHA-512",
            "the broker offers no SCRAM-SHA-512 here: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (d) ACLs: authorization is not authentication

/// alice may write A (WRITE+DESCRIBE), may only describe C, and has no ACL on B, which has one
/// for bob (so alice is denied it; a topic without ACLs would be open to all). With every
/// mechanism: A's records are delivered and read back; B's and C's fail with
/// TOPIC_AUTHORIZATION_FAILED, quickly (well under delivery.timeout.ms), and the producer goes
/// on delivering A — an authorization refusal is not fatal. This also proves each mechanism
/// authenticates as alice: another principal could not write A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_may_write_a_but_not_b() {
    let kafka = Kafka::shared();
    let a = kafka.topic("acl-a", 2);
    let b = kafka.topic("acl-b", 1);
    let c = kafka.topic("acl-c", 1);
    kafka.allow("User:alice", &a, "WRITE,DESCRIBE");
    kafka.allow("User:bob", &b, "WRITE,DESCRIBE");
    kafka.allow("User:alice", &c, "DESCRIBE");

    let mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];
    for mechanism in mechanisms {
        let props = alice(kafka, Listener::SaslPlaintext, mechanism);
        let producer = Producer::new(&config(
            &kafka.sasl_plaintext,
            &props,
            &[("delivery.timeout.ms", "60000"), ("max.block.ms", "30000")],
        ))
        .unwrap();
        let start = Instant::now();
        let mut on_a = Vec::new();
        let mut refusals = Vec::new();
        for i in 0..100 {
            on_a.push(
                producer
                    .enqueue(
                        OwnedRecord::new(a.as_str()).key(format!("k{i}")).value(format!("{mechanism}-{i}")),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{mechanism}: A refused: {e:?}")),
            );
            if i % 10 == 0 {
                for t in [&b, &c] {
                    // Refused at send (the topic's metadata says so) or in its delivery report.
                    let r = match producer.enqueue(OwnedRecord::new(t.as_str()).value("no")).await {
                        Ok(f) => f.await.map(|_| ()),
                        Err(e) => Err(e.error),
                    };
                    refusals.push((t.clone(), r, start.elapsed()));
                }
            }
        }
        for (t, r, at) in &refusals {
            match r {
                Err(Error::Topic(ErrorCode::TopicAuthorizationFailed))
                | Err(Error::Delivery(DeliveryError::Broker(ErrorCode::TopicAuthorizationFailed))) => {}
                other => panic!("{mechanism}: a record for {t}: {other:?}"),
            }
            assert!(*at < Duration::from_secs(10), "{mechanism}: {t}'s refusal came after {at:?}");
        }
        for (i, f) in on_a.into_iter().enumerate() {
            f.await.unwrap_or_else(|e| panic!("{mechanism}: A's record {i}: {e:?}"));
        }
        // Still healthy after the refusals: one more for A.
        producer
            .send(OwnedRecord::new(a.as_str()).key("after").value(format!("{mechanism}-after")))
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: A after the refusals: {e:?}"));
        let health = producer.health().await;
        assert!(health.fatal.is_none(), "{mechanism}: an authorization refusal is not fatal: {health:?}");
        producer.close(Duration::from_secs(5)).await;
    }

    // Read back over PLAINTEXT (ANONYMOUS is a super user there): alice has no READ on A.
    let read = consume_with(&kafka.plaintext, &[&a], 101 * mechanisms.len(), Consumer::Confluent, &[]);
    let values: BTreeSet<String> =
        read.iter().map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()).collect();
    for mechanism in mechanisms {
        for i in (0..100).map(|i| i.to_string()).chain(["after".to_string()]) {
            assert!(values.contains(&format!("{mechanism}-{i}")), "{mechanism}-{i} missing from A");
        }
    }
    consume_with(&kafka.plaintext, &[&b, &c], 0, Consumer::Confluent, &[]);
}

// ---------------------------------------------------------------------------------------------
// (e) re-authentication, (f) a credential revoked mid-stream

/// Sends 10 records every 10 ms to `topic` for `duration`, values `tag-N`; stops early at the
/// first refused send and returns it with the pending reports.
async fn stream(
    producer: &Producer,
    topic: &str,
    tag: &str,
    duration: Duration,
) -> (Vec<DeliveryFuture>, Option<(Error, Duration)>) {
    let start = Instant::now();
    let mut pending = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while start.elapsed() < duration {
        tick.tick().await;
        for _ in 0..10 {
            let i = pending.len();
            match producer
                .enqueue(OwnedRecord::new(topic).key(format!("k{}", i % 7)).value(format!("{tag}-{i}")))
                .await
            {
                Ok(f) => pending.push(f),
                Err(e) => return (pending, Some((e.error, start.elapsed()))),
            }
        }
    }
    (pending, None)
}

/// On the second node (`connections.max.reauth.ms=3000`), three producers stream for 12 s
/// (SCRAM-SHA-512 and OAUTHBEARER over SASL_SSL, PLAIN over SASL_PLAINTEXT): each
/// re-authenticates at least twice (its metrics, and the broker's "Beginning re-authentication"
/// lines), is never cut off for an expired session (no disconnects), and loses nothing.
/// Then bob streams with SCRAM-SHA-256 and his credential is deleted 2 s in: within a session
/// or two his next re-authentication fails, later sends are refused with an
/// `Error::Authentication` naming the mechanism and bob, and every record not delivered fails
/// with an authentication error (not a timeout after retries); what was delivered is all on
/// the log. The two phases run one after the other so the broker's counts are each phase's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_keeps_streaming_and_a_revoked_credential_stops_it() {
    let kafka = second_node();
    let reauths_before = kafka.log_count("Beginning re-authentication");
    let runs = [
        (Listener::SaslSsl, "SCRAM-SHA-512"),
        (Listener::SaslSsl, "OAUTHBEARER"),
        (Listener::SaslPlaintext, "PLAIN"),
    ];
    let mut tasks = Vec::new();
    for (listener, mechanism) in runs {
        let topic = kafka.topic(&format!("reauth-{mechanism}").to_lowercase(), 2);
        let props = alice(kafka, listener, mechanism);
        tasks.push(tokio::spawn(async move {
            let producer =
                Producer::new(&config(listener.address(kafka), &props, &[("linger.ms", "5")])).unwrap();
            let (pending, refused) = stream(&producer, &topic, mechanism, Duration::from_secs(12)).await;
            if let Some((e, at)) = refused {
                panic!("{mechanism} over {listener:?}: a send refused after {at:?}: {e:?}");
            }
            let n = pending.len();
            for (i, f) in pending.into_iter().enumerate() {
                f.await.unwrap_or_else(|e| panic!("{mechanism} over {listener:?}: record {i} of {n}: {e:?}"));
            }
            let metrics = producer.metrics().await;
            producer.close(Duration::from_secs(10)).await;
            (mechanism, topic, n, metrics)
        }));
    }
    let mut total_reauths = 0;
    for task in tasks {
        let (mechanism, topic, n, metrics) = task.await.unwrap();
        eprintln!("{mechanism}: {n} records; {metrics:?}");
        assert!(metrics.reauthentications >= 2, "{mechanism}: {metrics:?}");
        assert_eq!(metrics.disconnects, 0, "{mechanism}: cut off (a session expired?): {metrics:?}");
        total_reauths += metrics.reauthentications;
        let read = consume_with(&kafka.plaintext, &[&topic], n, Consumer::Confluent, &[]);
        let values: BTreeSet<Vec<u8>> = read.into_iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(values.len(), n, "{mechanism}: every record once");
    }
    let broker_reauths = (kafka.log_count("Beginning re-authentication") - reauths_before) as u64;
    assert!(
        broker_reauths >= 6 && broker_reauths >= total_reauths,
        "the broker saw {broker_reauths} re-authentications, the producers counted {total_reauths}"
    );

    // Phase 2: bob's SCRAM-SHA-256 credential revoked mid-stream.
    let topic = kafka.topic("revoked", 1);
    let failed_before = kafka.log_count("invalid credentials with SASL mechanism SCRAM-SHA-256");
    let producer = Producer::new(&config(
        &kafka.sasl_ssl,
        &login(kafka, Listener::SaslSsl, "sasl.mechanism", "SCRAM-SHA-256", "bob", "bob-secret"),
        &[("delivery.timeout.ms", "60000"), ("max.block.ms", "30000")],
    ))
    .unwrap();
    producer
        .send(OwnedRecord::new(topic.as_str()).value("revoked-first"))
        .await
        .expect("bob may log in at first");
    let revoke = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(2));
        kafka.delete_scram("bob", "SCRAM-SHA-256");
        Instant::now()
    });
    // A refusal may come back from the send or in a report (as Java's send returns a future
    // that fails): stream with callbacks until either says no, for at most 20 s.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<(), Error>)>();
    let begin = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0usize;
    let mut reports = Vec::new();
    let mut first_refusal: Option<(Error, Duration, &str)> = None;
    'stream: while begin.elapsed() < Duration::from_secs(20) {
        tick.tick().await;
        for _ in 0..10 {
            let i = sent;
            let tx = tx.clone();
            let record = OwnedRecord::new(topic.as_str()).value(format!("revoked-{i}"));
            match producer.send_with_callback(record, move |r| drop(tx.send((i, r.map(|_| ()))))).await {
                Ok(()) => sent += 1,
                Err(e) => {
                    first_refusal = Some((e.error, begin.elapsed(), "send"));
                    break 'stream;
                }
            }
        }
        while let Ok((i, r)) = rx.try_recv() {
            if let Err(e) = &r {
                first_refusal.get_or_insert_with(|| (e.clone(), begin.elapsed(), "report"));
            }
            reports.push((i, r));
        }
        if first_refusal.is_some() {
            break;
        }
    }
    let revoked_at = revoke.await.unwrap();
    let Some((first, at, how)) = first_refusal else {
        let (metrics, health) = (producer.metrics().await, producer.health().await);
        panic!(
            "{sent} sends accepted and none refused, the last {:?} after bob's credential was deleted; \
             {health:?}; {metrics:?}\n{}",
            revoked_at.elapsed(),
            kafka.log_tail(6)
        );
    };
    assert!(is_auth_failure(&first), "the first refusal ({how}, {at:?} in): {first:?}");
    assert!(at < Duration::from_secs(12), "refused only {at:?} into the stream ({how})");
    // From now on a send fails at once, with the reason.
    let again = Instant::now();
    let later = producer
        .send(OwnedRecord::new(topic.as_str()).value("revoked-later"))
        .await
        .expect_err("a send after the refusal");
    assert!(is_auth_failure(&later), "a send after the refusal: {later:?}");
    assert!(again.elapsed() < Duration::from_secs(1), "a send after the refusal took {:?}", again.elapsed());
    let health = producer.health().await;
    let mut messages: Vec<String> = [&first, &later]
        .into_iter()
        .filter_map(|e| if let Error::Authentication(m) = e { Some(m.to_string()) } else { None })
        .collect();
    messages.extend(health.fatal.clone());
    assert!(!messages.is_empty(), "no authentication message anywhere: {first:?}, {later:?}, {health:?}");
    for m in &messages {
        for needle in ["SCRAM-SHA-256", "bob"] {
            assert!(m.contains(needle), "{m:?} does not name {needle:?}");
        }
        assert!(!m.contains("bob-secret"), "the message shows the password: {m}");
    }

    // Every record accepted gets one report within 10 s of the refusal: delivered, or failed
    // for the authentication (not left to delivery.timeout.ms, 60 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while reports.len() < sent {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(report) => reports.push(report),
            Err(_) => panic!(
                "{} of {sent} records unreported 10 s after the refusal; {:?}",
                sent - reports.len(),
                producer.metrics().await
            ),
        }
    }
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut delivered = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for (i, r) in &reports {
        assert!(reported.insert(*i), "record {i} reported twice");
        match r {
            Ok(()) => {
                delivered.insert(format!("revoked-{i}").into_bytes());
                *outcomes.entry("delivered").or_default() += 1;
            }
            Err(e) if is_auth_failure(e) => *outcomes.entry("authentication").or_default() += 1,
            Err(e) => panic!("record {i} failed otherwise: {e:?}"),
        }
    }
    eprintln!(
        "revocation: first refused ({how}) {at:?} into the stream, {:?} after the deletion; reports {outcomes:?}; {:?}",
        at.saturating_sub(revoked_at.saturating_duration_since(begin)),
        producer.metrics().await
    );
    producer.close(Duration::from_secs(1)).await;
    let n = sent;
    let attempts = kafka.log_count("invalid credentials with SASL mechanism SCRAM-SHA-256") - failed_before;
    assert!((1..=3).contains(&attempts), "{attempts} failed authentications after the revocation");

    // Everything reported delivered is on the log (a record reported failed may be there too:
    // its Produce may have landed before the connection closed), and nothing else.
    let read = consume_at_least(&kafka.plaintext, &[&topic], delivered.len() + 1, Consumer::Confluent);
    assert!(read.len() <= n + 1, "{} records on the log, {} sent", read.len(), n + 1);
    let values: BTreeSet<Vec<u8>> = read.into_iter().filter_map(|r| r.value).collect();
    for v in &delivered {
        assert!(values.contains(v), "{} reported delivered, not on the log", String::from_utf8_lossy(v));
    }
}

// ---------------------------------------------------------------------------------------------
// configuration refused before any connection

/// Each case is checked and every problem reported together.
#[test]
fn bad_sasl_settings_are_errors_that_name_the_property_and_hide_the_password() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let long = format!("hunter2{}", "x".repeat(300));
    let krb5 = r#"com.sun.security.auth.module.Krb5LoginModule required password="hunter2";"#;
    let unterminated =
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required password="hunter2""#;
    let sasl = ("security.protocol", "SASL_PLAINTEXT");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![sasl], "sasl.mechanism"),
        (vec![sasl, ("sasl.mechanism", "GSSAPI")], "sasl.mechanism"),
        (vec![("security.protocol", "SASL_SSL"), ("sasl.mechanisms", "SCRAM-SHA-1")], "sasl.mechanism"),
        (vec![sasl, ("sasl.mechanism", "SCRAM-SHA-256"), ("sasl.password", "hunter2")], "sasl.username"),
        (
            vec![("sasl.mechanism", "PLAIN"), ("sasl.username", "a"), ("sasl.password", "hunter2")],
            "security.protocol",
        ),
        (
            vec![sasl, ("sasl.mechanism", "PLAIN"), ("sasl.username", "a"), ("sasl.password", &long)],
            "sasl.password",
        ),
        (
            vec![sasl, ("sasl.mechanism", "OAUTHBEARER"), ("enable.sasl.oauthbearer.unsecure.jwt", "true")],
            "sasl.oauthbearer.config",
        ),
        (vec![sasl, ("sasl.mechanism", "PLAIN"), ("sasl.jaas.config", krb5)], "sasl.jaas.config"),
        (vec![sasl, ("sasl.mechanism", "PLAIN"), ("sasl.jaas.config", unterminated)], "sasl.jaas.config"),
    ];
    let mut problems = Vec::new();
    for (raw, needle) in &cases {
        let props: Vec<String> =
            raw.iter().map(|(k, v)| format!("{k}={}", if v.len() > 90 { "<long>" } else { v })).collect();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:9");
        for (k, v) in raw {
            c.set(*k, *v);
        }
        match Producer::new(&c) {
            Ok(_) => problems.push(format!("{props:?}: accepted")),
            Err(e) => {
                let err = e.to_string();
                if !err.contains(needle) {
                    problems.push(format!("{props:?}: does not name {needle}: {err}"));
                }
                if err.contains("hunter2") || format!("{e:?}").contains("hunter2") {
                    problems.push(format!("{props:?}: shows the password: {err}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// librdkafka and Java redact secrets when they print a configuration: so must `ClientConfig`'s
/// `Debug` (it lands in logs through `{:?}` of anything that holds one).
#[test]
fn client_config_debug_hides_the_password() {
    let mut c = ClientConfig::new();
    c.set("sasl.password", "hunter2").set(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="hunter3";"#,
    );
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("hunter3"), "{debug}");
}
