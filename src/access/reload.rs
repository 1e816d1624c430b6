//! Reload of the access lists from the config file: when its `allow`/`deny` change (looked at
//! with the certificate, every `runtime::reload::POLL_INTERVAL`) and on SIGHUP. The file is read
//! by `runtime::reload`, once per look for everything that follows it.
//!
//! Owns what it last saw of the lists. New lists are checked as thoroughly as at start (every
//! entry must parse) and put in force whole for the next accept; a file that does not parse, or
//! a bad entry, is refused with one log line and the lists in force stay. Each distinct change
//! is tried (and logged) once. Lists given on the command line (`--allow`, `--deny`) replace the
//! file's and never reload. It never touches an open connection: the lists apply at accept.

use std::path::PathBuf;
use std::sync::Arc;

use super::gate::Gate;
use crate::config::{parse_cidrs, ConfigError};
use crate::runtime::reload::ConfigRead;

/// What the file's lists were when last read: the text of each entry, or the error.
type Seen = Result<(Vec<String>, Vec<String>), String>;

pub struct AclReloader {
    /// The config file, when the lists come from it.
    file: Option<PathBuf>,
    gate: Arc<Gate>,
    seen: Option<Seen>,
}

impl AclReloader {
    /// `file`: the config file, when the lists in force came from it (else nothing reloads);
    /// `read`, what it holds now.
    pub fn new(file: Option<PathBuf>, gate: Arc<Gate>, read: Option<&ConfigRead>) -> AclReloader {
        let mut reloader = AclReloader { file, gate, seen: None };
        reloader.seen = reloader.lists(read);
        reloader
    }

    /// Whether the lists can reload (they come from a config file).
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// Puts the file's lists in force if they changed since the last look.
    pub fn poll(&mut self, read: Option<&ConfigRead>) {
        self.reload(read, false);
    }

    /// SIGHUP: puts the file's lists in force, changed or not (and logs it).
    pub fn reload_now(&mut self, read: Option<&ConfigRead>) {
        self.reload(read, true);
    }

    /// The lists in what was read of the file, when they come from it.
    fn lists(&self, read: Option<&ConfigRead>) -> Option<Seen> {
        self.file.as_ref()?;
        let lists =
            read?.as_ref().map(|file| (file.allow.clone().unwrap_or_default(), file.deny.clone().unwrap_or_default()));
        Some(lists.map_err(|e| e.to_string()))
    }

    fn reload(&mut self, read: Option<&ConfigRead>, forced: bool) {
        let Some(seen) = self.lists(read) else { return };
        if !forced && self.seen.as_ref() == Some(&seen) {
            return;
        }
        self.seen = Some(seen.clone());
        let checked = seen
            .map_err(ConfigError::Cli)
            .and_then(|(allow, deny)| Ok((parse_cidrs("allow", &allow)?, parse_cidrs("deny", &deny)?)));
        let path = self.file.as_ref().map_or_else(String::new, |p| p.display().to_string());
        match checked {
            Ok((allow, deny)) => {
                self.gate.replace_acl(&allow, &deny);
                tracing::info!(
                    "reloaded the access lists from {path}: {} allow, {} deny entries; new connections follow them",
                    allow.len(),
                    deny.len()
                );
            }
            Err(e) => tracing::warn!("refusing the new access lists (the ones in force stay): {e}"),
        }
    }
}
