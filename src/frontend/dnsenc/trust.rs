//! The DNSENC client's trust in a server's key (§2.1, the recursive-server case): the NSK RRset
//! at the reverse name of the server's address, fetched from that server itself in the clear
//! (dotgate relays NSK, DNSKEY and DS queries in the clear for this, `--dnsenc-cleartext
//! bootstrap`), and its DNSSEC chain, from the RRSIG's signer up through DS records to a trust
//! anchor the user gives (DS or DNSKEY records in zone-file form: a BIND `K*.key` file, an
//! Unbound `root.key`, `dnssec-dsfromkey` output).
//!
//! Owns the walk: which names are asked, which keys may sign what (a DNSKEY RRset by a key the
//! anchor or the parent's validated DS names, every other RRset by a key of that validated set,
//! a DS RRset by the parent zone only), and the one-line reason when it fails. The signature
//! arithmetic is `dnssec`'s.
//!
//! Never: uses an NSK that is unsigned, bogus, expired, at a zone apex (§2.1) or whose chain
//! does not reach an anchor (there is no insecure fallback, and no fallback to cleartext);
//! follows a CNAME; trusts the AD bit (it asks with CD set and checks everything itself).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use rand::Rng;

use super::dnssec::{self, CLASS_IN, TYPE_DNSKEY, TYPE_DS, TYPE_RRSIG};
use super::exchange::{self, Traffic};
use super::wire::{self, CodePoints, Nsk};
use crate::config::ConfigError;
use crate::dns;
use crate::message;

/// Zones a chain may pass through before the walk gives up (the root, a TLD, and a few more).
const MAX_CHAIN: usize = 16;
/// The UDP size the fetch advertises (RFC 9715's safe size).
const FETCH_UDP_SIZE: u16 = 1232;

/// One trust anchor: a DS or DNSKEY record for `zone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Lowercased wire form.
    pub zone: Vec<u8>,
    pub rtype: u16,
    pub rdata: Vec<u8>,
}

/// An NSK RRset the chain proved, with what it took to prove it.
#[derive(Debug)]
pub struct Validated {
    /// The reverse name the NSKs were at (wire form).
    pub owner: Vec<u8>,
    /// The zone that signed them, then each zone up to the anchored one.
    pub chain: Vec<Vec<u8>>,
    pub nsks: Vec<Nsk>,
    /// The queries of the fetch: the client's cold start.
    pub traffic: Traffic,
}

/// The trust anchors in `path`: every DS and DNSKEY record in it (other records are an
/// error: a file of the wrong kind should not pass quietly).
pub fn read_anchors(path: &Path) -> Result<Vec<Anchor>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Cli(format!("cannot read --trust-anchor {}: {e}", path.display())))?;
    parse_anchors(&text).map_err(|e| ConfigError::Cli(format!("--trust-anchor {}: {e}", path.display())))
}

/// DS and DNSKEY records in zone-file form, each `OWNER [TTL] [CLASS] DS|DNSKEY RDATA`, the
/// owner absolute; comments, blank lines and parentheses as in a zone file.
pub fn parse_anchors(text: &str) -> Result<Vec<Anchor>, String> {
    let records = wire::tokenize_records(text)?;
    let mut anchors = Vec::new();
    for (n, tokens) in records.iter().enumerate() {
        let at = |e: String| format!("record {}: {e}", n + 1);
        let texts: Vec<String> = tokens.iter().map(|t| String::from_utf8_lossy(&t.raw).into_owned()).collect();
        let owner = texts.first().ok_or_else(|| at("empty".to_owned()))?;
        if !owner.ends_with('.') {
            return Err(at(format!("the owner {owner:?} must be an absolute name, ending with a dot")));
        }
        let zone = dnssec::lowercase_name(&wire::name_from_text(owner.as_bytes()).map_err(at)?);
        let mut rest = &texts[1..];
        // An optional TTL and class, in either order.
        while let Some(first) = rest.first() {
            let upper = first.to_ascii_uppercase();
            if upper.bytes().all(|b| b.is_ascii_digit()) || upper == "IN" {
                rest = &rest[1..];
            } else {
                break;
            }
        }
        let (rtype, fields) = rest.split_first().ok_or_else(|| at("no record type".to_owned()))?;
        let number = |i: usize, what: &str| -> Result<u32, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| at(format!("the {what} is missing or not a number")))
        };
        let joined = |from: usize| fields.get(from..).unwrap_or_default().concat();
        let mut rdata = Vec::new();
        let rtype = match rtype.to_ascii_uppercase().as_str() {
            "DS" => {
                let key_tag =
                    u16::try_from(number(0, "key tag")?).map_err(|_| at("a key tag over 65535".to_owned()))?;
                rdata.extend_from_slice(&key_tag.to_be_bytes());
                for (i, what) in [(1, "algorithm"), (2, "digest type")] {
                    rdata.push(u8::try_from(number(i, what)?).map_err(|_| at(format!("the {what} is over 255")))?);
                }
                let digest = hex(&joined(3)).ok_or_else(|| at("the digest is not hexadecimal".to_owned()))?;
                if digest.is_empty() {
                    return Err(at("the digest is missing".to_owned()));
                }
                rdata.extend_from_slice(&digest);
                TYPE_DS
            }
            "DNSKEY" => {
                let flags = u16::try_from(number(0, "flags")?).map_err(|_| at("flags over 65535".to_owned()))?;
                rdata.extend_from_slice(&flags.to_be_bytes());
                for (i, what) in [(1, "protocol"), (2, "algorithm")] {
                    rdata.push(u8::try_from(number(i, what)?).map_err(|_| at(format!("the {what} is over 255")))?);
                }
                let key = base64::engine::general_purpose::STANDARD
                    .decode(joined(3))
                    .map_err(|_| at("the public key is not base64".to_owned()))?;
                if key.is_empty() {
                    return Err(at("the public key is missing".to_owned()));
                }
                rdata.extend_from_slice(&key);
                TYPE_DNSKEY
            }
            other => return Err(at(format!("a {other} record: a trust anchor is a DS or DNSKEY record"))),
        };
        anchors.push(Anchor { zone, rtype, rdata });
    }
    if anchors.is_empty() {
        return Err("no DS or DNSKEY record in it".to_owned());
    }
    Ok(anchors)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The reverse name of `ip` (RFC 1035 §3.5, RFC 3596 §2.5), in wire form.
pub fn reverse_name(ip: IpAddr) -> Vec<u8> {
    let mut name = Vec::new();
    let mut label = |text: &str| {
        name.push(text.len() as u8);
        name.extend_from_slice(text.as_bytes());
    };
    match crate::net::canonical_ip(ip) {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                label(&octet.to_string());
            }
            label("in-addr");
        }
        IpAddr::V6(v6) => {
            for octet in v6.octets().iter().rev() {
                label(&format!("{:x}", octet & 0x0f));
                label(&format!("{:x}", octet >> 4));
            }
            label("ip6");
        }
    }
    label("arpa");
    name.push(0);
    name
}

/// An RRset as a server answered it: the RDATAs of the records of the asked type at the asked
/// name, and the RDATAs of the RRSIGs that cover them.
#[derive(Debug, Default)]
struct Answer {
    rdatas: Vec<Vec<u8>>,
    sigs: Vec<Vec<u8>>,
}

struct Walk<'a> {
    server: SocketAddr,
    timeout: Duration,
    now: u32,
    anchors: &'a [Anchor],
    cp: &'a CodePoints,
    traffic: Traffic,
    /// Validated DNSKEY RDATAs by zone.
    keys: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    chain: Vec<Vec<u8>>,
}

/// Fetches the NSK RRset for `server`'s address from `server` and validates it to `anchors` at
/// time `now` (seconds since 1970, mod 2^32). The error is one line for the user.
pub fn fetch(
    server: SocketAddr,
    anchors: &[Anchor],
    cp: &CodePoints,
    timeout: Duration,
    now: u32,
) -> Result<Validated, String> {
    let owner = reverse_name(server.ip());
    let mut walk = Walk {
        server,
        timeout,
        now,
        anchors,
        cp,
        traffic: Traffic::default(),
        keys: HashMap::new(),
        chain: Vec::new(),
    };
    let shown = dns::display_name(&owner);
    let answer = walk.ask(&owner, cp.nsk_type)?;
    if answer.rdatas.is_empty() {
        return Err(format!("{server} has no NSK record at {shown}: the server's key is not published there"));
    }
    if answer.sigs.is_empty() {
        return Err(format!("the NSK RRset at {shown} is not signed (no RRSIG): an unsigned key is never used (§2.1)"));
    }
    let signer = walk.signer_of(&owner, &answer, false)?;
    if signer == owner {
        return Err(format!("the NSK RRset at {shown} is at a zone apex, where §2.1 forbids it"));
    }
    let keys = walk.zone_keys(&signer, 0)?;
    walk.verify(&owner, cp.nsk_type, &answer, &signer, &keys)?;
    let nsks = answer
        .rdatas
        .iter()
        .map(|rdata| Nsk::parse_rdata(rdata).map_err(|e| format!("an NSK record at {shown} that does not parse: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Validated { owner, chain: walk.chain, nsks, traffic: walk.traffic })
}

/// The NSK a client uses from a validated set (§2.1): the highest priority among those whose
/// query scheme is `scheme` (or any the client knows) and that offer an answer scheme it
/// knows, ties to the lowest key id; the applicable name must be the root ("every server") or
/// match `owner` (the only name a client that was given an address knows the server by).
pub fn choose<'a>(nsks: &'a [Nsk], scheme: Option<u16>, owner: &[u8]) -> Option<&'a Nsk> {
    let owner_text = dns::display_name(owner);
    nsks.iter()
        .filter(|nsk| scheme.map_or(super::crypto::is_query_scheme(nsk.scheme), |s| s == nsk.scheme))
        .filter(|nsk| nsk.response_schemes.iter().any(|&r| super::crypto::is_response_scheme(r)))
        .filter(|nsk| nsk.ns_name == [0] || wire::star_match(&dns::display_name(&nsk.ns_name), &owner_text))
        .max_by(|a, b| a.priority.cmp(&b.priority).then(b.key_id.cmp(&a.key_id)))
}

impl Walk<'_> {
    /// Asks `server` for `name`/`rtype` in the clear (RD, CD and DO set), over UDP and again
    /// over TCP after TC=1.
    fn ask(&mut self, name: &[u8], rtype: u16) -> Result<Answer, String> {
        let id: u16 = rand::rng().random();
        let mut query = Vec::with_capacity(12 + name.len() + 4 + 11);
        // CD: the resolver hands over what it has; every check is made here. DO: with RRSIGs.
        let question_end = super::client::write_query(&mut query, id, true, name, rtype, FETCH_UDP_SIZE, true);
        let question = &query[dns::HEADER_LEN..question_end];
        let accept = |msg: &[u8]| {
            (msg.len() >= dns::HEADER_LEN
                && dns::is_response(msg)
                && dns::id(msg) == id
                && dns::answers_question(msg, question))
            .then(|| msg.to_vec())
        };
        let mut response = exchange::udp(self.server, &query, self.timeout, &mut self.traffic, accept)?;
        if dns::is_truncated(&response) {
            response = exchange::tcp(self.server, &query, self.timeout, &mut self.traffic, accept)?;
        }
        let shown = || format!("{} {}", dns::display_name(name), super::print::type_name(rtype, self.cp));
        match dns::rcode(&response) {
            0 => {}
            3 => return Ok(Answer::default()),
            rcode => {
                return Err(format!(
                    "{} answered {} to {}",
                    self.server,
                    super::print::rcode_name(u16::from(rcode), self.cp),
                    shown()
                ))
            }
        }
        let parsed = message::parse(&response);
        if let Some(why) = parsed.stopped {
            return Err(format!("the answer to {} does not parse: {why}", shown()));
        }
        let mut answer = Answer::default();
        for record in &parsed.sections[0] {
            if record.class != CLASS_IN || dnssec::lowercase_name(&record.owner) != name {
                continue;
            }
            let rdata = &response[record.rdata.0..record.rdata.1];
            if record.rtype == rtype {
                answer.rdatas.push(rdata.to_vec());
            } else if record.rtype == TYPE_RRSIG && rdata.len() >= 2 && message::be16(rdata, 0) == rtype {
                answer.sigs.push(rdata.to_vec());
            }
        }
        Ok(answer)
    }

    /// The zone whose RRSIGs cover `answer` at `owner`: the signer they name, which must be
    /// `owner` or above it, and above it when `proper` (a DS RRset is signed by the parent).
    fn signer_of(&self, owner: &[u8], answer: &Answer, proper: bool) -> Result<Vec<u8>, String> {
        let shown = dns::display_name(owner);
        let mut signers: Vec<Vec<u8>> = answer
            .sigs
            .iter()
            .filter_map(|sig| dnssec::parse_rrsig(sig))
            .map(|sig| sig.signer)
            .filter(|signer| dnssec::is_at_or_below(owner, signer) && !(proper && signer == owner))
            .collect();
        signers.sort();
        signers.dedup();
        match signers.len() {
            1 => Ok(signers.remove(0)),
            0 => Err(format!("no RRSIG at {shown} names a zone above it as its signer")),
            _ => Err(format!("the RRSIGs at {shown} name more than one signer")),
        }
    }

    /// Checks that one RRSIG in `answer` by `signer` verifies with one of `keys`.
    fn verify(&self, owner: &[u8], rtype: u16, answer: &Answer, signer: &[u8], keys: &[Vec<u8>]) -> Result<(), String> {
        let rdatas: Vec<&[u8]> = answer.rdatas.iter().map(Vec::as_slice).collect();
        let mut reason = None;
        for sig in answer.sigs.iter().filter_map(|sig| dnssec::parse_rrsig(sig)) {
            if sig.signer != signer || !dnssec::is_supported_algorithm(sig.algorithm) {
                continue;
            }
            for key in keys.iter().filter_map(|key| dnssec::parse_dnskey(key)) {
                if dnssec::key_tag(key.rdata) != sig.key_tag || key.algorithm != sig.algorithm {
                    continue;
                }
                match dnssec::verify_rrset(owner, rtype, CLASS_IN, &rdatas, &sig, &key, self.now) {
                    Ok(()) => return Ok(()),
                    Err(e) => reason = Some(e),
                }
            }
        }
        Err(format!(
            "the {} RRset at {} is bogus: {}",
            super::print::type_name(rtype, self.cp),
            dns::display_name(owner),
            reason.unwrap_or_else(|| format!(
                "no RRSIG of a supported algorithm by a validated key of {}",
                dns::display_name(signer)
            ))
        ))
    }

    /// The validated zone keys of `zone`: its DNSKEY RRset, signed by a key that a trust anchor
    /// names or that the parent's validated DS RRset names.
    fn zone_keys(&mut self, zone: &[u8], depth: usize) -> Result<Vec<Vec<u8>>, String> {
        if let Some(keys) = self.keys.get(zone) {
            return Ok(keys.clone());
        }
        let shown = dns::display_name(zone);
        if depth >= MAX_CHAIN {
            return Err(format!("the chain passes more than {MAX_CHAIN} zones before {shown}"));
        }
        self.chain.push(zone.to_vec());
        let dnskeys = self.ask(zone, TYPE_DNSKEY)?;
        if dnskeys.rdatas.is_empty() {
            return Err(format!("{shown} has no DNSKEY records: the zone is not signed"));
        }
        let anchored: Vec<&Anchor> = self.anchors.iter().filter(|a| a.zone == zone).collect();
        let entry: Vec<Vec<u8>> = if !anchored.is_empty() {
            let entry: Vec<Vec<u8>> = dnskeys
                .rdatas
                .iter()
                .filter(|key| anchored.iter().any(|anchor| anchor_names(anchor, zone, key)))
                .cloned()
                .collect();
            if entry.is_empty() {
                return Err(format!(
                    "no DNSKEY of {shown} matches the trust anchor (a rolled key, or the wrong anchor?)"
                ));
            }
            entry
        } else {
            if zone == [0] {
                return Err(format!(
                    "the chain reached the root without meeting a trust anchor (the anchors are for {})",
                    self.anchor_zones()
                ));
            }
            let ds = self.ask(zone, TYPE_DS)?;
            if ds.rdatas.is_empty() {
                return Err(format!(
                    "no DS record for {shown} at its parent: the delegation is not signed, so the chain stops (anchors: {})",
                    self.anchor_zones()
                ));
            }
            let parent = self.signer_of(zone, &ds, true)?;
            let parent_keys = self.zone_keys(&parent, depth + 1)?;
            self.verify(zone, TYPE_DS, &ds, &parent, &parent_keys)?;
            let entry: Vec<Vec<u8>> = dnskeys
                .rdatas
                .iter()
                .filter(|key| {
                    let Some(key) = dnssec::parse_dnskey(key) else { return false };
                    ds.rdatas.iter().filter_map(|d| dnssec::parse_ds(d)).any(|d| dnssec::ds_matches(zone, &key, &d))
                })
                .cloned()
                .collect();
            if entry.is_empty() {
                return Err(format!("no DNSKEY of {shown} matches a DS record at its parent"));
            }
            entry
        };
        self.verify(zone, TYPE_DNSKEY, &dnskeys, zone, &entry)?;
        let keys: Vec<Vec<u8>> = dnskeys
            .rdatas
            .into_iter()
            .filter(|key| dnssec::parse_dnskey(key).is_some_and(|k| k.flags & dnssec::FLAG_ZONE != 0))
            .collect();
        self.keys.insert(zone.to_vec(), keys.clone());
        Ok(keys)
    }

    fn anchor_zones(&self) -> String {
        let mut zones: Vec<String> = self.anchors.iter().map(|a| dns::display_name(&a.zone)).collect();
        zones.dedup();
        zones.join(", ")
    }
}

/// Whether `anchor` (for `zone`) names the DNSKEY RDATA `key`: the same key (the REVOKE flag
/// aside: a revoked key signs nothing anyway), or a DS digest of it.
fn anchor_names(anchor: &Anchor, zone: &[u8], key: &[u8]) -> bool {
    let Some(parsed) = dnssec::parse_dnskey(key) else { return false };
    match anchor.rtype {
        TYPE_DNSKEY => dnssec::parse_dnskey(&anchor.rdata).is_some_and(|a| {
            a.protocol == parsed.protocol && a.algorithm == parsed.algorithm && a.public_key == parsed.public_key
        }),
        _ => dnssec::parse_ds(&anchor.rdata).is_some_and(|ds| dnssec::ds_matches(zone, &parsed, &ds)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        let v4 = reverse_name("192.0.2.53".parse().unwrap());
        assert_eq!(dns::display_name(&v4), "53.2.0.192.in-addr.arpa.");
        let mapped = reverse_name("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(dns::display_name(&mapped), "1.0.0.127.in-addr.arpa.");
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert_eq!(dns::display_name(&v6), "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.");
    }

    #[test]
    fn anchors_parse_from_bind_key_files_ds_lines_and_unbound_root_keys() {
        let text = "; This is a key-signing key, keyid 46313, for 0.0.127.in-addr.arpa.\n\
                    ; Created: 20261204214639 (Fri Dec  4 21:46:39 2026)\n\
                    0.0.127.in-addr.arpa. 3600 IN DNSKEY 257 3 13 OYUlRcCK3BcPyAM//gXDLaL4GDrPX7fgUBEMV+iSaclIN3E0OCcu7zbY bJI9CmhKqKl9vwv8mUlQz+sdjEzy0Q==\n\
                    Example.NET. IN DS 55648 13 2 ( b4c8c1fe2e7477127b27115656ad6256f424625bf5c1\n e2770ce6d6e37df61d17 )\n";
        let anchors = parse_anchors(text).unwrap();
        assert_eq!(anchors.len(), 2);
        assert_eq!(anchors[0].rtype, TYPE_DNSKEY);
        assert_eq!(dnssec::key_tag(&anchors[0].rdata), 46313);
        assert_eq!(dns::display_name(&anchors[1].zone), "example.net.");
        assert_eq!(anchors[1].rdata.len(), 4 + 32);
        for (bad, why) in [
            ("", "no DS or DNSKEY"),
            ("example. IN A 192.0.2.1\n", "a trust anchor is a DS or DNSKEY"),
            ("example IN DS 1 13 2 00\n", "absolute"),
            ("example. DS 1 13 2 0g\n", "not hexadecimal"),
            ("example. DS 70000 13 2 00\n", "over 65535"),
            ("example. DNSKEY 257 3 13 !!!\n", "not base64"),
            ("example. DNSKEY 257 3\n", "missing"),
        ] {
            let err = parse_anchors(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    fn nsk(key_id: u32, priority: u8, scheme: u16, ns_name: &str) -> Nsk {
        Nsk {
            key_id,
            priority,
            reserved: 0,
            ns_name: wire::name_from_text(ns_name.as_bytes()).unwrap(),
            scheme,
            key: vec![],
            response_schemes: vec![super::super::crypto::AES256_GCM],
        }
    }

    #[test]
    fn the_highest_priority_usable_key_is_chosen() {
        use super::super::crypto::{RSA2048_OAEP, X25519_HPKE};
        let owner = reverse_name("127.0.0.53".parse().unwrap());
        let set = [
            nsk(9, 10, RSA2048_OAEP, "."),
            nsk(7, 20, X25519_HPKE, "."),
            nsk(5, 20, X25519_HPKE, "."),
            nsk(3, 99, 0x7777, "."),
            nsk(2, 90, X25519_HPKE, "other.example."),
            nsk(1, 50, RSA2048_OAEP, "*.127.in-addr.arpa."),
        ];
        assert_eq!(choose(&set, None, &owner).unwrap().key_id, 1, "a matching applicable name, priority 50");
        assert_eq!(choose(&set, Some(X25519_HPKE), &owner).unwrap().key_id, 5, "tie at 20: the lowest key id");
        assert_eq!(choose(&set[..1], Some(X25519_HPKE), &owner), None);
        let mut no_answer_scheme = nsk(4, 200, X25519_HPKE, ".");
        no_answer_scheme.response_schemes = vec![0x7777];
        assert_eq!(choose(&[no_answer_scheme], None, &owner), None);
    }
}
