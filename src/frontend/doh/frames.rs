//! HTTP/2 frame headers (RFC 9113 §4.1): the 9-octet header's fields, the frame types and
//! flags, as `h2` and the flood budgets (`flood`) read them.
//!
//! Owns: nothing but the header layout. Never: parses a payload.

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
