//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo-fuzz, libFuzzer)
//! and `tests/properties.rs` (proptest on stable, in every `cargo test`): both run this very
//! code, so what CI checks on every run is what the fuzzer searched.
//!
//! Each target is a function from arbitrary bytes that runs dotgate's own code on them and
//! asserts its invariants: a panic is a finding. The oracles it compares against (`wire`, and
//! hickory-proto where it parses the input) are written apart from the code under test.
//!
//! | target          | code under test                                                     |
//! |-----------------|---------------------------------------------------------------------|
//! | `frames`        | the frame reader: `framing::take_stream`, `take_messages`           |
//! | `query`         | `dns::check_query`, `question_end`, `id`/`set_id`, local answers   |
//! | `upstream_match`| `relay::matching::match_udp_datagram` over a real `InflightTable`   |
//! | `edns`          | `edns::take_query_options`, `edns::append_answer`; the TCP memory's |
//! |                 | readers `edns::query_edns`, `dns::answer_min_ttl`                   |
//! | `ecs`           | `relay::ecs::write_query`, `write_answer` (EDNS Client Subnet)      |
//! | `config`        | the TOML file: `FileConfig::parse`, `Config::merge`                 |
//! | `dnsenc_nsk`    | the NSK record: `Nsk::parse_rdata`, `parse_presentation`, the `*`   |
//! |                 | matcher `star_match` (`frontend::dnsenc::wire`)                     |
//! | `dnsenc_outer`  | DNSENC messages: `parse_outer`, `check_inner`,                      |
//! |                 | `parse_response_envelope` (`frontend::dnsenc::wire`)                |
//! | `dnsenc_server` | the DNSENC server's whole check and the sealing of its answers      |
//! |                 | (`frontend::dnsenc::server`), raw messages and sealed plaintexts    |
//! | `inflight`      | the real `Relay` under insert, answer, timeout and close            |
//! | `pvt_name`      | encrypted owner names (`frontend::pvt::wire`): `encrypted_name`,    |
//! |                 | `zone_suffix`, `encrypted_labels`, `check_relative`, label counts   |
//! | `pvt_encr`      | ENCR RDATA (`wire::parse_encr`) and the seals (`frontend::pvt::seal`|
//! |                 | `seal_record`, `open_record`, `seal_name`, `open_name`), fixed keys |
//! | `pvt_sig0`      | SIG(0) (`frontend::pvt::sig0`: `find`, `verify`, `sign`) and the    |
//! |                 | gateway's `edns_payload` and `uncompressed_rdata`                   |
//!
//! Built only with the `fuzzing` feature (tests and fuzz/ turn it on). Nothing here is on the
//! served path, and nothing here may change what dotgate does: it only calls and checks.

pub mod config;
pub mod dnsenc_nsk;
pub mod dnsenc_outer;
pub mod dnsenc_server;
pub mod ecs;
pub mod edns;
pub mod frames;
pub mod pvt;
pub mod pvt_encr;
pub mod pvt_name;
pub mod pvt_sig0;
pub mod query;
pub mod upstream_match;
pub mod wire;

pub use crate::relay::model_check as inflight;

/// Longest DNS message: a 16-bit length (TCP and DoT framing) or a UDP payload.
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// A target's body: panics on a finding.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/` and `fuzz/corpus/` name them.
pub const TARGETS: [(&str, Target); 13] = [
    ("frames", frames::run),
    ("query", query::run),
    ("upstream_match", upstream_match::run),
    ("edns", edns::run),
    ("ecs", ecs::run),
    ("config", config::run),
    ("inflight", inflight::run_bytes),
    ("dnsenc_nsk", dnsenc_nsk::run),
    ("dnsenc_outer", dnsenc_outer::run),
    ("dnsenc_server", dnsenc_server::run),
    ("pvt_name", pvt_name::run),
    ("pvt_encr", pvt_encr::run),
    ("pvt_sig0", pvt_sig0::run),
];

/// Reads control values off the front of a fuzz input; past its end every value is 0, so any
/// input is valid and a short one means "the defaults".
pub struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes }
    }

    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
