//! The `dotgate dnsenc ...` tools an operator runs by hand: `keygen` writes a key file and
//! prints the NSK record to publish. They print and exit; they never touch a running dotgate
//! (which picks a new key file up on SIGHUP or when the files it was given change).

use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::crypto;
use super::keys::ServerKey;
use super::wire::{CodePoints, Nsk};
use crate::config::ConfigError;

/// Writes a new key of `scheme` (rsa2048, rsa4096, x25519) into `dir` as `<key-id>.key`, mode
/// 0600, and returns the text to print: where it went and its NSK record in both presentation
/// forms (the draft's, and RFC 3597's, which a BIND that does not know the type loads).
pub fn keygen(scheme: &str, dir: &Path, priority: u8) -> Result<String, ConfigError> {
    let code = crypto::scheme_by_name(scheme).filter(|&code| crypto::is_query_scheme(code)).ok_or_else(|| {
        ConfigError::Value {
            what: "scheme",
            value: format!("{scheme:?}"),
            reason: "must be rsa2048, rsa4096 or x25519",
        }
    })?;
    let key = ServerKey::generate(code, priority, &mut StdRng::from_os_rng())
        .map_err(|e| ConfigError::Cli(format!("cannot generate a {scheme} key: {e}")))?;
    let path = dir.join(format!("{}.key", key.key_id));
    key.write_new(&path).map_err(|e| ConfigError::Cli(format!("cannot write {}: {e}", path.display())))?;
    let nsk = Nsk {
        key_id: key.key_id,
        priority: key.priority,
        reserved: 0,
        ns_name: vec![0],
        scheme: code,
        key: key.key.public_key_data(),
        response_schemes: key.response_schemes.clone(),
    };
    let nsk_type = CodePoints::default().nsk_type;
    Ok(format!(
        "; DNSENC key {id} ({scheme}, priority {priority}) written to {path}\n\
         ; Publish at the reverse name of each --dnsenc-listen address, DNSSEC-signed (never at a zone apex).\n\
         ; The draft's presentation form:\n\
         NSK {presentation}\n\
         ; RFC 3597's form, for a server that does not know the type (BIND):\n\
         TYPE{nsk_type} {generic}\n",
        id = key.key_id,
        path = path.display(),
        presentation = nsk.to_presentation(),
        generic = nsk.to_generic(),
    ))
}
