//! Wake-up pacing as a client sees it, with a real Unbound behind dotgate: a client that asks
//! one question at a time is never made to wait for a linger that gathers nothing, and many
//! clients at a high rate share wake-ups (`src/runtime/pacing.rs`).

mod support;

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::http::metric;
use support::ports::free_addr;
use support::{a_records, parse, query, DotClient, Dotgate, Unbound};

async fn unbound() -> Unbound {
    tokio::task::spawn_blocking(Unbound::start).await.unwrap()
}

/// Median of one client's round trips, asking `n` questions one after another.
async fn ping_pong(client: &mut DotClient, n: u16) -> Duration {
    let mut times = Vec::with_capacity(usize::from(n));
    for id in 0..n {
        let started = Instant::now();
        let answer = parse(&client.exchange(&query("www.example.test.", RecordType::A, id)).await);
        times.push(started.elapsed());
        assert_eq!(a_records(&answer), vec![support::unbound::WWW_A]);
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_one_question_at_a_time_is_not_made_to_wait() {
    let unbound = unbound().await;
    // A window far longer than a round trip: a linger would show in every answer.
    let window = "0.002";
    let admin = free_addr();
    let dotgate = Dotgate::start(
        &[unbound.addr],
        &["--workers", "1", "--coalesce-window", window, "--admin", &admin.to_string()],
    );
    // Enough other connections for the worker to consider lingering at all; they stay quiet.
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(DotClient::connect(dotgate.addr).await.unwrap());
    }
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    ping_pong(&mut client, 200).await; // warm-up: Unbound's cache, the pacer's estimates
    let (wakeups, lingers) =
        (metric(admin, "dotgate_worker_wakeups_total"), metric(admin, "dotgate_worker_lingers_total"));
    let median = ping_pong(&mut client, 2000).await;
    let wakeups = metric(admin, "dotgate_worker_wakeups_total") - wakeups;
    let lingers = metric(admin, "dotgate_worker_lingers_total") - lingers;

    // Without pacing, on the same machine, for the yardstick.
    let plain = Dotgate::start(&[unbound.addr], &["--workers", "1", "--coalesce-window", "0"]);
    let mut plain_client = DotClient::connect(plain.addr).await.unwrap();
    ping_pong(&mut plain_client, 200).await;
    let plain_median = ping_pong(&mut plain_client, 2000).await;

    // Lingering is tried once in 64 rounds while it does not pay; each probe is one round.
    assert!(
        lingers <= wakeups / 32.0 + 2.0,
        "lingered {lingers} times in {wakeups} wake-ups for one client asking one question at a time"
    );
    assert!(
        median <= plain_median * 3 / 2 + Duration::from_micros(300),
        "median round trip {median:?} with a {window} s window, {plain_median:?} without one"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_a_high_rate_share_wake_ups() {
    let unbound = unbound().await;
    let admin = free_addr();
    // A window that lets 24,000 qps linger (the default starts at about 30,000).
    let dotgate = Dotgate::start(
        &[unbound.addr],
        &["--workers", "1", "--coalesce-window", "0.0005", "--admin", &admin.to_string()],
    );
    let before = metric(admin, "dotgate_worker_lingers_total");
    let clients = 48;
    let per_client = 2500u16;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let addr = dotgate.addr;
            tokio::spawn(async move {
                let mut client = DotClient::connect(addr).await.unwrap();
                // Paced, not closed-loop: one query every 2 ms from each client, about 24,000 a
                // second in all, as many independent stubs behind one resolver look.
                let mut tick = tokio::time::interval(Duration::from_millis(2));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for id in 0..per_client {
                    tick.tick().await;
                    let answer = parse(&client.exchange(&query("www.example.test.", RecordType::A, id)).await);
                    assert_eq!(a_records(&answer), vec![support::unbound::WWW_A]);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let lingers = metric(admin, "dotgate_worker_lingers_total") - before;
    let queries = f64::from(clients) * f64::from(per_client);
    assert!(elapsed < Duration::from_secs(30), "the load took {elapsed:?}");
    // About 24,000 queries a second over 48 connections: the worker gathers its events.
    assert!(lingers > queries / 100.0, "lingered {lingers} times for {queries} queries in {elapsed:?}");
    drop(dotgate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sleeps_once_its_traffic_stops() {
    let unbound = unbound().await;
    let admin = free_addr();
    let dotgate = Dotgate::start(&[unbound.addr], &["--workers", "1", "--admin", &admin.to_string()]);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    // A query every millisecond for a second and a half: every one leaves an upstream deadline
    // behind, 1.5 s later, long after its answer came.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for id in 0..1500u16 {
        tick.tick().await;
        client.exchange(&query("www.example.test.", RecordType::A, id)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = metric(admin, "dotgate_worker_wakeups_total");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let woke = metric(admin, "dotgate_worker_wakeups_total") - before;
    // The stale deadlines are dropped in batches (about 21 a second at the default upstream
    // timeout), not one timer tick after another (which woke the worker about 1,000 times a
    // second here); the rest is the once-a-second housekeeping and the metrics scrapes.
    assert!(woke < 200.0, "an idle worker woke {woke} times in 1.5 s");
}
