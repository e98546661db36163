//! Hostile broker bytes: a 2 GiB length prefix, a truncated frame, a wrong correlation id, an
//! answer shaped for another API, garbage after a frame. Each closes that connection with a
//! typed error (or times the request out), uses no more memory than the producer was given,
//! never panics, and the records in flight are retried, not lost: every record is delivered
//! exactly once, in order.

use picokafka::{Config, ConnError, Instant};
use picokafka_tests::sim::net::{
    bootstrap_of, Capacity, Expect, Fault, Hostile, Memory, NetConfig, RecordSpec, Sim,
};
use picokafka_tests::sim::SimCluster;

fn run(kind: Hostile) -> (Option<ConnError>, String) {
    let mut cluster = SimCluster::new(&[0, 1]);
    cluster.create_topic("events", 2, &[0, 1]);
    let mut config = Config::new(&bootstrap_of(&cluster)).unwrap();
    config.set("linger.ms", "2").unwrap();
    config.set("request.timeout.ms", "2000").unwrap();
    config.set("delivery.timeout.ms", "60000").unwrap();
    let mut mem = Memory::new(Capacity::small(8, 2048));
    let mut sim = Sim::new(config.clone(), mem.storage(), cluster, NetConfig::simple(7)).unwrap();
    for i in 0..200u64 {
        let at = Instant::from_millis(i * 5);
        sim.enqueue(at, RecordSpec::new("events").key(format!("k{}", i % 7)).value(format!("v{i}")));
    }
    // Once the producer is up and producing, one answer goes bad.
    sim.schedule(300, Fault::Hostile { broker: None, kind });
    assert!(sim.run_to_completion(120_000), "did not finish\n{}", sim.transcript_text());
    let problems = sim.verify(Expect { all_delivered: true, ..Expect::for_config(&config) });
    assert!(problems.is_empty(), "{kind:?}: {problems:?}\n{}", sim.transcript_text());
    let m = sim.producer.metrics();
    assert!(m.batches_in_use <= m.batch_capacity);
    assert_eq!(m.records_delivered, 200, "{kind:?}");
    (m.last_connection_error, sim.transcript_text())
}

#[test]
fn length_prefix_of_two_gib_closes_the_connection() {
    let (error, t) = run(Hostile::HugeLength);
    assert!(matches!(error, Some(ConnError::FrameTooLarge { size: 2_147_483_647, .. })), "{error:?}\n{t}");
}

#[test]
fn truncated_frame_times_the_request_out() {
    let (error, t) = run(Hostile::Truncated);
    assert_eq!(error, Some(ConnError::RequestTimeout), "{t}");
}

#[test]
fn wrong_correlation_id_closes_the_connection() {
    let (error, t) = run(Hostile::WrongCorrelationId);
    assert!(matches!(error, Some(ConnError::UnexpectedCorrelationId(_))), "{error:?}\n{t}");
}

#[test]
fn answer_for_another_api_is_malformed_or_retried() {
    // An ApiVersions v0 body where a Produce answer belongs. Decoders ignore trailing bytes (as
    // the Java client does), so it may read as a Produce answer naming no partition: then every
    // batch of that request is sent again, as Kafka always answers every partition. Either way
    // nothing is lost (`run` checks every record is delivered exactly once).
    let (error, t) = run(Hostile::ForeignApi);
    assert!(matches!(error, None | Some(ConnError::Malformed(_))), "{error:?}\n{t}");
    assert!(t.contains("hostile bytes: ForeignApi"), "the fault happened\n{t}");
}

#[test]
fn garbage_after_a_frame_closes_the_connection() {
    let (error, t) = run(Hostile::GarbageAfter);
    assert!(
        matches!(error, Some(ConnError::UnexpectedCorrelationId(_) | ConnError::FrameTooLarge { .. })),
        "{error:?}\n{t}"
    );
}
