//! The record a host application hands over: it owns its data.

use std::sync::Arc;

/// A record that owns its data, ready to cross into the producer's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// CreateTime, ms since the Unix epoch; `None` takes the time of sending.
    pub timestamp: Option<i64>,
}

impl OwnedRecord {
    pub fn new(topic: impl Into<Arc<str>>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: Option<impl Into<Vec<u8>>>) -> Self {
        self.headers.push((name.into(), value.map(Into::into)));
        self
    }
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// Bytes this record holds, for the staging bound.
    pub(crate) fn weight(&self) -> usize {
        64 + self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 8).sum::<usize>()
    }
}
