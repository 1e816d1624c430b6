//! When the TLS material, the DNSENC keys and what follows the config file (the access lists,
//! the DNSENC key list) are read again: every [`POLL_INTERVAL`] (only what changed is put in
//! service) and on SIGHUP (all of it); and, without a ticket key file, when the process's own
//! ticket key is replaced (every `tls::OWN_KEY_ROTATION`). One task on the main thread's
//! runtime, which otherwise only waits for signals. The config file is read here, once per
//! look, and handed to each reloader that follows it; the checking and swapping is theirs.
//!
//! It never touches a worker or a connection, and it stops when shutdown begins.

use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::time::MissedTickBehavior;

use crate::access::reload::AclReloader;
use crate::config::{ConfigError, FileConfig};
use crate::frontend::dnsenc::reload::KeyReloader;
use crate::runtime::shutdown::Shutdown;
use crate::tls::reload::Reloader;

/// How often the certificate, key and ticket key files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What one look at the config file found.
pub type ConfigRead = Result<FileConfig, ConfigError>;

/// The config file read once, when something follows it (`config_file` is then its path).
pub fn read_config(config_file: Option<&PathBuf>) -> Option<ConfigRead> {
    config_file.map(|path| FileConfig::load(path))
}

/// Polls and answers SIGHUP (`hangup`, registered by the caller so that a failure to register
/// is a start-up error) until `shutdown`. `config_file`: the config file, when something
/// follows it.
pub async fn watch(
    mut reloader: Reloader,
    config_file: Option<PathBuf>,
    mut acl: AclReloader,
    mut dnsenc_keys: Option<KeyReloader>,
    mut hangup: Signal,
    mut shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let first_rotation = tokio::time::Instant::now() + crate::tls::OWN_KEY_ROTATION;
    let mut rotate = tokio::time::interval_at(first_rotation, crate::tls::OWN_KEY_ROTATION);
    rotate.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {
                reloader.poll();
                let read = read_config(config_file.as_ref());
                acl.poll(read.as_ref());
                if let Some(keys) = dnsenc_keys.as_mut() {
                    keys.poll(read.as_ref());
                }
            }
            _ = rotate.tick() => reloader.rotate_own_ticket_key(),
            Some(()) = hangup.recv() => {
                if reloader.has_files() {
                    tracing::info!("SIGHUP: reloading the certificate, key and ticket keys from their files");
                    reloader.reload_all();
                } else {
                    tracing::info!("SIGHUP: no TLS material to reload (no --cert/--key, no --ticket-keys)");
                }
                let read = read_config(config_file.as_ref());
                if acl.has_file() {
                    acl.reload_now(read.as_ref());
                }
                if let Some(keys) = dnsenc_keys.as_mut() {
                    keys.reload_now(read.as_ref());
                }
            }
        }
    }
}
