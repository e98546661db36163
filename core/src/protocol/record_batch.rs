//! RecordBatch v2 (magic 2): the unit of data a producer sends and a broker stores.
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 (2) | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
//! ```
//! The CRC-32C covers everything from `attributes` to the end. Each record is
//! `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value | headerCount varint | headers`.
//!
//! [`BatchBuilder`] appends records straight into a caller's fixed buffer, leaving room for the
//! header, which `finish` fills in (after compressing the records, if asked). Its state is a small
//! `Copy` value, so a producer can keep many open batches in its own storage and resume any of
//! them. The bytes it produces are final: a retry sends them again unchanged.

use core::fmt;

use super::codec::{Array, DecodeError, Reader};
use super::crc::crc32c;
use super::varint;
use super::{host_codecs, lz4};

/// Bytes before the first record.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s coverage starts (baseOffset + batchLength).
const LOG_OVERHEAD: usize = 12;
const MAGIC: i8 = 2;

mod field {
    //! Offsets of the header fields.
    use core::ops::Range;
    pub const BASE_OFFSET: Range<usize> = 0..8;
    pub const LENGTH: Range<usize> = 8..12;
    pub const LEADER_EPOCH: Range<usize> = 12..16;
    pub const MAGIC: usize = 16;
    pub const CRC: Range<usize> = 17..21;
    pub const ATTRIBUTES: Range<usize> = 21..23;
    pub const LAST_OFFSET_DELTA: Range<usize> = 23..27;
    pub const BASE_TIMESTAMP: Range<usize> = 27..35;
    pub const MAX_TIMESTAMP: Range<usize> = 35..43;
    pub const PRODUCER_ID: Range<usize> = 43..51;
    pub const PRODUCER_EPOCH: Range<usize> = 51..53;
    pub const BASE_SEQUENCE: Range<usize> = 53..57;
    pub const RECORD_COUNT: Range<usize> = 57..61;
}

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Compression codec of a batch (attributes bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Compression {
    /// Uncompressed (attribute id 0).
    #[default]
    None,
    /// gzip (id 1); needs the `gzip` feature.
    Gzip,
    /// Snappy (id 2), as a raw block; needs the `snappy` feature.
    Snappy,
    /// LZ4 (id 3), in Kafka's LZ4 frame format; in every build.
    Lz4,
    /// Zstandard (id 4); needs the `zstd` feature.
    Zstd,
}

impl Compression {
    /// The codec's id in a batch's attributes.
    pub const fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec with attribute id `id`; `None` for an id Kafka does not define.
    pub const fn from_id(id: i16) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Scratch space that [`BatchBuilder::finish`] needs to compress `records_len` bytes.
    pub const fn scratch_len(self, records_len: usize) -> usize {
        match self {
            Self::Lz4 => lz4::max_compressed_len(records_len),
            _ => host_codecs::scratch_len(self, records_len),
        }
    }

    /// Whether this build has the codec: LZ4 always, gzip, snappy and zstd with their features.
    pub const fn is_available(self) -> bool {
        host_codecs::available(self)
    }
}

/// A codec and the level to compress at: what [`BatchBuilder::finish`] compresses with. The
/// level is gzip's (0–9) or zstd's (up to 22); `None` is the codec's default (gzip 6, zstd 3).
/// A [`Compression`] alone is that codec at its default level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Codec {
    /// The codec.
    pub compression: Compression,
    /// Its level; `None`: the codec's default. Only gzip and zstd have levels here.
    pub level: Option<i32>,
}

impl From<Compression> for Codec {
    fn from(compression: Compression) -> Self {
        Self { compression, level: None }
    }
}

/// A record header: a string key and optional bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header's key, never null.
    pub key: &'a str,
    /// The header's value, `None` for null.
    pub value: Option<&'a [u8]>,
}

/// Length prefix (`-1` for null) as a zigzag varint: its encoded size.
const fn opt_len_size(len: Option<usize>) -> usize {
    match len {
        // Lengths were checked to fit i32 by the caller.
        Some(n) => len_size(n),
        None => 1,
    }
}

/// Encoded size of a record's body (everything after its own length varint).
pub fn record_body_len(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> usize {
    let mut n = 1 + varint::len_i64(timestamp_delta) + varint::len_i32(offset_delta);
    n += opt_len_size(key.map(<[u8]>::len)) + key.map_or(0, <[u8]>::len);
    n += opt_len_size(value.map(<[u8]>::len)) + value.map_or(0, <[u8]>::len);
    n += varint::len_i32(headers.len() as i32);
    for h in headers {
        n += opt_len_size(Some(h.key.len())) + h.key.len();
        n += opt_len_size(h.value.map(<[u8]>::len)) + h.value.map_or(0, <[u8]>::len);
    }
    n
}

/// Appends bytes to a slice whose size was checked beforehand.
struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        copy(&mut self.buf[self.pos..self.pos + b.len()], b);
        self.pos += b.len();
    }
    /// A length, count or offset delta as a zigzag varint (see [`zigzag_len`]).
    #[inline(always)]
    fn len(&mut self, n: usize) {
        self.zigzagged(zigzag_len(n));
    }
    /// A varint already in zigzag form (see [`zigzag_len`]); lengths and deltas are mostly one
    /// or two bytes, written directly. Inlined into each of `push`'s ~14 call sites (x86: 67
    /// instructions per record less than a call), except with `compact-code`, where that is
    /// 0.7 KiB of flash.
    #[cfg_attr(not(feature = "compact-code"), inline(always))]
    #[cfg_attr(feature = "compact-code", inline(never))]
    fn zigzagged(&mut self, z: u64) {
        if z < 0x80 {
            self.buf[self.pos] = z as u8;
            self.pos += 1;
        } else if z < 0x4000 {
            // One bounds check for both bytes.
            self.buf[self.pos..self.pos + 2].copy_from_slice(&[z as u8 | 0x80, (z >> 7) as u8]);
            self.pos += 2;
        } else {
            self.pos += varint::encode_u64(z, &mut self.buf[self.pos..]);
        }
    }
    /// A key, value or header value: its length (-1 for none), then its bytes.
    #[inline(always)]
    fn opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.len(b.len());
                self.bytes(b);
            }
            None => self.zigzagged(ZIGZAG_NULL),
        }
    }
}

/// The zigzag form of a length, count or offset delta, which is never negative: twice it
/// (one instruction where the signed form takes three). Callers checked it fits an `i32`.
#[inline(always)]
const fn zigzag_len(n: usize) -> u64 {
    (n as u64) << 1
}

/// Encoded size of a length, count or offset delta as a zigzag varint.
#[inline(always)]
const fn len_size(n: usize) -> usize {
    varint::len_u64(zigzag_len(n))
}

/// The zigzag form of the length -1, a null key or value.
const ZIGZAG_NULL: u64 = 1;

/// Copies a key, value or header into the batch.
#[cfg(not(target_arch = "arm"))]
#[inline(always)]
fn copy(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}
#[cfg(target_arch = "arm")]
use copy_words as copy;

/// Copies `src` into `dst` (same length) a 32-bit word at a time.
///
/// Records start at any byte offset, and `compiler_builtins`' `memcpy` on ARM copies a buffer
/// whose destination is not word-aligned with shifts and masks (~3 instructions per byte),
/// although ARMv7-M loads and stores words at any address; this loop is ~1.5. Not inlined:
/// inlined, LLVM recognises the loop as a copy and calls that `memcpy` again.
#[cfg(any(test, target_arch = "arm"))]
#[inline(never)]
fn copy_words(dst: &mut [u8], src: &[u8]) {
    let mut d = dst.chunks_exact_mut(4);
    let mut s = src.chunks_exact(4);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(&u32::from_ne_bytes([s[0], s[1], s[2], s[3]]).to_ne_bytes());
    }
    d.into_remainder().copy_from_slice(s.remainder());
}

/// Encoded size of an optional field with its varint length, or `None` if it is too long for
/// Kafka (an `i32` length).
#[inline]
fn field_len(b: Option<&[u8]>) -> Option<usize> {
    match b {
        None => Some(1),
        Some(b) if b.len() <= i32::MAX as usize => Some(len_size(b.len()) + b.len()),
        Some(_) => None,
    }
}

/// Why a record could not be added to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PushError {
    /// Not enough room left; the record needs `required` bytes. The batch is unchanged.
    Full {
        /// Bytes the record takes in this batch.
        required: usize,
    },
    /// A key, value or header is longer than Kafka allows (`i32::MAX`), or the batch holds as
    /// many records as an `i32` offset delta can count.
    TooLarge,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { required } => write!(f, "batch full: record needs {required} bytes"),
            Self::TooLarge => f.write_str("record field too large"),
        }
    }
}

impl core::error::Error for PushError {}

/// The resumable state of an open batch: with its buffer, all a [`BatchBuilder`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BatchState {
    /// Bytes used, header included.
    pub len: usize,
    /// Records appended so far.
    pub record_count: i32,
    /// The first record's timestamp: the batch's `baseTimestamp`.
    pub base_timestamp: i64,
    /// The largest record timestamp so far: the batch's `maxTimestamp`.
    pub max_timestamp: i64,
}

impl BatchState {
    /// The state of a batch with no records yet.
    pub const fn empty() -> Self {
        Self { len: HEADER_LEN, record_count: 0, base_timestamp: 0, max_timestamp: 0 }
    }
}

/// Identity and sequence of the producer, written into a batch's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProducerState {
    /// `-1` when the producer is not idempotent.
    pub producer_id: i64,
    /// The producer id's epoch, `-1` when not idempotent.
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record, `-1` when not idempotent.
    pub base_sequence: i32,
    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub transactional: bool,
}

impl ProducerState {
    /// A producer without idempotence.
    pub const NONE: Self =
        Self { producer_id: -1, producer_epoch: -1, base_sequence: -1, transactional: false };
}

/// Writes records into a fixed buffer as one RecordBatch v2.
#[derive(Debug)]
pub struct BatchBuilder<'a> {
    buf: &'a mut [u8],
    state: BatchState,
}

impl<'a> BatchBuilder<'a> {
    /// Starts an empty batch. `buf` must hold at least the 61-byte header.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, PushError> {
        if buf.len() < HEADER_LEN {
            return Err(PushError::Full { required: HEADER_LEN });
        }
        Ok(Self { buf, state: BatchState::empty() })
    }

    /// Continues a batch whose records are already in `buf`.
    pub fn resume(buf: &'a mut [u8], state: BatchState) -> Self {
        Self { buf, state }
    }

    /// The state to keep, to continue the batch with [`BatchBuilder::resume`].
    pub fn state(&self) -> BatchState {
        self.state
    }

    /// Records appended so far.
    pub fn record_count(&self) -> i32 {
        self.state.record_count
    }

    /// Bytes used so far, header included.
    pub fn len(&self) -> usize {
        self.state.len
    }

    /// Whether no record has been appended yet.
    pub fn is_empty(&self) -> bool {
        self.state.record_count == 0
    }

    /// The encoded size a record would take in this batch.
    pub fn record_size(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> usize {
        let base = if self.is_empty() { timestamp } else { self.state.base_timestamp };
        let body =
            record_body_len(timestamp.wrapping_sub(base), self.state.record_count, key, value, headers);
        varint::len_i32(body as i32) + body
    }

    /// Appends a record. On error the batch is unchanged.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<(), PushError> {
        let offset_delta = self.state.record_count;
        if offset_delta == i32::MAX || headers.len() > i32::MAX as usize {
            return Err(PushError::TooLarge);
        }
        let base = if offset_delta == 0 { timestamp } else { self.state.base_timestamp };
        let ts_delta = timestamp.wrapping_sub(base);
        // One pass sizes the record and checks every length fits Kafka's `i32`.
        let mut body = 1 + varint::len_i64(ts_delta) + len_size(offset_delta as usize);
        body += field_len(key).ok_or(PushError::TooLarge)?;
        body += field_len(value).ok_or(PushError::TooLarge)?;
        body += len_size(headers.len());
        for h in headers {
            body += field_len(Some(h.key.as_bytes())).ok_or(PushError::TooLarge)?;
            body += field_len(h.value).ok_or(PushError::TooLarge)?;
        }
        if body > i32::MAX as usize {
            return Err(PushError::TooLarge);
        }
        let mut out = self.open_record(body, ts_delta, offset_delta as usize)?;
        out.opt(key);
        out.opt(value);
        out.len(headers.len());
        for h in headers {
            out.opt(Some(h.key.as_bytes()));
            out.opt(h.value);
        }
        debug_assert_eq!(out.pos, out.buf.len());
        self.counted(offset_delta, timestamp);
        Ok(())
    }

    /// Makes room for a record whose body (attributes to headers) is `body` bytes: writes its
    /// length, attributes and deltas and returns where its fields go, already counted in the
    /// batch's length (the caller fills all of it). `Full` if it does not fit. Inlined on
    /// hosts: x86, 17 instructions per record less than a call.
    #[cfg_attr(not(feature = "compact-code"), inline(always))]
    fn open_record(&mut self, body: usize, ts_delta: i64, offset_delta: usize) -> Result<Out<'_>, PushError> {
        let size = len_size(body) + body;
        if size > self.buf.len() - self.state.len {
            return Err(PushError::Full { required: size });
        }
        let start = self.state.len;
        self.state.len = start + size;
        let mut out = Out { buf: &mut self.buf[start..start + size], pos: 0 };
        out.len(body);
        out.bytes(&[0]); // record attributes: unused
        out.zigzagged(varint::zigzag64(ts_delta));
        out.len(offset_delta);
        Ok(out)
    }

    /// Counts the record just written at `offset_delta`, with its timestamp.
    fn counted(&mut self, offset_delta: i32, timestamp: i64) {
        if offset_delta == 0 {
            self.state.base_timestamp = timestamp;
            self.state.max_timestamp = timestamp;
        } else if timestamp > self.state.max_timestamp {
            self.state.max_timestamp = timestamp;
        }
        self.state.record_count = offset_delta + 1;
    }

    /// Appends a record whose key, value and headers are already encoded (`fields`, as
    /// [`EncodedRecords`] hands them out of another batch): how a batch is split in two. Its
    /// timestamp and offset deltas are encoded anew for this batch. On error the batch is
    /// unchanged.
    pub fn push_encoded(&mut self, timestamp: i64, fields: &[u8]) -> Result<(), PushError> {
        let offset_delta = self.state.record_count;
        if offset_delta == i32::MAX || fields.len() > i32::MAX as usize - 16 {
            return Err(PushError::TooLarge);
        }
        let base = if offset_delta == 0 { timestamp } else { self.state.base_timestamp };
        let ts_delta = timestamp.wrapping_sub(base);
        let body = 1 + varint::len_i64(ts_delta) + len_size(offset_delta as usize) + fields.len();
        self.open_record(body, ts_delta, offset_delta as usize)?.bytes(fields);
        self.counted(offset_delta, timestamp);
        Ok(())
    }

    /// Completes the batch: compresses the records if asked and it helps (a batch whose records
    /// do not shrink is sent uncompressed, as librdkafka does), writes the header and CRC.
    /// Compressing needs [`Compression::scratch_len`] bytes of `scratch`: with less, the batch
    /// goes uncompressed (a record larger than the batches a microcontroller sized its scratch
    /// for). Returns the batch's length.
    pub fn finish(
        self,
        codec: impl Into<Codec>,
        producer: ProducerState,
        scratch: &mut [u8],
    ) -> Result<usize, FinishError> {
        let Codec { compression, level } = codec.into();
        let Self { buf, state } = self;
        let mut len = state.len;
        let mut codec = Compression::None;
        match compression {
            Compression::None => {}
            Compression::Lz4 => {
                let records = &buf[HEADER_LEN..len];
                // An error is a scratch too small for these records.
                let n = lz4::compress(records, scratch).unwrap_or(usize::MAX);
                if n < records.len() {
                    buf[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&scratch[..n]);
                    len = HEADER_LEN + n;
                    codec = Compression::Lz4;
                }
            }
            other if other.is_available() => {
                let records = &buf[HEADER_LEN..len];
                // No room in `scratch` (sized to the records) means it would not shrink them.
                if let Some(n) = host_codecs::compress(other, level, records, scratch) {
                    if n < records.len() {
                        buf[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&scratch[..n]);
                        len = HEADER_LEN + n;
                        codec = other;
                    }
                }
            }
            other => return Err(FinishError::UnsupportedCompression(other)),
        }
        let last_offset_delta = state.record_count - 1;
        let header = &mut buf[..HEADER_LEN];
        header[field::BASE_OFFSET].copy_from_slice(&0i64.to_be_bytes());
        // `len` is at most the buffer's size; buffers are far below 2 GiB.
        header[field::LENGTH].copy_from_slice(&((len - LOG_OVERHEAD) as i32).to_be_bytes());
        header[field::LEADER_EPOCH].copy_from_slice(&(-1i32).to_be_bytes());
        header[field::MAGIC] = MAGIC as u8;
        header[field::ATTRIBUTES].copy_from_slice(&codec.id().to_be_bytes());
        header[field::LAST_OFFSET_DELTA].copy_from_slice(&last_offset_delta.to_be_bytes());
        header[field::BASE_TIMESTAMP].copy_from_slice(&state.base_timestamp.to_be_bytes());
        header[field::MAX_TIMESTAMP].copy_from_slice(&state.max_timestamp.to_be_bytes());
        header[field::RECORD_COUNT].copy_from_slice(&state.record_count.to_be_bytes());
        set_producer_state(&mut buf[..len], producer);
        Ok(len)
    }
}

/// Why a batch could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FinishError {
    /// The codec is not in this build (see [`Compression::is_available`]).
    UnsupportedCompression(Compression),
}

impl fmt::Display for FinishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedCompression(c) => write!(f, "{c:?} compression is not available in this build"),
        }
    }
}

impl core::error::Error for FinishError {}

/// Rewrites the producer id, epoch, base sequence and transactional flag of a finished batch and
/// its CRC. Used when an idempotent producer must resend a batch under a new epoch or sequence.
///
/// `batch` must be a finished batch; a slice shorter than a batch header is a bug in the caller
/// and panics.
pub fn set_producer_state(batch: &mut [u8], producer: ProducerState) {
    batch[field::PRODUCER_ID].copy_from_slice(&producer.producer_id.to_be_bytes());
    batch[field::PRODUCER_EPOCH].copy_from_slice(&producer.producer_epoch.to_be_bytes());
    batch[field::BASE_SEQUENCE].copy_from_slice(&producer.base_sequence.to_be_bytes());
    let mut attributes =
        i16::from_be_bytes([batch[field::ATTRIBUTES.start], batch[field::ATTRIBUTES.start + 1]])
            & !ATTR_TRANSACTIONAL;
    if producer.transactional {
        attributes |= ATTR_TRANSACTIONAL;
    }
    batch[field::ATTRIBUTES].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c(&batch[field::ATTRIBUTES.start..]);
    batch[field::CRC].copy_from_slice(&crc.to_be_bytes());
}

/// The producer state and codec a finished batch's header holds (see [`set_producer_state`]):
/// for a producer re-reading its own batch, without decoding or checking it all.
///
/// `batch` must be a finished batch; a slice shorter than a batch header panics.
pub fn sealed_state(batch: &[u8]) -> (ProducerState, Option<Compression>) {
    let i16_at = |at: usize| i16::from_be_bytes([batch[at], batch[at + 1]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&batch[field::PRODUCER_ID]);
    let mut sequence = [0u8; 4];
    sequence.copy_from_slice(&batch[field::BASE_SEQUENCE]);
    let attributes = i16_at(field::ATTRIBUTES.start);
    let producer = ProducerState {
        producer_id: i64::from_be_bytes(id),
        producer_epoch: i16_at(field::PRODUCER_EPOCH.start),
        base_sequence: i32::from_be_bytes(sequence),
        transactional: attributes & ATTR_TRANSACTIONAL != 0,
    };
    (producer, Compression::from_id(attributes & ATTR_COMPRESSION_MASK))
}

/// The records section `data` of a batch this producer compressed with `codec`, decompressed
/// into `out`: its length. LZ4 frames as [`BatchBuilder::finish`] writes them (with less code
/// than a reader of any writer's frames), gzip, snappy and zstd with their features.
pub fn decompress_own(codec: Compression, data: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    match codec {
        Compression::None => Err(DecodeError::Compression),
        Compression::Lz4 => lz4::decompress_own(data, out),
        codec => host_codecs::decompress(codec, data, out),
    }
}

/// A decoded RecordBatch v2 header, with its records still encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBatch<'a> {
    /// `baseOffset`: the first record's offset, assigned by the broker (0 as a producer writes it).
    pub base_offset: i64,
    /// `partitionLeaderEpoch`: set by the broker (-1 as a producer writes it).
    pub partition_leader_epoch: i32,
    /// `crc`: CRC-32C of everything from `attributes` on, checked by [`RecordBatch::decode`].
    pub crc: u32,
    /// `attributes`: codec (bits 0–2), timestamp type (bit 3), transactional (bit 4), control
    /// (bit 5).
    pub attributes: i16,
    /// `lastOffsetDelta`: the last record's offset delta.
    pub last_offset_delta: i32,
    /// `baseTimestamp`: the first record's timestamp; the records hold deltas from it.
    pub base_timestamp: i64,
    /// `maxTimestamp`: the largest record timestamp (the append time, for LogAppendTime).
    pub max_timestamp: i64,
    /// `producerId`: -1 without idempotence.
    pub producer_id: i64,
    /// `producerEpoch`: -1 without idempotence.
    pub producer_epoch: i16,
    /// `baseSequence`: the first record's sequence number, -1 without idempotence.
    pub base_sequence: i32,
    /// `recordCount`: how many records the batch holds.
    pub record_count: i32,
    /// The records section, compressed or not.
    pub records_data: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Decodes the batch at the start of `input` and checks its CRC. Returns it and the rest.
    pub fn decode(input: &'a [u8]) -> Result<(Self, &'a [u8]), DecodeError> {
        let mut r = Reader::new(input);
        let base_offset = r.get_i64()?;
        let length = r.get_i32()?;
        let length = usize::try_from(length).map_err(|_| DecodeError::InvalidLength)?;
        if length < HEADER_LEN - LOG_OVERHEAD {
            return Err(DecodeError::InvalidLength);
        }
        let body = r.get_slice(length)?;
        let rest = r.rest();
        let mut r = Reader::new(body);
        let partition_leader_epoch = r.get_i32()?;
        let magic = r.get_i8()?;
        if magic != MAGIC {
            return Err(DecodeError::UnsupportedMagic(magic));
        }
        let crc = r.get_u32()?;
        let computed = crc32c(r.rest());
        if computed != crc {
            return Err(DecodeError::CrcMismatch { stored: crc });
        }
        let batch = Self {
            base_offset,
            partition_leader_epoch,
            crc,
            attributes: r.get_i16()?,
            last_offset_delta: r.get_i32()?,
            base_timestamp: r.get_i64()?,
            max_timestamp: r.get_i64()?,
            producer_id: r.get_i64()?,
            producer_epoch: r.get_i16()?,
            base_sequence: r.get_i32()?,
            record_count: r.get_i32()?,
            records_data: r.rest(),
        };
        if batch.record_count < 0 {
            return Err(DecodeError::InvalidLength);
        }
        Ok((batch, rest))
    }

    /// The codec, from `attributes`; `None` for an id Kafka does not define.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK)
    }
    /// Whether timestamps are the broker's append time (LogAppendTime, attribute bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }
    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    /// Whether it is a control batch, such as a transaction marker (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The records of an uncompressed batch.
    pub fn records(&self) -> Result<Array<'a, Record<'a>>, DecodeError> {
        if self.compression() != Some(Compression::None) {
            return Err(DecodeError::Compression);
        }
        decode_records(self.records_data, self.record_count)
    }

    /// The records, decompressed into `out` if needed (LZ4 everywhere; gzip, snappy and zstd
    /// with their features).
    pub fn decompress_records<'o>(&self, out: &'o mut [u8]) -> Result<Array<'o, Record<'o>>, DecodeError> {
        let n = self.decompress_into(out)?;
        decode_records(&out[..n], self.record_count)
    }

    /// Writes the records section, decompressed, to the start of `out`: its length.
    pub fn decompress_into(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        Ok(match self.compression() {
            Some(Compression::None) => {
                let dst = out
                    .get_mut(..self.records_data.len())
                    .ok_or(DecodeError::BufferTooSmall { required: self.records_data.len() })?;
                dst.copy_from_slice(self.records_data);
                self.records_data.len()
            }
            Some(Compression::Lz4) => lz4::decompress(self.records_data, out)?,
            Some(codec) => host_codecs::decompress(codec, self.records_data, out)?,
            None => return Err(DecodeError::Compression),
        })
    }

    /// The producer state in the header.
    pub fn producer_state(&self) -> ProducerState {
        ProducerState {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            transactional: self.is_transactional(),
        }
    }
}

/// A record's bytes before its fields (length, attributes, timestamp and offset deltas), as
/// a batch with these deltas stores it, in `out`: their length.
fn record_prefix(out: &mut [u8; 32], timestamp_delta: i64, offset_delta: i32, fields: usize) -> usize {
    let body = 1 + varint::len_i64(timestamp_delta) + len_size(offset_delta as usize) + fields;
    let mut out = Out { buf: out, pos: 0 };
    out.len(body);
    out.bytes(&[0]);
    out.zigzagged(varint::zigzag64(timestamp_delta));
    out.len(offset_delta as usize);
    out.pos
}

/// Moves the records at `buf[from..end]` (the rest of a batch whose first records were sent
/// alone) to the front of `buf`, after room for a header, re-encoded as a batch of their own:
/// offset deltas from 0, timestamps from the first one's (`base_timestamp` is what their
/// deltas are relative to now). Their new state; `None`, and `buf` unchanged, if they do not
/// read back or cannot move in place (a record whose new deltas take more bytes than the room
/// ahead of it: timestamps running far backwards).
pub fn compact_records(buf: &mut [u8], from: usize, end: usize, base_timestamp: i64) -> Option<BatchState> {
    let mut prefix = [0u8; 32];
    let mut state = BatchState::empty();
    // Check first that each record's new prefix ends before its old fields start: moving them
    // then never overwrites a byte not yet moved.
    let (mut r, mut w) = (from, HEADER_LEN);
    for record in EncodedRecords::new(buf.get(from..end)?) {
        let record = record.ok()?;
        let timestamp = base_timestamp.wrapping_add(record.timestamp_delta);
        if state.record_count == 0 {
            state.base_timestamp = timestamp;
            state.max_timestamp = timestamp;
        }
        let delta = timestamp.wrapping_sub(state.base_timestamp);
        let p = record_prefix(&mut prefix, delta, state.record_count, record.fields.len());
        let fields_at = r + record.size - record.fields.len();
        if w + p > fields_at {
            return None;
        }
        state.max_timestamp = state.max_timestamp.max(timestamp);
        state.record_count += 1;
        w += p + record.fields.len();
        r += record.size;
    }
    let (count, base) = (state.record_count, state.base_timestamp);
    let (mut r, mut w) = (from, HEADER_LEN);
    for offset_delta in 0..count {
        // Checked above: the record at `r` reads back.
        let Some(Ok(record)) = EncodedRecords::new(&buf[r..end]).next() else { return None };
        let (size, fields) = (record.size, record.fields.len());
        let delta = base_timestamp.wrapping_add(record.timestamp_delta).wrapping_sub(base);
        let p = record_prefix(&mut prefix, delta, offset_delta, fields);
        buf.copy_within(r + size - fields..r + size, w + p);
        buf[w..w + p].copy_from_slice(&prefix[..p]);
        w += p + fields;
        r += size;
    }
    state.len = w;
    Some(state)
}

/// A record of an uncompressed records section, as stored: for moving it to another batch
/// without decoding its key, value and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedRecord<'a> {
    /// Timestamp minus the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Everything after the offset delta: key, value and headers, encoded.
    pub fields: &'a [u8],
    /// Bytes the whole record takes, its length prefix included.
    pub size: usize,
}

/// Walks the records of an uncompressed records section (`RecordBatch::decompress_into`'s
/// output, or `records_data` of a batch without compression).
#[derive(Debug, Clone)]
pub struct EncodedRecords<'a> {
    r: Reader<'a>,
}

impl<'a> EncodedRecords<'a> {
    /// The records in `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { r: Reader::new(data) }
    }

    fn record(&mut self) -> Result<EncodedRecord<'a>, DecodeError> {
        let start = self.r.position();
        let len = self.r.get_varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::InvalidLength)?;
        let mut body = Reader::new(self.r.get_slice(len)?);
        let _attributes = body.get_i8()?;
        let timestamp_delta = body.get_varlong()?;
        let _offset_delta = body.get_varint()?;
        Ok(EncodedRecord { timestamp_delta, fields: body.rest(), size: self.r.position() - start })
    }
}

impl<'a> Iterator for EncodedRecords<'a> {
    type Item = Result<EncodedRecord<'a>, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.r.is_empty() {
            return None;
        }
        let record = self.record();
        if record.is_err() {
            // Nothing after a malformed record can be trusted.
            self.r = Reader::new(&[]);
        }
        Some(record)
    }
}

fn decode_records(data: &[u8], count: i32) -> Result<Array<'_, Record<'_>>, DecodeError> {
    let mut r = Reader::new(data);
    // `count >= 0` was checked on decode; each record takes at least 7 bytes.
    let count = count as usize;
    if count.saturating_mul(7) > data.len() {
        return Err(DecodeError::InvalidLength);
    }
    let records = Array::decode_elements(&mut r, count, 0, decode_record)?;
    r.expect_end()?;
    Ok(records)
}

/// A decoded record. Offsets and timestamps are deltas from the batch's base.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Record attributes: unused by Kafka, 0.
    pub attributes: i8,
    /// Timestamp minus the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Offset minus the batch's `baseOffset`.
    pub offset_delta: i32,
    /// The key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for null.
    pub value: Option<&'a [u8]>,
    /// The record's headers.
    pub headers: Array<'a, Header<'a>>,
}

fn get_varint_bytes<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, DecodeError> {
    match r.get_varint()? {
        -1 => Ok(None),
        n if n < 0 => Err(DecodeError::InvalidLength),
        n => r.get_slice(n as usize).map(Some),
    }
}

fn decode_header<'a>(r: &mut Reader<'a>, _: i16) -> Result<Header<'a>, DecodeError> {
    let key = get_varint_bytes(r)?.ok_or(DecodeError::InvalidLength)?;
    let key = core::str::from_utf8(key).map_err(|_| DecodeError::InvalidUtf8)?;
    let value = get_varint_bytes(r)?;
    Ok(Header { key, value })
}

fn decode_record<'a>(r: &mut Reader<'a>, _: i16) -> Result<Record<'a>, DecodeError> {
    let len = r.get_varint()?;
    let len = usize::try_from(len).map_err(|_| DecodeError::InvalidLength)?;
    let mut body = Reader::new(r.get_slice(len)?);
    let attributes = body.get_i8()?;
    let timestamp_delta = body.get_varlong()?;
    let offset_delta = body.get_varint()?;
    let key = get_varint_bytes(&mut body)?;
    let value = get_varint_bytes(&mut body)?;
    let header_count = body.get_varint()?;
    let header_count = usize::try_from(header_count).map_err(|_| DecodeError::InvalidLength)?;
    if header_count.saturating_mul(2) > body.remaining() {
        return Err(DecodeError::InvalidLength);
    }
    let headers = Array::decode_elements(&mut body, header_count, 0, decode_header)?;
    body.expect_end()?;
    Ok(Record { attributes, timestamp_delta, offset_delta, key, value, headers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    type OwnedRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

    fn build(records: &[OwnedRecord], compression: Compression, producer: ProducerState) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 20];
        let mut b = BatchBuilder::new(&mut buf).unwrap();
        for (ts, key, value, headers) in records {
            let hs: Vec<Header<'_>> =
                headers.iter().map(|(k, v)| Header { key: k, value: v.as_deref() }).collect();
            b.push(*ts, key.as_deref(), value.as_deref(), &hs).unwrap();
        }
        let mut scratch = vec![0u8; compression.scratch_len(b.len())];
        let n = b.finish(compression, producer, &mut scratch).unwrap();
        buf.truncate(n);
        buf
    }

    fn check(bytes: &[u8], records: &[OwnedRecord], producer: ProducerState) {
        let (batch, rest) = RecordBatch::decode(bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(batch.record_count as usize, records.len());
        assert_eq!(batch.last_offset_delta, records.len() as i32 - 1);
        assert_eq!(batch.producer_id, producer.producer_id);
        assert_eq!(batch.producer_epoch, producer.producer_epoch);
        assert_eq!(batch.base_sequence, producer.base_sequence);
        assert_eq!(batch.is_transactional(), producer.transactional);
        assert_eq!(batch.max_timestamp, records.iter().map(|r| r.0).max().unwrap());
        let mut out = vec![0u8; 1 << 21];
        let decoded = batch.decompress_records(&mut out).unwrap();
        assert_eq!(decoded.len(), records.len());
        for (i, (rec, want)) in decoded.iter().zip(records).enumerate() {
            assert_eq!(rec.offset_delta, i as i32);
            assert_eq!(batch.base_timestamp + rec.timestamp_delta, want.0);
            assert_eq!(rec.key, want.1.as_deref());
            assert_eq!(rec.value, want.2.as_deref());
            let hs: Vec<(String, Option<Vec<u8>>)> =
                rec.headers.iter().map(|h| (h.key.into(), h.value.map(<[u8]>::to_vec))).collect();
            assert_eq!(&hs, &want.3);
        }
    }

    fn arb_record() -> impl Strategy<Value = OwnedRecord> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        (0i64..4_000_000_000_000, bytes(), bytes(), proptest::collection::vec(("[a-z]{0,8}", bytes()), 0..4))
    }

    proptest! {
        #[test]
        fn roundtrip(
            records in proptest::collection::vec(arb_record(), 1..20),
            lz4 in any::<bool>(),
            idempotent in any::<bool>(),
        ) {
            let compression = if lz4 { Compression::Lz4 } else { Compression::None };
            let producer = if idempotent {
                ProducerState { producer_id: 42, producer_epoch: 3, base_sequence: 17, transactional: false }
            } else {
                ProducerState::NONE
            };
            let bytes = build(&records, compression, producer);
            check(&bytes, &records, producer);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((batch, _)) = RecordBatch::decode(&bytes) {
                let mut out = [0u8; 512];
                let _ = batch.decompress_records(&mut out);
            }
        }
    }

    proptest! {
        #[test]
        fn word_copy_copies(src in proptest::collection::vec(any::<u8>(), 0..40), at in 0usize..8) {
            let mut dst = [0xAAu8; 48];
            copy_words(&mut dst[at..at + src.len()], &src);
            prop_assert_eq!(&dst[at..at + src.len()], &src[..]);
            prop_assert!(dst[..at].iter().chain(&dst[at + src.len()..]).all(|&b| b == 0xAA));
        }
    }

    #[test]
    fn held_records_move_to_the_front_unless_their_deltas_outgrow_the_room() {
        let far = 1i64 << 40;
        let mut buf = vec![0u8; 512];
        let mut b = BatchBuilder::new(&mut buf).unwrap();
        for (ts, v) in [(0, "a"), (far, "b"), (far + 5, "c"), (far - 3, "d")] {
            b.push(ts, None, Some(v.as_bytes()), &[Header { key: "h", value: None }]).unwrap();
        }
        let end = b.len();
        let first = EncodedRecords::new(&buf[HEADER_LEN..end]).next().unwrap().unwrap().size;
        let state = compact_records(&mut buf, HEADER_LEN + first, end, 0).unwrap();
        assert_eq!((state.record_count, state.base_timestamp, state.max_timestamp), (3, far, far + 5));
        let b = BatchBuilder::resume(&mut buf, state);
        let n = b.finish(Compression::None, ProducerState::NONE, &mut []).unwrap();
        let want: Vec<OwnedRecord> = [(far, "b"), (far + 5, "c"), (far - 3, "d")]
            .map(|(t, v)| (t, None, Some(v.as_bytes().to_vec()), vec![("h".into(), None)]))
            .into();
        check(&buf[..n], &want, ProducerState::NONE);

        // Timestamps far back from the first held one: no room to move them in place.
        let mut buf = vec![0u8; 512];
        let mut b = BatchBuilder::new(&mut buf).unwrap();
        for ts in [0, far, 0, 0, 0, 0] {
            b.push(ts, None, Some(b"v"), &[]).unwrap();
        }
        let end = b.len();
        let first = EncodedRecords::new(&buf[HEADER_LEN..end]).next().unwrap().unwrap().size;
        let before = buf.clone();
        assert_eq!(compact_records(&mut buf, HEADER_LEN + first, end, 0), None);
        assert_eq!(buf, before, "unchanged");
    }

    #[test]
    fn lz4_batch_is_smaller_and_marked() {
        let value = [b'x'; 100];
        let records: Vec<OwnedRecord> =
            (0..50).map(|i| (1000 + i, None, Some(value.to_vec()), vec![])).collect();
        let plain = build(&records, Compression::None, ProducerState::NONE);
        let lz4 = build(&records, Compression::Lz4, ProducerState::NONE);
        assert!(lz4.len() < plain.len() / 4, "{} vs {}", lz4.len(), plain.len());
        let (batch, _) = RecordBatch::decode(&lz4).unwrap();
        assert_eq!(batch.compression(), Some(Compression::Lz4));
        check(&lz4, &records, ProducerState::NONE);
    }

    #[cfg(all(feature = "gzip", feature = "snappy", feature = "zstd"))]
    #[test]
    fn host_codec_batches_are_smaller_marked_and_read_back() {
        let value = [b'y'; 100];
        let records: Vec<OwnedRecord> = (0..50)
            .map(|i| (1000 + i, Some(std::format!("k{i}").into_bytes()), Some(value.to_vec()), vec![]))
            .collect();
        let plain = build(&records, Compression::None, ProducerState::NONE);
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Zstd] {
            let bytes = build(&records, codec, ProducerState::NONE);
            assert!(bytes.len() < plain.len() / 4, "{codec:?}: {} vs {}", bytes.len(), plain.len());
            let (batch, _) = RecordBatch::decode(&bytes).unwrap();
            assert_eq!(batch.compression(), Some(codec));
            check(&bytes, &records, ProducerState::NONE);
        }
    }

    #[test]
    fn a_codec_missing_from_the_build_is_refused() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Zstd] {
            if codec.is_available() {
                continue;
            }
            let mut buf = [0u8; 256];
            let mut b = BatchBuilder::new(&mut buf).unwrap();
            b.push(1, None, Some(b"v"), &[]).unwrap();
            assert_eq!(
                b.finish(codec, ProducerState::NONE, &mut []),
                Err(FinishError::UnsupportedCompression(codec))
            );
        }
    }

    #[test]
    fn incompressible_batch_goes_uncompressed() {
        let records: Vec<OwnedRecord> = vec![(5, Some(vec![1, 2, 3]), Some(vec![9, 8, 7]), vec![])];
        let bytes = build(&records, Compression::Lz4, ProducerState::NONE);
        let (batch, _) = RecordBatch::decode(&bytes).unwrap();
        assert_eq!(batch.compression(), Some(Compression::None));
    }

    #[test]
    fn full_batch_is_left_unchanged() {
        let mut buf = [0u8; HEADER_LEN + 20];
        let mut b = BatchBuilder::new(&mut buf).unwrap();
        b.push(1, None, Some(b"0123456789"), &[]).unwrap();
        let before = b.state();
        let err = b.push(2, None, Some(b"0123456789"), &[]).unwrap_err();
        assert!(matches!(err, PushError::Full { required } if required > 5));
        assert_eq!(b.state(), before);
    }

    #[test]
    fn corrupted_byte_fails_crc() {
        let records: Vec<OwnedRecord> = vec![(5, None, Some(b"hello".to_vec()), vec![])];
        let mut bytes = build(&records, Compression::None, ProducerState::NONE);
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        assert!(matches!(RecordBatch::decode(&bytes), Err(DecodeError::CrcMismatch { .. })));
    }

    #[test]
    fn producer_state_rewrite_keeps_crc_valid() {
        let records: Vec<OwnedRecord> = vec![(5, None, Some(b"hello".to_vec()), vec![])];
        let mut bytes = build(&records, Compression::None, ProducerState::NONE);
        let p = ProducerState { producer_id: 7, producer_epoch: 1, base_sequence: 99, transactional: true };
        set_producer_state(&mut bytes, p);
        check(&bytes, &records, p);
    }
}
