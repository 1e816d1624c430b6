//! DoH over HTTP/1.1 without IO: requests parsed out of plaintext as it arrives, responses
//! written in request order (RFC 9112 §9.3.2: pipelined requests are answered in the order they
//! came, whatever order their answers are ready in).
//!
//! Owns: one connection's HTTP/1.1 state: the sequence numbers of the requests handed out, the
//! responses ready early and held for their turn, and whether the connection ends after a
//! response. Never: touches a socket, reads more than one request head of 16 KiB or a body of
//! more than 65,535 octets (answered 431 and 413, then the connection closes), or holds memory
//! on an idle connection (the held responses and the chunked-body scratch are freed when empty).
//!
//! Hand-rolled around `httparse` (the parser hyper uses, zero-copy): hyper's HTTP/1.1
//! connection keeps its read and write buffers (about 8 KB and more) for the connection's
//! life; this keeps nothing between requests.

/// The longest request head (request line and header fields) read.
pub const MAX_HEAD: usize = 16 * 1024;
/// The largest body: a DNS message's limit.
pub const MAX_BODY: usize = 65_535;
/// Header fields read per request at most (more: 431).
const MAX_FIELDS: usize = 32;

/// One request, as the DoH layer needs it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// The request target: the path and its query.
    pub path: &'a [u8],
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// One HTTP/1.1 connection's state.
#[derive(Default, Debug)]
pub struct H1Conn {
    /// The next request's sequence number.
    next_seq: u32,
    /// The sequence number whose response goes out next.
    next_to_send: u32,
    /// Responses ready before their turn, with their sequence numbers.
    held: Vec<(u32, Vec<u8>)>,
    /// The connection ends after the response with this sequence number (`Connection: close`,
    /// HTTP/1.0, or an error answered).
    last: Option<u32>,
    /// The request whose `100 Continue` was sent.
    continued: Option<u32>,
    /// Drain: no more requests are taken.
    draining: bool,
    /// A chunked body, decoded (only while one is being read).
    chunked: Vec<u8>,
    /// The status a broken request was answered with (the connection closes after it).
    refused: Option<u16>,
}

/// What a request head said about its body and the connection.
struct Head<'a> {
    method: &'a [u8],
    path: &'a [u8],
    content_type: Option<&'a [u8]>,
    body: BodyFraming,
    close: bool,
    expect_continue: bool,
    len: usize,
}

enum BodyFraming {
    Length(usize),
    Chunked,
}

/// Why a request could not be taken: answered with this status, then the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u16);

impl H1Conn {
    /// Takes the whole requests at the front of `input`, at most `room` of them, handing each to
    /// `on_request` with its sequence number (the one `respond` takes). Returns the octets used:
    /// the caller keeps the rest (an incomplete request) for the next call. What the protocol
    /// answers itself (`100 Continue`, an error status) is appended to `out` or held for its
    /// turn. Takes nothing once the connection is closing.
    pub fn feed(
        &mut self,
        input: &[u8],
        room: usize,
        out: &mut Vec<u8>,
        mut on_request: impl FnMut(u32, Request<'_>),
    ) -> usize {
        let mut used = 0;
        let mut taken = 0;
        while self.last.is_none() && !self.draining && taken < room && used < input.len() {
            let rest = &input[used..];
            let head = match parse_head(rest) {
                Ok(Some(head)) => head,
                Ok(None) if rest.len() <= MAX_HEAD => break,
                Ok(None) => return used + self.refuse(Refused(431), out),
                Err(refused) => return used + self.refuse(refused, out),
            };
            let seq = self.next_seq;
            let (body, consumed) = match head.body {
                BodyFraming::Length(n) if n > MAX_BODY => return used + self.refuse(Refused(413), out),
                BodyFraming::Length(n) if rest.len() < head.len + n => {
                    self.continue_if_asked(&head, seq, out);
                    break;
                }
                BodyFraming::Length(n) => (&rest[head.len..head.len + n], head.len + n),
                BodyFraming::Chunked => match dechunk(&rest[head.len..], &mut self.chunked) {
                    Ok(Some(n)) => (&self.chunked[..], head.len + n),
                    Ok(None) => {
                        self.continue_if_asked(&head, seq, out);
                        break;
                    }
                    Err(refused) => return used + self.refuse(refused, out),
                },
            };
            self.next_seq += 1;
            if head.close {
                self.last = Some(seq);
            }
            on_request(seq, Request { method: head.method, path: head.path, content_type: head.content_type, body });
            used += consumed;
            taken += 1;
            if !self.chunked.is_empty() {
                self.chunked = Vec::new();
            }
        }
        used
    }

    fn continue_if_asked(&mut self, head: &Head<'_>, seq: u32, out: &mut Vec<u8>) {
        // RFC 9110 §10.1.1: a client that asked waits for this before sending its body; sent
        // once, and only while no earlier response is outstanding (it would come out of turn).
        if head.expect_continue && self.continued != Some(seq) && self.next_to_send == seq {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.continued = Some(seq);
        }
    }

    /// Answers `refused` as the next request and closes after it; all of the input is used
    /// (nothing after a broken request can be read).
    fn refuse(&mut self, refused: Refused, out: &mut Vec<u8>) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.last = Some(seq);
        self.refused = Some(refused.0);
        self.respond(seq, refused.0, &[], b"", out);
        0
    }

    /// The status a broken request was answered with, if one was: the connection ends after it.
    pub fn refused(&self) -> Option<u16> {
        self.refused
    }

    /// The response to request `seq`: appended to `out` when its turn has come (and then any
    /// held ones that follow), else held.
    pub fn respond(&mut self, seq: u32, status: u16, fields: &[(&[u8], &[u8])], body: &[u8], out: &mut Vec<u8>) {
        let close = self.last == Some(seq);
        if seq != self.next_to_send {
            let mut held = Vec::with_capacity(128 + body.len());
            write_response(status, fields, body, close, &mut held);
            self.held.push((seq, held));
            return;
        }
        write_response(status, fields, body, close, out);
        self.next_to_send += 1;
        while let Some(i) = self.held.iter().position(|(s, _)| *s == self.next_to_send) {
            let (_, held) = self.held.swap_remove(i);
            out.extend_from_slice(&held);
            self.next_to_send += 1;
        }
        if self.held.is_empty() {
            self.held = Vec::new();
        }
    }

    /// Requests handed out and not yet answered on the wire.
    pub fn requests_open(&self) -> usize {
        (self.next_seq - self.next_to_send) as usize
    }

    /// The connection is to close: its last response is out.
    pub fn is_done(&self) -> bool {
        match self.last {
            Some(last) => self.next_to_send > last,
            None => self.draining && self.requests_open() == 0,
        }
    }

    /// Drain: no more requests are taken; the connection is done once those taken are answered.
    pub fn goaway(&mut self) {
        self.draining = true;
    }
}

/// The head at the front of `bytes`: `Ok(None)` while incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head<'_>>, Refused> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refused(431)),
        Err(_) => return Err(Refused(400)),
    };
    if len > MAX_HEAD {
        return Err(Refused(431));
    }
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version) else {
        return Err(Refused(400));
    };
    let mut head = Head {
        method: method.as_bytes(),
        path: path.as_bytes(),
        content_type: None,
        body: BodyFraming::Length(0),
        close: version == 0,
        expect_continue: false,
        len,
    };
    let mut length: Option<usize> = None;
    for field in request.headers.iter() {
        let name = field.name;
        let value = trim(field.value);
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value).ok().and_then(|v| v.parse::<usize>().ok()).ok_or(Refused(400))?;
            // Two different lengths: request smuggling territory (RFC 9112 §6.3).
            if length.is_some_and(|l| l != n) {
                return Err(Refused(400));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Refused(501));
            }
            head.body = BodyFraming::Chunked;
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    head.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case(b"100-continue") {
            head.expect_continue = true;
        }
    }
    match (&head.body, length) {
        // Both: RFC 9112 §6.3 says the chunked framing wins, but a proxy may have read the
        // length: refused rather than guessed.
        (BodyFraming::Chunked, Some(_)) => return Err(Refused(400)),
        (BodyFraming::Length(_), Some(n)) => head.body = BodyFraming::Length(n),
        _ => {}
    }
    Ok(Some(head))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Decodes the chunked body at the front of `bytes` into `body`: `Ok(Some(used))` when the last
/// chunk and the trailers' end were read, `Ok(None)` while incomplete.
fn dechunk(bytes: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>, Refused> {
    body.clear();
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&bytes[at..]) else {
            return if bytes.len() - at > 1024 { Err(Refused(400)) } else { Ok(None) };
        };
        let line = &bytes[at..at + line_end];
        // The size, then optional extensions after ';'.
        let digits = trim(line.split(|&b| b == b';').next().unwrap_or(b""));
        let size = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 8)
            .and_then(|d| usize::from_str_radix(d, 16).ok())
            .ok_or(Refused(400))?;
        at += line_end + 2;
        if size == 0 {
            // Trailer fields until an empty line; ignored.
            loop {
                let Some(end) = find_crlf(&bytes[at..]) else {
                    return if bytes.len() - at > MAX_HEAD { Err(Refused(431)) } else { Ok(None) };
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(Refused(413));
        }
        if bytes.len() < at + size + 2 {
            return Ok(None);
        }
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return Err(Refused(400));
        }
        body.extend_from_slice(&bytes[at..at + size]);
        at += size + 2;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "",
    }
}

/// One response: status line, `fields`, `content-length`, `connection: close` when `close`.
fn write_response(status: u16, fields: &[(&[u8], &[u8])], body: &[u8], close: bool, out: &mut Vec<u8>) {
    // Straight into `out` (once per answer: no String, no formatting machinery).
    let mut digits = [0u8; 20];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(super::h2::decimal(u64::from(status), &mut digits));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(super::h2::decimal(body.len() as u64, &mut digits));
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as taken: sequence number, method, path, content type, body.
    type Taken = (u32, String, String, Option<String>, Vec<u8>);

    /// Feeds `input` whole, answering nothing; the octets used and the requests taken.
    fn take(conn: &mut H1Conn, input: &[u8], out: &mut Vec<u8>) -> (usize, Vec<Taken>) {
        let mut seen = Vec::new();
        let used = conn.feed(input, usize::MAX, out, |seq, r| {
            seen.push((
                seq,
                String::from_utf8_lossy(r.method).into_owned(),
                String::from_utf8_lossy(r.path).into_owned(),
                r.content_type.map(|c| String::from_utf8_lossy(c).into_owned()),
                r.body.to_vec(),
            ))
        });
        (used, seen)
    }

    const GET: &[u8] = b"GET /dns-query?dns=AAAB HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn pipelined_requests_are_answered_in_order_whatever_order_they_complete_in() {
        let mut conn = H1Conn::default();
        let mut out = Vec::new();
        let mut input = GET.to_vec();
        input.extend_from_slice(
            b"POST /dns-query HTTP/1.1\r\nContent-Type: application/dns-message\r\nContent-Length: 3\r\n\r\nabc",
        );
        input.extend_from_slice(GET);
        let (used, seen) = take(&mut conn, &input, &mut out);
        assert_eq!(used, input.len());
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[1],
            (1, "POST".into(), "/dns-query".into(), Some("application/dns-message".into()), b"abc".to_vec())
        );
        assert_eq!(conn.requests_open(), 3);
        conn.respond(2, 200, &[], b"third", &mut out);
        conn.respond(1, 200, &[], b"second", &mut out);
        assert!(out.is_empty(), "nothing before the first");
        conn.respond(0, 200, &[(b"content-type", b"application/dns-message")], b"first", &mut out);
        let text = String::from_utf8(out).unwrap();
        let first = text.find("first").unwrap();
        assert!(first < text.find("second").unwrap() && text.find("second").unwrap() < text.find("third").unwrap());
        assert!(text
            .starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/dns-message\r\ncontent-length: 5\r\n\r\nfirst"));
        assert_eq!(conn.requests_open(), 0);
        assert_eq!(conn.held.capacity(), 0, "an idle connection holds nothing");
        assert!(!conn.is_done());
    }

    #[test]
    fn a_request_cut_anywhere_is_taken_once_whole() {
        let input = b"POST /dns-query HTTP/1.1\r\nContent-Length: 4\r\n\r\nwxyz";
        for cut in 0..input.len() {
            let mut conn = H1Conn::default();
            let mut out = Vec::new();
            let (used, seen) = take(&mut conn, &input[..cut], &mut out);
            assert_eq!((used, seen.len()), (0, 0), "cut at {cut}");
            let (used, seen) = take(&mut conn, input, &mut out);
            assert_eq!((used, seen.len()), (input.len(), 1));
            assert_eq!(seen[0].4, b"wxyz");
        }
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let mut conn = H1Conn::default();
        let mut out = Vec::new();
        let input =
            b"POST /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
        for cut in 0..input.len() {
            assert_eq!(take(&mut H1Conn::default(), &input[..cut], &mut out).1.len(), 0, "cut at {cut}");
        }
        let (used, seen) = take(&mut conn, input, &mut out);
        assert_eq!(used, input.len());
        assert_eq!(seen[0].4, b"abcde");
        assert_eq!(conn.chunked.capacity(), 0);
    }

    #[test]
    fn connection_close_and_http10_end_the_connection_after_their_response() {
        for input in
            [&b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..], b"GET / HTTP/1.0\r\n\r\n"]
        {
            let mut conn = H1Conn::default();
            let mut out = Vec::new();
            let (_, seen) = take(&mut conn, input, &mut out);
            assert_eq!(seen.len(), 1, "nothing after the last request is taken");
            assert!(!conn.is_done());
            conn.respond(0, 200, &[], b"x", &mut out);
            assert!(conn.is_done());
            assert!(String::from_utf8_lossy(&out).contains("connection: close\r\n"));
        }
        let mut conn = H1Conn::default();
        let (_, seen) = take(&mut conn, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &mut Vec::new());
        assert_eq!(seen.len(), 1);
        conn.respond(0, 200, &[], b"", &mut Vec::new());
        assert!(!conn.is_done());
    }

    #[test]
    fn bad_requests_are_answered_in_turn_and_close() {
        for (input, status) in [
            (&b"GARBAGE\r\n\r\n"[..], 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n", 413),
        ] {
            let mut conn = H1Conn::default();
            let mut out = Vec::new();
            let mut pipelined = GET.to_vec();
            pipelined.extend_from_slice(input);
            let (_, seen) = take(&mut conn, &pipelined, &mut out);
            assert_eq!(seen.len(), 1, "{status}: the good request before it is taken");
            assert!(out.is_empty(), "{status}: held behind the first answer");
            conn.respond(0, 200, &[], b"ok", &mut out);
            let text = String::from_utf8_lossy(&out);
            let second = text.split("ok").nth(1).unwrap();
            assert!(second.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
            assert!(second.contains("connection: close\r\n"));
            assert!(conn.is_done());
        }
        // A head that never ends.
        let mut conn = H1Conn::default();
        let mut out = Vec::new();
        let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b"X-A: b\r\n".iter().copied(), 3_000).flatten());
        take(&mut conn, &endless, &mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn expect_100_continue_is_answered_once_before_the_body() {
        let mut conn = H1Conn::default();
        let mut out = Vec::new();
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(take(&mut conn, head, &mut out).1.len(), 0);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(take(&mut conn, head, &mut out).1.len(), 0);
        assert_eq!(out.len(), 25, "once");
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"hi");
        assert_eq!(take(&mut conn, &whole, &mut out).1[0].4, b"hi");
    }

    #[test]
    fn room_limits_the_requests_taken_and_drain_ends_after_them() {
        let mut conn = H1Conn::default();
        let mut out = Vec::new();
        let input = GET.repeat(3);
        let used = conn.feed(&input, 2, &mut out, |_, _| {});
        assert_eq!(used, 2 * GET.len());
        conn.goaway();
        assert_eq!(conn.feed(&input[used..], 10, &mut out, |_, _| {}), 0, "draining takes nothing");
        conn.respond(0, 200, &[], b"", &mut out);
        assert!(!conn.is_done());
        conn.respond(1, 200, &[], b"", &mut out);
        assert!(conn.is_done());
        let mut idle = H1Conn::default();
        idle.goaway();
        assert!(idle.is_done());
    }
}
