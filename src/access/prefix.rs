//! How client addresses group into one client for the rate limits: an IPv4 address counts as its
//! /V4 block and an IPv6 address as its /V6 block (`--client-prefix`, "32:64" by default,
//! since one IPv6 host usually holds a whole /64). An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
//! an IPv4 client on a dual-stack socket) is its IPv4 address.
//!
//! Owns the masking of addresses (shared with `acl`) and the `ClientKey` the rate table is keyed
//! by. Never keeps state, never allocates: `ClientPrefix::key` runs once per query.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// How client addresses group into one client for the rate limits: IPv4 and IPv6 prefix lengths
/// ("32:64" default; "24:56" counts a whole /24 or /56 as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPrefix {
    /// IPv4 prefix length, 1 to 32.
    pub v4: u8,
    /// IPv6 prefix length, 1 to 128.
    pub v6: u8,
}

/// One client: its address masked to the prefix, and the family. Small and Copy, hashable.
///
/// Held as one 128-bit number: an IPv6 client is its masked address, an IPv4 client its masked
/// address inside ::ffff:0:0/96. The two never meet: a mapped address is keyed as IPv4, and
/// masking any other IPv6 address cannot land in ::ffff:0:0/96 (below /96 it clears the ffff,
/// from /96 on it keeps the upper 96 bits, which were not ::ffff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    bits: u128,
}

/// The upper 96 bits of an IPv4-mapped IPv6 address (::ffff:0:0/96), shifted down.
const MAPPED_V4: u128 = 0xffff;

impl ClientPrefix {
    /// Every address its own client on IPv4, a /64 on IPv6.
    pub const DEFAULT: ClientPrefix = ClientPrefix { v4: 32, v6: 64 };

    /// "V4:V6", 1..=32 and 1..=128; the error is a short reason (it becomes one config-error line).
    pub fn parse(s: &str) -> Result<ClientPrefix, &'static str> {
        let (v4, v6) = s.split_once(':').ok_or("expected two prefix lengths as V4:V6, such as 32:64")?;
        let v4 = parse_length(v4, 32).ok_or("the IPv4 prefix length (before the colon) must be 1 to 32")?;
        let v6 = parse_length(v6, 128).ok_or("the IPv6 prefix length (after the colon) must be 1 to 128")?;
        Ok(ClientPrefix { v4, v6 })
    }

    /// The client an address belongs to (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn key(&self, ip: IpAddr) -> ClientKey {
        match crate::net::canonical_ip(ip) {
            IpAddr::V4(v4) => ClientKey { bits: MAPPED_V4 << 32 | u128::from(mask_v4(v4.to_bits(), self.v4)) },
            IpAddr::V6(v6) => ClientKey { bits: mask_v6(v6.to_bits(), self.v6) },
        }
    }
}

impl Default for ClientPrefix {
    fn default() -> ClientPrefix {
        ClientPrefix::DEFAULT
    }
}

impl FromStr for ClientPrefix {
    type Err = &'static str;

    /// Same as `ClientPrefix::parse`.
    fn from_str(s: &str) -> Result<ClientPrefix, &'static str> {
        ClientPrefix::parse(s)
    }
}

/// "V4:V6", as `parse` reads it.
impl fmt::Display for ClientPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.v4, self.v6)
    }
}

impl ClientKey {
    /// Whether the client is an IPv4 block (an IPv4-mapped address included).
    pub fn is_v4(&self) -> bool {
        self.bits >> 32 == MAPPED_V4
    }

    /// The client's masked address (the first address of its block), for logs.
    pub fn addr(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from_bits(self.bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from_bits(self.bits))
        }
    }
}

/// A prefix length of at most `max`, and at least 1: digits only (no sign, no spaces).
fn parse_length(s: &str, max: u8) -> Option<u8> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u8>().ok().filter(|&len| (1..=max).contains(&len))
}

/// `bits` with everything past the first `len` bits cleared (`len` 0 clears all, past 32 keeps
/// all).
pub(super) fn mask_v4(bits: u32, len: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

/// `bits` with everything past the first `len` bits cleared (`len` 0 clears all, past 128
/// keeps all).
pub(super) fn mask_v6(bits: u128, len: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_reads_both_lengths_and_refuses_the_rest() {
        assert_eq!(ClientPrefix::parse("32:64"), Ok(ClientPrefix::DEFAULT));
        assert_eq!(ClientPrefix::parse("24:56"), Ok(ClientPrefix { v4: 24, v6: 56 }));
        assert_eq!(ClientPrefix::parse("1:128"), Ok(ClientPrefix { v4: 1, v6: 128 }));
        for bad in ["", "32", "32:", ":64", "0:64", "33:64", "32:0", "32:129", "32:64:1", "+32:64", " 32:64", "a:b"] {
            assert!(ClientPrefix::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ClientPrefix::parse("33:64").unwrap_err().contains("IPv4"));
        assert!(ClientPrefix::parse("32:300").unwrap_err().contains("IPv6"));
        assert_eq!("24:56".parse::<ClientPrefix>().unwrap().to_string(), "24:56");
        assert_eq!(ClientPrefix::default(), ClientPrefix::DEFAULT);
    }

    #[test]
    fn addresses_in_one_block_are_one_client() {
        let p = ClientPrefix::parse("24:56").unwrap();
        assert_eq!(p.key(ip("192.0.2.1")), p.key(ip("192.0.2.254")));
        assert_ne!(p.key(ip("192.0.2.1")), p.key(ip("192.0.3.1")));
        assert_eq!(p.key(ip("2001:db8:0:ff::1")), p.key(ip("2001:db8:0:1::2")));
        assert_ne!(p.key(ip("2001:db8:0:100::1")), p.key(ip("2001:db8::1")));
        assert_eq!(p.key(ip("192.0.2.77")).addr(), ip("192.0.2.0"));
        assert_eq!(p.key(ip("2001:db8:0:ff::1")).addr(), ip("2001:db8::"));

        let d = ClientPrefix::DEFAULT;
        assert_ne!(d.key(ip("192.0.2.1")), d.key(ip("192.0.2.2")));
        assert_eq!(d.key(ip("2001:db8::1")), d.key(ip("2001:db8::ffff:1")));
    }

    #[test]
    fn a_mapped_address_is_its_ipv4_address_and_families_never_meet() {
        let d = ClientPrefix::DEFAULT;
        let v4 = d.key(ip("192.0.2.1"));
        assert_eq!(d.key(ip("::ffff:192.0.2.1")), v4);
        assert!(v4.is_v4() && v4.addr() == ip("192.0.2.1"));
        // IPv4-compatible (deprecated) addresses and ::1 stay IPv6.
        assert!(!d.key(ip("::192.0.2.1")).is_v4());
        let full = ClientPrefix { v4: 32, v6: 128 };
        assert_ne!(full.key(ip("::192.0.2.1")), full.key(ip("192.0.2.1")));
        assert!(!full.key(ip("::1")).is_v4());
        // An IPv6 address next to the mapped block, at every length, is never an IPv4 key.
        for len in 0..=128 {
            let p = ClientPrefix { v4: 32, v6: len };
            for addr in ["::fffe:c000:201", "::1:ffff:c000:201", "0:0:0:1:0:ffff:c000:201", "ffff::"] {
                assert!(!p.key(ip(addr)).is_v4(), "{addr} /{len}");
            }
        }
    }

    #[test]
    fn masks_cover_the_edges() {
        assert_eq!(mask_v4(0xc000_02ff, 0), 0);
        assert_eq!(mask_v4(0xc000_02ff, 24), 0xc000_0200);
        assert_eq!(mask_v4(0xc000_02ff, 32), 0xc000_02ff);
        assert_eq!(mask_v4(0xc000_02ff, 200), 0xc000_02ff);
        assert_eq!(mask_v6(u128::MAX, 0), 0);
        assert_eq!(mask_v6(u128::MAX, 1), 1 << 127);
        assert_eq!(mask_v6(u128::MAX, 128), u128::MAX);
        // Lengths out of range (the fields are public) neither panic nor misgroup.
        let odd = ClientPrefix { v4: 0, v6: 0 };
        assert_eq!(odd.key(ip("192.0.2.1")), odd.key(ip("198.51.100.1")));
        assert!(odd.key(ip("192.0.2.1")).is_v4() && !odd.key(ip("2001:db8::1")).is_v4());
    }
}
