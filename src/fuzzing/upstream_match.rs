//! Fuzz target `upstream_match`: what the relay makes of a datagram from a backend
//! (`relay::matching::match_udp_datagram`, which `Relay::on_udp_datagram` obeys), over a real
//! `InflightTable` holding a few queries that the input sets up around the datagram: the one it
//! answers (or nearly: another ID, socket, backend, a question differing in case, type or
//! class), others under the same ID on other sockets, and IDs freed by an answer or a timeout.
//!
//! Invariants: a datagram is delivered only to the entry holding its ID on the socket it
//! arrived on, sent to the address it came from, when it is a response carrying that entry's
//! question (names ASCII-case-insensitive, type and class exact, by a comparison written apart
//! from `dns`); such an entry always gets it; every drop names the first thing wrong, and an ID
//! freed by an answer is a duplicate while one freed by a timeout is unknown.

use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;

use super::{wire, Cursor, MAX_MESSAGE};
use crate::relay::backends::Backends;
use crate::relay::inflight::{Inflight, InflightTable, Key, Route};
use crate::relay::matching::{match_udp_datagram, DropReason, UdpMatch};
use crate::relay::ReplyTo;

pub const SOCKETS: usize = 4;
pub const BACKENDS: usize = 3;
/// Entries the input describes (each may be skipped).
pub const ENTRIES: usize = 4;
/// Bytes of control before the datagram: one for the arrival, four per entry.
pub const CONTROL_LEN: usize = 1 + 4 * ENTRIES;

/// A question none of the input's can be: `other.invalid. TXT`.
const OTHER_QUESTION: &[u8] = b"\x05other\x07invalid\x00\x00\x10\x00\x01";

struct Nobody;
impl ReplyTo for Nobody {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dot
    }

    fn deliver(&self, _: &[u8], _: u8) {}
}

fn backend_addr(index: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1), 5300 + index as u16))
}

/// What the model says a (socket, ID) slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Answered,
    Held(Key),
}

/// The input is `[arrival][4 × entry][datagram]`; every control byte 0 means "one entry,
/// holding the datagram's ID on socket 0, for its own question, sent to backend 0; the datagram
/// arrives on socket 0 from backend 0": the corpus's real answers are matched.
///
/// - arrival: socket (bits 0-1), source (bits 2-3: a backend, or 3 for a stranger), number of
///   entries - 1 (bits 4-5).
/// - entry byte 0: socket (bits 0-1), ID (bits 2-3: the datagram's, its ID ^ 1, bytes 2-3 of
///   the entry, or the datagram's again), backend (bits 4-5, mod 3), what became of it (bits
///   6-7: in flight, answered, timed out, in flight).
/// - entry byte 1: the question (bits 0-1: the datagram's, the datagram's with another type,
///   another name, the datagram's with another class); bits 2-7: which letters of the name
///   flip case.
/// - entry bytes 2-3: an ID.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let arrival = c.u8();
    let entries: Vec<[u8; 4]> = (0..ENTRIES).map(|_| [c.u8(), c.u8(), c.u8(), c.u8()]).collect();
    let datagram = c.rest();
    let datagram = &datagram[..datagram.len().min(MAX_MESSAGE)];

    let socket = usize::from(arrival & 3);
    let src = backend_addr(usize::from((arrival >> 2) & 3));
    let wanted = usize::from((arrival >> 4) & 3) + 1;

    let addrs: Vec<SocketAddr> = (0..BACKENDS).map(backend_addr).collect();
    let backends = Backends::new(&addrs);
    let mut table = InflightTable::new(SOCKETS);
    let mut slots = std::collections::HashMap::new();
    let reply: Rc<dyn ReplyTo> = Rc::new(Nobody);
    let datagram_id = if datagram.len() >= 2 { u16::from_be_bytes([datagram[0], datagram[1]]) } else { 0 };
    let datagram_question = (datagram.len() >= 12).then(|| wire::first_question_end(datagram)).flatten();

    for e in entries.iter().take(wanted) {
        let entry_socket = usize::from(e[0] & 3);
        let id = match (e[0] >> 2) & 3 {
            1 => datagram_id ^ 1,
            2 => u16::from_be_bytes([e[2], e[3]]),
            _ => datagram_id,
        };
        if matches!(slots.get(&(entry_socket, id)), Some(Slot::Held(_))) {
            continue; // the relay only claims free IDs
        }
        let mut question = match (e[1] & 3, datagram_question) {
            (2, _) | (_, None) => OTHER_QUESTION.to_vec(),
            (q, Some(end)) => {
                let mut q_bytes = datagram[12..end].to_vec();
                let at = q_bytes.len() - 4;
                match q {
                    1 => q_bytes[at] ^= 0x01,     // another type
                    3 => q_bytes[at + 3] ^= 0x02, // another class
                    _ => {}
                }
                q_bytes
            }
        };
        flip_case(&mut question, e[1] >> 2);
        let mut query = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(&question);
        let question_end = query.len();
        let mut entry = Inflight::new(reply.clone(), 0, query, question_end);
        crate::dns::set_id(&mut entry.query, id);
        entry.backend = usize::from((e[0] >> 4) & 3) % BACKENDS;
        entry.route = Route::Udp { socket: entry_socket as u16 };
        let key = table.insert(entry);
        table.claim_udp_id(entry_socket, id, key);
        slots.insert((entry_socket, id), Slot::Held(key));
        match e[0] >> 6 {
            1 | 2 => {
                let answered = e[0] >> 6 == 1;
                table.release_route(key, answered);
                table.remove(key);
                slots.insert((entry_socket, id), if answered { Slot::Answered } else { Slot::Free });
            }
            _ => {}
        }
    }

    let verdict = match_udp_datagram(&table, &backends, socket, datagram, src);
    let slot =
        if datagram.len() >= 2 { slots.get(&(socket, datagram_id)).copied().unwrap_or(Slot::Free) } else { Slot::Free };
    let expected = if datagram.len() < 12 {
        UdpMatch::Drop(DropReason::Garbage)
    } else {
        match slot {
            Slot::Free => UdpMatch::Drop(DropReason::UnknownId),
            Slot::Answered => UdpMatch::Drop(DropReason::Duplicate),
            Slot::Held(key) => {
                let entry = table.get(key).expect("held entry");
                if src != addrs[entry.backend] {
                    UdpMatch::Drop(DropReason::WrongSource)
                } else if datagram[2] & 0x80 == 0 {
                    UdpMatch::Drop(DropReason::Garbage)
                } else if !carries_question(datagram, entry.question()) && !questionless_error(datagram) {
                    UdpMatch::Drop(DropReason::QuestionMismatch)
                } else {
                    UdpMatch::Deliver(key)
                }
            }
        }
    };
    assert_eq!(verdict, expected, "socket {socket}, src {src}, slot {slot:?}");

    // Whatever the model: a delivery is for the one entry this datagram answers.
    if let UdpMatch::Deliver(key) = verdict {
        let entry = table.get(key).expect("delivered to a live entry");
        assert!(matches!(entry.route, Route::Udp { socket: s } if usize::from(s) == socket));
        assert_eq!(crate::dns::id(&entry.query), datagram_id, "delivered under another ID");
        assert_eq!(addrs[entry.backend], src, "delivered from another address");
        assert!(datagram[2] & 0x80 != 0);
        assert!(carries_question(datagram, entry.question()) || questionless_error(datagram));
    }
}

/// A FORMERR, SERVFAIL, NOTIMP or REFUSED without a question (QDCOUNT 0).
fn questionless_error(datagram: &[u8]) -> bool {
    datagram[4..6] == [0, 0] && matches!(datagram[3] & 0x0F, 1 | 2 | 4 | 5)
}

/// Whether `datagram` has exactly one question, the same as `asked`, by the strict walker.
fn carries_question(datagram: &[u8], asked: &[u8]) -> bool {
    datagram[4..6] == [0, 1]
        && wire::first_question_end(datagram).is_some_and(|end| wire::same_question(&datagram[12..end], asked))
}

/// Flips the case of the name's letters chosen by `mask` (bit i: every letter whose index is i
/// mod 6).
fn flip_case(question: &mut [u8], mask: u8) {
    if mask == 0 || question.len() < 5 {
        return;
    }
    let name_len = question.len() - 4;
    let mut letter = 0;
    let mut pos = 0;
    while pos < name_len {
        let len = usize::from(question[pos]);
        for b in question.iter_mut().skip(pos + 1).take(len.min(name_len.saturating_sub(pos + 1))) {
            if b.is_ascii_alphabetic() {
                if mask >> (letter % 6) & 1 == 1 {
                    *b ^= 0x20;
                }
                letter += 1;
            }
        }
        pos += 1 + len;
    }
}
