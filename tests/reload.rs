//! Hot reload of the TLS material while serving: a replaced certificate and key (rewritten, or
//! swapped in through a Kubernetes-style `..data` symlink) reach new connections within the
//! poll interval while open connections keep working; a broken replacement is refused and the
//! old certificate stays; SIGHUP reloads at once; replaced ticket keys seal and open tickets.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dotgate::tls::ticket_keys;
use hickory_proto::rr::RecordType;
use support::{gen_cert, query, ClientOptions, DotClient, Dotgate, FakeBackend, TestCert};

/// Two poll intervals and some slack.
const RELOAD_WAIT: Duration = Duration::from_secs(6);

/// Writes `text` to `path` the way deploy tools do: a file beside it, renamed over it.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// `cert.pem` and `key.pem` in `dir` holding `cert`.
fn install(dir: &Path, cert: &TestCert) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    replace(&key_path, &cert.key_pem);
    replace(&cert_path, &cert.cert_pem);
    (cert_path, key_path)
}

fn start(backend: &FakeBackend, cert: &Path, key: &Path, extra: &[&str]) -> Dotgate {
    let mut args = vec!["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap(), "--idle-timeout", "30"];
    args.extend_from_slice(extra);
    Dotgate::start(&[backend.addr], &args)
}

/// Waits until dotgate's stderr holds `needle` at least `count` times.
async fn logged(dotgate: &Dotgate, needle: &str, count: usize) -> bool {
    let deadline = Instant::now() + RELOAD_WAIT;
    while dotgate.stderr().matches(needle).count() < count {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The pin of the certificate a new connection gets, after a query on it has been answered.
async fn served_pin(dotgate: &Dotgate) -> String {
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("pin.example.", RecordType::A, 7)).await;
    client.peer_spki_sha256_base64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_reaches_new_connections_and_open_ones_keep_working() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (gen_cert(), gen_cert());
    let (cert, key) = install(dir.path(), &old);
    let dotgate = start(&backend, &cert, &key, &["--workers", "2"]);
    let mut open = DotClient::connect(dotgate.addr).await.unwrap();
    open.exchange(&query("before.example.", RecordType::A, 1)).await;
    assert_eq!(open.peer_spki_sha256_base64(), old.pin);

    install(dir.path(), &new);
    assert!(logged(&dotgate, "reloaded certificate", 1).await, "no reload logged: {}", dotgate.stderr());
    assert!(dotgate.stderr().contains(&format!("pin-sha256=\"{}\" (reload 1)", new.pin)), "{}", dotgate.stderr());
    // Several connections: SO_REUSEPORT spreads them over both workers, and all see the new one.
    for _ in 0..4 {
        assert_eq!(served_pin(&dotgate).await, new.pin, "a new connection must get the new certificate");
    }
    let answer = open.exchange(&query("after.example.", RecordType::A, 2)).await;
    assert_eq!(support::parse(&answer).id(), 2, "the connection opened before the reload still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swap_of_the_data_directory_is_seen() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (old, new) = (gen_cert(), gen_cert());
    // What Kubernetes mounts for a secret: files behind ..data, a link to a timestamped dir.
    for (version, cert) in [("..v1", &old), ("..v2", &new)] {
        std::fs::create_dir(root.join(version)).unwrap();
        install(&root.join(version), cert);
    }
    std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
    for name in ["cert.pem", "key.pem"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
    }
    let dotgate = start(&backend, &root.join("cert.pem"), &root.join("key.pem"), &[]);
    assert_eq!(served_pin(&dotgate).await, old.pin);

    std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    assert!(logged(&dotgate, "reloaded certificate", 1).await, "symlink swap not seen: {}", dotgate.stderr());
    assert_eq!(served_pin(&dotgate).await, new.pin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_replacement_is_refused_and_the_old_certificate_stays() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let old = gen_cert();
    let (cert, key) = install(dir.path(), &old);
    let dotgate = start(&backend, &cert, &key, &[]);

    replace(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(logged(&dotgate, "refusing the new certificate", 1).await, "{}", dotgate.stderr());
    assert_eq!(served_pin(&dotgate).await, old.pin, "a garbage certificate must not replace the old one");

    // A valid certificate whose key is not the one in key.pem.
    replace(&cert, &gen_cert().cert_pem);
    assert!(logged(&dotgate, "refusing the new certificate", 2).await, "{}", dotgate.stderr());
    assert!(dotgate.stderr().contains("do not match"), "{}", dotgate.stderr());
    assert_eq!(served_pin(&dotgate).await, old.pin, "a mismatched pair must not replace the old one");
    assert!(!dotgate.stderr().contains("reloaded certificate"), "{}", dotgate.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let old = gen_cert();
    let (cert, key) = install(dir.path(), &old);
    let dotgate = start(&backend, &cert, &key, &[]);
    // Unchanged files: polling never reloads them, only SIGHUP does.
    dotgate.signal(libc::SIGHUP);
    let started = Instant::now();
    assert!(logged(&dotgate, "reloaded certificate", 1).await, "SIGHUP reloaded nothing: {}", dotgate.stderr());
    assert!(started.elapsed() < Duration::from_secs(1), "SIGHUP took {:?}", started.elapsed());
    assert_eq!(served_pin(&dotgate).await, old.pin, "dotgate survives SIGHUP and serves on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_ticket_keys_seal_and_open_the_tickets() {
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(dir.path(), &gen_cert());
    let keys = dir.path().join("tickets.keys");
    replace(&keys, &ticket_keys::new_file(None).unwrap());
    let dotgate = start(&backend, &cert, &key, &["--workers", "1", "--ticket-keys", keys.to_str().unwrap()]);
    let opts = ClientOptions { versions: vec![&rustls::version::TLS13], ..ClientOptions::with_resumption() };
    // Connects, reads an answer (so the ticket for the next connect has arrived), closes.
    let connect = || {
        let (addr, opts) = (dotgate.addr, opts.clone());
        async move {
            let mut client = DotClient::connect_with(addr, &opts).await.unwrap();
            client.exchange(&query("t.example.", RecordType::A, 3)).await;
            client.shutdown().await.ok();
            client.was_resumed()
        }
    };
    assert!(!connect().await);
    assert!(connect().await, "resumes with the keys loaded at start");

    replace(&keys, &ticket_keys::new_file(None).unwrap());
    assert!(logged(&dotgate, "reloaded ticket keys", 1).await, "{}", dotgate.stderr());
    assert!(!connect().await, "a ticket sealed with keys no longer in the file must not open");
    assert!(connect().await, "tickets sealed with the new keys open");

    replace(&keys, "not a key\n");
    assert!(logged(&dotgate, "refusing the new ticket keys", 1).await, "{}", dotgate.stderr());
    assert!(connect().await, "a broken key file leaves the keys in service");
}
