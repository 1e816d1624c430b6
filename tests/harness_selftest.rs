//! Self-test of the integration-test harness in `tests/support/`: the fake
//! backend (every mode, UDP and TCP), real Unbound and BIND, the DoT client
//! against an in-test rustls echo server, ports, certificates and the process
//! runner. Nothing here needs a working dotgate.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_rustls::TlsAcceptor;

use support::client::{self, msg_id, read_frame, spki_pin_base64, tcp_exchange, udp_exchange, write_frame};
use support::fake_backend::{find_opt, NORMAL_A, SPOOF_A};
use support::{
    a_records, gen_cert, parse, query, query_edns, query_edns_sized, txt_records, Bind, ClientOptions, DotClient,
    Dotgate, FakeBackend, Unbound,
};

const T: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// helpers

/// A UDP socket that keeps receiving after the first answer.
async fn udp_sock(to: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    s.connect(to).await.unwrap();
    s
}

/// Next datagram and its source (on an unconnected socket).
async fn recv_from(s: &UdpSocket, d: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(d, s.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => {
            buf.truncate(n);
            Some((buf, from))
        }
        _ => None,
    }
}

async fn recv(s: &UdpSocket, d: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(d, s.recv(&mut buf)).await {
        Ok(Ok(n)) => {
            buf.truncate(n);
            Some(buf)
        }
        _ => None,
    }
}

fn assert_normal(raw: &[u8], q: &[u8]) {
    let m = parse(raw);
    assert_eq!(m.id(), msg_id(q));
    assert_eq!(m.message_type(), MessageType::Response);
    assert!(m.authoritative() && m.recursion_available() && m.recursion_desired());
    assert!(!m.truncated());
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&m), vec![NORMAL_A]);
    // question copied byte for byte (queries here are uncompressed)
    let qlen = q[12..].iter().position(|&b| b == 0).unwrap() + 1 + 4;
    assert_eq!(&raw[12..12 + qlen], &q[12..12 + qlen]);
}

// ---------------------------------------------------------------------------
// ports

#[test]
fn free_port_is_free_for_udp_and_tcp() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let p = support::free_port();
        assert!(seen.insert(p), "port {p} handed out twice");
        let _t = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        let _u = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
    }
}

// ---------------------------------------------------------------------------
// fake backend

#[tokio::test]
async fn fake_normal_udp_and_tcp() {
    let fb = FakeBackend::start().await;
    let q = query("ok.example.", RecordType::A, 0x1234);
    let r = udp_exchange(fb.addr, &q, T).await.unwrap();
    assert_normal(&r, &q);
    let r = tcp_exchange(fb.addr, &q, T).await.unwrap();
    assert_normal(&r, &q);
    assert!(find_opt(&r).is_none());

    // AAAA still gets the A record; case-insensitive first label
    let q = query("OK.Example.", RecordType::AAAA, 7);
    assert_normal(&udp_exchange(fb.addr, &q, T).await.unwrap(), &q);

    // TXT -> "hello"
    let q = query("ok.example.", RecordType::TXT, 8);
    let m = parse(&udp_exchange(fb.addr, &q, T).await.unwrap());
    assert_eq!(txt_records(&m), vec![b"hello".to_vec()]);
    assert!(a_records(&m).is_empty());

    assert_eq!(fb.udp_queries(), 3);
    assert_eq!(fb.tcp_queries(), 1);
    assert_eq!(fb.tcp_connections(), 1);
    let rec = fb.received();
    assert_eq!(rec.len(), 4);
    assert_eq!(rec[0], query("ok.example.", RecordType::A, 0x1234));
    fb.reset_counters();
    assert_eq!((fb.udp_queries(), fb.tcp_queries(), fb.tcp_connections()), (0, 0, 0));
    assert!(fb.received().is_empty());
}

#[tokio::test]
async fn fake_edns_echo_and_flags() {
    let fb = FakeBackend::start().await;
    let opts = vec![(10u16, vec![1, 2, 3, 4, 5, 6, 7, 8]), (65001, vec![]), (8, vec![0, 1, 24, 0, 192, 0, 2])];
    let q = query_edns_sized("ok.example.", RecordType::A, 99, 4000, true, true, opts.clone());
    for r in [udp_exchange(fb.addr, &q, T).await.unwrap(), tcp_exchange(fb.addr, &q, T).await.unwrap()] {
        assert_normal(&r, &q);
        let m = parse(&r);
        assert!(m.checking_disabled());
        let o = find_opt(&r).expect("OPT echoed");
        assert_eq!(o.udp_size, 4000);
        assert!(o.do_bit());
        assert_eq!(o.options(), opts);
        assert_eq!(o.rdata, find_opt(&q).unwrap().rdata);
    }
    // no DO, no CD
    let q = query_edns("ok.example.", RecordType::A, 100, false, false, vec![]);
    let r = udp_exchange(fb.addr, &q, T).await.unwrap();
    assert!(!parse(&r).checking_disabled());
    let o = find_opt(&r).unwrap();
    assert_eq!((o.udp_size, o.do_bit(), o.rdata.len()), (1232, false, 0));
    // hickory agrees on the EDNS data
    let e = parse(&r).extensions().clone().expect("hickory sees EDNS");
    assert_eq!(e.max_payload(), 1232);
}

#[tokio::test]
async fn fake_servfail_and_drop_and_refuse_udp() {
    let fb = FakeBackend::start().await;
    let q = query("servfail.example.", RecordType::A, 1);
    let m = parse(&udp_exchange(fb.addr, &q, T).await.unwrap());
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(m.answers().is_empty());
    let m = parse(&tcp_exchange(fb.addr, &q, T).await.unwrap());
    assert_eq!(m.response_code(), ResponseCode::ServFail);

    let q = query("drop.example.", RecordType::A, 2);
    let short = Duration::from_millis(300);
    assert!(udp_exchange(fb.addr, &q, short).await.is_err());
    assert!(tcp_exchange(fb.addr, &q, short).await.is_err());

    let q = query("refuse-udp.example.", RecordType::A, 3);
    assert!(udp_exchange(fb.addr, &q, short).await.is_err());
    assert_normal(&tcp_exchange(fb.addr, &q, T).await.unwrap(), &q);
    assert_eq!(fb.udp_queries(), 3);
    assert_eq!(fb.tcp_queries(), 3);
}

#[tokio::test]
async fn fake_tc_and_big_exact_sizes() {
    let fb = FakeBackend::start().await;
    for (name, n) in [("tc-3000.example.", 3000usize), ("tc-65535.example.", 65535)] {
        for q in
            [query(name, RecordType::TXT, 5), query_edns(name, RecordType::TXT, 6, true, false, vec![(10, vec![9; 8])])]
        {
            // UDP: TC=1, no records
            let r = udp_exchange(fb.addr, &q, T).await.unwrap();
            let m = parse(&r);
            assert!(m.truncated(), "{name}: TC over UDP");
            assert!(m.answers().is_empty());
            assert_eq!(m.id(), msg_id(&q));
            // TCP: exactly n bytes
            let r = tcp_exchange(fb.addr, &q, T).await.unwrap();
            assert_eq!(r.len(), n, "{name}: TCP answer length");
            let m = parse(&r);
            assert!(!m.truncated());
            assert!(!m.answers().is_empty());
            assert_eq!(m.answers().len(), txt_records(&m).len());
        }
    }
    for n in [100usize, 512, 1232, 4000, 65507] {
        let name = format!("big-{n}.example.");
        let q = query_edns_sized(&name, RecordType::TXT, 7, 65535, false, false, vec![]);
        let r = udp_exchange(fb.addr, &q, T).await.unwrap();
        assert_eq!(r.len(), n, "{name} over UDP");
        assert!(!parse(&r).truncated());
        let r = tcp_exchange(fb.addr, &q, T).await.unwrap();
        assert_eq!(r.len(), n, "{name} over TCP");
    }
    let r = tcp_exchange(fb.addr, &query("big-65535.example.", RecordType::A, 8), T).await.unwrap();
    assert_eq!(r.len(), 65535);
    // sizes above the DNS maximum are clamped
    let r = tcp_exchange(fb.addr, &query("big-70000.example.", RecordType::A, 9), T).await.unwrap();
    assert_eq!(r.len(), 65535);
}

#[tokio::test]
async fn fake_delay_does_not_block_and_max_concurrent() {
    let fb = FakeBackend::start().await;
    let s = udp_sock(fb.addr).await;
    let slow = query("delay-400.example.", RecordType::A, 1);
    let fast = query("ok.example.", RecordType::A, 2);
    let t0 = Instant::now();
    s.send(&slow).await.unwrap();
    s.send(&fast).await.unwrap();
    let first = recv(&s, T).await.unwrap();
    assert_eq!(msg_id(&first), 2, "fast answer first");
    let second = recv(&s, T).await.unwrap();
    assert_eq!(msg_id(&second), 1);
    assert_normal(&second, &slow);
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(fb.max_concurrent(), 1);

    fb.reset_counters();
    for id in 10..15u16 {
        s.send(&query("Delay-200.example.", RecordType::A, id)).await.unwrap();
    }
    for _ in 0..5 {
        recv(&s, T).await.expect("delayed answer");
    }
    assert_eq!(fb.max_concurrent(), 5);
    assert_eq!(fb.in_flight(), 0);
}

#[tokio::test]
async fn fake_tcp_pipelining_out_of_order() {
    let fb = FakeBackend::start().await;
    let mut c = TcpStream::connect(fb.addr).await.unwrap();
    write_frame(&mut c, &query("delay-300.example.", RecordType::A, 1)).await.unwrap();
    write_frame(&mut c, &query("ok.example.", RecordType::A, 2)).await.unwrap();
    write_frame(&mut c, &query("tc-3000.example.", RecordType::TXT, 3)).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = tokio::time::timeout(T, read_frame(&mut c)).await.unwrap().unwrap();
        if msg_id(&r) == 3 {
            assert_eq!(r.len(), 3000);
        }
        ids.push(msg_id(&r));
    }
    assert_eq!(ids.last(), Some(&1), "delayed answer last: {ids:?}");
    // the connection stays open for more
    write_frame(&mut c, &query("ok.example.", RecordType::A, 4)).await.unwrap();
    let r = tokio::time::timeout(T, read_frame(&mut c)).await.unwrap().unwrap();
    assert_eq!(msg_id(&r), 4);
    assert_eq!(fb.tcp_connections(), 1);
    assert_eq!(fb.tcp_queries(), 4);
    assert_eq!(fb.max_concurrent(), 1);
}

#[tokio::test]
async fn fake_spoof_modes_udp() {
    let fb = FakeBackend::start().await;
    for mode in ["wrongid", "otherq", "garbage", "notqr", "otherport"] {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let q = query(&format!("{mode}.example."), RecordType::A, 0xFFFF);
        s.send_to(&q, fb.addr).await.unwrap();
        let (bad, from_bad) = recv_from(&s, T).await.expect("bad answer");
        let (good, from_good) = recv_from(&s, T).await.expect("good answer");
        assert_normal(&good, &q);
        assert_eq!(from_good, fb.addr);
        match mode {
            "wrongid" => {
                let m = parse(&bad);
                assert_eq!(m.id(), 0); // 0xFFFF + 1 wraps
                assert_eq!(a_records(&m), vec![SPOOF_A]);
            }
            "otherq" => {
                let m = parse(&bad);
                assert_eq!(m.id(), 0xFFFF);
                assert_eq!(m.queries()[0].name().to_ascii(), "other.example.");
                assert_eq!(m.queries()[0].query_type(), RecordType::A);
                assert_eq!(a_records(&m), vec![SPOOF_A]);
            }
            "garbage" => assert_eq!(bad.len(), 40),
            "notqr" => {
                let m = parse(&bad);
                assert_eq!(m.message_type(), MessageType::Query);
                assert_eq!(a_records(&m), vec![SPOOF_A]);
            }
            "otherport" => {
                let m = parse(&bad);
                assert_eq!(m.id(), 0xFFFF);
                assert_eq!(m.message_type(), MessageType::Response);
                assert_eq!(a_records(&m), vec![SPOOF_A]);
                assert_ne!(from_bad.port(), fb.addr.port());
            }
            _ => unreachable!(),
        }
        if mode != "otherport" {
            assert_eq!(from_bad, fb.addr);
        }
    }
}

#[tokio::test]
async fn fake_spoof_modes_tcp_and_twice() {
    let fb = FakeBackend::start().await;
    let mut c = TcpStream::connect(fb.addr).await.unwrap();
    for (mode, frames) in [("wrongid", 2), ("otherq", 2), ("garbage", 2), ("notqr", 2), ("otherport", 1), ("twice", 2)]
    {
        let q = query(&format!("{mode}.example."), RecordType::A, 42);
        write_frame(&mut c, &q).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..frames {
            got.push(tokio::time::timeout(T, read_frame(&mut c)).await.unwrap().unwrap());
        }
        assert_normal(got.last().unwrap(), &q);
        if mode == "twice" {
            assert_eq!(got[0], got[1]);
        }
    }
    // nothing extra arrived
    let mut b = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(200), c.read(&mut b)).await.is_err());

    let s = udp_sock(fb.addr).await;
    let q = query("twice.example.", RecordType::A, 43);
    s.send(&q).await.unwrap();
    let a = recv(&s, T).await.unwrap();
    let b = recv(&s, T).await.unwrap();
    assert_eq!(a, b);
    assert_normal(&a, &q);
}

#[tokio::test]
async fn fake_down_counts_but_drops() {
    let fb = FakeBackend::start().await;
    fb.set_down(true);
    let q = query("ok.example.", RecordType::A, 1);
    let short = Duration::from_millis(250);
    assert!(udp_exchange(fb.addr, &q, short).await.is_err());
    assert!(tcp_exchange(fb.addr, &q, short).await.is_err());
    // unparseable input is counted and recorded too
    let s = udp_sock(fb.addr).await;
    s.send(b"xx").await.unwrap();
    assert_eq!(fb.tcp_connections(), 1);
    fb.set_down(false);
    assert_normal(&udp_exchange(fb.addr, &q, T).await.unwrap(), &q);
    assert!(recv(&s, Duration::from_millis(100)).await.is_none());
    assert_eq!(fb.udp_queries(), 3);
    assert_eq!(fb.tcp_queries(), 1);
    assert_eq!(fb.received().len(), 4);
    assert!(fb.received().contains(&b"xx".to_vec()));
}

#[tokio::test]
async fn fake_backend_stops_on_drop() {
    let fb = FakeBackend::start().await;
    let addr = fb.addr;
    drop(fb);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------
// real backends

#[tokio::test]
async fn unbound_answers_udp_and_tcp() {
    let ub = Unbound::start();
    let q = query("www.example.test.", RecordType::A, 1);
    for r in [udp_exchange(ub.addr, &q, T).await.unwrap(), tcp_exchange(ub.addr, &q, T).await.unwrap()] {
        assert_eq!(a_records(&parse(&r)), vec![support::unbound::WWW_A]);
    }
    let q = query("www.example.test.", RecordType::AAAA, 2);
    let m = parse(&udp_exchange(ub.addr, &q, T).await.unwrap());
    assert_eq!(m.answers().len(), 1);
    let q = query("mixed.example.test.", RecordType::A, 3);
    let m = parse(&udp_exchange(ub.addr, &q, T).await.unwrap());
    assert_eq!(a_records(&m), vec![support::unbound::MIXED_A]);

    // big: TC over UDP without EDNS, complete over TCP
    let q = query("big.example.test.", RecordType::TXT, 4);
    let m = parse(&udp_exchange(ub.addr, &q, T).await.unwrap());
    assert!(m.truncated());
    let r = tcp_exchange(ub.addr, &q, T).await.unwrap();
    assert!(r.len() > 2900 && r.len() < 3500, "big is {} bytes", r.len());
    let m = parse(&r);
    assert!(!m.truncated());
    assert_eq!(txt_records(&m).len(), support::unbound::BIG_TXT_RECORDS);

    let q = query("huge.example.test.", RecordType::TXT, 5);
    let r = tcp_exchange(ub.addr, &q, T).await.unwrap();
    assert!(r.len() > 36_000 && r.len() < 45_000, "huge is {} bytes", r.len());
    assert_eq!(txt_records(&parse(&r)).len(), support::unbound::HUGE_TXT_RECORDS);

    let q = query("nothere.example.test.", RecordType::A, 6);
    let m = parse(&udp_exchange(ub.addr, &q, T).await.unwrap());
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
}

#[tokio::test]
async fn bind_answers_udp_and_tcp() {
    let b = Bind::start();
    let q = query("www.example.test.", RecordType::A, 1);
    for r in [udp_exchange(b.addr, &q, T).await.unwrap(), tcp_exchange(b.addr, &q, T).await.unwrap()] {
        let m = parse(&r);
        assert!(m.authoritative());
        assert_eq!(a_records(&m), vec![support::bind::WWW_A]);
    }
    let q = query("example.test.", RecordType::SOA, 2);
    let m = parse(&udp_exchange(b.addr, &q, T).await.unwrap());
    assert_eq!(m.answers().len(), 1);
}

// ---------------------------------------------------------------------------
// PROXY v2, Unbound behind it, query logs, ECS

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn proxy_v2_headers_encode_and_decode() {
    use support::proxy_v2::{header, parse, Transport, SIGNATURE};
    let h = header(Transport::Udp, sa("127.0.0.2:40000"), sa("127.0.0.1:853"));
    let mut want = SIGNATURE.to_vec();
    want.extend_from_slice(&[0x21, 0x12, 0, 12, 127, 0, 0, 2, 127, 0, 0, 1, 0x9c, 0x40, 0x03, 0x55]);
    assert_eq!(h, want);
    let tcp4 = header(Transport::Tcp, sa("127.0.0.2:40000"), sa("127.0.0.1:853"));
    assert_eq!((tcp4[13], tcp4.len()), (0x11, 28));
    // IPv6 beside IPv4: both IPv6, the IPv4 one mapped
    let h6 = header(Transport::Udp, sa("[::1]:5"), sa("127.0.0.1:853"));
    assert_eq!((h6[13], h6.len(), u16::from_be_bytes([h6[14], h6[15]])), (0x22, 52, 36));
    let d = parse(&h6).unwrap();
    assert_eq!(d.transport, Some(Transport::Udp));
    assert_eq!(d.src, Some(sa("[::1]:5")));
    assert_eq!(d.dst, Some(sa("[::ffff:127.0.0.1]:853")));
    assert_eq!(d.len, 52);
    let tcp6 = header(Transport::Tcp, sa("[2001:db8::1]:1"), sa("[::1]:2"));
    assert_eq!(tcp6[13], 0x21);
    let mut with_payload = header(Transport::Tcp, sa("127.0.0.3:1"), sa("127.0.0.1:2"));
    with_payload.extend_from_slice(b"rest");
    let d = parse(&with_payload).unwrap();
    assert_eq!(
        (d.src, d.transport, &with_payload[d.len..]),
        (Some(sa("127.0.0.3:1")), Some(Transport::Tcp), &b"rest"[..])
    );
    assert!(parse(&query("x.", RecordType::A, 1)).is_err());
    assert!(parse(&h[..20]).is_err());
}

/// A proxy-protocol Unbound: answers only behind a header, takes the claimed address as the
/// client for its ACL and its log, over UDP and over TCP (one header, pipelined queries).
#[tokio::test]
async fn unbound_behind_proxy_v2_uses_the_claimed_client() {
    use support::client::{tcp_exchange_proxied, udp_exchange_proxied};
    let opts = support::UnboundOptions::default()
        .proxy_protocol()
        .query_log()
        .access("127.0.0.3/32 refuse")
        .access("::1 allow");
    let ub = tokio::task::spawn_blocking(move || Unbound::start_opts(&opts)).await.unwrap();
    let www = |id| query("www.example.test.", RecordType::A, id);
    let claims = [
        ("127.0.0.2:40002", ResponseCode::NoError),
        ("127.0.0.3:40003", ResponseCode::Refused),
        ("[::1]:40001", ResponseCode::NoError),
    ];
    for (i, (claim, rcode)) in claims.iter().enumerate() {
        let id = 10 + i as u16;
        let m = parse(&udp_exchange_proxied(ub.addr, sa(claim), &www(id), T).await.unwrap());
        assert_eq!((m.id(), m.response_code()), (id, *rcode), "UDP as {claim}");
        if *rcode == ResponseCode::NoError {
            assert_eq!(a_records(&m), vec![support::unbound::WWW_A], "UDP as {claim}");
        } else {
            // Unbound's REFUSED: the 12-byte header alone, no question
            assert!(m.queries().is_empty());
        }
        // TCP: one header, three queries pipelined behind it
        let msgs: Vec<Vec<u8>> = (0..3).map(|k| www(100 * (i as u16 + 1) + k)).collect();
        let answers = tcp_exchange_proxied(ub.addr, sa(claim), &msgs, T).await.unwrap();
        assert_eq!(answers.len(), 3);
        for a in &answers {
            assert_eq!(parse(a).response_code(), *rcode, "TCP as {claim}");
        }
    }
    // TC over UDP behind a header, the whole answer over TCP behind one
    let big = query("big.example.test.", RecordType::TXT, 50);
    assert!(parse(&udp_exchange_proxied(ub.addr, sa("127.0.0.2:1"), &big, T).await.unwrap()).truncated());
    let a = tcp_exchange_proxied(ub.addr, sa("127.0.0.2:2"), &[big], T).await.unwrap();
    assert_eq!(txt_records(&parse(&a[0])).len(), support::unbound::BIG_TXT_RECORDS);
    // Without a header: dropped (no answer), logged as an error
    assert!(udp_exchange(ub.addr, &www(60), Duration::from_millis(500)).await.is_err());
    assert!(tcp_exchange(ub.addr, &www(61), Duration::from_millis(500)).await.is_err());

    // The log names the claimed clients (query lines), the refused one only by a reply line.
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let done =
        ub.wait_for_entry(T, |e| e.client == ip("127.0.0.2") && e.name == "big.example.test." && e.rcode.is_some());
    assert!(done.is_some(), "{}", ub.log());
    for (client, queries, replies, rcode) in
        [("127.0.0.2", 6, 6, "NOERROR"), ("::1", 4, 4, "NOERROR"), ("127.0.0.3", 0, 4, "REFUSED")]
    {
        let entries = ub.log_entries_of(ip(client));
        let q = entries.iter().filter(|e| e.rcode.is_none()).count();
        let r: Vec<_> = entries.iter().filter_map(|e| e.rcode.as_deref()).collect();
        assert_eq!((q, r.len()), (queries, replies), "{client}: {}", ub.log());
        assert!(r.iter().all(|rc| *rc == rcode), "{client}: {r:?}");
    }
    let refused = ub.log_entries_of(ip("127.0.0.3"));
    assert!(refused.iter().all(|e| e.name == "null" && e.qtype == "TYPE0"), "{refused:?}");
    assert!(ub.log().contains("error: proxy_protocol: could not match PROXYv2 header"), "{}", ub.log());
    // The readiness probe claimed its own 127.0.0.1 socket.
    assert!(!ub.log_entries_of(ip("127.0.0.1")).is_empty());
}

/// IPv6 claims and `do-ip6: no`: without an `access-control` line for it, `::1` is refused
/// (Unbound adds its IPv6 defaults only with do-ip6: yes); an IPv4-mapped claim is an IPv6
/// address to the ACL (refused under `127.0.0.0/8 allow`), logged as such.
#[tokio::test]
async fn unbound_acl_for_ipv6_and_mapped_claims() {
    use support::client::udp_exchange_proxied;
    let www = query("www.example.test.", RecordType::A, 1);
    let opts = support::UnboundOptions::default().proxy_protocol().query_log();
    let ub = tokio::task::spawn_blocking(move || Unbound::start_opts(&opts)).await.unwrap();
    for claim in ["[::1]:1", "[::ffff:127.0.0.2]:1", "[2001:db8::7]:1"] {
        let m = parse(&udp_exchange_proxied(ub.addr, sa(claim), &www, T).await.unwrap());
        assert_eq!(m.response_code(), ResponseCode::Refused, "{claim}");
    }
    let mapped: std::net::IpAddr = "::ffff:127.0.0.2".parse().unwrap();
    assert!(
        ub.wait_for_entry(T, |e| e.client == mapped && e.rcode.as_deref() == Some("REFUSED")).is_some(),
        "{}",
        ub.log()
    );
    drop(ub);
    let opts = support::UnboundOptions::default().proxy_protocol().extra("do-ip6: yes");
    let ub = tokio::task::spawn_blocking(move || Unbound::start_opts(&opts)).await.unwrap();
    let m = parse(&udp_exchange_proxied(ub.addr, sa("[::1]:1"), &www, T).await.unwrap());
    assert_eq!(m.response_code(), ResponseCode::NoError, "do-ip6: yes allows ::1 by default");
}

/// BIND's query log with ECS, and what BIND answers to ECS.
#[tokio::test]
async fn bind_query_log_shows_ecs_and_the_answer_echoes_it() {
    use support::client::{ecs_option, ecs_options, query_ecs, Ecs};
    let b = tokio::task::spawn_blocking(Bind::start_querylog).await.unwrap();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    // The option by hand: family 1, source 24, scope 0, address 127.0.0
    let ecs = (8u16, vec![0, 1, 24, 0, 127, 0, 0]);
    assert_eq!(ecs_option(ip("127.0.0.2"), 24), ecs);
    let q = query_edns("www.example.test.", RecordType::A, 0x0ec5, false, false, vec![ecs]);
    let r = udp_exchange(b.addr, &q, T).await.unwrap();
    let m = parse(&r);
    assert_eq!(a_records(&m), vec![support::bind::WWW_A]);
    // Echoed with scope 0
    let want = Ecs { family: 1, source_prefix: 24, scope_prefix: 0, address: vec![127, 0, 0] };
    assert_eq!(ecs_options(&r), vec![want.clone()]);
    assert_eq!(want.to_string(), "127.0.0.0/24/0");
    let e = b.wait_for_query(T, |e| e.ecs.is_some()).unwrap_or_else(|| panic!("{}", b.stderr()));
    assert_eq!(e.ecs.as_deref(), Some("127.0.0.0/24/0"));
    assert!(e.line.contains("query: www.example.test IN A +E(0) (127.0.0.1) [ECS 127.0.0.0/24/0]"), "{}", e.line);
    assert_eq!(
        (e.client.ip(), e.name.as_str(), e.qtype.as_str(), e.flags.as_str()),
        (ip("127.0.0.1"), "www.example.test", "A", "+E(0)")
    );

    // IPv6 /56 over TCP
    let q = query_ecs("www.example.test.", RecordType::A, 2, ip("2001:db8:1:2ff::9"), 56);
    let r = tcp_exchange(b.addr, &q, T).await.unwrap();
    assert_eq!(ecs_options(&r)[0].to_string(), "2001:db8:1:200::/56/0");
    let e = b.wait_for_query(T, |e| e.flags.ends_with('T') && e.ecs.is_some()).unwrap();
    assert_eq!(e.ecs.as_deref(), Some("2001:db8:1:200::/56/0"));

    // No ECS asked, none given back, none logged
    let r = udp_exchange(b.addr, &query_edns("www.example.test.", RecordType::A, 3, false, false, vec![]), T)
        .await
        .unwrap();
    assert!(ecs_options(&r).is_empty());
    // Address bits past the prefix: FORMERR
    let dirty =
        query_edns("www.example.test.", RecordType::A, 4, false, false, vec![(8, vec![0, 1, 24, 0, 127, 0, 0, 2])]);
    assert_eq!(parse(&udp_exchange(b.addr, &dirty, T).await.unwrap()).response_code(), ResponseCode::FormErr);
    // Two ECS options: the first counts
    let two = query_edns(
        "www.example.test.",
        RecordType::A,
        5,
        false,
        false,
        vec![ecs_option(ip("198.51.100.7"), 24), ecs_option(ip("127.0.0.2"), 24)],
    );
    let r = udp_exchange(b.addr, &two, T).await.unwrap();
    assert_eq!(ecs_options(&r).iter().map(|e| e.to_string()).collect::<Vec<_>>(), ["198.51.100.0/24/0"]);
    assert!(b.wait_for_query(T, |e| e.ecs.as_deref() == Some("198.51.100.0/24/0")).is_some());
    let log = b.query_log();
    assert_eq!(log.iter().filter(|e| e.ecs.is_some()).count(), 3, "{log:#?}");
    assert!(log.iter().any(|e| e.ecs.is_none() && e.flags == "+E(0)"), "the plain EDNS query: {log:#?}");
}

#[test]
fn ecs_and_ede_helpers() {
    use support::client::{ecs_option, ecs_options, ede_options, query_ecs};
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(ecs_option(ip("198.51.100.77"), 24).1, vec![0, 1, 24, 0, 198, 51, 100]);
    assert_eq!(ecs_option(ip("198.51.100.77"), 20).1, vec![0, 1, 20, 0, 198, 51, 96]);
    assert_eq!(ecs_option(ip("198.51.100.77"), 0).1, vec![0, 1, 0, 0]);
    assert_eq!(
        ecs_option(ip("2001:db8:aaaa:bbff::1"), 56).1,
        vec![0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xaa, 0xbb]
    );
    let q = query_ecs("x.example.", RecordType::A, 1, ip("198.51.100.77"), 24);
    let got = ecs_options(&q);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ip(), Some(ip("198.51.100.0")));
    assert_eq!(got[0].to_string(), "198.51.100.0/24/0");
    assert!(ecs_options(&query("x.example.", RecordType::A, 1)).is_empty());
    let mut ede = 18u16.to_be_bytes().to_vec();
    ede.extend_from_slice(b"rate limited");
    let m = query_edns("x.example.", RecordType::A, 1, false, false, vec![(15, ede), (8, vec![0, 1, 0, 0])]);
    assert_eq!(ede_options(&m), vec![(18, "rate limited".to_string())]);
}

#[tokio::test]
async fn clients_connect_from_chosen_local_addresses() {
    // plain TCP: the server sees the chosen source
    for (listen, from) in [("127.0.0.1:0", "127.0.0.2"), ("127.0.0.1:0", "127.0.0.3"), ("[::1]:0", "::1")] {
        let l = TcpListener::bind(listen).await.unwrap();
        let to = l.local_addr().unwrap();
        let from: std::net::IpAddr = from.parse().unwrap();
        let (_c, accepted) = tokio::join!(client::tcp_connect_from(to, from), l.accept());
        assert_eq!(accepted.unwrap().1.ip(), from);
    }
    // DoT through the echo server from 127.0.0.2, and the local address says so
    let srv = echo_server().await;
    let mut c = DotClient::connect_from(srv.addr, "127.0.0.2".parse().unwrap()).await.unwrap();
    assert_eq!(c.local_addr().unwrap().ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
    let q = query("www.example.test.", RecordType::A, 3);
    assert_eq!(c.exchange(&q).await, q);
    let c = DotClient::connect_from_with(srv.addr, "127.0.0.3".parse().unwrap(), &ClientOptions::tls12_only())
        .await
        .unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    // an IPv4 listener cannot be reached from ::1
    assert!(DotClient::connect_from(srv.addr, "::1".parse().unwrap()).await.is_err());
}

#[test]
fn unbound_and_bind_are_killed_on_drop() {
    let ub = Unbound::start();
    let b = Bind::start();
    let pids = [ub.pid(), b.pid()];
    let dirs = [ub.dir().to_path_buf(), b.dir().to_path_buf()];
    drop(ub);
    drop(b);
    for (pid, dir) in pids.iter().zip(&dirs) {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!dir.exists());
    }
}

// ---------------------------------------------------------------------------
// DoT client against an in-test rustls echo server

struct EchoServer {
    addr: SocketAddr,
    pin: String,
    _task: tokio::task::JoinHandle<()>,
}

/// A rustls server (ALPN "dot", TLS 1.2 + 1.3) that echoes each framed
/// message back in its own write, then answers a close_notify with its own.
async fn echo_server() -> EchoServer {
    let cert = gen_cert();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(client::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.cert_der.clone())], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"dot".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                loop {
                    match read_frame(&mut tls).await {
                        Ok(m) => {
                            if write_frame(&mut tls, &m).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => {
                            // EOF (close_notify) or error: close cleanly.
                            let _ = tls.shutdown().await;
                            return;
                        }
                    }
                }
            });
        }
    });
    EchoServer { addr, pin: cert.pin, _task: task }
}

#[tokio::test]
async fn dot_client_talks_to_rustls_echo_server() {
    let srv = echo_server().await;
    let mut c = DotClient::connect(srv.addr).await.unwrap();
    assert_eq!(c.negotiated_alpn().as_deref(), Some(&b"dot"[..]));
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert!(!c.was_resumed());
    assert_eq!(c.peer_spki_sha256_base64(), srv.pin);

    let q = query("www.example.test.", RecordType::A, 77);
    assert_eq!(c.exchange(&q).await, q);
    let before = c.app_data_records_received();
    for i in 0..5u16 {
        let q = query("x.example.", RecordType::A, i);
        c.send(&q).await.unwrap();
        assert_eq!(c.recv_timeout(T).await.unwrap().unwrap(), q);
    }
    assert_eq!(c.app_data_records_received() - before, 5);
    assert!(c.records_received() >= c.app_data_records_received());

    // a frame split over two records, and two frames in one record
    let q = query_edns("split.example.", RecordType::TXT, 9, true, false, vec![]);
    let frame = client::framed(&q);
    c.send_raw(&frame[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send_raw(&frame[1..]).await.unwrap();
    assert_eq!(c.recv_timeout(T).await.unwrap().unwrap(), q);
    let mut two = frame.clone();
    two.extend_from_slice(&frame);
    c.send_raw(&two).await.unwrap();
    assert_eq!(c.recv_timeout(T).await.unwrap().unwrap(), q);
    assert_eq!(c.recv_timeout(T).await.unwrap().unwrap(), q);

    // timeout
    let e = c.recv_timeout(Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);

    // close_notify: the server closes cleanly, we read Ok(None)
    c.close_notify().await.unwrap();
    assert_eq!(c.recv_timeout(T).await.unwrap(), None);
}

#[tokio::test]
async fn dot_client_tls12_alpn_and_resumption() {
    let srv = echo_server().await;
    let c = DotClient::connect_with(srv.addr, &ClientOptions::tls12_only()).await.unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(c.peer_spki_sha256_base64(), srv.pin);
    drop(c);

    // no ALPN offered: server accepts without ALPN
    let opts = ClientOptions { alpn: vec![], ..ClientOptions::tls13_only() };
    let c = DotClient::connect_with(srv.addr, &opts).await.unwrap();
    assert_eq!(c.negotiated_alpn(), None);
    drop(c);

    // wrong ALPN: server refuses
    let opts = ClientOptions { alpn: vec![b"h2".to_vec()], ..Default::default() };
    assert!(DotClient::connect_with(srv.addr, &opts).await.is_err());

    // resumption, TLS 1.3: the ticket arrives after the handshake, so talk once
    let opts = ClientOptions::with_resumption();
    let mut c = DotClient::connect_with(srv.addr, &opts).await.unwrap();
    assert!(!c.was_resumed());
    let q = query("a.example.", RecordType::A, 1);
    assert_eq!(c.exchange(&q).await, q);
    drop(c);
    let mut c = DotClient::connect_with(srv.addr, &opts).await.unwrap();
    assert!(c.was_resumed(), "TLS 1.3 resumption");
    assert_eq!(c.exchange(&q).await, q);

    // resumption, TLS 1.2
    let opts = ClientOptions { versions: vec![&rustls::version::TLS12], ..ClientOptions::with_resumption() };
    let c = DotClient::connect_with(srv.addr, &opts).await.unwrap();
    assert!(!c.was_resumed());
    drop(c);
    let c = DotClient::connect_with(srv.addr, &opts).await.unwrap();
    assert!(c.was_resumed(), "TLS 1.2 resumption");

    // without a shared cache: no resumption
    let c = DotClient::connect(srv.addr).await.unwrap();
    assert!(!c.was_resumed());
}

#[tokio::test]
async fn dot_client_connect_failures_and_closed_detection() {
    // nothing listening
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, support::free_port()));
    assert!(DotClient::connect(addr).await.is_err());

    // a TCP server that never speaks TLS and closes at once
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    assert!(DotClient::connect(addr).await.is_err());
    let mut raw = TcpStream::connect(addr).await.unwrap();
    assert!(client::is_closed_within(&mut raw, T).await);

    // an echo server keeps an idle connection open
    let srv = echo_server().await;
    let mut c = DotClient::connect(srv.addr).await.unwrap();
    assert!(!c.is_closed_within(Duration::from_millis(200)).await);
    let mut raw = TcpStream::connect(srv.addr).await.unwrap();
    assert!(!client::is_closed_within(&mut raw, Duration::from_millis(200)).await);
}

// ---------------------------------------------------------------------------
// certificates and processes

#[test]
fn make_cert_writes_pem_and_pin_matches_spki() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pin) = support::make_cert(dir.path());
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(pin.len(), 44);
    // the pin computed from the cert equals one computed from the key's SPKI
    let c = gen_cert();
    let key = rcgen::KeyPair::from_pem(&c.key_pem).unwrap();
    use base64::Engine as _;
    let from_key = base64::engine::general_purpose::STANDARD.encode(client::sha256(&key.public_key_der()));
    assert_eq!(c.pin, from_key);
    assert_eq!(spki_pin_base64(&c.cert_der), c.pin);
    assert_eq!(support::dotgate::parse_pin("x pin-sha256=\"abc=\" y"), Some("abc=".into()));
}

#[test]
fn process_runner_collects_output_and_exits() {
    // The dotgate binary itself (whatever it does with --help, it must exit).
    let mut p = Dotgate::start_raw(&["--help"]);
    assert!(p.wait_exit(Duration::from_secs(10)).is_some(), "dotgate --help did not exit");

    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
    let mut p = support::process::TestProcess::spawn("sh", cmd);
    let st = p.wait_exit(Duration::from_secs(5)).expect("sh exits");
    assert_eq!(st.code(), Some(3));
    assert_eq!(p.stdout(), "out\n");
    assert_eq!(p.stderr(), "err\n");

    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    let mut p = support::process::TestProcess::spawn("sleep", cmd);
    assert!(p.wait_exit(Duration::from_millis(100)).is_none());
    p.signal(libc::SIGTERM);
    let st = p.wait_exit(Duration::from_secs(5)).expect("sleep dies");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM));
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    let p2 = support::process::TestProcess::spawn("sleep", cmd);
    let pid2 = p2.pid();
    drop(p2);
    assert!(!std::path::Path::new(&format!("/proc/{pid2}")).exists());
}
