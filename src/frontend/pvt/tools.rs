//! The provider's side of the gateway outside the data path: loading its settings at start,
//! publishing the provider KEY at each `_pvt` apex, and the `dotgate pvt provider-keygen`,
//! `enroll` and `admin` commands (the admin ones as TSIG UPDATEs to the primary, through
//! `primary` and `update` as the gateway makes them).
//!
//! Never: starts with a provider key file others may read, replaces a KEY at a `_pvt` apex
//! that is not the provider's own (it adds its own beside it), or puts a KEY with the Zone bit
//! set, or not of algorithm 15 or 8 (RSASHA256, for a gateway with `--pvt-rsa-compat`), at a
//! user's apex.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use base64::Engine as _;

use super::gateway::PvtServer;
use super::keys::{self, KeyPair, UserKeyPair, UserPublic, TYPE_KEY};
use super::primary::{Primary, UpdateBuilder, CLASS_IN};
use crate::config::{ConfigError, PvtConfig};
use crate::dns::display_name;
use crate::frontend::dnsenc::print;
use crate::frontend::dnsenc::tools::Report;
use crate::frontend::dnsenc::wire::CodePoints;

/// TTL of the provider's KEY at a `_pvt` apex.
pub const PROVIDER_KEY_TTL: u32 = 3600;

/// Reads the gateway's key files (the provider key, the TSIG key) and checks the enrollment
/// file can be read; one clear error each.
pub fn load_server(settings: &PvtConfig) -> Result<PvtServer, ConfigError> {
    let provider =
        KeyPair::read_file(&settings.provider_key).map_err(|e| ConfigError::Cli(format!("--pvt-provider-key: {e}")))?;
    let tsig = crate::tsig::read_key_file(&settings.tsig_key)
        .map_err(|e| ConfigError::Cli(e.to_string().replace("--tsig-key", "--pvt-tsig-key")))?;
    super::keys::read_enrollment(&settings.enrollment)
        .map_err(|e| ConfigError::Cli(format!("--pvt-enrollment: {e}")))?;
    Ok(PvtServer {
        zones: settings.zones.clone(),
        provider,
        enrollment: settings.enrollment.clone(),
        primary: Primary { addr: settings.primary, tsig },
        type_encr: settings.encr_type,
        rsa_compat: settings.rsa_compat,
        key_generation: AtomicU64::new(0),
    })
}

/// Makes sure every `_pvt` apex holds the provider's KEY: a TSIG UPDATE adds it where missing.
pub async fn publish_provider_key(server: &PvtServer) -> Result<(), String> {
    let rdata = server.provider.public.key_rdata();
    for zone in &server.zones {
        let (keys, _) = server.primary.rrset(zone, TYPE_KEY).await?;
        if keys.contains(&rdata) {
            continue;
        }
        let mut update = UpdateBuilder::new(zone);
        update.update(zone, TYPE_KEY, CLASS_IN, PROVIDER_KEY_TTL, &rdata);
        match server.primary.update(&update).await? {
            0 => tracing::info!(zone = %display_name(zone), tag = server.provider.public.tag, "provider KEY published"),
            rcode => {
                return Err(format!(
                    "the primary answered RCODE {rcode} to adding the provider KEY at {}",
                    display_name(zone)
                ))
            }
        }
    }
    Ok(())
}

/// `dotgate pvt provider-keygen`: a new provider key in `out` (mode 0600, never over a file),
/// and the KEY record for `zone` (the gateway also publishes it itself when it starts).
pub fn provider_keygen(zone: &[u8], out: &Path) -> Result<Report, ConfigError> {
    let pair = KeyPair::generate();
    pair.write_file(out).map_err(|e| ConfigError::Cli(format!("--out: {e}")))?;
    let text = format!("{} {PROVIDER_KEY_TTL} IN KEY {}\n", display_name(zone), pair.public.key_text());
    Ok(Report { text, failure: None })
}

/// `dotgate pvt enroll`: `user` added to the enrollment file, or found there already.
pub fn enroll(file: &Path, user: &str) -> Result<Report, ConfigError> {
    let added = keys::enroll(file, user).map_err(ConfigError::Cli)?;
    let text = if added {
        format!("{} enrolled in {}\n", user.to_ascii_lowercase(), file.display())
    } else {
        format!("{} was enrolled in {} already\n", user.to_ascii_lowercase(), file.display())
    };
    Ok(Report { text, failure: None })
}

/// `dotgate pvt admin rekey`: the KEY in `key_file` in place of `user`'s, whatever it is now.
pub fn admin_rekey(primary: &Primary, pvt_zone: &[u8], user: &str, key_file: &Path) -> Result<Report, ConfigError> {
    let user_zone = [super::cli::user_label(user)?, pvt_zone.to_vec()].concat();
    let key = read_public_key(key_file)?;
    let rdata = key.key_rdata();
    let outcome = block_on(super::update::replace_key(primary, pvt_zone, &user_zone, None, &rdata, PROVIDER_KEY_TTL))?;
    Ok(admin_report(primary, &user_zone, outcome, &format!("KEY replaced (tag {})", key.tag())))
}

/// `dotgate pvt admin destroy`: every record at and below `user`'s apex deleted, if its KEY is
/// still the one read just before.
pub fn admin_destroy(primary: &Primary, pvt_zone: &[u8], user: &str) -> Result<Report, ConfigError> {
    let user_zone = [super::cli::user_label(user)?, pvt_zone.to_vec()].concat();
    let outcome = block_on(async {
        let (keys, _) = primary.rrset(&user_zone, TYPE_KEY).await?;
        let Some(key) = keys.first() else {
            return Err(format!("the primary has no KEY at {}: no such zone", display_name(&user_zone)));
        };
        super::update::destroy(primary, pvt_zone, &user_zone, key).await
    })?;
    Ok(admin_report(primary, &user_zone, outcome, "zone destroyed"))
}

/// Runs an exchange with the primary on a runtime of its own.
fn block_on<T>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<Result<T, String>, ConfigError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError::Cli(format!("cannot start a runtime: {e}")))?;
    Ok(runtime.block_on(work))
}

/// What the primary answered an admin UPDATE, or why it did not.
fn admin_report(primary: &Primary, user_zone: &[u8], outcome: Result<u8, String>, done: &str) -> Report {
    let rcode = match outcome {
        Ok(rcode) => rcode,
        Err(line) => return Report { text: String::new(), failure: Some(line) },
    };
    let name = print::rcode_name(u16::from(rcode), &CodePoints::default());
    let mut text = format!(";; UPDATE to the primary {}: status: {name}\n", primary.addr);
    if rcode == 0 {
        text.push_str(&format!("; {}: {done}\n", display_name(user_zone)));
    }
    let failure = (rcode != 0).then(|| format!("the primary answered {name}"));
    Report { text, failure }
}

/// The public key in a key file from `dotgate pvt keygen` (read as a private key: mode 0600),
/// or in a file whose text holds its KEY record (`... KEY 0 3 15 BASE64` or `0 3 15 BASE64`,
/// or `0 3 8 BASE64` for an RSA user of the compatibility mode; `;` and `#` start comments).
pub fn read_public_key(path: &Path) -> Result<UserPublic, ConfigError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Cli(format!("cannot read {shown}: {e}")))?;
    if text.contains("Private-key-format:") || text.contains("-----BEGIN PRIVATE KEY-----") {
        return UserKeyPair::read_file(path).map(|pair| pair.public()).map_err(|e| ConfigError::Cli(e.to_string()));
    }
    let mut first_error = None;
    for line in text.lines() {
        let line = line.split([';', '#']).next().unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let start = words.iter().position(|w| w.eq_ignore_ascii_case("KEY")).map_or(0, |at| at + 1);
        match public_key_of(&words[start..]) {
            Ok(key) => return Ok(key),
            Err(why) => {
                first_error.get_or_insert(why);
            }
        }
    }
    Err(ConfigError::Cli(format!(
        "{shown}: no `0 3 15 BASE64` KEY in it{}; give the user's key file or the KEY record `dotgate pvt keygen` printed",
        first_error.map(|why| format!(" ({why})")).unwrap_or_default()
    )))
}

/// `FLAGS 3 15 BASE64...` (or `0 3 8`) as a KEY a user zone may hold: flags 0 (draft section
/// 3), Ed25519 or RSASHA256.
fn public_key_of(words: &[&str]) -> Result<UserPublic, String> {
    let [flags, protocol, algorithm, key @ ..] = words else { return Err("not `FLAGS 3 15 BASE64`".into()) };
    let algorithm_number = match (*flags, *protocol, *algorithm) {
        ("0", "3", "15") if !key.is_empty() => 15,
        ("0", "3", "8") if !key.is_empty() => 8,
        _ => {
            return Err(format!(
            "`{flags} {protocol} {algorithm}` where `0 3 15` (flags 0, DNSSEC, Ed25519) or `0 3 8` (RSASHA256) belongs"
        ))
        }
    };
    let key = base64::engine::general_purpose::STANDARD.decode(key.concat()).map_err(|_| "the key is not base64")?;
    if algorithm_number == 15 && key.len() != keys::KEY_LEN {
        return Err("the key is not 32 octets".into());
    }
    let rdata = [&[0, 0, 3, algorithm_number][..], &key].concat();
    UserPublic::from_key_rdata(&rdata, true).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_read_from_key_files_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let pair = KeyPair::generate();
        let private = dir.path().join("private");
        pair.write_file(&private).unwrap();
        assert_eq!(read_public_key(&private).unwrap(), UserPublic::Ed25519(pair.public.clone()));
        for text in [
            format!("alice._pvt.example.test. 3600 IN KEY {}\n", pair.public.key_text()),
            format!("; from keygen\n{} ; the key\n", pair.public.key_text()),
        ] {
            let path = dir.path().join("public");
            std::fs::write(&path, text).unwrap();
            assert_eq!(read_public_key(&path).unwrap(), UserPublic::Ed25519(pair.public.clone()));
        }
        let rsa = crate::frontend::pvt::keys::tests::rsa_pair();
        let rsa_private = dir.path().join("rsa");
        UserKeyPair::Rsa(keys::RsaKeyPair::from_pkcs8(rsa.pkcs8()).unwrap()).write_file(&rsa_private).unwrap();
        assert_eq!(read_public_key(&rsa_private).unwrap(), UserPublic::Rsa(rsa.public.clone()));
        let rsa_record = dir.path().join("rsa-record");
        std::fs::write(&rsa_record, format!("alice._pvt.example.test. 3600 IN KEY {}\n", rsa.public.key_text()))
            .unwrap();
        assert_eq!(read_public_key(&rsa_record).unwrap(), UserPublic::Rsa(rsa.public.clone()));
        let base64 = pair.public.key_text().rsplit(' ').next().unwrap().to_owned();
        for (text, why) in [
            (format!("KEY 256 3 15 {base64}"), "`256 3 15`"),
            (format!("KEY 0 3 13 {base64}"), "`0 3 13`"),
            ("KEY 0 3 15 AAAA".to_owned(), "not 32 octets"),
            ("nothing here".to_owned(), "not `FLAGS 3 15 BASE64`"),
        ] {
            let path = dir.path().join("bad");
            std::fs::write(&path, text).unwrap();
            let error = read_public_key(&path).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn provider_keygen_prints_the_record_to_publish() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("provider.key");
        let report = provider_keygen(b"\x04_pvt\x07example\x04test\0", &out).unwrap();
        let pair = KeyPair::read_file(&out).unwrap();
        assert_eq!(report.text, format!("_pvt.example.test. 3600 IN KEY {}\n", pair.public.key_text()));
        assert!(provider_keygen(b"\x04_pvt\x04test\0", &out).is_err(), "never over a file");
    }
}
