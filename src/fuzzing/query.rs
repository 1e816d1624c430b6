//! Fuzz target `query`: the query check and the ID rewrite, on an arbitrary message as a
//! client would send it (the input is the message, at most 65,535 bytes).
//!
//! Invariants: `dns::check_query` never panics and agrees with a reference check written from
//! RFC 1035 apart from `dns` (QR=1 closes, another opcode is NOTIMP, anything but one
//! well-formed uncompressed question of at most 255 octets is FORMERR, the rest is relayed with
//! the question's true end); rewriting the ID and restoring it gives the original bytes and
//! touches nothing else; the relay's entry sees the same question and client ID; a local
//! answer (FORMERR, NOTIMP, SERVFAIL, or any RCODE) only appends, carries the ID it is given,
//! QR=1, the query's opcode, RD and CD, the RCODE, no records, and echoes the question exactly
//! when the query has one well-formed question, so that the client can match it.

use std::rc::Rc;

use super::{wire, MAX_MESSAGE};
use crate::dns::{self, QueryVerdict};
use crate::relay::inflight::Inflight;
use crate::relay::ReplyTo;

/// The check as RFC 1035 reads, written apart from `dns::check_query`.
pub fn reference_verdict(msg: &[u8]) -> QueryVerdict {
    if msg.len() < 12 || msg[2] & 0x80 != 0 {
        return QueryVerdict::Close;
    }
    if (msg[2] >> 3) & 0x0f != 0 {
        return QueryVerdict::Answer(dns::rcode::NOTIMP);
    }
    if msg[4..6] != [0, 1] {
        return QueryVerdict::Answer(dns::rcode::FORMERR);
    }
    match wire::first_question_end(msg) {
        Some(question_end) => QueryVerdict::Relay { question_end },
        None => QueryVerdict::Answer(dns::rcode::FORMERR),
    }
}

struct Nobody;
impl ReplyTo for Nobody {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dot
    }

    fn deliver(&self, _: &[u8], _: u8) {}
}

pub fn run(data: &[u8]) {
    let msg = &data[..data.len().min(MAX_MESSAGE)];
    let verdict = dns::check_query(msg);
    assert_eq!(verdict, reference_verdict(msg), "check_query disagrees with RFC 1035");
    let question = match verdict {
        QueryVerdict::Relay { question_end } => {
            assert_eq!(dns::question_end(msg), Some(question_end));
            assert!(question_end <= msg.len());
            let question = &msg[dns::HEADER_LEN..question_end];
            // The name as logged with --log-queries.
            let name = dns::display_name(&question[..question.len() - 4]);
            assert!(name.ends_with('.') && name.is_ascii());
            // What the relay keeps: the same question and the client's ID.
            let entry = Inflight::new(Rc::new(Nobody), 0, msg.to_vec(), question_end);
            assert_eq!(entry.question(), question);
            assert_eq!(entry.client_id, u16::from_be_bytes([msg[0], msg[1]]));
            assert!(dns::answers_question(&local_answer(msg, 0, dns::rcode::SERVFAIL), question));
            Some(question)
        }
        _ => None,
    };
    if msg.len() >= dns::HEADER_LEN {
        check_id_rewrite(msg);
    }

    // Every RCODE dotgate sends itself, and one from the input.
    let extra = msg.last().copied().unwrap_or(0);
    for (id, rcode) in [(0x0000, dns::rcode::FORMERR), (0xffff, dns::rcode::NOTIMP), (0x1234, dns::rcode::SERVFAIL)]
        .into_iter()
        .chain([(u16::from(extra) << 8 | 0x5a, extra)])
    {
        check_local_answer(msg, id, rcode, question);
    }
}

/// `set_id` then `id` reads back; restoring gives the original bytes; nothing else changes.
fn check_id_rewrite(msg: &[u8]) {
    let original = dns::id(msg);
    assert_eq!(original, u16::from_be_bytes([msg[0], msg[1]]));
    let mut copy = msg.to_vec();
    let upstream = original.rotate_left(5) ^ 0xa5c3;
    for new in [0, 0xffff, upstream] {
        dns::set_id(&mut copy, new);
        assert_eq!(dns::id(&copy), new);
        assert_eq!(&copy[2..], &msg[2..], "set_id touched more than the ID");
        dns::set_id(&mut copy, original);
        assert_eq!(copy, msg, "restoring the ID did not give the original bytes");
    }
}

fn local_answer(msg: &[u8], id: u16, rcode: u8) -> Vec<u8> {
    let mut out = Vec::new();
    dns::write_local_answer(msg, id, rcode, &mut out);
    out
}

fn check_local_answer(msg: &[u8], id: u16, rcode: u8, question: Option<&[u8]>) {
    // Written behind bytes already there (the connection's queue of framed answers).
    let before = b"\x00\x0cearlier".to_vec();
    let mut out = before.clone();
    dns::write_local_answer(msg, id, rcode, &mut out);
    assert_eq!(&out[..before.len()], &before[..], "a local answer overwrote what was in the buffer");
    let answer = &out[before.len()..];
    assert!(answer.len() >= dns::HEADER_LEN);
    assert_eq!(dns::id(answer), id);
    assert!(dns::is_response(answer));
    assert_eq!(dns::rcode(answer), rcode & 0x0f);
    let byte = |i: usize| msg.get(i).copied().unwrap_or(0);
    assert_eq!(dns::opcode(answer), (byte(2) >> 3) & 0x0f, "opcode not copied");
    assert_eq!(answer[2] & 0x01, byte(2) & 0x01, "RD not copied");
    assert_eq!(answer[3] & 0x10, byte(3) & 0x10, "CD not copied");
    assert_eq!(answer[2] & 0x06, 0, "AA or TC invented");
    assert_eq!(answer[3] & 0x60, 0, "Z or AD invented");
    assert_eq!(&answer[6..12], &[0; 6], "records claimed");
    // The question is echoed when the query has exactly one well-formed one (also for the
    // FORMERR and NOTIMP a query with such a question gets).
    let one_question = msg.len() >= 12 && msg[4..6] == [0, 1];
    let echoed = if one_question { wire::first_question_end(msg).map(|end| &msg[12..end]) } else { None };
    if let Some(q) = question {
        assert_eq!(echoed, Some(q));
    }
    match echoed {
        Some(q) => {
            assert_eq!(dns::qdcount(answer), 1);
            assert_eq!(&answer[12..], q, "the question is not echoed");
            assert!(dns::answers_question(answer, q), "a local answer does not match its own question");
        }
        None => {
            assert_eq!(dns::qdcount(answer), 0);
            assert_eq!(answer.len(), dns::HEADER_LEN);
        }
    }
    let parsed = wire::parse(answer).expect("a local answer is a well-formed message");
    assert_eq!(parsed.trailing, 0);
}
