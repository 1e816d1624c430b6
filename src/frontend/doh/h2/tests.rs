//! Bytes in, bytes out: each test plays a client with hand-made frames and reads back what the
//! core wrote with a small frame parser and the HPACK decoder.

use super::*;

const SETTINGS_ACK: u8 = ACK;

/// One frame as the core wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    fn code(&self) -> u32 {
        let at = if self.kind == kind::GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

/// What the core wrote, frame by frame (whole frames only).
fn frames(mut octets: &[u8]) -> Vec<Frame> {
    let mut all = Vec::new();
    while !octets.is_empty() {
        let head = FrameHead::parse(octets[..9].try_into().unwrap());
        let end = 9 + head.len as usize;
        all.push(Frame { kind: head.kind, flags: head.flags, stream: head.stream, payload: octets[9..end].to_vec() });
        octets = &octets[end..];
    }
    all
}

/// A header block of literal fields without indexing, new names, no Huffman (RFC 7541 §6.2.2),
/// after a dynamic table size update to 0 (§6.3): required once the client has our SETTINGS
/// (header table size 0), allowed at the start of any block.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![0x20];
    for (name, value) in fields {
        out.push(0);
        for s in [name, value] {
            // Lengths under 127 fit the 7-bit prefix (RFC 7541 §5.1) alone.
            out.push(u8::try_from(s.len()).ok().filter(|&n| n < 0x7f).expect("a short string"));
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

const GET: &[(&str, &str)] =
    &[(":method", "GET"), (":scheme", "https"), (":authority", "dns.example"), (":path", "/dns-query?dns=AAAB")];

fn post_fields(len: usize) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":scheme", "https".into()),
        (":path", "/dns-query".into()),
        ("content-type", "application/dns-message".into()),
        ("content-length", len.to_string()),
    ]
}

fn headers(stream: u32, end_stream: bool, fields: &[(&str, &str)]) -> Vec<u8> {
    frame(kind::HEADERS, END_HEADERS | if end_stream { END_STREAM } else { 0 }, stream, &block(fields))
}

fn post(stream: u32, body: &[u8]) -> Vec<u8> {
    let fields = post_fields(body.len());
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut out = headers(stream, false, &fields);
    out.extend(frame(kind::DATA, END_STREAM, stream, body));
    out
}

fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> =
        params.iter().flat_map(|(id, v)| [&id.to_be_bytes()[..], &v.to_be_bytes()].concat()).collect();
    frame(kind::SETTINGS, 0, 0, &payload)
}

/// The client's preface, its SETTINGS, and its ACK of ours.
fn client_start(params: &[(u16, u32)]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(settings(params));
    out.extend(frame(kind::SETTINGS, SETTINGS_ACK, 0, &[]));
    out
}

/// A request as the caller sees it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Request { stream: u32, method: Vec<u8>, path: Vec<u8>, content_type: Option<Vec<u8>>, body: Vec<u8> },
    Reset(u32),
    Answered(u32, u16),
}

/// A connection under test, with the worker's scratch.
struct Client {
    conn: H2Conn,
    scratch: Scratch,
}

/// What one feed produced.
#[derive(Debug)]
struct Fed {
    result: Result<usize, ConnError>,
    seen: Vec<Seen>,
    out: Vec<Frame>,
}

impl Client {
    /// A connection that sent its preface (`start`).
    fn new(settings: H2Settings) -> Client {
        let mut conn = H2Conn::new(settings);
        conn.start(&mut Vec::new());
        Client { conn, scratch: Scratch::default() }
    }

    /// A connection past the prefaces, with the client's SETTINGS `params`.
    fn started(settings: H2Settings, params: &[(u16, u32)]) -> Client {
        let mut client = Client::new(settings);
        let fed = client.feed(&client_start(params));
        assert_eq!(fed.result, Ok(fed_len(params)));
        assert_eq!(fed.out, frames(&frame(kind::SETTINGS, SETTINGS_ACK, 0, &[])));
        client
    }

    fn feed(&mut self, input: &[u8]) -> Fed {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let result = self.conn.feed(input, Instant::now(), &mut self.scratch, &mut out, |event| {
            seen.push(match event {
                Event::Request { stream, method, path, content_type, body } => Seen::Request {
                    stream,
                    method: method.to_vec(),
                    path: path.to_vec(),
                    content_type: content_type.map(<[u8]>::to_vec),
                    body: body.to_vec(),
                },
                Event::Reset { stream } => Seen::Reset(stream),
                Event::Answered { stream, status } => Seen::Answered(stream, status),
            })
        });
        if result.is_ok() {
            // The connection's receive window loses nothing: what the client may still send,
            // what is to be given back and the body octets held add up to the whole window.
            let conn = &self.conn;
            let held: i64 = conn.streams.iter().map(|s| i64::from(s.held)).sum();
            assert_eq!(
                conn.recv_window + i64::from(conn.recv_unacked) + held,
                i64::from(conn.settings.connection_window)
            );
        }
        Fed { result, seen, out: frames(&out) }
    }

    /// `send_pending` until it has nothing: each piece's frames.
    fn pending(&mut self) -> Vec<Vec<Frame>> {
        let mut pieces = Vec::new();
        let mut out = Vec::new();
        while self.conn.send_pending(&mut out) {
            pieces.push(frames(&std::mem::take(&mut out)));
        }
        pieces
    }

    fn respond(&mut self, stream: u32, status: u16, body: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        self.conn.respond(stream, status, &[(b"content-type", b"application/dns-message")], body, &mut out);
        frames(&out)
    }

    /// Asserts a connection error with `code`, and the GOAWAY that says it.
    fn fails(&mut self, input: &[u8], code: u32) -> ConnError {
        let fed = self.feed(input);
        let error = fed.result.expect_err("a connection error");
        assert_eq!(error.code, code, "{error:?}");
        let goaway = fed.out.last().expect("a GOAWAY");
        assert_eq!((goaway.kind, goaway.code()), (kind::GOAWAY, code));
        assert!(self.conn.is_done());
        // Nothing more from this connection.
        let again = self.feed(&frame(kind::PING, 0, 0, &[0; 8]));
        assert_eq!((again.result, again.out.len()), (Err(error), 0));
        error
    }
}

fn fed_len(params: &[(u16, u32)]) -> usize {
    client_start(params).len()
}

fn get_seen(stream: u32) -> Seen {
    Seen::Request {
        stream,
        method: b"GET".to_vec(),
        path: b"/dns-query?dns=AAAB".to_vec(),
        content_type: None,
        body: Vec::new(),
    }
}

fn post_seen(stream: u32, body: &[u8]) -> Seen {
    Seen::Request {
        stream,
        method: b"POST".to_vec(),
        path: b"/dns-query".to_vec(),
        content_type: Some(b"application/dns-message".to_vec()),
        body: body.to_vec(),
    }
}

/// The fields of a header block the core wrote.
fn decoded(block: &[u8]) -> Vec<(String, String)> {
    let mut decoder = hpack::Decoder::new(4096);
    let mut fields = Vec::new();
    decoder
        .decode(block, 1 << 20, &mut Vec::new(), |n, v| {
            fields.push((String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
        })
        .unwrap();
    fields
}

fn status_of(frame: &Frame) -> u16 {
    assert_eq!(frame.kind, kind::HEADERS);
    decoded(&frame.payload).iter().find(|(n, _)| n == ":status").unwrap().1.parse().unwrap()
}

/// A response's body, from its DATA frames.
fn body_of(frames: &[Frame], stream: u32) -> Vec<u8> {
    frames.iter().filter(|f| f.kind == kind::DATA && f.stream == stream).flat_map(|f| f.payload.clone()).collect()
}

fn window_update_frame(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

#[test]
fn a_get_and_a_post_on_two_streams_answered_out_of_order_in_any_split() {
    let settings = H2Settings { max_concurrent_streams: 50, ..H2Settings::default() };
    let mut conn = H2Conn::new(settings);
    let mut ours = Vec::new();
    conn.start(&mut ours);
    let ours = frames(&ours);
    assert_eq!(ours.len(), 2);
    // The connection's window opened to CONNECTION_WINDOW.
    assert_eq!((ours[1].kind, ours[1].stream, ours[1].code()), (kind::WINDOW_UPDATE, 0, CONNECTION_WINDOW - 65_535));
    let params: Vec<(u16, u32)> = ours[0]
        .payload
        .chunks(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes(c[2..6].try_into().unwrap())))
        .collect();
    assert_eq!(
        params,
        [
            (setting::MAX_CONCURRENT_STREAMS, 50),
            (setting::MAX_HEADER_LIST_SIZE, 16_384),
            (setting::HEADER_TABLE_SIZE, 0)
        ]
    );

    let query = b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
    let mut input = client_start(&[(setting::ENABLE_PUSH, 0), (setting::INITIAL_WINDOW_SIZE, 1 << 20)]);
    input.extend(headers(1, true, GET));
    input.extend(post(3, query));
    let whole = {
        let mut client = Client::new(settings);
        client.feed(&input)
    };
    assert_eq!(whole.result, Ok(input.len()));
    assert_eq!(whole.seen, [get_seen(1), post_seen(3, query)]);
    assert_eq!(whole.out, frames(&frame(kind::SETTINGS, SETTINGS_ACK, 0, &[])));
    for piece in 1..input.len() {
        let mut client = Client::new(settings);
        let mut seen = Vec::new();
        for chunk in input.chunks(piece) {
            let fed = client.feed(chunk);
            assert_eq!(fed.result, Ok(chunk.len()));
            seen.extend(fed.seen);
        }
        assert_eq!(seen, whole.seen, "in pieces of {piece}");
    }

    let mut client = Client::new(settings);
    client.feed(&input);
    assert_eq!(client.conn.streams_open(), 2);
    let answer = b"an answer to stream three";
    let three = client.respond(3, 200, answer);
    assert_eq!(three.len(), 2);
    assert_eq!((three[0].stream, three[0].flags), (3, END_HEADERS));
    assert_eq!(
        decoded(&three[0].payload),
        [
            (":status".into(), "200".into()),
            ("content-type".into(), "application/dns-message".into()),
            ("content-length".into(), answer.len().to_string())
        ]
    );
    assert_eq!((three[1].kind, three[1].flags, &three[1].payload[..]), (kind::DATA, END_STREAM, &answer[..]));
    let one = client.respond(1, 200, b"one");
    assert_eq!(body_of(&one, 1), b"one");
    assert_eq!(one.last().unwrap().flags, END_STREAM);
    // Answered once only.
    assert!(client.respond(1, 200, b"again").is_empty());
    assert_eq!(client.conn.streams_open(), 0);
    assert!(client.pending().is_empty());
    assert!(!client.conn.is_done());
}

#[test]
fn a_response_without_a_body_ends_on_its_headers() {
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, true, GET));
    let frames = client.respond(1, 404, b"");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].flags, END_HEADERS | END_STREAM);
    assert_eq!(status_of(&frames[0]), 404);
    assert!(decoded(&frames[0].payload).contains(&("content-length".into(), "0".into())));
}

#[test]
fn response_headers_over_a_frame_go_on_in_continuations() {
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, true, GET));
    let big = vec![b'x'; 40_000];
    let names: Vec<String> = (0..9).map(|i| format!("x-field-{i}")).collect();
    let mut fields: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &b"v"[..])).collect();
    fields.push((b"x-big", &big));
    let mut out = Vec::new();
    client.conn.respond(1, 200, &fields, b"body", &mut out);
    let frames = frames(&out);
    let kinds: Vec<(u8, u8)> = frames.iter().map(|f| (f.kind, f.flags)).collect();
    assert_eq!(
        kinds,
        [(kind::HEADERS, 0), (kind::CONTINUATION, 0), (kind::CONTINUATION, END_HEADERS), (kind::DATA, END_STREAM)]
    );
    let block: Vec<u8> = frames[..3].iter().flat_map(|f| f.payload.clone()).collect();
    let decoded = decoded(&block);
    assert_eq!(decoded.len(), 12);
    assert_eq!(decoded[10], ("x-big".into(), String::from_utf8(big).unwrap()));
    assert_eq!(decoded[11], ("content-length".into(), "4".into()));
}

#[test]
fn a_large_answer_goes_as_the_client_windows_open() {
    let mut client = Client::started(H2Settings::default(), &[(setting::INITIAL_WINDOW_SIZE, 1_000)]);
    client.feed(&headers(1, true, GET));
    let answer: Vec<u8> = (0..60_000u32).map(|i| i as u8).collect();
    let first = client.respond(1, 200, &answer);
    assert_eq!(first[0].kind, kind::HEADERS);
    assert_eq!(body_of(&first, 1).len(), 1_000);
    assert!(first.iter().all(|f| f.flags & END_STREAM == 0));
    assert!(client.pending().is_empty(), "no window, nothing to send");

    // The stream's window opens: frames of at most 16,384 octets.
    let fed = client.feed(&window_update_frame(1, 40_000));
    assert_eq!((fed.result, fed.out.len()), (Ok(13), 0));
    let pieces = client.pending();
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].iter().map(|f| f.payload.len()).collect::<Vec<_>>(), [16_384, 16_384, 7_232]);
    // The rest (19,000 of the connection's 24,535 left), with END_STREAM.
    client.feed(&window_update_frame(1, 100_000));
    let last = client.pending();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].last().unwrap().flags, END_STREAM);
    let mut all = body_of(&first, 1);
    all.extend(body_of(&pieces[0], 1));
    all.extend(body_of(&last[0], 1));
    assert_eq!(all, answer);
    assert_eq!(client.conn.streams_open(), 0);
    assert_eq!(client.conn.streams.capacity(), 0);
}

#[test]
fn the_clients_settings_change_windows_and_frame_sizes_of_answers_in_progress() {
    let mut client = Client::started(H2Settings::default(), &[(setting::INITIAL_WINDOW_SIZE, 0)]);
    client.feed(&headers(1, true, GET));
    client.feed(&headers(3, true, GET));
    let answer = vec![7u8; 40_000];
    assert_eq!(client.respond(1, 200, &answer).len(), 1, "HEADERS only");
    assert_eq!(client.respond(3, 200, &answer).len(), 1);
    // A new INITIAL_WINDOW_SIZE moves every stream's window (RFC 9113 §6.9.2), and a larger
    // MAX_FRAME_SIZE makes larger frames.
    let fed = client.feed(&settings(&[(setting::INITIAL_WINDOW_SIZE, 20_000), (setting::MAX_FRAME_SIZE, 20_000)]));
    assert_eq!(fed.out, frames(&frame(kind::SETTINGS, SETTINGS_ACK, 0, &[])));
    let pieces = client.pending();
    assert_eq!(pieces.len(), 2, "one piece per stream");
    assert_eq!(pieces.iter().map(|p| p.iter().map(|f| f.payload.len()).sum::<usize>()).sum::<usize>(), 40_000);
    assert!(pieces[0].iter().all(|f| f.payload.len() == 20_000));
    // The connection's window: 65,535 - 40,000 left, for whichever stream comes first.
    client.feed(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 20)]));
    let mut pieces = client.pending();
    assert_eq!(pieces.iter().flatten().map(|f| f.payload.len()).sum::<usize>(), 25_535);
    client.feed(&window_update_frame(0, 100_000));
    pieces.extend(client.pending());
    assert_eq!(pieces.iter().flatten().map(|f| f.payload.len()).sum::<usize>(), 40_000);
    assert_eq!(pieces.iter().flatten().filter(|f| f.flags & END_STREAM != 0).count(), 2);
    assert_eq!(client.conn.streams_open(), 0);
}

#[test]
fn window_overflows_are_flow_control_errors() {
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, true, GET));
    let fed = client.feed(&window_update_frame(1, 0x7fff_ffff));
    assert_eq!(fed.out.len(), 1);
    assert_eq!(
        (fed.out[0].kind, fed.out[0].stream, fed.out[0].code()),
        (kind::RST_STREAM, 1, code::FLOW_CONTROL_ERROR)
    );
    let fed = client.feed(&window_update_frame(0, 0x7fff_0000));
    assert_eq!(fed.result, Ok(13));
    client.fails(&window_update_frame(0, 0x7fff_0000), code::FLOW_CONTROL_ERROR);

    let mut client = Client::started(H2Settings::default(), &[]);
    client.fails(&window_update_frame(0, 0), code::PROTOCOL_ERROR);
    let mut client = Client::started(H2Settings::default(), &[]);
    client.fails(&frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1]), code::FRAME_SIZE_ERROR);
    let mut client = Client::started(H2Settings::default(), &[]);
    client.fails(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]), code::FLOW_CONTROL_ERROR);
}

#[test]
fn received_data_is_counted_and_given_back() {
    let mut client = Client::started(H2Settings::default(), &[]);
    // Three POSTs of 12,000, handed out: the connection's window is given back (past 16,384).
    let body = vec![1u8; 12_000];
    let fed = client.feed(&[post(1, &body), post(3, &body), post(5, &body)].concat());
    assert_eq!(fed.seen.len(), 3);
    assert_eq!(fed.out.len(), 1);
    assert_eq!((fed.out[0].kind, fed.out[0].stream, fed.out[0].code()), (kind::WINDOW_UPDATE, 0, 36_000));

    // A body being received: the stream's window is given back past half of it, the
    // connection's only once the body leaves.
    let fields = post_fields(60_000);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let fed = client.feed(&[headers(7, false, &fields), frame(kind::DATA, 0, 7, &[0; 16_000])].concat());
    assert!(fed.out.is_empty());
    assert!(client.feed(&frame(kind::DATA, 0, 7, &[0; 16_000])).out.is_empty());
    let fed = client.feed(&frame(kind::DATA, 0, 7, &[0; 1_000]));
    assert_eq!(fed.out.len(), 1);
    assert_eq!((fed.out[0].kind, fed.out[0].stream, fed.out[0].code()), (kind::WINDOW_UPDATE, 7, 33_000));
    let fed =
        client.feed(&[frame(kind::DATA, 0, 7, &[0; 16_000]), frame(kind::DATA, END_STREAM, 7, &[0; 11_000])].concat());
    assert_eq!(fed.seen.len(), 1);
    assert_eq!(fed.out.len(), 1);
    assert_eq!((fed.out[0].kind, fed.out[0].stream, fed.out[0].code()), (kind::WINDOW_UPDATE, 0, 60_000));
}

#[test]
fn data_beyond_a_window_is_refused() {
    // A stream's window: RST_STREAM FLOW_CONTROL_ERROR, the connection goes on.
    let settings = H2Settings { initial_window: 1_000, ..H2Settings::default() };
    let mut client = Client::started(settings, &[]);
    let fields = post_fields(5_000);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    client.feed(&headers(1, false, &fields));
    let fed = client.feed(&frame(kind::DATA, 0, 1, &[0; 1_001]));
    assert_eq!(fed.out.len(), 1);
    assert_eq!((fed.out[0].kind, fed.out[0].code()), (kind::RST_STREAM, code::FLOW_CONTROL_ERROR));
    // The connection's (bodies held, not handed out yet): a connection error.
    let mut client = Client::started(H2Settings::default(), &[]);
    let fields = post_fields(64_000);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut input = Vec::new();
    for id in [1, 3] {
        input.extend(headers(id, false, &fields));
        for _ in 0..4 {
            input.extend(frame(kind::DATA, 0, id, &[0; 16_000]));
        }
    }
    let fed = client.feed(&input);
    assert!(fed.result.is_ok());
    assert_eq!(client.conn.recv_window, i64::from(CONNECTION_WINDOW) - 128_000);
    client
        .fails(&[headers(5, false, &fields), frame(kind::DATA, 0, 5, &[0; 16_000])].concat(), code::FLOW_CONTROL_ERROR);
}

#[test]
fn a_body_over_65535_octets_is_answered_413() {
    let mut client = Client::started(H2Settings::default(), &[]);
    let fields = post_fields(70_000);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut input = headers(1, false, &fields);
    for _ in 0..4 {
        input.extend(frame(kind::DATA, 0, 1, &[0; 16_000]));
    }
    input.extend(frame(kind::DATA, END_STREAM, 1, &[0; 6_000]));
    let fed = client.feed(&input);
    assert_eq!(fed.seen, [Seen::Answered(1, 413)]);
    assert!(fed.out.iter().all(|f| f.kind == kind::WINDOW_UPDATE));
    let pieces = client.pending();
    assert_eq!(pieces.len(), 1);
    assert_eq!(status_of(&pieces[0][0]), 413);
    assert_eq!(pieces[0].len(), 1);
    assert_eq!(pieces[0][0].flags & END_STREAM, END_STREAM);
    assert_eq!(client.conn.streams_open(), 0);

    // Past four times that: answered at once and reset; what follows is dropped.
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, false, &fields));
    for i in 0..17 {
        let fed = client.feed(&frame(kind::DATA, 0, 1, &[0; 16_000]));
        assert!(fed.result.is_ok());
        assert_eq!(fed.seen, if i == 16 { vec![Seen::Answered(1, 413)] } else { vec![] });
        // The client is given the window to keep sending.
        for update in fed.out.iter().filter(|f| f.stream == 1) {
            assert_eq!(update.kind, kind::WINDOW_UPDATE);
        }
    }
    let pieces = client.pending();
    assert_eq!(pieces.len(), 1);
    assert_eq!(status_of(&pieces[0][0]), 413);
    assert_eq!((pieces[0][1].kind, pieces[0][1].code()), (kind::RST_STREAM, code::NO_ERROR));
    let fed = client.feed(&frame(kind::DATA, END_STREAM, 1, &[0; 1_000]));
    assert!(fed.result.is_ok() && fed.seen.is_empty());
    assert!(fed.out.iter().all(|f| f.stream == 0));
}

#[test]
fn a_header_list_over_the_cap_is_answered_431_and_the_connection_goes_on() {
    let mut client = Client::started(H2Settings::default(), &[]);
    let value = "v".repeat(20);
    let mut fields: Vec<(&str, &str)> = GET.to_vec();
    fields.extend(std::iter::repeat_n(("x-filler", value.as_str()), 300));
    let fed = client.feed(&headers(1, true, &fields));
    assert!(fed.result.is_ok() && fed.out.is_empty());
    assert_eq!(fed.seen, [Seen::Answered(1, 431)]);
    let pieces = client.pending();
    assert_eq!(status_of(&pieces[0][0]), 431);
    // A POST's: answered once its body is in.
    let mut big_post = fields.clone();
    big_post[0] = (":method", "POST");
    assert!(client.feed(&headers(3, false, &big_post)).seen.is_empty());
    assert!(client.pending().is_empty());
    assert_eq!(client.feed(&frame(kind::DATA, END_STREAM, 3, b"body")).seen, [Seen::Answered(3, 431)]);
    assert_eq!(status_of(&client.pending()[0][0]), 431);
    let fed = client.feed(&headers(5, true, GET));
    assert_eq!(fed.seen, [get_seen(5)]);
}

#[test]
fn a_header_list_far_over_the_cap_closes_the_connection() {
    // Before our SETTINGS is acknowledged the client has a 4,096-octet table: one 3,000-octet
    // entry, then 30 one-octet references to it, decode to 90 kB.
    let mut client = Client::new(H2Settings::default());
    let fed = client.feed(&[PREFACE.as_slice(), &settings(&[])].concat());
    assert!(fed.result.is_ok());
    // (Without the size update to 0 `block` opens with.)
    let mut block = block(GET)[1..].to_vec();
    block.extend_from_slice(&[0x40, 5]);
    block.extend_from_slice(b"x-big");
    block.extend_from_slice(&[0x7f, 0xb9, 0x16]);
    block.extend_from_slice(&[b'v'; 3_000]);
    block.extend_from_slice(&[0x80 | 62; 30]);
    let error = client.fails(&frame(kind::HEADERS, END_HEADERS | END_STREAM, 1, &block), code::ENHANCE_YOUR_CALM);
    assert_eq!(error.flood, Some(Flood::Headers));
}

#[test]
fn malformed_requests_are_reset_and_the_connection_goes_on() {
    let with = |extra: (&'static str, &'static str)| {
        let mut fields = GET.to_vec();
        fields.push(extra);
        fields
    };
    let cases: Vec<Vec<(&str, &str)>> = vec![
        GET.iter().copied().filter(|(n, _)| *n != ":path").collect(),
        GET.iter().copied().filter(|(n, _)| *n != ":method").collect(),
        GET.iter().copied().filter(|(n, _)| *n != ":scheme").collect(),
        with(("Accept", "application/dns-message")),
        with(("connection", "keep-alive")),
        with(("transfer-encoding", "chunked")),
        with(("upgrade", "h2c")),
        with(("te", "gzip")),
        with((":path", "/again")),
        with((":status", "200")),
        with(("x-bad", "a\r\nb")),
        [&[("accept", "*/*")], GET].concat(),
        with(("content-length", "12")),
        with(("content-length", "twelve")),
    ];
    let mut client = Client::started(H2Settings::default(), &[]);
    let mut id = 1;
    for fields in &cases {
        let fed = client.feed(&headers(id, true, fields));
        assert!(fed.seen.is_empty(), "{fields:?}");
        assert_eq!(fed.out.len(), 1, "{fields:?}");
        assert_eq!(
            (fed.out[0].kind, fed.out[0].stream, fed.out[0].code()),
            (kind::RST_STREAM, id, code::PROTOCOL_ERROR)
        );
        id += 2;
    }
    let fed = client.feed(&headers(id, true, &with(("te", "trailers"))));
    assert_eq!(fed.seen, [get_seen(id)]);
    // A POST whose body is not its content-length.
    let fields = post_fields(10);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let fed = client.feed(&[headers(id + 2, false, &fields), frame(kind::DATA, END_STREAM, id + 2, b"short")].concat());
    assert!(fed.seen.is_empty());
    assert_eq!((fed.out[0].kind, fed.out[0].code()), (kind::RST_STREAM, code::PROTOCOL_ERROR));
    assert_eq!(client.conn.streams_open(), 1);
}

#[test]
fn fields_come_in_any_order() {
    let mut client = Client::started(H2Settings::default(), &[]);
    let mut fields = post_fields(4);
    fields.reverse();
    let pseudo: Vec<(&str, &str)> =
        fields.iter().filter(|(n, _)| n.starts_with(':')).map(|(n, v)| (*n, v.as_str())).collect();
    let regular: Vec<(&str, &str)> =
        fields.iter().filter(|(n, _)| !n.starts_with(':')).map(|(n, v)| (*n, v.as_str())).collect();
    let fed = client.feed(
        &[headers(1, false, &[pseudo.clone(), regular].concat()), frame(kind::DATA, END_STREAM, 1, b"body")].concat(),
    );
    assert_eq!(fed.seen, [post_seen(1, b"body")]);
    let mut get: Vec<(&str, &str)> = GET.to_vec();
    get.reverse();
    get.push(("content-type", "text/plain"));
    let fed = client.feed(&headers(3, true, &get));
    let Seen::Request { method, path, content_type, .. } = &fed.seen[0] else { panic!() };
    assert_eq!(
        (&method[..], &path[..], content_type.as_deref()),
        (&b"GET"[..], &b"/dns-query?dns=AAAB"[..], Some(&b"text/plain"[..]))
    );
}

#[test]
fn trailers_padding_priority_and_continuation_are_understood() {
    let mut client = Client::started(H2Settings::default(), &[]);
    let fields = post_fields(4);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let block = block(&fields);
    // HEADERS padded and with a priority, in three pieces; DATA padded; trailers.
    let mut first = vec![3u8];
    first.extend_from_slice(&[0, 0, 0, 0, 16]);
    first.extend_from_slice(&block[..10]);
    first.extend_from_slice(&[0; 3]);
    let mut input = frame(kind::HEADERS, PADDED | PRIORITY, 1, &first);
    input.extend(frame(kind::CONTINUATION, 0, 1, &block[10..20]));
    input.extend(frame(kind::CONTINUATION, END_HEADERS, 1, &block[20..]));
    input.extend(frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 0, 200]));
    input.extend(frame(kind::DATA, PADDED, 1, &[2, b'b', b'o', b'd', b'y', 0, 0]));
    input.extend(frame(0x42, 0xff, 0, b"an unknown frame type"));
    input.extend(headers(1, true, &[("x-trailer", "ignored")]));
    let fed = client.feed(&input);
    assert_eq!(fed.result, Ok(input.len()));
    assert_eq!(fed.seen, [post_seen(1, b"body")]);
    assert!(fed.out.is_empty());
    assert_eq!(client.conn.block.capacity(), 0);
    // Trailers without END_STREAM are malformed.
    client.feed(&headers(3, false, &fields));
    let fed = client.feed(&headers(3, false, &[("x-trailer", "v")]));
    assert_eq!((fed.out[0].kind, fed.out[0].code()), (kind::RST_STREAM, code::PROTOCOL_ERROR));
    // PRIORITY of the wrong size: a stream error.
    let fed = client.feed(&frame(kind::PRIORITY, 0, 5, &[0; 4]));
    assert_eq!((fed.out[0].kind, fed.out[0].code()), (kind::RST_STREAM, code::FRAME_SIZE_ERROR));
}

#[test]
fn connection_errors_each_send_a_goaway() {
    let started = || Client::started(H2Settings::default(), &[]);
    // The preface.
    Client::new(H2Settings::default()).fails(b"GET / HTTP/1.1\r\n\r\n", code::PROTOCOL_ERROR);
    let mut client = Client::new(H2Settings::default());
    client.fails(&[PREFACE.as_slice(), &frame(kind::PING, 0, 0, &[0; 8])].concat(), code::PROTOCOL_ERROR);
    // Frame sizes.
    started().fails(&frame(kind::DATA, 0, 1, &vec![0; 16_385]), code::FRAME_SIZE_ERROR);
    started().fails(&frame(kind::PING, 0, 0, &[0; 7]), code::FRAME_SIZE_ERROR);
    started().fails(&frame(kind::RST_STREAM, 0, 1, &[0; 3]), code::FRAME_SIZE_ERROR);
    started().fails(&frame(kind::SETTINGS, 0, 0, &[0; 5]), code::FRAME_SIZE_ERROR);
    started().fails(&frame(kind::SETTINGS, ACK, 0, &[0; 6]), code::FRAME_SIZE_ERROR);
    started().fails(&frame(kind::GOAWAY, 0, 0, &[0; 4]), code::FRAME_SIZE_ERROR);
    // Settings' values.
    started().fails(&settings(&[(setting::ENABLE_PUSH, 2)]), code::PROTOCOL_ERROR);
    started().fails(&settings(&[(setting::MAX_FRAME_SIZE, 100)]), code::PROTOCOL_ERROR);
    started().fails(&settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)]), code::PROTOCOL_ERROR);
    // Stream ids and states.
    started().fails(&headers(2, true, GET), code::PROTOCOL_ERROR);
    let mut client = started();
    client.feed(&headers(3, true, GET));
    client.fails(&headers(1, true, GET), code::PROTOCOL_ERROR);
    let mut client = started();
    client.feed(&headers(1, true, GET));
    client.respond(1, 200, b"done");
    client.fails(&headers(1, true, GET), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::DATA, END_STREAM, 1, b"idle"), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::DATA, END_STREAM, 0, b""), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::RST_STREAM, 0, 1, &[0; 4]), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::RST_STREAM, 0, 0, &[0; 4]), code::PROTOCOL_ERROR);
    started().fails(&window_update_frame(7, 10), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::PING, 0, 1, &[0; 8]), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::SETTINGS, 0, 1, &[]), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::PRIORITY, 0, 0, &[0; 5]), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::PUSH_PROMISE, END_HEADERS, 1, &[0; 4]), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::HEADERS, END_HEADERS, 0, &block(GET)), code::PROTOCOL_ERROR);
    // Header blocks: interrupted, a stray CONTINUATION, padding, HPACK.
    let mut interrupted = frame(kind::HEADERS, 0, 1, &block(GET)[..8]);
    interrupted.extend(frame(kind::PING, 0, 0, &[0; 8]));
    started().fails(&interrupted, code::PROTOCOL_ERROR);
    let mut other_stream = frame(kind::HEADERS, 0, 1, &block(GET)[..8]);
    other_stream.extend(frame(kind::CONTINUATION, END_HEADERS, 3, &block(GET)[8..]));
    started().fails(&other_stream, code::PROTOCOL_ERROR);
    started().fails(&frame(kind::CONTINUATION, END_HEADERS, 1, &block(GET)), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::HEADERS, END_HEADERS | PADDED, 1, &[200, 0, 0]), code::PROTOCOL_ERROR);
    started().fails(&frame(kind::HEADERS, END_HEADERS | END_STREAM, 1, &[0xff, 0xff, 0xff]), code::COMPRESSION_ERROR);
    // The GOAWAY names the last stream the client opened.
    let mut client = started();
    client.feed(&headers(5, true, GET));
    let fed = client.feed(&frame(kind::PING, 0, 0, &[0; 9]));
    assert_eq!(u32::from_be_bytes(fed.out[0].payload[..4].try_into().unwrap()), 5);
    assert_eq!(&fed.out[0].payload[8..], b"a frame of the wrong length for its type");
}

#[test]
fn pings_are_answered_and_a_ping_flood_closes_the_connection() {
    let mut client = Client::started(H2Settings::default(), &[]);
    let fed = client.feed(&frame(kind::PING, 0, 0, b"12345678"));
    assert_eq!(fed.out, frames(&frame(kind::PING, ACK, 0, b"12345678")));
    // ACKs of our pings (we send none) cost nothing and get nothing.
    let fed = client.feed(&frame(kind::PING, ACK, 0, b"12345678"));
    assert!(fed.out.is_empty());
    let flood: Vec<u8> = (0..100).flat_map(|_| frame(kind::PING, 0, 0, b"flooding")).collect();
    let fed = client.feed(&flood);
    let error = fed.result.unwrap_err();
    assert_eq!((error.code, error.flood), (code::ENHANCE_YOUR_CALM, Some(Flood::Ping)));
    // The burst was answered, then the GOAWAY.
    assert_eq!(fed.out.iter().filter(|f| f.kind == kind::PING).count(), 19);
    assert_eq!((fed.out.last().unwrap().kind, fed.out.last().unwrap().code()), (kind::GOAWAY, code::ENHANCE_YOUR_CALM));
}

#[test]
fn rapid_reset_and_settings_floods_close_the_connection() {
    let mut client = Client::started(H2Settings::default(), &[]);
    let mut seen = 0;
    let mut id = 1;
    let error = loop {
        let fed = client
            .feed(&[headers(id, true, GET), frame(kind::RST_STREAM, 0, id, &code::CANCEL.to_be_bytes())].concat());
        seen += fed.seen.len();
        if let Err(error) = fed.result {
            break error;
        }
        id += 2;
    };
    assert_eq!(error.flood, Some(Flood::Reset));
    assert_eq!(seen, 2 * 200 + 1, "a request and its reset each time, up to the burst");
    let mut client = Client::started(H2Settings::default(), &[]);
    let flood: Vec<u8> = (0..20).flat_map(|_| settings(&[])).collect();
    assert_eq!(client.feed(&flood).result.unwrap_err().flood, Some(Flood::Settings));
}

#[test]
fn resets_the_client_provokes_are_charged_like_its_own() {
    // "MadeYouReset": malformed requests, each reset by us, are a rapid reset too.
    let mut client = Client::started(H2Settings::default(), &[]);
    let no_path: Vec<(&str, &str)> = GET.iter().copied().filter(|(n, _)| *n != ":path").collect();
    let mut id = 1;
    let error = loop {
        if let Err(error) = client.feed(&headers(id, true, &no_path)).result {
            break error;
        }
        id += 2;
    };
    assert_eq!((error.flood, id), (Some(Flood::Reset), 2 * 201 - 1), "the 201st reset");
    // A stream error on a request handed out is reported like the client's own reset.
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, true, GET));
    let fed = client.feed(&frame(kind::DATA, END_STREAM, 1, b"after the end"));
    assert_eq!(fed.seen, [Seen::Reset(1)]);
    assert_eq!((fed.out[0].kind, fed.out[0].code()), (kind::RST_STREAM, code::STREAM_CLOSED));
    client.feed(&headers(3, true, GET));
    let fed = client.feed(&headers(3, true, GET));
    assert_eq!(fed.seen, [Seen::Reset(3)]);
    assert_eq!((fed.out[0].kind, fed.out[0].code()), (kind::RST_STREAM, code::STREAM_CLOSED));
    assert_eq!(client.conn.streams_open(), 0);
}

#[test]
fn a_cancelled_request_is_reported_and_its_answer_dropped() {
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, true, GET));
    let fed = client.feed(&frame(kind::RST_STREAM, 0, 1, &code::CANCEL.to_be_bytes()));
    assert_eq!(fed.seen, [Seen::Reset(1)]);
    assert!(client.respond(1, 200, b"too late").is_empty());
    // A reset of a stream not handed out (its body still coming) is no event.
    let fields = post_fields(10);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    client.feed(&headers(3, false, &fields));
    let fed = client.feed(&frame(kind::RST_STREAM, 0, 3, &code::CANCEL.to_be_bytes()));
    assert!(fed.seen.is_empty());
    // And DATA that was on its way is dropped.
    let fed = client.feed(&frame(kind::DATA, END_STREAM, 3, b"0123456789"));
    assert!(fed.result.is_ok() && fed.seen.is_empty() && fed.out.is_empty());
    // A reset of a stream being answered stops the answer.
    let mut client = Client::started(H2Settings::default(), &[(setting::INITIAL_WINDOW_SIZE, 10)]);
    client.feed(&headers(1, true, GET));
    client.respond(1, 200, &[0; 100]);
    let fed = client.feed(&frame(kind::RST_STREAM, 0, 1, &code::CANCEL.to_be_bytes()));
    assert!(fed.seen.is_empty());
    client.feed(&window_update_frame(1, 1_000));
    assert!(client.pending().is_empty());
    assert_eq!(client.conn.streams_open(), 0);
}

#[test]
fn streams_over_the_cap_are_refused() {
    let settings = H2Settings { max_concurrent_streams: 2, ..H2Settings::default() };
    let mut client = Client::started(settings, &[]);
    let fed = client.feed(&[headers(1, true, GET), headers(3, true, GET), headers(5, true, GET)].concat());
    assert_eq!(fed.seen, [get_seen(1), get_seen(3)]);
    assert_eq!(fed.out.len(), 1);
    assert_eq!((fed.out[0].stream, fed.out[0].code()), (5, code::REFUSED_STREAM));
    client.respond(1, 200, b"one");
    let fed = client.feed(&headers(7, true, GET));
    assert_eq!(fed.seen, [get_seen(7)]);
    // A refused POST's DATA is dropped quietly.
    let fields = post_fields(3);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let fed = client.feed(&[headers(9, false, &fields), frame(kind::DATA, END_STREAM, 9, b"abc")].concat());
    assert!(fed.seen.is_empty());
    assert_eq!(fed.out.len(), 1);
    assert_eq!(fed.out[0].code(), code::REFUSED_STREAM);
}

#[test]
fn drain_answers_what_is_in_flight_then_is_done() {
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&[headers(1, true, GET), headers(3, true, GET)].concat());
    let mut out = Vec::new();
    client.conn.goaway(&mut out);
    let goaway = frames(&out);
    assert_eq!(goaway.len(), 1);
    assert_eq!(goaway[0].payload, [0, 0, 0, 3, 0, 0, 0, 0]);
    // Once only.
    client.conn.goaway(&mut out);
    assert_eq!(frames(&out).len(), 1);
    // Streams opened after it are not processed.
    let fed = client.feed(&headers(5, true, GET));
    assert!(fed.result.is_ok() && fed.seen.is_empty() && fed.out.is_empty());
    assert!(!client.conn.is_done());
    client.respond(3, 200, b"three");
    assert!(!client.conn.is_done());
    client.respond(1, 200, b"one");
    assert!(client.conn.is_done());

    // The client's GOAWAY: the same, without ours.
    let mut client = Client::started(H2Settings::default(), &[]);
    client.feed(&headers(1, true, GET));
    client.feed(&frame(kind::GOAWAY, 0, 0, &[0; 8]));
    assert!(!client.conn.is_done());
    client.respond(1, 200, b"one");
    assert!(client.conn.is_done());
}

#[test]
fn an_idle_connection_holds_no_heap_beyond_the_hpack_table() {
    let size = std::mem::size_of::<H2Conn>();
    println!("size_of::<H2Conn>() = {size}");
    assert!(size <= 512, "{size}");
    let mut client = Client::started(H2Settings::default(), &[(setting::INITIAL_WINDOW_SIZE, 100)]);
    let idle = |conn: &H2Conn| {
        assert_eq!(conn.streams.capacity(), 0);
        assert_eq!(conn.partial.capacity(), 0);
        assert_eq!(conn.block.capacity(), 0);
        assert_eq!(conn.decoder.table_size(), 0);
        assert_eq!(conn.heap_bytes(), 0);
    };
    idle(&client.conn);
    // A POST in pieces, a split header block, a response that waits for the window.
    let fields = post_fields(5);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let block = block(&fields);
    let mut input = frame(kind::HEADERS, 0, 1, &block[..5]);
    input.extend(frame(kind::CONTINUATION, END_HEADERS, 1, &block[5..]));
    input.extend(frame(kind::DATA, END_STREAM, 1, b"hello"));
    for chunk in input.chunks(7) {
        client.feed(chunk);
    }
    client.respond(1, 200, &[0; 1_000]);
    assert!(client.conn.heap_bytes() >= 900);
    client.feed(&window_update_frame(1, 5_000));
    assert_eq!(client.pending().len(), 1);
    idle(&client.conn);
}

#[test]
fn random_frames_in_random_pieces_never_panic() {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(18);
    let (mut requests, mut errors) = (0, 0);
    for _ in 0..2_000 {
        let ours = H2Settings { max_concurrent_streams: rng.random_range(1..5), ..H2Settings::default() };
        let mut client = Client::started(ours, &[(setting::INITIAL_WINDOW_SIZE, rng.random_range(0..3_000))]);
        // Mostly what a client sends, now and then anything.
        let mut input = Vec::new();
        let mut next = 1;
        for _ in 0..rng.random_range(1..40) {
            // A stream opened before.
            let old = rng.random_range(0..next.max(3) / 2) * 2 + 1;
            let data_len = rng.random_range(0..3_000);
            let choice = match rng.random_range(0..100) {
                // Those on a stream opened before: a new request while there is none.
                48..82 | 98 if next == 1 => 0,
                choice => choice,
            };
            let frame = match choice {
                0..25 => {
                    let mut get = GET.to_vec();
                    get.shuffle(&mut rng);
                    headers(next, true, &get)
                }
                25..40 => post(next, &vec![3; data_len]),
                40..48 => {
                    let block = block(GET);
                    let cut = rng.random_range(0..block.len());
                    let mut split = frame(kind::HEADERS, END_STREAM, next, &block[..cut]);
                    split.extend(frame(kind::CONTINUATION, END_HEADERS, next, &block[cut..]));
                    split
                }
                48..58 => frame(kind::DATA, [0, END_STREAM][rng.random_range(0..2)], old, &vec![4; data_len]),
                58..66 => frame(kind::RST_STREAM, 0, old, &code::CANCEL.to_be_bytes()),
                66..76 => window_update_frame([0, old][rng.random_range(0..2)], rng.random_range(0..70_000)),
                76..82 => {
                    let id = [setting::INITIAL_WINDOW_SIZE, setting::HEADER_TABLE_SIZE][rng.random_range(0..2)];
                    settings(&[(id, rng.random_range(0..70_000))])
                }
                82..88 => frame(kind::PING, [0, ACK][rng.random_range(0..2)], 0, &[9; 8]),
                88..92 => frame(kind::PRIORITY, 0, rng.random_range(1..9), &[0, 0, 0, 1, 16]),
                92..98 => frame(rng.random_range(10..255), rng.random(), rng.random_range(0..9), &[7; 5]),
                98 => headers(old, true, &[("x-trailer", "t")]),
                _ => {
                    let payload: Vec<u8> = (0..rng.random_range(0..20)).map(|_| rng.random()).collect();
                    frame(rng.random_range(0..10), rng.random(), rng.random_range(0..9), &payload)
                }
            };
            if frame[3] == kind::HEADERS && frame[5..9] == next.to_be_bytes() {
                next += 2;
            }
            input.extend(frame);
        }
        let mut at = 0;
        while at < input.len() {
            let n = rng.random_range(1..=input.len() - at);
            let fed = client.feed(&input[at..at + n]);
            at += n;
            for seen in fed.seen {
                if let Seen::Request { stream, .. } = seen {
                    requests += 1;
                    client.respond(stream, 200, &vec![1; rng.random_range(0..70_000)]);
                }
            }
            client.pending();
            if fed.result.is_err() {
                errors += 1;
                break;
            }
        }
        let mut out = Vec::new();
        client.conn.goaway(&mut out);
    }
    // The generator reaches the requests, and the errors.
    assert!(requests > 5_000 && errors > 100, "{requests} requests, {errors} connection errors");
}

/// What curl 7.88.1 (nghttp2 1.52) sent, captured with `--http2-prior-knowledge` on cleartext:
/// the preface, SETTINGS, a connection WINDOW_UPDATE and a GET with Huffman-coded fields.
const CURL_GET: &str = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a00001204000000000000030000006400040200000000\
020000000000000408000000000001ff000100005b0105000000018204aa624a90b76b4b67aff24a910430c3761861bb0c30c30c30c3745c5ae7\
c83e23c5c2ff313e986186ec30e086418f92a42e5f23a6ba0abd454dc0bcd3217a8825b650c3abbcf2e153901d75d0620d263d4c495216a4a840\
e62f";
/// The same with `--data-binary` of a 29-octet query and `content-type: application/dns-message`.
const CURL_POST: &str = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000120400000000000003000000640004020000000\
0020000000000000408000000000001ff0001000050010400000001830488624a90b76b4b67af86418f92a42e5f23a6ba0abd454dc0bcd3227a\
8825b650c3abbcf2e15f901d75d0620d263d4c495216a4a840e62f53901d75d0620d263d4c495216a4a840e62f0f0d02323900001d0001000000\
01000001000001000000000000076578616d706c6503636f6d0000010001";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn curl_bytes_are_requests() {
    for (capture, method, content_type, body) in [
        (CURL_GET, &b"GET"[..], None, &b""[..]),
        (
            CURL_POST,
            b"POST",
            Some(b"application/dns-message".to_vec()),
            &b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"[..],
        ),
    ] {
        let mut client = Client::new(H2Settings::default());
        let fed = client.feed(&unhex(capture));
        assert_eq!(fed.result.map(|_| ()), Ok(()));
        let path = if method == b"GET" {
            b"/dns-query?dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE".to_vec()
        } else {
            b"/dns-query".to_vec()
        };
        assert_eq!(
            fed.seen,
            [Seen::Request { stream: 1, method: method.to_vec(), path, content_type, body: body.to_vec() }]
        );
        // curl indexed :authority and more in its dynamic table, here; our SETTINGS' ACK
        // empties and frees it.
        assert!(client.conn.decoder.table_size() > 0);
        client.feed(&frame(kind::SETTINGS, ACK, 0, &[]));
        client.respond(1, 200, b"answer");
        assert_eq!(client.conn.heap_bytes(), 0);
        // The next block should say so first (RFC 7541 §4.2); one that does not is taken, as
        // raw clients that never index anything send them, and the table stays empty.
        let mut no_update = headers(3, true, GET);
        no_update.remove(9);
        no_update[2] -= 1;
        let fed = client.feed(&no_update);
        assert_eq!(fed.result.map(|_| ()), Ok(()));
        assert_eq!(fed.seen.len(), 1, "{:?}", fed.seen);
        assert_eq!(client.conn.decoder.table_size(), 0);
    }
}

/// Real clients against the core, over plain TCP with HTTP/2 prior knowledge (h2c: the same
/// octets as inside TLS): curl, nghttp (small windows), h2load (many streams at once). A client
/// that is not installed is skipped, said on stderr.
mod clients {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::Command;

    use super::*;

    /// Each request's answer: `size` octets (the first ones the request's body, if any).
    fn answer(body: &[u8], size: usize) -> Vec<u8> {
        let mut answer: Vec<u8> = body.iter().copied().chain((0..).map(|i: u32| (i % 251) as u8)).take(size).collect();
        answer.truncate(size.max(body.len()));
        answer
    }

    /// Serves the connections of `listener` until the test ends, each on a thread, every
    /// request answered `answer(body, size)` as soon as its feed returns.
    fn serve(size: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let socket = socket.unwrap();
                std::thread::spawn(move || connection(socket, size));
            }
        });
        port
    }

    fn connection(mut socket: TcpStream, size: usize) {
        let mut conn = H2Conn::new(H2Settings::default());
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        conn.start(&mut out);
        socket.write_all(&out).unwrap();
        let mut input = vec![0u8; 16_384];
        loop {
            let n = socket.read(&mut input).unwrap_or(0);
            if n == 0 {
                return;
            }
            out.clear();
            let mut requests = Vec::new();
            let fed = conn.feed(&input[..n], Instant::now(), &mut scratch, &mut out, |event| {
                if let Event::Request { stream, body, .. } = event {
                    requests.push((stream, answer(body, size)));
                }
            });
            for (stream, body) in requests {
                conn.respond(stream, 200, &[(b"content-type", b"application/dns-message")], &body, &mut out);
            }
            while conn.send_pending(&mut out) {}
            if let Err(error) = fed {
                eprintln!("connection error: {error:?}");
            }
            if socket.write_all(&out).is_err() || fed.is_err() {
                return;
            }
        }
    }

    /// `program args`' stdout, or None when it is not installed.
    fn run(program: &str, args: &[&str]) -> Option<Vec<u8>> {
        let output = match Command::new(program).args(args).output() {
            Ok(output) => output,
            Err(_) => {
                eprintln!("{program} not installed: skipped");
                return None;
            }
        };
        assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Some(output.stdout)
    }

    #[test]
    fn curl_gets_and_posts() {
        let port = serve(3_000);
        let url = format!("http://127.0.0.1:{port}/dns-query");
        let get = format!("{url}?dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE");
        // One URL per run: curl 7.88.1 fails its second request on a prior-knowledge
        // connection ("Error in the HTTP2 framing layer" before sending it), nginx's too.
        let Some(got) = run("curl", &["-sS", "--http2-prior-knowledge", "-m", "10", &get]) else { return };
        assert!(got == answer(b"", 3_000), "{} octets", got.len());
        let query = "a query body";
        let args = ["-sS", "--http2-prior-knowledge", "-m", "10", "-H", "content-type: application/dns-message"];
        let posted = run("curl", &[&args[..], &["--data-binary", query, &url]].concat()).unwrap();
        assert!(posted == answer(query.as_bytes(), 3_000), "{} octets", posted.len());
        // A body over a DNS message: 413 once the upload is done.
        let big = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(big.path(), vec![0u8; 70_000]).unwrap();
        let data = format!("@{}", big.path().display());
        let status = [&args[..], &["-o", "/dev/null", "-w", "%{http_code}", "--data-binary", &data, &url]].concat();
        assert_eq!(run("curl", &status).unwrap(), b"413");
    }

    #[test]
    fn nghttp_with_small_windows_gets_every_octet() {
        // 60,000-octet answers through a 1,023-octet stream window and a 65,535 one for the
        // connection: sent as its WINDOW_UPDATEs come.
        let port = serve(60_000);
        let url = format!("http://127.0.0.1:{port}/dns-query?dns=AAAB");
        let Some(got) = run("nghttp", &["-w", "10", "-W", "16", "-t", "10", &url]) else { return };
        assert!(got == answer(b"", 60_000), "{} octets", got.len());
        // Five at once (their octets interleave on stdout).
        let got = run("nghttp", &["-w", "10", "-W", "16", "-m", "5", "-t", "10", &url]).unwrap();
        assert_eq!(got.len(), 5 * 60_000);
    }

    #[test]
    fn h2load_many_streams_at_once() {
        let port = serve(100);
        let url = format!("http://127.0.0.1:{port}/dns-query?dns=AAAB");
        let Some(report) = run("h2load", &["-n", "5000", "-c", "4", "-m", "50", "-T", "20", &url]) else { return };
        let report = String::from_utf8_lossy(&report);
        assert!(report.contains("5000 succeeded, 0 failed, 0 errored, 0 timeout"), "{report}");
    }
}
