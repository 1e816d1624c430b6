//! Backend choice and health (`relay::backends::Backends`), paid on every send and every answer.
//!
//! - `pick(None)`: the least-loaded healthy backend for each new query, a scan over all
//!   backends from a rotating start; measured with 1, 2 and 8 backends carrying unequal loads,
//!   to see how the scan grows with the list.
//! - `answered`: called on every matching answer (clears the timeout count, stamps the time).
//!   The `Instant` is made outside the loop; the relay also pays an `Instant::now()` here
//!   (measured in the `inflight` bench).
//! - `timed_out`: called on every expired attempt. The backend goes down every third call, and
//!   is then brought back with `answered`, so the counters never run away over millions of
//!   iterations; one call in three therefore also pays an `answered`.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dotgate::relay::backends::{Backends, HealthChange};

fn backends(n: usize) -> Backends {
    let addrs: Vec<SocketAddr> = (0..n).map(|i| SocketAddr::from(([127, 0, 0, 1], 5300 + i as u16))).collect();
    let mut b = Backends::new(&addrs);
    // Unequal loads, so the comparison in the scan goes both ways.
    for i in 0..n {
        for _ in 0..(i * 5 + 3) % 7 {
            b.add_outstanding(i);
        }
    }
    b
}

fn bench_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("backends/pick_none");
    for n in [1usize, 2, 8] {
        let mut b = backends(n);
        assert!(b.pick(None).is_some());
        group.bench_function(BenchmarkId::new("backends", n), |bench| bench.iter(|| b.pick(black_box(None))));
    }
    group.finish();
}

fn bench_health(c: &mut Criterion) {
    let mut group = c.benchmark_group("backends/health");
    let now = Instant::now();

    let mut b = backends(2);
    group.bench_function("answered", |bench| {
        bench.iter(|| b.answered(black_box(1), black_box(now)) == HealthChange::None)
    });

    let mut b = backends(2);
    group.bench_function("timed_out", |bench| {
        bench.iter(|| {
            let change = b.timed_out(black_box(1));
            if change == HealthChange::WentDown {
                b.answered(1, now);
            }
            change
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_pick, bench_health
}
criterion_main!(benches);
