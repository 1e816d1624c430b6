//! The `dotgate pvt` command line: the clap definitions of the user's commands (`keygen`,
//! `register`, `add`, `delete`, `query`, `rekey`, `destroy`) and the provider's
//! (`provider-keygen`, `enroll`, `admin rekey|destroy`), the checks of what they are given, and
//! the hand-over to `client` (the user's side) and `tools` (the provider's).
//!
//! Owns: the flags, their defaults and the one-line complaint about each bad one (a
//! `ConfigError`, exit status 2), made before any file is written or anything is sent. Never:
//! builds, signs, seals or sends a message, or reads a private key itself (`client` and `tools`
//! do, and their own errors keep the same one-line form).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::client::{self, User};
use super::primary::Primary;
use super::tools;
use super::wire::DEFAULT_TYPE_ENCR;
use crate::config::{parse_addr, ConfigError, DEFAULT_DOT_PORT};
use crate::frontend::dnsenc::tools::Report;

/// `dotgate pvt ...`
#[derive(Debug, Subcommand)]
pub enum PvtTool {
    /// Write a new user key (mode 0600) and print its KEY record (or, without --zone, the
    /// record's data): Ed25519 in BIND's private-key format, or with --algorithm rsasha256 a
    /// 2048-bit RSA key in PKCS#8 PEM (for a gateway with --pvt-rsa-compat).
    Keygen {
        /// The key file to write (an existing file is never replaced).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The zone the key is for.
        #[arg(long, value_name = "USER._pvt.DOMAIN")]
        zone: Option<String>,
        /// The key's algorithm.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Ed25519)]
        algorithm: KeyAlgorithm,
    },
    /// Claim the zone: an UPDATE of _pvt.DOMAIN adding the key's KEY at USER._pvt.DOMAIN, signed
    /// by that key. Exit 0 on NOERROR, 1 on any other answer (YXRRSET: the zone is taken).
    Register(UserArgs),
    /// Add one record, sent encrypted: 'NAME TTL TYPE RDATA', NAME relative to the zone (`@` its
    /// apex), RDATA in zone-file form (or RFC 3597's `\# LENGTH HEX`).
    Add {
        #[command(flatten)]
        user: UserArgs,
        /// The record, as one argument.
        #[arg(value_name = "'NAME TTL TYPE RDATA'")]
        record: String,
        #[command(flatten)]
        encr: EncrArgs,
    },
    /// Delete encrypted: 'NAME TYPE' deletes the RRset (TYPE ANY: every RRset at NAME), 'NAME
    /// TYPE RDATA' the one record.
    Delete {
        #[command(flatten)]
        user: UserArgs,
        /// What to delete, as one argument.
        #[arg(value_name = "'NAME TYPE [RDATA]'")]
        record: String,
        #[command(flatten)]
        encr: EncrArgs,
    },
    /// Ask one encrypted, signed question and print the opened answer as dig does. Exit 0 on
    /// NOERROR, 1 on any other RCODE or an answer record that does not open.
    Query {
        #[command(flatten)]
        user: UserArgs,
        /// The name: relative to the zone (`@` its apex), or absolute (ending with a dot).
        #[arg(value_name = "NAME")]
        name: String,
        /// The record type: a mnemonic (A, AAAA, TXT, SRV...) or TYPEnnn.
        #[arg(value_name = "TYPE")]
        qtype: String,
        #[command(flatten)]
        encr: EncrArgs,
    },
    /// Replace the zone's KEY with the key in --new-key, signed with the current one (--key).
    Rekey {
        #[command(flatten)]
        user: UserArgs,
        /// The new key file, from `dotgate pvt keygen`.
        #[arg(long, value_name = "FILE")]
        new_key: PathBuf,
    },
    /// Give the zone up: delete its KEY, and with it every record in it.
    Destroy(UserArgs),
    /// Load the gateway as dnsperf would (over UDP): queries from a file of `NAME TYPE` lines
    /// (NAME relative to the zone), signed and encrypted before the run, sent in turn by
    /// independent clients, each with up to 10 in flight; prints dnsperf's summary. With
    /// --updates: UPDATEs instead, each adding its own A record and sent once.
    Load {
        #[command(flatten)]
        user: UserArgs,
        /// The query file: `NAME TYPE` a line.
        #[arg(
            short = 'f',
            long = "queries",
            value_name = "FILE",
            required_unless_present = "updates",
            conflicts_with = "updates"
        )]
        queries: Option<PathBuf>,
        /// Send UPDATEs, not queries: --prepared of them, made and signed before the run as
        /// `add` makes them, each adding `PREFIX<N> 300 A 192.0.2.x` and sent once; the run ends
        /// when all are answered, at --duration, or 290 s after signing (the SIG(0)s last 300).
        #[arg(long)]
        updates: bool,
        /// With --updates: the names' start (letters, digits, hyphens). Default: `u<unix time>-`,
        /// new for each run, so that every UPDATE adds a record the zone does not hold.
        #[arg(long, value_name = "PREFIX")]
        name_prefix: Option<String>,
        /// With --updates: UPDATEs each client keeps in flight (1: one at a time, for latency).
        #[arg(short = 'w', long, value_name = "N")]
        window: Option<usize>,
        /// Queries (or UPDATEs) made before the run; queries are sent in turn (each its own ID;
        /// at most 65,536).
        #[arg(long, value_name = "N", default_value_t = 20_000)]
        prepared: usize,
        /// Clients (each its own socket).
        #[arg(short = 'c', long, value_name = "N", default_value_t = 20)]
        clients: usize,
        /// At most this many queries per second, all clients together.
        #[arg(short = 'Q', long, value_name = "QPS")]
        qps: Option<u32>,
        /// Seconds to send for.
        #[arg(short = 'l', long = "duration", value_name = "SECS", default_value_t = 10)]
        duration: u64,
        #[command(flatten)]
        encr: EncrArgs,
    },
    /// Write a new provider key (mode 0600) and print the KEY record to publish at _pvt.DOMAIN.
    ProviderKeygen {
        /// The provider's zone.
        #[arg(long, value_name = "_pvt.DOMAIN")]
        zone: String,
        /// The key file to write (an existing file is never replaced); the gateway's
        /// --pvt-provider-key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Allow USER to register USER._pvt.DOMAIN: add it to the enrollment file (created if need be).
    Enroll {
        /// The gateway's --pvt-enrollment file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// One label: letters, digits and hyphens.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// The provider's own changes to a user's zone, as TSIG UPDATEs to the primary.
    #[command(subcommand)]
    Admin(AdminTool),
}

/// The algorithm of a user key (`keygen --algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519 (DNSSEC algorithm 15): the profile's.
    Ed25519,
    /// RSA/SHA-256 (DNSSEC algorithm 8), 2048 bits: the gateway's compatibility mode only.
    Rsasha256,
}

/// `dotgate pvt admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminTool {
    /// Put the key in KEYFILE in place of USER's KEY, whatever it is now (a user whose key was
    /// lost or stolen, checked out of band).
    Rekey {
        /// The user (one label): the zone is USER._pvt.DOMAIN.
        #[arg(value_name = "USER")]
        user: String,
        /// A key file from `dotgate pvt keygen`, or a file holding the KEY record it printed
        /// (`... KEY 0 3 15 BASE64`, or just `0 3 15 BASE64`).
        #[arg(value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        primary: PrimaryArgs,
    },
    /// Delete USER's zone: every record at and below USER._pvt.DOMAIN, if its KEY is still the
    /// one read just before.
    Destroy {
        /// The user (one label): the zone is USER._pvt.DOMAIN.
        #[arg(value_name = "USER")]
        user: String,
        #[command(flatten)]
        primary: PrimaryArgs,
    },
}

/// What every user command that talks to the gateway takes.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The gateway, as @ADDR or @ADDR:PORT (port 53, or 853 with --tls; IPv6 as @[ADDR]:PORT).
    #[arg(value_name = "@ADDR[:PORT]")]
    pub server: String,
    /// The user's zone.
    #[arg(long, value_name = "USER._pvt.DOMAIN")]
    pub zone: String,
    /// The user's key file, from `dotgate pvt keygen` (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Ask over DNS over TLS, the gateway's certificate checked against the system's roots
    /// ($SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt or the like) or --ca. Without
    /// it: UDP, and TCP again after a truncated answer.
    #[arg(long)]
    pub tls: bool,
    /// PEM certificates of the authorities to trust with --tls, instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The name the gateway's certificate must hold, sent as SNI. Default: its IP address.
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
}

/// The ENCR type, for the commands that send encrypted names.
#[derive(Debug, Args)]
pub struct EncrArgs {
    /// The ENCR RR type's code point: the gateway's --pvt-encr-type.
    #[arg(long, value_name = "TYPE", default_value_t = DEFAULT_TYPE_ENCR)]
    pub encr_type: u16,
}

/// Where the provider's admin commands go.
#[derive(Debug, Args)]
pub struct PrimaryArgs {
    /// The provider's zone.
    #[arg(long, value_name = "_pvt.DOMAIN")]
    pub zone: String,
    /// The BIND primary that holds it (port 53 unless given).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub primary: String,
    /// The TSIG key the gateway updates the primary with, as `tsig-keygen` writes it.
    #[arg(long, value_name = "FILE")]
    pub tsig_key: PathBuf,
}

/// Runs a `dotgate pvt` command: its report, or what is wrong with what it was given.
pub fn run(tool: PvtTool) -> Result<Report, ConfigError> {
    match tool {
        PvtTool::Keygen { out, zone, algorithm } => client::keygen(
            &out,
            zone.map(|z| user_zone(&z)).transpose()?.as_deref(),
            algorithm == KeyAlgorithm::Rsasha256,
        ),
        PvtTool::Register(args) => client::register(&user(args)?),
        PvtTool::Add { user: args, record, encr } => {
            let zone = user_zone(&args.zone)?;
            let record = client::parse_record(&record, &zone, true).map_err(|why| bad_record(&record, &why))?;
            let encr = encr_type(&encr)?;
            client::change(&user(args)?, encr, &record)
        }
        PvtTool::Delete { user: args, record, encr } => {
            let zone = user_zone(&args.zone)?;
            let record = client::parse_record(&record, &zone, false).map_err(|why| bad_record(&record, &why))?;
            let encr = encr_type(&encr)?;
            client::change(&user(args)?, encr, &record)
        }
        PvtTool::Query { user: args, name, qtype, encr } => {
            let zone = user_zone(&args.zone)?;
            let relative = client::relative_name(&name, &zone)
                .map_err(|why| ConfigError::Cli(format!("the name {name:?}: {why}")))?;
            let qtype = client::type_by_name(&qtype).ok_or_else(|| ConfigError::Value {
                what: "record type",
                value: format!("{qtype:?}"),
                reason: "must be a type mnemonic (A, AAAA, TXT, SRV...) or TYPEnnn",
            })?;
            let encr = encr_type(&encr)?;
            client::query(&user(args)?, encr, &relative, qtype)
        }
        PvtTool::Rekey { user: args, new_key } => {
            let new = super::keys::UserKeyPair::read_file(&new_key)
                .map_err(|e| ConfigError::Cli(format!("--new-key: {e}")))?;
            client::rekey(&user(args)?, &new)
        }
        PvtTool::Destroy(args) => client::destroy(&user(args)?),
        PvtTool::Load { user: args, queries, updates, name_prefix, window, prepared, clients, qps, duration, encr } => {
            let zone = user_zone(&args.zone)?;
            let duration = std::time::Duration::from_secs(duration);
            if updates {
                if prepared == 0 || clients == 0 || duration.is_zero() || window == Some(0) {
                    return Err(ConfigError::Cli(
                        "load --updates needs --prepared, --clients, --duration and --window above 0".into(),
                    ));
                }
                let prefix = name_prefix.as_deref().map(name_prefix_of).transpose()?;
                let encr = encr_type(&encr)?;
                let window = window.unwrap_or(super::load::WINDOW);
                return super::load::updates(&user(args)?, encr, prepared, prefix, (clients, window, qps, duration));
            }
            if window.is_some() || name_prefix.is_some() {
                return Err(ConfigError::Cli("--window and --name-prefix go with --updates".into()));
            }
            let Some(queries) = queries else {
                return Err(ConfigError::Cli("load needs a query file (-f FILE) or --updates".into()));
            };
            let text = std::fs::read_to_string(&queries)
                .map_err(|e| ConfigError::Cli(format!("cannot read the query file {}: {e}", queries.display())))?;
            let mut list = Vec::new();
            for (number, line) in text.lines().enumerate() {
                let mut fields = line.split_whitespace();
                let (Some(name), Some(qtype), None) = (fields.next(), fields.next(), fields.next()) else {
                    if line.trim().is_empty() {
                        continue;
                    }
                    return Err(ConfigError::Cli(format!("{} line {}: want NAME TYPE", queries.display(), number + 1)));
                };
                let relative = client::relative_name(name, &zone)
                    .map_err(|why| ConfigError::Cli(format!("{} line {}: {why}", queries.display(), number + 1)))?;
                let qtype = client::type_by_name(qtype).ok_or_else(|| {
                    ConfigError::Cli(format!(
                        "{} line {}: {qtype:?} is not a record type",
                        queries.display(),
                        number + 1
                    ))
                })?;
                list.push((relative, qtype));
            }
            if list.is_empty() || prepared == 0 || clients == 0 || duration.is_zero() {
                return Err(ConfigError::Cli(
                    "load needs a query in the file, and --prepared, --clients and --duration above 0".into(),
                ));
            }
            let encr = encr_type(&encr)?;
            client::load(&user(args)?, encr, &list, prepared, (clients, qps, duration))
        }
        PvtTool::ProviderKeygen { zone, out } => tools::provider_keygen(&pvt_zone(&zone, "--zone")?, &out),
        PvtTool::Enroll { file, user } => tools::enroll(&file, &user),
        PvtTool::Admin(AdminTool::Rekey { user, key_file, primary }) => {
            let (zone, primary) = primary_of(primary)?;
            tools::admin_rekey(&primary, &zone, &user, &key_file)
        }
        PvtTool::Admin(AdminTool::Destroy { user, primary }) => {
            let (zone, primary) = primary_of(primary)?;
            tools::admin_destroy(&primary, &zone, &user)
        }
    }
}

fn bad_record(text: &str, why: &str) -> ConfigError {
    ConfigError::Cli(format!("the record {text:?}: {why}"))
}

/// The user commands' settings, checked in the order given and the key file read last.
fn user(args: UserArgs) -> Result<User, ConfigError> {
    let UserArgs { server, zone, key, tls, ca, tls_name } = args;
    let address = server
        .strip_prefix('@')
        .ok_or_else(|| ConfigError::Cli(format!("the gateway comes first, as @ADDR[:PORT], not {server:?}")))?;
    let server: SocketAddr = parse_addr(address, if tls { DEFAULT_DOT_PORT } else { 53 }, "gateway")?;
    let zone = user_zone(&zone)?;
    let tls = match (tls, ca) {
        (true, ca) => Some(client::tls_settings(ca.as_deref(), tls_name.as_deref(), server.ip())?),
        (false, _) if tls_name.is_some() => return Err(ConfigError::Cli("--tls-name goes with --tls".into())),
        (false, Some(_)) => return Err(ConfigError::Cli("--ca goes with --tls".into())),
        (false, None) => None,
    };
    let key = super::keys::UserKeyPair::read_file(&key).map_err(|e| ConfigError::Cli(format!("--key: {e}")))?;
    Ok(User { server, tls, zone, key })
}

fn encr_type(args: &EncrArgs) -> Result<u16, ConfigError> {
    let code = args.encr_type;
    if code == 0 || code == 41 || (128..=255).contains(&code) || code == 65535 {
        return Err(ConfigError::Value {
            what: "encr-type",
            value: code.to_string(),
            reason: "must be a data RR type: not 0, 41 (OPT), 128-255 (meta types) or 65535",
        });
    }
    Ok(code)
}

/// `_pvt.DOMAIN` as lowercased wire form.
fn pvt_zone(text: &str, flag: &str) -> Result<Vec<u8>, ConfigError> {
    let bad = |reason: &str| ConfigError::Cli(format!("{flag} {text:?}: {reason}"));
    let wire = crate::frontend::dnsenc::wire::name_from_text(text.trim().as_bytes()).map_err(|e| bad(&e))?;
    let wire = wire.to_ascii_lowercase();
    if wire.get(..5) != Some(b"\x04_pvt".as_slice()) || wire.len() < 7 {
        return Err(bad("must be _pvt.DOMAIN (draft section 3)"));
    }
    Ok(wire)
}

/// `USER._pvt.DOMAIN` as lowercased wire form: USER one label of letters, digits and hyphens
/// (what `enroll` takes).
fn user_zone(text: &str) -> Result<Vec<u8>, ConfigError> {
    let (user, pvt) = text.trim().split_once('.').unwrap_or((text, ""));
    let zone = pvt_zone(pvt, "--zone").map_err(|_| {
        ConfigError::Cli(format!("--zone {text:?}: must be USER._pvt.DOMAIN (the user's zone, draft section 3.2)"))
    })?;
    Ok([user_label(user)?, zone].concat())
}

/// One user label (letters, digits, hyphens; lowercased), wire form.
pub(super) fn user_label(user: &str) -> Result<Vec<u8>, ConfigError> {
    if user.is_empty() || user.len() > 63 || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::Cli(format!("the user {user:?} is not one label of letters, digits and hyphens")));
    }
    Ok([&[user.len() as u8], user.to_ascii_lowercase().as_bytes()].concat())
}

/// `load --name-prefix`: letters, digits and hyphens, short enough that `PREFIX65535` is a label.
fn name_prefix_of(prefix: &str) -> Result<&str, ConfigError> {
    if prefix.is_empty() || prefix.len() > 58 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::Value {
            what: "name-prefix",
            value: format!("{prefix:?}"),
            reason: "must be 1 to 58 letters, digits and hyphens",
        });
    }
    Ok(prefix)
}

/// The admin commands' `_pvt` zone and primary, with its TSIG key read.
fn primary_of(args: PrimaryArgs) -> Result<(Vec<u8>, Primary), ConfigError> {
    let zone = pvt_zone(&args.zone, "--zone")?;
    let addr = parse_addr(&args.primary, 53, "primary")?;
    let tsig = crate::tsig::read_key_file(&args.tsig_key)?;
    Ok((zone, Primary { addr, tsig }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Invocation};

    /// What `dotgate ARGS` is refused with, as main would print it.
    fn refusal(args: &[&str]) -> String {
        let argv = ["dotgate", "pvt"].iter().chain(args).copied();
        let error = match Config::from_args(argv) {
            Ok(Invocation::Pvt(tool)) => run(tool).expect_err("refused"),
            Ok(other) => panic!("{other:?}"),
            Err(e) => e,
        };
        let line = error.to_string();
        assert!(!line.contains('\n') && !line.is_empty(), "one line: {line:?}");
        line
    }

    #[test]
    fn bad_arguments_are_one_line_each_before_anything_is_read_or_sent() {
        let user = ["--zone", "alice._pvt.example.test", "--key", "/nonexistent/key"];
        let with = |command: &[&'static str], rest: &[&'static str]| -> Vec<&'static str> {
            let mut args = command.to_vec();
            args.extend_from_slice(&user);
            args.extend_from_slice(rest);
            args
        };
        for (args, want) in [
            (vec!["register", "@192.0.2.1", "--zone", "alice.example.test", "--key", "k"], "USER._pvt.DOMAIN"),
            (vec!["register", "@192.0.2.1", "--zone", "a_b._pvt.example.test", "--key", "k"], "not one label"),
            (vec!["register", "@192.0.2.1", "--zone", "_pvt.example.test", "--key", "k"], "USER._pvt.DOMAIN"),
            (with(&["register", "192.0.2.1"], &[]), "@ADDR[:PORT]"),
            (with(&["register", "@192.0.2.300"], &[]), "invalid gateway address"),
            (with(&["register", "@192.0.2.1", "--tls", "--ca", "/nonexistent/ca"], &[]), "--ca /nonexistent/ca"),
            (with(&["register", "@192.0.2.1", "--ca", "roots.pem"], &[]), "--ca goes with --tls"),
            (with(&["register", "@192.0.2.1", "--tls-name", "gw"], &[]), "--tls-name goes with --tls"),
            (with(&["register", "@192.0.2.1"], &[]), "--key: cannot read /nonexistent/key"),
            (with(&["add", "@192.0.2.1", "printer 3600 A 192.0.2.300"], &[]), "the record \"printer 3600 A"),
            (with(&["add", "@192.0.2.1", "printer A 192.0.2.1"], &[]), "TTL"),
            (with(&["add", "@192.0.2.1", "printer 3600 BOGUS 1"], &[]), "type"),
            (with(&["add", "@192.0.2.1", "printer 3600 A"], &[]), "no RDATA"),
            (with(&["add", "@192.0.2.1", "printer.example.org. 3600 A 192.0.2.1"], &[]), "not in the zone"),
            (with(&["add", "@192.0.2.1", "x 1 A 192.0.2.1"], &["--encr-type", "41"]), "encr-type"),
            (with(&["delete", "@192.0.2.1", "printer ANY 192.0.2.1"], &[]), "ANY"),
            (with(&["query", "@192.0.2.1", "printer", "BOGUS"], &[]), "record type"),
            (with(&["query", "@192.0.2.1"], &[]), "required"),
            (with(&["load", "@192.0.2.1"], &[]), "required"),
            (with(&["load", "@192.0.2.1", "--updates"], &["-f", "queries"]), "cannot be used with"),
            (with(&["load", "@192.0.2.1", "-f", "queries"], &["--window", "1"]), "--updates"),
            (with(&["load", "@192.0.2.1", "-f", "queries"], &["--name-prefix", "a"]), "--updates"),
            (with(&["load", "@192.0.2.1", "--updates"], &["--window", "0"]), "--window"),
            (with(&["load", "@192.0.2.1", "--updates"], &["--prepared", "0"]), "--prepared"),
            (with(&["load", "@192.0.2.1", "--updates"], &["--name-prefix", "a_b"]), "name-prefix"),
            (with(&["load", "@192.0.2.1", "--updates"], &[]), "--key: cannot read /nonexistent/key"),
            (vec!["provider-keygen", "--zone", "example.test", "--out", "/nonexistent/k"], "_pvt.DOMAIN"),
            (vec!["enroll", "--file", "/nonexistent/enrolled", "a.b"], "not one label"),
            (
                vec!["admin", "destroy", "alice", "--zone", "_pvt.example.test", "--primary", "x", "--tsig-key", "k"],
                "invalid primary address",
            ),
            (vec!["frobnicate"], "frobnicate"),
        ] {
            let line = refusal(&args);
            assert!(line.contains(want), "{args:?}: {line:?} lacks {want:?}");
        }
    }

    #[test]
    fn zones_are_checked_and_lowercased() {
        assert_eq!(user_zone("Alice._PVT.Example.Test.").unwrap(), b"\x05alice\x04_pvt\x07example\x04test\0");
        assert_eq!(pvt_zone("_pvt.example.test", "--zone").unwrap(), b"\x04_pvt\x07example\x04test\0");
        assert!(pvt_zone("_pvt", "--zone").is_err());
        assert!(user_zone("alice._pvt").is_err());
        assert!(user_zone("alice.bob._pvt.example.test").is_err());
    }
}
