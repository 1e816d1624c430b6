//! A real Unbound resolver on a free loopback port, for end-to-end tests.
//!
//! Owns [`Unbound`]: writes a config into a temp dir, runs `unbound -d -c`
//! in the foreground (no chroot, no privilege drop, no remote control,
//! iterator module only, one thread), waits until it answers over UDP and
//! TCP, and kills it (and removes the temp dir) on Drop.
//!
//! Static local zone `example.test.` (anything else in it is NXDOMAIN):
//! - `www.example.test.`   A 192.0.2.10, AAAA 2001:db8::10
//! - `mixed.example.test.` A 192.0.2.11
//! - `big.example.test.`   12 TXT records, answer ~3,190 bytes: TC=1 over
//!   UDP without EDNS (and with Unbound's default 1232-byte EDNS limit),
//!   complete over TCP
//! - `huge.example.test.`  150 TXT records, answer ~39,500 bytes (TCP only)
//!
//! `Unbound::start` blocks the calling thread for the start-up (usually well
//! under a second; at most 10 s, then it panics with Unbound's output).
//!
//! ## Behind PROXY v2, with a query log and access control ([`Unbound::start_opts`])
//!
//! [`UnboundOptions`] adds, each on request:
//! - `proxy-protocol-port: PORT` (its own port): every UDP datagram and every TCP connection
//!   must then start with a PROXY v2 header ([`super::proxy_v2`]). The readiness probe sends
//!   one naming its own socket (see [`super::process::ReadyProbe`]).
//! - `logfile: DIR/unbound.log`, `log-queries: yes`, `log-replies: yes`: read with
//!   [`Unbound::log`] / [`Unbound::log_entries`]. Unbound then writes nothing but its first
//!   line or two to stderr: errors go to that file too.
//! - `access-control:` lines after the base `127.0.0.0/8 allow`.
//!
//! What Unbound 1.17.1 does there (seen with hand-made headers, `harness_selftest.rs`):
//! - The client address in the header is THE client address for the ACL and the logs; the
//!   proxy's own address (127.0.0.1) only passes the initial ACL check. The port is not logged.
//! - A query line (`log-queries`), then a reply line (`log-replies`), e.g.:
//!   `[1796410460] unbound[19280:0] info: 127.0.0.2 www.example.test. A IN`
//!   `[1796410460] unbound[19280:0] info: 127.0.0.2 www.example.test. A IN NOERROR 0.000000 1 50`
//!   (client, name, type, class; then rcode, seconds taken, 1 if from cache/local data, size).
//! - A query refused by `access-control` gets a 12-byte REFUSED answer (header only, no
//!   question) and leaves NO query line, only a reply line without the question:
//!   `[1796410460] unbound[19280:0] info: 127.0.0.3 null TYPE0 CLASS0 REFUSED 0.000000 1 12`.
//!   So `log-queries` alone never shows a refused client; `log-replies` does.
//! - A datagram or connection without a header is dropped, logging
//!   `error: proxy_protocol: could not match PROXYv2 header` and
//!   `error: proxy_protocol: could not consume PROXYv2 header` (no answer at all over UDP).
//! - Over TCP one header at the start of the connection covers every query after it: three
//!   queries pipelined behind one header are all answered and all logged as the claimed client.
//! - IPv6 client addresses work while Unbound listens on 127.0.0.1 only, BUT with `do-ip6: no`
//!   (this config) Unbound leaves out its default IPv6 ACL entries (`::1 allow`,
//!   `::ffff:127.0.0.1 allow`, `::0/0 refuse`): a claimed `::1` is REFUSED unless an
//!   `access-control: ::1 allow` line is given (with `do-ip6: yes` it is allowed by default).
//!   Unlisted addresses (e.g. 2001:db8::7) are REFUSED.
//! - An IPv4-mapped claim (`::ffff:127.0.0.2`, in a UDP6/TCP6 header) is an IPv6 address to the
//!   ACL: it does NOT match `127.0.0.0/8` and is REFUSED, logged as `::ffff:127.0.0.2`. A proxy
//!   listening on `[::]` must unmap its clients' addresses before putting them in the header.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{start_dns_server, start_dns_server_on, ReadyProbe, TestProcess};

pub const WWW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const WWW_AAAA: &str = "2001:db8::10";
pub const MIXED_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// Number of TXT records of `big.example.test.` / `huge.example.test.`.
pub const BIG_TXT_RECORDS: usize = 12;
pub const HUGE_TXT_RECORDS: usize = 150;
/// Length of each TXT string in those records.
pub const TXT_LEN: usize = 250;

pub struct Unbound {
    pub addr: SocketAddr,
    proc: TestProcess,
    /// The query log file, when started with [`UnboundOptions::query_log`].
    log_path: Option<PathBuf>,
    // Dropped after `proc` (fields drop in order): the process dies first.
    dir: tempfile::TempDir,
}

/// What [`Unbound::start_opts`] adds to the base config (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct UnboundOptions {
    /// `proxy-protocol-port:` its own port: queries must start with a PROXY v2 header.
    pub proxy_protocol: bool,
    /// `logfile:` in the temp dir, `log-queries: yes`, `log-replies: yes`.
    pub query_log: bool,
    /// `access-control:` values, e.g. `"127.0.0.3/32 refuse"`, `"::1 allow"` (after the base
    /// `127.0.0.0/8 allow`; Unbound picks the most specific netblock).
    pub access_control: Vec<String>,
    /// Any other lines for the `server:` clause.
    pub extra: Vec<String>,
}

impl UnboundOptions {
    /// Sets [`proxy_protocol`](Self::proxy_protocol).
    pub fn proxy_protocol(mut self) -> Self {
        self.proxy_protocol = true;
        self
    }

    /// Sets [`query_log`](Self::query_log).
    pub fn query_log(mut self) -> Self {
        self.query_log = true;
        self
    }

    /// Adds an `access-control: <rule>` line, e.g. `"127.0.0.3/32 refuse"`.
    pub fn access(mut self, rule: &str) -> Self {
        self.access_control.push(rule.to_string());
        self
    }

    /// Adds a line to the `server:` clause.
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }
}

/// The name of the query log file in Unbound's temp dir.
pub const LOG_FILE: &str = "unbound.log";

/// One line of Unbound's query log ([`Unbound::log_entries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The client as Unbound saw it: the address a PROXY v2 header claimed, if any.
    pub client: IpAddr,
    /// As logged, with the final dot (`www.example.test.`); `null` on a refused reply line.
    pub name: String,
    /// `A`, `TXT`...; `TYPE0` on a refused reply line.
    pub qtype: String,
    /// `None` on a query line (`log-queries`); the RCODE name (`NOERROR`, `REFUSED`...) on a
    /// reply line (`log-replies`).
    pub rcode: Option<String>,
    /// The whole line.
    pub line: String,
}

/// The text of TXT record `i` of `big.example.test.` (`b`) or
/// `huge.example.test.` (`h`): a 3-digit index then filler, TXT_LEN bytes.
pub fn txt_text(kind: char, i: usize) -> String {
    format!("{i:03}{}", kind.to_string().repeat(TXT_LEN - 3))
}

fn write_config(dir: &Path, port: u16, opts: &UnboundOptions) -> std::path::PathBuf {
    let mut c = String::new();
    let d = dir.display();
    // "" is stderr.
    let logfile = if opts.query_log { dir.join(LOG_FILE).display().to_string() } else { String::new() };
    writeln!(
        c,
        r#"server:
    verbosity: 1
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    so-reuseport: no
    interface-automatic: no
    chroot: ""
    username: ""
    directory: "{d}"
    pidfile: ""
    logfile: "{logfile}"
    use-syslog: no
    do-daemonize: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    num-threads: 1
    incoming-num-tcp: 100
    local-zone: "example.test." static
    local-data: "www.example.test. 300 IN A {WWW_A}"
    local-data: "www.example.test. 300 IN AAAA {WWW_AAAA}"
    local-data: "mixed.example.test. 300 IN A {MIXED_A}""#
    )
    .unwrap();
    for i in 0..BIG_TXT_RECORDS {
        let t = txt_text('b', i);
        writeln!(c, "    local-data: 'big.example.test. 300 IN TXT \"{t}\"'").unwrap();
    }
    for i in 0..HUGE_TXT_RECORDS {
        let t = txt_text('h', i);
        writeln!(c, "    local-data: 'huge.example.test. 300 IN TXT \"{t}\"'").unwrap();
    }
    if opts.proxy_protocol {
        writeln!(c, "    proxy-protocol-port: {port}").unwrap();
    }
    if opts.query_log {
        writeln!(c, "    log-queries: yes\n    log-replies: yes").unwrap();
    }
    for rule in &opts.access_control {
        writeln!(c, "    access-control: {rule}").unwrap();
    }
    for line in &opts.extra {
        writeln!(c, "    {line}").unwrap();
    }
    c.push_str("remote-control:\n    control-enable: no\n");
    let path = dir.join("unbound.conf");
    std::fs::write(&path, c).expect("write unbound.conf");
    path
}

/// Unbound in the foreground with the config written for `port` in `dir`.
fn command(dir: &Path, port: u16, opts: &UnboundOptions) -> Command {
    let conf = write_config(dir, port, opts);
    let mut cmd = Command::new("unbound");
    cmd.arg("-d").arg("-c").arg(conf);
    cmd
}

impl Unbound {
    /// Starts Unbound and waits (10 s max) until it answers over UDP and TCP.
    /// Retries with a new port (3 tries) if the port was taken meanwhile.
    pub fn start() -> Unbound {
        Unbound::start_with(&[])
    }

    /// [`Unbound::start`] with `extra` lines added to the `server:` clause (e.g.
    /// `"so-rcvbuf: 4m"`).
    pub fn start_with(extra: &[&str]) -> Unbound {
        let opts = UnboundOptions { extra: extra.iter().map(|l| l.to_string()).collect(), ..Default::default() };
        Unbound::start_opts(&opts)
    }

    /// [`Unbound::start`] with `opts` (see the module docs): behind PROXY v2, with a query log,
    /// with more access-control lines. The readiness probe sends a header when needed (naming
    /// its own 127.0.0.1 socket: its queries are in the query log as 127.0.0.1's).
    pub fn start_opts(opts: &UnboundOptions) -> Unbound {
        let probe = ReadyProbe { name: "www.example.test.", proxy_v2: opts.proxy_protocol };
        let (addr, proc, dir) = start_dns_server("unbound", probe, |dir, port| command(dir, port, opts));
        let log_path = opts.query_log.then(|| dir.path().join(LOG_FILE));
        Unbound { addr, proc, log_path, dir }
    }

    /// Starts Unbound on 127.0.0.1:`port` (one try; e.g. to bring a backend back where
    /// dotgate expects it) and waits until it answers.
    pub fn start_on(port: u16) -> Result<Unbound, String> {
        let opts = UnboundOptions::default();
        let (addr, proc, dir) =
            start_dns_server_on("unbound", "www.example.test.", port, |dir, port| command(dir, port, &opts))?;
        Ok(Unbound { addr, proc, log_path: None, dir })
    }

    /// The query log so far (Unbound writes each line at once). Panics unless started with
    /// [`UnboundOptions::query_log`].
    pub fn log(&self) -> String {
        let path = self.log_path.as_ref().expect("Unbound was started without query_log");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The query and reply lines of the log so far, parsed (other lines are left out).
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.log().lines().filter_map(parse_log_line).collect()
    }

    /// The entries of client `ip` so far.
    pub fn log_entries_of(&self, ip: IpAddr) -> Vec<LogEntry> {
        self.log_entries().into_iter().filter(|e| e.client == ip).collect()
    }

    /// Polls the log every 10 ms until an entry satisfies `pred`; that entry, or `None` after
    /// `timeout`. (Unbound logs the reply line after sending the answer: a test that has its
    /// answer may have to wait a moment for the line.)
    pub fn wait_for_entry(&self, timeout: Duration, pred: impl Fn(&LogEntry) -> bool) -> Option<LogEntry> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.log_entries().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs Unbound (a backend dying without warning) and reaps it.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The temp dir holding `unbound.conf`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Parses `[TIME] unbound[PID:TID] info: CLIENT NAME TYPE CLASS [RCODE SECONDS CACHED SIZE]`.
pub fn parse_log_line(line: &str) -> Option<LogEntry> {
    let (_, rest) = line.split_once("] info: ")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let client: IpAddr = f.first()?.parse().ok()?;
    let rcode = match f.len() {
        4 => None,
        8 => Some(f[4].to_string()),
        _ => return None,
    };
    Some(LogEntry { client, name: f[1].to_string(), qtype: f[2].to_string(), rcode, line: line.to_string() })
}
