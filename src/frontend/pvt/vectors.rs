//! The test vectors of tests/vectors/pvt/messages.txt: a query, an UPDATE and an answer made
//! with fixed keys, a seeded RNG, a fixed ID and a fixed time, byte for byte, so that another
//! implementation of the profile (docs/pvt.md) can check itself against dotgate's, and a change
//! of dotgate's bytes is seen. Each is also read back the other side's way: the gateway checks
//! the query's and the UPDATE's SIG(0) and opens their names and records; the user opens the
//! answer.
//!
//! Rewrite only when the profile deliberately changes:
//!   cargo test --lib pvt::vectors::write_vectors -- --ignored

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::client::{self, User};
use super::gateway::{push_record, AnswerSealing};
use super::keys::{KeyPair, UserKeyPair, UserPublic};
use super::primary::CLASS_IN;
use super::wire::DEFAULT_TYPE_ENCR;
use super::{seal, sig0, wire};
use crate::hpke::tests::{hex, unhex};
use crate::message;

const PROVIDER_SEED: [u8; 32] = [0x11; 32];
const USER_SEED: [u8; 32] = [0x22; 32];
const ZONE: &str = "alice._pvt.example.com.";
/// 2027-01-15 08:00:00 UTC: the SIG(0) inception of both requests.
const NOW: u32 = 1_800_000_000;

fn file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/pvt/messages.txt")
}

/// The user's key pair of [`keys`].
fn user_pair(user: &User) -> &KeyPair {
    match &user.key {
        UserKeyPair::Ed25519(pair) => pair,
        UserKeyPair::Rsa(_) => unreachable!("the vectors' user is Ed25519"),
    }
}

fn keys() -> (KeyPair, User) {
    let provider = KeyPair::from_seed(&PROVIDER_SEED).unwrap();
    let zone = crate::frontend::dnsenc::wire::name_from_text(ZONE.as_bytes()).unwrap();
    let user = User {
        server: "127.0.0.1:53".parse().unwrap(),
        tls: None,
        zone,
        key: UserKeyPair::Ed25519(KeyPair::from_seed(&USER_SEED).unwrap()),
    };
    (provider, user)
}

/// The primary's answer to `www.alice._pvt.example.com. A`: one A record.
fn primary_answer(user: &User) -> Vec<u8> {
    let mut msg = vec![0x77, 0x77, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
    let mut www = b"\x03www".to_vec();
    www.extend_from_slice(&user.zone);
    msg.extend_from_slice(&www);
    msg.extend_from_slice(&[0, 1, 0, 1]);
    push_record(&mut msg, &[0xc0, 12], 1, CLASS_IN, 300, &[192, 0, 2, 1]);
    msg
}

/// The three messages, named, in the file's order.
fn compute() -> Vec<(&'static str, Vec<u8>)> {
    let (provider, user) = keys();
    let query = client::query_request(
        &mut StdRng::seed_from_u64(1),
        0x1234,
        NOW,
        &user,
        &provider.public,
        DEFAULT_TYPE_ENCR,
        b"\x03www",
        1,
    )
    .unwrap();
    let record = client::parse_record("www 300 A 192.0.2.1", &user.zone, true).unwrap();
    let update = client::change_request(
        &mut StdRng::seed_from_u64(2),
        0x2345,
        &user,
        &provider.public,
        DEFAULT_TYPE_ENCR,
        &record,
    )
    .unwrap();
    let update = client::signed(update, &user.key, &user.zone, NOW).unwrap();
    let question_end = crate::dns::question_end(&query).unwrap();
    let sealing = AnswerSealing {
        provider: &provider,
        user: &UserPublic::Ed25519(user_pair(&user).public.clone()),
        user_zone: &user.zone,
        head: [query[0], query[1], query[2], query[3]],
        question: &query[crate::dns::HEADER_LEN..question_end],
        type_encr: DEFAULT_TYPE_ENCR,
        edns: true,
        max_size: 1232,
    };
    let mut answer = Vec::new();
    sealing.seal(&mut StdRng::seed_from_u64(3), &primary_answer(&user), || None, &mut answer);
    vec![("query", query), ("update", update), ("answer", answer)]
}

fn render(vectors: &[(&str, Vec<u8>)]) -> String {
    let mut out = format!(
        "# dotgate private-subdomain test vectors (docs/pvt.md): exact messages for fixed keys, a seeded RNG,\n\
         # fixed IDs and a fixed time. Checked by `cargo test --lib pvt::vectors`.\n\
         #\n\
         # provider seed: {} (Ed25519 seed; KEY 0 3 15 of its public key at _pvt.example.com.)\n\
         # user seed:     {} (zone {ZONE})\n\
         # time:          {NOW} (SIG(0) inception; expiration 300 s later)\n\
         # RNG:           rand 0.9 StdRng::seed_from_u64(N), N = 1 (query), 2 (update), 3 (answer):\n\
         #                every HPKE ephemeral key is drawn from it, in the order the message uses them.\n\
         # query:  `www A`, ID 0x1234, ENCR type {DEFAULT_TYPE_ENCR}, OPT 1232, SIG(0) by the user.\n\
         # update: `add www 300 A 192.0.2.1`, ID 0x2345, SIG(0) by the user.\n\
         # answer: the gateway's answer to the query, the primary having answered www A 192.0.2.1 TTL 300.\n",
        hex(&PROVIDER_SEED),
        hex(&USER_SEED),
    );
    for (name, bytes) in vectors {
        out.push_str(&format!("\n{name} = {}\n", hex(bytes)));
    }
    out
}

#[test]
fn file_matches_and_each_message_reads_back() {
    let written = std::fs::read_to_string(file()).expect("tests/vectors/pvt/messages.txt");
    let computed = compute();
    assert_eq!(written, render(&computed), "recomputed (rewrite with --ignored write_vectors only on purpose)");
    let from_file = |name: &str| {
        written.lines().find_map(|l| l.strip_prefix(&format!("{name} = "))).map(unhex).expect("in the file")
    };
    let (provider, user) = keys();
    let mut scratch = Vec::new();

    // The query: the user's SIG(0), and the name opens to `www A` for the provider.
    let query = from_file("query");
    let sig = sig0::find(&query).unwrap();
    assert_eq!(sig0::verify(&query, &sig, &user.zone, &user_pair(&user).public, NOW + 10, &mut scratch), Ok(()));
    let end = crate::dns::question_end(&query).unwrap();
    let qname = &query[12..end - 4];
    let at = wire::zone_suffix(qname, &user.zone).unwrap();
    let ciphertext = wire::encrypted_labels(qname, at).unwrap();
    assert_eq!(
        seal::open_name(&provider, &user_pair(&user).public, &user.zone, &ciphertext),
        Ok((1, b"\x03www".to_vec()))
    );

    // The UPDATE: signed, and its one record opens to the A record.
    let update = from_file("update");
    let sig = sig0::find(&update).unwrap();
    assert_eq!(sig0::verify(&update, &sig, &user.zone, &user_pair(&user).public, NOW, &mut scratch), Ok(()));
    let parsed = message::parse(&update);
    let record = &parsed.sections[1][0];
    assert_eq!((record.rtype, record.class, record.ttl), (DEFAULT_TYPE_ENCR, CLASS_IN, 300));
    let opened =
        seal::open_record(&provider, &user_pair(&user).public, &user.zone, &update[record.rdata.0..record.rdata.1])
            .unwrap();
    let mut www = b"\x03www".to_vec();
    www.extend_from_slice(&user.zone);
    assert_eq!((opened.rtype, opened.owner.clone(), opened.rdata), (1, www.clone(), vec![192, 0, 2, 1]));

    // The answer: one ENCR owned by the question's name, which the user opens.
    let answer = from_file("answer");
    let parsed = message::parse(&answer);
    assert_eq!(&answer[..2], &[0x12, 0x34]);
    let record = &parsed.sections[0][0];
    assert_eq!(record.owner, qname);
    let opened =
        seal::open_record(user_pair(&user), &provider.public, &user.zone, &answer[record.rdata.0..record.rdata.1])
            .unwrap();
    assert_eq!((opened.rtype, opened.owner, opened.rdata), (1, www, vec![192, 0, 2, 1]));
}

#[test]
#[ignore = "writes tests/vectors/pvt/messages.txt; run by hand when the profile deliberately changes"]
fn write_vectors() {
    std::fs::create_dir_all(file().parent().unwrap()).unwrap();
    std::fs::write(file(), render(&compute())).unwrap();
}
