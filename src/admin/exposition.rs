//! `/metrics`: adds up every worker's published counters and gauges at scrape time and renders
//! them in the Prometheus text format through `metrics-exporter-prometheus`.
//!
//! The workers never call into `metrics`: a recorder call on the per-query path would cost a
//! hash lookup or a shared atomic. They count into their own `WorkerStats`; this module copies
//! the sums into a recorder of its own (not the process-global one) once per scrape. It never
//! writes anything a worker reads.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use metrics::{Label, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::{AdminState, Readiness};
use crate::stats::{Frontend, Histogram, WorkerStats, COUNTER_HELP, LATENCY_BOUNDS_MICROS, RCODE_NAMES};
use crate::tls::reload::Material;

/// Backend answer RCODEs always exposed for DoT and DoH, even at zero, so that dashboards and
/// alerts find a series from the first scrape; the others (and DNSENC's and the gateway's
/// answers) appear once seen.
const ALWAYS_EXPOSED_RCODES: [u8; 4] = [0, 2, 3, 5];

pub struct Exposition {
    recorder: PrometheusRecorder,
}

impl Exposition {
    pub fn new() -> Exposition {
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, describe);
        Exposition { recorder }
    }

    /// The current figures in the Prometheus text format.
    pub fn render(&self, state: &AdminState) -> String {
        metrics::with_local_recorder(&self.recorder, || record(state));
        let mut page = self.recorder.handle().render();
        // The workers' histograms are bucketed already; the recorder only takes samples, so
        // they are written here.
        histogram(
            &mut page,
            "dotgate_query_duration_seconds",
            "Relayed queries, from arrival to answer (the backend's or SERVFAIL).",
            &[(None, state.workers.iter().map(|w| &w.query_latency).collect())],
        );
        let per_backend = state
            .backends
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let label = format!("backend=\"{addr}\"");
                (Some(label), state.workers.iter().filter_map(|w| w.backends.get(i).map(|b| &b.latency)).collect())
            })
            .collect::<Vec<_>>();
        histogram(
            &mut page,
            "dotgate_upstream_duration_seconds",
            "Upstream attempts, from send to the backend's answer.",
            &per_backend,
        );
        page
    }
}

/// Writes one histogram family: per series, the workers' histograms added up.
fn histogram(page: &mut String, name: &str, help: &str, series: &[(Option<String>, Vec<&Histogram>)]) {
    let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (label, parts) in series {
        let (open, sep) = match label {
            Some(label) => (format!("{{{label},"), format!("{{{label}}}")),
            None => ("{".to_owned(), String::new()),
        };
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BOUNDS_MICROS.iter().enumerate() {
            cumulative += parts.iter().map(|h| h.buckets[i].get()).sum::<u64>();
            let _ = writeln!(page, "{name}_bucket{open}le=\"{}\"}} {cumulative}", *bound as f64 / 1e6);
        }
        cumulative += parts.iter().map(|h| h.buckets[LATENCY_BOUNDS_MICROS.len()].get()).sum::<u64>();
        let sum_micros: u64 = parts.iter().map(|h| h.sum_micros.get()).sum();
        let _ = writeln!(page, "{name}_bucket{open}le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(page, "{name}_sum{sep} {}", sum_micros as f64 / 1e6);
        let _ = writeln!(page, "{name}_count{sep} {cumulative}");
    }
    page.push('\n');
}

fn describe() {
    for (metric, help) in COUNTER_HELP {
        metrics::describe_counter!(format!("dotgate_{metric}"), Unit::Count, help);
    }
    metrics::describe_counter!(
        "dotgate_upstream_queries_total",
        Unit::Count,
        "Queries sent to a backend, by transport: first tries and retries over UDP; over TCP, truncated answers asked again and questions the TCP memory sends straight there."
    );
    metrics::describe_counter!(
        "dotgate_upstream_timeouts_total",
        Unit::Count,
        "Upstream attempts unanswered within the upstream timeout."
    );
    metrics::describe_counter!(
        "dotgate_tls_reloads_total",
        Unit::Count,
        "Certificate and ticket-key reloads: new material put in service (reloaded) or refused as broken (refused)."
    );
    metrics::describe_gauge!(
        "dotgate_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "When the certificate in service expires (notAfter), in seconds since the Unix epoch."
    );
    metrics::describe_gauge!("dotgate_connections_open", "Client connections open, all workers together.");
    metrics::describe_gauge!("dotgate_queries_in_flight", "Queries waiting on a backend (refreshed each second).");
    metrics::describe_gauge!(
        "dotgate_upstream_tcp_memory_entries",
        "Questions remembered as truncated over UDP, sent straight over TCP when asked again (refreshed each second)."
    );
    metrics::describe_gauge!("dotgate_backend_up", "1 while the backend is not marked down by every worker.");
    metrics::describe_gauge!("dotgate_backend_outstanding", "Queries waiting on the backend (refreshed each second).");
    metrics::describe_gauge!("dotgate_ready", "1 while /readyz answers ready.");
    metrics::describe_gauge!("dotgate_build_info", "Always 1; the version is a label.");
    metrics::describe_counter!(
        "dotgate_pvt_queries_total",
        Unit::Count,
        "Private-subdomain queries answered: encrypted (SIG(0) verified, relayed to the primary, sealed) or clear (SOA, NS, KEY at an apex)."
    );
    metrics::describe_counter!(
        "dotgate_pvt_updates_total",
        Unit::Count,
        "Private-subdomain UPDATEs verified and sent to the primary, by operation (register, records, rekey, destroy)."
    );
    metrics::describe_counter!(
        "dotgate_pvt_refused_total",
        Unit::Count,
        "Private-subdomain messages the gateway refused or failed itself, by reason."
    );
    metrics::describe_counter!(
        "dotgate_pvt_truncated_total",
        Unit::Count,
        "Sealed private-subdomain answers too large for the client's UDP size, sent as TC=1."
    );
}

fn record(state: &AdminState) {
    let sum = |pick: &dyn Fn(&WorkerStats) -> u64| -> u64 { state.workers.iter().map(|w| pick(w)).sum() };

    if let Some(first) = state.workers.first() {
        let mut totals: Vec<u64> = first.counters().map(|(_, counter)| counter.get()).collect();
        for worker in &state.workers[1..] {
            for (total, (_, counter)) in totals.iter_mut().zip(worker.counters()) {
                *total += counter.get();
            }
        }
        for ((exposed, _), total) in first.counters().zip(totals) {
            let frontend = exposed.frontend.map(|f| Label::from_static_parts("frontend", f.label()));
            let labels: Vec<Label> = frontend
                .into_iter()
                .chain(exposed.labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)))
                .collect();
            metrics::counter!(format!("dotgate_{}", exposed.metric), labels).absolute(total);
        }
    }
    for frontend in Frontend::ALL {
        let label = frontend.label();
        for (rcode, name) in RCODE_NAMES.iter().enumerate() {
            let answers = sum(&|w| w.answers(frontend).backend[rcode].get());
            let always = frontend.always_exposed() && ALWAYS_EXPOSED_RCODES.contains(&(rcode as u8));
            if answers > 0 || always {
                metrics::counter!("dotgate_answers_total", "frontend" => label, "source" => "backend", "rcode" => *name)
                    .absolute(answers);
            }
        }
        if !frontend.always_exposed() {
            // DoT's and DoH's local answers are in `counters`; DNSENC's and the gateway's are the
            // relay's SERVFAIL and REFUSED only, once seen.
            let servfail = sum(&|w| w.answers(frontend).servfail.get());
            let refused = sum(&|w| w.answers(frontend).refused.get());
            for (name, answers) in [("SERVFAIL", servfail), ("REFUSED", refused)] {
                if answers > 0 {
                    metrics::counter!("dotgate_answers_total", "frontend" => label, "source" => "local", "rcode" => name)
                        .absolute(answers);
                }
            }
        }
    }

    metrics::gauge!("dotgate_connections_open").set(state.limits.open() as f64);
    metrics::gauge!("dotgate_queries_in_flight").set(sum(&|w| w.in_flight.load(Relaxed)) as f64);
    metrics::gauge!("dotgate_upstream_tcp_memory_entries").set(sum(&|w| w.tcp_memory_entries.load(Relaxed)) as f64);
    for (i, backend) in state.backends.iter().enumerate() {
        let name = backend.to_string();
        let of_backend = |pick: fn(&crate::stats::BackendStats) -> u64| sum(&|w| w.backends.get(i).map_or(0, pick));
        metrics::counter!("dotgate_upstream_queries_total", "backend" => name.clone(), "transport" => "udp")
            .absolute(of_backend(|b| b.queries_udp.get()));
        metrics::counter!("dotgate_upstream_queries_total", "backend" => name.clone(), "transport" => "tcp")
            .absolute(of_backend(|b| b.queries_tcp.get()));
        metrics::counter!("dotgate_upstream_timeouts_total", "backend" => name.clone())
            .absolute(of_backend(|b| b.timeouts.get()));
        let up = if state.backend_up(i) { 1.0 } else { 0.0 };
        metrics::gauge!("dotgate_backend_up", "backend" => name.clone()).set(up);
        let outstanding = sum(&|w| w.backends.get(i).map_or(0, |b| b.outstanding.load(Relaxed)));
        metrics::gauge!("dotgate_backend_outstanding", "backend" => name).set(outstanding as f64);
    }
    let counts = state.tls.reload_counts();
    for (material, label) in [(Material::Certificate, "certificate"), (Material::TicketKeys, "ticket_keys")] {
        let (reloaded, refused) = counts.of(material);
        metrics::counter!("dotgate_tls_reloads_total", "material" => label, "result" => "reloaded").absolute(reloaded);
        metrics::counter!("dotgate_tls_reloads_total", "material" => label, "result" => "refused").absolute(refused);
    }
    if let Some(not_after) = state.tls.certificate_not_after() {
        metrics::gauge!("dotgate_certificate_expiry_timestamp_seconds").set(not_after as f64);
    }
    if let Some(pvt) = &state.pvt {
        metrics::counter!("dotgate_pvt_queries_total", "kind" => "encrypted")
            .absolute(pvt.queries_encrypted.load(Relaxed));
        metrics::counter!("dotgate_pvt_queries_total", "kind" => "clear").absolute(pvt.queries_clear.load(Relaxed));
        metrics::counter!("dotgate_pvt_truncated_total").absolute(pvt.truncated.load(Relaxed));
        for (op, count) in pvt.updates() {
            metrics::counter!("dotgate_pvt_updates_total", "op" => op).absolute(count);
        }
        for (reason, count) in pvt.refusals() {
            metrics::counter!("dotgate_pvt_refused_total", "reason" => reason).absolute(count);
        }
    }
    let ready = if state.readiness() == Readiness::Ready { 1.0 } else { 0.0 };
    metrics::gauge!("dotgate_ready").set(ready);
    metrics::gauge!("dotgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
