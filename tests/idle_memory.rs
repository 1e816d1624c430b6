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

async fn open_clients(addr: std::net::SocketAddr, count: usize) -> Vec<DotClient> {
    let tasks: Vec<_> = (0..16)
        .map(|lane| {
            tokio::spawn(async move {
                let mut held = Vec::new();
                for i in (lane..count).step_by(16) {
                    let mut client = DotClient::connect(addr).await.expect("connect");
                    client.exchange(&query(&format!("idle{i}.example."), RecordType::A, i as u16)).await;
                    held.push(client);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_hold_no_buffers() {
    raise_open_files();
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(
        &[backend.addr],
        &["--workers", "1", "--idle-timeout", "120", "--max-connections-per-ip", "5000"],
    );
    // Warm up: the worker's shared buffers, the allocator's first pages.
    let warm = open_clients(dotgate.addr, 64).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(dotgate.pid());

    let mut held = open_clients(dotgate.addr, HELD).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(dotgate.pid());
    let per_connection = (after.saturating_sub(before)) * 1024 / HELD as u64;
    eprintln!("RSS {before} KiB -> {after} KiB: {per_connection} B per idle connection");
    assert!(
        per_connection <= MAX_BYTES_PER_CONNECTION,
        "{per_connection} B per idle connection ({before} KiB -> {after} KiB for {HELD})"
    );
    // And they are still served.
    for (i, client) in held.iter_mut().step_by(100).enumerate() {
        client.exchange(&query("again.example.", RecordType::A, i as u16)).await;
    }
    drop(warm);
}
