//! Where HTTP/2 frames begin and end in a byte stream (RFC 9113 §4.1): a cursor fed the octets
//! of one direction of a connection, in pieces of any size, that reports each frame's header
//! and each frame's end.
//!
//! Owns: only the position in the frame stream (at most nine octets of a header kept).
//! Never: parses a payload, allocates, or changes the octets; it only watches them pass. hyper
//! (through the h2 crate) does the HTTP/2; this cursor lets the connection's IO wrapper
//! (`wire`) see what h2 does not expose: which frames the client sends (for the flood budgets)
//! and where a response ends (for one TLS record per response).

/// A frame header's fields that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    pub kind: u8,
    pub flags: u8,
    pub len: u32,
    pub stream: u32,
}

/// Frame types (RFC 9113 §6).
pub mod kind {
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
}

/// END_STREAM on DATA and HEADERS; ACK on SETTINGS and PING (the same bit).
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
/// END_HEADERS on HEADERS and CONTINUATION.
pub const END_HEADERS: u8 = 0x4;

impl FrameHead {
    /// The fields of a 9-octet frame header.
    pub fn parse(octets: &[u8; 9]) -> FrameHead {
        FrameHead {
            len: u32::from_be_bytes([0, octets[0], octets[1], octets[2]]),
            kind: octets[3],
            flags: octets[4],
            stream: u32::from_be_bytes([octets[5], octets[6], octets[7], octets[8]]) & 0x7fff_ffff,
        }
    }

    /// The last frame of a stream's message: DATA or HEADERS (trailers) with END_STREAM.
    pub fn ends_stream(&self) -> bool {
        (self.kind == kind::DATA || self.kind == kind::HEADERS) && self.flags & END_STREAM != 0
    }
}

/// What the cursor saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A frame header was complete (its payload follows).
    Head(FrameHead),
    /// A frame's last octet was passed.
    End(FrameHead),
}

/// The position in one direction's frame stream.
#[derive(Clone, Copy, Debug)]
pub struct FrameCursor {
    /// Octets to pass before the first frame (the client's 24-octet preface, RFC 9113 §3.4).
    skip: usize,
    header: [u8; 9],
    have: u8,
    /// The frame whose payload is being passed, and how much of it is left.
    current: Option<(FrameHead, u32)>,
}

/// The client connection preface's length (RFC 9113 §3.4).
pub const CLIENT_PREFACE_LEN: usize = 24;

impl FrameCursor {
    /// A cursor at the start of a stream of frames (the server's side).
    pub fn frames() -> FrameCursor {
        FrameCursor { skip: 0, header: [0; 9], have: 0, current: None }
    }

    /// A cursor at the start of what a client sends: its preface, then frames.
    pub fn client() -> FrameCursor {
        FrameCursor { skip: CLIENT_PREFACE_LEN, ..FrameCursor::frames() }
    }

    /// Passes `octets`, calling `visit` on each event; stops right after an event for which
    /// `visit` returns `false`. Returns how many octets were passed.
    pub fn pass(&mut self, octets: &[u8], mut visit: impl FnMut(Event) -> bool) -> usize {
        let mut at = 0;
        while at < octets.len() {
            if self.skip > 0 {
                let n = self.skip.min(octets.len() - at);
                self.skip -= n;
                at += n;
                continue;
            }
            if let Some((head, left)) = self.current {
                let n = (left as usize).min(octets.len() - at);
                at += n;
                let left = left - n as u32;
                if left > 0 {
                    self.current = Some((head, left));
                    continue;
                }
                self.current = None;
                if !visit(Event::End(head)) {
                    return at;
                }
                continue;
            }
            let n = (9 - usize::from(self.have)).min(octets.len() - at);
            self.header[usize::from(self.have)..usize::from(self.have) + n].copy_from_slice(&octets[at..at + n]);
            self.have += n as u8;
            at += n;
            if self.have < 9 {
                continue;
            }
            self.have = 0;
            let head = FrameHead::parse(&self.header);
            if !visit(Event::Head(head)) {
                self.current = Some((head, head.len));
                return at;
            }
            if head.len == 0 {
                if !visit(Event::End(head)) {
                    return at;
                }
            } else {
                self.current = Some((head, head.len));
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn events(cursor: &mut FrameCursor, octets: &[u8]) -> Vec<Event> {
        let mut seen = Vec::new();
        assert_eq!(
            cursor.pass(octets, |e| {
                seen.push(e);
                true
            }),
            octets.len()
        );
        seen
    }

    #[test]
    fn frames_are_found_whatever_the_pieces() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        stream.extend(frame(kind::PING, 0, 0, &[7; 8]));
        stream.extend(frame(kind::HEADERS, 0x5, 1, b"hpack"));
        stream.extend(frame(kind::DATA, END_STREAM, 1, &[]));
        let whole = events(&mut FrameCursor::client(), &stream);
        assert_eq!(whole.len(), 8);
        assert_eq!(whole[2], Event::Head(FrameHead { kind: kind::PING, flags: 0, len: 8, stream: 0 }));
        assert!(matches!(whole[7], Event::End(h) if h.ends_stream() && h.stream == 1));
        for piece in 1..stream.len() {
            let mut cursor = FrameCursor::client();
            let mut seen = Vec::new();
            for chunk in stream.chunks(piece) {
                seen.extend(events(&mut cursor, chunk));
            }
            assert_eq!(seen, whole, "in pieces of {piece}");
        }
    }

    #[test]
    fn passing_stops_right_after_the_event_refused_and_resumes_there() {
        let mut octets = frame(kind::HEADERS, 0x4, 1, b"h");
        octets.extend(frame(kind::DATA, END_STREAM, 1, b"answer one"));
        let first_end = octets.len();
        octets.extend(frame(kind::HEADERS, 0x4, 3, b"h"));
        octets.extend(frame(kind::DATA, END_STREAM, 3, b"answer two"));
        let mut cursor = FrameCursor::frames();
        let cut = cursor.pass(&octets, |e| !matches!(e, Event::End(h) if h.ends_stream()));
        assert_eq!(cut, first_end);
        let rest = events(&mut cursor, &octets[cut..]);
        assert!(matches!(rest.last(), Some(Event::End(h)) if h.stream == 3));
        // Refusing a header leaves its payload to pass.
        let mut cursor = FrameCursor::frames();
        let n = cursor.pass(&octets, |e| !matches!(e, Event::Head(h) if h.kind == kind::DATA));
        assert_eq!(n, 9 + 1 + 9);
        assert_eq!(
            events(&mut cursor, &octets[n..]).first(),
            Some(&Event::End(FrameHead { kind: kind::DATA, flags: END_STREAM, len: 10, stream: 1 }))
        );
    }
}
