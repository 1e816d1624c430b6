//! Fuzz target `dnsenc_server`: the DNSENC server's whole check (`frontend::dnsenc::server`,
//! steps 1 to 4 of §2.3 as docs/dnsenc.md profiles them) and the sealing of an answer, with a
//! fixed X25519 key (tests/vectors/dnsenc/keys/x25519.key, key id 1003).
//!
//! Input: the first byte chooses how the rest is used. Even: the rest is a message as a client
//! sends it (over TCP when bit 1 is set). Odd: the rest is an inner plaintext, encrypted to the
//! key (with a fixed seed) and put in a well-formed envelope, so that the checks after
//! decryption see arbitrary plaintexts.
//!
//! Invariants, on any input: no panic. What the server answers itself is a response with the
//! message's ID (QR=1). A sealed query (odd inputs) is never BADCRYPT: it decrypts. A query let
//! through to the relay is a query `dns::check_query` relays, with no record of the NSK type
//! left, from a message under `dnsenc.arpa.` (or a plain one the bootstrap policy relays); the
//! answer sealed for it opens with the client's key to the answer given, and is never larger
//! than the client's size unless it is the clear TC=1 envelope.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::MAX_MESSAGE;
use crate::config::Cleartext;
use crate::dns::{self, QueryVerdict};
use crate::frontend::dnsenc::crypto;
use crate::frontend::dnsenc::keys::{KeySet, ServerKey};
use crate::frontend::dnsenc::server::{Action, DnsencServer, Verdict};
use crate::frontend::dnsenc::wire::{self, CodePoints};

const KEY_FILE: &str = include_str!("../../tests/vectors/dnsenc/keys/x25519.key");

thread_local! {
    static SERVER: DnsencServer = {
        let key = ServerKey::parse_file(KEY_FILE).expect("the vector key parses");
        DnsencServer::new(CodePoints::default(), Cleartext::Bootstrap, KeySet::new(vec![key]).expect("one key"))
    };
}

pub fn run(data: &[u8]) {
    check(data);
}

/// [`run`], saying which way the input went: "drop", "relay", "plain", or the label of the
/// server's own answer ("refused", "formerr", "badcrypt"), for the test that the seeds reach
/// every path.
pub fn check(data: &[u8]) -> &'static str {
    let Some((&mode, rest)) = data.split_first() else { return "drop" };
    let rest = &rest[..rest.len().min(MAX_MESSAGE)];
    SERVER.with(|server| {
        let cp = server.codepoints;
        let mut rng = StdRng::seed_from_u64(u64::from(mode));
        let (msg, sealed) = if mode & 1 == 1 {
            let keys = server.keys();
            let key = keys.get(1003).expect("key 1003");
            let public = key.key.public_key().expect("its public key");
            let mut payload = Vec::new();
            public.encrypt(1003, rest, &mut rng, &mut payload).expect("X25519 encrypts anything");
            let id = if rest.len() >= 2 { u16::from_be_bytes([rest[0], rest[1]]) } else { 0 };
            let mut msg = Vec::new();
            wire::write_query_envelope(id, true, &[9; 16], 1232, 1003, &payload, &cp, &mut msg);
            (msg, true)
        } else {
            (rest.to_vec(), false)
        };
        let over_tcp = mode & 2 != 0;
        let mut out = Vec::new();
        match server.handle(&msg, over_tcp, &mut out) {
            Action::Drop => {
                assert!(!sealed, "a sealed envelope is a query");
                "drop"
            }
            Action::Answer(verdict) => {
                assert!(out.len() >= dns::HEADER_LEN && dns::is_response(&out), "{verdict:?}: a response");
                assert_eq!(dns::id(&out), dns::id(&msg), "{verdict:?}: the message's ID");
                assert!(!(sealed && verdict == Verdict::Badcrypt), "a sealed query decrypts");
                verdict.label()
            }
            Action::RelayPlain { question_end } => {
                assert!(!sealed);
                assert!(
                    matches!(dns::check_query(&msg), QueryVerdict::Relay { question_end: end } if end == question_end)
                );
                "plain"
            }
            Action::Relay { question_end, sealing } => {
                assert!(
                    matches!(dns::check_query(&out), QueryVerdict::Relay { question_end: end } if end == question_end)
                );
                assert_eq!(dns::id(&out), dns::id(&msg), "the inner ID is the outer ID");
                // An answer: the relayed query itself with QR set, sealed and opened again.
                let mut answer = out.clone();
                answer[2] |= 0x80;
                let (mut scratch, mut sealed_out) = (Vec::new(), Vec::new());
                let truncated = server.seal(&sealing, &answer, &mut rng, &mut scratch, &mut sealed_out);
                let envelope = wire::parse_response_envelope(&sealed_out, &cp).expect("an envelope");
                assert_eq!((envelope.id, envelope.tc), (dns::id(&msg), truncated));
                if truncated {
                    assert!(envelope.option.is_none());
                } else {
                    assert!(sealed_out.len() <= sealing.max_size);
                    let (key_id, payload) = envelope.option.expect("the option");
                    let opened = crypto::open_response(sealing.scheme, &sealing.key, key_id, payload);
                    assert_eq!(opened.expect("opens with the client's key"), answer);
                }
                "relay"
            }
        }
    })
}
