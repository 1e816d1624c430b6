//! Fuzz target `upstream_match`: what the relay makes of a datagram from a backend. The body, its
//! input format and its invariants are `dotgate::fuzzing::upstream_match` (shared with
//! tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::upstream_match::run(data));
