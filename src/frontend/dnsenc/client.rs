//! The DNSENC reference client's core (draft §2.2, §2.4 and §3.1.1, as docs/dnsenc.md profiles
//! them): the query a client sends to a server's NSK, and whether a message that comes back
//! answers it.
//!
//! Owns: the inner query (one question, RD=1, an OPT record, the one-time NSK of §3.1.1), its
//! encryption to the server's key, the query envelope, and dotgate's rule for taking a response
//! (§2.5 is a TODO in the draft): only one whose outer ID and question are what was sent and,
//! when sealed, whose option names the inner NSK's key id, whose payload opens with the one-time
//! key, and whose inner message is a response with the inner query's ID and question. Anything
//! else is not an answer ([`accept`] says `None`): the caller ignores it and keeps waiting, so
//! that an off-path spoofer can neither answer nor make the client give up.
//!
//! Never: does I/O or reads a clock (the caller sends, waits and times out); keeps anything
//! from one query to the next; falls back to a cleartext query; puts the one-time key into an
//! error or a `Debug` string (it is wiped when the [`Query`] is dropped).

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::crypto::{self, QueryPublicKey};
use super::wire::{self, CodePoints, Nsk};
use crate::dns::{self, HEADER_LEN};

const CLASS_IN: u16 = 1;
const TYPE_OPT: u16 = 41;
/// The DO bit (RFC 3225) in the high byte of an OPT record's flags.
const DO_BIT: u8 = 0x80;

/// One query as sent, and what is needed to take its answer. The one-time response key is
/// wiped when this is dropped; `Debug` shows everything else.
pub struct Query {
    /// The query envelope to send (over TCP, behind its 2-byte length).
    pub envelope: Vec<u8>,
    /// The outer ID (equal to the inner one, as §2.2.1 asks).
    pub outer_id: u16,
    /// The outer question section: `<nonce>.dnsenc.arpa. TXT IN`.
    pub outer_question: Vec<u8>,
    /// The inner query's ID.
    pub inner_id: u16,
    /// The inner question section: the name, type and class asked for.
    pub inner_question: Vec<u8>,
    /// Bytes of the inner query, its NSK included (what the payload encrypts).
    pub inner_len: usize,
    /// The one-time key the answer is sealed with.
    pub response_key: Zeroizing<Vec<u8>>,
    /// Its scheme (aes-256 or chacha20-poly1305).
    pub response_scheme: u16,
    /// The inner NSK's key id, which the answer's DNSENC option repeats.
    pub nsk_key_id: u32,
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("envelope_len", &self.envelope.len())
            .field("outer_id", &self.outer_id)
            .field("inner_id", &self.inner_id)
            .field("inner_question", &dns::display_name(&self.inner_question))
            .field("inner_len", &self.inner_len)
            .field("response_key", &format_args!("<{} secret octets>", self.response_key.len()))
            .field("response_scheme", &self.response_scheme)
            .field("nsk_key_id", &self.nsk_key_id)
            .finish()
    }
}

/// What a response that [`accept`] takes says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The inner response, opened (of any RCODE).
    Answer(Vec<u8>),
    /// A clear TC=1 envelope: the answer did not fit; ask again over TCP with a new [`Query`].
    Truncated,
    /// A clear envelope with an error RCODE (REFUSED, FORMERR, BADCRYPT...): the full, extended
    /// RCODE.
    Rcode(u16),
}

/// The query for `name` (presentation form, the final dot optional) and `qtype`, to the server
/// whose NSK is `server`: the inner query (a random ID, RD=1, one question of class IN, an OPT
/// record advertising `udp_size` with the DO bit as `dnssec_ok`, and the inner NSK of §3.1.1 with
/// a random key id, the first answer scheme `server` offers that dotgate implements and a fresh
/// 32-byte key) encrypted to the server's key, in an envelope with a random nonce, advertising
/// `udp_size`, whose ID is the inner one. Every random byte comes from `rng`.
///
/// Refused (the error is one line): an NSK whose scheme is not a query scheme dotgate implements
/// (rsa2048, rsa4096, x25519) or whose key data is not a key of it, one that offers no answer
/// scheme dotgate implements (aes-256, chacha20-poly1305), a name that is not a domain name.
pub fn prepare(
    server: &Nsk,
    name: &str,
    qtype: u16,
    udp_size: u16,
    dnssec_ok: bool,
    cp: &CodePoints,
    rng: &mut impl rand::RngCore,
) -> Result<Query, String> {
    if !crypto::is_query_scheme(server.scheme) {
        return Err(format!(
            "the NSK's scheme {} is not a query scheme dotgate implements (rsa2048, rsa4096, x25519)",
            scheme_label(server.scheme)
        ));
    }
    let response_scheme =
        server.response_schemes.iter().copied().find(|&s| crypto::is_response_scheme(s)).ok_or_else(|| {
            "the NSK offers no answer scheme dotgate implements (aes-256, chacha20-poly1305)".to_owned()
        })?;
    let public = QueryPublicKey::new(server.scheme, &server.key).map_err(|e| format!("the NSK's key: {e}"))?;
    let qname = encode_name(name)?;

    let id = rng.next_u32() as u16;
    let mut response_key = Zeroizing::new(vec![0u8; crypto::RESPONSE_KEY_LEN]);
    rng.fill_bytes(&mut response_key);
    let mut inner_nsk = Nsk { key_id: rng.next_u32(), ..Nsk::response_key(response_scheme, response_key.to_vec()) };

    let mut inner = Zeroizing::new(Vec::with_capacity(HEADER_LEN + qname.len() + 4 + 11 + 64));
    let question_end = write_query(&mut inner, id, false, &qname, qtype, udp_size, dnssec_ok);
    let inner_question = inner[HEADER_LEN..question_end].to_vec();
    // The NSK after the OPT record: ARCOUNT 2.
    inner[11] = 2;
    inner_nsk.write_record(cp, &mut inner);
    let nsk_key_id = inner_nsk.key_id;
    inner_nsk.key.zeroize();

    let mut payload = Vec::new();
    public.encrypt(server.key_id, &inner, rng, &mut payload).map_err(|e| format!("cannot encrypt the query: {e}"))?;
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let mut envelope = Vec::new();
    wire::write_query_envelope(id, true, &nonce, udp_size, server.key_id, &payload, cp, &mut envelope);
    let question_end = dns::question_end(&envelope).ok_or("the query envelope has no question (a bug)")?;
    Ok(Query {
        outer_question: envelope[HEADER_LEN..question_end].to_vec(),
        envelope,
        outer_id: id,
        inner_id: id,
        inner_question,
        inner_len: inner.len(),
        response_key,
        response_scheme,
        nsk_key_id,
    })
}

/// Writes to `out` (cleared) a query as the client tools send it: `id`, RD (and CD when
/// `checking_disabled`), the one question `qname` (wire form) `qtype` IN, and an OPT record
/// advertising `udp_size`, with DO when `dnssec_ok` (ARCOUNT 1). Returns where the question
/// ends.
pub fn write_query(
    out: &mut Vec<u8>,
    id: u16,
    checking_disabled: bool,
    qname: &[u8],
    qtype: u16,
    udp_size: u16,
    dnssec_ok: bool,
) -> usize {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    // RD (CD); QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1 (the OPT record).
    out.extend_from_slice(&[0x01, if checking_disabled { 0x10 } else { 0 }, 0, 1, 0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    let question_end = out.len();
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&[0, 0, if dnssec_ok { DO_BIT } else { 0 }, 0, 0, 0]);
    question_end
}

/// What `response` says about `query`, or `None` when it is not a response to it: the outer ID
/// or question differ from what was sent; the envelope does not parse; it carries the DNSENC
/// option and that names another key id, does not open with the response key, or holds
/// anything but a response (QR=1) with the inner query's ID and question; or it is a clear
/// envelope that is neither TC=1 nor an error RCODE. A sealed answer is taken whatever its
/// outer TC and RCODE say (only what opens is trusted).
pub fn accept(query: &Query, response: &[u8], cp: &CodePoints) -> Option<Outcome> {
    let envelope = wire::parse_response_envelope(response, cp).ok()?;
    if envelope.id != query.outer_id || !dns::same_question(envelope.question, &query.outer_question) {
        return None;
    }
    match envelope.option {
        Some((key_id, payload)) => {
            if key_id != query.nsk_key_id {
                return None;
            }
            let inner = crypto::open_response(query.response_scheme, &query.response_key, key_id, payload).ok()?;
            let answers = inner.len() >= HEADER_LEN
                && dns::is_response(&inner)
                && dns::id(&inner) == query.inner_id
                && dns::answers_question(&inner, &query.inner_question);
            answers.then_some(Outcome::Answer(inner))
        }
        None if envelope.tc => Some(Outcome::Truncated),
        None if envelope.rcode != 0 => Some(Outcome::Rcode(envelope.rcode)),
        None => None,
    }
}

/// A domain name in presentation form (`www.example.test`, the final dot optional, `.` the
/// root; `\X` and `\DDD` escape a character) in wire form. The error is one line.
pub fn encode_name(text: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Err(format!("{text:?} is not a domain name: it is empty"));
    }
    wire::name_from_text(text.as_bytes()).map_err(|why| format!("{text:?} is not a domain name: {why}"))
}

/// A scheme by name when dotgate knows it, else by number.
fn scheme_label(scheme: u16) -> String {
    crypto::scheme_name(scheme).map_or_else(|| format!("{scheme:#06x}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cleartext;
    use crate::frontend::dnsenc::keys::KeySet;
    use crate::frontend::dnsenc::keys::ServerKey;
    use crate::frontend::dnsenc::server::{Action, DnsencServer};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const CP: CodePoints = CodePoints { nsk_type: 65301, option_code: 65050, badcrypt: 3841 };
    const A: u16 = 1;

    /// A server holding a fresh key of `scheme`, and that key's NSK as published.
    fn server(scheme: u16, rng: &mut StdRng) -> (DnsencServer, Nsk) {
        let key = ServerKey::generate(scheme, 10, rng).unwrap();
        let nsk = Nsk {
            key_id: key.key_id,
            priority: key.priority,
            reserved: 0,
            ns_name: vec![0],
            scheme,
            key: key.key.public_key_data(),
            response_schemes: key.response_schemes.clone(),
        };
        (DnsencServer::new(CP, Cleartext::Bootstrap, KeySet::new(vec![key]).unwrap()), nsk)
    }

    /// The plain answer a backend would give `query` (ID and question copied, QR=1, one A
    /// record pointing at the question).
    fn backend_answer(query: &[u8], question_end: usize) -> Vec<u8> {
        let mut answer = query[..question_end].to_vec();
        answer[2] |= 0x80;
        answer[3] = 0x80;
        answer[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 10]);
        answer
    }

    /// What `server` sends back for `query`: its own answer, or the backend's sealed.
    fn exchange(server: &DnsencServer, query: &Query, rng: &mut StdRng) -> Vec<u8> {
        let mut out = Vec::new();
        match server.handle(&query.envelope, false, &mut out) {
            Action::Answer(_) => out,
            Action::Relay { question_end, sealing } => {
                let answer = backend_answer(&out, question_end);
                let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
                server.seal(&sealing, &answer, rng, &mut scratch, &mut sealed);
                sealed
            }
            _ => panic!("the server neither answered nor relayed"),
        }
    }

    #[test]
    fn a_query_to_each_scheme_gets_its_sealed_answer() {
        let mut rng = StdRng::seed_from_u64(1);
        for scheme in [crypto::X25519_HPKE, crypto::RSA2048_OAEP] {
            let (server, nsk) = server(scheme, &mut rng);
            let query = prepare(&nsk, "www.example.test", A, 1232, true, &CP, &mut rng).unwrap();
            assert_eq!(query.outer_id, query.inner_id);
            assert_eq!(query.response_scheme, crypto::AES256_GCM, "the first scheme the NSK offers");
            let response = exchange(&server, &query, &mut rng);
            let Some(Outcome::Answer(inner)) = accept(&query, &response, &CP) else { panic!("no answer") };
            assert_eq!(dns::id(&inner), query.inner_id);
            assert_eq!(&inner[inner.len() - 4..], &[192, 0, 2, 10]);
        }
    }

    #[test]
    fn the_inner_query_is_what_the_server_relays() {
        let mut rng = StdRng::seed_from_u64(2);
        let (server, nsk) = server(crypto::X25519_HPKE, &mut rng);
        let query = prepare(&nsk, "WWW.example.test.", 28, 1400, true, &CP, &mut rng).unwrap();
        let mut out = Vec::new();
        let Action::Relay { question_end, sealing } = server.handle(&query.envelope, false, &mut out) else {
            panic!("not relayed")
        };
        assert_eq!(dns::id(&out), query.inner_id);
        assert_eq!(out[2] & 0x01, 1, "RD");
        assert_eq!(&out[HEADER_LEN..question_end], &query.inner_question[..]);
        assert_eq!(dns::display_name(&query.inner_question), "WWW.example.test.");
        // The NSK is taken off; the OPT record stays, DO set (its size capped by the server).
        let opt = crate::edns::find_opt(&out, question_end).unwrap().expect("an OPT record");
        assert_eq!(out[opt.rdlen_at - 2] & DO_BIT, DO_BIT);
        assert_eq!(u16::from_be_bytes([out[10], out[11]]), 1);
        assert_eq!(sealing.key_id, query.nsk_key_id);
        assert_eq!(&sealing.key[..], &query.response_key[..]);
    }

    /// The first answer scheme dotgate implements, in the NSK's order; an NSK that offers none,
    /// or whose query scheme dotgate lacks, is refused.
    #[test]
    fn schemes_are_chosen_or_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        let (_, mut nsk) = server(crypto::X25519_HPKE, &mut rng);
        nsk.response_schemes = vec![0x8abc, crypto::CHACHA20_POLY1305, crypto::AES256_GCM];
        let query = prepare(&nsk, "a.test", A, 1232, false, &CP, &mut rng).unwrap();
        assert_eq!(query.response_scheme, crypto::CHACHA20_POLY1305);
        nsk.response_schemes = vec![0x8abc];
        let e = prepare(&nsk, "a.test", A, 1232, false, &CP, &mut rng).unwrap_err();
        assert!(e.contains("no answer scheme"), "{e}");
        nsk.response_schemes = vec![crypto::AES256_GCM];
        nsk.scheme = crypto::AES256_GCM;
        let e = prepare(&nsk, "a.test", A, 1232, false, &CP, &mut rng).unwrap_err();
        assert!(e.contains("not a query scheme"), "{e}");
        nsk.scheme = 0x0077;
        assert!(prepare(&nsk, "a.test", A, 1232, false, &CP, &mut rng).unwrap_err().contains("0x0077"));
        nsk.scheme = crypto::RSA2048_OAEP;
        let e = prepare(&nsk, "a.test", A, 1232, false, &CP, &mut rng).unwrap_err();
        assert!(e.contains("key"), "an x25519 key as RSA: {e}");
    }

    /// Every rule of `accept`: each broken one makes a real answer `None`.
    #[test]
    fn anything_but_the_answer_to_this_query_is_ignored() {
        let mut rng = StdRng::seed_from_u64(4);
        let (server, nsk) = server(crypto::X25519_HPKE, &mut rng);
        let query = prepare(&nsk, "www.example.test", A, 1232, false, &CP, &mut rng).unwrap();
        let response = exchange(&server, &query, &mut rng);
        assert!(matches!(accept(&query, &response, &CP), Some(Outcome::Answer(_))));

        let envelope = wire::parse_response_envelope(&response, &CP).unwrap();
        let (key_id, payload) = envelope.option.unwrap();
        let question = envelope.question.to_vec();
        // A response envelope with these fields, the rest as the server wrote it.
        let rewrap = |id: u16, question: &[u8], key_id: u32, payload: &[u8]| {
            let mut out = Vec::new();
            wire::write_response_envelope(id, true, question, 0, false, Some((key_id, payload)), 1232, &CP, &mut out);
            out
        };
        assert!(accept(&query, &rewrap(query.outer_id, &question, key_id, payload), &CP).is_some(), "as sent");
        assert_eq!(accept(&query, &rewrap(query.outer_id ^ 1, &question, key_id, payload), &CP), None, "outer ID");
        let mut other_nonce = question.clone();
        other_nonce[1] = if other_nonce[1] == b'a' { b'b' } else { b'a' };
        assert_eq!(accept(&query, &rewrap(query.outer_id, &other_nonce, key_id, payload), &CP), None, "question");
        assert_eq!(accept(&query, &rewrap(query.outer_id, &question, key_id ^ 1, payload), &CP), None, "key id");
        let mut tampered = payload.to_vec();
        tampered[20] ^= 0x01;
        assert_eq!(accept(&query, &rewrap(query.outer_id, &question, key_id, &tampered), &CP), None, "payload");

        // Sealed properly with the right key, wrong inside.
        let inner = crypto::open_response(query.response_scheme, &query.response_key, key_id, payload).unwrap();
        let mut reseal = |inner: &[u8]| {
            let mut sealed = Vec::new();
            crypto::seal_response(query.response_scheme, &query.response_key, key_id, inner, &mut rng, &mut sealed)
                .unwrap();
            rewrap(query.outer_id, &question, key_id, &sealed)
        };
        assert!(accept(&query, &reseal(&inner), &CP).is_some(), "resealed as it was");
        let mut wrong_id = inner.clone();
        wrong_id[1] ^= 1;
        assert_eq!(accept(&query, &reseal(&wrong_id), &CP), None, "inner ID");
        let mut wrong_question = inner.clone();
        wrong_question[HEADER_LEN + 1] ^= 0x01;
        assert_eq!(accept(&query, &reseal(&wrong_question), &CP), None, "inner question");
        let mut wrong_type = inner.clone();
        wrong_type[HEADER_LEN + query.inner_question.len() - 3] = 28;
        assert_eq!(accept(&query, &reseal(&wrong_type), &CP), None, "inner question type");
        let mut not_response = inner.clone();
        not_response[2] &= 0x7f;
        assert_eq!(accept(&query, &reseal(&not_response), &CP), None, "inner QR=0");
        assert_eq!(accept(&query, &reseal(&inner[..8]), &CP), None, "inner shorter than a header");
        assert_eq!(accept(&query, &response[..response.len() - 1], &CP), None, "a cut envelope");
        assert_eq!(accept(&query, b"", &CP), None);

        // The answer to another query from the same client: another key, another question.
        let other = prepare(&nsk, "www.example.test", A, 1232, false, &CP, &mut rng).unwrap();
        assert_eq!(accept(&query, &exchange(&server, &other, &mut rng), &CP), None, "another query's answer");
    }

    #[test]
    fn clear_envelopes_say_truncated_or_their_rcode() {
        let mut rng = StdRng::seed_from_u64(5);
        let (server, nsk) = server(crypto::X25519_HPKE, &mut rng);
        let query = prepare(&nsk, "www.example.test", A, 1232, false, &CP, &mut rng).unwrap();
        let clear = |id: u16, rcode: u16, tc: bool| {
            let mut out = Vec::new();
            wire::write_response_envelope(id, true, &query.outer_question, rcode, tc, None, 1232, &CP, &mut out);
            out
        };
        assert_eq!(accept(&query, &clear(query.outer_id, 0, true), &CP), Some(Outcome::Truncated));
        assert_eq!(accept(&query, &clear(query.outer_id, 3841, false), &CP), Some(Outcome::Rcode(3841)));
        assert_eq!(accept(&query, &clear(query.outer_id, 5, false), &CP), Some(Outcome::Rcode(5)));
        assert_eq!(accept(&query, &clear(query.outer_id, 0, false), &CP), None, "a clear NOERROR says nothing");
        assert_eq!(accept(&query, &clear(query.outer_id ^ 1, 3841, false), &CP), None, "another ID");
        assert_eq!(accept(&query, &clear(query.outer_id ^ 1, 0, true), &CP), None, "another ID");

        // The server's own BADCRYPT, for a key it does not hold.
        let mut stranger = nsk.clone();
        stranger.key_id ^= 1;
        let query = prepare(&stranger, "www.example.test", A, 1232, false, &CP, &mut rng).unwrap();
        assert_eq!(accept(&query, &exchange(&server, &query, &mut rng), &CP), Some(Outcome::Rcode(3841)));
    }

    #[test]
    fn names_are_encoded_or_refused() {
        assert_eq!(encode_name(".").unwrap(), vec![0]);
        assert_eq!(encode_name("a.b").unwrap(), b"\x01a\x01b\x00".to_vec());
        assert_eq!(encode_name("a.b.").unwrap(), b"\x01a\x01b\x00".to_vec());
        assert_eq!(encode_name("a\\.b").unwrap(), b"\x03a.b\x00".to_vec());
        assert_eq!(encode_name("\\065\\\\").unwrap(), b"\x02A\\\x00".to_vec());
        assert!(encode_name(&"a".repeat(64)).unwrap_err().contains("63"));
        assert!(encode_name(&vec!["a".repeat(63); 4].join(".")).unwrap_err().contains("255"));
        assert_eq!(
            encode_name(&["a".repeat(63), "a".repeat(63), "a".repeat(63), "a".repeat(61)].join(".")).unwrap().len(),
            255
        );
        for bad in ["", "a..b", ".a", "a\\", "\\256"] {
            assert!(encode_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_response_key() {
        let mut rng = StdRng::seed_from_u64(6);
        let (_, nsk) = server(crypto::X25519_HPKE, &mut rng);
        let query = prepare(&nsk, "a.test", A, 1232, false, &CP, &mut rng).unwrap();
        let shown = format!("{query:?}");
        assert!(shown.contains("<32 secret octets>"), "{shown}");
        let hex: String = query.response_key.iter().map(|b| format!("{b}")).collect::<Vec<_>>().join(", ");
        assert!(!shown.contains(&hex), "{shown}");
    }
}
