//! DNS messages as text, the way dig shows them, for the DNSENC client tools: the header and
//! flags, the EDNS pseudosection, the question, and every record as `name TTL CLASS TYPE rdata`.
//!
//! Owns: the names of RR types, classes, opcodes and RCODEs (BADCRYPT and NSK by the configured
//! code points), and the presentation of A, AAAA, NS, CNAME, DNAME, PTR, MX, SRV, TXT, SOA, DNSKEY,
//! DS and NSK data; any other type, and any RDATA of those types that does not read as it should,
//! is shown in RFC 3597's generic form (`\# <length> <hex>`).
//!
//! Never: does I/O, or panics on any bytes (a message that stops parsing is shown up to there,
//! then one line says so). It shows; it checks nothing about whether an answer is to be trusted
//! (`client::accept` does that).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine as _;

use super::wire::{CodePoints, Nsk};
use crate::dns::HEADER_LEN;
use crate::message::{self, be16, parse, Record};

const TYPE_OPT: u16 = 41;

/// RR types by number and name (RFC 1035, 3596, 4034, 6672, 9460 and others in common use).
const TYPES: [(u16, &str); 37] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (13, "HINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (24, "SIG"),
    (25, "KEY"),
    (28, "AAAA"),
    (29, "LOC"),
    (33, "SRV"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (39, "DNAME"),
    (41, "OPT"),
    (43, "DS"),
    (44, "SSHFP"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (252, "AXFR"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
];

/// RCODEs by number (RFC 1035, 2136, 6891); BADCRYPT comes from the code points.
const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
    "NOTZONE",
];

/// The mnemonic of RR type `rtype` (`NSK` for `cp.nsk_type`), else RFC 3597's `TYPEnnn`.
pub fn type_name(rtype: u16, cp: &CodePoints) -> String {
    if rtype == cp.nsk_type {
        return "NSK".to_owned();
    }
    TYPES.iter().find(|(n, _)| *n == rtype).map_or_else(|| format!("TYPE{rtype}"), |(_, name)| (*name).to_owned())
}

/// The RR type a mnemonic (ASCII case-insensitively; `NSK` is `cp.nsk_type`) or RFC 3597's
/// `TYPEnnn` names.
pub fn type_by_name(text: &str, cp: &CodePoints) -> Option<u16> {
    if text.eq_ignore_ascii_case("NSK") {
        return Some(cp.nsk_type);
    }
    if let Some(number) = text.get(..4).filter(|p| p.eq_ignore_ascii_case("TYPE")).map(|_| &text[4..]) {
        return number.parse().ok().filter(|_| number.bytes().all(|b| b.is_ascii_digit()));
    }
    TYPES.iter().find(|(_, name)| name.eq_ignore_ascii_case(text)).map(|(n, _)| *n)
}

/// The name of a full (extended) RCODE: BADCRYPT for `cp.badcrypt`, BADVERS for 16, else
/// `RCODEnnn` beyond the classic ones.
pub fn rcode_name(rcode: u16, cp: &CodePoints) -> String {
    if rcode == cp.badcrypt {
        return "BADCRYPT".to_owned();
    }
    match RCODES.get(usize::from(rcode)) {
        Some(name) => (*name).to_owned(),
        None if rcode == 16 => "BADVERS".to_owned(),
        None => format!("RCODE{rcode}"),
    }
}

fn class_name(class: u16) -> String {
    match class {
        1 => "IN".to_owned(),
        3 => "CH".to_owned(),
        4 => "HS".to_owned(),
        254 => "NONE".to_owned(),
        255 => "ANY".to_owned(),
        _ => format!("CLASS{class}"),
    }
}

fn opcode_name(opcode: u8) -> String {
    match opcode {
        0 => "QUERY".to_owned(),
        1 => "IQUERY".to_owned(),
        2 => "STATUS".to_owned(),
        4 => "NOTIFY".to_owned(),
        5 => "UPDATE".to_owned(),
        _ => format!("OPCODE{opcode}"),
    }
}

/// The full RCODE of a message: the header's four bits, with the first OPT record's
/// EXTENDED-RCODE above them when it has one. 0 for fewer bytes than a header.
pub fn full_rcode(msg: &[u8]) -> u16 {
    if msg.len() < HEADER_LEN {
        return 0;
    }
    let low = u16::from(msg[3] & 0x0f);
    let parsed = parse(msg);
    match parsed.sections[2].iter().find(|r| r.rtype == TYPE_OPT) {
        Some(opt) => low | (u16::from((opt.ttl >> 24) as u8) << 4),
        None => low,
    }
}

/// The name at `pos` (possibly compressed) in presentation form, and where it ends in place.
fn read_name(msg: &[u8], pos: usize) -> Option<(String, usize)> {
    message::read_name(msg, pos).map(|(wire, end)| (crate::dns::display_name(&wire), end))
}

/// The RDATA of a record in presentation form; `None` when its type has no form here or the
/// bytes do not read as that type's.
fn rdata_text(msg: &[u8], record: &Record, cp: &CodePoints) -> Option<String> {
    let (start, end) = record.rdata;
    let data = &msg[start..end];
    // A name that must fill the RDATA to `end` exactly.
    let name_to_end = |at: usize| read_name(msg, at).filter(|&(_, e)| e == end).map(|(name, _)| name);
    Some(match record.rtype {
        _ if record.rtype == cp.nsk_type => Nsk::parse_rdata(data).ok()?.to_presentation(),
        1 => Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?).to_string(),
        28 => Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?).to_string(),
        2 | 5 | 12 | 39 => name_to_end(start)?,
        15 if data.len() > 2 => format!("{} {}", be16(data, 0), name_to_end(start + 2)?),
        33 if data.len() > 6 => {
            format!("{} {} {} {}", be16(data, 0), be16(data, 2), be16(data, 4), name_to_end(start + 6)?)
        }
        6 => {
            let (mname, after) = read_name(msg, start).filter(|&(_, e)| e < end)?;
            let (rname, after) = read_name(msg, after).filter(|&(_, e)| e + 20 == end)?;
            let n = |i: usize| u32::from_be_bytes(msg[after + 4 * i..after + 4 * i + 4].try_into().unwrap_or([0; 4]));
            format!("{mname} {rname} {} {} {} {} {}", n(0), n(1), n(2), n(3), n(4))
        }
        16 => txt_text(data)?,
        48 if data.len() > 4 => format!(
            "{} {} {} {}",
            be16(data, 0),
            data[2],
            data[3],
            base64::engine::general_purpose::STANDARD.encode(&data[4..])
        ),
        43 if data.len() > 4 => {
            let digest: String = data[4..].iter().map(|b| format!("{b:02X}")).collect();
            format!("{} {} {} {digest}", be16(data, 0), data[2], data[3])
        }
        _ => return None,
    })
}

/// TXT RDATA: its character-strings, each quoted; `None` when they do not fill it exactly.
fn txt_text(data: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut pos = 0;
    while pos < data.len() {
        let len = usize::from(data[pos]);
        let string = data.get(pos + 1..pos + 1 + len)?;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        for &b in string {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(b as char);
                }
                b' ' => out.push(' '),
                b if b.is_ascii_graphic() => out.push(b as char),
                b => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('"');
        pos += 1 + len;
    }
    (!data.is_empty()).then_some(out)
}

/// RFC 3597 §5: `\# <length> <hex>`.
fn generic_rdata(data: &[u8]) -> String {
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    if hex.is_empty() {
        "\\# 0".to_owned()
    } else {
        format!("\\# {} {hex}", data.len())
    }
}

/// The whole message as dig shows it: header, flags and counts; the EDNS pseudosection when
/// there is an OPT record; the question; the answer, authority and additional sections (the
/// OPT record left out of the last). A message that stops parsing ends with a line saying where.
pub fn message(msg: &[u8], cp: &CodePoints) -> String {
    let mut out = String::new();
    if msg.len() < HEADER_LEN {
        let _ = writeln!(out, ";; a message of {} bytes, shorter than a DNS header", msg.len());
        return out;
    }
    let parsed = parse(msg);
    let opt = parsed.sections[2].iter().find(|r| r.rtype == TYPE_OPT);
    let _ = writeln!(
        out,
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
        opcode_name((msg[2] >> 3) & 0x0f),
        rcode_name(full_rcode(msg), cp),
        be16(msg, 0)
    );
    let flags: Vec<&str> = [
        (msg[2] & 0x80, "qr"),
        (msg[2] & 0x04, "aa"),
        (msg[2] & 0x02, "tc"),
        (msg[2] & 0x01, "rd"),
        (msg[3] & 0x80, "ra"),
        (msg[3] & 0x20, "ad"),
        (msg[3] & 0x10, "cd"),
    ]
    .into_iter()
    .filter(|(bit, _)| *bit != 0)
    .map(|(_, name)| name)
    .collect();
    let _ = writeln!(
        out,
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags.join(" "),
        be16(msg, 4),
        be16(msg, 6),
        be16(msg, 8),
        be16(msg, 10)
    );
    if let Some(opt) = opt {
        let do_bit = if opt.ttl & 0x8000 != 0 { " do" } else { "" };
        let _ = writeln!(out, "\n;; OPT PSEUDOSECTION:");
        let _ = writeln!(out, "; EDNS: version: {}, flags:{do_bit}; udp: {}", (opt.ttl >> 16) as u8, opt.class);
        let mut pos = opt.rdata.0;
        while let Some(head) = msg.get(pos..pos + 4).filter(|_| pos + 4 <= opt.rdata.1) {
            let (code, len) = (be16(head, 0), usize::from(be16(head, 2)));
            let Some(data) = msg.get(pos + 4..pos + 4 + len).filter(|_| pos + 4 + len <= opt.rdata.1) else { break };
            let _ = match code {
                12 => writeln!(out, "; PAD ({len} bytes)"),
                _ => writeln!(out, "; OPTION {code}: {}", data.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            };
            pos += 4 + len;
        }
    }
    if !parsed.questions.is_empty() {
        let _ = writeln!(out, "\n;; QUESTION SECTION:");
        for (name, rtype, class) in &parsed.questions {
            let name = crate::dns::display_name(name);
            let _ = writeln!(out, ";{name}\t\t{}\t{}", class_name(*class), type_name(*rtype, cp));
        }
    }
    for (records, title) in parsed.sections.iter().zip(["ANSWER", "AUTHORITY", "ADDITIONAL"]) {
        let shown: Vec<&Record> = records.iter().filter(|r| r.rtype != TYPE_OPT).collect();
        if shown.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n;; {title} SECTION:");
        for record in shown {
            let rdata =
                rdata_text(msg, record, cp).unwrap_or_else(|| generic_rdata(&msg[record.rdata.0..record.rdata.1]));
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{rdata}",
                crate::dns::display_name(&record.owner),
                record.ttl,
                class_name(record.class),
                type_name(record.rtype, cp)
            );
        }
    }
    if let Some(why) = &parsed.stopped {
        let _ = writeln!(out, "\n;; malformed message: {why}; the rest is not shown");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CP: CodePoints = CodePoints { nsk_type: 65301, option_code: 65050, badcrypt: 3841 };

    /// A response to `www.example.test. A` with `records` (type, rdata) in the answer section,
    /// each owned by a pointer to the question's name, and an OPT record (DO, extended RCODE
    /// `ext`).
    fn response(records: &[(u16, &[u8])], ext: u8) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0xa0, 0, 1, 0, records.len() as u8, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
        for (rtype, rdata) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 1, 44]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, ext, 0, 0x80, 0, 0, 0]);
        m
    }

    #[test]
    fn records_are_shown_as_a_zone_file_would_have_them() {
        let soa = [
            b"\x02ns\xc0\x10".as_slice(),
            b"\x05admin\xc0\x10",
            &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5],
        ]
        .concat();
        let records: Vec<(u16, &[u8])> = vec![
            (1, &[192, 0, 2, 10]),
            (28, &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]),
            (5, b"\x05alias\xc0\x0c"),
            (15, b"\x00\x0a\x04mail\xc0\x10"),
            (33, b"\x00\x01\x00\x02\x02\x77\x03ipp\xc0\x10"),
            (16, b"\x05hello\x07a \"b\"\\\x01\x00"),
            (6, &soa),
            (48, &[1, 1, 3, 13, 0xde, 0xad]),
            (43, &[0x30, 0x39, 13, 2, 0xab, 0xcd]),
            (99, &[1, 2, 3]),
            (1, &[1, 2, 3]),
            (2, b"\x02ns"),
        ];
        let text = message(&response(&records, 0), &CP);
        for want in [
            ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4660",
            ";; flags: qr rd ra ad; QUERY: 1, ANSWER: 12, AUTHORITY: 0, ADDITIONAL: 1",
            "; EDNS: version: 0, flags: do; udp: 1232",
            ";www.example.test.\t\tIN\tA",
            "www.example.test.\t300\tIN\tA\t192.0.2.10",
            "www.example.test.\t300\tIN\tAAAA\t2001:db8::10",
            "www.example.test.\t300\tIN\tCNAME\talias.www.example.test.",
            "www.example.test.\t300\tIN\tMX\t10 mail.example.test.",
            "www.example.test.\t300\tIN\tSRV\t1 2 631 ipp.example.test.",
            "www.example.test.\t300\tIN\tTXT\t\"hello\" \"a \\\"b\\\"\\\\\\001\"",
            "www.example.test.\t300\tIN\tSOA\tns.example.test. admin.example.test. 1 2 3 4 5",
            "www.example.test.\t300\tIN\tDNSKEY\t257 3 13 3q0=",
            "www.example.test.\t300\tIN\tDS\t12345 13 2 ABCD",
            "www.example.test.\t300\tIN\tTYPE99\t\\# 3 010203",
            "www.example.test.\t300\tIN\tA\t\\# 3 010203",
            "www.example.test.\t300\tIN\tNS\t\\# 3 026e73",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert!(!text.contains("malformed"), "{text}");
    }

    #[test]
    fn the_extended_rcode_and_badcrypt_are_named() {
        let msg = response(&[], 0xf0);
        let mut clear = msg.clone();
        clear[3] = (clear[3] & 0xf0) | 1;
        assert_eq!(full_rcode(&clear), 3841);
        assert!(message(&clear, &CP).contains("status: BADCRYPT"));
        assert_eq!(rcode_name(3, &CP), "NXDOMAIN");
        assert_eq!(rcode_name(16, &CP), "BADVERS");
        assert_eq!(rcode_name(23, &CP), "RCODE23");
    }

    #[test]
    fn types_are_named_both_ways() {
        assert_eq!(type_by_name("aaaa", &CP), Some(28));
        assert_eq!(type_by_name("TYPE65", &CP), Some(65));
        assert_eq!(type_by_name("type65535", &CP), Some(65535));
        assert_eq!(type_by_name("NSK", &CP), Some(65301));
        for bad in ["TYPE", "TYPE65536", "TYPE+1", "AAAAA", ""] {
            assert_eq!(type_by_name(bad, &CP), None, "{bad:?}");
        }
        assert_eq!(type_name(65301, &CP), "NSK");
        assert_eq!(type_name(1234, &CP), "TYPE1234");
    }

    #[test]
    fn malformed_messages_never_panic() {
        let msg = response(&[(1, &[192, 0, 2, 10])], 0);
        for cut in 0..msg.len() {
            let text = message(&msg[..cut], &CP);
            assert!(text.contains("shorter than") || text.contains("malformed"), "{cut}: {text}");
        }
        // A pointer loop in an owner name.
        let mut looped = msg.clone();
        let owner = msg.len() - 11 - 16;
        looped[owner..owner + 2].copy_from_slice(&[0xc0, owner as u8]);
        assert!(message(&looped, &CP).contains("malformed"));
    }
}
