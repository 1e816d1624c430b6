//! Who may connect and how fast: operator controls checked at accept (ACL, new-connection rate)
//! and per query (query rate).
//!
//! - `acl`: address blocks allowed and denied, longest prefix deciding; swapped whole on reload.
//! - `prefix`: how client addresses group into one client for the rate limits.
//! - `rate`: per-client token buckets, shared by all workers, in a table of fixed size.
//!
//! Pure logic: this module owns the decisions and the state they need, and never does I/O,
//! never reads the clock (callers pass `Instant`s) and never logs or counts; the frontends
//! decide what a refusal looks like on the wire and count it.

pub mod acl;
pub mod prefix;
pub mod rate;
