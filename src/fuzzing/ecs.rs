//! Fuzz target `ecs`: the EDNS Client Subnet editor, `relay::ecs::write_query` on a message as
//! a query and `relay::ecs::write_answer` on it as an answer, and the round trip of a query it
//! edited coming back as the backend's answer.
//!
//! Invariants, on any input: no panic; nothing written past 65,535 bytes; an edited query edited
//! again (same client, same prefixes) is the same bytes, and reads back dotgate's own option as
//! the client's. On a message the strict walker (`wire`) parses, with one uncompressed question
//! and nothing after its records, the result is exactly what RFC 7871 and RFC 6891 ask, built
//! here apart from `relay::ecs`:
//!
//! - query: the client's ECS options out, every other option kept in order, one ECS option last
//!   with the FAMILY of the client's address (IPv4-mapped counts as IPv4), SOURCE the configured
//!   prefix or the shortest the client sent (one it sent unreadably counts as /0), SCOPE 0, the
//!   client's own ADDRESS masked to SOURCE in ceil(SOURCE / 8) octets; an OPT record (1232,
//!   flags clear) added and counted when there was none and no additional record; otherwise as
//!   it is, or refused when the client's OPT record carries an ECS option (records after the
//!   OPT record, options not filling it, a result past 65,535 bytes). What is kept for the
//!   answer is the client's first ECS option when well-formed.
//! - answer: after `NoOpt` the OPT record is gone and ARCOUNT one less; after `NoOption` its
//!   ECS options are; after `Sent` exactly one ECS option closes the OPT record, the client's
//!   own with the SCOPE of the backend's first one (or 0), and an answer without OPT gets one;
//!   only when the OPT record is the last record, the options fill it and something changes.
//!   hickory-proto (a second parser) reads the same header, question and records in the result
//!   as in the original, and the ECS option expected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::wire::{self, Section};
use super::{Cursor, MAX_MESSAGE};
use crate::relay::ecs::{self, ClientEcs, EcsPrefix, QueryEdit};

/// Bytes of control before the message.
pub const CONTROL_LEN: usize = 23;

const ECS: u16 = 8;
/// dotgate's own OPT record's fields before RDLENGTH: root, OPT, 1232, TTL 0.
const ADDED_OPT: [u8; 9] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];

/// The input is `[flags][address: 16][v4 prefix][v6 prefix][backend scope][family: 2][source]
/// [message]`:
///
/// - flags bits 0-1: the client, from the address bytes: IPv4 (the first four), IPv6,
///   IPv4-mapped IPv6 (the first four), IPv6; bits 2-3: what the client's query said when the
///   message is run as an answer: all three of `NoOpt`, `NoOption` and `Sent`, or only one of
///   them; bit 4: in the round trip the backend's answer carries no ECS option.
/// - prefixes modulo 33 and 129; the scope the backend answers with in the round trip.
/// - family and source of `Sent` (any values: the relay only ever keeps valid ones, but
///   nothing may panic), its address the address bytes.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let mut address = [0; 16];
    let given = c.take(16);
    address[..given.len()].copy_from_slice(given);
    let prefix = EcsPrefix { v4: c.u8() % 33, v6: c.u8() % 129 };
    let backend_scope = c.u8();
    let sent = ClientEcs::Sent { family: c.u16(), source: c.u8(), address };
    let msg = c.rest();
    let msg = &msg[..msg.len().min(MAX_MESSAGE)];

    let v4 = Ipv4Addr::new(address[0], address[1], address[2], address[3]);
    let client = match flags & 3 {
        0 => IpAddr::V4(v4),
        2 => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::from(address)),
    };
    if let Some((QueryEdit::Edited(asked), edited)) = check_query(msg, client, prefix) {
        round_trip(&edited, asked, backend_scope, flags & 0x10 != 0);
    }
    let modes = match (flags >> 2) & 3 {
        0 => vec![ClientEcs::NoOpt, ClientEcs::NoOption, sent],
        1 => vec![ClientEcs::NoOpt],
        2 => vec![ClientEcs::NoOption],
        _ => vec![sent],
    };
    for asked in modes {
        check_answer(msg, asked);
    }
}

/// A seed input: `msg` from `client` under `prefix`, run as an answer in all three modes (`Sent`
/// with the client's own family and prefix), the backend answering scope 0 in the round trip.
pub fn seed(client: IpAddr, prefix: EcsPrefix, msg: &[u8]) -> Vec<u8> {
    let mut input = vec![0; CONTROL_LEN];
    let (kind, family, source) = match client {
        IpAddr::V4(v4) => {
            input[1..5].copy_from_slice(&v4.octets());
            (0, 1u16, prefix.v4)
        }
        IpAddr::V6(v6) => {
            input[1..17].copy_from_slice(&v6.octets());
            (1, 2, prefix.v6)
        }
    };
    input[0] = kind;
    input[17] = prefix.v4;
    input[18] = prefix.v6;
    input[20..22].copy_from_slice(&family.to_be_bytes());
    input[22] = source;
    input.extend_from_slice(msg);
    input
}

// ---- The oracle: RFC 7871 written apart from `relay::ecs` ----------------------------------

/// The largest prefix of a FAMILY (any but IPv4 bounded as IPv6, as the editor does).
fn family_bits(family: u16) -> u8 {
    if family == 1 {
        32
    } else {
        128
    }
}

/// The first ceil(bits / 8) octets of `address`, the bits past `bits` cleared.
fn masked(address: &[u8], bits: u8) -> Vec<u8> {
    let octets = (bits as usize).div_ceil(8).min(address.len());
    let mut out = address[..octets].to_vec();
    if bits % 8 != 0 && octets > 0 {
        out[octets - 1] &= 0xffu8 << (8 - bits % 8);
    }
    out
}

fn ecs_option(family: u16, source: u8, scope: u8, address: &[u8]) -> Vec<u8> {
    let mut o = ECS.to_be_bytes().to_vec();
    o.extend_from_slice(&((4 + address.len()) as u16).to_be_bytes());
    o.extend_from_slice(&family.to_be_bytes());
    o.extend_from_slice(&[source, scope]);
    o.extend_from_slice(address);
    o
}

/// A client's ECS option DATA as RFC 7871 §6 has it: (family, source, masked address octets).
fn read_ecs(data: &[u8]) -> Option<(u16, u8, Vec<u8>)> {
    if data.len() < 4 {
        return None;
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let source = data[2];
    if !(family == 1 || family == 2) || source > family_bits(family) {
        return None;
    }
    if data.len() - 4 != (source as usize).div_ceil(8) {
        return None;
    }
    Some((family, source, masked(&data[4..], source)))
}

fn padded(address: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out[..address.len()].copy_from_slice(address);
    out
}

/// `msg` with ARCOUNT set.
fn with_arcount(mut msg: Vec<u8>, arcount: u16) -> Vec<u8> {
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    msg
}

/// `msg` with an OPT record of dotgate's own holding `rdata` added last (ARCOUNT one more).
fn with_added_opt(msg: &[u8], rdata: &[u8]) -> Vec<u8> {
    let arcount = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    let mut out = with_arcount(msg.to_vec(), arcount);
    out.extend_from_slice(&ADDED_OPT);
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// The message strictly parsed, with one uncompressed question and nothing behind its records.
fn strict(msg: &[u8]) -> Option<wire::Message> {
    let parsed = wire::parse(msg).filter(|m| m.questions.len() == 1 && m.trailing == 0)?;
    wire::first_question_end(msg)?;
    Some(parsed)
}

/// What `write_query` should do with `msg`, and the bytes it should write when it edits.
fn expected_query(msg: &[u8], parsed: &wire::Message, client: IpAddr, prefix: EcsPrefix) -> (QueryEdit, Vec<u8>) {
    let (family, octets, configured) = match client.to_canonical() {
        IpAddr::V4(v4) => (1u16, v4.octets().to_vec(), prefix.v4),
        IpAddr::V6(v6) => (2, v6.octets().to_vec(), prefix.v6),
    };
    let Some(opt) = parsed.opt() else {
        let ours = ecs_option(family, configured, 0, &masked(&octets, configured));
        if parsed.count(Section::Additional) > 0 || msg.len() + ADDED_OPT.len() + 2 + ours.len() > MAX_MESSAGE {
            return (QueryEdit::AsItIs, Vec::new());
        }
        return (QueryEdit::Edited(ClientEcs::NoOpt), with_added_opt(msg, &ours));
    };
    let (options, fills) = wire::readable_options(msg, opt.rdata.clone());
    let client_ecs: Vec<&[u8]> =
        options.iter().filter(|(code, _)| *code == ECS).map(|(_, range)| &msg[range.start + 4..range.end]).collect();
    let unedited = if client_ecs.is_empty() { QueryEdit::AsItIs } else { QueryEdit::Refuse };
    if !fills || opt.rdata.end != msg.len() {
        return (unedited, Vec::new());
    }
    let source = client_ecs.iter().map(|data| read_ecs(data).map_or(0, |(_, s, _)| s)).fold(configured, u8::min);
    let mut rdata: Vec<u8> =
        options.iter().filter(|(code, _)| *code != ECS).flat_map(|(_, range)| msg[range.clone()].to_vec()).collect();
    rdata.extend(ecs_option(family, source, 0, &masked(&octets, source)));
    let edited = wire::with_rdata(msg, opt, &rdata);
    if edited.len() > MAX_MESSAGE {
        return (unedited, Vec::new());
    }
    let asked = match client_ecs.first().map(|data| read_ecs(data)) {
        Some(Some((family, source, address))) => ClientEcs::Sent { family, source, address: padded(&address) },
        _ => ClientEcs::NoOption,
    };
    (QueryEdit::Edited(asked), edited)
}

/// Runs `write_query` on `msg` when it has one question dotgate's reader finds, and checks it.
fn check_query(msg: &[u8], client: IpAddr, prefix: EcsPrefix) -> Option<(QueryEdit, Vec<u8>)> {
    if msg.len() < 12 || msg[4..6] != [0, 1] {
        return None;
    }
    let question_end = crate::dns::question_end(msg)?;
    let mut out = b"the last query".to_vec();
    let edit = ecs::write_query(msg, question_end, client, prefix, &mut out);
    if let QueryEdit::Edited(_) = edit {
        assert!(out.len() <= MAX_MESSAGE, "an edited query of {} bytes", out.len());
        assert_eq!(&out[..10], &msg[..10], "the header changed");
        assert_eq!(&out[12..question_end], &msg[12..question_end], "the question changed");
        // Edited again, the same: dotgate's own option is read back as the client's.
        let mut again = Vec::new();
        let second = ecs::write_query(&out, question_end, client, prefix, &mut again);
        assert_eq!(again, out, "editing an edited query changed it");
        assert!(matches!(second, QueryEdit::Edited(ClientEcs::Sent { .. })), "{second:?}");
    }
    if let Some(parsed) = strict(msg) {
        let (want, bytes) = expected_query(msg, &parsed, client, prefix);
        assert_eq!(edit, want, "query verdict");
        if let QueryEdit::Edited(_) = want {
            assert_eq!(out, bytes, "edited query differs from RFC 7871's");
            if !has_unchecked_names(&parsed) {
                compare_with_hickory(msg, &out, None);
            }
        }
    }
    Some((edit, out))
}

/// The edited query comes back as the backend's answer (QR set, dotgate's ECS option with
/// `scope`, or taken out), and is given back to the client.
fn round_trip(query: &[u8], asked: ClientEcs, scope: u8, drop_ecs: bool) {
    let Some(parsed) = strict(query) else { return };
    let Some(opt) = parsed.opt() else { return };
    let (options, _) = wire::readable_options(query, opt.rdata.clone());
    let mut rdata = Vec::new();
    for (code, range) in options {
        let mut option = query[range].to_vec();
        if code == ECS {
            if drop_ecs {
                continue;
            }
            option[7] = scope;
        }
        rdata.extend(option);
    }
    let mut answer = wire::with_rdata(query, opt, &rdata);
    answer[2] |= 0x80;
    check_answer(&answer, asked);
}

/// What `write_answer` should write for `msg` (a strictly parsed answer), `None` for false.
fn expected_answer(msg: &[u8], parsed: &wire::Message, asked: ClientEcs) -> Option<Vec<u8>> {
    let echo = |scope: u8| match asked {
        ClientEcs::Sent { family, source, address } => {
            let source = source.min(family_bits(family));
            Some(ecs_option(family, source, scope.min(family_bits(family)), &masked(&address, source)))
        }
        _ => None,
    };
    let Some(opt) = parsed.opt() else {
        let added = with_added_opt(msg, &echo(0)?);
        return (parsed.count(Section::Additional) < u16::MAX as usize && added.len() <= MAX_MESSAGE).then_some(added);
    };
    if opt.rdata.end != msg.len() {
        return None;
    }
    if asked == ClientEcs::NoOpt {
        // The OPT record is the last one: it starts where the record or question before it ends.
        let start = match parsed.records.len() {
            1 => parsed.questions[0].bytes.end,
            n => parsed.records[n - 2].rdata.end,
        };
        return Some(with_arcount(msg[..start].to_vec(), parsed.count(Section::Additional) as u16 - 1));
    }
    let (options, fills) = wire::readable_options(msg, opt.rdata.clone());
    if !fills {
        return None;
    }
    let mut rdata: Vec<u8> =
        options.iter().filter(|(code, _)| *code != ECS).flat_map(|(_, range)| msg[range.clone()].to_vec()).collect();
    let backend_scope = options
        .iter()
        .find(|(code, range)| *code == ECS && range.len() >= 8)
        .map_or(0, |(_, range)| msg[range.start + 7]);
    if let Some(echo) = echo(backend_scope) {
        rdata.extend(echo);
    }
    let edited = wire::with_rdata(msg, opt, &rdata);
    (edited.len() <= MAX_MESSAGE && edited != msg).then_some(edited)
}

fn check_answer(msg: &[u8], asked: ClientEcs) {
    let mut out = b"the last answer".to_vec();
    let edited = ecs::write_answer(msg, asked, &mut out);
    if edited {
        assert!(out.len() <= MAX_MESSAGE, "an edited answer of {} bytes", out.len());
        assert_ne!(out, msg, "edited to the same bytes");
    }
    // Only messages with one question reach write_answer (the relay matched the question).
    if msg.len() < 12 || msg[4..6] != [0, 1] {
        return;
    }
    let Some(parsed) = strict(msg) else { return };
    let want = expected_answer(msg, &parsed, asked);
    assert_eq!(edited.then_some(&out), want.as_ref(), "edited answer differs from RFC 7871's ({asked:?})");
    if edited {
        let reparsed = wire::parse(&out).expect("the edited answer parses");
        assert_eq!(reparsed.trailing, 0);
        let ecs_count = reparsed.opt().map_or(0, |opt| {
            let (options, fills) = wire::readable_options(&out, opt.rdata.clone());
            assert!(fills);
            options.iter().filter(|(code, _)| *code == ECS).count()
        });
        match asked {
            ClientEcs::NoOpt => assert!(reparsed.opt().is_none()),
            ClientEcs::NoOption => assert_eq!(ecs_count, 0),
            ClientEcs::Sent { .. } => assert_eq!(ecs_count, 1),
        }
        let hickory_reads_it = !matches!(asked, ClientEcs::Sent { family, .. } if family != 1 && family != 2);
        if !has_unchecked_names(&parsed) && hickory_reads_it {
            compare_with_hickory(msg, &out, Some(asked));
        }
    }
}

/// Whether a record holds names in its RDATA that the strict walker does not check: hickory-proto
/// may follow a pointer there into bytes (ARCOUNT, say) the edit changed, so such messages are
/// not compared.
fn has_unchecked_names(parsed: &wire::Message) -> bool {
    parsed.records.iter().any(|r| wire::UNCHECKED_NAMES_IN_RDATA.contains(&r.rtype))
}

/// hickory-proto must read the same header, question and records in both (when it reads the
/// original at all), and in the edited one the ECS option expected: for a query (`asked` None)
/// the one dotgate sent, for an answer none after `NoOpt`/`NoOption`, the echo after `Sent`.
fn compare_with_hickory(original: &[u8], edited: &[u8], asked: Option<ClientEcs>) {
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
    let Ok(before) = Message::from_vec(original) else { return };
    let after = Message::from_vec(edited).expect("hickory-proto reads the original but not the edited message");
    assert_eq!(before.id(), after.id());
    assert_eq!(before.message_type(), after.message_type());
    assert_eq!(before.op_code(), after.op_code());
    assert_eq!(before.header().truncated(), after.header().truncated());
    assert_eq!(before.header().recursion_desired(), after.header().recursion_desired());
    assert_eq!(before.queries(), after.queries());
    assert_eq!(before.answers(), after.answers());
    assert_eq!(before.name_servers(), after.name_servers());
    assert_eq!(before.additionals(), after.additionals());
    let subnet = after.extensions().as_ref().and_then(|e| e.option(EdnsCode::Subnet)).map(|o| match o {
        EdnsOption::Subnet(s) => *s,
        other => panic!("ECS read as {other:?}"),
    });
    let ip = |family: u16, address: &[u8; 16]| -> IpAddr {
        if family == 1 {
            Ipv4Addr::new(address[0], address[1], address[2], address[3]).into()
        } else {
            Ipv6Addr::from(*address).into()
        }
    };
    match asked {
        None => assert!(subnet.is_some(), "hickory-proto reads no ECS option in the edited query"),
        Some(ClientEcs::NoOpt) => assert!(after.extensions().is_none()),
        Some(ClientEcs::NoOption) => assert_eq!(subnet, None),
        Some(ClientEcs::Sent { family, source, address }) => {
            let source = source.min(family_bits(family));
            let octets = masked(&address, source);
            // The echo closes the message; its SCOPE (the backend's) sits just before ADDRESS.
            let scope = edited[edited.len() - octets.len() - 1];
            assert_eq!(subnet, Some(ClientSubnet::new(ip(family, &padded(&octets)), source, scope)));
        }
    }
    if let (Some(b), Some(a)) = (before.extensions(), after.extensions()) {
        assert_eq!(b.max_payload(), a.max_payload());
        assert_eq!(b.flags().dnssec_ok, a.flags().dnssec_ok);
        assert_eq!(b.version(), a.version());
        let others = |m: &Message| {
            let mut codes: Vec<u16> = m
                .extensions()
                .as_ref()
                .map(|e| e.options().as_ref().iter().map(|(c, _)| u16::from(*c)).filter(|&c| c != ECS).collect())
                .unwrap_or_default();
            codes.sort_unstable();
            codes
        };
        assert_eq!(others(&before), others(&after), "hickory-proto reads other options");
    }
}
