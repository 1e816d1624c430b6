//! Fuzz target `edns`: the EDNS options of the TLS hop, `edns::take_query_options` on a message
//! as a query and `edns::append_answer` on it as an answer.
//!
//! Invariants, on any input: no panic; nothing is ever written past 65,535 bytes; a stripped
//! query stripped again has nothing left to strip. On a message the strict walker (`wire`)
//! parses, with one question and nothing after its records: the result is exactly what the
//! RFCs ask, built here apart from `edns` (the hop options read are those of the first OPT
//! record; the stripped query is the query with keepalive (11) and padding (12) taken out of
//! that record and its RDLENGTH fixed, every other byte the same; the answer has the backend's
//! keepalive and padding replaced by this hop's, an OPT record added (and counted) when it
//! had none, its length a multiple of 468 when padded, and every other byte the same; a
//! message with records after its OPT record is left whole, since they would move); the
//! edited answer parses again, and hickory-proto (a second, independent parser) reads the
//! same header, question and records in it as in the original, with only the hop options
//! changed.
//!
//! The TCP memory's readers too: `edns::query_edns` (a query's UDP payload size and DO bit) and
//! `dns::answer_min_ttl` never panic; on a message the strict walker parses whole, they read
//! what it reads (the first OPT record's size, at least 512, and DO bit; the smallest TTL of
//! the records other than OPT, a TTL with the top bit set as 0, an SOA in a negative answer at
//! most its MINIMUM).

use super::wire::{Section, TYPE_OPT};
use super::{wire, Cursor, MAX_MESSAGE};
use crate::edns::{self, HopOptions, KEEPALIVE, PADDING, PADDING_BLOCK};

/// The input is `[hop][idle timeout: 2 bytes][message]`: hop bit 0 asks for keepalive, bit 1
/// for padding (all four combinations run when bit 2 is set).
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let hop_bits = c.u8();
    let idle = c.u16();
    let msg = c.rest();
    let msg = &msg[..msg.len().min(MAX_MESSAGE)];

    check_query(msg);
    check_tcp_memory_readers(msg);
    let hops: Vec<u8> = if hop_bits & 4 != 0 { vec![0, 1, 2, 3] } else { vec![hop_bits & 3] };
    for bits in hops {
        check_answer(msg, HopOptions::from_tag(bits), idle);
    }
}

fn check_tcp_memory_readers(msg: &[u8]) {
    let ttl = crate::dns::answer_min_ttl(msg);
    let asked = crate::dns::question_end(msg).map(|end| edns::query_edns(msg, end));
    let Some(parsed) = wire::parse(msg).filter(|m| m.trailing == 0) else { return };
    let be32 = |at: usize| u32::from_be_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]);
    let negative = parsed.count(Section::Answer) == 0 || parsed.flags & 0x0f == 3;
    let expected = parsed
        .records
        .iter()
        .filter(|r| r.rtype != TYPE_OPT)
        .map(|r| {
            let ttl = be32(r.rdlen_at - 4);
            let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
            if r.rtype == 6 && negative && r.rdata.len() >= 22 {
                ttl.min(be32(r.rdata.end - 4))
            } else {
                ttl
            }
        })
        .min();
    assert_eq!(ttl, expected, "smallest TTL");
    let (Some(asked), 1) = (asked, parsed.questions.len()) else { return };
    let (udp_payload, dnssec_ok) = match parsed.opt() {
        Some(opt) => {
            let size = u16::from_be_bytes([msg[opt.rdlen_at - 6], msg[opt.rdlen_at - 5]]);
            (size.max(512), msg[opt.rdlen_at - 2] & 0x80 != 0)
        }
        None => (512, false),
    };
    assert_eq!(asked, edns::QueryEdns { udp_payload, dnssec_ok }, "query EDNS");
}

/// An OPT record and its options, as (code, whole option's range).
type Opt = (wire::Record, Vec<(u16, std::ops::Range<usize>)>);

/// The options of `msg`'s first OPT record, when the message parses strictly with one question
/// and no trailing bytes.
fn strict_opt(msg: &[u8]) -> Option<(wire::Message, Option<Opt>)> {
    let parsed = wire::parse(msg).filter(|m| m.questions.len() == 1 && m.trailing == 0)?;
    // The first question must also be uncompressed, as dotgate's own question reader requires.
    wire::first_question_end(msg)?;
    let opt = match parsed.opt() {
        Some(record) => Some((record.clone(), wire::options(msg, record.rdata.clone())?)),
        None => None,
    };
    Some((parsed, opt))
}

fn check_query(msg: &[u8]) {
    let Some(question_end) = crate::dns::question_end(msg) else { return };
    let mut stripped = b"junk from the last query".to_vec();
    let (hop, did_strip) = edns::take_query_options(msg, question_end, &mut stripped);
    assert!(hop.any() || !did_strip, "stripped a query without hop options");
    if did_strip {
        assert!(stripped.len() <= msg.len(), "stripping grew the query");
        let mut again = Vec::new();
        let (hop2, twice) = edns::take_query_options(&stripped, question_end, &mut again);
        assert!(!twice && !hop2.any(), "hop options left in a stripped query");
    }
    let Some((_, opt)) = strict_opt(msg) else { return };
    let Some((record, options)) = opt else {
        assert!(!hop.any(), "hop options read from a query without OPT");
        return;
    };
    let has = |code| options.iter().any(|(c, _)| *c == code);
    assert_eq!(hop, HopOptions { keepalive: has(KEEPALIVE), padding: has(PADDING) });
    // Stripped exactly when there is something to strip and nothing after the OPT record to move.
    assert_eq!(did_strip, hop.any() && record.rdata.end == msg.len());
    if !did_strip {
        return;
    }
    let kept: Vec<u8> = options
        .iter()
        .filter(|(code, _)| *code != KEEPALIVE && *code != PADDING)
        .flat_map(|(_, range)| msg[range.clone()].to_vec())
        .collect();
    assert_eq!(stripped, wire::with_rdata(msg, &record, &kept), "stripped query is not the query less its hop options");
    let reparsed = wire::parse(&stripped).expect("the stripped query parses");
    let opt = reparsed.opt().expect("the OPT record stays");
    let codes = wire::options(&stripped, opt.rdata.clone()).expect("whole options");
    assert!(codes.iter().all(|(c, _)| *c != KEEPALIVE && *c != PADDING));
}

fn check_answer(msg: &[u8], hop: HopOptions, idle: u16) {
    let before = b"\x00\x10earlier answer".to_vec();
    let mut out = before.clone();
    edns::append_answer(msg, hop, idle, &mut out);
    assert_eq!(&out[..before.len()], &before[..], "append_answer overwrote what was in the buffer");
    let out = &out[before.len()..];
    assert!(out.len() <= MAX_MESSAGE, "an answer grew past 65,535 bytes");
    if !hop.any() {
        assert_eq!(out, msg, "an answer without hop options was changed");
        return;
    }
    // Only messages with one question reach append_answer (the relay checked the question).
    if msg.len() < 12 || msg[4..6] != [0, 1] {
        return;
    }
    let Some((parsed, opt)) = strict_opt(msg) else { return };
    let expected = expected_answer(msg, &parsed, opt.as_ref(), hop, idle);
    assert_eq!(out, &expected[..], "edited answer differs from the RFCs' (hop {hop:?})");
    if out == msg {
        return;
    }
    let reparsed = wire::parse(out).expect("the edited answer parses");
    assert_eq!(reparsed.trailing, 0);
    let opt = reparsed.opt().expect("the edited answer has an OPT record");
    let options = wire::options(out, opt.rdata.clone()).expect("whole options");
    let count = |code| options.iter().filter(|(c, _)| *c == code).count();
    assert_eq!(count(KEEPALIVE), usize::from(hop.keepalive));
    if hop.padding {
        if count(PADDING) == 1 {
            assert_eq!(out.len() % PADDING_BLOCK, 0, "padded answer of {} bytes", out.len());
        } else {
            assert_eq!(count(PADDING), 0);
            assert!(out.len() + 4 > MAX_MESSAGE - PADDING_BLOCK, "padding left out of a {}-byte answer", out.len());
        }
    } else {
        assert_eq!(count(PADDING), 0);
    }
    // When an OPT record was added, ARCOUNT changed: a compression pointer into the header
    // (nonsense, but hickory-proto follows it) would read another name there. The same goes for
    // names in RDATA the strict walker does not read: those messages are not compared.
    let unchecked = parsed.records.iter().any(|r| wire::UNCHECKED_NAMES_IN_RDATA.contains(&r.rtype));
    if parsed.opt().is_some() && !unchecked {
        compare_with_hickory(msg, out, hop);
    }
}

/// The answer as RFC 7828 and RFC 7830/8467 ask, built without `edns`.
fn expected_answer(msg: &[u8], parsed: &wire::Message, opt: Option<&Opt>, hop: HopOptions, idle: u16) -> Vec<u8> {
    // Records after the OPT record would move (breaking pointers into them): left alone.
    if opt.is_some_and(|(record, _)| record.rdata.end != msg.len()) {
        return msg.to_vec();
    }
    let mut rdata: Vec<u8> = match opt {
        Some((_, options)) => options
            .iter()
            .filter(|(code, _)| *code != KEEPALIVE && *code != PADDING)
            .flat_map(|(_, range)| msg[range.clone()].to_vec())
            .collect(),
        None => Vec::new(),
    };
    if hop.keepalive {
        rdata.extend_from_slice(&[0, 11, 0, 2]);
        rdata.extend_from_slice(&idle.to_be_bytes());
    }
    // The message without any padding, and where the OPT's RDATA ends in it.
    let unpadded = match opt {
        Some((record, _)) => wire::with_rdata(msg, record, &rdata),
        None => {
            assert!(parsed.records.len() < usize::from(u16::MAX));
            let mut m = msg.to_vec();
            let arcount = u16::from_be_bytes([m[10], m[11]]) + 1;
            m[10..12].copy_from_slice(&arcount.to_be_bytes());
            m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&rdata);
            m
        }
    };
    let mut final_rdata = rdata.clone();
    if hop.padding {
        let fill = (PADDING_BLOCK - (unpadded.len() + 4) % PADDING_BLOCK) % PADDING_BLOCK;
        if unpadded.len() + 4 + fill <= MAX_MESSAGE {
            final_rdata.extend_from_slice(&[0, 12]);
            final_rdata.extend_from_slice(&(fill as u16).to_be_bytes());
            final_rdata.resize(final_rdata.len() + fill, 0);
        }
    }
    let edited = match opt {
        Some((record, _)) => wire::with_rdata(msg, record, &final_rdata),
        None => {
            let mut m = unpadded[..unpadded.len() - rdata.len() - 2].to_vec();
            m.extend_from_slice(&(final_rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&final_rdata);
            m
        }
    };
    if edited.len() > MAX_MESSAGE {
        msg.to_vec()
    } else {
        edited
    }
}

/// hickory-proto, a parser written by others, must read the same message in both but for the
/// hop options (when it reads the original at all).
fn compare_with_hickory(original: &[u8], edited: &[u8], hop: HopOptions) {
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::opt::EdnsCode;
    let Ok(before) = Message::from_vec(original) else { return };
    let after = Message::from_vec(edited).expect("hickory-proto reads the original but not the edited answer");
    assert_eq!(before.id(), after.id());
    assert_eq!(before.message_type(), after.message_type());
    assert_eq!(before.op_code(), after.op_code());
    assert_eq!(before.response_code(), after.response_code());
    assert_eq!(before.header().truncated(), after.header().truncated());
    assert_eq!(before.queries(), after.queries());
    assert_eq!(before.answers(), after.answers());
    assert_eq!(before.name_servers(), after.name_servers());
    assert_eq!(before.additionals(), after.additionals());
    let after_edns = after.extensions().as_ref().expect("EDNS in the edited answer");
    let codes = |m: &Message| {
        let mut codes: Vec<u16> = m
            .extensions()
            .as_ref()
            .map(|e| e.options().as_ref().iter().map(|(c, _)| u16::from(*c)).collect())
            .unwrap_or_default();
        codes.sort_unstable();
        codes
    };
    let mut want: Vec<u16> = codes(&before).into_iter().filter(|&c| c != KEEPALIVE && c != PADDING).collect();
    if hop.keepalive {
        want.push(KEEPALIVE);
    }
    if hop.padding && after_edns.option(EdnsCode::Padding).is_some() {
        want.push(PADDING);
    }
    want.sort_unstable();
    assert_eq!(codes(&after), want, "hickory-proto reads other EDNS options");
    if let Some(before_edns) = before.extensions() {
        assert_eq!(before_edns.max_payload(), after_edns.max_payload());
        assert_eq!(before_edns.flags().dnssec_ok, after_edns.flags().dnssec_ok);
        assert_eq!(before_edns.version(), after_edns.version());
        assert_eq!(before_edns.rcode_high(), after_edns.rcode_high());
    }
}
