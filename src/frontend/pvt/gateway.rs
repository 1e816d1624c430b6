//! What each message to the gateway gets (docs/pvt.md, "Queries"): the clear answers at the
//! apexes, the refusals, and for a signed encrypted query the plain question relayed to the
//! primary through `Relay::submit`, whose answer comes back to a [`SealedAnswer`] that seals
//! every record to the user's key. UPDATEs go to `update`.
//!
//! Owns: a worker's gateway state (the KEY and zone caches, the RNG, scratch buffers) and the
//! answers' layout. Never: answers a query below a user apex without a verified SIG(0) from that
//! user's key; lets one of the primary's NS, NSEC, glue or plain records out below a user apex;
//! answers a message twice or not at all (every path delivers exactly once to its `ReplyTo`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::keys::{KeyPair, UserPublic, TYPE_KEY};
use super::primary::{Primary, CLASS_IN, TYPE_SOA};
use super::sig0;
use super::wire::{self, ALG_HPKE_AES256GCM};
use super::{seal, PvtStats};
use crate::dns::{self, rcode, HEADER_LEN};
use crate::message;
use crate::relay::{Relay, ReplyTo};

pub const TYPE_NS: u16 = 2;
const TYPE_OPT: u16 = 41;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const OPCODE_QUERY: u8 = 0;
const OPCODE_UPDATE: u8 = 5;
/// Longest a worker keeps a KEY, or the apex records of a `_pvt` zone.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a worker keeps what it read with `ttl`: the TTL, but never over [`CACHE_TTL`], so a
/// KEY replaced behind the gateway's back (`dotgate pvt admin rekey`) is used at most a minute.
fn cache_lifetime(ttl: u32) -> Duration {
    CACHE_TTL.min(Duration::from_secs(u64::from(ttl)))
}

/// Longest a worker remembers that a user has no zone.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Users a worker's KEY cache holds before it starts afresh.
const CACHE_ENTRIES: usize = 100_000;
/// The UDP payload the gateway offers in its OPT record.
pub const UDP_PAYLOAD: u16 = 1232;

/// What all workers share: the settings and the provider's key.
pub struct PvtServer {
    /// Each `_pvt.<domain>` zone, lowercased wire form.
    pub zones: Vec<Vec<u8>>,
    pub provider: KeyPair,
    /// Who may register (`--pvt-enrollment`), read at each registration.
    pub enrollment: std::path::PathBuf,
    pub primary: Primary,
    pub type_encr: u16,
    /// `--pvt-rsa-compat`: user keys of algorithm 8 are usable (else a zone with one has no key).
    pub rsa_compat: bool,
    /// Bumped whenever an UPDATE changes a KEY: workers drop their KEY caches.
    pub key_generation: AtomicU64,
}

impl PvtServer {
    /// The configured zone `name` (wire form) is in or below: its index and where it starts.
    pub fn zone_of(&self, name: &[u8]) -> Option<(usize, usize)> {
        self.zones.iter().enumerate().find_map(|(index, zone)| wire::zone_suffix(name, zone).map(|at| (index, at)))
    }

    /// Whether a message is the gateway's: a QUERY or UPDATE whose one question or zone is in a
    /// `--pvt-zone` (so that the DoT listener hands it over).
    pub fn claims(&self, msg: &[u8]) -> bool {
        msg.len() >= HEADER_LEN
            && !dns::is_response(msg)
            && matches!(dns::opcode(msg), OPCODE_QUERY | OPCODE_UPDATE)
            && dns::qdcount(msg) == 1
            && dns::question_end(msg).is_some_and(|end| self.zone_of(&msg[HEADER_LEN..end - 4]).is_some())
    }
}

/// A `_pvt` zone's apex records, as a worker caches them.
#[derive(Debug, Clone)]
pub struct ZoneApex {
    /// SOA RDATA, names uncompressed.
    pub soa: Vec<u8>,
    pub soa_ttl: u32,
    /// NS RDATAs (names, uncompressed).
    pub ns: Vec<Vec<u8>>,
    pub ns_ttl: u32,
    /// The provider's KEY RDATA as published.
    pub key: Vec<Vec<u8>>,
    pub key_ttl: u32,
}

/// A user's KEY as the primary holds it, or that it holds none.
#[derive(Debug, Clone)]
pub enum UserKey {
    Known { key: UserPublic, rdata: Vec<u8>, ttl: u32 },
    Unknown,
}

/// A cache entry and when it was read from the primary.
type Cached<T> = (T, Instant);
/// Each user zone (lowercased wire form) with its KEY.
type UserCache = HashMap<Vec<u8>, Cached<UserKey>>;

/// What a message needs fetched before it can be answered.
enum Need {
    Apex(usize),
    User(Vec<u8>),
}

/// Where a name is, seen from the gateway.
struct Place {
    zone: usize,
    /// Offset of the `_pvt` zone in the name.
    zone_at: usize,
    /// Offset of the user's label (the user apex), when the name is below the `_pvt` apex.
    user_at: Option<usize>,
}

/// A worker's gateway.
pub struct PvtContext {
    pub server: Arc<PvtServer>,
    pub relay: Rc<Relay>,
    pub stats: Arc<PvtStats>,
    /// The KEY generation the cache was filled under, and each user zone's KEY with when it
    /// was read.
    users: RefCell<(u64, UserCache)>,
    apexes: RefCell<Vec<Option<Cached<Rc<ZoneApex>>>>>,
    pub(super) rng: RefCell<StdRng>,
    scratch: RefCell<Vec<u8>>,
    out: RefCell<Vec<u8>>,
}

/// How an answer travels back: its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Stream,
}

impl PvtContext {
    pub fn new(server: Arc<PvtServer>, relay: Rc<Relay>, stats: Arc<PvtStats>) -> PvtContext {
        let zones = server.zones.len();
        PvtContext {
            server,
            relay,
            stats,
            users: RefCell::new((0, HashMap::new())),
            apexes: RefCell::new(vec![None; zones]),
            rng: RefCell::new(StdRng::from_os_rng()),
            scratch: RefCell::new(Vec::with_capacity(1024)),
            out: RefCell::new(Vec::with_capacity(1024)),
        }
    }

    /// Answers `msg` through `reply` (with `tag`), exactly once, now or when what it needs has
    /// been fetched.
    pub fn handle(self: &Rc<Self>, msg: &[u8], reply: Rc<dyn ReplyTo>, tag: u8, transport: Transport) {
        if msg.len() < HEADER_LEN || dns::is_response(msg) {
            // Not a request: nothing to answer (DoT never hands these over).
            return;
        }
        if dns::opcode(msg) == OPCODE_UPDATE {
            tokio::task::spawn_local(super::update::handle(self.clone(), msg.to_vec(), reply, tag));
            return;
        }
        match self.query(msg, &reply, tag, transport) {
            Ok(()) => {}
            Err(need) => {
                let (ctx, msg) = (self.clone(), msg.to_vec());
                tokio::task::spawn_local(async move {
                    // At most the `_pvt` apex and the user's KEY are missing.
                    let mut need = need;
                    for _ in 0..2 {
                        if let Err(why) = ctx.fetch(need).await {
                            tracing::warn!(error = %why, "the private-subdomain primary did not answer");
                            break;
                        }
                        match ctx.query(&msg, &reply, tag, transport) {
                            Ok(()) => return,
                            Err(next) => need = next,
                        }
                    }
                    ctx.stats.refused("primary_failed");
                    ctx.local(&msg, &reply, tag, rcode::SERVFAIL);
                });
            }
        }
    }

    /// Fills the cache entry `need` names from the primary.
    async fn fetch(&self, need: Need) -> Result<(), String> {
        match need {
            Need::Apex(zone) => {
                let apex = self.server.zones[zone].clone();
                let apex_records = fetch_apex(&self.server.primary, &apex).await?;
                self.apexes.borrow_mut()[zone] = Some((Rc::new(apex_records), Instant::now()));
            }
            Need::User(user_zone) => {
                let key = fetch_user_key(&self.server.primary, &user_zone, self.server.rsa_compat).await?;
                let mut users = self.users.borrow_mut();
                if users.1.len() >= CACHE_ENTRIES {
                    users.1.clear();
                }
                users.1.insert(user_zone, (key, Instant::now()));
            }
        }
        Ok(())
    }

    fn apex(&self, zone: usize) -> Result<Rc<ZoneApex>, Need> {
        match &self.apexes.borrow()[zone] {
            Some((apex, at)) if at.elapsed() < cache_lifetime(apex.soa_ttl) => Ok(apex.clone()),
            _ => Err(Need::Apex(zone)),
        }
    }

    /// The user's KEY from this worker's cache; `lower` is the user zone, lowercased.
    fn user(&self, lower: &[u8]) -> Result<UserKey, Need> {
        let mut users = self.users.borrow_mut();
        let generation = self.server.key_generation.load(Relaxed);
        if users.0 != generation {
            *users = (generation, HashMap::new());
        }
        match users.1.get(lower) {
            Some((UserKey::Unknown, at)) if at.elapsed() < NEGATIVE_TTL => Ok(UserKey::Unknown),
            Some((known @ UserKey::Known { ttl, .. }, at)) if at.elapsed() < cache_lifetime(*ttl) => Ok(known.clone()),
            _ => Err(Need::User(lower.to_vec())),
        }
    }

    /// Where `name` is: `None` outside every `--pvt-zone`.
    fn place(&self, name: &[u8]) -> Option<Place> {
        let (zone, zone_at) = self.server.zone_of(name)?;
        if zone_at == 0 {
            return Some(Place { zone, zone_at, user_at: None });
        }
        let mut at = 0;
        loop {
            let next = at + 1 + usize::from(name[at]);
            if next == zone_at {
                return Some(Place { zone, zone_at, user_at: Some(at) });
            }
            at = next;
        }
    }

    /// Decides a QUERY from what this worker has cached; `Err` names what must be fetched first.
    fn query(self: &Rc<Self>, msg: &[u8], reply: &Rc<dyn ReplyTo>, tag: u8, transport: Transport) -> Result<(), Need> {
        let Some(question_end) = (dns::qdcount(msg) == 1).then(|| dns::question_end(msg)).flatten() else {
            self.refuse(msg, reply, tag, rcode::FORMERR, "formerr_question");
            return Ok(());
        };
        let name = &msg[HEADER_LEN..question_end - 4];
        let qtype = u16::from_be_bytes([msg[question_end - 4], msg[question_end - 3]]);
        let Some(place) = self.place(name) else {
            self.refuse(msg, reply, tag, rcode::REFUSED, "not_authoritative");
            return Ok(());
        };
        if matches!(qtype, TYPE_AXFR | TYPE_IXFR) {
            self.refuse(msg, reply, tag, rcode::REFUSED, "transfer");
            return Ok(());
        }
        let apex = self.apex(place.zone)?;
        let Some(user_at) = place.user_at else {
            // The `_pvt` apex: its SOA, NS and KEY in clear.
            let records: Vec<(&[u8], u32)> = match qtype {
                TYPE_SOA => vec![(&apex.soa, apex.soa_ttl)],
                TYPE_NS => apex.ns.iter().map(|ns| (&ns[..], apex.ns_ttl)).collect(),
                TYPE_KEY => apex.key.iter().map(|key| (&key[..], apex.key_ttl)).collect(),
                _ => {
                    self.refuse(msg, reply, tag, rcode::REFUSED, "clear_type");
                    return Ok(());
                }
            };
            self.answer_clear(msg, question_end, reply, tag, qtype, &records);
            return Ok(());
        };
        let user_zone = &name[user_at..];
        // Lowercased once: the cache key, the plain question's suffix and the seals' AAD.
        let lower_zone = user_zone.to_ascii_lowercase();
        let user = match self.user(&lower_zone)? {
            UserKey::Unknown => {
                self.stats.refused("unknown_user");
                self.negative(msg, question_end, reply, tag, rcode::NXDOMAIN, &name[place.zone_at..], &apex);
                return Ok(());
            }
            UserKey::Known { key, rdata, ttl } => (key, rdata, ttl),
        };
        if user_at == 0 {
            // The user apex: SOA and NS made from the `_pvt` ones, KEY as registered.
            let records: Vec<(&[u8], u32)> = match qtype {
                TYPE_SOA => vec![(&apex.soa, apex.soa_ttl)],
                TYPE_NS => apex.ns.iter().map(|ns| (&ns[..], apex.ns_ttl)).collect(),
                TYPE_KEY => vec![(&user.1, user.2)],
                _ => {
                    self.stats.refused("clear_type");
                    self.negative(msg, question_end, reply, tag, rcode::REFUSED, user_zone, &apex);
                    return Ok(());
                }
            };
            self.answer_clear(msg, question_end, reply, tag, qtype, &records);
            return Ok(());
        }
        if qtype != self.server.type_encr {
            self.stats.refused("not_encr");
            self.negative(msg, question_end, reply, tag, rcode::REFUSED, user_zone, &apex);
            return Ok(());
        }
        let verified = sig0::find(msg)
            .and_then(|sig| sig0::verify(msg, &sig, user_zone, &user.0, sig0::now(), &mut self.scratch.borrow_mut()));
        if let Err(why) = verified {
            self.stats.refused(why.reason());
            // §4.1: the question as received, REFUSED, no answers, the user's SOA in clear.
            self.negative(msg, question_end, reply, tag, rcode::REFUSED, user_zone, &apex);
            return Ok(());
        }
        let opened = wire::encrypted_labels(name, user_at)
            .ok()
            .and_then(|ciphertext| open_user_name(&self.server.provider, &user.0, user_zone, &ciphertext).ok());
        let Some((plain_type, relative)) = opened else {
            self.stats.refused("formerr_name");
            self.local(msg, reply, tag, rcode::FORMERR);
            return Ok(());
        };
        if matches!(plain_type, TYPE_AXFR | TYPE_IXFR) {
            self.stats.refused("transfer");
            self.negative(msg, question_end, reply, tag, rcode::REFUSED, user_zone, &apex);
            return Ok(());
        }
        let qclass = u16::from_be_bytes([msg[question_end - 2], msg[question_end - 1]]);
        let mut plain = Vec::with_capacity(HEADER_LEN + relative.len() + user_zone.len() + 4 + 11);
        plain.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        plain.extend_from_slice(&relative);
        plain.extend_from_slice(&lower_zone);
        plain.extend_from_slice(&plain_type.to_be_bytes());
        plain.extend_from_slice(&qclass.to_be_bytes());
        let plain_question_end = plain.len();
        // EDNS with a large payload, so that the primary answers whole over UDP where it can.
        plain.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        self.stats.count(&self.stats.queries_encrypted);
        let sealed = SealedAnswer {
            ctx: self.clone(),
            reply: reply.clone(),
            tag,
            head: [msg[0], msg[1], msg[2], msg[3]],
            question: msg[HEADER_LEN..question_end].to_vec(),
            user: user.0,
            user_zone: lower_zone,
            zone: place.zone,
            max_size: self.max_size(msg, question_end, transport),
            edns: edns_payload(msg, question_end).is_some(),
        };
        self.relay.submit(&plain, plain_question_end, Rc::new(sealed), 0, None);
        Ok(())
    }

    /// The largest answer the client takes.
    fn max_size(&self, msg: &[u8], question_end: usize, transport: Transport) -> usize {
        match transport {
            Transport::Stream => usize::from(u16::MAX),
            Transport::Udp => {
                usize::from(edns_payload(msg, question_end).map_or(512, |size| size.clamp(512, UDP_PAYLOAD)))
            }
        }
    }

    /// A local answer with no records (the question echoed when there is one).
    pub(super) fn local(&self, msg: &[u8], reply: &Rc<dyn ReplyTo>, tag: u8, rcode: u8) {
        let mut out = self.out.borrow_mut();
        out.clear();
        dns::write_local_answer(msg, dns::id(msg), rcode, &mut out);
        if msg.len() >= HEADER_LEN {
            // Authoritative; RA never set (the gateway does not recurse).
            out[2] |= 0x04;
            out[3] &= 0x7f;
        }
        reply.deliver(&out, tag);
    }

    fn refuse(&self, msg: &[u8], reply: &Rc<dyn ReplyTo>, tag: u8, rcode: u8, reason: &'static str) {
        self.stats.refused(reason);
        self.local(msg, reply, tag, rcode);
    }

    /// Header, the question as received, and `ancount` etc. for what follows.
    fn write_head(&self, msg: &[u8], question_end: usize, rcode: u8, counts: [u16; 3], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&msg[..2]);
        out.push(0x80 | (msg[2] & 0x79) | 0x04);
        out.push(rcode & 0x0f);
        out.extend_from_slice(&1u16.to_be_bytes());
        for count in counts {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&msg[HEADER_LEN..question_end]);
    }

    /// An answer with no records but `owner`'s SOA (made from the `_pvt` one) in Authority.
    #[allow(clippy::too_many_arguments)]
    fn negative(
        &self,
        msg: &[u8],
        question_end: usize,
        reply: &Rc<dyn ReplyTo>,
        tag: u8,
        rcode: u8,
        owner: &[u8],
        apex: &ZoneApex,
    ) {
        let mut out = self.out.borrow_mut();
        self.write_head(msg, question_end, rcode, [0, 1, 0], &mut out);
        push_record(&mut out, owner, TYPE_SOA, CLASS_IN, apex.soa_ttl.min(soa_minimum(&apex.soa)), &apex.soa);
        reply.deliver(&out, tag);
    }

    /// A clear answer owned by the question's name (a pointer to it).
    fn answer_clear(
        &self,
        msg: &[u8],
        question_end: usize,
        reply: &Rc<dyn ReplyTo>,
        tag: u8,
        qtype: u16,
        records: &[(&[u8], u32)],
    ) {
        self.stats.count(&self.stats.queries_clear);
        let mut out = self.out.borrow_mut();
        self.write_head(msg, question_end, rcode::NOERROR, [records.len() as u16, 0, 0], &mut out);
        for (rdata, ttl) in records {
            push_record(&mut out, &[0xc0, 0x0c], qtype, CLASS_IN, *ttl, rdata);
        }
        reply.deliver(&out, tag);
    }
}

/// Appends one resource record.
pub fn push_record(out: &mut Vec<u8>, owner: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The SOA RDATA's MINIMUM field (the negative TTL, RFC 2308).
fn soa_minimum(soa: &[u8]) -> u32 {
    soa.len().checked_sub(4).map_or(0, |at| u32::from_be_bytes([soa[at], soa[at + 1], soa[at + 2], soa[at + 3]]))
}

/// The UDP payload size of the query's OPT record, if it has one.
pub fn edns_payload(msg: &[u8], question_end: usize) -> Option<u16> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let mut pos = question_end;
    for index in 0..count(6) + count(8) + count(10) {
        let end = dns::skip_name(msg, pos)?;
        let fixed = msg.get(end..end + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        if rtype == TYPE_OPT && index >= count(6) + count(8) {
            return Some(u16::from_be_bytes([fixed[2], fixed[3]]));
        }
        pos = end + 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    }
    None
}

/// RDATA with the names in it uncompressed, for the types whose RDATA names may be compressed
/// (RFC 3597 §4: RFC 1035's, the obsolete MD, MF, MB, MG, MR and MINFO too) and SRV, which some
/// servers compress anyway. Other types' RDATA is copied as it is. `None` if a name does not parse.
pub fn uncompressed_rdata(msg: &[u8], rtype: u16, (start, end): (usize, usize)) -> Option<Vec<u8>> {
    // (octets before the names, names); what follows the names is copied.
    let (prefix, names) = match rtype {
        2..=5 | 7..=9 | 12 | 39 => (0, 1), // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        14 => (0, 2),                      // MINFO
        15 | 18 | 21 | 36 => (2, 1),       // MX, AFSDB, RT, KX
        33 => (6, 1),                      // SRV
        6 => (0, 2),                       // SOA, then 20 octets
        _ => return Some(msg[start..end].to_vec()),
    };
    let mut out = msg.get(start..start + prefix)?.to_vec();
    let mut pos = start + prefix;
    for _ in 0..names {
        let (name, next) = message::read_name(msg, pos)?;
        out.extend_from_slice(&name);
        pos = next;
    }
    if pos > end {
        return None;
    }
    out.extend_from_slice(&msg[pos..end]);
    Some(out)
}

/// The `_pvt` apex's SOA, NS and KEY, asked of the primary now.
pub async fn fetch_apex(primary: &Primary, apex: &[u8]) -> Result<ZoneApex, String> {
    let (soa, soa_ttl) = primary.rrset(apex, TYPE_SOA).await?;
    let soa = soa.into_iter().next().ok_or("the primary has no SOA at the _pvt apex")?;
    let (ns, ns_ttl) = primary.rrset(apex, TYPE_NS).await?;
    let (key, key_ttl) = primary.rrset(apex, TYPE_KEY).await?;
    Ok(ZoneApex { soa, soa_ttl, ns, ns_ttl, key, key_ttl })
}

/// A user's KEY, asked of the primary now: the first usable one (Ed25519, or with
/// `rsa_compat` RSASHA256 too).
pub async fn fetch_user_key(primary: &Primary, user_zone: &[u8], rsa_compat: bool) -> Result<UserKey, String> {
    let (keys, ttl) = primary.rrset(user_zone, TYPE_KEY).await?;
    Ok(keys
        .into_iter()
        .find_map(|rdata| {
            UserPublic::from_key_rdata(&rdata, rsa_compat).ok().map(|key| UserKey::Known { key, rdata, ttl })
        })
        .unwrap_or(UserKey::Unknown))
}

/// Opens an encrypted name the user `user` sent: Auth mode from an Ed25519 user, Base mode from
/// an RSA user (whose SIG(0) vouches for it).
pub fn open_user_name(
    provider: &KeyPair,
    user: &UserPublic,
    zone: &[u8],
    ciphertext: &[u8],
) -> Result<(u16, Vec<u8>), seal::OpenError> {
    match user {
        UserPublic::Ed25519(key) => seal::open_name(provider, key, zone, ciphertext),
        UserPublic::Rsa(_) => seal::open_name_base(provider, zone, ciphertext),
    }
}

/// Where the primary's answer to a decrypted query goes: sealed to the user, then to the client.
struct SealedAnswer {
    ctx: Rc<PvtContext>,
    reply: Rc<dyn ReplyTo>,
    tag: u8,
    /// The query's ID and flags.
    head: [u8; 4],
    /// The encrypted question, as received.
    question: Vec<u8>,
    user: UserPublic,
    /// Lowercased wire form.
    user_zone: Vec<u8>,
    zone: usize,
    max_size: usize,
    edns: bool,
}

impl SealedAnswer {
    /// The client's answer to the primary's `answer`.
    fn seal(&self, answer: &[u8], out: &mut Vec<u8>) {
        let ctx = &self.ctx;
        let sealing = AnswerSealing {
            provider: &ctx.server.provider,
            user: &self.user,
            user_zone: &self.user_zone,
            head: self.head,
            question: &self.question,
            type_encr: ctx.server.type_encr,
            edns: self.edns,
            max_size: self.max_size,
        };
        let fallback_soa = || {
            let apexes = ctx.apexes.borrow();
            let (apex, _) = apexes[self.zone].as_ref()?;
            Some((apex.soa_ttl.min(soa_minimum(&apex.soa)), apex.soa.clone()))
        };
        if sealing.seal(&mut *ctx.rng.borrow_mut(), answer, fallback_soa, out) {
            ctx.stats.count(&ctx.stats.truncated);
        }
    }
}

/// What sealing the answer to one encrypted query takes (apart from the worker, so that the
/// test vectors can run it with a seeded RNG).
pub struct AnswerSealing<'a> {
    pub provider: &'a KeyPair,
    /// The user: Ed25519 gets algorithm 1, RSA algorithm 3.
    pub user: &'a UserPublic,
    /// Lowercased wire form.
    pub user_zone: &'a [u8],
    /// The query's ID and flags.
    pub head: [u8; 4],
    /// The encrypted question, as received.
    pub question: &'a [u8],
    pub type_encr: u16,
    /// Whether the query had an OPT record (the answer gets one).
    pub edns: bool,
    /// The largest answer the client takes.
    pub max_size: usize,
}

impl AnswerSealing<'_> {
    /// Writes into `out` the client's answer to the primary's `answer`: the query's ID, the
    /// primary's RCODE, the encrypted question, every Answer record sealed to the user as an
    /// ENCR owned by the question's name, and for a negative answer the clear SOA of the user's
    /// zone (the primary's, else `fallback_soa`). Nothing else of the primary's gets through.
    /// Returns whether it had to be truncated to `max_size` (TC=1, no records).
    pub fn seal(
        &self,
        rng: &mut dyn rand::RngCore,
        answer: &[u8],
        fallback_soa: impl FnOnce() -> Option<(u32, Vec<u8>)>,
        out: &mut Vec<u8>,
    ) -> bool {
        let rcode = if answer.len() >= HEADER_LEN { dns::rcode(answer) } else { rcode::SERVFAIL };
        let parsed = message::parse(answer);
        let mut records = Vec::new();
        for record in &parsed.sections[0] {
            let Some(rdata) = uncompressed_rdata(answer, record.rtype, record.rdata) else { continue };
            let mut encr = Vec::with_capacity(rdata.len() + record.owner.len() + 64);
            match self.user {
                UserPublic::Ed25519(user) => seal::seal_record(
                    rng,
                    ALG_HPKE_AES256GCM,
                    self.provider,
                    user,
                    self.user_zone,
                    record.rtype,
                    &record.owner,
                    &rdata,
                    &mut encr,
                ),
                UserPublic::Rsa(user) => {
                    seal::seal_record_rsa(rng, user, self.user_zone, record.rtype, &record.owner, &rdata, &mut encr)
                }
            }
            records.push((record.class, record.ttl, encr));
        }
        let soa = if records.is_empty() && matches!(rcode, rcode::NOERROR | rcode::NXDOMAIN) {
            parsed.sections[1]
                .iter()
                .find(|r| r.rtype == TYPE_SOA)
                .and_then(|r| Some((r.ttl, uncompressed_rdata(answer, TYPE_SOA, r.rdata)?)))
                .or_else(fallback_soa)
        } else {
            None
        };
        let write = |out: &mut Vec<u8>, whole: bool| {
            out.clear();
            out.extend_from_slice(&self.head[..2]);
            out.push(0x80 | (self.head[2] & 0x79) | 0x04 | if whole { 0 } else { 0x02 });
            out.push(rcode & 0x0f);
            let (an, ns) = if whole { (records.len(), usize::from(soa.is_some())) } else { (0, 0) };
            for count in [1, an, ns, usize::from(self.edns)] {
                out.extend_from_slice(&(count as u16).to_be_bytes());
            }
            out.extend_from_slice(self.question);
            if whole {
                for (class, ttl, encr) in &records {
                    push_record(out, &[0xc0, 0x0c], self.type_encr, *class, *ttl, encr);
                }
                if let Some((ttl, soa)) = &soa {
                    push_record(out, self.user_zone, TYPE_SOA, CLASS_IN, *ttl, soa);
                }
            }
            if self.edns {
                out.extend_from_slice(&[0, 0, 41]);
                out.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            }
        };
        write(out, true);
        if out.len() > self.max_size {
            write(out, false);
            return true;
        }
        false
    }
}

impl ReplyTo for SealedAnswer {
    fn frontend(&self) -> crate::stats::Frontend {
        crate::stats::Frontend::Pvt
    }

    fn deliver(&self, answer: &[u8], _tag: u8) {
        // The worker's answer buffer, reused; should the relay ever answer while it is lent out
        // (it does not: nothing here holds it across `Relay::submit`), a fresh one.
        let mut fresh = Vec::new();
        let mut lent = self.ctx.out.try_borrow_mut();
        let out = match lent.as_deref_mut() {
            Ok(out) => out,
            Err(_) => &mut fresh,
        };
        self.seal(answer, out);
        self.reply.deliver(out, self.tag);
    }

    fn is_closed(&self) -> bool {
        self.reply.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_key_lives_its_ttl_but_never_over_a_minute() {
        assert_eq!(cache_lifetime(3600), Duration::from_secs(60), "a KEY with TTL 3600");
        assert_eq!(cache_lifetime(60), Duration::from_secs(60));
        assert_eq!(cache_lifetime(10), Duration::from_secs(10), "a KEY with TTL 10");
        assert_eq!(cache_lifetime(0), Duration::ZERO, "TTL 0: never served from the cache");
        assert_eq!(cache_lifetime(u32::MAX), CACHE_TTL);
    }

    #[test]
    fn rdata_names_are_uncompressed_for_the_types_that_have_them() {
        // Header, then "example." at 12; an MX whose exchange points at it.
        let mut msg = vec![0; 12];
        msg.extend_from_slice(b"\x07example\x00");
        let start = msg.len();
        msg.extend_from_slice(&[0, 10, 2, b'm', b'x', 0xc0, 12]);
        let end = msg.len();
        assert_eq!(uncompressed_rdata(&msg, 15, (start, end)).unwrap(), b"\x00\x0a\x02mx\x07example\x00");
        assert_eq!(uncompressed_rdata(&msg, 1, (start, end)).unwrap(), msg[start..end].to_vec());
        assert_eq!(uncompressed_rdata(&msg, 5, (end - 1, end)), None);
    }

    #[test]
    fn the_opt_payload_is_found_in_additional_only() {
        let mut msg = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1];
        let question_end = msg.len();
        msg.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(edns_payload(&msg, question_end), Some(1232));
        msg[11] = 0;
        assert_eq!(edns_payload(&msg, question_end), None);
    }

    fn name(text: &str) -> Vec<u8> {
        crate::frontend::dnsenc::wire::name_from_text(text.as_bytes()).unwrap()
    }

    /// What BIND answers for `www.alice._pvt.example.test A` when www is a CNAME: the chain, its
    /// NS in Authority, glue in Additional.
    fn primary_answer(rcode: u8, with_records: bool) -> Vec<u8> {
        let records = u8::from(with_records) * 2;
        let mut msg = vec![0x12, 0x34, 0x84, rcode, 0, 1, 0, records, 0, 1, 0, u8::from(with_records)];
        msg.extend_from_slice(&name("www.alice._pvt.example.test."));
        msg.extend_from_slice(&[0, 1, 0, 1]);
        let www_target = name("host.alice._pvt.example.test.");
        if with_records {
            push_record(&mut msg, &[0xc0, 12], 5, CLASS_IN, 300, &www_target);
            push_record(&mut msg, &www_target, 1, CLASS_IN, 300, &[192, 0, 2, 1]);
            push_record(&mut msg, &name("_pvt.example.test."), TYPE_NS, CLASS_IN, 300, &name("ns.example.test."));
            push_record(&mut msg, &name("ns.example.test."), 1, CLASS_IN, 300, &[127, 0, 0, 1]);
        } else {
            let mut soa = name("gw.example.test.");
            soa.extend_from_slice(&name("hostmaster.example.test."));
            soa.extend_from_slice(&[0, 0, 0, 7, 0, 0, 14, 16, 0, 0, 2, 88, 0, 1, 81, 128, 0, 0, 0, 60]);
            push_record(&mut msg, &name("_pvt.example.test."), TYPE_SOA, CLASS_IN, 60, &soa);
        }
        msg
    }

    #[test]
    fn answers_carry_only_sealed_records_and_the_users_soa() {
        let (provider, user) = (KeyPair::from_seed(&[1; 32]).unwrap(), KeyPair::from_seed(&[2; 32]).unwrap());
        let zone = name("alice._pvt.example.test.");
        let question = {
            let mut q = name("question.alice._pvt.example.test.");
            q.extend_from_slice(&[0xff, 0x16, 0, 1]);
            q
        };
        let sealing = AnswerSealing {
            provider: &provider,
            user: &UserPublic::Ed25519(user.public.clone()),
            user_zone: &zone,
            head: [0xab, 0xcd, 0x00, 0x00],
            question: &question,
            type_encr: wire::DEFAULT_TYPE_ENCR,
            edns: true,
            max_size: 65535,
        };
        let mut rng = StdRng::seed_from_u64(5);
        let mut out = Vec::new();
        assert!(!sealing.seal(&mut rng, &primary_answer(0, true), || None, &mut out));
        let parsed = message::parse(&out);
        assert!(parsed.stopped.is_none());
        assert_eq!(&out[..2], &[0xab, 0xcd], "the client's ID");
        assert_eq!(&out[12..12 + question.len()], &question[..], "the question as asked");
        assert_eq!(parsed.sections[1].len(), 0, "no NS");
        assert_eq!(parsed.sections[2].iter().map(|r| r.rtype).collect::<Vec<_>>(), [41], "no glue, only OPT");
        let opened: Vec<_> = parsed.sections[0]
            .iter()
            .map(|r| {
                assert_eq!(
                    (r.rtype, r.owner.as_slice()),
                    (wire::DEFAULT_TYPE_ENCR, &name("question.alice._pvt.example.test.")[..])
                );
                seal::open_record(&user, &provider.public, &zone, &out[r.rdata.0..r.rdata.1]).unwrap()
            })
            .collect();
        assert_eq!(opened[0].rtype, 5, "the CNAME first");
        assert_eq!(opened[0].rdata, name("host.alice._pvt.example.test."), "its target uncompressed");
        assert_eq!((opened[1].rtype, opened[1].owner.clone()), (1, name("host.alice._pvt.example.test.")));
        let stranger = KeyPair::from_seed(&[3; 32]).unwrap();
        let first = &parsed.sections[0][0];
        assert!(seal::open_record(&stranger, &provider.public, &zone, &out[first.rdata.0..first.rdata.1]).is_err());

        assert!(!sealing.seal(&mut rng, &primary_answer(3, false), || None, &mut out));
        let parsed = message::parse(&out);
        assert_eq!(dns::rcode(&out), 3);
        let soa = &parsed.sections[1][0];
        assert_eq!((soa.rtype, soa.owner.as_slice(), soa.ttl), (TYPE_SOA, &zone[..], 60), "the user's SOA, clear");

        let small = AnswerSealing { max_size: 100, ..sealing };
        assert!(small.seal(&mut rng, &primary_answer(0, true), || None, &mut out));
        assert_eq!(out[2] & 0x02, 0x02, "TC");
        assert_eq!(&out[6..10], &[0, 0, 0, 0], "no records");
    }

    #[test]
    fn answers_to_an_rsa_user_are_algorithm_3() {
        let provider = KeyPair::from_seed(&[1; 32]).unwrap();
        let pair = crate::frontend::pvt::keys::tests::rsa_pair();
        let user = UserPublic::Rsa(pair.public.clone());
        let zone = name("alice._pvt.example.test.");
        let question = [name("question.alice._pvt.example.test."), vec![0xff, 0x16, 0, 1]].concat();
        let sealing = AnswerSealing {
            provider: &provider,
            user: &user,
            user_zone: &zone,
            head: [0xab, 0xcd, 0x00, 0x00],
            question: &question,
            type_encr: wire::DEFAULT_TYPE_ENCR,
            edns: false,
            max_size: 65535,
        };
        let mut out = Vec::new();
        assert!(!sealing.seal(&mut StdRng::seed_from_u64(6), &primary_answer(0, true), || None, &mut out));
        let parsed = message::parse(&out);
        let opened: Vec<_> = parsed.sections[0]
            .iter()
            .map(|r| {
                let rdata = &out[r.rdata.0..r.rdata.1];
                assert_eq!(rdata[0], wire::ALG_RSA_OAEP);
                seal::open_record_rsa(pair, &zone, rdata).unwrap()
            })
            .collect();
        assert_eq!(opened.iter().map(|r| r.rtype).collect::<Vec<_>>(), [5, 1], "the CNAME chain, sealed");
    }

    #[test]
    fn sig0_reasons_are_distinct() {
        use super::sig0::Sig0Error;
        let reasons =
            [Sig0Error::Missing, Sig0Error::Malformed, Sig0Error::WrongSigner, Sig0Error::Time, Sig0Error::Signature]
                .map(Sig0Error::reason);
        let mut unique = reasons.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), reasons.len());
    }
}
