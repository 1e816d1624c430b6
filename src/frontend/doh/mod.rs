//! DNS over HTTPS (RFC 8484) on the relay core: TLS with ALPN "h2" or "http/1.1" (the DoT
//! certificate and ticket keys), HTTP/2 (`h2`) or HTTP/1.1 (`http1`), GET `?dns=` and POST
//! `application/dns-message` at `--doh-path`, each query relayed through `Relay::submit` like a
//! DoT query and answered as it completes (HTTP/2 streams out of order; HTTP/1.1 in order, as
//! that protocol requires).
//!
//! A DoH connection is DoT's connection (`dot::connection`: one task, the worker's shared
//! buffers, rustls's unbuffered API, the same timeouts, limits, backpressure and drain) speaking
//! `protocol::DohProtocol` inside TLS instead of DoT's length-prefixed messages.
//!
//! Owns: the HTTP mapping (`ask`: status codes; `dispatch`: what a DNS message becomes;
//! `Cache-Control` in `protocol`). Never: relays anything that `dns::check_query` refuses,
//! answers a DNS problem with an HTTP error (FORMERR, NOTIMP and the relay's SERVFAIL are `200`
//! with that RCODE, as over DoT), or holds more than `--max-in-flight` requests per connection.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use base64::Engine as _;

use crate::config::Padding;
use crate::dns::{self, QueryVerdict};
use crate::edns;
use crate::frontend::dot::answers::AnswerQueue;
use crate::frontend::dot::connection::Conn;
use crate::frontend::dot::messages::{log_query, over_rate};
use crate::frontend::dot::DotContext;
use crate::relay::ReplyTo;
use crate::runtime::shutdown::Shutdown;
use crate::stats::{bump, Frontend, WorkerStats};

mod flood;
mod frames;
pub mod h2;
pub mod hpack;
pub mod http1;
pub mod protocol;

use protocol::{give_slot, Request, Slot};

/// The media type of RFC 8484 §6.
pub const DNS_MESSAGE: &str = "application/dns-message";
/// The largest DNS message: a longer POST body is 413.
pub const MAX_MESSAGE: usize = 65_535;
/// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`: a DoH GET's header list is a few hundred octets
/// (`?dns=` is 4/3 of the query, and queries are rarely over 1 KB); POST carries queries of any
/// size. A list that decodes to more is answered 431; a header block longer than this before
/// decoding closes the connection (`flood`).
pub const MAX_HEADER_LIST: u32 = 16 * 1024;

/// What a worker's DoH connections share beyond DoT's context.
pub struct DohContext {
    /// ALPN "h2" and "http/1.1"; DoT's certificate, tickets and session cache.
    pub tls: Arc<rustls::ServerConfig>,
    pub path: String,
    /// What every HTTP/2 connection announces and enforces.
    pub h2: h2::H2Settings,
    /// Where requests are decoded, used by one connection at a time.
    pub scratch: RefCell<Scratch>,
}

impl DohContext {
    pub fn new(tls: Arc<rustls::ServerConfig>, path: String, max_in_flight: u32) -> DohContext {
        DohContext {
            tls,
            path,
            h2: h2::H2Settings {
                max_concurrent_streams: max_in_flight,
                // A whole DNS message and then some per stream, so a client that sends a body
                // over 65,535 octets without watching the window gets its 413, not a
                // FLOW_CONTROL_ERROR. Nothing is allocated for it until octets arrive, and the
                // connection's window still bounds what is held.
                initial_window: 2 * MAX_MESSAGE as u32,
                ..h2::H2Settings::default()
            },
            scratch: RefCell::default(),
        }
    }
}

/// The worker's request scratch.
#[derive(Default)]
pub struct Scratch {
    /// HTTP/2's: a request's decoded fields.
    h2: h2::Scratch,
    /// The DNS message of the request in hand (a GET's decoded, a POST's copied), whose ID is
    /// rewritten before it leaves.
    message: Vec<u8>,
}

/// Accepts on `listener` until shutdown; each connection is served by DoT's driver speaking
/// `DohProtocol`, with DoT's limits, timeouts and drain.
pub async fn accept_loop(
    ctx: Rc<DotContext>,
    doh: Rc<DohContext>,
    listener: std::net::TcpListener,
    shutdown: Shutdown,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    crate::frontend::dot::accept::accept_loop_of(listener, ctx, shutdown, Frontend::Doh, move || {
        protocol::DohProtocol::new(doh.clone())
    })
    .await;
}

/// One HTTP request: its DNS message sent on (the answer comes through the queue) or answered
/// here, or its HTTP error queued in `statuses`.
fn handle(
    doh: &DohContext,
    conn: &Conn<'_>,
    request: Request<'_>,
    message: &mut Vec<u8>,
    slots: &mut Vec<Slot>,
    statuses: &mut Vec<(u32, u16)>,
) {
    let asked = match std::str::from_utf8(request.target) {
        Ok(target) => ask(&doh.path, request.method, target, request.content_type, request.body, message),
        Err(_) => Err(400),
    };
    let status = match asked {
        Ok(()) => match dispatch(conn, message, slots, request.id) {
            Dispatched::Sent => return,
            Dispatched::NotAQuery => 400,
        },
        Err(status) => status,
    };
    count_status(&conn.ctx.stats, status);
    statuses.push((request.id, status));
}

/// The DNS message of a request for `target` (path and query) with `method`, `content_type`
/// and `body`, written into `message`, or the status that answers it: 404 for another path,
/// 405 for another method, 415 for a POST of another type, 400 for a bad `?dns=` or a message
/// shorter than a DNS header. (A body over 65,535 octets is answered 413 by the HTTP layer
/// before it gets here.) The same for every HTTP version.
fn ask(
    doh_path: &str,
    method: &[u8],
    target: &str,
    content_type: Option<&[u8]>,
    body: &[u8],
    message: &mut Vec<u8>,
) -> Result<(), u16> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != doh_path {
        return Err(404);
    }
    message.clear();
    match method {
        b"GET" => {
            let dns = query.split('&').find_map(|pair| pair.strip_prefix("dns=")).ok_or(400u16)?;
            // 4/3 of the message: anything longer cannot decode to 65,535 octets or fewer.
            if dns.len() > MAX_MESSAGE / 3 * 4 + 4 {
                return Err(400);
            }
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_vec(dns, message).map_err(|_| 400u16)?;
        }
        b"POST" => {
            // Parameters after ';' (a charset, say) do not change the type.
            let media_type = content_type.map(|t| t.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii());
            if media_type != Some(DNS_MESSAGE.as_bytes()) {
                return Err(415);
            }
            message.extend_from_slice(body);
        }
        _ => return Err(405),
    }
    if message.len() < dns::HEADER_LEN || message.len() > MAX_MESSAGE {
        return Err(400);
    }
    Ok(())
}

/// What became of a DoH request's DNS message.
enum Dispatched {
    /// Sent to the relay or the private-subdomain gateway, or answered here (FORMERR, NOTIMP,
    /// REFUSED over the rate): the answer comes through the connection's queue.
    Sent,
    /// A response sent as a query: not a DNS client (HTTP 400).
    NotAQuery,
}

/// Sends `message` where DoT would (the gateway for `--pvt-zone` names, else the relay, with the
/// client's address, padding taken off and put back through the tag), or answers it here, for
/// request `request`. The message leaves with its slot's index as its ID.
fn dispatch(conn: &Conn<'_>, message: &mut [u8], slots: &mut Vec<Slot>, request: u32) -> Dispatched {
    let (ctx, answers) = (conn.ctx, conn.answers);
    bump(&ctx.stats.doh.queries);
    let client_id = dns::id(message);
    if let Some(pvt) = ctx.pvt.as_ref().filter(|pvt| pvt.server.claims(message)) {
        // A query or UPDATE for a private subdomain: the gateway answers it, as over DoT. Its
        // ID stays the client's (SIG(0) covers it); the answer takes the slot's on the way back.
        let token = give_slot(slots, request, client_id);
        // A refusal is queued under the slot's ID, like every local answer.
        dns::set_id(message, token);
        if over_rate(ctx, answers, conn.client, message) {
            return Dispatched::Sent;
        }
        dns::set_id(message, client_id);
        answers.relayed();
        let reply = Rc::new(SlotReply { answers: answers.clone(), token });
        pvt.handle(message, reply, 0, crate::frontend::pvt::gateway::Transport::Stream);
        return Dispatched::Sent;
    }
    match dns::check_query(message) {
        QueryVerdict::Relay { question_end } => {
            let token = give_slot(slots, request, client_id);
            dns::set_id(message, token);
            if over_rate(ctx, answers, conn.client, message) {
                return Dispatched::Sent;
            }
            if ctx.settings.log_queries {
                log_query(message, question_end);
            }
            // Padding is this hop's business, as over DoT: taken off the query, put back on the
            // answer (`edns`). Keepalive (RFC 7828) is TCP's, not HTTP's: taken off, never
            // answered.
            let mut edited = ctx.query_edit.borrow_mut();
            let (mut hop, stripped) = edns::take_query_options(message, question_end, &mut edited);
            hop.keepalive = false;
            hop.padding = match ctx.settings.padding {
                Padding::Requested => hop.padding,
                Padding::Always => true,
                Padding::Never => false,
            };
            let relayed = if stripped { &edited[..] } else { &*message };
            answers.relayed();
            let reply: Rc<dyn ReplyTo> = answers.clone();
            ctx.relay.submit(relayed, question_end, reply, hop.to_tag(), conn.client.map(|client| client.addr));
        }
        QueryVerdict::Answer(rcode) => {
            let stats = &ctx.stats.doh.answers;
            bump(if rcode == dns::rcode::NOTIMP { &stats.notimp } else { &stats.formerr });
            let token = give_slot(slots, request, client_id);
            dns::set_id(message, token);
            answers.push_local(message, rcode);
        }
        QueryVerdict::Close => return Dispatched::NotAQuery,
    }
    Dispatched::Sent
}

/// A copy of `message` with ID `id`.
fn with_id(message: &[u8], id: u16) -> Vec<u8> {
    let mut copy = message.to_vec();
    dns::set_id(&mut copy, id);
    copy
}

/// Counts a DoH response by its status.
fn count_status(stats: &WorkerStats, status: u16) {
    let counter = match status {
        200 => &stats.doh_status_200,
        404 => &stats.doh_status_404,
        405 => &stats.doh_status_405,
        413 => &stats.doh_status_413,
        415 => &stats.doh_status_415,
        431 => &stats.doh_status_431,
        501 => &stats.doh_status_501,
        _ => &stats.doh_status_400,
    };
    bump(counter);
}

/// The gateway's answer to a DoH request, on its way to the connection's queue under the
/// request's slot (its ID, the client's, becomes the slot's). One allocation per gateway query:
/// the gateway's path costs far more (signatures, HPKE).
struct SlotReply {
    answers: Rc<AnswerQueue>,
    token: u16,
}

impl ReplyTo for SlotReply {
    fn frontend(&self) -> Frontend {
        Frontend::Doh
    }

    fn deliver(&self, answer: &[u8], tag: u8) {
        if answer.len() < dns::HEADER_LEN {
            return;
        }
        self.answers.deliver(&with_id(answer, self.token), tag);
    }

    fn is_closed(&self) -> bool {
        self.answers.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY_B64: &str = "AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE";

    fn status_of(method: &[u8], target: &str, content_type: Option<&[u8]>, body: &[u8]) -> u16 {
        let mut message = Vec::new();
        match ask("/dns-query", method, target, content_type, body, &mut message) {
            Ok(()) => {
                assert!(message.len() >= dns::HEADER_LEN);
                200
            }
            Err(status) => status,
        }
    }

    #[test]
    fn each_request_gets_its_message_or_its_status() {
        let query = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(QUERY_B64).unwrap();
        let get = |target: &str| status_of(b"GET", target, None, b"");
        assert_eq!(get(&format!("/dns-query?dns={QUERY_B64}")), 200);
        assert_eq!(get(&format!("/dns-query?ct&dns={QUERY_B64}&x=1")), 200);
        assert_eq!(get(&format!("/other?dns={QUERY_B64}")), 404);
        assert_eq!(get(&format!("/dns-query/?dns={QUERY_B64}")), 404);
        assert_eq!(get("/dns-query"), 400);
        assert_eq!(get(&format!("/dns-query?dns={QUERY_B64}==")), 400, "padding");
        assert_eq!(get("/dns-query?dns=AAAB+/"), 400, "base64, not base64url");
        assert_eq!(get("/dns-query?dns=AAABAAAB"), 400, "shorter than a header");
        let long = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![0u8; MAX_MESSAGE + 1]);
        assert_eq!(get(&format!("/dns-query?dns={long}")), 400, "longer than a DNS message");
        let post = |content_type: &[u8], body: &[u8]| status_of(b"POST", "/dns-query", Some(content_type), body);
        assert_eq!(post(b"application/dns-message", &query), 200);
        assert_eq!(post(b"application/dns-message; charset=x", &query), 200);
        assert_eq!(post(b"text/plain", &query), 415);
        assert_eq!(post(b"application/dns-message", &[0; 11]), 400);
        assert_eq!(status_of(b"POST", "/dns-query", None, &query), 415);
        assert_eq!(status_of(b"PUT", "/dns-query", None, b""), 405);
        let mut message = Vec::new();
        assert_eq!(ask("/q", b"PUT", "/dns-query", None, b"", &mut message), Err(404), "the path is judged first");
    }
}
