//! DNS over HTTPS (RFC 8484) on the relay core: TLS with ALPN "h2" or "http/1.1" (the DoT
//! certificate and ticket keys), HTTP/2 or HTTP/1.1 by hyper, GET `?dns=` and POST
//! `application/dns-message` at `--doh-path`, each query relayed through `Relay::submit` like a
//! DoT query and answered as it completes (HTTP/2 streams out of order; HTTP/1.1 in order, as
//! that protocol requires).
//!
//! Owns: the DoH listeners and connections, the HTTP mapping (status codes, `Cache-Control`).
//! Never: relays anything that `dns::check_query` refuses, answers a DNS problem with an HTTP
//! error (FORMERR, NOTIMP and the relay's SERVFAIL are `200` with that RCODE, as over DoT), or
//! holds more than `--max-in-flight` streams per HTTP/2 connection.
//!
//! hyper does the HTTP: per query it allocates a request, a response and a task, which the
//! measurements in loadtest/ set against DoT's hand-driven path.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use crate::access::gate::Gate;
use crate::config::Padding;
use crate::dns::{self, QueryVerdict};
use crate::edns::{self, HopOptions};
use crate::frontend::limits::ConnectionLimits;
use crate::relay::proxy_v2::Transport;
use crate::relay::{ClientAddr, Relay, ReplyTo};
use crate::runtime::shutdown::Shutdown;
use crate::stats::{bump, Counter, WorkerStats};

mod cork;
mod flood;
mod frames;
pub mod h2;
pub mod hpack;
pub mod http1;
mod wire;

use cork::Cork;
use flood::Flood;
use wire::{Activity, DohStream};

/// The media type of RFC 8484 §6.
pub const DNS_MESSAGE: &str = "application/dns-message";
/// The largest DNS message: a longer POST body is 413.
pub const MAX_MESSAGE: usize = 65_535;
/// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`: a DoH GET's header list is a few hundred octets
/// (`?dns=` is 4/3 of the query, and queries are rarely over 1 KB); POST carries queries of any
/// size. A list that decodes to more gets h2's 431 on its stream, one that decodes to several
/// times more h2's GOAWAY; a block longer than this before decoding closes the connection
/// (`flood`).
pub const MAX_HEADER_LIST: u32 = 16 * 1024;

/// What a worker's DoH connections share.
pub struct DohContext {
    pub relay: Rc<Relay>,
    pub stats: Arc<WorkerStats>,
    pub tls: Arc<rustls::ServerConfig>,
    pub gate: Arc<Gate>,
    pub limits: Arc<ConnectionLimits>,
    pub path: String,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: DoT's in-flight cap per connection.
    pub max_in_flight: u32,
    pub log_queries: bool,
    pub padding: crate::config::Padding,
    /// The private-subdomain gateway, when on: queries in its zones go to it, as over DoT.
    pub pvt: Option<Rc<crate::frontend::pvt::gateway::PvtContext>>,
    /// Where a query is rewritten without its hop options before it is relayed.
    pub query_edit: RefCell<Vec<u8>>,
    /// The worker's open DoH connections, which drain waits for.
    pub open: Rc<OpenDoh>,
}

/// A worker's open DoH connections: counted, so that drain can wait for the last one.
#[derive(Default)]
pub struct OpenDoh {
    count: Cell<usize>,
    all_closed: tokio::sync::Notify,
}

impl OpenDoh {
    /// Resolves once no DoH connection of this worker is open.
    pub async fn all_closed(&self) {
        while self.count.get() > 0 {
            self.all_closed.notified().await;
        }
    }

    pub fn count(&self) -> usize {
        self.count.get()
    }

    fn enter(self: &Rc<Self>) -> OpenGuard {
        self.count.set(self.count.get() + 1);
        OpenGuard(self.clone())
    }
}

/// Held by a connection's task for its whole life.
struct OpenGuard(Rc<OpenDoh>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.count.set(self.0.count.get() - 1);
        if self.0.count.get() == 0 {
            self.0.all_closed.notify_waiters();
        }
    }
}

/// hyper's HTTP/2 runs each stream as a task: on this worker's `LocalSet` (the handlers hold
/// `Rc`s and never leave the worker).
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// Accepts until shutdown (`limits::accept_admitted`); each connection is a task of the worker.
pub async fn accept_loop(ctx: Rc<DohContext>, listener: std::net::TcpListener, shutdown: Shutdown) {
    let (gate, limits, stats) = (ctx.gate.clone(), ctx.limits.clone(), ctx.stats.clone());
    let serving_shutdown = shutdown.clone();
    crate::frontend::limits::accept_admitted(listener, gate, limits, stats, shutdown, move |stream, peer| {
        connection(ctx.clone(), stream, peer, serving_shutdown.clone())
    })
    .await;
}

async fn connection(ctx: Rc<DohContext>, stream: tokio::net::TcpStream, peer: SocketAddr, mut shutdown: Shutdown) {
    let _open = ctx.open.enter();
    bump(&ctx.stats.doh.connections_accepted);
    let local = stream.local_addr().unwrap_or(peer);
    let client =
        Client { addr: ClientAddr { peer, local, transport: Transport::Stream }, key: ctx.gate.client_key(peer.ip()) };
    let acceptor = tokio_rustls::TlsAcceptor::from(ctx.tls.clone());
    let tls = match tokio::time::timeout(ctx.handshake_timeout, acceptor.accept(Cork::new(stream))).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) => return bump(&ctx.stats.doh.handshake_failures),
        Err(_) => return bump(&ctx.stats.doh.handshake_timeouts),
    };
    let (_, session) = tls.get_ref();
    ctx.stats.doh.handshakes.count(session.protocol_version(), session.handshake_kind());
    // ALPN decides, not a guess from the first octets: HTTP/2 over TLS is "h2" (RFC 9113 §3.2),
    // and the flood budgets must watch every HTTP/2 connection.
    let http2 = session.alpn_protocol() == Some(b"h2");
    let activity = Activity::new();
    let io = TokioIo::new(DohStream::new(tls, http2, ctx.max_in_flight, activity.clone()));
    let handler_ctx = ctx.clone();
    let service = hyper::service::service_fn(move |request| handle(handler_ctx.clone(), client, request));
    let mut builder = hyper_util::server::conn::auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.idle_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_MESSAGE + 16 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(ctx.max_in_flight)
        // h2's own flood limits: streams reset before they are answered (rapid reset), local
        // errors, the header list and the send buffer. `flood` budgets the rest.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buf_size(MAX_MESSAGE + 1024)
        .keep_alive_interval(None);
    let builder = if http2 { builder.http2_only() } else { builder.http1_only() };
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let drain = |connection: Pin<&mut _>| {
        // GOAWAY (HTTP/2) or close after the response in progress (HTTP/1.1), then answer what
        // is in flight.
        hyper_util::server::conn::auto::Connection::graceful_shutdown(connection);
    };
    let ended = loop {
        // The idle timeout in force: shorter when connections near the limit, as for DoT.
        let idle = ctx.limits.idle_timeout(ctx.idle_timeout);
        tokio::select! {
            ended = connection.as_mut() => break ended,
            _ = shutdown.wait() => {
                // The worker waits for this (`OpenDoh`) up to --drain-timeout.
                drain(connection.as_mut());
                let _ = connection.as_mut().await;
                bump(&ctx.stats.doh.connections_closed_drain);
                return;
            }
            _ = tokio::time::sleep_until((activity.last() + idle).into()) => {
                if activity.last().elapsed() >= idle {
                    drain(connection.as_mut());
                    let _ = tokio::time::timeout(idle, connection.as_mut()).await;
                    bump(&ctx.stats.doh.connections_closed_idle);
                    return;
                }
            }
        }
    };
    let flood = match activity.flood() {
        Some(Flood::Ping) => &ctx.stats.doh_flood_ping,
        Some(Flood::Settings) => &ctx.stats.doh_flood_settings,
        Some(Flood::Reset) => &ctx.stats.doh_flood_reset,
        Some(Flood::Headers) => &ctx.stats.doh_flood_headers,
        Some(Flood::Other) => &ctx.stats.doh_flood_other,
        None => return bump(closed(&ctx.stats, &ended)),
    };
    bump(flood);
    // A flood is a protocol violation: closed as DoT closes a client that breaks its framing.
    bump(&ctx.stats.doh.connections_closed_protocol);
}

/// Why a DoH connection ended, as far as hyper tells: the client closed it (`client`), the
/// HTTP/1.1 header read timeout (`idle`), a malformed HTTP/1.1 message (`protocol`), or any
/// other error, HTTP/2's included (`error`).
fn closed<'s>(stats: &'s WorkerStats, ended: &Result<(), Box<dyn std::error::Error + Send + Sync>>) -> &'s Counter {
    let stats = &stats.doh;
    match ended {
        Ok(()) => &stats.connections_closed_client,
        Err(e) => match e.downcast_ref::<hyper::Error>() {
            Some(e) if e.is_timeout() => &stats.connections_closed_idle,
            Some(e) if e.is_parse() => &stats.connections_closed_protocol,
            _ => &stats.connections_closed_error,
        },
    }
}

type Answer = Response<Full<Bytes>>;

fn status(code: StatusCode, counter: &crate::stats::Counter) -> Answer {
    bump(counter);
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// One HTTP request: a DNS query, relayed, or an HTTP error.
async fn handle(ctx: Rc<DohContext>, client: Client, request: Request<Incoming>) -> Result<Answer, Infallible> {
    let stats = ctx.stats.clone();
    // Borrowed from the head while the body is read: no copy of the target or the headers.
    let (head, body) = request.into_parts();
    let target = head.uri.path_and_query().map_or("/", |target| target.as_str());
    let content_type = head.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    // A POST's body is read whatever the answer: answered before its upload ends, a stream is
    // reset, and some HTTP/2 clients (curl 7.88) then lose the answer.
    let body = if head.method == Method::POST && head.uri.path() == ctx.path {
        read_body(body).await
    } else {
        Body::Message(Vec::new())
    };
    let message = match ask(&ctx.path, head.method.as_str().as_bytes(), target, content_type, body) {
        Asked::Message(message) => message,
        Asked::Status(code) => {
            let counter = match code {
                StatusCode::NOT_FOUND => &stats.doh_status_404,
                StatusCode::METHOD_NOT_ALLOWED => &stats.doh_status_405,
                StatusCode::PAYLOAD_TOO_LARGE => &stats.doh_status_413,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => &stats.doh_status_415,
                _ => &stats.doh_status_400,
            };
            let mut response = status(code, counter);
            if code == StatusCode::METHOD_NOT_ALLOWED {
                response.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static("GET, POST"));
            }
            return Ok(response);
        }
    };
    // The reply and its channel are made only for a message that leaves (not for a local answer).
    let mut waiting = None;
    let reply = || {
        let (reply, receiver) = DohReply::pair();
        waiting = Some(receiver);
        reply
    };
    let answer = match dispatch(&ctx, &client, &message, reply) {
        Dispatched::Submitted => match waiting {
            Some(receiver) => receiver.await.unwrap_or_else(|_| local(&message, dns::rcode::SERVFAIL)),
            None => local(&message, dns::rcode::SERVFAIL),
        },
        Dispatched::Local(answer) => answer,
        Dispatched::NotAQuery => return Ok(status(StatusCode::BAD_REQUEST, &stats.doh_status_400)),
    };
    bump(&stats.doh_status_200);
    // RFC 8484 §5.1: fresh for the smallest TTL in the answer (a negative answer's: its SOA's
    // TTL, at most its MINIMUM, as the resolver sends it, RFC 2308).
    let max_age = dns::answer_min_ttl(&answer).unwrap_or(0);
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_str(&format!("max-age={max_age}")).expect("a header value"));
    Ok(response)
}

/// What an HTTP request asks of the DoH endpoint.
enum Asked {
    /// A DNS message to answer.
    Message(Vec<u8>),
    /// An HTTP error that answers it (RFC 8484 §4.1 and HTTP's own).
    Status(StatusCode),
}

/// The DNS message of a request for `target` (path and query) with `method`, `content_type`
/// and `body` (read for a POST, empty otherwise), or the status that answers it: 404 for another
/// path, 405 for another method, 415 for a POST of another type, 413 for a body over 65,535
/// octets, 400 for a bad `?dns=` or a message shorter than a DNS header. The same for every
/// HTTP version.
fn ask(doh_path: &str, method: &[u8], target: &str, content_type: Option<&[u8]>, body: Body) -> Asked {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != doh_path {
        return Asked::Status(StatusCode::NOT_FOUND);
    }
    let message = match method {
        b"GET" => {
            let dns = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("dns="))
                .map(|value| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value));
            match dns {
                Some(Ok(message)) if message.len() <= MAX_MESSAGE => message,
                _ => return Asked::Status(StatusCode::BAD_REQUEST),
            }
        }
        b"POST" => {
            // Parameters after ';' (a charset, say) do not change the type.
            let media_type = content_type.map(|t| t.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii());
            if media_type != Some(DNS_MESSAGE.as_bytes()) {
                return Asked::Status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            match body {
                Body::Message(message) => message,
                Body::TooLarge => return Asked::Status(StatusCode::PAYLOAD_TOO_LARGE),
                Body::Broken => return Asked::Status(StatusCode::BAD_REQUEST),
            }
        }
        _ => return Asked::Status(StatusCode::METHOD_NOT_ALLOWED),
    };
    if message.len() < dns::HEADER_LEN {
        return Asked::Status(StatusCode::BAD_REQUEST);
    }
    Asked::Message(message)
}

/// What became of a DoH request's DNS message.
enum Dispatched {
    /// Sent to the relay or the private-subdomain gateway: the answer comes through the reply.
    Submitted,
    /// Answered here: FORMERR, NOTIMP, or REFUSED for a client over its rate.
    Local(Vec<u8>),
    /// A response sent as a query: not a DNS client (HTTP 400).
    NotAQuery,
}

/// Sends `message` where DoT would (the gateway for `--pvt-zone` names, else the relay, with the
/// client's address, padding taken off and put back through the tag) with the `reply` it makes,
/// or answers it here.
/// The same for every HTTP version and connection type: what DoH does with a DNS message.
fn dispatch(ctx: &DohContext, client: &Client, message: &[u8], reply: impl FnOnce() -> Rc<dyn ReplyTo>) -> Dispatched {
    bump(&ctx.stats.doh.queries);
    let rate_limited = || local_ede(message, dns::rcode::REFUSED, edns::ede::PROHIBITED, "rate limited");
    if let Some(pvt) = ctx.pvt.as_ref().filter(|pvt| pvt.server.claims(message)) {
        // A query or UPDATE for a private subdomain: the gateway answers it, as over DoT.
        if over_rate(ctx, client) {
            return Dispatched::Local(rate_limited());
        }
        pvt.handle(message, reply(), 0, crate::frontend::pvt::gateway::Transport::Stream);
        return Dispatched::Submitted;
    }
    match dns::check_query(message) {
        QueryVerdict::Relay { question_end } => {
            if over_rate(ctx, client) {
                return Dispatched::Local(rate_limited());
            }
            if ctx.log_queries {
                crate::frontend::dot::connection::log_query(message, question_end);
            }
            // Padding is this hop's business, as over DoT: taken off the query, put back on the
            // answer (`edns`). Keepalive (RFC 7828) is TCP's, not HTTP's: taken off, never
            // answered.
            let mut edited = ctx.query_edit.borrow_mut();
            let (mut hop, stripped) = edns::take_query_options(message, question_end, &mut edited);
            hop.keepalive = false;
            hop.padding = match ctx.padding {
                Padding::Requested => hop.padding,
                Padding::Always => true,
                Padding::Never => false,
            };
            let relayed = if stripped { &edited[..] } else { message };
            ctx.relay.submit(relayed, question_end, reply(), hop.to_tag(), Some(client.addr));
            Dispatched::Submitted
        }
        QueryVerdict::Answer(rcode) => {
            let answers = &ctx.stats.doh.answers;
            bump(if rcode == dns::rcode::NOTIMP { &answers.notimp } else { &answers.formerr });
            Dispatched::Local(local(message, rcode))
        }
        QueryVerdict::Close => Dispatched::NotAQuery,
    }
}

/// A POST body, as read.
enum Body {
    Message(Vec<u8>),
    TooLarge,
    Broken,
}

/// Octets of a too-large body read and dropped before the 413 goes: a client that sends a little
/// too much gets its answer after its upload (an early answer makes some HTTP/2 clients see a
/// reset stream); one that sends more has its stream or connection cut.
const DRAIN_LIMIT: usize = 4 * MAX_MESSAGE;

async fn read_body(mut body: Incoming) -> Body {
    let mut message = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Body::Broken };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > DRAIN_LIMIT {
                return Body::TooLarge;
            }
            if seen <= MAX_MESSAGE {
                message.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_MESSAGE {
        Body::TooLarge
    } else {
        Body::Message(message)
    }
}

/// An answer dotgate makes itself for `query`.
fn local(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    dns::write_local_answer(query, dns::id(query), rcode, &mut out);
    out
}

/// An answer dotgate makes itself for `query`, saying why (RFC 8914).
fn local_ede(query: &[u8], rcode: u8, info_code: u16, extra_text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    edns::write_local_answer_with_ede(query, dns::id(query), rcode, info_code, extra_text, &mut out);
    out
}

/// Whether `message` is over its client's query rate (counted; the caller answers REFUSED).
fn over_rate(ctx: &DohContext, client: &Client) -> bool {
    if !ctx.gate.limits_queries() || ctx.gate.allow_query(client.key, std::time::Instant::now()) {
        return false;
    }
    bump(&ctx.stats.rate_limited_queries);
    bump(&ctx.stats.doh.answers.refused);
    true
}

/// Who sent a request: for the relay (PROXY v2, ECS) and the rate limits.
#[derive(Clone, Copy)]
struct Client {
    addr: ClientAddr,
    key: crate::access::prefix::ClientKey,
}

/// Where the relay's answer to one DoH query goes: the request's task, waiting.
struct DohReply {
    sender: RefCell<Option<oneshot::Sender<Vec<u8>>>>,
}

impl DohReply {
    /// A reply for the relay, and where the request waits for it.
    fn pair() -> (Rc<dyn ReplyTo>, oneshot::Receiver<Vec<u8>>) {
        let (sender, receiver) = oneshot::channel();
        (Rc::new(DohReply { sender: RefCell::new(Some(sender)) }), receiver)
    }
}

impl ReplyTo for DohReply {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Doh
    }

    fn deliver(&self, answer: &[u8], tag: u8) {
        if let Some(sender) = self.sender.borrow_mut().take() {
            let answer = if tag == 0 {
                answer.to_vec()
            } else {
                // The query asked for padding (see `edns`): the answer gets it back.
                let mut out = Vec::with_capacity(answer.len() + 468);
                edns::append_answer(answer, HopOptions::from_tag(tag), 0, &mut out);
                out
            };
            let _ = sender.send(answer);
        }
    }

    fn is_closed(&self) -> bool {
        self.sender.borrow().as_ref().is_none_or(oneshot::Sender::is_closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY_B64: &str = "AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE";

    fn status_of(asked: Asked) -> u16 {
        match asked {
            Asked::Message(_) => 200,
            Asked::Status(code) => code.as_u16(),
        }
    }

    #[test]
    fn each_request_gets_its_message_or_its_status() {
        let none = || Body::Message(Vec::new());
        let query = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(QUERY_B64).unwrap();
        let get = |target: &str| status_of(ask("/dns-query", b"GET", target, None, none()));
        assert_eq!(get(&format!("/dns-query?dns={QUERY_B64}")), 200);
        assert_eq!(get(&format!("/dns-query?ct&dns={QUERY_B64}&x=1")), 200);
        assert_eq!(get(&format!("/other?dns={QUERY_B64}")), 404);
        assert_eq!(get(&format!("/dns-query/?dns={QUERY_B64}")), 404);
        assert_eq!(get("/dns-query"), 400);
        assert_eq!(get(&format!("/dns-query?dns={QUERY_B64}==")), 400, "padding");
        assert_eq!(get("/dns-query?dns=AAAB+/"), 400, "base64, not base64url");
        assert_eq!(get("/dns-query?dns=AAABAAAB"), 400, "shorter than a header");
        let post = |content_type: &[u8], body: Body| {
            status_of(ask("/dns-query", b"POST", "/dns-query", Some(content_type), body))
        };
        assert_eq!(post(b"application/dns-message", Body::Message(query.clone())), 200);
        assert_eq!(post(b"application/dns-message; charset=x", Body::Message(query.clone())), 200);
        assert_eq!(post(b"text/plain", Body::Message(query.clone())), 415);
        assert_eq!(post(b"application/dns-message", Body::TooLarge), 413);
        assert_eq!(post(b"text/plain", Body::TooLarge), 415, "the type is judged first");
        assert_eq!(post(b"application/dns-message", Body::Broken), 400);
        assert_eq!(post(b"application/dns-message", Body::Message(vec![0; 11])), 400);
        assert_eq!(status_of(ask("/dns-query", b"POST", "/dns-query", None, Body::Message(query))), 415);
        assert_eq!(status_of(ask("/dns-query", b"PUT", "/dns-query", None, none())), 405);
        assert_eq!(status_of(ask("/q", b"PUT", "/dns-query", None, none())), 404, "the path is judged first");
    }
}
