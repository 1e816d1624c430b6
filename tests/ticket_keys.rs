//! Shared session tickets (`--ticket-keys`): a session made with one dotgate resumes on another
//! that has the same key file, with TLS 1.3 and TLS 1.2, as `openssl s_client` sees it; other
//! keys (or none) do not resume it; a rotated file still resumes sessions from its older keys
//! and seals new ones with the new key. The key files are made by `dotgate ticket-keys new`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::dotgate::DOTGATE_BIN;
use support::openssl::{s_client_session, Handshake, Version};
use support::{make_cert, Dotgate};

/// Nothing here sends a query; the backend only has to be a valid address.
fn no_backend() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// `dotgate ticket-keys new [--rotate FROM]` written to `dir/name`.
fn new_key_file(dir: &Path, name: &str, rotate: Option<&Path>) -> PathBuf {
    let mut cmd = Command::new(DOTGATE_BIN);
    cmd.args(["ticket-keys", "new"]);
    if let Some(from) = rotate {
        cmd.arg("--rotate").arg(from);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "ticket-keys new: {}", String::from_utf8_lossy(&out.stderr));
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// A dotgate serving `cert`/`key`, closing idle connections fast (s_client waits for the close),
/// with `--ticket-keys keys` when given.
fn dotgate(cert_and_key: &(PathBuf, PathBuf), keys: Option<&Path>) -> Dotgate {
    let (cert, key) = cert_and_key;
    let mut args = vec!["--workers", "1", "--idle-timeout", "0.3"];
    args.extend(["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    if let Some(keys) = keys {
        args.extend(["--ticket-keys", keys.to_str().unwrap()]);
    }
    Dotgate::start(&[no_backend()], &args)
}

/// Asserts how a handshake with `server` that offers `session` goes, `why` being the reason.
fn expect(server: &Dotgate, version: Version, session: &Path, want: Handshake, why: &str) {
    assert_eq!(s_client_session(server.addr, version, Some(session), None), want, "{version:?}: {why}");
}

fn cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, _) = make_cert(dir);
    (cert, key)
}

#[test]
fn a_session_resumes_on_another_dotgate_with_the_same_key_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let cert = cert(dir.path());
    let shared = new_key_file(dir.path(), "shared.keys", None);
    let other = new_key_file(dir.path(), "other.keys", None);
    let first = dotgate(&cert, Some(&shared));
    let second = dotgate(&cert, Some(&shared));
    let other_keys = dotgate(&cert, Some(&other));
    let own_random_keys = dotgate(&cert, None);

    for version in [Version::Tls13, Version::Tls12] {
        let session = dir.path().join(format!("{version:?}.session"));
        let made = s_client_session(first.addr, version, None, Some(&session));
        assert_eq!(made, Handshake::New, "{version:?}: the first handshake is a full one");
        expect(&second, version, &session, Handshake::Reused, "the same key file must resume the session");
        expect(&other_keys, version, &session, Handshake::New, "a dotgate with other keys must not resume it");
        expect(&own_random_keys, version, &session, Handshake::New, "without --ticket-keys, keys are per process");
    }
}

#[test]
fn a_rotated_key_file_resumes_old_sessions_and_seals_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let cert = cert(dir.path());
    let old = new_key_file(dir.path(), "old.keys", None);
    let rotated = new_key_file(dir.path(), "rotated.keys", Some(&old));
    let before = dotgate(&cert, Some(&old));
    let after = dotgate(&cert, Some(&rotated));

    for version in [Version::Tls13, Version::Tls12] {
        let old_session = dir.path().join(format!("{version:?}-old.session"));
        s_client_session(before.addr, version, None, Some(&old_session));
        expect(&after, version, &old_session, Handshake::Reused, "the rotated file still opens old tickets");
        // A ticket from the rotated dotgate is sealed with the new first key, which the
        // dotgate still on the old file does not have.
        let new_session = dir.path().join(format!("{version:?}-new.session"));
        s_client_session(after.addr, version, None, Some(&new_session));
        expect(&after, version, &new_session, Handshake::Reused, "the rotated dotgate resumes its own sessions");
        expect(&before, version, &new_session, Handshake::New, "new tickets must be sealed with the new (first) key");
    }
}
