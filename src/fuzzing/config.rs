//! Fuzz target `config`: arbitrary text as the TOML config file, through the same path as
//! `--config FILE` (`FileConfig::parse`, then `Config::merge` under no flags; backend names are
//! checked but never looked up, as with `--check-config`).
//!
//! Invariants: the result is a config or an error, never a panic; an error renders as one
//! non-empty line with no control characters (`main` prints it as the one line an operator
//! reads); a config that loads has what validation promises (a backend, at least one listen
//! address, workers and sockets in range, positive timeouts).

use std::path::Path;

use clap::Parser;

use crate::config::{Cli, Config, FileConfig};

/// The input is the file's bytes (not UTF-8 where invalid: replaced, as an editor would show).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/etc/dotgate/dotgate.toml");
    let file = match FileConfig::parse(&text, path) {
        Ok(file) => file,
        Err(e) => return check_one_line(&e.to_string()),
    };
    let cli = Cli::try_parse_from(["dotgate", "--config", "/etc/dotgate/dotgate.toml"]).expect("a valid command line");
    match Config::merge(cli, file, false) {
        Ok(config) => {
            assert!(!config.listen.is_empty());
            assert!((1..=1024).contains(&config.workers));
            assert!((1..=64).contains(&config.upstream_sockets));
            assert!(config.tcp_memory_entries <= crate::config::MAX_TCP_MEMORY_ENTRIES);
            assert!((1..=65_535).contains(&config.max_in_flight));
            for timeout in [
                config.idle_timeout,
                config.handshake_timeout,
                config.upstream_timeout,
                config.drain_timeout,
                config.tcp_memory_ttl,
            ] {
                assert!(!timeout.is_zero());
            }
            assert!(config.backends.iter().all(|b| !b.ip().is_unspecified() && b.port() != 0));
        }
        Err(e) => check_one_line(&e.to_string()),
    }
}

/// One line an operator can read: no line break, no control character (a terminal would act on
/// an escape sequence read from the file), not empty.
pub fn check_one_line(text: &str) {
    assert!(!text.trim().is_empty(), "an empty error");
    assert!(!text.chars().any(char::is_control), "an error with a control character or line break: {text:?}");
    assert!(!text.contains(['\u{2028}', '\u{2029}']), "an error with a Unicode line separator: {text:?}");
}
