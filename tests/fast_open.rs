//! TCP Fast Open on the DoT listener: with the kernel's server side enabled, a client holding a
//! TFO cookie sends its ClientHello in the SYN and the listener accepts it;
//! `--tcp-fast-open false` turns that off.
//!
//! The host's own `net.ipv4.tcp_fastopen` usually lacks the server bit and is not ours to
//! change, so each case runs in a network namespace of its own (`unshare --net`, root needed),
//! where the sysctl is set to 3 (client and server) and loopback brought up. The kernel's
//! TcpExt counters of that namespace tell whether connections were accepted with data in the
//! SYN (TCPFastOpenPassive).

use std::process::Command;

const DOTGATE_BIN: &str = env!("CARGO_BIN_EXE_dotgate");

/// A DoT client (Python's ssl, i.e. OpenSSL) that opens each connection with
/// TCP_FASTOPEN_CONNECT: with a cookie the ClientHello rides in the SYN, without one (the first
/// connection, or a server without TFO) the kernel falls back to an ordinary handshake. (kdig
/// +fastopen is no use here: its TLS never completes on a connection without a cookie, whatever
/// the server.) Prints "rcode N" per query.
const CLIENT: &str = r#"
import socket, ssl, struct
TCP_FASTOPEN_CONNECT = 30
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def query(i):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    s.settimeout(5)
    s.connect(("127.0.0.1", 8853))  # returns at once: the first send opens the connection
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)

    def flush():
        data = outgoing.read()
        if data:
            s.sendall(data)

    def fill():
        data = s.recv(65536)
        if not data:
            raise EOFError("connection closed")
        incoming.write(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            fill()
    qname = b"".join(bytes([len(l)]) + l for l in [b"q%d" % i, b"example"]) + b"\0"
    msg = struct.pack(">HHHHHH", 0x4000 + i, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    tls.write(struct.pack(">H", len(msg)) + msg)
    flush()
    data = b""
    while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
        try:
            data += tls.read(65536)
        except ssl.SSLWantReadError:
            fill()
    print("rcode", data[5] & 15)
    s.close()

for i in range(3):
    query(i)
"#;

/// Runs dotgate with `flag` in a fresh network namespace, makes three queries through it on
/// three TFO connections, and returns (answers received, TCPFastOpenPassive).
fn three_queries_in_a_namespace(flag: &str) -> (usize, u64) {
    let script = r#"
        set -eu
        echo 3 > /proc/sys/net/ipv4/tcp_fastopen
        ip link set lo up
        "$DOTGATE" --listen 127.0.0.1:8853 --backend 127.0.0.1:5399 --upstream-timeout 0.2 \
            --tcp-fast-open "$FLAG" >/dev/null 2>"$LOG" &
        dotgate=$!
        trap 'kill $dotgate 2>/dev/null || true' EXIT
        for _ in $(seq 100); do grep -q "dotgate started" "$LOG" && break; sleep 0.05; done
        timeout 30 python3 -c "$CLIENT"
        kill $dotgate
        wait $dotgate || true
        awk '$1 == "TcpExt:" { if (!names) { for (i = 2; i <= NF; i++) name[i] = $i; names = 1 }
             else { for (i = 2; i <= NF; i++) if (name[i] == "TCPFastOpenPassive") print "passive", $i } }' \
            /proc/net/netstat
    "#;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dotgate.log");
    let out = Command::new("timeout")
        .args(["60", "unshare", "--net", "bash", "-c", script])
        .env("DOTGATE", DOTGATE_BIN)
        .env("FLAG", flag)
        .env("LOG", &log)
        .env("CLIENT", CLIENT)
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dotgate_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "namespace script failed: {stderr}\n{stdout}\ndotgate: {dotgate_log}");
    // No backend in the namespace: each query is answered SERVFAIL, which still proves the
    // DoT session over that connection worked.
    let answers = stdout.matches("rcode 2").count();
    let passive = stdout
        .lines()
        .find_map(|l| l.strip_prefix("passive "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no TCPFastOpenPassive counter in: {stdout}"));
    (answers, passive)
}

#[test]
fn clients_with_a_cookie_open_connections_with_data_in_the_syn() {
    let (answers, passive) = three_queries_in_a_namespace("true");
    assert_eq!(answers, 3, "every query answered");
    // The first connection fetches the cookie; the next two carry their ClientHello in the SYN.
    assert_eq!(passive, 2, "connections accepted with data in the SYN");
}

#[test]
fn tcp_fast_open_false_accepts_no_data_in_the_syn() {
    let (answers, passive) = three_queries_in_a_namespace("false");
    assert_eq!(answers, 3, "every query answered, over ordinary handshakes");
    assert_eq!(passive, 0);
}
