//! DNS over HTTPS (RFC 8484, issue 18) in front of a real Unbound: curl over HTTP/2 and
//! HTTP/1.1 with GET and POST, kdig's `+https`; every HTTP error status; `Cache-Control`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hickory_proto::rr::RecordType;
use support::h2raw::{self, H2Client, Read};
use support::{fake_backend, ClientOptions, DotClient, Dotgate, Unbound};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for an answer that should come at once (generous: other builds share
/// this machine).
const T: Duration = Duration::from_secs(10);

/// dotgate with DoT and DoH on free ports in front of `unbound`, and its certificate.
fn start(unbound: &Unbound, dir: &Path) -> (Dotgate, SocketAddr, std::path::PathBuf) {
    start_with(unbound.addr, dir, &[])
}

/// dotgate with DoT and DoH on free ports in front of `backend`, with `extra` arguments, and its
/// certificate.
fn start_with(backend: SocketAddr, dir: &Path, extra: &[&str]) -> (Dotgate, SocketAddr, std::path::PathBuf) {
    support::start_doh(&[backend], dir, extra)
}

/// curl to `path` on `doh` (certificate `cert`, name localhost), with `args`; `-i` shows the
/// response head.
fn curl(doh: SocketAddr, cert: &Path, path: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert", cert.to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", doh.port())])
        .args(args)
        .arg(format!("https://localhost:{}{path}", doh.port()))
        .output()
        .expect("run curl")
}

/// The status line's code and the body after the head.
fn split(out: &Output) -> (u16, String, Vec<u8>) {
    let raw = &out.stdout;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no response head: {}{}", String::from_utf8_lossy(raw), String::from_utf8_lossy(&out.stderr))
    }) + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
    (code, head, raw[end..].to_vec())
}

fn query_b64(name: &str, rtype: RecordType) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(support::client::query(name, rtype, 0))
}

#[test]
fn curl_gets_answers_over_http2_and_http11_with_get_and_post() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, cert) = start(&unbound, dir.path());
    let body = dir.path().join("q.bin");
    std::fs::write(&body, support::client::query("www.example.test.", RecordType::A, 0)).unwrap();
    let post = format!("@{}", body.display());
    for version in ["--http2", "--http1.1"] {
        let get =
            curl(doh, &cert, &format!("/dns-query?dns={}", query_b64("www.example.test.", RecordType::A)), &[version]);
        let posted = curl(
            doh,
            &cert,
            "/dns-query",
            &[version, "-H", "content-type: application/dns-message", "--data-binary", &post],
        );
        for (how, out) in [("GET", get), ("POST", posted)] {
            let (code, head, answer) = split(&out);
            assert_eq!(code, 200, "{version} {how}: {head}");
            assert!(head.contains("content-type: application/dns-message"), "{version} {how}: {head}");
            assert!(head.contains("cache-control: max-age=300"), "{version} {how}: the TTL: {head}");
            let parsed = support::parse(&answer);
            assert_eq!(parsed.id(), 0, "{version} {how}: the request's ID");
            assert_eq!(support::client::a_records(&parsed), vec![support::unbound::WWW_A], "{version} {how}");
        }
        // The HTTP version asked for is the one spoken (ALPN h2, or http/1.1).
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", version, "--cacert", cert.to_str().unwrap()])
            .args(["--resolve", &format!("localhost:{}:127.0.0.1", doh.port())])
            .args(["-o", "/dev/null", "-w", "%{http_version}"])
            .arg(format!(
                "https://localhost:{}/dns-query?dns={}",
                doh.port(),
                query_b64("www.example.test.", RecordType::A)
            ))
            .output()
            .unwrap();
        let want = if version == "--http2" { "2" } else { "1.1" };
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{version}");
    }
}

#[test]
fn errors_are_http_statuses_and_dns_problems_are_200() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, cert) = start(&unbound, dir.path());
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 70_000]).unwrap();
    let small = dir.path().join("small.bin");
    std::fs::write(&small, support::client::query("www.example.test.", RecordType::A, 0)).unwrap();
    let cases: Vec<(&str, Output, u16)> = vec![
        ("bad base64url", curl(doh, &cert, "/dns-query?dns=!!!", &[]), 400),
        ("padding is not base64url without it", curl(doh, &cert, "/dns-query?dns=AAAA=", &[]), 400),
        ("shorter than a header", curl(doh, &cert, "/dns-query?dns=AAAA", &[]), 400),
        ("no dns parameter", curl(doh, &cert, "/dns-query?x=1", &[]), 400),
        (
            "a body over 65,535 octets",
            curl(
                doh,
                &cert,
                "/dns-query",
                &["-H", "content-type: application/dns-message", "--data-binary", &format!("@{}", big.display())],
            ),
            413,
        ),
        (
            "another content type",
            curl(
                doh,
                &cert,
                "/dns-query",
                &["-H", "content-type: text/plain", "--data-binary", &format!("@{}", small.display())],
            ),
            415,
        ),
        ("another method", curl(doh, &cert, "/dns-query", &["-X", "PUT"]), 405),
        ("another path", curl(doh, &cert, "/other", &[]), 404),
    ];
    for (what, out, want) in cases {
        let (code, head, _) = split(&out);
        assert_eq!(code, want, "{what}: {head}");
    }
    // A DNS problem is a 200 with its RCODE: NOTIMP for another opcode, FORMERR for two questions.
    let mut notify = support::client::query("www.example.test.", RecordType::A, 0);
    notify[2] |= 4 << 3;
    let out = curl(
        doh,
        &cert,
        &format!("/dns-query?dns={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&notify)),
        &[],
    );
    let (code, _, answer) = split(&out);
    assert_eq!((code, answer[3] & 0x0f), (200, 4), "NOTIMP in a 200");
    // The connection is still usable after an error (HTTP/1.1 keep-alive): two URLs, one connection.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--http1.1", "--cacert", cert.to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", doh.port())])
        .args(["-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"])
        .arg(format!("https://localhost:{}/other", doh.port()))
        .arg(format!(
            "https://localhost:{}/dns-query?dns={}",
            doh.port(),
            query_b64("www.example.test.", RecordType::A)
        ))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.lines().collect::<Vec<_>>(), ["404 1", "200 0"], "one connection for both: {shown}");
}

#[test]
fn kdig_https_gets_the_same_answers_as_a_plain_query() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, cert) = start(&unbound, dir.path());
    for mode in ["+https", "+https-get"] {
        let out = Command::new("kdig")
            .args(["@127.0.0.1".to_owned(), "-p".into(), doh.port().to_string(), mode.into()])
            .args(["+tls-ca=".to_owned() + cert.to_str().unwrap(), "+tls-hostname=localhost".into()])
            .args(["+timeout=3", "+retry=0", "www.example.test", "A"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("status: NOERROR") && shown.contains("192.0.2.10"),
            "kdig {mode}: {shown}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_large_answer_comes_whole() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, cert) = start(&unbound, dir.path());
    // The huge TXT (about 39 KB): whole over HTTP/2 and HTTP/1.1, after the relay's TCP fallback.
    for version in ["--http2", "--http1.1"] {
        let path = format!("/dns-query?dns={}", query_b64("huge.example.test.", RecordType::TXT));
        let (code, head, answer) = split(&curl(doh, &cert, &path, &[version]));
        assert_eq!(code, 200, "{version}: {head}");
        assert!(answer.len() > 32_768, "{version}: a {}-octet answer", answer.len());
        assert_eq!(support::txt_records(&support::parse(&answer)).len(), support::unbound::HUGE_TXT_RECORDS);
    }
}

/// The HPACK decoder of the raw HTTP/2 client on RFC 7541's examples: C.4.1 (a Huffman string)
/// and C.6.1-C.6.3 (responses with Huffman coding, the dynamic table filling and evicting at 256
/// octets).
#[test]
fn h2raw_hpack_decodes_the_rfc_examples() {
    use support::h2raw::{huffman_decode, Decoder};
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    assert_eq!(huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(), b"www.example.com");
    let mut decoder = Decoder::new();
    // The examples' dynamic table holds 256 octets: a size update first.
    let mut first = vec![0x3f, 0xe1, 0x01];
    first.extend(hex(
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718
         63c7 8f0b 97c8 e9ae 82ae 43d3",
    ));
    let date = "Mon, 21 Oct 2013 20:13:21 GMT";
    let fields = decoder.decode(&first).unwrap();
    let want =
        [(":status", "302"), ("cache-control", "private"), ("date", date), ("location", "https://www.example.com")];
    assert_eq!(fields, want.map(|(n, v)| (n.to_owned(), v.to_owned())));
    let fields = decoder.decode(&hex("4883 640e ff c1 c0 bf")).unwrap();
    let want =
        [(":status", "307"), ("cache-control", "private"), ("date", date), ("location", "https://www.example.com")];
    assert_eq!(fields, want.map(|(n, v)| (n.to_owned(), v.to_owned())));
}

/// The raw HTTP/2 client against dotgate: a GET and a POST on one connection, both answered on
/// their streams; then statuses outside HPACK's static table (405, 415) and a second round of
/// answers, whose headers the server now sends from its dynamic table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2raw_get_and_post_on_one_connection() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = start_with(backend.addr, dir.path(), &[]);
    let mut h2 = H2Client::connect(doh).await.expect("HTTP/2 over TLS");
    assert!(h2.server_setting(h2raw::SETTINGS_MAX_CONCURRENT_STREAMS).is_some(), "{:?}", h2.server_settings);
    for round in 0..2 {
        let get = h2.get_dns("/dns-query", &support::query("get.example.", RecordType::A, 0)).await.unwrap();
        let post = h2.post_dns("/dns-query", &support::query("post.example.", RecordType::TXT, 0)).await.unwrap();
        assert_ne!(get, post);
        let mut answered = h2.responses(&[get, post], T).await.expect("both answers");
        answered.sort_by_key(|r| r.stream);
        for (response, name) in answered.iter().zip(["get.example.", "post.example."]) {
            assert_eq!(response.status, 200, "round {round}: {response:?}");
            assert_eq!(response.header("content-type"), Some("application/dns-message"), "round {round}");
            assert_eq!(response.header("cache-control"), Some("max-age=300"), "round {round}");
            assert_eq!(response.header("content-length"), Some(response.body.len().to_string().as_str()));
            let answer = support::parse(&response.body);
            assert_eq!(answer.id(), 0);
            assert_eq!(answer.queries()[0].name().to_string(), name, "round {round}: each stream its own answer");
        }
        assert_eq!(support::a_records(&support::parse(&answered[0].body)), vec![fake_backend::NORMAL_A]);
        assert_eq!(support::txt_records(&support::parse(&answered[1].body)), vec![b"hello".to_vec()]);
        let put = h2.next_stream_id();
        let fields = h2.request_fields("PUT", "/dns-query");
        h2.headers(put, &fields, true).await.unwrap();
        assert_eq!(h2.response(put, T).await.unwrap().status, 405, "round {round}");
        let text = h2.post("/dns-query", "text/plain", b"x").await.unwrap();
        assert_eq!(h2.response(text, T).await.unwrap().status, 415, "round {round}");
    }
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
}

// ---------------------------------------------------------------------------
// HTTP/1.1 by hand

/// An HTTP/1.1 connection over TLS (ALPN "http/1.1"), written and read by hand.
struct Http1 {
    tls: DotClient,
    buf: Vec<u8>,
}

/// One HTTP/1.1 response: its status, its head (lowercase) and its body.
struct Http1Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Http1Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
    }
}

impl Http1 {
    async fn connect(doh: SocketAddr) -> Http1 {
        let opts = ClientOptions {
            alpn: vec![b"http/1.1".to_vec()],
            server_name: "localhost".into(),
            ..ClientOptions::default()
        };
        let tls = DotClient::connect_with(doh, &opts).await.expect("TLS with ALPN http/1.1");
        assert_eq!(tls.negotiated_alpn().as_deref(), Some(&b"http/1.1"[..]));
        Http1 { tls, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tls.send_raw(bytes).await.expect("write the requests");
    }

    /// The next whole response (its body by Content-Length), within `timeout`.
    async fn response(&mut self, timeout: Duration) -> Http1Response {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status line");
                let mut response = Http1Response { status, head, body: Vec::new() };
                let length: usize = response.header("content-length").map_or(0, |v| v.parse().expect("a length"));
                if self.buf.len() >= end + length {
                    response.body = self.buf[end..end + length].to_vec();
                    self.buf.drain(..end + length);
                    return response;
                }
            }
            let read = tokio::time::timeout_at(deadline, self.tls.get_mut().read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                other => panic!("HTTP/1.1 response not whole ({} octets): {other:?}", self.buf.len()),
            }
        }
    }
}

impl Http1 {
    /// True if the server ends the connection (TLS close, EOF or reset) within `timeout`, with
    /// nothing more sent.
    async fn closes_within(&mut self, timeout: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(timeout, self.tls.get_mut().read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!("{n} octets after the last response: {:?}", String::from_utf8_lossy(&chunk[..n])),
            Err(_) => false,
        }
    }
}

/// An HTTP/1.1 GET of the DNS query for `name` (ID 0).
fn http1_get(name: &str, rtype: RecordType) -> String {
    format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: localhost\r\nAccept: application/dns-message\r\n\r\n",
        query_b64(name, rtype)
    )
}

/// The question name of a DNS answer.
fn question_of(answer: &[u8]) -> String {
    support::parse(answer).queries()[0].name().to_string()
}

/// Three GETs pipelined in one write on one HTTP/1.1 connection: three responses in the order of
/// the requests (the first one's answer is the slowest to come from the backend), each 200 with
/// its own answer, and the connection stays open for a fourth after a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_pipelined_requests_are_answered_in_order() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = start_with(backend.addr, dir.path(), &[]);
    let mut http = Http1::connect(doh).await;
    let names = ["delay-300.first.example.", "delay-50.second.example.", "third.example."];
    let pipelined: String = names.iter().map(|name| http1_get(name, RecordType::A)).collect();
    http.send(pipelined.as_bytes()).await;
    for name in names {
        let response = http.response(T).await;
        assert_eq!(response.status, 200, "{name}: {}", response.head);
        assert!(!response.head.contains("connection: close"), "{name}: {}", response.head);
        assert_eq!(response.header("content-type"), Some("application/dns-message"));
        assert_eq!(question_of(&response.body), name, "in the order of the requests");
        assert_eq!(support::parse(&response.body).id(), 0);
        assert_eq!(support::a_records(&support::parse(&response.body)), vec![fake_backend::NORMAL_A]);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    http.send(http1_get("fourth.example.", RecordType::A).as_bytes()).await;
    let response = http.response(T).await;
    assert_eq!((response.status, question_of(&response.body)), (200, "fourth.example.".to_owned()));
}

// ---------------------------------------------------------------------------
// Drain

/// Waits until `backend` holds a query (a `delay-` one), then sends dotgate SIGTERM: when.
async fn sigterm_with_a_query_in_flight(backend: &support::FakeBackend, dotgate: &Dotgate) -> Instant {
    let deadline = Instant::now() + T;
    while backend.in_flight() == 0 {
        assert!(Instant::now() < deadline, "the query never reached the backend");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    dotgate.signal(libc::SIGTERM);
    signalled
}

/// SIGTERM with a query in flight on an HTTP/2 connection: the client is told GOAWAY at once,
/// then gets its answer (200 and the DNS answer), then the connection closes and dotgate exits
/// 0; `/readyz` says "draining" meanwhile (as for DoT); a new connection after SIGTERM is
/// refused or told GOAWAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_http2_goaway_then_the_answer_in_flight_then_close() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = support::ports::free_addr();
    let admin_arg = admin.to_string();
    let (mut dotgate, doh, _) =
        start_with(backend.addr, dir.path(), &["--admin", &admin_arg, "--upstream-timeout", "8"]);
    let mut h2 = H2Client::connect(doh).await.unwrap();
    let stream =
        h2.get_dns("/dns-query", &support::query("delay-3000.drain.example.", RecordType::A, 0)).await.unwrap();
    let signalled = sigterm_with_a_query_in_flight(&backend, &dotgate).await;

    // The answer is 3 s away: meanwhile, readiness and new connections.
    let ready = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let got = support::http::get(admin, "/readyz");
            if got.0 == 503 || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert_eq!(ready, (503, "not ready: draining\n".to_owned()));
    match H2Client::connect(doh).await {
        Err(_) => {} // refused, or closed before the HTTP/2 settings
        Ok(mut late) => loop {
            match late.read_frame(T).await {
                Read::Frame(f) if f.kind == h2raw::GOAWAY => break,
                Read::Frame(f) if f.kind == h2raw::HEADERS => panic!("served after SIGTERM: {f:?}"),
                Read::Frame(_) => continue,
                Read::Closed => break,
                Read::Timeout => panic!("a connection after SIGTERM was neither refused nor told GOAWAY"),
            }
        },
    }
    assert!(signalled.elapsed() < Duration::from_millis(2500), "the checks took too long to mean anything");

    // The draining connection: GOAWAY first, then the answer, then the end.
    let (mut goaway, mut status, mut body, mut answered) = (None, None, Vec::new(), false);
    loop {
        match h2.read_frame(T).await {
            Read::Frame(f) => match f.kind {
                h2raw::GOAWAY => {
                    assert!(goaway.is_some() || !answered, "GOAWAY came first");
                    let (last, code) = f.goaway().unwrap();
                    assert_eq!(code, h2raw::NO_ERROR);
                    assert!(last >= stream, "the stream in flight is kept: last stream {last}");
                    goaway.get_or_insert(last);
                }
                h2raw::PING if !f.has(h2raw::ACK) => {
                    h2.ping(f.payload.clone().try_into().unwrap(), true).await.unwrap()
                }
                h2raw::HEADERS if f.stream == stream => status = f.status(),
                h2raw::DATA if f.stream == stream => {
                    body.extend_from_slice(&f.payload);
                    answered = f.has(h2raw::END_STREAM);
                }
                h2raw::RST_STREAM => panic!("stream {} reset: {:?}", f.stream, f.rst_code()),
                _ => {}
            },
            Read::Closed => break,
            Read::Timeout => panic!("the draining connection neither answered nor closed"),
        }
    }
    assert!(goaway.is_some(), "no GOAWAY");
    assert!(answered, "the answer in flight was not sent before the close");
    assert_eq!(status, Some(200));
    assert_eq!(question_of(&body), "delay-3000.drain.example.");
    assert_eq!(support::a_records(&support::parse(&body)), vec![fake_backend::NORMAL_A]);
    assert!(signalled.elapsed() >= Duration::from_millis(2500), "the answer came after its delay");
    let exit = dotgate.wait_exit(T);
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", dotgate.stderr());
}

/// SIGTERM for HTTP/1.1 and idle connections: an HTTP/1.1 request in flight gets its answer, then
/// the connection closes; an idle HTTP/1.1 connection is closed at once, an idle HTTP/2 one told
/// GOAWAY and closed, without waiting for the answer still in flight elsewhere; dotgate exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_http11_and_closes_idle_connections_at_once() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut dotgate, doh, _) = start_with(backend.addr, dir.path(), &["--upstream-timeout", "8"]);
    let mut idle_http1 = Http1::connect(doh).await;
    idle_http1.send(http1_get("idle.example.", RecordType::A).as_bytes()).await;
    assert_eq!(idle_http1.response(T).await.status, 200);
    let mut idle_h2 = H2Client::connect(doh).await.unwrap();
    let stream = idle_h2.get_dns("/dns-query", &support::query("idle.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(idle_h2.response(stream, T).await.unwrap().status, 200);
    let mut busy = Http1::connect(doh).await;
    busy.send(http1_get("delay-3000.busy.example.", RecordType::A).as_bytes()).await;
    let signalled = sigterm_with_a_query_in_flight(&backend, &dotgate).await;

    // The idle ones go at once: well before the busy one's answer, 3 s away.
    let soon = Duration::from_millis(2000);
    assert!(idle_http1.closes_within(soon).await, "an idle HTTP/1.1 connection stays open while draining");
    let goaway = idle_h2
        .goaway_then_close(soon.saturating_sub(signalled.elapsed()))
        .await
        .expect("an idle HTTP/2 connection stays open while draining");
    assert_eq!(goaway.map(|(_, code)| code), Some(h2raw::NO_ERROR), "GOAWAY before the close");
    assert!(
        signalled.elapsed() < Duration::from_millis(2500),
        "the idle ones closed only after {:?}",
        signalled.elapsed()
    );

    let response = busy.response(T).await;
    assert_eq!((response.status, question_of(&response.body)), (200, "delay-3000.busy.example.".to_owned()));
    assert!(busy.closes_within(T).await, "the HTTP/1.1 connection stays open after its last answer");
    let exit = dotgate.wait_exit(T);
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", dotgate.stderr());
}

// ---------------------------------------------------------------------------
// The largest answers

/// The largest answers: 65,507 octets (the most a UDP datagram carries) and 65,535 (the most a
/// DNS message holds, over the relay's TCP fallback after TC=1), whole over HTTP/2 (curl and the
/// raw client) and HTTP/1.1, octet for octet what the backend sent, with the right
/// Content-Length. With HTTP/2's default windows
/// (65,535 octets, stream and connection), a 65,535-octet answer fills them exactly, and a second
/// one comes once the connection's window is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64k_answer_comes_whole_over_http2_and_http11() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, cert) = start_with(backend.addr, dir.path(), &["--upstream-timeout", "5"]);
    // What the backend itself answers over TCP (the same octets it sends over UDP): the answer
    // must arrive as it is, octet for octet.
    let from_backend = |name: &'static str| {
        let query = support::query(name, RecordType::TXT, 0);
        async move { support::client::tcp_exchange(backend.addr, &query, T).await.expect("the backend over TCP") }
    };
    let check = |how: &str, want: &[u8], answer: &[u8], length: Option<&str>| {
        assert_eq!(answer.len(), want.len(), "{how}");
        assert_eq!(length, Some(want.len().to_string().as_str()), "{how}: Content-Length");
        assert!(answer == want, "{how}: not the backend's answer");
        assert!(support::txt_records(&support::parse(answer)).len() > 200, "{how}");
    };
    for (name, size) in [("big-65507.example.", 65_507), ("tc-65535.example.", 65_535)] {
        let want = from_backend(name).await;
        assert_eq!(want.len(), size);
        let path = format!("/dns-query?dns={}", query_b64(name, RecordType::TXT));
        for version in ["--http2", "--http1.1"] {
            let out = tokio::task::spawn_blocking({
                let (cert, path) = (cert.clone(), path.clone());
                move || curl(doh, &cert, &path, &[version])
            })
            .await
            .unwrap();
            let (code, head, answer) = split(&out);
            assert_eq!(code, 200, "{name} {version}: {head}");
            let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(str::trim);
            check(&format!("{name} curl {version}"), &want, &answer, length);
        }
        let mut h2 = H2Client::connect(doh).await.unwrap();
        let stream = h2.get(&path).await.unwrap();
        let response = h2.response(stream, T).await.unwrap();
        check(&format!("{name} h2raw"), &want, &response.body, response.header("content-length"));
        let mut http = Http1::connect(doh).await;
        http.send(http1_get(name, RecordType::TXT).as_bytes()).await;
        let response = http.response(T).await;
        check(&format!("{name} HTTP/1.1 by hand"), &want, &response.body, response.header("content-length"));
    }
    let default_windows = h2raw::H2Options { settings: Vec::new(), connection_window: 0, ..Default::default() };
    let mut h2 = H2Client::connect_with(doh, &default_windows).await.unwrap();
    let want = from_backend("tc-65535.w.example.").await;
    for round in 0..2 {
        let stream =
            h2.get_dns("/dns-query", &support::query("tc-65535.w.example.", RecordType::TXT, 0)).await.unwrap();
        let response = h2.response(stream, T).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        check(&format!("default windows, round {round}"), &want, &response.body, response.header("content-length"));
    }
}

// ---------------------------------------------------------------------------
// Cache-Control

/// `Cache-Control: max-age=` is the smallest TTL of the answer's records; for NXDOMAIN and NODATA
/// the SOA's TTL or its MINIMUM, whichever is smaller (RFC 2308 §5), also when the SOA's TTL is
/// the larger (a backend that does not cap it, unlike Unbound); 0 for a TTL with the top bit set
/// (RFC 2181 §8) and for an answer with no record to go by (SERVFAIL, REFUSED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_the_smallest_ttl_or_the_negative_ttl() {
    use hickory_proto::op::ResponseCode;
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = start_with(backend.addr, dir.path(), &[]);
    let cases = [
        ("ttls-600-42.example.", ResponseCode::NoError, 42),
        ("ttls-42-600.example.", ResponseCode::NoError, 42),
        ("ttls-2147483648-600.example.", ResponseCode::NoError, 0),
        ("nx-900-60.example.", ResponseCode::NXDomain, 60),
        ("nx-30-600.example.", ResponseCode::NXDomain, 30),
        ("nodata-900-60.example.", ResponseCode::NoError, 60),
        ("nodata-30-600.example.", ResponseCode::NoError, 30),
        ("servfail.example.", ResponseCode::ServFail, 0),
        ("refused.example.", ResponseCode::Refused, 0),
    ];
    let mut h2 = H2Client::connect(doh).await.unwrap();
    let mut http = Http1::connect(doh).await;
    for (name, rcode, max_age) in cases {
        let want = format!("max-age={max_age}");
        let stream = h2.get_dns("/dns-query", &support::query(name, RecordType::A, 0)).await.unwrap();
        let response = h2.response(stream, T).await.unwrap();
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(support::parse(&response.body).response_code(), rcode, "{name}");
        assert_eq!(response.header("cache-control"), Some(want.as_str()), "{name} over HTTP/2");
        http.send(http1_get(name, RecordType::A).as_bytes()).await;
        let response = http.response(T).await;
        assert_eq!(response.header("cache-control"), Some(want.as_str()), "{name} over HTTP/1.1");
    }
}

// ---------------------------------------------------------------------------
// ACLs and limits

/// True when the server closes a fresh TCP connection to `doh` from `source` without waiting
/// for the rest of its ClientHello: refused at accept, before TLS.
async fn refused_before_tls(doh: SocketAddr, source: &str) -> bool {
    let mut tcp = support::client::tcp_connect_from(doh, source.parse().unwrap()).await.unwrap();
    tcp.write_all(&[0x16]).await.unwrap();
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut byte)).await, Ok(Ok(0)) | Ok(Err(_)))
}

fn from(source: &str) -> h2raw::H2Options {
    h2raw::H2Options { from: Some(source.parse().unwrap()), ..Default::default() }
}

/// `--deny 127.0.0.3 --allow 127.0.0.0/8` holds for DoH: 127.0.0.3's connection is closed
/// before TLS, 127.0.0.2's is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_client_is_closed_before_tls_over_doh() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (dotgate, doh, _) = start_with(backend.addr, dir.path(), &["--deny", "127.0.0.3", "--allow", "127.0.0.0/8"]);
    assert!(refused_before_tls(doh, "127.0.0.3").await, "{}", dotgate.stderr());
    assert!(H2Client::connect_with(doh, &from("127.0.0.3")).await.is_err(), "no TLS for a denied client");
    assert!(!refused_before_tls(doh, "127.0.0.2").await);
    let mut h2 = H2Client::connect_with(doh, &from("127.0.0.2")).await.expect("an allowed client");
    let stream = h2.get_dns("/dns-query", &support::query("acl.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(h2.response(stream, T).await.unwrap().status, 200);
}

/// `--max-qps-per-client 5` holds for DoH: thirty queries at once from one client get 200s, the
/// burst's worth answered and the rest REFUSED with EDE 18 "rate limited" (as over DoT); another
/// client meanwhile is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_query_rate_gets_refused_in_a_200() {
    use hickory_proto::op::ResponseCode;
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = start_with(backend.addr, dir.path(), &["--max-qps-per-client", "5"]);
    let mut h2 = H2Client::connect(doh).await.unwrap();
    let mut streams = Vec::new();
    for i in 0..30 {
        let query = support::query_edns(&format!("rate{i}.example."), RecordType::A, 0, false, false, vec![]);
        streams.push(h2.post_dns("/dns-query", &query).await.unwrap());
    }
    let (mut answered, mut limited) = (0, 0);
    for response in h2.responses(&streams, T).await.unwrap() {
        assert_eq!(response.status, 200);
        match support::parse(&response.body).response_code() {
            ResponseCode::NoError => answered += 1,
            ResponseCode::Refused => {
                let ede = support::client::ede_options(&response.body);
                assert_eq!(ede, vec![(18, "rate limited".to_owned())], "REFUSED says why");
                limited += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!((5..=15).contains(&answered), "{answered} answered, {limited} refused");
    assert!(limited >= 15, "{answered} answered, {limited} refused");
    let mut other = H2Client::connect_with(doh, &from("127.0.0.2")).await.unwrap();
    let stream = other.get_dns("/dns-query", &support::query("other.example.", RecordType::A, 0)).await.unwrap();
    let response = other.response(stream, T).await.unwrap();
    assert_eq!(support::parse(&response.body).response_code(), ResponseCode::NoError, "another client");
}

/// `--max-connections-per-ip 2` counts DoT and DoH connections together: with one of each held
/// from 127.0.0.1, a third (DoH or DoT) is closed before TLS; 127.0.0.2 has its own allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_connection_limit_holds_for_doh() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (dotgate, doh, _) = start_with(backend.addr, dir.path(), &["--max-connections-per-ip", "2"]);
    // dotgate's readiness probe was a connection too: let it go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held_doh = H2Client::connect(doh).await.unwrap();
    let stream = held_doh.get_dns("/dns-query", &support::query("held.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(held_doh.response(stream, T).await.unwrap().status, 200);
    let mut held_dot = DotClient::connect(dotgate.addr).await.unwrap();
    held_dot.exchange(&support::query("held.example.", RecordType::A, 1)).await;
    assert!(refused_before_tls(doh, "127.0.0.1").await, "a third connection over DoH");
    assert!(refused_before_tls(dotgate.addr, "127.0.0.1").await, "a third connection over DoT");
    assert!(H2Client::connect(doh).await.is_err());
    let mut other = H2Client::connect_with(doh, &from("127.0.0.2")).await.expect("another address");
    let stream = other.get_dns("/dns-query", &support::query("other.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(other.response(stream, T).await.unwrap().status, 200);
    // The held connections are unharmed.
    let stream = held_doh.get_dns("/dns-query", &support::query("still.example.", RecordType::A, 0)).await.unwrap();
    assert_eq!(held_doh.response(stream, T).await.unwrap().status, 200);
    held_dot.exchange(&support::query("still.example.", RecordType::A, 2)).await;
}

// ---------------------------------------------------------------------------
// HTTP/2 streams and errors

/// HTTP/2 streams of one connection are answered as they complete, not in the order asked, and
/// the server announces `--max-in-flight` as SETTINGS_MAX_CONCURRENT_STREAMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_are_answered_as_they_complete() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_dotgate, doh, _) = start_with(backend.addr, dir.path(), &["--max-in-flight", "7"]);
    let mut h2 = H2Client::connect(doh).await.unwrap();
    assert_eq!(h2.server_setting(h2raw::SETTINGS_MAX_CONCURRENT_STREAMS), Some(7), "{:?}", h2.server_settings);
    let mut streams = Vec::new();
    for name in ["delay-1200.slow.example.", "fast.example.", "delay-400.middle.example."] {
        streams.push(h2.get_dns("/dns-query", &support::query(name, RecordType::A, 0)).await.unwrap());
    }
    let answered = h2.responses(&streams, T).await.unwrap();
    let order: Vec<String> = answered.iter().map(|r| question_of(&r.body)).collect();
    assert_eq!(order, ["fast.example.", "delay-400.middle.example.", "delay-1200.slow.example."]);
    let by_stream: Vec<u32> = answered.iter().map(|r| r.stream).collect();
    assert_eq!(by_stream, [streams[1], streams[2], streams[0]]);
}

/// Every error status over HTTP/2, all on one connection: each a whole response on its own
/// stream (the status, no body, the stream ended), the connection answering the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_over_http2_leaves_the_connection_usable() {
    let backend = support::FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (dotgate, doh, _) = start_with(backend.addr, dir.path(), &[]);
    let mut h2 = H2Client::connect(doh).await.unwrap();
    let good = support::query("good.example.", RecordType::A, 0);
    // A POST body the server's windows take whole: the test writes DATA without watching them.
    let window = h2.server_setting(h2raw::SETTINGS_INITIAL_WINDOW_SIZE).unwrap_or(65_535);
    let too_big = vec![0u8; 65_536];
    for round in 0..2 {
        let mut cases: Vec<(&str, u32, u16)> = vec![
            ("bad base64url", h2.get("/dns-query?dns=!!!").await.unwrap(), 400),
            ("shorter than a header", h2.get("/dns-query?dns=AAAA").await.unwrap(), 400),
            ("another path", h2.get("/other").await.unwrap(), 404),
            ("another content type", h2.post("/dns-query", "text/plain", &good).await.unwrap(), 415),
        ];
        let put = h2.next_stream_id();
        let fields = h2.request_fields("PUT", "/dns-query");
        h2.headers(put, &fields, true).await.unwrap();
        cases.push(("another method", put, 405));
        if window as usize > too_big.len() {
            cases.push(("a body over 65,535 octets", h2.post_dns("/dns-query", &too_big).await.unwrap(), 413));
        }
        for (what, stream, want) in cases {
            let response = h2.response(stream, T).await.unwrap_or_else(|e| {
                panic!("round {round}, {what}: {e}; GOAWAYs {:?}; {}", h2.goaways, dotgate.stderr())
            });
            assert_eq!(response.status, want, "round {round}, {what}: {response:?}");
            assert!(response.body.is_empty(), "round {round}, {what}: {response:?}");
        }
        let stream = h2.get_dns("/dns-query", &good).await.unwrap();
        let response = h2.response(stream, T).await.unwrap();
        assert_eq!((response.status, question_of(&response.body)), (200, "good.example.".to_owned()), "round {round}");
    }
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
    assert!(window as usize > too_big.len(), "the server's stream window ({window}) is too small for the 413 case");
}
