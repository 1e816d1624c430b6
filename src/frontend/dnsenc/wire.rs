//! DNSENC's wire formats (draft-krecicki-dprive-dnsenc-01, §3): the NSK record (RDATA, its
//! presentation and RFC 3597 generic forms, the applicable-name matcher).
//!
//! Owns: the bytes and text of those formats and the checks the draft puts on them. The code
//! points the draft leaves TBD are passed in ([`CodePoints`]), never assumed.
//!
//! Never: does cryptography, chooses keys or schemes (whether a key ID exists, whether a scheme
//! was offered, whether a key's length fits its scheme are the caller's checks), does I/O, or
//! panics on any input: every parser takes arbitrary bytes or text, and every writer any
//! arguments (a length that cannot fit is cut, as each writer says, rather than wrapped).
//! Writers append to `out`.

use std::fmt;

use base64::Engine as _;

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
}

const CLASS_IN: u16 = 1;
/// Longest domain name on the wire (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;
const MAX_MESSAGE: usize = u16::MAX as usize;
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
        let mut out = format!("{} {} {} ", self.key_id, self.priority, name_to_text(&self.ns_name));
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

/// A wire name (uncompressed, valid) as zone-file text, ending with a dot; "." for the root.
/// Letters, digits and the other printable characters as they are, except `. \ " ( ) ; @ $`
/// escaped with a backslash; every other byte as `\DDD`.
fn name_to_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        for &b in wire.get(pos + 1..pos + 1 + len as usize).unwrap_or_default() {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('.');
        pos += 1 + len as usize;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// One zone-file token: its bytes as written (escapes kept), and whether it was quoted.
#[derive(Debug)]
struct Token {
    raw: Vec<u8>,
    quoted: bool,
}

/// The token for an error message: quoted and escaped, on one line.
fn show(token: &Token) -> String {
    format!("{:?}", String::from_utf8_lossy(&token.raw))
}

/// Splits zone-file text into tokens: whitespace separates, `( )` group lines, `;` comments to
/// the end of the line, `"..."` quotes (with `\` escaping inside), `\` escapes the next
/// character in an unquoted token. A line break outside parentheses ends the record.
fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let b = s.as_bytes();
    let mut tokens = Vec::new();
    let mut depth = 0u32;
    let mut ended = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                ended |= depth == 0 && !tokens.is_empty();
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
        if ended {
            return Err("more than one record (a line break outside parentheses ends a record)".to_owned());
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
    Ok(tokens)
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
fn name_from_text(raw: &[u8]) -> Result<Vec<u8>, String> {
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

    /// §3.1.2's example, character for character.
    const DRAFT_EXAMPLE: &str = r#"    example.com.  86400 IN NSK (896417428       ; identifier
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

    #[test]
    fn the_drafts_example_is_read() {
        let nsk = Nsk::parse_presentation(DRAFT_EXAMPLE).unwrap();
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
    }
}
