//! A rolling restart: two dotgate processes share one port (SO_REUSEPORT), clients keep a load
//! going through them, and each process in turn is stopped with SIGTERM and replaced. No query
//! may be lost.
//!
//! The clients behave as DoT clients do when a server closes (RFC 7766 §6.2.4, RFC 7858 §3.4):
//! queries left unanswered on a closed connection are sent again on a new one. "Lost" means a
//! query that never got its answer, or a connection that went silent with queries on it; a
//! draining dotgate must answer every query it read, then close_notify, never leave one hanging.

mod support;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::http::{get, sample, try_get};
use support::ports::{free_addr, free_port};
use support::{a_records, parse, query, DotClient, Dotgate, FakeBackend};

const CLIENTS: usize = 16;
/// Queries each client keeps outstanding.
const WINDOW: usize = 4;

#[derive(Default, Debug)]
struct Report {
    answered: usize,
    /// Queries sent again after their connection closed without answering them.
    resent: usize,
    connections: usize,
    /// Answers that did not match their query (wrong name, wrong data, error RCODE).
    wrong: Vec<String>,
    /// Connections that went silent for 5 s with queries outstanding.
    stalls: usize,
    /// Queries still unanswered when the client gave up.
    lost: usize,
}

async fn client(addr: SocketAddr, number: usize, stop: Arc<AtomicBool>) -> Report {
    let mut report = Report::default();
    let mut next_query = 0u32;
    let mut next_id = 0u16;
    let mut to_send: Vec<String> = Vec::new();
    let give_up = || Instant::now() + Duration::from_secs(20);
    let deadline_after_stop = std::cell::Cell::new(None::<Instant>);
    loop {
        if stop.load(Ordering::Relaxed) {
            let deadline = *deadline_after_stop.get().get_or_insert_with(give_up);
            deadline_after_stop.set(Some(deadline));
            if to_send.is_empty() || Instant::now() > deadline {
                report.lost = to_send.len();
                return report;
            }
        }
        let mut connection = match DotClient::connect(addr).await {
            Ok(connection) => connection,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        report.connections += 1;
        let mut outstanding: HashMap<u16, String> = HashMap::new();
        let closed: io::Result<()> = async {
            loop {
                while outstanding.len() < WINDOW {
                    let name = match to_send.pop() {
                        Some(name) => name,
                        None if !stop.load(Ordering::Relaxed) => {
                            next_query += 1;
                            format!("delay-10.c{number}-q{next_query}.example.")
                        }
                        None => break,
                    };
                    next_id = next_id.wrapping_add(1);
                    outstanding.insert(next_id, name.clone());
                    connection.send(&query(&name, RecordType::A, next_id)).await?;
                }
                if outstanding.is_empty() {
                    return Ok(());
                }
                let Some(answer) = connection.recv_timeout(Duration::from_secs(5)).await? else {
                    return Err(io::ErrorKind::ConnectionAborted.into());
                };
                let answer = parse(&answer);
                let Some(name) = outstanding.remove(&answer.id()) else {
                    report.wrong.push(format!("answer with unknown id {}", answer.id()));
                    continue;
                };
                let asked = answer.queries().first().map(|q| q.name().to_ascii());
                let good = asked.as_deref() == Some(name.as_str())
                    && answer.response_code() == ResponseCode::NoError
                    && a_records(&answer) == vec![std::net::Ipv4Addr::new(192, 0, 2, 1)];
                if !good {
                    report.wrong.push(format!("{name}: {answer:?}"));
                }
                report.answered += 1;
            }
        }
        .await;
        if let Err(e) = closed {
            if e.kind() == io::ErrorKind::TimedOut {
                report.stalls += 1;
            }
            report.resent += outstanding.len();
            to_send.extend(outstanding.into_values());
        }
    }
}

fn start(addr: SocketAddr, backend: SocketAddr) -> (Dotgate, SocketAddr) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let dotgate =
        Dotgate::start_on(addr, &[backend], &["--workers", "2", "--admin", &admin_arg, "--drain-timeout", "5"]);
    (dotgate, admin)
}

/// SIGTERM, then: not ready at once, exit 0 after the drain.
fn stop(mut dotgate: Dotgate, admin: SocketAddr) {
    dotgate.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match try_get(admin, "/readyz") {
            Ok((503, _)) => break,
            Ok(_) => assert!(Instant::now() < deadline, "/readyz still ready after SIGTERM"),
            // The admin endpoint is gone: a drain faster than this poll, and the process
            // exited (its status is checked below).
            Err(_) => {
                assert!(dotgate.wait_exit(Duration::from_secs(1)).is_some(), "/readyz unreachable while running");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = dotgate.wait_exit(Duration::from_secs(8));
    let stderr = dotgate.stderr();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    // Each worker finished everything it had read before it stopped.
    let stopped: Vec<&str> = stderr.lines().filter(|l| l.contains("worker stopped")).collect();
    assert_eq!(stopped.len(), 2, "{stderr}");
    for line in stopped {
        assert!(line.contains("drained=true") && line.contains("in_flight=0"), "{line}");
    }
}

/// As an orchestrator rolls: a new process on the same port first, then [`stop`] the old one.
async fn replace(old: Dotgate, old_admin: SocketAddr, backend: SocketAddr) -> (Dotgate, SocketAddr) {
    let addr = old.addr;
    tokio::task::spawn_blocking(move || {
        let new = start(addr, backend);
        stop(old, old_admin);
        new
    })
    .await
    .unwrap()
}

fn queries_received(admin: SocketAddr) -> f64 {
    sample(&get(admin, "/metrics").1, r#"dotgate_queries_received_total{frontend="dot"}"#).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_two_processes_on_one_port_loses_no_query() {
    let backend = FakeBackend::start().await;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (first, first_admin) = start(addr, backend.addr);
    let (second, second_admin) = start(addr, backend.addr);

    let stop_load = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS).map(|number| tokio::spawn(client(addr, number, stop_load.clone()))).collect();

    let phase = Duration::from_millis(800);
    tokio::time::sleep(phase).await;
    let (replaced, replaced_admin) = replace(first, first_admin, backend.addr).await;
    tokio::time::sleep(phase).await;
    let (third, third_admin) = replace(second, second_admin, backend.addr).await;
    tokio::time::sleep(phase).await;
    stop_load.store(true, Ordering::Relaxed);

    let mut total = Report::default();
    for client in clients {
        let report = client.await.unwrap();
        total.answered += report.answered;
        total.resent += report.resent;
        total.connections += report.connections;
        total.stalls += report.stalls;
        total.lost += report.lost;
        total.wrong.extend(report.wrong);
    }
    eprintln!("{total:?}");
    assert!(total.wrong.is_empty(), "wrong answers: {:?}", &total.wrong[..total.wrong.len().min(5)]);
    assert_eq!(total.stalls, 0, "connections went silent with queries on them");
    assert_eq!(total.lost, 0, "queries never answered");
    assert!(total.answered > 500, "too little load to show anything: {total:?}");
    assert!(total.connections > CLIENTS, "the restarts must have moved clients: {total:?}");
    // Both replacements took their share.
    assert!(queries_received(replaced_admin) > 0.0, "the first replacement served nothing");
    assert!(queries_received(third_admin) > 0.0, "the second replacement served nothing");
    drop((replaced, third));
}
