//! The `frontend` label (issue 18): DoT and DoH on one dotgate in front of a real Unbound, each
//! counted under its own frontend in /metrics: queries, answers, connections, handshakes (and
//! their failures) and closures, beside `dotgate_doh_responses_total{status}`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hickory_proto::rr::RecordType;
use support::http::{get, sample};
use support::ports::free_addr;
use support::{DotClient, Unbound};

/// curl `https://localhost:PORT{path}` on `doh` with `args`: the HTTP status.
fn curl(doh: SocketAddr, cert: &Path, path: &str, args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert", cert.to_str().unwrap(), "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", doh.port())])
        .args(args)
        .arg(format!("https://localhost:{}{path}", doh.port()))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or_else(|_| {
        panic!("curl: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_and_dot_are_counted_each_under_its_frontend() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = free_addr();
    let (dotgate, doh, cert) = support::start_doh(&[unbound.addr], dir.path(), &["--admin", &admin.to_string()]);
    let page = || get(admin, "/metrics").1;
    let value = |page: &str, series: &str| sample(page, series).unwrap_or_else(|| panic!("no {series} in:\n{page}"));
    // The harness's readiness check (a connect to the DoT port, closed at once: a failed DoT
    // handshake) is counted before the figures this test compares.
    let dot_accepted = r#"dotgate_connections_accepted_total{frontend="dot"}"#;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let now = page();
        if value(&now, dot_accepted) >= 1.0 && value(&now, "dotgate_connections_open") == 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = page();

    // DoH: GET over HTTP/2 and HTTP/1.1, POST over HTTP/2, and a wrong path (404, no query);
    // each curl is one connection and one full handshake.
    let question = support::client::query("www.example.test.", RecordType::A, 0);
    let get_path = format!("/dns-query?dns={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&question));
    let body = dir.path().join("q.bin");
    std::fs::write(&body, &question).unwrap();
    let post = format!("@{}", body.display());
    assert_eq!(curl(doh, &cert, &get_path, &["--http2"]), 200);
    assert_eq!(curl(doh, &cert, &get_path, &["--http1.1"]), 200);
    let post_args = ["--http2", "-H", "content-type: application/dns-message", "--data-binary", &post];
    assert_eq!(curl(doh, &cert, "/dns-query", &post_args), 200);
    assert_eq!(curl(doh, &cert, "/elsewhere", &["--http2"]), 404);
    // Not TLS at all: a DoH handshake failure.
    let mut plain = TcpStream::connect(doh).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /dns-query HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let _ = plain.read_to_end(&mut Vec::new());

    // DoT: two queries on one connection.
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for id in 1..=2u16 {
        client.exchange(&support::query("www.example.test.", RecordType::A, id)).await;
    }
    drop(client);

    // Every connection closed and counted (DoH's five, DoT's readiness probe and client).
    let closed = |page: &str, frontend: &str| -> f64 {
        ["client", "idle", "error", "protocol", "drain"]
            .iter()
            .map(|reason| {
                value(page, &format!(r#"dotgate_connections_closed_total{{frontend="{frontend}",reason="{reason}"}}"#))
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = page();
    while (closed(&now, "doh") < 4.0 || value(&now, "dotgate_connections_open") > 0.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = page();
    }
    let delta = |series: &str| value(&now, series) - sample(&before, series).unwrap_or(0.0);

    assert_eq!(delta(r#"dotgate_queries_received_total{frontend="doh"}"#), 3.0, "{now}");
    assert_eq!(delta(r#"dotgate_answers_total{frontend="doh",source="backend",rcode="NOERROR"}"#), 3.0);
    assert_eq!(delta(r#"dotgate_doh_responses_total{status="200"}"#), 3.0);
    assert_eq!(delta(r#"dotgate_doh_responses_total{status="404"}"#), 1.0);
    assert_eq!(delta(r#"dotgate_connections_accepted_total{frontend="doh"}"#), 5.0, "four curls and the plain one");
    let handshakes = |frontend: &str| -> f64 {
        ["TLSv1.2", "TLSv1.3"]
            .iter()
            .flat_map(|v| {
                ["full", "resumed"].map(|k| {
                    format!(r#"dotgate_tls_handshakes_total{{frontend="{frontend}",version="{v}",kind="{k}"}}"#)
                })
            })
            .map(|series| delta(&series))
            .sum()
    };
    assert_eq!(handshakes("doh"), 4.0, "{now}");
    assert_eq!(delta(r#"dotgate_tls_handshakes_total{frontend="doh",version="TLSv1.3",kind="full"}"#), 4.0);
    assert_eq!(delta(r#"dotgate_tls_handshake_failures_total{frontend="doh",reason="error"}"#), 1.0);
    assert_eq!(delta(r#"dotgate_tls_handshake_failures_total{frontend="doh",reason="timeout"}"#), 0.0);
    // The four that shook hands are closed, each counted once (the plain one never got past
    // its handshake: a failure, not a closure).
    assert_eq!(closed(&now, "doh"), 4.0, "{now}");
    assert_eq!(delta(r#"dotgate_connections_closed_total{frontend="doh",reason="client"}"#), 4.0, "{now}");

    // DoT's own, untouched by DoH's.
    assert_eq!(delta(r#"dotgate_queries_received_total{frontend="dot"}"#), 2.0);
    assert_eq!(delta(r#"dotgate_answers_total{frontend="dot",source="backend",rcode="NOERROR"}"#), 2.0);
    assert_eq!(delta(dot_accepted), 1.0);
    assert_eq!(handshakes("dot"), 1.0);
    assert_eq!(delta(r#"dotgate_tls_handshake_failures_total{frontend="dot",reason="error"}"#), 0.0);
}
