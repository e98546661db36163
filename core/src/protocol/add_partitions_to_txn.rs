//! AddPartitionsToTxn (key 24): tells the transaction coordinator which partitions a transaction
//! is about to write to, before the first Produce to each.
//!
//! Versions 0–3, the client's: v2 lets the broker answer PRODUCER_FENCED, v3 is the first
//! flexible version. Kafka's schema keeps v4+ for brokers (a batch of transactions, and
//! `VerifyOnly`, which brokers send one another to check a partition is in a transaction,
//! KIP-890); a client never sends them, so neither does this crate.

use super::codec::{Array, DecodeError, Reader, TaggedFields, Writer};
use super::error_code::ErrorCode;
use super::header::{ApiKey, Request};
use super::topic_errors::decode_topic;
pub use super::topic_errors::{PartitionResult, TopicResult};

/// Lowest AddPartitionsToTxn version spoken.
pub const MIN_VERSION: i16 = 0;
/// Highest AddPartitionsToTxn version spoken: v3, the last a client sends.
pub const MAX_VERSION: i16 = 3;

const fn flexible(version: i16) -> bool {
    version >= 3
}

/// AddPartitionsToTxn request, v0–v3.
///
/// `T` is any cloneable iterator of `(topic, partitions)`, and `P` any cloneable iterator of
/// partition indexes, so the partitions can come from the caller's own tables without being
/// copied into a list: from slices, `pairs.iter().map(|(t, p)| (*t, p.iter().copied()))`.
/// Each iterator is walked twice, once to count and once to write.
#[derive(Debug, Clone)]
pub struct AddPartitionsToTxnRequest<'a, T> {
    /// `V3AndBelowTransactionalId`: the `transactional.id`.
    pub transactional_id: &'a str,
    /// `V3AndBelowProducerId`: the producer id InitProducerId gave.
    pub producer_id: i64,
    /// `V3AndBelowProducerEpoch`: the epoch that goes with it.
    pub producer_epoch: i16,
    /// `V3AndBelowTopics`: each topic's `Name` and `Partitions` to add to the transaction.
    pub topics: T,
}

impl<'n, T, P> Request for AddPartitionsToTxnRequest<'_, T>
where
    T: Iterator<Item = (&'n str, P)> + Clone,
    P: Iterator<Item = i32> + Clone,
{
    const API_KEY: ApiKey = ApiKey::AddPartitionsToTxn;
    const MIN_VERSION: i16 = MIN_VERSION;
    const MAX_VERSION: i16 = MAX_VERSION;

    fn encode(&self, w: &mut Writer<'_>, version: i16) {
        let flex = flexible(version);
        w.put_string(self.transactional_id, flex);
        w.put_i64(self.producer_id);
        w.put_i16(self.producer_epoch);
        w.put_array_len(Some(self.topics.clone().count()), flex);
        for (name, partitions) in self.topics.clone() {
            w.put_string(name, flex);
            w.put_array_len(Some(partitions.clone().count()), flex);
            for index in partitions {
                w.put_i32(index);
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

/// AddPartitionsToTxn response, v0–v3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPartitionsToTxnResponse<'a> {
    /// `ThrottleTimeMs`: how long the broker throttled the request for a quota violation, 0 if
    /// it did not.
    pub throttle_time_ms: i32,
    /// `ResultsByTopicV3AndBelow`: each topic's outcomes.
    pub topics: Array<'a, TopicResult<'a>>,
    /// Tagged fields (v3+), undecoded.
    pub tags: TaggedFields<'a>,
    /// Bytes after the last field, ignored as the Java client ignores them.
    pub trailing_bytes: usize,
}

impl<'a> AddPartitionsToTxnResponse<'a> {
    /// Decodes a response body at `version` (0–3).
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self, DecodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: 24, version });
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

    #[test]
    fn request_from_slices_and_from_tables() {
        let topics: [(&str, &[i32]); 2] = [("ab", &[0, 7]), ("c", &[])];
        let req = AddPartitionsToTxnRequest {
            transactional_id: "tx",
            producer_id: 0x0102,
            producer_epoch: 3,
            topics: topics.iter().map(|(t, p)| (*t, p.iter().copied())),
        };
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        req.encode(&mut w, 0);
        let n = w.finish().unwrap();
        assert_eq!(n, req.encoded_len(0));
        assert_eq!(
            &buf[..n],
            b"\x00\x02tx\x00\x00\x00\x00\x00\x00\x01\x02\x00\x03\
              \x00\x00\x00\x02\
              \x00\x02ab\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x07\
              \x00\x01c\x00\x00\x00\x00"
        );
        let mut w = Writer::new(&mut buf);
        req.encode(&mut w, 3);
        let n = w.finish().unwrap();
        assert_eq!(
            &buf[..n],
            b"\x03tx\x00\x00\x00\x00\x00\x00\x01\x02\x00\x03\
              \x03\
              \x03ab\x03\x00\x00\x00\x00\x00\x00\x00\x07\x00\
              \x02c\x01\x00\
              \x00"
        );

        // From a flat table of (topic slot, partition) pending, grouped by topic on the fly: "c"
        // has nothing pending, so it is left out.
        let names = ["ab", "c"];
        let pending = [(0usize, 0i32), (0, 7)];
        let grouped = AddPartitionsToTxnRequest {
            topics: names.iter().enumerate().filter(|(slot, _)| pending.iter().any(|(s, _)| s == slot)).map(
                |(slot, name)| (*name, pending.iter().filter(move |(s, _)| *s == slot).map(|(_, p)| *p)),
            ),
            transactional_id: "tx",
            producer_id: 0x0102,
            producer_epoch: 3,
        };
        let mut w = Writer::new(&mut buf);
        grouped.encode(&mut w, 3);
        let n = w.finish().unwrap();
        assert_eq!(
            &buf[..n],
            b"\x03tx\x00\x00\x00\x00\x00\x00\x01\x02\x00\x03\
              \x02\
              \x03ab\x03\x00\x00\x00\x00\x00\x00\x00\x07\x00\
              \x00"
        );
    }

    #[test]
    fn response_results() {
        // v3: throttle 1; "t": partition 0 NONE, partition 4 CONCURRENT_TRANSACTIONS.
        let body =
            b"\x00\x00\x00\x01\x02\x02t\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x33\x00\x00\x00";
        let r = AddPartitionsToTxnResponse::decode(body, 3).unwrap();
        assert_eq!(r.throttle_time_ms, 1);
        let mut results = r.results();
        assert_eq!(results.next(), Some(("t", 0, ErrorCode::NoError)));
        assert_eq!(results.next(), Some(("t", 4, ErrorCode::ConcurrentTransactions)));
        assert_eq!(results.next(), None);
        for cut in 0..body.len() {
            assert!(AddPartitionsToTxnResponse::decode(&body[..cut], 3).is_err(), "{cut}");
        }
        // v0: classic arrays, no tags.
        let body = b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x01\x00\x00\x00\x02\x00\x2f";
        let r = AddPartitionsToTxnResponse::decode(body, 0).unwrap();
        assert_eq!(
            r.results().collect::<heapless::Vec<_, 2>>().as_slice(),
            [("t", 2, ErrorCode::InvalidProducerEpoch)]
        );
        for v in [-1, 4, 5] {
            assert!(matches!(
                AddPartitionsToTxnResponse::decode(body, v),
                Err(DecodeError::UnsupportedVersion { api_key: 24, .. })
            ));
        }
    }
}
