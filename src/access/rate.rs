use std::time::Instant; use super::prefix::ClientKey;
pub struct RateLimiter;
pub struct RateSettings { pub queries_per_second: Option<u32>, pub connections_per_second: Option<u32>, pub tracked_clients: usize }
impl RateLimiter { pub fn new(_settings: RateSettings) -> RateLimiter { RateLimiter }
 pub fn allow_query(&self, _client: ClientKey, _now: Instant) -> bool { true }
 pub fn allow_connection(&self, _client: ClientKey, _now: Instant) -> bool { true }
 pub fn tracked(&self) -> usize { 0 } pub fn memory_bytes(&self) -> usize { 0 } }
pub const DEFAULT_TRACKED_CLIENTS: usize = 65_536;
