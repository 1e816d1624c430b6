//! The fuzz targets on stable, in every `cargo test`: each target's body
//! (`dotgate::fuzzing`, the very functions `fuzz/fuzz_targets/*.rs` call) runs on every file of
//! its corpus in `fuzz/corpus/<target>/` (the real DNS seeds, and inputs that once failed,
//! `regression-*`), on those seeds mutated (bits flipped, bytes set, inserted, removed, cut),
//! and on inputs generated with the structure the target reads (DNS messages with names,
//! records and OPT options, framed streams, TOML, op sequences for the in-flight model).
//!
//! A panic in a target is a failed property; proptest shrinks it and records the seed under
//! `proptest-regressions/`. `PROPTEST_CASES` scales every case count (see `cases`).

use std::path::Path;

use dotgate::fuzzing::{self, frames, inflight, upstream_match};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The case count for one property: `base`, scaled by `PROPTEST_CASES / 256` when set (so that
/// `PROPTEST_CASES=2560` runs ten times as many everywhere).
fn cases(base: u32) -> Config {
    let scale =
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse::<u32>().ok()).map_or(1.0, |n| n as f64 / 256.0);
    Config { cases: ((base as f64 * scale) as u32).max(1), ..Config::default() }
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn target(name: &str) -> fn(&[u8]) {
    fuzzing::TARGETS.iter().find(|(n, _)| *n == name).expect("a target").1
}

#[test]
fn the_dnsenc_server_seeds_reach_every_path() {
    let seen: std::collections::BTreeSet<&str> =
        corpus("dnsenc_server").iter().map(|(_, data)| dotgate::fuzzing::dnsenc_server::check(data)).collect();
    for path in ["relay", "plain", "refused", "formerr"] {
        assert!(seen.contains(path), "no dnsenc_server seed reaches {path}: {seen:?}");
    }
}

#[test]
fn every_corpus_file_passes_its_target() {
    for (name, run) in fuzzing::TARGETS {
        let files = corpus(name);
        assert!(files.iter().any(|(f, _)| f.starts_with("seed-")), "no seeds for {name}");
        for (file, data) in files {
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "fuzz/corpus/{name}/{file} fails its target");
        }
    }
}

/// The oracle itself: the strict walker reads every real message of the corpus (were it
/// stricter than real servers, the exact checks of `edns` would silently skip them).
#[test]
fn the_strict_walker_reads_every_real_message() {
    for (file, data) in corpus("edns").into_iter().filter(|(f, _)| f.starts_with("seed-")) {
        let msg = &data[3..];
        let parsed = fuzzing::wire::parse(msg).unwrap_or_else(|| panic!("{file} does not parse"));
        assert_eq!(parsed.trailing, 0, "{file}");
        assert!(fuzzing::wire::first_question_end(msg).is_some(), "{file}");
    }
}

/// The DNSENC seeds reach the verdicts that matter, so that their mutations search around them:
/// an encrypted outer query, inner queries that pass and that fail, a response envelope with
/// its option, an NSK record read from RDATA and from the draft's text.
#[test]
fn the_dnsenc_seeds_reach_the_accepting_paths() {
    use dotgate::frontend::dnsenc::wire::{self as dnsenc, CodePoints, Nsk, Outer};
    let cp = CodePoints::default();
    let seed = |target: &str, name: &str| {
        corpus(target).into_iter().find(|(f, _)| f == &format!("seed-{name}")).expect(name).1
    };
    let envelope = seed("dnsenc_outer", "query-envelope");
    let question_end = dotgate::dns::question_end(&envelope).unwrap();
    assert!(matches!(dnsenc::parse_outer(&envelope, question_end, &cp), Outer::Encrypted { key_id: 42, .. }));
    for name in ["inner-opt-then-nsk", "inner-nsk-then-opt", "inner-nsk-alone"] {
        let inner = seed("dnsenc_outer", name);
        assert!(dnsenc::check_inner(&inner, 0x1234, &cp, &mut Vec::new()).is_ok(), "{name}");
    }
    let bad = seed("dnsenc_outer", "inner-priority");
    assert!(dnsenc::check_inner(&bad, 0x1234, &cp, &mut Vec::new()).is_err());
    let answer = seed("dnsenc_outer", "response-envelope");
    assert!(dnsenc::parse_response_envelope(&answer, &cp).unwrap().option.is_some());
    assert!(Nsk::parse_rdata(&seed("dnsenc_nsk", "rdata-x25519")).is_ok());
    let text = seed("dnsenc_nsk", "text-draft-example");
    assert!(Nsk::parse_presentation(std::str::from_utf8(&text).unwrap()).is_ok());
}

/// The private-subdomain seeds reach the accepting paths: a signed message as received verifies,
/// ENCR RDATA reads with the user's tag, encrypted labels under the zone give their ciphertext.
#[test]
fn the_pvt_seeds_reach_the_accepting_paths() {
    use dotgate::frontend::pvt::{sig0, wire as pvt_wire};
    use dotgate::fuzzing::pvt::{keys, USER_ZONE};
    let seed = |target: &str, name: &str| {
        corpus(target).into_iter().find(|(f, _)| f == &format!("seed-{name}")).expect(name).1
    };
    for name in ["received-query", "received-update"] {
        let msg = &seed("pvt_sig0", name)[1..];
        let sig = sig0::find(msg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sig0::verify(msg, &sig, USER_ZONE, &keys().user.public, sig.inception, &mut Vec::new()), Ok(()));
    }
    let rdata = seed("pvt_encr", "received-to-user");
    assert_eq!(pvt_wire::parse_encr(&rdata[1..]).map(|e| e.key_tag), Some(keys().user.public.tag));
    let name = [&seed("pvt_name", "labels-user")[3..], USER_ZONE].concat();
    let at = pvt_wire::zone_suffix(&name, USER_ZONE).expect("under the zone");
    assert!(pvt_wire::encrypted_labels(&name, at).is_ok());
}

/// `gateway::uncompressed_rdata` writes out the names of RFC 1035's MD, MF, MB, MG, MR and
/// MINFO too: a server may compress them (RFC 3597 §4; BIND's towire for these types does), and
/// a compressed one sealed as it came would reach the user with pointers into the primary's
/// answer, which mean nothing in the user's (found by the fuzz target `pvt_sig0`).
#[test]
fn pvt_uncompresses_every_rfc1035_rdata_name() {
    use dotgate::frontend::pvt::gateway::uncompressed_rdata;
    // Header, then "mail.example." at 12 and "example." at 17; one name's RDATA after it.
    let mut msg = vec![0; 12];
    msg.extend_from_slice(b"\x04mail\x07example\x00");
    let start = msg.len();
    msg.extend_from_slice(&[0xc0, 12, 0xc0, 17]);
    let (one, two) = ((start, start + 2), (start, start + 4));
    let mail = b"\x04mail\x07example\x00".to_vec();
    let example = b"\x07example\x00".to_vec();
    for (rtype, rdata, want) in [
        (3, one, mail.clone()),
        (4, one, mail.clone()),
        (7, one, mail.clone()),
        (8, one, mail.clone()),
        (9, one, mail.clone()),
        (14, two, [mail.clone(), example].concat()),
    ] {
        assert_eq!(uncompressed_rdata(&msg, rtype, rdata), Some(want), "type {rtype}");
    }
}

// ---- Mutated seeds ------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    /// Copies a run of the input over another place in it (lengths and names move around).
    Copy(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        3 => (any::<usize>(), prop_oneof![Just(0u8), Just(0xff), Just(0xc0), Just(63), Just(64), any::<u8>()])
            .prop_map(|(at, b)| Mutation::Set(at, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<usize>(), 1..16usize).prop_map(|(at, n)| Mutation::Remove(at, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<usize>(), 1..32usize).prop_map(|(a, b, n)| Mutation::Copy(a, b, n)),
    ]
}

fn mutate(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = data.len();
        if len == 0 {
            if let Mutation::Insert(_, bytes) = m {
                data.extend_from_slice(bytes);
            }
            continue;
        }
        match m {
            Mutation::Flip(at, bit) => data[at % len] ^= 1 << bit,
            Mutation::Set(at, b) => data[at % len] = *b,
            Mutation::Insert(at, bytes) => {
                let at = at % (len + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(at, n) => {
                let at = at % len;
                data.drain(at..(at + n).min(len));
            }
            Mutation::Truncate(at) => data.truncate(at % len),
            Mutation::Copy(from, to, n) => {
                let (from, to) = (from % len, to % len);
                let n = (*n).min(len - from).min(len - to);
                data.copy_within(from..from + n, to);
            }
        }
    }
    data
}

/// A seed of `target`'s corpus with a few mutations.
fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, data)| data).collect();
    (0..seeds.len(), prop::collection::vec(mutation(), 0..6)).prop_map(move |(i, m)| mutate(seeds[i].clone(), &m))
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_frames(data in mutated("frames")) { target("frames")(&data) }

    #[test]
    fn mutated_queries(data in mutated("query")) { target("query")(&data) }

    #[test]
    fn mutated_upstream_answers(data in mutated("upstream_match")) { target("upstream_match")(&data) }

    #[test]
    fn mutated_edns(data in mutated("edns")) { target("edns")(&data) }

    #[test]
    fn mutated_ecs(data in mutated("ecs")) { target("ecs")(&data) }

    #[test]
    fn mutated_configs(data in mutated("config")) { target("config")(&data) }

    #[test]
    fn mutated_dnsenc_nsk(data in mutated("dnsenc_nsk")) { target("dnsenc_nsk")(&data) }

    #[test]
    fn mutated_dnsenc_server(data in mutated("dnsenc_server")) { target("dnsenc_server")(&data) }

    #[test]
    fn mutated_dnsenc_outer(data in mutated("dnsenc_outer")) { target("dnsenc_outer")(&data) }

    #[test]
    fn mutated_pvt_name(data in mutated("pvt_name")) { target("pvt_name")(&data) }

    #[test]
    fn mutated_pvt_encr(data in mutated("pvt_encr")) { target("pvt_encr")(&data) }

    #[test]
    fn mutated_pvt_sig0(data in mutated("pvt_sig0")) { target("pvt_sig0")(&data) }
}

// ---- Generated DNS messages ---------------------------------------------------------------

/// A label: mostly letters and digits (so that case folding matters), sometimes any bytes,
/// lengths up to 63 and past it.
fn label() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(prop::sample::select(b"abcXYZ019-_".to_vec()), 1..12),
        1 => prop::collection::vec(any::<u8>(), 1..64),
        1 => (60..=64usize).prop_map(|n| vec![b'L'; n]),
    ]
}

/// An uncompressed wire name; some near the 255-octet limit.
fn name() -> impl Strategy<Value = Vec<u8>> {
    let labels = prop_oneof![
        4 => prop::collection::vec(label(), 0..5),
        1 => (0..=8usize).prop_map(|extra| {
            // Four labels filling 250 to 258 octets with the root.
            let mut v = vec![vec![b'n'; 63], vec![b'n'; 63], vec![b'n'; 63]];
            v.push(vec![b'n'; 57 + extra]);
            v
        }),
    ];
    labels.prop_map(|labels| {
        let mut out = Vec::new();
        for l in labels {
            out.push(l.len() as u8);
            out.extend_from_slice(&l);
        }
        out.push(0);
        out
    })
}

fn rr_type() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(1u16),
        Just(28),
        Just(16),
        Just(15),
        Just(5),
        Just(2),
        Just(6),
        Just(41),
        Just(65),
        Just(97),
        any::<u16>()
    ]
}

fn edns_option() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![Just(11u16), Just(12), Just(10), Just(8), Just(3), any::<u16>()];
    (code, prop::collection::vec(any::<u8>(), 0..24), prop::bool::weighted(0.05)).prop_map(|(code, data, lie)| {
        let mut o = code.to_be_bytes().to_vec();
        let len = if lie { data.len() as u16 + 7 } else { data.len() as u16 };
        o.extend_from_slice(&len.to_be_bytes());
        o.extend_from_slice(&data);
        o
    })
}

/// A resource record after the question: its name a pointer to the question or its own.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let owner = prop_oneof![3 => Just(vec![0xc0, 0x0c]), 1 => name(), 1 => Just(vec![0])];
    (owner, rr_type(), any::<u16>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(
        |(owner, rtype, class, ttl, rdata)| {
            let mut r = owner;
            r.extend_from_slice(&rtype.to_be_bytes());
            r.extend_from_slice(&class.to_be_bytes());
            r.extend_from_slice(&ttl.to_be_bytes());
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
            r
        },
    )
}

/// An OPT record with some options.
fn opt_record() -> impl Strategy<Value = Vec<u8>> {
    (any::<u16>(), any::<u32>(), prop::collection::vec(edns_option(), 0..5)).prop_map(|(size, ttl, options)| {
        let rdata: Vec<u8> = options.concat();
        let mut r = vec![0, 0, 41];
        r.extend_from_slice(&size.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
        r
    })
}

/// A DNS message: header, questions, the three record sections (an OPT record usually in the
/// additional one), counts mostly right, and sometimes bytes behind.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let question = (name(), rr_type(), prop_oneof![Just(1u16), any::<u16>()]).prop_map(|(mut n, t, c)| {
        n.extend_from_slice(&t.to_be_bytes());
        n.extend_from_slice(&c.to_be_bytes());
        n
    });
    (
        any::<u16>(),
        any::<u16>(),
        prop::collection::vec(question, 0..3),
        prop::collection::vec(record(), 0..3),
        prop::collection::vec(record(), 0..2),
        prop::option::weighted(0.8, opt_record()),
        prop::collection::vec(record(), 0..2),
        prop::option::weighted(0.05, prop::collection::vec(any::<u8>(), 1..8)),
        prop::option::weighted(0.05, (0..4usize, any::<u16>())),
    )
        .prop_map(|(id, flags, questions, answers, authority, opt, additional, trailing, wrong_count)| {
            let mut counts =
                [questions.len(), answers.len(), authority.len(), additional.len() + usize::from(opt.is_some())]
                    .map(|n| n as u16);
            if let Some((which, value)) = wrong_count {
                counts[which] = value;
            }
            let mut m = id.to_be_bytes().to_vec();
            m.extend_from_slice(&flags.to_be_bytes());
            for c in counts {
                m.extend_from_slice(&c.to_be_bytes());
            }
            m.extend(questions.concat());
            m.extend(answers.concat());
            m.extend(authority.concat());
            // The OPT record first or last among the additional records.
            match (opt, id % 2 == 0) {
                (Some(opt), true) => {
                    m.extend(opt);
                    m.extend(additional.concat());
                }
                (Some(opt), false) => {
                    m.extend(additional.concat());
                    m.extend(opt);
                }
                (None, _) => m.extend(additional.concat()),
            }
            m.extend(trailing.unwrap_or_default());
            m
        })
}

/// An ECS option (RFC 7871): FAMILY IPv4 or IPv6 with a prefix in range and its ADDRESS octets
/// mostly, sometimes any family, prefix, scope or length.
fn client_subnet() -> impl Strategy<Value = Vec<u8>> {
    let family = prop_oneof![4 => Just(1u16), 4 => Just(2), 1 => any::<u16>()];
    let scope = prop_oneof![3 => Just(0u8), 1 => any::<u8>()];
    (family, any::<u8>(), scope, any::<[u8; 16]>(), prop::bool::weighted(0.1)).prop_map(
        |(family, source, scope, address, wrong_length)| {
            let source = match family {
                1 => source % 33,
                2 => source % 129,
                _ => source,
            };
            let octets = (source as usize).div_ceil(8).min(16);
            let octets = if wrong_length { (octets + 1) % 17 } else { octets };
            let mut o = vec![0, 8];
            o.extend_from_slice(&((4 + octets) as u16).to_be_bytes());
            o.extend_from_slice(&family.to_be_bytes());
            o.extend_from_slice(&[source, scope]);
            o.extend_from_slice(&address[..octets]);
            o
        },
    )
}

/// A message for the ECS editor: one question, sometimes answer records, an OPT record (mostly)
/// whose options mix client subnets with others, sometimes a record after it or bytes behind.
fn ecs_message() -> impl Strategy<Value = Vec<u8>> {
    let options = prop::collection::vec(prop_oneof![2 => client_subnet(), 3 => edns_option()], 0..4);
    (
        any::<u16>(),
        any::<u16>(),
        name(),
        rr_type(),
        prop::collection::vec(record(), 0..2),
        prop::option::weighted(0.85, (any::<u16>(), any::<u32>(), options)),
        prop::option::weighted(0.1, record()),
        prop::option::weighted(0.05, prop::collection::vec(any::<u8>(), 1..4)),
    )
        .prop_map(|(id, flags, name, qtype, answers, opt, after, trailing)| {
            let additional = u16::from(opt.is_some()) + u16::from(after.is_some());
            let mut m = id.to_be_bytes().to_vec();
            m.extend_from_slice(&flags.to_be_bytes());
            for count in [1, answers.len() as u16, 0, additional] {
                m.extend_from_slice(&count.to_be_bytes());
            }
            m.extend(name);
            m.extend_from_slice(&qtype.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend(answers.concat());
            if let Some((size, ttl, options)) = opt {
                let rdata = options.concat();
                m.extend_from_slice(&[0, 0, 41]);
                m.extend_from_slice(&size.to_be_bytes());
                m.extend_from_slice(&ttl.to_be_bytes());
                m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                m.extend(rdata);
            }
            m.extend(after.unwrap_or_default());
            m.extend(trailing.unwrap_or_default());
            m
        })
}

/// A query as a client sends it: QR=0, opcode QUERY mostly, one question mostly.
fn query() -> impl Strategy<Value = Vec<u8>> {
    (message(), prop::bool::weighted(0.9), prop::bool::weighted(0.9)).prop_map(|(mut m, is_query, opcode_query)| {
        if is_query {
            m[2] &= 0x7f;
        }
        if opcode_query {
            m[2] &= 0x87;
        }
        m
    })
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn generated_queries(msg in query()) { target("query")(&msg) }

    #[test]
    fn generated_edns(hop in any::<u8>(), idle in any::<u16>(), msg in message()) {
        let mut input = vec![hop, (idle >> 8) as u8, idle as u8];
        input.extend_from_slice(&msg);
        target("edns")(&input)
    }

    #[test]
    fn generated_ecs(control in prop::collection::vec(any::<u8>(), fuzzing::ecs::CONTROL_LEN), msg in ecs_message()) {
        let mut input = control;
        input.extend_from_slice(&msg);
        target("ecs")(&input)
    }

    #[test]
    fn generated_upstream_answers(
        control in prop::collection::vec(prop_oneof![3 => Just(0u8), 1 => any::<u8>()], upstream_match::CONTROL_LEN),
        msg in message(),
        qr in any::<bool>(),
    ) {
        let mut input = control;
        let mut msg = msg;
        if qr {
            msg[2] |= 0x80;
        }
        input.extend_from_slice(&msg);
        target("upstream_match")(&input)
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// Answers within a padding block or two of 65,535 bytes: padding that no longer fits is
    /// left out, and an answer that keepalive would push past the limit goes out unedited.
    #[test]
    fn edns_near_the_size_limit(
        hop in 0..4u8,
        total in (u16::MAX as usize - 1000)..=(u16::MAX as usize),
        opt in prop::option::of(prop::collection::vec(edns_option(), 0..3)),
    ) {
        // Header, "big.test. TXT" question, one TXT record filling up to `total`, the OPT.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, u8::from(opt.is_some())];
        m.extend_from_slice(b"\x03big\x04test\x00\x00\x10\x00\x01");
        let opt_bytes = opt.map(|options| {
            let rdata = options.concat();
            let mut r = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
            r
        });
        let fixed = m.len() + 12 + opt_bytes.as_ref().map_or(0, Vec::len);
        prop_assume!(total > fixed + 1);
        let rdlen = total - fixed;
        m.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(rdlen as u16).to_be_bytes());
        m.extend(std::iter::repeat_n(0xffu8, rdlen));
        m.extend(opt_bytes.unwrap_or_default());
        let mut input = vec![hop, 0, 100];
        input.extend_from_slice(&m);
        target("edns")(&input)
    }
}

// ---- Generated framed streams -------------------------------------------------------------

/// One frame: mostly a message with its true length, sometimes a prefix too short for DNS,
/// or the stream's end inside a prefix or a message.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 12..80).prop_map(|m| {
            let mut f = (m.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(&m);
            f
        }),
        1 => (0..12u16).prop_map(|len| len.to_be_bytes().to_vec()),
        1 => (12..2000u16, prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(len, start)| {
            let mut f = len.to_be_bytes().to_vec();
            f.extend_from_slice(&start);
            f
        }),
        1 => Just(vec![0u8]),
    ]
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn generated_frame_streams(
        frames in prop::collection::vec(frame(), 0..12),
        cap in prop_oneof![Just(0u8), Just(1), Just(2), any::<u8>()],
        release in any::<u8>(),
        pieces in prop::collection::vec(prop_oneof![Just(0u8), 1..4u8, any::<u8>()], 0..6),
    ) {
        let stream = frames.concat();
        frames::run(&frames::Input::encode(cap, release, &pieces, &stream));
    }
}

// ---- Generated config files ---------------------------------------------------------------

const KEYS: &[&str] = &[
    "listen",
    "backend",
    "cert",
    "key",
    "ticket-keys",
    "workers",
    "idle-timeout",
    "handshake-timeout",
    "upstream-timeout",
    "drain-timeout",
    "max-in-flight",
    "max-connections",
    "max-connections-per-ip",
    "upstream-sockets",
    "coalesce-window",
    "log-queries",
    "tcp-fast-open",
    "padding",
    "admin",
    "listen_port",
];

fn toml_value() -> impl Strategy<Value = String> {
    let address = prop_oneof![
        Just("127.0.0.1:853".to_owned()),
        Just("[::1]:53".to_owned()),
        Just("0.0.0.0:0".to_owned()),
        Just("unbound.dns.svc.cluster.local:53".to_owned()),
        Just("192.0.2.1".to_owned()),
        Just("[::]:853".to_owned()),
        "[a-z0-9.:\\[\\]-]{0,20}",
        "\\PC{0,12}",
    ];
    prop_oneof![
        address.clone().prop_map(|a| format!("{a:?}")),
        prop::collection::vec(address, 0..3).prop_map(|v| format!("{v:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![Just(0.0f64), Just(-0.0), Just(1e-9), Just(0.0005), Just(86_400.5), any::<f64>()]
            .prop_map(|f| format!("{f:?}")),
        Just("nan".to_owned()),
        Just("-inf".to_owned()),
        Just("true".to_owned()),
        Just("\"always\"".to_owned()),
        Just("\"sometimes\"".to_owned()),
        Just("{ a = 1 }".to_owned()),
        "\"[\\x00-\\x1f\\x7f\\u{85}\\u{2028}a]{0,6}\"",
    ]
}

fn toml_file() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        6 => (prop::sample::select(KEYS), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => "# [^\\n]{0,20}",
        1 => "\\PC{0,20}",
        1 => "[\\x00-\\x1f\\x7f=\\[\\]\"']{0,8}",
        1 => Just("[table]".to_owned()),
    ];
    let newline = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    prop::collection::vec((line, newline), 0..8)
        .prop_map(|lines| lines.into_iter().flat_map(|(l, nl)| [l, nl.to_owned()]).collect::<String>().into_bytes())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn generated_config_files(text in toml_file()) { target("config")(&text) }
}

// ---- Generated private-subdomain inputs ---------------------------------------------------

/// Labels in wire form without the root (a relative name, or the labels of an encrypted one).
fn labels() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(label(), 0..5)
        .prop_map(|labels| labels.into_iter().flat_map(|l| std::iter::once(l.len() as u8).chain(l)).collect())
}

proptest! {
    #![proptest_config(cases(512))]

    /// Encrypted names and relative names under each zone: labels mostly valid, sometimes
    /// with a count octet that counts them, sometimes a whole name with its root.
    #[test]
    fn generated_pvt_names(
        zone in any::<u8>(),
        count in any::<u8>(),
        overhead in prop_oneof![Just(50u8), any::<u8>()],
        labels in labels(),
        counted in any::<bool>(),
        tail in prop::option::weighted(0.2, name()),
    ) {
        let mut rest = labels;
        if counted && !rest.is_empty() && rest[0] < 63 {
            // The first label grows a count octet: the number of labels.
            let n = dotgate::fuzzing::wire::read_uncompressed_name(&[rest.clone(), vec![0]].concat(), 0)
                .map_or(1, |(l, _)| l.len());
            rest[0] += 1;
            rest.insert(1, n as u8);
        }
        rest.extend(tail.unwrap_or_default());
        target("pvt_name")(&[&[zone, count, overhead][..], &rest].concat())
    }

    /// Messages as received, with records of every kind and names compressed or not.
    #[test]
    fn generated_pvt_sig0_messages(msg in message()) {
        target("pvt_sig0")(&[&[0u8][..], &msg].concat())
    }

    /// ENCR RDATA as received: a known algorithm mostly, a key's tag mostly.
    #[test]
    fn generated_pvt_encr_received(
        algorithm in prop_oneof![1..=3u8, any::<u8>()],
        tag in prop_oneof![Just(0u8), Just(1), Just(2), any::<u8>()],
        sealed in prop::collection::vec(any::<u8>(), 40..120),
    ) {
        let keys = dotgate::fuzzing::pvt::keys();
        let tag = match tag {
            0 => keys.user.public.tag,
            1 => keys.provider.public.tag,
            2 => keys.stranger.public.tag,
            other => u16::from(other),
        };
        target("pvt_encr")(&[&[0u8, algorithm][..], &tag.to_be_bytes(), &sealed].concat())
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Records and names sealed and opened: owners that are names (some near 255 octets),
    /// relative labels, or bytes, cut anywhere from the RDATA that follows.
    #[test]
    fn generated_pvt_encr_round_trips(
        mode in any::<u8>(),
        algorithm in prop_oneof![4 => 1..=2u8, 1 => any::<u8>()],
        rtype in rr_type(),
        seed in any::<u8>(),
        owner in prop_oneof![name(), labels(), prop::collection::vec(any::<u8>(), 0..40)],
        cut in prop_oneof![Just(0usize), 1..4usize, any::<usize>()],
        flip in any::<[u8; 3]>(),
        rdata in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        // The owner's last `cut` octets (up to 255 left) go to the front of the RDATA.
        let at = owner.len().saturating_sub(cut).min(255);
        let (owner, rdata) = (&owner[..at], [&owner[at..], &rdata[..]].concat());
        let mut input = vec![mode | 1, algorithm];
        input.extend_from_slice(&rtype.to_be_bytes());
        input.extend_from_slice(&[seed, owner.len() as u8]);
        input.extend_from_slice(owner);
        input.extend_from_slice(&flip);
        input.extend_from_slice(&rdata);
        target("pvt_encr")(&input)
    }

    /// Messages signed and checked: any control bytes, names and records from the input.
    #[test]
    fn generated_pvt_sig0_signed(mode in any::<u8>(), rest in prop::collection::vec(any::<u8>(), 0..200)) {
        target("pvt_sig0")(&[&[mode | 1][..], &rest].concat())
    }
}

// ---- The in-flight table, driven through the relay ----------------------------------------

fn op() -> impl Strategy<Value = inflight::Op> {
    use inflight::{Op, Twist};
    let twist = prop_oneof![
        4 => Just(Twist::None),
        1 => Just(Twist::CaseFlip),
        1 => Just(Twist::WrongSource),
        1 => Just(Twist::WrongSocket),
        1 => Just(Twist::NotResponse),
        1 => Just(Twist::OtherType),
    ];
    prop_oneof![
        5 => (any::<u8>(), prop_oneof![Just(1u16), Just(28), any::<u16>()]).prop_map(|(conn, qtype)| Op::Query { conn, qtype }),
        4 => (any::<u8>(), twist, prop_oneof![Just(0u8), Just(3), any::<u8>()])
            .prop_map(|(pick, twist, rcode)| Op::Answer { pick, twist, rcode }),
        1 => any::<u8>().prop_map(|pick| Op::Replay { pick }),
        1 => (any::<u8>(), any::<u16>()).prop_map(|(socket, id)| Op::Stray { socket, id }),
        2 => (0..8u8).prop_map(|oldest| Op::Timeout { oldest }),
        1 => any::<u8>().prop_map(|conn| Op::Close { conn }),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    /// Any interleaving of queries, answers (right and wrong), replays, strays, timeouts and
    /// closes: deliveries only to the right owner, at most once, exactly once while open;
    /// `len()` as the model says; nothing left at the end.
    #[test]
    fn inflight_table_under_any_interleaving(ops in prop::collection::vec(op(), 0..80)) {
        inflight::run(&ops);
    }

    /// The same through the fuzz target's byte decoding.
    #[test]
    fn inflight_ops_from_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        inflight::run_bytes(&data);
    }
}
