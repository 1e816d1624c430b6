//! Fuzz target `pvt_name`: the private-subdomain gateway's encrypted owner names, made and read
//! back, and the relative names inside them. The body, its input format and its invariants are
//! `dotgate::fuzzing::pvt_name` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::pvt_name::run(data));
