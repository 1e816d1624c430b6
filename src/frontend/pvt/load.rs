//! `dotgate pvt load`: a load generator for the gateway (dnsperf cannot sign with SIG(0)), in
//! dnsperf's manner and with `dotgate dnsenc load`'s summary, so that the load-test scripts read
//! both alike. The queries are signed and encrypted before the run (the gateway keeps no replay
//! state, so it does the same work for each), then sent in turn over UDP by independent clients,
//! each with its own socket and up to [`WINDOW`] queries in flight, under an optional global
//! rate, for a set time.
//!
//! Not `dnsenc load`'s engine: that one is built around DNSENC's envelopes (a fresh key per
//! query, TC=1 asked again over TCP with a new envelope); this one only replays prepared
//! messages and matches answers by ID, which is all a signed query needs.
//!
//! Never: sends to anything but the one server, sends after its time is up, or waits for a query
//! longer than [`QUERY_TIMEOUT`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::LocalSet;
use tokio::time::{sleep_until, Instant};

use crate::frontend::dnsenc::tools::Report;

/// Queries each client keeps in flight at most.
pub const WINDOW: usize = 10;
/// A query unanswered this long after it was sent is lost.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A run: prepared queries (each a whole message with its own ID) and how to send them.
pub struct Load {
    pub server: SocketAddr,
    pub queries: Vec<Vec<u8>>,
    pub clients: usize,
    pub qps: Option<u32>,
    pub duration: Duration,
}

#[derive(Default)]
struct Stats {
    sent: u64,
    completed: u64,
    lost: u64,
    truncated: u64,
    rcodes: BTreeMap<u8, u64>,
    latencies: Vec<Duration>,
    query_bytes: u64,
    answer_bytes: u64,
    last_settled: Option<Instant>,
}

struct Shared {
    server: SocketAddr,
    queries: Vec<Vec<u8>>,
    next: Cell<usize>,
    interval: Option<Duration>,
    next_slot: Cell<Instant>,
    end: Instant,
    stats: RefCell<Stats>,
}

impl Shared {
    fn settle(&self, stats: &mut Stats, at: Instant) {
        stats.last_settled = Some(stats.last_settled.map_or(at, |last| last.max(at)));
    }
}

/// Runs the load and returns the summary (a network error of a client is the report's failure).
pub fn run(load: Load) -> Report {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Report { text: String::new(), failure: Some(format!("cannot start a runtime: {e}")) },
    };
    let clients = load.clients;
    let (stats, run_time, errors) = LocalSet::new().block_on(&runtime, async {
        let start = Instant::now();
        let shared = Rc::new(Shared {
            server: load.server,
            queries: load.queries,
            next: Cell::new(0),
            interval: load.qps.map(|qps| Duration::from_secs_f64(1.0 / f64::from(qps.max(1)))),
            next_slot: Cell::new(start),
            end: start + load.duration,
            stats: RefCell::new(Stats::default()),
        });
        let tasks: Vec<_> = (0..clients).map(|_| tokio::task::spawn_local(client(shared.clone()))).collect();
        let errors = crate::frontend::dnsenc::load::client_errors(tasks).await;
        let stats = shared.stats.take();
        let run_time = stats.last_settled.unwrap_or(shared.end).max(shared.end).duration_since(start);
        (stats, run_time, errors)
    });
    let failure = errors.first().map(|e| format!("{} of {clients} clients stopped: {e}", errors.len()));
    Report { text: summary(load.server, clients, load.qps, load.duration, &stats, run_time), failure }
}

async fn client(shared: Rc<Shared>) -> Result<(), String> {
    let bind: SocketAddr = if shared.server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("an address");
    let socket = UdpSocket::bind(bind).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(shared.server).await.map_err(|e| format!("cannot reach {}: {e}", shared.server))?;
    let mut in_flight: HashMap<u16, (Instant, usize)> = HashMap::with_capacity(WINDOW);
    let mut slot: Option<Instant> = None;
    let mut buf = vec![0u8; 65535];
    loop {
        let now = Instant::now();
        {
            let mut stats = shared.stats.borrow_mut();
            in_flight.retain(|_, (sent, _)| {
                let alive = *sent + QUERY_TIMEOUT > now;
                if !alive {
                    stats.lost += 1;
                    shared.settle(&mut stats, *sent + QUERY_TIMEOUT);
                }
                alive
            });
        }
        let sending = now < shared.end;
        if !sending && in_flight.is_empty() {
            return Ok(());
        }
        while sending && in_flight.len() < WINDOW {
            if let Some(interval) = shared.interval {
                let at = *slot
                    .get_or_insert_with(|| crate::frontend::dnsenc::load::take_slot(&shared.next_slot, now, interval));
                if at > now {
                    break;
                }
                slot = None;
            }
            let index = shared.next.get();
            shared.next.set((index + 1) % shared.queries.len());
            let query = &shared.queries[index];
            let id = u16::from_be_bytes([query[0], query[1]]);
            if in_flight.contains_key(&id) {
                break;
            }
            socket.send(query).await.map_err(|e| format!("sending: {e}"))?;
            in_flight.insert(id, (Instant::now(), index));
            let mut stats = shared.stats.borrow_mut();
            stats.sent += 1;
            stats.query_bytes += query.len() as u64;
        }
        let oldest = in_flight.values().map(|(sent, _)| *sent + QUERY_TIMEOUT).min();
        let wake = [slot, oldest, sending.then_some(shared.end)].into_iter().flatten().min();
        tokio::select! {
            received = socket.recv(&mut buf) => {
                let len = received.map_err(|e| format!("receiving: {e}"))?;
                let answer = &buf[..len];
                if len < crate::dns::HEADER_LEN {
                    continue;
                }
                let id = u16::from_be_bytes([answer[0], answer[1]]);
                if let Some((sent, _)) = in_flight.remove(&id) {
                    let now = Instant::now();
                    let mut stats = shared.stats.borrow_mut();
                    if crate::dns::is_truncated(answer) {
                        stats.truncated += 1;
                    }
                    stats.completed += 1;
                    stats.answer_bytes += len as u64;
                    *stats.rcodes.entry(crate::dns::rcode(answer)).or_default() += 1;
                    stats.latencies.push(now.duration_since(sent));
                    shared.settle(&mut stats, now);
                }
            }
            _ = async { match wake { Some(at) => sleep_until(at).await, None => std::future::pending().await } } => {}
        }
    }
}

fn summary(
    server: SocketAddr,
    clients: usize,
    qps: Option<u32>,
    duration: Duration,
    stats: &Stats,
    run_time: Duration,
) -> String {
    let percent = |n: u64| if stats.sent == 0 { 0.0 } else { 100.0 * n as f64 / stats.sent as f64 };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[Status] Sent signed private-subdomain queries to {server} over UDP from {clients} clients for {} s{}",
        duration.as_secs_f64(),
        qps.map_or_else(String::new, |qps| format!(", at most {qps} queries per second")),
    );
    let _ = writeln!(out, "\nStatistics:\n");
    let _ = writeln!(out, "  Queries sent:         {}", stats.sent);
    let _ = writeln!(out, "  Queries completed:    {} ({:.2}%)", stats.completed, percent(stats.completed));
    let _ = writeln!(out, "  Queries lost:         {} ({:.2}%)", stats.lost, percent(stats.lost));
    let _ = writeln!(out, "  Queries truncated:    {} (TC=1)", stats.truncated);
    let rcodes: Vec<String> = stats
        .rcodes
        .iter()
        .map(|(&rcode, &n)| {
            let share = if stats.completed == 0 { 0.0 } else { 100.0 * n as f64 / stats.completed as f64 };
            let name = crate::stats::RCODE_NAMES
                .get(usize::from(rcode))
                .map_or_else(|| format!("RCODE{rcode}"), |n| (*n).to_owned());
            format!("{name} {n} ({share:.2}%)")
        })
        .collect();
    crate::frontend::dnsenc::load::write_rates(&mut out, &rcodes, run_time, stats.completed, &stats.latencies);
    let per = |bytes: u64, n: u64| if n == 0 { 0.0 } else { bytes as f64 / n as f64 };
    let _ = writeln!(out, "\n  Bytes per query:      {:.1}", per(stats.query_bytes, stats.sent));
    let _ = writeln!(out, "  Bytes per answer:     {:.1}", per(stats.answer_bytes, stats.completed));
    out
}
