//! What one DNSSEC signature proves, for the DNSENC client's key fetch (`trust` walks the
//! chain): the RRSIG and DNSKEY RDATA, the canonical signing input of an RRset (RFC 4034
//! §3.1.8.1 and §6, wildcards by the RRSIG's label count), the signature check of the
//! algorithms RFC 8624 says a validator must know (8 RSASHA256, 10 RSASHA512, 13
//! ECDSAP256SHA256, 14 ECDSAP384SHA384, 15 ED25519), key tags (RFC 4034 Appendix B) and DS
//! digests (2 SHA-256, 4 SHA-384).
//!
//! Hand-written on aws-lc-rs rather than taken from hickory-proto 0.25's `dnssec-aws-lc-rs`: the
//! client needs these few functions over RDATA it already has as bytes, and the crate would put
//! a second hickory-proto beside the tests' 0.24 and about fifteen more crates (url, idna,
//! futures, time...) into the served binary for a command an operator runs by hand. The
//! checks are tested against a real BIND's signatures (tests/dnsenc_publish.rs) and RFC vectors.
//!
//! It never decides what to trust (that is `trust`), never reads the network or the clock: the
//! caller passes the time.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// RR types the chain uses.
pub const TYPE_DS: u16 = 43;
pub const TYPE_RRSIG: u16 = 46;
pub const TYPE_DNSKEY: u16 = 48;
pub const CLASS_IN: u16 = 1;

/// DNSKEY flags: a zone key (bit 7), and the secure entry point (bit 15) trust anchors point at.
pub const FLAG_ZONE: u16 = 0x0100;
pub const FLAG_REVOKE: u16 = 0x0080;

/// An RRSIG's RDATA (RFC 4034 §3.1), borrowed from the message it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrsig<'a> {
    pub type_covered: u16,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    /// The signer's name, uncompressed wire form, lowercased.
    pub signer: Vec<u8>,
    /// The RDATA up to the signature: the first part of the signing input (with the signer's
    /// name lowercased, as RFC 4034 §6.2 asks).
    pub head: Vec<u8>,
    pub signature: &'a [u8],
}

/// A DNSKEY's RDATA (RFC 4034 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dnskey<'a> {
    pub flags: u16,
    pub protocol: u8,
    pub algorithm: u8,
    pub public_key: &'a [u8],
    /// The whole RDATA (key tags and DS digests are over it).
    pub rdata: &'a [u8],
}

/// A DS's RDATA (RFC 4034 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ds<'a> {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: &'a [u8],
}

/// The end of the uncompressed name at `start`, or `None` when it is malformed or compressed
/// (RRSIG's signer name may not be, RFC 4034 §3.1.7).
fn name_end(buf: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    loop {
        let len = usize::from(*buf.get(pos)?);
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + len;
        if pos - start > 255 {
            return None;
        }
        if len == 0 {
            return Some(pos);
        }
    }
}

/// A name in wire form with its ASCII letters lowercased (RFC 4034 §6.2).
pub fn lowercase_name(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

/// The labels of a wire-form name, the root excluded.
pub fn labels(name: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(name.len());
        out.push(&name[pos + 1..end]);
        pos = end;
    }
    out
}

/// Whether `name` is `ancestor` or below it (both lowercased wire form).
pub fn is_at_or_below(name: &[u8], ancestor: &[u8]) -> bool {
    let (name, ancestor) = (labels(name), labels(ancestor));
    name.len() >= ancestor.len() && name[name.len() - ancestor.len()..] == ancestor[..]
}

/// The wire-form name with its first label taken off; the root stays the root.
pub fn parent(name: &[u8]) -> &[u8] {
    match name.first() {
        Some(&len) if len != 0 => &name[1 + usize::from(len)..],
        _ => name,
    }
}

pub fn parse_rrsig(rdata: &[u8]) -> Option<Rrsig<'_>> {
    let fixed = rdata.get(..18)?;
    let be16 = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    let signer_end = name_end(rdata, 18)?;
    let signer = lowercase_name(&rdata[18..signer_end]);
    let mut head = rdata[..18].to_vec();
    head.extend_from_slice(&signer);
    let signature = &rdata[signer_end..];
    if signature.is_empty() {
        return None;
    }
    Some(Rrsig {
        type_covered: be16(0),
        algorithm: fixed[2],
        labels: fixed[3],
        original_ttl: be32(4),
        expiration: be32(8),
        inception: be32(12),
        key_tag: be16(16),
        signer,
        head,
        signature,
    })
}

pub fn parse_dnskey(rdata: &[u8]) -> Option<Dnskey<'_>> {
    let fixed = rdata.get(..4)?;
    let public_key = &rdata[4..];
    if public_key.is_empty() {
        return None;
    }
    Some(Dnskey {
        flags: u16::from_be_bytes([fixed[0], fixed[1]]),
        protocol: fixed[2],
        algorithm: fixed[3],
        public_key,
        rdata,
    })
}

pub fn parse_ds(rdata: &[u8]) -> Option<Ds<'_>> {
    let fixed = rdata.get(..4)?;
    let digest = &rdata[4..];
    if digest.is_empty() {
        return None;
    }
    Some(Ds { key_tag: u16::from_be_bytes([fixed[0], fixed[1]]), algorithm: fixed[2], digest_type: fixed[3], digest })
}

/// The key tag of a DNSKEY's RDATA (RFC 4034 Appendix B; algorithm 1's old rule is not needed:
/// RSAMD5 is not validated).
pub fn key_tag(dnskey_rdata: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, &b) in dnskey_rdata.iter().enumerate() {
        sum += if i % 2 == 0 { u32::from(b) << 8 } else { u32::from(b) };
    }
    sum += (sum >> 16) & 0xffff;
    (sum & 0xffff) as u16
}

/// Whether `ds` is a digest of the DNSKEY `key` at `owner` (lowercased wire form): digest types
/// 2 (SHA-256) and 4 (SHA-384); SHA-1 (1) is not accepted (RFC 8624 §3.3: MUST NOT be used for
/// validation where another is there, and every signer today publishes 2).
pub fn ds_matches(owner: &[u8], key: &Dnskey<'_>, ds: &Ds<'_>) -> bool {
    let algorithm = match ds.digest_type {
        2 => &digest::SHA256,
        4 => &digest::SHA384,
        _ => return false,
    };
    if ds.key_tag != key_tag(key.rdata) || ds.algorithm != key.algorithm {
        return false;
    }
    let mut context = digest::Context::new(algorithm);
    context.update(&lowercase_name(owner));
    context.update(key.rdata);
    context.finish().as_ref() == ds.digest
}

/// Whether `algorithm` is one this module checks.
pub fn is_supported_algorithm(algorithm: u8) -> bool {
    matches!(algorithm, 8 | 10 | 13 | 14 | 15)
}

/// Whether `now` (seconds since the epoch, mod 2^32) is within the signature's inception and
/// expiration, compared in serial number arithmetic (RFC 4034 §3.1.5, RFC 1982).
pub fn is_current(sig: &Rrsig<'_>, now: u32) -> bool {
    let not_before = now.wrapping_sub(sig.inception) as i32 >= 0;
    let not_after = sig.expiration.wrapping_sub(now) as i32 >= 0;
    not_before && not_after
}

/// The signing input of the RRset `owner`/`rtype`/`class` with RDATAs `rdatas` under `sig`:
/// the RRSIG RDATA without its signature, then each RR in canonical form and order (owner
/// lowercased, or the wildcard it was expanded from; the original TTL; duplicates once). None
/// of the types the chain validates (DNSKEY, DS, NSK) has names in its RDATA, so RDATA is taken
/// as it is. `None` when the RRSIG's label count exceeds the owner's.
pub fn signing_input(owner: &[u8], rtype: u16, class: u16, rdatas: &[&[u8]], sig: &Rrsig<'_>) -> Option<Vec<u8>> {
    let owner = lowercase_name(owner);
    let owner_labels = labels(&owner);
    let wanted = usize::from(sig.labels);
    // A leading "*" does not count (RFC 4034 §3.1.3).
    let counted = owner_labels.len() - usize::from(owner_labels.first() == Some(&&b"*"[..]));
    if wanted > counted {
        return None;
    }
    let owner = if wanted < counted {
        // Expanded from a wildcard: "*." and the last `wanted` labels (RFC 4035 §5.3.2).
        let mut name = vec![1, b'*'];
        for label in &owner_labels[owner_labels.len() - wanted..] {
            name.push(label.len() as u8);
            name.extend_from_slice(label);
        }
        name.push(0);
        name
    } else {
        owner
    };
    let mut sorted: Vec<&[u8]> = rdatas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = sig.head.clone();
    for rdata in sorted {
        out.extend_from_slice(&owner);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&sig.original_ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    Some(out)
}

/// Checks `signature` over `message` with the DNSKEY `key`; a reason when it fails.
pub fn verify_signature(key: &Dnskey<'_>, message: &[u8], signature_bytes: &[u8]) -> Result<(), String> {
    let fail =
        |_| format!("the signature does not verify with key {} (algorithm {})", key_tag(key.rdata), key.algorithm);
    match key.algorithm {
        8 | 10 => {
            let (e, n) = rsa_components(key.public_key).ok_or("an RSA DNSKEY whose key does not parse")?;
            // RFC 8624 still has validators accept 1,024-bit RSA keys, so the legacy range.
            let params = if key.algorithm == 8 {
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            } else {
                &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
            };
            RsaPublicKeyComponents { n, e }.verify(params, message, signature_bytes).map_err(fail)
        }
        13 | 14 => {
            let (params, len): (&'static signature::EcdsaVerificationAlgorithm, usize) = if key.algorithm == 13 {
                (&signature::ECDSA_P256_SHA256_FIXED, 64)
            } else {
                (&signature::ECDSA_P384_SHA384_FIXED, 96)
            };
            if key.public_key.len() != len {
                return Err(format!("an ECDSA DNSKEY of {} octets, not {len}", key.public_key.len()));
            }
            // DNSSEC gives x ‖ y (RFC 6605 §4); aws-lc-rs takes the uncompressed SEC 1 point.
            let mut point = Vec::with_capacity(1 + len);
            point.push(0x04);
            point.extend_from_slice(key.public_key);
            UnparsedPublicKey::new(params, &point).verify(message, signature_bytes).map_err(fail)
        }
        15 => {
            UnparsedPublicKey::new(&signature::ED25519, key.public_key).verify(message, signature_bytes).map_err(fail)
        }
        other => Err(format!("DNSSEC algorithm {other} is not one dotgate validates (8, 10, 13, 14, 15)")),
    }
}

/// The exponent and modulus of an RSA DNSKEY (RFC 3110 §2).
fn rsa_components(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = match *key.first()? {
        0 => (usize::from(u16::from_be_bytes([*key.get(1)?, *key.get(2)?])), &key[3..]),
        n => (usize::from(n), &key[1..]),
    };
    if len == 0 || rest.len() <= len {
        return None;
    }
    Some(rest.split_at(len))
}

/// Checks that `sig` signs the RRset (`owner`, `rtype`, `class`, `rdatas`) with `key`: the key is
/// a zone key of the signer with the RRSIG's algorithm and tag, the signature is current at
/// `now`, and it verifies.
pub fn verify_rrset(
    owner: &[u8],
    rtype: u16,
    class: u16,
    rdatas: &[&[u8]],
    sig: &Rrsig<'_>,
    key: &Dnskey<'_>,
    now: u32,
) -> Result<(), String> {
    if sig.type_covered != rtype {
        return Err(format!("the RRSIG covers type {}, not {rtype}", sig.type_covered));
    }
    if key.algorithm != sig.algorithm || key_tag(key.rdata) != sig.key_tag {
        return Err("the RRSIG names another key".to_owned());
    }
    if key.protocol != 3 || key.flags & FLAG_ZONE == 0 || key.flags & FLAG_REVOKE != 0 {
        return Err(format!("key {} is not a zone key in service (flags {})", sig.key_tag, key.flags));
    }
    if !is_current(sig, now) {
        return Err(format!(
            "the RRSIG by key {} is valid from {} to {} (seconds since 1970), not now ({now})",
            sig.key_tag, sig.inception, sig.expiration
        ));
    }
    let input = signing_input(owner, rtype, class, rdatas, sig)
        .ok_or("the RRSIG's label count is larger than the owner name's")?;
    verify_signature(key, &input, sig.signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(text: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(text.split_whitespace().collect::<String>()).unwrap()
    }

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn name(text: &str) -> Vec<u8> {
        crate::frontend::dnsenc::wire::name_from_text(text.as_bytes()).unwrap()
    }

    fn dnskey_rdata(flags: u16, algorithm: u8, key: &[u8]) -> Vec<u8> {
        let mut rdata = flags.to_be_bytes().to_vec();
        rdata.extend_from_slice(&[3, algorithm]);
        rdata.extend_from_slice(key);
        rdata
    }

    /// An RRSIG's RDATA: (type covered, algorithm, labels, original TTL), (expiration,
    /// inception, key tag), signer, signature in base64.
    fn rrsig_rdata(head: (u16, u8, u8, u32), times: (u32, u32, u16), signer: &str, signature: &str) -> Vec<u8> {
        let mut rdata = head.0.to_be_bytes().to_vec();
        rdata.extend_from_slice(&[head.1, head.2]);
        rdata.extend_from_slice(&head.3.to_be_bytes());
        rdata.extend_from_slice(&times.0.to_be_bytes());
        rdata.extend_from_slice(&times.1.to_be_bytes());
        rdata.extend_from_slice(&times.2.to_be_bytes());
        rdata.extend_from_slice(&name(signer));
        rdata.extend_from_slice(&b64(signature));
        rdata
    }

    /// RFC 4034 Appendix B's key tag and RFC 4509 §2.3's DS (example.net's key 60485, SHA-256).
    #[test]
    fn key_tag_and_ds_digest_match_rfc_4509s_example() {
        let key = dnskey_rdata(
            256,
            5,
            &b64("AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw=="),
        );
        assert_eq!(key_tag(&key), 60485);
        let key = parse_dnskey(&key).unwrap();
        let digest = hex("D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A");
        let ds = Ds { key_tag: 60485, algorithm: 5, digest_type: 2, digest: &digest };
        assert!(ds_matches(&name("dskey.example.com."), &key, &ds));
        assert!(ds_matches(&name("DSKEY.Example.COM."), &key, &ds), "owner compared lowercased");
        assert!(!ds_matches(&name("other.example.com."), &key, &ds));
        let sha1 = Ds { digest_type: 1, ..ds };
        assert!(!ds_matches(&name("dskey.example.com."), &key, &sha1), "SHA-1 DS is not accepted");
    }

    /// RFC 6605 §6.1's example: example.net.'s P-256 key signs www.example.net. A 192.0.2.1.
    #[test]
    fn ecdsa_p256_verifies_rfc_6605s_example_and_not_a_changed_rrset() {
        let key = dnskey_rdata(
            257,
            13,
            &b64("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA=="),
        );
        let key = parse_dnskey(&key).unwrap();
        assert_eq!(key_tag(key.rdata), 55648);
        // 20100909100439 and 20100812100439.
        let rrsig = rrsig_rdata(
            (1, 13, 3, 3600),
            (1284026679, 1281607479, 55648),
            "example.net.",
            "qx6wLYqmh+l9oCKTN6qIc+bw6ya+KJ8oMz0YP107epXAyGmt+3SNruPFKG7tZoLBLlUzGGus7ZwmwWep666VCw==",
        );
        let sig = parse_rrsig(&rrsig).unwrap();
        let owner = name("www.example.net.");
        let a: &[u8] = &[192, 0, 2, 1];
        let at = 1284026679 - 10;
        verify_rrset(&owner, 1, CLASS_IN, &[a], &sig, &key, at).unwrap();
        verify_rrset(&name("WWW.EXAMPLE.NET."), 1, CLASS_IN, &[a], &sig, &key, at).unwrap();
        assert!(verify_rrset(&owner, 1, CLASS_IN, &[&[192, 0, 2, 2]], &sig, &key, at).is_err());
        assert!(verify_rrset(&owner, 1, CLASS_IN, &[a], &sig, &key, 1284026679 + 1)
            .unwrap_err()
            .contains("valid from"));
        assert!(verify_rrset(&owner, 1, CLASS_IN, &[a], &sig, &key, 1281607479 - 1).is_err());
        // Expanded from *.example.net: the same signature holds for any name one label below.
        let mut wild = rrsig.clone();
        wild[3] = 2;
        let wild = parse_rrsig(&wild).unwrap();
        assert_eq!(
            signing_input(&name("a.b.example.net."), 1, 1, &[a], &wild),
            signing_input(&name("*.example.net."), 1, 1, &[a], &wild)
        );
        assert!(signing_input(&name("example.net."), 1, 1, &[a], &sig).is_none(), "3 labels, owner has 2");
    }

    /// RFC 8080 §6.1's example: example.com.'s Ed25519 key signs its MX RRset.
    #[test]
    fn ed25519_verifies_rfc_8080s_example() {
        let key = dnskey_rdata(257, 15, &b64("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4="));
        let key = parse_dnskey(&key).unwrap();
        assert_eq!(key_tag(key.rdata), 3613);
        // MX, 20150820000000 and 20150730000000.
        let rrsig = rrsig_rdata(
            (15, 15, 2, 3600),
            (1440021600, 1438207200, 3613),
            "example.com.",
            "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg==",
        );
        let sig = parse_rrsig(&rrsig).unwrap();
        let mut mx = 10u16.to_be_bytes().to_vec();
        mx.extend_from_slice(&name("mail.example.com."));
        let at = 1440021600 - 1;
        verify_rrset(&name("example.com."), 15, CLASS_IN, &[&mx], &sig, &key, at).unwrap();
        let mut other = mx.clone();
        other[1] = 20;
        assert!(verify_rrset(&name("example.com."), 15, CLASS_IN, &[&other], &sig, &key, at).is_err());
    }

    #[test]
    fn a_key_that_is_not_a_zone_key_or_is_revoked_signs_nothing() {
        let sig_rdata = {
            let mut r = vec![0, 1, 15, 2, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0];
            let key = dnskey_rdata(0, 15, &[7; 32]);
            r.extend_from_slice(&key_tag(&key).to_be_bytes());
            r.extend_from_slice(&name("example."));
            r.extend_from_slice(&[1; 64]);
            r
        };
        let sig = parse_rrsig(&sig_rdata).unwrap();
        let key = dnskey_rdata(0, 15, &[7; 32]);
        let err = verify_rrset(&name("example."), 1, 1, &[&[1, 2, 3, 4]], &sig, &parse_dnskey(&key).unwrap(), 5);
        assert!(err.unwrap_err().contains("not a zone key"));
    }

    #[test]
    fn serial_arithmetic_handles_the_2106_wrap() {
        let sig = Rrsig {
            type_covered: 1,
            algorithm: 15,
            labels: 1,
            original_ttl: 0,
            inception: u32::MAX - 10,
            expiration: 10,
            key_tag: 0,
            signer: vec![0],
            head: vec![],
            signature: &[1],
        };
        assert!(is_current(&sig, u32::MAX));
        assert!(is_current(&sig, 5));
        assert!(!is_current(&sig, 11));
        assert!(!is_current(&sig, u32::MAX - 11));
    }

    #[test]
    fn malformed_rdata_is_none() {
        assert!(parse_rrsig(&[0; 17]).is_none());
        assert!(parse_rrsig(&[0; 19]).is_none(), "a root signer and no signature");
        let mut compressed = vec![0; 18];
        compressed.extend_from_slice(&[0xc0, 12, 1]);
        assert!(parse_rrsig(&compressed).is_none());
        assert!(parse_dnskey(&[1, 1, 3]).is_none());
        assert!(parse_dnskey(&[1, 1, 3, 8]).is_none());
        assert!(parse_ds(&[0, 1, 8, 2]).is_none());
        assert_eq!(rsa_components(&[0, 0]), None);
        assert_eq!(rsa_components(&[3, 1, 0, 1]), None, "an exponent and no modulus");
        assert_eq!(rsa_components(&[1, 3, 9, 9]), Some((&[3u8][..], &[9u8, 9][..])));
    }

    #[test]
    fn names() {
        let www = name("www.Example.net.");
        assert!(is_at_or_below(&lowercase_name(&www), &name("example.net.")));
        assert!(is_at_or_below(&name("example.net."), &name("example.net.")));
        assert!(is_at_or_below(&name("example.net."), &[0]));
        assert!(!is_at_or_below(&name("net."), &name("example.net.")));
        assert!(!is_at_or_below(&name("xexample.net."), &name("example.net.")));
        assert_eq!(parent(&www), &name("Example.net.")[..]);
        assert_eq!(parent(&[0]), &[0][..]);
    }
}
