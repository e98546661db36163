//! Reading records: the input is bytes, read in big chunks and split at a delimiter with
//! `memchr::memmem`. A record is a slice of the chunk it was read into (`Bytes`), key and value
//! too: no record takes an allocation or a copy of its own before the producer copies it into a
//! batch, and a chunk's memory is freed once its last record is in one. Any byte sequence is a
//! valid record: nothing here is text.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked of the input per read (a record longer than this grows the buffer). tokio reads
/// standard input into a buffer of its own as large, then copies: 256 KiB is 430 reads for
/// 110 MB, and 1.5 MiB less peak RSS than 1 MiB reads.
const CHUNK: usize = 256 << 10;

/// Parses a delimiter as kcat writes it: `\n`, `\r`, `\t`, `\0`, `\\` and `\xNN` are escapes,
/// any other character is its UTF-8 bytes. An empty delimiter is refused.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = (hex.len() == 2)
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("delimiter {s:?}: \\x takes two hex digits"))?;
                out.push(byte);
            }
            Some(other) => return Err(format!("delimiter {s:?}: unknown escape \\{other}")),
            None => return Err(format!("delimiter {s:?}: ends in a lone \\")),
        }
    }
    if out.is_empty() {
        return Err("a delimiter cannot be empty".into());
    }
    Ok(out)
}

/// Splits a byte stream at every occurrence of a delimiter.
///
/// The delimiter ends a record; it is not part of one. Input that does not end with the
/// delimiter ends with one more record (the bytes after the last delimiter); an empty input,
/// or one ending with the delimiter, has no empty record after it. Two delimiters in a row
/// make an empty record, as kcat produces.
pub struct Splitter<R> {
    input: R,
    finder: memmem::Finder<'static>,
    /// Bytes read and not yet handed out. Records are split off its front and share its
    /// allocation; the next read goes into a new one if a record still holds this one.
    buf: BytesMut,
    /// The search for the next delimiter resumes here: `..scanned` holds none.
    scanned: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Splitter<R> {
    /// Splits `input` at `delimiter` (not empty).
    pub fn new(input: R, delimiter: &[u8]) -> Self {
        Self {
            input,
            finder: memmem::Finder::new(delimiter).into_owned(),
            buf: BytesMut::new(),
            scanned: 0,
            eof: false,
        }
    }

    /// The next record, `None` at the end of input. Returns as soon as a record is complete: a
    /// record typed on a terminal goes out before the next is read.
    pub async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        let dlen = self.finder.needle().len();
        loop {
            if let Some(record) = self.next_buffered() {
                return Ok(Some(record));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.scanned = 0;
                return Ok(Some(self.buf.split().freeze()));
            }
            // A delimiter may straddle the end of what was read: rescan its first bytes only.
            self.scanned = self.buf.len().saturating_sub(dlen - 1);
            self.buf.reserve(CHUNK);
            if self.input.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
            }
        }
    }

    /// The next record if it is already in the buffer (its delimiter read); `None` when more
    /// must be read first, or at the end of input: then [`next`](Self::next) says which.
    pub fn next_buffered(&mut self) -> Option<Bytes> {
        let end = self.scanned + self.finder.find(&self.buf[self.scanned..])?;
        let record = self.buf.split_to(end).freeze();
        self.buf.advance(self.finder.needle().len());
        self.scanned = 0;
        Some(record)
    }
}

/// A record read: delimited, or a whole file.
pub enum Record {
    /// A delimited record.
    Split(Bytes),
    /// A FILE argument sent whole.
    Whole(Bytes),
}

/// Reading standard input or FILEs failed; the message names which.
#[derive(Debug)]
pub struct InputError {
    pub source: String,
    pub error: std::io::Error,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading {}: {}", self.source, self.error)
    }
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// The records of a run: standard input split at the delimiter, or FILEs, each one record
/// (or split at the delimiter, kcat's `-l`), in the order given.
pub struct Records {
    delimiter: Vec<u8>,
    split_files: bool,
    files: VecDeque<String>,
    current: Option<(String, Splitter<Reader>)>,
}

impl Records {
    /// Standard input when `files` is empty, else `files`. Each file is opened once here, so
    /// that a missing or unreadable one fails the run before anything is sent.
    pub fn open(files: &[String], delimiter: Vec<u8>, split_files: bool) -> Result<Self, InputError> {
        for f in files {
            std::fs::File::open(f).map_err(|error| InputError { source: f.clone(), error })?;
        }
        let current = files.is_empty().then(|| {
            let stdin: Reader = Box::new(tokio::io::stdin());
            ("standard input".to_string(), Splitter::new(stdin, &delimiter))
        });
        Ok(Self { split_files, files: files.iter().cloned().collect(), current, delimiter })
    }

    /// The next record, `None` once every input is read.
    pub async fn next(&mut self) -> Result<Option<Record>, InputError> {
        loop {
            if let Some((name, splitter)) = &mut self.current {
                match splitter.next().await {
                    Ok(Some(record)) => return Ok(Some(Record::Split(record))),
                    Ok(None) => self.current = None,
                    Err(error) => return Err(InputError { source: name.clone(), error }),
                }
                continue;
            }
            let Some(path) = self.files.pop_front() else { return Ok(None) };
            let failed = |error| InputError { source: path.clone(), error };
            if self.split_files {
                let file: Reader = Box::new(tokio::fs::File::open(&path).await.map_err(failed)?);
                self.current = Some((path, Splitter::new(file, &self.delimiter)));
            } else {
                return tokio::fs::read(&path).await.map(|v| Some(Record::Whole(v.into()))).map_err(failed);
            }
        }
    }

    /// The next record of the input being read if it is already buffered, without awaiting:
    /// `None` when [`next`](Self::next) must be awaited.
    pub fn next_buffered(&mut self) -> Option<Record> {
        self.current.as_mut()?.1.next_buffered().map(Record::Split)
    }

    /// The record delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }
}

/// Splits `record` at the first `key_delimiter` into key and value; without one (or with no
/// delimiter in the record), the value is all of it and the key `fixed_key`. Both share the
/// record's bytes.
pub fn key_value(
    mut record: Bytes,
    key_delimiter: Option<&memmem::Finder<'_>>,
    fixed_key: Option<&Bytes>,
) -> (Option<Bytes>, Bytes) {
    if let Some(finder) = key_delimiter {
        if let Some(i) = finder.find(&record) {
            let key = record.split_to(i);
            record.advance(finder.needle().len());
            return (Some(key), record);
        }
    }
    (fixed_key.cloned(), record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], delimiter: &[u8]) -> Vec<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut s = Splitter::new(input, delimiter);
            let mut out = Vec::new();
            while let Some(r) = s.next().await.unwrap() {
                out.push(r.to_vec());
            }
            out
        })
    }

    #[test]
    fn escapes_as_kcat_writes_them() {
        assert_eq!(unescape("\\n").unwrap(), b"\n");
        assert_eq!(unescape("\\x00").unwrap(), b"\0");
        assert_eq!(unescape("\\0").unwrap(), b"\0");
        assert_eq!(unescape("##\\t").unwrap(), b"##\t");
        assert_eq!(unescape("\\xfF\\\\").unwrap(), b"\xff\\");
        assert_eq!(unescape("é").unwrap(), "é".as_bytes());
        assert!(unescape("").is_err());
        assert!(unescape("\\x0").is_err());
        assert!(unescape("\\q").is_err());
        assert!(unescape("a\\").is_err());
    }

    #[test]
    fn splits_bytes_at_the_delimiter() {
        assert_eq!(split(b"a\nb\n", b"\n"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(split(b"a\nb", b"\n"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(split(b"a\n\nb\n", b"\n"), [b"a".to_vec(), b"".to_vec(), b"b".to_vec()]);
        assert_eq!(split(b"", b"\n"), Vec::<Vec<u8>>::new());
        assert_eq!(split(b"\xff\xfe\0\x80\0", b"\0"), [b"\xff\xfe".to_vec(), b"\x80".to_vec()]);
        assert_eq!(split(b"one##two#three##", b"##"), [b"one".to_vec(), b"two#three".to_vec()]);
    }

    #[test]
    fn a_delimiter_across_two_reads_is_found() {
        // A reader that hands out one byte per read.
        let input: Vec<u8> = b"ab::cd::e".to_vec();
        let slow = tokio_test_reader(input);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(async {
            let mut s = Splitter::new(slow, b"::");
            let mut out = Vec::new();
            while let Some(r) = s.next().await.unwrap() {
                out.push(r.to_vec());
            }
            out
        });
        assert_eq!(got, [b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()]);
    }

    /// An `AsyncRead` giving one byte per read.
    fn tokio_test_reader(data: Vec<u8>) -> impl AsyncRead + Unpin {
        struct OneByte(VecDeque<u8>);
        impl AsyncRead for OneByte {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some(b) = self.0.pop_front() {
                    buf.put_slice(&[b]);
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        OneByte(data.into())
    }

    #[test]
    fn key_delimiter_wins_over_a_fixed_key() {
        let colon = memmem::Finder::new(b":");
        let f = Bytes::from_static(b"f");
        let kv = |r: &'static [u8], d, k| key_value(Bytes::from_static(r), d, k);
        assert_eq!(
            kv(b"k:v:w", Some(&colon), Some(&f)),
            (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v:w"))
        );
        assert_eq!(kv(b"vw", Some(&colon), Some(&f)), (Some(f.clone()), Bytes::from_static(b"vw")));
        assert_eq!(kv(b"vw", None, None), (None, Bytes::from_static(b"vw")));
        assert_eq!(kv(b":", Some(&colon), None), (Some(Bytes::new()), Bytes::new()));
    }
}
