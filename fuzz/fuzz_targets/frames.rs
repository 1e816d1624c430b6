//! Fuzz target `frames`: the frame reader on an arbitrary stream cut into arbitrary pieces. The
//! body, its input format and its invariants are `dotgate::fuzzing::frames` (shared with
//! tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::frames::run(data));
