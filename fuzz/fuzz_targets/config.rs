//! Fuzz target `config`: arbitrary text as the TOML config file. The body, its input format and its
//! invariants are `dotgate::fuzzing::config` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::config::run(data));
