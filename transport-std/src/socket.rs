//! Sockets: opening a connection (TCP, then TLS if configured, within the setup timeout), one
//! reader and one writer task per connection, and what they report to the driver.

use std::sync::Arc;
use std::time::Duration;

use picokafka::ConnId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Bytes read per socket read.
const READ_CHUNK: usize = 64 * 1024;

/// What the socket tasks report.
pub(crate) enum Io {
    Connected {
        conn: ConnId,
        writer: mpsc::UnboundedSender<Vec<u8>>,
        read: JoinHandle<()>,
        write: JoinHandle<()>,
    },
    Failed {
        conn: ConnId,
        /// What went wrong, naming the broker's address: refused, unresolvable, timed out.
        cause: String,
        /// A TLS handshake that failed (untrusted certificate, wrong name, ...): it will not
        /// heal by retrying, so records waiting for that broker fail with it.
        tls_error: Option<String>,
    },
    Input {
        conn: ConnId,
        data: Vec<u8>,
    },
    Disconnected {
        conn: ConnId,
    },
}

pub(crate) enum Socket {
    Connecting(JoinHandle<()>),
    Open {
        writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
        read: JoinHandle<()>,
        write: Option<JoinHandle<()>>,
    },
}

impl Socket {
    /// Closes the socket the way the core asked: reading stops at once; the writer first writes
    /// what it was given (with acks=0 those bytes are records already reported delivered), then
    /// shuts the connection down. Returns the writer task to wait for.
    pub(crate) fn close(mut self) -> Option<JoinHandle<()>> {
        match &mut self {
            Socket::Connecting(_) => None,
            Socket::Open { writer, write, .. } => {
                // Dropping the sender ends the writer's loop once the queue is written.
                writer.take();
                write.take()
            }
        }
    }
}

impl Drop for Socket {
    /// What is still owned is stopped: a failed connection's both directions, or the reader of
    /// a closed one.
    fn drop(&mut self) {
        match self {
            Socket::Connecting(task) => task.abort(),
            Socket::Open { read, write, .. } => {
                read.abort();
                if let Some(w) = write {
                    w.abort();
                }
            }
        }
    }
}

/// Byte buffers that cross between the driver and the socket tasks, kept for reuse: without it
/// every request written and every response read is a fresh allocation, and growing a
/// request's buffer by `extend_from_slice` reallocates and copies it several times (together
/// ~10 % of the producer's CPU at 16 KiB batches).
#[derive(Default)]
pub(crate) struct BufPool(std::sync::Mutex<Vec<Vec<u8>>>);

impl BufPool {
    /// At most this many idle buffers are kept...
    const MAX_IDLE: usize = 32;
    /// ...and none larger than this, so a burst cannot pin memory.
    const MAX_CAPACITY: usize = 4 << 20;

    pub(crate) fn take(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop().unwrap_or_default()
    }

    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > Self::MAX_CAPACITY {
            return;
        }
        buf.clear();
        let mut idle = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < Self::MAX_IDLE {
            idle.push(buf);
        }
    }
}

/// Longest a socket write may take before the connection is given up.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A socket ready to carry Kafka frames.
enum Opened {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Starts a connection's writer and reader tasks. The reader waits for the returned sender, so
/// that no input can overtake the `Connected` report.
fn spawn_socket_tasks<R, W>(
    conn: ConnId,
    mut rd: R,
    mut wr: W,
    io: &mpsc::UnboundedSender<Io>,
    bufs: &Arc<BufPool>,
) -> (JoinHandle<()>, JoinHandle<()>, mpsc::UnboundedSender<Vec<u8>>, oneshot::Sender<()>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (writer, mut chunks) = mpsc::unbounded_channel::<Vec<u8>>();
    let io_w = io.clone();
    let bufs_w = bufs.clone();
    let write_task = tokio::spawn(async move {
        while let Some(chunk) = chunks.recv().await {
            // A peer that stops reading must not keep this task forever.
            match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&chunk)).await {
                Ok(Ok(())) => bufs_w.give(chunk),
                _ => {
                    let _ = io_w.send(Io::Disconnected { conn });
                    return;
                }
            }
        }
        let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.shutdown()).await;
    });
    let (go, ready) = oneshot::channel::<()>();
    let io_r = io.clone();
    let bufs_r = bufs.clone();
    let read_task = tokio::spawn(async move {
        if ready.await.is_err() {
            return;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = io_r.send(Io::Disconnected { conn });
                    return;
                }
                Ok(n) => {
                    // Only what was read crosses over, in a reused buffer.
                    let mut data = bufs_r.take();
                    data.extend_from_slice(&buf[..n]);
                    if io_r.send(Io::Input { conn, data }).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (read_task, write_task, writer, go)
}

/// Opens connection `conn` to `host:port` in a task of its own, which reports `Connected` (with
/// the connection's reader and writer tasks) or `Failed` on `io`.
pub(crate) fn open(
    conn: ConnId,
    host: String,
    port: u16,
    setup: Duration,
    tls: Option<crate::tls::Tls>,
    io: &mpsc::UnboundedSender<Io>,
    bufs: &Arc<BufPool>,
) -> JoinHandle<()> {
    let io = io.clone();
    let bufs = bufs.clone();
    #[cfg(feature = "tracing")]
    let span = tracing::debug_span!("connection", broker = %format_args!("{host}:{port}"));
    let task = async move {
        // TCP connect and, with TLS, the handshake: both within the setup timeout.
        // Err((whether the TLS handshake failed, the error)).
        let opened = tokio::time::timeout(setup, async {
            let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| (false, e))?;
            let _ = tcp.set_nodelay(true);
            match &tls {
                None => Ok(Opened::Plain(tcp)),
                Some(tls) => Ok(Opened::Tls(Box::new(tls.connect(&host, tcp).await.map_err(|e| (true, e))?))),
            }
        })
        .await;
        let opened = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err((handshake, e))) => {
                let tls_error = handshake.then(|| format!("TLS handshake with {host}:{port} failed: {e}"));
                let cause = match &tls_error {
                    // Unlike a refused TCP connection, this will not heal by itself.
                    Some(message) => {
                        warn!("{message}");
                        message.clone()
                    }
                    None => {
                        let cause = format!("connect to {host}:{port} failed: {e}");
                        debug!("{cause}");
                        cause
                    }
                };
                let _ = io.send(Io::Failed { conn, cause, tls_error });
                return;
            }
            Err(_) => {
                let cause = format!(
                    "connect to {host}:{port} timed out after {} ms (socket.connection.setup.timeout.ms)",
                    setup.as_millis()
                );
                debug!("{cause}");
                let _ = io.send(Io::Failed { conn, cause, tls_error: None });
                return;
            }
        };
        let (read, write, writer, go) = match opened {
            Opened::Plain(tcp) => {
                let (rd, wr) = tcp.into_split();
                spawn_socket_tasks(conn, rd, wr, &io, &bufs)
            }
            Opened::Tls(stream) => {
                let (rd, wr) = tokio::io::split(*stream);
                spawn_socket_tasks(conn, rd, wr, &io, &bufs)
            }
        };
        let _ = io.send(Io::Connected { conn, writer, read, write });
        let _ = go.send(());
    };
    #[cfg(feature = "tracing")]
    let task = tracing::Instrument::instrument(task, span);
    tokio::spawn(task)
}
