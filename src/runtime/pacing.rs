//! Wake-up coalescing: when lingering a little before going back to sleep lets a worker handle
//! several events in one round instead of one wake-up each, it lingers.
//!
//! Measured on the 2-core lab at 5,000 qps over 100 connections, a wake-up per event cost more
//! than all the per-query work together (72 µs of CPU per query); lingering up to 500 µs cut
//! it to 35 µs for about half a millisecond of added latency.
//!
//! Lingering only pays when other clients' events arrive meanwhile. It costs a ping-pong
//! exchange (one client's handshake, a client that sends its next query only after the last
//! answer) a whole window per round trip and gathers nothing: the handshake rate fell by a
//! quarter and resumed TLS 1.2 handshakes by half. So the worker lingers only while events are
//! dense (its recent sleeps average under half the window) *and* lingering has been gathering:
//! the rounds that followed a linger handled, on average, at least `GATHERED_ENOUGH` events
//! (connection wake-ups, counted by `note_event`). When lingering stops paying, the worker
//! tries it again once every `PROBE_EVERY` rounds.
//!
//! Events counted that way cannot tell many clients from one client's next steps: a client
//! that resumes TLS 1.2 sessions one after another sends its Finished, its FIN and its next
//! ClientHello within one window, so lingering seemed to gather three events a round while it
//! halved that client's handshake rate (2,000/s against 4,600/s). A worker with fewer than
//! `MIN_CONNECTIONS` connections open serves at most a few such clients and never lingers;
//! the rates that lingering helps (thousands of queries per second) come over many more.
//!
//! Owns per-thread timestamps, counters and averages; never blocks for more than the window.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Events a round after a linger must handle on average (in 1/16ths) for lingering to go on.
const GATHERED_ENOUGH: u32 = 24;
/// While lingering does not pay, try it once in this many rounds.
const PROBE_EVERY: u32 = 64;
/// Open connections a worker needs before it lingers at all.
const MIN_CONNECTIONS: u32 = 8;

thread_local! {
    /// When this worker thread last woke up.
    static WOKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// When it last went to sleep.
    static SLEPT_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Moving average of how long its sleeps lasted, in nanoseconds (weight 1/8 per sleep).
    static AVERAGE_SLEEP_NS: Cell<u64> = const { Cell::new(u64::MAX / 16) };
    /// Events handled in the current round.
    static EVENTS: Cell<u32> = const { Cell::new(0) };
    /// The last sleep lingered first.
    static LINGERED: Cell<bool> = const { Cell::new(false) };
    /// Moving average of events handled in rounds that followed a linger, in 1/16ths.
    static GATHERED: Cell<u32> = const { Cell::new(GATHERED_ENOUGH) };
    /// Rounds since lingering was last tried.
    static SINCE_PROBE: Cell<u32> = const { Cell::new(0) };
    /// Client connections open on this worker.
    static CONNECTIONS: Cell<u32> = const { Cell::new(0) };
}

/// A client connection opened on this worker (once per connection, not per query).
pub fn connection_opened() {
    CONNECTIONS.with(|c| c.set(c.get().saturating_add(1)));
}

/// A client connection on this worker closed.
pub fn connection_closed() {
    CONNECTIONS.with(|c| c.set(c.get().saturating_sub(1)));
}

/// Counts one event (a connection woken by its socket or its answers) for the coalescing
/// decision. A thread-local increment: nothing on a worker without the hooks reads it.
#[inline]
pub fn note_event() {
    EVENTS.with(|e| e.set(e.get().saturating_add(1)));
}

/// Installs the coalescing hooks on a worker's runtime builder. A zero window disables it.
pub fn install(builder: &mut tokio::runtime::Builder, window: Duration) {
    if window.is_zero() {
        return;
    }
    builder.on_thread_unpark(|| {
        let now = Instant::now();
        WOKE_AT.with(|w| w.set(Some(now)));
        if let Some(slept) = SLEPT_AT.with(Cell::get) {
            let asleep = now.saturating_duration_since(slept).as_nanos().min(u64::MAX as u128 / 16) as u64;
            AVERAGE_SLEEP_NS.with(|avg| avg.set(avg.get() - avg.get() / 8 + asleep / 8));
        }
    });
    let dense_below_ns = (window.as_nanos() / 2) as u64;
    builder.on_thread_park(move || {
        let events = EVENTS.with(|e| e.replace(0));
        if LINGERED.with(Cell::get) {
            let sample = events.min(1024) * 16;
            GATHERED.with(|g| g.set(g.get() - g.get() / 8 + sample / 8));
        }
        let mut linger = false;
        if let Some(woke) = WOKE_AT.with(Cell::get) {
            let busy = woke.elapsed();
            let dense = AVERAGE_SLEEP_NS.with(Cell::get) < dense_below_ns;
            let pays = GATHERED.with(Cell::get) >= GATHERED_ENOUGH;
            let probe = SINCE_PROBE.with(|s| {
                s.set(s.get() + 1);
                s.get() >= PROBE_EVERY
            });
            let crowd = CONNECTIONS.with(Cell::get) >= MIN_CONNECTIONS;
            if busy < window && dense && crowd && (pays || probe) {
                if probe {
                    SINCE_PROBE.with(|s| s.set(0));
                    // A probe starts the average afresh from its own round, not the stale one.
                    GATHERED.with(|g| g.set(GATHERED_ENOUGH));
                }
                linger = true;
                // The next events are near: gather them with others into one round.
                std::thread::sleep(window - busy);
            }
        }
        LINGERED.with(|l| l.set(linger));
        SLEPT_AT.with(|s| s.set(Some(Instant::now())));
    });
}
