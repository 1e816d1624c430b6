//! DNSENC's cryptography: the encryption schemes dotgate defines for the draft's scheme numbers
//! (the draft names none that can be used), the server's private query keys, a client's view of
//! them, and the one-time symmetric keys that encrypt answers.
//!
//! | code     | name              | encrypts | key data in the NSK          | payload                                   |
//! |----------|-------------------|----------|------------------------------|-------------------------------------------|
//! | `0x0001` | rsa2048           | queries  | DER SubjectPublicKeyInfo     | 256-byte RSAES-OAEP blocks, ≤ 190 in each |
//! | `0x0002` | rsa4096           | queries  | DER SubjectPublicKeyInfo     | 512-byte RSAES-OAEP blocks, ≤ 446 in each |
//! | `0x00F1` | x25519            | queries  | the 32-byte X25519 key       | HPKE `enc` (32) ‖ ciphertext ‖ tag (16)   |
//! | `0x8001` | aes-256           | answers  | the client's one-time key    | nonce (12) ‖ ciphertext ‖ tag (16)        |
//! | `0x80F1` | chacha20-poly1305 | answers  | the client's one-time key    | nonce (12) ‖ ciphertext ‖ tag (16)        |
//!
//! - RSA: RSAES-OAEP (RFC 8017) with SHA-256, MGF1-SHA-256 and an empty label. The plaintext is
//!   cut in order into pieces of at most 190 (2048-bit) or 446 (4096-bit) octets, each
//!   encrypted as one block; the payload is the blocks back to back. An empty plaintext is one
//!   block carrying no octets, so a payload is always a non-zero multiple of the modulus size.
//!   The key id is not bound into RSA blocks (the label is empty); it only selects the key.
//! - x25519: HPKE (RFC 9180) base mode, single shot: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//!   AES-256-GCM, `info` empty, AAD the key id (4 bytes, big-endian).
//! - Answers: AEAD under the 32-byte key from the query's inner NSK, a random 12-byte nonce, AAD
//!   the key id (4 bytes, big-endian).
//!
//! Everything is built on aws-lc-rs, the project's one crypto library. The server's side
//! (decrypting queries, sealing answers) is aws-lc-rs only; RSA decryption is aws-lc's
//! constant-time OAEP. HPKE and the AEAD steps of the answers are [`crate::hpke`]'s (shared with
//! the private-subdomain gateway); this module maps its errors into [`CryptoError`]. The
//! client's RSA encryption does the EME-OAEP encoding here so that its randomness comes from
//! the caller (test vectors are exact bytes) and the public operation `m^e mod n` with
//! `num-bigint`: it is not constant-time and does not wipe its limbs, which is acceptable for a
//! client encrypting its own query and never runs on the server's secret.
//!
//! This module owns: the scheme numbers and names, key generation and PKCS#8 import/export,
//! encryption and decryption of payloads. It must never: do I/O or log; put key bytes or
//! plaintext into an error message or a `Debug` string; say why a decryption failed beyond the
//! payload's length, which is public (one [`CryptoError::Decrypt`] for a wrong key, a wrong key
//! id or an altered payload, so that it is no padding oracle); or draw randomness for an
//! encryption from anywhere but the caller's RNG (keys come from the operating system's).
//! Secrets it copies (PKCS#8 documents, ephemeral keys, shared secrets, plaintexts) are wiped
//! when dropped; the keys themselves live in aws-lc's memory, which aws-lc wipes when it frees
//! it.

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian, AsDer, Curve25519SeedBin};
use aws_lc_rs::{agreement, digest, rsa};
use num_bigint::BigUint;
use zeroize::Zeroizing;

use crate::hpke::{self, Aead, HpkeError};

/// RSAES-OAEP, 2048-bit key: encrypts queries.
pub const RSA2048_OAEP: u16 = 0x0001;
/// RSAES-OAEP, 4096-bit key: encrypts queries.
pub const RSA4096_OAEP: u16 = 0x0002;
/// HPKE with X25519 and AES-256-GCM: encrypts queries.
pub const X25519_HPKE: u16 = 0x00F1;
/// AES-256-GCM under the client's one-time key: encrypts answers.
pub const AES256_GCM: u16 = 0x8001;
/// ChaCha20-Poly1305 under the client's one-time key: encrypts answers.
pub const CHACHA20_POLY1305: u16 = 0x80F1;

/// Bytes of the one-time key a client sends for its answer.
pub const RESPONSE_KEY_LEN: usize = 32;
/// Bytes of the random nonce in front of an encrypted answer.
pub const RESPONSE_NONCE_LEN: usize = 12;
/// Bytes of an AEAD tag (AES-256-GCM, ChaCha20-Poly1305).
pub const AEAD_TAG_LEN: usize = hpke::TAG_LEN;
/// Bytes of an X25519 key, public or private (and of HPKE's `enc`).
pub const X25519_KEY_LEN: usize = hpke::X25519_KEY_LEN;

/// Bytes of SHA-256: OAEP's hash and MGF1's.
const SHA256_LEN: usize = 32;
/// What OAEP with SHA-256 takes out of every block: two hashes and two marker bytes.
const OAEP_OVERHEAD: usize = 2 * SHA256_LEN + 2;

/// The RFC 8410 PKCS#8 (v1) document of an X25519 private key, up to the key's 32 bytes:
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.110 }, OCTET STRING { OCTET STRING (32) } }.
const X25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20];

/// What goes wrong. Messages name schemes and sizes, never key bytes or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The scheme number is not one dotgate has for this use.
    #[error("scheme {scheme:#06x} is not a DNSENC {wanted} scheme dotgate knows")]
    UnsupportedScheme {
        /// The number asked for.
        scheme: u16,
        /// "query" or "response".
        wanted: &'static str,
    },
    /// A private key that is not what its scheme needs (another algorithm or size, or not PKCS#8).
    #[error("bad {scheme} private key: {why}")]
    BadPrivateKey {
        /// The scheme's name.
        scheme: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// Key data from an NSK that is not a public key of its scheme.
    #[error("bad {scheme} public key data: {why}")]
    BadPublicKey {
        /// The scheme's name.
        scheme: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// An answer key that is not 32 bytes.
    #[error("a response key is {got} bytes, want {RESPONSE_KEY_LEN}")]
    BadResponseKeyLength {
        /// Its length.
        got: usize,
    },
    /// A payload whose length no payload of its scheme can have (public: says nothing of keys).
    #[error("a {len}-byte payload cannot be scheme {scheme:#06x}")]
    BadPayloadLength {
        /// The scheme it was meant to be.
        scheme: u16,
        /// Its length.
        len: usize,
    },
    /// The payload does not decrypt. Deliberately one error for every reason.
    #[error("the payload does not decrypt (wrong key, wrong key id, or altered)")]
    Decrypt,
    /// aws-lc failed where it should not (key generation, sealing).
    #[error("the crypto library failed: {0}")]
    Library(&'static str),
}

/// HPKE's and the answer AEADs' failures as this module says them: a message that does not open
/// is [`CryptoError::Decrypt`], a small-order key sealed to is the x25519 key data's fault.
impl From<HpkeError> for CryptoError {
    fn from(e: HpkeError) -> CryptoError {
        match e {
            HpkeError::Open => CryptoError::Decrypt,
            HpkeError::SmallOrder => CryptoError::BadPublicKey {
                scheme: "x25519",
                why: "a small-order point (X25519 with it gives zero)".into(),
            },
            HpkeError::Library(what) => CryptoError::Library(what),
        }
    }
}

/// The name dotgate uses for a scheme (key files, logs), if it knows the scheme.
pub fn scheme_name(scheme: u16) -> Option<&'static str> {
    Some(match scheme {
        RSA2048_OAEP => "rsa2048",
        RSA4096_OAEP => "rsa4096",
        X25519_HPKE => "x25519",
        AES256_GCM => "aes-256",
        CHACHA20_POLY1305 => "chacha20-poly1305",
        _ => return None,
    })
}

/// The scheme [`scheme_name`] calls `name`.
pub fn scheme_by_name(name: &str) -> Option<u16> {
    [RSA2048_OAEP, RSA4096_OAEP, X25519_HPKE, AES256_GCM, CHACHA20_POLY1305]
        .into_iter()
        .find(|&scheme| scheme_name(scheme) == Some(name))
}

/// Whether `scheme` is one that encrypts queries to a server key.
pub fn is_query_scheme(scheme: u16) -> bool {
    matches!(scheme, RSA2048_OAEP | RSA4096_OAEP | X25519_HPKE)
}

/// Whether `scheme` is one that encrypts answers under a client's one-time key.
pub fn is_response_scheme(scheme: u16) -> bool {
    matches!(scheme, AES256_GCM | CHACHA20_POLY1305)
}

/// The bytes a payload adds to its plaintext: 28 for the answer AEADs (nonce and tag), 48 for
/// x25519 (`enc` and tag). RSA's depends on the length ([`payload_len`]); for it this is the
/// padding of one block, 66. 0 for a scheme this module does not know.
pub fn payload_overhead(scheme: u16) -> usize {
    match scheme {
        AES256_GCM | CHACHA20_POLY1305 => RESPONSE_NONCE_LEN + AEAD_TAG_LEN,
        X25519_HPKE => X25519_KEY_LEN + AEAD_TAG_LEN,
        RSA2048_OAEP | RSA4096_OAEP => OAEP_OVERHEAD,
        _ => 0,
    }
}

/// The exact length of the payload that encrypts `plaintext_len` bytes under `scheme`, or `None`
/// for a scheme this module does not know.
pub fn payload_len(scheme: u16, plaintext_len: usize) -> Option<usize> {
    match rsa_modulus_len(scheme) {
        Some(modulus_len) => Some(rsa_block_count(modulus_len, plaintext_len) * modulus_len),
        None if scheme_name(scheme).is_some() => Some(plaintext_len + payload_overhead(scheme)),
        None => None,
    }
}

/// Bytes of the modulus (and of every block) of an RSA scheme.
fn rsa_modulus_len(scheme: u16) -> Option<usize> {
    match scheme {
        RSA2048_OAEP => Some(2048 / 8),
        RSA4096_OAEP => Some(4096 / 8),
        _ => None,
    }
}

/// Blocks that carry `plaintext_len` bytes: at least one (an empty plaintext is one empty block).
fn rsa_block_count(modulus_len: usize, plaintext_len: usize) -> usize {
    plaintext_len.div_ceil(modulus_len - OAEP_OVERHEAD).max(1)
}

fn query_scheme_name(scheme: u16) -> Result<&'static str, CryptoError> {
    match scheme_name(scheme) {
        Some(name) if is_query_scheme(scheme) => Ok(name),
        _ => Err(CryptoError::UnsupportedScheme { scheme, wanted: "query" }),
    }
}

/// The server's private key for one query scheme. `Debug` shows the scheme only.
///
/// The key lives in aws-lc's memory, wiped by aws-lc when the key is dropped; PKCS#8 copies
/// handed out are [`Zeroizing`].
pub struct QueryKey {
    inner: PrivateInner,
}

enum PrivateInner {
    Rsa {
        scheme: u16,
        /// Kept for its PKCS#8 export; `oaep` shares it (a reference count, not a copy).
        key: rsa::PrivateDecryptingKey,
        oaep: rsa::OaepPrivateDecryptingKey,
        /// DER SubjectPublicKeyInfo: the NSK's key data.
        public_der: Vec<u8>,
    },
    X25519 {
        key: agreement::PrivateKey,
        public: [u8; X25519_KEY_LEN],
    },
}

impl QueryKey {
    /// A new key for a query scheme, from the operating system's random source. RSA-4096 takes
    /// seconds.
    pub fn generate(scheme: u16) -> Result<QueryKey, CryptoError> {
        let name = query_scheme_name(scheme)?;
        match scheme {
            X25519_HPKE => agreement::PrivateKey::generate(&agreement::X25519)
                .map_err(|_| CryptoError::Library("X25519 key generation"))
                .and_then(QueryKey::from_x25519),
            _ => {
                let size = if scheme == RSA2048_OAEP { rsa::KeySize::Rsa2048 } else { rsa::KeySize::Rsa4096 };
                let key = rsa::PrivateDecryptingKey::generate(size)
                    .map_err(|_| CryptoError::Library("RSA key generation"))?;
                QueryKey::from_rsa(scheme, name, key)
            }
        }
    }

    /// The key in a PKCS#8 document: for RSA an RSA private key of the scheme's size exactly,
    /// for x25519 an RFC 8410 document (OID 1.3.101.110, version 1, as OpenSSL writes it).
    pub fn from_pkcs8(scheme: u16, der: &[u8]) -> Result<QueryKey, CryptoError> {
        let name = query_scheme_name(scheme)?;
        let bad = |why: &str| CryptoError::BadPrivateKey { scheme: name, why: why.to_owned() };
        if scheme == X25519_HPKE {
            let raw = match der.strip_prefix(&X25519_PKCS8_PREFIX[..]) {
                Some(raw) if raw.len() == X25519_KEY_LEN => raw,
                _ => return Err(bad("not an RFC 8410 PKCS#8 X25519 private key (OID 1.3.101.110)")),
            };
            let key = agreement::PrivateKey::from_private_key(&agreement::X25519, raw)
                .map_err(|_| bad("aws-lc refuses the X25519 key"))?;
            return QueryKey::from_x25519(key);
        }
        let key = rsa::PrivateDecryptingKey::from_pkcs8(der).map_err(|_| bad("not a PKCS#8 RSA private key"))?;
        QueryKey::from_rsa(scheme, name, key)
    }

    /// A key from raw X25519 private key bytes.
    #[cfg(test)]
    fn from_x25519_raw(raw: &[u8]) -> QueryKey {
        QueryKey::from_x25519(agreement::PrivateKey::from_private_key(&agreement::X25519, raw).unwrap()).unwrap()
    }

    fn from_x25519(key: agreement::PrivateKey) -> Result<QueryKey, CryptoError> {
        let public = key.compute_public_key().map_err(|_| CryptoError::Library("X25519 public key"))?;
        let public = public.as_ref().try_into().map_err(|_| CryptoError::Library("X25519 public key length"))?;
        Ok(QueryKey { inner: PrivateInner::X25519 { key, public } })
    }

    fn from_rsa(scheme: u16, name: &'static str, key: rsa::PrivateDecryptingKey) -> Result<QueryKey, CryptoError> {
        let want_bits = rsa_modulus_len(scheme).unwrap_or(0) * 8;
        if key.key_size_bits() != want_bits {
            return Err(CryptoError::BadPrivateKey {
                scheme: name,
                why: format!("an RSA key of {} bits, the scheme needs {want_bits}", key.key_size_bits()),
            });
        }
        let public_der =
            key.public_key().as_der().map_err(|_| CryptoError::Library("RSA public key encoding"))?.as_ref().to_vec();
        let oaep = rsa::OaepPrivateDecryptingKey::new(key.clone()).map_err(|_| CryptoError::Library("RSA-OAEP key"))?;
        Ok(QueryKey { inner: PrivateInner::Rsa { scheme, key, oaep, public_der } })
    }

    /// The key as a PKCS#8 (v1) document, as [`QueryKey::from_pkcs8`] reads it.
    pub fn to_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        // aws-lc serializes a key it holds unless memory runs out (which aborts anyway).
        match &self.inner {
            PrivateInner::Rsa { key, .. } => {
                Zeroizing::new(key.as_der().expect("aws-lc encodes the RSA key it holds").as_ref().to_vec())
            }
            PrivateInner::X25519 { key, .. } => {
                let raw: Curve25519SeedBin<'static> =
                    key.as_be_bytes().expect("aws-lc exports the X25519 key it holds");
                let mut der = Zeroizing::new(Vec::with_capacity(X25519_PKCS8_PREFIX.len() + X25519_KEY_LEN));
                der.extend_from_slice(&X25519_PKCS8_PREFIX);
                der.extend_from_slice(raw.as_ref());
                der
            }
        }
    }

    /// The query scheme this key is for.
    pub fn scheme(&self) -> u16 {
        match &self.inner {
            PrivateInner::Rsa { scheme, .. } => *scheme,
            PrivateInner::X25519 { .. } => X25519_HPKE,
        }
    }

    /// The public key as it goes into the NSK's KEY DATA: DER SubjectPublicKeyInfo for RSA, the
    /// 32 raw bytes for x25519.
    pub fn public_key_data(&self) -> Vec<u8> {
        match &self.inner {
            PrivateInner::Rsa { public_der, .. } => public_der.clone(),
            PrivateInner::X25519 { public, .. } => public.to_vec(),
        }
    }

    /// A client's view of this key, as [`QueryPublicKey::new`] makes it from the NSK.
    pub fn public_key(&self) -> Result<QueryPublicKey, CryptoError> {
        QueryPublicKey::new(self.scheme(), &self.public_key_data())
    }

    /// The plaintext of a query payload encrypted to this key under `key_id`.
    ///
    /// Fails with [`CryptoError::BadPayloadLength`] for a length the scheme cannot produce and
    /// with [`CryptoError::Decrypt`] for anything else; never panics. Every RSA block costs a
    /// private-key operation (milliseconds for a 4096-bit key): the caller bounds the payload.
    pub fn decrypt(&self, key_id: u32, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match &self.inner {
            PrivateInner::Rsa { scheme, oaep, .. } => {
                let modulus_len = oaep.key_size_bytes();
                if payload.is_empty() || payload.len() % modulus_len != 0 {
                    return Err(CryptoError::BadPayloadLength { scheme: *scheme, len: payload.len() });
                }
                let blocks = payload.len() / modulus_len;
                // Sized for the most the blocks can hold, so no copy of plaintext is left behind
                // by a reallocation.
                let mut plaintext = Zeroizing::new(Vec::with_capacity(blocks * (modulus_len - OAEP_OVERHEAD)));
                let mut block_out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
                for block in payload.chunks_exact(modulus_len) {
                    let piece = oaep
                        .decrypt(&rsa::OAEP_SHA256_MGF1SHA256, block, &mut block_out, None)
                        .map_err(|_| CryptoError::Decrypt)?;
                    plaintext.extend_from_slice(piece);
                }
                Ok(plaintext)
            }
            PrivateInner::X25519 { key, public } => {
                if payload.len() < X25519_KEY_LEN + AEAD_TAG_LEN {
                    return Err(CryptoError::BadPayloadLength { scheme: X25519_HPKE, len: payload.len() });
                }
                let (enc, ciphertext) = payload.split_at(X25519_KEY_LEN);
                Ok(hpke::open(Aead::Aes256Gcm, key, public, None, enc, &[], &key_id.to_be_bytes(), ciphertext)?)
            }
        }
    }
}

impl fmt::Debug for QueryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryKey({}, ..)", scheme_name(self.scheme()).unwrap_or("?"))
    }
}

/// A client's view of a server key (from an NSK's scheme and key data). `Debug` shows the
/// scheme only.
#[derive(Clone)]
pub struct QueryPublicKey {
    inner: PublicInner,
}

#[derive(Clone)]
enum PublicInner {
    Rsa { scheme: u16, modulus_len: usize, modulus: BigUint, exponent: BigUint },
    X25519 { public: [u8; X25519_KEY_LEN] },
}

impl QueryPublicKey {
    /// The key in an NSK's KEY DATA for `scheme`: for RSA a DER SubjectPublicKeyInfo of an RSA
    /// key of the scheme's size exactly (checked by aws-lc), for x25519 the 32 raw bytes.
    pub fn new(scheme: u16, key_data: &[u8]) -> Result<QueryPublicKey, CryptoError> {
        let name = query_scheme_name(scheme)?;
        let bad = |why: String| CryptoError::BadPublicKey { scheme: name, why };
        if scheme == X25519_HPKE {
            let public =
                key_data.try_into().map_err(|_| bad(format!("{} bytes, want {X25519_KEY_LEN}", key_data.len())))?;
            return Ok(QueryPublicKey { inner: PublicInner::X25519 { public } });
        }
        // `PublicEncryptingKey` takes SubjectPublicKeyInfo only and checks the key;
        // `rsa::PublicKey` (which also takes a bare RSAPublicKey, refused by the first) has n and e.
        let checked = rsa::PublicEncryptingKey::from_der(key_data)
            .map_err(|_| bad("not a DER SubjectPublicKeyInfo of an RSA key".into()))?;
        // aws-lc's parser takes trailing bytes; the key data must be the one DER encoding.
        if checked.as_der().map_or(true, |der| der.as_ref() != key_data) {
            return Err(bad("not exactly one DER SubjectPublicKeyInfo (trailing or non-canonical bytes)".into()));
        }
        let want_bits = rsa_modulus_len(scheme).unwrap_or(0) * 8;
        if checked.key_size_bits() != want_bits {
            return Err(bad(format!("an RSA key of {} bits, the scheme needs {want_bits}", checked.key_size_bits())));
        }
        let components =
            rsa::PublicKey::from_der(key_data).map_err(|_| bad("aws-lc cannot read its modulus".into()))?;
        let modulus = BigUint::from_bytes_be(components.modulus().big_endian_without_leading_zero());
        let exponent = BigUint::from_bytes_be(components.exponent().big_endian_without_leading_zero());
        let modulus_len = checked.key_size_bytes();
        if modulus.bits() != want_bits as u64 {
            return Err(bad("the modulus is not the size aws-lc reports".into()));
        }
        Ok(QueryPublicKey { inner: PublicInner::Rsa { scheme, modulus_len, modulus, exponent } })
    }

    /// The query scheme of this key.
    pub fn scheme(&self) -> u16 {
        match &self.inner {
            PublicInner::Rsa { scheme, .. } => *scheme,
            PublicInner::X25519 { .. } => X25519_HPKE,
        }
    }

    /// The most plaintext one RSA block carries (190 for rsa2048, 446 for rsa4096); `None` for
    /// schemes without blocks.
    pub fn max_block_plaintext(&self) -> Option<usize> {
        match &self.inner {
            PublicInner::Rsa { modulus_len, .. } => Some(modulus_len - OAEP_OVERHEAD),
            PublicInner::X25519 { .. } => None,
        }
    }

    /// Appends to `out` the payload that carries `plaintext` to the holder of the private key
    /// under `key_id`, with every random byte (OAEP seeds, the ephemeral X25519 key) drawn from
    /// `rng`. On an error `out` is as it was.
    pub fn encrypt(
        &self,
        key_id: u32,
        plaintext: &[u8],
        rng: &mut impl rand::RngCore,
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let start = out.len();
        let result = match &self.inner {
            PublicInner::Rsa { modulus_len, modulus, exponent, .. } => {
                let max = modulus_len - OAEP_OVERHEAD;
                out.reserve(rsa_block_count(*modulus_len, plaintext.len()) * modulus_len);
                // An empty plaintext is one empty block (`chunks` of nothing yields none).
                let mut pieces = plaintext.chunks(max);
                let first = pieces.next().unwrap_or(&[]);
                for piece in std::iter::once(first).chain(pieces) {
                    oaep_encrypt_block(*modulus_len, modulus, exponent, piece, rng, out);
                }
                Ok(())
            }
            PublicInner::X25519 { public } => {
                let mut ephemeral = Zeroizing::new([0u8; X25519_KEY_LEN]);
                rng.fill_bytes(&mut ephemeral[..]);
                hpke::seal(Aead::Aes256Gcm, &ephemeral, public, None, &[], &key_id.to_be_bytes(), plaintext, out)
                    .map_err(CryptoError::from)
            }
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

impl fmt::Debug for QueryPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryPublicKey({})", scheme_name(self.scheme()).unwrap_or("?"))
    }
}

/// RFC 8017 §7.1.1: EME-OAEP (SHA-256, MGF1-SHA-256, empty label) of `piece`, then `m^e mod n`,
/// appended to `out` as `modulus_len` bytes. `piece` is at most `modulus_len - 66` bytes. Also
/// the private-subdomain gateway's ENCR algorithm 3 (`frontend::pvt::seal`).
pub(crate) fn oaep_encrypt_block(
    modulus_len: usize,
    modulus: &BigUint,
    exponent: &BigUint,
    piece: &[u8],
    rng: &mut impl rand::RngCore,
    out: &mut Vec<u8>,
) {
    debug_assert!(piece.len() <= modulus_len - OAEP_OVERHEAD);
    // EM = 0x00 ‖ maskedSeed ‖ maskedDB; DB = lHash ‖ PS (zeros) ‖ 0x01 ‖ M.
    let mut encoded = Zeroizing::new(vec![0u8; modulus_len]);
    let (seed, db) = encoded[1..].split_at_mut(SHA256_LEN);
    db[..SHA256_LEN].copy_from_slice(digest::digest(&digest::SHA256, b"").as_ref());
    let message_at = db.len() - piece.len();
    db[message_at - 1] = 0x01;
    db[message_at..].copy_from_slice(piece);
    rng.fill_bytes(seed);
    mgf1_xor(seed, db);
    mgf1_xor(db, seed);
    let ciphertext = BigUint::from_bytes_be(&encoded).modpow(exponent, modulus).to_bytes_be();
    // I2OSP: left-padded to the modulus length (EM < 2^(8k-8) < n, so it fits).
    out.resize(out.len() + modulus_len - ciphertext.len(), 0);
    out.extend_from_slice(&ciphertext);
}

/// `target ^= MGF1-SHA-256(seed, target.len())` (RFC 8017 §B.2.1).
fn mgf1_xor(seed: &[u8], target: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(target.chunks_mut(SHA256_LEN)) {
        let mut hash = digest::Context::new(&digest::SHA256);
        hash.update(seed);
        hash.update(&counter.to_be_bytes());
        for (byte, mask) in chunk.iter_mut().zip(hash.finish().as_ref()) {
            *byte ^= mask;
        }
    }
}

/// Appends to `out` the answer `plaintext` sealed under the client's one-time `key` (32 bytes)
/// with `scheme` ([`AES256_GCM`] or [`CHACHA20_POLY1305`]): a nonce from `rng` ‖ ciphertext ‖
/// tag, AAD the key id. On an error `out` is as it was.
pub fn seal_response(
    scheme: u16,
    key: &[u8],
    key_id: u32,
    plaintext: &[u8],
    rng: &mut impl rand::RngCore,
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let algorithm = response_algorithm(scheme, key)?;
    let mut nonce = [0u8; RESPONSE_NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let start = out.len();
    out.reserve(RESPONSE_NONCE_LEN + plaintext.len() + AEAD_TAG_LEN);
    out.extend_from_slice(&nonce);
    hpke::aead_seal(algorithm, key, nonce, &key_id.to_be_bytes(), plaintext, out)
        .inspect_err(|_| out.truncate(start))
        .map_err(CryptoError::from)
}

/// The answer in a payload [`seal_response`] made with the same scheme, key and key id.
pub fn open_response(scheme: u16, key: &[u8], key_id: u32, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let algorithm = response_algorithm(scheme, key)?;
    if payload.len() < RESPONSE_NONCE_LEN + AEAD_TAG_LEN {
        return Err(CryptoError::BadPayloadLength { scheme, len: payload.len() });
    }
    let (nonce, sealed) = payload.split_at(RESPONSE_NONCE_LEN);
    let nonce = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
    let mut plaintext = hpke::aead_open(algorithm, key, nonce, &key_id.to_be_bytes(), sealed)?;
    Ok(std::mem::take(&mut *plaintext))
}

fn response_algorithm(scheme: u16, key: &[u8]) -> Result<Aead, CryptoError> {
    let algorithm = match scheme {
        AES256_GCM => Aead::Aes256Gcm,
        CHACHA20_POLY1305 => Aead::ChaCha20Poly1305,
        _ => return Err(CryptoError::UnsupportedScheme { scheme, wanted: "response" }),
    };
    if key.len() != RESPONSE_KEY_LEN {
        return Err(CryptoError::BadResponseKeyLength { got: key.len() });
    }
    Ok(algorithm)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    /// The secrets dotgate holds outside aws-lc (which cleanses its own keys when they are
    /// freed) are `Zeroizing`, wiped when dropped: the PKCS#8 export, a decrypted query, the
    /// client's one-time answer key while its query is in flight, and the client tool's copy.
    /// Changing one of these types fails to compile this test.
    #[test]
    fn secrets_outside_aws_lc_are_zeroizing() {
        let _: fn(&QueryKey) -> Zeroizing<Vec<u8>> = QueryKey::to_pkcs8;
        fn decrypted(key: &QueryKey, payload: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
            key.decrypt(1, payload).ok()
        }
        fn answer_key(sealing: &crate::frontend::dnsenc::server::Sealing) -> &Zeroizing<Vec<u8>> {
            &sealing.key
        }
        fn client_answer_key(query: &crate::frontend::dnsenc::client::Query) -> &Zeroizing<Vec<u8>> {
            &query.response_key
        }
        let _ = (answer_key, client_answer_key, decrypted);
        let key = QueryKey::generate(X25519_HPKE).unwrap();
        assert_eq!(
            QueryKey::from_pkcs8(X25519_HPKE, &key.to_pkcs8()).unwrap().public_key_data(),
            key.public_key_data()
        );
    }

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::hpke::tests::{hex, unhex};

    /// The fixture key in `tests/vectors/dnsenc/keys/` (RSA generation is slow; never in tests).
    fn fixture(file: &str) -> QueryKey {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/dnsenc/keys").join(file);
        super::super::keys::ServerKey::parse_file(&std::fs::read_to_string(path).unwrap()).unwrap().key
    }

    fn rsa2048() -> &'static QueryKey {
        static KEY: OnceLock<QueryKey> = OnceLock::new();
        KEY.get_or_init(|| fixture("rsa2048.key"))
    }

    fn rsa4096() -> &'static QueryKey {
        static KEY: OnceLock<QueryKey> = OnceLock::new();
        KEY.get_or_init(|| fixture("rsa4096.key"))
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn encrypt(key: &QueryPublicKey, key_id: u32, plaintext: &[u8], seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        key.encrypt(key_id, plaintext, &mut StdRng::seed_from_u64(seed), &mut out).unwrap();
        out
    }

    fn assert_decrypt_fails(key: &QueryKey, key_id: u32, payload: &[u8]) {
        match key.decrypt(key_id, payload) {
            Err(CryptoError::Decrypt | CryptoError::BadPayloadLength { .. }) => {}
            other => panic!("{} bytes: {:?}", payload.len(), other.map(|p| p.len())),
        }
    }

    #[test]
    fn scheme_names_and_kinds() {
        for scheme in [RSA2048_OAEP, RSA4096_OAEP, X25519_HPKE, AES256_GCM, CHACHA20_POLY1305] {
            assert_eq!(scheme_by_name(scheme_name(scheme).unwrap()), Some(scheme));
            assert_ne!(is_query_scheme(scheme), is_response_scheme(scheme));
        }
        assert_eq!(scheme_name(0x0003), None);
        assert_eq!(scheme_by_name("aes-128"), None);
        assert_eq!(payload_overhead(AES256_GCM), 28);
        assert_eq!(payload_overhead(CHACHA20_POLY1305), 28);
        assert_eq!(payload_overhead(X25519_HPKE), 48);
        assert_eq!(payload_len(RSA2048_OAEP, 0), Some(256));
        assert_eq!(payload_len(RSA2048_OAEP, 190), Some(256));
        assert_eq!(payload_len(RSA2048_OAEP, 191), Some(512));
        assert_eq!(payload_len(RSA4096_OAEP, 447), Some(1024));
        assert_eq!(payload_len(0x1234, 10), None);
    }

    #[test]
    fn x25519_round_trips_and_is_deterministic_under_a_seed() {
        let key = QueryKey::generate(X25519_HPKE).unwrap();
        assert_eq!(key.scheme(), X25519_HPKE);
        let public = key.public_key().unwrap();
        assert_eq!(public.max_block_plaintext(), None);
        for len in [0, 1, 100, 1500] {
            let payload = encrypt(&public, 7, &plaintext(len), 1);
            assert_eq!(Some(payload.len()), payload_len(X25519_HPKE, len));
            assert_eq!(&key.decrypt(7, &payload).unwrap()[..], &plaintext(len)[..]);
            assert_eq!(payload, encrypt(&public, 7, &plaintext(len), 1), "same seed, same bytes");
            assert_ne!(payload, encrypt(&public, 7, &plaintext(len), 2));
        }
    }

    #[test]
    fn x25519_damage_fails_cleanly() {
        let key = QueryKey::generate(X25519_HPKE).unwrap();
        let payload = encrypt(&key.public_key().unwrap(), 0xdead_beef, &plaintext(60), 3);
        for bit in 0..payload.len() * 8 {
            let mut flipped = payload.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_decrypt_fails(&key, 0xdead_beef, &flipped);
        }
        for len in 0..payload.len() {
            assert_decrypt_fails(&key, 0xdead_beef, &payload[..len]);
        }
        assert!(matches!(key.decrypt(0xdead_beee, &payload), Err(CryptoError::Decrypt)), "key id is the AAD");
        assert!(matches!(key.decrypt(1, &payload[..47]), Err(CryptoError::BadPayloadLength { len: 47, .. })));
        let other = QueryKey::generate(X25519_HPKE).unwrap();
        assert!(matches!(other.decrypt(0xdead_beef, &payload), Err(CryptoError::Decrypt)));
        // A small-order `enc` (all zeros) gives an all-zero X25519 output: refused.
        let mut small_order = payload.clone();
        small_order[..32].fill(0);
        assert!(matches!(key.decrypt(0xdead_beef, &small_order), Err(CryptoError::Decrypt)));
        // And a client refuses to encrypt to a small-order server key.
        let zero_key = QueryPublicKey::new(X25519_HPKE, &[0; 32]).unwrap();
        let mut out = vec![9];
        let e = zero_key.encrypt(1, b"q", &mut StdRng::seed_from_u64(1), &mut out).unwrap_err();
        assert!(matches!(e, CryptoError::BadPublicKey { scheme: "x25519", .. }), "{e}");
        assert_eq!(out, [9], "out untouched on error");
    }

    #[test]
    fn x25519_pkcs8_round_trips() {
        let key = QueryKey::generate(X25519_HPKE).unwrap();
        let der = key.to_pkcs8();
        assert_eq!(der.len(), 48);
        let back = QueryKey::from_pkcs8(X25519_HPKE, &der).unwrap();
        assert_eq!(back.public_key_data(), key.public_key_data());
        assert!(QueryKey::from_pkcs8(X25519_HPKE, &der[..47]).is_err());
        let mut ed25519 = der.to_vec();
        ed25519[11] = 0x70; // OID 1.3.101.112
        assert!(QueryKey::from_pkcs8(X25519_HPKE, &ed25519).is_err());
        assert!(matches!(QueryKey::from_pkcs8(RSA2048_OAEP, &der), Err(CryptoError::BadPrivateKey { .. })));
        assert!(matches!(
            QueryKey::from_pkcs8(AES256_GCM, &der),
            Err(CryptoError::UnsupportedScheme { scheme: AES256_GCM, wanted: "query" })
        ));
    }

    #[test]
    fn rsa_round_trips_in_one_two_and_three_blocks() {
        let key = rsa2048();
        let public = key.public_key().unwrap();
        assert_eq!(public.max_block_plaintext(), Some(190));
        for (len, blocks) in [(0, 1), (1, 1), (100, 1), (190, 1), (191, 2), (300, 2), (380, 2), (381, 3), (500, 3)] {
            let payload = encrypt(&public, 5, &plaintext(len), 4);
            assert_eq!(payload.len(), blocks * 256, "{len} bytes");
            assert_eq!(Some(payload.len()), payload_len(RSA2048_OAEP, len));
            assert_eq!(&key.decrypt(5, &payload).unwrap()[..], &plaintext(len)[..], "{len} bytes");
            assert_eq!(payload, encrypt(&public, 5, &plaintext(len), 4), "same seed, same bytes");
        }
    }

    #[test]
    fn rsa4096_round_trips() {
        let key = rsa4096();
        assert_eq!(key.scheme(), RSA4096_OAEP);
        let public = key.public_key().unwrap();
        assert_eq!(public.max_block_plaintext(), Some(446));
        for (len, blocks) in [(0, 1), (446, 1), (447, 2), (1000, 3)] {
            let payload = encrypt(&public, 5, &plaintext(len), 4);
            assert_eq!(payload.len(), blocks * 512, "{len} bytes");
            assert_eq!(&key.decrypt(5, &payload).unwrap()[..], &plaintext(len)[..], "{len} bytes");
        }
        let payload = encrypt(&public, 5, &plaintext(10), 4);
        assert!(matches!(key.decrypt(5, &payload[..256]), Err(CryptoError::BadPayloadLength { .. })));
        assert!(matches!(rsa2048().decrypt(5, &payload), Err(CryptoError::Decrypt)), "another key");
    }

    #[test]
    fn rsa2048_generation_makes_a_working_key() {
        let key = QueryKey::generate(RSA2048_OAEP).unwrap();
        let payload = encrypt(&key.public_key().unwrap(), 1, b"query", 1);
        assert_eq!(&key.decrypt(1, &payload).unwrap()[..], b"query");
        assert!(matches!(QueryKey::generate(AES256_GCM), Err(CryptoError::UnsupportedScheme { .. })));
    }

    #[test]
    fn rsa_damage_fails_cleanly() {
        let key = rsa2048();
        let payload = encrypt(&key.public_key().unwrap(), 5, &plaintext(300), 6);
        for bit in [0, 7, 8 * 100 + 3, 8 * 255 + 7, 8 * 256, 8 * 300 + 1, 8 * 511 + 7] {
            let mut flipped = payload.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(key.decrypt(5, &flipped), Err(CryptoError::Decrypt)), "bit {bit}");
        }
        for len in [0, 1, 255, 257, 511] {
            assert!(matches!(key.decrypt(5, &payload[..len]), Err(CryptoError::BadPayloadLength { .. })), "{len}");
        }
        // A block of the right length that is no OAEP block, and one that is not below n.
        assert!(matches!(
            key.decrypt(5, &[payload[..256].to_vec(), vec![0x5a; 256]].concat()),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(key.decrypt(5, &[0xff; 256]), Err(CryptoError::Decrypt)));
        // The key id only picks the key: RSA blocks do not carry it.
        assert_eq!(&key.decrypt(6, &payload).unwrap()[..], &plaintext(300)[..]);
    }

    /// Every block this module encrypts opens with aws-lc's own OAEP, and aws-lc's OAEP blocks
    /// open with `QueryKey::decrypt`.
    #[test]
    fn rsa_oaep_interoperates_with_aws_lc_both_ways() {
        let key = rsa2048();
        let PrivateInner::Rsa { key: private, oaep, .. } = &key.inner else { unreachable!() };
        let message = plaintext(450);
        let payload = encrypt(&key.public_key().unwrap(), 1, &message, 8);
        let mut pieces = Vec::new();
        let mut buffer = vec![0u8; oaep.min_output_size()];
        for block in payload.chunks(256) {
            let piece = oaep.decrypt(&rsa::OAEP_SHA256_MGF1SHA256, block, &mut buffer, None).unwrap();
            pieces.push(piece.len());
        }
        assert_eq!(pieces, [190, 190, 70], "cut in order, greedily");

        let theirs = rsa::OaepPublicEncryptingKey::new(private.public_key()).unwrap();
        assert_eq!(theirs.max_plaintext_size(&rsa::OAEP_SHA256_MGF1SHA256), 190);
        let mut payload = Vec::new();
        for piece in message.chunks(190) {
            let mut block = vec![0u8; theirs.ciphertext_size()];
            payload.extend_from_slice(theirs.encrypt(&rsa::OAEP_SHA256_MGF1SHA256, piece, &mut block, None).unwrap());
        }
        assert_eq!(&key.decrypt(1, &payload).unwrap()[..], &message[..]);
    }

    #[test]
    fn rsa_keys_are_checked() {
        let key = rsa2048();
        let der = key.to_pkcs8();
        let back = QueryKey::from_pkcs8(RSA2048_OAEP, &der).unwrap();
        assert_eq!(back.public_key_data(), key.public_key_data());
        let e = QueryKey::from_pkcs8(RSA4096_OAEP, &der).unwrap_err();
        assert_eq!(e.to_string(), "bad rsa4096 private key: an RSA key of 2048 bits, the scheme needs 4096");
        assert!(QueryKey::from_pkcs8(X25519_HPKE, &der).is_err());
        assert!(QueryKey::from_pkcs8(RSA2048_OAEP, &der[..der.len() - 1]).is_err());

        let spki = key.public_key_data();
        assert!(QueryPublicKey::new(RSA2048_OAEP, &spki).is_ok());
        let e = QueryPublicKey::new(RSA4096_OAEP, &spki).unwrap_err();
        assert_eq!(e.to_string(), "bad rsa4096 public key data: an RSA key of 2048 bits, the scheme needs 4096");
        assert!(QueryPublicKey::new(RSA2048_OAEP, &spki[..spki.len() - 1]).is_err());
        assert!(QueryPublicKey::new(RSA2048_OAEP, &[spki.clone(), vec![0]].concat()).is_err(), "trailing byte");
        // A bare PKCS#1 RSAPublicKey (the BIT STRING's contents) is not SubjectPublicKeyInfo.
        assert!(QueryPublicKey::new(RSA2048_OAEP, &spki[24..]).is_err());
        assert!(QueryPublicKey::new(X25519_HPKE, &spki).is_err());
        assert!(QueryPublicKey::new(X25519_HPKE, &[1; 31]).is_err());
        assert!(QueryPublicKey::new(AES256_GCM, &[1; 32]).is_err());
    }

    #[test]
    fn responses_round_trip_and_damage_fails_cleanly() {
        let key = [0x42; 32];
        for scheme in [AES256_GCM, CHACHA20_POLY1305] {
            for len in [0, 1, 512, 4096] {
                let mut payload = vec![0xee];
                seal_response(scheme, &key, 99, &plaintext(len), &mut StdRng::seed_from_u64(1), &mut payload).unwrap();
                assert_eq!(payload[0], 0xee, "appended");
                let payload = &payload[1..];
                assert_eq!(payload.len(), len + 28);
                assert_eq!(Some(payload.len()), payload_len(scheme, len));
                assert_eq!(open_response(scheme, &key, 99, payload).unwrap(), plaintext(len));
            }
            let mut payload = Vec::new();
            seal_response(scheme, &key, 99, b"answer", &mut StdRng::seed_from_u64(2), &mut payload).unwrap();
            for bit in 0..payload.len() * 8 {
                let mut flipped = payload.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(matches!(open_response(scheme, &key, 99, &flipped), Err(CryptoError::Decrypt)));
            }
            for len in 0..payload.len() {
                assert!(open_response(scheme, &key, 99, &payload[..len]).is_err());
            }
            assert!(matches!(open_response(scheme, &key, 98, &payload), Err(CryptoError::Decrypt)), "AAD");
            assert!(matches!(open_response(scheme, &[0x43; 32], 99, &payload), Err(CryptoError::Decrypt)));
            let other = if scheme == AES256_GCM { CHACHA20_POLY1305 } else { AES256_GCM };
            assert!(matches!(open_response(other, &key, 99, &payload), Err(CryptoError::Decrypt)));
            assert!(matches!(
                open_response(scheme, &key[..16], 99, &payload),
                Err(CryptoError::BadResponseKeyLength { got: 16 })
            ));
            let mut out = Vec::new();
            let e = seal_response(scheme, &[0; 31], 1, b"a", &mut StdRng::seed_from_u64(1), &mut out).unwrap_err();
            assert!(matches!(e, CryptoError::BadResponseKeyLength { got: 31 }));
            assert!(out.is_empty());
        }
        let mut out = Vec::new();
        let e = seal_response(X25519_HPKE, &key, 1, b"a", &mut StdRng::seed_from_u64(1), &mut out).unwrap_err();
        assert!(matches!(e, CryptoError::UnsupportedScheme { wanted: "response", .. }));
    }

    #[test]
    fn debug_and_errors_show_no_key_bytes() {
        let key = QueryKey::from_x25519_raw(&[0x11; 32]);
        assert_eq!(format!("{key:?}"), "QueryKey(x25519, ..)");
        assert_eq!(format!("{:?}", key.public_key().unwrap()), "QueryPublicKey(x25519)");
        assert_eq!(format!("{:?}", rsa2048()), "QueryKey(rsa2048, ..)");
        let errors = [
            key.decrypt(1, &[0; 80]).unwrap_err(),
            key.decrypt(1, &[0; 8]).unwrap_err(),
            QueryKey::from_pkcs8(X25519_HPKE, &[0x11; 48]).unwrap_err(),
            QueryPublicKey::new(RSA2048_OAEP, &[0x11; 300]).unwrap_err(),
            open_response(AES256_GCM, &[0x11; 32], 1, &[0x11; 40]).unwrap_err(),
        ];
        for e in errors {
            let text = format!("{e} {e:?}");
            assert!(!text.contains("11111111") && !text.contains("17, 17") && !text.contains('\n'), "{text}");
        }
    }

    /// The exact-bytes vectors in `tests/vectors/dnsenc/crypto.txt`: fixed keys (the key files in
    /// `keys/`), a seeded `StdRng` per vector.
    mod vectors {
        use std::path::{Path, PathBuf};

        use super::super::super::keys::ServerKey;
        use super::*;

        fn dir() -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/dnsenc")
        }

        /// The key files: name, scheme, key id, priority.
        const KEY_FILES: [(&str, u16, u32, u8); 3] = [
            ("rsa2048.key", RSA2048_OAEP, 1001, 10),
            ("rsa4096.key", RSA4096_OAEP, 1002, 5),
            ("x25519.key", X25519_HPKE, 1003, 20),
        ];

        /// A DNS query: ID 0x1234, RD, `example.com. IN A`.
        const DNS_QUERY: &str = "123401000001000000000000076578616d706c6503636f6d0000010001";
        /// The answers' one-time key.
        const RESPONSE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        const RESPONSE_KEY_ID: u32 = 0x0102_0304;

        /// The RNG the vectors use, recording what it hands out (so the file can give the
        /// random bytes too, for implementations without rand's StdRng).
        struct Recorder {
            rng: StdRng,
            drawn: Vec<u8>,
        }

        impl rand::RngCore for Recorder {
            fn next_u32(&mut self) -> u32 {
                let value = self.rng.next_u32();
                self.drawn.extend_from_slice(&value.to_le_bytes());
                value
            }
            fn next_u64(&mut self) -> u64 {
                let value = self.rng.next_u64();
                self.drawn.extend_from_slice(&value.to_le_bytes());
                value
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                self.rng.fill_bytes(dest);
                self.drawn.extend_from_slice(dest);
            }
        }

        /// One vector, as the file has it.
        #[derive(Debug, PartialEq)]
        struct Vector {
            name: String,
            scheme: u16,
            /// The key: a file in `keys/` (queries) or hex (answers).
            key: String,
            key_id: u32,
            seed: u64,
            plaintext: String,
            random: String,
            payload: String,
        }

        fn load_key(file: &str) -> ServerKey {
            let text = std::fs::read_to_string(dir().join("keys").join(file)).unwrap();
            ServerKey::parse_file(&text).unwrap()
        }

        /// (name, scheme, key, seed, plaintext)
        fn inputs() -> Vec<(&'static str, u16, &'static str, u64, String)> {
            vec![
                ("x25519-query", X25519_HPKE, "x25519.key", 1, DNS_QUERY.to_owned()),
                ("rsa2048-query-one-block", RSA2048_OAEP, "rsa2048.key", 2, hex(&plaintext(100))),
                ("rsa2048-query-two-blocks", RSA2048_OAEP, "rsa2048.key", 3, hex(&plaintext(300))),
                ("rsa4096-query-one-block", RSA4096_OAEP, "rsa4096.key", 4, hex(&plaintext(300))),
                ("aes-256-answer", AES256_GCM, RESPONSE_KEY, 5, hex(&plaintext(64))),
                ("chacha20-poly1305-answer", CHACHA20_POLY1305, RESPONSE_KEY, 6, hex(&plaintext(64))),
            ]
        }

        /// Every vector, computed by this module now.
        fn compute() -> Vec<Vector> {
            inputs()
                .into_iter()
                .map(|(name, scheme, key, seed, plaintext)| {
                    let mut rng = Recorder { rng: StdRng::seed_from_u64(seed), drawn: Vec::new() };
                    let mut payload = Vec::new();
                    let key_id = if is_query_scheme(scheme) {
                        let server = load_key(key);
                        assert_eq!(server.key.scheme(), scheme, "{key}");
                        let public = QueryPublicKey::new(scheme, &server.key.public_key_data()).unwrap();
                        public.encrypt(server.key_id, &unhex(&plaintext), &mut rng, &mut payload).unwrap();
                        server.key_id
                    } else {
                        seal_response(scheme, &unhex(key), RESPONSE_KEY_ID, &unhex(&plaintext), &mut rng, &mut payload)
                            .unwrap();
                        RESPONSE_KEY_ID
                    };
                    Vector {
                        name: name.to_owned(),
                        scheme,
                        key: key.to_owned(),
                        key_id,
                        seed,
                        plaintext,
                        random: hex(&rng.drawn),
                        payload: hex(&payload),
                    }
                })
                .collect()
        }

        const HEADER: &str = "\
# dotgate DNSENC crypto test vectors: exact payloads for fixed keys and a seeded RNG.
# Checked by `cargo test --lib dnsenc` (src/frontend/dnsenc/crypto.rs, vectors::file_matches):
# every payload is recomputed and compared, and decrypted with the server's key.
#
# key:       a query key file in keys/ (PEM PKCS#8 under dotgate's header line; test fixtures,
#            not secrets), or an answer's one-time 32-byte key in hex.
# key-id:    the NSK key id, in the AAD as 4 bytes big-endian (x25519 and the answer AEADs).
# seed:      rand 0.9 `StdRng::seed_from_u64(seed)`, passed to QueryPublicKey::encrypt or
#            seal_response.
# random:    every byte that RNG handed out, in order (OAEP seeds, 32 per block; the HPKE
#            ephemeral X25519 private key; the answer nonce), for implementations without it.
# plaintext, payload: hex. x25519's payload is enc ‖ ciphertext ‖ tag (HPKE base mode, info
#            empty); RSA's the 256- or 512-byte OAEP blocks; an answer's nonce ‖ ciphertext ‖ tag.
#
# Rewrite only when a scheme deliberately changes:
#   cargo test --lib dnsenc -- --ignored write_vectors
";

        fn render(vectors: &[Vector]) -> String {
            let mut text = HEADER.to_owned();
            for v in vectors {
                text.push_str(&format!(
                    "\n[{}]\nscheme = {:#06x} {}\nkey = {}\nkey-id = {}\nseed = {}\nplaintext = {}\nrandom = {}\npayload = {}\n",
                    v.name,
                    v.scheme,
                    scheme_name(v.scheme).unwrap(),
                    v.key,
                    v.key_id,
                    v.seed,
                    v.plaintext,
                    v.random,
                    v.payload
                ));
            }
            text
        }

        fn parse(text: &str) -> Vec<Vector> {
            let mut vectors = Vec::new();
            for section in text.split("\n[").skip(1) {
                let (name, body) = section.split_once("]\n").unwrap();
                let field = |name: &str| {
                    let prefix = format!("{name} = ");
                    body.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name}")).to_owned()
                };
                let scheme = field("scheme");
                let scheme =
                    u16::from_str_radix(scheme.split(' ').next().unwrap().trim_start_matches("0x"), 16).unwrap();
                vectors.push(Vector {
                    name: name.to_owned(),
                    scheme,
                    key: field("key"),
                    key_id: field("key-id").parse().unwrap(),
                    seed: field("seed").parse().unwrap(),
                    plaintext: field("plaintext"),
                    random: field("random"),
                    payload: field("payload"),
                });
            }
            vectors
        }

        #[test]
        fn file_matches() {
            let text = std::fs::read_to_string(dir().join("crypto.txt")).unwrap();
            let file = parse(&text);
            assert_eq!(file.len(), inputs().len());
            for (computed, written) in compute().iter().zip(&file) {
                assert_eq!(computed, written, "recomputed");
                let payload = unhex(&written.payload);
                let plaintext = if is_query_scheme(written.scheme) {
                    let server = load_key(&written.key);
                    assert_eq!(server.key_id, written.key_id);
                    server.key.decrypt(written.key_id, &payload).unwrap().to_vec()
                } else {
                    open_response(written.scheme, &unhex(&written.key), written.key_id, &payload).unwrap()
                };
                assert_eq!(hex(&plaintext), written.plaintext, "{} decrypts", written.name);
            }
            // The sizes the brief asks for: RSA one and two blocks, RSA-4096 one block.
            let len = |name: &str| file.iter().find(|v| v.name == name).unwrap().payload.len() / 2;
            assert_eq!(
                [len("rsa2048-query-one-block"), len("rsa2048-query-two-blocks"), len("rsa4096-query-one-block")],
                [256, 512, 512]
            );
        }

        #[test]
        fn fixture_keys_are_what_their_files_say() {
            for (file, scheme, key_id, priority) in KEY_FILES {
                let key = load_key(file);
                assert_eq!((key.key.scheme(), key.key_id, key.priority), (scheme, key_id, priority), "{file}");
            }
        }

        /// Makes the key files that are missing (RSA-4096 takes seconds) and rewrites crypto.txt.
        #[test]
        #[ignore = "writes tests/vectors/dnsenc; run by hand when a scheme deliberately changes"]
        fn write_vectors() {
            std::fs::create_dir_all(dir().join("keys")).unwrap();
            for (file, scheme, key_id, priority) in KEY_FILES {
                let path = dir().join("keys").join(file);
                if !path.exists() {
                    let key = ServerKey {
                        key_id,
                        priority,
                        response_schemes: super::super::super::keys::DEFAULT_RESPONSE_SCHEMES.to_vec(),
                        key: QueryKey::generate(scheme).unwrap(),
                    };
                    key.write_new(&path).unwrap();
                }
            }
            std::fs::write(dir().join("crypto.txt"), render(&compute())).unwrap();
        }
    }
}
