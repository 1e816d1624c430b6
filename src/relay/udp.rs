//! Upstream UDP sockets: binding them (one group per address family, each socket on its own
//! OS-chosen random port) and the receive loop that feeds datagrams to the relay.
//!
//! Owns the sockets and the receive buffers. It never matches answers itself (`Relay` does)
//! and never blocks: a loop drains what the kernel has, then yields. Sends go out in batches
//! (`send_batch`), receives come in batches (`receive_loop`), through `dotgate_sys::mmsg`.
//!
//! The sockets are registered with the worker's reactor for reading only. A UDP socket turns
//! writable again as soon as a sent datagram leaves it, and registered for writing too, each
//! round that sent a query handed the reactor an EPOLLOUT edge that nobody waits for: one more
//! trip through `epoll_wait` per round (3 wake-ups per query at 5,000 qps instead of 2). A send
//! that finds the buffer full, which UDP on loopback or a LAN practically never does (the
//! kernel drops rather than blocks), is retried after `SEND_RETRY`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;

use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

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
/// How long a send that found a socket's buffer full waits before it tries again.
pub const SEND_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// An upstream socket, watched by the reactor for reading only (see the module docs).
type UdpSocket = AsyncFd<std::net::UdpSocket>;

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

    /// Sends `datagrams` on socket `index` in as few system calls as possible (see
    /// `SendBatch::send`). The reactor does not watch for writability: a full buffer reports
    /// itself blocked, and the caller tries again after `SEND_RETRY`.
    pub fn send_batch<'a>(
        &self,
        index: usize,
        batch: &mut SendBatch,
        datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
    ) -> SendOutcome {
        batch.send(self.sockets[index].as_raw_fd(), datagrams)
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
    dotgate_sys::reactor::watch_udp(socket.into(), Interest::READABLE)
}

/// Reads datagrams from upstream socket `index` for as long as the worker runs (the task is
/// dropped with the worker's task set): up to `RECV_SLOTS` per system call.
pub async fn receive_loop(relay: Rc<Relay>, index: usize) {
    let mut batch = RecvBatch::new();
    let mut rounds = 0;
    loop {
        let socket = &relay.sockets.sockets[index];
        // At once while the last batch was full (the readiness stays set), else at the next
        // datagram.
        let Ok(mut ready) = socket.readable().await else { return };
        // A batch that did not fill every slot drained the socket: tell tokio so (a WouldBlock
        // from the closure clears the readiness it saw), or the next wait would return at once
        // for a `recvmmsg` that only says EAGAIN (half of all of them at 20k qps before). A
        // datagram that arrived after the call raises a new edge, and tokio keeps the readiness
        // when it saw that edge meanwhile, so none is missed.
        let mut received = 0;
        let outcome = ready.try_io(|socket| {
            received = batch.recv(socket.as_raw_fd())?;
            if received < RECV_SLOTS {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        drop(ready);
        for i in 0..received {
            match batch.datagram(i) {
                // An IPv4-mapped source compares equal to the IPv4 backend address it is.
                Some((datagram, src)) => relay.on_udp_datagram(index, datagram, crate::net::canonical_addr(src)),
                None => relay.count_garbage(),
            }
        }
        match outcome {
            // A full batch: more may be waiting; take it, but let connections write what
            // arrived every few batches.
            Ok(Ok(())) => {
                rounds += 1;
                if rounds == MAX_ROUNDS_BEFORE_YIELD {
                    tokio::task::yield_now().await;
                    rounds = 0;
                }
            }
            // Drained (readiness cleared), or an error: ICMP errors surface here on some
            // kernels, and the query's deadline handles them; the error is the socket's once.
            Ok(Err(_)) | Err(_) => rounds = 0,
        }
    }
}
