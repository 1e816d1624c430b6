//! The `dotgate dnsenc ...` tools an operator runs by hand: `keygen` writes a key file and
//! prints the NSK record to publish; `query` asks a DNSENC server one question and prints the
//! answer as dig does (`load`, the load generator, is in `load`). They print and exit.
//!
//! They never touch a running dotgate but as a client over the network (a new key file is picked
//! up on SIGHUP or when the files it was given change), never send a query in the clear, and
//! never use a server key that was not given to them (`--nsk`): fetching the NSK and validating
//! its DNSSEC chain is not built. Bad input is a `ConfigError` (one line, exit 2) before anything
//! is sent; what goes wrong on the network is a [`Report`]'s failure (one line, exit 1).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::client::{self, Outcome, Query};
use super::crypto;
use super::keys::ServerKey;
use super::print;
use super::wire::{CodePoints, Nsk};
use crate::config::{ConfigError, DnsencQuery};

/// The UDP payload size the client advertises, outer and inner (RFC 9715's safe size, as the
/// server's envelopes).
pub const CLIENT_UDP_SIZE: u16 = 1232;

/// What a client tool prints on stdout, and the one line that says it failed (on stderr, exit
/// status 1), if it did.
#[derive(Debug, Default)]
pub struct Report {
    pub text: String,
    pub failure: Option<String>,
}

/// Writes a new key of `scheme` (rsa2048, rsa4096, x25519) into `dir` as `<key-id>.key`, mode
/// 0600, and returns the text to print: where it went and its NSK record in both presentation
/// forms (the draft's, and RFC 3597's, which a BIND that does not know the type loads).
pub fn keygen(scheme: &str, dir: &Path, priority: u8) -> Result<String, ConfigError> {
    let code = crypto::scheme_by_name(scheme).filter(|&code| crypto::is_query_scheme(code)).ok_or_else(|| {
        ConfigError::Value {
            what: "scheme",
            value: format!("{scheme:?}"),
            reason: "must be rsa2048, rsa4096 or x25519",
        }
    })?;
    let key = ServerKey::generate(code, priority, &mut StdRng::from_os_rng())
        .map_err(|e| ConfigError::Cli(format!("cannot generate a {scheme} key: {e}")))?;
    let path = dir.join(format!("{}.key", key.key_id));
    key.write_new(&path).map_err(|e| ConfigError::Cli(format!("cannot write {}: {e}", path.display())))?;
    let nsk = Nsk {
        key_id: key.key_id,
        priority: key.priority,
        reserved: 0,
        ns_name: vec![0],
        scheme: code,
        key: key.key.public_key_data(),
        response_schemes: key.response_schemes.clone(),
    };
    let nsk_type = CodePoints::default().nsk_type;
    Ok(format!(
        "; DNSENC key {id} ({scheme}, priority {priority}) written to {path}\n\
         ; Publish at the reverse name of each --dnsenc-listen address, DNSSEC-signed (never at a zone apex).\n\
         ; The draft's presentation form:\n\
         NSK {presentation}\n\
         ; RFC 3597's form, for a server that does not know the type (BIND):\n\
         TYPE{nsk_type} {generic}\n",
        id = key.key_id,
        path = path.display(),
        presentation = nsk.to_presentation(),
        generic = nsk.to_generic(),
    ))
}

/// The server's NSK from a file holding what `dotgate dnsenc keygen` printed: the first line that
/// reads as an NSK record in either presentation form, after a leading `NSK ` or `TYPEnnn `
/// (the code points' type) is taken off. Comment lines (`;`, `#`) and blank lines are skipped.
pub fn read_nsk_file(path: &Path, cp: &CodePoints) -> Result<Nsk, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Cli(format!("cannot read --nsk {}: {e}", path.display())))?;
    let generic_type = format!("TYPE{} ", cp.nsk_type);
    let mut first_error = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let record = line.strip_prefix("NSK ").or_else(|| line.strip_prefix(&generic_type)).unwrap_or(line);
        match Nsk::parse_presentation(record) {
            Ok(nsk) => return Ok(nsk),
            Err(e) => {
                first_error.get_or_insert(format!(" (line {}: {e})", number + 1));
            }
        }
    }
    Err(ConfigError::Cli(format!(
        "--nsk {}: no NSK record in it, give what `dotgate dnsenc keygen` printed{}",
        path.display(),
        first_error.unwrap_or_default()
    )))
}

/// What one lookup put on the wire: DNS messages sent and taken as the answer (envelopes,
/// without TCP's length prefix).
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    sent: usize,
    received: usize,
}

/// `dotgate dnsenc query`: one question, encrypted to the NSK in `request.nsk`, over UDP (again
/// over TCP after a TC=1 envelope) or straight over TCP; the answer printed as dig does, with a
/// last line saying how it went. An answer of any RCODE is a success; a timeout, a clear error
/// envelope (BADCRYPT, REFUSED, FORMERR...) or a network error is a failure.
pub fn query(request: &DnsencQuery) -> Result<Report, ConfigError> {
    let cp = &request.codepoints;
    let nsk = read_nsk_file(&request.nsk, cp)?;
    let mut rng = StdRng::from_os_rng();
    let mut prepare = || {
        client::prepare(&nsk, &request.name, request.qtype, CLIENT_UDP_SIZE, request.dnssec, cp, &mut rng)
            .map_err(ConfigError::Cli)
    };
    let first = prepare()?;
    let mut traffic = Traffic::default();
    let (outcome, transport) = if request.tcp {
        (exchange_tcp(request.server, &first, request.timeout, cp, &mut traffic), "TCP")
    } else {
        match exchange_udp(request.server, &first, request.timeout, cp, &mut traffic) {
            Ok(Outcome::Truncated) => {
                let again = prepare()?;
                (exchange_tcp(request.server, &again, request.timeout, cp, &mut traffic), "TCP after TC=1")
            }
            other => (other, "UDP"),
        }
    };
    let failure = |line: String| Ok(Report { text: String::new(), failure: Some(line) });
    match outcome {
        Ok(Outcome::Answer(inner)) => {
            let mut text = print::message(&inner, cp);
            text.push_str(&format!(
                "\n;; DNSENC: scheme {}, key id {}, over {transport}, {} bytes sent, {} received\n",
                crypto::scheme_name(nsk.scheme).unwrap_or("?"),
                nsk.key_id,
                traffic.sent,
                traffic.received
            ));
            Ok(Report { text, failure: None })
        }
        Ok(Outcome::Rcode(rcode)) => {
            let hint = if rcode == cp.badcrypt {
                format!(": it holds no key {} or could not decrypt the query (a wrong or stale --nsk?)", nsk.key_id)
            } else {
                String::new()
            };
            failure(format!(
                "{} answered {} ({rcode}) in the clear, over {transport}, with no answer{hint}",
                request.server,
                print::rcode_name(rcode, cp)
            ))
        }
        Ok(Outcome::Truncated) => failure(format!("{} answered TC=1 over TCP, with no answer", request.server)),
        Err(line) => failure(line),
    }
}

/// Sends `query` over UDP and waits up to `timeout` for what [`client::accept`] takes, ignoring
/// everything else (and ICMP errors, which anyone can forge).
fn exchange_udp(
    server: SocketAddr,
    query: &Query,
    timeout: Duration,
    cp: &CodePoints,
    traffic: &mut Traffic,
) -> Result<Outcome, String> {
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(server).map_err(|e| format!("cannot send to {server}: {e}"))?;
    socket.send(&query.envelope).map_err(|e| format!("cannot send to {server}: {e}"))?;
    traffic.sent += query.envelope.len();
    let deadline = Instant::now() + timeout;
    let mut refused = false;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let port_closed = if refused { " (the host said the port is closed)" } else { "" };
            return Err(format!("no answer from {server} within {} s over UDP{port_closed}", timeout.as_secs_f64()));
        }
        socket.set_read_timeout(Some(left)).map_err(|e| format!("cannot wait on the UDP socket: {e}"))?;
        match socket.recv(&mut buf) {
            Ok(len) => {
                if let Some(outcome) = client::accept(query, &buf[..len], cp) {
                    traffic.received += len;
                    return Ok(outcome);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused = true,
            Err(e) => return Err(format!("cannot receive from {server}: {e}")),
        }
    }
}

/// Sends `query` over a new TCP connection (2-byte length framing) and waits up to `timeout`
/// for a message [`client::accept`] takes, reading past any it does not.
fn exchange_tcp(
    server: SocketAddr,
    query: &Query,
    timeout: Duration,
    cp: &CodePoints,
    traffic: &mut Traffic,
) -> Result<Outcome, String> {
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("no answer from {server} within {} s over TCP", timeout.as_secs_f64());
    let mut stream = TcpStream::connect_timeout(&server, timeout)
        .map_err(|e| format!("cannot connect to {server} over TCP: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Vec::with_capacity(2 + query.envelope.len());
    framed.extend_from_slice(&(query.envelope.len() as u16).to_be_bytes());
    framed.extend_from_slice(&query.envelope);
    stream.set_write_timeout(Some(timeout)).map_err(|e| format!("cannot send to {server} over TCP: {e}"))?;
    stream.write_all(&framed).map_err(|e| format!("cannot send to {server} over TCP: {e}"))?;
    traffic.sent += query.envelope.len();
    let mut read = |buf: &mut [u8]| -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(left)).map_err(|e| format!("cannot wait on the TCP connection: {e}"))?;
        stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            io::ErrorKind::UnexpectedEof => format!("{server} closed the TCP connection without an answer"),
            _ => format!("cannot receive from {server} over TCP: {e}"),
        })
    };
    loop {
        let mut len = [0u8; 2];
        read(&mut len)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read(&mut msg)?;
        if let Some(outcome) = client::accept(query, &msg, cp) {
            traffic.received += msg.len();
            return Ok(outcome);
        }
    }
}
