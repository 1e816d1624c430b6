//! Process shape: the per-core workers, how they pace their wake-ups, and the shutdown signal
//! that stops them.
pub mod pacing;
pub mod shutdown;
pub mod worker;
