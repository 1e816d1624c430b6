//! The per-query access check (`access::rate::RateLimiter::allow_query`), single-threaded:
//!
//! - `hot_client`: one client asking over and over (its node stays at the head of its shard's
//!   recency list and in cache); the rate is high enough that every call refills and takes.
//! - `rotating_10000`: 10,000 clients in turn, all tracked (the default 65,536-client table),
//!   so each call finds a node that has left the cache; each client is under its limit.
//! - `client_key`: `ClientPrefix::key` alone, which the frontend pays per query before the
//!   check.
//! - `hot_client_two_threads`: the worst case of sharing the table between workers: two
//!   threads asking for the same client at once, so that every call contends for one shard's
//!   lock and its cache line moves between cores. The time is per call, each thread's calls
//!   counted (wall time of the pair / calls of one thread).
//!
//! The time passed in moves 1 µs per call, without reading the clock (the caller does that).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dotgate::access::prefix::{ClientKey, ClientPrefix};
use dotgate::access::rate::{RateLimiter, RateSettings, DEFAULT_TRACKED_CLIENTS};

const ROTATING: u32 = 10_000;

fn limiter() -> RateLimiter {
    RateLimiter::new(RateSettings {
        queries_per_second: Some(1_000_000),
        connections_per_second: Some(100),
        tracked_clients: DEFAULT_TRACKED_CLIENTS,
    })
}

fn client(n: u32) -> ClientKey {
    ClientPrefix::DEFAULT.key(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + n)))
}

fn bench_allow_query(c: &mut Criterion) {
    let mut group = c.benchmark_group("access/allow_query");
    let step = Duration::from_micros(1);

    let hot = limiter();
    let a = client(1);
    let mut now = Instant::now();
    group.bench_function("hot_client", |b| {
        b.iter(|| {
            now += step;
            hot.allow_query(black_box(a), now)
        })
    });

    let rotating = limiter();
    let clients: Vec<ClientKey> = (0..ROTATING).map(client).collect();
    let mut now = Instant::now();
    for &key in &clients {
        rotating.allow_query(key, now);
    }
    assert_eq!(rotating.tracked(), ROTATING as usize);
    let mut next = 0;
    group.bench_function("rotating_10000", |b| {
        b.iter(|| {
            now += step;
            next = (next + 1) % clients.len();
            rotating.allow_query(black_box(clients[next]), now)
        })
    });
    assert_eq!(rotating.tracked(), ROTATING as usize, "every client stayed tracked");

    let shared = limiter();
    group.bench_function("hot_client_two_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        let mut now = Instant::now();
                        for _ in 0..iters {
                            now += step;
                            black_box(shared.allow_query(black_box(a), now));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();

    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    c.bench_function("access/client_key", |b| b.iter(|| ClientPrefix::DEFAULT.key(black_box(ip))));
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_allow_query
}
criterion_main!(benches);
