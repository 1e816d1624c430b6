//! The DoH connection's byte stream as hyper sees it: the TLS stream, watched. On HTTP/2 it
//! charges every frame the client sends to the connection's flood budgets (`flood`) and ends
//! the connection when one runs out; it hands TLS one HTTP/2 response at a time, so that each
//! response is its own TLS record; on both protocols it notes when octets last moved (for the
//! idle timeout).
//!
//! One record per response: dnsperf (2.10 to 2.14 at least) keeps one response buffer per
//! connection and, when a second response's DATA arrives in the read that completed the first,
//! pauses nghttp2 in its data callback, which nghttp2 takes as that chunk consumed: the second
//! answer is lost. OpenSSL returns one record per read, so a server that writes each response
//! as its own record (Unbound does) is never hit. The cost is a record header and an AEAD
//! call per answer, not a syscall: `cork` still writes each flush at once.
//!
//! Owns: the frame cursors and budgets of one connection. Never: changes, holds or reorders an
//! octet (a write is only cut short at a response's end, which the caller resumes from), or
//! reads the clock per query beyond one `Instant::now()` per read and per write.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::flood::{Flood, FloodBudget};
use super::frames::{Event, FrameCursor};

/// What the connection's task reads off the stream while hyper drives it.
pub struct Activity {
    last: Cell<Instant>,
    flood: Cell<Option<Flood>>,
}

impl Activity {
    pub fn new() -> Rc<Activity> {
        Rc::new(Activity { last: Cell::new(Instant::now()), flood: Cell::new(None) })
    }

    /// When octets last moved either way.
    pub fn last(&self) -> Instant {
        self.last.get()
    }

    /// The budget the client exhausted, if it did.
    pub fn flood(&self) -> Option<Flood> {
        self.flood.get()
    }

    fn touch(&self) {
        self.last.set(Instant::now());
    }
}

/// The HTTP/2 watch: frames each way, and the client's budgets.
struct H2Watch {
    from_client: FrameCursor,
    to_client: FrameCursor,
    budget: FloodBudget,
}

pub struct DohStream<S> {
    inner: S,
    h2: Option<Box<H2Watch>>,
    activity: Rc<Activity>,
}

impl<S> DohStream<S> {
    /// `inner` carrying HTTP/2 (`max_in_flight` streams at once) when `http2`, else HTTP/1.1.
    pub fn new(inner: S, http2: bool, max_in_flight: u32, activity: Rc<Activity>) -> DohStream<S> {
        let h2 = http2.then(|| {
            Box::new(H2Watch {
                from_client: FrameCursor::client(),
                to_client: FrameCursor::frames(),
                budget: FloodBudget::new(max_in_flight),
            })
        });
        DohStream { inner, h2, activity }
    }
}

fn flooded(flood: Flood) -> io::Error {
    io::Error::other(format!("HTTP/2 flood: the client's {} budget is spent", flood.label()))
}

impl<S: AsyncRead + Unpin> AsyncRead for DohStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(flood) = this.activity.flood() {
            return Poll::Ready(Err(flooded(flood)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if read.is_empty() {
            return Poll::Ready(Ok(()));
        }
        this.activity.touch();
        if let Some(h2) = this.h2.as_deref_mut() {
            let mut spent = None;
            h2.from_client.pass(read, |event| match event {
                Event::Head(head) => match h2.budget.charge(&head) {
                    Ok(()) => true,
                    Err(flood) => {
                        spent = Some(flood);
                        false
                    }
                },
                Event::End(_) => true,
            });
            if let Some(flood) = spent {
                this.activity.flood.set(Some(flood));
                return Poll::Ready(Err(flooded(flood)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// How many of `octets` (the next ones written, whose frames `to_client` is at) to hand TLS at
/// once: up to the end of the first response in them, and whether that is where it stopped.
fn first_response(to_client: &FrameCursor, octets: &[u8]) -> (usize, bool) {
    let mut probe = *to_client;
    let mut ended = false;
    let n = probe.pass(octets, |event| {
        ended = matches!(event, Event::End(head) if head.ends_stream());
        !ended
    });
    (n, ended)
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DohStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let cut = match this.h2.as_deref() {
            Some(h2) => first_response(&h2.to_client, buf).0,
            None => buf.len(),
        };
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..cut]))?;
        if let Some(h2) = this.h2.as_deref_mut() {
            h2.to_client.pass(&buf[..n], |_| true);
        }
        this.activity.touch();
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(h2) = this.h2.as_deref_mut() else {
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
            this.activity.touch();
            return Poll::Ready(Ok(n));
        };
        // The slices up to the end of the first response: whole slices, then the part of the one
        // it ends in (when it does not end on a slice's end). At most SLICES at once: a write may
        // take less than offered.
        const SLICES: usize = 16;
        let mut probe = h2.to_client;
        let mut taken: [io::IoSlice<'_>; SLICES] = [io::IoSlice::new(&[]); SLICES];
        let mut count = 0;
        for buf in bufs.iter().filter(|b| !b.is_empty()).take(SLICES) {
            let (n, ended) = first_response(&probe, buf);
            probe.pass(&buf[..n], |_| true);
            taken[count] = io::IoSlice::new(&buf[..n]);
            count += 1;
            if ended {
                break;
            }
        }
        if count == 0 {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &taken[..count]))?;
        let mut left = n;
        for slice in &taken[..count] {
            let m = left.min(slice.len());
            h2.to_client.pass(&slice[..m], |_| true);
            left -= m;
            if left == 0 {
                break;
            }
        }
        this.activity.touch();
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frames::{kind, END_STREAM};
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A writer that records the octets of each write call apart.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.get_mut().0.push(all);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn three_responses() -> (Vec<u8>, Vec<usize>) {
        let mut out = frame(kind::SETTINGS, 0, 0, &[]);
        let mut ends = Vec::new();
        for stream in [1u32, 3, 5] {
            out.extend(frame(kind::HEADERS, 0x4, stream, b"\x88"));
            out.extend(frame(kind::DATA, END_STREAM, stream, &[stream as u8; 40]));
            ends.push(out.len());
        }
        (out, ends)
    }

    #[tokio::test]
    async fn each_http2_response_is_handed_on_alone_and_nothing_is_lost() {
        let (octets, ends) = three_responses();
        for vectored in [false, true] {
            let mut stream = DohStream::new(Writes::default(), true, 100, Activity::new());
            if vectored {
                // The frames in pieces that do not follow them, one of which ends with the
                // first response.
                let (a, rest) = octets.split_at(30);
                let (b, c) = rest.split_at(ends[0] - 30);
                let mut slices = [io::IoSlice::new(a), io::IoSlice::new(b), io::IoSlice::new(c)];
                let mut slices = &mut slices[..];
                while !slices.is_empty() {
                    let n = stream.write_vectored(slices).await.unwrap();
                    io::IoSlice::advance_slices(&mut slices, n);
                }
            } else {
                stream.write_all(&octets).await.unwrap();
            }
            let writes = &stream.inner.0;
            let cuts: Vec<usize> = writes
                .iter()
                .scan(0, |at, w| {
                    *at += w.len();
                    Some(*at)
                })
                .collect();
            assert_eq!(cuts, ends, "vectored: {vectored}");
            assert_eq!(writes.concat(), octets);
        }
        // HTTP/1.1 passes as written.
        let mut stream = DohStream::new(Writes::default(), false, 100, Activity::new());
        stream.write_all(&octets).await.unwrap();
        assert_eq!(stream.inner.0, vec![octets]);
    }

    #[tokio::test]
    async fn a_ping_flood_ends_the_read_side_and_says_why() {
        let mut sent = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        sent.extend(frame(kind::SETTINGS, 0, 0, &[]));
        for _ in 0..super::super::flood::PING.burst {
            sent.extend(frame(kind::PING, 0, 0, &[1; 8]));
        }
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let activity = Activity::new();
        let mut stream = DohStream::new(server, true, 100, activity.clone());
        client.write_all(&sent).await.unwrap();
        let mut got = vec![0u8; sent.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(activity.flood(), None, "the burst itself is allowed");
        client.write_all(&frame(kind::PING, 0, 0, &[2; 8])).await.unwrap();
        let err = stream.read(&mut got).await.unwrap_err();
        assert!(err.to_string().contains("ping"), "{err}");
        assert_eq!(activity.flood(), Some(Flood::Ping));
        assert!(stream.read(&mut got).await.is_err(), "a flooded stream stays closed");
    }
}
