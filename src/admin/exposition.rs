//! `/metrics`: adds up every worker's published counters and gauges at scrape time and renders
//! them in the Prometheus text format through `metrics-exporter-prometheus`.
//!
//! The workers never call into `metrics`: a recorder call on the per-query path would cost a
//! hash lookup or a shared atomic. They count into their own `WorkerStats`; this module copies
//! the sums into a recorder of its own (not the process-global one) once per scrape. It never
//! writes anything a worker reads.

use std::sync::atomic::Ordering::Relaxed;

use metrics::{Label, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::{AdminState, Readiness};
use crate::stats::{COUNTERS, COUNTER_HELP, RCODE_NAMES};

/// Backend answer RCODEs always exposed, even at zero, so that dashboards and alerts find a
/// series from the first scrape; the others appear once seen.
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
        self.recorder.handle().render()
    }
}

fn describe() {
    for (metric, help) in COUNTER_HELP {
        metrics::describe_counter!(format!("dotgate_{metric}"), Unit::Count, help);
    }
    metrics::describe_gauge!("dotgate_connections_open", "Client connections open, all workers together.");
    metrics::describe_gauge!("dotgate_queries_in_flight", "Queries waiting on a backend (refreshed each second).");
    metrics::describe_gauge!("dotgate_backend_up", "1 while the backend is not marked down by every worker.");
    metrics::describe_gauge!("dotgate_backend_outstanding", "Queries waiting on the backend (refreshed each second).");
    metrics::describe_gauge!("dotgate_ready", "1 while /readyz answers ready.");
    metrics::describe_gauge!("dotgate_build_info", "Always 1; the version is a label.");
}

fn record(state: &AdminState) {
    let sum = |pick: &dyn Fn(&crate::stats::WorkerStats) -> u64| -> u64 { state.workers.iter().map(|w| pick(w)).sum() };

    for (i, exposed) in COUNTERS.iter().enumerate() {
        let labels: Vec<Label> = exposed.labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)).collect();
        metrics::counter!(format!("dotgate_{}", exposed.metric), labels).absolute(sum(&|w| w.counters()[i].get()));
    }
    for (rcode, name) in RCODE_NAMES.iter().enumerate() {
        let answers = sum(&|w| w.answers_backend[rcode].get());
        if answers > 0 || ALWAYS_EXPOSED_RCODES.contains(&(rcode as u8)) {
            metrics::counter!("dotgate_answers_total", "source" => "backend", "rcode" => *name).absolute(answers);
        }
    }

    metrics::gauge!("dotgate_connections_open").set(state.limits.open() as f64);
    metrics::gauge!("dotgate_queries_in_flight").set(sum(&|w| w.in_flight.load(Relaxed)) as f64);
    for (i, backend) in state.backends.iter().enumerate() {
        let name = backend.to_string();
        let up = if state.backend_up(i) { 1.0 } else { 0.0 };
        metrics::gauge!("dotgate_backend_up", "backend" => name.clone()).set(up);
        let outstanding = sum(&|w| w.backends.get(i).map_or(0, |b| b.outstanding.load(Relaxed)));
        metrics::gauge!("dotgate_backend_outstanding", "backend" => name).set(outstanding as f64);
    }
    let ready = if state.readiness() == Readiness::Ready { 1.0 } else { 0.0 };
    metrics::gauge!("dotgate_ready").set(ready);
    metrics::gauge!("dotgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
