//! End to end with the real things: Unbound and BIND as backends, and real DoT clients (the
//! rustls client, kdig +tls, dnsperf -m dot) over loopback. The tools are installed by
//! `scripts/install-deps.sh`; a missing one fails the test rather than skipping it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use support::{a_records, framed, parse, query, query_edns, txt_records, Bind, DotClient, Dotgate, Unbound};

async fn unbound() -> Unbound {
    tokio::task::spawn_blocking(Unbound::start).await.unwrap()
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(found.status.success(), "{name} is not installed: run scripts/install-deps.sh");
    Command::new(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_client_through_unbound_gets_real_answers() {
    let unbound = unbound().await;
    let dotgate = Dotgate::start(&[unbound.addr], &[]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();

    let a = parse(&client.exchange(&query("www.example.test.", RecordType::A, 1)).await);
    assert_eq!(a_records(&a), vec![support::unbound::WWW_A]);
    let aaaa = parse(&client.exchange(&query("www.example.test.", RecordType::AAAA, 2)).await);
    let got: Vec<String> = aaaa
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::AAAA(v6) => Some(v6.0.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![support::unbound::WWW_AAAA.to_string()]);
    let nx = parse(&client.exchange(&query("nope.example.test.", RecordType::A, 3)).await);
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    // Mixed case in the question: Unbound echoes it, dotgate matches it case-insensitively.
    let mixed = parse(&client.exchange(&query("MiXeD.ExAmPlE.TeSt.", RecordType::A, 4)).await);
    assert_eq!(a_records(&mixed), vec![support::unbound::MIXED_A]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_unbound_answer_is_completed_over_tcp() {
    let unbound = unbound().await;
    let dotgate = Dotgate::start(&[unbound.addr], &[]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // No EDNS: over UDP Unbound can only send 512 bytes and sets TC=1.
    let big = parse(&client.exchange(&query("big.example.test.", RecordType::TXT, 1)).await);
    assert!(!big.truncated());
    assert_eq!(txt_records(&big).len(), support::unbound::BIG_TXT_RECORDS);
    let huge = client.exchange(&query_edns("huge.example.test.", RecordType::TXT, 2, true, false, vec![])).await;
    assert!(huge.len() > 30_000, "huge answer is {} bytes", huge.len());
    assert_eq!(txt_records(&parse(&huge)).len(), support::unbound::HUGE_TXT_RECORDS);
}

/// Unbound writes its TCP answers with Nagle's algorithm on: an answer waits while the one
/// before is unacknowledged. Were dotgate to delay its ACKs (as Linux does on a connection of
/// requests and responses), the second of two truncated answers asked together would wait for
/// the delayed-ACK timer (40 ms) or the next query, and under load every TC fallback would
/// wait as long as the gap between fallbacks. dotgate acknowledges at once: both answers of
/// each pair come back in a few milliseconds, round after round on the one reused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_tc_fallbacks_are_not_held_by_delayed_acks() {
    let unbound = unbound().await;
    // Without the TCP memory, so that every pair is a pair of fallbacks (with it, the pairs after
    // the first go straight to TCP: the same pipelined connection, the same ACK question).
    let dotgate = Dotgate::start(&[unbound.addr], &["--workers", "1", "--tcp-memory-entries", "0"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let mut rounds = Vec::new();
    for round in 0..30u16 {
        let started = Instant::now();
        // Both queries in one record: dotgate sends both on its upstream TCP connection at once.
        let mut pair = framed(&query("big.example.test.", RecordType::TXT, 2 * round + 1));
        pair.extend(framed(&query("big.example.test.", RecordType::TXT, 2 * round + 2)));
        client.send_raw(&pair).await.unwrap();
        for _ in 0..2 {
            let answer = parse(&client.recv_timeout(Duration::from_secs(5)).await.unwrap().unwrap());
            assert_eq!(txt_records(&answer).len(), support::unbound::BIG_TXT_RECORDS);
        }
        rounds.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    rounds.sort();
    let median = rounds[rounds.len() / 2];
    assert!(
        median < Duration::from_millis(15),
        "two truncated answers took {median:?} (median of {} rounds; slowest {:?}): held by delayed ACKs",
        rounds.len(),
        rounds.last().unwrap()
    );
}

/// The TCP memory with a real resolver: a question Unbound truncates over UDP goes through one
/// TC fallback, then straight to TCP when asked again (in another case too: names compare
/// case-insensitively), with the whole answer; the same question with the DO bit is another
/// question and falls back once on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_unbound_truncated_goes_straight_to_tcp_when_asked_again() {
    let unbound = unbound().await;
    let admin = support::ports::free_addr();
    let dotgate = Dotgate::start(&[unbound.addr], &["--workers", "1", "--admin", &admin.to_string()]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let counts = || {
        let metric = |series| support::http::metric(admin, series);
        (metric("dotgate_upstream_tc_fallbacks_total"), metric("dotgate_upstream_tcp_direct_total"))
    };
    let cases = [
        // (name, DO bit, (TC fallbacks, straight to TCP) it adds)
        ("big.example.test.", false, (1.0, 0.0)),
        ("BiG.eXaMpLe.TeSt.", false, (0.0, 1.0)),
        ("big.example.test.", true, (1.0, 0.0)),
        ("bIg.ExAmPlE.tEsT.", true, (0.0, 1.0)),
        ("big.example.test.", false, (0.0, 1.0)),
    ];
    for (id, (name, do_bit, expect)) in (1u16..).zip(cases) {
        let before = counts();
        // Without EDNS Unbound can send 512 bytes over UDP; with it (1232 bytes advertised),
        // 1232: the ~3,190-byte answer is truncated either way.
        let q = if do_bit {
            query_edns(name, RecordType::TXT, id, true, false, vec![])
        } else {
            query(name, RecordType::TXT, id)
        };
        let answer = parse(&client.exchange(&q).await);
        assert!(!answer.truncated(), "{name}");
        assert_eq!(answer.id(), id);
        assert_eq!(txt_records(&answer).len(), support::unbound::BIG_TXT_RECORDS, "{name} DO={do_bit}");
        let after = counts();
        assert_eq!((after.0 - before.0, after.1 - before.1), expect, "{name} DO={do_bit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_backend_smoke() {
    let bind = tokio::task::spawn_blocking(Bind::start).await.unwrap();
    let dotgate = Dotgate::start(&[bind.addr], &[]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let answer = parse(&client.exchange(&query("www.example.test.", RecordType::A, 9)).await);
    assert_eq!(a_records(&answer), vec![support::bind::WWW_A]);
    assert!(answer.authoritative());
}

/// kdig asks for padding and edns-tcp-keepalive (option 11) as a privacy client would: the answer
/// comes padded to 468 bytes and states dotgate's idle timeout (10 s = 100 units of 100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_gets_padded_answers_and_the_keepalive_timeout() {
    let unbound = unbound().await;
    let dotgate = Dotgate::start(&[unbound.addr], &["--idle-timeout", "10"]);
    let port = dotgate.addr.port().to_string();
    let mut kdig = tool("kdig");
    kdig.args(["@127.0.0.1", "-p", &port, "+tls", "+padding", "+ednsopt=11", "+timeout=5", "+retry=0"]);
    kdig.args(["www.example.test", "A"]);
    let out = tokio::task::spawn_blocking(move || kdig.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("192.0.2.10"), "kdig: {stdout} {:?}", out.stderr);
    assert!(stdout.contains("Received 468 B"), "padded to one 468-byte block: {stdout}");
    assert!(stdout.contains("PADDING:"), "{stdout}");
    assert!(stdout.contains("Option (11): 0064"), "keepalive of 10 s: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_tls_gets_answers_and_accepts_the_pin() {
    let unbound = unbound().await;
    let dotgate = Dotgate::start(&[unbound.addr], &[]);
    let pin = dotgate.pin();
    let port = dotgate.addr.port().to_string();
    for (qtype, extra, expect) in [
        ("A", None, "192.0.2.10"),
        ("AAAA", None, "2001:db8::10"),
        ("A", Some(format!("+tls-pin={pin}")), "192.0.2.10"),
    ] {
        let mut kdig = tool("kdig");
        kdig.args(["@127.0.0.1", "-p", &port, "+tls", "+short", "+timeout=5", "+retry=0", "www.example.test", qtype]);
        if let Some(extra) = &extra {
            kdig.arg(extra);
        }
        let out = tokio::task::spawn_blocking(move || kdig.output().unwrap()).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.trim() == expect, "kdig {qtype} {extra:?}: {stdout} {:?}", out.stderr);
    }
    // A wrong pin is refused by kdig: the pin check is real.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut kdig = tool("kdig");
    kdig.args(["@127.0.0.1", "-p", &port, "+tls", &format!("+tls-pin={wrong}"), "+short", "+timeout=3", "+retry=0"]);
    kdig.args(["www.example.test", "A"]);
    let out = tokio::task::spawn_blocking(move || kdig.output().unwrap()).await.unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("192.0.2.10"), "kdig accepted a wrong pin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsperf_over_dot_loses_nothing() {
    let unbound = unbound().await;
    let dotgate = Dotgate::start(&[unbound.addr], &["--workers", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, "www.example.test A\nwww.example.test AAAA\nmixed.example.test A\nnope.example.test A\n")
        .unwrap();
    let mut dnsperf = tool("dnsperf");
    dnsperf.args(["-m", "dot", "-s", "127.0.0.1", "-p", &dotgate.addr.port().to_string()]);
    dnsperf.args(["-d", queries.to_str().unwrap(), "-c", "20", "-q", "200", "-l", "3"]);
    let out = tokio::task::spawn_blocking(move || dnsperf.output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "dnsperf failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    let field = |label: &str| -> f64 {
        let line =
            text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}: {text}"));
        line.split_whitespace().nth(label.split_whitespace().count()).unwrap().parse().unwrap()
    };
    let completed = field("Queries completed:");
    let lost = field("Queries lost:");
    assert!(completed > 1000.0, "only {completed} queries completed in 3 s: {text}");
    assert_eq!(lost, 0.0, "{text}");
    assert!(text.contains("NXDOMAIN") && text.contains("NOERROR"), "{text}");
}
