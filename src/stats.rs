//! Per-worker event counters and gauges: what a worker saw, answered and dropped, and the state
//! it is in (queries in flight, backend health as it judges it).
//!
//! Each worker owns one `WorkerStats` and is its only writer; the admin endpoint (`admin`) reads
//! every worker's on each scrape and adds them up. A count is a relaxed load and store of a
//! 64-bit word the worker owns: the same two plain moves a `Cell` compiles to, no locked
//! read-modify-write, no lock, no allocation on the per-query path, and no cache line that
//! another core writes. The counters are also logged when a worker stops. This module never
//! decides anything; it only counts.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A count with a single writer (its worker) and any number of readers.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker calls this; a load and a store (not `fetch_add`) is
    /// exact with one writer and costs no locked instruction. Wraps after 2^64.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Adds one.
#[inline]
pub fn bump(counter: &Counter) {
    counter.add(1);
}

/// Upper bounds of the latency histograms' buckets, in microseconds: 0.5 ms to 5 s, which
/// covers a cache hit on loopback, a recursion and a retry after the upstream timeout.
pub const LATENCY_BOUNDS_MICROS: [u64; 13] =
    [500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000];

/// A latency histogram with one writer: a count per bucket (not cumulative; the exposition
/// adds them up) and the sum. Observing is a binary search over 13 bounds and two adds.
#[derive(Default, Debug)]
pub struct Histogram {
    /// `buckets[i]` counts observations in (bound[i-1], bound[i]]; the last one, above all.
    pub buckets: [Counter; LATENCY_BOUNDS_MICROS.len() + 1],
    pub sum_micros: Counter,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[LATENCY_BOUNDS_MICROS.partition_point(|&bound| bound < micros)].add(1);
        self.sum_micros.add(micros);
    }
}

/// What a worker did with one backend, and how it judges it.
#[derive(Debug)]
pub struct BackendStats {
    /// Queries sent over UDP (first tries and retries).
    pub queries_udp: Counter,
    /// Queries sent over TCP (after a truncated UDP answer).
    pub queries_tcp: Counter,
    /// Attempts unanswered within the upstream timeout.
    pub timeouts: Counter,
    /// From an attempt's send to its answer.
    pub latency: Histogram,
    /// Not marked down by this worker (refreshed once a second).
    pub up: AtomicBool,
    /// Queries this worker has waiting on the backend (refreshed once a second).
    pub outstanding: AtomicU64,
}

/// TLS handshakes completed, by version and kind.
#[derive(Default, Debug)]
pub struct Handshakes {
    pub tls12_full: Counter,
    pub tls12_resumed: Counter,
    pub tls13_full: Counter,
    pub tls13_resumed: Counter,
}

impl Handshakes {
    /// Counts one completed handshake, as rustls reports it (`protocol_version`,
    /// `handshake_kind`): TLS 1.2 by its version, anything else as TLS 1.3 (dotgate offers no
    /// other); resumed when rustls says so, full otherwise. The one place DoT and DoH pick the
    /// counter.
    #[inline]
    pub fn count(&self, version: Option<rustls::ProtocolVersion>, kind: Option<rustls::HandshakeKind>) {
        let resumed = kind == Some(rustls::HandshakeKind::Resumed);
        bump(match (version, resumed) {
            (Some(rustls::ProtocolVersion::TLSv1_2), false) => &self.tls12_full,
            (Some(rustls::ProtocolVersion::TLSv1_2), true) => &self.tls12_resumed,
            (_, false) => &self.tls13_full,
            (_, true) => &self.tls13_resumed,
        });
    }
}

/// The frontend a query came in through: the `frontend` label of the metrics that have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// DNS over TLS (`--listen`).
    Dot,
    /// DNS over HTTPS (`--doh-listen`).
    Doh,
    /// DNSENC, over UDP and TCP: its own metrics are `dnsenc_*`; the relay's answers to its
    /// queries are `answers_total{frontend="dnsenc"}`.
    Dnsenc,
    /// The private-subdomain gateway: its own metrics are `pvt_*`; the relay's answers to its
    /// queries are `answers_total{frontend="pvt"}`.
    Pvt,
}

impl Frontend {
    pub const ALL: [Frontend; 4] = [Frontend::Dot, Frontend::Doh, Frontend::Dnsenc, Frontend::Pvt];

    /// The `frontend` label's value.
    pub const fn label(self) -> &'static str {
        match self {
            Frontend::Dot => "dot",
            Frontend::Doh => "doh",
            Frontend::Dnsenc => "dnsenc",
            Frontend::Pvt => "pvt",
        }
    }

    /// DoT and DoH: every series of theirs is exposed from the first scrape, at zero too, so
    /// that dashboards and alerts can sum by frontend. DNSENC's and the gateway's answer series
    /// appear once seen.
    pub const fn always_exposed(self) -> bool {
        matches!(self, Frontend::Dot | Frontend::Doh)
    }
}

/// Answers written to one frontend's clients (`answers_total{frontend}`).
#[derive(Default, Debug)]
pub struct Answers {
    /// The backend's answer, by its RCODE (the header's 4 bits); counted by the relay.
    pub backend: [Counter; 16],
    /// Answered locally with FORMERR (bad question, QDCOUNT ≠ 1); counted by the frontend.
    pub formerr: Counter,
    /// Answered locally with NOTIMP (opcode other than QUERY); counted by the frontend.
    pub notimp: Counter,
    /// Answered locally with SERVFAIL (no backend answered in time); counted by the relay.
    pub servfail: Counter,
    /// Answered locally with REFUSED: over the client's rate limit (the frontend counts it), or
    /// carrying an ECS option that could not be replaced (the relay does).
    pub refused: Counter,
}

impl Answers {
    /// The local answers with how they are exposed (`answers_total{source="local"}`).
    fn local(&self, frontend: Frontend) -> [(Exposed, &Counter); 4] {
        let with = |field, labels| Exposed { field, metric: "answers_total", frontend: Some(frontend), labels };
        [
            (with("answers_formerr", &[("source", "local"), ("rcode", "FORMERR")]), &self.formerr),
            (with("answers_notimp", &[("source", "local"), ("rcode", "NOTIMP")]), &self.notimp),
            (with("answers_servfail", &[("source", "local"), ("rcode", "SERVFAIL")]), &self.servfail),
            (with("answers_refused", &[("source", "local"), ("rcode", "REFUSED")]), &self.refused),
        ]
    }
}

/// What one TLS frontend (DoT or DoH) saw: the series with `frontend="dot"` or `"doh"`.
#[derive(Default, Debug)]
pub struct TlsFrontendStats {
    /// Messages read from clients (DoT: every frame, well-formed or not; DoH: every request
    /// carrying a message of at least a header, after the HTTP checks).
    pub queries: Counter,
    /// Answers written to clients.
    pub answers: Answers,
    /// Client TCP connections accepted (admitted past the access lists and limits).
    pub connections_accepted: Counter,
    /// TLS handshakes that failed (not TLS, refused, broken).
    pub handshake_failures: Counter,
    /// TLS handshakes not finished within the handshake timeout.
    pub handshake_timeouts: Counter,
    /// TLS handshakes completed.
    pub handshakes: Handshakes,
    /// Connections closed for a protocol error (DoT: a framing error or a response sent by the
    /// client; DoH: a malformed HTTP message).
    pub connections_closed_protocol: Counter,
    /// Connections closed by the idle timeout.
    pub connections_closed_idle: Counter,
    /// Connections closed after the client's EOF or close_notify, every answer out.
    pub connections_closed_client: Counter,
    /// Connections closed on a socket error, or a client that stopped taking answers.
    pub connections_closed_error: Counter,
    /// Connections closed by drain, every answer out.
    pub connections_closed_drain: Counter,
}

impl TlsFrontendStats {
    /// Every counter of this frontend's with how it is exposed (the answers from the backend
    /// apart: the exposition writes those by RCODE).
    fn counters(&self, frontend: Frontend) -> [(Exposed, &Counter); 17] {
        let with = |field, metric, labels| Exposed { field, metric, frontend: Some(frontend), labels };
        let [formerr, notimp, servfail, refused] = self.answers.local(frontend);
        [
            (with("queries", "queries_received_total", &[]), &self.queries),
            formerr,
            notimp,
            servfail,
            refused,
            (with("connections_accepted", "connections_accepted_total", &[]), &self.connections_accepted),
            (
                with("handshake_failures", "tls_handshake_failures_total", &[("reason", "error")]),
                &self.handshake_failures,
            ),
            (
                with("handshake_timeouts", "tls_handshake_failures_total", &[("reason", "timeout")]),
                &self.handshake_timeouts,
            ),
            (
                with("handshakes_tls12_full", "tls_handshakes_total", &[("version", "TLSv1.2"), ("kind", "full")]),
                &self.handshakes.tls12_full,
            ),
            (
                with(
                    "handshakes_tls12_resumed",
                    "tls_handshakes_total",
                    &[("version", "TLSv1.2"), ("kind", "resumed")],
                ),
                &self.handshakes.tls12_resumed,
            ),
            (
                with("handshakes_tls13_full", "tls_handshakes_total", &[("version", "TLSv1.3"), ("kind", "full")]),
                &self.handshakes.tls13_full,
            ),
            (
                with(
                    "handshakes_tls13_resumed",
                    "tls_handshakes_total",
                    &[("version", "TLSv1.3"), ("kind", "resumed")],
                ),
                &self.handshakes.tls13_resumed,
            ),
            (
                with("connections_closed_protocol", "connections_closed_total", &[("reason", "protocol")]),
                &self.connections_closed_protocol,
            ),
            (
                with("connections_closed_idle", "connections_closed_total", &[("reason", "idle")]),
                &self.connections_closed_idle,
            ),
            (
                with("connections_closed_client", "connections_closed_total", &[("reason", "client")]),
                &self.connections_closed_client,
            ),
            (
                with("connections_closed_error", "connections_closed_total", &[("reason", "error")]),
                &self.connections_closed_error,
            ),
            (
                with("connections_closed_drain", "connections_closed_total", &[("reason", "drain")]),
                &self.connections_closed_drain,
            ),
        ]
    }
}

/// One worker's counters and gauges.
#[derive(Default, Debug)]
pub struct WorkerStats {
    /// DNS over TLS: queries, answers, connections and handshakes (`frontend="dot"`).
    pub dot: TlsFrontendStats,
    /// DNS over HTTPS: the same (`frontend="doh"`).
    pub doh: TlsFrontendStats,
    /// The relay's answers to DNSENC queries (`answers_total{frontend="dnsenc"}`).
    pub dnsenc_answers: Answers,
    /// The relay's answers to the private-subdomain gateway's queries
    /// (`answers_total{frontend="pvt"}`).
    pub pvt_answers: Answers,
    /// Queries refused for the client's query rate (`--max-qps-per-client`).
    pub rate_limited_queries: Counter,
    /// Connections closed at accept for the client's connection rate
    /// (`--max-new-connections-per-client`).
    pub rate_limited_connections: Counter,
    /// Connections closed at accept by the access lists (`--allow`, `--deny`); for DNSENC over
    /// UDP, datagrams dropped by them.
    pub connections_refused_acl: Counter,
    /// DNSENC queries decrypted and relayed, by the query scheme of the key.
    pub dnsenc_queries_rsa2048: Counter,
    pub dnsenc_queries_rsa4096: Counter,
    pub dnsenc_queries_x25519: Counter,
    /// DNSENC messages answered by dotgate itself, by reason (`server::Verdict`), and sealed
    /// answers too large for the client's UDP size (a TC=1 envelope instead).
    pub dnsenc_errors_refused: Counter,
    pub dnsenc_errors_formerr: Counter,
    pub dnsenc_errors_badcrypt: Counter,
    pub dnsenc_errors_truncated: Counter,
    /// DoH responses by HTTP status.
    pub doh_status_200: Counter,
    pub doh_status_400: Counter,
    pub doh_status_404: Counter,
    pub doh_status_405: Counter,
    pub doh_status_413: Counter,
    pub doh_status_415: Counter,
    pub doh_status_431: Counter,
    pub doh_status_501: Counter,
    /// DoH connections closed for spending an HTTP/2 flood budget (`doh::flood`).
    pub doh_flood_ping: Counter,
    pub doh_flood_settings: Counter,
    pub doh_flood_reset: Counter,
    pub doh_flood_headers: Counter,
    pub doh_flood_other: Counter,
    /// Queries retried on another backend after a timeout.
    pub upstream_retries: Counter,
    /// UDP answers with TC=1 asked again over TCP.
    pub tc_fallbacks: Counter,
    /// Queries sent straight over TCP, skipping UDP: their question came back truncated before
    /// (the TCP memory).
    pub tcp_direct: Counter,
    /// Upstream TCP connections that failed or closed with queries waiting on them.
    pub upstream_tcp_failures: Counter,
    /// Times the worker thread woke from sleep (see `runtime::pacing`).
    pub wakeups: Counter,
    /// Times the worker lingered before sleeping, to handle the next events in one round.
    pub lingers: Counter,
    /// Upstream UDP sends the kernel refused (the query then times out and is retried).
    pub upstream_send_errors: Counter,
    /// Upstream answers dropped: no query in flight with that ID on that socket (a wrong ID,
    /// or an answer after its query timed out).
    pub dropped_unknown_id: Counter,
    /// Upstream answers dropped: a second copy of an answer already delivered.
    pub dropped_duplicate: Counter,
    /// Upstream answers dropped: from an address other than the backend asked.
    pub dropped_wrong_source: Counter,
    /// Upstream answers dropped: a different question than the one asked.
    pub dropped_question_mismatch: Counter,
    /// Upstream datagrams dropped: not a DNS response at all.
    pub dropped_garbage: Counter,
    /// Connections closed at accept: `--max-connections` reached.
    pub connections_refused_limit: Counter,
    /// Connections closed at accept: `--max-connections-per-ip` reached for their address.
    pub connections_refused_per_ip: Counter,
    /// Relayed queries, from the query's arrival to its answer (the backend's or SERVFAIL).
    pub query_latency: Histogram,
    /// Queries waiting on a backend (refreshed once a second).
    pub in_flight: AtomicU64,
    /// Questions held in the worker's TCP memory (refreshed once a second).
    pub tcp_memory_entries: AtomicU64,
    /// Per backend, in the configured order.
    pub backends: Box<[BackendStats]>,
}

/// How a counter is exposed: metric name (after `dotgate_`) and its labels.
pub struct Exposed {
    /// The field's name, as the worker's stop line logs it (after `dot_` or `doh_` for a
    /// frontend's).
    pub field: &'static str,
    pub metric: &'static str,
    /// The `frontend` label, first of the labels when there is one.
    pub frontend: Option<Frontend>,
    pub labels: &'static [(&'static str, &'static str)],
}

const fn exposed(
    field: &'static str,
    metric: &'static str,
    labels: &'static [(&'static str, &'static str)],
) -> Exposed {
    Exposed { field, metric, frontend: None, labels }
}

/// The help text of each counter metric.
pub const COUNTER_HELP: [(&str, &str); 20] = [
    (
        "queries_received_total",
        "DNS messages read from clients, well-formed or not, by frontend (dot, doh; DNSENC and the private-subdomain gateway count theirs in dnsenc_queries_total and pvt_queries_total).",
    ),
    (
        "answers_total",
        "Answers written to clients, by frontend, source (backend or local) and RCODE: dot and doh always; dnsenc and pvt (the relay's answers to DNSENC and private-subdomain queries) once seen.",
    ),
    ("upstream_retries_total", "Queries retried on another backend after a timeout."),
    ("upstream_tc_fallbacks_total", "Truncated UDP answers asked again over TCP."),
    (
        "upstream_tcp_direct_total",
        "Queries sent straight to a backend over TCP, skipping UDP: their question came back truncated before.",
    ),
    ("upstream_tcp_failures_total", "Upstream TCP connections that failed with queries waiting on them."),
    ("upstream_send_errors_total", "Upstream UDP sends the kernel refused."),
    ("upstream_answers_dropped_total", "Upstream datagrams dropped, by reason: never delivered to a client."),
    ("connections_accepted_total", "Client TCP connections accepted, by frontend (dot, doh)."),
    (
        "tls_handshake_failures_total",
        "TLS handshakes that failed (error) or did not finish in time (timeout), by frontend (dot, doh).",
    ),
    ("tls_handshakes_total", "TLS handshakes completed, by frontend (dot, doh), version and kind (full or resumed)."),
    ("connections_closed_total", "Client connections closed after their handshake, by frontend (dot, doh) and reason."),
    (
        "connections_rejected_total",
        "Client connections closed at accept, before TLS, by reason: a connection limit, the access lists or a rate limit.",
    ),
    ("rate_limited_total", "Queries refused and connections closed for a client over its rate limit, by kind."),
    ("dnsenc_queries_total", "DNSENC queries decrypted and relayed, by the query scheme."),
    (
        "dnsenc_errors_total",
        "DNSENC messages dotgate answered itself (refused, formerr, badcrypt) and answers sent as a TC=1 envelope (truncated).",
    ),
    ("doh_responses_total", "DNS-over-HTTPS responses, by HTTP status."),
    (
        "doh_flood_closed_total",
        "DoH connections closed for an HTTP/2 flood, by the budget spent: ping, settings, rst_stream, headers (a header block over the cap) or other frames.",
    ),
    ("worker_wakeups_total", "Times a worker thread woke from sleep to handle events."),
    ("worker_lingers_total", "Times a worker lingered before sleeping so that the next events share one wake-up."),
];

impl WorkerStats {
    /// Counters and gauges for a worker relaying to `backends` backends.
    pub fn new(backends: usize) -> WorkerStats {
        let backend = || BackendStats {
            queries_udp: Counter::default(),
            queries_tcp: Counter::default(),
            timeouts: Counter::default(),
            latency: Histogram::default(),
            // Up until marked down, as the relay judges (it starts with every backend up).
            up: AtomicBool::new(true),
            outstanding: AtomicU64::new(0),
        };
        WorkerStats { backends: (0..backends).map(|_| backend()).collect(), ..Default::default() }
    }

    /// Every counter with how it is exposed: the one list of them (the answers from the backend
    /// apart, which the exposition writes by RCODE and frontend, and DNSENC's and the gateway's
    /// answers, written once seen).
    pub fn counters(&self) -> impl Iterator<Item = (Exposed, &Counter)> {
        self.worker_counters()
            .into_iter()
            .chain(self.dot.counters(Frontend::Dot))
            .chain(self.doh.counters(Frontend::Doh))
    }

    /// The answers to one frontend's clients: where the relay and the frontends count them.
    #[inline]
    pub fn answers(&self, frontend: Frontend) -> &Answers {
        match frontend {
            Frontend::Dot => &self.dot.answers,
            Frontend::Doh => &self.doh.answers,
            Frontend::Dnsenc => &self.dnsenc_answers,
            Frontend::Pvt => &self.pvt_answers,
        }
    }

    /// The counters without a frontend.
    fn worker_counters(&self) -> [(Exposed, &Counter); 38] {
        [
            (exposed("rate_limited_queries", "rate_limited_total", &[("kind", "queries")]), &self.rate_limited_queries),
            (
                exposed("rate_limited_connections", "rate_limited_total", &[("kind", "connections")]),
                &self.rate_limited_connections,
            ),
            (
                exposed("connections_refused_acl", "connections_rejected_total", &[("reason", "acl")]),
                &self.connections_refused_acl,
            ),
            (
                exposed("connections_refused_rate", "connections_rejected_total", &[("reason", "rate_limit")]),
                &self.rate_limited_connections,
            ),
            (
                exposed("dnsenc_queries_rsa2048", "dnsenc_queries_total", &[("scheme", "rsa2048")]),
                &self.dnsenc_queries_rsa2048,
            ),
            (
                exposed("dnsenc_queries_rsa4096", "dnsenc_queries_total", &[("scheme", "rsa4096")]),
                &self.dnsenc_queries_rsa4096,
            ),
            (
                exposed("dnsenc_queries_x25519", "dnsenc_queries_total", &[("scheme", "x25519")]),
                &self.dnsenc_queries_x25519,
            ),
            (
                exposed("dnsenc_errors_refused", "dnsenc_errors_total", &[("reason", "refused")]),
                &self.dnsenc_errors_refused,
            ),
            (
                exposed("dnsenc_errors_formerr", "dnsenc_errors_total", &[("reason", "formerr")]),
                &self.dnsenc_errors_formerr,
            ),
            (
                exposed("dnsenc_errors_badcrypt", "dnsenc_errors_total", &[("reason", "badcrypt")]),
                &self.dnsenc_errors_badcrypt,
            ),
            (
                exposed("dnsenc_errors_truncated", "dnsenc_errors_total", &[("reason", "truncated")]),
                &self.dnsenc_errors_truncated,
            ),
            (exposed("doh_status_200", "doh_responses_total", &[("status", "200")]), &self.doh_status_200),
            (exposed("doh_status_400", "doh_responses_total", &[("status", "400")]), &self.doh_status_400),
            (exposed("doh_status_404", "doh_responses_total", &[("status", "404")]), &self.doh_status_404),
            (exposed("doh_status_405", "doh_responses_total", &[("status", "405")]), &self.doh_status_405),
            (exposed("doh_status_413", "doh_responses_total", &[("status", "413")]), &self.doh_status_413),
            (exposed("doh_status_415", "doh_responses_total", &[("status", "415")]), &self.doh_status_415),
            (exposed("doh_status_431", "doh_responses_total", &[("status", "431")]), &self.doh_status_431),
            (exposed("doh_status_501", "doh_responses_total", &[("status", "501")]), &self.doh_status_501),
            (exposed("doh_flood_ping", "doh_flood_closed_total", &[("frame", "ping")]), &self.doh_flood_ping),
            (
                exposed("doh_flood_settings", "doh_flood_closed_total", &[("frame", "settings")]),
                &self.doh_flood_settings,
            ),
            (exposed("doh_flood_reset", "doh_flood_closed_total", &[("frame", "rst_stream")]), &self.doh_flood_reset),
            (exposed("doh_flood_headers", "doh_flood_closed_total", &[("frame", "headers")]), &self.doh_flood_headers),
            (exposed("doh_flood_other", "doh_flood_closed_total", &[("frame", "other")]), &self.doh_flood_other),
            (exposed("upstream_retries", "upstream_retries_total", &[]), &self.upstream_retries),
            (exposed("tc_fallbacks", "upstream_tc_fallbacks_total", &[]), &self.tc_fallbacks),
            (exposed("tcp_direct", "upstream_tcp_direct_total", &[]), &self.tcp_direct),
            (exposed("upstream_tcp_failures", "upstream_tcp_failures_total", &[]), &self.upstream_tcp_failures),
            (exposed("upstream_send_errors", "upstream_send_errors_total", &[]), &self.upstream_send_errors),
            (
                exposed("dropped_unknown_id", "upstream_answers_dropped_total", &[("reason", "unknown_id")]),
                &self.dropped_unknown_id,
            ),
            (
                exposed("dropped_duplicate", "upstream_answers_dropped_total", &[("reason", "duplicate")]),
                &self.dropped_duplicate,
            ),
            (
                exposed("dropped_wrong_source", "upstream_answers_dropped_total", &[("reason", "wrong_source")]),
                &self.dropped_wrong_source,
            ),
            (
                exposed(
                    "dropped_question_mismatch",
                    "upstream_answers_dropped_total",
                    &[("reason", "question_mismatch")],
                ),
                &self.dropped_question_mismatch,
            ),
            (
                exposed("dropped_garbage", "upstream_answers_dropped_total", &[("reason", "garbage")]),
                &self.dropped_garbage,
            ),
            (
                exposed("connections_refused_limit", "connections_rejected_total", &[("reason", "limit")]),
                &self.connections_refused_limit,
            ),
            (
                exposed("connections_refused_per_ip", "connections_rejected_total", &[("reason", "per_ip")]),
                &self.connections_refused_per_ip,
            ),
            (exposed("wakeups", "worker_wakeups_total", &[]), &self.wakeups),
            (exposed("lingers", "worker_lingers_total", &[]), &self.lingers),
        ]
    }
}

/// RCODE names (RFC 1035, RFC 2136, RFC 6895) for the 4-bit header field, as metric labels.
pub const RCODE_NAMES: [&str; 16] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
];

impl fmt::Display for WorkerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend: u64 = Frontend::ALL.iter().flat_map(|&f| self.answers(f).backend.iter()).map(Counter::get).sum();
        let sum = |pick: fn(&BackendStats) -> &Counter| -> u64 { self.backends.iter().map(|b| pick(b).get()).sum() };
        write!(
            f,
            "answers_backend={backend} upstream_udp={} upstream_tcp={} upstream_timeouts={}",
            sum(|b| &b.queries_udp),
            sum(|b| &b.queries_tcp),
            sum(|b| &b.timeouts)
        )?;
        for (exposed, counter) in self.counters() {
            match exposed.frontend {
                Some(frontend) => write!(f, " {}_{}={}", frontend.label(), exposed.field, counter.get())?,
                None => write!(f, " {}={}", exposed.field, counter.get())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // on a bound: that bucket
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60)); // above every bound
        let counts: Vec<u64> = h.buckets.iter().map(Counter::get).collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[6], 1, "30 ms is in (25, 50] ms");
        assert_eq!(counts[LATENCY_BOUNDS_MICROS.len()], 1);
        assert_eq!(h.sum_micros.get(), 500 + 501 + 30_000 + 60_000_000);
    }

    #[test]
    fn counters_and_names_line_up() {
        let stats = WorkerStats::new(1);
        stats.upstream_retries.add(3);
        bump(&stats.connections_refused_per_ip);
        let line = stats.to_string();
        assert!(line.contains("upstream_retries=3 "), "{line}");
        assert!(line.contains(" connections_refused_per_ip=1 "), "{line}");
        bump(&stats.lingers);
        assert!(stats.to_string().contains(" lingers=1 "), "{line}");
        bump(&stats.doh.connections_closed_drain);
        assert!(stats.to_string().ends_with(" doh_connections_closed_drain=1"), "{line}");
        assert!(line.contains(" dot_queries=0 ") && line.contains(" doh_queries=0 "), "{line}");
        assert_eq!(line.split(' ').count(), stats.counters().count() + 4);
    }

    #[test]
    fn each_tls_frontend_has_every_series_with_its_label_first() {
        let stats = WorkerStats::new(0);
        let of = |frontend| {
            stats
                .counters()
                .filter(|(e, _)| e.frontend == Some(frontend))
                .map(|(e, _)| (e.metric, e.labels))
                .collect::<Vec<_>>()
        };
        assert_eq!(of(Frontend::Dot), of(Frontend::Doh));
        assert_eq!(of(Frontend::Dot).len(), 17);
        for metric in [
            "queries_received_total",
            "answers_total",
            "connections_accepted_total",
            "tls_handshakes_total",
            "tls_handshake_failures_total",
            "connections_closed_total",
        ] {
            assert!(
                stats.counters().filter(|(e, _)| e.metric == metric).all(|(e, _)| e.frontend.is_some()),
                "{metric}"
            );
        }
    }

    #[test]
    fn handshakes_are_counted_by_version_and_kind() {
        use rustls::{HandshakeKind, ProtocolVersion};
        let h = Handshakes::default();
        h.count(Some(ProtocolVersion::TLSv1_2), Some(HandshakeKind::Full));
        h.count(Some(ProtocolVersion::TLSv1_2), Some(HandshakeKind::Resumed));
        h.count(Some(ProtocolVersion::TLSv1_3), Some(HandshakeKind::FullWithHelloRetryRequest));
        h.count(Some(ProtocolVersion::TLSv1_3), Some(HandshakeKind::Resumed));
        h.count(Some(ProtocolVersion::TLSv1_3), Some(HandshakeKind::Resumed));
        let counts = [&h.tls12_full, &h.tls12_resumed, &h.tls13_full, &h.tls13_resumed].map(Counter::get);
        assert_eq!(counts, [1, 1, 1, 2]);
    }
}
