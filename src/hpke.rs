//! HPKE (RFC 9180), single shot, in base mode (§5.1.1) and auth mode (§5.1.3), with
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM or ChaCha20-Poly1305, on aws-lc-rs
//! primitives: one [`seal`] and one [`open`] per message (sequence number 0, so the nonce is
//! `base_nonce`), no exporter, no PSK modes. Also the AEAD steps that DNSENC's answers share.
//! Users: DNSENC's x25519 queries (base mode) and the private-subdomain gateway (auth mode).
//!
//! This module owns: the KEM (Encap/Decap and AuthEncap/AuthDecap, §4.1), the labeled HKDF (§4),
//! the key schedule (§5.1), single-shot Seal/Open (§6.1), and refusing an all-zero X25519 output
//! (§7.1.4). It must never: do I/O or log; put key bytes, shared secrets or plaintext into an
//! error or a `Debug` string; say why a message does not open (one [`HpkeError::Open`] for every
//! reason); or draw randomness of its own: the ephemeral key always comes from the caller, so
//! that seal is deterministic and test vectors are exact bytes. Secrets it copies out of aws-lc
//! (DH outputs, shared secrets, keys, plaintexts) are [`Zeroizing`], wiped when dropped.
//!
//! Extract is HMAC-SHA256 (RFC 5869 §2.2) because aws-lc-rs keeps an HKDF PRK opaque and the key
//! schedule needs `psk_id_hash` and `info_hash` as bytes.
//!
//! Why hand-written on aws-lc-rs and not the `hpke` crate (rozbb/rust-hpke): one crypto
//! provider. aws-lc-rs is in the graph already, for rustls, and does the X25519, HKDF/HMAC and
//! both AEADs here; `hpke` would bring a second implementation of each (RustCrypto's
//! x25519-dalek, hkdf, hmac, sha2, aes-gcm, chacha20poly1305) to audit, patch and keep constant
//! time. Not for want of features: `hpke` has auth mode (`OpModeS::Auth`) and takes any X25519
//! private key as bytes, so the keys derived from Ed25519 (`frontend::pvt::keys`) would fit it.
//! The price is this module, held to RFC 9180's test vectors (A.2.1, A.2.3) below.

use aws_lc_rs::{aead, agreement, hkdf, hmac};
use zeroize::Zeroizing;

/// Bytes of an X25519 key, public or private, and of HPKE's `enc` (Nenc, Npk, Nsk).
pub const X25519_KEY_LEN: usize = 32;
/// Bytes of an AEAD tag (Nt of both AEADs).
pub const TAG_LEN: usize = 16;
/// Nn: bytes of an AEAD nonce (both AEADs).
pub(crate) const NONCE_LEN: usize = 12;

/// RFC 9180 §7.1 `kem_id` of DHKEM(X25519, HKDF-SHA256).
const KEM_ID: u16 = 0x0020;
/// RFC 9180 §7.2 `kdf_id` of HKDF-SHA256.
const KDF_ID: u16 = 0x0001;
/// RFC 9180 §5 `mode_base`.
const MODE_BASE: u8 = 0x00;
/// RFC 9180 §5 `mode_auth`.
const MODE_AUTH: u8 = 0x02;
/// Nk: bytes of an AEAD key (both AEADs here have 32).
const KEY_LEN: usize = 32;
/// Nh, Nsecret and Ndh: bytes of a SHA-256 output and of an X25519 shared secret.
const HASH_LEN: usize = 32;

/// The AEAD of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    /// AES-256-GCM, `aead_id` 0x0002.
    Aes256Gcm,
    /// ChaCha20-Poly1305, `aead_id` 0x0003.
    ChaCha20Poly1305,
}

impl Aead {
    /// RFC 9180 §7.3 `aead_id`.
    fn id(self) -> u16 {
        match self {
            Aead::Aes256Gcm => 0x0002,
            Aead::ChaCha20Poly1305 => 0x0003,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes256Gcm => &aead::AES_256_GCM,
            Aead::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// What goes wrong. Messages say nothing of keys or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum HpkeError {
    /// Does not open: wrong key, altered, wrong sender, wrong aad/info. One error for every reason.
    #[error("the message does not open (wrong key or sender, other aad or info, or altered)")]
    Open,
    /// A peer public key of small order (X25519 output all zero), when sealing.
    #[error("a small-order public key (X25519 with it gives zero)")]
    SmallOrder,
    /// aws-lc failed where it should not (importing the ephemeral key, sealing).
    #[error("the crypto library failed: {0}")]
    Library(&'static str),
}

/// The sender's static key pair, for Auth mode. `public` must be `private`'s public key; it is
/// not checked (a wrong one only makes messages that do not open).
#[derive(Clone, Copy)]
pub struct SenderKey<'a> {
    /// skS.
    pub private: &'a agreement::PrivateKey,
    /// pkSm, the serialized pk(skS).
    pub public: &'a [u8; X25519_KEY_LEN],
}

/// Appends enc ‖ ciphertext ‖ tag. `sender: None` is base mode, `Some` auth mode.
///
/// `ephemeral` is skE, the caller's fresh random X25519 private key. Fails with
/// [`HpkeError::SmallOrder`] for a small-order `recipient_public`; on an error `out` is as it was.
#[allow(clippy::too_many_arguments)] // RFC 9180 §6.1's inputs, each one a byte string the caller has.
pub fn seal(
    aead: Aead,
    ephemeral: &[u8; X25519_KEY_LEN],
    recipient_public: &[u8; X25519_KEY_LEN],
    sender: Option<SenderKey<'_>>,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), HpkeError> {
    let mode = if sender.is_some() { MODE_AUTH } else { MODE_BASE };
    let (enc, shared_secret) = encap(ephemeral, recipient_public, sender)?;
    let keys = key_schedule(mode, aead, &shared_secret[..], info)?;
    let start = out.len();
    out.reserve(X25519_KEY_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&enc);
    aead_seal(aead, &keys.key[..], keys.base_nonce, aad, plaintext, out).inspect_err(|_| out.truncate(start))
}

/// Opens ciphertext ‖ tag sent with `enc`. `sender_public: None` base mode, `Some` auth mode.
///
/// `recipient_public` must be `recipient`'s public key (pkRm, not recomputed here). Every
/// failure is [`HpkeError::Open`]; never panics.
#[allow(clippy::too_many_arguments)] // RFC 9180 §6.1's inputs, each one a byte string the caller has.
pub fn open(
    aead: Aead,
    recipient: &agreement::PrivateKey,
    recipient_public: &[u8; X25519_KEY_LEN],
    sender_public: Option<&[u8; X25519_KEY_LEN]>,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let mode = if sender_public.is_some() { MODE_AUTH } else { MODE_BASE };
    let enc: &[u8; X25519_KEY_LEN] = enc.try_into().map_err(|_| HpkeError::Open)?;
    let shared_secret = decap(recipient, recipient_public, sender_public, enc).map_err(|_| HpkeError::Open)?;
    let keys = key_schedule(mode, aead, &shared_secret[..], info).map_err(|_| HpkeError::Open)?;
    aead_open(aead, &keys.key[..], keys.base_nonce, aad, ciphertext)
}

/// Appends `plaintext` sealed (ciphertext ‖ tag) under `key` to `out`; on an error `out` is as
/// it was.
pub(crate) fn aead_seal(
    aead: Aead,
    key: &[u8],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), HpkeError> {
    let key = aead::UnboundKey::new(aead.algorithm(), key).map_err(|_| HpkeError::Library("AEAD key"))?;
    let key = aead::LessSafeKey::new(key);
    let start = out.len();
    out.reserve(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    match key.seal_in_place_separate_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(aad),
        &mut out[start..],
    ) {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(HpkeError::Library("AEAD seal"))
        }
    }
}

/// The plaintext of `sealed` (ciphertext ‖ tag); [`HpkeError::Open`] if it does not open, for
/// whatever reason (a key of the wrong length included).
pub(crate) fn aead_open(
    aead: Aead,
    key: &[u8],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let key = aead::UnboundKey::new(aead.algorithm(), key).map_err(|_| HpkeError::Open)?;
    let key = aead::LessSafeKey::new(key);
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let len = key
        .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut buffer[..])
        .map_err(|_| HpkeError::Open)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

/// `"KEM" ‖ I2OSP(kem_id, 2)`.
fn kem_suite_id() -> [u8; 5] {
    let [high, low] = KEM_ID.to_be_bytes();
    [b'K', b'E', b'M', high, low]
}

/// `"HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2)`.
fn hpke_suite_id(aead: Aead) -> [u8; 10] {
    let mut id = [0u8; 10];
    id[..4].copy_from_slice(b"HPKE");
    id[4..6].copy_from_slice(&KEM_ID.to_be_bytes());
    id[6..8].copy_from_slice(&KDF_ID.to_be_bytes());
    id[8..].copy_from_slice(&aead.id().to_be_bytes());
    id
}

/// `LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)`.
fn labeled_extract(salt: &[u8], suite_id: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; HASH_LEN]> {
    let mut mac = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, salt));
    for part in [&b"HPKE-v1"[..], suite_id, label, ikm] {
        mac.update(part);
    }
    let mut prk = Zeroizing::new([0u8; HASH_LEN]);
    prk.copy_from_slice(mac.sign().as_ref());
    prk
}

/// `LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖
/// label ‖ info, L)`, L being `out.len()`.
fn labeled_expand(prk: &[u8], suite_id: &[u8], label: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let length = u16::try_from(out.len()).map_err(|_| HpkeError::Library("HKDF length"))?.to_be_bytes();
    let info = [&length[..], b"HPKE-v1", suite_id, label, info];
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk)
        .expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| HpkeError::Library("HKDF-Expand"))
}

/// DHKEM's `ExtractAndExpand(dh, kem_context)`, kem_context being `enc ‖ pkRm` in base mode and
/// `enc ‖ pkRm ‖ pkSm` in auth mode: the KEM's shared secret.
fn extract_and_expand(
    dh: &[u8],
    enc: &[u8; X25519_KEY_LEN],
    recipient_public: &[u8; X25519_KEY_LEN],
    sender_public: Option<&[u8; X25519_KEY_LEN]>,
) -> Result<Zeroizing<[u8; HASH_LEN]>, HpkeError> {
    let suite_id = kem_suite_id();
    let eae_prk = labeled_extract(b"", &suite_id, b"eae_prk", dh);
    let mut kem_context = [0u8; 3 * X25519_KEY_LEN];
    kem_context[..X25519_KEY_LEN].copy_from_slice(enc);
    kem_context[X25519_KEY_LEN..2 * X25519_KEY_LEN].copy_from_slice(recipient_public);
    let context_len = match sender_public {
        Some(sender_public) => {
            kem_context[2 * X25519_KEY_LEN..].copy_from_slice(sender_public);
            3 * X25519_KEY_LEN
        }
        None => 2 * X25519_KEY_LEN,
    };
    let mut shared_secret = Zeroizing::new([0u8; HASH_LEN]);
    labeled_expand(&eae_prk[..], &suite_id, b"shared_secret", &kem_context[..context_len], &mut shared_secret[..])?;
    Ok(shared_secret)
}

/// X25519 of `private` with `peer` into `out` (32 bytes), refusing the all-zero output of a
/// small-order peer key (RFC 9180 §7.1.4) with [`HpkeError::SmallOrder`], as any other failure.
fn diffie_hellman(private: &agreement::PrivateKey, peer: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
    agreement::agree(
        private,
        agreement::UnparsedPublicKey::new(&agreement::X25519, peer),
        HpkeError::SmallOrder,
        |dh| {
            if dh.len() != out.len() {
                return Err(HpkeError::SmallOrder);
            }
            out.copy_from_slice(dh);
            Ok(())
        },
    )?;
    if out.iter().fold(0u8, |acc, byte| acc | byte) == 0 {
        return Err(HpkeError::SmallOrder);
    }
    Ok(())
}

/// `Encap(pkR)` (`sender: None`) or `AuthEncap(pkR, skS)` with the ephemeral private key given:
/// `(enc, shared_secret)`. dh is `DH(skE, pkR)`, in auth mode followed by `DH(skS, pkR)`.
fn encap(
    ephemeral: &[u8; X25519_KEY_LEN],
    recipient_public: &[u8; X25519_KEY_LEN],
    sender: Option<SenderKey<'_>>,
) -> Result<([u8; X25519_KEY_LEN], Zeroizing<[u8; HASH_LEN]>), HpkeError> {
    let ephemeral = agreement::PrivateKey::from_private_key(&agreement::X25519, ephemeral)
        .map_err(|_| HpkeError::Library("X25519 ephemeral key"))?;
    let enc: [u8; X25519_KEY_LEN] = ephemeral
        .compute_public_key()
        .map_err(|_| HpkeError::Library("X25519 public key"))?
        .as_ref()
        .try_into()
        .map_err(|_| HpkeError::Library("X25519 public key length"))?;
    let mut dh = Zeroizing::new([0u8; 2 * X25519_KEY_LEN]);
    diffie_hellman(&ephemeral, recipient_public, &mut dh[..X25519_KEY_LEN])?;
    let dh_len = match sender {
        Some(sender) => {
            diffie_hellman(sender.private, recipient_public, &mut dh[X25519_KEY_LEN..])?;
            2 * X25519_KEY_LEN
        }
        None => X25519_KEY_LEN,
    };
    let shared_secret = extract_and_expand(&dh[..dh_len], &enc, recipient_public, sender.map(|s| s.public))?;
    Ok((enc, shared_secret))
}

/// `Decap(enc, skR)` (`sender_public: None`) or `AuthDecap(enc, skR, pkS)`: dh is
/// `DH(skR, pkE)`, in auth mode followed by `DH(skR, pkS)`.
fn decap(
    recipient: &agreement::PrivateKey,
    recipient_public: &[u8; X25519_KEY_LEN],
    sender_public: Option<&[u8; X25519_KEY_LEN]>,
    enc: &[u8; X25519_KEY_LEN],
) -> Result<Zeroizing<[u8; HASH_LEN]>, HpkeError> {
    let mut dh = Zeroizing::new([0u8; 2 * X25519_KEY_LEN]);
    diffie_hellman(recipient, enc, &mut dh[..X25519_KEY_LEN])?;
    let dh_len = match sender_public {
        Some(sender_public) => {
            diffie_hellman(recipient, sender_public, &mut dh[X25519_KEY_LEN..])?;
            2 * X25519_KEY_LEN
        }
        None => X25519_KEY_LEN,
    };
    extract_and_expand(&dh[..dh_len], enc, recipient_public, sender_public)
}

/// The key schedule's outputs single shot uses (not the exporter secret).
struct Keys {
    /// Kept for the test vectors' check.
    #[cfg_attr(not(test), allow(dead_code))]
    secret: Zeroizing<[u8; HASH_LEN]>,
    key: Zeroizing<[u8; KEY_LEN]>,
    base_nonce: [u8; NONCE_LEN],
}

/// RFC 9180 §5.1 `KeySchedule(mode, shared_secret, info, "", "")` for `mode` [`MODE_BASE`] or
/// [`MODE_AUTH`] (no PSK in either).
fn key_schedule(mode: u8, aead: Aead, shared_secret: &[u8], info: &[u8]) -> Result<Keys, HpkeError> {
    let suite_id = hpke_suite_id(aead);
    let psk_id_hash = labeled_extract(b"", &suite_id, b"psk_id_hash", b"");
    let info_hash = labeled_extract(b"", &suite_id, b"info_hash", info);
    let mut context = [0u8; 1 + 2 * HASH_LEN];
    context[0] = mode;
    context[1..1 + HASH_LEN].copy_from_slice(&psk_id_hash[..]);
    context[1 + HASH_LEN..].copy_from_slice(&info_hash[..]);
    let secret = labeled_extract(shared_secret, &suite_id, b"secret", b"");
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    labeled_expand(&secret[..], &suite_id, b"key", &context, &mut key[..])?;
    let mut base_nonce = [0u8; NONCE_LEN];
    labeled_expand(&secret[..], &suite_id, b"base_nonce", &context, &mut base_nonce)?;
    Ok(Keys { secret, key, base_nonce })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn key32(text: &str) -> [u8; X25519_KEY_LEN] {
        unhex(text).try_into().unwrap()
    }

    fn private(raw: &[u8; X25519_KEY_LEN]) -> agreement::PrivateKey {
        agreement::PrivateKey::from_private_key(&agreement::X25519, raw).unwrap()
    }

    fn public(key: &agreement::PrivateKey) -> [u8; X25519_KEY_LEN] {
        key.compute_public_key().unwrap().as_ref().try_into().unwrap()
    }

    /// One RFC 9180 Appendix A.2 setup (ChaCha20Poly1305, `info` and the plaintext as every
    /// vector has them) and its sequence-number-0 encryption, hex as the RFC prints it.
    struct Vector {
        sk_em: &'static str,
        sk_rm: &'static str,
        pk_rm: &'static str,
        /// skSm and pkSm: auth mode; `None`, base mode.
        sender: Option<(&'static str, &'static str)>,
        enc: &'static str,
        shared_secret: &'static str,
        secret: &'static str,
        key: &'static str,
        base_nonce: &'static str,
        ct: &'static str,
    }

    /// The `info` of every Appendix A setup.
    const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
    /// The plaintext of every Appendix A encryption.
    const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    /// The AAD of sequence number 0 ("Count-0").
    const AAD_0: &str = "436f756e742d30";

    /// RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base.
    const A_2_1: Vector = Vector {
        sk_em: "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600",
        sk_rm: "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
        pk_rm: "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
        sender: None,
        enc: "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
        shared_secret: "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7",
        secret: "5b9cd775e64b437a2335cf499361b2e0d5e444d5cb41a8a53336d8fe402282c6",
        key: "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91",
        base_nonce: "5c4d98150661b848853b547f",
        ct: "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
    };

    /// RFC 9180 Appendix A.2.3: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, Auth.
    const A_2_3: Vector = Vector {
        sk_em: "c94619e1af28971c8fa7957192b7e62a71ca2dcdde0a7cc4a8a9e741d600ab13",
        sk_rm: "3ca22a6d1cda1bb9480949ec5329d3bf0b080ca4c45879c95eddb55c70b80b82",
        pk_rm: "1a478716d63cb2e16786ee93004486dc151e988b34b475043d3e0175bdb01c44",
        sender: Some((
            "2def0cb58ffcf83d1062dd085c8aceca7f4c0c3fd05912d847b61f3e54121f05",
            "f0f4f9e96c54aeed3f323de8534fffd7e0577e4ce269896716bcb95643c8712b",
        )),
        enc: "f7674cc8cd7baa5872d1f33dbaffe3314239f6197ddf5ded1746760bfc847e0e",
        shared_secret: "d2d67828c8bc9fa661cf15a31b3ebf1febe0cafef7abfaaca580aaf6d471e3eb",
        secret: "3022dfc0a81d6e09a2e6daeeb605bb1ebb9ac49535540d9a4c6560064a6c6da8",
        key: "b071fd1136680600eb447a845a967d35e9db20749cdf9ce098bcc4deef4b1356",
        base_nonce: "d20577dff16d7cea2c4bf780",
        ct: "ab1a13c9d4f01a87ec3440dbd756e2677bd2ecf9df0ce7ed73869b98e00c09be111cb9fdf077347aeb88e61bdf",
    };

    /// Every step of `v`: the public keys from the private ones, (Auth)Encap and (Auth)Decap,
    /// the key schedule, then [`seal`] and [`open`] of the first encryption.
    fn check(v: &Vector) {
        let (info, pt, aad) = (unhex(INFO), unhex(PT), unhex(AAD_0));
        let (sk_em, pk_rm) = (key32(v.sk_em), key32(v.pk_rm));
        let sk_r = private(&key32(v.sk_rm));
        assert_eq!(hex(&public(&sk_r)), v.pk_rm, "pkRm from skRm");
        let sender = v.sender.map(|(sk_sm, pk_sm)| (private(&key32(sk_sm)), key32(pk_sm)));
        if let Some((sk_s, pk_sm)) = &sender {
            assert_eq!(hex(&public(sk_s)), hex(pk_sm), "pkSm from skSm");
        }
        let sender_key = sender.as_ref().map(|(private, public)| SenderKey { private, public });
        let sender_public = sender_key.map(|s| s.public);
        let mode = if sender.is_some() { MODE_AUTH } else { MODE_BASE };

        let (enc, shared_secret) = encap(&sk_em, &pk_rm, sender_key).unwrap();
        assert_eq!(hex(&enc), v.enc, "enc (pkEm)");
        assert_eq!(hex(&shared_secret[..]), v.shared_secret, "shared_secret");
        assert_eq!(hex(&decap(&sk_r, &pk_rm, sender_public, &enc).unwrap()[..]), v.shared_secret, "Decap");

        let keys = key_schedule(mode, Aead::ChaCha20Poly1305, &shared_secret[..], &info).unwrap();
        assert_eq!(hex(&keys.secret[..]), v.secret, "secret");
        assert_eq!(hex(&keys.key[..]), v.key, "key");
        assert_eq!(hex(&keys.base_nonce), v.base_nonce, "base_nonce");

        let mut sealed = vec![0xee];
        seal(Aead::ChaCha20Poly1305, &sk_em, &pk_rm, sender_key, &info, &aad, &pt, &mut sealed).unwrap();
        assert_eq!(sealed[0], 0xee, "appended");
        assert_eq!(hex(&sealed[1..]), format!("{}{}", v.enc, v.ct), "enc ‖ ct");
        let (enc, ct) = (unhex(v.enc), unhex(v.ct));
        let opened = open(Aead::ChaCha20Poly1305, &sk_r, &pk_rm, sender_public, &enc, &info, &aad, &ct).unwrap();
        assert_eq!(&opened[..], &pt[..]);
    }

    #[test]
    fn base_mode_matches_rfc9180_a_2_1() {
        check(&A_2_1);
        // The same inputs under AES-256-GCM differ, and do not open as ChaCha20-Poly1305.
        let (sk_em, pk_rm, info) = (key32(A_2_1.sk_em), key32(A_2_1.pk_rm), unhex(INFO));
        let (_, shared_secret) = encap(&sk_em, &pk_rm, None).unwrap();
        let aes = key_schedule(MODE_BASE, Aead::Aes256Gcm, &shared_secret[..], &info).unwrap();
        assert_ne!(hex(&aes.key[..]), A_2_1.key);
        let mut sealed = Vec::new();
        seal(Aead::Aes256Gcm, &sk_em, &pk_rm, None, &info, &unhex(AAD_0), &unhex(PT), &mut sealed).unwrap();
        assert_ne!(hex(&sealed), format!("{}{}", A_2_1.enc, A_2_1.ct));
        let sk_r = private(&key32(A_2_1.sk_rm));
        let (enc, ct) = sealed.split_at(X25519_KEY_LEN);
        let chacha = open(Aead::ChaCha20Poly1305, &sk_r, &pk_rm, None, enc, &info, &unhex(AAD_0), ct);
        assert!(matches!(chacha, Err(HpkeError::Open)));
    }

    #[test]
    fn auth_mode_matches_rfc9180_a_2_3() {
        check(&A_2_3);
    }

    /// A fixed auth-mode message: (recipient, pkR, sender, pkS, enc ‖ ct).
    fn auth_sealed(
        aead: Aead,
        plaintext: &[u8],
    ) -> (agreement::PrivateKey, [u8; 32], agreement::PrivateKey, [u8; 32], Vec<u8>) {
        let recipient = private(&[0x11; 32]);
        let sender = private(&[0x22; 32]);
        let (recipient_public, sender_public) = (public(&recipient), public(&sender));
        let mut sealed = Vec::new();
        let sender_key = SenderKey { private: &sender, public: &sender_public };
        seal(aead, &[0x33; 32], &recipient_public, Some(sender_key), b"info", b"aad", plaintext, &mut sealed).unwrap();
        (recipient, recipient_public, sender, sender_public, sealed)
    }

    #[test]
    fn auth_mode_refuses_another_sender_base_mode_and_damage() {
        let pt = b"an UPDATE for the private subdomain";
        let (recipient, pk_r, _, pk_s, sealed) = auth_sealed(Aead::ChaCha20Poly1305, pt);
        let (enc, ct) = sealed.split_at(X25519_KEY_LEN);
        let opens = |sender_public: Option<&[u8; 32]>, enc: &[u8], ct: &[u8]| {
            open(Aead::ChaCha20Poly1305, &recipient, &pk_r, sender_public, enc, b"info", b"aad", ct)
        };
        assert_eq!(&opens(Some(&pk_s), enc, ct).unwrap()[..], &pt[..]);

        let other_sender = public(&private(&[0x44; 32]));
        assert!(matches!(opens(Some(&other_sender), enc, ct), Err(HpkeError::Open)), "another sender");
        assert!(matches!(opens(None, enc, ct), Err(HpkeError::Open)), "opened in base mode");
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let (enc, ct) = flipped.split_at(X25519_KEY_LEN);
            assert!(matches!(opens(Some(&pk_s), enc, ct), Err(HpkeError::Open)), "bit {bit}");
        }
        assert!(matches!(opens(Some(&pk_s), &enc[..31], ct), Err(HpkeError::Open)), "short enc");
        assert!(matches!(opens(Some(&pk_s), enc, &ct[..TAG_LEN - 1]), Err(HpkeError::Open)), "short tag");
        let wrong_aad = open(Aead::ChaCha20Poly1305, &recipient, &pk_r, Some(&pk_s), enc, b"info", b"aaD", ct);
        assert!(matches!(wrong_aad, Err(HpkeError::Open)));
        let wrong_info = open(Aead::ChaCha20Poly1305, &recipient, &pk_r, Some(&pk_s), enc, b"infO", b"aad", ct);
        assert!(matches!(wrong_info, Err(HpkeError::Open)));
        // A small-order sender key gives an all-zero DH: refused, like a small-order enc.
        assert!(matches!(opens(Some(&[0; 32]), enc, ct), Err(HpkeError::Open)));
        assert!(matches!(opens(Some(&pk_s), &[0; 32], ct), Err(HpkeError::Open)));

        // And a base-mode message does not open in auth mode.
        let mut base = Vec::new();
        seal(Aead::ChaCha20Poly1305, &[0x33; 32], &pk_r, None, b"info", b"aad", pt, &mut base).unwrap();
        assert_eq!(base[..32], sealed[..32], "same enc");
        assert_ne!(base, sealed);
        let (enc, ct) = base.split_at(X25519_KEY_LEN);
        assert_eq!(&opens(None, enc, ct).unwrap()[..], &pt[..]);
        assert!(matches!(opens(Some(&pk_s), enc, ct), Err(HpkeError::Open)));
    }

    #[test]
    fn aes_256_gcm_auth_round_trip() {
        for len in [0, 1, 100, 1500] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let (recipient, pk_r, _, pk_s, sealed) = auth_sealed(Aead::Aes256Gcm, &pt);
            assert_eq!(sealed.len(), X25519_KEY_LEN + len + TAG_LEN);
            let (enc, ct) = sealed.split_at(X25519_KEY_LEN);
            let opened = open(Aead::Aes256Gcm, &recipient, &pk_r, Some(&pk_s), enc, b"info", b"aad", ct).unwrap();
            assert_eq!(&opened[..], &pt[..]);
            let chacha = open(Aead::ChaCha20Poly1305, &recipient, &pk_r, Some(&pk_s), enc, b"info", b"aad", ct);
            assert!(matches!(chacha, Err(HpkeError::Open)), "another AEAD");
            assert_eq!(sealed, auth_sealed(Aead::Aes256Gcm, &pt).4, "deterministic");
        }
    }

    #[test]
    fn sealing_to_a_small_order_key_is_refused_and_leaves_out_as_it_was() {
        let sender = private(&[0x22; 32]);
        let sender_public = public(&sender);
        for sender in [None, Some(SenderKey { private: &sender, public: &sender_public })] {
            let mut out = vec![9];
            let e = seal(Aead::Aes256Gcm, &[0x33; 32], &[0; 32], sender, b"", b"", b"q", &mut out).unwrap_err();
            assert!(matches!(e, HpkeError::SmallOrder), "{e}");
            assert_eq!(out, [9]);
        }
    }

    /// RFC 9180 §4's labeled HKDF written out by hand over HMAC-SHA256 (RFC 5869), against the
    /// module's, with lengths other than the vectors'.
    #[test]
    fn labeled_hkdf_follows_rfc9180_section_4() {
        let hmac = |key: &[u8], parts: &[&[u8]]| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, key);
            hmac::sign(&key, &parts.concat()).as_ref().to_vec()
        };
        let suite = b"HPKE\x00\x20\x00\x01\x00\x02";
        assert_eq!(suite, &hpke_suite_id(Aead::Aes256Gcm));
        let prk = hmac(b"salt", &[b"HPKE-v1", suite, b"label", b"ikm"]);
        assert_eq!(&labeled_extract(b"salt", suite, b"label", b"ikm")[..], &prk[..]);
        // Expand(prk, info, 45): T(1) ‖ T(2), T(i) = HMAC(prk, T(i-1) ‖ info ‖ i).
        let info = [&45u16.to_be_bytes()[..], b"HPKE-v1", suite, b"lbl", b"context"].concat();
        let t1 = hmac(&prk, &[&info, &[1]]);
        let t2 = hmac(&prk, &[&t1, &info, &[2]]);
        let mut out = [0u8; 45];
        labeled_expand(&prk, suite, b"lbl", b"context", &mut out).unwrap();
        assert_eq!(&out[..], &[t1, t2].concat()[..45]);
    }
}
