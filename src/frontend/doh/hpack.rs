//! HPACK (RFC 7541) for the DoH frontend's own HTTP/2: [`Decoder`] turns the request header
//! blocks of one connection into fields, keeping that connection's dynamic table; and
//! [`encode_response`] writes a response header block with no state at all.
//!
//! Owns: the decoder's dynamic table (one per connection), the static table, the Huffman code
//! (Appendix B) and the integer and string primitives. Knows nothing of frames, streams or
//! HTTP semantics: the caller joins HEADERS and CONTINUATION payloads into one block, checks
//! pseudo-headers, and maps [`HpackError`] to COMPRESSION_ERROR or to a `431`.
//!
//! Never: allocates per header block or per field (a field is handed out in place, from the
//! block, the static table or the dynamic table; only Huffman strings and the one table entry
//! that wraps around the ring are copied, into the caller's per-worker `scratch`); keeps memory
//! for an empty dynamic table; grows the table past the size the peer's encoder chose (at most
//! the `SETTINGS_HEADER_TABLE_SIZE` we advertise); inserts anything in the peer's table from
//! the encoder side (responses use literals without indexing, so there is no encoder state).
//!
//! Why hand-rolled rather than h2's codec (under hyper) or the `hpack` crates: decoding is on
//! the per-query hot path (one header block per DoH query) and memory per idle connection is
//! the constraint (issue 18's floor is half of dnsdist's ~15 KB per idle HTTP/2 connection;
//! hyper/h2 measured ~47 KB). h2's decoder keeps a 4 KB Huffman buffer per connection, builds an
//! owned header per field (a `HeaderName` parsed, name and value as `Bytes`), keeps its table as
//! a deque of such headers, and its encoder keeps a second table; the `hpack` crates allocate a
//! `Vec` per name and value. Here the only per-connection state is [`Decoder`] (about 70 bytes)
//! and its table: one `Vec<u8>` allocated on the first insertion, grown with what the peer
//! inserts, freed whenever the table becomes empty. Huffman strings go to the worker's shared
//! scratch buffer; decoding is one pass over the block, O(its length).

use std::fmt;

/// Why a header block was refused. All but [`HpackError::ListTooLarge`] leave the dynamic table
/// out of step with the peer's encoder: a connection error of type COMPRESSION_ERROR (RFC 9113
/// §4.3). After `ListTooLarge` the whole block has been decoded and the table is in step: the
/// request gets a `431` and the connection lives on.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum HpackError {
    /// The block ends inside a representation (an integer, a string length or its octets).
    Truncated,
    /// Index 0, or an index past the static and dynamic tables.
    BadIndex,
    /// A Huffman string holding the EOS code, or ending in padding longer than 7 bits or not all
    /// ones (RFC 7541 §5.2).
    BadHuffman,
    /// An integer over 2^32 - 1 or with more than 5 continuation octets.
    IntegerOverflow,
    /// A dynamic table size update above the `SETTINGS_HEADER_TABLE_SIZE` we advertise.
    SizeUpdateTooLarge,
    /// A dynamic table size update after a field representation (RFC 7541 §4.2).
    SizeUpdateNotFirst,
    /// The decoded header list (RFC 9113 §6.5.2: name + value + 32 per field) exceeds `max_list`.
    ListTooLarge,
    /// (Addition to the agreed API.) After we lowered `SETTINGS_HEADER_TABLE_SIZE` below the
    /// table's maximum ([`Decoder::set_max_table_size`]), the next block did not start with a size
    /// update to at most the new value (RFC 9113 §4.3.1, RFC 7541 §4.2).
    SizeUpdateMissing,
    /// (Addition to the agreed API.) The decoded list went past [`LIST_PAST_LIMIT`] times
    /// `max_list`: decoding stopped there, the table is out of step, close the connection
    /// (RFC 9113 §10.5.1 allows it). Finishing such a block is unbounded work for a request
    /// refused anyway: two octets (a literal with incremental indexing, its name indexed, an
    /// empty value) copy a whole table entry, up to the table's size, in and out of the table.
    ListFarTooLarge,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HpackError::Truncated => "header block cut short",
            HpackError::BadIndex => "header index out of range",
            HpackError::BadHuffman => "bad Huffman string",
            HpackError::IntegerOverflow => "HPACK integer too large",
            HpackError::SizeUpdateTooLarge => "dynamic table size update above our setting",
            HpackError::SizeUpdateNotFirst => "dynamic table size update after a field",
            HpackError::ListTooLarge => "header list too large",
            HpackError::SizeUpdateMissing => "dynamic table size update missing after a smaller setting",
            HpackError::ListFarTooLarge => "header list far too large",
        })
    }
}

impl std::error::Error for HpackError {}

/// The HPACK overhead of one entry or field (RFC 7541 §4.1, RFC 9113 §6.5.2).
const ENTRY_OVERHEAD: usize = 32;

/// How far past `max_list` a block is still decoded to its end (to answer `431` and keep the
/// connection) before [`HpackError::ListFarTooLarge`]: the work per block stays within a few
/// times `max_list` (each field's decoding copies at most its own name and value).
pub const LIST_PAST_LIMIT: usize = 4;

/// Decodes the header blocks of one connection, in the order they arrived.
pub struct Decoder {
    table: Table,
    /// The `SETTINGS_HEADER_TABLE_SIZE` in force: no size update may exceed it.
    limit: u32,
    /// Set when the setting went below the table's maximum: the next block must open with a size
    /// update to at most this (the smallest setting since, RFC 7541 §4.2).
    must_update: Option<u32>,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE we advertise (the encoder's size updates
    /// may not exceed it). The table starts at that size.
    ///
    /// A client may send requests before it has our SETTINGS, with the protocol's initial 4096
    /// (RFC 9113 §6.5.2): to advertise less than 4096, build with `new(4096)` and call
    /// [`Decoder::set_max_table_size`] when the SETTINGS are acknowledged.
    pub fn new(max_table_size: usize) -> Decoder {
        let limit = clamp_u32(max_table_size);
        Decoder { table: Table::new(limit), limit, must_update: None }
    }

    /// Changes the limit (when our SETTINGS with a new value is acknowledged); entries are
    /// evicted to fit. Below the table's current maximum, the peer's next block must begin with a
    /// size update to at most `max` ([`HpackError::SizeUpdateMissing`] otherwise).
    pub fn set_max_table_size(&mut self, max: usize) {
        self.limit = clamp_u32(max);
        if self.table.max > self.limit {
            self.table.resize(self.limit, true);
            self.must_update = Some(self.must_update.map_or(self.limit, |m| m.min(self.limit)));
        } else {
            // The peer's own smaller maximum may have left an allocation of up to twice what it
            // holds (`Table::resize`); our setting is a hard bound: cut to the table's maximum.
            self.table.resize(self.table.max, true);
        }
    }

    /// Decodes one complete header block (HEADERS + CONTINUATIONs already joined by the caller),
    /// calling `field(name, value)` for each field in order (pseudo-headers included, e.g.
    /// `b":method"`). `scratch` is a caller-owned buffer (shared per worker) for Huffman-decoded
    /// strings; it is cleared here as needed and its contents mean nothing afterwards.
    ///
    /// Stops at the first error, except [`HpackError::ListTooLarge`]: once the decoded list
    /// (name + value + 32 per field) exceeds `max_list`, `field` is no longer called but the
    /// block is still decoded to its end, so that the dynamic table stays in step; then
    /// `ListTooLarge` is returned (or a later decoding error, which takes precedence). Past
    /// [`LIST_PAST_LIMIT`] times `max_list` it stops with [`HpackError::ListFarTooLarge`].
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        scratch: &mut Vec<u8>,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        let mut list = 0usize;
        let mut at_start = true;
        while let Some(&first) = block.get(pos) {
            scratch.clear();
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if !at_start {
                    return Err(HpackError::SizeUpdateNotFirst);
                }
                let size = integer(block, &mut pos, 5)?;
                if size > self.limit as usize {
                    return Err(HpackError::SizeUpdateTooLarge);
                }
                if let Some(required) = self.must_update.take() {
                    if size > required as usize {
                        return Err(HpackError::SizeUpdateMissing);
                    }
                }
                self.table.resize(size as u32, false);
                continue;
            }
            if at_start {
                // A client that never acknowledges our smaller setting with a size update
                // (RFC 7541 §4.2 says it must; nghttp2 refuses it) is taken as having done
                // so: the table was cut to the setting already, so it cannot hold more, and
                // raw clients that never index anything work.
                self.must_update = None;
            }
            at_start = false;
            let (name, value) = if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let index = integer(block, &mut pos, 7)?;
                self.lookup(index, true, scratch)?
            } else {
                // Literal header field (§6.2): with incremental indexing (01), without indexing
                // (0000) or never indexed (0001); the name indexed or a literal.
                let indexing = first & 0x40 != 0;
                let index = integer(block, &mut pos, if indexing { 6 } else { 4 })?;
                let mut name =
                    if index == 0 { string(block, &mut pos, scratch)? } else { self.lookup(index, false, scratch)?.0 };
                let value = string(block, &mut pos, scratch)?;
                if indexing {
                    if let Loc::Table(start, end) = name {
                        // The insertion may evict the entry the name comes from (§4.4).
                        let copy = scratch.len();
                        scratch.extend_from_slice(&self.table.mem[start..end]);
                        name = Loc::Scratch(copy, scratch.len());
                    }
                    self.table.insert(name.bytes(block, &[], scratch), value.bytes(block, &[], scratch));
                }
                (name, value)
            };
            let name = name.bytes(block, &self.table.mem, scratch);
            let value = value.bytes(block, &self.table.mem, scratch);
            list = list.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
            if list <= max_list {
                field(name, value);
            } else if list > max_list.saturating_mul(LIST_PAST_LIMIT) {
                return Err(HpackError::ListFarTooLarge);
            }
        }
        if list > max_list {
            return Err(HpackError::ListTooLarge);
        }
        Ok(())
    }

    /// Bytes the dynamic table holds (for tests and memory accounting): its HPACK size, each
    /// entry's name and value plus 32 (§4.1).
    pub fn table_size(&self) -> usize {
        self.table.size as usize
    }

    /// The field at `index` (static, then dynamic); its value only if `value` is asked for.
    fn lookup(&self, index: usize, value: bool, scratch: &mut Vec<u8>) -> Result<(Loc, Loc), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex);
        }
        if let Some(&(name, val)) = STATIC_TABLE.get(index - 1) {
            return Ok((Loc::Static(name), Loc::Static(val)));
        }
        let (off, name_len, value_len) =
            self.table.entry(index - 1 - STATIC_TABLE.len()).ok_or(HpackError::BadIndex)?;
        let name = self.table.locate(off, name_len, scratch);
        let value = if value {
            self.table.locate((off + name_len) % self.table.data_cap(), value_len, scratch)
        } else {
            Loc::Static(b"")
        };
        Ok((name, value))
    }

    /// Bytes the table's allocation holds, `0` when it holds none.
    #[cfg(test)]
    fn table_capacity(&self) -> usize {
        self.table.mem.capacity()
    }

    /// The dynamic table's entries, newest first.
    #[cfg(test)]
    fn table_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut scratch = Vec::new();
        (0..self.table.count as usize)
            .map(|d| {
                let (name, value) = self.lookup(STATIC_TABLE.len() + 1 + d, true, &mut scratch).unwrap();
                let pair = (
                    name.bytes(&[], &self.table.mem, &scratch).to_vec(),
                    value.bytes(&[], &self.table.mem, &scratch).to_vec(),
                );
                scratch.clear();
                pair
            })
            .collect()
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Where a decoded name or value lies, so that it can be handed out without copying once the
/// table is done changing: ranges in the block, the table's ring or `scratch`.
#[derive(Clone, Copy)]
enum Loc {
    Static(&'static [u8]),
    Block(usize, usize),
    Table(usize, usize),
    Scratch(usize, usize),
}

impl Loc {
    fn bytes<'a>(self, block: &'a [u8], table: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        match self {
            Loc::Static(bytes) => bytes,
            Loc::Block(start, end) => &block[start..end],
            Loc::Table(start, end) => &table[start..end],
            Loc::Scratch(start, end) => &scratch[start..end],
        }
    }
}

/// An integer with an `n`-bit prefix at `*pos` (§5.1); `*pos` moves past it. At most 2^32 - 1
/// and 5 continuation octets: more is no table size, index or string length we could accept.
fn integer(block: &[u8], pos: &mut usize, n: u32) -> Result<usize, HpackError> {
    let mask = (1u8 << n) - 1;
    let first = block.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0;
    loop {
        let octet = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(octet & 0x7f) << shift;
        if octet & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
    u32::try_from(value).map(|v| v as usize).map_err(|_| HpackError::IntegerOverflow)
}

/// A string literal at `*pos` (§5.2); `*pos` moves past it. A plain one stays in the block; a
/// Huffman-coded one is decoded onto the end of `scratch`.
fn string(block: &[u8], pos: &mut usize, scratch: &mut Vec<u8>) -> Result<Loc, HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let start = *pos;
    let end = start.checked_add(len).filter(|&end| end <= block.len()).ok_or(HpackError::Truncated)?;
    *pos = end;
    if !huffman {
        return Ok(Loc::Block(start, end));
    }
    let from = scratch.len();
    huffman_decode(&block[start..end], scratch)?;
    Ok(Loc::Scratch(from, scratch.len()))
}

/// The dynamic table (§2.3.2, §4) in one allocation, `mem`: a ring of entry octets (each entry's
/// name then value, oldest first, `data_cap` bytes) followed by a ring of `slot_cap` slots (each
/// entry's offset in the first ring, name length and value length, 3 × u32). Both rings grow
/// with what the peer inserts (by half at least, from 64 octets and 4 slots), never past what
/// the table's maximum can hold: `max` octets and `max / 32` slots, as every entry costs 32 in
/// HPACK terms; they are cut when the maximum goes down (see `resize`), and the allocation is
/// dropped whenever the table becomes empty. Entries wrap around the octet ring's end; the one
/// that straddles it is copied out when referenced. u32 fields: a table's size comes from a
/// 32-bit setting, and this struct is paid for by every idle connection.
struct Table {
    mem: Vec<u8>,
    data_cap: u32,
    slot_cap: u32,
    /// Slot of the oldest entry.
    first: u32,
    count: u32,
    /// Offset of the oldest entry's octets, and how many octets the entries hold.
    data_start: u32,
    data_len: u32,
    /// HPACK size: name + value + 32 per entry.
    size: u32,
    /// Maximum HPACK size: the last size update, or the setting.
    max: u32,
}

/// A slot's bytes: offset, name length, value length.
const SLOT: usize = 12;

impl Table {
    fn new(max: u32) -> Table {
        Table {
            mem: Vec::new(),
            data_cap: 0,
            slot_cap: 0,
            first: 0,
            count: 0,
            data_start: 0,
            data_len: 0,
            size: 0,
            max,
        }
    }

    fn data_cap(&self) -> usize {
        self.data_cap as usize
    }

    fn slot(&self, slot: usize) -> (usize, usize, usize) {
        let at = self.data_cap() + slot * SLOT;
        let word = |k: usize| {
            let mut bytes = [0; 4];
            bytes.copy_from_slice(&self.mem[at + 4 * k..at + 4 * k + 4]);
            u32::from_ne_bytes(bytes) as usize
        };
        (word(0), word(1), word(2))
    }

    fn set_slot(mem: &mut [u8], at: usize, off: usize, name_len: usize, value_len: usize) {
        for (k, word) in [off, name_len, value_len].into_iter().enumerate() {
            mem[at + 4 * k..at + 4 * k + 4].copy_from_slice(&(word as u32).to_ne_bytes());
        }
    }

    /// The entry `d` places from the newest (`0`: the newest, dynamic index 62).
    fn entry(&self, d: usize) -> Option<(usize, usize, usize)> {
        let count = self.count as usize;
        (d < count).then(|| self.slot((self.first as usize + count - 1 - d) % self.slot_cap as usize))
    }

    /// The ring's `len` octets from `off`, as one slice or two when they wrap around its end.
    fn ring(&self, off: usize, len: usize) -> (&[u8], &[u8]) {
        let cap = self.data_cap();
        if off + len <= cap {
            (&self.mem[off..off + len], &[])
        } else {
            (&self.mem[off..cap], &self.mem[..off + len - cap])
        }
    }

    /// Where the ring's `len` octets from `off` can be read in one piece: in place, or copied
    /// onto `scratch` when they wrap (at most one entry straddles the ring's end).
    fn locate(&self, off: usize, len: usize, scratch: &mut Vec<u8>) -> Loc {
        match self.ring(off, len) {
            (whole, []) => Loc::Table(off, off + whole.len()),
            (head, tail) => {
                let start = scratch.len();
                scratch.extend_from_slice(head);
                scratch.extend_from_slice(tail);
                Loc::Scratch(start, scratch.len())
            }
        }
    }

    fn write(&mut self, off: usize, bytes: &[u8]) {
        let split = bytes.len().min(self.data_cap() - off);
        self.mem[off..off + split].copy_from_slice(&bytes[..split]);
        self.mem[..bytes.len() - split].copy_from_slice(&bytes[split..]);
    }

    /// Adds an entry (§4.4): evicts from the oldest until it fits; one larger than the maximum
    /// empties the table and is not added. `name` and `value` must not point into the table.
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let len = name.len() + value.len();
        if len + ENTRY_OVERHEAD > self.max as usize {
            self.evict_to(0);
            return;
        }
        while self.size as usize + len + ENTRY_OVERHEAD > self.max as usize {
            self.evict_oldest();
        }
        self.reserve(len);
        let off = (self.data_start + self.data_len) as usize % self.data_cap();
        self.write(off, name);
        self.write((off + name.len()) % self.data_cap(), value);
        let slot = (self.first + self.count) as usize % self.slot_cap as usize;
        let at = self.data_cap() + slot * SLOT;
        Table::set_slot(&mut self.mem, at, off, name.len(), value.len());
        self.count += 1;
        self.data_len += len as u32;
        self.size += (len + ENTRY_OVERHEAD) as u32;
    }

    fn evict_oldest(&mut self) {
        let (off, name_len, value_len) = self.slot(self.first as usize);
        self.first = (self.first + 1) % self.slot_cap;
        self.count -= 1;
        self.data_start = ((off + name_len + value_len) % self.data_cap()) as u32;
        self.data_len -= (name_len + value_len) as u32;
        self.size -= (name_len + value_len + ENTRY_OVERHEAD) as u32;
        if self.count == 0 {
            (self.first, self.data_start) = (0, 0);
        }
    }

    /// A new maximum size: evicts to fit, and cuts the allocation to what the maximum can
    /// hold. `strict` for our own smaller setting (rare); for the peer's size updates only once
    /// the allocation is over twice that, so that every cut at least halves it: a run of size
    /// updates (a couple of octets each, any number at the start of a block) cannot make each
    /// one a copy of the whole table.
    fn resize(&mut self, max: u32, strict: bool) {
        self.max = max;
        self.evict_to(max);
        let (data_fit, slot_fit) = (max as usize, max as usize / ENTRY_OVERHEAD);
        let slack = if strict { 1 } else { 2 };
        if self.count > 0 && (self.data_cap() > data_fit * slack || self.slot_cap as usize > slot_fit * slack) {
            self.relayout(self.data_cap().min(data_fit), (self.slot_cap as usize).min(slot_fit));
        }
    }

    /// Evicts from the oldest until the table's size is at most `size`; frees the allocation if
    /// nothing is left.
    fn evict_to(&mut self, size: u32) {
        while self.size > size {
            self.evict_oldest();
        }
        if self.count == 0 {
            self.mem = Vec::new();
            (self.data_cap, self.slot_cap) = (0, 0);
        }
    }

    /// Makes room for one more entry of `len` octets, growing the rings by half or more (never
    /// past what the maximum size can hold).
    fn reserve(&mut self, len: usize) {
        const MIN_DATA: usize = 64;
        const MIN_SLOTS: usize = 4;
        let data_need = self.data_len as usize + len;
        let slot_need = self.count as usize + 1;
        let (data_cap, slot_cap) = (self.data_cap(), self.slot_cap as usize);
        if data_need <= data_cap && slot_need <= slot_cap {
            return;
        }
        let max = self.max as usize;
        // Never a ring of 0 octets, even for entries with an empty name and value: offsets wrap
        // modulo its size.
        let data_cap = if data_need > data_cap || data_cap == 0 {
            data_need.max(data_cap + data_cap / 2).max(MIN_DATA).min(max)
        } else {
            data_cap
        };
        let slot_cap = if slot_need > slot_cap {
            slot_need.max(slot_cap * 2).max(MIN_SLOTS).min(max / ENTRY_OVERHEAD)
        } else {
            slot_cap
        };
        self.relayout(data_cap, slot_cap);
    }

    /// Moves the entries to a new allocation of the given ring sizes, unwrapped, oldest first.
    fn relayout(&mut self, data_cap: usize, slot_cap: usize) {
        let mut mem = vec![0; data_cap + slot_cap * SLOT];
        let (head, tail) = self.ring(self.data_start as usize, self.data_len as usize);
        mem[..head.len()].copy_from_slice(head);
        mem[head.len()..head.len() + tail.len()].copy_from_slice(tail);
        for k in 0..self.count as usize {
            let (off, name_len, value_len) = self.slot((self.first as usize + k) % self.slot_cap as usize);
            let off = (off + self.data_cap() - self.data_start as usize) % self.data_cap();
            Table::set_slot(&mut mem, data_cap + k * SLOT, off, name_len, value_len);
        }
        self.mem = mem;
        (self.data_cap, self.slot_cap) = (data_cap as u32, slot_cap as u32);
        (self.first, self.data_start) = (0, 0);
    }
}

/// Encodes a response header block without touching any dynamic table (no state: the encoder
/// never inserts; static-table names by index, values as literals without indexing, no Huffman
/// — answers are few and small): `:status` (indexed full field when the static table has it:
/// 200, 204, 206, 304, 400, 404, 500), then `fields`. Names must be lowercase (RFC 9113 §8.2.1).
pub fn encode_response(status: u16, fields: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    const STATUS: usize = 8; // ":status: 200", the first of its name
    let indexed = match status {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if indexed != 0 {
        encode_integer(out, 0x80, 7, indexed);
    } else {
        let mut digits = [0u8; 5];
        let mut start = digits.len();
        let mut n = status;
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        encode_integer(out, 0x00, 4, STATUS);
        encode_string(out, &digits[start..]);
    }
    for &(name, value) in fields {
        match STATIC_TABLE.iter().position(|&(static_name, _)| static_name == name) {
            Some(i) => encode_integer(out, 0x00, 4, i + 1),
            None => {
                out.push(0x00);
                encode_string(out, name);
            }
        }
        encode_string(out, value);
    }
}

/// An integer with an `n`-bit prefix after the representation's `flags` bits (§5.1).
fn encode_integer(out: &mut Vec<u8>, flags: u8, n: u32, value: usize) {
    let mask = (1usize << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A string literal without Huffman coding (§5.2).
fn encode_string(out: &mut Vec<u8>, bytes: &[u8]) {
    encode_integer(out, 0x00, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// The static table (Appendix A); index `i` is `STATIC_TABLE[i - 1]`.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

// Huffman decoding (§5.2, Appendix B). The code is canonical: every symbol's code follows from
// the code lengths alone (shorter codes first, equal lengths in symbol order), so only the
// lengths are written here; the codes, the code tree and a 4-bits-at-a-time state table are
// derived from them at compile time. A state is an internal node of the code tree (256 of
// them for 257 symbols); from each state, the 16 possible nibbles lead to a next state and
// emit at most one symbol (no code is shorter than 5 bits). That is two table lookups per
// input octet, no allocation, and no bit-level loop at run time.

/// Code length in bits of each symbol, 0 to 255 and EOS (256), from RFC 7541 Appendix B.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47: ' ' to '/'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63: '0' to '?'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79: '@' to 'O'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95: 'P' to '_'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111: '`' to 'o'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127: 'p' to DEL
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
    30, // EOS
];

const EOS: usize = 256;

/// A step of the decoder: the next state, and the symbol this nibble completed (with `EMIT`).
#[derive(Clone, Copy)]
struct Step {
    next: u8,
    sym: u8,
    flags: u8,
}

/// The nibble completed a symbol, `Step::sym`.
const EMIT: u8 = 1;
/// The string may end here: the bits since the last symbol are at most 7 ones (padding).
const ACCEPT: u8 = 2;
/// The nibble completed EOS, which a string must not hold.
const FAIL: u8 = 4;

/// `HUFFMAN_STEPS[state][nibble]`.
static HUFFMAN_STEPS: [[Step; 16]; 256] = huffman_steps();

/// Each symbol's code, assigned canonically from `HUFFMAN_LENGTHS`.
const fn huffman_codes() -> [u32; 257] {
    let mut codes = [0u32; 257];
    let mut code = 0u32;
    let mut len = 1;
    while len <= 30 {
        let mut sym = 0;
        while sym < codes.len() {
            if HUFFMAN_LENGTHS[sym] == len {
                codes[sym] = code;
                code += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    // A complete prefix code: every bit string is a code's prefix, so decoding can only fail on
    // EOS or bad padding.
    assert!(code == 1 << 31, "the Huffman lengths do not make a complete code");
    codes
}

const fn huffman_steps() -> [[Step; 16]; 256] {
    // The code tree: children of the internal nodes (node 0 is the root); a child below 256 is
    // an internal node, `256 + sym` the leaf of `sym`.
    const LEAF: usize = 256;
    let codes = huffman_codes();
    let mut tree = [[0u16; 2]; 256];
    let mut nodes = 1;
    let mut sym = 0;
    while sym < codes.len() {
        let mut node = 0;
        let mut bit = HUFFMAN_LENGTHS[sym] as u32;
        while bit > 1 {
            bit -= 1;
            let b = ((codes[sym] >> bit) & 1) as usize;
            if tree[node][b] == 0 {
                tree[node][b] = nodes;
                nodes += 1;
            }
            node = tree[node][b] as usize;
            assert!(node < LEAF, "a Huffman code is the prefix of another");
        }
        tree[node][(codes[sym] & 1) as usize] = (LEAF + sym) as u16;
        sym += 1;
    }
    assert!(nodes == 256);

    // States where the string may end: the root, and up to 7 ones below it.
    let mut accept = [false; 256];
    let mut node = 0;
    let mut depth = 0;
    while depth <= 7 {
        accept[node] = true;
        node = tree[node][1] as usize;
        depth += 1;
    }

    let mut steps = [[Step { next: 0, sym: 0, flags: 0 }; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut step = Step { next: 0, sym: 0, flags: 0 };
            let mut bit = 4;
            while bit > 0 {
                bit -= 1;
                let child = tree[node][(nibble >> bit) & 1] as usize;
                assert!(child != 0);
                if child < LEAF {
                    node = child;
                } else if child - LEAF == EOS {
                    step.flags = FAIL;
                    break;
                } else {
                    assert!(step.flags & EMIT == 0, "two symbols in one nibble");
                    step.flags = EMIT;
                    step.sym = (child - LEAF) as u8;
                    node = 0;
                }
            }
            if step.flags & FAIL == 0 && accept[node] {
                step.flags |= ACCEPT;
            }
            step.next = node as u8;
            steps[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    steps
}

/// Decodes a Huffman-coded string onto the end of `out`.
fn huffman_decode(coded: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    // At most 8/5 of the coded length: one reservation, then no reallocation.
    out.reserve(coded.len() * 8 / 5 + 1);
    let mut state = 0usize;
    let mut flags = ACCEPT;
    for &octet in coded {
        for nibble in [octet >> 4, octet & 0x0f] {
            let step = HUFFMAN_STEPS[state][usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err(HpackError::BadHuffman);
            }
            if step.flags & EMIT != 0 {
                out.push(step.sym);
            }
            state = usize::from(step.next);
            flags = step.flags;
        }
    }
    if flags & ACCEPT == 0 {
        return Err(HpackError::BadHuffman);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = Vec<(String, String)>;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    fn owned(list: &[(&str, &str)]) -> Fields {
        list.iter().map(|&(name, value)| (name.to_owned(), value.to_owned())).collect()
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn decode_with(decoder: &mut Decoder, block: &[u8], max_list: usize) -> (Fields, Result<(), HpackError>) {
        let mut scratch = Vec::new();
        let mut fields = Vec::new();
        let result =
            decoder.decode(block, max_list, &mut scratch, |name, value| fields.push((text(name), text(value))));
        (fields, result)
    }

    fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
        let (fields, result) = decode_with(decoder, block, usize::MAX);
        result.map(|()| fields)
    }

    fn entries(decoder: &Decoder) -> Fields {
        decoder.table_entries().into_iter().map(|(name, value)| (text(&name), text(&value))).collect()
    }

    /// One header block of an RFC 7541 Appendix C sequence: what it decodes to, the dynamic
    /// table after it (newest first) and the table's size.
    struct Example {
        fields: &'static [(&'static str, &'static str)],
        table: &'static [(&'static str, &'static str)],
        size: usize,
    }

    fn run(max: usize, blocks: [&str; 3], examples: &[Example; 3]) {
        let mut decoder = Decoder::new(max);
        for (block, example) in blocks.iter().zip(examples) {
            assert_eq!(decode(&mut decoder, &hex(block)).unwrap(), owned(example.fields), "{block}");
            assert_eq!(entries(&decoder), owned(example.table), "{block}");
            assert_eq!(decoder.table_size(), example.size, "{block}");
        }
    }

    const REQUESTS: [Example; 3] = [
        Example {
            fields: &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
            table: &[(":authority", "www.example.com")],
            size: 57,
        },
        Example {
            fields: &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ],
            table: &[("cache-control", "no-cache"), (":authority", "www.example.com")],
            size: 110,
        },
        Example {
            fields: &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ],
            table: &[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")],
            size: 164,
        },
    ];

    const RESPONSES: [Example; 3] = [
        Example {
            fields: &[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ],
            table: &[
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
                (":status", "302"),
            ],
            size: 222,
        },
        Example {
            fields: &[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ],
            table: &[
                (":status", "307"),
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
            ],
            size: 222,
        },
        Example {
            fields: &[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
            ],
            table: &[
                ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
                ("content-encoding", "gzip"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ],
            size: 215,
        },
    ];

    #[test]
    fn hpack_c1_integers() {
        assert_eq!(integer(&[0x0a], &mut 0, 5), Ok(10));
        let mut pos = 0;
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], &mut pos, 5), Ok(1337));
        assert_eq!(pos, 3);
        assert_eq!(integer(&[0x2a], &mut 0, 7), Ok(42));
        let mut out = Vec::new();
        encode_integer(&mut out, 0x00, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn hpack_c2_single_fields() {
        let cases: [(&str, (&str, &str), usize); 4] = [
            ("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", ("custom-key", "custom-header"), 55),
            ("040c 2f73 616d 706c 652f 7061 7468", (":path", "/sample/path"), 0),
            ("1008 7061 7373 776f 7264 0673 6563 7265 74", ("password", "secret"), 0),
            ("82", (":method", "GET"), 0),
        ];
        for (block, field, size) in cases {
            let mut decoder = Decoder::new(4096);
            assert_eq!(decode(&mut decoder, &hex(block)).unwrap(), owned(&[field]));
            assert_eq!(decoder.table_size(), size);
        }
    }

    #[test]
    fn hpack_c3_requests_without_huffman() {
        let blocks = [
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ];
        run(4096, blocks, &REQUESTS);
    }

    #[test]
    fn hpack_c4_requests_with_huffman() {
        let blocks = [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ];
        run(4096, blocks, &REQUESTS);
    }

    #[test]
    fn hpack_c5_responses_without_huffman() {
        let blocks = [
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
             3d31",
        ];
        run(256, blocks, &RESPONSES);
    }

    #[test]
    fn hpack_c6_responses_with_huffman() {
        let blocks = [
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ];
        run(256, blocks, &RESPONSES);
    }

    #[test]
    fn hpack_decoder_is_small() {
        // Paid by every connection, idle or not (the module doc says about 70 bytes).
        assert!(std::mem::size_of::<Decoder>() <= 72, "{}", std::mem::size_of::<Decoder>());
    }

    #[test]
    fn hpack_table_freed_when_emptied() {
        let mut decoder = Decoder::new(4096);
        assert_eq!(decoder.table_capacity(), 0, "nothing allocated before the first insertion");
        decode(&mut decoder, &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")).unwrap();
        assert_eq!(decoder.table_size(), 57);
        assert!(decoder.table_capacity() > 0);
        // A size update to 0, then back to 4096, then an indexed field: the table is empty and
        // holds no memory, and index 62 is gone.
        assert_eq!(decode(&mut decoder, &hex("20 3fe1 1f 82")).unwrap(), owned(&[(":method", "GET")]));
        assert_eq!(decoder.table_size(), 0);
        assert_eq!(decoder.table_capacity(), 0);
        assert_eq!(decode(&mut decoder, &hex("be")), Err(HpackError::BadIndex));
    }

    #[test]
    fn hpack_errors() {
        let cases: &[(&str, HpackError)] = &[
            ("80", HpackError::BadIndex),                       // index 0
            ("be", HpackError::BadIndex),                       // index 62, the table empty
            ("7f00 0161", HpackError::BadIndex),                // a name at index 63
            ("ff", HpackError::Truncated),                      // an integer cut short
            ("ff80", HpackError::Truncated),                    // ... in its continuation
            ("0003 6162", HpackError::Truncated),               // a string cut short
            ("007f", HpackError::Truncated),                    // ... in its length
            ("01", HpackError::Truncated),                      // no value
            ("ffff ffff ffff 00", HpackError::IntegerOverflow), // 6 continuation octets
            ("3fe1 ffff ff0f", HpackError::IntegerOverflow),    // 2^32
            ("3fe0 ffff ff0f", HpackError::SizeUpdateTooLarge), // 2^32 - 1
            ("3fe2 1f", HpackError::SizeUpdateTooLarge),        // 4097
            ("8220", HpackError::SizeUpdateNotFirst),           // after a field
            ("0081 1801 61", HpackError::BadHuffman),           // "a" padded with zeros
            ("0082 1fff 0161", HpackError::BadHuffman),         // "a" padded with 11 ones
            ("0081 ff01 61", HpackError::BadHuffman),           // 8 ones of padding alone
            ("0084 ffff ffff 0161", HpackError::BadHuffman),    // EOS
            ("0085 1fff ffff ff01 61", HpackError::BadHuffman), // "a" then EOS
        ];
        for &(block, error) in cases {
            assert_eq!(decode(&mut Decoder::new(4096), &hex(block)), Err(error), "{block}");
        }
        // The same without the fault decode.
        let fine: &[(&str, &[(&str, &str)])] = &[
            ("0081 1f01 61", &[("a", "a")]),          // "a" padded with 3 ones
            ("0080 0161", &[("", "a")]),              // an empty Huffman string
            ("3fe1 1f82", &[(":method", "GET")]),     // 4096
            ("203f e11f 82", &[(":method", "GET")]),  // two updates
            ("1f2e 00", &[("www-authenticate", "")]), // a 4-bit prefix index, 61
        ];
        for &(block, fields) in fine {
            assert_eq!(decode(&mut Decoder::new(4096), &hex(block)), Ok(owned(fields)), "{block}");
        }
        // An error after the list went over its limit wins: the connection is closed anyway.
        let (_, result) = decode_with(&mut Decoder::new(4096), &hex("8280"), 20);
        assert_eq!(result, Err(HpackError::BadIndex));
    }

    #[test]
    fn hpack_list_too_large_keeps_the_table_in_step() {
        let mut decoder = Decoder::new(4096);
        let big = "v".repeat(100);
        let mut block = hex("82 4005");
        block.extend_from_slice(b"x-big");
        block.push(100);
        block.extend_from_slice(big.as_bytes());
        block.extend_from_slice(&hex("84"));
        // ":method: GET" is 42 of the list, "x-big" 137 more, over 100: it and what follows is
        // not handed out, but it is in the table.
        let (fields, result) = decode_with(&mut decoder, &block, 100);
        assert_eq!(result, Err(HpackError::ListTooLarge));
        assert_eq!(fields, owned(&[(":method", "GET")]));
        assert_eq!(decoder.table_size(), 5 + 100 + 32);
        assert_eq!(decode(&mut decoder, &hex("be")).unwrap(), owned(&[("x-big", &big)]));
        // Two octets that copy a 4000-octet entry in and out of the table, over and over: past
        // 4 × max_list decoding stops rather than finish the block.
        let mut decoder = Decoder::new(4096);
        let mut block = hex("407f a11e");
        block.extend_from_slice(&[b'n'; 4000]);
        block.push(0);
        decode(&mut decoder, &block).unwrap();
        let block = hex(&"7e00".repeat(1000));
        let (fields, result) = decode_with(&mut decoder, &block, 16 * 1024);
        assert_eq!((fields.len(), result), (4, Err(HpackError::ListFarTooLarge)));
        // Exactly at the limit is not over it.
        let (fields, result) = decode_with(&mut Decoder::new(4096), &hex("8284"), 42 + 38);
        assert_eq!((fields.len(), result), (2, Ok(())));
    }

    #[test]
    fn hpack_eviction() {
        // §4.4: the name of the new entry refers to the entry its insertion evicts.
        let mut decoder = Decoder::new(110);
        decode(&mut decoder, &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")).unwrap();
        assert_eq!(decoder.table_size(), 55);
        let fields = decode(&mut decoder, &hex("7e0e 6375 7374 6f6d 2d68 6561 6465 7232")).unwrap();
        assert_eq!(fields, owned(&[("custom-key", "custom-header2")]));
        assert_eq!(entries(&decoder), fields);
        assert_eq!(decoder.table_size(), 56);
        // An entry larger than the table empties it, is not inserted, and is still a field.
        let mut block = hex("4063");
        block.extend_from_slice(&[b'n'; 99]);
        block.push(0);
        let (fields, result) = decode_with(&mut decoder, &block, usize::MAX);
        assert_eq!((fields.len(), result), (1, Ok(())));
        assert_eq!(decoder.table_size(), 0);
        assert_eq!(decoder.table_capacity(), 0);
        // An entry with an empty name and value, first in a fresh table (a model test found it).
        let mut fresh = Decoder::new(4096);
        assert_eq!(decode(&mut fresh, &hex("4000 00be")).unwrap(), owned(&[("", ""), ("", "")]));
        assert_eq!(fresh.table_size(), 32);
        // An entry of exactly the table's size fits.
        let mut block = hex("404e");
        block.extend_from_slice(&[b'n'; 78]);
        block.push(0);
        decode(&mut decoder, &block).unwrap();
        assert_eq!(decoder.table_size(), 110);
    }

    #[test]
    fn hpack_table_memory() {
        let bound = |max: usize| max + max / ENTRY_OVERHEAD * SLOT;
        let size_update = |max: usize| {
            let mut block = Vec::new();
            encode_integer(&mut block, 0x20, 5, max);
            block
        };
        // Ten entries of 84 octets (116 each in HPACK terms).
        let mut decoder = Decoder::new(4096);
        let mut block = Vec::new();
        for i in 0..10 {
            encode_integer(&mut block, 0x40, 6, 0);
            encode_string(&mut block, format!("x-h{i}").as_bytes());
            encode_string(&mut block, &[b'v'; 80]);
        }
        decode(&mut decoder, &block).unwrap();
        assert_eq!(decoder.table_size(), 1160);
        let grown = decoder.table_capacity();
        assert!((840 + 10 * SLOT..=bound(4096)).contains(&grown), "{grown}");
        // The peer lowers its maximum a little: nothing to evict, and the allocation is within
        // twice what 1200 can hold, so it is left alone (no copy).
        decode(&mut decoder, &size_update(1200)).unwrap();
        assert_eq!((decoder.table_size(), decoder.table_capacity()), (1160, grown));
        // Down to 400: seven entries go and the allocation is cut to what 400 can hold.
        decode(&mut decoder, &size_update(400)).unwrap();
        assert_eq!(decoder.table_size(), 348);
        assert!(decoder.table_capacity() <= bound(400), "{}", decoder.table_capacity());
        // Our own smaller setting cuts it to what the setting can hold at once.
        decoder.set_max_table_size(300);
        assert_eq!(decoder.table_size(), 232);
        assert!(decoder.table_capacity() <= bound(300), "{}", decoder.table_capacity());
        let fields = decode(&mut decoder, &hex("3f8d 02 be bf")).unwrap();
        assert_eq!(fields, owned(&[("x-h9", &"v".repeat(80)), ("x-h8", &"v".repeat(80))]));
    }

    #[test]
    fn hpack_smaller_setting() {
        // Our smaller SETTINGS acknowledged: ":authority" (57) goes; the next block should begin
        // with a size update to at most 110, once. One without it is taken as if it had (the
        // table is within the setting already).
        assert_eq!(after_requests(&[110]).table_size(), 107);
        assert_eq!(decode(&mut after_requests(&[110]), &hex("82")).unwrap(), owned(&[(":method", "GET")]));
        assert_eq!(decode(&mut after_requests(&[110]), &hex("")), Ok(vec![]));
        assert_eq!(decode(&mut after_requests(&[110]), &hex("3f50")), Err(HpackError::SizeUpdateTooLarge));
        let mut decoder = after_requests(&[110]);
        assert_eq!(decode(&mut decoder, &hex("3f4f be")).unwrap(), owned(&[("custom-key", "custom-value")]));
        assert_eq!(decode(&mut decoder, &hex("82")).unwrap(), owned(&[(":method", "GET")]), "required once only");

        // Down to 100 then up to 200 before the next block: it must signal 100 first.
        assert_eq!(after_requests(&[100, 200]).table_size(), 54);
        assert_eq!(decode(&mut after_requests(&[100, 200]), &hex("3fa9 01")), Err(HpackError::SizeUpdateMissing));
        let fields = decode(&mut after_requests(&[100, 200]), &hex("3f45 3fa9 01 be")).unwrap();
        assert_eq!(fields, owned(&[("custom-key", "custom-value")]));

        // A larger setting requires nothing; a setting of 0 frees the table.
        let mut decoder = after_requests(&[8192]);
        assert_eq!(decode(&mut decoder, &hex("82")).unwrap(), owned(&[(":method", "GET")]));
        decoder.set_max_table_size(0);
        assert_eq!((decoder.table_size(), decoder.table_capacity()), (0, 0));
        assert_eq!(decode(&mut decoder, &hex("3fe1 1f")), Err(HpackError::SizeUpdateTooLarge));
        assert_eq!(decode(&mut decoder, &hex("20 82")).unwrap(), owned(&[(":method", "GET")]));
        assert_eq!(decoder.table_capacity(), 0);
    }

    /// A decoder after the requests of C.3 (table size 164), then `settings` acknowledged.
    fn after_requests(settings: &[usize]) -> Decoder {
        let mut decoder = Decoder::new(4096);
        for block in [
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ] {
            decode(&mut decoder, &hex(block)).unwrap();
        }
        assert_eq!(decoder.table_size(), 164);
        for &setting in settings {
            decoder.set_max_table_size(setting);
        }
        decoder
    }

    #[test]
    fn hpack_encode_response_round_trips() {
        let long = "x".repeat(300);
        let fields: &[(&[u8], &[u8])] = &[
            (b"content-type", b"application/dns-message"),
            (b"cache-control", b"max-age=300"),
            (b"content-length", b"33"),
            (b"x-custom", long.as_bytes()),
            (b"www-authenticate", b""),
        ];
        for status in [200, 204, 206, 304, 400, 404, 500, 302, 405, 413, 415, 431, 100, 999] {
            let mut out = Vec::new();
            encode_response(status, fields, &mut out);
            let mut decoder = Decoder::new(4096);
            let decoded = decode(&mut decoder, &out).unwrap();
            let mut expected = vec![(":status".to_owned(), status.to_string())];
            expected.extend(fields.iter().map(|&(name, value)| (text(name), text(value))));
            assert_eq!(decoded, expected);
            assert_eq!(decoder.table_size(), 0, "nothing inserted");
        }
        let mut out = Vec::new();
        encode_response(200, &[], &mut out);
        assert_eq!(out, [0x88]);
        out.clear();
        encode_response(431, &[(b"content-type", b"a")], &mut out);
        assert_eq!(out, hex("0803 3433 31 0f10 0161"));
    }

    /// Huffman-codes `bytes` with the code derived from `HUFFMAN_LENGTHS`, padded with ones.
    fn huffman_encode(bytes: &[u8]) -> Vec<u8> {
        let codes = huffman_codes();
        let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0u32);
        for &b in bytes {
            acc = (acc << HUFFMAN_LENGTHS[usize::from(b)]) | u64::from(codes[usize::from(b)]);
            bits += u32::from(HUFFMAN_LENGTHS[usize::from(b)]);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
        }
        out
    }

    /// Decodes bit by bit against the codes themselves: the reference for `huffman_decode`.
    fn huffman_decode_slowly(coded: &[u8]) -> Result<Vec<u8>, HpackError> {
        let codes = huffman_codes();
        let (mut out, mut acc, mut len) = (Vec::new(), 0u32, 0u8);
        for i in 0..coded.len() * 8 {
            acc = (acc << 1) | u32::from(coded[i / 8] >> (7 - i % 8) & 1);
            len += 1;
            if let Some(sym) = (0..=EOS).find(|&sym| HUFFMAN_LENGTHS[sym] == len && codes[sym] == acc) {
                if sym == EOS {
                    return Err(HpackError::BadHuffman);
                }
                out.push(sym as u8);
                (acc, len) = (0, 0);
            }
        }
        // What is left must be padding: at most 7 bits, all ones.
        if len > 7 || acc != (1 << len) - 1 {
            return Err(HpackError::BadHuffman);
        }
        Ok(out)
    }

    #[test]
    fn huffman_decode_agrees_with_a_bit_by_bit_decoder_on_any_bytes() {
        // Arbitrary strings (mostly invalid: EOS, long padding) and valid ones, from a fixed
        // sequence; the table-driven decoder must give the same string or the same refusal.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut coded = if round % 3 == 0 { huffman_encode(&bytes) } else { bytes };
            if round % 5 == 0 {
                // Runs of ones reach EOS and the codes that share its prefix, at the end or with
                // a valid string after them.
                coded.extend(std::iter::repeat_n(0xff, (next() % 5) as usize));
                if round % 2 == 0 {
                    coded.extend(huffman_encode(&next().to_le_bytes()));
                }
            }
            let mut out = vec![b'#'];
            let fast = huffman_decode(&coded, &mut out).map(|()| out[1..].to_vec());
            assert_eq!(fast, huffman_decode_slowly(&coded), "{coded:02x?}");
        }
    }

    #[test]
    fn hpack_huffman_code() {
        // Codes as Appendix B lists them.
        let codes = huffman_codes();
        for (sym, code, len) in [
            (0, 0x1ff8, 13),
            (10, 0x3fff_fffc, 30),
            (usize::from(b' '), 0x14, 6),
            (usize::from(b'0'), 0x0, 5),
            (usize::from(b'a'), 0x3, 5),
            (usize::from(b'z'), 0x7b, 7),
            (usize::from(b'~'), 0x1ffd, 13),
            (255, 0x3ff_ffee, 26),
            (EOS, 0x3fff_ffff, 30),
        ] {
            assert_eq!((codes[sym], HUFFMAN_LENGTHS[sym]), (code, len), "symbol {sym}");
        }
        // Every octet, alone and all together, decodes back.
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        for b in 0..=255u8 {
            out.clear();
            huffman_decode(&huffman_encode(&[b]), &mut out).unwrap();
            assert_eq!(out, [b]);
        }
        for input in [all.clone(), all.iter().rev().copied().collect()] {
            out.clear();
            huffman_decode(&huffman_encode(&input), &mut out).unwrap();
            assert_eq!(out, input);
        }
        // Decoding appends, and an empty string is fine.
        out = b"kept".to_vec();
        huffman_decode(&[], &mut out).unwrap();
        huffman_decode(&huffman_encode(b"www.example.com"), &mut out).unwrap();
        assert_eq!(out, b"keptwww.example.com");
    }

    /// A representation for the model test; indexes are taken modulo what the table has.
    #[derive(Debug, Clone)]
    enum Op {
        Indexed(usize),
        Literal { indexing: u8, name: Result<usize, Vec<u8>>, value: Vec<u8>, huffman: (bool, bool) },
    }

    fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop_oneof![3 => b'a'..=b'z', 1 => any::<u8>()], 0..max)
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<usize>().prop_map(Op::Indexed),
            (
                0u8..3,
                prop_oneof![any::<usize>().prop_map(Ok), arb_bytes(24).prop_map(Err)],
                arb_bytes(90),
                any::<(bool, bool)>()
            )
                .prop_map(|(indexing, name, value, huffman)| Op::Literal {
                    indexing,
                    name,
                    value,
                    huffman
                }),
        ]
    }

    /// A block: a setting acknowledged before it (sometimes), size updates, fields, and the
    /// header list limit to decode it with (sometimes low enough to matter).
    fn arb_block() -> impl Strategy<Value = (Option<usize>, Vec<usize>, Vec<Op>, usize)> {
        (
            prop::option::weighted(0.1, 0usize..400),
            prop::collection::vec(0usize..400, 0..3),
            prop::collection::vec(arb_op(), 0..12),
            prop_oneof![3 => Just(usize::MAX), 1 => 0usize..1500],
        )
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Random blocks against a model table (a deque of owned entries): the same fields (up
        /// to the list limit, then `ListTooLarge`), the same entries and size, a ring that wraps
        /// (small tables), an allocation bounded by the maximum and none when the table is
        /// empty.
        #[test]
        fn hpack_decoder_matches_a_model(blocks in prop::collection::vec(arb_block(), 1..12)) {
            let mut limit = 300usize;
            let mut decoder = Decoder::new(limit);
            let mut model: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> = Default::default();
            let mut max = limit;
            let mut scratch = Vec::new();
            let evict = |model: &mut std::collections::VecDeque<(Vec<u8>, Vec<u8>)>, max: usize| {
                while model.iter().map(|(n, v)| n.len() + v.len() + 32).sum::<usize>() > max {
                    model.pop_back();
                }
            };
            for (setting, updates, ops, max_list) in blocks {
                let mut block = Vec::new();
                let mut updates = updates.into_iter().map(|u| u % (limit + 1)).collect::<Vec<_>>();
                if let Some(setting) = setting {
                    decoder.set_max_table_size(setting);
                    limit = setting;
                    updates = updates.into_iter().map(|u| u % (limit + 1)).collect();
                    if max > limit {
                        max = limit;
                        evict(&mut model, max);
                        updates.insert(0, limit);
                    }
                }
                for update in updates {
                    encode_integer(&mut block, 0x20, 5, update);
                    max = update;
                    evict(&mut model, max);
                }
                let mut expected = Vec::new();
                for op in ops {
                    let indexes = STATIC_TABLE.len() + model.len();
                    let entry = |i: usize| -> (Vec<u8>, Vec<u8>) {
                        match STATIC_TABLE.get(i - 1) {
                            Some(&(n, v)) => (n.to_vec(), v.to_vec()),
                            None => model[i - 1 - STATIC_TABLE.len()].clone(),
                        }
                    };
                    match op {
                        Op::Indexed(i) => {
                            let i = 1 + i % indexes;
                            encode_integer(&mut block, 0x80, 7, i);
                            expected.push(entry(i));
                        }
                        Op::Literal { indexing, name, value, huffman } => {
                            let (flags, prefix) = [(0x40, 6), (0x00, 4), (0x10, 4)][usize::from(indexing)];
                            let put = |block: &mut Vec<u8>, bytes: &[u8], huffman: bool| {
                                if huffman {
                                    let coded = huffman_encode(bytes);
                                    encode_integer(block, 0x80, 7, coded.len());
                                    block.extend_from_slice(&coded);
                                } else {
                                    encode_string(block, bytes);
                                }
                            };
                            let name = match name {
                                Ok(i) => {
                                    let i = 1 + i % indexes;
                                    encode_integer(&mut block, flags, prefix, i);
                                    entry(i).0
                                }
                                Err(name) => {
                                    encode_integer(&mut block, flags, prefix, 0);
                                    put(&mut block, &name, huffman.0);
                                    name
                                }
                            };
                            put(&mut block, &value, huffman.1);
                            if indexing == 0 {
                                model.push_front((name.clone(), value.clone()));
                                evict(&mut model, max);
                            }
                            expected.push((name, value));
                        }
                    }
                }
                let mut fields = Vec::new();
                let result = decoder.decode(&block, max_list, &mut scratch, |n, v| fields.push((n.to_vec(), v.to_vec())));
                let sizes: Vec<usize> = expected.iter().map(|(n, v)| n.len() + v.len() + 32).collect();
                let within = sizes.iter().scan(0, |list, size| { *list += size; Some(*list) }).take_while(|&list| list <= max_list).count();
                expected.truncate(within);
                prop_assert_eq!(fields, expected);
                if sizes.iter().sum::<usize>() > max_list.saturating_mul(LIST_PAST_LIMIT) {
                    // Decoding stopped midway: the connection would be closed.
                    prop_assert_eq!(result, Err(HpackError::ListFarTooLarge));
                    break;
                }
                prop_assert_eq!(result, if within < sizes.len() { Err(HpackError::ListTooLarge) } else { Ok(()) });
                prop_assert_eq!(decoder.table_entries(), model.iter().cloned().collect::<Vec<_>>());
                prop_assert_eq!(decoder.table_size(), model.iter().map(|(n, v)| n.len() + v.len() + 32).sum::<usize>());
                // Within our setting, and within twice the peer's maximum.
                let capacity = decoder.table_capacity();
                prop_assert!(capacity <= limit + limit / 32 * SLOT, "{} for {}", capacity, limit);
                prop_assert!(capacity <= 2 * (max + max / 32 * SLOT), "{} for {}", capacity, max);
                prop_assert_eq!(capacity == 0, model.is_empty());
            }
        }

        /// Whatever the bytes, decoding returns (no panic, no unbounded work) and the table
        /// stays within its maximum.
        #[test]
        fn hpack_decoder_survives_any_bytes(
            blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8),
            limit in 0usize..600,
        ) {
            let mut decoder = Decoder::new(limit);
            let mut scratch = Vec::new();
            for block in blocks {
                let _ = decoder.decode(&block, 1000, &mut scratch, |_, _| ());
                // (The table's maximum is the peer's to lower, our setting is the bound.)
                prop_assert!(decoder.table_size() <= limit);
                prop_assert!(decoder.table_capacity() <= limit + limit / 32 * SLOT);
            }
        }
    }
}
