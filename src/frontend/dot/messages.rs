//! DoT's protocol inside TLS (RFC 7858 §3.3): the client's stream of 2-octet length-prefixed
//! queries, each handed to the relay (or the private-subdomain gateway, or answered here), and
//! the answers, framed the same way, encrypted together into as few records as TLS allows.
//!
//! Owns: the start of a query cut off by a record's end, and queries held back by the
//! in-flight cap. Never: touches the socket or TLS state beyond one `encrypt` per write.

use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;

use super::answers::AnswerQueue;
use super::connection::{Conn, Ending, Protocol};
use super::framing::{self, FrameTooShort};
use super::hello::HelloPeek;
use super::session::{Output, TlsSession};
use super::DotContext;
use crate::config::Padding;
use crate::dns::{self, QueryVerdict};
use crate::edns;
use crate::frontend::Client;
use crate::relay::ReplyTo;
use crate::stats::{bump, TlsFrontendStats, WorkerStats};

/// A DoT connection's protocol state.
#[derive(Default)]
pub struct DotMessages {
    /// Decrypted bytes not yet handled: the start of a query, or whole queries held back by the
    /// in-flight cap.
    pending: BytesMut,
}

impl Protocol for DotMessages {
    fn stats(stats: &WorkerStats) -> &TlsFrontendStats {
        &stats.dot
    }

    fn tls_config(&self, ctx: &DotContext, hello: HelloPeek) -> Arc<rustls::ServerConfig> {
        match hello {
            HelloPeek::Hello { offers_only_other_alpn } => ctx.tls.config_for(offers_only_other_alpn),
            // rustls refuses it with the right alert.
            _ => ctx.tls.config_for(false),
        }
    }

    fn negotiated(&mut self, _alpn: Option<&[u8]>) {}

    fn established(&mut self, _plain: &mut Vec<u8>) {}

    fn take(&mut self, conn: &Conn<'_>, plaintext: &[u8], _plain: &mut Vec<u8>) -> Result<(), Ending> {
        take_plaintext(conn.ctx, conn.answers, conn.client, &mut self.pending, plaintext)
    }

    fn holds_input(&self) -> bool {
        !self.pending.is_empty()
    }

    fn write(
        &mut self,
        conn: &Conn<'_>,
        session: &mut TlsSession,
        _plain: &mut Vec<u8>,
        out: &mut Output,
    ) -> Result<(), Ending> {
        if !conn.answers.has_output() {
            return Ok(());
        }
        conn.answers.write_out(|framed| session.encrypt(framed, out)).map_err(|_| Ending::Protocol)
    }

    fn drain(&mut self, _plain: &mut Vec<u8>) {}

    fn reads_while_draining(&self) -> bool {
        false
    }

    fn busy(&self) -> bool {
        false
    }

    fn finished(&self) -> Option<Ending> {
        None
    }

    fn ended(&self, _stats: &WorkerStats) {}
}

/// Takes decrypted bytes: every whole query (while the in-flight cap allows) is handled; the
/// rest waits in `pending`. The common case, whole queries in one record and nothing pending,
/// handles them straight from the record without a copy.
fn take_plaintext(
    ctx: &DotContext,
    answers: &Rc<AnswerQueue>,
    client: Option<&Client>,
    pending: &mut BytesMut,
    plaintext: &[u8],
) -> Result<(), Ending> {
    framing::take_stream(pending, plaintext, |stream| take_queries(ctx, answers, client, stream))
}

impl From<FrameTooShort> for Ending {
    fn from(_: FrameTooShort) -> Ending {
        Ending::Protocol
    }
}

/// Handles the whole messages at the front of `stream` while the in-flight cap allows; returns
/// the bytes used.
fn take_queries(
    ctx: &DotContext,
    answers: &Rc<AnswerQueue>,
    client: Option<&Client>,
    stream: &[u8],
) -> Result<usize, Ending> {
    let cap = ctx.settings.max_in_flight;
    framing::take_messages(
        stream,
        || answers.outstanding() < cap,
        |message| {
            bump(&ctx.stats.dot.queries);
            if let Some(pvt) = ctx.pvt.as_ref().filter(|pvt| pvt.server.claims(message)) {
                // A query or UPDATE for a private subdomain: the gateway answers it, once.
                if over_rate(ctx, answers, client, message) {
                    return Ok(());
                }
                answers.relayed();
                pvt.handle(message, answers.clone(), 0, crate::frontend::pvt::gateway::Transport::Stream);
                return Ok(());
            }
            match dns::check_query(message) {
                QueryVerdict::Relay { question_end } => {
                    if over_rate(ctx, answers, client, message) {
                        return Ok(());
                    }
                    if ctx.settings.log_queries {
                        log_query(message, question_end);
                    }
                    answers.relayed();
                    let reply: Rc<dyn ReplyTo> = answers.clone();
                    // Keepalive and padding are this hop's business: taken off the query, put back
                    // on the answer (see `edns`).
                    let mut edited = ctx.query_edit.borrow_mut();
                    let (mut hop, stripped) = edns::take_query_options(message, question_end, &mut edited);
                    hop.padding = match ctx.settings.padding {
                        Padding::Requested => hop.padding,
                        Padding::Always => true,
                        Padding::Never => false,
                    };
                    let relayed = if stripped { &edited[..] } else { message };
                    ctx.relay.submit(relayed, question_end, reply, hop.to_tag(), client.map(|client| client.addr));
                }
                QueryVerdict::Answer(rcode) => {
                    let counter = if rcode == dns::rcode::NOTIMP {
                        &ctx.stats.dot.answers.notimp
                    } else {
                        &ctx.stats.dot.answers.formerr
                    };
                    bump(counter);
                    answers.push_local(message, rcode);
                }
                QueryVerdict::Close => return Err(Ending::Protocol),
            }
            Ok(())
        },
    )
}

/// Whether `message` is over its client's query rate: then it is answered REFUSED, saying why,
/// and the backend (or the private-subdomain gateway) never sees it.
pub(crate) fn over_rate(ctx: &DotContext, answers: &AnswerQueue, client: Option<&Client>, message: &[u8]) -> bool {
    let Some(client) = client.filter(|_| ctx.gate.limits_queries()) else { return false };
    if ctx.gate.allow_query(client.key, std::time::Instant::now()) {
        return false;
    }
    bump(&ctx.stats.rate_limited_queries);
    bump(&ctx.stats.answers(answers.frontend()).refused);
    answers.push_local_ede(message, dns::rcode::REFUSED, edns::ede::PROHIBITED, "rate limited");
    true
}

/// Logs a query's name and type (only with `--log-queries`).
pub(crate) fn log_query(message: &[u8], question_end: usize) {
    let question = &message[dns::HEADER_LEN..question_end];
    let (name, tail) = question.split_at(question.len() - 4);
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    tracing::info!(name = %dns::display_name(name), qtype, "query");
}
