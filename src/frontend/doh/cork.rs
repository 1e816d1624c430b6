//! A cork under TLS: what the TLS layer writes to the socket is gathered until the layer above
//! flushes, then written with one syscall.
//!
//! Why: `wire` makes each HTTP/2 response its own TLS record (see there), and tokio-rustls
//! writes to the socket after every `poll_write`, so without the cork a flush of ten answers
//! would be ten `sendmsg` calls instead of one. hyper (h2 and its HTTP/1.1) flushes after
//! each batch of frames it wrote, which is when the octets go out.
//!
//! Owns: the octets not yet written. Never: holds them past a flush, holds more than
//! `CORK_LIMIT` (past it, a write first waits for the socket: back-pressure as before), or
//! keeps a buffer on an idle connection (it is dropped once written).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Octets gathered at most before a write waits for the socket.
pub const CORK_LIMIT: usize = 64 * 1024;

pub struct Cork<S> {
    inner: S,
    pending: Vec<u8>,
    /// How much of `pending` the socket has taken.
    sent: usize,
}

impl<S> Cork<S> {
    pub fn new(inner: S) -> Cork<S> {
        Cork { inner, pending: Vec::new(), sent: 0 }
    }
}

impl<S: AsyncWrite + Unpin> Cork<S> {
    /// Writes out everything gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        // Written: give the memory back (an idle connection holds none).
        self.pending = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Cork<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Cork<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= CORK_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= CORK_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        let mut n = 0;
        for buf in bufs {
            this.pending.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn nothing_reaches_the_peer_before_a_flush_and_all_of_it_after() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut cork = Cork::new(near);
        cork.write_all(b"one ").await.unwrap();
        let n = cork.write_vectored(&[io::IoSlice::new(b"two "), io::IoSlice::new(b"three")]).await.unwrap();
        assert_eq!(n, 9, "a cork takes every slice");
        let mut probe = [0u8; 64];
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), far.read(&mut probe)).await;
        assert!(early.is_err(), "octets went out before the flush");
        cork.flush().await.unwrap();
        assert_eq!(cork.pending.capacity(), 0, "a flushed cork keeps no buffer");
        let n = far.read(&mut probe).await.unwrap();
        assert_eq!(&probe[..n], b"one two three");
    }

    #[tokio::test]
    async fn past_the_limit_a_write_waits_for_the_socket() {
        // A pipe that holds 1 KiB: the cork takes CORK_LIMIT, then the next write waits until
        // the far end reads.
        let (near, mut far) = tokio::io::duplex(1024);
        let mut cork = Cork::new(near);
        cork.write_all(&vec![7u8; CORK_LIMIT]).await.unwrap();
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), cork.write_all(b"x")).await;
        assert!(blocked.is_err(), "a write past the limit did not wait");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            far.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        cork.write_all(b"x").await.unwrap();
        cork.shutdown().await.unwrap();
        drop(cork);
        assert_eq!(reader.await.unwrap(), CORK_LIMIT + 1);
    }
}
