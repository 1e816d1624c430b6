//! What a SIG(0)-signed UPDATE gets (docs/pvt.md, "Updates"): a registration at the `_pvt` apex,
//! and in a user's zone adding and removing encrypted records, a rekey, a destroy. Each is
//! checked whole, then becomes one TSIG-signed UPDATE to the primary (through `primary`), whose
//! RCODE goes back; nothing is applied when any part fails.
//!
//! Owns: the checks and the translation. Never: trusts a cached KEY (each UPDATE reads the
//! user's KEY fresh from the primary), applies a record it could not decrypt, or writes outside
//! the zone the message names.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use super::gateway::{fetch_user_key, open_user_name, PvtContext, UserKey};
use super::keys::{UserPublic, TYPE_KEY};
use super::primary::{Primary, UpdateBuilder, CLASS_ANY, CLASS_IN, CLASS_NONE, TYPE_ANY, TYPE_SOA};
use super::sig0;
use super::{seal, wire};
use crate::dns::rcode;
use crate::message::{self, Record};
use crate::relay::ReplyTo;

const TYPE_OPT: u16 = 41;
/// RCODE NOTAUTH (RFC 2136 §2.2): not authoritative for the zone named.
pub const NOTAUTH: u8 = 9;
/// RCODE NOTZONE: a record outside the zone named.
pub const NOTZONE: u8 = 10;
/// KEY flags bit 7 (RFC 2535 §3.1.2): a zone key. Must be 0 here (draft §3).
const FLAG_ZONE: u16 = 0x0100;
/// Types a user may not write: the zone's own (SOA, NS, KEY at any name), DNSSEC's (SIG, DS,
/// RRSIG, NSEC, DNSKEY, NSEC3, NSEC3PARAM, CDS, CDNSKEY), and the meta-types (OPT, TKEY, TSIG,
/// IXFR, AXFR, MAILB, MAILA; ANY only to delete). NS would cut the zone at the primary and hide
/// the records below it.
const FORBIDDEN_TYPES: [u16; 20] = [2, 6, 24, 25, 41, 43, 46, 47, 48, 50, 51, 59, 60, 249, 250, 251, 252, 253, 254, 0];

/// An UPDATE's refusal: the RCODE and the reason counted.
struct Refusal(u8, &'static str);

/// Answers an UPDATE (exactly once, through `reply`).
pub async fn handle(ctx: Rc<PvtContext>, msg: Vec<u8>, reply: Rc<dyn ReplyTo>, tag: u8) {
    let rcode = match decide(&ctx, &msg).await {
        Ok(rcode) => rcode,
        Err(Refusal(rcode, reason)) => {
            ctx.stats.refused(reason);
            rcode
        }
    };
    ctx.local(&msg, &reply, tag, rcode);
}

fn formerr(reason: &'static str) -> Refusal {
    Refusal(rcode::FORMERR, reason)
}

async fn decide(ctx: &PvtContext, msg: &[u8]) -> Result<u8, Refusal> {
    let parsed = message::parse(msg);
    if parsed.stopped.is_some() || parsed.questions.len() != 1 {
        return Err(formerr("formerr_update"));
    }
    let (zone, ztype, _) = &parsed.questions[0];
    if *ztype != TYPE_SOA {
        return Err(formerr("formerr_update"));
    }
    let zone = zone.to_ascii_lowercase();
    let (pvt, zone_at) = ctx.server.zone_of(&zone).ok_or(Refusal(NOTAUTH, "not_authoritative"))?;
    let sig = sig0::find(msg).map_err(|why| Refusal(rcode::REFUSED, why.reason()))?;
    let pvt_zone = &ctx.server.zones[pvt];
    let [prereqs, updates, additional] = &parsed.sections;
    // The SIG(0) ends the message (`sig0::find`); before it only an OPT may be there.
    if additional[..additional.len().saturating_sub(1)].iter().any(|r| r.rtype != TYPE_OPT) {
        return Err(formerr("formerr_update"));
    }
    if zone_at == 0 {
        return register(ctx, msg, &sig, pvt_zone, prereqs, updates).await;
    }
    if usize::from(zone[0]) + 1 != zone_at {
        return Err(Refusal(NOTAUTH, "not_authoritative"));
    }
    let primary = &ctx.server.primary;
    let (user, current) = match fetch_user_key(primary, &zone, ctx.server.rsa_compat).await {
        Ok(UserKey::Known { key, rdata, .. }) => (key, rdata),
        Ok(UserKey::Unknown) => return Err(Refusal(NOTAUTH, "unknown_user")),
        Err(why) => {
            tracing::warn!(error = %why, "the private-subdomain primary did not answer a KEY query");
            return Err(Refusal(rcode::SERVFAIL, "primary_failed"));
        }
    };
    let mut scratch = Vec::new();
    sig0::verify(msg, &sig, &zone, &user, sig0::now(), &mut scratch)
        .map_err(|why| Refusal(rcode::REFUSED, why.reason()))?;
    let at_apex_key = |r: &Record| r.rtype == TYPE_KEY && r.owner.eq_ignore_ascii_case(&zone);
    let changes_key = updates.iter().any(at_apex_key);
    let result = if changes_key {
        if prereqs.is_empty() && updates.len() == 1 && matches!(updates[0].class, CLASS_ANY | CLASS_NONE) {
            ctx.stats.count(&ctx.stats.updates_destroy);
            destroy(primary, pvt_zone, &zone, &current).await
        } else {
            let new_key = rekey_request(msg, prereqs, updates, &zone, &current, ctx.server.rsa_compat)?;
            ctx.stats.count(&ctx.stats.updates_rekey);
            replace_key(primary, pvt_zone, &zone, Some(&current), &new_key, updates_ttl(updates)).await
        }
    } else {
        if !prereqs.is_empty() {
            return Err(formerr("formerr_update"));
        }
        let mut update = UpdateBuilder::new(pvt_zone);
        // The KEY the SIG(0) was checked with is still the zone's when the primary applies it.
        update.require_rr(&zone, TYPE_KEY, &current);
        for record in updates {
            plain_update(ctx, msg, record, &zone, &user, &mut update)?;
        }
        ctx.stats.count(&ctx.stats.updates_records);
        primary.update(&update).await
    };
    let rcode = result.map_err(|why| {
        tracing::warn!(error = %why, "a private-subdomain UPDATE to the primary failed");
        Refusal(rcode::SERVFAIL, "primary_failed")
    })?;
    if rcode == rcode::NOERROR && changes_key {
        // Every worker of this process drops its cached KEYs (other replicas within 60 s).
        ctx.server.key_generation.fetch_add(1, Relaxed);
    }
    Ok(rcode)
}

fn updates_ttl(updates: &[Record]) -> u32 {
    updates.iter().find(|r| r.class == CLASS_IN).map_or(3600, |r| r.ttl)
}

/// §3.2: one KEY for `<user>.<_pvt zone>`, SIG(0)-signed by itself, for an enrolled user; the
/// primary adds it only if the user has no KEY (else YXRRSET).
async fn register(
    ctx: &PvtContext,
    msg: &[u8],
    sig: &sig0::Sig0<'_>,
    pvt_zone: &[u8],
    prereqs: &[Record],
    updates: &[Record],
) -> Result<u8, Refusal> {
    let [record] = updates else { return Err(formerr("formerr_update")) };
    if !prereqs.is_empty() || record.rtype != TYPE_KEY || record.class != CLASS_IN {
        return Err(formerr("formerr_update"));
    }
    let owner = record.owner.to_ascii_lowercase();
    let user_at = wire::zone_suffix(&owner, pvt_zone).ok_or(Refusal(NOTZONE, "notzone"))?;
    if user_at == 0 || usize::from(owner[0]) + 1 != user_at {
        return Err(Refusal(NOTZONE, "notzone"));
    }
    let rdata = &msg[record.rdata.0..record.rdata.1];
    let key = user_key(rdata, ctx.server.rsa_compat)?;
    let mut scratch = Vec::new();
    sig0::verify(msg, sig, &owner, &key, sig0::now(), &mut scratch)
        .map_err(|why| Refusal(rcode::REFUSED, why.reason()))?;
    let user = String::from_utf8_lossy(&owner[1..user_at]).into_owned();
    let enrolled = match super::keys::read_enrollment(&ctx.server.enrollment) {
        Ok(users) => users.contains(&user),
        Err(why) => {
            tracing::warn!(error = %why, "the enrollment file cannot be read: refusing registrations");
            false
        }
    };
    if !enrolled {
        return Err(Refusal(rcode::REFUSED, "not_enrolled"));
    }
    ctx.stats.count(&ctx.stats.updates_register);
    let mut update = UpdateBuilder::new(pvt_zone);
    update.require_no_rrset(&owner, TYPE_KEY).update(&owner, TYPE_KEY, CLASS_IN, record.ttl, rdata);
    let rcode = ctx.server.primary.update(&update).await.map_err(|why| {
        tracing::warn!(error = %why, "a registration UPDATE to the primary failed");
        Refusal(rcode::SERVFAIL, "primary_failed")
    })?;
    if rcode == rcode::NOERROR {
        ctx.server.key_generation.fetch_add(1, Relaxed);
    }
    Ok(rcode)
}

/// §3.3 rekey: the old KEY as the one prerequisite, and in the update the new KEY added (the
/// old one's deletion may be there too). Returns the new KEY's RDATA.
fn rekey_request(
    msg: &[u8],
    prereqs: &[Record],
    updates: &[Record],
    zone: &[u8],
    current: &[u8],
    rsa_compat: bool,
) -> Result<Vec<u8>, Refusal> {
    let [old] = prereqs else { return Err(formerr("formerr_update")) };
    if old.rtype != TYPE_KEY || old.class != CLASS_IN || !old.owner.eq_ignore_ascii_case(zone) {
        return Err(formerr("formerr_update"));
    }
    if msg[old.rdata.0..old.rdata.1] != *current {
        // RFC 2136 §3.2.5: a value-dependent prerequisite that does not hold.
        return Err(Refusal(8, "rekey_prerequisite"));
    }
    let mut new_key = None;
    for record in updates {
        let rdata = &msg[record.rdata.0..record.rdata.1];
        if record.rtype != TYPE_KEY || !record.owner.eq_ignore_ascii_case(zone) {
            return Err(formerr("formerr_update"));
        }
        match record.class {
            CLASS_IN if new_key.is_none() => {
                user_key(rdata, rsa_compat)?;
                new_key = Some(rdata.to_vec());
            }
            CLASS_ANY if rdata.is_empty() => {}
            CLASS_NONE if rdata == current => {}
            _ => return Err(formerr("formerr_update")),
        }
    }
    new_key.ok_or(formerr("formerr_update"))
}

/// A KEY a user may have (registered, or the new one of a rekey): Ed25519, or RSASHA256 with
/// `rsa_compat`; the Zone bit 0. Else FORMERR, `bad_key`.
fn user_key(rdata: &[u8], rsa_compat: bool) -> Result<UserPublic, Refusal> {
    let key = UserPublic::from_key_rdata(rdata, rsa_compat).map_err(|_| formerr("bad_key"))?;
    if u16::from_be_bytes([rdata[0], rdata[1]]) & FLAG_ZONE != 0 {
        return Err(formerr("bad_key"));
    }
    Ok(key)
}

/// One encrypted update record, checked and decrypted, added to `update` in the clear.
fn plain_update(
    ctx: &PvtContext,
    msg: &[u8],
    record: &Record,
    zone: &[u8],
    user: &UserPublic,
    update: &mut UpdateBuilder,
) -> Result<(), Refusal> {
    let provider = &ctx.server.provider;
    let user_at = wire::zone_suffix(&record.owner, zone).ok_or(Refusal(NOTZONE, "notzone"))?;
    if record.rtype != ctx.server.type_encr {
        return Err(formerr("formerr_record"));
    }
    let ciphertext = wire::encrypted_labels(&record.owner, user_at).map_err(|_| formerr("formerr_name"))?;
    let (rtype, relative) = open_user_name(provider, user, zone, &ciphertext).map_err(|_| formerr("formerr_name"))?;
    let sealed = &msg[record.rdata.0..record.rdata.1];
    // An RSA user has no X25519 key: its records come in Base mode, its SIG(0) vouching for them.
    let opened = match user {
        UserPublic::Ed25519(user) => seal::open_record(provider, user, zone, sealed),
        UserPublic::Rsa(_) => seal::open_record_base(provider, zone, sealed),
    }
    .map_err(|_| formerr("formerr_record"))?;
    let mut owner = relative;
    owner.extend_from_slice(zone);
    if opened.rtype != rtype || !opened.owner.eq_ignore_ascii_case(&owner) {
        return Err(formerr("formerr_record"));
    }
    if FORBIDDEN_TYPES.contains(&rtype)
        || (rtype == TYPE_ANY && record.class != CLASS_ANY)
        || rtype == ctx.server.type_encr
    {
        return Err(Refusal(rcode::REFUSED, "type_not_allowed"));
    }
    match record.class {
        CLASS_IN => update.update(&owner, rtype, CLASS_IN, record.ttl, &opened.rdata),
        CLASS_ANY if opened.rdata.is_empty() => update.update(&owner, rtype, CLASS_ANY, 0, &[]),
        CLASS_NONE => update.update(&owner, rtype, CLASS_NONE, 0, &opened.rdata),
        _ => return Err(formerr("formerr_record")),
    };
    Ok(())
}

/// Octets of an UPDATE's records past which `destroy` starts another UPDATE: the whole message,
/// TSIG included, stays under the 65,535 a DNS message may have.
const UPDATE_BUDGET: usize = 60_000;

/// §3.4: every record at or below `user_zone` deleted, on condition that its KEY is still `key`:
/// in one UPDATE when the names fit in a message, else in several, each on that condition, the
/// apex (with the KEY) in the last, so that a zone cut short by a failure keeps its KEY and can
/// be destroyed again. A 10,000-name zone takes about 10 (docs/pvt.md, "Destroy").
pub async fn destroy(primary: &Primary, pvt_zone: &[u8], user_zone: &[u8], key: &[u8]) -> Result<u8, String> {
    let mut names: Vec<Vec<u8>> =
        primary.names_below(pvt_zone, user_zone).await?.into_iter().filter(|name| name[..] != *user_zone).collect();
    // The apex, with the KEY, last (and always, even when the transfer did not list it).
    names.push(user_zone.to_vec());
    let mut batches: Vec<&[Vec<u8>]> = Vec::new();
    let (mut first, mut size) = (0, 0);
    for (index, name) in names.iter().enumerate() {
        let record = name.len() + 10;
        if size + record > UPDATE_BUDGET && index > first {
            batches.push(&names[first..index]);
            (first, size) = (index, 0);
        }
        size += record;
    }
    batches.push(&names[first..]);
    for batch in batches {
        let mut update = UpdateBuilder::new(pvt_zone);
        update.require_rr(user_zone, TYPE_KEY, key);
        for name in batch {
            update.update(name, TYPE_ANY, CLASS_ANY, 0, &[]);
        }
        let rcode = primary.update(&update).await?;
        if rcode != rcode::NOERROR {
            return Ok(rcode);
        }
    }
    Ok(rcode::NOERROR)
}

/// Puts `new` in place of the user's KEY: on condition that it is `old` (a user's rekey), or
/// whatever it is (the provider's, for a compromised key).
pub async fn replace_key(
    primary: &Primary,
    pvt_zone: &[u8],
    user_zone: &[u8],
    old: Option<&[u8]>,
    new: &[u8],
    ttl: u32,
) -> Result<u8, String> {
    let mut update = UpdateBuilder::new(pvt_zone);
    if let Some(old) = old {
        update.require_rr(user_zone, TYPE_KEY, old);
    }
    update.update(user_zone, TYPE_KEY, CLASS_ANY, 0, &[]).update(user_zone, TYPE_KEY, CLASS_IN, ttl, new);
    primary.update(&update).await
}
