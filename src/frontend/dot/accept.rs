//! The accept loop of one listener on one worker.
//!
//! Accept errors never end the loop: running out of file descriptors backs off instead of
//! spinning. On shutdown the loop returns and the listener closes at once.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

use super::{connection, DotContext};
use crate::access::gate;
use crate::frontend::limits::Refusal;
use crate::frontend::Client;
use crate::relay::proxy_v2::Transport;
use crate::relay::ClientAddr;
use crate::runtime::shutdown::Shutdown;
use crate::stats::bump;

/// Pause after an accept error that more accepting cannot fix (no file descriptors left).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one accept-error log line per this long per listener.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// DoT's accept loop.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<DotContext>, shutdown: Shutdown) {
    accept_loop_of(listener, ctx, shutdown, crate::stats::Frontend::Dot, super::messages::DotMessages::default).await
}

/// Accepts connections that speak `P` inside TLS (`new_protocol` makes each one's state), each
/// served by `connection::serve` as a task of the worker.
pub async fn accept_loop_of<P: connection::Protocol + 'static>(
    listener: TcpListener,
    ctx: Rc<DotContext>,
    mut shutdown: Shutdown,
    frontend: crate::stats::Frontend,
    new_protocol: impl Fn() -> P,
) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Refused by the access lists or over a limit: closed now, before any TLS work.
                if let Err(refusal) = ctx.gate.admit(peer.ip(), Instant::now()) {
                    bump(match refusal {
                        gate::Refusal::Acl => &ctx.stats.connections_refused_acl,
                        gate::Refusal::ConnectionRate => &ctx.stats.rate_limited_connections,
                    });
                    continue;
                }
                let admission = match ctx.limits.admit(peer.ip()) {
                    Ok(admission) => admission,
                    Err(refusal) => {
                        bump(match refusal {
                            Refusal::Limit => &ctx.stats.connections_refused_limit,
                            Refusal::PerIp => &ctx.stats.connections_refused_per_ip,
                        });
                        continue;
                    }
                };
                ctx.idle_timeout.set(ctx.limits.idle_timeout(ctx.settings.idle_timeout));
                // Answers are coalesced in user space; Nagle would only delay them.
                let _ = tcp.set_nodelay(true);
                bump(&P::stats(&ctx.stats).connections_accepted);
                let client = client_of(&ctx, &tcp, peer);
                let serving = connection::serve(tcp, ctx.clone(), admission, client, new_protocol(), frontend);
                tokio::task::spawn_local(serving);
            }
            Err(e) => {
                if last_error_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
                    tracing::warn!(error = %e, "accept failed");
                    last_error_log = Some(Instant::now());
                }
                if is_resource_exhaustion(&e) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// What the connection keeps about its client, when the relay (backends told the client's
/// address) or the query rate limit needs it: one `getsockname` per connection then.
fn client_of(ctx: &DotContext, tcp: &TcpStream, peer: SocketAddr) -> Option<Box<Client>> {
    if !ctx.relay.needs_client_address() && !ctx.gate.limits_queries() {
        return None;
    }
    // A listener's own address; it cannot fail on a connected socket, and a wildcard in the
    // header would at worst name the listener instead of the address the client used.
    let local = tcp.local_addr().unwrap_or(peer);
    Some(Box::new(Client {
        addr: ClientAddr { peer, local, transport: Transport::Stream },
        key: ctx.gate.client_key(peer.ip()),
    }))
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}
