//! One worker: an OS thread running a current-thread tokio runtime with its own listeners,
//! connections, upstream sockets and in-flight table. A query never leaves its worker, so the
//! per-query path takes no lock and touches no other core's memory.
//!
//! On shutdown the worker closes its listeners at once, lets its connections finish what is in
//! flight and flush (for at most the drain timeout), logs its counters and returns.

use std::io;
use std::rc::Rc;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::LocalSet;

use crate::config::Config;
use crate::frontend::dot::{accept, DotContext, DotSettings, OpenConnections};
use crate::frontend::limits::ConnectionLimits;
use crate::relay::{Relay, RelaySettings};
use crate::runtime::shutdown::Shutdown;
use crate::stats::WorkerStats;
use crate::tls::TlsSetup;

/// What a worker thread is started with.
pub struct WorkerSpec {
    pub index: usize,
    pub config: Arc<Config>,
    pub tls: TlsSetup,
    /// This worker's listening sockets (siblings of the other workers', via SO_REUSEPORT).
    pub listeners: Vec<std::net::TcpListener>,
    pub shutdown: Shutdown,
    /// The connection limits, one for all workers.
    pub limits: Arc<ConnectionLimits>,
    /// The access lists and rate limits, one for all workers.
    pub gate: Arc<crate::access::gate::Gate>,
    /// This worker's counters, which the admin endpoint reads.
    pub stats: Arc<WorkerStats>,
    /// The DNSENC frontend's server and this worker's sockets for it, when it is on.
    pub dnsenc: Option<(Arc<crate::frontend::dnsenc::server::DnsencServer>, Vec<crate::frontend::listen::UdpAndTcp>)>,
    /// This worker's DoH listening sockets (SO_REUSEPORT siblings of the other workers').
    pub doh_listeners: Vec<std::net::TcpListener>,
    /// The private-subdomain gateway, its counters and this worker's sockets for it, when on.
    pub pvt: Option<(
        Arc<crate::frontend::pvt::gateway::PvtServer>,
        Arc<crate::frontend::pvt::PvtStats>,
        Vec<crate::frontend::listen::UdpAndTcp>,
    )>,
}

/// Runs a worker to completion on the calling thread.
pub fn run(spec: WorkerSpec) -> io::Result<()> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    crate::runtime::pacing::install(&mut builder, spec.config.coalesce_window, spec.stats.clone());
    let runtime = builder.build()?;
    let local = LocalSet::new();
    local.block_on(&runtime, serve(spec))
}

async fn serve(spec: WorkerSpec) -> io::Result<()> {
    let WorkerSpec { index, config, tls, listeners, mut shutdown, limits, gate, stats, dnsenc, doh_listeners, pvt } =
        spec;
    let relay = Relay::new(
        RelaySettings {
            backends: config.backends.clone(),
            upstream_timeout: config.upstream_timeout,
            upstream_sockets: config.upstream_sockets,
            worker: index,
            tcp_memory_entries: config.tcp_memory_entries,
            tcp_memory_ttl: config.tcp_memory_ttl,
            backend_options: config.backend_options.clone(),
        },
        stats.clone(),
    )?;
    relay.start();
    relay.publish_gauges();
    let pvt = match pvt {
        Some((server, pvt_stats, sockets)) => Some((start_pvt(index, &config, server, pvt_stats)?, sockets)),
        None => None,
    };
    let ctx = Rc::new(DotContext {
        tls,
        relay: relay.clone(),
        stats: stats.clone(),
        settings: DotSettings {
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
            max_in_flight: config.max_in_flight,
            log_queries: config.log_queries,
            padding: config.padding,
        },
        connections: Rc::new(OpenConnections::default()),
        buffers: Default::default(),
        query_edit: Default::default(),
        idle_timeout: std::cell::Cell::new(limits.idle_timeout(config.idle_timeout)),
        limits,
        gate,
        pvt: pvt.as_ref().map(|(gateway, _)| gateway.clone()),
    });
    for listener in listeners {
        let listener = TcpListener::from_std(listener)?;
        tokio::task::spawn_local(accept::accept_loop(listener, ctx.clone(), shutdown.clone()));
    }
    if !doh_listeners.is_empty() {
        // DoH connections are DoT's connections speaking HTTP: the same context, limits and drain.
        let doh = Rc::new(crate::frontend::doh::DohContext::new(
            ctx.tls.doh.clone(),
            config.doh_path.clone(),
            config.max_in_flight,
        ));
        for listener in doh_listeners {
            let accepting = crate::frontend::doh::accept_loop(ctx.clone(), doh.clone(), listener, shutdown.clone());
            tokio::task::spawn_local(accepting);
        }
    }
    if let Some((server, sockets)) = dnsenc {
        let dnsenc = Rc::new(crate::frontend::dnsenc::DnsencContext::new(
            server,
            relay.clone(),
            stats.clone(),
            ctx.gate.clone(),
            ctx.limits.clone(),
            config.idle_timeout,
            config.max_in_flight,
        ));
        for crate::frontend::listen::UdpAndTcp { udp, tcp } in sockets {
            let (udp_ctx, udp_shutdown) = (dnsenc.clone(), shutdown.clone());
            tokio::task::spawn_local(async move {
                if let Err(e) = crate::frontend::dnsenc::udp::serve(udp_ctx, udp, udp_shutdown).await {
                    tracing::warn!(error = %e, "DNSENC UDP listener failed");
                }
            });
            tokio::task::spawn_local(crate::frontend::dnsenc::tcp::accept_loop(dnsenc.clone(), tcp, shutdown.clone()));
        }
    }
    if let Some((gateway, sockets)) = pvt {
        let settings = Rc::new(crate::frontend::pvt::tcp::TcpSettings {
            gate: ctx.gate.clone(),
            stats: stats.clone(),
            limits: ctx.limits.clone(),
            idle_timeout: config.idle_timeout,
            max_in_flight: config.max_in_flight,
        });
        for crate::frontend::listen::UdpAndTcp { udp, tcp } in sockets {
            let (udp_ctx, gate, udp_shutdown) = (gateway.clone(), ctx.gate.clone(), shutdown.clone());
            tokio::task::spawn_local(async move {
                if let Err(e) = crate::frontend::pvt::udp::serve(udp_ctx, gate, udp, udp_shutdown).await {
                    tracing::warn!(error = %e, "private-subdomain UDP listener failed");
                }
            });
            tokio::task::spawn_local(crate::frontend::pvt::tcp::accept_loop(
                gateway.clone(),
                settings.clone(),
                tcp,
                shutdown.clone(),
            ));
        }
    }
    tokio::task::spawn_local(every_second(ctx.clone()));

    shutdown.wait().await;
    ctx.connections.begin_drain();
    let drained = tokio::time::timeout(config.drain_timeout, ctx.connections.all_closed()).await.is_ok();
    tracing::info!(
        worker = index,
        drained,
        open_connections = ctx.connections.count(),
        in_flight = relay.in_flight(),
        "worker stopped: {stats}"
    );
    Ok(())
}

/// The worker's gateway, with a relay of its own to the primary (its answers are sealed, never
/// mixed with the backends').
fn start_pvt(
    index: usize,
    config: &Config,
    server: Arc<crate::frontend::pvt::gateway::PvtServer>,
    pvt_stats: Arc<crate::frontend::pvt::PvtStats>,
) -> io::Result<Rc<crate::frontend::pvt::gateway::PvtContext>> {
    let relay = Relay::new(
        RelaySettings {
            backends: vec![server.primary.addr],
            upstream_timeout: config.upstream_timeout,
            upstream_sockets: 1,
            worker: index,
            tcp_memory_entries: 0,
            tcp_memory_ttl: config.tcp_memory_ttl,
            backend_options: vec![Default::default()],
        },
        // The relay's own counters for the primary are not exposed: the gateway counts its
        // queries itself.
        Arc::new(WorkerStats::new(1)),
    )?;
    relay.start();
    Ok(Rc::new(crate::frontend::pvt::gateway::PvtContext::new(server, relay, pvt_stats)))
}

/// Once a second: keeps the worker's idle timeout in step with the connections open on all
/// workers, for the connections that close elsewhere (accepts refresh it too), and publishes
/// the relay's gauges for the admin endpoint.
async fn every_second(ctx: Rc<DotContext>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        ctx.idle_timeout.set(ctx.limits.idle_timeout(ctx.settings.idle_timeout));
        ctx.relay.publish_gauges();
    }
}
