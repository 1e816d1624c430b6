//! Fuzz target `dnsenc_nsk`: the NSK record's RDATA and presentation readers and the `*`
//! matcher. The body, its input format and its invariants are `dotgate::fuzzing::dnsenc_nsk`
//! (shared with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::dnsenc_nsk::run(data));
