//! The cluster as Metadata describes it: brokers, topics, partitions and their leaders.

use heapless::String;

use super::batches::BatchStatus;
use super::connections::{ConnSlot, ConnState};
use super::topics::TopicState;
use super::Producer;
use crate::protocol::metadata::{MetadataResponse, TopicMetadata};
use crate::protocol::{DecodeError, ErrorCode};
use crate::time::{Duration, Instant};

impl Producer<'_> {
    pub(crate) fn on_metadata(
        &mut self,
        now: Instant,
        _conn: usize,
        body: &[u8],
        version: i16,
        asked: u64,
    ) -> Result<(), DecodeError> {
        let resp = MetadataResponse::decode(body, version)?;
        self.metadata.answered(now, Duration::from_millis(u64::from(self.config.retry_backoff_ms)));
        self.update_brokers(now, &resp);
        let mut again = false;
        for t in 0..self.topics.len() {
            if asked & (1 << t) == 0 || self.topics[t].state == TopicState::Free {
                continue;
            }
            let name = self.topics[t].name.clone();
            match resp.topic(&name) {
                Some(tm) if tm.error_code.is_ok() => again |= self.update_topic(t, &tm),
                Some(tm) => {
                    again |= tm.error_code.is_retriable();
                    self.note_broker_error(tm.error_code);
                    if !matches!(self.topics[t].state, TopicState::Known { .. }) {
                        debug!("metadata for {}: {}", name.as_str(), tm.error_code);
                        self.topics[t].state = TopicState::Error(tm.error_code);
                    }
                }
                None => again = true,
            }
        }
        self.connect_leaders(&resp);
        if again {
            self.metadata.want();
        }
        self.schedule(now);
        Ok(())
    }

    /// Matches bootstrap addresses to broker ids and follows brokers that moved.
    fn update_brokers(&mut self, now: Instant, resp: &MetadataResponse<'_>) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.state == ConnState::Free {
                continue;
            }
            if c.node_id >= 0 {
                let moved = resp
                    .broker(c.node_id)
                    .filter(|b| b.host != c.host.as_str() || b.port != i32::from(c.port));
                if let Some(b) = moved {
                    let (Ok(host), Ok(port)) = (String::try_from(b.host), u16::try_from(b.port)) else {
                        continue;
                    };
                    if c.state.is_open() {
                        self.close_conn(now, i, crate::error::ConnError::Disconnected);
                    }
                    let c = &mut self.conns[i];
                    c.host = host;
                    c.port = port;
                }
            } else if let Some(b) =
                resp.brokers.iter().find(|b| b.host == c.host.as_str() && b.port == i32::from(c.port))
            {
                if self.conns.of_node(b.node_id).is_none() {
                    self.conns.set_node(i, b.node_id);
                }
            }
        }
    }

    /// Takes a topic's partitions and leaders. Returns whether metadata should be asked again
    /// soon (a partition without a leader).
    fn update_topic(&mut self, t: usize, tm: &TopicMetadata<'_>) -> bool {
        let count = tm.partitions.len().min(usize::from(u16::MAX - 1)) as u16;
        let first = match self.topics[t].state {
            TopicState::Known { first, count: old } if old == count => first,
            TopicState::Known { count: old, .. } if count < old => {
                // Kafka never shrinks a topic; keep what we have rather than lose queued batches.
                return true;
            }
            state => match self.allocate_partitions(t, count, state) {
                Some(first) => first,
                None => {
                    warn!("no room for the {} partitions of {}", count, self.topics[t].name.as_str());
                    self.topics[t].state = TopicState::Error(ErrorCode::Unknown(-2));
                    return false;
                }
            },
        };
        self.topics[t].state = TopicState::Known { first, count };
        let mut leaderless = false;
        for pm in tm.partitions.iter() {
            let Ok(index) = u16::try_from(pm.partition_index) else { continue };
            if index >= count {
                continue;
            }
            let p = &mut self.partitions[usize::from(first + index)];
            let leader = if pm.error_code.is_ok() || pm.leader_id >= 0 { pm.leader_id } else { -1 };
            if p.leader != leader {
                debug!(
                    "{}[{}] leader {} -> {}",
                    self.topics[t].name.as_str(),
                    pm.partition_index,
                    p.leader,
                    leader
                );
            }
            p.leader = leader;
            p.leader_epoch = pm.leader_epoch;
            leaderless |= leader < 0;
        }
        leaderless
    }

    /// A run of `count` partition slots for topic `t`; batches follow partitions that move.
    fn allocate_partitions(&mut self, t: usize, count: u16, state: TopicState) -> Option<u16> {
        let old = match state {
            TopicState::Known { first, count } => Some((first, count)),
            _ => None,
        };
        let batches = &mut self.batches;
        self.partitions.allocate(t, count, old, &mut |from, to| {
            for b in batches.ids() {
                let b = &mut batches[b];
                if !matches!(b.status, BatchStatus::Free | BatchStatus::Part)
                    && usize::from(b.partition) == from
                {
                    b.partition = to as u16;
                }
            }
        })
    }

    /// Makes sure every leader of our partitions has a connection slot, reusing idle slots whose
    /// broker leads nothing we need.
    fn connect_leaders(&mut self, resp: &MetadataResponse<'_>) {
        for pi in 0..self.partitions.len() {
            let leader = self.partitions[pi].leader;
            if self.partitions[pi].is_free() || leader < 0 || self.conns.of_node(leader).is_some() {
                continue;
            }
            let Some(b) = resp.broker(leader) else { continue };
            let (Ok(host), Ok(port)) = (String::try_from(b.host), u16::try_from(b.port)) else { continue };
            let Some(i) = self.reusable_conn_slot() else {
                warn!("no connection slot for broker {}", leader);
                continue;
            };
            self.conns.assign(i, leader, host, port);
        }
    }

    /// A connection slot for a broker not in the table: a free one, or an idle one whose
    /// broker leads nothing we need and coordinates nothing of ours.
    pub(crate) fn reusable_conn_slot(&self) -> Option<usize> {
        let reusable = |c: &ConnSlot| match c.state {
            ConnState::Free => true,
            ConnState::Idle | ConnState::Backoff { .. } => {
                c.close_pending.is_none()
                    && (c.node_id < 0
                        || (!self.partitions.iter().any(|p| p.leader == c.node_id)
                            && !self.txn.uses_node(c.node_id)))
            }
            _ => false,
        };
        (0..self.conns.len()).find(|&i| reusable(&self.conns[i]))
    }
}
