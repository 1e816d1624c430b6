//! The in-flight table: every query a worker has sent upstream and not yet answered, keyed by
//! a compact slab key, plus the upstream-ID maps that find an entry from an answer.
//!
//! Owns: the entries, the per-UDP-socket ID → key maps, and a pool of query buffers so that
//! steady traffic allocates nothing. It never does I/O and never decides policy (which backend,
//! when to give up); `relay` does. Invariant: an entry is reachable from at most one ID map
//! (one UDP socket or one TCP connection) at a time, and `release_route` is the one way out.

use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use rand::Rng;

use slab::Slab;

use super::tcp::TcpConn;
use super::ReplyTo;

/// A slab key. u32 keeps ID maps at 4 bytes per slot.
pub type Key = u32;

/// Marks a free slot in a UDP ID map (keys are stored +1).
const FREE: u32 = 0;
/// Free, and last held by a query that was answered: a datagram with this ID now is a second
/// copy of that answer (counted as a duplicate), unless the ID has been taken again since.
const ANSWERED: u32 = u32::MAX;

/// Random (socket, ID) picks before giving up on a free ID; at sane loads the first one hits.
const ID_PICK_TRIES: usize = 16;

/// Buffers kept for reuse; past this, returned buffers are freed (bounds idle memory after a burst).
const MAX_POOLED_BUFFERS: usize = 4096;

/// The word and bit of `id` in a socket's held-ID bits.
#[inline]
fn held_bit(id: u16) -> (usize, u64) {
    (usize::from(id >> 6), 1u64 << (id & 63))
}

/// Where an entry's current attempt is waiting for its answer.
pub enum Route {
    /// Sent on upstream UDP socket `socket` with the ID in `Inflight::query`.
    Udp { socket: u16 },
    /// Sent (or queued) on this upstream TCP connection, after a truncated UDP answer.
    Tcp { conn: Rc<TcpConn> },
}

/// One query in flight.
pub struct Inflight {
    /// Whom to hand the answer to.
    pub reply: Rc<dyn ReplyTo>,
    /// The frontend's note on this query, handed back with the answer.
    pub tag: u8,
    /// The client's own ID, restored on the answer.
    pub client_id: u16,
    /// The query as sent upstream: the client's bytes with the upstream ID in place.
    pub query: Vec<u8>,
    /// End of the question in `query` (it starts at the 12-byte header's end).
    pub question_end: usize,
    /// Index of the backend the current attempt went to.
    pub backend: usize,
    /// Where the current attempt waits.
    pub route: Route,
    /// Backends tried so far (1 after the first send; a retry makes it 2).
    pub attempts: u8,
    /// TCP connections tried for this query (a dead connection gets one resend on a new one).
    pub tcp_attempts: u8,
    /// Changes with every send, so that a stale deadline cannot time out a newer attempt.
    pub generation: u32,
    /// A health probe: never retried elsewhere, never answered to anyone.
    pub probe: bool,
    /// When the first attempt went out (about when the client's query arrived).
    pub submitted: Option<Instant>,
    /// When the current attempt went out.
    pub sent: Option<Instant>,
    /// Where the client is, for backends that are told (PROXY v2, ECS); `None` when no backend is.
    pub client: Option<super::ClientAddr>,
    /// What the client's query said about ECS, when the current attempt went to a backend that
    /// adds ECS: the answer is edited back for the client.
    pub ecs: Option<super::ecs::ClientEcs>,
    /// The datagram as the current UDP attempt sends it, when the backend's options change it
    /// (a PROXY v2 header in front, an ECS option); empty otherwise (`query` goes as it is).
    pub wire: Vec<u8>,
}

impl Inflight {
    /// A client's query, before its first send: `query` is the buffer holding it (see
    /// `InflightTable::buffer_from`).
    pub fn new(reply: Rc<dyn ReplyTo>, tag: u8, query: Vec<u8>, question_end: usize) -> Inflight {
        Inflight {
            reply,
            tag,
            client_id: crate::dns::id(&query),
            query,
            question_end,
            backend: 0,
            route: Route::Udp { socket: 0 },
            attempts: 0,
            tcp_attempts: 0,
            generation: 0,
            probe: false,
            submitted: None,
            sent: None,
            client: None,
            ecs: None,
            wire: Vec::new(),
        }
    }

    /// An attempt went out at `now` (the first one also dates the query).
    #[inline]
    pub fn note_sent(&mut self, now: Instant) {
        self.sent = Some(now);
        self.submitted.get_or_insert(now);
    }

    /// What the current UDP attempt sends: `wire` when the backend's options made one, else
    /// the query.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        if self.wire.is_empty() {
            &self.query
        } else {
            &self.wire
        }
    }

    /// The question section, as sent.
    pub fn question(&self) -> &[u8] {
        &self.query[crate::dns::HEADER_LEN..self.question_end]
    }
}

/// A worker's in-flight queries.
pub struct InflightTable {
    entries: Slab<Inflight>,
    /// Per upstream UDP socket: upstream ID → key + 1 (0 = free). A flat array of 65,536 slots
    /// (256 KiB per socket): one load per answer, no hashing, and the random-ID pick is a probe.
    udp_ids: Vec<Box<[u32]>>,
    /// Per upstream UDP socket: one bit per ID, set exactly while `udp_ids` holds a key there.
    /// The random-ID pick probes these 8 KiB instead of the 256 KiB map: a probe of the map at
    /// a random ID missed the cache on nearly every query (perf, h2load at 20,000 DoH queries a
    /// second: that one load was 83% of `Relay::send_udp`'s samples, which fell from 2.6% of
    /// the worker's to 1.4% with the bits). The claim's store to the map does not wait for its
    /// cache line, and the answer's lookup finds the line the claim brought in.
    udp_held: Vec<Box<[u64]>>,
    spare_buffers: Vec<Vec<u8>>,
}

impl InflightTable {
    pub fn new(udp_sockets: usize) -> InflightTable {
        InflightTable {
            entries: Slab::with_capacity(1024),
            udp_ids: (0..udp_sockets).map(|_| vec![FREE; 1 << 16].into_boxed_slice()).collect(),
            udp_held: (0..udp_sockets).map(|_| vec![0u64; (1 << 16) / 64].into_boxed_slice()).collect(),
            spare_buffers: Vec::new(),
        }
    }

    /// A buffer holding a copy of `bytes`, from the pool when one is there.
    pub fn buffer_from(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.spare_buffers.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }

    /// Returns a buffer to the pool.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        // A 64 KiB answer buffer is not worth keeping for 50-byte queries.
        if self.spare_buffers.len() < MAX_POOLED_BUFFERS && buf.capacity() <= 4096 {
            self.spare_buffers.push(buf);
        }
    }

    pub fn insert(&mut self, entry: Inflight) -> Key {
        self.entries.insert(entry) as Key
    }

    pub fn get(&self, key: Key) -> Option<&Inflight> {
        self.entries.get(key as usize)
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut Inflight> {
        self.entries.get_mut(key as usize)
    }

    /// Removes an entry; its route must have been released.
    pub fn remove(&mut self, key: Key) -> Inflight {
        self.entries.remove(key as usize)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, for the relay's model check (`relay::model_check`); never on the served path.
    #[cfg(feature = "fuzzing")]
    pub fn iter(&self) -> impl Iterator<Item = (Key, &Inflight)> {
        self.entries.iter().map(|(key, entry)| (key as Key, entry))
    }

    /// Slots of the UDP ID maps that are held, and that are marked answered, over all sockets:
    /// for the model check to compare with its own count without 65,536 lookups per socket.
    #[cfg(feature = "fuzzing")]
    pub fn udp_slot_counts(&self) -> (usize, usize) {
        let all = self.udp_ids.iter().flat_map(|slots| slots.iter());
        let (mut held, mut answered) = (0, 0);
        for &slot in all {
            match slot {
                FREE => {}
                ANSWERED => answered += 1,
                _ => held += 1,
            }
        }
        let bits: u32 = self.udp_held.iter().flat_map(|words| words.iter()).map(|word| word.count_ones()).sum();
        assert_eq!(bits as usize, held, "the held-ID bits disagree with the ID maps");
        (held, answered)
    }

    /// The entry waiting on UDP socket `socket` for an answer with `id`.
    #[inline]
    pub fn udp_owner(&self, socket: usize, id: u16) -> Option<Key> {
        match self.udp_ids[socket][id as usize] {
            FREE | ANSWERED => None,
            stored => Some(stored - 1),
        }
    }

    /// Whether `id` on `socket` was last freed by an answer (see `ANSWERED`).
    pub fn udp_id_answered(&self, socket: usize, id: u16) -> bool {
        self.udp_ids[socket][id as usize] == ANSWERED
    }

    /// Whether `id` is free on `socket`.
    #[inline]
    pub fn udp_id_free(&self, socket: usize, id: u16) -> bool {
        let (word, bit) = held_bit(id);
        self.udp_held[socket][word] & bit == 0
    }

    /// A random (socket, ID) pair free in `sockets`: unpredictable to an off-path spoofer
    /// (RFC 5452). `None` only when a table is so full that `ID_PICK_TRIES` random picks miss.
    pub fn pick_free_udp_id(&self, rng: &mut impl Rng, sockets: Range<usize>) -> Option<(usize, u16)> {
        (0..ID_PICK_TRIES).find_map(|_| {
            let socket = sockets.start + rng.random_range(0..sockets.len());
            let id: u16 = rng.random();
            self.udp_id_free(socket, id).then_some((socket, id))
        })
    }

    /// A random ID free on `socket`, for a query that joins a batch already going out there.
    pub fn pick_free_udp_id_on(&self, rng: &mut impl Rng, socket: usize) -> Option<u16> {
        (0..ID_PICK_TRIES).map(|_| rng.random()).find(|&id| self.udp_id_free(socket, id))
    }

    /// Claims `id` on `socket` for `key`. The caller checked `udp_id_free`.
    #[inline]
    pub fn claim_udp_id(&mut self, socket: usize, id: u16, key: Key) {
        debug_assert!(matches!(self.udp_ids[socket][id as usize], FREE | ANSWERED));
        let (word, bit) = held_bit(id);
        self.udp_held[socket][word] |= bit;
        self.udp_ids[socket][id as usize] = key + 1;
    }

    /// Detaches an entry from whatever ID map its current attempt sits in; `answered` when an
    /// answer came (so that a second copy can be told from a stray).
    pub fn release_route(&mut self, key: Key, answered: bool) {
        let Some(entry) = self.entries.get(key as usize) else { return };
        let id = crate::dns::id(&entry.query);
        match &entry.route {
            Route::Udp { socket } => {
                let socket = *socket as usize;
                let slot = &mut self.udp_ids[socket][id as usize];
                if *slot == key + 1 {
                    *slot = if answered { ANSWERED } else { FREE };
                    let (word, bit) = held_bit(id);
                    self.udp_held[socket][word] &= !bit;
                }
            }
            Route::Tcp { conn } => conn.forget(id, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Frontend;

    struct NoReply;

    impl ReplyTo for NoReply {
        fn frontend(&self) -> Frontend {
            Frontend::Dot
        }

        fn deliver(&self, _answer: &[u8], _tag: u8) {}
    }

    /// An entry on UDP socket `socket` under `id`, claimed as the relay claims it.
    fn sent(table: &mut InflightTable, socket: usize, id: u16) -> Key {
        let mut query = vec![0u8; 12];
        crate::dns::set_id(&mut query, id);
        let mut entry = Inflight::new(Rc::new(NoReply), 0, query, 12);
        entry.route = Route::Udp { socket: socket as u16 };
        let key = table.insert(entry);
        table.claim_udp_id(socket, id, key);
        key
    }

    #[test]
    fn an_id_is_taken_only_while_its_query_waits_and_only_on_its_socket() {
        let mut table = InflightTable::new(2);
        // IDs in different words and at both ends of one word.
        for id in [0u16, 63, 64, 4_097, u16::MAX] {
            assert!(table.udp_id_free(1, id));
            let key = sent(&mut table, 1, id);
            assert!(!table.udp_id_free(1, id), "id {id} is held");
            assert!(table.udp_id_free(0, id), "id {id} is free on the other socket");
            assert!(table.udp_id_free(1, id.wrapping_add(1)), "its neighbour is free");
            assert_eq!(table.udp_owner(1, id), Some(key));
            table.release_route(key, true);
            assert!(table.udp_id_free(1, id), "id {id} is free again once answered");
            assert!(table.udp_id_answered(1, id));
            assert_eq!(table.udp_owner(1, id), None);
            table.remove(key);
        }
    }

    #[test]
    fn a_stale_release_leaves_the_ids_new_owner_alone() {
        let mut table = InflightTable::new(1);
        let first = sent(&mut table, 0, 7);
        table.release_route(first, false);
        // The ID is taken again by another query before the first one lets go a second time
        // (a retry that already moved on): the new claim must stand.
        let second = sent(&mut table, 0, 7);
        table.release_route(first, false);
        assert!(!table.udp_id_free(0, 7));
        assert_eq!(table.udp_owner(0, 7), Some(second));
        table.release_route(second, false);
        assert!(table.udp_id_free(0, 7));
        assert!(!table.udp_id_answered(0, 7), "freed without an answer");
    }
}
