//! The gateway over UDP: one receive loop per `--pvt-listen` address per worker (SO_REUSEPORT
//! siblings). Each datagram goes to `gateway::PvtContext::handle` with a `ReplyTo` that sends
//! the answer back to its peer.
//!
//! Owns the sockets and the receive buffer; keeps nothing about a client once its answer is
//! sent. A send the kernel refuses is dropped, as UDP is.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::gateway::{PvtContext, Transport};
use crate::access::gate::Gate;
use crate::relay::ReplyTo;
use crate::runtime::shutdown::Shutdown;

/// Largest datagram taken.
const MAX_DATAGRAM: usize = 65_535;

/// Serves one UDP socket until shutdown.
pub async fn serve(
    ctx: Rc<PvtContext>,
    gate: Arc<Gate>,
    socket: std::net::UdpSocket,
    mut shutdown: Shutdown,
) -> io::Result<()> {
    let socket = Rc::new(UdpSocket::from_std(socket)?);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.wait() => return Ok(()),
            received = socket.recv_from(&mut buf) => received,
        };
        let Ok((len, peer)) = received else { continue };
        if !gate.acl_allows(peer.ip()) {
            continue;
        }
        let reply: Rc<dyn ReplyTo> = Rc::new(Datagram { socket: socket.clone(), peer });
        if gate.limits_queries() && !gate.allow_query(gate.client_key(peer.ip()), std::time::Instant::now()) {
            ctx.stats.refused("rate_limited");
            ctx.local(&buf[..len], &reply, 0, crate::dns::rcode::REFUSED);
            continue;
        }
        ctx.handle(&buf[..len], reply, 0, Transport::Udp);
    }
}

/// An answer's way back to a UDP client.
struct Datagram {
    socket: Rc<UdpSocket>,
    peer: SocketAddr,
}

impl ReplyTo for Datagram {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Pvt
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        let _ = self.socket.try_send_to(answer, self.peer);
    }
}
