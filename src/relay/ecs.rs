//! The EDNS Client Subnet editor (RFC 7871, option code 8), for backends that cannot take the
//! PROXY header (BIND 9.18): dotgate puts the client's real address, cut to a configured prefix,
//! in an ECS option of the query it relays, and gives the client the answer as a forwarder
//! should (RFC 7871 §7.2: an ECS option back exactly when the client sent one).
//!
//! Owns: the ECS option's bytes in a relayed query and in its answer, and what the client's own
//! query said about ECS ([`ClientEcs`], kept with the query in flight). The client's own ECS
//! option is never trusted: it is always taken out, and only its SOURCE PREFIX-LENGTH can make
//! what dotgate sends shorter (a client asking /0 asks that its address not be used). Its
//! ADDRESS never reaches the backend; a query whose ECS option cannot be taken out is refused.
//!
//! Works on wire bytes. It never panics on any input, never does I/O, and never allocates:
//! callers pass the buffer to write into. It edits only a message whose OPT record is its last
//! record (or that has no record to move), so that nothing after it shifts, and never writes
//! past 65,535 bytes.

use std::net::IpAddr;

use crate::edns::{find_opt, options, records_end, Malformed, OptRecord};

/// EDNS option code of Client Subnet (RFC 7871 §6).
pub const OPTION_CODE: u16 = 8;
/// FAMILY of an IPv4 ADDRESS (IANA address family numbers).
pub const FAMILY_IPV4: u16 = 1;
/// FAMILY of an IPv6 ADDRESS.
pub const FAMILY_IPV6: u16 = 2;

const TYPE_OPT: u16 = 41;
/// The UDP payload size of an OPT record dotgate adds to a query or an answer that had none.
const ADDED_OPT_PAYLOAD_SIZE: u16 = 1232;
/// An OPT record without its RDATA: root name, TYPE, CLASS, TTL, RDLENGTH.
const OPT_FIXED_LEN: usize = 11;
/// An ECS option without its ADDRESS: OPTION-CODE, OPTION-LENGTH, FAMILY, the two prefixes.
const ECS_FIXED_LEN: usize = 8;
const MAX_MESSAGE: usize = u16::MAX as usize;
const HEADER_LEN: usize = crate::dns::HEADER_LEN;

/// How much of a client's address goes to the backend: IPv4 and IPv6 prefix lengths ("24:56").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcsPrefix {
    /// Leading bits of an IPv4 client's address sent, 0 to 32.
    pub v4: u8,
    /// Leading bits of an IPv6 client's address sent, 0 to 128.
    pub v6: u8,
}

impl EcsPrefix {
    /// Parses "V4:V6" (0..=32, 0..=128); the error is a short reason for a one-line config error.
    pub fn parse(s: &str) -> Result<EcsPrefix, &'static str> {
        let (v4, v6) = s.split_once(':').ok_or("expected IPv4 and IPv6 prefix lengths as V4:V6, such as 24:56")?;
        let number = |text: &str| -> Option<u8> {
            if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        let v4 = number(v4).filter(|&n| n <= 32).ok_or("the IPv4 prefix length must be a number from 0 to 32")?;
        let v6 = number(v6).filter(|&n| n <= 128).ok_or("the IPv6 prefix length must be a number from 0 to 128")?;
        Ok(EcsPrefix { v4, v6 })
    }
}

/// What the client's own query said about ECS: kept with the query in flight (so keep it small
/// and Copy) for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEcs {
    /// The query had no OPT record: its answer must carry none (RFC 6891 §7).
    NoOpt,
    /// The query had an OPT record and no ECS option dotgate could read: the answer carries none.
    NoOption,
    /// The query carried this ECS option (its first one): the answer carries it back.
    Sent {
        /// FAMILY: [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
        family: u16,
        /// SOURCE PREFIX-LENGTH, at most 32 (IPv4) or 128 (IPv6).
        source: u8,
        /// ADDRESS, the bits past `source` zero, padded with zeros to 16 bytes.
        address: [u8; 16],
    },
}

/// What became of a query (see [`write_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryEdit {
    /// `out` holds the query to send; keep this for the answer.
    Edited(ClientEcs),
    /// The query cannot be rewritten (records after its OPT record, say a TSIG, or it does not
    /// parse) and carries no ECS option: send it as it is.
    AsItIs,
    /// It cannot be rewritten and carries an ECS option of its own, which must not reach the
    /// backend: dotgate answers REFUSED.
    Refuse,
}

/// The largest SOURCE PREFIX-LENGTH of a FAMILY (any FAMILY but IPv4 counts as IPv6 here: it
/// only bounds the bytes written).
fn max_prefix(family: u16) -> u8 {
    if family == FAMILY_IPV4 {
        32
    } else {
        128
    }
}

/// ADDRESS octets for a prefix of `bits`: ceil(bits / 8), at most 16.
fn address_len(bits: u8) -> usize {
    (bits as usize).div_ceil(8).min(16)
}

/// Clears every bit of `address` past its first `bits`.
fn mask(address: &mut [u8; 16], bits: u8) {
    for (i, octet) in address.iter_mut().enumerate() {
        let keep = (bits as usize).saturating_sub(i * 8).min(8);
        *octet &= (0xff00u16 >> keep) as u8;
    }
}

/// Appends one ECS option. `address` is masked to `source` already.
fn push_ecs(out: &mut Vec<u8>, family: u16, source: u8, scope: u8, address: &[u8; 16]) {
    let len = address_len(source);
    out.extend_from_slice(&OPTION_CODE.to_be_bytes());
    out.extend_from_slice(&((4 + len) as u16).to_be_bytes());
    out.extend_from_slice(&family.to_be_bytes());
    out.push(source);
    out.push(scope);
    out.extend_from_slice(&address[..len]);
}

/// Appends an OPT record of `rdata_len` bytes of RDATA (to follow): dotgate's own, UDP payload
/// 1232, EXTENDED-RCODE 0, version 0, DO and every other flag clear.
fn push_opt_header(out: &mut Vec<u8>, rdata_len: usize) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&ADDED_OPT_PAYLOAD_SIZE.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(rdata_len as u16).to_be_bytes());
}

/// Sets ARCOUNT of the message starting at `out[0]`.
fn set_arcount(out: &mut [u8], arcount: u16) {
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
}

fn arcount(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[10], msg[11]])
}

/// Whether the options of `opt` fill its RDATA exactly (a malformed OPT record does not).
fn options_fill_rdata(msg: &[u8], opt: OptRecord) -> bool {
    let end = options(msg, opt).last().map_or(opt.rdata.0, |(_, range)| range.end);
    end == opt.rdata.1
}

/// Reads a client's ECS option DATA (after OPTION-LENGTH): FAMILY IPv4 or IPv6, SOURCE within
/// it, exactly ceil(SOURCE / 8) ADDRESS octets (RFC 7871 §6). SCOPE (0 in a query) is not
/// checked, and ADDRESS bits past SOURCE are cleared rather than refused.
fn read_client_ecs(data: &[u8]) -> Option<ClientEcs> {
    let [f0, f1, source, _scope, address @ ..] = data else { return None };
    let family = u16::from_be_bytes([*f0, *f1]);
    if !matches!(family, FAMILY_IPV4 | FAMILY_IPV6) || *source > max_prefix(family) {
        return None;
    }
    if address.len() != address_len(*source) {
        return None;
    }
    let mut padded = [0; 16];
    padded[..address.len()].copy_from_slice(address);
    mask(&mut padded, *source);
    Some(ClientEcs::Sent { family, source: *source, address: padded })
}

/// Writes to `out` (cleared first) `query` (a checked query whose single question ends at
/// `question_end`) with one ECS option for `client` cut to `prefix`: the client's own ECS
/// option(s) removed, other options kept in order, an OPT record (UDP payload 1232, DO=0,
/// version 0, no other flags) added at the end of the additional section when the query has
/// none (ARCOUNT+1).
///
/// The option dotgate writes comes last in the OPT record: FAMILY of `client` (an IPv4-mapped
/// IPv6 address counts as IPv4), SOURCE the prefix for that family, or the client's own SOURCE
/// when shorter (a client sending /0 asks that its address not be used, RFC 7871 §7.1.2; with
/// several ECS options, the shortest; one dotgate cannot read counts as /0), SCOPE 0, and the
/// ADDRESS of `client` masked to SOURCE in ceil(SOURCE / 8) octets.
///
/// Not rewritten: a query whose records do not parse, whose OPT record is not its last record
/// or whose options do not fill it, one without an OPT record that has additional records (a
/// TSIG or SIG(0) must stay last) or bytes after its records, and one that would pass 65,535
/// bytes. Those go as they are ([`QueryEdit::AsItIs`]) unless their OPT record carries an ECS
/// option ([`QueryEdit::Refuse`]).
pub fn write_query(
    query: &[u8],
    question_end: usize,
    client: IpAddr,
    prefix: EcsPrefix,
    out: &mut Vec<u8>,
) -> QueryEdit {
    out.clear();
    let (family, configured, mut address) = match crate::net::canonical_ip(client) {
        IpAddr::V4(v4) => {
            let mut padded = [0; 16];
            padded[..4].copy_from_slice(&v4.octets());
            (FAMILY_IPV4, prefix.v4.min(32), padded)
        }
        IpAddr::V6(v6) => (FAMILY_IPV6, prefix.v6.min(128), v6.octets()),
    };
    let opt = match find_opt(query, question_end) {
        Err(Malformed) => return QueryEdit::AsItIs,
        Ok(None) => {
            // No OPT record: one goes at the end, after the answer and authority records, when
            // nothing is there to stay last and nothing trails them.
            let added = OPT_FIXED_LEN + ECS_FIXED_LEN + address_len(configured);
            if arcount(query) != 0
                || records_end(query, question_end) != Some(query.len())
                || query.len() + added > MAX_MESSAGE
            {
                return QueryEdit::AsItIs;
            }
            mask(&mut address, configured);
            out.extend_from_slice(query);
            set_arcount(out, 1);
            push_opt_header(out, ECS_FIXED_LEN + address_len(configured));
            push_ecs(out, family, configured, 0, &address);
            return QueryEdit::Edited(ClientEcs::NoOpt);
        }
        Ok(Some(opt)) => opt,
    };
    let mut first: Option<ClientEcs> = None;
    let mut client_source = u8::MAX;
    let mut removed = 0;
    for (code, range) in options(query, opt) {
        if code == OPTION_CODE {
            let read = read_client_ecs(&query[range.start + 4..range.end]);
            let source = match read {
                Some(ClientEcs::Sent { source, .. }) => source,
                _ => 0,
            };
            client_source = client_source.min(source);
            first.get_or_insert(read.unwrap_or(ClientEcs::NoOption));
            removed += range.len();
        }
    }
    let source = configured.min(client_source);
    let grows = ECS_FIXED_LEN + address_len(source);
    if opt.rdata.1 != query.len() || !options_fill_rdata(query, opt) || query.len() - removed + grows > MAX_MESSAGE {
        return if first.is_some() { QueryEdit::Refuse } else { QueryEdit::AsItIs };
    }
    mask(&mut address, source);
    out.extend_from_slice(&query[..opt.rdata.0]);
    for (code, range) in options(query, opt) {
        if code != OPTION_CODE {
            out.extend_from_slice(&query[range]);
        }
    }
    push_ecs(out, family, source, 0, &address);
    let rdlen = (out.len() - opt.rdata.0) as u16;
    out[opt.rdlen_at..opt.rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    QueryEdit::Edited(first.unwrap_or(ClientEcs::NoOption))
}

/// Writes to `out` (cleared first) `answer` as the client should see it; false (and `out`
/// unspecified) when it should be delivered as it is.
///
/// After `ClientEcs::NoOpt` the answer's OPT record is taken off (ARCOUNT-1); after `NoOption`
/// its ECS option(s) are, the other options kept; after `Sent` it carries exactly one ECS
/// option, the client's own FAMILY, SOURCE and ADDRESS with SCOPE the one of the backend's
/// (first) ECS option, or 0 when it sent none (RFC 7871 §7.2), after the other options; an
/// answer without an OPT record then gets one (UDP payload 1232, DO=0), added last.
///
/// Only an answer whose OPT record is its last record is edited (one without an OPT record:
/// whose records end where it does). False when the answer does not parse, when nothing needs
/// changing, or when the result would pass 65,535 bytes. Never panics on any input.
pub fn write_answer(answer: &[u8], asked: ClientEcs, out: &mut Vec<u8>) -> bool {
    out.clear();
    if answer.len() < HEADER_LEN || crate::dns::qdcount(answer) != 1 {
        return false;
    }
    let Some(question_end) = crate::dns::question_end(answer) else { return false };
    let opt = match find_opt(answer, question_end) {
        Err(Malformed) => return false,
        Ok(None) => return add_opt_with_echo(answer, question_end, asked, out),
        Ok(Some(opt)) if opt.rdata.1 != answer.len() => return false,
        Ok(Some(opt)) => opt,
    };
    let (family, source, address) = match asked {
        ClientEcs::NoOpt => {
            out.extend_from_slice(&answer[..opt.start]);
            set_arcount(out, arcount(answer) - 1);
            return true;
        }
        ClientEcs::NoOption => {
            if !options_fill_rdata(answer, opt) || !options(answer, opt).any(|(code, _)| code == OPTION_CODE) {
                return false;
            }
            out.extend_from_slice(&answer[..opt.rdata.0]);
            for (code, range) in options(answer, opt) {
                if code != OPTION_CODE {
                    out.extend_from_slice(&answer[range]);
                }
            }
            let rdlen = (out.len() - opt.rdata.0) as u16;
            out[opt.rdlen_at..opt.rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
            return true;
        }
        ClientEcs::Sent { family, source, address } => (family, source, address),
    };
    if !options_fill_rdata(answer, opt) {
        return false;
    }
    let scope = options(answer, opt)
        .find(|(code, range)| *code == OPTION_CODE && range.len() >= 8)
        .map_or(0, |(_, range)| answer[range.start + 7].min(max_prefix(family)));
    out.extend_from_slice(&answer[..opt.rdata.0]);
    for (code, range) in options(answer, opt) {
        if code != OPTION_CODE {
            out.extend_from_slice(&answer[range]);
        }
    }
    let mut address = address;
    let source = source.min(max_prefix(family));
    mask(&mut address, source);
    push_ecs(out, family, source, scope, &address);
    if out.len() > MAX_MESSAGE {
        return false;
    }
    let rdlen = (out.len() - opt.rdata.0) as u16;
    out[opt.rdlen_at..opt.rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    out[..] != answer[..]
}

/// [`write_answer`] for an answer without an OPT record: only `Sent` needs one (with SCOPE 0),
/// added after the last record when the records end where the answer does.
fn add_opt_with_echo(answer: &[u8], question_end: usize, asked: ClientEcs, out: &mut Vec<u8>) -> bool {
    let ClientEcs::Sent { family, source, mut address } = asked else { return false };
    let source = source.min(max_prefix(family));
    let Some(arcount) = arcount(answer).checked_add(1) else { return false };
    let rdata_len = ECS_FIXED_LEN + address_len(source);
    if records_end(answer, question_end) != Some(answer.len()) || answer.len() + OPT_FIXED_LEN + rdata_len > MAX_MESSAGE
    {
        return false;
    }
    mask(&mut address, source);
    out.extend_from_slice(answer);
    set_arcount(out, arcount);
    push_opt_header(out, rdata_len);
    push_ecs(out, family, source, 0, &address);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const QUESTION: &[u8] = b"\x03www\x07example\x00\x00\x01\x00\x01";
    const COOKIE: u16 = 10;
    const NSID: u16 = 3;

    fn option(code: u16, data: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        o
    }

    fn ecs(family: u16, source: u8, scope: u8, address: &[u8]) -> Vec<u8> {
        let mut data = family.to_be_bytes().to_vec();
        data.extend_from_slice(&[source, scope]);
        data.extend_from_slice(address);
        option(OPTION_CODE, &data)
    }

    /// A query for "www.example. A" (ID 0x1234, RD), with an OPT record (payload 4096, DO)
    /// holding `options` when given.
    fn query(options: Option<&[Vec<u8>]>) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(options.is_some())];
        q.extend_from_slice(QUESTION);
        if let Some(options) = options {
            let rdata = options.concat();
            q.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0]);
            q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            q.extend_from_slice(&rdata);
        }
        q
    }

    const QUESTION_END: usize = 12 + QUESTION.len();

    fn prefix(v4: u8, v6: u8) -> EcsPrefix {
        EcsPrefix { v4, v6 }
    }

    fn edit_query(query: &[u8], client: &str, prefix: EcsPrefix) -> (QueryEdit, Vec<u8>) {
        let mut out = b"left over".to_vec();
        let edit = write_query(query, QUESTION_END, client.parse().unwrap(), prefix, &mut out);
        (edit, out)
    }

    /// The OPT record's RDATA of a message built here (the OPT record right after the question).
    fn rdata(msg: &[u8]) -> &[u8] {
        let opt = &msg[QUESTION_END..];
        assert_eq!(&opt[..3], &[0, 0, 41]);
        assert_eq!(u16::from_be_bytes([opt[9], opt[10]]) as usize, opt.len() - 11, "RDLENGTH");
        &opt[11..]
    }

    fn sent(family: u16, source: u8, address: &[u8]) -> ClientEcs {
        let mut padded = [0; 16];
        padded[..address.len()].copy_from_slice(address);
        ClientEcs::Sent { family, source, address: padded }
    }

    #[test]
    fn prefixes_parse() {
        assert_eq!(EcsPrefix::parse("24:56"), Ok(prefix(24, 56)));
        assert_eq!(EcsPrefix::parse("0:0"), Ok(prefix(0, 0)));
        assert_eq!(EcsPrefix::parse("32:128"), Ok(prefix(32, 128)));
        assert_eq!(EcsPrefix::parse("024:056"), Ok(prefix(24, 56)));
        for bad in [
            "33:56", "24:129", "24", "", ":", "24:", ":56", "a:b", "24:56:1", " 24:56", "24:56 ", "+24:56", "-1:5",
            "256:0", "1000:0", "24/56",
        ] {
            let err = EcsPrefix::parse(bad).expect_err(bad);
            assert!(!err.is_empty() && !err.contains('\n'), "{bad}: {err}");
        }
    }

    #[test]
    fn a_query_without_opt_gets_one_with_the_client_subnet() {
        let q = query(None);
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(ClientEcs::NoOpt));
        let mut expected = q.clone();
        expected[11] = 1; // ARCOUNT
        #[rustfmt::skip]
        expected.extend_from_slice(&[
            0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11, // root, OPT, 1232, EXTENDED-RCODE/VERSION/DO/Z 0, RDLENGTH
            0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2,      // ECS: FAMILY 1, /24, SCOPE 0, 3 octets
        ]);
        assert_eq!(out, expected);
    }

    #[test]
    fn other_options_stay_in_order_and_the_client_subnet_comes_last() {
        let cookie = option(COOKIE, &[7; 8]);
        let nsid = option(NSID, &[]);
        let q = query(Some(&[cookie.clone(), nsid.clone()]));
        let (edit, out) = edit_query(&q, "198.51.100.77", prefix(20, 56));
        assert_eq!(edit, QueryEdit::Edited(ClientEcs::NoOption));
        assert_eq!(&out[..QUESTION_END + 9], &q[..QUESTION_END + 9], "header and OPT fields unchanged");
        // 198.51.100.77/20: 100 = 0x64 keeps its top four bits, 0x60.
        assert_eq!(rdata(&out), [cookie, nsid, ecs(1, 20, 0, &[198, 51, 0x60])].concat());
    }

    #[test]
    fn an_ipv6_address_is_masked_to_56_bits() {
        let q = query(Some(&[]));
        let (edit, out) = edit_query(&q, "2001:db8:1234:5678:9abc:def0:1234:5678", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(ClientEcs::NoOption));
        assert_eq!(rdata(&out), ecs(2, 56, 0, &[0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56]));
        let (_, odd) = edit_v6(&q, 50);
        assert_eq!(rdata(&odd), ecs(2, 50, 0, &[0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x40]), "/50: two bits of 0x56");
        let (_, whole) = edit_v6(&q, 128);
        assert_eq!(rdata(&whole).len(), 4 + 4 + 16);
    }

    fn edit_v6(q: &[u8], v6: u8) -> (QueryEdit, Vec<u8>) {
        edit_query(q, "2001:db8:1234:5678:9abc:def0:1234:5678", prefix(24, v6))
    }

    #[test]
    fn a_mapped_client_is_sent_as_ipv4() {
        let q = query(Some(&[]));
        let (_, out) = edit_query(&q, "::ffff:192.0.2.130", prefix(24, 56));
        assert_eq!(rdata(&out), ecs(1, 24, 0, &[192, 0, 2]));
        let (_, zero) = edit_query(&q, "::ffff:192.0.2.130", prefix(0, 56));
        assert_eq!(rdata(&zero), ecs(1, 0, 0, &[]));
    }

    #[test]
    fn a_client_asking_slash_zero_gets_no_address_sent() {
        let q = query(Some(&[ecs(1, 0, 0, &[])]));
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(1, 0, &[])));
        assert_eq!(rdata(&out), ecs(1, 0, 0, &[]));
        assert_eq!(out.len(), q.len(), "one /0 option for another");
    }

    #[test]
    fn the_address_is_always_the_clients_own_and_the_shorter_prefix_wins() {
        // The client claims 10.1.0.0/16: /16 is shorter than the configured /24, so /16 of the
        // real address goes; the claimed address never does.
        let q = query(Some(&[ecs(1, 16, 0, &[10, 1])]));
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(1, 16, &[10, 1])));
        assert_eq!(rdata(&out), ecs(1, 16, 0, &[192, 0]));
        // A longer claim than configured: the configured prefix.
        let q = query(Some(&[ecs(1, 32, 0, &[10, 1, 2, 3])]));
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(1, 32, &[10, 1, 2, 3])));
        assert_eq!(rdata(&out), ecs(1, 24, 0, &[192, 0, 2]));
    }

    #[test]
    fn bits_past_the_clients_prefix_are_cleared_for_the_echo() {
        let q = query(Some(&[ecs(1, 12, 0, &[10, 0xff])]));
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(1, 12, &[10, 0xf0])));
        assert_eq!(rdata(&out), ecs(1, 12, 0, &[192, 0]));
    }

    #[test]
    fn a_client_subnet_of_the_other_family_is_echoed_but_not_sent() {
        // An IPv4 client with an IPv6 ECS option: the backend gets its IPv4 address.
        let q = query(Some(&[ecs(2, 48, 0, &[0x20, 0x01, 0x0d, 0xb8, 0xab, 0xcd])]));
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(2, 48, &[0x20, 0x01, 0x0d, 0xb8, 0xab, 0xcd])));
        assert_eq!(rdata(&out), ecs(1, 24, 0, &[192, 0, 2]));
        // An IPv6 client with an IPv4 option of /16: /16 of its IPv6 address.
        let (edit, out) = edit_query(&query(Some(&[ecs(1, 16, 0, &[10, 1])])), "2001:db8::1", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(1, 16, &[10, 1])));
        assert_eq!(rdata(&out), ecs(2, 16, 0, &[0x20, 0x01]));
    }

    #[test]
    fn an_unreadable_client_subnet_counts_as_slash_zero_and_is_not_echoed() {
        for bad in [
            ecs(3, 24, 0, &[1, 2, 3]),       // unknown FAMILY
            ecs(1, 33, 0, &[1, 2, 3, 4, 5]), // prefix too long for IPv4
            ecs(1, 24, 0, &[1, 2]),          // too few octets
            ecs(1, 8, 0, &[1, 2]),           // too many
            option(OPTION_CODE, &[0, 1, 24]),
            option(OPTION_CODE, &[]),
        ] {
            let q = query(Some(std::slice::from_ref(&bad)));
            let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
            assert_eq!(edit, QueryEdit::Edited(ClientEcs::NoOption), "{bad:?}");
            assert_eq!(rdata(&out), ecs(1, 0, 0, &[]), "{bad:?}");
        }
    }

    #[test]
    fn two_client_subnets_become_one_with_the_shortest_prefix() {
        let cookie = option(COOKIE, &[1; 8]);
        let q = query(Some(&[ecs(1, 24, 0, &[10, 1, 2]), cookie.clone(), ecs(1, 8, 0, &[10])]));
        let (edit, out) = edit_query(&q, "192.0.2.130", prefix(24, 56));
        assert_eq!(edit, QueryEdit::Edited(sent(1, 24, &[10, 1, 2])), "the first is echoed");
        assert_eq!(rdata(&out), [cookie, ecs(1, 8, 0, &[192])].concat());
    }

    /// A TSIG-like record after the OPT record (owner "k.", type 250).
    fn with_record_after_opt(mut q: Vec<u8>) -> Vec<u8> {
        let arcount = u16::from_be_bytes([q[10], q[11]]) + 1;
        q[10..12].copy_from_slice(&arcount.to_be_bytes());
        q.extend_from_slice(b"\x01k\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x03abc");
        q
    }

    #[test]
    fn queries_that_cannot_be_rewritten() {
        let with_ecs = with_record_after_opt(query(Some(&[ecs(1, 24, 0, &[10, 1, 2])])));
        assert_eq!(edit_query(&with_ecs, "192.0.2.1", prefix(24, 56)).0, QueryEdit::Refuse);
        let without = with_record_after_opt(query(Some(&[option(COOKIE, &[1; 8])])));
        assert_eq!(edit_query(&without, "192.0.2.1", prefix(24, 56)).0, QueryEdit::AsItIs);
        // Signed without EDNS: the TSIG must stay last.
        let signed = with_record_after_opt(query(None));
        assert_eq!(edit_query(&signed, "192.0.2.1", prefix(24, 56)).0, QueryEdit::AsItIs);
        // Bytes after the records.
        let mut trailing = query(None);
        trailing.push(0);
        assert_eq!(edit_query(&trailing, "192.0.2.1", prefix(24, 56)).0, QueryEdit::AsItIs);
        let mut trailing = query(Some(&[ecs(1, 24, 0, &[10, 1, 2])]));
        trailing.push(0);
        assert_eq!(edit_query(&trailing, "192.0.2.1", prefix(24, 56)).0, QueryEdit::Refuse);
        // An OPT record cut short: its records do not parse.
        let mut cut = query(Some(&[ecs(1, 24, 0, &[10, 1, 2])]));
        cut.truncate(cut.len() - 1);
        assert_eq!(edit_query(&cut, "192.0.2.1", prefix(24, 56)).0, QueryEdit::AsItIs);
        // Options that do not fill the RDATA: an ECS option before them is still refused.
        let mut broken = query(Some(&[ecs(1, 24, 0, &[10, 1, 2]), vec![0, 10, 0]]));
        assert_eq!(edit_query(&broken, "192.0.2.1", prefix(24, 56)).0, QueryEdit::Refuse);
        broken = query(Some(&[option(COOKIE, &[1; 8]), vec![0, 8, 0]]));
        assert_eq!(edit_query(&broken, "192.0.2.1", prefix(24, 56)).0, QueryEdit::AsItIs);
    }

    #[test]
    fn a_query_never_grows_past_65535_bytes() {
        // Fill the OPT record so that the query, ending with `client_ecs`, is `total` bytes long.
        let sized = |total: usize, client_ecs: &[u8]| {
            let head = query(Some(&[])).len();
            let fill = option(65001, &vec![0; total - head - 4 - client_ecs.len()]);
            let q = query(Some(&[fill, client_ecs.to_vec()]));
            assert_eq!(q.len(), total);
            q
        };
        let (edited, out) = edit_query(&sized(65_535 - 11, &[]), "192.0.2.1", prefix(24, 56));
        assert_eq!(edited, QueryEdit::Edited(ClientEcs::NoOption));
        assert_eq!(out.len(), 65_535);
        assert_eq!(edit_query(&sized(65_535 - 10, &[]), "192.0.2.1", prefix(24, 56)).0, QueryEdit::AsItIs);
        // The client's own option taken out makes room for ours, which is never longer than a
        // well-formed one (its prefix is the shorter)...
        let full = sized(65_535, &ecs(1, 24, 0, &[10, 1, 2]));
        assert!(matches!(edit_query(&full, "2001:db8::1", prefix(24, 56)).0, QueryEdit::Edited(_)));
        // ...but may be longer than an empty one (/0: 8 bytes for 4).
        let full = sized(65_535, &option(OPTION_CODE, &[]));
        assert_eq!(edit_query(&full, "2001:db8::1", prefix(24, 56)).0, QueryEdit::Refuse);
        let room = sized(65_535 - 4, &option(OPTION_CODE, &[]));
        assert_eq!(edit_query(&room, "2001:db8::1", prefix(24, 56)).0, QueryEdit::Edited(ClientEcs::NoOption));
    }

    // ---- Answers ----

    /// An answer to `query(...)`: QR and RA set, one A record, and the OPT record when given.
    fn answer(options: Option<&[Vec<u8>]>) -> Vec<u8> {
        let mut a = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, u8::from(options.is_some())];
        a.extend_from_slice(QUESTION);
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 10]);
        if let Some(options) = options {
            let rdata = options.concat();
            a.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            a.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            a.extend_from_slice(&rdata);
        }
        a
    }

    const ANSWER_RECORDS_END: usize = QUESTION_END + 16;

    fn answer_rdata(msg: &[u8]) -> &[u8] {
        let opt = &msg[ANSWER_RECORDS_END..];
        assert_eq!(&opt[..3], &[0, 0, 41]);
        assert_eq!(u16::from_be_bytes([opt[9], opt[10]]) as usize, opt.len() - 11, "RDLENGTH");
        &opt[11..]
    }

    fn rewrite(answer: &[u8], asked: ClientEcs) -> Option<Vec<u8>> {
        let mut out = b"left over".to_vec();
        write_answer(answer, asked, &mut out).then_some(out)
    }

    #[test]
    fn a_client_without_edns_gets_no_opt_record() {
        let a = answer(Some(&[ecs(1, 24, 24, &[192, 0, 2]), option(COOKIE, &[1; 24])]));
        let out = rewrite(&a, ClientEcs::NoOpt).expect("edited");
        let mut expected = answer(None);
        expected[11] = 0;
        assert_eq!(out, expected);
        assert_eq!(rewrite(&answer(None), ClientEcs::NoOpt), None, "nothing to take off");
    }

    #[test]
    fn a_client_without_ecs_gets_none_back_and_keeps_the_rest() {
        let cookie = option(COOKIE, &[1; 24]);
        let nsid = option(NSID, b"ns1");
        let a = answer(Some(&[cookie.clone(), ecs(1, 24, 24, &[192, 0, 2]), nsid.clone()]));
        let out = rewrite(&a, ClientEcs::NoOption).expect("edited");
        assert_eq!(&out[..ANSWER_RECORDS_END + 9], &a[..ANSWER_RECORDS_END + 9]);
        assert_eq!(answer_rdata(&out), [cookie.clone(), nsid.clone()].concat());
        assert_eq!(rewrite(&answer(Some(&[cookie, nsid])), ClientEcs::NoOption), None, "no ECS: as it is");
        assert_eq!(rewrite(&answer(None), ClientEcs::NoOption), None);
    }

    #[test]
    fn a_client_with_ecs_gets_its_own_back_with_the_backends_scope() {
        let cookie = option(COOKIE, &[1; 24]);
        let asked = sent(1, 16, &[10, 1]);
        // The backend saw /24 of the real address and answered with scope /20.
        let a = answer(Some(&[ecs(1, 24, 20, &[192, 0, 2]), cookie.clone()]));
        let out = rewrite(&a, asked).expect("edited");
        assert_eq!(answer_rdata(&out), [cookie.clone(), ecs(1, 16, 20, &[10, 1])].concat());
        // No ECS in the answer: scope 0.
        let a = answer(Some(std::slice::from_ref(&cookie)));
        assert_eq!(answer_rdata(&rewrite(&a, asked).unwrap()), [cookie.clone(), ecs(1, 16, 0, &[10, 1])].concat());
        // Two ECS options from the backend: one echo, the first one's scope.
        let a = answer(Some(&[ecs(1, 24, 8, &[192, 0, 2]), ecs(1, 24, 24, &[192, 0, 2])]));
        assert_eq!(answer_rdata(&rewrite(&a, asked).unwrap()), ecs(1, 16, 8, &[10, 1]));
        // A scope past the family's 32 bits is cut to 32.
        let a = answer(Some(&[ecs(1, 24, 200, &[192, 0, 2])]));
        assert_eq!(answer_rdata(&rewrite(&a, asked).unwrap()), ecs(1, 16, 32, &[10, 1]));
        // Already exactly that: as it is.
        let a = answer(Some(&[cookie.clone(), ecs(1, 16, 0, &[10, 1])]));
        assert_eq!(rewrite(&a, asked), None);
        // /0 of IPv6: no address octets.
        let a = answer(Some(std::slice::from_ref(&cookie)));
        assert_eq!(answer_rdata(&rewrite(&a, sent(2, 0, &[])).unwrap()), [cookie, ecs(2, 0, 0, &[])].concat());
    }

    #[test]
    fn an_answer_without_opt_gets_one_for_a_client_that_sent_ecs() {
        let a = answer(None);
        let out = rewrite(&a, sent(2, 56, &[0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56])).expect("edited");
        let mut expected = a.clone();
        expected[11] = 1;
        expected.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 15]);
        expected.extend_from_slice(&ecs(2, 56, 0, &[0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56]));
        assert_eq!(out, expected);
        // Not after bytes that are no record.
        let mut trailing = a.clone();
        trailing.push(0);
        assert_eq!(rewrite(&trailing, sent(1, 0, &[])), None);
    }

    #[test]
    fn answers_left_as_they_are() {
        let asked = sent(1, 16, &[10, 1]);
        // Anything after the OPT record.
        let a = with_record_after_opt(answer(Some(&[ecs(1, 24, 20, &[192, 0, 2])])));
        for mode in [ClientEcs::NoOpt, ClientEcs::NoOption, asked] {
            assert_eq!(rewrite(&a, mode), None, "{mode:?}");
        }
        // Options that do not fill the OPT record.
        let broken = answer(Some(&[ecs(1, 24, 20, &[192, 0, 2]), vec![0, 3]]));
        assert_eq!(rewrite(&broken, ClientEcs::NoOption), None);
        assert_eq!(rewrite(&broken, asked), None);
        // Garbage, cut answers, no question, two questions.
        let whole = answer(Some(&[ecs(1, 24, 20, &[192, 0, 2])]));
        for cut in 0..whole.len() {
            for mode in [ClientEcs::NoOpt, ClientEcs::NoOption, asked] {
                let mut out = Vec::new();
                let edited = write_answer(&whole[..cut], mode, &mut out);
                assert!(!edited || cut == ANSWER_RECORDS_END, "cut at {cut}: {mode:?}");
            }
        }
        let mut two = whole.clone();
        two[5] = 2;
        assert_eq!(rewrite(&two, asked), None);
    }

    #[test]
    fn an_answer_never_grows_past_65535_bytes() {
        let head = answer(Some(&[])).len();
        let fill = |total: usize| answer(Some(&[option(65001, &vec![0; total - head - 4])]));
        let asked = sent(2, 128, &[0x20; 16]);
        let out = rewrite(&fill(65_535 - 24), asked).expect("fits");
        assert_eq!(out.len(), 65_535);
        assert_eq!(rewrite(&fill(65_535 - 23), asked), None);
    }

    #[test]
    fn client_ecs_values_from_elsewhere_never_panic() {
        let a = answer(Some(&[ecs(1, 24, 20, &[192, 0, 2])]));
        for family in [0, 1, 2, 3, u16::MAX] {
            for source in [0, 7, 32, 33, 128, 129, 255] {
                let mut out = Vec::new();
                write_answer(&a, ClientEcs::Sent { family, source, address: [0xff; 16] }, &mut out);
                assert!(out.len() <= a.len() + 4 + 4 + 16);
                write_answer(&answer(None), ClientEcs::Sent { family, source, address: [0xff; 16] }, &mut out);
            }
        }
    }

    // ---- Properties, read back with hickory-proto ----

    /// An option as the test writes it: (code, data).
    type Opt = (u16, Vec<u8>);

    fn encode(options: &[Opt]) -> Vec<u8> {
        options.iter().flat_map(|(code, data)| option(*code, data)).collect()
    }

    /// The options of an OPT RDATA, as the test reads them (whole, filling it).
    fn decode(mut rdata: &[u8]) -> Vec<Opt> {
        let mut out = Vec::new();
        while !rdata.is_empty() {
            let code = u16::from_be_bytes([rdata[0], rdata[1]]);
            let len = u16::from_be_bytes([rdata[2], rdata[3]]) as usize;
            out.push((code, rdata[4..4 + len].to_vec()));
            rdata = &rdata[4 + len..];
        }
        out
    }

    /// A client's ECS option: mostly well-formed, of either family, sometimes not.
    fn client_ecs() -> impl Strategy<Value = Opt> {
        let well_formed =
            (prop_oneof![Just(1u16), Just(2)], any::<u8>(), any::<[u8; 16]>()).prop_map(|(family, source, address)| {
                let source = source % (max_prefix(family) + 1);
                let mut data = family.to_be_bytes().to_vec();
                data.extend_from_slice(&[source, 0]);
                data.extend_from_slice(&address[..address_len(source)]);
                (OPTION_CODE, data)
            });
        prop_oneof![4 => well_formed, 1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|d| (OPTION_CODE, d))]
    }

    fn other_option() -> impl Strategy<Value = Opt> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 8..=8).prop_map(|d| (COOKIE, d)),
            prop::collection::vec(any::<u8>(), 24..=24).prop_map(|d| (COOKIE, d)),
            Just((NSID, vec![])),
            (0..40usize).prop_map(|n| (12, vec![0; n])),
            (65001..65100u16, prop::collection::vec(any::<u8>(), 0..12)),
        ]
    }

    fn options() -> impl Strategy<Value = Vec<Opt>> {
        prop::collection::vec(prop_oneof![3 => other_option(), 1 => client_ecs()], 0..5)
    }

    fn client() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
        ]
    }

    fn ecs_prefix() -> impl Strategy<Value = EcsPrefix> {
        (0..=32u8, 0..=128u8).prop_map(|(v4, v6)| EcsPrefix { v4, v6 })
    }

    /// A query: random name, type, flags (QR clear, opcode QUERY), and an OPT record with
    /// random payload size, DO and `options`, or none.
    fn query_of(id: u16, flags: u16, name: &[String], qtype: u16, opt: Option<&(u16, bool, Vec<Opt>)>) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&(flags & 0x0710).to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        for label in name {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        if let Some((payload, dnssec_ok, options)) = opt {
            let rdata = encode(options);
            q.extend_from_slice(&[0, 0, 41]);
            q.extend_from_slice(&payload.to_be_bytes());
            q.extend_from_slice(&[0, 0, if *dnssec_ok { 0x80 } else { 0 }, 0]);
            q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            q.extend_from_slice(&rdata);
        }
        q
    }

    /// The ECS option dotgate should send, worked out here from the RFC's rules.
    fn expected_sent(client: IpAddr, prefix: EcsPrefix, options: Option<&[Opt]>) -> Opt {
        let (family, octets, configured) = match client {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                (1u16, v6.to_ipv4_mapped().unwrap().octets().to_vec(), prefix.v4)
            }
            IpAddr::V4(v4) => (1, v4.octets().to_vec(), prefix.v4),
            IpAddr::V6(v6) => (2, v6.octets().to_vec(), prefix.v6),
        };
        let mut source = configured;
        for (code, data) in options.unwrap_or_default() {
            if *code == OPTION_CODE {
                let claimed = match read_reference(data) {
                    Some((_, claimed, _)) => claimed,
                    None => 0,
                };
                source = source.min(claimed);
            }
        }
        let mut data = family.to_be_bytes().to_vec();
        data.extend_from_slice(&[source, 0]);
        let full = source as usize / 8;
        data.extend_from_slice(&octets[..full]);
        if source % 8 != 0 {
            data.push(octets[full] & !(0xffu8 >> (source % 8)));
        }
        (OPTION_CODE, data)
    }

    /// A client's ECS option as RFC 7871 §6 reads, apart from the module's reader: (family,
    /// source, masked address octets).
    fn read_reference(data: &[u8]) -> Option<(u16, u8, Vec<u8>)> {
        if data.len() < 4 {
            return None;
        }
        let family = u16::from_be_bytes([data[0], data[1]]);
        let source = data[2];
        let bits = match family {
            1 => 32,
            2 => 128,
            _ => return None,
        };
        if source > bits || data.len() - 4 != (source as usize).div_ceil(8) {
            return None;
        }
        let mut address = data[4..].to_vec();
        if source % 8 != 0 {
            let last = address.len() - 1;
            address[last] &= !(0xffu8 >> (source % 8));
        }
        Some((family, source, address))
    }

    fn ip_of(family: u16, address: &[u8]) -> IpAddr {
        if family == 1 {
            let mut o = [0; 4];
            o[..address.len()].copy_from_slice(address);
            Ipv4Addr::from(o).into()
        } else {
            let mut o = [0; 16];
            o[..address.len()].copy_from_slice(address);
            Ipv6Addr::from(o).into()
        }
    }

    fn hickory_subnet(msg: &Message) -> Option<ClientSubnet> {
        match msg.extensions().as_ref()?.option(EdnsCode::Subnet)? {
            EdnsOption::Subnet(subnet) => Some(*subnet),
            other => panic!("ECS read as {other:?}"),
        }
    }

    fn count(msg: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([msg[at], msg[at + 1]])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn edited_queries_and_answers_read_right(
            id in any::<u16>(),
            flags in any::<u16>(),
            name in prop::collection::vec("[a-z0-9-]{1,12}", 0..4),
            qtype in prop_oneof![Just(1u16), Just(28), any::<u16>()],
            opt in prop::option::weighted(0.8, (any::<u16>(), any::<bool>(), options())),
            client in client(),
            prefix in ecs_prefix(),
            backend_scope in prop::option::of(any::<u8>()),
            answer_records in 0..3usize,
            backend_extra in prop::option::of(other_option()),
        ) {
            let q = query_of(id, flags, &name, qtype, opt.as_ref());
            let question_end = crate::dns::question_end(&q).unwrap();
            let mut out = Vec::new();
            let QueryEdit::Edited(asked) = write_query(&q, question_end, client, prefix, &mut out) else {
                panic!("a well-formed query is always rewritten");
            };
            let client_options = opt.as_ref().map(|(_, _, options)| &options[..]);
            let sent_option = expected_sent(client, prefix, client_options);

            // The header: the same but ARCOUNT, 1 either way.
            prop_assert_eq!(&out[..10], &q[..10]);
            prop_assert_eq!(count(&out, 10), 1);
            prop_assert_eq!(&out[12..question_end], &q[12..question_end], "the question");
            let opt_fields = &out[question_end..question_end + 9];
            match &opt {
                Some(_) => prop_assert_eq!(opt_fields, &q[question_end..question_end + 9]),
                None => prop_assert_eq!(opt_fields, &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0][..]),
            }
            prop_assert_eq!(count(&out, question_end + 9) as usize, out.len() - question_end - 11, "RDLENGTH");
            let sent_options = decode(&out[question_end + 11..]);
            let others: Vec<Opt> =
                client_options.unwrap_or_default().iter().filter(|(c, _)| *c != OPTION_CODE).cloned().collect();
            let mut want = others.clone();
            want.push(sent_option.clone());
            prop_assert_eq!(&sent_options, &want, "the other options in order, then exactly one ECS");

            // What is kept for the answer.
            let first_client_ecs = client_options.unwrap_or_default().iter().find(|(c, _)| *c == OPTION_CODE);
            let want_asked = match (&opt, first_client_ecs.map(|(_, data)| read_reference(data))) {
                (None, _) => ClientEcs::NoOpt,
                (Some(_), None | Some(None)) => ClientEcs::NoOption,
                (Some(_), Some(Some((family, source, address)))) => sent(family, source, &address),
            };
            prop_assert_eq!(asked, want_asked);

            // hickory-proto reads the same question and exactly that subnet.
            let parsed = Message::from_vec(&out).expect("hickory-proto reads the edited query");
            prop_assert_eq!(parsed.id(), id);
            prop_assert_eq!(parsed.queries().len(), 1);
            prop_assert_eq!(u16::from(parsed.queries()[0].query_type()), qtype);
            let asked_name = hickory_proto::rr::Name::from_labels(name.iter().map(|l| l.as_bytes())).unwrap();
            prop_assert_eq!(parsed.queries()[0].name(), &asked_name);
            let (family, source, address) = read_reference(&sent_option.1).unwrap();
            prop_assert_eq!(hickory_subnet(&parsed), Some(ClientSubnet::new(ip_of(family, &address), source, 0)));
            let edns = parsed.extensions().as_ref().unwrap();
            prop_assert_eq!(edns.flags().dnssec_ok, opt.as_ref().is_some_and(|(_, dnssec_ok, _)| *dnssec_ok));

            // The backend's answer to it: records, the same OPT fields, the other options, the
            // ECS option with some scope or none, perhaps one more option.
            let mut backend_options = others.clone();
            if let Some(scope) = backend_scope {
                let mut data = sent_option.1.clone();
                data[3] = scope;
                backend_options.push((OPTION_CODE, data));
            }
            backend_options.extend(backend_extra);
            let mut a = out[..question_end].to_vec();
            a[2] |= 0x80;
            a[6..8].copy_from_slice(&(answer_records as u16).to_be_bytes());
            for i in 0..answer_records {
                a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i as u8]);
            }
            let records_end = a.len();
            let rdata = encode(&backend_options);
            a.extend_from_slice(&out[question_end..question_end + 9]);
            a.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            a.extend_from_slice(&rdata);

            let mut client_answer = Vec::new();
            let edited = write_answer(&a, asked, &mut client_answer);
            let backend_others: Vec<Opt> = backend_options.iter().filter(|(c, _)| *c != OPTION_CODE).cloned().collect();
            let seen = if edited { &client_answer } else { &a };
            prop_assert_eq!(&seen[..10], &a[..10], "the header but ARCOUNT");
            prop_assert_eq!(&seen[12..records_end], &a[12..records_end], "the question and the records before the OPT record");
            let reread = Message::from_vec(seen).expect("hickory-proto reads the answer");
            prop_assert_eq!(reread.answers().len(), answer_records);
            match asked {
                ClientEcs::NoOpt => {
                    prop_assert!(edited);
                    prop_assert_eq!(client_answer.len(), records_end);
                    prop_assert_eq!(count(&client_answer, 10), 0);
                    prop_assert!(reread.extensions().is_none());
                }
                ClientEcs::NoOption => {
                    prop_assert_eq!(edited, backend_scope.is_some());
                    prop_assert_eq!(decode(&seen[records_end + 11..]), backend_others);
                    prop_assert_eq!(hickory_subnet(&reread), None);
                }
                ClientEcs::Sent { family, source, address } => {
                    let mut echo = family.to_be_bytes().to_vec();
                    echo.extend_from_slice(&[source, backend_scope.map_or(0, |s| s.min(max_prefix(family)))]);
                    echo.extend_from_slice(&address[..address_len(source)]);
                    let mut want = backend_others.clone();
                    want.push((OPTION_CODE, echo));
                    prop_assert_eq!(decode(&seen[records_end + 11..]), want);
                    prop_assert_eq!(count(seen, 10), 1);
                    let scope = backend_scope.map_or(0, |s| s.min(max_prefix(family)));
                    let (f, s, addr) = (family, source, &address[..address_len(source)]);
                    prop_assert_eq!(hickory_subnet(&reread), Some(ClientSubnet::new(ip_of(f, addr), s, scope)));
                }
            }
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..120),
            client in client(),
            prefix in (any::<u8>(), any::<u8>()).prop_map(|(v4, v6)| EcsPrefix { v4, v6 }),
            family in any::<u16>(),
            source in any::<u8>(),
            address in any::<[u8; 16]>(),
        ) {
            let mut out = Vec::new();
            if let Some(end) = crate::dns::question_end(&bytes) {
                let _ = write_query(&bytes, end, client, prefix, &mut out);
                prop_assert!(out.len() <= MAX_MESSAGE);
            }
            for asked in [ClientEcs::NoOpt, ClientEcs::NoOption, ClientEcs::Sent { family, source, address }] {
                let _ = write_answer(&bytes, asked, &mut out);
            }
        }

        #[test]
        fn never_panics_on_mutated_messages(
            opt in (any::<u16>(), any::<bool>(), options()),
            client in client(),
            prefix in ecs_prefix(),
            mutations in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut q = query_of(7, 0x0100, &["www".to_owned()], 1, Some(&opt));
            for (at, byte) in mutations {
                let len = q.len();
                q[at % len] = byte;
            }
            let len = q.len();
            q.truncate(len - cut % 8.min(len));
            let mut out = Vec::new();
            if let Some(end) = crate::dns::question_end(&q) {
                let edit = write_query(&q, end, client, prefix, &mut out);
                if let QueryEdit::Edited(asked) = edit {
                    prop_assert!(out.len() <= MAX_MESSAGE);
                    let mut answer = out.clone();
                    answer[2] |= 0x80;
                    let mut again = Vec::new();
                    let _ = write_answer(&answer, asked, &mut again);
                }
            }
            for asked in [ClientEcs::NoOpt, ClientEcs::NoOption, sent(1, 24, &[10, 1, 2])] {
                let _ = write_answer(&q, asked, &mut out);
            }
        }
    }
}
