//! Fuzz target `dnsenc_outer`: DNSENC's outer query, inner query and response envelope readers
//! on the same bytes. The body, its input format and its invariants are
//! `dotgate::fuzzing::dnsenc_outer` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::dnsenc_outer::run(data));
