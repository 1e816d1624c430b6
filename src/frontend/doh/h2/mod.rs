//! dotgate's own HTTP/2 server core (RFC 9113), sans-IO: plaintext from the client in
//! (`H2Conn::feed`, in pieces of any size), plaintext for the client out (appended to the
//! caller's buffer, to be encrypted by the TLS session), requests out as events, responses in
//! (`H2Conn::respond`). One `H2Conn` per connection, driven by the connection's task the way
//! DoT drives its `TlsSession`: plaintext from rustls's callback into `feed`; `start`'s,
//! `feed`'s, each `respond`'s and each `send_pending`'s output encrypted as it comes (each
//! response its own TLS record, see docs/doh.md).
//!
//! Why hand-rolled and not hyper's h2: memory per idle connection and allocation per request.
//! hyper/h2 held about 47 kB of RSS per idle HTTP/2 connection (dnsdist: 15 kB; issue 18's
//! floor is half the best peer), and allocates a request, a response, their header maps and a
//! task per stream. DoH needs a small part of HTTP/2: short requests (a GET's `?dns=` or a POST
//! of at most 65,535 octets) answered by short responses, no push, no priorities, no upgrades.
//! Here an idle connection holds the struct (`size_of::<H2Conn>()`: 400 octets on x86-64, a
//! third of it the flood budgets) and nothing on the heap once the client has acknowledged our
//! SETTINGS (HPACK table size 0: its dynamic table is emptied and freed). The stream table, a
//! header block split across frames, a frame split across reads and an answer waiting for the
//! client's flow-control window are heap only while they exist (`heap_bytes`). A GET is decoded
//! into the worker's shared `Scratch` and handed out from there: no allocation for it beyond the
//! stream table's when the connection had no stream open; a POST's fields and body are one
//! allocation, held until the body is complete.
//!
//! Owns: the HTTP/2 state of one connection: the preface, SETTINGS both ways, flow-control
//! windows both ways, stream states and ids, header-block assembly and HPACK decoding, request
//! validation (RFC 9113 §8), the answers HTTP/2 itself gives (413 for a body over a DNS
//! message, 431 for a header list over the cap, RST_STREAM for malformed or refused streams,
//! GOAWAY), the flood budgets (`flood::FloodBudget`).
//! Never: touches a socket, TLS, a timer or a task; reads the clock (the caller's `now` is the
//! only time); interprets a request beyond HTTP
//! (paths, methods and media types are the caller's); sends more DATA than the client's windows
//! allow; holds more request body octets than the connection window it announced; or mixes two
//! responses in one piece of output (each `respond` and each `send_pending` appends one
//! response's frames; `feed` appends none).

use std::time::Instant;

use super::flood::{Flood, FloodBudget};
use super::frames::{kind, FrameHead, ACK, END_HEADERS, END_STREAM};
use super::hpack;

#[cfg(test)]
mod tests;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Error codes (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// PADDED on DATA and HEADERS; PRIORITY on HEADERS.
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Every window's initial size, and the HPACK table's, until SETTINGS say otherwise.
const DEFAULT_WINDOW: u32 = 65_535;
const DEFAULT_TABLE: u32 = 4_096;
/// The largest frame payload either side accepts by default; ours, never raised (DoH's requests
/// and answers fit a few frames).
pub const MAX_FRAME: u32 = 16_384;
/// The largest a flow-control window may grow (RFC 9113 §6.9.1).
const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The largest request body: a DNS message. A longer one is answered 413.
const MAX_BODY: usize = super::MAX_MESSAGE;
/// Octets of a too-large body read and dropped before its 413: a client that sends a little
/// too much gets the 413 after its upload (an early answer makes some clients, curl 7.88, see
/// only the reset stream); past this the 413 goes at once and the stream is reset.
const DRAIN_LIMIT: u32 = 4 * MAX_BODY as u32;
/// The connection's receive window is given back in WINDOW_UPDATEs of at least this much (one
/// per request body would double the frames a POST client receives).
const CONN_UPDATE: u32 = 16_384;
/// What a client may send on the connection before a WINDOW_UPDATE, by default: the request
/// bodies one connection can make us hold (the window is given back as bodies are handed out,
/// not as they arrive). Two whole 65,535-octet bodies; DoH queries are rarely over 1 kB.
pub const CONNECTION_WINDOW: u32 = 2 * DEFAULT_WINDOW;

/// What this server says in its SETTINGS, and enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H2Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: `--max-in-flight`. A stream over it is refused
    /// (RST_STREAM REFUSED_STREAM) and never reaches the caller.
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a request whose list decodes to more is answered 431.
    pub max_header_list: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: the client's HPACK dynamic table, which lives here, in each
    /// idle connection. 0 (the default) costs nothing; the client may use 4,096 until it
    /// acknowledges our SETTINGS.
    pub header_table_size: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on a stream before a WINDOW_UPDATE.
    pub initial_window: u32,
    /// The connection's receive window (opened by a WINDOW_UPDATE in `start` when over 65,535):
    /// bounds the request body octets held per connection.
    pub connection_window: u32,
}

impl Default for H2Settings {
    fn default() -> Self {
        H2Settings {
            max_concurrent_streams: 100,
            max_header_list: super::MAX_HEADER_LIST,
            header_table_size: 0,
            initial_window: DEFAULT_WINDOW,
            connection_window: CONNECTION_WINDOW,
        }
    }
}

/// A connection error (RFC 9113 §5.4.1): a GOAWAY with `code` is already appended to the
/// output; the caller flushes it and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnError {
    pub code: u32,
    pub reason: &'static str,
    /// The flood budget the client exhausted (`code` is ENHANCE_YOUR_CALM), for the metrics.
    pub flood: Option<Flood>,
}

impl ConnError {
    fn new(code: u32, reason: &'static str) -> ConnError {
        ConnError { code, reason, flood: None }
    }
}

/// What `feed` found for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole request: its fields (`path`: `:path` as sent, query included) and body
    /// (END_STREAM seen), valid per RFC 9113 §8 (:method, :scheme and :path present, names
    /// lowercase, no connection-specific field, content-length equal to the body). The caller
    /// answers it with `respond(stream, ..)`, in any order, or learns of its cancellation by
    /// `Reset`.
    Request { stream: u32, method: &'a [u8], path: &'a [u8], content_type: Option<&'a [u8]>, body: &'a [u8] },
    /// The client reset a stream handed out as a `Request` and not answered yet (or broke the
    /// protocol on it): its answer, if it comes, is dropped.
    Reset { stream: u32 },
    /// This core answers the request on `stream` itself, with `status` and no body (413: a body
    /// over a DNS message, whatever its media type; 431: a header list over the cap): for the
    /// caller's count of responses by status; `send_pending` sends it.
    Answered { stream: u32, status: u16 },
}

/// Buffers a worker's connections share: what a request is decoded into before it is handed
/// out. Held by the caller, one per worker (connections of a worker never run at once).
#[derive(Default)]
pub struct Scratch {
    /// HPACK's (Huffman-decoded strings).
    hpack: Vec<u8>,
    /// A request's :method, :path and content-type, end to end.
    fields: Vec<u8>,
}

/// The caller's callback for `Event`s.
trait OnEvent: FnMut(Event<'_>) {}
impl<F: FnMut(Event<'_>)> OnEvent for F {}

/// What one `feed` works with: the worker's scratch, the output, the caller's callback.
struct Io<'a, F> {
    scratch: &'a mut Scratch,
    out: &'a mut Vec<u8>,
    on_event: F,
    /// The caller's clock, for the flood budgets.
    now: Instant,
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Headers in, body coming: `buf` holds the fields, then the body.
    Receiving,
    /// Body coming, and dropped: `status` answers it once it ends.
    Discarding { status: u16 },
    /// Handed out as a `Request`: the caller's to answer.
    Awaiting,
    /// Answered; `buf` holds the DATA that waits for the client's windows.
    Sending,
    /// To be answered by this core with `status` and no body (then reset with NO_ERROR when
    /// `reset`: the client is still sending).
    Local { status: u16, reset: bool },
}

#[derive(Debug)]
struct Stream {
    id: u32,
    state: State,
    /// What we may still send on it.
    send_window: i64,
    /// What the client may still send on it, and what it sent since its last WINDOW_UPDATE.
    recv_window: i64,
    recv_unacked: u32,
    /// Body octets received (dropped ones included), and those held in `buf` (the connection's
    /// window is given back for them once they leave).
    received: u32,
    held: u32,
    /// The request's content-length, if it had one.
    content_length: Option<u32>,
    /// Ends of :method, :path and content-type in `buf` (Receiving); content-type absent (or
    /// empty) when its end is the path's.
    ends: [u32; 3],
    buf: Vec<u8>,
}

/// One HTTP/2 connection, server side (see the module docs).
pub struct H2Conn {
    settings: H2Settings,
    /// Octets of the client preface still to see (24 at first).
    preface_left: u8,
    /// The client's first SETTINGS arrived; ours was acknowledged.
    got_settings: bool,
    settings_acked: bool,
    failed: Option<ConnError>,
    /// The frame header being read, and the frame whose payload is being read.
    head: [u8; 9],
    head_have: u8,
    frame: Option<FrameHead>,
    /// The payload of a frame split across `feed` calls (heap only meanwhile).
    partial: Vec<u8>,
    /// A header block split across HEADERS and CONTINUATION frames (heap only meanwhile); its
    /// stream (0: none in progress) and whether its HEADERS ended the stream.
    block: Vec<u8>,
    block_stream: u32,
    block_end_stream: bool,
    streams: Vec<Stream>,
    /// The highest stream id the client opened.
    last_stream: u32,
    goaway_sent: bool,
    peer_goaway: bool,
    /// The client's settings that shape what we send.
    peer_initial_window: u32,
    peer_max_frame: u32,
    /// The connection's windows: what we may send, what the client may send, and what it sent
    /// since our last WINDOW_UPDATE.
    send_window: i64,
    recv_window: i64,
    recv_unacked: u32,
    /// Where `send_pending` looks first (round robin over the stream table).
    next_pending: usize,
    flood: FloodBudget,
    decoder: hpack::Decoder,
}

impl H2Conn {
    pub fn new(settings: H2Settings) -> H2Conn {
        H2Conn {
            settings,
            preface_left: PREFACE.len() as u8,
            got_settings: false,
            settings_acked: false,
            failed: None,
            head: [0; 9],
            head_have: 0,
            frame: None,
            partial: Vec::new(),
            block: Vec::new(),
            block_stream: 0,
            block_end_stream: false,
            streams: Vec::new(),
            last_stream: 0,
            goaway_sent: false,
            peer_goaway: false,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: MAX_FRAME,
            send_window: i64::from(DEFAULT_WINDOW),
            recv_window: i64::from(DEFAULT_WINDOW),
            recv_unacked: 0,
            next_pending: 0,
            flood: FloodBudget::new(settings.max_concurrent_streams),
            // The client may use the default table until it has our SETTINGS.
            decoder: hpack::Decoder::new(DEFAULT_TABLE as usize),
        }
    }

    /// Our connection preface (SETTINGS) appended to `out`: to be sent first, before or with
    /// the first octets from the client.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        let s = self.settings;
        let mut params = [(0u16, 0u32); 4];
        let mut n = 0;
        for (id, value, default) in [
            (setting::MAX_CONCURRENT_STREAMS, s.max_concurrent_streams, None),
            (setting::MAX_HEADER_LIST_SIZE, s.max_header_list, None),
            (setting::HEADER_TABLE_SIZE, s.header_table_size, Some(DEFAULT_TABLE)),
            (setting::INITIAL_WINDOW_SIZE, s.initial_window, Some(DEFAULT_WINDOW)),
        ] {
            if default != Some(value) {
                params[n] = (id, value);
                n += 1;
            }
        }
        frame_head(out, 6 * n, kind::SETTINGS, 0, 0);
        for (id, value) in &params[..n] {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        let more = s.connection_window.saturating_sub(DEFAULT_WINDOW).min(MAX_WINDOW as u32 - DEFAULT_WINDOW);
        if more > 0 {
            window_update(out, 0, more);
            self.recv_window += i64::from(more);
        }
    }

    /// Feeds plaintext from the client, in pieces of any size. Calls `on_event` for each whole
    /// request and each cancelled one; appends the protocol's own replies to `out` (SETTINGS
    /// and PING acknowledgements, WINDOW_UPDATEs, RST_STREAMs, GOAWAY), never response data:
    /// after each `feed`, call `send_pending` until it returns false (responses that waited for
    /// a WINDOW_UPDATE, and the ones this core gives itself: 413, 431).
    ///
    /// Returns the octets consumed (all of `input`: a frame cut short is kept here), or a
    /// connection error, after a GOAWAY was appended; every later call returns it again.
    ///
    /// `now` is the flood budgets' clock: this core reads none.
    pub fn feed(
        &mut self,
        input: &[u8],
        now: Instant,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
        on_event: impl FnMut(Event<'_>),
    ) -> Result<usize, ConnError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let mut io = Io { scratch, out, on_event, now };
        match self.feed_frames(input, &mut io) {
            Ok(()) => {
                if self.frame.is_none() {
                    // A frame that came in pieces is done: its buffer goes.
                    self.partial = Vec::new();
                }
                Ok(input.len())
            }
            Err(error) => {
                self.fail(error, io.out);
                Err(error)
            }
        }
    }

    fn feed_frames(&mut self, input: &[u8], io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        let mut at = 0;
        while self.preface_left > 0 && at < input.len() {
            let want = PREFACE[PREFACE.len() - usize::from(self.preface_left)];
            if input[at] != want {
                return Err(ConnError::new(code::PROTOCOL_ERROR, "not the HTTP/2 client preface"));
            }
            at += 1;
            self.preface_left -= 1;
        }
        while at < input.len() {
            let head = match self.frame {
                Some(head) => head,
                None => {
                    let n = (9 - usize::from(self.head_have)).min(input.len() - at);
                    self.head[usize::from(self.head_have)..][..n].copy_from_slice(&input[at..at + n]);
                    self.head_have += n as u8;
                    at += n;
                    if self.head_have < 9 {
                        break;
                    }
                    self.head_have = 0;
                    let head = FrameHead::parse(&self.head);
                    self.check_head(&head, io.now)?;
                    self.frame = Some(head);
                    head
                }
            };
            let len = head.len as usize;
            if self.partial.is_empty() && input.len() - at >= len {
                self.frame = None;
                self.frame(head, &input[at..at + len], io)?;
                at += len;
                continue;
            }
            let n = (len - self.partial.len()).min(input.len() - at);
            if self.partial.capacity() == 0 {
                self.partial.reserve_exact(len);
            }
            self.partial.extend_from_slice(&input[at..at + n]);
            at += n;
            if self.partial.len() == len {
                self.frame = None;
                let payload = std::mem::take(&mut self.partial);
                let done = self.frame(head, &payload, io);
                self.partial = payload;
                self.partial.clear();
                done?;
            }
        }
        if self.recv_unacked >= CONN_UPDATE {
            // The connection's window given back: what was dropped, and bodies handed out.
            window_update(io.out, 0, self.recv_unacked);
            self.recv_window += i64::from(self.recv_unacked);
            self.recv_unacked = 0;
        }
        Ok(())
    }

    /// Checks a frame header before its payload is read: size, order, flood budgets.
    fn check_head(&mut self, head: &FrameHead, now: Instant) -> Result<(), ConnError> {
        if head.len > MAX_FRAME {
            return Err(ConnError::new(code::FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE"));
        }
        if !self.got_settings && (head.kind != kind::SETTINGS || head.flags & ACK != 0) {
            return Err(ConnError::new(code::PROTOCOL_ERROR, "the client preface's SETTINGS missing"));
        }
        if self.block_stream != 0 && (head.kind != kind::CONTINUATION || head.stream != self.block_stream) {
            return Err(ConnError::new(code::PROTOCOL_ERROR, "a header block interrupted"));
        }
        if head.kind == kind::CONTINUATION && self.block_stream == 0 {
            return Err(ConnError::new(code::PROTOCOL_ERROR, "CONTINUATION without a header block"));
        }
        // Each type's stream (RFC 9113 §6: 0 for the connection's, not 0 for a stream's) and
        // length.
        let (on_stream, length_ok) = match head.kind {
            kind::SETTINGS if head.flags & ACK != 0 => (Some(false), head.len == 0),
            kind::SETTINGS => (Some(false), head.len % 6 == 0),
            kind::PING => (Some(false), head.len == 8),
            kind::GOAWAY => (Some(false), head.len >= 8),
            kind::RST_STREAM => (Some(true), head.len == 4),
            kind::WINDOW_UPDATE => (None, head.len == 4),
            // PRIORITY's length is checked with its stream (a stream error).
            kind::DATA | kind::HEADERS | kind::CONTINUATION | kind::PRIORITY => (Some(true), true),
            kind::PUSH_PROMISE => return Err(ConnError::new(code::PROTOCOL_ERROR, "PUSH_PROMISE from a client")),
            _ => (None, true),
        };
        if on_stream.is_some_and(|on| on != (head.stream != 0)) {
            return Err(ConnError::new(code::PROTOCOL_ERROR, "a frame on the wrong stream (0 or not)"));
        }
        if !length_ok {
            return Err(ConnError::new(code::FRAME_SIZE_ERROR, "a frame of the wrong length for its type"));
        }
        self.flood.charge_at(head, now).map_err(flood_error)
    }

    /// One whole frame.
    fn frame(&mut self, head: FrameHead, payload: &[u8], io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        match head.kind {
            kind::DATA => self.data(head, payload, io),
            kind::HEADERS => self.headers(head, payload, io),
            kind::CONTINUATION => {
                self.block.extend_from_slice(payload);
                if head.flags & END_HEADERS != 0 {
                    let block = std::mem::take(&mut self.block);
                    let (stream, end_stream) = (self.block_stream, self.block_end_stream);
                    self.block_stream = 0;
                    let done = self.header_block(stream, end_stream, &block, io);
                    // Freed: a block in pieces is rare, and an idle connection holds none.
                    drop(block);
                    done?;
                }
                Ok(())
            }
            kind::PRIORITY => {
                if payload.len() != 5 {
                    return self.reset(head.stream, code::FRAME_SIZE_ERROR, io);
                }
                Ok(())
            }
            kind::RST_STREAM => self.client_reset(head, io),
            kind::SETTINGS => self.settings(head, payload, io.out),
            kind::PING => {
                if head.flags & ACK == 0 {
                    frame_head(io.out, 8, kind::PING, ACK, 0);
                    io.out.extend_from_slice(payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                // The client opens no more streams; those in flight are answered.
                self.peer_goaway = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(head, payload, io),
            // Unknown types are ignored (RFC 9113 §5.5); the flood budget counted them.
            _ => Ok(()),
        }
    }

    fn settings(&mut self, head: FrameHead, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ConnError> {
        if head.flags & ACK != 0 {
            if !self.settings_acked {
                // Our SETTINGS are in force from now: the smaller HPACK table, our stream
                // window.
                self.settings_acked = true;
                self.decoder.set_max_table_size(self.settings.header_table_size as usize);
                let delta = i64::from(self.settings.initial_window) - i64::from(DEFAULT_WINDOW);
                for stream in &mut self.streams {
                    stream.recv_window += delta;
                }
            }
            return Ok(());
        }
        for param in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([param[0], param[1]]);
            let value = u32::from_be_bytes([param[2], param[3], param[4], param[5]]);
            match id {
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(ConnError::new(code::PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1"));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if i64::from(value) > MAX_WINDOW {
                        return Err(ConnError::new(code::FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large"));
                    }
                    // RFC 9113 §6.9.2: every stream's window moves by the difference.
                    let delta = i64::from(value) - i64::from(self.peer_initial_window);
                    self.peer_initial_window = value;
                    for stream in &mut self.streams {
                        stream.send_window += delta;
                        if stream.send_window > MAX_WINDOW {
                            return Err(ConnError::new(code::FLOW_CONTROL_ERROR, "a stream window over 2^31-1"));
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(MAX_FRAME..=(1 << 24) - 1).contains(&value) {
                        return Err(ConnError::new(code::PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range"));
                    }
                    self.peer_max_frame = value;
                }
                // HEADER_TABLE_SIZE: our encoder keeps no table. ENABLE_PUSH: we never push.
                // MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, unknown: nothing to do.
                _ => {}
            }
        }
        self.got_settings = true;
        frame_head(out, 0, kind::SETTINGS, ACK, 0);
        Ok(())
    }

    fn window_update(&mut self, head: FrameHead, payload: &[u8], io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        let increment = i64::from(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(ConnError::new(code::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
            }
            self.send_window += increment;
            if self.send_window > MAX_WINDOW {
                return Err(ConnError::new(code::FLOW_CONTROL_ERROR, "connection window over 2^31-1"));
            }
            return Ok(());
        }
        self.check_known(head.stream)?;
        let Some(i) = self.find(head.stream) else { return Ok(()) };
        let stream = &mut self.streams[i];
        stream.send_window += increment;
        if increment == 0 || stream.send_window > MAX_WINDOW {
            let error = if increment == 0 { code::PROTOCOL_ERROR } else { code::FLOW_CONTROL_ERROR };
            return self.reset(head.stream, error, io);
        }
        Ok(())
    }

    /// The client's RST_STREAM.
    fn client_reset(&mut self, head: FrameHead, io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        self.check_known(head.stream)?;
        self.close(head.stream, io);
        Ok(())
    }

    /// A stream error (RFC 9113 §5.4.2): RST_STREAM with `error`, the stream closed. Charged to
    /// the client's reset budget like its own resets: a client that makes us reset stream after
    /// stream (malformed requests, frames on closed streams, "MadeYouReset") floods as surely
    /// as one that resets them itself.
    fn reset(&mut self, id: u32, error: u32, io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        rst_stream(io.out, id, error);
        self.close(id, io);
        let head = FrameHead { kind: kind::RST_STREAM, flags: 0, len: 4, stream: id };
        self.flood.charge_at(&head, io.now).map_err(flood_error)
    }

    /// Forgets stream `id`; the caller hears of it if it had the request.
    fn close(&mut self, id: u32, io: &mut Io<impl OnEvent>) {
        if let Some(i) = self.find(id) {
            if self.streams[i].state == State::Awaiting {
                (io.on_event)(Event::Reset { stream: id });
            }
            self.remove(i);
        }
    }

    fn data(&mut self, head: FrameHead, payload: &[u8], io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        self.check_known(head.stream)?;
        // The whole frame counts against the windows, padding included (RFC 9113 §6.9.1), and
        // the connection's is given back at once for all but the body octets kept (given back
        // when they leave: the window bounds what a connection makes us hold).
        let len = payload.len() as u32;
        self.recv_window -= i64::from(len);
        if self.recv_window < 0 {
            return Err(ConnError::new(code::FLOW_CONTROL_ERROR, "DATA beyond the connection window"));
        }
        let body = unpad(head.flags, payload)?;
        self.recv_unacked += len;
        let Some(i) = self.find(head.stream) else {
            // A stream closed or reset: ignored.
            return Ok(());
        };
        let initial = i64::from(self.recv_initial());
        let stream = &mut self.streams[i];
        match stream.state {
            State::Receiving | State::Discarding { .. } => {}
            // The 413 is on its way and the stream reset after it.
            State::Local { reset: true, .. } => return Ok(()),
            // Half-closed (remote): the client ended this stream already.
            _ => return self.reset(head.stream, code::STREAM_CLOSED, io),
        }
        stream.recv_window -= i64::from(len);
        if stream.recv_window < 0 {
            return self.reset(head.stream, code::FLOW_CONTROL_ERROR, io);
        }
        stream.received = stream.received.saturating_add(body.len() as u32);
        if stream.state == State::Receiving {
            if stream.received as usize <= MAX_BODY {
                stream.buf.extend_from_slice(body);
                stream.held += body.len() as u32;
                self.recv_unacked -= body.len() as u32;
            } else {
                stream.state = State::Discarding { status: 413 };
                stream.buf = Vec::new();
                self.recv_unacked += std::mem::take(&mut stream.held);
            }
        }
        if head.flags & END_STREAM != 0 {
            return self.request_end(i, io);
        }
        if stream.received > DRAIN_LIMIT {
            // Answered now, the rest cut off.
            if let State::Discarding { status } = stream.state {
                stream.state = State::Local { status, reset: true };
                (io.on_event)(Event::Answered { stream: head.stream, status });
            }
            return Ok(());
        }
        stream.recv_unacked += len;
        if i64::from(stream.recv_unacked) >= initial / 2 {
            window_update(io.out, head.stream, stream.recv_unacked);
            stream.recv_window += i64::from(stream.recv_unacked);
            stream.recv_unacked = 0;
        }
        Ok(())
    }

    /// The request on stream `i` ended (END_STREAM on DATA or trailers).
    fn request_end(&mut self, i: usize, io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        let stream = &mut self.streams[i];
        match stream.state {
            State::Receiving => {
                let [method, path, content_type] = stream.ends.map(|end| end as usize);
                if stream.content_length.is_some_and(|n| n != stream.received) {
                    // RFC 9113 §8.1.1: malformed.
                    let id = stream.id;
                    return self.reset(id, code::PROTOCOL_ERROR, io);
                }
                let buf = std::mem::take(&mut stream.buf);
                stream.state = State::Awaiting;
                self.recv_unacked += std::mem::take(&mut stream.held);
                (io.on_event)(Event::Request {
                    stream: stream.id,
                    method: &buf[..method],
                    path: &buf[method..path],
                    content_type: (content_type > path).then(|| &buf[path..content_type]),
                    body: &buf[content_type..],
                });
            }
            State::Discarding { status } => {
                stream.state = State::Local { status, reset: false };
                (io.on_event)(Event::Answered { stream: stream.id, status });
            }
            _ => {}
        }
        Ok(())
    }

    fn headers(&mut self, head: FrameHead, payload: &[u8], io: &mut Io<impl OnEvent>) -> Result<(), ConnError> {
        let mut fragment = unpad(head.flags, payload)?;
        if head.flags & PRIORITY != 0 {
            if fragment.len() < 5 {
                return Err(ConnError::new(code::FRAME_SIZE_ERROR, "HEADERS too short for its priority"));
            }
            fragment = &fragment[5..];
        }
        let end_stream = head.flags & END_STREAM != 0;
        if head.flags & END_HEADERS != 0 {
            return self.header_block(head.stream, end_stream, fragment, io);
        }
        self.block_stream = head.stream;
        self.block_end_stream = end_stream;
        self.block.extend_from_slice(fragment);
        Ok(())
    }

    /// A whole header block: a new request, or trailers.
    fn header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        io: &mut Io<impl OnEvent>,
    ) -> Result<(), ConnError> {
        let existing = self.find(id);
        let new = existing.is_none();
        if new && (id % 2 == 0 || id <= self.last_stream) {
            return Err(ConnError::new(code::PROTOCOL_ERROR, "HEADERS on a closed or even stream id"));
        }
        // Always decoded, whatever becomes of the stream: the HPACK table must stay in step.
        let mut request = Fields::default();
        io.scratch.fields.clear();
        let fields = &mut io.scratch.fields;
        let decoded =
            self.decoder.decode(block, self.settings.max_header_list as usize, &mut io.scratch.hpack, |n, v| {
                if new {
                    request.field(n, v, fields);
                }
            });
        let too_large = match decoded {
            Ok(()) => false,
            Err(hpack::HpackError::ListTooLarge) => true,
            // Decoding stopped short (the table is out of step): a header list flood.
            Err(hpack::HpackError::ListFarTooLarge) => return Err(flood_error(Flood::Headers)),
            Err(_) => return Err(ConnError::new(code::COMPRESSION_ERROR, "HPACK")),
        };
        if let Some(i) = existing {
            // Trailers: ignored but for ending the stream.
            return match self.streams[i].state {
                State::Receiving | State::Discarding { .. } if end_stream => self.request_end(i, io),
                State::Receiving | State::Discarding { .. } => self.reset(id, code::PROTOCOL_ERROR, io),
                _ => self.reset(id, code::STREAM_CLOSED, io),
            };
        }
        self.last_stream = id;
        if self.goaway_sent || self.peer_goaway {
            // After our GOAWAY, streams above its last id are ignored (RFC 9113 §6.8).
            return Ok(());
        }
        if self.streams.len() >= self.settings.max_concurrent_streams as usize {
            return self.reset(id, code::REFUSED_STREAM, io);
        }
        let state = if too_large {
            State::Discarding { status: 431 }
        } else if request.malformed().is_some() {
            return self.reset(id, code::PROTOCOL_ERROR, io);
        } else {
            State::Receiving
        };
        let mut stream = Stream {
            id,
            state,
            send_window: i64::from(self.peer_initial_window),
            recv_window: i64::from(self.recv_initial()),
            recv_unacked: 0,
            received: 0,
            held: 0,
            content_length: request.content_length,
            ends: [0; 3],
            buf: Vec::new(),
        };
        if end_stream {
            if let State::Discarding { status } = state {
                stream.state = State::Local { status, reset: false };
                self.streams.push(stream);
                (io.on_event)(Event::Answered { stream: id, status });
                return Ok(());
            }
            if request.content_length.is_some_and(|n| n != 0) {
                return self.reset(id, code::PROTOCOL_ERROR, io);
            }
            // A GET: handed out from the scratch, no copy.
            stream.state = State::Awaiting;
            self.streams.push(stream);
            let f = &io.scratch.fields;
            (io.on_event)(Event::Request {
                stream: id,
                method: request.method.of(f),
                path: request.path.of(f),
                content_type: request.content_type.map(|r| r.of(f)),
                body: &[],
            });
            return Ok(());
        }
        if state == State::Receiving {
            // A POST: the fields wait with the body, in this order (they came in any).
            let f = &io.scratch.fields;
            let parts = [request.method.of(f), request.path.of(f), request.content_type.map_or(&[][..], |r| r.of(f))];
            let expected = request.content_length.map_or(512, |n| (n as usize).min(MAX_BODY));
            stream.buf.reserve_exact(parts.iter().map(|p| p.len()).sum::<usize>() + expected);
            for (end, part) in stream.ends.iter_mut().zip(parts) {
                stream.buf.extend_from_slice(part);
                *end = stream.buf.len() as u32;
            }
        }
        self.streams.push(stream);
        Ok(())
    }

    /// A response on `stream`: HEADERS (`status`, `headers` with lowercase names and without
    /// content-length, which is added), then `body` in DATA frames as far as the client's
    /// windows allow; the rest is copied and sent by `send_pending` as WINDOW_UPDATEs come.
    /// Everything one call appends to `out` is this one response's. Nothing for a stream not
    /// awaiting an answer (reset meanwhile, or answered already).
    pub fn respond(&mut self, stream: u32, status: u16, headers: &[(&[u8], &[u8])], body: &[u8], out: &mut Vec<u8>) {
        let Some(i) = self.find(stream).filter(|&i| self.streams[i].state == State::Awaiting) else { return };
        self.write_headers(stream, status, headers, body.len(), out);
        if body.is_empty() {
            self.remove(i);
            return;
        }
        let sent = self.write_data(i, body, out);
        if sent == body.len() {
            self.remove(i);
        } else {
            let s = &mut self.streams[i];
            s.state = State::Sending;
            s.buf = body[sent..].to_vec();
        }
    }

    /// Appends one response's pending frames (the rest of an answer whose windows opened, or
    /// an answer of this core's own: 413, 431) and returns true; false when nothing can be
    /// sent now. Call until false after each `feed`; make each piece its own TLS record.
    pub fn send_pending(&mut self, out: &mut Vec<u8>) -> bool {
        let n = self.streams.len();
        for k in 0..n {
            let i = (self.next_pending + k) % n;
            let stream = &self.streams[i];
            match stream.state {
                State::Local { status, reset } => {
                    let id = stream.id;
                    self.write_headers(id, status, &[], 0, out);
                    if reset {
                        rst_stream(out, id, code::NO_ERROR);
                    }
                    self.remove(i);
                }
                State::Sending if stream.send_window > 0 && self.send_window > 0 => {
                    let mut pending = std::mem::take(&mut self.streams[i].buf);
                    let sent = self.write_data(i, &pending, out);
                    if sent == pending.len() {
                        self.remove(i);
                    } else {
                        pending.drain(..sent);
                        self.streams[i].buf = pending;
                        self.next_pending = i + 1;
                    }
                }
                _ => continue,
            }
            return true;
        }
        false
    }

    /// A HEADERS frame (and CONTINUATIONs if the client's frames are too small for it).
    fn write_headers(&self, stream: u32, status: u16, headers: &[(&[u8], &[u8])], body: usize, out: &mut Vec<u8>) {
        let mut digits = [0u8; 20];
        let length = decimal(body as u64, &mut digits);
        let mut inline: [(&[u8], &[u8]); 8] = [(&[], &[]); 8];
        let heap;
        let fields: &[(&[u8], &[u8])] = if headers.len() < inline.len() {
            inline[..headers.len()].copy_from_slice(headers);
            inline[headers.len()] = (b"content-length", length);
            &inline[..=headers.len()]
        } else {
            heap = headers.iter().copied().chain([(&b"content-length"[..], length)]).collect::<Vec<_>>();
            &heap
        };
        let start = out.len();
        frame_head(out, 0, kind::HEADERS, 0, stream);
        hpack::encode_response(status, fields, out);
        let len = out.len() - start - 9;
        let end_stream = if body == 0 { END_STREAM } else { 0 };
        let max = self.peer_max_frame as usize;
        if len <= max {
            out[start..start + 3].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
            out[start + 4] = END_HEADERS | end_stream;
            return;
        }
        // Rare: a block over 16 kB. Cut into CONTINUATIONs.
        let block = out.split_off(start + 9);
        out.truncate(start);
        for (k, piece) in block.chunks(max).enumerate() {
            let last = (k + 1) * max >= block.len();
            let (kind, flags) = if k == 0 { (kind::HEADERS, end_stream) } else { (kind::CONTINUATION, 0) };
            frame_head(out, piece.len(), kind, flags | if last { END_HEADERS } else { 0 }, stream);
            out.extend_from_slice(piece);
        }
    }

    /// DATA frames of `body` on stream `i` as far as the windows allow, END_STREAM on the last
    /// octet; returns the octets sent.
    fn write_data(&mut self, i: usize, body: &[u8], out: &mut Vec<u8>) -> usize {
        let stream = &mut self.streams[i];
        let allowed = self.send_window.min(stream.send_window).max(0) as usize;
        let n = body.len().min(allowed);
        let mut sent = 0;
        while sent < n {
            let piece = (n - sent).min(self.peer_max_frame as usize);
            let end = if sent + piece == body.len() { END_STREAM } else { 0 };
            frame_head(out, piece, kind::DATA, end, stream.id);
            out.extend_from_slice(&body[sent..sent + piece]);
            sent += piece;
        }
        self.send_window -= n as i64;
        stream.send_window -= n as i64;
        n
    }

    /// Streams open or half-closed, the ones being answered included.
    pub fn streams_open(&self) -> usize {
        self.streams.len()
    }

    /// Heap octets this connection holds beyond its struct (roughly: the HPACK table as HPACK
    /// counts it, 32 octets per entry over its strings): 0 for an idle connection once our
    /// SETTINGS is acknowledged with a `header_table_size` of 0.
    pub fn heap_bytes(&self) -> usize {
        let streams: usize = self.streams.iter().map(|s| s.buf.capacity()).sum();
        self.streams.capacity() * std::mem::size_of::<Stream>()
            + streams
            + self.partial.capacity()
            + self.block.capacity()
            + self.decoder.table_size()
    }

    /// Graceful shutdown: GOAWAY(NO_ERROR, the last stream id seen) appended; streams the client
    /// opens after it are ignored, those in flight answered. `is_done` once none is left.
    pub fn goaway(&mut self, out: &mut Vec<u8>) {
        if self.goaway_sent || self.failed.is_some() {
            return;
        }
        self.goaway_sent = true;
        goaway(out, self.last_stream, code::NO_ERROR, b"");
    }

    /// Nothing more to do on this connection: it failed, or one side said GOAWAY and no stream
    /// is left. The caller flushes its output and closes.
    pub fn is_done(&self) -> bool {
        self.failed.is_some() || ((self.goaway_sent || self.peer_goaway) && self.streams.is_empty())
    }

    /// A connection error: GOAWAY, and this connection takes no more input.
    fn fail(&mut self, error: ConnError, out: &mut Vec<u8>) {
        goaway(out, self.last_stream, error.code, error.reason.as_bytes());
        self.failed = Some(error);
        self.streams = Vec::new();
        self.partial = Vec::new();
        self.block = Vec::new();
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    fn remove(&mut self, i: usize) {
        let stream = self.streams.swap_remove(i);
        self.recv_unacked += stream.held;
        if self.streams.is_empty() {
            // No stream, no table: an idle connection holds none.
            self.streams = Vec::new();
            self.next_pending = 0;
        }
    }

    /// A frame on a stream the client never opened (idle, RFC 9113 §5.1) is a connection error.
    fn check_known(&self, id: u32) -> Result<(), ConnError> {
        if id > self.last_stream {
            return Err(ConnError::new(code::PROTOCOL_ERROR, "a frame on an idle stream"));
        }
        Ok(())
    }

    /// Our stream receive window in force: ours once acknowledged, the default before.
    fn recv_initial(&self) -> u32 {
        if self.settings_acked {
            self.settings.initial_window
        } else {
            DEFAULT_WINDOW
        }
    }
}

/// The fields of a request that matter, and whether it is well-formed (RFC 9113 §8.2, §8.3).
#[derive(Default)]
struct Fields {
    method: Span,
    path: Span,
    content_type: Option<Span>,
    content_length: Option<u32>,
    /// The pseudo-headers seen (bits: :method, :scheme, :path, :authority).
    pseudo: u8,
    regular: bool,
    malformed: Option<&'static str>,
}

/// A range of `Scratch::fields`.
#[derive(Default, Clone, Copy)]
struct Span(u32, u32);

impl Span {
    fn of(self, buf: &[u8]) -> &[u8] {
        &buf[self.0 as usize..self.1 as usize]
    }
}

impl Fields {
    fn field(&mut self, name: &[u8], value: &[u8], buf: &mut Vec<u8>) {
        if self.malformed.is_some() {
            return;
        }
        let keep = |buf: &mut Vec<u8>| {
            let start = buf.len() as u32;
            buf.extend_from_slice(value);
            Span(start, buf.len() as u32)
        };
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            self.malformed = Some("a field value with NUL, CR or LF");
        } else if name.first() == Some(&b':') {
            let bit = match name {
                b":method" => 1,
                b":scheme" => 2,
                b":path" => 4,
                b":authority" => 8,
                _ => return self.malformed = Some("an unknown pseudo-header"),
            };
            if self.regular {
                self.malformed = Some("a pseudo-header after a regular field");
            } else if self.pseudo & bit != 0 {
                self.malformed = Some("a pseudo-header twice");
            } else if bit == 4 && value.is_empty() {
                self.malformed = Some("an empty :path");
            }
            self.pseudo |= bit;
            match bit {
                1 => self.method = keep(buf),
                4 => self.path = keep(buf),
                _ => {}
            }
        } else {
            self.regular = true;
            match name {
                _ if name.is_empty() || name.iter().any(|&b| b <= b' ' || b >= 0x7f || b.is_ascii_uppercase()) => {
                    self.malformed = Some("a field name with an uppercase or forbidden octet");
                }
                b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding" | b"upgrade" => {
                    self.malformed = Some("a connection-specific field");
                }
                b"te" if value != b"trailers" => self.malformed = Some("te other than trailers"),
                b"content-type" if self.content_type.is_none() => self.content_type = Some(keep(buf)),
                b"content-length" => {
                    let n = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u32>().ok());
                    match n {
                        Some(n) if self.content_length.is_none_or(|m| m == n) => self.content_length = Some(n),
                        _ => self.malformed = Some("a bad content-length"),
                    }
                }
                _ => {}
            }
        }
    }

    fn malformed(&self) -> Option<&'static str> {
        self.malformed.or((self.pseudo & 7 != 7).then_some("missing :method, :scheme or :path"))
    }
}

/// A spent flood budget: ENHANCE_YOUR_CALM.
fn flood_error(flood: Flood) -> ConnError {
    let reason = match flood {
        Flood::Ping => "PING flood",
        Flood::Settings => "SETTINGS flood",
        Flood::Reset => "RST_STREAM flood",
        Flood::Headers => "header block or list too large",
        Flood::Other => "flood of empty, window or priority frames",
    };
    ConnError { code: code::ENHANCE_YOUR_CALM, reason, flood: Some(flood) }
}

/// A padded frame's content (RFC 9113 §6.1): padding longer than the frame is a connection
/// error.
fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], ConnError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(ConnError::new(code::FRAME_SIZE_ERROR, "a padded frame without its pad length"));
    };
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|end| &rest[..end])
        .ok_or(ConnError::new(code::PROTOCOL_ERROR, "padding longer than the frame"))
}

fn frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

fn rst_stream(out: &mut Vec<u8>, stream: u32, error: u32) {
    frame_head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&error.to_be_bytes());
}

fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    frame_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

fn goaway(out: &mut Vec<u8>, last_stream: u32, error: u32, debug: &[u8]) {
    frame_head(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&last_stream.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(debug);
}

/// `n` in decimal, in `digits`.
pub(in crate::frontend::doh) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}
