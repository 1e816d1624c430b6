//! DNSENC keys published and validated as the draft wants them (§2.1, the recursive-server
//! case), end to end with a real BIND: `dotgate dnsenc publish` puts the NSK RRset at the
//! reverse name of dotgate's DNSENC address in a zone BIND signs (`dnssec-policy`), and
//! `dotgate dnsenc query --trust-anchor` fetches it from dotgate itself, validates the chain
//! (through a DS at the parent, or straight to the zone's key), and asks. An unsigned NSK and
//! one whose signature does not verify are refused, and nothing is then asked; the apex is
//! refused by `publish`; a wrong TSIG secret is reported; and a key rotation under load, done
//! as the README says, loses no query.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Bind, Dotgate};

fn dotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dotgate")).args(args).output().expect("run dotgate")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `dotgate dnsenc keygen --scheme SCHEME --priority P` into a new folder of `dir`: the key file.
fn keygen(dir: &Path, scheme: &str, priority: u8) -> PathBuf {
    let keys = tempfile::tempdir_in(dir).unwrap().keep();
    let out = dotgate(&[
        "dnsenc",
        "keygen",
        "--scheme",
        scheme,
        "--priority",
        &priority.to_string(),
        "--out",
        keys.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "keygen: {}", text(&out));
    std::fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path()
}

/// A DNSENC listen address on `ip` (its reverse name is where the NSK goes).
fn dnsenc_addr(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((ip, support::free_port()))
}

/// dotgate serving DNSENC on `addr` (and DoT on a port of the harness), with `keys`, in front of `backend`, with `config`
/// holding the keys (so that a rotation rewrites it and sends SIGHUP).
fn start_dotgate(backend: SocketAddr, addr: SocketAddr, config: &Path, keys: &[&Path]) -> Dotgate {
    write_config(config, addr, keys);
    Dotgate::start(
        &[backend],
        &["--dnsenc-listen", &addr.to_string(), "--config", config.to_str().unwrap(), "--workers", "2"],
    )
}

fn write_config(config: &Path, addr: SocketAddr, keys: &[&Path]) {
    let keys: Vec<String> = keys.iter().map(|k| format!("{:?}", k.display().to_string())).collect();
    std::fs::write(config, format!("dnsenc-listen = [\"{addr}\"]\ndnsenc-keys = [{}]\n", keys.join(", "))).unwrap();
}

/// `dotgate dnsenc publish` of `keys` for `addr` into `zone` on `bind`.
fn publish(bind: &Bind, zone: &str, addr: SocketAddr, keys: &[&Path], ttl: u32) -> Output {
    let server = bind.addr.to_string();
    let listen = addr.to_string();
    let tsig = bind.tsig_key_file();
    let ttl = ttl.to_string();
    let mut args = vec![
        "dnsenc",
        "publish",
        "--server",
        &server,
        "--zone",
        zone,
        "--tsig-key",
        tsig.to_str().unwrap(),
        "--dnsenc-listen",
        &listen,
        "--ttl",
        &ttl,
    ];
    for key in keys {
        args.extend(["--dnsenc-key", key.to_str().unwrap()]);
    }
    dotgate(&args)
}

/// `dotgate dnsenc query @ADDR www.example.test A --trust-anchor ANCHOR EXTRA...`.
fn query(addr: SocketAddr, anchor: &Path, extra: &[&str]) -> Output {
    let server = format!("@{addr}");
    let mut args =
        vec!["dnsenc", "query", &server, "www.example.test", "A", "--trust-anchor", anchor.to_str().unwrap()];
    args.extend_from_slice(extra);
    dotgate(&args)
}

/// Waits (10 s max) until BIND serves `count` NSK records, signed, at `addr`'s reverse name.
fn wait_published(bind: &Bind, addr: SocketAddr, count: usize) {
    use hickory_proto::rr::RecordType;
    let [a, b, c, d] = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        _ => unreachable!(),
    };
    let name = format!("{d}.{c}.{b}.{a}.in-addr.arpa.");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let q = support::query_edns(&name, RecordType::Unknown(65301), 9, true, false, vec![]);
        let answer =
            support::parse(&support::client::udp_exchange_blocking(bind.addr, &q, Duration::from_secs(2)).unwrap());
        let nsks = answer.answers().iter().filter(|r| r.record_type() == RecordType::Unknown(65301)).count();
        let sigs = answer.answers().iter().filter(|r| r.record_type() == RecordType::RRSIG).count();
        if nsks == count && sigs > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{count} signed NSKs at {name} not served within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many queries for www.example.test BIND has logged (the harness's probes count too, so
/// tests compare before and after).
fn asked_for_www(bind: &Bind) -> usize {
    bind.query_log().iter().filter(|e| e.name == "www.example.test").count()
}

#[test]
fn published_keys_validate_through_the_ds_chain_or_to_the_zones_own_key_and_answer() {
    let bind = Bind::start_signed();
    let dir = tempfile::tempdir().unwrap();
    let addr = dnsenc_addr([127, 0, 0, 53]);
    let x25519 = keygen(dir.path(), "x25519", 10);
    let rsa = keygen(dir.path(), "rsa2048", 5);
    let _dotgate = start_dotgate(bind.addr, addr, &dir.path().join("dotgate.toml"), &[&x25519, &rsa]);

    let out = publish(&bind, "0.0.127.in-addr.arpa", addr, &[&x25519, &rsa], 300);
    assert_eq!(out.status.code(), Some(0), "publish: {}", text(&out));
    assert!(text(&out).contains("53.0.0.127.in-addr.arpa. 300 IN NSK "), "{}", text(&out));
    wait_published(&bind, addr, 2);

    // Anchored at the parent (Ed25519): the chain runs through the child's DS (RSASHA256).
    let parent = bind.key_file("127.in-addr.arpa");
    let out = query(addr, &parent, &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("www.example.test.\t300\tIN\tA\t192.0.2.20"), "{shown}");
    assert!(
        shown.contains(";; NSK: 2 records at 53.0.0.127.in-addr.arpa., validated through 0.0.127.in-addr.arpa. then 127.in-addr.arpa. to the trust anchor, in 4 queries"),
        "{shown}"
    );
    assert!(shown.contains(";; DNSENC: scheme x25519"), "the higher priority key: {shown}");

    // Anchored at the zone's own key, over TCP, asking for the RSA key by scheme.
    let out = query(addr, &bind.key_file("0.0.127.in-addr.arpa"), &["--tcp", "--scheme", "rsa2048"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("192.0.2.20") && shown.contains("scheme rsa2048") && shown.contains("over TCP"), "{shown}");
    assert!(shown.contains("validated through 0.0.127.in-addr.arpa. to the trust anchor, in 2 queries"), "{shown}");

    // A DS anchor (dnssec-dsfromkey's output) works as the DNSKEY did.
    let ds = Command::new("dnssec-dsfromkey").arg("-2").arg(&parent).output().unwrap();
    let ds_file = dir.path().join("parent.ds");
    std::fs::write(&ds_file, &ds.stdout).unwrap();
    let out = query(addr, &ds_file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // An anchor for a zone the chain never meets: refused, and no encrypted query is sent.
    let other = dir.path().join("other.key");
    std::fs::write(
        &other,
        "example.net. IN DS 55648 13 2 b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17\n",
    )
    .unwrap();
    let before = asked_for_www(&bind);
    let out = query(addr, &other, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // BIND holds no in-addr.arpa. zone, so the walk stops at 127.in-addr.arpa.'s missing DS.
    assert!(
        text(&out).contains("no DS record for 127.in-addr.arpa. at its parent: the delegation is not signed, so the chain stops (anchors: example.net.)"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("192.0.2.20"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(asked_for_www(&bind), before, "nothing asked");
}

#[test]
fn an_unsigned_nsk_is_never_used() {
    let bind = Bind::start_signed();
    let dir = tempfile::tempdir().unwrap();
    // 127.0.1.53: its reverse name is in 1.0.127.in-addr.arpa, which BIND does not sign.
    let addr = dnsenc_addr([127, 0, 1, 53]);
    let key = keygen(dir.path(), "x25519", 10);
    let _dotgate = start_dotgate(bind.addr, addr, &dir.path().join("dotgate.toml"), &[&key]);
    let out = publish(&bind, "1.0.127.in-addr.arpa", addr, &[&key], 300);
    assert_eq!(out.status.code(), Some(0), "publish: {}", text(&out));
    let before = asked_for_www(&bind);
    let out = query(addr, &bind.key_file("127.in-addr.arpa"), &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("the NSK RRset at 53.1.0.127.in-addr.arpa. is not signed (no RRSIG)"), "{shown}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(asked_for_www(&bind), before, "the client sent no query with an unsigned key");
}

/// A backend in front of BIND that changes one byte of every NSK record it relays (the RRSIG
/// stays as BIND made it): what an attacker on the resolver's path, or a broken resolver, would
/// hand the client.
struct Tamperer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Tamperer {
    fn start(upstream: SocketAddr, nsk_key: Vec<u8>) -> Tamperer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
                let Ok(mut answer) =
                    support::client::udp_exchange_blocking(upstream, &buf[..len], Duration::from_secs(2))
                else {
                    continue;
                };
                if let Some(at) = answer.windows(nsk_key.len()).position(|w| w == nsk_key) {
                    answer[at + 5] ^= 0x01;
                }
                let _ = socket.send_to(&answer, from);
            }
        });
        Tamperer { addr, stop }
    }
}

impl Drop for Tamperer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn an_nsk_whose_signature_does_not_verify_is_refused() {
    let bind = Bind::start_signed();
    let dir = tempfile::tempdir().unwrap();
    let addr = dnsenc_addr([127, 0, 0, 54]);
    let key = keygen(dir.path(), "x25519", 10);
    let public = dotgate::frontend::dnsenc::keys::ServerKey::load(&key).unwrap().key.public_key_data();
    let tamperer = Tamperer::start(bind.addr, public);
    let _dotgate = start_dotgate(tamperer.addr, addr, &dir.path().join("dotgate.toml"), &[&key]);
    let out = publish(&bind, "0.0.127.in-addr.arpa", addr, &[&key], 300);
    assert_eq!(out.status.code(), Some(0), "publish: {}", text(&out));
    wait_published(&bind, addr, 1);
    let before = asked_for_www(&bind);
    let out = query(addr, &bind.key_file("127.in-addr.arpa"), &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("the NSK RRset at 54.0.0.127.in-addr.arpa. is bogus: the signature does not verify"),
        "{shown}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(asked_for_www(&bind), before, "nothing asked with a bogus key");
}

#[test]
fn publish_refuses_the_apex_and_reports_a_wrong_tsig_secret() {
    let bind = Bind::start_signed();
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 53], 53));
    let key = keygen(dir.path(), "x25519", 10);
    let out = publish(&bind, "53.0.0.127.in-addr.arpa", addr, &[&key], 300);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is the apex of --zone: §2.1 forbids an NSK at a zone apex"), "{}", text(&out));
    let out = publish(&bind, "example.test", addr, &[&key], 300);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not in --zone"), "{}", text(&out));

    let wrong = dir.path().join("wrong.key");
    let good = std::fs::read_to_string(bind.tsig_key_file()).unwrap();
    let secret = good.split('"').nth(3).unwrap();
    std::fs::write(&wrong, good.replace(secret, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")).unwrap();
    let out = dotgate(&[
        "dnsenc",
        "publish",
        "--server",
        &bind.addr.to_string(),
        "--zone",
        "0.0.127.in-addr.arpa",
        "--tsig-key",
        wrong.to_str().unwrap(),
        "--address",
        "127.0.0.53",
        "--dnsenc-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("NOTAUTH") && text(&out).contains("BADSIG"), "{}", text(&out));
}

/// `dotgate dnsenc load` of `queries` at `addr` with the NSK of the key file `key`, in the
/// background: what it prints, when it ends.
fn load_in_background(addr: SocketAddr, key: &Path, queries: &Path, seconds: u32) -> std::process::Child {
    let loaded = dotgate::frontend::dnsenc::keys::ServerKey::load(key).unwrap();
    let nsk_file = key.with_extension("nsk");
    let nsk = loaded.nsk();
    std::fs::write(&nsk_file, format!("NSK {}\n", nsk.to_presentation())).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dotgate"))
        .args(["dnsenc", "load", "-s", &addr.to_string(), "--nsk", nsk_file.to_str().unwrap()])
        .args(["-f", queries.to_str().unwrap(), "-c", "4", "-Q", "400", "-l", &seconds.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start dotgate dnsenc load")
}

/// The load's summary, checked: every query answered, NOERROR, none lost.
fn assert_no_loss(load: std::process::Child, what: &str) {
    let out = load.wait_with_output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{what}: {shown}");
    assert!(shown.contains("Queries lost:         0 (0.00%)"), "{what}: {shown}");
    assert!(shown.contains("Response codes:       NOERROR"), "{what}: {shown}");
    assert!(!shown.contains("BADCRYPT") && !shown.contains("SERVFAIL"), "{what}: {shown}");
}

/// The README's rotation, under load from clients of each key: add the new key (config and
/// SIGHUP), publish both, new clients validate and take the new one (higher priority), unpublish
/// the old, and unload it once its clients are done. Not one query of either load is lost or
/// refused.
#[test]
fn a_key_rotation_as_the_readme_says_loses_no_query_under_load() {
    let bind = Bind::start_signed();
    let dir = tempfile::tempdir().unwrap();
    let addr = dnsenc_addr([127, 0, 0, 55]);
    let config = dir.path().join("dotgate.toml");
    let old = keygen(dir.path(), "x25519", 10);
    let dotgate = start_dotgate(bind.addr, addr, &config, &[&old]);
    let anchor = bind.key_file("127.in-addr.arpa");
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, "www.example.test A\nns.example.test A\nexample.test SOA\n").unwrap();
    let zone = "0.0.127.in-addr.arpa";
    let id = |key: &Path| dotgate::frontend::dnsenc::keys::ServerKey::load(key).unwrap().key_id;
    let key_id = |key: &Path| id(key).to_string();
    let validated_key_id = || {
        let out = query(addr, &anchor, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let shown = text(&out);
        let line = shown.lines().find(|l| l.starts_with(";; DNSENC: ")).unwrap().to_owned();
        line.split("key id ").nth(1).unwrap().split(',').next().unwrap().to_owned()
    };

    assert_eq!(publish(&bind, zone, addr, &[&old], 1).status.code(), Some(0));
    wait_published(&bind, addr, 1);
    assert_eq!(validated_key_id(), key_id(&old));
    let old_clients = load_in_background(addr, &old, &queries, 6);
    std::thread::sleep(Duration::from_secs(1));

    // 1. The new key, at a higher priority, into service beside the old one.
    let new = keygen(dir.path(), "x25519", 20);
    write_config(&config, addr, &[&old, &new]);
    dotgate.signal(libc::SIGHUP);
    let ids_in_service = |wanted: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !dotgate.stderr().contains(wanted) {
            assert!(std::time::Instant::now() < deadline, "no {wanted:?}:\n{}", dotgate.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let sorted = |mut ids: Vec<u32>| {
        ids.sort();
        format!("key ids [{}] in service", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
    };
    ids_in_service(&sorted(vec![id(&old), id(&new)]));

    // 2. Both published: a client that fetches now validates and takes the new key.
    assert_eq!(publish(&bind, zone, addr, &[&old, &new], 1).status.code(), Some(0));
    wait_published(&bind, addr, 2);
    assert_eq!(validated_key_id(), key_id(&new));
    let new_clients = load_in_background(addr, &new, &queries, 6);

    // 3. After the TTL (1 s here) and the signatures' lifetime: the old one unpublished.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(publish(&bind, zone, addr, &[&new], 1).status.code(), Some(0));
    wait_published(&bind, addr, 1);
    assert_eq!(validated_key_id(), key_id(&new));

    // 4. Once the old key's clients are done (another TTL), it is unloaded.
    assert_no_loss(old_clients, "the old key's clients");
    write_config(&config, addr, &[&new]);
    dotgate.signal(libc::SIGHUP);
    ids_in_service(&sorted(vec![id(&new)]));
    assert_no_loss(new_clients, "the new key's clients");
}
