//! Upstream TCP connections, used only after a UDP answer came back truncated (TC=1).
//!
//! One connection per backend per worker, opened on the first fallback and reused: queries are
//! pipelined on it, each under an ID unique on that connection, and answers are matched as they
//! come, in any order. Owns the connection's ID map and its queue of outgoing frames. When the
//! connection dies it hands the stranded queries back to the relay; it never answers a client.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rand::Rng;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::inflight::Key;
use super::Relay;

/// Close an upstream TCP connection with nothing waiting on it after this long; backends close
/// idle ones themselves too (Unbound after 30 s, BIND after 30 s).
const IDLE_CLOSE: Duration = Duration::from_secs(10);
/// The same for a connection that speaks for one client (a `proxy-protocol` backend): there is
/// one per client with a recent TC fallback, and a backend takes few TCP connections (Unbound's
/// `incoming-num-tcp` is 10 by default), so each gives its place back soon. Long enough for a
/// client's burst of truncated questions to share one.
const CLIENT_IDLE_CLOSE: Duration = Duration::from_secs(2);
/// Spare room in the receive buffer before each read of answers.
const READ_ROOM: usize = 4096;

pub struct TcpConn {
    backend: usize,
    /// The client this connection speaks for (its PROXY v2 header names it), if only one.
    client: Option<super::ClientAddr>,
    /// Upstream ID → in-flight key, for the queries waiting on this connection.
    ids: RefCell<HashMap<u16, Key>>,
    /// Length-prefixed queries not yet written.
    outgoing: RefCell<Vec<u8>>,
    wake: Notify,
    dead: Cell<bool>,
}

impl TcpConn {
    /// Starts connecting to `addr`; queries sent meanwhile wait in the queue, behind
    /// `preamble` (a PROXY v2 header, or nothing), which goes first. `client`: the one client
    /// the connection is for (a `proxy-protocol` backend), or `None` (shared).
    pub fn open(
        relay: Rc<Relay>,
        backend: usize,
        addr: SocketAddr,
        connect_timeout: Duration,
        preamble: Vec<u8>,
        client: Option<super::ClientAddr>,
    ) -> Rc<TcpConn> {
        let conn = Rc::new(TcpConn {
            backend,
            client,
            ids: RefCell::new(HashMap::new()),
            outgoing: RefCell::new(preamble),
            wake: Notify::new(),
            dead: Cell::new(false),
        });
        tokio::task::spawn_local(run(relay, conn.clone(), addr, connect_timeout));
        conn
    }

    pub fn backend(&self) -> usize {
        self.backend
    }

    /// The one client the connection speaks for, if it is not shared.
    pub fn client(&self) -> Option<super::ClientAddr> {
        self.client
    }

    pub fn is_dead(&self) -> bool {
        self.dead.get()
    }

    /// The query waiting on this connection under `id`.
    pub fn owner(&self, id: u16) -> Option<Key> {
        self.ids.borrow().get(&id).copied()
    }

    /// Drops `key`'s claim on `id` (timeout, or answered).
    pub fn forget(&self, id: u16, key: Key) {
        let mut ids = self.ids.borrow_mut();
        if ids.get(&id) == Some(&key) {
            ids.remove(&id);
        }
    }

    /// An ID free on this connection: `preferred` when it is, else a random one.
    pub fn free_id(&self, preferred: u16, rng: &mut impl Rng) -> u16 {
        let ids = self.ids.borrow();
        let mut id = preferred;
        while ids.contains_key(&id) {
            id = rng.random();
        }
        id
    }

    /// Queues `query` (which carries `id`) for `key`.
    pub fn send(&self, id: u16, key: Key, query: &[u8]) {
        self.ids.borrow_mut().insert(id, key);
        let mut out = self.outgoing.borrow_mut();
        out.extend_from_slice(&(query.len() as u16).to_be_bytes());
        out.extend_from_slice(query);
        self.wake.notify_one();
    }
}

async fn run(relay: Rc<Relay>, conn: Rc<TcpConn>, addr: SocketAddr, connect_timeout: Duration) {
    if let Err(e) = drive(&relay, &conn, addr, connect_timeout).await {
        tracing::debug!(backend = %addr, error = %e, "upstream TCP connection failed");
    }
    conn.dead.set(true);
    conn.outgoing.borrow_mut().clear();
    let stranded: Vec<Key> = conn.ids.borrow_mut().drain().map(|(_, key)| key).collect();
    relay.on_tcp_failure(&conn, stranded);
}

async fn drive(relay: &Relay, conn: &TcpConn, addr: SocketAddr, connect_timeout: Duration) -> io::Result<()> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let mut inbound = BytesMut::with_capacity(READ_ROOM);
    let mut pending = Vec::new();
    let idle_close = if conn.client.is_some() { CLIENT_IDLE_CLOSE } else { IDLE_CLOSE };
    loop {
        std::mem::swap(&mut pending, &mut *conn.outgoing.borrow_mut());
        if !pending.is_empty() {
            writer.write_all(&pending).await?;
            pending.clear();
        }
        let idle = conn.ids.borrow().is_empty();
        // Room for a whole answer of a few kB behind what is kept: once the frames split off
        // its front are dropped this reuses the allocation. Without it the spare capacity
        // shrank with every answer taken and half the answers came in two reads.
        inbound.reserve(READ_ROOM);
        tokio::select! {
            biased;
            _ = conn.wake.notified() => {}
            read = reader.read_buf(&mut inbound) => {
                if read? == 0 {
                    return Ok(()); // the backend closed it; waiting queries are stranded
                }
                ack_now(&reader);
                while let Some(mut frame) = next_frame(&mut inbound) {
                    relay.on_tcp_answer(conn, &mut frame);
                }
            }
            _ = tokio::time::sleep(idle_close), if idle => return Ok(()),
        }
    }
}

/// Acknowledges what was just read at once instead of after the delayed-ACK timer.
///
/// A backend that writes its answers with Nagle's algorithm on (Unbound does not set
/// TCP_NODELAY on the connections it accepts) holds each answer while the one before is
/// unacknowledged; with this side's ACKs delayed, as Linux delays them on a connection that
/// carries requests and responses, every answer then waited for the next query to carry the
/// ACK: under load each TC fallback took as long as the gap between fallbacks (5 ms at
/// 20,000 qps, the 1% of answers that set p99). Linux clears the option again as it sees fit,
/// so it is set after every read: one `setsockopt` per read, on the fallback path only.
fn ack_now(reader: &tokio::net::tcp::OwnedReadHalf) {
    // Best effort: without it answers are only slower.
    let _ = SockRef::from(reader.as_ref()).set_tcp_quickack(true);
}

/// Splits one length-prefixed message off the front of `inbound`, when it is all there.
fn next_frame(inbound: &mut BytesMut) -> Option<BytesMut> {
    if inbound.len() < 2 {
        return None;
    }
    let len = u16::from_be_bytes([inbound[0], inbound[1]]) as usize;
    if inbound.len() < 2 + len {
        inbound.reserve(2 + len - inbound.len());
        return None;
    }
    inbound.advance(2);
    Some(inbound.split_to(len))
}
