//! The TLS write of answers (step ⑨ of the data path): rustls 0.23, aws-lc-rs, TLS 1.3 with
//! AES-256-GCM, on an in-memory server connection set up with dotgate's own `TlsSetup`.
//!
//! Every answer is encrypted and framed as TLS before it leaves, and per record that costs a
//! header, a content-type byte, a 16-byte tag, an AEAD seal and the call overhead. The
//! connection therefore queues all answers that are ready and writes them as one record; this
//! bench measures what that coalescing is worth. Each answer is 100 bytes of DNS plus its
//! 2-byte DoT length prefix (102 bytes written):
//!
//! - `16_records`: 16 answers, each with its own `writer().write_all` + `write_tls` (16 records);
//! - `1_record`: the same 16 answers already joined in one buffer (as the answer queue holds
//!   them), one `write_all` + `write_tls` (one record);
//! - `single_answer`: one answer alone (one record).
//!
//! Throughput is reported in answers, so criterion's per-element figure is the per-answer cost.
//! The TLS bytes go to a reused `Vec`, so socket I/O is not measured; the client never reads
//! them (only the server's write path is measured).

mod common;

use std::io::Write;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dotgate::tls::TlsSetup;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CipherSuite, ClientConfig, ClientConnection, Connection, DigitallySignedStruct, ServerConnection};

const ANSWERS: usize = 16;
const ANSWER_LEN: usize = 100;
const FRAMED_LEN: usize = 2 + ANSWER_LEN;
/// TLS 1.3 record overhead: 5-byte header, 1-byte inner content type, 16-byte AEAD tag.
const RECORD_OVERHEAD: usize = 5 + 1 + 16;

/// Accepts any server certificate: the bench's client needs no trust, only a session.
#[derive(Debug)]
struct AcceptAnyCert(CryptoProvider);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Moves whatever `from` has to send into `to`; returns the bytes moved.
fn shuttle(from: &mut Connection, to: &mut Connection) -> usize {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut rd = &bytes[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
    bytes.len()
}

/// A server connection with dotgate's TLS config whose handshake with an in-memory client is
/// complete (session ticket delivered), on TLS 1.3 with AES-256-GCM.
fn established_server() -> ServerConnection {
    let setup = TlsSetup::load(None, None).expect("self-signed TLS setup");
    let server = ServerConnection::new(setup.with_alpn.clone()).unwrap();

    let provider = CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384],
        ..aws_lc_rs::default_provider()
    };
    let verifier = Arc::new(AcceptAnyCert(provider.clone()));
    let mut client_config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![dotgate::tls::ALPN_DOT.to_vec()];
    let client = ClientConnection::new(Arc::new(client_config), ServerName::try_from("localhost").unwrap()).unwrap();

    let mut server = Connection::Server(server);
    let mut client = Connection::Client(client);
    for _ in 0..10 {
        let moved = shuttle(&mut client, &mut server) + shuttle(&mut server, &mut client);
        if moved == 0 && !server.is_handshaking() && !client.is_handshaking() {
            break;
        }
    }
    assert!(!server.is_handshaking() && !client.is_handshaking(), "handshake did not complete");
    let Connection::Server(server) = server else { unreachable!() };
    assert_eq!(server.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(server.negotiated_cipher_suite().unwrap().suite(), CipherSuite::TLS13_AES_256_GCM_SHA384);
    server
}

/// A 100-byte answer with its DoT length prefix.
fn framed_answer(n: usize) -> Vec<u8> {
    let mut framed = (ANSWER_LEN as u16).to_be_bytes().to_vec();
    framed.extend((0..ANSWER_LEN).map(|i| (i + n) as u8));
    framed
}

/// Writes `plain` as one `write_all` and drains the TLS bytes into `sink`.
fn write_record(server: &mut ServerConnection, plain: &[u8], sink: &mut Vec<u8>) {
    server.writer().write_all(plain).unwrap();
    while server.wants_write() {
        server.write_tls(sink).unwrap();
    }
}

fn bench_tls_records(c: &mut Criterion) {
    let answers: Vec<Vec<u8>> = (0..ANSWERS).map(framed_answer).collect();
    let joined: Vec<u8> = answers.concat();
    let mut sink = Vec::with_capacity(64 * 1024);

    // Check the record counts the comparison is about.
    let mut server = established_server();
    for answer in &answers {
        write_record(&mut server, answer, &mut sink);
    }
    assert_eq!(sink.len(), ANSWERS * (FRAMED_LEN + RECORD_OVERHEAD), "16 records");
    sink.clear();
    write_record(&mut server, &joined, &mut sink);
    assert_eq!(sink.len(), ANSWERS * FRAMED_LEN + RECORD_OVERHEAD, "one record");
    sink.clear();

    let mut group = c.benchmark_group("tls_records");
    group.throughput(Throughput::Elements(ANSWERS as u64));
    group.bench_function("16_answers/16_records", |b| {
        b.iter(|| {
            for answer in &answers {
                write_record(&mut server, answer, &mut sink);
            }
            sink.clear();
        })
    });
    group.bench_function("16_answers/1_record", |b| {
        b.iter(|| {
            write_record(&mut server, &joined, &mut sink);
            sink.clear();
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_answer/1_record", |b| {
        b.iter(|| {
            write_record(&mut server, &answers[0], &mut sink);
            sink.clear();
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_tls_records
}
criterion_main!(benches);
