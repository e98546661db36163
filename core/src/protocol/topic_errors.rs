//! The answer shape AddPartitionsToTxn and TxnOffsetCommit share: for each topic, for each
//! partition, an error code. Both turn flexible at v3, so one decoder serves both.

use super::codec::{Array, DecodeError, Reader};
use super::error_code::ErrorCode;

/// Both APIs' first flexible version.
const fn flexible(version: i16) -> bool {
    version >= 3
}

/// One partition's outcome (`AddPartitionsToTxnPartitionResult`, `TxnOffsetCommitResponsePartition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PartitionResult {
    /// `PartitionIndex`: the partition.
    pub partition_index: i32,
    /// `ErrorCode`: NONE, or why the partition was not added or its offset not committed.
    pub error_code: ErrorCode,
}

fn decode_partition(r: &mut Reader<'_>, version: i16) -> Result<PartitionResult, DecodeError> {
    let partition_index = r.get_i32()?;
    let error_code = ErrorCode::from(r.get_i16()?);
    if flexible(version) {
        r.get_tags()?;
    }
    Ok(PartitionResult { partition_index, error_code })
}

/// One topic's outcomes (`AddPartitionsToTxnTopicResult`, `TxnOffsetCommitResponseTopic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicResult<'a> {
    /// `Name`: the topic.
    pub name: &'a str,
    /// Each partition's outcome.
    pub partitions: Array<'a, PartitionResult>,
}

pub(crate) fn decode_topic<'a>(r: &mut Reader<'a>, version: i16) -> Result<TopicResult<'a>, DecodeError> {
    let flex = flexible(version);
    let name = r.get_string(flex)?;
    // Smallest partition: index and error code (and an empty tag section when flexible).
    let partitions = Array::decode(r, version, flex, 6, decode_partition)?;
    if flex {
        r.get_tags()?;
    }
    Ok(TopicResult { name, partitions })
}

/// Every partition's outcome, topic by topic: `(topic, partition, error)`.
pub(crate) fn results<'a>(
    topics: &Array<'a, TopicResult<'a>>,
) -> impl Iterator<Item = (&'a str, i32, ErrorCode)> + 'a {
    topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name, p.partition_index, p.error_code)))
}
