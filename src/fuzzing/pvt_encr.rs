//! Fuzz target `pvt_encr`: the ENCR record and the seals of the private-subdomain gateway:
//! `wire::parse_encr` and `push_encr_header`, `seal::open_record` and `open_name` on any bytes,
//! and `seal_record` and `seal_name` with a seeded RNG, between fixed keys (`super::pvt`).
//!
//! Input: the first byte chooses. Even: the rest is ENCR RDATA, or a name's ciphertext, as
//! received. Odd: the rest holds an algorithm, a type, an RNG seed, an owner (also the relative
//! name sealed as a name), a byte to flip and the RDATA; bit 1 of the first byte has the user
//! seal to the provider instead of the other way, bit 2 seals under the zone in upper case and
//! opens under it in lower case instead of the other way.
//!
//! Invariants, on any input: no panic. RDATA: read exactly when it holds a known algorithm (1,
//! 2 or 3), a key tag and at least `enc` and an AEAD tag (32 + 16 octets), in place, and written
//! back byte for byte; random bytes never open as a record or as a name. Seals: a record sealed
//! with algorithm 1 or 2 opens to its type, the owner name at the start of owner ‖ RDATA (labels
//! of at most 63 octets, 255 in all) and the rest as RDATA, and does not open when no such name
//! is there or the algorithm is another; a name opens to its type and relative labels exactly
//! when they make, before the zone, a name of at most 255 octets, and through
//! `wire::encrypted_name` and back as the gateway reads it. What opens stops opening with any
//! one byte flipped (the one the input picks, a key tag octet, which the seal does not cover,
//! and the top bit of `enc`'s last octet, which X25519 ignores), from another sender, under
//! another zone; a name's ciphertext, whatever it holds, is no record.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::pvt::{self, keys, Input, OTHER_ZONE, USER_ZONE};
use super::wire::{is_relative_name, read_uncompressed_name};
use super::Cursor;
use crate::frontend::pvt::keys::KeyPair;
use crate::frontend::pvt::seal::{open_name, open_record, seal_name, seal_record, OpenError, OpenedRecord};
use crate::frontend::pvt::wire::{
    encrypted_labels, encrypted_name, parse_encr, push_encr_header, zone_suffix, Encr, ALG_HPKE_AES256GCM,
    ENCR_HEADER_LEN,
};

/// Longest RDATA tried (an ENCR record holds at most 65,535 octets; the work is the same).
const MAX_RDATA: usize = 2048;
/// RFC 9180 §7.1, DHKEM(X25519, HKDF-SHA256): `enc` is 32 octets; §7.3: AEAD tags are 16.
const ENC_LEN: usize = 32;
const AEAD_TAG_LEN: usize = 16;

pub fn run(data: &[u8]) {
    match pvt::input(data, MAX_RDATA) {
        Input::Received(rdata) => check_received(rdata),
        Input::Recipe(mode, input) => check_round_trip(mode, input),
    }
}

/// ENCR RDATA as §ENCR lays it out, read apart from `wire`: algorithm, key tag, then the HPKE
/// output, which is at least `enc` and a tag.
fn expected_encr(rdata: &[u8]) -> Option<(u8, u16, &[u8])> {
    match rdata {
        [algorithm @ 1..=3, tag0, tag1, sealed @ ..] if sealed.len() >= ENC_LEN + AEAD_TAG_LEN => {
            Some((*algorithm, u16::from_be_bytes([*tag0, *tag1]), sealed))
        }
        _ => None,
    }
}

fn check_received(rdata: &[u8]) {
    let encr = parse_encr(rdata);
    assert_eq!(encr.map(|e| (e.algorithm, e.key_tag, e.sealed)), expected_encr(rdata), "{rdata:?}");
    if let Some(Encr { algorithm, key_tag, sealed }) = encr {
        assert!(std::ptr::eq(sealed, &rdata[ENCR_HEADER_LEN..]), "read in place");
        let mut written = Vec::new();
        push_encr_header(algorithm, key_tag, &mut written);
        written.extend_from_slice(sealed);
        assert_eq!(written, rdata, "written back");
    }
    // Only the holder of a sender's private key makes what opens: never these bytes.
    let keys = keys();
    assert_eq!(open_record(&keys.user, &keys.provider.public, USER_ZONE, rdata), Err(OpenError));
    assert_eq!(open_record(&keys.provider, &keys.user.public, USER_ZONE, rdata), Err(OpenError));
    assert_eq!(open_name(&keys.provider, &keys.user.public, USER_ZONE, rdata), Err(OpenError));
}

/// `sealed` with `mask` applied at `at`, with the top bit of `enc`'s last octet flipped (`enc`
/// starts at `enc_at`), and with each of `also` (offset, mask) applied: none opens.
fn assert_flips_fail(
    sealed: &[u8],
    (at, mask): (usize, u8),
    enc_at: usize,
    also: &[(usize, u8)],
    opens: impl Fn(&[u8]) -> bool,
) {
    let flips = [(at % sealed.len(), mask.max(1)), (enc_at + ENC_LEN - 1, 0x80)];
    for &(at, mask) in flips.iter().chain(also) {
        let mut flipped = sealed.to_vec();
        flipped[at] ^= mask;
        assert!(!opens(&flipped), "opens with {mask:#04x} at byte {at} of {}", sealed.len());
    }
}

fn check_round_trip(mode: u8, mut input: Cursor) {
    let algorithm = input.u8();
    let rtype = input.u16();
    let mut rng = StdRng::seed_from_u64(u64::from(input.u8()));
    let owner_len = usize::from(input.u8());
    let owner = input.take(owner_len);
    let (flip_at, flip_mask) = (usize::from(input.u16()), input.u8());
    let rdata = input.rest();
    let rdata = &rdata[..rdata.len().min(MAX_RDATA)];
    let keys = keys();
    let (sender, recipient): (&KeyPair, &KeyPair) =
        if mode & 2 == 0 { (&keys.provider, &keys.user) } else { (&keys.user, &keys.provider) };
    // The AAD is the zone lowercased, whoever wrote it in which case.
    let (seal_zone, open_zone) = if mode & 4 == 0 {
        (USER_ZONE.to_vec(), USER_ZONE.to_ascii_uppercase())
    } else {
        (USER_ZONE.to_ascii_uppercase(), USER_ZONE.to_vec())
    };

    let mut sealed = b"kept".to_vec();
    seal_record(&mut rng, algorithm, sender, &recipient.public, &seal_zone, rtype, owner, rdata, &mut sealed);
    let sealed = &sealed[4..];
    assert_eq!(sealed.len(), ENCR_HEADER_LEN + ENC_LEN + 2 + owner.len() + rdata.len() + AEAD_TAG_LEN);
    let header = parse_encr(sealed).map(|e| (e.algorithm, e.key_tag));
    let known = matches!(algorithm, 1..=3).then_some((algorithm, recipient.public.tag));
    assert_eq!(header, known, "the header written for algorithm {algorithm}");
    let opened = open_record(recipient, &sender.public, &open_zone, sealed);
    let plaintext = [owner, rdata].concat();
    match (algorithm, read_uncompressed_name(&plaintext, 0)) {
        (1 | 2, Some((_, end))) => {
            let want = OpenedRecord { rtype, owner: plaintext[..end].to_vec(), rdata: plaintext[end..].to_vec() };
            assert_eq!(opened, Ok(want), "algorithm {algorithm}");
            let opens = |bytes: &[u8]| open_record(recipient, &sender.public, &open_zone, bytes).is_ok();
            // The key tag is outside the seal: only the check of it stands in the way.
            let tag_octet = (1 + flip_at % 2, flip_mask.max(1));
            assert_flips_fail(sealed, (flip_at, flip_mask), ENCR_HEADER_LEN, &[tag_octet], opens);
            assert_eq!(open_record(recipient, &keys.stranger.public, &open_zone, sealed), Err(OpenError), "stranger");
            assert_eq!(open_record(recipient, &sender.public, OTHER_ZONE, sealed), Err(OpenError), "another zone");
        }
        _ => assert_eq!(opened, Err(OpenError), "algorithm {algorithm}, owner {owner:?}"),
    }

    // The owner as a relative name, sealed by the user to the provider as a query's name.
    let relative = owner;
    let ciphertext = seal_name(&mut rng, &keys.user, &keys.provider.public, &seal_zone, rtype, relative);
    assert_eq!(ciphertext.len(), ENC_LEN + 2 + relative.len() + AEAD_TAG_LEN);
    // Whatever it holds (a whole owner name too, which a record would take), a name's
    // ciphertext is no record.
    let mut as_record = Vec::new();
    push_encr_header(ALG_HPKE_AES256GCM, keys.provider.public.tag, &mut as_record);
    as_record.extend_from_slice(&ciphertext);
    assert_eq!(open_record(&keys.provider, &keys.user.public, &open_zone, &as_record), Err(OpenError), "a name");
    let opened = open_name(&keys.provider, &keys.user.public, &open_zone, &ciphertext);
    if !is_relative_name(relative, USER_ZONE.len()) {
        return assert_eq!(opened, Err(OpenError), "{relative:?} is no relative name");
    }
    assert_eq!(opened, Ok((rtype, relative.to_vec())));
    let opens = |bytes: &[u8]| open_name(&keys.provider, &keys.user.public, &open_zone, bytes).is_ok();
    assert_flips_fail(&ciphertext, (flip_at, flip_mask), 0, &[], opens);
    // As the gateway gets it: the encrypted name in a question, its zone in the case sent.
    if let Ok(name) = encrypted_name(&ciphertext, &seal_zone) {
        let at = zone_suffix(&name, USER_ZONE).expect("the zone");
        let labels = encrypted_labels(&name, at).expect("the labels");
        assert_eq!(open_name(&keys.provider, &keys.user.public, &name[at..], &labels), Ok((rtype, relative.to_vec())));
    }
}

/// The seed corpus (`fuzz/corpus/pvt_encr/seed-NAME`): ENCR RDATA as received (well-formed with
/// each recipient's tag but sealed by nobody, and malformed), and round trips of common records
/// both ways, with owners that are and are not names.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let keys = keys();
    let received = |algorithm: u8, tag: u16, len: usize| {
        let mut rdata = vec![0];
        push_encr_header(algorithm, tag, &mut rdata);
        rdata.extend((0..len).map(|i| (i * 29 + 3) as u8));
        rdata
    };
    let (to_user, to_provider) = (keys.user.public.tag, keys.provider.public.tag);
    // mode, algorithm, type, RNG seed, owner, flip, RDATA.
    let round_trip = |mode: u8, algorithm: u8, rtype: u16, owner: &[u8], rdata: &[u8]| {
        let mut input = vec![mode, algorithm];
        input.extend_from_slice(&rtype.to_be_bytes());
        input.extend_from_slice(&[mode ^ algorithm, owner.len() as u8]);
        input.extend_from_slice(owner);
        input.extend_from_slice(&[0, 7, 0x10]);
        input.extend_from_slice(rdata);
        input
    };
    let www = b"\x03www\x05alice\x04_pvt\x07example\x04test\x00";
    // Three labels of 63 octets and one of `last`, without the root.
    let long = |last: u8| {
        let mut labels: Vec<u8> = (0..3).flat_map(|_| std::iter::once(63).chain([b'o'; 63])).collect();
        labels.push(last);
        labels.extend(std::iter::repeat_n(b'l', usize::from(last)));
        labels
    };
    let mx = b"\x00\x0a\x04mail\x05alice\x04_pvt\x07example\x04test\x00";
    vec![
        ("received-to-user", received(1, to_user, 60)),
        ("received-to-provider-chacha", received(2, to_provider, 200)),
        ("received-rsa", received(3, to_user, 256)),
        ("received-shortest", received(1, to_provider, ENC_LEN + AEAD_TAG_LEN)),
        ("received-short", received(1, to_provider, ENC_LEN + AEAD_TAG_LEN - 1)),
        ("received-algorithm-9", received(9, to_user, 60)),
        ("received-name", [&[0u8][..], &received(0, 0, 80)[4..]].concat()),
        ("a-to-user", round_trip(1, 1, 1, www, &[192, 0, 2, 1])),
        ("aaaa-to-user-chacha", round_trip(1, 2, 28, www, &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
        ("mx-from-user", round_trip(3, 1, 15, www, mx)),
        ("txt-upper-zone", round_trip(5, 2, 16, &www.to_ascii_uppercase(), b"\x0bhello world")),
        ("relative-www", round_trip(7, 1, 1, b"\x03www", b"\x05alice\x04_pvt\x07example\x04test\x00\xc0\x00\x02\x01")),
        ("owner-not-a-name", round_trip(1, 1, 1, b"\x03ww", &[])),
        // Owners of 255 and 256 octets, their root the first octet of the RDATA.
        ("owner-255", round_trip(1, 1, 16, &long(61), &[0, 5, b'h'])),
        ("owner-256", round_trip(3, 2, 16, &long(62), &[0, 5, b'h'])),
        ("algorithm-3", round_trip(1, 3, 1, www, &[192, 0, 2, 1])),
        ("empty-owner", round_trip(3, 1, 255, &[], &[])),
    ]
}
