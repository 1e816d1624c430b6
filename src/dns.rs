//! DNS wire helpers for the per-query path: header fields, the single question, the query
//! check, and the few answers dotgate makes itself (FORMERR, NOTIMP, SERVFAIL).
//!
//! Hand-rolled on purpose (as in encrypted-dns-server's `dns.rs`): the hot path only ever needs
//! the 12-byte header and the question, and a full DNS library would parse and allocate for
//! every record. This module never allocates, and reads resource records in one place only,
//! off the per-query path: the TTL walk of an answer fetched over TCP (`answer_min_ttl`, for
//! the relay's TCP memory). Tests and tools use hickory-proto instead.

/// Length of the fixed DNS header (RFC 1035 §4.1.1); shorter messages are not DNS.
pub const HEADER_LEN: usize = 12;

/// Longest domain name on the wire, in octets (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;

/// The response codes dotgate sets on answers it makes itself.
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
}

/// The only opcode dotgate relays (RFC 1035 §4.1.1).
const OPCODE_QUERY: u8 = 0;

/// The message ID. Callers guarantee `msg.len() >= HEADER_LEN`.
#[inline]
pub fn id(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[0], msg[1]])
}

/// Overwrites the message ID in place. Callers guarantee `msg.len() >= HEADER_LEN`.
#[inline]
pub fn set_id(msg: &mut [u8], id: u16) {
    msg[..2].copy_from_slice(&id.to_be_bytes());
}

/// QR: set on responses.
#[inline]
pub fn is_response(msg: &[u8]) -> bool {
    msg[2] & 0x80 != 0
}

#[inline]
pub fn opcode(msg: &[u8]) -> u8 {
    (msg[2] >> 3) & 0x0f
}

/// TC: the answer did not fit and must be asked again over TCP.
#[inline]
pub fn is_truncated(msg: &[u8]) -> bool {
    msg[2] & 0x02 != 0
}

#[inline]
pub fn rcode(msg: &[u8]) -> u8 {
    msg[3] & 0x0f
}

#[inline]
pub fn qdcount(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[4], msg[5]])
}

/// Offset just past the question (name, type, class) that starts right after the header, or
/// `None` when it is not a well-formed uncompressed name followed by type and class.
///
/// A compression pointer cannot be valid here: nothing precedes the first name to point at.
pub fn question_end(msg: &[u8]) -> Option<usize> {
    let mut pos = HEADER_LEN;
    loop {
        let label_len = *msg.get(pos)? as usize;
        if label_len == 0 {
            pos += 1;
            break;
        }
        if label_len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + label_len;
        // The root label's octet still follows: it counts towards the 255 too.
        if pos - HEADER_LEN + 1 > MAX_NAME_LEN {
            return None;
        }
    }
    let end = pos + 4;
    (end <= msg.len()).then_some(end)
}

/// Whether two question sections (name, type, class, as sliced by [`question_end`]) ask the
/// same thing: names compared ASCII-case-insensitively (RFC 4343), type and class exactly.
///
/// Label length octets are below 64 and so never change under ASCII case folding, which lets
/// the name be compared as one run of bytes.
pub fn same_question(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.len() < 5 {
        return false;
    }
    let name_len = a.len() - 4;
    a[..name_len].eq_ignore_ascii_case(&b[..name_len]) && a[name_len..] == b[name_len..]
}

/// Whether `answer` (a response) carries exactly the question `asked` (as sliced from the
/// query by [`question_end`]): one question, the same name, type and class.
pub fn answers_question(answer: &[u8], asked: &[u8]) -> bool {
    answer.len() >= HEADER_LEN
        && qdcount(answer) == 1
        && question_end(answer).is_some_and(|end| same_question(&answer[HEADER_LEN..end], asked))
}

/// Whether `answer` (a response) is an error that carries no question at all: FORMERR,
/// SERVFAIL, NOTIMP or REFUSED with QDCOUNT 0. Servers may leave the question out of those
/// (Unbound's `access-control` refusal is a bare 12-byte header); such an answer is matched by
/// source and ID alone (it can only say "no", never poison), and the client gets it with its
/// question put back (see `write_local_answer`).
pub fn is_questionless_error(answer: &[u8]) -> bool {
    answer.len() >= HEADER_LEN
        && qdcount(answer) == 0
        && matches!(rcode(answer), rcode::FORMERR | rcode::SERVFAIL | rcode::NOTIMP | rcode::REFUSED)
}

/// Offset just past the (possibly compressed) name at `pos`, or `None` when it runs off the
/// message or uses a reserved label type.
pub fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0 if len == 0 => return Some(pos + 1),
            0 => pos += 1 + len,
            0xc0 => return msg.get(pos + 1).map(|_| pos + 2),
            _ => return None,
        }
    }
}

const TYPE_SOA: u16 = 6;
const TYPE_OPT: u16 = 41;
const RCODE_NXDOMAIN: u8 = 3;

/// How long `answer` may be reused, in seconds: the smallest TTL among its answer, authority
/// and additional records (the OPT pseudo-record left out, its "TTL" holds flags). In a
/// negative answer (NXDOMAIN, or no answer records) an SOA counts with the smaller of its TTL
/// and its MINIMUM field, as a negative answer is cached (RFC 2308 §5). A TTL with the top bit
/// set counts as 0 (RFC 2181 §8).
///
/// `None` when the answer has no such record or does not parse to its last record: the caller
/// keeps its own cap. Never panics, whatever the bytes.
pub fn answer_min_ttl(answer: &[u8]) -> Option<u32> {
    let count = |at: usize| u16::from_be_bytes([answer[at], answer[at + 1]]) as usize;
    if answer.len() < HEADER_LEN {
        return None;
    }
    let (questions, answers, authority, additional) = (count(4), count(6), count(8), count(10));
    let negative = answers == 0 || rcode(answer) == RCODE_NXDOMAIN;
    let mut pos = HEADER_LEN;
    for _ in 0..questions {
        pos = skip_name(answer, pos)?.checked_add(4)?;
    }
    let mut smallest: Option<u32> = None;
    for _ in 0..answers + authority + additional {
        pos = skip_name(answer, pos)?;
        let fixed = answer.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = answer.get(pos + 10..pos + 10 + rdlen)?;
        pos += 10 + rdlen;
        if rtype == TYPE_OPT {
            continue;
        }
        let mut ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
        // MINIMUM is the last of the SOA's five 32-bit fields, after two names of 1+ octets.
        if rtype == TYPE_SOA && negative && rdata.len() >= 22 {
            let minimum = &rdata[rdata.len() - 4..];
            ttl = ttl.min(u32::from_be_bytes([minimum[0], minimum[1], minimum[2], minimum[3]]));
        }
        smallest = Some(smallest.map_or(ttl, |s| s.min(ttl)));
    }
    smallest
}

/// What the frontend does with a message a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryVerdict {
    /// A well-formed single-question QUERY: relay it. The question ends at this offset.
    Relay { question_end: usize },
    /// Answer locally with this RCODE; never forwarded.
    Answer(u8),
    /// A response (QR=1) sent by a client: not a DNS client, close the connection.
    Close,
}

/// Decides what to do with a client message of at least [`HEADER_LEN`] bytes.
pub fn check_query(msg: &[u8]) -> QueryVerdict {
    if msg.len() < HEADER_LEN || is_response(msg) {
        return QueryVerdict::Close;
    }
    if opcode(msg) != OPCODE_QUERY {
        return QueryVerdict::Answer(rcode::NOTIMP);
    }
    if qdcount(msg) != 1 {
        return QueryVerdict::Answer(rcode::FORMERR);
    }
    match question_end(msg) {
        Some(question_end) => QueryVerdict::Relay { question_end },
        None => QueryVerdict::Answer(rcode::FORMERR),
    }
}

/// Appends to `out` an answer dotgate makes itself for `query`: the query's ID, opcode, RD and
/// CD, QR set, the given RCODE, and the question when the query has one well-formed question.
/// No records: nothing is claimed that the backend did not say. `id` is the ID to answer with.
pub fn write_local_answer(query: &[u8], id: u16, rcode: u8, out: &mut Vec<u8>) {
    let opcode_and_rd = query.get(2).map_or(0, |b| b & 0x79);
    let cd = query.get(3).map_or(0, |b| b & 0x10);
    let question = if query.len() >= HEADER_LEN && qdcount(query) == 1 {
        question_end(query).map(|end| &query[HEADER_LEN..end])
    } else {
        None
    };
    // RA is set on SERVFAIL because the service behind dotgate does recurse; on FORMERR and
    // NOTIMP nothing was attempted.
    let ra = if rcode == rcode::SERVFAIL { 0x80 } else { 0 };
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0x80 | opcode_and_rd);
    out.push(ra | cd | (rcode & 0x0f));
    out.extend_from_slice(&[0, question.is_some() as u8, 0, 0, 0, 0, 0, 0]);
    if let Some(question) = question {
        out.extend_from_slice(question);
    }
}

/// A wire-format name (uncompressed, as checked by [`question_end`]) in presentation form, as a
/// zone file holds it: ending with a dot, "." for the root (see [`push_label_text`]). For logs
/// and the DNSENC tools; allocates: never on the default path. Stops at a compression pointer.
pub fn display_name(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        push_label_text(&mut out, wire.get(pos + 1..pos + 1 + len as usize).unwrap_or_default());
        out.push('.');
        pos += 1 + len as usize;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Appends one label as zone-file text: printable characters as they are, except
/// `. \ " ( ) ; @ $` escaped with a backslash; every other byte as `\DDD` (RFC 1035 §5.1).
pub fn push_label_text(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                out.push('\\');
                out.push(b as char);
            }
            0x21..=0x7e => out.push(b as char),
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(name);
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&[0, 1]);
        msg
    }

    #[test]
    fn well_formed_query_is_relayed() {
        let q = query(b"\x03www\x07example\x00", 1);
        assert_eq!(check_query(&q), QueryVerdict::Relay { question_end: q.len() });
    }

    #[test]
    fn response_from_client_closes() {
        let mut q = query(b"\x00", 1);
        q[2] |= 0x80;
        assert_eq!(check_query(&q), QueryVerdict::Close);
    }

    #[test]
    fn other_opcode_is_notimp_and_bad_question_is_formerr() {
        let mut q = query(b"\x00", 1);
        q[2] |= 4 << 3; // NOTIFY
        assert_eq!(check_query(&q), QueryVerdict::Answer(rcode::NOTIMP));
        let mut two = query(b"\x00", 1);
        two[5] = 2;
        assert_eq!(check_query(&two), QueryVerdict::Answer(rcode::FORMERR));
        let truncated_name = query(b"\x05ab", 1);
        assert_eq!(check_query(&truncated_name[..15]), QueryVerdict::Answer(rcode::FORMERR));
        let pointer = query(b"\xc0\x0c", 1);
        assert_eq!(check_query(&pointer), QueryVerdict::Answer(rcode::FORMERR));
    }

    #[test]
    fn overlong_name_is_formerr() {
        let mut name = Vec::new();
        for _ in 0..5 {
            name.push(63);
            name.extend_from_slice(&[b'a'; 63]);
        }
        name.push(0);
        assert_eq!(check_query(&query(&name, 1)), QueryVerdict::Answer(rcode::FORMERR));
    }

    #[test]
    fn names_of_255_octets_pass_and_of_256_are_formerr() {
        // Three 63-octet labels and one of `last`, with the root: 193 + 1 + last + 1 octets.
        let name = |last: usize| {
            let mut name = Vec::new();
            for len in [63, 63, 63, last] {
                name.push(len as u8);
                name.extend(std::iter::repeat_n(b'a', len));
            }
            name.push(0);
            name
        };
        let longest = query(&name(61), 1);
        assert_eq!(longest.len() - HEADER_LEN - 4, 255);
        assert_eq!(check_query(&longest), QueryVerdict::Relay { question_end: longest.len() });
        // Found by the `query` fuzz target: 256 octets were relayed (Unbound answers FORMERR).
        let too_long = query(&name(62), 1);
        assert_eq!(check_query(&too_long), QueryVerdict::Answer(rcode::FORMERR));
    }

    #[test]
    fn questions_compare_case_insensitively_but_types_exactly() {
        let a = query(b"\x03WwW\x07example\x00", 1);
        let b = query(b"\x03www\x07EXAMPLE\x00", 1);
        assert!(same_question(&a[12..], &b[12..]));
        // Type 65 (0x0041, 'A') vs 97 (0x0061, 'a') must not fold together.
        let https = query(b"\x03www\x00", 65);
        let other = query(b"\x03www\x00", 97);
        assert!(!same_question(&https[12..], &other[12..]));
    }

    #[test]
    fn local_answer_keeps_id_question_and_flags() {
        let q = query(b"\x03www\x00", 28);
        let mut out = Vec::new();
        write_local_answer(&q, 0xbeef, rcode::SERVFAIL, &mut out);
        assert_eq!(id(&out), 0xbeef);
        assert!(is_response(&out));
        assert_eq!(rcode(&out), rcode::SERVFAIL);
        assert_eq!(out[2] & 0x01, 0x01, "RD copied");
        assert_eq!(out[3] & 0x10, 0x00, "CD not invented");
        assert_eq!(qdcount(&out), 1);
        assert_eq!(&out[12..], &q[12..]);
    }

    /// An answer to `q` (QR set, `rcode`) with `records` (owner a pointer to the question)
    /// of (type, TTL, RDATA), and the counts of answer/authority/additional given.
    fn answer_with(q: &[u8], rcode: u8, counts: [u16; 3], records: &[(u16, u32, &[u8])]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] |= 0x80;
        m[3] = rcode;
        for (i, n) in counts.iter().enumerate() {
            m[6 + 2 * i..8 + 2 * i].copy_from_slice(&n.to_be_bytes());
        }
        for (rtype, ttl, rdata) in records {
            m.extend_from_slice(&[0xc0, 0x0c]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    /// SOA RDATA with root MNAME and RNAME (pointers would do as well) and `minimum`.
    fn soa(minimum: u32) -> Vec<u8> {
        let mut rdata = vec![0, 0];
        for field in [1u32, 2, 3, 4, minimum] {
            rdata.extend_from_slice(&field.to_be_bytes());
        }
        rdata
    }

    #[test]
    fn min_ttl_is_the_smallest_record_ttl_without_opt() {
        let q = query(b"\x03big\x00", 16);
        let opt_ttl = 0x0000_8000; // DO set: would read as 32768 s
        let a = answer_with(&q, 0, [2, 0, 1], &[(16, 300, b"\x01x"), (16, 120, b"\x01y"), (41, opt_ttl, b"")]);
        assert_eq!(answer_min_ttl(&a), Some(120));
        let with_glue = answer_with(&q, 0, [1, 1, 1], &[(16, 300, b"\x01x"), (2, 600, b"\xc0\x0c"), (1, 5, &[1; 4])]);
        assert_eq!(answer_min_ttl(&with_glue), Some(5), "authority and additional count too");
        let huge = answer_with(&q, 0, [1, 0, 0], &[(16, 0x8000_0000, b"\x01x")]);
        assert_eq!(answer_min_ttl(&huge), Some(0), "RFC 2181: the top bit set means 0");
        assert_eq!(answer_min_ttl(&answer_with(&q, 0, [0, 0, 1], &[(41, 0, b"")])), None, "only an OPT record");
    }

    #[test]
    fn min_ttl_of_a_negative_answer_takes_the_soa_minimum() {
        let q = query(b"\x04nope\x00", 1);
        let nxdomain = answer_with(&q, 3, [0, 1, 0], &[(6, 3600, &soa(30))]);
        assert_eq!(answer_min_ttl(&nxdomain), Some(30));
        let nodata = answer_with(&q, 0, [0, 1, 0], &[(6, 20, &soa(900))]);
        assert_eq!(answer_min_ttl(&nodata), Some(20), "the SOA's own TTL when smaller");
        // In a positive answer an SOA is just a record: its MINIMUM says nothing.
        let positive = answer_with(&q, 0, [1, 1, 0], &[(1, 300, &[1; 4]), (6, 3600, &soa(30))]);
        assert_eq!(answer_min_ttl(&positive), Some(300));
    }

    #[test]
    fn min_ttl_never_panics_on_garbage() {
        let q = query(b"\x03big\x00", 16);
        let a = answer_with(&q, 3, [1, 1, 1], &[(16, 300, b"\x01x"), (6, 60, &soa(5)), (41, 0, b"\x00\x0c\x00\x00")]);
        assert_eq!(answer_min_ttl(&a), Some(5));
        for cut in 0..a.len() {
            assert_eq!(answer_min_ttl(&a[..cut]), None, "cut at {cut}");
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut m = a.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % m.len() as u64) as usize;
                m[at] = (seed >> 32) as u8;
            }
            let _ = answer_min_ttl(&m);
        }
        let mut counts = vec![0u8; 12];
        counts[4..12].fill(0xff);
        assert_eq!(answer_min_ttl(&counts), None);
    }

    #[test]
    fn local_answer_to_garbage_has_no_question() {
        let mut out = Vec::new();
        write_local_answer(&[0xab, 0xcd, 0, 0, 0, 2], 0xabcd, rcode::FORMERR, &mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(qdcount(&out), 0);
        assert_eq!(rcode(&out), rcode::FORMERR);
    }
}
