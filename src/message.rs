//! A whole DNS message read record by record, for the DNSENC client tools (the dig-style
//! printer and the NSK fetch): the questions, every record of the three sections with its owner
//! name decompressed, and where parsing stopped if it did.
//!
//! Off the per-query path: it allocates a name per record. It never panics on any bytes, and
//! follows at most 128 compression pointers per name (a name has at most 127 labels), so a
//! pointer loop ends. The listeners never use it (`dns` and `wire` read what they need in place).

use crate::dns::HEADER_LEN;

/// Pointers a name may follow before it is taken for a loop (a name has at most 127 labels).
const MAX_POINTERS: usize = 128;
const MAX_NAME_LEN: usize = 255;

/// One resource record's fields, its RDATA as a range of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record starts in the message.
    pub start: usize,
    /// The owner name, uncompressed wire form, as it was sent (not case-folded).
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: (usize, usize),
}

/// A message's questions and records, as far as they parse.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Name (wire form), type, class.
    pub questions: Vec<(Vec<u8>, u16, u16)>,
    /// Answer, authority and additional records, in order.
    pub sections: [Vec<Record>; 3],
    /// Where and why parsing stopped, if it did before the end of the last record.
    pub stopped: Option<String>,
}

pub fn parse(msg: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    if msg.len() < HEADER_LEN {
        parsed.stopped = Some(format!("a message of {} bytes, shorter than a header", msg.len()));
        return parsed;
    }
    let count = |at: usize| usize::from(be16(msg, at));
    let mut pos = HEADER_LEN;
    for _ in 0..count(4) {
        let Some((name, end)) = read_name(msg, pos) else {
            parsed.stopped = Some(format!("a question name that does not parse at byte {pos}"));
            return parsed;
        };
        let Some(fixed) = msg.get(end..end + 4) else {
            parsed.stopped = Some("the question ends early".to_owned());
            return parsed;
        };
        parsed.questions.push((name, be16(fixed, 0), be16(fixed, 2)));
        pos = end + 4;
    }
    for (section, n) in [count(6), count(8), count(10)].into_iter().enumerate() {
        for _ in 0..n {
            match read_record(msg, pos) {
                Some(record) => {
                    pos = record.rdata.1;
                    parsed.sections[section].push(record);
                }
                None => {
                    parsed.stopped = Some(format!("a record that does not parse at byte {pos}"));
                    return parsed;
                }
            }
        }
    }
    if pos != msg.len() {
        parsed.stopped = Some(format!("{} bytes after the last record", msg.len() - pos));
    }
    parsed
}

fn read_record(msg: &[u8], pos: usize) -> Option<Record> {
    let (owner, end) = read_name(msg, pos)?;
    let fixed = msg.get(end..end + 10)?;
    let rdata = (end + 10, end + 10 + usize::from(be16(fixed, 8)));
    if rdata.1 > msg.len() {
        return None;
    }
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    Some(Record { start: pos, owner, rtype: be16(fixed, 0), class: be16(fixed, 2), ttl, rdata })
}

pub fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// The name at `pos` (possibly compressed) in uncompressed wire form, and where it ends in
/// place. `None` when it runs off the message, loops, uses a reserved label type or is longer
/// than 255 octets.
pub fn read_name(msg: &[u8], mut pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::new();
    let mut end = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0 if len == 0 => break,
            0 => {
                let label = msg.get(pos..pos + 1 + usize::from(len))?;
                name.extend_from_slice(label);
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let target = usize::from(u16::from_be_bytes([len, *msg.get(pos + 1)?]) & 0x3fff);
                end.get_or_insert(pos + 2);
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
        // The root's octet counts too.
        if name.len() + 1 > MAX_NAME_LEN {
            return None;
        }
    }
    name.push(0);
    Some((name, end.unwrap_or(pos + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decompress_and_loops_end() {
        // Header, then "a.example." at 12, then a pointer to "example." at 14.
        let mut msg = vec![0; 12];
        msg.extend_from_slice(b"\x01a\x07example\x00");
        let second = msg.len();
        msg.extend_from_slice(&[0x03, b'w', b'w', b'w', 0xc0, 14]);
        assert_eq!(read_name(&msg, 12), Some((b"\x01a\x07example\x00".to_vec(), second)));
        assert_eq!(read_name(&msg, second), Some((b"\x03www\x07example\x00".to_vec(), second + 6)));
        let looped = [0xc0, 0];
        assert_eq!(read_name(&looped, 0), None);
        assert_eq!(read_name(&[0x40, 0], 0), None, "a reserved label type");
        assert_eq!(read_name(&[3, b'a'], 0), None, "runs off the message");
        let mut long = Vec::new();
        for _ in 0..128 {
            long.extend_from_slice(&[1, b'x']);
        }
        long.push(0);
        assert_eq!(read_name(&long, 0), None, "257 octets");
    }
}
