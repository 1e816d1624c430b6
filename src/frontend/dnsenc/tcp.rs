//! DNSENC over TCP (the client's retry after a TC=1 envelope, or its choice): one accept loop per
//! listen address per worker, one task per connection. Messages are 2-byte length-prefixed (RFC
//! 1035 §4.2.2), many may be pipelined, and the answers go back as they complete, in any order.
//!
//! Owns each connection's socket and its queue of framed answers. Decisions are the server's
//! (`server::DnsencServer::handle` with no UDP size cap); the connection closes on the client's
//! EOF once its answers are out, after the idle timeout with nothing in flight, on a frame too
//! short for DNS, or on shutdown. Reading pauses at `--max-in-flight` queries in flight.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::server::{Action, Sealing};
use super::DnsencContext;
use crate::relay::{proxy_v2::Transport, ClientAddr, ReplyTo};
use crate::runtime::shutdown::Shutdown;

/// Spare room in the read buffer before each read.
const READ_ROOM: usize = 4096;

/// Accepts connections on one listener until shutdown (`limits::accept_admitted`).
pub async fn accept_loop(ctx: Rc<DnsencContext>, listener: std::net::TcpListener, shutdown: Shutdown) {
    let (gate, limits, stats) = (ctx.gate.clone(), ctx.limits.clone(), ctx.stats.clone());
    let serving_shutdown = shutdown.clone();
    crate::frontend::limits::accept_admitted(listener, gate, limits, stats, shutdown, move |stream, peer| {
        let local = stream.local_addr().unwrap_or(peer);
        serve(ctx.clone(), stream, peer, local, serving_shutdown.clone())
    })
    .await;
}

/// What a connection's replies share with its task.
#[derive(Default)]
struct Outgoing {
    framed: RefCell<Vec<u8>>,
    in_flight: Cell<u32>,
    closed: Cell<bool>,
    wake: Notify,
}

impl Outgoing {
    fn push(&self, answer: &[u8]) {
        if self.closed.get() {
            return;
        }
        let mut framed = self.framed.borrow_mut();
        framed.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        framed.extend_from_slice(answer);
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.wake.notify_one();
    }
}

async fn serve(ctx: Rc<DnsencContext>, stream: TcpStream, peer: SocketAddr, local: SocketAddr, mut shutdown: Shutdown) {
    let (mut reader, mut writer) = stream.into_split();
    let outgoing = Rc::new(Outgoing::default());
    let client = ClientAddr { peer, local, transport: Transport::Stream };
    let mut inbound = BytesMut::with_capacity(READ_ROOM);
    let mut open = true;
    let idle = ctx.idle_timeout;
    loop {
        let pending = std::mem::take(&mut *outgoing.framed.borrow_mut());
        if !pending.is_empty() && writer.write_all(&pending).await.is_err() {
            break;
        }
        let in_flight = outgoing.in_flight.get();
        if !open && in_flight == 0 {
            break;
        }
        let can_read = open && in_flight < ctx.max_in_flight;
        inbound.reserve(READ_ROOM);
        tokio::select! {
            biased;
            _ = shutdown.wait(), if open => open = false,
            _ = outgoing.wake.notified() => {}
            read = reader.read_buf(&mut inbound), if can_read => match read {
                Ok(0) | Err(_) => open = false,
                Ok(_) => {
                    if !take_messages(&ctx, &outgoing, &mut inbound, client) {
                        break;
                    }
                }
            },
            _ = tokio::time::sleep(idle), if in_flight == 0 => break,
        }
    }
    outgoing.closed.set(true);
    let _ = writer.shutdown().await;
}

/// Handles every whole message at the front of `inbound`; false when the stream is broken (a
/// frame too short for a DNS header).
fn take_messages(ctx: &Rc<DnsencContext>, outgoing: &Rc<Outgoing>, inbound: &mut BytesMut, client: ClientAddr) -> bool {
    while inbound.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([inbound[0], inbound[1]]));
        if len < crate::dns::HEADER_LEN {
            return false;
        }
        if inbound.len() < 2 + len {
            break;
        }
        inbound.advance(2);
        let msg = inbound.split_to(len);
        handle(ctx, outgoing, &msg, client);
    }
    true
}

fn handle(ctx: &Rc<DnsencContext>, outgoing: &Rc<Outgoing>, msg: &[u8], client: ClientAddr) {
    let mut out = ctx.work.borrow_mut();
    if !ctx.within_rate(client.peer.ip()) {
        out.clear();
        crate::dns::write_local_answer(msg, crate::dns::id(msg), crate::dns::rcode::REFUSED, &mut out);
        outgoing.in_flight.set(outgoing.in_flight.get() + 1);
        outgoing.push(&out);
        return;
    }
    let action = ctx.decide(msg, true, &mut out);
    match action {
        Action::Drop => {}
        Action::Answer(verdict) => {
            ctx.count_error(verdict);
            outgoing.in_flight.set(outgoing.in_flight.get() + 1);
            outgoing.push(&out);
        }
        Action::RelayPlain { question_end } => {
            outgoing.in_flight.set(outgoing.in_flight.get() + 1);
            let reply = Rc::new(PlainReply { outgoing: outgoing.clone() });
            drop(out);
            ctx.relay.submit(msg, question_end, reply, 0, Some(client));
        }
        Action::Relay { question_end, sealing } => {
            ctx.count_query(sealing.query_scheme);
            outgoing.in_flight.set(outgoing.in_flight.get() + 1);
            let reply = Rc::new(SealedReply { ctx: ctx.clone(), outgoing: outgoing.clone(), sealing });
            ctx.submit_work(out, question_end, reply, client);
        }
    }
}

struct SealedReply {
    ctx: Rc<DnsencContext>,
    outgoing: Rc<Outgoing>,
    sealing: Sealing,
}

impl ReplyTo for SealedReply {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dnsenc
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        // Over TCP the size cap is 65,535: never truncated but for an answer that size itself.
        self.ctx.seal_answer(&self.sealing, answer, |sealed| self.outgoing.push(sealed));
    }

    fn is_closed(&self) -> bool {
        self.outgoing.closed.get()
    }
}

struct PlainReply {
    outgoing: Rc<Outgoing>,
}

impl ReplyTo for PlainReply {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Dnsenc
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        self.outgoing.push(answer);
    }

    fn is_closed(&self) -> bool {
        self.outgoing.closed.get()
    }
}
