//! One client connection, from handshake to close: the only owner of its TLS stream.
//!
//! One task `select!`s over "bytes from the client", "answers ready", "idle deadline" and
//! "shutdown"; every branch is cancel-safe. Reads stop while the connection has
//! `max_in_flight` queries outstanding (backpressure, never dropping). All answers ready
//! together leave in one TLS write. The connection closes on the idle timeout (nothing in
//! flight), after the client's EOF once its answers are flushed, on a framing error or a
//! response from the client, when the client stops reading for too long, or on drain; dotgate
//! sends close_notify whenever it closes.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::answers::AnswerQueue;
use super::framing::{complete_message_len, PREFIX_LEN};
use super::{accept, DotContext};
use crate::dns::{self, QueryVerdict};
use crate::relay::ReplyTo;
use crate::stats::bump;

/// Room made in the read buffer before each read. Small, because it is held while the
/// connection waits: rustls keeps the decrypted bytes that do not fit until the next read,
/// which costs a copy, not a system call. (Idle connections are what memory is spent on.)
const READ_CHUNK: usize = 1024;
/// A buffer grown past this (by a large query or a burst of answers) is freed once empty
/// rather than kept for the connection's life.
const KEEP_CAPACITY: usize = 4096;
/// How long the close_notify and TCP shutdown may take before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Nothing in flight for the idle timeout.
    Idle,
    /// The client closed its side and every answer went out.
    ClientDone,
    /// A frame too short for DNS, or a response sent by the client.
    Protocol,
    /// Shutdown, with every answer out.
    Drained,
    /// The socket failed, or the client stopped reading answers.
    Io,
}

/// Serves one accepted TCP connection to its end.
pub async fn serve(tcp: TcpStream, ctx: Rc<DotContext>) {
    let _open = ctx.connections.enter();
    let tls = match tokio::time::timeout(ctx.settings.handshake_timeout, accept::handshake(tcp, &ctx.tls)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            bump(&ctx.stats.handshake_failures);
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            bump(&ctx.stats.handshake_failures);
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let mut conn = Connection {
        shutdown: ctx.shutdown.clone(),
        ctx,
        tls,
        answers: Rc::new(AnswerQueue::default()),
        inbound: BytesMut::new(),
        outbound: Vec::new(),
    };
    let ending = conn.run().await;
    conn.answers.close();
    match ending {
        Ending::Idle => bump(&conn.ctx.stats.connections_closed_idle),
        Ending::Protocol => bump(&conn.ctx.stats.connections_closed_protocol),
        _ => {}
    }
    if ending != Ending::Io {
        // close_notify, then FIN: the client knows the close was ours and deliberate.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.tls.shutdown()).await;
    }
}

struct Connection {
    ctx: Rc<DotContext>,
    tls: TlsStream<TcpStream>,
    answers: Rc<AnswerQueue>,
    /// Bytes from the client not yet parsed into messages.
    inbound: BytesMut,
    /// Answers being written (swapped with the queue's buffer).
    outbound: Vec<u8>,
    shutdown: crate::runtime::shutdown::Shutdown,
}

impl Connection {
    async fn run(&mut self) -> Ending {
        let settings = self.ctx.settings.clone();
        let idle = tokio::time::sleep(settings.idle_timeout);
        tokio::pin!(idle);
        let mut client_open = true;
        let mut draining = self.shutdown.is_set();
        loop {
            if let Err(ending) = self.read_queries() {
                return ending;
            }
            if self.answers.has_output() {
                // A client that does not take its answers within the idle timeout is gone.
                match tokio::time::timeout(settings.idle_timeout, self.write_answers()).await {
                    Ok(Ok(())) => idle.as_mut().reset(Instant::now() + settings.idle_timeout),
                    _ => return Ending::Io,
                }
                continue;
            }
            let outstanding = self.answers.outstanding();
            if outstanding == 0 {
                if !client_open {
                    return Ending::ClientDone;
                }
                if draining {
                    return Ending::Drained;
                }
            }
            let can_read = client_open && !draining && outstanding < settings.max_in_flight;
            if can_read {
                self.make_read_room();
            }
            // Reads first: the top of the loop writes whatever is queued before every wait, so
            // answers cannot starve, while a stream of answers must not starve reading.
            tokio::select! {
                biased;
                read = self.tls.read_buf(&mut self.inbound), if can_read => match read {
                    Ok(0) => client_open = false,
                    Ok(_) => idle.as_mut().reset(Instant::now() + settings.idle_timeout),
                    // A client that half-closes TCP without close_notify still gets its answers.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => client_open = false,
                    Err(_) => return Ending::Io,
                },
                _ = self.answers.ready.notified() => {}
                _ = &mut idle, if outstanding == 0 => return Ending::Idle,
                _ = self.shutdown.wait(), if !draining => draining = true,
            }
        }
    }

    /// Handles every complete message in the read buffer, while the in-flight cap allows.
    fn read_queries(&mut self) -> Result<(), Ending> {
        let cap = self.ctx.settings.max_in_flight;
        while self.answers.outstanding() < cap {
            let len = match complete_message_len(&self.inbound) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => return Err(Ending::Protocol),
            };
            let message = &self.inbound[PREFIX_LEN..PREFIX_LEN + len];
            bump(&self.ctx.stats.queries);
            match dns::check_query(message) {
                QueryVerdict::Relay { question_end } => {
                    if self.ctx.settings.log_queries {
                        log_query(message, question_end);
                    }
                    self.answers.relayed();
                    let reply: Rc<dyn ReplyTo> = self.answers.clone();
                    self.ctx.relay.submit(message, question_end, reply);
                }
                QueryVerdict::Answer(rcode) => {
                    let counter = if rcode == dns::rcode::NOTIMP {
                        &self.ctx.stats.answers_notimp
                    } else {
                        &self.ctx.stats.answers_formerr
                    };
                    bump(counter);
                    self.answers.push_local(message, rcode);
                }
                QueryVerdict::Close => return Err(Ending::Protocol),
            }
            self.inbound.advance(PREFIX_LEN + len);
        }
        if self.inbound.is_empty() && self.inbound.capacity() > KEEP_CAPACITY {
            self.inbound = BytesMut::new();
        }
        Ok(())
    }

    /// Ensures the read buffer can take the rest of a message that has begun, or a chunk.
    fn make_read_room(&mut self) {
        let rest_of_message = self.inbound.get(..PREFIX_LEN).map_or(0, |prefix| {
            (PREFIX_LEN + u16::from_be_bytes([prefix[0], prefix[1]]) as usize).saturating_sub(self.inbound.len())
        });
        self.inbound.reserve(rest_of_message.max(READ_CHUNK));
    }

    /// Writes every queued answer: one TLS record (up to 16 KiB of answers) and one write call
    /// for the lot.
    async fn write_answers(&mut self) -> io::Result<()> {
        self.answers.take(&mut self.outbound);
        self.tls.write_all(&self.outbound).await?;
        self.tls.flush().await?;
        self.outbound.clear();
        if self.outbound.capacity() > KEEP_CAPACITY {
            self.outbound = Vec::new();
        }
        Ok(())
    }
}

/// Logs a query's name and type (only with `--log-queries`).
fn log_query(message: &[u8], question_end: usize) {
    let question = &message[dns::HEADER_LEN..question_end];
    let (name, tail) = question.split_at(question.len() - 4);
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    tracing::info!(name = %dns::display_name(name), qtype, "query");
}
