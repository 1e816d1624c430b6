//! Fuzz target `pvt_name`: the encrypted owner names of the private-subdomain gateway
//! (`frontend::pvt::wire`): `encrypted_name` and `encrypted_label_count` making them,
//! `zone_suffix` and `encrypted_labels` reading them back, `check_relative` and
//! `longest_relative_name` on the relative names sealed inside them.
//!
//! Input: a zone pick, a count octet, an overhead, then bytes read three ways: as a ciphertext
//! (its first 300 octets), as a relative name, and as a wire name (alone, and followed by the
//! zone).
//!
//! Invariants, on any input: no panic. A ciphertext makes a name exactly when the layout (a
//! count octet, the ciphertext cut into labels of 63 octets but the last, the zone) fits in 255
//! octets, else `TooLong` (`Empty` when it is empty); that name is valid and uncompressed, its
//! count octet is `encrypted_label_count`, `zone_suffix` finds the zone where it was put and
//! `encrypted_labels` gives back exactly the ciphertext; upper-cased, the zone is still found and
//! the labels give the ciphertext upper-cased (binary, never folded back); any other count octet
//! is `Count`. `longest_relative_name` is the longest that fits. `check_relative` is true
//! exactly for a run of labels that, before the zone, makes a name of at most 255 octets, and
//! that name then reads as one. On any bytes as a wire name, `zone_suffix` is the first label
//! boundary where the zone (any case) ends the name, and `encrypted_labels` there is what the
//! layout gives: the labels before the zone less the count octet, `Count` when it miscounts them.

use super::pvt::USER_ZONE;
use super::wire::{is_relative_name, read_uncompressed_name, MAX_NAME_OCTETS};
use super::Cursor;
use crate::frontend::pvt::wire::{
    check_relative, encrypted_label_count, encrypted_labels, encrypted_name, longest_relative_name, zone_suffix,
    NameError,
};

/// Longest ciphertext tried: past 255 octets every one is too long.
const MAX_CIPHERTEXT: usize = 300;
/// Longest name or relative name tried.
const MAX_NAME_INPUT: usize = 600;
const MAX_LABEL: usize = 63;

/// The zones the names are made under (all valid wire names): a user's zone, a `_pvt` zone in
/// mixed case, the root, one of 193 octets (little room left), one with binary label octets.
fn zone(pick: u8) -> Vec<u8> {
    match pick % 5 {
        0 => USER_ZONE.to_vec(),
        1 => b"\x04_PvT\x07Example\x04TEST\x00".to_vec(),
        2 => vec![0],
        3 => {
            let mut zone = Vec::new();
            for letter in [b'z', b'Y', b'x'] {
                zone.push(MAX_LABEL as u8);
                zone.extend(std::iter::repeat_n(letter, MAX_LABEL));
            }
            zone.push(0);
            zone
        }
        _ => b"\x04a\xffB\xc0\x00".to_vec(),
    }
}

pub fn run(data: &[u8]) {
    let mut input = Cursor::new(data);
    let zone = zone(input.u8());
    let other_count = input.u8();
    let overhead = usize::from(input.u8());
    let rest = input.rest();
    let rest = &rest[..rest.len().min(MAX_NAME_INPUT)];
    check_encrypted_name(&rest[..rest.len().min(MAX_CIPHERTEXT)], &zone, other_count);
    check_longest(&zone, overhead);
    check_relative_name(rest, &zone);
    check_wire_name(rest, &zone);
    let mut under_zone = rest.to_vec();
    under_zone.extend_from_slice(&zone);
    check_wire_name(&under_zone, &zone);
}

/// Labels of at most 63 octets that hold a count octet and `len` octets of ciphertext.
fn label_count(len: usize) -> usize {
    let mut labels = 1;
    while labels * MAX_LABEL < 1 + len {
        labels += 1;
    }
    labels
}

fn check_encrypted_name(ciphertext: &[u8], zone: &[u8], other_count: u8) {
    let labels = label_count(ciphertext.len());
    assert_eq!(encrypted_label_count(ciphertext.len()), labels, "labels for {} octets", ciphertext.len());
    let len = 1 + ciphertext.len() + labels + zone.len();
    let name = match encrypted_name(ciphertext, zone) {
        Err(NameError::Empty) => return assert!(ciphertext.is_empty(), "Empty for {} octets", ciphertext.len()),
        Err(NameError::TooLong) => {
            return assert!(!ciphertext.is_empty() && len > MAX_NAME_OCTETS, "TooLong at {len} octets")
        }
        Err(e) => panic!("{e:?} for {} octets", ciphertext.len()),
        Ok(name) => name,
    };
    assert!(!ciphertext.is_empty() && len <= MAX_NAME_OCTETS, "a name of {len} octets");
    assert_eq!(name.len(), len);
    assert_eq!(read_uncompressed_name(&name, 0).map(|(_, end)| end), Some(len), "a valid name");
    let at = len - zone.len();
    assert_eq!(&name[at..], zone);
    // The labels before the zone: 63 octets each but the last, the count octet first.
    let (mut pos, mut joined, mut count) = (0, Vec::new(), 0);
    while pos < at {
        let label = usize::from(name[pos]);
        assert!(label == MAX_LABEL || pos + 1 + label == at, "label of {label} octets at {pos}");
        joined.extend_from_slice(&name[pos + 1..pos + 1 + label]);
        pos += 1 + label;
        count += 1;
    }
    assert_eq!((pos, count, usize::from(joined[0])), (at, labels, labels), "label count");
    assert_eq!(&joined[1..], ciphertext);

    assert_eq!(zone_suffix(&name, zone), Some(at), "the zone found");
    assert_eq!(encrypted_labels(&name, at).as_deref(), Ok(ciphertext), "the ciphertext back");
    let upper = name.to_ascii_uppercase();
    assert_eq!(zone_suffix(&upper, zone), Some(at), "the zone found in upper case");
    assert_eq!(encrypted_labels(&upper, at), Ok(ciphertext.to_ascii_uppercase()), "labels are not case-folded");
    let mut miscounted = name.clone();
    miscounted[1] = if other_count == name[1] { other_count.wrapping_add(1) } else { other_count };
    assert_eq!(encrypted_labels(&miscounted, at), Err(NameError::Count), "count {}", miscounted[1]);
}

/// `longest_relative_name` under `zone` with `overhead` octets of type and seal: the ciphertext
/// of that many octets makes a name, one octet more does not.
fn check_longest(zone: &[u8], overhead: usize) {
    let longest = longest_relative_name(zone.len(), overhead);
    let fits = |relative: usize| encrypted_name(&vec![0x5a; overhead + relative], zone).is_ok();
    assert!(fits(longest) || (longest == 0 && !fits(0)), "{longest} under {} octets, overhead {overhead}", zone.len());
    assert!(!fits(longest + 1), "{} fits too", longest + 1);
}

fn check_relative_name(relative: &[u8], zone: &[u8]) {
    let valid = is_relative_name(relative, zone.len());
    assert_eq!(check_relative(relative, zone.len()), valid, "{relative:?} before {} octets", zone.len());
    if valid {
        let name = [relative, zone].concat();
        assert_eq!(read_uncompressed_name(&name, 0).map(|(_, end)| end), Some(name.len()), "{name:?}");
    }
}

/// The label boundaries of `name` read from its start: each label's offset, up to a root, the end
/// of the bytes, or a label that runs past them.
fn boundaries(name: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < name.len() {
        out.push(at);
        if name[at] == 0 {
            break;
        }
        at += 1 + usize::from(name[at]);
    }
    out
}

/// What `encrypted_labels` must give for the labels before `at`.
fn expected_labels(name: &[u8], at: usize) -> Result<Vec<u8>, NameError> {
    if at == 0 {
        return Err(NameError::Empty);
    }
    let labels: Vec<&[u8]> =
        boundaries(&name[..at]).into_iter().map(|b| &name[b + 1..b + 1 + usize::from(name[b])]).collect();
    if usize::from(labels[0][0]) != labels.len() {
        return Err(NameError::Count);
    }
    Ok([&labels[0][1..]].into_iter().chain(labels[1..].iter().copied()).flatten().copied().collect())
}

fn check_wire_name(name: &[u8], zone: &[u8]) {
    let at = zone_suffix(name, zone);
    let want = boundaries(name).into_iter().find(|&b| name[b..].eq_ignore_ascii_case(zone));
    assert_eq!(at, want, "the zone's place in {name:?}");
    let Some(at) = at else { return };
    assert_eq!(encrypted_labels(name, at), expected_labels(name, at), "labels of {name:?}");
    if read_uncompressed_name(name, 0).is_some_and(|(_, end)| end == name.len()) {
        // A valid name's length octets are below 64: upper case moves no boundary.
        let upper = name.to_ascii_uppercase();
        assert_eq!(zone_suffix(&upper, zone), Some(at), "the zone in {upper:?}");
        assert_eq!(encrypted_labels(&upper, at), expected_labels(&upper, at), "labels of {upper:?}");
    }
}

/// The seed corpus (`fuzz/corpus/pvt_name/seed-NAME`): ciphertexts around the label and length
/// limits under each zone, encrypted names whole and without their zone, relative names.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let input = |zone: u8, count: u8, overhead: u8, rest: &[u8]| [&[zone, count, overhead][..], rest].concat();
    let ciphertext = |len: usize| (0..len).map(|i| (i * 37 + 11) as u8).collect::<Vec<u8>>();
    let labels_of = |len: usize, pick: u8| {
        let name = encrypted_name(&ciphertext(len), &zone(pick)).expect("fits");
        name[..name.len() - zone(pick).len()].to_vec()
    };
    let longest = |pick: u8| (1..).take_while(|&len| encrypted_name(&ciphertext(len), &zone(pick)).is_ok()).count();
    let whole = encrypted_name(&ciphertext(90), USER_ZONE).expect("fits");
    let mut miscounted = labels_of(70, 0);
    miscounted[1] = 1;
    // 2 + 48 octets of type and seal: the ciphertext of a name.
    let sealed = 50;
    vec![
        ("ciphertext-1", input(0, 0, sealed, &ciphertext(1))),
        ("ciphertext-62", input(0, 1, sealed, &ciphertext(62))),
        ("ciphertext-63", input(1, 2, sealed, &ciphertext(63))),
        ("ciphertext-125", input(0, 3, sealed, &ciphertext(125))),
        ("ciphertext-longest-user", input(0, 4, sealed, &ciphertext(longest(0)))),
        ("ciphertext-too-long-user", input(0, 4, sealed, &ciphertext(longest(0) + 1))),
        ("ciphertext-longest-root", input(2, 5, 0, &ciphertext(longest(2)))),
        ("ciphertext-longest-long-zone", input(3, 2, sealed, &ciphertext(longest(3)))),
        ("ciphertext-binary-zone", input(4, 2, sealed, b"abcXYZ\x00\xff.\\")),
        ("labels-user", input(0, 9, sealed, &labels_of(100, 0))),
        ("labels-pvt-upper", input(1, 9, sealed, &labels_of(40, 1).to_ascii_uppercase())),
        ("labels-miscounted", input(0, 9, sealed, &miscounted)),
        ("name-whole", input(0, 9, sealed, &whole)),
        ("name-whole-upper", input(0, 9, sealed, &whole.to_ascii_uppercase())),
        ("relative-www", input(0, 0, sealed, b"\x03www\x04mail")),
        ("relative-63", input(1, 0, sealed, &[&[63u8][..], &[b'r'; 63]].concat())),
        ("relative-zero-label", input(0, 0, sealed, b"\x03www\x00\x01a")),
    ]
}
