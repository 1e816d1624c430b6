//! Settings: the command line, the optional TOML file, their merge, and validation.
//!
//! Owns the one `Config` every other module reads (by reference, at start). Flags override the
//! file; the file overrides the defaults. Every problem becomes a `ConfigError` whose `Display`
//! is one line an operator can act on; `main` prints it and exits with status 2. This module
//! never touches sockets or files other than the config file itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::access::acl::Cidr;
use crate::access::prefix::ClientPrefix;
use crate::access::rate::DEFAULT_TRACKED_CLIENTS;
use crate::frontend::dnsenc::wire::CodePoints;
use crate::relay::ecs::EcsPrefix;

/// Port of DNS over TLS (RFC 7858 §3.1).
pub const DEFAULT_DOT_PORT: u16 = 853;
/// Port a backend listens on when an address gives none.
pub const DEFAULT_BACKEND_PORT: u16 = 53;
/// Close a connection with nothing in flight after this long (RFC 7858 §3.4 asks servers to
/// reclaim idle connections; 10 s matches common resolver defaults).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not finished TLS by then loses its slot: a silent or slow client must not
/// hold one.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A backend answer later than this is a loss: retry once elsewhere, then SERVFAIL. Under the
/// 2 s that stub resolvers commonly wait, so the client sees our answer, not its own timeout.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// On SIGTERM, how long in-flight queries get to finish before the process exits anyway.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries relayed at once per connection before dotgate stops reading from it.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100;
/// Client connections at once, all workers together: what a 2-core box serves comfortably.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
/// Client connections at once from one address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;
/// The longest a worker may linger before sleeping, to gather events into fewer wake-ups (see
/// `runtime::pacing`, which sizes each linger to the event rate). Off by default: once the relay
/// stopped waking for stale deadlines, lingering no longer paid at any ordinary load on the lab
/// (at 20,000 qps a 150 µs linger saved 5% of the CPU for 0.27 ms more p50; at 40,000 a 100 µs
/// one saved nothing and doubled p50). An operator who values CPU over latency sets one.
pub const DEFAULT_COALESCE_WINDOW: Duration = Duration::ZERO;
/// Upstream UDP sockets per worker, each with its own OS-chosen random port: widens the space
/// an off-path spoofer must guess (RFC 5452) beyond 16 bits of ID.
pub const DEFAULT_UPSTREAM_SOCKETS: usize = 4;
/// Questions each worker remembers as truncated over UDP (sent straight over TCP when asked
/// again): 4,096 × 40 bytes, plus a 32 KiB index, per worker.
pub const DEFAULT_TCP_MEMORY_ENTRIES: usize = 4096;
/// Most questions per worker the TCP memory may hold (about 48 MB per worker).
pub const MAX_TCP_MEMORY_ENTRIES: usize = 1_000_000;
/// Longest a question stays in the TCP memory; its answer's smallest TTL when shorter.
pub const DEFAULT_TCP_MEMORY_TTL: Duration = Duration::from_secs(60);

/// The command line. Every field is optional so that the file and the defaults can fill in.
/// Without a subcommand dotgate serves; the subcommands are tools that print and exit.
#[derive(Debug, Parser)]
#[command(
    name = "dotgate",
    version,
    about = "DNS-over-TLS terminating proxy for UDP DNS backends",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Tool>,
    /// Address to accept DoT on (repeatable). Default: 0.0.0.0:853 and [::]:853. "none": no DoT
    /// (a DNSENC-only deployment).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<String>,
    /// Accept DNS over HTTPS (RFC 8484; HTTP/2 or HTTP/1.1 over TLS, the DoT certificate) on
    /// this address (repeatable). Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    pub doh_listen: Vec<String>,
    /// The path DoH queries go to (default /dns-query).
    #[arg(long, value_name = "PATH")]
    pub doh_path: Option<String>,
    /// Plain-DNS backend to relay to (repeatable), with options after commas: `proxy-protocol`
    /// (a PROXY v2 header with the client's address on every query) or `ecs=V4:V6` (an EDNS
    /// Client Subnet option with the client's address cut to those prefix lengths).
    #[arg(long, value_name = "ADDR:PORT[,OPTION]")]
    pub backend: Vec<String>,
    /// PEM certificate chain. Without --cert/--key an ephemeral self-signed one is made.
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// Session-ticket keys shared with other dotgates (`dotgate ticket-keys new` makes the file).
    /// Default: random keys per process.
    #[arg(long, value_name = "FILE")]
    pub ticket_keys: Option<PathBuf>,
    /// Worker threads, each with its own listener and upstream sockets. Default: one per core.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Close a connection idle (nothing in flight) this long, in seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub idle_timeout: Option<f64>,
    /// Close a client that has not completed TLS in this many seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub handshake_timeout: Option<f64>,
    /// Retry elsewhere, then SERVFAIL, a backend query unanswered this long, in seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub upstream_timeout: Option<f64>,
    /// On SIGTERM/SIGINT, let in-flight queries finish for at most this many seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub drain_timeout: Option<f64>,
    /// Queries in flight per connection before dotgate stops reading from it.
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Client connections at once, all workers together; more are closed at accept.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Client connections at once from one IP address; more are closed at accept.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Upstream UDP sockets per worker.
    #[arg(long, value_name = "N")]
    pub upstream_sockets: Option<usize>,
    /// Longest a busy worker lingers to gather events into one wake-up, in seconds (0: off).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub coalesce_window: Option<f64>,
    /// Questions per worker remembered as truncated over UDP, sent straight over TCP when asked
    /// again (0: off).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tcp_memory_entries: Option<usize>,
    /// Longest a question stays remembered as truncated, in seconds (shorter when its answer's
    /// TTL is).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub tcp_memory_ttl: Option<f64>,
    /// Clients allowed to connect (repeatable): the longest matching --allow/--deny prefix
    /// decides. Without any --allow, every address not denied is allowed.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Clients refused at accept, before TLS (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<String>,
    /// Queries per second one client may send (a burst of N allowed); more get REFUSED with an
    /// Extended DNS Error. Off by default.
    #[arg(long, value_name = "N")]
    pub max_qps_per_client: Option<u32>,
    /// New connections per second one client may open (a burst of N allowed); more are closed at
    /// accept, before TLS. Off by default.
    #[arg(long, value_name = "N")]
    pub max_new_connections_per_client: Option<u32>,
    /// How addresses group into one client for the rate limits: IPv4 and IPv6 prefix lengths.
    /// Default 32:64.
    #[arg(long, value_name = "V4:V6")]
    pub client_prefix: Option<String>,
    /// Clients the rate limits track at once (least recently seen evicted).
    #[arg(long, value_name = "N")]
    pub max_tracked_clients: Option<usize>,
    /// Log every query's name and type (off by default: privacy is the point).
    #[arg(long)]
    pub log_queries: bool,
    /// TCP Fast Open on the listeners: "true" (the default; the kernel decides, see
    /// net.ipv4.tcp_fastopen) or "false".
    #[arg(long, value_name = "BOOL")]
    pub tcp_fast_open: Option<bool>,
    /// EDNS padding of answers to 468-byte blocks (RFC 8467): "requested" (when the query
    /// carries the Padding option; the default), "always" or "never".
    #[arg(long, value_name = "POLICY")]
    pub padding: Option<Padding>,
    /// Accept DNSENC (stateless DNS encryption) over UDP and TCP on this address (repeatable).
    /// Off by default; needs --dnsenc-key.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dnsenc_listen: Vec<String>,
    /// A DNSENC private key file, from `dotgate dnsenc keygen` (repeatable).
    #[arg(long, value_name = "FILE")]
    pub dnsenc_key: Vec<PathBuf>,
    /// Which plain (not encrypted) queries the DNSENC listeners relay: "bootstrap" (only NSK,
    /// DNSKEY and DS, so that a client can fetch and validate the key; the default), "all" or
    /// "none".
    #[arg(long, value_name = "POLICY")]
    pub dnsenc_cleartext: Option<Cleartext>,
    /// The code points the draft leaves to IANA (the same flags as the client tools').
    #[command(flatten)]
    pub dnsenc_codepoints: CodePointArgs,
    /// Serve the private-subdomain gateway over UDP and TCP on this address (repeatable). Needs
    /// --pvt-zone; queries for a --pvt-zone on the DoT listener reach the gateway as well.
    #[arg(long, value_name = "ADDR:PORT")]
    pub pvt_listen: Vec<String>,
    /// A `_pvt.DOMAIN` zone the gateway serves (repeatable); turns the gateway on.
    #[arg(long, value_name = "_pvt.DOMAIN")]
    pub pvt_zone: Vec<String>,
    /// The BIND primary that holds the `_pvt` zones (reachable only by dotgate).
    #[arg(long, value_name = "ADDR:PORT")]
    pub pvt_primary: Option<String>,
    /// The TSIG key the gateway updates the primary with, as `tsig-keygen` writes it.
    #[arg(long, value_name = "FILE")]
    pub pvt_tsig_key: Option<PathBuf>,
    /// The provider's private key, from `dotgate pvt provider-keygen` (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub pvt_provider_key: Option<PathBuf>,
    /// The users allowed to register, one per line (`dotgate pvt enroll`); read at each
    /// registration.
    #[arg(long, value_name = "FILE")]
    pub pvt_enrollment: Option<PathBuf>,
    /// The ENCR RR type's code point (default 65302, private use).
    #[arg(long, value_name = "TYPE")]
    pub pvt_encr_type: Option<u16>,
    /// The compatibility mode: users may register RSASHA256 (algorithm 8) keys; answers to them
    /// are ENCR algorithm 3 (RSA-OAEP-SHA256 wrapping an AES-256-GCM key). Off by default.
    #[arg(long)]
    pub pvt_rsa_compat: bool,
    /// Serve /metrics (Prometheus), /healthz and /readyz over plain HTTP on this address. Off by
    /// default; give a loopback or internal address, never the DoT port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin: Option<String>,
    /// TOML file with any of the settings above (keys are the long flag names).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Validate the settings (and load the certificate and key), then exit.
    #[arg(long)]
    pub check_config: bool,
}

/// `dotgate <TOOL>`: print something and exit.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Session-ticket key files for --ticket-keys.
    #[command(subcommand, subcommand_required = true, arg_required_else_help = false)]
    TicketKeys(TicketKeysTool),
    /// DNSENC tools: key generation, the client, the load generator.
    #[command(subcommand, subcommand_required = true)]
    Dnsenc(DnsencTool),
    /// Private-subdomain tools: the user's keys and client, the provider's key, enrollment, admin.
    #[command(subcommand, subcommand_required = true)]
    Pvt(crate::frontend::pvt::cli::PvtTool),
    /// Print the SPKI pin (pin-sha256, base64) of the first certificate in a PEM file.
    Pin {
        /// PEM certificate chain; the first certificate is pinned.
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
    },
}

/// `dotgate dnsenc ...`
#[derive(Debug, Subcommand)]
pub enum DnsencTool {
    /// Write a new DNSENC private key (PKCS#8, mode 0600) into DIR and print its NSK record.
    Keygen {
        /// Query scheme: rsa2048, rsa4096 or x25519.
        #[arg(long, value_name = "SCHEME")]
        scheme: String,
        /// Folder to write the key file in (named after its random key id).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The NSK's priority (clients choose the highest).
        #[arg(long, value_name = "N", default_value_t = 10)]
        priority: u8,
    },
    /// Ask a DNSENC server one question, encrypted, and print the answer as dig does. Exit 0 on
    /// an answer (of any RCODE), 1 on a timeout or a clear error (BADCRYPT, REFUSED...).
    Query(DnsencQueryArgs),
    /// Send DNSENC queries from a dnsperf query file at a server for a while, then print
    /// dnsperf's summary (queries, losses, RCODEs, rate, latency, bytes on the wire).
    Load(DnsencLoadArgs),
    /// Publish the configured keys' NSK records at the reverse name of each DNSENC listen
    /// address, replacing what is there, as one TSIG-signed dynamic UPDATE to the zone's
    /// primary (BIND), whose dnssec-policy signs them.
    Publish(DnsencPublishArgs),
}

/// `dotgate dnsenc publish` as given.
#[derive(Debug, clap::Args)]
pub struct DnsencPublishArgs {
    /// The zone's primary server (port 53 unless given).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub server: String,
    /// The zone holding the reverse names, e.g. 2.0.192.in-addr.arpa (never a name's own zone
    /// apex: §2.1).
    #[arg(long, value_name = "ZONE")]
    pub zone: String,
    /// The TSIG key, as BIND's `tsig-keygen` writes it (hmac-sha256, -384 or -512).
    #[arg(long, value_name = "FILE")]
    pub tsig_key: PathBuf,
    /// dotgate's config file: its dnsenc-listen and dnsenc-keys.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// The DNSENC listen addresses (instead of the config file's).
    #[arg(long, value_name = "ADDR:PORT")]
    pub dnsenc_listen: Vec<String>,
    /// The key files to publish (instead of the config file's); none with --unpublish-all.
    #[arg(long, value_name = "FILE")]
    pub dnsenc_key: Vec<PathBuf>,
    /// Publish at the reverse names of these addresses instead of the listen addresses' (for a
    /// wildcard listener, or one behind NAT or a load balancer).
    #[arg(long, value_name = "IP")]
    pub address: Vec<String>,
    /// Remove every NSK record at the names instead (no keys are read).
    #[arg(long)]
    pub unpublish_all: bool,
    /// TTL of the NSK records, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub ttl: u32,
    /// Seconds to wait for the server's answer. Default 5.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    #[command(flatten)]
    pub codepoints: CodePointArgs,
}

/// `dotgate dnsenc query` as given.
#[derive(Debug, clap::Args)]
pub struct DnsencQueryArgs {
    /// The server, as @ADDR or @ADDR:PORT (port 53 unless given; IPv6 as @[ADDR]:PORT).
    #[arg(value_name = "@ADDR[:PORT]")]
    pub server: String,
    /// The name to look up.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The record type: a mnemonic (A, AAAA, MX, TXT, NSK...) or TYPEnnn. Default A.
    #[arg(value_name = "TYPE")]
    pub qtype: Option<String>,
    /// Ask over TCP (without it: UDP, then TCP again after a TC=1 answer).
    #[arg(long)]
    pub tcp: bool,
    /// The server's NSK record, in a file: what `dotgate dnsenc keygen` printed.
    #[arg(long, value_name = "FILE")]
    pub nsk: Option<PathBuf>,
    /// DNSSEC trust anchors (DS or DNSKEY records, zone-file form: a BIND K*.key file, an
    /// Unbound root.key): the NSK is fetched from the server at its address's reverse name and
    /// used only if its chain validates to one of them.
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Use only a key of this scheme: rsa2048, rsa4096 or x25519. Default: the highest
    /// priority key the client can use.
    #[arg(long, value_name = "SCHEME")]
    pub scheme: Option<String>,
    /// Seconds to wait for the answer (each of UDP and TCP). Default 5.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// Set the DO bit (ask for DNSSEC records).
    #[arg(long)]
    pub dnssec: bool,
    #[command(flatten)]
    pub codepoints: CodePointArgs,
}

/// `dotgate dnsenc load` as given.
#[derive(Debug, clap::Args)]
pub struct DnsencLoadArgs {
    /// The server.
    #[arg(short = 's', long, value_name = "ADDR[:PORT]")]
    pub server: String,
    /// The server's NSK record, in a file: what `dotgate dnsenc keygen` printed.
    #[arg(long, value_name = "FILE")]
    pub nsk: PathBuf,
    /// Queries, one `NAME [TYPE]` a line (dnsperf's format; `;` starts a comment), sent in
    /// order and looped.
    #[arg(short = 'f', long, value_name = "QUERYFILE")]
    pub query_file: PathBuf,
    /// Clients, each with its own socket and up to 10 queries in flight.
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10)]
    pub clients: usize,
    /// Queries per second, all clients together. Default: as fast as the windows allow.
    #[arg(short = 'Q', long, value_name = "N")]
    pub qps: Option<u32>,
    /// Seconds to send for.
    #[arg(short = 'l', long, value_name = "SECS", default_value_t = 10.0, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Each client asks over one TCP connection instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// Encrypt N queries (at least 1000) before the run and send them in turn, so that the
    /// tool's CPU goes to sending and opening answers, not to the query scheme's public-key
    /// operation: the server keeps no state and does the same work (its figure is the same);
    /// the tool reaches rates it could not otherwise on the same core.
    #[arg(long, value_name = "N")]
    pub prepared: Option<usize>,
    #[command(flatten)]
    pub codepoints: CodePointArgs,
}

/// The DNSENC code points, for the client tools: the same flags and defaults as the server's.
#[derive(Debug, clap::Args)]
pub struct CodePointArgs {
    /// RR type number of NSK records. Default 65301.
    #[arg(long, value_name = "N")]
    pub dnsenc_nsk_type: Option<u16>,
    /// EDNS option code of the DNSENC option. Default 65050.
    #[arg(long, value_name = "N")]
    pub dnsenc_option_code: Option<u16>,
    /// Extended RCODE of BADCRYPT. Default 3841.
    #[arg(long, value_name = "N")]
    pub dnsenc_badcrypt_rcode: Option<u16>,
}

/// `dotgate ticket-keys ...`
#[derive(Debug, Subcommand)]
pub enum TicketKeysTool {
    /// Print a new key file on stdout (one fresh key).
    New {
        /// Print FILE with a fresh key in front instead, keeping the newest 3 keys; redirect to a
        /// temporary file and rename it over FILE.
        #[arg(long, value_name = "FILE")]
        rotate: Option<PathBuf>,
    },
}

/// The TOML file: the same settings as the flags, under the same kebab-case names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<Vec<String>>,
    pub doh_listen: Option<Vec<String>>,
    pub doh_path: Option<String>,
    pub backend: Option<Vec<BackendEntry>>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ticket_keys: Option<PathBuf>,
    pub workers: Option<usize>,
    pub idle_timeout: Option<f64>,
    pub handshake_timeout: Option<f64>,
    pub upstream_timeout: Option<f64>,
    pub drain_timeout: Option<f64>,
    pub max_in_flight: Option<u32>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub upstream_sockets: Option<usize>,
    pub coalesce_window: Option<f64>,
    pub tcp_memory_entries: Option<usize>,
    pub tcp_memory_ttl: Option<f64>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub max_qps_per_client: Option<u32>,
    pub max_new_connections_per_client: Option<u32>,
    pub client_prefix: Option<String>,
    pub max_tracked_clients: Option<usize>,
    pub log_queries: Option<bool>,
    pub tcp_fast_open: Option<bool>,
    pub padding: Option<Padding>,
    pub dnsenc_listen: Option<Vec<String>>,
    pub dnsenc_keys: Option<Vec<PathBuf>>,
    pub dnsenc_cleartext: Option<Cleartext>,
    pub dnsenc_nsk_type: Option<u16>,
    pub dnsenc_option_code: Option<u16>,
    pub dnsenc_badcrypt_rcode: Option<u16>,
    pub pvt_listen: Option<Vec<String>>,
    pub pvt_zone: Option<Vec<String>>,
    pub pvt_primary: Option<String>,
    pub pvt_tsig_key: Option<PathBuf>,
    pub pvt_provider_key: Option<PathBuf>,
    pub pvt_enrollment: Option<PathBuf>,
    pub pvt_encr_type: Option<u16>,
    pub pvt_rsa_compat: Option<bool>,
    pub admin: Option<String>,
}

/// A backend in the config file: `"ADDR:PORT[,OPTION...]"` as on the command line, or a table
/// `{ address = "ADDR:PORT", proxy-protocol = true, ecs = "24:56" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BackendEntry {
    Line(String),
    Table(BackendTable),
}

/// The table form of a backend in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackendTable {
    pub address: String,
    #[serde(default)]
    pub proxy_protocol: bool,
    pub ecs: Option<String>,
}

/// How a backend learns the client's own address (it sees dotgate's otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// Every query starts with a PROXY protocol v2 header (UDP: each datagram; TCP: each
    /// connection, which then serves one client address only).
    pub proxy_protocol: bool,
    /// Queries carry an EDNS Client Subnet option with the client's address cut to this.
    pub ecs: Option<EcsPrefix>,
}

impl BackendOptions {
    /// Whether the relay needs each query's client address for this backend.
    pub fn needs_client(&self) -> bool {
        self.proxy_protocol || self.ecs.is_some()
    }
}

/// Who may connect and how fast, as configured (see `access`).
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// The lists came from the config file (not the command line), so a reload reads them again.
    pub lists_from_file: bool,
    pub max_qps_per_client: Option<u32>,
    pub max_new_connections_per_client: Option<u32>,
    pub client_prefix: ClientPrefix,
    pub max_tracked_clients: usize,
}

impl AccessConfig {
    /// Whether any per-client rate limit is on.
    pub fn rate_limited(&self) -> bool {
        self.max_qps_per_client.is_some() || self.max_new_connections_per_client.is_some()
    }
}

/// Validated settings, as the rest of dotgate reads them.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to accept DoT on; every worker listens on each (SO_REUSEPORT).
    pub listen: Vec<SocketAddr>,
    /// Addresses to accept DoH on, likewise (empty: off).
    pub doh_listen: Vec<SocketAddr>,
    /// The path of DoH queries.
    pub doh_path: String,
    /// Plain-DNS backends, in the order given.
    pub backends: Vec<SocketAddr>,
    /// Each backend's options, in the same order as `backends`.
    pub backend_options: Vec<BackendOptions>,
    /// ACLs and per-client rate limits.
    pub access: AccessConfig,
    /// The config file, for reloads of what it holds (the ACLs).
    pub config_file: Option<PathBuf>,
    /// PEM certificate chain and key; `None` means make an ephemeral self-signed pair.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Session-ticket key file; `None` means random keys per process.
    pub ticket_keys: Option<PathBuf>,
    /// Worker threads.
    pub workers: usize,
    /// Idle connection lifetime (nothing in flight).
    pub idle_timeout: Duration,
    /// Time a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a backend has to answer one attempt.
    pub upstream_timeout: Duration,
    /// Upper bound on the shutdown drain.
    pub drain_timeout: Duration,
    /// Queries relayed at once per connection (read backpressure beyond).
    pub max_in_flight: u32,
    /// Client connections at once, all workers together.
    pub max_connections: usize,
    /// Client connections at once from one address.
    pub max_connections_per_ip: usize,
    /// Upstream UDP sockets per worker and address family.
    pub upstream_sockets: usize,
    /// Longest a busy worker lingers before sleeping (zero: never).
    pub coalesce_window: Duration,
    /// Questions per worker the TCP memory holds (zero: off).
    pub tcp_memory_entries: usize,
    /// Longest a question stays in the TCP memory.
    pub tcp_memory_ttl: Duration,
    /// Log query names (privacy: off unless asked for).
    pub log_queries: bool,
    /// Which answers are padded.
    pub padding: Padding,
    /// TCP Fast Open on the listeners.
    pub tcp_fast_open: bool,
    /// Where the admin endpoint (metrics, health) listens; `None`: nowhere.
    pub admin: Option<SocketAddr>,
    /// The DNSENC frontend; `None`: off.
    pub dnsenc: Option<DnsencConfig>,
    /// The private-subdomain gateway; `None`: off.
    pub pvt: Option<PvtConfig>,
}

/// The private-subdomain gateway's settings (the files are read by `frontend::pvt` at start).
#[derive(Debug, Clone)]
pub struct PvtConfig {
    /// Addresses to serve it on, UDP and TCP each (it is reachable through DoT too).
    pub listen: Vec<SocketAddr>,
    /// The `_pvt.DOMAIN` zones, lowercased wire form.
    pub zones: Vec<Vec<u8>>,
    pub primary: SocketAddr,
    pub tsig_key: PathBuf,
    pub provider_key: PathBuf,
    pub enrollment: PathBuf,
    pub encr_type: u16,
    /// `--pvt-rsa-compat`: RSA user keys allowed.
    pub rsa_compat: bool,
}

/// Where DoH queries go unless told otherwise (RFC 8484's example).
pub const DEFAULT_DOH_PATH: &str = "/dns-query";

/// The ENCR RR type dotgate uses unless told otherwise (private use, RFC 6895).
pub const DEFAULT_PVT_ENCR_TYPE: u16 = crate::frontend::pvt::wire::DEFAULT_TYPE_ENCR;

/// The DNSENC frontend's settings.
#[derive(Debug, Clone)]
pub struct DnsencConfig {
    /// Addresses to take DNSENC on, UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// Private key files (loaded, and reloaded, by `frontend::dnsenc::keys`).
    pub keys: Vec<PathBuf>,
    /// The config file the list of keys came from (not the flags), read again on SIGHUP and
    /// when it changes, so that a key can be added or retired without a restart.
    pub keys_from: Option<PathBuf>,
    pub cleartext: Cleartext,
    /// The code points the draft leaves to IANA.
    pub nsk_type: u16,
    pub option_code: u16,
    pub badcrypt_rcode: u16,
}

/// Which queries that are not DNSENC the DNSENC listeners relay in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cleartext {
    /// NSK, DNSKEY and DS queries only: what a client needs to fetch and validate the key.
    #[default]
    Bootstrap,
    /// Every query (a plain resolver on the same port as well).
    All,
    /// None: REFUSED.
    None,
}

/// The NSK RR type dotgate uses unless told otherwise (private use, RFC 6895).
pub const DEFAULT_DNSENC_NSK_TYPE: u16 = 65301;
/// The DNSENC EDNS option code (local/experimental use, RFC 6891 §9).
pub const DEFAULT_DNSENC_OPTION_CODE: u16 = 65050;
/// BADCRYPT (private use RCODE, RFC 6895).
pub const DEFAULT_DNSENC_BADCRYPT_RCODE: u16 = 3841;

/// Which answers get EDNS padding to a multiple of 468 bytes (RFC 8467 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// Answers to queries that carry the Padding option (RFC 8467: they MUST be padded).
    #[default]
    Requested,
    /// Every answer, asked or not.
    Always,
    /// None: the option is still taken off queries, and no answer is padded.
    Never,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Serve with this config.
    Run(Config),
    /// `--check-config`: validate this config (and its certificate), then exit.
    Check(Config),
    /// `--help` or `--version` was printed; exit 0.
    PrintedHelp,
    /// `ticket-keys new [--rotate FILE]`: print a key file.
    NewTicketKeys { rotate: Option<PathBuf> },
    /// `pin --cert FILE`: print the certificate's SPKI pin.
    Pin { cert: PathBuf },
    /// `dnsenc keygen --scheme S --out DIR [--priority N]`: write a key, print its NSK.
    DnsencKeygen { scheme: String, out: PathBuf, priority: u8 },
    /// `dnsenc query @ADDR[:PORT] NAME [TYPE] ...`: ask one question, print the answer.
    DnsencQuery(DnsencQuery),
    /// `dnsenc load -s ADDR[:PORT] --nsk FILE -f QUERYFILE ...`: send load, print a summary.
    DnsencLoad(DnsencLoad),
    /// `dnsenc publish --server ADDR --zone ZONE --tsig-key FILE ...`: UPDATE the NSK RRsets.
    DnsencPublish(DnsencPublish),
    /// `pvt ...`: a private-subdomain tool, checked when it runs (`frontend::pvt::cli::run`).
    Pvt(crate::frontend::pvt::cli::PvtTool),
}

/// What `dotgate dnsenc publish` sends, checked (the files are read when it runs).
#[derive(Debug, Clone)]
pub struct DnsencPublish {
    pub server: SocketAddr,
    /// Wire form.
    pub zone: Vec<u8>,
    /// The addresses whose reverse names get the RRset.
    pub addresses: Vec<IpAddr>,
    /// Key files to publish; empty to remove every NSK.
    pub keys: Vec<PathBuf>,
    pub tsig_key: PathBuf,
    pub ttl: u32,
    pub timeout: Duration,
    pub codepoints: CodePoints,
}

/// What `dotgate dnsenc query` asks, checked.
#[derive(Debug, Clone)]
pub struct DnsencQuery {
    pub server: SocketAddr,
    /// The name as given (the client encodes it, and refuses one that is not a domain name).
    pub name: String,
    pub qtype: u16,
    /// Straight to TCP.
    pub tcp: bool,
    /// Where the server's key comes from.
    pub key: NskSource,
    /// Only a key of this query scheme.
    pub scheme: Option<u16>,
    /// How long to wait for an answer, over UDP and again over TCP.
    pub timeout: Duration,
    /// The DO bit.
    pub dnssec: bool,
    pub codepoints: CodePoints,
}

/// Where `dotgate dnsenc query` takes the server's key from.
#[derive(Debug, Clone)]
pub enum NskSource {
    /// A file holding the NSK record, taken as given (`--nsk`).
    File(PathBuf),
    /// Fetched from the server and validated to the anchors in this file (`--trust-anchor`).
    TrustAnchor(PathBuf),
}

/// What `dotgate dnsenc load` runs, checked.
#[derive(Debug, Clone)]
pub struct DnsencLoad {
    pub server: SocketAddr,
    pub nsk: PathBuf,
    pub query_file: PathBuf,
    /// Clients (sockets), 1 to [`MAX_LOAD_CLIENTS`].
    pub clients: usize,
    /// Queries per second, all clients together; `None`: as fast as the windows allow.
    pub qps: Option<u32>,
    /// How long to send for.
    pub duration: Duration,
    pub tcp: bool,
    /// Queries encrypted before the run and sent in turn; `None`: each encrypted as it is sent.
    pub prepared: Option<usize>,
    pub codepoints: CodePoints,
}

/// `dotgate dnsenc query` waits this long for an answer unless told otherwise.
pub const DEFAULT_DNSENC_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most clients `dotgate dnsenc load` runs (each a socket with up to 10 queries in flight).
pub const MAX_LOAD_CLIENTS: usize = 10_000;

/// Everything that can be wrong with the settings. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Cli(String),
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid {what} address {value:?}: expected IP:PORT (IPv6 as [ADDR]:PORT)")]
    Address { what: &'static str, value: String },
    #[error("no backend given: use --backend ADDR:PORT (or `backend` in the config file)")]
    NoBackend,
    #[error("--cert and --key go together: give both or neither")]
    HalfCertificate,
    #[error("invalid {what} {value}: {reason}")]
    Value { what: &'static str, value: String, reason: &'static str },
    #[error("cannot resolve backend {name}: {reason}")]
    Resolve { name: String, reason: String },
    #[error("{0}")]
    Tls(String),
    #[error("invalid --{what} entry: {reason}")]
    Acl { what: &'static str, reason: String },
}

impl Config {
    /// Parses the process arguments (and the config file they name) into what to do.
    pub fn from_args<I, T>(args: I) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) if !e.use_stderr() => {
                // --help or --version: clap's own text on stdout.
                let _ = e.print();
                return Ok(Invocation::PrintedHelp);
            }
            Err(e) => return Err(ConfigError::Cli(first_line_of_clap_error(&e))),
        };
        match cli.command {
            Some(Tool::TicketKeys(TicketKeysTool::New { rotate })) => return Ok(Invocation::NewTicketKeys { rotate }),
            Some(Tool::Pin { cert }) => return Ok(Invocation::Pin { cert }),
            Some(Tool::Dnsenc(DnsencTool::Keygen { scheme, out, priority })) => {
                return Ok(Invocation::DnsencKeygen { scheme, out, priority })
            }
            Some(Tool::Dnsenc(DnsencTool::Query(args))) => return dnsenc_query(args),
            Some(Tool::Dnsenc(DnsencTool::Load(args))) => return dnsenc_load(args),
            Some(Tool::Dnsenc(DnsencTool::Publish(args))) => return dnsenc_publish(args),
            Some(Tool::Pvt(tool)) => return Ok(Invocation::Pvt(tool)),
            None => {}
        }
        let check_only = cli.check_config;
        // --check-config validates backend names without looking them up: it runs where the
        // names may not resolve (CI, a build host).
        let config = Config::from_cli_resolving(cli, !check_only)?;
        Ok(if check_only { Invocation::Check(config) } else { Invocation::Run(config) })
    }

    /// Merges the flags over the file over the defaults, then validates; backend names are
    /// looked up.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        Config::from_cli_resolving(cli, true)
    }

    /// [`Config::from_cli`]; with `resolve` false, backend names are checked but not looked up
    /// (and left out of `backends`).
    pub fn from_cli_resolving(cli: Cli, resolve: bool) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Config::merge(cli, file, resolve)
    }

    /// Merges the flags in `cli` over `file` (the config file as read) over the defaults, then
    /// validates. `cli.config` is not read again. With `resolve` false, backend names are
    /// checked but not looked up (and left out of `backends`).
    pub fn merge(cli: Cli, file: FileConfig, resolve: bool) -> Result<Config, ConfigError> {
        let access = access_config(&cli, &file)?;
        let dnsenc = dnsenc_config(&cli, &file)?;
        let pvt = pvt_config(&cli, &file)?;
        let doh_wanted = !cli.doh_listen.is_empty() || file.doh_listen.as_ref().is_some_and(|l| !l.is_empty());
        let listen_strings = if cli.listen.is_empty() { file.listen.unwrap_or_default() } else { cli.listen };
        let listen = if listen_strings.is_empty() {
            vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_DOT_PORT),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), DEFAULT_DOT_PORT),
            ]
        } else if listen_strings.len() == 1 && listen_strings[0].trim() == "none" {
            // No DoT at all: DoH, DNSENC or the gateway alone.
            if !doh_wanted && dnsenc.is_none() && pvt.as_ref().is_none_or(|pvt| pvt.listen.is_empty()) {
                return Err(ConfigError::Cli(
                    "--listen none turns DoT off: give --doh-listen, --dnsenc-listen or --pvt-listen, or dotgate has nothing to serve"
                        .to_owned(),
                ));
            }
            Vec::new()
        } else {
            listen_strings.iter().map(|s| parse_addr(s, DEFAULT_DOT_PORT, "listen")).collect::<Result<_, _>>()?
        };

        let admin = match cli.admin.or(file.admin) {
            Some(s) => {
                let addr =
                    s.trim().parse::<SocketAddr>().map_err(|_| ConfigError::Address { what: "admin", value: s })?;
                let clash = |dot: &SocketAddr| dot.port() == addr.port() && may_overlap(dot.ip(), addr.ip());
                if addr.port() != 0 && listen.iter().any(clash) {
                    return Err(ConfigError::Value {
                        what: "admin",
                        value: addr.to_string(),
                        reason: "is a DoT listen address and port; the admin endpoint never serves on the DoT port",
                    });
                }
                Some(addr)
            }
            None => None,
        };

        let backend_entries: Vec<BackendEntry> = if cli.backend.is_empty() {
            file.backend.unwrap_or_default()
        } else {
            cli.backend.into_iter().map(BackendEntry::Line).collect()
        };
        if backend_entries.is_empty() {
            return Err(ConfigError::NoBackend);
        }
        let mut backends = Vec::with_capacity(backend_entries.len());
        let mut backend_options = Vec::with_capacity(backend_entries.len());
        for entry in &backend_entries {
            let (address, options) = parse_backend_entry(entry)?;
            if let Ok(addr) = parse_addr(address, DEFAULT_BACKEND_PORT, "backend") {
                backends.push(addr);
                backend_options.push(options);
                continue;
            }
            let Some((host, port)) = parse_host_port(address.trim(), DEFAULT_BACKEND_PORT) else {
                return Err(ConfigError::Value {
                    what: "backend",
                    value: format!("{address:?}"),
                    reason: "expected IP:PORT, [IPv6]:PORT or HOSTNAME:PORT",
                });
            };
            if resolve {
                backends.push(resolve_backend(host, port)?);
                backend_options.push(options);
            }
        }
        for b in &backends {
            if b.ip().is_unspecified() || b.port() == 0 {
                return Err(ConfigError::Value {
                    what: "backend",
                    value: b.to_string(),
                    reason: "a backend needs a concrete address and a non-zero port",
                });
            }
        }

        let cert = cli.cert.or(file.cert);
        let key = cli.key.or(file.key);
        let cert_and_key = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError::HalfCertificate),
        };

        let workers = match cli.workers.or(file.workers) {
            Some(n) if (1..=1024).contains(&n) => n,
            Some(n) => {
                return Err(ConfigError::Value { what: "workers", value: n.to_string(), reason: "must be 1 to 1024" })
            }
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };

        let max_in_flight = cli.max_in_flight.or(file.max_in_flight).unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if !(1..=65_535).contains(&max_in_flight) {
            return Err(ConfigError::Value {
                what: "max-in-flight",
                value: max_in_flight.to_string(),
                reason: "must be 1 to 65535",
            });
        }
        let max_connections = cli.max_connections.or(file.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let max_connections_per_ip =
            cli.max_connections_per_ip.or(file.max_connections_per_ip).unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP);
        for (what, value) in [("max-connections", max_connections), ("max-connections-per-ip", max_connections_per_ip)]
        {
            if !(1..=10_000_000).contains(&value) {
                return Err(ConfigError::Value { what, value: value.to_string(), reason: "must be 1 to 10000000" });
            }
        }
        let upstream_sockets = cli.upstream_sockets.or(file.upstream_sockets).unwrap_or(DEFAULT_UPSTREAM_SOCKETS);
        if !(1..=64).contains(&upstream_sockets) {
            return Err(ConfigError::Value {
                what: "upstream-sockets",
                value: upstream_sockets.to_string(),
                reason: "must be 1 to 64",
            });
        }
        let tcp_memory_entries =
            cli.tcp_memory_entries.or(file.tcp_memory_entries).unwrap_or(DEFAULT_TCP_MEMORY_ENTRIES);
        if tcp_memory_entries > MAX_TCP_MEMORY_ENTRIES {
            return Err(ConfigError::Value {
                what: "tcp-memory-entries",
                value: tcp_memory_entries.to_string(),
                reason: "must be 0 (off) to 1000000",
            });
        }

        let doh_listen = if cli.doh_listen.is_empty() {
            file.doh_listen.clone().unwrap_or_default()
        } else {
            cli.doh_listen.clone()
        };
        let doh_listen = doh_listen.iter().map(|s| parse_addr(s, 443, "doh-listen")).collect::<Result<Vec<_>, _>>()?;
        let doh_path = cli.doh_path.clone().or(file.doh_path.clone()).unwrap_or_else(|| DEFAULT_DOH_PATH.to_owned());
        if !doh_path.starts_with('/') || doh_path.contains(['?', '#', ' ']) {
            return Err(ConfigError::Value {
                what: "doh-path",
                value: doh_path,
                reason: "must be a path starting with / (no query, fragment or space)",
            });
        }
        Ok(Config {
            listen,
            doh_listen,
            doh_path,
            backends,
            backend_options,
            access,
            config_file: cli.config.clone(),
            cert_and_key,
            ticket_keys: cli.ticket_keys.or(file.ticket_keys),
            workers,
            idle_timeout: seconds("idle-timeout", cli.idle_timeout.or(file.idle_timeout), DEFAULT_IDLE_TIMEOUT)?,
            handshake_timeout: seconds(
                "handshake-timeout",
                cli.handshake_timeout.or(file.handshake_timeout),
                DEFAULT_HANDSHAKE_TIMEOUT,
            )?,
            upstream_timeout: seconds(
                "upstream-timeout",
                cli.upstream_timeout.or(file.upstream_timeout),
                DEFAULT_UPSTREAM_TIMEOUT,
            )?,
            drain_timeout: seconds("drain-timeout", cli.drain_timeout.or(file.drain_timeout), DEFAULT_DRAIN_TIMEOUT)?,
            max_in_flight,
            max_connections,
            max_connections_per_ip,
            upstream_sockets,
            coalesce_window: match cli.coalesce_window.or(file.coalesce_window) {
                None => DEFAULT_COALESCE_WINDOW,
                Some(0.0) => Duration::ZERO,
                Some(v) if v > 0.0 && v <= 0.01 => Duration::from_secs_f64(v),
                Some(v) => {
                    return Err(ConfigError::Value {
                        what: "coalesce-window",
                        value: v.to_string(),
                        reason: "must be 0 (off) to 0.01 seconds",
                    })
                }
            },
            tcp_memory_entries,
            tcp_memory_ttl: seconds(
                "tcp-memory-ttl",
                cli.tcp_memory_ttl.or(file.tcp_memory_ttl),
                DEFAULT_TCP_MEMORY_TTL,
            )?,
            log_queries: cli.log_queries || file.log_queries.unwrap_or(false),
            padding: cli.padding.or(file.padding).unwrap_or_default(),
            tcp_fast_open: cli.tcp_fast_open.or(file.tcp_fast_open).unwrap_or(true),
            admin,
            dnsenc,
            pvt,
        })
    }
}

/// The gateway's settings: on when a `--pvt-zone` is given, which then needs the primary, its
/// TSIG key, the provider key and the enrollment file.
fn pvt_config(cli: &Cli, file: &FileConfig) -> Result<Option<PvtConfig>, ConfigError> {
    let pick = |flag: &Vec<String>, key: &Option<Vec<String>>| {
        if flag.is_empty() {
            key.clone().unwrap_or_default()
        } else {
            flag.clone()
        }
    };
    let listen = pick(&cli.pvt_listen, &file.pvt_listen);
    let zones = pick(&cli.pvt_zone, &file.pvt_zone);
    if zones.is_empty() {
        if !listen.is_empty() || cli.pvt_primary.is_some() || file.pvt_primary.is_some() {
            return Err(ConfigError::Cli("--pvt-listen and --pvt-primary need at least one --pvt-zone".to_owned()));
        }
        return Ok(None);
    }
    let needed =
        |value: Option<PathBuf>, flag: &str| value.ok_or_else(|| ConfigError::Cli(format!("--pvt-zone needs {flag}")));
    let primary = cli.pvt_primary.clone().or(file.pvt_primary.clone());
    let primary = parse_addr(
        &primary.ok_or_else(|| ConfigError::Cli("--pvt-zone needs --pvt-primary".to_owned()))?,
        53,
        "pvt-primary",
    )?;
    let zones = zones
        .iter()
        .map(|zone| {
            let wire = crate::frontend::dnsenc::wire::name_from_text(zone.trim().as_bytes())
                .map_err(|_| ConfigError::Value { what: "pvt-zone", value: zone.clone(), reason: "not a domain name" })?
                .to_ascii_lowercase();
            if wire.get(..5) != Some(b"\x04_pvt".as_slice()) || wire.len() < 7 {
                return Err(ConfigError::Value {
                    what: "pvt-zone",
                    value: zone.clone(),
                    reason: "must be _pvt.DOMAIN (draft section 3)",
                });
            }
            Ok(wire)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let encr_type = cli.pvt_encr_type.or(file.pvt_encr_type).unwrap_or(DEFAULT_PVT_ENCR_TYPE);
    if encr_type == 0 || encr_type == 41 || (128..=255).contains(&encr_type) || encr_type == 65535 {
        return Err(ConfigError::Value {
            what: "pvt-encr-type",
            value: encr_type.to_string(),
            reason: "must be a data RR type: not 0, 41 (OPT), 128-255 (meta types) or 65535",
        });
    }
    Ok(Some(PvtConfig {
        listen: listen.iter().map(|s| parse_addr(s, 53, "pvt-listen")).collect::<Result<Vec<_>, _>>()?,
        zones,
        primary,
        tsig_key: needed(cli.pvt_tsig_key.clone().or(file.pvt_tsig_key.clone()), "--pvt-tsig-key")?,
        provider_key: needed(cli.pvt_provider_key.clone().or(file.pvt_provider_key.clone()), "--pvt-provider-key")?,
        enrollment: needed(cli.pvt_enrollment.clone().or(file.pvt_enrollment.clone()), "--pvt-enrollment")?,
        encr_type,
        rsa_compat: cli.pvt_rsa_compat || file.pvt_rsa_compat.unwrap_or(false),
    }))
}

/// The DNSENC settings: on when a listen address is given, which then needs a key (and a key
/// needs a listen address).
fn dnsenc_config(cli: &Cli, file: &FileConfig) -> Result<Option<DnsencConfig>, ConfigError> {
    let listen = if cli.dnsenc_listen.is_empty() {
        file.dnsenc_listen.clone().unwrap_or_default()
    } else {
        cli.dnsenc_listen.clone()
    };
    let keys_from = cli.config.clone().filter(|_| cli.dnsenc_key.is_empty() && file.dnsenc_keys.is_some());
    let keys =
        if cli.dnsenc_key.is_empty() { file.dnsenc_keys.clone().unwrap_or_default() } else { cli.dnsenc_key.clone() };
    match (listen.is_empty(), keys.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(ConfigError::Cli(
                "--dnsenc-listen needs at least one --dnsenc-key (make one with `dotgate dnsenc keygen`)".to_owned(),
            ))
        }
        (true, false) => return Err(ConfigError::Cli("--dnsenc-key given without --dnsenc-listen".to_owned())),
        (false, false) => {}
    }
    let listen = listen.iter().map(|s| parse_addr(s, 53, "dnsenc-listen")).collect::<Result<Vec<_>, _>>()?;
    let codepoints = code_points_over_file(&cli.dnsenc_codepoints, file)?;
    Ok(Some(DnsencConfig {
        listen,
        keys,
        keys_from,
        cleartext: cli.dnsenc_cleartext.or(file.dnsenc_cleartext).unwrap_or_default(),
        nsk_type: codepoints.nsk_type,
        option_code: codepoints.option_code,
        badcrypt_rcode: codepoints.badcrypt,
    }))
}

/// The DNSENC code points given (each `None` takes its default), checked.
fn dnsenc_code_points(
    nsk_type: Option<u16>,
    option_code: Option<u16>,
    badcrypt: Option<u16>,
) -> Result<CodePoints, ConfigError> {
    let code = |what: &'static str, value: Option<u16>, default: u16, valid: fn(u16) -> bool, reason: &'static str| {
        let value = value.unwrap_or(default);
        if valid(value) {
            Ok(value)
        } else {
            Err(ConfigError::Value { what, value: value.to_string(), reason })
        }
    };
    Ok(CodePoints {
        // Not a meta type (OPT, TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY) nor 0.
        nsk_type: code(
            "dnsenc-nsk-type",
            nsk_type,
            DEFAULT_DNSENC_NSK_TYPE,
            |t| t != 0 && t != 41 && !(128..=255).contains(&t) && t != 65535,
            "must be a data RR type: not 0, 41 (OPT), 128-255 (meta types) or 65535",
        )?,
        option_code: code(
            "dnsenc-option-code",
            option_code,
            DEFAULT_DNSENC_OPTION_CODE,
            |c| c != 0 && c != 65535,
            "must be 1 to 65534",
        )?,
        badcrypt: code(
            "dnsenc-badcrypt-rcode",
            badcrypt,
            DEFAULT_DNSENC_BADCRYPT_RCODE,
            |r| (24..=4095).contains(&r),
            "must be an extended RCODE, 24 to 4095 (3841-4095 are for private use)",
        )?,
    })
}

/// The code points given as flags, else in the config file, else the defaults; checked.
fn code_points_over_file(args: &CodePointArgs, file: &FileConfig) -> Result<CodePoints, ConfigError> {
    dnsenc_code_points(
        args.dnsenc_nsk_type.or(file.dnsenc_nsk_type),
        args.dnsenc_option_code.or(file.dnsenc_option_code),
        args.dnsenc_badcrypt_rcode.or(file.dnsenc_badcrypt_rcode),
    )
}

fn tool_code_points(args: &CodePointArgs) -> Result<CodePoints, ConfigError> {
    code_points_over_file(args, &FileConfig::default())
}

/// `dotgate dnsenc query`, checked: the NSK from a file (`--nsk`) or fetched and validated to
/// a trust anchor (`--trust-anchor`), one of the two; nothing stands in for them (no unvalidated
/// key, no cleartext query).
fn dnsenc_query(args: DnsencQueryArgs) -> Result<Invocation, ConfigError> {
    let DnsencQueryArgs { server, name, qtype, tcp, nsk, trust_anchor, scheme, timeout, dnssec, codepoints } = args;
    let codepoints = tool_code_points(&codepoints)?;
    let server = server
        .strip_prefix('@')
        .ok_or_else(|| ConfigError::Cli(format!("the server comes first, as @ADDR[:PORT], not {server:?}")))?;
    let server = parse_addr(server, 53, "server")?;
    let qtype = match qtype {
        None => 1,
        Some(text) => {
            crate::frontend::dnsenc::print::type_by_name(&text, &codepoints).ok_or_else(|| ConfigError::Value {
                what: "record type",
                value: format!("{text:?}"),
                reason: "must be a type mnemonic (A, AAAA, MX, TXT...) or TYPEnnn",
            })?
        }
    };
    let key = match (nsk, trust_anchor) {
        (Some(nsk), None) => NskSource::File(nsk),
        (None, Some(anchor)) => NskSource::TrustAnchor(anchor),
        (None, None) => {
            return Err(ConfigError::Cli(
                "give --trust-anchor FILE (the NSK is fetched from the server and validated) or --nsk FILE".to_owned(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::Cli("--nsk and --trust-anchor both name the server's key: give one".to_owned()))
        }
    };
    let scheme = scheme
        .map(|text| {
            crate::frontend::dnsenc::crypto::scheme_by_name(&text)
                .filter(|&code| crate::frontend::dnsenc::crypto::is_query_scheme(code))
                .ok_or(ConfigError::Value {
                    what: "scheme",
                    value: format!("{text:?}"),
                    reason: "must be rsa2048, rsa4096 or x25519",
                })
        })
        .transpose()?;
    let timeout = seconds("timeout", timeout, DEFAULT_DNSENC_QUERY_TIMEOUT)?;
    Ok(Invocation::DnsencQuery(DnsencQuery { server, name, qtype, tcp, key, scheme, timeout, dnssec, codepoints }))
}

/// `dotgate dnsenc publish`, checked: the listen addresses and key files from the flags, else
/// from the config file.
fn dnsenc_publish(args: DnsencPublishArgs) -> Result<Invocation, ConfigError> {
    let DnsencPublishArgs {
        server,
        zone,
        tsig_key,
        config,
        dnsenc_listen,
        dnsenc_key,
        address,
        unpublish_all,
        ttl,
        timeout,
        codepoints,
    } = args;
    let file = match &config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let codepoints = code_points_over_file(&codepoints, &file)?;
    let server = parse_addr(&server, 53, "server")?;
    let zone_text = zone.trim_end_matches('.');
    let zone = crate::frontend::dnsenc::wire::name_from_text(zone_text.as_bytes())
        .map_err(|reason| ConfigError::Cli(format!("--zone {zone:?}: {reason}")))?;
    let addresses = if !address.is_empty() {
        address
            .iter()
            .map(|a| {
                a.parse::<IpAddr>().map_err(|_| ConfigError::Value {
                    what: "address",
                    value: format!("{a:?}"),
                    reason: "must be an IP address",
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let listen =
            if dnsenc_listen.is_empty() { file.dnsenc_listen.clone().unwrap_or_default() } else { dnsenc_listen };
        if listen.is_empty() {
            return Err(ConfigError::Cli(
                "no address to publish at: give --dnsenc-listen, --address or --config with dnsenc-listen".to_owned(),
            ));
        }
        listen.iter().map(|s| parse_addr(s, 53, "dnsenc-listen").map(|a| a.ip())).collect::<Result<Vec<_>, _>>()?
    };
    let keys = if dnsenc_key.is_empty() { file.dnsenc_keys.clone().unwrap_or_default() } else { dnsenc_key };
    let keys = match (unpublish_all, keys.is_empty()) {
        (true, _) => Vec::new(),
        (false, false) => keys,
        (false, true) => {
            return Err(ConfigError::Cli(
                "no key to publish: give --dnsenc-key, --config with dnsenc-keys, or --unpublish-all".to_owned(),
            ))
        }
    };
    let timeout = seconds("timeout", timeout, DEFAULT_DNSENC_QUERY_TIMEOUT)?;
    Ok(Invocation::DnsencPublish(DnsencPublish { server, zone, addresses, keys, tsig_key, ttl, timeout, codepoints }))
}

/// `dotgate dnsenc load`, checked.
fn dnsenc_load(args: DnsencLoadArgs) -> Result<Invocation, ConfigError> {
    let DnsencLoadArgs { server, nsk, query_file, clients, qps, seconds: secs, tcp, prepared, codepoints } = args;
    let codepoints = tool_code_points(&codepoints)?;
    let server = parse_addr(&server, 53, "server")?;
    if !(1..=MAX_LOAD_CLIENTS).contains(&clients) {
        return Err(ConfigError::Value { what: "clients", value: clients.to_string(), reason: "must be 1 to 10000" });
    }
    if qps == Some(0) {
        return Err(ConfigError::Value { what: "qps", value: "0".to_owned(), reason: "must be at least 1" });
    }
    let duration = seconds("seconds", Some(secs), Duration::ZERO)?;
    if prepared.is_some_and(|n| !(1_000..=1_000_000).contains(&n)) {
        return Err(ConfigError::Value {
            what: "prepared",
            value: prepared.unwrap_or_default().to_string(),
            reason: "must be 1000 to 1000000",
        });
    }
    Ok(Invocation::DnsencLoad(DnsencLoad {
        server,
        nsk,
        query_file,
        clients,
        qps,
        duration,
        tcp,
        prepared,
        codepoints,
    }))
}

/// A backend entry's address text and options.
fn parse_backend_entry(entry: &BackendEntry) -> Result<(&str, BackendOptions), ConfigError> {
    let bad =
        |value: &str, reason: &'static str| ConfigError::Value { what: "backend", value: format!("{value:?}"), reason };
    let mut options = BackendOptions::default();
    let address = match entry {
        BackendEntry::Line(line) => {
            let mut parts = line.split(',');
            let address = parts.next().unwrap_or_default();
            for option in parts.map(str::trim) {
                match option.split_once('=') {
                    None if option == "proxy-protocol" => options.proxy_protocol = true,
                    Some(("ecs", prefix)) => {
                        options.ecs = Some(EcsPrefix::parse(prefix).map_err(|reason| ConfigError::Value {
                            what: "backend ecs prefix",
                            value: format!("{prefix:?}"),
                            reason,
                        })?)
                    }
                    _ => {
                        return Err(bad(line, "unknown option: expected proxy-protocol or ecs=V4:V6 after the address"))
                    }
                }
            }
            address
        }
        BackendEntry::Table(table) => {
            options.proxy_protocol = table.proxy_protocol;
            if let Some(prefix) = &table.ecs {
                options.ecs = Some(EcsPrefix::parse(prefix).map_err(|reason| ConfigError::Value {
                    what: "backend ecs prefix",
                    value: format!("{prefix:?}"),
                    reason,
                })?);
            }
            &table.address
        }
    };
    Ok((address, options))
}

/// The ACL lists (flags over the file, as a whole: `--allow`/`--deny` on the command line replace
/// both lists of the file) and the per-client rate limits.
fn access_config(cli: &Cli, file: &FileConfig) -> Result<AccessConfig, ConfigError> {
    let (cli_allow, cli_deny) = (&cli.allow, &cli.deny);
    let lists_from_file = cli_allow.is_empty() && cli_deny.is_empty();
    let (allow, deny) = if lists_from_file {
        (file.allow.clone().unwrap_or_default(), file.deny.clone().unwrap_or_default())
    } else {
        (cli_allow.clone(), cli_deny.clone())
    };
    let (allow, deny) = (parse_cidrs("allow", &allow)?, parse_cidrs("deny", &deny)?);
    let client_prefix = match cli.client_prefix.as_ref().or(file.client_prefix.as_ref()) {
        Some(s) => ClientPrefix::parse(s).map_err(|reason| ConfigError::Value {
            what: "client-prefix",
            value: format!("{s:?}"),
            reason,
        })?,
        None => ClientPrefix::DEFAULT,
    };
    let rate = |what: &'static str, value: Option<u32>| match value {
        Some(n) if !(1..=1_000_000).contains(&n) => {
            Err(ConfigError::Value { what, value: n.to_string(), reason: "must be 1 to 1000000 per second" })
        }
        other => Ok(other),
    };
    let max_tracked_clients = cli.max_tracked_clients.or(file.max_tracked_clients).unwrap_or(DEFAULT_TRACKED_CLIENTS);
    if !(64..=10_000_000).contains(&max_tracked_clients) {
        return Err(ConfigError::Value {
            what: "max-tracked-clients",
            value: max_tracked_clients.to_string(),
            reason: "must be 64 to 10000000",
        });
    }
    Ok(AccessConfig {
        allow,
        deny,
        lists_from_file,
        max_qps_per_client: rate("max-qps-per-client", cli.max_qps_per_client.or(file.max_qps_per_client))?,
        max_new_connections_per_client: rate(
            "max-new-connections-per-client",
            cli.max_new_connections_per_client.or(file.max_new_connections_per_client),
        )?,
        client_prefix,
        max_tracked_clients,
    })
}

/// Parses an ACL list; the first bad entry is the error.
pub fn parse_cidrs(what: &'static str, list: &[String]) -> Result<Vec<Cidr>, ConfigError> {
    list.iter().map(|s| s.trim().parse::<Cidr>().map_err(|reason| ConfigError::Acl { what, reason })).collect()
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
        FileConfig::parse(&text, path)
    }

    /// Parses the text of the config file at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::ParseFile { path: path.to_owned(), message: one_line(&e.to_string()) })
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, or a bare IP (which gets `default_port`).
/// `HOSTNAME[:PORT]` (default port `default_port`) when the name is a syntactically valid host
/// name whose last label has a letter (so that "1.2.3" is not taken for one).
fn parse_host_port(s: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok()?),
        None => (s, default_port),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && host.rsplit('.').next().is_some_and(|last| last.bytes().any(|b| b.is_ascii_alphabetic()));
    valid.then_some((host, port))
}

/// Looks a backend's name up once, at start, with the system's resolver (`/etc/hosts`,
/// `/etc/resolv.conf`): the first address it returns.
fn resolve_backend(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let failed = |reason: String| ConfigError::Resolve { name: format!("{host}:{port}"), reason };
    let mut addrs = (host, port).to_socket_addrs().map_err(|e| failed(e.to_string()))?;
    addrs.next().ok_or_else(|| failed("no address".to_owned()))
}

/// Whether sockets bound to `a` and `b` on one port could collide (the same address, or a
/// wildcard that covers the other; IPv6's wildcard covers IPv4 too on a dual-stack host).
fn may_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b
        || (a.is_unspecified() && (a.is_ipv6() || b.is_ipv4()))
        || (b.is_unspecified() && (b.is_ipv6() || a.is_ipv4()))
}

pub(crate) fn parse_addr(s: &str, default_port: u16, what: &'static str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(ConfigError::Address { what, value: s.to_owned() })
}

fn seconds(what: &'static str, value: Option<f64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        Some(v) => {
            Err(ConfigError::Value { what, value: v.to_string(), reason: "must be seconds above 0 and at most 86400" })
        }
    }
}

/// TOML and clap errors span several lines (a caret diagram, usage); operators get one. A TOML
/// error quotes the file's line, which may hold a bare carriage return or other control
/// characters (a terminal would act on them): those are shown escaped.
fn one_line(text: &str) -> String {
    let joined = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Clap's first line, with the indented list that follows it when it ends in a colon ("the
/// following required arguments were not provided:" says nothing without its list).
fn first_line_of_clap_error(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or("invalid command line").trim_start_matches("error: ").trim_end();
    if !first.ends_with(':') {
        return first.to_owned();
    }
    let list: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).map(str::trim).collect();
    format!("{first} {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["dotgate"];
        all.extend_from_slice(args);
        match Config::from_args(all)? {
            Invocation::Run(c) | Invocation::Check(c) => Ok(c),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn defaults_listen_on_853_both_families() {
        let c = parse(&["--backend", "127.0.0.1:53"]).unwrap();
        assert_eq!(c.listen, vec!["0.0.0.0:853".parse().unwrap(), "[::]:853".parse().unwrap()]);
        assert_eq!(c.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(c.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert!(c.workers >= 1);
    }

    #[test]
    fn backend_names_are_looked_up_at_start_and_only_checked_by_check_config() {
        // "localhost" comes from /etc/hosts: no network needed.
        let c = parse(&["--backend", "localhost:5353", "--backend", "127.0.0.2"]).unwrap();
        assert!(c.backends[0].ip().is_loopback() && c.backends[0].port() == 5353, "{:?}", c.backends);
        assert_eq!(c.backends[1], "127.0.0.2:53".parse().unwrap());
        let checked = parse(&["--backend", "unbound.dotgate.svc.cluster.local:53", "--check-config"]).unwrap();
        assert!(checked.backends.is_empty(), "not looked up: {:?}", checked.backends);
        for bad in ["-bad.example:53", "a..b:53", "1.2.3", "host:99999", "under score!:53"] {
            assert!(parse(&["--backend", bad, "--check-config"]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bare_backend_ip_gets_port_53() {
        let c = parse(&["--backend", "::1", "--backend", "127.0.0.2"]).unwrap();
        assert_eq!(c.backends, vec!["[::1]:53".parse().unwrap(), "127.0.0.2:53".parse().unwrap()]);
    }

    #[test]
    fn errors_are_one_line() {
        for args in [
            vec!["--backend", "non sense"],
            vec!["--backend", "127.0.0.1:53", "--bogus"],
            vec!["--backend", "127.0.0.1:53", "--cert", "a.pem"],
            vec!["--backend", "127.0.0.1:53", "--workers", "0"],
            vec!["--backend", "127.0.0.1:53", "--idle-timeout", "-1"],
            vec![],
        ] {
            let e = parse(&args).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.is_empty(), "{args:?}: {e:?}");
        }
    }

    #[test]
    fn file_errors_are_one_line_whatever_the_file_holds() {
        // Found by the `config` fuzz target: TOML quotes the offending line, and a bare CR (a
        // file saved with old Mac line ends) or a control character went into the message as
        // it was, so that a terminal showed the start of the line overwritten.
        for text in ["cert = true\rkey = 1\n", "admin = \"127.0.0.1\u{1b}[2J:853\"\n", "a\u{0}b = 1\n"] {
            let e = FileConfig::parse(text, Path::new("d.toml")).unwrap_err().to_string();
            assert!(!e.chars().any(char::is_control), "{text:?}: {e:?}");
            assert!(e.starts_with("config file d.toml: "), "{e:?}");
        }
    }

    #[test]
    fn file_sets_and_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "backend = [\"127.0.0.1:5353\"]\nworkers = 3\nidle-timeout = 2.5\nticket-keys = \"/etc/k\"\n";
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let c = parse(&["--config", p]).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.idle_timeout, Duration::from_millis(2500));
        assert_eq!(c.ticket_keys, Some(PathBuf::from("/etc/k")));
        let c =
            parse(&["--config", p, "--workers", "1", "--backend", "127.0.0.9:53", "--ticket-keys", "/run/k"]).unwrap();
        assert_eq!(c.workers, 1);
        assert_eq!(c.backends, vec!["127.0.0.9:53".parse().unwrap()]);
        assert_eq!(c.ticket_keys, Some(PathBuf::from("/run/k")));
        assert_eq!(parse(&["--backend", "127.0.0.1:53"]).unwrap().ticket_keys, None);
    }

    #[test]
    fn tools_are_subcommands_and_do_not_mix_with_serving_flags() {
        let invocation = |args: &[&str]| Config::from_args(std::iter::once("dotgate").chain(args.iter().copied()));
        assert!(matches!(invocation(&["ticket-keys", "new"]), Ok(Invocation::NewTicketKeys { rotate: None })));
        assert!(matches!(
            invocation(&["ticket-keys", "new", "--rotate", "k"]),
            Ok(Invocation::NewTicketKeys { rotate: Some(p) }) if p == Path::new("k")
        ));
        assert!(
            matches!(invocation(&["pin", "--cert", "c.pem"]), Ok(Invocation::Pin { cert }) if cert == Path::new("c.pem"))
        );
        assert!(invocation(&["--backend", "127.0.0.1:53", "pin", "--cert", "c.pem"]).is_err());
        assert!(invocation(&["pin"]).is_err(), "pin needs --cert");
        assert!(invocation(&["--backend", "127.0.0.1:53", "ticket-keys", "new"]).is_err());
    }

    #[test]
    fn tcp_memory_settings() {
        let c = parse(&["--backend", "127.0.0.1:53"]).unwrap();
        assert_eq!((c.tcp_memory_entries, c.tcp_memory_ttl), (DEFAULT_TCP_MEMORY_ENTRIES, DEFAULT_TCP_MEMORY_TTL));
        let c = parse(&["--backend", "127.0.0.1:53", "--tcp-memory-entries", "0", "--tcp-memory-ttl", "0.5"]).unwrap();
        assert_eq!((c.tcp_memory_entries, c.tcp_memory_ttl), (0, Duration::from_millis(500)));
        for (flag, bad) in
            [("--tcp-memory-entries", "1000001"), ("--tcp-memory-ttl", "0"), ("--tcp-memory-ttl", "86401")]
        {
            let e = parse(&["--backend", "127.0.0.1:53", flag, bad]).unwrap_err().to_string();
            assert!(e.contains(&flag[2..]) && !e.contains('\n'), "{flag} {bad}: {e}");
        }
    }

    #[test]
    fn backend_options_on_the_command_line_and_in_the_file() {
        let c = parse(&[
            "--backend",
            "127.0.0.1:53,proxy-protocol",
            "--backend",
            "[::1]:5353,ecs=24:56",
            "--backend",
            "127.0.0.2",
        ])
        .unwrap();
        assert_eq!(c.backends[1], "[::1]:5353".parse().unwrap());
        assert_eq!(c.backend_options[0], BackendOptions { proxy_protocol: true, ecs: None });
        assert_eq!(
            c.backend_options[1],
            BackendOptions { proxy_protocol: false, ecs: Some(EcsPrefix { v4: 24, v6: 56 }) }
        );
        assert_eq!(c.backend_options[2], BackendOptions::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "backend = [\"127.0.0.1:53,ecs=32:128\", { address = \"127.0.0.1:54\", proxy-protocol = true }]\n";
        std::fs::write(&path, text).unwrap();
        let c = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.backend_options[0].ecs, Some(EcsPrefix { v4: 32, v6: 128 }));
        assert!(c.backend_options[1].proxy_protocol && c.backend_options[1].ecs.is_none());
        for bad in ["127.0.0.1:53,proxy", "127.0.0.1:53,ecs=33:56", "127.0.0.1:53,ecs=24", "127.0.0.1:53,"] {
            let e = parse(&["--backend", bad, "--check-config"]).unwrap_err().to_string();
            assert!(e.contains("backend") && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn access_settings_are_checked() {
        let c = parse(&["--backend", "127.0.0.1:53"]).unwrap();
        assert!(c.access.allow.is_empty() && c.access.deny.is_empty() && !c.access.rate_limited());
        assert_eq!(c.access.client_prefix, ClientPrefix::DEFAULT);
        let c = parse(&[
            "--backend",
            "127.0.0.1:53",
            "--allow",
            "10.0.0.0/8",
            "--deny",
            "10.1.0.0/16",
            "--deny",
            "2001:db8::/32",
            "--max-qps-per-client",
            "100",
            "--client-prefix",
            "24:56",
        ])
        .unwrap();
        assert_eq!((c.access.allow.len(), c.access.deny.len()), (1, 2));
        assert!(!c.access.lists_from_file);
        assert_eq!(c.access.max_qps_per_client, Some(100));
        assert_eq!(c.access.client_prefix, ClientPrefix { v4: 24, v6: 56 });
        for (flag, bad) in [
            ("--allow", "10.0.0.0/33"),
            ("--deny", "fish"),
            ("--client-prefix", "24"),
            ("--client-prefix", "0:64"),
            ("--max-qps-per-client", "0"),
            ("--max-new-connections-per-client", "0"),
            ("--max-tracked-clients", "1"),
        ] {
            let e = parse(&["--backend", "127.0.0.1:53", flag, bad, "--check-config"]).unwrap_err().to_string();
            assert!(e.contains(&flag[2..]) && !e.contains('\n'), "{flag} {bad}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "backend = [\"127.0.0.1:53\"]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.3\"]\n")
            .unwrap();
        let c = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert!(c.access.lists_from_file);
        assert_eq!((c.access.allow.len(), c.access.deny.len()), (1, 1));
        let c = parse(&["--config", path.to_str().unwrap(), "--deny", "127.0.0.4"]).unwrap();
        assert!(!c.access.lists_from_file && c.access.allow.is_empty(), "flags replace both lists");
    }

    #[test]
    fn dnsenc_settings_go_together_and_are_checked() {
        let c = parse(&["--backend", "127.0.0.1:53"]).unwrap();
        assert!(c.dnsenc.is_none(), "off by default");
        let c = parse(&["--backend", "127.0.0.1:53", "--dnsenc-listen", "127.0.0.1:5353", "--dnsenc-key", "k.pem"])
            .unwrap();
        let d = c.dnsenc.expect("on");
        assert_eq!(d.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!((d.nsk_type, d.option_code, d.badcrypt_rcode), (65301, 65050, 3841));
        assert_eq!(d.cleartext, Cleartext::Bootstrap);
        let e = parse(&["--backend", "127.0.0.1:53", "--dnsenc-listen", "127.0.0.1:5353"]).unwrap_err().to_string();
        assert!(e.contains("--dnsenc-key"), "{e}");
        let e = parse(&["--backend", "127.0.0.1:53", "--dnsenc-key", "k.pem"]).unwrap_err().to_string();
        assert!(e.contains("--dnsenc-listen"), "{e}");
        let c = parse(&[
            "--backend",
            "127.0.0.1:53",
            "--listen",
            "none",
            "--dnsenc-listen",
            "127.0.0.1:53",
            "--dnsenc-key",
            "k",
        ]);
        assert!(c.unwrap().listen.is_empty(), "--listen none: DNSENC only");
        let e = parse(&["--backend", "127.0.0.1:53", "--listen", "none"]).unwrap_err().to_string();
        assert!(e.contains("nothing to serve"), "{e}");
        for (flag, bad) in
            [("--dnsenc-nsk-type", "41"), ("--dnsenc-option-code", "0"), ("--dnsenc-badcrypt-rcode", "15")]
        {
            let args =
                ["--backend", "127.0.0.1:53", "--dnsenc-listen", "127.0.0.1:5353", "--dnsenc-key", "k", flag, bad];
            let e = parse(&args).unwrap_err().to_string();
            assert!(e.contains(&flag[2..]) && !e.contains('\n'), "{flag} {bad}: {e}");
        }
    }

    #[test]
    fn pvt_settings_go_together_and_are_checked() {
        let c = parse(&["--backend", "127.0.0.1:53"]).unwrap();
        assert!(c.pvt.is_none(), "off by default");
        let full = [
            "--backend",
            "127.0.0.1:53",
            "--pvt-zone",
            "_pvt.Example.COM.",
            "--pvt-listen",
            "127.0.0.1:5353",
            "--pvt-primary",
            "127.0.0.1:5300",
            "--pvt-tsig-key",
            "t.key",
            "--pvt-provider-key",
            "p.key",
            "--pvt-enrollment",
            "users",
        ];
        let p = parse(&full).unwrap().pvt.expect("on");
        assert_eq!(p.zones, vec![b"\x04_pvt\x07example\x03com\x00".to_vec()], "lowercased wire form");
        assert_eq!((p.encr_type, p.listen.len(), p.rsa_compat), (65302, 1, false), "RSA off by default");
        let mut rsa: Vec<&str> = full.to_vec();
        rsa.push("--pvt-rsa-compat");
        assert!(parse(&rsa).unwrap().pvt.unwrap().rsa_compat);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "pvt-rsa-compat = true\n").unwrap();
        let mut from_file: Vec<&str> = full.to_vec();
        from_file.extend_from_slice(&["--config", path.to_str().unwrap()]);
        assert!(parse(&from_file).unwrap().pvt.unwrap().rsa_compat, "the config key pvt-rsa-compat");
        for (drop, wanted) in [
            ("--pvt-primary", "--pvt-primary"),
            ("--pvt-tsig-key", "--pvt-tsig-key"),
            ("--pvt-provider-key", "--pvt-provider-key"),
            ("--pvt-enrollment", "--pvt-enrollment"),
        ] {
            let at = full.iter().position(|a| *a == drop).unwrap();
            let args: Vec<&str> =
                full.iter().enumerate().filter(|(i, _)| *i != at && *i != at + 1).map(|(_, a)| *a).collect();
            let e = parse(&args).unwrap_err().to_string();
            assert!(e.contains(wanted) && !e.contains('\n'), "without {drop}: {e}");
        }
        let mut bad_zone = full;
        bad_zone[3] = "example.com";
        let e = parse(&bad_zone).unwrap_err().to_string();
        assert!(e.contains("_pvt.DOMAIN"), "{e}");
        let mut bad_type: Vec<&str> = full.to_vec();
        bad_type.extend_from_slice(&["--pvt-encr-type", "251"]);
        assert!(parse(&bad_type).unwrap_err().to_string().contains("pvt-encr-type"));
        let e = parse(&["--backend", "127.0.0.1:53", "--pvt-listen", "127.0.0.1:53"]).unwrap_err().to_string();
        assert!(e.contains("--pvt-zone"), "{e}");
        let mut only: Vec<&str> = full.to_vec();
        only.extend_from_slice(&["--listen", "none"]);
        assert!(parse(&only).unwrap().listen.is_empty(), "--listen none: the gateway only");
    }

    #[test]
    fn doh_settings_are_checked() {
        let c = parse(&["--backend", "127.0.0.1:53"]).unwrap();
        assert!(c.doh_listen.is_empty(), "off by default");
        assert_eq!(c.doh_path, "/dns-query");
        let c = parse(&["--backend", "127.0.0.1:53", "--doh-listen", "127.0.0.1", "--doh-path", "/q"]).unwrap();
        assert_eq!((c.doh_listen, c.doh_path.as_str()), (vec!["127.0.0.1:443".parse().unwrap()], "/q"));
        for bad in ["q", "/q?x=1", "/a b"] {
            let e = parse(&["--backend", "127.0.0.1:53", "--doh-path", bad]).unwrap_err().to_string();
            assert!(e.contains("doh-path") && !e.contains('\n'), "{bad}: {e}");
        }
        let c = parse(&["--backend", "127.0.0.1:53", "--listen", "none", "--doh-listen", "127.0.0.1:8443"]).unwrap();
        assert!(c.listen.is_empty(), "--listen none: DoH alone");
    }

    #[test]
    fn pvt_settings_come_from_the_config_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text =
            "backend = [\"127.0.0.1:53\"]\npvt-zone = [\"_pvt.example.com\"]\npvt-listen = [\"127.0.0.1:5353\"]\n\
                    pvt-primary = \"127.0.0.1:5300\"\npvt-tsig-key = \"t.key\"\npvt-provider-key = \"p.key\"\n\
                    pvt-enrollment = \"users\"\npvt-encr-type = 65400\npvt-rsa-compat = true\n";
        std::fs::write(&path, text).unwrap();
        let p = parse(&["--config", path.to_str().unwrap()]).unwrap().pvt.expect("on from the file");
        assert_eq!(p.zones, vec![b"\x04_pvt\x07example\x03com\x00".to_vec()]);
        assert_eq!((p.encr_type, p.rsa_compat, p.primary.port()), (65400, true, 5300));
        assert_eq!(
            (p.tsig_key.to_str(), p.provider_key.to_str(), p.enrollment.to_str()),
            (Some("t.key"), Some("p.key"), Some("users"))
        );
        let flags = parse(&["--config", path.to_str().unwrap(), "--pvt-encr-type", "65401"]).unwrap().pvt.unwrap();
        assert_eq!(flags.encr_type, 65401, "a flag over the file");
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "backend = [\"127.0.0.1:53\"]\nbackends = 1\n").unwrap();
        let e = parse(&["--config", path.to_str().unwrap()]).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        assert!(!e.contains('\n'));
    }
}
