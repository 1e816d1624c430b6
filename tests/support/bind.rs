//! A real BIND 9 (`named`) authoritative server on a free loopback port.
//!
//! Owns [`Bind`]: writes `named.conf` and the zone into a temp dir, runs
//! `named -g -c CONF` in the foreground (logs on stderr; as root it simply
//! keeps running as root: no `-u`, no chroot; the control channel is off so
//! instances do not fight over port 953), waits until it answers over UDP and
//! TCP, and kills it (and removes the temp dir) on Drop.
//!
//! Zone `example.test` (authoritative, `recursion no`):
//! SOA, NS `ns.example.test.`, `ns A 127.0.0.1`, `www A 192.0.2.20`.
//!
//! `Bind::start` blocks the calling thread for the start-up (10 s max, then
//! it panics with named's output).
//!
//! ## The query log ([`Bind::start_querylog`])
//!
//! `querylog yes;` in `options`. With `named -g` every category goes to stderr whatever a
//! `logging {}` statement says (the man page: "-g ... force all logging to stderr"), query
//! lines included, one write per line: [`Bind::query_log`] reads them off the collected
//! stderr. BIND 9.18.49 writes (readiness probes of the harness included, from 127.0.0.1):
//!
//! `04-Dec-2026 18:54:57.970 client @0x7fdd3921a098 127.0.0.1#48253 (www.example.test): query: www.example.test IN A +E(0) (127.0.0.1) [ECS 127.0.0.0/24/0]`
//!
//! (date, time, `client @<object>`, client address`#`port, `(name)`, `query:`, name, class,
//! type, flags: `+` recursion desired, `E(0)` EDNS version 0, `T` over TCP, `D` DO, `C` CD,
//! `K` a cookie; `(server address)`; ` [ECS address/source/scope]` only when the query had a
//! Client Subnet option). Over TCP the flags read `+E(0)T`; without EDNS just `+`. An IPv6
//! subnet is `[ECS 2001:db8::/56/0]`; source 0 is `[ECS 0.0.0.0/0/0]`.
//!
//! ECS as BIND 9.18 (an authoritative server without ECS-based answers) handles it, seen with
//! hand-made options in `harness_selftest.rs`:
//! - The answer ECHOES the option: same family, source prefix and address, scope prefix 0
//!   (RFC 7871 section 7.2.2 for a server that does not tailor answers). So an ECS that dotgate
//!   added comes back from BIND, and dotgate's strip-on-the-way-back (or give-back-the-client's)
//!   path IS exercised against BIND.
//! - Address bits past the source prefix (127.0.0.2 sent as /24 with 4 address bytes) get
//!   FORMERR, and no query line.
//! - Two ECS options in one query: BIND uses (logs, echoes) the FIRST and ignores the other.
//!   A proxy that appended its own ECS after a client's would show the client's in the log.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use super::process::{start_dns_server, TestProcess};

pub const WWW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

pub struct Bind {
    pub addr: SocketAddr,
    proc: TestProcess,
    dir: tempfile::TempDir,
}

/// The TSIG key `Bind::start_signed` lets update its reverse zones (written to `tsig.key`).
pub const TSIG_KEY_NAME: &str = "publish";

/// The zones of [`Bind::start_signed`] beside `example.test`.
const SIGNED_ZONES: &str = r#"
key "publish" {{ algorithm hmac-sha256; secret "{secret}"; }};
dnssec-policy "ed25519" {{ keys {{ csk lifetime unlimited algorithm ed25519; }}; }};
dnssec-policy "rsa" {{ keys {{ csk lifetime unlimited algorithm rsasha256 2048; }}; }};
zone "127.in-addr.arpa" {{
    type primary;
    file "{d}/127.in-addr.arpa.zone";
    dnssec-policy "ed25519";
    allow-update {{ key "publish"; }};
}};
zone "0.0.127.in-addr.arpa" {{
    type primary;
    file "{d}/0.0.127.in-addr.arpa.zone";
    dnssec-policy "rsa";
    allow-update {{ key "publish"; }};
}};
zone "1.0.127.in-addr.arpa" {{
    type primary;
    file "{d}/1.0.127.in-addr.arpa.zone";
    allow-update {{ key "publish"; }};
}};
"#;

/// The zone of [`Bind::start_pvt`]: dotgate's gateway updates it with the TSIG key and may
/// transfer it; nobody else may do either. `check-names primary ignore` (in `options`) because
/// BIND's default fails A, AAAA and MX records whose owner is below an underscore label such as
/// `_pvt` (their owners must be host names).
const PVT_ZONE: &str = r#"
key "pvt-gateway" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "_pvt.example.test" {{
    type primary;
    file "{d}/_pvt.example.test.zone";
    update-policy {{ grant pvt-gateway subdomain _pvt.example.test. ANY; }};
    allow-transfer {{ key pvt-gateway; }};
}};
"#;

/// The `_pvt` zone's name and the gateway's name in its SOA MNAME.
pub const PVT_ZONE_NAME: &str = "_pvt.example.test";
pub const PVT_MNAME: &str = "gw.example.test.";

fn write_config(dir: &Path, port: u16, querylog: bool, signed: bool, pvt: bool) -> std::path::PathBuf {
    let d = dir.display();
    let querylog = if querylog { "\n    querylog yes;" } else { "" };
    let check_names = if pvt { "\n    check-names primary ignore;" } else { "" };
    let conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    dnssec-validation no;
    notify no;
    tcp-clients 1000;{check_names}{querylog}
}};
controls {{ }};
zone "example.test" {{
    type primary;
    file "{d}/example.test.zone";
}};
"#
    );
    let conf = if signed {
        use base64::Engine as _;
        let secret = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let zones = SIGNED_ZONES.replace("{{", "{").replace("}}", "}").replace("{d}", &d.to_string());
        std::fs::write(
            dir.join("tsig.key"),
            format!("key \"{TSIG_KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
        )
        .expect("write tsig.key");
        for (zone, extra) in [
            ("127.in-addr.arpa", "0.0 IN NS ns.example.test.\n"),
            ("0.0.127.in-addr.arpa", ""),
            ("1.0.127.in-addr.arpa", ""),
        ] {
            let text = format!(
                "$TTL 300\n@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300\n@ IN NS ns.example.test.\n{extra}"
            );
            std::fs::write(dir.join(format!("{zone}.zone")), text).expect("write a reverse zone");
        }
        conf + &zones.replace("{secret}", &secret)
    } else {
        conf
    };
    let conf = if pvt {
        use base64::Engine as _;
        let secret = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        std::fs::write(
            dir.join("pvt-tsig.key"),
            format!("key \"pvt-gateway\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
        )
        .expect("write pvt-tsig.key");
        std::fs::write(
            dir.join(format!("{PVT_ZONE_NAME}.zone")),
            format!("$TTL 300\n@ IN SOA {PVT_MNAME} hostmaster.example.test. 1 3600 600 86400 60\n@ IN NS ns.example.test.\n"),
        )
        .expect("write the _pvt zone");
        let zone = PVT_ZONE.replace("{{", "{").replace("}}", "}").replace("{d}", &d.to_string());
        conf + &zone.replace("{secret}", &secret)
    } else {
        conf
    };
    let zone = format!(
        "$TTL 300\n\
         @   IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300\n\
         @   IN NS  ns.example.test.\n\
         ns  IN A   127.0.0.1\n\
         www IN A   {WWW_A}\n"
    );
    std::fs::write(dir.join("example.test.zone"), zone).expect("write zone");
    let path = dir.join("named.conf");
    std::fs::write(&path, conf).expect("write named.conf");
    path
}

impl Bind {
    /// Starts named and waits (10 s max) until it answers over UDP and TCP.
    /// Retries with a new port (3 tries) if the port was taken meanwhile.
    pub fn start() -> Bind {
        Bind::start_inner(false, false, false)
    }

    /// [`Bind::start_querylog`] with the dynamic zone `_pvt.example.test` (SOA MNAME
    /// `gw.example.test.`, negative TTL 60) that the TSIG key in [`Bind::pvt_tsig_key_file`]
    /// may update and transfer, for the private-subdomain gateway.
    pub fn start_pvt() -> Bind {
        Bind::start_inner(true, false, true)
    }

    /// The gateway's TSIG key file (`key "pvt-gateway" { ... };`) of [`Bind::start_pvt`].
    pub fn pvt_tsig_key_file(&self) -> std::path::PathBuf {
        self.dir().join("pvt-tsig.key")
    }

    /// Every record of `_pvt.example.test` as `dig AXFR` prints it (TSIG-signed), sorted, SOA
    /// serials left out: what a test compares before and after a refused change.
    pub fn pvt_zone_records(&self) -> Vec<String> {
        let key = std::fs::read_to_string(self.pvt_tsig_key_file()).unwrap();
        let secret = key.split('"').nth(3).expect("the secret in pvt-tsig.key");
        let out = Command::new("kdig")
            .arg(format!("@{}", self.addr.ip()))
            .arg("-p")
            .arg(self.addr.port().to_string())
            .arg("-y")
            .arg(format!("hmac-sha256:pvt-gateway:{secret}"))
            .arg("+nocomments")
            .arg("+nostats")
            .arg("AXFR")
            .arg(PVT_ZONE_NAME)
            .output()
            .expect("run kdig");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("SOA"),
            "AXFR of {PVT_ZONE_NAME}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut records: Vec<String> = text
            .lines()
            .filter(|line| {
                !line.starts_with(';') && !line.trim().is_empty() && !line.contains("\tSOA\t") && !line.contains("TSIG")
            })
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        records.sort();
        records.dedup();
        records
    }

    /// [`Bind::start`] with `querylog yes;`: read the lines with [`Bind::query_log`].
    pub fn start_querylog() -> Bind {
        Bind::start_inner(true, false, false)
    }

    /// [`Bind::start_querylog`] with three dynamic reverse zones the TSIG key in
    /// [`Bind::tsig_key_file`] may update: `127.in-addr.arpa` signed by BIND's `dnssec-policy`
    /// with Ed25519, delegating `0.0.127.in-addr.arpa`, signed with RSASHA256, whose DS is
    /// added to the parent here (so a chain from the parent's key runs through a DS); and
    /// `1.0.127.in-addr.arpa`, unsigned. Returns once both zones answer DNSKEY with signatures
    /// and the DS is signed (30 s max).
    pub fn start_signed() -> Bind {
        let bind = Bind::start_inner(true, true, false);
        for zone in ["127.in-addr.arpa.", "0.0.127.in-addr.arpa."] {
            bind.wait_signed(zone, RecordType::DNSKEY);
        }
        let ds = Command::new("dnssec-dsfromkey")
            .arg("-2")
            .arg(bind.key_file("0.0.127.in-addr.arpa"))
            .output()
            .expect("run dnssec-dsfromkey");
        assert!(ds.status.success(), "dnssec-dsfromkey: {}", String::from_utf8_lossy(&ds.stderr));
        let ds = String::from_utf8(ds.stdout).unwrap();
        bind.update("127.in-addr.arpa", &[format!("update add {}", ds.trim().replacen(" IN ", " 300 IN ", 1))]);
        bind.wait_signed("0.0.127.in-addr.arpa.", RecordType::DS);
        bind
    }

    /// The TSIG key file (`key "publish" { ... };`) of [`Bind::start_signed`].
    pub fn tsig_key_file(&self) -> std::path::PathBuf {
        self.dir().join("tsig.key")
    }

    /// The `K<zone>.+<alg>+<tag>.key` file BIND's dnssec-policy made for `zone` (its one key,
    /// a CSK): a DNSKEY record, usable as a trust anchor.
    pub fn key_file(&self, zone: &str) -> std::path::PathBuf {
        let prefix = format!("K{zone}.+");
        std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".key")
            })
            .unwrap_or_else(|| panic!("no key file for {zone} in {}", self.dir().display()))
    }

    /// Sends `lines` (knsupdate commands, e.g. `update add NAME TTL IN TYPE DATA`) to `zone` as
    /// one UPDATE signed with the TSIG key, and panics unless it is applied.
    pub fn update(&self, zone: &str, lines: &[String]) {
        use std::io::Write as _;
        let key = std::fs::read_to_string(self.tsig_key_file()).unwrap();
        let secret = key.split('"').nth(3).expect("the secret in tsig.key");
        let mut script = format!("server {} {}\nzone {zone}\n", self.addr.ip(), self.addr.port());
        for line in lines {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str("send\nanswer\n");
        let mut child = Command::new("knsupdate")
            .arg("-y")
            .arg(format!("hmac-sha256:{TSIG_KEY_NAME}:{secret}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run knsupdate");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "knsupdate {script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Polls (30 s max) until `name`/`rtype` is answered with an RRSIG covering it.
    fn wait_signed(&self, name: &str, rtype: RecordType) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let query = super::client::query_edns(name, rtype, 1, true, false, vec![]);
            if let Ok(answer) = super::client::udp_exchange_blocking(self.addr, &query, Duration::from_secs(2)) {
                let answer = super::parse(&answer);
                let signed = answer.answers().iter().any(|r| r.record_type() == RecordType::RRSIG);
                if signed {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{name} {rtype} not signed within 30 s:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_inner(querylog: bool, signed: bool, pvt: bool) -> Bind {
        let (addr, proc, dir) = start_dns_server("named", "www.example.test.", |dir, port| {
            let conf = write_config(dir, port, querylog, signed, pvt);
            let mut cmd = Command::new("named");
            cmd.arg("-g").arg("-c").arg(conf);
            cmd
        });
        Bind { addr, proc, dir }
    }

    /// The query log lines so far, parsed (empty without [`Bind::start_querylog`]).
    pub fn query_log(&self) -> Vec<QueryLogEntry> {
        self.proc.stderr().lines().filter_map(parse_query_line).collect()
    }

    /// Polls the query log every 10 ms until an entry satisfies `pred`; that entry, or `None`
    /// after `timeout`.
    pub fn wait_for_query(&self, timeout: Duration, pred: impl Fn(&QueryLogEntry) -> bool) -> Option<QueryLogEntry> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.query_log().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The temp dir holding `named.conf` and the zone file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One line of BIND's query log (see the module docs for the format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLogEntry {
    /// The client's address and port as named saw them.
    pub client: SocketAddr,
    /// Without the final dot (`www.example.test`).
    pub name: String,
    pub qtype: String,
    /// `+E(0)`, `+E(0)T`, `+`...
    pub flags: String,
    /// What is inside `[ECS ...]`, e.g. `127.0.0.0/24/0` (the format of
    /// [`super::client::Ecs`]'s `Display`); `None` when the query had no ECS.
    pub ecs: Option<String>,
    /// The whole line.
    pub line: String,
}

/// Parses `... client @0x... ADDR#PORT (NAME): query: NAME CLASS TYPE FLAGS (SERVER)[ [ECS X]]`.
pub fn parse_query_line(line: &str) -> Option<QueryLogEntry> {
    let (head, rest) = line.split_once(": query: ")?;
    let after_client = &head[head.find(" client @")? + " client @".len()..];
    let addr_port = after_client.split_whitespace().nth(1)?;
    let (ip, port) = addr_port.rsplit_once('#')?;
    let client = SocketAddr::new(ip.parse::<IpAddr>().ok()?, port.parse().ok()?);
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.len() < 4 {
        return None;
    }
    let ecs = rest.split_once("[ECS ").and_then(|(_, e)| e.split_once(']')).map(|(e, _)| e.to_string());
    Some(QueryLogEntry {
        client,
        name: f[0].to_string(),
        qtype: f[2].to_string(),
        flags: f[3].to_string(),
        ecs,
        line: line.to_string(),
    })
}
