//! `dotgate dnsenc load`: a load generator for a DNSENC server (dnsperf cannot speak DNSENC), in
//! dnsperf's manner. Queries come from a dnsperf query file (`NAME [TYPE]` a line), in order,
//! looped; independent clients, each with its own socket (UDP, or one TCP connection), keep up to
//! [`WINDOW`] queries in flight, under an optional global rate, for a set time; then dnsperf's
//! summary, with the bytes of the envelopes (outer) and of what they carry (inner).
//!
//! Every client is a task on one current-thread tokio runtime that the tool makes. A query is
//! lost when nothing that `client::accept` takes comes within [`QUERY_TIMEOUT`] of its sending;
//! a TC=1 envelope is counted as truncated and the query asked again, with a new key, over a new
//! TCP connection within the same time, and counted by how that ends. Every query sent ends
//! completed (an answer of any RCODE, or a clear error envelope) or lost.
//!
//! With `--prepared N` the queries are encrypted before the run (N of them, the file's lines in
//! turn) and sent in turn, each with its own ID, nonce and one-time key: the server keeps no
//! state (no replay cache, by design), so it does the same work per query, and the tool's own
//! public-key operation (an X25519 key pair and agreement, or RSA blocks) stops limiting the
//! rate on a machine where tool and server share the cores.
//!
//! Never: sends to anything but the one server given, sends after its time is up, waits for a
//! query longer than its timeout, or sends a query in the clear.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet, LocalSet};
use tokio::time::{sleep_until, Instant};

use super::client::{self, Outcome, Query};
use super::print;
use super::tools::{read_nsk_file, Report, CLIENT_UDP_SIZE};
use super::wire::{CodePoints, Nsk};
use crate::config::{ConfigError, DnsencLoad};

/// Queries each client keeps in flight at most (its TCP retries included).
pub const WINDOW: usize = 10;
/// A query unanswered this long after it was sent is lost.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How far behind its rate the tool may fall and still catch up (see `Shared::take_slot`).
const MAX_LAG: Duration = Duration::from_millis(100);

/// The queries of a dnsperf query file: one `NAME [TYPE]` a line (TYPE A when left out), blank
/// lines and lines starting with `;` skipped. A name or type that is not one, or a file without
/// a query, is bad input (naming the line).
pub fn read_query_file(path: &Path, cp: &CodePoints) -> Result<Vec<(String, u16)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Cli(format!("cannot read the query file {}: {e}", path.display())))?;
    let bad = |number: usize, why: String| ConfigError::Cli(format!("{} line {number}: {why}", path.display()));
    let mut queries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next().filter(|name| !name.starts_with(';')) else { continue };
        client::encode_name(name).map_err(|why| bad(number, why))?;
        let qtype = match fields.next() {
            None => 1,
            Some(text) => print::type_by_name(text, cp)
                .ok_or_else(|| bad(number, format!("{text:?} is not a record type (A, AAAA, MX, TYPEnnn...)")))?,
        };
        if let Some(extra) = fields.next() {
            return Err(bad(number, format!("{extra:?} after the type: want NAME [TYPE]")));
        }
        queries.push((name.to_owned(), qtype));
    }
    if queries.is_empty() {
        return Err(ConfigError::Cli(format!("the query file {} has no query in it", path.display())));
    }
    Ok(queries)
}

/// Runs the load described by `settings` and returns dnsperf's summary. Bad input (the NSK file,
/// the query file, an NSK the client cannot use) is an error before anything is sent; clients
/// that stop on a network error are the report's failure, the summary still printed.
pub fn run(settings: &DnsencLoad) -> Result<Report, ConfigError> {
    let cp = settings.codepoints;
    let nsk = read_nsk_file(&settings.nsk, &cp)?;
    let queries = read_query_file(&settings.query_file, &cp)?;
    let mut rng = StdRng::from_os_rng();
    client::prepare(&nsk, &queries[0].0, queries[0].1, CLIENT_UDP_SIZE, false, &cp, &mut rng)
        .map_err(ConfigError::Cli)?;
    let prepared = settings
        .prepared
        .map(|n| {
            (0..n)
                .map(|i| {
                    let (name, qtype) = &queries[i % queries.len()];
                    client::prepare(&nsk, name, *qtype, CLIENT_UDP_SIZE, false, &cp, &mut rng).map(Rc::new)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(ConfigError::Cli)?;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Ok(Report { text: String::new(), failure: Some(format!("cannot start a runtime: {e}")) }),
    };
    let (stats, run_time, errors) = LocalSet::new().block_on(&runtime, async {
        let start = Instant::now();
        let shared = Rc::new(Shared {
            server: settings.server,
            nsk,
            cp,
            tcp: settings.tcp,
            queries,
            prepared,
            next_query: Cell::new(0),
            interval: settings.qps.map(|qps| Duration::from_secs_f64(1.0 / f64::from(qps))),
            next_slot: Cell::new(start),
            end: start + settings.duration,
            rng: RefCell::new(rng),
            stats: RefCell::new(Stats::default()),
        });
        let clients: Vec<_> =
            (0..settings.clients).map(|_| tokio::task::spawn_local(run_client(shared.clone()))).collect();
        let errors = client_errors(clients).await;
        let stats = shared.stats.take();
        let run_time = stats.last_settled.unwrap_or(shared.end).max(shared.end).duration_since(start);
        (stats, run_time, errors)
    });
    let failure = errors.first().map(|e| format!("{} of {} clients stopped: {e}", errors.len(), settings.clients));
    Ok(Report { text: summary(settings, &stats, run_time), failure })
}

/// What every client shares: the server, the queries, the rate, the counts.
struct Shared {
    server: SocketAddr,
    nsk: Nsk,
    cp: CodePoints,
    tcp: bool,
    queries: Vec<(String, u16)>,
    /// `--prepared`: queries encrypted before the run, sent in turn.
    prepared: Option<Vec<Rc<Query>>>,
    /// The next line of the query file (or prepared query) to send.
    next_query: Cell<usize>,
    /// The gap between two sends under a rate; `None`: no rate.
    interval: Option<Duration>,
    /// When the next send under the rate may go.
    next_slot: Cell<Instant>,
    /// No query is sent from then on.
    end: Instant,
    rng: RefCell<StdRng>,
    stats: RefCell<Stats>,
}

impl Shared {
    /// The next query of the file, ready to send.
    fn prepare(&self) -> Result<Rc<Query>, String> {
        let index = self.next_query.get();
        if let Some(prepared) = &self.prepared {
            self.next_query.set((index + 1) % prepared.len());
            return Ok(prepared[index].clone());
        }
        self.next_query.set((index + 1) % self.queries.len());
        let (name, qtype) = &self.queries[index];
        client::prepare(&self.nsk, name, *qtype, CLIENT_UDP_SIZE, false, &self.cp, &mut *self.rng.borrow_mut())
            .map(Rc::new)
    }

    /// Takes the next sending slot of the rate: the earliest free one, even one a late wake-up
    /// has passed (it is sent at once, so the rate catches up, as dnsperf's does), but not one
    /// more than [`MAX_LAG`] in the past (after a stall the tool does not burst to make it up).
    fn take_slot(&self, now: Instant, interval: Duration) -> Instant {
        take_slot(&self.next_slot, now, interval)
    }
}

/// The next sending slot of a rate of one query per `interval`, shared by every client through
/// `next_slot`: the earliest free one, even one a late wake-up has passed (it is sent at once,
/// so the rate catches up, as dnsperf's does), but not one more than [`MAX_LAG`] in the past.
/// Both load tools take their slots here.
pub(crate) fn take_slot(next_slot: &Cell<Instant>, now: Instant, interval: Duration) -> Instant {
    let at = next_slot.get().max(now.checked_sub(MAX_LAG).unwrap_or(now));
    next_slot.set(at + interval);
    at
}

/// Waits for every client task and returns the errors they stopped with.
pub(crate) async fn client_errors(clients: Vec<JoinHandle<Result<(), String>>>) -> Vec<String> {
    let mut errors = Vec::new();
    for client in clients {
        match client.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("a client task failed: {e}")),
        }
    }
    errors
}

/// DNS messages of one kind and their bytes.
#[derive(Debug, Default, Clone, Copy)]
struct Bytes {
    messages: u64,
    bytes: u64,
}

impl Bytes {
    fn add(&mut self, len: usize) {
        self.messages += 1;
        self.bytes += len as u64;
    }

    fn average(&self) -> f64 {
        if self.messages == 0 {
            0.0
        } else {
            self.bytes as f64 / self.messages as f64
        }
    }
}

/// The counts of a run.
#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    completed: u64,
    lost: u64,
    truncated: u64,
    rcodes: BTreeMap<u16, u64>,
    latencies: Vec<Duration>,
    /// Every query envelope sent (TCP retries included) and the inner query in it.
    outer_queries: Bytes,
    inner_queries: Bytes,
    /// Every envelope that ended a query (a sealed answer or a clear error; not TC=1), and the
    /// inner answers opened.
    outer_answers: Bytes,
    inner_answers: Bytes,
    /// When the last query was answered or lost.
    last_settled: Option<Instant>,
    /// The first network error a TCP retry met, and how many did.
    retry_errors: u64,
    first_retry_error: Option<String>,
}

impl Stats {
    fn sent_envelope(&mut self, query: &Query) {
        self.outer_queries.add(query.envelope.len());
        self.inner_queries.add(query.inner_len);
    }

    /// An envelope `client::accept` took, of `len` bytes: its outcome ends the query sent at
    /// `started` (a truncated one goes on over TCP, and its envelope is not an answer's).
    fn took(&mut self, started: Instant, len: usize, outcome: &Outcome) {
        let rcode = match outcome {
            Outcome::Answer(inner) => {
                self.inner_answers.add(inner.len());
                print::full_rcode(inner)
            }
            Outcome::Rcode(rcode) => *rcode,
            Outcome::Truncated => {
                self.truncated += 1;
                return;
            }
        };
        self.outer_answers.add(len);
        let now = Instant::now();
        self.completed += 1;
        *self.rcodes.entry(rcode).or_default() += 1;
        self.latencies.push(now.duration_since(started));
        self.settle(now);
    }

    fn lose(&mut self, at: Instant) {
        self.lost += 1;
        self.settle(at);
    }

    fn settle(&mut self, at: Instant) {
        self.last_settled = Some(self.last_settled.map_or(at, |last| last.max(at)));
    }
}

/// A query in flight and when it was sent.
struct Pending {
    query: Rc<Query>,
    sent: Instant,
}

/// One client: sends while the time lasts, as the window and the rate allow, takes answers,
/// loses what times out, then waits for what is still in flight. A client that stops on an error
/// counts what it had in flight as lost.
async fn run_client(shared: Rc<Shared>) -> Result<(), String> {
    let mut in_flight: HashMap<u16, Pending> = HashMap::with_capacity(WINDOW);
    let mut retries: JoinSet<()> = JoinSet::new();
    let result = drive_client(&shared, &mut in_flight, &mut retries).await;
    if result.is_err() {
        retries.abort_all();
        let mut unfinished = in_flight.len();
        while let Some(retry) = retries.join_next().await {
            unfinished += usize::from(retry.is_err());
        }
        let now = Instant::now();
        let mut stats = shared.stats.borrow_mut();
        for _ in 0..unfinished {
            stats.lose(now);
        }
    }
    result
}

async fn drive_client(
    shared: &Rc<Shared>,
    in_flight: &mut HashMap<u16, Pending>,
    retries: &mut JoinSet<()>,
) -> Result<(), String> {
    let mut link = Link::open(shared.server, shared.tcp).await?;
    // A slot of the rate this client holds, waiting for its time.
    let mut slot: Option<Instant> = None;
    loop {
        let now = Instant::now();
        in_flight.retain(|_, pending| {
            let deadline = pending.sent + QUERY_TIMEOUT;
            let alive = deadline > now;
            if !alive {
                shared.stats.borrow_mut().lose(deadline);
            }
            alive
        });
        let sending = now < shared.end;
        while sending && in_flight.len() + retries.len() < WINDOW {
            if let Some(interval) = shared.interval {
                let at = *slot.get_or_insert_with(|| shared.take_slot(now, interval));
                if at > now {
                    break;
                }
                slot = None;
            }
            // IDs are random: one already in flight here is drawn again.
            let query = loop {
                let query = shared.prepare()?;
                if !in_flight.contains_key(&query.outer_id) {
                    break query;
                }
            };
            link.send(&query.envelope, shared.server).await?;
            let sent = Instant::now();
            let mut stats = shared.stats.borrow_mut();
            stats.sent += 1;
            stats.sent_envelope(&query);
            drop(stats);
            in_flight.insert(query.outer_id, Pending { query, sent });
        }
        if !sending && in_flight.is_empty() && retries.is_empty() {
            return Ok(());
        }
        let mut wake = in_flight.values().map(|p| p.sent + QUERY_TIMEOUT).min().unwrap_or(now + QUERY_TIMEOUT);
        if sending {
            wake = wake.min(shared.end);
            if let Some(at) = slot {
                wake = wake.min(at);
            }
        }
        tokio::select! {
            received = link.rx.recv(), if link.open => match received {
                Some(Ok(msg)) => take(shared, in_flight, retries, &msg),
                // UDP: the socket failed. TCP: the connection ended; the next send opens another
                // (what was in flight on it will time out).
                Some(Err(e)) if !shared.tcp => return Err(e),
                Some(Err(_)) | None => link.open = false,
            },
            Some(_) = retries.join_next(), if !retries.is_empty() => {}
            () = sleep_until(wake) => {}
        }
    }
}

/// A message from the server: the outcome of the query in flight it answers, if any.
fn take(shared: &Rc<Shared>, in_flight: &mut HashMap<u16, Pending>, retries: &mut JoinSet<()>, msg: &[u8]) {
    let Some(id) = msg.first_chunk::<2>().map(|id| u16::from_be_bytes(*id)) else { return };
    let Some(outcome) = in_flight.get(&id).and_then(|pending| client::accept(&pending.query, msg, &shared.cp)) else {
        return;
    };
    let Some(pending) = in_flight.remove(&id) else { return };
    shared.stats.borrow_mut().took(pending.sent, msg.len(), &outcome);
    if outcome == Outcome::Truncated {
        retries.spawn_local(retry_over_tcp(shared.clone(), pending.sent));
    }
}

/// Asks again over a new TCP connection, with a new query, for a query sent at `sent` that came
/// back truncated; counts how it ends.
async fn retry_over_tcp(shared: Rc<Shared>, sent: Instant) {
    let deadline = sent + QUERY_TIMEOUT;
    let ask = async {
        let query = shared.prepare()?;
        shared.stats.borrow_mut().sent_envelope(&query);
        let mut stream =
            TcpStream::connect(shared.server).await.map_err(|e| format!("cannot connect over TCP: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream.write_all(&framed(&query.envelope)).await.map_err(|e| format!("cannot send over TCP: {e}"))?;
        loop {
            let msg = read_framed(&mut stream).await.map_err(|e| format!("no answer over TCP: {e}"))?;
            if let Some(outcome) = client::accept(&query, &msg, &shared.cp) {
                return Ok::<_, String>((outcome, msg.len()));
            }
        }
    };
    let result = tokio::time::timeout_at(deadline, ask).await;
    let mut stats = shared.stats.borrow_mut();
    match result {
        // A TC=1 envelope over TCP carries no answer either.
        Ok(Ok((Outcome::Truncated, len))) => {
            stats.took(sent, len, &Outcome::Truncated);
            stats.lose(Instant::now());
        }
        Ok(Ok((outcome, len))) => stats.took(sent, len, &outcome),
        Ok(Err(e)) => {
            stats.retry_errors += 1;
            stats.first_retry_error.get_or_insert(e);
            stats.lose(Instant::now());
        }
        Err(_) => stats.lose(deadline),
    }
}

/// `msg` behind its 2-byte length (RFC 1035 §4.2.2).
fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

async fn read_framed(stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut msg = vec![0u8; usize::from(len)];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

/// A client's socket: what it sends on, and the messages its reader task hands over.
struct Link {
    sender: Sender,
    rx: mpsc::UnboundedReceiver<Result<Vec<u8>, String>>,
    reader: JoinHandle<()>,
    /// False once the reader has stopped (a TCP connection ended).
    open: bool,
}

enum Sender {
    Udp(Rc<UdpSocket>),
    Tcp(OwnedWriteHalf),
}

impl Link {
    async fn open(server: SocketAddr, tcp: bool) -> Result<Link, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        if tcp {
            let stream = TcpStream::connect(server).await.map_err(|e| format!("cannot connect to {server}: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (mut read, write) = stream.into_split();
            let reader = tokio::task::spawn_local(async move {
                loop {
                    let msg = read_framed(&mut read).await.map_err(|e| format!("the TCP connection ended: {e}"));
                    let end = msg.is_err();
                    if tx.send(msg).is_err() || end {
                        return;
                    }
                }
            });
            return Ok(Link { sender: Sender::Tcp(write), rx, reader, open: true });
        }
        let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        socket.connect(server).await.map_err(|e| format!("cannot send to {server}: {e}"))?;
        let socket = Rc::new(socket);
        let reading = socket.clone();
        let reader = tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; usize::from(u16::MAX)];
            loop {
                let msg = match reading.recv(&mut buf).await {
                    Ok(len) => Ok(buf[..len].to_vec()),
                    // An ICMP error, which anyone can forge: the queries time out or are answered.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => Err(format!("cannot receive from {server}: {e}")),
                };
                let end = msg.is_err();
                if tx.send(msg).is_err() || end {
                    return;
                }
            }
        });
        Ok(Link { sender: Sender::Udp(socket), rx, reader, open: true })
    }

    /// Sends one envelope; over TCP, on a new connection when the last one ended.
    async fn send(&mut self, envelope: &[u8], server: SocketAddr) -> Result<(), String> {
        if !self.open {
            *self = Link::open(server, true).await?;
        }
        match &mut self.sender {
            Sender::Udp(socket) => match socket.send(envelope).await {
                Ok(_) => Ok(()),
                // As on receiving: an earlier ICMP error reported here; the datagram is gone.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
                Err(e) => Err(format!("cannot send to {server}: {e}")),
            },
            Sender::Tcp(write) => match write.write_all(&framed(envelope)).await {
                Ok(()) => Ok(()),
                Err(_) => {
                    *self = Link::open(server, true).await?;
                    let Sender::Tcp(write) = &mut self.sender else { return Ok(()) };
                    write.write_all(&framed(envelope)).await.map_err(|e| format!("cannot send to {server}: {e}"))
                }
            },
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// dnsperf's summary of a run that took `run_time` (until the last query was answered or lost).
/// The part of dnsperf's summary both load tools print alike: the response codes (already
/// written as `NAME COUNT (SHARE%)`), the run time, the queries per second and the latencies.
pub(crate) fn write_rates(
    out: &mut String,
    rcodes: &[String],
    run_time: Duration,
    completed: u64,
    latencies: &[Duration],
) {
    let _ = writeln!(out, "\n  Response codes:       {}", rcodes.join(", "));
    let _ = writeln!(out, "  Run time (s):         {:.6}", run_time.as_secs_f64());
    let qps = if run_time.is_zero() { 0.0 } else { completed as f64 / run_time.as_secs_f64() };
    let _ = writeln!(out, "  Queries per second:   {qps:.2}");
    let mut latencies = latencies.to_vec();
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Nearest rank: the smallest latency at least `p` percent of the answers had.
    let percentile =
        |p: usize| latencies.get((latencies.len() * p).div_ceil(100).saturating_sub(1)).copied().map_or(0.0, ms);
    let average =
        if latencies.is_empty() { 0.0 } else { latencies.iter().map(|&d| ms(d)).sum::<f64>() / latencies.len() as f64 };
    let _ = writeln!(
        out,
        "\n  Average Latency (ms): {average:.3} (min {:.3}, max {:.3})",
        latencies.first().copied().map_or(0.0, ms),
        latencies.last().copied().map_or(0.0, ms)
    );
    let _ = writeln!(out, "  Latency p50 (ms):     {:.3}", percentile(50));
    let _ = writeln!(out, "  Latency p99 (ms):     {:.3}", percentile(99));
}

fn summary(settings: &DnsencLoad, stats: &Stats, run_time: Duration) -> String {
    let percent = |n: u64| if stats.sent == 0 { 0.0 } else { 100.0 * n as f64 / stats.sent as f64 };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[Status] Sent DNSENC queries to {} over {} from {} clients for {} s{}",
        settings.server,
        if settings.tcp { "TCP" } else { "UDP" },
        settings.clients,
        settings.duration.as_secs_f64(),
        settings.qps.map_or_else(String::new, |qps| format!(", at most {qps} queries per second")),
    );
    let _ = writeln!(out, "\nStatistics:\n");
    let _ = writeln!(out, "  Queries sent:         {}", stats.sent);
    let _ = writeln!(out, "  Queries completed:    {} ({:.2}%)", stats.completed, percent(stats.completed));
    let _ = writeln!(out, "  Queries lost:         {} ({:.2}%)", stats.lost, percent(stats.lost));
    let _ = writeln!(out, "  Queries truncated:    {} (TC=1, each asked again over TCP)", stats.truncated);
    let rcodes: Vec<String> = stats
        .rcodes
        .iter()
        .map(|(&rcode, &n)| {
            let share = if stats.completed == 0 { 0.0 } else { 100.0 * n as f64 / stats.completed as f64 };
            format!("{} {n} ({share:.2}%)", print::rcode_name(rcode, &settings.codepoints))
        })
        .collect();
    write_rates(&mut out, &rcodes, run_time, stats.completed, &stats.latencies);
    let _ = writeln!(
        out,
        "\n  Bytes per query:      outer {:.1}, inner {:.1}",
        stats.outer_queries.average(),
        stats.inner_queries.average()
    );
    let _ = writeln!(
        out,
        "  Bytes per answer:     outer {:.1}, inner {:.1}",
        stats.outer_answers.average(),
        stats.inner_answers.average()
    );
    if let Some(e) = &stats.first_retry_error {
        let _ = writeln!(out, "\n  TCP retries failed:   {} (the first: {e})", stats.retry_errors);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CP: CodePoints = CodePoints { nsk_type: 65301, option_code: 65050, badcrypt: 3841 };

    #[test]
    fn a_query_file_reads_as_dnsperf_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queries");
        std::fs::write(&path, "; comment\n\nwww.example.test A\nexample.test. mx\nbare.test\n  x.test\tTYPE65  \n")
            .unwrap();
        let queries = read_query_file(&path, &CP).unwrap();
        let want = [("www.example.test", 1), ("example.test.", 15), ("bare.test", 1), ("x.test", 65)];
        assert_eq!(queries, want.map(|(n, t)| (n.to_owned(), t)).to_vec());
        for (text, needle) in [
            ("a.test A extra\n", "line 1"),
            ("ok.test\na.test BOGUS\n", "line 2"),
            ("a..test A\n", "line 1"),
            ("; only a comment\n", "no query"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = read_query_file(&path, &CP).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
