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
