//! Step ⑦ of the data path: what a datagram from a backend is. Either the answer to exactly one
//! query in flight (the one holding the datagram's ID on the socket it arrived on, sent to the
//! address it came from, with QR=1 and the same question), or something to drop, and why.
//!
//! A pure decision over the in-flight table and the backends: it never changes either, never
//! touches the datagram, never counts and never delivers (`Relay::on_udp_datagram` does all
//! that with the verdict). Being pure, the fuzz targets and property tests (`crate::fuzzing`)
//! run this very function.

use std::net::SocketAddr;

use super::backends::Backends;
use super::inflight::{InflightTable, Key};
use crate::dns;

/// Why a datagram from a backend is dropped; each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than a DNS header, or not a response (QR=0).
    Garbage,
    /// No query waits on this socket under this ID, and none was answered under it last.
    UnknownId,
    /// A second copy of an answer already delivered (the ID is still marked answered).
    Duplicate,
    /// Not from the address the waiting query was sent to.
    WrongSource,
    /// A response under the right ID that does not carry the question asked.
    QuestionMismatch,
}

/// The verdict on a datagram from a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpMatch {
    /// The answer to the query in flight under this key.
    Deliver(Key),
    Drop(DropReason),
}

/// Decides what `datagram`, arrived on upstream UDP socket `socket` from `src`, is. The checks
/// run in this order, so that the counters say the first thing wrong: length, ID (the slot
/// must be held), source address, QR, question.
pub fn match_udp_datagram(
    table: &InflightTable,
    backends: &Backends,
    socket: usize,
    datagram: &[u8],
    src: SocketAddr,
) -> UdpMatch {
    if datagram.len() < dns::HEADER_LEN {
        return UdpMatch::Drop(DropReason::Garbage);
    }
    let id = dns::id(datagram);
    let Some(key) = table.udp_owner(socket, id) else {
        let duplicate = table.udp_id_answered(socket, id);
        return UdpMatch::Drop(if duplicate { DropReason::Duplicate } else { DropReason::UnknownId });
    };
    let entry = table.get(key).expect("ID map points at a live entry");
    if src != backends.addr(entry.backend) {
        return UdpMatch::Drop(DropReason::WrongSource);
    }
    if !dns::is_response(datagram) {
        return UdpMatch::Drop(DropReason::Garbage);
    }
    if !dns::answers_question(datagram, entry.question()) && !dns::is_questionless_error(datagram) {
        return UdpMatch::Drop(DropReason::QuestionMismatch);
    }
    UdpMatch::Deliver(key)
}
