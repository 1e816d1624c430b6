//! Fuzz target `pvt_sig0`: the private-subdomain gateway's SIG(0) path (`frontend::pvt::sig0`:
//! `find`, `verify`, `sign`, with the fixed keys of `super::pvt`) and the two readers the
//! gateway runs on the messages around it (`frontend::pvt::gateway`: `edns_payload` on a query,
//! `uncompressed_rdata` on the primary's answer).
//!
//! Input: the first byte chooses. Even: the rest is a message as received. Odd: the rest holds
//! an inception time, a time offset, a byte to flip, and a message (header, one question whose
//! labels come from the input under the user's zone, up to three records), which the user's key
//! signs; bit 1 of the first byte has the signer name in upper case, bit 2 lets the offset take
//! any 32-bit value (else it stays near the window).
//!
//! Invariants, on any input: no panic. On a message the strict walker (`wire`) reads, `find`
//! reads the SIG(0) built here from RFC 2931 §3 apart from the code under test, to the same
//! fields; what it reads is the last record, owned by the root, class ANY, TTL 0, its RDATA to
//! the end of the message. A signature that `verify` accepts is the user's key's own (Ed25519 is
//! deterministic: it signs the RDATA less the signature and the message before the record, ARCOUNT
//! one less, to exactly those bytes), from the user's zone; a stranger's key never verifies. A
//! message just signed verifies in its window give or take `FUDGE` (serial arithmetic, RFC 1982)
//! with the zone in either case, is `Time` anywhere else, `WrongSigner` for another key or zone,
//! and after one byte flipped (the one the input picks, ARCOUNT, the SIG's RDLENGTH, a letter's
//! case in the signer and in the question, the signature's last octet) it no longer verifies,
//! at the time it then claims. `edns_payload` is the first OPT record's payload in the
//! additional section; `uncompressed_rdata` is the RDATA itself for a type without names, and for
//! NS, CNAME, SOA, PTR, MX, AFSDB, RT, KX, SRV, DNAME the same octets with every name (read by
//! the strict walker) written out uncompressed.

use super::pvt::{self, keys, Input, OTHER_ZONE, USER_ZONE};
use super::wire::{self, rdata_layout, read_name_counting, read_uncompressed_name, Section};
use super::{Cursor, MAX_MESSAGE};
use crate::dns::{self, HEADER_LEN};
use crate::frontend::pvt::gateway::{edns_payload, uncompressed_rdata};
use crate::frontend::pvt::keys::{ALGORITHM_ED25519, SIGNATURE_LEN};
use crate::frontend::pvt::sig0::{find, sign, verify, Sig0, Sig0Error, FUDGE, SIGN_WINDOW, TYPE_SIG};
use crate::message;

const CLASS_ANY: u16 = 255;
/// Octets of SIG RDATA before the signer (RFC 2535 §4.1): type covered, algorithm, labels,
/// original TTL, expiration, inception, key tag.
const SIG_FIXED: usize = 18;
/// Pointers a name may follow in `message::read_name` (its loop guard).
const MAX_POINTERS: usize = 128;
/// RP names no server compresses (a type after RFC 1035, RFC 3597 §4): copied as they are.
const TYPE_RP: u16 = 17;

pub fn run(data: &[u8]) {
    match pvt::input(data, MAX_MESSAGE) {
        Input::Received(msg) => check_message(msg),
        Input::Recipe(mode, mut input) => check_signed(mode, &mut input),
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Every check that holds for any message: `find`, `verify`, `edns_payload`, `uncompressed_rdata`.
pub fn check_message(msg: &[u8]) {
    check_sig0(msg);
    check_edns_payload(msg);
    check_uncompressed_rdata(msg);
}

// ---- find and verify ----------------------------------------------------------------------

/// A SIG(0)'s fields, owned: start, algorithm, expiration, inception, key tag, signer, RDATA
/// up to the signature, signature.
type Fields = (usize, u8, u32, u32, u16, Vec<u8>, Vec<u8>, Vec<u8>);

fn fields(sig: &Sig0<'_>) -> Fields {
    let Sig0 { start, algorithm, expiration, inception, key_tag, signer, rdata_head, signature } = *sig;
    (start, algorithm, expiration, inception, key_tag, signer.to_vec(), rdata_head.to_vec(), signature.to_vec())
}

/// The SIG(0) ending a message the strict walker read, from RFC 2931 §3 and RFC 2535 §4.1: the
/// last record, in the additional section, nothing after it, owned by the root, type SIG, class
/// ANY, TTL 0; RDATA of type covered 0, labels 0, original TTL 0, then an uncompressed signer
/// (labels of at most 63 octets up to the root; it is compared with the zone afterwards).
fn expected_sig(msg: &[u8], parsed: &wire::Message) -> Option<Fields> {
    let record = parsed.records.last().filter(|r| r.section == Section::Additional && parsed.trailing == 0)?;
    let start = record.start;
    let owned_by_root = msg[start] == 0 && record.rdlen_at == start + 9;
    let header_ok = be16(msg, start + 3) == CLASS_ANY && be32(msg, start + 5) == 0;
    if !owned_by_root || record.rtype != TYPE_SIG || !header_ok {
        return None;
    }
    let rdata = &msg[record.rdata.clone()];
    if rdata.len() <= SIG_FIXED || be16(rdata, 0) != 0 || rdata[3] != 0 || be32(rdata, 4) != 0 {
        return None;
    }
    let mut end = SIG_FIXED;
    loop {
        let len = usize::from(*rdata.get(end)?);
        if len > 63 {
            return None;
        }
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    let (head, signature) = rdata.split_at_checked(end)?;
    let tag = be16(rdata, 16);
    Some((
        start,
        rdata[2],
        be32(rdata, 8),
        be32(rdata, 12),
        tag,
        head[SIG_FIXED..].to_vec(),
        head.to_vec(),
        signature.to_vec(),
    ))
}

fn check_sig0(msg: &[u8]) {
    let found = find(msg);
    if msg.len() < HEADER_LEN {
        assert_eq!(found, Err(Sig0Error::Malformed), "a message shorter than a header");
    }
    if let Some(parsed) = wire::parse(msg) {
        assert_eq!(found.as_ref().ok().map(fields), expected_sig(msg, &parsed), "find");
    }
    let Ok(sig) = found else { return };
    assert!(sig.start >= HEADER_LEN && be16(msg, 10) > 0, "an additional record");
    let record = &msg[sig.start..];
    assert_eq!(record[..9], [0, 0, 24, 0, 255, 0, 0, 0, 0], "owned by the root, SIG, class ANY, TTL 0");
    assert_eq!(usize::from(be16(record, 9)), record.len() - 11, "its RDATA ends the message");
    assert_eq!([sig.rdata_head, sig.signature].concat(), record[11..]);
    let head = sig.rdata_head;
    assert_eq!(
        (head[2], be32(head, 8), be32(head, 12), be16(head, 16), &head[SIG_FIXED..]),
        (sig.algorithm, sig.expiration, sig.inception, sig.key_tag, sig.signer)
    );

    let keys = keys();
    let mut scratch = Vec::new();
    if verify(msg, &sig, USER_ZONE, &keys.user.public, sig.inception, &mut scratch).is_ok() {
        // RFC 2931 §3.1: the RDATA less the signature, then the message without the SIG(0)
        // and with the ARCOUNT it had before.
        let mut signed = [head, &msg[..sig.start]].concat();
        let arcount = be16(&signed, head.len() + 10) - 1;
        signed[head.len() + 10..head.len() + 12].copy_from_slice(&arcount.to_be_bytes());
        assert_eq!(keys.user.sign(&signed)[..], *sig.signature, "only what the user's key signed verifies");
        assert!(sig.signer.eq_ignore_ascii_case(USER_ZONE) && sig.algorithm == ALGORITHM_ED25519);
        assert_eq!(sig.key_tag, keys.user.public.tag);
    }
    let stranger = verify(msg, &sig, USER_ZONE, &keys.stranger.public, sig.inception, &mut scratch);
    assert_ne!(stranger, Ok(()), "a stranger's key");
}

/// A name from `text`'s dot-separated pieces (at most 63 octets each, as many as fit) under the
/// user's zone.
fn name_under_zone(text: &[u8]) -> Vec<u8> {
    let mut name = Vec::new();
    for label in text.split(|&b| b == b'.').filter(|label| !label.is_empty()) {
        let label = &label[..label.len().min(63)];
        if name.len() + 1 + label.len() + USER_ZONE.len() > wire::MAX_NAME_OCTETS {
            break;
        }
        name.push(label.len() as u8);
        name.extend_from_slice(label);
    }
    name.extend_from_slice(USER_ZONE);
    name
}

/// A message made from the input: ID, flags, one question (type, class, name), and up to three
/// records, each in the section its first byte picks, owned by the question's name (a pointer)
/// or the root.
fn message(input: &mut Cursor) -> Vec<u8> {
    let (id, flags, qtype, qclass) = (input.u16(), input.u16(), input.u16(), input.u16());
    let records = input.u8() % 4;
    let qname_len = usize::from(input.u8());
    let qname = name_under_zone(input.take(qname_len));
    let mut sections: [Vec<u8>; 3] = Default::default();
    let mut counts = [0u16; 3];
    for _ in 0..records {
        let (pick, rtype, class, rdlength) = (input.u8(), input.u16(), input.u16(), input.u8());
        let rdata = input.take(usize::from(rdlength));
        let section = usize::from(pick % 3);
        let out = &mut sections[section];
        out.extend_from_slice(if pick & 0x80 != 0 { &[0xc0, 0x0c] } else { &[0] });
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&3600u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
        counts[section] += 1;
    }
    let mut msg = [id, flags, 1, counts[0], counts[1], counts[2]].map(u16::to_be_bytes).concat();
    msg.extend_from_slice(&qname);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&qclass.to_be_bytes());
    msg.extend(sections.concat());
    msg
}

/// A message signed by the user's key, from a signing input (after its first byte, `mode`).
pub struct Signed {
    pub msg: Vec<u8>,
    /// The message before the SIG(0) was added.
    pub body: Vec<u8>,
    pub signer: Vec<u8>,
    pub inception: u32,
    /// From the inception, the time to verify at.
    pub offset: u32,
    /// The byte to flip (any, modulo the length) and how.
    pub flip: (usize, u8),
}

pub fn signed(mode: u8, input: &mut Cursor) -> Signed {
    let inception = input.u32();
    let offset = input.u32();
    // Near the window (FUDGE + 100 before it to FUDGE + 100 after it) unless bit 2 says any.
    let span = SIGN_WINDOW + 2 * FUDGE + 200;
    let offset = if mode & 4 == 0 { (offset % span).wrapping_sub(FUDGE + 100) } else { offset };
    let flip = (usize::from(input.u16()), input.u8().max(1));
    let body = message(input);
    let signer = if mode & 2 == 0 { USER_ZONE.to_vec() } else { USER_ZONE.to_ascii_uppercase() };
    let mut msg = body.clone();
    sign(&mut msg, &keys().user, &signer, inception);
    Signed { msg, body, signer, inception, offset, flip }
}

fn check_signed(mode: u8, input: &mut Cursor) {
    let Signed { msg, body, signer, inception, offset, flip } = signed(mode, input);
    let keys = keys();
    let user = &keys.user.public;
    let sig = find(&msg).expect("a message just signed has its SIG(0)");
    let expiration = inception.wrapping_add(SIGN_WINDOW);
    assert_eq!(
        (sig.start, sig.algorithm, sig.expiration, sig.inception, sig.key_tag, sig.signer),
        (body.len(), ALGORITHM_ED25519, expiration, inception, user.tag, &signer[..])
    );
    assert_eq!(sig.signature.len(), SIGNATURE_LEN);
    assert_eq!((&msg[..10], be16(&msg, 10), &msg[12..sig.start]), (&body[..10], be16(&body, 10) + 1, &body[12..]));
    check_message(&msg);

    let mut scratch = Vec::new();
    // The zone as configured, in the other case from the signer's.
    let zone = if mode & 2 == 0 { USER_ZONE.to_ascii_uppercase() } else { USER_ZONE.to_vec() };
    for offset in
        [offset, 0u32.wrapping_sub(FUDGE), 0u32.wrapping_sub(FUDGE + 1), SIGN_WINDOW + FUDGE, SIGN_WINDOW + FUDGE + 1]
    {
        let within = (-i64::from(FUDGE)..=i64::from(SIGN_WINDOW + FUDGE)).contains(&i64::from(offset as i32));
        let want = if within { Ok(()) } else { Err(Sig0Error::Time) };
        let now = inception.wrapping_add(offset);
        assert_eq!(verify(&msg, &sig, &zone, user, now, &mut scratch), want, "at {offset} from the inception");
    }
    let stranger = verify(&msg, &sig, &zone, &keys.stranger.public, inception, &mut scratch);
    assert_eq!(stranger, Err(Sig0Error::WrongSigner), "another key");
    let elsewhere = verify(&msg, &sig, OTHER_ZONE, user, inception, &mut scratch);
    assert_eq!(elsewhere, Err(Sig0Error::WrongSigner), "another zone");

    let signer_at = sig.start + 11 + SIG_FIXED;
    let flips = [
        (flip.0 % msg.len(), flip.1),
        (11, 1),
        (sig.start + 10, 1),
        (signer_at + 1, 0x20),
        (HEADER_LEN + 1, 0x20),
        (msg.len() - 1, 1),
    ];
    for (at, mask) in flips {
        let mut flipped = msg.clone();
        flipped[at] ^= mask;
        if let Ok(sig) = find(&flipped) {
            let verified = verify(&flipped, &sig, &zone, user, sig.inception, &mut scratch);
            assert_ne!(verified, Ok(()), "verifies with {mask:#04x} at byte {at} of {}", msg.len());
        }
    }
}

// ---- The gateway's readers ----------------------------------------------------------------

fn check_edns_payload(msg: &[u8]) {
    // As the gateway calls it: on a query whose question it found.
    let Some(question_end) = dns::question_end(msg) else { return };
    let payload = edns_payload(msg, question_end);
    if let Some(parsed) = wire::parse(msg).filter(|parsed| parsed.questions.len() == 1) {
        assert_eq!(payload, parsed.opt().map(|opt| be16(msg, opt.rdlen_at - 6)), "the OPT record's payload");
    }
}

fn check_uncompressed_rdata(msg: &[u8]) {
    // As the gateway calls it: on the records `message::parse` read.
    let parsed = message::parse(msg);
    for record in parsed.sections.iter().flatten() {
        let (start, end) = record.rdata;
        let out = uncompressed_rdata(msg, record.rtype, record.rdata);
        let layout = match record.rtype {
            TYPE_RP => None,
            rtype => rdata_layout(rtype),
        };
        let Some((before, names, _)) = layout else {
            assert_eq!(out.as_deref(), Some(&msg[start..end]), "type {} is copied", record.rtype);
            continue;
        };
        // The names where they start, read strictly: each a prior name when compressed.
        let mut strict = Some((Vec::new(), start + before));
        for _ in 0..names {
            strict = strict.and_then(|(mut read, pos)| match read_name_counting(msg, pos) {
                Some((labels, next, pointers)) if pointers <= MAX_POINTERS => {
                    read.push(labels);
                    Some((read, next))
                }
                _ => None,
            });
        }
        let strict = strict.filter(|(_, pos)| *pos <= end);
        let Some(out) = out else {
            assert!(strict.is_none(), "type {}: names that read, in the RDATA, give None", record.rtype);
            continue;
        };
        assert_eq!(out[..before], msg[start..start + before], "type {}: the octets before the names", record.rtype);
        let mut at = before;
        let mut read = Vec::new();
        for _ in 0..names {
            let (labels, next) = read_uncompressed_name(&out, at).expect("a name written out uncompressed");
            read.push(labels);
            at = next;
        }
        if let Some((labels, pos)) = strict {
            assert_eq!(read, labels, "type {}: the names", record.rtype);
            assert_eq!(out[at..], msg[pos..end], "type {}: the octets after the names", record.rtype);
        }
    }
}

// ---- Seeds --------------------------------------------------------------------------------

/// One resource record.
fn record(owner: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// A signing input: mode, inception, offset, flip, ID, flags, type, class, records, name, and
/// the records as (section pick, type, RDATA).
fn signing_input(
    mode: u8,
    inception: u32,
    flags: u16,
    qtype: u16,
    name: &[u8],
    records: &[(u8, u16, &[u8])],
) -> Vec<u8> {
    let mut input = vec![mode];
    input.extend_from_slice(&inception.to_be_bytes());
    input.extend_from_slice(&450u32.to_be_bytes());
    input.extend_from_slice(&[0, 40, 0x01]);
    input.extend_from_slice(&0x5151u16.to_be_bytes());
    input.extend_from_slice(&flags.to_be_bytes());
    input.extend_from_slice(&qtype.to_be_bytes());
    input.extend_from_slice(&[0, 1, records.len() as u8, name.len() as u8]);
    input.extend_from_slice(name);
    for (pick, rtype, rdata) in records {
        input.push(*pick);
        input.extend_from_slice(&rtype.to_be_bytes());
        input.extend_from_slice(&[0, 1, rdata.len() as u8]);
        input.extend_from_slice(rdata);
    }
    input
}

/// The seed corpus (`fuzz/corpus/pvt_sig0/seed-NAME`): signing inputs (a query for an encrypted
/// name, an UPDATE with records and an OPT record, the signer in upper case, a time far off),
/// the messages they sign as received, one with a record after its SIG(0), one whose SIG is
/// counted in the authority section, and a primary's answer with compressed names in its RDATA.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let encr = crate::frontend::pvt::wire::DEFAULT_TYPE_ENCR;
    let opt: &[u8] = &[];
    let inputs = [
        ("sign-query", signing_input(1, 1_800_000_000, 0x0000, encr, b"q1Zx-encrypted.second", &[])),
        (
            "sign-update",
            signing_input(1, 0xffff_ff00, 0x2800, 6, b"", &[(0x81, encr, &[1, 0xbe, 0xef, 9, 9]), (2, 41, opt)]),
        ),
        ("sign-upper-signer", signing_input(3, 1_000_000, 0x0100, encr, b"www", &[(0x80, 16, b"\x02hi")])),
        ("sign-any-time", signing_input(5, 300, 0x0000, 25, b"", &[(2, 1, &[192, 0, 2, 1])])),
    ];
    let received = |input: &[u8]| [&[0u8][..], &signed(input[0], &mut Cursor::new(&input[1..])).msg].concat();
    let mut seeds: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for (name, input) in &inputs {
        seeds.push((name, input.clone()));
    }
    seeds.push(("received-query", received(&inputs[0].1)));
    seeds.push(("received-update", received(&inputs[1].1)));
    let mut after = received(&inputs[2].1);
    after[12] += 1;
    after.extend(record(&[0], 1, &[192, 0, 2, 2]));
    seeds.push(("received-record-after-sig", after));
    // The same SIG counted in the authority section: no SIG(0) ends the additional one.
    let mut authority = received(&inputs[0].1);
    (authority[10], authority[12]) = (authority[10] + 1, authority[12] - 1);
    seeds.push(("received-sig-in-authority", authority));
    // A primary's answer: MX, CNAME, SRV and MB pointing at the question, SOA in authority.
    let mut answer = vec![0, 0x12, 0x34, 0x85, 0x80, 0, 1, 0, 4, 0, 1, 0, 0];
    answer.extend_from_slice(b"\x04mail\x05alice\x04_pvt\x07example\x04test\x00\x00\x0f\x00\x01");
    let (question, zone) = ([0xc0, 0x0c], [0xc0, 0x11]);
    answer.extend(record(&question, 15, &[0, 10, 0xc0, 0x0c]));
    answer.extend(record(&question, 5, &[b"\x03www"[..].to_vec(), zone.to_vec()].concat()));
    answer.extend(record(&question, 33, &[&[0, 1, 0, 2, 3, 0x55][..], b"\x03dot", &zone].concat()));
    answer.extend(record(&question, 7, &zone));
    let soa = [&b"\x02ns"[..], &zone, b"\x0ahostmaster", &zone, &[0, 0, 0, 1][..], &[0; 16]].concat();
    answer.extend(record(&zone, 6, &soa));
    seeds.push(("received-answer-compressed", answer));
    seeds
}
