//! The only `unsafe` code in dotgate: thin wrappers over the Linux system calls that std, tokio
//! and socket2 do not offer. `mmsg` batches UDP sends and receives; `sockopt` sets the two TCP
//! listener options socket2 has no setter for; `rlimit` raises the open-file limit. Each wrapper takes and returns safe types, checks
//! every length it hands the kernel, and turns -1 into an `io::Error`; nothing else here.
#![allow(unsafe_code)]

pub mod mmsg;
pub mod rlimit;
pub mod sockopt;
