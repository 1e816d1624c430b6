//! DoT framing (RFC 7858 §3.3, RFC 1035 §4.2.2): every message is preceded by its length as two
//! bytes, big-endian. Check, then parse: the length is checked before the message is touched,
//! and "not all here yet" is `Ok(None)`, never an error or a copy.
//!
//! Also the frame reader's two pure steps, which the connection drives: [`take_messages`]
//! walks the whole messages at the front of a stream, and [`take_stream`] keeps the part of a
//! decrypted record that is not a whole message for the next one. They never touch a socket
//! or TLS, so the fuzz targets and property tests (`crate::fuzzing`) run this very code.

use bytes::{Buf, BytesMut};

use crate::dns::HEADER_LEN;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 2;

/// A frame whose length cannot hold a DNS header: the stream is not DNS, close it.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameTooShort(pub usize);

/// The length of the complete message at the front of `buf`, or `None` when more bytes are
/// needed.
#[inline]
pub fn complete_message_len(buf: &[u8]) -> Result<Option<usize>, FrameTooShort> {
    if buf.len() < PREFIX_LEN {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if len < HEADER_LEN {
        return Err(FrameTooShort(len));
    }
    Ok((buf.len() >= PREFIX_LEN + len).then_some(len))
}

/// Appends `message` to `out` with its length prefix. Messages are at most 65,535 bytes by
/// construction (a UDP payload, or a TCP frame read with a 16-bit length).
#[inline]
pub fn append_framed(out: &mut Vec<u8>, message: &[u8]) {
    debug_assert!(message.len() <= u16::MAX as usize);
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
}

/// Appends to `out` the message `write` appends, with its length prefix in front.
#[inline]
pub fn append_framed_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_LEN]);
    write(out);
    let len = out.len() - start - PREFIX_LEN;
    debug_assert!(len <= u16::MAX as usize);
    out[start..start + PREFIX_LEN].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Hands each whole message at the front of `stream` (without its prefix) to `take`, as long as
/// `more()` allows another one; returns the bytes used. A length prefix too short for DNS stops
/// the walk with `FrameTooShort` (converted to the caller's error), as does an error of `take`.
#[inline]
pub fn take_messages<E: From<FrameTooShort>>(
    stream: &[u8],
    mut more: impl FnMut() -> bool,
    mut take: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<usize, E> {
    let mut used = 0;
    while more() {
        let rest = &stream[used..];
        let Some(len) = complete_message_len(rest)? else { break };
        take(&rest[PREFIX_LEN..PREFIX_LEN + len])?;
        used += PREFIX_LEN + len;
    }
    Ok(used)
}

/// Takes the next decrypted `plaintext` of a stream whose unused start waits in `pending`:
/// `take` is given the stream as far as it is known and returns the bytes it used; the rest
/// waits in `pending`. The common case (nothing pending) hands `plaintext` over without a copy.
/// An emptied `pending` holds no allocation.
#[inline]
pub fn take_stream<E>(
    pending: &mut BytesMut,
    plaintext: &[u8],
    take: impl FnOnce(&[u8]) -> Result<usize, E>,
) -> Result<(), E> {
    if pending.is_empty() {
        let used = take(plaintext)?;
        pending.extend_from_slice(&plaintext[used..]);
    } else {
        pending.extend_from_slice(plaintext);
        let used = take(pending)?;
        pending.advance(used);
        if pending.is_empty() {
            *pending = BytesMut::new();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_prefix_and_partial_message_need_more() {
        assert_eq!(complete_message_len(&[]), Ok(None));
        assert_eq!(complete_message_len(&[0]), Ok(None));
        assert_eq!(complete_message_len(&[0, 12, 1, 2, 3]), Ok(None));
    }

    #[test]
    fn complete_message_is_found_with_more_behind_it() {
        let mut buf = vec![0, 12];
        buf.extend_from_slice(&[7; 12]);
        buf.extend_from_slice(&[0, 40, 1]);
        assert_eq!(complete_message_len(&buf), Ok(Some(12)));
    }

    #[test]
    fn length_below_a_header_is_an_error() {
        assert_eq!(complete_message_len(&[0, 11]), Err(FrameTooShort(11)));
        assert_eq!(complete_message_len(&[0, 0]), Err(FrameTooShort(0)));
    }

    #[test]
    fn framing_round_trips_the_largest_message() {
        let big = vec![0xab; 65_535];
        let mut out = Vec::new();
        append_framed(&mut out, &big);
        assert_eq!(complete_message_len(&out), Ok(Some(65_535)));
        assert_eq!(&out[2..], &big[..]);
    }
}
