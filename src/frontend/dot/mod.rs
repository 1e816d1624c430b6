//! The DNS-over-TLS frontend (RFC 7858), steps ①–④ and ⑨ of the data path: listening sockets,
//! accept, the TLS handshake, the frame reader, the query check, and the answer writer.
//!
//! `frontend::listen` binds the shared SO_REUSEPORT sockets; `accept` runs one accept loop per
//! listener per worker; `connection` owns one client connection from its first byte to close,
//! whatever it speaks inside TLS (DoH's connections are driven by it too); `messages` is what DoT
//! speaks there; `hello` peeks at the ClientHello's ALPN offer; `session` is the connection's TLS
//! record layer (rustls's unbuffered API); `framing` splits the 2-byte length-prefixed stream;
//! `answers` is the connection's bounded answer queue, the `ReplyTo` the relay hands answers to.

pub mod accept;
pub mod answers;
pub mod connection;
pub mod framing;
pub mod hello;
pub mod messages;
pub mod session;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use slab::Slab;
use std::time::Duration;

use tokio::sync::Notify;

use crate::relay::Relay;
use crate::stats::WorkerStats;
use crate::tls::TlsSetup;
use answers::AnswerQueue;

/// Per-connection policy, copied out of `Config`.
#[derive(Debug, Clone)]
pub struct DotSettings {
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_in_flight: u32,
    pub log_queries: bool,
    pub padding: crate::config::Padding,
}

/// What every connection task of one worker shares.
pub struct DotContext {
    pub tls: TlsSetup,
    pub relay: Rc<Relay>,
    pub stats: std::sync::Arc<WorkerStats>,
    pub settings: DotSettings,
    pub connections: Rc<OpenConnections>,
    /// The read and write buffers every connection of the worker uses in turn.
    pub buffers: RefCell<connection::SharedBuffers>,
    /// Where a query is rewritten without its hop options before it is relayed.
    pub query_edit: RefCell<Vec<u8>>,
    /// The connection limits, shared by all workers (touched at accept and close only).
    pub limits: std::sync::Arc<crate::frontend::limits::ConnectionLimits>,
    /// The access lists and per-client rate limits, shared by all workers.
    pub gate: std::sync::Arc<crate::access::gate::Gate>,
    /// The idle timeout in force: `settings.idle_timeout`, shrunk when connections near the
    /// limit. This worker's copy, refreshed at each accept and once a second.
    pub idle_timeout: Cell<Duration>,
    /// The private-subdomain gateway, when on: queries in its zones go to it, not the relay.
    pub pvt: Option<Rc<crate::frontend::pvt::gateway::PvtContext>>,
}

/// A worker's open client connections: counted, so that drain can wait for the last one, and
/// reachable through their answer queues, so that drain can tell each one (a per-connection
/// shutdown receiver would cost every idle connection a channel handle and a waiting future).
#[derive(Default)]
pub struct OpenConnections {
    live: RefCell<Slab<Weak<AnswerQueue>>>,
    draining: Cell<bool>,
    all_closed: Notify,
}

/// Held by a connection task for its whole life.
pub struct OpenConnection {
    connections: Rc<OpenConnections>,
    key: usize,
}

impl OpenConnections {
    /// Registers a connection by its answer queue. A connection that starts while the worker
    /// drains is told at once.
    pub fn enter(self: &Rc<Self>, answers: &Rc<AnswerQueue>) -> OpenConnection {
        if self.draining.get() {
            answers.begin_drain();
        }
        let key = self.live.borrow_mut().insert(Rc::downgrade(answers));
        crate::runtime::pacing::connection_opened();
        OpenConnection { connections: self.clone(), key }
    }

    pub fn count(&self) -> usize {
        self.live.borrow().len()
    }

    /// Tells every open connection to finish what is in flight and close.
    pub fn begin_drain(&self) {
        self.draining.set(true);
        for (_, answers) in self.live.borrow().iter() {
            if let Some(answers) = answers.upgrade() {
                answers.begin_drain();
            }
        }
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        while self.count() > 0 {
            self.all_closed.notified().await;
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut live = self.connections.live.borrow_mut();
        live.remove(self.key);
        crate::runtime::pacing::connection_closed();
        if live.is_empty() {
            self.connections.all_closed.notify_waiters();
        }
    }
}
