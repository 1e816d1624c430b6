//! A look at the client's first flight before TLS starts: does the ClientHello offer ALPN
//! protocols, and is "dot" among them? rustls's unbuffered connection needs its configuration
//! up front, and ALPN "dot" must be selected when offered but never required, so the choice
//! between the two configurations (see `TlsSetup`) is made here.
//!
//! Only reads; it never decides whether the hello is acceptable. Anything odd (not TLS, a
//! malformed hello) is `Malformed`, and rustls then refuses it with the proper alert.

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloPeek {
    /// The ClientHello is not complete yet.
    Incomplete,
    /// A whole ClientHello: whether it offers ALPN protocols that do not include "dot".
    Hello { offers_only_other_alpn: bool },
    /// Not a ClientHello that this parser understands; let rustls say why.
    Malformed,
}

const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXTENSION_ALPN: u16 = 16;
/// A ClientHello larger than this is left to rustls (which has its own limit).
const MAX_HELLO: usize = 64 * 1024;

/// Peeks at `bytes`, the connection's first bytes (one or more TLS records).
pub fn peek(bytes: &[u8]) -> HelloPeek {
    // A ClientHello may span several handshake records: gather fragments until it is whole.
    // Nearly always it is one record, so the common case borrows instead of copying.
    let mut joined: Vec<u8> = Vec::new();
    let mut first: &[u8] = &[];
    let mut rest = bytes;
    loop {
        if rest.len() < RECORD_HEADER {
            return HelloPeek::Incomplete;
        }
        if rest[0] != CONTENT_HANDSHAKE {
            return HelloPeek::Malformed;
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        let Some(fragment) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
            return HelloPeek::Incomplete;
        };
        rest = &rest[RECORD_HEADER + len..];
        if first.is_empty() && joined.is_empty() {
            first = fragment;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(first);
            }
            joined.extend_from_slice(fragment);
        }
        let handshake = if joined.is_empty() { first } else { &joined[..] };
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != HANDSHAKE_CLIENT_HELLO {
            return HelloPeek::Malformed;
        }
        let body_len = u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize;
        if body_len > MAX_HELLO {
            return HelloPeek::Malformed;
        }
        if let Some(body) = handshake.get(4..4 + body_len) {
            return match offers_only_other_alpn(body) {
                Some(only_others) => HelloPeek::Hello { offers_only_other_alpn: only_others },
                None => HelloPeek::Malformed,
            };
        }
    }
}

/// Walks a ClientHello body (RFC 8446 §4.1.2) to its ALPN extension (RFC 7301 §3.1).
/// `None` when the body does not parse.
fn offers_only_other_alpn(body: &[u8]) -> Option<bool> {
    let mut r = Reader(body);
    r.skip(2 + 32)?; // legacy_version, random
    let session_id = r.u8()? as usize;
    r.skip(session_id)?;
    let suites = r.u16()? as usize;
    r.skip(suites)?;
    let compression = r.u8()? as usize;
    r.skip(compression)?;
    if r.0.is_empty() {
        return Some(false); // no extensions at all (an old TLS 1.2 hello)
    }
    let extensions_len = r.u16()? as usize;
    let mut extensions = Reader(r.take(extensions_len)?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let len = extensions.u16()? as usize;
        let data = extensions.take(len)?;
        if kind != EXTENSION_ALPN {
            continue;
        }
        let mut list = Reader(data);
        let list_len = list.u16()? as usize;
        let mut names = Reader(list.take(list_len)?);
        let mut offers_dot = false;
        let mut offers_any = false;
        while !names.0.is_empty() {
            let name_len = names.u8()? as usize;
            let name = names.take(name_len)?;
            offers_any = true;
            offers_dot |= name == crate::tls::ALPN_DOT;
        }
        return Some(offers_any && !offers_dot);
    }
    Some(false)
}

/// A cursor over bytes where every read can fail (returns `None`) instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello from rustls's own client with the given ALPN protocols.
    fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls_pki_types::ServerName::try_from("dot.example").unwrap();
        let mut client = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn alpn_offers_are_read() {
        assert_eq!(peek(&client_hello(&[])), HelloPeek::Hello { offers_only_other_alpn: false });
        assert_eq!(peek(&client_hello(&[b"dot"])), HelloPeek::Hello { offers_only_other_alpn: false });
        assert_eq!(peek(&client_hello(&[b"h2", b"dot"])), HelloPeek::Hello { offers_only_other_alpn: false });
        assert_eq!(peek(&client_hello(&[b"h2"])), HelloPeek::Hello { offers_only_other_alpn: true });
    }

    #[test]
    fn every_prefix_is_incomplete_and_never_panics() {
        let hello = client_hello(&[b"h2"]);
        for cut in 0..hello.len() {
            assert_eq!(peek(&hello[..cut]), HelloPeek::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn a_hello_split_over_records_is_joined() {
        let hello = client_hello(&[b"h2"]);
        let body = &hello[RECORD_HEADER..];
        let mut split = Vec::new();
        for chunk in body.chunks(100) {
            split.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
            split.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            split.extend_from_slice(chunk);
        }
        assert_eq!(peek(&split), HelloPeek::Hello { offers_only_other_alpn: true });
        assert_eq!(peek(&split[..split.len() - 1]), HelloPeek::Incomplete);
    }

    #[test]
    fn other_bytes_are_malformed() {
        // Plain DNS over TCP sent to the TLS port.
        assert_eq!(peek(&[0, 29, 0x12, 0x34, 1, 0]), HelloPeek::Malformed);
        assert_eq!(peek(b"GET / HTTP/1.1\r\n"), HelloPeek::Malformed);
        let mut hello = client_hello(&[]);
        hello[RECORD_HEADER] = 2; // a ServerHello type
        assert_eq!(peek(&hello), HelloPeek::Malformed);
        let mut truncated = client_hello(&[b"dot"]);
        // Claim a longer body than the extensions hold: the walk must fail cleanly.
        let len = truncated.len();
        truncated[len - 1] = 0xff;
        let _ = peek(&truncated);
    }
}
