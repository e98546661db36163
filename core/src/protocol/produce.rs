//! Produce (key 0): record batches to partition leaders.
//!
//! Versions 3–12 (RecordBatch v2 only; flexible from v9; v10 adds the new leader to
//! NOT_LEADER_OR_FOLLOWER answers, KIP-951; v12 is v11 on the wire, but with the cluster's
//! `transaction.version` at 2 a transactional batch sent at v12 adds its partition to the
//! transaction itself, KIP-890 part 2; a transactional producer on the classic protocol stays
//! at v11).
//!
//! The request can be written in pieces (`encode_start`, `encode_topic`, `encode_partition`,
//! `encode_topic_end`, `encode_end`) so that a producer can stream batches that live in separate
//! buffers; [`ProduceRequest`] strings the pieces together for callers that hold slices.

use super::codec::{Array, DecodeError, Reader, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// Lowest Produce version spoken: v3, the first with RecordBatch v2.
pub const MIN_VERSION: i16 = 3;
/// Highest Produce version spoken.
pub const MAX_VERSION: i16 = 12;

const fn flexible(version: i16) -> bool {
    version >= 9
}

/// Request fields before the topic array; then the topic array's length.
pub fn encode_start(
    w: &mut Writer<'_>,
    version: i16,
    transactional_id: Option<&str>,
    acks: i16,
    timeout_ms: i32,
    topic_count: usize,
) {
    w.put_nullable_string(transactional_id, flexible(version));
    w.put_i16(acks);
    w.put_i32(timeout_ms);
    w.put_array_len(Some(topic_count), flexible(version));
}

/// A topic's name and the length of its partition array.
pub fn encode_topic(w: &mut Writer<'_>, version: i16, name: &str, partition_count: usize) {
    w.put_string(name, flexible(version));
    w.put_array_len(Some(partition_count), flexible(version));
}

/// One partition and its record batch bytes.
pub fn encode_partition(w: &mut Writer<'_>, version: i16, index: i32, records: &[u8]) {
    w.put_i32(index);
    w.put_nullable_bytes(Some(records), flexible(version));
    if flexible(version) {
        w.put_empty_tags();
    }
}

/// Ends a topic's entry (its tagged fields, when flexible).
pub fn encode_topic_end(w: &mut Writer<'_>, version: i16) {
    if flexible(version) {
        w.put_empty_tags();
    }
}

/// Ends the request (its tagged fields, when flexible).
pub fn encode_end(w: &mut Writer<'_>, version: i16) {
    if flexible(version) {
        w.put_empty_tags();
    }
}

/// One partition's data in a [`ProduceRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionData<'a> {
    /// `PartitionIndex`: the partition to write to.
    pub index: i32,
    /// One or more encoded record batches.
    pub records: &'a [u8],
}

/// One topic's data in a [`ProduceRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicData<'a> {
    /// `Name`: the topic's name.
    pub name: &'a str,
    /// `Partitions`: the data for each partition of the topic.
    pub partitions: &'a [PartitionData<'a>],
}

/// A Produce request over borrowed slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceRequest<'a> {
    /// `TransactionalId`, or null when the producer is not transactional.
    pub transactional_id: Option<&'a str>,
    /// 0, 1 or -1 (all in-sync replicas).
    pub acks: i16,
    /// `TimeoutMs`: how long the broker waits for the replication `acks` asks for.
    pub timeout_ms: i32,
    /// `Topics`: the data for each topic.
    pub topics: &'a [TopicData<'a>],
}

impl Request for ProduceRequest<'_> {
    const API_KEY: ApiKey = ApiKey::Produce;
    const MIN_VERSION: i16 = MIN_VERSION;
    const MAX_VERSION: i16 = MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        encode_start(w, version, self.transactional_id, self.acks, self.timeout_ms, self.topics.len());
        for t in self.topics {
            encode_topic(w, version, t.name, t.partitions.len());
            for p in t.partitions {
                encode_partition(w, version, p.index, p.records);
            }
            encode_topic_end(w, version);
        }
        encode_end(w, version);
    }
}

/// A record the broker rejected, which made it drop the whole batch (v8+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordError<'a> {
    /// `BatchIndex`: the record's position in its batch.
    pub batch_index: i32,
    /// `BatchIndexErrorMessage`: why the record was rejected, if the broker says.
    pub message: Option<&'a str>,
}

fn decode_record_error<'a>(r: &mut Reader<'a>, version: i16) -> Result<RecordError<'a>, DecodeError> {
    let batch_index = r.get_i32()?;
    let message = r.get_nullable_string(flexible(version))?;
    if flexible(version) {
        r.get_tags()?;
    }
    Ok(RecordError { batch_index, message })
}

/// The leader a broker names when it answers NOT_LEADER_OR_FOLLOWER (v10+, tagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeaderIdAndEpoch {
    /// `LeaderId`: the current leader's broker id, -1 if unknown.
    pub leader_id: i32,
    /// `LeaderEpoch`: the current leader's epoch, -1 if unknown.
    pub leader_epoch: i32,
}

/// One partition's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionResponse<'a> {
    /// `PartitionIndex`: the partition.
    pub index: i32,
    /// `ErrorCode`: NONE, or why the batch was not written.
    pub error_code: ErrorCode,
    /// Offset of the first record of the batch.
    pub base_offset: i64,
    /// The broker's append time if the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// `LogStartOffset` (v5+): the partition's first offset, -1 if unknown.
    pub log_start_offset: i64,
    /// `RecordErrors` (v8+): the records that made the broker drop the batch.
    pub record_errors: Array<'a, RecordError<'a>>,
    /// `ErrorMessage` (v8+): the broker's summary of why the batch was dropped.
    pub error_message: Option<&'a str>,
    /// `CurrentLeader` (v10+, tagged): the leader to use instead, with NOT_LEADER_OR_FOLLOWER.
    pub current_leader: Option<LeaderIdAndEpoch>,
}

fn decode_partition_response<'a>(
    r: &mut Reader<'a>,
    version: i16,
) -> Result<PartitionResponse<'a>, DecodeError> {
    let flex = flexible(version);
    let index = r.get_i32()?;
    let error_code = ErrorCode::from(r.get_i16()?);
    let base_offset = r.get_i64()?;
    let log_append_time_ms = r.get_i64()?;
    let log_start_offset = if version >= 5 { r.get_i64()? } else { -1 };
    let (record_errors, error_message) = if version >= 8 {
        (Array::decode(r, version, flex, 5, decode_record_error)?, r.get_nullable_string(flex)?)
    } else {
        (Array::decode_elements(r, 0, version, decode_record_error)?, None)
    };
    let mut current_leader = None;
    if flex {
        if let Some(data) = r.get_tags()?.get(0) {
            let mut t = Reader::new(data);
            current_leader = Some(LeaderIdAndEpoch { leader_id: t.get_i32()?, leader_epoch: t.get_i32()? });
            t.get_tags()?;
            t.expect_end()?;
        }
    }
    Ok(PartitionResponse {
        index,
        error_code,
        base_offset,
        log_append_time_ms,
        log_start_offset,
        record_errors,
        error_message,
        current_leader,
    })
}

/// One topic's outcomes.
#[derive(Debug, Clone, Copy)]
pub struct TopicResponse<'a> {
    /// `Name`: the topic's name.
    pub name: &'a str,
    /// `Partitions`: each partition's outcome.
    pub partitions: Array<'a, PartitionResponse<'a>>,
}

fn decode_topic_response<'a>(r: &mut Reader<'a>, version: i16) -> Result<TopicResponse<'a>, DecodeError> {
    let name = r.get_string(flexible(version))?;
    let partitions = Array::decode(r, version, flexible(version), 22, decode_partition_response)?;
    if flexible(version) {
        r.get_tags()?;
    }
    Ok(TopicResponse { name, partitions })
}

/// A broker's address as a v10+ response names it (tagged), so that a new leader can be reached
/// before the next Metadata refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeEndpoint<'a> {
    /// `NodeId`: the broker id.
    pub node_id: i32,
    /// `Host`: the broker's host name.
    pub host: &'a str,
    /// `Port`: the broker's port.
    pub port: i32,
    /// `Rack`: the broker's rack, `None` if it has none.
    pub rack: Option<&'a str>,
}

fn decode_node_endpoint<'a>(r: &mut Reader<'a>, _version: i16) -> Result<NodeEndpoint<'a>, DecodeError> {
    let node_id = r.get_i32()?;
    let host = r.get_string(true)?;
    let port = r.get_i32()?;
    let rack = r.get_nullable_string(true)?;
    r.get_tags()?;
    Ok(NodeEndpoint { node_id, host, port, rack })
}

/// Produce response, v3–v12.
#[derive(Debug, Clone, Copy)]
pub struct ProduceResponse<'a> {
    /// `Responses`: each topic's outcomes.
    pub responses: Array<'a, TopicResponse<'a>>,
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `NodeEndpoints` (v10+, tagged): the addresses of the leaders named in `current_leader`.
    pub node_endpoints: Array<'a, NodeEndpoint<'a>>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> ProduceResponse<'a> {
    /// Decodes a response body at `version` (3–12).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 0, version });
        }
        let flex = flexible(version);
        let mut r = Reader::new(body);
        let responses = Array::decode(&mut r, version, flex, 3, decode_topic_response)?;
        let throttle_time_ms = r.get_i32()?;
        let mut node_endpoints = Array::decode_elements(&mut r, 0, version, decode_node_endpoint)?;
        if flex {
            if let Some(data) = r.get_tags()?.get(0) {
                let mut t = Reader::new(data);
                node_endpoints = Array::decode(&mut t, version, true, 11, decode_node_endpoint)?;
                t.expect_end()?;
            }
        }
        Ok(Self { responses, throttle_time_ms, node_endpoints, trailing_bytes: r.remaining() })
    }
}
