//! The private-subdomain keys: Ed25519 (DNSSEC algorithm 15) key pairs in BIND's private-key
//! file format, their KEY records (Zone bit 0, protocol 3), and the X25519 keys the same pair
//! seals with (the Ed25519 → X25519 map), and the provider's enrollment file.
//!
//! One Ed25519 key both signs SIG(0) and, mapped to X25519, seals and opens HPKE: the private
//! scalar is the first half of SHA-512(seed), as Ed25519 itself derives it (RFC 8032 §5.1.5),
//! and the public key is the birational map u = (1 + y) / (1 - y) mod p (RFC 7748 §4.1; the
//! analysis of using one key for both: eprint 2021/509). aws-lc-rs has no such map and the
//! public map runs once per key (a worker caches a user's key), so it is done here with
//! num-bigint rather than with a new curve crate; the secret side is aws-lc-rs only.
//!
//! The compatibility mode's RSA user keys (RSASHA256, RFC 5702; RFC 3110 KEY RDATA) are here
//! too: [`RsaPublicKey`] for the gateway, [`RsaKeyPair`] (PKCS#8 PEM) for the client, and
//! [`UserPublic`] / [`UserKeyPair`] over both kinds. The provider's key is always Ed25519.
//!
//! Owns: key generation and files, KEY RDATA, key tags. Never: logs or prints a secret, or puts
//! one in an error or `Debug`; reads a private key file that others may read.

use std::fmt;
use std::path::Path;

use aws_lc_rs::{agreement, digest, signature};
use base64::Engine as _;
use num_bigint::BigUint;
use zeroize::Zeroizing;

/// DNSSEC algorithm number of Ed25519 (RFC 8080).
pub const ALGORITHM_ED25519: u8 = 15;
/// DNSSEC algorithm number of RSA/SHA-256 (RFC 5702): user keys in the compatibility mode only.
pub const ALGORITHM_RSASHA256: u8 = 8;
/// The smallest and largest RSA moduli a user key may have, in bits.
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 4096;
/// KEY protocol field: DNSSEC (RFC 2535 §3.1.3).
pub const PROTOCOL_DNSSEC: u8 = 3;
/// KEY flags: Zone bit 0, a key for authentication and confidentiality (RFC 2535 §3.1.2).
pub const KEY_FLAGS: u16 = 0;
/// RR type KEY.
pub const TYPE_KEY: u16 = 25;
/// Bytes of an Ed25519 or X25519 key, public or private.
pub const KEY_LEN: usize = 32;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What is wrong with a key or a key file. Never carries key bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{0}")]
    File(String),
    #[error("not an Ed25519 (algorithm 15) public key: {0}")]
    Public(&'static str),
    #[error("not an RSASHA256 (algorithm 8) public key: {0}")]
    RsaPublic(&'static str),
}

/// A public key as a KEY record carries it, with what sealing to it needs.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The Ed25519 key (the KEY record's public key field).
    pub ed25519: [u8; KEY_LEN],
    /// Its X25519 image, which HPKE seals to.
    pub x25519: [u8; KEY_LEN],
    /// The RFC 4034 Appendix B tag of its KEY RDATA.
    pub tag: u16,
}

impl PublicKey {
    /// From a KEY record's RDATA: flags, protocol 3, algorithm 15, 32 octets. The flags are not
    /// checked here (the gateway requires Zone bit 0 where a key is registered).
    pub fn from_key_rdata(rdata: &[u8]) -> Result<PublicKey, KeyError> {
        if rdata.len() != 4 + KEY_LEN {
            return Err(KeyError::Public("the KEY RDATA is not 36 octets"));
        }
        if rdata[2] != PROTOCOL_DNSSEC {
            return Err(KeyError::Public("the protocol is not 3 (DNSSEC)"));
        }
        if rdata[3] != ALGORITHM_ED25519 {
            return Err(KeyError::Public("the algorithm is not 15"));
        }
        let ed25519: [u8; KEY_LEN] = rdata[4..].try_into().expect("length checked");
        PublicKey::from_ed25519(ed25519, key_tag(rdata))
    }

    fn from_ed25519(ed25519: [u8; KEY_LEN], tag: u16) -> Result<PublicKey, KeyError> {
        let x25519 = edwards_to_montgomery(&ed25519)?;
        Ok(PublicKey { ed25519, x25519, tag })
    }

    /// The KEY RDATA: flags 0, protocol 3, algorithm 15, the key.
    pub fn key_rdata(&self) -> Vec<u8> {
        key_rdata(&self.ed25519)
    }

    /// The key in a KEY record's presentation form: `0 3 15 BASE64`.
    pub fn key_text(&self) -> String {
        format!(
            "{KEY_FLAGS} {PROTOCOL_DNSSEC} {ALGORITHM_ED25519} {}",
            base64::engine::general_purpose::STANDARD.encode(self.ed25519)
        )
    }

    /// Checks an Ed25519 signature by this key.
    pub fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.ed25519).verify(message, signature_bytes).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(tag {})", self.tag)
    }
}

/// A key pair: signs as Ed25519, opens and seals as X25519.
pub struct KeyPair {
    signing: signature::Ed25519KeyPair,
    /// The X25519 secret (aws-lc wipes it when freed).
    agreement: agreement::PrivateKey,
    /// The seed, for writing the key file.
    seed: Zeroizing<[u8; KEY_LEN]>,
    pub public: PublicKey,
}

impl KeyPair {
    /// A new key pair from the operating system's randomness.
    pub fn generate() -> KeyPair {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(&mut seed[..]).expect("the OS random source");
        KeyPair::from_seed(&seed).expect("a fresh seed makes a key")
    }

    /// The key pair of a 32-byte Ed25519 seed (RFC 8032 §5.1.5).
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Result<KeyPair, KeyError> {
        let signing = signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| KeyError::File("the Ed25519 seed is not usable".into()))?;
        let mut scalar = Zeroizing::new([0u8; KEY_LEN]);
        scalar.copy_from_slice(&digest::digest(&digest::SHA512, seed).as_ref()[..KEY_LEN]);
        // X25519 clamps the scalar itself (RFC 7748 §5), as Ed25519 does.
        let agreement = agreement::PrivateKey::from_private_key(&agreement::X25519, &scalar[..])
            .map_err(|_| KeyError::File("the X25519 key cannot be made".into()))?;
        let ed25519: [u8; KEY_LEN] =
            signature::KeyPair::public_key(&signing).as_ref().try_into().expect("32-byte Ed25519 key");
        let public = PublicKey::from_ed25519(ed25519, key_tag(&key_rdata(&ed25519)))?;
        Ok(KeyPair { signing, agreement, seed: Zeroizing::new(*seed), public })
    }

    /// Signs `message` (Ed25519, 64 octets).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).as_ref().try_into().expect("64-byte Ed25519 signature")
    }

    /// The X25519 secret, for HPKE.
    pub fn agreement(&self) -> &agreement::PrivateKey {
        &self.agreement
    }

    /// The seed, for hickory-proto's signer (PKCS#8) in the client tools.
    pub fn pkcs8(&self) -> Zeroizing<Vec<u8>> {
        // RFC 8410: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
        let mut der = Zeroizing::new(vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
        ]);
        der.extend_from_slice(&self.seed[..]);
        der
    }

    /// BIND's private-key file format (v1.3) for an Ed25519 key, which `dnssec-keygen -a
    /// ED25519` writes and this reads back.
    pub fn file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "Private-key-format: v1.3\nAlgorithm: {ALGORITHM_ED25519} (ED25519)\nPrivateKey: {}\n",
            base64::engine::general_purpose::STANDARD.encode(&self.seed[..])
        ))
    }

    /// Reads a key file ([`KeyPair::file_text`]'s format), refusing one that the group or
    /// others may read (mode 0600 or stricter, as BIND's own private keys).
    pub fn read_file(path: &Path) -> Result<KeyPair, KeyError> {
        let text = read_private_file(path)?;
        KeyPair::parse_file(&text).map_err(|why| KeyError::File(format!("{}: {why}", path.display())))
    }

    /// Parses [`KeyPair::file_text`]'s format.
    pub fn parse_file(text: &str) -> Result<KeyPair, String> {
        let field = |name: &str| {
            text.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')).map(str::trim))
        };
        if !field("Private-key-format").is_some_and(|v| v.starts_with("v1.")) {
            return Err("not a private key file (no `Private-key-format: v1.x` line)".into());
        }
        let algorithm = field("Algorithm").ok_or("no `Algorithm:` line")?;
        if algorithm.split_whitespace().next() != Some("15") {
            return Err(format!("algorithm `{algorithm}`: only 15 (ED25519) is supported"));
        }
        let encoded = field("PrivateKey").ok_or("no `PrivateKey:` line")?;
        let seed = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| "the PrivateKey is not base64".to_owned())?,
        );
        let seed: &[u8; KEY_LEN] = seed[..].try_into().map_err(|_| "the PrivateKey is not 32 octets".to_owned())?;
        KeyPair::from_seed(seed).map_err(|e| e.to_string())
    }

    /// Writes the key file with mode 0600, refusing to replace an existing file.
    pub fn write_file(&self, path: &Path) -> Result<(), KeyError> {
        write_private_file(path, &self.file_text())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair(tag {})", self.public.tag)
    }
}

/// An RSA public key of a user in the compatibility mode (`--pvt-rsa-compat`): RSASHA256
/// (RFC 5702) for SIG(0), RSA-OAEP-SHA256 for the answers sealed to it (ENCR algorithm 3).
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus, big-endian, no leading zero.
    pub n: Vec<u8>,
    /// The public exponent, big-endian, no leading zero.
    pub e: Vec<u8>,
    /// Octets of the modulus (of an OAEP block).
    pub modulus_len: usize,
    /// The RFC 4034 Appendix B tag of its KEY RDATA.
    pub tag: u16,
    /// The KEY RDATA: flags 0, protocol 3, algorithm 8, the key in RFC 3110 form.
    pub rdata: Vec<u8>,
}

impl RsaPublicKey {
    /// From a KEY record's RDATA: protocol 3, algorithm 8, RFC 3110's exponent length (one
    /// octet, or 0 then two), exponent, modulus; a modulus of 2048 to 4096 bits, an odd exponent
    /// of 3 or more in at most 4 octets (what aws-lc verifies with), neither with a leading zero.
    /// The flags are not checked here (as for [`PublicKey::from_key_rdata`]).
    pub fn from_key_rdata(rdata: &[u8]) -> Result<RsaPublicKey, KeyError> {
        let bad = KeyError::RsaPublic;
        if rdata.len() < 5 {
            return Err(bad("the KEY RDATA is too short"));
        }
        if rdata[2] != PROTOCOL_DNSSEC {
            return Err(bad("the protocol is not 3 (DNSSEC)"));
        }
        if rdata[3] != ALGORITHM_RSASHA256 {
            return Err(bad("the algorithm is not 8"));
        }
        let key = &rdata[4..];
        let (e_at, e_len) = match key {
            [0, high, low, ..] => (3, usize::from(u16::from_be_bytes([*high, *low]))),
            [len, ..] if *len != 0 => (1, usize::from(*len)),
            _ => return Err(bad("the exponent length is missing")),
        };
        let e = key.get(e_at..e_at + e_len).ok_or(bad("the exponent runs off the RDATA"))?;
        let n = &key[e_at + e_len..];
        RsaPublicKey::check(n, e)?;
        Ok(RsaPublicKey {
            n: n.to_vec(),
            e: e.to_vec(),
            modulus_len: n.len(),
            tag: key_tag(rdata),
            rdata: rdata.to_vec(),
        })
    }

    /// The key of modulus `n` and exponent `e` (big-endian), checked as by
    /// [`RsaPublicKey::from_key_rdata`].
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, KeyError> {
        let strip = |b: &[u8]| b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..].to_vec();
        let (n, e) = (strip(n), strip(e));
        let mut rdata = Vec::with_capacity(7 + e.len() + n.len());
        rdata.extend_from_slice(&KEY_FLAGS.to_be_bytes());
        rdata.push(PROTOCOL_DNSSEC);
        rdata.push(ALGORITHM_RSASHA256);
        match u8::try_from(e.len()) {
            Ok(len) if len != 0 => rdata.push(len),
            _ => {
                rdata.push(0);
                rdata.extend_from_slice(&(e.len() as u16).to_be_bytes());
            }
        }
        rdata.extend_from_slice(&e);
        rdata.extend_from_slice(&n);
        RsaPublicKey::from_key_rdata(&rdata)
    }

    fn check(n: &[u8], e: &[u8]) -> Result<(), KeyError> {
        let bad = KeyError::RsaPublic;
        if e.is_empty() || e.len() > 4 || e[0] == 0 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) {
            return Err(bad("the exponent is not an odd number of 3 or more in at most 4 octets"));
        }
        if n.first().is_none_or(|&b| b == 0) {
            return Err(bad("the modulus is empty or has a leading zero"));
        }
        let bits = n.len() * 8 - n[0].leading_zeros() as usize;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) || n[n.len() - 1] & 1 == 0 {
            return Err(bad("the modulus is not an odd number of 2048 to 4096 bits"));
        }
        Ok(())
    }

    /// The key in a KEY record's presentation form: `0 3 8 BASE64`.
    pub fn key_text(&self) -> String {
        format!(
            "{KEY_FLAGS} {PROTOCOL_DNSSEC} {ALGORITHM_RSASHA256} {}",
            base64::engine::general_purpose::STANDARD.encode(&self.rdata[4..])
        )
    }

    /// Checks an RSASHA256 (PKCS #1 v1.5, SHA-256) signature by this key.
    pub fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        signature::RsaPublicKeyComponents { n: &self.n[..], e: &self.e[..] }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature_bytes)
            .is_ok()
    }
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({} bits, tag {})", self.modulus_len * 8, self.tag)
    }
}

/// A user's public key as the gateway keeps it: Ed25519, or RSA in the compatibility mode.
/// The provider's key is always Ed25519 ([`PublicKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPublic {
    Ed25519(PublicKey),
    Rsa(RsaPublicKey),
}

impl UserPublic {
    /// From a KEY record's RDATA: Ed25519, or with `rsa_compat` RSASHA256 as well.
    pub fn from_key_rdata(rdata: &[u8], rsa_compat: bool) -> Result<UserPublic, KeyError> {
        match rdata.get(3) {
            Some(&ALGORITHM_RSASHA256) if rsa_compat => RsaPublicKey::from_key_rdata(rdata).map(UserPublic::Rsa),
            _ => PublicKey::from_key_rdata(rdata).map(UserPublic::Ed25519),
        }
    }

    /// The KEY RDATA.
    pub fn key_rdata(&self) -> Vec<u8> {
        match self {
            UserPublic::Ed25519(key) => key.key_rdata(),
            UserPublic::Rsa(key) => key.rdata.clone(),
        }
    }

    /// The key in a KEY record's presentation form.
    pub fn key_text(&self) -> String {
        match self {
            UserPublic::Ed25519(key) => key.key_text(),
            UserPublic::Rsa(key) => key.key_text(),
        }
    }

    /// The RFC 4034 Appendix B tag of its KEY RDATA.
    pub fn tag(&self) -> u16 {
        match self {
            UserPublic::Ed25519(key) => key.tag,
            UserPublic::Rsa(key) => key.tag,
        }
    }
}

/// A user's RSA key pair (the compatibility mode): signs RSASHA256 (through hickory-proto, from
/// [`RsaKeyPair::pkcs8`]) and opens RSA-OAEP-SHA256. The file is PKCS#8 in PEM, mode 0600:
/// what hickory-proto and aws-lc-rs read directly and `openssl pkey` shows; BIND's RSA
/// private-key format would need the CRT parameters written out field by field for no reader
/// that wants them (the gateway never sees a user's private key).
pub struct RsaKeyPair {
    pkcs8: Zeroizing<Vec<u8>>,
    decrypting: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
    pub public: RsaPublicKey,
}

/// The PEM label of a PKCS#8 private key.
const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

impl RsaKeyPair {
    /// A new 2048-bit key from the operating system's randomness.
    pub fn generate() -> Result<RsaKeyPair, KeyError> {
        use aws_lc_rs::encoding::AsDer as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| KeyError::File("aws-lc cannot make an RSA key".into()))?;
        let der = pair.as_der().map_err(|_| KeyError::File("aws-lc cannot encode the RSA key".into()))?;
        RsaKeyPair::from_pkcs8(der.as_ref())
    }

    /// The key pair in a PKCS#8 document (an RSA key of 2048 to 4096 bits).
    pub fn from_pkcs8(der: &[u8]) -> Result<RsaKeyPair, KeyError> {
        use aws_lc_rs::rsa;
        let private = rsa::PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|_| KeyError::File("not a PKCS#8 RSA private key".into()))?;
        let components = rsa::PublicKey::from_der(
            aws_lc_rs::encoding::AsDer::as_der(&private.public_key())
                .map_err(|_| KeyError::File("aws-lc cannot encode the RSA public key".into()))?
                .as_ref(),
        )
        .map_err(|_| KeyError::File("aws-lc cannot read the RSA public key".into()))?;
        let public = RsaPublicKey::from_components(
            components.modulus().big_endian_without_leading_zero(),
            components.exponent().big_endian_without_leading_zero(),
        )?;
        let decrypting = rsa::OaepPrivateDecryptingKey::new(private)
            .map_err(|_| KeyError::File("aws-lc refuses the RSA key for OAEP".into()))?;
        Ok(RsaKeyPair { pkcs8: Zeroizing::new(der.to_vec()), decrypting, public })
    }

    /// The PKCS#8 document, for hickory-proto's signer.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption of one block; `None` if it does
    /// not decrypt.
    pub fn oaep_decrypt(&self, block: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let len = self.decrypting.decrypt(&aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256, block, &mut out, None).ok()?.len();
        out.truncate(len);
        Some(out)
    }

    /// The key file's text: the PKCS#8 document in PEM.
    pub fn file_text(&self) -> Zeroizing<String> {
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&self.pkcs8[..]));
        let mut text = Zeroizing::new(format!("-----BEGIN {PKCS8_PEM_LABEL}-----\n"));
        for line in encoded.as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            text.push('\n');
        }
        text.push_str(&format!("-----END {PKCS8_PEM_LABEL}-----\n"));
        text
    }

    /// Parses [`RsaKeyPair::file_text`]'s format.
    pub fn parse_file(text: &str) -> Result<RsaKeyPair, String> {
        let body = text
            .trim()
            .strip_prefix(&format!("-----BEGIN {PKCS8_PEM_LABEL}-----"))
            .and_then(|rest| rest.strip_suffix(&format!("-----END {PKCS8_PEM_LABEL}-----")))
            .ok_or("not a PKCS#8 PEM file (-----BEGIN PRIVATE KEY-----)")?;
        let compact: Zeroizing<String> = Zeroizing::new(body.split_whitespace().collect());
        let der = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| "the PEM body is not base64".to_owned())?,
        );
        RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())
    }
}

impl fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaKeyPair(tag {})", self.public.tag)
    }
}

/// A user's key pair as the client holds it: Ed25519 (BIND's private-key format), or RSA
/// (PKCS#8 PEM) for the compatibility mode.
#[derive(Debug)]
pub enum UserKeyPair {
    Ed25519(KeyPair),
    Rsa(RsaKeyPair),
}

impl UserKeyPair {
    /// The public key.
    pub fn public(&self) -> UserPublic {
        match self {
            UserKeyPair::Ed25519(pair) => UserPublic::Ed25519(pair.public.clone()),
            UserKeyPair::Rsa(pair) => UserPublic::Rsa(pair.public.clone()),
        }
    }

    /// The key file's text.
    pub fn file_text(&self) -> Zeroizing<String> {
        match self {
            UserKeyPair::Ed25519(pair) => pair.file_text(),
            UserKeyPair::Rsa(pair) => pair.file_text(),
        }
    }

    /// Reads a key file of either kind (PEM for RSA, else BIND's format), refusing one that the
    /// group or others may read.
    pub fn read_file(path: &Path) -> Result<UserKeyPair, KeyError> {
        let text = read_private_file(path)?;
        let shown = path.display();
        if text.trim_start().starts_with("-----BEGIN") {
            RsaKeyPair::parse_file(&text).map(UserKeyPair::Rsa)
        } else {
            KeyPair::parse_file(&text).map(UserKeyPair::Ed25519)
        }
        .map_err(|why| KeyError::File(format!("{shown}: {why}")))
    }

    /// Writes the key file with mode 0600, refusing to replace an existing file.
    pub fn write_file(&self, path: &Path) -> Result<(), KeyError> {
        write_private_file(path, &self.file_text())
    }
}

/// The text of a private key file, refused if the group or others may read it.
fn read_private_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| KeyError::File(format!("cannot read {shown}: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyError::File(format!(
            "{shown} is open to group or others (mode {:o}); a private key must be 0600",
            meta.permissions().mode() & 0o777
        )));
    }
    Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(|e| KeyError::File(format!("cannot read {shown}: {e}")))?))
}

/// Writes `text` to a new file of mode 0600, refusing to replace an existing file.
fn write_private_file(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KeyError::File(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes()).map_err(|e| KeyError::File(format!("cannot write {}: {e}", path.display())))
}

/// KEY RDATA for an Ed25519 public key.
pub fn key_rdata(ed25519: &[u8; KEY_LEN]) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(4 + KEY_LEN);
    rdata.extend_from_slice(&KEY_FLAGS.to_be_bytes());
    rdata.push(PROTOCOL_DNSSEC);
    rdata.push(ALGORITHM_ED25519);
    rdata.extend_from_slice(ed25519);
    rdata
}

/// RFC 4034 Appendix B: the key tag of a KEY or DNSKEY RDATA (same format, same tag).
pub fn key_tag(rdata: &[u8]) -> u16 {
    crate::frontend::dnsenc::dnssec::key_tag(rdata)
}

/// The Montgomery u of the Edwards point whose compressed form is `ed25519`: u = (1 + y) / (1 - y)
/// mod p, y being the encoding with its sign bit cleared (RFC 8032 §5.1.3; RFC 7748 §4.1).
/// Refuses a non-canonical y (≥ p) and y = 1 (the identity, which has no image).
fn edwards_to_montgomery(ed25519: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], KeyError> {
    let p = (BigUint::from(1u8) << 255u32) - BigUint::from(19u8);
    let mut y_bytes = *ed25519;
    y_bytes[31] &= 0x7f;
    let y = BigUint::from_bytes_le(&y_bytes);
    if y >= p {
        return Err(KeyError::Public("a non-canonical point"));
    }
    let one = BigUint::from(1u8);
    if y == one {
        return Err(KeyError::Public("the identity point"));
    }
    let numerator = (&one + &y) % &p;
    let denominator = (&p + &one - &y) % &p;
    // p is prime: the inverse is denominator^(p - 2).
    let inverse = denominator.modpow(&(&p - BigUint::from(2u8)), &p);
    let u = (numerator * inverse) % &p;
    let mut out = [0u8; KEY_LEN];
    let bytes = u.to_bytes_le();
    out[..bytes.len()].copy_from_slice(&bytes);
    Ok(out)
}

/// The provider's enrollment file: the users allowed to register, one label per line (`#`
/// starts a comment), compared case-insensitively. Read at every registration, so an
/// enrollment needs no restart.
pub fn read_enrollment(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|line| !line.is_empty())
        .collect())
}

/// Adds `user` to the enrollment file (creating it), unless it is there already. A user is one
/// DNS label of letters, digits and hyphens (it becomes `<user>._pvt.<domain>`).
pub fn enroll(path: &Path, user: &str) -> Result<bool, String> {
    use std::io::Write as _;
    if user.is_empty() || user.len() > 63 || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("user `{user}` is not one label of letters, digits and hyphens"));
    }
    let known = if path.exists() { read_enrollment(path)? } else { Vec::new() };
    if known.iter().any(|u| u.eq_ignore_ascii_case(user)) {
        return Ok(false);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    writeln!(file, "{}", user.to_ascii_lowercase()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_x25519_image_of_the_public_key_is_the_public_key_of_the_x25519_secret() {
        for _ in 0..8 {
            let pair = KeyPair::generate();
            let from_secret = pair.agreement().compute_public_key().unwrap();
            assert_eq!(from_secret.as_ref(), &pair.public.x25519[..]);
        }
    }

    #[test]
    fn rfc8032_test_1_seed_gives_its_public_key_and_signature() {
        let seed = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let pair = KeyPair::from_seed(&seed).unwrap();
        assert_eq!(pair.public.ed25519, hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
        let signature = pair.sign(b"");
        assert!(pair.public.verify(b"", &signature));
        assert!(!pair.public.verify(b"x", &signature));
        assert_eq!(&signature[..4], &[0xe5, 0x56, 0x43, 0x00]);
    }

    #[test]
    fn key_files_round_trip_and_are_read_strictly() {
        let pair = KeyPair::generate();
        let again = KeyPair::parse_file(&pair.file_text()).unwrap();
        assert_eq!(again.public, pair.public);
        for (text, why) in [
            ("Algorithm: 15\nPrivateKey: AAAA\n", "not a private key file"),
            ("Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nPrivateKey: AAAA\n", "only 15"),
            ("Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: AAAA\n", "not 32 octets"),
            ("Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: %%%\n", "not base64"),
        ] {
            let err = KeyPair::parse_file(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        pair.write_file(&path).unwrap();
        assert_eq!(KeyPair::read_file(&path).unwrap().public, pair.public);
        assert!(pair.write_file(&path).is_err(), "never overwrites");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(KeyPair::read_file(&path).unwrap_err().to_string().contains("0600"));
        assert!(!format!("{pair:?}").contains(&pair.file_text()[60..70]));
    }

    #[test]
    fn key_rdata_round_trips_and_bad_keys_are_refused() {
        let pair = KeyPair::generate();
        let rdata = pair.public.key_rdata();
        assert_eq!(PublicKey::from_key_rdata(&rdata).unwrap(), pair.public);
        let mut rsa = rdata.clone();
        rsa[3] = 8;
        assert!(PublicKey::from_key_rdata(&rsa).is_err());
        let mut identity = [0u8; KEY_LEN];
        identity[0] = 1;
        assert_eq!(PublicKey::from_key_rdata(&key_rdata(&identity)), Err(KeyError::Public("the identity point")));
        assert!(PublicKey::from_key_rdata(&key_rdata(&[0xff; KEY_LEN])).is_err(), "non-canonical");
        assert!(PublicKey::from_key_rdata(&rdata[..20]).is_err());
    }

    #[test]
    fn enrollment_adds_each_user_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolled");
        assert_eq!(enroll(&path, "Alice"), Ok(true));
        assert_eq!(enroll(&path, "alice"), Ok(false));
        assert_eq!(enroll(&path, "bob"), Ok(true));
        assert!(enroll(&path, "a.b").is_err());
        assert_eq!(read_enrollment(&path).unwrap(), ["alice", "bob"]);
    }

    /// One RSA key for the tests (2048-bit generation takes a while).
    pub(crate) fn rsa_pair() -> &'static RsaKeyPair {
        static PAIR: std::sync::OnceLock<RsaKeyPair> = std::sync::OnceLock::new();
        PAIR.get_or_init(|| RsaKeyPair::generate().unwrap())
    }

    #[test]
    fn rsa_key_rdata_is_rfc_3110_both_ways() {
        let pair = rsa_pair();
        let public = &pair.public;
        assert_eq!((public.modulus_len, public.e.as_slice()), (256, &[1, 0, 1][..]));
        let rdata = &public.rdata;
        assert_eq!(&rdata[..5], &[0, 0, 3, 8, 3], "flags 0, protocol 3, algorithm 8, a 3-octet exponent");
        assert_eq!((&rdata[5..8], &rdata[8..]), (&[1, 0, 1][..], &public.n[..]));
        assert_eq!(RsaPublicKey::from_key_rdata(rdata).as_ref(), Ok(public));
        assert_eq!(key_tag(rdata), public.tag);
        // The long exponent-length form (0, then two octets) reads as the same key.
        let long: Vec<u8> = [&rdata[..4], &[0, 0, 3], &rdata[5..]].concat();
        let read = RsaPublicKey::from_key_rdata(&long).unwrap();
        assert_eq!((read.n.as_slice(), read.e.as_slice()), (public.n.as_slice(), public.e.as_slice()));
        assert!(public.key_text().starts_with("0 3 8 AwEAA"), "{}", public.key_text());
        // Only with the compatibility mode is it a user key.
        assert_eq!(UserPublic::from_key_rdata(rdata, true), Ok(UserPublic::Rsa(public.clone())));
        assert!(UserPublic::from_key_rdata(rdata, false).is_err());
        let ed = KeyPair::generate();
        assert_eq!(UserPublic::from_key_rdata(&ed.public.key_rdata(), true), Ok(UserPublic::Ed25519(ed.public)));
        let small = [&rdata[..8], &public.n[..128]].concat();
        let mut even_exponent = rdata.clone();
        even_exponent[7] = 2;
        for (bad, why) in [
            ([&rdata[..3], &[15], &rdata[4..]].concat(), "algorithm"),
            ([&rdata[..2], &[2], &rdata[3..]].concat(), "protocol"),
            (small, "1024 bits"),
            (even_exponent, "even exponent"),
            ([&rdata[..4], &[200], &rdata[5..40]].concat(), "exponent past the end"),
            ([&rdata[..8], &[0], &rdata[8..]].concat(), "a leading zero"),
            (rdata[..4].to_vec(), "no key"),
        ] {
            assert!(RsaPublicKey::from_key_rdata(&bad).is_err(), "{why}");
        }
    }

    #[test]
    fn rsa_key_files_are_pkcs8_pem_and_read_strictly() {
        let pair = rsa_pair();
        let text = pair.file_text();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n") && text.lines().all(|l| l.len() <= 64));
        assert_eq!(RsaKeyPair::parse_file(&text).unwrap().public, pair.public);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rsa.key");
        UserKeyPair::Rsa(RsaKeyPair::parse_file(&text).unwrap()).write_file(&path).unwrap();
        let UserKeyPair::Rsa(read) = UserKeyPair::read_file(&path).unwrap() else { panic!("not RSA") };
        assert_eq!(read.public, pair.public);
        let ed_path = dir.path().join("ed.key");
        KeyPair::generate().write_file(&ed_path).unwrap();
        assert!(matches!(UserKeyPair::read_file(&ed_path).unwrap(), UserKeyPair::Ed25519(_)));
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(UserKeyPair::read_file(&path).unwrap_err().to_string().contains("0600"));
        assert!(RsaKeyPair::parse_file("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(!format!("{:?}", UserKeyPair::Rsa(read)).contains(&text[40..60]));
    }

    fn hex32(text: &str) -> [u8; KEY_LEN] {
        let bytes: Vec<u8> =
            (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
        bytes.try_into().unwrap()
    }
}
