//! One client connection over TLS, from the first byte to close: the only owner of its socket
//! and its TLS session. What is spoken inside TLS is a `Protocol`: DoT's length-prefixed
//! messages (`dot::messages`) or DoH's HTTP (`doh::protocol`); this driver is the same for both.
//!
//! One task waits on "socket readable", "socket writable" (only while the client is slow to
//! take answers), "answers ready", a deadline and shutdown. Each wake-up runs one synchronous
//! step: read once into the worker's shared buffer, decrypt, hand the plaintext to the
//! protocol (which hands every whole query to the relay), encrypt every ready answer (DoT: into
//! one TLS record; DoH: one record per HTTP response), and write once. Nothing is held in
//! the shared buffers across a wait; what must survive a wait (the start of a record, the start
//! of a query, bytes the client has not taken yet) is copied into the connection's own
//! buffers, which are empty and unallocated when the connection is idle.
//!
//! Reads stop while `max_in_flight` queries are outstanding (backpressure, never dropping).
//! The connection closes on the handshake timeout, on the idle timeout (nothing in flight),
//! after the client's EOF or close_notify once its answers are flushed, on a framing error or a
//! response sent by the client, when the client stops taking answers for the idle timeout, or
//! on drain; after the handshake dotgate sends close_notify whenever it closes.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::answers::AnswerQueue;
use super::hello::{self, HelloPeek};
use super::session::{Output, TlsSession};
use super::DotContext;
use crate::frontend::limits::Admission;
use crate::frontend::Client;
use crate::stats::{bump, TlsFrontendStats, WorkerStats};

/// Bytes asked for by each read. Large, since the buffer is shared by the worker's connections:
/// a pipelining client's whole burst arrives in one system call.
const READ_SIZE: usize = 64 * 1024;
/// A ClientHello not complete within this many bytes is left to rustls to refuse.
const MAX_HELLO_BYTES: usize = 64 * 1024;
/// How long the last answers, close_notify and FIN may take before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The worker's I/O buffers, shared by all its connections. Borrowed only within one
/// synchronous step, never across a wait.
#[derive(Default)]
pub struct SharedBuffers {
    /// Ciphertext read from a client: first the connection's kept partial record, then what the
    /// read brought.
    incoming: Vec<u8>,
    /// Ciphertext to write to a client.
    out: Output,
    /// Plaintext a protocol writes before it is encrypted (DoH's HTTP; DoT's answers are
    /// encrypted straight from the answer queue).
    plain: Vec<u8>,
}

impl SharedBuffers {
    /// Puts `partial` at the front of `incoming` and returns room for one read behind it.
    fn read_room(&mut self, partial: &[u8]) -> &mut [u8] {
        let end = partial.len() + READ_SIZE;
        if self.incoming.len() < end {
            self.incoming.resize(end, 0);
        }
        self.incoming[..partial.len()].copy_from_slice(partial);
        &mut self.incoming[partial.len()..end]
    }
}

/// What a connection speaks inside TLS. The driver owns the socket, TLS, the answer queue, the
/// timers and drain; the protocol turns plaintext into queries for the relay and queued answers
/// into plaintext. Every method runs within one synchronous step.
pub trait Protocol {
    /// Its connections' counters (accepted, handshakes, closures).
    fn stats(stats: &WorkerStats) -> &TlsFrontendStats;

    /// The TLS configuration for the client's hello.
    fn tls_config(&self, ctx: &DotContext, hello: HelloPeek) -> Arc<rustls::ServerConfig>;

    /// The protocol the handshake agreed on by ALPN (told before every read of the handshake,
    /// so before the first application data).
    fn negotiated(&mut self, alpn: Option<&[u8]>);

    /// The handshake is over: anything to send first goes into `plain`.
    fn established(&mut self, plain: &mut Vec<u8>);

    /// Takes decrypted bytes (any piece of the stream; empty: retry what was held back by the
    /// in-flight cap). What the protocol sends of its own accord goes into `plain`.
    fn take(&mut self, conn: &Conn<'_>, plaintext: &[u8], plain: &mut Vec<u8>) -> Result<(), Ending>;

    /// Input was held back by the in-flight cap.
    fn holds_input(&self) -> bool;

    /// Encrypts what is ready to go (the queue's answers, the protocol's own responses) into
    /// `out`, with `plain` as room. Called only when the socket has taken everything before.
    fn write(
        &mut self,
        conn: &Conn<'_>,
        session: &mut TlsSession,
        plain: &mut Vec<u8>,
        out: &mut Output,
    ) -> Result<(), Ending>;

    /// Drain began (or the connection is about to close): say so, if the protocol can.
    fn drain(&mut self, plain: &mut Vec<u8>);

    /// Keeps reading while draining (HTTP/2 needs the client's WINDOW_UPDATEs to finish).
    fn reads_while_draining(&self) -> bool;

    /// Something of the protocol's own is still to send once the client allows it.
    fn busy(&self) -> bool;

    /// The protocol ended the connection (HTTP/1.1 `Connection: close`, an HTTP error), to
    /// close once everything is out.
    fn finished(&self) -> Option<Ending>;

    /// The connection ended: counts what only the protocol knows (HTTP/2 floods).
    fn ended(&self, stats: &WorkerStats);
}

/// What the protocol works with in a step: the worker's context, the connection's answer queue
/// and its client.
pub struct Conn<'a> {
    pub ctx: &'a DotContext,
    pub answers: &'a Rc<AnswerQueue>,
    pub client: Option<&'a Client>,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The TLS handshake failed (not TLS, refused version, bad message).
    HandshakeFailed,
    /// The handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// Nothing in flight for the idle timeout.
    Idle,
    /// The client closed its side and every answer went out.
    ClientDone,
    /// A frame too short for DNS, a response sent by the client, or a TLS error after the
    /// handshake.
    Protocol,
    /// Shutdown, with every answer out.
    Drained,
    /// The socket failed, or the client stopped taking answers.
    Io,
}

/// What ended a wait.
enum Woke {
    /// The socket is ready for this direction.
    Socket(io::Result<Interest>),
    Answers,
    Deadline,
}

/// What woke the connection, and what came of it.
enum Event {
    /// Bytes read (0: the client's EOF).
    Read(io::Result<usize>),
    /// Bytes of `unsent` the socket took.
    Wrote(io::Result<usize>),
    /// Answers are ready, or drain began.
    Answers,
    Deadline,
}

/// Serves one accepted TCP connection to its end. `admission` holds its place under the
/// connection limits until then.
///
/// Not an `async fn`: the connection is built before the future, and the future is a block
/// that uses what it captured in place. (An `async fn` keeps its arguments beside the locals
/// made from them, and every idle connection would carry both copies.)
pub fn serve<P: Protocol>(
    tcp: TcpStream,
    ctx: Rc<DotContext>,
    admission: Admission,
    client: Option<Box<Client>>,
    protocol: P,
    frontend: crate::stats::Frontend,
) -> impl std::future::Future<Output = ()> {
    let answers = Rc::new(AnswerQueue::new(frontend));
    answers.set_idle_timeout(ctx.idle_timeout.get());
    let open = ctx.connections.enter(&answers);
    let mut conn = Connection {
        ctx,
        socket: tcp,
        session: None,
        partial_record: Vec::new(),
        protocol,
        unsent: BytesMut::new(),
        answers,
        client_open: true,
        client,
    };
    async move {
        let ending = conn.run().await;
        conn.answers.close();
        conn.protocol.ended(&conn.ctx.stats);
        let stats = P::stats(&conn.ctx.stats);
        match ending {
            Ending::HandshakeFailed => {
                bump(&stats.handshake_failures);
                tracing::debug!("TLS handshake failed");
            }
            Ending::HandshakeTimeout => {
                bump(&stats.handshake_timeouts);
                tracing::debug!("TLS handshake timed out");
            }
            Ending::Idle => bump(&stats.connections_closed_idle),
            Ending::Protocol => bump(&stats.connections_closed_protocol),
            Ending::ClientDone => bump(&stats.connections_closed_client),
            Ending::Io => bump(&stats.connections_closed_error),
            Ending::Drained => bump(&stats.connections_closed_drain),
        }
        conn.close(ending).await;
        // Held to the end: the registration for drain and the place under the limits.
        drop(open);
        drop(admission);
    }
}

struct Connection<P> {
    ctx: Rc<DotContext>,
    socket: TcpStream,
    /// Made once the ClientHello has said which configuration it needs.
    session: Option<TlsSession>,
    /// The start of a TLS record (or ClientHello) that the last read cut off.
    partial_record: Vec<u8>,
    /// What is spoken inside TLS, and what of it waits (the start of a query, queries held back
    /// by the in-flight cap).
    protocol: P,
    /// Ciphertext the socket has not taken yet (the client reads slowly).
    unsent: BytesMut,
    answers: Rc<AnswerQueue>,
    /// No EOF or close_notify from the client yet.
    client_open: bool,
    /// The client's address and rate-limit key, when the relay or the rate limit needs them.
    client: Option<Box<Client>>,
}

impl<P: Protocol> Connection<P> {
    async fn run(&mut self) -> Ending {
        // Boxed: tokio's timer entry is 96 bytes, and inline it would push every connection's
        // task into the allocator's next size class (128-byte steps at this size).
        let mut deadline = Box::pin(tokio::time::sleep(self.ctx.settings.handshake_timeout));
        // The ClientHello usually arrives with the connection: try it before any wait.
        let mut event = Event::Read(self.read_now());
        loop {
            let mut progress = false;
            let stepped = match event {
                Event::Read(Ok(0)) => {
                    self.client_open = false;
                    self.step(None)
                }
                Event::Read(Ok(read)) => {
                    progress = true;
                    self.step(Some(read))
                }
                Event::Read(Err(e)) if is_transient(&e) => self.step(None),
                Event::Read(Err(_)) => return Ending::Io,
                Event::Wrote(Ok(written)) => {
                    progress = true;
                    self.unsent.advance(written);
                    if self.unsent.is_empty() {
                        self.unsent = BytesMut::new();
                    }
                    self.step(None)
                }
                Event::Wrote(Err(e)) if is_transient(&e) => Ok(()),
                Event::Wrote(Err(_)) => return Ending::Io,
                Event::Answers => {
                    progress = true;
                    self.step(None)
                }
                Event::Deadline => {
                    return if !self.established() {
                        Ending::HandshakeTimeout
                    } else if !self.unsent.is_empty() {
                        Ending::Io
                    } else {
                        Ending::Idle
                    };
                }
            };
            if let Err(ending) = stepped {
                return ending;
            }

            let established = self.established();
            if progress && established {
                // The idle timeout in force now (it shrinks near the connection limit), also
                // what answers state in edns-tcp-keepalive.
                let idle = self.ctx.idle_timeout.get();
                self.answers.set_idle_timeout(idle);
                deadline.as_mut().reset(Instant::now() + idle);
            }
            let outstanding = self.answers.outstanding();
            let draining = self.answers.is_draining();
            if !established {
                if !self.client_open {
                    return Ending::HandshakeFailed;
                }
                if draining {
                    return Ending::Drained;
                }
            }
            if outstanding == 0 && self.unsent.is_empty() && !self.protocol.busy() {
                if let Some(ending) = self.protocol.finished() {
                    return ending;
                }
                if !self.client_open {
                    return Ending::ClientDone;
                }
                if draining {
                    return Ending::Drained;
                }
            }
            let can_read = self.client_open
                && (!draining || self.protocol.reads_while_draining())
                && (!established || outstanding < self.ctx.settings.max_in_flight);
            // The deadline is the handshake timeout, then the idle timeout (nothing in flight),
            // or how long a client may leave its answers untaken.
            let deadline_armed = !established || outstanding == 0 || !self.unsent.is_empty();
            let want_write = !self.unsent.is_empty();
            // One hand-written wait for the socket, the answer queue and the deadline, in that
            // order: reads first, so a stream of answers cannot starve reading, and every step
            // writes what is ready before the next wait, so answers cannot starve either. The
            // wakers wait in the socket's own readiness slots and in the answer queue, not in
            // futures of tokio's `ready()` and `select!`, which would add about 200 bytes to
            // every idle connection's task.
            let woke = std::future::poll_fn(|cx| {
                if can_read || want_write {
                    if let Poll::Ready(ready) = poll_ready(&self.socket, cx, can_read, want_write) {
                        return Poll::Ready(Woke::Socket(ready));
                    }
                }
                if self.answers.poll_woken(cx).is_ready() {
                    return Poll::Ready(Woke::Answers);
                }
                if deadline_armed && deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woke::Deadline);
                }
                Poll::Pending
            })
            .await;
            event = match woke {
                Woke::Socket(Ok(Interest::READABLE)) => {
                    Event::Read(read_ready(&self.socket, &self.partial_record, &self.ctx.buffers))
                }
                Woke::Socket(Ok(_)) => Event::Wrote(write_ready(&self.socket, &self.unsent)),
                Woke::Socket(Err(e)) => Event::Read(Err(e)),
                Woke::Answers => Event::Answers,
                Woke::Deadline => Event::Deadline,
            };
            crate::runtime::pacing::note_event();
        }
    }

    fn established(&self) -> bool {
        self.session.as_ref().is_some_and(TlsSession::is_established)
    }

    /// Reads without waiting for readiness (right after accept, before the reactor has seen
    /// the socket).
    fn read_now(&mut self) -> io::Result<usize> {
        let mut buffers = self.ctx.buffers.borrow_mut();
        let room = buffers.read_room(&self.partial_record);
        (&*SockRef::from(&self.socket)).read(room)
    }

    /// One synchronous step: take `read` new bytes (behind the kept partial record) from the
    /// shared buffer, handle what they complete, encrypt the ready answers, write.
    fn step(&mut self, read: Option<usize>) -> Result<(), Ending> {
        let ctx = self.ctx.clone();
        let mut buffers = ctx.buffers.borrow_mut();
        let SharedBuffers { incoming, out, plain } = &mut *buffers;
        debug_assert!(out.is_empty() && plain.is_empty());
        let mut result = match read {
            Some(read) => {
                let total = self.partial_record.len() + read;
                self.take_ciphertext(&mut incoming[..total], out, plain)
            }
            None => Ok(()),
        };
        if result.is_ok() && self.answers.is_draining() {
            self.protocol.drain(plain);
        }
        // What the protocol said of its own accord (HTTP/2's SETTINGS, acknowledgements,
        // GOAWAY) goes before any answer, even to a client slow to read: it is small.
        self.flush_plain(plain, out);
        // Twice: writing answers lowers the in-flight count, which may let queries held back
        // by the cap go to the relay, which may answer some locally at once.
        for _ in 0..2 {
            if result.is_ok() && self.protocol.holds_input() {
                let conn = Conn { ctx: &self.ctx, answers: &self.answers, client: self.client.as_deref() };
                result = self.protocol.take(&conn, &[], plain);
                self.flush_plain(plain, out);
            }
            if result.is_ok() && self.unsent.is_empty() {
                if let Some(session) = self.session.as_mut().filter(|s| s.is_established()) {
                    let conn = Conn { ctx: &self.ctx, answers: &self.answers, client: self.client.as_deref() };
                    result = self.protocol.write(&conn, session, plain, out);
                    plain.clear();
                }
            }
        }
        // Whatever TLS produced leaves now, alerts after a failure included.
        let sent = self.send(out);
        out.clear();
        result.and(sent)
    }

    /// Encrypts what the protocol put in `plain` (once the handshake is over), and empties it.
    fn flush_plain(&mut self, plain: &mut Vec<u8>, out: &mut Output) {
        if plain.is_empty() {
            return;
        }
        if let Some(session) = self.session.as_mut().filter(|s| s.is_established()) {
            // A failure here fails the next encryption too, which ends the connection.
            let _ = session.encrypt(plain, out);
        }
        plain.clear();
    }

    /// Handles the ciphertext in `bytes`: the ClientHello first, then records.
    fn take_ciphertext(&mut self, bytes: &mut [u8], out: &mut Output, plain: &mut Vec<u8>) -> Result<(), Ending> {
        if self.session.is_none() {
            let config = match hello::peek(bytes) {
                HelloPeek::Incomplete if bytes.len() < MAX_HELLO_BYTES => {
                    keep(&mut self.partial_record, bytes);
                    return Ok(());
                }
                peek => self.protocol.tls_config(&self.ctx, peek),
            };
            self.session = Some(TlsSession::new(config).map_err(|_| Ending::HandshakeFailed)?);
        }
        let Some(session) = self.session.as_mut() else { return Ok(()) };
        let was_established = session.is_established();
        let conn = Conn { ctx: &self.ctx, answers: &self.answers, client: self.client.as_deref() };
        if !was_established {
            // The server picks ALPN from the ClientHello: known from the second read on, before
            // the client's first application data (no early data here).
            self.protocol.negotiated(session.alpn_protocol());
        }
        let protocol = &mut self.protocol;
        let mut refused = Ok(());
        let fed = session.feed(bytes, out, |plaintext| match protocol.take(&conn, plaintext, plain) {
            Ok(()) => ControlFlow::Continue(()),
            Err(ending) => {
                refused = Err(ending);
                ControlFlow::Break(())
            }
        });
        // The handshake can finish in the very read that brings the records which then break
        // the stream: a client's Finished and its first records travel together, and feed
        // stops at the bad record before it reaches "established". Such a stream broke after
        // its handshake: it counts as a handshake and a protocol close, not a failed handshake
        // (which would inflate the handshake failures an operator alerts on).
        let completed_now = !was_established && session.handshake_done();
        let fed = match (fed, refused) {
            (Ok(fed), Ok(())) => fed,
            (fed, refused) => {
                let ending = match fed {
                    Err(e) => {
                        tracing::debug!(error = %e, "closing connection");
                        if was_established || completed_now {
                            Ending::Protocol
                        } else {
                            Ending::HandshakeFailed
                        }
                    }
                    Ok(_) => refused.err().unwrap_or(Ending::Protocol),
                };
                if completed_now {
                    count_handshake::<P>(&self.ctx, session);
                }
                return Err(ending);
            }
        };
        if !was_established && session.is_established() {
            count_handshake::<P>(&self.ctx, session);
            self.protocol.established(plain);
        }
        if fed.peer_closed {
            self.client_open = false;
        }
        keep(&mut self.partial_record, &bytes[fed.consumed..]);
        Ok(())
    }

    /// Writes `out` behind anything still unsent; keeps what the socket does not take.
    fn send(&mut self, out: &Output) -> Result<(), Ending> {
        if out.is_empty() {
            return Ok(());
        }
        if !self.unsent.is_empty() {
            self.unsent.extend_from_slice(out.bytes());
            return Ok(());
        }
        let bytes = out.bytes();
        // Straight to the socket: tokio's `try_write` would refuse before the reactor has
        // reported the new socket writable, and the handshake's first flight goes out then.
        let written = match (&*SockRef::from(&self.socket)).write(bytes) {
            Ok(written) => written,
            Err(e) if is_transient(&e) => 0,
            Err(_) => return Err(Ending::Io),
        };
        if written < bytes.len() {
            self.unsent.extend_from_slice(&bytes[written..]);
        }
        Ok(())
    }

    /// Ends the connection: close_notify after a completed handshake, the last bytes out
    /// (within `CLOSE_TIMEOUT`), then FIN.
    async fn close(&mut self, ending: Ending) {
        if ending == Ending::Io {
            return;
        }
        if let Some(session) = self.session.as_mut().filter(|s| s.is_established()) {
            let ctx = self.ctx.clone();
            let mut buffers = ctx.buffers.borrow_mut();
            let SharedBuffers { out, plain, .. } = &mut *buffers;
            // The protocol's goodbye first (HTTP/2: GOAWAY, unless one went already).
            self.protocol.drain(plain);
            if !plain.is_empty() {
                let _ = session.encrypt(plain, out);
                plain.clear();
            }
            if session.close_notify(out).is_ok() {
                let _ = self.send(out);
            }
            out.clear();
        }
        // Boxed, like the deadline in `run`: it exists only while closing, so the idle task
        // need not be sized for it.
        let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, async {
            while !self.unsent.is_empty() {
                let writable = std::future::poll_fn(|cx| self.socket.poll_write_ready(cx)).await;
                match writable.and_then(|()| write_ready(&self.socket, &self.unsent)) {
                    Ok(written) => self.unsent.advance(written),
                    Err(e) if is_transient(&e) => {}
                    Err(_) => return,
                }
            }
            let _ = SockRef::from(&self.socket).shutdown(std::net::Shutdown::Write);
            // A socket closed with unread bytes sends RST, and a client that pipelined queries
            // past our close_notify (drain, idle timeout) would see its connection reset instead
            // of closed. Read and drop what it sends until its FIN, within the same time limit.
            if self.client_open {
                self.discard_until_eof().await;
            }
        }))
        .await;
    }

    /// Reads and drops everything until the client's EOF (or an error).
    async fn discard_until_eof(&self) {
        loop {
            if std::future::poll_fn(|cx| self.socket.poll_read_ready(cx)).await.is_err() {
                return;
            }
            let read = self.socket.try_io(Interest::READABLE, || {
                let mut buffers = self.ctx.buffers.borrow_mut();
                (&*SockRef::from(&self.socket)).read(buffers.read_room(&[]))
            });
            match read {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(_) => return,
            }
        }
    }
}

/// Counts a completed handshake by version and kind.
fn count_handshake<P: Protocol>(ctx: &DotContext, session: &TlsSession) {
    let (version, kind) = session.version_and_kind();
    P::stats(&ctx.stats).handshakes.count(version, kind);
}

/// Reads once after the socket reported readable. A read that does not fill the room drained
/// the socket, so readiness is cleared at once: the next wait then sleeps until new bytes
/// arrive, instead of waking for a read that would only say "would block". (tokio clears
/// readiness when the closure of `try_io` returns `WouldBlock`; the byte count travels beside.)
fn read_ready(socket: &TcpStream, partial: &[u8], buffers: &RefCell<SharedBuffers>) -> io::Result<usize> {
    let mut buffers = buffers.borrow_mut();
    let room = buffers.read_room(partial);
    let room_len = room.len();
    let mut drained_after = None;
    let result = socket.try_io(Interest::READABLE, || {
        let read = (&*SockRef::from(socket)).read(room)?;
        if read > 0 && read < room_len {
            drained_after = Some(read);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(read)
    });
    match (result, drained_after) {
        (_, Some(read)) => Ok(read),
        (result, None) => result,
    }
}

/// Which wanted direction the socket is ready for, reads first; registers the task's waker for
/// each wanted direction that is not.
fn poll_ready(socket: &TcpStream, cx: &mut Context<'_>, read: bool, write: bool) -> Poll<io::Result<Interest>> {
    if read {
        if let Poll::Ready(ready) = socket.poll_read_ready(cx) {
            return Poll::Ready(ready.map(|()| Interest::READABLE));
        }
    }
    if write {
        if let Poll::Ready(ready) = socket.poll_write_ready(cx) {
            return Poll::Ready(ready.map(|()| Interest::WRITABLE));
        }
    }
    Poll::Pending
}

/// Writes what is unsent after the socket reported writable.
fn write_ready(socket: &TcpStream, unsent: &[u8]) -> io::Result<usize> {
    socket.try_io(Interest::WRITABLE, || (&*SockRef::from(socket)).write(unsent))
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

/// Keeps `bytes` in `kept` (replacing what it held); an empty `kept` holds no allocation.
fn keep(kept: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        *kept = Vec::new();
    } else {
        kept.clear();
        kept.extend_from_slice(bytes);
    }
}
