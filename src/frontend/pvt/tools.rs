//! The provider's side of the gateway outside the data path: loading its settings at start,
//! publishing the provider KEY at each `_pvt` apex, and the `dotgate pvt provider-keygen`,
//! `enroll` and `admin` commands.
//!
//! Never: starts with a provider key file others may read, or replaces a KEY at a `_pvt` apex
//! that is not the provider's own (it adds its own beside it).

use std::sync::atomic::AtomicU64;

use super::gateway::PvtServer;
use super::keys::{KeyPair, TYPE_KEY};
use super::primary::{Primary, UpdateBuilder, CLASS_IN};
use crate::config::{ConfigError, PvtConfig};
use crate::dns::display_name;

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
