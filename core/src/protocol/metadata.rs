//! Metadata (key 3): brokers, topics, partitions and their leaders.

use super::codec::{Array, DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};

/// Metadata request, v1–v12. `topics: None` asks for every topic.
///
/// `T` is any cloneable iterator of topic names, so callers can pass a slice
/// (`names.iter().copied()`) or names kept in their own fixed storage without copying them.
#[derive(Debug, Clone)]
pub struct MetadataRequest<T> {
    /// `Topics`: the names to describe; `None` (null) asks for every topic.
    pub topics: Option<T>,
    /// `AllowAutoTopicCreation` (v4+): lets the broker create topics that do not exist, if it is
    /// configured to.
    pub allow_auto_topic_creation: bool,
}

impl<'n, T: Iterator<Item = &'n str> + Clone> Request for MetadataRequest<T> {
    const API_KEY: ApiKey = ApiKey::Metadata;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 12;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flexible = version >= 9;
        match &self.topics {
            None => w.put_array_len(None, flexible),
            Some(topics) => {
                w.put_array_len(Some(topics.clone().count()), flexible);
                for name in topics.clone() {
                    if version >= 10 {
                        // Topic id: we address topics by name, so the zero uuid.
                        w.put_uuid(&[0; 16]);
                    }
                    w.put_string(name, flexible);
                    if flexible {
                        w.put_empty_tags();
                    }
                }
            }
        }
        if version >= 4 {
            w.put_bool(self.allow_auto_topic_creation);
        }
        if (8..=10).contains(&version) {
            w.put_bool(false); // include cluster authorized operations
        }
        if version >= 8 {
            w.put_bool(false); // include topic authorized operations
        }
        if flexible {
            w.put_empty_tags();
        }
    }
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broker<'a> {
    /// `NodeId`: the broker id.
    pub node_id: i32,
    /// `Host`: the broker's host name.
    pub host: &'a str,
    /// `Port`: the broker's port.
    pub port: i32,
    /// `Rack`: the broker's rack, `None` if it has none.
    pub rack: Option<&'a str>,
}

fn decode_broker<'a>(r: &mut Reader<'a>, version: i16) -> Result<Broker<'a>, DecodeError> {
    let flexible = version >= 9;
    let node_id = r.get_i32()?;
    let host = r.get_string(flexible)?;
    let port = r.get_i32()?;
    let rack = r.get_nullable_string(flexible)?;
    if flexible {
        r.get_tags()?;
    }
    Ok(Broker { node_id, host, port, rack })
}

/// A partition's leadership as Metadata describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PartitionMetadata<'a> {
    /// `ErrorCode`: the partition's error (LEADER_NOT_AVAILABLE, say), NONE if none.
    pub error_code: ErrorCode,
    /// `PartitionIndex`: the partition's number.
    pub partition_index: i32,
    /// `LeaderId`: the leader's broker id, -1 if there is none.
    pub leader_id: i32,
    /// `LeaderEpoch` (v7+): the partition's leader epoch (KIP-320), -1 if unknown.
    pub leader_epoch: i32,
    /// `ReplicaNodes`: the ids of the brokers that host the partition.
    pub replicas: Array<'a, i32>,
    /// `IsrNodes`: the ids of the replicas in sync with the leader.
    pub isr: Array<'a, i32>,
    /// `OfflineReplicas` (v5+): the ids of the replicas that are offline; empty before v5.
    pub offline_replicas: Array<'a, i32>,
}

fn node_id(r: &mut Reader<'_>, _: i16) -> Result<i32, DecodeError> {
    r.get_i32()
}

fn node_ids<'a>(r: &mut Reader<'a>, version: i16) -> Result<Array<'a, i32>, DecodeError> {
    Array::decode_fixed(r, version, version >= 9, 4, node_id)
}

fn decode_partition<'a>(r: &mut Reader<'a>, version: i16) -> Result<PartitionMetadata<'a>, DecodeError> {
    let flexible = version >= 9;
    let error_code = ErrorCode::from(r.get_i16()?);
    let partition_index = r.get_i32()?;
    let leader_id = r.get_i32()?;
    let leader_epoch = if version >= 7 { r.get_i32()? } else { -1 };
    let replicas = node_ids(r, version)?;
    let isr = node_ids(r, version)?;
    let offline_replicas =
        if version >= 5 { node_ids(r, version)? } else { Array::decode_elements(r, 0, version, node_id)? };
    if flexible {
        r.get_tags()?;
    }
    Ok(PartitionMetadata {
        error_code,
        partition_index,
        leader_id,
        leader_epoch,
        replicas,
        isr,
        offline_replicas,
    })
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone, Copy)]
pub struct TopicMetadata<'a> {
    /// `ErrorCode`: the topic's error (UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED,
    /// ...), NONE if none.
    pub error_code: ErrorCode,
    /// Null only in v12+ responses to requests by topic id, which we never send.
    pub name: Option<&'a str>,
    /// `TopicId` (v10+): the topic's UUID; all zeros before v10.
    pub topic_id: [u8; 16],
    /// `IsInternal`: whether the topic is one Kafka keeps for itself (`__consumer_offsets`, ...).
    pub is_internal: bool,
    /// `Partitions`: each partition of the topic.
    pub partitions: Array<'a, PartitionMetadata<'a>>,
}

fn decode_topic<'a>(r: &mut Reader<'a>, version: i16) -> Result<TopicMetadata<'a>, DecodeError> {
    let flexible = version >= 9;
    let error_code = ErrorCode::from(r.get_i16()?);
    let name = if version >= 12 { r.get_nullable_string(flexible)? } else { Some(r.get_string(flexible)?) };
    let topic_id = if version >= 10 { r.get_uuid()? } else { [0; 16] };
    let is_internal = r.get_bool()?;
    // Smallest partition: error, index, leader, and three empty arrays.
    let partitions = Array::decode(r, version, flexible, 13, decode_partition)?;
    if version >= 8 {
        r.get_i32()?; // topic authorized operations
    }
    if flexible {
        r.get_tags()?;
    }
    Ok(TopicMetadata { error_code, name, topic_id, is_internal, partitions })
}

/// Metadata response, v1–v12.
#[derive(Debug, Clone, Copy)]
pub struct MetadataResponse<'a> {
    /// `ThrottleTimeMs` (v3+): how long the broker throttled the request for a quota violation,
    /// 0 if it did not.
    pub throttle_time_ms: i32,
    /// `Brokers`: the brokers of the cluster.
    pub brokers: Array<'a, Broker<'a>>,
    /// `ClusterId` (v2+): the id of the cluster, if the broker gives one.
    pub cluster_id: Option<&'a str>,
    /// `ControllerId`: the controller's broker id, -1 if unknown.
    pub controller_id: i32,
    /// `Topics`: each topic asked about.
    pub topics: Array<'a, TopicMetadata<'a>>,
    /// Tagged fields (v9+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client and librdkafka ignore them
    /// (librdkafka's mock cluster sends a field v11+ dropped).
    pub trailing_bytes: usize,
}

impl<'a> MetadataResponse<'a> {
    /// Decodes a response body at `version` (1–12).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(1..=12).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 3, version });
        }
        let flexible = version >= 9;
        let mut r = Reader::new(body);
        let throttle_time_ms = if version >= 3 { r.get_i32()? } else { 0 };
        let brokers = Array::decode(&mut r, version, flexible, 10, decode_broker)?;
        let cluster_id = if version >= 2 { r.get_nullable_string(flexible)? } else { None };
        let controller_id = r.get_i32()?;
        let topics = Array::decode(&mut r, version, flexible, 8, decode_topic)?;
        if (8..=10).contains(&version) {
            r.get_i32()?; // cluster authorized operations
        }
        let tags = if flexible { r.get_tags()? } else { TaggedFields::default() };
        Ok(Self {
            throttle_time_ms,
            brokers,
            cluster_id,
            controller_id,
            topics,
            tags,
            trailing_bytes: r.remaining(),
        })
    }

    /// The broker with id `node_id`.
    pub fn broker(&self, node_id: i32) -> Option<Broker<'a>> {
        self.brokers.iter().find(|b| b.node_id == node_id)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<TopicMetadata<'a>> {
        self.topics.iter().find(|t| t.name == Some(name))
    }
}
