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
//! Without it, rustls's own ticketer: random keys per process, a new one every 6 h, tickets valid
//! 12 h (the previous key still opens them).

pub mod ticket_keys;
pub mod ticketer;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rustls::server::{ClientHello, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::ConfigError;
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
    /// base64(SHA-256(SubjectPublicKeyInfo)), the pin of RFC 7858 §4.2 / RFC 7469.
    pub spki_pin: String,
    /// True when dotgate made the certificate itself (no --cert/--key given).
    pub self_signed: bool,
}

impl TlsSetup {
    /// Loads `cert_and_key`, or makes an ephemeral self-signed pair when it is `None`; seals
    /// tickets with the keys in the `ticket_keys` file, or with per-process random keys.
    pub fn load(cert_and_key: Option<(&Path, &Path)>, ticket_keys: Option<&Path>) -> Result<TlsSetup, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (chain, key, self_signed) = match cert_and_key {
            Some((cert_path, key_path)) => {
                let chain = read_chain(cert_path)?;
                let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                    ConfigError::Tls(format!("cannot read private key {}: {}", key_path.display(), pem_error(&e)))
                })?;
                (chain, key, false)
            }
            None => {
                let (chain, key) = self_signed_pair()?;
                (chain, key, true)
            }
        };

        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| ConfigError::Tls(format!("unusable private key: {e}")))?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified
            .keys_match()
            .map_err(|e| ConfigError::Tls(format!("certificate and private key do not match: {e}")))?;
        let spki = certified
            .key
            .public_key()
            .ok_or_else(|| ConfigError::Tls("cannot derive the public key of the private key".into()))?;
        let spki_pin = pin_sha256(&spki);

        let resolver = Arc::new(SingleCert(Arc::new(certified)));
        // One ticketer for both configurations and every worker: a ticket made on any of them
        // opens on all of them.
        let ticketer: Arc<dyn rustls::server::ProducesTickets> = match ticket_keys {
            Some(path) => SharedTicketer::new(&ticket_keys::read(path)?)?,
            None => rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| ConfigError::Tls(format!("cannot set up session tickets: {e}")))?,
        };
        let session_cache = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);

        let build = |alpn: Vec<Vec<u8>>| -> Result<Arc<ServerConfig>, ConfigError> {
            let mut config = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| ConfigError::Tls(format!("TLS setup: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
            config.alpn_protocols = alpn;
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
            spki_pin,
            self_signed,
        })
    }

    /// The configuration for a handshake, chosen from the client's hello.
    pub fn config_for(&self, hello: &ClientHello<'_>) -> Arc<ServerConfig> {
        let offers_only_others = hello.alpn().is_some_and(|mut offered| !offered.any(|p| p == ALPN_DOT));
        if offers_only_others {
            self.without_alpn.clone()
        } else {
            self.with_alpn.clone()
        }
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
    let chain = read_chain(path)?;
    let cert = rustls::server::ParsedCertificate::try_from(&chain[0])
        .map_err(|e| ConfigError::Tls(format!("cannot parse the certificate in {}: {e}", path.display())))?;
    Ok(pin_sha256(cert.subject_public_key_info().as_ref()))
}

/// TLS 1.2 session-ID resumption entries kept in memory (tickets need none).
const SESSION_CACHE_ENTRIES: usize = 4096;

/// One certificate for every handshake. (A resolver rather than `with_single_cert` so reload
/// can later swap the key without rebuilding the ticketer or the session cache.)
#[derive(Debug)]
struct SingleCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
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
fn self_signed_pair() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "dotgate".to_owned()])
        .map_err(|e| ConfigError::Tls(format!("cannot make a self-signed certificate: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    Ok((vec![certified.cert.der().clone()], key))
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
