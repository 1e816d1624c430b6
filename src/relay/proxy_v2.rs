//! The PROXY protocol version 2 header (HAProxy's proxy-protocol.txt §2.2), binary form: what
//! dotgate puts in front of a relayed query so that a backend that takes it sees the client's
//! real address and port, and the address the client reached dotgate at.
//!
//! Owns the header's bytes only: the 12-byte signature, version 2 with the PROXY command, the
//! address family and transport, the length, and the addresses (source address, destination
//! address, source port, destination port). It writes no TLVs. It never does I/O, never panics
//! on any input, and never allocates: callers pass the buffer to append to. `decode` is for
//! tests and fuzzing; the served path only writes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The protocol's signature, the first 12 bytes of every version 2 header.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Longest header written (IPv6: 16 + 36).
pub const MAX_HEADER_LEN: usize = 52;

/// The fixed part: signature, version and command, family and transport, length.
const FIXED_LEN: usize = 16;
/// Version 2 in the high nibble, command PROXY in the low one.
const VERSION_2_PROXY: u8 = 0x21;
/// Version 2, command LOCAL (the connection is the proxy's own; decoded, never written).
const VERSION_2_LOCAL: u8 = 0x20;
/// Address family in the high nibble of the 14th byte.
const FAMILY_INET: u8 = 0x10;
const FAMILY_INET6: u8 = 0x20;
/// Transport in its low nibble.
const TRANSPORT_STREAM: u8 = 0x01;
const TRANSPORT_DGRAM: u8 = 0x02;
/// Length of the address block: two addresses and two ports.
const INET_ADDRESSES_LEN: usize = 4 + 4 + 2 + 2;
const INET6_ADDRESSES_LEN: usize = 16 + 16 + 2 + 2;

/// The transport the client used to reach dotgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP (DNS over TLS): written as STREAM.
    Stream,
    /// UDP: written as DGRAM.
    Datagram,
}

impl Transport {
    fn nibble(self) -> u8 {
        match self {
            Transport::Stream => TRANSPORT_STREAM,
            Transport::Datagram => TRANSPORT_DGRAM,
        }
    }
}

/// `ip` as IPv6: an IPv4 address as its IPv4-mapped form.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Appends the header for a client at `src` that reached dotgate at `dst`.
///
/// IPv4-mapped IPv6 addresses are written as IPv4; when the two addresses are then of different
/// families, both are written as IPv6 (IPv4 as IPv4-mapped). Appends 28 bytes (IPv4) or
/// [`MAX_HEADER_LEN`] (IPv6).
pub fn write_header(out: &mut Vec<u8>, transport: Transport, src: SocketAddr, dst: SocketAddr) {
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_2_PROXY);
    // An IPv4-mapped address (what a dual-stack `[::]` listener reports for an IPv4 client) is
    // the IPv4 address it stands for.
    match (crate::net::canonical_ip(src.ip()), crate::net::canonical_ip(dst.ip())) {
        (IpAddr::V4(src_ip), IpAddr::V4(dst_ip)) => {
            out.push(FAMILY_INET | transport.nibble());
            out.extend_from_slice(&(INET_ADDRESSES_LEN as u16).to_be_bytes());
            out.extend_from_slice(&src_ip.octets());
            out.extend_from_slice(&dst_ip.octets());
        }
        (src_ip, dst_ip) => {
            out.push(FAMILY_INET6 | transport.nibble());
            out.extend_from_slice(&(INET6_ADDRESSES_LEN as u16).to_be_bytes());
            out.extend_from_slice(&as_v6(src_ip).octets());
            out.extend_from_slice(&as_v6(dst_ip).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
}

/// Decodes a header at the front of `buf`: (transport, src, dst, header length). For tests and
/// fuzzing; never on the served path.
///
/// Strict: the signature, version 2, command PROXY or LOCAL, family and transport one of
/// TCP4, UDP4, TCP6, UDP6, a length that holds the addresses, and the whole header (TLVs
/// included, which are skipped) inside `buf`; `None` otherwise. For LOCAL the addresses are
/// returned as they are written (a receiver ignores them). Never panics.
pub fn decode(buf: &[u8]) -> Option<(Transport, SocketAddr, SocketAddr, usize)> {
    let fixed = buf.get(..FIXED_LEN)?;
    if fixed[..12] != SIGNATURE || !matches!(fixed[12], VERSION_2_PROXY | VERSION_2_LOCAL) {
        return None;
    }
    let transport = match fixed[13] & 0x0f {
        TRANSPORT_STREAM => Transport::Stream,
        TRANSPORT_DGRAM => Transport::Datagram,
        _ => return None,
    };
    let length = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
    let header_len = FIXED_LEN + length;
    let addresses = buf.get(FIXED_LEN..header_len)?;
    let (src_ip, dst_ip, ports): (IpAddr, IpAddr, &[u8]) = match fixed[13] & 0xf0 {
        FAMILY_INET if length >= INET_ADDRESSES_LEN => {
            let octets = |at: usize| [addresses[at], addresses[at + 1], addresses[at + 2], addresses[at + 3]];
            (Ipv4Addr::from(octets(0)).into(), Ipv4Addr::from(octets(4)).into(), &addresses[8..12])
        }
        FAMILY_INET6 if length >= INET6_ADDRESSES_LEN => {
            let mut src = [0; 16];
            let mut dst = [0; 16];
            src.copy_from_slice(&addresses[..16]);
            dst.copy_from_slice(&addresses[16..32]);
            (Ipv6Addr::from(src).into(), Ipv6Addr::from(dst).into(), &addresses[32..36])
        }
        _ => return None,
    };
    let src_port = u16::from_be_bytes([ports[0], ports[1]]);
    let dst_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some((transport, SocketAddr::new(src_ip, src_port), SocketAddr::new(dst_ip, dst_port), header_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(transport: Transport, src: &str, dst: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, transport, src.parse().unwrap(), dst.parse().unwrap());
        out
    }

    #[test]
    fn ipv4_udp_header_is_byte_for_byte_the_spec() {
        let out = header(Transport::Datagram, "192.0.2.10:53000", "198.51.100.1:853");
        #[rustfmt::skip]
        let expected = [
            // Signature: \r \n \r \n \0 \r \n Q U I T \n
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
            0x21,                   // version 2, command PROXY
            0x12,                   // AF_INET, DGRAM (UDP4)
            0x00, 0x0c,             // 12 bytes of addresses follow
            192, 0, 2, 10,          // source address
            198, 51, 100, 1,        // destination address
            0xcf, 0x08,             // source port 53000
            0x03, 0x55,             // destination port 853
        ];
        assert_eq!(out, expected);
        assert_eq!(out.len(), 28);
    }

    #[test]
    fn ipv6_tcp_header_is_byte_for_byte_the_spec() {
        let out = header(Transport::Stream, "[2001:db8::1]:40000", "[2001:db8:ff::53]:853");
        #[rustfmt::skip]
        let expected = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
            0x21,                   // version 2, command PROXY
            0x21,                   // AF_INET6, STREAM (TCP6)
            0x00, 0x24,             // 36 bytes of addresses follow
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,          // source
            0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,       // destination
            0x9c, 0x40,             // source port 40000
            0x03, 0x55,             // destination port 853
        ];
        assert_eq!(out, expected);
        assert_eq!(out.len(), MAX_HEADER_LEN);
    }

    #[test]
    fn the_other_two_family_bytes() {
        assert_eq!(header(Transport::Stream, "192.0.2.1:1", "192.0.2.2:2")[13], 0x11, "TCP4");
        assert_eq!(header(Transport::Datagram, "[::1]:1", "[::2]:2")[13], 0x22, "UDP6");
    }

    #[test]
    fn mapped_addresses_are_written_as_ipv4() {
        let mapped = header(Transport::Stream, "[::ffff:192.0.2.10]:53000", "[::ffff:198.51.100.1]:853");
        assert_eq!(mapped, header(Transport::Stream, "192.0.2.10:53000", "198.51.100.1:853"));
        // One mapped, one plain IPv4: both IPv4 too.
        let half = header(Transport::Stream, "[::ffff:192.0.2.10]:53000", "198.51.100.1:853");
        assert_eq!(half, mapped);
    }

    #[test]
    fn mixed_families_are_both_written_as_ipv6() {
        // A mapped client on an IPv6 address (after canonicalising: IPv4 and IPv6).
        let out = header(Transport::Stream, "[::ffff:192.0.2.10]:53000", "[2001:db8::53]:853");
        assert_eq!(out[13], 0x21);
        assert_eq!(&out[16..32], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10]);
        let (_, src, dst, len) = decode(&out).unwrap();
        assert_eq!(src, "[::ffff:192.0.2.10]:53000".parse().unwrap());
        assert_eq!(dst, "[2001:db8::53]:853".parse().unwrap());
        assert_eq!(len, MAX_HEADER_LEN);
        // A plain IPv4 client and an IPv6 destination.
        let plain = header(Transport::Stream, "192.0.2.10:53000", "[2001:db8::53]:853");
        assert_eq!(plain, out);
    }

    #[test]
    fn decode_is_strict() {
        let good = header(Transport::Datagram, "192.0.2.10:53000", "198.51.100.1:853");
        assert!(decode(&good).is_some());
        for cut in 0..good.len() {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        let with = |at: usize, b: u8| {
            let mut h = good.clone();
            h[at] = b;
            decode(&h)
        };
        assert_eq!(with(0, b'P'), None, "signature");
        assert_eq!(with(11, b'\r'), None, "signature");
        assert_eq!(with(12, 0x11), None, "version 1");
        assert_eq!(with(12, 0x22), None, "unknown command");
        assert_eq!(with(13, 0x31), None, "AF_UNIX");
        assert_eq!(with(13, 0x00), None, "UNSPEC");
        assert_eq!(with(13, 0x13), None, "unknown transport");
        assert_eq!(with(15, 11), None, "length too small for IPv4 addresses");
        assert_eq!(with(13, 0x22), None, "12 bytes cannot hold IPv6 addresses");
        let local = with(12, 0x20).expect("LOCAL is accepted");
        assert_eq!(local.3, 28);
        // TLVs after the addresses are skipped and counted in the header length.
        let mut tlv = good.clone();
        tlv[15] = 12 + 4;
        tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]); // PP2_TYPE_NOOP, one byte
        tlv.extend_from_slice(b"query");
        let (_, _, _, len) = decode(&tlv).unwrap();
        assert_eq!(len, 32);
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
        ]
    }

    fn transport() -> impl Strategy<Value = Transport> {
        prop_oneof![Just(Transport::Stream), Just(Transport::Datagram)]
    }

    /// What the header says, written from the rules apart from `write_header`: mapped
    /// addresses as IPv4, then both as IPv6 when the families differ.
    fn expected(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
        let (s, d) = (src.ip().to_canonical(), dst.ip().to_canonical());
        let (s, d) = if s.is_ipv4() == d.is_ipv4() {
            (s, d)
        } else {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6,
            };
            (v6(s), v6(d))
        };
        (SocketAddr::new(s, src.port()), SocketAddr::new(d, dst.port()))
    }

    proptest! {
        #[test]
        fn decode_reads_what_write_header_wrote(
            transport in transport(),
            src_ip in ip(),
            dst_ip in ip(),
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            before in prop::collection::vec(any::<u8>(), 0..4),
            after in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let (src, dst) = (SocketAddr::new(src_ip, src_port), SocketAddr::new(dst_ip, dst_port));
            let mut out = before.clone();
            write_header(&mut out, transport, src, dst);
            prop_assert_eq!(&out[..before.len()], &before[..]);
            let written = out.len() - before.len();
            prop_assert!(written <= MAX_HEADER_LEN);
            out.extend_from_slice(&after);
            let (want_src, want_dst) = expected(src, dst);
            prop_assert_eq!(decode(&out[before.len()..]), Some((transport, want_src, want_dst, written)));
            if src_ip == src_ip.to_canonical() && dst_ip == dst_ip.to_canonical() && src_ip.is_ipv4() == dst_ip.is_ipv4() {
                prop_assert_eq!((want_src, want_dst), (src, dst), "plain same-family addresses come back as they went");
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80), keep_front in 0..17usize) {
            let _ = decode(&bytes);
            // And on inputs that get past the signature and the version.
            let mut h = header(Transport::Stream, "[2001:db8::1]:1", "192.0.2.1:2");
            let keep = keep_front.min(h.len());
            h.truncate(keep);
            h.extend_from_slice(&bytes);
            if let Some((_, _, _, len)) = decode(&h) {
                prop_assert!(len <= h.len());
            }
        }
    }
}
