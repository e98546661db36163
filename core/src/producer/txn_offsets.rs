//! The consumer offsets of `send_offsets_to_transaction`, kept from the call until the group
//! coordinator has them (AddOffsetsToTxn, FindCoordinator for the group, TxnOffsetCommit), in
//! fixed memory: the group's identity and the offsets in a byte list.

use heapless::{String, Vec};

use crate::protocol::txn_offset_commit::PartitionOffset;

/// Longest group id, member id and group instance id kept.
pub const GROUP_ID_MAX: usize = if cfg!(feature = "std") { 255 } else { 64 };
/// Bytes for the offsets of one `send_offsets_to_transaction`: each takes its topic name's
/// length plus 13.
pub const OFFSETS_MAX: usize = if cfg!(feature = "std") { 8192 } else { 512 };

/// One consumed partition's next offset, as `send_offsets_to_transaction` takes it: the offset
/// of the next record to consume (the last processed one's plus one), as in every client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicPartitionOffset<'a> {
    /// The consumed topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// The offset to commit.
    pub offset: i64,
}

/// The consumer group the offsets are for, as the consumer's `group_metadata()` gives it.
/// `generation_id` -1 and an empty `member_id` when unknown (the coordinator then checks
/// nothing of the member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMetadata<'a> {
    /// `group.id`.
    pub group_id: &'a str,
    /// The consumer's generation, -1 if unknown.
    pub generation_id: i32,
    /// The consumer's member id, empty if unknown.
    pub member_id: &'a str,
    /// The consumer's `group.instance.id`, if static membership.
    pub group_instance_id: Option<&'a str>,
}

impl<'a> GroupMetadata<'a> {
    /// Only the group id: the coordinator does not check the member's generation.
    pub fn new(group_id: &'a str) -> Self {
        Self { group_id, generation_id: -1, member_id: "", group_instance_id: None }
    }
}

/// Where the offsets are on their way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetStep {
    Idle,
    /// AddOffsetsToTxn to the transaction coordinator.
    AddToTxn,
    /// FindCoordinator for the group.
    FindCoordinator,
    /// TxnOffsetCommit to the group coordinator.
    Commit,
}

/// Offsets on their way into the transaction.
#[derive(Debug)]
pub(crate) struct Offsets {
    step: OffsetStep,
    group_node: Option<i32>,
    pub(crate) group_id: String<GROUP_ID_MAX>,
    pub(crate) generation_id: i32,
    pub(crate) member_id: String<GROUP_ID_MAX>,
    pub(crate) group_instance_id: Option<String<GROUP_ID_MAX>>,
    /// Each entry: topic length (u8), topic, partition (i32 BE), offset (i64 BE).
    list: Vec<u8, OFFSETS_MAX>,
}

impl Offsets {
    pub(crate) const fn new() -> Self {
        Self {
            step: OffsetStep::Idle,
            group_node: None,
            group_id: String::new(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            list: Vec::new(),
        }
    }

    pub(crate) fn step(&self) -> OffsetStep {
        self.step
    }

    /// Offsets are on their way.
    pub(crate) fn busy(&self) -> bool {
        self.step != OffsetStep::Idle
    }

    pub(crate) fn group_node(&self) -> Option<i32> {
        self.group_node.filter(|_| self.busy())
    }

    /// Keeps `group` and `offsets` for the requests; refused (and nothing kept) if they do not
    /// fit.
    pub(crate) fn store(
        &mut self,
        group: &GroupMetadata<'_>,
        offsets: &[TopicPartitionOffset<'_>],
    ) -> Result<(), &'static str> {
        let too_long = "group id, member id or group instance id longer than GROUP_ID_MAX";
        let group_id = String::try_from(group.group_id).map_err(|_| too_long)?;
        let member_id = String::try_from(group.member_id).map_err(|_| too_long)?;
        let group_instance_id = match group.group_instance_id {
            Some(id) => Some(String::try_from(id).map_err(|_| too_long)?),
            None => None,
        };
        let mut list = Vec::new();
        for o in offsets {
            let name = o.topic.as_bytes();
            let len = u8::try_from(name.len()).map_err(|_| "topic name longer than 255 bytes")?;
            let fits = list.push(len).is_ok()
                && list.extend_from_slice(name).is_ok()
                && list.extend_from_slice(&o.partition.to_be_bytes()).is_ok()
                && list.extend_from_slice(&o.offset.to_be_bytes()).is_ok();
            if !fits {
                return Err("offsets exceed OFFSETS_MAX bytes");
            }
        }
        self.group_id = group_id;
        self.generation_id = group.generation_id;
        self.member_id = member_id;
        self.group_instance_id = group_instance_id;
        self.list = list;
        self.step = OffsetStep::AddToTxn;
        Ok(())
    }

    /// AddOffsetsToTxn succeeded: find the group's coordinator.
    ///
    /// Each step moves on only from the step it answers: an answer that comes after the
    /// offsets were cancelled (the transaction became abortable, or was aborted, while the
    /// request was in flight) must not revive them, or a later transaction would commit the
    /// aborted one's offsets (the simulation found it).
    pub(crate) fn added(&mut self) {
        if self.step == OffsetStep::AddToTxn {
            self.step = OffsetStep::FindCoordinator;
        }
    }

    pub(crate) fn coordinator_found(&mut self, node: i32) {
        if self.step == OffsetStep::FindCoordinator {
            self.group_node = Some(node);
            self.step = OffsetStep::Commit;
        }
    }

    /// The group coordinator moved: find it again.
    pub(crate) fn coordinator_lost(&mut self) {
        if self.step == OffsetStep::Commit {
            self.group_node = None;
            self.step = OffsetStep::FindCoordinator;
        }
    }

    pub(crate) fn cancel(&mut self) {
        self.step = OffsetStep::Idle;
        self.group_node = None;
    }

    /// The offsets as (partition, offset) entries with their topic.
    fn entries(&self) -> impl Iterator<Item = (&str, i32, i64)> + Clone {
        let mut at = 0;
        let list = &self.list;
        core::iter::from_fn(move || {
            let len = usize::from(*list.get(at)?);
            let name = core::str::from_utf8(list.get(at + 1..at + 1 + len)?).ok()?;
            let p = at + 1 + len;
            let partition = i32::from_be_bytes(list.get(p..p + 4)?.try_into().ok()?);
            let offset = i64::from_be_bytes(list.get(p + 4..p + 12)?.try_into().ok()?);
            at = p + 12;
            Some((name, partition, offset))
        })
    }

    /// The offsets grouped by topic, as TxnOffsetCommit's topic array needs them: each topic at
    /// its first appearance, with all its partitions.
    #[allow(clippy::type_complexity)]
    pub(crate) fn by_topic(
        &self,
    ) -> impl Iterator<Item = (&str, impl Iterator<Item = PartitionOffset<'_>> + Clone)> + Clone {
        let entries = self.entries();
        entries.clone().enumerate().filter_map(move |(i, (topic, ..))| {
            let first = entries.clone().position(|(t, ..)| t == topic) == Some(i);
            first.then(|| {
                let partitions =
                    entries.clone().filter(move |(t, ..)| *t == topic).map(|(_, p, o)| PartitionOffset {
                        partition_index: p,
                        committed_offset: o,
                        committed_leader_epoch: -1,
                        committed_metadata: None,
                    });
                (topic, partitions)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_come_back_grouped_by_topic_in_first_appearance_order() {
        let mut o = Offsets::new();
        let list = [
            TopicPartitionOffset { topic: "in", partition: 0, offset: 10 },
            TopicPartitionOffset { topic: "other", partition: 2, offset: 7 },
            TopicPartitionOffset { topic: "in", partition: 1, offset: 11 },
        ];
        o.store(&GroupMetadata::new("g"), &list).unwrap();
        let grouped: std::vec::Vec<(&str, std::vec::Vec<(i32, i64)>)> = o
            .by_topic()
            .map(|(t, ps)| (t, ps.map(|p| (p.partition_index, p.committed_offset)).collect()))
            .collect();
        assert_eq!(grouped, [("in", std::vec![(0, 10), (1, 11)]), ("other", std::vec![(2, 7)])]);
        assert_eq!(o.step(), OffsetStep::AddToTxn);
    }

    #[test]
    fn offsets_that_do_not_fit_are_refused_and_nothing_is_kept() {
        let mut o = Offsets::new();
        let long = "x".repeat(GROUP_ID_MAX + 1);
        assert!(o.store(&GroupMetadata::new(&long), &[]).is_err());
        let many = [TopicPartitionOffset { topic: "t", partition: 0, offset: 0 }; OFFSETS_MAX / 14 + 1];
        assert!(o.store(&GroupMetadata::new("g"), &many).is_err());
        assert!(!o.busy());
    }
}
