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

use super::process::{start_dns_server, TestProcess};

pub const WWW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

pub struct Bind {
    pub addr: SocketAddr,
    proc: TestProcess,
    dir: tempfile::TempDir,
}

fn write_config(dir: &Path, port: u16, querylog: bool) -> std::path::PathBuf {
    let d = dir.display();
    let querylog = if querylog { "\n    querylog yes;" } else { "" };
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
    tcp-clients 1000;{querylog}
}};
controls {{ }};
zone "example.test" {{
    type primary;
    file "{d}/example.test.zone";
}};
"#
    );
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
        Bind::start_inner(false)
    }

    /// [`Bind::start`] with `querylog yes;`: read the lines with [`Bind::query_log`].
    pub fn start_querylog() -> Bind {
        Bind::start_inner(true)
    }

    fn start_inner(querylog: bool) -> Bind {
        let (addr, proc, dir) = start_dns_server("named", "www.example.test.", |dir, port| {
            let conf = write_config(dir, port, querylog);
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
