//! Topics and their partitions as the producer tracks them: a topic slot per topic in use, a
//! run of partition slots per topic (its leader, its queue of batches, its sequence numbers).
//! Topic slots idle past `metadata.max.idle.ms` with nothing queued are reclaimed; a topic that
//! grows moves to a longer run.

use core::cell::Cell;
use core::ops::{Index, IndexMut};

use heapless::String;

use super::batches::BatchId;
use super::idempotence::PartitionSequence;
use super::timers::Touched;
use super::transactions::Membership;
use crate::protocol::ErrorCode;
use crate::time::{Duration, Instant};

/// Longest topic name Kafka allows.
pub const TOPIC_MAX: usize = 249;

/// "No slot" in the `u16` links between topic and partition slots.
pub(crate) const NIL: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicState {
    Free,
    /// Named by a `send`; no metadata yet.
    Pending,
    /// The broker answered with an error for it.
    Error(ErrorCode),
    /// Partitions `first..first + count` of the partition table.
    Known {
        first: u16,
        count: u16,
    },
}

/// One topic's bookkeeping.
#[derive(Debug, Clone)]
pub struct TopicSlot {
    pub(crate) name: String<TOPIC_MAX>,
    pub(crate) state: TopicState,
    pub(crate) last_used: Instant,
    /// Batch that null-key records currently stick to.
    pub(crate) sticky_batch: Option<BatchId>,
    pub(crate) sticky_partition: i32,
}

impl TopicSlot {
    /// An unused slot, to declare storage with (`[TopicSlot::EMPTY; N]`).
    pub const EMPTY: Self = Self::empty();

    /// `EMPTY`, built by code where it is not a constant: the constant is a 280-byte image in
    /// flash, copied from at each use (the firmware is 220 B smaller without it; for
    /// `PartitionSlot` and `BatchSlot` the code would be larger than their images).
    const fn empty() -> Self {
        Self {
            name: String::new(),
            state: TopicState::Free,
            last_used: Instant::ZERO,
            sticky_batch: None,
            sticky_partition: -1,
        }
    }
}

impl Default for TopicSlot {
    fn default() -> Self {
        Self::empty()
    }
}

/// One partition's bookkeeping: its leader, its queue of batches, its sequence numbers.
#[derive(Debug, Clone)]
pub struct PartitionSlot {
    pub(crate) topic: u16,
    pub(crate) partition: i32,
    /// Leader broker id, -1 when there is none.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    /// Batches in send order.
    pub(crate) head: Option<BatchId>,
    pub(crate) tail: Option<BatchId>,
    /// Its sequence numbers (idempotence).
    pub(crate) seq: PartitionSequence,
    /// Whether it is in the open transaction.
    pub(crate) txn: Membership,
    /// Token namespace: tokens are `uid << 32 | counter`.
    pub(crate) uid: u32,
    pub(crate) next_token: u32,
}

impl PartitionSlot {
    /// An unused slot, to declare storage with (`[PartitionSlot::EMPTY; N]`).
    pub const EMPTY: Self = Self {
        topic: NIL,
        partition: -1,
        leader: -1,
        leader_epoch: -1,
        head: None,
        tail: None,
        seq: PartitionSequence::EMPTY,
        txn: Membership::Outside,
        uid: 0,
        next_token: 0,
    };

    pub(crate) fn is_free(&self) -> bool {
        self.topic == NIL
    }
}

impl Default for PartitionSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// The topic slots.
pub(crate) struct TopicTable<'a> {
    slots: &'a mut [TopicSlot],
}

impl<'a> TopicTable<'a> {
    /// Clears every slot; at most 64 (topics are asked for as a bit mask).
    pub(crate) fn new(slots: &'a mut [TopicSlot]) -> Self {
        for slot in slots.iter_mut() {
            *slot = TopicSlot::empty();
        }
        Self { slots }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn iter(&self) -> core::slice::Iter<'_, TopicSlot> {
        self.slots.iter()
    }

    /// The slot of topic `name`, marked used at `now`.
    pub(crate) fn find(&mut self, now: Instant, name: &str) -> Option<usize> {
        let i = self.slots.iter().position(|t| t.state != TopicState::Free && t.name == name)?;
        self.slots[i].last_used = now;
        Some(i)
    }

    /// A slot for new topic `name`, waiting for metadata: a free one or, when `may_reclaim`,
    /// one idle for `idle` with nothing queued (released with its partitions).
    pub(crate) fn add(
        &mut self,
        now: Instant,
        name: &str,
        partitions: &mut PartitionTable<'_>,
        may_reclaim: bool,
        idle: Duration,
    ) -> Option<usize> {
        let name = String::try_from(name).ok()?;
        let i = match self.slots.iter().position(|t| t.state == TopicState::Free) {
            Some(i) => i,
            None if may_reclaim => {
                let i = (0..self.slots.len()).find(|&i| {
                    now.saturating_since(self.slots[i].last_used) >= idle && !self.has_batches(i, partitions)
                })?;
                self.release(i, partitions);
                i
            }
            None => return None,
        };
        self.slots[i] = TopicSlot { name, state: TopicState::Pending, last_used: now, ..TopicSlot::empty() };
        Some(i)
    }

    /// Whether topic `t` has a batch queued on any partition.
    pub(crate) fn has_batches(&self, t: usize, partitions: &PartitionTable<'_>) -> bool {
        match self.slots[t].state {
            TopicState::Known { first, count } => {
                (first..first + count).any(|p| partitions[usize::from(p)].head.is_some())
            }
            _ => false,
        }
    }

    /// Forgets topic `t` and its partitions.
    pub(crate) fn release(&mut self, t: usize, partitions: &mut PartitionTable<'_>) {
        if let TopicState::Known { first, count } = self.slots[t].state {
            for p in first..first + count {
                partitions[usize::from(p)] = PartitionSlot::EMPTY;
            }
        }
        self.slots[t] = TopicSlot::empty();
    }

    /// The topics to ask Metadata about, a bit per slot: every topic used within `idle`, or
    /// with batches queued.
    pub(crate) fn in_use(&self, now: Instant, idle: Duration, partitions: &PartitionTable<'_>) -> u64 {
        let mut mask = 0u64;
        for (t, slot) in self.slots.iter().enumerate() {
            let in_use = now.saturating_since(slot.last_used) < idle || self.has_batches(t, partitions);
            if slot.state != TopicState::Free && in_use {
                mask |= 1 << t;
            }
        }
        mask
    }
}

impl Index<usize> for TopicTable<'_> {
    type Output = TopicSlot;
    fn index(&self, t: usize) -> &TopicSlot {
        &self.slots[t]
    }
}

impl IndexMut<usize> for TopicTable<'_> {
    fn index_mut(&mut self, t: usize) -> &mut TopicSlot {
        &mut self.slots[t]
    }
}

/// The partition slots, in runs of one topic each.
pub(crate) struct PartitionTable<'a> {
    slots: &'a mut [PartitionSlot],
    /// The next token namespace: a partition slot's tokens stay unique even after the slot is
    /// reused for another partition.
    next_uid: u32,
    /// The slots changed since the timer table last looked (see `timers`).
    touched: Cell<Touched>,
    /// One past the highest slot ever allocated: scans of the slots in use stop there.
    high: usize,
}

impl<'a> PartitionTable<'a> {
    pub(crate) fn new(slots: &'a mut [PartitionSlot]) -> Self {
        for slot in slots.iter_mut() {
            *slot = PartitionSlot::EMPTY;
        }
        Self { slots, next_uid: 1, touched: Cell::new(Touched::ALL), high: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots `high..len()` have never been used: they are free.
    pub(crate) fn high(&self) -> usize {
        self.high
    }

    pub(crate) fn iter(&self) -> core::slice::Iter<'_, PartitionSlot> {
        self.slots.iter()
    }

    /// The slots changed since the last call.
    #[cfg_attr(feature = "compact-code", allow(dead_code))] // read by the timer table only
    pub(crate) fn take_touched(&self) -> Touched {
        self.touched.take()
    }

    /// Whether broker `node` leads a partition with batches waiting.
    pub(crate) fn leads_work(&self, node: i32) -> bool {
        self.slots[..self.high].iter().any(|p| p.leader == node && p.head.is_some())
    }

    /// A run of `count` slots for topic `t`, whose run so far is `old` (first, count), moving
    /// the old slots into the new run if it had to move; `moved(from, to)` is told of each
    /// move so batches can follow their partition. `None` if no run is free.
    pub(crate) fn allocate(
        &mut self,
        t: usize,
        count: u16,
        old: Option<(u16, u16)>,
        moved: &mut dyn FnMut(usize, usize),
    ) -> Option<u16> {
        *self.touched.get_mut() = Touched::ALL;
        let n = usize::from(count);
        let free_or_old = |i: usize, slots: &[PartitionSlot]| {
            slots[i].is_free() || old.is_some_and(|(f, c)| (usize::from(f)..usize::from(f + c)).contains(&i))
        };
        let start = (0..=self.slots.len().checked_sub(n)?)
            .find(|&s| (s..s + n).all(|i| free_or_old(i, self.slots)))?;
        if let Some((first, old_count)) = old {
            // Move old slots into the new run, back to front if the runs overlap upwards.
            let moves: &mut dyn Iterator<Item = u16> =
                if start > usize::from(first) { &mut (0..old_count).rev() } else { &mut (0..old_count) };
            for k in moves {
                let from = usize::from(first + k);
                let to = start + usize::from(k);
                if from != to {
                    self.slots[to] = self.slots[from].clone();
                    self.slots[from] = PartitionSlot::EMPTY;
                    moved(from, to);
                }
            }
        }
        let already = old.map_or(0, |(_, c)| c);
        for k in already..count {
            let uid = self.next_uid;
            self.next_uid = self.next_uid.wrapping_add(1).max(1);
            self.slots[start + usize::from(k)] =
                PartitionSlot { topic: t as u16, partition: i32::from(k), uid, ..PartitionSlot::EMPTY };
        }
        for k in 0..count {
            self.slots[start + usize::from(k)].topic = t as u16;
        }
        self.high = self.high.max(start + n);
        Some(start as u16)
    }
}

impl Index<usize> for PartitionTable<'_> {
    type Output = PartitionSlot;
    fn index(&self, p: usize) -> &PartitionSlot {
        &self.slots[p]
    }
}

impl IndexMut<usize> for PartitionTable<'_> {
    fn index_mut(&mut self, p: usize) -> &mut PartitionSlot {
        // Fewer than `NIL` slots (`Producer::new`).
        self.touched.get_mut().add(p as u16);
        &mut self.slots[p]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_found_added_and_reclaimed_when_idle_and_empty() {
        let (mut ts, mut ps) = ([TopicSlot::EMPTY, TopicSlot::EMPTY], [PartitionSlot::EMPTY; 4]);
        let (mut topics, mut partitions) = (TopicTable::new(&mut ts), PartitionTable::new(&mut ps));
        let idle = Duration::from_millis(100);
        let a = topics.add(Instant::ZERO, "a", &mut partitions, true, idle).unwrap();
        let b = topics.add(Instant::ZERO, "b", &mut partitions, true, idle).unwrap();
        assert_eq!(topics.find(Instant::from_millis(50), "a"), Some(a));
        assert_eq!(topics.add(Instant::from_millis(60), "c", &mut partitions, false, idle), None, "full");
        // "b" idle since 0, "a" used at 50: at 120 only "b" may go.
        assert_eq!(topics.add(Instant::from_millis(120), "c", &mut partitions, true, idle), Some(b));
        assert_eq!(topics.find(Instant::from_millis(120), "b"), None);
        assert_eq!(topics.in_use(Instant::from_millis(120), idle, &partitions), 1 << a | 1 << b);
    }

    #[test]
    fn a_growing_topic_moves_its_partitions_and_tells_who_moved() {
        let mut ps = [PartitionSlot::EMPTY; 6];
        let mut partitions = PartitionTable::new(&mut ps);
        let mut moves = heapless::Vec::<(usize, usize), 4>::new();
        let a = partitions.allocate(0, 2, None, &mut |f, t| moves.push((f, t)).unwrap()).unwrap();
        let b = partitions.allocate(1, 1, None, &mut |f, t| moves.push((f, t)).unwrap()).unwrap();
        assert_eq!((a, b), (0, 2));
        let uid = partitions[1].uid;
        // Topic 0 grows to 3 partitions: topic 1 holds slot 2, so the run moves up to 3..6.
        let a2 = partitions.allocate(0, 3, Some((0, 2)), &mut |f, t| moves.push((f, t)).unwrap()).unwrap();
        assert_eq!(a2, 3);
        assert_eq!(moves.as_slice(), &[(1, 4), (0, 3)], "back to front");
        assert_eq!((partitions[4].uid, partitions[4].partition), (uid, 1), "a partition keeps its tokens");
        assert!(partitions[0].is_free() && partitions[1].is_free());
    }
}
