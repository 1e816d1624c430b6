//! Fuzz target `dnsenc_nsk`: the NSK record's readers (`frontend::dnsenc::wire`):
//! `Nsk::parse_rdata` on the input as RDATA, `Nsk::parse_presentation` on it as text, and the
//! applicable-name matcher `star_match` (and `Nsk::applies_to`) on it as a pattern and a name.
//!
//! Invariants, on any input: no panic. RDATA: read exactly when the reader written here from
//! §3.1.1 reads it (every field whole, the name uncompressed with labels of at most 63 octets
//! and at most 255 in all, nothing after), to the same fields; what is read is written back
//! byte for byte and reads back the same from its presentation and generic forms, each one
//! line without control characters. Text: a record read is valid and reads back the same from
//! both forms; an error is one non-empty line without control characters. Matcher: the same
//! verdict as the textbook table, on a pattern and a name of up to 255 bytes (the input split
//! at its first line break), and `applies_to` the same as the matcher on the name's labels.

use crate::frontend::dnsenc::wire::{scheme, star_match, CodePoints, Nsk};

/// Longest pattern and name the matcher is checked on (a name's octets).
const MAX_MATCHED: usize = 255;

/// The input is read three ways: as RDATA, as text (UTF-8, lossily), and as a pattern and a
/// name split at its first line break.
pub fn run(data: &[u8]) {
    check_rdata(data);
    check_text(&String::from_utf8_lossy(data));
    check_star(data);
}

fn check_rdata(data: &[u8]) {
    let parsed = Nsk::parse_rdata(data);
    assert_eq!(parsed.as_ref().ok(), reference_rdata(data).as_ref(), "RDATA read");
    let Ok(nsk) = parsed else { return };
    let mut written = Vec::new();
    nsk.write_rdata(&mut written);
    assert_eq!(written, data, "RDATA written back");
    round_trip_text(&nsk);
    let _ = nsk.applies_to("ns1.example.com.");
}

fn check_text(text: &str) {
    match Nsk::parse_presentation(text) {
        Ok(nsk) => {
            assert_eq!(nsk.validate(), Ok(()), "{nsk:?}");
            round_trip_text(&nsk);
        }
        Err(e) => assert!(!e.is_empty() && !e.chars().any(char::is_control), "error {e:?}"),
    }
}

/// Both text forms of `nsk` are one line and read back as `nsk`.
fn round_trip_text(nsk: &Nsk) {
    for text in [nsk.to_presentation(), nsk.to_generic()] {
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(Nsk::parse_presentation(&text).as_ref(), Ok(nsk), "{text:?}");
    }
}

fn check_star(data: &[u8]) {
    let (pattern, name) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let pattern = String::from_utf8_lossy(&pattern[..pattern.len().min(MAX_MATCHED)]);
    let name = String::from_utf8_lossy(&name[..name.len().min(MAX_MATCHED)]);
    let want = reference_star(pattern.as_bytes(), name.as_bytes());
    assert_eq!(star_match(&pattern, &name), want, "{pattern:?} against {name:?}");
    // The pattern as an applicable name (when its labels make one): the same verdict, a
    // trailing dot on either side aside.
    let pattern = pattern.strip_suffix('.').unwrap_or(&pattern);
    let mut ns_name = Vec::new();
    for label in pattern.split('.') {
        if label.is_empty() || label.len() > 63 {
            return;
        }
        ns_name.push(label.len() as u8);
        ns_name.extend_from_slice(label.as_bytes());
    }
    ns_name.push(0);
    if ns_name.len() > MAX_MATCHED {
        return;
    }
    let nsk = Nsk { ns_name, ..Nsk::response_key(scheme::AES256_GCM, Vec::new()) };
    let bare = name.strip_suffix('.').unwrap_or(&name);
    assert_eq!(nsk.applies_to(&name), reference_star(pattern.as_bytes(), bare.as_bytes()), "{pattern:?} {name:?}");
}

/// Whether `name` matches `pattern` (`*` any run of bytes, ASCII case-insensitive): the
/// textbook table, quadratic and obviously right.
fn reference_star(pattern: &[u8], name: &[u8]) -> bool {
    let mut table = vec![vec![false; name.len() + 1]; pattern.len() + 1];
    table[0][0] = true;
    for i in 1..=pattern.len() {
        for j in 0..=name.len() {
            table[i][j] = if pattern[i - 1] == b'*' {
                table[i - 1][j] || (j > 0 && table[i][j - 1])
            } else {
                j > 0 && table[i - 1][j - 1] && pattern[i - 1].eq_ignore_ascii_case(&name[j - 1])
            };
        }
    }
    table[pattern.len()][name.len()]
}

/// NSK RDATA read from the layout of §3.1.1, apart from `wire`: `None` unless every field is
/// whole, the name is uncompressed and valid, and nothing follows the last scheme.
pub(crate) fn reference_rdata(data: &[u8]) -> Option<Nsk> {
    if data.len() > u16::MAX as usize {
        return None;
    }
    let (fixed, rest) = data.split_at_checked(6)?;
    let mut name_len = 0;
    loop {
        let len = usize::from(*rest.get(name_len)?);
        if len > 63 || name_len + 1 + len > 255 {
            return None;
        }
        name_len += 1 + len;
        if len == 0 {
            break;
        }
    }
    let (ns_name, rest) = rest.split_at_checked(name_len)?;
    let [s0, s1, k0, k1, rest @ ..] = rest else { return None };
    let (key, rest) = rest.split_at_checked(usize::from(u16::from_be_bytes([*k0, *k1])))?;
    let [c0, c1, list @ ..] = rest else { return None };
    if list.len() != 2 * usize::from(u16::from_be_bytes([*c0, *c1])) {
        return None;
    }
    Some(Nsk {
        key_id: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]),
        priority: fixed[4],
        reserved: fixed[5],
        ns_name: ns_name.to_vec(),
        scheme: u16::from_be_bytes([*s0, *s1]),
        key: key.to_vec(),
        response_schemes: list.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect(),
    })
}

/// The seed corpus (`fuzz/corpus/dnsenc_nsk/seed-NAME`): records as RDATA and as text in both
/// forms, and matcher inputs.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let draft =
        Nsk::parse_presentation(crate::frontend::dnsenc::wire::DRAFT_NSK_EXAMPLE).expect("the draft's example reads");
    let x25519 = Nsk {
        key_id: 1,
        priority: 20,
        reserved: 0,
        ns_name: vec![0],
        scheme: scheme::X25519_HPKE,
        key: (0..32).collect(),
        response_schemes: vec![scheme::CHACHA20_POLY1305, scheme::AES256_GCM],
    };
    let response_key = Nsk::response_key(scheme::AES256_GCM, vec![0x11; 32]);
    let odd = Nsk {
        key_id: u32::MAX,
        priority: 255,
        reserved: 7,
        ns_name: b"\x06n.s;1 \x02\x00*\x07Example\x00".to_vec(),
        scheme: 0x00F7,
        key: vec![0xf0; 5],
        response_schemes: vec![0x80F3],
    };
    let rdata = |nsk: &Nsk| {
        let mut out = Vec::new();
        nsk.write_rdata(&mut out);
        out
    };
    let mut record = Vec::new();
    response_key.write_record(&CodePoints::default(), &mut record);
    vec![
        ("rdata-draft-example", rdata(&draft)),
        ("rdata-x25519", rdata(&x25519)),
        ("rdata-response-key", rdata(&response_key)),
        ("rdata-odd", rdata(&odd)),
        ("record-response-key", record),
        ("text-draft-example", crate::frontend::dnsenc::wire::DRAFT_NSK_EXAMPLE.as_bytes().to_vec()),
        ("text-x25519", x25519.to_presentation().into_bytes()),
        ("text-x25519-generic", x25519.to_generic().into_bytes()),
        ("text-escapes", Nsk { reserved: 0, ..odd.clone() }.to_presentation().into_bytes()),
        ("text-odd-generic", odd.to_presentation().into_bytes()),
        (
            "text-chunks",
            b"resolver.example. 60 IN NSK ( 5 1 . x25519 MDEy \"MzQ1\nNjc4OQ==\" ; key\n 33009 7 )".to_vec(),
        ),
        ("star-draft", b"ns*.example.com\nns1.foobar.example.com".to_vec()),
        ("star-case", b"NS*.EXAMPLE.COM.\nns.example.com.".to_vec()),
        ("star-pathological", format!("{}b\n{}", "*a".repeat(60), "a".repeat(200)).into_bytes()),
    ]
}
