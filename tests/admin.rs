//! The admin endpoint: `/metrics` counts what clients saw, `/healthz` answers while the process
//! runs, `/readyz` says ready only while listening with a backend up and not draining.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::http::{get, sample};
use support::ports::free_addr;
use support::{parse, query, DotClient, Dotgate, FakeBackend};

const WAIT: Duration = Duration::from_secs(5);

fn start(backend: SocketAddr, extra: &[&str]) -> (Dotgate, SocketAddr) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let mut args = vec!["--admin", admin_arg.as_str()];
    args.extend_from_slice(extra);
    (Dotgate::start(&[backend], &args), admin)
}

/// Polls `path` until `want(status, body)` holds (for `within`); returns the last response.
fn poll(admin: SocketAddr, path: &str, within: Duration, want: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = get(admin, path);
        if want(status, &body) || Instant::now() >= deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_clients_saw() {
    let backend = FakeBackend::start().await;
    let (dotgate, admin) = start(backend.addr, &["--workers", "2"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for id in 0..5u16 {
        client.exchange(&query(&format!("m{id}.example."), RecordType::A, id)).await;
    }
    let answer = client.exchange(&query("servfail.example.", RecordType::A, 9)).await;
    assert_eq!(parse(&answer).response_code(), hickory_proto::op::ResponseCode::ServFail);
    // The backend answers this one twice: the second copy is dropped, counted as a duplicate.
    client.exchange(&query("twice.example.", RecordType::A, 10)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;

    let (status, page) = get(admin, "/metrics");
    assert_eq!(status, 200);
    let value = |series: &str| sample(&page, series).unwrap_or_else(|| panic!("no {series} in:\n{page}"));
    assert_eq!(value(r#"dotgate_queries_received_total{frontend="dot"}"#), 7.0);
    assert_eq!(value(r#"dotgate_answers_total{frontend="dot",source="backend",rcode="NOERROR"}"#), 6.0);
    assert_eq!(value(r#"dotgate_upstream_answers_dropped_total{reason="duplicate"}"#), 1.0);
    assert_eq!(value(r#"dotgate_upstream_answers_dropped_total{reason="unknown_id"}"#), 0.0);
    assert_eq!(value(r#"dotgate_answers_total{frontend="dot",source="backend",rcode="SERVFAIL"}"#), 1.0);
    assert_eq!(value(r#"dotgate_answers_total{frontend="dot",source="local",rcode="SERVFAIL"}"#), 0.0);
    let backend_label = format!(r#"backend="{}""#, backend.addr);
    assert_eq!(value(&format!(r#"dotgate_upstream_queries_total{{{backend_label},transport="udp"}}"#)), 7.0);
    assert_eq!(value(&format!(r#"dotgate_upstream_queries_total{{{backend_label},transport="tcp"}}"#)), 0.0);
    assert_eq!(value(r#"dotgate_tls_handshakes_total{frontend="dot",version="TLSv1.3",kind="full"}"#), 1.0);
    // Both latency histograms saw the seven relayed queries, all well under a second.
    assert_eq!(value("dotgate_query_duration_seconds_count"), 7.0);
    assert_eq!(value(r#"dotgate_query_duration_seconds_bucket{le="1"}"#), 7.0);
    assert_eq!(value(&format!("dotgate_upstream_duration_seconds_count{{{backend_label}}}")), 7.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(value("dotgate_certificate_expiry_timestamp_seconds") > now, "the certificate expires in the future");
    assert_eq!(value(r#"dotgate_tls_reloads_total{material="certificate",result="refused"}"#), 0.0);
    assert_eq!(value("dotgate_connections_open"), 1.0, "the test client's connection");
    assert!(value(r#"dotgate_connections_accepted_total{frontend="dot"}"#) >= 1.0);
    // Every frontend series exists from the first scrape, DoH's at zero here (no DoH listener).
    assert_eq!(value(r#"dotgate_queries_received_total{frontend="doh"}"#), 0.0);
    assert_eq!(value(r#"dotgate_answers_total{frontend="doh",source="backend",rcode="NOERROR"}"#), 0.0);
    assert_eq!(value(r#"dotgate_connections_accepted_total{frontend="doh"}"#), 0.0);
    assert_eq!(value(r#"dotgate_tls_handshakes_total{frontend="doh",version="TLSv1.3",kind="full"}"#), 0.0);
    assert_eq!(value(&format!(r#"dotgate_backend_up{{backend="{}"}}"#, backend.addr)), 1.0);
    assert_eq!(value("dotgate_ready"), 1.0);
    assert!(page.contains("# TYPE dotgate_queries_received_total counter"), "{page}");

    drop(client);
    // A scrape reads the counters, then the gauges: the connection may close between the two, so
    // wait for both to show it.
    let closed = r#"dotgate_connections_closed_total{frontend="dot",reason="client"}"#;
    let (_, page) = poll(admin, "/metrics", WAIT, |_, page| {
        sample(page, "dotgate_connections_open") == Some(0.0) && sample(page, closed) == Some(1.0)
    });
    assert_eq!(sample(&page, "dotgate_connections_open"), Some(0.0), "closed connections are not counted as open");
    assert_eq!(sample(&page, closed), Some(1.0), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_and_unknown_paths() {
    let backend = FakeBackend::start().await;
    let (_dotgate, admin) = start(backend.addr, &[]);
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(admin, "/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(get(admin, "/nope").0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_while_every_backend_is_down() {
    let backend = FakeBackend::start().await;
    let (dotgate, admin) = start(backend.addr, &["--workers", "1", "--upstream-timeout", "0.2"]);
    backend.set_down(true);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for id in 0..4u16 {
        client.send(&query(&format!("down{id}.example."), RecordType::A, id)).await.unwrap();
    }
    let (status, body) = poll(admin, "/readyz", WAIT, |status, _| status == 503);
    assert_eq!((status, body.as_str()), (503, "not ready: no backend up\n"));
    let (_, page) = get(admin, "/metrics");
    assert_eq!(sample(&page, &format!(r#"dotgate_backend_up{{backend="{}"}}"#, backend.addr)), Some(0.0));

    // The probes find it back.
    backend.set_down(false);
    let (status, _) = poll(admin, "/readyz", Duration::from_secs(8), |status, _| status == 200);
    assert_eq!(status, 200, "ready again once the backend answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_at_sigterm_while_the_drain_finishes() {
    let backend = FakeBackend::start().await;
    let (mut dotgate, admin) = start(backend.addr, &["--upstream-timeout", "5"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.send(&query("delay-1500.example.", RecordType::A, 7)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    dotgate.signal(libc::SIGTERM);
    let (status, body) = poll(admin, "/readyz", Duration::from_secs(1), |status, _| status == 503);
    assert_eq!((status, body.as_str()), (503, "not ready: draining\n"));
    assert_eq!(get(admin, "/healthz").0, 200, "alive while draining");
    let answer = client.recv_timeout(WAIT).await.expect("answer").expect("the in-flight answer");
    assert_eq!(parse(&answer).id(), 7);
    assert_eq!(dotgate.wait_exit(WAIT).and_then(|s| s.code()), Some(0), "{}", dotgate.stderr());
}
