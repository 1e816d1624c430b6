//! Per-client rate limits (`--max-qps-per-client`, `--max-new-connections-per-client`): for each client
//! (a `ClientKey`, an address grouped by `ClientPrefix`) a token bucket for its queries and one
//! for its new connections. A bucket of rate N holds N tokens (a burst of N), refills
//! continuously at N per second, and a client never seen starts full.
//!
//! Owns one table shared by all workers, so that a client's limit holds whichever worker its
//! queries reach. It is split into 64 shards by a keyed hash of the client; each shard is a
//! `Mutex` held only for one lookup-and-update of a few dozen nanoseconds, so two workers wait
//! on each other only when they touch the same shard in the same instant. Callers pass the time
//! (`Instant`), so the arithmetic is testable; this module never reads the clock, never does I/O
//! and never decides what a refused client is told.
//!
//! What it must never do: grow (each shard's entries, index and recency links are allocated in
//! `new`; a full shard evicts its least recently seen client, which starts full if it comes
//! back), allocate or hold a lock across anything but the O(1) update on the per-query path, let
//! a client aim hash collisions (SipHash under a random key per process picks the shard and the
//! index position), or mint tokens when handed a time earlier than a bucket's last update
//! (another worker got there first): such a call refills nothing.
//!
//! Memory: 64 bytes per client slot plus two 8-byte index positions, about 80 bytes per tracked
//! client, 5 MiB at the default 65,536 (`memory_bytes` says exactly).
//!
//! Hand-rolled rather than a crate (`lru`, `governor`, a concurrent map): those allocate per new
//! key or grow with the keys they see, which a flood of source addresses would turn into
//! allocation per query and unbounded memory; this table is `relay::tcp_memory`'s design (a slab
//! of nodes in recency order plus an open-addressing index, both sized once) behind shard locks.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::prefix::ClientKey;

/// How many clients the table tracks unless told otherwise (`--max-tracked-clients`).
pub const DEFAULT_TRACKED_CLIENTS: usize = 65_536;

/// The most clients a table may track (about 1.3 GB of table); config caps it far lower.
pub const MAX_TRACKED_CLIENTS: usize = 1 << 24;

/// Shards of a table (fewer when it tracks fewer clients than this, so that none is empty).
const SHARDS: usize = 64;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A bucket counts in billionths of a token, so that a rate of N tokens per second refills
/// exactly N units per nanosecond: integers throughout, a fraction of a token carried over to
/// the next call, no drift. N up to `u32::MAX` fits: a full bucket is below 2^63 units.
const UNITS_PER_TOKEN: u64 = NANOS_PER_SECOND;

// `NIL` (no slot) ends the recency list and marks an empty index position.
use crate::recency::{Linked, Links, Recency, NIL};

/// The limits a `RateLimiter` enforces, and how many clients it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// Queries one client may send per second, and in one burst; `None`: no query limit.
    /// `Some(0)` refuses every query.
    pub queries_per_second: Option<u32>,
    /// New connections one client may open per second, and in one burst; `None`: no limit.
    /// `Some(0)` refuses every connection.
    pub connections_per_second: Option<u32>,
    /// The most clients tracked at once (at least 1, at most `MAX_TRACKED_CLIENTS`); unused
    /// when both limits are off.
    pub tracked_clients: usize,
}

impl Default for RateSettings {
    /// Both limits off, `DEFAULT_TRACKED_CLIENTS`.
    fn default() -> RateSettings {
        RateSettings {
            queries_per_second: None,
            connections_per_second: None,
            tracked_clients: DEFAULT_TRACKED_CLIENTS,
        }
    }
}

/// Per-client token buckets for the query rate and the new-connection rate, shared by all
/// workers.
pub struct RateLimiter {
    queries_per_second: Option<u32>,
    connections_per_second: Option<u32>,
    /// SipHash keys drawn from the OS for this table: the shard and index position of a client.
    hasher: RandomState,
    /// Times are kept as nanoseconds since this instant (u64: 584 years).
    epoch: Instant,
    /// None when both limits are off.
    shards: Box<[Shard]>,
    /// The number of shards less one (a power of two less one).
    shard_mask: usize,
}

/// One shard, alone on its cache lines (128 bytes: x86 prefetches lines in pairs), so that two
/// workers locking neighbouring shards do not contend for one line.
#[repr(align(128))]
struct Shard {
    table: Mutex<Table>,
}

/// A shard's clients: a slab of nodes linked in recency order, and a linear-probing index.
struct Table {
    /// The clients. Grows (within its reserved capacity: no allocation) until `capacity`, then
    /// the least recently seen slot is reused.
    nodes: Vec<Node>,
    capacity: usize,
    /// Hash → slot, `slot == NIL` where empty. At least twice `capacity` positions (a power of
    /// two), so a probe ends at an empty position soon.
    index: Box<[Position]>,
    /// Most recently seen first; the tail is the next to go when the table is full.
    order: Recency,
}

/// One tracked client: 64 bytes.
struct Node {
    client: ClientKey,
    /// Indexed by `Kind`.
    buckets: [Bucket; 2],
    /// The low 32 bits of the client's hash (its index home position, and a quick compare).
    tag: u32,
    /// Its place in the recency order.
    links: Links,
}

impl Linked for Node {
    fn links(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// An index position: the slot of a client and its tag (so a probe compares tags without
/// reading the node).
#[derive(Clone, Copy)]
struct Position {
    tag: u32,
    slot: u32,
}

const EMPTY: Position = Position { tag: 0, slot: NIL };

#[derive(Clone, Copy)]
enum Kind {
    Query = 0,
    Connection = 1,
}

/// A token bucket, in `UNITS_PER_TOKEN`ths of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    units: u64,
    /// When `units` was last brought up to date (nanoseconds since the limiter's epoch).
    updated: u64,
}

impl Bucket {
    /// A full bucket of rate `per_second` at `now`.
    fn full(per_second: u32, now: u64) -> Bucket {
        Bucket { units: u64::from(per_second) * UNITS_PER_TOKEN, updated: now }
    }

    /// Refills the bucket up to `now` and takes a token if it holds one. A `now` before the
    /// last update refills nothing (and the update time stays).
    fn take(&mut self, per_second: u32, now: u64) -> bool {
        let per_second = u64::from(per_second);
        if now > self.updated {
            // A second refills a whole bucket, so a longer gap adds nothing more (and cannot
            // overflow: below 2 * 2^62).
            let elapsed = (now - self.updated).min(NANOS_PER_SECOND);
            self.units = (self.units + elapsed * per_second).min(per_second * UNITS_PER_TOKEN);
            self.updated = now;
        }
        if self.units >= UNITS_PER_TOKEN {
            self.units -= UNITS_PER_TOKEN;
            true
        } else {
            false
        }
    }
}

impl RateLimiter {
    /// A limiter enforcing `settings`; everything it will ever use is allocated here (nothing
    /// when both limits are off). `tracked_clients` 0 is taken as 1.
    pub fn new(settings: RateSettings) -> RateLimiter {
        assert!(
            settings.tracked_clients <= MAX_TRACKED_CLIENTS,
            "rate-limit table of {} clients above {MAX_TRACKED_CLIENTS}",
            settings.tracked_clients
        );
        let off = settings.queries_per_second.is_none() && settings.connections_per_second.is_none();
        let tracked = if off { 0 } else { settings.tracked_clients.max(1) };
        let shard_count = if tracked == 0 { 0 } else { SHARDS.min(1 << tracked.ilog2()) };
        let shards = (0..shard_count)
            .map(|i| {
                // Spread `tracked` exactly: the first shards take one more each.
                let capacity = tracked / shard_count + usize::from(i < tracked % shard_count);
                Shard { table: Mutex::new(Table::new(capacity)) }
            })
            .collect();
        RateLimiter {
            queries_per_second: settings.queries_per_second,
            connections_per_second: settings.connections_per_second,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            shards,
            shard_mask: shard_count.saturating_sub(1),
        }
    }

    /// One query from `client` at `now`: true when within its rate (a token taken), false when
    /// over. Always true when the query limit is off.
    pub fn allow_query(&self, client: ClientKey, now: Instant) -> bool {
        match self.queries_per_second {
            None => true,
            Some(per_second) => self.take(Kind::Query, per_second, client, now),
        }
    }

    /// One new connection from `client` at `now`: true when within its rate (a token taken),
    /// false when over. Always true when the connection limit is off.
    pub fn allow_connection(&self, client: ClientKey, now: Instant) -> bool {
        match self.connections_per_second {
            None => true,
            Some(per_second) => self.take(Kind::Connection, per_second, client, now),
        }
    }

    /// Whether queries are limited (if not, `allow_query` is always true and a caller may skip
    /// computing the client's key).
    pub fn limits_queries(&self) -> bool {
        self.queries_per_second.is_some()
    }

    /// Whether new connections are limited (if not, `allow_connection` is always true).
    pub fn limits_connections(&self) -> bool {
        self.connections_per_second.is_some()
    }

    /// Clients tracked now (at most `tracked_clients`). Locks every shard in turn: for metrics,
    /// not the query path.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().nodes.len()).sum()
    }

    /// Bytes the table takes, allocated at start and never grown (for the README's statement).
    pub fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .shards
            .iter()
            .map(|shard| {
                let table = shard.lock();
                table.nodes.capacity() * size_of::<Node>() + table.index.len() * size_of::<Position>()
            })
            .sum();
        size_of::<RateLimiter>() + self.shards.len() * size_of::<Shard>() + tables
    }

    /// Takes a token of `kind` from `client`'s bucket, tracking the client if it is new.
    fn take(&self, kind: Kind, per_second: u32, client: ClientKey, now: Instant) -> bool {
        // Everything that needs no lock is done before taking it.
        let hash = self.hasher.hash_one(client);
        let now = self.nanos(now);
        let fresh = [
            Bucket::full(self.queries_per_second.unwrap_or(0), now),
            Bucket::full(self.connections_per_second.unwrap_or(0), now),
        ];
        let mut table = self.shards[(hash >> 32) as usize & self.shard_mask].lock();
        table.entry(client, hash as u32, fresh).buckets[kind as usize].take(per_second, now)
    }

    /// `now` in nanoseconds since the epoch; a time before it (read before `new`) counts as the
    /// epoch.
    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Shard {
    /// The table; a panic elsewhere while it was held left it consistent (no update panics
    /// half-way), so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// A table of `capacity` clients (at least 1), all its memory allocated.
    fn new(capacity: usize) -> Table {
        debug_assert!(capacity >= 1);
        Table {
            nodes: Vec::with_capacity(capacity),
            capacity,
            index: vec![EMPTY; (capacity * 2).next_power_of_two()].into_boxed_slice(),
            order: Recency::EMPTY,
        }
    }

    /// The node of `client` (`tag`: the low bits of its hash), made the most recently seen. A
    /// client not held gets a node with the `fresh` buckets, in the least recently seen one's
    /// slot when the table is full.
    fn entry(&mut self, client: ClientKey, tag: u32, fresh: [Bucket; 2]) -> &mut Node {
        let slot = match self.find(client, tag) {
            Some(slot) => {
                self.order.touch(&mut self.nodes, slot);
                slot
            }
            None => self.insert(Node { client, buckets: fresh, tag, links: Links::UNLINKED }),
        };
        &mut self.nodes[slot as usize]
    }

    /// The slot of `client`, if it is held.
    fn find(&self, client: ClientKey, tag: u32) -> Option<u32> {
        let mask = self.index.len() - 1;
        let mut position = tag as usize & mask;
        loop {
            let Position { tag: held, slot } = self.index[position];
            if slot == NIL {
                return None;
            }
            if held == tag && self.nodes[slot as usize].client == client {
                return Some(slot);
            }
            position = (position + 1) & mask;
        }
    }

    /// Holds `node` (a client not held) as the most recently seen, evicting the least recently
    /// seen when full; returns its slot.
    fn insert(&mut self, node: Node) -> u32 {
        let tag = node.tag;
        let slot = if self.nodes.len() < self.capacity {
            self.nodes.push(node); // within the capacity reserved in `new`: no allocation
            (self.nodes.len() - 1) as u32
        } else {
            let evicted = self.order.tail;
            self.order.unlink(&mut self.nodes, evicted);
            self.unindex(evicted);
            self.nodes[evicted as usize] = node;
            evicted
        };
        self.order.link_front(&mut self.nodes, slot);
        let mask = self.index.len() - 1;
        let mut position = tag as usize & mask;
        while self.index[position].slot != NIL {
            position = (position + 1) & mask;
        }
        self.index[position] = Position { tag, slot };
        slot
    }

    /// Removes `slot` from the index and shifts back the entries of its probe run that may move
    /// into the hole, so that no tombstones are needed (Knuth's algorithm R).
    fn unindex(&mut self, slot: u32) {
        let mask = self.index.len() - 1;
        let mut hole = self.nodes[slot as usize].tag as usize & mask;
        while self.index[hole].slot != slot {
            hole = (hole + 1) & mask;
        }
        let mut position = hole;
        loop {
            position = (position + 1) & mask;
            let moving = self.index[position];
            if moving.slot == NIL {
                break;
            }
            let home = moving.tag as usize & mask;
            // It may fill the hole if the hole lies on its probe path: from home to here.
            if position.wrapping_sub(home) & mask >= position.wrapping_sub(hole) & mask {
                self.index[hole] = moving;
                hole = position;
            }
        }
        self.index[hole] = EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::prefix::ClientPrefix;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    /// The `n`th of many distinct clients.
    fn client(n: u32) -> ClientKey {
        ClientPrefix::DEFAULT.key(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + n)))
    }

    fn limiter(queries: Option<u32>, connections: Option<u32>, tracked_clients: usize) -> RateLimiter {
        RateLimiter::new(RateSettings {
            queries_per_second: queries,
            connections_per_second: connections,
            tracked_clients,
        })
    }

    fn nanos(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    impl RateLimiter {
        fn shard_of(&self, client: ClientKey) -> usize {
            (self.hasher.hash_one(client) >> 32) as usize & self.shard_mask
        }

        fn is_tracked(&self, client: ClientKey) -> bool {
            if self.shards.is_empty() {
                return false;
            }
            let hash = self.hasher.hash_one(client);
            self.shards[self.shard_of(client)].lock().find(client, hash as u32).is_some()
        }
    }

    /// Takes queries from `client` at `at` until refused; how many were allowed.
    fn drain(limiter: &RateLimiter, client: ClientKey, at: Instant) -> usize {
        (0..).take_while(|_| limiter.allow_query(client, at)).count()
    }

    #[test]
    fn a_burst_of_n_then_one_token_every_nth_of_a_second() {
        let l = limiter(Some(10), None, 16);
        let (a, t0) = (client(1), Instant::now());
        assert_eq!(drain(&l, a, t0), 10, "a new client starts full");
        assert!(!l.allow_query(a, t0 + nanos(99_999_999)), "a tenth of a second less 1 ns");
        assert!(l.allow_query(a, t0 + nanos(100_000_000)), "a token at 1/N s");
        assert!(!l.allow_query(a, t0 + nanos(100_000_000)));
        assert_eq!(drain(&l, a, t0 + nanos(350_000_000)), 2, "2.5 tokens refilled, 2 taken");
        assert_eq!(drain(&l, a, t0 + nanos(400_000_000)), 1, "the half token was kept");
        assert_eq!(drain(&l, a, t0 + Duration::from_secs(100)), 10, "capped at N however long the wait");
    }

    #[test]
    fn rates_that_do_not_divide_a_second_do_not_drift() {
        // At 3 per second the k-th token after the burst is due at exactly ceil(k / 3 s), in ns.
        let l = limiter(Some(3), None, 16);
        let (a, t0) = (client(1), Instant::now());
        assert_eq!(drain(&l, a, t0), 3);
        for k in 1..=3_000u64 {
            let due = (k * NANOS_PER_SECOND).div_ceil(3);
            assert!(!l.allow_query(a, t0 + nanos(due - 1)), "token {k} early");
            assert!(l.allow_query(a, t0 + nanos(due)), "token {k} late");
        }
    }

    #[test]
    fn bucket_arithmetic_holds_at_the_largest_rates() {
        let mut b = Bucket::full(1_000_000, 0);
        assert_eq!((0..).take_while(|_| b.take(1_000_000, 0)).count(), 1_000_000);
        assert!(!b.take(1_000_000, 999));
        assert!(b.take(1_000_000, 1_000), "one per microsecond");
        assert!(!b.take(1_000_000, 1_000));
        // u32::MAX per second, after a gap of centuries: full, no overflow.
        let mut b = Bucket { units: 0, updated: 0 };
        assert!(b.take(u32::MAX, u64::MAX));
        assert_eq!(b.units, (u64::from(u32::MAX) - 1) * UNITS_PER_TOKEN);
        // Zero per second refuses everything.
        let mut b = Bucket::full(0, 0);
        assert!(!b.take(0, 0) && !b.take(0, u64::MAX));
    }

    #[test]
    fn a_time_before_the_last_update_mints_nothing() {
        let l = limiter(Some(10), None, 16);
        let (a, t0) = (client(1), Instant::now());
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(drain(&l, a, t1), 10);
        // Another worker read its clock earlier and takes the lock later.
        assert!(!l.allow_query(a, t0));
        assert!(!l.allow_query(a, t1 - nanos(1)));
        assert!(l.allow_query(a, t1 + nanos(100_000_000)), "refill counts from the latest update");
        assert!(!l.allow_query(a, t1 + nanos(100_000_000)));
        // Before the limiter existed: no panic, nothing refilled.
        let early = t0.checked_sub(Duration::from_secs(5)).unwrap_or(t0);
        assert!(!l.allow_query(a, early));
        let b = client(2);
        assert_eq!(drain(&l, b, early), 10, "a new client starts full whatever the time");
    }

    #[test]
    fn a_client_over_its_limit_leaves_others_and_its_connections_alone() {
        // Room for every client here in any shard (64 shards of 16): with 16 shards of one, two
        // clients that hash to the same shard evict each other, and the evicted one comes back
        // full (`an_evicted_client_comes_back_full`), which failed this test one run in 16.
        let l = limiter(Some(5), Some(2), 1024);
        let (a, b, t0) = (client(1), client(2), Instant::now());
        assert_eq!(drain(&l, a, t0), 5);
        assert!(!l.allow_query(a, t0));
        assert_eq!(drain(&l, b, t0), 5, "another client is untouched");
        assert!(l.allow_connection(a, t0) && l.allow_connection(a, t0), "queries and connections are apart");
        assert!(!l.allow_connection(a, t0));
        assert!(l.allow_connection(b, t0));
        assert!(!l.allow_query(a, t0), "connections took nothing from queries either");
        // A whole /24 as one client.
        let p = ClientPrefix::parse("24:56").unwrap();
        let (x, y) = ([192, 0, 2, 1], [192, 0, 2, 200]);
        assert_eq!(drain(&l, p.key(IpAddr::from(x)), t0), 5);
        assert!(!l.allow_query(p.key(IpAddr::from(y)), t0), "the same client");
    }

    #[test]
    fn limits_off_always_allow_and_track_nothing() {
        let off = limiter(None, None, 1_000);
        let t0 = Instant::now();
        for n in 0..1_000 {
            assert!(off.allow_query(client(n % 3), t0) && off.allow_connection(client(n), t0));
        }
        assert_eq!(off.tracked(), 0);
        assert!(off.memory_bytes() < 1_024, "no table: {}", off.memory_bytes());
        assert!(!off.limits_queries() && !off.limits_connections());

        // One limit on: the other kind neither refuses nor tracks.
        let queries_only = limiter(Some(1), None, 1_000);
        for n in 0..100 {
            assert!(queries_only.allow_connection(client(n), t0));
        }
        assert_eq!(queries_only.tracked(), 0);
        assert!(queries_only.limits_queries() && !queries_only.limits_connections());
        let connections_only = limiter(None, Some(1), 1_000);
        assert!(connections_only.allow_query(client(1), t0) && connections_only.allow_query(client(1), t0));
        assert_eq!(connections_only.tracked(), 0);
        assert!(connections_only.allow_connection(client(1), t0) && !connections_only.allow_connection(client(1), t0));
    }

    #[test]
    fn a_zero_rate_refuses_everything() {
        let l = limiter(Some(0), Some(0), 16);
        let t0 = Instant::now();
        assert!(!l.allow_query(client(1), t0) && !l.allow_connection(client(1), t0));
        assert!(!l.allow_query(client(1), t0 + Duration::from_secs(10)));
    }

    /// Threads hammer one client for about a second of real time: the allowed count is the
    /// burst plus the refill over the time between the first call and the last, whichever
    /// threads took them. (A thread stalled by a busy machine loses nothing while the bucket
    /// fills, so only the window the calls spanned counts.)
    fn hammer(threads: usize) {
        const N: u64 = 20_000;
        let l = limiter(Some(N as u32), None, DEFAULT_TRACKED_CLIENTS);
        let a = client(7);
        let end = Instant::now() + Duration::from_secs(1);
        let runs: Vec<(u64, Instant, Instant)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let (mut allowed, first) = (0, Instant::now());
                        let mut last = first;
                        while last < end {
                            allowed += u64::from(l.allow_query(a, last));
                            last = Instant::now();
                        }
                        (allowed, first, last)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let allowed: u64 = runs.iter().map(|r| r.0).sum();
        let first = runs.iter().map(|r| r.1).min().unwrap();
        let last = runs.iter().map(|r| r.2).max().unwrap();
        let window = last.duration_since(first);
        let expected = N + N * window.as_nanos() as u64 / NANOS_PER_SECOND;
        assert!(allowed <= expected, "{threads} threads: {allowed} allowed in {window:?}, more than {expected}");
        assert!(
            allowed * 10 >= expected * 9,
            "{threads} threads: {allowed} allowed in {window:?}, expected {expected}"
        );
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn two_threads_share_one_clients_limit() {
        hammer(2);
    }

    #[test]
    fn four_threads_share_one_clients_limit() {
        hammer(4);
    }

    #[test]
    fn a_flood_of_clients_stays_within_the_table_and_keeps_the_recent() {
        let l = limiter(Some(10), None, 1_000);
        let memory = l.memory_bytes();
        let t0 = Instant::now();
        let total = 100_000u32;
        for n in 0..total {
            assert!(l.allow_query(client(n), t0 + nanos(u64::from(n))));
            if n % 1_000 == 999 {
                assert!(l.tracked() <= 1_000);
            }
        }
        assert_eq!(l.tracked(), 1_000);
        assert_eq!(l.memory_bytes(), memory, "nothing grew");
        for n in total - 100..total {
            assert!(l.is_tracked(client(n)), "client {n} of the last 100 was evicted");
        }
        // Exactly: in each shard, its last `capacity` clients are held and no earlier one.
        let capacities: Vec<usize> = l.shards.iter().map(|s| s.lock().capacity).collect();
        assert_eq!(capacities.iter().sum::<usize>(), 1_000);
        let mut seen_per_shard = vec![0; capacities.len()];
        for n in (0..total).rev() {
            let shard = l.shard_of(client(n));
            seen_per_shard[shard] += 1;
            assert_eq!(l.is_tracked(client(n)), seen_per_shard[shard] <= capacities[shard], "client {n}");
        }
    }

    #[test]
    fn small_tables_hold_exactly_their_size() {
        for tracked in [1, 2, 3, 10, 63, 64, 65, 1_000] {
            let l = limiter(Some(1), None, tracked);
            let t0 = Instant::now();
            for n in 0..5_000 {
                l.allow_query(client(n), t0);
            }
            assert_eq!(l.tracked(), tracked);
            assert!(l.shards.len().is_power_of_two() && l.shards.len() <= tracked.min(SHARDS));
        }
        assert_eq!(limiter(Some(1), None, 0).shards.len(), 1, "0 is taken as 1");
    }

    #[test]
    fn an_evicted_client_comes_back_full() {
        let l = limiter(Some(3), None, 1);
        let (a, b, t0) = (client(1), client(2), Instant::now());
        assert_eq!(drain(&l, a, t0), 3);
        assert!(!l.allow_query(a, t0));
        assert_eq!(drain(&l, b, t0), 3, "b takes a's place");
        assert!(!l.is_tracked(a));
        assert_eq!(drain(&l, a, t0), 3, "a starts full again");
    }

    #[test]
    fn the_default_table_costs_about_80_bytes_a_client() {
        let l = limiter(Some(100), Some(10), DEFAULT_TRACKED_CLIENTS);
        assert_eq!(size_of::<Node>(), 64);
        let per_client = l.memory_bytes() as f64 / DEFAULT_TRACKED_CLIENTS as f64;
        assert!((80.0..82.0).contains(&per_client), "{per_client} bytes per client");
    }

    /// One step of the property test: a call of either kind from one of a few clients, at a
    /// time that mostly moves forward but is sometimes earlier than the last (another worker).
    #[derive(Debug, Clone)]
    struct Op {
        client: u32,
        connection: bool,
        advance_ns: u64,
        behind_ns: u64,
    }

    fn op() -> impl Strategy<Value = Op> {
        (0..24u32, any::<bool>(), 0..400_000_000u64, prop_oneof![3 => Just(0u64), 1 => 0..200_000_000u64])
            .prop_map(|(client, connection, advance_ns, behind_ns)| Op { client, connection, advance_ns, behind_ns })
    }

    /// The reference: buckets in u128 without the one-second clamp, and each shard's clients in
    /// a plain list, most recently seen first.
    #[derive(Clone, Copy)]
    struct ModelBucket {
        units: u128,
        updated: u128,
    }

    impl ModelBucket {
        fn take(&mut self, per_second: u32, now: u128) -> bool {
            let capacity = u128::from(per_second) * 1_000_000_000;
            if now > self.updated {
                self.units = (self.units + (now - self.updated) * u128::from(per_second)).min(capacity);
                self.updated = now;
            }
            let allowed = self.units >= 1_000_000_000;
            if allowed {
                self.units -= 1_000_000_000;
            }
            allowed
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn the_table_is_bounded_lru_and_each_client_keeps_its_own_state(
            tracked in 1..14usize,
            queries in prop_oneof![1 => Just(None), 4 => (1..8u32).prop_map(Some)],
            connections in prop_oneof![1 => Just(None), 4 => (1..4u32).prop_map(Some)],
            ops in prop::collection::vec(op(), 1..300),
        ) {
            let l = limiter(queries, connections, tracked);
            let t0 = Instant::now();
            let capacities: Vec<usize> = l.shards.iter().map(|s| s.lock().capacity).collect();
            let mut model: Vec<Vec<(u32, [ModelBucket; 2])>> = vec![Vec::new(); capacities.len().max(1)];
            let mut clock = 0u64;
            for op in ops {
                clock += op.advance_ns;
                let at = clock.saturating_sub(op.behind_ns);
                let now = t0 + nanos(at);
                let key = client(op.client);
                let (rate, kind) = if op.connection {
                    (connections, Kind::Connection)
                } else {
                    (queries, Kind::Query)
                };
                let got = if op.connection { l.allow_connection(key, now) } else { l.allow_query(key, now) };
                let expected = match rate {
                    None => true,
                    Some(per_second) => {
                        let shard = l.shard_of(key);
                        let list = &mut model[shard];
                        let mut entry = match list.iter().position(|(c, _)| *c == op.client) {
                            Some(i) => list.remove(i),
                            None => {
                                let full = |rate: Option<u32>| ModelBucket {
                                    units: u128::from(rate.unwrap_or(0)) * 1_000_000_000,
                                    updated: u128::from(at),
                                };
                                (op.client, [full(queries), full(connections)])
                            }
                        };
                        let allowed = entry.1[kind as usize].take(per_second, u128::from(at));
                        list.insert(0, entry);
                        list.truncate(capacities[shard]);
                        allowed
                    }
                };
                prop_assert_eq!(got, expected, "client {} at {} ns", op.client, at);
                prop_assert!(l.tracked() <= tracked);
                prop_assert_eq!(l.tracked(), model.iter().map(Vec::len).sum::<usize>());
                for c in 0..24 {
                    let held = model[l.shard_of(client(c))].iter().any(|(m, _)| *m == c);
                    prop_assert_eq!(l.is_tracked(client(c)), held, "client {}", c);
                }
            }
        }
    }
}
