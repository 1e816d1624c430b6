//! A model check of the relay's in-flight bookkeeping, the body of the fuzz target `inflight`
//! and of its property test: a real `Relay` (real `InflightTable`, ID maps, deadline queue,
//! backend counts and `on_udp_datagram`) is driven through any sequence of queries from
//! several connections, answers (right, or wrong in one way), second copies and late answers,
//! strays, timeouts and connection closes, and checked after every step against a model.
//!
//! Invariants: an answer is delivered only to the connection whose query it answers, with that
//! query's ID and tag, exactly when the model says it matches; every drop is counted under its
//! reason; at most one delivery per query, and exactly one (answer or SERVFAIL) while its
//! connection is open; `len()` and the backends' outstanding counts equal the model's queries
//! in flight; each in-flight query holds exactly its (socket, ID) slot, and a freed slot is
//! marked answered exactly when an answer freed it. When everything has timed out the table,
//! the deadline queue and every ID map are empty.
//!
//! A child of `relay` so that it can drive the private deadline expiry; it only calls and
//! checks, and is built only with the `fuzzing` feature. Not covered: the TC=1 fallback to TCP
//! (answers here never set TC) and health probes.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ecs::EcsPrefix;
use super::inflight::{Key, Route};
use super::{ClientAddr, Relay, RelaySettings, ReplyTo};
use crate::config::BackendOptions;
use crate::dns;
use crate::stats::WorkerStats;

/// Client connections the ops choose from.
pub const CONNECTIONS: usize = 4;
/// Backends (all on loopback; nothing is ever sent to them: the relay's sender task never runs).
pub const BACKENDS: usize = 3;
/// Upstream UDP sockets.
pub const SOCKETS: usize = 2;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How an answer to a query in flight is wrong, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Twist {
    /// The right answer.
    None,
    /// The right answer with the name's case changed (still the same question, RFC 4343).
    CaseFlip,
    /// From another backend's address.
    WrongSource,
    /// Arrives on the other upstream socket.
    WrongSocket,
    /// QR=0.
    NotResponse,
    /// Another query type.
    OtherType,
}

const TWISTS: [Twist; 6] =
    [Twist::None, Twist::CaseFlip, Twist::WrongSource, Twist::WrongSocket, Twist::NotResponse, Twist::OtherType];

/// One step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Connection `conn` (mod `CONNECTIONS`; a closed one is replaced by a new one) sends a query.
    Query { conn: u8, qtype: u16 },
    /// An answer to the `pick`-th query in flight (mod their number) arrives, with `rcode`.
    Answer { pick: u8, twist: Twist, rcode: u8 },
    /// A correct answer for the `pick`-th (socket, ID) freed so far arrives again: a second
    /// copy of a delivered answer, or a late answer to an attempt that timed out.
    Replay { pick: u8 },
    /// A datagram nobody asked for.
    Stray { socket: u8, id: u16 },
    /// The `oldest` + 1 oldest deadlines pass.
    Timeout { oldest: u8 },
    /// Connection `conn` closes.
    Close { conn: u8 },
}

impl Op {
    /// Ops from fuzz bytes, 4 bytes each.
    pub fn decode(data: &[u8]) -> Vec<Op> {
        data.chunks(4)
            .map(|c| {
                let b = |i: usize| c.get(i).copied().unwrap_or(0);
                let word = u16::from_be_bytes([b(2), b(3)]);
                match b(0) % 6 {
                    0 => Op::Query { conn: b(1), qtype: word },
                    1 => Op::Answer { pick: b(1), twist: TWISTS[usize::from(b(2)) % TWISTS.len()], rcode: b(3) },
                    2 => Op::Replay { pick: b(1) },
                    3 => Op::Stray { socket: b(1), id: word },
                    4 => Op::Timeout { oldest: b(1) % 8 },
                    _ => Op::Close { conn: b(1) },
                }
            })
            .collect()
    }

    /// The bytes `decode` reads back as this op.
    pub fn encode(&self) -> [u8; 4] {
        let [hi, lo] = match self {
            Op::Query { qtype, .. } => qtype.to_be_bytes(),
            Op::Stray { id, .. } => id.to_be_bytes(),
            Op::Answer { twist, rcode, .. } => [TWISTS.iter().position(|t| t == twist).unwrap_or(0) as u8, *rcode],
            _ => [0, 0],
        };
        match *self {
            Op::Query { conn, .. } => [0, conn, hi, lo],
            Op::Answer { pick, .. } => [1, pick, hi, lo],
            Op::Replay { pick } => [2, pick, 0, 0],
            Op::Stray { socket, .. } => [3, socket, hi, lo],
            Op::Timeout { oldest } => [4, oldest, 0, 0],
            Op::Close { conn } => [5, conn, 0, 0],
        }
    }
}

/// A client connection: records what the relay delivers to it.
#[derive(Default)]
struct Conn {
    closed: Cell<bool>,
    got: RefCell<Vec<(Vec<u8>, u8)>>,
}

impl ReplyTo for Conn {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dot
    }

    fn deliver(&self, answer: &[u8], tag: u8) {
        self.got.borrow_mut().push((answer.to_vec(), tag));
    }
    fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempt {
    key: Key,
    socket: usize,
    id: u16,
    backend: usize,
}

struct Query {
    conn: Rc<Conn>,
    /// The question section (unique per query: the name holds its index).
    question: Vec<u8>,
    client_id: u16,
    tag: u8,
    /// In flight, and where; `None` once answered, failed or dropped.
    attempt: Option<Attempt>,
    /// Backends tried so far (1, or 2 after a retry).
    attempts: u8,
    /// Answers (or SERVFAILs) delivered to its connection so far.
    delivered: usize,
}

/// Who last held a freed (socket, ID) slot, and whether an answer freed it.
#[derive(Debug, Clone, Copy)]
struct Freed {
    query: usize,
    answered: bool,
    backend: usize,
}

/// A delivery the model expects from one step.
#[derive(Debug, PartialEq, Eq)]
struct Delivery {
    query: usize,
    answer: Vec<u8>,
}

fn backend_addr(index: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 5300 + index as u16))
}

/// Drop counters, in the order of `DropReason`.
fn drops(stats: &WorkerStats) -> [u64; 5] {
    [
        stats.dropped_garbage.get(),
        stats.dropped_unknown_id.get(),
        stats.dropped_duplicate.get(),
        stats.dropped_wrong_source.get(),
        stats.dropped_question_mismatch.get(),
    ]
}

const GARBAGE: usize = 0;
const UNKNOWN_ID: usize = 1;
const DUPLICATE: usize = 2;
const WRONG_SOURCE: usize = 3;
const QUESTION_MISMATCH: usize = 4;

struct Model {
    relay: Rc<Relay>,
    stats: Arc<WorkerStats>,
    conns: Vec<Rc<Conn>>,
    queries: Vec<Query>,
    freed: BTreeMap<(usize, u16), Freed>,
}

/// Runs the ops from fuzz bytes (the `inflight` fuzz target).
pub fn run_bytes(data: &[u8]) {
    run(&Op::decode(data));
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
}

/// Runs `ops` against a fresh relay and checks the model after each, then lets every deadline
/// pass and checks that nothing is left.
pub fn run(ops: &[Op]) {
    RUNTIME.with(|rt| {
        let _entered = rt.enter();
        let stats = Arc::new(WorkerStats::new(BACKENDS));
        let settings = RelaySettings {
            backends: (0..BACKENDS).map(backend_addr).collect(),
            upstream_timeout: UPSTREAM_TIMEOUT,
            upstream_sockets: SOCKETS,
            worker: 0,
            // On, as served; never filled here (no answer sets TC), so every lookup misses.
            tcp_memory_entries: crate::config::DEFAULT_TCP_MEMORY_ENTRIES,
            tcp_memory_ttl: crate::config::DEFAULT_TCP_MEMORY_TTL,
            // One plain backend, one told the client by a PROXY header, one by the header and
            // ECS: each attempt is built for its backend (`Relay::write_wire`), and the model's
            // answers (no OPT record) come back as they are whatever the backend.
            backend_options: vec![
                BackendOptions::default(),
                BackendOptions { proxy_protocol: true, ecs: None },
                BackendOptions { proxy_protocol: true, ecs: Some(EcsPrefix { v4: 24, v6: 56 }) },
            ],
        };
        let relay = Relay::new(settings, stats.clone()).expect("upstream sockets on loopback");
        let mut model = Model {
            relay,
            stats,
            conns: (0..CONNECTIONS).map(|_| Rc::new(Conn::default())).collect(),
            queries: Vec::new(),
            freed: BTreeMap::new(),
        };
        for (step, op) in ops.iter().enumerate() {
            model.step(*op, step);
            model.check(step);
        }
        model.finish();
    });
}

impl Model {
    fn in_flight(&self) -> impl Iterator<Item = (usize, Attempt)> + '_ {
        self.queries.iter().enumerate().filter_map(|(i, q)| q.attempt.map(|a| (i, a)))
    }

    fn holder(&self, socket: usize, id: u16) -> Option<usize> {
        self.in_flight().find(|(_, a)| a.socket == socket && a.id == id).map(|(i, _)| i)
    }

    /// Deliveries so far, per connection, to tell a step's new ones.
    fn delivered_counts(&self) -> Vec<(Rc<Conn>, usize)> {
        let mut all: Vec<Rc<Conn>> = self.conns.clone();
        for q in &self.queries {
            if !all.iter().any(|c| Rc::ptr_eq(c, &q.conn)) {
                all.push(q.conn.clone());
            }
        }
        all.into_iter().map(|c| (c.clone(), c.got.borrow().len())).collect()
    }

    /// The (connection, delivery) pairs made since `before`, matched to their queries: each
    /// must be for a query of the connection it went to, with that query's ID and tag.
    fn new_deliveries(&mut self, before: &[(Rc<Conn>, usize)], step: usize) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (conn, seen) in before {
            for (answer, tag) in conn.got.borrow()[*seen..].iter() {
                let end = dns::question_end(answer).expect("a delivered answer has a question");
                let question = &answer[dns::HEADER_LEN..end];
                let index = self
                    .queries
                    .iter()
                    .position(|q| dns::same_question(&q.question, question))
                    .unwrap_or_else(|| panic!("step {step}: delivered an answer nobody asked for"));
                let q = &mut self.queries[index];
                assert!(Rc::ptr_eq(&q.conn, conn), "step {step}: query {index}'s answer went to another connection");
                assert_eq!(dns::id(answer), q.client_id, "step {step}: the client's ID was not restored");
                assert_eq!(*tag, q.tag, "step {step}: the tag was not handed back");
                q.delivered += 1;
                assert_eq!(q.delivered, 1, "step {step}: query {index} got a second answer");
                out.push(Delivery { query: index, answer: answer.clone() });
            }
        }
        // A step's deliveries, in the model's order (by query; at most one each).
        out.sort_by_key(|d| d.query);
        out
    }

    fn step(&mut self, op: Op, step: usize) {
        let before = self.delivered_counts();
        let drops_before = drops(&self.stats);
        let mut expected = Vec::new();
        let mut expected_drop = None;
        match op {
            Op::Query { conn, qtype } => self.query(usize::from(conn) % CONNECTIONS, qtype, step),
            Op::Answer { pick, twist, rcode } => {
                let flying: Vec<usize> = self.in_flight().map(|(i, _)| i).collect();
                if flying.is_empty() {
                    expected_drop = Some(self.stray(0, u16::from(rcode) << 8 | u16::from(pick)));
                } else {
                    let index = flying[usize::from(pick) % flying.len()];
                    let (delivery, drop) = self.answer(index, twist, rcode);
                    expected.extend(delivery);
                    expected_drop = drop;
                }
            }
            Op::Replay { pick } => {
                if let Some((&(socket, id), &freed)) =
                    self.freed.iter().nth(usize::from(pick) % self.freed.len().max(1))
                {
                    expected_drop = Some(self.replay(socket, id, freed));
                }
            }
            Op::Stray { socket, id } => expected_drop = Some(self.stray(usize::from(socket) % SOCKETS, id)),
            Op::Timeout { oldest } => expected = self.timeout(usize::from(oldest) + 1, step),
            Op::Close { conn } => self.conns[usize::from(conn) % CONNECTIONS].closed.set(true),
        }
        let got = self.new_deliveries(&before, step);
        assert_eq!(got, expected, "step {step} ({op:?}): deliveries differ from the model's");
        let drops_after = drops(&self.stats);
        let mut want = drops_before;
        if let Some(reason) = expected_drop {
            want[reason] += 1;
        }
        assert_eq!(
            drops_after, want,
            "step {step} ({op:?}): drop counters (garbage, unknown, duplicate, source, question)"
        );
    }

    fn query(&mut self, conn: usize, qtype: u16, step: usize) {
        if self.conns[conn].closed.get() {
            self.conns[conn] = Rc::new(Conn::default());
        }
        let index = self.queries.len();
        let mut question = Vec::new();
        let label = format!("q{index}");
        question.push(label.len() as u8);
        question.extend_from_slice(label.as_bytes());
        question.extend_from_slice(b"\x05Model\x04test\x00");
        question.extend_from_slice(&qtype.to_be_bytes());
        question.extend_from_slice(&[0, 1]);
        let client_id = (index as u16).wrapping_mul(7919) ^ 0x5a5a;
        let tag = index as u8;
        let mut msg = client_id.to_be_bytes().to_vec();
        msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(&question);
        let reply: Rc<dyn ReplyTo> = self.conns[conn].clone();
        let client = ClientAddr {
            peer: SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1 + conn as u8), 40_000 + conn as u16)),
            local: SocketAddr::from((Ipv4Addr::LOCALHOST, 853)),
            transport: super::proxy_v2::Transport::Stream,
        };
        self.relay.submit(&msg, msg.len(), reply, tag, Some(client));
        let attempt = self.find(&question).unwrap_or_else(|| panic!("step {step}: a submitted query is not in flight"));
        let st = self.relay.state.borrow();
        let entry = st.table.get(attempt.key).expect("entry");
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.client_id, client_id);
        assert_eq!(entry.tag, tag);
        drop(st);
        self.freed.remove(&(attempt.socket, attempt.id));
        self.queries.push(Query {
            conn: self.conns[conn].clone(),
            question,
            client_id,
            tag,
            attempt: Some(attempt),
            attempts: 1,
            delivered: 0,
        });
    }

    /// Where the query with `question` is in flight in the real table, if it is.
    fn find(&self, question: &[u8]) -> Option<Attempt> {
        let st = self.relay.state.borrow();
        let mut found = st.table.iter().filter(|(_, e)| !e.probe && e.question() == question);
        let (key, entry) = found.next()?;
        assert!(found.next().is_none(), "a query is in the table twice");
        let Route::Udp { socket } = entry.route else { panic!("a query went to TCP") };
        Some(Attempt { key, socket: usize::from(socket), id: dns::id(&entry.query), backend: entry.backend })
    }

    /// An answer datagram for `question` under `id`.
    fn answer_bytes(question: &[u8], id: u16, rcode: u8) -> Vec<u8> {
        let mut a = id.to_be_bytes().to_vec();
        a.extend_from_slice(&[0x81, 0x80 | (rcode & 0x0f), 0, 1, 0, 1, 0, 0, 0, 0]);
        a.extend_from_slice(question);
        a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        a
    }

    /// What the relay must make of a well-formed answer for a question nobody else asked,
    /// arriving on (`socket`, `id`) from `src`: the first thing wrong with it.
    fn predicted_drop(&self, socket: usize, id: u16, src: SocketAddr) -> usize {
        match self.holder(socket, id) {
            Some(other) => {
                let backend = self.queries[other].attempt.expect("in flight").backend;
                if backend_addr(backend) != src {
                    WRONG_SOURCE
                } else {
                    QUESTION_MISMATCH
                }
            }
            None if self.freed.get(&(socket, id)).is_some_and(|f| f.answered) => DUPLICATE,
            None => UNKNOWN_ID,
        }
    }

    fn answer(&mut self, index: usize, twist: Twist, rcode: u8) -> (Option<Delivery>, Option<usize>) {
        let attempt = self.queries[index].attempt.expect("in flight");
        let mut question = self.queries[index].question.clone();
        let mut socket = attempt.socket;
        let mut src = backend_addr(attempt.backend);
        match twist {
            Twist::None | Twist::NotResponse => {}
            Twist::CaseFlip => {
                // The name's letters only (length octets are below 64: never letters).
                let name_len = question.len() - 4;
                question[..name_len].iter_mut().filter(|b| b.is_ascii_alphabetic()).for_each(|b| *b ^= 0x20);
            }
            Twist::WrongSource => src = backend_addr((attempt.backend + 1) % BACKENDS),
            Twist::WrongSocket => socket = (socket + 1) % SOCKETS,
            Twist::OtherType => {
                let at = question.len() - 4;
                question[at] ^= 0x80;
            }
        }
        let mut datagram = Self::answer_bytes(&question, attempt.id, rcode);
        if twist == Twist::NotResponse {
            datagram[2] &= !0x80;
        }
        let sent = datagram.clone();
        self.relay.on_udp_datagram(socket, &mut datagram, src);
        match twist {
            Twist::None | Twist::CaseFlip => {
                let mut answer = sent;
                answer[..2].copy_from_slice(&self.queries[index].client_id.to_be_bytes());
                self.queries[index].attempt = None;
                self.freed.insert(
                    (attempt.socket, attempt.id),
                    Freed { query: index, answered: true, backend: attempt.backend },
                );
                (Some(Delivery { query: index, answer }), None)
            }
            Twist::WrongSource => (None, Some(WRONG_SOURCE)),
            Twist::NotResponse => (None, Some(GARBAGE)),
            Twist::OtherType => (None, Some(QUESTION_MISMATCH)),
            Twist::WrongSocket => (None, Some(self.predicted_drop(socket, attempt.id, src))),
        }
    }

    fn replay(&mut self, socket: usize, id: u16, freed: Freed) -> usize {
        let src = backend_addr(freed.backend);
        let expected = self.predicted_drop(socket, id, src);
        let mut datagram = Self::answer_bytes(&self.queries[freed.query].question, id, 0);
        self.relay.on_udp_datagram(socket, &mut datagram, src);
        expected
    }

    fn stray(&mut self, socket: usize, id: u16) -> usize {
        let src = backend_addr(usize::from(id) % BACKENDS);
        let expected = self.predicted_drop(socket, id, src);
        let mut datagram = Self::answer_bytes(b"\x05stray\x05model\x04test\x00\x00\x01\x00\x01", id, 0);
        self.relay.on_udp_datagram(socket, &mut datagram, src);
        expected
    }

    /// Lets the `n` oldest deadlines pass: each query whose current attempt they time out is
    /// retried on another backend, or answered SERVFAIL (nothing, if its connection closed).
    fn timeout(&mut self, n: usize, step: usize) -> Vec<Delivery> {
        let st = self.relay.state.borrow();
        let Some(at) = st.deadlines.get(n.min(st.deadlines.len()).wrapping_sub(1)).map(|d| d.at) else {
            return Vec::new();
        };
        let expiring: Vec<Key> = st
            .deadlines
            .iter()
            .take_while(|d| d.at <= at)
            .filter(|d| st.table.get(d.key).is_some_and(|e| e.generation == d.generation))
            .map(|d| d.key)
            .collect();
        drop(st);
        self.relay.expire(at);
        let mut expected = Vec::new();
        for key in expiring {
            let index = self
                .in_flight()
                .find(|(_, a)| a.key == key)
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("step {step}: a deadline of an entry the model has not in flight"));
            let old = self.queries[index].attempt.expect("in flight");
            self.freed.insert((old.socket, old.id), Freed { query: index, answered: false, backend: old.backend });
            let question = self.queries[index].question.clone();
            match self.find(&question) {
                Some(new) => {
                    let q = &mut self.queries[index];
                    assert!(!q.conn.closed.get(), "step {step}: a query of a closed connection was retried");
                    assert_eq!(q.attempts, 1, "step {step}: retried more than once");
                    assert_ne!(new.backend, old.backend, "step {step}: retried on the same backend");
                    q.attempts = 2;
                    q.attempt = Some(new);
                    self.freed.remove(&(new.socket, new.id));
                }
                None => {
                    let q = &mut self.queries[index];
                    q.attempt = None;
                    if !q.conn.closed.get() {
                        let mut answer = Vec::new();
                        let mut query = q.client_id.to_be_bytes().to_vec();
                        query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
                        query.extend_from_slice(&q.question);
                        dns::write_local_answer(&query, q.client_id, dns::rcode::SERVFAIL, &mut answer);
                        expected.push(Delivery { query: index, answer });
                    }
                }
            }
        }
        expected.sort_by_key(|d| d.query);
        expected
    }

    /// The table, the backends' counts and the ID maps agree with the model.
    fn check(&self, step: usize) {
        let st = self.relay.state.borrow();
        let flying: Vec<(usize, Attempt)> = self.in_flight().collect();
        assert_eq!(st.table.len(), flying.len(), "step {step}: len() differs from the model's queries in flight");
        let outstanding: u32 = st.backends.iter().map(|b| b.outstanding).sum();
        assert_eq!(outstanding as usize, flying.len(), "step {step}: backends' outstanding counts");
        for (index, a) in &flying {
            let q = &self.queries[*index];
            let entry = st.table.get(a.key).unwrap_or_else(|| panic!("step {step}: query {index} left the table"));
            assert_eq!(entry.question(), &q.question[..]);
            assert_eq!(dns::id(&entry.query), a.id);
            assert_eq!(entry.backend, a.backend);
            assert!(matches!(entry.route, Route::Udp { socket } if usize::from(socket) == a.socket));
            assert_eq!(st.table.udp_owner(a.socket, a.id), Some(a.key), "step {step}: query {index}'s ID slot");
        }
        for (&(socket, id), freed) in &self.freed {
            assert_eq!(st.table.udp_owner(socket, id), None, "step {step}: a freed ID still has an owner");
            assert_eq!(
                st.table.udp_id_answered(socket, id),
                freed.answered,
                "step {step}: ID {id} on socket {socket} freed by {}",
                if freed.answered { "an answer" } else { "a timeout" }
            );
        }
    }

    /// Every deadline passes: each query in flight is retried once more or fails; then nothing
    /// is left anywhere, and every query of a connection still open got exactly one answer.
    fn finish(mut self) {
        // Round after round, every deadline in the queue passes (a retry's comes a round later).
        let mut round = 0;
        while self.in_flight().next().is_some() {
            round += 1;
            assert!(round <= 3, "queries still in flight after {round} rounds of timeouts");
            let before = self.delivered_counts();
            let expected = self.timeout(usize::MAX, usize::MAX);
            let got = self.new_deliveries(&before, usize::MAX);
            assert_eq!(got, expected, "the last timeouts: deliveries differ from the model's");
            assert!(got.iter().all(|d| dns::rcode(&d.answer) == dns::rcode::SERVFAIL));
            self.check(usize::MAX);
        }
        // Deadlines of queries answered meanwhile are dropped when they pass.
        let before = self.delivered_counts();
        self.relay.expire(Instant::now() + UPSTREAM_TIMEOUT * 4);
        assert!(self.new_deliveries(&before, usize::MAX).is_empty(), "a delivery with nothing in flight");
        let st = self.relay.state.borrow();
        assert!(st.table.is_empty(), "{} entries left in the table", st.table.len());
        assert!(st.deadlines.is_empty(), "deadlines left");
        assert!(st.backends.iter().all(|b| b.outstanding == 0), "outstanding counts left");
        for (index, q) in self.queries.iter().enumerate() {
            assert!(q.delivered <= 1);
            if !q.conn.closed.get() {
                assert_eq!(q.delivered, 1, "query {index} of an open connection got no answer");
            }
        }
        // Every slot of every ID map: free, or marked answered exactly where the model says the
        // last holder was answered. `check` compared each slot the model knows; these counts
        // show there is no other.
        self.check(usize::MAX);
        let answered = self.freed.values().filter(|f| f.answered).count();
        assert_eq!(st.table.udp_slot_counts(), (0, answered), "(held, answered) ID slots at the end");
    }
}
