//! The TLS face of dotgate: versions (1.2 and 1.3 only), ALPN "dot" accepted but not required,
//! session resumption, the handshake timeout, plain DNS refused, close_notify on close, how a
//! stream broken right after its handshake is counted, and the certificate: from files, or
//! self-signed with its pin printed.

mod support;

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::{make_cert, query, ClientOptions, DotClient, Dotgate, FakeBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_13_and_12_both_serve_queries() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &[]);
    for (opts, version) in [
        (ClientOptions::tls13_only(), rustls::ProtocolVersion::TLSv1_3),
        (ClientOptions::tls12_only(), rustls::ProtocolVersion::TLSv1_2),
    ] {
        let mut client = DotClient::connect_with(dotgate.addr, &opts).await.unwrap();
        client.exchange(&query("v.example.", RecordType::A, 1)).await;
        assert_eq!(client.protocol_version(), Some(version));
        // The client (rustls's defaults) lists AES-256-GCM first; dotgate picks AES-128-GCM with
        // SHA-256, the cheaper handshake and records.
        let expected = match version {
            rustls::ProtocolVersion::TLSv1_3 => rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            _ => rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        };
        assert_eq!(client.cipher_suite(), Some(expected));
    }
}

/// A TLS 1.1 ClientHello (legacy_version 0x0302, no supported_versions extension), as an old
/// client would send it.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x14, 0x00, 0x2f]); // ECDHE-RSA-AES256-SHA, AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0, 0, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_11_is_refused() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &[]);
    let mut tcp = TcpStream::connect(dotgate.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut reply)).await;
    assert!(!reply.is_empty(), "expected an alert before the close");
    assert_eq!(reply[0], 0x15, "expected a TLS alert record, got {:02x?}", &reply[..reply.len().min(8)]);
    // A fatal alert (level 2): protocol_version (70) or handshake_failure (40); no ServerHello.
    assert_eq!(reply[5], 2, "expected a fatal alert: {reply:02x?}");
    assert!([70, 40].contains(&reply[6]), "unexpected alert {reply:02x?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_dot_is_selected_but_never_required() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &[]);
    let cases = [(vec![b"dot".to_vec()], Some(b"dot".to_vec())), (vec![], None), (vec![b"h2".to_vec()], None)];
    for (offered, expected) in cases {
        let opts = ClientOptions { alpn: offered.clone(), ..Default::default() };
        let mut client = DotClient::connect_with(dotgate.addr, &opts).await.unwrap_or_else(|e| {
            panic!("offering ALPN {offered:?} must not fail the handshake: {e}");
        });
        client.exchange(&query("alpn.example.", RecordType::A, 1)).await;
        assert_eq!(client.negotiated_alpn(), expected, "offered {offered:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_with_tls_13_and_tls_12() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "2"]);
    for versions in [vec![&rustls::version::TLS13], vec![&rustls::version::TLS12]] {
        let opts = ClientOptions { versions, ..ClientOptions::with_resumption() };
        let mut first = DotClient::connect_with(dotgate.addr, &opts).await.unwrap();
        first.exchange(&query("r.example.", RecordType::A, 1)).await;
        assert!(!first.was_resumed());
        first.shutdown().await.ok();
        // Several reconnects: SO_REUSEPORT may land each on either worker; all must resume.
        for i in 0..4 {
            let mut again = DotClient::connect_with(dotgate.addr, &opts).await.unwrap();
            again.exchange(&query("r.example.", RecordType::A, 2)).await;
            assert!(again.was_resumed(), "reconnect {i} with {:?} was a full handshake", opts.versions);
            again.shutdown().await.ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_the_handshake_timeout() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--handshake-timeout", "1"]);
    let started = Instant::now();
    let mut tcp = TcpStream::connect(dotgate.addr).await.unwrap();
    assert!(support::client::is_closed_within(&mut tcp, Duration::from_secs(4)).await, "silent client still connected");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the timeout");
    // A client that stalls halfway through its hello is closed too.
    let mut tcp = TcpStream::connect(dotgate.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()[..20]).await.unwrap();
    assert!(support::client::is_closed_within(&mut tcp, Duration::from_secs(4)).await, "stalled hello still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_dns_on_the_tls_port_is_closed_at_once() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--handshake-timeout", "10"]);
    let mut tcp = TcpStream::connect(dotgate.addr).await.unwrap();
    support::client::write_frame(&mut tcp, &query("plain.example.", RecordType::A, 1)).await.unwrap();
    assert!(
        support::client::is_closed_within(&mut tcp, Duration::from_secs(2)).await,
        "plain DNS must be refused at once, not after the 10 s handshake timeout"
    );
    assert_eq!(backend.udp_queries(), 0, "nothing may reach the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotgate_sends_close_notify_when_it_closes() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--idle-timeout", "0.5"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("c.example.", RecordType::A, 1)).await;
    // Ok(None) is a clean close: close_notify arrived before the FIN.
    match client.recv_timeout(Duration::from_secs(3)).await {
        Ok(None) => {}
        other => panic!("expected close_notify, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_pin_is_printed_and_served() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &[]);
    let pin = dotgate.pin();
    assert!(dotgate.stderr().contains("self-signed"), "stderr must say the certificate is self-signed");
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("pin.example.", RecordType::A, 1)).await;
    assert_eq!(client.peer_spki_sha256_base64(), pin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_and_key_files_are_served() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pin) = make_cert(dir.path());
    let dotgate = Dotgate::start(&[backend.addr], &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(dotgate.pin(), pin, "the printed pin is the certificate's");
    assert!(!dotgate.stderr().contains("self-signed"));
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("file.example.", RecordType::A, 1)).await;
    assert_eq!(client.peer_spki_sha256_base64(), pin);
}

/// Runs kdig over TLS against `addr` with `+tls-pin=pin`; returns its `+short` answer (empty
/// when the pin check failed).
async fn kdig_pinned(addr: std::net::SocketAddr, pin: &str) -> String {
    let mut kdig = std::process::Command::new("kdig");
    kdig.args(["@127.0.0.1", "-p", &addr.port().to_string(), "+tls", &format!("+tls-pin={pin}")]);
    kdig.args(["+short", "+timeout=3", "+retry=0", "example.com", "A"]);
    let out =
        tokio::task::spawn_blocking(move || kdig.output().expect("run kdig (scripts/install-deps.sh)")).await.unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pin_tool_prints_the_pin_clients_can_use() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, expected) = make_cert(dir.path());
    let out = std::process::Command::new(support::dotgate::DOTGATE_BIN)
        .args(["pin", "--cert", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "dotgate pin: {}", String::from_utf8_lossy(&out.stderr));
    let pin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(pin, expected, "the pin is base64(SHA-256(SPKI)) of the certificate");

    let dotgate = Dotgate::start(&[backend.addr], &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(dotgate.pin(), pin, "the tool prints what dotgate logs at start");
    let normal = support::fake_backend::NORMAL_A.to_string();
    assert_eq!(kdig_pinned(dotgate.addr, &pin).await, normal, "kdig with the printed pin gets the answer");
    let wrong = support::gen_cert().pin;
    assert_eq!(kdig_pinned(dotgate.addr, &wrong).await, "", "kdig with another key's pin must refuse the server");
}

/// A client's Finished and a record that breaks the stream, in one write, so that dotgate reads
/// them together: the handshake completes, then the stream breaks. That is a handshake and a
/// protocol close, not a failed handshake. (It was counted as a failed handshake and no
/// handshake at all: feed stopped at the bad record before it reached the state that counts
/// as established, and an operator's "handshakes failing" alert would count such clients.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_in_the_read_that_finishes_the_handshake_counts_as_a_handshake() {
    use support::framed;
    use support::hostile::RawTls;
    use support::http::{get, sample};
    let backend = FakeBackend::start().await;
    let admin = support::ports::free_addr();
    let dotgate = Dotgate::start(&[backend.addr], &["--admin", &admin.to_string()]);
    let counter = |series: &str| sample(&get(admin, "/metrics").1, series).unwrap_or(0.0);
    let errors = r#"dotgate_tls_handshake_failures_total{frontend="dot",reason="error"}"#;
    let handshakes = r#"dotgate_tls_handshakes_total{frontend="dot",version="TLSv1.3",kind="full"}"#;
    let protocol = r#"dotgate_connections_closed_total{frontend="dot",reason="protocol"}"#;
    // The harness's readiness check (a connect closed at once) is a failed handshake once
    // dotgate takes it: let that happen first.
    let deadline = Instant::now() + Duration::from_secs(3);
    while counter(r#"dotgate_connections_accepted_total{frontend="dot"}"#) < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let errors_before = counter(errors);
    for (round, alert) in [true, false].into_iter().enumerate() {
        let mut raw = RawTls::connect_holding_finished(dotgate.addr).await.unwrap();
        let mut burst = std::mem::take(&mut raw.finished);
        assert!(!burst.is_empty(), "the client's Finished was held back");
        burst.extend(raw.seal(23, &framed(&query("broken.example.", RecordType::A, 1))));
        if alert {
            burst.extend(raw.seal(21, &[2, 80])); // a fatal internal_error alert
        } else {
            burst.extend_from_slice(&[23, 3, 3, 0, 20]); // a record that cannot decrypt
            burst.extend_from_slice(&[0x5a; 20]);
        }
        raw.tcp.write_all(&burst).await.unwrap();
        let closed = support::client::is_closed_within(&mut raw.tcp, Duration::from_secs(2)).await;
        assert!(closed, "round {round}: the connection stays open after its stream broke");
    }
    assert_eq!(counter(errors) - errors_before, 0.0, "counted as failed handshakes");
    assert_eq!(counter(handshakes), 2.0, "both handshakes completed");
    assert_eq!(counter(protocol), 2.0, "both streams broke after their handshake");
}
