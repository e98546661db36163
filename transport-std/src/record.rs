//! The record a host application hands over: it owns its data.

use std::sync::Arc;

use bytes::Bytes;

/// A record that owns its data, ready to cross into the producer's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The topic it goes to.
    pub topic: Arc<str>,
    /// The partition, if the caller picks it.
    pub partition: Option<i32>,
    /// The key, if any. `Bytes`, so that records cut from one buffer (the CLI's input, a
    /// network frame) share it instead of each taking an allocation and a copy; a `Vec<u8>` or
    /// `String` converts without a copy (`Bytes::from_static` for static data).
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in order: name and optional value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// CreateTime, ms since the Unix epoch; `None` takes the time of sending.
    pub timestamp: Option<i64>,
}

impl OwnedRecord {
    /// A record for `topic`, with no key, value or headers yet.
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
    /// Sets the key (murmur2 of it picks the partition, as in the Java client).
    pub fn key(mut self, key: impl IntoBytes) -> Self {
        self.key = Some(key.into_bytes());
        self
    }
    /// Sets the value.
    pub fn value(mut self, value: impl IntoBytes) -> Self {
        self.value = Some(value.into_bytes());
        self
    }
    /// Sends it to this partition, whatever its key.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Adds a header; `None` is a header without a value.
    pub fn header(mut self, name: impl Into<String>, value: Option<impl Into<Vec<u8>>>) -> Self {
        self.headers.push((name.into(), value.map(Into::into)));
        self
    }
    /// Sets its CreateTime, ms since the Unix epoch.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// Bytes this record holds, for the staging bound.
    pub(crate) fn weight(&self) -> usize {
        64 + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 8).sum::<usize>()
    }
}

/// What a key or value can be given as: owned bytes (`Vec<u8>`, `String`, `Bytes`, a boxed
/// slice) move in without a copy; borrowed ones (`&[u8]`, `&str`, arrays) are copied once.
pub trait IntoBytes {
    /// The bytes, as the record keeps them.
    fn into_bytes(self) -> Bytes;
}

macro_rules! owned {
    ($($t:ty),*) => {$(
        impl IntoBytes for $t {
            fn into_bytes(self) -> Bytes {
                Bytes::from(self)
            }
        }
    )*};
}
owned!(Bytes, Vec<u8>, String, Box<[u8]>);

macro_rules! borrowed {
    ($($t:ty),*) => {$(
        impl IntoBytes for $t {
            fn into_bytes(self) -> Bytes {
                Bytes::copy_from_slice(self.as_ref())
            }
        }
    )*};
}
borrowed!(&[u8], &str, &Vec<u8>, &String, &Bytes);

impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}
