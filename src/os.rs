//! Small Linux helpers, so that the system calls the rooms share have their
//! `unsafe` here once:
//!
//! - fds for talking to child processes (pipes, whether a writer is left,
//!   the lines a child wrote), the clean slate a child starts from (CGI and
//!   the pool), and whether a process group still runs (CGI's reaping);
//! - the clocks every process of the machine shares;
//! - nginx's channel, as the pool supervisor reads it;
//! - processes an app forks: what they close, and that they never run
//!   server code;
//! - plain fd I/O for the fds the module owns (read, write, send, accept,
//!   poll, an idle socket's state), and a socket's pending error (the
//!   engine's unbuffered request bodies).
//!
//! The child-side functions make system calls only (no allocation, no
//! locks), so the CGI child may call them between vfork-style clone and
//! execve.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pipe whose read end (ours, the first) is non-blocking; both ends are
/// close-on-exec. For what a child writes.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe_cloexec()?;
    set_nonblocking(read.as_raw_fd())?;
    Ok((read, write))
}

/// A pipe whose write end (ours, the second) is non-blocking; both ends are
/// close-on-exec. For what a child reads.
pub fn input_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe_cloexec()?;
    set_nonblocking(write.as_raw_fd())?;
    Ok((read, write))
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: plain syscall; the fds are checked and owned.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Whether a process still holds the write end of the pipe whose read end
/// is `fd`. A pipe's reader gets POLLHUP once the last writer is gone, even
/// with data left unread, so this neither reads nor waits.
pub fn pipe_has_writer(fd: RawFd) -> bool {
    let mut polled = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: plain syscall on our own struct, with timeout 0 (no wait).
    let n = unsafe { libc::poll(&mut polled, 1, 0) };
    // When it cannot tell (EINTR), the answer that waits longer.
    n < 0 || polled.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) == 0
}

/// Whether a process of group `pgid` still runs, as opposed to waiting as
/// a zombie to be reaped (which `kill(-pgid, 0)` does not tell apart).
/// Reads every process's `/proc/PID/stat`: for rare decisions only. Without
/// /proc, the answer that goes on signalling.
pub fn process_group_runs(pgid: libc::pid_t) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return true };
    dir.flatten().any(|entry| {
        entry.file_name().as_encoded_bytes().iter().all(u8::is_ascii_digit)
            && std::fs::read(entry.path().join("stat")).is_ok_and(|stat| runs_in_group(&stat, pgid))
    })
}

/// The fields of a `/proc/PID/stat` line, "pid (comm) state ppid pgrp
/// ...", from `state` (field 3) on. `comm` may hold anything, up to the
/// last parenthesis.
fn stat_fields(stat: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    let end = stat.iter().rposition(|&b| b == b')')?;
    Some(stat[end + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty()))
}

/// From a `/proc/PID/stat` line: not a zombie, and in group `pgid`.
fn runs_in_group(stat: &[u8], pgid: libc::pid_t) -> bool {
    let Some(mut fields) = stat_fields(stat) else { return false };
    let (Some(state), Some(_ppid), Some(pgrp)) = (fields.next(), fields.next(), fields.next()) else { return false };
    let pgrp = std::str::from_utf8(pgrp).ok().and_then(|p| p.parse::<libc::pid_t>().ok());
    !matches!(state, b"Z" | b"X") && pgrp == Some(pgid)
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
    use super::{pid_gone, process_started, runs_in_group, take_lines};

    #[test]
    fn group_members_are_read_from_stat() {
        assert!(runs_in_group(b"4242 (sleep) S 1 4241 4200 0 -1", 4241));
        assert!(!runs_in_group(b"4242 (sleep) S 1 4241 4200 0 -1", 4242));
        assert!(!runs_in_group(b"4242 (sleep) Z 1 4241 4200 0 -1", 4241), "a zombie does not run");
        assert!(runs_in_group(b"4242 (a) b) 9 (x) R 1 77 4200 0 -1", 77), "comm with parentheses and spaces");
        assert!(!runs_in_group(b"garbage", 77));
    }

    #[test]
    fn a_process_is_told_by_its_start_time() {
        let me = std::process::id();
        let started = process_started(me).expect("our own stat");
        assert_eq!(process_started(me), Some(started), "stable");
        // Above any pid_max: no such process.
        assert_eq!(process_started(0x7fff_fff0), None);
        assert!(pid_gone(0x7fff_fff0));
        assert!(!pid_gone(me));
    }

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

/// Zeroed memory for a `T` that this process and every process it forks
/// later share (an anonymous `MAP_SHARED` mapping), never unmapped.
///
/// # Safety
/// All-zero bytes must be a valid `T`, and `T` must be safe to share
/// between processes (atomics only: the other writers are processes).
pub unsafe fn shared_zeroed<T>() -> io::Result<&'static T> {
    // SAFETY: a fresh anonymous mapping, asked of the kernel.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<T>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: mapped for a T, zeroed by the kernel (valid, as the caller
    // promised), and never unmapped.
    Ok(unsafe { &*(ptr as *const T) })
}

/// Whether no process `pid` exists (signal 0: ESRCH). A process that
/// exists but is not ours to signal (EPERM) is not gone.
pub fn pid_gone(pid: u32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    pid == 0 || unsafe { libc::kill(pid as libc::pid_t, 0) != 0 && *libc::__errno_location() == libc::ESRCH }
}

/// When process `pid` started (clock ticks after boot, `/proc/PID/stat`'s
/// field 22): with its pid, what tells a process from a later one that got
/// the same pid. None if there is no such process.
pub fn process_started(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, the 20th from `state`.
    let field = stat_fields(&stat)?.nth(19)?;
    std::str::from_utf8(field).ok()?.parse().ok()
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

/// nginx's `ngx_channel_t`: what its master sends each of its processes.
#[repr(C)]
struct NginxChannelMessage {
    command: usize,
    pid: libc::pid_t,
    slot: isize,
    fd: libc::c_int,
}

/// Reads one message from nginx's channel (non-blocking): its command, or
/// None when there is none now; an error when the channel is closed. A
/// descriptor the message carries (another process's channel) is closed:
/// only nginx's own processes talk to each other.
pub fn read_nginx_channel(fd: RawFd) -> io::Result<Option<usize>> {
    // SAFETY: recvmsg into a message buffer and a control buffer of ours,
    // both large enough; a descriptor the kernel installed from
    // SCM_RIGHTS is ours to close.
    unsafe {
        let mut message: NginxChannelMessage = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: (&mut message as *mut NginxChannelMessage).cast(), iov_len: std::mem::size_of::<NginxChannelMessage>() };
        let mut control = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let passed = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                libc::close(passed);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(Some(message.command))
    }
}

// ---- processes an app forks ------------------------------------------------
//
// An app may call os.fork() (or a library may, on its behalf). The child
// is a copy of a server process (an nginx worker, a pool process) with
// only the forking thread. It must never keep the server's sockets (a
// listening socket held by a forgotten child makes the next nginx fail with
// "Address already in use") and never run server code: when it returns
// into the server, it exits. What it does before that is the app's own.

/// The pid of the server process whose forks are watched; 0 until then.
static SERVER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Descriptors a forked child closes at once, as a bitmap by number (set
/// and cleared without locks: the child handler may run in the middle of
/// an update on another thread).
static FORK_CLOSES: [std::sync::atomic::AtomicU64; 1024] = [const { std::sync::atomic::AtomicU64::new(0) }; 1024];

/// Watches this process's forks: `close_in_child` runs in every child
/// right after fork() (it may only make system calls: the child of a
/// threaded process has one thread and whatever locks the others held).
pub fn watch_forks(close_in_child: unsafe extern "C" fn()) {
    SERVER_PID.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: registers a handler; the handler only makes system calls.
    unsafe { libc::pthread_atfork(None, None, Some(close_in_child)) };
}

/// Marks `fd` as one a forked child closes (see [`close_marked_fds`]).
pub fn close_in_forks(fd: RawFd, on: bool) {
    let Some(word) = usize::try_from(fd).ok().and_then(|fd| FORK_CLOSES.get(fd / 64)) else { return };
    let bit = 1u64 << (fd % 64);
    if on {
        word.fetch_or(bit, std::sync::atomic::Ordering::Relaxed);
    } else {
        word.fetch_and(!bit, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The child handler for processes that mark their descriptors.
///
/// # Safety
/// Only as a fork child handler (it closes descriptors the process uses).
pub unsafe extern "C" fn close_marked_fds() {
    for (i, word) in FORK_CLOSES.iter().enumerate() {
        let mut bits = word.load(std::sync::atomic::Ordering::Relaxed);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // SAFETY: a descriptor number of the parent, in the child's
            // copy of its table; closing it here leaves the parent's alone.
            unsafe { libc::close((i * 64 + bit) as RawFd) };
        }
    }
}

/// In a process an app forked (the pid is not the server's): it returned
/// into the server, which is not its to run. Says so on stderr (the error
/// log) and exits without running anything else.
pub fn exit_if_forked() {
    let server = SERVER_PID.load(std::sync::atomic::Ordering::Relaxed);
    if server == 0 || server == std::process::id() {
        return;
    }
    let line = b"rust_gateway: a process the app forked returned into the server; it exits here (end a forked child with os._exit())\n";
    // SAFETY: plain syscalls of a process that must not run anything else.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(0);
    }
}

// ---- plain fd I/O, for the fds the module owns ---------------------------
//
// The fd loops of CGI and the pool (pipes, unix sockets, the control pipe,
// signalfd) read and write through these, so their unsafe is here once.

/// `read(2)` into `buf`: the count (0 at EOF), or the error (WouldBlock
/// on an empty non-blocking fd; EINTR is retried).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: an initialized buffer viewed as possibly uninitialized; the
    // read only writes initialized bytes into it.
    read_uninit(fd, unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) })
}

/// `read(2)` into memory that need not be initialized: nothing is zeroed
/// first (a zeroed 64 KiB buffer per read was most of a pool hello's cost
/// on nginx's thread). The first `n` bytes of `buf` are initialized when
/// this returns Ok(n).
pub fn read_uninit(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into memory
        // we own; it never reads it.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `pread(2)` at `offset` into memory that need not be initialized (EINTR
/// is retried). The first `n` bytes of `buf` are initialized when this
/// returns Ok(n).
pub fn pread_uninit(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>], offset: u64) -> io::Result<usize> {
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into memory
        // we own; it never reads it.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `write(2)` of `buf`: the count written, or the error.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel only reads `buf`, at most its length.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `send(2)` on a socket without SIGPIPE: the count sent, or the error
/// (WouldBlock when the socket is full; EPIPE once the peer is gone).
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: as in `write`.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sendmsg(2)` of several buffers in order, without SIGPIPE: the count
/// sent, or the error (as [`send`]). Lets a record's header and its content
/// go out in one call with the content left where it is.
pub fn send_parts<const N: usize>(fd: RawFd, parts: [&[u8]; N]) -> io::Result<usize> {
    let iov = parts.map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() });
    // SAFETY: a zeroed msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = N;
    // SAFETY: the kernel only reads the buffers `iov` points at, each within
    // its length, and they outlive the call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a socket that should have nothing to read (an idle kept-alive
/// connection) is still open: anything readable, EOF or an error, means
/// its peer finished with it. Does not wait.
pub fn idle_socket_open(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into our own buffer on our own socket.
    let n = unsafe { libc::recv(fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// `accept4(2)` of a non-blocking, close-on-exec connection from a
/// listening socket.
pub fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: no address is asked for; the fd returned is ours.
    let fd = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: accept4 just made this fd, and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// `poll(2)` on `fds` for at most `timeout_ms` (-1: no limit): how many
/// have events.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: the kernel writes the `revents` of the entries we pass.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `path` is a regular file we may execute; else what is wrong,
/// for a configuration error.
pub fn check_executable(path: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Err("is not a regular file".into()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("does not exist".into()),
        Err(e) => return Err(format!("cannot be read ({e})")),
    }
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())).map_err(|_| "contains a NUL byte".to_string())?;
    // SAFETY: access() only reads the NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err("is not executable".into());
    }
    Ok(())
}
