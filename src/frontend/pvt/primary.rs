//! The gateway's own client of the primary (the BIND that holds the `_pvt` zones): TSIG-signed
//! UPDATEs, the TSIG-signed zone transfer a destroy lists the subtree with, and a KEY read fresh
//! for an UPDATE. All over TCP (an UPDATE's answer and a transfer are whole there, and nothing
//! here is per query), one connection per exchange, each with a deadline.
//!
//! TSIG is `crate::tsig`, the one implementation in dotgate (written for `dnsenc publish` and
//! tested against BIND), rather than hickory-proto's: two would be kept in step for nothing.
//! An UPDATE is put together here with [`UpdateBuilder`]: its records are raw RDATA the gateway
//! has just decrypted, which hickory would parse and re-encode for no gain.
//!
//! Never: sends anything unsigned that changes the zone, or takes an answer whose TSIG does not
//! verify.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::message;
use crate::tsig::{self, TsigKey};

pub const TYPE_SOA: u16 = 6;
pub const TYPE_ANY: u16 = 255;
pub const TYPE_AXFR: u16 = 252;
pub const CLASS_IN: u16 = 1;
pub const CLASS_NONE: u16 = 254;
pub const CLASS_ANY: u16 = 255;
const OPCODE_UPDATE: u8 = 5;
/// How long one exchange with the primary may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// An RFC 2136 UPDATE under construction: the zone, then prerequisites and updates in the order
/// added.
pub struct UpdateBuilder {
    zone: Vec<u8>,
    prereqs: (u16, Vec<u8>),
    updates: (u16, Vec<u8>),
}

fn push_record(section: &mut (u16, Vec<u8>), owner: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
    section.0 += 1;
    super::gateway::push_record(&mut section.1, owner, rtype, class, ttl, rdata);
}

impl UpdateBuilder {
    /// An UPDATE of `zone` (wire form).
    pub fn new(zone: &[u8]) -> UpdateBuilder {
        UpdateBuilder { zone: zone.to_vec(), prereqs: (0, Vec::new()), updates: (0, Vec::new()) }
    }

    /// RFC 2136 §2.4.2: the RRset `owner`/`rtype` exists with exactly these RDATAs (one here).
    pub fn require_rr(&mut self, owner: &[u8], rtype: u16, rdata: &[u8]) -> &mut Self {
        push_record(&mut self.prereqs, owner, rtype, CLASS_IN, 0, rdata);
        self
    }

    /// RFC 2136 §2.4.3: no RRset `owner`/`rtype`.
    pub fn require_no_rrset(&mut self, owner: &[u8], rtype: u16) -> &mut Self {
        push_record(&mut self.prereqs, owner, rtype, CLASS_NONE, 0, &[]);
        self
    }

    /// An update record as RFC 2136 §2.5 has it: class IN adds, ANY deletes an RRset (or with
    /// type ANY every RRset of the name), NONE deletes one RR.
    pub fn update(&mut self, owner: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> &mut Self {
        push_record(&mut self.updates, owner, rtype, class, ttl, rdata);
        self
    }

    /// Updates so far.
    pub fn update_count(&self) -> u16 {
        self.updates.0
    }

    /// The message, with ID `id`.
    pub fn finish(&self, id: u16) -> Vec<u8> {
        let mut msg = Vec::with_capacity(12 + self.zone.len() + 4 + self.prereqs.1.len() + self.updates.1.len());
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(&[OPCODE_UPDATE << 3, 0]);
        for count in [1, self.prereqs.0, self.updates.0, 0] {
            msg.extend_from_slice(&count.to_be_bytes());
        }
        msg.extend_from_slice(&self.zone);
        msg.extend_from_slice(&TYPE_SOA.to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        msg.extend_from_slice(&self.prereqs.1);
        msg.extend_from_slice(&self.updates.1);
        msg
    }
}

/// The primary and the key it is updated with.
pub struct Primary {
    pub addr: SocketAddr,
    pub tsig: TsigKey,
}

async fn send(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}

async fn receive(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Primary {
    async fn connect(&self) -> Result<TcpStream, String> {
        match tokio::time::timeout(TIMEOUT, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("cannot reach the primary {}: {e}", self.addr)),
            Err(_) => Err(format!("the primary {} did not accept within {TIMEOUT:?}", self.addr)),
        }
    }

    /// Sends `update` signed and returns the primary's RCODE, once its TSIG is checked.
    pub async fn update(&self, update: &UpdateBuilder) -> Result<u8, String> {
        let mut msg = update.finish(rand::random());
        let mac = tsig::sign(&self.tsig, &mut msg, unix_now());
        let exchange = async {
            let mut stream = self.connect().await?;
            send(&mut stream, &msg).await.map_err(|e| format!("sending the UPDATE: {e}"))?;
            receive(&mut stream).await.map_err(|e| format!("reading the UPDATE's answer: {e}"))
        };
        let answer = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer from the primary within {TIMEOUT:?}"))??;
        if answer.len() < 12 || answer[..2] != msg[..2] {
            return Err("the primary's answer is not for the UPDATE".into());
        }
        tsig::verify_response(&self.tsig, &mac, &answer)?;
        Ok(crate::dns::rcode(&answer))
    }

    /// The owner names (wire form, as stored) of every record at or below `apex` in `zone`, by
    /// a TSIG-signed AXFR of `zone`. The first message's TSIG is checked; the others come on
    /// that connection (RFC 8945 §5.3.1 lets a server sign only every hundredth).
    pub async fn names_below(&self, zone: &[u8], apex: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut msg = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg[..2].copy_from_slice(&rand::random::<u16>().to_be_bytes());
        msg.extend_from_slice(zone);
        msg.extend_from_slice(&TYPE_AXFR.to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        let mac = tsig::sign(&self.tsig, &mut msg, unix_now());
        let transfer = async {
            let mut stream = self.connect().await?;
            send(&mut stream, &msg).await.map_err(|e| format!("sending the AXFR: {e}"))?;
            let mut names: Vec<Vec<u8>> = Vec::new();
            let mut soas = 0;
            let mut first = true;
            while soas < 2 {
                let answer = receive(&mut stream).await.map_err(|e| format!("reading the AXFR: {e}"))?;
                if first {
                    tsig::verify_response(&self.tsig, &mac, &answer)?;
                    first = false;
                }
                if crate::dns::rcode(&answer) != 0 {
                    return Err(format!("the primary refused the AXFR (RCODE {})", crate::dns::rcode(&answer)));
                }
                let parsed = message::parse(&answer);
                if let Some(why) = parsed.stopped {
                    return Err(format!("an AXFR message does not parse: {why}"));
                }
                for record in &parsed.sections[0] {
                    if record.rtype == TYPE_SOA {
                        soas += 1;
                    }
                    let owner = record.owner.to_ascii_lowercase();
                    if crate::frontend::dnsenc::dnssec::is_at_or_below(&owner, apex) && !names.contains(&owner) {
                        names.push(owner);
                    }
                }
            }
            Ok(names)
        };
        tokio::time::timeout(TIMEOUT * 6, transfer).await.map_err(|_| "the AXFR took longer than 30 s".to_owned())?
    }

    /// The RDATAs of `owner`'s `rtype` RRset, asked over TCP now (not from any cache), with the
    /// RRset's TTL; empty when there is none.
    pub async fn rrset(&self, owner: &[u8], rtype: u16) -> Result<(Vec<Vec<u8>>, u32), String> {
        let mut msg = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg[..2].copy_from_slice(&rand::random::<u16>().to_be_bytes());
        msg.extend_from_slice(owner);
        msg.extend_from_slice(&rtype.to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        let exchange = async {
            let mut stream = self.connect().await?;
            send(&mut stream, &msg).await.map_err(|e| format!("asking the primary: {e}"))?;
            receive(&mut stream).await.map_err(|e| format!("reading the primary's answer: {e}"))
        };
        let answer = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer from the primary within {TIMEOUT:?}"))??;
        if answer.len() < 12
            || answer[..2] != msg[..2]
            || !crate::dns::answers_question(&answer, &msg[crate::dns::HEADER_LEN..])
        {
            return Err("the primary's answer is not for the question".into());
        }
        let parsed = message::parse(&answer);
        let mut ttl = u32::MAX;
        let rdatas = parsed.sections[0]
            .iter()
            .filter(|r| r.rtype == rtype && r.owner.eq_ignore_ascii_case(owner))
            .map(|r| {
                ttl = ttl.min(r.ttl);
                answer[r.rdata.0..r.rdata.1].to_vec()
            })
            .collect();
        Ok((rdatas, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_has_its_sections_in_order() {
        let zone = b"\x04_pvt\x04test\0";
        let mut update = UpdateBuilder::new(zone);
        update.update(b"\x01a\x04_pvt\x04test\0", 1, CLASS_IN, 300, &[192, 0, 2, 1]);
        update.require_no_rrset(b"\x01a\x04_pvt\x04test\0", 25);
        let msg = update.finish(7);
        assert_eq!(&msg[..12], &[0, 7, 0x28, 0, 0, 1, 0, 1, 0, 1, 0, 0]);
        let parsed = message::parse(&msg);
        assert!(parsed.stopped.is_none());
        assert_eq!(parsed.sections[0][0].class, CLASS_NONE, "the prerequisite comes first");
        assert_eq!(parsed.sections[1][0].rtype, 1);
    }
}
