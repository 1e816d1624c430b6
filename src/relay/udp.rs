//! Upstream UDP sockets: binding them (one group per address family, each socket on its own
//! OS-chosen random port) and the receive loop that feeds datagrams to the relay.
//!
//! Owns the sockets and the receive buffer. It never matches answers itself (`Relay` does)
//! and never blocks: a loop drains what the kernel has, then yields.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::Relay;

/// Kernel receive buffer asked for each upstream socket: a burst of answers to many clients
/// must not overflow while the worker is busy writing to connections. (The kernel caps it at
/// `net.core.rmem_max`.)
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Kernel send buffer asked for each upstream socket.
const SEND_BUFFER_BYTES: usize = 1 << 20;
/// Largest UDP payload over IPv4/IPv6 (65,535 minus headers), so no answer is ever cut.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams taken per wake-up before yielding, so connections get to write what arrived.
const RECV_BURST: usize = 64;

/// The upstream sockets of one worker: IPv4 ones first, then IPv6 ones.
pub struct SocketGroups {
    sockets: Vec<UdpSocket>,
    v4: Range<usize>,
    v6: Range<usize>,
}

impl SocketGroups {
    /// Binds `per_family` sockets for each address family the backends use.
    pub fn bind(backends: &[SocketAddr], per_family: usize) -> io::Result<SocketGroups> {
        let mut sockets = Vec::new();
        let wants_v4 = backends.iter().any(SocketAddr::is_ipv4);
        let wants_v6 = backends.iter().any(SocketAddr::is_ipv6);
        if wants_v4 {
            for _ in 0..per_family {
                sockets.push(bind_one(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))?);
            }
        }
        let v4 = 0..sockets.len();
        if wants_v6 {
            for _ in 0..per_family {
                sockets.push(bind_one(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))?);
            }
        }
        let v6 = v4.end..sockets.len();
        Ok(SocketGroups { sockets, v4, v6 })
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// The socket indexes that can reach `addr`.
    pub fn for_family(&self, addr: SocketAddr) -> Range<usize> {
        if addr.is_ipv4() {
            self.v4.clone()
        } else {
            self.v6.clone()
        }
    }

    pub fn get(&self, index: usize) -> &UdpSocket {
        &self.sockets[index]
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer only means more drops under bursts.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SEND_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Reads datagrams from upstream socket `index` for as long as the worker runs (the task is
/// dropped with the worker's task set).
pub async fn receive_loop(relay: Rc<Relay>, index: usize) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let socket = relay.sockets.get(index);
        if socket.readable().await.is_err() {
            return;
        }
        let mut drained = false;
        for _ in 0..RECV_BURST {
            match socket.try_recv_from(&mut buf) {
                Ok((len, src)) => relay.on_udp_datagram(index, &mut buf[..len], normalize(src)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                // ICMP errors surface here on some kernels; the query's deadline handles it.
                Err(_) => continue,
            }
        }
        if !drained {
            tokio::task::yield_now().await;
        }
    }
}

/// An IPv4-mapped IPv6 source compares equal to the IPv4 backend address it is.
fn normalize(src: SocketAddr) -> SocketAddr {
    match src {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => src,
        },
        v4 => v4,
    }
}
