//! Upstream UDP sockets: binding them (one group per address family, each socket on its own
//! OS-chosen random port) and the receive loop that feeds datagrams to the relay.
//!
//! Owns the sockets and the receive buffers. It never matches answers itself (`Relay` does)
//! and never blocks: a loop drains what the kernel has, then yields. Sends go out in batches
//! (`send_batch`), receives come in batches (`receive_loop`), through `dotgate_sys::mmsg`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;

use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::Relay;
use dotgate_sys::mmsg::{RecvBatch, SendBatch, SendOutcome, RECV_SLOTS};

/// Kernel receive buffer asked for each upstream socket: a burst of answers to many clients
/// must not overflow while the worker is busy writing to connections. (The kernel caps it at
/// `net.core.rmem_max`.)
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Kernel send buffer asked for each upstream socket.
const SEND_BUFFER_BYTES: usize = 1 << 20;
/// Full batches taken in a row before yielding, so connections get to write what arrived.
const MAX_ROUNDS_BEFORE_YIELD: usize = 4;

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

    /// Sends `datagrams` on socket `index` in as few system calls as possible (see
    /// `SendBatch::send`). A socket tokio does not see as writable sends nothing and reports
    /// itself blocked.
    pub fn send_batch<'a>(
        &self,
        index: usize,
        batch: &mut SendBatch,
        datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
    ) -> SendOutcome {
        let socket = &self.sockets[index];
        let fd = socket.as_raw_fd();
        let outcome = socket.try_io(Interest::WRITABLE, || {
            let outcome = batch.send(fd, datagrams);
            // Tell tokio the buffer is full so that it waits for the next writable edge.
            if outcome.blocked && outcome.sent == 0 && outcome.refused == 0 {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(outcome)
            }
        });
        outcome.unwrap_or(SendOutcome { sent: 0, refused: 0, blocked: true })
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
/// dropped with the worker's task set): up to `RECV_SLOTS` per system call.
pub async fn receive_loop(relay: Rc<Relay>, index: usize) {
    let mut batch = RecvBatch::new();
    loop {
        let socket = relay.sockets.get(index);
        if socket.readable().await.is_err() {
            return;
        }
        let mut rounds = 0;
        loop {
            let fd = socket.as_raw_fd();
            // A batch that did not fill every slot drained the socket: tell tokio so (a
            // WouldBlock from the closure clears the readiness it saw), or the next wait would
            // return at once for a `recvmmsg` that only says EAGAIN (half of all of them at
            // 20k qps before). A datagram that arrived after the call raises a new edge, and
            // tokio keeps the readiness when it saw that edge meanwhile, so none is missed.
            let mut received = 0;
            let outcome = socket.try_io(Interest::READABLE, || {
                received = batch.recv(fd)?;
                if received < RECV_SLOTS {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            for i in 0..received {
                match batch.datagram(i) {
                    Some((datagram, src)) => relay.on_udp_datagram(index, datagram, normalize(src)),
                    None => relay.count_garbage(),
                }
            }
            // Drained (or an error: ICMP errors surface here on some kernels, and the query's
            // deadline handles them).
            if outcome.is_err() {
                break;
            }
            rounds += 1;
            if rounds == MAX_ROUNDS_BEFORE_YIELD {
                // Let connections write what arrived before taking more.
                tokio::task::yield_now().await;
                rounds = 0;
            }
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
