//! Integration-test support for dotgate: `mod support;` in a test file.
//!
//! - [`ports`]: free loopback ports (UDP+TCP).
//! - [`fake_backend`]: an in-process, scriptable plain-DNS backend.
//! - [`client`]: a DoT client (also from a chosen local address), DNS message helpers (ECS,
//!   EDE), plain UDP/TCP exchanges (also behind PROXY v2 headers).
//! - [`unbound`] / [`bind`]: real Unbound / BIND servers in temp dirs (Unbound also behind
//!   PROXY v2 with query logs and access control; BIND also with its query log).
//! - [`proxy_v2`]: PROXY protocol v2 headers, encoded and decoded.
//! - [`dotgate`]: the dotgate binary under test, and test certificates.
//! - [`openssl`]: `openssl s_client` handshakes that save and resume sessions.
//! - [`http`]: GET on the admin endpoint, Prometheus samples.
//! - [`h2raw`]: a raw HTTP/2-over-TLS client (frames as the test writes them, HPACK) for DoH.
//! - [`hostile`]: misbehaving clients (slowloris, stalls, garbage, alerts, never-reading
//!   pipeliners), crowds of idle clients, RSS and descriptor counts of a process.
//! - [`probe`]: a well-behaved client that measures its query latency, and the bound.
//! - [`process`]: child processes with collected output (used by the above).
//!
//! Each test file uses only part of this, hence `dead_code` and
//! `unused_imports` (for the re-exports below) are allowed.
#![allow(dead_code, unused_imports)]

pub mod bind;
pub mod client;
pub mod dotgate;
pub mod fake_backend;
pub mod h2raw;
pub mod hostile;
pub mod http;
pub mod openssl;
pub mod ports;
pub mod probe;
pub mod process;
pub mod proxy_v2;
pub mod unbound;

pub use bind::Bind;
pub use client::{
    a_records, framed, parse, query, query_edns, query_edns_sized, txt_records, ClientOptions, DotClient,
};
pub use dotgate::{gen_cert, make_cert, start_doh, Dotgate, TestCert};
pub use fake_backend::FakeBackend;
pub use ports::free_port;
pub use unbound::{Unbound, UnboundOptions};
