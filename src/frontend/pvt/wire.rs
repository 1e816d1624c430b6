//! The private-subdomain formats on the wire, as docs/pvt.md profiles them: the ENCR record's
//! RDATA, and the encrypted owner name (a count octet, then the ciphertext cut into labels of
//! at most 63 octets, then the zone in clear). What is inside the ciphertexts is `seal`'s.
//!
//! Owns: ENCR RDATA layout, the label layout of encrypted names, zone matching. Never: decrypts
//! (that is `seal`), allocates on a parse that fails, or case-folds an encrypted label.

use crate::hpke::{TAG_LEN, X25519_KEY_LEN};

/// The ENCR RR type's default code point (private use, RFC 6895 §3.1).
pub const DEFAULT_TYPE_ENCR: u16 = 65302;
/// ENCR algorithm 1: HPKE auth mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
pub const ALG_HPKE_AES256GCM: u8 = 1;
/// ENCR algorithm 2: the same with ChaCha20-Poly1305.
pub const ALG_HPKE_CHACHA20: u8 = 2;
/// ENCR algorithm 3: RSA-OAEP-SHA256 wrapping an AES-256-GCM key (compatibility, off by default).
pub const ALG_RSA_OAEP: u8 = 3;
/// Octets before the HPKE output in ENCR RDATA: algorithm, recipient key tag.
pub const ENCR_HEADER_LEN: usize = 3;
/// Octets an HPKE seal adds to its plaintext: `enc` and the AEAD tag.
pub const SEAL_OVERHEAD: usize = X25519_KEY_LEN + TAG_LEN;
const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 255;

/// An ENCR record's RDATA, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encr<'a> {
    pub algorithm: u8,
    /// The tag of the key it is sealed to.
    pub key_tag: u16,
    /// `enc` ‖ ciphertext ‖ tag.
    pub sealed: &'a [u8],
}

/// Reads ENCR RDATA: an algorithm dotgate knows and at least an HPKE seal's overhead after it.
pub fn parse_encr(rdata: &[u8]) -> Option<Encr<'_>> {
    let (&algorithm, rest) = rdata.split_first()?;
    if !matches!(algorithm, ALG_HPKE_AES256GCM | ALG_HPKE_CHACHA20 | ALG_RSA_OAEP) || rest.len() < 2 + SEAL_OVERHEAD {
        return None;
    }
    Some(Encr { algorithm, key_tag: u16::from_be_bytes([rest[0], rest[1]]), sealed: &rest[2..] })
}

/// Appends ENCR RDATA's header; the seal follows.
pub fn push_encr_header(algorithm: u8, key_tag: u16, out: &mut Vec<u8>) {
    out.push(algorithm);
    out.extend_from_slice(&key_tag.to_be_bytes());
}

/// Why an encrypted name cannot be read or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the count octet does not match the encrypted labels")]
    Count,
    #[error("the name would be longer than 255 octets")]
    TooLong,
    #[error("no encrypted labels")]
    Empty,
}

/// Whether `name` (wire form, uncompressed) ends with `zone` (wire form), ASCII case-insensitive
/// on the zone's labels, aligned on a label boundary. Returns the offset where `zone` starts.
pub fn zone_suffix(name: &[u8], zone: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        if name.len() - at == zone.len() && name[at..].eq_ignore_ascii_case(zone) {
            return Some(at);
        }
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return None;
        }
        at += 1 + len;
        if at >= name.len() {
            return None;
        }
    }
}

/// The ciphertext of an encrypted name: the labels before `zone_at` (the user zone's offset in
/// `name`, from [`zone_suffix`]), the first octet of the first one counting them, concatenated
/// without their length octets. Labels are raw octets, compared and copied as binary.
pub fn encrypted_labels(name: &[u8], zone_at: usize) -> Result<Vec<u8>, NameError> {
    if zone_at == 0 {
        return Err(NameError::Empty);
    }
    let count = *name.get(1).ok_or(NameError::Count)?;
    if name[0] == 0 {
        return Err(NameError::Count);
    }
    let mut out = Vec::with_capacity(zone_at);
    let (mut at, mut labels) = (0, 0usize);
    while at < zone_at {
        let len = usize::from(name[at]);
        let label = &name[at + 1..at + 1 + len];
        out.extend_from_slice(if labels == 0 { &label[1..] } else { label });
        labels += 1;
        at += 1 + len;
    }
    if labels != usize::from(count) {
        return Err(NameError::Count);
    }
    Ok(out)
}

/// An encrypted name: `ciphertext` cut into labels (the first carrying the count octet and 62
/// ciphertext octets, the others 63), then `zone` (wire form).
pub fn encrypted_name(ciphertext: &[u8], zone: &[u8]) -> Result<Vec<u8>, NameError> {
    if ciphertext.is_empty() {
        return Err(NameError::Empty);
    }
    let labels = encrypted_label_count(ciphertext.len());
    let len = 1 + ciphertext.len() + labels + zone.len();
    if len > MAX_NAME || labels > usize::from(u8::MAX) {
        return Err(NameError::TooLong);
    }
    let mut name = Vec::with_capacity(len);
    let first = ciphertext.len().min(MAX_LABEL - 1);
    name.push((first + 1) as u8);
    name.push(labels as u8);
    name.extend_from_slice(&ciphertext[..first]);
    for chunk in ciphertext[first..].chunks(MAX_LABEL) {
        name.push(chunk.len() as u8);
        name.extend_from_slice(chunk);
    }
    name.extend_from_slice(zone);
    Ok(name)
}

/// Labels a ciphertext of `len` octets takes (the count octet counts in the first).
pub fn encrypted_label_count(len: usize) -> usize {
    (len + 1).div_ceil(MAX_LABEL)
}

/// The longest relative name (wire octets, length octets included, no root) whose encrypted
/// form fits in 255 octets below a zone of `zone_len` wire octets, with `overhead` octets of
/// type and seal around it.
pub fn longest_relative_name(zone_len: usize, overhead: usize) -> usize {
    (0..MAX_NAME)
        .rev()
        .find(|&relative| {
            let ciphertext = overhead + relative;
            1 + ciphertext + encrypted_label_count(ciphertext) + zone_len <= MAX_NAME
        })
        .unwrap_or(0)
}

/// Checks `relative` is a sequence of labels of 1 to 63 octets (no root) that, before `zone`,
/// makes a name of at most 255 octets.
pub fn check_relative(relative: &[u8], zone_len: usize) -> bool {
    if relative.len() + zone_len > MAX_NAME {
        return false;
    }
    let mut at = 0;
    while at < relative.len() {
        let len = usize::from(relative[at]);
        if len == 0 || len > MAX_LABEL || at + 1 + len > relative.len() {
            return false;
        }
        at += 1 + len;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Vec<u8> {
        crate::frontend::dnsenc::wire::name_from_text(text.as_bytes()).unwrap()
    }

    #[test]
    fn encrypted_names_round_trip_at_every_length() {
        let zone = name("alice._pvt.example.test.");
        for len in 1..=200 {
            let ciphertext: Vec<u8> = (0..len).map(|i| (i * 7 + 0x2e) as u8).collect();
            match encrypted_name(&ciphertext, &zone) {
                Ok(wire) => {
                    let at = zone_suffix(&wire, &zone).unwrap();
                    assert_eq!(encrypted_labels(&wire, at).unwrap(), ciphertext, "{len}");
                    assert!(wire.len() <= 255);
                }
                Err(NameError::TooLong) => assert!(len > 180, "{len}"),
                Err(e) => panic!("{len}: {e}"),
            }
        }
    }

    #[test]
    fn labels_are_binary_and_the_count_is_checked() {
        let zone = name("alice._pvt.example.test.");
        let ciphertext = b"ABC.\0def".to_vec();
        let wire = encrypted_name(&ciphertext, &zone).unwrap();
        let upper = wire.to_ascii_uppercase();
        let at = zone_suffix(&upper, &zone).expect("the zone matches in any case");
        assert_ne!(encrypted_labels(&upper, at).unwrap(), ciphertext, "encrypted labels are not case-folded");
        let mut wrong = wire.clone();
        wrong[1] = 2;
        assert_eq!(encrypted_labels(&wrong, at), Err(NameError::Count));
        assert_eq!(encrypted_labels(&zone, 0), Err(NameError::Empty));
        assert_eq!(zone_suffix(&name("alice._pvt.example.org."), &zone), None);
        assert_eq!(zone_suffix(&name("xalice._pvt.example.test."), &zone), None);
    }

    #[test]
    fn encr_rdata_is_read_strictly() {
        let mut rdata = Vec::new();
        push_encr_header(ALG_HPKE_AES256GCM, 0xbeef, &mut rdata);
        rdata.extend_from_slice(&[7; SEAL_OVERHEAD]);
        let encr = parse_encr(&rdata).unwrap();
        assert_eq!((encr.algorithm, encr.key_tag, encr.sealed.len()), (1, 0xbeef, SEAL_OVERHEAD));
        assert_eq!(parse_encr(&rdata[..rdata.len() - 1]), None);
        rdata[0] = 9;
        assert_eq!(parse_encr(&rdata), None);
        assert_eq!(parse_encr(&[]), None);
    }

    #[test]
    fn relative_names_are_checked() {
        assert!(check_relative(b"", 20));
        assert!(check_relative(b"\x03www\x01a", 20));
        assert!(!check_relative(b"\x00", 20));
        assert!(!check_relative(b"\x05www", 20));
        assert!(!check_relative(&[1; 240], 20));
    }
}
