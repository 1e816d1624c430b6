//! The only `unsafe` code in dotgate: thin wrappers over the Linux system calls that std, tokio
//! and socket2 do not offer. `mmsg` batches UDP sends and receives; `sockopt` sets the two TCP
//! listener options socket2 has no setter for; `rlimit` raises the open-file limit; `reactor`
//! registers a socket with tokio for one direction only. Each wrapper
//! takes and returns safe types, checks every length it hands the kernel, and turns -1 into an
//! `io::Error`; nothing else here.
//!
//! It is a crate of its own so that the `dotgate` crate can `#![forbid(unsafe_code)]`: forbid,
//! unlike deny, cannot be lifted by a module, so no `unsafe` block can creep into the relay,
//! the TLS code or the parsers. Every `unsafe` block here carries a `SAFETY:` comment.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod mmsg;
pub mod reactor;
pub mod rlimit;
pub mod sockopt;
