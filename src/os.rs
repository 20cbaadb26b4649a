//! Small Linux helpers: fds for talking to child processes and the clean
//! slate a child starts from (CGI and the pool), and a socket's pending
//! error (the engine's unbuffered request bodies).
//!
//! The child-side functions make system calls only (no allocation, no
//! locks), so the CGI child may call them between vfork-style clone and
//! execve.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A pipe whose read end (ours, the first) is non-blocking; both ends are
/// close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: plain syscall; the fds are checked and owned.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        let pair = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
        set_nonblocking(fds[0])?;
        Ok(pair)
    }
}

/// A unix stream socket pair, the first end non-blocking.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: as in `pipe`.
    unsafe {
        if libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let pair = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
        set_nonblocking(fds[0])?;
        Ok(pair)
    }
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl on the caller's fd.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The socket's pending error (`SO_ERROR`, which reading clears): how a
/// reset from the peer shows before the data that came ahead of it is
/// read.
pub fn socket_error(fd: RawFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `err`.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut err as *mut libc::c_int).cast(), &mut len) };
    match rc {
        0 if err == 0 => None,
        0 => Some(io::Error::from_raw_os_error(err)),
        _ => Some(io::Error::last_os_error()),
    }
}

/// Every signal back to its default disposition (nginx ignores SIGPIPE,
/// and its handlers mean nothing in a child).
///
/// # Safety
/// Only in a process that owns its signal handling: a fresh child.
pub unsafe fn default_signal_handlers() {
    for signal in 1..=libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: see above; glibc refuses its own reserved signals.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
}

/// An empty signal mask (nginx's master blocks most signals, and a
/// spawning thread may block all of them).
///
/// # Safety
/// As [`default_signal_handlers`].
pub unsafe fn unblock_all_signals() {
    // SAFETY: a zeroed sigset is valid storage for sigemptyset.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Closes every fd from `first` up: nginx's listening and client sockets
/// are not close-on-exec.
///
/// # Safety
/// The caller must own every such fd (a fresh child).
pub unsafe fn close_fds_from(first: RawFd) {
    // SAFETY: plain syscalls on fds the caller owns.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) != 0 {
            // Kernels before 5.9: one by one, up to the fd limit.
            let mut limit: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 { limit.rlim_cur.min(1 << 20) } else { 65536 };
            for fd in first..max as RawFd {
                libc::close(fd);
            }
        }
    }
}

/// Takes the complete lines (without "\n" or "\r\n") off the front of
/// what a child wrote; text longer than `longest` without a newline is cut
/// into lines of that length. With `all` (the child is done), the rest is a
/// line too.
pub fn take_lines(partial: &mut Vec<u8>, all: bool, longest: usize) -> Vec<String> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(bytes)).into_owned();
    let mut lines = Vec::new();
    while let Some(end) = partial.iter().position(|&c| c == b'\n') {
        let line: Vec<u8> = partial.drain(..=end).collect();
        lines.push(text(&line[..line.len() - 1]));
    }
    while partial.len() > longest || (all && !partial.is_empty()) {
        let take = partial.len().min(longest);
        let line: Vec<u8> = partial.drain(..take).collect();
        lines.push(text(&line));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::take_lines;

    #[test]
    fn lines_are_split_and_bounded() {
        let mut partial = b"one\r\ntwo\nthr".to_vec();
        assert_eq!(take_lines(&mut partial, false, 2000), vec!["one", "two"]);
        assert_eq!(partial, b"thr");
        assert_eq!(take_lines(&mut partial, true, 2000), vec!["thr"]);
        let mut long = vec![b'x'; 4500];
        assert_eq!(take_lines(&mut long, false, 2000).len(), 2);
        assert_eq!(long.len(), 500);
    }
}

/// CLOCK_MONOTONIC in µs: the same clock in every process of the machine.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// CLOCK_MONOTONIC in ms: nginx's own clock (`ngx_current_msec`).
pub fn monotonic_ms() -> u64 {
    monotonic_us() / 1000
}
