//! `dotgate pvt load`: a load generator for the gateway (dnsperf cannot sign with SIG(0)), in
//! dnsperf's manner and with `dotgate dnsenc load`'s summary, so that the load-test scripts read
//! both alike. The queries are signed and encrypted before the run (the gateway keeps no replay
//! state, so it does the same work for each), then sent in turn over UDP by independent clients,
//! each with its own socket and up to [`WINDOW`] queries in flight, under an optional global
//! rate, for a set time.
//!
//! With `--updates` ([`updates`]) the messages are UPDATEs instead, each adding its own A record
//! (made by the client's own `change_request` and `signed`, as `dotgate pvt add` makes them), each
//! sent once: a second add of a record the zone holds changes nothing at the primary and would be
//! measured as cheaper than it is. The run ends when every one is answered (or lost), or at
//! `--duration`, and never later than the signatures' [`sig0::SIGN_WINDOW`] after signing, less
//! [`SIGNATURE_MARGIN`]. The window per client can be set (one UPDATE in flight: latency).
//!
//! Not `dnsenc load`'s engine: that one is built around DNSENC's envelopes (a fresh key per
//! query, TC=1 asked again over TCP with a new envelope); this one only replays prepared
//! messages and matches answers by ID, which is all a signed query or UPDATE needs.
//!
//! Never: sends to anything but the one server, sends after its time is up, sends an UPDATE
//! twice, or waits for a message longer than [`QUERY_TIMEOUT`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::task::LocalSet;
use tokio::time::{sleep_until, Instant};

use super::client::{self, RecordText, User};
use super::keys::PublicKey;
use super::sig0;
use crate::config::ConfigError;
use crate::frontend::dnsenc::tools::Report;

/// Queries each client keeps in flight at most (UPDATEs: unless `--window` says otherwise).
pub const WINDOW: usize = 10;
/// A query unanswered this long after it was sent is lost.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long before its prepared UPDATEs' SIG(0)s expire an UPDATE run stops sending: room for
/// the last ones' answers, and for a gateway clock a little ahead (its fudge is not counted on).
pub const SIGNATURE_MARGIN: Duration = Duration::from_secs(10);
/// TTL of the records an UPDATE run adds.
pub const UPDATE_TTL: u32 = 300;

/// A run: prepared queries (each a whole message with its own ID) and how to send them.
pub struct Load {
    pub server: SocketAddr,
    pub queries: Vec<Vec<u8>>,
    pub clients: usize,
    pub qps: Option<u32>,
    pub duration: Duration,
}

/// What a run's messages are, and so how they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Queries, sent in turn over and over until the time is up.
    Queries,
    /// UPDATEs, each sent once: the run ends when all are settled.
    Updates,
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
    kind: Kind,
    window: usize,
    interval: Option<Duration>,
    next_slot: Cell<Instant>,
    end: Instant,
    /// When the last message was sent, once each has been ([`Kind::Updates`]).
    all_sent: Cell<Option<Instant>>,
    stats: RefCell<Stats>,
}

impl Shared {
    fn settle(&self, stats: &mut Stats, at: Instant) {
        stats.last_settled = Some(stats.last_settled.map_or(at, |last| last.max(at)));
    }

    /// Whether every message has been sent, when each goes once.
    fn exhausted(&self) -> bool {
        self.kind == Kind::Updates && self.next.get() >= self.queries.len()
    }
}

/// Runs the load of queries ([`Kind::Queries`], [`WINDOW`] in flight per client).
pub fn run(load: Load) -> Report {
    run_as(load, Kind::Queries, WINDOW)
}

/// Runs the load, `window` messages in flight per client at most, and returns the summary (a
/// network error of a client is the report's failure).
pub fn run_as(load: Load, kind: Kind, window: usize) -> Report {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Report { text: String::new(), failure: Some(format!("cannot start a runtime: {e}")) },
    };
    let clients = load.clients;
    let prepared = load.queries.len();
    let (stats, run_time, errors) = LocalSet::new().block_on(&runtime, async {
        let start = Instant::now();
        let shared = Rc::new(Shared {
            server: load.server,
            queries: load.queries,
            next: Cell::new(0),
            kind,
            window: window.max(1),
            interval: load.qps.map(|qps| Duration::from_secs_f64(1.0 / f64::from(qps.max(1)))),
            next_slot: Cell::new(start),
            end: start + load.duration,
            all_sent: Cell::new(None),
            stats: RefCell::new(Stats::default()),
        });
        let tasks: Vec<_> = (0..clients).map(|_| tokio::task::spawn_local(client(shared.clone()))).collect();
        let errors = crate::frontend::dnsenc::load::client_errors(tasks).await;
        let stats = shared.stats.take();
        // Sending stopped at the end, or earlier when every UPDATE had gone.
        let stopped = shared.all_sent.get().map_or(shared.end, |at| at.min(shared.end));
        let run_time = stats.last_settled.unwrap_or(stopped).max(stopped).duration_since(start);
        (stats, run_time, errors)
    });
    let failure = errors.first().map(|e| format!("{} of {clients} clients stopped: {e}", errors.len()));
    let how = How { server: load.server, clients, window, qps: load.qps, duration: load.duration, kind, prepared };
    Report { text: summary(&how, &stats, run_time), failure }
}

/// `dotgate pvt load --updates`: `count` UPDATEs (at most 65,536, one per ID) adding
/// `PREFIX<i> 300 A 192.0.2.<i mod 254 + 1>` to the user's zone, signed at once and sent as
/// [`Kind::Updates`] by `clients` clients, `window` in flight each, at most `qps` a second, for at
/// most `duration` and never past the signatures' [`sig0::SIGN_WINDOW`] less
/// [`SIGNATURE_MARGIN`]. `prefix`: the names' first label's start, by default `u<signing
/// time>-`, so that a run adds records the zone does not hold yet.
pub fn updates(
    user: &User,
    encr_type: u16,
    count: usize,
    prefix: Option<&str>,
    (clients, window, qps, duration): (usize, usize, Option<u32>, Duration),
) -> Result<Report, ConfigError> {
    let provider = match client::provider_key(user) {
        Ok(provider) => provider,
        Err(line) => return Ok(Report { text: String::new(), failure: Some(line) }),
    };
    let signed_at = std::time::Instant::now();
    let now = sig0::now();
    let prefix = prefix.map_or_else(|| format!("u{now}-"), str::to_owned);
    let messages = prepare_updates(&mut StdRng::from_os_rng(), now, user, &provider, encr_type, &prefix, count)?;
    let valid = Duration::from_secs(u64::from(sig0::SIGN_WINDOW)).saturating_sub(SIGNATURE_MARGIN);
    let left = valid.saturating_sub(signed_at.elapsed());
    if left.is_zero() {
        let line = format!("signing {} UPDATEs took longer than their signatures last", messages.len());
        return Ok(Report { text: String::new(), failure: Some(line) });
    }
    let load = Load { server: user.server, queries: messages, clients, qps, duration: duration.min(left) };
    let mut report = run_as(load, Kind::Updates, window);
    if duration > left {
        report.text.insert_str(
            0,
            &format!(
                "[Note] The run is cut to {:.0} s: the UPDATEs' SIG(0)s, made before it, expire {} s after signing\n",
                left.as_secs_f64(),
                sig0::SIGN_WINDOW
            ),
        );
    }
    Ok(report)
}

/// The messages of [`updates`]: `count` (at most 65,536) UPDATEs, each adding `PREFIX<i>`'s A
/// record, built and signed (from `now`) by the client's own [`client::change_request`] and
/// [`client::signed`], the IDs a shuffle of all 65,536 and every random byte from `rng`.
pub fn prepare_updates(
    rng: &mut StdRng,
    now: u32,
    user: &User,
    provider: &PublicKey,
    encr_type: u16,
    prefix: &str,
    count: usize,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut ids: Vec<u16> = (0..=u16::MAX).collect();
    rand::seq::SliceRandom::shuffle(&mut ids[..], rng);
    ids.truncate(count);
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let label = format!("{prefix}{i}");
            if label.len() > 63 {
                return Err(ConfigError::Cli(format!("the name {label:?} is longer than a label (63 octets)")));
            }
            let relative = [&[label.len() as u8][..], label.as_bytes()].concat();
            let rdata = vec![192, 0, 2, (i % 254 + 1) as u8];
            let record = RecordText { relative, ttl: UPDATE_TTL, rtype: 1, rdata: Some(rdata), add: true };
            let update = client::change_request(rng, id, user, provider, encr_type, &record)?;
            client::signed(update, &user.key, &user.zone, now).map_err(ConfigError::Cli)
        })
        .collect()
}

async fn client(shared: Rc<Shared>) -> Result<(), String> {
    let bind: SocketAddr = if shared.server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("an address");
    let socket = UdpSocket::bind(bind).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(shared.server).await.map_err(|e| format!("cannot reach {}: {e}", shared.server))?;
    let mut in_flight: HashMap<u16, (Instant, usize)> = HashMap::with_capacity(shared.window);
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
        let sending = now < shared.end && !shared.exhausted();
        if !sending && in_flight.is_empty() {
            return Ok(());
        }
        while sending && in_flight.len() < shared.window && !shared.exhausted() {
            if let Some(interval) = shared.interval {
                let at = *slot
                    .get_or_insert_with(|| crate::frontend::dnsenc::load::take_slot(&shared.next_slot, now, interval));
                if at > now {
                    break;
                }
                slot = None;
            }
            let index = shared.next.get();
            // Queries go round and round; UPDATEs each once (`exhausted` stops them).
            shared.next.set(if shared.kind == Kind::Updates { index + 1 } else { (index + 1) % shared.queries.len() });
            let query = &shared.queries[index];
            let id = u16::from_be_bytes([query[0], query[1]]);
            // (Queries only: the IDs of a set of UPDATEs are all different.)
            if in_flight.contains_key(&id) {
                break;
            }
            socket.send(query).await.map_err(|e| format!("sending: {e}"))?;
            let sent = Instant::now();
            in_flight.insert(id, (sent, index));
            if shared.exhausted() {
                shared.all_sent.set(Some(sent));
            }
            let mut stats = shared.stats.borrow_mut();
            stats.sent += 1;
            stats.query_bytes += query.len() as u64;
        }
        let oldest = in_flight.values().map(|(sent, _)| *sent + QUERY_TIMEOUT).min();
        let sending = sending && !shared.exhausted();
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

/// How a run was made, for its summary.
struct How {
    server: SocketAddr,
    clients: usize,
    window: usize,
    qps: Option<u32>,
    duration: Duration,
    kind: Kind,
    prepared: usize,
}

fn summary(how: &How, stats: &Stats, run_time: Duration) -> String {
    let percent = |n: u64| if stats.sent == 0 { 0.0 } else { 100.0 * n as f64 / stats.sent as f64 };
    let mut out = String::new();
    let (server, clients, seconds) = (how.server, how.clients, how.duration.as_secs_f64());
    let _ = match how.kind {
        Kind::Queries => write!(
            out,
            "[Status] Sent signed private-subdomain queries to {server} over UDP from {clients} clients for {seconds} s",
        ),
        Kind::Updates => write!(
            out,
            "[Status] Sent signed, encrypted UPDATEs ({} prepared, each sent once) to {server} over UDP from \
             {clients} clients, {} in flight each, for at most {seconds} s (the \"queries\" below are these UPDATEs)",
            how.prepared, how.window,
        ),
    };
    let _ = writeln!(out, "{}", how.qps.map_or_else(String::new, |qps| format!(", at most {qps} queries per second")));
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

#[cfg(test)]
mod tests {
    use std::net::UdpSocket as StdUdpSocket;

    use super::*;
    use crate::dns::{self, HEADER_LEN};
    use crate::frontend::pvt::gateway::open_user_name;
    use crate::frontend::pvt::keys::{KeyPair, UserKeyPair, UserPublic};
    use crate::frontend::pvt::primary::TYPE_SOA;
    use crate::frontend::pvt::{seal, wire};
    use crate::message;

    const ZONE: &[u8] = b"\x05alice\x04_pvt\x07example\x04test\0";
    const ENCR: u16 = wire::DEFAULT_TYPE_ENCR;

    /// The field after `label` in a summary, as the load-test scripts read it.
    fn field<'a>(summary: &'a str, label: &str) -> &'a str {
        let line = summary.lines().find_map(|l| l.trim().strip_prefix(label)).unwrap_or_else(|| panic!("{summary}"));
        line.split_whitespace().next().unwrap()
    }

    #[test]
    fn prepared_updates_verify_and_open_as_the_gateway_reads_them() {
        let (key, provider) = (KeyPair::generate(), KeyPair::generate());
        let sender = key.public.clone();
        let user_public = UserPublic::Ed25519(sender.clone());
        let user =
            User { server: ([127, 0, 0, 1], 9).into(), tls: None, zone: ZONE.to_vec(), key: UserKeyPair::Ed25519(key) };
        let now = sig0::now();
        let rng = &mut StdRng::seed_from_u64(3);
        let messages = prepare_updates(rng, now, &user, &provider.public, ENCR, "t-", 300).unwrap();
        assert_eq!(messages.len(), 300);
        let mut ids: Vec<u16> = messages.iter().map(|m| dns::id(m)).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 300, "an ID each, so that answers match");
        let mut scratch = Vec::new();
        for (i, msg) in messages.iter().enumerate() {
            // What update::decide and plain_update check and open, in their order.
            assert_eq!(dns::opcode(msg), 5);
            let parsed = message::parse(msg);
            assert!(parsed.stopped.is_none());
            assert_eq!(parsed.questions, [(ZONE.to_vec(), TYPE_SOA, 1)]);
            assert!(parsed.sections[0].is_empty(), "no prerequisite");
            let sig = sig0::find(msg).unwrap();
            assert_eq!(sig0::verify(msg, &sig, ZONE, &user_public, now, &mut scratch), Ok(()));
            let [record] = &parsed.sections[1][..] else { panic!("one update record") };
            assert_eq!((record.rtype, record.class, record.ttl), (ENCR, 1, UPDATE_TTL));
            let at = wire::zone_suffix(&record.owner, ZONE).unwrap();
            let ciphertext = wire::encrypted_labels(&record.owner, at).unwrap();
            let label = format!("t-{i}");
            let relative = [&[label.len() as u8][..], label.as_bytes()].concat();
            assert_eq!(open_user_name(&provider, &user_public, ZONE, &ciphertext), Ok((1, relative.clone())));
            let opened = seal::open_record(&provider, &sender, ZONE, &msg[record.rdata.0..record.rdata.1]);
            let owner = [&relative[..], ZONE].concat();
            assert_eq!(opened, Ok(seal::OpenedRecord { rtype: 1, owner, rdata: vec![192, 0, 2, (i % 254 + 1) as u8] }));
        }
        // Why a run stops before the window is out: past it (and the gateway's fudge) it is REFUSED.
        let late = now + sig0::SIGN_WINDOW + sig0::FUDGE + 1;
        let sig = sig0::find(&messages[0]).unwrap();
        assert_eq!(
            sig0::verify(&messages[0], &sig, ZONE, &user_public, late, &mut scratch),
            Err(sig0::Sig0Error::Time)
        );
        let long = "x".repeat(62);
        assert!(prepare_updates(rng, now, &user, &provider.public, ENCR, &long, 20).is_err(), "x<62>10 is no label");
    }

    /// A server that answers every message NOERROR (its header, QR set) after `delay`, and
    /// returns the IDs it saw and whether a second message ever waited while it held one.
    fn answering_server(count: usize, delay: Duration) -> (SocketAddr, std::thread::JoinHandle<(Vec<u16>, bool)>) {
        let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut seen, mut overlapped, mut buf) = (Vec::new(), false, [0; 512]);
            while seen.len() < count {
                let (len, peer) = socket.recv_from(&mut buf).unwrap();
                std::thread::sleep(delay);
                socket.set_nonblocking(true).unwrap();
                overlapped |= socket.peek_from(&mut [0; 16]).is_ok();
                socket.set_nonblocking(false).unwrap();
                let mut answer = buf[..len.min(HEADER_LEN)].to_vec();
                answer[2] |= 0x80;
                answer[3] &= 0xf0;
                socket.send_to(&answer, peer).unwrap();
                seen.push(u16::from_be_bytes([buf[0], buf[1]]));
            }
            (seen, overlapped)
        });
        (address, thread)
    }

    fn headers(count: u16) -> Vec<Vec<u8>> {
        (0..count).map(|id| [&(id * 7).to_be_bytes()[..], &[0x28, 0, 0, 1, 0, 0, 0, 1, 0, 1]].concat()).collect()
    }

    #[test]
    fn updates_go_once_each_and_the_run_ends_when_all_are_answered() {
        let (server, thread) = answering_server(200, Duration::ZERO);
        let load = Load { server, queries: headers(200), clients: 4, qps: None, duration: Duration::from_secs(30) };
        let started = std::time::Instant::now();
        let report = run_as(load, Kind::Updates, 5);
        assert!(started.elapsed() < Duration::from_secs(10), "not the whole duration: {}", report.text);
        assert_eq!(report.failure, None);
        for (label, want) in [("Queries sent:", "200"), ("Queries completed:", "200"), ("Queries lost:", "0")] {
            assert_eq!(field(&report.text, label), want, "{}", report.text);
        }
        assert!(report.text.contains("UPDATEs (200 prepared, each sent once)"), "{}", report.text);
        assert!(report.text.contains("NOERROR 200 (100.00%)"), "{}", report.text);
        let run_time: f64 = field(&report.text, "Run time (s):").parse().unwrap();
        assert!(run_time < 10.0, "the run time is until the last answer: {}", report.text);
        let (mut seen, _) = thread.join().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).map(|id| id * 7).collect::<Vec<u16>>(), "each exactly once");
    }

    #[test]
    fn a_window_of_one_keeps_one_update_in_flight() {
        let (server, thread) = answering_server(15, Duration::from_millis(20));
        let load = Load { server, queries: headers(15), clients: 1, qps: None, duration: Duration::from_secs(30) };
        let report = run_as(load, Kind::Updates, 1);
        assert_eq!(field(&report.text, "Queries completed:"), "15", "{}", report.text);
        let (_, overlapped) = thread.join().unwrap();
        assert!(!overlapped, "the next UPDATE went before the answer");
        // And the same with a window of 3 does overlap (the check above can see it).
        let (server, thread) = answering_server(15, Duration::from_millis(20));
        let load = Load { server, queries: headers(15), clients: 1, qps: None, duration: Duration::from_secs(30) };
        run_as(load, Kind::Updates, 3);
        assert!(thread.join().unwrap().1);
    }
}
