//! Recency order through a slab of nodes: a doubly linked list threaded through the nodes by
//! `u32` slot, most recently used at the head, the next to evict at the tail. Shared by the
//! hand-rolled tables of fixed size (`relay::tcp_memory`, `access::rate`), which keep the links
//! inside their own nodes so that one cache line holds a node and its place in the order.
//!
//! Owns the head and tail and the linking; never allocates, never looks at anything in a node
//! but its `Links`. A slot passed in must be a node of `nodes` (and, for `unlink` and `touch`,
//! linked).

/// No slot: the end of the list.
pub const NIL: u32 = u32::MAX;

/// A node's neighbours in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    /// Towards the most recently used (`NIL` at the head).
    pub prev: u32,
    /// Towards the least recently used (`NIL` at the tail).
    pub next: u32,
}

impl Links {
    /// A node in no list yet.
    pub const UNLINKED: Links = Links { prev: NIL, next: NIL };
}

/// A node that carries its links.
pub trait Linked {
    fn links(&mut self) -> &mut Links;
}

/// The ends of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recency {
    /// Most recently used.
    pub head: u32,
    /// Least recently used: the next to go when the table is full.
    pub tail: u32,
}

impl Recency {
    pub const EMPTY: Recency = Recency { head: NIL, tail: NIL };

    /// Makes `slot` (linked) the most recently used.
    pub fn touch<N: Linked>(&mut self, nodes: &mut [N], slot: u32) {
        if self.head != slot {
            self.unlink(nodes, slot);
            self.link_front(nodes, slot);
        }
    }

    /// Puts `slot` (not linked) at the head.
    pub fn link_front<N: Linked>(&mut self, nodes: &mut [N], slot: u32) {
        let old_head = self.head;
        *nodes[slot as usize].links() = Links { prev: NIL, next: old_head };
        if old_head != NIL {
            nodes[old_head as usize].links().prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
    }

    /// Takes `slot` out of the order.
    pub fn unlink<N: Linked>(&mut self, nodes: &mut [N], slot: u32) {
        let Links { prev, next } = *nodes[slot as usize].links();
        if prev != NIL {
            nodes[prev as usize].links().next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            nodes[next as usize].links().prev = prev;
        } else {
            self.tail = prev;
        }
    }
}
