//! Process shape: the per-core workers, how they pace their wake-ups, the shutdown signal
//! that stops them, and when the TLS material is reloaded.
pub mod pacing;
pub mod reload;
pub mod shutdown;
pub mod worker;
