//! The relay core (steps ⑤–⑧ of the data path): takes a checked query from any frontend, sends
//! it to a backend with a fresh random ID, matches the answer, restores the client's ID and
//! hands it back through the frontend's [`ReplyTo`]. Deadlines, one retry on another backend,
//! SERVFAIL, the TCP fallback after TC=1 (and, through the TCP memory, straight to TCP for
//! questions that came back truncated before), and backend health live here.
//!
//! One `Relay` per worker, used from that worker's thread only (`Rc`/`RefCell`, no locks).
//! It never acts on which frontend a query came from (DoT, DoH, DNSENC, the private-subdomain
//! gateway): everything it needs is the query and a `ReplyTo`, which names its frontend only so
//! that the answer is counted under it (`answers_total{frontend}`).
//! Invariants it keeps: every submitted query gets exactly one `deliver` (answer or SERVFAIL)
//! unless its requester closed; an answer is accepted only from the backend address it was sent
//! to, with the ID sent, QR=1 and the same question; the table empties when traffic stops.

pub mod backends;
pub mod ecs;
pub mod inflight;
pub mod matching;
#[cfg(feature = "fuzzing")]
pub mod model_check;
pub mod proxy_v2;
mod tcp;
pub mod tcp_memory;
mod udp;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::BackendOptions;
use crate::dns;
use crate::stats::{bump, Frontend, WorkerStats};
use backends::{Backends, HealthChange};
use inflight::{Inflight, InflightTable, Key, Route};
use matching::{DropReason, UdpMatch};
pub use tcp::TcpConn;
use tcp_memory::TcpMemory;

/// How a frontend gets its answers back. Implemented once per frontend (a DoT connection's
/// answer queue, a DoH request waiting, DNSENC's and the gateway's responders).
pub trait ReplyTo {
    /// The frontend the query came in through: the relay counts the answers it delivers (the
    /// backend's, and the SERVFAIL or REFUSED it makes) in that frontend's `answers_total`.
    /// Nothing else depends on it.
    fn frontend(&self) -> Frontend;

    /// Takes one answer whose ID is already the client's, with the `tag` its query was
    /// submitted with (the frontend's own per-query note; the relay never reads it). Called
    /// exactly once per submitted query. Must not call back into the relay (it may be called
    /// while the relay works).
    fn deliver(&self, answer: &[u8], tag: u8);

    /// True once the requester is gone: its queries need no answer and no retry.
    fn is_closed(&self) -> bool {
        false
    }
}

/// Where a client is: its own address and port, the address and port it reached dotgate on, and
/// over what. Backends with `proxy-protocol` get all three in a PROXY v2 header; those with `ecs`
/// get the first, cut to a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The transport of the client's own connection (DoT: `Stream`), which the PROXY header
    /// states whatever carries the query to the backend (the specification's "transport
    /// protocol of the original connection"; dnsdist does the same).
    pub transport: proxy_v2::Transport,
}

/// Why a query could not be sent.
enum NotSent {
    /// No free upstream ID (the table is absurdly full): SERVFAIL.
    NoId,
    /// It carries an ECS option of its own that cannot be replaced: REFUSED.
    UntrustedEcs,
}

/// A PROXY v2 header with the LOCAL command and no addresses (the HAProxy spec, §2.2): what
/// dotgate's own health probes to a `proxy-protocol` backend start with, since no client is
/// behind them (the backend uses the real source address).
const PROXY_V2_LOCAL: [u8; 16] = *b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

/// Tries at one backend each: the first send and one retry elsewhere (after that, SERVFAIL).
const MAX_BACKEND_ATTEMPTS: u8 = 2;
/// TCP connections a TC fallback may use: one, and one resend if that connection dies.
const MAX_TCP_ATTEMPTS: u8 = 2;
/// A query's upstream timeout fires at most this fraction of the timeout late (see `timer_loop`).
const DEADLINE_SLACK_DIVISOR: u32 = 32;
/// How often a worker probes each backend it has marked down.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Settings the relay needs, copied out of `Config`.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub backends: Vec<SocketAddr>,
    pub upstream_timeout: Duration,
    pub upstream_sockets: usize,
    pub worker: usize,
    /// Questions the TCP memory holds (0: off, every query tries UDP first).
    pub tcp_memory_entries: usize,
    /// Longest a question stays in the TCP memory (shorter when its answer's TTL is).
    pub tcp_memory_ttl: Duration,
    /// Each backend's options, in the order of `backends`.
    pub backend_options: Vec<BackendOptions>,
}

impl RelaySettings {
    /// Whether any backend is told the client's address (so `submit` needs it).
    pub fn needs_client_address(&self) -> bool {
        self.backend_options.iter().any(BackendOptions::needs_client)
    }
}

/// An expiry record; stale once the entry's generation has moved on.
struct Deadline {
    key: Key,
    generation: u32,
    at: Instant,
}

struct RelayState {
    table: InflightTable,
    backends: Backends,
    /// Upstream TCP connection per backend, for TC fallbacks.
    tcp: Vec<Option<Rc<TcpConn>>>,
    /// Upstream TCP connections to `proxy-protocol` backends, one per backend and client
    /// address: the PROXY header goes once at the start of a connection, so a connection
    /// speaks for one client only.
    tcp_per_client: HashMap<(usize, ClientAddr), Rc<TcpConn>>,
    /// Deadlines in send order; with one constant timeout that is expiry order too.
    deadlines: VecDeque<Deadline>,
    /// ChaCha-based and seeded from the OS: upstream IDs and ports must be unpredictable to an
    /// off-path spoofer (RFC 5452).
    rng: StdRng,
    next_generation: u32,
    /// UDP sends queued since the last `flush`, sent together (one `sendmmsg` per socket).
    pending_sends: Vec<PendingSend>,
    /// Questions that came back truncated: asked again, they go straight to TCP.
    tcp_memory: TcpMemory,
}

/// A query waiting in `pending_sends`; stale if the entry has been sent again or is gone.
#[derive(Clone, Copy)]
struct PendingSend {
    socket: u16,
    key: Key,
    generation: u32,
}

/// A worker's relay.
pub struct Relay {
    state: RefCell<RelayState>,
    sockets: udp::SocketGroups,
    settings: RelaySettings,
    stats: Arc<WorkerStats>,
    /// Wakes the timer task when the first deadline goes into an empty queue.
    timer_wake: Notify,
    /// Wakes the sender task when the first send goes into an empty `pending_sends`.
    send_wake: Notify,
    /// Scratch for answers made here (SERVFAIL), so making one allocates nothing.
    scratch: RefCell<Vec<u8>>,
    /// The `sendmmsg` arrays, reused by every flush.
    send_batch: RefCell<dotgate_sys::mmsg::SendBatch>,
    /// The pending sends being flushed, swapped with `RelayState::pending_sends`.
    flushing: RefCell<Vec<PendingSend>>,
    /// Where a query is rewritten with a backend's ECS option, and an answer without it.
    ecs_scratch: RefCell<Vec<u8>>,
    /// Some backend is told the client's address: entries keep it.
    needs_client: bool,
}

impl Relay {
    /// Binds the upstream sockets. Call inside the worker's runtime.
    pub fn new(settings: RelaySettings, stats: Arc<WorkerStats>) -> io::Result<Rc<Relay>> {
        assert_eq!(settings.backend_options.len(), settings.backends.len(), "one options entry per backend");
        let needs_client = settings.needs_client_address();
        let sockets = udp::SocketGroups::bind(&settings.backends, settings.upstream_sockets)?;
        let state = RelayState {
            table: InflightTable::new(sockets.len()),
            backends: Backends::new(&settings.backends),
            tcp: vec![None; settings.backends.len()],
            tcp_per_client: HashMap::new(),
            deadlines: VecDeque::with_capacity(1024),
            rng: StdRng::from_os_rng(),
            next_generation: 0,
            pending_sends: Vec::with_capacity(256),
            tcp_memory: TcpMemory::new(settings.tcp_memory_entries),
        };
        Ok(Rc::new(Relay {
            state: RefCell::new(state),
            sockets,
            settings,
            stats,
            timer_wake: Notify::new(),
            send_wake: Notify::new(),
            scratch: RefCell::new(Vec::with_capacity(512)),
            send_batch: RefCell::new(dotgate_sys::mmsg::SendBatch::default()),
            flushing: RefCell::new(Vec::with_capacity(256)),
            ecs_scratch: RefCell::new(Vec::new()),
            needs_client,
        }))
    }

    /// Spawns the worker-local tasks: one receive loop per upstream socket, the deadline timer
    /// and the health prober. Call inside a `LocalSet`; they end when it is dropped.
    pub fn start(self: &Rc<Self>) {
        for index in 0..self.sockets.len() {
            tokio::task::spawn_local(udp::receive_loop(self.clone(), index));
        }
        tokio::task::spawn_local(timer_loop(self.clone()));
        tokio::task::spawn_local(send_loop(self.clone()));
        tokio::task::spawn_local(probe_loop(self.clone()));
    }

    /// Whether some backend is told each query's client address: frontends pass it to
    /// `submit` only then.
    pub fn needs_client_address(&self) -> bool {
        self.needs_client
    }

    /// Queries in flight on this worker.
    pub fn in_flight(&self) -> usize {
        self.state.borrow().table.len()
    }

    /// Copies the in-flight count and this worker's view of each backend into its stats, for
    /// the admin endpoint (called once a second, not per query).
    pub fn publish_gauges(&self) {
        let st = self.state.borrow();
        self.stats.in_flight.store(st.table.len() as u64, Relaxed);
        self.stats.tcp_memory_entries.store(st.tcp_memory.len() as u64, Relaxed);
        for (gauges, backend) in self.stats.backends.iter().zip(st.backends.iter()) {
            gauges.up.store(!backend.down, Relaxed);
            gauges.outstanding.store(u64::from(backend.outstanding), Relaxed);
        }
    }

    /// Relays one checked query (see [`dns::check_query`]); the answer, or SERVFAIL, comes back
    /// through `reply`. `query` is copied; the caller may reuse its buffer at once. The query
    /// leaves when the worker's sender task runs, after every task that was ready with it:
    /// all the queries of one round of the event loop go out together. `tag` comes back with
    /// the answer. A question the TCP memory holds goes straight to its backend over TCP.
    /// `client` is where the query came from: backends with `proxy-protocol` or `ecs` are told
    /// (see [`Relay::needs_client_address`]; a frontend need not look it up otherwise).
    pub fn submit(
        self: &Rc<Self>,
        query: &[u8],
        question_end: usize,
        reply: Rc<dyn ReplyTo>,
        tag: u8,
        client: Option<ClientAddr>,
    ) {
        let mut st = self.state.borrow_mut();
        let buf = st.table.buffer_from(query);
        let mut entry = Inflight::new(reply, tag, buf, question_end);
        if self.needs_client {
            entry.client = client;
        }
        let key = st.table.insert(entry);
        if let Some(backend) = remembered_tcp_backend(&mut st, query, question_end) {
            self.send_tcp_direct(&mut st, key, backend);
            return;
        }
        let backend = st.backends.pick(None);
        self.send_or_fail(st, key, backend);
    }

    /// Sends a new query whose question came back truncated from `backend` before straight to
    /// that backend's TCP connection, under a fresh random ID: one round trip instead of two.
    /// From here on it is a TC fallback like any other (the resend on a new connection, the
    /// deadline, the retry elsewhere over UDP, SERVFAIL).
    fn send_tcp_direct(self: &Rc<Self>, st: &mut RelayState, key: Key, backend: usize) {
        let id: u16 = st.rng.random();
        let entry = st.table.get_mut(key).expect("entry being sent exists");
        dns::set_id(&mut entry.query, id);
        entry.backend = backend;
        entry.attempts += 1;
        st.backends.add_outstanding(backend);
        bump(&self.stats.tcp_direct);
        self.send_tcp(st, key);
    }

    /// Sends `key` to `backend`, or answers SERVFAIL when there is none or no free ID (REFUSED
    /// for an ECS option that cannot be replaced).
    fn send_or_fail(&self, mut st: std::cell::RefMut<'_, RelayState>, key: Key, backend: Option<usize>) {
        let rcode = match backend.map(|backend| self.send_udp(&mut st, key, backend)) {
            Some(Ok(())) => return,
            Some(Err(NotSent::UntrustedEcs)) => dns::rcode::REFUSED,
            Some(Err(NotSent::NoId)) | None => dns::rcode::SERVFAIL,
        };
        let entry = st.table.remove(key);
        drop(st);
        self.answer_locally(entry, rcode);
    }

    /// Queues the entry's query for `backend` under a fresh random ID on a random socket, and
    /// arms its deadline. Fails when no ID is free (the table is absurdly full), or when the
    /// backend adds ECS and the query's own ECS option cannot be replaced.
    fn send_udp(&self, st: &mut RelayState, key: Key, backend: usize) -> Result<(), NotSent> {
        let sockets = self.sockets.for_family(st.backends.addr(backend));
        let RelayState { table, rng, pending_sends, .. } = st;
        // The queries of one round share the socket the round's first query drew at random, so
        // that the round leaves in one `sendmmsg` and its answers come back in one `recvmmsg`
        // (one socket per query meant a call for each socket a round touched). The socket is
        // still unpredictable to an off-path spoofer: it is drawn afresh every round, and the
        // ID is random on it (RFC 5452).
        let joined = pending_sends
            .last()
            .map(|p| usize::from(p.socket))
            .filter(|socket| sockets.contains(socket))
            .and_then(|socket| Some((socket, table.pick_free_udp_id_on(rng, socket)?)));
        let Some((socket, id)) = joined.or_else(|| table.pick_free_udp_id(rng, sockets)) else {
            return Err(NotSent::NoId);
        };
        let entry = st.table.get_mut(key).expect("entry being sent exists");
        dns::set_id(&mut entry.query, id);
        self.write_wire(entry, backend)?;
        st.table.claim_udp_id(socket, id, key);
        let generation = next_generation(st);
        let now = Instant::now();
        let entry = st.table.get_mut(key).expect("entry being sent exists");
        entry.note_sent(now);
        entry.backend = backend;
        entry.route = Route::Udp { socket: socket as u16 };
        entry.attempts += 1;
        entry.generation = generation;
        if st.pending_sends.is_empty() {
            self.send_wake.notify_one();
        }
        st.pending_sends.push(PendingSend { socket: socket as u16, key, generation });
        st.backends.add_outstanding(backend);
        bump(&self.stats.backends[backend].queries_udp);
        self.arm_deadline(st, key, generation, now);
        Ok(())
    }

    /// Writes the datagram the entry's UDP attempt to `backend` sends into `entry.wire`: the
    /// PROXY v2 header and the query with the backend's ECS option, as its options ask; for a
    /// backend without options `wire` stays empty and the query goes as it is. Notes what the
    /// client said about ECS for the answer.
    fn write_wire(&self, entry: &mut Inflight, backend: usize) -> Result<(), NotSent> {
        let options = self.settings.backend_options[backend];
        entry.wire.clear();
        entry.ecs = None;
        if !options.needs_client() {
            return Ok(());
        }
        if options.proxy_protocol {
            match entry.client {
                Some(client) => proxy_v2::write_header(&mut entry.wire, client.transport, client.peer, client.local),
                None => entry.wire.extend_from_slice(&PROXY_V2_LOCAL),
            }
        }
        match self.ecs_query(entry, options)? {
            Some(edited) => entry.wire.extend_from_slice(&edited),
            None => entry.wire.extend_from_slice(&entry.query),
        }
        Ok(())
    }

    /// The entry's query with the ECS option `options` ask for (`None`: the query as it is, for
    /// a backend without `ecs` or a query from no client), noting what the client said about ECS.
    fn ecs_query(
        &self,
        entry: &mut Inflight,
        options: BackendOptions,
    ) -> Result<Option<std::cell::Ref<'_, Vec<u8>>>, NotSent> {
        let (Some(prefix), Some(client)) = (options.ecs, entry.client) else { return Ok(None) };
        let mut edited = self.ecs_scratch.borrow_mut();
        match ecs::write_query(&entry.query, entry.question_end, client.peer.ip(), prefix, &mut edited) {
            ecs::QueryEdit::Edited(asked) => {
                entry.ecs = Some(asked);
                drop(edited);
                Ok(Some(self.ecs_scratch.borrow()))
            }
            ecs::QueryEdit::AsItIs => Ok(None),
            ecs::QueryEdit::Refuse => Err(NotSent::UntrustedEcs),
        }
    }

    /// Sends every queued UDP query: one `sendmmsg` per upstream socket that has any. A send the
    /// kernel refuses is not fatal: the query's deadline retries it elsewhere or answers
    /// SERVFAIL. When a socket's send buffer is full, its unsent queries stay queued and it
    /// returns true, for the caller to try again after `udp::SEND_RETRY`.
    fn flush(&self) -> bool {
        let mut flushing = self.flushing.borrow_mut();
        if self.state.borrow().pending_sends.is_empty() {
            return false;
        }
        std::mem::swap(&mut *flushing, &mut self.state.borrow_mut().pending_sends);
        // Group by socket; a stable sort keeps each client's queries in the order they came.
        flushing.sort_by_key(|p| p.socket);
        let st = self.state.borrow();
        let mut batch = self.send_batch.borrow_mut();
        let mut blocked = false;
        let mut still_pending = Vec::new();
        let mut refused = Vec::new();
        for group in flushing.chunk_by(|a, b| a.socket == b.socket) {
            // Entries answered, timed out or re-sent since they were queued are skipped.
            let current = |p: &PendingSend| {
                st.table.get(p.key).filter(|entry| {
                    entry.generation == p.generation
                        && matches!(entry.route, Route::Udp { socket } if socket == p.socket)
                })
            };
            let live = group
                .iter()
                .filter_map(|p| current(p).map(|entry| (st.backends.addr(entry.backend), entry.datagram())));
            let socket = group[0].socket as usize;
            let outcome = self.sockets.send_batch(socket, &mut batch, live);
            self.stats.upstream_send_errors.add(outcome.refused as u64);
            // A refused datagram (no route, network down) will never be answered: its attempt
            // ends now rather than at the upstream timeout. Rare, so the keys are found again.
            for &position in batch.refused() {
                if let Some(p) = group.iter().filter(|p| current(p).is_some()).nth(position) {
                    refused.push(p.key);
                }
            }
            if outcome.blocked {
                // Rare (a full kernel buffer): keep the rest for when the socket drains.
                let done = outcome.sent + outcome.refused;
                still_pending.extend(group.iter().filter(|p| current(p).is_some()).skip(done).copied());
                blocked = true;
            }
            debug_assert!(
                outcome.blocked
                    || outcome.sent + outcome.refused == group.iter().filter(|p| current(p).is_some()).count()
            );
        }
        drop(st);
        flushing.clear();
        let mut st = self.state.borrow_mut();
        if !still_pending.is_empty() {
            st.pending_sends.extend(still_pending);
        }
        for key in refused {
            self.expire_now(&mut st, key);
        }
        blocked
    }

    /// Starts the upstream timeout of the attempt sent at `now`.
    fn arm_deadline(&self, st: &mut RelayState, key: Key, generation: u32, now: Instant) {
        let was_empty = st.deadlines.is_empty();
        st.deadlines.push_back(Deadline { key, generation, at: now + self.settings.upstream_timeout });
        if was_empty {
            self.timer_wake.notify_one();
        }
    }

    /// A datagram arrived on upstream socket `socket`. Accepts it only if it answers the query
    /// in flight under its ID on that socket, from that query's backend, with QR=1 and the same
    /// question (`matching::match_udp_datagram` decides); everything else is dropped and
    /// counted, and no client is touched.
    pub(crate) fn on_udp_datagram(self: &Rc<Self>, socket: usize, answer: &mut [u8], src: SocketAddr) {
        let mut st = self.state.borrow_mut();
        let key = match matching::match_udp_datagram(&st.table, &st.backends, socket, answer, src) {
            UdpMatch::Deliver(key) => key,
            UdpMatch::Drop(reason) => {
                bump(match reason {
                    DropReason::Garbage => &self.stats.dropped_garbage,
                    DropReason::UnknownId => &self.stats.dropped_unknown_id,
                    DropReason::Duplicate => &self.stats.dropped_duplicate,
                    DropReason::WrongSource => &self.stats.dropped_wrong_source,
                    DropReason::QuestionMismatch => &self.stats.dropped_question_mismatch,
                });
                return;
            }
        };
        let backend = st.table.get(key).expect("ID map points at a live entry").backend;
        let now = Instant::now();
        if let HealthChange::CameBack = st.backends.answered(backend, now) {
            info!(worker = self.settings.worker, backend = %st.backends.addr(backend), "backend answers again: marked up");
        }
        st.table.release_route(key, true);
        if dns::is_truncated(answer) {
            bump(&self.stats.tc_fallbacks);
            self.remember_truncated(&mut st, key, now);
            self.send_tcp(&mut st, key);
            return;
        }
        self.finish(st, key, answer, now);
    }

    /// A datagram whose source is not an IP address (cannot happen on an IP socket; counted
    /// rather than trusted).
    pub(crate) fn count_garbage(&self) {
        bump(&self.stats.dropped_garbage);
    }

    /// An answer arrived on upstream TCP connection `conn`; same checks as UDP (the source is
    /// the connection itself).
    pub(crate) fn on_tcp_answer(&self, conn: &TcpConn, answer: &mut [u8]) {
        if answer.len() < dns::HEADER_LEN || !dns::is_response(answer) {
            bump(&self.stats.dropped_garbage);
            return;
        }
        let mut st = self.state.borrow_mut();
        let Some(key) = conn.owner(dns::id(answer)) else {
            bump(&self.stats.dropped_unknown_id);
            return;
        };
        let entry = st.table.get(key).expect("TCP ID map points at a live entry");
        if !dns::answers_question(answer, entry.question()) && !dns::is_questionless_error(answer) {
            bump(&self.stats.dropped_question_mismatch);
            return;
        }
        let backend = entry.backend;
        let now = Instant::now();
        st.backends.answered(backend, now);
        st.table.release_route(key, true);
        self.learn_from_tcp_answer(&mut st, key, answer, now);
        self.finish(st, key, answer, now);
    }

    /// A UDP answer to `key` came back truncated: its question goes into the TCP memory, with
    /// the backend that truncated it, for the cap (the truncated answer rarely has records to
    /// take a TTL from; the TCP answer sets the real expiry).
    fn remember_truncated(&self, st: &mut RelayState, key: Key, now: Instant) {
        if st.tcp_memory.capacity() == 0 {
            return;
        }
        let entry = st.table.get(key).expect("entry exists");
        if entry.probe {
            return;
        }
        let (question, _) = st.tcp_memory.key_of_query(&entry.query, entry.question_end);
        let backend = entry.backend;
        st.tcp_memory.insert(question, backend, now + self.settings.tcp_memory_ttl);
    }

    /// The TCP answer to `key` arrived: if its question is in the TCP memory, it stays there
    /// for the answer's smallest TTL (at most the cap), or leaves at once when the answer
    /// would have fit the UDP size the query advertised (it no longer needs TCP).
    fn learn_from_tcp_answer(&self, st: &mut RelayState, key: Key, answer: &[u8], now: Instant) {
        if st.tcp_memory.is_empty() {
            return;
        }
        let entry = st.table.get(key).expect("entry exists");
        let (question, asked) = st.tcp_memory.key_of_query(&entry.query, entry.question_end);
        if answer.len() <= usize::from(asked.udp_payload) {
            st.tcp_memory.remove(question);
            return;
        }
        let cap = self.settings.tcp_memory_ttl;
        let ttl = dns::answer_min_ttl(answer).map_or(cap, |ttl| cap.min(Duration::from_secs(u64::from(ttl))));
        st.tcp_memory.set_expiry(question, now + ttl);
    }

    /// Hands a matched answer (arrived at `now`) to its requester and frees the entry.
    fn finish(&self, mut st: std::cell::RefMut<'_, RelayState>, key: Key, answer: &mut [u8], now: Instant) {
        let entry = st.table.remove(key);
        st.backends.sub_outstanding(entry.backend);
        drop(st);
        if let Some(sent) = entry.sent {
            self.stats.backends[entry.backend].latency.observe(now.saturating_duration_since(sent));
        }
        if !entry.probe {
            if let Some(submitted) = entry.submitted {
                self.stats.query_latency.observe(now.saturating_duration_since(submitted));
            }
            dns::set_id(answer, entry.client_id);
            bump(&self.stats.answers(entry.reply.frontend()).backend[usize::from(answer[3] & 0x0F)]);
            // An ECS backend's answer goes back as the client asked: without the option when it
            // sent none, with its own echoed when it did (RFC 7871 §7.2). An error without a
            // question goes back with the question put in, as clients match on it.
            let mut edited = self.ecs_scratch.borrow_mut();
            if dns::qdcount(answer) == 0 {
                edited.clear();
                dns::write_local_answer(&entry.query, entry.client_id, dns::rcode(answer), &mut edited);
                entry.reply.deliver(&edited, entry.tag);
            } else {
                match entry.ecs {
                    Some(asked) if ecs::write_answer(answer, asked, &mut edited) => {
                        entry.reply.deliver(&edited, entry.tag)
                    }
                    _ => entry.reply.deliver(answer, entry.tag),
                }
            }
        }
        self.recycle(entry);
    }

    /// Moves a query whose UDP answer was truncated to the backend's TCP connection (opening
    /// one if there is none), with a fresh deadline.
    fn send_tcp(self: &Rc<Self>, st: &mut RelayState, key: Key) {
        let entry = st.table.get(key).expect("entry exists");
        let backend = entry.backend;
        if entry.tcp_attempts >= MAX_TCP_ATTEMPTS {
            self.fail_later(st, key);
            return;
        }
        let client = entry.client;
        let conn = self.tcp_conn(st, backend, client);
        let preferred = dns::id(&st.table.get(key).expect("entry exists").query);
        let id = conn.free_id(preferred, &mut st.rng);
        let entry = st.table.get_mut(key).expect("entry exists");
        dns::set_id(&mut entry.query, id);
        entry.wire.clear();
        entry.ecs = None;
        let Ok(edited) = self.ecs_query(entry, self.settings.backend_options[backend]) else {
            self.fail_later(st, key);
            return;
        };
        let generation = next_generation(st);
        let now = Instant::now();
        let entry = st.table.get_mut(key).expect("entry exists");
        entry.note_sent(now);
        entry.route = Route::Tcp { conn: conn.clone() };
        entry.tcp_attempts += 1;
        entry.generation = generation;
        conn.send(id, key, edited.as_deref().unwrap_or(&entry.query));
        drop(edited);
        bump(&self.stats.backends[backend].queries_tcp);
        self.arm_deadline(st, key, generation, now);
    }

    /// The upstream TCP connection a query from `client` to `backend` goes on, opened if
    /// there is none alive: the backend's shared one, or for a `proxy-protocol` backend the
    /// client's own, whose PROXY v2 header (sent first) names that client.
    fn tcp_conn(self: &Rc<Self>, st: &mut RelayState, backend: usize, client: Option<ClientAddr>) -> Rc<TcpConn> {
        let proxy_protocol = self.settings.backend_options[backend].proxy_protocol;
        let addr = st.backends.addr(backend);
        let timeout = self.settings.upstream_timeout;
        if let (true, Some(client)) = (proxy_protocol, client) {
            if let Some(conn) = st.tcp_per_client.get(&(backend, client)).filter(|conn| !conn.is_dead()) {
                return conn.clone();
            }
            let mut header = Vec::with_capacity(proxy_v2::MAX_HEADER_LEN);
            proxy_v2::write_header(&mut header, client.transport, client.peer, client.local);
            let conn = TcpConn::open(self.clone(), backend, addr, timeout, header, Some(client));
            st.tcp_per_client.insert((backend, client), conn.clone());
            return conn;
        }
        match &st.tcp[backend] {
            Some(conn) if !conn.is_dead() => conn.clone(),
            _ => {
                let header = if proxy_protocol { PROXY_V2_LOCAL.to_vec() } else { Vec::new() };
                let conn = TcpConn::open(self.clone(), backend, addr, timeout, header, None);
                st.tcp[backend] = Some(conn.clone());
                conn
            }
        }
    }

    /// Answers SERVFAIL for an entry from a context that holds the state borrow: the entry is
    /// given a deadline of now, so the timer does it.
    fn fail_later(&self, st: &mut RelayState, key: Key) {
        if let Some(entry) = st.table.get_mut(key) {
            entry.attempts = MAX_BACKEND_ATTEMPTS;
        }
        self.expire_now(st, key);
    }

    /// Ends an entry's current attempt now, from a context that holds the state borrow: the
    /// timer handles it as a timeout (retry on another backend while attempts are left, else
    /// SERVFAIL).
    fn expire_now(&self, st: &mut RelayState, key: Key) {
        let generation = next_generation(st);
        if let Some(entry) = st.table.get_mut(key) {
            entry.generation = generation;
        }
        st.deadlines.push_front(Deadline { key, generation, at: Instant::now() });
        self.timer_wake.notify_one();
    }

    /// A TCP connection died (or never connected) with these queries on it: each gets one
    /// resend on a new connection, then SERVFAIL via its deadline.
    pub(crate) fn on_tcp_failure(self: &Rc<Self>, conn: &TcpConn, stranded: Vec<Key>) {
        let mut st = self.state.borrow_mut();
        let is_this = |current: &Rc<TcpConn>| std::ptr::eq(Rc::as_ptr(current), conn);
        match conn.client() {
            Some(client) => {
                let key = (conn.backend(), client);
                if st.tcp_per_client.get(&key).is_some_and(is_this) {
                    st.tcp_per_client.remove(&key);
                }
            }
            None => {
                if st.tcp[conn.backend()].as_ref().is_some_and(is_this) {
                    st.tcp[conn.backend()] = None;
                }
            }
        }
        if !stranded.is_empty() {
            bump(&self.stats.upstream_tcp_failures);
        }
        for key in stranded {
            if st.table.get(key).is_some() {
                self.send_tcp(&mut st, key);
            }
        }
    }

    /// Expires every deadline at or before `now`: retry once on another healthy backend, else
    /// SERVFAIL. Returns the next deadline, if any.
    fn expire(self: &Rc<Self>, now: Instant) -> Option<Instant> {
        loop {
            let mut st = self.state.borrow_mut();
            let front = st.deadlines.front()?;
            if front.at > now {
                return Some(front.at);
            }
            let Deadline { key, generation, .. } = st.deadlines.pop_front().expect("front exists");
            let Some(entry) = st.table.get(key) else { continue };
            if entry.generation != generation {
                continue; // answered, or sent again since
            }
            let (backend, attempts, probe, closed) =
                (entry.backend, entry.attempts, entry.probe, entry.reply.is_closed());
            bump(&self.stats.backends[backend].timeouts);
            st.table.release_route(key, false);
            st.backends.sub_outstanding(backend);
            if st.backends.timed_out(backend) == HealthChange::WentDown {
                warn!(worker = self.settings.worker, backend = %st.backends.addr(backend), "backend keeps timing out: marked down");
            }
            if !probe && !closed && attempts < MAX_BACKEND_ATTEMPTS {
                if let Some(other) = st.backends.pick(Some(backend)) {
                    bump(&self.stats.upstream_retries);
                    if self.send_udp(&mut st, key, other).is_ok() {
                        continue;
                    }
                }
            }
            let entry = st.table.remove(key);
            drop(st);
            if probe || closed {
                self.recycle(entry);
            } else {
                self.answer_locally(entry, dns::rcode::SERVFAIL);
            }
        }
    }

    /// Answers SERVFAIL (or REFUSED) to an entry's requester and recycles its buffers.
    fn answer_locally(&self, entry: Inflight, rcode: u8) {
        if !entry.probe && !entry.reply.is_closed() {
            let mut scratch = self.scratch.borrow_mut();
            scratch.clear();
            dns::write_local_answer(&entry.query, entry.client_id, rcode, &mut scratch);
            let answers = self.stats.answers(entry.reply.frontend());
            bump(if rcode == dns::rcode::REFUSED { &answers.refused } else { &answers.servfail });
            if let Some(submitted) = entry.submitted {
                self.stats.query_latency.observe(submitted.elapsed());
            }
            entry.reply.deliver(&scratch, entry.tag);
        }
        self.recycle(entry);
    }

    /// Gives a finished entry's buffers back to the pool.
    fn recycle(&self, entry: Inflight) {
        let mut st = self.state.borrow_mut();
        st.table.recycle(entry.query);
        if entry.wire.capacity() > 0 {
            st.table.recycle(entry.wire);
        }
    }

    /// Sends a health probe (". NS", RD=0: any answer at all shows the backend is alive) to
    /// a backend marked down.
    fn probe(self: &Rc<Self>, backend: usize) {
        const PROBE_QUERY: [u8; 17] = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        let mut st = self.state.borrow_mut();
        let buf = st.table.buffer_from(&PROBE_QUERY);
        // No retry elsewhere, no TCP fallback, no answer to anyone.
        let key = st.table.insert(Inflight {
            backend,
            attempts: MAX_BACKEND_ATTEMPTS,
            tcp_attempts: MAX_TCP_ATTEMPTS,
            probe: true,
            ..Inflight::new(Rc::new(NoReply), 0, buf, PROBE_QUERY.len())
        });
        if self.send_udp(&mut st, key, backend).is_err() {
            let entry = st.table.remove(key);
            drop(st);
            self.recycle(entry);
        }
    }
}

/// The backend a query goes straight to over TCP: the one the TCP memory holds for its question,
/// unless the entry expired or that backend is marked down. The lookup runs on every query
/// while the memory holds anything: a walk to the OPT record, one SipHash of the question and
/// an index probe; no allocation.
fn remembered_tcp_backend(st: &mut RelayState, query: &[u8], question_end: usize) -> Option<usize> {
    if st.tcp_memory.is_empty() {
        return None;
    }
    let (question, _) = st.tcp_memory.key_of_query(query, question_end);
    let backend = st.tcp_memory.get(question, Instant::now())?;
    (!st.backends.is_down(backend)).then_some(backend)
}

fn next_generation(st: &mut RelayState) -> u32 {
    st.next_generation = st.next_generation.wrapping_add(1);
    st.next_generation
}

/// The requester of a probe: nobody.
struct NoReply;

impl ReplyTo for NoReply {
    // Probes are never answered to anyone, nor counted.
    fn frontend(&self) -> Frontend {
        Frontend::Dot
    }
    fn deliver(&self, _answer: &[u8], _tag: u8) {}
    fn is_closed(&self) -> bool {
        true
    }
}

/// Sleeps until the earliest deadline (give or take `DEADLINE_SLACK_DIVISOR`), expires what is
/// due, repeats.
///
/// Almost every deadline in the queue is stale (its query was answered long before), and the
/// queue holds one per query in send order, so waking for each one at the front woke the worker
/// once per timer tick (1 ms) at any rate above 1,000 queries a second, for nothing: at 5,000 qps
/// an idle worker woke 850 times a second just to drop stale deadlines. Sleeping a slack of
/// 1/32 of the upstream timeout past the front (47 ms at the default 1.5 s) drops them in
/// batches, about 21 wake-ups a second, and a live query's timeout fires at most that much
/// late. Deadlines put in front at once (`expire_now`) still wake it at once.
async fn timer_loop(relay: Rc<Relay>) {
    let slack = relay.settings.upstream_timeout / DEADLINE_SLACK_DIVISOR;
    loop {
        match relay.expire(Instant::now()) {
            // A wake can also mean an earlier deadline went in front (`fail_later`).
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until((at + slack).into()) => {}
                    _ = relay.timer_wake.notified() => {}
                }
            }
            None => relay.timer_wake.notified().await,
        }
    }
}

/// Sends the queries queued in a round of the event loop, once the tasks that queued them
/// have run (a woken task goes to the back of the worker's run queue).
async fn send_loop(relay: Rc<Relay>) {
    loop {
        relay.send_wake.notified().await;
        // A socket whose buffer was full keeps its queries queued (see `udp::SEND_RETRY`).
        while relay.flush() {
            tokio::time::sleep(udp::SEND_RETRY).await;
        }
    }
}

/// Probes every backend marked down, once per `PROBE_INTERVAL`.
async fn probe_loop(relay: Rc<Relay>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let down: Vec<usize> = relay.state.borrow().backends.down().collect();
        for backend in down {
            relay.probe(backend);
        }
    }
}
