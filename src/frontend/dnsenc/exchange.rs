//! One request and the one answer taken for it, over UDP or TCP, for the DNSENC client tools
//! (`tools::query` and the NSK fetch in `trust`): what counts as the answer is the caller's
//! `accept`; everything else that arrives is ignored until the deadline, since anyone on the
//! path can send a datagram (and ICMP errors, which anyone can forge, only colour the timeout
//! message).
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
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("no answer from {server} within {} s over TCP", timeout.as_secs_f64());
    let mut stream = TcpStream::connect_timeout(&server, timeout)
        .map_err(|e| format!("cannot connect to {server} over TCP: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Vec::with_capacity(2 + request.len());
    framed.extend_from_slice(&(request.len() as u16).to_be_bytes());
    framed.extend_from_slice(request);
    stream.set_write_timeout(Some(timeout)).map_err(|e| format!("cannot send to {server} over TCP: {e}"))?;
    stream.write_all(&framed).map_err(|e| format!("cannot send to {server} over TCP: {e}"))?;
    traffic.sent += request.len();
    traffic.round_trips += 1;
    let mut read = |buf: &mut [u8]| -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(left)).map_err(|e| format!("cannot wait on the TCP connection: {e}"))?;
        stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            io::ErrorKind::UnexpectedEof => format!("{server} closed the TCP connection without an answer"),
            _ => format!("cannot receive from {server} over TCP: {e}"),
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
