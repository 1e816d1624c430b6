//! TLS server material: the certificate and key (loaded from PEM or made up on the spot), the
//! rustls server configurations built from them, and the SPKI pin clients configure.
//!
//! Owns the policy every handshake follows: TLS 1.2 and 1.3 only (rustls has nothing older),
//! AEAD suites only, ALPN "dot" selected when offered and never required, session resumption
//! through stateless tickets (TLS 1.3 and 1.2) plus rustls's session cache. It never touches a
//! socket: the DoT frontend drives the handshake.
//!
//! Tickets: with `--ticket-keys` they are sealed with the operator's keys ([`ticketer`], file
//! format in [`ticket_keys`]), so every dotgate with the same file resumes the others' sessions.
//! Without it, the same ticketer with a random key of the process's own, replaced every 12 h
//! ([`OWN_KEY_ROTATION`], driven by `runtime::reload`), the previous key still opening tickets.
//!
//! The certificate and the shared ticket keys can be swapped while serving ([`reload`]): the
//! configurations, the session cache and the ticketer stay the same objects, and each handshake
//! takes the material in service when it starts.

pub mod reload;
pub mod ticket_keys;
pub mod ticketer;

/// How often a dotgate without `--ticket-keys` replaces its own ticket key (the previous one
/// still opens tickets for as long again).
pub const OWN_KEY_ROTATION: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::ConfigError;
use reload::{Digest, ReloadCounts, Snapshot};
use ticketer::SharedTicketer;

/// ALPN protocol ID for DNS over TLS (RFC 7858 names none; "dot" is the IANA registration from
/// RFC 8310's era, used by every major client).
pub const ALPN_DOT: &[u8] = b"dot";

/// Server configurations for one certificate, ready for handshakes on any worker.
#[derive(Clone)]
pub struct TlsSetup {
    /// For clients that offer "dot" or no ALPN at all: selects "dot".
    pub with_alpn: Arc<ServerConfig>,
    /// For clients that offer only other protocols: negotiates none rather than refusing them,
    /// so that ALPN is never required. Shares tickets and the session cache with `with_alpn`.
    pub without_alpn: Arc<ServerConfig>,
    /// For DNS over HTTPS: ALPN "h2" or "http/1.1" (RFC 8484 §5.2: HTTP/2 is the minimum
    /// recommended), the same certificate, tickets and session cache.
    pub doh: Arc<ServerConfig>,
    /// base64(SHA-256(SubjectPublicKeyInfo)), the pin of RFC 7858 §4.2 / RFC 7469, of the
    /// certificate loaded at start (a reload logs the new one).
    pub spki_pin: String,
    /// True when dotgate made the certificate itself (no --cert/--key given).
    pub self_signed: bool,
    /// What a reload swaps, and where it reads it from; shared by every clone.
    live: Arc<Live>,
}

/// The swappable material behind both configurations (see [`reload`]).
struct Live {
    provider: Arc<CryptoProvider>,
    cert: Arc<SingleCert>,
    /// Certificate and key paths, and the digest of the contents loaded at start.
    cert_files: Option<(PathBuf, PathBuf, Digest)>,
    /// The shared ticketer, its key file, and the digest of the contents loaded at start.
    ticket_keys: Option<(Arc<SharedTicketer>, PathBuf, Digest)>,
    /// Without a key file: the ticketer and its keys (newest first), rotated every
    /// [`OWN_KEY_ROTATION`].
    own_keys: Option<(Arc<SharedTicketer>, std::sync::Mutex<Vec<ticket_keys::TicketKey>>)>,
    counts: Arc<ReloadCounts>,
}

impl TlsSetup {
    /// Loads `cert_and_key`, or makes an ephemeral self-signed pair when it is `None`; seals
    /// tickets with the keys in the `ticket_keys` file, or with per-process random keys.
    pub fn load(cert_and_key: Option<(&Path, &Path)>, ticket_keys: Option<&Path>) -> Result<TlsSetup, ConfigError> {
        let provider = Arc::new(provider());
        let (certified, cert_files) = match cert_and_key {
            Some((cert_path, key_path)) => {
                let files = Snapshot::read(&[(cert_path, "certificate"), (key_path, "private key")])?;
                let certified = certified_key(&provider, &files, cert_path, key_path)?;
                (certified, Some((cert_path.to_owned(), key_path.to_owned(), files.digest)))
            }
            None => (self_signed(&provider)?, None),
        };
        let spki_pin = pin_of_key(&certified)?;
        let resolver = Arc::new(SingleCert(RwLock::new(certified)));

        // One ticketer for both configurations and every worker: a ticket made on any of them
        // opens on all of them.
        let (ticketer, ticket_keys, own_keys) = match ticket_keys {
            Some(path) => {
                let file = Snapshot::read(&[(path, "ticket key file")])?;
                let shared = SharedTicketer::new(&ticket_keys::from_bytes(path, &file.contents[0])?)?;
                (shared.clone(), Some((shared, path.to_owned(), file.digest)), None)
            }
            None => {
                let key = ticket_keys::TicketKey::generate()?;
                let own = SharedTicketer::new(std::slice::from_ref(&key))?;
                (own.clone(), None, Some((own, std::sync::Mutex::new(vec![key]))))
            }
        };
        let ticketer: Arc<dyn rustls::server::ProducesTickets> = ticketer;
        let session_cache = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);

        let build = |alpn: Vec<Vec<u8>>| -> Result<Arc<ServerConfig>, ConfigError> {
            let mut config = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| ConfigError::Tls(format!("TLS setup: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
            config.alpn_protocols = alpn;
            // Our suite order, not the client's: see `provider`.
            config.ignore_client_order = true;
            config.ticketer = ticketer.clone();
            config.session_storage = session_cache.clone();
            // DoT clients reconnect one connection at a time; one ticket per handshake is enough
            // and saves an encryption and a record per connection.
            config.send_tls13_tickets = 1;
            Ok(Arc::new(config))
        };

        Ok(TlsSetup {
            with_alpn: build(vec![ALPN_DOT.to_vec()])?,
            without_alpn: build(Vec::new())?,
            doh: build(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?,
            spki_pin,
            self_signed: cert_files.is_none(),
            live: Arc::new(Live {
                provider,
                cert: resolver,
                cert_files,
                ticket_keys,
                own_keys,
                counts: Arc::new(ReloadCounts::default()),
            }),
        })
    }

    /// The configuration for a handshake, chosen from the client's hello: whether it offers
    /// ALPN protocols, none of them "dot".
    pub fn config_for(&self, offers_only_other_alpn: bool) -> Arc<ServerConfig> {
        if offers_only_other_alpn {
            self.without_alpn.clone()
        } else {
            self.with_alpn.clone()
        }
    }

    /// How many reloads succeeded and how many were refused so far.
    pub fn reload_counts(&self) -> &ReloadCounts {
        &self.live.counts
    }

    /// When the certificate in service expires (its notAfter), in seconds since the Unix
    /// epoch; `None` if it cannot be parsed (rustls took it, so that should not happen).
    pub fn certificate_not_after(&self) -> Option<i64> {
        let certified = self.live.cert.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let der = certified.end_entity_cert().ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        Some(cert.validity().not_after.timestamp())
    }
}

/// The RFC 7858 / RFC 7469 pin of a public key: base64(SHA-256(SubjectPublicKeyInfo DER)).
pub fn pin_sha256(spki: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// `dotgate pin --cert FILE`: the pin of the first certificate in a PEM file, the value dotgate
/// logs at start as `pin-sha256=` when serving that certificate.
pub fn pin_of_cert_file(path: &Path) -> Result<String, ConfigError> {
    let file = Snapshot::read(&[(path, "certificate")])?;
    let chain = chain_from_pem(path, &file.contents[0])?;
    let cert = rustls::server::ParsedCertificate::try_from(&chain[0])
        .map_err(|e| ConfigError::Tls(format!("cannot parse the certificate in {}: {e}", path.display())))?;
    Ok(pin_sha256(cert.subject_public_key_info().as_ref()))
}

/// The pin of the public key of `certified`'s private key (which `keys_match` has checked
/// against the certificate).
fn pin_of_key(certified: &CertifiedKey) -> Result<String, ConfigError> {
    let spki = certified
        .key
        .public_key()
        .ok_or_else(|| ConfigError::Tls("cannot derive the public key of the private key".into()))?;
    Ok(pin_sha256(&spki))
}

/// aws-lc-rs with AES-128-GCM/SHA-256 suites first. OpenSSL-based clients list AES-256-GCM/SHA-384
/// first, and SHA-384's transcript hash and key schedule ran on aws-lc's portable SHA-512 code on
/// the lab's CPU: 14% of a full handshake's CPU. SHA-256 has hardware instructions, and AES-128
/// takes fewer rounds per record. Every TLS 1.3 client supports TLS_AES_128_GCM_SHA256 (the
/// mandatory suite of RFC 8446 §9.1), and RFC 9325 recommends it.
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let aes_128_first = |suite: &rustls::SupportedCipherSuite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    };
    // A stable sort: the other suites keep rustls's order behind them.
    provider.cipher_suites.sort_by_key(aes_128_first);
    provider
}

/// TLS 1.2 session-ID resumption entries kept in memory (tickets need none).
const SESSION_CACHE_ENTRIES: usize = 4096;

/// One certificate for every handshake, swappable: each handshake takes the one in service
/// when it starts (a read lock and an `Arc` clone), so a reload never touches an open
/// connection nor rebuilds the ticketer or the session cache.
#[derive(Debug)]
struct SingleCert(RwLock<Arc<CertifiedKey>>);

impl SingleCert {
    fn replace(&self, certified: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = certified;
    }
}

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// The certificate chain and key in `files` (certificate PEM, key PEM), checked to belong
/// together.
fn certified_key(
    provider: &CryptoProvider,
    files: &Snapshot,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = chain_from_pem(cert_path, &files.contents[0])?;
    let key = PrivateKeyDer::from_pem_slice(&files.contents[1])
        .map_err(|e| ConfigError::Tls(format!("cannot read private key {}: {}", key_path.display(), pem_error(&e))))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| ConfigError::Tls(format!("unusable private key {}: {e}", key_path.display())))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        ConfigError::Tls(format!(
            "certificate {} and private key {} do not match: {e}",
            cert_path.display(),
            key_path.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

fn chain_from_pem(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Tls(format!("cannot read certificate {}: {}", path.display(), pem_error(&e))))?;
    if chain.is_empty() {
        return Err(ConfigError::Tls(format!("no certificate found in {}", path.display())));
    }
    Ok(chain)
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        other => format!("{other:?}"),
    }
}

/// An ECDSA P-256 certificate for "localhost" and "dotgate", valid from now: cheap handshakes,
/// and a first run that just works.
fn self_signed(provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, ConfigError> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "dotgate".to_owned()])
        .map_err(|e| ConfigError::Tls(format!("cannot make a self-signed certificate: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| ConfigError::Tls(format!("cannot use the self-signed key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(vec![made.cert.der().clone()], signing_key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_setup_has_a_pin() {
        let setup = TlsSetup::load(None, None).unwrap();
        assert!(setup.self_signed);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&setup.spki_pin).unwrap().len(), 32);
        assert_eq!(setup.with_alpn.alpn_protocols, vec![b"dot".to_vec()]);
        assert!(setup.without_alpn.alpn_protocols.is_empty());
    }

    #[test]
    fn unreadable_key_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let pair = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        let e = TlsSetup::load(Some((&cert, &dir.path().join("missing.pem"))), None).err().unwrap().to_string();
        assert!(e.contains("cannot read private key"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        let e = TlsSetup::load(Some((&cert, &garbage)), None).err().unwrap().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let (cert, key) = (dir.path().join("a.pem"), dir.path().join("b.key"));
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
        let e = TlsSetup::load(Some((&cert, &key)), None).err().unwrap().to_string();
        assert!(e.contains("do not match"), "{e}");
    }
}
