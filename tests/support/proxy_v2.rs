//! PROXY protocol version 2 headers (the binary form of haproxy's proxy-protocol.txt, section
//! 2.2), as a test client hands them to a backend that expects them (Unbound with
//! `proxy-protocol-port:`), and as a test reads them back off what dotgate sent.
//!
//! Owns [`header`] (encode one PROXY command header: UDP or TCP, IPv4 or IPv6, no TLVs) and
//! [`parse`] (decode one from the front of a datagram or stream).
//!
//! Layout: the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`; `0x21` (version 2, command PROXY);
//! the family/transport byte (`0x11` TCP over IPv4, `0x12` UDP over IPv4, `0x21` TCP over
//! IPv6, `0x22` UDP over IPv6); a big-endian u16 length of what follows; then source address,
//! destination address, source port, destination port (4+4+2+2 = 12 bytes for IPv4, 16+16+2+2
//! = 36 for IPv6). Both addresses are of one family: [`header`] writes an IPv4 address beside
//! an IPv6 one as IPv4-mapped (`::ffff:a.b.c.d`), so a header can claim `::1` while the
//! destination is 127.0.0.1.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The 12 bytes every PROXY v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Which transport the header says the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A PROXY v2 header (command PROXY, no TLVs) saying a client at `src` talked to `dst` over
/// `transport`. IPv4 when both addresses are IPv4, otherwise IPv6 (an IPv4 address mapped).
pub fn header(transport: Transport, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.push(0x21);
    let mut body = Vec::with_capacity(36);
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x10
        }
        (s, d) => {
            body.extend_from_slice(&v6(s).octets());
            body.extend_from_slice(&v6(d).octets());
            0x20
        }
    };
    h.push(
        family
            | match transport {
                Transport::Tcp => 0x01,
                Transport::Udp => 0x02,
            },
    );
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// `header(transport, src, dst)` followed by `payload`: one proxied datagram.
pub fn datagram(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut d = header(Transport::Udp, src, dst);
    d.extend_from_slice(payload);
    d
}

/// A decoded PROXY v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `None` for the LOCAL command (or an unspecified family): no addresses.
    pub transport: Option<Transport>,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// Header length in bytes (16 + the length field): the payload starts here.
    pub len: usize,
}

/// Decodes the PROXY v2 header at the front of `bytes`: `Err` (why) if there is none or it is
/// malformed. TLVs after the addresses are skipped (counted in `len`).
pub fn parse(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 16 {
        return Err(format!("{} bytes: shorter than a PROXY v2 header", bytes.len()));
    }
    if bytes[..12] != SIGNATURE {
        return Err(format!("no PROXY v2 signature: starts {:02x?}", &bytes[..12]));
    }
    let (ver_cmd, fam) = (bytes[12], bytes[13]);
    if ver_cmd >> 4 != 2 {
        return Err(format!("version {} (byte 12 is {ver_cmd:#04x})", ver_cmd >> 4));
    }
    let len = 16 + u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
    if bytes.len() < len {
        return Err(format!("header says {len} bytes, only {} there", bytes.len()));
    }
    let local = Header { transport: None, src: None, dst: None, len };
    match ver_cmd & 0x0F {
        0 => return Ok(local),
        1 => {}
        c => return Err(format!("unknown command {c}")),
    }
    let transport = match fam & 0x0F {
        1 => Transport::Tcp,
        2 => Transport::Udp,
        _ => return Ok(local),
    };
    let a = &bytes[16..len];
    let (src, dst): (IpAddr, IpAddr) = match fam >> 4 {
        1 if a.len() >= 12 => {
            (<[u8; 4]>::try_from(&a[0..4]).unwrap().into(), <[u8; 4]>::try_from(&a[4..8]).unwrap().into())
        }
        2 if a.len() >= 36 => {
            (<[u8; 16]>::try_from(&a[0..16]).unwrap().into(), <[u8; 16]>::try_from(&a[16..32]).unwrap().into())
        }
        1 | 2 => return Err(format!("family {fam:#04x} with only {} address bytes", a.len())),
        _ => return Ok(local),
    };
    let ports = if fam >> 4 == 1 { &a[8..12] } else { &a[32..36] };
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Ok(Header {
        transport: Some(transport),
        src: Some(SocketAddr::new(src, sport)),
        dst: Some(SocketAddr::new(dst, dport)),
        len,
    })
}
