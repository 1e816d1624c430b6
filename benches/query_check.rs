//! The DNS checks on the per-query path, all in `dotgate::dns`:
//!
//! - `check_query` (step ④): every client message, before anything else is done with it. A
//!   typical query, one with the longest legal name (the name walk is the only loop), and
//!   garbage (which must be refused at least as cheaply as a good query is accepted).
//! - `set_id` (step ⑤): the upstream ID written into every relayed query.
//! - `answers_question` / `same_question` (step ⑦): every backend answer is matched against the
//!   question asked, names compared case-insensitively; the answer's name is in mixed case, as
//!   resolvers that echo 0x20-randomised names send it.
//! - `write_local_answer`: the SERVFAIL (or FORMERR/NOTIMP) dotgate makes itself, written into a
//!   reused buffer, as the answer queue does.

mod common;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dotgate::dns::{self, QueryVerdict, HEADER_LEN};

/// A 44-byte query: www.example.com A with an EDNS OPT record (UDP size 1232).
const QUERY: &[u8] = b"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\
\x03www\x07example\x03com\x00\x00\x01\x00\x01\
\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// The answer to [`QUERY`] with the name in mixed case: one A record (compressed owner name)
/// and the OPT record.
const ANSWER: &[u8] = b"\xbe\xef\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01\
\x03WwW\x07ExAmPlE\x03cOm\x00\x00\x01\x00\x01\
\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd7\x0e\
\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// A query whose name is 255 bytes on the wire, the longest RFC 1035 allows.
fn longest_name_query() -> Vec<u8> {
    let mut msg = QUERY[..HEADER_LEN].to_vec();
    msg[11] = 0; // no OPT
    for len in [63u8, 63, 63, 61] {
        msg.push(len);
        msg.extend(std::iter::repeat_n(b'a', len as usize));
    }
    msg.push(0);
    assert_eq!(msg.len() - HEADER_LEN, 255);
    msg.extend_from_slice(&[0, 1, 0, 1]);
    msg
}

/// 44 pseudo-random bytes (a fixed xorshift sequence). QR, opcode and QDCOUNT are forced to
/// those of a query so that the check gets as far as the name walk: fully random bytes would
/// mostly stop at the QR bit, which measures nothing.
fn garbage() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut msg: Vec<u8> = (0..QUERY.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    msg[2] &= 0x07; // QR=0, opcode QUERY
    msg[4] = 0;
    msg[5] = 1;
    msg
}

fn bench_check_query(c: &mut Criterion) {
    let long = longest_name_query();
    let junk = garbage();
    assert_eq!(dns::check_query(QUERY), QueryVerdict::Relay { question_end: 33 });
    assert_eq!(dns::check_query(&long), QueryVerdict::Relay { question_end: long.len() });
    assert_eq!(dns::check_query(&junk), QueryVerdict::Answer(dns::rcode::FORMERR));

    let mut group = c.benchmark_group("dns/check_query");
    group.bench_function("typical_www_example_com_edns", |b| b.iter(|| dns::check_query(black_box(QUERY))));
    group.bench_function("name_255_bytes", |b| b.iter(|| dns::check_query(black_box(&long))));
    group.bench_function("garbage", |b| b.iter(|| dns::check_query(black_box(&junk))));
    group.finish();
}

fn bench_set_id(c: &mut Criterion) {
    let mut msg = QUERY.to_vec();
    let mut id = 0u16;
    c.bench_function("dns/set_id", |b| {
        b.iter(|| {
            id = id.wrapping_add(0x9e37);
            dns::set_id(black_box(&mut msg), black_box(id));
        })
    });
}

fn bench_answer_matching(c: &mut Criterion) {
    let asked = &QUERY[HEADER_LEN..33];
    assert!(dns::answers_question(ANSWER, asked));
    let answered = &ANSWER[HEADER_LEN..33];
    assert!(dns::same_question(answered, asked));

    let mut group = c.benchmark_group("dns/answer_matching");
    // What the relay calls: QDCOUNT, the name walk of the answer, then the comparison.
    group.bench_function("answers_question_mixed_case", |b| {
        b.iter(|| dns::answers_question(black_box(ANSWER), black_box(asked)))
    });
    // The comparison alone, on already-sliced questions.
    group.bench_function("same_question_mixed_case", |b| {
        b.iter(|| dns::same_question(black_box(answered), black_box(asked)))
    });
    group.finish();
}

fn bench_write_local_answer(c: &mut Criterion) {
    let mut out = Vec::with_capacity(512);
    c.bench_function("dns/write_local_answer_servfail", |b| {
        b.iter(|| {
            out.clear();
            dns::write_local_answer(black_box(QUERY), 0x1234, dns::rcode::SERVFAIL, &mut out);
            black_box(out.len())
        })
    });
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_check_query, bench_set_id, bench_answer_matching, bench_write_local_answer
}
criterion_main!(benches);
