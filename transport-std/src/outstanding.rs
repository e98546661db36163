//! Records handed to the core and not yet reported, with where their reports go.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::delivery::Reply;

/// A record handed to the core, waiting for its outcome. Kept small: a closed-loop producer
/// has one per record in its batch buffers (~300,000 with 32 MiB of 100-byte records).
pub(crate) struct Outstanding {
    pub(crate) reply: Reply,
    /// The record's CreateTime, reported unless the broker stamps its own append time.
    pub(crate) timestamp: i64,
    /// The low half of the mark it was queued under (`Queued::mark`), for flushes and commits:
    /// [`MarkCounts::done`] knows the rest. Half the size keeps an entry at 40 bytes, not 48.
    pub(crate) mark: u32,
    /// The low half of its token.
    pub(crate) n: u32,
}

/// Records handed to the core and not yet reported, per report queue. A token names its queue
/// (one per partition, `RecordToken::queue`) and its place in it, and reports come back in
/// that order within a queue: the next report is almost always the front of its queue, so no
/// per-record tree is needed, and the topic is kept once per partition rather than per record.
/// The map is looked up twice per record: Fx hashing of the queue number, not SipHash (2 % of a
/// CLI run's CPU), as the queue numbers are the core's, not an attacker's.
#[derive(Default)]
pub(crate) struct Outstandings {
    by_partition: HashMap<u32, (Arc<str>, VecDeque<Outstanding>), FxBuildHasher>,
}

impl Outstandings {
    pub(crate) fn push(&mut self, token: picokafka::RecordToken, topic: &Arc<str>, mut o: Outstanding) {
        let (partition, n) = (token.queue(), token.place());
        o.n = n;
        let queue =
            &mut self.by_partition.entry(partition).or_insert_with(|| (topic.clone(), VecDeque::new())).1;
        if queue.len() == queue.capacity() {
            // A ring buffer touches all of its capacity as it cycles, so `VecDeque`'s doubling
            // kept up to twice the records in the buffers resident (32 MiB of 100-byte records
            // on 4 partitions: 25 MB of entries for 15 MB used). Growing by a quarter bounds
            // that at 1.25×, still in amortised constant time.
            queue.reserve_exact((queue.len() / 4).max(64));
        }
        queue.push_back(o);
    }

    pub(crate) fn take(&mut self, token: picokafka::RecordToken) -> Option<(Arc<str>, Outstanding)> {
        let (partition, n) = (token.queue(), token.place());
        let (topic, queue) = self.by_partition.get_mut(&partition)?;
        let o = if queue.front().is_some_and(|o| o.n == n) {
            queue.pop_front()
        } else {
            let at = queue.iter().position(|o| o.n == n)?;
            queue.remove(at)
        };
        o.map(|o| (topic.clone(), o))
    }
}

/// How many records each mark (`Queued::mark`) has in the core, not yet reported, in mark order:
/// records enter the core in the queue's order, so marks only grow at the back, and reports
/// come mostly for the oldest mark. One step per record at either end, where a map would
/// search.
#[derive(Default)]
pub(crate) struct MarkCounts(VecDeque<(u64, u64)>);

impl MarkCounts {
    /// A record of `mark` entered the core.
    pub(crate) fn add(&mut self, mark: u64) {
        match self.0.back_mut() {
            Some((m, n)) if *m == mark => *n += 1,
            _ => self.0.push_back((mark, 1)),
        }
    }

    /// A record of the mark whose low half is `low` was reported.
    pub(crate) fn done(&mut self, low: u32) {
        let Some(&(oldest, _)) = self.0.front() else { return };
        // Every mark with a record in the core lies within 2^32 of the oldest (each holds a
        // record), so its low half names it.
        let mark = oldest.wrapping_add(u64::from(low.wrapping_sub(oldest as u32)));
        let Ok(at) = self.0.binary_search_by_key(&mark, |&(m, _)| m) else { return };
        self.0[at].1 -= 1;
        if self.0[at].1 == 0 {
            self.0.remove(at);
        }
    }

    /// The oldest mark with a record in the core.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.0.front().map(|&(m, _)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::MarkCounts;

    #[test]
    fn marks_count_in_order_and_leave_when_done() {
        let mut m = MarkCounts::default();
        m.add(3);
        m.add(3);
        m.add(5);
        assert_eq!(m.oldest(), Some(3));
        m.done(5);
        assert_eq!(m.oldest(), Some(3), "a later mark done first leaves the oldest");
        m.done(3);
        m.done(4); // never added: nothing to do
        assert_eq!(m.oldest(), Some(3));
        m.done(3);
        assert_eq!(m.oldest(), None);
        m.add(7);
        assert_eq!(m.oldest(), Some(7));
    }

    #[test]
    fn a_low_half_names_its_mark_across_the_wrap() {
        let mut m = MarkCounts::default();
        let (a, b) = (u64::from(u32::MAX) + 5, u64::from(u32::MAX) + 9);
        m.add(a - 7);
        m.add(a);
        m.add(b);
        m.done(b as u32);
        m.done((a - 7) as u32);
        assert_eq!(m.oldest(), Some(a), "the later marks, not ones 2^32 away");
        m.done(a as u32);
        assert_eq!(m.oldest(), None);
    }
}
