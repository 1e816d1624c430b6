//! HTTP/2 floods against the DoH frontend (issue 18): pings, settings, resets ("rapid reset",
//! CVE-2023-44487), empty frames, window updates, oversized header lists. Each closes only the
//! flooding connection: a bystander on the same worker keeps getting answers, a client that
//! sends a few of the same frames is left alone, and /metrics says which budget was spent.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use support::h2raw::{self, H2Client};
use support::http::{get, sample};
use support::Dotgate;

/// Generous: other builds share this machine.
const T: Duration = Duration::from_secs(10);

const PING: u8 = 0x6;
const SETTINGS: u8 = 0x4;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const WINDOW_UPDATE: u8 = 0x8;
const PRIORITY: u8 = 0x2;
const END_HEADERS: u8 = 0x4;

struct Bench {
    _dotgate: Dotgate,
    _dir: tempfile::TempDir,
    doh: SocketAddr,
    admin: SocketAddr,
}

/// One worker (the flooder and the bystander share it) in front of the fake backend.
fn start(backend: SocketAddr) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let admin = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (dotgate, doh, _) =
        support::start_doh(&[backend], dir.path(), &["--workers", "1", "--admin", &admin.to_string()]);
    Bench { _dotgate: dotgate, _dir: dir, doh, admin }
}

/// A query on `h2` answered 200 with its own name.
async fn answered(h2: &mut H2Client, name: &str) {
    let stream = h2.post_dns("/dns-query", &support::query(name, RecordType::A, 0)).await.expect("send a query");
    let response = h2.response(stream, T).await.expect("an answer");
    assert_eq!(response.status, 200);
    assert_eq!(support::parse(&response.body).queries()[0].name().to_string(), name);
}

fn flood_closed(admin: SocketAddr, frame: &str) -> f64 {
    sample(&get(admin, "/metrics").1, &format!(r#"dotgate_doh_flood_closed_total{{frame="{frame}"}}"#)).unwrap_or(0.0)
}

/// `count` copies of one frame, written at once.
fn repeated(kind: u8, flags: u8, stream: u32, payload: &[u8], count: usize) -> Vec<u8> {
    h2raw::frame_bytes(kind, flags, stream, payload).repeat(count)
}

/// Floods with `flood` (after `before` frames of a harmless kind on the same connection), and
/// checks: the flooder is closed, the bystander is answered before and after, and the metric
/// for `label` counts one.
async fn flood_closes_only_the_flooder(label: &str, flood: Vec<u8>) {
    flood_closes_only_the_flooder_by(label, Some(label), flood).await
}

/// As [`flood_closes_only_the_flooder`]; `budget` is the metric that must count it (`None`
/// when h2's own limit may close the connection first).
async fn flood_closes_only_the_flooder_by(label: &str, budget: Option<&str>, flood: Vec<u8>) {
    let backend = support::FakeBackend::start().await;
    let bench = start(backend.addr);
    let mut bystander = H2Client::connect(bench.doh).await.unwrap();
    let mut flooder = H2Client::connect(bench.doh).await.unwrap();
    answered(&mut bystander, "before.example.").await;
    answered(&mut flooder, "flooder.example.").await;
    // Ignore write errors: the server may close while the flood is still being written.
    let _ = flooder.send_raw(&flood).await;
    assert!(flooder.is_closed_within(T).await, "{label} flood: the connection stayed open");
    answered(&mut bystander, "after.example.").await;
    if let Some(budget) = budget {
        assert_eq!(flood_closed(bench.admin, budget), 1.0, "{label}");
    }
    // A new connection from the same address is served: only that connection was closed.
    let mut again = H2Client::connect(bench.doh).await.unwrap();
    answered(&mut again, "again.example.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_closes_only_its_connection() {
    flood_closes_only_the_flooder("ping", repeated(PING, 0, 0, &[1; 8], 1_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_closes_only_its_connection() {
    flood_closes_only_the_flooder("settings", repeated(SETTINGS, 0, 0, &[], 500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_flood_closes_only_its_connection() {
    flood_closes_only_the_flooder("other", repeated(PRIORITY, 0, 1, &[0, 0, 0, 0, 16], 5_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_update_flood_closes_only_its_connection() {
    flood_closes_only_the_flooder("other", repeated(WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes(), 5_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_data_frame_flood_closes_only_its_connection() {
    // A POST whose body never comes: empty DATA frames on its stream, none ending it.
    let mut open = h2raw::frame_bytes(
        HEADERS,
        END_HEADERS,
        101,
        &h2raw::header_block(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/dns-query"),
            (":authority", "localhost"),
            ("content-type", "application/dns-message"),
        ]),
    );
    open.extend(repeated(DATA, 0, 101, &[], 5_000));
    // h2 (0.4.21+) closes this itself: one empty frame per stream is allowed, more are charged
    // to its own limit, which may come before the "other" budget.
    flood_closes_only_the_flooder_by("empty data", None, open).await;
}

/// Rapid reset: streams opened and reset at once, over and over. h2's own limit on streams reset
/// before they are answered (a GOAWAY) or the reset budget closes the connection, whichever
/// comes first; both close that connection only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_closes_only_its_connection() {
    let backend = support::FakeBackend::start().await;
    let bench = start(backend.addr);
    let mut bystander = H2Client::connect(bench.doh).await.unwrap();
    let mut flooder = H2Client::connect(bench.doh).await.unwrap();
    answered(&mut bystander, "before.example.").await;
    let query = support::query("delay-200.example.", RecordType::A, 0);
    let path = format!("/dns-query?dns={}", base64_url(&query));
    let mut flood = Vec::new();
    for i in 0..2_000u32 {
        let stream = 2 * i + 1;
        let fields = flooder.request_fields("GET", &path);
        flood.extend(h2raw::frame_bytes(HEADERS, END_HEADERS | 0x1, stream, &h2raw::header_block(&fields)));
        flood.extend(h2raw::frame_bytes(0x3, 0, stream, &8u32.to_be_bytes()));
    }
    let _ = flooder.send_raw(&flood).await;
    assert!(flooder.is_closed_within(T).await, "rapid reset: the connection stayed open");
    answered(&mut bystander, "after.example.").await;
    // Nothing like 2,000 queries reached the backend: the flood was cut early.
    assert!(backend.udp_queries() < 500, "{} queries relayed", backend.udp_queries());
}

/// A client that sends a few pings, settings and resets, as browsers do, is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_control_frames_are_fine() {
    let backend = support::FakeBackend::start().await;
    let bench = start(backend.addr);
    let mut h2 = H2Client::connect(bench.doh).await.unwrap();
    for round in 0..5u8 {
        h2.ping([round; 8], false).await.unwrap();
        h2.settings(&[(h2raw::SETTINGS_MAX_CONCURRENT_STREAMS, 100)]).await.unwrap();
        let cancelled =
            h2.post_dns("/dns-query", &support::query("delay-500.example.", RecordType::A, 0)).await.unwrap();
        h2.rst_stream(cancelled, 8).await.unwrap();
        h2.window_update(0, 1_000).await.unwrap();
        answered(&mut h2, &format!("round{round}.example.")).await;
    }
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
    for frame in ["ping", "settings", "rst_stream", "other"] {
        assert_eq!(flood_closed(bench.admin, frame), 0.0, "{frame}");
    }
}

/// A header list that decodes to more than the cap (16 KiB) from a small block: that request
/// fails (431 or a reset stream) and the connection goes on. A header block over the cap before
/// decoding closes the connection, and only it. So does a block that leans on HPACK's dynamic
/// table, which dotgate sets to 0 (the decompression-bomb form of the attack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_lists_fail_their_request_or_close_their_connection() {
    let backend = support::FakeBackend::start().await;
    let bench = start(backend.addr);
    let mut bystander = H2Client::connect(bench.doh).await.unwrap();
    let mut h2 = H2Client::connect(bench.doh).await.unwrap();
    // 600 one-octet fields: 3,000 octets of block, a list of 20,400 as HTTP/2 counts it (each
    // field's name and value plus 32).
    let mut fields = h2.request_fields("GET", "/dns-query?dns=AAABAAABAAAAAAAAAAABAAE");
    fields.extend((0..600).map(|_| ("a".to_owned(), "b".to_owned())));
    let block = h2raw::header_block(&fields);
    assert!(block.len() < 16_384);
    let stream = h2.next_stream_id();
    h2.send_frame(HEADERS, END_HEADERS | 0x1, stream, &block).await.unwrap();
    match h2.response(stream, T).await {
        Ok(response) => assert_eq!(response.status, 431),
        Err(e) => assert!(e.to_string().contains("reset"), "{e}"),
    }
    answered(&mut h2, "same-connection.example.").await;

    // 20,000 octets of header block, in a HEADERS and a CONTINUATION.
    let mut fields = h2.request_fields("GET", "/dns-query?dns=AAABAAABAAAAAAAAAAABAAE");
    fields.push(("x-padding".to_owned(), "x".repeat(20_000)));
    let block = h2raw::header_block(&fields);
    let (first, rest) = block.split_at(16_000);
    let stream = h2.next_stream_id();
    let mut frames = h2raw::frame_bytes(HEADERS, 0x1, stream, first);
    frames.extend(h2raw::frame_bytes(0x9, END_HEADERS, stream, rest));
    let _ = h2.send_raw(&frames).await;
    assert!(h2.is_closed_within(T).await, "a 20 KB header block: the connection stayed open");
    answered(&mut bystander, "bystander.example.").await;
    assert_eq!(flood_closed(bench.admin, "headers"), 1.0);

    // 4,000 octets into the dynamic table (literal with incremental indexing), then referenced
    // four times (index 62, one octet each): 20 KB from a 4 KB block, if the table held it.
    // Ours holds nothing once the client has our SETTINGS: the reference is a compression
    // error, which closes that connection.
    let mut h2 = H2Client::connect(bench.doh).await.unwrap();
    let fields = h2.request_fields("GET", "/dns-query?dns=AAABAAABAAAAAAAAAAABAAE");
    let mut block = h2raw::header_block(&fields);
    block.push(0x40);
    h2raw::hpack_string(b"x-pad", &mut block);
    h2raw::hpack_string("x".repeat(4_000).as_bytes(), &mut block);
    block.extend([0xbe; 4]);
    let stream = h2.next_stream_id();
    h2.send_frame(HEADERS, END_HEADERS | 0x1, stream, &block).await.unwrap();
    let goaway = h2.goaway_then_close(T).await.expect("an index into the emptied table: the connection stayed open");
    assert_eq!(goaway.map(|(_, code)| code), Some(0x9), "a GOAWAY with COMPRESSION_ERROR");
    answered(&mut bystander, "bystander-again.example.").await;
}

fn base64_url(octets: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(octets)
}
