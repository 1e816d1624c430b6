//! What DNSENC costs dotgate per query, by scheme, without the network: the server's whole
//! check of one query envelope (`DnsencServer::handle`: parse, decrypt, inner checks; the
//! `Relay` hand-off aside) and the sealing of its answer (`DnsencServer::seal`). Beside them,
//! the one X25519 agreement an HPKE query costs (aws-lc-rs), which no implementation of the
//! scheme can avoid: the floor under the X25519 figure of loadtest/dnsenc.sh.
//!
//!   cargo bench --bench dnsenc

mod common;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dotgate::config::Cleartext;
use dotgate::frontend::dnsenc::client;
use dotgate::frontend::dnsenc::crypto;
use dotgate::frontend::dnsenc::keys::{KeySet, ServerKey};
use dotgate::frontend::dnsenc::server::{Action, DnsencServer};
use dotgate::frontend::dnsenc::wire::CodePoints;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The answer sealed in the bench: www.example.com A, one record, with OPT (the bench zone's
/// typical answer size).
const ANSWER: &[u8] = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01\
\x03www\x07example\x03com\x00\x00\x01\x00\x01\
\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd7\x0e\
\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

fn bench(c: &mut Criterion) {
    let cp = CodePoints::default();
    let mut rng = StdRng::seed_from_u64(16);
    let mut group = c.benchmark_group("dnsenc");
    for (label, scheme) in
        [("x25519", crypto::X25519_HPKE), ("rsa2048", crypto::RSA2048_OAEP), ("rsa4096", crypto::RSA4096_OAEP)]
    {
        let key = ServerKey::generate(scheme, 10, &mut rng).unwrap();
        let nsk = key.nsk();
        let server = DnsencServer::new(cp, Cleartext::Bootstrap, KeySet::new(vec![key]).unwrap());
        let query = client::prepare(&nsk, "www.example.com", 1, 1232, false, &cp, &mut rng).unwrap();
        let mut out = Vec::new();
        let Action::Relay { sealing, .. } = server.handle(&query.envelope, false, &mut out) else {
            panic!("{label}: the query is not relayed");
        };
        group.bench_function(format!("handle_query_{label}"), |b| {
            b.iter(|| black_box(server.handle(black_box(&query.envelope), false, &mut out)))
        });
        if scheme == crypto::X25519_HPKE {
            let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
            group.bench_function("seal_answer_aes256gcm", |b| {
                b.iter(|| server.seal(&sealing, black_box(ANSWER), &mut rng, &mut scratch, &mut sealed))
            });
        }
    }
    let private = aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::X25519).unwrap();
    let peer = aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::X25519).unwrap();
    let peer_public = peer.compute_public_key().unwrap();
    group.bench_function("x25519_agreement_alone", |b| {
        b.iter(|| {
            let public =
                aws_lc_rs::agreement::UnparsedPublicKey::new(&aws_lc_rs::agreement::X25519, peer_public.as_ref());
            aws_lc_rs::agreement::agree(&private, public, aws_lc_rs::error::Unspecified, |k| Ok(k[0])).unwrap()
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
