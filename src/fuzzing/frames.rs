//! Fuzz target `frames`: the frame reader, `framing::take_stream` around
//! `framing::take_messages`, driven the way `frontend::dot::connection` drives them, on an
//! arbitrary byte stream handed over in arbitrary pieces (as TLS records cut it) under an
//! in-flight cap (as `--max-in-flight` holds whole messages back).
//!
//! Invariants: the messages taken are exactly the length-prefixed messages of the stream, in
//! order, however it is cut and capped; a prefix too short for DNS is reported as
//! `FrameTooShort` with that length, once every message before it was taken, and never
//! otherwise; what is left waiting is exactly the stream's unfinished tail, and an empty
//! waiting buffer holds no allocation; the cap is never exceeded.

use std::cell::Cell;

use bytes::BytesMut;

use super::Cursor;
use crate::frontend::dot::framing::{self, FrameTooShort};

/// What the stream is, by a reference reader written apart from `framing`.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected<'a> {
    pub messages: Vec<&'a [u8]>,
    /// The length of the too-short prefix that ends the stream's DNS, if one does.
    pub too_short: Option<usize>,
    /// Bytes after the last whole message (when no prefix is too short).
    pub tail: &'a [u8],
}

pub fn reference(stream: &[u8]) -> Expected<'_> {
    let mut messages = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &stream[pos..];
        if rest.len() < 2 {
            return Expected { messages, too_short: None, tail: rest };
        }
        let len = usize::from(rest[0]) << 8 | usize::from(rest[1]);
        if len < 12 {
            return Expected { messages, too_short: Some(len), tail: rest };
        }
        if rest.len() < 2 + len {
            return Expected { messages, too_short: None, tail: rest };
        }
        messages.push(&rest[2..2 + len]);
        pos += 2 + len;
    }
}

/// The input, decoded: `[cap][release][n][n piece lengths][stream]`.
///
/// - `cap`: messages taken before the reader must wait for answers to go out (0: no cap).
/// - `release`: bit i (cyclic) says whether the answers go out after piece i, which lets
///   held-back messages be taken (as `connection::step` retakes `pending` after writing).
/// - piece lengths: the stream is handed over in pieces of these lengths, cyclically (0 is an
///   empty record); with none, or only zeros, the rest goes in one piece.
pub struct Input<'a> {
    pub cap: u8,
    pub release: u8,
    pub pieces: &'a [u8],
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn decode(data: &'a [u8]) -> Input<'a> {
        let mut c = Cursor::new(data);
        let cap = c.u8();
        let release = c.u8();
        let n = c.u8() as usize;
        let pieces = c.take(n);
        Input { cap, release, pieces, stream: c.rest() }
    }

    /// The bytes `decode` reads back as this input.
    pub fn encode(cap: u8, release: u8, pieces: &[u8], stream: &[u8]) -> Vec<u8> {
        assert!(pieces.len() <= 255);
        let mut out = vec![cap, release, pieces.len() as u8];
        out.extend_from_slice(pieces);
        out.extend_from_slice(stream);
        out
    }
}

pub fn run(data: &[u8]) {
    let input = Input::decode(data);
    let stream = input.stream;
    let expected = reference(stream);
    let cap = if input.cap == 0 { usize::MAX } else { usize::from(input.cap) };

    let mut pending = BytesMut::new();
    let mut taken: Vec<Vec<u8>> = Vec::new();
    // Messages taken and not yet "answered on the wire" (a `Cell`, as the connection's count).
    let outstanding = Cell::new(0usize);
    let mut error = None;
    let mut fed = 0;
    let mut piece_index = 0;
    let cyclic_total: usize = input.pieces.iter().map(|&b| usize::from(b)).sum();

    // One wake-up of the connection: feed a piece, then (maybe) write answers and retake
    // what waits, as `connection::step` does.
    let take = |pending: &mut BytesMut, piece: &[u8], taken: &mut Vec<Vec<u8>>| {
        framing::take_stream(pending, piece, |s| {
            framing::take_messages(
                s,
                || outstanding.get() < cap,
                |message| {
                    assert!(outstanding.get() < cap, "a message was taken over the cap");
                    assert!(message.len() >= 12 && message.len() <= u16::MAX as usize);
                    taken.push(message.to_vec());
                    outstanding.set(outstanding.get() + 1);
                    Ok::<(), FrameTooShort>(())
                },
            )
        })
    };
    while fed < stream.len() || (fed == 0 && piece_index == 0) {
        let len = if cyclic_total == 0 {
            stream.len() - fed
        } else {
            usize::from(input.pieces[piece_index % input.pieces.len()]).min(stream.len() - fed)
        };
        let piece = &stream[fed..fed + len];
        fed += len;
        if let Err(e) = take(&mut pending, piece, &mut taken) {
            error = Some(e);
            break;
        }
        if input.release.rotate_right(piece_index as u32 % 8) & 1 == 1 {
            outstanding.set(0);
            if !pending.is_empty() {
                if let Err(e) = take(&mut pending, &[], &mut taken) {
                    error = Some(e);
                    break;
                }
            }
        }
        check_pending(&pending);
        piece_index += 1;
    }
    // The stream has ended: answers go out until nothing more can be taken.
    while error.is_none() && !pending.is_empty() {
        outstanding.set(0);
        let before = taken.len();
        if let Err(e) = take(&mut pending, &[], &mut taken) {
            error = Some(e);
        }
        check_pending(&pending);
        if taken.len() == before {
            break;
        }
    }

    let taken: Vec<&[u8]> = taken.iter().map(Vec::as_slice).collect();
    assert_eq!(taken, expected.messages, "messages taken differ from the stream's messages");
    match (error, expected.too_short) {
        (Some(FrameTooShort(got)), Some(want)) => assert_eq!(got, want),
        (None, None) => assert_eq!(&pending[..], expected.tail, "what waits is not the stream's unfinished tail"),
        (got, want) => panic!("too-short frame reported {got:?}, expected {want:?}"),
    }
}

/// An empty waiting buffer holds no allocation (an idle connection keeps none).
fn check_pending(pending: &BytesMut) {
    assert!(
        !pending.is_empty() || pending.capacity() == 0,
        "an empty pending buffer kept {} bytes",
        pending.capacity()
    );
}
