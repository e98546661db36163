//! Feature `tracing`: the producer's messages, the core's included, arrive as `tracing` events
//! inside the `producer` span (with its client.id) and, for a connection, the `connection` span
//! (with the broker's address) — what a tracing subscriber needs to tell producers apart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use picokafka_tokio::{ClientConfig, OwnedRecord, Producer};

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_through_tracing_in_their_spans() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("picokafka=debug,picokafka_tokio=debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("client.id", "traced-7")
        .set("max.block.ms", "1000");
    let producer = Producer::new(&config).unwrap();
    let _ = producer.send(OwnedRecord::new("t").value("x")).await;
    producer.close(Duration::from_millis(100)).await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    eprintln!("{text}");
    // The transport's event, in both spans, with the address and the socket's error.
    let connect = text
        .lines()
        .find(|l| l.contains(&format!("connect to 127.0.0.1:{port} failed")))
        .unwrap_or_else(|| panic!("no connect event in\n{text}"));
    assert!(connect.contains("producer{client_id=traced-7}"), "{connect}");
    assert!(connect.contains(&format!("connection{{broker=127.0.0.1:{port}}}")), "{connect}");
    // The core's own events come through tracing too, in the producer's span.
    assert!(
        text.lines().any(|l| l.contains("picokafka::") && l.contains("producer{client_id=traced-7}")),
        "no event of the core in\n{text}"
    );
}
