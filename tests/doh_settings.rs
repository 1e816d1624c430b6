//! The DoH listener's settings, end to end (issue 18's first Must-have bullet): `--doh-listen`
//! repeats, `--doh-path` moves the endpoint, the config file's `doh-listen` and `doh-path` work
//! like the flags; and a DoH connection gets DoT's TLS: TLS 1.2 as well as 1.3 with either ALPN,
//! the handshake and idle timeouts, tickets that resume on another dotgate with the same
//! `--ticket-keys`, a certificate reloaded on SIGHUP; a listening socket per worker; and
//! `--max-in-flight` holding for a client that ignores SETTINGS_MAX_CONCURRENT_STREAMS.

mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::client::{query, spki_pin_base64, ClientOptions};
use support::h2raw::{H2Client, H2Options};
use support::openssl::{s_client_session, Handshake, Version};
use support::ports::free_addr;
use support::{gen_cert, make_cert, Dotgate, FakeBackend};

const T: Duration = Duration::from_secs(5);

/// The HTTP status of a GET for a question at `path` on a new HTTP/2 connection with `opts`.
async fn status_at(doh: SocketAddr, opts: &H2Options, path: &str) -> u16 {
    let mut h2 = H2Client::connect_with(doh, opts).await.expect("HTTP/2 over TLS");
    let stream = h2.get_dns(path, &query("www.example.test.", RecordType::A, 0)).await.unwrap();
    h2.response(stream, T).await.unwrap().status
}

/// `--cert`/`--key` of a fresh certificate in `dir`, and more `args`.
fn with_cert(dir: &Path, args: &[&str]) -> Vec<String> {
    let (cert, key, _) = make_cert(dir);
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(["--cert".into(), cert.display().to_string(), "--key".into(), key.display().to_string()]);
    all
}

fn start(backend: SocketAddr, args: &[String]) -> Dotgate {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Dotgate::start(&[backend], &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_listen_repeats_and_doh_path_moves_the_endpoint() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (free_addr(), free_addr());
    let (a, b) = (first.to_string(), second.to_string());
    let args = with_cert(dir.path(), &["--doh-listen", &a, "--doh-listen", &b, "--doh-path", "/resolve"]);
    let _dotgate = start(backend.addr, &args);
    let opts = H2Options::default();
    for doh in [first, second] {
        assert_eq!(status_at(doh, &opts, "/resolve").await, 200, "{doh}: the path set");
        assert_eq!(status_at(doh, &opts, "/dns-query").await, 404, "{doh}: the default path is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_listen_and_doh_path_come_from_the_config_file() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let doh = free_addr();
    let config = dir.path().join("dotgate.toml");
    let mut file = std::fs::File::create(&config).unwrap();
    writeln!(file, "doh-listen = [\"{doh}\"]\ndoh-path = \"/from-file\"").unwrap();
    let args = with_cert(dir.path(), &["--config", config.to_str().unwrap()]);
    let _dotgate = start(backend.addr, &args);
    let opts = H2Options::default();
    assert_eq!(status_at(doh, &opts, "/from-file").await, 200);
    assert_eq!(status_at(doh, &opts, "/dns-query").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_speaks_tls12_and_tls13_with_either_alpn() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (dotgate, doh, cert) = support::start_doh(&[backend.addr], dir.path(), &[]);
    for (tls, version) in [
        (ClientOptions::tls12_only(), rustls::ProtocolVersion::TLSv1_2),
        (ClientOptions::tls13_only(), rustls::ProtocolVersion::TLSv1_3),
    ] {
        let opts = H2Options { tls, ..H2Options::default() };
        let h2 = H2Client::connect_with(doh, &opts).await.expect("HTTP/2 over TLS");
        let session = h2.get_ref().get_ref().1;
        assert_eq!(session.protocol_version(), Some(version));
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "{version:?}");
        drop(h2);
        assert_eq!(status_at(doh, &opts, "/dns-query").await, 200, "{version:?}");
    }
    // HTTP/1.1 by ALPN over TLS 1.2 (and HTTP/2), as curl sees it.
    for http in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "--tlsv1.2", "--tls-max", "1.2", http, "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{http_version}", "--cacert", cert.to_str().unwrap()])
            .args(["--resolve", &format!("localhost:{}:127.0.0.1", doh.port())])
            .arg(format!(
                "https://localhost:{}/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlBHRlc3QAAAEAAQ",
                doh.port()
            ))
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        let want = if http == "--http1.1" { "200 1.1" } else { "200 2" };
        assert_eq!(shown, want, "{http} over TLS 1.2: {}", String::from_utf8_lossy(&out.stderr));
    }
    drop(dotgate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_connections_keep_the_handshake_and_idle_timeouts() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--handshake-timeout", "1", "--idle-timeout", "1"];
    let (_dotgate, doh, _) = support::start_doh(&[backend.addr], dir.path(), &extra);

    // A handshake that stops half way (a record header announcing 200 octets, none sent).
    let mut tcp = std::net::TcpStream::connect(doh).unwrap();
    tcp.write_all(&[22, 3, 1, 0, 200]).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    let started = Instant::now();
    let closed = std::io::Read::read(&mut tcp, &mut [0u8; 64]);
    let after = started.elapsed();
    assert!(matches!(closed, Ok(0)) || closed.is_err(), "{closed:?}");
    assert!(after >= Duration::from_millis(800) && after < Duration::from_secs(3), "closed after {after:?}");

    // An HTTP/2 connection idle after its answer: GOAWAY and close at the idle timeout.
    let mut h2 = H2Client::connect(doh).await.expect("HTTP/2 over TLS");
    let stream = h2.get_dns("/dns-query", &query("idle.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(h2.response(stream, T).await.unwrap().status, 200);
    let started = Instant::now();
    assert!(h2.goaway_then_close(T).await.is_some(), "an idle DoH connection stayed open");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(800) && after < Duration::from_secs(3), "closed after {after:?}");
}

#[test]
fn doh_sessions_resume_on_another_dotgate_with_the_same_ticket_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("tickets.keys");
    let made = Command::new(support::dotgate::DOTGATE_BIN).args(["ticket-keys", "new"]).output().unwrap();
    assert!(made.status.success());
    std::fs::write(&keys, &made.stdout).unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    // s_client waits for the server to close: a short idle timeout.
    let extra = ["--workers", "1", "--idle-timeout", "0.3", "--ticket-keys", keys.to_str().unwrap()];
    let (_first, first, _) = support::start_doh(&[backend], dir.path(), &extra);
    let other = tempfile::tempdir().unwrap();
    let (_second, second, _) = support::start_doh(&[backend], other.path(), &extra);
    for version in [Version::Tls13, Version::Tls12] {
        let session = dir.path().join(format!("{version:?}.session"));
        assert_eq!(s_client_session(first, version, None, Some(&session)), Handshake::New, "{version:?}");
        assert_eq!(
            s_client_session(second, version, Some(&session), None),
            Handshake::Reused,
            "{version:?}: a DoH session resumes on another dotgate with the same ticket keys"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_for_doh_too() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (old, new) = (gen_cert(), gen_cert());
    std::fs::write(&cert_path, &old.cert_pem).unwrap();
    std::fs::write(&key_path, &old.key_pem).unwrap();
    let doh = free_addr();
    let (doh_arg, cert_arg, key_arg) =
        (doh.to_string(), cert_path.display().to_string(), key_path.display().to_string());
    let dotgate = Dotgate::start(&[backend.addr], &["--doh-listen", &doh_arg, "--cert", &cert_arg, "--key", &key_arg]);
    let served = || async {
        let h2 = H2Client::connect(doh).await.expect("HTTP/2 over TLS");
        let certs = h2.get_ref().get_ref().1.peer_certificates().expect("a certificate").to_vec();
        spki_pin_base64(&certs[0])
    };
    assert_eq!(served().await, old.pin);
    for (path, text) in [(&key_path, &new.key_pem), (&cert_path, &new.cert_pem)] {
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, path).unwrap();
    }
    dotgate.signal(libc::SIGHUP);
    assert!(dotgate.wait_for_stderr("reloaded certificate", T), "{}", dotgate.stderr());
    assert_eq!(served().await, new.pin, "a new DoH connection gets the reloaded certificate");
}

/// Listening TCP sockets on 127.0.0.1:`port` (from /proc/net/tcp: state 0A is LISTEN).
fn listening_sockets(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_listens_on_the_doh_port_and_every_one_answers() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = support::start_doh(&[backend.addr], dir.path(), &["--workers", "3"]);
    // One SO_REUSEPORT socket per worker, as for DoT: the kernel spreads connections over them.
    assert_eq!(listening_sockets(doh.port()), 3, "a DoH listening socket per worker");
    let opts = H2Options::default();
    for _ in 0..12 {
        assert_eq!(status_at(doh, &opts, "/dns-query").await, 200);
    }
}

/// A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS (`--max-in-flight 3`) and opens 6
/// slow streams at once: at most 3 queries ever reach the backend together, every stream ends
/// (answered 200, or refused with RST_STREAM REFUSED_STREAM for the client to ask again), and
/// the connection then answers the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_max_in_flight_never_reach_the_backend_at_once() {
    use support::h2raw::{Read, DATA, END_STREAM, HEADERS};
    const REFUSED_STREAM: u32 = 0x7;
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = support::start_doh(&[backend.addr], dir.path(), &["--max-in-flight", "3"]);
    let mut h2 = H2Client::connect(doh).await.expect("HTTP/2 over TLS");
    let mut open = Vec::new();
    for i in 0..6 {
        let question = query(&format!("delay-500.cap{i}.example."), RecordType::A, 0);
        open.push(h2.get_dns("/dns-query", &question).await.unwrap());
    }
    let (mut answered, mut refused) = (0, 0);
    let mut status = std::collections::HashMap::new();
    while !open.is_empty() {
        let Read::Frame(frame) = h2.read_frame(T).await else { panic!("streams left unended: {open:?}") };
        if !open.contains(&frame.stream) {
            continue;
        }
        if let Some(code) = frame.rst_code() {
            assert_eq!(code, REFUSED_STREAM, "stream {}", frame.stream);
            refused += 1;
        } else if frame.kind == HEADERS && frame.status().is_some() {
            status.insert(frame.stream, frame.status().unwrap());
            if !frame.has(END_STREAM) {
                continue;
            }
        } else if !(frame.kind == DATA && frame.has(END_STREAM)) {
            continue;
        } else {
            assert_eq!(status.get(&frame.stream), Some(&200), "stream {}", frame.stream);
            answered += 1;
        }
        open.retain(|&s| s != frame.stream);
    }
    assert_eq!(answered + refused, 6);
    assert!(answered >= 3, "{answered} answered, {refused} refused");
    assert!(backend.max_concurrent() <= 3, "{} queries at the backend at once", backend.max_concurrent());
    eprintln!("{answered} answered, {refused} refused; at most {} at the backend", backend.max_concurrent());
    let again = h2.get_dns("/dns-query", &query("again.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(h2.response(again, T).await.unwrap().status, 200, "the same connection answers the next request");
}
