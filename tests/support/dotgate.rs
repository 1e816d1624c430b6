//! Running the real `dotgate` binary, and test certificates for it.
//!
//! Owns [`Dotgate`] (a dotgate listening on a free loopback port, SIGKILLed
//! on Drop), [`Dotgate::start_raw`] (the binary with arbitrary arguments and
//! no waiting, for CLI tests), and [`make_cert`] / [`gen_cert`] (an ECDSA
//! P-256 self-signed certificate with SAN `localhost`, `dot.example.test`
//! and IP 127.0.0.1, plus its SPKI pin).
//!
//! The binary is `env!("CARGO_BIN_EXE_dotgate")`, which cargo builds for
//! every integration test. Its CLI contract: `--listen ADDR:PORT --backend
//! ADDR:PORT [--backend ...] [--cert PEM --key PEM] [--workers N]
//! [--idle-timeout SECS] [--handshake-timeout SECS] [--upstream-timeout SECS]
//! [--max-in-flight N] [--config FILE.toml] [--check-config]`; without
//! `--cert/--key` it prints `pin-sha256="<base64>"` on stderr; SIGTERM drains
//! and exits 0.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::client::spki_pin_base64;
use super::ports::free_port;
use super::process::TestProcess;

/// Path of the dotgate binary under test.
pub const DOTGATE_BIN: &str = env!("CARGO_BIN_EXE_dotgate");
/// How long [`Dotgate::start`] waits for the listening port.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running dotgate. SIGKILLed (and reaped) on Drop if still running.
pub struct Dotgate {
    /// The (first) listening address.
    pub addr: SocketAddr,
    /// Every listening address (one per `--listen`; [`Dotgate::start_listening`] passes several).
    pub listen: Vec<SocketAddr>,
    proc: TestProcess,
}

/// The handle [`Dotgate::start_raw`] returns: the child with its collected
/// output (`stdout()`, `stderr()`, `wait_exit()`, `signal()`, `pid()`),
/// SIGKILLed on Drop.
pub type DotgateProcess = TestProcess;

impl Dotgate {
    /// Runs `dotgate --listen 127.0.0.1:PORT --backend B... EXTRA_ARGS...` on
    /// a free PORT and waits until a TCP connect to it succeeds and "dotgate started" is logged (10 s). Panics
    /// with dotgate's stderr if it exits first or never listens. If dotgate
    /// exits complaining that the address is in use, retries on a new port
    /// (3 tries). With no `backends`, no `--backend` is passed (e.g. when
    /// `--config` supplies them).
    ///
    /// The readiness probe is a bare TCP connect that is closed at once, so
    /// dotgate sees one extra connection (a failed handshake) per start.
    pub fn start(backends: &[SocketAddr], extra_args: &[&str]) -> Dotgate {
        let backends: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
        Dotgate::start_listening(&[Ipv4Addr::LOCALHOST.into()], &backends, extra_args)
    }

    /// [`Dotgate::start`] with each backend given as the text of its `--backend` argument,
    /// passed as it is: options included, e.g. `format!("{},proxy-protocol", unbound.addr)` or
    /// `format!("{},ecs=24:56", bind.addr)`.
    pub fn start_backends(backends: &[String], extra_args: &[&str]) -> Dotgate {
        Dotgate::start_listening(&[Ipv4Addr::LOCALHOST.into()], backends, extra_args)
    }

    /// [`Dotgate::start_backends`] listening on each of `ips` (`--listen IP:PORT` for each, one
    /// free PORT for all; e.g. `[127.0.0.1, ::1]`, or `[::]`). `addr` is the first of them.
    /// (Free ports are picked on 127.0.0.1: another address may still have it taken; dotgate
    /// then exits with "in use" and a new port is tried, 3 tries.)
    pub fn start_listening(ips: &[IpAddr], backends: &[String], extra_args: &[&str]) -> Dotgate {
        assert!(!ips.is_empty(), "start_listening: no address to listen on");
        for attempt in 1..=3 {
            let port = free_port();
            let listen: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
            match Dotgate::try_start_on_all(&listen, backends, extra_args) {
                Ok(dotgate) => return dotgate,
                Err(out) => {
                    let lower = out.to_lowercase();
                    if attempt < 3 && (lower.contains("in use") || lower.contains("addrinuse")) {
                        continue;
                    }
                    panic!("dotgate exited before listening on {listen:?}: {out}");
                }
            }
        }
        panic!("dotgate: address in use on 3 different ports");
    }

    /// Like [`Dotgate::start`], on exactly `addr` (another dotgate may listen there too:
    /// SO_REUSEPORT).
    pub fn start_on(addr: SocketAddr, backends: &[SocketAddr], extra_args: &[&str]) -> Dotgate {
        let backends: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
        Dotgate::try_start_on_all(&[addr], &backends, extra_args)
            .unwrap_or_else(|out| panic!("dotgate exited before listening on {addr}: {out}"))
    }

    /// Starts dotgate listening on every address of `listen`; `Err` with its output if it
    /// exits first. Ready when a TCP connect to the first address succeeds (to `[::]` means to
    /// `::1`, to `0.0.0.0` to 127.0.0.1, on Linux) and the start line is logged.
    fn try_start_on_all(listen: &[SocketAddr], backends: &[String], extra_args: &[&str]) -> Result<Dotgate, String> {
        let addr = listen[0];
        let mut args: Vec<String> = Vec::new();
        for l in listen {
            args.push("--listen".into());
            args.push(l.to_string());
        }
        for b in backends {
            args.push("--backend".into());
            args.push(b.clone());
        }
        args.extend(extra_args.iter().map(|s| s.to_string()));
        if !args.iter().any(|a| a == "--dnsenc-listen") {
            args.extend(dnsenc_alongside());
        }
        let mut cmd = Command::new(DOTGATE_BIN);
        cmd.args(&args);
        let mut proc = TestProcess::spawn("dotgate", cmd);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if proc.try_exit().is_some() {
                proc.wait_exit(Duration::from_secs(1)); // collect output
                return Err(format!("{args:?}: {}", proc.describe()));
            }
            // The kernel completes a TCP connect as soon as the socket listens, before the
            // workers run (TCP_DEFER_ACCEPT holds it there): ready means the start line too.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && proc.wait_for_stderr("dotgate started", deadline.saturating_duration_since(Instant::now()))
            {
                return Ok(Dotgate { addr, listen: listen.to_vec(), proc });
            }
            if Instant::now() >= deadline {
                proc.kill();
                panic!("dotgate {args:?} did not listen on {addr} within {START_TIMEOUT:?}: {}", proc.describe());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the binary with exactly `args`, without waiting for anything (never with DNSENC
    /// added, whatever `DOTGATE_TEST_WITH_DNSENC` says).
    pub fn start_raw(args: &[&str]) -> DotgateProcess {
        let mut cmd = Command::new(DOTGATE_BIN);
        cmd.args(args);
        TestProcess::spawn("dotgate", cmd)
    }

    /// Everything dotgate wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// Everything dotgate wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.proc.stdout()
    }

    /// Sends a signal, e.g. `libc::SIGTERM`.
    pub fn signal(&self, sig: i32) {
        self.proc.signal(sig)
    }

    /// Waits up to `timeout` for dotgate to exit; `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Polls stderr until it contains `needle`; false after `timeout`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        self.proc.wait_for_stderr(needle, timeout)
    }

    /// The `pin-sha256="..."` value dotgate printed on stderr (waits up to
    /// 5 s for it; panics with stderr if it never appears).
    pub fn pin(&self) -> String {
        if !self.wait_for_stderr("pin-sha256=\"", Duration::from_secs(5)) {
            panic!("dotgate printed no pin-sha256=\"...\" line: {}", self.proc.describe());
        }
        parse_pin(&self.stderr()).expect("unterminated pin-sha256 line")
    }

    /// The underlying process handle.
    pub fn process(&mut self) -> &mut TestProcess {
        &mut self.proc
    }
}

/// The value of the first `pin-sha256="VALUE"` in `text`.
pub fn parse_pin(text: &str) -> Option<String> {
    let start = text.find("pin-sha256=\"")? + "pin-sha256=\"".len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_string())
}

/// A generated test certificate and its key.
pub struct TestCert {
    pub cert_pem: String,
    /// PKCS#8 PEM ("PRIVATE KEY").
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// base64(SHA-256(SubjectPublicKeyInfo)).
    pub pin: String,
}

/// A fresh ECDSA P-256 self-signed certificate, SAN `localhost`,
/// `dot.example.test`, IP 127.0.0.1.
pub fn gen_cert() -> TestCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "dot.example.test".into()]).expect("cert params");
    params.subject_alt_names.push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    params.distinguished_name.push(rcgen::DnType::CommonName, "dot.example.test");
    let cert = params.self_signed(&key).expect("self-sign");
    let cert_der = cert.der().to_vec();
    TestCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        pin: spki_pin_base64(&cert_der),
        cert_der,
        key_der: key.serialize_der(),
    }
}

/// Writes a [`gen_cert`] certificate to `dir/cert.pem` and `dir/key.pem`;
/// returns (cert path, key path, SPKI pin base64).
pub fn make_cert(dir: &Path) -> (PathBuf, PathBuf, String) {
    let c = gen_cert();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &c.cert_pem).expect("write cert.pem");
    std::fs::write(&key, &c.key_pem).expect("write key.pem");
    (cert, key, c.pin)
}

/// dotgate in front of `backends` with a DoH listener on a free loopback port, serving a
/// [`make_cert`] certificate written to `dir` (name localhost), and `extra` arguments: the
/// process, the DoH address and the certificate's path (for curl's `--cacert`).
pub fn start_doh(backends: &[SocketAddr], dir: &Path, extra: &[&str]) -> (Dotgate, SocketAddr, PathBuf) {
    let (cert, key, _) = make_cert(dir);
    let doh = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let doh_arg = doh.to_string();
    let mut args = vec!["--doh-listen", &doh_arg, "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Dotgate::start(backends, &args), doh, cert)
}

/// With `DOTGATE_TEST_WITH_DNSENC=1` in the environment, the arguments that turn a DNSENC
/// listener on beside DoT (a free loopback port, one X25519 key made once per test process), so
/// that the DoT tests show DNSENC changes nothing for them (scripts/test.sh runs them so).
/// Empty otherwise.
fn dnsenc_alongside() -> Vec<String> {
    static KEY: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    if std::env::var("DOTGATE_TEST_WITH_DNSENC").map_or(true, |v| v != "1") {
        return Vec::new();
    }
    let (_, key) = KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir for the DNSENC key");
        let out = Command::new(DOTGATE_BIN)
            .args(["dnsenc", "keygen", "--scheme", "x25519", "--out"])
            .arg(dir.path())
            .output()
            .expect("run dotgate dnsenc keygen");
        assert!(out.status.success(), "dnsenc keygen: {}", String::from_utf8_lossy(&out.stderr));
        let key = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let key = key.to_str().unwrap().to_owned();
        (dir, key)
    });
    let port = super::ports::free_port();
    vec!["--dnsenc-listen".into(), format!("127.0.0.1:{port}"), "--dnsenc-key".into(), key.clone()]
}
