//! Fuzz target `query`: the query check, the ID rewrite and local answers. The body, its input
//! format and its invariants are `dotgate::fuzzing::query` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::query::run(data));
