//! Fuzz target `dnsenc_server`: the DNSENC server's whole check and the sealing of its answers.
//! The body, its input format and its invariants are `dotgate::fuzzing::dnsenc_server` (shared
//! with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::dnsenc_server::run(data));
