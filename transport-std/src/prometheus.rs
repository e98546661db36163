//! A Prometheus endpoint (feature `prometheus`): `GET /metrics` answers the OpenMetrics text
//! format, read from the producer's [`metrics`](Producer::metrics) and
//! [`health`](Producer::health) at each scrape; `GET /health` answers 200 when the producer is
//! healthy and 503 with the reason when not — for a load balancer's or an orchestrator's probe.
//!
//! ```no_run
//! # async fn run(producer: picokafka_tokio::Producer) -> Result<(), picokafka_tokio::Error> {
//! let server = picokafka_tokio::MetricsServer::bind("127.0.0.1:9464", producer).await?;
//! println!("scrape http://{}/metrics", server.local_addr());
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use picokafka::producer::{ConnPhase, LATENCY_BUCKETS_MS};
use picokafka::Metrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::error::{config_error, ConfigErrorKind};
use crate::producer::{Health, Producer};

/// The HTTP listener serving `/metrics` and `/health` for one producer; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free one) and serves until dropped.
    pub async fn bind(addr: impl ToSocketAddrs, producer: Producer) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            config_error(ConfigErrorKind::Environment, None, format!("metrics endpoint: cannot listen: {e}"))
        })?;
        let addr = listener.local_addr().map_err(|e| {
            config_error(ConfigErrorKind::Environment, None, format!("metrics endpoint: {e}"))
        })?;
        let task = tokio::spawn(serve(listener, producer));
        Ok(Self { addr, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, producer: Producer) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let producer = producer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, producer.clone()));
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!("metrics endpoint: {e}");
            }
        });
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    producer: Producer,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != hyper::Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let scrape = Scrape { metrics: producer.metrics().await, health: producer.health().await };
            match encode(scrape) {
                Ok(body) => {
                    reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", body)
                }
                Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "encoding failed\n".into()),
            }
        }
        "/health" => {
            let h = producer.health().await;
            if h.is_healthy() {
                reply(
                    StatusCode::OK,
                    TEXT,
                    format!("healthy: {} of {} brokers ready\n", h.brokers_ready, h.brokers_known),
                )
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("unhealthy: {}\n", unhealthy_reason(&h)))
            }
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "try /metrics or /health\n".into()),
    }
}

/// Why a producer is not healthy, most telling first.
fn unhealthy_reason(h: &Health) -> String {
    match (&h.fatal, &h.last_error) {
        (Some(fatal), _) => fatal.clone(),
        (None, Some(last)) => format!("no broker connection ready ({last})"),
        (None, None) => "no broker connection ready".into(),
    }
}

/// The producer's state at one scrape.
#[derive(Debug)]
struct Scrape {
    metrics: Metrics,
    health: Health,
}

fn encode(scrape: Scrape) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix("picokafka");
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

fn phase_name(phase: ConnPhase) -> &'static str {
    match phase {
        ConnPhase::Unused => "unused",
        ConnPhase::Idle => "idle",
        ConnPhase::Connecting => "connecting",
        ConnPhase::Handshake => "handshake",
        ConnPhase::Authenticating => "authenticating",
        ConnPhase::Ready => "ready",
        ConnPhase::Backoff => "backoff",
        _ => "other",
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let m = &self.metrics;
        let bytes = Some(Unit::Bytes);
        // Counters, named without `_total` (the encoder adds it) and with their unit.
        let counters: [(&str, &str, &Option<Unit>, u64); 16] = [
            ("records_sent", "Records accepted by send", &None, m.records_sent),
            ("records_delivered", "Records acknowledged by their leader", &None, m.records_delivered),
            ("records_failed", "Records that will not be delivered", &None, m.records_failed),
            ("record", "Encoded size of accepted records, before compression", &bytes, m.record_bytes),
            ("written", "Bytes written to brokers", &bytes, m.bytes_written),
            ("read", "Bytes read from brokers", &bytes, m.bytes_read),
            ("batches_created", "Batches opened", &None, m.batches_created),
            ("batches_delivered", "Batches acknowledged", &None, m.batches_delivered),
            ("batches_retried", "Batch sends beyond the first", &None, m.batches_retried),
            ("produce_requests", "Produce requests sent, retries included", &None, m.produce_requests),
            ("metadata_requests", "Metadata requests sent", &None, m.metadata_requests),
            ("connects", "Broker connections established", &None, m.connects),
            ("disconnects", "Broker connections lost or failed", &None, m.disconnects),
            ("authentications", "SASL authentications of new connections", &None, m.authentications),
            ("transactions_committed", "Transactions committed", &None, m.transactions_committed),
            ("transactions_aborted", "Transactions aborted", &None, m.transactions_aborted),
        ];
        for (name, help, unit, value) in counters {
            let metric = ConstCounter::new(value);
            metric.encode(e.encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?)?;
        }
        let h = &self.health;
        let gauges: [(&str, &str, i64); 6] = [
            ("queued_records", "Records accepted and not yet reported", h.queued_records as i64),
            ("requests_in_flight", "Requests awaiting an answer", i64::from(m.requests_in_flight)),
            ("batches_in_use", "Batch buffers holding a batch", i64::from(m.batches_in_use)),
            ("batch_capacity", "Batch buffers in all", i64::from(m.batch_capacity)),
            ("brokers_ready", "Broker connections ready to carry requests", h.brokers_ready as i64),
            (
                "healthy",
                "1 when a broker connection is ready and nothing is fatally wrong",
                i64::from(h.is_healthy()),
            ),
        ];
        for (name, help, value) in gauges {
            let metric = ConstGauge::new(value);
            metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }

        // Request round trips: the core's buckets are per bucket, in milliseconds.
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_MS
            .iter()
            .zip(m.request_latency_buckets)
            .map(|(&ms, n)| (ms as f64 / 1000.0, n))
            .collect();
        let counted: u64 = m.request_latency_buckets.iter().sum();
        // The encoder writes `le="+Inf"` for `f64::MAX`, its own histograms' last bound.
        buckets.push((f64::MAX, m.responses.saturating_sub(counted)));
        let mut hist = e.encode_descriptor(
            "request_latency",
            "Request round trips, from the request's last byte written to its answer",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        hist.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            m.request_latency_sum_ms as f64 / 1000.0,
            m.responses,
            &buckets,
            None,
        )?;

        // Per broker: its connection's state (1 for the state it is in) and requests in flight.
        let mut state = e.encode_descriptor(
            "broker_connection_state",
            "The state of each broker connection (1 for the current one)",
            None,
            MetricType::Gauge,
        )?;
        for b in &h.brokers {
            let labels = [
                ("node_id", b.node_id.to_string()),
                ("address", b.address.clone()),
                ("state", phase_name(b.state).into()),
            ];
            ConstGauge::new(1i64).encode(state.encode_family(&labels)?)?;
        }
        let mut in_flight = e.encode_descriptor(
            "broker_requests_in_flight",
            "Requests awaiting an answer, per broker",
            None,
            MetricType::Gauge,
        )?;
        for b in &h.brokers {
            let labels = [("node_id", b.node_id.to_string()), ("address", b.address.clone())];
            ConstGauge::new(i64::from(b.in_flight)).encode(in_flight.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_text_with_prometheus_names() {
        let mut metrics =
            Metrics { records_sent: 7, records_delivered: 5, responses: 3, ..Metrics::default() };
        metrics.request_latency_buckets[2] = 2; // <= 5 ms
        metrics.request_latency_sum_ms = 9000;
        let health = Health {
            brokers_ready: 1,
            brokers_known: 1,
            queued_records: 2,
            last_error: None,
            fatal: None,
            brokers: vec![crate::producer::BrokerState {
                node_id: 1,
                address: "127.0.0.1:9092".into(),
                state: ConnPhase::Ready,
                in_flight: 1,
            }],
        };
        let text = encode(Scrape { metrics, health }).unwrap();
        for line in [
            "# TYPE picokafka_records_sent counter",
            "picokafka_records_sent_total 7",
            "picokafka_records_delivered_total 5",
            "picokafka_record_bytes_total 0",
            "picokafka_queued_records 2",
            "picokafka_healthy 1",
            "picokafka_request_latency_seconds_bucket{le=\"0.005\"} 2",
            "picokafka_request_latency_seconds_bucket{le=\"+Inf\"} 3",
            "picokafka_request_latency_seconds_count 3",
            "picokafka_request_latency_seconds_sum 9.0",
            "picokafka_broker_connection_state{node_id=\"1\",address=\"127.0.0.1:9092\",state=\"ready\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
