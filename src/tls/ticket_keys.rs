//! The session-ticket key file: its text format, reading it, and writing new ones.
//!
//! Format, one key a line, newest first:
//!
//! ```text
//! # comment lines start with '#'; blank lines are ignored
//! <base64 of 80 random bytes>   <- the first key encrypts new tickets
//! <base64 of 80 random bytes>   <- older keys still decrypt tickets made with them
//! ```
//!
//! Each key is 16 bytes of key name (written into every ticket, so the right key is found
//! without trying them all), a 32-byte AES-256 key and a 32-byte HMAC-SHA256 key: the layout
//! of dnsdist's and OpenSSL's 80-byte ticket keys. Rotation (`dotgate ticket-keys new --rotate
//! FILE`) prepends a fresh key and keeps at most [`KEYS_KEPT_ON_ROTATE`].
//!
//! This module only parses and formats: it never encrypts, never logs, and never puts key bytes
//! into an error message or a `Debug` string.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

use crate::config::ConfigError;

/// Bytes of one key: name, AES-256 key, HMAC-SHA256 key.
pub const KEY_LEN: usize = NAME_LEN + AES_KEY_LEN + HMAC_KEY_LEN;
/// Bytes of the key name at the start of every ticket.
pub const NAME_LEN: usize = 16;
/// Bytes of the AES-256-CBC key.
pub const AES_KEY_LEN: usize = 32;
/// Bytes of the HMAC-SHA256 key.
pub const HMAC_KEY_LEN: usize = 32;
/// Keys `--rotate` keeps (the new one included): with a daily rotation a ticket stays usable for
/// as long as clients keep it (12 h), and a freshly rotated file still reads the last two days.
pub const KEYS_KEPT_ON_ROTATE: usize = 3;

/// One ticket key. `Debug` shows nothing of it but that it is one.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey([u8; KEY_LEN]);

impl TicketKey {
    /// A key from the operating system's random source.
    pub fn generate() -> Result<TicketKey, ConfigError> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| ConfigError::Tls("cannot get random bytes for a ticket key".into()))?;
        Ok(TicketKey(bytes))
    }

    /// The name written into every ticket this key makes.
    pub fn name(&self) -> &[u8] {
        &self.0[..NAME_LEN]
    }

    pub fn aes_key(&self) -> &[u8] {
        &self.0[NAME_LEN..NAME_LEN + AES_KEY_LEN]
    }

    pub fn hmac_key(&self) -> &[u8] {
        &self.0[NAME_LEN + AES_KEY_LEN..]
    }
}

/// Key bytes do not outlive the key: wiped when it is dropped (after a rotation, a reload, or
/// once the ticketer has derived its cipher contexts, which aws-lc wipes when freed).
impl Drop for TicketKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

/// Reads and checks a key file: at least one key, every key 80 bytes, no key name twice.
pub fn read(path: &Path) -> Result<Vec<TicketKey>, ConfigError> {
    let bytes = std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| ConfigError::Tls(format!("cannot read ticket key file {}: {e}", path.display())))?;
    from_bytes(path, &bytes)
}

/// The keys in the contents of the key file at `path` (named in errors), checked as [`read`] does.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<TicketKey>, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not text".to_owned());
    text.and_then(parse).map_err(|why| ConfigError::Tls(format!("ticket key file {}: {why}", path.display())))
}

/// The keys in `text`, newest first; `Err` says what is wrong and on which line.
pub fn parse(text: &str) -> Result<Vec<TicketKey>, String> {
    let mut keys: Vec<(usize, TicketKey)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .map(Zeroizing::new)
            .map_err(|_| format!("line {line_no} is not base64 (one key per line, `#` for comments)"))?;
        let bytes: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "the key on line {line_no} is {} bytes, want {KEY_LEN} (`dotgate ticket-keys new` makes one)",
                bytes.len()
            )
        })?;
        let key = TicketKey(bytes);
        if let Some((first, _)) = keys.iter().find(|(_, k)| k.name() == key.name()) {
            return Err(format!("the keys on lines {first} and {line_no} have the same name (first 16 bytes)"));
        }
        keys.push((line_no, key));
    }
    if keys.is_empty() {
        return Err("no keys in it (`dotgate ticket-keys new` makes one)".into());
    }
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

/// The file text for `keys`, newest first, with a header saying what it is.
pub fn render(keys: &[TicketKey]) -> String {
    let mut text = String::from(
        "# dotgate session-ticket keys, newest first: the first encrypts, all decrypt.\n\
         # Secret: anyone with this file can decrypt recorded TLS sessions. Rotate with\n\
         # `dotgate ticket-keys new --rotate FILE > FILE.new && mv FILE.new FILE`.\n",
    );
    for key in keys {
        text.push_str(&base64::engine::general_purpose::STANDARD.encode(key.0));
        text.push('\n');
    }
    text
}

/// `dotgate ticket-keys new [--rotate FILE]`: a file with one fresh key, or FILE's keys with a
/// fresh one in front and the oldest dropped beyond [`KEYS_KEPT_ON_ROTATE`].
pub fn new_file(rotate: Option<&Path>) -> Result<String, ConfigError> {
    let mut keys = vec![TicketKey::generate()?];
    if let Some(path) = rotate {
        keys.extend(read(path)?);
        keys.truncate(KEYS_KEPT_ON_ROTATE);
    }
    Ok(render(&keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(byte: u8, len: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![byte; len])
    }

    #[test]
    fn comments_blank_lines_and_order_are_kept() {
        let text = format!("# keys\n\n  {}  \n# old\n{}\n", key_line(1, KEY_LEN), key_line(2, KEY_LEN));
        let keys = parse(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name(), &[1u8; NAME_LEN]);
        assert_eq!(keys[1].hmac_key(), &[2u8; HMAC_KEY_LEN]);
    }

    #[test]
    fn bad_files_say_what_and_where_in_one_line() {
        for (text, needle) in [
            (String::new(), "no keys"),
            ("# only a comment\n\n".to_owned(), "no keys"),
            (format!("{}\n", key_line(1, 48)), "key on line 1 is 48 bytes"),
            ("#\nnot base64 at all!\n".to_owned(), "line 2 is not base64"),
            (format!("{}\n{}\n", key_line(1, KEY_LEN), key_line(1, KEY_LEN)), "lines 1 and 2 have the same name"),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn rendered_files_parse_back() {
        let keys = vec![TicketKey::generate().unwrap(), TicketKey::generate().unwrap()];
        assert_ne!(keys[0], keys[1]);
        assert_eq!(parse(&render(&keys)).unwrap(), keys);
    }

    #[test]
    fn rotation_prepends_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, new_file(None).unwrap()).unwrap();
        let mut history = vec![read(&path).unwrap()];
        for _ in 0..4 {
            std::fs::write(&path, new_file(Some(&path)).unwrap()).unwrap();
            history.push(read(&path).unwrap());
        }
        assert_eq!(history.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2, 3, 3, 3]);
        for pair in history.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            assert!(!before.contains(&after[0]), "the new first key is fresh");
            assert_eq!(&after[1..], &before[..after.len() - 1], "older keys follow, oldest dropped");
        }
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        assert_eq!(format!("{:?}", TicketKey([7; KEY_LEN])), "TicketKey(..)");
    }
}
