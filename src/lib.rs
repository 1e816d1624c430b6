//! dotgate: a DNS-over-TLS (RFC 7858) terminating proxy in front of plain-DNS resolvers.
//!
//! Clients open TLS on port 853 and pipeline length-prefixed queries; dotgate relays each one to
//! a UDP backend (BIND, Unbound) under a fresh random ID and writes every answer back with the
//! client's ID the moment it arrives, out of order.
//!
//! # The data path, and where each step lives
//!
//! ```text
//!  client ──TCP──► ① accept ........................ frontend::dot::{listen, accept}
//!                  ② TLS handshake ................. frontend::dot::accept, tls
//!                  ③ frame reader .................. frontend::dot::{connection, framing}
//!                  ④ query check (FORMERR/NOTIMP) .. dns::check_query
//!                  ⑤ in-flight table, random ID .... relay (inflight, backends)
//!                  ⑥ upstream send (UDP; TCP on TC)  relay::{udp, tcp}
//!  backend ──UDP─► ⑦ match source + ID + question .. relay::matching (Relay::on_udp_datagram)
//!                  ⑧ restore ID, queue the answer .. frontend::dot::answers (a relay::ReplyTo)
//!                  ⑨ coalesced TLS write ........... frontend::dot::connection
//! ```
//!
//! Deadlines run beside ⑤–⑦ (`relay`): an unanswered query is retried once on another healthy
//! backend, then answered SERVFAIL.
//!
//! # Threads and ownership
//!
//! `runtime::worker`: N workers, each an OS thread with a current-thread runtime that owns its
//! listener (SO_REUSEPORT), connections, upstream sockets and in-flight table. A query never
//! crosses threads; the per-query path has no lock. Shared state (config, TLS config) is read
//! only (the certificate and ticket keys behind it are swapped by `tls::reload`, driven from
//! the main thread by `runtime::reload`). `config` turns flags and the TOML file into `Config`;
//! `stats` counts per worker.

// The system calls std, tokio and socket2 lack are in the `dotgate-sys` crate (crates/dotgate-sys).
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod config;
pub mod dns;
pub mod edns;
pub mod frontend;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hpke;
pub mod message;
pub mod net;
pub mod recency;
pub mod relay;
pub mod runtime;
pub mod stats;
pub mod tls;
pub mod tsig;

use std::sync::Arc;
use std::thread;

use config::Config;
use runtime::worker::{self, WorkerSpec};
use stats::WorkerStats;
use tls::TlsSetup;

/// Why the server stopped with an error (after a successful start of the config).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Listen(#[from] frontend::listen::ListenError),
    #[error("worker {worker} failed: {source}")]
    Worker { worker: usize, source: std::io::Error },
    #[error("cannot listen on admin address {addr}: {source}")]
    Admin { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error("the private-subdomain gateway cannot start: {0}")]
    Pvt(String),
}

/// Binds, starts the workers, and serves until SIGTERM or SIGINT, then drains and returns.
pub fn run(
    config: Config,
    tls: TlsSetup,
    dnsenc: Option<Arc<frontend::dnsenc::server::DnsencServer>>,
    pvt: Option<Arc<frontend::pvt::gateway::PvtServer>>,
) -> Result<(), RunError> {
    let config = Arc::new(config);
    // Raised before the listeners and connections need descriptors; said after the binds, so
    // that a bad address stays the only line a failed start prints.
    let open_files = dotgate_sys::rlimit::raise_open_files();
    let mut skipped = Vec::new();
    let (listeners, bound) =
        frontend::listen::bind_all(&config.listen, config.workers, config.tcp_fast_open, &mut skipped)?;
    let (doh_listeners, doh_bound) = if config.doh_listen.is_empty() {
        ((0..config.workers).map(|_| Vec::new()).collect::<Vec<_>>(), Vec::new())
    } else {
        frontend::listen::bind_all(&config.doh_listen, config.workers, config.tcp_fast_open, &mut skipped)?
    };
    let mut doh_listeners: Vec<Option<Vec<std::net::TcpListener>>> = doh_listeners.into_iter().map(Some).collect();
    let (mut dnsenc_sockets, dnsenc_bound) = match &config.dnsenc {
        Some(settings) if dnsenc.is_some() => {
            let (sockets, bound) = frontend::listen::bind_udp_and_tcp_all(&settings.listen, config.workers)?;
            (sockets.into_iter().map(Some).collect::<Vec<_>>(), bound)
        }
        _ => (Vec::new(), Vec::new()),
    };
    let (mut pvt_sockets, pvt_bound) = match &config.pvt {
        Some(settings) if pvt.is_some() => {
            let (sockets, bound) = frontend::listen::bind_udp_and_tcp_all(&settings.listen, config.workers)?;
            (sockets.into_iter().map(Some).collect::<Vec<_>>(), bound)
        }
        _ => (Vec::new(), Vec::new()),
    };
    let admin_listener = match config.admin {
        Some(addr) => Some(admin::bind(addr).map_err(|source| RunError::Admin { addr, source })?),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    match open_files {
        Ok((_, open_files)) if (open_files as usize) < config.max_connections + 1024 => tracing::warn!(
            open_files,
            max_connections = config.max_connections,
            "the open-file limit is below --max-connections: connections past it are refused at accept"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    for (addr, e) in skipped {
        tracing::warn!(%addr, error = %e, "not listening on this address (no IPv6 here?)");
    }
    if tls.self_signed {
        tracing::warn!(
            "no --cert/--key given: serving an ephemeral self-signed certificate; clients can pin it with pin-sha256=\"{}\"",
            tls.spki_pin
        );
    }

    let main_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::Signals)?;
    if let Some(server) = &pvt {
        // The `_pvt` apexes hold the provider's KEY before the first client can ask for it.
        main_runtime.block_on(frontend::pvt::tools::publish_provider_key(server)).map_err(RunError::Pvt)?;
    }
    let pvt_stats = Arc::new(frontend::pvt::PvtStats::default());
    let (trigger, shutdown) = runtime::shutdown::channel();
    let (exited_tx, mut exited_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, std::io::Result<()>)>();

    let limits = frontend::limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
    let gate = Arc::new(access::gate::Gate::new(&config.access));
    let worker_stats: Vec<Arc<WorkerStats>> =
        (0..listeners.len()).map(|_| Arc::new(WorkerStats::new(config.backends.len()))).collect();
    let admin_state =
        admin::AdminState::new(worker_stats.clone(), config.backends.clone(), limits.clone(), tls.clone());
    let admin_state = Arc::new(if pvt.is_some() { admin_state.with_pvt(pvt_stats.clone()) } else { admin_state });
    let mut threads = Vec::new();
    for (index, listeners) in listeners.into_iter().enumerate() {
        let spec = WorkerSpec {
            index,
            config: config.clone(),
            tls: tls.clone(),
            listeners,
            shutdown: shutdown.clone(),
            limits: limits.clone(),
            gate: gate.clone(),
            stats: worker_stats[index].clone(),
            dnsenc: dnsenc
                .clone()
                .and_then(|server| Some((server, dnsenc_sockets.get_mut(index).and_then(Option::take)?))),
            doh_listeners: doh_listeners.get_mut(index).and_then(Option::take).unwrap_or_default(),
            pvt: pvt.clone().map(|server| {
                (server, pvt_stats.clone(), pvt_sockets.get_mut(index).and_then(Option::take).unwrap_or_default())
            }),
        };
        let exited_tx = exited_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("dotgate-worker-{index}"))
            .spawn(move || {
                // A bug that panics a worker must stop the process loudly, not leave it
                // serving on fewer workers than asked.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker::run(spec)))
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")));
                let _ = exited_tx.send((index, result));
            })
            .map_err(|source| RunError::Worker { worker: index, source })?;
        threads.push(handle);
    }
    drop(exited_tx);

    let listen_list: Vec<String> = bound.iter().map(ToString::to_string).collect();
    let backend_list: Vec<String> = config
        .backends
        .iter()
        .zip(&config.backend_options)
        .map(|(addr, options)| match (options.proxy_protocol, options.ecs) {
            (false, None) => addr.to_string(),
            (true, None) => format!("{addr},proxy-protocol"),
            (false, Some(ecs)) => format!("{addr},ecs={}:{}", ecs.v4, ecs.v6),
            (true, Some(ecs)) => format!("{addr},proxy-protocol,ecs={}:{}", ecs.v4, ecs.v6),
        })
        .collect();
    let rate = |limit: Option<u32>| limit.map_or_else(|| "off".to_owned(), |n| n.to_string());
    tracing::info!(
        "dotgate started: listen=[{}] doh=[{}] dnsenc=[{}] pvt=[{}] backends=[{}] workers={} allow={} deny={} max-qps-per-client={} max-new-connections-per-client={} admin={} cert={} pin-sha256=\"{}\"",
        listen_list.join(","),
        doh_bound.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        dnsenc_bound.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        pvt_bound.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        backend_list.join(" "),
        config.workers,
        config.access.allow.len(),
        config.access.deny.len(),
        rate(config.access.max_qps_per_client),
        rate(config.access.max_new_connections_per_client),
        admin_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        if tls.self_signed { "self-signed (ephemeral)" } else { "from file" },
        tls.spki_pin,
    );

    let outcome = main_runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
        let hangup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
        let acl_file = config.config_file.clone().filter(|_| config.access.lists_from_file);
        let keys_from = config.dnsenc.as_ref().and_then(|settings| settings.keys_from.clone());
        // Read once per look by runtime::reload when the lists or the key list follow it.
        let config_file = acl_file.clone().or(keys_from);
        let acl = access::reload::AclReloader::new(
            acl_file,
            gate.clone(),
            runtime::reload::read_config(config_file.as_ref()).as_ref(),
        );
        let dnsenc_keys = match (&config.dnsenc, &dnsenc) {
            (Some(settings), Some(server)) => Some(frontend::dnsenc::reload::KeyReloader::new(
                settings.keys.clone(),
                settings.keys_from.clone(),
                server.clone(),
            )),
            _ => None,
        };
        tokio::spawn(runtime::reload::watch(
            tls::reload::Reloader::new(&tls),
            config_file,
            acl,
            dnsenc_keys,
            hangup,
            shutdown.clone(),
        ));
        // The listeners are bound and listening: connections queue from here on.
        admin_state.set_serving();
        if let Some(listener) = admin_listener {
            tokio::spawn(admin::serve(listener, admin_state.clone()));
        }
        let failure = tokio::select! {
            _ = term.recv() => None,
            _ = int.recv() => None,
            exited = exited_rx.recv() => exited,
        };
        admin_state.set_draining();
        if failure.is_none() {
            tracing::info!("shutting down: closing listeners, draining in-flight queries");
        }
        trigger.trigger();
        if let Some((worker, result)) = failure {
            let source = result.err().unwrap_or_else(|| std::io::Error::other("worker stopped unexpectedly"));
            return Err(RunError::Worker { worker, source });
        }
        // A second signal stops waiting for the drain.
        tokio::select! {
            _ = async { while exited_rx.recv().await.is_some() {} } => {}
            _ = term.recv() => tracing::warn!("second signal: exiting without waiting for the drain"),
            _ = int.recv() => tracing::warn!("second signal: exiting without waiting for the drain"),
        }
        Ok(())
    });
    if outcome.is_ok() {
        for handle in threads {
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
    outcome
}
