//! A raw HTTP/2 client over TLS (ALPN "h2") for the DoH tests: the test writes the frames
//! itself (any type, flags, stream and payload, in any order), so it can do what a well-behaved
//! client library never would (floods of pings, resets or settings, half-sent requests), and reads
//! the server's frames one by one, each with a timeout.
//!
//! Owns [`H2Client`] (connect: TLS, the client preface, SETTINGS, and the ACK of the server's
//! SETTINGS; `send_frame`; request helpers for GET and POST; `read_frame`; `response` to collect
//! whole answers), and a small HPACK codec: requests are encoded as literal header fields without
//! indexing and without Huffman coding (RFC 7541 §6.2.2); responses are decoded fully (static and
//! dynamic table, Huffman strings), so every header block of the connection must go through
//! [`H2Client::read_frame`] (it decodes each one as it passes, in order, which keeps the dynamic
//! table in step with the server's).
//!
//! Flow control: by default the client announces a 16 MiB stream window and opens the
//! connection's window by as much, and [`H2Client::response`] gives back what each DATA frame
//! used, so answers never wait for window updates. [`H2Options::settings`] replaces the
//! initial SETTINGS for tests that want other values.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::client::ClientOptions;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The frame size every HTTP/2 endpoint accepts (SETTINGS_MAX_FRAME_SIZE's initial value).
pub const DEFAULT_MAX_FRAME: usize = 16_384;

/// The window the client announces per stream and opens on the connection by default.
pub const WIDE_WINDOW: u32 = 16 << 20;

/// One frame as read off the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
    /// For a HEADERS or CONTINUATION frame that ends a header block (END_HEADERS): the block's
    /// header fields, decoded (names lowercase, as HTTP/2 sends them).
    pub headers: Option<Vec<(String, String)>>,
}

impl Frame {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The `:status` of a decoded header block.
    pub fn status(&self) -> Option<u16> {
        self.headers.as_ref()?.iter().find(|(n, _)| n == ":status")?.1.parse().ok()
    }

    /// GOAWAY's last stream id and error code.
    pub fn goaway(&self) -> Option<(u32, u32)> {
        (self.kind == GOAWAY && self.payload.len() >= 8)
            .then(|| (u32_at(&self.payload, 0) & 0x7fff_ffff, u32_at(&self.payload, 4)))
    }

    /// RST_STREAM's error code.
    pub fn rst_code(&self) -> Option<u32> {
        (self.kind == RST_STREAM && self.payload.len() == 4).then(|| u32_at(&self.payload, 0))
    }

    /// A SETTINGS frame's parameters.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        if self.kind != SETTINGS {
            return Vec::new();
        }
        self.payload.chunks_exact(6).map(|c| (u16::from_be_bytes([c[0], c[1]]), u32_at(c, 2))).collect()
    }
}

fn u32_at(b: &[u8], p: usize) -> u32 {
    u32::from_be_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]])
}

/// What [`H2Client::read_frame`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Frame(Frame),
    /// The server closed the connection (TLS close, EOF or reset), between frames or in one.
    Closed,
    /// Nothing whole arrived in time (what did arrive is kept for the next read).
    Timeout,
}

/// A whole response on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub stream: u32,
    pub status: u16,
    /// The response's header fields (not the trailers), `:status` included.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How [`H2Client::connect_with`] connects.
#[derive(Clone)]
pub struct H2Options {
    /// The client's initial SETTINGS (default: push off, a [`WIDE_WINDOW`] stream window).
    pub settings: Vec<(u16, u32)>,
    /// Open the connection's window by this much at once (0: leave it at 65,535).
    pub connection_window: u32,
    /// Connect from this local address (e.g. 127.0.0.2), as [`super::DotClient::connect_from`].
    pub from: Option<IpAddr>,
    /// TLS: versions, resumption and server name as for DoT; the ALPN is replaced by `alpn`.
    pub tls: ClientOptions,
    /// The ALPN offered (default `["h2"]`).
    pub alpn: Vec<Vec<u8>>,
    /// `:authority` of the request helpers.
    pub authority: String,
}

impl Default for H2Options {
    fn default() -> Self {
        H2Options {
            settings: vec![(SETTINGS_ENABLE_PUSH, 0), (SETTINGS_INITIAL_WINDOW_SIZE, WIDE_WINDOW)],
            connection_window: WIDE_WINDOW,
            from: None,
            tls: ClientOptions { server_name: "localhost".into(), ..ClientOptions::default() },
            alpn: vec![b"h2".to_vec()],
            authority: "localhost".into(),
        }
    }
}

/// A raw HTTP/2 connection (see the module docs).
pub struct H2Client {
    tls: TlsStream<TcpStream>,
    rbuf: Vec<u8>,
    chunk: Vec<u8>,
    /// Frames read while connecting that were not the server's SETTINGS (handed out first).
    queued: VecDeque<Frame>,
    decoder: Decoder,
    /// A header block in progress (HEADERS without END_HEADERS, then CONTINUATIONs).
    partial_block: Vec<u8>,
    next_stream: u32,
    authority: String,
    /// The parameters of the server's first SETTINGS frame.
    pub server_settings: Vec<(u16, u32)>,
    /// GOAWAYs seen by [`H2Client::response`] (last stream id, error code), in order.
    pub goaways: Vec<(u32, u32)>,
    /// Octets of DATA read by [`H2Client::responses`] not yet given back to the connection's
    /// window.
    unreturned: u32,
    /// What the server's connection window lets [`H2Client::data`] send (65,535 at first, RFC 9113
    /// §6.9.2, plus the server's WINDOW_UPDATEs on stream 0, less the DATA sent by `data`).
    send_window: i64,
}

/// [`H2Client::responses`] gives the connection's window back once this much DATA has been read
/// (a quarter of the default window: a server held to the default never waits long, and the
/// client sends few WINDOW_UPDATEs, which flood budgets count).
pub const WINDOW_RETURN: u32 = 16_384;

/// Connect + handshake + the server's SETTINGS must come within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl H2Client {
    /// [`H2Client::connect_with`] with the default options.
    pub async fn connect(addr: SocketAddr) -> io::Result<H2Client> {
        Self::connect_with(addr, &H2Options::default()).await
    }

    /// TCP, TLS with ALPN "h2" (fails unless the server chose it), the client preface and
    /// `opts.settings`, a WINDOW_UPDATE for the connection, then frames are read until the
    /// server's SETTINGS, which is acknowledged (anything else read meanwhile is kept for
    /// [`H2Client::read_frame`]). The server's ACK of the client's SETTINGS comes later, through
    /// `read_frame` (and is skipped by [`H2Client::response`]).
    pub async fn connect_with(addr: SocketAddr, opts: &H2Options) -> io::Result<H2Client> {
        let mut tls_opts = opts.tls.clone();
        tls_opts.alpn = opts.alpn.clone();
        let connector = TlsConnector::from(Arc::new(tls_opts.client_config()?));
        let name = ServerName::try_from(tls_opts.server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = match opts.from {
                None => TcpStream::connect(addr).await?,
                Some(ip) => super::client::tcp_connect_from(addr, ip).await?,
            };
            tcp.set_nodelay(true)?;
            connector.connect(name, tcp).await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP/2 connect/handshake timed out"))??;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if alpn.as_deref() != Some(b"h2") {
            return Err(io::Error::other(format!("ALPN chose {alpn:?}, not h2")));
        }
        let mut client = H2Client {
            tls,
            rbuf: Vec::new(),
            chunk: vec![0; 64 * 1024],
            queued: VecDeque::new(),
            decoder: Decoder::new(),
            partial_block: Vec::new(),
            next_stream: 1,
            authority: opts.authority.clone(),
            server_settings: Vec::new(),
            goaways: Vec::new(),
            unreturned: 0,
            send_window: 65_535,
        };
        let mut start = PREFACE.to_vec();
        start.extend(frame_bytes(SETTINGS, 0, 0, &settings_payload(&opts.settings)));
        if opts.connection_window > 0 {
            start.extend(frame_bytes(WINDOW_UPDATE, 0, 0, &opts.connection_window.to_be_bytes()));
        }
        client.write(&start).await?;
        loop {
            match client.read_frame(CONNECT_TIMEOUT).await {
                Read::Frame(f) if f.kind == SETTINGS && !f.has(ACK) => {
                    client.server_settings = f.settings();
                    client.send_frame(SETTINGS, ACK, 0, &[]).await?;
                    break;
                }
                Read::Frame(f) => client.queued.push_back(f),
                Read::Closed => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before SETTINGS")),
                Read::Timeout => return Err(io::Error::new(io::ErrorKind::TimedOut, "no SETTINGS from the server")),
            }
        }
        Ok(client)
    }

    /// The server's value for `id` in its first SETTINGS, if it sent one.
    pub fn server_setting(&self, id: u16) -> Option<u32> {
        self.server_settings.iter().rev().find(|(i, _)| *i == id).map(|(_, v)| *v)
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await
    }

    /// Writes these bytes as they are (several frames in one write, or a broken one), flushed.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes).await
    }

    /// One frame: the 9-octet header (`payload.len()` as its length) and the payload, flushed.
    pub async fn send_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> io::Result<()> {
        self.write(&frame_bytes(kind, flags, stream, payload)).await
    }

    /// The next odd stream id (1, 3, 5, ...), taken.
    pub fn next_stream_id(&mut self) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        id
    }

    /// HEADERS with END_HEADERS (and END_STREAM if `end_stream`) carrying `fields`, encoded by
    /// [`header_block`], on `stream`.
    pub async fn headers<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        stream: u32,
        fields: &[(N, V)],
        end_stream: bool,
    ) -> io::Result<()> {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.send_frame(HEADERS, flags, stream, &header_block(fields)).await
    }

    /// DATA on `stream`, cut into frames of at most 16,384 octets, END_STREAM on the last if
    /// `end_stream` (an empty `data` with `end_stream` is one empty frame), in one write when the
    /// connection's send window allows. Where it does not, what fits is written and the server's
    /// WINDOW_UPDATEs are awaited (up to [`CONNECT_TIMEOUT`]; frames read meanwhile are kept for
    /// [`H2Client::read_frame`]). The stream's own window is not watched (dotgate's is 1 MiB);
    /// [`H2Client::send_frame`] ignores both, for tests that mean to break flow control.
    pub async fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(data.len() + 9 * (data.len() / DEFAULT_MAX_FRAME + 1));
        let pieces: Vec<&[u8]> = if data.is_empty() { vec![data] } else { data.chunks(DEFAULT_MAX_FRAME).collect() };
        let last = pieces.len() - 1;
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        for (i, piece) in pieces.into_iter().enumerate() {
            if self.send_window < piece.len() as i64 {
                self.write(&std::mem::take(&mut out)).await?;
                while self.send_window < piece.len() as i64 {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match self.read_new_frame(left).await {
                        Read::Frame(frame) => self.queued.push_back(frame),
                        Read::Closed => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                        Read::Timeout => {
                            return Err(io::Error::new(io::ErrorKind::TimedOut, "the server never opened its window"))
                        }
                    }
                }
            }
            self.send_window -= piece.len() as i64;
            out.extend(frame_bytes(DATA, if end_stream && i == last { END_STREAM } else { 0 }, stream, piece));
        }
        self.write(&out).await
    }

    /// The request pseudo-headers for `method` and `path` (scheme https, the options'
    /// authority), for [`H2Client::headers`] or [`header_block`] (add more fields to them).
    pub fn request_fields(&self, method: &str, path: &str) -> Vec<(String, String)> {
        [(":method", method), (":scheme", "https"), (":path", path), (":authority", &self.authority)]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .to_vec()
    }

    /// A GET of `path` on a new stream (one HEADERS frame, END_STREAM); its stream id.
    pub async fn get(&mut self, path: &str) -> io::Result<u32> {
        let stream = self.next_stream_id();
        let block = header_block(&self.request_fields("GET", path));
        self.send_frame(HEADERS, END_HEADERS | END_STREAM, stream, &block).await?;
        Ok(stream)
    }

    /// A POST of `body` to `path` with `content_type` on a new stream (HEADERS, then DATA ending
    /// the stream); its stream id.
    pub async fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> io::Result<u32> {
        let stream = self.next_stream_id();
        let mut fields = self.request_fields("POST", path);
        fields.push(("content-type".into(), content_type.into()));
        fields.push(("content-length".into(), body.len().to_string()));
        let block = header_block(&fields);
        self.send_frame(HEADERS, END_HEADERS, stream, &block).await?;
        self.data(stream, body, true).await?;
        Ok(stream)
    }

    /// RFC 8484 GET of the DNS message `query` at `path` (`?dns=`, base64url without padding).
    pub async fn get_dns(&mut self, path: &str, query: &[u8]) -> io::Result<u32> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(query);
        self.get(&format!("{path}?dns={b64}")).await
    }

    /// RFC 8484 POST of the DNS message `query` to `path` (`application/dns-message`).
    pub async fn post_dns(&mut self, path: &str, query: &[u8]) -> io::Result<u32> {
        self.post(path, "application/dns-message", query).await
    }

    /// PING with these 8 octets (an ACK if `ack`).
    pub async fn ping(&mut self, data: [u8; 8], ack: bool) -> io::Result<()> {
        self.send_frame(PING, if ack { ACK } else { 0 }, 0, &data).await
    }

    /// RST_STREAM on `stream` with `code`.
    pub async fn rst_stream(&mut self, stream: u32, code: u32) -> io::Result<()> {
        self.send_frame(RST_STREAM, 0, stream, &code.to_be_bytes()).await
    }

    /// SETTINGS with `params` (not an ACK).
    pub async fn settings(&mut self, params: &[(u16, u32)]) -> io::Result<()> {
        self.send_frame(SETTINGS, 0, 0, &settings_payload(params)).await
    }

    /// WINDOW_UPDATE of `increment` on `stream` (0: the connection).
    pub async fn window_update(&mut self, stream: u32, increment: u32) -> io::Result<()> {
        self.send_frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes()).await
    }

    /// GOAWAY with `last_stream` and `code`.
    pub async fn goaway(&mut self, last_stream: u32, code: u32) -> io::Result<()> {
        let mut payload = last_stream.to_be_bytes().to_vec();
        payload.extend(code.to_be_bytes());
        self.send_frame(GOAWAY, 0, 0, &payload).await
    }

    /// The next frame, within `timeout`. A header block's end (HEADERS or CONTINUATION with
    /// END_HEADERS) comes with its fields decoded in `Frame::headers` (panics if the server's
    /// HPACK does not decode). Cancel-safe.
    pub async fn read_frame(&mut self, timeout: Duration) -> Read {
        if let Some(frame) = self.queued.pop_front() {
            return Read::Frame(frame);
        }
        self.read_new_frame(timeout).await
    }

    /// The next frame off the connection (not one kept earlier).
    async fn read_new_frame(&mut self, timeout: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(frame) = self.take_frame() {
                return Read::Frame(frame);
            }
            match tokio::time::timeout_at(deadline, self.tls.read(&mut self.chunk)).await {
                Err(_) => return Read::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(n)) => self.rbuf.extend_from_slice(&self.chunk[..n]),
            }
        }
    }

    /// A whole frame from the read buffer, its header block decoded.
    fn take_frame(&mut self) -> Option<Frame> {
        if self.rbuf.len() < 9 {
            return None;
        }
        let len = (usize::from(self.rbuf[0]) << 16) | (usize::from(self.rbuf[1]) << 8) | usize::from(self.rbuf[2]);
        if self.rbuf.len() < 9 + len {
            return None;
        }
        let (kind, flags, stream) = (self.rbuf[3], self.rbuf[4], u32_at(&self.rbuf, 5) & 0x7fff_ffff);
        let payload = self.rbuf[9..9 + len].to_vec();
        self.rbuf.drain(..9 + len);
        let mut frame = Frame { kind, flags, stream, payload, headers: None };
        if kind == WINDOW_UPDATE && stream == 0 && frame.payload.len() == 4 {
            self.send_window += i64::from(u32_at(&frame.payload, 0) & 0x7fff_ffff);
        }
        if kind == HEADERS || kind == CONTINUATION {
            let fragment = if kind == HEADERS { headers_fragment(&frame) } else { &frame.payload[..] };
            self.partial_block.extend_from_slice(fragment);
            if frame.has(END_HEADERS) {
                let block = std::mem::take(&mut self.partial_block);
                let fields = self
                    .decoder
                    .decode(&block)
                    .unwrap_or_else(|e| panic!("h2raw: the server's header block {block:02x?}: {e}"));
                frame.headers = Some(fields);
            }
        }
        Some(frame)
    }

    /// The whole response on `stream` within `timeout` ([`H2Client::responses`] for one).
    pub async fn response(&mut self, stream: u32, timeout: Duration) -> io::Result<Response> {
        let mut all = self.responses(&[stream], timeout).await?;
        Ok(all.remove(0))
    }

    /// The whole responses on `streams` (header block, then DATA to END_STREAM, trailers
    /// skipped), within `timeout` for all, in the order they completed. On the way: the
    /// server's SETTINGS are acknowledged, its PINGs answered, what DATA used of the
    /// connection's window given back (by [`WINDOW_RETURN`] or more at a time), GOAWAYs kept in
    /// `goaways`; frames of other streams are dropped. `Err` if one of `streams` is reset (the code in the message), the connection
    /// closes, or time runs out.
    pub async fn responses(&mut self, streams: &[u32], timeout: Duration) -> io::Result<Vec<Response>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut open: HashMap<u32, Response> = HashMap::new();
        let mut done: Vec<Response> = Vec::new();
        while done.len() < streams.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = match self.read_frame(left).await {
                Read::Frame(f) => f,
                Read::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection closed with {} of {} responses", done.len(), streams.len()),
                    ))
                }
                Read::Timeout => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} of {} responses in {timeout:?}", done.len(), streams.len()),
                    ))
                }
            };
            match frame.kind {
                SETTINGS if !frame.has(ACK) => self.send_frame(SETTINGS, ACK, 0, &[]).await?,
                PING if !frame.has(ACK) => self.send_frame(PING, ACK, 0, &frame.payload).await?,
                GOAWAY => self.goaways.extend(frame.goaway()),
                DATA => {
                    self.unreturned += frame.payload.len() as u32;
                    if self.unreturned >= WINDOW_RETURN {
                        let increment = std::mem::take(&mut self.unreturned);
                        self.window_update(0, increment).await?;
                    }
                }
                _ => {}
            }
            if !streams.contains(&frame.stream) {
                continue;
            }
            let stream = frame.stream;
            if let Some(code) = frame.rst_code() {
                return Err(io::Error::other(format!("stream {stream} reset with code {code:#x}")));
            }
            let response = open.entry(stream).or_insert_with(|| Response {
                stream,
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            });
            match frame.kind {
                HEADERS | CONTINUATION => {
                    if let (Some(fields), true) = (&frame.headers, response.headers.is_empty()) {
                        response.headers = fields.clone();
                        response.status = frame.status().unwrap_or(0);
                    }
                }
                DATA => response.body.extend_from_slice(data_content(&frame)),
                _ => {}
            }
            if (frame.kind == HEADERS || frame.kind == DATA) && frame.has(END_STREAM) {
                done.push(open.remove(&stream).expect("an open response"));
            }
        }
        Ok(done)
    }

    /// Reads until the server closes the connection, within `timeout`: the last GOAWAY's (last
    /// stream, error code), if one came; `None` if it did not close. (dotgate never sends a PING
    /// of its own, so there is nothing to answer on the way.)
    pub async fn goaway_then_close(&mut self, timeout: Duration) -> Option<Option<(u32, u32)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut goaway = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                Read::Frame(f) => goaway = f.goaway().or(goaway),
                Read::Closed => return Some(goaway),
                Read::Timeout => return None,
            }
        }
    }

    /// True if the server closes the connection within `timeout` (frames read meanwhile are
    /// dropped).
    pub async fn is_closed_within(&mut self, timeout: Duration) -> bool {
        self.goaway_then_close(timeout).await.is_some()
    }

    /// The TLS stream under the client.
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        &self.tls
    }
}

/// A frame's bytes: the 9-octet header and the payload.
pub fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    assert!(len < 1 << 24, "an HTTP/2 frame holds at most 2^24-1 octets");
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend([kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS payload.
pub fn settings_payload(params: &[(u16, u32)]) -> Vec<u8> {
    params.iter().flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes())).collect()
}

/// The header block fragment of a HEADERS frame (padding and priority taken off).
fn headers_fragment(frame: &Frame) -> &[u8] {
    let p = &frame.payload;
    let pad = if frame.has(PADDED) { usize::from(*p.first().unwrap_or(&0)) } else { 0 };
    let start = usize::from(frame.has(PADDED)) + if frame.has(PRIORITY_FLAG) { 5 } else { 0 };
    p.get(start..p.len().saturating_sub(pad)).unwrap_or(&[])
}

/// A DATA frame's data (padding taken off).
fn data_content(frame: &Frame) -> &[u8] {
    let p = &frame.payload;
    if !frame.has(PADDED) {
        return p;
    }
    let pad = usize::from(*p.first().unwrap_or(&0));
    p.get(1..p.len().saturating_sub(pad)).unwrap_or(&[])
}

// ---------------------------------------------------------------------------
// HPACK (RFC 7541)

/// A header block of `fields`, each a literal header field without indexing with a literal name
/// (RFC 7541 §6.2.2, first form) and no Huffman coding: `0x00`, the name's length and octets,
/// the value's length and octets.
pub fn header_block<N: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &[(N, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_string(name.as_ref(), &mut out);
        hpack_string(value.as_ref(), &mut out);
    }
    out
}

/// An HPACK string literal without Huffman coding.
pub fn hpack_string(s: &[u8], out: &mut Vec<u8>) {
    hpack_int(s.len(), 7, 0x00, out);
    out.extend_from_slice(s);
}

/// An HPACK integer with an `prefix`-bit prefix, `first` holding the bits above the prefix
/// (RFC 7541 §5.1).
pub fn hpack_int(mut value: usize, prefix: u8, first: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The decoder's state: the dynamic table, newest entry first.
pub struct Decoder {
    dynamic: VecDeque<(String, String)>,
    size: usize,
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the initial 4,096-octet dynamic table (the client never announces another
    /// SETTINGS_HEADER_TABLE_SIZE unless a test does; a server then sends a size update).
    pub fn new() -> Decoder {
        Decoder { dynamic: VecDeque::new(), size: 0, max_size: 4096 }
    }

    fn entry(&self, index: usize) -> Result<(String, String), String> {
        match index {
            0 => Err("index 0".into()),
            1..=61 => {
                let (n, v) = STATIC_TABLE[index - 1];
                Ok((n.into(), v.into()))
            }
            _ => self.dynamic.get(index - 62).cloned().ok_or_else(|| format!("no dynamic entry {index}")),
        }
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let (n, v) = self.dynamic.pop_back().expect("a size over 0 has entries");
            self.size -= 32 + n.len() + v.len();
        }
    }

    fn insert(&mut self, name: &str, value: &str) {
        let size = 32 + name.len() + value.len();
        self.evict_to(self.max_size.saturating_sub(size));
        if size <= self.max_size {
            self.dynamic.push_front((name.into(), value.into()));
            self.size += size;
        }
    }

    /// The header fields of one whole header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut fields = Vec::new();
        let mut p = 0;
        while p < block.len() {
            let b = block[p];
            if b & 0x80 != 0 {
                let index = read_int(block, &mut p, 7)?;
                fields.push(self.entry(index)?);
            } else if b & 0xe0 == 0x20 {
                let size = read_int(block, &mut p, 5)?;
                self.max_size = size;
                self.evict_to(size);
            } else {
                // 0x40: incremental indexing (6-bit name index); 0x00 and 0x10: without and never
                // indexed (4-bit).
                let indexing = b & 0xc0 == 0x40;
                let index = read_int(block, &mut p, if indexing { 6 } else { 4 })?;
                let name = if index == 0 { read_string(block, &mut p)? } else { self.entry(index)?.0 };
                let value = read_string(block, &mut p)?;
                if indexing {
                    self.insert(&name, &value);
                }
                fields.push((name, value));
            }
        }
        Ok(fields)
    }
}

/// An HPACK integer at `*p` with a `prefix`-bit prefix; `*p` moves past it.
fn read_int(block: &[u8], p: &mut usize, prefix: u8) -> Result<usize, String> {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(block[*p]) & max;
    *p += 1;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let b = *block.get(*p).ok_or("an integer cut short")?;
        *p += 1;
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        if shift > 28 {
            return Err("an integer too large".into());
        }
    }
}

/// An HPACK string literal at `*p` (Huffman-coded or not); `*p` moves past it.
fn read_string(block: &[u8], p: &mut usize) -> Result<String, String> {
    let huffman = block.get(*p).ok_or("a string missing")? & 0x80 != 0;
    let len = read_int(block, p, 7)?;
    let raw = block.get(*p..*p + len).ok_or("a string cut short")?;
    *p += len;
    let octets = if huffman { huffman_decode(raw)? } else { raw.to_vec() };
    String::from_utf8(octets).map_err(|e| format!("a header that is not UTF-8: {e}"))
}

/// Decodes an HPACK Huffman string (RFC 7541 §5.2, Appendix B), bit by bit.
pub fn huffman_decode(bits: &[u8]) -> Result<Vec<u8>, String> {
    static CODES: OnceLock<HashMap<(u8, u32), u8>> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        (0..256).map(|sym| ((HUFFMAN_LENGTHS[sym], HUFFMAN_CODES[sym]), sym as u8)).collect::<HashMap<_, _>>()
    });
    let mut out = Vec::new();
    let (mut code, mut len) = (0u32, 0u8);
    for byte in bits {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if let Some(&sym) = codes.get(&(len, code)) {
                out.push(sym);
                (code, len) = (0, 0);
            } else if len >= 30 {
                return Err("a Huffman code of 30 bits or more (EOS, or not a code)".into());
            }
        }
    }
    // What is left must be padding: fewer than 8 bits, all ones (the EOS code's start).
    if len >= 8 || code != (1u32 << len) - 1 {
        return Err(format!("bad Huffman padding ({len} bits {code:#b})"));
    }
    Ok(out)
}

// The HPACK Huffman code (RFC 7541 Appendix B): each octet's code and its length in bits, as the
// h2 crate (MIT) generates them in src/hpack/huffman/table.rs.
const HUFFMAN_CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8, 0xffffea,
    0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0,
    0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9,
    0xffffffa, 0xffffffb, 0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16,
    0x17, 0x18, 0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
    0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
    0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4,
    0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
    0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3,
    0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
    0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8,
    0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8,
    0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0,
    0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8,
    0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2,
    0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8,
    0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7,
    0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb, 0xffffffe, 0x7ffffec,
    0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

const HUFFMAN_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28,
    28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12,
    10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6,
    5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22,
    22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20,
    22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28,
    27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28,
    27, 27, 27, 27, 27, 26,
];
