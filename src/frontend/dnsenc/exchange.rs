//! One request and the one answer taken for it, over UDP, TCP or TLS, for the DNSENC client tools
//! (`tools::query` and the NSK fetch in `trust`) and the `dotgate pvt` client: what counts as
//! the answer is the caller's `accept`; everything else that arrives is ignored until the
//! deadline, since anyone on the path can send a datagram (and ICMP errors, which anyone can
//! forge, only colour the timeout message).
//!
//! Blocking std sockets: a tool asks one thing at a time. Never used by the listeners.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// What the exchanges of one lookup put on the wire: DNS messages sent and taken as answers
/// (without TCP's length prefix), and how many answers were waited for.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub sent: usize,
    pub received: usize,
    pub round_trips: u32,
}

/// Sends `request` over UDP and waits up to `timeout` for a datagram `accept` takes.
pub fn udp<T>(
    server: SocketAddr,
    request: &[u8],
    timeout: Duration,
    traffic: &mut Traffic,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, String> {
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(server).map_err(|e| format!("cannot send to {server}: {e}"))?;
    socket.send(request).map_err(|e| format!("cannot send to {server}: {e}"))?;
    traffic.sent += request.len();
    traffic.round_trips += 1;
    let deadline = Instant::now() + timeout;
    let mut refused = false;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let port_closed = if refused { " (the host said the port is closed)" } else { "" };
            return Err(format!("no answer from {server} within {} s over UDP{port_closed}", timeout.as_secs_f64()));
        }
        socket.set_read_timeout(Some(left)).map_err(|e| format!("cannot wait on the UDP socket: {e}"))?;
        match socket.recv(&mut buf) {
            Ok(len) => {
                if let Some(answer) = accept(&buf[..len]) {
                    traffic.received += len;
                    return Ok(answer);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused = true,
            Err(e) => return Err(format!("cannot receive from {server}: {e}")),
        }
    }
}

/// Sends `request` over a new TCP connection (2-byte length framing) and waits up to `timeout`
/// for a message `accept` takes, reading past any it does not.
pub fn tcp<T>(
    server: SocketAddr,
    request: &[u8],
    timeout: Duration,
    traffic: &mut Traffic,
    accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, String> {
    let wait = Wait { server, over: "TCP", timeout, deadline: Instant::now() + timeout };
    let (stream, socket) = connect(&wait)?;
    framed(stream, &socket, &wait, request, traffic, accept)
}

/// The same over TLS (DNS over TLS, RFC 7858): `config` checks the server's certificate for
/// `name`, and nothing is sent before the handshake has done so.
pub fn tls<T>(
    server: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
    request: &[u8],
    timeout: Duration,
    traffic: &mut Traffic,
    accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, String> {
    let wait = Wait { server, over: "TLS", timeout, deadline: Instant::now() + timeout };
    let (stream, socket) = connect(&wait)?;
    let tls =
        rustls::ClientConnection::new(config, name).map_err(|e| format!("cannot start TLS with {server}: {e}"))?;
    framed(rustls::StreamOwned::new(tls, stream), &socket, &wait, request, traffic, accept)
}

/// Where a stream exchange goes, over what, and until when.
struct Wait {
    server: SocketAddr,
    over: &'static str,
    timeout: Duration,
    deadline: Instant,
}

impl Wait {
    fn timed_out(&self) -> String {
        format!("no answer from {} within {} s over {}", self.server, self.timeout.as_secs_f64(), self.over)
    }
}

/// A new connection, twice: one to talk over, one to set its time limits with.
fn connect(wait: &Wait) -> Result<(TcpStream, TcpStream), String> {
    let server = wait.server;
    let stream = TcpStream::connect_timeout(&server, wait.timeout)
        .map_err(|e| format!("cannot connect to {server} over TCP: {e}"))?;
    let _ = stream.set_nodelay(true);
    let socket = stream.try_clone().map_err(|e| format!("cannot use the TCP connection to {server}: {e}"))?;
    Ok((stream, socket))
}

/// Writes `request` with its length and reads length-prefixed messages from `stream` until
/// `accept` takes one; `socket` is the TCP connection under it, for the time limits.
fn framed<T>(
    mut stream: impl Read + Write,
    socket: &TcpStream,
    wait: &Wait,
    request: &[u8],
    traffic: &mut Traffic,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, String> {
    let (server, over) = (wait.server, wait.over);
    let mut framed = Vec::with_capacity(2 + request.len());
    framed.extend_from_slice(&(request.len() as u16).to_be_bytes());
    framed.extend_from_slice(request);
    let send_error = |e: io::Error| format!("cannot send to {server} over {over}: {e}");
    // A TLS handshake reads while it writes: both wait at most the whole timeout.
    socket.set_write_timeout(Some(wait.timeout)).map_err(send_error)?;
    socket.set_read_timeout(Some(wait.timeout)).map_err(send_error)?;
    stream.write_all(&framed).and_then(|()| stream.flush()).map_err(send_error)?;
    traffic.sent += request.len();
    traffic.round_trips += 1;
    let mut read = |buf: &mut [u8]| -> Result<(), String> {
        let left = wait.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(wait.timed_out());
        }
        socket.set_read_timeout(Some(left)).map_err(|e| format!("cannot wait on the {over} connection: {e}"))?;
        stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => wait.timed_out(),
            io::ErrorKind::UnexpectedEof => format!("{server} closed the {over} connection without an answer"),
            _ => format!("cannot receive from {server} over {over}: {e}"),
        })
    };
    loop {
        let mut len = [0u8; 2];
        read(&mut len)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read(&mut msg)?;
        if let Some(answer) = accept(&msg) {
            traffic.received += msg.len();
            return Ok(answer);
        }
    }
}
