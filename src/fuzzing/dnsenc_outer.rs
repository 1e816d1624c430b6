//! Fuzz target `dnsenc_outer`: the DNSENC messages (`frontend::dnsenc::wire`) on the same
//! bytes: `parse_outer` on them as a query dotgate checked, `check_inner` as a decrypted inner
//! query, `parse_response_envelope` as a response envelope (default code points).
//!
//! Invariants, on any input: no panic. On a message the strict walker (`wire`) parses, every
//! verdict is exactly the one built here from the draft (§2.3, §2.2, §3.1.1, §2.4) apart from
//! the code under test: for `parse_outer` the question under dnsenc.arpa., one OPT record whose
//! options fill it with one DNSENC option of at least 4 octets, and its fields; for
//! `check_inner` the first rule broken in the order its documentation gives; for
//! `parse_response_envelope` acceptance and every field. On any input, whatever is accepted
//! holds up: an encrypted query's payload sits right after its key identifier, and the
//! response envelope written for it reads back the same; an inner query passes only with its
//! own ID (another one is `IdMismatch` unless an earlier rule fails), the query written is the
//! plaintext less exactly its NSK record, ARCOUNT one less, has no NSK left, and with the NSK
//! record put back passes again to the same; a response envelope written again from what was
//! read reads back the same.

use std::ops::Range;

use super::wire::{self, Section, TYPE_OPT};
use super::MAX_MESSAGE;
use crate::dns::{self, QueryVerdict, HEADER_LEN};
use crate::frontend::dnsenc::wire::{
    check_inner, parse_outer, parse_response_envelope, scheme, write_query_envelope, write_response_envelope,
    CodePoints, InnerError, Nsk, Outer, ResponseEnvelope, WireError,
};

/// The input is one message (its first 65,535 bytes), read three ways with the default code
/// points: as a checked query, as a decrypted inner query, as a response envelope.
pub fn run(data: &[u8]) {
    let msg = &data[..data.len().min(MAX_MESSAGE)];
    let cp = CodePoints::default();
    check_outer(msg, &cp);
    check_inner_query(msg, &cp);
    check_response(msg, &cp);
}

fn be16(msg: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([msg[at], msg[at + 1]])
}

fn be32(msg: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]])
}

// ---- parse_outer ------------------------------------------------------------------------------

fn check_outer(msg: &[u8], cp: &CodePoints) {
    let QueryVerdict::Relay { question_end } = dns::check_query(msg) else { return };
    let verdict = parse_outer(msg, question_end, cp);
    if let Outer::Encrypted { key_id, payload, udp_size, question, rd } = verdict {
        assert_eq!(question, &msg[HEADER_LEN..question_end]);
        assert!(udp_size >= 512);
        assert_eq!(rd, msg[2] & 1 != 0);
        let at = payload.as_ptr() as usize - msg.as_ptr() as usize;
        assert_eq!(&msg[at - 4..at], &key_id.to_be_bytes(), "the payload follows its key identifier");
        let mut out = Vec::new();
        let option = Some((key_id, payload));
        write_response_envelope(dns::id(msg), rd, question, cp.badcrypt, false, option, 1232, cp, &mut out);
        let read = parse_response_envelope(&out, cp);
        let want = ResponseEnvelope { id: dns::id(msg), question, rcode: cp.badcrypt, tc: false, option };
        assert_eq!(read, Ok(want), "the response envelope for it");
    }
    if let Some(parsed) = wire::parse(msg) {
        assert_eq!(verdict, expected_outer(msg, &parsed, question_end, cp), "parse_outer");
    }
}

fn expected_outer<'a>(msg: &'a [u8], parsed: &wire::Message, question_end: usize, cp: &CodePoints) -> Outer<'a> {
    let labels = &parsed.questions[0].labels;
    if labels.len() < 2 || labels[labels.len() - 2] != b"dnsenc" || labels[labels.len() - 1] != b"arpa" {
        return Outer::NotDnsenc;
    }
    let opts: Vec<&wire::Record> =
        parsed.records.iter().filter(|r| r.section == Section::Additional && r.rtype == TYPE_OPT).collect();
    let opt = match opts[..] {
        [] => return Outer::NoOption,
        [opt] => opt,
        _ => return Outer::BadOption,
    };
    let Some(options) = wire::options(msg, opt.rdata.clone()) else { return Outer::BadOption };
    let dnsenc: Vec<&Range<usize>> = options.iter().filter(|(c, _)| *c == cp.option_code).map(|(_, r)| r).collect();
    match dnsenc[..] {
        [] => Outer::NoOption,
        [range] if range.len() >= 8 => Outer::Encrypted {
            key_id: be32(msg, range.start + 4),
            payload: &msg[range.start + 8..range.end],
            udp_size: be16(msg, opt.rdlen_at - 6).max(512),
            question: &msg[HEADER_LEN..question_end],
            rd: parsed.flags & 0x0100 != 0,
        },
        _ => Outer::BadOption,
    }
}

// ---- check_inner ------------------------------------------------------------------------------

fn check_inner_query(msg: &[u8], cp: &CodePoints) {
    let id = if msg.len() >= 2 { be16(msg, 0) } else { 0 };
    let mut out = b"stale".to_vec();
    let result = check_inner(msg, id, cp, &mut out);
    let other_id = check_inner(msg, id ^ 1, cp, &mut Vec::new()).map(|_| ());
    match &result {
        Err(e @ (InnerError::NotQuery | InnerError::NotOpcodeQuery | InnerError::QuestionCount)) => {
            assert_eq!(other_id, Err(*e))
        }
        Err(InnerError::Malformed) if msg.len() < HEADER_LEN => assert_eq!(other_id, Err(InnerError::Malformed)),
        _ => assert_eq!(other_id, Err(InnerError::IdMismatch), "another ID"),
    }
    if let Some(parsed) = wire::parse(msg) {
        let normal = |r: Result<(), InnerError>| match r {
            Err(InnerError::NskRdata(_)) => Err(InnerError::NskRdata(WireError::Truncated)),
            other => other,
        };
        assert_eq!(normal(result.clone().map(|_| ())), normal(expected_inner(msg, &parsed, id, cp)), "check_inner");
    }
    let Ok(inner) = result else {
        assert!(out.is_empty(), "out is cleared");
        return;
    };
    let nsk = &inner.nsk;
    assert!(nsk.priority == 0 && nsk.ns_name == [0] && nsk.response_schemes.is_empty());
    assert!(scheme::is_symmetric(nsk.scheme));
    assert_eq!(out.len(), msg.len() - 11 - nsk.rdata_len(), "exactly the NSK record goes");
    assert_eq!(Some(inner.question_end), dns::question_end(msg));
    assert_eq!(&out[..10], &msg[..10]);
    assert_eq!(be16(&out, 10), be16(msg, 10) - 1, "ARCOUNT");
    assert_eq!(&out[HEADER_LEN..inner.question_end], &msg[HEADER_LEN..inner.question_end]);
    assert_eq!(check_inner(&out, id, cp, &mut Vec::new()), Err(InnerError::NoNsk));
    // The NSK record put back (last): it passes again, to the same.
    let mut again = out.clone();
    again[10..12].copy_from_slice(&be16(msg, 10).to_be_bytes());
    nsk.write_record(cp, &mut again);
    let mut out_again = Vec::new();
    assert_eq!(check_inner(&again, id, cp, &mut out_again), Ok(inner));
    assert_eq!(out_again, out);
}

/// The first rule of `check_inner`'s list that `msg` (strictly parsed) breaks; an RDATA that
/// does not read is `NskRdata(Truncated)` whatever the reason.
fn expected_inner(msg: &[u8], parsed: &wire::Message, id: u16, cp: &CodePoints) -> Result<(), InnerError> {
    use InnerError::*;
    if parsed.flags & 0x8000 != 0 {
        return Err(NotQuery);
    }
    if (parsed.flags >> 11) & 0x0f != 0 {
        return Err(NotOpcodeQuery);
    }
    if parsed.questions.len() != 1 {
        return Err(QuestionCount);
    }
    if parsed.id != id {
        return Err(IdMismatch);
    }
    if parsed.trailing != 0 {
        return Err(TrailingBytes);
    }
    if parsed.records.iter().any(|r| r.section != Section::Additional) {
        return Err(AnswerOrAuthority);
    }
    // Records follow one another: each starts where the one before ended.
    let mut start = parsed.questions[0].bytes.end;
    let (mut nsks, mut opt) = (Vec::new(), None);
    for record in &parsed.records {
        let this = (start, record);
        start = record.rdata.end;
        if record.rtype == cp.nsk_type {
            nsks.push(this);
        } else if record.rtype == TYPE_OPT {
            if opt.replace(this).is_some() {
                return Err(SeveralOpt);
            }
        } else {
            return Err(UnexpectedRecord);
        }
    }
    let literal_root = |(start, record): (usize, &wire::Record)| msg[start] == 0 && record.rdlen_at == start + 9;
    let nsk = match nsks[..] {
        [] => return Err(NoNsk),
        [nsk] => nsk,
        _ => return Err(SeveralNsk),
    };
    if opt.is_some_and(|o| !literal_root(o)) {
        return Err(OptOwner);
    }
    if !literal_root(nsk) {
        return Err(NskOwner);
    }
    let record = nsk.1;
    if be16(msg, record.rdlen_at - 6) != 1 {
        return Err(NskClass);
    }
    if be32(msg, record.rdlen_at - 4) != 0 {
        return Err(NskTtl);
    }
    let Some(rdata) = super::dnsenc_nsk::reference_rdata(&msg[record.rdata.clone()]) else {
        return Err(NskRdata(WireError::Truncated));
    };
    match rdata {
        Nsk { priority: 1.., .. } => Err(NskPriority),
        Nsk { ref ns_name, .. } if ns_name[..] != [0] => Err(NskName),
        Nsk { ref response_schemes, .. } if !response_schemes.is_empty() => Err(NskResponseSchemes),
        Nsk { scheme, .. } if scheme & 0x8000 == 0 => Err(NskScheme),
        _ => Ok(()),
    }
}

// ---- parse_response_envelope ------------------------------------------------------------------

/// A response envelope's fields, owned: ID, question, RCODE, TC, option.
type Fields = (u16, Vec<u8>, u16, bool, Option<(u32, Vec<u8>)>);

fn fields(envelope: &ResponseEnvelope<'_>) -> Fields {
    let option = envelope.option.map(|(key_id, payload)| (key_id, payload.to_vec()));
    (envelope.id, envelope.question.to_vec(), envelope.rcode, envelope.tc, option)
}

fn check_response(msg: &[u8], cp: &CodePoints) {
    let result = parse_response_envelope(msg, cp);
    if let Ok(envelope) = &result {
        let mut out = Vec::new();
        let rd = msg[2] & 1 != 0;
        let e = envelope;
        write_response_envelope(e.id, rd, e.question, e.rcode, e.tc, e.option, 1232, cp, &mut out);
        assert_eq!(parse_response_envelope(&out, cp).as_ref(), Ok(envelope), "written again");
    }
    if let Some(parsed) = wire::parse(msg) {
        let got = result.as_ref().ok().map(fields);
        assert_eq!(got, expected_response(msg, &parsed, cp), "parse_response_envelope");
    }
}

fn expected_response(msg: &[u8], parsed: &wire::Message, cp: &CodePoints) -> Option<Fields> {
    if parsed.flags & 0x8000 == 0 || (parsed.flags >> 11) & 0x0f != 0 {
        return None;
    }
    if parsed.questions.len() != 1 || parsed.trailing != 0 {
        return None;
    }
    let opts: Vec<&wire::Record> =
        parsed.records.iter().filter(|r| r.section == Section::Additional && r.rtype == TYPE_OPT).collect();
    let mut rcode = parsed.flags & 0x0f;
    let mut option = None;
    match opts[..] {
        [] => {}
        [opt] => {
            rcode |= u16::from(msg[opt.rdlen_at - 4]) << 4;
            let options = wire::options(msg, opt.rdata.clone())?;
            let dnsenc: Vec<&Range<usize>> =
                options.iter().filter(|(c, _)| *c == cp.option_code).map(|(_, r)| r).collect();
            match dnsenc[..] {
                [] => {}
                [range] if range.len() >= 8 => {
                    option = Some((be32(msg, range.start + 4), msg[range.start + 8..range.end].to_vec()));
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    let question = msg[parsed.questions[0].bytes.clone()].to_vec();
    Some((parsed.id, question, rcode, parsed.flags & 0x0200 != 0, option))
}

// ---- Seeds ------------------------------------------------------------------------------------

/// A query for `www.seed.test. AAAA` (ID 0x1234, RD) with `additional` records.
fn query(additional: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, additional.len() as u8];
    m.extend_from_slice(b"\x03www\x04seed\x04test\x00\x00\x1c\x00\x01");
    for record in additional {
        m.extend_from_slice(record);
    }
    m
}

/// An OPT record advertising 1232 bytes, holding `options` (whole options, code and length).
fn opt(options: &[u8]) -> Vec<u8> {
    let mut r = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    r.extend_from_slice(&(options.len() as u16).to_be_bytes());
    r.extend_from_slice(options);
    r
}

/// The seed corpus (`fuzz/corpus/dnsenc_outer/seed-NAME`): query envelopes, inner queries good
/// and bad, response envelopes, and queries around them.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let cp = CodePoints::default();
    let nsk = |nsk: Nsk| {
        let mut out = Vec::new();
        nsk.write_record(&cp, &mut out);
        out
    };
    let response_key = || Nsk::response_key(scheme::AES256_GCM, vec![0x11; 32]);
    let payload: Vec<u8> = (0..64).collect();
    let mut envelope = Vec::new();
    write_query_envelope(0x1234, true, &[7; 16], 1232, 42, &payload, &cp, &mut envelope);
    let question_end = dns::question_end(&envelope).expect("one question");
    let question = envelope[HEADER_LEN..question_end].to_vec();
    let mut answer = Vec::new();
    write_response_envelope(0x1234, true, &question, 0, false, Some((42, &payload)), 1232, &cp, &mut answer);
    let mut badcrypt = Vec::new();
    write_response_envelope(0x1234, true, &question, cp.badcrypt, false, None, 1232, &cp, &mut badcrypt);
    let mut refused = badcrypt.clone();
    refused.truncate(HEADER_LEN + question.len());
    refused[3] = 0x85;
    refused[11] = 0;
    let option = |data: &[u8]| {
        let mut o = cp.option_code.to_be_bytes().to_vec();
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        o
    };
    let sealed = [&[0, 0, 0, 42][..], &payload].concat();
    let outer = |options: &[u8]| {
        let mut m = envelope[..question_end].to_vec();
        m.extend(opt(options));
        m
    };
    vec![
        ("query-envelope", envelope.clone()),
        ("outer-no-option", outer(&[])),
        ("outer-option-twice", outer(&[option(&sealed), option(&sealed)].concat())),
        ("outer-short-option", outer(&option(&[0, 0, 1]))),
        ("inner-opt-then-nsk", query(&[opt(&[]), nsk(response_key())])),
        ("inner-nsk-then-opt", query(&[nsk(response_key()), opt(b"\x00\x0a\x00\x08cookie!!")])),
        ("inner-nsk-alone", query(&[nsk(Nsk::response_key(scheme::CHACHA20_POLY1305, vec![0x22; 32]))])),
        ("inner-priority", query(&[opt(&[]), nsk(Nsk { priority: 1, ..response_key() })])),
        ("inner-asymmetric", query(&[nsk(Nsk { scheme: scheme::X25519_HPKE, ..response_key() })])),
        ("inner-two-nsk", query(&[nsk(response_key()), nsk(response_key())])),
        ("response-envelope", answer),
        ("response-badcrypt", badcrypt),
        ("response-refused-no-opt", refused),
        ("plain-query", query(&[opt(&[])])),
    ]
}
