//! SIG(0) (RFC 2931) over the bytes of a message as they were received: finding the SIG record
//! that ends a request, checking its fields and time window, and verifying its signature with
//! the signer's KEY: Ed25519, or RSASHA256 for a user key of the compatibility mode.
//!
//! Hand-written rather than hickory-proto's verifier: RFC 2931 §3.1 signs the message as sent,
//! and hickory re-encodes a parsed message to check it, which can differ from the sender's bytes
//! (name compression is the sender's choice), so a valid signature from another implementation
//! could fail. This reads the bytes in place, allocating nothing but the signed-data scratch the
//! caller lends. Signing here is for the test vectors; the `dotgate pvt` client signs with
//! hickory-proto (and the tests check each against the other).
//!
//! Never: accepts a SIG that is not the last record, covers anything but the whole message, or
//! lies outside its window by more than the fudge.

use crate::dns::{skip_name, HEADER_LEN};

use super::keys::{
    KeyPair, PublicKey, RsaPublicKey, UserPublic, ALGORITHM_ED25519, ALGORITHM_RSASHA256, SIGNATURE_LEN,
};

/// RR type SIG.
pub const TYPE_SIG: u16 = 24;
const CLASS_ANY: u16 = 255;
/// Seconds a signature's window may be off the gateway's clock either way.
pub const FUDGE: u32 = 300;
/// Longest window dotgate signs with (the client's signatures last this long).
pub const SIGN_WINDOW: u32 = 300;
/// Octets of a SIG(0) RDATA before the signer's name.
const FIXED: usize = 18;

/// Why a request's SIG(0) is not accepted (each is REFUSED; the label is the metric's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Sig0Error {
    #[error("no SIG(0) record ends the message")]
    Missing,
    #[error("the SIG(0) record is malformed")]
    Malformed,
    #[error("the SIG(0) signer is not the zone's key")]
    WrongSigner,
    #[error("the SIG(0) time window does not hold the current time")]
    Time,
    #[error("the SIG(0) signature does not verify")]
    Signature,
}

impl Sig0Error {
    /// The reason label on `dotgate_pvt_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Sig0Error::Missing => "unsigned",
            Sig0Error::Malformed => "sig0_malformed",
            Sig0Error::WrongSigner => "wrong_signer",
            Sig0Error::Time => "sig0_time",
            Sig0Error::Signature => "bad_signature",
        }
    }
}

/// A SIG(0) record at the end of a message, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sig0<'a> {
    /// Where the SIG record starts: the signed message is everything before it.
    pub start: usize,
    pub algorithm: u8,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    /// The signer's name, uncompressed wire form as sent.
    pub signer: &'a [u8],
    /// RDATA up to the signature (what is signed before the message).
    pub rdata_head: &'a [u8],
    pub signature: &'a [u8],
}

/// Where each record of `msg` starts, after the question section; `None` if it does not parse.
fn last_record_start(msg: &[u8]) -> Option<Option<usize>> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let mut pos = HEADER_LEN;
    for _ in 0..count(4) {
        pos = skip_name(msg, pos)? + 4;
    }
    let records = count(6) + count(8) + count(10);
    let mut last = None;
    for _ in 0..records {
        last = Some(pos);
        let end = skip_name(msg, pos)?;
        let rdlength = usize::from(u16::from_be_bytes([*msg.get(end + 8)?, *msg.get(end + 9)?]));
        pos = end + 10 + rdlength;
    }
    (pos == msg.len()).then_some(last)
}

/// The SIG(0) that ends `msg`: the last additional record, a SIG owned by the root, class ANY,
/// TTL 0, covering type 0, with an uncompressed signer name.
pub fn find(msg: &[u8]) -> Result<Sig0<'_>, Sig0Error> {
    let arcount = msg.get(10..12).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let start = last_record_start(msg).ok_or(Sig0Error::Malformed)?;
    let start = match start {
        Some(start) if arcount > 0 => start,
        _ => return Err(Sig0Error::Missing),
    };
    let fixed = &msg[start..];
    if fixed.len() < 11 || u16::from_be_bytes([fixed[1], fixed[2]]) != TYPE_SIG {
        return Err(Sig0Error::Missing);
    }
    if fixed[0] != 0 || u16::from_be_bytes([fixed[3], fixed[4]]) != CLASS_ANY || fixed[5..9] != [0; 4] {
        return Err(Sig0Error::Malformed);
    }
    let rdata = &fixed[11..];
    if rdata.len() < FIXED + 1 || rdata[..2] != [0, 0] || rdata[3] != 0 || rdata[4..8] != [0; 4] {
        return Err(Sig0Error::Malformed);
    }
    let be32 = |at: usize| u32::from_be_bytes([rdata[at], rdata[at + 1], rdata[at + 2], rdata[at + 3]]);
    let signer_end = uncompressed_name_end(rdata, FIXED).ok_or(Sig0Error::Malformed)?;
    Ok(Sig0 {
        start,
        algorithm: rdata[2],
        expiration: be32(8),
        inception: be32(12),
        key_tag: u16::from_be_bytes([rdata[16], rdata[17]]),
        signer: &rdata[FIXED..signer_end],
        rdata_head: &rdata[..signer_end],
        signature: &rdata[signer_end..],
    })
}

fn uncompressed_name_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
        // The root octet still follows: a name is at most 255 octets with it.
        if at - start + 1 > 255 {
            return None;
        }
    }
}

/// A key a SIG(0) can be verified with: its tag, its DNSSEC algorithm, and the check of a
/// signature over the signed data (which also refuses a signature of the wrong length).
pub trait Sig0Key {
    fn tag(&self) -> u16;
    fn algorithm(&self) -> u8;
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

impl Sig0Key for PublicKey {
    fn tag(&self) -> u16 {
        self.tag
    }
    fn algorithm(&self) -> u8 {
        ALGORITHM_ED25519
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == SIGNATURE_LEN && PublicKey::verify(self, message, signature)
    }
}

impl Sig0Key for RsaPublicKey {
    fn tag(&self) -> u16 {
        self.tag
    }
    fn algorithm(&self) -> u8 {
        ALGORITHM_RSASHA256
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        // PKCS #1 v1.5: one block, as long as the modulus.
        signature.len() == self.modulus_len && RsaPublicKey::verify(self, message, signature)
    }
}

impl Sig0Key for UserPublic {
    fn tag(&self) -> u16 {
        UserPublic::tag(self)
    }
    fn algorithm(&self) -> u8 {
        match self {
            UserPublic::Ed25519(key) => key.algorithm(),
            UserPublic::Rsa(key) => key.algorithm(),
        }
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            UserPublic::Ed25519(key) => Sig0Key::verify(key, message, signature),
            UserPublic::Rsa(key) => Sig0Key::verify(key, message, signature),
        }
    }
}

/// Checks `sig` (found in `msg` by [`find`]): signed by `zone` (wire form, any case) with `key`,
/// at `now` (seconds since 1970, the low 32 bits) within its window give or take [`FUDGE`].
/// `scratch` is where the signed data is put together.
pub fn verify<K: Sig0Key + ?Sized>(
    msg: &[u8],
    sig: &Sig0<'_>,
    zone: &[u8],
    key: &K,
    now: u32,
    scratch: &mut Vec<u8>,
) -> Result<(), Sig0Error> {
    if !sig.signer.eq_ignore_ascii_case(zone) || sig.algorithm != key.algorithm() || sig.key_tag != key.tag() {
        return Err(Sig0Error::WrongSigner);
    }
    // Serial-number arithmetic (RFC 1982) on the 32-bit times, as RFC 4034 §3.1.5 asks.
    let after = |a: u32, b: u32| (a.wrapping_sub(b) as i32) >= 0;
    if !after(now.wrapping_add(FUDGE), sig.inception) || !after(sig.expiration.wrapping_add(FUDGE), now) {
        return Err(Sig0Error::Time);
    }
    scratch.clear();
    scratch.extend_from_slice(sig.rdata_head);
    let body = scratch.len();
    scratch.extend_from_slice(&msg[..sig.start]);
    let arcount = u16::from_be_bytes([msg[10], msg[11]]) - 1;
    scratch[body + 10..body + 12].copy_from_slice(&arcount.to_be_bytes());
    if key.verify(scratch, sig.signature) {
        Ok(())
    } else {
        Err(Sig0Error::Signature)
    }
}

/// Appends a SIG(0) by `key` for `signer` (wire form) valid from `inception` for
/// [`SIGN_WINDOW`] seconds, and counts it in ARCOUNT.
pub fn sign(msg: &mut Vec<u8>, key: &KeyPair, signer: &[u8], inception: u32) {
    let mut rdata = Vec::with_capacity(FIXED + signer.len() + SIGNATURE_LEN);
    rdata.extend_from_slice(&[0, 0, ALGORITHM_ED25519, 0, 0, 0, 0, 0]);
    rdata.extend_from_slice(&inception.wrapping_add(SIGN_WINDOW).to_be_bytes());
    rdata.extend_from_slice(&inception.to_be_bytes());
    rdata.extend_from_slice(&key.public.tag.to_be_bytes());
    rdata.extend_from_slice(signer);
    let mut signed = rdata.clone();
    signed.extend_from_slice(msg);
    rdata.extend_from_slice(&key.sign(&signed));
    let arcount = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    msg.push(0);
    msg.extend_from_slice(&TYPE_SIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&[0; 4]);
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
}

/// Seconds since 1970, the low 32 bits (the SIG time fields' arithmetic).
pub fn now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(zone: &[u8]) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(zone);
        msg.extend_from_slice(&[0xff, 0x16, 0, 1]);
        msg
    }

    #[test]
    fn a_signature_verifies_and_every_change_is_caught() {
        let key = KeyPair::generate();
        let zone = crate::frontend::dnsenc::wire::name_from_text(b"alice._pvt.example.test.").unwrap();
        let mut msg = query(&zone);
        sign(&mut msg, &key, &zone, 1_000_000);
        let mut scratch = Vec::new();
        let sig = find(&msg).unwrap();
        assert_eq!(verify(&msg, &sig, &zone.to_ascii_uppercase(), &key.public, 1_000_100, &mut scratch), Ok(()));
        assert_eq!(verify(&msg, &sig, &zone, &key.public, 1_000_000 + 300 + 301, &mut scratch), Err(Sig0Error::Time));
        assert_eq!(verify(&msg, &sig, &zone, &key.public, 1_000_000 - 301, &mut scratch), Err(Sig0Error::Time));
        assert_eq!(verify(&msg, &sig, &zone, &key.public, 1_000_000 - 299, &mut scratch), Ok(()));
        let other = KeyPair::generate();
        assert_eq!(verify(&msg, &sig, &zone, &other.public, 1_000_000, &mut scratch), Err(Sig0Error::WrongSigner));
        assert_eq!(verify(&msg, &sig, b"\x03bob\0", &key.public, 1_000_000, &mut scratch), Err(Sig0Error::WrongSigner));
        for at in [0, 2, 13, 20] {
            let mut flipped = msg.clone();
            flipped[at] ^= 1;
            let sig = find(&flipped).unwrap();
            assert_eq!(
                verify(&flipped, &sig, &zone, &key.public, 1_000_000, &mut scratch),
                Err(Sig0Error::Signature),
                "byte {at}"
            );
        }
        assert_eq!(find(&query(&zone)), Err(Sig0Error::Missing));
        assert_eq!(find(&msg[..msg.len() - 1]), Err(Sig0Error::Malformed));
        assert_eq!(find(&[0; 5]), Err(Sig0Error::Malformed));
    }
}
