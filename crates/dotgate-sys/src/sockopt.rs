//! TCP listener options that socket2 0.6 has no setter for (see
//! `../shared/notes/performance-facts.md` §3).

use std::io;
use std::os::fd::AsRawFd;

/// `TCP_DEFER_ACCEPT`: the listener wakes for a connection only once its first bytes (the
/// ClientHello) have arrived, or after about `seconds`: a silent connection costs no accept
/// and no TLS state meanwhile, and an accepted one can be read at once.
pub fn set_defer_accept(socket: &impl AsRawFd, seconds: u32) -> io::Result<()> {
    set_int(socket, libc::TCP_DEFER_ACCEPT, seconds.min(i32::MAX as u32) as libc::c_int)
}

/// `TCP_FASTOPEN` with a queue of `queue_len` pending Fast Open requests. The kernel accepts
/// data in the SYN only when `net.ipv4.tcp_fastopen` has the server bit (2) set.
pub fn set_fast_open(socket: &impl AsRawFd, queue_len: u32) -> io::Result<()> {
    set_int(socket, libc::TCP_FASTOPEN, queue_len.min(i32::MAX as u32) as libc::c_int)
}

fn set_int(socket: &impl AsRawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` lives for the call and the length passed is its size; the kernel only
    // reads it. An invalid descriptor or option comes back as -1, turned into an error.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_set_on_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_defer_accept(&listener, 1).unwrap();
        set_fast_open(&listener, 256).unwrap();
        // A descriptor that is not a socket is an error, not a crash.
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(set_defer_accept(&file, 1).is_err());
    }
}
