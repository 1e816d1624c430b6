//! The DNSENC client tools end to end, as an operator runs them: `dotgate dnsenc keygen`, then
//! dotgate with that key in front of a real Unbound, then `dotgate dnsenc query` (over UDP, over
//! TCP, after a TC=1 envelope, without a key, with another server's key) and `dotgate dnsenc
//! load`, each checked by what it prints and its exit status.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Dotgate, Unbound};

/// The built binary with `args`, to completion.
fn dotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dotgate")).args(args).output().expect("run dotgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `dotgate dnsenc keygen --scheme SCHEME` into `dir`: the key file, and a file holding what it
/// printed (the NSK for `--nsk`).
fn keygen(dir: &Path, scheme: &str) -> (PathBuf, PathBuf) {
    let keys = dir.join(format!("keys-{scheme}"));
    std::fs::create_dir(&keys).unwrap();
    let out = dotgate(&["dnsenc", "keygen", "--scheme", scheme, "--out", keys.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "keygen: {}", stderr(&out));
    let nsk = dir.join(format!("nsk-{scheme}.txt"));
    std::fs::write(&nsk, &out.stdout).unwrap();
    let key = std::fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    (key, nsk)
}

/// Unbound, and dotgate in front of it with a new x25519 key on a DNSENC port.
struct Setup {
    _unbound: Unbound,
    _dotgate: Dotgate,
    dir: tempfile::TempDir,
    nsk: PathBuf,
    dnsenc: SocketAddr,
}

impl Setup {
    fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (key, nsk) = keygen(dir.path(), "x25519");
        let unbound = Unbound::start();
        let dnsenc = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
        let dotgate = Dotgate::start(
            &[unbound.addr],
            &["--dnsenc-listen", &dnsenc.to_string(), "--dnsenc-key", key.to_str().unwrap(), "--workers", "1"],
        );
        Setup { _unbound: unbound, _dotgate: dotgate, dir, nsk, dnsenc }
    }

    /// `dotgate dnsenc load -s DNSENC --nsk NSK -f QUERIES EXTRA...`.
    fn load(&self, queries: &Path, extra: &[&str]) -> Output {
        let server = self.dnsenc.to_string();
        let mut args = vec!["dnsenc", "load", "-s", &server, "--nsk", self.nsk.to_str().unwrap()];
        args.extend(["-f", queries.to_str().unwrap()]);
        args.extend_from_slice(extra);
        dotgate(&args)
    }

    /// `dotgate dnsenc query @DNSENC NAME TYPE --nsk NSK EXTRA...`.
    fn query(&self, name: &str, qtype: &str, extra: &[&str]) -> Output {
        let server = format!("@{}", self.dnsenc);
        let mut args = vec!["dnsenc", "query", &server, name, qtype, "--nsk", self.nsk.to_str().unwrap()];
        args.extend_from_slice(extra);
        dotgate(&args)
    }
}

/// The key id `keygen` gave the NSK in `nsk_file`.
fn key_id(nsk_file: &Path) -> String {
    let text = std::fs::read_to_string(nsk_file).unwrap();
    let line = text.lines().find(|l| l.starts_with("NSK ")).expect("an NSK line");
    line.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn query_prints_the_answer_as_dig_does_over_udp_and_over_tcp() {
    let setup = Setup::start();
    let id = key_id(&setup.nsk);
    for (extra, transport) in [(&[][..], "UDP"), (&["--tcp"][..], "TCP")] {
        let out = setup.query("www.example.test", "A", extra);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{transport}: {text}{}", stderr(&out));
        assert!(text.contains(";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: "), "{text}");
        assert!(text.contains(";www.example.test.\t\tIN\tA\n"), "{text}");
        assert!(text.contains("\n;; ANSWER SECTION:\nwww.example.test.\t300\tIN\tA\t192.0.2.10\n"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(last.starts_with(&format!(";; DNSENC: scheme x25519, key id {id}, over {transport}, ")), "{last}");
        assert!(last.ends_with(" received"), "{last}");
    }
}

/// An answer over 1,232 bytes comes as a clear TC=1 envelope over UDP; the client asks again
/// over TCP and prints it whole.
#[test]
fn query_asks_again_over_tcp_after_a_truncated_envelope() {
    let setup = Setup::start();
    let out = setup.query("big.example.test", "TXT", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let records = text.lines().filter(|l| l.starts_with("big.example.test.\t300\tIN\tTXT\t\"")).count();
    assert_eq!(records, support::unbound::BIG_TXT_RECORDS, "{text}");
    for i in 0..support::unbound::BIG_TXT_RECORDS {
        assert!(text.contains(&format!("\"{}\"", support::unbound::txt_text('b', i))), "record {i}: {text}");
    }
    assert!(text.contains(", over TCP after TC=1, "), "{text}");
}

#[test]
fn query_without_a_key_source_is_one_line_and_exit_2() {
    let setup = Setup::start();
    let server = format!("@{}", setup.dnsenc);
    for (args, says) in [
        (vec!["dnsenc", "query", &server, "www.example.test"], "give --trust-anchor FILE"),
        (
            vec!["dnsenc", "query", &server, "www.example.test", "A", "--trust-anchor", "/nonexistent/root.key"],
            "/nonexistent/root.key",
        ),
    ] {
        let out = dotgate(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert_eq!(stdout(&out), "", "nothing else is tried");
    }
}

/// A server whose resolver has no NSK at the reverse name (Unbound answers its own
/// 127.in-addr.arpa. locally): the client says so, exits 1, and asks nothing encrypted.
#[test]
fn query_with_a_trust_anchor_and_no_published_key_fails_and_falls_back_to_nothing() {
    let setup = Setup::start();
    let anchor = setup.dir.path().join("root.key");
    std::fs::write(&anchor, ". IN DS 20326 8 2 e06d44b80b8f1d39a95c0b0d7c65d08458e880409bbc683457104237c7f8ec8d\n")
        .unwrap();
    let server = format!("@{}", setup.dnsenc);
    let out = dotgate(&["dnsenc", "query", &server, "www.example.test", "--trust-anchor", anchor.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("has no NSK record at 1.0.0.127.in-addr.arpa.: the server's key is not published there"),
        "{err}"
    );
    assert_eq!(stdout(&out), "", "no answer printed: nothing was asked");
}

/// Another key's NSK: dotgate answers BADCRYPT in the clear; the client says so and fails.
#[test]
fn query_with_another_servers_key_gets_badcrypt_and_exit_1() {
    let setup = Setup::start();
    let (_, other) = keygen(setup.dir.path(), "rsa2048");
    let server = format!("@{}", setup.dnsenc);
    let out = dotgate(&["dnsenc", "query", &server, "www.example.test", "--nsk", other.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("answered BADCRYPT (3841)"), "{err}");
    assert_eq!(stdout(&out), "");
}

/// One number from the summary line that starts with `label`: the first token after it.
fn number(summary: &str, label: &str) -> f64 {
    let line = summary.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}"));
    let value = line.trim_start()[label.len()..].split_whitespace().next().unwrap().trim_end_matches(',');
    value.parse().unwrap_or_else(|_| panic!("{label} {value:?} in {summary}"))
}

#[test]
fn load_sends_at_the_rate_asked_and_loses_nothing() {
    let setup = Setup::start();
    let queries = setup.dir.path().join("queries.txt");
    std::fs::write(&queries, "www.example.test A\nwww.example.test AAAA\nmixed.example.test A\n").unwrap();
    let out = setup.load(&queries, &["-l", "2", "-c", "5", "-Q", "500"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let sent = number(&text, "Queries sent:");
    let completed = number(&text, "Queries completed:");
    assert!((900.0..=1001.0).contains(&sent), "about 1,000: {text}");
    assert_eq!(completed, sent, "{text}");
    assert_eq!(number(&text, "Queries lost:"), 0.0, "{text}");
    assert_eq!(number(&text, "Queries truncated:"), 0.0, "{text}");
    assert!(text.contains(&format!("Response codes:       NOERROR {completed} (100.00%)")), "{text}");
    let run_time = number(&text, "Run time (s):");
    assert!((2.0..3.0).contains(&run_time), "{text}");
    let qps = number(&text, "Queries per second:");
    assert!((350.0..=510.0).contains(&qps), "{text}");
    let (average, p50, p99) = (
        number(&text, "Average Latency (ms):"),
        number(&text, "Latency p50 (ms):"),
        number(&text, "Latency p99 (ms):"),
    );
    assert!(0.0 < p50 && p50 <= p99 && average <= p99 * 2.0 && p99 < 2000.0, "{text}");
    // x25519: the envelope adds its header, question, OPT record, key id and HPKE's 48 bytes.
    let outer_query = number(&text, "Bytes per query:      outer");
    let outer_answer = number(&text, "Bytes per answer:     outer");
    let line = |label: &str| text.lines().find(|l| l.contains(label)).unwrap().to_owned();
    let inner = |label: &str| line(label).rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    let (inner_query, inner_answer) = (inner("Bytes per query:"), inner("Bytes per answer:"));
    assert!(inner_query > 40.0 && outer_query > inner_query + 100.0, "{text}");
    assert!(inner_answer > 40.0 && outer_answer > inner_answer + 60.0, "{text}");
}

/// `--prepared`: queries encrypted before the run and sent in turn are all answered (dotgate
/// keeps no state, so a query sent again is answered again), none lost.
#[test]
fn load_with_prepared_queries_is_answered_whole() {
    let setup = Setup::start();
    let queries = setup.dir.path().join("queries.txt");
    std::fs::write(&queries, "www.example.test A\nwww.example.test AAAA\n").unwrap();
    let out = setup.load(&queries, &["-l", "1", "-c", "4", "--prepared", "1000"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let sent = number(&text, "Queries sent:");
    assert!(sent > 1000.0, "more than the prepared set, so some were sent again: {text}");
    assert_eq!(number(&text, "Queries completed:"), sent, "{text}");
    assert_eq!(number(&text, "Queries lost:"), 0.0, "{text}");
    assert!(text.contains("Response codes:       NOERROR"), "{text}");
}

/// The code points are the operator's: a server on other values than the defaults answers a
/// client given the same values, refuses one on the defaults (its option is not the DNSENC
/// option there, so the envelope is a name under dnsenc.arpa. without it: REFUSED), and names
/// its own BADCRYPT.
#[test]
fn other_code_points_work_end_to_end_when_both_sides_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let (key, nsk) = keygen(dir.path(), "x25519");
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let (_, other_nsk) = keygen(&other_dir, "x25519");
    let unbound = Unbound::start();
    let dnsenc = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let codes = ["--dnsenc-nsk-type", "65400", "--dnsenc-option-code", "65111", "--dnsenc-badcrypt-rcode", "3900"];
    let mut args = vec!["--dnsenc-listen".to_owned(), dnsenc.to_string(), "--dnsenc-key".to_owned()];
    args.push(key.to_str().unwrap().to_owned());
    args.extend(codes.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _dotgate = Dotgate::start(&[unbound.addr], &args);
    let server = format!("@{dnsenc}");
    let ask = |nsk: &Path, extra: &[&str]| {
        let mut args = vec!["dnsenc", "query", &server, "www.example.test", "--nsk", nsk.to_str().unwrap()];
        args.extend_from_slice(extra);
        dotgate(&args)
    };
    let out = ask(&nsk, &codes);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("www.example.test."), "{}", stdout(&out));
    let out = ask(&nsk, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("answered REFUSED"), "{}", stderr(&out));
    let out = ask(&other_nsk, &codes);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("answered BADCRYPT (3900)"), "{}", stderr(&out));
}
