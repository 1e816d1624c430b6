//! The DNSENC frontend end to end (issue 16, docs/dnsenc.md): a client built from dotgate's own
//! `wire` and `crypto` modules (the reference client's parts) asks dotgate's DNSENC listener,
//! over UDP and TCP, with each query scheme, in front of a real Unbound; the answers equal a
//! plain query's. Then every rejection of §2.3 in its order, each with its exact RCODE and with
//! nothing reaching the backend, the cleartext policy, and the TC=1 path to TCP.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dotgate::frontend::dnsenc::crypto::{self, QueryPublicKey};
use dotgate::frontend::dnsenc::keys::ServerKey;
use dotgate::frontend::dnsenc::wire::{self, CodePoints, Nsk};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{a_records, parse, query, query_edns, txt_records, Dotgate, FakeBackend, Unbound};

const TIMEOUT: Duration = Duration::from_secs(5);
const CP: CodePoints = CodePoints { nsk_type: 65301, option_code: 65050, badcrypt: 3841 };

/// A key of `scheme` written to a 0600 file in `dir`.
fn key_file(dir: &Path, scheme: u16, rng: &mut StdRng) -> (PathBuf, ServerKey) {
    let key = ServerKey::generate(scheme, 10, rng).expect("generate a key");
    let path = dir.join(format!("{}.key", key.key_id));
    key.write_new(&path).expect("write the key file");
    (path, key)
}

/// dotgate with DNSENC on a free port beside DoT, with `keys`, in front of `backend`.
fn start(backend: SocketAddr, keys: &[&Path], extra: &[&str]) -> (Dotgate, SocketAddr) {
    let dnsenc = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut args = vec!["--dnsenc-listen".to_owned(), dnsenc.to_string(), "--workers".to_owned(), "2".to_owned()];
    for key in keys {
        args.push("--dnsenc-key".to_owned());
        args.push(key.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Dotgate::start(&[backend], &args), dnsenc)
}

/// One query as a DNSENC client sends it, and what it needs to open the answer.
struct Sent {
    envelope: Vec<u8>,
    response_key: Vec<u8>,
    response_scheme: u16,
    nsk_key_id: u32,
}

/// `inner` (a plain query) with the inner NSK of §3.1.1 added, encrypted to `server`'s key, in
/// an envelope advertising `udp_size`.
fn seal_query(server: &ServerKey, inner: &[u8], udp_size: u16, rng: &mut StdRng) -> Sent {
    let response_key: Vec<u8> = (0..32).map(|_| rng.random()).collect();
    let nsk = Nsk {
        key_id: rng.random(),
        priority: 0,
        reserved: 0,
        ns_name: vec![0],
        scheme: crypto::AES256_GCM,
        key: response_key.clone(),
        response_schemes: vec![],
    };
    let plaintext = with_nsk(inner, &nsk);
    let public = QueryPublicKey::new(server.key.scheme(), &server.key.public_key_data()).unwrap();
    let mut payload = Vec::new();
    public.encrypt(server.key_id, &plaintext, rng, &mut payload).unwrap();
    let nonce: [u8; 16] = rng.random();
    let mut envelope = Vec::new();
    let id = u16::from_be_bytes([inner[0], inner[1]]);
    wire::write_query_envelope(id, true, &nonce, udp_size, server.key_id, &payload, &CP, &mut envelope);
    Sent { envelope, response_key, response_scheme: crypto::AES256_GCM, nsk_key_id: nsk.key_id }
}

/// `query` with an NSK record appended to its Additional section (owner root, class IN, TTL 0).
fn with_nsk(query: &[u8], nsk: &Nsk) -> Vec<u8> {
    let mut out = query.to_vec();
    let arcount = u16::from_be_bytes([out[10], out[11]]) + 1;
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    let mut rdata = Vec::new();
    nsk.write_rdata(&mut rdata);
    out.push(0);
    out.extend_from_slice(&CP.nsk_type.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    out
}

/// The inner answer of a sealed response envelope; panics on anything else.
fn open(sent: &Sent, response: &[u8]) -> Vec<u8> {
    let envelope = wire::parse_response_envelope(response, &CP).expect("a response envelope");
    assert_eq!(envelope.rcode, 0, "clear RCODE of a sealed answer");
    assert!(!envelope.tc);
    let (key_id, payload) = envelope.option.expect("the DNSENC option");
    assert_eq!(key_id, sent.nsk_key_id, "the answer names the inner NSK's key id");
    crypto::open_response(sent.response_scheme, &sent.response_key, key_id, payload).expect("the answer opens")
}

fn udp_exchange(to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket.send_to(msg, to).unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = socket.recv_from(&mut buf).expect("an answer over UDP");
    buf.truncate(len);
    buf
}

fn tcp_exchange(to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    support::client::tcp_exchange_blocking(to, msg, TIMEOUT).expect("an answer over TCP")
}

/// The full RCODE of a clear envelope or answer (header bits and the OPT's extended bits).
fn full_rcode(msg: &[u8]) -> u16 {
    match wire::parse_response_envelope(msg, &CP) {
        Ok(envelope) => envelope.rcode,
        Err(_) => u16::from(msg[3] & 0x0F),
    }
}

#[test]
fn every_scheme_over_udp_and_tcp_answers_as_a_plain_query_would() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(16);
    let keys: Vec<(PathBuf, ServerKey)> = [crypto::X25519_HPKE, crypto::RSA2048_OAEP, crypto::RSA4096_OAEP]
        .into_iter()
        .map(|scheme| key_file(dir.path(), scheme, &mut rng))
        .collect();
    let paths: Vec<&Path> = keys.iter().map(|(p, _)| p.as_path()).collect();
    let (_dotgate, dnsenc) = start(unbound.addr, &paths, &[]);
    let plain = parse(
        &support::client::udp_exchange_blocking(unbound.addr, &query("www.example.test.", RecordType::A, 7), TIMEOUT)
            .unwrap(),
    );
    for (_, key) in &keys {
        for over_tcp in [false, true] {
            let id = rng.random();
            let sent = seal_query(key, &query("www.example.test.", RecordType::A, id), 1232, &mut rng);
            let response =
                if over_tcp { tcp_exchange(dnsenc, &sent.envelope) } else { udp_exchange(dnsenc, &sent.envelope) };
            assert_eq!(u16::from_be_bytes([response[0], response[1]]), id, "outer ID");
            let answer = parse(&open(&sent, &response));
            let what = format!("scheme {:#06x}, tcp {over_tcp}", key.key.scheme());
            assert_eq!(answer.id(), id, "{what}: inner ID");
            assert_eq!(answer.response_code(), ResponseCode::NoError, "{what}");
            assert_eq!(a_records(&answer), a_records(&plain), "{what}");
        }
    }
}

/// `msg` to `to` over UDP or TCP from the address 127.0.0.2, and the answer.
fn exchange_from_127_0_0_2(to: SocketAddr, msg: &[u8], over_tcp: bool) -> Vec<u8> {
    let from = std::net::IpAddr::from([127, 0, 0, 2]);
    let answer = if over_tcp {
        support::client::tcp_exchange_blocking_from(from, to, msg, TIMEOUT)
    } else {
        support::client::udp_exchange_blocking_from(from, to, msg, TIMEOUT)
    };
    answer.expect("an answer")
}

/// BIND as the backend: each scheme over UDP and TCP answers as BIND answers a plain query, and
/// BIND's query log shows only the inner names, asked from dotgate's address (127.0.0.1), never
/// the client's (127.0.0.2) nor anything under dnsenc.arpa.
#[test]
fn with_bind_behind_it_bind_sees_only_inner_queries_from_dotgate() {
    let bind = support::Bind::start_querylog();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let keys: Vec<(PathBuf, ServerKey)> = [crypto::X25519_HPKE, crypto::RSA2048_OAEP, crypto::RSA4096_OAEP]
        .into_iter()
        .map(|scheme| key_file(dir.path(), scheme, &mut rng))
        .collect();
    let paths: Vec<&Path> = keys.iter().map(|(p, _)| p.as_path()).collect();
    let (_dotgate, dnsenc) = start(bind.addr, &paths, &[]);
    // The plain query from 127.0.0.3, and its log line seen before counting what dotgate sends.
    let plain = {
        let socket = UdpSocket::bind("127.0.0.3:0").unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        socket.send_to(&query("www.example.test.", RecordType::A, 7), bind.addr).unwrap();
        let mut buf = vec![0u8; 65_535];
        let (len, _) = socket.recv_from(&mut buf).expect("BIND's plain answer");
        parse(&buf[..len])
    };
    let plain_logged = bind.wait_for_query(TIMEOUT, |e| e.client.ip() == std::net::IpAddr::from([127, 0, 0, 3]));
    assert!(plain_logged.is_some(), "BIND logs queries: {}", bind.stderr());
    let logged_before = bind.query_log().len();
    for (_, key) in &keys {
        for over_tcp in [false, true] {
            let id = rng.random();
            let sent = seal_query(key, &query("www.example.test.", RecordType::A, id), 1232, &mut rng);
            let response = exchange_from_127_0_0_2(dnsenc, &sent.envelope, over_tcp);
            let answer = parse(&open(&sent, &response));
            let what = format!("scheme {:#06x}, tcp {over_tcp}", key.key.scheme());
            assert_eq!(answer.id(), id, "{what}: inner ID");
            assert_eq!(answer.response_code(), ResponseCode::NoError, "{what}");
            assert!(answer.authoritative(), "{what}: BIND's AA bit comes through");
            assert_eq!(a_records(&answer), a_records(&plain), "{what}");
        }
    }
    let deadline = std::time::Instant::now() + TIMEOUT;
    while bind.query_log().len() < logged_before + 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = bind.query_log();
    let relayed: Vec<_> = log[logged_before..].iter().filter(|e| e.name == "www.example.test").collect();
    assert_eq!(relayed.len(), 6, "one backend query per DNSENC query: {relayed:#?}");
    for entry in &log[logged_before..] {
        assert_eq!(entry.client.ip(), std::net::IpAddr::from([127, 0, 0, 1]), "from dotgate: {}", entry.line);
    }
    assert!(log.iter().all(|e| !e.name.contains("dnsenc.arpa")), "no envelope reached BIND");
    assert!(log.iter().all(|e| e.client.ip() != std::net::IpAddr::from([127, 0, 0, 2])), "the client is not seen");
}

/// Every rejection in its order, each with its exact RCODE, and nothing reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_rcode_and_never_reaches_the_backend() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(3841);
    let (path, key) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let (rsa_path, rsa_key) = key_file(dir.path(), crypto::RSA2048_OAEP, &mut rng);
    let (_dotgate, dnsenc) = tokio::task::spawn_blocking({
        let (addr, path, rsa_path) = (backend.addr, path.clone(), rsa_path.clone());
        move || start(addr, &[&path, &rsa_path], &[])
    })
    .await
    .unwrap();
    let ask = |msg: Vec<u8>| tokio::task::spawn_blocking(move || udp_exchange(dnsenc, &msg));

    // Under dnsenc.arpa. without the option: REFUSED.
    let bare = query("abc.dnsenc.arpa.", RecordType::TXT, 1);
    assert_eq!(full_rcode(&ask(bare).await.unwrap()), 5, "no option: REFUSED");
    // The option shorter than 4 octets: FORMERR.
    let mut short = Vec::new();
    wire::write_query_envelope(2, true, &[7; 16], 1232, key.key_id, &[], &CP, &mut short);
    let short = shorten_option(&short, 3);
    assert_eq!(full_rcode(&ask(short).await.unwrap()), 1, "short option: FORMERR");
    // Unknown key id: BADCRYPT (header 1, extended 0xF0).
    let mut unknown = seal_query(&key, &query("www.example.", RecordType::A, 3), 1232, &mut rng).envelope;
    let sent_unknown = {
        let mut e = Vec::new();
        let (_, payload) = option_of(&unknown);
        wire::write_query_envelope(3, true, &[1; 16], 1232, key.key_id ^ 1, &payload, &CP, &mut e);
        e
    };
    let response = ask(sent_unknown).await.unwrap();
    assert_eq!((response[3] & 0x0F, full_rcode(&response)), (1, 3841), "unknown key: BADCRYPT");
    // A flipped ciphertext bit: BADCRYPT.
    let last = unknown.len() - 1;
    unknown[last] ^= 0x01;
    assert_eq!(full_rcode(&ask(unknown).await.unwrap()), 3841, "flipped bit: BADCRYPT");
    // Inner ID differs from the outer: FORMERR (sealed fine, wrong inside).
    let mut sent = seal_query(&key, &query("www.example.", RecordType::A, 4), 1232, &mut rng).envelope;
    sent[0..2].copy_from_slice(&5u16.to_be_bytes());
    assert_eq!(full_rcode(&ask(sent).await.unwrap()), 1, "inner ID mismatch: FORMERR");
    // No inner NSK: FORMERR.
    let public = QueryPublicKey::new(key.key.scheme(), &key.key.public_key_data()).unwrap();
    let mut payload = Vec::new();
    public.encrypt(key.key_id, &query("www.example.", RecordType::A, 6), &mut rng, &mut payload).unwrap();
    let mut no_nsk = Vec::new();
    wire::write_query_envelope(6, true, &[2; 16], 1232, key.key_id, &payload, &CP, &mut no_nsk);
    assert_eq!(full_rcode(&ask(no_nsk).await.unwrap()), 1, "no NSK: FORMERR");
    // More RSA blocks than any query needs: a well-formed query padded to 5 blocks (of 190
    // octets) would decrypt and be answered, but gets BADCRYPT before any block is decrypted.
    let padded = query_edns("www.example.", RecordType::A, 7, false, false, vec![(12, vec![0; 800])]);
    let sent = seal_query(&rsa_key, &padded, 1232, &mut rng);
    assert_eq!(option_of(&sent.envelope).1.len(), 5 * 256, "five blocks");
    assert_eq!(full_rcode(&ask(sent.envelope).await.unwrap()), 3841, "five RSA blocks: BADCRYPT");
    // A plain query under the default bootstrap policy: REFUSED.
    assert_eq!(full_rcode(&ask(query("www.example.", RecordType::A, 8)).await.unwrap()), 5, "plain A: REFUSED");
    // The option twice: FORMERR.
    let mut twice = seal_query(&key, &query("www.example.", RecordType::A, 30), 1232, &mut rng).envelope;
    let rdlen_at = twice.len() - option_of(&twice).1.len() - 4 - 4 - 2;
    let rdlen = u16::from_be_bytes([twice[rdlen_at], twice[rdlen_at + 1]]) + 8;
    twice[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    twice.extend_from_slice(&CP.option_code.to_be_bytes());
    twice.extend_from_slice(&4u16.to_be_bytes());
    twice.extend_from_slice(&key.key_id.to_be_bytes());
    assert_eq!(full_rcode(&ask(twice).await.unwrap()), 1, "the option twice: FORMERR");
    // An RSA payload one octet short of whole blocks: BADCRYPT.
    let whole = seal_query(&rsa_key, &query("www.example.", RecordType::A, 31), 1232, &mut rng).envelope;
    let (_, payload) = option_of(&whole);
    let mut cut = Vec::new();
    wire::write_query_envelope(31, true, &[3; 16], 1232, rsa_key.key_id, &payload[..payload.len() - 1], &CP, &mut cut);
    assert_eq!(full_rcode(&ask(cut).await.unwrap()), 3841, "a truncated block: BADCRYPT");
    // The ENCRYPT opcode (Method 2, out of scope): NOTIMP.
    let mut encrypt = seal_query(&key, &query("www.example.", RecordType::A, 32), 1232, &mut rng).envelope;
    encrypt[2] = (encrypt[2] & 0x87) | (2 << 3);
    assert_eq!(full_rcode(&ask(encrypt).await.unwrap()), 4, "opcode ENCRYPT: NOTIMP");
    // Well sealed, wrong inside: a response (QR=1), two questions, trailing bytes, an answer
    // scheme the key does not offer, a 16-octet answer key: FORMERR each.
    let sealed_inner = |inner: Vec<u8>, rng: &mut StdRng| {
        let public = QueryPublicKey::new(key.key.scheme(), &key.key.public_key_data()).unwrap();
        let mut payload = Vec::new();
        public.encrypt(key.key_id, &inner, rng, &mut payload).unwrap();
        let mut envelope = Vec::new();
        let id = u16::from_be_bytes([inner[0], inner[1]]);
        wire::write_query_envelope(id, true, &[4; 16], 1232, key.key_id, &payload, &CP, &mut envelope);
        envelope
    };
    let answer_key = |scheme: u16, len: usize| Nsk {
        key_id: 9,
        priority: 0,
        reserved: 0,
        ns_name: vec![0],
        scheme,
        key: vec![7; len],
        response_schemes: vec![],
    };
    let good_nsk = answer_key(crypto::AES256_GCM, 32);
    let mut response = with_nsk(&query("www.example.", RecordType::A, 33), &good_nsk);
    response[2] |= 0x80;
    let mut two_questions = query("www.example.", RecordType::A, 34);
    let question = two_questions[12..].to_vec();
    two_questions[5] = 2;
    two_questions.extend_from_slice(&question);
    let mut trailing = with_nsk(&query("www.example.", RecordType::A, 35), &good_nsk);
    trailing.push(0);
    for (inner, what) in [
        (response, "QR=1"),
        (with_nsk(&two_questions, &good_nsk), "QDCOUNT 2"),
        (trailing, "trailing bytes"),
        (with_nsk(&query("www.example.", RecordType::A, 36), &answer_key(0x80F7, 32)), "a scheme not offered"),
        (with_nsk(&query("www.example.", RecordType::A, 37), &answer_key(crypto::AES256_GCM, 16)), "a 16-octet key"),
    ] {
        let envelope = sealed_inner(inner, &mut rng);
        assert_eq!(full_rcode(&ask(envelope).await.unwrap()), 1, "{what}: FORMERR");
    }
    // Random bytes: what the query check says (an answer with its RCODE, or nothing).
    for round in 0..20 {
        let bytes: Vec<u8> = (0..40 + round).map(|_| rng.random()).collect();
        let expected = match dotgate::dns::check_query(&bytes) {
            dotgate::dns::QueryVerdict::Answer(code) => Some(u16::from(code)),
            dotgate::dns::QueryVerdict::Close => None,
            dotgate::dns::QueryVerdict::Relay { .. } => Some(5), // a plain query: REFUSED (bootstrap)
        };
        let got = tokio::task::spawn_blocking({
            let bytes = bytes.clone();
            move || {
                let timeout = Duration::from_millis(if expected.is_some() { 2000 } else { 300 });
                support::client::udp_exchange_blocking(dnsenc, &bytes, timeout).ok().map(|r| full_rcode(&r))
            }
        })
        .await
        .unwrap();
        assert_eq!(got, expected, "random bytes {bytes:02x?}");
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        backend.udp_queries() + backend.tcp_queries(),
        0,
        "nothing reached the backend: {:?}",
        backend.received()
    );

    // What the bootstrap policy lets through: a DNSKEY query, in the clear.
    let dnskey = parse(&ask(query("example.", RecordType::DNSKEY, 9)).await.unwrap());
    assert_eq!(dnskey.response_code(), ResponseCode::NoError);
    assert_eq!(backend.udp_queries(), 1, "the DNSKEY query was relayed");
}

/// An answer too large for the client's UDP size comes as a clear TC=1 envelope; over TCP the
/// same question comes whole.
#[test]
fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(1232);
    let (path, key) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let (_dotgate, dnsenc) = start(unbound.addr, &[&path], &[]);
    let big = query_edns("big.example.test.", RecordType::TXT, 11, false, false, vec![]);
    let sent = seal_query(&key, &big, 1232, &mut rng);
    let response = udp_exchange(dnsenc, &sent.envelope);
    let envelope = wire::parse_response_envelope(&response, &CP).unwrap();
    assert!(envelope.tc && envelope.option.is_none(), "a clear TC=1 envelope");
    let sent = seal_query(&key, &big, 1232, &mut rng);
    let answer = parse(&open(&sent, &tcp_exchange(dnsenc, &sent.envelope)));
    assert_eq!(txt_records(&answer).len(), support::unbound::BIG_TXT_RECORDS);
}

/// The DNSENC option of a query envelope: (key id, payload).
fn option_of(envelope: &[u8]) -> (u32, Vec<u8>) {
    let end = dotgate::dns::question_end(envelope).unwrap();
    match wire::parse_outer(envelope, end, &CP) {
        wire::Outer::Encrypted { key_id, payload, .. } => (key_id, payload.to_vec()),
        _ => panic!("not an encrypted envelope"),
    }
}

/// `envelope` (an empty-payload query envelope) with its option's data cut to `len` bytes.
fn shorten_option(envelope: &[u8], len: usize) -> Vec<u8> {
    // The option is the last thing: OPTION-CODE, OPTION-LENGTH, key id (4), empty payload.
    let mut out = envelope[..envelope.len() - 4].to_vec();
    out.extend_from_slice(&envelope[envelope.len() - 4..envelope.len() - 4 + len]);
    let opt_len_at = out.len() - len - 2;
    out[opt_len_at..opt_len_at + 2].copy_from_slice(&(len as u16).to_be_bytes());
    let rdlen_at = opt_len_at - 2 - 2;
    let rdlen = (4 + len) as u16;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    out
}

/// The operator's controls hold for DNSENC as for DoT: over `--max-qps-per-client` a client
/// gets REFUSED without its query being decrypted or relayed; a denied address gets nothing
/// over UDP and a closed connection over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_and_rate_limits_hold_for_dnsenc() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(15);
    let (path, key) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let (_dotgate, dnsenc) = tokio::task::spawn_blocking({
        let (addr, path) = (backend.addr, path.clone());
        move || start(addr, &[&path], &["--max-qps-per-client", "5", "--deny", "127.0.0.0/8", "--allow", "127.0.0.1"])
    })
    .await
    .unwrap();
    let mut answered = 0;
    let mut refused = 0;
    for id in 0..20u16 {
        let sent = seal_query(&key, &query("www.example.", RecordType::A, id), 1232, &mut rng);
        let response = tokio::task::spawn_blocking(move || udp_exchange(dnsenc, &sent.envelope)).await.unwrap();
        match response[3] & 0x0F {
            0 => answered += 1,
            5 => refused += 1,
            other => panic!("rcode {other}"),
        }
    }
    assert!((5..=7).contains(&answered) && answered + refused == 20, "{answered} answered, {refused} refused");
    assert!(backend.udp_queries() <= 7, "refused queries never reach the backend");

    // 127.0.0.2 is denied: no answer over UDP, the TCP connection closed unanswered.
    let from = std::net::IpAddr::from([127, 0, 0, 2]);
    let denied = tokio::task::spawn_blocking(move || {
        let probe = query("example.", RecordType::DNSKEY, 1);
        support::client::udp_exchange_blocking_from(from, dnsenc, &probe, Duration::from_millis(500)).is_err()
    });
    assert!(denied.await.unwrap(), "a denied address gets no answer over UDP");
    let closed = tokio::task::spawn_blocking(move || {
        let probe = query("example.", RecordType::DNSKEY, 2);
        support::client::tcp_exchange_blocking_from(from, dnsenc, &probe, TIMEOUT).is_err()
    });
    assert!(closed.await.unwrap(), "a denied address's TCP connection is closed unanswered");
}

/// A new key file is put in service on SIGHUP (and the old one's queries get BADCRYPT once it is
/// gone from the file); a broken file is refused with a log line and the keys in service stay.
#[test]
fn keys_reload_on_sighup_and_a_broken_file_is_refused() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let (first_path, first) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let live = dir.path().join("live.key");
    std::fs::copy(&first_path, &live).unwrap();
    let (dotgate, dnsenc) = start(unbound.addr, &[&live], &[]);
    let asks = |key: &ServerKey, rng: &mut StdRng| {
        let sent = seal_query(key, &query("www.example.test.", RecordType::A, 1), 1232, rng);
        let response = udp_exchange(dnsenc, &sent.envelope);
        full_rcode(&response)
    };
    assert_eq!(asks(&first, &mut rng), 0);

    let (second_path, second) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let temp = dir.path().join("live.tmp");
    std::fs::copy(&second_path, &temp).unwrap();
    std::fs::rename(&temp, &live).unwrap();
    dotgate.signal(libc::SIGHUP);
    assert!(dotgate.wait_for_stderr("reloaded the DNSENC keys", TIMEOUT), "{}", dotgate.stderr());
    assert_eq!(asks(&second, &mut rng), 0, "the new key decrypts");
    assert_eq!(asks(&first, &mut rng), 3841, "the old key is gone: BADCRYPT");

    std::fs::write(&temp, "# dotgate dnsenc key-id=7 priority=1 scheme=x25519 response=aes-256\nnot a key\n").unwrap();
    std::fs::rename(&temp, &live).unwrap();
    dotgate.signal(libc::SIGHUP);
    assert!(dotgate.wait_for_stderr("refusing the new DNSENC keys", TIMEOUT), "{}", dotgate.stderr());
    assert_eq!(asks(&second, &mut rng), 0, "the key in service stays");
}

/// With the key list in the config file, a key added there is in service after the next look
/// (every 2 s), without a signal; a list emptied there is one warning and the keys stay.
#[test]
fn the_config_files_key_list_reloads_when_the_file_changes() {
    let unbound = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let (first_path, first) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let (second_path, second) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let dnsenc = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let config = dir.path().join("dotgate.toml");
    let write = |keys: &[&Path]| {
        let keys: Vec<String> = keys.iter().map(|k| format!("{:?}", k.display().to_string())).collect();
        let text = format!("dnsenc-listen = [\"{dnsenc}\"]\ndnsenc-keys = [{}]\n", keys.join(", "));
        let temp = dir.path().join("dotgate.tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &config).unwrap();
    };
    write(&[&first_path]);
    let dotgate = Dotgate::start(&[unbound.addr], &["--config", config.to_str().unwrap(), "--workers", "2"]);
    let asks = |key: &ServerKey, rng: &mut StdRng| {
        let sent = seal_query(key, &query("www.example.test.", RecordType::A, 1), 1232, rng);
        full_rcode(&udp_exchange(dnsenc, &sent.envelope))
    };
    assert_eq!(asks(&first, &mut rng), 0);
    assert_eq!(asks(&second, &mut rng), 3841, "not loaded yet: BADCRYPT");

    write(&[&first_path, &second_path]);
    assert!(dotgate.wait_for_stderr("the DNSENC key list in", TIMEOUT), "{}", dotgate.stderr());
    assert!(dotgate.wait_for_stderr("reloaded the DNSENC keys", TIMEOUT), "{}", dotgate.stderr());
    assert_eq!(asks(&second, &mut rng), 0, "the added key decrypts, with no signal");
    assert_eq!(asks(&first, &mut rng), 0, "and the first still does");

    std::fs::write(&config, format!("dnsenc-listen = [\"{dnsenc}\"]\n")).unwrap();
    assert!(dotgate.wait_for_stderr("has no dnsenc-keys any more", TIMEOUT), "{}", dotgate.stderr());
    assert_eq!(asks(&second, &mut rng), 0, "the keys in service stay");
}

/// Step 4 of §2.3 end to end, against a controllable backend: the inner query arrives without
/// its NSK and with its EDNS size capped at what the client's outer size leaves after the
/// envelope; the backend's RCODE (SERVFAIL) and the relay's own SERVFAIL (no answer within
/// --upstream-timeout) go back sealed, not in the clear; an answer too big for the client's
/// size goes back as a clear TC=1 envelope; and /metrics counts it all, by scheme and by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_queries_are_capped_errors_come_back_sealed_and_metrics_count_them() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(44);
    let (x_path, x_key) = key_file(dir.path(), crypto::X25519_HPKE, &mut rng);
    let (rsa_path, rsa_key) = key_file(dir.path(), crypto::RSA2048_OAEP, &mut rng);
    let admin = support::ports::free_addr();
    let (_dotgate, dnsenc) = tokio::task::spawn_blocking({
        let (addr, admin) = (backend.addr, admin.to_string());
        move || start(addr, &[&x_path, &rsa_path], &["--admin", &admin, "--upstream-timeout", "0.3"])
    })
    .await
    .unwrap();
    let ask = move |key: &ServerKey, inner: Vec<u8>, rng: &mut StdRng| {
        let sent = seal_query(key, &inner, 1232, rng);
        let response = udp_exchange(dnsenc, &sent.envelope);
        (sent, response)
    };

    // The client's inner OPT says 4096; the outer envelope 1232.
    let inner = support::client::query_edns_sized("www.example.", RecordType::A, 11, 4096, false, false, vec![]);
    let (sent, response) = tokio::task::block_in_place(|| ask(&x_key, inner, &mut rng));
    assert_eq!(parse(&open(&sent, &response)).response_code(), ResponseCode::NoError);
    let relayed = backend.received().into_iter().last().expect("the backend got the inner query");
    assert_eq!(u16::from_be_bytes([relayed[10], relayed[11]]), 1, "only the OPT record: the NSK is gone");
    let question_len = dotgate::dns::question_end(&response).unwrap() - dotgate::dns::HEADER_LEN;
    let room = 1232 - wire::envelope_overhead(question_len) - crypto::payload_overhead(crypto::AES256_GCM);
    let opt = support::fake_backend::find_opt(&relayed).expect("the inner OPT record");
    assert_eq!(usize::from(opt.udp_size), room, "capped to what the outer size leaves");

    // The backend's SERVFAIL, sealed (the clear RCODE is NOERROR).
    let inner = query("servfail.example.", RecordType::A, 12);
    let (sent, response) = tokio::task::block_in_place(|| ask(&rsa_key, inner, &mut rng));
    assert_eq!(response[3] & 0x0F, 0, "NOERROR in the clear");
    assert_eq!(parse(&open(&sent, &response)).response_code(), ResponseCode::ServFail);
    // No answer from the backend within 0.3 s: the relay's own SERVFAIL, sealed too.
    let inner = query("drop.example.", RecordType::A, 13);
    let (sent, response) = tokio::task::block_in_place(|| ask(&x_key, inner, &mut rng));
    assert_eq!(response[3] & 0x0F, 0, "NOERROR in the clear");
    assert_eq!(parse(&open(&sent, &response)).response_code(), ResponseCode::ServFail);
    // An answer over the client's 1232 bytes: a clear TC=1 envelope.
    let inner = query("big-3000.example.", RecordType::TXT, 14);
    let (_, response) = tokio::task::block_in_place(|| ask(&x_key, inner, &mut rng));
    let envelope = wire::parse_response_envelope(&response, &CP).unwrap();
    assert!(envelope.tc && envelope.option.is_none(), "TC=1 in the clear");

    // Refused (no option), BADCRYPT (no such key), FORMERR (option too short).
    let bare = query("abc.dnsenc.arpa.", RecordType::TXT, 15);
    assert_eq!(full_rcode(&tokio::task::block_in_place(|| udp_exchange(dnsenc, &bare))), 5);
    let unknown = seal_query(&x_key, &query("www.example.", RecordType::A, 16), 1232, &mut rng).envelope;
    let (_, payload) = option_of(&unknown);
    let mut wrong_key = Vec::new();
    wire::write_query_envelope(16, true, &[1; 16], 1232, x_key.key_id ^ 1, &payload, &CP, &mut wrong_key);
    assert_eq!(full_rcode(&tokio::task::block_in_place(|| udp_exchange(dnsenc, &wrong_key))), 3841);
    let mut short = Vec::new();
    wire::write_query_envelope(17, true, &[7; 16], 1232, x_key.key_id, &[], &CP, &mut short);
    let short = shorten_option(&short, 3);
    assert_eq!(full_rcode(&tokio::task::block_in_place(|| udp_exchange(dnsenc, &short))), 1);

    let expected = [
        ("dotgate_dnsenc_queries_total{scheme=\"x25519\"}", 3.0),
        ("dotgate_dnsenc_queries_total{scheme=\"rsa2048\"}", 1.0),
        ("dotgate_dnsenc_queries_total{scheme=\"rsa4096\"}", 0.0),
        ("dotgate_dnsenc_errors_total{reason=\"truncated\"}", 1.0),
        ("dotgate_dnsenc_errors_total{reason=\"refused\"}", 1.0),
        ("dotgate_dnsenc_errors_total{reason=\"badcrypt\"}", 1.0),
        ("dotgate_dnsenc_errors_total{reason=\"formerr\"}", 1.0),
    ];
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let page = tokio::task::block_in_place(|| support::http::get(admin, "/metrics").1);
        let seen: Vec<(&str, Option<f64>)> =
            expected.iter().map(|(series, _)| (*series, support::http::sample(&page, series))).collect();
        if seen.iter().zip(&expected).all(|((_, got), (_, want))| *got == Some(*want)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "metrics {seen:?}, want {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With DNSENC off, a query under dnsenc.arpa. is a query like any other: relayed over DoT to
/// the backend untouched, and its answer returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dnsenc_a_dnsenc_arpa_query_is_relayed_like_any_other() {
    let backend = FakeBackend::start().await;
    let dotgate = tokio::task::spawn_blocking({
        let addr = backend.addr;
        move || Dotgate::start(&[addr], &[])
    })
    .await
    .unwrap();
    let mut client = support::DotClient::connect(dotgate.addr).await.unwrap();
    let asked = query("abc.dnsenc.arpa.", RecordType::TXT, 21);
    let answer = parse(&client.exchange(&asked).await);
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(txt_records(&answer), vec![b"hello".to_vec()], "the backend's answer");
    let relayed = backend.received().into_iter().last().expect("relayed");
    assert_eq!(relayed[12..], asked[12..], "everything but the ID as the client sent it");
}
