//! When to ask for metadata: a refresh is wanted (a new topic, a lost leader, a broker error
//! that invalidates what we know, `metadata.max.age.ms`), at most one request is in flight, and
//! answers are spaced by `retry.backoff.ms`.

use crate::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct MetadataState {
    /// A refresh is due.
    wanted: bool,
    in_flight: bool,
    last_refresh: Instant,
    /// Earliest time for the next request (backoff between refreshes).
    not_before: Instant,
    /// Topics (a bit per slot) the request in flight asks about.
    asked: u64,
}

impl MetadataState {
    /// Metadata is wanted from the start: the producer knows nothing yet.
    pub(crate) fn new(now: Instant) -> Self {
        Self { wanted: true, in_flight: false, last_refresh: now, not_before: now, asked: 0 }
    }

    pub(crate) fn want(&mut self) {
        self.wanted = true;
    }

    pub(crate) fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// Whether the request in flight asks about topic slot `t` already.
    pub(crate) fn asking_about(&self, t: usize) -> bool {
        self.in_flight && self.asked & (1 << t) != 0
    }

    /// A request may go now.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.wanted && !self.in_flight && now >= self.not_before
    }

    /// When a wanted request may go (`None` if none is wanted or one is in flight).
    pub(crate) fn next_request(&self) -> Option<Instant> {
        (self.wanted && !self.in_flight).then_some(self.not_before)
    }

    /// When what we know gets too old: never while a refresh is already wanted or in flight
    /// (a deadline that passed would otherwise stay the producer's next one, and a transport
    /// would wake for it again and again while a connection is still being opened).
    pub(crate) fn expires(&self, max_age: Duration) -> Instant {
        if self.wanted || self.in_flight {
            return Instant::NEVER;
        }
        self.last_refresh + max_age
    }

    /// A request about `topics` goes out.
    pub(crate) fn start(&mut self, topics: u64) {
        self.in_flight = true;
        self.wanted = false;
        self.asked = topics;
    }

    /// The answer came at `now`: the next request waits `backoff`.
    pub(crate) fn answered(&mut self, now: Instant, backoff: Duration) {
        self.in_flight = false;
        self.last_refresh = now;
        self.not_before = now + backoff;
    }

    /// The request in flight will get no answer: ask again.
    pub(crate) fn lost(&mut self) {
        self.in_flight = false;
        self.wanted = true;
    }

    /// Every connection closed (the producer is closing): nothing is in flight any more.
    pub(crate) fn abandon(&mut self) {
        self.in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_at_a_time_spaced_by_the_backoff() {
        let mut m = MetadataState::new(Instant::ZERO);
        assert!(m.due(Instant::ZERO));
        m.start(0b10);
        assert!(m.asking_about(1) && !m.asking_about(0));
        m.want();
        assert!(!m.due(Instant::ZERO) && m.next_request().is_none(), "one in flight");
        m.answered(Instant::from_millis(10), Duration::from_millis(100));
        assert!(!m.due(Instant::from_millis(50)));
        assert_eq!(m.next_request(), Some(Instant::from_millis(110)));
        assert!(m.due(Instant::from_millis(110)));
        let max_age = Duration::from_millis(1000);
        assert_eq!(m.expires(max_age), Instant::NEVER, "a refresh is wanted already");
        m.start(0);
        assert_eq!(m.expires(max_age), Instant::NEVER, "a refresh is in flight");
        m.answered(Instant::from_millis(200), Duration::from_millis(100));
        assert_eq!(m.expires(max_age), Instant::from_millis(1200));
    }

    #[test]
    fn a_lost_request_is_asked_again() {
        let mut m = MetadataState::new(Instant::ZERO);
        m.start(1);
        m.lost();
        assert!(m.is_wanted() && m.due(Instant::ZERO));
    }
}
