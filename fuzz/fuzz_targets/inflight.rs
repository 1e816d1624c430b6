//! Fuzz target `inflight`: the relay's in-flight bookkeeping under any sequence of queries,
//! answers, replays, strays, timeouts and closes, checked against a model. The body, its input
//! format and its invariants are `dotgate::fuzzing::inflight` (`relay::model_check`, shared
//! with tests/properties.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dotgate::fuzzing::inflight::run_bytes(data));
