//! Fuzz target `pvt_encr`: ENCR RDATA as received and the private-subdomain seals of records and
//! names, round trips between fixed keys. The body, its input format and its invariants are
//! `dotgate::fuzzing::pvt_encr` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::pvt_encr::run(data));
