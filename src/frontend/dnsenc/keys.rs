//! DNSENC key files, and the set of keys a server holds.
//!
//! One key a file: a comment line dotgate writes and reads, then the private key as PEM PKCS#8:
//!
//! ```text
//! # dotgate dnsenc key-id=2882400001 priority=10 scheme=x25519 response=aes-256,chacha20-poly1305
//! -----BEGIN PRIVATE KEY-----
//! MC4CAQAwBQYDK2VuBCIEI...
//! -----END PRIVATE KEY-----
//! ```
//!
//! `key-id` (1 to 2^32-1) is the NSK's KEY IDENTIFIER and what queries name; `priority` (0 to
//! 255) its PRIORITY, higher preferred; `scheme` the query scheme the key is for (`rsa2048`,
//! `rsa4096`, `x25519`), which the key itself must match; `response` the answer schemes the NSK
//! offers, in order of preference. All four are required, each once, in any order. Other `#`
//! lines and blank lines may come before or after; nothing else may.
//!
//! This module owns the file format, reading key files (refusing any that group or others may
//! open) and writing new ones, and the rules of [`KeySet`]. It must never: log, or put key
//! bytes or file contents into an error message or a `Debug` string (errors name lines and
//! fields); overwrite a file; let a new key file be readable by anyone but its owner, even for
//! a moment; or decide which keys are in service (the configuration does).

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zeroize::Zeroizing;

use super::crypto::{
    is_query_scheme, is_response_scheme, scheme_by_name, scheme_name, CryptoError, QueryKey, AES256_GCM,
    CHACHA20_POLY1305,
};
use super::wire::Nsk;

/// The answer schemes a new key offers, most preferred first.
pub const DEFAULT_RESPONSE_SCHEMES: [u16; 2] = [AES256_GCM, CHACHA20_POLY1305];

/// The start of the line that describes the key.
const HEADER: &str = "# dotgate dnsenc";
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
/// Base64 characters a PEM line holds.
const PEM_LINE: usize = 64;
/// Larger than any key file dotgate writes (an RSA-4096 one is about 3.3 kB) by a margin.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// What is wrong with a key file or a set of keys: one line, naming the file where there is
/// one and what to do. Never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Text that is not a key file ([`ServerKey::parse_file`]): what is wrong, on which line.
    #[error("{0}")]
    Malformed(String),
    /// A key file that is not one ([`ServerKey::load`]).
    #[error("dnsenc key file {}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, on which line.
        why: String,
    },
    /// A key file dotgate cannot open or read.
    #[error(
        "cannot read dnsenc key file {}: {source} (it must exist and be readable by the user dotgate runs as)",
        path.display()
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A key file that group or others may open.
    #[error(
        "dnsenc key file {} has mode {mode:04o}, open to group or others: `chmod 600 {}` (and replace the key if someone else may have read it)",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Two keys with one id ([`KeySet::new`]): a query could not say which it was encrypted to.
    #[error("dnsenc key id {0} is in two key files: every key needs its own id")]
    DuplicateKeyId(u32),
}

/// One key a server holds, with what its NSK record says about it. `Debug` shows no key bytes.
#[derive(Debug)]
pub struct ServerKey {
    /// The NSK's KEY IDENTIFIER: what a query encrypted to this key names. Never 0.
    pub key_id: u32,
    /// The NSK's PRIORITY: clients prefer the highest.
    pub priority: u8,
    /// The answer schemes the NSK offers, most preferred first.
    pub response_schemes: Vec<u16>,
    /// The private key; its scheme is the NSK's ENCRYPTION SCHEME.
    pub key: QueryKey,
}

impl ServerKey {
    /// A new key for query scheme `scheme`, offering [`DEFAULT_RESPONSE_SCHEMES`]. The key comes
    /// from the operating system's random source, the key id from `rng` (never 0).
    pub fn generate(scheme: u16, priority: u8, rng: &mut impl rand::RngCore) -> Result<ServerKey, CryptoError> {
        let key = QueryKey::generate(scheme)?;
        let key_id = std::iter::repeat_with(|| rng.next_u32()).find(|&id| id != 0).unwrap_or(1);
        Ok(ServerKey { key_id, priority, response_schemes: DEFAULT_RESPONSE_SCHEMES.to_vec(), key })
    }

    /// The NSK record that publishes this key: its id, priority, scheme, public key and answer
    /// schemes, the root as the applicable name ("every server").
    pub fn nsk(&self) -> Nsk {
        Nsk {
            key_id: self.key_id,
            priority: self.priority,
            reserved: 0,
            ns_name: vec![0],
            scheme: self.key.scheme(),
            key: self.key.public_key_data(),
            response_schemes: self.response_schemes.clone(),
        }
    }

    /// The line that describes the key (no newline). Schemes without a name are written as hex
    /// numbers, which [`ServerKey::parse_file`] refuses.
    pub fn header_line(&self) -> String {
        let name = |scheme: u16| scheme_name(scheme).map_or_else(|| format!("{scheme:#06x}"), str::to_owned);
        let responses: Vec<String> = self.response_schemes.iter().map(|&scheme| name(scheme)).collect();
        format!(
            "{HEADER} key-id={} priority={} scheme={} response={}",
            self.key_id,
            self.priority,
            name(self.key.scheme()),
            responses.join(",")
        )
    }

    /// The key file's text: [`ServerKey::header_line`], then the PEM PKCS#8 key.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let header = self.header_line();
        let der = self.key.to_pkcs8();
        let base64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&der[..]));
        // Sized once, so that no reallocation leaves a copy of the key behind.
        let lines = base64.len().div_ceil(PEM_LINE);
        let capacity = header.len() + PEM_BEGIN.len() + base64.len() + lines + PEM_END.len() + 3;
        let mut text = Zeroizing::new(String::with_capacity(capacity));
        text.push_str(&header);
        text.push('\n');
        text.push_str(PEM_BEGIN);
        text.push('\n');
        for line in base64.as_bytes().chunks(PEM_LINE) {
            // Base64 is ASCII: every chunk is text.
            text.push_str(std::str::from_utf8(line).unwrap_or_default());
            text.push('\n');
        }
        text.push_str(PEM_END);
        text.push('\n');
        text
    }

    /// The key in a key file's text (see the module docs); `Err` says what is wrong and where,
    /// in one line.
    pub fn parse_file(text: &str) -> Result<ServerKey, KeyFileError> {
        parse(text).map_err(KeyFileError::Malformed)
    }

    /// Reads `path`; refuses (KeyFileError, one line naming the path and the fix) a file readable
    /// by group or others (mode & 0o077 != 0), unreadable, or malformed.
    ///
    /// The mode is that of the file opened (no race with a rename between check and read).
    pub fn load(path: &Path) -> Result<ServerKey, KeyFileError> {
        let unreadable = |source| KeyFileError::Unreadable { path: path.to_owned(), source };
        let invalid = |why: String| KeyFileError::Invalid { path: path.to_owned(), why };
        let file = File::open(path).map_err(unreadable)?;
        let metadata = file.metadata().map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(invalid("not a regular file".into()));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen { path: path.to_owned(), mode });
        }
        if metadata.len() > MAX_FILE_LEN {
            return Err(invalid(format!("{} bytes, too large for a key file", metadata.len())));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize + 1));
        file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes).map_err(unreadable)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not text".into()))?;
        parse(text).map_err(invalid)
    }

    /// Writes the file with mode 0600 (created so, never world-readable even briefly), refusing to
    /// overwrite: an existing `path` is an [`io::ErrorKind::AlreadyExists`] error and stays as it
    /// was. A file left half written by a failed write is removed.
    pub fn write_new(&self, path: &Path) -> io::Result<()> {
        let text = self.to_file_text();
        // O_CREAT|O_EXCL: never an existing file, never through a symlink.
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        // The umask can only have narrowed 0600; make it exactly that.
        let written = file
            .set_permissions(Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all());
        if written.is_err() {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
        written
    }
}

/// The fields of the header line.
struct Header {
    key_id: u32,
    priority: u8,
    scheme: u16,
    response_schemes: Vec<u16>,
}

/// [`ServerKey::parse_file`]'s work; `Err` is the one-line reason.
fn parse(text: &str) -> Result<ServerKey, String> {
    #[derive(PartialEq)]
    enum Place {
        /// Comments, and the header line.
        Header,
        /// Between the PEM lines.
        Key,
        /// Comments only.
        Trailer,
    }
    let mut place = Place::Header;
    let mut header: Option<Header> = None;
    // As long as the text, so that it never reallocates with key bytes in it.
    let mut base64 = Zeroizing::new(String::with_capacity(text.len()));
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if place == Place::Key {
            if line == PEM_END {
                place = Place::Trailer;
            } else if line.starts_with("-----") {
                return Err(format!("line {line_no}: want `{PEM_END}`"));
            } else {
                base64.push_str(line);
            }
            continue;
        }
        if let Some(fields) = line.strip_prefix(HEADER).filter(|rest| rest.is_empty() || rest.starts_with(' ')) {
            // (Before the key, since the key needs one before it.)
            if header.is_some() {
                return Err(format!("line {line_no}: a second `{HEADER}` line (one key a file)"));
            }
            header = Some(parse_header(line_no, fields)?);
        } else if line.is_empty() || line.starts_with('#') {
            continue;
        } else if line == PEM_BEGIN {
            if place == Place::Trailer {
                return Err(format!("line {line_no}: a second key (one key a file)"));
            }
            if header.is_none() {
                return Err(format!("line {line_no}: the key comes before its `{HEADER} key-id=…` line"));
            }
            place = Place::Key;
        } else if line.starts_with("-----BEGIN ") {
            return Err(format!(
                "line {line_no}: `{line}`; want an unencrypted PKCS#8 `{PEM_BEGIN}` (`openssl pkcs8 -topk8 -nocrypt` converts one)"
            ));
        } else {
            return Err(format!("line {line_no} is neither a `#` comment nor part of the key"));
        }
    }
    let Some(header) = header else {
        return Err(format!("no `{HEADER} key-id=<u32> priority=<u8> scheme=<name> response=<names>` line"));
    };
    match place {
        Place::Header => return Err(format!("no `{PEM_BEGIN}` block")),
        Place::Key => return Err(format!("the key has no `{PEM_END}` line")),
        Place::Trailer => {}
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "the key's base64 does not decode".to_owned())?;
    let key = QueryKey::from_pkcs8(header.scheme, &der).map_err(|e| format!("not the key its scheme= says: {e}"))?;
    Ok(ServerKey { key_id: header.key_id, priority: header.priority, response_schemes: header.response_schemes, key })
}

/// The `name=value` fields after `# dotgate dnsenc`, each required once.
fn parse_header(line_no: usize, fields: &str) -> Result<Header, String> {
    let (mut key_id, mut priority, mut scheme, mut response_schemes) = (None, None, None, None);
    for field in fields.split_whitespace() {
        let Some((name, value)) = field.split_once('=') else {
            return Err(format!("line {line_no}: `{field}` is not name=value"));
        };
        let bad = |want: &str| format!("line {line_no}: {name}={value}: want {want}");
        let duplicate = match name {
            "key-id" => {
                let id = value.parse::<u32>().ok().filter(|&id| id != 0).ok_or_else(|| bad("1 to 4294967295"))?;
                key_id.replace(id).is_some()
            }
            "priority" => priority.replace(value.parse::<u8>().map_err(|_| bad("0 to 255"))?).is_some(),
            "scheme" => {
                let query = scheme_by_name(value).filter(|&s| is_query_scheme(s));
                scheme.replace(query.ok_or_else(|| bad("rsa2048, rsa4096 or x25519"))?).is_some()
            }
            "response" => {
                let mut list = Vec::new();
                for item in value.split(',') {
                    let response = scheme_by_name(item).filter(|&s| is_response_scheme(s));
                    let response = response.ok_or_else(|| bad("a list of aes-256, chacha20-poly1305"))?;
                    if list.contains(&response) {
                        return Err(bad("each scheme once"));
                    }
                    list.push(response);
                }
                response_schemes.replace(list).is_some()
            }
            _ => return Err(format!("line {line_no}: unknown field `{name}` (key-id, priority, scheme, response)")),
        };
        if duplicate {
            return Err(format!("line {line_no}: {name}= twice"));
        }
    }
    let missing =
        |name: &str| format!("line {line_no}: no {name}= (key-id, priority, scheme and response are all needed)");
    Ok(Header {
        key_id: key_id.ok_or_else(|| missing("key-id"))?,
        priority: priority.ok_or_else(|| missing("priority"))?,
        scheme: scheme.ok_or_else(|| missing("scheme"))?,
        response_schemes: response_schemes.ok_or_else(|| missing("response"))?,
    })
}

/// The keys in service: decrypts with the one whose id the query names; `preferred()` =
/// numerically highest priority, ties to the lowest key id.
#[derive(Debug)]
pub struct KeySet {
    /// In key id order, ids distinct.
    keys: Vec<ServerKey>,
    /// Index of the preferred key (`None` when there are no keys).
    preferred: Option<usize>,
}

impl KeySet {
    /// The set of `keys`, which may be empty; two keys with one id are refused.
    pub fn new(mut keys: Vec<ServerKey>) -> Result<KeySet, KeyFileError> {
        keys.sort_unstable_by_key(|key| key.key_id);
        if let Some(pair) = keys.windows(2).find(|pair| pair[0].key_id == pair[1].key_id) {
            return Err(KeyFileError::DuplicateKeyId(pair[0].key_id));
        }
        // `max_by_key` takes the last of equals: the key ids are reversed to make it the lowest.
        let preferred = (0..keys.len()).max_by_key(|&i| (keys[i].priority, std::cmp::Reverse(keys[i].key_id)));
        Ok(KeySet { keys, preferred })
    }

    /// The key with id `key_id`.
    pub fn get(&self, key_id: u32) -> Option<&ServerKey> {
        self.keys.binary_search_by_key(&key_id, |key| key.key_id).ok().map(|i| &self.keys[i])
    }

    /// The key to publish first: the highest priority, ties to the lowest key id.
    pub fn preferred(&self) -> Option<&ServerKey> {
        self.preferred.map(|i| &self.keys[i])
    }

    /// The keys, in key id order.
    pub fn iter(&self) -> impl Iterator<Item = &ServerKey> {
        self.keys.iter()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::super::crypto::{RSA2048_OAEP, X25519_HPKE};
    use super::*;

    fn x25519_key(key_id: u32, priority: u8) -> ServerKey {
        let mut key = ServerKey::generate(X25519_HPKE, priority, &mut StdRng::seed_from_u64(1)).unwrap();
        key.key_id = key_id;
        key
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Returns 0 first, then counts up: a key id is never 0.
    struct ZeroFirst(u32);
    impl rand::RngCore for ZeroFirst {
        fn next_u32(&mut self) -> u32 {
            let value = self.0;
            self.0 += 1;
            value
        }
        fn next_u64(&mut self) -> u64 {
            self.next_u32().into()
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(0);
        }
    }

    #[test]
    fn files_print_and_parse_back() {
        let key = ServerKey::generate(X25519_HPKE, 10, &mut ZeroFirst(0)).unwrap();
        assert_eq!(key.key_id, 1, "0 is skipped");
        assert_eq!(key.response_schemes, [AES256_GCM, CHACHA20_POLY1305]);
        let text = key.to_file_text();
        assert!(
            text.starts_with(
                "# dotgate dnsenc key-id=1 priority=10 scheme=x25519 response=aes-256,chacha20-poly1305\n\
                 -----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEI"
            ),
            "{}",
            text.lines().next().unwrap()
        );
        assert!(text.ends_with("\n-----END PRIVATE KEY-----\n"));
        let back = ServerKey::parse_file(&text).unwrap();
        assert_eq!((back.key_id, back.priority, &back.response_schemes), (1, 10, &key.response_schemes));
        assert_eq!(back.key.public_key_data(), key.key.public_key_data());
        assert_eq!(&back.to_file_text()[..], &text[..]);

        // Fields in another order, one response scheme, comments, blank lines and CRLF are fine.
        let pem = text.split_once('\n').unwrap().1;
        let other = format!(
            "# made by hand\r\n\r\n# dotgate dnsenc  response=chacha20-poly1305 scheme=x25519 priority=0 key-id=4294967295\r\n{}\n# end\n",
            pem.replace('\n', "\r\n")
        );
        let back = ServerKey::parse_file(&other).unwrap();
        assert_eq!((back.key_id, back.priority, &back.response_schemes[..]), (u32::MAX, 0, &[CHACHA20_POLY1305][..]));
    }

    #[test]
    fn bad_files_say_what_and_where_in_one_line() {
        let key = x25519_key(77, 1);
        let text = key.to_file_text().to_string();
        let (header, pem) = text.split_once('\n').unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let with_header = |h: &str| format!("{h}\n{pem}");
        for (file, needle) in [
            (String::new(), "no `# dotgate dnsenc key-id"),
            (pem.to_owned(), "line 1: the key comes before its `# dotgate dnsenc"),
            (format!("{header}\n"), "no `-----BEGIN PRIVATE KEY-----` block"),
            (format!("{pem}{header}\n"), "line 1: the key comes before"),
            (format!("{text}{header}\n"), "line 5: a second `# dotgate dnsenc` line"),
            (format!("{header}\n{header}\n{pem}"), "line 2: a second `# dotgate dnsenc` line"),
            (format!("{text}{pem}"), "line 5: a second key"),
            (format!("{header}\n-----BEGIN PRIVATE KEY-----\n{body}\n"), "has no `-----END PRIVATE KEY-----`"),
            (with_header(&header.replace("key-id=77", "key-id=0")), "line 1: key-id=0: want 1 to 4294967295"),
            (with_header(&header.replace("key-id=77", "key-id=4294967296")), "key-id=4294967296: want"),
            (with_header(&header.replace("key-id=77 ", "")), "line 1: no key-id="),
            (with_header(&header.replace("priority=1", "priority=256")), "priority=256: want 0 to 255"),
            (with_header(&header.replace(" priority=1", "")), "no priority="),
            (with_header(&header.replace("x25519", "ed25519")), "scheme=ed25519: want rsa2048, rsa4096 or x25519"),
            (with_header(&header.replace("x25519", "aes-256")), "scheme=aes-256: want"),
            (with_header(&header.replace("aes-256,", "aes-128,")), "response=aes-128,chacha20-poly1305: want"),
            (with_header(&header.replace("chacha20-poly1305", "aes-256")), "each scheme once"),
            (with_header(&header.replace("response=aes-256,chacha20-poly1305", "response=")), "response=: want"),
            (with_header(&format!("{header} key-id=78")), "line 1: key-id= twice"),
            (with_header(&format!("{header} expires=2030")), "unknown field `expires`"),
            (with_header(&format!("{header} extra")), "`extra` is not name=value"),
            (format!("{header}\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n"), "want an unencrypted PKCS#8"),
            (format!("{header}\n{body}\n"), "line 2 is neither a `#` comment nor part of the key"),
            (text.replace(&body[4..8], "!!!!"), "the key's base64 does not decode"),
            (
                format!("{header}\n-----BEGIN PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"),
                "want `-----END",
            ),
            // The key must be what its scheme= says.
            (
                with_header(&header.replace("x25519", "rsa2048")),
                "not the key its scheme= says: bad rsa2048 private key",
            ),
            (with_header(&header.replace("x25519", "rsa4096")), "not the key its scheme= says"),
        ] {
            let e = ServerKey::parse_file(&file).unwrap_err().to_string();
            assert!(e.contains(needle), "{file:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
            assert!(!e.contains(&body[..20]), "no key bytes in errors: {e}");
        }
    }

    #[test]
    fn a_key_file_whose_scheme_is_not_its_key_is_refused() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/dnsenc/keys/rsa2048.key");
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(ServerKey::parse_file(&text).unwrap().key.scheme(), RSA2048_OAEP);
        for (wrong, needle) in [
            ("scheme=rsa4096", "bad rsa4096 private key: an RSA key of 2048 bits, the scheme needs 4096"),
            ("scheme=x25519", "bad x25519 private key: not an RFC 8410 PKCS#8 X25519 private key"),
        ] {
            let e = ServerKey::parse_file(&text.replace("scheme=rsa2048", wrong)).unwrap_err().to_string();
            assert!(e.starts_with(&format!("not the key its scheme= says: {needle}")), "{e}");
        }
    }

    #[test]
    fn load_refuses_files_open_to_group_or_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsenc.key");
        let key = x25519_key(5, 1);
        key.write_new(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(ServerKey::load(&path).unwrap().key.public_key_data(), key.key.public_key_data());
        for (open, refused) in
            [(0o640, true), (0o604, true), (0o660, true), (0o610, true), (0o400, false), (0o700, false)]
        {
            std::fs::set_permissions(&path, Permissions::from_mode(open)).unwrap();
            match ServerKey::load(&path) {
                Err(e @ KeyFileError::TooOpen { .. }) if refused => {
                    let text = e.to_string();
                    assert!(text.contains(&format!("mode {open:04o}")), "{text}");
                    assert!(text.contains(&format!("`chmod 600 {}`", path.display())), "{text}");
                }
                Ok(_) if !refused => {}
                other => panic!("mode {open:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn load_names_the_path_of_unreadable_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let e = ServerKey::load(&missing).unwrap_err();
        assert!(matches!(e, KeyFileError::Unreadable { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("cannot read dnsenc key file {}: ", missing.display())), "{e}");
        let e = ServerKey::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file") || e.contains("open to group"), "{e}");

        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "# dotgate dnsenc key-id=1\n").unwrap();
        std::fs::set_permissions(&bad, Permissions::from_mode(0o600)).unwrap();
        let e = ServerKey::load(&bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "dnsenc key file {}: line 1: no priority= (key-id, priority, scheme and response are all needed)",
                bad.display()
            )
        );
        std::fs::write(&bad, [0xff, 0xfe]).unwrap();
        assert!(ServerKey::load(&bad).unwrap_err().to_string().ends_with(": not text"));
    }

    #[test]
    fn write_new_creates_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.key");
        let first = x25519_key(1, 1);
        first.write_new(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let before = std::fs::read(&path).unwrap();
        assert_eq!(&before[..], first.to_file_text().as_bytes());
        let e = x25519_key(2, 1).write_new(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), before, "untouched");
        // Not through a symlink either, even a dangling one.
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(dir.path().join("target.key"), &link).unwrap();
        assert_eq!(first.write_new(&link).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("target.key").exists());
    }

    #[test]
    fn key_set_picks_by_id_and_prefers_high_priority_then_low_id() {
        let set = KeySet::new(vec![x25519_key(30, 5), x25519_key(10, 9), x25519_key(20, 9), x25519_key(5, 1)]).unwrap();
        assert_eq!(set.len(), 4);
        assert!(!set.is_empty());
        assert_eq!(set.preferred().unwrap().key_id, 10, "priority 9 beats 5; of the two 9s the lower id");
        assert_eq!(set.iter().map(|k| k.key_id).collect::<Vec<_>>(), [5, 10, 20, 30]);
        assert_eq!(set.get(20).unwrap().priority, 9);
        assert!(set.get(21).is_none());
        assert!(set.get(0).is_none());

        let set = KeySet::new(vec![x25519_key(7, 0), x25519_key(3, 0)]).unwrap();
        assert_eq!(set.preferred().unwrap().key_id, 3);
        let set = KeySet::new(vec![x25519_key(7, 255), x25519_key(3, 254)]).unwrap();
        assert_eq!(set.preferred().unwrap().key_id, 7);

        let empty = KeySet::new(Vec::new()).unwrap();
        assert!(empty.is_empty() && empty.preferred().is_none() && empty.get(1).is_none());

        let e = KeySet::new(vec![x25519_key(4, 1), x25519_key(9, 1), x25519_key(4, 2)]).unwrap_err();
        assert!(matches!(e, KeyFileError::DuplicateKeyId(4)), "{e}");
    }

    #[test]
    fn a_key_set_can_be_shared_between_workers() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<KeySet>();
        send_sync::<ServerKey>();
    }

    #[test]
    fn generate_refuses_answer_schemes_and_debug_shows_no_key() {
        let mut rng = StdRng::seed_from_u64(2);
        assert!(ServerKey::generate(AES256_GCM, 1, &mut rng).is_err());
        let key = x25519_key(9, 3);
        let debug = format!("{key:?}");
        assert!(debug.contains("key_id: 9") && debug.contains("QueryKey(x25519, ..)"), "{debug}");
    }
}
