//! DoT framing and the local query check: many messages per TLS record, messages split across
//! records, a length too short for DNS, and the queries dotgate answers itself (FORMERR,
//! NOTIMP) or refuses (a response sent by a client) without forwarding anything.

mod support;

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::{a_records, framed, parse, query, DotClient, Dotgate, FakeBackend};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_in_one_tls_record_are_all_answered() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let mut record = Vec::new();
    for id in 1..=3u16 {
        record.extend_from_slice(&framed(&query(&format!("m{id}.example."), RecordType::A, id)));
    }
    client.send_raw(&record).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(parse(&client.recv_timeout(WAIT).await.unwrap().unwrap()).id());
    }
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_split_across_records_is_reassembled() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let bytes = framed(&query("split.example.", RecordType::A, 77));
    // One byte of the length, then the rest of the length and part of the header, then the rest.
    for piece in [&bytes[..1], &bytes[1..7], &bytes[7..]] {
        client.send_raw(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = parse(&client.recv_timeout(WAIT).await.unwrap().unwrap());
    assert_eq!(answer.id(), 77);
    assert_eq!(a_records(&answer).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_shorter_than_a_dns_header_closes_the_connection() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.send_raw(&[0, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]).await.unwrap();
    assert!(client.is_closed_within(Duration::from_secs(2)).await, "a 11-byte frame must close the connection");
    assert_eq!(backend.udp_queries(), 0);
}

/// Sends `msg` and returns the parsed answer, checking nothing reached the backend.
async fn local_answer(msg: &[u8]) -> hickory_proto::op::Message {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let answer = client.exchange(msg).await;
    assert_eq!(backend.udp_queries() + backend.tcp_queries(), 0, "a locally answered query was forwarded");
    // The connection stays usable.
    client.exchange(&query("next.example.", RecordType::A, 4242)).await;
    parse(&answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_questions_get_formerr_locally() {
    let mut msg = query("one.example.", RecordType::A, 0x0a0a);
    let question = msg[12..].to_vec();
    msg.extend_from_slice(&question);
    msg[5] = 2; // QDCOUNT = 2
    let answer = local_answer(&msg).await;
    assert_eq!(answer.id(), 0x0a0a);
    assert_eq!(answer.response_code(), ResponseCode::FormErr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_question_or_a_broken_question_gets_formerr_locally() {
    let mut none = query("x.example.", RecordType::A, 0x0b0b);
    none.truncate(12);
    none[5] = 0;
    let answer = local_answer(&none).await;
    assert_eq!((answer.id(), answer.response_code()), (0x0b0b, ResponseCode::FormErr));

    let mut cut = query("broken.example.", RecordType::A, 0x0c0c);
    cut.truncate(18); // the name runs off the end
    let answer = local_answer(&cut).await;
    assert_eq!((answer.id(), answer.response_code()), (0x0c0c, ResponseCode::FormErr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opcode_other_than_query_gets_notimp_locally() {
    let mut notify = query("zone.example.", RecordType::SOA, 0x0d0d);
    notify[2] = (notify[2] & 0x87) | (4 << 3); // NOTIFY
    let answer = local_answer(&notify).await;
    assert_eq!(answer.id(), 0x0d0d);
    assert_eq!(answer.response_code(), ResponseCode::NotImp);
    let mut update = query("zone.example.", RecordType::SOA, 0x0e0e);
    update[2] = (update[2] & 0x87) | (5 << 3); // UPDATE
    assert_eq!(local_answer(&update).await.response_code(), ResponseCode::NotImp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_sent_by_a_client_closes_the_connection() {
    let backend = FakeBackend::start().await;
    let dotgate = Dotgate::start(&[backend.addr], &["--workers", "1"]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    let mut response = query("qr.example.", RecordType::A, 5);
    response[2] |= 0x80;
    client.send(&response).await.unwrap();
    assert!(client.is_closed_within(Duration::from_secs(2)).await, "QR=1 from a client must close the connection");
    assert_eq!(backend.udp_queries(), 0);
}
