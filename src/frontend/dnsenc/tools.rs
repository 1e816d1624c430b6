//! The `dotgate dnsenc ...` tools an operator runs by hand: `keygen` writes a key file and
//! prints the NSK record to publish; `query` asks a DNSENC server one question and prints the
//! answer as dig does (`load`, the load generator, is in `load`; `publish`, the UPDATE, in
//! `publish`). They print and exit.
//!
//! They never touch a running dotgate but as a client over the network (a new key file is picked
//! up on SIGHUP or when the files it was given change), never send a query in the clear (the
//! NSK fetch's DNSKEY, DS and NSK lookups aside), and never use a server key that was neither
//! given to them (`--nsk`) nor validated to a trust anchor (`trust`). Bad input is a
//! `ConfigError` (one line, exit 2) before anything is sent; what goes wrong on the network is a
//! [`Report`]'s failure (one line, exit 1).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::client::{self, Outcome};
use super::crypto;
use super::exchange::{self, Traffic};
use super::keys::ServerKey;
use super::print;
use super::trust;
use super::wire::{CodePoints, Nsk};
use crate::config::{ConfigError, DnsencQuery, NskSource};

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
    let nsk = key.nsk();
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

/// `dotgate dnsenc query`: the server's key from `--nsk`, or fetched from the server and
/// validated to `--trust-anchor` (`trust`); then one question encrypted to it, over UDP (again
/// over TCP after a TC=1 envelope) or straight over TCP; the answer printed as dig does, with
/// last lines saying how it went. An answer of any RCODE is a success; a key that does not
/// validate, a timeout, a clear error envelope (BADCRYPT, REFUSED, FORMERR...) or a network
/// error is a failure, and nothing is then sent in the clear but the key fetch itself.
pub fn query(request: &DnsencQuery) -> Result<Report, ConfigError> {
    let cp = &request.codepoints;
    let failure = |line: String| Ok(Report { text: String::new(), failure: Some(line) });
    let (nsk, key_note) = match &request.key {
        NskSource::File(path) => {
            let nsk = read_nsk_file(path, cp)?;
            if let Some(scheme) = request.scheme.filter(|&s| s != nsk.scheme) {
                return Err(ConfigError::Cli(format!(
                    "--nsk {} holds a {} key, not {}",
                    path.display(),
                    crypto::scheme_name(nsk.scheme).unwrap_or("?"),
                    crypto::scheme_name(scheme).unwrap_or("?")
                )));
            }
            (nsk, String::new())
        }
        NskSource::TrustAnchor(path) => {
            let anchors = trust::read_anchors(path)?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
            let validated = match trust::fetch(request.server, &anchors, cp, request.timeout, now) {
                Ok(validated) => validated,
                Err(line) => return failure(line),
            };
            let Some(nsk) = trust::choose(&validated.nsks, request.scheme, &validated.owner).cloned() else {
                return failure(format!(
                    "none of the {} validated NSK records at {} has a scheme this client uses{}",
                    validated.nsks.len(),
                    crate::dns::display_name(&validated.owner),
                    request.scheme.and_then(crypto::scheme_name).map(|s| format!(" ({s})")).unwrap_or_default()
                ));
            };
            let chain: Vec<String> = validated.chain.iter().map(|z| crate::dns::display_name(z)).collect();
            let note = format!(
                ";; NSK: {} record{} at {}, validated through {} to the trust anchor, in {} queries: {} bytes sent, {} received\n",
                validated.nsks.len(),
                if validated.nsks.len() == 1 { "" } else { "s" },
                crate::dns::display_name(&validated.owner),
                chain.join(" then "),
                validated.traffic.round_trips,
                validated.traffic.sent,
                validated.traffic.received
            );
            (nsk, note)
        }
    };
    let mut rng = StdRng::from_os_rng();
    let mut prepare = || {
        client::prepare(&nsk, &request.name, request.qtype, CLIENT_UDP_SIZE, request.dnssec, cp, &mut rng)
            .map_err(ConfigError::Cli)
    };
    let first = prepare()?;
    let mut traffic = Traffic::default();
    let (server, timeout) = (request.server, request.timeout);
    let outcome = |query: &client::Query, traffic: &mut Traffic, tcp: bool| {
        let accept = |msg: &[u8]| client::accept(query, msg, cp);
        if tcp {
            exchange::tcp(server, &query.envelope, timeout, traffic, accept)
        } else {
            exchange::udp(server, &query.envelope, timeout, traffic, accept)
        }
    };
    let (outcome, transport) = if request.tcp {
        (outcome(&first, &mut traffic, true), "TCP")
    } else {
        match outcome(&first, &mut traffic, false) {
            Ok(Outcome::Truncated) => {
                let again = prepare()?;
                (outcome(&again, &mut traffic, true), "TCP after TC=1")
            }
            other => (other, "UDP"),
        }
    };
    match outcome {
        Ok(Outcome::Answer(inner)) => {
            let mut text = print::message(&inner, cp);
            text.push('\n');
            text.push_str(&key_note);
            text.push_str(&format!(
                ";; DNSENC: scheme {}, key id {}, over {transport}, {} bytes sent, {} received\n",
                crypto::scheme_name(nsk.scheme).unwrap_or("?"),
                nsk.key_id,
                traffic.sent,
                traffic.received
            ));
            Ok(Report { text, failure: None })
        }
        Ok(Outcome::Rcode(rcode)) => {
            let hint = if rcode == cp.badcrypt {
                let why = match request.key {
                    NskSource::File(_) => "a wrong or stale --nsk?",
                    NskSource::TrustAnchor(_) => "a key published before the server loaded it?",
                };
                format!(": it holds no key {} or could not decrypt the query ({why})", nsk.key_id)
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
