//! Hostile clients (issue 7): slowloris handshakes, clients that stall after a frame length,
//! pipeliners that never read, cleartext and garbage on the TLS port, alerts and garbage
//! records mid-stream, and 9,500 connections held open. Each mix runs against dotgate in front
//! of a real Unbound while a well-behaved client measures its latency; the mix's connections
//! must be closed the way dotgate promises (and counted), the well-behaved client's answers
//! must all be right and its latency within the bound of `support::probe::Bound` (2× the quiet
//! baseline plus a floor for the noisy VM), and dotgate must end healthy: alive, nothing in
//! flight, nothing open, no panic, a quiet log.
//!
//! Unbound rather than the fake backend: every answer in these tests comes from a real
//! resolver, and its answers (local data, no recursion) take tens of microseconds, so it adds
//! no noise worth avoiding. The tests take turns (one dotgate at a time on a 2-core machine):
//! they measure latency, which tests running beside them would disturb.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::hostile::{self, Attack, Outcome, Timeouts};
use support::http::{get, sample};
use support::ports::free_addr;
use support::probe::{self, Bound, Latencies};
use support::{Dotgate, Unbound};

/// One test at a time: each measures latency, and a second dotgate under attack beside it would
/// be part of what it measures.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Short timeouts keep the tests fast; dotgate's defaults are 5 s and 10 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How late after its timeout a connection may be closed on a busy 2-core VM.
const LATE: Duration = Duration::from_millis(1500);
/// Probe queries per measurement, and the pause between them: one measurement spans about
/// two seconds of the attack.
const SAMPLES: usize = 400;
const GAP: Duration = Duration::from_millis(4);
/// Measurements under attack before the latency bound counts as broken. The attack runs on
/// through all of them; a dotgate that hostile clients slow down fails every one, while the
/// VM's neighbours (other builds and tests share its 2 cores) rarely spoil three in a row.
const WINDOWS: usize = 3;

/// dotgate (2 workers, short timeouts, the admin endpoint) in front of a real Unbound.
struct Gate {
    _unbound: Unbound,
    dotgate: Dotgate,
    admin: SocketAddr,
}

impl Gate {
    fn start() -> Gate {
        Gate::start_with_idle_timeout(IDLE_TIMEOUT)
    }

    fn start_with_idle_timeout(idle: Duration) -> Gate {
        // A resolver behind a busy proxy gets a socket buffer for bursts: dotgate may put 100
        // queries per connection in flight, and with the default 208 kB Unbound's one socket
        // drops a burst of more than about 200 (then other clients' queries are lost too and
        // answered SERVFAIL after the upstream timeout). Hostile clients or heavy honest ones,
        // that is the backend's capacity, not what these tests are about.
        let unbound = Unbound::start_with(&["so-rcvbuf: 4m"]);
        let admin = free_addr();
        let admin_arg = admin.to_string();
        let handshake = HANDSHAKE_TIMEOUT.as_secs_f64().to_string();
        let idle = idle.as_secs_f64().to_string();
        let args = [
            "--workers",
            "2",
            "--handshake-timeout",
            &handshake,
            "--idle-timeout",
            &idle,
            // Every client here comes from 127.0.0.1.
            "--max-connections-per-ip",
            "20000",
            "--admin",
            &admin_arg,
        ];
        let dotgate = Dotgate::start(&[unbound.addr], &args);
        let gate = Gate { _unbound: unbound, dotgate, admin };
        // The harness's readiness check is a TCP connect closed at once: a failed handshake
        // once dotgate takes it. Let that happen before any test reads its counters.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline
            && !(gate.metric(r#"dotgate_connections_accepted_total{frontend="dot"}"#) >= 1.0
                && gate.metric("dotgate_connections_open") == 0.0)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        gate
    }

    fn addr(&self) -> SocketAddr {
        self.dotgate.addr
    }

    fn metric(&self, series: &str) -> f64 {
        let page = get(self.admin, "/metrics").1;
        sample(&page, series).unwrap_or_else(|| panic!("no {series} in /metrics"))
    }

    fn counters(&self) -> Counters {
        let page = get(self.admin, "/metrics").1;
        let s = |series: &str| sample(&page, series).unwrap_or(0.0);
        Counters {
            handshake_timeouts: s(r#"dotgate_tls_handshake_failures_total{frontend="dot",reason="timeout"}"#),
            handshake_errors: s(r#"dotgate_tls_handshake_failures_total{frontend="dot",reason="error"}"#),
            closed_idle: s(r#"dotgate_connections_closed_total{frontend="dot",reason="idle"}"#),
            closed_client: s(r#"dotgate_connections_closed_total{frontend="dot",reason="client"}"#),
            closed_error: s(r#"dotgate_connections_closed_total{frontend="dot",reason="error"}"#),
            closed_protocol: s(r#"dotgate_connections_closed_total{frontend="dot",reason="protocol"}"#),
            queries: s(r#"dotgate_queries_received_total{frontend="dot"}"#),
            handshakes: ["TLSv1.2", "TLSv1.3"]
                .iter()
                .flat_map(|v| {
                    ["full", "resumed"]
                        .map(|k| format!(r#"dotgate_tls_handshakes_total{{frontend="dot",version="{v}",kind="{k}"}}"#))
                })
                .map(|series| s(&series))
                .sum(),
        }
    }

    fn log_lines(&self) -> usize {
        self.dotgate.stderr().lines().count()
    }

    fn rss_kib(&self) -> u64 {
        hostile::rss_kib(self.dotgate.pid())
    }

    /// Polls `series` until `ok` holds (gauges are refreshed once a second); panics after
    /// `within`.
    async fn wait_for(&self, series: &str, within: Duration, ok: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(series);
            if ok(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{series} is still {value} after {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// After the attack: dotgate is up and serving, has nothing in flight and no connection
    /// open, never panicked, and logged at most a few lines since `log_lines`.
    async fn assert_healthy(&mut self, log_lines: usize) {
        assert!(self.dotgate.process().try_exit().is_none(), "dotgate exited: {}", self.dotgate.stderr());
        self.wait_for("dotgate_queries_in_flight", Duration::from_secs(5), |v| v == 0.0).await;
        self.wait_for("dotgate_connections_open", Duration::from_secs(5), |v| v == 0.0).await;
        let after = probe_latency(self.addr(), 20).await;
        assert!(after.errors.is_empty(), "dotgate no longer answers well: {:?}", after.errors);
        let stderr = self.dotgate.stderr();
        assert!(!stderr.contains("panicked"), "dotgate panicked: {stderr}");
        let new_lines = self.log_lines() - log_lines;
        assert!(new_lines <= 5, "{new_lines} log lines during the attack (a flooded log): {stderr}");
    }
}

/// Counters read before and after a mix.
#[derive(Debug, Clone, Copy)]
struct Counters {
    handshake_timeouts: f64,
    handshake_errors: f64,
    closed_idle: f64,
    closed_client: f64,
    closed_error: f64,
    closed_protocol: f64,
    queries: f64,
    handshakes: f64,
}

impl Counters {
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            handshake_timeouts: self.handshake_timeouts - before.handshake_timeouts,
            handshake_errors: self.handshake_errors - before.handshake_errors,
            closed_idle: self.closed_idle - before.closed_idle,
            closed_client: self.closed_client - before.closed_client,
            closed_error: self.closed_error - before.closed_error,
            closed_protocol: self.closed_protocol - before.closed_protocol,
            queries: self.queries - before.queries,
            handshakes: self.handshakes - before.handshakes,
        }
    }
}

async fn probe_latency(addr: SocketAddr, samples: usize) -> Latencies {
    tokio::task::spawn_blocking(move || probe::measure(addr, samples, GAP)).await.unwrap()
}

/// The quiet baseline: dotgate with nothing else to do.
async fn baseline(gate: &Gate) -> Latencies {
    let quiet = probe_latency(gate.addr(), SAMPLES).await;
    eprintln!("baseline (quiet):   {}", quiet.summary());
    assert!(quiet.errors.is_empty(), "errors with nothing else going on: {:?}", quiet.errors);
    quiet
}

/// Measures under attack until one measurement is within the bound (at most `WINDOWS`); every
/// query of every measurement must be answered correctly. Returns the measurements.
async fn assert_latency_holds(gate: &Gate, baseline: &Latencies, what: &str) -> Vec<Latencies> {
    let bound = Bound::default();
    let mut windows = Vec::new();
    let mut verdicts = Vec::new();
    for window in 1..=WINDOWS {
        let attacked = probe_latency(gate.addr(), SAMPLES).await;
        eprintln!("under {what} ({window}): {}", attacked.summary());
        if !attacked.errors.is_empty() {
            // Where the answers went wrong, for the failure message.
            let page = get(gate.admin, "/metrics").1;
            let relay: Vec<&str> = page
                .lines()
                .filter(|l| !l.starts_with('#') && ["SERVFAIL", "timeouts", "dropped"].iter().any(|w| l.contains(w)))
                .collect();
            eprintln!("relay counters: {relay:#?}");
        }
        let errors = &attacked.errors[..attacked.errors.len().min(3)];
        assert!(attacked.errors.is_empty(), "the well-behaved client suffered under {what}: {errors:?}");
        let verdict = bound.check(baseline, &attacked);
        windows.push(attacked);
        match verdict {
            Ok(()) => return windows,
            Err(over) => verdicts.push(over),
        }
    }
    panic!("latency under {what} broke the bound in all {WINDOWS} measurements: {verdicts:#?}");
}

const TIMEOUTS: Timeouts = Timeouts { handshake: HANDSHAKE_TIMEOUT, idle: IDLE_TIMEOUT, late: LATE };

/// Starts each attack's lanes (each lane: one connection at a time, `pause` between them);
/// returns the stop switch and their handles.
fn launch(
    addr: SocketAddr,
    attacks: &[(Attack, usize, Duration)],
) -> (tokio::sync::watch::Sender<bool>, Vec<tokio::task::JoinHandle<Outcome>>) {
    let (stop_tx, stop) = hostile::stop_switch();
    let handles = attacks
        .iter()
        .map(|&(attack, lanes, pause)| {
            tokio::spawn(hostile::run(addr, attack, lanes, pause, attack.give_up(TIMEOUTS), stop.clone()))
        })
        .collect();
    (stop_tx, handles)
}

/// Stops the attacks, waits for their last connections to be judged, and checks every
/// connection of every attack against `Attack::expected_close`.
async fn finish(
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<Outcome>>,
) -> Vec<Outcome> {
    stop.send(true).unwrap();
    let mut outcomes = Vec::new();
    for handle in handles {
        let outcome = handle.await.unwrap();
        eprintln!("  {}", outcome.summary());
        outcomes.push(outcome);
    }
    for outcome in &outcomes {
        if let Err(why) = outcome.check(TIMEOUTS) {
            panic!("{:?}: {why}", outcome.attack);
        }
    }
    outcomes
}

fn closed(outcomes: &[Outcome]) -> usize {
    outcomes.iter().map(|o| o.closed.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_handshakes_are_closed_at_the_handshake_timeout() {
    let _turn = SERIAL.lock().await;
    let mut gate = Gate::start();
    let quiet = baseline(&gate).await;
    let before = gate.counters();
    let log_lines = gate.log_lines();

    let pause = Duration::from_millis(50);
    let (stop, handles) = launch(
        gate.addr(),
        &[
            (Attack::HelloTrickle { gap: Duration::from_millis(100) }, 60, pause),
            (Attack::HelloHalf, 30, pause),
            (Attack::HelloNoFinished, 30, pause),
            (Attack::Silent, 10, pause),
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_latency_holds(&gate, &quiet, "slowloris handshakes").await;
    let outcomes = finish(stop, handles).await;

    let counted = gate.counters().since(&before);
    let stalled = closed(&outcomes);
    eprintln!("counted: {counted:?} for {stalled} stalled handshakes");
    assert_eq!(counted.handshake_timeouts, stalled as f64, "every stalled handshake is counted as a timeout");
    assert_eq!(counted.handshake_errors, 0.0, "a slow but valid ClientHello is no error");
    gate.assert_healthy(log_lines).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_begun_and_abandoned_is_closed_at_the_idle_timeout() {
    let _turn = SERIAL.lock().await;
    let mut gate = Gate::start();
    let quiet = baseline(&gate).await;
    let before = gate.counters();
    let log_lines = gate.log_lines();

    let pause = Duration::from_millis(50);
    let (stop, handles) = launch(
        gate.addr(),
        &[
            (Attack::LengthThenStall, 20, pause),
            (Attack::PartialQueryThenStall, 20, pause),
            (Attack::PartialRecordThenStall, 20, pause),
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_latency_holds(&gate, &quiet, "abandoned frames").await;
    let outcomes = finish(stop, handles).await;

    for outcome in &outcomes {
        assert!(outcome.closed.iter().all(|c| c.clean), "{:?}: closed without close_notify", outcome.attack);
    }
    let stalled = closed(&outcomes);
    let counted = gate.counters().since(&before);
    eprintln!("counted: {counted:?} for {stalled} abandoned frames");
    assert_eq!(counted.closed_idle, stalled as f64, "every abandoned frame is counted as an idle close");
    gate.assert_healthy(log_lines).await;
}

/// Queries each never-reading client tries to pipeline: 5 MB of queries, whose padded answers
/// (47 MB) no buffer on the way holds.
const PIPELINED: usize = 100_000;
/// What dotgate may read from one client that takes no answers. It reads while fewer than
/// `--max-in-flight` (100) are outstanding and writes answers while the socket takes them, so
/// it reads what the kernel's buffers hold of answers (its send buffer, autotuned from the
/// client's MSS, about 100 kB for an Internet client's 1460; the client's 4 kB receive buffer)
/// plus one cap: about 330 queries measured (468-byte padded answers). A dotgate that kept
/// reading past the cap would read all 100,000.
const MAX_READ_PER_STALLED_CLIENT: f64 = 2_000.0;
/// RSS dotgate may gain while 40 such clients are stalled on it: each holds at most a read's
/// worth of queries (64 kB) and one batch of answers (47 kB), about 4.5 MB together, plus the
/// TLS state of 40 connections; measured 8 to 14 MB. Without the cap each would hold the
/// answers to everything it sent (hundreds of MB in all).
const MAX_RSS_GROWTH_KIB: u64 = 48 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeliners_that_never_read_are_throttled_and_then_closed() {
    let _turn = SERIAL.lock().await;
    let mut gate = Gate::start();
    let quiet = baseline(&gate).await;
    let before = gate.counters();
    let log_lines = gate.log_lines();
    let rss_before = gate.rss_kib();

    let lanes = 40;
    let attack = Attack::PipelineNeverRead { queries: PIPELINED };
    let (stop, handles) = launch(gate.addr(), &[(attack, lanes, Duration::from_millis(100))]);
    // RSS is watched throughout, for its peak.
    let pid = gate.dotgate.pid();
    let (peak_stop, mut peak_rx) = tokio::sync::oneshot::channel::<()>();
    let peak = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(hostile::rss_kib(pid));
            tokio::select! {
                _ = &mut peak_rx => return peak,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let windows = assert_latency_holds(&gate, &quiet, "never-reading pipeliners").await;
    let outcomes = finish(stop, handles).await;
    peak_stop.send(()).unwrap();
    let rss_peak = peak.await.unwrap();

    let clients = &outcomes[0].closed;
    let most_pushed = clients.iter().map(|c| c.pushed).max().unwrap();
    assert!(most_pushed < PIPELINED, "dotgate read all {PIPELINED} queries of a client that takes no answers");
    let counted = gate.counters().since(&before);
    let probe_queries: usize = windows.iter().map(|w| w.samples.len() + 1).sum();
    let per_client = (counted.queries - probe_queries as f64) / clients.len() as f64;
    eprintln!(
        "counted: {counted:?}; {} clients, at most {most_pushed} of {PIPELINED} queries got into a socket, {per_client:.0} read by dotgate on average",
        clients.len()
    );
    assert!(
        per_client <= MAX_READ_PER_STALLED_CLIENT,
        "dotgate read {per_client:.0} queries per client that takes no answers"
    );
    assert_eq!(
        counted.closed_error,
        clients.len() as f64,
        "every client that takes no answers is closed for it (counted as reason=\"error\")"
    );
    let growth = rss_peak.saturating_sub(rss_before);
    eprintln!("RSS {rss_before} KiB before, peak {rss_peak} KiB (+{growth} KiB) with {lanes} stalled pipeliners");
    assert!(growth <= MAX_RSS_GROWTH_KIB, "RSS grew {growth} KiB under {lanes} never-reading pipeliners");
    gate.assert_healthy(log_lines).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_http_and_random_bytes_are_closed_at_once() {
    let _turn = SERIAL.lock().await;
    let mut gate = Gate::start();
    let quiet = baseline(&gate).await;
    let before = gate.counters();
    let log_lines = gate.log_lines();

    let pause = Duration::from_millis(20);
    let (stop, handles) = launch(
        gate.addr(),
        &[
            (Attack::CleartextDns, 4, pause),
            (Attack::Http, 4, pause),
            (Attack::RandomBytes, 4, pause),
            (Attack::GarbageHello, 4, pause),
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_latency_holds(&gate, &quiet, "cleartext, HTTP and random bytes").await;
    let outcomes = finish(stop, handles).await;

    let refused = closed(&outcomes);
    let counted = gate.counters().since(&before);
    eprintln!("counted: {counted:?} for {refused} connections");
    assert_eq!(counted.handshake_errors, refused as f64, "every one is counted as a failed handshake");
    assert_eq!(counted.handshake_timeouts, 0.0, "none of them should have waited for the timeout");
    gate.assert_healthy(log_lines).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_garbage_mid_stream_close_only_that_connection() {
    let _turn = SERIAL.lock().await;
    let mut gate = Gate::start();
    let quiet = baseline(&gate).await;
    let before = gate.counters();
    let log_lines = gate.log_lines();

    // Each connection is a full handshake, which costs dotgate's worker real CPU (more in a
    // debug build): a few lanes, so that what is measured is the attack, not a handshake flood.
    let pause = Duration::from_millis(100);
    let (stop, handles) = launch(
        gate.addr(),
        &[
            (Attack::FatalAlert, 2, pause),
            (Attack::GarbageRecord, 2, pause),
            (Attack::PlaintextAlert, 2, pause),
            (Attack::CloseNotifyInFlight, 2, pause),
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_latency_holds(&gate, &quiet, "alerts and garbage records").await;
    let outcomes = finish(stop, handles).await;

    // close_notify with queries in flight is a clean goodbye: every answer, then close_notify.
    let goodbyes = &outcomes[3].closed;
    for closed in goodbyes {
        assert!(closed.clean && closed.answers == 8, "close_notify with 8 queries in flight: {closed:?}");
    }
    let broken = closed(&outcomes[..3]);
    let counted = gate.counters().since(&before);
    eprintln!("counted: {counted:?} for {broken} broken streams, {} goodbyes", goodbyes.len());
    // Each of them completed its handshake, often in the very read that brought the records
    // that broke the stream: a handshake counted, then a protocol close, no failed handshake.
    assert_eq!(counted.handshake_errors, 0.0, "streams broken after the handshake counted as failed handshakes");
    let all = broken + goodbyes.len();
    assert!(counted.handshakes >= all as f64, "{counted:?}: {all} completed handshakes not all counted");
    assert_eq!(counted.closed_protocol, broken as f64, "every broken stream is counted as a protocol close");
    assert!(counted.closed_client >= goodbyes.len() as f64, "goodbyes are counted as closed by the client");
    gate.assert_healthy(log_lines).await;
}

const CROWD: usize = 9_500;
/// RSS per held connection in the debug build: about 4.7 kB measured (`tests/idle_memory.rs`
/// guards against kept buffers); this says that 9,500 connections do not cost a multiple.
const MAX_CROWD_BYTES_PER_CONNECTION: u64 = 16_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_thousand_five_hundred_connections_held_open() {
    let _turn = SERIAL.lock().await;
    // This process holds one socket per client.
    let limit = hostile::raise_open_files();
    assert!(limit as usize > CROWD + 500, "the open-file limit {limit} is too low for {CROWD} clients");
    // Held longer than it takes to open them all and measure.
    let mut gate = Gate::start_with_idle_timeout(Duration::from_secs(300));
    let quiet = baseline(&gate).await;
    let log_lines = gate.log_lines();
    let rss_before = gate.rss_kib();

    let started = Instant::now();
    let crowd = hostile::idle_crowd(gate.addr(), CROWD, 32).await.expect("every client of the crowd is answered");
    let opened_in = started.elapsed();
    assert_eq!(crowd.len(), CROWD);
    let open = gate.metric("dotgate_connections_open");
    let rss = gate.rss_kib();
    let per_connection = rss.saturating_sub(rss_before) * 1024 / CROWD as u64;
    eprintln!(
        "{CROWD} connections opened and answered in {opened_in:.1?}; dotgate_connections_open {open}; RSS {rss_before} -> {rss} KiB ({per_connection} B each); {} open fds",
        hostile::open_fds(gate.dotgate.pid())
    );
    assert_eq!(open, CROWD as f64, "dotgate_connections_open with {CROWD} clients connected");
    assert!(per_connection <= MAX_CROWD_BYTES_PER_CONNECTION, "{per_connection} B per held connection");

    assert_latency_holds(&gate, &quiet, &format!("{CROWD} open connections")).await;
    drop(crowd);
    gate.assert_healthy(log_lines).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mix_at_once() {
    let _turn = SERIAL.lock().await;
    hostile::raise_open_files();
    let mut gate = Gate::start();
    let quiet = baseline(&gate).await;
    let log_lines = gate.log_lines();

    let pause = Duration::from_millis(100);
    let (stop, handles) = launch(
        gate.addr(),
        &[
            (Attack::HelloTrickle { gap: Duration::from_millis(100) }, 20, pause),
            (Attack::HelloNoFinished, 10, pause),
            (Attack::Silent, 2, pause),
            (Attack::LengthThenStall, 10, pause),
            (Attack::PartialRecordThenStall, 5, pause),
            (Attack::PipelineNeverRead { queries: PIPELINED }, 10, pause),
            (Attack::CleartextDns, 2, pause),
            (Attack::Http, 2, pause),
            (Attack::RandomBytes, 2, pause),
            (Attack::GarbageHello, 2, pause),
            (Attack::FatalAlert, 1, pause),
            (Attack::GarbageRecord, 1, pause),
            (Attack::PlaintextAlert, 1, pause),
            (Attack::CloseNotifyInFlight, 1, pause),
        ],
    );
    // Idle clients too, while the rest goes on: each is answered, then closed at the idle
    // timeout (this test is about everything together; the crowd alone is the 9,500 test).
    let crowd = hostile::idle_crowd(gate.addr(), 2_000, 8).await.expect("the idle crowd is answered");
    assert_latency_holds(&gate, &quiet, "every mix at once").await;
    finish(stop, handles).await;
    drop(crowd);
    gate.assert_healthy(log_lines).await;
}
