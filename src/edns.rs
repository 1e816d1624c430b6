//! The EDNS(0) options that belong to the TLS hop, not to the backend (RFC 6891 §6.1.1 lets a
//! proxy act on them): TCP keepalive (RFC 7828) and padding (RFC 7830, block-length policy of
//! RFC 8467 §4.1). A query's options are taken out before it goes to the UDP backend (which
//! would apply them to UDP, or pad its answer for nothing); the answer gets them back as this
//! hop's values: dotgate's idle timeout, and padding to a multiple of 468 bytes.
//!
//! Also dotgate's own answers with an Extended DNS Error (RFC 8914), and the OPT record walkers
//! (`find_opt`, `options`, `records_end`) that `relay::ecs` shares for the Client Subnet option.
//!
//! Works on wire bytes. It never panics on any input (a record that does not parse means "no
//! OPT record"), and it never allocates: callers pass the buffer to write into. The common
//! path, a query without these options, only walks to the OPT record and back.

use std::ops::Range;

/// EDNS option code of TCP keepalive (RFC 7828).
pub const KEEPALIVE: u16 = 11;
/// EDNS option code of padding (RFC 7830).
pub const PADDING: u16 = 12;
/// Answers are padded to a multiple of this (RFC 8467 §4.1: "Block-Length Padding", responses).
pub const PADDING_BLOCK: usize = 468;
/// EDNS option code of Extended DNS Error (RFC 8914).
pub const EDE: u16 = 15;

/// The Extended DNS Error INFO-CODEs dotgate answers with (RFC 8914 §4).
pub mod ede {
    /// "Prohibited" (§4.19): the client is refused by policy (dotgate: a rate limit, say).
    pub const PROHIBITED: u16 = 18;
}

const TYPE_OPT: u16 = 41;
/// The UDP payload size written into an OPT record dotgate adds to an answer that had none.
const ADDED_OPT_PAYLOAD_SIZE: u16 = 1232;
const HEADER_LEN: usize = crate::dns::HEADER_LEN;

/// What a query asked of this hop. Packs into the relay's per-query tag.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HopOptions {
    /// The query carried edns-tcp-keepalive: the answer states the idle timeout.
    pub keepalive: bool,
    /// Pad the answer (the query carried Padding, or the policy pads every answer).
    pub padding: bool,
}

impl HopOptions {
    pub fn to_tag(self) -> u8 {
        u8::from(self.keepalive) | (u8::from(self.padding) << 1)
    }

    pub fn from_tag(tag: u8) -> HopOptions {
        HopOptions { keepalive: tag & 1 != 0, padding: tag & 2 != 0 }
    }

    pub fn any(self) -> bool {
        self.keepalive || self.padding
    }
}

/// Where a message's OPT record sits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptRecord {
    /// Offset of the record's first byte (its owner name).
    pub(crate) start: usize,
    /// Offset of its RDLENGTH field.
    pub(crate) rdlen_at: usize,
    /// Its RDATA, the options.
    pub(crate) rdata: (usize, usize),
}

/// Reads the hop options of `query` (a checked query whose question ends at `question_end`).
/// When it carries any, writes to `stripped` the query without them (the OPT record stays, its
/// length fixed) and returns true: that is what goes to the backend. A query with anything
/// after its OPT record is never rewritten (false).
pub fn take_query_options(query: &[u8], question_end: usize, stripped: &mut Vec<u8>) -> (HopOptions, bool) {
    let mut hop = HopOptions::default();
    let Ok(Some(opt)) = find_opt(query, question_end) else { return (hop, false) };
    for (code, _) in options(query, opt) {
        match code {
            KEEPALIVE => hop.keepalive = true,
            PADDING => hop.padding = true,
            _ => {}
        }
    }
    // Records after the OPT record (a TSIG, say) would move if it shrank, and a signature over
    // them or a compression pointer into them would break: such a query goes as it is. (The
    // hop options still apply to the answer.)
    if !hop.any() || opt.rdata.1 != query.len() {
        return (hop, false);
    }
    stripped.clear();
    stripped.extend_from_slice(&query[..opt.rdata.0]);
    for (code, range) in options(query, opt) {
        if code != KEEPALIVE && code != PADDING {
            stripped.extend_from_slice(&query[range]);
        }
    }
    let rdlen = (stripped.len() - opt.rdata.0) as u16;
    stripped[opt.rdlen_at..opt.rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    stripped.extend_from_slice(&query[opt.rdata.1..]);
    (hop, true)
}

/// Appends `answer` to `out` as this hop sends it: any keepalive or padding option the backend
/// put in is dropped; edns-tcp-keepalive with `idle_timeout_100ms` is added when `hop.keepalive`;
/// padding to a multiple of `PADDING_BLOCK` (counting the whole message) when `hop.padding`. An
/// answer without an OPT record gets one. An answer that does not parse, has anything after its
/// OPT record, or would grow past 65,535 bytes, is appended as it is.
pub fn append_answer(answer: &[u8], hop: HopOptions, idle_timeout_100ms: u16, out: &mut Vec<u8>) {
    let start = out.len();
    let question_end = match crate::dns::question_end(answer) {
        Some(end) if hop.any() => end,
        _ => {
            out.extend_from_slice(answer);
            return;
        }
    };
    let (rdlen_at, rest) = match find_opt(answer, question_end) {
        Err(Malformed) => {
            out.extend_from_slice(answer);
            return;
        }
        // As for queries: what follows the OPT record must not move (see `take_query_options`).
        Ok(Some(opt)) if opt.rdata.1 != answer.len() => {
            out.extend_from_slice(answer);
            return;
        }
        Ok(Some(opt)) => {
            out.extend_from_slice(&answer[..opt.rdata.0]);
            for (code, range) in options(answer, opt) {
                if code != KEEPALIVE && code != PADDING {
                    out.extend_from_slice(&answer[range]);
                }
            }
            (start + opt.rdlen_at, &answer[opt.rdata.1..])
        }
        Ok(None) => {
            // No OPT record: add one at the end, and count it in ARCOUNT.
            out.extend_from_slice(answer);
            let arcount = u16::from_be_bytes([answer[10], answer[11]]).saturating_add(1);
            out[start + 10..start + 12].copy_from_slice(&arcount.to_be_bytes());
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&ADDED_OPT_PAYLOAD_SIZE.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            (out.len() - 2, &[][..])
        }
    };
    if hop.keepalive {
        out.extend_from_slice(&KEEPALIVE.to_be_bytes());
        out.extend_from_slice(&2u16.to_be_bytes());
        out.extend_from_slice(&idle_timeout_100ms.to_be_bytes());
    }
    if hop.padding {
        let unpadded = out.len() - start + 4 + rest.len();
        let fill = (PADDING_BLOCK - unpadded % PADDING_BLOCK) % PADDING_BLOCK;
        if unpadded + fill <= u16::MAX as usize {
            out.extend_from_slice(&PADDING.to_be_bytes());
            out.extend_from_slice(&(fill as u16).to_be_bytes());
            out.resize(out.len() + fill, 0);
        }
    }
    let rdlen = out.len() - rdlen_at - 2;
    if out.len() - start + rest.len() > u16::MAX as usize || rdlen > u16::MAX as usize {
        out.truncate(start);
        out.extend_from_slice(answer);
        return;
    }
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    out.extend_from_slice(rest);
}

/// What a query's OPT record says about the answer it wants: the UDP payload size it can take
/// and whether it asked for DNSSEC records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryEdns {
    /// The advertised UDP payload size, never below 512 (RFC 6891 §6.2.5; 512 without EDNS).
    pub udp_payload: u16,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
}

/// The size of a UDP answer without EDNS (RFC 1035 §2.3.4).
pub const PLAIN_UDP_PAYLOAD: u16 = 512;

/// Reads [`QueryEdns`] of `query` (a checked query whose question ends at `question_end`). A
/// query without an OPT record, or whose records do not parse, asks for 512 bytes, no DNSSEC.
/// On the per-query path when the TCP memory holds anything: walks to the OPT record, no more.
pub fn query_edns(query: &[u8], question_end: usize) -> QueryEdns {
    match find_opt(query, question_end) {
        Ok(Some(opt)) => {
            // CLASS (payload size) and the TTL field's flags sit before RDLENGTH.
            let at = opt.rdlen_at;
            QueryEdns {
                udp_payload: u16::from_be_bytes([query[at - 6], query[at - 5]]).max(PLAIN_UDP_PAYLOAD),
                dnssec_ok: query[at - 2] & 0x80 != 0,
            }
        }
        _ => QueryEdns { udp_payload: PLAIN_UDP_PAYLOAD, dnssec_ok: false },
    }
}

/// Appends to `out` dotgate's own answer to `query` with `rcode` (as dns::write_local_answer:
/// ID `id`, opcode/RD/CD copied, the question when well-formed, no records) and, when the query
/// carried an OPT record, an OPT record (UDP payload 1232, DO copied from the query) holding one
/// EDE option with `info_code` and `extra_text`. A query without EDNS gets no OPT (RFC 6891).
///
/// An RCODE above 15 puts its upper bits in the OPT record's EXTENDED-RCODE (and, without an
/// OPT record, only its lower four bits are sent). `extra_text` is cut, at a character
/// boundary, when the answer would otherwise pass 65,535 bytes. Never panics on any `query`.
pub fn write_local_answer_with_ede(
    query: &[u8],
    id: u16,
    rcode: u8,
    info_code: u16,
    extra_text: &str,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    crate::dns::write_local_answer(query, id, rcode, out);
    let Some(dnssec_ok) = query_opt_do_bit(query) else { return };
    out[start + 10..start + 12].copy_from_slice(&1u16.to_be_bytes());
    // The OPT record's fixed part (11 bytes) and the EDE option's header and INFO-CODE (6).
    let room = u16::MAX as usize - (out.len() - start) - 11 - 6;
    let mut text_len = extra_text.len().min(room);
    while !extra_text.is_char_boundary(text_len) {
        text_len -= 1;
    }
    let text = &extra_text.as_bytes()[..text_len];
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&ADDED_OPT_PAYLOAD_SIZE.to_be_bytes());
    // TTL: EXTENDED-RCODE, VERSION 0, the DO bit, the rest of the flags zero.
    out.extend_from_slice(&[rcode >> 4, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    out.extend_from_slice(&((4 + 2 + text.len()) as u16).to_be_bytes());
    out.extend_from_slice(&EDE.to_be_bytes());
    out.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
    out.extend_from_slice(&info_code.to_be_bytes());
    out.extend_from_slice(text);
}

/// The DO bit of `query`'s OPT record, `None` when it has none (or its records do not parse).
/// Reads any number of questions: local answers are also made for queries with none or two.
fn query_opt_do_bit(query: &[u8]) -> Option<bool> {
    if query.len() < HEADER_LEN {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..crate::dns::qdcount(query) {
        pos = crate::dns::skip_name(query, pos)? + 4;
    }
    let opt = find_opt(query, pos).ok()??;
    Some(query[opt.rdlen_at - 2] & 0x80 != 0)
}

/// A record that does not parse.
#[derive(Debug)]
pub(crate) struct Malformed;

/// Finds the OPT record in the additional section of `msg`, whose single question ends at
/// `question_end`: `Ok(None)` when there is none.
pub(crate) fn find_opt(msg: &[u8], question_end: usize) -> Result<Option<OptRecord>, Malformed> {
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    if msg.len() < HEADER_LEN {
        return Err(Malformed);
    }
    let (answers, authority, additional) = (count(6), count(8), count(10));
    if additional == 0 {
        return Ok(None);
    }
    let mut pos = question_end;
    for index in 0..answers + authority + additional {
        let start = pos;
        pos = crate::dns::skip_name(msg, pos).ok_or(Malformed)?;
        let fixed = msg.get(pos..pos + 10).ok_or(Malformed)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = (pos + 10, pos + 10 + rdlen);
        if rdata.1 > msg.len() {
            return Err(Malformed);
        }
        if rtype == TYPE_OPT && index >= answers + authority {
            return Ok(Some(OptRecord { start, rdlen_at: pos + 8, rdata }));
        }
        pos = rdata.1;
    }
    Ok(None)
}

/// Offset just past the last record of `msg` (its answer, authority and additional sections,
/// after its single question, which ends at `question_end`): where its records end, to compare
/// with its length. `None` when a record does not parse.
pub(crate) fn records_end(msg: &[u8], question_end: usize) -> Option<usize> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    let mut pos = question_end;
    for _ in 0..count(6) + count(8) + count(10) {
        pos = crate::dns::skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10)?;
        pos += 10 + u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        if pos > msg.len() {
            return None;
        }
    }
    (pos <= msg.len()).then_some(pos)
}

/// The options in an OPT record's RDATA, as (code, whole option's byte range). Stops at the
/// first option that overruns the RDATA.
pub(crate) fn options(msg: &[u8], opt: OptRecord) -> impl Iterator<Item = (u16, Range<usize>)> + '_ {
    let mut pos = opt.rdata.0;
    std::iter::from_fn(move || {
        let head = msg.get(pos..pos + 4).filter(|_| pos + 4 <= opt.rdata.1)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let end = pos + 4 + u16::from_be_bytes([head[2], head[3]]) as usize;
        if end > opt.rdata.1 {
            return None;
        }
        let range = pos..end;
        pos = end;
        Some((code, range))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for "a.example. A" with an OPT record holding `options`.
    fn query_with(options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x01a\x07example\x00\x00\x01\x00\x01");
        let mut rdata = Vec::new();
        for (code, data) in options {
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(data);
        }
        q.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0]);
        q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        q.extend_from_slice(&rdata);
        q
    }

    fn option_codes(msg: &[u8]) -> Vec<(u16, usize)> {
        let end = crate::dns::question_end(msg).unwrap();
        let opt = find_opt(msg, end).unwrap().expect("an OPT record");
        options(msg, opt).map(|(code, range)| (code, range.len() - 4)).collect()
    }

    #[test]
    fn a_query_without_hop_options_is_left_alone() {
        let q = query_with(&[(10, &[1; 8])]);
        let mut out = Vec::new();
        assert_eq!(
            take_query_options(&q, crate::dns::question_end(&q).unwrap(), &mut out),
            (HopOptions::default(), false)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn hop_options_are_taken_out_and_the_rest_kept() {
        let q = query_with(&[(KEEPALIVE, &[]), (10, &[7; 8]), (PADDING, &[0; 30])]);
        let mut out = Vec::new();
        let (hop, stripped) = take_query_options(&q, crate::dns::question_end(&q).unwrap(), &mut out);
        assert_eq!(hop, HopOptions { keepalive: true, padding: true });
        assert!(stripped);
        assert_eq!(option_codes(&out), vec![(10, 8)]);
        assert_eq!(out.len(), q.len() - 4 - 34);
    }

    #[test]
    fn answers_get_keepalive_and_padding() {
        let answer = query_with(&[(PADDING, &[0; 100]), (KEEPALIVE, &[0, 5])]);
        let mut out = Vec::new();
        append_answer(&answer, HopOptions { keepalive: true, padding: true }, 100, &mut out);
        assert_eq!(out.len() % PADDING_BLOCK, 0);
        let codes = option_codes(&out);
        assert_eq!(codes[0], (KEEPALIVE, 2));
        assert_eq!(codes[1].0, PADDING);
        assert_eq!(codes.len(), 2, "the backend's own keepalive and padding are gone");
        let end = crate::dns::question_end(&out).unwrap();
        let opt = find_opt(&out, end).unwrap().unwrap();
        assert_eq!(&out[opt.rdata.0 + 4..opt.rdata.0 + 6], &100u16.to_be_bytes());
    }

    #[test]
    fn an_answer_without_opt_gets_one() {
        let mut answer = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        answer.extend_from_slice(b"\x01a\x07example\x00\x00\x01\x00\x01");
        let mut out = Vec::new();
        append_answer(&answer, HopOptions { keepalive: true, padding: false }, 30, &mut out);
        assert_eq!(u16::from_be_bytes([out[10], out[11]]), 1);
        assert_eq!(option_codes(&out), vec![(KEEPALIVE, 2)]);
        let mut padded = Vec::new();
        append_answer(&answer, HopOptions { keepalive: false, padding: true }, 30, &mut padded);
        assert_eq!(padded.len(), PADDING_BLOCK);
    }

    #[test]
    fn without_hop_options_the_answer_is_copied() {
        let answer = query_with(&[(PADDING, &[0; 10])]);
        let mut out = vec![9];
        append_answer(&answer, HopOptions::default(), 30, &mut out);
        assert_eq!(&out[1..], &answer[..]);
    }

    /// Glue after the OPT record whose second name points at the first: resizing the OPT record
    /// would leave that pointer aiming into other bytes (and a TSIG after it would no longer
    /// verify). Found by reasoning over a finding of the `edns` fuzz target.
    fn answer_with_glue_after_opt() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 3];
        m.extend_from_slice(b"\x01a\x07example\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 8, 0, 11, 0, 0, 0, 12, 0, 0]);
        let glue = m.len();
        m.extend_from_slice(b"\x02ns\x07example\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01");
        m.extend_from_slice(&[0xc0 | (glue >> 8) as u8, glue as u8, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        m
    }

    #[test]
    fn nothing_after_the_opt_record_is_ever_moved() {
        let answer = answer_with_glue_after_opt();
        for bits in 1..4 {
            let mut out = Vec::new();
            append_answer(&answer, HopOptions::from_tag(bits), 100, &mut out);
            assert_eq!(out, answer, "hop {bits}: the records after the OPT record moved");
        }
        let mut query = answer.clone();
        query[2] = 0x01;
        let mut stripped = Vec::new();
        let end = crate::dns::question_end(&query).unwrap();
        assert_eq!(
            take_query_options(&query, end, &mut stripped),
            (HopOptions { keepalive: true, padding: true }, false),
            "the hop options are still read, and the query goes as it is"
        );
    }

    #[test]
    fn query_edns_reads_payload_size_and_do() {
        let q = query_with(&[(10, &[1; 8])]);
        let end = crate::dns::question_end(&q).unwrap();
        assert_eq!(query_edns(&q, end), QueryEdns { udp_payload: 4096, dnssec_ok: true });
        let mut small = q.clone();
        small[end + 3..end + 5].copy_from_slice(&100u16.to_be_bytes());
        small[end + 7] = 0;
        assert_eq!(query_edns(&small, end), QueryEdns { udp_payload: 512, dnssec_ok: false }, "never below 512");
        let plain = &q[..end];
        let mut plain = plain.to_vec();
        plain[11] = 0;
        assert_eq!(query_edns(&plain, end), QueryEdns { udp_payload: 512, dnssec_ok: false });
        for cut in end..q.len() {
            assert_eq!(query_edns(&q[..cut], end).udp_payload, 512, "a cut OPT record is no OPT record");
        }
    }

    /// dotgate's REFUSED with an EDE, read back by hickory-proto.
    fn ede_answer(query: &[u8]) -> (Vec<u8>, hickory_proto::op::Message) {
        let mut out = vec![0xaa];
        write_local_answer_with_ede(query, 0xbeef, 5, ede::PROHIBITED, "rate limited", &mut out);
        assert_eq!(out[0], 0xaa, "appends");
        let out = out[1..].to_vec();
        let parsed = hickory_proto::op::Message::from_vec(&out).expect("hickory-proto reads the answer");
        (out, parsed)
    }

    #[test]
    fn local_answer_with_ede_carries_it_when_the_query_had_edns() {
        use hickory_proto::op::{MessageType, ResponseCode};
        use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
        let q = query_with(&[(10, &[1; 8])]);
        let (out, answer) = ede_answer(&q);
        assert_eq!(answer.id(), 0xbeef);
        assert_eq!(answer.message_type(), MessageType::Response);
        assert_eq!(answer.response_code(), ResponseCode::Refused);
        assert_eq!(answer.queries().len(), 1);
        assert_eq!(answer.queries()[0].name().to_ascii(), "a.example.");
        assert!(answer.answers().is_empty() && answer.name_servers().is_empty());
        let edns = answer.extensions().as_ref().expect("an OPT record");
        assert_eq!(edns.max_payload(), 1232);
        assert!(edns.flags().dnssec_ok, "DO copied from the query");
        assert_eq!(edns.version(), 0);
        assert_eq!(edns.options().as_ref().len(), 1, "only the EDE option, not the query's cookie");
        let mut ede = 18u16.to_be_bytes().to_vec();
        ede.extend_from_slice(b"rate limited");
        assert_eq!(edns.option(EdnsCode::Unknown(EDE)), Some(&EdnsOption::Unknown(EDE, ede)));
        // The exact bytes of the OPT record after the question.
        let end = crate::dns::question_end(&out).unwrap();
        let mut opt = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 18, 0, 15, 0, 14, 0, 18];
        opt.extend_from_slice(b"rate limited");
        assert_eq!(&out[end..], &opt[..]);
        assert_eq!(u16::from_be_bytes([out[10], out[11]]), 1, "ARCOUNT");

        let mut no_do = q.clone();
        no_do[end + 7] = 0;
        assert!(!ede_answer(&no_do).1.extensions().as_ref().unwrap().flags().dnssec_ok, "DO copied when clear too");
    }

    #[test]
    fn local_answer_with_ede_has_no_opt_when_the_query_had_no_edns() {
        use hickory_proto::op::ResponseCode;
        let with_opt = query_with(&[]);
        let end = crate::dns::question_end(&with_opt).unwrap();
        let mut plain = with_opt[..end].to_vec();
        plain[11] = 0;
        let (out, answer) = ede_answer(&plain);
        assert_eq!(answer.response_code(), ResponseCode::Refused);
        assert!(answer.extensions().is_none());
        assert!(answer.additionals().is_empty());
        let mut expected = Vec::new();
        crate::dns::write_local_answer(&plain, 0xbeef, 5, &mut expected);
        assert_eq!(out, expected, "exactly dns::write_local_answer");
        // ARCOUNT says 1 but the record is cut off: no OPT record found, none written.
        let mut cut = with_opt.clone();
        cut.truncate(cut.len() - 3);
        assert!(ede_answer(&cut).1.extensions().is_none());
    }

    #[test]
    fn local_answer_with_ede_on_odd_queries() {
        // No question, but an OPT record: it still gets the EDE.
        let q = query_with(&[]);
        let end = crate::dns::question_end(&q).unwrap();
        let mut no_question = q[..HEADER_LEN].to_vec();
        no_question[5] = 0;
        no_question.extend_from_slice(&q[end..]);
        let (out, answer) = ede_answer(&no_question);
        assert!(answer.queries().is_empty());
        assert!(answer.extensions().is_some());
        assert_eq!(out.len(), HEADER_LEN + 11 + 4 + 2 + 12);
        // An RCODE above 15 puts its upper bits in EXTENDED-RCODE (BADCOOKIE, 23).
        let mut out = Vec::new();
        write_local_answer_with_ede(&q, 1, 23, 0, "", &mut out);
        assert_eq!(out[3] & 0x0f, 23 & 0x0f);
        assert_eq!(out[end + 5], 1);
        // A text too long for a message is cut at a character boundary.
        let long = "é".repeat(40_000);
        let mut out = Vec::new();
        write_local_answer_with_ede(&q, 1, 5, 18, &long, &mut out);
        assert!(out.len() <= u16::MAX as usize && out.len() > 65_000);
        let text_at = end + 11 + 6;
        assert!(std::str::from_utf8(&out[text_at..]).is_ok());
        assert_eq!(u16::from_be_bytes([out[end + 9], out[end + 10]]) as usize, out.len() - end - 11);
        // Garbage never panics.
        for cut in 0..q.len() {
            let mut out = Vec::new();
            write_local_answer_with_ede(&q[..cut], 7, 5, 18, "x", &mut out);
        }
        let mut out = Vec::new();
        write_local_answer_with_ede(
            &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            7,
            5,
            18,
            "x",
            &mut out,
        );
        assert_eq!(out.len(), HEADER_LEN);
    }

    #[test]
    fn broken_records_never_panic() {
        let q = query_with(&[(KEEPALIVE, &[]), (PADDING, &[0; 3])]);
        for cut in 0..q.len() {
            let part = &q[..cut];
            if let Some(end) = crate::dns::question_end(part) {
                let mut out = Vec::new();
                let _ = take_query_options(part, end, &mut out);
                let mut out = Vec::new();
                append_answer(part, HopOptions { keepalive: true, padding: true }, 1, &mut out);
            }
        }
        // An option length that overruns the record.
        let mut bad = query_with(&[(KEEPALIVE, &[])]);
        let len = bad.len();
        bad[len - 1] = 0xff;
        let mut out = Vec::new();
        let _ = take_query_options(&bad, crate::dns::question_end(&bad).unwrap(), &mut out);
    }
}
