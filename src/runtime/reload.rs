//! When the TLS material and the access lists (from the config file) are read again: every [`POLL_INTERVAL`] (only files whose contents
//! changed are loaded) and on SIGHUP (all of it); and, without a ticket key file, when the
//! process's own ticket key is replaced (every `tls::OWN_KEY_ROTATION`). One task on the main thread's runtime, which
//! otherwise only waits for signals; the reading, checking and swapping is `tls::reload`'s.
//!
//! It never touches a worker or a connection, and it stops when shutdown begins.

use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::time::MissedTickBehavior;

use crate::access::reload::AclReloader;
use crate::frontend::dnsenc::reload::KeyReloader;
use crate::runtime::shutdown::Shutdown;
use crate::tls::reload::Reloader;

/// How often the certificate, key and ticket key files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Polls and answers SIGHUP (`hangup`, registered by the caller so that a failure to register
/// is a start-up error) until `shutdown`.
pub async fn watch(
    mut reloader: Reloader,
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
                acl.poll();
                if let Some(keys) = dnsenc_keys.as_mut() {
                    keys.poll();
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
                if acl.has_file() {
                    acl.reload_now();
                }
                if let Some(keys) = dnsenc_keys.as_mut() {
                    keys.reload_now();
                }
            }
        }
    }
}
