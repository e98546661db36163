//! Serializers: keys and values to bytes, byte for byte as the Java client's and Confluent's
//! deserializers expect them.
//!
//! - [`Bytes`], [`Str`]: as they are (`ByteArraySerializer`, `StringSerializer` in UTF-8);
//! - [`BigEndian`]: `i16`, `i32`, `i64`, `f32`, `f64` in network order (`ShortSerializer`,
//!   `IntegerSerializer`, `LongSerializer`, `FloatSerializer`, `DoubleSerializer`);
//! - [`Json`]: any `serde::Serialize` as JSON text (feature `json`, on by default);
//! - [`SchemaRegistry`]: Confluent's wire format around another serializer — magic byte `0`,
//!   the schema id (4 bytes, big-endian), for Protobuf the message-index path, then the payload
//!   — and, with it, [`Avro`] (feature `avro`, the `apache-avro` crate) and [`Protobuf`]
//!   (feature `protobuf`, `prost`) payloads.
//!
//! The schema id is given, not looked up: register the schema with your registry (or read its id
//! from it) at start-up. No HTTP client is built into the producer.
//!
//! ```
//! use picokafka_tokio::serialize::{BigEndian, Serializer, Str};
//! use picokafka_tokio::OwnedRecord;
//!
//! let record = OwnedRecord::new("readings")
//!     .key(Str.serialize("sensor-7").unwrap())
//!     .value(BigEndian.serialize(&21.5f64).unwrap());
//! assert_eq!(record.value.as_deref(), Some(&21.5f64.to_be_bytes()[..]));
//! ```

use std::fmt;

/// Why a value could not be serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializeError(pub String);

impl fmt::Display for SerializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serialization failed: {}", self.0)
    }
}

impl std::error::Error for SerializeError {}

/// Turns a `T` into the bytes of a key or value.
pub trait Serializer<T: ?Sized> {
    /// The bytes of `value`.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerializeError>;
}

/// Bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes;

impl Serializer<[u8]> for Bytes {
    fn serialize(&self, value: &[u8]) -> Result<Vec<u8>, SerializeError> {
        Ok(value.to_vec())
    }
}

/// Text as UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub struct Str;

impl Serializer<str> for Str {
    fn serialize(&self, value: &str) -> Result<Vec<u8>, SerializeError> {
        Ok(value.as_bytes().to_vec())
    }
}

/// Numbers in network byte order, as Java's number serializers write them.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigEndian;

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl Serializer<$t> for BigEndian {
            fn serialize(&self, value: &$t) -> Result<Vec<u8>, SerializeError> {
                Ok(value.to_be_bytes().to_vec())
            }
        }
    )*};
}
big_endian!(i16, i32, i64, f32, f64);

/// JSON text, as Kafka Connect's `JsonSerializer` without schemas.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
impl<T: serde::Serialize + ?Sized> Serializer<T> for Json {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerializeError> {
        serde_json::to_vec(value).map_err(|e| SerializeError(e.to_string()))
    }
}

/// Confluent's Schema Registry wire format around `inner`'s bytes: `0`, the schema id
/// (big-endian `i32`), the Protobuf message-index path if any, then the payload.
#[derive(Debug, Clone)]
pub struct SchemaRegistry<S> {
    /// The schema's id in the Schema Registry.
    pub schema_id: u32,
    /// Protobuf only: the indexes of the message type within the schema file, outermost first
    /// (`[]` for the first top-level message). `None` for Avro and JSON Schema.
    pub message_indexes: Option<Vec<i32>>,
    /// The serializer of the payload after the header.
    pub inner: S,
}

impl<S> SchemaRegistry<S> {
    /// Avro and JSON Schema framing.
    pub fn new(schema_id: u32, inner: S) -> Self {
        Self { schema_id, message_indexes: None, inner }
    }

    /// Protobuf framing, for the message at `message_indexes` in its schema.
    pub fn protobuf(schema_id: u32, message_indexes: Vec<i32>, inner: S) -> Self {
        Self { schema_id, message_indexes: Some(message_indexes), inner }
    }

    fn header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(0);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        if let Some(indexes) = &self.message_indexes {
            // The path [0] (the first message) is written as a single 0, as Confluent's
            // serializers do; otherwise its length, then each index, as zigzag varints.
            if indexes.as_slice() == [0] || indexes.is_empty() {
                out.push(0);
            } else {
                zigzag(indexes.len() as i64, &mut out);
                for &i in indexes {
                    zigzag(i64::from(i), &mut out);
                }
            }
        }
        out
    }
}

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

impl<T: ?Sized, S: Serializer<T>> Serializer<T> for SchemaRegistry<S> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerializeError> {
        let mut out = self.header();
        out.extend_from_slice(&self.inner.serialize(value)?);
        Ok(out)
    }
}

/// An Avro datum (binary encoding, no container header) written with `schema`. Wrap it in
/// [`SchemaRegistry`] for Confluent's format.
#[cfg(feature = "avro")]
#[derive(Debug, Clone)]
pub struct Avro {
    /// The writer's schema.
    pub schema: apache_avro::Schema,
}

#[cfg(feature = "avro")]
impl Avro {
    /// Parses the schema (JSON text); a bad schema is an error, not a panic later.
    pub fn new(schema_json: &str) -> Result<Self, SerializeError> {
        apache_avro::Schema::parse_str(schema_json)
            .map(|schema| Self { schema })
            .map_err(|e| SerializeError(format!("Avro schema: {e}")))
    }
}

#[cfg(feature = "avro")]
impl<T: serde::Serialize + ?Sized> Serializer<T> for Avro {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerializeError> {
        let value = apache_avro::to_value(value).map_err(|e| SerializeError(e.to_string()))?;
        let value = value
            .resolve(&self.schema)
            .map_err(|e| SerializeError(format!("value does not match the Avro schema: {e}")))?;
        apache_avro::to_avro_datum(&self.schema, value).map_err(|e| SerializeError(e.to_string()))
    }
}

/// A Protobuf message in its binary encoding. Wrap it in [`SchemaRegistry::protobuf`] for
/// Confluent's format.
#[cfg(feature = "protobuf")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;

#[cfg(feature = "protobuf")]
impl<M: prost::Message> Serializer<M> for Protobuf {
    fn serialize(&self, value: &M) -> Result<Vec<u8>, SerializeError> {
        Ok(value.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_number_layouts() {
        assert_eq!(BigEndian.serialize(&1i32).unwrap(), [0, 0, 0, 1]);
        assert_eq!(BigEndian.serialize(&-2i16).unwrap(), [0xff, 0xfe]);
        assert_eq!(BigEndian.serialize(&0x0102_0304_0506_0708i64).unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(BigEndian.serialize(&1.0f64).unwrap(), [0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(BigEndian.serialize(&1.0f32).unwrap(), [0x3f, 0x80, 0, 0]);
        assert_eq!(Str.serialize("ключ").unwrap(), "ключ".as_bytes());
        assert_eq!(Bytes.serialize(&[0u8, 255][..]).unwrap(), [0, 255]);
    }

    #[test]
    fn schema_registry_framing() {
        let framed = SchemaRegistry::new(0x0102_0304, Str).serialize("x").unwrap();
        assert_eq!(framed, [0, 1, 2, 3, 4, b'x']);
        // Protobuf: the first message is a single 0; [1, 0] is length 2, then 1 and 0, zigzag.
        assert_eq!(SchemaRegistry::protobuf(7, vec![0], Str).serialize("").unwrap(), [0, 0, 0, 0, 7, 0]);
        assert_eq!(
            SchemaRegistry::protobuf(7, vec![1, 0], Str).serialize("").unwrap(),
            [0, 0, 0, 0, 7, 4, 2, 0]
        );
        assert_eq!(
            SchemaRegistry::protobuf(7, vec![70], Str).serialize("").unwrap(),
            [0, 0, 0, 0, 7, 2, 0x8c, 1]
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_text() {
        #[derive(serde::Serialize)]
        struct Reading<'a> {
            device: &'a str,
            temp: f64,
        }
        let bytes = Json.serialize(&Reading { device: "s-1", temp: 21.5 }).unwrap();
        assert_eq!(bytes, br#"{"device":"s-1","temp":21.5}"#);
    }

    #[cfg(feature = "avro")]
    #[test]
    fn avro_datum_and_schema_errors() {
        #[derive(serde::Serialize)]
        struct R {
            a: i32,
            s: String,
        }
        let avro = Avro::new(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"s","type":"string"}]}"#)
            .unwrap();
        // int 1 -> zigzag 2; string "hi" -> length zigzag 4, then the bytes.
        assert_eq!(avro.serialize(&R { a: 1, s: "hi".into() }).unwrap(), [2, 4, b'h', b'i']);
        assert!(Avro::new("{not json").is_err());
        #[derive(serde::Serialize)]
        struct Wrong {
            b: bool,
        }
        assert!(avro.serialize(&Wrong { b: true }).unwrap_err().0.contains("Avro schema"));
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn protobuf_message() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Reading {
            #[prost(string, tag = "1")]
            device: String,
            #[prost(int32, tag = "2")]
            value: i32,
        }
        let bytes = SchemaRegistry::protobuf(3, vec![0], Protobuf)
            .serialize(&Reading { device: "a".into(), value: 150 })
            .unwrap();
        // Field 1 (len-delimited) "a", field 2 (varint) 150 = 0x96 0x01.
        assert_eq!(bytes, [0, 0, 0, 0, 3, 0, 0x0a, 1, b'a', 0x10, 0x96, 0x01]);
    }
}
