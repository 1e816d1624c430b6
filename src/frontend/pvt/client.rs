//! The `dotgate pvt` user commands: `keygen` makes the user's key; `register`, `add`, `delete`,
//! `query`, `rekey` and `destroy` are the client of the gateway, each one request (docs/pvt.md;
//! draft sections 3.2 to 4) built with hickory-proto, SIG(0)-signed by the user's key as the
//! user's zone, sent over UDP (again over TCP after TC=1) or DNS over TLS, its answer reported
//! as dig does. Names and records below the user apex go sealed to the provider's KEY, which
//! `add`, `delete` and `query` first ask the same server for, in clear, at `_pvt.DOMAIN`.
//!
//! Owns: the requests' layout, the record text the commands take, and what an answer must be
//! to be shown. Never: sends a name or record below the user apex in clear; shows an answer
//! record that is not an ENCR owned by the exact question name or that does not open with the
//! user's key from the provider's (the whole answer is then refused); case-folds or re-encodes
//! an encrypted label (hickory emits them byte for byte: tested); prints the private key.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::crypto::{Ed25519SigningKey, RsaSigningKey};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::{Algorithm, SigSigner, SigningKey};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder, Restrict};
use hickory_proto::serialize::txt::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};

use super::gateway::{push_record, uncompressed_rdata, UDP_PAYLOAD};
use super::keys::{KeyPair, PublicKey, RsaKeyPair, UserKeyPair, UserPublic, TYPE_KEY};
use super::primary::{TYPE_ANY, TYPE_SOA};
use super::sig0;
use super::{seal, wire};
use crate::config::ConfigError;
use crate::dns::{self, display_name, rcode, HEADER_LEN};
use crate::frontend::dnsenc::exchange::{self, Traffic};
use crate::frontend::dnsenc::print;
use crate::frontend::dnsenc::tools::Report;
use crate::frontend::dnsenc::wire::{name_from_text, CodePoints};
use crate::message;

/// TTL of the KEY records the commands write.
pub const KEY_TTL: u32 = 3600;
/// How long each exchange waits for its answer (a UDP question is sent twice at most).
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A user command's settings, checked (`cli`).
pub struct User {
    /// The gateway.
    pub server: SocketAddr,
    /// DNS over TLS, when asked for.
    pub tls: Option<Tls>,
    /// `USER._pvt.DOMAIN`, lowercased wire form.
    pub zone: Vec<u8>,
    /// Ed25519, or RSA for a gateway in the compatibility mode.
    pub key: UserKeyPair,
}

/// How the gateway's certificate is checked.
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// A record as `add` and `delete` take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordText {
    /// The labels left of the zone, wire form without the root (empty at the apex).
    pub relative: Vec<u8>,
    pub ttl: u32,
    pub rtype: u16,
    /// Wire form, names uncompressed. `None` (delete only): the whole RRset.
    pub rdata: Option<Vec<u8>>,
    /// Whether it is added (else deleted).
    pub add: bool,
}

/// `dotgate pvt keygen`: writes a new key to `out` (mode 0600, never over a file) and returns
/// its KEY record at `zone`, or without one the record's data. `rsa`: a 2048-bit RSASHA256 key
/// (PKCS#8 PEM) for a gateway in the compatibility mode, else Ed25519.
pub fn keygen(out: &Path, zone: Option<&[u8]>, rsa: bool) -> Result<Report, ConfigError> {
    let pair = if rsa {
        UserKeyPair::Rsa(RsaKeyPair::generate().map_err(|e| ConfigError::Cli(e.to_string()))?)
    } else {
        UserKeyPair::Ed25519(KeyPair::generate())
    };
    pair.write_file(out).map_err(|e| ConfigError::Cli(format!("--out: {e}")))?;
    let key_text = pair.public().key_text();
    let text = match zone {
        Some(zone) => format!("{} {KEY_TTL} IN KEY {key_text}\n", display_name(zone)),
        None => format!("{key_text}\n"),
    };
    Ok(Report { text, failure: None })
}

/// `dotgate pvt register`: the UPDATE of `_pvt.DOMAIN` adding the user's KEY (draft §3.2).
pub fn register(user: &User) -> Result<Report, ConfigError> {
    let pvt_zone = &user.zone[1 + usize::from(user.zone[0])..];
    let mut update = update_of(pvt_zone)?;
    update.add_update(Record::from_rdata(name(&user.zone)?, KEY_TTL, key_data(&user.key.public())?));
    send_update(user, update)
}

/// `dotgate pvt add` and `delete`: one encrypted update record (draft §3.3): class IN to add,
/// ANY to delete an RRset (empty RDATA sealed), NONE to delete one record.
pub fn change(user: &User, encr_type: u16, record: &RecordText) -> Result<Report, ConfigError> {
    let provider = match provider_key(user) {
        Ok(provider) => provider,
        Err(line) => return Ok(failed(line)),
    };
    let update = change_request(&mut StdRng::from_os_rng(), rand::random(), user, &provider, encr_type, record)?;
    send_update(user, update)
}

/// The UPDATE of `change`, with ID `id` and every random byte from `rng`, not yet signed.
pub fn change_request(
    rng: &mut StdRng,
    id: u16,
    user: &User,
    provider: &PublicKey,
    encr_type: u16,
    record: &RecordText,
) -> Result<Message, ConfigError> {
    let (class, ttl, rdata) = match (record.add, &record.rdata) {
        (true, Some(rdata)) => (DNSClass::IN, record.ttl, &rdata[..]),
        (false, None) => (DNSClass::ANY, 0, &[][..]),
        (false, Some(rdata)) => (DNSClass::NONE, 0, &rdata[..]),
        (true, None) => return Err(ConfigError::Cli("a record to add needs its RDATA".into())),
    };
    let owner = encrypted_name(rng, user, provider, record.rtype, &record.relative)?;
    let mut plain_owner = record.relative.clone();
    plain_owner.extend_from_slice(&user.zone);
    let mut sealed = Vec::new();
    let (zone, rtype, algorithm) = (&user.zone, record.rtype, wire::ALG_HPKE_AES256GCM);
    match &user.key {
        UserKeyPair::Ed25519(key) => {
            seal::seal_record(rng, algorithm, key, provider, zone, rtype, &plain_owner, rdata, &mut sealed)
        }
        // An RSA user has no X25519 key: Base mode, vouched for by the SIG(0).
        UserKeyPair::Rsa(_) => {
            seal::seal_record_base(rng, algorithm, provider, zone, rtype, &plain_owner, rdata, &mut sealed)
        }
    }
    let mut encr = Record::from_rdata(name(&owner)?, ttl, encr_data(encr_type, sealed));
    encr.set_dns_class(class);
    let mut update = update_of(&user.zone)?;
    update.set_id(id).add_update(encr);
    Ok(update)
}

/// `dotgate pvt rekey`: the current KEY as the prerequisite, the KEY RRset deleted and `new`'s
/// added, signed with the current key (draft §3.3).
pub fn rekey(user: &User, new: &UserKeyPair) -> Result<Report, ConfigError> {
    if new.public() == user.key.public() {
        return Err(ConfigError::Cli("--new-key is the key the zone has now (--key)".into()));
    }
    let zone = name(&user.zone)?;
    let mut update = update_of(&user.zone)?;
    update.add_pre_requisite(Record::from_rdata(zone.clone(), 0, key_data(&user.key.public())?));
    update.add_update(delete_keys(zone.clone()));
    update.add_update(Record::from_rdata(zone, KEY_TTL, key_data(&new.public())?));
    let mut report = send_update(user, update)?;
    if report.failure.is_none() {
        report.text.push_str(&format!(
            "; the zone's KEY is now tag {}: sign with --new-key from now on\n",
            new.public().tag()
        ));
    }
    Ok(report)
}

/// `dotgate pvt destroy`: the KEY RRset at the apex deleted (draft §3.4).
pub fn destroy(user: &User) -> Result<Report, ConfigError> {
    let mut update = update_of(&user.zone)?;
    update.add_update(delete_keys(name(&user.zone)?));
    send_update(user, update)
}

/// `dotgate pvt query`: one signed question for `relative`/`qtype`, encrypted (draft §4), and
/// its answer opened.
pub fn query(user: &User, encr_type: u16, relative: &[u8], qtype: u16) -> Result<Report, ConfigError> {
    let provider = match provider_key(user) {
        Ok(provider) => provider,
        Err(line) => return Ok(failed(line)),
    };
    let request = query_request(
        &mut StdRng::from_os_rng(),
        rand::random(),
        sig0::now(),
        user,
        &provider,
        encr_type,
        relative,
        qtype,
    )?;
    Ok(match exchange(user, &request) {
        Ok(answer) => read_answer(user, &provider, &Asked { request: &request, relative, qtype, encr_type }, &answer),
        Err(line) => failed(line),
    })
}

/// The signed query: ID `id`, RD=0, the encrypted name of `qtype` at `relative` asking for
/// ENCR, an OPT record (payload 1232), the SIG(0) from `now`. Every random byte comes from
/// `rng` (the test vectors and `dotgate pvt load` give their own).
#[allow(clippy::too_many_arguments)]
pub fn query_request(
    rng: &mut StdRng,
    id: u16,
    now: u32,
    user: &User,
    provider: &PublicKey,
    encr_type: u16,
    relative: &[u8],
    qtype: u16,
) -> Result<Vec<u8>, ConfigError> {
    let qname = encrypted_name(rng, user, provider, qtype, relative)?;
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(false)
        .add_query(Query::query(name(&qname)?, RecordType::from(encr_type)));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    message.set_edns(edns);
    signed(message, &user.key, &user.zone, now).map_err(ConfigError::Cli)
}

/// A query as sent, and what it asks in clear.
pub struct Asked<'a> {
    pub request: &'a [u8],
    pub relative: &'a [u8],
    pub qtype: u16,
    pub encr_type: u16,
}

/// The answer to `asked`, shown as dig would show it in clear: the question as the user asked
/// it, each answer record opened, the Authority SOA as it came. Refused whole when its question
/// is not the one sent byte for byte, or an answer record is not an ENCR owned by that name or
/// does not open: a record that cannot be checked is never shown. A failure for any RCODE but
/// NOERROR.
pub fn read_answer(user: &User, provider: &PublicKey, asked: &Asked<'_>, answer: &[u8]) -> Report {
    let refused = |why: String| failed(format!("{why}: the answer is rejected"));
    let parsed = message::parse(answer);
    if let Some(why) = parsed.stopped {
        return refused(format!("the answer does not parse ({why})"));
    }
    let question = dns::question_end(asked.request).map_or(&[][..], |end| &asked.request[HEADER_LEN..end]);
    let same = dns::qdcount(answer) == 1 && answer.get(HEADER_LEN..HEADER_LEN + question.len()) == Some(question);
    if !same && !dns::is_questionless_error(answer) {
        return refused("its question is not the one sent, byte for byte (encrypted labels are binary)".into());
    }
    let qname = &question[..question.len().saturating_sub(4)];
    let mut records = Vec::new();
    for (index, record) in parsed.sections[0].iter().enumerate() {
        if record.rtype != asked.encr_type || record.owner != qname {
            let rtype = print::type_name(record.rtype, &CodePoints::default());
            return refused(format!(
                "answer record {} is {rtype} at {}, not ENCR at the question's name",
                index + 1,
                display_name(&record.owner)
            ));
        }
        let rdata = &answer[record.rdata.0..record.rdata.1];
        let opened = match &user.key {
            UserKeyPair::Ed25519(key) => seal::open_record(key, provider, &user.zone, rdata),
            UserKeyPair::Rsa(key) => seal::open_record_rsa(key, &user.zone, rdata),
        };
        let Ok(opened) = opened else {
            return refused(format!("answer record {} does not open (forged, or sealed to another key)", index + 1));
        };
        records.push((opened.owner, opened.rtype, record.class, record.ttl, opened.rdata));
    }
    let soas: Vec<_> = parsed.sections[1]
        .iter()
        .filter(|r| r.rtype == TYPE_SOA)
        .filter_map(|r| {
            Some((r.owner.clone(), TYPE_SOA, r.class, r.ttl, uncompressed_rdata(answer, TYPE_SOA, r.rdata)?))
        })
        .collect();
    // The answer in clear, for the dig-style printer: header as received, no OPT.
    let mut plain = answer[..4].to_vec();
    for count in [1, records.len(), soas.len(), 0] {
        plain.extend_from_slice(&(count as u16).to_be_bytes());
    }
    plain.extend_from_slice(asked.relative);
    plain.extend_from_slice(&user.zone);
    plain.extend_from_slice(&asked.qtype.to_be_bytes());
    plain.extend_from_slice(question.get(question.len().saturating_sub(2)..).unwrap_or(&[0, 1]));
    for (owner, rtype, class, ttl, rdata) in records.iter().chain(&soas) {
        push_record(&mut plain, owner, *rtype, *class, *ttl, rdata);
    }
    status(print::message(&plain, &CodePoints::default()), answer)
}

/// The report of an answer: `text`, and a failure unless its RCODE is NOERROR.
fn status(text: String, answer: &[u8]) -> Report {
    let failure =
        (dns::rcode(answer) != rcode::NOERROR).then(|| format!("the gateway answered {}", rcode_name(answer)));
    Report { text, failure }
}

fn rcode_name(answer: &[u8]) -> String {
    print::rcode_name(u16::from(dns::rcode(answer)), &CodePoints::default())
}

fn failed(line: String) -> Report {
    Report { text: String::new(), failure: Some(line) }
}

/// An UPDATE of `zone` (wire form): the zone section only, a random ID.
fn update_of(zone: &[u8]) -> Result<Message, ConfigError> {
    let mut update = Message::new();
    update.set_id(rand::random()).set_message_type(MessageType::Query).set_op_code(OpCode::Update);
    update.add_zone(Query::query(name(zone)?, RecordType::SOA));
    Ok(update)
}

/// Signs and sends `update`, and reports its answer's RCODE.
pub fn send_update(user: &User, update: Message) -> Result<Report, ConfigError> {
    let request = signed(update, &user.key, &user.zone, sig0::now()).map_err(ConfigError::Cli)?;
    Ok(match exchange(user, &request) {
        Ok(answer) => status(
            format!(";; ->>HEADER<<- opcode: UPDATE, status: {}, id: {}\n", rcode_name(&answer), dns::id(&answer)),
            &answer,
        ),
        Err(line) => failed(line),
    })
}

/// An RFC 2136 §2.5.2 update record: every KEY at `owner` deleted.
fn delete_keys(owner: Name) -> Record {
    let mut record = Record::update0(owner, 0, RecordType::KEY);
    record.set_dns_class(DNSClass::ANY);
    record
}

/// `message` on the wire with a SIG(0) by `key` for `zone` (lowercased wire form: hickory
/// writes the signer name in lowercase but signs it as given), valid from `now` for
/// [`sig0::SIGN_WINDOW`] seconds: hickory's SIG(0) window is fixed at inception + 300 s, the
/// one wanted (`sig_duration` can neither be set through `SigSigner::sig0` nor is it read for
/// SIG(0); the tests hold it to 300).
pub fn signed(mut message: Message, key: &UserKeyPair, zone: &[u8], now: u32) -> Result<Vec<u8>, String> {
    let cannot = |e: hickory_proto::dnssec::DnsSecError| format!("the key cannot sign: {e}");
    let signing: Box<dyn SigningKey> = match key {
        UserKeyPair::Ed25519(key) => {
            let pkcs8 = key.pkcs8();
            Box::new(Ed25519SigningKey::from_pkcs8(&PrivatePkcs8KeyDer::from(&pkcs8[..])).map_err(cannot)?)
        }
        UserKeyPair::Rsa(key) => Box::new(
            RsaSigningKey::from_pkcs8(&PrivatePkcs8KeyDer::from(key.pkcs8()), Algorithm::RSASHA256).map_err(cannot)?,
        ),
    };
    let RData::DNSSEC(DNSSECRData::KEY(public)) = key_data(&key.public()).map_err(|e| e.to_string())? else {
        return Err("the key's KEY record does not read back".into());
    };
    let signer = SigSigner::sig0(public, signing, name(zone).map_err(|e| e.to_string())?);
    message.finalize(&signer, now).map_err(|e| format!("cannot sign the message: {e}"))?;
    message.to_vec().map_err(|e| format!("cannot write the message: {e}"))
}

/// hickory's name for a wire-form name, label bytes as they are (no case folding, no IDNA).
pub fn name(wire: &[u8]) -> Result<Name, ConfigError> {
    let mut labels = Vec::new();
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at).ok_or_else(|| ConfigError::Cli("a name without its root".into()))?);
        if len == 0 {
            break;
        }
        labels
            .push(wire.get(at + 1..at + 1 + len).ok_or_else(|| ConfigError::Cli("a label runs off its name".into()))?);
        at += 1 + len;
    }
    Name::from_labels(labels).map_err(|e| ConfigError::Cli(format!("not a name: {e}")))
}

/// A KEY record's data, read by hickory from the key's RDATA.
fn key_data(public: &UserPublic) -> Result<RData, ConfigError> {
    let rdata = public.key_rdata();
    RData::read(&mut BinDecoder::new(&rdata), RecordType::KEY, Restrict::new(rdata.len() as u16))
        .map_err(|e| ConfigError::Cli(format!("the KEY record does not read: {e}")))
}

/// ENCR data: opaque to hickory.
fn encr_data(encr_type: u16, rdata: Vec<u8>) -> RData {
    RData::Unknown { code: RecordType::from(encr_type), rdata: NULL::with(rdata) }
}

/// The encrypted name of `rtype` at `relative` in the user's zone (wire form).
fn encrypted_name(
    rng: &mut StdRng,
    user: &User,
    provider: &PublicKey,
    rtype: u16,
    relative: &[u8],
) -> Result<Vec<u8>, ConfigError> {
    let ciphertext = match &user.key {
        UserKeyPair::Ed25519(key) => seal::seal_name(rng, key, provider, &user.zone, rtype, relative),
        UserKeyPair::Rsa(_) => seal::seal_name_base(rng, provider, &user.zone, rtype, relative),
    };
    wire::encrypted_name(&ciphertext, &user.zone)
        .map_err(|e| ConfigError::Cli(format!("the name cannot be encrypted below {}: {e}", display_name(&user.zone))))
}

/// The provider's key: the first algorithm-15 KEY the server holds at `_pvt.DOMAIN`, asked in
/// clear (it is public: draft §3).
pub fn provider_key(user: &User) -> Result<PublicKey, String> {
    let apex = &user.zone[1 + usize::from(user.zone[0])..];
    let mut message = Message::new();
    let qname = name(apex).map_err(|e| e.to_string())?;
    message.set_id(rand::random()).set_recursion_desired(false).add_query(Query::query(qname, RecordType::KEY));
    let request = message.to_vec().map_err(|e| format!("cannot write the KEY query: {e}"))?;
    let answer = exchange(user, &request)?;
    let shown = display_name(apex);
    if dns::rcode(&answer) != rcode::NOERROR {
        return Err(format!("the gateway answered {} to the provider KEY query at {shown}", rcode_name(&answer)));
    }
    message::parse(&answer).sections[0]
        .iter()
        .filter(|r| r.rtype == TYPE_KEY && r.owner.eq_ignore_ascii_case(apex))
        .find_map(|r| PublicKey::from_key_rdata(&answer[r.rdata.0..r.rdata.1]).ok())
        .ok_or_else(|| format!("no algorithm-15 KEY at {shown} (the provider's key): is the gateway serving it?"))
}

/// One request and its answer: over TLS when asked; else over UDP (sent again once after
/// [`TIMEOUT`] without an answer) and again over TCP when the answer is truncated.
fn exchange(user: &User, request: &[u8]) -> Result<Vec<u8>, String> {
    let (server, traffic) = (user.server, &mut Traffic::default());
    if let Some(tls) = &user.tls {
        return exchange::tls(server, tls.config.clone(), tls.name.clone(), request, TIMEOUT, traffic, accept(request));
    }
    let answer = exchange::udp(server, request, TIMEOUT, traffic, accept(request))
        .or_else(|_| exchange::udp(server, request, TIMEOUT, traffic, accept(request)))?;
    if dns::is_truncated(&answer) {
        return exchange::tcp(server, request, TIMEOUT, traffic, accept(request));
    }
    Ok(answer)
}

/// Takes a response to `request`: its ID and opcode, and its question (the name compared
/// without case here, so that a case-folded question is reported rather than waited out) or
/// none on an error.
fn accept(request: &[u8]) -> impl FnMut(&[u8]) -> Option<Vec<u8>> + '_ {
    let asked = dns::question_end(request).map_or(&[][..], |end| &request[HEADER_LEN..end]);
    move |answer| {
        let ours = answer.len() >= HEADER_LEN
            && dns::is_response(answer)
            && answer[..2] == request[..2]
            && dns::opcode(answer) == dns::opcode(request)
            && (dns::answers_question(answer, asked) || dns::is_questionless_error(answer));
        ours.then(|| answer.to_vec())
    }
}

/// Where the system's PEM bundle of trusted roots is looked for when `--tls` comes without
/// `--ca`, after `$SSL_CERT_FILE`: Debian and Ubuntu, Fedora and RHEL, openSUSE, Alpine.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The TLS settings: the roots in the PEM file `ca`, else the system's (the file
/// `$SSL_CERT_FILE` names, else the first of [`SYSTEM_ROOTS`] there is); the gateway checked as
/// `name` (else as its address), ALPN "dot".
///
/// The system bundle is read here, not through rustls-native-certs or webpki-roots: neither is
/// in the dependency graph, and on the Unix systems dotgate runs on the first reads this same
/// file (webpki-roots would be Mozilla's list built in, not the system's).
pub fn tls_settings(ca: Option<&Path>, name: Option<&str>, address: IpAddr) -> Result<Tls, ConfigError> {
    let system;
    let (ca, flag, strict) = match ca {
        Some(ca) => (ca, "--ca", true),
        None => {
            system = std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .or_else(|| SYSTEM_ROOTS.iter().map(std::path::PathBuf::from).find(|path| path.exists()))
                .ok_or_else(|| {
                    ConfigError::Tls(format!(
                        "--tls: no system roots (none of $SSL_CERT_FILE, {}); give --ca FILE",
                        SYSTEM_ROOTS.join(", ")
                    ))
                })?;
            (system.as_path(), "--tls: the system roots", false)
        }
    };
    let bad = |why: String| ConfigError::Tls(format!("{flag} {}: {why}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))?;
    if strict {
        for cert in certs {
            roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
        }
    } else {
        // As rustls-native-certs does: a system root webpki cannot parse is passed over.
        roots.add_parsable_certificates(certs.filter_map(Result::ok));
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let name = match name {
        Some(name) => ServerName::try_from(name.to_owned())
            .map_err(|_| ConfigError::Cli(format!("--tls-name {name:?} is not a DNS name or an IP address")))?,
        None => ServerName::IpAddress(address.into()),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![crate::tls::ALPN_DOT.to_vec()];
    Ok(Tls { config: Arc::new(config), name })
}

/// The first whitespace-separated word of `text`, and the rest.
fn word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    text.split_once(char::is_whitespace).unwrap_or((text, ""))
}

/// The RR type a mnemonic or `TYPEnnn` names.
pub fn type_by_name(text: &str) -> Option<u16> {
    print::type_by_name(text, &CodePoints::default())
}

/// `NAME TTL TYPE RDATA` (`add`) or `NAME TYPE [RDATA]` (`delete`) in `zone` (wire form).
///
/// NAME as [`relative_name`] reads it; TTL in seconds or with units (`1h`); TYPE a mnemonic or
/// `TYPEnnn`; RDATA in zone-file form, read by hickory-proto's own zone-file parser with the
/// zone as origin (so `printer` in a CNAME is `printer.<zone>`), or in RFC 3597's `\# LENGTH
/// HEX` for any type. The RDATA's names go uncompressed and, as hickory writes them so, in
/// lowercase.
pub fn parse_record(text: &str, zone: &[u8], add: bool) -> Result<RecordText, String> {
    if text.chars().any(char::is_control) {
        return Err("one record on one line, without control characters".into());
    }
    let (name_text, rest) = word(text);
    let relative = relative_name(name_text, zone)?;
    let (ttl, rest) = if add {
        let (ttl, rest) = word(rest);
        (Parser::parse_time(ttl).map_err(|_| format!("the TTL {ttl:?} is not a number of seconds"))?, rest)
    } else {
        (0, rest)
    };
    let (type_text, rest) = word(rest);
    let rtype = type_by_name(type_text).ok_or_else(|| format!("{type_text:?} is not a record type"))?;
    let rest = rest.trim();
    let meta = rtype == 41 || (128..=255).contains(&rtype);
    if meta && !(rtype == TYPE_ANY && !add && rest.is_empty()) {
        return Err(format!("{type_text} is a meta type (ANY deletes every RRset at a name, without RDATA)"));
    }
    let rdata = match rest {
        "" if add => return Err("no RDATA".into()),
        "" => None,
        _ if rest.starts_with("\\#") => Some(generic_rdata(rest)?),
        _ => Some(rdata_from_text(rtype, rest, zone)?),
    };
    Ok(RecordText { relative, ttl, rtype, rdata, add })
}

/// A name as the labels left of `zone` (wire form, no root): `@` is the apex; a name ending in
/// an unescaped dot, or one that already ends with the zone, is absolute and must be in it;
/// any other is relative to the zone.
pub fn relative_name(text: &str, zone: &[u8]) -> Result<Vec<u8>, String> {
    if text == "@" {
        return Ok(Vec::new());
    }
    if text.is_empty() {
        return Err("no name".into());
    }
    let wire = name_from_text(text.as_bytes())?;
    let trailing_backslashes = text[..text.len() - 1].bytes().rev().take_while(|&b| b == b'\\').count();
    let absolute = text.ends_with('.') && trailing_backslashes % 2 == 0;
    let relative = match wire::zone_suffix(&wire, zone) {
        Some(at) => wire[..at].to_vec(),
        None if absolute => return Err(format!("not in the zone {}", display_name(zone))),
        None => wire[..wire.len() - 1].to_vec(),
    };
    if !wire::check_relative(&relative, zone.len()) {
        return Err("longer than 255 octets in the zone".into());
    }
    Ok(relative)
}

/// RDATA in zone-file form, by hickory's zone-file parser with `zone` as origin.
fn rdata_from_text(rtype: u16, text: &str, zone: &[u8]) -> Result<Vec<u8>, String> {
    let mnemonic = print::type_name(rtype, &CodePoints::default());
    let origin = name(zone).map_err(|e| e.to_string())?;
    let unreadable =
        |why: String| format!("the {mnemonic} data does not read ({why}); `\\# LENGTH HEX` takes any type");
    let (_, records) = Parser::new(format!("@ 0 IN {mnemonic} {text}\n"), None, Some(origin))
        .parse()
        .map_err(|e| unreadable(e.to_string()))?;
    let record = records.values().flat_map(|set| set.records_without_rrsigs()).next();
    let record = record.ok_or_else(|| unreadable("no record".into()))?;
    let mut out = Vec::new();
    let mut encoder = BinEncoder::new(&mut out);
    // No compression pointer: the RDATA travels sealed, out of any message.
    encoder.set_canonical_names(true);
    record.data().emit(&mut encoder).map_err(|e| unreadable(e.to_string()))?;
    Ok(out)
}

/// RFC 3597 §5: `\# LENGTH HEX`, the hex in any number of words.
fn generic_rdata(text: &str) -> Result<Vec<u8>, String> {
    let mut words = text.split_whitespace().skip(1);
    let length: usize = words.next().and_then(|w| w.parse().ok()).ok_or("`\\#` needs the RDATA length")?;
    let hex: String = words.collect();
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("`\\# LENGTH HEX`: the data is not whole octets of hex".into());
    }
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)).collect();
    if bytes.len() != length {
        return Err(format!("`\\# {length}` but {} octets of hex", bytes.len()));
    }
    Ok(bytes)
}

/// `dotgate pvt load`: `prepared` signed queries made from `queries` (relative name, type) in
/// turn, each with its own ID, sent as [`super::load`] says.
pub fn load(
    user: &User,
    encr_type: u16,
    queries: &[(Vec<u8>, u16)],
    prepared: usize,
    settings: (usize, Option<u32>, Duration),
) -> Result<Report, ConfigError> {
    let provider = match provider_key(user) {
        Ok(provider) => provider,
        Err(line) => return Ok(failed(line)),
    };
    let mut rng = StdRng::from_os_rng();
    let now = sig0::now();
    let mut ids: Vec<u16> = (0..=u16::MAX).collect();
    rand::seq::SliceRandom::shuffle(&mut ids[..], &mut rng);
    let requests = (0..prepared.min(ids.len()))
        .map(|i| {
            let (relative, qtype) = &queries[i % queries.len()];
            query_request(&mut rng, ids[i], now, user, &provider, encr_type, relative, *qtype)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (clients, qps, duration) = settings;
    Ok(super::load::run(super::load::Load { server: user.server, queries: requests, clients, qps, duration }))
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, UdpSocket};

    use super::*;
    use crate::frontend::pvt::wire::ALG_HPKE_AES256GCM;

    const ZONE: &[u8] = b"\x05alice\x04_pvt\x07example\x04test\0";
    const ENCR: u16 = wire::DEFAULT_TYPE_ENCR;
    /// ns.example.test. admin.example.test. 1 2 3 4 5
    const SOA: &[u8] = b"\x02ns\x07example\x04test\0\x05admin\x07example\x04test\0\
        \0\0\0\x01\0\0\0\x02\0\0\0\x03\0\0\0\x04\0\0\0\x05";

    fn user(server: SocketAddr) -> User {
        User { server, tls: None, zone: ZONE.to_vec(), key: UserKeyPair::Ed25519(KeyPair::generate()) }
    }

    /// The Ed25519 key of a user made by [`user`].
    fn ed(user: &User) -> &KeyPair {
        match &user.key {
            UserKeyPair::Ed25519(key) => key,
            UserKeyPair::Rsa(_) => panic!("an RSA user"),
        }
    }

    fn nowhere() -> User {
        user(([127, 0, 0, 1], 9).into())
    }

    /// An answer to `request` (its ID and question), RCODE `rcode`, with `answers` (type, RDATA)
    /// owned by a pointer to the question, and the zone's SOA in Authority.
    fn response(request: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let end = dns::question_end(request).unwrap();
        let mut out = request[..2].to_vec();
        out.extend_from_slice(&[0x84 | (request[2] & 0x78), rcode, 0, 1, 0, answers.len() as u8, 0, 1, 0, 0]);
        out.extend_from_slice(&request[HEADER_LEN..end]);
        for (rtype, rdata) in answers {
            push_record(&mut out, &[0xc0, 0x0c], *rtype, 1, 300, rdata);
        }
        push_record(&mut out, ZONE, TYPE_SOA, 1, 60, SOA);
        out
    }

    /// ENCR RDATA holding a record sealed by `sender` to `user`.
    fn sealed(sender: &KeyPair, user: &User, rtype: u16, relative: &[u8], rdata: &[u8]) -> Vec<u8> {
        let owner = [relative, ZONE].concat();
        let mut out = Vec::new();
        let mut rng = StdRng::seed_from_u64(7);
        seal::seal_record(&mut rng, ALG_HPKE_AES256GCM, sender, &ed(user).public, ZONE, rtype, &owner, rdata, &mut out);
        out
    }

    #[test]
    fn hickory_signs_what_the_gateway_verifies_and_any_flipped_byte_fails() {
        let (user, provider) = (nowhere(), KeyPair::generate());
        let record = parse_record("printer 3600 A 192.0.2.7", ZONE, true).unwrap();
        let mut update = update_of(ZONE).unwrap();
        let owner =
            encrypted_name(&mut StdRng::seed_from_u64(1), &user, &provider.public, 1, &record.relative).unwrap();
        update.add_update(Record::from_rdata(name(&owner).unwrap(), 3600, encr_data(ENCR, vec![1; 60])));
        let now = 1_000_000;
        let msg = signed(update, &user.key, ZONE, now).unwrap();
        let sig = sig0::find(&msg).unwrap();
        assert_eq!((sig.signer, sig.inception, sig.expiration), (ZONE, now, now + sig0::SIGN_WINDOW));
        assert_eq!(sig.key_tag, ed(&user).public.tag);
        let mut scratch = Vec::new();
        assert_eq!(sig0::verify(&msg, &sig, ZONE, &ed(&user).public, now + 10, &mut scratch), Ok(()));
        for at in 0..msg.len() {
            let mut flipped = msg.clone();
            flipped[at] ^= 0x01;
            let verdict = sig0::find(&flipped)
                .and_then(|sig| sig0::verify(&flipped, &sig, ZONE, &ed(&user).public, now, &mut scratch));
            assert!(verdict.is_err(), "byte {at} of {}", msg.len());
        }
    }

    #[test]
    fn an_rsa_sig0_by_hickory_verifies_with_the_gateways_verifier() {
        let pair = crate::frontend::pvt::keys::tests::rsa_pair();
        let key = UserKeyPair::Rsa(RsaKeyPair::from_pkcs8(pair.pkcs8()).unwrap());
        let UserPublic::Rsa(public) = key.public() else { unreachable!() };
        let mut update = update_of(ZONE).unwrap();
        update.add_update(Record::from_rdata(name(ZONE).unwrap(), 3600, key_data(&key.public()).unwrap()));
        let now = 1_000_000;
        let msg = signed(update, &key, ZONE, now).unwrap();
        let sig = sig0::find(&msg).unwrap();
        assert_eq!((sig.algorithm, sig.key_tag, sig.signature.len()), (8, public.tag, 256));
        assert_eq!((sig.signer, sig.inception, sig.expiration), (ZONE, now, now + sig0::SIGN_WINDOW));
        let mut scratch = Vec::new();
        assert_eq!(sig0::verify(&msg, &sig, ZONE, &public, now + 10, &mut scratch), Ok(()));
        assert_eq!(sig0::verify(&msg, &sig, ZONE, &key.public(), now + 10, &mut scratch), Ok(()));
        let ed = KeyPair::generate();
        assert_eq!(sig0::verify(&msg, &sig, ZONE, &ed.public, now, &mut scratch), Err(sig0::Sig0Error::WrongSigner));
        for at in [1, 13, 60, msg.len() - 100, msg.len() - 1] {
            let mut flipped = msg.clone();
            flipped[at] ^= 0x01;
            let verdict =
                sig0::find(&flipped).and_then(|sig| sig0::verify(&flipped, &sig, ZONE, &public, now, &mut scratch));
            assert_eq!(verdict, Err(sig0::Sig0Error::Signature), "byte {at}");
        }
    }

    #[test]
    fn an_rsa_user_sends_base_mode_and_opens_only_untouched_algorithm_3_answers() {
        let pair = crate::frontend::pvt::keys::tests::rsa_pair();
        let mut user = nowhere();
        user.key = UserKeyPair::Rsa(RsaKeyPair::from_pkcs8(pair.pkcs8()).unwrap());
        let provider = KeyPair::generate();
        let request = query_request(
            &mut StdRng::seed_from_u64(11),
            0x4242,
            sig0::now(),
            &user,
            &provider.public,
            ENCR,
            b"\x07printer",
            1,
        )
        .unwrap();
        let end = dns::question_end(&request).unwrap();
        let qname = &request[HEADER_LEN..end - 4];
        let ciphertext = wire::encrypted_labels(qname, wire::zone_suffix(qname, ZONE).unwrap()).unwrap();
        assert_eq!(seal::open_name_base(&provider, ZONE, &ciphertext), Ok((1, b"\x07printer".to_vec())));
        let mut encr = Vec::new();
        let owner = [&b"\x07printer"[..], ZONE].concat();
        seal::seal_record_rsa(&mut StdRng::seed_from_u64(8), &pair.public, ZONE, 1, &owner, &[192, 0, 2, 7], &mut encr);
        let asked = Asked { request: &request, relative: b"\x07printer", qtype: 1, encr_type: ENCR };
        let report = read_answer(&user, &provider.public, &asked, &response(&request, 0, &[(ENCR, encr.clone())]));
        assert_eq!(report.failure, None);
        assert!(report.text.contains("printer.alice._pvt.example.test.\t300\tIN\tA\t192.0.2.7"), "{}", report.text);
        let mut flipped = encr.clone();
        flipped[100] ^= 1;
        let ed_user = KeyPair::generate();
        let mut auth = Vec::new();
        seal::seal_record(
            &mut StdRng::seed_from_u64(9),
            1,
            &provider,
            &ed_user.public,
            ZONE,
            1,
            &owner,
            &[1; 4],
            &mut auth,
        );
        for bad in [flipped, auth] {
            let report = read_answer(&user, &provider.public, &asked, &response(&request, 0, &[(ENCR, bad)]));
            assert!(report.failure.unwrap().contains("does not open"));
            assert_eq!(report.text, "");
        }
    }

    #[test]
    fn encrypted_labels_go_on_the_wire_byte_for_byte() {
        let (user, provider) = (nowhere(), KeyPair::generate());
        // Upper case, dots, zero and high octets, and more than one label's worth.
        let ciphertext: Vec<u8> = b"ABC.\0\xffdef\\ ".iter().copied().cycle().take(150).collect();
        let qname = wire::encrypted_name(&ciphertext, ZONE).unwrap();
        let mut message = Message::new();
        message.add_query(Query::query(name(&qname).unwrap(), RecordType::from(ENCR)));
        let bytes = signed(message, &user.key, ZONE, 1).unwrap();
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + qname.len()], &qname[..]);
        // And a real query: the gateway's own reading of it gives back the type and the name.
        let request = query_request(
            &mut StdRng::seed_from_u64(11),
            0x4242,
            sig0::now(),
            &user,
            &provider.public,
            ENCR,
            b"\x07Printer",
            28,
        )
        .unwrap();
        let end = dns::question_end(&request).unwrap();
        let qname = &request[HEADER_LEN..end - 4];
        assert_eq!(&request[end - 4..end], &[0xff, 0x16, 0, 1]);
        let at = wire::zone_suffix(qname, ZONE).unwrap();
        let ciphertext = wire::encrypted_labels(qname, at).unwrap();
        let opened = seal::open_name(&provider, &ed(&user).public, ZONE, &ciphertext).unwrap();
        assert_eq!(opened, (28, b"\x07Printer".to_vec()));
        let parsed = message::parse(&request);
        assert_eq!(parsed.sections[2].iter().map(|r| r.rtype).collect::<Vec<_>>(), [41, sig0::TYPE_SIG]);
        assert_eq!((parsed.sections[2][0].class, request[2] & 0x01), (UDP_PAYLOAD, 0), "payload 1232, RD=0");
    }

    #[test]
    fn record_text_becomes_wire_and_shows_again_as_it_was() {
        let zone_text = "alice._pvt.example.test.";
        for (text, rtype, rdata, shown) in [
            ("printer 3600 A 192.0.2.7", 1, b"\xc0\x00\x02\x07".to_vec(), "printer.{z}\t3600\tIN\tA\t192.0.2.7"),
            (
                "@ 1h AAAA 2001:db8::7",
                28,
                [&[0x20, 1, 0xd, 0xb8][..], &[0; 11], &[7]].concat(),
                "{z}\t3600\tIN\tAAAA\t2001:db8::7",
            ),
            (
                r#"note 300 TXT "hello world" "a\"b""#,
                16,
                b"\x0bhello world\x03a\"b".to_vec(),
                "note.{z}\t300\tIN\tTXT\t\"hello world\" \"a\\\"b\"",
            ),
            (
                "_ipp._tcp 300 SRV 0 5 631 printer",
                33,
                [&b"\0\0\0\x05\x02\x77\x07printer"[..], ZONE].concat(),
                "_ipp._tcp.{z}\t300\tIN\tSRV\t0 5 631 printer.{z}",
            ),
            ("www 300 CNAME printer", 5, [&b"\x07printer"[..], ZONE].concat(), "www.{z}\t300\tIN\tCNAME\tprinter.{z}"),
            (
                "@ 300 MX 10 Mail.Example.ORG.",
                15,
                b"\0\x0a\x04mail\x07example\x03org\0".to_vec(),
                "{z}\t300\tIN\tMX\t10 mail.example.org.",
            ),
            ("7 300 PTR printer", 12, [&b"\x07printer"[..], ZONE].concat(), "7.{z}\t300\tIN\tPTR\tprinter.{z}"),
            ("x 300 TYPE65280 \\# 3 01 0203", 65280, vec![1, 2, 3], "x.{z}\t300\tIN\tTYPE65280\t\\# 3 010203"),
        ] {
            let record = parse_record(text, ZONE, true).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((record.rtype, record.rdata.as_deref()), (rtype, Some(&rdata[..])), "{text}");
            // Sealed by the provider as the gateway would, opened and shown by the client.
            let (user, provider) = (nowhere(), KeyPair::generate());
            let request = query_request(
                &mut StdRng::seed_from_u64(11),
                0x4242,
                sig0::now(),
                &user,
                &provider.public,
                ENCR,
                &record.relative,
                rtype,
            )
            .unwrap();
            let mut answer =
                response(&request, 0, &[(ENCR, sealed(&provider, &user, rtype, &record.relative, &rdata))]);
            let ttl_at = dns::question_end(&request).unwrap() + 6;
            answer[ttl_at..ttl_at + 4].copy_from_slice(&record.ttl.to_be_bytes());
            let asked = Asked { request: &request, relative: &record.relative, qtype: rtype, encr_type: ENCR };
            let report = read_answer(&user, &provider.public, &asked, &answer);
            assert_eq!(report.failure, None, "{text}");
            let want = shown.replace("{z}", zone_text);
            assert!(report.text.contains(&format!("\n{want}\n")), "{text}: {want:?} not in\n{}", report.text);
        }
        let delete = parse_record("printer ANY", ZONE, false).unwrap();
        assert_eq!((delete.rtype, delete.rdata, delete.ttl), (TYPE_ANY, None, 0));
        let one = parse_record("printer.alice._pvt.example.test. A 192.0.2.7", ZONE, false).unwrap();
        assert_eq!((one.relative, one.rdata), (b"\x07printer".to_vec(), Some(vec![192, 0, 2, 7])));
    }

    #[test]
    fn names_are_read_relative_to_the_zone() {
        for (text, relative) in [
            ("@", &b""[..]),
            ("printer", b"\x07printer"),
            ("_ipp._tcp", b"\x04_ipp\x04_tcp"),
            ("printer.alice._pvt.example.test.", b"\x07printer"),
            ("printer.Alice._pvt.example.test", b"\x07printer"),
            ("alice._pvt.example.test.", b""),
            ("a\\.b", b"\x03a.b"),
            ("dot\\.", b"\x04dot."),
        ] {
            assert_eq!(relative_name(text, ZONE).as_deref(), Ok(relative), "{text}");
        }
        for bad in ["", "printer.example.org.", "a..b", &"x".repeat(64), &"abcdefgh.".repeat(29)] {
            assert!(relative_name(bad, ZONE).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answer_is_shown_only_when_every_record_opens() {
        let (user, provider, stranger) = (nowhere(), KeyPair::generate(), KeyPair::generate());
        let request = query_request(
            &mut StdRng::seed_from_u64(11),
            0x4242,
            sig0::now(),
            &user,
            &provider.public,
            ENCR,
            b"\x07printer",
            1,
        )
        .unwrap();
        let asked = Asked { request: &request, relative: b"\x07printer", qtype: 1, encr_type: ENCR };
        let genuine = sealed(&provider, &user, 1, b"\x07printer", &[192, 0, 2, 7]);
        let read = |answer: &[u8]| read_answer(&user, &provider.public, &asked, answer);

        let report = read(&response(&request, 0, &[(ENCR, genuine.clone())]));
        assert_eq!(report.failure, None);
        for line in [
            &format!(";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: {}", dns::id(&request)),
            ";; ANSWER SECTION:\nprinter.alice._pvt.example.test.\t300\tIN\tA\t192.0.2.7",
            ";; AUTHORITY SECTION:\nalice._pvt.example.test.\t60\tIN\tSOA\tns.example.test. admin.example.test. 1 2 3 4 5",
        ] {
            assert!(report.text.contains(line), "{line:?} not in\n{}", report.text);
        }
        let nxdomain = read(&response(&request, 3, &[]));
        assert!(nxdomain.text.contains("status: NXDOMAIN"), "{}", nxdomain.text);
        assert_eq!(nxdomain.failure.as_deref(), Some("the gateway answered NXDOMAIN"));

        let mut flipped = genuine.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let mut case_folded = response(&request, 0, &[(ENCR, genuine.clone())]);
        case_folded[HEADER_LEN..HEADER_LEN + 60].make_ascii_lowercase();
        case_folded[HEADER_LEN..HEADER_LEN + 60].make_ascii_uppercase();
        for (answer, why) in [
            (
                response(&request, 0, &[(ENCR, genuine.clone()), (ENCR, sealed(&stranger, &user, 1, b"", &[1; 4]))]),
                "record 2 does not open",
            ),
            (response(&request, 0, &[(ENCR, flipped)]), "record 1 does not open"),
            (response(&request, 0, &[(ENCR, vec![1; 70])]), "does not open"),
            (response(&request, 0, &[(1, vec![192, 0, 2, 66])]), "record 1 is A at"),
            (response(&request, 0, &[(65303, genuine.clone())]), "is TYPE65303"),
            (case_folded, "not the one sent, byte for byte"),
            (response(&request, 0, &[(ENCR, genuine.clone())])[..40].to_vec(), "does not parse"),
        ] {
            let report = read(&answer);
            assert_eq!(report.text, "", "{why}");
            let failure = report.failure.unwrap();
            assert!(failure.contains(why) && failure.ends_with("the answer is rejected"), "{why}: {failure}");
        }
        // A record owned by another name, though it opens.
        let mut moved = response(&request, 0, &[]);
        moved[7] = 1;
        let at = moved.len() - (ZONE.len() + 10 + SOA.len());
        let mut record = Vec::new();
        push_record(&mut record, ZONE, ENCR, 1, 300, &genuine);
        moved.splice(at..at, record);
        assert!(read(&moved).failure.unwrap().contains("not ENCR at the question's name"));
    }

    trait Stream: std::io::Read + std::io::Write {}
    impl<T: std::io::Read + std::io::Write> Stream for T {}

    /// A gateway in a thread: the provider KEY in clear, and for each signed request what
    /// `answer` makes of it; over UDP (TC=1 for encrypted queries when `truncate`), TCP and TLS
    /// (with `tls`) on one port, for `count` requests. Returns the address and the requests.
    fn gateway(
        provider: KeyPair,
        user: PublicKey,
        count: usize,
        truncate: bool,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = tcp.local_addr().unwrap();
        let udp = UdpSocket::bind(address).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let answer = move |request: &[u8]| -> Vec<u8> {
            let end = dns::question_end(request).unwrap();
            let qtype = u16::from_be_bytes([request[end - 4], request[end - 3]]);
            if dns::opcode(request) == 0 && qtype == TYPE_KEY {
                return response(request, 0, &[(TYPE_KEY, provider.public.key_rdata())]);
            }
            let verified = sig0::find(request)
                .and_then(|sig| sig0::verify(request, &sig, ZONE, &user, sig0::now(), &mut Vec::new()));
            if verified.is_err() {
                return response(request, rcode::REFUSED, &[]);
            }
            if dns::opcode(request) == 5 {
                return response(request, 0, &[]);
            }
            let qname = &request[HEADER_LEN..end - 4];
            let ciphertext = wire::encrypted_labels(qname, wire::zone_suffix(qname, ZONE).unwrap()).unwrap();
            let (rtype, relative) = seal::open_name(&provider, &user, ZONE, &ciphertext).unwrap();
            let owner = [&relative[..], ZONE].concat();
            let mut encr = Vec::new();
            let rng = &mut StdRng::from_os_rng();
            seal::seal_record(
                rng,
                ALG_HPKE_AES256GCM,
                &provider,
                &user,
                ZONE,
                rtype,
                &owner,
                &[192, 0, 2, 7],
                &mut encr,
            );
            response(request, 0, &[(ENCR, encr)])
        };
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0; 65535];
            while seen.len() < count {
                if let Ok((len, peer)) = udp.recv_from(&mut buf) {
                    let request = buf[..len].to_vec();
                    let mut out = answer(&request);
                    if truncate && dns::opcode(&request) == 0 && out.len() > 200 {
                        out.truncate(dns::question_end(&request).unwrap());
                        out[2] |= 0x02;
                        out[6..12].fill(0);
                    }
                    udp.send_to(&out, peer).unwrap();
                    seen.push(request);
                }
                let Ok((stream, _)) = tcp.accept() else { continue };
                stream.set_nonblocking(false).unwrap();
                let mut stream: Box<dyn Stream> = match &tls {
                    Some(config) => Box::new(rustls::StreamOwned::new(
                        rustls::ServerConnection::new(config.clone()).unwrap(),
                        stream,
                    )),
                    None => Box::new(stream),
                };
                let mut len = [0; 2];
                if stream.read_exact(&mut len).is_err() {
                    continue; // a handshake the client gave up
                }
                let mut request = vec![0; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut request).unwrap();
                let out = answer(&request);
                stream.write_all(&[&(out.len() as u16).to_be_bytes()[..], &out].concat()).unwrap();
                stream.flush().unwrap();
                seen.push(request);
            }
            seen
        });
        (address, thread)
    }

    fn provider() -> KeyPair {
        KeyPair::from_seed(&[9; 32]).unwrap()
    }

    #[test]
    fn every_command_reaches_a_gateway_over_udp_and_tcp_after_truncation() {
        let mut user = nowhere();
        let (address, thread) = gateway(provider(), ed(&user).public.clone(), 10, true, None);
        user.server = address;
        let update = ";; ->>HEADER<<- opcode: UPDATE, status: NOERROR, id: ";
        let new = UserKeyPair::Ed25519(KeyPair::generate());
        let reports = [
            register(&user).unwrap(),
            change(&user, ENCR, &parse_record("printer 3600 A 192.0.2.7", ZONE, true).unwrap()).unwrap(),
            change(&user, ENCR, &parse_record("printer A", ZONE, false).unwrap()).unwrap(),
            query(&user, ENCR, b"\x07printer", 1).unwrap(),
            rekey(&user, &new).unwrap(),
            destroy(&user).unwrap(),
        ];
        for (index, report) in reports.iter().enumerate() {
            assert_eq!(report.failure, None, "{index}: {}", report.text);
            let want = if index == 3 { "\nprinter.alice._pvt.example.test.\t300\tIN\tA\t192.0.2.7\n" } else { update };
            assert!(report.text.contains(want), "{index}: {want:?} not in {}", report.text);
        }
        let seen = thread.join().unwrap();
        let provider = provider();
        let parsed: Vec<_> = seen.iter().map(|m| message::parse(m)).collect();
        let rdata = |m: usize, section: usize, r: usize| {
            let (start, end) = parsed[m].sections[section][r].rdata;
            seen[m][start..end].to_vec()
        };
        let fields = |m: usize, section: usize| -> Vec<(u16, u16, u32)> {
            parsed[m].sections[section].iter().map(|r| (r.rtype, r.class, r.ttl)).collect()
        };
        // register: _pvt.example.test SOA IN; the KEY; the SIG.
        assert_eq!(parsed[0].questions, [(ZONE[6..].to_vec(), TYPE_SOA, 1)]);
        assert_eq!(fields(0, 1), [(TYPE_KEY, 1, KEY_TTL)]);
        assert_eq!((parsed[0].sections[1][0].owner.as_slice(), rdata(0, 1, 0)), (ZONE, ed(&user).public.key_rdata()));
        assert_eq!(fields(0, 2), [(sig0::TYPE_SIG, 255, 0)]);
        // add and delete: the provider KEY asked in clear, then one sealed update record each.
        for (m, class, ttl, plain) in [(2, 1, 3600, vec![192, 0, 2, 7]), (4, 255, 0, vec![])] {
            assert_eq!(dns::opcode(&seen[m - 1]), 0);
            assert_eq!(parsed[m].questions, [(ZONE.to_vec(), TYPE_SOA, 1)]);
            assert_eq!(fields(m, 0), [], "no prerequisite");
            assert_eq!(fields(m, 1), [(ENCR, class, ttl)]);
            let owner = &parsed[m].sections[1][0].owner;
            let ciphertext = wire::encrypted_labels(owner, wire::zone_suffix(owner, ZONE).unwrap()).unwrap();
            assert_eq!(
                seal::open_name(&provider, &ed(&user).public, ZONE, &ciphertext),
                Ok((1, b"\x07printer".to_vec()))
            );
            let opened = seal::open_record(&provider, &ed(&user).public, ZONE, &rdata(m, 1, 0)).unwrap();
            assert_eq!(
                opened,
                seal::OpenedRecord { rtype: 1, owner: [&b"\x07printer"[..], ZONE].concat(), rdata: plain }
            );
        }
        // query: asked over UDP, truncated, asked again over TCP, the same bytes.
        assert_eq!(seen[6], seen[7]);
        // rekey: the old KEY required; the KEYs deleted, the new one added.
        assert_eq!(fields(8, 0), [(TYPE_KEY, 1, 0)]);
        assert_eq!(rdata(8, 0, 0), ed(&user).public.key_rdata());
        assert_eq!(fields(8, 1), [(TYPE_KEY, 255, 0), (TYPE_KEY, 1, KEY_TTL)]);
        assert_eq!((rdata(8, 1, 0), rdata(8, 1, 1)), (vec![], new.public().key_rdata()));
        // destroy: the KEYs deleted, nothing else.
        assert_eq!((fields(9, 0), fields(9, 1)), (vec![], vec![(TYPE_KEY, 255, 0)]));
        assert_eq!(rdata(9, 1, 0), Vec::<u8>::new());
    }

    #[test]
    fn dns_over_tls_checks_the_gateway_certificate() {
        let made = rcgen::generate_simple_self_signed(vec!["gateway.test".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, made.cert.pem()).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![made.cert.der().clone()], key)
                .unwrap();
        let mut user = nowhere();
        let (address, thread) = gateway(provider(), ed(&user).public.clone(), 2, false, Some(Arc::new(config)));
        user.server = address;
        // Checked as its address, which the certificate does not hold: nothing is asked.
        user.tls = Some(tls_settings(Some(&ca), None, address.ip()).unwrap());
        let refused = query(&user, ENCR, b"\x07printer", 1).unwrap();
        assert!(refused.failure.as_deref().unwrap_or_default().contains("certificate"), "{refused:?}");
        user.tls = Some(tls_settings(Some(&ca), Some("gateway.test"), address.ip()).unwrap());
        let report = query(&user, ENCR, b"\x07printer", 1).unwrap();
        assert_eq!(report.failure, None);
        assert!(report.text.contains("\tIN\tA\t192.0.2.7\n"), "{}", report.text);
        assert_eq!(thread.join().unwrap().len(), 2);
        for (path, name, why) in [(dir.path().join("none.pem"), None, "--ca"), (ca, Some("a b"), "--tls-name")] {
            let error = tls_settings(Some(&path), name, address.ip()).err().unwrap().to_string();
            assert!(error.contains(why), "{error}");
        }
    }
}
