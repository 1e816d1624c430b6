//! The private-subdomain gateway (the Private DNS Subdomains draft, Pusateri 2019, as docs/pvt.md
//! profiles it): a stateless authoritative front for `<user>._pvt.<domain>` zones that a real
//! BIND (the primary) holds in the clear, reachable only by dotgate. It verifies SIG(0),
//! decrypts names and records, relays plain questions through `Relay::submit`, seals the answers
//! to the user's key, and turns signed UPDATEs into TSIG-signed ones.
//!
//! `keys` the Ed25519 keys and their X25519 images (and the RSA user keys of
//! `--pvt-rsa-compat`); `wire` the ENCR RDATA and the encrypted
//! name layout; `seal` what the ciphertexts hold; `sig0` request signatures; `gateway` what a
//! query gets and the per-worker caches; `update` what an UPDATE gets; `primary` the gateway's
//! TSIG client of BIND; `udp` and `tcp` the listeners (DoT hands its share over too); `cli`,
//! `client` and `tools` the `dotgate pvt` commands. It talks to the relay only through
//! `Relay::submit` and its own `ReplyTo`s.

pub mod cli;
pub mod client;
pub mod gateway;
pub mod keys;
pub mod load;
pub mod primary;
pub mod seal;
pub mod sig0;
pub mod tcp;
pub mod tools;
pub mod udp;
pub mod update;
#[cfg(test)]
mod vectors;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why the gateway refused or failed a message: the `reason` label of
/// `dotgate_pvt_refused_total`. The one list of them.
pub const REASONS: [&str; 22] = [
    "unsigned",
    "sig0_malformed",
    "wrong_signer",
    "sig0_time",
    "bad_signature",
    "unknown_user",
    "not_enrolled",
    "not_encr",
    "clear_type",
    "transfer",
    "not_authoritative",
    "formerr_question",
    "formerr_name",
    "formerr_record",
    "formerr_update",
    "bad_key",
    "notzone",
    "type_not_allowed",
    "rekey_prerequisite",
    "primary_failed",
    "rate_limited",
    "other",
];

/// The gateway's counters, shared by all workers (relaxed atomics: each is written by the
/// worker that counts and read by the admin endpoint).
#[derive(Default)]
pub struct PvtStats {
    /// Encrypted queries verified and relayed to the primary.
    pub queries_encrypted: AtomicU64,
    /// Clear queries answered at an apex (SOA, NS, KEY).
    pub queries_clear: AtomicU64,
    /// Sealed answers too large for the client's UDP size (TC=1 instead).
    pub truncated: AtomicU64,
    pub updates_register: AtomicU64,
    pub updates_records: AtomicU64,
    pub updates_rekey: AtomicU64,
    pub updates_destroy: AtomicU64,
    refused: [AtomicU64; REASONS.len()],
}

impl PvtStats {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a refusal by its reason (one of [`REASONS`]; anything else counts as "other").
    pub fn refused(&self, reason: &str) {
        let index = REASONS.iter().position(|r| *r == reason).unwrap_or(REASONS.len() - 1);
        self.refused[index].fetch_add(1, Relaxed);
    }

    /// Each reason with its count.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REASONS.iter().zip(&self.refused).map(|(reason, count)| (*reason, count.load(Relaxed)))
    }

    /// Each update operation with its count.
    pub fn updates(&self) -> [(&'static str, u64); 4] {
        [
            ("register", self.updates_register.load(Relaxed)),
            ("records", self.updates_records.load(Relaxed)),
            ("rekey", self.updates_rekey.load(Relaxed)),
            ("destroy", self.updates_destroy.load(Relaxed)),
        ]
    }
}
