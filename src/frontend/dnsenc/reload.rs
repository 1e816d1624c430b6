//! The DNSENC key files in service: loaded at start (a broken one stops the start: one line,
//! exit 2) and read again when they change (looked at with the certificate, every
//! `runtime::reload::POLL_INTERVAL`) and on SIGHUP. When the list of files came from the config
//! file's `dnsenc-keys`, the list is taken again too (from the file as `runtime::reload` read it
//! for everything that follows it), so that a key is added or retired (the
//! rotation of docs/dnsenc.md) without a restart. New keys are checked as at start and put in
//! service whole; a broken file or config is refused with one log line and the keys in service
//! stay. Each distinct change is tried (and logged) once.
//!
//! It never touches a query in flight: one decrypted before a reload is answered with the key
//! its client sent.

use std::path::PathBuf;
use std::sync::Arc;

use super::keys::{KeySet, ServerKey};
use super::server::DnsencServer;
use super::wire::CodePoints;
use crate::config::{ConfigError, DnsencConfig};
use crate::runtime::reload::ConfigRead;

/// Loads every key file into one set; the first problem is the error.
pub fn load_keys(paths: &[PathBuf]) -> Result<KeySet, String> {
    let keys =
        paths.iter().map(|path| ServerKey::load(path).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
    KeySet::new(keys).map_err(|e| e.to_string())
}

/// The DNSENC server for `settings`, with its keys loaded.
pub fn load_server(settings: &DnsencConfig) -> Result<DnsencServer, ConfigError> {
    let keys = load_keys(&settings.keys).map_err(ConfigError::Cli)?;
    let codepoints = CodePoints {
        nsk_type: settings.nsk_type,
        option_code: settings.option_code,
        badcrypt: settings.badcrypt_rcode,
    };
    Ok(DnsencServer::new(codepoints, settings.cleartext, keys))
}

/// Reads the key files again when they change, and on SIGHUP.
pub struct KeyReloader {
    paths: Vec<PathBuf>,
    /// The config file whose `dnsenc-keys` is the list, when it is.
    list_from: Option<PathBuf>,
    /// Why the list could not be read again, last time (logged once per distinct problem).
    list_problem: Option<String>,
    server: Arc<DnsencServer>,
    /// The files' contents when last read (or why they could not be read).
    seen: Option<Result<Vec<Vec<u8>>, String>>,
}

impl KeyReloader {
    pub fn new(paths: Vec<PathBuf>, list_from: Option<PathBuf>, server: Arc<DnsencServer>) -> KeyReloader {
        let mut reloader = KeyReloader { paths, list_from, list_problem: None, server, seen: None };
        reloader.seen = Some(reloader.read());
        reloader
    }

    /// Takes the config file's `dnsenc-keys` (in `read`) as the list when it changed (and the
    /// file parsed and the list is not empty); says why not when it cannot.
    fn refresh_list(&mut self, read: Option<&ConfigRead>) {
        let (Some(path), Some(read)) = (&self.list_from, read) else { return };
        let problem = match read {
            Ok(file) => match file.dnsenc_keys.clone() {
                Some(paths) if !paths.is_empty() => {
                    if paths != self.paths {
                        tracing::info!(
                            "the DNSENC key list in {} changed: {} files instead of {}",
                            path.display(),
                            paths.len(),
                            self.paths.len()
                        );
                        self.paths = paths;
                    }
                    None
                }
                _ => Some(format!(
                    "{} has no dnsenc-keys any more: the DNSENC keys in service stay (a restart turns DNSENC off)",
                    path.display()
                )),
            },
            Err(e) => Some(format!("cannot read the DNSENC key list again (the keys in service stay): {e}")),
        };
        if problem != self.list_problem {
            if let Some(problem) = &problem {
                tracing::warn!("{problem}");
            }
            self.list_problem = problem;
        }
    }

    fn read(&self) -> Result<Vec<Vec<u8>>, String> {
        self.paths
            .iter()
            .map(|path| std::fs::read(path).map_err(|e| format!("cannot read DNSENC key {}: {e}", path.display())))
            .collect()
    }

    /// Puts the files' keys in service if they (or the list) changed since the last look.
    pub fn poll(&mut self, read: Option<&ConfigRead>) {
        self.reload(read, false);
    }

    /// SIGHUP: reads the keys again and puts them in service, changed or not.
    pub fn reload_now(&mut self, read: Option<&ConfigRead>) {
        self.reload(read, true);
    }

    fn reload(&mut self, read: Option<&ConfigRead>, forced: bool) {
        let before = self.paths.clone();
        self.refresh_list(read);
        let forced = forced || self.paths != before;
        let contents = self.read();
        if !forced && self.seen.as_ref() == Some(&contents) {
            return;
        }
        self.seen = Some(contents);
        match load_keys(&self.paths) {
            Ok(keys) => {
                let ids: Vec<String> = keys.iter().map(|k| k.key_id.to_string()).collect();
                self.server.replace_keys(keys);
                tracing::info!("reloaded the DNSENC keys: key ids [{}] in service", ids.join(","));
            }
            Err(e) => tracing::warn!("refusing the new DNSENC keys (the ones in service stay): {e}"),
        }
    }
}
