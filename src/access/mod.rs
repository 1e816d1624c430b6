//! Who may connect and how fast: operator controls checked at accept (ACL, new-connection rate)
//! and per query (query rate).
//!
//! - `acl`: address blocks allowed and denied, longest prefix deciding; swapped whole on reload.
//! - `prefix`: how client addresses group into one client for the rate limits.
//! - `rate`: per-client token buckets, shared by all workers, in a table of fixed size.
//! - `gate`: the three together, as the frontends check them at accept and per query.
//! - `reload`: the ACL read again from the config file on change and on SIGHUP.
//!
//! `acl`, `prefix`, `rate` and `gate` are pure logic: they own the decisions and the state they
//! need, and never do I/O, never read the clock (callers pass `Instant`s) and never log or
//! count; the frontends decide what a refusal looks like on the wire and count it. `reload`
//! reads the config file and logs what it put in force.

pub mod acl;
pub mod gate;
pub mod prefix;
pub mod rate;
pub mod reload;
