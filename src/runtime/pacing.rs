//! Wake-up pacing: a worker that is about to sleep lingers a little first, when that lets it
//! handle several events in one round instead of one wake-up each, and only then.
//!
//! What a wake-up costs: on the 2-core lab a worker that sleeps and is woken again spends about
//! 7 µs of its own CPU on it (the context switch in `epoll_wait`, most of it the virtual
//! machine's), and each round that sends to the backend or to a client also wakes that process.
//! Answering at once (window 0) costs 20 µs of CPU per query at 20,000 queries/s, two thirds of
//! it in wake-ups and one-datagram system calls; a fixed 500 µs linger halved that and added a
//! whole millisecond to every answer (a query waits for the round in which it arrived to end,
//! and again for the round in which its answer arrived).
//!
//! So the linger is sized to gather, not fixed: the worker keeps a running estimate of the rate
//! at which events (a connection woken by its socket or by its answers) arrive, and lingers for
//! the time in which `GATHER_TARGET` of them are expected, `GATHER_TARGET / rate`, but never
//! longer than `--coalesce-window`. A rate too low for that to fit in the window means the CPU
//! a linger would save is idle anyway: the worker does not linger at all and answers at once.
//! As the load rises the linger shortens (at 20,000 queries/s, 40,000 events/s, it is 150 µs),
//! so the latency it adds falls while what it gathers per wake-up stays the same.
//!
//! Why 6: at 20,000 queries/s on the lab (dnsperf, 100 connections, one worker), sized to
//! gather 2, 4, 6, 8 and 12 events, CPU per query was 21.5, 17.9, 15.2, 13.2 and 12.5 µs and
//! p50 0.30, 0.38, 0.46, 0.54 and 0.70 ms (window 0: 19.5 µs, 0.19 ms). Gathering 2 costs more
//! than it saves; 6 is the most CPU saved while p50 stays under half a millisecond. (Since the
//! relay stopped waking for stale deadlines, window 0 costs 16.7 µs there and 6 only 5% less,
//! so the default window is 0: no lingering unless an operator asks for it; see `config`.)
//!
//! Lingering only pays when other clients' events arrive meanwhile. A ping-pong exchange (one
//! client's handshake, a client that sends its next query only after the last answer) gathers
//! nothing by lingering and only waits. So the rounds that follow a linger are counted, and
//! while they handle fewer than `GATHERED_ENOUGH` events on average the worker stops lingering
//! and tries it again once every `PROBE_EVERY` rounds. A worker with fewer than
//! `MIN_CONNECTIONS` connections serves at most a few such clients and never lingers.
//!
//! Owns the per-thread pacing state and the hooks on the worker runtime's park and unpark; it
//! never blocks for longer than the window, and never touches a query.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::{bump, WorkerStats};

/// Events a linger is sized to gather.
const GATHER_TARGET: f64 = 6.0;
/// Events a round after a linger must handle on average for lingering to go on.
const GATHERED_ENOUGH: f64 = 2.0;
/// While lingering does not pay, try it once in this many rounds.
const PROBE_EVERY: u32 = 64;
/// Open connections a worker needs before it lingers at all.
const MIN_CONNECTIONS: u32 = 8;
/// The event rate is measured over spans at least this long (several rounds at any load that
/// lingering could help).
const RATE_SPAN: Duration = Duration::from_millis(2);
/// Weight of the newest span in the running event rate.
const RATE_WEIGHT: f64 = 0.25;
/// Weight of the newest round in the running count of what lingers gather.
const GATHER_WEIGHT: f64 = 0.125;

/// The pacing decision of one worker, apart from the runtime hooks that feed it (so that it
/// can be tested on a made-up timeline).
#[derive(Debug)]
pub struct Pacer {
    /// The longest linger (`--coalesce-window`).
    window: Duration,
    /// When the worker last woke up.
    woke_at: Option<Instant>,
    /// Events counted since `span_start`, for the rate.
    span_events: u32,
    span_start: Option<Instant>,
    /// Running estimate of events per second.
    rate: f64,
    /// The last sleep lingered first.
    lingered: bool,
    /// Running average of events handled in rounds that followed a linger.
    gathered: f64,
    /// Rounds since lingering was last tried while it did not pay.
    since_probe: u32,
}

impl Pacer {
    pub fn new(window: Duration) -> Pacer {
        Pacer {
            window,
            woke_at: None,
            span_events: 0,
            span_start: None,
            rate: 0.0,
            lingered: false,
            gathered: GATHER_TARGET,
            since_probe: 0,
        }
    }

    /// The worker woke up at `now`.
    pub fn woke(&mut self, now: Instant) {
        self.woke_at = Some(now);
    }

    /// The worker handled `events` since it woke and is about to sleep at `now`, with
    /// `connections` client connections open. Returns how long to linger first (zero: sleep at
    /// once).
    pub fn before_sleep(&mut self, now: Instant, events: u32, connections: u32) -> Duration {
        let start = *self.span_start.get_or_insert(now);
        self.span_events = self.span_events.saturating_add(events);
        let span = now.saturating_duration_since(start);
        if span >= RATE_SPAN {
            let rate = f64::from(self.span_events) / span.as_secs_f64();
            self.rate += RATE_WEIGHT * (rate - self.rate);
            self.span_events = 0;
            self.span_start = Some(now);
        }
        if self.lingered {
            self.gathered += GATHER_WEIGHT * (f64::from(events) - self.gathered);
        }
        self.lingered = false;
        let Some(woke) = self.woke_at else { return Duration::ZERO };
        if connections < MIN_CONNECTIONS || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        // Compared as seconds before it becomes a Duration: at a rate near zero the quotient is
        // far beyond what a Duration holds (and the rate is positive and finite here, so the
        // quotient is a number).
        let linger = GATHER_TARGET / self.rate;
        if linger > self.window.as_secs_f64() {
            return Duration::ZERO; // too few events: the CPU a linger would save is idle anyway
        }
        let linger = Duration::from_secs_f64(linger);
        if self.gathered < GATHERED_ENOUGH {
            self.since_probe += 1;
            if self.since_probe < PROBE_EVERY {
                return Duration::ZERO;
            }
            // A probe judges lingering afresh from its own round, not the stale average: one
            // round that gathers too little ends it.
            self.since_probe = 0;
            self.gathered = GATHERED_ENOUGH;
        }
        // The round's own work counts towards the linger.
        let busy = now.saturating_duration_since(woke);
        if busy >= linger {
            return Duration::ZERO;
        }
        self.lingered = true;
        linger - busy
    }
}

thread_local! {
    /// This worker thread's pacer (none on threads without the hooks).
    static PACER: RefCell<Option<Pacer>> = const { RefCell::new(None) };
    /// Events handled in the current round.
    static EVENTS: Cell<u32> = const { Cell::new(0) };
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

/// Counts one event (a connection woken by its socket or its answers) for the pacing decision.
/// A thread-local increment: nothing on a worker without the hooks reads it.
#[inline]
pub fn note_event() {
    EVENTS.with(|e| e.set(e.get().saturating_add(1)));
}

/// Installs the pacing hooks on a worker's runtime builder; they count wake-ups and lingers in
/// `stats`. A zero window (the default) installs only the wake-up count: no pacer, no clock
/// read per wake-up.
pub fn install(builder: &mut tokio::runtime::Builder, window: Duration, stats: Arc<WorkerStats>) {
    if window.is_zero() {
        builder.on_thread_unpark(move || bump(&stats.wakeups));
        return;
    }
    let lingers = stats.clone();
    builder.on_thread_unpark(move || {
        bump(&stats.wakeups);
        PACER.with(|p| {
            if let Some(pacer) = p.borrow_mut().as_mut() {
                pacer.woke(Instant::now());
            }
        });
    });
    builder.on_thread_park(move || {
        let events = EVENTS.with(|e| e.replace(0));
        let linger = PACER.with(|p| {
            let mut pacer = p.borrow_mut();
            let pacer = pacer.get_or_insert_with(|| Pacer::new(window));
            pacer.before_sleep(Instant::now(), events, CONNECTIONS.with(Cell::get))
        });
        if !linger.is_zero() {
            bump(&lingers.lingers);
            // The next events are near: gather them with others into one round.
            std::thread::sleep(linger);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(250);

    /// Runs `rounds` rounds of 10 µs each, with events arriving at `per_second` whatever the
    /// worker does (many independent clients); returns the lingers asked for.
    fn open_loop(pacer: &mut Pacer, start: &mut Instant, rounds: u32, per_second: f64) -> Vec<Duration> {
        let busy = Duration::from_micros(10);
        let gap = Duration::from_secs_f64(1.0 / per_second);
        let mut lingers = Vec::new();
        let mut next_event = *start;
        for _ in 0..rounds {
            // Sleep until the next event if none is waiting, then take every event arrived.
            *start = (*start).max(next_event);
            pacer.woke(*start);
            let mut events = 0;
            while next_event <= *start {
                events += 1;
                next_event += gap;
            }
            let linger = pacer.before_sleep(*start + busy, events, 100);
            lingers.push(linger);
            *start += busy + linger;
        }
        lingers
    }

    /// Runs `rounds` rounds of one client that sends its next query `rtt` after the last
    /// answer: one event a round, however long the worker lingers.
    fn ping_pong(pacer: &mut Pacer, start: &mut Instant, rounds: u32, rtt: Duration) -> Vec<Duration> {
        let busy = Duration::from_micros(10);
        let mut lingers = Vec::new();
        for _ in 0..rounds {
            pacer.woke(*start);
            let linger = pacer.before_sleep(*start + busy, 1, 100);
            lingers.push(linger);
            *start += (busy + rtt).max(busy + linger);
        }
        lingers
    }

    #[test]
    fn lingers_for_the_time_that_gathers_the_target() {
        let mut pacer = Pacer::new(WINDOW);
        let mut now = Instant::now();
        // 40,000 events/s.
        let lingers = open_loop(&mut pacer, &mut now, 4000, 40_000.0);
        let last = *lingers.last().unwrap();
        // 6 events at 40,000/s is 150 µs, of which the round's own 10 µs are already spent.
        assert!(last >= Duration::from_micros(110) && last <= Duration::from_micros(160), "linger {last:?}");
    }

    #[test]
    fn does_not_linger_when_events_are_too_sparse_for_the_window() {
        let mut pacer = Pacer::new(WINDOW);
        let mut now = Instant::now();
        // 10,000 events/s: the target would take 600 µs, more than the 250 µs window.
        let lingers = open_loop(&mut pacer, &mut now, 4000, 10_000.0);
        assert!(lingers.iter().skip(100).all(|l| l.is_zero()), "lingered at a low rate");
    }

    #[test]
    fn a_rate_that_decays_towards_zero_does_not_linger_or_panic() {
        let mut pacer = Pacer::new(WINDOW);
        let mut now = Instant::now();
        open_loop(&mut pacer, &mut now, 1000, 40_000.0);
        // Then only rounds with no connection event (timers, accepts): the running rate decays
        // geometrically towards zero without reaching it, and its reciprocal overflows a
        // Duration long before.
        for round in 0..5000 {
            pacer.woke(now);
            let linger = pacer.before_sleep(now + Duration::from_micros(5), 0, 100);
            assert!(round < 50 || linger.is_zero(), "lingered {linger:?} after {round} silent rounds");
            now += Duration::from_millis(3);
        }
    }

    #[test]
    fn never_lingers_past_the_window_or_with_a_zero_window() {
        let mut pacer = Pacer::new(WINDOW);
        let mut now = Instant::now();
        let lingers = open_loop(&mut pacer, &mut now, 4000, 30_000.0);
        assert!(lingers.iter().any(|l| !l.is_zero()));
        assert!(lingers.iter().all(|l| *l <= WINDOW));
        let mut off = Pacer::new(Duration::ZERO);
        let lingers = open_loop(&mut off, &mut now, 4000, 400_000.0);
        assert!(lingers.iter().all(|l| l.is_zero()));
    }

    #[test]
    fn stops_lingering_when_lingers_gather_nothing_and_probes_rarely() {
        let mut pacer = Pacer::new(WINDOW);
        let mut now = Instant::now();
        // Dense enough to try (one event every 30 µs), but every round handles one event
        // whatever the linger: a client whose next query waits for the last answer.
        let lingers = ping_pong(&mut pacer, &mut now, 6400, Duration::from_micros(20));
        let lingered = lingers.iter().skip(640).filter(|l| !l.is_zero()).count();
        assert!(lingered <= 5760 / PROBE_EVERY as usize + 1, "lingered {lingered} times in 5,760 rounds");
    }

    #[test]
    fn never_lingers_with_few_connections() {
        let mut pacer = Pacer::new(WINDOW);
        let mut now = Instant::now();
        for _ in 0..1000 {
            pacer.woke(now);
            assert!(pacer.before_sleep(now + Duration::from_micros(5), 4, MIN_CONNECTIONS - 1).is_zero());
            now += Duration::from_micros(20);
        }
    }
}
