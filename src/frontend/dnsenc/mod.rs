//! The DNSENC frontend (stateless DNS encryption, draft-krecicki-dprive-dnsenc-01 as
//! docs/dnsenc.md profiles it): UDP and TCP listeners beside DoT, on the same relay core.
//!
//! `wire` is the draft's formats (NSK, the option, the envelope); `crypto` and `keys` the
//! schemes dotgate defines and the key files; `server` what each message gets and how an
//! answer is sealed; `udp` and `tcp` the listeners; `reload` puts new key files in service.
//! The client side, for the `dotgate dnsenc` tools only: `client` the query and what is taken as
//! its answer, `exchange` one request and its answer over UDP or TCP, `message` and `print`
//! messages read record by record and shown as dig does, `trust` the NSK fetch and its DNSSEC
//! chain (`dnssec` the signatures), `tools` keygen and query, `load` the load generator,
//! `publish` the TSIG-signed UPDATE (`tsig`) that puts the NSKs in a zone. The listeners never
//! use the client side.
//! It talks to the relay only through `Relay::submit` and its own `ReplyTo`s; the backends see
//! plain inner queries from dotgate's address, and nothing about a client outlives its answer.

pub mod client;
pub mod crypto;
pub mod dnssec;
pub mod exchange;
pub mod keys;
pub mod load;

pub mod print;
pub mod publish;
pub mod reload;
pub mod server;
pub mod tcp;
pub mod tools;
pub mod trust;

pub mod udp;
pub mod wire;

use std::cell::{Ref, RefCell, RefMut};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::access::gate::Gate;
use crate::frontend::limits::ConnectionLimits;
use crate::relay::Relay;
use crate::stats::{bump, WorkerStats};
use keys::KeySet;
use server::DnsencServer;

/// What a worker's DNSENC listeners share.
pub struct DnsencContext {
    pub server: Arc<DnsencServer>,
    pub relay: Rc<Relay>,
    pub stats: Arc<WorkerStats>,
    pub gate: Arc<Gate>,
    /// The connection limits, shared with DoT (DNSENC over TCP counts in them).
    pub limits: Arc<ConnectionLimits>,
    /// Close a TCP connection with nothing in flight after this long.
    pub idle_timeout: Duration,
    /// Queries in flight per TCP connection before reading pauses.
    pub max_in_flight: u32,
    /// Where a message is decided (an answer, or the inner query to relay).
    work: RefCell<Vec<u8>>,
    /// Where an answer is sealed, and the envelope written.
    scratch: RefCell<Vec<u8>>,
    sealed: RefCell<Vec<u8>>,
    /// Nonces of sealed answers: ChaCha-based, seeded from the OS.
    rng: RefCell<StdRng>,
    /// This worker's copy of the keys in service, and the server's generation it was taken at.
    keys: RefCell<(u64, Arc<KeySet>)>,
}

impl DnsencContext {
    pub fn new(
        server: Arc<DnsencServer>,
        relay: Rc<Relay>,
        stats: Arc<WorkerStats>,
        gate: Arc<Gate>,
        limits: Arc<ConnectionLimits>,
        idle_timeout: Duration,
        max_in_flight: u32,
    ) -> DnsencContext {
        DnsencContext {
            relay,
            stats,
            gate,
            limits,
            idle_timeout,
            max_in_flight,
            work: RefCell::new(Vec::with_capacity(4096)),
            scratch: RefCell::new(Vec::with_capacity(4096)),
            sealed: RefCell::new(Vec::with_capacity(4096)),
            rng: RefCell::new(StdRng::from_os_rng()),
            keys: RefCell::new((server.generation(), server.keys())),
            server,
        }
    }

    /// The keys in service: this worker's copy, taken again when the server's generation has
    /// moved (a reload). One atomic load per query; no lock, no shared reference count.
    fn current_keys(&self) -> Ref<'_, Arc<KeySet>> {
        let generation = self.server.generation();
        if self.keys.borrow().0 != generation {
            *self.keys.borrow_mut() = (generation, self.server.keys());
        }
        Ref::map(self.keys.borrow(), |(_, keys)| keys)
    }

    /// Decides what `msg` gets (see `server::DnsencServer::handle`), with this worker's keys.
    fn decide(&self, msg: &[u8], over_tcp: bool, out: &mut Vec<u8>) -> server::Action {
        self.server.handle_with_keys(&self.current_keys(), msg, over_tcp, out)
    }

    /// Relays the inner query the server wrote into `work` (borrowed as `out`). The buffer is
    /// lent to the relay's copy and given back: the relay may answer at once (no backend, say),
    /// and `deliver` uses other buffers.
    fn submit_work(
        &self,
        mut out: RefMut<'_, Vec<u8>>,
        question_end: usize,
        reply: Rc<dyn crate::relay::ReplyTo>,
        client: crate::relay::ClientAddr,
    ) {
        let query = std::mem::take(&mut *out);
        drop(out);
        self.relay.submit(&query, question_end, reply, 0, Some(client));
        *self.work.borrow_mut() = query;
    }

    /// Seals `answer` for `sealing`'s client and hands the envelope to `send`: one place for
    /// the worker's buffers and nonce source, and for counting an answer that had to go back as
    /// a clear TC=1 envelope.
    fn seal_answer(&self, sealing: &server::Sealing, answer: &[u8], send: impl FnOnce(&[u8])) {
        let mut sealed = self.sealed.borrow_mut();
        let mut scratch = self.scratch.borrow_mut();
        if self.server.seal(sealing, answer, &mut *self.rng.borrow_mut(), &mut scratch, &mut sealed) {
            bump(&self.stats.dnsenc_errors_truncated);
        }
        send(&sealed);
    }

    /// Whether the access lists let `ip` in (checked per datagram).
    fn admits(&self, ip: IpAddr) -> bool {
        if self.gate.acl_allows(ip) {
            return true;
        }
        bump(&self.stats.connections_refused_acl);
        false
    }

    /// Whether a query from `ip` is within its client's rate (`--max-qps-per-client`); counted
    /// when not.
    fn within_rate(&self, ip: IpAddr) -> bool {
        if !self.gate.limits_queries() || self.gate.allow_query(self.gate.client_key(ip), std::time::Instant::now()) {
            return true;
        }
        bump(&self.stats.rate_limited_queries);
        false
    }

    fn count_query(&self, scheme: u16) {
        let counter = match scheme {
            crypto::RSA2048_OAEP => &self.stats.dnsenc_queries_rsa2048,
            crypto::RSA4096_OAEP => &self.stats.dnsenc_queries_rsa4096,
            _ => &self.stats.dnsenc_queries_x25519,
        };
        bump(counter);
    }

    /// Counts an answer dotgate made itself, in the clear, by why.
    fn count_error(&self, verdict: server::Verdict) {
        bump(match verdict {
            server::Verdict::Refused => &self.stats.dnsenc_errors_refused,
            server::Verdict::Badcrypt => &self.stats.dnsenc_errors_badcrypt,
            server::Verdict::Formerr => &self.stats.dnsenc_errors_formerr,
        });
    }
}
