//! OAUTHBEARER tokens from the application's callback (librdkafka's
//! `oauthbearer_token_refresh_cb`) on Apache Kafka's SASL_PLAINTEXT listener, whose unsecured
//! validator takes an unsigned JWT: asked for at start and again at 80 % of each token's
//! lifetime while records flow; a failing callback is named in the records' errors and in
//! `health()`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use picokafka_tests::{consume, Consumer, Kafka};
use picokafka_tokio::{ClientConfig, Error, MetadataCause, OAuthBearerToken, OwnedRecord, Producer};

/// An unsigned JWT (`"alg":"none"`) for `sub`, valid for `life` from now: what Kafka's
/// unsecured validator accepts.
fn unsecured_jwt(sub: &str, life: Duration) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = format!(r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#, now + life.as_secs());
    format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), b64.encode(claims))
}

fn config(kafka: &Kafka) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.sasl_plaintext.as_str())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("sasl.oauthbearer.config", "scope=produce");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_asked_for_at_start_and_before_they_expire() {
    let kafka = Kafka::shared();
    let topic = kafka.topic("oauth-refresh", 1);
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let producer = Producer::builder(&config(kafka))
        .oauthbearer_token_refresh(move |config: String| {
            let calls = counted.clone();
            async move {
                assert_eq!(config, "scope=produce", "the callback is given sasl.oauthbearer.config");
                calls.fetch_add(1, Ordering::SeqCst);
                let life = Duration::from_secs(5);
                Ok(OAuthBearerToken { value: unsecured_jwt("alice", life), lifetime: life })
            }
        })
        .build()
        .unwrap();
    // Records for about 9 s: two refreshes fall inside (at 4 s and 8 s), well before expiry
    // (a slow machine may take a while to connect: the token is valid for 5 s).
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(9) {
        producer.send(OwnedRecord::new(topic.as_str()).value(n.to_string())).await.expect("delivered");
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = calls.load(Ordering::SeqCst);
    eprintln!("{n} records in {:?}; the callback was asked {asked} times", started.elapsed());
    assert!((2..=4).contains(&asked), "asked {asked} times in 9 s for 5 s tokens");
    producer.close(Duration::from_secs(10)).await;
    assert_eq!(consume(&kafka.plaintext, &[&topic], n as usize, Consumer::Confluent).len(), n as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_source_is_named() {
    let kafka = Kafka::shared();
    let mut c = config(kafka);
    c.set("max.block.ms", "2000");
    let producer = Producer::builder(&c)
        .oauthbearer_token_refresh(|_| async { Err("identity provider down".to_string()) })
        .build()
        .unwrap();
    let err = producer.send(OwnedRecord::new("t").value("x")).await.unwrap_err();
    let Error::MetadataTimeout { cause: Some(cause), .. } = &err else { panic!("{err:?}") };
    assert_eq!(
        cause,
        &MetadataCause::Token("OAUTHBEARER token refresh failed: identity provider down".into())
    );
    assert_eq!(cause.to_string(), "OAUTHBEARER token refresh failed: identity provider down");
    let health = producer.health().await;
    assert_eq!(
        health.last_error.as_deref(),
        Some("OAUTHBEARER token refresh failed: identity provider down")
    );
    producer.close(Duration::from_millis(100)).await;
}
