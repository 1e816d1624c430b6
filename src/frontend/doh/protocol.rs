//! What a DoH connection speaks inside TLS: HTTP/2 (`h2`, ALPN "h2") or HTTP/1.1 (`http1`,
//! anything else), turned into DNS messages for the relay (`super::dispatch`) and back into
//! HTTP responses, each encrypted as its own TLS record. The connection itself (socket, TLS,
//! timers, drain, backpressure) is DoT's driver, `dot::connection`.
//!
//! How an answer finds its request without a per-query allocation: the query leaves with a DNS
//! ID that is the index of its request's slot here (the ID the client sent, 0 by RFC 8484 §4.1,
//! is kept in the slot); the relay hands the answer back with that ID to the connection's one
//! answer queue, and the writer looks the slot up, puts the client's ID back and answers the
//! request (stream or sequence number) the slot names. The slots hold no heap while nothing is
//! in flight.
//!
//! Owns: the HTTP state of one connection, its slots, the HTTP errors waiting to be answered.
//! Never: answers a request twice, sends a response while the socket holds unsent octets (the
//! driver calls `write` only then), or keeps reading HTTP/1.1 requests past the in-flight cap.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::flood::Flood;
use super::h2::{self, H2Conn};
use super::http1::H1Conn;
use super::{DohContext, DNS_MESSAGE};
use crate::dns;
use crate::frontend::dot::connection::{Conn, Ending, Protocol};
use crate::frontend::dot::framing;
use crate::frontend::dot::hello::HelloPeek;
use crate::frontend::dot::session::{Output, TlsSession};
use crate::frontend::dot::DotContext;
use crate::stats::{bump, TlsFrontendStats, WorkerStats};

/// A DoH connection's protocol state.
pub struct DohProtocol {
    ctx: Rc<DohContext>,
    http: Http,
    /// ALPN said "h2" (told during the handshake; `http` is chosen from it at the first use).
    h2_agreed: bool,
    /// Requests whose DNS message is out (relay, gateway) or answered locally and queued: the
    /// index is the DNS ID the message carries meanwhile.
    slots: Vec<Slot>,
    /// HTTP/1.1: the start of a request cut off by a record's end, or requests held back by
    /// the in-flight cap.
    pending: BytesMut,
    /// HTTP errors to answer: (stream or sequence number, status).
    statuses: Vec<(u32, u16)>,
    /// The HTTP/2 flood budget the client spent, for the metrics.
    flood: Option<Flood>,
    /// Drain began: the connection's end is the driver's to count.
    draining: bool,
}

enum Http {
    /// Before the first use after the handshake.
    Undecided,
    H2(Box<H2Conn>),
    H1(H1Conn),
}

/// A request with a DNS message in flight.
#[derive(Clone, Copy, Default)]
pub(super) struct Slot {
    /// The HTTP/2 stream id or the HTTP/1.1 sequence number.
    request: u32,
    /// The ID the client's message carried.
    client_id: u16,
    used: bool,
}

impl DohProtocol {
    pub fn new(ctx: Rc<DohContext>) -> DohProtocol {
        DohProtocol {
            ctx,
            http: Http::Undecided,
            h2_agreed: false,
            slots: Vec::new(),
            pending: BytesMut::new(),
            statuses: Vec::new(),
            flood: None,
            draining: false,
        }
    }

    /// The HTTP version, chosen by ALPN at its first use; an HTTP/2 connection's preface
    /// (our SETTINGS) goes into `plain` then.
    fn http(&mut self, plain: &mut Vec<u8>) -> &mut Http {
        if let Http::Undecided = self.http {
            self.http = if self.h2_agreed {
                let mut h2 = Box::new(H2Conn::new(self.ctx.h2));
                h2.start(plain);
                Http::H2(h2)
            } else {
                Http::H1(H1Conn::default())
            };
        }
        &mut self.http
    }
}

impl Protocol for DohProtocol {
    fn stats(stats: &WorkerStats) -> &TlsFrontendStats {
        &stats.doh
    }

    fn tls_config(&self, _ctx: &DotContext, _hello: HelloPeek) -> Arc<rustls::ServerConfig> {
        self.ctx.tls.clone()
    }

    fn negotiated(&mut self, alpn: Option<&[u8]>) {
        self.h2_agreed = alpn == Some(b"h2");
    }

    fn established(&mut self, plain: &mut Vec<u8>) {
        self.http(plain);
    }

    fn take(&mut self, conn: &Conn<'_>, plaintext: &[u8], plain: &mut Vec<u8>) -> Result<(), Ending> {
        self.http(plain);
        let DohProtocol { ctx, http, slots, pending, statuses, flood, .. } = self;
        let mut scratch = ctx.scratch.borrow_mut();
        let super::Scratch { h2: h2_scratch, message } = &mut *scratch;
        let stats = &conn.ctx.stats;
        match http {
            Http::H2(h2) => {
                let fed = h2.feed(plaintext, Instant::now(), h2_scratch, plain, |event| match event {
                    h2::Event::Request { stream, method, path, content_type, body } => {
                        let request = Request { id: stream, method, target: path, content_type, body };
                        super::handle(ctx, conn, request, message, slots, statuses);
                    }
                    // Its answer, when it comes, finds the stream gone and is dropped.
                    h2::Event::Reset { .. } => {}
                    h2::Event::Answered { status, .. } => super::count_status(stats, status),
                });
                if let Err(error) = fed {
                    tracing::debug!(reason = error.reason, "HTTP/2 connection error");
                    *flood = error.flood;
                    return Err(Ending::Protocol);
                }
            }
            Http::H1(h1) => {
                let room =
                    (conn.ctx.settings.max_in_flight as usize).saturating_sub(conn.answers.outstanding() as usize);
                let room = room.saturating_sub(statuses.len());
                let refused_before = h1.refused().is_some();
                framing::take_stream::<Ending>(pending, plaintext, |input| {
                    Ok(h1.feed(input, room, plain, |seq, request| {
                        let request = Request {
                            id: seq,
                            method: request.method,
                            target: request.path,
                            content_type: request.content_type,
                            body: request.body,
                        };
                        super::handle(ctx, conn, request, message, slots, statuses);
                    }))
                })?;
                if let (false, Some(status)) = (refused_before, h1.refused()) {
                    super::count_status(stats, status);
                }
            }
            Http::Undecided => {}
        }
        Ok(())
    }

    fn holds_input(&self) -> bool {
        // Only HTTP/1.1 holds requests back; HTTP/2 refuses streams over its cap itself.
        matches!(self.http, Http::H1(_)) && !self.pending.is_empty()
    }

    fn write(
        &mut self,
        conn: &Conn<'_>,
        session: &mut TlsSession,
        plain: &mut Vec<u8>,
        out: &mut Output,
    ) -> Result<(), Ending> {
        let DohProtocol { http, slots, statuses, .. } = self;
        let stats = &conn.ctx.stats;
        // Each response its own TLS record (see docs/doh.md: dnsperf loses answers that share
        // one with the end of another).
        let encrypt = |session: &mut TlsSession, plain: &mut Vec<u8>, out: &mut Output| {
            if !plain.is_empty() {
                session.encrypt(plain, out).map_err(|_| Ending::Protocol)?;
                plain.clear();
            }
            Ok::<(), Ending>(())
        };
        if !statuses.is_empty() {
            for &(id, status) in statuses.iter() {
                let allow: &[(&[u8], &[u8])] = if status == 405 { &[(b"allow", b"GET, POST")] } else { &[] };
                respond(http, id, status, allow, b"", plain);
                encrypt(session, plain, out)?;
            }
            *statuses = Vec::new();
        }
        if conn.answers.has_output() {
            conn.answers.write_out(|framed| {
                let mut at = 0;
                while let Some(&[high, low]) = framed.get(at..at + 2) {
                    let end = at + 2 + usize::from(u16::from_be_bytes([high, low]));
                    let message = &mut framed[at + 2..end];
                    at = end;
                    // Every queued answer has its slot; a message too short for an ID has none.
                    let Some(slot) = take_slot(slots, message) else { continue };
                    dns::set_id(message, slot.client_id);
                    let mut room = [0u8; 28];
                    let cache_control = max_age(message, &mut room);
                    let fields: [(&[u8], &[u8]); 2] =
                        [(b"content-type", DNS_MESSAGE.as_bytes()), (b"cache-control", cache_control)];
                    let before = plain.len();
                    respond(http, slot.request, 200, &fields, message, plain);
                    // An HTTP/2 stream the client reset takes no answer.
                    if plain.len() > before || matches!(http, Http::H1(_)) {
                        bump(&stats.doh_status_200);
                    }
                    encrypt(session, plain, out)?;
                }
                Ok::<(), Ending>(())
            })?;
            if slots.iter().all(|slot| !slot.used) {
                *slots = Vec::new();
            }
        }
        if let Http::H2(h2) = http {
            while h2.send_pending(plain) {
                encrypt(session, plain, out)?;
            }
        }
        Ok(())
    }

    fn drain(&mut self, plain: &mut Vec<u8>) {
        self.draining = true;
        match &mut self.http {
            Http::H2(h2) => h2.goaway(plain),
            Http::H1(h1) => h1.goaway(),
            Http::Undecided => {}
        }
    }

    fn reads_while_draining(&self) -> bool {
        matches!(self.http, Http::H2(_))
    }

    fn busy(&self) -> bool {
        !self.statuses.is_empty() || matches!(&self.http, Http::H2(h2) if h2.streams_open() > 0)
    }

    fn finished(&self) -> Option<Ending> {
        let done = match &self.http {
            Http::H1(h1) if h1.refused().is_some() => return h1.is_done().then_some(Ending::Protocol),
            Http::H1(h1) => h1.is_done(),
            Http::H2(h2) => h2.is_done(),
            Http::Undecided => false,
        };
        // After our GOAWAY (drain), the driver ends it as drained; else the client ended it
        // (`Connection: close`, its own GOAWAY).
        (done && !self.draining).then_some(Ending::ClientDone)
    }

    fn ended(&self, stats: &WorkerStats) {
        let counter = match self.flood {
            Some(Flood::Ping) => &stats.doh_flood_ping,
            Some(Flood::Settings) => &stats.doh_flood_settings,
            Some(Flood::Reset) => &stats.doh_flood_reset,
            Some(Flood::Headers) => &stats.doh_flood_headers,
            Some(Flood::Other) => &stats.doh_flood_other,
            None => return,
        };
        bump(counter);
    }
}

/// One HTTP request, whichever version carried it.
pub(super) struct Request<'a> {
    /// The stream id (HTTP/2) or sequence number (HTTP/1.1) its response goes to.
    pub id: u32,
    pub method: &'a [u8],
    /// The path and query.
    pub target: &'a [u8],
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Appends the response to request `id` (HTTP/2: a stream; HTTP/1.1: held until its turn).
fn respond(http: &mut Http, id: u32, status: u16, fields: &[(&[u8], &[u8])], body: &[u8], plain: &mut Vec<u8>) {
    match http {
        Http::H2(h2) => h2.respond(id, status, fields, body, plain),
        Http::H1(h1) => h1.respond(id, status, fields, body, plain),
        Http::Undecided => {}
    }
}

/// Takes a slot for a request whose DNS message leaves with `client_id`; returns the ID the
/// message carries meanwhile. At most `--max-in-flight` (at most 65,535) are taken at once:
/// HTTP/2 refuses streams over it, HTTP/1.1 reads no request over it.
pub(super) fn give_slot(slots: &mut Vec<Slot>, request: u32, client_id: u16) -> u16 {
    let slot = Slot { request, client_id, used: true };
    match slots.iter().position(|slot| !slot.used) {
        Some(free) => {
            slots[free] = slot;
            free as u16
        }
        None => {
            slots.push(slot);
            (slots.len() - 1) as u16
        }
    }
}

/// Frees the slot an answer's ID names, and returns it.
fn take_slot(slots: &mut [Slot], message: &[u8]) -> Option<Slot> {
    if message.len() < dns::HEADER_LEN {
        return None;
    }
    let slot = slots.get_mut(usize::from(dns::id(message))).filter(|slot| slot.used)?;
    slot.used = false;
    Some(*slot)
}

/// `max-age=` the answer's smallest TTL (RFC 8484 §5.1; a negative answer's: its SOA's, RFC
/// 2308), written into `room` (per answer: `h2::decimal`, not the formatting machinery).
fn max_age<'r>(answer: &[u8], room: &'r mut [u8; 28]) -> &'r [u8] {
    const PREFIX: &[u8] = b"max-age=";
    // The digits land at the end of `room`; the prefix goes just before them.
    let digits: &mut [u8; 20] = (&mut room[PREFIX.len()..]).try_into().expect("20 octets after the prefix");
    let len = h2::decimal(u64::from(dns::answer_min_ttl(answer).unwrap_or(0)), digits).len();
    let start = room.len() - len - PREFIX.len();
    room[start..start + PREFIX.len()].copy_from_slice(PREFIX);
    &room[start..]
}
