//! Deterministic simulation pieces for state-machine tests.
//!
//! [`cluster`] is the broker side: a simulated Kafka cluster that speaks the wire protocol through
//! the independent `kafka-protocol` crate (never picokafka's codec), so a bug in picokafka's codec
//! cannot hide behind the same bug in the simulated broker. [`net`] is the rest: virtual time, a
//! seeded network with faults, and a harness driving a real `picokafka::Producer` against the cluster.
//! [`sasl`] is the brokers' side of SASL (PLAIN, SCRAM), independent of picokafka's client.
//! [`txn`] is the transaction and group coordinators and the leaders' part of transactions.

pub mod cluster;
pub mod net;
pub mod sasl;
pub mod txn;

pub use cluster::{Quirks, Reply, RequestInfo, SimCluster, StoredBatch, StoredRecord};
pub use txn::TxnMark;
