//! Reading records: the input is bytes, read in big chunks and split at a delimiter with
//! `memchr::memmem`; each record is copied once, into the `Vec` the producer takes. Any byte
//! sequence is a valid record: nothing here is text.

use std::collections::VecDeque;
use std::ops::Range;

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
    buf: Vec<u8>,
    /// Start of the first byte not yet handed out.
    start: usize,
    /// The search for the next delimiter resumes here: `start..scanned` holds none.
    scanned: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Splitter<R> {
    /// Splits `input` at `delimiter` (not empty).
    pub fn new(input: R, delimiter: &[u8]) -> Self {
        Self {
            input,
            finder: memmem::Finder::new(delimiter).into_owned(),
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            eof: false,
        }
    }

    /// Where the next record is in [`buffer`](Self::buffer), `None` at the end of input. The
    /// range is valid until the next call. Returns as soon as a record is complete: a record
    /// typed on a terminal goes out before the next is read.
    pub async fn next(&mut self) -> std::io::Result<Option<Range<usize>>> {
        let dlen = self.finder.needle().len();
        loop {
            if let Some(record) = self.next_buffered() {
                return Ok(Some(record));
            }
            if self.eof {
                if self.start == self.buf.len() {
                    return Ok(None);
                }
                let record = self.start..self.buf.len();
                self.start = self.buf.len();
                self.scanned = self.start;
                return Ok(Some(record));
            }
            // A delimiter may straddle the end of what was read: rescan its first bytes only.
            self.scanned = self.buf.len().saturating_sub(dlen - 1).max(self.start);
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.scanned -= self.start;
                self.start = 0;
            }
            self.buf.reserve(CHUNK);
            if self.input.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
            }
        }
    }

    /// The next record if it is already in the buffer (its delimiter read); `None` when more
    /// must be read first, or at the end of input: then [`next`](Self::next) says which.
    pub fn next_buffered(&mut self) -> Option<Range<usize>> {
        let i = self.finder.find(&self.buf[self.scanned..])?;
        let end = self.scanned + i;
        let record = self.start..end;
        self.start = end + self.finder.needle().len();
        self.scanned = self.start;
        Some(record)
    }

    /// The bytes read, which the ranges [`next`](Self::next) returns index.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }
}

/// A record read: where it is in the splitter's buffer, or a whole file.
pub enum Record {
    /// A delimited record: a range of [`Records::bytes`].
    Split(Range<usize>),
    /// A FILE argument sent whole.
    Whole(Vec<u8>),
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
                    Ok(Some(range)) => return Ok(Some(Record::Split(range))),
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
                return tokio::fs::read(&path).await.map(|v| Some(Record::Whole(v))).map_err(failed);
            }
        }
    }

    /// The next record of the input being read if it is already buffered, without awaiting:
    /// `None` when [`next`](Self::next) must be awaited.
    pub fn next_buffered(&mut self) -> Option<Record> {
        self.current.as_mut()?.1.next_buffered().map(Record::Split)
    }

    /// The bytes [`Record::Split`] ranges index.
    pub fn bytes(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |(_, s)| s.buffer())
    }

    /// The record delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }
}

/// Splits `record` at the first `key_delimiter` into key and value; without one (or with no
/// delimiter in the record), the value is all of it and the key `fixed_key`.
pub fn key_value(
    record: &[u8],
    key_delimiter: Option<&memmem::Finder<'_>>,
    fixed_key: Option<&[u8]>,
) -> (Option<Vec<u8>>, Vec<u8>) {
    if let Some(finder) = key_delimiter {
        if let Some(i) = finder.find(record) {
            let value = record[i + finder.needle().len()..].to_vec();
            return (Some(record[..i].to_vec()), value);
        }
    }
    (fixed_key.map(<[u8]>::to_vec), record.to_vec())
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
                out.push(s.buffer()[r].to_vec());
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
                out.push(s.buffer()[r].to_vec());
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
        assert_eq!(key_value(b"k:v:w", Some(&colon), Some(b"f")), (Some(b"k".to_vec()), b"v:w".to_vec()));
        assert_eq!(key_value(b"vw", Some(&colon), Some(b"f")), (Some(b"f".to_vec()), b"vw".to_vec()));
        assert_eq!(key_value(b"vw", None, None), (None, b"vw".to_vec()));
    }
}
