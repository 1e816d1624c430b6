//! Connection limits: `--max-connections` (all workers together) and `--max-connections-per-ip`
//! close a connection over the limit at accept, before any TLS; a freed place is usable again;
//! past 80% of the limit the idle timeout shrinks (stated in edns-tcp-keepalive) and a log line
//! says so.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use support::fake_backend::find_opt;
use support::http::{get, sample};
use support::ports::free_addr;
use support::{query, query_edns, DotClient, Dotgate, FakeBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// True when the server closes a fresh TCP connection from `source` without waiting for the
/// rest of its ClientHello: refused at accept. An admitted connection is left waiting for the
/// handshake. (The first byte of a TLS record goes out first: the listener is handed a
/// connection only once it has sent something, TCP_DEFER_ACCEPT.)
async fn refused_at_accept(addr: SocketAddr, source: Ipv4Addr) -> bool {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut tcp: TcpStream = socket.connect(addr).await.unwrap();
    tcp.write_all(&[0x16]).await.unwrap();
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut byte)).await, Ok(Ok(0)) | Ok(Err(_)))
}

/// Waits until the server has let go of connections that clients closed.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_closes_extra_connections_before_tls_across_workers() {
    let backend = FakeBackend::start().await;
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "2", "--max-connections", "3", "--admin", &admin_arg]);
    settle().await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut client = DotClient::connect(dotgate.addr).await.unwrap();
        client.exchange(&query("held.example.", RecordType::A, i)).await;
        held.push(client);
    }
    assert!(refused_at_accept(dotgate.addr, Ipv4Addr::LOCALHOST).await, "a 4th connection must be closed at once");
    assert!(DotClient::connect(dotgate.addr).await.is_err(), "no TLS for a connection over the limit");
    let rejected = sample(&get(admin, "/metrics").1, r#"dotgate_connections_rejected_total{reason="limit"}"#);
    assert_eq!(rejected, Some(2.0), "both refusals are counted");
    // The held connections are unharmed.
    for (i, client) in held.iter_mut().enumerate() {
        client.exchange(&query("still.example.", RecordType::A, 10 + i as u16)).await;
    }
    // A freed place is usable again.
    drop(held.pop());
    settle().await;
    let mut again = DotClient::connect(dotgate.addr).await.expect("a place was freed");
    again.exchange(&query("again.example.", RecordType::A, 20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_limit_counts_each_address_apart() {
    let backend = FakeBackend::start().await;
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let dotgate =
        Dotgate::start(&[backend.addr], &["--workers", "2", "--max-connections-per-ip", "2", "--admin", &admin_arg]);
    settle().await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(DotClient::connect(dotgate.addr).await.unwrap());
    }
    assert!(refused_at_accept(dotgate.addr, Ipv4Addr::LOCALHOST).await, "a 3rd from 127.0.0.1 is over");
    assert!(
        !refused_at_accept(dotgate.addr, Ipv4Addr::new(127, 0, 0, 2)).await,
        "another address has its own allowance"
    );
    let rejected = sample(&get(admin, "/metrics").1, r#"dotgate_connections_rejected_total{reason="per_ip"}"#);
    assert_eq!(rejected, Some(1.0), "the refusal is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_limit_the_idle_timeout_shrinks_and_keepalive_says_so() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(
        &[backend.addr],
        &["--workers", "1", "--max-connections", "10", "--idle-timeout", "10", "--max-connections-per-ip", "100"],
    );
    settle().await;
    let keepalive_of = |answer: &[u8]| -> u16 {
        let options = find_opt(answer).expect("OPT").options();
        let (_, value) = options.iter().find(|(code, _)| *code == 11).expect("keepalive in the answer");
        u16::from_be_bytes([value[0], value[1]])
    };
    let ask = |id| query_edns("ka.example.", RecordType::A, id, true, false, vec![(11, vec![])]);
    let mut first = DotClient::connect(dotgate.addr).await.unwrap();
    assert_eq!(keepalive_of(&first.exchange(&ask(1)).await), 100, "10 s while far from the limit");

    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(DotClient::connect(dotgate.addr).await.unwrap());
    }
    // 9 of 10 open: past 80%, the idle timeout is between 1 s and 10 s.
    let shrunk = keepalive_of(&first.exchange(&ask(2)).await);
    assert!((10..100).contains(&shrunk), "keepalive {shrunk} (100 ms units)");
    assert!(dotgate.wait_for_stderr("over 80% of --max-connections", Duration::from_secs(2)));

    drop(others);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(keepalive_of(&first.exchange(&ask(3)).await), 100, "restored once connections left");
    assert!(dotgate.wait_for_stderr("back under 80%", Duration::from_secs(2)));
}

/// The open-file limits of process `pid` (soft, hard), from /proc/PID/limits.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("no open-file line");
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

/// Started under a soft open-file limit of 256 (a shell's default is often 1,024), dotgate
/// raises its own soft limit to the hard limit, so that the connection limit and not the
/// descriptor table decides how many clients it holds.
#[test]
fn dotgate_raises_its_open_file_soft_limit_to_the_hard_limit() {
    let (_, hard) = open_file_limits(std::process::id());
    assert!(hard > 256, "this test needs a hard open-file limit above 256, not {hard}");
    let addr = free_addr();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", r#"ulimit -S -n 256 && exec "$0" "$@""#, support::dotgate::DOTGATE_BIN]);
    cmd.args(["--listen", &addr.to_string(), "--backend", "127.0.0.1:9"]);
    let dotgate = support::process::TestProcess::spawn("dotgate", cmd);
    assert!(dotgate.wait_for_stderr("dotgate started", Duration::from_secs(10)), "{}", dotgate.stderr());
    assert_eq!(open_file_limits(dotgate.pid()), (hard, hard), "dotgate kept the soft limit it was started with");
}
