//! Registering a socket with tokio's reactor for one direction only, which tokio's own socket
//! types do not offer (they always watch reading and writing). tokio's safe constructor for
//! that is deprecated as unsound for types that do not own their descriptor; the sound one is
//! `unsafe`, and sound here because the socket owns its descriptor.

use std::io;
use std::net::UdpSocket;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Hands `socket` (non-blocking) to the current runtime's reactor, watched for `interest` only.
/// Panics outside a tokio runtime, as tokio's constructors do.
pub fn watch_udp(socket: UdpSocket, interest: Interest) -> io::Result<AsyncFd<UdpSocket>> {
    // SAFETY: a `UdpSocket` owns its descriptor: it stays open, and `as_raw_fd` returns that
    // same descriptor, for as long as the `UdpSocket` lives, and the `AsyncFd` owns it until
    // the `AsyncFd` is dropped. That is all `register_with_interest` asks.
    unsafe { AsyncFd::register_with_interest(socket, interest) }.map_err(io::Error::from)
}
