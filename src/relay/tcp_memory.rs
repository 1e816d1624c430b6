//! The TCP memory: per worker, the questions whose UDP answer came back truncated (TC=1) from a
//! backend, so that the next time one is asked it goes straight to that backend over TCP
//! instead of paying a UDP round trip that can only come back truncated again.
//!
//! Owns a table of fixed capacity (set at start, `--tcp-memory-entries`) of questions — the
//! name compared ASCII-case-insensitively, QTYPE, QCLASS and the query's DO bit — each with the
//! backend that truncated it and an expiry, in least-recently-used order. The relay decides
//! what to do with a hit (only when that backend is up, and only for a first attempt); this
//! module never does I/O and never decides policy.
//!
//! What it must never do: grow with the names clients invent (the capacity is fixed, a full
//! table evicts its least recently used entry), allocate or lock on the per-query lookup (the
//! arrays are made in `new`; a worker's table is its own), or let a client aim hash collisions
//! (the hash is SipHash under a random key per worker).
//!
//! Only a 64-bit hash of a question is stored, not the question. Two questions whose hashes
//! collide share an entry: the worst that does is send one query straight over TCP that UDP
//! would have answered whole, and a TCP answer is still the right answer. So no name is kept,
//! and the table's memory does not depend on name lengths.
//!
//! Hand-rolled rather than the `lru` crate: `lru` allocates a node per insert (and frees it on
//! removal), so a table that churns under invented names would allocate per query; this one is
//! a slab of nodes linked in recency order plus an open-addressing index of slot numbers, both
//! sized once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use crate::dns::HEADER_LEN;
use crate::edns::{self, QueryEdns};

// `NIL` (no slot) ends the recency list and marks an empty index position.
use crate::recency::{Linked, Links, Recency, NIL};

/// The largest capacity the table accepts (slot numbers are u32, NIL excluded); config caps it
/// far lower.
pub const MAX_ENTRIES: usize = 1 << 24;

struct Node {
    hash: u64,
    expires: Instant,
    backend: u32,
    /// Its place in the recency order; `links.next` links the free list too.
    links: Links,
}

impl Linked for Node {
    fn links(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// A worker's table; see the module docs.
pub struct TcpMemory {
    /// SipHash keys drawn from the OS for this table.
    hasher: RandomState,
    /// The entries. Grows (within its reserved capacity: no allocation) until `capacity`, then
    /// slots are reused.
    nodes: Vec<Node>,
    capacity: usize,
    /// Linear-probing index: hash → slot, `NIL` where empty. At least twice `capacity`
    /// positions (a power of two), so a probe ends at an empty position soon.
    index: Box<[u32]>,
    /// Most recently used first; the tail is the next to go when the table is full.
    order: Recency,
    /// Slots freed by a removal, linked through `links.next`.
    free: u32,
    len: usize,
}

impl TcpMemory {
    /// A table holding at most `capacity` questions (0: the feature is off and nothing is ever
    /// remembered). Everything it will ever use is allocated here.
    pub fn new(capacity: usize) -> TcpMemory {
        assert!(capacity <= MAX_ENTRIES, "TCP memory capacity {capacity} above {MAX_ENTRIES}");
        let positions = if capacity == 0 { 0 } else { (capacity * 2).next_power_of_two() };
        TcpMemory {
            hasher: RandomState::new(),
            nodes: Vec::with_capacity(capacity),
            capacity,
            index: vec![NIL; positions].into_boxed_slice(),
            order: Recency::EMPTY,
            free: NIL,
            len: 0,
        }
    }

    /// Questions held now.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The key of the question of `query` (a checked query whose question ends at
    /// `question_end`) asked with DO = `dnssec_ok`: the name's bytes lower-cased as they are
    /// hashed (no copy; label length octets are below 64, so case folding never touches
    /// them), then QTYPE, QCLASS and the DO bit.
    pub fn key(&self, query: &[u8], question_end: usize, dnssec_ok: bool) -> u64 {
        let question = &query[HEADER_LEN..question_end];
        let name_len = question.len() - 4;
        let mut hasher = self.hasher.build_hasher();
        hasher.write_usize(question.len());
        let mut chunks = question[..name_len].chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            for (to, from) in word.iter_mut().zip(chunk) {
                *to = from.to_ascii_lowercase();
            }
            hasher.write_u64(u64::from_le_bytes(word));
        }
        let mut rest = [0u8; 8];
        for (to, from) in rest.iter_mut().zip(chunks.remainder()) {
            *to = from.to_ascii_lowercase();
        }
        hasher.write_u64(u64::from_le_bytes(rest));
        hasher.write(&question[name_len..]);
        hasher.write_u8(u8::from(dnssec_ok));
        hasher.finish()
    }

    /// The key of a query's question as asked (its DO bit read from its OPT record), and what
    /// that OPT record asks for: the one way the relay keys a query.
    pub fn key_of_query(&self, query: &[u8], question_end: usize) -> (u64, QueryEdns) {
        let asked = edns::query_edns(query, question_end);
        (self.key(query, question_end, asked.dnssec_ok), asked)
    }

    /// The backend remembered for `key`, if the entry has not expired at `now`; a hit becomes
    /// the most recently used, an expired entry is removed.
    pub fn get(&mut self, key: u64, now: Instant) -> Option<usize> {
        let (position, slot) = self.find(key)?;
        if self.nodes[slot as usize].expires <= now {
            self.remove_at(position, slot);
            return None;
        }
        self.order.touch(&mut self.nodes, slot);
        Some(self.nodes[slot as usize].backend as usize)
    }

    /// Remembers that `backend` truncated the question `key`, until `expires`; it becomes the
    /// most recently used. A full table first forgets its least recently used question.
    pub fn insert(&mut self, key: u64, backend: usize, expires: Instant) {
        if self.capacity == 0 {
            return;
        }
        if let Some((_, slot)) = self.find(key) {
            let node = &mut self.nodes[slot as usize];
            node.backend = backend as u32;
            node.expires = expires;
            self.order.touch(&mut self.nodes, slot);
            return;
        }
        if self.len == self.capacity {
            let lru = self.order.tail;
            let (position, _) = self.find(self.nodes[lru as usize].hash).expect("every held slot is indexed");
            self.remove_at(position, lru);
        }
        let node = Node { hash: key, expires, backend: backend as u32, links: Links::UNLINKED };
        let slot = if self.free != NIL {
            let slot = self.free;
            self.free = self.nodes[slot as usize].links.next;
            self.nodes[slot as usize] = node;
            slot
        } else {
            debug_assert!(self.nodes.len() < self.capacity, "the reserved capacity is never exceeded");
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.order.link_front(&mut self.nodes, slot);
        let mask = self.index.len() - 1;
        let mut position = key as usize & mask;
        while self.index[position] != NIL {
            position = (position + 1) & mask;
        }
        self.index[position] = slot;
        self.len += 1;
    }

    /// Moves the expiry of `key`, if it is held (recency unchanged).
    pub fn set_expiry(&mut self, key: u64, expires: Instant) {
        if let Some((_, slot)) = self.find(key) {
            self.nodes[slot as usize].expires = expires;
        }
    }

    /// Forgets `key`, if it is held.
    pub fn remove(&mut self, key: u64) {
        if let Some((position, slot)) = self.find(key) {
            self.remove_at(position, slot);
        }
    }

    /// The index position and slot of `key`.
    fn find(&self, key: u64) -> Option<(usize, u32)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut position = key as usize & mask;
        loop {
            let slot = self.index[position];
            if slot == NIL {
                return None;
            }
            if self.nodes[slot as usize].hash == key {
                return Some((position, slot));
            }
            position = (position + 1) & mask;
        }
    }

    fn remove_at(&mut self, position: usize, slot: u32) {
        self.unindex(position);
        self.order.unlink(&mut self.nodes, slot);
        self.nodes[slot as usize].links.next = self.free;
        self.free = slot;
        self.len -= 1;
    }

    /// Empties index `hole` and shifts back the entries of its probe run that may move there,
    /// so that no tombstones are needed (Knuth's algorithm R).
    fn unindex(&mut self, mut hole: usize) {
        let mask = self.index.len() - 1;
        let mut position = hole;
        loop {
            position = (position + 1) & mask;
            let slot = self.index[position];
            if slot == NIL {
                break;
            }
            let home = self.nodes[slot as usize].hash as usize & mask;
            // It may fill the hole if the hole lies on its probe path: from home to here.
            if position.wrapping_sub(home) & mask >= position.wrapping_sub(hole) & mask {
                self.index[hole] = slot;
                hole = position;
            }
        }
        self.index[hole] = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LATER: Duration = Duration::from_secs(60);

    /// A query for `name` (dotted, no trailing dot) of `qtype`, class IN.
    fn query(name: &str, qtype: u16) -> (Vec<u8>, usize) {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        let end = q.len();
        (q, end)
    }

    fn key(memory: &TcpMemory, name: &str, qtype: u16, dnssec_ok: bool) -> u64 {
        let (q, end) = query(name, qtype);
        memory.key(&q, end, dnssec_ok)
    }

    #[test]
    fn the_key_folds_case_but_not_type_class_or_do() {
        let m = TcpMemory::new(4);
        let base = key(&m, "Big.Example.Test", 16, false);
        assert_eq!(base, key(&m, "bIG.eXAMPLE.tEST", 16, false));
        assert_ne!(base, key(&m, "big.example.test", 16, true), "DO is part of the question");
        assert_ne!(base, key(&m, "big.example.test", 1, false));
        // 'A' (65) and 'a' (97) as types must not fold together.
        assert_ne!(key(&m, "x", 65, false), key(&m, "x", 97, false));
        assert_ne!(base, key(&m, "big.example.tesu", 16, false));
        let (mut q, end) = query("x", 1);
        q[end - 1] = 3; // class CH
        assert_ne!(m.key(&q, end, false), key(&m, "x", 1, false));
        // Another table, another key: a client cannot precompute collisions.
        assert_ne!(base, key(&TcpMemory::new(4), "big.example.test", 16, false));
    }

    #[test]
    fn evicts_the_least_recently_used_and_a_hit_refreshes() {
        let now = Instant::now();
        let mut m = TcpMemory::new(3);
        for k in [1, 2, 3] {
            m.insert(k, k as usize, now + LATER);
        }
        assert_eq!(m.get(1, now), Some(1), "1 is now the most recent; 2 the least");
        m.insert(4, 4, now + LATER);
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(2, now), None, "the least recently used went first");
        assert_eq!(m.get(1, now), Some(1));
        assert_eq!(m.get(3, now), Some(3));
        assert_eq!(m.get(4, now), Some(4));
        // Order now, least recent first: 1, 3, 4.
        m.insert(5, 5, now + LATER);
        assert_eq!(m.get(1, now), None);
        m.insert(6, 6, now + LATER);
        assert_eq!(m.get(3, now), None);
        assert_eq!((m.get(4, now), m.get(5, now), m.get(6, now)), (Some(4), Some(5), Some(6)));
    }

    #[test]
    fn entries_expire_and_can_be_moved_or_removed() {
        let now = Instant::now();
        let mut m = TcpMemory::new(8);
        m.insert(7, 1, now + Duration::from_secs(1));
        assert_eq!(m.get(7, now), Some(1));
        assert_eq!(m.get(7, now + Duration::from_secs(1)), None, "expired at its instant");
        assert_eq!(m.len(), 0, "an expired entry found is dropped");
        m.insert(7, 1, now + LATER);
        m.set_expiry(7, now + Duration::from_millis(10));
        assert_eq!(m.get(7, now + Duration::from_millis(20)), None);
        m.insert(8, 0, now + LATER);
        m.remove(8);
        m.remove(8);
        assert_eq!((m.get(8, now), m.len()), (None, 0));
        m.set_expiry(9, now + LATER); // absent: nothing happens
        assert!(m.is_empty());
    }

    #[test]
    fn inserting_again_updates_in_place() {
        let now = Instant::now();
        let mut m = TcpMemory::new(2);
        m.insert(1, 0, now + LATER);
        m.insert(1, 3, now + LATER);
        assert_eq!((m.len(), m.get(1, now)), (1, Some(3)));
    }

    #[test]
    fn capacity_is_never_exceeded_and_nothing_grows() {
        let now = Instant::now();
        let mut m = TcpMemory::new(100);
        let (nodes, positions) = (m.nodes.capacity(), m.index.len());
        for k in 0..100_000u64 {
            // Spread keys, including ones that share low bits (one probe run).
            let key = if k % 3 == 0 { k << 20 } else { k.wrapping_mul(0x9e37_79b9_7f4a_7c15) };
            m.insert(key, 0, now + LATER);
            if k % 7 == 0 {
                m.remove(key);
            }
            assert!(m.len() <= 100);
        }
        assert_eq!(m.len(), 100);
        assert_eq!((m.nodes.capacity(), m.index.len()), (nodes, positions), "no allocation after new");
        // Every entry held is found through the index, and the list and the index agree.
        let mut slot = m.order.head;
        let mut walked = 0;
        while slot != NIL {
            let hash = m.nodes[slot as usize].hash;
            assert_eq!(m.find(hash).map(|(_, s)| s), Some(slot));
            slot = m.nodes[slot as usize].links.next;
            walked += 1;
        }
        assert_eq!(walked, 100);
        assert_eq!(m.index.iter().filter(|&&s| s != NIL).count(), 100);
    }

    #[test]
    fn colliding_keys_share_one_entry_harmlessly() {
        // Two questions whose 64-bit keys collide are one entry: the second is sent over TCP
        // too, and its TCP answer is still its own. Simulated with equal keys.
        let now = Instant::now();
        let mut m = TcpMemory::new(4);
        m.insert(42, 1, now + LATER);
        m.insert(42, 2, now + LATER);
        assert_eq!((m.len(), m.get(42, now)), (1, Some(2)));
        // Keys equal in their low bits (the same index position) stay apart.
        m.insert(42 + (1 << 40), 3, now + LATER);
        assert_eq!((m.get(42, now), m.get(42 + (1 << 40), now)), (Some(2), Some(3)));
        m.remove(42);
        assert_eq!(m.get(42 + (1 << 40), now), Some(3), "removal shifts the probe run back");
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let now = Instant::now();
        let mut m = TcpMemory::new(0);
        m.insert(1, 0, now + LATER);
        assert_eq!((m.get(1, now), m.len()), (None, 0));
        m.set_expiry(1, now);
        m.remove(1);
    }
}
