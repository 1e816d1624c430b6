//! The relay, seen from a DoT client: IDs rewritten, spoofed or stray backend answers dropped
//! without harm, flags and EDNS untouched, answers out of order and pipelined, backpressure,
//! coalesced writes, TC fallback over TCP, timeouts, retries and backend health.
//! The backend here is the controllable fake (it misbehaves on demand); `real_backends.rs`
//! runs the same path against Unbound and BIND.

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::{a_records, framed, parse, query, query_edns, DotClient, Dotgate, FakeBackend};

const GOOD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WAIT: Duration = Duration::from_secs(5);

async fn recv(client: &mut DotClient) -> Vec<u8> {
    client.recv_timeout(WAIT).await.expect("an answer in time").expect("connection open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_arrive_out_of_order() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.send(&query("delay-800.example.", RecordType::A, 1)).await.unwrap();
    client.send(&query("fast.example.", RecordType::A, 2)).await.unwrap();
    let first = parse(&recv(&mut client).await);
    let second = parse(&recv(&mut client).await);
    assert_eq!(first.id(), 2, "the fast answer must not wait behind the slow one");
    assert_eq!(second.id(), 1);
    assert_eq!(a_records(&first), vec![GOOD]);
    assert_eq!(a_records(&second), vec![GOOD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_ids_are_fresh_and_random_and_clients_get_theirs_back() {
    let backend = FakeBackend::start().await;
    // IDs are unique per upstream socket; with one socket, all 40 share one ID space.
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--upstream-sockets", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // Every query carries the same client ID; upstream they must not. The fake holds each for
    // 300 ms, so all 40 are in flight together.
    for i in 0..40 {
        client.send(&query(&format!("delay-300.n{i}.example."), RecordType::A, 0x4242)).await.unwrap();
    }
    let mut names = HashSet::new();
    for _ in 0..40 {
        let answer = parse(&recv(&mut client).await);
        assert_eq!(answer.id(), 0x4242);
        names.insert(answer.queries()[0].name().to_ascii());
    }
    assert_eq!(names.len(), 40, "each query answered once, with its own question");
    let upstream_ids: Vec<u16> = backend.received().iter().map(|q| u16::from_be_bytes([q[0], q[1]])).collect();
    assert_eq!(upstream_ids.len(), 40);
    let distinct: HashSet<_> = upstream_ids.iter().collect();
    assert_eq!(distinct.len(), 40, "upstream IDs in flight together must be unique");
    assert!(
        upstream_ids.iter().filter(|&&id| id == 0x4242).count() <= 1,
        "the client's ID must not be reused upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_and_stray_backend_answers_are_dropped_without_harm() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // Each of these first gets a bad answer (A 6.6.6.6, or garbage), then the real one.
    let modes = ["wrongid", "otherq", "garbage", "otherport", "notqr"];
    for (i, mode) in modes.iter().enumerate() {
        client.send(&query(&format!("{mode}.example."), RecordType::A, i as u16)).await.unwrap();
    }
    let mut seen = HashSet::new();
    for _ in &modes {
        let answer = parse(&recv(&mut client).await);
        let addrs = a_records(&answer);
        assert!(
            !addrs.contains(&support::fake_backend::SPOOF_A),
            "a spoofed answer was delivered for id {}",
            answer.id()
        );
        assert_eq!(addrs, vec![GOOD], "id {}", answer.id());
        assert!(seen.insert(answer.id()));
    }
    // Nothing else arrives, and the connection still works.
    assert!(client.recv_timeout(Duration::from_millis(300)).await.is_err(), "an extra answer arrived");
    let answer = parse(&client.exchange(&query("after.example.", RecordType::A, 99)).await);
    assert_eq!(a_records(&answer), vec![GOOD]);
    assert!(!dotgate.stderr().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_backend_answer_is_delivered_once() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let answer = parse(&client.exchange(&query("twice.example.", RecordType::A, 7)).await);
    assert_eq!(answer.id(), 7);
    assert!(client.recv_timeout(Duration::from_millis(400)).await.is_err(), "the duplicate was delivered");
    let answer = parse(&client.exchange(&query("ok.example.", RecordType::A, 8)).await);
    assert_eq!(answer.id(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_edns_options_pass_through_unchanged() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let cookie = (10u16, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let private = (65001u16, b"dotgate-test".to_vec());
    let mut q = query_edns("edns.example.", RecordType::A, 0x1111, true, true, vec![cookie.clone(), private.clone()]);
    q[3] |= 0x20; // AD
    let answer = client.exchange(&q).await;
    let received = backend.received();
    assert_eq!(received.len(), 1);
    assert_eq!(&received[0][2..], &q[2..], "the backend must see the client's query byte for byte but the ID");
    let parsed = parse(&answer);
    assert_eq!(parsed.id(), 0x1111);
    assert!(parsed.checking_disabled());
    let edns = parsed.extensions().as_ref().expect("OPT in the answer");
    assert!(edns.flags().dnssec_ok, "DO must come back");
    let opt = support::fake_backend::find_opt(&answer).expect("OPT");
    assert_eq!(opt.options(), vec![cookie, private], "EDNS options must pass intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_beyond_the_in_flight_cap_are_all_answered() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // 300 queries in one burst, three times the default cap of 100.
    let mut burst = Vec::new();
    for i in 0..300u16 {
        burst.extend_from_slice(&framed(&query(&format!("p{i}.example."), RecordType::A, i)));
    }
    client.send_raw(&burst).await.unwrap();
    let mut ids = HashSet::new();
    for _ in 0..300 {
        let answer = parse(&recv(&mut client).await);
        assert_eq!(answer.queries()[0].name().to_ascii(), format!("p{}.example.", answer.id()));
        assert!(ids.insert(answer.id()), "id {} answered twice", answer.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_pauses_at_the_in_flight_cap_instead_of_dropping() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--max-in-flight", "5"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for i in 0..20u16 {
        client.send(&query(&format!("delay-200.n{i}.example."), RecordType::A, i)).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..20 {
        recv(&mut client).await;
    }
    assert!(backend.max_concurrent() <= 5, "{} queries were at the backend at once", backend.max_concurrent());
    assert_eq!(backend.udp_queries(), 20, "nothing dropped");
    assert!(started.elapsed() >= Duration::from_millis(700), "20 queries of 200 ms, 5 at a time, take 4 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_ready_together_leave_in_few_tls_records() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // Settle the handshake's own records (session tickets) first.
    client.exchange(&query("warmup.example.", RecordType::A, 1000)).await;
    let before = client.app_data_records_received();
    let mut burst = Vec::new();
    for i in 0..64u16 {
        // The fake answers all of these at the same moment, 300 ms from now.
        let q = query(&format!("delay-300.c{i}.example."), RecordType::A, i);
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    client.send_raw(&burst).await.unwrap();
    for _ in 0..64 {
        recv(&mut client).await;
    }
    let records = client.app_data_records_received() - before;
    assert!(records <= 16, "64 answers ready together took {records} TLS records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_udp_answer_is_fetched_again_over_reused_tcp() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for (i, size) in [3000usize, 4000, 5000].iter().enumerate() {
        let answer = client.exchange(&query(&format!("tc-{size}.example."), RecordType::TXT, i as u16)).await;
        assert_eq!(answer.len(), *size, "the client gets the full TCP answer");
        let parsed = parse(&answer);
        assert!(!parsed.truncated());
        assert_eq!(parsed.id(), i as u16);
    }
    assert_eq!(backend.tcp_queries(), 3);
    assert_eq!(backend.tcp_connections(), 1, "one TCP connection to the backend, reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_up_to_65535_bytes_pass_whole() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let over_tcp = client.exchange(&query("tc-65535.example.", RecordType::TXT, 1)).await;
    assert_eq!(over_tcp.len(), 65_535);
    assert_eq!(parse(&over_tcp).id(), 1);
    let over_udp = client.exchange(&query("big-60000.example.", RecordType::TXT, 2)).await;
    assert_eq!(over_udp.len(), 60_000);
    assert_eq!(parse(&over_udp).id(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_query_is_retried_once_on_another_backend() {
    let silent = FakeBackend::start().await;
    silent.set_down(true);
    let healthy = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[silent.addr, healthy.addr], &["--workers", "1", "--upstream-timeout", "0.3"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for i in 0..4u16 {
        client.send(&query(&format!("r{i}.example."), RecordType::A, i)).await.unwrap();
    }
    for _ in 0..4 {
        let answer = parse(&recv(&mut client).await);
        assert_eq!(answer.response_code(), ResponseCode::NoError);
        assert_eq!(a_records(&answer), vec![GOOD]);
    }
    assert!(silent.udp_queries() >= 1, "some queries went to the silent backend first");
    assert_eq!(healthy.udp_queries(), 4, "each query reached the healthy backend exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_query_gets_servfail_and_the_connection_lives_on() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--upstream-timeout", "0.3"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let started = Instant::now();
    let answer = parse(&client.exchange(&query("drop.example.", RecordType::AAAA, 5)).await);
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert_eq!(answer.id(), 5);
    assert_eq!(answer.queries()[0].name().to_ascii(), "drop.example.");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let answer = parse(&client.exchange(&query("ok.example.", RecordType::A, 6)).await);
    assert_eq!(a_records(&answer), vec![GOOD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_that_keeps_timing_out_is_marked_down_probed_and_brought_back() {
    let flaky = FakeBackend::start().await;
    flaky.set_down(true);
    let healthy = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[flaky.addr, healthy.addr], &["--workers", "1", "--upstream-timeout", "0.2"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // Sequential queries: each one that lands on the flaky backend costs a timeout, until it is
    // marked down; then every query goes straight to the healthy one.
    for i in 0..12u16 {
        client.exchange(&query(&format!("a{i}.example."), RecordType::A, i)).await;
    }
    assert!(dotgate.wait_for_stderr("marked down", WAIT), "stderr: {}", dotgate.stderr());
    let before = flaky.udp_queries();
    let started = Instant::now();
    for i in 0..10u16 {
        client.exchange(&query(&format!("b{i}.example."), RecordType::A, i)).await;
    }
    assert!(started.elapsed() < Duration::from_millis(1000), "queries still waited on the down backend");
    // Only probes (at most one a second) reach it while it is down.
    assert!(flaky.udp_queries() - before <= 2, "{} queries went to a down backend", flaky.udp_queries() - before);

    flaky.set_down(false);
    let q0 = flaky.udp_queries();
    let ok = dotgate.wait_for_stderr("marked up", WAIT);
    assert!(ok, "a probe should bring it back ({} probes seen): {}", flaky.udp_queries() - q0, dotgate.stderr());
    let before = flaky.udp_queries();
    for i in 0..10u16 {
        client.exchange(&query(&format!("c{i}.example."), RecordType::A, i)).await;
    }
    assert!(flaky.udp_queries() > before, "the recovered backend gets queries again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_down_mark_never_turns_a_working_backend_into_servfail() {
    // The only backend drops one kind of query (so it gets marked down) but answers the rest.
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--upstream-timeout", "0.2"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("ok.example.", RecordType::A, 1)).await;
    for i in 0..3u16 {
        let answer = parse(&client.exchange(&query(&format!("drop.d{i}.example."), RecordType::A, i)).await);
        assert_eq!(answer.response_code(), ResponseCode::ServFail);
    }
    assert!(dotgate.wait_for_stderr("marked down", WAIT));
    // Every backend is down now; queries still go to the one that answered last.
    let answer = parse(&client.exchange(&query("ok2.example.", RecordType::A, 9)).await);
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&answer), vec![GOOD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_servfail_is_relayed_as_is() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let started = Instant::now();
    let answer = parse(&client.exchange(&query("servfail.example.", RecordType::A, 3)).await);
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_millis(1000), "relayed at once, not after a timeout");
    assert_eq!(backend.udp_queries(), 1, "a backend's SERVFAIL is an answer, not a reason to retry");
}

/// The local ports of the UDP sockets process `pid` holds (from /proc).
fn udp_ports_of(pid: u32) -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().to_string();
            t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).map(str::to_owned)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Upstream sockets are bound to the wildcard address; a listener (DNSENC over UDP,
            // when the suite runs with it on) to a concrete one.
            let wildcard =
                cols.get(1).is_some_and(|local| local.split(':').next().is_some_and(|a| a.bytes().all(|b| b == b'0')));
            if cols.len() > 9 && inodes.contains(cols[9]) && wildcard {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_has_several_upstream_sockets_on_random_ports() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "2", "--upstream-sockets", "3"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("ports.example.", RecordType::A, 1)).await;
    let ports = udp_ports_of(dotgate.pid());
    assert_eq!(ports.len(), 6, "2 workers × 3 upstream sockets, got ports {ports:?}");
    let distinct: HashSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 6, "each socket has its own port: {ports:?}");
    assert!(ports.iter().all(|&p| p >= 1024), "OS-chosen ephemeral ports: {ports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_table_empties_when_traffic_stops() {
    let backend = FakeBackend::start().await;
    let mut dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--upstream-timeout", "0.3"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let names = ["ok", "drop", "tc-2000", "wrongid", "twice", "garbage", "delay-100", "servfail"];
    for (i, name) in names.iter().enumerate() {
        client.send(&query(&format!("{name}.e.example."), RecordType::A, i as u16)).await.unwrap();
    }
    for _ in names {
        recv(&mut client).await;
    }
    // A client that vanishes with queries in flight leaves nothing behind either.
    let mut vanishing = DotClient::connect(dotgate.addr).await.unwrap();
    for i in 0..10u16 {
        vanishing.send(&query(&format!("delay-200.v{i}.example."), RecordType::A, i)).await.unwrap();
    }
    drop(vanishing);
    tokio::time::sleep(Duration::from_millis(800)).await;
    dotgate.signal(libc::SIGTERM);
    dotgate.wait_exit(WAIT).expect("exit");
    let stderr = dotgate.stderr();
    let stop = stderr.lines().find(|l| l.contains("worker stopped")).expect("stop line");
    assert!(stop.contains("in_flight=0"), "{stop}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_query_is_read_whole_and_forwarded_intact() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let q = query_edns("large.example.", RecordType::A, 0x7777, false, false, vec![(65001, vec![0x55; 20_000])]);
    // In pieces, as a client with small TLS records would send it.
    for piece in framed(&q).chunks(3000) {
        client.send_raw(piece).await.unwrap();
    }
    let answer = parse(&recv(&mut client).await);
    assert_eq!(answer.id(), 0x7777);
    assert_eq!(&backend.received()[0][2..], &q[2..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_too_large_for_udp_fails_alone() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--upstream-timeout", "0.5"]);
    let mut hostile = DotClient::connect(dotgate.addr).await.unwrap();
    let mut neighbour = DotClient::connect(dotgate.addr).await.unwrap();
    // A valid DoT frame, but larger than one UDP datagram can carry.
    let huge = query_edns("huge.example.", RecordType::A, 1, false, false, vec![(65001, vec![0; 65_490])]);
    assert!(huge.len() > 65_507 && huge.len() <= 65_535, "{}", huge.len());
    hostile.send(&huge).await.unwrap();
    for i in 0..20u16 {
        neighbour.send(&query(&format!("n{i}.example."), RecordType::A, i)).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..20 {
        let answer = parse(&recv(&mut neighbour).await);
        assert_eq!(a_records(&answer), vec![GOOD]);
    }
    assert!(started.elapsed() < Duration::from_millis(400), "the neighbour waited on the hostile query");
    let answer = parse(&recv(&mut hostile).await);
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
}
