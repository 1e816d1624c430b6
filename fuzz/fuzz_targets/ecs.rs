//! Fuzz target `ecs`: the EDNS Client Subnet put on relayed queries and given back on answers.
//! The body, its input format and its invariants are `dotgate::fuzzing::ecs` (shared with
//! tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::ecs::run(data));
