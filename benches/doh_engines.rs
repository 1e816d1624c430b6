//! Issue 18: "hyper or h2 directly: measure which is leaner per connection and per query" for
//! the DoH frontend's HTTP/2. Four server engines answer the same DoH-like exchange to the same
//! client, in one process:
//!
//! - `hyper-auto`: what `src/frontend/doh/mod.rs` runs: hyper_util's `auto::Builder` with
//!   `http2_only`, hyper's HTTP/2 settings as there, a `service_fn` per request, each stream a
//!   task on the `LocalSet` (`LocalExec`).
//! - `hyper-h2`: the same without hyper_util: `hyper::server::conn::http2::Builder` (the
//!   `auto` connection is an enum of the HTTP/1.1 and HTTP/2 connections, so its future is the
//!   larger of the two; this row shows what that costs).
//! - `h2-unordered`: the `h2` crate directly (hyper's HTTP/2 is h2 underneath), with the same
//!   h2 settings as hyper passes it; the connection task accepts streams and polls their
//!   handlers in a `FuturesUnordered` (no task per stream).
//! - `h2-spawn`: the same, but each stream's handler is a `spawn_local` task (as hyper does).
//!
//! The handler is the same code for all four, modelled on `handle` in the DoH frontend: check the
//! content type, read the POST body into a `Vec` (h2 directly must release the flow-control
//! capacity itself; hyper does it), hand the query to a "relay" and await its answer through a
//! `oneshot` (one long-lived relay task on the worker answers queued queries at once with a
//! fixed 60-byte message, `answer.to_vec()` as `DohReply::deliver` does), then answer `200` with
//! `content-type: application/dns-message`, `cache-control: max-age=300` (built with
//! `format!` as the frontend does) and the 60 octets. hyper adds `content-length` (from the
//! body's size) and `date` (a clone of a value cached per second) on its own; the h2 engines
//! add the same two, the same way (RFC 9110 §6.6.1 wants `date` from a server with a clock),
//! so that every engine sends the client the same octets.
//!
//! The client is the `h2` crate's, one client connection per server connection, POSTing a
//! 33-byte query (`www.example.com A`) and reading the answer, with K requests in flight on the
//! connection (K worker tasks sharing one `SendRequest`).
//!
//! Connections are `tokio::io::duplex` pairs in memory: no TLS and no sockets. TLS (rustls, one
//! record per response) and the socket system calls cost the same whichever engine produces the
//! HTTP/2 octets, so they are left out; so is a frame watch for the flood budgets, which an
//! h2-direct design would need just the same. (This bench chose between hyper and h2 for the
//! DoH frontend; dotgate then took neither: see docs/doh.md.) Everything runs on
//! one thread: a current_thread runtime and a `LocalSet`, like a dotgate worker.
//!
//! What is printed (each figure the median of REPS repetitions):
//!
//! 1. CPU per request: the thread's user+system CPU time (`getrusage(RUSAGE_THREAD)`) over
//!    REQUESTS requests with K = 1 and K = 50 in flight, divided by REQUESTS. It includes the
//!    client, which is the same code for all engines; the server's share is estimated in a
//!    second, metered run of the same size in which every task's polls are timed (`Instant`
//!    around each poll, the calibrated cost of the two clock reads subtracted) and sorted by
//!    side: `server` is the total times the server's share of the polled time. The runtime's
//!    own scheduling between polls is in neither side's polled time and is split pro rata.
//!    `srv polls` and `cli polls` are the task polls per request on each side (metered run):
//!    how often each side was woken.
//! 2. Heap per idle connection: CONNS connections are opened, each does its HTTP/2 handshake
//!    (preface, SETTINGS both ways) and one complete request, then all sit idle; the live heap
//!    bytes that the server side allocated (and still holds), divided by CONNS. The counting
//!    `#[global_allocator]` below wraps the system allocator and tags every block with the side
//!    whose code allocated it: a thread-local "side" is set while a server task, a client task
//!    or the duplex pipe's own code is polled (the pipe's buffers stand for the kernel's socket
//!    buffers and are counted apart), so a block allocated by the server and freed by anyone
//!    is debited to the server. The server side includes the connection task's own
//!    allocation (its future), h2's connection and stream state and hyper's. Live bytes are
//!    the sizes asked for: the allocator's own per-block overhead and rounding are not in them,
//!    which is why the live block count is printed too (glibc adds 8 to 16 bytes per block;
//!    mimalloc, which the dotgate binary uses, rounds up to its size classes instead).
//!    Two things in this figure are not the engine: h2 itself keeps its 16 KiB write buffer and
//!    tokio-util's 8 KiB read buffer through idleness, whatever drives it; and `h2-unordered`'s
//!    `FuturesUnordered::new` allocates a stub task the size of one handler future at once (a
//!    design would create it on the first stream, or keep it empty some other way).
//! 3. Allocations per request, server side and client side, from the same counters over the
//!    unmetered run of (1): `alloc` and `realloc` calls each count as one.
//!
//! Run: `cargo bench --bench doh_engines` (bench profile: release, fat LTO). DOH_BENCH_REQUESTS,
//! DOH_BENCH_REPS and DOH_BENCH_CONNS override 200,000, 5 and 1,000 for a quick look. Under
//! `cargo test` (no `--bench` argument) it makes a smoke run of 2,000 requests, 1 run, 20
//! connections.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// The counting allocator: every block carries, just before it, the side that allocated it.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Side {
    /// The bench's own bookkeeping (the driver future, vectors of handles).
    Other = 0,
    Server = 1,
    Client = 2,
    /// The duplex pipes (their shared state and buffers): the kernel's part over TCP.
    Pipe = 3,
}

const SIDES: usize = 4;

thread_local! {
    static SIDE: Cell<u8> = const { Cell::new(Side::Other as u8) };
}

static LIVE_BYTES: [AtomicI64; SIDES] = [const { AtomicI64::new(0) }; SIDES];
static LIVE_BLOCKS: [AtomicI64; SIDES] = [const { AtomicI64::new(0) }; SIDES];
static ALLOCS: [AtomicU64; SIDES] = [const { AtomicU64::new(0) }; SIDES];

fn current_side() -> usize {
    SIDE.try_with(Cell::get).unwrap_or(Side::Other as u8) as usize
}

/// Room before each block for its tag: at least 16 octets, and the block's alignment.
fn prefix(layout: Layout) -> usize {
    layout.align().max(16)
}

struct Counting;

// SAFETY: every block is the system allocator's, `prefix` octets larger at the front and with
// the caller's alignment (prefix is a multiple of it), so the pointer handed out is aligned and
// its `size` octets are inside the block; the tag octet just before it is inside the prefix.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pre = prefix(layout);
        let Ok(full) = Layout::from_size_align(layout.size() + pre, layout.align()) else {
            return std::ptr::null_mut();
        };
        let base = System.alloc(full);
        if base.is_null() {
            return base;
        }
        let side = current_side();
        let ptr = base.add(pre);
        ptr.sub(1).write(side as u8);
        LIVE_BYTES[side].fetch_add(layout.size() as i64, Relaxed);
        LIVE_BLOCKS[side].fetch_add(1, Relaxed);
        ALLOCS[side].fetch_add(1, Relaxed);
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let pre = prefix(layout);
        let side = ptr.sub(1).read() as usize;
        LIVE_BYTES[side].fetch_sub(layout.size() as i64, Relaxed);
        LIVE_BLOCKS[side].fetch_sub(1, Relaxed);
        System.dealloc(ptr.sub(pre), Layout::from_size_align_unchecked(layout.size() + pre, layout.align()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The block keeps its owner: a buffer the server allocated and the client grew is
        // still the server's.
        let pre = prefix(layout);
        let side = ptr.sub(1).read() as usize;
        let full = Layout::from_size_align_unchecked(layout.size() + pre, layout.align());
        let base = System.realloc(ptr.sub(pre), full, new_size + pre);
        if base.is_null() {
            return base;
        }
        LIVE_BYTES[side].fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        ALLOCS[current_side()].fetch_add(1, Relaxed);
        base.add(pre)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sets the thread's side until dropped.
struct Entered(u8);

fn enter(side: Side) -> Entered {
    Entered(SIDE.with(|s| s.replace(side as u8)))
}

impl Drop for Entered {
    fn drop(&mut self) {
        SIDE.with(|s| s.set(self.0));
    }
}

#[derive(Clone, Copy, Default, Debug)]
struct Counts {
    live_bytes: [i64; SIDES],
    live_blocks: [i64; SIDES],
    allocs: [u64; SIDES],
}

fn counts() -> Counts {
    Counts {
        live_bytes: LIVE_BYTES.each_ref().map(|a| a.load(Relaxed)),
        live_blocks: LIVE_BLOCKS.each_ref().map(|a| a.load(Relaxed)),
        allocs: ALLOCS.each_ref().map(|a| a.load(Relaxed)),
    }
}

// ---------------------------------------------------------------------------------------------
// Sides and their polled time.

thread_local! {
    /// When set, every task's polls are timed (the metered runs only).
    static METER: Cell<bool> = const { Cell::new(false) };
    static POLLED_NS: RefCell<[u64; SIDES]> = const { RefCell::new([0; SIDES]) };
    static POLLS: RefCell<[u64; SIDES]> = const { RefCell::new([0; SIDES]) };
}

/// `future`, with the thread's side set to `side` while it is polled (and, in a metered run,
/// the poll timed).
async fn on<F: Future>(side: Side, future: F) -> F::Output {
    let mut future = pin!(future);
    poll_fn(|cx| {
        let _side = enter(side);
        if !METER.with(Cell::get) {
            return future.as_mut().poll(cx);
        }
        let start = Instant::now();
        let out = future.as_mut().poll(cx);
        let ns = start.elapsed().as_nanos() as u64;
        POLLED_NS.with(|p| p.borrow_mut()[side as usize] += ns);
        POLLS.with(|p| p.borrow_mut()[side as usize] += 1);
        out
    })
    .await
}

/// A task of `side`; its own allocation (the task cell, holding the future) is the side's too.
fn spawn<F: Future + 'static>(side: Side, future: F) -> JoinHandle<F::Output> {
    let _side = enter(side);
    tokio::task::spawn_local(on(side, future))
}

/// The cost of the two clock reads of a metered poll, in ns.
fn clock_pair_ns() -> f64 {
    const N: u32 = 1_000_000;
    let start = Instant::now();
    let mut sink = Duration::ZERO;
    for _ in 0..N {
        sink += std::hint::black_box(Instant::now()).elapsed();
    }
    std::hint::black_box(sink);
    start.elapsed().as_nanos() as f64 / f64::from(N)
}

fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A duplex end whose own code (its buffers) allocates as the pipe.
struct Piped(DuplexStream);

impl AsyncRead for Piped {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let _pipe = enter(Side::Pipe);
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Piped {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let _pipe = enter(Side::Pipe);
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _pipe = enter(Side::Pipe);
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _pipe = enter(Side::Pipe);
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The pipe's capacity each way (a cap: its buffer grows to what is in it).
const PIPE: usize = 64 * 1024;

fn pipe() -> (Piped, Piped) {
    let _pipe = enter(Side::Pipe);
    let (client, server) = tokio::io::duplex(PIPE);
    (Piped(client), Piped(server))
}

// ---------------------------------------------------------------------------------------------
// The DoH exchange.

/// www.example.com A, ID 0 (RFC 8484 §4.1).
const QUERY: &[u8] = b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";
/// The answer: QUERY's question, one A record (TTL 300) and an OPT record: 60 octets.
const ANSWER: &[u8] = b"\x00\x00\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01\x03www\x07example\x03com\x00\x00\x01\x00\x01\
\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x5d\xb8\xd8\x22\
\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
const _: () = assert!(QUERY.len() == 33 && ANSWER.len() == 60);
const URI: &str = "https://dotgate.test/dns-query";
const DNS_MESSAGE: &str = "application/dns-message";

/// As in `src/frontend/doh/mod.rs`: `--max-in-flight`'s default, `MAX_HEADER_LIST`,
/// `MAX_MESSAGE + 1024` for the send buffer.
const MAX_STREAMS: u32 = 100;
const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_SEND_BUF: usize = 65_535 + 1024;
/// hyper's HTTP/2 defaults (`hyper/src/proto/h2/server.rs`), which the frontend keeps and the
/// h2 engines are given.
const WINDOW: u32 = 1024 * 1024;
const MAX_FRAME: u32 = 16 * 1024;

/// The relay: one task per worker, which answers every query handed to it (at once, with
/// ANSWER) through the query's `oneshot`, as the relay's `DohReply::deliver` does.
#[derive(Default)]
struct Relay {
    queue: RefCell<VecDeque<oneshot::Sender<Vec<u8>>>>,
    waker: RefCell<Option<Waker>>,
}

impl Relay {
    fn start() -> (Rc<Relay>, JoinHandle<()>) {
        let relay = Rc::new(Relay::default());
        let worker = relay.clone();
        let task = spawn(
            Side::Server,
            poll_fn(move |cx| {
                while let Some(reply) = worker.queue.borrow_mut().pop_front() {
                    let _ = reply.send(ANSWER.to_vec());
                }
                *worker.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }),
        );
        (relay, task)
    }

    async fn ask(&self, query: &[u8]) -> Vec<u8> {
        assert_eq!(query.len(), QUERY.len());
        let (sender, receiver) = oneshot::channel();
        self.queue.borrow_mut().push_back(sender);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
        receiver.await.expect("the relay answers")
    }
}

fn is_dns(headers: &hyper::HeaderMap) -> bool {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    content_type.map(|t| t.split(';').next().unwrap_or("").trim()) == Some(DNS_MESSAGE)
}

fn answer_headers(headers: &mut hyper::HeaderMap) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    let max_age = 300;
    headers.insert(CACHE_CONTROL, HeaderValue::from_str(&format!("max-age={max_age}")).expect("a header value"));
}

/// The `date` value, formatted once a second (as hyper's `CachedDate`).
fn date() -> HeaderValue {
    thread_local! {
        static CACHED: RefCell<(u64, HeaderValue)> = const { RefCell::new((0, HeaderValue::from_static(""))) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, HeaderValue::from_str(&httpdate::fmt_http_date(now)).expect("a date"));
        }
        cached.1.clone()
    })
}

// hyper ---------------------------------------------------------------------------------------

/// As in the frontend (whose `LocalExec` is private to it): each stream a task on the worker's
/// `LocalSet`, here a server task.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, future: F) {
        spawn(Side::Server, future);
    }
}

async fn hyper_handle(
    relay: Rc<Relay>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let dns = is_dns(request.headers());
    let mut body = request.into_body();
    let mut message = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("a body").into_data() {
            message.extend_from_slice(&data);
        }
    }
    assert!(dns);
    let answer = relay.ask(&message).await;
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    answer_headers(response.headers_mut());
    Ok(response)
}

/// The frontend's HTTP/2 settings, on hyper's HTTP/2 builder or on hyper_util's `auto` one
/// (two types with the same methods).
macro_rules! frontend_h2_settings {
    ($builder:expr) => {
        $builder
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256))
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buf_size(MAX_SEND_BUF)
            .keep_alive_interval(None)
    };
}

async fn serve_hyper_h2(io: Piped, relay: Rc<Relay>) {
    let service = hyper::service::service_fn(move |request| hyper_handle(relay.clone(), request));
    let mut builder = hyper::server::conn::http2::Builder::new(LocalExec);
    frontend_h2_settings!(builder);
    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service).await;
}

/// `src/frontend/doh/mod.rs`'s builder, HTTP/1.1 settings included (they size the connection).
async fn serve_hyper_auto(io: Piped, relay: Rc<Relay>) {
    let service = hyper::service::service_fn(move |request| hyper_handle(relay.clone(), request));
    let idle = Duration::from_secs(30);
    let mut builder = hyper_util::server::conn::auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true)
        .max_buf_size(65_535 + 16 * 1024);
    frontend_h2_settings!(builder.http2());
    let builder = builder.http2_only();
    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service).await;
}

// h2 directly ---------------------------------------------------------------------------------

/// The settings hyper gives h2 (`hyper/src/proto/h2/server.rs`, `Server::new`) with the
/// frontend's values.
fn h2_builder() -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_local_error_reset_streams(Some(256))
        .max_send_buffer_size(MAX_SEND_BUF)
        .max_concurrent_streams(MAX_STREAMS)
        .max_pending_accept_reset_streams(20);
    builder
}

async fn h2_handle(relay: Rc<Relay>, request: Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>) {
    let dns = is_dns(request.headers());
    let mut body = request.into_body();
    let mut message = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.expect("a body");
        // h2 leaves the flow-control window to its user; hyper releases as it reads.
        let _ = body.flow_control().release_capacity(data.len());
        message.extend_from_slice(&data);
    }
    assert!(dns);
    let answer = relay.ask(&message).await;
    let mut response = Response::new(());
    answer_headers(response.headers_mut());
    // What hyper adds on its own, so that both engines send the same response.
    response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(answer.len()));
    response.headers_mut().insert(DATE, date());
    let Ok(mut send) = respond.send_response(response, false) else { return };
    let _ = send.send_data(Bytes::from(answer), true);
}

async fn serve_h2_unordered(io: Piped, relay: Rc<Relay>) {
    let Ok(mut connection) = h2_builder().handshake::<_, Bytes>(io).await else { return };
    let mut streams = FuturesUnordered::new();
    poll_fn(|cx| loop {
        // Handlers first: the responses they queue go out in the connection's poll below.
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        match connection.poll_accept(cx) {
            Poll::Ready(Some(Ok((request, respond)))) => streams.push(h2_handle(relay.clone(), request, respond)),
            Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
}

async fn serve_h2_spawn(io: Piped, relay: Rc<Relay>) {
    let Ok(mut connection) = h2_builder().handshake::<_, Bytes>(io).await else { return };
    while let Some(Ok((request, respond))) = connection.accept().await {
        spawn(Side::Server, h2_handle(relay.clone(), request, respond));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    HyperAuto,
    HyperH2,
    H2Unordered,
    H2Spawn,
}

const ENGINES: [Engine; 4] = [Engine::HyperAuto, Engine::HyperH2, Engine::H2Unordered, Engine::H2Spawn];

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::HyperAuto => "hyper-auto (src/)",
            Engine::HyperH2 => "hyper-h2",
            Engine::H2Unordered => "h2-unordered",
            Engine::H2Spawn => "h2-spawn",
        }
    }

    /// The server end of one connection, as a server task.
    fn serve(self, io: Piped, relay: &Rc<Relay>) -> JoinHandle<()> {
        let relay = relay.clone();
        match self {
            Engine::HyperAuto => spawn(Side::Server, serve_hyper_auto(io, relay)),
            Engine::HyperH2 => spawn(Side::Server, serve_hyper_h2(io, relay)),
            Engine::H2Unordered => spawn(Side::Server, serve_h2_unordered(io, relay)),
            Engine::H2Spawn => spawn(Side::Server, serve_h2_spawn(io, relay)),
        }
    }
}

// The client ----------------------------------------------------------------------------------

/// A client connection: its `SendRequest` and its connection task.
async fn connect(io: Piped) -> (h2::client::SendRequest<Bytes>, JoinHandle<()>) {
    let (send, connection) =
        on(Side::Client, h2::client::Builder::new().handshake::<_, Bytes>(io)).await.expect("a client handshake");
    let task = spawn(Side::Client, async move {
        let _ = connection.await;
    });
    (send, task)
}

/// One DoH POST and its answer, read to the end.
async fn exchange(send: h2::client::SendRequest<Bytes>) -> h2::client::SendRequest<Bytes> {
    let mut send = send.ready().await.expect("a stream");
    let request =
        Request::post(URI).header(CONTENT_TYPE, DNS_MESSAGE).header(ACCEPT, DNS_MESSAGE).body(()).expect("a request");
    let (response, mut body) = send.send_request(request, false).expect("sent");
    body.send_data(Bytes::from_static(QUERY), true).expect("a body sent");
    let response = response.await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut length = 0;
    while let Some(data) = body.data().await {
        let data = data.expect("an answer");
        length += data.len();
        let _ = body.flow_control().release_capacity(data.len());
    }
    assert_eq!(length, ANSWER.len());
    send
}

// The measurements ----------------------------------------------------------------------------

struct Load {
    cpu_ns_per_request: f64,
    /// The server's fraction of the polled time (metered runs only).
    server_share: f64,
    /// Task polls per request, each side (metered runs only).
    server_polls: f64,
    client_polls: f64,
    server_allocs: f64,
    client_allocs: f64,
    pipe_allocs: f64,
}

/// `requests` exchanges on one connection, `in_flight` at a time.
async fn load(engine: Engine, in_flight: usize, requests: usize, metered: bool, clock_pair: f64) -> Load {
    let (relay, relay_task) = Relay::start();
    let (client_io, server_io) = pipe();
    let server = engine.serve(server_io, &relay);
    let (mut send, client) = connect(client_io).await;
    for _ in 0..100 {
        send = on(Side::Client, exchange(send)).await;
    }
    let left = Rc::new(Cell::new(requests));
    POLLED_NS.with(|p| *p.borrow_mut() = [0; SIDES]);
    POLLS.with(|p| *p.borrow_mut() = [0; SIDES]);
    METER.with(|m| m.set(metered));
    let (cpu, before) = (thread_cpu(), counts());
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (left, mut send) = (left.clone(), send.clone());
            spawn(Side::Client, async move {
                while left.get() > 0 {
                    left.set(left.get() - 1);
                    send = exchange(send).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker");
    }
    let (cpu, after) = (thread_cpu() - cpu, counts());
    METER.with(|m| m.set(false));
    let polled = POLLED_NS.with(|p| *p.borrow());
    let polls = POLLS.with(|p| *p.borrow());
    let net = |side: Side| (polled[side as usize] as f64 - polls[side as usize] as f64 * clock_pair).max(0.0);
    let (server_ns, client_ns) = (net(Side::Server), net(Side::Client));
    drop(send);
    server.abort();
    client.abort();
    relay_task.abort();
    let _ = server.await;
    let _ = client.await;
    let _ = relay_task.await;
    let per = |side: Side| (after.allocs[side as usize] - before.allocs[side as usize]) as f64 / requests as f64;
    Load {
        cpu_ns_per_request: cpu.as_nanos() as f64 / requests as f64,
        server_share: if server_ns + client_ns > 0.0 { server_ns / (server_ns + client_ns) } else { 0.0 },
        server_polls: polls[Side::Server as usize] as f64 / requests as f64,
        client_polls: polls[Side::Client as usize] as f64 / requests as f64,
        server_allocs: per(Side::Server),
        client_allocs: per(Side::Client),
        pipe_allocs: per(Side::Pipe),
    }
}

struct Idle {
    server_bytes: f64,
    server_blocks: f64,
    client_bytes: f64,
    pipe_bytes: f64,
}

/// Lets every task run until nothing moves.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// `conns` connections, each after its handshake and one exchange, idle.
async fn idle(engine: Engine, conns: usize) -> Idle {
    let (relay, relay_task) = Relay::start();
    let mut held = Vec::with_capacity(conns);
    settle().await;
    let before = counts();
    for _ in 0..conns {
        let (client_io, server_io) = pipe();
        let server = engine.serve(server_io, &relay);
        let (send, client) = connect(client_io).await;
        let send = on(Side::Client, exchange(send)).await;
        held.push((send, server, client));
    }
    settle().await;
    let after = counts();
    for (send, server, client) in held {
        drop(send);
        server.abort();
        client.abort();
    }
    relay_task.abort();
    settle().await;
    let per = |v: [i64; SIDES], side: Side| (v[side as usize] as f64) / conns as f64;
    let delta = |a: [i64; SIDES], b: [i64; SIDES]| std::array::from_fn::<i64, SIDES, _>(|i| a[i] - b[i]);
    let (bytes, blocks) = (delta(after.live_bytes, before.live_bytes), delta(after.live_blocks, before.live_blocks));
    Idle {
        server_bytes: per(bytes, Side::Server),
        server_blocks: per(blocks, Side::Server),
        client_bytes: per(bytes, Side::Client),
        pipe_bytes: per(bytes, Side::Pipe),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs this too, unoptimised and without `--bench`: then a smoke
    // run (every engine answers, the figures print) instead of minutes of measurement.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (requests, reps, conns) = if measuring { (200_000, 5, 1_000) } else { (2_000, 1, 20) };
    let requests = setting("DOH_BENCH_REQUESTS", requests);
    let reps = setting("DOH_BENCH_REPS", reps);
    let conns = setting("DOH_BENCH_CONNS", conns);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let local = tokio::task::LocalSet::new();
    let clock_pair = clock_pair_ns();
    println!(
        "doh_engines: {requests} requests per run, median of {reps} runs, {conns} idle connections; \
         one thread, in-memory pipes, no TLS; clock pair {clock_pair:.1} ns"
    );
    local.block_on(&runtime, async {
        println!();
        println!("1 + 3. per request (CPU: thread user+sys, client included; server: its share of polled time)");
        println!(
            "{:<18} {:>3} {:>12} {:>12} {:>8} {:>13} {:>13} {:>11} {:>9} {:>9}",
            "engine",
            "K",
            "cpu ns/req",
            "server ns",
            "server%",
            "srv allocs",
            "cli allocs",
            "pipe allocs",
            "srv polls",
            "cli polls"
        );
        for in_flight in [1, 50] {
            for engine in ENGINES {
                let mut runs = Vec::new();
                for _ in 0..reps {
                    let plain = load(engine, in_flight, requests, false, clock_pair).await;
                    let metered = load(engine, in_flight, requests, true, clock_pair).await;
                    runs.push((plain, metered));
                }
                let m = |f: &dyn Fn(&(Load, Load)) -> f64| median(runs.iter().map(f).collect());
                let cpu = m(&|(l, _)| l.cpu_ns_per_request);
                let share = m(&|(_, metered)| metered.server_share);
                println!(
                    "{:<18} {:>3} {:>12.0} {:>12.0} {:>7.1}% {:>13.2} {:>13.2} {:>11.2} {:>9.2} {:>9.2}",
                    engine.name(),
                    in_flight,
                    cpu,
                    cpu * share,
                    share * 100.0,
                    m(&|(l, _)| l.server_allocs),
                    m(&|(l, _)| l.client_allocs),
                    m(&|(l, _)| l.pipe_allocs),
                    m(&|(_, metered)| metered.server_polls),
                    m(&|(_, metered)| metered.client_polls),
                );
            }
        }
        println!();
        println!("2. live heap per idle connection (handshake + one request done), {conns} connections");
        println!(
            "{:<18} {:>13} {:>14} {:>13} {:>11}",
            "engine", "server bytes", "server blocks", "client bytes", "pipe bytes"
        );
        for engine in ENGINES {
            let mut runs = Vec::new();
            for _ in 0..reps {
                runs.push(idle(engine, conns).await);
            }
            let m = |f: &dyn Fn(&Idle) -> f64| median(runs.iter().map(f).collect());
            println!(
                "{:<18} {:>13.0} {:>14.1} {:>13.0} {:>11.0}",
                engine.name(),
                m(&|i| i.server_bytes),
                m(&|i| i.server_blocks),
                m(&|i| i.client_bytes),
                m(&|i| i.pipe_bytes),
            );
        }
    });
}
