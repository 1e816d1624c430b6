//! DoT framing (step ③ of the data path): finding complete length-prefixed queries in what one
//! read brought in, and length-prefixing each answer into the connection's outbound buffer.
//!
//! Both run once per query, on every query: `complete_message_len` is called once per frame
//! plus once more to learn that the rest is partial, and `append_framed` copies each answer
//! into the buffer that leaves in one TLS record. A pipelining client sends many queries per
//! read, so the walk is measured over 1, 16 and 64 frames; answers are measured at 100 bytes
//! (a typical A/AAAA answer) and 1,232 bytes (the EDNS buffer size most resolvers cap at).

mod common;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dotgate::frontend::dot::framing::{append_framed, complete_message_len, PREFIX_LEN};

/// A 44-byte query: www.example.com A with an EDNS OPT record.
const QUERY: &[u8] = b"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\
\x03www\x07example\x03com\x00\x00\x01\x00\x01\
\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// `frames` framed queries back to back, as one read from a pipelining client brings them.
fn framed_queries(frames: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for _ in 0..frames {
        append_framed(&mut buf, QUERY);
    }
    buf
}

/// Walks every complete frame in `buf` the way the connection's reader does; returns the count.
fn walk(buf: &[u8]) -> usize {
    let mut pos = 0;
    let mut count = 0;
    while let Ok(Some(len)) = complete_message_len(&buf[pos..]) {
        pos += PREFIX_LEN + len;
        count += 1;
    }
    count
}

fn bench_complete_message_len(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing/complete_message_len");
    for frames in [1usize, 16, 64] {
        let buf = framed_queries(frames);
        assert_eq!(walk(&buf), frames);
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_with_input(BenchmarkId::new("walk_frames", frames), &buf, |b, buf| b.iter(|| walk(black_box(buf))));
    }
    group.finish();
}

fn bench_append_framed(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing/append_framed");
    for size in [100usize, 1232] {
        let answer = vec![0xabu8; size];
        // Reused like the connection's outbound buffer: capacity stays, only the copy is paid.
        let mut out = Vec::with_capacity(PREFIX_LEN + size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("answer_bytes", size), &answer, |b, answer| {
            b.iter(|| {
                out.clear();
                append_framed(&mut out, black_box(answer));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_complete_message_len, bench_append_framed
}
criterion_main!(benches);
