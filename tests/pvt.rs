//! The private-subdomain gateway end to end (issue 17, docs/pvt.md): a real BIND 9.18 holds
//! `_pvt.example.test` (dynamic, TSIG `update-policy`), dotgate's gateway is in front of it, and
//! the `dotgate pvt` client talks to the gateway over UDP and over DoT.
//!
//! - The lifecycle: register, add A, SRV and TXT, query them back, delete, rekey (the old key is
//!   then REFUSED), destroy, and a new registration starts empty.
//! - Bad input, each with its exact RCODE and BIND's zone unchanged (an AXFR before and after):
//!   unsigned, another key, an expired SIG(0), a byte flipped after signing, an undecryptable
//!   name or record, a wrong label count, a second registration, a user not enrolled, writing
//!   into another user's subtree, a transfer. A forged ENCR is rejected by the client.
//! - RSA users (`--pvt-rsa-compat`): the lifecycle with an RSASHA256 key and algorithm-3
//!   answers, rekeys to and from Ed25519; without the flag an RSA registration is FORMERR and an
//!   RSA user registered elsewhere is unknown (NXDOMAIN, NOTAUTH).
//! - The provider's `admin rekey` (the old key REFUSED for the very next UPDATE) and `admin
//!   destroy` (nothing left; a new registration starts empty).
//! - `--tls` without `--ca` checks the gateway against the system roots; a non-default
//!   `--pvt-encr-type` is the QTYPE on the wire.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use dotgate::frontend::pvt::keys::KeyPair;
use dotgate::frontend::pvt::{seal, sig0, wire};
use rand::SeedableRng;
use support::{Bind, Dotgate};

const ZONE: &str = "_pvt.example.test";
const ENCR: u16 = wire::DEFAULT_TYPE_ENCR;

/// An update record: owner, type, class, TTL, RDATA.
type UpdateRecord = (Vec<u8>, u16, u16, u32, Vec<u8>);

fn dotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dotgate")).args(args).output().expect("run dotgate")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn name(text: &str) -> Vec<u8> {
    dotgate::frontend::dnsenc::wire::name_from_text(text.as_bytes()).unwrap()
}

/// BIND, the gateway in front of it (UDP/TCP and DoT), the provider key, alice and bob enrolled.
struct Setup {
    bind: Bind,
    dotgate: Dotgate,
    /// The gateway's UDP/TCP address.
    pvt: SocketAddr,
    dir: tempfile::TempDir,
    cert: PathBuf,
    /// The key of `cert`.
    tls_key: PathBuf,
    provider: KeyPair,
    /// dotgate's /metrics.
    admin: SocketAddr,
}

/// A gateway in front of `bind`, with the provider key and enrollment file in `dir`, its DoT
/// certificate `cert` and `tls_key`, and `extra` flags: its process, its UDP/TCP address and
/// its /metrics address.
fn gateway(bind: &Bind, dir: &Path, cert: &Path, tls_key: &Path, extra: &[&str]) -> (Dotgate, SocketAddr, SocketAddr) {
    let pvt = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (pvt_text, bind_text, tsig_key) = (pvt.to_string(), bind.addr.to_string(), bind.pvt_tsig_key_file());
    let admin_text = admin.to_string();
    let (provider_key, enrollment) = (dir.join("provider.key"), dir.join("enrolled"));
    let mut args = vec![
        "--pvt-listen",
        &pvt_text,
        "--pvt-zone",
        ZONE,
        "--pvt-primary",
        &bind_text,
        "--pvt-tsig-key",
        tsig_key.to_str().unwrap(),
        "--pvt-provider-key",
        provider_key.to_str().unwrap(),
        "--pvt-enrollment",
        enrollment.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        tls_key.to_str().unwrap(),
        "--admin",
        &admin_text,
    ];
    if !extra.contains(&"--workers") {
        args.extend_from_slice(&["--workers", "2"]);
    }
    args.extend_from_slice(extra);
    (Dotgate::start(&[bind.addr], &args), pvt, admin)
}

impl Setup {
    fn start() -> Setup {
        Setup::start_with(&[])
    }

    /// As [`Setup::start`], with `extra` gateway flags.
    fn start_with(extra: &[&str]) -> Setup {
        let bind = Bind::start_pvt();
        let dir = tempfile::tempdir().unwrap();
        let provider_key = dir.path().join("provider.key");
        let out = dotgate(&["pvt", "provider-keygen", "--zone", ZONE, "--out", provider_key.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "provider-keygen: {}", text(&out));
        assert!(text(&out).contains(&format!("{ZONE}. 3600 IN KEY 0 3 15 ")), "{}", text(&out));
        let enrollment = dir.path().join("enrolled");
        for user in ["alice", "bob"] {
            let out = dotgate(&["pvt", "enroll", "--file", enrollment.to_str().unwrap(), user]);
            assert_eq!(out.status.code(), Some(0), "enroll: {}", text(&out));
        }
        let (cert, tls_key, _) = support::make_cert(dir.path());
        let (dotgate, pvt, admin) = gateway(&bind, dir.path(), &cert, &tls_key, extra);
        let provider = KeyPair::read_file(&provider_key).unwrap();
        Setup { bind, dotgate, pvt, dir, cert, tls_key, provider, admin }
    }

    /// Another gateway in front of the same BIND, with the same keys and `extra` flags: its
    /// process and UDP/TCP address.
    fn another_gateway(&self, extra: &[&str]) -> (Dotgate, SocketAddr) {
        let (dotgate, pvt, _) = gateway(&self.bind, self.dir.path(), &self.cert, &self.tls_key, extra);
        (dotgate, pvt)
    }

    /// `dotgate pvt keygen` into the temp dir: the key file.
    fn keygen(&self, file: &str) -> PathBuf {
        self.keygen_with(file, &[])
    }

    /// `dotgate pvt keygen` with `extra` flags (`--algorithm rsasha256`).
    fn keygen_with(&self, file: &str, extra: &[&str]) -> PathBuf {
        let path = self.dir.path().join(file);
        let mut args = vec!["pvt", "keygen", "--out", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = dotgate(&args);
        assert_eq!(out.status.code(), Some(0), "keygen: {}", text(&out));
        path
    }

    /// `dotgate pvt COMMAND` as `user` with `key`, over UDP or DoT, then `extra`.
    fn pvt(&self, tls: bool, user: &str, key: &Path, command: &str, extra: &[&str]) -> Output {
        let zone = format!("{user}.{ZONE}");
        let server = if tls { format!("@{}", self.dotgate.addr) } else { format!("@{}", self.pvt) };
        let mut args = vec!["pvt", command, &server, "--zone", &zone, "--key", key.to_str().unwrap()];
        let cert = self.cert.to_str().unwrap();
        if tls {
            args.extend_from_slice(&["--tls", "--ca", cert, "--tls-name", "localhost"]);
        }
        args.extend_from_slice(extra);
        dotgate(&args)
    }

    fn user_key(&self, path: &Path) -> KeyPair {
        KeyPair::read_file(path).unwrap()
    }

    /// One series of dotgate's /metrics (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        let (_, page) = support::http::get(self.admin, "/metrics");
        support::http::sample(&page, series).unwrap_or(0.0)
    }
}

fn assert_status(out: &Output, status: &str, code: i32, what: &str) {
    let shown = text(out);
    assert!(shown.contains(&format!("status: {status}")), "{what}: want {status}:\n{shown}");
    assert_eq!(out.status.code(), Some(code), "{what}: exit status:\n{shown}");
}

/// That the client printed alice's SOA (TTL 60, the `_pvt` SOA's minimum) in Authority.
fn assert_user_soa(out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = stdout.lines().skip_while(|l| !l.contains("AUTHORITY SECTION"));
    assert!(lines.next().is_some(), "{what}: no AUTHORITY SECTION:\n{stdout}");
    let soa: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).collect();
    let words: Vec<Vec<&str>> = soa.iter().map(|l| l.split_whitespace().collect()).collect();
    assert!(
        words.len() == 1 && words[0][..4] == ["alice._pvt.example.test.", "60", "IN", "SOA"],
        "{what}: one SOA owned by alice._pvt.example.test.:\n{stdout}"
    );
}

/// The records the client printed in the answer section.
fn answers(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = stdout.lines().skip_while(|l| !l.contains("ANSWER SECTION"));
    lines.next();
    lines.take_while(|l| !l.trim().is_empty() && !l.starts_with(";;")).map(str::to_owned).collect()
}

fn lifecycle(tls: bool) {
    let setup = Setup::start();
    let key = setup.keygen("alice.key");
    let run = |key: &Path, command: &str, extra: &[&str]| setup.pvt(tls, "alice", key, command, extra);

    assert_status(&run(&key, "register", &[]), "NOERROR", 0, "register");
    for record in [
        "printer 300 A 192.0.2.7",
        "_ipp._tcp 300 SRV 0 0 631 printer.alice._pvt.example.test.",
        "printer 300 TXT \"model=x1\"",
    ] {
        assert_status(&run(&key, "add", &[record]), "NOERROR", 0, record);
    }
    // BIND holds them in the clear (§3.3: the provider may read them).
    let zone = setup.bind.pvt_zone_records();
    assert!(zone.iter().any(|r| r.starts_with("printer.alice._pvt.example.test. 300 IN A 192.0.2.7")), "{zone:#?}");

    let encrypted = setup.metric("dotgate_pvt_queries_total{kind=\"encrypted\"}");
    let out = run(&key, "query", &["printer", "A"]);
    assert_status(&out, "NOERROR", 0, "query A");
    let got = answers(&out);
    assert_eq!(got.len(), 1, "{}", text(&out));
    assert!(got[0].contains("192.0.2.7") && got[0].contains("printer.alice._pvt.example.test."), "{got:?}");
    let out = run(&key, "query", &["_ipp._tcp", "SRV"]);
    assert_status(&out, "NOERROR", 0, "query SRV");
    let got = answers(&out);
    assert_eq!(got.len(), 1, "{}", text(&out));
    assert!(got[0].contains("0 0 631 printer.alice._pvt.example.test."), "{got:?}");
    let out = run(&key, "query", &["printer", "TXT"]);
    let got = answers(&out);
    assert_eq!(got.len(), 1, "{}", text(&out));
    assert!(got[0].contains("model=x1"), "{got:?}");
    assert_eq!(
        setup.metric("dotgate_pvt_queries_total{kind=\"encrypted\"}") - encrypted,
        3.0,
        "the three encrypted queries, each counted once"
    );

    // One record of an RRset of two deleted by its RDATA: the other stays.
    assert_status(&run(&key, "add", &["printer 300 A 192.0.2.8"]), "NOERROR", 0, "a second A");
    let out = run(&key, "query", &["printer", "A"]);
    assert_eq!(answers(&out).len(), 2, "{}", text(&out));
    assert_status(&run(&key, "delete", &["printer A 192.0.2.8"]), "NOERROR", 0, "delete one A by its RDATA");
    let out = run(&key, "query", &["printer", "A"]);
    assert_status(&out, "NOERROR", 0, "the other A");
    let got = answers(&out);
    assert!(got.len() == 1 && got[0].contains("192.0.2.7"), "only 192.0.2.7 is left: {}", text(&out));
    let zone = setup.bind.pvt_zone_records();
    assert!(!zone.iter().any(|r| r.contains("192.0.2.8")), "{zone:#?}");
    assert!(zone.iter().any(|r| r.starts_with("printer.alice._pvt.example.test. 300 IN A 192.0.2.7")), "{zone:#?}");

    assert_status(&run(&key, "delete", &["printer A"]), "NOERROR", 0, "delete A");
    let out = run(&key, "query", &["printer", "A"]);
    assert_status(&out, "NOERROR", 0, "NODATA after deleting A (TXT is still there)");
    assert!(answers(&out).is_empty(), "{}", text(&out));
    assert_user_soa(&out, "NODATA carries the user's SOA in Authority");
    assert_status(&run(&key, "delete", &["printer TXT"]), "NOERROR", 0, "delete TXT");
    let out = run(&key, "query", &["printer", "A"]);
    assert_status(&out, "NXDOMAIN", 1, "the name is gone");
    assert_user_soa(&out, "NXDOMAIN carries the user's SOA in clear");

    let new_key = setup.keygen("alice2.key");
    let (rekeys, destroys) = (
        setup.metric("dotgate_pvt_updates_total{op=\"rekey\"}"),
        setup.metric("dotgate_pvt_updates_total{op=\"destroy\"}"),
    );
    assert_status(&run(&key, "rekey", &["--new-key", new_key.to_str().unwrap()]), "NOERROR", 0, "rekey");
    assert_eq!(setup.metric("dotgate_pvt_updates_total{op=\"rekey\"}") - rekeys, 1.0, "the rekey counted once");
    assert_status(&run(&key, "query", &["_ipp._tcp", "SRV"]), "REFUSED", 1, "the old key after the rekey");
    assert_status(&run(&new_key, "query", &["_ipp._tcp", "SRV"]), "NOERROR", 0, "the new key");

    assert_status(&run(&new_key, "destroy", &[]), "NOERROR", 0, "destroy");
    assert_eq!(setup.metric("dotgate_pvt_updates_total{op=\"destroy\"}") - destroys, 1.0, "the destroy counted once");
    assert_eq!(setup.metric("dotgate_pvt_updates_total{op=\"rekey\"}") - rekeys, 1.0, "and no other rekey");
    let zone = setup.bind.pvt_zone_records();
    assert!(!zone.iter().any(|r| r.contains("alice")), "destroy leaves nothing of alice: {zone:#?}");
    assert_status(&run(&new_key, "query", &["_ipp._tcp", "SRV"]), "NXDOMAIN", 1, "no zone after destroy");

    let third = setup.keygen("alice3.key");
    assert_status(&run(&third, "register", &[]), "NOERROR", 0, "register again");
    assert_status(&run(&third, "query", &["_ipp._tcp", "SRV"]), "NXDOMAIN", 1, "a new registration starts empty");
}

#[test]
fn the_lifecycle_works_over_udp() {
    lifecycle(false);
}

#[test]
fn the_lifecycle_works_over_dot() {
    lifecycle(true);
}

const RSA: &[&str] = &["--algorithm", "rsasha256"];

#[test]
fn an_rsa_user_lives_its_life_with_the_compatibility_mode() {
    let setup = Setup::start_with(&["--pvt-rsa-compat"]);
    let run = |key: &Path, command: &str, extra: &[&str]| setup.pvt(false, "alice", key, command, extra);
    let out = dotgate(&[
        "pvt",
        "keygen",
        "--out",
        setup.dir.path().join("shown.key").to_str().unwrap(),
        "--algorithm",
        "rsasha256",
    ]);
    assert!(text(&out).starts_with("0 3 8 AwEAA"), "an RSASHA256 KEY, exponent 65537: {}", text(&out));
    let key = setup.keygen_with("alice-rsa.key", RSA);
    assert_status(&run(&key, "register", &[]), "NOERROR", 0, "register an RSA key");
    let zone = setup.bind.pvt_zone_records();
    assert!(zone.iter().any(|r| r.starts_with("alice._pvt.example.test. 3600 IN KEY 0 3 8 ")), "{zone:#?}");
    for record in ["printer 300 A 192.0.2.7", "printer 300 TXT \"model=x1\""] {
        assert_status(&run(&key, "add", &[record]), "NOERROR", 0, record);
    }
    let zone = setup.bind.pvt_zone_records();
    assert!(zone.iter().any(|r| r.starts_with("printer.alice._pvt.example.test. 300 IN A 192.0.2.7")), "{zone:#?}");

    let out = run(&key, "query", &["printer", "A"]);
    assert_status(&out, "NOERROR", 0, "query A as an RSA user");
    let got = answers(&out);
    assert_eq!(got.len(), 1, "{}", text(&out));
    assert!(got[0].contains("192.0.2.7") && got[0].contains("printer.alice._pvt.example.test."), "{got:?}");

    assert_status(&run(&key, "delete", &["printer A"]), "NOERROR", 0, "delete A");
    let out = run(&key, "query", &["printer", "A"]);
    assert_status(&out, "NOERROR", 0, "NODATA after the delete");
    assert!(answers(&out).is_empty(), "{}", text(&out));

    // Rekey from RSA to Ed25519 and back to RSA: each new key then asks alone.
    let ed = setup.keygen("alice-ed.key");
    assert_status(&run(&key, "rekey", &["--new-key", ed.to_str().unwrap()]), "NOERROR", 0, "rekey RSA to Ed25519");
    assert_status(&run(&key, "query", &["printer", "TXT"]), "REFUSED", 1, "the RSA key after the rekey");
    let out = run(&ed, "query", &["printer", "TXT"]);
    assert_status(&out, "NOERROR", 0, "the Ed25519 key");
    assert!(answers(&out).iter().any(|r| r.contains("model=x1")), "{}", text(&out));
    let rsa2 = setup.keygen_with("alice-rsa2.key", RSA);
    assert_status(&run(&ed, "rekey", &["--new-key", rsa2.to_str().unwrap()]), "NOERROR", 0, "rekey Ed25519 to RSA");
    let out = run(&rsa2, "query", &["printer", "TXT"]);
    assert_status(&out, "NOERROR", 0, "the new RSA key");
    assert!(answers(&out).iter().any(|r| r.contains("model=x1")), "{}", text(&out));

    assert_status(&run(&rsa2, "destroy", &[]), "NOERROR", 0, "destroy");
    let zone = setup.bind.pvt_zone_records();
    assert!(!zone.iter().any(|r| r.contains("alice")), "destroy leaves nothing of alice: {zone:#?}");
    assert_status(&run(&rsa2, "query", &["printer", "TXT"]), "NXDOMAIN", 1, "no zone after destroy");
}

#[test]
fn without_the_compatibility_mode_rsa_keys_are_refused_and_unusable() {
    let setup = Setup::start();
    let before = setup.bind.pvt_zone_records();
    let key = setup.keygen_with("alice-rsa.key", RSA);
    assert_status(&setup.pvt(false, "alice", &key, "register", &[]), "FORMERR", 1, "an RSA key, the mode off");
    assert_eq!(setup.bind.pvt_zone_records(), before, "BIND's zone unchanged");

    // Registered through a gateway with the mode on, the RSA user has no usable key at one
    // without it: queries NXDOMAIN (an unknown user), UPDATEs NOTAUTH.
    let (_with, with_addr) = setup.another_gateway(&["--pvt-rsa-compat"]);
    let at = |addr: SocketAddr, command: &str, extra: &[&str]| {
        let mut args = vec!["pvt", command];
        let (server, key) = (format!("@{addr}"), key.to_str().unwrap().to_owned());
        args.extend_from_slice(&[&server, "--zone", "alice._pvt.example.test", "--key", &key]);
        args.extend_from_slice(extra);
        dotgate(&args)
    };
    assert_status(&at(with_addr, "register", &[]), "NOERROR", 0, "register with the mode on");
    assert_status(&at(with_addr, "add", &["printer 300 A 192.0.2.7"]), "NOERROR", 0, "add with the mode on");
    let with_alice = setup.bind.pvt_zone_records();
    assert_status(&at(setup.pvt, "query", &["printer", "A"]), "NXDOMAIN", 1, "query with the mode off");
    assert_status(&at(setup.pvt, "add", &["www 300 A 192.0.2.8"]), "NOTAUTH", 1, "add with the mode off");
    assert_eq!(setup.bind.pvt_zone_records(), with_alice, "nothing changed with the mode off");
    let out = at(with_addr, "query", &["printer", "A"]);
    assert_status(&out, "NOERROR", 0, "still there with the mode on");
}

/// A signed query or UPDATE put together here, for the inputs the client never makes.
struct Forge<'a> {
    setup: &'a Setup,
    user: KeyPair,
    zone: Vec<u8>,
    rng: rand::rngs::StdRng,
}

impl<'a> Forge<'a> {
    fn new(setup: &'a Setup, user: KeyPair, zone: &str) -> Forge<'a> {
        Forge { setup, user, zone: name(zone), rng: rand::rngs::StdRng::seed_from_u64(7) }
    }

    /// The encrypted name of `relative`/`rtype`.
    fn encrypted(&mut self, rtype: u16, relative: &[u8]) -> Vec<u8> {
        let ciphertext =
            seal::seal_name(&mut self.rng, &self.user, &self.setup.provider.public, &self.zone, rtype, relative);
        wire::encrypted_name(&ciphertext, &self.zone).unwrap()
    }

    /// A query for `qname`/`qtype`, unsigned.
    fn query(&self, qname: &[u8], qtype: u16) -> Vec<u8> {
        let mut msg = vec![0x44, 0x44, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(qname);
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        msg
    }

    /// An UPDATE of `zone` with `updates` (owner, type, class, ttl, rdata), unsigned.
    fn update(&self, zone: &[u8], updates: &[UpdateRecord]) -> Vec<u8> {
        let mut msg = vec![0x55, 0x55, 0x28, 0, 0, 1, 0, 0, 0, updates.len() as u8, 0, 0];
        msg.extend_from_slice(zone);
        msg.extend_from_slice(&[0, 6, 0, 1]);
        for (owner, rtype, class, ttl, rdata) in updates {
            msg.extend_from_slice(owner);
            msg.extend_from_slice(&rtype.to_be_bytes());
            msg.extend_from_slice(&class.to_be_bytes());
            msg.extend_from_slice(&ttl.to_be_bytes());
            msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            msg.extend_from_slice(rdata);
        }
        msg
    }

    /// An ENCR add of `relative` `rtype` `rdata`, sealed by this user.
    fn encr_add(&mut self, relative: &[u8], rtype: u16, rdata: &[u8]) -> UpdateRecord {
        let owner = self.encrypted(rtype, relative);
        let mut plain_owner = relative.to_vec();
        plain_owner.extend_from_slice(&self.zone);
        let mut encr = Vec::new();
        seal::seal_record(
            &mut self.rng,
            wire::ALG_HPKE_AES256GCM,
            &self.user,
            &self.setup.provider.public,
            &self.zone,
            rtype,
            &plain_owner,
            rdata,
            &mut encr,
        );
        (owner, ENCR, 1, 300, encr)
    }

    fn signed(&self, mut msg: Vec<u8>, key: &KeyPair, inception: u32) -> Vec<u8> {
        sig0::sign(&mut msg, key, &self.zone, inception);
        msg
    }
}

fn exchange(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    support::client::udp_exchange_blocking(addr, msg, Duration::from_secs(5)).expect("an answer from the gateway")
}

fn rcode(answer: &[u8]) -> u8 {
    answer[3] & 0x0f
}

/// The owner (lowercased wire form) of the one record in Authority, which must be an SOA.
fn authority_soa_owner(answer: &[u8]) -> Vec<u8> {
    let parsed = dotgate::message::parse(answer);
    assert_eq!(parsed.sections[1].len(), 1, "one record in Authority");
    let soa = &parsed.sections[1][0];
    assert_eq!(soa.rtype, 6, "an SOA in Authority");
    soa.owner.to_ascii_lowercase()
}

/// Four labels of 63 octets before `zone`: over the 255 octets a name may have.
fn too_long_name(zone: &[u8]) -> Vec<u8> {
    let mut long = Vec::new();
    for _ in 0..4 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    long.extend_from_slice(zone);
    assert!(long.len() > 255);
    long
}

#[test]
fn bad_input_gets_its_rcode_and_leaves_the_zone_alone() {
    let setup = Setup::start();
    let alice_path = setup.keygen("alice.key");
    assert_status(&setup.pvt(false, "alice", &alice_path, "register", &[]), "NOERROR", 0, "register alice");
    assert_status(&setup.pvt(false, "alice", &alice_path, "add", &["www 300 A 192.0.2.1"]), "NOERROR", 0, "add");
    let bob_path = setup.keygen("bob.key");
    assert_status(&setup.pvt(false, "bob", &bob_path, "register", &[]), "NOERROR", 0, "register bob");
    let before = setup.bind.pvt_zone_records();
    let alice = setup.user_key(&alice_path);
    let now = sig0::now();
    let mut forge = Forge::new(&setup, setup.user_key(&alice_path), "alice._pvt.example.test.");
    let zone = forge.zone.clone();
    let stranger = KeyPair::generate();

    // Queries.
    let qname = forge.encrypted(1, b"\x03www");
    let query = forge.query(&qname, ENCR);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("unsigned", query.clone(), 5),
        ("signed with another key", forge.signed(query.clone(), &stranger, now), 5),
        ("an expired SIG(0)", forge.signed(query.clone(), &alice, now - 3600), 5),
        (
            "a byte flipped after signing",
            {
                let mut msg = forge.signed(query.clone(), &alice, now);
                msg[1] ^= 1;
                msg
            },
            5,
        ),
        (
            "an undecryptable name",
            {
                let mut bad = qname.clone();
                bad[10] ^= 0x40;
                forge.signed(forge.query(&bad, ENCR), &alice, now)
            },
            1,
        ),
        (
            "a wrong label count",
            {
                let mut bad = qname.clone();
                bad[1] += 1;
                forge.signed(forge.query(&bad, ENCR), &alice, now)
            },
            1,
        ),
        (
            "a plain type below the user apex",
            forge.signed(forge.query(&name("www.alice._pvt.example.test."), 1), &alice, now),
            5,
        ),
        ("AXFR of the _pvt zone", forge.query(&name("_pvt.example.test."), 252), 5),
        ("AXFR of a user zone", forge.signed(forge.query(&zone, 252), &alice, now), 5),
        ("a name over 255 octets", forge.signed(forge.query(&too_long_name(&zone), ENCR), &alice, now), 1),
    ];
    for (what, msg, want) in cases {
        let answer = exchange(setup.pvt, &msg);
        assert_eq!(rcode(&answer), want, "{what}");
        assert_eq!(&answer[..2], &msg[..2], "{what}: the ID");
        assert_eq!(u16::from_be_bytes([answer[6], answer[7]]), 0, "{what}: no answers");
        if want == 5 && msg.len() > 12 && msg[12..].starts_with(&qname[..4]) {
            // §4.1: the question as received and the user's SOA in clear.
            assert_eq!(&answer[12..12 + qname.len()], &qname[..], "{what}: the question as received");
            assert_eq!(authority_soa_owner(&answer), zone, "{what}: the user's SOA in Authority");
        }
        assert_eq!(setup.bind.pvt_zone_records(), before, "{what}: BIND's zone unchanged");
    }
    let plain_type = forge.signed(forge.query(&name("www.alice._pvt.example.test."), 1), &alice, now);
    assert_eq!(authority_soa_owner(&exchange(setup.pvt, &plain_type)), zone, "a plain type: the user's SOA");
    let unknown = forge.query(&name("x.carol._pvt.example.test."), ENCR);
    let answer = exchange(setup.pvt, &unknown);
    assert_eq!(rcode(&answer), 3, "an unknown user: NXDOMAIN");
    assert_eq!(authority_soa_owner(&answer), name(ZONE), "an unknown user: the _pvt SOA, owned by _pvt");

    // UPDATEs.
    let add = forge.encr_add(b"\x04evil", 1, &[192, 0, 2, 66]);
    let mut undecryptable = add.clone();
    *undecryptable.4.last_mut().unwrap() ^= 1;
    let mut mismatched = forge.encr_add(b"\x04evil", 1, &[192, 0, 2, 66]);
    mismatched.0 = forge.encrypted(16, b"\x04evil");
    // The owner's ciphertext damaged, and its label count one too many: signed as they are.
    let mut undecryptable_name = forge.encr_add(b"\x04evil", 1, &[192, 0, 2, 66]);
    undecryptable_name.0[10] ^= 0x40;
    let mut miscounted = forge.encr_add(b"\x04evil", 1, &[192, 0, 2, 66]);
    miscounted.0[1] += 1;
    let mut bob_forge = Forge::new(&setup, setup.user_key(&alice_path), "bob._pvt.example.test.");
    let into_bob = bob_forge.encr_add(b"\x04evil", 1, &[192, 0, 2, 66]);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("an unsigned UPDATE", forge.update(&zone, std::slice::from_ref(&add)), 5),
        (
            "an UPDATE signed with another key",
            forge.signed(forge.update(&zone, std::slice::from_ref(&add)), &stranger, now),
            5,
        ),
        ("an expired UPDATE", forge.signed(forge.update(&zone, std::slice::from_ref(&add)), &alice, now - 3600), 5),
        (
            "an UPDATE flipped after signing",
            {
                let mut msg = forge.signed(forge.update(&zone, std::slice::from_ref(&add)), &alice, now);
                // Inside the ENCR record, before the SIG record (118 octets here).
                let at = msg.len() - 130;
                msg[at] ^= 1;
                msg
            },
            5,
        ),
        ("an undecryptable record", forge.signed(forge.update(&zone, &[undecryptable]), &alice, now), 1),
        (
            "an UPDATE record whose name does not decrypt",
            forge.signed(forge.update(&zone, &[undecryptable_name]), &alice, now),
            1,
        ),
        (
            "an UPDATE record name with a wrong label count",
            forge.signed(forge.update(&zone, &[miscounted]), &alice, now),
            1,
        ),
        (
            "a record whose type disagrees with its owner",
            forge.signed(forge.update(&zone, &[mismatched]), &alice, now),
            1,
        ),
        (
            "alice writing into bob's zone, signed as alice",
            bob_forge.signed(
                bob_forge.update(&name("bob._pvt.example.test."), std::slice::from_ref(&into_bob)),
                &alice,
                now,
            ),
            5,
        ),
        ("alice's zone naming a record under bob", forge.signed(forge.update(&zone, &[into_bob]), &alice, now), 10),
    ];
    for (what, msg, want) in cases {
        let answer = exchange(setup.pvt, &msg);
        assert_eq!(rcode(&answer), want, "{what}");
        assert_eq!(setup.bind.pvt_zone_records(), before, "{what}: BIND's zone unchanged");
    }

    // Registrations.
    let out = setup.pvt(false, "alice", &setup.keygen("alice-again.key"), "register", &[]);
    assert_status(&out, "YXRRSET", 1, "a second registration");
    let out = setup.pvt(false, "carol", &setup.keygen("carol.key"), "register", &[]);
    assert_status(&out, "REFUSED", 1, "a user not enrolled");
    assert_eq!(setup.bind.pvt_zone_records(), before, "registrations refused: BIND's zone unchanged");

    // Each refusal counted by its reason; the registrations and the record by operation.
    for (reason, at_least) in [
        ("unsigned", 2.0),
        ("wrong_signer", 2.0),
        ("sig0_time", 2.0),
        ("bad_signature", 2.0),
        ("formerr_name", 2.0),
        ("formerr_record", 2.0),
        ("not_encr", 1.0),
        ("transfer", 2.0),
        ("unknown_user", 1.0),
        ("notzone", 1.0),
        ("not_enrolled", 1.0),
    ] {
        let got = setup.metric(&format!("dotgate_pvt_refused_total{{reason=\"{reason}\"}}"));
        assert!(got >= at_least, "{reason}: {got} counted, at least {at_least} expected");
    }
    assert_eq!(
        setup.metric("dotgate_pvt_updates_total{op=\"register\"}"),
        3.0,
        "alice, bob, alice again, and none for carol"
    );
    assert!(setup.metric("dotgate_pvt_updates_total{op=\"records\"}") >= 1.0);
}

#[test]
fn the_apexes_answer_soa_ns_and_key_in_clear() {
    let setup = Setup::start();
    let key = setup.keygen("alice.key");
    assert_status(&setup.pvt(false, "alice", &key, "register", &[]), "NOERROR", 0, "register");
    let alice = setup.user_key(&key);
    let forge = Forge::new(&setup, setup.user_key(&key), "alice._pvt.example.test.");
    for (apex, qtype, want) in [
        ("_pvt.example.test.", 6u16, None),
        ("_pvt.example.test.", 2, None),
        ("_pvt.example.test.", 25, Some(setup.provider.public.key_rdata())),
        ("alice._pvt.example.test.", 6, None),
        ("alice._pvt.example.test.", 2, None),
        ("alice._pvt.example.test.", 25, Some(alice.public.key_rdata())),
    ] {
        let answer = exchange(setup.pvt, &forge.query(&name(apex), qtype));
        assert_eq!(rcode(&answer), 0, "{apex} {qtype}");
        let parsed = dotgate::message::parse(&answer);
        assert_eq!(parsed.sections[0].len(), 1, "{apex} {qtype}: one record");
        let record = &parsed.sections[0][0];
        assert_eq!((record.rtype, record.owner.to_ascii_lowercase()), (qtype, name(apex)), "{apex} {qtype}");
        if let Some(rdata) = want {
            assert_eq!(answer[record.rdata.0..record.rdata.1].to_vec(), rdata, "{apex} KEY");
        }
        assert!(parsed.sections[1].is_empty() && parsed.sections[2].is_empty(), "{apex} {qtype}: nothing else");
    }
    // Other types at the apexes are refused; an IXFR too.
    for (apex, qtype) in [("_pvt.example.test.", 1u16), ("alice._pvt.example.test.", 1), ("_pvt.example.test.", 251)] {
        assert_eq!(rcode(&exchange(setup.pvt, &forge.query(&name(apex), qtype))), 5, "{apex} {qtype}");
    }
    assert!(setup.metric("dotgate_pvt_queries_total{kind=\"clear\"}") >= 6.0);

    // Over TCP (RFC 7766 framing) as over UDP: a clear apex query, and a signed encrypted one.
    let tcp = |msg: &[u8]| {
        support::client::tcp_exchange_blocking(setup.pvt, msg, Duration::from_secs(5)).expect("an answer over TCP")
    };
    assert_eq!(rcode(&tcp(&forge.query(&name("_pvt.example.test."), 25))), 0, "the provider KEY over TCP");
    let mut forge = forge;
    let qname = forge.encrypted(1, b"\x03www");
    let signed = forge.signed(forge.query(&qname, ENCR), &alice, sig0::now());
    let answer = tcp(&signed);
    assert_eq!(rcode(&answer), 3, "www does not exist: NXDOMAIN, over TCP");
    assert_eq!(&answer[12..12 + qname.len()], &qname[..], "the encrypted question echoed");
}

#[test]
fn a_forged_encr_is_rejected_by_the_client() {
    // A fake gateway: it serves the real provider KEY, and answers every encrypted query with an
    // ENCR sealed by a key that is not the provider's.
    let setup_dir = tempfile::tempdir().unwrap();
    let provider = KeyPair::generate();
    let forger = KeyPair::generate();
    let user_path = setup_dir.path().join("alice.key");
    let out = dotgate(&["pvt", "keygen", "--out", user_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let user = KeyPair::read_file(&user_path).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let provider_rdata = provider.public.key_rdata();
    let zone = name("alice._pvt.example.test.");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            let msg = &buf[..len];
            let Some(end) = dotgate::dns::question_end(msg) else { continue };
            let qtype = u16::from_be_bytes([msg[end - 4], msg[end - 3]]);
            let mut answer = msg[..end].to_vec();
            answer[2] |= 0x84;
            answer[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            answer.extend_from_slice(&[0xc0, 0x0c]);
            let mut rdata = Vec::new();
            let rtype = if qtype == 25 {
                rdata = provider_rdata.clone();
                25
            } else {
                let owner = name("www.alice._pvt.example.test.");
                seal::seal_record(&mut rng, 1, &forger, &user.public, &zone, 1, &owner, &[192, 0, 2, 99], &mut rdata);
                ENCR
            };
            answer.extend_from_slice(&rtype.to_be_bytes());
            answer.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            answer.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            answer.extend_from_slice(&rdata);
            let _ = socket.send_to(&answer, peer);
        }
    });
    let out = dotgate(&[
        "pvt",
        "query",
        &format!("@{addr}"),
        "--zone",
        "alice._pvt.example.test",
        "--key",
        user_path.to_str().unwrap(),
        "www",
        "A",
    ]);
    assert_eq!(out.status.code(), Some(1), "a forged ENCR: {}", text(&out));
    assert!(!text(&out).contains("192.0.2.99"), "the forged record is never shown: {}", text(&out));
}

#[test]
fn load_sends_prepared_queries_and_every_one_is_answered() {
    let setup = Setup::start();
    let key = setup.keygen("alice.key");
    assert_status(&setup.pvt(false, "alice", &key, "register", &[]), "NOERROR", 0, "register");
    assert_status(&setup.pvt(false, "alice", &key, "add", &["www 300 A 192.0.2.1"]), "NOERROR", 0, "add");
    let queries = setup.dir.path().join("queries");
    std::fs::write(&queries, "www A\nnothere A\n").unwrap();
    let out = setup.pvt(
        false,
        "alice",
        &key,
        "load",
        &["-f", queries.to_str().unwrap(), "--prepared", "200", "-c", "4", "-Q", "500", "-l", "2"],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("Queries lost:         0 (0.00%)"), "{shown}");
    let sent: u64 = shown.lines().find_map(|l| l.trim().strip_prefix("Queries sent:")).unwrap().trim().parse().unwrap();
    assert!((900..=1100).contains(&sent), "about 500 a second for 2 s: {shown}");
    assert!(shown.contains("NOERROR") && shown.contains("NXDOMAIN"), "both names were asked: {shown}");
}

/// `pvt load --updates`: every prepared UPDATE is applied once, as BIND's zone shows.
#[test]
fn load_sends_prepared_updates_and_each_adds_its_record() {
    let setup = Setup::start();
    let key = setup.keygen("alice.key");
    assert_status(&setup.pvt(false, "alice", &key, "register", &[]), "NOERROR", 0, "register");
    let out = setup.pvt(
        false,
        "alice",
        &key,
        "load",
        &["--updates", "--prepared", "60", "-c", "3", "-w", "2", "--name-prefix", "bulk-", "-l", "20"],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("Queries lost:         0 (0.00%)"), "{shown}");
    let sent: u64 = shown.lines().find_map(|l| l.trim().strip_prefix("Queries sent:")).unwrap().trim().parse().unwrap();
    assert_eq!(sent, 60, "each UPDATE sent once: {shown}");
    let added: Vec<String> = alices(&setup).into_iter().filter(|r| r.starts_with("bulk-")).collect();
    assert_eq!(added.len(), 60, "one record per UPDATE: {added:?}");
    assert!(added.iter().all(|r| r.contains("\tA\t") || r.contains(" A ")), "{added:?}");
}

#[test]
fn destroying_a_zone_too_big_for_one_update_deletes_all_of_it() {
    use dotgate::frontend::pvt::primary::{Primary, UpdateBuilder, CLASS_IN};
    let setup = Setup::start();
    let key = setup.keygen("alice.key");
    assert_status(&setup.pvt(false, "alice", &key, "register", &[]), "NOERROR", 0, "register");
    // 4,000 names below alice, straight at BIND (about 150 kB of deletes: three UPDATEs).
    let primary =
        Primary { addr: setup.bind.addr, tsig: dotgate::tsig::read_key_file(&setup.bind.pvt_tsig_key_file()).unwrap() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for batch in 0..8 {
        let mut update = UpdateBuilder::new(&name("_pvt.example.test."));
        for i in 0..500 {
            let owner = name(&format!("host-number-{batch}-{i}.alice._pvt.example.test."));
            update.update(&owner, 1, CLASS_IN, 300, &[192, 0, 2, (i % 250) as u8]);
        }
        assert_eq!(runtime.block_on(primary.update(&update)), Ok(0), "filling batch {batch}");
    }
    let alices = |records: &[String]| records.iter().filter(|r| r.contains("alice._pvt")).count();
    assert_eq!(alices(&setup.bind.pvt_zone_records()), 4001, "4,000 records and the KEY");
    assert_status(&setup.pvt(false, "alice", &key, "destroy", &[]), "NOERROR", 0, "destroy");
    assert_eq!(alices(&setup.bind.pvt_zone_records()), 0, "nothing of alice is left");
    assert_status(&setup.pvt(false, "alice", &key, "register", &[]), "NOERROR", 0, "register again");
}

/// `dotgate pvt admin ARGS` against the BIND of `setup`.
fn admin(setup: &Setup, args: &[&str]) -> Output {
    let (primary, tsig) = (setup.bind.addr.to_string(), setup.bind.pvt_tsig_key_file());
    let mut all = vec!["pvt", "admin"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--zone", ZONE, "--primary", &primary, "--tsig-key", tsig.to_str().unwrap()]);
    dotgate(&all)
}

/// What BIND holds at and below alice's apex.
fn alices(setup: &Setup) -> Vec<String> {
    setup.bind.pvt_zone_records().into_iter().filter(|r| r.contains("alice._pvt")).collect()
}

#[test]
fn admin_rekey_refuses_the_old_key_at_once_and_admin_destroy_empties_the_zone() {
    // One worker, so that the one KEY cache surely holds the old KEY.
    let setup = Setup::start_with(&["--workers", "1"]);
    let old = setup.keygen("alice.key");
    let run = |key: &Path, command: &str, extra: &[&str]| setup.pvt(false, "alice", key, command, extra);
    assert_status(&run(&old, "register", &[]), "NOERROR", 0, "register");
    assert_status(&run(&old, "add", &["www 300 A 192.0.2.1"]), "NOERROR", 0, "add");
    assert_status(&run(&old, "query", &["www", "A"]), "NOERROR", 0, "query with the old key: now cached");

    // The provider replaces the KEY at BIND, behind the gateway's back.
    let new = setup.keygen("alice-new.key");
    let out = admin(&setup, &["rekey", "alice", new.to_str().unwrap()]);
    assert_status(&out, "NOERROR", 0, "admin rekey");
    let new_key = setup.user_key(&new).public.key_text();
    let old_key = setup.user_key(&old).public.key_text();
    let zone = alices(&setup);
    let keys: Vec<&String> = zone.iter().filter(|r| r.starts_with("alice._pvt.example.test. ")).collect();
    assert!(keys.len() == 1 && keys[0].ends_with(&new_key), "only the new KEY at the apex: {zone:#?}");

    // Queries go by the cached KEY for up to a minute (docs/pvt.md): the old key still asks.
    // An UPDATE right after, signed with the old key, is REFUSED all the same: UPDATEs read the
    // KEY from BIND each time.
    assert_status(&run(&old, "query", &["www", "A"]), "NOERROR", 0, "a query by the cached, old KEY");
    let before = setup.bind.pvt_zone_records();
    assert_status(&run(&old, "add", &["evil 300 A 192.0.2.66"]), "REFUSED", 1, "the old key's UPDATE");
    assert_eq!(setup.bind.pvt_zone_records(), before, "the refused UPDATE changed nothing");
    assert_status(&run(&new, "add", &["printer 300 A 192.0.2.7"]), "NOERROR", 0, "the new key's UPDATE");
    assert!(alices(&setup).iter().any(|r| r.starts_with("printer.alice._pvt.example.test. 300 IN A 192.0.2.7")));
    // A KEY that is no user's is refused as the admin's argument, nothing sent.
    let bad = setup.dir.path().join("bad.key");
    std::fs::write(&bad, format!("KEY 256 3 15 {}", old_key.rsplit(' ').next().unwrap())).unwrap();
    let out = admin(&setup, &["rekey", "alice", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a KEY with the Zone bit: {}", text(&out));

    // The provider destroys the zone: nothing of alice is left, and a new registration starts
    // with its KEY alone.
    assert!(alices(&setup).len() >= 3, "the KEY, www and printer");
    let out = admin(&setup, &["destroy", "alice"]);
    assert_status(&out, "NOERROR", 0, "admin destroy");
    assert!(text(&out).contains("alice._pvt.example.test.: zone destroyed"), "{}", text(&out));
    assert_eq!(alices(&setup), Vec::<String>::new(), "nothing of alice after admin destroy");
    let out = admin(&setup, &["destroy", "alice"]);
    assert_eq!(out.status.code(), Some(1), "no zone to destroy: {}", text(&out));
    assert!(text(&out).contains("no KEY at alice._pvt.example.test."), "{}", text(&out));
    let third = setup.keygen("alice-third.key");
    assert_status(&run(&third, "register", &[]), "NOERROR", 0, "register again");
    let third_key = setup.user_key(&third).public.key_text();
    let zone = alices(&setup);
    assert!(
        zone.len() == 1
            && zone[0].starts_with("alice._pvt.example.test. 3600 IN KEY ")
            && zone[0].ends_with(&third_key),
        "{zone:#?}"
    );
}

#[test]
fn tls_alone_checks_the_gateway_against_the_system_roots() {
    let setup = Setup::start();
    let key = setup.keygen("alice.key");
    let register = |ssl_cert_file: Option<&Path>| {
        let (server, key) = (format!("@{}", setup.dotgate.addr), key.to_str().unwrap().to_owned());
        let mut command = Command::new(env!("CARGO_BIN_EXE_dotgate"));
        command.args(["pvt", "register", &server, "--zone", "alice._pvt.example.test", "--key", &key]);
        command.args(["--tls", "--tls-name", "localhost"]);
        match ssl_cert_file {
            Some(file) => command.env("SSL_CERT_FILE", file),
            None => command.env_remove("SSL_CERT_FILE"),
        };
        command.output().expect("run dotgate")
    };
    // The test certificate is in no system bundle: the handshake fails, nothing is sent.
    let before = setup.bind.pvt_zone_records();
    let out = register(None);
    assert_eq!(out.status.code(), Some(1), "a certificate the system does not trust: {}", text(&out));
    assert!(text(&out).contains("invalid peer certificate"), "a clear certificate error: {}", text(&out));
    assert_eq!(setup.bind.pvt_zone_records(), before, "nothing registered");
    // The system roots are what is checked: with the test certificate as the bundle, it works.
    assert_status(&register(Some(&setup.cert)), "NOERROR", 0, "the certificate in $SSL_CERT_FILE");
}

/// A UDP relay between the client and `gateway` that keeps each request it passes on.
fn recording_relay(gateway: SocketAddr) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let (seen, requests) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
        upstream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 65535];
        while let Ok((len, client)) = socket.recv_from(&mut buf) {
            let request = buf[..len].to_vec();
            upstream.send_to(&request, gateway).unwrap();
            if seen.send(request).is_err() {
                return;
            }
            if let Ok(len) = upstream.recv(&mut buf) {
                let _ = socket.send_to(&buf[..len], client);
            }
        }
    });
    (addr, requests)
}

#[test]
fn a_non_default_encr_type_is_used_on_the_wire_end_to_end() {
    const TYPE: u16 = 65400;
    let setup = Setup::start_with(&["--pvt-encr-type", "65400"]);
    let key = setup.keygen("alice.key");
    let (relay, requests) = recording_relay(setup.pvt);
    let run = |command: &str, extra: &[&str]| {
        let (server, key) = (format!("@{relay}"), key.to_str().unwrap().to_owned());
        let mut args = vec!["pvt", command, &server, "--zone", "alice._pvt.example.test", "--key", &key];
        args.extend_from_slice(extra);
        dotgate(&args)
    };
    assert_status(&run("register", &[]), "NOERROR", 0, "register");
    assert_status(&run("add", &["www 300 A 192.0.2.1", "--encr-type", "65400"]), "NOERROR", 0, "add");
    let zone = setup.bind.pvt_zone_records();
    assert!(zone.iter().any(|r| r.starts_with("www.alice._pvt.example.test. 300 IN A 192.0.2.1")), "{zone:#?}");
    let _: Vec<Vec<u8>> = requests.try_iter().collect();
    let out = run("query", &["www", "A", "--encr-type", "65400"]);
    assert_status(&out, "NOERROR", 0, "query");
    let got = answers(&out);
    assert!(got.len() == 1 && got[0].contains("192.0.2.1"), "{}", text(&out));
    // The client's requests: the provider KEY in clear, then the encrypted question.
    let asked: Vec<(Vec<u8>, u16)> = requests
        .try_iter()
        .map(|msg| {
            let end = dotgate::dns::question_end(&msg).unwrap();
            (msg[12..end - 4].to_vec(), u16::from_be_bytes([msg[end - 4], msg[end - 3]]))
        })
        .collect();
    let encrypted: Vec<_> =
        asked.iter().filter(|(qname, _)| qname.len() > name("www.alice._pvt.example.test.").len()).collect();
    assert_eq!(encrypted.len(), 1, "one encrypted question: {asked:?}");
    assert_eq!(encrypted[0].1, TYPE, "its QTYPE on the wire is the ENCR type given");
    // With the default type the gateway does not take the question as encrypted.
    assert_status(&run("query", &["www", "A"]), "REFUSED", 1, "query with the default ENCR type");
}
