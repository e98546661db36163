//! The Kafka wire protocol: cursors, primitive encodings, the messages a producer exchanges, record
//! batches and their compression. Every encoder takes its version explicitly; every decoder is
//! total (any input gives a value or a [`DecodeError`], never a panic or an unbounded loop).

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod api_versions;
pub mod codec;
pub mod crc;
pub mod end_txn;
pub mod error_code;
pub mod find_coordinator;
pub mod header;
pub mod host_codecs;
pub mod init_producer_id;
pub mod lz4;
pub mod metadata;
pub mod produce;
pub mod record_batch;
pub mod sasl;
pub mod topic_errors;
pub mod txn_offset_commit;
pub mod varint;

pub use codec::{Array, DecodeError, EncodeError, Reader, TaggedFields, Writer};
pub use error_code::ErrorCode;
pub use header::{encode_request, ApiKey, Request, RequestHeader, ResponseHeader};
