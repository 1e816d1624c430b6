//! Child processes for tests (shared by `unbound.rs`, `bind.rs`, `dotgate.rs`).
//!
//! Owns [`TestProcess`]: a spawned child whose stdout and stderr are collected
//! by background threads into strings (readable at any time), which can be
//! signalled and waited on with a timeout, and which is SIGKILLed and reaped on
//! Drop. Set `HARNESS_ECHO=1` to also copy every output line to the test's
//! stderr as it arrives (shown by `cargo test -- --nocapture`).
//!
//! Also the start-up of DNS servers ([`start_dns_server`]): wait until a
//! [`ReadyProbe`] gets answers over UDP and TCP (plain, or behind PROXY v2
//! headers for a server that requires them).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct TestProcess {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn collect<R: Read + Send + 'static>(name: String, stream: R, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    let echo = std::env::var_os("HARNESS_ECHO").is_some_and(|v| v != "0");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    if echo {
                        eprint!("[{name}] {text}");
                    }
                    into.lock().unwrap().push_str(&text);
                }
            }
        }
    })
}

impl TestProcess {
    /// Spawns `cmd` with stdin null and stdout/stderr collected. Panics (with
    /// the program name) if it cannot be spawned at all.
    pub fn spawn(name: &str, mut cmd: Command) -> TestProcess {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: cannot spawn {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(format!("{name} out"), child.stdout.take().unwrap(), stdout.clone()),
            collect(format!("{name} err"), child.stderr.take().unwrap(), stderr.clone()),
        ];
        TestProcess { name: name.to_string(), child, stdout, stderr, readers, status: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends signal `sig` (e.g. `libc::SIGTERM`) unless the child was reaped.
    pub fn signal(&self, sig: i32) {
        if self.status.is_none() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, sig);
            }
        }
    }

    /// Non-blocking: the exit status if the child has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `timeout` for the child to exit. `None` if still running.
    /// Once it has exited, also waits (up to 2 s) for its output to be
    /// fully collected.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                self.join_readers(Duration::from_secs(2));
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls every 10 ms until stderr contains `needle`; false on timeout.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr.lock().unwrap().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A description for panic messages: name, pid, exit status, output.
    pub fn describe(&self) -> String {
        format!(
            "{} (pid {}, status {:?})\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.name,
            self.child.id(),
            self.status,
            self.stderr(),
            self.stdout()
        )
    }

    /// SIGKILL (if still running) and reap.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        self.join_readers(Duration::from_secs(2));
    }

    fn join_readers(&mut self, timeout: Duration) {
        // The reader threads end when the pipes close. A grandchild that kept
        // the pipe open could hold them forever, so never join unboundedly.
        let deadline = Instant::now() + timeout;
        while self.readers.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (done, pending): (Vec<_>, Vec<_>) = self.readers.drain(..).partition(|h| h.is_finished());
        for h in done {
            let _ = h.join();
        }
        self.readers = pending;
    }
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the readiness probe asks a starting DNS server, and how.
///
/// A `&str` converts into a plain probe, so the starters below take a name as before.
#[derive(Clone, Copy, Debug)]
pub struct ReadyProbe<'a> {
    /// Asked for type A; the answer must be NOERROR with at least one record.
    pub name: &'a str,
    /// Every probe datagram, and every probe TCP connection once at its start, carries a
    /// PROXY v2 header naming the probe's own socket as the client: a server listening with
    /// `proxy-protocol-port:` (Unbound) drops queries without one.
    pub proxy_v2: bool,
}

impl<'a> ReadyProbe<'a> {
    pub fn plain(name: &'a str) -> Self {
        ReadyProbe { name, proxy_v2: false }
    }

    pub fn proxy_v2(name: &'a str) -> Self {
        ReadyProbe { name, proxy_v2: true }
    }
}

impl<'a> From<&'a str> for ReadyProbe<'a> {
    fn from(name: &'a str) -> Self {
        ReadyProbe::plain(name)
    }
}

/// Waits until a DNS server at `addr` answers the probe (a query for its name, type
/// A) over UDP AND over TCP with NOERROR and at least one answer record (a
/// server may answer REFUSED/SERVFAIL before its zones are loaded), polling
/// every 50 ms. `Err` (with the reason) if
/// the process exits first or `timeout` passes.
pub fn wait_dns_ready<'a>(
    proc: &mut TestProcess,
    addr: std::net::SocketAddr,
    probe: impl Into<ReadyProbe<'a>>,
    timeout: Duration,
) -> Result<(), String> {
    use super::client::{query, tcp_exchange_blocking_proxied, udp_exchange_blocking_proxied, ProxyClaim};
    use hickory_proto::rr::RecordType;
    let probe = probe.into();
    let probe_name = probe.name;
    let claim = if probe.proxy_v2 { ProxyClaim::Myself } else { ProxyClaim::NoHeader };
    let deadline = Instant::now() + timeout;
    let mut id: u16 = 0x5000;
    loop {
        if let Some(st) = proc.try_exit() {
            return Err(format!("process exited early with {st}"));
        }
        id = id.wrapping_add(1);
        let q = query(probe_name, RecordType::A, id);
        let step = Duration::from_millis(300);
        let last_err = match udp_exchange_blocking_proxied(addr, claim, &q, step) {
            Ok(r) if answered(&r, id) => match tcp_exchange_blocking_proxied(addr, claim, &q, Duration::from_secs(2)) {
                Ok(r) if answered(&r, id) => return Ok(()),
                Ok(r) => format!("TCP answer not (yet) a NOERROR with answers: {}", brief(&r)),
                Err(e) => format!("TCP: {e}"),
            },
            Ok(r) => format!("UDP answer not (yet) a NOERROR with answers: {}", brief(&r)),
            Err(e) => format!("UDP: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("no answer to {probe_name} A from {addr} within {timeout:?} (last error: {last_err})"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `r` is a response to `id` with RCODE 0 and at least one answer record.
fn answered(r: &[u8], id: u16) -> bool {
    r.len() >= 12
        && u16::from_be_bytes([r[0], r[1]]) == id
        && r[2] & 0x80 != 0
        && r[3] & 0x0F == 0
        && u16::from_be_bytes([r[6], r[7]]) > 0
}

fn brief(r: &[u8]) -> String {
    if r.len() < 12 {
        return format!("{} bytes", r.len());
    }
    format!(
        "{} bytes, id {}, rcode {}, {} answers",
        r.len(),
        u16::from_be_bytes([r[0], r[1]]),
        r[3] & 0x0F,
        u16::from_be_bytes([r[6], r[7]])
    )
}

/// Starts a DNS server (Unbound, BIND) on a free loopback port in a fresh temp dir:
/// `command(dir, port)` writes its config and returns the command line. Waits (10 s max) until
/// it answers `probe` (a name, or a [`ReadyProbe`]) over UDP and TCP; retries with a new port
/// (3 tries) if the port was taken meanwhile. Panics with the server's output (and its `*.log`
/// files) if it never comes up.
pub fn start_dns_server<'a>(
    name: &str,
    probe: impl Into<ReadyProbe<'a>>,
    command: impl Fn(&std::path::Path, u16) -> Command,
) -> (std::net::SocketAddr, TestProcess, tempfile::TempDir) {
    let probe = probe.into();
    for attempt in 1..=3 {
        let port = super::ports::free_port();
        match start_dns_server_on(name, probe, port, &command) {
            Ok(started) => return started,
            Err(out) if attempt < 3 && out.contains("ddress already in use") => continue,
            Err(out) => panic!("{out}"),
        }
    }
    unreachable!()
}

/// [`start_dns_server`] on the given loopback `port`, once: `Err` with the reason and the
/// server's output if it does not come up (e.g. the port is taken).
pub fn start_dns_server_on<'a>(
    name: &str,
    probe: impl Into<ReadyProbe<'a>>,
    port: u16,
    command: impl Fn(&std::path::Path, u16) -> Command,
) -> Result<(std::net::SocketAddr, TestProcess, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path(), port);
    cmd.current_dir(dir.path());
    let mut proc = TestProcess::spawn(name, cmd);
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    match wait_dns_ready(&mut proc, addr, probe, Duration::from_secs(10)) {
        Ok(()) => Ok((addr, proc, dir)),
        Err(why) => {
            proc.kill();
            Err(format!("{name} did not start on {addr}: {why}\n{}{}", proc.describe(), log_files(dir.path())))
        }
    }
}

/// The `*.log` files in `dir` with their contents, for failure messages: a server that logs
/// to a file (Unbound with `logfile:`) says why it did not start there, not on stderr.
fn log_files(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push_str(&format!("\n--- {} ---\n{text}", path.display()));
        }
    }
    out
}
