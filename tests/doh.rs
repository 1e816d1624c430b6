//! DNS over HTTPS (RFC 8484, issue 18) in front of a real Unbound: curl over HTTP/2 and
//! HTTP/1.1 with GET and POST, kdig's `+https`; every HTTP error status; `Cache-Control`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use hickory_proto::rr::RecordType;
use support::{Dotgate, Unbound};

/// dotgate with DoT and DoH on free ports in front of `unbound`, and its certificate.
fn start(unbound: &Unbound, dir: &Path) -> (Dotgate, SocketAddr, std::path::PathBuf) {
    let (cert, key, _) = support::make_cert(dir);
    let doh = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let dotgate = Dotgate::start(
        &[unbound.addr],
        &["--doh-listen", &doh.to_string(), "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()],
    );
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
