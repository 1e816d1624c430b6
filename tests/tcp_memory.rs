//! The TCP memory (issue 14), against the running binary and the controllable fake backend: a
//! question whose UDP answer came back truncated goes straight to TCP when asked again, the
//! table stays within its size under a flood of invented names (least recently used out
//! first), entries expire with the cap or the answer's TTL, a TCP failure on the direct path
//! ends as a TC fallback's would, and `--tcp-memory-entries 0` is today's behaviour.
//! `real_backends.rs` has the same against Unbound (case folding, the DO bit).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::http::metric;
use support::ports::free_addr;
use support::{framed, parse, query, txt_records, DotClient, Dotgate, FakeBackend};

const FALLBACKS: &str = "dotgate_upstream_tc_fallbacks_total";
const DIRECT: &str = "dotgate_upstream_tcp_direct_total";
const ENTRIES: &str = "dotgate_upstream_tcp_memory_entries";

/// A fake backend, a one-worker dotgate (one table) in front of it with an admin endpoint and
/// `extra` flags, and a client connected to it.
struct Setup {
    backend: FakeBackend,
    dotgate: Dotgate,
    admin: SocketAddr,
    client: DotClient,
}

async fn start(extra: &[&str]) -> Setup {
    let backend = FakeBackend::start().await;
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let mut args = vec!["--workers", "1", "--admin", &admin_arg];
    args.extend_from_slice(extra);
    let dotgate = Dotgate::start(&[backend.addr], &args);
    let client = DotClient::connect(dotgate.addr).await.unwrap();
    Setup { backend, dotgate, admin, client }
}

/// Both counters now: (TC fallbacks, straight to TCP).
fn counts(admin: SocketAddr) -> (f64, f64) {
    (metric(admin, FALLBACKS), metric(admin, DIRECT))
}

/// Asks `name` TXT and checks the whole TCP answer (not truncated, TXT records) came back.
async fn ask_whole(client: &mut DotClient, name: &str, id: u16) {
    let answer = parse(&client.exchange(&query(name, RecordType::TXT, id)).await);
    assert_eq!(answer.response_code(), ResponseCode::NoError, "{name}");
    assert!(!answer.truncated() && !txt_records(&answer).is_empty(), "{name}: not the whole answer");
}

impl Setup {
    /// Asks `name` (whole answer checked) and returns how the counters moved: (TC fallbacks,
    /// straight to TCP).
    async fn ask(&mut self, name: &str, id: u16) -> (f64, f64) {
        let before = counts(self.admin);
        ask_whole(&mut self.client, name, id).await;
        let after = counts(self.admin);
        (after.0 - before.0, after.1 - before.1)
    }
}

const VIA_UDP: (f64, f64) = (1.0, 0.0);
const DIRECT_TCP: (f64, f64) = (0.0, 1.0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_question_goes_straight_to_tcp_next_time() {
    let mut t = start(&[]).await;
    assert_eq!(t.ask("tc-2000.once.example.", 1).await, VIA_UDP);
    let udp_before = t.backend.udp_queries();
    assert_eq!(t.ask("TC-2000.Once.Example.", 2).await, DIRECT_TCP);
    assert_eq!(t.backend.udp_queries(), udp_before, "no UDP query for a remembered question");
    // An answer that would have fit in UDP (512 bytes without EDNS) takes its question out.
    assert_eq!(t.ask("tc-400.small.example.", 3).await, VIA_UDP);
    assert_eq!(t.ask("tc-400.small.example.", 4).await, VIA_UDP);
}

/// 100,000 invented names, each truncated over UDP, through a table of 1,000: it never holds
/// more, the first names asked are gone (asked again they go through UDP first), and the last
/// are still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_stays_bounded_under_100000_names_and_evicts_the_least_recently_used() {
    const NAMES: usize = 100_000;
    const BATCH: usize = 500;
    let mut t = start(&["--tcp-memory-entries", "1000", "--max-in-flight", "1000"]).await;
    // 520-byte TCP answers: just over what UDP without EDNS carries, so every name stays.
    let name = |i: usize| format!("tc-520.n{i}.example.");
    let started = Instant::now();
    for batch in 0..NAMES / BATCH {
        let mut bytes = Vec::with_capacity(BATCH * 40);
        for i in batch * BATCH..(batch + 1) * BATCH {
            bytes.extend(framed(&query(&name(i), RecordType::TXT, i as u16)));
        }
        t.client.send_raw(&bytes).await.unwrap();
        for _ in 0..BATCH {
            let answer = t.client.recv_timeout(Duration::from_secs(10)).await.unwrap().expect("connection open");
            assert_eq!(answer.len(), 520);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "too slow: batch {batch} after {:?}", started.elapsed());
    }
    eprintln!("{NAMES} truncated names in {:?}", started.elapsed());
    assert_eq!(counts(t.admin), (NAMES as f64, 0.0), "every name new: each went through UDP first");
    // The gauge is refreshed once a second.
    std::thread::sleep(Duration::from_millis(1200));
    let held = metric(t.admin, ENTRIES);
    assert!(held > 0.0 && held <= 1000.0, "{held} entries held in a table of 1000");
    assert_eq!(t.ask(&name(NAMES - 1), 1).await, DIRECT_TCP, "the last name stays");
    assert_eq!(t.ask(&name(0), 2).await, VIA_UDP, "the first name was evicted");
    assert_eq!(t.ask(&name(NAMES / 2), 3).await, VIA_UDP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_the_cap() {
    let mut t = start(&["--tcp-memory-ttl", "1"]).await;
    assert_eq!(t.ask("tc-2000.cap.example.", 1).await, VIA_UDP);
    assert_eq!(t.ask("tc-2000.cap.example.", 2).await, DIRECT_TCP);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(t.ask("tc-2000.cap.example.", 3).await, VIA_UDP, "expired after 1 s");
    assert_eq!(t.ask("tc-2000.cap.example.", 4).await, DIRECT_TCP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_ttl_below_the_cap_expires_sooner() {
    // The default cap, 60 s; the TCP answer's records have a TTL of 1 s.
    let mut t = start(&[]).await;
    assert_eq!(t.ask("tcttl-1.short.example.", 1).await, VIA_UDP);
    assert_eq!(t.ask("tcttl-1.short.example.", 2).await, DIRECT_TCP);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(t.ask("tcttl-1.short.example.", 3).await, VIA_UDP, "its TTL was 1 s");
    // A TTL above the cap keeps the cap: a 300 s answer is still remembered after the same wait.
    assert_eq!(t.ask("tcttl-300.long.example.", 4).await, VIA_UDP);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(t.ask("tcttl-300.long.example.", 5).await, DIRECT_TCP);
}

/// The backend cuts every TCP answer short and closes: a remembered question sent straight to
/// TCP ends as its TC fallback did (one resend on a new connection, then SERVFAIL), in time,
/// and the connection and other queries live on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_failure_on_the_direct_path_ends_as_a_fallback_would() {
    let mut t = start(&["--upstream-timeout", "0.5"]).await;
    for (id, expect) in [(1u16, VIA_UDP), (2, DIRECT_TCP)] {
        let before = counts(t.admin);
        let connections_before = t.backend.tcp_connections();
        let started = Instant::now();
        let answer = parse(&t.client.exchange(&query("tccut-3000.example.", RecordType::TXT, id)).await);
        assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
        assert_eq!(answer.response_code(), ResponseCode::ServFail);
        assert_eq!(answer.id(), id);
        let after = counts(t.admin);
        assert_eq!((after.0 - before.0, after.1 - before.1), expect, "query {id}");
        assert_eq!(t.backend.tcp_connections() - connections_before, 2, "query {id}: one resend on a new connection");
    }
    ask_whole(&mut t.client, "tc-2000.after.example.", 3).await;
    assert!(!t.dotgate.stderr().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_entries_turns_it_off() {
    let mut t = start(&["--tcp-memory-entries", "0"]).await;
    for id in 1..=3 {
        assert_eq!(t.ask("tc-2000.off.example.", id).await, VIA_UDP);
    }
    assert_eq!(t.backend.udp_queries(), 3);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(metric(t.admin, ENTRIES), 0.0);
}
