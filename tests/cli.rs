//! The command-line contract: scripts and operators depend on it. A bad flag, address, config
//! or key is one clear line on stderr and exit status 2; `--check-config` validates and exits.

use std::path::Path;
use std::process::{Command, Output};

fn dotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dotgate")).args(args).output().expect("run dotgate")
}

fn assert_config_error(args: &[&str], needle: &str) {
    let out = dotgate(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: want one line, got {stderr:?}");
    assert!(stderr.contains(needle), "{args:?}: {stderr:?} lacks {needle:?}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn unknown_flag_is_one_line_and_exit_2() {
    assert_config_error(&["--backend", "127.0.0.1:53", "--frobnicate"], "--frobnicate");
}

#[test]
fn bad_addresses_are_one_line_and_exit_2() {
    assert_config_error(&["--backend", "not an address"], "not an address");
    assert_config_error(&["--backend", "127.0.0.1:53", "--listen", "127.0.0.1:99999"], "127.0.0.1:99999");
    assert_config_error(&["--backend", "0.0.0.0:53"], "backend");
}

#[test]
fn missing_backend_is_one_line_and_exit_2() {
    assert_config_error(&["--listen", "127.0.0.1:0"], "backend");
}

#[test]
fn bad_numbers_are_one_line_and_exit_2() {
    assert_config_error(&["--backend", "127.0.0.1:53", "--workers", "0"], "workers");
    assert_config_error(&["--backend", "127.0.0.1:53", "--idle-timeout", "-3"], "idle-timeout");
    assert_config_error(&["--backend", "127.0.0.1:53", "--max-in-flight", "0"], "max-in-flight");
    assert_config_error(&["--backend", "127.0.0.1:53", "--coalesce-window", "0.5"], "coalesce-window");
    assert_config_error(&["--backend", "127.0.0.1:53", "--tcp-memory-entries", "1000001"], "tcp-memory-entries");
    assert_config_error(&["--backend", "127.0.0.1:53", "--tcp-memory-entries", "-1"], "tcp-memory-entries");
    assert_config_error(&["--backend", "127.0.0.1:53", "--tcp-memory-ttl", "0"], "tcp-memory-ttl");
    assert_config_error(&["--backend", "127.0.0.1:53", "--tcp-memory-ttl", "86400.5"], "tcp-memory-ttl");
    assert_config_error(&["--backend", "127.0.0.1:53", "--tcp-memory-ttl", "soon"], "tcp-memory-ttl");
}

#[test]
fn bad_tcp_memory_settings_in_the_config_file_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("tcp-memory-entries = 2000000", "tcp-memory-entries"),
        ("tcp-memory-entries = -5", "tcp-memory-entries"),
        ("tcp-memory-ttl = -1", "tcp-memory-ttl"),
        ("tcp-memory-ttl = 90000", "tcp-memory-ttl"),
        ("tcp-memory-ttl = \"60s\"", "tcp-memory-ttl"),
    ] {
        let file = write(dir.path(), "dotgate.toml", &format!("backend = [\"127.0.0.1:53\"]\n{text}\n"));
        assert_config_error(&["--config", &file, "--check-config"], needle);
    }
    let good =
        write(dir.path(), "good.toml", "backend = [\"127.0.0.1:53\"]\ntcp-memory-entries = 0\ntcp-memory-ttl = 2.5\n");
    let out = dotgate(&["--config", &good, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_operator_controls_are_one_line_and_exit_2() {
    let b = "127.0.0.1:53";
    for (args, needle) in [
        (vec!["--backend", "127.0.0.1:53,proxy"], "proxy"),
        (vec!["--backend", "127.0.0.1:53,ecs=33:56"], "33:56"),
        (vec!["--backend", "127.0.0.1:53,ecs"], "ecs"),
        (vec!["--backend", b, "--allow", "10.0.0.0/33"], "10.0.0.0/33"),
        (vec!["--backend", b, "--deny", "2001:db8::/129"], "2001:db8::/129"),
        (vec!["--backend", b, "--deny", "example.com"], "example.com"),
        (vec!["--backend", b, "--client-prefix", "24"], "client-prefix"),
        (vec!["--backend", b, "--client-prefix", "24:129"], "client-prefix"),
        (vec!["--backend", b, "--max-qps-per-client", "0"], "max-qps-per-client"),
        (vec!["--backend", b, "--max-new-connections-per-client", "2000000"], "max-new-connections-per-client"),
    ] {
        let mut with_check = args.clone();
        with_check.push("--check-config");
        assert_config_error(&with_check, needle);
        assert_config_error(&args, needle);
    }
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("allow = [\"10.0.0.0/8\", \"300.1.2.3\"]", "300.1.2.3"),
        ("deny = \"10.0.0.0/8\"", "deny"),
        ("client-prefix = \"0:64\"", "client-prefix"),
        ("backend = [{ address = \"127.0.0.1:53\", ecs = \"24:999\" }]", "24:999"),
    ] {
        let text = if text.starts_with("backend") { text.to_owned() } else { format!("backend = [\"{b}\"]\n{text}") };
        let file = write(dir.path(), "dotgate.toml", &format!("{text}\n"));
        assert_config_error(&["--config", &file, "--check-config"], needle);
    }
    let good = write(
        dir.path(),
        "good.toml",
        "backend = [\"127.0.0.1:53,proxy-protocol\", { address = \"127.0.0.1:54\", ecs = \"24:56\" }]\n\
         allow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.1.0.0/16\"]\nmax-qps-per-client = 100\n\
         max-new-connections-per-client = 10\nclient-prefix = \"24:56\"\n",
    );
    let out = dotgate(&["--config", &good, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unreadable_or_garbage_key_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = write(dir.path(), "cert.pem", &pair.cert.pem());
    let missing = dir.path().join("missing.pem");
    assert_config_error(
        &["--backend", "127.0.0.1:53", "--cert", &cert, "--key", missing.to_str().unwrap()],
        "missing.pem",
    );
    let garbage = write(dir.path(), "garbage.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    assert_config_error(&["--backend", "127.0.0.1:53", "--cert", &cert, "--key", &garbage], "key");
    assert_config_error(&["--backend", "127.0.0.1:53", "--cert", &cert], "--key");
}

#[test]
fn unknown_config_key_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "dotgate.toml", "backend = [\"127.0.0.1:53\"]\nlisten_port = 853\n");
    assert_config_error(&["--config", &file], "listen_port");
    let broken = write(dir.path(), "broken.toml", "backend = [\"127.0.0.1:53\"\n");
    assert_config_error(&["--config", &broken], "broken.toml");
    assert_config_error(&["--config", "/nonexistent/dotgate.toml"], "/nonexistent/dotgate.toml");
}

#[test]
fn check_config_accepts_a_good_config_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = write(dir.path(), "cert.pem", &pair.cert.pem());
    let key = write(dir.path(), "key.pem", &pair.key_pair.serialize_pem());
    let file = write(
        dir.path(),
        "dotgate.toml",
        &format!(
            "listen = [\"127.0.0.1:8853\"]\nbackend = [\"127.0.0.1:53\", \"[::1]:53\"]\ncert = {cert:?}\nkey = {key:?}\n\
             workers = 2\nidle-timeout = 10\nhandshake-timeout = 5\nupstream-timeout = 1.5\ndrain-timeout = 10\n\
             max-in-flight = 100\nupstream-sockets = 4\ncoalesce-window = 0.0005\ntcp-memory-entries = 4096\n\
             tcp-memory-ttl = 60\nlog-queries = false\n"
        ),
    );
    let out = dotgate(&["--config", &file, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/dotgate.example.toml");
    if !Path::new(example).exists() {
        panic!("dotgate.example.toml is missing from the repository root");
    }
    let out = dotgate(&["--config", example, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn help_exits_0() {
    let out = dotgate(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in
        ["--listen", "--backend", "--cert", "--key", "--workers", "--idle-timeout", "--config", "--check-config"]
    {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    for tool in ["--ticket-keys", "\n  ticket-keys ", "\n  pin "] {
        assert!(help.contains(tool), "help lacks {tool:?}: {help}");
    }
}

#[test]
fn an_address_this_host_cannot_listen_on_is_one_line_and_exit_2() {
    // 192.0.2.1 (TEST-NET-1) is on no interface here.
    assert_config_error(&["--backend", "127.0.0.1:53", "--listen", "192.0.2.1:8853"], "192.0.2.1:8853");
    // A port already taken by another program.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_config_error(&["--backend", "127.0.0.1:53", "--listen", &addr], &addr);
}

/// `dotgate ticket-keys new` written to `dir/name`.
fn new_ticket_keys(dir: &Path, name: &str) -> String {
    let out = dotgate(&["ticket-keys", "new"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    write(dir, name, &String::from_utf8(out.stdout).unwrap())
}

#[test]
fn generated_ticket_keys_are_accepted_by_flag_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = new_ticket_keys(dir.path(), "tickets.keys");
    let out = dotgate(&["--backend", "127.0.0.1:53", "--ticket-keys", &keys, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let file = write(dir.path(), "dotgate.toml", &format!("backend = [\"127.0.0.1:53\"]\nticket-keys = {keys:?}\n"));
    let out = dotgate(&["--config", &file, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // Rotating twice keeps all three keys, and the result is still a valid file.
    for _ in 0..2 {
        let out = dotgate(&["ticket-keys", "new", "--rotate", &keys]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        write(dir.path(), "tickets.keys", &String::from_utf8(out.stdout).unwrap());
    }
    let text = std::fs::read_to_string(&keys).unwrap();
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 3, "{text}");
    let out = dotgate(&["--backend", "127.0.0.1:53", "--ticket-keys", &keys, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_ticket_key_files_are_one_line_and_exit_2() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let b64 = |len: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; len]);
    let cases = [
        (write(dir.path(), "short.keys", &format!("{}\n", b64(48))), "48 bytes"),
        (write(dir.path(), "garbage.keys", "# a comment\nnot%base64\n"), "line 2 is not base64"),
        (write(dir.path(), "empty.keys", "# nothing but a comment\n\n"), "no keys"),
        (dir.path().join("missing.keys").to_str().unwrap().to_owned(), "missing.keys"),
    ];
    for (file, needle) in &cases {
        assert_config_error(&["--backend", "127.0.0.1:53", "--ticket-keys", file, "--check-config"], needle);
    }
    // Serving (not only --check-config) refuses it before listening.
    assert_config_error(
        &["--backend", "127.0.0.1:53", "--listen", "127.0.0.1:0", "--ticket-keys", &cases[0].0],
        "48 bytes",
    );
    // Rotating a bad file prints nothing on stdout: nothing to redirect over the good file.
    let out = dotgate(&["ticket-keys", "new", "--rotate", &cases[1].0]);
    assert!(out.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert_config_error(&["ticket-keys", "new", "--rotate", &cases[1].0], "line 2 is not base64");
}

#[test]
fn pin_of_a_bad_certificate_file_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "not.pem", "hello\n");
    assert_config_error(&["pin", "--cert", &not_pem], "not.pem");
    let not_a_cert = write(dir.path(), "bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert_config_error(&["pin", "--cert", &not_a_cert], "bad.pem");
    assert_config_error(&["pin", "--cert", "/nonexistent/cert.pem"], "/nonexistent/cert.pem");
    assert_config_error(&["pin"], "--cert");
    assert_config_error(&["pin", "--cert", &not_pem, "--backend", "127.0.0.1:53"], "--backend");
}

#[test]
fn tools_and_serving_flags_do_not_mix() {
    assert_config_error(&["--backend", "127.0.0.1:53", "ticket-keys", "new"], "ticket-keys");
    assert_config_error(&["ticket-keys"], "ticket-keys");
}

#[test]
fn admin_address_is_checked() {
    assert_config_error(&["--backend", "127.0.0.1:53", "--admin", "localhost"], "admin");
    // Never on the DoT port, whichever way the addresses are spelled.
    for (listen, admin) in
        [("127.0.0.1:8853", "127.0.0.1:8853"), ("0.0.0.0:8853", "127.0.0.1:8853"), ("[::]:8853", "127.0.0.1:8853")]
    {
        assert_config_error(&["--backend", "127.0.0.1:53", "--listen", listen, "--admin", admin], "DoT port");
    }
    // An admin address already taken is a settings problem too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    assert_config_error(&["--backend", "127.0.0.1:53", "--listen", "127.0.0.1:0", "--admin", &taken], &taken);
}

#[test]
fn dnsenc_keygen_writes_a_private_key_that_check_config_accepts_only_while_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dotgate(&["dnsenc", "keygen", "--scheme", "x25519", "--out", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\nNSK ") && stdout.contains("\nTYPE65301 \\# "), "{stdout}");
    let key = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let key = key.to_str().unwrap();
    let args =
        ["--backend", "127.0.0.1:53", "--dnsenc-listen", "127.0.0.1:5353", "--dnsenc-key", key, "--check-config"];
    let ok = dotgate(&args);
    assert_eq!(ok.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&ok.stderr));
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_config_error(&args, key);
    assert_config_error(&["dnsenc", "keygen", "--scheme", "rsa1024", "--out", "."], "rsa1024");
}

#[test]
fn dnsenc_query_and_load_refuse_bad_input_with_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let keygen = dotgate(&["dnsenc", "keygen", "--scheme", "x25519", "--out", keys.to_str().unwrap()]);
    let nsk = write(dir.path(), "nsk.txt", &String::from_utf8_lossy(&keygen.stdout));
    let not_nsk = write(dir.path(), "not-nsk.txt", "; nothing here\nserver: yes\n");
    let unknown_scheme = write(dir.path(), "unknown-scheme.txt", "NSK 7 10 . 99 \"AAAA\" aes-256\n");
    let no_answer_scheme = write(dir.path(), "no-answer-scheme.txt", &{
        let text = String::from_utf8_lossy(&keygen.stdout).into_owned();
        let line = text.lines().find(|l| l.starts_with("NSK ")).unwrap().to_owned();
        line.replace(" aes-256 chacha20-poly1305", " 32772")
    });
    let query: &[&str] = &["dnsenc", "query", "@127.0.0.1:9", "www.example.test"];
    assert_config_error(&["dnsenc", "query", "127.0.0.1", "www.example.test", "--nsk", &nsk], "@ADDR");
    assert_config_error(&["dnsenc", "query", "@dns.example", "www.example.test", "--nsk", &nsk], "dns.example");
    assert_config_error(&[query, &["BOGUS", "--nsk", &nsk]].concat(), "BOGUS");
    assert_config_error(&[query, &["--nsk", &nsk, "--timeout", "0"]].concat(), "timeout");
    assert_config_error(&[query, &["--nsk", &nsk, "--dnsenc-nsk-type", "41"]].concat(), "dnsenc-nsk-type");
    assert_config_error(&[query, &["--nsk", &not_nsk]].concat(), "no NSK record");
    assert_config_error(&[query, &["--nsk", "/nonexistent/nsk.txt"]].concat(), "/nonexistent/nsk.txt");
    assert_config_error(&[query, &["--nsk", &unknown_scheme]].concat(), "not a query scheme");
    assert_config_error(&[query, &["--nsk", &no_answer_scheme]].concat(), "no answer scheme");
    assert_config_error(&["dnsenc", "query", "@127.0.0.1:9", "a..test", "--nsk", &nsk], "a..test");
    assert_config_error(query, "give --trust-anchor FILE");
    let anchor = write(dir.path(), "anchor.key", "example. IN DS 1 13 2 00ff\n");
    let not_anchor = write(dir.path(), "not-anchor.key", "example. IN A 192.0.2.1\n");
    assert_config_error(&[query, &["--nsk", &nsk, "--trust-anchor", &anchor]].concat(), "give one");
    assert_config_error(&[query, &["--trust-anchor", &not_anchor]].concat(), "a trust anchor is a DS or DNSKEY");
    assert_config_error(&[query, &["--trust-anchor", "/nonexistent/a.key"]].concat(), "/nonexistent/a.key");
    assert_config_error(&[query, &["--trust-anchor", &anchor, "--scheme", "aes-256"]].concat(), "scheme");
    assert_config_error(&[query, &["--nsk", &nsk, "--scheme", "rsa2048"]].concat(), "holds a x25519 key, not rsa2048");

    let queries = write(dir.path(), "queries.txt", "www.example.test A\nwww.example.test BOGUS\n");
    let good_queries = write(dir.path(), "good-queries.txt", "www.example.test\n");
    let load: &[&str] = &["dnsenc", "load", "-s", "127.0.0.1:9", "--nsk", &nsk];
    assert_config_error(&[load, &["-f", &queries]].concat(), "line 2");
    assert_config_error(&[load, &["-f", &good_queries, "-c", "0"]].concat(), "clients");
    assert_config_error(&[load, &["-f", &good_queries, "-Q", "0"]].concat(), "qps");
    assert_config_error(&[load, &["-f", &good_queries, "-l", "0"]].concat(), "seconds");
    assert_config_error(&[load, &["-f", &good_queries, "--prepared", "10"]].concat(), "prepared");
    assert_config_error(&["dnsenc", "load", "-s", "127.0.0.1:9", "--nsk", &not_nsk, "-f", &good_queries], "no NSK");
}

#[test]
fn dnsenc_publish_refuses_bad_input_with_one_line_and_exit_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let keygen = dotgate(&["dnsenc", "keygen", "--scheme", "x25519", "--out", keys.to_str().unwrap()]);
    assert!(keygen.status.success());
    let key = std::fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let key = key.to_str().unwrap();
    let tsig = write(dir.path(), "tsig.key", "key \"k\" { algorithm hmac-sha256; secret \"AAAA\"; };\n");
    let md5 = write(dir.path(), "md5.key", "key \"k\" { algorithm hmac-md5; secret \"AAAA\"; };\n");
    // Port 9 (discard): nothing answers, so a test that got as far as sending would time out
    // with exit 1, not 2.
    let base: &[&str] = &["dnsenc", "publish", "--server", "127.0.0.1:9", "--tsig-key", &tsig];
    let zone: &[&str] = &["--zone", "0.0.127.in-addr.arpa"];
    assert_config_error(&[base, zone, &["--dnsenc-key", key]].concat(), "no address to publish at");
    assert_config_error(&[base, zone, &["--dnsenc-listen", "0.0.0.0:53", "--dnsenc-key", key]].concat(), "--address");
    assert_config_error(&[base, zone, &["--address", "127.0.0.53"]].concat(), "no key to publish");
    assert_config_error(&[base, zone, &["--address", "localhost", "--dnsenc-key", key]].concat(), "address");
    assert_config_error(
        &[base, &["--zone", "53.0.0.127.in-addr.arpa", "--address", "127.0.0.53", "--dnsenc-key", key]].concat(),
        "apex",
    );
    assert_config_error(
        &[base, &["--zone", "a..b", "--address", "127.0.0.53", "--dnsenc-key", key]].concat(),
        "--zone",
    );
    assert_config_error(
        &[base, zone, &["--address", "127.0.0.53", "--dnsenc-key", "/nonexistent/k.key"]].concat(),
        "/nonexistent/k.key",
    );
    let md5_args = ["dnsenc", "publish", "--server", "127.0.0.1:9", "--tsig-key", &md5];
    assert_config_error(&[&md5_args[..], zone, &["--address", "127.0.0.53", "--dnsenc-key", key]].concat(), "hmac-md5");
}
