//! Hostile DoT clients, for `tests/hostile.rs` and `tests/soak.rs`.
//!
//! Owns [`Attack`] (one kind of misbehaving client), [`one`] (one connection of it, until the
//! server closes it or the caller gives up) and [`run`] (several lanes of it in a loop until a
//! stop switch flips), and the raw TLS they need: a real ClientHello to send byte by byte, a
//! handshake whose record keys are then taken out of rustls ([`RawTls`]) so that a test can
//! write records rustls would never write (a fatal alert mid-stream, garbage that fails to
//! decrypt), and a TLS stream on a socket whose buffers were shrunk before it connected.
//!
//! Every attack reports how long the server took to close it, measured from just before the
//! client wrote its last bytes or, for handshake stalls, from just before its connect: the
//! server's timeouts start a little after those points, so a close is never early by this
//! clock. "Closed" is EOF, a reset, or a clean close_notify; the attacks never
//! close first.

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use hickory_proto::rr::RecordType;
use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ConnectionTrafficSecrets};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::{framed, query, query_edns, ClientOptions, DotClient};

/// One kind of misbehaving client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// Sends a real ClientHello one byte per `gap` and never finishes it.
    HelloTrickle { gap: Duration },
    /// Sends the first half of a ClientHello, then nothing.
    HelloHalf,
    /// Sends a whole ClientHello, takes the server's flight, never sends its Finished.
    HelloNoFinished,
    /// Connects and sends nothing at all.
    Silent,
    /// Completes TLS, sends a 2-byte frame length, then nothing.
    LengthThenStall,
    /// Completes TLS, sends a frame length and the first bytes of the query, then nothing.
    PartialQueryThenStall,
    /// Completes TLS, sends a TLS record header and part of its body, then nothing.
    PartialRecordThenStall,
    /// Plain DNS over TCP on the TLS port.
    CleartextDns,
    /// An HTTP request on the TLS port.
    Http,
    /// 1 KiB of random bytes (never starting like a TLS handshake record).
    RandomBytes,
    /// A TLS handshake record of the right size holding a ClientHello of random bytes.
    GarbageHello,
    /// Completes TLS, sends queries, then an encrypted fatal alert before their answers.
    FatalAlert,
    /// Completes TLS, sends queries, then an application-data record of random bytes (it
    /// fails to decrypt).
    GarbageRecord,
    /// Completes TLS, then sends an unencrypted alert record (not allowed after the handshake).
    PlaintextAlert,
    /// Completes TLS, sends queries and close_notify at once: every answer must still come,
    /// then the server's close.
    CloseNotifyInFlight,
    /// Completes TLS on a socket with small buffers and pipelines `queries` padded queries
    /// without ever reading an answer.
    PipelineNeverRead { queries: usize },
}

/// Queries sent by the attacks that send some before misbehaving.
const QUERIES_IN_FLIGHT: u16 = 8;
/// A write that makes no progress for this long counts as stalled (the server stopped reading).
const STALL: Duration = Duration::from_millis(300);

/// dotgate's timeouts as a test set them, and how late a close may come on a busy VM.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub handshake: Duration,
    pub idle: Duration,
    pub late: Duration,
}

impl Attack {
    /// When dotgate must close a connection of this attack, from the reference point of
    /// [`Closed::after`]: handshake stalls at the handshake timeout from their connect (never
    /// before: dotgate's clock starts at accept, a little after); abandoned frames at the idle
    /// timeout from their last byte (which dotgate read after it was sent); what is not TLS, or
    /// breaks TLS, at once ("at once" is within a second, far below any timeout); a client that
    /// takes no answers within the idle timeout of when its writes stopped moving (dotgate's
    /// last progress came a little before that).
    pub fn expected_close(self, t: Timeouts) -> std::ops::RangeInclusive<Duration> {
        let at_once = Duration::ZERO..=Duration::from_secs(1);
        match self {
            Attack::HelloTrickle { .. } | Attack::HelloHalf | Attack::HelloNoFinished => {
                t.handshake..=t.handshake + t.late
            }
            // A connection that sends nothing waits in the kernel (TCP_DEFER_ACCEPT, 1 s, then
            // the next SYN-ACK retransmission) before dotgate sees it and its clock starts.
            Attack::Silent => t.handshake..=t.handshake + Duration::from_secs(4) + t.late,
            Attack::LengthThenStall | Attack::PartialQueryThenStall | Attack::PartialRecordThenStall => {
                t.idle..=t.idle + t.late
            }
            Attack::CleartextDns | Attack::Http | Attack::RandomBytes | Attack::GarbageHello => at_once,
            Attack::FatalAlert | Attack::GarbageRecord | Attack::PlaintextAlert => at_once,
            // The answers to the queries in flight come first.
            Attack::CloseNotifyInFlight => Duration::ZERO..=Duration::from_secs(2),
            Attack::PipelineNeverRead { .. } => Duration::ZERO..=t.idle + t.late,
        }
    }

    /// How long an attack connection may go unclosed before the attack gives up on it.
    pub fn give_up(self, t: Timeouts) -> Duration {
        *self.expected_close(t).end() + Duration::from_secs(3)
    }
}

/// What one attack connection saw.
#[derive(Debug, Clone, Default)]
pub struct Closed {
    /// From the reference point (see the module docs) to the server's close.
    pub after: Duration,
    /// DNS answers received (only `CloseNotifyInFlight` reads them).
    pub answers: usize,
    /// Queries the client managed to hand to the socket (`PipelineNeverRead`).
    pub pushed: usize,
    /// The server closed with close_notify (as opposed to a bare FIN or a reset), where the
    /// attack can tell.
    pub clean: bool,
}

/// Every connection of one attack run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub attack: Option<Attack>,
    pub closed: Vec<Closed>,
    /// Connections the server had not closed when the attack gave up on them.
    pub not_closed: usize,
    /// Connections that failed before the attack could misbehave (connect or handshake
    /// errors), with the first few reasons.
    pub failed: usize,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn connections(&self) -> usize {
        self.closed.len() + self.not_closed + self.failed
    }

    /// The longest time to close, or zero.
    pub fn slowest_close(&self) -> Duration {
        self.closed.iter().map(|c| c.after).max().unwrap_or_default()
    }

    pub fn fastest_close(&self) -> Duration {
        self.closed.iter().map(|c| c.after).min().unwrap_or_default()
    }

    pub fn median_close(&self) -> Duration {
        let mut times: Vec<Duration> = self.closed.iter().map(|c| c.after).collect();
        times.sort();
        times.get(times.len() / 2).copied().unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:?}: {} connections, {} closed by the server (after {:.1} .. median {:.1} .. {:.1} ms), {} not closed, {} failed {:?}",
            self.attack,
            self.connections(),
            self.closed.len(),
            ms(self.fastest_close()),
            ms(self.median_close()),
            ms(self.slowest_close()),
            self.not_closed,
            self.failed,
            self.errors
        )
    }

    /// `Err` unless every connection was closed by the server within `attack.expected_close`
    /// and there were some: the attack's verdict.
    pub fn check(&self, t: Timeouts) -> Result<(), String> {
        let attack = self.attack.expect("an outcome of `run`");
        let within = attack.expected_close(t);
        if self.closed.is_empty() {
            return Err(format!("no connection got as far as the attack: {}", self.summary()));
        }
        if self.failed > 0 || self.not_closed > 0 {
            return Err(format!("failed or never closed by dotgate: {}", self.summary()));
        }
        if let Some(c) = self.closed.iter().find(|c| !within.contains(&c.after)) {
            return Err(format!("closed after {:?}, not within {within:?}: {}", c.after, self.summary()));
        }
        Ok(())
    }

    fn merge(&mut self, other: Outcome) {
        self.closed.extend(other.closed);
        self.not_closed += other.not_closed;
        self.failed += other.failed;
        for e in other.errors {
            if self.errors.len() < 5 {
                self.errors.push(e);
            }
        }
    }
}

/// The stop switch of [`run`]: flip it with `send(true)`.
pub fn stop_switch() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// Runs `lanes` concurrent loops of `attack` until `stop` flips: each loop makes one
/// connection at a time, waits (at most `give_up`) for the server to close it, pauses
/// `pause`, and goes again. A connection under way when `stop` flips is finished, so that
/// every connection is judged.
pub async fn run(
    addr: SocketAddr,
    attack: Attack,
    lanes: usize,
    pause: Duration,
    give_up: Duration,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut rng = rand::rngs::StdRng::seed_from_u64(lane as u64);
                // Lanes start spread over one pause, not in one burst.
                let stagger = pause.mul_f64(rng.random_range(0.0..1.0));
                tokio::time::sleep(stagger).await;
                while !*stop.borrow() {
                    match one(addr, attack, give_up).await {
                        Ok(Some(closed)) => outcome.closed.push(closed),
                        Ok(None) => outcome.not_closed += 1,
                        Err(e) => {
                            outcome.failed += 1;
                            if outcome.errors.len() < 5 {
                                outcome.errors.push(e.to_string());
                            }
                        }
                    }
                    tokio::time::sleep(pause).await;
                }
                outcome
            })
        })
        .collect();
    let mut all = Outcome { attack: Some(attack), ..Default::default() };
    for task in tasks {
        all.merge(task.await.expect("attack lane panicked"));
    }
    all
}

/// One connection of `attack`: `Ok(Some)` when the server closed it within `give_up`,
/// `Ok(None)` when it did not, `Err` when the attack could not get as far as misbehaving.
pub async fn one(addr: SocketAddr, attack: Attack, give_up: Duration) -> io::Result<Option<Closed>> {
    match attack {
        Attack::HelloTrickle { gap } => {
            let started = Instant::now();
            let mut tcp = connect(addr).await?;
            let hello = client_hello();
            for byte in &hello[..hello.len() - 1] {
                if tcp.write_all(&[*byte]).await.is_err() {
                    return Ok(Some(closed_at(started)));
                }
                if closed_within(&mut tcp, gap).await {
                    return Ok(Some(closed_at(started)));
                }
                if started.elapsed() > give_up {
                    return Ok(None);
                }
            }
            Ok(None)
        }
        Attack::HelloHalf => {
            let started = Instant::now();
            let mut tcp = connect(addr).await?;
            let hello = client_hello();
            tcp.write_all(&hello[..hello.len() / 2]).await?;
            Ok(closed_within(&mut tcp, give_up).await.then(|| closed_at(started)))
        }
        Attack::HelloNoFinished => {
            let started = Instant::now();
            let mut tcp = connect(addr).await?;
            tcp.write_all(&client_hello()).await?;
            // The server's flight arrives and is read (and dropped) while waiting for the close.
            Ok(closed_within(&mut tcp, give_up).await.then(|| closed_at(started)))
        }
        Attack::Silent => {
            let started = Instant::now();
            let mut tcp = connect(addr).await?;
            Ok(closed_within(&mut tcp, give_up).await.then(|| closed_at(started)))
        }
        Attack::LengthThenStall | Attack::PartialQueryThenStall | Attack::PartialRecordThenStall => {
            let mut client = DotClient::connect(addr).await?;
            let framed = framed(&query("stall.example.test.", RecordType::A, 1));
            // Taken before the write: dotgate's idle clock restarts when it reads these bytes,
            // which is after this; taken after, a busy runtime could date it late.
            let quiet = Instant::now();
            match attack {
                Attack::LengthThenStall => client.send_raw(&framed[..2]).await?,
                Attack::PartialQueryThenStall => client.send_raw(&framed[..9]).await?,
                _ => {
                    // A record header announcing 100 bytes, and 40 of them.
                    let mut partial = vec![23, 3, 3, 0, 100];
                    partial.extend_from_slice(&[0x5a; 40]);
                    client.get_mut().get_mut().0.write_all(&partial).await?;
                }
            }
            let clean = match client.recv_timeout(give_up).await {
                Ok(None) => true,
                Ok(Some(_)) => return Err(io::Error::other("an answer to a query never completed")),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
                Err(_) => false,
            };
            Ok(Some(Closed { clean, ..closed_at(quiet) }))
        }
        Attack::CleartextDns | Attack::Http | Attack::RandomBytes | Attack::GarbageHello => {
            let bytes = match attack {
                Attack::CleartextDns => framed(&query("www.example.test.", RecordType::A, 7)),
                Attack::Http => b"GET /dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlBHRlc3QAAAEAAQ HTTP/1.1\r\nHost: dot.example.test\r\nAccept: application/dns-message\r\n\r\n".to_vec(),
                Attack::RandomBytes => {
                    let mut bytes = vec![0u8; 1024];
                    rand::rng().fill(&mut bytes[..]);
                    // 20 to 24 start a TLS record (22 a handshake): with 3 next, a header that
                    // announces more than was sent is a record still arriving, rightly waited for
                    // until the handshake timeout (seen: [21, 3, 3, 0x10, 0] closes after it), not
                    // garbage. About one random connection in 80,000; CI met one.
                    if (20..=24).contains(&bytes[0]) {
                        bytes[0] = 0xff;
                    }
                    bytes
                }
                _ => garbage_hello(),
            };
            let mut tcp = connect(addr).await?;
            tcp.write_all(&bytes).await?;
            let quiet = Instant::now();
            Ok(closed_within(&mut tcp, give_up).await.then(|| closed_at(quiet)))
        }
        Attack::FatalAlert | Attack::GarbageRecord | Attack::PlaintextAlert => {
            let mut raw = RawTls::connect(addr).await?;
            let mut burst = Vec::new();
            if attack != Attack::PlaintextAlert {
                for id in 0..QUERIES_IN_FLIGHT {
                    let q = query(&format!("q{id}.alert.example.test."), RecordType::A, id);
                    burst.extend(raw.seal(23, &framed(&q)));
                }
            }
            match attack {
                // fatal (2), internal_error (80)
                Attack::FatalAlert => burst.extend(raw.seal(21, &[2, 80])),
                Attack::GarbageRecord => {
                    let mut body = vec![0u8; 64];
                    rand::rng().fill(&mut body[..]);
                    burst.extend_from_slice(&[23, 3, 3, 0, 64]);
                    burst.extend(body);
                }
                // An unprotected fatal alert record after the handshake: decode_error (50).
                _ => burst.extend_from_slice(&[21, 3, 3, 0, 2, 2, 50]),
            }
            raw.tcp.write_all(&burst).await?;
            let quiet = Instant::now();
            Ok(closed_within(&mut raw.tcp, give_up).await.then(|| closed_at(quiet)))
        }
        Attack::CloseNotifyInFlight => {
            let mut client = DotClient::connect(addr).await?;
            let mut burst = Vec::new();
            for id in 0..QUERIES_IN_FLIGHT {
                burst.extend(framed(&query("www.example.test.", RecordType::A, id)));
            }
            client.send_raw(&burst).await?;
            client.close_notify().await?;
            let quiet = Instant::now();
            let mut answers = 0;
            loop {
                match client.recv_timeout(give_up.saturating_sub(quiet.elapsed())).await {
                    Ok(Some(_)) => answers += 1,
                    Ok(None) => return Ok(Some(Closed { answers, clean: true, ..closed_at(quiet) })),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
                    Err(_) => return Ok(Some(Closed { answers, ..closed_at(quiet) })),
                }
            }
        }
        Attack::PipelineNeverRead { queries } => pipeline_never_read(addr, queries, give_up).await,
    }
}

fn closed_at(since: Instant) -> Closed {
    Closed { after: since.elapsed(), ..Default::default() }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// True when the server closes (EOF or reset) `tcp` within `d`; what it sends meanwhile is
/// read and dropped.
async fn closed_within(tcp: &mut TcpStream, d: Duration) -> bool {
    super::client::is_closed_within(tcp, d).await
}

/// The first flight of a real TLS client (rustls: TLS 1.3 and 1.2, ALPN "dot").
pub fn client_hello() -> Vec<u8> {
    let config = ClientOptions::default().client_config().expect("client config");
    let name = ServerName::try_from("dot.example.test").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).expect("client connection");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("ClientHello");
    out
}

/// A handshake record of the right length holding a ClientHello message (type 1, its length
/// right) whose body is random: complete, so the server must judge it at once.
fn garbage_hello() -> Vec<u8> {
    let mut body = vec![0u8; 200];
    rand::rng().fill(&mut body[..]);
    let mut handshake = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![22, 3, 1, (handshake.len() >> 8) as u8, handshake.len() as u8];
    record.extend(handshake);
    record
}

/// Counts the bytes written through it (to see when a writer stops making progress).
struct CountedWrites<S> {
    inner: S,
    written: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedWrites<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedWrites<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.written.fetch_add(n, Ordering::Relaxed);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A TLS client on a socket whose buffers are small (set before connecting, so the window is
/// small from the start): the server's answers fill them after a few dozen, and then only the
/// server's own buffering and backpressure are left.
///
/// It announces an Ethernet-sized MSS (1460), as a client across the Internet does. On
/// loopback (64 KiB MSS) the kernel would let the server's send buffer grow to its maximum
/// (`tcp_wmem`, 4 MiB here) within a few round trips, which no Internet client gets: the
/// autotuning sizes the buffer from the MSS and a congestion window that a closed receive
/// window keeps from growing.
async fn small_buffer_tls(
    addr: SocketAddr,
    written: Arc<AtomicUsize>,
) -> io::Result<tokio_rustls::client::TlsStream<CountedWrites<TcpStream>>> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.set_send_buffer_size(4096)?;
    socket.set_tcp_mss(1460)?;
    socket.set_nonblocking(true)?;
    let socket = TcpSocket::from_std_stream(socket.into());
    let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
    tcp.set_nodelay(true)?;
    let config = ClientOptions::default().client_config()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("dot.example.test").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(name, CountedWrites { inner: tcp, written: written.clone() }),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Pipelines `queries` queries that ask for padding (answers of 468 bytes, so that they fill
/// buffers fast) and never reads. Waits until the writes stop making progress (the server
/// stopped reading), then for the server to close: the pending write then fails.
async fn pipeline_never_read(addr: SocketAddr, queries: usize, give_up: Duration) -> io::Result<Option<Closed>> {
    let written = Arc::new(AtomicUsize::new(0));
    let mut tls = small_buffer_tls(addr, written.clone()).await?;
    let handshake_bytes = written.load(Ordering::Relaxed);
    let one = framed(&query_edns("www.example.test.", RecordType::A, 0, false, false, vec![(12, vec![])]));
    let mut burst = Vec::with_capacity(one.len() * queries);
    for id in 0..queries {
        let start = burst.len();
        burst.extend_from_slice(&one);
        burst[start + 2..start + 4].copy_from_slice(&(id as u16).to_be_bytes());
    }
    let writer = tokio::spawn(async move {
        let result = tls.write_all(&burst).await.and(tls.flush().await);
        // Held (never read) until the server gives up on it.
        (result, tls)
    });
    // Wait for the stall: no byte taken for `STALL`.
    let mut last = written.load(Ordering::Relaxed);
    let mut stalled_at = Instant::now();
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = written.load(Ordering::Relaxed);
        if now != last {
            last = now;
            stalled_at = Instant::now();
        } else if stalled_at.elapsed() >= STALL || writer.is_finished() {
            break;
        }
        if started.elapsed() > give_up {
            writer.abort();
            return Ok(None);
        }
    }
    // Bytes of TLS records on the wire per query, roughly (record overhead shared by many).
    let pushed = (last - handshake_bytes) / one.len();
    let deadline = stalled_at + give_up;
    match tokio::time::timeout_at(deadline, writer).await {
        Err(_) => Ok(None),
        Ok(Err(e)) => Err(io::Error::other(format!("writer task: {e}"))),
        // Every query went out: the server read them all, which is only fine if it also kept
        // the answers bounded; report it and let the test judge (it holds the connection).
        Ok(Ok((Ok(()), tls))) => {
            let mut tls = tls;
            let mut buf = [0u8; 1];
            // Not reading answers: wait for the close by a zero-byte probe of the socket state.
            let closed = tokio::time::timeout_at(deadline, async {
                loop {
                    if tls.get_mut().0.inner.peek(&mut buf).await.map(|n| n == 0).unwrap_or(true) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
            .is_ok();
            Ok(closed.then(|| Closed { after: stalled_at.elapsed(), pushed: queries, ..Default::default() }))
        }
        Ok(Ok((Err(_), _))) => Ok(Some(Closed { after: stalled_at.elapsed(), pushed, ..Default::default() })),
    }
}

/// A TLS 1.3 connection whose handshake rustls did, and whose record keys were then taken
/// out of rustls so that the test writes the records itself (AES-128-GCM, dotgate's choice).
pub struct RawTls {
    pub tcp: TcpStream,
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    /// The client's last handshake flight (its Finished), when [`RawTls::connect_holding_finished`]
    /// kept it back: the caller sends it, with whatever it likes behind it in the same write.
    pub finished: Vec<u8>,
}

impl RawTls {
    pub async fn connect(addr: SocketAddr) -> io::Result<RawTls> {
        RawTls::handshake(addr, false).await
    }

    /// Like [`RawTls::connect`], but the client's Finished is not sent: it is in
    /// [`RawTls::finished`], so that it can reach the server in one piece with the records
    /// after it (as a client's Finished and its first query usually do).
    pub async fn connect_holding_finished(addr: SocketAddr) -> io::Result<RawTls> {
        RawTls::handshake(addr, true).await
    }

    async fn handshake(addr: SocketAddr, hold_finished: bool) -> io::Result<RawTls> {
        let mut config = ClientOptions::tls13_only().client_config()?;
        config.enable_secret_extraction = true;
        let name = ServerName::try_from("dot.example.test").unwrap();
        let mut conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let mut tcp = connect(addr).await?;
        let mut buf = vec![0u8; 32 * 1024];
        let mut finished = Vec::new();
        let handshake = async {
            loop {
                while conn.wants_write() {
                    let mut out = Vec::new();
                    conn.write_tls(&mut out)?;
                    if hold_finished && !conn.is_handshaking() {
                        finished.extend(out);
                    } else {
                        tcp.write_all(&out).await?;
                    }
                }
                if !conn.is_handshaking() {
                    return Ok::<_, io::Error>(());
                }
                let n = tcp.read(&mut buf).await?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the handshake"));
                }
                let mut input = &buf[..n];
                while !input.is_empty() {
                    conn.read_tls(&mut input)?;
                    conn.process_new_packets().map_err(io::Error::other)?;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), handshake)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let secrets = conn.dangerous_extract_secrets().map_err(io::Error::other)?;
        let (seq, ConnectionTrafficSecrets::Aes128Gcm { key, iv }) = secrets.tx else {
            return Err(io::Error::other("dotgate did not pick TLS_AES_128_GCM_SHA256"));
        };
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key.as_ref()).map_err(io::Error::other)?);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(iv.as_ref());
        Ok(RawTls { tcp, key, iv: nonce, seq, finished })
    }

    /// One TLS 1.3 record carrying `payload` as content type `inner` (23 data, 21 alert).
    pub fn seal(&mut self, inner: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = payload.to_vec();
        body.push(inner);
        let len = body.len() + AES_128_GCM.tag_len();
        let header = [23, 3, 3, (len >> 8) as u8, len as u8];
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(header), &mut body)
            .expect("seal");
        let mut record = header.to_vec();
        record.extend(body);
        record
    }
}

/// A crowd of well-behaved clients that each asked one question and went quiet, held open.
pub async fn idle_crowd(addr: SocketAddr, count: usize, lanes: usize) -> io::Result<Vec<DotClient>> {
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let failures = failures.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                for i in (lane..count).step_by(lanes) {
                    let attempt = async {
                        let mut client = DotClient::connect(addr).await?;
                        client.send(&query("www.example.test.", RecordType::A, i as u16)).await?;
                        match client.recv_timeout(Duration::from_secs(10)).await? {
                            Some(answer) if answer.get(..2) == Some(&(i as u16).to_be_bytes()[..]) => {
                                Ok::<_, io::Error>(client)
                            }
                            Some(_) => Err(io::Error::other("answer with another ID")),
                            None => Err(io::Error::other("closed instead of answering")),
                        }
                    };
                    match attempt.await {
                        Ok(client) => held.push(client),
                        Err(e) => failures.lock().unwrap().push(format!("client {i}: {e}")),
                    }
                }
                held
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.map_err(io::Error::other)?);
    }
    let failures = failures.lock().unwrap();
    if !failures.is_empty() {
        return Err(io::Error::other(format!(
            "{} of {count} idle clients failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        )));
    }
    Ok(all)
}

/// Reads a `/proc` file of `pid` (for RSS and descriptor counts).
fn proc_file(pid: u32, name: &str) -> io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(format!("/proc/{pid}/{name}"))?.read_to_string(&mut s)?;
    Ok(s)
}

/// Resident memory of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = proc_file(pid, "status").expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd").count()
}

/// Lifts this process's open-file soft limit to its hard limit (it holds a socket per client).
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit on a local struct, no other memory involved.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}
