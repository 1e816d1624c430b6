//! Operator controls per client (issue 15), end to end with real backends where a backend has
//! to judge the client: the client's own address reaching Unbound in PROXY v2 headers (its
//! ACL and its query log see each DoT client, also after a TC fallback over TCP), the client's
//! subnet reaching BIND as EDNS Client Subnet (its query log shows it), and dotgate's own
//! allow/deny lists (reloaded on SIGHUP), per-client query rate and new-connection rate.
//!
//! Clients are told apart by their source address: any 127.0.0.0/8 address and `::1` work on
//! Linux loopback without configuration ([`DotClient::connect_from`]). dotgate listens on
//! 127.0.0.1 and `::1` at one port (its IPv6 listeners are IPV6_V6ONLY, so `[::]` alone would
//! not take the IPv4 clients). An IPv4-mapped address (what a dual-stack socket reports) is
//! matched as IPv4 by the ACL, the rate limits and the PROXY header: unit tests in
//! `access::acl`, `access::prefix` and `relay::proxy_v2` check that.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::client::{ecs_options, ede_options, query_ecs};
use support::ports::free_addr;
use support::{
    a_records, parse, query, query_edns, txt_records, Bind, DotClient, Dotgate, FakeBackend, Unbound, UnboundOptions,
};

const ANSWER: Duration = Duration::from_secs(5);
/// Long enough for a SIGHUP reload to reach new connections.
const RELOAD_WAIT: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOCAL6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Where a client at `from` connects: dotgate's listener of the same family.
fn target(dotgate: &Dotgate, from: IpAddr) -> SocketAddr {
    *dotgate
        .listen
        .iter()
        .find(|l| l.is_ipv4() == from.is_ipv4() || l.ip().is_unspecified())
        .unwrap_or_else(|| panic!("dotgate listens on no address a client at {from} can reach: {:?}", dotgate.listen))
}

async fn connect(dotgate: &Dotgate, from: &str) -> DotClient {
    let from = ip(from);
    DotClient::connect_from(target(dotgate, from), from)
        .await
        .unwrap_or_else(|e| panic!("DoT connect from {from}: {e}\n{}", dotgate.stderr()))
}

/// True if a DoT connection from `from` gets through TCP and TLS (and is then dropped).
async fn can_connect(dotgate: &Dotgate, from: &str) -> bool {
    let from = ip(from);
    DotClient::connect_from(target(dotgate, from), from).await.is_ok()
}

/// Polls until a DoT connection from `from` succeeds (`want` true) or fails (`want` false).
async fn connect_becomes(dotgate: &Dotgate, from: &str, want: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if can_connect(dotgate, from).await == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--admin ADDR` and the address.
fn admin_args() -> (SocketAddr, String) {
    let admin = free_addr();
    (admin, admin.to_string())
}

fn unbound_proxied() -> Unbound {
    let opts = UnboundOptions::default()
        .proxy_protocol()
        .query_log()
        .access("127.0.0.3/32 refuse")
        // With do-ip6: no Unbound has no IPv6 ACL defaults: ::1 is refused without this line.
        .access("::1 allow");
    Unbound::start_opts(&opts)
}

fn both_loopbacks() -> [IpAddr; 2] {
    [LOCAL4, LOCAL6]
}

// ---------------------------------------------------------------------------
// PROXY protocol v2 to Unbound

/// Three DoT clients behind one dotgate, and Unbound judges each by its own address: the one
/// its ACL refuses gets REFUSED (Unbound's ACL answer is a bare 12-byte header WITHOUT the
/// question: dotgate has to pass it on although it cannot match the question), the others get
/// their answers, and Unbound's query log names each client, never dotgate's 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_sees_each_dot_clients_own_address() {
    let unbound = tokio::task::spawn_blocking(unbound_proxied).await.unwrap();
    let probes_before = unbound.log_entries_of(LOCAL4).len();
    let backend = format!("{},proxy-protocol", unbound.addr);
    let dotgate = Dotgate::start_listening(&both_loopbacks(), &[backend], &["--workers", "2"]);

    for (n, (from, rcode)) in
        [("127.0.0.2", ResponseCode::NoError), ("127.0.0.3", ResponseCode::Refused), ("::1", ResponseCode::NoError)]
            .into_iter()
            .enumerate()
    {
        let mut client = connect(&dotgate, from).await;
        for id in 0..3u16 {
            let id = 10 * n as u16 + id;
            let answer = parse(&client.exchange(&query("www.example.test.", RecordType::A, id)).await);
            assert_eq!((answer.id(), answer.response_code()), (id, rcode), "client {from}");
            if rcode == ResponseCode::NoError {
                assert_eq!(a_records(&answer), vec![support::unbound::WWW_A], "client {from}");
            }
        }
    }

    for (from, rcode) in [("127.0.0.2", "NOERROR"), ("127.0.0.3", "REFUSED"), ("::1", "NOERROR")] {
        let logged = unbound.wait_for_entry(ANSWER, |e| e.client == ip(from) && e.rcode.as_deref() == Some(rcode));
        assert!(logged.is_some(), "Unbound logged no {rcode} for {from}:\n{}", unbound.log());
        let replies = unbound.log_entries_of(ip(from)).into_iter().filter(|e| e.rcode.is_some()).count();
        assert_eq!(replies, 3, "{from}: one reply line per query:\n{}", unbound.log());
    }
    assert_eq!(
        unbound.log_entries_of(LOCAL4).len(),
        probes_before,
        "queries reached Unbound as dotgate's own 127.0.0.1:\n{}",
        unbound.log()
    );
}

/// The TC fallback carries the client too: `big.example.test. TXT` without EDNS is truncated
/// over UDP, and the answer comes whole over TCP, behind a header naming the client that asked.
/// Two clients asking at once, several times: each one's UDP query and TCP retry are all
/// logged as that client (TCP memory off so that every question takes both paths), so neither
/// client's TCP fallback went over a connection whose header named the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc_fallback_over_tcp_names_the_client_and_is_not_mixed() {
    let unbound = tokio::task::spawn_blocking(unbound_proxied).await.unwrap();
    let backend = format!("{},proxy-protocol", unbound.addr);
    let dotgate =
        Dotgate::start_listening(&both_loopbacks(), &[backend], &["--workers", "2", "--tcp-memory-entries", "0"]);
    const ROUNDS: u16 = 5;

    let ask = |from: &'static str| {
        let target = target(&dotgate, ip(from));
        async move {
            let mut client = DotClient::connect_from(target, ip(from)).await.unwrap();
            for id in 0..ROUNDS {
                // Pipelined with a small question so that upstream connections stay busy.
                client.send(&query("big.example.test.", RecordType::TXT, 2 * id)).await.unwrap();
                client.send(&query("www.example.test.", RecordType::A, 2 * id + 1)).await.unwrap();
                for _ in 0..2 {
                    let raw = client.recv_timeout(ANSWER).await.unwrap().expect("answer");
                    let answer = parse(&raw);
                    assert!(!answer.truncated(), "{from}");
                    assert_eq!(answer.response_code(), ResponseCode::NoError, "{from}");
                    if answer.id() % 2 == 0 {
                        assert_eq!(txt_records(&answer).len(), support::unbound::BIG_TXT_RECORDS, "{from}");
                    }
                }
            }
        }
    };
    tokio::join!(ask("127.0.0.2"), ask("::1"));

    // A refused client's big question is refused (over UDP, at once: no TC, no fallback).
    let mut refused = connect(&dotgate, "127.0.0.3").await;
    let answer = parse(&refused.exchange(&query("big.example.test.", RecordType::TXT, 99)).await);
    assert_eq!(answer.response_code(), ResponseCode::Refused);

    for from in ["127.0.0.2", "::1"] {
        let big_queries = |u: &Unbound| {
            u.log_entries_of(ip(from))
                .into_iter()
                .filter(|e| e.name == "big.example.test." && e.rcode.is_none())
                .count()
        };
        let deadline = Instant::now() + ANSWER;
        while big_queries(&unbound) < 2 * ROUNDS as usize && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            big_queries(&unbound),
            2 * ROUNDS as usize,
            "{from}: each big question once over UDP and once over TCP, as {from}:\n{}",
            unbound.log()
        );
    }
}

/// A retry takes the options of the backend it goes to, not of the one that failed: with a
/// plain backend that never answers beside a proxy-protocol Unbound, every query is answered
/// (straight by Unbound behind a header, or by Unbound after the plain one timed out), and the
/// plain backend never sees a PROXY header; with the roles the other way round (an `ecs` and
/// `proxy-protocol` backend that never answers beside a plain Unbound), the plain Unbound
/// answers every retry, which it would not do for a datagram that starts with a header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_carries_the_options_of_the_backend_it_goes_to() {
    let unbound = tokio::task::spawn_blocking(unbound_proxied).await.unwrap();
    let silent = FakeBackend::start().await;
    silent.set_down(true);
    let backends = [silent.addr.to_string(), format!("{},proxy-protocol", unbound.addr)];
    let args = ["--workers", "1", "--upstream-timeout", "0.2"];
    let dotgate = Dotgate::start_listening(&[LOCAL4], &backends, &args);
    let mut client = connect(&dotgate, "127.0.0.2").await;
    for id in 0..8u16 {
        let answer = parse(&client.exchange(&query("www.example.test.", RecordType::A, id)).await);
        assert_eq!(a_records(&answer), vec![support::unbound::WWW_A], "query {id}");
    }
    let received = silent.received();
    assert!(!received.is_empty(), "some queries tried the silent backend first");
    assert!(
        received.iter().all(|q| !q.starts_with(&support::proxy_v2::SIGNATURE)),
        "the plain backend got a PROXY header"
    );

    let plain = tokio::task::spawn_blocking(Unbound::start).await.unwrap();
    let silent = FakeBackend::start().await;
    silent.set_down(true);
    let backends = [format!("{},proxy-protocol,ecs=24:56", silent.addr), plain.addr.to_string()];
    let dotgate = Dotgate::start_listening(&[LOCAL4], &backends, &args);
    let mut client = connect(&dotgate, "127.0.0.2").await;
    for id in 0..8u16 {
        let raw = client.exchange(&query("www.example.test.", RecordType::A, id)).await;
        assert_eq!(a_records(&parse(&raw)), vec![support::unbound::WWW_A], "query {id}");
        assert_eq!(ecs_options(&raw), vec![], "no ECS back to a client that sent none");
    }
    let received = silent.received();
    assert!(!received.is_empty(), "some queries tried the silent backend first");
    for datagram in &received {
        let header = support::proxy_v2::parse(datagram).expect("a PROXY v2 header on every datagram");
        // The client's own connection: TCP from 127.0.0.2 to dotgate's listener.
        assert_eq!(header.transport, Some(support::proxy_v2::Transport::Tcp));
        assert_eq!(header.src.map(|a| a.ip()), Some(ip("127.0.0.2")));
        assert_eq!(header.dst, Some(dotgate.addr));
    }
}

// ---------------------------------------------------------------------------
// EDNS Client Subnet to BIND

/// Waits until BIND's query log has `n` lines with an ECS; false if not within [`ANSWER`].
async fn ecs_lines(bind: &Bind, n: usize) -> bool {
    let deadline = Instant::now() + ANSWER;
    loop {
        if bind.query_log().iter().filter(|e| e.ecs.is_some()).count() >= n {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ecs=24:56`: BIND's query log shows the client's subnet (127.0.0.2 -> 127.0.0.0/24,
/// ::1 -> ::/56); a client that sent no ECS gets no ECS back (BIND echoes the option dotgate
/// added: dotgate must take it out); a client's own ECS (198.51.100.0/24) is replaced, not
/// passed on, and the answer does not show it a subnet it did not send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_sees_the_clients_subnet_in_place_of_its_own_ecs() {
    let bind = tokio::task::spawn_blocking(Bind::start_querylog).await.unwrap();
    let backend = format!("{},ecs=24:56", bind.addr);
    let dotgate = Dotgate::start_listening(&both_loopbacks(), &[backend], &["--workers", "2"]);

    let mut client = connect(&dotgate, "127.0.0.2").await;
    // Without EDNS and with EDNS but no ECS: answers, and no ECS in them.
    for q in [
        query("www.example.test.", RecordType::A, 1),
        query_edns("www.example.test.", RecordType::A, 2, false, false, vec![]),
    ] {
        let raw = client.exchange(&q).await;
        assert_eq!(a_records(&parse(&raw)), vec![support::bind::WWW_A]);
        assert_eq!(ecs_options(&raw), vec![], "a client that sent no ECS gets none back");
    }
    let subnet = |bind: &Bind, want: &'static str| bind.wait_for_query(ANSWER, |e| e.ecs.as_deref() == Some(want));
    let seen = subnet(&bind, "127.0.0.0/24/0").unwrap_or_else(|| panic!("no /24 in BIND's log:\n{}", bind.stderr()));
    assert_eq!(seen.client.ip(), LOCAL4, "through dotgate: {}", seen.line);
    assert!(ecs_lines(&bind, 2).await, "both queries carried the client's subnet:\n{}", bind.stderr());

    // The client's own ECS claim is replaced.
    let raw = client.exchange(&query_ecs("www.example.test.", RecordType::A, 3, ip("198.51.100.7"), 24)).await;
    assert_eq!(a_records(&parse(&raw)), vec![support::bind::WWW_A]);
    let back = ecs_options(&raw);
    assert!(
        back.len() == 1 && back.iter().all(|e| e.to_string().starts_with("198.51.100.0/24/")),
        "the answer shows the client a subnet it did not send: {back:?}"
    );
    ecs_lines(&bind, 3).await;
    let log = bind.query_log();
    let ecs: Vec<&str> = log.iter().filter_map(|e| e.ecs.as_deref()).collect();
    assert_eq!(ecs, ["127.0.0.0/24/0"; 3], "BIND must see the client's /24, never 198.51.100.0:\n{}", bind.stderr());

    // IPv6: /56.
    let mut v6 = connect(&dotgate, "::1").await;
    let raw = v6.exchange(&query("www.example.test.", RecordType::A, 4)).await;
    assert_eq!(a_records(&parse(&raw)), vec![support::bind::WWW_A]);
    assert!(subnet(&bind, "::/56/0").is_some(), "no ::/56 in BIND's log:\n{}", bind.stderr());
}

// ---------------------------------------------------------------------------
// Allow and deny lists

/// Runs one DoT query from `from`; panics unless it is answered.
async fn answered(dotgate: &Dotgate, from: &str) {
    let mut client = connect(dotgate, from).await;
    let answer = parse(&client.exchange(&query("acl.example.", RecordType::A, 1)).await);
    assert_eq!(answer.response_code(), ResponseCode::NoError, "{from}");
}

/// `--deny 127.0.0.3 --allow 127.0.0.0/8`: 127.0.0.2 is served; 127.0.0.3's connection is
/// closed before TLS (the handshake fails) and counted; a client in no list (::1) is denied
/// once there is an allow list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_clients_are_closed_before_tls_and_counted() {
    let backend = FakeBackend::start().await;
    let (admin, admin_arg) = admin_args();
    let args = ["--deny", "127.0.0.3", "--allow", "127.0.0.0/8", "--admin", &admin_arg];
    let dotgate = Dotgate::start_listening(&both_loopbacks(), &[backend.addr.to_string()], &args);

    answered(&dotgate, "127.0.0.2").await;
    answered(&dotgate, "127.0.0.4").await;
    assert!(!can_connect(&dotgate, "127.0.0.3").await, "a denied client must not get through TLS");
    let rejected = r#"dotgate_connections_rejected_total{reason="acl"}"#;
    assert_eq!(support::http::metric(admin, rejected), 1.0);
    assert!(!can_connect(&dotgate, "::1").await, "not in the allow list");
    assert_eq!(support::http::metric(admin, rejected), 2.0);
    // Denied clients never reached the backend.
    answered(&dotgate, "127.0.0.2").await;
    assert_eq!(backend.udp_queries(), 3);
}

/// The most specific matching prefix decides, whatever the order of the flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_matching_prefix_wins() {
    let backend = FakeBackend::start().await;
    let rules = ["--allow", "127.0.0.0/8", "--deny", "127.0.0.0/24", "--allow", "127.0.0.2/32"];
    let reversed = ["--allow", "127.0.0.2/32", "--deny", "127.0.0.0/24", "--allow", "127.0.0.0/8"];
    for args in [rules, reversed] {
        let dotgate = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);
        answered(&dotgate, "127.0.0.2").await; // /32 allow beats /24 deny
        assert!(!can_connect(&dotgate, "127.0.0.3").await, "/24 deny beats /8 allow: {args:?}");
        answered(&dotgate, "127.0.1.3").await; // only /8 matches
    }
}

/// IPv6 rules for IPv6 clients, IPv4 rules for IPv4 clients, on one dotgate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_follow_ipv6_rules() {
    let backend = FakeBackend::start().await;
    let args = ["--allow", "::1/128", "--allow", "127.0.0.0/8", "--deny", "127.0.0.3/32"];
    let dotgate = Dotgate::start_listening(&both_loopbacks(), &[backend.addr.to_string()], &args);
    answered(&dotgate, "::1").await;
    answered(&dotgate, "127.0.0.2").await;
    assert!(!can_connect(&dotgate, "127.0.0.3").await);

    let args = ["--deny", "::1", "--allow", "127.0.0.0/8"];
    let dotgate = Dotgate::start_listening(&both_loopbacks(), &[backend.addr.to_string()], &args);
    assert!(!can_connect(&dotgate, "::1").await, "--deny ::1");
    answered(&dotgate, "127.0.0.2").await;
}

/// Writes `text` to `path` the way deploy tools do: a file beside it, renamed over it.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// The lists also reload when the config file changes, with no signal (looked at every 2 s),
/// with one log line; lists given on the command line replace the file's and never reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_file_reloads_the_lists_without_a_signal() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dotgate.toml");
    replace(&config, "deny = [\"127.0.0.3/32\"]\n");
    let args = ["--config", config.to_str().unwrap()];
    let from_file = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);
    let args = ["--config", config.to_str().unwrap(), "--deny", "127.0.0.3/32"];
    let from_flags = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);
    for dotgate in [&from_file, &from_flags] {
        assert!(!can_connect(dotgate, "127.0.0.3").await);
    }

    replace(&config, "deny = [\"127.0.0.4/32\"]\n");
    assert!(connect_becomes(&from_file, "127.0.0.3", true, RELOAD_WAIT).await, "{}", from_file.stderr());
    assert!(!can_connect(&from_file, "127.0.0.4").await, "the file's new list is in force");
    assert!(from_file.stderr().contains("reloaded the access lists"), "{}", from_file.stderr());
    assert!(!can_connect(&from_flags, "127.0.0.3").await, "lists from flags stay");
    answered(&from_flags, "127.0.0.4").await;
}

/// `allow = [...]` and `deny = [...]` in the config file, reloaded on SIGHUP: new connections
/// follow the new lists; an open connection of a client still allowed keeps working; a broken
/// file is refused with a log line and the lists in force stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_lists_from_the_config_file() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dotgate.toml");
    replace(&config, "allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.3/32\"]\n");
    let args = ["--config", config.to_str().unwrap(), "--workers", "2"];
    let dotgate = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);

    let mut open = connect(&dotgate, "127.0.0.2").await;
    open.exchange(&query("before.example.", RecordType::A, 1)).await;
    assert!(!can_connect(&dotgate, "127.0.0.3").await);
    answered(&dotgate, "127.0.0.4").await;

    // Under load: an allowed client keeps 20 queries in flight on one connection through both
    // reloads below; every one must be answered, and the connection must stay up.
    let loaded = connect(&dotgate, "127.0.0.5").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let stop = stop.clone();
        let mut client = loaded;
        async move {
            let (mut sent, mut answered) = (0u32, 0u32);
            loop {
                while sent - answered < 20 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    client.send(&query("load.example.", RecordType::A, sent as u16)).await.expect("send under load");
                    sent += 1;
                }
                if sent == answered {
                    return answered;
                }
                let raw = client.recv_timeout(ANSWER).await.expect("read under load").expect("an answer");
                assert_eq!(parse(&raw).response_code(), ResponseCode::NoError);
                answered += 1;
            }
        }
    });

    replace(&config, "allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.4/32\"]\n");
    dotgate.signal(libc::SIGHUP);
    assert!(connect_becomes(&dotgate, "127.0.0.3", true, RELOAD_WAIT).await, "{}", dotgate.stderr());
    // Several connections each: SO_REUSEPORT spreads them over both workers.
    for _ in 0..4 {
        assert!(!can_connect(&dotgate, "127.0.0.4").await, "denied by the new list");
        answered(&dotgate, "127.0.0.3").await;
    }
    let answer = parse(&open.exchange(&query("after.example.", RecordType::A, 2)).await);
    assert_eq!(answer.id(), 2, "the connection opened before the reload keeps working");

    let before = dotgate.stderr().len();
    replace(&config, "allow = [\"not a cidr\"]\ndeny = [\n");
    dotgate.signal(libc::SIGHUP);
    let deadline = Instant::now() + RELOAD_WAIT;
    let complaint = loop {
        let new = dotgate.stderr()[before..].to_string();
        if new.contains("refusing") || new.contains("not a cidr") || new.contains("dotgate.toml") {
            break new;
        }
        assert!(Instant::now() < deadline, "a broken config file must be refused with a log line: {new}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!complaint.contains("panic"), "{complaint}");
    for _ in 0..4 {
        answered(&dotgate, "127.0.0.3").await;
        assert!(!can_connect(&dotgate, "127.0.0.4").await, "the lists in force stay");
    }
    let answer = parse(&open.exchange(&query("still.example.", RecordType::A, 3)).await);
    assert_eq!(answer.id(), 3);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let under_load = load.await.expect("the loaded connection kept working through both reloads");
    assert!(under_load > 100, "only {under_load} queries answered under load");
}

// ---------------------------------------------------------------------------
// Rate limits

/// What a client saw during a burst.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: usize,
    /// REFUSED carrying EDE 18 "rate limited".
    limited: usize,
    /// Anything else (REFUSED without that EDE, SERVFAIL, ...).
    other: usize,
    /// Sent but not answered within the drain time.
    lost: usize,
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally {
            ok: self.ok + o.ok,
            limited: self.limited + o.limited,
            other: self.other + o.other,
            lost: self.lost + o.lost,
        }
    }
}

async fn send_rate_query(client: &mut DotClient, id: u16) {
    let q = query_edns(&format!("q{id}.rate.example."), RecordType::A, id, false, false, vec![]);
    client.send(&q).await.unwrap();
}

fn tally_answer(tally: &mut Tally, raw: &[u8]) {
    let answer = parse(raw);
    match answer.response_code() {
        ResponseCode::NoError if !answer.answers().is_empty() => tally.ok += 1,
        ResponseCode::Refused if ede_options(raw).contains(&(18, "rate limited".to_string())) => tally.limited += 1,
        _ => tally.other += 1,
    }
}

/// One connection from `from` to `to` that keeps `window` queries in flight until `duration`
/// has passed, then collects the answers still owed. Queries carry EDNS (an EDE needs an OPT
/// to travel in).
async fn hammer(to: SocketAddr, from: IpAddr, window: u16, duration: Duration) -> Tally {
    let mut client = DotClient::connect_from(to, from).await.unwrap();
    let mut tally = Tally::default();
    let stop = Instant::now() + duration;
    let mut next_id = 0u16;
    let mut outstanding = 0usize;
    for _ in 0..window {
        send_rate_query(&mut client, next_id).await;
        next_id = next_id.wrapping_add(1);
        outstanding += 1;
    }
    while outstanding > 0 {
        let Ok(Some(raw)) = client.recv_timeout(ANSWER).await else { break };
        outstanding -= 1;
        tally_answer(&mut tally, &raw);
        if Instant::now() < stop {
            send_rate_query(&mut client, next_id).await;
            next_id = next_id.wrapping_add(1);
            outstanding += 1;
        }
    }
    tally.lost = outstanding;
    tally
}

/// One connection from `from` asking `count` questions one at a time, one every `every`.
async fn paced(to: SocketAddr, from: IpAddr, count: u16, every: Duration) -> Tally {
    let mut client = DotClient::connect_from(to, from).await.unwrap();
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval(every);
    for id in 0..count {
        tick.tick().await;
        send_rate_query(&mut client, id).await;
        match client.recv_timeout(ANSWER).await {
            Ok(Some(raw)) => tally_answer(&mut tally, &raw),
            _ => tally.lost += 1,
        }
    }
    tally
}

/// `connections` connections from `from`, each hammering; the sum.
async fn client_burst(to: SocketAddr, from: IpAddr, connections: usize, window: u16, duration: Duration) -> Tally {
    let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(hammer(to, from, window, duration))).collect();
    let mut total = Tally::default();
    for t in tasks {
        total = total + t.await.unwrap();
    }
    total
}

/// `--max-qps-per-client 200`, two workers: a client on eight connections (SO_REUSEPORT puts
/// them on both workers) asking as fast as it can for 2 s gets 200 per second plus a burst of
/// 200 answered (600, within 10%), one limit across the workers, and everything else REFUSED
/// with EDE 18 "rate limited"; another client asking 50 a second meanwhile is never limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_query_rate_is_refused_with_ede_18() {
    let backend = FakeBackend::start().await;
    let args = ["--max-qps-per-client", "200", "--workers", "2"];
    let dotgate = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);
    let burst = Duration::from_secs(2);

    let greedy = tokio::spawn(client_burst(dotgate.addr, ip("127.0.0.2"), 8, 16, burst));
    let polite = tokio::spawn(paced(dotgate.addr, ip("127.0.0.3"), 100, Duration::from_millis(20)));
    let (greedy, polite) = (greedy.await.unwrap(), polite.await.unwrap());
    assert!((540..=660).contains(&greedy.ok), "200/s for 2 s plus a 200 burst, within 10%: {greedy:?}");
    assert!(greedy.limited > greedy.ok, "a client asking as fast as it can is mostly limited: {greedy:?}");
    assert_eq!((greedy.other, greedy.lost), (0, 0), "{greedy:?}");
    assert_eq!((polite.ok, polite.limited, polite.other, polite.lost), (100, 0, 0, 0), "another client: {polite:?}");
}

/// `--client-prefix 24:56`: 127.0.0.2 and 127.0.0.3 are one client and share one rate;
/// 127.0.1.2 (another /24) is another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_prefix_is_one_client() {
    let backend = FakeBackend::start().await;
    let args = ["--max-qps-per-client", "200", "--client-prefix", "24:56", "--workers", "2"];
    let dotgate = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);
    let burst = Duration::from_secs(2);
    let (a, b, other) = tokio::join!(
        client_burst(dotgate.addr, ip("127.0.0.2"), 4, 16, burst),
        client_burst(dotgate.addr, ip("127.0.0.3"), 4, 16, burst),
        paced(dotgate.addr, ip("127.0.1.2"), 50, Duration::from_millis(20)),
    );
    let shared = a + b;
    assert!((540..=660).contains(&shared.ok), "one rate for the /24, within 10% of 600: {a:?} + {b:?}");
    assert!(a.limited > 0 && b.limited > 0, "both addresses limited: {a:?} {b:?}");
    assert_eq!((shared.other, shared.lost), (0, 0));
    // 50 a second is well under 200 a second... unless it shares the /24's empty bucket.
    assert_eq!(
        (other.ok, other.limited, other.other, other.lost),
        (50, 0, 0, 0),
        "127.0.1.2 is another client: {other:?}"
    );
}

/// `--max-new-connections-per-client 5`: five connections within a second are served, the
/// sixth is closed before TLS and counted; another client still connects; a second later the
/// first may connect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_opening_connections_too_fast_is_cut_before_tls() {
    let backend = FakeBackend::start().await;
    let (admin, admin_arg) = admin_args();
    let args = ["--max-new-connections-per-client", "5", "--workers", "2", "--admin", &admin_arg];
    let dotgate = Dotgate::start_listening(&[LOCAL4], &[backend.addr.to_string()], &args);

    let started = Instant::now();
    let mut open = Vec::new();
    for n in 1..=5 {
        let client = DotClient::connect_from(dotgate.addr, ip("127.0.0.2")).await;
        open.push(client.unwrap_or_else(|e| panic!("connection {n} of 5: {e}")));
    }
    let sixth = DotClient::connect_from(dotgate.addr, ip("127.0.0.2")).await;
    assert!(started.elapsed() < Duration::from_secs(1), "the test was too slow: {:?}", started.elapsed());
    assert!(sixth.is_err(), "the sixth new connection within a second must fail before TLS");
    assert_eq!(support::http::metric(admin, r#"dotgate_rate_limited_total{kind="connections"}"#), 1.0);
    // The five keep working, and another client is not affected.
    for (id, client) in (0u16..).zip(open.iter_mut()) {
        let answer = parse(&client.exchange(&query("conn.example.", RecordType::A, id)).await);
        assert_eq!(answer.response_code(), ResponseCode::NoError);
    }
    answered(&dotgate, "127.0.0.3").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    answered(&dotgate, "127.0.0.2").await;
}
