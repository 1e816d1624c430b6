//! Fuzz target `edns`: keepalive and padding taken off queries and put on answers. The body, its
//! input format and its invariants are `dotgate::fuzzing::edns` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::edns::run(data));
