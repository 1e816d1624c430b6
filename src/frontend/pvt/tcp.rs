//! The gateway over TCP (RFC 7766): length-prefixed messages, answered in the order they
//! complete, with the idle timeout and in-flight cap of the other frontends. The connection
//! limits and access lists are DoT's (`limits`, `gate`).
//!
//! Owns the connections. Never: reads more while `max_in_flight` answers are owed, or keeps a
//! connection that sent a frame shorter than a header.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::gateway::{PvtContext, Transport};
use crate::access::gate::Gate;
use crate::frontend::limits::ConnectionLimits;
use crate::relay::ReplyTo;
use crate::runtime::shutdown::Shutdown;

/// What a worker's TCP connections share.
pub struct TcpSettings {
    pub gate: Arc<Gate>,
    /// The worker's counters (refused connections).
    pub stats: Arc<crate::stats::WorkerStats>,
    pub limits: Arc<ConnectionLimits>,
    pub idle_timeout: Duration,
    pub max_in_flight: u32,
}

/// Accepts until shutdown (`limits::accept_admitted`); each connection is a task of the worker.
pub async fn accept_loop(
    ctx: Rc<PvtContext>,
    settings: Rc<TcpSettings>,
    listener: std::net::TcpListener,
    shutdown: Shutdown,
) {
    let (gate, limits, stats) = (settings.gate.clone(), settings.limits.clone(), settings.stats.clone());
    let serving_shutdown = shutdown.clone();
    crate::frontend::limits::accept_admitted(listener, gate, limits, stats, shutdown, move |stream, peer| {
        serve(ctx.clone(), settings.clone(), stream, peer, serving_shutdown.clone())
    })
    .await;
}

/// A connection's answers waiting to be written, framed.
#[derive(Default)]
struct Answers {
    framed: RefCell<Vec<u8>>,
    owed: Cell<u32>,
    closed: Cell<bool>,
    ready: Notify,
}

impl ReplyTo for Answers {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Pvt
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        self.owed.set(self.owed.get().saturating_sub(1));
        if self.closed.get() {
            return;
        }
        let mut framed = self.framed.borrow_mut();
        framed.extend_from_slice(&(answer.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        framed.extend_from_slice(&answer[..answer.len().min(usize::from(u16::MAX))]);
        self.ready.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

async fn serve(
    ctx: Rc<PvtContext>,
    settings: Rc<TcpSettings>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    mut shutdown: Shutdown,
) {
    let (mut reader, mut writer) = stream.into_split();
    let answers = Rc::new(Answers::default());
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    loop {
        // Write what is ready first.
        let out = std::mem::take(&mut *answers.framed.borrow_mut());
        if !out.is_empty() && writer.write_all(&out).await.is_err() {
            break;
        }
        // Whole messages in the buffer, while the cap allows.
        while answers.owed.get() < settings.max_in_flight && buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            if len < crate::dns::HEADER_LEN {
                answers.closed.set(true);
                return;
            }
            let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            answers.owed.set(answers.owed.get() + 1);
            let reply: Rc<dyn ReplyTo> = answers.clone();
            if crate::dns::is_response(&msg) {
                answers.closed.set(true);
                return;
            }
            let gate = &settings.gate;
            if gate.limits_queries() && !gate.allow_query(gate.client_key(peer.ip()), std::time::Instant::now()) {
                ctx.stats.refused("rate_limited");
                ctx.local(&msg, &reply, 0, crate::dns::rcode::REFUSED);
                continue;
            }
            ctx.handle(&msg, reply, 0, Transport::Stream);
        }
        if !answers.framed.borrow().is_empty() {
            continue;
        }
        let reading = answers.owed.get() < settings.max_in_flight;
        let idle = answers.owed.get() == 0;
        tokio::select! {
            biased;
            _ = shutdown.wait(), if idle => break,
            _ = answers.ready.notified() => {}
            read = reader.read(&mut chunk), if reading => match read {
                Ok(0) | Err(_) => {
                    if answers.owed.get() == 0 { break; }
                    // Half-closed: answer what is owed, then close.
                    while answers.owed.get() > 0 {
                        answers.ready.notified().await;
                        let out = std::mem::take(&mut *answers.framed.borrow_mut());
                        if writer.write_all(&out).await.is_err() { break; }
                    }
                    let out = std::mem::take(&mut *answers.framed.borrow_mut());
                    let _ = writer.write_all(&out).await;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            _ = tokio::time::sleep(settings.idle_timeout), if idle => break,
        }
    }
    answers.closed.set(true);
}
