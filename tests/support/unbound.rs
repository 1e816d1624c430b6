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

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{start_dns_server, start_dns_server_on, TestProcess};

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
    // Dropped after `proc` (fields drop in order): the process dies first.
    dir: tempfile::TempDir,
}

/// The text of TXT record `i` of `big.example.test.` (`b`) or
/// `huge.example.test.` (`h`): a 3-digit index then filler, TXT_LEN bytes.
pub fn txt_text(kind: char, i: usize) -> String {
    format!("{i:03}{}", kind.to_string().repeat(TXT_LEN - 3))
}

fn write_config(dir: &Path, port: u16, extra: &[&str]) -> std::path::PathBuf {
    let mut c = String::new();
    let d = dir.display();
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
    logfile: ""
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
    for line in extra {
        writeln!(c, "    {line}").unwrap();
    }
    c.push_str("remote-control:\n    control-enable: no\n");
    let path = dir.join("unbound.conf");
    std::fs::write(&path, c).expect("write unbound.conf");
    path
}

/// Unbound in the foreground with the config written for `port` in `dir`, `extra` lines added.
fn command(dir: &Path, port: u16, extra: &[&str]) -> Command {
    let conf = write_config(dir, port, extra);
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
        let (addr, proc, dir) = start_dns_server("unbound", "www.example.test.", |dir, port| command(dir, port, extra));
        Unbound { addr, proc, dir }
    }

    /// Starts Unbound on 127.0.0.1:`port` (one try; e.g. to bring a backend back where
    /// dotgate expects it) and waits until it answers.
    pub fn start_on(port: u16) -> Result<Unbound, String> {
        let (addr, proc, dir) =
            start_dns_server_on("unbound", "www.example.test.", port, |dir, port| command(dir, port, &[]))?;
        Ok(Unbound { addr, proc, dir })
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
