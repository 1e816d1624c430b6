//! `openssl s_client`, the reference TLS client for session resumption tests.
//!
//! Owns [`s_client_session`]: one handshake to a server with a chosen TLS version, optionally
//! resuming a session saved by an earlier call and saving the session it ends with; it reports
//! whether the handshake was new or resumed. The server must close the connection by itself
//! soon (start dotgate with a short `--idle-timeout`): s_client reads until then
//! (`-ign_eof`), which is what makes it wait for a TLS 1.3 ticket sent after the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// How a handshake went, as s_client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    New,
    Reused,
}

/// TLS versions s_client can be held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

impl Version {
    fn flag(self) -> &'static str {
        match self {
            Version::Tls12 => "-tls1_2",
            Version::Tls13 => "-tls1_3",
        }
    }
}

/// One s_client handshake with `addr` at `version`: resumes from `sess_in` if given, saves
/// the final session to `sess_out` if given. Panics with s_client's output if it fails or
/// prints no `New,`/`Reused,` line (bounded by `timeout 15`).
pub fn s_client_session(
    addr: SocketAddr,
    version: Version,
    sess_in: Option<&Path>,
    sess_out: Option<&Path>,
) -> Handshake {
    let mut cmd = Command::new("timeout");
    cmd.args(["15", "openssl", "s_client", "-connect", &addr.to_string(), version.flag(), "-ign_eof"]);
    if let Some(path) = sess_in {
        cmd.arg("-sess_in").arg(path);
    }
    if let Some(path) = sess_out {
        cmd.arg("-sess_out").arg(path);
    }
    cmd.stdin(std::process::Stdio::null());
    let out = cmd.output().expect("run openssl s_client (install it with scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let described = || format!("s_client {addr} {version:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("New,") || l.starts_with("Reused,"))
        .unwrap_or_else(|| panic!("no New/Reused line from {}", described()));
    let expected = match version {
        Version::Tls12 => "TLSv1.2",
        Version::Tls13 => "TLSv1.3",
    };
    assert!(line.contains(expected), "not {expected}: {}", described());
    if let Some(path) = sess_out {
        assert!(path.exists(), "s_client saved no session: {}", described());
    }
    if line.starts_with("Reused,") {
        Handshake::Reused
    } else {
        Handshake::New
    }
}
