//! Connection limits across all workers and every frontend (DoT, DNSENC over TCP): at most
//! `--max-connections` client connections in all and `--max-connections-per-ip` from one
//! address. A connection over a limit is closed at accept, before any TLS work, and counted. Past 80% of the global limit the idle timeout
//! shrinks (down to 1 s at the limit), so that idle clients make room for new ones.
//!
//! Shared by the workers (one `Arc`), touched once when a connection is accepted and once when
//! it closes, never per query: connections read the idle timeout from their worker's copy,
//! which the worker refreshes at each accept and once a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Open connections, as a share of the limit, past which the idle timeout shrinks.
const PRESSURE_NUM: usize = 4;
const PRESSURE_DEN: usize = 5;
/// The shortest the idle timeout gets under pressure.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ConnectionLimits {
    max: usize,
    max_per_ip: usize,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Above 80% of the limit (for the start/stop log lines).
    under_pressure: AtomicBool,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Limit,
    PerIp,
}

/// Admits a stream connection from `ip` as every frontend does: the access lists, the client's
/// connection rate, then the connection limits; each refusal counted in `stats`. DoT's accept
/// loop does the same checks in its own order around its TLS hand-over; DNSENC over TCP, the
/// private-subdomain gateway over TCP and DoH call this.
pub fn admit_connection(
    gate: &crate::access::gate::Gate,
    limits: &Arc<ConnectionLimits>,
    stats: &crate::stats::WorkerStats,
    ip: IpAddr,
) -> Option<Admission> {
    use crate::access::gate;
    use crate::stats::bump;
    if let Err(refusal) = gate.admit(ip, std::time::Instant::now()) {
        bump(match refusal {
            gate::Refusal::Acl => &stats.connections_refused_acl,
            gate::Refusal::ConnectionRate => &stats.rate_limited_connections,
        });
        return None;
    }
    match limits.admit(ip) {
        Ok(admission) => Some(admission),
        Err(refusal) => {
            bump(match refusal {
                Refusal::Limit => &stats.connections_refused_limit,
                Refusal::PerIp => &stats.connections_refused_per_ip,
            });
            None
        }
    }
}

/// Accepts on `listener` until `shutdown`, admits each connection ([`admit_connection`]; one
/// over a limit is closed at once, before anything is read) and serves it with `serve` as a
/// task of the worker that holds its admission until it ends. After an accept error (out of
/// descriptors, most likely) it waits 100 ms for connections to close.
pub async fn accept_admitted<Serve, Serving>(
    listener: std::net::TcpListener,
    gate: Arc<crate::access::gate::Gate>,
    limits: Arc<ConnectionLimits>,
    stats: Arc<crate::stats::WorkerStats>,
    mut shutdown: crate::runtime::shutdown::Shutdown,
    serve: Serve,
) where
    Serve: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Serving,
    Serving: std::future::Future<Output = ()> + 'static,
{
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(admission) = admit_connection(&gate, &limits, &stats, peer.ip()) else { continue };
        let _ = stream.set_nodelay(true);
        let serving = serve(stream, peer);
        tokio::task::spawn_local(async move {
            serving.await;
            drop(admission);
        });
    }
}

/// A connection's place under the limits, given back when it is dropped.
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max,
            max_per_ip,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            under_pressure: AtomicBool::new(false),
        })
    }

    /// Admits a connection from `ip`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        // An IPv4 client that reached an IPv6 socket (::ffff:a.b.c.d) counts as its IPv4 address.
        let ip = crate::net::canonical_ip(ip);
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let from_ip = per_ip.entry(ip).or_insert(0);
            if *from_ip as usize >= self.max_per_ip {
                return Err(Refusal::PerIp);
            }
            if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
                self.open.fetch_sub(1, Ordering::Relaxed);
                if *from_ip == 0 {
                    per_ip.remove(&ip);
                }
                return Err(Refusal::Limit);
            }
            *from_ip += 1;
        }
        self.note_pressure();
        Ok(Admission { limits: self.clone(), ip })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The idle timeout to apply now: `base`, shrinking linearly from 80% of the limit to
    /// `MIN_IDLE_TIMEOUT` at the limit.
    pub fn idle_timeout(&self, base: Duration) -> Duration {
        let open = self.open();
        let threshold = self.max / PRESSURE_DEN * PRESSURE_NUM;
        if open <= threshold || base <= MIN_IDLE_TIMEOUT {
            return base;
        }
        let span = (self.max - threshold).max(1) as f64;
        let pressure = ((open - threshold) as f64 / span).min(1.0);
        let shrunk = base.as_secs_f64() - (base.as_secs_f64() - MIN_IDLE_TIMEOUT.as_secs_f64()) * pressure;
        Duration::from_secs_f64(shrunk).max(MIN_IDLE_TIMEOUT)
    }

    /// Logs when the open connections cross 80% of the limit, either way.
    fn note_pressure(&self) {
        let open = self.open();
        let pressed = open * PRESSURE_DEN > self.max * PRESSURE_NUM;
        if self.under_pressure.swap(pressed, Ordering::Relaxed) != pressed {
            if pressed {
                tracing::warn!(open, max = self.max, "over 80% of --max-connections: shrinking the idle timeout");
            } else {
                tracing::info!(open, max = self.max, "back under 80% of --max-connections: idle timeout restored");
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        {
            let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(from_ip) = per_ip.get_mut(&self.ip) {
                *from_ip -= 1;
                if *from_ip == 0 {
                    per_ip.remove(&self.ip);
                }
            }
            self.limits.open.fetch_sub(1, Ordering::Relaxed);
        }
        self.limits.note_pressure();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn limits_refuse_and_release() {
        let limits = ConnectionLimits::new(3, 2);
        let a1 = limits.admit(A).unwrap();
        let _a2 = limits.admit(A).unwrap();
        assert_eq!(limits.admit(A).err(), Some(Refusal::PerIp));
        let _b1 = limits.admit(B).unwrap();
        assert_eq!(limits.admit(B).err(), Some(Refusal::Limit));
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _b2 = limits.admit(B).unwrap();
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn idle_timeout_shrinks_past_80_percent() {
        let limits = ConnectionLimits::new(10, 100);
        let base = Duration::from_secs(10);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(limits.admit(A).unwrap());
        }
        assert_eq!(limits.idle_timeout(base), base);
        held.push(limits.admit(A).unwrap());
        let mid = limits.idle_timeout(base);
        assert!(mid < base && mid > MIN_IDLE_TIMEOUT, "{mid:?}");
        held.push(limits.admit(A).unwrap());
        assert_eq!(limits.idle_timeout(base), MIN_IDLE_TIMEOUT);
        held.clear();
        assert_eq!(limits.idle_timeout(base), base);
    }
}
