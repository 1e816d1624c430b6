//! Writes the fuzz targets' seed corpora (`fuzz/corpus/<target>/seed-*`) from real DNS
//! messages: kdig's queries and a real Unbound's answers, captured by a relay in between on
//! loopback, over UDP and over TCP (whose byte streams are the frame reader's seeds); the
//! TOML of `dotgate.example.toml`, the Kubernetes ConfigMap and the CLI tests for the config
//! target; a few op sequences for the in-flight model; DNSENC records and messages, and the
//! private-subdomain names, ENCR records and signed messages, from dotgate's own writers
//! (`dnsenc_nsk`, `dnsenc_outer`, `pvt_name`, `pvt_encr`, `pvt_sig0`).
//!
//! Ignored by default (it needs unbound and kdig, and rewrites committed files):
//!
//! ```text
//! cargo test --test seed_corpus -- --ignored
//! ```
//!
//! The seeds from dotgate's own writers need no server: `write_own_seeds` rewrites only them,
//! and `own_seeds_are_current` (not ignored) checks that the committed ones are what their
//! writers make now.
//!
//! Files named `regression-*` (inputs that once failed) are never touched.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dotgate::fuzzing::ecs::seed as ecs_seed;
use dotgate::fuzzing::frames::Input as FramesInput;
use dotgate::fuzzing::inflight::{Op, Twist};
use dotgate::fuzzing::upstream_match::CONTROL_LEN;
use dotgate::fuzzing::{dnsenc_nsk, dnsenc_outer, pvt_encr, pvt_name, pvt_sig0};
use dotgate::relay::ecs::EcsPrefix;
use support::process::start_dns_server;

/// The zone the seeds ask about: every common answer shape.
const ZONE: &str = r#"
    local-zone: "seed.test." static
    local-data: "seed.test. 300 IN SOA ns.seed.test. hostmaster.seed.test. 1 3600 900 604800 300"
    local-data: "seed.test. 300 IN NS ns.seed.test."
    local-data: "ns.seed.test. 300 IN A 192.0.2.53"
    local-data: "www.seed.test. 300 IN A 192.0.2.10"
    local-data: "www.seed.test. 300 IN A 192.0.2.11"
    local-data: "www.seed.test. 300 IN AAAA 2001:db8::10"
    local-data: "seed.test. 300 IN MX 10 mail.seed.test."
    local-data: "seed.test. 300 IN MX 20 backup.mail.seed.test."
    local-data: "mail.seed.test. 300 IN A 192.0.2.25"
    local-data: "alias.seed.test. 300 IN CNAME www.seed.test."
    local-data: "txt.seed.test. 300 IN TXT \"v=spf1 -all\" \"second string\""
    local-data: "srv._tcp.seed.test. 300 IN SRV 0 5 853 dot.seed.test."
    local-data: "caa.seed.test. 300 IN CAA 0 issue \"letsencrypt.org\""
"#;

/// TXT records of `big.seed.test.` (an answer of about 3 kB: TC=1 over UDP without EDNS).
const BIG_TXT: usize = 12;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

fn start_unbound() -> (SocketAddr, support::process::TestProcess, tempfile::TempDir) {
    start_dns_server("unbound", "www.seed.test.", |dir, port| {
        let mut c = format!(
            "server:\n    verbosity: 1\n    interface: 127.0.0.1@{port}\n    port: {port}\n    do-ip6: no\n\
             so-reuseport: no\n    interface-automatic: no\n    chroot: \"\"\n    username: \"\"\n\
             directory: \"{d}\"\n    pidfile: \"\"\n    logfile: \"\"\n    use-syslog: no\n    do-daemonize: no\n\
             access-control: 127.0.0.0/8 allow\n    module-config: \"iterator\"\n    num-threads: 1\n\
             nsid: \"ascii_dotgate-seed\"\n    edns-tcp-keepalive: yes\n{ZONE}",
            d = dir.display()
        );
        for i in 0..BIG_TXT {
            c.push_str(&format!("    local-data: 'big.seed.test. 300 IN TXT \"{i:03}{}\"'\n", "b".repeat(247)));
        }
        c.push_str("remote-control:\n    control-enable: no\n");
        let conf = dir.join("unbound.conf");
        std::fs::write(&conf, c).unwrap();
        let mut cmd = Command::new("unbound");
        cmd.arg("-d").arg("-c").arg(conf);
        cmd
    })
}

/// One exchange seen by the relay.
struct Exchange {
    name: String,
    query: Vec<u8>,
    answer: Vec<u8>,
}

/// Runs kdig against a UDP relay to `unbound` and returns the exchanges it saw.
fn capture_udp(unbound: SocketAddr, name: &str, args: &[&str]) -> Vec<Exchange> {
    let relay = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    relay.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let port = relay.local_addr().unwrap().port();
    let mut kdig = Command::new("kdig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .arg("+retry=0")
        .arg("+time=2")
        .arg("+ignore")
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kdig (knot-dnsutils)");
    let upstream = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    upstream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0; 65_535];
    loop {
        match relay.recv_from(&mut buf) {
            Ok((n, client)) => {
                let query = buf[..n].to_vec();
                upstream.send_to(&query, unbound).unwrap();
                let m = upstream.recv(&mut buf).expect("Unbound answers");
                let answer = buf[..m].to_vec();
                relay.send_to(&answer, client).unwrap();
                out.push(Exchange { name: name.to_owned(), query, answer });
            }
            Err(_) => {
                if kdig.try_wait().unwrap().is_some() {
                    break;
                }
            }
        }
    }
    assert!(!out.is_empty(), "kdig {args:?} sent nothing");
    out
}

/// Runs kdig over TCP through a relay; returns the client's byte stream, Unbound's byte stream
/// and the exchanges.
fn capture_tcp(unbound: SocketAddr, name: &str, args: &[&str]) -> (Vec<u8>, Vec<u8>, Vec<Exchange>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let client_bytes = Arc::new(Mutex::new(Vec::new()));
    let server_bytes = Arc::new(Mutex::new(Vec::new()));
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let (c, s, e, name_owned) = (client_bytes.clone(), server_bytes.clone(), exchanges.clone(), name.to_owned());
    let relay = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut client, _) = listener.accept().unwrap();
        client.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut server = TcpStream::connect(unbound).unwrap();
        server.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        loop {
            let mut prefix = [0u8; 2];
            if client.read_exact(&mut prefix).is_err() {
                break;
            }
            let mut query = vec![0; usize::from(u16::from_be_bytes(prefix))];
            client.read_exact(&mut query).unwrap();
            c.lock().unwrap().extend_from_slice(&prefix);
            c.lock().unwrap().extend_from_slice(&query);
            server.write_all(&prefix).unwrap();
            server.write_all(&query).unwrap();
            let mut aprefix = [0u8; 2];
            server.read_exact(&mut aprefix).unwrap();
            let mut answer = vec![0; usize::from(u16::from_be_bytes(aprefix))];
            server.read_exact(&mut answer).unwrap();
            s.lock().unwrap().extend_from_slice(&aprefix);
            s.lock().unwrap().extend_from_slice(&answer);
            client.write_all(&aprefix).unwrap();
            client.write_all(&answer).unwrap();
            e.lock().unwrap().push(Exchange { name: name_owned.clone(), query, answer });
        }
    });
    let status = Command::new("kdig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .arg("+tcp")
        .arg("+retry=0")
        .arg("+time=2")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("kdig (knot-dnsutils)");
    assert!(status.success(), "kdig +tcp {args:?}: {status}");
    relay.join().unwrap();
    let exchanges = std::mem::take(&mut *exchanges.lock().unwrap());
    let client = client_bytes.lock().unwrap().clone();
    let server = server_bytes.lock().unwrap().clone();
    (client, server, exchanges)
}

/// The targets whose seeds dotgate's own writers make (no server needed).
const OWN_SEEDS: [&str; 5] = ["dnsenc_nsk", "dnsenc_outer", "pvt_name", "pvt_encr", "pvt_sig0"];

/// Their seeds, as (target, name, bytes).
fn own_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let writers = [dnsenc_nsk::seeds, dnsenc_outer::seeds, pvt_name::seeds, pvt_encr::seeds, pvt_sig0::seeds];
    OWN_SEEDS
        .into_iter()
        .zip(writers)
        .flat_map(|(target, seeds)| seeds().into_iter().map(move |(name, bytes)| (target, name, bytes)))
        .collect()
}

/// The `seed-*` files of `target`'s corpus, by name.
fn committed_seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().strip_prefix("seed-")?.to_owned();
            Some((name, std::fs::read(&path).unwrap()))
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn own_seeds_are_current() {
    for target in OWN_SEEDS {
        let mut want: Vec<(String, Vec<u8>)> = own_seeds()
            .into_iter()
            .filter(|(t, _, _)| *t == target)
            .map(|(_, name, bytes)| (name.to_owned(), bytes))
            .collect();
        want.sort();
        assert!(
            committed_seeds(target) == want,
            "fuzz/corpus/{target}/seed-* are stale: cargo test --test seed_corpus -- --ignored write_own_seeds"
        );
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus/{dnsenc,pvt}_*/seed-*"]
fn write_own_seeds() {
    for target in OWN_SEEDS {
        std::fs::create_dir_all(corpus_dir(target)).unwrap();
        for (name, _) in committed_seeds(target) {
            std::fs::remove_file(corpus_dir(target).join(format!("seed-{name}"))).unwrap();
        }
    }
    for (target, name, bytes) in own_seeds() {
        write(target, name, &bytes);
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let path = corpus_dir(target).join(format!("seed-{name}"));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The TOML block of the ConfigMap (the indented lines after `dotgate.toml: |`).
fn configmap_toml() -> String {
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/configmap.yaml"))
        .expect("deploy/kubernetes/configmap.yaml");
    let mut lines = yaml.lines().skip_while(|l| !l.trim_start().starts_with("dotgate.toml: |")).skip(1);
    let mut toml = String::new();
    for line in lines.by_ref() {
        let Some(body) = line.strip_prefix("    ") else { break };
        toml.push_str(body);
        toml.push('\n');
    }
    assert!(toml.contains("backend"), "no TOML found in the ConfigMap");
    toml
}

#[test]
#[ignore = "needs unbound and kdig; rewrites fuzz/corpus/*/seed-*"]
fn generate_seed_corpus() {
    for (target, _) in dotgate::fuzzing::TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("seed-") {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    let (unbound, _proc, _dir) = start_unbound();

    let udp_runs: &[(&str, &[&str])] = &[
        ("a", &["www.seed.test", "A", "+noedns"]),
        ("aaaa-edns", &["www.seed.test", "AAAA", "+edns"]),
        ("mx-do", &["seed.test", "MX", "+dnssec"]),
        ("txt-nsid", &["txt.seed.test", "TXT", "+nsid"]),
        ("nxdomain", &["nothere.seed.test", "A", "+edns"]),
        ("nodata-soa", &["www.seed.test", "MX", "+noedns"]),
        ("cname", &["alias.seed.test", "A", "+edns"]),
        ("srv", &["srv._tcp.seed.test", "SRV", "+edns"]),
        ("caa-mixed-case", &["CaA.SeEd.TeSt", "CAA", "+edns"]),
        ("ns", &["seed.test", "NS", "+noedns"]),
        ("big-edns", &["big.seed.test", "TXT", "+bufsize=4096"]),
        ("big-tc", &["big.seed.test", "TXT", "+noedns"]),
        ("padding", &["www.seed.test", "A", "+padding"]),
        ("padding-128", &["www.seed.test", "AAAA", "+padding=128"]),
        ("keepalive-cookie", &["www.seed.test", "A", "+ednsopt=11", "+cookie"]),
        ("subnet", &["www.seed.test", "A", "+subnet=192.0.2.0/24"]),
        ("cd-ad", &["www.seed.test", "A", "+cdflag", "+adflag", "+edns"]),
        ("root-ns", &[".", "NS", "+norecurse"]),
    ];
    let mut exchanges = Vec::new();
    for (name, args) in udp_runs {
        exchanges.extend(capture_udp(unbound, &format!("udp-{name}"), args));
    }
    let tcp_runs: &[(&str, &[&str])] = &[
        ("pipeline", &["+keepopen", "www.seed.test", "A", "seed.test", "MX", "txt.seed.test", "TXT"]),
        (
            "keepalive-padding",
            &["+keepopen", "+ednsopt=11", "+padding", "www.seed.test", "AAAA", "big.seed.test", "TXT"],
        ),
        ("big", &["big.seed.test", "TXT", "+edns"]),
    ];
    for (name, args) in tcp_runs {
        let (client, server, seen) = capture_tcp(unbound, &format!("tcp-{name}"), args);
        // The frame reader's seeds: kdig's stream and Unbound's, whole and in pieces.
        for (side, stream) in [("client", &client), ("server", &server)] {
            write("frames", &format!("tcp-{name}-{side}"), &FramesInput::encode(0, 0xff, &[], stream));
            write(
                "frames",
                &format!("tcp-{name}-{side}-split"),
                &FramesInput::encode(0, 0x55, &[1, 13, 2, 64], stream),
            );
            write("frames", &format!("tcp-{name}-{side}-capped"), &FramesInput::encode(1, 0x0f, &[200, 7], stream));
        }
        exchanges.extend(seen);
    }
    for (i, x) in exchanges.iter().enumerate() {
        let name = format!("{}-{i}", x.name);
        write("query", &name, &x.query);
        // The ECS editor's client: IPv4 and IPv6 in turn, prefixes 24:56.
        let client: IpAddr =
            if i % 2 == 0 { Ipv4Addr::new(198, 51, 100, 77).into() } else { "2001:db8:1234:5678::77".parse().unwrap() };
        for (kind, msg) in [("query", &x.query), ("answer", &x.answer)] {
            // Hop byte 4: all four keepalive/padding combinations; idle timeout 10 s.
            let mut edns = vec![4, 0, 100];
            edns.extend_from_slice(msg);
            write("edns", &format!("{name}-{kind}"), &edns);
            write("ecs", &format!("{name}-{kind}"), &ecs_seed(client, EcsPrefix { v4: 24, v6: 56 }, msg));
        }
        let mut matched = vec![0; CONTROL_LEN];
        matched.extend_from_slice(&x.answer);
        write("upstream_match", &format!("{name}-matched"), &matched);
    }
    // A few answers set against near misses: another case, another type, a stranger's address,
    // a second copy after the answer, a late one after a timeout.
    let x = &exchanges[0];
    for (label, control) in [
        ("case", [0x00, 0x00, 0xfc, 0, 0]),
        ("other-type", [0x00, 0x00, 0x01, 0, 0]),
        ("stranger", [0x0c, 0x00, 0x00, 0, 0]),
        ("duplicate", [0x00, 0x40, 0x00, 0, 0]),
        ("late", [0x00, 0x80, 0x00, 0, 0]),
        ("other-socket", [0x01, 0x00, 0x00, 0, 0]),
    ] {
        let mut input = vec![0; CONTROL_LEN];
        input[..control.len()].copy_from_slice(&control);
        input.extend_from_slice(&x.answer);
        write("upstream_match", &format!("near-miss-{label}"), &input);
    }

    // Configs: the example, the ConfigMap's, and those of the CLI tests (good and broken).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    write("config", "example.toml", &std::fs::read(root.join("dotgate.example.toml")).unwrap());
    write("config", "configmap.toml", configmap_toml().as_bytes());
    for (name, text) in [
        (
            "cli-check.toml",
            "listen = [\"127.0.0.1:8853\"]\nbackend = [\"127.0.0.1:53\", \"[::1]:53\"]\ncert = \"/tmp/cert.pem\"\n\
             key = \"/tmp/key.pem\"\nworkers = 2\nidle-timeout = 10\nhandshake-timeout = 5\nupstream-timeout = 1.5\n\
             drain-timeout = 10\nmax-in-flight = 100\nupstream-sockets = 4\ncoalesce-window = 0.0005\nlog-queries = false\n",
        ),
        ("cli-unknown-key.toml", "backend = [\"127.0.0.1:53\"]\nlisten_port = 853\n"),
        ("cli-broken.toml", "backend = [\"127.0.0.1:53\"\n"),
        ("ticket-keys.toml", "backend = [\"127.0.0.1:53\"]\nticket-keys = \"/tmp/tickets.keys\"\n"),
        ("admin-clash.toml", "listen = [\"[::]:853\"]\nbackend = [\"192.0.2.1\"]\nadmin = \"127.0.0.1:853\"\n"),
        ("padding-always.toml", "backend = [\"dns.example:5353\"]\npadding = \"always\"\ntcp-fast-open = false\n"),
        ("bad-values.toml", "backend = [\"0.0.0.0:53\"]\nworkers = 0\nidle-timeout = -1\ncoalesce-window = 1\n"),
    ] {
        write("config", name, text.as_bytes());
    }

    // Op sequences for the in-flight model.
    use Op::*;
    let sequences: &[(&str, Vec<Op>)] = &[
        (
            "answer-each",
            vec![
                Query { conn: 0, qtype: 1 },
                Query { conn: 1, qtype: 28 },
                Answer { pick: 0, twist: Twist::None, rcode: 0 },
                Answer { pick: 0, twist: Twist::CaseFlip, rcode: 3 },
                Replay { pick: 0 },
            ],
        ),
        (
            "near-misses",
            vec![
                Query { conn: 0, qtype: 1 },
                Query { conn: 0, qtype: 1 },
                Answer { pick: 0, twist: Twist::WrongSource, rcode: 0 },
                Answer { pick: 1, twist: Twist::WrongSocket, rcode: 0 },
                Answer { pick: 0, twist: Twist::NotResponse, rcode: 0 },
                Answer { pick: 1, twist: Twist::OtherType, rcode: 0 },
                Stray { socket: 1, id: 0x1234 },
            ],
        ),
        (
            "timeouts-and-close",
            vec![
                Query { conn: 0, qtype: 1 },
                Query { conn: 1, qtype: 1 },
                Query { conn: 2, qtype: 16 },
                Timeout { oldest: 0 },
                Close { conn: 1 },
                Timeout { oldest: 7 },
                Replay { pick: 1 },
                Query { conn: 1, qtype: 1 },
                Timeout { oldest: 7 },
                Answer { pick: 0, twist: Twist::None, rcode: 2 },
            ],
        ),
    ];
    for (name, ops) in sequences {
        let bytes: Vec<u8> = ops.iter().flat_map(|op| op.encode()).collect();
        assert_eq!(&Op::decode(&bytes), ops);
        write("inflight", name, &bytes);
    }

    for (target, name, bytes) in own_seeds() {
        write(target, name, &bytes);
    }
}
