//! The door every frontend's connections and queries pass: the access lists and the per-client
//! rate limits, as one object shared by all workers (`Arc`).
//!
//! Owns the ACL in force (swapped whole on reload), the rate limiter and how addresses group
//! into clients. Checked at accept, before any TLS work (ACL, then the new-connection rate),
//! and per query (the query rate, for frontends that have a client key). It never does I/O,
//! never counts (the frontend counts what it refuses) and never answers a client.

use std::net::IpAddr;
use std::time::Instant;

use super::acl::{Acl, Cidr, SharedAcl};
use super::prefix::{ClientKey, ClientPrefix};
use super::rate::{RateLimiter, RateSettings};
use crate::config::AccessConfig;

/// Why a connection was closed at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The access lists refuse its address.
    Acl,
    /// Its client opened connections faster than `--max-new-connections-per-client`.
    ConnectionRate,
}

pub struct Gate {
    acl: SharedAcl,
    /// `None` when neither rate limit is on: nothing tracked, nothing to lock.
    rate: Option<RateLimiter>,
    prefix: ClientPrefix,
    limits_queries: bool,
    limits_connections: bool,
}

impl Gate {
    pub fn new(config: &AccessConfig) -> Gate {
        let rate = config.rate_limited().then(|| {
            RateLimiter::new(RateSettings {
                queries_per_second: config.max_qps_per_client,
                connections_per_second: config.max_new_connections_per_client,
                tracked_clients: config.max_tracked_clients,
            })
        });
        Gate {
            acl: SharedAcl::new(Acl::new(&config.allow, &config.deny)),
            rate,
            prefix: config.client_prefix,
            limits_queries: config.max_qps_per_client.is_some(),
            limits_connections: config.max_new_connections_per_client.is_some(),
        }
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.acl.current().allows(ip) {
            return Err(Refusal::Acl);
        }
        if self.limits_connections {
            if let Some(rate) = &self.rate {
                if !rate.allow_connection(self.prefix.key(ip), now) {
                    return Err(Refusal::ConnectionRate);
                }
            }
        }
        Ok(())
    }

    /// Whether the access lists let `ip` in (for a frontend without connections, per datagram).
    pub fn acl_allows(&self, ip: IpAddr) -> bool {
        self.acl.current().allows(ip)
    }

    /// Whether queries are rate-limited (a frontend then keeps each connection's client key).
    pub fn limits_queries(&self) -> bool {
        self.limits_queries
    }

    /// The client `ip` counts as.
    pub fn client_key(&self, ip: IpAddr) -> ClientKey {
        self.prefix.key(ip)
    }

    /// One query from `client` at `now`: true when within its rate.
    #[inline]
    pub fn allow_query(&self, client: ClientKey, now: Instant) -> bool {
        match &self.rate {
            Some(rate) if self.limits_queries => rate.allow_query(client, now),
            _ => true,
        }
    }

    /// Puts new access lists in force (reload); connections already open are not affected.
    pub fn replace_acl(&self, allow: &[Cidr], deny: &[Cidr]) {
        self.acl.replace(Acl::new(allow, deny));
    }

    /// Clients the rate limits track now.
    pub fn tracked_clients(&self) -> usize {
        self.rate.as_ref().map_or(0, RateLimiter::tracked)
    }
}
