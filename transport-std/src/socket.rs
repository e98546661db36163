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
        tls_error: Option<crate::error::TlsError>,
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
pub(crate) struct BufPool(std::sync::Mutex<Idle>);

#[derive(Default)]
struct Idle {
    bufs: Vec<Vec<u8>>,
    /// Their capacities summed.
    bytes: usize,
}

impl BufPool {
    /// At most this many bytes of idle buffers are kept: two requests' worth at the default
    /// `max.request.size`, enough for the reuse above. Counting buffers instead (32 of up to
    /// 4 MiB) let the buffers a burst of requests grew stay allocated: 4.7 MB of the command
    /// line's live heap at its peak with 256 KiB batches, 2.1 MB with this bound (massif).
    const MAX_IDLE_BYTES: usize = 2 << 20;

    pub(crate) fn take(&self) -> Vec<u8> {
        let mut idle = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let buf = idle.bufs.pop().unwrap_or_default();
        idle.bytes -= buf.capacity();
        buf
    }

    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        let mut idle = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buf.capacity() == 0 || idle.bytes + buf.capacity() > Self::MAX_IDLE_BYTES {
            return;
        }
        buf.clear();
        idle.bytes += buf.capacity();
        idle.bufs.push(buf);
    }
}

/// Longest a socket write may take before the connection is given up.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// `send.buffer.bytes` / `receive.buffer.bytes`: the sizes asked of the OS for each socket
/// (`SO_SNDBUF` / `SO_RCVBUF`); `None` leaves the OS's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffers {
    pub send: Option<u32>,
    pub receive: Option<u32>,
    /// librdkafka's `socket.keepalive.enable`: `SO_KEEPALIVE` on each socket.
    pub keepalive: bool,
    /// librdkafka's `broker.address.family`: which of a name's addresses are tried.
    pub family: Family,
}

/// `broker.address.family`: `any`, `v4` or `v6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Family {
    #[default]
    Any,
    V4,
    V6,
}

/// How a connection is opened.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// `security.protocol=SSL`: the TLS to wrap the socket in.
    pub tls: Option<crate::tls::Tls>,
    pub buffers: Buffers,
}

/// Connects to `host:port` as `client.dns.lookup=use_all_dns_ips` says: every address the name
/// resolves to, in order, until one connects; the last failure otherwise. Each socket gets the
/// buffer sizes asked for before it connects (the receive window is agreed in the handshake).
pub(crate) async fn connect(host: &str, port: u16, buffers: Buffers) -> std::io::Result<TcpStream> {
    let mut last = None;
    let wanted = |a: &std::net::SocketAddr| match buffers.family {
        Family::Any => true,
        Family::V4 => a.is_ipv4(),
        Family::V6 => a.is_ipv6(),
    };
    for addr in tokio::net::lookup_host((host, port)).await?.filter(wanted) {
        let socket =
            if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        if let Some(n) = buffers.send {
            socket.set_send_buffer_size(n)?;
        }
        if let Some(n) = buffers.receive {
            socket.set_recv_buffer_size(n)?;
        }
        if buffers.keepalive {
            socket.set_keepalive(true)?;
        }
        match socket.connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => {
                debug!("connect to {host}:{port} at {addr} failed: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address of the family wanted"),
        )
    }))
}

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
/// the connection's reader and writer tasks) or `Failed` on `io`. TCP connect and TLS handshake
/// together get `setup`: the attempt's timeout from the core (`socket.connection.setup.timeout.ms`,
/// grown for each failure in a row).
pub(crate) fn open(
    conn: ConnId,
    host: String,
    port: u16,
    setup: Duration,
    dial: Dial,
    io: &mpsc::UnboundedSender<Io>,
    bufs: &Arc<BufPool>,
) -> JoinHandle<()> {
    let io = io.clone();
    let bufs = bufs.clone();
    let Dial { tls, buffers } = dial;
    #[cfg(feature = "tracing")]
    let span = tracing::debug_span!("connection", broker = %format_args!("{host}:{port}"));
    let task = async move {
        // TCP connect and, with TLS, the handshake: both within the setup timeout.
        // Err((whether the TLS handshake failed, the error)).
        let opened = tokio::time::timeout(setup, async {
            let tcp = connect(&host, port, buffers).await.map_err(|e| (false, e))?;
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
                let tls_error =
                    handshake.then(|| crate::error::TlsError::handshake(&format!("{host}:{port}"), &e));
                let cause = match &tls_error {
                    // Unlike a refused TCP connection, this will not heal by itself.
                    Some(tls) => {
                        let message = tls.to_string();
                        warn!("{message}");
                        message
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_address_is_tried_and_buffer_sizes_are_set() {
        // "localhost" may resolve to ::1 first; only 127.0.0.1 listens.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let buffers =
            Buffers { send: Some(64 * 1024), receive: Some(16 * 1024), keepalive: true, family: Family::Any };
        let tcp = connect("localhost", port, buffers).await.unwrap();
        let sock = options(&tcp);
        // Linux doubles what it is asked for (bookkeeping); the size asked for is in there.
        assert!(sock.0 >= 64 * 1024 && sock.0 < 256 * 1024, "{sock:?}");
        assert!(sock.1 >= 16 * 1024 && sock.1 < 128 * 1024, "{sock:?}");
        assert!(sock.2, "SO_KEEPALIVE");
        let plain = Buffers { send: None, receive: None, keepalive: false, family: Family::Any };
        assert!(!options(&connect("127.0.0.1", port, plain).await.unwrap()).2);
        let err = connect("127.0.0.1", 1, plain).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        // Only IPv6 addresses wanted: 127.0.0.1 is not one of them.
        let v6 = Buffers { family: Family::V6, ..plain };
        assert_eq!(connect("127.0.0.1", port, v6).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    /// `SO_SNDBUF`, `SO_RCVBUF` and `SO_KEEPALIVE` of a connected stream.
    fn options(tcp: &TcpStream) -> (u32, u32, bool) {
        let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(
            tcp.as_fd().try_clone_to_owned().unwrap(),
        ));
        (sock.send_buffer_size().unwrap(), sock.recv_buffer_size().unwrap(), sock.keepalive().unwrap())
    }
    use std::os::fd::AsFd as _;
}
