//! The EDNS options of the TLS hop: edns-tcp-keepalive (RFC 7828) and padding (RFC 7830 with
//! RFC 8467's 468-byte blocks). Clients get them on their answers; the UDP backend never sees
//! them. The fake backend echoes the OPT record it receives, so what it was sent shows in its
//! `received()` log.

mod support;

use hickory_proto::rr::RecordType;
use support::fake_backend::find_opt;
use support::{query, query_edns, DotClient, Dotgate, FakeBackend};

const KEEPALIVE: u16 = 11;
const PADDING: u16 = 12;
const COOKIE: u16 = 10;

fn codes(options: &[(u16, Vec<u8>)]) -> Vec<u16> {
    options.iter().map(|(code, _)| *code).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_is_answered_with_the_idle_timeout_and_never_sent_upstream() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1", "--idle-timeout", "7.5"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let cookie = (COOKIE, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let q = query_edns("ka.example.", RecordType::A, 0x2222, true, false, vec![(KEEPALIVE, vec![]), cookie.clone()]);
    let answer = client.exchange(&q).await;

    let sent = find_opt(&backend.received()[0]).expect("the OPT record still goes upstream");
    assert_eq!(sent.options(), vec![cookie.clone()], "keepalive is this hop's: not for the backend");
    let options = find_opt(&answer).expect("OPT in the answer").options();
    assert!(options.contains(&cookie), "other options pass: {options:?}");
    let keepalive: Vec<_> = options.iter().filter(|(code, _)| *code == KEEPALIVE).collect();
    assert_eq!(keepalive.len(), 1, "{options:?}");
    assert_eq!(keepalive[0].1, 75u16.to_be_bytes().to_vec(), "7.5 s in units of 100 ms");

    // A query without the option gets none back.
    let plain = client.exchange(&query_edns("ka2.example.", RecordType::A, 3, true, false, vec![])).await;
    let options = find_opt(&plain).map(|o| o.options()).unwrap_or_default();
    assert!(!codes(&options).contains(&KEEPALIVE), "{options:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padding_requested_pads_answers_to_468_byte_blocks_and_is_never_sent_upstream() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    for (i, name) in ["p.example.", "a-much-longer-name-to-pad.example.", "big-2000.example."].iter().enumerate() {
        let q = query_edns(name, RecordType::A, i as u16, true, false, vec![(PADDING, vec![0; 40])]);
        let answer = client.exchange(&q).await;
        assert_eq!(answer.len() % 468, 0, "{name}: {} bytes", answer.len());
        let options = find_opt(&answer).expect("OPT").options();
        assert_eq!(codes(&options), vec![PADDING], "{name}");
        let sent = find_opt(backend.received().last().unwrap()).expect("OPT upstream");
        assert!(sent.options().is_empty(), "padding is this hop's: {:?}", sent.options());
    }
    // Unasked, nothing is padded.
    let plain = client.exchange(&query_edns("np.example.", RecordType::A, 9, true, false, vec![])).await;
    let options = find_opt(&plain).map(|o| o.options()).unwrap_or_default();
    assert!(!codes(&options).contains(&PADDING), "{options:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padding_policy_always_and_never() {
    let backend = FakeBackend::start().await;
    let always = Dotgate::start(&[backend.addr], &["--workers", "1", "--padding", "always"]);
    let mut client = DotClient::connect(always.addr).await.unwrap();
    // No EDNS at all in the query: the answer still comes padded, in an OPT record of its own.
    let answer = client.exchange(&query("al.example.", RecordType::A, 1)).await;
    assert_eq!(answer.len() % 468, 0, "{} bytes", answer.len());
    assert_eq!(codes(&find_opt(&answer).expect("OPT added").options()), vec![PADDING]);

    let never = Dotgate::start(&[backend.addr], &["--workers", "1", "--padding", "never"]);
    let mut client = DotClient::connect(never.addr).await.unwrap();
    let q = query_edns("nv.example.", RecordType::A, 2, true, false, vec![(PADDING, vec![0; 40])]);
    let answer = client.exchange(&q).await;
    assert_ne!(answer.len() % 468, 0);
    let options = find_opt(&answer).map(|o| o.options()).unwrap_or_default();
    assert!(!codes(&options).contains(&PADDING), "{options:?}");
    let sent = find_opt(backend.received().last().unwrap()).expect("OPT upstream");
    assert!(sent.options().is_empty(), "still taken off the query: {:?}", sent.options());
}
