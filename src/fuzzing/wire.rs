//! A strict DNS message walker: the fuzz targets' oracle for what a well-formed message is.
//!
//! Written apart from `dns` and `edns` on purpose (an oracle sharing the code under test would
//! share its bugs), and stricter than they are: names at most 255 octets (RFC 1035 §3.1),
//! labels at most 63, compression pointers only to a prior name (before the one that points),
//! every count honoured, every RDATA inside the message, the names in the RDATA of the classic
//! types (NS, CNAME, SOA, MX, SRV, ...) well-formed inside it, OPT options filling their RDATA
//! exactly. It never panics on any input and is never used by dotgate itself.

use std::ops::Range;

pub const HEADER_LEN: usize = 12;
pub const TYPE_OPT: u16 = 41;
/// RFC 1035 §3.1: label octets and length octets together.
pub const MAX_NAME_OCTETS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

#[derive(Debug, Clone)]
pub struct Question {
    /// The name's labels, lower-cased.
    pub labels: Vec<Vec<u8>>,
    pub qtype: u16,
    pub qclass: u16,
    /// Where it sits in the message.
    pub bytes: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub section: Section,
    /// Where the record (its owner name) starts.
    pub start: usize,
    pub rtype: u16,
    /// Offset of the RDLENGTH field.
    pub rdlen_at: usize,
    pub rdata: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u16,
    pub flags: u16,
    pub questions: Vec<Question>,
    pub records: Vec<Record>,
    /// Bytes after the last record (0 in a well-formed message).
    pub trailing: usize,
}

impl Message {
    /// The first OPT record of the additional section, the one EDNS reads (RFC 6891 §6.1.1).
    pub fn opt(&self) -> Option<&Record> {
        self.records.iter().find(|r| r.section == Section::Additional && r.rtype == TYPE_OPT)
    }

    pub fn count(&self, section: Section) -> usize {
        self.records.iter().filter(|r| r.section == section).count()
    }
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Parses a whole message; `None` when anything in it is malformed.
pub fn parse(msg: &[u8]) -> Option<Message> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let counts: Vec<usize> = (0..4).map(|i| be16(msg, 4 + 2 * i).map(usize::from)).collect::<Option<_>>()?;
    let mut pos = HEADER_LEN;
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let start = pos;
        let (labels, end) = read_name(msg, pos)?;
        let qtype = be16(msg, end)?;
        let qclass = be16(msg, end + 2)?;
        pos = end + 4;
        questions.push(Question { labels, qtype, qclass, bytes: start..pos });
    }
    let mut records = Vec::new();
    for (section, count) in
        [(Section::Answer, counts[1]), (Section::Authority, counts[2]), (Section::Additional, counts[3])]
    {
        for _ in 0..count {
            let start = pos;
            let (_, end) = read_name(msg, pos)?;
            let rtype = be16(msg, end)?;
            let rdlen = usize::from(be16(msg, end + 8)?);
            let rdata = end + 10..end + 10 + rdlen;
            if rdata.end > msg.len() || !rdata_names_ok(msg, rtype, &rdata) {
                return None;
            }
            pos = rdata.end;
            records.push(Record { section, start, rtype, rdlen_at: end + 8, rdata });
        }
    }
    Some(Message { id: be16(msg, 0)?, flags: be16(msg, 2)?, questions, records, trailing: msg.len() - pos })
}

/// Reads the name at `start`: its labels (lower-cased) and the offset just past it where it
/// starts. A pointer must point past the header and before the run of labels that contains it,
/// and the name it leads to must end there too: a prior occurrence of a name, never bytes that
/// come later (so pointers cannot loop, and editing later bytes never changes an earlier name).
pub fn read_name(msg: &[u8], start: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    read_name_within(msg, start, msg.len()).map(|(labels, end, _)| (labels, end))
}

/// [`read_name`], and how many compression pointers the name followed.
pub fn read_name_counting(msg: &[u8], start: usize) -> Option<(Vec<Vec<u8>>, usize, usize)> {
    read_name_within(msg, start, msg.len())
}

/// [`read_name_counting`], with the name's own bytes (up to its first pointer) inside `..limit`.
fn read_name_within(msg: &[u8], start: usize, mut limit: usize) -> Option<(Vec<Vec<u8>>, usize, usize)> {
    let mut labels = Vec::new();
    let mut octets = 0;
    let mut pointers = 0;
    let mut pos = start;
    // Where the name continues in the message, once the first pointer was followed.
    let mut end = None;
    // Where the current run of labels began: a pointer in it must point before.
    let mut run = start;
    loop {
        if pos >= limit {
            return None;
        }
        let len = usize::from(msg[pos]);
        match len & 0xc0 {
            0 => {
                octets += 1 + len;
                if octets > MAX_NAME_OCTETS {
                    return None;
                }
                if len == 0 {
                    return Some((labels, end.unwrap_or(pos + 1), pointers));
                }
                if pos + 1 + len > limit {
                    return None;
                }
                labels.push(msg[pos + 1..pos + 1 + len].to_ascii_lowercase());
                pos += 1 + len;
            }
            0xc0 => {
                if pos + 2 > limit {
                    return None;
                }
                let target = usize::from(be16(msg, pos)?) & 0x3fff;
                if target < HEADER_LEN || target >= run {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pointers += 1;
                limit = run;
                run = target;
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Record types whose RDATA holds names that this walker does not read (hickory-proto does):
/// SIG, NAPTR, IPSECKEY, RRSIG, NSEC, HIP, SVCB, HTTPS, TKEY, TSIG, AMTRELAY.
pub const UNCHECKED_NAMES_IN_RDATA: [u16; 11] = [24, 35, 45, 46, 47, 55, 64, 65, 249, 250, 260];

/// The RDATA layout of the types whose layout is a few fixed bytes and names (RFC 1035 and the
/// types after it that allow compression): fixed bytes before the names, number of names, fixed
/// bytes after them. `None` for the others (opaque here).
pub fn rdata_layout(rtype: u16) -> Option<(usize, usize, usize)> {
    match rtype {
        2..=5 | 7..=9 | 12 | 39 => Some((0, 1, 0)), // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        15 | 18 | 21 | 36 => Some((2, 1, 0)),       // MX, AFSDB, RT, KX
        6 => Some((0, 2, 20)),                      // SOA
        14 | 17 => Some((0, 2, 0)),                 // MINFO, RP
        33 => Some((6, 1, 0)),                      // SRV
        _ => None,
    }
}

/// Checks the names in the RDATA of the types whose layout is a few fixed bytes and names
/// (RFC 1035 and the types after it that allow compression): each inside the RDATA, by the
/// rules of [`read_name`]. Other types' RDATA is opaque here.
fn rdata_names_ok(msg: &[u8], rtype: u16, rdata: &Range<usize>) -> bool {
    let Some((before, names, after)) = rdata_layout(rtype) else { return true };
    let mut pos = rdata.start + before;
    for _ in 0..names {
        match read_name_within(msg, pos, rdata.end) {
            Some((_, end, _)) if end <= rdata.end => pos = end,
            _ => return false,
        }
    }
    pos + after == rdata.end
}

/// The options in `rdata` as (code, whole option's range); `None` unless they fill it exactly.
pub fn options(msg: &[u8], rdata: Range<usize>) -> Option<Vec<(u16, Range<usize>)>> {
    let (options, whole) = readable_options(msg, rdata);
    whole.then_some(options)
}

/// The options of `rdata` up to the first that overruns it (or the message), and whether they
/// fill it exactly.
pub fn readable_options(msg: &[u8], rdata: Range<usize>) -> (Vec<(u16, Range<usize>)>, bool) {
    let mut out = Vec::new();
    let mut pos = rdata.start;
    while pos + 4 <= rdata.end {
        let (Some(code), Some(len)) = (be16(msg, pos), be16(msg, pos + 2)) else { break };
        let end = pos + 4 + usize::from(len);
        if end > rdata.end {
            break;
        }
        out.push((code, pos..end));
        pos = end;
    }
    (out, pos == rdata.end)
}

/// `msg` with `record`'s RDATA replaced by `rdata` and its RDLENGTH fixed.
pub fn with_rdata(msg: &[u8], record: &Record, rdata: &[u8]) -> Vec<u8> {
    let mut out = msg[..record.rdlen_at].to_vec();
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out.extend_from_slice(&msg[record.rdata.end..]);
    out
}

/// Where the first question ends, by the strict rules, when it is uncompressed (as a query's
/// first question must be: nothing precedes it to point at).
pub fn first_question_end(msg: &[u8]) -> Option<usize> {
    if msg.get(HEADER_LEN).is_some_and(|b| b & 0xc0 != 0) {
        return None;
    }
    let (_, end) = read_name(msg, HEADER_LEN)?;
    (end + 4 <= msg.len()).then_some(end + 4)
}

/// Whether two question sections ask the same: labels ASCII-case-insensitively (RFC 4343),
/// type and class exactly. Both must parse as one uncompressed question and nothing else.
pub fn same_question(a: &[u8], b: &[u8]) -> bool {
    // A lone question has no header, and `read_name` refuses any pointer at offset 0: a
    // compressed name never parses here.
    fn parse_one(q: &[u8]) -> Option<(Vec<Vec<u8>>, &[u8])> {
        let (labels, end) = read_name(q, 0)?;
        (end + 4 == q.len()).then(|| (labels, &q[end..]))
    }
    match (parse_one(a), parse_one(b)) {
        (Some((la, ta)), Some((lb, tb))) => la == lb && ta == tb,
        _ => false,
    }
}

/// Reads an uncompressed name at `at` of `bytes` (no message around it): labels of 1 to 63
/// octets up to the root, at most 255 octets in all, no pointer. Its labels (lower-cased) and
/// the offset just past its root.
pub fn read_uncompressed_name(bytes: &[u8], at: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut labels = Vec::new();
    let mut pos = at;
    loop {
        let len = usize::from(*bytes.get(pos)?);
        if len > 63 || pos + 1 + len - at > MAX_NAME_OCTETS {
            return None;
        }
        if len == 0 {
            return Some((labels, pos + 1));
        }
        labels.push(bytes.get(pos + 1..pos + 1 + len)?.to_ascii_lowercase());
        pos += 1 + len;
    }
}

/// Whether `relative` is a run of labels (1 to 63 octets each, no root) that, before a zone of
/// `zone_len` wire octets, makes a name of at most 255 octets: read with the root put after it.
pub fn is_relative_name(relative: &[u8], zone_len: usize) -> bool {
    let mut rooted = relative.to_vec();
    rooted.push(0);
    relative.len() + zone_len <= MAX_NAME_OCTETS
        && read_uncompressed_name(&rooted, 0).is_some_and(|(_, end)| end == rooted.len())
}
