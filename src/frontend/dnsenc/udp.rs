//! DNSENC over UDP: one receive loop per listen address per worker (the sockets share the port
//! through SO_REUSEPORT). Each datagram is decided by `server::DnsencServer::handle`; an answer
//! it makes goes straight back, a query it lets through goes to the relay with a `ReplyTo` that
//! seals the answer (or, for a plain query the cleartext policy allows, sends it as it is,
//! truncated to the client's UDP size).
//!
//! Owns the sockets and the receive buffer. Keeps nothing about a client once its answer is
//! sent: the per-query reply (peer, envelope, one-time key) lives only while the query is in
//! flight. A send the kernel refuses is dropped, as UDP is.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::net::UdpSocket;

use super::server::{Action, Sealing};
use super::DnsencContext;
use crate::dns;
use crate::relay::{proxy_v2::Transport, ClientAddr, ReplyTo};
use crate::runtime::shutdown::Shutdown;

/// Largest datagram taken (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_535;

/// Serves one UDP socket until shutdown.
pub async fn serve(ctx: Rc<DnsencContext>, socket: std::net::UdpSocket, mut shutdown: Shutdown) -> io::Result<()> {
    let socket = Rc::new(UdpSocket::from_std(socket)?);
    let local = socket.local_addr()?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.wait() => return Ok(()),
            received = socket.recv_from(&mut buf) => received,
        };
        // An error here is the socket's (ICMP errors on some kernels): the next read goes on.
        let Ok((len, peer)) = received else { continue };
        handle(&ctx, &socket, &buf[..len], peer, local);
    }
}

fn handle(ctx: &Rc<DnsencContext>, socket: &Rc<UdpSocket>, msg: &[u8], peer: SocketAddr, local: SocketAddr) {
    if !ctx.admits(peer.ip()) {
        return;
    }
    let mut out = ctx.work.borrow_mut();
    if !ctx.within_rate(peer.ip()) {
        // Over the client's rate: REFUSED in the clear, without decrypting anything.
        if msg.len() >= dns::HEADER_LEN && !dns::is_response(msg) {
            out.clear();
            dns::write_local_answer(msg, dns::id(msg), dns::rcode::REFUSED, &mut out);
            let _ = socket.try_send_to(&out, peer);
        }
        return;
    }
    let action = ctx.decide(msg, false, &mut out);
    let client = ClientAddr { peer, local, transport: Transport::Datagram };
    match action {
        Action::Drop => {}
        Action::Answer(verdict) => {
            ctx.count_error(verdict);
            let _ = socket.try_send_to(&out, peer);
        }
        Action::RelayPlain { question_end } => {
            let limit = usize::from(crate::edns::query_edns(msg, question_end).udp_payload);
            let reply = Rc::new(PlainReply { socket: socket.clone(), peer, limit });
            ctx.relay.submit(msg, question_end, reply, 0, Some(client));
        }
        Action::Relay { question_end, sealing } => {
            ctx.count_query(sealing.query_scheme);
            let reply = Rc::new(SealedReply { ctx: ctx.clone(), socket: socket.clone(), peer, sealing });
            ctx.submit_work(out, question_end, reply, client);
        }
    }
}

/// The answer to a decrypted query: sealed with the client's one-time key and sent.
struct SealedReply {
    ctx: Rc<DnsencContext>,
    socket: Rc<UdpSocket>,
    peer: SocketAddr,
    sealing: Sealing,
}

impl ReplyTo for SealedReply {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dnsenc
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        self.ctx.seal_answer(&self.sealing, answer, |sealed| {
            let _ = self.socket.try_send_to(sealed, self.peer);
        });
    }
}

/// The answer to a plain query the cleartext policy relays: as it is, or truncated (TC=1,
/// header and question) when larger than the client's UDP size.
struct PlainReply {
    socket: Rc<UdpSocket>,
    peer: SocketAddr,
    limit: usize,
}

impl ReplyTo for PlainReply {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dnsenc
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        if answer.len() <= self.limit {
            let _ = self.socket.try_send_to(answer, self.peer);
            return;
        }
        let mut truncated = Vec::with_capacity(512);
        if let Some(end) = dns::question_end(answer).filter(|_| dns::qdcount(answer) == 1) {
            truncated.extend_from_slice(&answer[..end]);
            truncated[2] |= 0x02; // TC
            truncated[6..12].fill(0); // no records
            let _ = self.socket.try_send_to(&truncated, self.peer);
        }
    }
}
