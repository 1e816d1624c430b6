//! Frontends: where queries come from. Each one turns its clients' traffic into checked
//! queries for the relay core and implements `relay::ReplyTo` to take the answers back.
//! DoT is the first; DNSCrypt-style stateless encryption over UDP and the private-subdomain
//! gateway are meant to be siblings of `dot/`, touching nothing outside their own folder
//! but a line in the worker that starts them.
pub mod dnsenc;
pub mod doh;
pub mod dot;
pub mod limits;
pub mod listen;
pub mod pvt;

use crate::access::prefix::ClientKey;
use crate::relay::ClientAddr;

/// What a frontend keeps about a connection's client when the relay or the rate limits need
/// it (boxed, and only then, so that an idle connection otherwise carries one pointer).
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// For backends told the client's address (PROXY v2, ECS).
    pub addr: ClientAddr,
    /// For the per-client query rate.
    pub key: ClientKey,
}
