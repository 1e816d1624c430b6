//! DNSENC's wire formats (draft-krecicki-dprive-dnsenc-01, "Method 1": §2.2.1, §2.3, §2.4, §3):
//! the NSK record (RDATA, its presentation and RFC 3597 generic forms, the applicable-name
//! matcher), the DNSENC EDNS option, the outer query as the server reads it, the decrypted inner
//! query as the server checks it, and the query and response envelopes.
//!
//! Owns: the bytes and text of those formats and the checks the draft puts on them. The code
//! points the draft leaves TBD are passed in ([`CodePoints`]), never assumed.
//!
//! Never: does cryptography, chooses keys or schemes (whether a key ID exists, whether a scheme
//! was offered, whether a key's length fits its scheme are the caller's checks), does I/O, or
//! panics on any input: every parser takes arbitrary bytes or text, and every writer any
//! arguments (a length that cannot fit is cut, as each writer says, rather than wrapped).
//! Writers of whole messages clear `out` first; writers of parts append.

use std::fmt;
use std::ops::Range;

use base64::Engine as _;

use crate::dns::{self, HEADER_LEN};
use crate::edns::{find_opt, options, OptRecord, PLAIN_UDP_PAYLOAD};

/// The code points the draft leaves TBD. Configurable; the defaults sit in the private-use
/// ranges (RR type 65280-65534, EDNS option 65001-65534, RCODE 3841-4095).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePoints {
    /// RR type of NSK (§6.1).
    pub nsk_type: u16,
    /// EDNS option code of DNSENC (§6.2).
    pub option_code: u16,
    /// The BADCRYPT RCODE (§6.4), an extended RCODE (above 15): see [`write_response_envelope`].
    pub badcrypt: u16,
}

impl Default for CodePoints {
    fn default() -> Self {
        CodePoints { nsk_type: 65301, option_code: 65050, badcrypt: 3841 }
    }
}

/// The encryption schemes (§6.5): 16-bit identifiers, the high bit set for symmetric ones.
pub mod scheme {
    /// RSAES-OAEP with a 2048-bit key (asymmetric, queries).
    pub const RSA2048_OAEP: u16 = 0x0001;
    /// RSAES-OAEP with a 4096-bit key (asymmetric, queries).
    pub const RSA4096_OAEP: u16 = 0x0002;
    /// X25519 with HPKE (asymmetric, queries; in the draft's vendor-specific space).
    pub const X25519_HPKE: u16 = 0x00F1;
    /// AES-256-GCM (symmetric, responses).
    pub const AES256_GCM: u16 = 0x8001;
    /// ChaCha20-Poly1305 (symmetric, responses; in the draft's vendor-specific space).
    pub const CHACHA20_POLY1305: u16 = 0x80F1;

    const NAMES: [(u16, &str); 5] = [
        (RSA2048_OAEP, "rsa2048"),
        (RSA4096_OAEP, "rsa4096"),
        (X25519_HPKE, "x25519"),
        (AES256_GCM, "aes-256"),
        (CHACHA20_POLY1305, "chacha20-poly1305"),
    ];

    /// The presentation name of a known scheme.
    pub fn name(code: u16) -> Option<&'static str> {
        NAMES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
    }

    /// The scheme a presentation name stands for, ASCII case-insensitively ("aes-256-gcm" is
    /// taken for "aes-256" too).
    pub fn from_name(s: &str) -> Option<u16> {
        if s.eq_ignore_ascii_case("aes-256-gcm") {
            return Some(AES256_GCM);
        }
        NAMES.iter().find(|(_, n)| s.eq_ignore_ascii_case(n)).map(|(c, _)| *c)
    }

    /// Whether `code` names a symmetric scheme: its high bit is set (§6.5).
    pub fn is_symmetric(code: u16) -> bool {
        code & 0x8000 != 0
    }
}

/// Why bytes do not read as the format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the data ends inside a field")]
    Truncated,
    #[error("bytes after the last field")]
    TrailingBytes,
    #[error("a compression pointer in a name that must be uncompressed")]
    CompressedName,
    #[error("a label of a reserved type")]
    BadLabel,
    #[error("a name longer than 255 octets")]
    NameTooLong,
    #[error("RDATA longer than 65,535 octets")]
    TooLong,
    #[error("a resource record that does not parse")]
    BadRecord,
    #[error("not a response (QR=0)")]
    NotResponse,
    #[error("an opcode other than QUERY")]
    NotOpcodeQuery,
    #[error("not exactly one question")]
    QuestionCount,
    #[error("more than one OPT record")]
    SeveralOpt,
    #[error("EDNS options that do not fill the OPT record")]
    BadOptions,
    #[error("the DNSENC option more than once")]
    SeveralOptions,
    #[error("a DNSENC option shorter than its 4-octet key identifier")]
    ShortOption,
}

const TYPE_OPT: u16 = 41;
const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;
const OPCODE_QUERY: u8 = 0;
/// Longest domain name on the wire (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;
const MAX_MESSAGE: usize = u16::MAX as usize;
/// An OPT record without its RDATA: root name, TYPE, CLASS, TTL, RDLENGTH.
const OPT_FIXED_LEN: usize = 11;
/// A DNSENC option without its payload: OPTION-CODE, OPTION-LENGTH, KEY IDENTIFIER.
const OPTION_FIXED_LEN: usize = 8;
/// The zone every DNSENC query name sits under.
const DNSENC_ARPA: [&[u8]; 2] = [b"dnsenc", b"arpa"];
/// Characters of a nonce label (RFC 4648 §7, "base32hex", lower-cased).
const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
/// The question of a query envelope: `<26-character nonce>.dnsenc.arpa. TXT IN`.
const QUERY_ENVELOPE_QUESTION_LEN: usize = 1 + 26 + 1 + 6 + 1 + 4 + 1 + 4;

/// Bytes a query envelope adds around its payload: header, question, OPT record, the option's
/// code, length and key identifier.
pub const QUERY_ENVELOPE_OVERHEAD: usize = HEADER_LEN + QUERY_ENVELOPE_QUESTION_LEN + OPT_FIXED_LEN + OPTION_FIXED_LEN;

// ---- NSK record ----------------------------------------------------------------------------

/// An NSK record's RDATA (§3.1.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Nsk {
    /// KEY IDENTIFIER: unique for the server.
    pub key_id: u32,
    /// PRIORITY, as the server prefers (0 in a query's NSK).
    pub priority: u8,
    /// RESERVED: written as held (0 when made here), accepted whatever it is.
    pub reserved: u8,
    /// APPLICABLE NS NAME in wire form, uncompressed; `[0]` (the root) is the draft's "empty".
    pub ns_name: Vec<u8>,
    /// ENCRYPTION SCHEME (see [`scheme`]).
    pub scheme: u16,
    /// KEY DATA: a public key, or in a query's NSK the one-time response key.
    pub key: Vec<u8>,
    /// RESPONSE ENCRYPTION SCHEMES, most preferred first (empty in a query's NSK).
    pub response_schemes: Vec<u16>,
}

/// Keys of symmetric schemes are secrets (a query's response key): shown by length only.
impl fmt::Debug for Nsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Nsk");
        d.field("key_id", &self.key_id)
            .field("priority", &self.priority)
            .field("reserved", &self.reserved)
            .field("ns_name", &self.ns_name)
            .field("scheme", &self.scheme);
        if scheme::is_symmetric(self.scheme) {
            d.field("key", &format_args!("<{} secret octets>", self.key.len()));
        } else {
            d.field("key", &self.key);
        }
        d.field("response_schemes", &self.response_schemes).finish()
    }
}

impl Nsk {
    /// The NSK a client puts in its query (§3.1.1): priority 0, the empty (root) name, the
    /// symmetric `scheme` and its one-time `key`, no response schemes.
    pub fn response_key(scheme: u16, key: Vec<u8>) -> Nsk {
        Nsk { key_id: 0, priority: 0, reserved: 0, ns_name: vec![0], scheme, key, response_schemes: Vec::new() }
    }

    /// Reads an NSK RDATA, strictly: every field whole, the name uncompressed and valid (labels
    /// of at most 63 octets, at most 255 in all, a compression pointer or a reserved label type
    /// refused, as RFC 3597 §4 has it for a type a server may not know), and nothing after the
    /// last response scheme.
    pub fn parse_rdata(rdata: &[u8]) -> Result<Nsk, WireError> {
        if rdata.len() > MAX_MESSAGE {
            return Err(WireError::TooLong);
        }
        let mut r = Reader { bytes: rdata, pos: 0 };
        let key_id = r.u32()?;
        let priority = r.u8()?;
        let reserved = r.u8()?;
        let name_end = uncompressed_name_end(rdata, r.pos)?;
        let ns_name = rdata[r.pos..name_end].to_vec();
        r.pos = name_end;
        let scheme = r.u16()?;
        let key_len = r.u16()? as usize;
        let key = r.take(key_len)?.to_vec();
        let count = r.u16()? as usize;
        let list = r.take(2 * count)?;
        if r.pos != rdata.len() {
            return Err(WireError::TrailingBytes);
        }
        let response_schemes = list.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        Ok(Nsk { key_id, priority, reserved, ns_name, scheme, key, response_schemes })
    }

    /// Length of the RDATA [`Nsk::write_rdata`] writes for a valid record.
    pub fn rdata_len(&self) -> usize {
        4 + 1 + 1 + self.ns_name.len() + 2 + 2 + self.key.len() + 2 + 2 * self.response_schemes.len()
    }

    /// Whether the record can be written as RDATA that [`Nsk::parse_rdata`] reads back as it:
    /// `ns_name` one valid uncompressed name and nothing more, the RDATA at most 65,535 octets.
    pub fn validate(&self) -> Result<(), WireError> {
        if uncompressed_name_end(&self.ns_name, 0)? != self.ns_name.len() {
            return Err(WireError::TrailingBytes);
        }
        if self.rdata_len() > MAX_MESSAGE {
            return Err(WireError::TooLong);
        }
        Ok(())
    }

    /// Appends the RDATA. A record [`Nsk::validate`] refuses is written anyway, its key and
    /// scheme list cut to 65,535 entries and its name as held: bytes `parse_rdata` refuses or
    /// reads differently, never a panic.
    pub fn write_rdata(&self, out: &mut Vec<u8>) {
        let key = &self.key[..self.key.len().min(u16::MAX as usize)];
        let schemes = &self.response_schemes[..self.response_schemes.len().min(u16::MAX as usize)];
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.push(self.priority);
        out.push(self.reserved);
        out.extend_from_slice(&self.ns_name);
        out.extend_from_slice(&self.scheme.to_be_bytes());
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(schemes.len() as u16).to_be_bytes());
        for s in schemes {
            out.extend_from_slice(&s.to_be_bytes());
        }
    }

    /// Appends the whole record as a query's additional section carries it (§2.2): owner the
    /// root, type `cp.nsk_type`, class IN, TTL 0. The RDLENGTH is the RDATA's, cut to 65,535.
    pub fn write_record(&self, cp: &CodePoints, out: &mut Vec<u8>) {
        out.push(0);
        out.extend_from_slice(&cp.nsk_type.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        let rdlen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.write_rdata(out);
        let rdlen = (out.len() - rdlen_at - 2).min(MAX_MESSAGE) as u16;
        out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    /// The presentation form of §3.1.2 on one line: key identifier, priority, the applicable
    /// name ("." when empty; special characters escaped as in a zone file), the scheme by name
    /// when known (else its number), the key as one quoted base64 string, the response schemes
    /// (by name when known). The draft's form has no place for the reserved octet: a record
    /// whose reserved octet is not 0, or that [`Nsk::validate`] refuses, is given in the
    /// generic form instead, so that [`Nsk::parse_presentation`] always reads back the record.
    pub fn to_presentation(&self) -> String {
        if self.reserved != 0 || self.validate().is_err() {
            return self.to_generic();
        }
        let mut out = format!("{} {} {} ", self.key_id, self.priority, crate::dns::display_name(&self.ns_name));
        push_scheme(&mut out, self.scheme);
        out.push_str(" \"");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(&self.key));
        out.push('"');
        for &s in &self.response_schemes {
            out.push(' ');
            push_scheme(&mut out, s);
        }
        out
    }

    /// The generic form of RFC 3597 §5: `\# <length> <hex>`, the RDATA in lower-case hex.
    pub fn to_generic(&self) -> String {
        let mut rdata = Vec::with_capacity(self.rdata_len());
        self.write_rdata(&mut rdata);
        let mut out = format!("\\# {} ", rdata.len());
        for b in rdata {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Reads an NSK record in either presentation form: the draft's (§3.1.2) or the generic one
    /// (RFC 3597, `\# <length> <hex...>`, the hex possibly split by spaces), with or without
    /// the start of a zone-file record before it (`<owner> [<TTL>] [<class>] NSK|TYPEnnn`; the
    /// type number is not checked against the code points).
    ///
    /// Zone-file syntax throughout: parentheses group lines, `;` starts a comment, `\X` and
    /// `\DDD` escape, a line break outside parentheses ends the record. In the draft's form a
    /// scheme is a number or a name; the name is absolute whether or not it ends with a dot;
    /// the key is base64, one or more chunks, quoted or not, spaces and line breaks inside
    /// quotes ignored. The key's first chunk is always the key's; after it an unquoted chunk
    /// that reads as a scheme (a number up to 65535 or a scheme name), once the chunks so far
    /// are whole base64 quanta, starts the response schemes: quote the key to be unambiguous.
    ///
    /// The error is one line, for a config error or a log.
    pub fn parse_presentation(s: &str) -> Result<Nsk, String> {
        let tokens = tokenize(s)?;
        let tokens = skip_record_start(&tokens)?;
        let nsk = match tokens.first() {
            Some(t) if !t.quoted && t.raw == b"\\#" => parse_generic(&tokens[1..])?,
            Some(_) => parse_draft_form(tokens)?,
            None => return Err("no RDATA".to_owned()),
        };
        nsk.validate().map_err(|e| format!("not a valid NSK record: {e}"))?;
        Ok(nsk)
    }

    /// Whether this key may be used with the name server `server_name` (§3.1.1): every server
    /// when the applicable name is empty (the root); otherwise the name's labels, joined with
    /// dots, matched against `server_name` by [`star_match`] (`*` any run of characters, dots
    /// included; ASCII case-insensitive), a trailing dot on either ignored.
    pub fn applies_to(&self, server_name: &str) -> bool {
        if self.ns_name.first().is_none_or(|&len| len == 0) {
            return true;
        }
        let mut pattern = Vec::with_capacity(self.ns_name.len());
        let mut pos = 0;
        while let Some(&len) = self.ns_name.get(pos) {
            let Some(label) = self.ns_name.get(pos + 1..pos + 1 + len as usize).filter(|_| len & 0xc0 == 0) else {
                break;
            };
            if len == 0 {
                break;
            }
            if !pattern.is_empty() {
                pattern.push(b'.');
            }
            pattern.extend_from_slice(label);
            pos += 1 + len as usize;
        }
        let name = server_name.as_bytes();
        let name = name.strip_suffix(b".").unwrap_or(name);
        star_match_bytes(&pattern, name)
    }
}

/// Whether `name` matches `pattern`, in which `*` stands for zero or more characters of any
/// kind (dots included) and everything else for itself, ASCII case-insensitively: the
/// applicable-name wildcard of §3.1.1 (`ns*.example.com` matches `ns.example.com` and
/// `ns1.foobar.example.com`; `*` alone matches anything). Compares bytes, whole strings.
///
/// Greedy with one resumption point (the last `*` seen), so at most `pattern.len() *
/// name.len()` steps whatever the stars: no exponential backtracking.
pub fn star_match(pattern: &str, name: &str) -> bool {
    star_match_bytes(pattern.as_bytes(), name.as_bytes())
}

fn star_match_bytes(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // After the last star: where the pattern resumes, and the name position it was tried at.
    let mut resume: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                resume = Some((p, n));
            }
            Some(c) if c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match resume {
                // The last star takes one more character of the name, and the rest is tried again.
                Some((after_star, tried)) => {
                    p = after_star;
                    n = tried + 1;
                    resume = Some((after_star, n));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Reads big-endian fields off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let field = self.bytes.get(self.pos..self.pos + n).ok_or(WireError::Truncated)?;
        self.pos += n;
        Ok(field)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Offset just past the uncompressed name at `start` in `buf`.
fn uncompressed_name_end(buf: &[u8], start: usize) -> Result<usize, WireError> {
    let mut pos = start;
    loop {
        let len = *buf.get(pos).ok_or(WireError::Truncated)? as usize;
        match len & 0xc0 {
            0 if len == 0 => return Ok(pos + 1),
            0 => {}
            0xc0 => return Err(WireError::CompressedName),
            _ => return Err(WireError::BadLabel),
        }
        pos += 1 + len;
        // The root's octet still follows: it counts towards the 255 too.
        if pos - start + 1 > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        if pos > buf.len() {
            return Err(WireError::Truncated);
        }
    }
}

// ---- Presentation form ---------------------------------------------------------------------

/// Appends a scheme: its name when known, else its number.
fn push_scheme(out: &mut String, code: u16) {
    match scheme::name(code) {
        Some(name) => out.push_str(name),
        None => out.push_str(&code.to_string()),
    }
}

/// One zone-file token: its bytes as written (escapes kept), and whether it was quoted.
#[derive(Debug, Default)]
pub(crate) struct Token {
    pub(crate) raw: Vec<u8>,
    pub(crate) quoted: bool,
}

/// The token for an error message: quoted and escaped, on one line.
fn show(token: &Token) -> String {
    format!("{:?}", String::from_utf8_lossy(&token.raw))
}

/// Splits zone-file text holding one record into tokens (see [`tokenize_records`]).
fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut records = tokenize_records(s)?;
    if records.len() > 1 {
        return Err("more than one record (a line break outside parentheses ends a record)".to_owned());
    }
    Ok(records.pop().unwrap_or_default())
}

/// Splits zone-file text into records of tokens: whitespace separates, `( )` group lines, `;`
/// comments to the end of the line, `"..."` quotes (with `\` escaping inside), `\` escapes the
/// next character in an unquoted token. A line break outside parentheses ends a record; lines
/// with nothing but comments or blanks make none.
pub(crate) fn tokenize_records(s: &str) -> Result<Vec<Vec<Token>>, String> {
    let b = s.as_bytes();
    let mut records = Vec::new();
    let mut tokens = Vec::new();
    let mut depth = 0u32;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                if depth == 0 && !tokens.is_empty() {
                    records.push(std::mem::take(&mut tokens));
                }
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        match c {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.checked_sub(1).ok_or("a ')' without its '('")?;
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                i = start;
                loop {
                    match b.get(i) {
                        None => return Err("a quoted string without its closing quote".to_owned()),
                        Some(b'"') => break,
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                tokens.push(Token { raw: b[start..i].to_vec(), quoted: true });
                i += 1;
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'"' | b';') {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i > b.len() {
                    return Err("a '\\' at the end of the text".to_owned());
                }
                tokens.push(Token { raw: b[start..i].to_vec(), quoted: false });
            }
        }
    }
    if depth != 0 {
        return Err("a '(' without its ')'".to_owned());
    }
    if !tokens.is_empty() {
        records.push(tokens);
    }
    Ok(records)
}

/// Reads the escape after a backslash at `raw[at]`: `\DDD` (a decimal byte) or `\X` (X itself).
/// Returns the byte and the offset after the escape.
fn read_escape(raw: &[u8], at: usize) -> Result<(u8, usize), String> {
    let next = *raw.get(at + 1).ok_or("a '\\' at the end of a field")?;
    if !next.is_ascii_digit() {
        return Ok((next, at + 2));
    }
    let digits = raw.get(at + 1..at + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
    let value = digits.map(|d| d.iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0')));
    match value {
        Some(v) if v <= 255 => Ok((v as u8, at + 4)),
        _ => Err("a '\\DDD' escape that is not three digits up to 255".to_owned()),
    }
}

/// A token's bytes with its escapes undone.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let (b, next) = read_escape(raw, i)?;
            out.push(b);
            i = next;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A zone-file name (escapes, unescaped dots between labels) in wire form; absolute whether or
/// not it ends with a dot; "." is the root.
pub fn name_from_text(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw == b"." {
        return Ok(vec![0]);
    }
    let mut out = Vec::new();
    let mut label = Vec::new();
    let mut i = 0;
    let push_label = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() {
            return Err("a name with an empty label".to_owned());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("a name with a label longer than 63 octets".to_owned());
        }
        out.push(label.len() as u8);
        out.append(label);
        Ok(())
    };
    while i < raw.len() {
        match raw[i] {
            b'\\' => {
                let (b, next) = read_escape(raw, i)?;
                label.push(b);
                i = next;
            }
            b'.' => {
                push_label(&mut label, &mut out)?;
                i += 1;
            }
            b => {
                label.push(b);
                i += 1;
            }
        }
    }
    if !label.is_empty() {
        push_label(&mut label, &mut out)?;
    }
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err("a name longer than 255 octets".to_owned());
    }
    Ok(out)
}

/// A decimal field: ASCII digits only, within `T`.
fn number<T: std::str::FromStr>(token: Option<&Token>, what: &str) -> Result<T, String> {
    let token = token.ok_or_else(|| format!("the {what} is missing"))?;
    let digits = !token.quoted && !token.raw.is_empty() && token.raw.iter().all(u8::is_ascii_digit);
    let value = digits.then(|| std::str::from_utf8(&token.raw).ok()?.parse().ok()).flatten();
    value.ok_or_else(|| format!("the {what} must be a number in range, not {}", show(token)))
}

/// A scheme written as a number (up to 65535) or a name; `None` when it is neither.
fn scheme_of(token: &Token) -> Option<u16> {
    if token.quoted {
        return None;
    }
    let text = String::from_utf8(unescape(&token.raw).ok()?).ok()?;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    scheme::from_name(&text)
}

/// The tokens after the start of a zone-file record (`<owner> [<TTL>] [<class>] NSK|TYPEnnn`)
/// when there is one: a first token that is a number or `\#` starts the RDATA itself.
fn skip_record_start(tokens: &[Token]) -> Result<&[Token], String> {
    let Some(first) = tokens.first() else { return Err("an empty record".to_owned()) };
    if first.quoted || first.raw == b"\\#" || first.raw.iter().all(u8::is_ascii_digit) {
        return Ok(tokens);
    }
    let is_type = |t: &Token| {
        let upper = t.raw.to_ascii_uppercase();
        upper == b"NSK"
            || upper.strip_prefix(b"TYPE").is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
    };
    let is_ttl_or_class = |t: &Token| {
        let upper = t.raw.to_ascii_uppercase();
        upper.iter().all(u8::is_ascii_digit)
            || matches!(&upper[..], b"IN" | b"CH" | b"HS" | b"CS")
            || upper.strip_prefix(b"CLASS").is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
    };
    for (i, token) in tokens.iter().enumerate().skip(1).take(3) {
        if token.quoted {
            break;
        }
        if is_type(token) {
            return Ok(&tokens[i + 1..]);
        }
        if !is_ttl_or_class(token) {
            return Err(format!("expected a TTL, a class or the type NSK after the owner name, not {}", show(token)));
        }
    }
    Err(format!("expected the key identifier (a number), or a record whose type is NSK, not {}", show(first)))
}

/// The draft's form (§3.1.2), `tokens` starting at the key identifier.
fn parse_draft_form(tokens: &[Token]) -> Result<Nsk, String> {
    let mut it = tokens.iter();
    let key_id = number(it.next(), "key identifier")?;
    let priority = number(it.next(), "priority")?;
    let name = it.next().ok_or("the applicable NS name is missing")?;
    if name.quoted {
        return Err(format!("the applicable NS name must not be quoted: {}", show(name)));
    }
    let ns_name = name_from_text(&name.raw)?;
    let scheme_token = it.next().ok_or("the encryption scheme is missing")?;
    let scheme = scheme_of(scheme_token)
        .ok_or_else(|| format!("the encryption scheme must be a number or a name, not {}", show(scheme_token)))?;
    let first_chunk = it.next().ok_or("the key (base64) is missing")?;
    let mut base64_text: Vec<u8> = unescape(&first_chunk.raw)?;
    let mut response_schemes = Vec::new();
    for token in it {
        let starts_schemes = response_schemes.is_empty() && !token.quoted && base64_quanta_whole(&base64_text);
        if !response_schemes.is_empty() || starts_schemes {
            if let Some(s) = scheme_of(token) {
                response_schemes.push(s);
                continue;
            }
            if !response_schemes.is_empty() {
                return Err(format!("a response scheme must be a number or a name, not {}", show(token)));
            }
        }
        base64_text.extend(unescape(&token.raw)?);
    }
    base64_text.retain(|b| !b.is_ascii_whitespace());
    let key = base64::engine::general_purpose::STANDARD
        .decode(&base64_text)
        .map_err(|e| format!("the key is not valid base64: {e}"))?;
    Ok(Nsk { key_id, priority, reserved: 0, ns_name, scheme, key, response_schemes })
}

/// Whether base64 text (whitespace aside) is whole 4-character quanta.
fn base64_quanta_whole(text: &[u8]) -> bool {
    text.iter().filter(|b| !b.is_ascii_whitespace()).count() % 4 == 0
}

/// The generic form (RFC 3597 §5), `tokens` after `\#`: the length, then the hex.
fn parse_generic(tokens: &[Token]) -> Result<Nsk, String> {
    let len: u16 = number(tokens.first(), "RDATA length")?;
    let mut hex = Vec::new();
    for token in &tokens[1..] {
        if token.quoted || !token.raw.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("the RDATA must be hexadecimal, not {}", show(token)));
        }
        hex.extend_from_slice(&token.raw);
    }
    if hex.len() % 2 != 0 {
        return Err("the RDATA has an odd number of hex digits".to_owned());
    }
    let value = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    let rdata: Vec<u8> = hex.chunks_exact(2).map(|p| (value(p[0]) << 4) | value(p[1])).collect();
    if rdata.len() != len as usize {
        return Err(format!("the RDATA is {} octets, not the {len} its length says", rdata.len()));
    }
    Nsk::parse_rdata(&rdata).map_err(|e| format!("the RDATA does not read as NSK: {e}"))
}

// ---- The DNSENC option ---------------------------------------------------------------------

/// The draft's example NSK record (§3.1.2), as printed there: for the tests and the fuzz
/// seeds.
#[cfg(any(test, feature = "fuzzing"))]
pub const DRAFT_NSK_EXAMPLE: &str = r#"example.com.  86400 IN NSK (896417428       ; identifier
                            10              ; priority
                            ns*.example.com ; applicable NS name
                            1               ; query encryption
                                            ; scheme
                            "bnJfZnJlZV9wYWdlcyAyMTU2NjgKbnJf
                            YWxsb2NfYmF0Y2ggNDE1OQpucl9pbmFj
                            dGl2ZV9hbm9uIDM1NzczNwpucl9hY3Rp
                            IDQ4OTAwMQpucl9kaXJ0eSAxMTUKbnJf
                            ZCAwCg=="       ; query key, b64 encoded
                            32769 aes-256   ; response encryption
                                            ; schemes
                            )"#;

/// Reads a DNSENC option's DATA (§3.2): the key identifier and the encrypted payload; `None`
/// when it is shorter than the key identifier.
pub fn parse_option(data: &[u8]) -> Option<(u32, &[u8])> {
    let (key_id, payload) = data.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*key_id), payload))
}

/// Appends a DNSENC option's DATA: the key identifier, then `payload` (the caller keeps it
/// within what the OPTION-LENGTH can say, 65,531 octets).
pub fn write_option(key_id: u32, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(payload);
}

// ---- Records --------------------------------------------------------------------------------

/// Where a resource record sits in a message.
#[derive(Debug, Clone)]
struct RecordAt {
    /// Its first byte (the owner name's).
    start: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: Range<usize>,
}

impl RecordAt {
    /// Whether the owner is the root written as its single zero octet (no pointer).
    fn owner_is_literal_root(&self, msg: &[u8]) -> bool {
        msg[self.start] == 0 && self.rdata.start == self.start + 11
    }
}

/// The record at `start`, its owner name possibly compressed; `None` when it runs off `msg`.
fn record_at(msg: &[u8], start: usize) -> Option<RecordAt> {
    let owner_end = dns::skip_name(msg, start)?;
    let fixed = msg.get(owner_end..owner_end + 10)?;
    let be16 = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
    let rdata = owner_end + 10..owner_end + 10 + be16(8) as usize;
    if rdata.end > msg.len() {
        return None;
    }
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    Some(RecordAt { start, rtype: be16(0), class: be16(2), ttl, rdata })
}

/// The answer, authority and additional counts of a message of at least a header.
fn record_counts(msg: &[u8]) -> (usize, usize, usize) {
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    (count(6), count(8), count(10))
}

/// Every record after the question (ending at `question_end`), in order, with the offset where
/// the last one ends; `None` when one does not parse.
fn walk_records(msg: &[u8], question_end: usize) -> Option<(Vec<RecordAt>, usize)> {
    let (an, ns, ar) = record_counts(msg);
    let mut records = Vec::new();
    let mut pos = question_end;
    for _ in 0..an + ns + ar {
        let record = record_at(msg, pos)?;
        pos = record.rdata.end;
        records.push(record);
    }
    Some((records, pos))
}

/// The advertised UDP payload size of an OPT record (its CLASS), never below 512.
fn opt_udp_size(msg: &[u8], rdlen_at: usize) -> u16 {
    u16::from_be_bytes([msg[rdlen_at - 6], msg[rdlen_at - 5]]).max(PLAIN_UDP_PAYLOAD)
}

/// The DNSENC option of an OPT record: `Ok(None)` when it has none; an error when its options
/// do not fill it, or the DNSENC option comes twice or is shorter than a key identifier.
fn find_dnsenc_option<'a>(
    msg: &'a [u8],
    opt: OptRecord,
    cp: &CodePoints,
) -> Result<Option<(u32, &'a [u8])>, WireError> {
    let options_end = options(msg, opt).last().map_or(opt.rdata.0, |(_, range)| range.end);
    if options_end != opt.rdata.1 {
        return Err(WireError::BadOptions);
    }
    let mut found = None;
    for (code, range) in options(msg, opt) {
        if code == cp.option_code {
            if found.is_some() {
                return Err(WireError::SeveralOptions);
            }
            found = Some(parse_option(&msg[range.start + 4..range.end]).ok_or(WireError::ShortOption)?);
        }
    }
    Ok(found)
}

// ---- The outer query (server side) ---------------------------------------------------------

/// What a query is to the DNSENC server (step 1 of §2.3, as dotgate applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer<'a> {
    /// Not under dnsenc.arpa.: not a DNSENC query at all.
    NotDnsenc,
    /// Under dnsenc.arpa. without the option: REFUSED.
    NoOption,
    /// The option shorter than 4 octets, or present twice: FORMERR. (Also: records that do not
    /// parse, two OPT records, options that do not fill the OPT record.)
    BadOption,
    /// A DNSENC query: what to decrypt, and what the response envelope needs.
    Encrypted {
        /// The key identifier the client encrypted to.
        key_id: u32,
        /// The encrypted inner query.
        payload: &'a [u8],
        /// The client's advertised UDP payload size (512 without OPT, never below 512).
        udp_size: u16,
        /// The outer question section bytes, to echo.
        question: &'a [u8],
        /// RD of the outer query.
        rd: bool,
    },
}

/// Reads a query dotgate already checked (QR=0, opcode QUERY, one uncompressed question ending
/// at `question_end`, as `dns::check_query` says) as a DNSENC query (§2.3).
///
/// A question name under `dnsenc.arpa.` (its last two labels, ASCII case-insensitively; the
/// zone's own name included) makes it one. Its first OPT record must hold exactly one DNSENC
/// option (`cp.option_code`) of at least a key identifier. Records that do not parse, a second
/// OPT record and options that do not fill the OPT record are FORMERR, as RFC 6891 has them;
/// answer and authority records and bytes after the last record are not looked at. Never
/// panics, whatever `msg` and `question_end` (a `question_end` that does not end the question
/// is `NotDnsenc`).
pub fn parse_outer<'a>(msg: &'a [u8], question_end: usize, cp: &CodePoints) -> Outer<'a> {
    if !question_is_under_dnsenc_arpa(msg, question_end) {
        return Outer::NotDnsenc;
    }
    let Some((records, _)) = walk_records(msg, question_end) else { return Outer::BadOption };
    let (an, ns, _) = record_counts(msg);
    match records[an + ns..].iter().filter(|r| r.rtype == TYPE_OPT).count() {
        0 => return Outer::NoOption,
        1 => {}
        _ => return Outer::BadOption,
    }
    let Ok(Some(opt)) = find_opt(msg, question_end) else { return Outer::BadOption };
    match find_dnsenc_option(msg, opt, cp) {
        Ok(Some((key_id, payload))) => Outer::Encrypted {
            key_id,
            payload,
            udp_size: opt_udp_size(msg, opt.rdlen_at),
            question: &msg[HEADER_LEN..question_end],
            rd: msg[2] & 0x01 != 0,
        },
        Ok(None) => Outer::NoOption,
        Err(_) => Outer::BadOption,
    }
}

/// Whether the single uncompressed question ending at `question_end` asks for a name under
/// dnsenc.arpa. (or that name itself).
fn question_is_under_dnsenc_arpa(msg: &[u8], question_end: usize) -> bool {
    if question_end < HEADER_LEN + 5 || question_end > msg.len() {
        return false;
    }
    let name_end = question_end - 4;
    // The last two labels seen.
    let mut last: [&[u8]; 2] = [&[], &[]];
    let mut pos = HEADER_LEN;
    loop {
        let Some(&len) = msg[..name_end].get(pos) else { return false };
        if len == 0 {
            break;
        }
        let Some(label) = msg[..name_end].get(pos + 1..pos + 1 + len as usize).filter(|_| len & 0xc0 == 0) else {
            return false;
        };
        last = [last[1], label];
        pos += 1 + len as usize;
    }
    pos + 1 == name_end && last[0].eq_ignore_ascii_case(DNSENC_ARPA[0]) && last[1].eq_ignore_ascii_case(DNSENC_ARPA[1])
}

// ---- The inner query (server side) ---------------------------------------------------------

/// A decrypted inner query that passed [`check_inner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerQuery {
    /// The client's NSK: the response scheme and key (whether the server's key offered that
    /// scheme, and whether the key's length fits it, are the caller's checks).
    pub nsk: Nsk,
    /// Where the question ends in the query written to `out`.
    pub question_end: usize,
    /// The UDP payload size of the inner query's own OPT record (never below 512), if it has one.
    pub udp_size: Option<u16>,
}

/// The rule of §2.2 and §3.1.1 a decrypted inner query broke. The server answers FORMERR for
/// every one of them (§2.3); the variant is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InnerError {
    #[error("shorter than a header, or a question or record that does not parse")]
    Malformed,
    #[error("a response (QR=1), not a query")]
    NotQuery,
    #[error("an opcode other than QUERY")]
    NotOpcodeQuery,
    #[error("not exactly one question")]
    QuestionCount,
    #[error("an ID other than the outer query's")]
    IdMismatch,
    #[error("bytes after the last record")]
    TrailingBytes,
    #[error("records in the answer or authority section")]
    AnswerOrAuthority,
    #[error("an additional record other than the NSK and an OPT record")]
    UnexpectedRecord,
    #[error("more than one OPT record")]
    SeveralOpt,
    #[error("no NSK record")]
    NoNsk,
    #[error("more than one NSK record")]
    SeveralNsk,
    #[error("an OPT record whose owner is not the root")]
    OptOwner,
    #[error("an NSK record whose owner is not the root")]
    NskOwner,
    #[error("an NSK record of a class other than IN")]
    NskClass,
    #[error("an NSK record with a TTL other than 0")]
    NskTtl,
    #[error("an NSK RDATA that does not parse: {0}")]
    NskRdata(WireError),
    #[error("an NSK record with a priority other than 0")]
    NskPriority,
    #[error("an NSK record with an applicable name")]
    NskName,
    #[error("an NSK record listing response schemes")]
    NskResponseSchemes,
    #[error("an NSK record with an asymmetric scheme")]
    NskScheme,
}

/// Checks a decrypted inner query (step 3 of §2.3) and writes to `out` (cleared first) the
/// query to resolve: the plaintext with its NSK record taken out and ARCOUNT one less, every
/// other byte as it was.
///
/// The rules, checked in this order (the error is the first one broken): at least a header
/// ([`InnerError::Malformed`]); QR=0; opcode QUERY; QDCOUNT 1; the ID equal to `outer_id`;
/// the question uncompressed and every record parsing (`Malformed`); nothing after the last
/// record; no answer or authority record; in the additional section, record by record, only
/// `cp.nsk_type` records and one OPT record; exactly one NSK; an OPT owner that is the root;
/// the NSK's owner the root (one zero octet, no pointer), class IN, TTL 0, its RDATA parsing,
/// priority 0, the empty (root) applicable name, no response schemes, a symmetric scheme.
/// Nothing then points into the removed record, so taking it out moves nothing that matters.
pub fn check_inner(
    plaintext: &[u8],
    outer_id: u16,
    cp: &CodePoints,
    out: &mut Vec<u8>,
) -> Result<InnerQuery, InnerError> {
    out.clear();
    let msg = plaintext;
    if msg.len() < HEADER_LEN {
        return Err(InnerError::Malformed);
    }
    if dns::is_response(msg) {
        return Err(InnerError::NotQuery);
    }
    if dns::opcode(msg) != OPCODE_QUERY {
        return Err(InnerError::NotOpcodeQuery);
    }
    if dns::qdcount(msg) != 1 {
        return Err(InnerError::QuestionCount);
    }
    if dns::id(msg) != outer_id {
        return Err(InnerError::IdMismatch);
    }
    let question_end = dns::question_end(msg).ok_or(InnerError::Malformed)?;
    let (records, end) = walk_records(msg, question_end).ok_or(InnerError::Malformed)?;
    if end != msg.len() {
        return Err(InnerError::TrailingBytes);
    }
    let (an, ns, _) = record_counts(msg);
    if an + ns > 0 {
        return Err(InnerError::AnswerOrAuthority);
    }
    let (mut nsk, mut opt, mut nsk_count) = (None, None, 0);
    for record in &records {
        if record.rtype == cp.nsk_type {
            nsk_count += 1;
            nsk = Some(record);
        } else if record.rtype == TYPE_OPT {
            if opt.replace(record).is_some() {
                return Err(InnerError::SeveralOpt);
            }
        } else {
            return Err(InnerError::UnexpectedRecord);
        }
    }
    let nsk_record = match (nsk, nsk_count) {
        (Some(record), 1) => record,
        (None, _) => return Err(InnerError::NoNsk),
        _ => return Err(InnerError::SeveralNsk),
    };
    if opt.is_some_and(|o| !o.owner_is_literal_root(msg)) {
        return Err(InnerError::OptOwner);
    }
    if !nsk_record.owner_is_literal_root(msg) {
        return Err(InnerError::NskOwner);
    }
    if nsk_record.class != CLASS_IN {
        return Err(InnerError::NskClass);
    }
    if nsk_record.ttl != 0 {
        return Err(InnerError::NskTtl);
    }
    let nsk = Nsk::parse_rdata(&msg[nsk_record.rdata.clone()]).map_err(InnerError::NskRdata)?;
    if nsk.priority != 0 {
        return Err(InnerError::NskPriority);
    }
    if nsk.ns_name != [0] {
        return Err(InnerError::NskName);
    }
    if !nsk.response_schemes.is_empty() {
        return Err(InnerError::NskResponseSchemes);
    }
    if !scheme::is_symmetric(nsk.scheme) {
        return Err(InnerError::NskScheme);
    }
    out.extend_from_slice(&msg[..nsk_record.start]);
    out.extend_from_slice(&msg[nsk_record.rdata.end..]);
    let arcount = u16::from_be_bytes([msg[10], msg[11]]) - 1;
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    let udp_size = opt.map(|o| opt_udp_size(msg, o.rdata.start - 2));
    Ok(InnerQuery { nsk, question_end, udp_size })
}

// ---- Envelopes -----------------------------------------------------------------------------

/// The first label of a query envelope's name (§2.2.1): `nonce` in RFC 4648 base32hex, lower
/// case, without padding (26 characters).
pub fn nonce_label(nonce: &[u8; 16]) -> String {
    base32hex_lower(nonce)
}

/// RFC 4648 §7 base32hex of `bytes`, lower case, without padding.
fn base32hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32HEX[((buffer >> bits) & 31) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE32HEX[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Appends an OPT record (root owner, `udp_size`, EXTENDED-RCODE `ext_rcode`, version 0, no
/// flags) holding the DNSENC option when there is one.
fn push_opt(out: &mut Vec<u8>, udp_size: u16, ext_rcode: u8, option: Option<(u16, u32, &[u8])>) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, 0, 0]);
    match option {
        Some((code, key_id, payload)) => {
            out.extend_from_slice(&((OPTION_FIXED_LEN + payload.len()) as u16).to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&((4 + payload.len()) as u16).to_be_bytes());
            write_option(key_id, payload, out);
        }
        None => out.extend_from_slice(&[0, 0]),
    }
}

/// Writes to `out` (cleared first) the query envelope of §2.2.1: ID `id`, RD as `rd`, QDCOUNT
/// 1, ARCOUNT 1; the question `<nonce_label(nonce)>.dnsenc.arpa. TXT IN`; an OPT record
/// advertising `udp_size` holding the DNSENC option (`key_id`, `payload`). A payload longer
/// than 65,535 - [`QUERY_ENVELOPE_OVERHEAD`] octets is cut to that (and will not decrypt).
#[allow(clippy::too_many_arguments)] // The envelope's fields, each one a wire field.
pub fn write_query_envelope(
    id: u16,
    rd: bool,
    nonce: &[u8; 16],
    udp_size: u16,
    key_id: u32,
    payload: &[u8],
    cp: &CodePoints,
    out: &mut Vec<u8>,
) {
    out.clear();
    let payload = &payload[..payload.len().min(MAX_MESSAGE - QUERY_ENVELOPE_OVERHEAD)];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[u8::from(rd), 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    let label = nonce_label(nonce);
    out.push(label.len() as u8);
    out.extend_from_slice(label.as_bytes());
    for part in DNSENC_ARPA {
        out.push(part.len() as u8);
        out.extend_from_slice(part);
    }
    out.push(0);
    out.extend_from_slice(&TYPE_TXT.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    push_opt(out, udp_size, 0, Some((cp.option_code, key_id, payload)));
}

/// Bytes the response envelope adds around the option's payload: header, the echoed question
/// of `question_len` octets, OPT record, the option's code, length and key identifier. The
/// server keeps the inner answer within the client's UDP size minus this.
pub fn envelope_overhead(question_len: usize) -> usize {
    HEADER_LEN + question_len + OPT_FIXED_LEN + OPTION_FIXED_LEN
}

/// Writes to `out` (cleared first) the response envelope of §2.4: ID `id`, QR=1, opcode
/// QUERY, RD as `rd`, RA=1, TC as `tc`; `question` (the outer question section, as
/// [`Outer::Encrypted`] gives it) echoed, QDCOUNT 1 (0 when `question` is empty); no answer or
/// authority record; always an OPT record advertising `udp_size`, holding the DNSENC option
/// when `option` is given.
///
/// `rcode` is the full, extended RCODE (12 bits; higher bits are dropped), split as RFC 6891
/// §6.1.3 has it: its low four bits in the header, the rest in the OPT record's EXTENDED-RCODE.
/// BADCRYPT (3841 by default) is header 1 and extended 0xF0, so a client that knows no DNSENC
/// reads FORMERR. A payload longer than the message can hold (65,535 octets in all, see
/// [`envelope_overhead`]) is cut to fit (and will not decrypt).
#[allow(clippy::too_many_arguments)] // The envelope's fields, each one a wire field.
pub fn write_response_envelope(
    id: u16,
    rd: bool,
    question: &[u8],
    rcode: u16,
    tc: bool,
    option: Option<(u32, &[u8])>,
    udp_size: u16,
    cp: &CodePoints,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    let tc_bit = if tc { 0x02 } else { 0 };
    out.push(0x80 | tc_bit | u8::from(rd));
    out.push(0x80 | (rcode & 0x0f) as u8);
    let qdcount = u8::from(!question.is_empty());
    out.extend_from_slice(&[0, qdcount, 0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(question);
    let room = MAX_MESSAGE.saturating_sub(envelope_overhead(question.len()));
    let option = option.map(|(key_id, payload)| (cp.option_code, key_id, &payload[..payload.len().min(room)]));
    push_opt(out, udp_size, (rcode >> 4) as u8, option);
}

/// A response envelope as the client reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseEnvelope<'a> {
    /// The message ID (the client compares it with its query's).
    pub id: u16,
    /// The question section bytes (the client compares them with its query's).
    pub question: &'a [u8],
    /// The full RCODE: the header's, with the OPT record's EXTENDED-RCODE above it when there is one.
    pub rcode: u16,
    /// TC: the server's answer did not fit; ask again over TCP.
    pub tc: bool,
    /// The DNSENC option: key identifier and encrypted response, when there is one.
    pub option: Option<(u32, &'a [u8])>,
}

/// Reads a response envelope (client side of §2.4): QR=1, opcode QUERY, one uncompressed
/// question, every record parsing and nothing after the last, at most one OPT record whose
/// options fill it, at most one DNSENC option of at least a key identifier. Answer and
/// authority records are walked and otherwise ignored: only the option is trusted, once it
/// decrypts. A response without an OPT record (a server that knows no EDNS) has its header's
/// RCODE and no option.
pub fn parse_response_envelope<'a>(msg: &'a [u8], cp: &CodePoints) -> Result<ResponseEnvelope<'a>, WireError> {
    if msg.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if !dns::is_response(msg) {
        return Err(WireError::NotResponse);
    }
    if dns::opcode(msg) != OPCODE_QUERY {
        return Err(WireError::NotOpcodeQuery);
    }
    if dns::qdcount(msg) != 1 {
        return Err(WireError::QuestionCount);
    }
    let question_end = uncompressed_name_end(msg, HEADER_LEN)? + 4;
    if question_end > msg.len() {
        return Err(WireError::Truncated);
    }
    let (records, end) = walk_records(msg, question_end).ok_or(WireError::BadRecord)?;
    if end != msg.len() {
        return Err(WireError::TrailingBytes);
    }
    let (an, ns, _) = record_counts(msg);
    let mut opts = records[an + ns..].iter().filter(|r| r.rtype == TYPE_OPT);
    let opt = opts.next();
    if opts.next().is_some() {
        return Err(WireError::SeveralOpt);
    }
    let mut rcode = u16::from(dns::rcode(msg));
    let mut option = None;
    if let Some(record) = opt {
        let opt = OptRecord {
            start: record.start,
            rdlen_at: record.rdata.start - 2,
            rdata: (record.rdata.start, record.rdata.end),
        };
        rcode |= u16::from(msg[opt.rdlen_at - 4]) << 4;
        option = find_dnsenc_option(msg, opt, cp)?;
    }
    Ok(ResponseEnvelope {
        id: dns::id(msg),
        question: &msg[HEADER_LEN..question_end],
        rcode,
        tc: dns::is_truncated(msg),
        option,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CP: CodePoints = CodePoints { nsk_type: 65301, option_code: 65050, badcrypt: 3841 };

    /// A wire name from dotted text (no escapes).
    fn wire_name(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in text.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    fn rsa_like_key() -> Nsk {
        Nsk {
            key_id: 896417428,
            priority: 10,
            reserved: 0,
            ns_name: wire_name("ns*.example.com"),
            scheme: scheme::RSA2048_OAEP,
            key: (0..270u32).map(|i| (i * 7) as u8).collect(),
            response_schemes: vec![scheme::AES256_GCM, scheme::CHACHA20_POLY1305],
        }
    }

    fn rdata_of(nsk: &Nsk) -> Vec<u8> {
        let mut out = Vec::new();
        nsk.write_rdata(&mut out);
        out
    }

    // ---- Code points and schemes -----------------------------------------------------------

    #[test]
    fn code_points_default_to_private_use_values() {
        assert_eq!(CodePoints::default(), CP);
    }

    #[test]
    fn schemes_have_names_both_ways() {
        for (code, name) in [
            (scheme::RSA2048_OAEP, "rsa2048"),
            (scheme::RSA4096_OAEP, "rsa4096"),
            (scheme::X25519_HPKE, "x25519"),
            (scheme::AES256_GCM, "aes-256"),
            (scheme::CHACHA20_POLY1305, "chacha20-poly1305"),
        ] {
            assert_eq!(scheme::name(code), Some(name));
            assert_eq!(scheme::from_name(name), Some(code));
            assert_eq!(scheme::from_name(&name.to_ascii_uppercase()), Some(code));
        }
        assert_eq!(scheme::from_name("aes-256-gcm"), Some(scheme::AES256_GCM));
        assert_eq!(scheme::name(0x1234), None);
        assert_eq!(scheme::from_name("aes-512"), None);
        assert!(scheme::is_symmetric(scheme::AES256_GCM) && scheme::is_symmetric(scheme::CHACHA20_POLY1305));
        assert!(!scheme::is_symmetric(scheme::RSA2048_OAEP) && !scheme::is_symmetric(scheme::X25519_HPKE));
    }

    // ---- NSK RDATA -------------------------------------------------------------------------

    #[test]
    fn rdata_round_trips_and_keeps_the_reserved_octet() {
        let mut nsk = rsa_like_key();
        assert_eq!(Nsk::parse_rdata(&rdata_of(&nsk)), Ok(nsk.clone()));
        assert_eq!(rdata_of(&nsk).len(), nsk.rdata_len());
        nsk.reserved = 0xa5;
        let rdata = rdata_of(&nsk);
        assert_eq!(rdata[5], 0xa5);
        assert_eq!(Nsk::parse_rdata(&rdata), Ok(nsk));
    }

    #[test]
    fn rdata_is_read_strictly() {
        let rdata = rdata_of(&rsa_like_key());
        let mut trailing = rdata.clone();
        trailing.push(0);
        assert_eq!(Nsk::parse_rdata(&trailing), Err(WireError::TrailingBytes));
        for cut in 0..rdata.len() {
            assert!(Nsk::parse_rdata(&rdata[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Nsk::parse_rdata(&rdata[..rdata.len() - 1]), Err(WireError::Truncated));
        // A compression pointer where the name starts (RFC 3597 §4: none in unknown types).
        let mut pointer = rdata[..6].to_vec();
        pointer.extend_from_slice(&[0xc0, 0x00]);
        pointer.extend_from_slice(&rdata[6 + wire_name("ns*.example.com").len()..]);
        assert_eq!(Nsk::parse_rdata(&pointer), Err(WireError::CompressedName));
        let mut reserved_label = rdata.clone();
        reserved_label[6] = 0x43;
        assert_eq!(Nsk::parse_rdata(&reserved_label), Err(WireError::BadLabel));
        // Names of 256 octets (labels of 63, 63, 63, 62 and the root) and of 255.
        let name_of = |last: usize| {
            let mut name = Vec::new();
            for len in [63, 63, 63, last] {
                name.push(len as u8);
                name.extend(std::iter::repeat_n(b'a', len));
            }
            name.push(0);
            name
        };
        let long = Nsk { ns_name: name_of(62), ..rsa_like_key() };
        assert_eq!(long.ns_name.len(), 256);
        assert_eq!(Nsk::parse_rdata(&rdata_of(&long)), Err(WireError::NameTooLong));
        assert_eq!(long.validate(), Err(WireError::NameTooLong));
        let max = Nsk { ns_name: name_of(61), ..rsa_like_key() };
        assert_eq!(max.ns_name.len(), 255);
        assert_eq!(Nsk::parse_rdata(&rdata_of(&max)), Ok(max));
        // The key length and the scheme count must be honoured.
        let mut long_key = rdata.clone();
        let key_len_at = 6 + wire_name("ns*.example.com").len() + 2;
        long_key[key_len_at + 1] += 1;
        assert_eq!(Nsk::parse_rdata(&long_key), Err(WireError::Truncated));
        let mut more_schemes = rdata.clone();
        let count_at = more_schemes.len() - 5;
        more_schemes[count_at] = 3;
        assert_eq!(Nsk::parse_rdata(&more_schemes), Err(WireError::Truncated));
        assert_eq!(Nsk::parse_rdata(&vec![0; 70_000]), Err(WireError::TooLong));
    }

    #[test]
    fn validate_refuses_what_cannot_be_written_back() {
        assert_eq!(rsa_like_key().validate(), Ok(()));
        for (name, error) in [
            (vec![], WireError::Truncated),
            (vec![1, b'a'], WireError::Truncated),
            (vec![0, 0], WireError::TrailingBytes),
            (vec![0xc0, 0x0c], WireError::CompressedName),
        ] {
            let nsk = Nsk { ns_name: name, ..rsa_like_key() };
            assert_eq!(nsk.validate(), Err(error));
            // Written anyway, without a panic, and given in the generic form.
            assert!(Nsk::parse_rdata(&rdata_of(&nsk)).is_err());
            assert!(nsk.to_presentation().starts_with("\\# "));
        }
        let big = Nsk { key: vec![1; 65_536], ..rsa_like_key() };
        assert_eq!(big.validate(), Err(WireError::TooLong));
        let mut out = Vec::new();
        big.write_rdata(&mut out);
        let key_len_at = 6 + big.ns_name.len() + 2;
        assert_eq!(u16::from_be_bytes([out[key_len_at], out[key_len_at + 1]]), u16::MAX, "cut, not wrapped");
    }

    #[test]
    fn response_key_is_what_a_query_carries() {
        let nsk = Nsk::response_key(scheme::AES256_GCM, vec![0x5a; 32]);
        assert_eq!((nsk.priority, nsk.reserved, &nsk.ns_name[..]), (0, 0, &[0][..]));
        assert!(nsk.response_schemes.is_empty());
        let shown = format!("{nsk:?}");
        assert!(shown.contains("<32 secret octets>") && !shown.contains("90"), "a symmetric key is not shown: {shown}");
        assert!(format!("{:?}", rsa_like_key()).contains("key: [0, 7, 14"), "a public key is shown");
        let mut record = vec![0xee];
        nsk.write_record(&CP, &mut record);
        assert_eq!(&record[..12], &[0xee, 0, 0xff, 0x15, 0, 1, 0, 0, 0, 0, 0, 45]);
        assert_eq!(Nsk::parse_rdata(&record[12..]), Ok(nsk));
    }

    // ---- Vectors (tests/vectors/dnsenc/nsk.txt) ------------------------------------------

    /// The vectors: each block's fields, continuation lines joined with line breaks.
    fn vectors() -> Vec<Vec<(String, String)>> {
        let text = include_str!("../../../tests/vectors/dnsenc/nsk.txt");
        let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
        let mut current: Vec<(String, String)> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if line.is_empty() {
                if !current.is_empty() {
                    blocks.push(std::mem::take(&mut current));
                }
            } else if line.starts_with(' ') {
                let last = current.last_mut().expect("a continuation after a field");
                last.1.push('\n');
                last.1.push_str(line);
            } else {
                let (field, value) = line.split_once(": ").expect("field: value");
                current.push((field.to_owned(), value.to_owned()));
            }
        }
        if !current.is_empty() {
            blocks.push(current);
        }
        blocks
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn vectors_read_and_write_in_every_form() {
        let blocks = vectors();
        assert!(blocks.len() >= 5);
        let mut sizes = Vec::new();
        for block in blocks {
            let field = |name: &str| block.iter().find(|(f, _)| f == name).map(|(_, v)| v.as_str());
            let name = field("name").unwrap();
            let rdata = hex(field("rdata").unwrap());
            let nsk = Nsk::parse_rdata(&rdata).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rdata_of(&nsk), rdata, "{name}: RDATA written back");
            assert_eq!(nsk.to_presentation(), field("presentation").unwrap(), "{name}: to_presentation");
            assert_eq!(nsk.to_generic(), field("generic").unwrap(), "{name}: to_generic");
            for form in ["presentation", "generic", "zone"] {
                if let Some(text) = field(form) {
                    assert_eq!(Nsk::parse_presentation(text), Ok(nsk.clone()), "{name}: {form}");
                }
            }
            sizes.push((name.to_owned(), nsk.scheme, nsk.key.len()));
        }
        assert!(sizes.contains(&("rsa2048".to_owned(), scheme::RSA2048_OAEP, 270)));
        assert!(sizes.contains(&("x25519".to_owned(), scheme::X25519_HPKE, 32)));
    }

    // ---- Presentation ----------------------------------------------------------------------

    #[test]
    fn the_drafts_example_is_read() {
        let nsk = Nsk::parse_presentation(DRAFT_NSK_EXAMPLE).unwrap();
        assert_eq!(nsk.key_id, 896417428);
        assert_eq!(nsk.priority, 10);
        assert_eq!(nsk.ns_name, wire_name("ns*.example.com"));
        assert_eq!(nsk.scheme, scheme::RSA2048_OAEP);
        assert!(nsk.key.starts_with(b"nr_free_pages 215668\n") && nsk.key.ends_with(b"nr_d 0\n"));
        assert_eq!(nsk.response_schemes, [scheme::AES256_GCM, scheme::AES256_GCM]);
        assert!(nsk.applies_to("ns1.foobar.example.com."));
        assert_eq!(Nsk::parse_presentation(&nsk.to_presentation()), Ok(nsk.clone()));
        assert_eq!(Nsk::parse_presentation(&nsk.to_generic()), Ok(nsk));
    }

    #[test]
    fn presentation_accepts_numbers_names_chunks_and_record_starts() {
        let want = Nsk {
            key_id: 5,
            priority: 1,
            reserved: 0,
            ns_name: vec![0],
            scheme: scheme::X25519_HPKE,
            key: b"0123456789".to_vec(),
            response_schemes: vec![scheme::CHACHA20_POLY1305, 7, scheme::AES256_GCM],
        };
        for text in [
            r#"5 1 . x25519 "MDEyMzQ1Njc4OQ==" chacha20-poly1305 7 aes-256"#,
            r#"5 1 . 241 "MDEyMzQ1Njc4OQ==" 33009 7 32769"#,
            r#"5 1 . X25519 "MDEy" "MzQ1" Njc4OQ== CHACHA20-POLY1305 7 aes-256-gcm"#,
            "5 1 . x25519 MDEyMzQ1Njc4OQ== chacha20-poly1305 7 aes-256",
            // Chunks that are not whole quanta yet: "1234"-looking text is still key.
            "5 1 . x25519 MDE yMzQ 1Njc4OQ== chacha20-poly1305 7 aes-256",
            "5 1 . x25519 \"MDEy\nMzQ1 Njc4OQ==\" ( chacha20-poly1305 ; a comment\n 7 ) aes-256",
            "(5 ; id\n 1 ; priority\n . x25519 \"MDEyMzQ1Njc4OQ==\" chacha20-poly1305 7 aes-256)\n",
            "\n  5 1 . x25519 \"MDEyMzQ1Njc4OQ==\" chacha20-poly1305 7 aes-256 ; trailing comment\n\n",
            "resolver.example. NSK 5 1 . x25519 \"MDEyMzQ1Njc4OQ==\" chacha20-poly1305 7 aes-256",
            "5.2.0.192.in-addr.arpa. 86400 IN TYPE65301 5 1 . x25519 \"MDEyMzQ1Njc4OQ==\" chacha20-poly1305 7 aes-256",
            "@ IN 60 nsk 5 1 . x25519 \"MDEyMzQ1Njc4OQ==\" chacha20-poly1305 7 aes-256",
            "5 1 . x25519 \"MDEyMzQ1\\078jc4OQ==\" chacha20-poly1305 7 aes-256",
        ] {
            assert_eq!(Nsk::parse_presentation(text), Ok(want.clone()), "{text:?}");
        }
        // The generic form: hex in pieces, either case.
        let generic = want.to_generic();
        let hex = generic.rsplit(' ').next().unwrap();
        let split = format!("\\# {} ( {} ; the start\n {} )", hex.len() / 2, &hex[..10], hex[10..].to_uppercase());
        assert_eq!(Nsk::parse_presentation(&split), Ok(want.clone()));
        assert_eq!(Nsk::parse_presentation(&format!("owner.example. 300 IN NSK {generic}")), Ok(want));
        // An empty key, no response schemes.
        let empty = Nsk::parse_presentation(r#"0 0 . aes-256 """#).unwrap();
        assert_eq!(empty, Nsk::response_key(scheme::AES256_GCM, Vec::new()));
        assert_eq!(empty.to_presentation(), r#"0 0 . aes-256 """#);
        // Names: relative taken as absolute, case kept, escapes.
        let named = Nsk::parse_presentation(r#"1 2 Ns\0461.Example aes-256 "" "#).unwrap();
        assert_eq!(named.ns_name, b"\x04Ns.1\x07Example\x00");
        assert_eq!(named.to_presentation(), r#"1 2 Ns\.1.Example. aes-256 """#);
    }

    #[test]
    fn presentation_errors_say_what_is_wrong_on_one_line() {
        for (text, says) in [
            ("", "empty"),
            ("; only a comment", "empty"),
            ("1 2 . aes-256", "key"),
            ("1 2 .", "scheme"),
            ("1 2 . nonsense \"\"", "scheme"),
            ("1 2", "name"),
            ("4294967296 2 . aes-256 \"\"", "key identifier"),
            ("1 256 . aes-256 \"\"", "priority"),
            ("1 -2 . aes-256 \"\"", "priority"),
            ("1 2 a..b aes-256 \"\"", "empty label"),
            ("1 2 .a aes-256 \"\"", "empty label"),
            ("1 2 \"quoted.name\" aes-256 \"\"", "quoted"),
            ("1 2 \\256 aes-256 \"\"", "255"),
            ("1 2 \\25 aes-256 \"\"", "three digits"),
            ("1 2 . aes-256 \"not base64!\"", "base64"),
            ("1 2 . aes-256 \"AAAA\" aes-256 \"AAAA\"", "response scheme"),
            ("1 2 . aes-256 \"AAAA\" aes-256 bogus", "response scheme"),
            ("1 2 . aes-256 \"AAAA\"\n1 2 . aes-256 \"AAAA\"", "more than one record"),
            ("1 2 . aes-256 \"AAAA\" )", "'('"),
            ("( 1 2 . aes-256 \"AAAA\"", "')'"),
            ("1 2 . aes-256 \"AAAA", "quote"),
            ("1 2 . aes-256 AAAA\\", "'\\'"),
            ("1 2 . 65536 \"\"", "scheme"),
            ("owner.example. IN A 192.0.2.1", "owner"),
            ("owner.example. IN 300 IN 300 NSK 1 2 . aes-256 \"\"", "NSK"),
            ("\\# 3 0001", "3"),
            ("\\# 2 001", "odd"),
            ("\\# 2 00zz", "hexadecimal"),
            ("\\# x 00", "RDATA length"),
            ("\\# 2 0001", "does not read as NSK"),
        ] {
            let error = Nsk::parse_presentation(text).expect_err(text);
            assert!(error.contains(says), "{text:?}: {error:?} does not say {says:?}");
            assert!(!error.chars().any(char::is_control), "{text:?}: {error:?}");
        }
        let label = format!("1 2 {}.example aes-256 \"\"", "a".repeat(64));
        assert!(Nsk::parse_presentation(&label).unwrap_err().contains("63"));
        let name = format!("1 2 {} aes-256 \"\"", vec!["a".repeat(63); 4].join("."));
        assert!(Nsk::parse_presentation(&name).unwrap_err().contains("255"));
        let control = Nsk::parse_presentation("1 2 . aes-256 \"\" \u{1b}[31m").unwrap_err();
        assert!(!control.chars().any(char::is_control), "{control:?}");
    }

    // ---- The applicable-name matcher ---------------------------------------------------------

    #[test]
    fn star_matches_as_the_draft_says() {
        for (pattern, name, matches) in [
            ("ns*.example.com", "ns.example.com", true),
            ("ns*.example.com", "ns1.example.com", true),
            ("ns*.example.com", "ns1.foobar.example.com", true),
            ("ns*.example.com", "NS1.Example.COM", true),
            ("NS*.EXAMPLE.com", "ns1.example.com", true),
            ("ns*.example.com", "example.com", false),
            ("ns*.example.com", "ns1.example.org", false),
            ("ns*.example.com", "ns1.example.com.evil", false),
            ("ns*.example.com", "xns1.example.com", false),
            ("ns*.foo*bar.example.com", "ns2.foobar.example.com", true),
            ("ns*.foo*bar.example.com", "ns2.foo.x.bar.example.com", true),
            ("ns*.foo*bar.example.com", "ns2.fobar.example.com", false),
            ("*", "anything.at.all", true),
            ("*", "", true),
            ("**", "x", true),
            ("", "", true),
            ("", "x", false),
            ("a", "", false),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
        ] {
            assert_eq!(star_match(pattern, name), matches, "{pattern:?} against {name:?}");
        }
    }

    #[test]
    fn star_stays_fast_on_pathological_patterns() {
        let name = "a".repeat(255);
        let pattern = format!("{}b", "*a".repeat(120));
        let started = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!star_match(&pattern, &name));
            assert!(star_match(&"*a".repeat(120), &name));
            assert!(!star_match(&format!("{}*b", "a*".repeat(120)), &name));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn applies_to_reads_the_name_as_a_pattern() {
        let every = Nsk::response_key(scheme::AES256_GCM, Vec::new());
        assert!(every.applies_to("ns1.example.com") && every.applies_to("") && every.applies_to("."));
        let empty_name = Nsk { ns_name: Vec::new(), ..every.clone() };
        assert!(empty_name.applies_to("x"));
        let key = rsa_like_key();
        assert!(key.applies_to("ns1.foobar.example.com"));
        assert!(key.applies_to("NS.EXAMPLE.COM."));
        assert!(!key.applies_to("www.example.com"));
        assert!(!key.applies_to("ns1.example.com.."));
        let star = Nsk { ns_name: wire_name("*"), ..every };
        assert!(star.applies_to("a.b.c.") && star.applies_to("."));
        let broken = Nsk { ns_name: vec![5, b'n', b's'], ..rsa_like_key() };
        assert!(!broken.applies_to("ns"), "a name that runs off its bytes matches nothing past them");
    }

    /// Whether `pattern` matches `name`: the textbook table, apart from the code under test.
    fn star_reference(pattern: &[u8], name: &[u8]) -> bool {
        let mut table = vec![vec![false; name.len() + 1]; pattern.len() + 1];
        table[0][0] = true;
        for i in 1..=pattern.len() {
            for j in 0..=name.len() {
                table[i][j] = if pattern[i - 1] == b'*' {
                    table[i - 1][j] || (j > 0 && table[i][j - 1])
                } else {
                    j > 0 && table[i - 1][j - 1] && pattern[i - 1].eq_ignore_ascii_case(&name[j - 1])
                };
            }
        }
        table[pattern.len()][name.len()]
    }

    // ---- The option ------------------------------------------------------------------------

    #[test]
    fn option_data_is_a_key_id_then_the_payload() {
        let mut out = vec![0xee];
        write_option(0x01020304, b"payload", &mut out);
        assert_eq!(&out[..], b"\xee\x01\x02\x03\x04payload");
        assert_eq!(parse_option(&out[1..]), Some((0x01020304, &b"payload"[..])));
        assert_eq!(parse_option(&[1, 2, 3, 4]), Some((0x01020304, &[][..])));
        assert_eq!(parse_option(&[1, 2, 3]), None);
        assert_eq!(parse_option(&[]), None);
    }

    // ---- The outer query ---------------------------------------------------------------------

    /// A query for `name` TXT whose additional section is `additional` (records as bytes).
    fn query(id: u16, name: &str, additional: &[Vec<u8>]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, additional.len() as u8]);
        m.extend(wire_name(name));
        m.extend_from_slice(&[0, 16, 0, 1]);
        for r in additional {
            m.extend_from_slice(r);
        }
        m
    }

    /// An OPT record with `size` holding `options` (code, data).
    fn opt(size: u16, options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut rdata = Vec::new();
        for (code, data) in options {
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(data);
        }
        let mut r = vec![0, 0, 41];
        r.extend_from_slice(&size.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend(rdata);
        r
    }

    fn outer(msg: &[u8]) -> Outer<'_> {
        let question_end = dns::question_end(msg).unwrap();
        assert_eq!(dns::check_query(msg), dns::QueryVerdict::Relay { question_end });
        parse_outer(msg, question_end, &CP)
    }

    const DNSENC: &[u8] = b"\x00\x00\x00\x2asealed";

    #[test]
    fn names_under_dnsenc_arpa_are_dnsenc_queries() {
        let with_option = [opt(1232, &[(CP.option_code, DNSENC)])];
        for name in ["x.dnsenc.arpa", "dnsenc.arpa", "a.b.DNSENC.ARPA", "0123456789abcdefghijklmnop.DnsEnc.Arpa."] {
            let msg = query(7, name, &with_option);
            assert!(matches!(outer(&msg), Outer::Encrypted { key_id: 42, .. }), "{name}");
        }
        for name in ["xdnsenc.arpa", "dnsenc.arpa.com", "arpa", "dnsenc", ".", "dnsencarpa", "x.dnsenc.arpa.x"] {
            let msg = query(7, name, &with_option);
            assert_eq!(outer(&msg), Outer::NotDnsenc, "{name}");
        }
        // A label holding a dot is not two labels.
        let mut dotted = query(7, "x", &with_option);
        let at = HEADER_LEN;
        dotted.splice(at..at + 3, b"\x0bdnsenc.arpa\x00".iter().copied());
        assert_eq!(outer(&dotted), Outer::NotDnsenc);
    }

    #[test]
    fn outer_queries_without_a_good_option_are_refused_or_formerr() {
        let name = "abc.dnsenc.arpa";
        assert_eq!(outer(&query(1, name, &[])), Outer::NoOption);
        assert_eq!(outer(&query(1, name, &[opt(1232, &[])])), Outer::NoOption);
        assert_eq!(outer(&query(1, name, &[opt(1232, &[(10, &[1; 8])])])), Outer::NoOption);
        let other_code = CodePoints { option_code: 65051, ..CP };
        let msg = query(1, name, &[opt(1232, &[(CP.option_code, DNSENC)])]);
        let question_end = dns::question_end(&msg).unwrap();
        assert_eq!(parse_outer(&msg, question_end, &other_code), Outer::NoOption);
        for bad in [
            vec![opt(1232, &[(CP.option_code, &[0, 0, 1])])],
            vec![opt(1232, &[(CP.option_code, DNSENC), (CP.option_code, DNSENC)])],
            vec![opt(1232, &[(CP.option_code, DNSENC)]), opt(1232, &[])],
        ] {
            assert_eq!(outer(&query(1, name, &bad)), Outer::BadOption, "{bad:?}");
        }
        // Options that overrun the OPT record; a record cut short.
        let mut overrun = query(1, name, &[opt(1232, &[(10, &[1; 4]), (CP.option_code, DNSENC)])]);
        let last = overrun.len() - DNSENC.len() - 4 - 8 - 1;
        overrun[last] = 9;
        assert_eq!(outer(&overrun), Outer::BadOption);
        let full = query(1, name, &[opt(1232, &[(CP.option_code, DNSENC)])]);
        assert_eq!(outer(&full[..full.len() - 1]), Outer::BadOption);
        // An OPT record in the answer section is not EDNS.
        let mut in_answer = query(1, name, &[opt(1232, &[(CP.option_code, DNSENC)])]);
        in_answer[7] = 1;
        in_answer[11] = 0;
        assert_eq!(outer(&in_answer), Outer::NoOption);
    }

    #[test]
    fn an_encrypted_query_gives_what_the_server_needs() {
        // An unrelated additional record before the OPT record, and bytes after everything.
        let glue = vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1];
        let mut msg = query(0xbeef, "n.dnsenc.arpa", &[glue, opt(4096, &[(3, b"nsid"), (CP.option_code, DNSENC)])]);
        msg.extend_from_slice(b"xx");
        let question_end = dns::question_end(&msg).unwrap();
        match outer(&msg) {
            Outer::Encrypted { key_id, payload, udp_size, question, rd } => {
                assert_eq!((key_id, payload, udp_size, rd), (42, &b"sealed"[..], 4096, true));
                assert_eq!(question, &msg[HEADER_LEN..question_end]);
            }
            other => panic!("{other:?}"),
        }
        let mut small = query(1, "dnsenc.arpa", &[opt(100, &[(CP.option_code, &[0, 0, 0, 1])])]);
        small[2] = 0;
        assert_eq!(
            outer(&small),
            Outer::Encrypted {
                key_id: 1,
                payload: &[],
                udp_size: 512,
                question: &small[HEADER_LEN..HEADER_LEN + 17],
                rd: false
            }
        );
    }

    #[test]
    fn parse_outer_takes_any_question_end() {
        let msg = query(1, "x.dnsenc.arpa", &[opt(1232, &[(CP.option_code, DNSENC)])]);
        let right = dns::question_end(&msg).unwrap();
        for question_end in (0..msg.len() + 3).chain([usize::MAX]) {
            let verdict = parse_outer(&msg, question_end, &CP);
            if question_end != right {
                assert_eq!(verdict, Outer::NotDnsenc, "{question_end}");
            }
        }
        for cut in 0..msg.len() {
            let _ = parse_outer(&msg[..cut], right, &CP);
        }
    }

    // ---- The inner query ---------------------------------------------------------------------

    fn nsk_record(nsk: &Nsk) -> Vec<u8> {
        let mut out = Vec::new();
        nsk.write_record(&CP, &mut out);
        out
    }

    fn response_nsk() -> Nsk {
        Nsk::response_key(scheme::AES256_GCM, vec![0x11; 32])
    }

    /// A good inner query: "www.example. TXT" with an OPT record and the NSK after it.
    fn inner() -> Vec<u8> {
        query(0x1234, "www.example", &[opt(1400, &[(10, &[7; 8])]), nsk_record(&response_nsk())])
    }

    fn check(msg: &[u8]) -> Result<InnerQuery, InnerError> {
        let mut out = b"stale".to_vec();
        let result = check_inner(msg, 0x1234, &CP, &mut out);
        if result.is_err() {
            assert!(out.is_empty(), "out is cleared");
        }
        result
    }

    #[test]
    fn a_good_inner_query_loses_its_nsk_record() {
        for nsk_first in [false, true] {
            let with_opt = opt(1400, &[(10, &[7; 8])]);
            let records = if nsk_first {
                [nsk_record(&response_nsk()), with_opt]
            } else {
                [with_opt, nsk_record(&response_nsk())]
            };
            let msg = query(0x1234, "www.example", &records);
            let mut out = b"stale".to_vec();
            let got = check_inner(&msg, 0x1234, &CP, &mut out).unwrap();
            assert_eq!(got.nsk, response_nsk());
            assert_eq!(got.udp_size, Some(1400));
            assert_eq!(got.question_end, dns::question_end(&msg).unwrap());
            let want = query(0x1234, "www.example", &[opt(1400, &[(10, &[7; 8])])]);
            assert_eq!(out, want, "NSK first: {nsk_first}");
        }
        let alone = query(0x1234, "www.example", &[nsk_record(&response_nsk())]);
        let mut out = Vec::new();
        let got = check_inner(&alone, 0x1234, &CP, &mut out).unwrap();
        assert_eq!(got.udp_size, None);
        assert_eq!(out, query(0x1234, "www.example", &[]));
        let small = query(0x1234, "www.example", &[opt(0, &[]), nsk_record(&response_nsk())]);
        assert_eq!(check(&small).unwrap().udp_size, Some(512));
        let chacha =
            query(0x1234, "www.example", &[nsk_record(&Nsk::response_key(scheme::CHACHA20_POLY1305, vec![1; 32]))]);
        assert_eq!(check(&chacha).unwrap().nsk.scheme, scheme::CHACHA20_POLY1305);
    }

    /// `inner()` with the NSK record's bytes edited by `edit` (offsets from the record's start).
    fn with_nsk_edit(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut record = nsk_record(&response_nsk());
        edit(&mut record);
        query(0x1234, "www.example", &[opt(1400, &[(10, &[7; 8])]), record])
    }

    fn with_nsk(nsk: Nsk) -> Vec<u8> {
        query(0x1234, "www.example", &[opt(1400, &[(10, &[7; 8])]), nsk_record(&nsk)])
    }

    #[test]
    fn every_inner_rule_fails_alone() {
        use InnerError::*;
        assert!(check(&inner()).is_ok());
        let edited = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut msg = inner();
            edit(&mut msg);
            msg
        };
        let question_end = dns::question_end(&inner()).unwrap();
        let cases: Vec<(InnerError, Vec<u8>)> = vec![
            (Malformed, inner()[..11].to_vec()),
            (NotQuery, edited(&|m| m[2] |= 0x80)),
            (NotOpcodeQuery, edited(&|m| m[2] |= 2 << 3)),
            (QuestionCount, edited(&|m| m[5] = 2)),
            (QuestionCount, edited(&|m| m[5] = 0)),
            (IdMismatch, edited(&|m| m[1] ^= 1)),
            (Malformed, edited(&|m| m[HEADER_LEN] = 0xc0)),
            (Malformed, inner()[..inner().len() - 1].to_vec()),
            (Malformed, edited(&|m| m[11] = 3)),
            (TrailingBytes, edited(&|m| m.push(0))),
            (
                AnswerOrAuthority,
                edited(&|m| {
                    m[7] = 1;
                    m.splice(question_end..question_end, [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);
                }),
            ),
            (
                AnswerOrAuthority,
                edited(&|m| {
                    // The OPT record counted in the authority section instead.
                    m[9] = 1;
                    m[11] = 1;
                }),
            ),
            (
                UnexpectedRecord,
                edited(&|m| {
                    m[11] = 3;
                    m.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);
                }),
            ),
            (
                SeveralOpt,
                edited(&|m| {
                    m[11] = 3;
                    m.extend(opt(512, &[]));
                }),
            ),
            (NoNsk, query(0x1234, "www.example", &[opt(1400, &[])])),
            (NoNsk, query(0x1234, "www.example", &[])),
            (SeveralNsk, query(0x1234, "www.example", &[nsk_record(&response_nsk()), nsk_record(&response_nsk())])),
            (
                OptOwner,
                query(
                    0x1234,
                    "www.example",
                    &[[&b"\x01x"[..], &opt(1400, &[])[..]].concat(), nsk_record(&response_nsk())],
                ),
            ),
            (NskOwner, with_nsk_edit(|r| r.splice(0..1, *b"\x01x\x00").for_each(drop))),
            (NskOwner, with_nsk_edit(|r| r.splice(0..1, [0xc0, (question_end - 5) as u8]).for_each(drop))),
            (NskClass, with_nsk_edit(|r| r[4] = 3)),
            (NskTtl, with_nsk_edit(|r| r[8] = 1)),
            (
                NskRdata(WireError::TrailingBytes),
                with_nsk_edit(|r| {
                    r[10] += 1;
                    r.push(0);
                }),
            ),
            (
                NskRdata(WireError::Truncated),
                with_nsk_edit(|r| {
                    r.truncate(20);
                    r[9..11].copy_from_slice(&9u16.to_be_bytes());
                }),
            ),
            (NskPriority, with_nsk(Nsk { priority: 1, ..response_nsk() })),
            (NskName, with_nsk(Nsk { ns_name: wire_name("ns.example"), ..response_nsk() })),
            (NskResponseSchemes, with_nsk(Nsk { response_schemes: vec![scheme::AES256_GCM], ..response_nsk() })),
            (NskScheme, with_nsk(Nsk { scheme: scheme::X25519_HPKE, ..response_nsk() })),
        ];
        for (want, msg) in cases {
            assert_eq!(check(&msg).map(|_| ()), Err(want), "{want:?}");
        }
        // The reserved octet is accepted whatever it is.
        assert!(check(&with_nsk(Nsk { reserved: 0xff, ..response_nsk() })).is_ok());
    }

    // ---- Envelopes ---------------------------------------------------------------------------

    #[test]
    fn nonce_labels_are_base32hex() {
        // RFC 4648 §10's BASE32-HEX vectors, lower case, without padding.
        for (input, want) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex_lower(input.as_bytes()), want);
        }
        assert_eq!(nonce_label(&[0; 16]), "0".repeat(26));
        assert_eq!(nonce_label(&[0xff; 16]), format!("{}s", "v".repeat(25)));
        let label = nonce_label(b"0123456789abcdef");
        assert_eq!(label.len(), 26);
        // As Python's base64.b32hexencode writes it.
        assert_eq!(label, "60oj4cpk6kr3ee1pc5h66p35co");
    }

    #[test]
    fn a_query_envelope_is_a_txt_query_under_dnsenc_arpa() {
        use hickory_proto::op::{Message, MessageType, OpCode};
        use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
        use hickory_proto::rr::{DNSClass, RecordType};
        let mut out = b"stale".to_vec();
        write_query_envelope(0xabcd, true, &[0; 16], 1232, 42, b"sealed", &CP, &mut out);
        let mut want = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 26];
        want.extend_from_slice(&[b'0'; 26]);
        want.extend_from_slice(b"\x06dnsenc\x04arpa\x00\x00\x10\x00\x01");
        want.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 14, 0xfe, 0x1a, 0, 10, 0, 0, 0, 42]);
        want.extend_from_slice(b"sealed");
        assert_eq!(out, want);
        assert_eq!(out.len(), QUERY_ENVELOPE_OVERHEAD + 6);
        let parsed = Message::from_vec(&out).unwrap();
        assert_eq!((parsed.id(), parsed.message_type(), parsed.op_code()), (0xabcd, MessageType::Query, OpCode::Query));
        assert!(parsed.recursion_desired());
        let q = &parsed.queries()[0];
        assert_eq!(
            (q.name().to_ascii(), q.query_type(), q.query_class()),
            (format!("{}.dnsenc.arpa.", "0".repeat(26)), RecordType::TXT, DNSClass::IN)
        );
        let edns = parsed.extensions().as_ref().unwrap();
        assert_eq!(edns.max_payload(), 1232);
        let option = edns.option(EdnsCode::Unknown(CP.option_code)).unwrap();
        assert_eq!(option, &EdnsOption::Unknown(CP.option_code, b"\0\0\0\x2asealed".to_vec()));
        assert_eq!(
            outer(&out),
            Outer::Encrypted {
                key_id: 42,
                payload: b"sealed",
                udp_size: 1232,
                question: &out[HEADER_LEN..HEADER_LEN + 44],
                rd: true
            }
        );
        // A payload too long for a message is cut, never past 65,535 bytes.
        write_query_envelope(1, false, &[1; 16], 512, 1, &vec![0; 70_000], &CP, &mut out);
        assert_eq!(out.len(), MAX_MESSAGE);
        assert!(matches!(outer(&out), Outer::Encrypted { .. }));
    }

    #[test]
    fn badcrypt_is_split_between_header_and_opt() {
        use hickory_proto::op::{Message, ResponseCode};
        let question = b"\x01n\x06dnsenc\x04arpa\x00\x00\x10\x00\x01";
        let mut out = Vec::new();
        write_response_envelope(0x0102, true, question, CP.badcrypt, false, None, 1232, &CP, &mut out);
        assert_eq!(out[3] & 0x0f, 1, "an old client reads FORMERR");
        assert_eq!(&out[2..4], &[0x81, 0x81], "QR, RD; RA, RCODE 1");
        let opt_at = HEADER_LEN + question.len();
        assert_eq!(&out[opt_at..], &[0, 0, 41, 0x04, 0xd0, 0xf0, 0, 0, 0, 0, 0]);
        let parsed = Message::from_vec(&out).unwrap();
        assert_eq!(parsed.response_code(), ResponseCode::Unknown(3841));
        let read = parse_response_envelope(&out, &CP).unwrap();
        assert_eq!(read, ResponseEnvelope { id: 0x0102, question, rcode: 3841, tc: false, option: None });
        // An ordinary RCODE stays in the header; the OPT record's EXTENDED-RCODE is 0.
        write_response_envelope(7, false, question, 5, false, None, 1232, &CP, &mut out);
        assert_eq!((out[3], out[opt_at + 5]), (0x85, 0));
        // BADVERS-like 16: header 0, extended 1.
        write_response_envelope(7, false, question, 16, false, None, 1232, &CP, &mut out);
        assert_eq!((out[3] & 0x0f, out[opt_at + 5]), (0, 1));
        assert_eq!(parse_response_envelope(&out, &CP).unwrap().rcode, 16);
    }

    #[test]
    fn a_response_envelope_carries_the_option_and_round_trips() {
        use hickory_proto::op::{Message, MessageType};
        let question = b"\x01n\x06dnsenc\x04arpa\x00\x00\x10\x00\x01";
        let mut out = b"stale".to_vec();
        write_response_envelope(9, false, question, 0, true, Some((77, b"sealed answer")), 1400, &CP, &mut out);
        assert_eq!(out.len(), envelope_overhead(question.len()) + b"sealed answer".len());
        assert_eq!(&out[2..4], &[0x82, 0x80], "QR, TC; RA");
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
        let parsed = Message::from_vec(&out).unwrap();
        assert_eq!(parsed.message_type(), MessageType::Response);
        assert!(parsed.truncated() && parsed.recursion_available());
        assert!(parsed.answers().is_empty() && parsed.name_servers().is_empty());
        let read = parse_response_envelope(&out, &CP).unwrap();
        assert_eq!(
            read,
            ResponseEnvelope { id: 9, question, rcode: 0, tc: true, option: Some((77, &b"sealed answer"[..])) }
        );
        // Too long a payload is cut to what a message holds.
        write_response_envelope(9, false, question, 0, false, Some((1, &vec![0; 70_000])), 1400, &CP, &mut out);
        assert_eq!(out.len(), MAX_MESSAGE);
        let (_, payload) = parse_response_envelope(&out, &CP).unwrap().option.unwrap();
        assert_eq!(payload.len(), MAX_MESSAGE - envelope_overhead(question.len()));
        // A question-less envelope, for completeness (QDCOUNT 0), is not one a client accepts.
        write_response_envelope(9, false, &[], 2, false, None, 1400, &CP, &mut out);
        assert_eq!(&out[4..6], &[0, 0]);
        assert_eq!(parse_response_envelope(&out, &CP), Err(WireError::QuestionCount));
    }

    #[test]
    fn response_envelopes_are_read_strictly() {
        let question = b"\x01n\x06dnsenc\x04arpa\x00\x00\x10\x00\x01";
        let mut good = Vec::new();
        write_response_envelope(9, false, question, 0, false, Some((77, b"x")), 1400, &CP, &mut good);
        let opt_at = HEADER_LEN + question.len();
        let edited = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut msg = good.clone();
            edit(&mut msg);
            parse_response_envelope(&msg, &CP)
                .map(|e| (e.id, e.question.to_vec(), e.rcode, e.tc, e.option.map(|(k, p)| (k, p.to_vec()))))
        };
        assert_eq!(parse_response_envelope(&good[..11], &CP), Err(WireError::Truncated));
        assert_eq!(edited(&|m| m[2] &= 0x7f), Err(WireError::NotResponse));
        assert_eq!(edited(&|m| m[2] |= 5 << 3), Err(WireError::NotOpcodeQuery));
        assert_eq!(edited(&|m| m[5] = 2), Err(WireError::QuestionCount));
        assert_eq!(edited(&|m| m[HEADER_LEN] = 0xc0), Err(WireError::CompressedName));
        assert_eq!(edited(&|m| m.truncate(HEADER_LEN + 3)), Err(WireError::Truncated));
        assert_eq!(edited(&|m| m.truncate(opt_at - 1)), Err(WireError::Truncated));
        assert_eq!(edited(&|m| m.truncate(m.len() - 1)), Err(WireError::BadRecord));
        assert_eq!(edited(&|m| m.push(0)), Err(WireError::TrailingBytes));
        assert_eq!(
            edited(&|m| {
                m[11] = 2;
                m.extend(opt(512, &[]));
            }),
            Err(WireError::SeveralOpt)
        );
        assert_eq!(
            edited(&|m| {
                m[opt_at + 10] += 1;
                m.push(0);
            }),
            Err(WireError::BadOptions)
        );
        let twice = opt(512, &[(CP.option_code, &[0, 0, 0, 1]), (CP.option_code, &[0, 0, 0, 2])]);
        assert_eq!(
            edited(&|m| {
                m.truncate(opt_at);
                m.extend(twice.clone());
            }),
            Err(WireError::SeveralOptions)
        );
        let short = opt(512, &[(CP.option_code, &[0, 0, 0])]);
        assert_eq!(
            edited(&|m| {
                m.truncate(opt_at);
                m.extend(short.clone());
            }),
            Err(WireError::ShortOption)
        );
        // No OPT record (a server that knows no EDNS): the header's RCODE, no option.
        let plain = edited(&|m| {
            m.truncate(opt_at);
            m[11] = 0;
            m[3] = 0x85;
        });
        assert_eq!(plain, Ok((9, question.to_vec(), 5, false, None)));
        // Answer records are walked and ignored.
        let with_answer = edited(&|m| {
            m[7] = 1;
            m.splice(opt_at..opt_at, [0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, b'x']);
        });
        assert_eq!(with_answer.unwrap().4, Some((77, b"x".to_vec())));
    }

    // ---- Properties --------------------------------------------------------------------------

    fn arb_name() -> impl Strategy<Value = Vec<u8>> {
        let label = prop_oneof![
            4 => prop::collection::vec(prop::sample::select(b"abcXYZ019-*".to_vec()), 1..8),
            1 => prop::collection::vec(any::<u8>(), 1..12),
            1 => Just(vec![b'x'; 63]),
        ];
        prop::collection::vec(label, 0..4).prop_map(|labels| {
            let mut out = Vec::new();
            for l in labels {
                out.push(l.len() as u8);
                out.extend(l);
            }
            out.push(0);
            out
        })
    }

    fn arb_scheme() -> impl Strategy<Value = u16> {
        prop_oneof![
            prop::sample::select(vec![
                scheme::RSA2048_OAEP,
                scheme::RSA4096_OAEP,
                scheme::X25519_HPKE,
                scheme::AES256_GCM,
                scheme::CHACHA20_POLY1305,
            ]),
            any::<u16>(),
        ]
    }

    fn arb_nsk() -> impl Strategy<Value = Nsk> {
        (
            any::<u32>(),
            any::<u8>(),
            prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
            arb_name(),
            arb_scheme(),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(arb_scheme(), 0..5),
        )
            .prop_map(|(key_id, priority, reserved, ns_name, scheme, key, response_schemes)| Nsk {
                key_id,
                priority,
                reserved,
                ns_name,
                scheme,
                key,
                response_schemes,
            })
    }

    /// Zone-file-looking text: the characters the tokenizer cares about, often.
    fn zone_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("\"".to_owned()),
            Just(";".to_owned()),
            Just("\\".to_owned()),
            Just("\\#".to_owned()),
            Just("\n".to_owned()),
            Just(" ".to_owned()),
            Just(".".to_owned()),
            Just("NSK".to_owned()),
            Just("aes-256".to_owned()),
            "[0-9]{1,6}",
            "[A-Za-z0-9+/=]{1,8}",
            any::<String>(),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn arb_message() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            // A header that mostly looks like a query, then anything.
            (any::<u16>(), any::<[u8; 10]>(), prop::collection::vec(any::<u8>(), 0..120)).prop_map(
                |(id, mut rest, tail)| {
                    rest[0] &= 0x07;
                    rest[2] = 0;
                    rest[3] = 1;
                    let mut m = id.to_be_bytes().to_vec();
                    m.extend_from_slice(&rest);
                    m.extend(tail);
                    m
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn rdata_round_trips(nsk in arb_nsk()) {
            prop_assert_eq!(Nsk::parse_rdata(&rdata_of(&nsk)), Ok(nsk));
        }

        #[test]
        fn presentation_round_trips(nsk in arb_nsk()) {
            let text = nsk.to_presentation();
            prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
            prop_assert_eq!(Nsk::parse_presentation(&text), Ok(nsk.clone()), "{}", text);
            prop_assert_eq!(Nsk::parse_presentation(&nsk.to_generic()), Ok(nsk));
        }

        #[test]
        fn parsed_rdata_is_written_back_byte_for_byte(data in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(nsk) = Nsk::parse_rdata(&data) {
                prop_assert_eq!(rdata_of(&nsk), data);
            }
        }

        #[test]
        fn presentation_parsing_never_panics(text in zone_text()) {
            match Nsk::parse_presentation(&text) {
                Ok(nsk) => {
                    prop_assert_eq!(nsk.validate(), Ok(()));
                    prop_assert_eq!(Nsk::parse_presentation(&nsk.to_presentation()), Ok(nsk));
                }
                Err(e) => prop_assert!(!e.is_empty() && !e.chars().any(char::is_control), "{:?}", e),
            }
        }

        #[test]
        fn star_agrees_with_the_table(
            pattern in "[ab*.]{0,12}",
            name in "[abAB.]{0,16}",
        ) {
            prop_assert_eq!(star_match(&pattern, &name), star_reference(pattern.as_bytes(), name.as_bytes()));
        }

        #[test]
        fn message_parsers_never_panic(msg in arb_message(), question_end in 0..140usize, id in any::<u16>()) {
            let _ = parse_outer(&msg, question_end, &CP);
            if let Some(end) = (msg.len() >= HEADER_LEN).then(|| dns::question_end(&msg)).flatten() {
                let _ = parse_outer(&msg, end, &CP);
            }
            let mut out = Vec::new();
            let _ = check_inner(&msg, id, &CP, &mut out);
            if msg.len() >= 2 {
                let _ = check_inner(&msg, dns::id(&msg), &CP, &mut out);
            }
            let _ = parse_response_envelope(&msg, &CP);
        }

        #[test]
        fn query_envelopes_read_back(
            id in any::<u16>(),
            rd in any::<bool>(),
            nonce in any::<[u8; 16]>(),
            udp_size in any::<u16>(),
            key_id in any::<u32>(),
            payload in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut out = Vec::new();
            write_query_envelope(id, rd, &nonce, udp_size, key_id, &payload, &CP, &mut out);
            let question_end = dns::question_end(&out).unwrap();
            prop_assert_eq!(dns::check_query(&out), dns::QueryVerdict::Relay { question_end });
            prop_assert_eq!(
                parse_outer(&out, question_end, &CP),
                Outer::Encrypted {
                    key_id,
                    payload: &payload,
                    udp_size: udp_size.max(512),
                    question: &out[HEADER_LEN..question_end],
                    rd,
                }
            );
            let label = nonce_label(&nonce);
            prop_assert_eq!(&out[HEADER_LEN + 1..HEADER_LEN + 27], label.as_bytes());
        }

        #[test]
        fn response_envelopes_read_back(
            id in any::<u16>(),
            rd in any::<bool>(),
            name in arb_name(),
            rcode in any::<u16>(),
            tc in any::<bool>(),
            option in prop::option::of((any::<u32>(), prop::collection::vec(any::<u8>(), 0..600))),
        ) {
            let mut question = name;
            question.extend_from_slice(&[0, 16, 0, 1]);
            let mut out = Vec::new();
            let option = option.as_ref().map(|(k, p)| (*k, &p[..]));
            write_response_envelope(id, rd, &question, rcode, tc, option, 1232, &CP, &mut out);
            prop_assert_eq!(
                parse_response_envelope(&out, &CP),
                Ok(ResponseEnvelope { id, question: &question, rcode: rcode & 0x0fff, tc, option })
            );
        }

        #[test]
        fn good_inner_queries_pass_and_lose_only_the_nsk(
            id in any::<u16>(),
            name in arb_name(),
            key in prop::collection::vec(any::<u8>(), 0..64),
            opt_size in prop::option::of(any::<u16>()),
            nsk_first in any::<bool>(),
        ) {
            let nsk = Nsk::response_key(scheme::CHACHA20_POLY1305, key);
            let nsk_len = nsk_record(&nsk).len();
            let mut records = vec![nsk_record(&nsk)];
            if let Some(size) = opt_size {
                records.insert(usize::from(!nsk_first), opt(size, &[]));
            }
            let mut msg = id.to_be_bytes().to_vec();
            msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, records.len() as u8]);
            msg.extend(name);
            msg.extend_from_slice(&[0, 1, 0, 1]);
            let question_end = msg.len();
            msg.extend(records.concat());
            let mut out = Vec::new();
            let got = check_inner(&msg, id, &CP, &mut out).unwrap();
            prop_assert_eq!(got.nsk, nsk);
            prop_assert_eq!(got.question_end, question_end);
            prop_assert_eq!(got.udp_size, opt_size.map(|s| s.max(512)));
            prop_assert_eq!(out.len(), msg.len() - nsk_len);
            prop_assert_eq!(check_inner(&out, id, &CP, &mut Vec::new()), Err(InnerError::NoNsk));
        }
    }
}
