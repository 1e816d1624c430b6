//! The in-flight table (step ⑤ to ⑦ of the data path): the bookkeeping every relayed query pays
//! between reading the query and writing its answer, with no I/O.
//!
//! - `query_life`: one query's whole life in `relay::inflight::InflightTable` as the relay
//!   drives it: `buffer_from` (copy of the query from the pool), `insert`, the random
//!   (socket, ID) pick probed with `udp_id_free` (with `StdRng`, as the relay does),
//!   `claim_udp_id`, `set_id`, `udp_owner` (the answer's lookup), `get` (the entry's question),
//!   `release_route`, `remove` and `recycle`. Measured with 0, 1,000 and 50,000 other queries in
//!   flight (their IDs claimed on the 4 default upstream sockets), since occupancy is what could
//!   make the slab or the ID pick slower. The entry reused is hot in cache here; in production
//!   it may not be.
//! - `buffer_pool`: the `buffer_from` / `recycle` round trip alone, next to a plain `to_vec` +
//!   drop for comparison (what the pool saves over the allocator, mimalloc as in the binary).
//! - `deadline_fifo`: the expiry queue. `relay` keeps a private `VecDeque` of
//!   (key, generation, deadline) in send order; every send pushes one (with `Instant::now()`)
//!   and the expiry loop pops it again, usually stale. That pattern is copied here (the type is
//!   private to `relay`), in steady state with 1,000 deadlines queued; the push includes the
//!   `Instant::now()` the relay reads per send, which is also measured alone.

mod common;

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dotgate::dns;
use dotgate::relay::inflight::{Inflight, InflightTable, Key, Route};
use dotgate::relay::ReplyTo;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The relay's default number of upstream UDP sockets per address family.
const UDP_SOCKETS: usize = 4;

/// A 44-byte query: www.example.com A with an EDNS OPT record.
const QUERY: &[u8] = b"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\
\x03www\x07example\x03com\x00\x00\x01\x00\x01\
\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
const QUESTION_END: usize = 33;

/// A requester that drops every answer.
struct NoReply;

impl ReplyTo for NoReply {
    fn frontend(&self) -> dotgate::stats::Frontend {
        dotgate::stats::Frontend::Dot
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        black_box(answer);
    }
}

fn entry(reply: &Rc<dyn ReplyTo>, query: Vec<u8>) -> Inflight {
    Inflight::new(reply.clone(), 0, query, QUESTION_END)
}

/// The relay's ID pick (`InflightTable::pick_free_udp_id`, over all sockets).
fn pick_id(table: &InflightTable, rng: &mut StdRng) -> (usize, u16) {
    table.pick_free_udp_id(rng, 0..UDP_SOCKETS).expect("a free ID")
}

/// A table with `occupancy` queries in flight, each holding an ID on one of the sockets.
fn table_with(occupancy: usize, reply: &Rc<dyn ReplyTo>, rng: &mut StdRng) -> InflightTable {
    let mut table = InflightTable::new(UDP_SOCKETS);
    for _ in 0..occupancy {
        let query = table.buffer_from(QUERY);
        let key = table.insert(entry(reply, query));
        let (socket, id) = pick_id(&table, rng);
        table.claim_udp_id(socket, id, key);
        let e = table.get_mut(key).unwrap();
        dns::set_id(&mut e.query, id);
        e.route = Route::Udp { socket: socket as u16 };
    }
    assert_eq!(table.len(), occupancy);
    table
}

/// One query from send to answer; returns the question length so nothing is optimised away.
fn query_life(table: &mut InflightTable, reply: &Rc<dyn ReplyTo>, rng: &mut StdRng, generation: u32) -> usize {
    let query = table.buffer_from(black_box(QUERY));
    let key: Key = table.insert(entry(reply, query));
    let (socket, id) = pick_id(table, rng);
    table.claim_udp_id(socket, id, key);
    let e = table.get_mut(key).unwrap();
    dns::set_id(&mut e.query, id);
    e.route = Route::Udp { socket: socket as u16 };
    e.attempts += 1;
    e.generation = generation;
    // The answer comes back.
    let owner = table.udp_owner(socket, black_box(id)).unwrap();
    let question_len = table.get(owner).unwrap().question().len();
    table.release_route(owner, true);
    let done = table.remove(owner);
    table.recycle(done.query);
    question_len
}

fn bench_query_life(c: &mut Criterion) {
    let reply: Rc<dyn ReplyTo> = Rc::new(NoReply);
    let mut group = c.benchmark_group("inflight/query_life");
    for occupancy in [0usize, 1_000, 50_000] {
        let mut rng = StdRng::seed_from_u64(7);
        let mut table = table_with(occupancy, &reply, &mut rng);
        let mut generation = 0u32;
        group.bench_function(BenchmarkId::new("occupancy", occupancy), |b| {
            b.iter(|| {
                generation = generation.wrapping_add(1);
                query_life(&mut table, &reply, &mut rng, generation)
            })
        });
        assert_eq!(table.len(), occupancy);
    }
    group.finish();
}

fn bench_buffer_pool(c: &mut Criterion) {
    let mut table = InflightTable::new(1);
    // Warm the pool with one buffer, as steady traffic leaves it.
    let buf = table.buffer_from(QUERY);
    table.recycle(buf);
    let mut group = c.benchmark_group("inflight/buffer_pool");
    group.bench_function("buffer_from_recycle", |b| {
        b.iter(|| {
            let buf = table.buffer_from(black_box(QUERY));
            black_box(&buf);
            table.recycle(buf);
        })
    });
    group.bench_function("to_vec_drop_baseline", |b| b.iter(|| black_box(black_box(QUERY).to_vec())));
    group.finish();
}

/// Copied from `relay` (private there): an expiry record, stale once the entry's generation
/// has moved on.
struct Deadline {
    key: Key,
    generation: u32,
    at: Instant,
}

fn bench_deadline_fifo(c: &mut Criterion) {
    const TIMEOUT: Duration = Duration::from_millis(1500);
    const QUEUED: Key = 1_000;
    // Steady state: 1,000 deadlines waiting, one pushed and one popped per query.
    let mut deadlines = VecDeque::with_capacity(1024);
    let start = Instant::now();
    for key in 0..QUEUED {
        deadlines.push_back(Deadline { key, generation: key, at: start + TIMEOUT });
    }
    // The expire loop reads the clock once per timer wake, not per deadline; it is past every
    // deadline here so that each iteration pops one.
    let now = start + Duration::from_secs(3600);
    let mut next_key = QUEUED;
    let mut group = c.benchmark_group("inflight/deadline_fifo");
    group.bench_function("push_back_pop_front_1000_queued", |b| {
        b.iter(|| {
            // Send: arm the deadline.
            next_key = next_key.wrapping_add(1);
            deadlines.push_back(Deadline { key: next_key, generation: next_key, at: Instant::now() + TIMEOUT });
            // Expire: the oldest is due; pop it and compare its generation (in the relay, with
            // the entry's, which has usually moved on because the query was answered).
            let front = deadlines.front().unwrap();
            if front.at > black_box(now) {
                return None;
            }
            let Deadline { key, generation, .. } = deadlines.pop_front().unwrap();
            Some(black_box(key) == black_box(generation))
        })
    });
    assert_eq!(deadlines.len(), QUEUED as usize);
    group.bench_function("instant_now", |b| b.iter(Instant::now));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_query_life, bench_buffer_pool, bench_deadline_fifo
}
criterion_main!(benches);
