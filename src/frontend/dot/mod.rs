//! The DNS-over-TLS frontend (RFC 7858), steps ①–④ and ⑨ of the data path: listening sockets,
//! accept, the TLS handshake, the frame reader, the query check, and the answer writer.
//!
//! `listen` binds the shared SO_REUSEPORT sockets; `accept` runs one accept loop per listener
//! per worker and drives handshakes; `connection` owns one client connection from its first byte to
//! close; `hello` peeks at the ClientHello's ALPN offer; `session` is the connection's TLS
//! record layer (rustls's unbuffered API); `framing` splits the 2-byte length-prefixed stream; `answers` is the connection's
//! bounded answer queue, the `ReplyTo` the relay hands answers to.

pub mod accept;
pub mod answers;
pub mod connection;
pub mod framing;
pub mod hello;
pub mod listen;
pub mod session;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::relay::Relay;
use crate::runtime::shutdown::Shutdown;
use crate::stats::WorkerStats;
use crate::tls::TlsSetup;

/// Per-connection policy, copied out of `Config`.
#[derive(Debug, Clone)]
pub struct DotSettings {
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_in_flight: u32,
    pub log_queries: bool,
}

/// What every connection task of one worker shares.
pub struct DotContext {
    pub tls: TlsSetup,
    pub relay: Rc<Relay>,
    pub stats: Rc<WorkerStats>,
    pub settings: DotSettings,
    pub connections: Rc<OpenConnections>,
    pub shutdown: Shutdown,
    /// The read and write buffers every connection of the worker uses in turn.
    pub buffers: RefCell<connection::SharedBuffers>,
}

/// Counts a worker's open client connections, so that drain can wait for the last one.
#[derive(Default)]
pub struct OpenConnections {
    open: Cell<usize>,
    all_closed: Notify,
}

/// Held by a connection task for its whole life.
pub struct OpenConnection(Rc<OpenConnections>);

impl OpenConnections {
    pub fn enter(self: &Rc<Self>) -> OpenConnection {
        self.open.set(self.open.get() + 1);
        OpenConnection(self.clone())
    }

    pub fn count(&self) -> usize {
        self.open.get()
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        while self.open.get() > 0 {
            self.all_closed.notified().await;
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let left = self.0.open.get() - 1;
        self.0.open.set(left);
        if left == 0 {
            self.0.all_closed.notify_waiters();
        }
    }
}
