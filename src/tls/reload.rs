//! Hot reload of the TLS material: the certificate and key, and the session-ticket keys.
//!
//! Owns the decision of what to reload and whether to accept it. A [`Reloader`] reads the
//! files again (following symlinks, so a Kubernetes-style swap of a `..data` link is seen like
//! any rewrite), compares a digest of their contents with what it saw last, and on a change
//! checks the new material as thoroughly as at start (certificate and key must parse and match,
//! ticket keys must be well formed). Good material is put in service for the next handshake;
//! broken material is refused with one log line and the old stays. Each distinct change is
//! tried (and logged) once, so a file left broken does not flood the log.
//!
//! It never touches a connection: open ones keep the certificate and keys they started with.
//! When to look (a timer, SIGHUP) is `runtime::reload`'s business.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{certified_key, pin_of_key, ticket_keys, Live, TlsSetup};
use crate::config::ConfigError;
use zeroize::Zeroizing;

/// SHA-256 of the contents of a set of files.
pub type Digest = [u8; 32];

/// The contents of the files one piece of material comes from, read together, and their digest.
pub struct Snapshot {
    /// Each file's bytes, in the order asked for; wiped when dropped (private keys, ticket keys).
    pub contents: Vec<Zeroizing<Vec<u8>>>,
    pub digest: Digest,
}

impl Snapshot {
    /// Reads `files` (path, what it is: for the error message) in order.
    pub fn read(files: &[(&Path, &str)]) -> Result<Snapshot, ConfigError> {
        let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut contents = Vec::with_capacity(files.len());
        for (path, what) in files {
            let bytes = std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|e| ConfigError::Tls(format!("cannot read {what} {}: {e}", path.display())))?;
            // The length first, so that moving bytes from one file to the next changes the digest.
            hasher.update(&(bytes.len() as u64).to_be_bytes());
            hasher.update(&bytes);
            contents.push(bytes);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(hasher.finish().as_ref());
        Ok(Snapshot { contents, digest })
    }
}

/// Which material a reload was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Material {
    Certificate = 0,
    TicketKeys = 1,
}

/// Reloads so far, for the logs and the metrics.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    /// New material put in service, per `Material`.
    reloaded: [AtomicU64; 2],
    /// New material found broken and refused (the old stayed in service), per `Material`.
    refused: [AtomicU64; 2],
}

impl ReloadCounts {
    /// New material put in service, of either kind.
    pub fn reloaded(&self) -> u64 {
        self.reloaded.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// New material refused, of either kind.
    pub fn refused(&self) -> u64 {
        self.refused.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// (put in service, refused) for `material`.
    pub fn of(&self, material: Material) -> (u64, u64) {
        let i = material as usize;
        (self.reloaded[i].load(Ordering::Relaxed), self.refused[i].load(Ordering::Relaxed))
    }
}

/// What a file set looked like the last time it was read.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Contents(Digest),
    /// It could not be read; the error text tells one failure from another.
    Unreadable(String),
}

impl Seen {
    fn of(snapshot: &Result<Snapshot, ConfigError>) -> Seen {
        match snapshot {
            Ok(snapshot) => Seen::Contents(snapshot.digest),
            Err(e) => Seen::Unreadable(e.to_string()),
        }
    }
}

/// Reads the TLS material again and swaps it in. One per process.
pub struct Reloader {
    live: Arc<Live>,
    seen_cert: Option<Seen>,
    seen_ticket_keys: Option<Seen>,
}

impl Reloader {
    /// A reloader for `tls`'s files; what `tls` loaded at start counts as seen.
    pub fn new(tls: &TlsSetup) -> Reloader {
        let live = tls.live.clone();
        Reloader {
            seen_cert: live.cert_files.as_ref().map(|(_, _, digest)| Seen::Contents(*digest)),
            seen_ticket_keys: live.ticket_keys.as_ref().map(|(_, _, digest)| Seen::Contents(*digest)),
            live,
        }
    }

    /// True when some material comes from files (else there is nothing to reload).
    pub fn has_files(&self) -> bool {
        self.live.cert_files.is_some() || self.live.ticket_keys.is_some()
    }

    /// Reloads what changed since the last look.
    pub fn poll(&mut self) {
        self.reload_cert(false);
        self.reload_ticket_keys(false);
    }

    /// Without `--ticket-keys`: puts a fresh random ticket key first and keeps the previous one
    /// for opening older tickets (every `OWN_KEY_ROTATION`).
    pub fn rotate_own_ticket_key(&self) {
        let Some((ticketer, keys)) = &self.live.own_keys else { return };
        let fresh = match ticket_keys::TicketKey::generate() {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!("keeping the session-ticket key: {e}");
                return;
            }
        };
        let mut keys = keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.insert(0, fresh);
        keys.truncate(2);
        match ticketer.replace(&keys) {
            Ok(()) => {
                tracing::info!("rotated the process's own session-ticket key (the previous one still opens tickets)")
            }
            Err(e) => tracing::warn!("keeping the session-ticket key: {e}"),
        }
    }

    /// Reloads everything from the files, changed or not (SIGHUP).
    pub fn reload_all(&mut self) {
        self.reload_cert(true);
        self.reload_ticket_keys(true);
    }

    fn reload_cert(&mut self, forced: bool) {
        let Some((cert_path, key_path, _)) = &self.live.cert_files else { return };
        let snapshot = Snapshot::read(&[(cert_path, "certificate"), (key_path, "private key")]);
        if !changed(&mut self.seen_cert, &snapshot, forced) {
            return;
        }
        let outcome = snapshot.and_then(|files| {
            let certified = certified_key(&self.live.provider, &files, cert_path, key_path)?;
            let pin = pin_of_key(&certified)?;
            self.live.cert.replace(certified);
            Ok(format!("pin-sha256=\"{pin}\""))
        });
        let what = format!("certificate {} and key {}", cert_path.display(), key_path.display());
        self.report(Material::Certificate, &what, outcome);
    }

    fn reload_ticket_keys(&mut self, forced: bool) {
        let Some((ticketer, path, _)) = &self.live.ticket_keys else { return };
        let snapshot = Snapshot::read(&[(path, "ticket key file")]);
        if !changed(&mut self.seen_ticket_keys, &snapshot, forced) {
            return;
        }
        let outcome = snapshot.and_then(|file| {
            ticketer.replace(&ticket_keys::from_bytes(path, &file.contents[0])?)?;
            Ok(match ticketer.key_count() {
                1 => "1 key".to_owned(),
                n => format!("{n} keys"),
            })
        });
        self.report(Material::TicketKeys, &format!("ticket keys {}", path.display()), outcome);
    }

    /// Counts and logs one reload: `Ok(details)` for material put in service.
    fn report(&self, material: Material, what: &str, outcome: Result<String, ConfigError>) {
        let counts = &self.live.counts;
        match outcome {
            Ok(details) => {
                counts.reloaded[material as usize].fetch_add(1, Ordering::Relaxed);
                let n = counts.reloaded();
                tracing::info!("reloaded {what}: {details} (reload {n}); new handshakes use it");
            }
            Err(e) => {
                counts.refused[material as usize].fetch_add(1, Ordering::Relaxed);
                tracing::warn!("refusing the new {what} (the ones in service stay): {e}");
            }
        }
    }
}

/// Whether `snapshot` is worth loading: always when `forced`, else when it differs from what
/// was seen last. Records it as seen.
fn changed(seen: &mut Option<Seen>, snapshot: &Result<Snapshot, ConfigError>, forced: bool) -> bool {
    let now = Some(Seen::of(snapshot));
    let differs = *seen != now;
    *seen = now;
    forced || differs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ticket_key_rotates_and_the_previous_one_still_opens() {
        let tls = TlsSetup::load(None, None).unwrap();
        let reloader = Reloader::new(&tls);
        let ticketer = tls.with_alpn.ticketer.clone();
        let first = ticketer.encrypt(b"session one").unwrap();
        reloader.rotate_own_ticket_key();
        assert_eq!(ticketer.decrypt(&first).as_deref(), Some(&b"session one"[..]), "the previous key still opens");
        let second = ticketer.encrypt(b"session two").unwrap();
        reloader.rotate_own_ticket_key();
        assert!(ticketer.decrypt(&first).is_none(), "two rotations on, the first key is gone");
        assert_eq!(ticketer.decrypt(&second).as_deref(), Some(&b"session two"[..]));
        assert_eq!(ticketer.lifetime(), 12 * 60 * 60, "tickets outlive no key");
    }

    fn write_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let pair = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    /// The pin of the certificate new handshakes get.
    fn serving_pin(tls: &TlsSetup) -> String {
        pin_of_key(&tls.live.cert.0.read().unwrap()).unwrap()
    }

    #[test]
    fn changes_are_loaded_once_and_broken_ones_refused_once() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "live");
        let tls = TlsSetup::load(Some((&cert, &key)), None).unwrap();
        let mut reloader = Reloader::new(&tls);
        let counts = || (tls.reload_counts().reloaded(), tls.reload_counts().refused());

        reloader.poll();
        assert_eq!(counts(), (0, 0), "nothing changed since the start");

        let (new_cert, new_key) = write_pair(dir.path(), "new");
        std::fs::copy(&new_key, &key).unwrap();
        reloader.poll();
        assert_eq!(counts(), (0, 1), "the new key does not match the old certificate");
        assert_eq!(serving_pin(&tls), tls.spki_pin, "the old pair stays in service");
        reloader.poll();
        assert_eq!(counts(), (0, 1), "the same broken state is refused once, not at every look");

        std::fs::copy(&new_cert, &cert).unwrap();
        reloader.poll();
        assert_eq!(counts(), (1, 1));
        assert_ne!(serving_pin(&tls), tls.spki_pin, "the new pair is in service");

        std::fs::remove_file(&cert).unwrap();
        reloader.poll();
        reloader.poll();
        assert_eq!(counts(), (1, 2), "a missing file is refused once");
        std::fs::copy(&new_cert, &cert).unwrap();
        reloader.reload_all();
        assert_eq!(counts(), (2, 2), "reload_all loads even what was loaded before");
    }

    #[test]
    fn ticket_keys_are_swapped_and_a_broken_file_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.keys");
        std::fs::write(&path, ticket_keys::new_file(None).unwrap()).unwrap();
        let tls = TlsSetup::load(None, Some(&path)).unwrap();
        let mut reloader = Reloader::new(&tls);
        let ticketer = tls.live.ticket_keys.as_ref().unwrap().0.clone();
        let old_ticket = rustls::server::ProducesTickets::encrypt(&*ticketer, b"state").unwrap();

        std::fs::write(&path, "not a key\n").unwrap();
        reloader.poll();
        assert_eq!((tls.reload_counts().reloaded(), tls.reload_counts().refused()), (0, 1));
        assert!(rustls::server::ProducesTickets::decrypt(&*ticketer, &old_ticket).is_some(), "old keys stay");

        std::fs::write(&path, ticket_keys::new_file(None).unwrap()).unwrap();
        reloader.poll();
        assert_eq!((tls.reload_counts().reloaded(), tls.reload_counts().refused()), (1, 1));
        assert!(rustls::server::ProducesTickets::decrypt(&*ticketer, &old_ticket).is_none(), "new keys only");
    }
}
