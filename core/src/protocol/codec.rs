//! Cursors over byte slices: [`Writer`] for encoding, [`Reader`] for decoding.
//!
//! Both speak Kafka's primitive types (big-endian integers, varints, classic and compact strings,
//! bytes and arrays, tagged fields). Neither allocates.
//!
//! The writer never fails in the middle of an encoding: it counts every byte it is given and keeps
//! the first problem it meets, which [`Writer::finish`] reports. That keeps encoders free of `?`
//! noise, lets one function serve both for writing and for measuring (a writer over an empty
//! slice only counts), and lets a request be written in pieces: a writer can be given a window
//! into the logical output, so `poll_transmit` can emit bytes `[n, n + buf.len())` of a request
//! without keeping the whole request anywhere.

use core::fmt;

use super::varint;

/// Why an encoding could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The output buffer is too small; the whole encoding needs `required` bytes.
    BufferTooSmall {
        /// Bytes the whole encoding needs.
        required: usize,
    },
    /// A string or byte field is longer than its length prefix can express.
    TooLong,
    /// The message cannot be encoded at this version.
    UnsupportedVersion {
        /// The message's API key.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { required } => {
                write!(f, "buffer too small: {required} bytes required")
            }
            Self::TooLong => f.write_str("field longer than its length prefix allows"),
            Self::UnsupportedVersion { api_key, version } => {
                write!(f, "api key {api_key} cannot be encoded at version {version}")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why bytes could not be decoded. Every decoder in this crate returns one of these for any input
/// it cannot make sense of; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The input ended before the value did.
    Truncated,
    /// A length or count is negative (where null is not allowed) or larger than the input.
    InvalidLength,
    /// A varint runs past its maximum width.
    InvalidVarint,
    /// A string is not UTF-8.
    InvalidUtf8,
    /// A record batch's CRC-32C does not match its contents.
    CrcMismatch {
        /// The CRC the batch carries.
        stored: u32,
    },
    /// A record batch has a magic byte other than 2.
    UnsupportedMagic(i8),
    /// The version is outside what this decoder knows.
    UnsupportedVersion {
        /// The message's API key.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
    /// Compressed data is malformed, or uses a codec this build does not have.
    Compression,
    /// The output buffer for decompressed data is too small; it needs `required` bytes.
    BufferTooSmall {
        /// How many bytes the output needs at least.
        required: usize,
    },
    /// Bytes remain after a message that should have ended.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated input"),
            Self::InvalidLength => f.write_str("invalid length"),
            Self::InvalidVarint => f.write_str("invalid varint"),
            Self::InvalidUtf8 => f.write_str("string is not UTF-8"),
            Self::CrcMismatch { stored } => {
                write!(f, "CRC mismatch: stored {stored:#010x}")
            }
            Self::UnsupportedMagic(m) => write!(f, "unsupported record batch magic {m}"),
            Self::UnsupportedVersion { api_key, version } => {
                write!(f, "api key {api_key} cannot be decoded at version {version}")
            }
            Self::Compression => f.write_str("malformed or unsupported compressed data"),
            Self::BufferTooSmall { required } => {
                write!(f, "buffer too small: {required} bytes required")
            }
            Self::TrailingBytes => f.write_str("trailing bytes after message"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// An encoding cursor. See the module docs for its counting and windowing behaviour.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    /// Logical position: bytes written so far, whether or not they fell into `buf`.
    pos: usize,
    /// Logical offset that `buf[0]` stands for.
    skip: usize,
    /// In window mode bytes outside `buf` are expected, not an error.
    window: bool,
    error: Option<EncodeError>,
}

impl<'a> Writer<'a> {
    /// A writer that fills `buf` from its start; writing past its end is reported by `finish`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0, skip: 0, window: false, error: None }
    }

    /// A writer that stores nothing and only counts.
    pub fn counting() -> Writer<'static> {
        Writer { buf: &mut [], pos: 0, skip: 0, window: true, error: None }
    }

    /// A writer that stores only logical bytes `[skip, skip + buf.len())` of the encoding.
    pub fn window(buf: &'a mut [u8], skip: usize) -> Self {
        Self { buf, pos: 0, skip, window: true, error: None }
    }

    /// Bytes written so far (the logical length, stored or not).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes of the window that were filled.
    pub fn filled(&self) -> usize {
        self.pos.saturating_sub(self.skip).min(self.buf.len())
    }

    /// Records a problem; the first one wins.
    pub fn fail(&mut self, error: EncodeError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// The logical length, or the first problem met.
    pub fn finish(self) -> Result<usize, EncodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.window && self.pos > self.buf.len() {
            return Err(EncodeError::BufferTooSmall { required: self.pos });
        }
        Ok(self.pos)
    }

    /// Raw bytes, without a length prefix.
    pub fn put_slice(&mut self, data: &[u8]) {
        let start = self.pos;
        let end = start + data.len();
        self.pos = end;
        let lo = start.max(self.skip);
        let hi = end.min(self.skip + self.buf.len());
        if lo < hi {
            self.buf[lo - self.skip..hi - self.skip].copy_from_slice(&data[lo - start..hi - start]);
        }
    }

    /// One unsigned byte.
    pub fn put_u8(&mut self, v: u8) {
        self.put_slice(&[v]);
    }
    /// `INT8`: one signed byte.
    pub fn put_i8(&mut self, v: i8) {
        self.put_slice(&v.to_be_bytes());
    }
    /// `BOOLEAN`: 1 for true, 0 for false.
    pub fn put_bool(&mut self, v: bool) {
        self.put_u8(u8::from(v));
    }
    /// `INT16`, big-endian.
    pub fn put_i16(&mut self, v: i16) {
        self.put_slice(&v.to_be_bytes());
    }
    /// `INT32`, big-endian.
    pub fn put_i32(&mut self, v: i32) {
        self.put_slice(&v.to_be_bytes());
    }
    /// `UINT32`, big-endian.
    pub fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }
    /// `INT64`, big-endian.
    pub fn put_i64(&mut self, v: i64) {
        self.put_slice(&v.to_be_bytes());
    }
    /// `UUID`: its 16 bytes, as given.
    pub fn put_uuid(&mut self, v: &[u8; 16]) {
        self.put_slice(v);
    }

    /// `UNSIGNED_VARINT`: LEB128, as compact lengths and tagged fields use it.
    pub fn put_uvarint(&mut self, v: u32) {
        let mut tmp = [0u8; varint::MAX_LEN32];
        let n = varint::encode_u32(v, &mut tmp);
        self.put_slice(&tmp[..n]);
    }
    /// `VARINT`: a zigzag-encoded `i32`, as record fields use it.
    pub fn put_varint(&mut self, v: i32) {
        self.put_uvarint(varint::zigzag32(v));
    }
    /// `VARLONG`: a zigzag-encoded `i64`.
    pub fn put_varlong(&mut self, v: i64) {
        let mut tmp = [0u8; varint::MAX_LEN64];
        let n = varint::encode_u64(varint::zigzag64(v), &mut tmp);
        self.put_slice(&tmp[..n]);
    }

    /// A length prefix: `i16`/`i32` classic, or unsigned varint `len + 1` when compact.
    fn put_len(&mut self, len: Option<usize>, compact: bool, max: usize) {
        match (len, compact) {
            (Some(n), _) if n > max => self.fail(EncodeError::TooLong),
            (None, true) => self.put_uvarint(0),
            // `n <= max <= i32::MAX` was checked above, so these conversions are lossless.
            (Some(n), true) => self.put_uvarint(n as u32 + 1),
            (None, false) if max == i16::MAX as usize => self.put_i16(-1),
            (None, false) => self.put_i32(-1),
            (Some(n), false) if max == i16::MAX as usize => self.put_i16(n as i16),
            (Some(n), false) => self.put_i32(n as i32),
        }
    }

    /// `STRING` (i16 length) or `COMPACT_STRING`.
    pub fn put_string(&mut self, s: &str, compact: bool) {
        self.put_nullable_string(Some(s), compact);
    }

    /// `NULLABLE_STRING` or `COMPACT_NULLABLE_STRING`.
    pub fn put_nullable_string(&mut self, s: Option<&str>, compact: bool) {
        self.put_len(s.map(str::len), compact, i16::MAX as usize);
        if let Some(s) = s {
            self.put_slice(s.as_bytes());
        }
    }

    /// `NULLABLE_BYTES` or `COMPACT_NULLABLE_BYTES` (also used for `RECORDS`).
    pub fn put_nullable_bytes(&mut self, b: Option<&[u8]>, compact: bool) {
        self.put_len(b.map(<[u8]>::len), compact, i32::MAX as usize - 1);
        if let Some(b) = b {
            self.put_slice(b);
        }
    }

    /// An array length (`-1` for null).
    pub fn put_array_len(&mut self, len: Option<usize>, compact: bool) {
        self.put_len(len, compact, i32::MAX as usize - 1);
    }

    /// An empty tagged-field section.
    pub fn put_empty_tags(&mut self) {
        self.put_uvarint(0);
    }
}

/// A decoding cursor. Every read checks bounds and returns [`DecodeError`] instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    /// The unread rest of the input.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Bytes between an earlier position and now.
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start.min(self.pos)..self.pos]
    }

    /// The next `n` bytes, borrowed from the input.
    pub fn get_slice(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn get_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.get_slice(N)?);
        Ok(out)
    }

    /// One unsigned byte.
    pub fn get_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.get_array::<1>()?[0])
    }
    /// `INT8`: one signed byte.
    pub fn get_i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.get_array()?))
    }
    /// `BOOLEAN`: any non-zero byte is true.
    pub fn get_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.get_u8()? != 0)
    }
    /// `INT16`, big-endian.
    pub fn get_i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.get_array()?))
    }
    /// `INT32`, big-endian.
    pub fn get_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.get_array()?))
    }
    /// `UINT32`, big-endian.
    pub fn get_u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.get_array()?))
    }
    /// `INT64`, big-endian.
    pub fn get_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.get_array()?))
    }
    /// `UUID`: 16 bytes.
    pub fn get_uuid(&mut self) -> Result<[u8; 16], DecodeError> {
        self.get_array()
    }

    /// `UNSIGNED_VARINT` of at most 32 bits.
    pub fn get_uvarint(&mut self) -> Result<u32, DecodeError> {
        let (v, n) = varint::decode_u32(self.rest())?;
        self.pos += n;
        Ok(v)
    }
    /// `VARINT`: a zigzag-encoded `i32`.
    pub fn get_varint(&mut self) -> Result<i32, DecodeError> {
        Ok(varint::unzigzag32(self.get_uvarint()?))
    }
    /// `VARLONG`: a zigzag-encoded `i64`.
    pub fn get_varlong(&mut self) -> Result<i64, DecodeError> {
        let (v, n) = varint::decode_u64(self.rest())?;
        self.pos += n;
        Ok(varint::unzigzag64(v))
    }

    /// A length prefix; `None` is null. Classic prefixes are `i16` when `short`, else `i32`.
    fn get_len(&mut self, compact: bool, short: bool) -> Result<Option<usize>, DecodeError> {
        let n: i64 = if compact {
            i64::from(self.get_uvarint()?) - 1
        } else if short {
            i64::from(self.get_i16()?)
        } else {
            i64::from(self.get_i32()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError::InvalidLength),
            // `n` fits in usize: it came from at most 32 bits.
            n => Ok(Some(n as usize)),
        }
    }

    fn get_str_bytes(&mut self, compact: bool) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.get_len(compact, true)? {
            None => Ok(None),
            Some(n) => self.get_slice(n).map(Some),
        }
    }

    /// `NULLABLE_STRING` or `COMPACT_NULLABLE_STRING`; `None` for null.
    pub fn get_nullable_string(&mut self, compact: bool) -> Result<Option<&'a str>, DecodeError> {
        match self.get_str_bytes(compact)? {
            None => Ok(None),
            Some(b) => core::str::from_utf8(b).map(Some).map_err(|_| DecodeError::InvalidUtf8),
        }
    }

    /// `STRING` or `COMPACT_STRING`; a null is [`DecodeError::InvalidLength`].
    pub fn get_string(&mut self, compact: bool) -> Result<&'a str, DecodeError> {
        self.get_nullable_string(compact)?.ok_or(DecodeError::InvalidLength)
    }

    /// `NULLABLE_BYTES` or `COMPACT_NULLABLE_BYTES` (also `RECORDS`); `None` for null.
    pub fn get_nullable_bytes(&mut self, compact: bool) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.get_len(compact, false)? {
            None => Ok(None),
            Some(n) => self.get_slice(n).map(Some),
        }
    }

    /// An array length. Each element takes at least `min_element_len` bytes, so a count the
    /// remaining input cannot hold is rejected here rather than trusted by a loop.
    pub fn get_array_len(
        &mut self,
        compact: bool,
        min_element_len: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let n = self.get_len(compact, false)?;
        if let Some(n) = n {
            if n.saturating_mul(min_element_len.max(1)) > self.remaining() {
                return Err(DecodeError::InvalidLength);
            }
        }
        Ok(n)
    }

    /// A tagged-field section: validated and returned so that known tags can be looked up.
    pub fn get_tags(&mut self) -> Result<TaggedFields<'a>, DecodeError> {
        let start = self.pos;
        let count = self.get_uvarint()? as usize;
        if count > self.remaining() {
            return Err(DecodeError::InvalidLength);
        }
        for _ in 0..count {
            self.get_uvarint()?;
            let size = self.get_uvarint()? as usize;
            self.get_slice(size)?;
        }
        Ok(TaggedFields { raw: self.since(start) })
    }

    /// Fails if any input is left.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// A validated tagged-field section. Unknown tags are kept, never rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaggedFields<'a> {
    raw: &'a [u8],
}

impl<'a> TaggedFields<'a> {
    /// The data of tag `tag`, if present.
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.iter().find(|(t, _)| *t == tag).map(|(_, d)| d)
    }

    /// All `(tag, data)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let mut r = Reader::new(self.raw);
        // Validated by `Reader::get_tags`, so these reads succeed; on a bug they end the walk.
        let count = r.get_uvarint().unwrap_or(0);
        (0..count).map_while(move |_| {
            let tag = r.get_uvarint().ok()?;
            let size = r.get_uvarint().ok()? as usize;
            Some((tag, r.get_slice(size).ok()?))
        })
    }
}

/// A validated array inside a decoded message, read lazily.
///
/// Decoders walk every element once to validate the whole message; iterating later runs the same
/// element decoder again over the same bytes, so it cannot fail.
pub struct Array<'a, T> {
    raw: &'a [u8],
    len: usize,
    version: i16,
    decode: fn(&mut Reader<'a>, i16) -> Result<T, DecodeError>,
}

impl<T> Clone for Array<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Array<'_, T> {}

/// Arrays are equal when they hold the same encoded elements.
impl<T> PartialEq for Array<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.len == other.len && self.version == other.version
    }
}
impl<T> Eq for Array<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for Array<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<T: defmt::Format> defmt::Format for Array<'_, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for (i, element) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{}", element);
        }
        defmt::write!(f, "]");
    }
}

impl<'a, T> Array<'a, T> {
    /// Reads an array's length and validates every element. A null array reads as empty.
    pub fn decode(
        r: &mut Reader<'a>,
        version: i16,
        compact: bool,
        min_element_len: usize,
        decode: fn(&mut Reader<'a>, i16) -> Result<T, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let len = r.get_array_len(compact, min_element_len)?.unwrap_or(0);
        Self::decode_elements(r, len, version, decode)
    }

    /// Reads an array of fixed-size elements (`element_len` bytes each, every bit pattern valid,
    /// as for broker ids): its bytes are taken whole, without a walk. A null array reads as empty.
    pub fn decode_fixed(
        r: &mut Reader<'a>,
        version: i16,
        compact: bool,
        element_len: usize,
        decode: fn(&mut Reader<'a>, i16) -> Result<T, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let len = r.get_array_len(compact, element_len)?.unwrap_or(0);
        let raw = r.get_slice(len * element_len)?;
        Ok(Self { raw, len, version, decode })
    }

    /// Validates `len` elements that follow a length read elsewhere.
    pub fn decode_elements(
        r: &mut Reader<'a>,
        len: usize,
        version: i16,
        decode: fn(&mut Reader<'a>, i16) -> Result<T, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let start = r.position();
        for _ in 0..len {
            decode(r, version)?;
        }
        Ok(Self { raw: r.since(start), len, version, decode })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, decoded one by one as the iterator advances.
    pub fn iter(&self) -> ArrayIter<'a, T> {
        ArrayIter {
            reader: Reader::new(self.raw),
            left: self.len,
            version: self.version,
            decode: self.decode,
        }
    }
}

impl<'a, T> IntoIterator for Array<'a, T> {
    type Item = T;
    type IntoIter = ArrayIter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over an [`Array`].
pub struct ArrayIter<'a, T> {
    reader: Reader<'a>,
    left: usize,
    version: i16,
    decode: fn(&mut Reader<'a>, i16) -> Result<T, DecodeError>,
}

impl<T> fmt::Debug for ArrayIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayIter").field("left", &self.left).finish()
    }
}

impl<T> Iterator for ArrayIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The array was validated when decoded, so this succeeds; a failure would be a bug here
        // and ends the iteration rather than panicking.
        match (self.decode)(&mut self.reader, self.version) {
            Ok(v) => Some(v),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_reports_required_size() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.put_i32(7);
        w.put_i16(1);
        assert_eq!(w.finish(), Err(EncodeError::BufferTooSmall { required: 6 }));
    }

    #[test]
    fn window_writes_only_its_part() {
        let mut full = [0u8; 10];
        let mut w = Writer::new(&mut full);
        w.put_i64(0x0102_0304_0506_0708);
        w.put_i16(0x090a);
        assert_eq!(w.finish(), Ok(10));
        for skip in 0..10 {
            for len in 0..=10 - skip {
                let mut part = [0u8; 10];
                let mut w = Writer::window(&mut part[..len], skip);
                w.put_i64(0x0102_0304_0506_0708);
                w.put_i16(0x090a);
                assert_eq!(w.filled(), len);
                assert_eq!(&part[..len], &full[skip..skip + len]);
            }
        }
    }

    #[test]
    fn strings_classic_and_compact() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        w.put_string("ab", false);
        w.put_string("ab", true);
        w.put_nullable_string(None, false);
        w.put_nullable_string(None, true);
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], &[0, 2, b'a', b'b', 3, b'a', b'b', 0xff, 0xff, 0]);
        let mut r = Reader::new(&buf[..n]);
        assert_eq!(r.get_string(false), Ok("ab"));
        assert_eq!(r.get_string(true), Ok("ab"));
        assert_eq!(r.get_nullable_string(false), Ok(None));
        assert_eq!(r.get_nullable_string(true), Ok(None));
        assert!(r.is_empty());
    }

    #[test]
    fn hostile_array_count_is_rejected() {
        // A count of 2^31-1 elements with four bytes of input left.
        let bytes = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.get_array_len(false, 4), Err(DecodeError::InvalidLength));
    }

    #[test]
    fn tags_are_skipped_and_found() {
        // Two tags: 0 with 2 bytes, 5 with 0 bytes.
        let bytes = [2, 0, 2, 0xaa, 0xbb, 5, 0];
        let mut r = Reader::new(&bytes);
        let tags = r.get_tags().unwrap();
        assert!(r.is_empty());
        assert_eq!(tags.get(0), Some(&[0xaa, 0xbb][..]));
        assert_eq!(tags.get(5), Some(&[][..]));
        assert_eq!(tags.get(1), None);
        let truncated = [1, 0, 5, 1];
        assert_eq!(Reader::new(&truncated).get_tags(), Err(DecodeError::Truncated));
    }
}
