//! TxnOffsetCommit (key 28): commits a consumer group's offsets inside a transaction, at the
//! group's coordinator (after AddOffsetsToTxn told the transaction coordinator).
//!
//! Versions 0–5: v2 adds each partition's committed leader epoch, v3 (the first flexible
//! version) adds the consumer's generation, member id and group instance id (KIP-447), which let
//! the group coordinator fence a zombie; v4 lets it answer TRANSACTION_ABORTABLE; v5 (KIP-890
//! part 2) is v4 on the wire, but adds the group to the transaction itself, so no
//! AddOffsetsToTxn goes before it.

use super::codec::{Array, DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};
use super::topic_errors::decode_topic;
pub use super::topic_errors::{PartitionResult, TopicResult};

/// Lowest TxnOffsetCommit version spoken.
pub const MIN_VERSION: i16 = 0;
/// Highest TxnOffsetCommit version spoken.
pub const MAX_VERSION: i16 = 5;

const fn flexible(version: i16) -> bool {
    version >= 3
}

/// One partition's offset to commit (`TxnOffsetCommitRequestPartition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset<'a> {
    /// `PartitionIndex`: the partition.
    pub partition_index: i32,
    /// `CommittedOffset`: the offset to commit, the next one the group should consume.
    pub committed_offset: i64,
    /// `CommittedLeaderEpoch` (v2+): the leader epoch of the last record consumed, -1 if
    /// unknown. Not sent before v2.
    pub committed_leader_epoch: i32,
    /// `CommittedMetadata`: whatever the application keeps with the offset, or null.
    pub committed_metadata: Option<&'a str>,
}

/// TxnOffsetCommit request, v0–v5.
///
/// `T` is any cloneable iterator of `(topic, partitions)`, and `P` any cloneable iterator of
/// [`PartitionOffset`]s; from slices, `topics.iter().map(|(t, p)| (*t, p.iter().copied()))`.
/// Each iterator is walked twice, once to count and once to write.
#[derive(Debug, Clone)]
pub struct TxnOffsetCommitRequest<'a, T> {
    /// `TransactionalId`: the `transactional.id`.
    pub transactional_id: &'a str,
    /// `GroupId`: the consumer group whose offsets are committed.
    pub group_id: &'a str,
    /// `ProducerId`: the producer id InitProducerId gave.
    pub producer_id: i64,
    /// `ProducerEpoch`: the epoch that goes with it.
    pub producer_epoch: i16,
    /// `GenerationId` (v3+): the consumer's generation, -1 if unknown. Not sent before v3.
    pub generation_id: i32,
    /// `MemberId` (v3+): the member id the group coordinator gave the consumer, empty if
    /// unknown. Not sent before v3.
    pub member_id: &'a str,
    /// `GroupInstanceId` (v3+): the consumer's `group.instance.id`, null if it has none. Not
    /// sent before v3.
    pub group_instance_id: Option<&'a str>,
    /// `Topics`: each topic's `Name` and `Partitions`.
    pub topics: T,
}

impl<'n, T, P> Request for TxnOffsetCommitRequest<'_, T>
where
    T: Iterator<Item = (&'n str, P)> + Clone,
    P: Iterator<Item = PartitionOffset<'n>> + Clone,
{
    const API_KEY: ApiKey = ApiKey::TxnOffsetCommit;
    const MIN_VERSION: i16 = MIN_VERSION;
    const MAX_VERSION: i16 = MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flex = flexible(version);
        w.put_string(self.transactional_id, flex);
        w.put_string(self.group_id, flex);
        w.put_i64(self.producer_id);
        w.put_i16(self.producer_epoch);
        if version >= 3 {
            w.put_i32(self.generation_id);
            w.put_string(self.member_id, true);
            w.put_nullable_string(self.group_instance_id, true);
        }
        w.put_array_len(Some(self.topics.clone().count()), flex);
        for (name, partitions) in self.topics.clone() {
            w.put_string(name, flex);
            w.put_array_len(Some(partitions.clone().count()), flex);
            for p in partitions {
                w.put_i32(p.partition_index);
                w.put_i64(p.committed_offset);
                if version >= 2 {
                    w.put_i32(p.committed_leader_epoch);
                }
                w.put_nullable_string(p.committed_metadata, flex);
                if flex {
                    w.put_empty_tags();
                }
            }
            if flex {
                w.put_empty_tags();
            }
        }
        if flex {
            w.put_empty_tags();
        }
    }
}

/// TxnOffsetCommit response, v0–v5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOffsetCommitResponse<'a> {
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `Topics`: each topic's outcomes.
    pub topics: Array<'a, TopicResult<'a>>,
    /// Tagged fields (v3+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> TxnOffsetCommitResponse<'a> {
    /// Decodes a response body at `version` (0–5).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 28, version });
        }
        let flex = flexible(version);
        let mut r = Reader::new(body);
        let throttle_time_ms = r.get_i32()?;
        // Smallest topic: an empty name and an empty partition array (compact, with tags).
        let topics = Array::decode(&mut r, version, flex, 3, decode_topic)?;
        let tags = if flex { r.get_tags()? } else { TaggedFields::default() };
        Ok(Self { throttle_time_ms, topics, tags, trailing_bytes: r.remaining() })
    }

    /// Every partition's outcome, topic by topic: `(topic, partition, error)`.
    pub fn results(&self) -> impl Iterator<Item = (&'a str, i32, ErrorCode)> + 'a {
        super::topic_errors::results(&self.topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: [PartitionOffset<'static>; 2] = [
        PartitionOffset {
            partition_index: 1,
            committed_offset: 0x10,
            committed_leader_epoch: 4,
            committed_metadata: None,
        },
        PartitionOffset {
            partition_index: 2,
            committed_offset: 0x20,
            committed_leader_epoch: -1,
            committed_metadata: Some("m"),
        },
    ];

    fn encode<R: Request>(req: &R, version: i16, buf: &mut [u8]) -> usize {
        let mut w = Writer::new(buf);
        req.encode(&mut w, version);
        let n = w.finish().unwrap();
        assert_eq!(n, req.encoded_len(version));
        n
    }

    #[test]
    fn request_fields_by_version() {
        let topics: [(&str, &[PartitionOffset<'_>]); 1] = [("t", &P)];
        let req = TxnOffsetCommitRequest {
            transactional_id: "x",
            group_id: "g",
            producer_id: 5,
            producer_epoch: 6,
            generation_id: 7,
            member_id: "m1",
            group_instance_id: Some("i"),
            topics: topics.iter().map(|(t, p)| (*t, p.iter().copied())),
        };
        let head0 = b"\x00\x01x\x00\x01g\x00\x00\x00\x00\x00\x00\x00\x05\x00\x06";
        let mut buf = [0u8; 128];

        let n = encode(&req, 0, &mut buf);
        let mut want = head0.to_vec();
        want.extend_from_slice(b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x02");
        want.extend_from_slice(b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x10\xff\xff");
        want.extend_from_slice(b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x20\x00\x01m");
        assert_eq!(&buf[..n], want.as_slice());

        // v2: the leader epochs.
        let n = encode(&req, 2, &mut buf);
        let mut want = head0.to_vec();
        want.extend_from_slice(b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x02");
        want.extend_from_slice(b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x04\xff\xff");
        want.extend_from_slice(b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x20\xff\xff\xff\xff\x00\x01m");
        assert_eq!(&buf[..n], want.as_slice());

        // v3: compact, the group member's identity, tags.
        let n = encode(&req, 3, &mut buf);
        let mut want = b"\x02x\x02g\x00\x00\x00\x00\x00\x00\x00\x05\x00\x06".to_vec();
        want.extend_from_slice(b"\x00\x00\x00\x07\x03m1\x02i");
        want.extend_from_slice(b"\x02\x02t\x03");
        want.extend_from_slice(b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x04\x00\x00");
        want.extend_from_slice(b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x20\xff\xff\xff\xff\x02m\x00");
        want.extend_from_slice(b"\x00\x00");
        assert_eq!(&buf[..n], want.as_slice());
    }

    #[test]
    fn response_results() {
        // v3: "t": partition 1 NONE, partition 2 ILLEGAL_GENERATION; one unknown top-level tag.
        let body = b"\x00\x00\x00\x03\x02\x02t\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02\x00\x16\x00\x00\x01\x09\x00";
        let r = TxnOffsetCommitResponse::decode(body, 3).unwrap();
        assert_eq!(r.throttle_time_ms, 3);
        let results: heapless::Vec<_, 4> = r.results().collect();
        assert_eq!(
            results.as_slice(),
            [("t", 1, ErrorCode::NoError), ("t", 2, ErrorCode::IllegalGeneration)]
        );
        assert_eq!(r.tags.get(9), Some(&[][..]));
        for cut in 0..body.len() {
            assert!(TxnOffsetCommitResponse::decode(&body[..cut], 3).is_err(), "{cut}");
        }
        // v4 and v5 are v3 on the wire.
        for v in [4, 5] {
            let r = TxnOffsetCommitResponse::decode(body, v).unwrap();
            assert_eq!(r.results().count(), 2);
        }
        let v0 = b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x01\x00\x00\x00\x00\x00\x10";
        let r = TxnOffsetCommitResponse::decode(v0, 0).unwrap();
        let results: heapless::Vec<_, 4> = r.results().collect();
        assert_eq!(results.as_slice(), [("t", 0, ErrorCode::NotCoordinator)]);
        for v in [-1, 6] {
            assert!(matches!(
                TxnOffsetCommitResponse::decode(v0, v),
                Err(DecodeError::UnsupportedVersion { api_key: 28, .. })
            ));
        }
    }
}
