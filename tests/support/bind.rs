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

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{start_dns_server, TestProcess};

pub const WWW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

pub struct Bind {
    pub addr: SocketAddr,
    proc: TestProcess,
    dir: tempfile::TempDir,
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let d = dir.display();
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
    tcp-clients 1000;
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
        let (addr, proc, dir) = start_dns_server("named", "www.example.test.", |dir, port| {
            let conf = write_config(dir, port);
            let mut cmd = Command::new("named");
            cmd.arg("-g").arg("-c").arg(conf);
            cmd
        });
        Bind { addr, proc, dir }
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
