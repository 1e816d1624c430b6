//! Free loopback ports for test servers.
//!
//! Owns port selection: [`free_port`] hands out a port on 127.0.0.1 that was
//! free for BOTH UDP and TCP at the time of the call, and never hands out the
//! same port twice within one test process (so parallel tests in the same
//! binary cannot collide with each other). Another process can still grab the
//! port between this call and the moment the server binds it; the process
//! starters in this module tree retry with a fresh port when they see
//! "address in use".

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Binds a TCP listener and a UDP socket to the same, kernel-chosen port on
/// 127.0.0.1. Retries (up to 200 times) when the UDP side of the port is
/// taken. The caller owns both sockets; nothing else can take the port while
/// they are alive.
pub fn bind_pair() -> (TcpListener, UdpSocket) {
    for _ in 0..200 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind TCP 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) {
            return (tcp, udp);
        }
    }
    panic!("ports::bind_pair: no port free for both UDP and TCP after 200 tries");
}

/// A port on 127.0.0.1 free for both UDP and TCP right now, not handed out
/// before by this process.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let (tcp, udp) = bind_pair();
        let port = tcp.local_addr().expect("local_addr").port();
        drop(udp);
        drop(tcp);
        if handed_out().lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("ports::free_port: kept getting ports already handed out (200 tries)");
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}
