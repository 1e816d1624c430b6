//! The admin endpoint: plain HTTP/1.1 on its own address (`--admin`), never on the DoT port.
//!
//! - `/metrics`: Prometheus text format (see `exposition`);
//! - `/healthz`: 200 while the process runs;
//! - `/readyz`: 200 once the listeners are up, while at least one backend is up and before
//!   drain begins; 503 with the reason otherwise, so that a load balancer or Kubernetes stops
//!   sending new clients the moment SIGTERM arrives.
//!
//! It runs on the main thread's runtime, apart from the workers, and only reads what they
//! publish (`stats::WorkerStats`); it never touches a connection or a query. It keeps serving
//! through the drain. hyper does the HTTP: this is no hot path.

mod exposition;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::frontend::limits::ConnectionLimits;
use crate::stats::WorkerStats;
use crate::tls::TlsSetup;

/// Admin connections served at once; more are closed at accept (scrapers and probes need few).
const MAX_CONNECTIONS: usize = 64;
/// A request's head must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No admin connection lives longer than this.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// What the endpoint reports on: shared with the main thread, which flips the lifecycle flags.
pub struct AdminState {
    pub workers: Vec<Arc<WorkerStats>>,
    pub backends: Vec<SocketAddr>,
    pub limits: Arc<ConnectionLimits>,
    /// For the reload counts and the certificate's expiry.
    pub tls: TlsSetup,
    /// The workers are running with their listeners open.
    serving: AtomicBool,
    /// Shutdown began: no new clients.
    draining: AtomicBool,
    exposition: exposition::Exposition,
    /// The private-subdomain gateway's counters, when it is on.
    pub pvt: Option<Arc<crate::frontend::pvt::PvtStats>>,
}

/// What `/readyz` answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Starting,
    Draining,
    NoBackendUp,
}

impl AdminState {
    pub fn new(
        workers: Vec<Arc<WorkerStats>>,
        backends: Vec<SocketAddr>,
        limits: Arc<ConnectionLimits>,
        tls: TlsSetup,
    ) -> AdminState {
        AdminState {
            workers,
            backends,
            limits,
            tls,
            serving: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            exposition: exposition::Exposition::new(),
            pvt: None,
        }
    }

    /// Exposes the private-subdomain gateway's counters too.
    pub fn with_pvt(mut self, stats: Arc<crate::frontend::pvt::PvtStats>) -> AdminState {
        self.pvt = Some(stats);
        self
    }

    pub fn set_serving(&self) {
        self.serving.store(true, Relaxed);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Relaxed);
    }

    /// Whether backend `index` is up: some worker has not marked it down.
    pub fn backend_up(&self, index: usize) -> bool {
        self.workers.iter().any(|w| w.backends.get(index).is_some_and(|b| b.up.load(Relaxed)))
    }

    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Relaxed) {
            Readiness::Draining
        } else if !self.serving.load(Relaxed) {
            Readiness::Starting
        } else if !(0..self.backends.len()).any(|i| self.backend_up(i)) {
            Readiness::NoBackendUp
        } else {
            Readiness::Ready
        }
    }
}

/// Binds the admin address (before the workers start, so a bad address stops the start).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the admin endpoint until the runtime stops. Call inside a tokio runtime.
pub async fn serve(listener: std::net::TcpListener, state: Arc<AdminState>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "admin endpoint cannot start");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::warn!(error = %e, "admin endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&state, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

fn respond<B>(state: &AdminState, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(state.exposition.render(state))));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match state.readiness() {
            Readiness::Ready => text(StatusCode::OK, "ready\n"),
            Readiness::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n"),
            Readiness::Draining => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n"),
            Readiness::NoBackendUp => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no backend up\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
