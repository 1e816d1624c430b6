//! Listening sockets, for every frontend: one per listen address per worker, all bound to the
//! same address with SO_REUSEPORT so that the kernel spreads new connections (TCP) and
//! datagrams (UDP, by source address and port) over the workers. Bound by the main thread
//! before workers start, so that a port in use is one error at start, and port 0 resolves to
//! one port that every worker shares.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;
/// TCP Fast Open requests queued at once (capped by the kernel at `somaxconn`).
const FAST_OPEN_QUEUE: u32 = 4096;
/// How long the kernel holds a connection that has sent nothing before handing it over
/// anyway (then the handshake timeout applies).
const DEFER_ACCEPT_SECS: u32 = 1;

/// Why a listen address could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

/// Binds `workers` listeners for every address. Returns them per worker, and the addresses
/// as bound (port 0 resolved). An IPv6 wildcard that the host cannot bind (no IPv6) is skipped
/// when another address remains; `skipped` gets it.
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
    fast_open: bool,
    skipped: &mut Vec<(SocketAddr, io::Error)>,
) -> Result<(Vec<Vec<std::net::TcpListener>>, Vec<SocketAddr>), ListenError> {
    let mut per_worker: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &wanted in addrs {
        let first = match bind_one(wanted, fast_open) {
            Ok(l) => l,
            Err(e) if wanted.is_ipv6() && wanted.ip().is_unspecified() && addrs.len() > 1 && no_ipv6(&e) => {
                skipped.push((wanted, e));
                continue;
            }
            Err(source) => return Err(ListenError { addr: wanted, source }),
        };
        let actual = first.local_addr().map_err(|source| ListenError { addr: wanted, source })?;
        per_worker[0].push(first);
        for listeners in per_worker.iter_mut().skip(1) {
            listeners.push(bind_one(actual, fast_open).map_err(|source| ListenError { addr: actual, source })?);
        }
        bound.push(actual);
    }
    Ok((per_worker, bound))
}

/// A UDP socket and a TCP listener on one address (DNS over UDP and TCP on one port), per
/// worker.
pub struct UdpAndTcp {
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
}

/// Binds `workers` UDP sockets and TCP listeners for every address, UDP and TCP on the same
/// port (port 0: one free port for both, taken by UDP first). Returns them per worker, and the
/// addresses as bound.
pub fn bind_udp_and_tcp_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> Result<(Vec<Vec<UdpAndTcp>>, Vec<SocketAddr>), ListenError> {
    let mut per_worker: Vec<Vec<UdpAndTcp>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &wanted in addrs {
        let first_udp = bind_udp(wanted).map_err(|source| ListenError { addr: wanted, source })?;
        let actual = first_udp.local_addr().map_err(|source| ListenError { addr: wanted, source })?;
        let first_tcp = bind_one(actual, false).map_err(|source| ListenError { addr: actual, source })?;
        per_worker[0].push(UdpAndTcp { udp: first_udp, tcp: first_tcp });
        for sockets in per_worker.iter_mut().skip(1) {
            let udp = bind_udp(actual).map_err(|source| ListenError { addr: actual, source })?;
            let tcp = bind_one(actual, false).map_err(|source| ListenError { addr: actual, source })?;
            sockets.push(UdpAndTcp { udp, tcp });
        }
        bound.push(actual);
    }
    Ok((per_worker, bound))
}

/// Kernel receive buffer asked for a UDP listener: a burst of queries must not overflow while
/// the worker is busy (the kernel caps it at `net.core.rmem_max`).
const UDP_RECV_BUFFER_BYTES: usize = 4 << 20;

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Best effort: a smaller buffer only means drops under bursts.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL))
}

fn bind_one(addr: SocketAddr, fast_open: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // Wake for a connection only when its ClientHello is there: one wake-up and no failed read
    // per handshake. Best effort: a kernel without it still serves.
    let _ = dotgate_sys::sockopt::set_defer_accept(&socket, DEFER_ACCEPT_SECS);
    if fast_open {
        // The ClientHello may ride in the SYN (RFC 7858 §3.4 recommends TFO), where the kernel
        // allows it (net.ipv4.tcp_fastopen with the server bit, 2).
        let _ = dotgate_sys::sockopt::set_fast_open(&socket, FAST_OPEN_QUEUE);
    }
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
