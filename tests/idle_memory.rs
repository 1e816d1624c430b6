//! Idle connections hold no I/O buffers: after its query is answered, a connection keeps its TLS
//! state and little else (no 64 KiB read buffer, no 16 KiB TLS buffers). Measured from outside,
//! as an operator would: dotgate's resident memory before and after a thousand clients connect,
//! ask one question each and go quiet.
//!
//! The floor itself (≤ 5 kB per connection, release build) is measured by the load test
//! (`loadtest/compare.sh --scenarios idle`); this guard runs on the debug build, whose futures
//! are larger, and catches any buffer kept per connection.

mod support;

use std::time::Duration;

use hickory_proto::rr::RecordType;
use support::{query, DotClient, Dotgate, FakeBackend};

const HELD: usize = 1000;
/// Far above what an idle connection costs (about 5 kB; more in a debug build), far below
/// what one kept read or TLS buffer would add.
const MAX_BYTES_PER_CONNECTION: u64 = 12_000;
/// One worker, connections kept for the whole test, all from one address.
const IDLE_ARGS: [&str; 6] = ["--workers", "1", "--idle-timeout", "120", "--max-connections-per-ip", "5000"];

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// This test process holds a socket per client: lift its own open-file limit too.
fn raise_open_files() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain get/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// `count` clients made by `open(i)`, 16 at a time.
async fn in_lanes<C, F, Opening>(count: usize, open: F) -> Vec<C>
where
    C: Send + 'static,
    F: Fn(usize) -> Opening + Clone + Send + 'static,
    Opening: std::future::Future<Output = C> + Send,
{
    let tasks: Vec<_> = (0..16)
        .map(|lane| {
            let open = open.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                for i in (lane..count).step_by(16) {
                    held.push(open(i).await);
                }
                held
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Opens 64 clients with `open(i)` to warm up (the worker's shared buffers, the allocator's first
/// pages), then `HELD` more, and asserts what the `HELD` add to dotgate's resident memory
/// (process `pid`) per connection; returns both sets, still open.
async fn hold_idle<C, F, Opening>(pid: u32, what: &str, open: F) -> (Vec<C>, Vec<C>)
where
    C: Send + 'static,
    F: Fn(usize) -> Opening + Clone + Send + 'static,
    Opening: std::future::Future<Output = C> + Send,
{
    let warm = in_lanes(64, open.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let held = in_lanes(HELD, open).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per_connection = (after.saturating_sub(before)) * 1024 / HELD as u64;
    eprintln!("RSS {before} KiB -> {after} KiB: {per_connection} B per idle {what}");
    assert!(
        per_connection <= MAX_BYTES_PER_CONNECTION,
        "{per_connection} B per idle {what} ({before} KiB -> {after} KiB for {HELD})"
    );
    (warm, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_hold_no_buffers() {
    raise_open_files();
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &IDLE_ARGS);
    let addr = dotgate.addr;
    let (warm, mut held) = hold_idle(dotgate.pid(), "connection", move |i| async move {
        let mut client = DotClient::connect(addr).await.expect("connect");
        client.exchange(&query(&format!("idle{i}.example."), RecordType::A, i as u16)).await;
        client
    })
    .await;
    // And they are still served.
    for (i, client) in held.iter_mut().step_by(100).enumerate() {
        client.exchange(&query("again.example.", RecordType::A, i as u16)).await;
    }
    drop(warm);
}

/// The same for DNS over HTTPS: idle HTTP/2 connections, each after one GET answered, hold no
/// HTTP/2 buffers either (hyper kept about 24 KiB per connection for its life: 51 KB of RSS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_hold_no_buffers() {
    use support::h2raw::H2Client;
    raise_open_files();
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (dotgate, doh, _) = support::start_doh(&[backend.addr], dir.path(), &IDLE_ARGS);
    let (warm, mut held) = hold_idle(dotgate.pid(), "HTTP/2 connection", move |i| async move {
        let mut h2 = H2Client::connect(doh).await.expect("HTTP/2 over TLS");
        let question = query(&format!("idle{i}.example."), RecordType::A, 0);
        let stream = h2.get_dns("/dns-query", &question).await.unwrap();
        assert_eq!(h2.response(stream, Duration::from_secs(5)).await.unwrap().status, 200);
        h2
    })
    .await;
    for h2 in held.iter_mut().step_by(100) {
        let stream = h2.get_dns("/dns-query", &query("again.example.", RecordType::A, 0)).await.unwrap();
        assert_eq!(h2.response(stream, Duration::from_secs(5)).await.unwrap().status, 200);
    }
    drop(warm);
}
