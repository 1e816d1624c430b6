//! Process shape: the per-core workers and the shutdown signal that stops them.
pub mod shutdown;
pub mod worker;
