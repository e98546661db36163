//! What `produce` writes to standard output: the records echoed (`-T`) and the delivery
//! reports (`-J`), one JSON object a line. A thread of its own writes them, so that a slow
//! reader of stdout never blocks the producer's task (delivery callbacks must not block);
//! the summary and progress go to stderr, apart from data.

use std::io::Write as _;
use std::sync::mpsc;

use base64::Engine as _;
use picokafka_tokio::{Delivery, Error};

/// One thing to write to stdout.
pub enum Out {
    /// Bytes as they are (`-T`).
    Echo(Vec<u8>),
    /// A record's outcome (`-J`).
    Report(Report),
}

/// A record's delivery report.
pub struct Report {
    /// The record's number in the input, from 0.
    pub record: u64,
    /// The topic asked for (also the one on a failed record).
    pub topic: std::sync::Arc<str>,
    /// The partition asked for, if any (a failed record may have none).
    pub partition: Option<i32>,
    pub key: Option<bytes::Bytes>,
    /// The value's length in bytes.
    pub size: usize,
    pub result: Result<Delivery, String>,
}

impl Report {
    /// Its JSON line, kcat's `-J` field names where they exist (`topic`, `partition`,
    /// `offset`, `ts`, `key`); a key that is not UTF-8 is `key_base64`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("record".into(), self.record.into());
        match &self.result {
            Ok(d) => {
                o.insert("topic".into(), d.topic.as_ref().into());
                o.insert("partition".into(), d.partition.into());
                o.insert("offset".into(), d.offset.into());
                o.insert("ts".into(), d.timestamp.into());
            }
            Err(_) => {
                o.insert("topic".into(), self.topic.as_ref().into());
                o.insert("partition".into(), self.partition.unwrap_or(-1).into());
            }
        }
        match &self.key {
            None => {
                o.insert("key".into(), serde_json::Value::Null);
            }
            Some(k) => match std::str::from_utf8(k) {
                Ok(s) => {
                    o.insert("key".into(), s.into());
                }
                Err(_) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(k);
                    o.insert("key_base64".into(), b64.into());
                }
            },
        }
        o.insert("size".into(), self.size.into());
        if let Err(e) = &self.result {
            o.insert("error".into(), e.as_str().into());
        }
        serde_json::Value::Object(o)
    }
}

/// The stdout writer: send [`Out`]s with [`sender`](Self::sender), then [`finish`](Self::finish).
pub struct Stdout {
    tx: Option<mpsc::Sender<Out>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stdout {
    /// Starts the writer thread.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Out>();
        let thread = std::thread::spawn(move || {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let write = |out: Out, w: &mut std::io::BufWriter<_>| -> std::io::Result<()> {
                match out {
                    Out::Echo(bytes) => w.write_all(&bytes),
                    Out::Report(r) => {
                        serde_json::to_writer(&mut *w, &r.to_json())?;
                        w.write_all(b"\n")
                    }
                }
            };
            // Written in big writes while reports keep coming, flushed whenever none waits.
            while let Ok(out) = rx.recv() {
                let mut result = write(out, &mut w);
                while let (Ok(()), Ok(out)) = (&result, rx.try_recv()) {
                    result = write(out, &mut w);
                }
                // stdout closed (`| head`): nothing more to write, the run goes on.
                if result.and_then(|()| w.flush()).is_err() {
                    break;
                }
            }
        });
        Self { tx: Some(tx), thread: Some(thread) }
    }

    /// A handle for a delivery callback.
    pub fn sender(&self) -> mpsc::Sender<Out> {
        self.tx.clone().expect("only finish takes the sender, and it consumes self")
    }

    /// Writes `out`.
    pub fn send(&self, out: Out) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(out);
        }
    }

    /// Waits until everything sent is written. Callbacks still holding a sender must have run
    /// (the producer closed).
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A delivery callback's report for `-J`.
pub fn report(
    record: u64,
    topic: std::sync::Arc<str>,
    partition: Option<i32>,
    key: Option<bytes::Bytes>,
    size: usize,
    result: &Result<Delivery, Error>,
) -> Out {
    let result = match result {
        Ok(d) => Ok(d.clone()),
        Err(e) => Err(e.to_string()),
    };
    Out::Report(Report { record, topic, partition, key, size, result })
}
