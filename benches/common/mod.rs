//! Settings shared by every bench: short runs, because these benches are for relative
//! comparison on a small, noisy machine, and `cargo bench` for everything should take minutes;
//! and the allocator the `dotgate` binary uses (`src/main.rs`), because buffer copies, the
//! query-buffer pool and rustls's per-record buffers are measured against it.

use std::time::Duration;

use criterion::Criterion;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One second of warm-up, three of measurement, 30 samples per bench.
pub fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}
