//! Who may connect: the operator's allow and deny lists of address blocks, checked once per
//! accepted connection, before any TLS work.
//!
//! Owns the parsing of address blocks (`Cidr`), the decision (`Acl::allows`: the longest
//! matching prefix decides, deny winning an exact tie, as Unbound's access-control does) and
//! the ACL in force (`SharedAcl`, swapped whole on reload). Never runs per query, and never
//! decides what a refused client is told (the frontend closes the connection and counts it).
//!
//! The match is a scan of the client's family's entries, longest prefix first: ACLs hold tens
//! of entries and are read once per connection, so a trie would buy nothing worth its code.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use super::prefix::{mask_v4, mask_v6};

/// An address block, "10.0.0.0/8", "2001:db8::/32", or a bare address (/32, /128). Host bits
/// past the prefix are ignored (masked), as Unbound does; /33 on IPv4, garbage, an empty string
/// are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The first address of the block (host bits cleared).
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The block of `len` bits starting at `addr` (host bits cleared); `None` when `len` is
    /// past the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Cidr> {
        let addr = match addr {
            IpAddr::V4(v4) if len <= 32 => IpAddr::V4(Ipv4Addr::from_bits(mask_v4(v4.to_bits(), len))),
            IpAddr::V6(v6) if len <= 128 => IpAddr::V6(Ipv6Addr::from_bits(mask_v6(v6.to_bits(), len))),
            _ => return None,
        };
        Some(Cidr { addr, len })
    }

    /// The first address of the block.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// "ADDRESS/LENGTH" or a bare "ADDRESS"; the error is one short line naming the value and
    /// what is wrong with it.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let invalid = |why: &str| format!("invalid address block {s:?}: {why}");
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid("not an IP address"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => width,
            Some("") => return Err(invalid("no prefix length after the '/'")),
            Some(len) if !len.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(invalid("the prefix length is not a number"))
            }
            Some(len) => len.parse::<u8>().ok().filter(|&len| len <= width).ok_or_else(|| {
                invalid(if width == 32 {
                    "an IPv4 prefix length is 0 to 32"
                } else {
                    "an IPv6 prefix length is 0 to 128"
                })
            })?,
        };
        Ok(Cidr::new(addr, len).expect("the length was checked against the family"))
    }
}

/// "ADDRESS/LENGTH", host bits cleared (so it parses back to the same block).
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Who may connect. The longest prefix that matches the address decides; on an exact tie allow
/// and deny, deny wins; no match: allowed when the allow list is empty, refused otherwise. An
/// IPv4-mapped IPv6 address is its IPv4 address (so a dual-stack listener applies the IPv4
/// entries).
///
/// For the same reason an entry inside ::ffff:0:0/96 (such as "::ffff:10.0.0.0/104") is taken
/// as the IPv4 block it maps (10.0.0.0/8); an entry wider than that (such as "::/0") covers
/// IPv6 clients only.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// IPv4 entries, longest prefix first, deny before allow at equal length.
    v4: Vec<Rule>,
    /// IPv6 entries, in the same order.
    v6: Vec<Rule>,
    /// Whether there is any allow entry: if so, an address no entry matches is refused.
    has_allow: bool,
}

/// One entry: a masked address (an IPv4 one in the low 32 bits), its length, and the verdict.
#[derive(Debug, Clone, Copy)]
struct Rule {
    net: u128,
    len: u8,
    allow: bool,
}

impl Acl {
    /// The ACL of these lists (either may be empty; both empty: everyone may connect).
    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> Acl {
        let mut acl = Acl { v4: Vec::new(), v6: Vec::new(), has_allow: !allow.is_empty() };
        let entries = allow.iter().map(|c| (c, true)).chain(deny.iter().map(|c| (c, false)));
        for (cidr, allow) in entries {
            let (addr, len) = mapped_to_v4(*cidr);
            match addr {
                IpAddr::V4(v4) => acl.v4.push(Rule { net: u128::from(v4.to_bits()), len, allow }),
                IpAddr::V6(v6) => acl.v6.push(Rule { net: v6.to_bits(), len, allow }),
            }
        }
        // Longest first, and at equal length deny (false) before allow: the first match decides.
        for rules in [&mut acl.v4, &mut acl.v6] {
            rules.sort_by(|a, b| b.len.cmp(&a.len).then(a.allow.cmp(&b.allow)));
        }
        acl
    }

    /// Whether a client at `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let matched = match crate::net::canonical_ip(ip) {
            IpAddr::V4(v4) => {
                let bits = v4.to_bits();
                self.v4.iter().find(|r| u128::from(mask_v4(bits, r.len)) == r.net)
            }
            IpAddr::V6(v6) => {
                let bits = v6.to_bits();
                self.v6.iter().find(|r| mask_v6(bits, r.len) == r.net)
            }
        };
        matched.map_or(!self.has_allow, |rule| rule.allow)
    }

    /// No entries at all: everyone may connect.
    pub fn is_open(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// The address and length of an entry, one inside ::ffff:0:0/96 as the IPv4 block it maps.
fn mapped_to_v4(cidr: Cidr) -> (IpAddr, u8) {
    match cidr.addr {
        IpAddr::V6(v6) if cidr.len >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), cidr.len - 96),
            None => (cidr.addr, cidr.len),
        },
        addr => (addr, cidr.len),
    }
}

/// The ACL in force, swapped whole on reload: readers at accept take an `Arc` (a read lock held
/// only for the clone).
#[derive(Debug)]
pub struct SharedAcl {
    current: RwLock<Arc<Acl>>,
}

impl SharedAcl {
    /// `acl` in force.
    pub fn new(acl: Acl) -> SharedAcl {
        SharedAcl { current: RwLock::new(Arc::new(acl)) }
    }

    /// The ACL in force now. A connection being accepted keeps the one it got, even if a reload
    /// replaces it meanwhile.
    pub fn current(&self) -> Arc<Acl> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Puts `acl` in force for the connections accepted from now on.
    pub fn replace(&self, acl: Acl) {
        let acl = Arc::new(acl);
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(PoisonError::into_inner), acl);
        // The old one is freed here, after the lock, if no accept still holds it.
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn acl(allow: &[&str], deny: &[&str]) -> Acl {
        Acl::new(&cidrs(allow), &cidrs(deny))
    }

    fn allows(acl: &Acl, ip: &str) -> bool {
        acl.allows(ip.parse().unwrap())
    }

    #[test]
    fn an_empty_acl_is_open() {
        let open = acl(&[], &[]);
        assert!(open.is_open());
        assert!(allows(&open, "192.0.2.1") && allows(&open, "2001:db8::1") && allows(&open, "::ffff:192.0.2.1"));
        assert!(Acl::default().is_open() && Acl::default().allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn allowed_and_denied() {
        let a = acl(&["192.0.2.0/24"], &[]);
        assert!(!a.is_open());
        assert!(allows(&a, "192.0.2.200"));
        assert!(!allows(&a, "192.0.3.1"), "an allow list refuses what it does not match");
        assert!(!allows(&a, "2001:db8::1"), "of either family");

        let d = acl(&[], &["192.0.2.0/24", "2001:db8::/32"]);
        assert!(!allows(&d, "192.0.2.7") && !allows(&d, "2001:db8:1::1"));
        assert!(allows(&d, "192.0.3.1") && allows(&d, "2001:db9::1"), "no allow list: unmatched is allowed");

        let bare = acl(&["192.0.2.1", "2001:db8::1"], &[]);
        assert!(allows(&bare, "192.0.2.1") && !allows(&bare, "192.0.2.2"));
        assert!(allows(&bare, "2001:db8::1") && !allows(&bare, "2001:db8::2"));
    }

    #[test]
    fn the_longest_prefix_wins_both_ways() {
        let a = acl(&["10.1.0.0/16"], &["10.0.0.0/8"]);
        assert!(allows(&a, "10.1.2.3"));
        assert!(!allows(&a, "10.2.0.1"));
        assert!(!allows(&a, "11.0.0.1"), "unmatched, and there is an allow list");

        let b = acl(&["10.0.0.0/8"], &["10.1.2.0/24"]);
        assert!(!allows(&b, "10.1.2.3"));
        assert!(allows(&b, "10.1.3.3") && allows(&b, "10.200.0.1"));

        // Three levels, given in no particular order.
        let c = acl(&["10.1.2.3", "10.0.0.0/8"], &["10.1.0.0/16", "0.0.0.0/0"]);
        assert!(allows(&c, "10.1.2.3") && !allows(&c, "10.1.2.4") && allows(&c, "10.9.9.9"));
        assert!(!allows(&c, "192.0.2.1"));

        let v6 = acl(&["2001:db8:1::/48"], &["2001:db8::/32"]);
        assert!(allows(&v6, "2001:db8:1::53") && !allows(&v6, "2001:db8:2::53"));
    }

    #[test]
    fn on_an_exact_tie_deny_wins() {
        assert!(!allows(&acl(&["10.0.0.0/8"], &["10.0.0.0/8"]), "10.1.1.1"));
        // Equal once the host bits are masked.
        assert!(!allows(&acl(&["10.0.0.0/8"], &["10.9.9.9/8"]), "10.1.1.1"));
        assert!(!allows(&acl(&["2001:db8::/32", "2001:db8::1"], &["2001:db8::1/128"]), "2001:db8::1"));
        // The same length on another block is no tie.
        assert!(allows(&acl(&["10.0.0.0/8"], &["11.0.0.0/8"]), "10.1.1.1"));
    }

    #[test]
    fn a_mapped_address_is_its_ipv4_address() {
        let a = acl(&["192.0.2.0/24"], &["192.0.2.66"]);
        assert!(allows(&a, "::ffff:192.0.2.1"));
        assert!(!allows(&a, "::ffff:192.0.2.66"));
        assert!(!allows(&a, "::ffff:198.51.100.1"));
        // Deny all IPv6 does not catch IPv4 clients on a dual-stack socket.
        let d = acl(&[], &["::/0"]);
        assert!(allows(&d, "::ffff:192.0.2.1") && !allows(&d, "2001:db8::1"));
        // An entry written as a mapped block is the IPv4 block.
        let m = acl(&[], &["::ffff:10.0.0.0/104"]);
        assert!(!allows(&m, "10.1.2.3") && !allows(&m, "::ffff:10.1.2.3") && allows(&m, "11.0.0.1"));
        let host = acl(&["::ffff:192.0.2.1"], &[]);
        assert!(allows(&host, "192.0.2.1") && !allows(&host, "192.0.2.2"));
        // IPv4-compatible ::a.b.c.d is IPv6.
        assert!(allows(&acl(&[], &["192.0.2.0/24"]), "::192.0.2.1"));
    }

    #[test]
    fn parse_errors_name_the_value() {
        for (bad, why) in [
            ("10.0.0.0/33", "0 to 32"),
            ("2001:db8::/129", "0 to 128"),
            ("10.0.0.0/", "no prefix length"),
            ("fish", "not an IP address"),
            ("10.0.0.0/8/8", "not a number"),
            ("", "empty"),
            ("10.0.0.0/+8", "not a number"),
            ("10.0.0.0 /8", "not an IP address"),
            ("/8", "not an IP address"),
            ("10.0.0/8", "not an IP address"),
            ("10.0.0.0/999", "0 to 32"),
        ] {
            let error = bad.parse::<Cidr>().unwrap_err();
            assert!(error.contains(&format!("{bad:?}")) && error.contains(why), "{bad:?}: {error}");
            assert!(!error.contains('\n'));
        }
    }

    #[test]
    fn host_bits_are_masked_and_display_round_trips() {
        for (given, shown) in [
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.0.2.1", "192.0.2.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("255.255.255.255/1", "128.0.0.0/1"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.1.2.3/104", "::ffff:10.0.0.0/104"),
        ] {
            let cidr: Cidr = given.parse().unwrap();
            assert_eq!(cidr.to_string(), shown, "{given}");
            assert_eq!(shown.parse::<Cidr>().unwrap(), cidr, "{shown} parses back");
        }
        let cidr: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!((cidr.addr(), cidr.prefix_len()), ("10.0.0.0".parse().unwrap(), 8));
        assert_eq!(Cidr::new("10.0.0.0".parse().unwrap(), 33), None);
        assert_eq!(Cidr::new("::".parse().unwrap(), 129), None);
    }

    #[test]
    fn a_replaced_acl_applies_to_new_readers_only() {
        let shared = SharedAcl::new(acl(&[], &[]));
        let before = shared.current();
        shared.replace(acl(&[], &["192.0.2.0/24"]));
        assert!(allows(&before, "192.0.2.1"), "a reader keeps the ACL it took");
        assert!(!allows(&shared.current(), "192.0.2.1"));
        assert!(Arc::ptr_eq(&shared.current(), &shared.current()));
    }
}
