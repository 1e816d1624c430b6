//! What the private-subdomain ciphertexts hold, and sealing and opening them: HPKE (RFC 9180)
//! in Auth mode between two Ed25519 keys mapped to X25519 (`keys`), so that only the recipient
//! opens a ciphertext and only the sender's private key can have made it.
//!
//! | what               | plaintext                                   | sender → recipient   | info                 |
//! |--------------------|---------------------------------------------|----------------------|----------------------|
//! | an encrypted name  | TYPE ‖ the labels left of the zone (no root) | user → provider      | `dotgate-pvt name`   |
//! | an ENCR record     | TYPE ‖ owner name ‖ RDATA, names uncompressed | either way           | `dotgate-pvt record` |
//!
//! The AAD is the user's zone `<user>._pvt.<domain>` in lowercased wire form, so a ciphertext
//! cannot move to another user's zone; the two `info` strings keep a name from passing as a
//! record. Names use algorithm 1 (AES-256-GCM); records carry theirs (1 or 2) in ENCR RDATA.
//!
//! The compatibility mode's RSA users (docs/pvt.md, "RSA users") have no X25519 key: what they
//! send the provider is HPKE in Base mode (the `_base` functions; its authenticity is the RSA
//! SIG(0) of the message), and what the provider sends them is ENCR algorithm 3: RSA-OAEP-SHA256
//! of a fresh AES-256-GCM key, then the record under that key (nonce zero: the key is used once),
//! the same AAD and plaintext.
//!
//! Owns: the plaintext layouts, the HPKE parameters. Never: draws randomness itself (the
//! ephemeral key comes from the caller's RNG, so vectors are exact), or says why an open failed.

use std::borrow::Cow;

use rand::RngCore;
use zeroize::Zeroizing;

use super::keys::{KeyPair, PublicKey, RsaKeyPair, RsaPublicKey};
use super::wire::{self, Encr, ALG_HPKE_AES256GCM, ALG_HPKE_CHACHA20, ALG_RSA_OAEP};
use crate::hpke::{self, Aead, SenderKey, TAG_LEN, X25519_KEY_LEN};

const INFO_NAME: &[u8] = b"dotgate-pvt name";
const INFO_RECORD: &[u8] = b"dotgate-pvt record";

/// A ciphertext that does not open, or opens to something malformed. One error for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("does not decrypt")]
pub struct OpenError;

/// The AAD: the user zone in lowercase wire form, borrowed when it is already (the gateway and
/// the client lowercase it once; a seal per answer record need not copy it again).
fn aad(zone: &[u8]) -> Cow<'_, [u8]> {
    if zone.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(zone.to_ascii_lowercase())
    } else {
        Cow::Borrowed(zone)
    }
}

fn aead(algorithm: u8) -> Option<Aead> {
    match algorithm {
        ALG_HPKE_AES256GCM => Some(Aead::Aes256Gcm),
        ALG_HPKE_CHACHA20 => Some(Aead::ChaCha20Poly1305),
        _ => None,
    }
}

fn ephemeral(rng: &mut dyn RngCore) -> Zeroizing<[u8; X25519_KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; X25519_KEY_LEN]);
    rng.fill_bytes(&mut key[..]);
    key
}

#[allow(clippy::too_many_arguments)]
fn seal(
    aead: Aead,
    rng: &mut dyn RngCore,
    sender: Option<&KeyPair>,
    recipient: &PublicKey,
    info: &[u8],
    zone: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    let sender_key = sender.map(|sender| SenderKey { private: sender.agreement(), public: &sender.public.x25519 });
    let aad = aad(zone);
    let start = out.len();
    // A recipient key comes from a KEY record whose map to X25519 succeeded; the only failure
    // left is a small-order image, which no valid Ed25519 public key has. Nothing is appended
    // then, and the result does not open.
    if hpke::seal(aead, &ephemeral(rng), &recipient.x25519, sender_key, info, &aad, plaintext, out).is_err() {
        out.truncate(start);
    }
}

fn open(
    aead: Aead,
    recipient: &KeyPair,
    sender: Option<&PublicKey>,
    info: &[u8],
    zone: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if sealed.len() < wire::SEAL_OVERHEAD {
        return Err(OpenError);
    }
    let (enc, ciphertext) = sealed.split_at(X25519_KEY_LEN);
    let aad = aad(zone);
    let sender = sender.map(|sender| &sender.x25519);
    hpke::open(aead, recipient.agreement(), &recipient.public.x25519, sender, enc, info, &aad, ciphertext)
        .map_err(|_| OpenError)
}

/// The ciphertext of an encrypted name for `rtype` and `relative` (the labels left of `zone`,
/// wire form without the root), from the user `sender` to the provider `recipient`.
pub fn seal_name(
    rng: &mut dyn RngCore,
    sender: &KeyPair,
    recipient: &PublicKey,
    zone: &[u8],
    rtype: u16,
    relative: &[u8],
) -> Vec<u8> {
    seal_name_from(rng, Some(sender), recipient, zone, rtype, relative)
}

/// [`seal_name`] in HPKE Base mode, from an RSA user (who has no X25519 key).
pub fn seal_name_base(
    rng: &mut dyn RngCore,
    recipient: &PublicKey,
    zone: &[u8],
    rtype: u16,
    relative: &[u8],
) -> Vec<u8> {
    seal_name_from(rng, None, recipient, zone, rtype, relative)
}

fn seal_name_from(
    rng: &mut dyn RngCore,
    sender: Option<&KeyPair>,
    recipient: &PublicKey,
    zone: &[u8],
    rtype: u16,
    relative: &[u8],
) -> Vec<u8> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(2 + relative.len()));
    plaintext.extend_from_slice(&rtype.to_be_bytes());
    plaintext.extend_from_slice(relative);
    let mut out = Vec::with_capacity(plaintext.len() + wire::SEAL_OVERHEAD);
    seal(Aead::Aes256Gcm, rng, sender, recipient, INFO_NAME, zone, &plaintext, &mut out);
    out
}

/// Opens an encrypted name's ciphertext: its type and relative labels (checked: labels of 1 to
/// 63 octets making, with `zone`, at most 255).
pub fn open_name(
    recipient: &KeyPair,
    sender: &PublicKey,
    zone: &[u8],
    ciphertext: &[u8],
) -> Result<(u16, Vec<u8>), OpenError> {
    open_name_from(recipient, Some(sender), zone, ciphertext)
}

/// [`open_name`] of a name sealed in Base mode ([`seal_name_base`]): for RSA users only.
pub fn open_name_base(recipient: &KeyPair, zone: &[u8], ciphertext: &[u8]) -> Result<(u16, Vec<u8>), OpenError> {
    open_name_from(recipient, None, zone, ciphertext)
}

fn open_name_from(
    recipient: &KeyPair,
    sender: Option<&PublicKey>,
    zone: &[u8],
    ciphertext: &[u8],
) -> Result<(u16, Vec<u8>), OpenError> {
    let plaintext = open(Aead::Aes256Gcm, recipient, sender, INFO_NAME, zone, ciphertext)?;
    if plaintext.len() < 2 || !wire::check_relative(&plaintext[2..], zone.len()) {
        return Err(OpenError);
    }
    Ok((u16::from_be_bytes([plaintext[0], plaintext[1]]), plaintext[2..].to_vec()))
}

/// Appends ENCR RDATA holding `rtype`, `owner` (wire, uncompressed) and `rdata` (names in it
/// uncompressed), sealed with `algorithm` (1 or 2) from `sender` to `recipient`.
#[allow(clippy::too_many_arguments)]
pub fn seal_record(
    rng: &mut dyn RngCore,
    algorithm: u8,
    sender: &KeyPair,
    recipient: &PublicKey,
    zone: &[u8],
    rtype: u16,
    owner: &[u8],
    rdata: &[u8],
    out: &mut Vec<u8>,
) {
    let plaintext = record_plaintext(rtype, owner, rdata);
    seal_record_from(rng, algorithm, Some(sender), recipient, zone, &plaintext, out);
}

/// [`seal_record`] in HPKE Base mode, from an RSA user to the provider.
#[allow(clippy::too_many_arguments)]
pub fn seal_record_base(
    rng: &mut dyn RngCore,
    algorithm: u8,
    recipient: &PublicKey,
    zone: &[u8],
    rtype: u16,
    owner: &[u8],
    rdata: &[u8],
    out: &mut Vec<u8>,
) {
    let plaintext = record_plaintext(rtype, owner, rdata);
    seal_record_from(rng, algorithm, None, recipient, zone, &plaintext, out);
}

fn seal_record_from(
    rng: &mut dyn RngCore,
    algorithm: u8,
    sender: Option<&KeyPair>,
    recipient: &PublicKey,
    zone: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    let aead = aead(algorithm).unwrap_or(Aead::Aes256Gcm);
    wire::push_encr_header(algorithm, recipient.tag, out);
    seal(aead, rng, sender, recipient, INFO_RECORD, zone, plaintext, out);
}

/// Appends ENCR RDATA of algorithm 3 to the RSA user `recipient`: the key tag, RSA-OAEP
/// (SHA-256, MGF1-SHA-256, empty label) of a fresh 32-byte AES-256-GCM key (one modulus-long
/// block), then the record sealed under that key (nonce zero, AAD the lowercased zone) with its
/// tag. Every random byte comes from `rng`.
pub fn seal_record_rsa(
    rng: &mut dyn RngCore,
    recipient: &RsaPublicKey,
    zone: &[u8],
    rtype: u16,
    owner: &[u8],
    rdata: &[u8],
    out: &mut Vec<u8>,
) {
    let plaintext = record_plaintext(rtype, owner, rdata);
    let mut key = Zeroizing::new([0u8; RSA_AEAD_KEY_LEN]);
    rng.fill_bytes(&mut key[..]);
    let (n, e) = (num_bigint::BigUint::from_bytes_be(&recipient.n), num_bigint::BigUint::from_bytes_be(&recipient.e));
    let start = out.len();
    wire::push_encr_header(ALG_RSA_OAEP, recipient.tag, out);
    // `&mut dyn RngCore` is itself an RngCore, which the OAEP encoder takes by `&mut`.
    let mut rng = rng;
    crate::frontend::dnsenc::crypto::oaep_encrypt_block(recipient.modulus_len, &n, &e, &key[..], &mut rng, out);
    let aad = aad(zone);
    // A 32-byte key always makes an AES-256-GCM key; should aws-lc fail anyway, nothing is
    // appended and the result does not parse as ENCR.
    if hpke::aead_seal(Aead::Aes256Gcm, &key[..], [0; 12], &aad, &plaintext, out).is_err() {
        out.truncate(start);
    }
}

/// Octets of the AES-256-GCM key an algorithm-3 ENCR wraps.
const RSA_AEAD_KEY_LEN: usize = 32;

fn record_plaintext(rtype: u16, owner: &[u8], rdata: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(2 + owner.len() + rdata.len()));
    plaintext.extend_from_slice(&rtype.to_be_bytes());
    plaintext.extend_from_slice(owner);
    plaintext.extend_from_slice(rdata);
    plaintext
}

/// A record opened out of ENCR RDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRecord {
    pub rtype: u16,
    /// Wire form, as the sender wrote it.
    pub owner: Vec<u8>,
    pub rdata: Vec<u8>,
}

/// Opens ENCR RDATA sealed to `recipient` by `sender`.
pub fn open_record(
    recipient: &KeyPair,
    sender: &PublicKey,
    zone: &[u8],
    rdata: &[u8],
) -> Result<OpenedRecord, OpenError> {
    open_record_from(recipient, Some(sender), zone, rdata)
}

/// [`open_record`] of ENCR RDATA sealed in Base mode ([`seal_record_base`]): for RSA users only.
pub fn open_record_base(recipient: &KeyPair, zone: &[u8], rdata: &[u8]) -> Result<OpenedRecord, OpenError> {
    open_record_from(recipient, None, zone, rdata)
}

fn open_record_from(
    recipient: &KeyPair,
    sender: Option<&PublicKey>,
    zone: &[u8],
    rdata: &[u8],
) -> Result<OpenedRecord, OpenError> {
    let Encr { algorithm, key_tag, sealed } = wire::parse_encr(rdata).ok_or(OpenError)?;
    let aead = aead(algorithm).ok_or(OpenError)?;
    if key_tag != recipient.public.tag {
        return Err(OpenError);
    }
    let plaintext = open(aead, recipient, sender, INFO_RECORD, zone, sealed)?;
    opened_record(&plaintext)
}

/// Opens ENCR RDATA of algorithm 3 ([`seal_record_rsa`]) with the RSA user's key.
pub fn open_record_rsa(recipient: &RsaKeyPair, zone: &[u8], rdata: &[u8]) -> Result<OpenedRecord, OpenError> {
    let Encr { algorithm, key_tag, sealed } = wire::parse_encr(rdata).ok_or(OpenError)?;
    let modulus_len = recipient.public.modulus_len;
    if algorithm != ALG_RSA_OAEP || key_tag != recipient.public.tag || sealed.len() < modulus_len + TAG_LEN {
        return Err(OpenError);
    }
    let (block, ciphertext) = sealed.split_at(modulus_len);
    let key = recipient.oaep_decrypt(block).ok_or(OpenError)?;
    if key.len() != RSA_AEAD_KEY_LEN {
        return Err(OpenError);
    }
    let plaintext = hpke::aead_open(Aead::Aes256Gcm, &key, [0; 12], &aad(zone), ciphertext).map_err(|_| OpenError)?;
    opened_record(&plaintext)
}

/// TYPE ‖ owner ‖ RDATA, read.
fn opened_record(plaintext: &[u8]) -> Result<OpenedRecord, OpenError> {
    let owner_end = name_end(plaintext, 2).ok_or(OpenError)?;
    Ok(OpenedRecord {
        rtype: u16::from_be_bytes([plaintext[0], plaintext[1]]),
        owner: plaintext[2..owner_end].to_vec(),
        rdata: plaintext[owner_end..].to_vec(),
    })
}

/// The end of the uncompressed name at `at`, at most 255 octets.
fn name_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    loop {
        let len = usize::from(*bytes.get(pos)?);
        if len > 63 || pos + 1 - at > 255 {
            return None;
        }
        pos += 1 + len;
        if len == 0 {
            return (pos - at <= 255).then_some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn zone() -> Vec<u8> {
        crate::frontend::dnsenc::wire::name_from_text(b"alice._pvt.example.test.").unwrap()
    }

    #[test]
    fn names_open_only_for_the_provider_from_that_user_in_that_zone() {
        let (user, provider, stranger) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let ciphertext = seal_name(&mut rng, &user, &provider.public, &zone(), 1, b"\x03www");
        assert_eq!(ciphertext.len(), 2 + 4 + wire::SEAL_OVERHEAD);
        assert_eq!(
            open_name(&provider, &user.public, &zone().to_ascii_uppercase(), &ciphertext),
            Ok((1, b"\x03www".to_vec()))
        );
        assert_eq!(open_name(&provider, &stranger.public, &zone(), &ciphertext), Err(OpenError), "another sender");
        assert_eq!(open_name(&user, &user.public, &zone(), &ciphertext), Err(OpenError), "another recipient");
        assert_eq!(open_name(&provider, &user.public, b"\x03bob\0", &ciphertext), Err(OpenError), "another zone");
        let again = seal_name(&mut rng, &user, &provider.public, &zone(), 1, b"\x03www");
        assert_ne!(again, ciphertext, "randomized");
    }

    #[test]
    fn records_round_trip_in_both_algorithms_and_a_name_is_no_record() {
        let (user, provider) = (KeyPair::generate(), KeyPair::generate());
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let owner = b"\x03www\x05alice\x04_pvt\x07example\x04test\0";
        for algorithm in [ALG_HPKE_AES256GCM, ALG_HPKE_CHACHA20] {
            let mut rdata = Vec::new();
            seal_record(&mut rng, algorithm, &provider, &user.public, &zone(), 1, owner, &[192, 0, 2, 1], &mut rdata);
            assert_eq!(rdata[0], algorithm);
            let opened = open_record(&user, &provider.public, &zone(), &rdata).unwrap();
            assert_eq!(opened, OpenedRecord { rtype: 1, owner: owner.to_vec(), rdata: vec![192, 0, 2, 1] });
            let mut flipped = rdata.clone();
            *flipped.last_mut().unwrap() ^= 1;
            assert_eq!(open_record(&user, &provider.public, &zone(), &flipped), Err(OpenError));
        }
        let name = seal_name(&mut rng, &user, &provider.public, &zone(), 1, b"");
        let mut as_record = vec![ALG_HPKE_AES256GCM];
        as_record.extend_from_slice(&provider.public.tag.to_be_bytes());
        as_record.extend_from_slice(&name);
        assert_eq!(open_record(&provider, &user.public, &zone(), &as_record), Err(OpenError));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_ed25519_path_makes_the_same_bytes_as_before_the_rsa_mode() {
        // Recorded from the code before the Base-mode and algorithm-3 functions were added.
        let (user, provider) = (KeyPair::from_seed(&[4; 32]).unwrap(), KeyPair::from_seed(&[5; 32]).unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let name = seal_name(&mut rng, &user, &provider.public, &zone(), 1, b"\x03www");
        let mut record = Vec::new();
        let owner = b"\x03www\x05alice\x04_pvt\x07example\x04test\0";
        seal_record(&mut rng, 1, &provider, &user.public, &zone(), 1, owner, &[192, 0, 2, 1], &mut record);
        assert_eq!(
            hex(&name),
            "aca45503f969a2c89444716ec3dff2f68da6e86ac8cbddd94ddbe0b90defd077fe651b5bc8791c85dec77653237444bba5081e916183"
        );
        assert_eq!(
            hex(&record),
            "011e27dd7df52b89b7e298d188fdb01c761497f86a4c195e528b70cbeb1e851b6b0505972f3c139d0218df2cbb5d25fdc6fc4e1a97c4c26b\
             095ed61cdc50dc0e27193a436dd490ef7737c9fffdb5132b05a7b15dc97e"
        );
    }

    #[test]
    fn base_mode_names_and_records_round_trip_and_are_not_auth_mode() {
        let (user, provider) = (KeyPair::generate(), KeyPair::generate());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let ciphertext = seal_name_base(&mut rng, &provider.public, &zone(), 16, b"\x04_ipp\x04_tcp");
        assert_eq!(open_name_base(&provider, &zone(), &ciphertext), Ok((16, b"\x04_ipp\x04_tcp".to_vec())));
        assert_eq!(open_name(&provider, &user.public, &zone(), &ciphertext), Err(OpenError), "not Auth mode");
        assert_eq!(open_name_base(&user, &zone(), &ciphertext), Err(OpenError), "another recipient");
        assert_eq!(open_name_base(&provider, b"\x03bob\0", &ciphertext), Err(OpenError), "another zone");
        let auth = seal_name(&mut rng, &user, &provider.public, &zone(), 1, b"");
        assert_eq!(open_name_base(&provider, &zone(), &auth), Err(OpenError), "Auth mode is not Base mode");
        let owner = b"\x03www\x05alice\x04_pvt\x07example\x04test\0";
        for algorithm in [ALG_HPKE_AES256GCM, ALG_HPKE_CHACHA20] {
            let mut rdata = Vec::new();
            seal_record_base(&mut rng, algorithm, &provider.public, &zone(), 1, owner, &[192, 0, 2, 1], &mut rdata);
            let opened = open_record_base(&provider, &zone(), &rdata).unwrap();
            assert_eq!(opened, OpenedRecord { rtype: 1, owner: owner.to_vec(), rdata: vec![192, 0, 2, 1] });
            assert_eq!(open_record(&provider, &user.public, &zone(), &rdata), Err(OpenError));
            *rdata.last_mut().unwrap() ^= 1;
            assert_eq!(open_record_base(&provider, &zone(), &rdata), Err(OpenError));
        }
    }

    #[test]
    fn algorithm_3_records_open_only_with_the_rsa_key_and_unaltered() {
        let pair = crate::frontend::pvt::keys::tests::rsa_pair();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let owner = b"\x07printer\x05alice\x04_pvt\x07example\x04test\0";
        let mut rdata = Vec::new();
        seal_record_rsa(&mut rng, &pair.public, &zone(), 1, owner, &[192, 0, 2, 7], &mut rdata);
        assert_eq!(rdata[0], ALG_RSA_OAEP);
        assert_eq!(u16::from_be_bytes([rdata[1], rdata[2]]), pair.public.tag);
        assert_eq!(rdata.len(), 3 + 256 + 2 + owner.len() + 4 + TAG_LEN, "header, one block, the record, the tag");
        let want = OpenedRecord { rtype: 1, owner: owner.to_vec(), rdata: vec![192, 0, 2, 7] };
        assert_eq!(open_record_rsa(pair, &zone().to_ascii_uppercase(), &rdata), Ok(want));
        assert_eq!(open_record_rsa(pair, b"\x03bob\0", &rdata), Err(OpenError), "another zone");
        for at in [0, 1, 3, 100, 3 + 256, rdata.len() - 1] {
            let mut flipped = rdata.clone();
            flipped[at] ^= 1;
            assert_eq!(open_record_rsa(pair, &zone(), &flipped), Err(OpenError), "byte {at}");
        }
        assert_eq!(open_record_rsa(pair, &zone(), &rdata[..3 + 256 + 10]), Err(OpenError), "cut short");
        let mut again = Vec::new();
        seal_record_rsa(&mut rng, &pair.public, &zone(), 1, owner, &[192, 0, 2, 7], &mut again);
        assert_ne!(again, rdata, "a fresh key and OAEP seed each time");
    }
}
