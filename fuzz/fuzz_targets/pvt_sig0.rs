//! Fuzz target `pvt_sig0`: the private-subdomain gateway's SIG(0) path on received and freshly
//! signed messages, and the gateway's readers of the messages around it. The body, its input
//! format and its invariants are `dotgate::fuzzing::pvt_sig0` (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::pvt_sig0::run(data));
