//! The DNSENC server's decisions (draft §2.3 and §2.4 as docs/dnsenc.md profiles them): what one
//! message from a client gets, checked in a fixed order, and how an answer is sealed for the
//! client that asked.
//!
//! 1. Not under `dnsenc.arpa.`: the cleartext policy (`--dnsenc-cleartext`) relays it as it is
//!    or answers REFUSED. Under it without the DNSENC option: REFUSED; the option shorter than 4
//!    octets or there twice: FORMERR.
//! 2. No key with the option's key id, or decryption fails: BADCRYPT in a clear envelope.
//! 3. The plaintext is not exactly one query with the outer ID and one NSK as §3.1.1 asks for a
//!    query's NSK (a response scheme the key offers, a 32-byte key): FORMERR in a clear envelope.
//! 4. Otherwise the inner query, without its NSK and with its EDNS buffer size capped to what
//!    the client's outer UDP size leaves after the envelope, goes to the relay; its answer (the
//!    backend's, or the relay's SERVFAIL) is sealed with the client's one-time key. One that
//!    does not fit the client's UDP size becomes a clear TC=1 envelope.
//!
//! Pure: no I/O, no clock, no counting (it says what happened in `Verdict`, the listeners
//! count). It never keeps anything about a client beyond the `Sealing` of one query in flight,
//! whose key is wiped when the answer is sent (or the query dropped).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use super::crypto;
use super::keys::KeySet;
use super::wire::{self, CodePoints, Outer};
use crate::config::Cleartext;
use crate::dns::{self, rcode, QueryVerdict};

/// RR types a client needs in the clear to bootstrap (the key, and the DNSSEC chain above it).
const TYPE_DS: u16 = 43;
const TYPE_DNSKEY: u16 = 48;
/// Most RSA blocks a query may take: 760 octets of query at 2048 bits, 1,784 at 4096, more than
/// a DNS query with its NSK needs (about 100 to 300), and a bound on what one datagram can make
/// the server spend.
const MAX_RSA_BLOCKS: usize = 4;
/// The UDP payload size dotgate's envelopes advertise (RFC 9715's safe size).
const ENVELOPE_UDP_SIZE: u16 = 1232;
/// The inner query's EDNS buffer size is capped at least this low; a client that advertises
/// less than the envelope needs still gets its answer over TCP after a TC=1 envelope.
const MIN_INNER_UDP_SIZE: u16 = 512;

/// What the server does with one message.
pub enum Action {
    /// Send `out` back as it is (a clear answer or envelope).
    Answer(Verdict),
    /// Relay the query in `out` (whose question ends at `question_end`); seal its answer.
    Relay { question_end: usize, sealing: Sealing },
    /// Relay the plain query as it came (the cleartext policy allows it).
    RelayPlain { question_end: usize },
    /// Not a query at all (too short, a response): nothing is sent.
    Drop,
}

/// Why a message was answered by the server itself (a label of `dotgate_dnsenc_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under `dnsenc.arpa.` without the option, or plain and not allowed by the policy.
    Refused,
    /// A malformed option, inner query or inner NSK, or a plain query dotgate refuses to relay
    /// (FORMERR, NOTIMP from `dns::check_query`).
    Formerr,
    /// No such key, or decryption failed.
    Badcrypt,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Refused => "refused",
            Verdict::Formerr => "formerr",
            Verdict::Badcrypt => "badcrypt",
        }
    }
}

/// How to seal the answer to one decrypted query: the outer envelope to echo and the client's
/// one-time response key (wiped when dropped).
pub struct Sealing {
    pub outer_id: u16,
    pub rd: bool,
    /// The outer question section, echoed.
    pub question: Vec<u8>,
    /// The response scheme and key from the inner NSK, and its key id (the answer's option
    /// carries it, and it is the AEAD's associated data).
    pub scheme: u16,
    pub key: Zeroizing<Vec<u8>>,
    pub key_id: u32,
    /// The query scheme (of the server key that decrypted it), for the metrics.
    pub query_scheme: u16,
    /// Largest envelope the client takes (its outer UDP size; 65,535 over TCP).
    pub max_size: usize,
}

/// The server's settings and keys, shared by every worker's listeners.
pub struct DnsencServer {
    pub codepoints: CodePoints,
    pub cleartext: Cleartext,
    keys: RwLock<Arc<KeySet>>,
    /// Moves on with every `replace_keys`, so that a worker's copy of the keys is checked with
    /// one load per query instead of a lock and a reference count.
    generation: AtomicU64,
}

impl DnsencServer {
    pub fn new(codepoints: CodePoints, cleartext: Cleartext, keys: KeySet) -> DnsencServer {
        DnsencServer { codepoints, cleartext, keys: RwLock::new(Arc::new(keys)), generation: AtomicU64::new(0) }
    }

    /// The keys in service.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Puts a new key set in service (reload): queries decrypted from now on use it.
    pub fn replace_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Which key set is in service: it changes with every `replace_keys` (read it before
    /// `keys`, so that a copy never looks newer than it is).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Decides what `msg`, from a client over UDP (`over_tcp` false) or TCP, gets. `out` is
    /// cleared and receives the answer to send, or the query to relay.
    pub fn handle(&self, msg: &[u8], over_tcp: bool, out: &mut Vec<u8>) -> Action {
        self.handle_with_keys(&self.keys(), msg, over_tcp, out)
    }

    /// [`DnsencServer::handle`] with `keys`, a worker's copy of the keys in service.
    pub fn handle_with_keys(&self, keys: &KeySet, msg: &[u8], over_tcp: bool, out: &mut Vec<u8>) -> Action {
        out.clear();
        let question_end = match dns::check_query(msg) {
            QueryVerdict::Relay { question_end } => question_end,
            QueryVerdict::Answer(code) => {
                dns::write_local_answer(msg, dns::id(msg), code, out);
                return Action::Answer(Verdict::Formerr);
            }
            QueryVerdict::Close => return Action::Drop,
        };
        let cp = &self.codepoints;
        let (key_id, payload, udp_size, question, rd) = match wire::parse_outer(msg, question_end, cp) {
            Outer::NotDnsenc => return self.cleartext(msg, question_end, out),
            Outer::NoOption => {
                dns::write_local_answer(msg, dns::id(msg), rcode::REFUSED, out);
                return Action::Answer(Verdict::Refused);
            }
            Outer::BadOption => {
                dns::write_local_answer(msg, dns::id(msg), rcode::FORMERR, out);
                return Action::Answer(Verdict::Formerr);
            }
            Outer::Encrypted { key_id, payload, udp_size, question, rd } => (key_id, payload, udp_size, question, rd),
        };
        let outer_id = dns::id(msg);
        let clear = |code: u16, out: &mut Vec<u8>| {
            out.clear();
            wire::write_response_envelope(outer_id, rd, question, code, false, None, ENVELOPE_UDP_SIZE, cp, out);
        };
        let Some(server_key) = keys.get(key_id) else {
            clear(cp.badcrypt, out);
            return Action::Answer(Verdict::Badcrypt);
        };
        // Each RSA block costs a private-key operation (about 1 ms at 2048 bits, 8 at 4096):
        // a payload of more blocks than any query needs is refused before any is spent.
        let block = match server_key.key.scheme() {
            crypto::RSA2048_OAEP => 256,
            crypto::RSA4096_OAEP => 512,
            _ => usize::MAX / MAX_RSA_BLOCKS,
        };
        if payload.len() > MAX_RSA_BLOCKS * block {
            clear(cp.badcrypt, out);
            return Action::Answer(Verdict::Badcrypt);
        }
        let Ok(plaintext) = server_key.key.decrypt(key_id, payload) else {
            clear(cp.badcrypt, out);
            return Action::Answer(Verdict::Badcrypt);
        };
        let inner = match wire::check_inner(&plaintext, outer_id, cp, out) {
            Ok(inner) => inner,
            Err(_) => {
                clear(u16::from(rcode::FORMERR), out);
                return Action::Answer(Verdict::Formerr);
            }
        };
        let nsk = inner.nsk;
        if !server_key.response_schemes.contains(&nsk.scheme) || nsk.key.len() != 32 {
            clear(u16::from(rcode::FORMERR), out);
            return Action::Answer(Verdict::Formerr);
        }
        let max_size = if over_tcp { usize::from(u16::MAX) } else { usize::from(udp_size) };
        if !over_tcp {
            let room =
                max_size.saturating_sub(wire::envelope_overhead(question.len()) + crypto::payload_overhead(nsk.scheme));
            cap_udp_size(out, inner.question_end, (room.min(usize::from(u16::MAX)) as u16).max(MIN_INNER_UDP_SIZE));
        }
        Action::Relay {
            question_end: inner.question_end,
            sealing: Sealing {
                outer_id,
                rd,
                question: question.to_vec(),
                scheme: nsk.scheme,
                key: Zeroizing::new(nsk.key),
                key_id: nsk.key_id,
                query_scheme: server_key.key.scheme(),
                max_size,
            },
        }
    }

    /// A query that is not DNSENC, under the cleartext policy.
    fn cleartext(&self, msg: &[u8], question_end: usize, out: &mut Vec<u8>) -> Action {
        let qtype = u16::from_be_bytes([msg[question_end - 4], msg[question_end - 3]]);
        let allowed = match self.cleartext {
            Cleartext::All => true,
            Cleartext::Bootstrap => qtype == self.codepoints.nsk_type || qtype == TYPE_DNSKEY || qtype == TYPE_DS,
            Cleartext::None => false,
        };
        if allowed {
            return Action::RelayPlain { question_end };
        }
        dns::write_local_answer(msg, dns::id(msg), rcode::REFUSED, out);
        Action::Answer(Verdict::Refused)
    }

    /// Writes to `out` (cleared) the envelope carrying `answer` sealed for `sealing`'s client, or
    /// a clear TC=1 envelope when it would not fit the client's size. Returns whether it was
    /// truncated.
    pub fn seal(
        &self,
        sealing: &Sealing,
        answer: &[u8],
        rng: &mut impl rand::RngCore,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        scratch.clear();
        let cp = &self.codepoints;
        let sealed = crypto::seal_response(sealing.scheme, &sealing.key, sealing.key_id, answer, rng, scratch).is_ok();
        if sealed {
            wire::write_response_envelope(
                sealing.outer_id,
                sealing.rd,
                &sealing.question,
                0,
                false,
                Some((sealing.key_id, scratch)),
                ENVELOPE_UDP_SIZE,
                cp,
                out,
            );
            if out.len() <= sealing.max_size {
                return false;
            }
            out.clear();
        }
        // Too large for the client's UDP size (or, never expected, a key the AEAD refused: the
        // NSK check took only 32-byte keys of a known scheme): the client asks again over TCP.
        wire::write_response_envelope(
            sealing.outer_id,
            sealing.rd,
            &sealing.question,
            0,
            true,
            None,
            ENVELOPE_UDP_SIZE,
            cp,
            out,
        );
        true
    }
}

/// Caps the EDNS UDP payload size of the query in `query` (question ending at `question_end`)
/// at `cap`, when it has an OPT record: the backend then truncates an answer the envelope could
/// not carry, rather than dotgate.
fn cap_udp_size(query: &mut [u8], question_end: usize, cap: u16) {
    if let Ok(Some(opt)) = crate::edns::find_opt(query, question_end) {
        // An OPT record's CLASS is its payload size; the 4-byte TTL sits between it and RDLENGTH.
        let at = opt.rdlen_at - 6;
        let size = u16::from_be_bytes([query[at], query[at + 1]]);
        if size > cap {
            query[at..at + 2].copy_from_slice(&cap.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(name);
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        msg
    }

    /// `--dnsenc-cleartext`: `bootstrap` relays only NSK, DNSKEY and DS in the clear, `all`
    /// everything, `none` nothing; what is not relayed gets REFUSED.
    #[test]
    fn the_cleartext_policy_decides_what_plain_queries_are_relayed() {
        let cp = CodePoints::default();
        let name = b"\x07example\x00";
        let mut out = Vec::new();
        for (policy, relayed) in [
            (Cleartext::Bootstrap, [true, true, true, false]),
            (Cleartext::All, [true, true, true, true]),
            (Cleartext::None, [false, false, false, false]),
        ] {
            let server = DnsencServer::new(cp, policy, KeySet::new(Vec::new()).unwrap());
            for (qtype, want) in [cp.nsk_type, TYPE_DNSKEY, TYPE_DS, 1].into_iter().zip(relayed) {
                let query = plain_query(name, qtype);
                match server.handle(&query, false, &mut out) {
                    Action::RelayPlain { question_end } => {
                        assert!(want, "{policy:?} relays type {qtype}");
                        assert_eq!(question_end, query.len());
                    }
                    Action::Answer(Verdict::Refused) => {
                        assert!(!want, "{policy:?} refuses type {qtype}");
                        assert_eq!((out[3] & 0x0f, &out[..2]), (rcode::REFUSED, &query[..2]));
                    }
                    other => panic!("{policy:?}, type {qtype}: {}", matches!(other, Action::Drop)),
                }
            }
        }
    }
}
