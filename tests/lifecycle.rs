//! A connection's life and the process's: idle timeout, EOF with answers still coming, drain on
//! SIGTERM/SIGINT with exit 0, worker threads, the config file under the flags, and what the
//! logs say (and do not say: query names).

mod support;

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::{a_records, parse, query, DotClient, Dotgate, FakeBackend};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--idle-timeout", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("idle.example.", RecordType::A, 1)).await;
    let started = Instant::now();
    assert!(matches!(client.recv_timeout(Duration::from_secs(4)).await, Ok(None)), "not closed cleanly");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_waits_for_queries_in_flight() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--idle-timeout", "0.5", "--upstream-timeout", "3"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.send(&query("delay-1500.example.", RecordType::A, 3)).await.unwrap();
    let answer =
        client.recv_timeout(WAIT).await.expect("answer").expect("the connection closed while a query was in flight");
    assert_eq!(parse(&answer).id(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_eof_still_gets_every_pending_answer() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &[]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for id in 0..5u16 {
        client.send(&query(&format!("delay-300.e{id}.example."), RecordType::A, id)).await.unwrap();
    }
    client.close_notify().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let answer = client.recv_timeout(WAIT).await.expect("answer").expect("closed before flushing");
        ids.push(parse(&answer).id());
    }
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert!(matches!(client.recv_timeout(WAIT).await, Ok(None)), "then a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_drains_in_flight_queries_and_exits_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let backend = FakeBackend::start().await;
        let mut dotgate = Dotgate::start(&[backend.addr], &["--workers", "2"]);
        let mut client = DotClient::connect(dotgate.addr).await.unwrap();
        client.exchange(&query("warm.example.", RecordType::A, 1)).await;
        client.send(&query("delay-700.example.", RecordType::A, 2)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        dotgate.signal(signal);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            DotClient::connect(dotgate.addr).await.is_err(),
            "new connections must be refused once draining (signal {signal})"
        );
        let answer = client.recv_timeout(WAIT).await.expect("answer").expect("closed before the in-flight answer");
        assert_eq!(parse(&answer).id(), 2);
        assert_eq!(a_records(&parse(&answer)).len(), 1);
        assert!(matches!(client.recv_timeout(WAIT).await, Ok(None)), "then close_notify");
        let status = dotgate.wait_exit(WAIT).expect("dotgate exits after draining");
        assert_eq!(status.code(), Some(0), "stderr: {}", dotgate.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_separate_threads() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "3"]);
    let worker_threads = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", dotgate.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| n.starts_with("dotgate-worker"))
            .collect()
    };
    // The listening sockets exist before the threads that serve them: give them a moment.
    let mut names = worker_threads();
    for _ in 0..50 {
        if names.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        names = worker_threads();
    }
    assert_eq!(names.len(), 3, "worker threads: {names:?}");
    // Every worker serves: many connections spread over them by SO_REUSEPORT all get answers.
    for i in 0..12u16 {
        let mut client = DotClient::connect(dotgate.addr).await.unwrap();
        client.exchange(&query("w.example.", RecordType::A, i)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_the_config_file() {
    let in_file = FakeBackend::start().await;
    let on_flag = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dotgate.toml");
    std::fs::write(&file, format!("backend = [\"{}\"]\nworkers = 1\nidle-timeout = 30\n", in_file.addr)).unwrap();
    let dotgate = Dotgate::start(&[on_flag.addr], &["--config", file.to_str().unwrap()]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("cfg.example.", RecordType::A, 1)).await;
    assert_eq!((in_file.udp_queries(), on_flag.udp_queries()), (0, 1), "--backend must replace the file's");

    // And the file alone is enough.
    let dotgate = Dotgate::start(&[], &["--config", file.to_str().unwrap()]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("cfg.example.", RecordType::A, 1)).await;
    assert_eq!(in_file.udp_queries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_line_names_listen_backends_workers_and_pin() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "2"]);
    let pin = dotgate.pin();
    let stderr = dotgate.stderr();
    let start = stderr.lines().find(|l| l.contains("dotgate started")).expect("a start line");
    for needle in [dotgate.addr.to_string(), backend.addr.to_string(), "workers=2".into(), pin] {
        assert!(start.contains(&needle), "start line lacks {needle}: {start}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_names_are_not_logged_unless_asked_for() {
    for (flags, logged) in [(&[][..], false), (&["--log-queries"][..], true)] {
        let backend = FakeBackend::start().await;
        let mut dotgate = Dotgate::start(&[backend.addr], flags);
        let mut client = DotClient::connect(dotgate.addr).await.unwrap();
        client.exchange(&query("secret-name-4711.example.", RecordType::A, 1)).await;
        client.exchange(&query("drop.secret-name-4711.example.", RecordType::A, 2)).await;
        dotgate.signal(libc::SIGTERM);
        dotgate.wait_exit(WAIT).expect("exit");
        let stderr = dotgate.stderr();
        assert_eq!(stderr.contains("secret-name-4711"), logged, "flags {flags:?}: {stderr}");
        assert!(stderr.contains("worker stopped"), "counters are logged at exit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_do_not_flood_the_log() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &[]);
    let lines_before = dotgate.stderr().lines().count();
    for _ in 0..200 {
        let mut tcp = tokio::net::TcpStream::connect(dotgate.addr).await.unwrap();
        support::client::write_frame(&mut tcp, &query("plain.example.", RecordType::A, 1)).await.unwrap();
        drop(tcp);
    }
    // The server still works, and said little about 200 failed handshakes.
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("still.example.", RecordType::A, 1)).await;
    let new_lines = dotgate.stderr().lines().count() - lines_before;
    assert!(new_lines <= 5, "{new_lines} log lines for 200 bad clients: {}", dotgate.stderr());
}
