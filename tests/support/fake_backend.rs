//! A controllable in-process plain-DNS backend (UDP and TCP on one 127.0.0.1
//! port), plus the small raw DNS wire helpers it is built on.
//!
//! Owns [`FakeBackend`]. It runs as tokio tasks on the runtime that called
//! [`FakeBackend::start`] (so it must be started inside a tokio runtime, and
//! stops when that runtime stops or the `FakeBackend` is dropped).
//!
//! Behaviour per query is chosen by the FIRST LABEL of the query name
//! (case-insensitive), so one backend serves many scenarios at once:
//!
//! | first label      | behaviour |
//! |------------------|-----------|
//! | anything else    | normal answer: same ID, QR AA RA set, opcode/RD/CD copied, RCODE 0, question copied byte for byte; ONE `A 192.0.2.1` TTL 300 (`TXT "hello"` for qtype TXT); if the query had an OPT, the answer has one with the same UDP size, DO bit and option bytes |
//! | `delay-<ms>`     | the normal answer after `<ms>` ms (other queries are not blocked) |
//! | `drop`           | never answered |
//! | `tc-<n>`         | UDP: TC=1, no records. TCP: a full answer of EXACTLY `<n>` bytes (`<n>` <= 65,535) made of TXT records |
//! | `tcttl-<s>`      | UDP: TC=1, no records. TCP: a full answer of 2,000 bytes of TXT records whose TTL is `<s>` seconds |
//! | `tccut-<n>`      | UDP: TC=1, no records. TCP: the 2-byte length of an `<n>`-byte answer and its first half, then the backend closes the connection (FIN) |
//! | `big-<n>`        | UDP and TCP: an answer of EXACTLY `<n>` bytes (no TC), TXT records (UDP can carry at most 65,507) |
//! | `wrongid`        | bad answer (ID+1, `A 6.6.6.6`), 50 ms later the normal answer |
//! | `otherq`         | bad answer (question `other.example.`, `A 6.6.6.6`), then normal |
//! | `garbage`        | 40 random bytes, then normal |
//! | `otherport`      | UDP: bad answer (right ID/question, `A 6.6.6.6`) from ANOTHER UDP socket, then normal. TCP: just normal |
//! | `notqr`          | bad answer with QR=0 (`A 6.6.6.6`), then normal |
//! | `twice`          | the normal answer twice, 20 ms apart |
//! | `servfail`       | RCODE SERVFAIL, no records |
//! | `refuse-udp`     | UDP: never answered. TCP: normal |
//! | `refused`        | RCODE REFUSED, no records |
//! | `ttls-<a>-<b>`   | two A records, `192.0.2.1` TTL `<a>` and `192.0.2.2` TTL `<b>` |
//! | `nx-<t>-<m>`     | NXDOMAIN, no answer, an SOA in the authority section with TTL `<t>` and MINIMUM `<m>` |
//! | `nodata-<t>-<m>` | NOERROR, no answer (NODATA), that SOA in the authority section |
//!
//! The spoof modes behave the same over TCP (bad frame, then the good frame
//! 50 ms later), except `otherport` (no meaning over TCP). Queries that cannot
//! be parsed (fewer than 12 bytes, no question, broken name) are counted and
//! recorded but never answered. In `set_down(true)` every query is counted and
//! recorded but never answered.
//!
//! Sized answers (`tc-<n>` over TCP, `big-<n>`): header + copied question +
//! echoed OPT (if the query had one) + TXT records (each one character-string,
//! owner name a pointer to the question) whose sizes add up to the rest. If
//! `<n>` is too small to hold even one TXT record the answer has no records
//! (and is shorter than `<n>`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::ports;

/// The A record carried by normal answers.
pub const NORMAL_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The A record carried by the bad (spoofed) answers.
pub const SPOOF_A: Ipv4Addr = Ipv4Addr::new(6, 6, 6, 6);
/// The TXT string of normal answers to TXT queries.
pub const NORMAL_TXT: &str = "hello";
/// Delay between the bad and the good answer in the spoof modes.
pub const SPOOF_GAP: Duration = Duration::from_millis(50);
/// Delay between the two copies in `twice` mode.
pub const TWICE_GAP: Duration = Duration::from_millis(20);

const TYPE_A: u16 = 1;
const TYPE_TXT: u16 = 16;
const TYPE_OPT: u16 = 41;
const TYPE_SOA: u16 = 6;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_REFUSED: u16 = 5;
/// The second A record of `ttls-<a>-<b>` answers.
pub const SECOND_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

#[derive(Default)]
struct Shared {
    down: AtomicBool,
    udp_queries: AtomicUsize,
    tcp_queries: AtomicUsize,
    tcp_connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_concurrent: AtomicUsize,
    received: Mutex<Vec<Vec<u8>>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn track(&self, h: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }
}

/// See the module docs. Dropping it stops the listeners and open TCP
/// connections.
pub struct FakeBackend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeBackend {
    /// Binds UDP and TCP on the same free 127.0.0.1 port and starts serving.
    pub async fn start() -> FakeBackend {
        let (tcp, udp) = ports::bind_pair();
        let addr = tcp.local_addr().unwrap();
        let sock = socket2::SockRef::from(&udp);
        let _ = sock.set_recv_buffer_size(4 << 20);
        let _ = sock.set_send_buffer_size(4 << 20);
        tcp.set_nonblocking(true).unwrap();
        udp.set_nonblocking(true).unwrap();
        let tcp = TcpListener::from_std(tcp).expect("tokio TcpListener");
        let udp = Arc::new(UdpSocket::from_std(udp).expect("tokio UdpSocket"));
        let shared = Arc::new(Shared::default());
        let h = tokio::spawn(udp_loop(udp, shared.clone()));
        shared.track(h.abort_handle());
        let h = tokio::spawn(tcp_accept_loop(tcp, shared.clone()));
        shared.track(h.abort_handle());
        FakeBackend { addr, shared }
    }

    /// While down, every query is counted and recorded but never answered.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// UDP datagrams received.
    pub fn udp_queries(&self) -> usize {
        self.shared.udp_queries.load(Ordering::SeqCst)
    }

    /// Length-framed queries received over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.shared.tcp_queries.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn tcp_connections(&self) -> usize {
        self.shared.tcp_connections.load(Ordering::SeqCst)
    }

    /// `delay-<ms>` queries received and not yet answered, right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The largest number of `delay-<ms>` queries that were received but not
    /// yet answered at the same time (only delay mode is tracked: every other
    /// mode answers at once).
    pub fn max_concurrent(&self) -> usize {
        self.shared.max_concurrent.load(Ordering::SeqCst)
    }

    /// Raw bytes of every query received (UDP and TCP, without the TCP length
    /// prefix), in arrival order.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Zeroes the counters, clears `received()`, and sets `max_concurrent()`
    /// to the number of delay queries in flight now.
    pub fn reset_counters(&self) {
        let s = &self.shared;
        s.udp_queries.store(0, Ordering::SeqCst);
        s.tcp_queries.store(0, Ordering::SeqCst);
        s.tcp_connections.store(0, Ordering::SeqCst);
        s.max_concurrent.store(s.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        s.received.lock().unwrap().clear();
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        for t in self.shared.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// Modes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Delay(u64),
    Drop,
    Tc(usize),
    TcTtl(u32),
    TcCut(usize),
    Big(usize),
    WrongId,
    OtherQ,
    Garbage,
    OtherPort,
    NotQr,
    Twice,
    Servfail,
    RefuseUdp,
    Refused,
    Ttls(u32, u32),
    Negative { nxdomain: bool, soa_ttl: u32, minimum: u32 },
}

impl Mode {
    fn from_label(label: &str) -> Mode {
        let num = |p: &str| label.strip_prefix(p).and_then(|n| n.parse::<u64>().ok());
        let two = |p: &str| {
            let (a, b) = label.strip_prefix(p)?.split_once('-')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        };
        if let Some((a, b)) = two("ttls-") {
            return Mode::Ttls(a, b);
        }
        if let Some((soa_ttl, minimum)) = two("nx-") {
            return Mode::Negative { nxdomain: true, soa_ttl, minimum };
        }
        if let Some((soa_ttl, minimum)) = two("nodata-") {
            return Mode::Negative { nxdomain: false, soa_ttl, minimum };
        }
        if let Some(ms) = num("delay-") {
            return Mode::Delay(ms);
        }
        if let Some(ttl) = num("tcttl-") {
            return Mode::TcTtl(ttl as u32);
        }
        if let Some(n) = num("tccut-") {
            return Mode::TcCut(n as usize);
        }
        if let Some(n) = num("tc-") {
            return Mode::Tc(n as usize);
        }
        if let Some(n) = num("big-") {
            return Mode::Big(n as usize);
        }
        match label {
            "drop" => Mode::Drop,
            "wrongid" => Mode::WrongId,
            "otherq" => Mode::OtherQ,
            "garbage" => Mode::Garbage,
            "otherport" => Mode::OtherPort,
            "notqr" => Mode::NotQr,
            "twice" => Mode::Twice,
            "servfail" => Mode::Servfail,
            "refuse-udp" => Mode::RefuseUdp,
            "refused" => Mode::Refused,
            _ => Mode::Normal,
        }
    }
}

// ---------------------------------------------------------------------------
// Transport

enum Sink {
    Udp { sock: Arc<UdpSocket>, peer: SocketAddr },
    Tcp(mpsc::UnboundedSender<TcpOut>),
}

/// What a TCP connection's writer does next.
enum TcpOut {
    /// Write the message with its 2-byte length.
    Frame(Vec<u8>),
    /// Write these bytes as they are, then close the connection.
    CutAfter(Vec<u8>),
}

impl Sink {
    async fn send(&self, msg: Vec<u8>) {
        match self {
            Sink::Udp { sock, peer } => {
                if let Err(e) = sock.send_to(&msg, *peer).await {
                    eprintln!("fake_backend: UDP send of {} bytes to {peer} failed: {e}", msg.len());
                }
            }
            Sink::Tcp(tx) => {
                let _ = tx.send(TcpOut::Frame(msg));
            }
        }
    }

    fn is_udp(&self) -> bool {
        matches!(self, Sink::Udp { .. })
    }
}

async fn udp_loop(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // e.g. ICMP port unreachable reported on Linux: keep serving.
                eprintln!("fake_backend: UDP recv error (ignored): {e}");
                continue;
            }
        };
        shared.udp_queries.fetch_add(1, Ordering::SeqCst);
        let q = buf[..n].to_vec();
        shared.received.lock().unwrap().push(q.clone());
        if shared.down.load(Ordering::SeqCst) {
            continue;
        }
        let sink = Sink::Udp { sock: sock.clone(), peer };
        dispatch(&shared, q, sink);
    }
}

async fn tcp_accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("fake_backend: TCP accept error (ignored): {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.tcp_connections.fetch_add(1, Ordering::SeqCst);
        let h = tokio::spawn(tcp_conn(stream, shared.clone()));
        shared.track(h.abort_handle());
    }
}

async fn tcp_conn(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<TcpOut>();
    // Writer: one task owns the write half, so frames never interleave. It
    // ends when every sender (reader + in-progress handlers) is gone.
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let msg = match out {
                TcpOut::Frame(msg) => msg,
                TcpOut::CutAfter(bytes) => {
                    let _ = wr.write_all(&bytes).await;
                    let _ = wr.shutdown().await;
                    break;
                }
            };
            if wr.write_all(&super::client::framed(&msg)).await.is_err() {
                break;
            }
        }
    });
    shared.track(writer.abort_handle());
    loop {
        let mut len = [0u8; 2];
        if rd.read_exact(&mut len).await.is_err() {
            break;
        }
        let len = u16::from_be_bytes(len) as usize;
        let mut q = vec![0u8; len];
        if rd.read_exact(&mut q).await.is_err() {
            break;
        }
        shared.tcp_queries.fetch_add(1, Ordering::SeqCst);
        shared.received.lock().unwrap().push(q.clone());
        if shared.down.load(Ordering::SeqCst) {
            continue;
        }
        dispatch(&shared, q, Sink::Tcp(tx.clone()));
    }
}

/// Decides the mode synchronously (so delay queries count as in flight from
/// the moment they are received) and spawns the answering task.
fn dispatch(shared: &Arc<Shared>, q: Vec<u8>, sink: Sink) {
    let Some(pq) = parse_query(&q) else {
        return;
    };
    let mode = Mode::from_label(&pq.first_label);
    if let Mode::Delay(_) = mode {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_concurrent.fetch_max(now, Ordering::SeqCst);
    }
    let shared = shared.clone();
    let h = tokio::spawn(async move { answer(&shared, &pq, mode, sink).await });
    // Answering tasks are short (or sleep); they are not tracked for abort.
    drop(h);
}

async fn answer(shared: &Shared, q: &ParsedQuery, mode: Mode, sink: Sink) {
    let sleep = tokio::time::sleep;
    match mode {
        Mode::Normal => sink.send(normal_answer(q)).await,
        Mode::Delay(ms) => {
            sleep(Duration::from_millis(ms)).await;
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            sink.send(normal_answer(q)).await;
        }
        Mode::Drop => {}
        Mode::Tc(n) => {
            if sink.is_udp() {
                sink.send(build(q, &q.question, 0, true, &[], q.flags, q.id)).await
            } else {
                sink.send(sized_answer(q, n)).await
            }
        }
        Mode::TcTtl(ttl) => {
            if sink.is_udp() {
                sink.send(build(q, &q.question, 0, true, &[], q.flags, q.id)).await
            } else {
                sink.send(sized_answer_ttl(q, 2000, ttl)).await
            }
        }
        Mode::TcCut(n) => match &sink {
            Sink::Udp { .. } => sink.send(build(q, &q.question, 0, true, &[], q.flags, q.id)).await,
            Sink::Tcp(tx) => {
                let answer = sized_answer(q, n);
                let mut cut = (answer.len() as u16).to_be_bytes().to_vec();
                cut.extend_from_slice(&answer[..answer.len() / 2]);
                let _ = tx.send(TcpOut::CutAfter(cut));
            }
        },
        Mode::Big(n) => sink.send(sized_answer(q, n)).await,
        Mode::WrongId => {
            let bad = build(q, &q.question, 0, false, &[a_rr(SPOOF_A)], q.flags, q.id.wrapping_add(1));
            sink.send(bad).await;
            sleep(SPOOF_GAP).await;
            sink.send(normal_answer(q)).await;
        }
        Mode::OtherQ => {
            let mut other = encode_name("other.example.");
            other.extend_from_slice(&q.qtype.to_be_bytes());
            other.extend_from_slice(&q.qclass.to_be_bytes());
            let bad = build(q, &other, 0, false, &[a_rr(SPOOF_A)], q.flags, q.id);
            sink.send(bad).await;
            sleep(SPOOF_GAP).await;
            sink.send(normal_answer(q)).await;
        }
        Mode::Garbage => {
            let junk: Vec<u8> = (0..40).map(|_| rand::random::<u8>()).collect();
            sink.send(junk).await;
            sleep(SPOOF_GAP).await;
            sink.send(normal_answer(q)).await;
        }
        Mode::OtherPort => {
            if let Sink::Udp { peer, .. } = &sink {
                let bad = build(q, &q.question, 0, false, &[a_rr(SPOOF_A)], q.flags, q.id);
                match UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await {
                    Ok(other) => {
                        if let Err(e) = other.send_to(&bad, *peer).await {
                            eprintln!("fake_backend: otherport send failed: {e}");
                        }
                    }
                    Err(e) => eprintln!("fake_backend: otherport bind failed: {e}"),
                }
                sleep(SPOOF_GAP).await;
            }
            sink.send(normal_answer(q)).await;
        }
        Mode::NotQr => {
            let mut bad = build(q, &q.question, 0, false, &[a_rr(SPOOF_A)], q.flags, q.id);
            bad[2] &= 0x7f; // clear QR
            sink.send(bad).await;
            sleep(SPOOF_GAP).await;
            sink.send(normal_answer(q)).await;
        }
        Mode::Twice => {
            sink.send(normal_answer(q)).await;
            sleep(TWICE_GAP).await;
            sink.send(normal_answer(q)).await;
        }
        Mode::Servfail => sink.send(build(q, &q.question, RCODE_SERVFAIL, false, &[], q.flags, q.id)).await,
        Mode::RefuseUdp => {
            if !sink.is_udp() {
                sink.send(normal_answer(q)).await;
            }
        }
        Mode::Refused => sink.send(build(q, &q.question, RCODE_REFUSED, false, &[], q.flags, q.id)).await,
        Mode::Ttls(a, b) => {
            let records = [rr_ttl(TYPE_A, a, &NORMAL_A.octets()), rr_ttl(TYPE_A, b, &SECOND_A.octets())];
            sink.send(build(q, &q.question, 0, false, &records, q.flags, q.id)).await
        }
        Mode::Negative { nxdomain, soa_ttl, minimum } => {
            let rcode = if nxdomain { RCODE_NXDOMAIN } else { 0 };
            sink.send(build_sections(q, rcode, &[], &[soa_rr(soa_ttl, minimum)], q.id)).await
        }
    }
}

// ---------------------------------------------------------------------------
// Wire format

/// The EDNS(0) OPT pseudo-record of a message, as found on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptInfo {
    /// The CLASS field: requestor's UDP payload size.
    pub udp_size: u16,
    pub ext_rcode: u8,
    pub version: u8,
    /// The 16 flag bits of the TTL field (DO is 0x8000).
    pub flags: u16,
    /// The raw RDATA: the EDNS options exactly as sent.
    pub rdata: Vec<u8>,
}

impl OptInfo {
    pub fn do_bit(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The options as (code, data) pairs, in wire order.
    pub fn options(&self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut p = 0;
        while p + 4 <= self.rdata.len() {
            let code = u16::from_be_bytes([self.rdata[p], self.rdata[p + 1]]);
            let len = u16::from_be_bytes([self.rdata[p + 2], self.rdata[p + 3]]) as usize;
            let end = (p + 4 + len).min(self.rdata.len());
            out.push((code, self.rdata[p + 4..end].to_vec()));
            p = end;
        }
        out
    }
}

struct ParsedQuery {
    id: u16,
    flags: u16,
    /// The first question, byte for byte (name + type + class).
    question: Vec<u8>,
    first_label: String,
    qtype: u16,
    qclass: u16,
    opt: Option<OptInfo>,
}

fn u16_at(m: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(p)?, *m.get(p + 1)?]))
}

/// Position just past the (possibly compressed) name at `p`.
fn skip_name(m: &[u8], mut p: usize) -> Option<usize> {
    loop {
        let len = *m.get(p)? as usize;
        match len {
            0 => return Some(p + 1),
            l if l & 0xC0 == 0xC0 => {
                m.get(p + 1)?;
                return Some(p + 2);
            }
            l if l & 0xC0 == 0 => p += 1 + l,
            _ => return None,
        }
    }
}

/// The first label of the name at `p` (following a pointer if needed).
fn first_label(m: &[u8], p: usize) -> Option<Vec<u8>> {
    let mut p = p;
    for _ in 0..16 {
        let len = *m.get(p)? as usize;
        if len & 0xC0 == 0xC0 {
            p = (u16_at(m, p)? & 0x3FFF) as usize;
            continue;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        return Some(m.get(p + 1..p + 1 + len)?.to_vec());
    }
    None
}

/// Position just past the resource record at `p`, and its type.
fn skip_rr(m: &[u8], p: usize) -> Option<(usize, u16)> {
    let p = skip_name(m, p)?;
    let rtype = u16_at(m, p)?;
    let rdlen = u16_at(m, p + 8)? as usize;
    let end = p + 10 + rdlen;
    (end <= m.len()).then_some((end, rtype))
}

/// Finds the OPT record in the additional section of `msg` (raw wire bytes).
/// `None` if there is none or the message does not parse.
pub fn find_opt(msg: &[u8]) -> Option<OptInfo> {
    if msg.len() < 12 {
        return None;
    }
    let qd = u16_at(msg, 4)? as usize;
    let an = u16_at(msg, 6)? as usize;
    let ns = u16_at(msg, 8)? as usize;
    let ar = u16_at(msg, 10)? as usize;
    let mut p = 12;
    for _ in 0..qd {
        p = skip_name(msg, p)? + 4;
    }
    for _ in 0..an + ns {
        p = skip_rr(msg, p)?.0;
    }
    for _ in 0..ar {
        let start = p;
        let (end, rtype) = skip_rr(msg, p)?;
        if rtype == TYPE_OPT {
            let name_end = skip_name(msg, start)?;
            let ttl = u32::from_be_bytes(msg[name_end + 4..name_end + 8].try_into().ok()?);
            return Some(OptInfo {
                udp_size: u16_at(msg, name_end + 2)?,
                ext_rcode: (ttl >> 24) as u8,
                version: (ttl >> 16) as u8,
                flags: ttl as u16,
                rdata: msg[name_end + 10..end].to_vec(),
            });
        }
        p = end;
    }
    None
}

fn parse_query(m: &[u8]) -> Option<ParsedQuery> {
    if m.len() < 12 || u16_at(m, 4)? == 0 {
        return None;
    }
    let qend = skip_name(m, 12)?;
    if qend + 4 > m.len() {
        return None;
    }
    let label = first_label(m, 12)?;
    Some(ParsedQuery {
        id: u16_at(m, 0)?,
        flags: u16_at(m, 2)?,
        question: m[12..qend + 4].to_vec(),
        first_label: String::from_utf8_lossy(&label).to_ascii_lowercase(),
        qtype: u16_at(m, qend)?,
        qclass: u16_at(m, qend + 2)?,
        opt: find_opt(m),
    })
}

/// Uncompressed wire form of a dotted name ("a.b." or "a.b").
pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// TTL of every record the fake makes, except in `tcttl-<s>` answers.
const TTL: u32 = 300;

/// An RR whose owner is a pointer to the question name (offset 12).
fn rr(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    rr_ttl(rtype, TTL, rdata)
}

/// [`rr`] with the given TTL.
fn rr_ttl(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC0, 0x0C];
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // IN
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

fn a_rr(ip: Ipv4Addr) -> Vec<u8> {
    rr(TYPE_A, &ip.octets())
}

fn txt_rr(text: &[u8]) -> Vec<u8> {
    txt_rr_ttl(text, TTL)
}

fn txt_rr_ttl(text: &[u8], ttl: u32) -> Vec<u8> {
    assert!(text.len() <= 255);
    let mut rdata = vec![text.len() as u8];
    rdata.extend_from_slice(text);
    rr_ttl(TYPE_TXT, ttl, &rdata)
}

/// An SOA record (owner: the question name) with this TTL and MINIMUM.
fn soa_rr(ttl: u32, minimum: u32) -> Vec<u8> {
    let mut rdata = encode_name("ns.example.");
    rdata.extend(encode_name("hostmaster.example."));
    for field in [1u32, 3600, 600, 86_400, minimum] {
        rdata.extend_from_slice(&field.to_be_bytes());
    }
    rr_ttl(TYPE_SOA, ttl, &rdata)
}

fn opt_echo(opt: &OptInfo) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&opt.udp_size.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // extended RCODE, version 0
    out.extend_from_slice(&(opt.flags & 0x8000).to_be_bytes()); // DO only
    out.extend_from_slice(&(opt.rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&opt.rdata);
    out
}

/// A response to `q` with the given question section and answer records.
fn build(
    q: &ParsedQuery,
    question: &[u8],
    rcode: u16,
    tc: bool,
    answers: &[Vec<u8>],
    query_flags: u16,
    id: u16,
) -> Vec<u8> {
    build_full(q, question, rcode, tc, answers, &[], query_flags, id)
}

/// A response to `q` (its question, flags) with answer and authority records.
fn build_sections(q: &ParsedQuery, rcode: u16, answers: &[Vec<u8>], authority: &[Vec<u8>], id: u16) -> Vec<u8> {
    build_full(q, &q.question, rcode, false, answers, authority, q.flags, id)
}

#[allow(clippy::too_many_arguments)]
fn build_full(
    q: &ParsedQuery,
    question: &[u8],
    rcode: u16,
    tc: bool,
    answers: &[Vec<u8>],
    authority: &[Vec<u8>],
    query_flags: u16,
    id: u16,
) -> Vec<u8> {
    let opcode = query_flags & 0x7800;
    let rd = query_flags & 0x0100;
    let cd = query_flags & 0x0010;
    let tc = if tc { 0x0200 } else { 0 };
    // QR | opcode | AA | TC | RD | RA | CD | RCODE
    let flags = 0x8000 | opcode | 0x0400 | tc | rd | 0x0080 | cd | (rcode & 0xF);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&(authority.len() as u16).to_be_bytes());
    out.extend_from_slice(&(q.opt.is_some() as u16).to_be_bytes());
    out.extend_from_slice(question);
    for record in answers.iter().chain(authority) {
        out.extend_from_slice(record);
    }
    if let Some(opt) = &q.opt {
        out.extend_from_slice(&opt_echo(opt));
    }
    out
}

fn normal_answer(q: &ParsedQuery) -> Vec<u8> {
    let rec = if q.qtype == TYPE_TXT { txt_rr(NORMAL_TXT.as_bytes()) } else { a_rr(NORMAL_A) };
    build(q, &q.question, 0, false, &[rec], q.flags, q.id)
}

/// An answer of exactly `total` bytes (when possible; at most 65,535, the
/// largest DNS message), made of TXT records.
fn sized_answer(q: &ParsedQuery, total: usize) -> Vec<u8> {
    sized_answer_ttl(q, total, TTL)
}

/// [`sized_answer`] with records of TTL `ttl`.
fn sized_answer_ttl(q: &ParsedQuery, total: usize, ttl: u32) -> Vec<u8> {
    let total = total.min(65535);
    const RR_MIN: usize = 13; // ptr(2) + fixed(10) + empty string(1)
    const RR_MAX: usize = RR_MIN + 255;
    let base = build(q, &q.question, 0, false, &[], q.flags, q.id).len();
    let mut rest = total.saturating_sub(base);
    let mut records = Vec::new();
    let mut i = 0usize;
    while rest >= RR_MIN {
        let take = if rest <= RR_MAX {
            rest
        } else if rest - RR_MAX >= RR_MIN {
            RR_MAX
        } else {
            rest - RR_MIN
        };
        let fill = b'a' + (i % 26) as u8;
        records.push(txt_rr_ttl(&vec![fill; take - RR_MIN], ttl));
        rest -= take;
        i += 1;
    }
    let msg = build(q, &q.question, 0, false, &records, q.flags, q.id);
    debug_assert!(msg.len() == total || records.is_empty());
    msg
}
