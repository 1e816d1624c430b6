//! Batched UDP system calls: `recvmmsg` and `sendmmsg` (Linux).
//!
//! Why hand-rolled: quinn-udp, the well-kept crate for this, receives with `recvmmsg` but sends
//! one `sendmsg` per datagram, and its GSO path needs equal-sized datagrams to one destination,
//! which queries to several backends are not; it also switches on socket options (GRO, DF,
//! timestamps) a DNS relay does not want. One `recvmmsg` takes up to `RECV_SLOTS` answers,
//! one `sendmmsg` sends every query a client's read produced. The kernel's per-packet work
//! stays; what goes is a system call per packet.
//!
//! This module owns the message arrays and receive buffers; it never interprets a datagram.
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use socket2::SockAddr;

/// Datagrams one `recvmmsg` may return.
pub const RECV_SLOTS: usize = 16;
/// Each receive slot holds the largest UDP payload, so no answer is ever cut short. The
/// buffers are allocated zeroed and untouched pages stay out of RSS.
const SLOT_BYTES: usize = 65_535;

/// Receive buffers and the `mmsghdr` array that points into them.
pub struct RecvBatch {
    buffers: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// Datagrams the last `recv` returned.
    received: usize,
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        let mut batch = RecvBatch {
            buffers: vec![0u8; RECV_SLOTS * SLOT_BYTES],
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid (AF_UNSPEC) value.
            addrs: (0..RECV_SLOTS).map(|_| unsafe { zeroed() }).collect(),
            iovecs: Vec::with_capacity(RECV_SLOTS),
            headers: Vec::with_capacity(RECV_SLOTS),
            received: 0,
        };
        for slot in 0..RECV_SLOTS {
            batch.iovecs.push(libc::iovec {
                // The heap blocks of `buffers`, `addrs` and `iovecs` never move: none of the
                // vectors is resized after this loop (capacity was reserved up front).
                iov_base: batch.buffers[slot * SLOT_BYTES..].as_mut_ptr().cast(),
                iov_len: SLOT_BYTES,
            });
        }
        for slot in 0..RECV_SLOTS {
            // SAFETY: mmsghdr is plain data; all-zero is valid, the fields are set below.
            let mut header: libc::mmsghdr = unsafe { zeroed() };
            header.msg_hdr.msg_name = (&mut batch.addrs[slot] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut batch.iovecs[slot];
            header.msg_hdr.msg_iovlen = 1;
            batch.headers.push(header);
        }
        batch
    }

    /// One `recvmmsg` on a non-blocking socket: the number of datagrams now in the batch, or
    /// `WouldBlock` when none was waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: every header points at its own address slot and its own iovec, which points
        // at its own SLOT_BYTES-long part of `buffers`; all live as long as `self`, which is
        // borrowed mutably for the call. MSG_DONTWAIT: never block the worker.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                RECV_SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// Datagram `i` of the last `recv`: its bytes and its source, or `None` for a source that
    /// is not an IP address.
    pub fn datagram(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr)> {
        assert!(i < self.received);
        let header = &self.headers[i];
        let len = (header.msg_len as usize).min(SLOT_BYTES);
        let source = socket_addr(&self.addrs[i])?;
        Some((&mut self.buffers[i * SLOT_BYTES..i * SLOT_BYTES + len], source))
    }
}

/// The IP address the kernel wrote into `storage`, if it is one.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let v4 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(v6.sin6_port), v6.sin6_flowinfo, v6.sin6_scope_id)))
        }
        _ => None,
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

/// Reusable arrays for `sendmmsg`.
#[derive(Default)]
pub struct SendBatch {
    addrs: Vec<SockAddr>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// Positions (in the order given to the last `send`) of the datagrams the kernel refused.
    refused: Vec<usize>,
}

impl SendBatch {
    /// Sends `datagrams` (destination, payload) with as few `sendmmsg` calls as the kernel
    /// allows. A datagram the kernel refuses (too large, no route) is skipped and counted, so
    /// that one bad query never holds back the others; a full send buffer stops the batch, and
    /// the datagrams from `outcome.sent + outcome.refused` on are left for the caller.
    pub fn send<'a>(&mut self, fd: RawFd, datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>) -> SendOutcome {
        self.addrs.clear();
        self.iovecs.clear();
        self.headers.clear();
        self.refused.clear();
        for (addr, payload) in datagrams {
            self.addrs.push(SockAddr::from(addr));
            self.iovecs.push(libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: payload.len() });
        }
        for i in 0..self.addrs.len() {
            // SAFETY: mmsghdr is plain data; all-zero is valid, the fields are set below.
            let mut header: libc::mmsghdr = unsafe { zeroed() };
            header.msg_hdr.msg_name = self.addrs[i].as_ptr() as *mut _;
            header.msg_hdr.msg_namelen = self.addrs[i].len();
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        let mut outcome = SendOutcome::default();
        loop {
            let done = outcome.sent + outcome.refused;
            if done >= self.headers.len() {
                return outcome;
            }
            // SAFETY: the headers point at addresses in `self.addrs` and iovecs in
            // `self.iovecs`, which point at payloads the caller keeps borrowed for the lifetime
            // 'a, i.e. across this call; nothing is resized until it returns. The kernel only
            // reads the payloads.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers[done..].as_mut_ptr(),
                    (self.headers.len() - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                outcome.sent += n as usize;
                continue;
            }
            // sendmmsg reports an error only for the first datagram it could not send.
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => {
                    outcome.blocked = true;
                    return outcome;
                }
                io::ErrorKind::Interrupted => {}
                _ => {
                    self.refused.push(done);
                    outcome.refused += 1;
                }
            }
        }
    }
}

impl SendBatch {
    /// Which datagrams of the last `send` the kernel refused, by position in its input.
    pub fn refused(&self) -> &[usize] {
        &self.refused
    }
}

/// What one `SendBatch::send` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams it refused for good (skipped).
    pub refused: usize,
    /// The send buffer was full: the datagrams after `sent + refused` were not tried.
    pub blocked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_with_sources() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let big = vec![7u8; 60_000];
        let payloads: Vec<Vec<u8>> = vec![b"one".to_vec(), b"two".to_vec(), big.clone()];
        let mut send = SendBatch::default();
        let outcome = send.send(sender.as_raw_fd(), payloads.iter().map(|p| (to, p.as_slice())));
        assert_eq!(outcome, SendOutcome { sent: 3, refused: 0, blocked: false });

        let mut recv = RecvBatch::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            match recv.recv(receiver.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let (bytes, source) = recv.datagram(i).unwrap();
                        assert_eq!(source, sender.local_addr().unwrap());
                        got.push(bytes.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, payloads, "all three, whole, in order");
        assert_eq!(recv.recv(receiver.as_raw_fd()).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_datagram_the_kernel_refuses_does_not_hold_back_the_rest() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let too_big = vec![0u8; 65_530]; // over the 65,507-byte UDP payload limit: EMSGSIZE
        let payloads: Vec<&[u8]> = vec![b"before", &too_big, b"after"];
        let mut send = SendBatch::default();
        let outcome = send.send(sender.as_raw_fd(), payloads.iter().map(|p| (to, *p)));
        assert_eq!(outcome, SendOutcome { sent: 2, refused: 1, blocked: false });
        assert_eq!(send.refused(), &[1], "the refused datagram is named by its position");
        let mut buf = [0u8; 64];
        receiver.set_read_timeout(Some(std::time::Duration::from_secs(1))).unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"before");
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after");
    }
}
