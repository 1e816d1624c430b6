//! DNS over HTTPS (RFC 8484, issue 18) in front of a real Unbound: curl over HTTP/2 and
//! HTTP/1.1 with GET and POST, kdig's `+https`; every HTTP error status; `Cache-Control`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::rr::RecordType;
use support::h2raw::{self, H2Client};
use support::{fake_backend, Dotgate, Unbound};

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
    let (cert, key, _) = support::make_cert(dir);
    let doh = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut args =
        vec!["--doh-listen", &doh.to_string(), "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dotgate = Dotgate::start(&[backend], &args);
    (dotgate, doh, cert)
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
