//! Sick backends, against the running binary: a backend down at start, a real Unbound killed
//! and brought back under load, every kind of bad answer (garbage, wrong IDs, another port, the
//! wrong question, QR=0, twice, too late) from many clients at once, a backend closing TCP in
//! the middle of an answer, and a backend on an unreachable network.
//!
//! What each test holds dotgate to, as a client and an operator would see it: every query gets
//! its right answer or SERVFAIL, never a spoofed or foreign answer and never silence; the
//! connection lives on; dotgate does not panic; and `dotgate_queries_in_flight` goes back to 0.

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::fake_backend::SPOOF_A;
use support::http::{get, sample};
use support::ports::{free_addr, free_port};
use support::unbound::{WWW_A, WWW_AAAA};
use support::{a_records, parse, query, txt_records, DotClient, Dotgate, FakeBackend, Unbound};

const GOOD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// How long a client waits for any one answer before calling it lost: far above the upstream
/// timeout (0.3 s) plus one retry.
const ANSWER_WAIT: Duration = Duration::from_secs(4);

/// A dotgate with an admin endpoint, for its counters.
struct Watched {
    dotgate: Dotgate,
    admin: SocketAddr,
}

impl Watched {
    fn start(backends: &[SocketAddr], args: &[&str]) -> Watched {
        let admin = free_addr();
        let admin_arg = admin.to_string();
        let mut all = vec!["--admin", &admin_arg];
        all.extend_from_slice(args);
        Watched { dotgate: Dotgate::start(backends, &all), admin }
    }

    fn metric(&self, series: &str) -> f64 {
        let (_, page) = get(self.admin, "/metrics");
        sample(&page, series).unwrap_or(0.0)
    }

    /// Waits (5 s) for the in-flight gauge, refreshed once a second, to read 0.
    fn assert_in_flight_returns_to_zero(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let in_flight = self.metric("dotgate_queries_in_flight");
            if in_flight == 0.0 {
                return;
            }
            assert!(Instant::now() < deadline, "{in_flight} queries still in flight");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn assert_no_panic(&self) {
        let stderr = self.dotgate.stderr();
        assert!(!stderr.contains("panicked"), "dotgate panicked:\n{stderr}");
    }
}

async fn answer_within(client: &mut DotClient, wait: Duration) -> Message {
    match client.recv_timeout(wait).await {
        Ok(Some(bytes)) => parse(&bytes),
        other => panic!("no answer within {wait:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_at_start_gets_servfail_then_answers_once_it_comes_up() {
    let port = free_port();
    let backend = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let watched = Watched::start(&[backend], &["--workers", "1", "--upstream-timeout", "0.3"]);
    let mut client = DotClient::connect(watched.dotgate.addr).await.unwrap();

    // Nothing listens: SERVFAIL after the timeout, on a connection that stays usable, until
    // dotgate marks the backend down and says so on /readyz.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut id = 0u16;
    loop {
        id += 1;
        client.send(&query("www.example.test.", RecordType::A, id)).await.unwrap();
        let answer = answer_within(&mut client, ANSWER_WAIT).await;
        assert_eq!((answer.id(), answer.response_code()), (id, ResponseCode::ServFail));
        let (status, body) = get(watched.admin, "/readyz");
        if status == 503 {
            assert!(body.contains("no backend up"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never said the only backend is down");
    }

    // The backend comes up where dotgate expects it: a probe finds it, answers flow.
    let unbound = Unbound::start_on(port).expect("start Unbound on the backend's port");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        id += 1;
        client.send(&query("www.example.test.", RecordType::A, id)).await.unwrap();
        let answer = answer_within(&mut client, ANSWER_WAIT).await;
        assert_eq!(answer.id(), id);
        if answer.response_code() == ResponseCode::NoError {
            assert_eq!(a_records(&answer), vec![WWW_A]);
            break;
        }
        assert_eq!(answer.response_code(), ResponseCode::ServFail);
        assert!(Instant::now() < deadline, "answers never came back after the backend started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(watched.admin, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "/readyz did not turn ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watched.assert_in_flight_returns_to_zero();
    watched.assert_no_panic();
    drop(unbound);
}

/// What Unbound (tests/support/unbound.rs) answers, and what must never come back instead.
#[derive(Clone, Copy)]
enum Asked {
    WwwA,
    WwwAaaa,
    Nxdomain,
}

impl Asked {
    fn of(i: u16) -> Asked {
        match i % 3 {
            0 => Asked::WwwA,
            1 => Asked::WwwAaaa,
            _ => Asked::Nxdomain,
        }
    }

    fn query(self, id: u16) -> Vec<u8> {
        match self {
            Asked::WwwA => query("www.example.test.", RecordType::A, id),
            Asked::WwwAaaa => query("www.example.test.", RecordType::AAAA, id),
            Asked::Nxdomain => query(&format!("nx{id}.example.test."), RecordType::A, id),
        }
    }

    /// True for the right answer, false for SERVFAIL; panics on anything else.
    fn check(self, answer: &Message) -> bool {
        if answer.response_code() == ResponseCode::ServFail {
            return false;
        }
        match self {
            Asked::WwwA => assert_eq!(a_records(answer), vec![WWW_A], "{answer:?}"),
            Asked::WwwAaaa => {
                let aaaa: Vec<Ipv6Addr> = answer
                    .answers()
                    .iter()
                    .filter_map(|r| match r.data() {
                        RData::AAAA(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                assert_eq!(aaaa, vec![WWW_AAAA.parse::<Ipv6Addr>().unwrap()], "{answer:?}");
            }
            Asked::Nxdomain => assert_eq!(answer.response_code(), ResponseCode::NXDomain, "{answer:?}"),
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_dying_and_coming_back_under_load_costs_servfails_and_nothing_else() {
    let mut unbound = Unbound::start();
    let port = unbound.addr.port();
    let watched = Watched::start(&[unbound.addr], &["--workers", "2", "--upstream-timeout", "0.3"]);

    // Eight clients, each with ten queries in flight at a time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8u16 {
        let (addr, stop) = (watched.dotgate.addr, stop.clone());
        clients.push(tokio::spawn(async move {
            let mut client = DotClient::connect(addr).await.unwrap();
            let mut outcomes: Vec<(Instant, bool)> = Vec::new();
            let mut next = c * 5000;
            while !stop.load(Ordering::Relaxed) {
                let mut asked = HashMap::new();
                for _ in 0..10 {
                    next = next.wrapping_add(1);
                    client.send(&Asked::of(next).query(next)).await.unwrap();
                    asked.insert(next, Asked::of(next));
                }
                while !asked.is_empty() {
                    let answer = answer_within(&mut client, ANSWER_WAIT).await;
                    let kind = asked.remove(&answer.id()).unwrap_or_else(|| panic!("answer to no query: {answer:?}"));
                    outcomes.push((Instant::now(), kind.check(&answer)));
                }
            }
            outcomes
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    unbound.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = tokio::task::spawn_blocking(move || Unbound::start_on(port).expect("restart Unbound on its port"))
        .await
        .unwrap();
    let back_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("a client saw a wrong or missing answer"));
    }
    let before = outcomes.iter().filter(|(at, _)| *at < killed_at);
    let (right_before, all_before) = before.fold((0, 0), |(r, n), (_, ok)| (r + *ok as usize, n + 1));
    let servfail_during = outcomes.iter().filter(|(at, ok)| *at > killed_at && *at < back_at && !ok).count();
    let right_after = outcomes.iter().filter(|(at, ok)| *at > back_at && *ok).count();
    eprintln!("before the kill {all_before} answers, SERVFAIL while dead {servfail_during}, right after {right_after}");
    assert!(all_before > 100 && right_before == all_before, "before the kill: {right_before} of {all_before} right");
    assert!(servfail_during > 0, "no SERVFAIL while the backend was dead");
    assert!(right_after > 100, "only {right_after} right answers after the backend came back");

    // Fresh queries are answered again, promptly.
    let mut client = DotClient::connect(watched.dotgate.addr).await.unwrap();
    for id in 1..=20u16 {
        client.send(&Asked::of(id).query(id)).await.unwrap();
        assert!(Asked::of(id).check(&answer_within(&mut client, ANSWER_WAIT).await), "SERVFAIL after recovery");
    }
    watched.assert_in_flight_returns_to_zero();
    watched.assert_no_panic();
    drop(back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_from_a_backend_under_load_never_reach_a_client() {
    let backend = FakeBackend::start().await;
    let watched = Watched::start(&[backend.addr], &["--workers", "2", "--upstream-timeout", "0.3"]);
    // Each mode first sends a bad answer (A 6.6.6.6, or garbage), or answers twice, or too late
    // (delay-600: after the timeout, when the query has been answered SERVFAIL), or never.
    let modes = ["wrongid", "otherq", "garbage", "otherport", "notqr", "twice", "delay-600", "drop", "ok"];
    let mut clients = Vec::new();
    for c in 0..16u16 {
        let addr = watched.dotgate.addr;
        clients.push(tokio::spawn(async move {
            let mut client = DotClient::connect(addr).await.unwrap();
            let mut servfails = 0;
            for round in 0..4u16 {
                let mut asked = HashMap::new();
                for (m, mode) in modes.iter().enumerate() {
                    let id = c * 1000 + round * 100 + m as u16;
                    client.send(&query(&format!("{mode}.c{c}.r{round}.example."), RecordType::A, id)).await.unwrap();
                    asked.insert(id, *mode);
                }
                while !asked.is_empty() {
                    let answer = answer_within(&mut client, ANSWER_WAIT).await;
                    let mode = asked.remove(&answer.id()).unwrap_or_else(|| panic!("answer to no query: {answer:?}"));
                    let name = answer.queries()[0].name().to_ascii();
                    assert!(name.starts_with(&format!("{mode}.c{c}.r{round}.")), "{mode} got the answer for {name}");
                    assert!(!a_records(&answer).contains(&SPOOF_A), "a spoofed answer was delivered: {answer:?}");
                    if matches!(mode, "drop" | "delay-600") {
                        assert_eq!(answer.response_code(), ResponseCode::ServFail, "{mode}");
                        servfails += 1;
                    } else {
                        assert_eq!(a_records(&answer), vec![GOOD], "{mode}");
                    }
                }
            }
            // Late answers and second copies arriving now are dropped, not delivered.
            assert!(client.recv_timeout(Duration::from_millis(800)).await.is_err(), "a stray answer arrived");
            servfails
        }));
    }
    for client in clients {
        assert_eq!(client.await.expect("a client got a wrong answer"), 8);
    }
    for reason in ["unknown_id", "duplicate", "wrong_source", "question_mismatch", "garbage"] {
        let dropped = watched.metric(&format!("dotgate_upstream_answers_dropped_total{{reason=\"{reason}\"}}"));
        assert!(dropped > 0.0, "no upstream answer dropped as {reason}");
    }
    watched.assert_in_flight_returns_to_zero();
    watched.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_closing_tcp_mid_answer_costs_that_query_a_servfail_only() {
    let backend = FakeBackend::start().await;
    let watched = Watched::start(&[backend.addr], &["--workers", "1", "--upstream-timeout", "0.5"]);
    let mut client = DotClient::connect(watched.dotgate.addr).await.unwrap();
    // UDP says TC=1; over TCP the backend sends half of the answer and closes, twice (dotgate
    // resends a stranded query once on a new connection).
    client.send(&query("tccut-3000.example.", RecordType::TXT, 1)).await.unwrap();
    client.send(&query("ok.example.", RecordType::A, 2)).await.unwrap();
    let mut answers: HashMap<u16, Message> = HashMap::new();
    for _ in 0..2 {
        let answer = answer_within(&mut client, ANSWER_WAIT).await;
        answers.insert(answer.id(), answer);
    }
    assert_eq!(answers[&1].response_code(), ResponseCode::ServFail);
    assert!(txt_records(&answers[&1]).is_empty());
    assert_eq!(a_records(&answers[&2]), vec![GOOD]);
    assert!(backend.tcp_connections() >= 2, "the stranded query was not tried on a new connection");
    // The next truncated answer is fetched whole over a new TCP connection.
    let answer = parse(&client.exchange(&query("tc-3000.example.", RecordType::TXT, 3)).await);
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert!(!txt_records(&answer).is_empty());
    assert!(watched.metric("dotgate_upstream_tcp_failures_total") >= 1.0);
    watched.assert_in_flight_returns_to_zero();
    watched.assert_no_panic();
}

/// Runs `body` on a thread of its own inside a new network namespace with only loopback up:
/// sockets it opens and processes it starts live there, and nothing it sends can leave the
/// machine. Needs root (CAP_SYS_ADMIN), as the TCP Fast Open tests do.
fn in_own_network_namespace<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare takes flags only; CLONE_NEWNET moves just this thread (a network
        // namespace is per thread, and allowed in a multithreaded process).
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET) needs root: {}", std::io::Error::last_os_error());
        let up = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
        assert!(up.success(), "ip link set lo up");
        body()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn a_backend_on_an_unreachable_network_gets_servfail_without_harm() {
    in_own_network_namespace(|| {
        // No route to 10.0.0.0/8 in this namespace: every send fails with ENETUNREACH, and the
        // query is answered SERVFAIL at once (there is no other backend to retry on).
        let unreachable = SocketAddr::from((Ipv4Addr::new(10, 255, 255, 1), 53));
        // A long upstream timeout: a send the kernel refuses must not wait for it.
        let watched = Watched::start(&[unreachable], &["--workers", "1", "--upstream-timeout", "5"]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut client = DotClient::connect(watched.dotgate.addr).await.unwrap();
            for id in 1..=3u16 {
                let sent = Instant::now();
                client.send(&query("www.example.test.", RecordType::A, id)).await.unwrap();
                let answer = answer_within(&mut client, ANSWER_WAIT).await;
                assert_eq!((answer.id(), answer.response_code()), (id, ResponseCode::ServFail));
                let waited = sent.elapsed();
                assert!(
                    waited < Duration::from_secs(1),
                    "SERVFAIL took {waited:?}: the refused send waited for the timeout"
                );
            }
        });
        assert!(watched.metric("dotgate_upstream_send_errors_total") >= 3.0, "the failed sends are counted");
        watched.assert_in_flight_returns_to_zero();
        // Nothing retries in a loop: idle, dotgate uses next to no CPU.
        let pid = watched.dotgate.pid();
        let used = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(2));
        let idle = cpu_seconds(pid) - used;
        assert!(idle < 0.2, "dotgate used {idle} s of CPU in 2 idle seconds");
        watched.assert_no_panic();
    });
}
