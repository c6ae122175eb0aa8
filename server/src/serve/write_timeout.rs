//! A write timeout for a connection: hyper 1 has none, so a client that asks
//! for a large answer (the 93 KB font, a PNG, an event stream) and then never
//! reads would hold its connection, and the bytes queued for it, for ever.
//!
//! [`WriteTimeout`] wraps the connection's IO: when a write (or flush) has been
//! waiting for the peer for longer than the limit without moving a byte, it
//! fails with [`std::io::ErrorKind::TimedOut`]; hyper then drops the
//! connection. Before failing it asks the socket to reset on close
//! ([`Abort`]), so the kernel discards the bytes still queued for that peer
//! instead of trying to deliver them for minutes. Every write that moves bytes
//! starts the clock again: a slow but reading client is never cut off.
//!
//! The kernel must not swallow a whole answer either: by default Linux takes
//! up to megabytes per socket into its send buffer, so the 93 KB font "is
//! written" at once to a client that never reads, and sits queued there for
//! minutes. [`limit_unsent`] sets `TCP_NOTSENT_LOWAT` to [`NOTSENT_LOWAT`]
//! bytes: the kernel then holds at most that much not yet sent (plus what the
//! peer's window lets fly), and a stalled reader shows up here as a pending
//! write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The most bytes the kernel keeps queued but not yet sent on a connection
/// (`TCP_NOTSENT_LOWAT`, Linux): 16 KiB, the value commonly used by HTTP
/// servers; bytes in flight to a reading peer are not counted, so throughput
/// does not suffer.
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Bounds the bytes the kernel queues unsent on `stream` to
/// [`NOTSENT_LOWAT`] (Linux; elsewhere nothing, and the write timeout starts
/// once the kernel's own buffer is full). Errors are ignored: the connection
/// works without it.
pub fn limit_unsent(stream: &tokio::net::TcpStream) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// A connection that can be made to close abortively (TCP reset, queued bytes
/// dropped).
pub trait Abort {
    /// Arranges for the next close to abort the connection; errors are ignored
    /// (the connection is closed anyway).
    fn abort_on_close(&self);
}

impl Abort for tokio::net::TcpStream {
    fn abort_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

impl Abort for tokio::io::DuplexStream {
    fn abort_on_close(&self) {}
}

/// `inner` with its writes bounded in time (see the module docs).
pub struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// The deadline of the write now waiting, if one is waiting.
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S> WriteTimeout<S> {
    /// Wraps `inner`; a write that moves no byte for `limit` fails.
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }
}

impl<S: Abort> WriteTimeout<S> {
    /// After the inner write, flush or shutdown answered `poll`: a finished
    /// write disarms the timer (a finished flush or shutdown leaves it as it
    /// is: only a write moves bytes); a pending one arms it (if not yet) and
    /// fails once it has run out.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
        is_write: bool,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            if is_write {
                self.armed = false;
            }
            return poll;
        }
        if !self.armed {
            self.armed = true;
            let deadline = Instant::now() + self.limit;
            self.timer.as_mut().reset(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.armed = false;
            self.inner.abort_on_close();
            metrics::counter!("khqr_write_timeouts_total").increment(1);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer read nothing within the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Abort + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll, true)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll, true)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll, false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_fails_the_write_after_the_limit() {
        // A 1 KiB pipe the other side never reads.
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut w = WriteTimeout::new(ours, Duration::from_millis(500));
        let started = Instant::now();
        let err = w.write_all(&[7u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_millis(600),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (ours, mut theirs) = tokio::io::duplex(256);
        let mut w = WriteTimeout::new(ours, Duration::from_millis(500));
        // The reader takes 256 bytes every 300 ms: each write waits less than
        // the limit, the whole takes far longer than it.
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            let mut buf = [0u8; 256];
            while got < 4096 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let n = theirs.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got += n;
            }
            got
        });
        let started = Instant::now();
        w.write_all(&[1u8; 4096]).await.unwrap();
        w.flush().await.unwrap();
        assert!(started.elapsed() > Duration::from_secs(3));
        assert_eq!(reader.await.unwrap(), 4096);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_pass_through() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut w = WriteTimeout::new(ours, Duration::from_millis(10));
        theirs.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        w.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }
}
