//! Session tickets sealed with the operator's shared keys (`--ticket-keys`), so that a client
//! resumes on any dotgate process that has the same key file, not only on the one it met first.
//!
//! Owns the ticket construction and the live key set. A ticket is RFC 5077's recommended
//! construction, the one rustls's own ticketer uses: key name (16 B) ‖ IV (16 B) ‖
//! AES-256-CBC(session state) ‖ HMAC-SHA256(key name ‖ IV ‖ length (2 B) ‖ ciphertext). The
//! first key seals; a ticket is opened by the key whose name it carries, the MAC checked in
//! constant time before anything is decrypted. The key set can be replaced while serving
//! (reload); handshakes read it once each, queries never.
//!
//! It must never panic on a ticket (every byte of it comes from the client), never log key
//! material, and never hold its lock while doing cryptography.

use std::fmt;
use std::sync::{Arc, RwLock};

use aws_lc_rs::cipher::{
    DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey, AES_256, AES_CBC_IV_LEN,
};
use aws_lc_rs::{hmac, iv};
use rustls::server::ProducesTickets;

use super::ticket_keys::{TicketKey, NAME_LEN};
use crate::config::ConfigError;

/// What clients are told a ticket is good for (RFC 8446 allows at most 7 days). Rotating the
/// key file daily and keeping three keys (the `--rotate` default) comfortably outlives it.
pub const TICKET_LIFETIME_SECS: u32 = 12 * 60 * 60;

/// HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;
/// Longest ticket dotgate opens. Its own carry a few hundred bytes of session state (no client
/// certificates here); anything much longer is not ours and is not worth a MAC computation.
const MAX_TICKET_LEN: usize = 4096;

/// The shared ticketer: one per process, in every worker's `ServerConfig`.
pub struct SharedTicketer {
    keys: RwLock<Arc<KeySet>>,
}

/// The usable keys, newest (sealing) first. Never empty.
struct KeySet(Vec<SealingKey>);

struct SealingKey {
    name: [u8; NAME_LEN],
    encrypt: PaddedBlockEncryptingKey,
    decrypt: PaddedBlockDecryptingKey,
    hmac: hmac::Key,
}

impl SharedTicketer {
    /// A ticketer sealing with `keys[0]` and opening with any of `keys`.
    pub fn new(keys: &[TicketKey]) -> Result<Arc<SharedTicketer>, ConfigError> {
        Ok(Arc::new(SharedTicketer { keys: RwLock::new(Arc::new(KeySet::new(keys)?)) }))
    }

    /// Puts `keys` in service for the next handshake; on error the current keys stay.
    pub fn replace(&self, keys: &[TicketKey]) -> Result<(), ConfigError> {
        let fresh = Arc::new(KeySet::new(keys)?);
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// How many keys are in service.
    pub fn key_count(&self) -> usize {
        self.current().0.len()
    }

    fn current(&self) -> Arc<KeySet> {
        // Nothing panics while holding the lock, but a poisoned lock must not stop handshakes.
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl KeySet {
    fn new(keys: &[TicketKey]) -> Result<KeySet, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::Tls("no session-ticket keys".into()));
        }
        keys.iter().map(SealingKey::new).collect::<Result<Vec<_>, _>>().map(KeySet)
    }
}

impl SealingKey {
    fn new(key: &TicketKey) -> Result<SealingKey, ConfigError> {
        let unusable = |_| ConfigError::Tls("unusable session-ticket key".into());
        let cipher_key = || UnboundCipherKey::new(&AES_256, key.aes_key()).map_err(unusable);
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(key.name());
        Ok(SealingKey {
            name,
            encrypt: PaddedBlockEncryptingKey::cbc_pkcs7(cipher_key()?).map_err(unusable)?,
            decrypt: PaddedBlockDecryptingKey::cbc_pkcs7(cipher_key()?).map_err(unusable)?,
            hmac: hmac::Key::new(hmac::HMAC_SHA256, key.hmac_key()),
        })
    }

    fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut sealed = plain.to_vec();
        let context = self.encrypt.encrypt(&mut sealed).ok()?;
        let iv: &[u8] = (&context).try_into().ok()?;
        let tag = hmac::sign(&self.hmac, &mac_input(&self.name, iv, &sealed)?);
        let mut ticket = Vec::with_capacity(NAME_LEN + iv.len() + sealed.len() + TAG_LEN);
        ticket.extend_from_slice(&self.name);
        ticket.extend_from_slice(iv);
        ticket.extend_from_slice(&sealed);
        ticket.extend_from_slice(tag.as_ref());
        Some(ticket)
    }

    /// `body` is the ticket after the key name.
    fn open(&self, body: &[u8]) -> Option<Vec<u8>> {
        let (iv, rest) = body.split_at_checked(AES_CBC_IV_LEN)?;
        let (sealed, tag) = rest.split_at_checked(rest.len().checked_sub(TAG_LEN)?)?;
        // Constant-time comparison of the tags (aws-lc-rs `verify`), before any decryption.
        hmac::verify(&self.hmac, &mac_input(&self.name, iv, sealed)?, tag).ok()?;
        let context = DecryptionContext::Iv128(iv::FixedLength::try_from(iv).ok()?);
        let mut plain = sealed.to_vec();
        let len = self.decrypt.decrypt(&mut plain, context).ok()?.len();
        plain.truncate(len);
        Some(plain)
    }
}

/// What the MAC covers (RFC 5077 §4): key name, IV, ciphertext length (2 B) and ciphertext.
fn mac_input(name: &[u8], iv: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(sealed.len()).ok()?;
    let mut input = Vec::with_capacity(name.len() + iv.len() + 2 + sealed.len());
    input.extend_from_slice(name);
    input.extend_from_slice(iv);
    input.extend_from_slice(&len.to_be_bytes());
    input.extend_from_slice(sealed);
    Some(input)
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.current().0.first()?.seal(plain)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() > MAX_TICKET_LEN {
            return None;
        }
        let (name, body) = ticket.split_at_checked(NAME_LEN)?;
        // Key names are not secret (every ticket shows one), so a plain search is fine.
        self.current().0.iter().find(|key| key.name == name)?.open(body)
    }
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTicketer").field("keys", &self.key_count()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<TicketKey> {
        (0..n).map(|_| TicketKey::generate().unwrap()).collect()
    }

    #[test]
    fn a_ticket_opens_with_the_same_keys_in_another_ticketer() {
        let keys = keys(2);
        let (a, b) = (SharedTicketer::new(&keys).unwrap(), SharedTicketer::new(&keys).unwrap());
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert_ne!(a.encrypt(b"session state").unwrap(), ticket, "a fresh IV per ticket");
        assert!(SharedTicketer::new(&self::keys(1)).unwrap().decrypt(&ticket).is_none(), "other keys");
    }

    #[test]
    fn rotation_keeps_old_tickets_and_seals_with_the_new_key() {
        let old = keys(1);
        let ticketer = SharedTicketer::new(&old).unwrap();
        let old_ticket = ticketer.encrypt(b"old").unwrap();
        let rotated: Vec<TicketKey> = keys(1).into_iter().chain(old.clone()).collect();
        ticketer.replace(&rotated).unwrap();
        assert_eq!(ticketer.key_count(), 2);
        assert_eq!(ticketer.decrypt(&old_ticket).as_deref(), Some(&b"old"[..]));
        let new_ticket = ticketer.encrypt(b"new").unwrap();
        assert_eq!(&new_ticket[..NAME_LEN], rotated[0].name());
        // Once the old key leaves the file, its tickets are dead.
        ticketer.replace(&rotated[..1]).unwrap();
        assert!(ticketer.decrypt(&old_ticket).is_none());
        assert!(ticketer.replace(&[]).is_err());
        assert_eq!(ticketer.decrypt(&new_ticket).as_deref(), Some(&b"new"[..]), "a refused set changes nothing");
    }

    #[test]
    fn any_tampering_or_garbage_is_refused_without_panic() {
        let ticketer = SharedTicketer::new(&keys(1)).unwrap();
        let ticket = ticketer.encrypt(&[0x5a; 200]).unwrap();
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 0x01;
            assert!(ticketer.decrypt(&bad).is_none(), "bit flip at byte {i} accepted");
        }
        for len in 0..ticket.len() {
            assert!(ticketer.decrypt(&ticket[..len]).is_none(), "truncated to {len} accepted");
        }
        let mut long = ticket.clone();
        long.resize(MAX_TICKET_LEN + 1, 0);
        assert!(ticketer.decrypt(&long).is_none());
        // The right key name followed by garbage of every length, and plain garbage.
        for len in 0..300 {
            let mut garbage = ticket[..NAME_LEN].to_vec();
            garbage.extend((0..len).map(|i| i as u8));
            assert!(ticketer.decrypt(&garbage).is_none());
            assert!(ticketer.decrypt(&vec![0xff; len]).is_none());
        }
    }
}
