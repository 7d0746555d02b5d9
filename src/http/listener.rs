//! Accepting HTTP connections without letting clients hurt the daemon.
//!
//! Receives a bound TCP or Unix listener and the router; emits one hyper HTTP/1.1 connection
//! task per client. It bounds what clients can hold: at most `max_connections` are served at
//! once (more are answered `503` at once and closed: after reading what they sent, so that the
//! close is clean and the client sees the answer, by at most [`BUSY_RESPONDERS`] small tasks of
//! at most [`BUSY_LINGER`] each; past those, simply closed); the request head must
//! arrive within [`HEAD_TIMEOUT`] (an idle keep-alive connection is closed after it too); a
//! response not taken within [`WRITE_TIMEOUT`] of progress ends the connection; a head is at
//! most [`MAX_HEAD`] bytes; a failing `accept` (EMFILE) is retried after a delay that doubles up
//! to [`ACCEPT_BACKOFF_MAX`] instead of spinning. On shutdown it stops accepting and gives open
//! connections [`SHUTDOWN_GRACE`] to finish their request. It never reads a body itself (the
//! handlers cap and time their bodies).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::control::server::ControlSocket;

/// How long a client has to send a request head (also the idle keep-alive limit).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write may make no progress before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) read; more is answered 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long open connections get to finish when the daemon stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Connections over the cap answered `503` at once (each by a task living at most
/// [`BUSY_LINGER`]); more than this are closed without an answer.
pub const BUSY_RESPONDERS: usize = 32;
/// How long a connection over the cap is given to send its request and take the `503`.
pub const BUSY_LINGER: Duration = Duration::from_millis(500);
/// The first wait after a failed `accept`; it doubles on each failure in a row.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait after failed `accept`s.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The answer to a client over the connection cap.
pub const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 75\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"ok\":false,\"error\":\"busy\",\"message\":\"too many connections; retry shortly\"}";

/// A bound listening socket.
pub enum Listener {
    Tcp(TcpListener),
    /// The socket file is removed when this is dropped (if it is still ours).
    Unix(ControlSocket),
}

impl Listener {
    /// Binds a TCP address.
    pub async fn tcp(addr: SocketAddr) -> io::Result<Listener> {
        TcpListener::bind(addr).await.map(Listener::Tcp)
    }

    /// Binds a Unix socket as the control socket is bound: mode 0660, `group`, a stale socket
    /// replaced, any other file refused.
    pub fn unix(path: &Path, group: Option<u32>) -> io::Result<Listener> {
        crate::control::server::bind(path, group).map(Listener::Unix)
    }

    /// The bound TCP address (tests bind port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// The next connection, with a name for the peer (for logs).
    async fn accept(&self) -> io::Result<(Connection, Peer)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, addr) = l.accept().await?;
                // Small JSON answers: send them now, not after the delayed ACK.
                let _ = stream.set_nodelay(true);
                Ok((Connection::Tcp(stream), Peer(addr.to_string().into())))
            }
            Listener::Unix(socket) => {
                let (stream, _) = socket.listener().accept().await?;
                Ok((Connection::Unix(stream), Peer("unix".into())))
            }
        }
    }
}

/// Who sent a request (an address and port, or `unix`), a request extension for logs.
#[derive(Debug, Clone)]
pub struct Peer(pub Arc<str>);

enum Connection {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Connection {
    /// Answers [`BUSY`] and closes cleanly: reads what the client sent (a close with unread
    /// bytes would reset the connection and lose the answer), writes, shuts down, drains.
    async fn busy(self) {
        match self {
            Connection::Tcp(s) => busy(s).await,
            Connection::Unix(s) => busy(s).await,
        }
    }
}

async fn busy<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = async {
        let mut buf = [0u8; 4096];
        // The request, if it comes at once (most clients send it right after connecting).
        let _ = tokio::time::timeout(BUSY_LINGER / 5, stream.read(&mut buf)).await;
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(BUSY_LINGER, answer).await;
}

/// Serves `router` on `listener` until `shutdown`, at most `max_connections` at once.
pub async fn serve(
    listener: Listener,
    router: Router,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let busy = Arc::new(Semaphore::new(BUSY_RESPONDERS));
    let mut backoff = Backoff::default();
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (connection, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(e) => {
                    let wait = backoff.failed();
                    tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "HTTP accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Ok(responder) = busy.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    connection.busy().await;
                    drop(responder);
                });
            }
            continue;
        };
        let (router, shutdown) = (router.clone(), shutdown.clone());
        connections.spawn(async move {
            let result = match connection {
                Connection::Tcp(s) => http1(s, peer, router, shutdown).await,
                Connection::Unix(s) => http1(s, peer, router, shutdown).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection (keep-alive) until it closes, or until shutdown plus the grace.
async fn http1<S>(
    stream: S,
    peer: Peer,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(peer.clone());
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let connection = builder.serve_connection(TokioIo::new(WriteDeadline::new(stream)), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` once one has made no progress for
/// [`WRITE_TIMEOUT`]: a client that stops reading its response loses its connection instead
/// of holding a slot and a buffer for ever.
struct WriteDeadline<S> {
    inner: S,
    stalled: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            stalled: None,
            limit: WRITE_TIMEOUT,
        }
    }

    /// After a `Pending` write: arms the deadline (once) and tells whether it has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        sleep.as_mut().poll(cx).is_ready()
    }

    fn timed_out() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not take its response in time",
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The wait before retrying a failed `accept`: [`ACCEPT_BACKOFF_MIN`], doubling on each failure
/// in a row up to [`ACCEPT_BACKOFF_MAX`], back to the start after a success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let wait = ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16))
            .min(ACCEPT_BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests;
