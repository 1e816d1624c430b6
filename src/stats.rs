//! Per-worker event counters: what a worker saw, answered and dropped.
//!
//! Counting is a plain add on a `Cell` the worker owns: no atomic, no lock, no allocation on
//! the per-query path. The counters are logged when a worker stops; the Prometheus exporter
//! reads the same struct. This module never decides anything; it only counts.

use std::cell::Cell;
use std::fmt;

/// One worker's counters. Field names are the metric names without the `dotgate_` prefix.
#[derive(Default, Debug)]
pub struct WorkerStats {
    /// Messages read from clients (every frame, well-formed or not).
    pub queries: Cell<u64>,
    /// Queries answered with the backend's answer.
    pub answers_backend: Cell<u64>,
    /// Queries answered locally with FORMERR (bad question, QDCOUNT ≠ 1).
    pub answers_formerr: Cell<u64>,
    /// Queries answered locally with NOTIMP (opcode other than QUERY).
    pub answers_notimp: Cell<u64>,
    /// Queries answered locally with SERVFAIL (no backend answered in time).
    pub answers_servfail: Cell<u64>,
    /// Queries sent to a backend (first tries, retries and TCP fallbacks).
    pub upstream_sends: Cell<u64>,
    /// Upstream attempts that got no answer within the upstream timeout.
    pub upstream_timeouts: Cell<u64>,
    /// Queries retried on another backend after a timeout.
    pub upstream_retries: Cell<u64>,
    /// UDP answers with TC=1 asked again over TCP.
    pub tc_fallbacks: Cell<u64>,
    /// Upstream TCP connections that failed or closed with queries waiting on them.
    pub upstream_tcp_failures: Cell<u64>,
    /// Upstream UDP sends the kernel refused (the query then times out and is retried).
    pub upstream_send_errors: Cell<u64>,
    /// Upstream answers dropped: no query in flight with that ID on that socket (a wrong ID,
    /// a duplicate, or an answer after its query timed out).
    pub dropped_unknown_id: Cell<u64>,
    /// Upstream answers dropped: from an address other than the backend asked.
    pub dropped_wrong_source: Cell<u64>,
    /// Upstream answers dropped: a different question than the one asked.
    pub dropped_question_mismatch: Cell<u64>,
    /// Upstream datagrams dropped: not a DNS response at all.
    pub dropped_garbage: Cell<u64>,
    /// Client TCP connections accepted.
    pub connections_accepted: Cell<u64>,
    /// TLS handshakes that failed or timed out.
    pub handshake_failures: Cell<u64>,
    /// Connections closed for a framing error or a response sent by the client.
    pub connections_closed_protocol: Cell<u64>,
    /// Connections closed by the idle timeout.
    pub connections_closed_idle: Cell<u64>,
    /// Connections closed at accept: `--max-connections` reached.
    pub connections_refused_limit: Cell<u64>,
    /// Connections closed at accept: `--max-connections-per-ip` reached for their address.
    pub connections_refused_per_ip: Cell<u64>,
}

/// Adds one. A wrapping add: a counter that wraps after 2^64 events is not worth a branch.
#[inline]
pub fn bump(counter: &Cell<u64>) {
    counter.set(counter.get().wrapping_add(1));
}

impl fmt::Display for WorkerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: [(&str, &Cell<u64>); 21] = [
            ("queries", &self.queries),
            ("answers_backend", &self.answers_backend),
            ("answers_formerr", &self.answers_formerr),
            ("answers_notimp", &self.answers_notimp),
            ("answers_servfail", &self.answers_servfail),
            ("upstream_sends", &self.upstream_sends),
            ("upstream_timeouts", &self.upstream_timeouts),
            ("upstream_retries", &self.upstream_retries),
            ("tc_fallbacks", &self.tc_fallbacks),
            ("upstream_tcp_failures", &self.upstream_tcp_failures),
            ("upstream_send_errors", &self.upstream_send_errors),
            ("dropped_unknown_id", &self.dropped_unknown_id),
            ("dropped_wrong_source", &self.dropped_wrong_source),
            ("dropped_question_mismatch", &self.dropped_question_mismatch),
            ("dropped_garbage", &self.dropped_garbage),
            ("connections_accepted", &self.connections_accepted),
            ("handshake_failures", &self.handshake_failures),
            ("connections_closed_protocol", &self.connections_closed_protocol),
            ("connections_closed_idle", &self.connections_closed_idle),
            ("connections_refused_limit", &self.connections_refused_limit),
            ("connections_refused_per_ip", &self.connections_refused_per_ip),
        ];
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={}", value.get())?;
        }
        Ok(())
    }
}
