//! `dotgate dnsenc publish`: makes the NSK RRset at the reverse name of each DNSENC listen
//! address equal to the configured keys, with one TSIG-signed dynamic UPDATE (RFC 2136) to the
//! zone's primary (BIND), whose `dnssec-policy` signs it. Unpublishing a key is publishing
//! without it: the RRset is replaced whole, so a rotation is "configure, publish" each step.
//!
//! Refuses, before sending anything: a name that is the zone's apex (§2.1: never at an apex) or
//! outside the zone, an unspecified listen address (0.0.0.0 has no reverse name: give
//! `--address`). Trusts the server's answer only when its TSIG MAC verifies.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

use super::dnssec::{self, CLASS_IN};
use super::exchange::{self, Traffic};
use super::keys::ServerKey;
use super::print;
use super::tools::Report;
use super::trust::reverse_name;
use super::wire::Nsk;
use crate::config::{ConfigError, DnsencPublish};
use crate::dns;
use crate::tsig;

const OPCODE_UPDATE: u8 = 5;
const TYPE_SOA: u16 = 6;
const CLASS_ANY: u16 = 255;

/// The names to publish at: the reverse name of each address, each below `zone` and not its
/// apex.
pub fn names(addresses: &[IpAddr], zone: &[u8]) -> Result<Vec<Vec<u8>>, ConfigError> {
    let zone = dnssec::lowercase_name(zone);
    let mut names = Vec::new();
    for &ip in addresses {
        if ip.is_unspecified() {
            return Err(ConfigError::Cli(format!(
                "the listen address {ip} has no reverse name: give the address clients reach with --address"
            )));
        }
        let name = reverse_name(ip);
        let shown = dns::display_name(&name);
        if name == zone {
            return Err(ConfigError::Cli(format!(
                "{shown} is the apex of --zone: §2.1 forbids an NSK at a zone apex, so use the zone above it"
            )));
        }
        if !dnssec::is_at_or_below(&name, &zone) {
            return Err(ConfigError::Cli(format!("{shown} ({ip}) is not in --zone {}", dns::display_name(&zone))));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The UPDATE: for each name, delete its NSK RRset, then add each key's NSK (RFC 2136 §2.5).
pub fn update_message(id: u16, zone: &[u8], names: &[Vec<u8>], nsks: &[Nsk], nsk_type: u16, ttl: u32) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[OPCODE_UPDATE << 3, 0]);
    let updates = names.len() * (1 + nsks.len());
    for count in [1, 0, updates as u16, 0] {
        msg.extend_from_slice(&count.to_be_bytes());
    }
    msg.extend_from_slice(zone);
    msg.extend_from_slice(&TYPE_SOA.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    let mut rdata = Vec::new();
    for name in names {
        msg.extend_from_slice(name);
        msg.extend_from_slice(&nsk_type.to_be_bytes());
        msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
        msg.extend_from_slice(&[0; 6]);
        for nsk in nsks {
            rdata.clear();
            nsk.write_rdata(&mut rdata);
            msg.extend_from_slice(name);
            msg.extend_from_slice(&nsk_type.to_be_bytes());
            msg.extend_from_slice(&CLASS_IN.to_be_bytes());
            msg.extend_from_slice(&ttl.to_be_bytes());
            msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            msg.extend_from_slice(&rdata);
        }
    }
    msg
}

/// Reads the key files and the TSIG key, sends the UPDATE over TCP, checks the signed answer,
/// and says what was published. A file that does not load, or a name refused by [`names`], is
/// a `ConfigError` (nothing sent); an answer other than NOERROR, one whose TSIG does not
/// verify, or no answer is the report's failure.
pub fn run(request: &DnsencPublish) -> Result<Report, ConfigError> {
    let names = names(&request.addresses, &request.zone)?;
    let keys = request
        .keys
        .iter()
        .map(|path| ServerKey::load(path).map_err(|e| ConfigError::Cli(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let tsig_key = tsig::read_key_file(&request.tsig_key)?;
    let nsks: Vec<Nsk> = keys.iter().map(ServerKey::nsk).collect();
    Ok(match send(request, &names, &nsks, &tsig_key) {
        Ok(text) => Report { text, failure: None },
        Err(line) => Report { text: String::new(), failure: Some(line) },
    })
}

fn send(request: &DnsencPublish, names: &[Vec<u8>], nsks: &[Nsk], tsig_key: &tsig::TsigKey) -> Result<String, String> {
    let cp = &request.codepoints;
    let id: u16 = rand::rng().random();
    let mut msg = update_message(id, &request.zone, names, nsks, cp.nsk_type, request.ttl);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mac = tsig::sign(tsig_key, &mut msg, now);
    let accept = |answer: &[u8]| {
        (answer.len() >= dns::HEADER_LEN
            && dns::is_response(answer)
            && dns::id(answer) == id
            && dns::opcode(answer) == OPCODE_UPDATE)
            .then(|| answer.to_vec())
    };
    let mut traffic = Traffic::default();
    let answer = exchange::tcp(request.server, &msg, request.timeout, &mut traffic, accept)?;
    let zone = dns::display_name(&request.zone);
    if let Err(e) = tsig::verify_response(tsig_key, &mac, &answer) {
        let rcode = print::rcode_name(u16::from(dns::rcode(&answer)), cp);
        return Err(format!("{} answered {rcode} to the UPDATE of {zone}: {e}", request.server));
    }
    match dns::rcode(&answer) {
        0 => {}
        rcode => {
            return Err(format!(
                "{} refused the UPDATE of {zone}: {} (is the key allowed to update it, and is the zone dynamic?)",
                request.server,
                print::rcode_name(u16::from(rcode), cp)
            ))
        }
    }
    let mut text = String::new();
    for name in names {
        let shown = dns::display_name(name);
        if nsks.is_empty() {
            text.push_str(&format!("; removed every NSK record at {shown}\n"));
        }
        for nsk in nsks {
            text.push_str(&format!("{shown} {} IN NSK {}\n", request.ttl, nsk.to_presentation()));
        }
    }
    text.push_str(&format!(
        "; published in {zone} on {} (TSIG key {}, {}): the zone's signer signs it; clients see it after the old RRset's TTL\n",
        request.server,
        dns::display_name(&tsig_key.name),
        tsig_key.algorithm
    ));
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Vec<u8> {
        super::super::wire::name_from_text(text.as_bytes()).unwrap()
    }

    #[test]
    fn names_refuse_the_apex_other_zones_and_unspecified_addresses() {
        let zone = name("0.0.127.in-addr.arpa.");
        let ips: Vec<IpAddr> = vec!["127.0.0.53".parse().unwrap(), "127.0.0.53".parse().unwrap()];
        assert_eq!(names(&ips, &zone).unwrap(), vec![name("53.0.0.127.in-addr.arpa.")]);
        let apex = name("53.0.0.127.in-addr.arpa.");
        assert!(names(&ips, &apex).unwrap_err().to_string().contains("apex"));
        assert!(names(&ips, &name("1.0.127.in-addr.arpa.")).unwrap_err().to_string().contains("not in --zone"));
        let any: Vec<IpAddr> = vec!["0.0.0.0".parse().unwrap()];
        assert!(names(&any, &zone).unwrap_err().to_string().contains("--address"));
    }

    #[test]
    fn the_update_replaces_the_rrset_whole() {
        let zone = name("0.0.127.in-addr.arpa.");
        let owner = name("53.0.0.127.in-addr.arpa.");
        let nsk = Nsk {
            key_id: 7,
            priority: 20,
            reserved: 0,
            ns_name: vec![0],
            scheme: super::super::crypto::X25519_HPKE,
            key: vec![1; 32],
            response_schemes: vec![super::super::crypto::AES256_GCM],
        };
        let msg = update_message(0x1234, &zone, std::slice::from_ref(&owner), &[nsk.clone(), nsk], 65301, 300);
        let parsed = crate::message::parse(&msg);
        assert!(parsed.stopped.is_none());
        assert_eq!(dns::opcode(&msg), OPCODE_UPDATE);
        assert_eq!(parsed.questions, vec![(zone, TYPE_SOA, CLASS_IN)]);
        // The "prerequisite" count is 0: everything is in the second section.
        let update: Vec<(u16, u16, u32)> = parsed.sections[1].iter().map(|r| (r.rtype, r.class, r.ttl)).collect();
        assert_eq!(update, vec![(65301, CLASS_ANY, 0), (65301, CLASS_IN, 300), (65301, CLASS_IN, 300)]);
        assert!(parsed.sections[1].iter().all(|r| r.owner == owner));
        assert_eq!(parsed.sections[1][0].rdata.0, parsed.sections[1][0].rdata.1, "delete: no RDATA");
    }
}
