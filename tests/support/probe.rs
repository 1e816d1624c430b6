//! A well-behaved DoT client that measures its own query latency, for the robustness tests
//! (`tests/hostile.rs`, `tests/soak.rs`), and the latency bound they hold dotgate to.
//!
//! Owns [`measure`] (one connection, queries one after another with a short gap, every
//! answer checked against the real Unbound's zone), [`Latencies`] (the sorted samples and
//! their percentiles) and [`Bound`] (how much slower than a quiet baseline a measurement may
//! be). The probe runs on a thread and runtime of its own, so that the test's other tasks (the
//! hostile clients) cannot delay it inside the test process; only dotgate can.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::client::{a_records, parse, query, DotClient};
use super::unbound::WWW_A;

/// Sorted latency samples, and what went wrong.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub samples: Vec<Duration>,
    /// Queries not answered, or answered wrongly (each with why).
    pub errors: Vec<String>,
}

impl Latencies {
    /// The `p`-quantile (0.0..=1.0), nearest rank.
    pub fn pct(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::MAX;
        }
        let rank = ((p * self.samples.len() as f64).ceil() as usize).clamp(1, self.samples.len());
        self.samples[rank - 1]
    }

    pub fn p50(&self) -> Duration {
        self.pct(0.5)
    }

    pub fn p90(&self) -> Duration {
        self.pct(0.9)
    }

    pub fn p99(&self) -> Duration {
        self.pct(0.99)
    }

    pub fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or(Duration::MAX)
    }

    pub fn summary(&self) -> String {
        if self.samples.is_empty() {
            return format!("no answer timed, {} errors", self.errors.len());
        }
        format!(
            "{} queries: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
            self.samples.len(),
            ms(self.p50()),
            ms(self.p90()),
            ms(self.p99()),
            ms(self.max()),
            self.errors.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends `samples` queries for `www.example.test. A` to `addr` one after another on one
/// connection, `gap` apart (so that a measurement spans a stretch of the attack, not one burst),
/// and times each from send to answer. Every answer must carry the query's ID, NOERROR, the
/// question and Unbound's address; anything else is an error. A lost connection is an error
/// and is replaced. Blocks the calling thread: call it from `spawn_blocking`.
pub fn measure(addr: SocketAddr, samples: usize, gap: Duration) -> Latencies {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(measure_here(addr, samples, gap))
            })
            .join()
            .expect("probe thread panicked")
    })
}

async fn measure_here(addr: SocketAddr, samples: usize, gap: Duration) -> Latencies {
    let mut out = Latencies::default();
    let mut client: Option<DotClient> = None;
    // One warm-up query: the handshake and the first answer are not what is measured.
    let mut id: u16 = 0x4000;
    let mut taken = 0;
    let mut warm = false;
    // A dotgate that starves the probe must fail the test, not hang it: past this, the
    // measurement ends with an error.
    let deadline = Instant::now() + (gap + Duration::from_millis(50)) * samples as u32 + Duration::from_secs(10);
    while taken < samples {
        if Instant::now() > deadline {
            out.errors.push(format!("ran out of time after {taken} of {samples} queries"));
            break;
        }
        if client.is_none() {
            match DotClient::connect(addr).await {
                Ok(c) => {
                    client = Some(c);
                    warm = false;
                }
                Err(e) => {
                    out.errors.push(format!("connect: {e}"));
                    taken += 1;
                    tokio::time::sleep(gap).await;
                    continue;
                }
            }
        }
        let c = client.as_mut().unwrap();
        id = id.wrapping_add(1);
        let sent = Instant::now();
        let result = async {
            c.send(&query("www.example.test.", RecordType::A, id)).await.map_err(|e| format!("send: {e}"))?;
            match c.recv_timeout(Duration::from_secs(3)).await {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) => Err("the connection closed instead of answering".to_string()),
                Err(e) => Err(format!("recv: {e}")),
            }
        }
        .await;
        let took = sent.elapsed();
        match result {
            Ok(answer) => {
                let m = parse(&answer);
                let name = m.queries().first().map(|q| q.name().to_ascii());
                if m.id() != id
                    || m.response_code() != ResponseCode::NoError
                    || name.as_deref() != Some("www.example.test.")
                    || a_records(&m) != vec![WWW_A]
                {
                    out.errors.push(format!("query {id}: wrong answer {m:?}"));
                } else if warm {
                    out.samples.push(took);
                    taken += 1;
                }
                warm = true;
            }
            Err(e) => {
                out.errors.push(format!("query {id}: {e}"));
                client = None;
                taken += 1;
            }
        }
        tokio::time::sleep(gap).await;
    }
    out.samples.sort();
    out
}

/// How much slower than the quiet baseline a measurement under attack may be.
///
/// Each of p50, p90 and p99 may be at most `factor` times the baseline's plus `floor`. The
/// factor is the 2×. The floor absorbs what a 2-core VM shared with other work adds
/// whatever dotgate does: a debug-build query takes a few hundred microseconds, so 2× of it is
/// well inside one scheduler time slice (~3 ms) that another process's thread can take; without
/// a floor, one preempted wake-up would fail the test. p99 gets a larger floor: with 400
/// samples it is the 4th slowest, where a single descheduling of dotgate's worker shows. The
/// bound still catches what it is for: a worker busy with hostile clients (latency a multiple
/// of the baseline on every query), a worker blocked by one (stalls of tens of ms in p99 or
/// beyond), and starvation (timeouts, counted as errors).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub factor: f64,
    pub floor: Duration,
    pub p99_floor: Duration,
}

impl Default for Bound {
    fn default() -> Self {
        Bound { factor: 2.0, floor: Duration::from_millis(2), p99_floor: Duration::from_millis(10) }
    }
}

impl Bound {
    fn limit(&self, base: Duration, floor: Duration) -> Duration {
        base.mul_f64(self.factor) + floor
    }

    /// `Err` with every percentile over its limit.
    pub fn check(&self, baseline: &Latencies, attacked: &Latencies) -> Result<(), String> {
        let mut over = Vec::new();
        for (what, base, got, floor) in [
            ("p50", baseline.p50(), attacked.p50(), self.floor),
            ("p90", baseline.p90(), attacked.p90(), self.floor),
            ("p99", baseline.p99(), attacked.p99(), self.p99_floor),
        ] {
            let limit = self.limit(base, floor);
            if got > limit {
                over.push(format!("{what} {:.2} ms > {:.2} ms (baseline {:.2} ms)", ms(got), ms(limit), ms(base)));
            }
        }
        if over.is_empty() {
            Ok(())
        } else {
            Err(over.join(", "))
        }
    }
}
