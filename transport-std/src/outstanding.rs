//! Records handed to the core and not yet reported, with where their reports go.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::delivery::Reply;

/// A record handed to the core, waiting for its outcome. Kept small: a closed-loop producer
/// has one per record in its batch buffers (~300,000 with 32 MiB of 100-byte records).
pub(crate) struct Outstanding {
    pub(crate) reply: Reply,
    /// The record's CreateTime, reported unless the broker stamps its own append time.
    pub(crate) timestamp: i64,
    /// The mark it was queued under (`Queued::mark`), for flushes and commits.
    pub(crate) mark: u64,
    /// The low half of its token.
    pub(crate) n: u32,
}

/// Records handed to the core and not yet reported, per report queue. A token names its queue
/// (one per partition, `RecordToken::queue`) and its place in it, and reports come back in
/// that order within a queue: the next report is almost always the front of its queue, so no
/// per-record hashing or tree is needed, and the topic is kept once per partition rather than
/// per record.
#[derive(Default)]
pub(crate) struct Outstandings {
    by_partition: HashMap<u32, (Arc<str>, VecDeque<Outstanding>)>,
}

impl Outstandings {
    pub(crate) fn push(&mut self, token: picokafka::RecordToken, topic: &Arc<str>, mut o: Outstanding) {
        let (partition, n) = (token.queue(), token.place());
        o.n = n;
        self.by_partition.entry(partition).or_insert_with(|| (topic.clone(), VecDeque::new())).1.push_back(o);
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
