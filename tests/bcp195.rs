//! TLS settings per BCP 195 (RFC 9325), checked from the outside with `openssl s_client`, the
//! way an auditor's scanner would: TLS 1.0 and 1.1 are refused; in TLS 1.2 only ECDHE key
//! exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305) is accepted, whatever the client
//! offers, for an ECDSA and for an RSA certificate; no compression; extended master secret.
//!
//! Every cipher OpenSSL knows for TLS 1.2 is offered alone, at security level 0 so that
//! OpenSSL itself refuses nothing: a weak suite dotgate accepted would show up here.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use support::{make_cert, Dotgate, FakeBackend};

/// What one s_client handshake got: the cipher and the lines an auditor reads, or nothing.
struct Outcome {
    cipher: Option<String>,
    output: String,
}

fn s_client(addr: SocketAddr, args: &[&str]) -> Outcome {
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &addr.to_string(), "-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client (install it with scripts/install-deps.sh)");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"; "(NONE)" when it failed.
    let cipher = output
        .lines()
        .find_map(|l| l.strip_prefix("New, ").and_then(|rest| rest.split("Cipher is ").nth(1)))
        .map(str::trim)
        .filter(|c| *c != "(NONE)")
        .map(str::to_owned);
    Outcome { cipher, output }
}

/// Every TLS 1.2 cipher suite this OpenSSL can offer, weak ones included.
fn all_tls12_ciphers() -> Vec<String> {
    let out = Command::new("openssl")
        .args(["ciphers", "-s", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"])
        .output()
        .expect("run openssl ciphers");
    assert!(out.status.success(), "openssl ciphers: {}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout).trim().split(':').map(str::to_owned).collect();
    // The point is to offer the bad ones too: make sure the list has them.
    for weak in ["AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"] {
        assert!(list.iter().any(|c| c == weak), "openssl offers no {weak}: {list:?}");
    }
    list
}

/// The TLS 1.2 suites dotgate accepts when each is offered alone.
fn accepted_tls12(addr: SocketAddr) -> BTreeSet<String> {
    let mut accepted = BTreeSet::new();
    for cipher in all_tls12_ciphers() {
        let outcome = s_client(addr, &["-tls1_2", "-cipher", &format!("{cipher}:@SECLEVEL=0")]);
        if let Some(got) = outcome.cipher {
            assert_eq!(got, cipher, "offered only {cipher}");
            accepted.insert(got);
        }
    }
    accepted
}

fn is_ecdhe_aead(cipher: &str) -> bool {
    cipher.starts_with("ECDHE-") && (cipher.contains("-GCM-") || cipher.ends_with("-CHACHA20-POLY1305"))
}

fn rsa_cert(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("rsa-cert.pem"), dir.join("rsa-key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ecdhe_with_aead_ciphers_is_accepted_in_tls_12() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (ecdsa_cert, ecdsa_key, _) = make_cert(dir.path());
    let (rsa_cert, rsa_key) = rsa_cert(dir.path());
    for (cert, key, expected) in [
        (
            ecdsa_cert.display().to_string(),
            ecdsa_key.display().to_string(),
            ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"],
        ),
        (
            rsa_cert,
            rsa_key,
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"],
        ),
    ] {
        let dotgate = Dotgate::start(&[backend.addr], &["--cert", &cert, "--key", &key, "--idle-timeout", "1"]);
        let addr = dotgate.addr;
        let accepted = tokio::task::spawn_blocking(move || accepted_tls12(addr)).await.unwrap();
        let weak: Vec<&String> = accepted.iter().filter(|c| !is_ecdhe_aead(c)).collect();
        assert!(weak.is_empty(), "{cert}: accepted suites outside ECDHE+AEAD: {weak:?}");
        let expected: BTreeSet<String> = expected.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(accepted, expected, "{cert}: the TLS 1.2 suites accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_10_and_11_are_refused_and_12_has_no_compression_and_an_extended_master_secret() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--idle-timeout", "1"]);
    let addr = dotgate.addr;
    let (old, tls12, tls13) = tokio::task::spawn_blocking(move || {
        let old: Vec<(&str, Outcome)> = ["-tls1", "-tls1_1"]
            .into_iter()
            .map(|flag| (flag, s_client(addr, &[flag, "-cipher", "DEFAULT:@SECLEVEL=0"])))
            .collect();
        (old, s_client(addr, &["-tls1_2"]), s_client(addr, &["-tls1_3"]))
    })
    .await
    .unwrap();
    for (flag, outcome) in old {
        assert_eq!(outcome.cipher, None, "{flag} was accepted:\n{}", outcome.output);
    }
    assert!(tls12.cipher.as_deref().is_some_and(is_ecdhe_aead), "TLS 1.2 failed:\n{}", tls12.output);
    assert!(tls12.output.contains("Compression: NONE"), "TLS 1.2 compression:\n{}", tls12.output);
    assert!(tls12.output.contains("Extended master secret: yes"), "TLS 1.2 without EMS:\n{}", tls12.output);
    // TLS 1.3 has only AEAD suites by definition; dotgate prefers AES-128-GCM.
    assert_eq!(tls13.cipher.as_deref(), Some("TLS_AES_128_GCM_SHA256"), "TLS 1.3:\n{}", tls13.output);
}
